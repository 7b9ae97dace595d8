"""Every loss, value and gradient, against torch in float64, and the reductions the docstrings state."""
import numpy as np
import pytest
import torch

from backprop_oracle import manual
from backprop_oracle import torch_ref
from tests.helpers import assert_close

rng = np.random.default_rng(1)
N, K = 6, 3
SCORES = rng.normal(size=(N, K))
PROBS = 1 / (1 + np.exp(-SCORES))
REAL_TARGETS = rng.normal(size=(N, K))
BINARY_TARGETS = rng.integers(0, 2, size=(N, K)).astype(float)
CLASSES = rng.integers(0, K, size=N)
ONE_HOT = np.eye(K)[CLASSES]
SOFT = rng.dirichlet(np.ones(K), size=N)
SIGNS = np.where(rng.random((N, 1)) < 0.5, -1.0, 1.0)
MARGIN_SCORES = rng.normal(size=(N, 1)) * 2

CASES = {
    "squared_error": (SCORES, REAL_TARGETS),
    "sum_squared_error": (SCORES, REAL_TARGETS),
    "mse": (SCORES, REAL_TARGETS),
    "bce": (PROBS, BINARY_TARGETS),
    "cross_entropy": (SCORES, CLASSES),
    "hinge": (MARGIN_SCORES, SIGNS),
}


def both(name, input, target):
    m = manual.make_loss(name)
    cost = m(input.copy(), target)
    grad = m.backward()
    xt = torch.tensor(input, requires_grad=True)
    tt = torch.tensor(target)
    ct = torch_ref.make_loss(name)(xt, tt)
    ct.backward()
    return cost, grad, ct, xt.grad


@pytest.mark.parametrize("name", list(CASES))
def test_loss_matches_torch(name):
    cost, grad, ct, gt = both(name, *CASES[name])
    assert_close(f"{name} cost", cost, ct)
    assert_close(f"{name} dCost/dinput", grad, gt)


@pytest.mark.parametrize("target", [ONE_HOT, SOFT], ids=["one-hot", "probabilities"])
def test_cross_entropy_with_probability_targets(target):
    cost, grad, ct, gt = both("cross_entropy", SCORES, target)
    assert_close("cross_entropy cost", cost, ct)
    assert_close("cross_entropy dCost/dz", grad, gt)


def test_cross_entropy_gradient_is_p_minus_y_over_n():
    m = manual.CrossEntropyLoss()
    m(SCORES, CLASSES)
    p = np.exp(SCORES) / np.exp(SCORES).sum(1, keepdims=True)
    assert_close("cross_entropy dCost/dz", m.backward(), (p - ONE_HOT) / N)


def test_reductions_as_documented():
    y_hat, y = np.array([[1.0, 2.0], [3.0, 5.0]]), np.zeros((2, 2))
    # squares: 1, 4, 9, 25; per-example sums 5 and 34
    assert_close("squared_error = mean over examples of ½Σ", manual.SquaredError()(y_hat, y), (2.5 + 17) / 2)
    assert_close("sum_squared_error = mean over examples of Σ", manual.SumSquaredError()(y_hat, y), (5 + 34) / 2)
    assert_close("mse = mean over elements", manual.MSELoss()(y_hat, y), 39 / 4)


def test_bce_at_saturated_probabilities_stays_finite_like_torch():
    p, y = np.array([[0.0], [1.0], [0.5]]), np.array([[1.0], [0.0], [1.0]])
    cost, grad, ct, gt = both("bce", p, y)
    assert np.isfinite(cost), "bce at p = 0 or 1 should be clamped, as torch does"
    assert_close("bce cost at p in {0, 1}", cost, ct)
    assert_close("bce gradient at p in {0, 1}", grad, gt)


def test_hinge_subgradient_at_the_margin_is_zero():
    s, y = np.array([[1.0], [0.5]]), np.array([[1.0], [1.0]])   # first sits exactly on the margin
    _, grad, _, gt = both("hinge", s, y)
    assert_close("hinge dCost/ds at the margin", grad, gt)
    assert grad[0, 0] == 0.0


@pytest.mark.parametrize("name,input,target,message", [
    ("mse", SCORES, SCORES[:, :2], "same shape"),
    ("bce", SCORES, BINARY_TARGETS, "probabilities in \\[0, 1\\]"),
    ("cross_entropy", SCORES, CLASSES + 5, "class indices must lie in"),
    ("cross_entropy", SCORES, CLASSES.astype(float), "integer class indices"),
    ("hinge", MARGIN_SCORES, (SIGNS > 0).astype(float), "-1 or \\+1"),
])
def test_bad_targets_get_clear_errors(name, input, target, message):
    with pytest.raises(ValueError, match=message):
        manual.make_loss(name)(input, target)


def test_unknown_loss_lists_the_valid_ones():
    with pytest.raises(ValueError, match="choose one of: squared_error, sum_squared_error, mse"):
        manual.make_loss("focal")
