"""Every activation, forward and backward, against torch autograd in float64 (micrograd's pattern)."""
import math

import numpy as np
import pytest
import torch

from backprop_oracle import manual
from backprop_oracle import torch_ref
from backprop_oracle.compare.verdict.tolerances import Tolerance
from tests.helpers import F64, assert_close

rng = np.random.default_rng(0)
Z = rng.normal(0, 2, size=(7, 5))
Z[Z.__abs__() < 1e-3] = 0.5          # away from kinks: the finite-difference tests need that too
UPSTREAM = rng.normal(size=(7, 5))


@pytest.mark.parametrize("name", [k for k in manual.ACTIVATIONS if k != "step"])
def test_activation_matches_torch(name):
    m = manual.make_activation(name)
    t = torch_ref.make_activation(name)
    a = m.forward(Z.copy())
    dz = m.backward(UPSTREAM.copy())

    zt = torch.tensor(Z, requires_grad=True)
    at = t(zt)
    at.backward(torch.tensor(UPSTREAM))
    assert_close(f"{name} forward a", a, at)        # forward pass went well
    assert_close(f"{name} backward dL/dz", dz, zt.grad)  # backward pass went well


def test_leaky_relu_slope_argument():
    m, t = manual.LeakyReLU(0.2), torch_ref.LeakyReLU(0.2)
    zt = torch.tensor(Z, requires_grad=True)
    t(zt).backward(torch.tensor(UPSTREAM))
    m.forward(Z)
    assert_close("leaky_relu(0.2) dL/dz", m.backward(UPSTREAM), zt.grad)


def test_relu_subgradient_at_the_kink_is_torchs_zero():
    z = np.array([[-1.0, 0.0, 2.0]])
    m = manual.ReLU()
    m.forward(z)
    zt = torch.tensor(z, requires_grad=True)
    torch.relu(zt).backward(torch.ones(1, 3, dtype=torch.float64))
    assert_close("relu'(0)", m.backward(np.ones((1, 3))), zt.grad)
    assert m.backward(np.ones((1, 3)))[0, 1] == 0.0, "relu'(0) should be the subgradient 0"


def test_sigmoid_is_stable_for_large_inputs():
    z = np.array([[-800.0, 0.0, 800.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        a = manual.Sigmoid().forward(z)
    assert_close("sigmoid([-800, 0, 800])", a, [[0.0, 0.5, 1.0]])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sigmoid_raises_no_warning_where_e_to_the_minus_z_leaves_the_floats(dtype):
    # e^-z overflows below -709.78 (float64) / -88.72 (float32) and underflows above 745 / 103.
    z = np.array([[-1e4, -720.0, -90.0, -30.0, 0.0, 30.0, 110.0, 800.0, 1e4]], dtype)
    with np.errstate(all="raise"):
        a = manual.Sigmoid().forward(z)
    exact = [1.0 / (1.0 + math.exp(-v)) if v > -700 else 0.0 for v in z[0].astype(float)]
    assert a.dtype == np.dtype(dtype)
    tol = F64 if dtype == "float64" else Tolerance(rtol=1e-6, atol=1e-30)     # float32: a few ulps
    assert_close(f"sigmoid of {dtype} z = {z[0].tolist()}", a, [exact], tol)
    assert a[0, 0] == 0.0 and a[0, -1] == 1.0, a


def test_step_forward_matches_torch_and_backward_says_why():
    z = np.array([[-1.0, 0.0, 0.3]])
    a = manual.Step().forward(z)
    assert_close("step forward", a, torch_ref.Step()(torch.tensor(z)))
    assert_close("step forward", a, [[0.0, 0.0, 1.0]])
    with pytest.raises(manual.NoGradientError, match="no useful derivative"):
        manual.Step().backward(np.ones((1, 3)))
    zt = torch.tensor(z, requires_grad=True)
    with pytest.raises(RuntimeError, match="no useful derivative"):
        torch_ref.Step()(zt).sum().backward()


def test_softmax_rows_sum_to_one():
    a = manual.Softmax().forward(Z)
    assert_close("softmax row sums", a.sum(axis=1), np.ones(Z.shape[0]))


def test_unknown_activation_lists_the_valid_ones():
    with pytest.raises(ValueError, match="choose one of: identity, step, sigmoid"):
        manual.make_activation("swish")
    with pytest.raises(ValueError, match="choose one of: identity, step, sigmoid"):
        torch_ref.make_activation("swish")
