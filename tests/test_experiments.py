"""A user's own experiments from the command line: every part of the spec as an option, experiment
files (TOML) that reproduce a preset exactly, sweeps with one row and one HParams session per run,
and every bad input refused with exit 2, one line and nothing written."""
import json
import os
import tomllib

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from backprop_oracle import ExperimentSpec, PRESETS, SpecError, load_config, run_lockstep, sweep, with_changes
from backprop_oracle.compare.cli import main


def cli(capsys, *args):
    """compare.cli.main in this process: (exit code, stdout, stderr); argparse's exits included."""
    try:
        code = main(list(args))
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def dumped(capsys, *args):
    """The experiment file ``run ARGS --dump-config`` prints, parsed."""
    code, out, err = cli(capsys, "run", *args, "--dump-config")
    assert code == 0, err
    return tomllib.loads(out)


def numbers(report):
    """A JSON report without its timings: every other number must be the same in a reproduction."""
    return [{k: v for k, v in run.items() if k != "seconds"} for run in report["runs"]]


# ---- every part of the spec from the command line ------------------------------------------

def test_every_option_reaches_the_spec(capsys):
    run, = dumped(capsys, "--dataset", "moons", "--hidden", "32,32,32", "--activation", "tanh",
                  "--output-activation", "sigmoid", "--loss", "bce", "--init", "he_normal", "--momentum", "0.9",
                  "--nesterov", "--weight-decay", "0.001", "--schedule", "step", "--step-size", "10",
                  "--gamma", "0.5", "--no-shuffle", "--lr", "0.2", "--epochs", "7", "--batch-size", "16",
                  "--seed", "3", "--dtype", "float32")["run"]
    assert run["hidden_sizes"] == [32, 32, 32] and (run["activation"], run["output_activation"], run["loss"],
                                                    run["init"]) == ("tanh", "sigmoid", "bce", "he_normal")
    assert run["optimizer_args"] == {"momentum": 0.9, "nesterov": True, "weight_decay": 0.001}, run["optimizer_args"]
    assert (run["schedule"], run["schedule_args"]) == ("step", {"step_size": 10, "gamma": 0.5})
    assert (run["shuffle"], run["lr"], run["epochs"], run["batch_size"], run["seed"], run["dtype"]) == \
        (False, 0.2, 7, 16, 3, "float32")
    adam, = dumped(capsys, "digits-softmax", "--betas", "0.8,0.99", "--eps", "1e-6")["run"]
    assert adam["optimizer_args"] == {"betas": [0.8, 0.99], "eps": 1e-6}, adam["optimizer_args"]


def test_an_experiment_of_ones_own_runs_in_lockstep(capsys, tmp_path):
    code, out, err = cli(capsys, "run", "--dataset", "circles", "--hidden", "8,8", "--activation", "tanh",
                         "--loss", "bce", "--epochs", "3", "--batch-size", "40", "--momentum", "0.5",
                         "--no-tensorboard", "--json", str(tmp_path / "r.json"))
    assert code == 0, err
    run, = json.loads((tmp_path / "r.json").read_text())["runs"]
    # circles: 500 points, 400 for training: 10 batches of 40 an epoch
    assert (run["preset"], run["steps"], run["passed"]) == ("custom", 30, True), run
    assert run["spec"]["hidden_sizes"] == [8, 8] and run["spec"]["optimizer_args"] == {"momentum": 0.5}
    assert run["final_cost_manual"] == pytest.approx(run["final_cost_torch"], rel=1e-10), "float64: rtol 1e-10"


def test_a_new_network_drops_the_given_weights_and_says_so(capsys):
    code, out, err = cli(capsys, "run", "or-gate", "--hidden", "3", "--dump-config")
    assert code == 0 and "initial_params" not in tomllib.loads(out)["run"][0], out
    assert "or-gate: --hidden makes a new network: the preset's given initial weights are dropped" in err, err
    kept, = dumped(capsys, "or-gate", "--lr", "2")["run"]
    assert kept["initial_params"] == {"0.weight": [[0.1, 0.6]], "0.bias": [0.0]}, "only α changed"


def test_with_changes_from_python():
    moons = PRESETS["moons"].runs[""]
    adam = with_changes(moons, optimizer="adam", betas=(0.8, 0.9))
    assert adam.optimizer_args == {"betas": (0.8, 0.9)}, "SGD's momentum goes with SGD"
    with pytest.raises(SpecError, match="the adam optimizer takes no momentum"):
        with_changes(moons, optimizer="adam", momentum=0.9)
    assert with_changes(moons, schedule="constant").schedule_args == {}


# ---- experiment files ----------------------------------------------------------------------

@pytest.mark.parametrize("preset,args", [("or-gate", ["--epochs", "300"]), ("xor", ["--epochs", "50"])])
def test_a_dumped_preset_runs_exactly_as_the_preset(capsys, tmp_path, preset, args):
    code, text, err = cli(capsys, "run", preset, *args, "--dump-config")
    assert code == 0, err
    (tmp_path / "exp.toml").write_text(text)
    reports = []
    for what in ([preset], ["--config", str(tmp_path / "exp.toml")]):
        path = tmp_path / f"{len(reports)}.json"
        code, out, err = cli(capsys, "run", *what, *args, "--no-tensorboard", "--json", str(path))
        assert code == 0, err
        reports.append(json.loads(path.read_text()))
    assert numbers(reports[0]) == numbers(reports[1]), "the file's run differs from the preset's"
    assert [r["goal_met"] for r in reports[1]["runs"]] == [r["goal_met"] for r in reports[0]["runs"]]


def test_dump_config_writes_a_file_that_runs(capsys, tmp_path):
    code, out, err = cli(capsys, "run", "moons", "--activation", "tanh", "--dump-config", str(tmp_path / "m.toml"))
    assert code == 0 and out == "" and f"run it with: backprop-oracle run --config {tmp_path / 'm.toml'}" in err, err
    preset = load_config(tmp_path / "m.toml")
    assert preset.runs[""] == with_changes(PRESETS["moons"].runs[""], activation="tanh")


def test_a_file_of_ones_own_shares_fields_and_names_its_runs(tmp_path):
    (tmp_path / "alphas.toml").write_text(
        'dataset = "or"\nepochs = 20\nbatch_size = "full"\n\n[[run]]\nlabel = "slow"\nlr = 0.5\n\n'
        '[[run]]\nlabel = "fast"\nlr = 5\ngoal = "accuracy >= 1"\n')
    preset = load_config(tmp_path / "alphas.toml")
    assert preset.run_names() == ["alphas:slow", "alphas:fast"]
    assert [s.lr for s in preset.runs.values()] == [0.5, 5.0] and {s.epochs for s in preset.runs.values()} == {20}
    assert str(preset.expect["fast"]) == "accuracy >= 1" and "slow" not in preset.expect


BAD_FILES = {
    "typo.toml": ('[[run]]\ndataset = "or"\n\nhiden_sizes = [3]\n', "typo.toml:4: unknown key 'hiden_sizes' in "
                  "[[run]] 1; did you mean 'hidden_sizes'?"),
    "lr.toml": ('name = "x"\n[[run]]\nlr = "fast"\n', "lr.toml:3: lr must be a number, got \"fast\""),
    "hinge.toml": ('[[run]]\nloss = "hinge"\noutput_activation = "softmax"\n', "hinge.toml:2: hinge takes scores"),
    "second.toml": ('[[run]]\nlr = 1\n[[run]]\nepochs = 0\n', "second.toml:4: epochs must be an integer from 1"),
    "syntax.toml": ('[[run]]\nlr = \n', "syntax.toml: not valid TOML: Invalid value (at line 2"),
    "empty.toml": ('name = "x"\n', "empty.toml: no [[run]] table"),
    "top.toml": ('nmae = "x"\n[[run]]\n', "top.toml:1: unknown key 'nmae'; did you mean 'name'?"),
}


# ---- sweeps --------------------------------------------------------------------------------

def hparams_sessions(root):
    """[(run folder, its HParams values)] for every session start in the event files under root."""
    sessions = []
    for folder, _, names in sorted(os.walk(root)):
        if any(".tfevents." in n for n in names):
            acc = EventAccumulator(folder)
            acc.Reload()
            try:
                content = acc.PluginTagToContent("hparams").get("_hparams_/session_start_info")
            except KeyError:       # the diff run is no session
                continue
            if content is not None:
                info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
                sessions.append((os.path.relpath(folder, root),
                                 {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
                                  for k, v in info.hparams.items()}))
    return sessions


def test_a_sweep_is_a_row_and_an_hparams_session_per_value(capsys, tmp_path):
    code, out, err = cli(capsys, "run", "or-gate", "--lr", "0.5,5,50", "--epochs", "10", "--logdir",
                         str(tmp_path / "runs"), "--json", str(tmp_path / "r.json"))
    assert code == 0, err
    names = ["or-gate[lr=0.5]", "or-gate[lr=5]", "or-gate[lr=50]"]
    assert [r["preset"] for r in json.loads((tmp_path / "r.json").read_text())["runs"]] == names
    for name in names:
        assert sum(line.startswith(name + " ") for line in out.splitlines()) == 1, f"one row for {name}:\n{out}"
    sessions = hparams_sessions(tmp_path / "runs")   # one per run, both sides' metrics in it
    got = sorted((h["lr"], h["run"], h["sides"]) for folder, h in sessions)
    assert got == [(0.5, names[0], "manual,torch"), (5.0, names[1], "manual,torch"),
                   (50.0, names[2], "manual,torch")], got


def test_sweeps_multiply_and_name_each_value(capsys):
    runs = dumped(capsys, "xor:hidden", "--hidden", "2", "4,4", "--seed", "0,1")["run"]
    assert [r["label"] for r in runs] == ["[hidden=2,seed=0]", "[hidden=2,seed=1]", "[hidden=4x4,seed=0]",
                                          "[hidden=4x4,seed=1]"]
    assert [(r["hidden_sizes"], r["seed"]) for r in runs] == [([2], 0), ([2], 1), ([4, 4], 0), ([4, 4], 1)]
    assert all(r["goal"] == "accuracy >= 1" for r in runs), "the preset's goal goes with each run"


def test_a_sweep_from_python():
    specs = sweep(ExperimentSpec(dataset="or", epochs=20), name="or", lr=[0.5, 5.0], momentum=[0.0, 0.9])
    assert list(specs) == ["or[lr=0.5,momentum=0]", "or[lr=0.5,momentum=0.9]", "or[lr=5,momentum=0]",
                           "or[lr=5,momentum=0.9]"]
    results = [run_lockstep(spec, name=name) for name, spec in specs.items()]
    assert all(r.passed for r in results)
    assert results[3].spec.optimizer_args == {"momentum": 0.9} and results[3].spec.lr == 5.0


def test_a_diverging_run_agrees_and_the_table_says_diverged(capsys):
    code, out, err = cli(capsys, "run", "learning-rate", "--no-tensorboard")
    assert code == 0, err
    row, = [line for line in out.splitlines() if line.startswith("learning-rate:too-large ")]
    assert row.endswith("met   agree (diverged at step 6)"), row
    assert "learning-rate:too-large: both sides diverged at step 6" in out, out
    code, _, err = cli(capsys, "run", "learning-rate:too-large", "--no-tensorboard", "--fail-on-divergence")
    assert code == 1, err


def test_train_takes_the_same_options(capsys):
    code, out, err = cli(capsys, "train", "or-gate", "--hidden", "3", "--activation", "tanh", "--lr", "1,2",
                         "--epochs", "5", "--device", "cpu", "--no-tensorboard", "--quiet")
    assert code == 0, err
    assert "or-gate[lr=1]" in out and "or-gate[lr=2]" in out, out


# ---- bad input: exit 2, one line, nothing written ------------------------------------------

BAD = [
    (["run", "moons", "--output-activation", "softmax", "--loss", "hinge"], "hinge takes scores of either sign"),
    (["run", "moons", "--nesterov", "--momentum", "0"], "Nesterov momentum looks ahead along the momentum, so it "
                                                        "needs momentum > 0 and dampening 0: add --momentum 0.9"),
    (["run", "moons", "--optimizer", "adam", "--momentum", "0.9"], "--momentum: the adam optimizer takes no "
                                                                   "momentum; it takes betas, eps, weight_decay"),
    (["run", "logistic", "--gamma", "0.5"], "--gamma: the constant schedule takes no gamma"),
    (["run", "moons", "--schedule", "step"], "give --step-size N"),
    (["run", "moons", "--betas", "0.9,0.99"], "the sgd optimizer takes no betas"),
    (["run", "moons", "--momentum", "-1"], "Invalid momentum value: -1"),
    (["run", "or-gate", "--lr", "1,1"], "--lr lists 1 more than once"),
    (["run", "or-gate", "--lr", "1,,2"], "an empty value in '1,,2'"),
    (["run", "or-gate", "--activation", "tan"], "invalid choice: 'tan'"),
    (["run", "or-gate", "--hidden", "3,x"], "expected layer sizes such as 32 or 32,32"),
    (["run", "--dataset", "nope"], "custom: unknown data set 'nope'"),
    (["run", "--dataset", "moons", "--output-activation", "softmax", "--loss", "bce"],
     "softmax over a single output is always 1"),
    (["run", "learning-rate", "--lr", "0.5,1"], "learning-rate compares runs that differ only in lr"),
    (["run", "or-gate", "xor", "--dump-config"], "--dump-config writes one preset"),
    (["run", "--config", "missing.toml"], "--config: cannot read missing.toml"),
    (["run", "or-gate", "--dump-config", "no/such/folder.toml"], "--dump-config: the folder"),
] + [(["run", "--config", name], words) for name, (_, words) in BAD_FILES.items()]


@pytest.mark.parametrize("args,words", BAD, ids=[" ".join(a)[:60] for a, _ in BAD])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(args, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, (text, _) in BAD_FILES.items():
        (tmp_path / name).write_text(text)
    before = sorted(os.listdir(tmp_path))
    code, out, err = cli(capsys, *args, "--json", "r.json", "--epochs", "1")
    assert code == 2, f"{args}: exit {code}\n{out}{err}"
    assert words in err, f"{args}: the message does not say {words!r}:\n{err}"
    assert "Traceback" not in err and len([l for l in err.splitlines() if ": error: " in l]) == 1, err
    assert sorted(os.listdir(tmp_path)) == before, f"{args} left {set(os.listdir(tmp_path)) - set(before)}"
