"""Activations as torch.nn modules, under the registry keys of manual/activations.py."""
import torch
from torch import nn
from torch.nn import Identity, Sigmoid, Tanh, ReLU, LeakyReLU
from torch.nn import ELU, SELU, GELU, SiLU, Softplus, Hardtanh, Hardsigmoid, Hardswish

from backprop_oracle.keys import build


class _StepFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z):
        return (z > 0).to(z.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        raise RuntimeError(
            "step has no useful derivative: it is 0 wherever it is defined and undefined at z = 0, "
            "so backpropagation gets no signal through it. Compare its forward pass only, or use "
            "'sigmoid' as a differentiable step.")


class Step(nn.Module):
    """a = 1 if z > 0 else 0 (torch.heaviside(z, 0)). Forward only: backward raises."""

    def forward(self, z):
        return _StepFunction.apply(z)


class Softmax(nn.Softmax):
    """a = softmax(z) over the class dimension (dim=1 by default, as the manual side)."""

    def __init__(self, dim=1):
        super().__init__(dim=dim)


class LogSoftmax(nn.LogSoftmax):
    """a = log_softmax(z) over the class dimension (dim=1 by default, as the manual side)."""

    def __init__(self, dim=1):
        super().__init__(dim=dim)


ACTIVATIONS = {
    "identity": Identity,
    "step": Step,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "softmax": Softmax,
    "elu": ELU,
    "selu": SELU,
    "gelu": GELU,
    "silu": SiLU,
    "softplus": Softplus,
    "hardtanh": Hardtanh,
    "hardsigmoid": Hardsigmoid,
    "hardswish": Hardswish,
    "log_softmax": LogSoftmax,
}


def make_activation(name, **kwargs):
    """Build the activation module registered under ``name``: a key, or a key with torch's arguments,
    "elu:alpha=0.5" (see backprop_oracle/keys.py)."""
    return build(ACTIVATIONS, "activation", name, **kwargs)
