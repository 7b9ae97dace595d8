"""Where a layer keeps its parameters and their gradients: manual Parameters (``named_parameters()``,
gradients that accumulate in ``.grad``), ``params``/``grads`` dicts, plain array attributes with
gradients named ``dW``, ``grad_W`` or ``W_grad``, or the names the user gives. A check compares every
parameter it finds and refuses a layer whose arrays it cannot pair with gradients: it never passes
what it did not compare.
"""
import numpy as np

from backprop_oracle.compare.check.common import CheckError, describe


class PlainParameter:
    """A parameter a layer keeps as a plain NumPy array: ``data`` is the layer's attribute (or its
    ``params`` dict's entry) ``name``, ``grad`` the one its backward writes (``dW``, ``grads['W']``).
    Such layers usually assign their gradients (``self.dW = ...``) rather than add to them, so no
    accumulation is asked of them."""
    accumulates = False

    def __init__(self, data_store, name, grad_store, grad_name):
        self._data, self.name, self._grads, self.grad_name = data_store, name, grad_store, grad_name
        self.identity = id(self.data)     # a forward that rebinds the attribute makes it a cache

    @staticmethod
    def _get(store, key):
        return store[key] if isinstance(store, dict) else getattr(store, key, None)

    @staticmethod
    def _set(store, key, value):
        if isinstance(store, dict):
            store[key] = value
        else:
            setattr(store, key, value)

    data = property(lambda self: self._get(self._data, self.name), lambda self, v: self._set(self._data, self.name, v))
    grad = property(lambda self: self._get(self._grads, self.grad_name),
                    lambda self, v: self._set(self._grads, self.grad_name, v))

    def where(self):
        return f"grads[{self.grad_name!r}]" if isinstance(self._grads, dict) else f".{self.grad_name}"


def _gradient_names(name):
    """Where a hand-written layer keeps the gradient of its array ``name``, most usual first."""
    return [f"d{name}", f"grad_{name}", f"{name}_grad", f"d_{name}", f"grad{name}"]


def _float_arrays(store):
    items = store.items() if isinstance(store, dict) else vars(store).items()
    return {k: v for k, v in items if isinstance(v, np.ndarray) and np.issubdtype(v.dtype, np.floating)
            and not k.startswith("_")}


def layer_parameters(layer, params=None):
    """[(name, param)] of a layer, each with .data and .grad arrays of one shape (the gradients of
    plain arrays are looked up once backward has run: see ``find_plain_gradients``).

    Found as: manual-style ``named_parameters()`` (Parameters that accumulate .grad); the names the
    user gives (``params={"W": "dW"}``, ``params={}`` for a layer with none); ``params``/``grads``
    dicts on the layer (cs231n's style); or the layer's float arrays, each with a gradient named
    dW, grad_W or W_grad. A layer whose arrays cannot all be paired with gradients is refused: a
    check never passes what it did not compare."""
    if not hasattr(layer, "forward") or not hasattr(layer, "backward"):
        raise CheckError(f"{describe(layer)} is not a layer: it needs forward(x) and backward(dL_dy) "
                         "(see manual.module.Module)")
    if params is not None:
        if not isinstance(params, dict):
            raise CheckError("params= names each parameter and its gradient: {'W': 'dW', 'b': 'db'} "
                             "(attribute names), or {} for a layer without parameters")
        store = layer.params if isinstance(getattr(layer, "params", None), dict) else layer
        grads = layer.grads if isinstance(getattr(layer, "grads", None), dict) else layer
        found = [(n, PlainParameter(store, n, grads, g)) for n, g in params.items()]
        for n, p in found:
            if not isinstance(p.data, np.ndarray):
                raise CheckError(f"params: the layer has no array {n!r}")
        return found
    if hasattr(layer, "named_parameters"):
        found = list(layer.named_parameters())
        for n, p in found:
            data, grad = getattr(p, "data", None), getattr(p, "grad", None)
            if not isinstance(data, np.ndarray) or not isinstance(grad, np.ndarray):
                raise CheckError(f"parameter {n!r} needs NumPy arrays .data and .grad (see "
                                 "manual.module.Parameter)")
            if grad.shape != data.shape:
                raise CheckError(f"parameter {n!r}: .grad has shape {grad.shape} but .data has {data.shape}; "
                                 "the gradient has the parameter's shape")
        return found
    if isinstance(getattr(layer, "params", None), dict):
        grads = layer.grads if isinstance(getattr(layer, "grads", None), dict) else None
        if grads is None:
            raise CheckError("the layer keeps its parameters in a params dict but has no grads dict for their "
                             "gradients; give it self.grads = {'W': ..., ...} filled by backward")
        return [(n, PlainParameter(layer.params, n, grads, n)) for n in _float_arrays(layer.params)]
    return [(n, PlainParameter(layer, n, layer, None)) for n in _float_arrays(layer)]


def find_plain_gradients(layer, params):
    """After one backward: pair each plain array with the gradient its backward wrote, or refuse.
    Arrays that forward or backward rebound (caches such as self.x) and the gradients themselves
    (dW beside W) are not parameters. Returns the parameters."""
    names = {n for n, _ in params}
    gradients = {g for n in names for g in _gradient_names(n)}
    params = [(n, p) for n, p in params if not (isinstance(p, PlainParameter) and p.grad_name is None and
                                                (n in gradients or id(p.data) != p.identity))]
    missing = []
    for n, p in params:
        if not isinstance(p, PlainParameter) or p.grad_name is not None:
            continue
        names = [g for g in _gradient_names(n) if isinstance(getattr(layer, g, None), np.ndarray)]
        if names:
            p.grad_name = names[0]
        else:
            missing.append(n)
    if missing:
        raise CheckError(
            f"{describe(layer)} holds the array(s) {', '.join(missing)} but check_layer found no gradient for "
            f"them after backward (looked for {', '.join(_gradient_names(missing[0])[:3])}, ...), so it cannot "
            "check them and will not pass them unchecked. Keep the gradient as self.d<name>, use manual "
            "Parameters (named_parameters()), params/grads dicts, or name them: "
            f"check_layer(..., params={{{missing[0]!r}: 'your gradient attribute'}}); params={{}} declares a "
            "layer without parameters")
    for n, p in params:
        grad = p.grad
        if not isinstance(grad, np.ndarray) or grad.shape != np.shape(p.data) and grad.shape[::-1] != np.shape(p.data):
            got = type(grad).__name__ if not isinstance(grad, np.ndarray) else f"shape {grad.shape}"
            raise CheckError(f"the gradient of {n!r} ({p.where()}) is {got} but {n!r} has shape "
                             f"{np.shape(p.data)}: backward should write an array of the parameter's shape")
    return params
