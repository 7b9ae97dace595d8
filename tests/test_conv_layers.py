"""Convolution, pooling and flatten layers: each against torch autograd (float64, tight) and against
central differences, on shapes drawn from a fixed seed (stride > 1, padding, dilation, groups, odd
sizes, batch 1), plus the worked examples of max-pool's tie rule and avg-pool's padding rule."""
import numpy as np
import pytest
import torch

from backprop_oracle import manual
from backprop_oracle import torch_ref
from backprop_oracle.compare.check import PrecisionWarning, check_layer
from backprop_oracle.manual.conv import fold, windows


def random_conv_cases(count, seed=17):
    """(in, out, kernel, stride, padding, dilation, groups, bias, input shape) drawn from one seed."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        groups = int(rng.choice([1, 1, 2, 3]))
        c_in, c_out = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
        kernel = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 4)))
        dilation = (int(rng.integers(1, 3)), 1)
        padding = (int(rng.integers(0, 3)), int(rng.integers(0, 2)))
        H = dilation[0] * (kernel[0] - 1) + 1 + int(rng.integers(0, 4))      # odd and even sizes
        W = kernel[1] + int(rng.integers(0, 5))
        n = int(rng.choice([1, 2, 3]))
        cases.append((c_in, c_out, kernel, stride, padding, dilation, groups, bool(rng.integers(0, 2)),
                       (n, c_in, H, W)))
    return cases


CONV_CASES = random_conv_cases(8) + [               # stride 1 with dilation, groups, uneven padding
    (4, 6, (3, 2), 1, (2, 1), (2, 3), 2, True, (2, 4, 7, 9)),
    (1, 2, 3, 1, 0, 1, 1, False, (1, 1, 5, 3)),
]


def test_the_random_cases_cover_what_they_claim():
    have = lambda f: any(f(*c) for c in CONV_CASES)
    assert have(lambda ci, co, k, s, p, d, g, b, shape: max(s) > 1)
    assert have(lambda ci, co, k, s, p, d, g, b, shape: max(p) > 0)
    assert have(lambda ci, co, k, s, p, d, g, b, shape: max(d) > 1)
    assert have(lambda ci, co, k, s, p, d, g, b, shape: g > 1)
    assert have(lambda ci, co, k, s, p, d, g, b, shape: shape[0] == 1)
    assert have(lambda ci, co, k, s, p, d, g, b, shape: shape[2] % 2 == 1)


# ---- the vectorising helpers -----------------------------------------------------------------

def test_windows_are_the_receptive_fields_and_fold_is_their_adjoint():
    rng = np.random.default_rng(0)
    xp = rng.standard_normal((2, 3, 9, 8))
    kernel, stride, dilation, out = (2, 3), (2, 1), (3, 2), (3, 4)
    view = windows(xp, kernel, stride, dilation, out)
    for n, c, i, j, p, q in [(0, 0, 0, 0, 0, 0), (1, 2, 1, 2, 2, 3), (1, 1, 0, 1, 1, 2)]:
        assert view[n, c, i, j, p, q] == xp[n, c, p * 2 + i * 3, q * 1 + j * 2]
    # <windows(x), c> = <x, fold(c)> for every x and c: fold is the adjoint (col2im of im2col)
    cols = rng.standard_normal(view.shape)
    folded = fold(cols, np.zeros_like(xp), stride, dilation)
    assert np.sum(view * cols) == pytest.approx(np.sum(xp * folded), rel=1e-12)


# ---- against torch autograd ------------------------------------------------------------------

@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"k{c[2]}s{c[3]}p{c[4]}d{c[5]}g{c[6]}x{c[8]}")
def test_conv2d_matches_torch_autograd(case):
    c_in, c_out, kernel, stride, padding, dilation, groups, bias, shape = case
    args = (c_in, c_out, kernel, stride, padding, dilation, groups, bias)
    r = check_layer(manual.Conv2d(*args), torch_ref.Conv2d(*args), input_shape=shape, trials=2)
    assert r.passed, r.report()
    assert [t.diff.name for t in r.tensors][:3] == ["y (forward)", "dL/dx", "weight.grad"]
    assert r.tolerance.rtol <= 1e-10      # float64: the oracle's own precision


@pytest.mark.parametrize("case", CONV_CASES[:4])
def test_conv2d_matches_central_differences(case):
    c_in, c_out, kernel, stride, padding, dilation, groups, bias, shape = case
    layer = manual.Conv2d(c_in, c_out, kernel, stride, padding, dilation, groups, bias)
    r = check_layer(layer, input_shape=shape, trials=1)
    assert r.passed, r.report()
    assert "finite differences" in r.reference


@pytest.mark.parametrize("kw,shape", [
    (dict(kernel_size=3), (2, 2, 7)),
    (dict(kernel_size=2, stride=3, padding=2, dilation=2, groups=2), (1, 2, 9)),
    (dict(kernel_size=(3,), stride=(2,), padding=(1,), bias=False), (3, 2, 6)),
])
def test_conv1d_matches_torch_and_central_differences(kw, shape):
    args = (shape[1], 4)
    layer = manual.Conv1d(*args, **kw)
    assert layer.weight.shape == tuple(torch_ref.Conv1d(*args, **kw).weight.shape)
    r = check_layer(layer, torch_ref.Conv1d(*args, **kw), input_shape=shape)
    assert r.passed, r.report()
    assert check_layer(layer, input_shape=shape, trials=1).passed


def test_a_float32_conv_uses_float32_tolerance_and_warns():
    layer = manual.Conv2d(3, 4, 3, stride=2, padding=1, dtype=np.float32)
    with pytest.warns(PrecisionWarning):
        r = check_layer(layer, torch_ref.Conv2d(3, 4, 3, stride=2, padding=1), input_shape=(2, 3, 7, 6))
    # float32's tolerance (rtol 1e-4, stated by the check) against torch in float64
    assert r.passed and r.dtype == "float32" and r.tolerance.rtol == pytest.approx(1e-4), r.report()


POOLS = [
    (dict(kernel_size=2), (2, 3, 6, 7)),
    (dict(kernel_size=3, stride=2, padding=1), (1, 2, 7, 5)),
    (dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1)), (2, 1, 5, 8)),
    (dict(kernel_size=3, stride=2, ceil_mode=True), (1, 2, 8, 6)),
    (dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), (2, 1, 6, 9)),
]


@pytest.mark.parametrize("kw,shape", POOLS + [(dict(kernel_size=2, stride=1, padding=1, dilation=2), (1, 2, 5, 6))])
def test_max_pool_matches_torch_and_central_differences(kw, shape):
    r = check_layer(manual.MaxPool2d(**kw), torch_ref.MaxPool2d(**kw), input_shape=shape)
    assert r.passed, r.report()
    assert check_layer(manual.MaxPool2d(**kw), input_shape=shape, trials=1).passed


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("kw,shape", POOLS)
def test_avg_pool_matches_torch_and_central_differences(kw, shape, count_include_pad):
    kw = dict(kw, count_include_pad=count_include_pad)
    r = check_layer(manual.AvgPool2d(**kw), torch_ref.AvgPool2d(**kw), input_shape=shape)
    assert r.passed, r.report()
    assert check_layer(manual.AvgPool2d(**kw), input_shape=shape, trials=1).passed


def test_avg_pool_divisor_override_matches_torch():
    kw = dict(kernel_size=3, stride=2, padding=1, divisor_override=5)
    assert check_layer(manual.AvgPool2d(**kw), torch_ref.AvgPool2d(**kw), input_shape=(2, 2, 7, 7)).passed


@pytest.mark.parametrize("start,end", [(1, -1), (0, 2), (2, 3)])
def test_flatten_matches_torch(start, end):
    r = check_layer(manual.Flatten(start, end), torch_ref.Flatten(start, end), input_shape=(2, 3, 4, 5))
    assert r.passed, r.report()


# ---- worked examples: max-pool's ties, avg-pool's padding ------------------------------------

def test_max_pool_routes_a_tie_to_the_first_maximum_in_scan_order_as_torch_does():
    # One 3x3 window holding the maximum 5 three times, at (0, 2), (1, 1) and (2, 0): torch's CPU
    # kernel keeps the first in row-by-row order, (0, 2), and gives it the whole gradient.
    x = np.array([[[[1., 2., 5.], [0., 5., 1.], [5., 0., 2.]]]])
    pool = manual.MaxPool2d(3)
    assert pool.forward(x).item() == 5.0
    dx = pool.backward(np.array([[[[7.0]]]]))
    expected = np.zeros((1, 1, 3, 3))
    expected[0, 0, 0, 2] = 7.0
    assert np.array_equal(dx, expected), dx
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.MaxPool2d(3)(xt).backward(torch.tensor([[[[7.0]]]]))
    assert np.array_equal(xt.grad.numpy(), expected), xt.grad


@pytest.mark.parametrize("kw", [dict(kernel_size=3, stride=1), dict(kernel_size=2, stride=1, padding=1),
                                dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)])
def test_max_pool_ties_everywhere_route_as_torch_routes_them(kw):
    # Inputs of 0, 1 and 2 only: nearly every window has ties, overlapping windows share winners.
    ints = lambda rng, shape: rng.integers(0, 3, shape).astype(np.float64)
    r = check_layer(manual.MaxPool2d(**kw), torch_ref.MaxPool2d(**kw), input_shape=(2, 3, 6, 7), sampler=ints,
                    trials=4)
    assert r.passed, r.report()


def test_max_pool_a_nan_wins_its_window_as_in_torch():
    x = np.array([[[[1., np.nan], [3., 2.]]]])
    pool = manual.MaxPool2d(2)
    y = pool.forward(x)
    dx = pool.backward(np.ones((1, 1, 1, 1)))
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.MaxPool2d(2)(xt)
    yt.backward(torch.ones(1, 1, 1, 1))
    assert np.isnan(y.item()) and np.isnan(yt.item())
    assert np.array_equal(dx, xt.grad.numpy()), (dx, xt.grad)


@pytest.mark.parametrize("count_include_pad,corner", [(True, 1.0 / 4.0), (False, 1.0)])
def test_avg_pool_counts_the_padding_or_not(count_include_pad, corner):
    # A 2x2 input of ones, 2x2 windows with stride 1 and padding 1: the corner window holds one
    # input and three padding zeros, so its mean is 1/4 with the padding counted and 1 without.
    x = np.ones((1, 1, 2, 2))
    pool = manual.AvgPool2d(2, stride=1, padding=1, count_include_pad=count_include_pad)
    y = pool.forward(x)
    assert y.shape == (1, 1, 3, 3)
    assert y[0, 0, 0, 0] == pytest.approx(corner) and y[0, 0, 1, 1] == pytest.approx(1.0)
    # dL/dx[0, 0] gathers 1/D from each of the four windows that hold it
    dx = pool.backward(np.ones_like(y))
    D = np.array([[4., 4.], [4., 4.]]) if count_include_pad else np.array([[1., 2.], [2., 4.]])
    expected = (1 / D[0, 0] + 1 / D[0, 1] + 1 / D[1, 0] + 1 / D[1, 1])
    assert dx[0, 0, 0, 0] == pytest.approx(expected)
    t = torch.nn.AvgPool2d(2, stride=1, padding=1, count_include_pad=count_include_pad)
    xt = torch.tensor(x, requires_grad=True)
    t(xt).backward(torch.ones(1, 1, 3, 3))
    assert np.allclose(t(torch.tensor(x)).numpy(), y, rtol=1e-15) and np.allclose(xt.grad.numpy(), dx, rtol=1e-15)


# ---- defaults and errors ---------------------------------------------------------------------

def test_default_init_is_torchs_kaiming_uniform_bound():
    # kaiming_uniform(a = sqrt(5)) and the bias both draw from U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    layer = manual.Conv2d(6, 40, (3, 5), groups=2, rng=np.random.default_rng(0))
    ref = torch_ref.Conv2d(6, 40, (3, 5), groups=2)
    bound = 1 / np.sqrt(3 * 3 * 5)
    for mine, theirs in [(layer.weight.data, ref.weight), (layer.bias.data, ref.bias)]:
        assert mine.shape == tuple(theirs.shape)
        assert np.abs(mine).max() <= bound and np.abs(theirs.detach().numpy()).max() <= bound
        assert np.abs(mine).max() > 0.9 * bound


def test_bad_arguments_and_inputs_are_clear_errors():
    with pytest.raises(ValueError, match=r"in_channels \(3\) and out_channels \(4\) must both be divisible by groups \(2\)"):
        manual.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 3, H, W\), got \(2, 4, 5, 5\)"):
        manual.Conv2d(3, 4, 3).forward(np.zeros((2, 4, 5, 5)))
    with pytest.raises(ValueError, match=r"smaller than the kernel"):
        manual.Conv2d(1, 1, 5).forward(np.zeros((1, 1, 3, 3)))
    with pytest.raises(ValueError, match="padding_mode='zeros'"):
        manual.Conv2d(1, 1, 3, padding_mode="reflect")
    for kw in (dict(kernel_size=2, padding=2), dict(kernel_size=2, padding=2, dilation=3)):   # as torch refuses
        with pytest.raises(RuntimeError):
            torch.nn.MaxPool2d(**kw)(torch.zeros(1, 1, 8, 8))
        with pytest.raises(ValueError, match="at most half of the kernel size"):
            manual.MaxPool2d(**kw)
    with pytest.raises(ValueError, match=r"expects input of shape \(N, C, H, W\)"):
        manual.AvgPool2d(2).forward(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"length 3 padded by 0 is shorter than the kernel \(5"):
        manual.Conv1d(1, 1, 3, dilation=2).forward(np.zeros((1, 1, 3)))
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 2, L\)"):
        manual.Conv1d(2, 1, 3).forward(np.zeros((1, 2, 3, 3)))
