"""The outcome of one lockstep run, and its JSON form."""
from dataclasses import dataclass, field

from backprop_oracle.compare.files import json_safe


@dataclass
class LockstepResult:
    name: str                      # the preset (or data set) name
    spec: object                   # the ExperimentSpec that ran
    passed: bool                   # every gradient, parameter and cost agreed within tolerance
    steps: int
    epochs: int                    # epochs completed
    tolerance: object
    max_abs_grad_diff: float
    max_rel_grad_diff: float
    max_abs_param_diff: float
    max_abs_cost_diff: float
    final_cost_manual: float       # cost of the final parameters on the whole training set
    final_cost_torch: float
    train_accuracy_manual: float | None
    train_accuracy_torch: float | None
    val_cost_manual: float | None
    val_cost_torch: float | None
    val_accuracy_manual: float | None
    val_accuracy_torch: float | None
    step_cost_manual: list = field(repr=False, default_factory=list)   # each batch's cost before its update
    step_cost_torch: list = field(repr=False, default_factory=list)
    epoch_cost_manual: list = field(repr=False, default_factory=list)  # batch costs averaged per epoch
    epoch_cost_torch: list = field(repr=False, default_factory=list)
    mismatch: object = None        # the first compare.verdict.localise.Mismatch, or None
    drifts: list = field(default_factory=list)   # Mismatches proven to be rounding (stage "drift": the
                                                  # runs drifted; "amplified": a node magnified it), after
                                                  # each of which torch was set to manual's numbers
    divergence: object = None      # a compare.lockstep.divergence.Divergence where the run diverged
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)   # preset-specific figures (e.g. a baseline's accuracy)

    @property
    def verdict(self):
        """"agree", "agree*N" (N proven rounding resyncs), "agree (diverged at step S)" or "DIFFER"."""
        if not self.passed:
            return "DIFFER"
        text = "agree" if not self.drifts else f"agree*{len(self.drifts)}"
        return text if self.divergence is None else f"{text} (diverged at step {self.divergence.step})"

    def report(self, goal=None):
        """The command line's table for this run (compare.lockstep.report.format_table) with the
        tolerance and, where the sides differ, diverged or were resynchronised, what happened.
        ``goal``: (met, text) for a preset's stated accuracy or cost."""
        from backprop_oracle.compare.lockstep.report import format_table
        return format_table([self], None if goal is None else {self.name: goal})

    def __str__(self):
        return self.report()

    def __repr__(self):
        cost = f"cost {self.final_cost_manual:.4g} / {self.final_cost_torch:.4g}"
        return f"<LockstepResult {self.name}: {self.verdict}, {self.steps} steps, {cost} (manual / torch), {self.seconds:.1f} s>"

    def _repr_pretty_(self, p, cycle):
        """IPython's console shows the report."""
        p.text(self.report())

    def _repr_html_(self):
        """A notebook shows the verdict as a badge, the table's row, what happened, and the cost curves."""
        from backprop_oracle.compare.lockstep.report import format_html
        return format_html(self)

    def plot(self):
        """Both sides' cost against the epoch on one log-scale plot, the torch curve dashed over the
        manual one (with several batches an epoch, each batch's cost as a faint band behind the epoch
        means), as a matplotlib Figure: a notebook shows it inline, ``fig.savefig(path)`` writes it.
        The dashboards' cost picture is the same figure."""
        from backprop_oracle.compare.interactive.pictures import cost_figure
        per_epoch = max(1, round(len(self.step_cost_manual) / max(1, len(self.epoch_cost_manual))))
        return cost_figure({"manual": self.step_cost_manual, "torch": self.step_cost_torch},
                           {"manual": self.epoch_cost_manual, "torch": self.epoch_cost_torch}, per_epoch,
                           f"{self.name}: cost ({self.verdict})")

    @property
    def accuracy_manual(self):
        """Validation accuracy where there is a validation set, else training accuracy."""
        return self.val_accuracy_manual if self.val_accuracy_manual is not None else self.train_accuracy_manual

    @property
    def accuracy_torch(self):
        return self.val_accuracy_torch if self.val_accuracy_torch is not None else self.train_accuracy_torch

    def to_dict(self, curves=True):
        out = {
            "preset": self.name, "passed": self.passed, "steps": self.steps, "epochs": self.epochs,
            "dtype": self.spec.dtype, "rtol": self.tolerance.rtol, "atol": self.tolerance.atol,
            "max_abs_grad_diff": self.max_abs_grad_diff, "max_rel_grad_diff": self.max_rel_grad_diff,
            "max_abs_param_diff": self.max_abs_param_diff, "max_abs_cost_diff": self.max_abs_cost_diff,
            "final_cost_manual": self.final_cost_manual, "final_cost_torch": self.final_cost_torch,
            "train_accuracy_manual": self.train_accuracy_manual, "train_accuracy_torch": self.train_accuracy_torch,
            "val_cost_manual": self.val_cost_manual, "val_cost_torch": self.val_cost_torch,
            "val_accuracy_manual": self.val_accuracy_manual, "val_accuracy_torch": self.val_accuracy_torch,
            "seconds": self.seconds,
            "mismatch": None if self.mismatch is None else self.mismatch.to_dict(),
            "verdict": self.verdict,
            "resyncs_after_drift": len(self.drifts),
            "first_drift": self.drifts[0].to_dict() if self.drifts else None,
            "divergence": None if self.divergence is None else self.divergence.to_dict(),
            "spec": self.spec.to_dict(),
            "extra": self.extra,
        }
        if curves:
            out.update(step_cost_manual=self.step_cost_manual, step_cost_torch=self.step_cost_torch,
                       epoch_cost_manual=self.epoch_cost_manual, epoch_cost_torch=self.epoch_cost_torch)
        return json_safe(out)

