"""The torch side run ahead of the manual side: a stand-in for it that answers a lockstep step's
calls from what the torch side's own step gave, kept (compare.lockstep.blocks runs the lockstep so).

The torch side runs a block of steps on its own first, keeping what each step gave (``Kept``: its
learning rate, cost, gradients, parameters after the update, running statistics, an evaluation
at an epoch's end), and the manual side then runs the same steps, each compared as the
step-by-step loop compares it: ``TorchAhead`` stands in for the torch side and answers as the torch
side would have answered at that point of that step.

Whatever the kept values cannot answer (a difference to localise and prove, a resynchronisation,
an observer that reads the side) finds the torch side as the step-by-step loop would have left
it at that point (``TorchAhead.here``): it is set back to the block's start (``TorchSide.snapshot``)
and stepped through the steps before with their kept gradients (no forward pass is run again;
its parameters then equal the kept ones bit for bit, or this stops with an error), and the
dropout masks it takes next are those it took for the later steps (``MaskReplay``). From then on
every call goes to the side itself.

Imports NumPy and compare.sides.sides only.
"""
import contextlib
from collections import deque

import numpy as np

from backprop_oracle.compare.sides.sides import dropouts, layout_offsets
from backprop_oracle.compare.verdict.diff import tensor_maxima

FIXED = ("name", "layout", "buffer_names", "kinds", "roles", "spec", "device", "dtype", "per_step")


class Kept:
    """What the torch side's steps of a block gave, row r for the block's r-th step."""

    def __init__(self, steps, size):
        self.grads = np.empty((steps, size))      # (K, P) float64, layout order
        self.params = np.empty((steps, size))     # after the update
        self.lr, self.lr_after, self.cost = [None] * steps, [None] * steps, [None] * steps
        self.stats, self.state = [None] * steps, [None] * steps     # running statistics: compared, all buffers
        self.evaluated = [None] * steps           # {split: (cost, outputs)} at an epoch's end that evaluates


class MaskReplay:
    """The dropout masks of the torch side, which runs ahead: each mask it takes in a block is kept
    (``start``, ``mark``), and when it is set back to a step of the block (``back_to``), the masks
    it took for the later steps are the next it takes, in order, before a new one is drawn."""

    def __init__(self, side):
        self.layers = dropouts(side.model)
        self.queue = {i: deque() for i, _ in self.layers}
        self.taken, self.marks, self.own = None, [], {}

    @contextlib.contextmanager
    def installed(self):
        for i, m in self.layers:
            self.own[i] = m.mask_provider
            m.mask_provider = lambda shape, p, i=i: self._take(i, shape, p)
        try:
            yield self
        finally:
            for i, m in self.layers:
                m.mask_provider = self.own[i]

    def _take(self, i, shape, p):
        if self.queue[i]:
            mask = self.queue[i].popleft()
            if mask.shape != tuple(shape):
                raise ValueError(f"dropout {i}: the mask kept for this step has shape {mask.shape}, "
                                 f"the step asks for {tuple(shape)}")
        else:
            mask = self.own[i](shape, p)
        if self.taken is not None:
            self.taken[i].append(mask)
        return mask

    def start(self):
        self.taken, self.marks = {i: [] for i, _ in self.layers}, []

    def mark(self):
        """A step of the block starts: how many masks each layer has taken before it."""
        self.marks.append({i: len(t) for i, t in self.taken.items()})

    def back_to(self, row, forward_done):
        """The side is set back to the block's step ``row``, before or after its forward pass."""
        upto = self.marks[row + 1] if forward_done and row + 1 < len(self.marks) else \
            ({i: len(t) for i, t in self.taken.items()} if forward_done else self.marks[row])
        for i, taken in self.taken.items():
            self.queue[i].extendleft(reversed(taken[upto[i]:]))
        self.taken = None

    def stop(self):
        self.taken = None


# Where the loop stands in a step of the block: before its forward pass, after it, after the
# optimizer's step, after the epoch's end.
START, FORWARD, STEPPED, ENDED = range(4)


class TorchAhead:
    """The torch side run ahead through ``steps`` [(epoch, idx, ends an epoch)], answering for it
    from ``kept`` (see the module docstring). ``begin(r)`` before the block's r-th step; anything it
    cannot answer, and ``here()``, sets the torch side itself to that point, after which every call
    goes to it."""

    def __init__(self, side, steps, kept, masks=None, evaluations=None, offsets=None):
        self.side, self.steps, self.kept, self.masks = side, steps, kept, masks
        self.evaluations = evaluations or {}       # {row: splits}: an epoch's end where the run evaluates
        self.saved = side.snapshot()
        self.row, self.at, self.live = 0, START, False
        self.filled = 0
        self._run()
        # max|torch| of each tensor of each kept step, for the comparisons (quick_diff's ``scales``)
        offsets, n = layout_offsets(side.layout) if offsets is None else offsets, self.filled
        self.maxima = {"grads": tensor_maxima(kept.grads[:n], offsets) if n else [],
                       "params": tensor_maxima(kept.params[:n], offsets) if n else []}

    def _run(self):
        side, kept, masks, last = self.side, self.kept, self.masks, len(self.steps) - 1
        lr, lr_after, cost, grads, params = kept.lr, kept.lr_after, kept.cost, kept.grads, kept.params
        buffers = bool(side.buffer_names)
        if masks is not None:
            masks.start()
        try:
            for r, (_, idx, ends) in enumerate(self.steps):
                if masks is not None:
                    masks.mark()
                lr[r] = side.lr
                cost[r] = side.forward_backward(idx)
                grads[r] = side.flat_grads()
                side.step()
                params[r] = side.flat_params()
                lr_after[r] = side.lr
                if buffers:
                    kept.stats[r], kept.state[r] = side.buffers(), side.buffer_state()
                if ends and r < last:
                    # evaluating changes nothing (eval mode, no gradients): it is kept for the loop
                    kept.evaluated[r] = {split: side.evaluate(split) for split in self.evaluations.get(r, ())}
                    side.end_epoch()
                self.filled = r + 1
        except Exception:
            pass        # the step it arose in is run on the side itself, where it arises again

    # ---- the torch side's calls in a step, answered from what was kept ----------------------

    def begin(self, row):
        self.row, self.at = row, START

    def _kept(self, at):
        """True when the kept values answer at this point of the row."""
        return self.at == at and not self.live and self.row < self.filled

    @property
    def lr(self):
        if self.at == START and not self.live and self.row < self.filled:
            return self.kept.lr[self.row]
        if self._kept(STEPPED):
            return self.kept.lr_after[self.row]
        return self.here().lr

    def forward_backward(self, idx):
        if self.at == START and not self.live and self.row < self.filled:
            if idx is not self.steps[self.row][1]:
                raise RuntimeError(f"step {self.row + 1} of the block was run ahead on other examples")
            self.at = FORWARD
            return self.kept.cost[self.row]
        return self.here().forward_backward(idx)

    def flat_grads(self):
        if self.at in (FORWARD, STEPPED) and not self.live and self.row < self.filled:
            return self.kept.grads[self.row]
        return self.here().flat_grads()

    def step(self):
        if self.at == FORWARD and not self.live and self.row < self.filled:
            self.at = STEPPED
            return
        self.here().step()

    def flat_params(self):
        if self.at == STEPPED and not self.live and self.row < self.filled:
            return self.kept.params[self.row]
        return self.here().flat_params()

    def maxima_of(self, which):
        """max|x| of each tensor of what ``flat_grads`` ("grads") or ``flat_params`` ("params")
        answers now from the kept values, or None where they do not answer."""
        if self._kept(STEPPED) or (which == "grads" and self._kept(FORWARD)):
            return self.maxima[which][self.row]
        return None

    def buffers(self):
        if self._kept(STEPPED):
            return self.kept.stats[self.row]
        return self.here().buffers()

    def evaluate(self, split):
        inner_end = self.steps[self.row][2] and self.row < len(self.steps) - 1     # evaluated in the block
        if self._kept(STEPPED) and inner_end and split in self.kept.evaluated[self.row]:
            return self.kept.evaluated[self.row][split]
        return self.here().evaluate(split)

    def end_epoch(self):
        if self._kept(STEPPED) and self.row < len(self.steps) - 1:
            self.at = ENDED          # taken in the block already
            return
        self.here().end_epoch()

    def __getattr__(self, name):
        # What no step changes is the side's own; anything else (evaluate, trace, sync_from, the
        # model, ...) is the side itself, set to here.
        if name in FIXED:
            return getattr(self.side, name)
        return getattr(self.here(), name)

    # ---- the side itself --------------------------------------------------------------------

    def here(self):
        """The torch side itself, set to where the loop stands: as the step-by-step loop would have
        left it there (see the module docstring). From then on every call goes to it."""
        if self.live:
            return self.side
        in_step = self.row < self.filled and self.at != START
        last = self.row == len(self.steps) - 1 == self.filled - 1
        if not (last and self.at == STEPPED):          # else it is there already: the block's end
            self._set_back(self.row, self.at if in_step else START)
        elif self.masks is not None:
            self.masks.stop()
        self.live = True
        return self.side

    def finish(self):
        """The block is over at this point: the torch side itself is set there."""
        return self.here()

    def _set_back(self, row, at):
        side, kept = self.side, self.kept
        side.restore(self.saved)
        for j in range(row):
            side.set_grads(kept.grads[j])
            side.step()
            if self.steps[j][2]:
                side.end_epoch()
        if at >= FORWARD:
            side.set_grads(kept.grads[row])
        if side.buffer_names and (at >= FORWARD or row > 0):
            side.load_buffer_state(kept.state[row if at >= FORWARD else row - 1])
        if at >= STEPPED:
            side.step()
        if at >= ENDED:
            side.end_epoch()
        want = kept.params[row] if at >= STEPPED else (kept.params[row - 1] if row > 0 else None)
        if want is not None and not np.array_equal(side.flat_params(), want):
            raise RuntimeError(f"the torch side, set back to the start of a block and stepped through its "
                               f"first {row + (at >= STEPPED)} step(s) with their gradients, does not have the "
                               "parameters those steps gave it: its optimizer or schedule keeps state that "
                               "TorchSide.snapshot does not hold (LockstepRun(..., block_steps=1) compares "
                               "step by step)")
        if self.masks is not None:
            self.masks.back_to(row, at >= FORWARD)


def here(t):
    """The torch side itself at this point of the loop (``t`` the side, or a TorchAhead for it)."""
    return t.here() if isinstance(t, TorchAhead) else t


def kept_maxima(t, which):
    """``TorchAhead.maxima_of`` where ``t`` is one, else None (the side itself: quick_diff computes them)."""
    return t.maxima_of(which) if isinstance(t, TorchAhead) else None
