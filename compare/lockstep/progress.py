"""Where a run stands at the end of an epoch: what its loop carries into the next one, and so what a
checkpoint (compare.checkpoints) saves and a resumed run starts from."""
from dataclasses import dataclass, field

CURVES = ("step_m", "step_t", "epoch_m", "epoch_t")   # each step's and epoch's cost, manual and torch


@dataclass
class Progress:
    step: int = 0                  # steps taken
    epoch: int = 0                 # epochs completed
    first_cost: float | None = None   # the divergence rule's reference (compare.lockstep.divergence)
    last_finite: float | None = None
    maxima: dict = field(default_factory=lambda: dict(grad_abs=0.0, grad_rel=0.0, param_abs=0.0, cost_abs=0.0))
    curves: dict = field(default_factory=lambda: {k: [] for k in CURVES})
    drifts: list = field(default_factory=list)   # differences proven to be rounding, in order
    compared: bool = True          # every step so far was compared on both sides (not so after a torch-only run)
    resumed_from: object = None    # the checkpoint's file, where the run was resumed from one

    def snapshot(self):
        """A copy that the later steps of a run do not change."""
        return Progress(self.step, self.epoch, self.first_cost, self.last_finite, dict(self.maxima),
                        {k: list(v) for k, v in self.curves.items()}, list(self.drifts), self.compared,
                        self.resumed_from)

    def resumed(self):
        """What a result says of where the run was resumed ({} for a run from the start)."""
        if self.step == 0 and self.epoch == 0:
            return {}
        return {"resumed": {"from": None if self.resumed_from is None else str(self.resumed_from),
                            "step": self.step, "epoch": self.epoch, "compared_before": self.compared}}
