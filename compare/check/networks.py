"""Check a whole network's hand-written backprop against torch autograd on torch_ref.mlp.

The user's code takes (params, X, Y) and returns (cost, grads) or (cost, grads, intermediates), in
its own layout (compare.layouts: examples in rows or columns, W (out, in) or (in, out), biases
(out,), (out, 1) or (1, out), names W1 or 0.weight or lists) or as an object compare.layouts.adapters
makes into such a function. In torch's layout:

    params         {name: array}: W_l (out, in), b_l (out,), named "0.weight", "0.bias", ... or W1, b1.
    X, Y           a batch, examples in rows: X (N, inputs); Y as compare.data.targets.encode_targets
                   makes it for the loss ((N, outputs) 0/1 or one-hot; (N,) class indices for
                   cross_entropy; -1/+1 for hinge).
    cost           the number the loss gives for the batch (its reduction as manual/losses.py states),
                   plus l2·ΣW² where l2 is given; None: not compared.
    grads          {name: dCost/dparam}, the same names (or dW1, ...) and shapes as params.
    intermediates  optional {key: (N, units) array}, for layer l = 1..L: "z{l}" = a_{l-1} W_l^T + b_l,
                   "a{l}" = f_l(z_l), "dz{l}" = dCost/dz_l, "da{l}" = dCost/da_l, "da0" = dCost/dX.

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
from backprop_oracle.compare.verdict.explain import explain_mismatch, module_key, param_tensor_name
from backprop_oracle.compare.check.netspec import (NAMINGS, NetworkSpec, TorchNetwork, param_shapes, parameter_names,
                                                   random_batch)
from backprop_oracle.compare.check.result import CheckResult, TensorCheck, merge
from backprop_oracle.compare.layouts.adapters import adapt
from backprop_oracle.compare.layouts.auto import check_in_layout
from backprop_oracle.compare.layouts.layout import in_user_terms, resolve
from backprop_oracle.compare.layouts.returns import check_data, given_params, parse_returns, transposed_reason
from backprop_oracle.compare.verdict.diff import compare_arrays
from backprop_oracle.compare.verdict.localise import Mismatch, Trace, layer_numbers, localise
from backprop_oracle.compare.interactive.threads import runs_single_threaded

__all__ = ["check_network", "NetworkSpec"]


def _compare(tm, tt, given, names, tol, input_grad=None):
    """[TensorCheck] in the walk's order: the forward values returned, the cost (where returned), then
    from the output back each layer's dL/da, dL/dz (where returned), dL/dW and dL/db, and last dL/da0
    (the input's gradient, where returned: a pair (yours, torch's)). Also {tensor name: (yours, torch's)}."""
    kinds, layers = tt.kinds, layer_numbers(tt.kinds)
    items = [(k, tm.outputs[i], tt.outputs[i]) for i, k in
             ((i, module_key(kind, layers[i], False)) for i, kind in enumerate(kinds)) if k in given]
    if tm.cost is not None:
        items.append(("cost", tm.cost, tt.cost))
    for i in reversed(range(len(kinds))):
        key = module_key(kinds[i], layers[i], True)
        if key in given:
            items.append((f"dL/d{key[1:]}", tm.output_grads[i], tt.output_grads[i]))
        for attr in (("weight", "bias") if kinds[i] == "linear" else ()):
            t = f"{i}.{attr}"
            items.append((param_tensor_name(t, names[t], kinds), tm.param_grads[t], tt.param_grads[t]))
    if input_grad is not None:
        items.append(("dL/da0", *input_grad))
    return ([TensorCheck(compare_arrays(n, a, b, tol)) for n, a, b in items],
            {n: (a, b) for n, a, b in items})


@runs_single_threaded
def check_network(fn, spec=None, *, sizes=None, activation="sigmoid", output_activation="identity",
                  loss="squared_error", batch=4, trials=2, seed=0, data=None, params=None,
                  naming=None, layout="auto", l2=0.0, dtype="float64", tolerance=None, name=None):
    """Check a network's hand-written backprop against torch autograd on the mlp of ``spec`` (a
    NetworkSpec or a dict with sizes, activation, output_activation, loss; or those as keywords).
    ``fn``: fn(params, X, Y) -> (cost, grads[, intermediates]) or a network object (compare.layouts.adapters);
    ``layout``: "auto", a name of compare.layouts.layout.NAMED or a Layout; ``naming``: "torch" or "layers";
    ``l2``: the factor of l2·Σ_l ΣW_l² in the cost. Each trial draws params (xavier_uniform, biases
    too) and ``batch`` random examples, unless ``params`` ({name: array}, in the user's layout) or
    ``data`` ((X, Y), examples in rows) are given. dtype "float32" hands float32 arrays to fn and uses
    float32's tolerance (with a warning). Returns a CheckResult naming the first wrong node and why.
    """
    start = time.perf_counter()
    adapted = adapt(fn)
    if spec is None:
        if sizes is None and adapted.sizes is None:
            raise CheckError("give spec=... or sizes=[inputs, hidden..., outputs]")
        spec = NetworkSpec(tuple(sizes if sizes is not None else adapted.sizes), activation, output_activation, loss)
    spec = (NetworkSpec.from_dict(spec) if isinstance(spec, dict) else spec).validate()
    if naming is not None and naming not in NAMINGS:
        raise CheckError(f"unknown naming {naming!r}; choose one of: {', '.join(NAMINGS)}")
    if not (isinstance(trials, int) and trials >= 1):
        raise CheckError(f"trials must be a positive integer, got {trials!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= 2**32 - 1:
        raise CheckError(f"seed must be an integer from 0 to 4294967295 (2^32 - 1), got {seed!r}")
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise CheckError(f"batch must be a positive integer, got {batch!r}")
    if isinstance(l2, bool) or not isinstance(l2, (int, float)) or not np.isfinite(l2) or l2 < 0:
        raise CheckError(f"l2 must be a number >= 0 (the factor of l2·ΣW² in the cost), got {l2!r}")
    what = name or adapted.name or describe(adapted.fn)
    adapted.options["l2"] = float(l2)        # a per-example backprop's training loop adds its weight decay
    names_kind = {"torch": "torch", "layers": "W1", None: None}[naming]
    if naming is None and isinstance(params, dict) and set(params) == set(param_shapes(spec)):
        names_kind = "torch"                   # params given under torch's names: torch's layout
    if "names" in adapted.fixed:
        if naming is not None:
            raise CheckError(f"{what} names its own parameters ({', '.join(map(str, adapted.fixed['names']))}); "
                             "leave naming= out")
        names_kind = adapted.fixed["names"]
    run = dict(spec=spec, batch=batch, trials=trials, seed=seed, data=data, params=params, dtype=dtype,
               tolerance=tolerance, what=what, naming=naming, l2=float(l2))
    try:
        result = check_in_layout(adapted, layout, names_kind, run, _check_in)
    finally:
        _DRAWS.clear()
        if adapted.restore is not None:
            adapted.restore()
    result.notes = adapted.notes + result.notes
    result.seconds = time.perf_counter() - start
    return result


_DRAWS = {}     # the random draws of one check_network call, shared by the layouts it tries


def _check_in(adapted, layout, *, spec, batch, trials, seed, data, params, naming, dtype, tolerance, what, l2):
    """The check with the user's code in one layout."""
    precision = Precision(dtype, tolerance)
    given = ([np.asarray(data[0])] if data is not None else []) + list((params or {}).values())
    if precision_of(*given) == "float32":      # float32 data or parameters: a float32 check
        precision.see()
    dtype = precision.dtype
    user_names = layout.torch_to_user_names(spec.layers)
    rng = np.random.default_rng(seed)
    if data is not None:
        X, Y = (np.asarray(a) for a in data)
        if X.ndim != 2 or X.shape[1] != spec.sizes[0]:
            raise CheckError(f"data: X has shape {X.shape}; the network takes (N, {spec.sizes[0]}) "
                             "(data is given with examples in rows; your code gets it in its own layout)")
        X = X.astype(dtype)
        Y = Y if np.issubdtype(Y.dtype, np.integer) else Y.astype(dtype)
        check_data(X, Y, spec)
    if params is not None:
        fixed = given_params(params, layout, param_shapes(spec), user_names, dtype, as_array)
    if data is not None and params is not None:
        trials = 1
    net = TorchNetwork.for_spec(spec)
    rng, draws = _DRAWS.setdefault((spec, batch, seed, dtype, data is None, params is None), (rng, []))
    hint = ("; the params are named " + ", ".join(user_names.values()) + (f" (naming={naming!r}; " if naming else " (")
            + "naming='layers' names them W1, b1, ..., naming='torch' 0.weight, 0.bias, ...)")
    per_trial, values, runs, given_keys, transposed, slips, names = [], [], [], set(), set(), {}, user_names
    template = None
    for trial in range(1, trials + 1):
        if len(draws) < trial:
            template = template or (None if params is not None else
                                    manual.mlp(spec.sizes, spec.activation, spec.output_activation))
            draws.append((None if params is not None else manual.init_parameters(
                template, "xavier_uniform", rng, zero_bias=False, dtype=dtype),
                None if data is not None else random_batch(spec, batch, rng, dtype)))
        state = fixed if params is not None else draws[trial - 1][0]
        if data is None:
            X, Y = draws[trial - 1][1]
        user_params = layout.params_for(state, spec.layers)
        try:
            result = call_user(adapted.fn, user_params, layout.X_for(X), layout.Y_for(Y, spec.loss, spec.sizes[-1]),
                               what=what)
        except CheckError as e:
            if isinstance(e.__cause__, KeyError) and e.__cause__.args and e.__cause__.args[0] not in user_params:
                raise CheckError(f"{e}{hint}") from e.__cause__
            raise
        try:
            got = parse_returns(result, layout, spec.sizes, X.shape[0], what, as_array,
                                " (naming='layers' names them W1, b1, ...; naming='torch' 0.weight, 0.bias, ...)")
        except CheckError as e:
            if isinstance(result, (tuple, list)) and len(result) in (2, 3):
                e.stage = "returns"     # it ran in this layout, and returned a cost and grads
            raise
        names = {t: got.labels.get(t, u) for t, u in user_names.items()}
        transposed |= got.flipped
        slips.update(got.slips)
        grads, inter = got.grads, got.intermediates
        tol = precision.see(*[g for t, g in grads.items() if t not in got.slips], *inter.values())
        keys = [(module_key(k, l, False), module_key(k, l, True)) for k, l in zip(net.kinds, net.layers)]
        # Only the intermediates returned are compared; the walk recomputes all of them on a mismatch.
        tt = net.trace(state, X, Y, keep={i for i, (f, d) in enumerate(keys) if f in inter or d in inter}, l2=l2,
                       input_grad="da0" in inter)
        tm = Trace(tt.kinds, [inter.get(f) for f, _ in keys], [inter.get(d) for _, d in keys], grads, got.cost)
        checks, vals = _compare(tm, tt, set(inter), names, tol,
                                (inter["da0"], net.input_grad) if "da0" in inter else None)
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
        tt = net.trace(state, X, Y, l2=l2)
        # Forward values and a cost not returned are filled with torch's (so they agree); gradients are left out.
        tm = replace(tm, outputs=[o if o is not None else t for o, t in zip(tm.outputs, tt.outputs)],
                     cost=tt.cost if tm.cost is None else tm.cost)
        found = localise(tm, tt, tol, spec.loss)
        mismatch, hint, more = explain_mismatch(found, per_trial[failing], values[failing], tm, tt,
                                                given_keys, spec, names, X.shape[0])
        if found is None and mismatch.diff.name == "dL/da0":     # localise walks from z1 on: not the input
            mismatch = replace(mismatch, layer=1, reason="dL/da0, the gradient with respect to the input, is "
                               "wrong while every gradient after it agrees: dL/da0 = dL/dz1 W1")
        notes += more
    special = sorted(transposed | set(slips), key=lambda n: int(n.split(".")[0]))
    if special:
        t = special[0]
        label = param_tensor_name(t, names[t], net.kinds)
        wrong = {param_tensor_name(n, names[n], net.kinds) for n in special}
        shown = {param_tensor_name(n, names[n], net.kinds): shape for n, (_, shape) in slips.items()}
        tensors = [replace(c, diff=replace(c.diff, passed=False), given_shape=shown.get(c.diff.name))
                   if c.diff.name in wrong else c for c in tensors]
        first = next(c for c in tensors if c.diff.name == label)
        reason = slips[t][0] if t in slips else transposed_reason(t, layout, names[t], user_names[t], param_shapes(spec)[t],
                                                   first.diff.max_abs <= first.diff.allowed)
        mismatch = Mismatch("backward", first.diff, None, None, reason)
        hint, failing = "", first.trial - 1
    if mismatch is not None:
        mismatch = replace(mismatch, reason=layout.words(mismatch.reason))
    reference = f"torch autograd on torch_ref.mlp ({spec}), float64, the same parameters copied in"
    if l2:
        reference += f"; the cost includes l2·ΣW² with l2 = {l2:g} (the weights of every layer, not the biases)"
    out = CheckResult("network", what, reference, mismatch is None, tensors, precision.tolerance,
                      precision.dtype, trials, mismatch, hint or "", notes, 0.0,
                      None if failing is None else failing + 1)
    return in_user_terms(out, layout)

