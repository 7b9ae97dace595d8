"""The outcome of an update-rule or schedule check: every step's worst parameter element (or every
epoch's learning rate), the first wrong step with both values, the cause where a variant of torch's
rule reproduced the user's numbers, and a readable report."""
from dataclasses import dataclass, field

from backprop_oracle.compare.files import json_safe
from backprop_oracle.compare.interactive.html import html_lines, result_html
from backprop_oracle.compare.tables import aligned


@dataclass
class StepCheck:
    """One step (or epoch) compared: ``diff`` is a compare.verdict.diff.TensorDiff ("manual" holds
    yours, "torch" the reference) of the worst element, or of the first wrong parameter."""
    run: str          # "random" or "network" gradients; "schedule" for a learning-rate schedule
    step: int         # 1-based optimizer step, or the 0-based epoch of a schedule
    diff: object

    @property
    def passed(self):
        return self.diff.passed

    def to_dict(self):
        return dict(self.diff.to_dict(), run=self.run, step=self.step)


@dataclass
class UpdateResult:
    """The verdict of check_optimizer or check_schedule."""
    kind: str                 # "optimizer" or "schedule"
    name: str                 # what was checked, e.g. "student.adam_step"
    reference: str            # e.g. "torch.optim.Adam(lr=0.01, ...)"
    passed: bool
    steps: list               # StepCheck, in the order they were taken
    tolerance: object         # compare.verdict.tolerances.Tolerance
    dtype: str
    form: str = ""            # how the user's code was called, in words
    compared: str = ""        # what was compared, in words
    rule: str = ""            # torch's rule, as a formula
    first: StepCheck = None   # the first wrong step, its diff the first wrong parameter
    causes: list = field(default_factory=list)   # keys of the variants that reproduce the user's numbers
    cause: str = ""           # the cause in words, or why none is named
    notes: list = field(default_factory=list)
    seconds: float = 0.0

    def report(self):
        return format_report(self)

    def summary(self):
        """The verdict in one line: what pytest shows in its short summary of a failed test."""
        if self.passed:
            return f"check_{self.kind} {self.name}: PASSED"
        where = _where(self.first)
        cause = f": {self.cause.split(chr(10))[0]}" if self.causes else ": it differs from torch (no known cause reproduces it)"
        return f"check_{self.kind} {self.name}: first wrong at {where}{cause}"

    def __str__(self):
        return self.report()

    def __repr__(self):
        verdict = "PASSED" if self.passed else f"MISMATCH at {_where(self.first)}"
        return f"<UpdateResult check_{self.kind} {self.name}: {verdict}>"

    def _repr_pretty_(self, p, cycle):
        """IPython's console shows the report."""
        p.text(self.report())

    def _repr_html_(self):
        """A notebook shows the verdict badge, every step with the wrong ones in red, and the cause."""
        return format_html(self)

    def to_dict(self):
        out = {"kind": self.kind, "name": self.name, "reference": self.reference, "passed": self.passed,
               "dtype": self.dtype, "rtol": self.tolerance.rtol, "atol": self.tolerance.atol, "form": self.form,
               "compared": self.compared, "steps": [s.to_dict() for s in self.steps],
               "first": None if self.first is None else self.first.to_dict(), "causes": list(self.causes),
               "cause": self.cause, "notes": list(self.notes), "seconds": self.seconds}
        return json_safe(out)



def _where(s):
    if s is None:
        return "-"
    if s.run == "schedule":
        return f"epoch {s.step}"
    return f"step {s.step} ({s.run} gradients), {s.diff.name} {_index(s.diff)}"


def _index(diff):
    return "[" + ", ".join(map(str, diff.index)) + "]" if diff.index else "-"


def _status(s):
    return "ok" if s.passed else "WRONG"


def _head_lines(result):
    tol = result.tolerance
    lines = [f"reference: {result.reference}"]
    if result.rule:
        lines.append(f"torch's rule: {result.rule}")
    if result.form:
        lines.append(f"yours called as: {result.form}")
    return lines + [f"compared: {result.compared}; {result.dtype}; a value passes when |yours - torch| <= "
                    f"atol {tol.atol:g} + rtol {tol.rtol:g}·max|torch| of its tensor"]


def table_rows(result):
    """A header and one row per step (or epoch): its worst element, or its first wrong parameter."""
    if result.kind == "schedule":
        rows = [["epoch", "yours", "torch", "|diff|", "tolerance", ""]]
        return rows + [[str(s.step), f"{s.diff.manual:.10g}", f"{s.diff.torch:.10g}",
                        f"{abs(s.diff.manual - s.diff.torch):.2e}", f"{s.diff.allowed:.2e}", _status(s)]
                       for s in result.steps]
    rows = [["gradients", "step", "parameter", "element", "yours", "torch", "|diff|", "tolerance", ""]]
    return rows + [[s.run, str(s.step), s.diff.name, _index(s.diff), f"{s.diff.manual:.10g}", f"{s.diff.torch:.10g}",
                    f"{abs(s.diff.manual - s.diff.torch):.2e}", f"{s.diff.allowed:.2e}", _status(s)]
                   for s in result.steps]


def _first_lines(result):
    if result.first is None:
        return []
    d = result.first.diff
    return ([f"first wrong: {_where(result.first)}: yours {d.manual:.12g}, torch {d.torch:.12g} "
             f"(|diff| {abs(d.manual - d.torch):.3g}, allowed {d.allowed:.3g})"]
            + [f"  -> {line}" for line in result.cause.split("\n") if line])


def format_report(result):
    verdict = "PASSED" if result.passed else "MISMATCH"
    lines = [f"check_{result.kind} {result.name}: {verdict}"] + [f"  {line}" for line in _head_lines(result)] + [""]
    lines += aligned(table_rows(result), indent="  ")
    first = _first_lines(result)
    if first:
        lines += [""] + first
    for note in result.notes:
        lines += ["", f"note: {note}"]
    return "\n".join(lines)


def format_html(result):
    """The report as HTML: the verdict as a badge, the wrong steps in red, the first wrong one and its cause."""
    wrong = {i for i, s in enumerate(result.steps) if not s.passed}
    return result_html(f"check_{result.kind} {result.name}", "PASSED" if result.passed else "MISMATCH", result.passed,
                       table=table_rows(result), marked=wrong, lines=_head_lines(result),
                       wrong_lines=_first_lines(result), after=[html_lines([f"note: {n}"]) for n in result.notes])
