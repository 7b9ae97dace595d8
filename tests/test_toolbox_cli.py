"""Keys with torch's arguments on the command line, in experiment files and in Python: one text
("elu:alpha=0.5") everywhere, sweeps of them, and one-line refusals (exit 2) of what does not fit."""
import json

import pytest

from backprop_oracle.compare.cli import main
from backprop_oracle.compare.experiments.overrides import with_changes
from backprop_oracle.compare.experiments.presets import PRESETS
from backprop_oracle.compare.experiments.spec import ExperimentSpec, SpecError

FAST = ["--epochs", "1", "--no-tensorboard", "--quiet"]


def cli(capsys, *args):
    try:
        code = main(list(args))
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_a_sweep_of_keys_with_arguments_runs_each_in_lockstep(capsys, tmp_path):
    report = tmp_path / "r.json"
    code, out, err = cli(capsys, "run", "moons", "--activation", "gelu:approximate=tanh,softplus:beta=2,threshold=1,selu",
                         "--json", str(report), *FAST)
    assert code == 0, out + err
    names = [r["preset"] for r in json.loads(report.read_text())["runs"]]
    assert names == ["moons[activation=gelu:approximate=tanh]", "moons[activation=softplus:beta=2,threshold=1]",
                     "moons[activation=selu]"], names
    assert "3 of 3 run(s) agree" in out


def test_a_loss_with_class_weights_and_label_smoothing_in_float32(capsys):
    code, out, err = cli(capsys, "run", "spiral", "--loss", "cross_entropy:label_smoothing=0.1,weight=1,2,0.5",
                         "--dtype", "float32", *FAST)
    assert code == 0 and "1 of 1 run(s) agree" in out, out + err


def test_an_experiment_file_keeps_the_key_as_written(capsys, tmp_path):
    path = tmp_path / "x.toml"
    code, _, err = cli(capsys, "run", "moons", "--activation", "elu:alpha=0.5", "--output-activation", "identity",
                       "--loss", "bce_with_logits:pos_weight=2", "--dump-config", str(path))
    assert code == 0, err
    text = path.read_text()
    assert 'activation = "elu:alpha=0.5"' in text and 'loss = "bce_with_logits:pos_weight=2"' in text, text
    code, out, err = cli(capsys, "run", "--config", str(path), *FAST)
    assert code == 0 and "agree" in out, out + err


@pytest.mark.parametrize("args, message", [
    (["--activation", "elu:beta=1"], "the activation elu takes no beta; it takes alpha"),
    (["--activation", "gelu:approximate=erf"], "approximate must be 'none' or 'tanh'"),
    (["--activation", "elu:alpha"], "'alpha' is not name=value"),
    (["--activation", "swish"], "invalid choice: 'swish'"),
    (["--loss", "nll"], "nll takes log-probabilities"),
    (["--loss", "l1:reduction=none"], "reduction must be 'mean' or 'sum'"),
    (["--loss", "cross_entropy:weight=1,2,3", "--output-activation", "identity"],
     "weight holds 3 number(s) but the network has 2 output(s)"),
    (["--loss", "bce_with_logits"], "bce_with_logits applies sigmoid to logits itself"),
    (["--loss", "hinge", "--output-activation", "softplus"], "hinge takes scores of either sign"),
])
def test_what_does_not_fit_is_refused_in_one_line(capsys, args, message):
    code, out, err = cli(capsys, "run", "moons", *args, *FAST)
    assert code == 2 and message in err, err
    assert "Traceback" not in err and out == ""


def test_python_takes_the_same_text():
    spec = with_changes(PRESETS["moons"].runs[""], activation="softplus:beta=2,threshold=10")
    assert spec.activation == "softplus:beta=2,threshold=10"
    with pytest.raises(SpecError, match="the loss huber takes no beta; it takes delta, reduction"):
        ExperimentSpec(loss="huber:beta=1", output_activation="identity").validate()
