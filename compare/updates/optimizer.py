"""Check a hand-written optimizer step against torch.optim, step by step, in float64.

Both sides start from the same parameters and are given the same gradients, in two runs:

- **random gradients**: N(0, 1) scaled per parameter (1, 1e-3, 10, 1e-6: Adam's eps and a small
  gradient's bias correction show at the small scales), with one unit's gradients exactly 0;
- **a network's gradients**: the mse loss of a 3-4-2 tanh MLP on a fixed batch, by torch autograd
  at torch's parameters of each step (so the gradients the two sides are given stay identical
  after they part ways, and every step is compared on identical inputs).

After every step each parameter is compared element by element under float64's tolerance; the
first step and parameter that differ are named. The cause is named only when a variant of
torch's rule (compare/updates/rules.py: the rule with one mistake, or two) reproduces the user's
parameters at every step of both runs within the same tolerance; otherwise the report says the
rule differs and shows both values.
"""
import itertools
import time

import numpy as np

from backprop_oracle.compare.errors import CheckError
from backprop_oracle.compare.updates.forms import FORMS, describe, detect, run_user, stepper_factory
from backprop_oracle.compare.updates.result import StepCheck, UpdateResult
from backprop_oracle.compare.updates.rules import RULES, Variant, run_rule
from backprop_oracle.compare.verdict.diff import compare_arrays
from backprop_oracle.compare.verdict.tolerances import tolerance_for
from backprop_oracle.compare.interactive.threads import runs_single_threaded

DEFAULTS = {
    "sgd": {"lr": 1e-3, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False, "maximize": False},
    "adam": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False, "maximize": False},
    "adamw": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2, "amsgrad": False,
              "maximize": False},
    "rmsprop": {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0, "centered": False,
                "maximize": False},
    "adagrad": {"lr": 1e-2, "lr_decay": 0.0, "weight_decay": 0.0, "initial_accumulator_value": 0.0, "eps": 1e-10,
                "maximize": False},
}
TORCH_NAMES = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "adagrad": "Adagrad"}
FORMULAS = {
    "sgd": "g = ∇ + λw; buf = g at step 1, then μ·buf + (1 − dampening)·g; g = g + μ·buf (Nesterov) or buf; "
           "w = w − lr·g",
    "adam": "g = ∇ + λw; m = β1·m + (1 − β1)·g; v = β2·v + (1 − β2)·g²; w = w − lr/(1 − β1^t) · m / "
            "(√v/√(1 − β2^t) + eps), t = 1, 2, ...",
    "adamw": "w = w·(1 − lr·λ); m = β1·m + (1 − β1)·∇; v = β2·v + (1 − β2)·∇²; w = w − lr/(1 − β1^t) · m / "
             "(√v/√(1 − β2^t) + eps), t = 1, 2, ...",
    "rmsprop": "g = ∇ + λw; v = α·v + (1 − α)·g²; (centered: ḡ = α·ḡ + (1 − α)·g, v − ḡ²); d = √v + eps; "
               "buf = μ·buf + g/d, w = w − lr·buf (μ > 0), else w = w − lr·g/d",
    "adagrad": "g = ∇ + λw; s = s + g² (from initial_accumulator_value); w = w − lr/(1 + (t − 1)·lr_decay) · "
               "g/(√s + eps), t = 1, 2, ...",
}
SHAPES = {"0.weight": (4, 3), "0.bias": (4,), "2.weight": (2, 4), "2.bias": (2,)}   # the 3-4-2 network
SCALES = {"0.weight": 1.0, "0.bias": 1e-3, "2.weight": 10.0, "2.bias": 1e-6}
RUNS = ("random", "network")
PREFIX = 3          # steps a variant is tried on before it is run in full


def hyperparameters(optimizer, given):
    """torch's defaults updated with ``given``; an argument torch's optimizer does not take, or a
    value it refuses, is a CheckError."""
    if optimizer not in DEFAULTS:
        raise CheckError(f"unknown optimizer {optimizer!r}; choose one of: {', '.join(DEFAULTS)}")
    unknown = sorted(set(given) - set(DEFAULTS[optimizer]))
    if unknown:
        raise CheckError(f"{optimizer}: {', '.join(unknown)} not supported; torch.optim.{TORCH_NAMES[optimizer]}'s "
                         f"arguments that the check compares are {', '.join(DEFAULTS[optimizer])} (foreach, fused, capturable and differentiable change how "
                         "torch computes, not what; for decoupled weight decay check 'adamw')")
    hp = dict(DEFAULTS[optimizer])
    for k, v in given.items():
        default = hp[k]
        if isinstance(default, bool):
            if not isinstance(v, (bool, np.bool_)):
                raise CheckError(f"{optimizer}: {k} must be True or False, got {v!r}")
            hp[k] = bool(v)
        elif isinstance(default, tuple):
            try:
                hp[k] = tuple(float(b) for b in v)
            except (TypeError, ValueError):
                raise CheckError(f"{optimizer}: {k} must be a pair of numbers, e.g. (0.9, 0.999), got {v!r}") from None
            if len(hp[k]) != 2:
                raise CheckError(f"{optimizer}: {k} must be a pair of numbers, e.g. (0.9, 0.999), got {v!r}")
        else:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)) or not np.isfinite(v):
                raise CheckError(f"{optimizer}: {k} must be a finite number, got {v!r}")
            hp[k] = float(v)
    import torch
    try:
        _torch_optimizer(optimizer, [torch.zeros(1, dtype=torch.float64, requires_grad=True)], hp)
    except ValueError as e:
        raise CheckError(f"torch.optim.{TORCH_NAMES[optimizer]} refuses these arguments: {e}") from None
    return hp


def _torch_optimizer(optimizer, params, hp):
    import torch
    return getattr(torch.optim, TORCH_NAMES[optimizer])(params, foreach=False, **hp)


def _reference_text(optimizer, hp):
    args = ", ".join(f"{k}={v!r}" if not isinstance(v, float) else f"{k}={v:g}" for k, v in hp.items())
    return f"torch.optim.{TORCH_NAMES[optimizer]}({args}), float64"


def draw_problem(seed, steps):
    """(start, random gradients [step][parameter], X, Y) made once from numpy.random.default_rng(seed)."""
    rng = np.random.default_rng(seed)
    start = {k: 0.5 * rng.standard_normal(s) for k, s in SHAPES.items()}
    grads = []
    for _ in range(steps):
        g = {k: SCALES[k] * rng.standard_normal(s) for k, s in SHAPES.items()}
        g["0.weight"][3], g["0.bias"][3] = 0.0, 0.0          # a unit whose gradient is exactly 0
        grads.append(g)
    return start, grads, rng.standard_normal((8, 3)), rng.standard_normal((8, 2))


def torch_runs(optimizer, hp, start, random_grads, X, Y):
    """({run: gradients [step][parameter]}, {run: torch's parameters after each step})."""
    import torch
    from backprop_oracle import torch_ref
    out_grads, out_params = {"random": random_grads}, {}
    params = {k: torch.tensor(v) for k, v in start.items()}
    for p in params.values():
        p.requires_grad_(True)
    opt = _torch_optimizer(optimizer, list(params.values()), hp)
    traj = []
    for g in random_grads:
        for k, p in params.items():
            p.grad = torch.tensor(g[k])
        opt.step()
        traj.append({k: p.detach().numpy().copy() for k, p in params.items()})
    out_params["random"] = traj
    net = torch_ref.mlp([3, 4, 2], "tanh", "identity", dtype="float64")
    named = dict(net.named_parameters())
    with torch.no_grad():
        for k, v in start.items():
            named[k].copy_(torch.tensor(v))
    opt = _torch_optimizer(optimizer, [named[k] for k in SHAPES], hp)
    x, y = torch.tensor(X), torch.tensor(Y)
    grads, traj = [], []
    for _ in random_grads:
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        grads.append({k: named[k].grad.detach().numpy().copy() for k in SHAPES})
        opt.step()
        traj.append({k: named[k].detach().numpy().copy() for k in SHAPES})
    out_grads["network"], out_params["network"] = grads, traj
    return out_grads, out_params


def compare_step(run, step, mine, ref, tol):
    """The StepCheck of one step: the first wrong parameter's diff, or the worst one's."""
    diffs = [compare_arrays(k, mine[k], ref[k], tol) for k in ref]
    wrong = [d for d in diffs if not d.passed]
    if wrong:
        return StepCheck(run, step, wrong[0])
    return StepCheck(run, step, max(diffs, key=lambda d: d.max_abs / d.allowed if d.allowed else d.max_abs))


def _agree(a, b, tol):
    """Do two trajectories {run: [step][parameter]} agree at every step of every run?"""
    return all(compare_arrays(k, x[k], y[k], tol).passed
               for run in a for x, y in zip(a[run], b[run]) for k in x)


def diagnose(optimizer, hp, start, grads, user, ref, tol):
    """(causes [Variant], words): the variants of torch's rule that reproduce ``user``."""
    step, defaults, variants = RULES[optimizer]
    rule_hp = dict(hp, decoupled=(optimizer == "adamw"))
    short = {run: g[:PREFIX] for run, g in grads.items()}

    def trajectory(knobs, grads=grads):
        return {run: run_rule(optimizer, knobs, rule_hp, start, grads[run]) for run in grads}

    def reproduces(knobs, target):
        """Every step of both runs within the tolerance (the first PREFIX steps tried first, for speed)."""
        prefix = {run: t[:PREFIX] for run, t in target.items()}
        return _agree(trajectory(knobs, short), prefix, tol) and _agree(trajectory(knobs), target, tol)

    if not _agree(trajectory(defaults), ref, tol):   # cannot happen; never name a cause on a broken reference
        return [], ("your rule differs from torch's (no cause is named: the reference variants do not "
                    "reproduce torch here)")
    found = [v for v in variants if reproduces(v.knobs(defaults), user) and not reproduces(v.knobs(defaults), ref)]
    if not found:
        lr = _fitted_lr(hp["lr"], start, grads["random"], user["random"], ref["random"])
        if lr is not None:
            v = Variant("learning_rate", (("lr", lr),),
                        f"a learning rate of {lr:.6g} where the check's is lr={hp['lr']:g}: the rule is torch's, "
                        "its step size is not (a value written into the rule, or another default)")
            if reproduces(v.knobs(defaults), user):
                found.append(v)
    # the variants that change anything in the first steps here (a dampening of 0 makes its variants torch's rule)
    effective = [v for v in variants if not _agree(trajectory(v.knobs(defaults), short),
                                                   {run: t[:PREFIX] for run, t in ref.items()}, tol)]
    if not found:
        for a, b in itertools.combinations(effective, 2):
            if {k for k, _ in a.changes} & {k for k, _ in b.changes}:
                continue
            if reproduces(dict(defaults, **dict(a.changes + b.changes)), user):
                found.append(Variant(f"{a.key}+{b.key}", a.changes + b.changes, f"two mistakes: {a.cause}; and {b.cause}"))
    if not found:
        return [], (f"your rule differs from torch's here, and no known mistake reproduces your numbers (tried alone "
                    f"and two at a time: {', '.join(v.key for v in variants)}; and another learning rate): compare "
                    "your rule with torch's above, at this step and parameter")
    proof = ("torch's rule with {} gives your parameters at every step of both runs, within the tolerance")
    if len(found) == 1:
        return found, f"likely cause: {found[0].cause}\n{proof.format('exactly that change')}"
    alternatives = "\n".join(f"or: {v.cause}" for v in found[1:])
    return found, (f"likely cause: {found[0].cause}\n{alternatives}\n{proof.format('each of these changes')}; "
                   "these gradients cannot tell them apart")


def _fitted_lr(lr, start, grads, user, ref):
    """The learning rate that makes torch's first update the user's (least squares), if another."""
    du = np.concatenate([(user[0][k] - start[k]).ravel() for k in start])
    dt = np.concatenate([(ref[0][k] - start[k]).ravel() for k in start])
    if not (np.isfinite(du).all() and np.dot(dt, dt) > 0):
        return None
    ratio = float(np.dot(du, dt) / np.dot(dt, dt))
    return lr * ratio if ratio > 0 and abs(ratio - 1) > 1e-8 else None


@runs_single_threaded
def check_optimizer(step, optimizer="sgd", steps=10, *, form=None, seed=0, name=None, **torch_args):
    """Compare a hand-written update rule with torch.optim.<optimizer> for ``steps`` steps on random
    gradients and on a network's gradients; returns an UpdateResult.

    step is the rule in one of the forms of compare/updates/forms.py (worked out, or ``form=``);
    torch_args are torch's arguments (lr, momentum, dampening, weight_decay, nesterov, maximize for
    "sgd"; lr, betas, eps, weight_decay, amsgrad, maximize for "adam" and "adamw"; lr, alpha, eps,
    weight_decay, momentum, centered, maximize for "rmsprop"; lr, lr_decay, weight_decay,
    initial_accumulator_value, eps, maximize for "adagrad").
    """
    t0 = time.perf_counter()
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or not 1 <= steps <= 10000:
        raise CheckError(f"steps must be an integer from 1 to 10000, got {steps!r}")
    hp = hyperparameters(optimizer, torch_args)
    form = form or detect(step)
    if form not in FORMS:
        raise CheckError(f"unknown form {form!r}; choose one of: {', '.join(FORMS)}")
    stateful = optimizer != "sgd" or hp["momentum"] != 0
    if form == "stateless" and stateful:
        raise CheckError(f"{describe(step)}(params, grads) has nowhere to keep {optimizer}'s state that the check "
                         "could reset between runs; take it as a third argument, step(params, grads, state) -> "
                         "(params, state), or pass an object with .step(params, grads)")
    fresh = stepper_factory(step, form, hp, list(torch_args), describe(step))
    start, random_grads, X, Y = draw_problem(seed, steps)
    grads, ref = torch_runs(optimizer, hp, start, random_grads, X, Y)
    user = {run: run_user(fresh, start, grads[run]) for run in RUNS}
    dtype = "float32" if any(a.dtype == np.float32 for run in RUNS for s in user[run] for a in s.values()) else "float64"
    tol = tolerance_for(dtype)
    notes = [] if dtype == "float64" else [
        "your rule returned float32 arrays: compared with float32's tolerance against a float64 reference; "
        "float64 catches smaller mistakes"]
    if form in ("state", "stateless", "class"):
        from backprop_oracle.compare.updates.forms import keywords
        unused = [k for k in torch_args if k not in keywords(step, hp, list(torch_args))]
        if unused:
            notes.append(f"{', '.join(unused)} did not reach your rule: {describe(step)} declares no such keyword "
                         "argument (declare it, e.g. weight_decay=0.0, to be given the value checked)")
    checks = [compare_step(run, i + 1, mine, theirs, tol)
              for run in RUNS for i, (mine, theirs) in enumerate(zip(user[run], ref[run]))]
    first = next((c for c in checks if not c.passed), None)
    causes, cause = ([], "") if first is None else diagnose(optimizer, hp, start, grads, user, ref, tol)
    return UpdateResult(
        kind="optimizer", name=name or describe(step), reference=_reference_text(optimizer, hp),
        passed=first is None, steps=checks, tolerance=tol, dtype=dtype, form=_form_text(form, step, hp, torch_args),
        compared=(f"{steps} step(s) on random gradients, then {steps} on the gradients of a 3-4-2 tanh network's "
                  "mse loss (torch autograd at torch's parameters), the same gradients given to both"),
        rule=FORMULAS[optimizer], first=first, causes=[v.key for v in causes], cause=cause, notes=notes,
        seconds=time.perf_counter() - t0)


def _form_text(form, step, hp, given):
    from backprop_oracle.compare.updates.forms import keywords
    if form in ("state", "stateless"):
        kw = keywords(step, hp, list(given))
        args = "step(params, grads, state) -> (params, state)" if form == "state" else "step(params, grads) -> params"
        return args + (f", with {', '.join(kw)} as keyword arguments" if kw else ", with its own hyperparameters")
    return {"config": "update(w, dw, config) -> (next_w, config) per parameter, config holding the hyperparameters",
            "object": "a copy of your object per run, .step(params, grads) / .update(params, grads), its own "
                      "hyperparameters",
            "class": "Cls(parameters, **torch_args), then .step() reading p.grad"}[form]


def assert_optimizer_matches(step, optimizer="sgd", steps=10, **kwargs):
    """check_optimizer, raising AssertionError with the report if it fails; returns the result."""
    __tracebackhide__ = True
    result = check_optimizer(step, optimizer, steps, **kwargs)
    if not result.passed:
        raise AssertionError(result.summary() + "\n\n" + result.report())
    return result
