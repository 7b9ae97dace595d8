"""The lockstep comparison finds planted mistakes and says exactly where they are."""
from dataclasses import replace

import numpy as np
import pytest

from backprop_oracle import manual
from backprop_oracle.compare.lockstep.run import LockstepRun
from backprop_oracle.compare.sides.sides import ManualSide
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
    ({"optimizer": "lion"}, "choose one of: sgd, adam, adamw, rmsprop, adagrad"),
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


# ---- flat buffers: the sides' parameters and gradients as views of one array each ----------

def test_flat_buffers_are_views_that_survive_a_rebound_array():
    import torch
    from backprop_oracle.compare.experiments.presets import get_preset
    from backprop_oracle.compare.flat import bind_flat, consecutive, keep_bound, split
    spec = get_preset("xor:hidden").runs[""]
    run = LockstepRun(spec)
    for side in run.sides:
        g, p = side.flat_grads(), side.flat_params()
        assert sum(int(np.prod(s)) for _, s in side.layout) == g.size == p.size
    assert not np.shares_memory(run.manual.flat_params(), run.torch.flat_params())
    assert not np.shares_memory(run.manual.flat_grads(), run.torch.flat_grads())
    # a manual parameter whose gradient is replaced: the buffer takes its values, the view comes back
    params = run.manual.model.parameters()
    params[0].grad = np.full(params[0].grad.shape, 7.0)
    assert (run.manual.flat_grads()[:params[0].grad.size] == 7.0).all() and consecutive([q.grad for q in params]) is not None
    # torch's zero_grad() sets gradients to None: the flat vector reads 0, then what backward leaves
    run.torch.optimizer.zero_grad()
    assert (run.torch.flat_grads() == 0).all()
    idx = np.arange(run.problem.X.shape[0])
    cost_t = run.torch.forward_backward(idx)
    run.torch.optimizer.zero_grad()
    run.torch.model(run.torch.data["train"][0]).pow(2).sum().backward()       # a fresh gradient tensor
    fresh = torch.cat([q.grad.reshape(-1) for q in run.torch.model.parameters()]).numpy().copy()
    np.testing.assert_array_equal(run.torch.flat_grads(), fresh)
    assert np.isfinite(cost_t)
    # arrays that already are consecutive views of one buffer are used as they are; others get one
    buf = np.arange(10.0)
    views = split(buf, [(2, 3), (4,)])
    assert consecutive(views) is not None and np.shares_memory(consecutive(views), buf)
    assert consecutive([views[1], views[0]]) is None and consecutive([np.zeros(2), np.zeros(3)]) is None

    class P:
        def __init__(self, a):
            self.data = a
    ps = [P(np.ones((2, 2))), P(np.zeros(3))]
    flat, vs = bind_flat(ps, "data")
    np.testing.assert_array_equal(flat, [1, 1, 1, 1, 0, 0, 0])
    assert all(p.data is v for p, v in zip(ps, vs))
    ps[1].data = np.array([5.0, 6.0, 7.0])
    keep_bound(ps, "data", vs)
    np.testing.assert_array_equal(flat, [1, 1, 1, 1, 5, 6, 7])
    assert ps[1].data is vs[1]
