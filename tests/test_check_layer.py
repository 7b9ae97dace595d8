"""check_layer: a manual-style layer (forward, backward into param.grad) against torch."""
import numpy as np
import pytest
import torch

from backprop_oracle import manual
from backprop_oracle import torch_ref
from backprop_oracle.compare.check import CheckError, PrecisionWarning, check_layer


class TransposedLinear(manual.Linear):
    def backward(self, dL_dy):
        self.weight.grad += self.x.T @ dL_dy          # (in, out): the transpose of dL/dW
        self.bias.grad += dL_dy.sum(axis=0)
        return dL_dy @ self.weight.data


class AveragedBias(manual.Linear):
    def backward(self, dL_dy):
        self.weight.grad += dL_dy.T @ self.x
        self.bias.grad += dL_dy.mean(axis=0)          # should be the sum over the batch
        return dL_dy @ self.weight.data


class Overwrites(manual.Linear):
    def backward(self, dL_dy):
        self.weight.grad[...] = dL_dy.T @ self.x      # = where += belongs
        self.bias.grad[...] = dL_dy.sum(axis=0)
        return dL_dy @ self.weight.data


def test_manual_linear_matches_torch_linear_and_is_left_as_it_was():
    layer = manual.Linear(3, 2, rng=np.random.default_rng(0))
    before = layer.weight.data.copy()
    r = check_layer(layer, torch.nn.Linear(3, 2), input_shape=(4, 3))
    assert r.passed, r.report()
    assert [t.diff.name for t in r.tensors][:4] == ["y (forward)", "dL/dx", "weight.grad", "bias.grad"]
    assert np.array_equal(layer.weight.data, before) and not layer.weight.grad.any()


@pytest.mark.parametrize("key", [k for k in manual.ACTIVATIONS if k != "step"])
def test_every_manual_activation_matches_its_torch_twin(key):
    r = check_layer(manual.make_activation(key), torch_ref.make_activation(key), input_shape=(5, 4))
    assert r.passed, r.report()


def test_finite_differences_need_no_torch():
    r = check_layer(manual.Linear(3, 2, rng=np.random.default_rng(0)), input_shape=(4, 3))
    assert r.passed, r.report()
    assert "finite differences" in r.reference


def test_a_function_reference_with_the_layers_parameter_names():
    ref = lambda x, p: torch.nn.functional.linear(x, p["weight"], p["bias"])
    assert check_layer(manual.Linear(3, 2), ref, input_shape=(4, 3)).passed


def test_a_transposed_weight_gradient_is_located():
    r = check_layer(TransposedLinear(3, 3), torch.nn.Linear(3, 3), input_shape=(4, 3))
    assert r.mismatch.diff.name == "weight.grad", r.report()
    assert "while dL/dx, bias.grad are right" in r.mismatch.reason
    assert "dL/dW = dL/dy^T x" in r.mismatch.reason
    assert "transpose" in r.hint


def test_a_bias_gradient_not_summed_over_the_batch_is_located():
    r = check_layer(AveragedBias(3, 2), torch.nn.Linear(3, 2), input_shape=(8, 3))
    d = r.mismatch.diff
    assert d.name == "bias.grad" and d.manual == pytest.approx(d.torch / 8), r.report()
    assert "N = 8" in r.hint


def test_a_backward_that_overwrites_grad_is_caught():
    r = check_layer(Overwrites(3, 2), torch.nn.Linear(3, 2), input_shape=(4, 3))
    assert not r.passed
    assert r.mismatch.diff.name == "weight.grad after a 2nd backward"
    assert "param.grad +=" in r.mismatch.reason


def test_parameter_names_and_shapes_must_match_the_torch_module():
    class MyLinear(manual.Module):
        def __init__(self):
            super().__init__()
            self.W = self.register_parameter("W", np.zeros((2, 3)))
            self.b = self.register_parameter("b", np.zeros(2))

        def forward(self, x):
            self.x = x
            return x @ self.W.data.T + self.b.data

        def backward(self, dL_dy):
            self.W.grad += dL_dy.T @ self.x
            self.b.grad += dL_dy.sum(axis=0)
            return dL_dy @ self.W.data
    with pytest.raises(CheckError, match="no parameter for W, b; its parameters are weight, bias: pass param_map"):
        check_layer(MyLinear(), torch.nn.Linear(3, 2), input_shape=(4, 3))
    assert check_layer(MyLinear(), torch.nn.Linear(3, 2), input_shape=(4, 3),
                       param_map={"W": "weight", "b": "bias"}).passed
    with pytest.raises(CheckError, match=r"'W' has shape \(2, 3\) but the torch module's 'weight' has \(3, 2\)"):
        check_layer(MyLinear(), torch.nn.Linear(2, 3), input_shape=(4, 3), param_map={"W": "weight", "b": "bias"})
    with pytest.raises(CheckError, match="parameters your layer lacks: bias"):
        check_layer(MyLinear(), torch.nn.Linear(3, 2), input_shape=(4, 3), param_map={"W": "weight", "b": "weight"})


def test_a_backward_returning_nothing_is_a_clear_error():
    class NoReturn(manual.Linear):
        def backward(self, dL_dy):
            super().backward(dL_dy)
    with pytest.raises(CheckError, match="dL/dx returned by .*backward is None.*must return dL/dx"):
        check_layer(NoReturn(3, 2), torch.nn.Linear(3, 2), input_shape=(4, 3))


def test_a_float32_layer_uses_float32_tolerance_and_warns():
    layer = manual.Linear(3, 2, dtype=np.float32)
    with pytest.warns(PrecisionWarning):
        r = check_layer(layer, torch.nn.Linear(3, 2), input_shape=(4, 3))
    assert r.passed and r.dtype == "float32", r.report()


# ---- layers that keep their parameters as plain NumPy arrays -----------------------------------

class PlainLinear:
    """y = x W^T + b with W, b plain arrays and the gradients in dW, db (the course notes' style)."""

    def __init__(self, scale_dW=1.0, mean_db=False):
        rng = np.random.default_rng(0)
        self.W, self.b = rng.standard_normal((2, 3)), np.zeros(2)
        self.scale_dW, self.mean_db = scale_dW, mean_db

    def forward(self, x):
        self.x = x
        return x @ self.W.T + self.b

    def backward(self, dy):
        self.dW = dy.T @ self.x * self.scale_dW
        self.db = dy.mean(0) if self.mean_db else dy.sum(0)
        return dy @ self.W


def test_plain_array_parameters_are_found_and_a_wrong_gradient_fails():
    r = check_layer(PlainLinear(scale_dW=1000, mean_db=True), None, input_shape=(4, 3))
    assert not r.passed, r.report()
    names = {t.diff.name for t in r.tensors}
    assert {"W.grad", "b.grad"} <= names, names
    assert any("W (gradient in .dW), b (gradient in .db)" in n for n in r.notes), r.notes
    r = check_layer(PlainLinear(scale_dW=1000, mean_db=True), torch.nn.Linear(3, 2), input_shape=(4, 3),
                    param_map={"W": "weight", "b": "bias"})
    assert not r.passed and r.mismatch.diff.name in ("W.grad", "b.grad"), r.report()


def test_a_correct_plain_layer_passes_against_torch_and_finite_differences():
    assert check_layer(PlainLinear(), torch.nn.Linear(3, 2), input_shape=(4, 3),
                       param_map={"W": "weight", "b": "bias"}).passed
    assert check_layer(PlainLinear(), None, input_shape=(4, 3)).passed


def test_cs231n_params_and_grads_dicts_are_found():
    class Affine:
        def __init__(self):
            self.params, self.grads = {"W": np.ones((2, 3)), "b": np.zeros(2)}, {}

        def forward(self, x):
            self.x = x
            return x @ self.params["W"].T + self.params["b"]

        def backward(self, dy):
            self.grads["W"], self.grads["b"] = dy.T @ self.x * 2, dy.sum(0)
            return dy @ self.params["W"]
    r = check_layer(Affine(), None, input_shape=(4, 3))
    assert not r.passed and r.mismatch.diff.name == "W.grad", r.report()


def test_a_layer_whose_gradients_cannot_be_found_is_refused_not_passed():
    class Hidden(PlainLinear):
        def backward(self, dy):
            self.gradient_of_W = dy.T @ self.x
            return dy @ self.W
    with pytest.raises(CheckError, match=r"holds the array\(s\) W, b but check_layer found no gradient"):
        check_layer(Hidden(), None, input_shape=(4, 3))
    with pytest.raises(CheckError, match="no gradient"):
        check_layer(Hidden(), torch.nn.Linear(3, 2), input_shape=(4, 3), param_map={"W": "weight", "b": "bias"})
    # Named by the user, the gradient is found.
    r = check_layer(Hidden(), None, input_shape=(4, 3), params={"W": "gradient_of_W"})
    assert r.passed and [t.diff.name for t in r.tensors if t.diff.name.endswith(".grad")] == ["W.grad"], r.report()


def test_a_transposed_plain_gradient_is_a_failed_check_that_says_so():
    class Transposed(PlainLinear):
        def backward(self, dy):
            self.dW, self.db = self.x.T @ dy, dy.sum(0)       # (in, out): the transpose of W's shape
            return dy @ self.W
    r = check_layer(Transposed(), None, input_shape=(4, 3))
    assert not r.passed and r.mismatch.diff.name == "W.grad", r.report()
    assert "looks transposed (its transpose has the right values)" in r.mismatch.reason
