"""The oracle catches mistakes in the layers beyond dense: one formula of a convolution, a pooling,
a normalisation or a dropout is planted into the manual side (at run time, undone after each
test), and the lockstep run on digits must say DIFFER at the right node (stage, node, module, the
tensor that showed it) and prove it wrong on identical inputs, in float64 and in float32.

Each mistake is one made when deriving these layers by hand: batch norm's dL/dx without the path
through the mean or through the variance, the unbiased variance where the biased one normalises,
the running variance kept biased, dropout forgetting 1/(1 - p) or its mask in backward, max-pooling
giving the gradient to every tied maximum, average-pooling ignoring count_include_pad, a
convolution's weight gradient flipped, dL/dx cropped at the wrong offset (the padding dropped) or
folded without the stride, layer norm's dL/dgamma without x_hat.
"""
from dataclasses import dataclass, replace

import numpy as np
import pytest

from backprop_oracle import manual
from backprop_oracle.compare.data.datasets import load_digits, Dataset
from backprop_oracle.compare.experiments.spec import ExperimentSpec
from backprop_oracle.compare.lockstep.run import LockstepRun, run_lockstep

conv, pooling, normalization, dropout = manual.conv, manual.pooling, manual.normalization, manual.dropout

# module 0 conv, 1 relu, 2 maxpool, 3 conv (stride 2, padding 1), 4 relu, 5 avgpool (padding 1),
# 6 flatten, 7 dropout, 8 linear. The digits' blank background makes ties in the max-pool: ReLU's
# zeros and equal values where the first convolution saw only zeros.
CNN = "conv(4, 3, padding=1) relu maxpool(2) conv(6, 3, stride=2, padding=1) relu avgpool(2, padding=1) " \
      "flatten dropout(0.25) linear(10)"
# module 0 conv, 1 batchnorm (2d), 2 relu, 3 maxpool, 4 flatten, 5 linear: batch norm alone, so a
# mistake in the normalisation's shared backward shows there and nowhere else
BN_CNN = "conv(4, 3, padding=1) batchnorm relu maxpool(2) flatten linear(10)"
# module 0 flatten, 1 linear, 2 batchnorm (1d), 3 relu, 4 dropout, 5 linear, 6 layernorm, 7 tanh, 8 linear
NORM_MLP = "flatten linear(16) batchnorm relu dropout(0.25) linear(16) layernorm tanh linear(10)"

BASE = ExperimentSpec(dataset="digits", layers=CNN, input_shape=(1, 8, 8), loss="cross_entropy", optimizer="sgd",
                      lr=0.1, optimizer_args={"momentum": 0.9}, init="kaiming_uniform", epochs=1, batch_size=64,
                      seed=3)


def small_digits(n=128):
    """The first n training digits: two steps of 64."""
    d = load_digits(seed=0)
    return Dataset("digits", d.X_train[:n], d.y_train[:n], None, None, 10, "multiclass", f"digits, {n} rows")


DIGITS = small_digits()


@dataclass
class Mutation:
    target: object          # the module or class whose attribute is replaced
    attribute: str
    body: object            # the wrong function or method
    layers: str             # the network
    stage: str              # "forward", "backward" or "buffers"
    node: str
    module: int             # the module that computes the wrong tensor
    tensor: str             # the start of the name of the tensor that shows it
    extra: tuple = ()       # further (target, attribute, body) replaced with it


# ---------------------------------------------------------------- normalisation

def normalize_backward_without(mean_term=True, variance_term=True):
    """normalize_backward with one of dL/dx's three terms left out."""
    def backward(g_hat, x_hat, inv_std, axes):
        M = int(np.prod([x_hat.shape[a] for a in axes]))
        sum_g = g_hat.sum(axis=axes, keepdims=True) if mean_term else 0.0
        sum_gx = (g_hat * x_hat).sum(axis=axes, keepdims=True) if variance_term else 0.0
        return (inv_std / M) * (M * g_hat - sum_g - x_hat * sum_gx)
    return backward


def normalize_unbiased(x, axes, eps):
    """x_hat with the unbiased variance (/(M - 1)): torch normalises with the biased one."""
    mu = x.mean(axis=axes, keepdims=True)
    M = int(np.prod([x.shape[a] for a in axes]))
    var = ((x - mu) ** 2).sum(axis=axes, keepdims=True) / (M - 1)
    inv_std = 1.0 / np.sqrt(var + eps)
    return (x - mu) * inv_std, inv_std


def running_var_biased(self, x, axes, n):
    """The running statistics' update keeping the biased variance (torch keeps var n/(n - 1))."""
    self.num_batches_tracked += 1
    f = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
    mu = x.mean(axis=axes)
    var = ((x - normalization._channels(mu, x.ndim)) ** 2).sum(axis=axes) / n
    self.running_mean *= 1.0 - f
    self.running_mean += f * mu
    self.running_var *= 1.0 - f
    self.running_var += f * var


def layernorm_backward_dgamma_without_x_hat(self, dL_dy):
    """LayerNorm.backward with dL/dgamma = sum g (the x_hat forgotten)."""
    axes = self._axes(dL_dy.ndim)
    lead = tuple(range(dL_dy.ndim - len(self.normalized_shape)))
    dL_dx = normalization.normalize_backward(dL_dy * self.weight.data, self.x_hat, self.inv_std, axes)
    self.weight.grad += dL_dy.sum(axis=lead)
    self.bias.grad += dL_dy.sum(axis=lead)
    return dL_dx.astype(dL_dy.dtype, copy=False)


# ---------------------------------------------------------------- pooling

_MAXPOOL_FORWARD = manual.MaxPool2d.forward


def maxpool_forward_keeping_x(self, x):
    self.x_kept = x
    return _MAXPOOL_FORWARD(self, x)


def maxpool_backward_to_every_tie(self, dL_dy):
    """dL/dy on every input equal to its window's maximum (torch gives it to the first one only)."""
    x = self.x_kept
    xp = conv.pad(x, self.padding, -np.inf, np.empty(x.shape[:2] + tuple(
        s + 2 * p for s, p in zip(x.shape[2:], self.padding)), x.dtype))
    win = conv.windows(xp, self.kernel_size, self.stride, self.dilation, dL_dy.shape[2:])   # (N, C, kH, kW, Ho, Wo)
    top = win.max(axis=(2, 3), keepdims=True)
    cols = (win == top) * dL_dy[:, :, None, None]
    return pooling._fold_cropped(cols, x.shape, self.stride, self.padding, self.dilation, conv.new_array)


_AVG_DIVISOR = pooling.avg_divisor


def avg_divisor_ignoring_count_include_pad(size, kernel, stride, padding, out, ceil_mode, count_include_pad):
    """The divisor counting the input's elements only, whatever count_include_pad says."""
    return _AVG_DIVISOR(size, kernel, stride, padding, out, ceil_mode, False)


# ---------------------------------------------------------------- convolution

_CONV_BACKWARD = conv.conv2d_backward


def conv_dW_flipped(x, weight, dL_dy, cols, stride=1, padding=0, dilation=1, groups=1, out=(None, None, None),
                    buffers=None):
    """dL/dW with the kernel flipped (a convolution's derivative where torch's is a correlation's)."""
    dL_dx, dL_dW, dL_db = _CONV_BACKWARD(x, weight, dL_dy, cols, stride, padding, dilation, groups, out, buffers)
    return dL_dx, dL_dW[:, :, ::-1, ::-1].copy(), dL_db


def conv_backward_input(crop_at_padding=True, fold_with_stride=True):
    """conv2d_backward with dL/dx made plainly, cropped at (0, 0) instead of the padding (the padding
    dropped) or folded back with stride 1 (the stride ignored)."""
    def backward(x, weight, dL_dy, cols, stride=1, padding=0, dilation=1, groups=1, out=(None, None, None),
                 buffers=None):
        _, dL_dW, dL_db = _CONV_BACKWARD(x, weight, dL_dy, cols, stride, padding, dilation, groups,
                                         (False, out[1], out[2]), buffers)
        if out[0] is False:
            return None, dL_dW, dL_db
        stride, padding, dilation = (conv.pair(v, n) for v, n in ((stride, "s"), (padding, "p"), (dilation, "d")))
        (N, C, H, W), (O, Cg, kH, kW), (Ho, Wo) = x.shape, weight.shape, dL_dy.shape[2:]
        G = groups
        dY = dL_dy.transpose(1, 0, 2, 3).reshape(G, O // G, N * Ho * Wo)
        dcols = np.matmul(weight.reshape(G, O // G, Cg * kH * kW).transpose(0, 2, 1), dY)
        dcols = dcols.reshape(G, Cg, kH, kW, N, Ho, Wo).transpose(4, 0, 1, 2, 3, 5, 6).reshape(N, C, kH, kW, Ho, Wo)
        dxp = np.zeros((N, C, H + 2 * padding[0], W + 2 * padding[1]), dL_dy.dtype)
        conv.fold(dcols, dxp, stride if fold_with_stride else (1, 1), dilation)
        top, left = padding if crop_at_padding else (0, 0)
        return dxp[:, :, top:top + H, left:left + W].copy(), dL_dW, dL_db
    return backward


# ---------------------------------------------------------------- dropout

def dropout_without_scale(x, keep, p):
    return x * keep


def dropout_backward_without_mask(dL_dy, keep, p):
    return dL_dy / (1 - p)


MP = manual.MaxPool2d
MUTATIONS = {
    "batch norm dL/dx without the mean's term": Mutation(
        normalization, "normalize_backward", normalize_backward_without(mean_term=False), BN_CNN,
        "backward", "backward", 1, "dL/dy_1 (gradient at module 0's output, conv)"),
    "batch norm dL/dx without x_hat mean(x_hat g)": Mutation(
        normalization, "normalize_backward", normalize_backward_without(variance_term=False), BN_CNN,
        "backward", "backward", 1, "dL/dy_1 (gradient at module 0's output, conv)"),
    "batch norm normalising with the unbiased variance": Mutation(
        normalization, "normalize", normalize_unbiased, NORM_MLP, "forward", "forward", 2,
        "y_1 (output of module 2, batchnorm)"),
    "running variance kept biased": Mutation(
        normalization._BatchNorm, "_update_running_stats", running_var_biased, NORM_MLP, "buffers",
        "running_stats", 2, "2.running_var"),
    "layer norm dL/dgamma without x_hat": Mutation(
        manual.LayerNorm, "backward", layernorm_backward_dgamma_without_x_hat, NORM_MLP, "backward",
        "param_grad", 6, "dL/d(6.weight) (6.weight.grad)"),
    "dropout without 1/(1 - p)": Mutation(
        dropout, "dropout", dropout_without_scale, NORM_MLP, "forward", "forward", 4,
        "y_1 (output of module 4, dropout)"),
    "dropout's backward without the mask": Mutation(
        dropout, "dropout_backward", dropout_backward_without_mask, CNN, "backward", "backward", 7,
        "dL/dy_2 (gradient at module 6's output, flatten)"),
    "max-pool's gradient to every tie": Mutation(
        MP, "backward", maxpool_backward_to_every_tie, CNN, "backward", "backward", 2,
        "dL/da_1 (gradient at module 1's output, relu)", extra=((MP, "forward", maxpool_forward_keeping_x),)),
    "avg-pool ignoring count_include_pad": Mutation(
        pooling, "avg_divisor", avg_divisor_ignoring_count_include_pad, CNN, "forward", "forward", 5,
        "y_2 (output of module 5, avgpool)"),
    "convolution's dL/dW flipped": Mutation(
        conv, "conv2d_backward", conv_dW_flipped, CNN, "backward", "param_grad", 3,
        "dL/d(3.weight) (3.weight.grad)"),
    "convolution's dL/dx without the padding": Mutation(
        conv, "conv2d_backward", conv_backward_input(crop_at_padding=False), CNN, "backward", "backward", 3,
        "dL/dy_1 (gradient at module 2's output, maxpool)"),
    "convolution's dL/dx without the stride": Mutation(
        conv, "conv2d_backward", conv_backward_input(fold_with_stride=False), CNN, "backward", "backward", 3,
        "dL/dy_1 (gradient at module 2's output, maxpool)"),
}


def spec_for(layers, dtype):
    return replace(BASE, layers=layers, dtype=dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layers", [CNN, BN_CNN, NORM_MLP])
def test_the_correct_networks_agree(layers, dtype):
    r = run_lockstep(spec_for(layers, dtype), dataset=DIGITS, progress=False)
    assert r.passed and r.steps == 2, r.mismatch and r.mismatch.describe()
    # a bias before a batch norm has gradient 0 in exact arithmetic: in float32 its rounding may
    # exceed atol, and that is proven rounding (resynced), never a wrong node
    for d in r.drifts:
        assert d.stage == "drift" or not d.proof.wrong, d.describe()


def test_the_cnn_s_max_pool_sees_ties():
    """The tie mistake can only show where a window has two equal maxima: the digits give many."""
    run = LockstepRun(spec_for(CNN, "float64"), dataset=DIGITS)
    run.manual.forward_backward(np.arange(64))
    x = run.manual.model.outputs[1]                                        # (64, 4, 8, 8), into the pool
    win = x.reshape(64, 4, 4, 2, 4, 2).transpose(0, 1, 2, 4, 3, 5).reshape(64, 4, 4, 4, 4)
    ties = ((win == win.max(axis=-1, keepdims=True)).sum(axis=-1) > 1).mean()
    assert ties > 0.2, f"only {ties:.1%} of the windows have a tie"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(MUTATIONS))
def test_planted_mistake_is_named_at_its_node(name, dtype, monkeypatch):
    mutation = MUTATIONS[name]
    for target, attribute, body in ((mutation.target, mutation.attribute, mutation.body), *mutation.extra):
        monkeypatch.setattr(target, attribute, body)
    r = run_lockstep(spec_for(mutation.layers, dtype), dataset=DIGITS, progress=False)
    mm = r.mismatch
    assert not r.passed and mm is not None, f"{name} ({dtype}): a planted mistake was not caught: {r.verdict}"
    assert not [d for d in r.drifts if d.stage == "amplified"], [d.describe() for d in r.drifts]
    where = f"{name} ({dtype}): {mm.describe()}"
    assert mm.step == 1, where
    assert (mm.stage, mm.node, mm.node_module) == (mutation.stage, mutation.node, mutation.module), where
    assert mm.diff.name.startswith(mutation.tensor), f"{name}: the tensor is {mm.diff.name!r}\n{where}"
    assert mm.proof is not None and mm.proof.wrong, f"{name}: no proof on identical inputs\n{where}"
    assert "the node itself is wrong" in mm.describe(), where


def test_there_are_at_least_ten_mistakes_in_the_new_layers():
    planted = {(m.target, m.attribute) for m in MUTATIONS.values()}
    assert len(MUTATIONS) >= 10 and len(planted) >= 8


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_gradient_sent_to_one_tie_too_many_is_not_rounding(dtype, monkeypatch):
    """One window in the batch has two equal maxima: the gradient the mistake sends to the second
    is a DIFFER. (Moving the max-pool's input by a few ulps, as the rounding test moves a node's
    inputs, would let either win: its input is never moved, nothing in it rounds.)"""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 4))
    X[1] = [2.0, 2.0, -1.0, 0.5]
    data = Dataset("ties", X, np.array([0, 1, 0, 1]), None, None, 2, "binary", "one tie")
    spec = ExperimentSpec(dataset="ties", layers="conv(1, 1) maxpool(2) flatten linear(2)", input_shape=(1, 2, 2),
                          loss="cross_entropy", lr=0.1, epochs=1, dtype=dtype, seed=0)
    assert run_lockstep(spec, dataset=data, progress=False).passed
    monkeypatch.setattr(MP, "forward", maxpool_forward_keeping_x)
    monkeypatch.setattr(MP, "backward", maxpool_backward_to_every_tie)
    r = run_lockstep(spec, dataset=data, progress=False)
    mm = r.mismatch
    assert mm is not None and not r.drifts, [d.describe() for d in r.drifts]
    assert (mm.stage, mm.node, mm.node_module) == ("backward", "backward", 1) and mm.proof.wrong, mm.describe()
    assert mm.diff.manual != 0 and mm.diff.torch == 0, mm.describe()
