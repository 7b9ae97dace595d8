"""The first wrong node of a network check, in plain words.

compare.verdict.localise walks the two traces and names the first tensor that differs; its reason
assumes the tensor checked just before (the one "on the output side") was returned and agreed.
Where the user's function returned fewer intermediates, that premise may not hold, and this
module says instead what the returned tensors do allow one to conclude. The rules of the
chain (layer l: z_l = a_{l-1} W_l^T + b_l, a_l = f(z_l)):

    dL/da_{l-1} = dL/dz_l W_l        dL/dz_l = dL/da_l * f'(z_l)
    dL/dW_l = dL/dz_l^T a_{l-1}      dL/db_l = sum over the batch of dL/dz_l

So with only parameter gradients: dL/dW_l and dL/db_l both wrong (and everything above right)
means dL/dz_l is wrong; dL/db_l right but dL/dW_l wrong means dL/dz_l is probably right (its
batch sum is) and the fault is in dL/dW_l's own formula; the reverse means dL/db_l's own formula.
"""
from dataclasses import replace

import numpy as np

from backprop_oracle.compare.verdict.hints import explain_difference
from backprop_oracle.compare.verdict.localise import layer_numbers


def module_key(kind, layer, grad):
    """The intermediates key of a module's output (or of its gradient): "z1", "a1", "dz1", "da1"."""
    return ("d" if grad else "") + ("z" if kind == "linear" else "a") + str(layer)


def param_tensor_name(torch_name, user_name, kinds):
    """"dL/dW2 (2.weight)" for torch's "2.weight" (the user's own name in brackets)."""
    i, attr = torch_name.split(".")
    layer = layer_numbers(kinds)[int(i)]
    return f"dL/d{'W' if attr == 'weight' else 'b'}{layer} ({user_name})"


def _node(found, kinds, names):
    """(the check table's name for the node localise found, its layer)."""
    i, layers = found.module, layer_numbers(kinds)
    if found.stage == "cost":
        return "cost", layers[-1]
    if found.stage == "forward":
        return module_key(kinds[i], layers[i], False), layers[i]
    if found.diff.name.startswith(("dL/dW_", "dL/db_")):
        torch_name = f"{i}.{'weight' if found.diff.name[4] == 'W' else 'bias'}"
        return param_tensor_name(torch_name, names[torch_name], kinds), layers[i]
    return "dL/d" + module_key(kinds[i], layers[i], True)[1:], layers[i]


def _output_step(spec):
    """What dL/dz of the output layer depends on, in words: the loss derivative, and the output
    activation's derivative unless the loss takes the output as it is (logits, scores)."""
    if spec.output_activation == "identity":
        if spec.loss.partition(":")[0] == "cross_entropy":
            return ("the loss derivative with respect to the logits: cross_entropy includes the softmax, so "
                    "dL/dz = (softmax(z) - y) / N; applying softmax's Jacobian to it again, or using "
                    "dL/dp = -y / (p N), is the usual slip")
        return f"the loss derivative of {spec.loss} with respect to the output (its sign, the 1/N, the ½)"
    return (f"the loss derivative of {spec.loss} (its sign, the 1/N, the ½) or the output activation's "
            f"derivative ({spec.output_activation})")


def _swapped(layer, kinds, names, values):
    """Words where the user's dL/db of ``layer`` is the reference's dL/db of another layer: the
    deltas of two layers swapped."""
    mine = values.get(param_tensor_name(f"{2 * (layer - 1)}.bias", names[f"{2 * (layer - 1)}.bias"], kinds))
    if mine is None:
        return ""
    for k in range(1, max(layer_numbers(kinds)) + 1):
        other = values.get(param_tensor_name(f"{2 * (k - 1)}.bias", names[f"{2 * (k - 1)}.bias"], kinds))
        if k != layer and other is not None and other[1].shape == mine[0].shape and \
                np.allclose(mine[0], other[1], rtol=1e-6, atol=1e-12):
            return (f"; your dL/db{layer} is the reference's dL/db{k}: the deltas dL/dz{layer} and dL/dz{k} "
                    "look swapped between the layers")
    return ""


def _reason(found, node, layer, kinds, given, spec, names, passed, values=None):
    """localise's reason where its premise holds; otherwise what the returned tensors show."""
    L, act, out = spec.layers, spec.activation, spec.output_activation
    f_l = out if layer == L else act
    values = values or {}
    if found.stage == "forward":
        earlier = [module_key(k, l, False) for k, l in zip(kinds, layer_numbers(kinds))][:found.module]
        if all(k in given for k in earlier):
            return found.reason
        return (f"{node} is the first forward value you returned that differs; the ones before it "
                f"({', '.join(k for k in earlier if k not in given)}) were not returned, so the "
                "difference may begin earlier: return them too to tell")
    if found.stage == "cost":
        forward = [module_key(k, l, False) for k, l in zip(kinds, layer_numbers(kinds))]
        if all(k in given for k in forward):
            return found.reason
        return (f"the cost differs: the loss {spec.loss} (its formula and its reduction: the mean "
                "over the examples, the ½), or the forward pass, which was not returned in full "
                f"(return {', '.join(forward)} as intermediates to tell the two apart)")
    if node.startswith("dL/da") and layer < L:
        if f"dz{layer + 1}" in given:
            return found.reason
        return (f"dL/da{layer} is wrong while dL/dW{layer + 1} and dL/db{layer + 1} are right, so "
                f"dL/dz{layer + 1} is probably right: the linear layer's input gradient in layer "
                f"{layer + 1}, dL/da{layer} = dL/dz{layer + 1} W{layer + 1} (no transpose)")
    if node.startswith("dL/dz"):
        if f"da{layer}" in given:
            return found.reason
        if layer == L:
            return f"dL/dz{layer} of the output layer is wrong (dL/da{layer} was not returned): {_output_step(spec)}"
        return (f"dL/dz{layer} is wrong (dL/da{layer} was not returned): the activation derivative "
                f"of layer {layer} ({f_l}), or the step before it, dL/da{layer} = dL/dz{layer + 1} W{layer + 1}")
    if node.startswith(("dL/dW", "dL/db")) and f"dz{layer}" not in given:
        w_name = param_tensor_name(f"{2 * (layer - 1)}.weight", names[f"{2 * (layer - 1)}.weight"], kinds)
        b_name = param_tensor_name(f"{2 * (layer - 1)}.bias", names[f"{2 * (layer - 1)}.bias"], kinds)
        w_ok, b_ok = passed.get(w_name, True), passed.get(b_name, True)
        if not w_ok and not b_ok:
            if layer == L:
                cause = _output_step(spec)
            else:
                cause = (f"the step back from layer {layer + 1}, dL/da{layer} = dL/dz{layer + 1} "
                         f"W{layer + 1} (a transpose?), or the activation derivative of layer {layer} ({act})")
            return (f"dL/dW{layer} and dL/db{layer} are both wrong while every gradient above layer "
                    f"{layer} is right, so dL/dz{layer} is wrong: {cause}"
                    f"{_swapped(layer, kinds, names, values)}")
        if not w_ok:
            return (f"dL/dW{layer} is wrong while dL/db{layer} is right, so dL/dz{layer} is probably "
                    f"right (dL/db{layer} is its sum over the batch): dL/dW{layer} = dL/dz{layer}^T "
                    f"a{layer - 1} itself (a transpose, z{layer - 1} used for a{layer - 1}, an extra 1/N)")
        return (f"dL/db{layer} is wrong while dL/dW{layer} is right: dL/db{layer} = the sum over the "
                f"batch (axis 0) of dL/dz{layer}, summed rather than averaged")
    return found.reason


def explain_mismatch(found, checks, values, tm, tt, given, spec, names, batch):
    """(Mismatch, hint, notes) for the failing trial: localise's node and diff, the reason fitted
    to the tensors the user returned, the pattern of the difference, and what to return next."""
    by_name = {c.diff.name: c for c in checks}
    if found is None:   # every tensor agrees on the walk: cannot happen with the same tolerance
        first = next(c for c in checks if not c.passed)
        from backprop_oracle.compare.verdict.localise import Mismatch
        return Mismatch("backward", first.diff, None, None, "this tensor differs"), "", []
    node, layer = _node(found, tt.kinds, names)
    passed = {n: c.passed for n, c in by_name.items()}
    reason = _reason(found, node, layer, tt.kinds, given, spec, names, passed, values)
    diff = by_name[node].diff if node in by_name else found.diff
    hint = explain_difference(*values[node], batch=batch) if node in values else ""
    notes = []
    missing = [k for k in (f"dz{layer}", f"da{layer}") if k not in given]
    if found.stage == "backward" and missing:
        notes.append(f"return intermediates such as {{{', '.join(repr(k) + ': ...' for k in missing)}}} "
                     "as a third value to pin the mistake to a single node")
    return replace(found, diff=diff, layer=layer, reason=reason), hint, notes
