"""The lockstep run a block of steps at a time: the torch side runs the block first, then the
manual side runs it step by step, each step compared with what the torch side's gave
(compare.sides.ahead.TorchAhead stands in for the torch side).

Run alternately step by step, each side starts every step with the processor's caches filled by
the other's, which costs more than all the comparing (1.3 to 1.5 times the two sides trained one
after the other, on the small presets). In blocks each side runs on its own for a while.

The manual side's calls are those of the step-by-step loop, in its order, each made once: no
manual step is run twice, so a manual side that keeps state of its own (a count of its calls)
gets the verdict it gets step by step. The torch side is set back into the block wherever the
loop needs the side itself (a difference to localise and prove, a resynchronisation); the block
ends there, and the next starts from that point.

Where a block ends (``BlockPlan``): after at most ``block_steps`` steps (fewer after a block that
ended early, more again after ones that did not, fewer where a block takes long), and after any
step at whose end an observer reads the sides: one with ``on_step`` that does not say otherwise
(at every step: the run goes step by step), one with ``on_epoch`` or ``on_epoch_done`` that does
not say otherwise (at every epoch's end). An observer says otherwise with
``reads_sides_at(step)``: True for a step in whose calls it reads the sides' models, parameters or
optimizers (TensorBoard's histograms and pictures, a checkpoint's saves), False for the others. An
epoch's end inside a block that evaluates the sides for the observers (accuracy, validation cost)
has the torch side's evaluation kept where its run passed it.
"""
import contextlib
import time

import numpy as np

from backprop_oracle.compare.sides.ahead import Kept

BLOCK_STEPS = 256              # the most steps a block takes
KEPT_BYTES = 8 << 20           # the most a block's kept gradients and parameters take
BLOCK_SECONDS = 0.1            # a block that takes longer is halved (progress shown in time)
OBSERVER_CALLS = ("on_step", "on_epoch", "on_epoch_done")


class BlockPlan:
    """How many steps the next block takes, and where blocks end (see the module docstring)."""

    def __init__(self, run, block_steps=None, readers=()):
        self.run = run
        size = int(sum(np.prod(shape) for _, shape in run.manual.layout))
        most = BLOCK_STEPS if block_steps is None else int(block_steps)
        self.most = max(1, min(most, KEPT_BYTES // max(1, 16 * size)))
        every_step, self.at_epoch_ends, self.declared = False, False, []
        for o in run.observers:
            calls = [c for c in OBSERVER_CALLS if hasattr(o, c)]
            if not calls:
                continue
            if hasattr(o, "reads_sides_at"):
                self.declared.append(o)
            elif "on_step" in calls:
                every_step = True
            else:
                self.at_epoch_ends = True
        self.readers = bool(readers)
        if every_step:
            self.most = 1
        self.size = self.most
        self.kept = Kept(self.most, size) if self.most > 1 else None
        self.starts, self.early = [], 0     # the first step of each block the torch side ran ahead; ended early

    def evaluated(self, epoch):
        """Whether the run evaluates the sides at the end of ``epoch``: for an observer that reads
        the evaluations, every ``eval_every`` epochs and at the last."""
        run = self.run
        return self.readers and (epoch % run.eval_every == 0 or epoch == run.spec.epochs)

    def ends_block(self, step, ends_epoch):
        """Whether a block ends after ``step`` (the sides read live at its end)."""
        if self.declared and any(o.reads_sides_at(step) for o in self.declared):
            return True
        return ends_epoch and self.at_epoch_ends

    def evaluations(self, steps):
        """{row: splits} of the block's ``steps`` whose epoch's end evaluates the sides."""
        p = self.run.problem
        splits = (("train",) if p.labels is not None else ()) + (("val",) if p.X_val is not None else ())
        return {r: splits for r, (epoch, _, ends) in enumerate(steps) if ends and self.evaluated(epoch)}

    def take(self, pending, todo, step, alone=False):
        """The next block's steps (one step ``alone``): from ``pending`` (steps put back), then
        ``todo`` (an iterator), one at a time, so that an epoch's batches are drawn only once a
        block reaches it. ``step``: the steps taken so far."""
        steps = []
        while len(steps) < (1 if alone else self.size):
            nxt = pending.popleft() if pending else next(todo, None)
            if nxt is None:
                break
            steps.append(nxt)
            if self.ends_block(step + len(steps), nxt[2]):
                break
        return steps

    @contextlib.contextmanager
    def timed(self):
        """Around a block (or a step alone): the next is a quarter as long after one that ended
        early, half as long after one that took over BLOCK_SECONDS, else twice as long (at most
        ``most``)."""
        self._start = time.perf_counter()
        self._full = True
        yield
        seconds = time.perf_counter() - self._start
        if not self._full:
            self.size = max(1, self.size // 4)
        elif seconds > BLOCK_SECONDS:
            self.size = max(1, self.size // 2)
        else:
            self.size = min(self.most, 2 * self.size)

    @property
    def blocks(self):
        return len(self.starts)

    def ended_early(self):
        self._full = False
        self.early += 1
