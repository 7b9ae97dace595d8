"""Activations as layers. Each pure function's docstring gives the formula and its derivative;
each layer's ``backward`` sits right under its ``forward``.

Registry keys are shared with torch_ref/activations.py.
"""
import numpy as np

from backprop_oracle.manual.module import Module


class NoGradientError(RuntimeError):
    """Raised when a gradient is asked of a function that has no useful derivative."""


# ---------------------------------------------------------------- pure functions
# Each takes an optional ``out``, an array of the result's shape to write into (the layers pass
# one from their workspace so that a training step allocates nothing); without it the result is new.

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


def sigmoid(z, out=None):
    """s(z) = 1 / (1 + e^-z).

    e^-z never overflows: -z is capped where e^-z would pass the largest float (at 708.8 in
    float64, 87.7 in float32). Below z = -708.8 the exact s is under 1e-307, and so is this one.
    """
    e = np.negative(z, out=_float_like(z) if out is None else out)
    np.minimum(e, _exp_cap(e.dtype), out=e)
    np.exp(e, out=e)                                       # e^-z
    e += 1.0                                               # 1 + e^-z
    return np.reciprocal(e, out=e)


_EXP_CAPS = {}


def _exp_cap(dtype):
    """One less than log(the largest float of ``dtype``): e to this power is finite."""
    if dtype not in _EXP_CAPS:
        _EXP_CAPS[dtype] = float(np.log(np.finfo(dtype).max)) - 1.0
    return _EXP_CAPS[dtype]


def sigmoid_backward(s, dL_ds, out=None):
    """sigmoid'(z) = s(z) (1 - s(z)), so dL/dz = dL/ds * s (1 - s)."""
    d = np.subtract(1.0, s, out=out)                       # 1 - s
    d *= dL_ds
    d *= s
    return d


def tanh(z, out=None):
    """t = tanh(z)."""
    return np.tanh(z, out=out)


def tanh_backward(t, dL_dt, out=None):
    """tanh'(z) = 1 - tanh(z)^2."""
    d = np.multiply(t, t, out=out)
    np.subtract(1.0, d, out=d)                             # 1 - t^2
    d *= dL_dt
    return d


def relu(z, out=None):
    """a = max(0, z)."""
    return np.maximum(z, 0, out=out)


def relu_backward(z, dL_da, out=None):
    """relu'(z) = 1 if z > 0 else 0; at the kink z = 0 the subgradient 0 is used (torch's choice)."""
    d = (z > 0).astype(np.result_type(z, dL_da)) if out is None else np.greater(z, 0, out=out)
    d *= dL_da                                            # dL/da * [z > 0]
    return d


def leaky_relu(z, negative_slope=0.01, out=None, positive=None):
    """a = z if z > 0 else slope * z.  (``positive``: a boolean array for z > 0, to reuse.)"""
    positive = np.greater(z, 0, out=positive)
    a = np.multiply(z, negative_slope, out=out)
    np.copyto(a, z, where=positive)
    return a


def leaky_relu_backward(z, dL_da, negative_slope=0.01, out=None, positive=None):
    """leaky_relu'(z) = 1 if z > 0 else slope (slope at z = 0, as torch)."""
    positive = np.greater(z, 0, out=positive)
    d = np.multiply(dL_da, negative_slope, out=out)
    np.copyto(d, dL_da, where=positive)
    return d


def _float_like(z):
    """A new array of z's shape for a result that must be floating point (float32 stays float32)."""
    return np.empty(z.shape, _floating(z))


def _reduced(shape, dim):
    return tuple(1 if i == dim % len(shape) else n for i, n in enumerate(shape))


def softmax(z, dim=1, out=None, sums=None):
    """s_i = e^{z_i} / sum_j e^{z_j} along ``dim`` (the max is subtracted first for stability).
    (``sums``: an array of z's shape with ``dim`` reduced to 1, to reuse.)"""
    sums = np.max(z, axis=dim, keepdims=True, out=sums)
    e = np.subtract(z, sums, out=_float_like(z) if out is None else out)
    np.exp(e, out=e)                                       # e^{z_i - max}
    e /= np.sum(e, axis=dim, keepdims=True, out=sums)
    return e


def softmax_backward(s, dL_ds, dim=1, out=None, sums=None):
    """ds_i/dz_j = s_i (δ_ij - s_j), so dL/dz = s * (dL/ds - sum_j dL/ds_j s_j)."""
    d = np.multiply(dL_ds, s, out=out)
    sums = np.sum(d, axis=dim, keepdims=True, out=sums)    # sum_j dL/ds_j s_j
    np.subtract(dL_ds, sums, out=d)
    d *= s
    return d


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
        self.a = sigmoid(z, out=self.buffer("a", z.shape, _floating(z)))
        return self.a

    def backward(self, dL_da):
        return sigmoid_backward(self.a, dL_da, out=self.buffer("dL_dz", self.a.shape, _result(self.a, dL_da)))


class Tanh(Module):
    """a = tanh(z);  da/dz = 1 - a^2."""

    def forward(self, z):
        self.a = tanh(z, out=self.buffer("a", z.shape, _floating(z)))
        return self.a

    def backward(self, dL_da):
        return tanh_backward(self.a, dL_da, out=self.buffer("dL_dz", self.a.shape, _result(self.a, dL_da)))


class ReLU(Module):
    """a = max(0, z);  da/dz = 1 if z > 0 else 0 (0 at the kink, as torch)."""

    def forward(self, z):
        self.z = z
        return relu(z, out=self.buffer("a", z.shape, z.dtype))

    def backward(self, dL_da):
        return relu_backward(self.z, dL_da, out=self.buffer("dL_dz", self.z.shape, _result(self.z, dL_da)))


class LeakyReLU(Module):
    """a = z if z > 0 else slope * z;  da/dz = 1 if z > 0 else slope."""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, z):
        self.z = z
        return leaky_relu(z, self.negative_slope, out=self.buffer("a", z.shape, z.dtype),
                          positive=self.buffer("z > 0", z.shape, np.bool_))

    def backward(self, dL_da):
        return leaky_relu_backward(self.z, dL_da, self.negative_slope,
                                   out=self.buffer("dL_dz", self.z.shape, _result(self.z, dL_da)),
                                   positive=self.buffer("z > 0", self.z.shape, np.bool_))

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Softmax(Module):
    """a_i = e^{z_i} / sum_j e^{z_j} over the class dimension;  da_i/dz_j = a_i (δ_ij - a_j)."""

    def __init__(self, dim=1):
        super().__init__()
        self.dim = dim

    def forward(self, z):
        dtype = _floating(z)
        self.a = softmax(z, self.dim, out=self.buffer("a", z.shape, dtype),
                         sums=self.buffer("sums", _reduced(z.shape, self.dim), dtype))
        return self.a

    def backward(self, dL_da):
        dtype = _result(self.a, dL_da)
        return softmax_backward(self.a, dL_da, self.dim, out=self.buffer("dL_dz", self.a.shape, dtype),
                                sums=self.buffer("sums", _reduced(self.a.shape, self.dim), dtype))

    def extra_repr(self):
        return f"dim={self.dim}"


def _floating(z):
    """z's dtype if it is floating point, else float64 (a result such as tanh(z) must be a float)."""
    return z.dtype if z.dtype.kind == "f" else np.result_type(z, np.float32)


def _result(a, b):
    """The dtype NumPy gives an elementwise result of a and b (float32 stays float32)."""
    dtype = a.dtype
    return dtype if dtype == getattr(b, "dtype", None) and dtype.kind == "f" else np.result_type(a, b)


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
