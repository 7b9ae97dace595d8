"""The lockstep comparison finds planted mistakes and says exactly where they are."""
from dataclasses import replace

import numpy as np
import pytest

from backprop_oracle import manual
from backprop_oracle.compare.lockstep.run import LockstepRun
from backprop_oracle.compare.lockstep.sides import ManualSide
from backprop_oracle.compare.experiments.spec import ExperimentSpec, SpecError

SPEC = ExperimentSpec(dataset="xor", hidden_sizes=(3,), activation="sigmoid", output_activation="sigmoid",
                      loss="squared_error", optimizer="sgd", lr=0.5, epochs=3, seed=1)


def planted(cls, **methods):
    """A ManualSide whose model uses a subclass of ``cls`` with the given methods replaced."""
    Wrong = type(f"Wrong{cls.__name__}", (cls,), methods)

    class Side(ManualSide):
        def __init__(self, spec, sizes, state):
            super().__init__(spec, sizes, state)
            for i, m in enumerate(self.model.modules):
                if type(m) is cls:
                    self.model.modules[i] = Wrong.__new__(Wrong)
                    self.model.modules[i].__dict__.update(m.__dict__)
    return Side


def run(spec=SPEC, side=None):
    return LockstepRun(spec, manual_side=side).run()


def test_correct_implementation_agrees():
    r = run()
    assert r.passed, r.mismatch and r.mismatch.describe()
    assert r.steps == 3 and r.epochs == 3


def test_wrong_activation_derivative_is_named():
    # sigmoid'(z) written as s instead of s (1 - s)
    r = run(side=planted(manual.Sigmoid, backward=lambda self, g: g * self.a))
    mm = r.mismatch
    assert not r.passed and mm.step == 1 and mm.stage == "backward"
    assert mm.layer == 2 and mm.module == 2, mm.describe()           # the output layer is checked first
    assert mm.diff.name.startswith("dL/dz_2"), mm.describe()
    assert "activation derivative of layer 2 (sigmoid" in mm.reason


def test_wrong_hidden_activation_only_is_located_in_layer_1():
    spec = replace(SPEC, activation="tanh")
    r = run(spec, side=planted(manual.Tanh, backward=lambda self, g: g * (1 - self.a)))
    assert r.mismatch.layer == 1 and r.mismatch.diff.name.startswith("dL/dz_1"), r.mismatch.describe()
    assert "activation derivative of layer 1 (tanh" in r.mismatch.reason
    assert "dL/da_1 (gradient at module 1's output, tanh)" in r.mismatch.agreed


def test_missing_transpose_in_linear_backward_is_named():
    def backward(self, g):
        self.weight.grad += g.T @ self.x
        self.bias.grad += g.sum(0)
        W = self.weight.data
        return g @ (W.T if W.shape[0] == W.shape[1] else W)     # dL/dx = g W^T: the transpose slipped in
    spec = replace(SPEC, hidden_sizes=(3, 3))                   # layer 2's W is 3×3, so shapes still fit
    r = run(spec, side=planted(manual.Linear, backward=backward))
    assert r.mismatch.diff.name.startswith("dL/da_1"), r.mismatch.describe()
    assert "dL/dz_2 (gradient at module 2's output, linear)" in r.mismatch.agreed
    assert "linear layer's input gradient in layer 2" in r.mismatch.reason


def test_bias_gradient_not_summed_over_the_batch_is_named():
    def backward(self, g):
        self.weight.grad += g.T @ self.x
        self.bias.grad += g[0]
        return g @ self.weight.data
    r = run(side=planted(manual.Linear, backward=backward))
    assert r.mismatch.diff.name.startswith("dL/db_2"), r.mismatch.describe()
    assert "dL/db = sum over the batch" in r.mismatch.reason


def test_loss_gradient_without_1_over_n_is_named():
    r = run(side=_with_loss_grad(lambda input, target: input - target))
    assert r.mismatch.diff.name.startswith("dL/da_2"), r.mismatch.describe()
    assert "loss derivative of squared_error" in r.mismatch.reason
    i = r.mismatch.diff.index
    assert r.mismatch.diff.manual == pytest.approx(4 * r.mismatch.diff.torch), "off by N = 4"
    assert i is not None


def _with_loss_grad(grad):
    class Side(ManualSide):
        def __init__(self, spec, sizes, state):
            super().__init__(spec, sizes, state)
            self.loss.grad = grad
    return Side


def test_wrong_optimizer_rule_is_an_update_mismatch():
    class Side(ManualSide):
        def step(self):
            for p in self.model.parameters():
                p.data -= 2 * self.optimizer.lr * p.grad
    r = run(side=Side)
    assert r.mismatch.stage == "update" and r.mismatch.step == 1
    assert "sgd update rule" in r.mismatch.reason


def test_float32_agrees_within_its_tolerance():
    r = run(replace(SPEC, dtype="float32", epochs=50))
    assert r.passed, r.mismatch and r.mismatch.describe()
    assert r.tolerance.rtol == 1e-4


def test_batch_order_is_the_same_on_both_sides_and_seeded():
    spec = replace(SPEC, dataset="moons", dataset_args={"n_samples": 60}, batch_size=7, epochs=2)
    a, b = run(spec), run(spec)
    assert a.passed and a.steps == 2 * int(np.ceil(48 / 7))
    assert a.step_cost_manual == b.step_cost_manual, "the same seed must give the same run"
    c = run(replace(spec, seed=2))
    assert c.step_cost_manual != a.step_cost_manual


@pytest.mark.parametrize("change,message", [
    ({"loss": "cross_entropy", "output_activation": "softmax"}, "applied twice"),
    ({"loss": "bce", "output_activation": "identity"}, "bce takes probabilities"),
    ({"output_activation": "step"}, "no useful derivative"),
    ({"lr": -1.0}, "learning rate must be a positive"),
    ({"batch_size": 0}, "batch size must be a positive integer"),
    ({"optimizer": "rmsprop"}, "choose one of: sgd, adam"),
])
def test_specs_that_make_no_sense_are_rejected(change, message):
    with pytest.raises(SpecError, match=message):
        replace(SPEC, **change).validate()


def test_float32_rounding_drift_is_proven_and_resynchronised():
    """In float32 a long regression run drifts past the tolerance through rounding alone: torch,
    given the manual side's parameters, computes the same gradients, so the run goes on."""
    sine = ExperimentSpec(dataset="sine", hidden_sizes=(16,), activation="tanh", output_activation="identity",
                          loss="mse", optimizer="sgd", lr=0.1, optimizer_args={"momentum": 0.9},
                          batch_size=32, epochs=100, seed=0, dtype="float32")
    r = run(sine)
    assert r.passed, r.mismatch and r.mismatch.describe()
    assert r.drifts, "expected at least one proven drift in this float32 run"
    assert r.drifts[0].stage == "drift" and r.drifts[0].step > 1
    assert "not a formula" in r.drifts[0].reason


def test_a_mistake_that_appears_late_is_not_taken_for_drift():
    calls = {"n": 0}

    def backward(self, g):
        calls["n"] += 1
        wrong = calls["n"] > 10                      # correct for the first steps, then wrong
        return g * self.a * (1 - self.a) * (1.5 if wrong else 1.0)
    r = run(replace(SPEC, epochs=20), side=planted(manual.Sigmoid, backward=backward))
    assert not r.passed and r.mismatch.stage == "backward", r.mismatch.describe()
    assert r.mismatch.step > 1 and not r.drifts
    assert "activation derivative" in r.mismatch.reason
