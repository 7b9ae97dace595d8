"""Initialisers. Each draws a weight array of shape (out, in), or a convolution's (out, in/groups,
*kernel), from a numpy Generator; fans are torch's (``fans``).

The comparison makes its initial values here, once, and copies them into both sides.
Registry keys are shared with torch_ref/init.py. Biases start at zero unless asked otherwise.
"""
import numpy as np

from backprop_oracle.manual.dtypes import as_dtype
from backprop_oracle.manual.normalization import LayerNorm, _BatchNorm


def fans(shape):
    """(fan_in, fan_out) as torch.nn.init computes them: a weight (out, in, *kernel) has fan_in =
    in · prod(kernel) and fan_out = out · prod(kernel) (a linear layer's (out, in): in and out)."""
    if len(shape) < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    receptive = int(np.prod(shape[2:]))
    return shape[1] * receptive, shape[0] * receptive


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
    fan_in, fan_out = fans(shape)
    r = gain * np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-r, r, size=shape)


def xavier_normal(rng, shape, gain=1.0):
    """Glorot: W ~ N(0, gain^2 2 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape)
    return rng.normal(0.0, gain * np.sqrt(2.0 / (fan_in + fan_out)), size=shape)


def he_normal(rng, shape):
    """He / Kaiming (fan_in, ReLU): W ~ N(0, 2 / fan_in)."""
    fan_in = fans(shape)[0]
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)


def he_uniform(rng, shape):
    """He / Kaiming (fan_in, ReLU): W ~ U(-r, r), r = sqrt(6 / fan_in)."""
    fan_in = fans(shape)[0]
    r = np.sqrt(6.0 / fan_in)
    return rng.uniform(-r, r, size=shape)


# torch.nn.init.calculate_gain: the factor that keeps the variance of a layer's output for each nonlinearity.
_GAINS = {"linear": 1.0, "conv1d": 1.0, "conv2d": 1.0, "conv3d": 1.0, "conv_transpose1d": 1.0,
          "conv_transpose2d": 1.0, "conv_transpose3d": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3, "relu": np.sqrt(2.0), "selu": 3.0 / 4}


def calculate_gain(nonlinearity, param=None):
    """torch.nn.init.calculate_gain: 1 (linear, sigmoid), 5/3 (tanh), sqrt(2) (relu),
    sqrt(2 / (1 + slope²)) (leaky_relu, slope = param, default 0.01), 3/4 (selu)."""
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return float(np.sqrt(2.0 / (1 + slope ** 2)))
    if nonlinearity not in _GAINS:
        raise ValueError(f"Unsupported nonlinearity {nonlinearity}")
    return float(_GAINS[nonlinearity])


def _fan(shape, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = fans(shape)
    return fan_in if mode == "fan_in" else fan_out


def kaiming_uniform(rng, shape, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """He / Kaiming (torch.nn.init.kaiming_uniform_): W ~ U(-r, r), r = gain · sqrt(3 / fan),
    gain = calculate_gain(nonlinearity, a), fan = fan_in or fan_out (``mode``)."""
    std = calculate_gain(nonlinearity, a) / np.sqrt(_fan(shape, mode))
    r = np.sqrt(3.0) * std
    return rng.uniform(-r, r, size=shape)


def kaiming_normal(rng, shape, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """He / Kaiming (torch.nn.init.kaiming_normal_): W ~ N(0, std²), std = gain / sqrt(fan)."""
    return rng.normal(0.0, calculate_gain(nonlinearity, a) / np.sqrt(_fan(shape, mode)), size=shape)


def orthogonal(rng, shape, gain=1.0):
    """torch.nn.init.orthogonal_: W = gain · Q, Q from the QR decomposition of a N(0, 1) matrix
    (transposed when it is wide), its columns' signs fixed by diag(R): orthonormal rows or columns.
    A convolution's weight (out, in, *kernel) is made as the matrix (out, in · prod(kernel))."""
    rows = shape[0]
    cols = int(np.prod(shape[1:]))
    flat = rng.normal(0.0, 1.0, size=(rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return gain * q.reshape(shape)


def trunc_normal(rng, shape, mean=0.0, std=1.0, a=-2.0, b=2.0):
    """torch.nn.init.trunc_normal_: W ~ N(mean, std²) restricted to [a, b] (absolute bounds, not in
    units of std); a value drawn outside is drawn again."""
    if not a < b:
        raise ValueError(f"trunc_normal: a must be less than b, got a={a}, b={b}")
    out = rng.normal(mean, std, size=shape)
    bad = (out < a) | (out > b)
    for _ in range(1000):
        if not bad.any():
            return out
        out[bad] = rng.normal(mean, std, size=int(bad.sum()))
        bad = (out < a) | (out > b)
    raise ValueError(f"trunc_normal: [a, b] = [{a}, {b}] holds almost none of N({mean}, {std}²)")


INITIALISERS = {
    "zeros": zeros,
    "normal": normal,
    "uniform": uniform,
    "xavier_uniform": xavier_uniform,
    "xavier_normal": xavier_normal,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "kaiming_uniform": kaiming_uniform,
    "kaiming_normal": kaiming_normal,
    "orthogonal": orthogonal,
    "trunc_normal": trunc_normal,
}


def init_parameters(model, scheme="xavier_uniform", rng=None, *, explicit=None, zero_bias=True,
                    dtype="float64", **kwargs):
    """Make a state dict for ``model`` (anything with ``named_parameters``): weights drawn by
    ``scheme`` from ``rng`` in a fixed order (module by module), biases zero (or drawn with the
    same scheme if ``zero_bias`` is False, as a (out, 1) column). ``explicit`` maps names to
    given arrays, which are used as they are (the OR gate's w = [0.1, 0.6], b = 0). A
    normalisation layer's scale and shift (BatchNorm's, LayerNorm's weight and bias) start at one
    and zero, as torch makes them: an initialiser draws the weights of layers that map."""
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
        elif _normalises(model, name):
            value = np.ones(p.shape) if name.endswith("weight") else np.zeros(p.shape)
        elif name.endswith("bias"):
            value = np.zeros(p.shape) if zero_bias else init(rng, (p.shape[0], 1), **kwargs).ravel()
        else:
            value = init(rng, p.shape, **kwargs)
        state[name] = value.astype(dt)
    return state


def _normalises(model, name):
    """Whether parameter ``name`` ("3.weight") belongs to a batch or layer normalisation module."""
    owner = model
    for part in name.split(".")[:-1]:
        owner = owner[int(part)] if part.isdigit() and hasattr(owner, "__getitem__") else getattr(owner, part, None)
    return isinstance(owner, (_BatchNorm, LayerNorm))
