"""Every preset, run as `backprop-oracle run` runs it: the two sides agree at every step, and the
network learns what the preset's description says it learns.

Each preset runs once (a module-scoped fixture) in float64, the oracle's precision; a subset
runs again in float32, with fewer epochs, under the float32 tolerance.
"""
import math
import re

import pytest

from backprop_oracle.compare.experiments.presets import PRESETS, SOURCES, get_preset, on_mnist
from backprop_oracle.compare.cli.runner import apply_overrides, check_overrides, dropped_arguments, run_preset, use_mnist
from backprop_oracle.compare.experiments.spec import SpecError


# The presets written as layers lists run, with checks of their own, in tests/test_cnn_presets.py.
LAYERS_PRESETS = ("digits-cnn", "batchnorm", "dropout")
DENSE = [p for p in PRESETS.values() if p.name not in LAYERS_PRESETS]


@pytest.fixture(scope="module")
def runs():
    """{run name: (LockstepResult, (goal met, goal text))} for every run of every dense preset."""
    out = {}
    for preset in DENSE:
        for name, result, goal in run_preset(preset):
            out[name] = (result, goal)
    return out


def test_every_preset_is_run_here_or_with_the_layers_presets():
    assert set(LAYERS_PRESETS) <= set(PRESETS) and all(PRESETS[p].runs[label].layers for p in LAYERS_PRESETS
                                                       for label in PRESETS[p].runs)
    assert not any(spec.layers for p in DENSE for spec in p.runs.values())


RUN_NAMES = [name for p in DENSE for name in p.run_names()]
DIVERGING = [name for p in DENSE for name, label in zip(p.run_names(), p.runs)
             if label in p.expect and p.expect[label].metric == "diverges"]


@pytest.mark.parametrize("name", RUN_NAMES)
def test_sides_agree_in_float64(runs, name):
    result, _ = runs[name]
    assert result.passed, f"{name}: the sides disagree {result.mismatch.describe()}"
    if name in DIVERGING:
        # A run that is about divergence stops where both sides diverge, together.
        assert result.divergence is not None and result.divergence.both, f"{name}: {result.divergence}"
        return
    assert result.divergence is None, f"{name}: {result.divergence.describe()}"
    assert result.epochs == result.spec.epochs, f"{name}: {result.epochs} of {result.spec.epochs} epochs ran"
    assert result.final_cost_manual == pytest.approx(result.final_cost_torch, rel=1e-10, abs=1e-12), \
        f"{name}: final cost manual {result.final_cost_manual!r} vs torch {result.final_cost_torch!r} (rtol 1e-10)"


@pytest.mark.parametrize("name", RUN_NAMES)
def test_reaches_its_stated_goal(runs, name):
    result, goal = runs[name]
    assert goal is not None, f"{name} states no goal"
    met, text = goal
    assert met, f"{name}: {text}"
    assert result.accuracy_manual == result.accuracy_torch, \
        f"{name}: accuracy manual {result.accuracy_manual} vs torch {result.accuracy_torch}"


# The figures each description quotes, as printed there: (run, metric, text). A value must round
# to the text at the text's number of decimals, and the text must be in the description.
QUOTED = [
    ("or-gate", "final_cost", "0.0005"),
    ("or-gate", "accuracy", "1.0"),
    ("and-gate", "final_cost", "0.0061"),
    ("xor:single-unit", "final_cost", "0.125"),
    ("xor:single-unit", "accuracy", "0.75"),
    ("xor:hidden", "final_cost", "0.016"),
    ("xor:hidden", "accuracy", "1.0"),
    ("digits", "accuracy", "0.955"),
    ("digits-softmax", "accuracy", "0.964"),
    ("moons", "accuracy", "0.99"),
    ("circles", "accuracy", "1.0"),
    ("logistic", "accuracy", "0.95"),
    ("svm", "accuracy", "0.975"),
    ("spiral", "accuracy", "1.0"),
    ("spiral", "train_accuracy", "0.983"),
    ("regression", "final_cost", "0.014"),
    ("sgd-vs-batch:batch", "final_cost", "0.35"),
    ("sgd-vs-batch:sgd", "final_cost", "0.025"),
    ("sgd-vs-batch:mini-batch", "final_cost", "0.24"),
    ("learning-rate:small", "final_cost", "0.109"),
    ("learning-rate:good", "final_cost", "0.0245"),
    ("optimizers:momentum", "final_cost", "0.0187"),
    ("optimizers:sgd", "final_cost", "0.0295"),
    ("optimizers:rmsprop", "final_cost", "0.0294"),
    ("optimizers:adam", "final_cost", "0.0273"),
    ("optimizers:adamw", "final_cost", "0.0274"),
    ("activations:sigmoid", "final_cost", "0.330"),
    ("activations:sigmoid", "accuracy", "0.85"),
    ("activations:tanh", "final_cost", "0.092"),
    ("activations:relu", "final_cost", "0.066"),
    ("activations:gelu", "final_cost", "0.196"),
]


@pytest.mark.parametrize("name,metric,text", QUOTED)
def test_description_quotes_what_the_run_reaches(runs, name, metric, text):
    result, _ = runs[name]
    value = {"final_cost": result.final_cost_manual, "accuracy": result.accuracy_manual,
             "train_accuracy": result.train_accuracy_manual}[metric]
    decimals = len(text.split(".")[1])
    assert round(value, decimals) == float(text), \
        f"{name}: {metric} is {value:.6g}, the description says {text} (to {decimals} decimals)"
    description = get_preset(name.split(":")[0]).description
    assert text in description, f"{name}: the description does not quote {metric} {text}: {description}"


def test_every_preset_names_its_source_by_what_it_is():
    # By the names the README's Sources section explains, never by a file name a user cannot look up.
    markers = ("OR-gate article", "3Blue1Brown", "concept overview", "lecture notes", "introduction notebook")
    assert all(any(m in name for m in markers) for name in SOURCES), list(SOURCES)
    for preset in PRESETS.values():
        assert any(m in preset.description for m in markers), \
            f"{preset.name}: the description names no source: {preset.description}"
        assert not re.search(r"seeds? 00\d", preset.description, re.IGNORECASE), preset.description
        for spec in preset.runs.values():
            spec.validate()


def test_xor_needs_the_hidden_layer(runs):
    single, _ = runs["xor:single-unit"]
    hidden, _ = runs["xor:hidden"]
    # A single unit can do no better than outputting 0.5 everywhere: cost ½·0.5² = 0.125.
    assert single.final_cost_manual == pytest.approx(0.125, abs=1e-4), \
        f"xor:single-unit final cost {single.final_cost_manual}, expected 0.125 (outputs near 0.5)"
    assert single.accuracy_manual <= 0.75 and hidden.accuracy_manual == 1.0, \
        f"xor accuracy: single unit {single.accuracy_manual} (<= 0.75), hidden layer {hidden.accuracy_manual} (1.0)"
    assert hidden.spec.lr == 0.3 and hidden.spec.optimizer_args == {"momentum": 0.6}, "the lecture notes' α and μ"


def test_learning_rate_too_large_diverges_where_the_description_says(runs):
    small, good, large = (runs[f"learning-rate:{k}"][0] for k in ("small", "good", "too-large"))
    assert (small.spec.lr, good.spec.lr, large.spec.lr) == (0.01, 0.1, 0.5)
    assert small.divergence is None and good.divergence is None, "only the largest α diverges"
    assert large.divergence.step == 6 and large.divergence.both, large.divergence
    assert "diverges at step 6" in get_preset("learning-rate").description
    # the same network, start and data: α alone differs
    assert {k: v for k, v in small.spec.to_dict().items() if k != "lr"} == \
        {k: v for k, v in large.spec.to_dict().items() if k != "lr"}
    assert large.verdict == "agree (diverged at step 6)", large.verdict


def test_activations_differ_in_the_activation_alone_and_sigmoid_trains_slowest(runs):
    results = {k: runs[f"activations:{k}"][0] for k in ("sigmoid", "tanh", "relu", "gelu")}
    specs = [{k: v for k, v in r.spec.to_dict().items() if k != "activation"} for r in results.values()]
    assert all(s == specs[0] for s in specs), "the same network, start, data and optimizer: the activation alone differs"
    costs = {k: r.final_cost_manual for k, r in results.items()}
    assert costs["sigmoid"] > max(costs["tanh"], costs["relu"], costs["gelu"]), costs
    assert all(r.passed and r.verdict == "agree" for r in results.values()), {k: r.verdict for k, r in results.items()}


def test_sgd_vs_batch_counts_updates_per_epoch(runs):
    # 48 training examples, 20 epochs: 1 update an epoch for the batch, 48 for SGD, 6 for batches of 8.
    steps = {label: runs[f"sgd-vs-batch:{label}"][0].steps for label in ("batch", "sgd", "mini-batch")}
    assert steps == {"batch": 20, "sgd": 960, "mini-batch": 120}, f"steps {steps}"
    curves = {label: runs[f"sgd-vs-batch:{label}"][0].epoch_cost_manual for label in steps}
    assert all(len(c) == 20 for c in curves.values()), {k: len(c) for k, c in curves.items()}
    final = {label: c[-1] for label, c in curves.items()}
    assert final["sgd"] < final["mini-batch"] < final["batch"], \
        f"after 20 epochs more updates should mean lower cost: {final}"


def test_digits_softmax_puts_the_softmax_in_the_loss():
    spec = get_preset("digits-softmax").runs[""]
    assert (spec.loss, spec.output_activation, spec.activation, spec.optimizer) == \
        ("cross_entropy", "identity", "relu", "adam")
    assert "softmax lives in the loss" in get_preset("digits-softmax").description


# float32: the same runs, shorter, under float32's tolerance (rtol 1e-4, atol 1e-6). Left out:
# digits at full length (a parameter element drifts to 1.85x the tolerance at step 456), regression
# (2.weight.grad at step 120: 1.3x) and sgd-vs-batch:sgd (0.weight.grad at step 714: 1.3x, a
# saturated tanh); their whole-vector relative parameter difference stays below 1.5e-6.
FLOAT32 = [("or-gate", "", 500), ("xor", "hidden", 500), ("digits", "", 4), ("digits-softmax", "", 4),
           ("moons", "", 30), ("circles", "", 20), ("logistic", "", 20), ("svm", "", 20), ("spiral", "", 20),
           ("sgd-vs-batch", "mini-batch", 20)]


@pytest.mark.parametrize("preset,label,epochs", FLOAT32)
def test_sides_agree_in_float32(preset, label, epochs):
    from backprop_oracle.compare.lockstep.run import LockstepRun
    from backprop_oracle.compare.cli.runner import single_threaded
    spec = apply_overrides(get_preset(preset).runs[label], {"dtype": "float32", "epochs": epochs})
    with single_threaded():
        result = LockstepRun(spec).run()
    assert result.tolerance.rtol == 1e-4 and result.tolerance.atol == 1e-6
    assert result.passed, f"{preset}:{label} float32: {result.mismatch.describe()}"


# ---- overrides ----------------------------------------------------------------------------------

def test_new_optimizer_drops_the_arguments_it_does_not_take():
    moons, logistic = get_preset("moons").runs[""], get_preset("logistic").runs[""]
    spec = apply_overrides(moons, {"optimizer": "adam"})
    assert (spec.optimizer, spec.optimizer_args) == ("adam", {}), spec
    assert dropped_arguments(moons, {"optimizer": "adam"}) == ["momentum"]
    kept = apply_overrides(logistic, {"optimizer": "adam"})
    assert kept.optimizer_args == {"weight_decay": 1e-2}, "weight_decay is an argument of both optimizers"
    assert dropped_arguments(logistic, {"optimizer": "sgd"}) == [], "same optimizer: nothing dropped"


@pytest.mark.parametrize("presets,overrides,message", [
    (["or-gate"], {"batch_size": 5}, "or-gate: batch size 5 is larger than its training set of 4 examples"),
    (["moons"], {"batch_size": 401}, "moons: batch size 401 is larger than its training set of 400"),
    (["sgd-vs-batch"], {"batch_size": 8}, "sgd-vs-batch compares runs that differ only in batch_size"),
    (["sgd-vs-batch"], {"batch_size": "full"}, "overriding --batch-size would make them the same"),
    (["or-gate"], {"lr": -1.0}, "learning rate must be a positive number"),
])
def test_overrides_that_make_no_sense(presets, overrides, message):
    with pytest.raises(SpecError) as e:
        check_overrides([get_preset(p) for p in presets], overrides)
    assert message in str(e.value), str(e.value)


def test_overrides_that_make_sense_pass():
    specs = check_overrides([get_preset("moons")], {"batch_size": 400, "dtype": "float32", "epochs": 3})
    assert [(n, s.batch_size, s.dtype, s.epochs) for n, s in specs] == [("moons", 400, "float32", 3)]


def test_mnist_switches_the_digits_preset(tmp_path):
    preset = on_mnist(get_preset("digits"), tmp_path, limit=100)
    spec = preset.runs[""]
    assert (preset.name, spec.dataset, spec.dataset_args) == \
        ("digits-mnist", "mnist", {"directory": str(tmp_path), "limit": 100})
    assert (spec.hidden_sizes, spec.loss, spec.lr) == ((16, 16), "sum_squared_error", 3.0)
    with pytest.raises(SpecError, match="neither is being run"):
        use_mnist([get_preset("moons")], tmp_path)
    with pytest.raises(SpecError, match="is not a directory"):
        use_mnist([get_preset("digits")], tmp_path / "missing")
    with pytest.raises(SpecError, match="train-images-idx3-ubyte not found"):
        use_mnist([get_preset("digits")], tmp_path)


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(SpecError) as e:
        get_preset("xnor")
    assert f"choose one of: {', '.join(PRESETS)}" in str(e.value)
    assert math.isclose(get_preset("or-gate").runs[""].lr, 1.0), "or-gate stays the article's α = 1"
