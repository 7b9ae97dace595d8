"""Check a layer written in the style of ``manual/`` against torch autograd (a torch module or a
function), or against central finite differences.

The contract (manual.module.Module): ``forward(x)`` returns y and keeps what backward needs;
``backward(dL_dy)`` adds dL/dparam into each ``param.grad`` and returns dL/dx;
``named_parameters()`` yields (name, param) with ``param.data`` and ``param.grad`` arrays.
Examples are rows: x is (N, ...).
"""
import copy
import time
from dataclasses import replace

import numpy as np

from backprop_oracle.compare.check.common import (CheckError, Precision, as_array, call_user, describe,
                                  precision_of, standard_normal)
from backprop_oracle.compare.verdict.finite_diff import numerical_vjp
from backprop_oracle.compare.check.functions import numerical_check
from backprop_oracle.compare.verdict.hints import first_wrong, reason_for_layer
from backprop_oracle.compare.check.parameters import PlainParameter, find_plain_gradients, layer_parameters
from backprop_oracle.compare.check.result import CheckResult, TensorCheck, merge
from backprop_oracle.compare.verdict.diff import compare_arrays
from backprop_oracle.compare.verdict.localise import Mismatch
from backprop_oracle.compare.interactive.threads import runs_single_threaded
from backprop_oracle.compare.layouts.cached import CachedLayer, cached_layer, takes_cache
from backprop_oracle.compare.layouts.state import SUFFIX as BUFFER, LayerState, buffer_reason, require_deterministic
from backprop_oracle.compare.layouts.images import check_image_layout, from_nchw, to_nchw


def _module_parameters(module, params, param_map):
    """The torch module's parameters in the layer's order, checked against the layer's."""
    own = dict(module.named_parameters())
    wanted = {n: param_map.get(n, n) for n, _ in params}
    missing = [f"{n} (as {t!r})" if t != n else n for n, t in wanted.items() if t not in own]
    extra = sorted(set(own) - set(wanted.values()))
    if missing:
        raise CheckError(f"the torch module has no parameter for {', '.join(missing)}; its parameters "
                         f"are {', '.join(own) or 'none'}: pass param_map={{'yours': 'torch name'}}")
    if extra:
        raise CheckError(f"the torch module has parameters your layer lacks: {', '.join(extra)}; "
                         "build it without them (e.g. torch.nn.Linear(..., bias=False))")
    for n, p in params:
        if tuple(own[wanted[n]].shape) != p.data.shape:
            raise CheckError(f"parameter {n!r} has shape {p.data.shape} but the torch module's "
                             f"{wanted[n]!r} has {tuple(own[wanted[n]].shape)} (torch stores a Linear "
                             "weight as (out, in), a convolution's as (out, in/groups, kH, kW), whatever "
                             "the layout of the images)")
    return [own[wanted[n]] for n, _ in params]


def torch_layer_reference(reference, x, params, g, param_map, state=None):
    """(y, dL/dx, [dL/dparam]) of the reference by autograd in float64, with the layer's values
    (and its mode and buffers: ``state``, a compare.layouts.state.LayerState)."""
    import torch
    what = f"the reference {describe(reference)}"
    xt = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    if isinstance(reference, torch.nn.Module):
        module = copy.deepcopy(reference).double()
        if state is not None:                # the layer's mode and buffers
            if state.training is not None:
                module.train(state.training)
            own = dict(module.named_buffers())
            state.check_module_buffers(own)
            with torch.no_grad():
                for n, value in state.before.items():
                    own[n].copy_(torch.tensor(value))
        if any(isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.training and m.p > 0
               and getattr(m, "mask_provider", None) is None for m in module.modules()):
            raise CheckError(f"{what} drops elements with a mask from torch's own generator, so its y cannot be "
                             "yours: give it your layer's mask, torch_ref.Dropout(p, mask=lambda shape, p: "
                             "layer.last_mask), or check in eval mode")
        tensors = _module_parameters(module, params, param_map)
        with torch.no_grad():
            for t, (_, p) in zip(tensors, params):
                t.copy_(torch.tensor(np.asarray(p.data, dtype=np.float64)))
        y = call_user(module, xt, what=what)
        if state is not None:
            state.module_after = {n: b.detach().double().numpy().copy() for n, b in module.named_buffers()
                                  if n in state.before}
    else:
        tensors = [torch.tensor(np.asarray(p.data, dtype=np.float64), requires_grad=True) for _, p in params]
        y = call_user(reference, xt, {n: t for (n, _), t in zip(params, tensors)}, what=what)
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != np.shape(g):
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise CheckError(f"{what} returned {got} but your forward returned shape {np.shape(g)}")
    grads = torch.autograd.grad(y, [xt] + tensors, torch.tensor(np.asarray(g, dtype=np.float64)),
                                allow_unused=True)
    grads = [np.zeros(tuple(t.shape)) if gr is None else gr.detach().numpy().copy()
             for t, gr in zip([xt] + tensors, grads)]
    return y.detach().numpy().copy(), grads[0], grads[1:]


def numerical_layer_reference(layer, x, params, g):
    """(dL/dx, [dL/dparam]) by central differences, the parameters swapped for float64 copies."""
    originals = [p.data for _, p in params]

    def forward(arrays):
        for (_, p), a in zip(params, arrays[1:]):
            p.data = a
        return call_user(layer.forward, arrays[0], what=f"{describe(layer)}.forward")
    try:
        arrays = [x] + originals
        nums = [numerical_vjp(forward, arrays, g, i) for i in range(len(arrays))]
    finally:
        for (_, p), data in zip(params, originals):
            p.data = data
    return nums[0], nums[1:]


def _zero_grads(params):
    for _, p in params:
        if isinstance(p, PlainParameter):
            if p.grad_name is not None:
                p.grad = np.zeros_like(p.data)
        else:
            p.grad[...] = 0


def _run_layer(layer, params, x, rng, what):
    """Forward and backward on the layer with zeroed gradients: (y, g, dL/dx, {name: grad}, {name:
    True where the gradient came back transposed})."""
    _zero_grads(params)
    y = as_array(call_user(layer.forward, x, what=f"{what}.forward"), f"the output of {what}.forward")
    g = rng.standard_normal(y.shape).astype(y.dtype)
    dx = call_user(layer.backward, g, what=f"{what}.backward")
    dx = as_array(dx, f"dL/dx returned by {what}.backward", np.shape(x),
                  hint="" if dx is not None else " (backward must return dL/dx)")
    find_plain_gradients(layer, params)
    grads, transposed = {}, {}
    for n, p in params:
        grad, shape = np.array(p.grad, copy=True), np.shape(p.data)
        # A gradient of the transposed shape is a classic mistake, not a usage error: compare its
        # transpose, and fail the check saying so.
        transposed[n] = grad.shape != shape and len(shape) == 2 and grad.shape == shape[::-1]
        grads[n] = as_array(grad.T if transposed[n] else grad, f"{n}.grad after {what}.backward", shape)
    return y, g, dx, grads, transposed


def _accumulation_checks(layer, params, g, grads, tol, what):
    """A second backward must add the same gradient again (2 x), as torch's .grad does."""
    try:
        call_user(layer.backward, g, what=f"{what}.backward")
    except CheckError:
        return [], {}   # a layer that cannot run backward twice is not judged on it
    checks, values = [], {}
    for n, p in params:
        name = f"{n}.grad after a 2nd backward"
        checks.append(TensorCheck(compare_arrays(name, p.grad, 2.0 * grads[n], tol)))
        values[name] = (np.array(p.grad, dtype=np.float64), 2.0 * grads[n])
    return checks, values


@runs_single_threaded
def check_layer(layer, reference=None, *, input_shape=None, inputs=None, trials=3, seed=0,
                sampler=None, keep_params=False, param_map=None, dtype=None, tolerance=None, name=None,
                params=None, layout="NCHW"):
    """Check a manual-style layer's backward on random inputs.

    reference: a torch.nn.Module with parameters of the same names and shapes (its values are
    replaced by the layer's; ``param_map`` renames: {"W": "weight"}), or a function
    reference(x, params: {name: tensor}) -> y, or None for central finite differences.
    input_shape: the shape of x, examples in rows, e.g. (4, 3); or ``inputs``: one explicit x.
    keep_params: use the layer's own values; by default every trial draws new ones from U(-1, 1)
    (restored afterwards), so that zeros or ones do not hide a mistake. With finite differences,
    elements whose input sat near a kink are reported in the notes and left out.
    params: where a layer that keeps plain arrays has its gradients, {"W": "dW", "b": "db"} ({} for
    none); found by itself for dW/grad_W/W_grad attributes and params/grads dicts (see
    layer_parameters). A layer whose arrays have no gradient it can find is refused, never passed.
    Modes and buffers (compare.layouts.state): a torch module runs in the layer's mode (``training``)
    from the layer's buffers (BatchNorm's running_mean, running_var, num_batches_tracked), which are
    compared after each forward and put back after the check. Central differences refuse a forward
    that is random (a dropout drawing a new mask each call: hold its mask fixed).
    A layer written the CS231n way, forward(x) -> (out, cache) and backward(dout, cache) -> (dx,
    dgamma, ...), is read through compare.layouts.cached (pass ``cached_layer(forward, backward,
    params=..., args=(bn_param,))`` for a pair of functions); gamma/beta are torch's weight/bias.
    layout: where your layer keeps an image's channels, "NCHW" (torch's, the default) or "NHWC"
    (channels last: x (N, H, W, C), y and dL/dx likewise; (N, L, C) for a sequence). x and dL/dy
    are converted to NCHW for the torch reference and its y and dL/dx back to yours, so the report
    speaks of your shapes and indices; parameters keep torch's shapes.
    Returns a CheckResult comparing y, dL/dx and every parameter's gradient, plus that gradients
    accumulate (manual Parameters only); its notes say what was compared.
    """
    start = time.perf_counter()
    if not isinstance(layer, CachedLayer) and takes_cache(getattr(layer, "backward", None)):
        layer = cached_layer(layer)   # forward(x) -> (out, cache), backward(dout, cache): the CS231n way
    what = layer.name if isinstance(layer, CachedLayer) else describe(layer)
    layout = check_image_layout(layout)
    params = layer_parameters(layer, params)
    if (input_shape is None) == (inputs is None):
        raise CheckError("give either input_shape=(N, ...) or inputs=x, not both or neither")
    if not (isinstance(trials, int) and trials >= 1):
        raise CheckError(f"trials must be a positive integer, got {trials!r}")
    if inputs is not None:
        inputs, trials = as_array(inputs, "inputs"), 1
    dtype = dtype or precision_of(*(p.data for _, p in params), *([] if inputs is None else [inputs]))
    precision = Precision(dtype, tolerance)
    rng, sampler = np.random.default_rng(seed), sampler or standard_normal
    param_map = param_map or getattr(layer, "torch_names", None) or {}
    state = LayerState(layer)         # its mode and buffers, carried to torch and put back after
    if params and any(isinstance(p, PlainParameter) and p.grad_name is None for _, p in params):
        # Plain arrays: run backward once to see where it writes their gradients (or refuse).
        probe = inputs if inputs is not None else np.asarray(sampler(np.random.default_rng(seed), tuple(input_shape)))
        _zero_grads(params)
        call_user(layer.backward, np.random.default_rng(seed).standard_normal(np.shape(
            call_user(layer.forward, probe.astype(dtype), what=f"{what}.forward"))), what=f"{what}.backward")
        params = find_plain_gradients(layer, params)
    saved = [p.data.copy() for _, p in params]
    ref_name = ("central finite differences in float64, h = 1e-6·max(1, |x|)" if reference is None
                else f"torch autograd on {describe(reference)} (float64, your parameter values copied in)")
    per_trial, values, notes, transposed = [], [], [], set()
    try:
        for trial in range(1, trials + 1):
            if not keep_params:
                for _, p in params:
                    p.data[...] = rng.uniform(-1.0, 1.0, p.data.shape)
            x = inputs if inputs is not None else np.asarray(sampler(rng, tuple(input_shape))).astype(dtype)
            state.snapshot()
            y, g, dx, grads, flipped = _run_layer(layer, params, x, rng, what)
            transposed |= {n for n, t in flipped.items() if t}
            tol = precision.see(y, dx, *grads.values())
            checks, vals = [], {}
            if reference is None:
                require_deterministic(lambda a: call_user(layer.forward, a, what=f"{what}.forward"), x, what)
                num_x, num_p = numerical_layer_reference(layer, x, params, g)
                pairs = [("dL/dx", dx, num_x)] + [(f"{n}.grad", grads[n], num) for (n, _), num in zip(params, num_p)]
                for tname, mine, num in pairs:
                    check, mine, ref, note = numerical_check(tname, mine, num, precision)
                    checks.append(check)
                    vals[tname] = (mine, ref)
                    if note:
                        notes.append(f"trial {trial}: {note}")
            else:
                y_ref, dx_ref, p_ref = torch_layer_reference(reference, to_nchw(x, layout), params,
                                                             to_nchw(g, layout), param_map, state)
                y_ref, dx_ref = from_nchw(y_ref, layout), from_nchw(dx_ref, layout)
                pairs = [("y (forward)", y, y_ref), ("dL/dx", dx, dx_ref)] + [
                    (f"{n}.grad", grads[n], r) for (n, _), r in zip(params, p_ref)]
                for tname, mine, ref in pairs:
                    checks.append(TensorCheck(compare_arrays(tname, mine, ref, tol)))
                    vals[tname] = (mine, ref)
                for tname, mine, ref in state.pairs():
                    checks.append(TensorCheck(compare_arrays(tname, mine, ref, tol)))
                    vals[tname] = (mine, ref)
            if trial == 1 and params and not transposed and all(getattr(p, "accumulates", True) for _, p in params):
                more, more_vals = _accumulation_checks(layer, params, g, grads, tol, what)
                checks += more
                vals.update(more_vals)
            for c in checks:
                c.trial = trial
            per_trial.append(checks)
            values.append(vals)
    finally:
        for (_, p), data in zip(params, saved):
            p.data[...] = data
        _zero_grads(params)
        state.restore()
    tensors = merge(per_trial)
    batch = x.shape[0] if np.ndim(x) >= 2 else None
    kind = "conv" if any(np.ndim(p.data) >= 3 for _, p in params) else "linear"   # a kernel (out, in, k...)
    mismatch, hint, trial = first_wrong(tensors, per_trial, values, batch, kind)
    if mismatch is not None and "after a 2nd backward" in mismatch.diff.name:
        pname = mismatch.diff.name.split(" after", 1)[0]
        mismatch = Mismatch("backward", mismatch.diff, None, None,
                            f"every gradient is right once, but a second backward does not add to "
                            f"{pname}: backward overwrites param.grad; write `param.grad += ...` "
                            "(gradients accumulate until zero_grad, as in torch)")
        hint = ""
    elif mismatch is not None and all(t.passed or t.diff.name.endswith(BUFFER) for t in tensors):
        mismatch, hint = Mismatch("buffers", mismatch.diff, None, None, buffer_reason(mismatch.diff.name)), ""
    elif mismatch is not None and mismatch.stage == "backward" and not any(np.ndim(p.data) == 2 for _, p in params):
        norm = hasattr(layer, "running_mean") or hasattr(layer, "normalized_shape") or "norm" in what.lower() \
            or {"gamma", "beta"} & {n for n, _ in params}
        mismatch = replace(mismatch, reason=reason_for_layer(mismatch.reason, mismatch.diff.name, norm))
    if transposed:
        tensors = [replace(t, diff=replace(t.diff, passed=False)) if t.diff.name.split(".grad")[0] in transposed
                   else t for t in tensors]
        n = sorted(transposed)[0]
        shape = np.shape(dict(params)[n].data)
        first = next(t for t in tensors if t.diff.name == f"{n}.grad")
        right = "its transpose has the right values" if first.diff.max_abs <= first.diff.allowed else \
            "even transposed its values differ"
        mismatch = Mismatch("backward", first.diff, None, None,
                            f"{n}.grad has shape {shape[::-1]} where {n} is {shape}: it looks transposed "
                            f"({right}); a parameter's gradient has the parameter's shape (torch's "
                            "convention: weights are (out, in), dL/dW = dL/dy^T x)")
        hint, trial = "", first.trial
    plain = [f"{n} (gradient in {p.where()})" for n, p in params if isinstance(p, PlainParameter)]
    if plain:
        notes.append(f"compared y, dL/dx and the plain-array parameters {', '.join(plain)}; gradients of plain "
                     "arrays are taken as one backward writes them (accumulation is not asked of them)")
    elif not params:
        notes.append("the layer has no parameters: compared y and dL/dx")
    notes += getattr(layer, "check_notes", []) + state.notes(callable(getattr(reference, "named_buffers", None)))
    if layout != "NCHW" and np.ndim(x) >= 3:
        notes.append(f"layout {layout}: your x, y and dL/dx are channels last; "
                     + ("they were compared as they are (finite differences need no conversion)" if reference is None
                        else "x and dL/dy were moved to torch's channels-first NCHW for the reference, and its "
                             f"y and dL/dx back to {layout}, so shapes and indices here are yours"))
    tol = precision.tolerance
    if reference is None:
        tol = max((t.diff.tolerance for t in tensors), key=lambda t: t.atol, default=tol)
    return CheckResult("layer", name or what, ref_name, mismatch is None, tensors, tol, precision.dtype,
                       trials, mismatch, hint, precision.notes + notes, time.perf_counter() - start, trial)
