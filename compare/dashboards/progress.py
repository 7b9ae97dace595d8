"""A one-line progress bar for a lockstep run, as a LockstepRun observer, written to stderr.

    moons          [#####-------]  43% step 168/390 epoch 13/30 cost 0.0692 0.4s
    or-gate        [############] 100% step 5000/5000 cost 0.0005276 agree 3.7s

It redraws at most ``1 / min_interval`` times a second (a step takes well under a millisecond,
and a terminal redrawn at every one of them would cost more than the step), and ends with the
verdict on the same line. Shown only on a terminal: ``progress_wanted`` says when.
"""
import math
import shutil
import sys
import time


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


class ProgressBar:
    """Observer drawing ``name [####----] pct step epoch cost time`` on ``stream``.

    ``clock`` (seconds, monotonic) and ``columns`` (the line width; default the terminal's)
    can be given so that tests need no terminal and no waiting.
    """

    def __init__(self, stream=None, min_interval=0.1, bar_width=12, columns=None, clock=time.monotonic):
        self.stream = sys.stderr if stream is None else stream
        self.min_interval = min_interval
        self.bar_width = bar_width
        self.columns = columns
        self.clock = clock
        self.draws = 0            # how many times the line was written (tests check the rate)
        self._drawn = 0           # length of the line now on screen; 0: nothing to finish
        self._last = None

    def on_start(self, run):
        self.name, self.total, self.epochs = run.name, total_steps(run), run.spec.epochs
        self.start = self.clock()
        self.step = self.epoch = 0
        self.cost = None
        self._draw(self._line())

    def on_step(self, run, rec):
        self.step, self.epoch, self.cost = rec.step, rec.epoch, rec.cost_manual
        if self.clock() - self._last >= self.min_interval:
            self._draw(self._line())

    def on_epoch(self, run, rec):
        self.epoch, self.cost = rec.epoch, rec.cost_manual

    def on_end(self, run, result):
        self.step = result.steps
        verdict = "agree" if result.passed else f"DIFFER at step {result.steps}"
        self._draw(self._line(tail=f"cost {result.final_cost_manual:.4g} {verdict}"))
        self._finish()

    def on_close(self, run):
        # An error or Ctrl-C: leave the bar as it is and start a fresh line for what follows.
        self._finish()

    def _line(self, tail=None):
        frac = min(1.0, self.step / self.total) if self.total else 1.0
        filled = int(frac * self.bar_width)
        bar = "#" * filled + "-" * (self.bar_width - filled)
        parts = [f"{self.name:<14} [{bar}] {100 * frac:3.0f}%", f"step {self.step}/{self.total}"]
        if tail is None:
            if self.total != self.epochs:     # full batch: an epoch is a step, say it once
                parts.append(f"epoch {self.epoch}/{self.epochs}")
            if self.cost is not None:
                parts.append(f"cost {self.cost:.4g}")
        else:
            parts.append(tail)
        parts.append(f"{self.clock() - self.start:.1f}s")
        return " ".join(parts)

    def _draw(self, line):
        columns = self.columns or shutil.get_terminal_size((80, 24)).columns
        line = line[:max(10, columns - 1)]      # a wrapped line would not be overwritten by \r
        self.stream.write("\r" + line + " " * max(0, self._drawn - len(line)))
        self.stream.flush()
        self._drawn = max(1, len(line))
        self._last = self.clock()
        self.draws += 1

    def _finish(self):
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = 0
