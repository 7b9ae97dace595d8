"""Activations as layers. Each pure function's docstring gives the formula and its derivative;
each layer's ``backward`` sits right under its ``forward``.

Registry keys are shared with torch_ref/activations.py.
"""
import numpy as np

from backprop_oracle.manual.module import Module


class NoGradientError(RuntimeError):
    """Raised when a gradient is asked of a function that has no useful derivative."""


# ---------------------------------------------------------------- pure functions

def identity(z):
    """a = z;  da/dz = 1."""
    return z


def step(z):
    """a = 1 if z > 0 else 0 (the perceptron's threshold unit, torch.heaviside(z, 0)).

    Its derivative is 0 wherever it exists and undefined at z = 0, so no gradient ever flows
    through it: gradient descent cannot train a step unit. (With this convention step(z) is
    exactly the derivative torch uses for ReLU.)
    """
    return (z > 0).astype(z.dtype)


def sigmoid(z):
    """s(z) = 1 / (1 + e^-z), computed without overflow for large |z|."""
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def sigmoid_backward(s, dL_ds):
    """sigmoid'(z) = s(z) (1 - s(z)), so dL/dz = dL/ds * s (1 - s)."""
    return dL_ds * (1.0 - s) * s


def tanh(z):
    """t = tanh(z)."""
    return np.tanh(z)


def tanh_backward(t, dL_dt):
    """tanh'(z) = 1 - tanh(z)^2."""
    return dL_dt * (1.0 - t * t)


def relu(z):
    """a = max(0, z)."""
    return np.maximum(z, 0)


def relu_backward(z, dL_da):
    """relu'(z) = 1 if z > 0 else 0; at the kink z = 0 the subgradient 0 is used (torch's choice)."""
    return dL_da * (z > 0)


def leaky_relu(z, negative_slope=0.01):
    """a = z if z > 0 else slope * z."""
    return np.where(z > 0, z, z * negative_slope)


def leaky_relu_backward(z, dL_da, negative_slope=0.01):
    """leaky_relu'(z) = 1 if z > 0 else slope (slope at z = 0, as torch)."""
    return np.where(z > 0, dL_da, dL_da * negative_slope)


def softmax(z, dim=1):
    """s_i = e^{z_i} / sum_j e^{z_j} along ``dim`` (the max is subtracted first for stability)."""
    e = np.exp(z - z.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def softmax_backward(s, dL_ds, dim=1):
    """ds_i/dz_j = s_i (δ_ij - s_j), so dL/dz = s * (dL/ds - sum_j dL/ds_j s_j)."""
    return s * (dL_ds - (dL_ds * s).sum(axis=dim, keepdims=True))


# ---------------------------------------------------------------- layers

class Identity(Module):
    """a = z."""

    def forward(self, z):
        return identity(z)

    def backward(self, dL_da):
        return dL_da


class Step(Module):
    """a = 1 if z > 0 else 0. Forward only: ``backward`` raises NoGradientError."""

    def forward(self, z):
        return step(z)

    def backward(self, dL_da):
        raise NoGradientError(
            "step has no useful derivative: it is 0 wherever it is defined and undefined at z = 0, "
            "so backpropagation gets no signal through it. Compare its forward pass only, or use "
            "'sigmoid' as a differentiable step.")


class Sigmoid(Module):
    """a = 1 / (1 + e^-z);  da/dz = a (1 - a)."""

    def forward(self, z):
        self.a = sigmoid(z)
        return self.a

    def backward(self, dL_da):
        return sigmoid_backward(self.a, dL_da)


class Tanh(Module):
    """a = tanh(z);  da/dz = 1 - a^2."""

    def forward(self, z):
        self.a = tanh(z)
        return self.a

    def backward(self, dL_da):
        return tanh_backward(self.a, dL_da)


class ReLU(Module):
    """a = max(0, z);  da/dz = 1 if z > 0 else 0 (0 at the kink, as torch)."""

    def forward(self, z):
        self.z = z
        return relu(z)

    def backward(self, dL_da):
        return relu_backward(self.z, dL_da)


class LeakyReLU(Module):
    """a = z if z > 0 else slope * z;  da/dz = 1 if z > 0 else slope."""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, z):
        self.z = z
        return leaky_relu(z, self.negative_slope)

    def backward(self, dL_da):
        return leaky_relu_backward(self.z, dL_da, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Softmax(Module):
    """a_i = e^{z_i} / sum_j e^{z_j} over the class dimension;  da_i/dz_j = a_i (δ_ij - a_j)."""

    def __init__(self, dim=1):
        super().__init__()
        self.dim = dim

    def forward(self, z):
        self.a = softmax(z, self.dim)
        return self.a

    def backward(self, dL_da):
        return softmax_backward(self.a, dL_da, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


ACTIVATIONS = {
    "identity": Identity,
    "step": Step,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "softmax": Softmax,
}


def make_activation(name, **kwargs):
    """Build the activation layer registered under ``name``."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name](**kwargs)
