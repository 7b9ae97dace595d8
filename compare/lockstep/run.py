"""The lockstep run: both implementations, the same data, the same initial weights, the same
batch order, compared at every step.

At each step both sides run forward and backward on the same batch; every parameter gradient
(and the cost) is compared; both sides take their optimizer step; every parameter is compared.
The first disagreement is localised (compare.verdict.localise) and the run stops there.

Observers (TensorBoard logging, progress bars) get ``on_start(run)``, ``on_step(run, record)``,
``on_epoch(run, record)``, ``on_end(run, result)`` and, always, even on an error or Ctrl-C,
``on_close(run)``. Each method is optional.
"""
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

import manual
from compare.data.datasets import load_dataset
from compare.data.targets import accuracy, encode_targets
from compare.experiments.spec import SpecError
from compare.lockstep.result import LockstepResult
from compare.lockstep.sides import ManualSide, TorchSide, layout_offsets, unflatten
from compare.verdict.diff import compare_arrays, quick_diff
from compare.verdict.localise import Mismatch, localise
from compare.verdict.tolerances import tolerance_for


@dataclass
class Problem:
    """The arrays a run trains and validates on, with targets encoded for its loss."""
    X: np.ndarray
    Y: np.ndarray
    labels: np.ndarray | None
    X_val: np.ndarray | None
    Y_val: np.ndarray | None
    labels_val: np.ndarray | None
    task: str
    sizes: tuple


def prepare(spec, dataset=None):
    """Load (or take) the data set, encode its targets for the spec's loss and size the network."""
    spec.validate()
    ds = dataset if dataset is not None else load_dataset(spec.dataset, seed=spec.seed, **spec.dataset_args)
    dt = manual.as_dtype(spec.dtype)
    classification = ds.task != "regression"

    def encode(y):
        if y is None:
            return None
        return encode_targets(y, spec.loss, ds.num_classes, dtype=spec.dtype)

    Y = encode(ds.y_train)
    outputs = ds.num_classes if Y.ndim == 1 else Y.shape[1]
    sizes = (ds.X_train.shape[1], *spec.hidden_sizes, outputs)
    return Problem(
        X=ds.X_train.astype(dt), Y=Y, labels=ds.y_train if classification else None,
        X_val=None if ds.X_val is None else ds.X_val.astype(dt), Y_val=encode(ds.y_val),
        labels_val=ds.y_val if classification and ds.y_val is not None else None,
        task=ds.task, sizes=sizes)


def initial_state(spec, sizes, rng):
    """The initial parameters of ``spec``'s network, {name: array}, drawn from ``rng`` (explicit
    values where the spec gives them). Both sides, and a torch-only run, start from these."""
    template = manual.mlp(sizes, spec.activation, spec.output_activation)
    return manual.init_parameters(template, spec.init, rng, explicit=spec.initial_params, dtype=spec.dtype,
                                  **spec.init_args)


def decision_threshold(loss):
    """Where a one-column output switches from class 0 to 1: 0 for hinge's scores, 0.5 for probabilities."""
    return 0.0 if loss == "hinge" else 0.5


def evaluate(side, problem, split, threshold):
    """(cost, accuracy) of a side's current parameters on a whole split ("train" or "val");
    accuracy is None for regression."""
    cost, out = side.evaluate(split)
    labels = problem.labels if split == "train" else problem.labels_val
    if labels is None or problem.task == "regression":
        return cost, None
    return cost, float(accuracy(out, labels, problem.task, threshold=threshold))


def default_eval_every(epochs):
    """Accuracy and validation cost are measured about 100 times a run (and always at the end):
    at every one of the OR gate's 5000 one-step epochs they would cost more than training."""
    return max(1, epochs // 100)


def epoch_batches(rng, n, batch_size, shuffle=True):
    """One epoch's batches of indices into n examples: a permutation drawn from ``rng`` (or
    0..n-1 in order), cut into batches of ``batch_size`` (None: one batch of all n)."""
    order = rng.permutation(n) if shuffle else np.arange(n)
    size = n if batch_size is None else batch_size
    return [order[i:i + size] for i in range(0, n, size)]


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
    flat_grads_manual: np.ndarray   # every parameter gradient, concatenated (float64)
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
    evaluated: bool           # False on epochs between evaluations (accuracies and val costs are None)


class LockstepRun:
    """One comparison run; observers may read ``spec``, ``problem``, ``manual`` and ``torch``."""

    def __init__(self, spec, *, name=None, dataset=None, observers=(), stop_on_mismatch=True,
                 manual_side=None, eval_every=None):
        self.spec = spec.validate()
        self.name = name or spec.dataset
        self.problem = prepare(spec, dataset)
        self.tolerance = tolerance_for(spec.dtype)
        self.observers = list(observers)
        self.stop_on_mismatch = stop_on_mismatch
        # Numbers are made once: one Generator draws the initial weights, then the batch order.
        self.rng = np.random.default_rng(spec.seed)
        self.initial_state = initial_state(spec, self.problem.sizes, self.rng)
        self.manual = (manual_side or ManualSide)(spec, self.problem.sizes, self.initial_state)
        try:
            self.torch = TorchSide(spec, self.problem.sizes, self.initial_state)
        except ValueError as e:          # e.g. CUDA asked for on a machine without it
            raise SpecError(str(e)) from None
        self.sides = (self.manual, self.torch)
        for side in self.sides:
            side.load(self.problem)
        if self.manual.layout != self.torch.layout:
            raise ValueError(f"the two models' parameters differ: {self.manual.layout} vs {self.torch.layout}")
        # where each parameter starts in the flat vectors that are compared at every step
        self.offsets = layout_offsets(self.manual.layout)
        self.threshold = decision_threshold(spec.loss)
        self.eval_every = eval_every or default_eval_every(spec.epochs)

    def _notify(self, event, *args):
        notify(self.observers, event, self, *args)

    def batches(self):
        """The batch order of one epoch, drawn once and used by both sides."""
        return epoch_batches(self.rng, self.problem.X.shape[0], self.spec.batch_size, self.spec.shuffle)

    def _evaluate(self, side, split):
        return evaluate(side, self.problem, split, self.threshold)

    def run(self):
        spec, p, tol = self.spec, self.problem, self.tolerance
        m, t = self.manual, self.torch
        curves = {"step_m": [], "step_t": [], "epoch_m": [], "epoch_t": []}
        maxima = dict(grad_abs=0.0, grad_rel=0.0, param_abs=0.0, cost_abs=0.0)
        mismatch, step, epochs_done, drifts = None, 0, 0, []
        start = time.perf_counter()
        self._notify("on_start")
        try:
            for epoch in range(1, spec.epochs + 1):
                total_m = total_t = 0.0
                for idx in self.batches():
                    step += 1
                    cost_m, cost_t = m.forward_backward(idx), t.forward_backward(idx)
                    grads_m, grads_t = m.flat_grads(), t.flat_grads()
                    ok, g_abs, g_rel = quick_diff(grads_m, grads_t, tol, self.offsets)
                    c_abs = abs(cost_m - cost_t)
                    cost_ok = c_abs <= tol.allowed(abs(cost_t))
                    lr_m, lr_t = m.lr, t.lr
                    p_abs = 0.0
                    if not (ok and cost_ok):
                        mismatch = self._localise(idx, step)
                        if mismatch.stage == "drift":
                            # The formulas agree; rounding moved the runs apart. Continue from the
                            # same numbers so that every later step is checked as tightly.
                            drifts.append(replace(mismatch, step=step, epoch=epoch))
                            t.sync_from(m)
                            t.forward_backward(idx)
                            mismatch = None
                    if mismatch is None:
                        m.step()
                        t.step()
                        params_ok, p_abs, _ = quick_diff(m.flat_params(), t.flat_params(), tol, self.offsets)
                        if not params_ok:
                            mismatch = self._update_mismatch()
                    maxima["grad_abs"] = max(maxima["grad_abs"], g_abs)
                    maxima["grad_rel"] = max(maxima["grad_rel"], g_rel)
                    maxima["param_abs"] = max(maxima["param_abs"], p_abs)
                    maxima["cost_abs"] = max(maxima["cost_abs"], c_abs)
                    curves["step_m"].append(cost_m)
                    curves["step_t"].append(cost_t)
                    total_m += cost_m * len(idx)
                    total_t += cost_t * len(idx)
                    self._notify("on_step", StepRecord(step, epoch, len(idx), cost_m, cost_t, lr_m, lr_t,
                                                       grads_m, grads_t, m.layout, g_abs, g_rel, p_abs, c_abs))
                    if mismatch is not None:
                        mismatch = replace(mismatch, step=step, epoch=epoch)
                        if self.stop_on_mismatch:
                            break
                if mismatch is not None and self.stop_on_mismatch:
                    break
                epochs_done = epoch
                curves["epoch_m"].append(total_m / p.X.shape[0])
                curves["epoch_t"].append(total_t / p.X.shape[0])
                self._end_epoch(epoch, step, curves["epoch_m"][-1], curves["epoch_t"][-1])
                m.end_epoch()
                t.end_epoch()
            result = LockstepResult(
                name=self.name, spec=spec, passed=mismatch is None, steps=step, epochs=epochs_done,
                tolerance=tol, max_abs_grad_diff=maxima["grad_abs"], max_rel_grad_diff=maxima["grad_rel"],
                max_abs_param_diff=maxima["param_abs"], max_abs_cost_diff=maxima["cost_abs"],
                step_cost_manual=curves["step_m"], step_cost_torch=curves["step_t"],
                epoch_cost_manual=curves["epoch_m"], epoch_cost_torch=curves["epoch_t"],
                mismatch=mismatch, drifts=drifts, seconds=time.perf_counter() - start, **self._final())
            self._notify("on_end", result)
            return result
        finally:
            self._notify("on_close")

    def _localise(self, idx, step):
        """Recompute the disagreeing step on both sides with every intermediate kept, and walk it."""
        tm, tt = self.manual.trace(idx), self.torch.trace(idx)
        found = localise(tm, tt, self.tolerance, self.spec.loss)
        if found is not None:
            return self._drift(found, idx, tm.cost) if step > 1 else found
        # Every intermediate agrees on the recomputation: the difference is not in the formulas.
        diffs = [compare_arrays(f"{n}.grad", tm.param_grads[n], tt.param_grads[n], self.tolerance)
                 for n in tm.param_grads] + [compare_arrays("cost", tm.cost, tt.cost, self.tolerance)]
        worst = max(diffs, key=lambda d: d.max_abs)
        return Mismatch("backward", worst, None, None,
                        "the gradients differed but agree when recomputed: a side is not deterministic")

    def _drift(self, found, idx, cost_m):
        """After step 1 the sides hold slightly different parameters. If torch, given the manual
        side's exact parameters, computes the manual side's gradients, the formulas agree and the
        difference is rounding that training amplified (chaotic dynamics, float32)."""
        cost_t, grads_t = self.torch.gradients_at(self.manual.params(), idx)
        ok, g_abs, _ = quick_diff(self.manual.flat_grads(), grads_t, self.tolerance, self.offsets)
        if not (ok and abs(cost_m - cost_t) <= self.tolerance.allowed(abs(cost_t))):
            return found
        return replace(found, stage="drift", reason=(
            f"not a formula: recomputed at the manual side's exact parameters, torch's gradients "
            f"agree (max |diff| {g_abs:.3g}). The two runs drifted apart through rounding that "
            f"training amplified step after step ({self.spec.dtype}, lr {self.spec.lr}); the torch "
            f"side was set to the manual side's parameters and optimizer state, and the run went on"))

    def _update_mismatch(self):
        pm, pt = self.manual.params(), self.torch.params()
        diffs = [compare_arrays(n, pm[n], pt[n], self.tolerance) for n in pm]
        bad = next(d for d in diffs if not d.passed)
        return Mismatch("update", bad, None, None,
                        f"the gradients agreed but {bad.name} differs after the optimizer step: the "
                        f"{self.spec.optimizer} update rule (arguments: lr {self.spec.lr}, "
                        f"{self.spec.optimizer_args or 'defaults'}) or the learning-rate schedule")

    def _end_epoch(self, epoch, step, cost_m, cost_t):
        p = self.problem
        acc_m = acc_t = vc_m = vc_t = va_m = va_t = None
        evaluated = epoch % self.eval_every == 0 or epoch == self.spec.epochs
        if evaluated and p.labels is not None:
            _, acc_m = self._evaluate(self.manual, "train")
            _, acc_t = self._evaluate(self.torch, "train")
        if evaluated and p.X_val is not None:
            vc_m, va_m = self._evaluate(self.manual, "val")
            vc_t, va_t = self._evaluate(self.torch, "val")
        record = EpochRecord(epoch, step, cost_m, cost_t, acc_m, acc_t, vc_m, vc_t, va_m, va_t,
                             self.manual.lr, self.torch.lr, evaluated)
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


def run_lockstep(spec, **kwargs):
    """Build a LockstepRun for ``spec`` and run it; returns a LockstepResult."""
    return LockstepRun(spec, **kwargs).run()
