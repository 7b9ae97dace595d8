"""check_function: a NumPy forward and its hand-derived backward, against torch or finite differences."""
import numpy as np
import pytest
import torch

from backprop_oracle.compare.check import CheckError, PrecisionWarning, check_function
from backprop_oracle.compare.verdict.finite_diff import numerical_vjp


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def sigmoid_backward(x, dL_dy):
    s = sigmoid(x)
    return dL_dy * s * (1 - s)


def linear(x, W, b):
    return x @ W.T + b


def linear_backward(x, W, b, dL_dy):
    return dL_dy @ W, dL_dy.T @ x, dL_dy.sum(axis=0)


def linear_torch(x, W, b):
    return x @ W.T + b


def relu(x):
    return np.maximum(x, 0)


def relu_backward(x, dL_dy):
    return dL_dy * (x > 0)


def test_sigmoid_against_torch_passes():
    r = check_function(sigmoid, sigmoid_backward, torch.sigmoid, shapes=(4, 3))
    assert r.passed, r.report()
    assert [t.diff.name for t in r.tensors] == ["y (forward)", "dL/dx"]
    assert r.reference == "torch autograd on torch.sigmoid (float64)"


def test_a_wrong_derivative_is_reported_with_both_real_values():
    seen = []

    def wrong(x, dL_dy):          # forgot the (1 - s)
        seen.append((x, dL_dy))
        return dL_dy * sigmoid(x)
    x = np.array([[0.5, -1.0, 2.0]])
    r = check_function(sigmoid, wrong, torch.sigmoid, inputs=[x])
    assert not r.passed
    d = r.mismatch.diff
    _, g = seen[0]
    s = sigmoid(x)
    assert d.name == "dL/dx"
    assert d.manual == pytest.approx((g * s)[d.index], rel=1e-15)
    assert d.torch == pytest.approx((g * s * (1 - s))[d.index], rel=1e-12)
    assert "dL/dx is wrong" in r.mismatch.reason and "f'(x)" in r.mismatch.reason


def test_three_inputs_against_torch_and_finite_differences():
    shapes = [(4, 3), (2, 3), (2,)]
    assert check_function(linear, linear_backward, linear_torch, shapes=shapes).passed
    r = check_function(linear, linear_backward, shapes=shapes)
    assert r.passed, r.report()
    assert [t.diff.name for t in r.tensors] == ["dL/dx", "dL/dW", "dL/db"]
    assert "finite differences" in r.reference
    assert all(t.diff.max_rel < 1e-7 for t in r.tensors), r.report()


@pytest.mark.parametrize("torch_f", [linear_torch, None], ids=["torch", "finite-differences"])
def test_a_bias_gradient_averaged_is_located_with_its_factor(torch_f):
    def averaged(x, W, b, dL_dy):
        return dL_dy @ W, dL_dy.T @ x, dL_dy.mean(axis=0)
    r = check_function(linear, averaged, torch_f, shapes=[(4, 3), (2, 3), (2,)])
    assert r.mismatch.diff.name == "dL/db", r.report()
    assert "while dL/dx, dL/dW are right" in r.mismatch.reason
    assert "0.25 × the reference" in r.hint and "N = 4" in r.hint


def test_finite_differences_are_accurate_to_1e_9_in_float64():
    rng = np.random.default_rng(0)
    x, g = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    num = numerical_vjp(lambda a: np.tanh(a[0]), [x], g, 0)
    exact = g * (1 - np.tanh(x) ** 2)
    assert np.max(np.abs(num.grad - exact)) < 1e-9
    assert not num.near_kink.any()


def test_an_input_at_a_kink_is_reported_not_failed():
    x = np.array([[0.0, 1.5, -2.0, 3e-7]])      # 0 and 3e-7 sit within h = 1e-6 of relu's kink
    r = check_function(relu, relu_backward, inputs=[x])
    assert r.passed, r.report()
    assert r.tensors[0].skipped_near_kink == 2
    assert any("[0, 0]" in n and "[0, 3]" in n and "kink" in n for n in r.notes), r.notes


def test_random_inputs_near_a_kink_are_drawn_again():
    draws = []

    def sampler(rng, shape):
        draws.append(1)
        x = rng.standard_normal(shape)
        if len(draws) == 1:
            x[0, 0] = 1e-9                      # the first draw lands on the kink
        return x
    r = check_function(relu, relu_backward, shapes=(2, 3), sampler=sampler, trials=1)
    assert r.passed and len(draws) == 2, r.report()
    assert r.tensors[0].skipped_near_kink == 0
    assert any("new inputs were drawn 1 time" in n for n in r.notes)


def test_float32_inputs_use_float32_tolerance_and_warn():
    x = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    with pytest.warns(PrecisionWarning, match="float32's tolerance"):
        r = check_function(sigmoid, sigmoid_backward, torch.sigmoid, inputs=[x])
    assert r.passed, r.report()
    assert r.dtype == "float32" and r.tolerance.rtol == 1e-4
    with pytest.warns(PrecisionWarning):
        assert check_function(sigmoid, sigmoid_backward, shapes=(4, 3), dtype="float32").passed


def test_bad_usage_is_a_clear_error():
    with pytest.raises(CheckError, match=r"returned 1 gradient\(s\) for 3 input\(s\)"):
        check_function(linear, lambda x, W, b, g: g @ W, linear_torch, shapes=[(4, 3), (2, 3), (2,)])
    with pytest.raises(CheckError, match=r"has shape \(3, 4\) but should have \(4, 3\).*transposed"):
        check_function(sigmoid, lambda x, g: sigmoid_backward(x, g).T, torch.sigmoid, shapes=(4, 3))
    with pytest.raises(CheckError, match=r"raised ZeroDivisionError: division by zero \(at .*test_check_function"):
        check_function(sigmoid, lambda x, g: 1 / 0, torch.sigmoid, shapes=(4, 3))
    with pytest.raises(CheckError, match=r"is NaN at \[0, 1\]"):
        check_function(sigmoid, lambda x, g: np.where(np.arange(3) == 1, np.nan, g), torch.sigmoid, shapes=(4, 3))
    with pytest.raises(CheckError, match="torch.float32.*keep it in float64"):
        check_function(sigmoid, sigmoid_backward, lambda x: torch.sigmoid(x).float(), shapes=(4, 3))
    with pytest.raises(CheckError, match="either shapes="):
        check_function(sigmoid, sigmoid_backward)
