"""Activations as layers. Each pure function's docstring gives the formula and its derivative;
each layer's ``backward`` sits right under its ``forward``.

Registry keys are shared with torch_ref/activations.py. Each layer's ``kinks`` lists the inputs z
where its derivative jumps (finite differences cannot see through them); the derivative there is
torch's choice, stated in the docstring.
"""
import math

import numpy as np

from backprop_oracle.keys import build
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

    Large |z| raise no warning: where e^-z overflows (z below -709.78 in float64, -88.72 in
    float32) it is inf and s = 1 / (1 + inf) = 0, off by less than the smallest normal float (the
    exact s is below it); where e^-z underflows to 0 (z above 745), s = 1, the float nearest.
    """
    e = np.negative(z, out=_float_like(z) if out is None else out)
    _exp_quietly(e)                                        # e^-z
    one = _ONE.get(e.dtype, 1.0)
    e += one                                               # 1 + e^-z
    return np.divide(one, e, out=e)                        # (np.reciprocal: the same bits, slower)


def sigmoid_backward(s, dL_ds, out=None):
    """sigmoid'(z) = s(z) (1 - s(z)), so dL/dz = dL/ds * s (1 - s)."""
    d = np.subtract(_ONE.get(s.dtype, 1.0), s, out=out)    # 1 - s
    d *= dL_ds
    d *= s
    return d


# The number 1 as a 0-d array of each float dtype, for the formulas above: NumPy converts a Python
# float operand anew at every call (about 0.2 µs, a tenth of a small layer's call); an array of the
# operand's own dtype gives the same numbers (float32 arithmetic stays float32).
_ONE = {np.dtype(t): np.ones((), t) for t in (np.float32, np.float64)}

try:        # NumPy's own floating-point error state, set as np.errstate sets it, without its class
    from numpy._core._ufunc_config import _extobj_contextvar, _make_extobj
except ImportError:                                        # pragma: no cover - another NumPy layout
    _extobj_contextvar = _make_extobj = None


def _exp_quietly(e):
    """e = e^e in place, where overflow (inf) and underflow (0) raise no warning: exactly
    ``with np.errstate(over="ignore", under="ignore"): np.exp(e, out=e)`` (the other error
    settings stay the caller's), at a quarter of that statement's 0.8 µs of Python."""
    if _make_extobj is None:                               # pragma: no cover - another NumPy layout
        with np.errstate(over="ignore", under="ignore"):
            return np.exp(e, out=e)
    token = _extobj_contextvar.set(_make_extobj(over="ignore", under="ignore"))
    try:
        return np.exp(e, out=e)
    finally:
        _extobj_contextvar.reset(token)


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


# ---------------------------------------------------------------- the newer activations
# Each as torch defines it (torch.nn.functional), forward then derivative; at a kink the derivative
# is the side torch's backward takes.

_SQRT_HALF = math.sqrt(0.5)               # 1/√2
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_KAPPA = 0.044715
SELU_ALPHA = 1.6732632423543772848170429916717     # torch's constants (Klambauer et al.)
SELU_SCALE = 1.0507009873554804934193349852946
_erf = np.frompyfunc(math.erf, 1, 1)      # NumPy has no erf; math.erf is exact to a few ulps


def elu(z, alpha=1.0, out=None):
    """a = z if z > 0 else alpha (e^z - 1)."""
    a = np.minimum(z, 0, out=_float_like(z) if out is None else out)
    np.expm1(a, out=a)
    a *= alpha                                            # alpha (e^min(z, 0) - 1)
    np.copyto(a, z, where=z > 0)
    return a


def elu_backward(z, dL_da, alpha=1.0, out=None):
    """elu'(z) = 1 if z > 0 else alpha e^z (alpha at z = 0: torch takes the left side)."""
    d = np.minimum(z, 0, out=out)
    np.exp(d, out=d)
    d *= alpha
    np.copyto(d, 1.0, where=z > 0)
    d *= dL_da
    return d


def gelu(z, approximate="none", out=None):
    """a = z Φ(z), Φ(z) = ½ (1 + erf(z / √2)) the normal distribution's cdf;
    approximate="tanh": a = ½ z (1 + tanh(√(2/π) (z + 0.044715 z³)))."""
    a = _float_like(z) if out is None else out
    if approximate == "tanh":
        np.multiply(z, z, out=a)
        a *= _GELU_KAPPA
        a += 1.0
        a *= z
        a *= _SQRT_2_OVER_PI                               # √(2/π) (z + 0.044715 z³)
        np.tanh(a, out=a)
        a += 1.0
        a *= z
        a *= 0.5
        return a
    a[...] = _erf(np.multiply(z, _SQRT_HALF, dtype=np.float64))
    a += 1.0
    a *= 0.5                                               # Φ(z)
    a *= z
    return a


def gelu_backward(z, dL_da, approximate="none", out=None):
    """gelu'(z) = Φ(z) + z φ(z), φ(z) = e^{-z²/2} / √(2π) the normal pdf;
    approximate="tanh": with t = tanh(√(2/π) (z + 0.044715 z³)),
    gelu'(z) = ½ (1 + t) + ½ z (1 - t²) √(2/π) (1 + 3 · 0.044715 z²)."""
    z64 = np.asarray(z, dtype=np.float64)
    if approximate == "tanh":
        t = np.tanh(_SQRT_2_OVER_PI * (z64 + _GELU_KAPPA * z64 ** 3))
        d = 0.5 * (1.0 + t) + 0.5 * z64 * (1.0 - t * t) * _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_KAPPA * z64 * z64)
    else:
        cdf = 0.5 * (1.0 + _erf(z64 * _SQRT_HALF).astype(np.float64))       # Φ(z)
        pdf = np.exp(-0.5 * z64 * z64) * _INV_SQRT_2PI                       # φ(z)
        d = cdf + z64 * pdf
    return np.multiply(dL_da, d, out=out, casting="unsafe") if out is not None else (dL_da * d).astype(
        np.result_type(z, dL_da))


def silu(z, out=None):
    """a = z s(z), s the sigmoid (torch's SiLU, also called swish)."""
    a = sigmoid(z, out=out)
    a *= z
    return a


def silu_backward(z, dL_da, out=None):
    """silu'(z) = s(z) (1 + z (1 - s(z)))."""
    s = sigmoid(z)
    d = np.subtract(1.0, s, out=out)                       # 1 - s
    d *= z
    d += 1.0
    d *= s
    d *= dL_da
    return d


def softplus(z, beta=1.0, threshold=20.0, out=None):
    """a = (1/β) log(1 + e^{βz}) where βz <= threshold, else z (torch returns the input there:
    it differs from the formula by under e^{-threshold})."""
    bz = np.multiply(z, beta, out=_float_like(z) if out is None else out)
    linear = bz > threshold
    with np.errstate(over="ignore"):                      # e^{βz} of a large z: inf, replaced just below
        np.exp(bz, out=bz)
    np.log1p(bz, out=bz)
    bz /= beta
    np.copyto(bz, z, where=linear)
    return bz


def softplus_backward(z, dL_da, beta=1.0, threshold=20.0, out=None):
    """softplus'(z) = s(βz) = e^{βz} / (1 + e^{βz}) where βz <= threshold, else 1 (at βz = threshold
    the left side, s(threshold), as torch)."""
    bz = np.multiply(z, beta)
    d = sigmoid(bz, out=out)
    np.copyto(d, 1.0, where=bz > threshold)
    d *= dL_da
    return d


def hardtanh(z, min_val=-1.0, max_val=1.0, out=None):
    """a = min_val if z < min_val, max_val if z > max_val, else z."""
    return np.clip(z, min_val, max_val, out=out)


def hardtanh_backward(z, dL_da, min_val=-1.0, max_val=1.0, out=None):
    """hardtanh'(z) = 1 if min_val < z < max_val else 0 (0 at both kinks, as torch)."""
    inside = (z > min_val) & (z < max_val)
    d = np.multiply(dL_da, inside, out=out)
    return d


def hardsigmoid(z, out=None):
    """a = 0 if z <= -3, 1 if z >= 3, else z / 6 + 1/2."""
    a = np.divide(z, 6.0, out=_float_like(z) if out is None else out)
    a += 0.5
    return np.clip(a, 0.0, 1.0, out=a)


def hardsigmoid_backward(z, dL_da, out=None):
    """hardsigmoid'(z) = 1/6 if -3 < z < 3 else 0 (0 at both kinks, as torch). torch multiplies by
    the float32 nearest 1/6 (0.1666666716...) in every dtype; so does this, to agree in float64."""
    inside = (z > -3.0) & (z < 3.0)
    d = np.multiply(dL_da, inside, out=out)
    d *= _TORCH_ONE_SIXTH
    return d


_TORCH_ONE_SIXTH = float(np.float32(1.0) / np.float32(6.0))


def hardswish(z, out=None):
    """a = 0 if z <= -3, z if z >= 3, else z (z + 3) / 6."""
    a = np.add(z, 3.0, out=_float_like(z) if out is None else out)
    np.clip(a, 0.0, 6.0, out=a)                            # relu6(z + 3)
    a *= z
    a /= 6.0
    return a


def hardswish_backward(z, dL_da, out=None):
    """hardswish'(z) = 0 if z <= -3, z / 3 + 1/2 if -3 < z < 3, else 1: at both kinks torch takes
    the outer side (0 at z = -3, 1 at z = 3)."""
    d = np.divide(z, 3.0, out=out if out is not None else _float_like(np.asarray(dL_da)))
    d += 0.5
    np.copyto(d, 0.0, where=z <= -3.0)
    np.copyto(d, 1.0, where=z >= 3.0)
    d *= dL_da
    return d


def log_softmax(z, dim=1, out=None, sums=None):
    """a_i = z_i - log sum_j e^{z_j} along ``dim`` (computed as z_i - m - log sum_j e^{z_j - m},
    m the max). (``sums``: an array of z's shape with ``dim`` reduced to 1, to reuse.)"""
    m = np.max(z, axis=dim, keepdims=True, out=sums)
    a = np.subtract(z, m, out=_float_like(z) if out is None else out)     # z - m
    lse = np.log(np.sum(np.exp(a), axis=dim, keepdims=True))              # log sum_j e^{z_j - m}
    a -= lse
    return a


def log_softmax_backward(a, dL_da, dim=1, out=None, sums=None):
    """da_i/dz_j = δ_ij - softmax(z)_j, so dL/dz = dL/da - e^a sum_j dL/da_j (e^a is the softmax)."""
    sums = np.sum(dL_da, axis=dim, keepdims=True, out=sums)               # sum_j dL/da_j
    d = np.exp(a, out=out)
    d *= sums
    np.subtract(dL_da, d, out=d)
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
    kinks = (0.0,)

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
    kinks = (0.0,)

    def forward(self, z):
        self.z = z
        return relu(z, out=self.buffer("a", z.shape, z.dtype))

    def backward(self, dL_da):
        return relu_backward(self.z, dL_da, out=self.buffer("dL_dz", self.z.shape, _result(self.z, dL_da)))


class LeakyReLU(Module):
    """a = z if z > 0 else slope * z;  da/dz = 1 if z > 0 else slope."""
    kinks = (0.0,)

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


class _Elementwise(Module):
    """An elementwise activation whose derivative is computed from its input z (kept on ``self``)."""

    def forward(self, z):
        self.z = z
        return self.f(z, out=self.buffer("a", z.shape, _floating(z)))

    def backward(self, dL_da):
        return self.df(self.z, dL_da, out=self.buffer("dL_dz", self.z.shape, _result(self.z, dL_da)))


class ELU(_Elementwise):
    """a = z if z > 0 else alpha (e^z - 1);  da/dz = 1 if z > 0 else alpha e^z (alpha at 0, as torch)."""

    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = float(alpha)

    @property
    def kinks(self):
        return () if self.alpha == 1.0 else (0.0,)

    def f(self, z, out=None):
        return elu(z, self.alpha, out=out)

    def df(self, z, g, out=None):
        return elu_backward(z, g, self.alpha, out=out)

    def extra_repr(self):
        return f"alpha={self.alpha}"


class SELU(_Elementwise):
    """a = scale · elu(z, alpha) with torch's alpha = 1.67326..., scale = 1.05070...;
    da/dz = scale if z > 0 else scale · alpha e^z (scale · alpha at 0, as torch)."""
    kinks = (0.0,)

    def f(self, z, out=None):
        a = elu(z, SELU_ALPHA, out=out)
        a *= SELU_SCALE
        return a

    def df(self, z, g, out=None):
        d = elu_backward(z, g, SELU_ALPHA, out=out)
        d *= SELU_SCALE
        return d


class GELU(_Elementwise):
    """a = z Φ(z);  da/dz = Φ(z) + z φ(z). approximate="tanh": the tanh form (see gelu_backward)."""
    kinks = ()

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def f(self, z, out=None):
        return gelu(z, self.approximate, out=out)

    def df(self, z, g, out=None):
        return gelu_backward(z, g, self.approximate, out=out)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class SiLU(_Elementwise):
    """a = z s(z);  da/dz = s(z) (1 + z (1 - s(z)))."""
    kinks = ()
    f, df = staticmethod(silu), staticmethod(silu_backward)


class Softplus(_Elementwise):
    """a = (1/β) log(1 + e^{βz}) (z where βz > threshold);  da/dz = s(βz) (1 where βz > threshold)."""

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta, self.threshold = float(beta), float(threshold)

    @property
    def kinks(self):
        return (self.threshold / self.beta,)

    def f(self, z, out=None):
        return softplus(z, self.beta, self.threshold, out=out)

    def df(self, z, g, out=None):
        return softplus_backward(z, g, self.beta, self.threshold, out=out)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class Hardtanh(_Elementwise):
    """a = clamp(z, min_val, max_val);  da/dz = 1 if min_val < z < max_val else 0 (0 at the kinks)."""

    def __init__(self, min_val=-1.0, max_val=1.0):
        super().__init__()
        if not max_val > min_val:
            raise ValueError(f"hardtanh needs max_val > min_val, got min_val={min_val}, max_val={max_val}")
        self.min_val, self.max_val = float(min_val), float(max_val)

    @property
    def kinks(self):
        return (self.min_val, self.max_val)

    def f(self, z, out=None):
        return hardtanh(z, self.min_val, self.max_val, out=out)

    def df(self, z, g, out=None):
        return hardtanh_backward(z, g, self.min_val, self.max_val, out=out)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}"


class Hardsigmoid(_Elementwise):
    """a = clamp(z / 6 + 1/2, 0, 1);  da/dz = 1/6 if -3 < z < 3 else 0 (0 at the kinks)."""
    kinks = (-3.0, 3.0)
    f, df = staticmethod(hardsigmoid), staticmethod(hardsigmoid_backward)


class Hardswish(_Elementwise):
    """a = z · clamp(z + 3, 0, 6) / 6;  da/dz = 0 if z <= -3, z/3 + 1/2 if -3 < z < 3, else 1."""
    kinks = (-3.0, 3.0)
    f, df = staticmethod(hardswish), staticmethod(hardswish_backward)


class LogSoftmax(Module):
    """a_i = z_i - log sum_j e^{z_j} over the class dimension;  da_i/dz_j = δ_ij - softmax(z)_j."""
    kinks = ()

    def __init__(self, dim=1):
        super().__init__()
        self.dim = dim

    def forward(self, z):
        dtype = _floating(z)
        self.a = log_softmax(z, self.dim, out=self.buffer("a", z.shape, dtype),
                             sums=self.buffer("sums", _reduced(z.shape, self.dim), dtype))
        return self.a

    def backward(self, dL_da):
        dtype = _result(self.a, dL_da)
        return log_softmax_backward(self.a, dL_da, self.dim, out=self.buffer("dL_dz", self.a.shape, dtype),
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
    """Build the activation layer registered under ``name``: a key, or a key with torch's arguments,
    "elu:alpha=0.5" (see backprop_oracle/keys.py)."""
    return build(ACTIVATIONS, "activation", name, **kwargs)
