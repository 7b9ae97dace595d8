"""Agreement proven at scale: hypothesis draws random experiments (depth 0-4, widths 1-32, every
activation, every loss with an output that fits it, SGD with random momentum, dampening, Nesterov
and weight decay, Adam with random betas, eps and weight decay, every schedule, zero and random
initialisation, batch sizes 1 to full, learning rates up to diverging ones, float64 and float32)
and each must agree (or diverge on both sides together): zero false alarms.

The example budget is fixed and the draws derandomised, so CI runs the same 300 float64 and 100
float32 experiments every time. A failing example is shrunk by hypothesis and printed as a runnable
ExperimentSpec with the data set it ran on.
"""
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from backprop_oracle.compare.experiments.spec import ExperimentSpec, SpecError
from backprop_oracle.compare.lockstep.run import LockstepRun
from tests.random_data import random_dataset

HIDDEN = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax"]
# loss -> (tasks it takes, output activations that fit it)
LOSS_FITS = {
    "squared_error": (["regression", "binary", "multiclass"], HIDDEN),
    "sum_squared_error": (["regression", "binary", "multiclass"], HIDDEN),
    "mse": (["regression", "binary", "multiclass"], HIDDEN),
    "bce": (["binary", "multiclass"], ["sigmoid", "softmax"]),
    "cross_entropy": (["binary", "multiclass"], ["identity"]),
    "hinge": (["binary"], ["identity", "tanh"]),
}
INITS = ["zeros", "normal", "uniform", "xavier_uniform", "xavier_normal", "he_normal", "he_uniform"]


@st.composite
def optimizers(draw):
    if draw(st.booleans()):
        args = {"betas": (draw(st.floats(0.0, 0.99)), draw(st.floats(0.9, 0.9999))),
                "eps": draw(st.sampled_from([1e-8, 1e-6, 1e-4, 1e-3]))}
        if draw(st.booleans()):
            args["weight_decay"] = draw(st.floats(0.0, 0.1))
        return "adam", args
    args = {}
    if draw(st.booleans()):
        args["momentum"] = draw(st.floats(0.01, 0.99))
        if draw(st.booleans()):
            args["nesterov"] = True
        elif draw(st.booleans()):
            args["dampening"] = draw(st.floats(0.0, 0.9))
    if draw(st.booleans()):
        args["weight_decay"] = draw(st.floats(0.0, 0.1))
    return "sgd", args


@st.composite
def schedules(draw):
    kind = draw(st.sampled_from(["constant", "step", "exponential"]))
    if kind == "step":
        return kind, {"step_size": draw(st.integers(1, 3)), "gamma": draw(st.floats(0.1, 0.9))}
    if kind == "exponential":
        return kind, {"gamma": draw(st.floats(0.5, 0.99))}
    return kind, {}


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
    optimizer, optimizer_args = draw(optimizers())
    schedule, schedule_args = draw(schedules())
    spec = ExperimentSpec(
        dataset="random",
        hidden_sizes=tuple(draw(st.lists(st.integers(1, 32), min_size=0, max_size=4))),
        activation=draw(st.sampled_from(HIDDEN)), output_activation=draw(st.sampled_from(outputs)), loss=loss,
        optimizer=optimizer, optimizer_args=optimizer_args,
        lr=draw(st.sampled_from([1e-4, 1e-3, 1e-2, 0.1, 0.5, 1.0, 3.0, 10.0, 100.0, 1e3])),
        schedule=schedule, schedule_args=schedule_args, epochs=draw(st.integers(1, 4)),
        batch_size=draw(st.one_of(st.none(), st.integers(1, n))), shuffle=draw(st.booleans()),
        init=draw(st.sampled_from(INITS)), seed=draw(st.integers(0, 2**16)), dtype=dtype)
    return spec, data


def check_agrees(spec, data):
    try:
        run = LockstepRun(spec, dataset=random_dataset(**data))
    except SpecError:      # refused before it runs (softmax over one output): not an experiment
        reject()
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


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_random_suite_would_catch_a_wrong_formula(dtype, monkeypatch):
    # The same draws, with sigmoid's derivative wrong: the check above must fail on them.
    from backprop_oracle import manual
    monkeypatch.setattr(manual.Sigmoid, "backward", lambda self, g: g * self.a)
    spec = ExperimentSpec(dataset="random", hidden_sizes=(5,), activation="sigmoid", output_activation="identity",
                          loss="mse", lr=0.1, epochs=1, dtype=dtype)
    with pytest.raises(AssertionError, match="reproduce with"):
        check_agrees(spec, {"seed": 1, "n": 8, "features": 3, "task": "regression"})
