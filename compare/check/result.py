"""The outcome of a gradient check: every tensor's worst element over all trials, the first wrong
one with the reason in plain words, and a readable report.
"""
import math
from dataclasses import dataclass, field

import numpy as np

from backprop_oracle.compare.interactive.html import html_lines, result_html
from backprop_oracle.compare.tables import aligned


def ratio(diff):
    """How far a TensorDiff's worst element is from passing: |a - b| / (atol + rtol max|b|), > 1 fails."""
    if math.isnan(diff.manual) or math.isnan(diff.torch):
        return 0.0 if (math.isnan(diff.manual) and math.isnan(diff.torch)) else math.inf
    allowed = diff.allowed
    gap = abs(diff.manual - diff.torch)
    return gap / allowed if allowed > 0 else (0.0 if gap == 0 else math.inf)


@dataclass
class TensorCheck:
    """One tensor's comparison: ``diff`` (a compare.verdict.diff.TensorDiff, "manual" holding yours and
    "torch" the reference) is the worst element over all trials, found in ``trial`` (1-based)."""
    diff: object
    trial: int = 1
    skipped_near_kink: int = 0   # elements not compared because an input sat near a kink
    given_shape: tuple = None    # the shape returned where it cannot be the tensor's (a sum over the wrong axis)

    @property
    def passed(self):
        return self.diff.passed

    def worse_of(self, other):
        """The worse of two checks of the same tensor (a failure beats a pass, then the larger ratio)."""
        skipped = self.skipped_near_kink + other.skipped_near_kink
        key = lambda c: (not c.diff.passed, ratio(c.diff))
        worst = max(self, other, key=key)
        return TensorCheck(worst.diff, worst.trial, skipped)

    def to_dict(self):
        return dict(self.diff.to_dict(), trial=self.trial, skipped_near_kink=self.skipped_near_kink,
                    given_shape=None if self.given_shape is None else list(self.given_shape))

    def __repr__(self):
        d = self.diff
        return (f"<TensorCheck {d.name} {_index(d)} {'ok' if d.passed else 'WRONG'}: yours {d.manual:.10g}, "
                f"reference {d.torch:.10g} (trial {self.trial})>")


def merge(checks_by_trial):
    """[[TensorCheck per tensor] per trial] -> one list, each tensor's worst over the trials."""
    merged = {}
    for checks in checks_by_trial:
        for c in checks:
            merged[c.diff.name] = c if c.diff.name not in merged else merged[c.diff.name].worse_of(c)
    return list(merged.values())


@dataclass
class CheckResult:
    """The verdict of check_function, check_layer or check_network."""
    kind: str                 # "function", "layer" or "network"
    name: str                 # what was checked, e.g. "student.backprop"
    reference: str            # e.g. "torch autograd on torch_ref.mlp(2-3-1, ...)"
    passed: bool
    tensors: list             # TensorCheck, in the order a person would check them
    tolerance: object         # the compare.verdict.tolerances.Tolerance used (per tensor for finite differences)
    dtype: str                # precision of the values checked: "float64" or "float32"
    trials: int
    mismatch: object = None   # the first wrong tensor: a compare.verdict.localise.Mismatch with the reason
    hint: str = ""            # what the difference's pattern suggests (a factor, a sign, a transpose)
    notes: list = field(default_factory=list)   # kinks, redrawn inputs, float32, what to return next
    seconds: float = 0.0
    mismatch_trial: int | None = None   # the trial (1-based) the first wrong element comes from
    layout: str = ""          # the user's layout, where a network check worked it out, in words

    def report(self):
        return format_report(self)

    def summary(self):
        """The verdict in one line: what pytest shows in its short summary of a failed test."""
        if self.passed:
            return f"check_{self.kind} {self.name}: PASSED"
        if self.mismatch is None:
            return f"check_{self.kind} {self.name}: MISMATCH"
        reason = self.mismatch.reason.split("\n")[0]
        return f"check_{self.kind} {self.name}: {self.mismatch.diff.name} wrong: {reason}"

    def __str__(self):
        return self.report()

    def __repr__(self):
        return f"<CheckResult {self.summary()}>"

    def _repr_pretty_(self, p, cycle):
        """IPython's console shows the report."""
        p.text(self.report())

    def _repr_html_(self):
        """A notebook shows the verdict badge, the table with the wrong rows in red, the first wrong
        tensor with the reason, and the tolerance."""
        return format_html(self)

    def to_dict(self):
        out = {"kind": self.kind, "name": self.name, "reference": self.reference, "passed": self.passed,
               "dtype": self.dtype, "trials": self.trials, "rtol": self.tolerance.rtol,
               "atol": self.tolerance.atol, "tensors": [t.to_dict() for t in self.tensors],
               "mismatch": None if self.mismatch is None else self.mismatch.to_dict(),
               "mismatch_trial": self.mismatch_trial, "hint": self.hint, "notes": list(self.notes),
               "seconds": self.seconds, "layout": self.layout}
        return _json_safe(out)


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.floating, np.integer)):
        return _json_safe(value.item())
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def tolerance_text(tol):
    return f"atol {tol.atol:g} + rtol {tol.rtol:g}·max|reference| of each tensor"


def _index(diff):
    return "[" + ", ".join(map(str, diff.index)) + "]" if diff.index else "-"


def _shape(diff):
    return "(" + ", ".join(map(str, diff.shape)) + ("," if len(diff.shape) == 1 else "") + ")"


HEADER = ["tensor", "shape", "worst at", "yours", "reference", "|diff|", "rel err", ""]


def table_rows(result):
    """The report's table: a header and one row per tensor, its worst element over all trials;
    with several trials a column says which trial each row's element comes from (the first wrong
    tensor below may come from another: the walk stops at the first trial with a wrong one)."""
    trials = result.trials > 1
    rows = [HEADER[:3] + (["trial"] if trials else []) + HEADER[3:]]
    for t in result.tensors:
        d = t.diff
        status = "ok" if d.passed else "WRONG"
        if t.skipped_near_kink:
            status += f" ({t.skipped_near_kink} near a kink)"
        trial = [str(t.trial)] if trials else []
        if t.given_shape is not None:
            rows.append([d.name, _shape(d), "-"] + trial + [f"shape {t.given_shape}", "-", "-", "-", status])
            continue
        rows.append([d.name, _shape(d), _index(d)] + trial +
                    [f"{d.manual:.10g}", f"{d.torch:.10g}", f"{abs(d.manual - d.torch):.2e}", f"{d.max_rel:.2e}",
                     status])
    return rows


def _verdict_lines(result):
    return [f"reference: {result.reference}", *([f"layout: {result.layout}"] if result.layout else []),
            f"{result.trials} trial(s), {result.dtype}; an element passes when "
            f"|yours - reference| <= {tolerance_text(result.tolerance)}"]


def _mismatch_lines(result):
    """The first wrong tensor (its trial named) and the reason, or nothing when none is wrong."""
    if result.mismatch is None:
        return []
    m, d = result.mismatch, result.mismatch.diff
    trial = f" (trial {result.mismatch_trial})" if result.trials > 1 and result.mismatch_trial else ""
    given = next((t.given_shape for t in result.tensors if t.diff.name == d.name), None)
    lines = [f"first wrong{trial}: {d.name}: yours has shape {given}, the parameter {_shape(d)}" if given
             else f"first wrong{trial}: {d.name} {_index(d)}: yours {d.manual:.12g}, reference "
                  f"{d.torch:.12g} (|diff| {abs(d.manual - d.torch):.3g}, allowed {d.allowed:.3g})",
             f"  -> {m.reason}"]
    if result.hint:
        lines.append(f"  -> {result.hint}")
    return lines


def format_report(result):
    """The verdict, one row per tensor (its worst element over all trials), the first wrong
    tensor with the reason, and the notes."""
    verdict = "PASSED" if result.passed else "MISMATCH"
    lines = [f"check_{result.kind} {result.name}: {verdict}"] + ["  " + line for line in _verdict_lines(result)]
    lines += [""] + aligned(table_rows(result), indent="  ")
    mismatch = _mismatch_lines(result)
    if mismatch:
        lines += [""] + mismatch
    for note in result.notes:
        lines += ["", f"note: {note}"]
    return "\n".join(lines)


def format_html(result):
    """The report as HTML: the same rows and words, the verdict as a badge, wrong rows in red."""
    wrong = {i for i, t in enumerate(result.tensors) if not t.passed}
    return result_html(f"check_{result.kind} {result.name}", "PASSED" if result.passed else "MISMATCH", result.passed,
                       table=table_rows(result), marked=wrong, lines=_verdict_lines(result),
                       wrong_lines=_mismatch_lines(result), after=[html_lines([f"note: {n}"]) for n in result.notes])
