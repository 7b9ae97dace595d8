"""Check a hand-written learning-rate schedule against torch.optim.lr_scheduler, epoch by epoch.

Epoch 0 is the first epoch: its learning rate is the one before any scheduler.step(), torch's
convention (a StepLR(step_size=2) keeps lr for epochs 0 and 1 and multiplies it by gamma at 2).
The user's schedule is one of:

    f(epoch) -> lr             called for epoch = 0, 1, ...; the schedule's arguments (lr, step_size,
                               gamma, milestones, T_max, eta_min) passed as the keywords it declares
    f(epoch, lr) -> lr         Keras's form: lr is the previous epoch's rate (lr at epoch 0)
    a class                    Cls(optimizer, **arguments), torch's and manual/'s way; .step() once per
                               epoch; the rate read from get_last_lr() or optimizer.lr
    an object                  a copy of it, .step() once per epoch; the rate from get_last_lr(), .lr or get_lr()

A cause is named only when a variant of torch's schedule (one epoch early or late, gamma at every
epoch, a step size off by one, ...) gives the user's rate at every epoch within the tolerance.
"""
import copy
import inspect
import math
import time

import numpy as np

from backprop_oracle.compare.errors import CheckError
from backprop_oracle.compare.updates.forms import call_user, describe
from backprop_oracle.compare.updates.result import StepCheck, UpdateResult
from backprop_oracle.compare.verdict.diff import TensorDiff, relative_error
from backprop_oracle.compare.verdict.tolerances import tolerance_for
from backprop_oracle.compare.interactive.threads import runs_single_threaded

# torch's arguments of each schedule: the default, or None where torch requires one.
ARGUMENTS = {
    "constant": {},
    "step": {"step_size": None, "gamma": 0.1},
    "exponential": {"gamma": None},
    "multistep": {"milestones": None, "gamma": 0.1},
    "cosine": {"T_max": None, "eta_min": 0.0},
    "linear": {"start_factor": 1.0 / 3, "end_factor": 1.0, "total_iters": 5},
}
TORCH_NAMES = {"constant": "LambdaLR(lambda epoch: 1.0)", "step": "StepLR", "exponential": "ExponentialLR",
               "multistep": "MultiStepLR", "cosine": "CosineAnnealingLR", "linear": "LinearLR"}
FORMULAS = {
    "constant": "lr_e = lr",
    "step": "lr_e = lr · gamma^floor(e / step_size)",
    "exponential": "lr_e = lr · gamma^e",
    "multistep": "lr_e = lr · gamma^(number of milestones <= e)",
    "cosine": "lr_e = eta_min + (lr − eta_min) · (1 + cos(π e / T_max)) / 2",
    "linear": "lr_e = lr · (start_factor + (end_factor − start_factor) · min(e, total_iters) / total_iters)",
}
LR_NAMES = ("lr", "initial_lr", "base_lr", "lr0", "learning_rate")


def closed_form(kind, a, e):
    """torch's schedule ``kind`` at epoch ``e`` in closed form (a: its arguments with lr)."""
    lr = a["lr"]
    if kind == "constant":
        return lr
    if kind == "step":
        return lr * a["gamma"] ** (e // a["step_size"])
    if kind == "exponential":
        return lr * a["gamma"] ** e
    if kind == "multistep":
        return lr * a["gamma"] ** sum(1 for m in a["milestones"] if m <= e)
    if kind == "linear":
        s, f, n = a["start_factor"], a["end_factor"], a["total_iters"]
        return lr * (s + (f - s) * min(e, n) / n)
    return a["eta_min"] + (lr - a["eta_min"]) * (1 + math.cos(math.pi * e / a["T_max"])) / 2


def variants(kind, a):
    """[(key, cause, lr(e))]: torch's schedule with one thing changed."""
    base = lambda e: closed_form(kind, a, e)
    out = [("one_epoch_early", "your rate changes one epoch early: epochs counted from 1, or the decay applied "
            "before the epoch's step (yours at epoch e is torch's at e + 1)", lambda e: base(e + 1)),
           ("one_epoch_late", "your rate changes one epoch late (yours at epoch e is torch's at e − 1): a step "
            "counted after the epoch that should use it", lambda e: base(max(e - 1, 0)))]
    if kind == "step":
        s, g, lr = a["step_size"], a["gamma"], a["lr"]
        out += [("gamma_every_epoch", "gamma applied at every epoch (an ExponentialLR): torch's StepLR multiplies "
                 f"by gamma once every step_size = {s} epochs", lambda e: lr * g ** e),
                ("no_floor", "gamma^(e / step_size) without rounding down: torch decays in steps, "
                 "gamma^floor(e / step_size)", lambda e: lr * g ** (e / s)),
                ("gamma_at_epoch_0", "gamma applied at epoch 0 already (every e with e % step_size == 0, from 0)",
                 lambda e: lr * g ** (e // s + 1)),
                ("step_size_plus_one", f"a step size of {s + 1} (one more than step_size = {s})",
                 lambda e: lr * g ** (e // (s + 1)))]
        if s > 1:
            out.append(("step_size_minus_one", f"a step size of {s - 1} (one less than step_size = {s})",
                        lambda e: lr * g ** (e // (s - 1))))
    if kind == "exponential":
        g, lr = a["gamma"], a["lr"]
        out += [("one_minus_gamma", "(1 − gamma) as the factor: torch multiplies by gamma every epoch",
                 lambda e: lr * (1 - g) ** e),
                ("time_based", "time-based decay lr / (1 + gamma·e) (Keras's decay): torch's ExponentialLR is "
                 "lr · gamma^e", lambda e: lr / (1 + g * e))]
    if kind == "multistep":
        g, lr, ms = a["gamma"], a["lr"], a["milestones"]
        out.append(("milestone_strict", "the decay after a milestone epoch rather than at it (m < e where torch "
                    "has m <= e)", lambda e: lr * g ** sum(1 for m in ms if m < e)))
    if kind == "linear":
        n = a["total_iters"]
        out.append(("total_iters_plus_one", f"a warm-up of {n + 1} epochs where torch's total_iters is {n}",
                    lambda e: closed_form(kind, dict(a, total_iters=n + 1), e)))
        if n > 1:
            out.append(("total_iters_minus_one", f"a warm-up of {n - 1} epochs where torch's total_iters is {n}",
                        lambda e: closed_form(kind, dict(a, total_iters=n - 1), e)))
    if kind == "cosine":
        for d in (1, -1):
            t = a["T_max"] + d
            if t > 0:
                out.append((f"T_max_{'plus' if d > 0 else 'minus'}_one", f"T_max = {t} where torch's is {a['T_max']}",
                            lambda e, t=t: closed_form(kind, dict(a, T_max=t), e)))
        if a["eta_min"] != 0:
            out.append(("eta_min_ignored", "eta_min ignored (the rate falls to 0)",
                        lambda e: closed_form(kind, dict(a, eta_min=0.0), e)))
    return out


def schedule_arguments(kind, lr, given):
    """The schedule's arguments with torch's defaults, or a CheckError naming what is wrong."""
    if kind not in ARGUMENTS:
        raise CheckError(f"unknown schedule {kind!r}; choose one of: {', '.join(ARGUMENTS)}")
    unknown = sorted(set(given) - set(ARGUMENTS[kind]))
    if unknown:
        raise CheckError(f"schedule {kind!r} takes {', '.join(ARGUMENTS[kind]) or 'no arguments'} (and lr); "
                         f"got {', '.join(unknown)}")
    a = dict(ARGUMENTS[kind], **given)
    missing = [k for k, v in a.items() if v is None]
    if missing:
        raise CheckError(f"schedule {kind!r} needs {', '.join(missing)} (as torch's {TORCH_NAMES[kind]} does)")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr > 0 or not math.isfinite(lr):
        raise CheckError(f"lr must be a positive number, got {lr!r}")
    a["lr"] = float(lr)
    for k in ("step_size", "T_max", "total_iters"):
        if k in a and (not isinstance(a[k], (int, np.integer)) or isinstance(a[k], bool) or a[k] < 1):
            raise CheckError(f"schedule {kind!r}: {k} must be a positive integer, got {a[k]!r}")
    if "milestones" in a:
        ms = a["milestones"]
        if not isinstance(ms, (list, tuple)) or not all(isinstance(m, (int, np.integer)) and m >= 1 for m in ms) \
                or list(ms) != sorted(set(ms)):
            raise CheckError(f"schedule 'multistep': milestones must be increasing positive integers, got {ms!r}")
        a["milestones"] = [int(m) for m in ms]
    for k in ("gamma", "eta_min", "start_factor", "end_factor"):
        if k in a and (isinstance(a[k], bool) or not isinstance(a[k], (int, float)) or not math.isfinite(a[k])):
            raise CheckError(f"schedule {kind!r}: {k} must be a number, got {a[k]!r}")
    return a


def torch_schedule(kind, a, epochs):
    """torch's learning rate at epochs 0 .. epochs - 1."""
    import torch
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([p], lr=a["lr"])
    args = {k: v for k, v in a.items() if k != "lr"}
    make = {"constant": lambda: torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0),
            "step": lambda: torch.optim.lr_scheduler.StepLR(opt, **args),
            "exponential": lambda: torch.optim.lr_scheduler.ExponentialLR(opt, **args),
            "multistep": lambda: torch.optim.lr_scheduler.MultiStepLR(opt, **args),
            "cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(opt, **args),
            "linear": lambda: torch.optim.lr_scheduler.LinearLR(opt, **args)}
    try:
        sched = make[kind]()
    except ValueError as e:
        raise CheckError(f"torch.optim.lr_scheduler.{TORCH_NAMES[kind]} refuses these arguments: {e}") from None
    out = []
    for _ in range(epochs):
        out.append(float(opt.param_groups[0]["lr"]))
        opt.step()            # torch warns when the schedule steps before any optimizer step
        sched.step()
    return out


class _Optimizer:
    """What a schedule class is built on: manual/'s optimizer.lr and torch's param_groups, one rate."""

    def __init__(self, lr):
        self.param_groups = [{"lr": lr, "initial_lr": lr}]

    @property
    def lr(self):
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value):
        self.param_groups[0]["lr"] = value

    @property
    def initial_lr(self):
        return self.param_groups[0]["initial_lr"]


def _read_lr(obj, optimizer, what):
    for name in ("get_last_lr", "lr", "get_lr"):
        value = getattr(obj, name, None)
        if value is None:
            continue
        value = call_user(value, what=f"{what}.{name}()") if callable(value) else value
        break
    else:
        if optimizer is None:
            raise CheckError(f"cannot read the learning rate of {what}: give it get_last_lr(), an attribute lr, "
                             "or get_lr()")
        value = optimizer.lr
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise CheckError(f"{what}'s learning rate is {value!r}; expected a number") from None


def user_schedule(schedule, a, epochs):
    """The user's learning rate at epochs 0 .. epochs - 1, and how it was called, in words."""
    what = describe(schedule)
    if isinstance(schedule, type) or not callable(schedule):
        if isinstance(schedule, type):
            optimizer = _Optimizer(a["lr"])
            args = {k: v for k, v in a.items() if k != "lr"}
            obj = call_user(schedule, optimizer, what=f"{what}(optimizer, ...)", **args)
            form = f"{what}(optimizer, {', '.join(f'{k}={v!r}' for k, v in args.items())}), .step() once per epoch"
        else:
            if not callable(getattr(schedule, "step", None)):
                raise CheckError(f"{what} is neither a function epoch -> lr nor an object with .step()")
            obj, optimizer, form = copy.deepcopy(schedule), None, "a copy of your object, .step() once per epoch"
        out = []
        for e in range(epochs):
            if e:
                call_user(obj.step, what=f"{what}.step")
            out.append(_read_lr(obj, optimizer, what))
        return out, form
    try:
        sig = inspect.signature(schedule)
    except (TypeError, ValueError):
        raise CheckError(f"cannot read the signature of {what}") from None
    ps = sig.parameters
    required = [p for p in ps.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    if len(required) not in (1, 2):
        raise CheckError(f"{what} takes {len(required)} required argument(s); a schedule is f(epoch) -> lr or "
                         "f(epoch, lr) -> lr, a class Cls(optimizer, ...) or an object with .step()")
    taken = {p.name for p in required}
    kw = {k: v for k, v in a.items() if k != "lr" and k in ps and k not in taken}
    kw.update({n: a["lr"] for n in LR_NAMES if n in ps and n not in taken})
    out, lr = [], a["lr"]
    for e in range(epochs):
        args = (e,) if len(required) == 1 else (e, lr)
        value = call_user(schedule, *args, what=f"{what}({', '.join(map(str, args))})", **kw)
        try:
            lr = float(value)
        except (TypeError, ValueError):
            raise CheckError(f"{what}({e}) returned {value!r}; a schedule returns the learning rate, a number") from None
        out.append(lr)
    form = f"{what}(epoch{', lr' if len(required) == 2 else ''})" + (f" with {', '.join(kw)}" if kw else "")
    return out, form


def _diff(mine, ref, allowed, tol):
    gap = abs(mine - ref) if not (math.isnan(mine) and math.isnan(ref)) else 0.0
    gap = math.inf if math.isnan(gap) else gap
    return TensorDiff("lr", (), bool(gap <= allowed), gap, float(relative_error(np.float64(mine), np.float64(ref))),
                      (), mine, ref, tol, allowed)


def _agrees(mine, ref, tol):
    allowed = tol.allowed(max(abs(x) for x in ref))
    return all(_diff(m, r, allowed, tol).passed for m, r in zip(mine, ref))


@runs_single_threaded
def check_schedule(schedule, kind="step", epochs=10, *, lr=0.1, name=None, **torch_args):
    """Compare a hand-written learning-rate schedule with torch.optim.lr_scheduler's ``kind``
    ("constant", "step", "exponential", "multistep", "cosine", "linear") for ``epochs`` epochs starting from
    ``lr``; returns an UpdateResult."""
    t0 = time.perf_counter()
    if not isinstance(epochs, (int, np.integer)) or isinstance(epochs, bool) or not 1 <= epochs <= 100000:
        raise CheckError(f"epochs must be an integer from 1 to 100000, got {epochs!r}")
    a = schedule_arguments(kind, lr, torch_args)
    ref = torch_schedule(kind, a, epochs)
    mine, form = user_schedule(schedule, a, epochs)
    tol = tolerance_for("float64")
    allowed = tol.allowed(max(abs(x) for x in ref))
    steps = [StepCheck("schedule", e, _diff(m, r, allowed, tol)) for e, (m, r) in enumerate(zip(mine, ref))]
    first = next((s for s in steps if not s.passed), None)
    causes, cause = [], ""
    if first is not None:
        epochs_ = range(epochs)
        if not _agrees([closed_form(kind, a, e) for e in epochs_], ref, tol):   # never name a cause then
            cause = "your schedule differs from torch's (no cause is named: the closed form does not reproduce torch here)"
        else:
            found = [(k, c) for k, c, f in variants(kind, a) if not _agrees([f(e) for e in epochs_], ref, tol)
                     and _agrees([f(e) for e in epochs_], mine, tol)]
            ratio = mine[0] / ref[0] if ref[0] else math.nan
            if not found and math.isfinite(ratio) and ratio != 1 and _agrees([ratio * r for r in ref], mine, tol):
                found = [("initial_lr", f"an initial rate of {mine[0]:.6g} where the check's is lr={a['lr']:g}: the "
                          "schedule is torch's, scaled")]
            causes = [k for k, _ in found]
            if found:
                change = "that change" if len(found) == 1 else "each of these changes"
                cause = "likely cause: " + "\nor: ".join(c for _, c in found) + \
                        f"\ntorch's schedule with {change} gives your rate at every epoch, within the tolerance"
            else:
                cause = ("your schedule differs from torch's, and no known mistake reproduces it (tried: "
                         + ", ".join(k for k, _, _ in variants(kind, a)) + ", another initial rate)")
    args = ", ".join(f"{k}={v!r}" for k, v in a.items() if k != "lr")
    reference = (f"torch.optim.lr_scheduler.{TORCH_NAMES[kind]}" + ("" if kind == "constant" else f"({args})")
                 + f" on an optimizer with lr={a['lr']:g}")
    return UpdateResult(kind="schedule", name=name or describe(schedule), reference=reference, passed=first is None,
                        steps=steps, tolerance=tol, dtype="float64", form=form,
                        compared=f"the learning rate of epochs 0 to {epochs - 1} (epoch 0: before any step)",
                        rule=FORMULAS[kind], first=first, causes=causes, cause=cause,
                        seconds=time.perf_counter() - t0)


def assert_schedule_matches(schedule, kind="step", epochs=10, **kwargs):
    """check_schedule, raising AssertionError with the report if it fails; returns the result."""
    __tracebackhide__ = True
    result = check_schedule(schedule, kind, epochs, **kwargs)
    if not result.passed:
        raise AssertionError(result.summary() + "\n\n" + result.report())
    return result
