"""The presets written as layers lists: digits-cnn, batchnorm and dropout, run as `backprop-oracle run`
runs them. The two sides agree at every step, each run reaches its Expectation, the descriptions
quote what the runs reach, and each preset shows its point with real numbers: the convolutional
network classifies the digits, the plain deep sigmoid network stays on its plateau where the
normalised one trains, and dropout closes the gap between training and validation accuracy.

Each preset runs once (a module-scoped fixture) in float64; digits-cnn runs again for one epoch in
float32 and on MNIST-shaped 28x28 images written as IDX files here."""
import json
import math
from dataclasses import replace

import numpy as np
import pytest

from backprop_oracle.compare.cli.main import main
from backprop_oracle.compare.cli.runner import run_preset, select_runs, use_mnist
from backprop_oracle.compare.data.idx import MNIST_FILES, write_idx
from backprop_oracle.compare.errors import SpecError
from backprop_oracle.compare.experiments.presets import (CNN_LAYERS, MNIST_CNN_LAYERS, PRESETS, Expectation,
                                                         get_preset, on_mnist)
from backprop_oracle.compare.lockstep.run import LockstepRun
from backprop_oracle.compare.interactive.threads import single_threaded

NEW = ("digits-cnn", "batchnorm", "dropout")


@pytest.fixture(scope="module")
def runs():
    """{run name: (LockstepResult, (goal met, goal text))} for every run of the three presets."""
    return {name: (result, goal) for p in NEW for name, result, goal in run_preset(PRESETS[p])}


RUN_NAMES = [name for p in NEW for name in PRESETS[p].run_names()]


def test_the_new_presets_are_listed_with_their_runs():
    assert RUN_NAMES == ["digits-cnn", "batchnorm:without", "batchnorm:with", "dropout:without", "dropout:with"]
    assert list(PRESETS)[-3:] == list(NEW), "run all runs them after the others"


@pytest.mark.parametrize("name", RUN_NAMES)
def test_sides_agree_in_float64_and_reach_the_goal(runs, name):
    result, goal = runs[name]
    assert result.passed, f"{name}: the sides disagree {result.mismatch.describe()}"
    assert result.divergence is None and result.epochs == result.spec.epochs, name
    assert result.final_cost_manual == pytest.approx(result.final_cost_torch, rel=1e-10, abs=1e-12), \
        f"{name}: final cost manual {result.final_cost_manual!r} vs torch {result.final_cost_torch!r} (rtol 1e-10)"
    assert result.accuracy_manual == result.accuracy_torch, \
        f"{name}: accuracy manual {result.accuracy_manual} vs torch {result.accuracy_torch}"
    met, text = goal
    assert met, f"{name}: {text}"


# (run, metric, the figure its description quotes)
QUOTED = [
    ("digits-cnn", "accuracy", "0.986"),
    ("batchnorm:without", "final_cost", "2.33"),
    ("batchnorm:without", "accuracy", "0.10"),
    ("batchnorm:with", "final_cost", "0.334"),
    ("batchnorm:with", "accuracy", "0.866"),
    ("dropout:without", "train_accuracy", "0.940"),
    ("dropout:without", "accuracy", "0.835"),
    ("dropout:without", "gap", "0.105"),
    ("dropout:with", "train_accuracy", "0.880"),
    ("dropout:with", "accuracy", "0.875"),
    ("dropout:with", "gap", "0.005"),
]


@pytest.mark.parametrize("name,metric,text", QUOTED)
def test_description_quotes_what_the_run_reaches(runs, name, metric, text):
    result, _ = runs[name]
    value = {"final_cost": result.final_cost_manual, "accuracy": result.accuracy_manual,
             "train_accuracy": result.train_accuracy_manual,
             "gap": Expectation("gap", "<=", 1).check(result)[1]}[metric]
    decimals = len(text.split(".")[1])
    assert round(value, decimals) == float(text), \
        f"{name}: {metric} is {value:.6g}, the description says {text} (to {decimals} decimals)"
    description = get_preset(name.split(":")[0]).description
    assert text in description, f"{name}: the description does not quote {metric} {text}: {description}"


def test_digits_cnn_is_two_conv_relu_pool_blocks_and_a_linear_layer(runs):
    result, _ = runs["digits-cnn"]
    assert result.spec.layers == CNN_LAYERS and result.spec.input_shape == (1, 8, 8)
    kinds = [t.split("(")[0] for t in CNN_LAYERS]
    assert kinds == ["conv", "relu", "maxpool"] * 2 + ["flatten", "linear"], kinds
    # 1 -> 8 channels (3x3), 8 -> 16, 64 features -> 10: (8*9 + 8) + (16*8*9 + 16) + (64*10 + 10)
    run = LockstepRun(result.spec)
    assert sum(p.data.size for p in run.manual.model.parameters()) == 80 + 1168 + 650


def test_digits_cnn_agrees_in_float32():
    spec = replace(PRESETS["digits-cnn"].runs[""], dtype="float32", epochs=1)
    with single_threaded():
        result = LockstepRun(spec).run()
    assert (result.tolerance.rtol, result.tolerance.atol) == (1e-4, 1e-6)
    assert result.passed, f"digits-cnn float32: {result.mismatch.describe()}"


def test_batchnorm_differs_in_its_normalisation_alone_and_the_plain_net_stays_on_its_plateau(runs):
    plain, norm = runs["batchnorm:without"][0], runs["batchnorm:with"][0]
    a, b = plain.spec.to_dict(), norm.spec.to_dict()
    assert {k: v for k, v in a.items() if k != "layers"} == {k: v for k, v in b.items() if k != "layers"}
    assert [t for t in b["layers"] if t != "batchnorm"] == \
        [t.replace("(16)", "(16, bias=False)") for t in a["layers"]], "batchnorm after each linear map, no bias there"
    assert a["layers"].count("sigmoid") == b["layers"].count("sigmoid") == b["layers"].count("batchnorm") == 6
    # Cross-entropy of a guess among 10 classes is ln 10: the plain net's every epoch stays within 0.05
    # of it, while the normalised one's cost falls by more than half in its first four epochs.
    assert max(abs(c - math.log(10)) for c in plain.epoch_cost_manual) < 0.05, plain.epoch_cost_manual
    assert norm.epoch_cost_manual[3] < 0.5 * norm.epoch_cost_manual[0], norm.epoch_cost_manual
    assert norm.epoch_cost_manual[-1] < 0.1 * plain.epoch_cost_manual[-1]
    # the same first weights: the first linear map of each
    r1, r2 = LockstepRun(plain.spec), LockstepRun(norm.spec)
    assert np.array_equal(r1.initial_state["0.weight"], r2.initial_state["0.weight"])
    assert set(r2.manual.buffers()) >= {"1.running_mean", "1.running_var"}, "running statistics compared too"


def test_dropout_closes_the_gap_and_records_both_accuracies_per_epoch(runs):
    without, with_ = runs["dropout:without"][0], runs["dropout:with"][0]
    a, b = without.spec.to_dict(), with_.spec.to_dict()
    assert {k: v for k, v in a.items() if k != "layers"} == {k: v for k, v in b.items() if k != "layers"}
    assert [t for t in b["layers"] if not t.startswith("dropout")] == list(a["layers"])
    gap = {k: r.train_accuracy_manual - r.val_accuracy_manual for k, r in (("without", without), ("with", with_))}
    assert gap["without"] > gap["with"] + 0.08, gap
    assert with_.val_accuracy_manual > without.val_accuracy_manual, "dropout generalises better here"
    for r in (without, with_):
        e = r.extra["epochs"]
        assert e["epoch"] == list(range(2, 201, 2)), "evaluated every 2nd epoch of 200"
        for key in ("train_accuracy", "val_accuracy"):
            assert e[f"{key}_manual"] == e[f"{key}_torch"], key
        for i, (m, t) in enumerate(zip(e["val_cost_manual"], e["val_cost_torch"])):
            assert m == pytest.approx(t, rel=1e-10), f"val_cost at epoch {e['epoch'][i]}: manual {m!r}, torch {t!r}"
        assert e["train_accuracy_manual"][-1] == r.train_accuracy_manual, "the last is the final parameters'"
        assert e["val_accuracy_manual"][-1] == r.val_accuracy_manual


def test_the_dropout_picture_shows_training_against_validation(runs, tmp_path):
    from backprop_oracle.compare.dashboards.plots import png_size
    from backprop_oracle.compare.dashboards.tensorboard import log_preset_runs
    folder = log_preset_runs(str(tmp_path), "dropout", [(n, runs[n][0]) for n in ("dropout:without", "dropout:with")])
    png = (tmp_path / "dropout" / "runs_generalisation.png").read_bytes()
    assert folder == str(tmp_path / "dropout") and png[:8] == b"\x89PNG\r\n\x1a\n" and png_size(png) == (500, 800)
    assert (tmp_path / "dropout" / "runs_cost.png").exists()
    log_preset_runs(str(tmp_path), "batchnorm", [(n, runs[n][0]) for n in ("batchnorm:without", "batchnorm:with")])
    assert not (tmp_path / "batchnorm" / "runs_generalisation.png").exists(), "a cost preset draws its costs only"


def test_the_gap_expectation_is_training_minus_validation_accuracy(runs):
    result, _ = runs["dropout:without"]
    ok, value = Expectation("gap", ">=", 0.1).check(result)
    assert ok and value == result.train_accuracy_manual - result.val_accuracy_manual
    assert str(Expectation("gap", "<=", 0.05)) == "gap <= 0.05"
    assert Expectation("gap", "<=", 0.05).reached(0.015) == "reached 0.015"
    no_val = replace(result, val_accuracy_manual=None)
    assert Expectation("gap", "<=", 1).check(no_val) == (False, None), "no validation split: no gap"


def test_an_experiment_file_of_the_dropout_preset_keeps_its_layers_and_gap_goals(tmp_path):
    from backprop_oracle.compare.experiments.config import dump_config, load_config
    path = tmp_path / "dropout.toml"
    path.write_text(dump_config(PRESETS["dropout"]))
    loaded = load_config(path)
    assert loaded.runs == PRESETS["dropout"].runs and loaded.expect == PRESETS["dropout"].expect, loaded.expect


def test_overriding_what_batchnorm_and_dropout_compare_is_refused():
    for name in ("batchnorm", "dropout"):
        with pytest.raises(SpecError, match=f"{name} compares runs that differ only in layers; overriding --hidden"):
            select_runs([name], {"hidden_sizes": (32,)})
        with pytest.raises(SpecError, match="overriding --layers would make them the same"):
            select_runs([name], {"layers": ("linear(10)",)})


# ---- MNIST --------------------------------------------------------------------------------------

def write_mnist(directory, n_train=128, n_test=32, seed=0):
    """Random 28x28 images and labels 0..9 (MNIST's shapes and types: uint8), as the four IDX files."""
    rng = np.random.default_rng(seed)
    directory.mkdir()
    for stem_images, stem_labels, n in ((MNIST_FILES["train_images"], MNIST_FILES["train_labels"], n_train),
                                        (MNIST_FILES["test_images"], MNIST_FILES["test_labels"], n_test)):
        write_idx(directory / stem_images, rng.integers(0, 256, (n, 28, 28)).astype(np.uint8))
        write_idx(directory / stem_labels, rng.integers(0, 10, n).astype(np.uint8))


def test_mnist_switches_digits_cnn_to_the_28x28_network(tmp_path):
    preset = on_mnist(get_preset("digits-cnn"), tmp_path, limit=64)
    spec = preset.runs[""]
    assert (preset.name, spec.dataset, spec.dataset_args) == ("digits-cnn-mnist", "mnist",
                                                              {"directory": str(tmp_path), "limit": 64})
    assert (spec.layers, spec.input_shape) == (MNIST_CNN_LAYERS, (1, 28, 28))
    base = get_preset("digits-cnn").runs[""]
    assert (spec.loss, spec.optimizer, spec.lr, spec.batch_size, spec.epochs) == \
        (base.loss, base.optimizer, base.lr, base.batch_size, base.epochs), "the same hyperparameters"
    switched = use_mnist([get_preset("digits"), get_preset("digits-cnn"), get_preset("moons")], _mnist_dir(tmp_path))
    assert [p.name for p in switched] == ["digits-mnist", "digits-cnn-mnist", "moons"]
    assert switched[0].runs[""].layers == () and switched[0].runs[""].input_shape == ()


def _mnist_dir(tmp_path):
    directory = tmp_path / "mnist"
    if not directory.exists():
        write_mnist(directory)
    return str(directory)


def test_mnist_dir_without_a_preset_it_switches_says_which_it_switches(tmp_path):
    with pytest.raises(SpecError, match=r"switches the digits preset to MNIST \(and digits-cnn to its 28x28 "
                                        r"network\), but neither is being run; add 'digits' or 'digits-cnn'"):
        use_mnist([get_preset("moons"), get_preset("batchnorm")], _mnist_dir(tmp_path))


def test_digits_cnn_runs_on_28x28_idx_files_and_agrees(tmp_path, capsys):
    directory = _mnist_dir(tmp_path)
    code = main(["run", "digits-cnn", "--mnist-dir", directory, "--mnist-limit", "64", "--epochs", "1",
                 "--no-tensorboard", "--quiet", "--json", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert code == 0, err
    (only,) = json.loads((tmp_path / "r.json").read_text())["runs"]
    assert only["preset"] == "digits-cnn-mnist" and only["passed"], only["mismatch"]
    assert only["spec"]["input_shape"] == [1, 28, 28] and only["spec"]["layers"] == list(MNIST_CNN_LAYERS)
    assert only["steps"] == 1, "64 images in one batch of 64"
    assert only["val_accuracy_manual"] is not None, "the t10k files are the validation split"


def test_a_dumped_preset_keeps_its_picture_and_a_wrong_one_is_named():
    from backprop_oracle.compare.errors import SpecError
    from backprop_oracle.compare.experiments.config import dump_config, parse_config
    from backprop_oracle.compare.experiments.presets import get_preset
    text = dump_config(get_preset("dropout"))
    assert parse_config(text, "dropout.toml").picture == "generalisation"
    assert parse_config(dump_config(get_preset("batchnorm")), "bn.toml").picture == "cost"
    with pytest.raises(SpecError, match=r'x.toml:7: picture must be "cost" .* or "generalisation" .*, got "boundary"'):
        parse_config(text.replace('picture = "generalisation"', 'picture = "boundary"'), "x.toml")
