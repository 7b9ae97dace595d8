"""Initialisers. Each draws a weight array of shape (out, in) from a numpy Generator.

The comparison makes its initial values here, once, and copies them into both sides.
Registry keys are shared with torch_ref/init.py. Biases start at zero unless asked otherwise.
"""
import numpy as np

from backprop_oracle.manual.dtypes import as_dtype


def zeros(rng, shape):
    """W = 0."""
    return np.zeros(shape)


def normal(rng, shape, std=0.01):
    """W ~ N(0, std^2): the "small random numbers" of the seeds."""
    return rng.normal(0.0, std, size=shape)


def uniform(rng, shape, a=-0.05, b=0.05):
    """W ~ U(a, b)."""
    return rng.uniform(a, b, size=shape)


def xavier_uniform(rng, shape, gain=1.0):
    """Glorot: W ~ U(-r, r), r = gain sqrt(6 / (fan_in + fan_out)); keeps variance for tanh/sigmoid."""
    fan_out, fan_in = shape
    r = gain * np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-r, r, size=shape)


def xavier_normal(rng, shape, gain=1.0):
    """Glorot: W ~ N(0, gain^2 2 / (fan_in + fan_out))."""
    fan_out, fan_in = shape
    return rng.normal(0.0, gain * np.sqrt(2.0 / (fan_in + fan_out)), size=shape)


def he_normal(rng, shape):
    """He / Kaiming (fan_in, ReLU): W ~ N(0, 2 / fan_in)."""
    fan_in = shape[1]
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)


def he_uniform(rng, shape):
    """He / Kaiming (fan_in, ReLU): W ~ U(-r, r), r = sqrt(6 / fan_in)."""
    fan_in = shape[1]
    r = np.sqrt(6.0 / fan_in)
    return rng.uniform(-r, r, size=shape)


INITIALISERS = {
    "zeros": zeros,
    "normal": normal,
    "uniform": uniform,
    "xavier_uniform": xavier_uniform,
    "xavier_normal": xavier_normal,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
}


def init_parameters(model, scheme="xavier_uniform", rng=None, *, explicit=None, zero_bias=True,
                    dtype="float64", **kwargs):
    """Make a state dict for ``model`` (anything with ``named_parameters``): weights drawn by
    ``scheme`` from ``rng`` in a fixed order (module by module), biases zero (or drawn with the
    same scheme if ``zero_bias`` is False, as a (out, 1) column). ``explicit`` maps names to
    given arrays, which are used as they are (the OR gate's w = [0.1, 0.6], b = 0)."""
    if scheme not in INITIALISERS:
        raise ValueError(f"unknown initialiser {scheme!r}; choose one of: {', '.join(INITIALISERS)}")
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    explicit = dict(explicit or {})
    dt = as_dtype(dtype)
    init = INITIALISERS[scheme]
    state = {}
    names = [name for name, _ in model.named_parameters()]
    unknown = sorted(set(explicit) - set(names))
    if unknown:
        raise KeyError(f"explicit values for unknown parameters {unknown}; the model has {names}")
    for name, p in model.named_parameters():
        if name in explicit:
            value = np.asarray(explicit[name], dtype=np.float64)
            if value.shape != p.shape:
                raise ValueError(f"explicit value for {name!r} has shape {value.shape}, expected {p.shape}")
        elif name.endswith("bias"):
            value = np.zeros(p.shape) if zero_bias else init(rng, (p.shape[0], 1), **kwargs).ravel()
        else:
            value = init(rng, p.shape, **kwargs)
        state[name] = value.astype(dt)
    return state
