"""The lockstep run: both implementations, the same data, the same initial weights, the same
batch order, compared at every step.

At each step both sides run forward and backward on the same batch; every parameter gradient
(and the cost) is compared; both sides take their optimizer step; every parameter is compared.
The first disagreement is localised (compare.verdict.localise) and the run stops there.

The torch side runs a block of steps ahead of the manual side, which then runs them one by one,
each compared with what the torch side's step gave (compare.lockstep.blocks): the same comparisons
on the same numbers, each manual step run once, the torch side set to the step itself wherever
one needs it, so the run's outcome is the one the sides give stepped in turn
(``block_steps=1``), without each step starting with the caches filled by the other side.

Observers (TensorBoard logging, progress bars) get ``on_start(run)``, ``on_step(run, record)``,
``on_epoch(run, record)``, ``on_epoch_done(run, progress)`` (once the schedules have stepped: where
a checkpoint is taken, compare.checkpoints), ``on_end(run, result)`` and, always, even on
an error or Ctrl-C, ``on_close(run)``. Each method is optional. The flat gradient vectors of a StepRecord are the
sides' own buffers (compare.sides.sides), or what the torch side's step kept: read them during
``on_step``, copy what you keep. An observer that reads the sides themselves (their models,
parameters) in these calls gets them as they are at that step; one that reads only its records
says so with ``reads_sides_at(step)`` returning False (True for the steps where it does read
them), and the torch side may then be ahead of the step it is told of: without it, the run goes
step by step for an observer with ``on_step`` and ends its blocks at every epoch's end for one
with ``on_epoch`` or ``on_epoch_done``. Accuracies and validation costs are measured at the end
of an epoch only for an observer that reads them: one with ``on_epoch`` whose ``logs`` is not
False (a progress bar's is False).
"""
import contextlib
import math
import time
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from backprop_oracle.compare.experiments.setup import (decision_threshold, default_eval_every, epoch_batches, evaluate,
                                       initial_state, prepare)
from backprop_oracle.compare.experiments.spec import SpecError
from backprop_oracle.compare.lockstep.blocks import BlockPlan
from backprop_oracle.compare.lockstep.divergence import Divergence, advice, exploded
from backprop_oracle.compare.interactive.progress import API_PROGRESS_DELAY, progress_for
from backprop_oracle.compare.lockstep.proof import prove_buffers, prove_node, prove_update
from backprop_oracle.compare.lockstep.progress import Progress
from backprop_oracle.compare.lockstep.result import LockstepResult
from backprop_oracle.compare.sides.ahead import MaskReplay, TorchAhead, here, kept_maxima
from backprop_oracle.compare.sides.sides import (ManualSide, TorchSide, dropout_masks, dropouts, layout_offsets,
                                                 same_masks_again, share_masks, unflatten)
from backprop_oracle.compare.interactive.threads import single_threaded
from backprop_oracle.compare.verdict.diff import compare_arrays, quick_diff
from backprop_oracle.compare.verdict.localise import Mismatch, localise
from backprop_oracle.compare.verdict.tolerances import tolerance_for


# Differences proven to be rounding, after which torch takes the manual side's numbers.
RESYNCED = ("drift", "amplified")


def notify(observers, event, *args):
    """Call ``event`` (e.g. "on_step") on every observer that has it."""
    for obs in observers:
        method = getattr(obs, event, None)
        if method is not None:
            method(*args)


@dataclass
class StepRecord:
    step: int                 # 1-based, counted over the whole run
    epoch: int                # 1-based
    batch_size: int
    cost_manual: float        # the cost of this batch before the update
    cost_torch: float
    lr_manual: float          # the learning rate this step used
    lr_torch: float
    flat_grads_manual: np.ndarray   # every parameter gradient, concatenated (float64; valid during on_step)
    flat_grads_torch: np.ndarray
    layout: list              # [(name, shape), ...] to split the flat vectors
    max_abs_grad_diff: float  # this step's
    max_rel_grad_diff: float
    max_abs_param_diff: float  # after this step's update (0 if the run stopped before it)
    abs_cost_diff: float

    def grads(self, side):
        """{name: gradient array} of "manual" or "torch"."""
        flat = self.flat_grads_manual if side == "manual" else self.flat_grads_torch
        return unflatten(flat, self.layout)


@dataclass
class EpochRecord:
    epoch: int
    step: int                 # steps so far
    cost_manual: float        # the epoch's batch costs averaged, weighted by batch size
    cost_torch: float
    train_accuracy_manual: float | None
    train_accuracy_torch: float | None
    val_cost_manual: float | None
    val_cost_torch: float | None
    val_accuracy_manual: float | None
    val_accuracy_torch: float | None
    lr_manual: float
    lr_torch: float
    evaluated: bool           # False on epochs between evaluations, or with no observer reading them (then None)


@dataclass
class _Loop:
    """What one step of the loop hands the next; the curves, maxima and resyncs are ``progress``'s."""
    progress: Progress
    step: int                       # steps taken
    epochs_done: int
    first_cost: float | None        # the divergence rule's reference (compare.lockstep.divergence)
    last_finite: float | None
    before: np.ndarray              # the manual side's parameters before the update, for its proof
    total_m: float = 0.0            # this epoch's batch costs times their batch sizes, so far
    total_t: float = 0.0
    mismatch: Mismatch | None = None
    divergence: Divergence | None = None
    stopped: bool = False


class LockstepRun:
    """One comparison run; observers may read ``spec``, ``problem``, ``manual`` and ``torch``.
    ``block_steps``: the most steps the torch side runs ahead (None: compare.lockstep.blocks's
    default; 1: the sides in turn, step by step); after ``run()``, ``plan`` says how many blocks
    there were."""

    def __init__(self, spec, *, name=None, dataset=None, observers=(), stop_on_mismatch=True,
                 manual_side=None, eval_every=None, resume=None, block_steps=None):
        self.spec = spec.validate()
        self.name = name or spec.dataset
        self.problem = prepare(spec, dataset)
        self.tolerance = tolerance_for(spec.dtype)
        self.observers = list(observers)
        self.stop_on_mismatch = stop_on_mismatch
        self.block_steps = block_steps
        # Numbers are made once: one Generator draws the initial weights, then the batch order.
        self.rng = np.random.default_rng(spec.seed)
        self.initial_state = initial_state(spec, self.problem.sizes, self.rng)
        self.manual = (manual_side or ManualSide)(spec, self.problem.sizes, self.initial_state)
        try:
            self.torch = TorchSide(spec, self.problem.sizes, self.initial_state)
        except ValueError as e:          # e.g. CUDA asked for on a machine without it
            raise SpecError(str(e)) from None
        self.sides = (self.manual, self.torch)
        share_masks(dropout_masks(spec), *self.sides)     # one mask for both sides' dropout layer, every step
        for side in self.sides:
            side.load(self.problem)
        if self.manual.layout != self.torch.layout:
            raise ValueError(f"the two models' parameters differ: {self.manual.layout} vs {self.torch.layout}")
        if self.manual.buffer_names != self.torch.buffer_names:
            raise ValueError(f"the two models' running statistics differ: {self.manual.buffer_names} vs "
                             f"{self.torch.buffer_names}")
        # where each parameter starts in the flat vectors that are compared at every step
        self.offsets = layout_offsets(self.manual.layout)
        self.threshold = decision_threshold(spec.loss)
        self.eval_every = eval_every or default_eval_every(spec.epochs)
        # A checkpoint to continue from (compare.checkpoints.Checkpoint): it gives both sides their
        # state and the batch order's Generator its own, and returns the loop's Progress.
        self.start_step = 0
        self.start = self.progress = Progress() if resume is None else resume.restore(self)

    def _notify(self, event, *args):
        notify(self.observers, event, self, *args)

    def batches(self):
        """The batch order of one epoch, drawn once and used by both sides."""
        return epoch_batches(self.rng, self.problem.X.shape[0], self.spec.batch_size, self.spec.shuffle)

    def _evaluate(self, side, split):
        return evaluate(side, self.problem, split, self.threshold)

    def run(self):
        spec, p = self.spec, self.problem
        progress = self.start.snapshot()          # a fresh run's, or a checkpoint's
        # The parameters before each update, for proving the update (see compare.lockstep.proof):
        # the flat buffers are live, so they are copied into this one before every step.
        loop = _Loop(progress, progress.step, progress.epoch, progress.first_cost, progress.last_finite,
                     self.manual.flat_params().copy())
        self._step_observers = [o for o in self.observers if hasattr(o, "on_step")]
        # An evaluation is a pass over the data on both sides: only for an observer that reads it.
        readers = [o for o in self.observers if hasattr(o, "on_epoch") and getattr(o, "logs", True)]
        self.plan = plan = BlockPlan(self, self.block_steps, readers)    # how the run went in blocks
        start = time.perf_counter()
        self._notify("on_start")
        # Divergence is reported once, as a result (compare.lockstep.divergence), not as a flood of
        # overflow warnings from every NumPy operation after it.
        with np.errstate(all="ignore"):
            try:
                with self._masks_replayed(plan) as masks:
                    todo, pending = self._planned(loop.epochs_done + 1), deque()
                    while not loop.stopped:
                        # After a difference (a run that does not stop at one) it goes step by step.
                        steps = plan.take(pending, todo, loop.step, alone=loop.mismatch is not None)
                        if not steps:
                            break
                        with plan.timed():
                            if len(steps) == 1:
                                self._take_step(loop, *steps[0], self.torch)
                            else:
                                self._take_block(loop, steps, pending, plan, masks)
                if loop.divergence is not None:
                    loop.divergence = replace(loop.divergence, advice=advice(self, loop.step))
                maxima, curves = progress.maxima, progress.curves
                result = LockstepResult(
                    name=self.name, spec=spec, passed=loop.mismatch is None, steps=loop.step,
                    epochs=loop.epochs_done, tolerance=self.tolerance, max_abs_grad_diff=maxima["grad_abs"],
                    max_rel_grad_diff=maxima["grad_rel"], max_abs_param_diff=maxima["param_abs"],
                    max_abs_cost_diff=maxima["cost_abs"],
                    step_cost_manual=curves["step_m"], step_cost_torch=curves["step_t"],
                    epoch_cost_manual=curves["epoch_m"], epoch_cost_torch=curves["epoch_t"],
                    mismatch=loop.mismatch, drifts=progress.drifts, divergence=loop.divergence,
                    seconds=time.perf_counter() - start, **self._final(),
                    extra=self.start.resumed())
                self._notify("on_end", result)
                return result
            finally:
                self._notify("on_close")

    def _planned(self, first_epoch):
        """(epoch, batch, whether it ends its epoch) of every step from ``first_epoch`` on; each
        epoch's batch order is drawn when its first step is reached."""
        for epoch in range(first_epoch, self.spec.epochs + 1):
            batches = self.batches()
            for j, idx in enumerate(batches):
                yield epoch, idx, j == len(batches) - 1

    @contextlib.contextmanager
    def _masks_replayed(self, plan):
        """The torch side's dropout masks kept for the blocks (compare.sides.ahead.MaskReplay)."""
        if plan.most == 1 or not dropouts(self.torch.model):
            yield None
            return
        with MaskReplay(self.torch).installed() as masks:
            yield masks

    def _take_step(self, loop, epoch, idx, ends, t):
        """One step and what follows it, on the sides themselves."""
        self._step(loop, epoch, idx, t)
        self._after_step(loop, epoch, ends, t)

    def _after_step(self, loop, epoch, ends, t):
        """After a step: the run stops at a difference or a divergence, or goes on to the epoch's
        end where the step ends its epoch (``t``: the torch side, or a TorchAhead for it)."""
        if (loop.mismatch is not None and self.stop_on_mismatch) or loop.divergence is not None:
            loop.stopped = True
            self.progress = None         # stopped inside an epoch: nothing to resume from
        elif ends:
            self._epoch_done(loop, epoch, t)

    def _take_block(self, loop, steps, pending, plan, masks):
        """The torch side through ``steps`` first, then the manual side step by step, each step
        compared as ``_step`` compares it (compare.lockstep.blocks). The block ends early at a step
        that needed the torch side itself (set there): the steps after it go back to ``pending``."""
        ahead = TorchAhead(self.torch, steps, plan.kept, masks, plan.evaluations(steps), self.offsets)
        plan.starts.append(loop.step + 1)
        try:
            for r, (epoch, idx, ends) in enumerate(steps):
                ahead.begin(r)
                last = r == len(steps) - 1
                self._step(loop, epoch, idx, ahead)
                early = ahead.live or loop.mismatch is not None or loop.divergence is not None
                if early or last:
                    ahead.finish()
                self._after_step(loop, epoch, ends, self.torch if (early or last) else ahead)
                if loop.stopped:
                    return
                if (early or ahead.live) and not last:
                    pending.extendleft(reversed(steps[r + 1:]))
                    plan.ended_early()
                    return
        except BaseException:
            with contextlib.suppress(Exception):
                ahead.finish()           # the torch side where the loop stopped, as step by step
            raise

    def _step(self, loop, epoch, idx, t):
        """One step, compared: both sides' forward and backward on the batch ``idx``, the
        gradients and cost compared, both optimizer steps, the parameters (and running statistics)
        compared; a difference localised and proven, or resynchronised where it is rounding.
        ``t`` is the torch side, or a TorchAhead that answers for it (``here(t)``: the side itself)."""
        m, tol, progress = self.manual, self.tolerance, loop.progress
        curves, maxima, resyncs = progress.curves, progress.maxima, progress.drifts
        loop.step += 1
        step = loop.step
        lr_m, lr_t = m.lr, t.lr
        state_m = m.optimizer_state()
        stats = m.buffers() if m.buffer_names else None     # running statistics before the step
        cost_m, cost_t = m.forward_backward(idx), t.forward_backward(idx)
        grads_m, grads_t = m.flat_grads(), t.flat_grads()
        loop.first_cost = first_cost = cost_m if loop.first_cost is None else loop.first_cost
        ok, g_abs, g_rel = quick_diff(grads_m, grads_t, tol, self.offsets, kept_maxima(t, "grads"))
        c_abs = abs(cost_m - cost_t)
        cost_ok = c_abs <= tol.allowed(abs(cost_t))
        p_abs = 0.0
        bad = self._diverging_sides(cost_m, cost_t, grads_m, grads_t, first_cost, checked=ok and cost_ok)
        if not (ok and cost_ok):
            # Kept as this step computed them: localising recomputes into the buffers.
            grads_m, grads_t = grads_m.copy(), grads_t.copy()
        if abs(lr_m - lr_t) > tol.allowed(abs(lr_t)):
            loop.mismatch = self._schedule_mismatch(lr_m, lr_t, epoch)
        elif not (ok and cost_ok) and len(bad) < 2:
            t = here(t)
            loop.mismatch = self._localise(idx, step, cost_m)
            if loop.mismatch.stage in RESYNCED:
                resyncs.append(replace(loop.mismatch, step=step, epoch=epoch))
                t.sync_from(m, grads=True)
                loop.mismatch = None
        if loop.mismatch is None and bad:
            # Both sides, or one whose difference was just proven to be rounding.
            where = "cost" if any(exploded(c, first_cost) for c in (cost_m, cost_t)) else "gradients"
            loop.divergence = Divergence(step, epoch, ("manual", "torch"), where,
                                         {"manual": cost_m, "torch": cost_t}, loop.last_finite)
        if loop.mismatch is None and loop.divergence is None:
            before = loop.before
            np.copyto(before, m.flat_params())
            m.step()
            t.step()
            params_m = m.flat_params()
            params_t = t.flat_params()
            params_ok, p_abs, _ = quick_diff(params_m, params_t, tol, self.offsets, kept_maxima(t, "params"))
            if not params_ok:
                t = here(t)
                loop.mismatch = self._update_mismatch(before, state_m, grads_m, grads_t, params_m, lr_t)
                if loop.mismatch.stage in RESYNCED:
                    resyncs.append(replace(loop.mismatch, step=step, epoch=epoch))
                    t.sync_from(m)
                    loop.mismatch = None
            if loop.mismatch is None and stats is not None:
                loop.mismatch = self._buffers_mismatch(stats, unflatten(before, m.layout), idx, t)
                if loop.mismatch is not None and loop.mismatch.stage in RESYNCED:
                    resyncs.append(replace(loop.mismatch, step=step, epoch=epoch))
                    here(t).load_buffers(m.buffers())
                    loop.mismatch = None
            # Parameters that agreed are finite (quick_diff fails on NaN and inf).
            if loop.mismatch is None and not (params_ok or np.isfinite(params_m).all()):
                loop.divergence = Divergence(step, epoch, ("manual", "torch"), "parameters after the update",
                                             {"manual": cost_m, "torch": cost_t}, loop.last_finite)
        if math.isfinite(cost_m):
            loop.last_finite = cost_m
        maxima["grad_abs"] = max(maxima["grad_abs"], g_abs)
        maxima["grad_rel"] = max(maxima["grad_rel"], g_rel)
        maxima["param_abs"] = max(maxima["param_abs"], p_abs)
        maxima["cost_abs"] = max(maxima["cost_abs"], c_abs)
        curves["step_m"].append(cost_m)
        curves["step_t"].append(cost_t)
        loop.total_m += cost_m * len(idx)
        loop.total_t += cost_t * len(idx)
        if self._step_observers:
            notify(self._step_observers, "on_step", self, StepRecord(
                step, epoch, len(idx), cost_m, cost_t, lr_m, lr_t, grads_m, grads_t, m.layout,
                g_abs, g_rel, p_abs, c_abs))
        if loop.mismatch is not None:
            loop.mismatch = replace(loop.mismatch, step=step, epoch=epoch)

    def _epoch_done(self, loop, epoch, t):
        """The end of ``epoch``: its cost, the observers' EpochRecord, both schedules' steps, the
        Progress a checkpoint saves (``t``: the torch side, or a TorchAhead for it)."""
        p, progress = self.problem, loop.progress
        curves = progress.curves
        loop.epochs_done = epoch
        curves["epoch_m"].append(loop.total_m / p.X.shape[0])
        curves["epoch_t"].append(loop.total_t / p.X.shape[0])
        loop.total_m = loop.total_t = 0.0
        self._end_epoch(epoch, loop.step, curves["epoch_m"][-1], curves["epoch_t"][-1], t)
        self.manual.end_epoch()
        t.end_epoch()
        progress.step, progress.epoch = loop.step, epoch
        progress.first_cost, progress.last_finite = loop.first_cost, loop.last_finite
        self.progress = progress
        self._notify("on_epoch_done", progress)

    @staticmethod
    def _diverging_sides(cost_m, cost_t, grads_m, grads_t, first_cost, checked):
        """The sides whose cost or gradients broke the divergence rule (compare.lockstep.divergence).
        Gradients that were just checked to agree are finite (quick_diff fails on NaN and inf)."""
        return [name for name, cost, grads in (("manual", cost_m, grads_m), ("torch", cost_t, grads_t))
                if exploded(cost, first_cost) or not (checked or np.isfinite(grads).all())]

    def _buffers_mismatch(self, before, params, idx, t):
        """After a step whose gradients and parameters agreed, the running statistics (modules with
        ``named_buffers``; ``before`` the step, with the ``params`` its forward used): the first that
        differs is proven at its module (compare.lockstep.proof); rounding there is resynced like any
        other, a wrong rule is a DIFFER of its own node. ``t``: the torch side, or a TorchAhead."""
        m = self.manual
        bm, bt = m.buffers(), t.buffers()
        for name in m.buffer_names:
            d = compare_arrays(name, bm[name], bt[name], self.tolerance)
            if d.passed:
                continue
            t = here(t)
            j = int(name.split(".", 1)[0])
            x = m.data["train"][0][idx] if j == 0 else m.model.outputs[j - 1]
            with same_masks_again(m, m, t):
                proof = prove_buffers(d, bm[name], m, t, j, x, params, before, self.tolerance, self.spec.dtype)
            if not proof.wrong:
                return Mismatch("amplified", d, None, j, f"{proof.describe()}; the torch side took the manual side's "
                                "running statistics and the run went on", node="running_stats", node_module=j,
                                proof=proof)
            return Mismatch("buffers", d, None, j, f"the forward and the gradients agreed but the running statistic "
                            f"{name} differs after the step: the running statistics' update of module {j} "
                            f"({m.kinds[j]})\n  -> {proof.describe()}", node="running_stats", node_module=j,
                            proof=proof)
        return None

    def _localise(self, idx, step, cost_m):
        """``_find`` below, with each side's running statistics as they were (recomputing the step
        runs its forward again, which would update them twice) and every dropout layer reusing the
        step's mask (the manual side's, the same as torch's)."""
        saved = [(side, side.buffers()) for side in self.sides if side.buffer_names]
        try:
            with same_masks_again(self.manual, *self.sides):
                return self._find(idx, step, cost_m)
        finally:
            for side, values in saved:
                side.load_buffers(values)

    def _find(self, idx, step, cost_m):
        """Find and prove the first node where the sides differ at this step.

        After step 1 torch first takes the manual side's exact parameters and optimizer state: if its
        gradients then agree, the runs had drifted apart through rounding that training amplified
        (stage "drift"). Otherwise both sides recompute the step with every intermediate kept, the
        walk finds the first tensor that differs, and its node is recomputed alone on identical
        inputs (compare.lockstep.proof): wrong there, it is a mistake; right there, the difference
        is rounding amplified by the computation (stage "amplified")."""
        m, t, tol = self.manual, self.torch, self.tolerance
        if step > 1:
            apart = self._worst_grad(m.flat_grads(), t.flat_grads())     # as the two runs computed them
            t.sync_from(m)
            cost_t = t.forward_backward(idx)
            ok, g_abs, _ = quick_diff(m.flat_grads(), t.flat_grads(), tol, self.offsets)
            if ok and abs(cost_m - cost_t) <= tol.allowed(abs(cost_t)):
                return Mismatch("drift", apart, None, None, (
                    f"not a formula: recomputed at the manual side's exact parameters, torch's gradients "
                    f"agree (max |diff| {g_abs:.3g}). The two runs drifted apart through rounding that "
                    f"training amplified step after step ({self.spec.dtype}, lr {self.spec.lr}); the torch "
                    f"side was set to the manual side's parameters and optimizer state, and the run went on"))
        tm, tt = m.trace(idx), t.trace(idx)
        found = localise(tm, tt, tol, self.spec.loss)
        if found is None:
            # Every intermediate agrees on the recomputation: the difference is not in the formulas.
            diffs = [compare_arrays(f"{n}.grad", tm.param_grads[n], tt.param_grads[n], tol)
                     for n in tm.param_grads] + [compare_arrays("cost", tm.cost, tt.cost, tol)]
            worst = max(diffs, key=lambda d: d.max_abs)
            return Mismatch("backward", worst, None, None,
                            "the gradients differed but agree when recomputed: a side is not deterministic")
        X, Y = m.data["train"]
        proof = prove_node(found, tm, tt, m, t, X[idx], Y[idx], m.params(), tol, self.spec.dtype)
        if proof.wrong:
            return replace(found, proof=proof, reason=f"{found.reason}\n  -> {proof.describe()}")
        return replace(found, stage="amplified", proof=proof, reason=(
            f"{proof.describe()}; the torch side took the manual side's numbers and the run went on"))

    def _worst_grad(self, flat_m, flat_t):
        """The TensorDiff of the parameter gradient that differs most (relative to its tolerance)."""
        gm, gt = unflatten(flat_m, self.manual.layout), unflatten(flat_t, self.manual.layout)
        diffs = [compare_arrays(f"{n}.grad", gm[n], gt[n], self.tolerance) for n in gm]
        return max(diffs, key=lambda d: d.max_abs / d.allowed)

    def _update_mismatch(self, before, state, grads, grads_t, after, lr):
        """The parameters differ after the step although the gradients agreed: prove the update."""
        pm, pt = self.manual.params(), self.torch.params()
        diffs = [compare_arrays(n, pm[n], pt[n], self.tolerance) for n in pm]
        bad = max(diffs, key=lambda d: (not d.passed, d.scaled))
        # The gradients as they went into the two updates (after a resync, torch's are manual's).
        grads_diff = compare_arrays("gradients", grads, self.torch.flat_grads(), self.tolerance)
        proof = prove_update(self.spec, self.manual, self.torch, self.manual.layout, before, state, grads, after, lr,
                             self.tolerance, bad, grads_diff)
        if not proof.wrong:
            return Mismatch("amplified", bad, None, None, (
                f"{proof.describe()}; the torch side took the manual side's parameters and optimizer state, "
                "and the run went on"), node="optimizer", proof=proof)
        return Mismatch("update", bad, None, None,
                        f"the gradients agreed but {bad.name} differs after the optimizer step: the "
                        f"{self.spec.optimizer} update rule (arguments: lr {lr:g}, "
                        f"{self.spec.optimizer_args or 'defaults'})\n  -> {proof.describe()}",
                        node="optimizer", proof=proof)

    def _schedule_mismatch(self, lr_m, lr_t, epoch):
        """The learning rates differ at the start of a step: both schedules had the same inputs
        (the initial rate, its arguments and the number of epochs done), so the schedule is wrong."""
        d = compare_arrays("learning rate", lr_m, lr_t, self.tolerance)
        return Mismatch("update", d, None, None,
                        f"after {epoch - 1} epoch(s) from the same initial rate {self.spec.lr:g}, the learning "
                        f"rates differ: the {self.spec.schedule} schedule "
                        f"({self.spec.schedule_args or 'no arguments'}) is wrong", node="schedule")

    def _end_epoch(self, epoch, step, cost_m, cost_t, t):
        p = self.problem
        acc_m = acc_t = vc_m = vc_t = va_m = va_t = None
        evaluated = self.plan.evaluated(epoch)
        if evaluated and p.labels is not None:
            _, acc_m = self._evaluate(self.manual, "train")
            _, acc_t = self._evaluate(t, "train")
        if evaluated and p.X_val is not None:
            vc_m, va_m = self._evaluate(self.manual, "val")
            vc_t, va_t = self._evaluate(t, "val")
        record = EpochRecord(epoch, step, cost_m, cost_t, acc_m, acc_t, vc_m, vc_t, va_m, va_t,
                             self.manual.lr, t.lr, evaluated)
        self._notify("on_epoch", record)
        return record

    def _final(self):
        """Cost and accuracy of the final parameters on the training (and validation) data."""
        out = {}
        for side in self.sides:
            key = side.name
            cost, acc = self._evaluate(side, "train")
            out[f"final_cost_{key}"] = cost
            out[f"train_accuracy_{key}"] = acc
            vc, va = self._evaluate(side, "val") if "val" in side.data else (None, None)
            out[f"val_cost_{key}"] = vc
            out[f"val_accuracy_{key}"] = va
        return out


def run_lockstep(spec, *, progress=True, **kwargs):
    """Build a LockstepRun for ``spec`` and run it; returns a LockstepResult.

    It runs as the command line does: torch and NumPy's BLAS on one thread each for the call
    (compare.interactive.threads.single_threaded: for networks this small that is the fastest, and
    on a busy machine many times faster than the default), the caller's thread counts restored
    after. ``progress`` (default True) shows progress for a run that takes longer than 2 s: a
    widget in a Jupyter notebook, a bar on a terminal, one line when it ends elsewhere;
    ``progress=False`` shows none. Other keyword arguments go to LockstepRun (``name``,
    ``observers``, ...).
    """
    observers = list(kwargs.pop("observers", ()))
    shown = progress_for(not progress, delay=API_PROGRESS_DELAY)
    with single_threaded():
        return LockstepRun(spec, observers=observers + ([shown] if shown else []), **kwargs).run()
