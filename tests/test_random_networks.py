"""Agreement proven at scale: hypothesis draws random experiments (depth 0-4, widths 1-32, every
activation, every loss with an output that fits it, every optimizer with random arguments (SGD's
momentum, dampening, Nesterov and weight decay, Adam's and AdamW's betas, eps, amsgrad and weight
decay, RMSprop's alpha, centering and momentum, Adagrad's lr_decay and accumulator), every
schedule (onecycle compared at every step, sequential chains of the others), every initialiser, batch sizes 1 to full, learning rates up to diverging ones, float64 and float32)
and each must agree (or diverge on both sides together): zero false alarms.

The example budget is fixed and the draws derandomised, so CI runs the same 300 float64 and 100
float32 experiments every time. A failing example is shrunk by hypothesis and printed as a runnable
ExperimentSpec with the data set it ran on.

Small CNNs and normalised MLPs are drawn as layers lists too (convolutions with random stride,
padding, dilation and groups, max- and average-pools, batch and layer norms, dropout, every
activation): 40 in float64, 25 in float32, each agreeing in lockstep with no false alarm.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from backprop_oracle import manual
from backprop_oracle.compare.data.datasets import DataError
from backprop_oracle.compare.data.targets import encode_targets
from backprop_oracle.compare.experiments.spec import ExperimentSpec, SpecError
from backprop_oracle.compare.interactive.threads import single_threaded
from backprop_oracle.compare.lockstep.run import LockstepRun
from tests.random_data import random_dataset

def _fits(loss, output):
    try:
        ExperimentSpec(hidden_sizes=(2,), output_activation=output, loss=loss).validate()
        return True
    except SpecError:
        return False


def _takes(loss, task):
    labels = np.array([0, 1, 2, 1]) if task == "multiclass" else np.array([0, 1, 0, 1])
    try:
        encode_targets(np.ones((4, 2)) if task == "regression" else labels, loss, 3 if task == "multiclass" else 2)
        return True
    except DataError:
        return False


# Every registry key is drawn: a new activation or loss is in the draws as soon as it is registered.
HIDDEN = [k for k in manual.ACTIVATIONS if k != "step"]
# loss -> (tasks it takes, output activations that fit it), as the spec and the target encoding decide
LOSS_FITS = {loss: ([t for t in ("regression", "binary", "multiclass") if _takes(loss, t)],
                    [a for a in HIDDEN if _fits(loss, a)]) for loss in manual.LOSSES}


@st.composite
def sgd_args(draw):
    args = {}
    if draw(st.booleans()):
        args["momentum"] = draw(st.floats(0.01, 0.99))
        if draw(st.booleans()):
            args["nesterov"] = True
        elif draw(st.booleans()):
            args["dampening"] = draw(st.floats(0.0, 0.9))
    if draw(st.booleans()):
        args["weight_decay"] = draw(st.floats(0.0, 0.1))
    return args


@st.composite
def adam_args(draw):
    args = {"betas": (draw(st.floats(0.0, 0.99)), draw(st.floats(0.9, 0.9999))),
            "eps": draw(st.sampled_from([1e-8, 1e-6, 1e-4, 1e-3])), "amsgrad": draw(st.booleans())}
    if draw(st.booleans()):
        args["weight_decay"] = draw(st.floats(0.0, 0.1))
    return args


@st.composite
def rmsprop_args(draw):
    args = {"alpha": draw(st.floats(0.5, 0.999)), "eps": draw(st.sampled_from([1e-8, 1e-6, 1e-3])),
            "centered": draw(st.booleans())}
    if draw(st.booleans()):
        args["momentum"] = draw(st.floats(0.0, 0.95))
    if draw(st.booleans()):
        args["weight_decay"] = draw(st.floats(0.0, 0.1))
    return args


@st.composite
def adagrad_args(draw):
    return {"lr_decay": draw(st.sampled_from([0.0, 0.01, 0.5])),
            "initial_accumulator_value": draw(st.sampled_from([0.0, 0.1, 1.0])),
            "weight_decay": draw(st.sampled_from([0.0, 0.05])), "eps": draw(st.sampled_from([1e-10, 1e-6]))}


# Every registry key is drawn (test_every_key_is_drawn): a new optimizer, schedule or initialiser
# joins the draws by adding its arguments' strategy here.
OPTIMIZER_ARGS = {"sgd": sgd_args(), "adam": adam_args(), "adamw": adam_args(), "rmsprop": rmsprop_args(),
                  "adagrad": adagrad_args()}


@st.composite
def epoch_schedule(draw, kind):
    """One per-epoch schedule's arguments (also a step of a sequential one)."""
    if kind == "step":
        return {"step_size": draw(st.integers(1, 3)), "gamma": draw(st.floats(0.1, 0.9))}
    if kind == "exponential":
        return {"gamma": draw(st.floats(0.5, 0.99))}
    if kind == "multistep":
        return {"milestones": sorted(draw(st.sets(st.integers(1, 4), min_size=1, max_size=3))),
                "gamma": draw(st.floats(0.1, 0.9))}
    if kind == "cosine":
        return {"T_max": draw(st.integers(1, 4)), "eta_min": draw(st.sampled_from([0.0, 1e-4]))}
    if kind == "linear":
        return {"start_factor": draw(st.floats(0.05, 1.0)), "end_factor": draw(st.floats(0.5, 1.0)),
                "total_iters": draw(st.integers(1, 3))}
    return {}


EPOCH_SCHEDULES = ["constant", "step", "exponential", "multistep", "cosine", "linear"]


@st.composite
def onecycle_args(draw):
    return {"pct_start": draw(st.floats(0.1, 0.9)), "anneal_strategy": draw(st.sampled_from(["cos", "linear"])),
            "three_phase": draw(st.booleans()), "cycle_momentum": draw(st.booleans()),
            "div_factor": draw(st.sampled_from([25.0, 5.0]))}


@st.composite
def sequential_args(draw):
    kinds = draw(st.lists(st.sampled_from(EPOCH_SCHEDULES), min_size=2, max_size=3))
    return {"schedulers": [{"schedule": k, **draw(epoch_schedule(k))} for k in kinds],
            "milestones": sorted(draw(st.sets(st.integers(1, 3), min_size=len(kinds) - 1, max_size=len(kinds) - 1)))}


SCHEDULE_ARGS = {**{k: epoch_schedule(k) for k in EPOCH_SCHEDULES}, "onecycle": onecycle_args(),
                 "sequential": sequential_args()}


@st.composite
def kaiming_args(draw):
    nonlinearity = draw(st.sampled_from(["relu", "leaky_relu", "tanh", "linear", "sigmoid", "selu"]))
    args = {"mode": draw(st.sampled_from(["fan_in", "fan_out"])), "nonlinearity": nonlinearity}
    if nonlinearity == "leaky_relu":
        args["a"] = draw(st.sampled_from([0.0, 0.01, 0.2]))
    return args


INIT_ARGS = {"zeros": st.just({}), "normal": st.just({}), "uniform": st.just({}), "xavier_uniform": st.just({}),
             "xavier_normal": st.just({}), "he_normal": st.just({}), "he_uniform": st.just({}),
             "kaiming_uniform": kaiming_args(), "kaiming_normal": kaiming_args(),
             "orthogonal": st.builds(dict, gain=st.sampled_from([1.0, 0.5, 2.0])),
             "trunc_normal": st.builds(dict, std=st.sampled_from([0.02, 0.5, 1.0]))}


@st.composite
def drawn(draw, table):
    """A key of ``table`` and the arguments drawn for it."""
    name = draw(st.sampled_from(sorted(table)))
    return name, draw(table[name])


def test_every_key_is_drawn():
    from backprop_oracle import manual
    for what, table, registry in (("optimizer", OPTIMIZER_ARGS, manual.OPTIMIZERS),
                                  ("schedule", SCHEDULE_ARGS, manual.SCHEDULERS),
                                  ("initialiser", INIT_ARGS, manual.INITIALISERS)):
        assert set(table) == set(registry), (f"{what}s drawn {sorted(table)}, registered {sorted(registry)}: "
                                             "give every key a strategy of its arguments")


@st.composite
def experiments(draw, dtype):
    """(ExperimentSpec, random_dataset keyword arguments)."""
    loss = draw(st.sampled_from(list(LOSS_FITS)))
    tasks, outputs = LOSS_FITS[loss]
    task = draw(st.sampled_from(tasks))
    n = draw(st.integers(3, 24))
    data = {"seed": draw(st.integers(0, 2**16)), "n": n, "features": draw(st.integers(1, 6)), "task": task,
            "classes": draw(st.integers(3, 5)), "outputs": draw(st.integers(1, 4)),
            "scale": draw(st.sampled_from([0.1, 1.0, 5.0]))}
    optimizer, optimizer_args = draw(drawn(OPTIMIZER_ARGS))
    schedule, schedule_args = draw(drawn(SCHEDULE_ARGS))
    if schedule == "onecycle" and optimizer == "adagrad":     # torch: Adagrad has no momentum to cycle
        schedule_args = dict(schedule_args, cycle_momentum=False)
    init, init_args = draw(drawn(INIT_ARGS))
    spec = ExperimentSpec(
        dataset="random",
        hidden_sizes=tuple(draw(st.lists(st.integers(1, 32), min_size=0, max_size=4))),
        activation=draw(st.sampled_from(HIDDEN)), output_activation=draw(st.sampled_from(outputs)), loss=loss,
        optimizer=optimizer, optimizer_args=optimizer_args,
        lr=draw(st.sampled_from([1e-4, 1e-3, 1e-2, 0.1, 0.5, 1.0, 3.0, 10.0, 100.0, 1e3])),
        schedule=schedule, schedule_args=schedule_args, epochs=draw(st.integers(1, 4)),
        batch_size=draw(st.one_of(st.none(), st.integers(1, n))), shuffle=draw(st.booleans()),
        init=init, init_args=init_args, seed=draw(st.integers(0, 2**16)), dtype=dtype)
    return spec, data


def check_agrees(spec, data):
    try:
        run = LockstepRun(spec, dataset=random_dataset(**data))
    except SpecError:      # refused before it runs (softmax over one output): not an experiment
        reject()
    with single_threaded():        # as the command line runs: tiny networks are fastest on one thread
        r = run.run()
    assert r.passed, (f"the sides disagree on a random network (a false alarm, where the formulas are right):\n{r.mismatch.describe()}\n\nreproduce with:\n"
                      f"from backprop_oracle.compare.lockstep.run import LockstepRun\nfrom backprop_oracle import ExperimentSpec\n"
                      f"from tests.random_data import random_dataset\n"
                      f"LockstepRun({spec!r}, dataset=random_dataset(**{data!r})).run()")
    for d in r.drifts:       # every resync is proven rounding, never a wrong node
        assert d.stage == "drift" or not d.proof.wrong, d.describe()


BUDGET = dict(deadline=None, derandomize=True, database=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(max_examples=300, **BUDGET)
@given(experiments("float64"))
def test_random_float64_networks_agree(experiment):
    check_agrees(*experiment)


@settings(max_examples=100, **BUDGET)
@given(experiments("float32"))
def test_random_float32_networks_agree(experiment):
    check_agrees(*experiment)


def test_the_draws_cover_every_key():
    # Each activation is drawn for the hidden layers, each loss with the outputs and tasks that fit it.
    assert set(HIDDEN) == set(manual.ACTIVATIONS) - {"step"}
    for loss, (tasks, outputs) in LOSS_FITS.items():
        assert tasks and outputs, f"{loss}: no task ({tasks}) or output activation ({outputs}) fits it"
    assert LOSS_FITS["nll"][1] == ["log_softmax"] and LOSS_FITS["bce_with_logits"][1] == ["identity"]
    assert LOSS_FITS["huber"][0] == ["regression", "binary", "multiclass"] and LOSS_FITS["hinge"][0] == ["binary"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_random_suite_would_catch_a_wrong_formula(dtype, monkeypatch):
    # The same draws, with sigmoid's derivative wrong: the check above must fail on them.
    from backprop_oracle import manual
    monkeypatch.setattr(manual.Sigmoid, "backward", lambda self, g: g * self.a)
    spec = ExperimentSpec(dataset="random", hidden_sizes=(5,), activation="sigmoid", output_activation="identity",
                          loss="mse", lr=0.1, epochs=1, dtype=dtype)
    with pytest.raises(AssertionError, match="reproduce with"):
        check_agrees(spec, {"seed": 1, "n": 8, "features": 3, "task": "regression"})


# ---------------------------------------------------------------- small CNNs and normalised MLPs

@st.composite
def conv_layer(draw, channels):
    """conv(out, k, stride, padding, dilation, groups) with groups dividing both channel counts."""
    groups = draw(st.sampled_from([g for g in (1, 2, 3) if channels % g == 0]))
    out = groups * draw(st.integers(1, 3))
    k = draw(st.integers(1, 3))
    return (f"conv({out}, {k}, stride={draw(st.integers(1, 2))}, padding={draw(st.integers(0, 2))}, "
            f"dilation={draw(st.integers(1, 2))}, groups={groups})"), out


@st.composite
def pool_layer(draw):
    k = draw(st.integers(1, 3))
    stride, padding = draw(st.integers(1, 2)), draw(st.integers(0, k // 2))
    if draw(st.booleans()):
        return f"maxpool({k}, stride={stride}, padding={padding}, dilation={draw(st.integers(1, 2))})"
    return (f"avgpool({k}, stride={stride}, padding={padding}, ceil_mode={draw(st.booleans())}, "
            f"count_include_pad={draw(st.booleans())})")


@st.composite
def layer_lists(draw):
    """(layers, input_shape): 0-2 convolution blocks (conv, maybe batchnorm, an activation, maybe
    a pool), flatten, a hidden linear layer with maybe a batchnorm or layernorm and a dropout,
    and the output linear layer (its size written by the caller)."""
    channels = draw(st.integers(1, 3))
    shape = (channels, draw(st.integers(3, 7)), draw(st.integers(3, 7)))
    layers = []
    for _ in range(draw(st.integers(0, 2))):
        text, channels = draw(conv_layer(channels))
        layers.append(text)
        if draw(st.booleans()):
            layers.append("batchnorm")
        layers.append(draw(st.sampled_from(HIDDEN)))
        if draw(st.booleans()):
            layers.append(draw(pool_layer()))
    layers.append("flatten")
    if draw(st.booleans()):
        layers.append(f"dropout({draw(st.sampled_from([0.0, 0.25, 0.5]))})")
    layers.append(f"linear({draw(st.integers(1, 12))})")
    norm = draw(st.sampled_from(["", "batchnorm", "layernorm"]))
    if norm:
        layers.append(norm)
    layers.append(draw(st.sampled_from(HIDDEN)))
    if draw(st.booleans()):
        layers.append(f"dropout({draw(st.sampled_from([0.1, 0.5]))})")
    return layers, shape


@st.composite
def cnn_experiments(draw, dtype):
    """(ExperimentSpec, random_dataset keyword arguments) of a small CNN or normalised MLP on
    images of the drawn shape; every batch holds 2 examples or more (batch norm refuses 1)."""
    layers, shape = draw(layer_lists())
    n = draw(st.integers(4, 16))
    batch = draw(st.one_of(st.none(), st.integers(2, n)))
    if batch is not None and n % batch == 1:
        batch = n
    task = draw(st.sampled_from(["regression", "multiclass"]))
    classes, outputs = draw(st.integers(3, 4)), draw(st.integers(1, 3))
    data = {"seed": draw(st.integers(0, 2**16)), "n": n, "features": int(np.prod(shape)), "task": task,
            "classes": classes, "outputs": outputs, "scale": draw(st.sampled_from([0.5, 1.0, 3.0]))}
    optimizer, optimizer_args = draw(drawn({k: OPTIMIZER_ARGS[k] for k in ("sgd", "adam")}))
    spec = ExperimentSpec(
        dataset="random", layers=layers + [f"linear({classes if task == 'multiclass' else outputs})"],
        input_shape=shape, loss="cross_entropy" if task == "multiclass" else "mse", optimizer=optimizer,
        optimizer_args=optimizer_args, lr=draw(st.sampled_from([1e-3, 1e-2, 0.1, 0.5])), epochs=draw(st.integers(1, 2)),
        batch_size=batch, init=draw(st.sampled_from(["kaiming_uniform", "xavier_uniform", "orthogonal"])),
        seed=draw(st.integers(0, 2**16)), dtype=dtype)
    return spec, data


@settings(max_examples=40, **BUDGET)
@given(cnn_experiments("float64"))
def test_random_float64_cnns_agree(experiment):
    check_agrees(*experiment)


@settings(max_examples=25, **BUDGET)
@given(cnn_experiments("float32"))
def test_random_float32_cnns_agree(experiment):
    check_agrees(*experiment)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_cnn_draws_would_catch_a_wrong_formula(dtype, monkeypatch):
    # a batch norm whose dL/dx forgets the path through the mean: the check above must fail
    from backprop_oracle.manual import normalization
    monkeypatch.setattr(normalization, "normalize_backward", lambda g, x_hat, inv_std, axes: g * inv_std)
    spec = ExperimentSpec(dataset="random", layers="conv(2, 3, padding=1) batchnorm relu maxpool(2) flatten linear(2)",
                          input_shape=(1, 4, 4), loss="mse", lr=0.1, epochs=1, dtype=dtype)
    with pytest.raises(AssertionError, match="reproduce with"):
        check_agrees(spec, {"seed": 1, "n": 8, "features": 16, "task": "regression", "outputs": 2})


def test_a_max_pool_window_wholly_in_its_padding_is_refused():
    # drawn once: dilation 2 and padding 1 on a 1 x 1 input leave a window that sees only padding;
    # torch computes -inf there and its backward writes outside the input (the process crashed)
    from backprop_oracle.compare.network.layers import resolve
    with pytest.raises(SpecError, match=r"layer 2 'maxpool\(2, stride=2, padding=1, dilation=2\)' gets "
                                        r"\(N, 3, 1, 1\), and a window of it lies wholly in its padding"):
        resolve(("conv(3, 7)", "maxpool(2, stride=2, padding=1, dilation=2)", "flatten", "linear(2)"), (1, 7, 7), 2)
    assert resolve(("conv(3, 5)", "maxpool(2, stride=2, padding=1, dilation=2)", "flatten", "linear(2)"),
                   (1, 7, 7), 2).shapes[2] == (3, 2, 2)
