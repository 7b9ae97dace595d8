"""check_layer catches the mistakes students make in convolution and pooling backward passes: one
mistake at a time is planted into the manual layers (at run time, undone after each test), and the
check must fail naming the tensor that is wrong (weight.grad, bias.grad or dL/dx) while the others
stay right, on identical inputs against torch autograd."""
from dataclasses import dataclass

import numpy as np
import pytest

from backprop_oracle import manual
from backprop_oracle import torch_ref
from backprop_oracle.compare.check import check_layer
from backprop_oracle.manual import conv, pooling

real_conv2d_backward, real_fold = conv.conv2d_backward, conv.fold


def weight_gradient_flipped(x, weight, dL_dy, cols, stride, padding, dilation, groups, out, buffers):
    # dL/dW as a convolution with the kernel flipped: right for dL/dx's full convolution, wrong here
    dx, dW, db = real_conv2d_backward(x, weight, dL_dy, cols, stride, padding, dilation, groups, out, buffers)
    return dx, dW[:, :, ::-1, ::-1], db


def padding_dropped_in_dx(x, weight, dL_dy, cols, stride, padding, dilation, groups, out, buffers):
    # dL/dxp cropped from its corner instead of from the padding: the padded gradient taken as dL/dx
    _, dW, db = real_conv2d_backward(x, weight, dL_dy, cols, stride, padding, dilation, groups,
                                     (False,) + tuple(out[1:]), buffers)
    G, (N, C, H, W), (O, Cg, kH, kW) = groups, x.shape, weight.shape
    dY = dL_dy.transpose(1, 0, 2, 3).reshape(G, O // G, -1)
    dcols = weight.reshape(G, O // G, -1).transpose(0, 2, 1) @ dY
    Ho, Wo = dL_dy.shape[2:]
    dcols = dcols.reshape(G, Cg, kH, kW, N, Ho, Wo).transpose(4, 0, 1, 2, 3, 5, 6).reshape(N, C, kH, kW, Ho, Wo)
    dxp = real_fold(dcols, np.zeros((N, C, H + 2 * padding[0], W + 2 * padding[1])), stride, dilation)
    return dxp[:, :, :H, :W].copy(), dW, db


def bias_gradient_averaged(x, weight, dL_dy, cols, stride, padding, dilation, groups, out, buffers):
    dx, dW, db = real_conv2d_backward(x, weight, dL_dy, cols, stride, padding, dilation, groups, out, buffers)
    return dx, dW, dL_dy.mean(axis=(0, 2, 3))             # should be the sum over examples and positions


def fold_ignoring_stride(cols, out, stride, dilation):
    return real_fold(cols, out, (1, 1), dilation)          # every window's gradient put back one step apart


class MaxPoolToEveryTie(manual.MaxPool2d):
    """Routes dL/dy to every input equal to the window's maximum (torch gives it to the first only)."""

    def forward(self, x):
        self.x = x
        return super().forward(x)

    def backward(self, dL_dy):
        y = super().forward(self.x)
        win = conv.windows(self.x, self.kernel_size, self.stride, self.dilation, y.shape[2:])
        cols = (win == y[:, :, None, None]) * dL_dy[:, :, None, None]
        return real_fold(cols, np.zeros(self.x.shape), self.stride, self.dilation)


class MaxPoolToLastTie(manual.MaxPool2d):
    """Keeps the last maximum in scan order (>= where torch's CPU kernel asks for >)."""

    def forward(self, x):
        y = super().forward(x)
        k = self.kernel_size[0] * self.kernel_size[1]
        win = conv.windows(x, self.kernel_size, self.stride, self.dilation, y.shape[2:])
        flat = win.transpose(0, 1, 4, 5, 2, 3).reshape(y.shape + (k,))
        self.argmax = (k - 1 - np.argmax(flat[..., ::-1], axis=-1)).astype(self.argmax.dtype)
        return y


class AvgPoolIgnoringPadding(manual.AvgPool2d):
    """Backward divides by the full window kH kW, though count_include_pad=False means fewer count."""

    def backward(self, dL_dy):
        self.divisor = np.full_like(self.divisor, self.kernel_size[0] * self.kernel_size[1])
        return super().backward(dL_dy)


class AvgPoolForgettingTheDivisor(manual.AvgPool2d):
    """Backward hands dL/dy to each input of the window undivided (the sum's derivative, not the mean's)."""

    def backward(self, dL_dy):
        self.divisor = np.ones_like(self.divisor)
        return super().backward(dL_dy)


def ties(rng, shape):
    return rng.integers(0, 3, shape).astype(np.float64)


@dataclass
class Planted:
    name: str
    layer: object            # builds the manual layer (a mutated one, or the real one with a patch)
    reference: object        # builds the torch module
    input_shape: tuple
    wrong: str               # the tensor check_layer must name
    patch: tuple = ()        # (module, attribute, replacement)
    sampler: object = None
    reason: str = ""         # words the mismatch's reason must hold (the formula it quotes)


CONV = dict(in_channels=3, out_channels=4, kernel_size=3, stride=2, padding=1)
PLANTED = [
    Planted("conv weight gradient flipped", lambda: manual.Conv2d(**CONV), lambda: torch_ref.Conv2d(**CONV),
            (2, 3, 7, 7), "weight.grad", (conv, "conv2d_backward", weight_gradient_flipped),
            reason="the input correlated with dL/dy (no kernel flip)"),
    Planted("conv padding dropped in dL/dx", lambda: manual.Conv2d(**CONV), lambda: torch_ref.Conv2d(**CONV),
            (2, 3, 7, 7), "dL/dx", (conv, "conv2d_backward", padding_dropped_in_dx)),
    Planted("conv stride ignored in backward", lambda: manual.Conv2d(**CONV), lambda: torch_ref.Conv2d(**CONV),
            (2, 3, 7, 7), "dL/dx", (conv, "fold", fold_ignoring_stride)),
    Planted("conv bias gradient averaged", lambda: manual.Conv2d(**CONV), lambda: torch_ref.Conv2d(**CONV),
            (2, 3, 7, 7), "bias.grad", (conv, "conv2d_backward", bias_gradient_averaged),
            reason="summed over the batch and every position (axes 0, 2, 3)"),
    Planted("max-pool routing to every tie", lambda: MaxPoolToEveryTie(2), lambda: torch_ref.MaxPool2d(2),
            (2, 3, 6, 6), "dL/dx", sampler=ties),
    Planted("max-pool routing to the last tie", lambda: MaxPoolToLastTie(3, stride=1),
            lambda: torch_ref.MaxPool2d(3, stride=1), (2, 2, 5, 6), "dL/dx", sampler=ties),
    Planted("avg-pool ignoring padding", lambda: AvgPoolIgnoringPadding(3, 2, 1, count_include_pad=False),
            lambda: torch_ref.AvgPool2d(3, 2, 1, count_include_pad=False), (2, 2, 7, 7), "dL/dx"),
    Planted("avg-pool forgetting the divisor", lambda: AvgPoolForgettingTheDivisor(2),
            lambda: torch_ref.AvgPool2d(2), (2, 2, 6, 6), "dL/dx"),
]


@pytest.mark.parametrize("planted", PLANTED, ids=lambda p: p.name)
def test_check_layer_names_the_wrong_tensor(planted, monkeypatch):
    # The unmutated layer passes the same check: the failure below is the planted mistake's.
    healthy = check_layer(_healthy(planted), planted.reference(), input_shape=planted.input_shape,
                          sampler=planted.sampler, trials=1)
    assert healthy.passed, healthy.report()
    if planted.patch:
        monkeypatch.setattr(*planted.patch)
    r = check_layer(planted.layer(), planted.reference(), input_shape=planted.input_shape, sampler=planted.sampler,
                    trials=2)
    assert not r.passed, f"{planted.name} was not caught:\n{r.report()}"
    assert r.mismatch.diff.name == planted.wrong, r.report()
    assert r.mismatch.stage == "backward", r.report()
    # only that tensor is wrong (a gradient that is wrong once is wrong again after a 2nd backward)
    wrong = {t.diff.name.split(" after a 2nd backward")[0] for t in r.tensors if not t.passed}
    assert wrong == {planted.wrong}, r.report()
    assert "y (forward)" in {t.diff.name for t in r.tensors if t.passed}, r.report()
    assert planted.reason in r.mismatch.reason, r.report()


def _healthy(planted):
    """The same layer without the mistake: the mutated class's parent, or the real layer unpatched."""
    layer = planted.layer()
    if planted.patch:
        return layer
    base = type(layer).__mro__[1]
    healthy = base.__new__(base)
    healthy.__dict__.update(layer.__dict__)
    return healthy


def test_there_are_at_least_five_planted_mistakes_in_the_new_layers():
    assert len(PLANTED) >= 5
    assert {p.wrong for p in PLANTED} >= {"dL/dx", "weight.grad", "bias.grad"}
