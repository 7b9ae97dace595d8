"""Networks as the courses write them, made into the function a network check calls,
fn(params, X, Y) -> (cost, grads[, intermediates]), with what the object itself says of its layout.

    model_loss(model)              a model with a params dict and loss(X, y) -> (loss, grads)
                                   (CS231n's TwoLayerNet); check_network(model, ...) finds it alone
    per_example(net)               a per-example backprop(x, y) -> (nabla_b, nabla_w) over the lists
                                   net.weights, net.biases (Michael Nielsen's network.py), its nablas
                                   averaged over the batch as its training loop applies them
    layer_chain(layers, step)      layer objects whose backward leaves dW, db (and dA_prev) as
                                   attributes, run by the user's own step(X, Y) -> cost
    forward_backward(forward, backward, cost=None)
                                   a course's forward(X, parameters) -> (AL, caches) and
                                   backward(AL, Y, caches) -> grads (the deeplearning.ai course)

Each returns an Adapted: the function, a name, the layout fields the object's own arrays fix, the
sizes they show, notes for the report, and ``restore`` (the object's arrays put back after the check).
"""
import re
import types
from dataclasses import dataclass, field

import numpy as np

from backprop_oracle.compare.errors import CheckError


@dataclass
class Adapted:
    fn: object
    name: str
    fixed: dict = field(default_factory=dict)    # Layout fields the object fixes: names, examples, ...
    sizes: tuple | None = None                   # the layer sizes its arrays show
    notes: list = field(default_factory=list)
    restore: object = None                       # puts the object's own arrays back
    options: dict = field(default_factory=dict)  # what the check tells it: {"l2": factor} where its loop adds it


def _name(obj):
    cls = obj if isinstance(obj, (types.FunctionType, types.MethodType)) else type(obj)
    return getattr(cls, "__qualname__", None) or type(obj).__name__


def _shape_facts(weights, biases):
    """(fixed layout fields, sizes) from a network's own weight and bias arrays, in layer order."""
    fixed, sizes = {}, None
    shapes = [np.shape(w) for w in weights]
    if not shapes or any(len(s) != 2 for s in shapes):
        return fixed, sizes
    out_in = all(shapes[i + 1][1] == shapes[i][0] for i in range(len(shapes) - 1))
    in_out = all(shapes[i + 1][0] == shapes[i][1] for i in range(len(shapes) - 1))
    if out_in and not in_out:
        fixed["weights"], sizes = "out_in", (shapes[0][1],) + tuple(s[0] for s in shapes)
    elif in_out and not out_in:
        fixed["weights"], sizes = "in_out", (shapes[0][0],) + tuple(s[1] for s in shapes)
    b = [np.shape(x) for x in biases]
    if b and all(len(s) == 2 and s[1] == 1 and s[0] != 1 for s in b):
        fixed["bias"] = "column"
    elif b and all(len(s) == 2 and s[0] == 1 and s[1] != 1 for s in b):
        fixed["bias"] = "row"
    elif b and all(len(s) == 1 for s in b):
        fixed["bias"] = "flat"
    return fixed, sizes


def _layer_number(key):
    digits = re.findall(r"\d+", str(key))
    return int(digits[-1]) if digits else 0


def model_loss(model):
    """A model with a params dict (W1, b1, W2, b2 or any names with the layer's number) and
    loss(X, y) -> (loss, grads), grads under the params' names."""
    params = getattr(model, "params", None)
    if not isinstance(params, dict) or not callable(getattr(model, "loss", None)):
        raise CheckError(f"{_name(model)} is not a model with a params dict and loss(X, y) -> (loss, grads)")
    weights = sorted((k for k in params if str(k)[:1] in "Ww"), key=_layer_number)
    biases = sorted((k for k in params if str(k)[:1] in "Bb"), key=_layer_number)
    other = sorted(set(params) - set(weights) - set(biases), key=str)
    if other or len(weights) != len(biases) or not weights:
        raise CheckError(f"{_name(model)}.params has the keys {sorted(params, key=str)}; a network check takes "
                         "one weight (W1, w1, ...) and one bias (b1, ...) per layer"
                         + (f", not {other}" if other else ""))
    names = tuple(k for pair in zip(weights, biases) for k in pair)
    saved = {k: np.array(v, copy=True) for k, v in params.items()}

    def fn(p, X, y):
        for k in names:
            model.params[k] = p[k]
        return model.loss(X, y)

    def restore():
        model.params.update(saved)

    fn.__qualname__ = f"{_name(model)}.loss"
    fixed, sizes = _shape_facts([params[k] for k in weights], [params[k] for k in biases])
    fixed["names"] = names
    return Adapted(fn, f"{_name(model)}.loss", fixed, sizes, [], restore)


def per_example(net, reduction="mean"):
    """net.backprop(x, y) -> (nabla_b, nabla_w) run on each example (x a column) with net.weights,
    net.biases set to the parameters checked; the nablas of the batch are averaged, as network.py's
    update_mini_batch applies them (their sum times eta/len(mini_batch)), or summed with
    reduction="sum" (a cost summed over the batch)."""
    if not callable(getattr(net, "backprop", None)) or not isinstance(getattr(net, "weights", None), list) \
            or not isinstance(getattr(net, "biases", None), list):
        raise CheckError(f"{_name(net)} is not a network with lists weights, biases and backprop(x, y)")
    if reduction not in ("mean", "sum"):
        raise CheckError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    saved = ([np.array(w, copy=True) for w in net.weights], [np.array(b, copy=True) for b in net.biases])
    options = {}

    def fn(p, X, Y):
        net.weights, net.biases = list(p["weights"]), list(p["biases"])
        m = X.shape[1]
        sum_b = sum_w = None
        for j in range(m):
            out = net.backprop(X[:, [j]], Y[:, [j]] if Y.ndim == 2 else Y[j])
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise CheckError(f"{_name(net)}.backprop returned {type(out).__name__}; it returns "
                                 "(nabla_b, nabla_w), two lists with one array per layer")
            nb, nw = (list(x) for x in out)
            sum_b = nb if sum_b is None else [a + b for a, b in zip(sum_b, nb)]
            sum_w = nw if sum_w is None else [a + b for a, b in zip(sum_w, nw)]
        k, l2 = (1.0 / m if reduction == "mean" else 1.0), options.get("l2", 0.0)
        # network2.py's weight decay, w -> (1 - eta·λ/n)·w, is the step of λ/(2n)·Σw² = l2·Σw²: 2·l2·w
        return None, ([b * k for b in sum_b], [w * k + (2 * l2 * p_w if l2 and np.shape(w) == np.shape(p_w) else 0)
                                                for w, p_w in zip(sum_w, p["weights"])])

    def restore():
        net.weights, net.biases = saved

    fn.__qualname__ = f"{_name(net)}.backprop"
    fixed, sizes = _shape_facts(net.weights, net.biases)
    if isinstance(getattr(net, "sizes", None), (list, tuple)):
        sizes = tuple(net.sizes)
    fixed.update(names="lists", examples="columns")
    how = ("averaged over the batch, as its training loop applies them (update_mini_batch sums them and "
           "steps by eta/len(mini_batch)): the gradient of the mean cost over the batch"
           if reduction == "mean" else "summed over the batch: the gradient of the cost summed over the batch")
    note = (f"{_name(net)}.backprop(x, y) was run on each example (x one column) and its nablas {how}; "
            "it returns no cost, so none was compared")
    note += ("; with l2 = λ/(2n), the training loop's weight decay 2·l2·w is added to each nabla_w, as "
             "update_mini_batch applies it")
    return Adapted(fn, f"{_name(net)}.backprop", fixed, sizes, [note], restore, options)


_PARAM_ATTRS = (("W", "b"), ("w", "b"), ("weights", "bias"), ("weight", "bias"))


def _attrs_of(layer):
    for w, b in _PARAM_ATTRS:
        if isinstance(getattr(layer, w, None), np.ndarray) and isinstance(getattr(layer, b, None), np.ndarray):
            return w, b
    return None


def _grad_of(layer, attr, where):
    for g in (f"d{attr}", f"grad_{attr}", f"{attr}_grad", f"d_{attr}"):
        if g in vars(layer):
            return getattr(layer, g)
    raise CheckError(f"{where} has no gradient of {attr} after your step ran (looked for d{attr}, grad_{attr}, "
                     f"{attr}_grad); its backward should leave it as an attribute")


def layer_chain(layers, step):
    """Layer objects, the ones with parameters holding W and b (or weights/bias), run by the user's
    own step(X, Y) -> cost (forward through the layers, the loss, backward); after it each such layer
    has dW and db, and any layer may have dA_prev (dL/d its input), all compared."""
    layers = list(layers)
    with_params = [(i, _attrs_of(l)) for i, l in enumerate(layers) if _attrs_of(l)]
    if not with_params:
        raise CheckError("none of the layers holds a weight and a bias (W and b, or weights and bias)")
    if not callable(step):
        raise CheckError("layer_chain(layers, step): step(X, Y) runs your forward, loss and backward and "
                         "returns the cost")
    names = tuple(f"layers[{i}].{a}" for i, attrs in with_params for a in attrs)
    saved = [(layers[i], a, np.array(getattr(layers[i], a), copy=True)) for i, attrs in with_params for a in attrs]

    def fn(p, X, Y):
        for i, (w, b) in with_params:
            setattr(layers[i], w, p[f"layers[{i}].{w}"])
            setattr(layers[i], b, p[f"layers[{i}].{b}"])
        out = step(X, Y)
        cost = out[0] if isinstance(out, (tuple, list)) else out
        grads, inter, k = {}, {}, 0
        for idx, layer in enumerate(layers):
            attrs = _attrs_of(layer)
            if attrs:
                k += 1
                for a in attrs:
                    grads[f"layers[{idx}].d{a}"] = _grad_of(layer, a, f"layers[{idx}]")
                key = f"da{k - 1}"
            else:
                key = f"dz{k}"
            if isinstance(vars(layer).get("dA_prev"), np.ndarray) and (k > 0 or attrs):
                inter[key] = layer.dA_prev
        return cost, grads, inter

    def restore():
        for layer, a, v in saved:
            setattr(layer, a, v)

    fn.__qualname__ = getattr(step, "__qualname__", "step")
    fixed, sizes = _shape_facts([getattr(layers[i], a[0]) for i, a in with_params],
                                [getattr(layers[i], a[1]) for i, a in with_params])
    fixed["names"] = names
    return Adapted(fn, fn.__qualname__, fixed, sizes, [], restore)


def forward_backward(forward, backward, cost=None):
    """forward(X, parameters) -> (AL, caches), backward(AL, Y, caches) -> grads ("dW1", "db1", ...,
    and "dA0", "dA1", ... compared as dL/da), cost(AL, Y) -> the cost (compared when given)."""
    if not callable(forward) or not callable(backward) or (cost is not None and not callable(cost)):
        raise CheckError("forward_backward(forward, backward, cost=None) takes three functions: "
                         "forward(X, parameters) -> (AL, caches), backward(AL, Y, caches) -> grads, cost(AL, Y)")

    def fn(p, X, Y):
        out = forward(X, p)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise CheckError(f"{_name(forward)} returned {type(out).__name__}; it returns (AL, caches)")
        AL, caches = out
        grads = backward(AL, Y, caches)
        if isinstance(grads, dict):
            # The course's dA_l is the derivative of the summed loss (its linear_backward divides by m
            # only in dW and db): dA_l / m is dCost/dA_l.
            grads = {k: (np.asarray(v) / X.shape[1] if re.fullmatch(r"d[AZ]\d+", str(k)) else v)
                     for k, v in grads.items()}
        return (None if cost is None else cost(AL, Y)), grads

    fn.__qualname__ = _name(backward)
    notes = ["examples are columns; the dA_l (and dZ_l) that backward returns are derivatives of the loss "
             "summed over the m examples, as the course computes them, so dA_l / m is compared with dCost/dA_l"]
    if cost is None:
        notes.append("no cost function was given, so the cost was not compared "
                     "(forward_backward(..., cost=compute_cost) compares it)")
    return Adapted(fn, f"{_name(forward)} + {_name(backward)}", {"examples": "columns"}, None, notes, None)


def adapt(target):
    """An Adapted for whatever a network check is given: a function, an Adapted, a model with
    params and loss, or a network with weights, biases and backprop."""
    if isinstance(target, Adapted):
        return target
    if isinstance(getattr(target, "params", None), dict) and callable(getattr(target, "loss", None)):
        return model_loss(target)
    if callable(getattr(target, "backprop", None)) and isinstance(getattr(target, "weights", None), list):
        return per_example(target)
    if not callable(target):
        raise CheckError(f"{type(target).__name__} is not a network to check: give a function "
                         "fn(params, X, Y) -> (cost, grads), a model with params and loss(X, y), a network "
                         "with weights, biases and backprop(x, y), or layer_chain(layers, step)")
    return Adapted(target, None, {}, None, [], None)
