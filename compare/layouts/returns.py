"""What the user's network code returned, read in its layout and put into torch's.

The code returns (cost, grads) or (cost, grads, intermediates). ``grads`` is a dict under the keys
the code chose for each parameter (its own name: W1; or d, grad_ before it: dW1, grad_W1), a dict
of lists ({"weights": [...], "biases": [...]}, nabla_w / nabla_b), or Nielsen's pair of lists
(nabla_b, nabla_w). Keys such as dA1, dZ1 (the deeplearning.ai course keeps dA_l beside dW_l) are
intermediates; dA0 is the gradient with respect to the input. A cost of None is not compared.

Also what the user gives the check: its own params (``given_params``) and data (``check_data``).

Every array is validated by the ``as_array`` the check passes in (compare.check.common's), so that
the messages are the checks' own.
"""
import re
from dataclasses import dataclass, field

import numpy as np

from backprop_oracle.compare.errors import CheckError

_INTERMEDIATE = re.compile(r"^(d?)([zZaA])(\d+)$")


@dataclass
class Returned:
    cost: object                      # a float, or None where the code returned none
    grads: dict                       # {torch name: array in torch's layout}
    intermediates: dict               # {"z1", "a1", "dz1", "da1", "da0": (N, units) array}
    labels: dict                      # {torch name: where the user returned it, e.g. "dW1", "nabla_w[0]"}
    flipped: set = field(default_factory=set)     # torch names returned with the transposed shape
    slips: dict = field(default_factory=dict)     # {torch name: (why its shape says a wrong sum, the shape)}


def _keys_for(name):
    head, dot, attr = str(name).rpartition(".")
    if dot and not attr.isdigit() and attr not in ("weight", "bias"):      # layers[0].W: layers[0].dW
        return [f"{head}.{k}" for k in _keys_for(attr)]
    return [name, f"d{name}", f"grad_{name}", f"{name}_grad", f"d_{name}"]


def _list_grads(grads, layers, what):
    """(weight grads, bias grads, their label stems) from the forms a list-holding code returns."""
    if isinstance(grads, dict):
        for w, b in (("weights", "biases"), ("nabla_w", "nabla_b"), ("dweights", "dbiases")):
            if w in grads and b in grads:
                extra = sorted(set(grads) - {w, b}, key=str)
                if extra:
                    raise CheckError(f"the grads returned by {what} have unexpected keys {extra}; "
                                     f"return {{{w!r}: [...], {b!r}: [...]}}")
                return list(grads[w]), list(grads[b]), (w, b)
        raise CheckError(f"the grads returned by {what} have the keys {sorted(grads, key=str)}; with the "
                         "parameters as lists return {'weights': [dW per layer], 'biases': [db per layer]} or "
                         "(nabla_b, nabla_w)")
    if isinstance(grads, (tuple, list)) and len(grads) == 2 and all(isinstance(g, (list, tuple)) for g in grads):
        return list(grads[1]), list(grads[0]), ("nabla_w", "nabla_b")
    raise CheckError(f"the grads returned by {what} are a {type(grads).__name__}; with the parameters as lists "
                     "return (nabla_b, nabla_w), two lists with one array per layer")


def _bias_slip(layout, user_name, grad_shape, units, n):
    """Why a bias gradient of this shape is a sum over the wrong axis (or none), in the user's terms;
    None when the shape says nothing of the kind."""
    cols = layout.examples == "columns"
    dz = f"d{user_name.replace('b', 'Z' if cols else 'z', 1)}" if user_name[:1] == "b" else f"the delta of {user_name}"
    full = (units, n) if cols else (n, units)
    axis, other = (1, 0) if cols else (0, 1)
    shown = "(" + ", ".join(map(str, full)) + ")"
    name = f"d{user_name}" if not user_name.startswith("d") else user_name
    if units == n:
        return None
    if int(np.prod(grad_shape)) == n and len(grad_shape) <= 2:
        keep = ", keepdims=True" if layout.bias != "flat" else ""
        return (f"your {name} sums over axis {other} of a {shown} array ({dz}): examples are "
                f"{'columns' if cols else 'rows'}, sum over axis {axis}: np.sum({dz}, axis={axis}{keep})")
    if tuple(grad_shape) == full:
        return (f"your {name} has shape {shown}, one {'column' if cols else 'row'} per example: sum {dz} over "
                f"axis {axis}, the examples")
    return None


def parse_returns(result, layout, sizes, n, what, as_array, torch_names_hint=""):
    """A Returned from what ``what`` returned for a batch of ``n`` examples, or CheckError saying what is
    wrong with it. ``sizes``: the network's (inputs, ..., outputs)."""
    layers = len(sizes) - 1
    if not isinstance(result, (tuple, list)) or len(result) not in (2, 3):
        got = f"a {len(result)}-tuple" if isinstance(result, (tuple, list)) else type(result).__name__
        raise CheckError(f"{what} returned {got}; return (cost, grads) or (cost, grads, intermediates)")
    cost = None
    if result[0] is not None:
        c = as_array(result[0], f"the cost returned by {what}")
        if c.size != 1:
            raise CheckError(f"the cost returned by {what} has shape {c.shape}; it must be one number "
                             "(the loss reduced over the batch, e.g. the mean of the per-example losses)")
        cost = float(c.reshape(()))
    user = layout.torch_to_user_names(layers)
    torch_shape = {}
    for l in range(layers):
        torch_shape[f"{2 * l}.weight"], torch_shape[f"{2 * l}.bias"] = (sizes[l + 1], sizes[l]), (sizes[l + 1],)
    raw, labels, inter_raw = {}, {}, {}
    grads = result[1]
    if layout.names == "lists":
        ws, bs, (wl, bl) = _list_grads(grads, layers, what)
        if len(ws) != layers or len(bs) != layers:
            raise CheckError(f"{what} returned {len(ws)} weight and {len(bs)} bias gradient(s); the network has "
                             f"{layers} layer(s): one of each per layer")
        for l in range(layers):
            raw[f"{2 * l}.weight"], labels[f"{2 * l}.weight"] = ws[l], f"{wl}[{l}]"
            raw[f"{2 * l}.bias"], labels[f"{2 * l}.bias"] = bs[l], f"{bl}[{l}]"
    else:
        if not isinstance(grads, dict):
            raise CheckError(f"the grads returned by {what} are a {type(grads).__name__}; return a dict "
                             f"{{name: gradient}} with the names {', '.join(user.values())}")
        used = set()
        for t, u in user.items():
            key = next((k for k in _keys_for(u) if k in grads), None)
            if key is not None:
                raw[t], labels[t] = grads[key], key
                used.add(key)
        for k in set(grads) - used:
            m = _INTERMEDIATE.match(str(k))
            if m and layout.names != "torch":
                inter_raw[f"{m.group(1)}{m.group(2).lower()}{m.group(3)}"] = (grads[k], f"grads[{k!r}]")
                used.add(k)
        missing = [u for t, u in user.items() if t not in raw]
        extra = sorted(set(grads) - used, key=str)
        if missing or extra:
            count = (f" ({len(raw)} of the {len(user)} parameters' gradients found)" if missing else "")
            raise CheckError(f"the grads returned by {what} have the wrong names: missing {missing}, "
                             f"unexpected {extra}; the parameters are {', '.join(user.values())}{count}"
                             + ("" if not extra or layout.names not in ("torch", "W1") else torch_names_hint))
    out, flipped, slips = {}, set(), {}
    for t, g in raw.items():
        label = f"grads[{labels[t]!r}]" if layout.names != "lists" else labels[t]
        expected = layout.user_shape(t, torch_shape[t])
        if hasattr(g, "detach"):
            as_array(g, f"{label} returned by {what}")        # refuses a torch tensor in the check's words
        shape = np.shape(g)
        if t.endswith("weight"):
            if shape == expected:
                g = np.asarray(g).T if layout.weights == "in_out" else g
            elif expected[0] != expected[1] and shape == expected[::-1]:
                # A gradient of the transposed shape is a classic mistake, not a usage error: its
                # transpose is compared, and the check fails saying so.
                flipped.add(t)
                g = np.asarray(g) if layout.weights == "in_out" else np.asarray(g).T
            else:
                as_array(g, f"{label} returned by {what}", expected,
                         hint=f" ({user[t]} is {expected} in {layout.describe()})" if layout.names != "torch" else "")
        else:
            units = torch_shape[t][0]
            if int(np.prod(shape)) == units and (shape in ((units,), (units, 1), (1, units)) or units == 1):
                g = np.reshape(np.asarray(g), (units,))
            else:
                slip = None if layout.names == "torch" else _bias_slip(layout, user[t], shape, units, n)
                if slip:
                    slips[t] = (slip, tuple(shape))
                    out[t] = np.full(torch_shape[t], np.nan)
                    continue
                hint = (f" ({user[t]} is {expected} in {layout.describe()})" if layout.names != "torch" else "")
                as_array(g, f"{label} returned by {what}", expected, hint=hint)
        out[t] = as_array(g, f"{label} returned by {what}", torch_shape[t],
                          hint=f" ({user[t]} is {expected})" if layout.names != "torch" else "")
    if len(result) == 3:
        if not isinstance(result[2], dict):
            raise CheckError(f"the intermediates returned by {what} are a {type(result[2]).__name__}; "
                             "return a dict such as {'z1': ..., 'a1': ..., 'dz1': ..., 'da1': ...}")
        for k, v in result[2].items():
            m = _INTERMEDIATE.match(str(k))
            key = f"{m.group(1)}{m.group(2).lower()}{m.group(3)}" if m else k
            inter_raw[key] = (v, f"intermediates[{k!r}]")
    valid = [f"{p}{l}" for l in range(1, layers + 1) for p in ("z", "a", "dz", "da")] + ["da0"]
    unknown = sorted((k for k in inter_raw if k not in valid), key=str)
    if unknown:
        raise CheckError(f"unknown intermediate(s) {unknown}; for this network they are: {', '.join(valid[:-1])}"
                         " (and da0, the gradient with respect to the input)")
    inter = {}
    cols = layout.examples == "columns"
    for key, (value, label) in inter_raw.items():
        units = sizes[int(key.lstrip("dza"))]
        value = np.asarray(value) if not hasattr(value, "detach") else value
        expected = (units, n) if cols else (n, units)
        if cols:
            value = as_array(value, f"{label} returned by {what}", expected,
                             hint=" (examples are columns: (units, m))").T
        inter[key] = as_array(value, f"{label} returned by {what}", (n, units),
                              hint=" (examples are rows: (N, units))")
    return Returned(cost, out, inter, labels, flipped, slips)


def given_params(params, layout, shapes, user_names, dtype, as_array):
    """{torch name: array in torch's layout} from the params given in the user's names and layout."""
    if layout.names == "lists" and isinstance(params, dict) and set(params) == {"weights", "biases"}:
        params = {f"{k}[{i}]": v for k in ("weights", "biases") for i, v in enumerate(params[k])}
    by_user = {u: t for t, u in user_names.items()}
    if not isinstance(params, dict) or set(params) != set(by_user):
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise CheckError(f"params have names {got}; the network's are {list(by_user)}")
    out = {}
    for u, v in params.items():
        t = by_user[u]
        a = as_array(v, f"params[{u!r}]", layout.user_shape(t, shapes[t]),
                     hint="" if layout.names == "torch" else f" (in {layout.describe()})")
        out[t] = (a.T if t.endswith("weight") and layout.weights == "in_out" else a.reshape(shapes[t])).astype(dtype)
    return out


def transposed_reason(torch_name, layout, label, user_name, torch_shape, transpose_right):
    """Why a weight gradient of the transposed shape fails, in the user's layout."""
    shape = layout.user_shape(torch_name, torch_shape)
    key = f"grads[{label!r}]" if layout.names != "lists" else label
    right = "its transpose has the right values" if transpose_right else "even transposed its values differ"
    return (f"{key} has shape {shape[::-1]} where {user_name} is {shape}: it looks transposed ({right}); a "
            f"parameter's gradient has the parameter's shape (weights are "
            f"{'(out, in)' if layout.weights == 'out_in' else '(in, out)'} here, dL/dW = dL/dz^T a)")


def check_data(X, Y, spec):
    """Refuse data given (examples in rows) that the reference could not take, before the user's function is
    blamed for it. ``spec``: the network's sizes and loss."""
    if Y.shape[0] != X.shape[0]:
        raise CheckError(f"data: X has {X.shape[0]} rows but Y has {Y.shape[0]}; one target per example")
    for name, a in (("X", X), ("Y", Y)):
        if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
            row = int(np.argwhere(~np.isfinite(a))[0][0])
            raise CheckError(f"data: {name} holds NaN or infinity (row {row}); clean the data first")
    outputs = spec.sizes[-1]
    loss = spec.loss.partition(":")[0]          # "cross_entropy:label_smoothing=0.1" takes the same targets
    if loss in ("cross_entropy", "nll"):
        if Y.ndim == 1:
            if not np.issubdtype(Y.dtype, np.integer) or Y.min() < 0 or Y.max() >= outputs:
                raise CheckError(f"data: {loss} takes class indices 0..{outputs - 1} for {outputs} outputs; "
                                 f"Y holds {Y.min()}..{Y.max()}")
            return
    if Y.ndim != 2 or Y.shape[1] != outputs:
        raise CheckError(f"data: Y has shape {Y.shape}; the network's {outputs} output(s) need (N, {outputs})"
                         + (" or class indices (N,)" if loss in ("cross_entropy", "nll") else ""))
    if loss == "bce" and ((Y < 0) | (Y > 1)).any():
        raise CheckError(f"data: bce takes targets in [0, 1]; Y holds {Y.min()}..{Y.max()}")
    if loss == "hinge" and not ((Y == 1) | (Y == -1)).all():
        raise CheckError("data: hinge takes labels -1 and +1; use encode_targets(labels, 'hinge', 2)")
