"""The OR-gate seed (004), number by number, on both sides.

One sigmoid unit, w = [0.1, 0.6], b = 0, the ½-squared-error cost, α = 1. The seed rounds to
3 decimals, so each value is checked to that rounding; the two sides are checked against each
other to float64 precision.
"""
import numpy as np
import pytest
import torch

from backprop_oracle import manual
from backprop_oracle import torch_ref
from backprop_oracle.compare.lockstep.run import LockstepRun
from backprop_oracle.compare.experiments.presets import PRESETS
from tests.helpers import assert_close, assert_seed_value

X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
Y = np.array([[0.0], [1.0], [1.0], [1.0]])
W, B = np.array([[0.1, 0.6]]), np.array([0.0])


class Manual:
    def __init__(self):
        self.model = manual.mlp([2, 1], output_activation="sigmoid")
        self.model.load_state_dict({"0.weight": W, "0.bias": B})
        self.opt = manual.SGD(self.model.parameters(), lr=1.0)

    def forward(self, X):
        return self.model.forward(X)

    def value_and_grad(self, X, Y):
        return manual.value_and_grad(self.model, "squared_error", X, Y)

    def step(self, X, Y):
        self.opt.zero_grad()
        loss = manual.SquaredError()
        loss(self.model.forward(X), Y)
        self.model.backward(loss.backward())
        self.opt.step()

    def params(self):
        return self.model.state_dict()


class Torch:
    def __init__(self):
        self.model = torch_ref.mlp([2, 1], output_activation="sigmoid")
        self.model.load_state_dict({"0.weight": torch.tensor(W), "0.bias": torch.tensor(B)})
        self.opt = torch_ref.make_optimizer("sgd", self.model.parameters(), lr=1.0)

    def forward(self, X):
        return self.model(torch.tensor(X)).detach().numpy()

    def value_and_grad(self, X, Y):
        cost, grads = torch_ref.value_and_grad(self.model, "squared_error", torch.tensor(X), torch.tensor(Y))
        return cost, {k: v.numpy() for k, v in grads.items()}

    def step(self, X, Y):
        self.opt.zero_grad()
        torch_ref.SquaredError()(self.model(torch.tensor(X)), torch.tensor(Y)).backward()
        self.opt.step()

    def params(self):
        return {k: v.detach().numpy().copy() for k, v in self.model.state_dict().items()}


SIDES = [Manual, Torch]


@pytest.mark.parametrize("side", SIDES, ids=["manual", "torch"])
def test_first_example_alone(side):
    s = side()
    x, y = X[:1], Y[:1]
    assert_seed_value("ŷ for x = (0, 0)", s.forward(x)[0, 0], 0.5)
    loss, grads = s.value_and_grad(x, y)
    assert_seed_value("loss for x = (0, 0)", loss, 0.125)
    assert_close("∂L/∂w for x = (0, 0): the inputs are 0, so no information", grads["0.weight"], [[0.0, 0.0]])
    assert_close("∂L/∂b for x = (0, 0)", grads["0.bias"], [0.125])
    s.step(x, y)
    assert_close("b after one step with α = 1", s.params()["0.bias"], [-0.125])
    assert_seed_value("ŷ after one step", s.forward(x)[0, 0], 0.469)
    # ½ (0 - 0.46879)² = 0.10988: the article's "around 0.109" cuts the digits off rather than rounding.
    assert_seed_value("loss after one step", s.value_and_grad(x, y)[0], 0.109, truncated=True)


@pytest.mark.parametrize("side", SIDES, ids=["manual", "torch"])
def test_the_batch(side):
    s = side()
    cost, _ = s.value_and_grad(X, Y)
    assert_seed_value("batch cost at w = [0.1, 0.6], b = 0", cost, 0.089)
    s.step(X, Y)
    cost, grads = s.value_and_grad(X, Y)
    assert_seed_value("batch cost after one step", cost, 0.084)
    assert_seed_value("∂Cost/∂w1 at the second step", grads["0.weight"][0, 0], -0.044)
    assert_seed_value("∂Cost/∂w2 at the second step", grads["0.weight"][0, 1], -0.035)
    assert_seed_value("∂Cost/∂b at the second step", grads["0.bias"][0], -0.031)


def test_both_sides_agree_step_for_step():
    m, t = Manual(), Torch()
    for step in range(20):
        for name, (vm, vt) in {"cost/grad": (m.value_and_grad(X, Y), t.value_and_grad(X, Y))}.items():
            assert_close(f"cost at step {step}", vm[0], vt[0])
            for k in vm[1]:
                assert_close(f"∂Cost/∂{k} at step {step}", vm[1][k], vt[1][k])
        m.step(X, Y)
        t.step(X, Y)


@pytest.fixture(scope="module")
def lockstep():
    return LockstepRun(PRESETS["or-gate"].runs[""], name="or-gate").run()


def test_the_preset_reproduces_the_seed_and_agrees(lockstep):
    r = lockstep
    assert r.passed, r.mismatch and r.mismatch.describe()
    assert r.steps == 5000
    assert_seed_value("cost at step 1", r.step_cost_manual[0], 0.089)
    assert_seed_value("cost at step 2", r.step_cost_manual[1], 0.084)
    assert_seed_value("cost after 5000 epochs", r.final_cost_manual, 0.0005, decimals=4)
    assert r.train_accuracy_manual == r.train_accuracy_torch == 1.0, "all four points classified correctly"
    assert_close("cost curves of both sides", r.step_cost_manual, r.step_cost_torch)
    assert r.max_rel_grad_diff < 1e-10 and r.max_abs_param_diff < 1e-12
