"""Divergence is a result: the rule that says a run diverged, what is reported, and the advice.

A side diverges at the first step where its batch cost is not finite or exceeds EXPLOSION times
max(1, |its first cost|), or where a gradient or a parameter is not finite. The run stops there:
nothing after that step can be compared (inf - inf is NaN). Both sides diverging at the same step,
after agreeing at every step before it, is agreement (the verdict ``agree (diverged at step N)``);
one side alone diverging is a difference like any other, localised and proven at its node.

The advice comes from trying: the manual side alone is run again from the same initial weights
with learning rates 10, 100, ... 10^6 times smaller, for twice the steps it took to diverge (at
least 20, at most 500), and the largest that stays finite is suggested.
"""
import math
from dataclasses import dataclass, replace

import numpy as np

from backprop_oracle.compare.experiments.setup import epoch_batches

EXPLOSION = 1e6
_TRIES = 6


def exploded(cost, first_cost):
    """True when a batch cost is not finite or has grown EXPLOSION-fold past max(1, |first cost|)."""
    if not math.isfinite(cost):
        return True
    scale = 1.0 if first_cost is None or not math.isfinite(first_cost) else max(1.0, abs(first_cost))
    return abs(cost) > EXPLOSION * scale


@dataclass(frozen=True)
class Divergence:
    """Where and how a run diverged."""
    step: int
    epoch: int
    sides: tuple               # ("manual", "torch"), or the one side that diverged (a torch-only run)
    where: str                 # "cost", "gradients" or "parameters after the update"
    costs: dict                # side -> its batch cost at that step
    last_finite_cost: float | None   # the first side's last finite batch cost before that step
    advice: str = ""

    @property
    def both(self):
        return len(self.sides) == 2

    def describe(self):
        who = "both sides" if self.both else f"the {self.sides[0]} side"
        costs = "cost " + ", ".join(f"{side} {cost:.6g}" for side, cost in self.costs.items())
        if self.where == "cost" and all(math.isfinite(c) for c in self.costs.values()):
            what = f"the cost exploded ({costs}, over {EXPLOSION:g} x max(1, the first cost))"
        elif self.where == "cost":
            what = f"the cost is no longer finite ({costs})"
        else:
            what = f"the {self.where} are no longer finite ({costs})"
        before = "" if self.last_finite_cost is None else f"; the step before, the cost was {self.last_finite_cost:.6g}"
        text = f"{who} diverged at step {self.step} (epoch {self.epoch}): {what}{before}"
        return text + (f". {self.advice}" if self.advice else "")

    def to_dict(self):
        return {"step": self.step, "epoch": self.epoch, "sides": list(self.sides), "where": self.where,
                "costs": self.costs, "last_finite_cost": self.last_finite_cost, "advice": self.advice}


def advice(run, step):
    """A learning rate that does not diverge, found by trying (see the module docstring), as a sentence."""
    from backprop_oracle.compare.sides.sides import ManualSide
    spec, problem = run.spec, run.problem
    steps = min(500, max(20, 2 * step))
    with np.errstate(all="ignore"):
        for k in range(1, _TRIES + 1):
            lr = spec.lr / 10 ** k
            side = ManualSide(replace(spec, lr=lr), problem.sizes, run.initial_state)
            side.load(problem)
            if _stays_finite(side, spec, problem.X.shape[0], steps):
                return (f"The learning rate {spec.lr:g} is too large for this network: {lr:g} trains "
                        f"{steps} steps without diverging (try --lr {lr:g})")
    return (f"Even a learning rate of {spec.lr / 10 ** _TRIES:g} diverges within {steps} steps: check the "
            "scale of the data (standardise the inputs) and the initialisation")


def _stays_finite(side, spec, n, steps):
    rng = np.random.default_rng(spec.seed)
    first, done = None, 0
    while done < steps:
        for idx in epoch_batches(rng, n, spec.batch_size, spec.shuffle):
            cost = side.forward_backward(idx)
            first = cost if first is None else first
            if exploded(cost, first) or not np.isfinite(side.flat_grads()).all():
                return False
            side.step()
            done += 1
            if done >= steps:
                break
        side.end_epoch()
    return bool(np.isfinite(side.flat_params()).all())
