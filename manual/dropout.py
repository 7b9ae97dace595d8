"""Dropout with torch.nn.Dropout's contract (p the probability of zeroing, inverted scaling), and
the masks a comparison shares between the two sides.

    forward (training)   keep ~ Bernoulli(1 - p) per element,   y = x keep / (1 - p)
    backward             dL/dx = dL/dy keep / (1 - p)    (the same mask, the same scale)
    evaluation           y = x,  dL/dx = dL/dy

torch draws its mask from its own generator, so two sides can only be compared element by element
if they use one mask. Here the mask is never drawn inside a layer's arithmetic: a Dropout takes it
from a *mask provider*, a function ``provider(shape, p) -> boolean keep mask``. By default a manual
Dropout's provider draws from the NumPy Generator it is given (``rng``). To compare, give both sides
providers of one ``DropoutMasks``: it draws every mask once from one Generator and hands the k-th
mask of a layer to whichever side asks for it k-th (torch_ref.Dropout takes the same providers).
"""
import numpy as np

from backprop_oracle.manual.module import Module


def dropout(x, keep, p):
    """y = x keep / (1 - p): the kept elements scaled up so that E[y] = x (y = 0 when p = 1)."""
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    return x * keep * np.asarray(scale, dtype=x.dtype)


def dropout_backward(dL_dy, keep, p):
    """dL/dx = dL/dy keep / (1 - p): gradient flows only through the kept elements, scaled alike."""
    return dropout(dL_dy, keep, p)


def check_p(p):
    """p as a float, refused (as torch refuses it) outside [0, 1]."""
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    return float(p)


def draw_mask(rng, shape, p):
    """A boolean keep mask of ``shape``: each element kept with probability 1 - p (uniform >= p)."""
    return rng.random(shape) >= p


class DropoutMasks:
    """One Generator's dropout masks, shared by the two sides of a comparison.

    ``provider(key, side)`` is a function (shape, p) -> keep mask for the dropout layer ``key`` (e.g.
    its index in the network) on ``side`` ("manual", "torch"). The k-th call of any side for a key
    gets the k-th mask drawn for that key, so both sides see identical masks whatever order they
    run in; a mask is drawn (``rng.random(shape) >= p``) when first asked for and let go once every
    one of ``sides`` sides has taken it. ``last(key)`` is the latest mask drawn for the key.
    """

    def __init__(self, rng=None, *, sides=("manual", "torch")):
        self.rng = np.random.default_rng() if rng is None else rng
        self.sides = tuple(sides)
        self._drawn = {}          # key -> {index: [mask, sides that took it]}
        self._count = {}          # (key, side) -> how many masks that side took
        self._last = {}

    def take(self, key, side, shape, p):
        if side not in self.sides:
            raise ValueError(f"unknown side {side!r}; the masks are shared by {', '.join(self.sides)}")
        k = self._count.get((key, side), 0)
        self._count[(key, side)] = k + 1
        drawn = self._drawn.setdefault(key, {})
        if k not in drawn:
            drawn[k] = [draw_mask(self.rng, tuple(shape), check_p(p)), set(), float(p)]
            self._last[key] = drawn[k][0]
        mask, took, p_drawn = drawn[k]
        if mask.shape != tuple(shape) or p_drawn != float(p):
            raise ValueError(f"dropout {key!r}: mask {k + 1} was drawn for shape {mask.shape} and p={p_drawn}, "
                             f"{side} asks for {tuple(shape)} and p={p}: the two sides run different layers")
        took.add(side)
        if took == set(self.sides):
            del drawn[k]
        return mask

    def provider(self, key, side):
        """The function (shape, p) -> keep mask that the dropout ``key`` of ``side`` draws from."""
        return lambda shape, p: self.take(key, side, shape, p)

    def last(self, key):
        return self._last.get(key)


class Dropout(Module):
    """In training, y = x keep / (1 - p) with keep ~ Bernoulli(1 - p) per element; in eval, y = x.

    Shape: any; y has x's shape. The mask comes from ``mask``, a provider (shape, p) -> boolean keep
    mask (see DropoutMasks), or else is drawn from ``rng`` (a NumPy Generator; a fresh one if
    None) as ``rng.random(x.shape) >= p``. After a training forward, ``last_mask`` is the mask
    used (True where x was kept), which backward applies again. ``inplace`` writes y into x.
    """

    def __init__(self, p=0.5, inplace=False, *, rng=None, mask=None):
        super().__init__()
        self.p, self.inplace = check_p(p), bool(inplace)
        if mask is not None and not callable(mask):
            raise ValueError("mask must be a function (shape, p) -> boolean keep mask (see DropoutMasks.provider)")
        rng = np.random.default_rng() if rng is None and mask is None else rng
        self.mask_provider = mask if mask is not None else (lambda shape, p: draw_mask(rng, shape, p))
        self.last_mask = None
        self.dropped = False          # whether the last forward applied a mask (training, p > 0)

    def forward(self, x):
        self.dropped = self.training and self.p > 0.0
        if not self.dropped:
            return x
        keep = np.asarray(self.mask_provider(x.shape, self.p))
        if keep.shape != x.shape:
            raise ValueError(f"the dropout mask has shape {keep.shape}, the input {x.shape}")
        self.last_mask = keep.astype(bool, copy=False)
        y = dropout(x, self.last_mask, self.p)
        if self.inplace:
            x[...] = y
            return x
        return y

    def backward(self, dL_dy):
        """dL/dx = dL/dy keep / (1 - p) with the forward's mask (dL/dy itself in eval or when p = 0)."""
        if not self.dropped:
            return dL_dy
        return dropout_backward(dL_dy, self.last_mask, self.p)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"
