"""Training with the torch side alone: the data, initial weights and batch order of a lockstep
run, no comparison, on any device, and optionally on several processes.

``backprop-oracle train PRESET`` runs it. Observers are the lockstep run's (TensorBoardLogger with
``sides=("torch",)``): StepRecord and EpochRecord come with the manual fields set to None.

Several processes (``torchrun --nproc_per_node=2 -m backprop_oracle train PRESET``): each rank takes the
shard ``batch[rank::world]`` of every batch and DistributedDataParallel averages the gradients.
Every loss here is a mean over examples, so rank r scales its shard's cost by
len(shard_r) * world / len(batch): the average over ranks of the scaled gradients is then the
gradient of the whole batch's mean cost, as on one process. A dropout layer draws the mask of the
whole batch from the run's dropout stream on every rank and each rank keeps its shard's rows, so
the masks are those of one process too. Batch norm is the exception: each rank normalises its own
shard (DistributedDataParallel without SyncBatchNorm, which torch runs only on GPUs), so a run
with batch norm on several processes is not the one-process run; rank 0 says so when it starts,
and the config records it.
"""
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from backprop_oracle import torch_ref
from backprop_oracle.compare.experiments.setup import (decision_threshold, default_eval_every, epoch_batches, evaluate,
                                       initial_state, prepare)
from backprop_oracle.compare.lockstep.run import EpochRecord, StepRecord, notify
from backprop_oracle.compare.errors import SpecError
from backprop_oracle.compare.lockstep.divergence import Divergence, advice, exploded
from backprop_oracle.compare.lockstep.progress import Progress
from backprop_oracle.compare.files import json_safe
from backprop_oracle.compare.train import captured
from backprop_oracle.compare.interactive.progress import API_PROGRESS_DELAY, progress_for
from backprop_oracle.compare.sides.sides import TorchSide, dropouts
from backprop_oracle.compare.interactive.threads import single_threaded
from backprop_oracle.compare.tables import aligned
from backprop_oracle.compare.train.distributed import Distributed, PeerLost, process_group  # noqa: F401 (their home)


@dataclass
class TrainResult:
    """The outcome of a torch-only run; fields are named as LockstepResult's torch fields, so the
    same observers read both."""
    name: str
    spec: object
    device: str
    world_size: int
    steps: int
    epochs: int
    final_cost_torch: float          # cost of the final parameters on the whole training set
    train_accuracy_torch: float | None
    val_cost_torch: float | None
    val_accuracy_torch: float | None
    step_cost_torch: list = field(repr=False, default_factory=list)   # the whole batch's cost, before its update
    epoch_cost_torch: list = field(repr=False, default_factory=list)
    seconds: float = 0.0
    divergence: object = None        # a compare.lockstep.divergence.Divergence where the run diverged
    extra: dict = field(default_factory=dict)   # where it resumed from a checkpoint, if it did

    @property
    def accuracy(self):
        """Validation accuracy where there is a validation set, else training accuracy."""
        return self.val_accuracy_torch if self.val_accuracy_torch is not None else self.train_accuracy_torch

    def to_dict(self, curves=True):
        out = {"preset": self.name, "device": self.device, "world_size": self.world_size,
               "dtype": self.spec.dtype, "steps": self.steps, "epochs": self.epochs,
               "final_cost": self.final_cost_torch, "train_accuracy": self.train_accuracy_torch,
               "val_cost": self.val_cost_torch, "val_accuracy": self.val_accuracy_torch,
               "seconds": self.seconds, "spec": self.spec.to_dict(),
               "divergence": None if self.divergence is None else self.divergence.to_dict(), **self.extra}
        if curves:
            out.update(step_cost=self.step_cost_torch, epoch_cost=self.epoch_cost_torch)
        return json_safe(out)


class TorchRun:
    """The torch side of a LockstepRun on its own; observers may read ``spec``, ``problem``,
    ``torch``, ``threshold`` and ``name`` (the attributes a LockstepRun offers them)."""

    def __init__(self, spec, *, name=None, dataset=None, observers=(), eval_every=None, distributed=None,
                 resume=None, cuda_graph=None):
        self.dist = distributed
        if distributed is not None and torch_ref.resolve_device(spec.device).type == "cuda":
            spec = replace(spec, device=f"cuda:{distributed.local_rank}")   # one GPU per process
        self.spec = spec.validate()
        self.name = name or spec.dataset
        self.problem = prepare(spec, dataset)
        self.observers = list(observers)
        # The same numbers as LockstepRun: one Generator draws the initial weights, then the batch order.
        self.rng = np.random.default_rng(spec.seed)
        self.initial_state = initial_state(spec, self.problem.sizes, self.rng)
        try:
            self.torch = TorchSide(spec, self.problem.sizes, self.initial_state)
        except ValueError as e:          # a device that is not here (cuda:1 on one GPU, rank 1 of 2)
            raise SpecError(str(e)) from None
        self.torch.load(self.problem)
        self.threshold = decision_threshold(spec.loss)
        self.eval_every = eval_every or default_eval_every(spec.epochs)
        self.model = self.torch.model
        self.extra_config = {"device": str(self.torch.device),   # what a TensorBoardLogger's config shows
                             "processes": 1 if distributed is None else distributed.world_size}
        if distributed is not None:
            self._shard_masks(distributed)
            norms = [i for i, m in enumerate(self.torch.model) if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
            if norms:
                self.extra_config["batch_norm"] = "each rank's shard"
                if distributed.rank == 0:
                    print(f"note: batch norm (module{'s' if len(norms) > 1 else ''} {', '.join(map(str, norms))}) "
                          f"normalises each rank's shard of a batch on {distributed.world_size} processes, not the "
                          "whole batch: the run is not the one-process run", file=sys.stderr, flush=True)
            device = self.torch.device
            distributed.together()               # each rank has prepared its data
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.torch.model, device_ids=[device.index] if device.type == "cuda" else None,
                process_group=distributed.group)
        # A checkpoint to continue from (compare.checkpoints.Checkpoint): it gives the side its state
        # and the batch order's Generator its own, and returns the loop's Progress.
        self.start_step = 0
        self.start = self.progress = Progress() if resume is None else resume.restore(self)
        # On CUDA the step is replayed from CUDA graphs where it can be (compare.train.captured).
        self.cuda_graph = captured.attach(self, cuda_graph)

    def _shard_masks(self, dist):
        """Each dropout layer takes the whole batch's mask from the run's stream and keeps this rank's
        rows (``batch[rank::world]``), as the rank keeps its shard of the batch."""
        self._batch_rows = 0
        for _, m in dropouts(self.torch.model):
            def shard(shape, p, whole=m.mask_provider):
                return whole((self._batch_rows,) + tuple(shape[1:]), p)[dist.rank::dist.world_size]
            m.mask_provider = shard

    def _notify(self, event, *args):
        notify(self.observers, event, self, *args)

    @property
    def _loggers(self):
        """The observers that read gradients and evaluations (a progress bar reads neither)."""
        return [o for o in self.observers if getattr(o, "logs", True)]

    def batches(self):
        """One epoch's batch order, drawn as LockstepRun.batches draws it."""
        return epoch_batches(self.rng, self.problem.X.shape[0], self.spec.batch_size, self.spec.shuffle)

    def _forward_backward(self, idx):
        """The batch's cost; its gradient is left in the parameters' .grad (on every rank)."""
        side = self.torch
        if self.dist is None:
            return side.forward_backward(idx)
        world = self.dist.world_size
        self._batch_rows = len(idx)
        shard = idx[self.dist.rank::world]
        X, Y = side.data["train"]
        rows = torch.as_tensor(shard, device=side.device)
        side.optimizer.zero_grad()
        out = self.model(X[rows])
        if len(shard):
            cost = side.loss(out, Y[rows]) * (len(shard) * world / len(idx))
        else:   # more ranks than examples: this rank still joins the gradient average, with zeros
            cost = out.sum() * 0.0
        cost.backward()
        total = cost.detach().reshape(1).clone()
        torch.distributed.all_reduce(total, group=self.dist.group)
        return total.item() / world

    def _evaluate(self, split):
        return evaluate(self.torch, self.problem, split, self.threshold)

    def run(self):
        spec, side, n = self.spec, self.torch, self.problem.X.shape[0]
        progress = self.start.snapshot()          # a fresh run's, or a checkpoint's
        progress.compared = False
        step_costs, epoch_costs = progress.curves["step_t"], progress.curves["epoch_t"]
        step, epochs_done, divergence = progress.step, progress.epoch, None
        first, last_finite = progress.first_cost, progress.last_finite
        start = time.perf_counter()
        self._notify("on_start")
        if self.dist is not None:
            self.dist.together()                 # rank 0 has started its dashboards
        try:
            for epoch in range(epochs_done + 1, spec.epochs + 1):
                total = 0.0
                for idx in self.batches():
                    step += 1
                    if self.dist is not None:
                        self.dist.at(step, epoch)       # where a failure of a peer finds this rank
                    cost = self._forward_backward(idx)
                    first = cost if first is None else first
                    if exploded(cost, first):
                        # The same rule as the lockstep run's; the cost is the whole batch's on every rank.
                        divergence = Divergence(step, epoch, ("torch",), "cost", {"torch": cost}, last_finite)
                        step_costs.append(cost)
                        break
                    last_finite = cost
                    # Copying the gradients off the device only pays when someone logs them.
                    grads = side.flat_grads() if self._loggers else None
                    lr = side.lr
                    side.step()
                    step_costs.append(cost)
                    total += cost * len(idx)
                    self._notify("on_step", StepRecord(step, epoch, len(idx), None, cost, None, lr, None, grads,
                                                       side.layout, None, None, None, None))
                if divergence is not None:
                    self.progress = None         # stopped inside an epoch: nothing to resume from
                    break
                epochs_done = epoch
                epoch_costs.append(total / n)
                if self._loggers:      # evaluating costs a pass over the data: only for a logger
                    self._end_epoch(epoch, step, epoch_costs[-1])
                side.end_epoch()
                progress.step, progress.epoch, progress.first_cost, progress.last_finite = step, epoch, first, last_finite
                self.progress = progress
                self._notify("on_epoch_done", progress)
            if divergence is not None and (self.dist is None or self.dist.rank == 0):
                divergence = replace(divergence, advice=advice(self, divergence.step))
            final_cost, train_acc = self._evaluate("train")
            val_cost, val_acc = self._evaluate("val") if "val" in side.data else (None, None)
            result = TrainResult(self.name, spec, str(side.device), 1 if self.dist is None else self.dist.world_size,
                                 step, epochs_done, final_cost, train_acc, val_cost, val_acc,
                                 step_costs, epoch_costs, time.perf_counter() - start, divergence,
                                 {**self.start.resumed(), "cuda_graph": self.cuda_graph.summary()})
            self._notify("on_end", result)
            return result
        finally:
            self._notify("on_close")

    def _end_epoch(self, epoch, step, cost):
        evaluated = epoch % self.eval_every == 0 or epoch == self.spec.epochs
        acc = vc = va = None
        if evaluated:
            _, acc = self._evaluate("train")
            if "val" in self.torch.data:
                vc, va = self._evaluate("val")
        self._notify("on_epoch", EpochRecord(epoch, step, None, cost, None, acc, None, vc, None, va,
                                             None, self.torch.lr, evaluated))


def train_torch(spec, *, progress=True, **kwargs):
    """Build a TorchRun for ``spec`` and run it; returns a TrainResult.

    On the CPU it runs as ``backprop-oracle train`` does: torch and NumPy's BLAS on one thread
    each for the call (compare.interactive.threads.single_threaded), the caller's thread counts
    restored after; on a GPU the thread counts are left alone. ``progress`` as in run_lockstep:
    shown for a run longer than 2 s (a widget in a notebook, a bar on a terminal, a line
    elsewhere), none with ``progress=False``.
    """
    observers = list(kwargs.pop("observers", ()))
    shown = progress_for(not progress, delay=API_PROGRESS_DELAY)
    try:
        cpu = torch_ref.resolve_device(spec.device).type == "cpu"
    except ValueError:              # a device that is not here: TorchRun says so (SpecError)
        cpu = False
    with single_threaded() if cpu else nullcontext():
        return TorchRun(spec, observers=observers + ([shown] if shown else []), **kwargs).run()


def format_train_table(results, run_dirs=None):
    """One row per run: device, steps, final cost and accuracy, time, and where it was logged."""
    run_dirs = run_dirs or {}
    header = ["preset", "device", "procs", "dtype", "steps", "final cost", "accuracy", "seconds", "logged to"]
    rows = [[r.name, r.device, str(r.world_size), r.spec.dtype, str(r.steps), f"{r.final_cost_torch:.6g}",
             "-" if r.accuracy is None else f"{r.accuracy:.3f}", f"{r.seconds:.2f}", run_dirs.get(r.name, "-")]
            for r in results]
    return "\n".join(aligned([header] + rows, rule=True))
