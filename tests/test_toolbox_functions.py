"""The newer activations and losses (GELU, SiLU, ELU, SELU, softplus, the hard ones, log_softmax;
bce_with_logits, l1, smooth_l1, huber, nll, weighted and smoothed cross_entropy) against torch
autograd, in float64 and float32, on random inputs and exactly at each kink, where torch picks one
side. Tolerances are the oracle's per dtype: float64 atol 1e-12 + rtol 1e-10·max|torch|, float32
atol 1e-6 + rtol 1e-4·max|torch| (compare/verdict/tolerances.py).
"""
import numpy as np
import pytest
import torch

from backprop_oracle import manual, torch_ref
from backprop_oracle.compare.verdict.finite_diff import numerical_vjp
from backprop_oracle.compare.verdict.tolerances import tolerance_for
from tests.helpers import assert_close

# Every registered activation, and each new one with arguments other than torch's defaults.
ACTIVATION_KEYS = [k for k in manual.ACTIVATIONS if k != "step"] + [
    "elu:alpha=0.5", "gelu:approximate=tanh", "softplus:beta=2,threshold=1", "softplus:beta=0.5",
    "hardtanh:min_val=-0.5,max_val=2", "leaky_relu:negative_slope=0.2"]
DTYPES = ["float64", "float32"]


def _inputs(key, dtype, seed=0):
    """(z, dL/da): 40 random z of spread 4, then each kink, and the floats on either side of it."""
    rng = np.random.default_rng(seed)
    kinks = np.asarray(getattr(manual.make_activation(key), "kinks", ()), dtype=dtype)
    z = np.concatenate([4 * rng.standard_normal(40).astype(dtype), kinks, np.nextafter(kinks, kinks + 1),
                        np.nextafter(kinks, kinks - 1), np.array([0.0, 25.0, -25.0], dtype)])
    z = np.concatenate([z, np.zeros((-len(z)) % 4, dtype)]).reshape(-1, 4)        # (N, 4)
    return z, rng.standard_normal(z.shape).astype(dtype)


def _torch_side(key, z, g):
    zt = torch.tensor(z, requires_grad=True)
    at = torch_ref.make_activation(key)(zt)
    at.backward(torch.tensor(g))
    return at, zt.grad


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("key", ACTIVATION_KEYS)
def test_activation_agrees_with_torch_at_random_inputs_and_at_its_kinks(key, dtype):
    z, g = _inputs(key, dtype)
    m = manual.make_activation(key)
    a = m.forward(z.copy())
    dz = m.backward(g.copy())
    assert a.dtype == dz.dtype == np.dtype(dtype), f"{key}: {dtype} in, {a.dtype}/{dz.dtype} out"
    at, dzt = _torch_side(key, z, g)
    tol = tolerance_for(dtype)
    assert_close(f"{key} ({dtype}) forward a", a, at, tol)
    assert_close(f"{key} ({dtype}) backward dL/dz", dz, dzt, tol)


# At each kink, the side of it torch's derivative takes (read off torch 2.13, float64).
KINK_SIDES = {
    "elu:alpha=0.5": [(0.0, 0.5)],                      # the left side, alpha e^0
    "selu": [(0.0, manual.activations.SELU_SCALE * manual.activations.SELU_ALPHA)],
    "relu": [(0.0, 0.0)],
    "hardtanh": [(-1.0, 0.0), (1.0, 0.0)],
    "hardsigmoid": [(-3.0, 0.0), (3.0, 0.0)],
    "hardswish": [(-3.0, 0.0), (3.0, 1.0)],            # the outer sides, not the middle piece's -1/2, 3/2
    "softplus:beta=2,threshold=1": [(0.5, 1 / (1 + np.exp(-1.0)))],   # the formula's side, s(threshold)
}


@pytest.mark.parametrize("key", list(KINK_SIDES))
def test_the_derivative_at_a_kink_is_the_side_torch_takes(key):
    for z0, expected in KINK_SIDES[key]:
        z = np.array([[z0]])
        m = manual.make_activation(key)
        m.forward(z)
        got = float(m.backward(np.ones_like(z))[0, 0])
        _, dzt = _torch_side(key, z, np.ones_like(z))
        assert abs(got - float(dzt)) <= 1e-12 and abs(got - expected) <= 1e-7, \
            f"{key}'(z = {z0}): manual {got!r}, torch {float(dzt)!r}, expected {expected!r} (tolerance 1e-12)"


def test_each_activation_lists_its_kinks():
    kinks = {key: tuple(manual.make_activation(key).kinks) for key in
             ["relu", "leaky_relu", "elu", "elu:alpha=0.5", "selu", "gelu", "silu", "softplus",
              "softplus:beta=2,threshold=10", "hardtanh", "hardsigmoid", "hardswish", "log_softmax"]}
    assert kinks == {"relu": (0.0,), "leaky_relu": (0.0,), "elu": (), "elu:alpha=0.5": (0.0,), "selu": (0.0,),
                     "gelu": (), "silu": (), "softplus": (20.0,), "softplus:beta=2,threshold=10": (5.0,),
                     "hardtanh": (-1.0, 1.0), "hardsigmoid": (-3.0, 3.0), "hardswish": (-3.0, 3.0),
                     "log_softmax": ()}


@pytest.mark.parametrize("key", ["gelu", "gelu:approximate=tanh", "silu", "softplus:beta=3", "selu", "log_softmax"])
def test_smooth_derivatives_match_central_differences(key):
    # Independent of torch: the docstring's derivative against the forward itself (float64).
    z, g = _inputs(key, "float64", seed=1)
    z = z[:10]
    g = g[:10]
    m = manual.make_activation(key)
    m.forward(z)
    mine = m.backward(g)
    num = numerical_vjp(lambda xs: manual.make_activation(key).forward(xs[0]), [z], g, 0)
    assert not num.near_kink.any()
    err = np.abs(mine - num.grad).max()
    assert err < 1e-7, f"{key}: max |manual - central difference| = {err:.3g} (tolerance 1e-7)"


def test_gelu_values_at_worked_points():
    # Φ(1) = 0.8413447460685429, φ(1) = 0.24197072451914337 (the normal distribution's tables)
    m = manual.make_activation("gelu")
    a = m.forward(np.array([[1.0, 0.0]]))
    d = m.backward(np.ones((1, 2)))
    assert abs(a[0, 0] - 0.8413447460685429) < 1e-15 and a[0, 1] == 0.0, a
    assert abs(d[0, 0] - (0.8413447460685429 + 0.24197072451914337)) < 1e-15 and d[0, 1] == 0.5, d


# ---------------------------------------------------------------- losses

N, C = 7, 3


def _loss_inputs(key, dtype, seed=0):
    rng = np.random.default_rng(seed)
    name = key.partition(":")[0]
    x = (2 * rng.standard_normal((N, C))).astype(dtype)
    if name in ("cross_entropy", "nll"):
        y = np.array([0, 1, 2, 2, 1, 0, 2])
        if name == "nll":
            x = manual.activations.log_softmax(x)
    elif name == "bce_with_logits":
        y = rng.integers(0, 2, (N, C)).astype(dtype)
    else:
        y = rng.standard_normal((N, C)).astype(dtype)
        x[0, 0] = y[0, 0]                                # at l1's kink: torch's subgradient 0
        x[1, 0] = y[1, 0] + 1.0                          # at smooth_l1's and huber's seams (beta = delta = 1)
    return x, y


LOSS_KEYS = [k for k in manual.LOSSES if k not in ("bce", "hinge")] + [
    "cross_entropy:label_smoothing=0.1", "cross_entropy:weight=1,2,0.5",
    "cross_entropy:weight=1,2,0.5,label_smoothing=0.3,reduction=sum", "cross_entropy:reduction=sum",
    "nll:weight=0.5,2,3", "nll:reduction=sum", "bce_with_logits:pos_weight=3",
    "bce_with_logits:pos_weight=1,2,3,reduction=sum", "l1:reduction=sum", "smooth_l1:beta=0.5",
    "smooth_l1:beta=0", "smooth_l1:reduction=sum", "huber:delta=0.3", "huber:delta=2,reduction=sum"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("key", LOSS_KEYS)
def test_loss_agrees_with_torch(key, dtype):
    x, y = _loss_inputs(key, dtype)
    m = manual.make_loss(key)
    cost = m(x.copy(), y)
    grad = m.backward()
    assert np.asarray(grad).dtype == np.dtype(dtype), f"{key}: {dtype} in, {np.asarray(grad).dtype} gradient"
    xt = torch.tensor(x, requires_grad=True)
    ct = torch_ref.make_loss(key)(xt, torch.tensor(y))
    ct.backward()
    tol = tolerance_for(dtype)
    assert_close(f"{key} ({dtype}) cost", cost, ct, tol)
    assert_close(f"{key} ({dtype}) dCost/dinput", grad, xt.grad, tol)


def test_label_smoothing_spreads_over_all_k_classes():
    # One example, logits 0: log softmax = -log 3 for each class; with ε = 0.3 the target weights are
    # 0.7 + 0.1 on the true class and 0.1 on each other (ε/K, K = 3, not ε/(K-1)): the cost is log 3
    # and dCost/dz = softmax - q = 1/3 - (0.8, 0.1, 0.1).
    m = manual.make_loss("cross_entropy:label_smoothing=0.3")
    cost = m(np.zeros((1, 3)), np.array([0]))
    assert abs(cost - np.log(3)) < 1e-15, cost
    assert np.allclose(m.backward(), [[1 / 3 - 0.8, 1 / 3 - 0.1, 1 / 3 - 0.1]], rtol=0, atol=1e-15)


def test_weighted_mean_divides_by_the_targets_weights():
    # nll, weights (1, 3): examples of class 0 and 1 with log-probabilities -1 and -2:
    # (1·1 + 3·2) / (1 + 3) = 7/4, torch's weighted mean (not / N = 2).
    m = manual.make_loss("nll:weight=1,3")
    assert m(np.array([[-1.0, -5.0], [-5.0, -2.0]]), np.array([0, 1])) == 7 / 4


@pytest.mark.parametrize("key, input, target, message", [
    ("cross_entropy:weight=1,2", np.zeros((2, 3)), np.array([0, 1]), "one number per class"),
    ("nll", np.zeros((2, 3)), np.array([0.0, 1.0]), "integer class indices"),
    ("nll", np.zeros((2, 3)), np.array([0, 3]), "lie in"),
    ("bce_with_logits:pos_weight=1,2", np.zeros((2, 3)), np.zeros((2, 3)), "pos_weight"),
])
def test_bad_loss_inputs_get_clear_errors(key, input, target, message):
    with pytest.raises(ValueError, match=message):
        manual.make_loss(key)(input, target)


@pytest.mark.parametrize("key, message", [
    ("l1:reduction=none", "reduction must be 'mean' or 'sum'"),
    ("huber:beta=1", "huber takes no beta; it takes delta, reduction"),
    ("elu:alpha", "is not name=value"),
    ("gelu:approximate=erf", "approximate must be"),
    ("hardtanh:min_val=1,max_val=0", "max_val > min_val"),
    ("swish", "choose one of"),
])
def test_bad_keys_get_clear_errors_on_both_sides(key, message):
    build = manual.make_loss if key.partition(":")[0] in manual.LOSSES else manual.make_activation
    with pytest.raises(ValueError, match=message):
        build(key)


def test_keys_split_and_join_the_same_on_both_sides():
    for key in ["relu", "elu:alpha=0.5", "softplus:beta=2,threshold=10", "gelu:approximate=tanh",
                "cross_entropy:weight=1,2,3,label_smoothing=0.1", "bce_with_logits:pos_weight=2.5,reduction=sum"]:
        name, args = manual.split_key(key)
        assert (name, args) == torch_ref.split_key(key)
        assert manual.join_key(name, args) == key
    assert manual.split_key("nll:weight=1,2,3,reduction=sum") == ("nll", {"weight": (1, 2, 3), "reduction": "sum"})


# ---------------------------------------------------------------- checks by name

def _gelu_grad(z, g, pdf=True):
    import math
    cdf = 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))
    return g * (cdf + (z * np.exp(-z * z / 2) / math.sqrt(2 * math.pi) if pdf else 0))


def test_check_function_by_key_passes_a_right_derivative_and_names_a_wrong_one():
    from backprop_oracle import check_function
    assert check_function("gelu", _gelu_grad).passed
    r = check_function("gelu", lambda z, g: _gelu_grad(z, g, pdf=False))
    assert not r.passed and r.mismatch.diff.name == "dL/dz", r.report()
    assert "gelu" in r.report() and "torch_ref.make_activation('gelu')" in r.report()
    assert check_function("elu:alpha=0.5", lambda z, g: g * np.where(z > 0, 1, 0.5 * np.exp(z))).passed


def test_check_function_by_an_unknown_key_is_a_clear_error():
    from backprop_oracle import CheckError, check_function
    with pytest.raises(CheckError, match="unknown activation 'swish'; choose one of"):
        check_function("swish", _gelu_grad)


GELU_STUDENT = '''
import math
import numpy as np

erf = np.vectorize(math.erf)

def gelu(z):
    return z * 0.5 * (1 + erf(z / math.sqrt(2)))

def backprop(params, X, Y, pdf=True):
    """One hidden GELU layer, identity output, mse (torch's mean over every element)."""
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    z1 = X @ W1.T + b1
    a1 = gelu(z1)
    out = a1 @ W2.T + b2
    cost = np.mean((out - Y) ** 2)
    dout = 2 * (out - Y) / out.size
    da1 = dout @ W2
    dgelu = 0.5 * (1 + erf(z1 / math.sqrt(2))) + (z1 * np.exp(-z1 ** 2 / 2) / math.sqrt(2 * math.pi) if pdf else 0)
    dz1 = da1 * dgelu
    return cost, {"W2": dout.T @ a1, "b2": dout.sum(0), "W1": dz1.T @ X, "b1": dz1.sum(0)}

def without_pdf(params, X, Y):
    return backprop(params, X, Y, pdf=False)
'''


def test_the_check_command_takes_a_new_activation(tmp_path, capsys):
    from backprop_oracle.compare.cli import main
    path = tmp_path / "student.py"
    path.write_text(GELU_STUDENT)
    net = ["--sizes", "3,4,3", "--activation", "gelu", "--output-activation", "identity", "--loss", "mse",
           "--naming", "layers"]
    assert main(["check", f"{path}:backprop", *net]) == 0, capsys.readouterr().out
    assert main(["check", f"{path}:without_pdf", *net]) == 1
    out = capsys.readouterr().out
    assert "WRONG" in out and "W1" in out, out
