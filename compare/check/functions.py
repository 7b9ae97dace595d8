"""Check a hand-derived gradient of a function y = f(x, ...) against torch autograd, or, without a
torch expression, against central finite differences.

For random inputs x and a random upstream gradient g = dL/dy, the backward must return the
vector-Jacobian product dL/dx = J^T g for every input. A random g tests every element of J^T
at once (a wrong element would have to cancel by chance).
"""
import inspect
import time

import numpy as np

from backprop_oracle.compare.check.common import (CheckError, Precision, as_array, call_user, describe, precision_of,
                                  standard_normal)
from backprop_oracle.compare.verdict.finite_diff import describe_kinks, numerical_vjp
from backprop_oracle.compare.verdict.hints import first_wrong
from backprop_oracle.compare.check.result import CheckResult, TensorCheck, merge
from backprop_oracle.compare.verdict.diff import compare_arrays
from backprop_oracle.compare.verdict.tolerances import Tolerance
from backprop_oracle.compare.interactive.threads import runs_single_threaded

MAX_REDRAWS = 10   # new random inputs drawn for a trial whose input sat near a kink


def input_names(f, count):
    """Names of f's first ``count`` parameters ("x", "W", "b"), or x0, x1, ..."""
    try:
        names = [p.name for p in inspect.signature(f).parameters.values()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][:count]
    except (TypeError, ValueError):
        names = []
    return names if len(names) == count else (["x"] if count == 1 else [f"x{i}" for i in range(count)])


def _as_tuple(value, count, what):
    if count == 1 and not isinstance(value, (tuple, list)):
        return (value,)
    if not isinstance(value, (tuple, list)) or len(value) != count:
        got = len(value) if isinstance(value, (tuple, list)) else 1
        raise CheckError(f"{what} returned {got} gradient(s) for {count} input(s); return one "
                         "dL/d(input) per input, in the order of the inputs")
    return tuple(value)


def torch_reference(torch_f, inputs, dL_dy, what):
    """(y, [dL/dx_i]) of ``torch_f`` by autograd, in float64, from copies of the inputs."""
    import torch
    xs = [torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True) for x in inputs]
    y = call_user(torch_f, *xs, what=what)
    if not isinstance(y, torch.Tensor):
        raise CheckError(f"{what} returned {type(y).__name__}; it must return a torch tensor computed "
                         "from its tensor arguments")
    if y.dtype != torch.float64:
        raise CheckError(f"{what} returned {y.dtype}; keep it in float64 (the inputs are float64) so "
                         "the reference keeps the oracle's precision")
    g = torch.tensor(np.asarray(dL_dy, dtype=np.float64))
    if tuple(y.shape) != tuple(g.shape):
        raise CheckError(f"{what} returned shape {tuple(y.shape)} but your f returned {tuple(g.shape)}")
    grads = torch.autograd.grad(y, xs, grad_outputs=g, allow_unused=True)
    return (y.detach().numpy().copy(),
            [np.zeros(x.shape) if gx is None else gx.detach().numpy().copy() for x, gx in zip(xs, grads)])


def _one_trial(f, grad, torch_f, inputs, names, rng, precision, labels):
    """Checks of one set of inputs: [TensorCheck], the kink notes, whether a kink was met, and
    {tensor name: (yours, reference)} to explain a difference."""
    y = as_array(call_user(f, *inputs, what=labels["f"]), f"the output of {labels['f']}")
    g = rng.standard_normal(y.shape).astype(y.dtype)
    got = _as_tuple(call_user(grad, *inputs, g, what=labels["grad"]), len(inputs), labels["grad"])
    grads = [as_array(gi, f"the gradient {labels['grad']} returned for {n}", np.shape(x))
             for gi, n, x in zip(got, names, inputs)]
    tol = precision.see(y, *grads)
    checks, notes, kinked, values = [], [], False, {}
    if torch_f is not None:
        y_ref, refs = torch_reference(torch_f, inputs, g, labels["torch"])
        checks.append(TensorCheck(compare_arrays("y (forward)", y, y_ref, tol)))
        values["y (forward)"] = (y, y_ref)
        for n, gi, ri in zip(names, grads, refs):
            checks.append(TensorCheck(compare_arrays(f"dL/d{n}", gi, ri, tol)))
            values[f"dL/d{n}"] = (gi, ri)
        return checks, notes, kinked, values
    forward = lambda arrays: call_user(f, *arrays, what=labels["f"])
    for i, (n, gi) in enumerate(zip(names, grads)):
        check, mine, num, note = numerical_check(f"dL/d{n}", gi, numerical_vjp(forward, inputs, g, i), precision)
        checks.append(check)
        values[f"dL/d{n}"] = (mine, num)
        if note:
            kinked = True
            notes.append(note)
    return checks, notes, kinked, values


def numerical_check(name, yours, num, precision):
    """Compare ``yours`` with a NumericalGradient, leaving out the elements that sat near a kink.

    Returns (TensorCheck, yours with those elements set to the estimate, the estimate, a note
    naming the kinks or None)."""
    mine = np.asarray(yours, dtype=np.float64).copy()
    skipped = int(num.near_kink.sum())
    note = describe_kinks(name, num) if skipped else None
    mine[num.near_kink] = num.grad[num.near_kink]   # not compared: both sides the same
    t = num.tolerance()
    if precision.dtype == "float32":   # your float32 rounding, not the differences, dominates
        ft = precision.tolerance
        t = Tolerance(max(t.rtol, ft.rtol), max(t.atol, ft.atol))
    return TensorCheck(compare_arrays(name, mine, num.grad, t), skipped_near_kink=skipped), mine, num.grad, note


def registered_activation(key):
    """(f, torch_f) of an activation named by its registry key ("gelu", "elu:alpha=0.5"): the manual
    side's forward and torch's module, each made fresh for every call."""
    from backprop_oracle import manual, torch_ref
    try:
        manual.make_activation(key)
    except ValueError as e:
        raise CheckError(f"check_function({key!r}, ...): {e}") from None

    def f(z):
        return manual.make_activation(key).forward(z)

    def torch_f(z):
        return torch_ref.make_activation(key)(z)
    f.__name__ = torch_f.__name__ = key.partition(":")[0]
    f.__qualname__ = f"manual {key}"
    torch_f.__qualname__ = f"torch_ref.make_activation({key!r})"
    return f, torch_f


@runs_single_threaded
def check_function(f, grad, torch_f=None, *, shapes=None, inputs=None, trials=3, seed=0,
                   sampler=None, dtype="float64", tolerance=None, name=None):
    """Check ``grad``, a hand-derived backward of ``f``, on random inputs.

    f(x, ...) -> y: NumPy forward.  grad(x, ..., dL_dy) -> dL_dx (or a tuple, one per input).
    torch_f(x, ...) -> y: the same function in torch (float64 tensors); None uses central finite
    differences (float64) instead, and reports inputs that sat near a kink rather than failing.

    shapes: one shape per input (a single shape for one input); or ``inputs``: explicit arrays,
    checked once. sampler(rng, shape) -> array draws the inputs (default N(0, 1)); a trial whose
    input sat near a kink is drawn again. dtype "float32" checks float32 values with float32's
    tolerance (and warns). Returns a CheckResult; its ``report()`` says where and how it differs.

    ``f`` may be an activation's registry key instead, ``check_function("gelu", my_grad)``: your
    grad(z, dL_da) -> dL/dz is checked against torch's module of that key (``torch_f`` is then
    taken from the key, the shapes default to (8, 5): 8 examples, 5 units).
    """
    start = time.perf_counter()
    if isinstance(f, str):
        if torch_f is not None:
            raise CheckError(f"check_function({f!r}, grad): the key names torch's function already; "
                             "give no torch_f")
        name = name or f"{f}'"
        f, torch_f = registered_activation(f)
        if shapes is None and inputs is None:
            shapes = (8, 5)
    labels = {"f": describe(f), "grad": describe(grad),
              "torch": "" if torch_f is None else f"the torch expression {describe(torch_f)}"}
    if (shapes is None) == (inputs is None):
        raise CheckError("give either shapes=[shape of each input] or inputs=[arrays], not both or neither")
    rng = np.random.default_rng(seed)
    sampler = sampler or standard_normal
    if inputs is not None:
        inputs = [as_array(x, f"input {i}") for i, x in enumerate(inputs)]
        dtype, trials = precision_of(*inputs), 1
    elif all(isinstance(s, (int, np.integer)) for s in shapes):
        shapes = [tuple(shapes)]          # one input's shape, given bare
    else:
        shapes = [tuple(s) for s in shapes]
    if not (isinstance(trials, int) and trials >= 1):
        raise CheckError(f"trials must be a positive integer, got {trials!r}")
    count = len(inputs) if inputs is not None else len(shapes)
    names = input_names(f, count)
    precision = Precision(dtype, tolerance)
    notes = []
    reference = (f"torch autograd on {describe(torch_f)} (float64)" if torch_f is not None else
                 "central finite differences in float64, h = 1e-6·max(1, |x|); per-tensor tolerance "
                 "rtol 1e-6 + atol from the rounding noise")
    per_trial, values = [], []
    for trial in range(1, trials + 1):
        for draw in range(MAX_REDRAWS + 1):
            xs = inputs if inputs is not None else [
                np.asarray(sampler(rng, s), dtype=np.float64).astype(dtype) for s in shapes]
            checks, kink_notes, kinked, arrays = _one_trial(f, grad, torch_f, xs, names, rng, precision, labels)
            if not kinked or inputs is not None or draw == MAX_REDRAWS:
                break
        if draw:
            notes.append(f"trial {trial}: an input sat near a kink (the one-sided differences "
                         f"disagreed); new inputs were drawn {draw} time(s)")
        notes += [f"trial {trial}: {n}" for n in kink_notes]
        for c in checks:
            c.trial = trial
        per_trial.append(checks)
        values.append(arrays)
    tensors = merge(per_trial)
    batch = xs[0].shape[0] if xs and np.ndim(xs[0]) >= 2 else None   # examples are rows
    mismatch, hint, trial = first_wrong(tensors, per_trial, values, batch)
    tol = precision.tolerance
    if torch_f is None:
        tol = max((t.diff.tolerance for t in tensors), key=lambda t: t.atol, default=tol)
    return CheckResult("function", name or labels["grad"], reference, mismatch is None, tensors, tol,
                       precision.dtype, trials, mismatch, hint, precision.notes + notes,
                       time.perf_counter() - start, trial)
