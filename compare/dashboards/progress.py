"""A one-line progress bar for a lockstep run, as a LockstepRun observer, drawn by tqdm on stderr.

    moons          [#####-------]  43% step 168/390 epoch 13/30 cost 0.0692 0.4s
    or-gate        [############] 100% step 5000/5000 cost 0.0005276 agree 3.7s

It redraws at most ``1 / min_interval`` times a second (a step takes well under a millisecond,
and a terminal redrawn at every one of them would cost more than the step; tqdm checks the clock
only every few steps), and ends with the verdict on the same line. Shown only on a terminal:
``progress_wanted`` says when.
"""
import math
import sys
import time

from tqdm import tqdm

BAR_FORMAT = "{desc} [{bar}] {percentage:3.0f}% step {n}/{total} {tail} {elapsed_s:.1f}s"


class _Bar(tqdm):
    """tqdm with a ``{tail}`` field made by ``self.tail()`` only when the line is drawn, so that a
    step that draws nothing formats nothing."""
    tail = staticmethod(lambda: "")

    @property
    def format_dict(self):
        return {**super().format_dict, "tail": self.tail()}


def progress_wanted(quiet=False, stream=None):
    """True when bars should be drawn: not ``quiet``, and ``stream`` (stderr) is a terminal.

    A redirected stderr gets no bars, because carriage returns make a log file unreadable.
    """
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return not quiet and bool(isatty and isatty())


def total_steps(run):
    """Steps the run will take if it does not stop early: epochs x ceil(examples / batch size)."""
    n = run.problem.X.shape[0]
    size = n if run.spec.batch_size is None else min(run.spec.batch_size, n)
    return run.spec.epochs * math.ceil(n / size)


def _cost(record):
    """The cost a record shows: the manual side's in a lockstep run, torch's when it runs alone."""
    return record.cost_manual if record.cost_manual is not None else record.cost_torch


def outcome(result):
    """How a finished run ended, in a few words: its final cost and, for a lockstep run, the verdict."""
    cost = getattr(result, "final_cost_manual", None)
    cost = result.final_cost_torch if cost is None else cost
    verdict = getattr(result, "verdict", None)
    if verdict is None:                      # a torch-only run: it trained, or diverged
        verdict = "" if getattr(result, "divergence", None) is None else f"diverged at step {result.divergence.step}"
    elif verdict == "DIFFER":
        verdict = f"DIFFER at step {result.steps}"
    return f"cost {cost:.4g} {verdict}".rstrip()


class RunLines:
    """Observer for a stderr that is not a terminal (a log file, CI, a notebook): one line per run
    as it finishes, so that a long job shows its progress without carriage returns.

        moons: 390 steps, cost 0.02594 agree, 0.4 s
    """
    logs = False          # reads no gradients and no evaluations (compare.train.torch_only)

    def __init__(self, stream=None, clock=time.monotonic):
        self.stream = sys.stderr if stream is None else stream
        self.clock = clock

    def on_start(self, run):
        self.name, self.start = run.name, self.clock()

    def on_end(self, run, result):
        self.stream.write(f"{self.name}: {result.steps} steps, {outcome(result)}, "
                          f"{self.clock() - self.start:.1f} s\n")
        self.stream.flush()


def progress_for(quiet=False, stream=None):
    """The observer that shows progress on ``stream`` (stderr): a bar on a terminal, a line per
    finished run elsewhere, nothing when ``quiet``."""
    if quiet:
        return None
    return ProgressBar(stream) if progress_wanted(False, stream) else RunLines(stream)


class ProgressBar:
    """Observer drawing ``name [####----] pct step epoch cost time`` on ``stream``.

    ``columns`` (the line width; default the terminal's, followed as it is resized) can be given
    so that tests need no terminal.
    """

    logs = False          # reads no gradients and no evaluations (compare.train.torch_only)

    def __init__(self, stream=None, min_interval=0.1, bar_width=12, columns=None):
        self.stream = sys.stderr if stream is None else stream
        self.min_interval = min_interval
        self.bar_width = bar_width
        self.columns = columns
        self.bar = None

    def on_start(self, run):
        self.total, self.epochs = total_steps(run), run.spec.epochs
        self.epoch = 0
        self.cost = None
        self.bar = _Bar(total=self.total, desc=f"{run.name:<14}", file=self.stream, ascii="-#",
                        bar_format=BAR_FORMAT.replace("{bar}", f"{{bar:{self.bar_width}}}"),
                        mininterval=self.min_interval, ncols=self.columns, dynamic_ncols=self.columns is None,
                        leave=True)
        self.bar.tail = self._tail

    def on_step(self, run, rec):
        self.epoch, self.cost = rec.epoch, _cost(rec)
        self.bar.update(rec.step - self.bar.n)

    def on_epoch(self, run, rec):
        self.epoch, self.cost = rec.epoch, _cost(rec)

    def on_end(self, run, result):
        self.bar.update(result.steps - self.bar.n)
        final = outcome(result)
        self.bar.tail = lambda: final
        self._finish()

    def on_close(self, run):
        # An error or Ctrl-C: leave the bar as it is and start a fresh line for what follows.
        self._finish()

    def _tail(self):
        parts = []
        if self.total != self.epochs:     # full batch: an epoch is a step, say it once
            parts.append(f"epoch {self.epoch}/{self.epochs}")
        if self.cost is not None:
            parts.append(f"cost {self.cost:.4g}")
        return " ".join(parts)

    def _finish(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
