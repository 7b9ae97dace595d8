"""Layers written the CS231n way, made into the layer check_layer checks: a forward that returns
``(out, cache)`` and a backward that takes the cache and returns every gradient at once.

    cached_layer(layer)            an object with forward(x) -> (out, cache) and
                                   backward(dout, cache) -> (dx, dgamma, dbeta, ...)
    cached_layer(forward, backward, params={"gamma": g, "beta": b}, args=(bn_param,))
                                   a pair of functions forward(x, gamma, beta, bn_param) -> (out, cache),
                                   backward(dout, cache) -> (dx, dgamma, dbeta)

backward's returned arrays are matched by position: the first is dL/dx, then one gradient per
parameter in the order of ``params`` (for an object without ``params=``: its params dict, else its
float array attributes, in the order it set them). The result says which was matched to which.
A dict with a "mode" key (an argument such as bn_param, or a dict the object keeps) sets the mode:
"train" is training, anything else evaluation. ``buffers`` names running statistics kept in that
dict (or on the object) to compare with torch's after each training forward; in evaluation mode
the dict's running_mean and running_var are given to the torch module even unnamed. The CS231n
assignment's momentum (0.9, the share of the old value) is torch's 0.1, but its running_var is the
biased variance where torch keeps the unbiased one: naming it compares a rule that differs.
"""
import inspect

import numpy as np

from backprop_oracle.compare.errors import CheckError

TORCH_NAMES = {"gamma": "weight", "beta": "bias", "W": "weight", "w": "weight", "b": "bias"}


def _name(obj):
    return getattr(obj, "__qualname__", None) or type(obj).__name__


def takes_cache(backward):
    """True when ``backward`` needs two positional arguments (dout, cache)."""
    try:
        ps = [p for p in inspect.signature(backward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    except (TypeError, ValueError):
        return False
    return len(ps) >= 2


class _Linked(dict):
    """The parameters' arrays; assigning one (as central differences do) assigns the object's too."""

    def __init__(self, owner, names):
        super().__init__()
        self.owner = owner
        for n in names:
            super().__setitem__(n, self._get(n))

    def _get(self, n):
        store = getattr(self.owner, "params", None)
        return store[n] if isinstance(store, dict) and n in store else getattr(self.owner, n)

    def __setitem__(self, n, value):
        super().__setitem__(n, value)
        store = getattr(self.owner, "params", None)
        if isinstance(store, dict) and n in store:
            store[n] = value
        else:
            setattr(self.owner, n, value)


class CachedLayer:
    """forward(x) -> out keeping the cache; backward(dout) -> dx, the parameters' gradients in
    ``grads`` (cs231n's params/grads dicts, which check_layer reads)."""

    def __init__(self, forward, backward, params, args, buffers, name, owner=None):
        self._forward, self._backward, self._args, self._owner = forward, backward, tuple(args), owner
        self.params = _Linked(owner, params) if owner is not None else dict(params)
        self.grads, self.cache, self.name = {}, None, name
        self.torch_names = {n: TORCH_NAMES[n] for n in self.params if n in TORCH_NAMES}
        self._mode = next((a for a in self._args if isinstance(a, dict) and "mode" in a), None)
        if self._mode is None and owner is not None:
            self._mode = next((v for v in vars(owner).values() if isinstance(v, dict) and "mode" in v), None)
        self._buffer_names = tuple(buffers or ())
        for b in self._buffer_names:
            if not isinstance(self._buffer_store(b), np.ndarray):
                raise CheckError(f"buffers: {b!r} is not an array in {self._where()}; put the running "
                                 f"statistics there before the check (e.g. bn_param['{b}'] = np.zeros(D))")
        order = ", ".join(["the 1st as dL/dx"] + [f"the {_ordinal(i + 2)} as {n}.grad" for i, n in enumerate(self.params)])
        self.check_notes = [f"{name} returns (out, cache) and its backward(dout, cache) returned "
                            f"{1 + len(self.params)} arrays, matched by position: {order}"
                            + "".join(f"; {n} is compared with the torch module's {t}" for n, t in self.torch_names.items())]

    def _where(self):
        return "the object" if self._owner is not None else "the dict arguments"

    def __getattr__(self, name):
        # ``training`` exists only where the layer states a mode: a dict with "mode" (bn_param),
        # or the object's own ``training``
        if name == "training":
            mode = self.__dict__.get("_mode")
            if mode is not None:
                return mode["mode"] == "train"
            owner = self.__dict__.get("_owner")
            if owner is not None and hasattr(owner, "training"):
                return bool(owner.training)
        raise AttributeError(name)

    def _buffer_store(self, name):
        if self._owner is not None and self._mode is not None and name in self._mode:
            return self._mode[name]
        for a in self._args:
            if isinstance(a, dict) and name in a:
                return a[name]
        return getattr(self._owner, name, None) if self._owner is not None else None

    def named_buffers(self):
        """The buffers named; in evaluation mode without names, the running_mean and running_var
        the mode's dict holds (the torch module must normalise with them too)."""
        names = self._buffer_names
        if not names and getattr(self, "training", True) is False:
            names = [n for n in ("running_mean", "running_var") if isinstance(self._buffer_store(n), np.ndarray)]
        for n in names:
            yield n, self._buffer_store(n)

    def forward(self, x):
        if self._owner is not None:
            out = self._forward(x)
        else:
            out = self._forward(x, *self.params.values(), *self._args)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise CheckError(f"{self.name}'s forward returned {type(out).__name__}; a cached layer returns (out, cache)")
        y, self.cache = out
        return y

    def backward(self, dout):
        got = self._backward(dout, self.cache)
        got = tuple(got) if isinstance(got, (tuple, list)) else (got,)
        if len(got) != 1 + len(self.params):
            names = ", ".join(["dx"] + [f"d{n}" for n in self.params])
            raise CheckError(f"{self.name}'s backward returned {len(got)} array(s); it should return "
                             f"({names}): dL/dx, then one gradient per parameter in the order {list(self.params)}")
        for n, grad in zip(self.params, got[1:]):
            self.grads[n] = np.asarray(grad)
        return got[0]


def _ordinal(k):
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(k, f"{k}th")


def cached_layer(forward, backward=None, *, params=None, args=(), buffers=None, name=None):
    """A CachedLayer for check_layer: an object with forward(x) -> (out, cache) and
    backward(dout, cache) (``backward`` None), or a pair of functions with the parameters given
    as {name: array} in the order forward takes them after x, and ``args`` passed after them."""
    if backward is None:
        obj = forward
        if not callable(getattr(obj, "forward", None)) or not callable(getattr(obj, "backward", None)):
            raise CheckError("cached_layer(layer) takes an object with forward(x) -> (out, cache) and "
                             "backward(dout, cache); or give two functions: cached_layer(forward, backward, params=...)")
        if params is None:
            store = obj.params if isinstance(getattr(obj, "params", None), dict) else vars(obj)
            params = [k for k, v in store.items() if isinstance(v, np.ndarray) and not k.startswith("_")
                      and np.issubdtype(v.dtype, np.floating) and k not in (buffers or ())]
        for n in params:
            store = obj.params if isinstance(getattr(obj, "params", None), dict) and n in obj.params else vars(obj)
            if not isinstance(store.get(n), np.ndarray):
                raise CheckError(f"{_name(type(obj))} has no array {n!r} (params names its arrays)")
        return CachedLayer(obj.forward, obj.backward, list(params), args, buffers, name or _name(type(obj)), owner=obj)
    if not callable(forward) or not callable(backward):
        raise CheckError("cached_layer(forward, backward, params={...}) takes two functions")
    if not isinstance(params, dict):
        raise CheckError("cached_layer(forward, backward, params={'gamma': gamma, 'beta': beta}, args=(bn_param,)): "
                         "params gives the arrays forward takes after x, in that order ({} for none)")
    arrays = {n: np.array(v, dtype=np.float64 if np.asarray(v).dtype != np.float32 else np.float32, copy=True)
              for n, v in params.items()}
    return CachedLayer(forward, backward, arrays, args, buffers, name or f"{_name(forward)} + {_name(backward)}")
