"""Check a whole network's hand-written backprop against torch autograd on torch_ref.mlp.

The user's function takes (params, X, Y) and returns (cost, grads) or (cost, grads, intermediates):

    params         {name: array} with torch's shapes: W_l (out, in), b_l (out,). Names are torch's
                   ("0.weight", "0.bias", "2.weight", ...) or, with naming="layers", the teaching texts'
                   ("W1", "b1", "W2", ...).
    X, Y           a batch, examples in rows: X (N, inputs); Y as compare.data.targets.encode_targets
                   makes it for the loss ((N, outputs) 0/1 or one-hot; (N,) class indices for
                   cross_entropy; -1/+1 for hinge).
    cost           the number the loss gives for the batch (its reduction as manual/losses.py states).
    grads          {name: dCost/dparam}, the same names and shapes as params.
    intermediates  optional {key: (N, units) array}, any of, for layer l = 1..L:
                   "z{l}" = a_{l-1} W_l^T + b_l, "a{l}" = f_l(z_l) (a_L is ŷ),
                   "dz{l}" = dCost/dz_l, "da{l}" = dCost/da_l.

Every tensor is compared element by element with torch's (the same parameter values copied in
with torch.tensor, float64). The first wrong node is found by compare.verdict.localise, walking forward
from the input, then the cost, then backward from the output layer; with fewer intermediates
the reason says what the returned tensors allow one to conclude.
"""
import time
from dataclasses import replace

import numpy as np

from backprop_oracle import manual
from backprop_oracle.compare.check.common import CheckError, Precision, as_array, call_user, describe, precision_of
from backprop_oracle.compare.check.explain import explain_mismatch, module_key, param_tensor_name
from backprop_oracle.compare.check.netspec import NetworkSpec, TorchNetwork, param_shapes, parameter_names, random_batch
from backprop_oracle.compare.check.result import CheckResult, TensorCheck, merge
from backprop_oracle.compare.verdict.diff import compare_arrays
from backprop_oracle.compare.verdict.localise import Mismatch, Trace, layer_numbers, localise

__all__ = ["check_network", "NetworkSpec"]


def _intermediate_keys(spec):
    return [f"{p}{l}" for l in range(1, spec.layers + 1) for p in ("z", "a", "dz", "da")]


def _parse(result, spec, names, X, what):
    """(cost, {torch name: grad}, {key: array}, {torch names of gradients returned transposed}) from
    what the user's function returned, checked."""
    if not isinstance(result, (tuple, list)) or len(result) not in (2, 3):
        got = f"a {len(result)}-tuple" if isinstance(result, (tuple, list)) else type(result).__name__
        raise CheckError(f"{what} returned {got}; return (cost, grads) or (cost, grads, intermediates)")
    cost = as_array(result[0], f"the cost returned by {what}")
    if cost.size != 1:
        raise CheckError(f"the cost returned by {what} has shape {cost.shape}; it must be one number "
                         "(the loss reduced over the batch, e.g. the mean of the per-example losses)")
    grads = result[1]
    if not isinstance(grads, dict):
        raise CheckError(f"the grads returned by {what} are a {type(grads).__name__}; return a dict "
                         f"{{name: gradient}} with the names {', '.join(names.values())}")
    missing = [u for u in names.values() if u not in grads]
    extra = sorted(set(grads) - set(names.values()), key=str)
    if missing or extra:
        raise CheckError(f"the grads returned by {what} have the wrong names: missing {missing}, "
                         f"unexpected {extra}; the parameters are {', '.join(names.values())}"
                         + ("" if not extra else " (naming='layers' names them W1, b1, ...; "
                            "naming='torch' 0.weight, 0.bias, ...)"))
    shapes = param_shapes(spec)
    out, flipped = {}, set()
    for t, u in names.items():
        g = np.asarray(grads[u]) if not hasattr(grads[u], "detach") else grads[u]
        # A gradient of the transposed shape is a classic mistake, not a usage error: its transpose is
        # compared, and the check fails saying so.
        if len(shapes[t]) == 2 and shapes[t][0] != shapes[t][1] and np.shape(g) == tuple(shapes[t])[::-1]:
            flipped.add(t)
            g = np.asarray(g).T
        out[t] = as_array(g, f"grads[{u!r}] returned by {what}", shapes[t])
    inter = result[2] if len(result) == 3 else {}
    if not isinstance(inter, dict):
        raise CheckError(f"the intermediates returned by {what} are a {type(inter).__name__}; "
                         "return a dict such as {'z1': ..., 'a1': ..., 'dz1': ..., 'da1': ...}")
    valid = _intermediate_keys(spec)
    unknown = sorted(set(inter) - set(valid), key=str)
    if unknown:
        raise CheckError(f"unknown intermediate(s) {unknown}; for this network they are: {', '.join(valid)}")
    checked = {}
    for key, value in inter.items():
        units = spec.sizes[int(key.lstrip("dza"))]
        checked[key] = as_array(value, f"intermediates[{key!r}] returned by {what}", (X.shape[0], units),
                                hint=" (examples are rows: (N, units))")
    return float(cost.reshape(())), out, checked, flipped


def _compare(tm, tt, given, names, tol):
    """[TensorCheck] in the walk's order: the forward values returned, the cost, then from the
    output back each layer's dL/da, dL/dz (where returned), dL/dW and dL/db. Also
    {tensor name: (yours, torch's)}."""
    kinds, layers = tt.kinds, layer_numbers(tt.kinds)
    items = [(k, tm.outputs[i], tt.outputs[i]) for i, k in
             ((i, module_key(kind, layers[i], False)) for i, kind in enumerate(kinds)) if k in given]
    items.append(("cost", tm.cost, tt.cost))
    for i in reversed(range(len(kinds))):
        key = module_key(kinds[i], layers[i], True)
        if key in given:
            items.append((f"dL/d{key[1:]}", tm.output_grads[i], tt.output_grads[i]))
        for attr in (("weight", "bias") if kinds[i] == "linear" else ()):
            t = f"{i}.{attr}"
            items.append((param_tensor_name(t, names[t], kinds), tm.param_grads[t], tt.param_grads[t]))
    return ([TensorCheck(compare_arrays(n, a, b, tol)) for n, a, b in items],
            {n: (a, b) for n, a, b in items})


def _check_data(X, Y, spec):
    """Refuse data the reference could not take, before the user's function is blamed for it."""
    if Y.shape[0] != X.shape[0]:
        raise CheckError(f"data: X has {X.shape[0]} rows but Y has {Y.shape[0]}; one target per example")
    for name, a in (("X", X), ("Y", Y)):
        if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
            row = int(np.argwhere(~np.isfinite(a))[0][0])
            raise CheckError(f"data: {name} holds NaN or infinity (row {row}); clean the data first")
    outputs = spec.sizes[-1]
    if spec.loss == "cross_entropy":
        if Y.ndim == 1:
            if not np.issubdtype(Y.dtype, np.integer) or Y.min() < 0 or Y.max() >= outputs:
                raise CheckError(f"data: cross_entropy takes class indices 0..{outputs - 1} for {outputs} outputs; "
                                 f"Y holds {Y.min()}..{Y.max()}")
            return
    if Y.ndim != 2 or Y.shape[1] != outputs:
        raise CheckError(f"data: Y has shape {Y.shape}; the network's {outputs} output(s) need (N, {outputs})"
                         + (" or class indices (N,)" if spec.loss == "cross_entropy" else ""))
    if spec.loss == "bce" and ((Y < 0) | (Y > 1)).any():
        raise CheckError(f"data: bce takes targets in [0, 1]; Y holds {Y.min()}..{Y.max()}")
    if spec.loss == "hinge" and not ((Y == 1) | (Y == -1)).all():
        raise CheckError("data: hinge takes labels -1 and +1; use encode_targets(labels, 'hinge', 2)")


def check_network(fn, spec=None, *, sizes=None, activation="sigmoid", output_activation="identity",
                  loss="squared_error", batch=4, trials=2, seed=0, data=None, params=None,
                  naming="torch", dtype="float64", tolerance=None, name=None):
    """Check fn(params, X, Y) -> (cost, grads[, intermediates]) against torch autograd on the mlp
    of ``spec`` (a NetworkSpec or a dict with sizes, activation, output_activation, loss; or those
    as keywords). Each trial draws params (xavier_uniform, biases too) and a batch of ``batch``
    random examples, unless ``params`` ({name: array}) or ``data`` ((X, Y)) are given.
    dtype "float32" hands float32 arrays to fn and uses float32's tolerance (with a warning).
    Returns a CheckResult; its mismatch names the first wrong node and why.
    """
    start = time.perf_counter()
    if spec is None:
        if sizes is None:
            raise CheckError("give spec=... or sizes=[inputs, hidden..., outputs]")
        spec = NetworkSpec(tuple(sizes), activation, output_activation, loss)
    spec = (NetworkSpec.from_dict(spec) if isinstance(spec, dict) else spec).validate()
    names = parameter_names(spec, naming)
    if not (isinstance(trials, int) and trials >= 1):
        raise CheckError(f"trials must be a positive integer, got {trials!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= 2**32 - 1:
        raise CheckError(f"seed must be an integer from 0 to 4294967295 (2^32 - 1), got {seed!r}")
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise CheckError(f"batch must be a positive integer, got {batch!r}")
    precision = Precision(dtype, tolerance)
    given = ([np.asarray(data[0])] if data is not None else []) + list((params or {}).values())
    if precision_of(*given) == "float32":      # float32 data or parameters: a float32 check
        precision.see()
    dtype, what = precision.dtype, describe(fn)
    rng = np.random.default_rng(seed)
    if data is not None:
        X, Y = (np.asarray(a) for a in data)
        if X.ndim != 2 or X.shape[1] != spec.sizes[0]:
            raise CheckError(f"data: X has shape {X.shape}; the network takes (N, {spec.sizes[0]})")
        X = X.astype(dtype)
        Y = Y if np.issubdtype(Y.dtype, np.integer) else Y.astype(dtype)
        _check_data(X, Y, spec)
    if params is not None:
        shapes, by_user = param_shapes(spec), {u: t for t, u in names.items()}
        if set(params) != set(by_user):
            raise CheckError(f"params have names {sorted(params)}; the network's are {list(by_user)}")
        fixed = {by_user[u]: as_array(v, f"params[{u!r}]", shapes[by_user[u]]).astype(dtype)
                 for u, v in params.items()}
    if data is not None and params is not None:
        trials = 1
    net = TorchNetwork.for_spec(spec)
    template = None if params is not None else manual.mlp(spec.sizes, spec.activation, spec.output_activation)
    per_trial, values, runs, given_keys, transposed = [], [], [], set(), set()
    for trial in range(1, trials + 1):
        state = fixed if params is not None else manual.init_parameters(
            template, "xavier_uniform", rng, zero_bias=False, dtype=dtype)
        if data is None:
            X, Y = random_batch(spec, batch, rng, dtype)
        user_params = {names[t]: np.array(v, copy=True) for t, v in state.items()}
        try:
            result = call_user(fn, user_params, X.copy(), Y.copy(), what=what)
        except CheckError as e:
            if isinstance(e.__cause__, KeyError) and e.__cause__.args and e.__cause__.args[0] not in user_params:
                raise CheckError(f"{e}; the params are named {', '.join(user_params)} (naming={naming!r}; "
                                 "naming='layers' names them W1, b1, ..., naming='torch' 0.weight, "
                                 "0.bias, ...)") from e.__cause__
            raise
        cost, grads, inter, flipped = _parse(result, spec, names, X, what)
        transposed |= flipped
        tol = precision.see(*grads.values(), *inter.values())
        keys = [(module_key(k, l, False), module_key(k, l, True)) for k, l in zip(net.kinds, net.layers)]
        # Only the intermediates returned are compared; the walk recomputes all of them on a mismatch.
        tt = net.trace(state, X, Y, keep={i for i, (f, d) in enumerate(keys) if f in inter or d in inter})
        tm = Trace(tt.kinds, [inter.get(f) for f, _ in keys], [inter.get(d) for _, d in keys], grads, cost)
        checks, vals = _compare(tm, tt, set(inter), names, tol)
        for c in checks:
            c.trial = trial
        per_trial.append(checks)
        values.append(vals)
        runs.append((state, X, Y, tm, tol))
        given_keys = set(inter)
    tensors = merge(per_trial)
    mismatch = hint = None
    failing = next((i for i, cs in enumerate(per_trial) if any(not c.passed for c in cs)), None)
    notes = list(precision.notes)
    if failing is not None:
        state, X, Y, tm, tol = runs[failing]
        tt = net.trace(state, X, Y)
        # Forward values not returned are filled with torch's (so they agree); gradients are left out.
        tm = replace(tm, outputs=[o if o is not None else t for o, t in zip(tm.outputs, tt.outputs)])
        found = localise(tm, tt, tol, spec.loss)
        mismatch, hint, more = explain_mismatch(found, per_trial[failing], values[failing], tm, tt,
                                                given_keys, spec, names, X.shape[0])
        notes += more
    if transposed:
        t = min(transposed, key=lambda n: int(n.split(".")[0]))
        label = param_tensor_name(t, names[t], net.kinds)
        tensors = [replace(c, diff=replace(c.diff, passed=False)) if c.diff.name in
                   {param_tensor_name(n, names[n], net.kinds) for n in transposed} else c for c in tensors]
        first = next(c for c in tensors if c.diff.name == label)
        right = ("its transpose has the right values" if first.diff.max_abs <= first.diff.allowed
                 else "even transposed its values differ")
        shape = tuple(param_shapes(spec)[t])
        mismatch = Mismatch("backward", first.diff, None, None,
                            f"grads[{names[t]!r}] has shape {shape[::-1]} where {names[t]} is {shape}: it looks "
                            f"transposed ({right}); a parameter's gradient has the parameter's shape (weights "
                            "are (out, in) here, dL/dW = dL/dz^T a)")
        hint, failing = "", first.trial - 1
    reference = f"torch autograd on torch_ref.mlp ({spec}), float64, the same parameters copied in"
    return CheckResult("network", name or what, reference, mismatch is None, tensors, precision.tolerance,
                       precision.dtype, trials, mismatch, hint or "", notes, time.perf_counter() - start,
                       None if failing is None else failing + 1)
