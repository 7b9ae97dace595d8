"""A run's side of checkpoints: whether a checkpoint fits the run, the run set up from one, and the
observer that saves a run at the end of its epochs."""
import json
import os

from backprop_oracle.compare.checkpoints.files import _kind, _spec_json, write_checkpoint
from backprop_oracle.compare.checkpoints.state import (Checkpoint, CheckpointError, load_into, manual_state,
                                                       masks_state, torch_state)
from backprop_oracle.compare.experiments.setup import epoch_batches
from backprop_oracle.compare.lockstep.progress import Progress

# Spec fields a resumed run may change: how long it trains, and where the torch side runs.
RESUMABLE = ("epochs", "device")


def check_spec(checkpoint, spec):
    """Raise CheckpointError naming the first field, other than the epochs and the device, in which
    ``spec`` differs from the spec the checkpoint was saved with."""
    saved = json.loads(_spec_json(checkpoint.spec))
    wanted = json.loads(_spec_json(spec))
    for key in wanted:
        if key not in RESUMABLE and saved.get(key) != wanted[key]:
            value = saved.get(key)
            hint = f" (--{key.replace('_', '-')} {value})" if isinstance(value, (int, float, str)) else ""
            raise CheckpointError(f"{checkpoint.path} was saved by a run with {key} {value!r}, "
                                  f"this run has {wanted[key]!r}: a checkpoint resumes only the run that "
                                  f"saved it. Resume with the same preset and options{hint}, or start "
                                  f"afresh without --resume")
    if spec.epochs <= checkpoint.progress.epoch:
        raise CheckpointError(f"{checkpoint.path} has trained {checkpoint.progress.epoch} epochs already; "
                              f"ask for more in all (--epochs {checkpoint.progress.epoch + 1} or more)")


def _check_layout(run, checkpoint):
    """A layers list's parameters in the checkpoint have the shapes this data gives them."""
    side = getattr(run, "manual", None) or run.torch
    saved = checkpoint.manual["params"] if checkpoint.manual is not None else checkpoint.torch["model"]
    for name, shape in side.layout:
        got = tuple(saved[name].shape) if name in saved else None
        if got != tuple(shape):
            raise CheckpointError(f"{checkpoint.path} holds {name} of shape {got} but this data gives it "
                                  f"{tuple(shape)}; resume on the data it was saved from")


def restore(run, checkpoint):
    """Set up ``run`` (a LockstepRun or TorchRun, its sides built) to continue from ``checkpoint``: each
    side's state, the batch order's Generator, the step; returns the Progress its loop starts from."""
    check_spec(checkpoint, run.spec)
    if run.spec.layers:
        _check_layout(run, checkpoint)
    elif tuple(checkpoint.sizes) != tuple(run.problem.sizes):
        raise CheckpointError(f"{checkpoint.path} holds a {'-'.join(map(str, checkpoint.sizes))} network but this "
                              f"data gives {'-'.join(map(str, run.problem.sizes))}; resume on the data it was "
                              "saved from")
    for name in ("manual", "torch"):
        side = getattr(run, name, None)
        if side is not None:
            load_into(side, checkpoint)
    run.rng.bit_generator.state = checkpoint.rng_state
    run.start_step = checkpoint.progress.step
    progress = checkpoint.progress.snapshot()
    progress.resumed_from = checkpoint.path
    both = getattr(run, "manual", None) is not None
    if both and not (progress.compared and checkpoint.manual is not None):
        # Steps the sides were not compared at (a torch-only run's) are not part of this verdict.
        progress = Progress(progress.step, progress.epoch, None, None, compared=False,
                            resumed_from=checkpoint.path)
    return progress


def checkpoint_of(run, progress):
    """The Checkpoint of ``run`` at the end of the epoch ``progress`` describes."""
    manual = getattr(run, "manual", None)
    return Checkpoint(run.spec, progress, run.rng.bit_generator.state,
                      manual_state(manual) if manual is not None else None, torch_state(run.torch),
                      "checkpoint", masks_state(manual if manual is not None else run.torch))


def save_checkpoint(run, path):
    """Write ``run``'s state at the end of its last completed epoch to ``path`` (.npz or .pt)."""
    progress = getattr(run, "progress", None)
    if progress is None:
        raise CheckpointError(f"--save: the run completed no epoch, so {path} was not written")
    write_checkpoint(os.fspath(path), checkpoint_of(run, progress))


class Saver:
    """Observer: writes the run to ``path`` at the end of every ``every``-th epoch and of the last one
    (``every`` None: the last only). ``saved`` is (epoch, step) of the last write, or None.

    It reads the sides (their parameters, optimizer states, schedules) only at the last steps of the
    epochs it saves, and says so (``reads_sides_at``): a lockstep run's blocks end there, so the torch
    side is at the step the checkpoint names, and run on through the other epochs' ends."""

    def __init__(self, path, every=None):
        self.path = os.fspath(path)
        _kind(self.path, "--save")
        self.every, self.saved = every, None
        self.saving_steps = None         # known from on_start

    def saves_at(self, epoch, epochs):
        """Whether the end of ``epoch`` (of ``epochs``) is saved."""
        return epoch == epochs or bool(self.every and epoch % self.every == 0)

    def on_start(self, run):
        # The run goes on from run.start (a checkpoint's step and epoch, or 0 and 0), one step a batch
        # and epoch_batches' batches an epoch: the saved epochs end at these steps.
        start, spec, n = run.start, run.spec, run.problem.X.shape[0]
        per_epoch = len(epoch_batches(None, n, spec.batch_size, shuffle=False))   # (the order does not count)
        self.saving_steps = {start.step + (epoch - start.epoch) * per_epoch
                             for epoch in range(start.epoch + 1, spec.epochs + 1) if self.saves_at(epoch, spec.epochs)}

    def reads_sides_at(self, step):
        """The steps whose calls read the sides: the last steps of the saved epochs (compare.lockstep.blocks)."""
        return self.saving_steps is None or step in self.saving_steps

    def on_epoch_done(self, run, progress):
        if self.saves_at(progress.epoch, run.spec.epochs):
            write_checkpoint(self.path, checkpoint_of(run, progress))
            self.saved = (progress.epoch, progress.step)
