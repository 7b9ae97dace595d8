"""A one-line progress bar for a lockstep run, as a LockstepRun observer, drawn by tqdm on stderr
(in a Jupyter kernel with ipywidgets, tqdm.auto's widget: one output, redrawn in place).

    moons          [#####-------]  43% step 168/390 epoch 13/30 cost 0.0692 0.4s
    or-gate        [############] 100% step 5000/5000 cost 0.0005276 agree 3.7s

It redraws at most ``1 / min_interval`` times a second (a step takes well under a millisecond,
and a terminal redrawn at every one of them would cost more than the step; tqdm checks the clock
only every few steps), and ends with the verdict on the same line. Shown only on a terminal or
in a notebook: ``progress_for`` says when. The command line and the Python API (``run_lockstep``,
``train_torch``) use the same observers; the API shows them only for a run longer than 2 s.
"""
import math
import sys
import time
import warnings

from tqdm import tqdm

API_PROGRESS_DELAY = 2.0   # seconds: the Python API shows no progress for a run that ends sooner
BAR_FORMAT = "{desc} [{bar}] {percentage:3.0f}% step {n}/{total} {tail} {elapsed_s:.1f}s"


class _Tail:
    """Mixed into a tqdm class: a ``{tail}`` field made by ``self.tail()`` only when the line is
    drawn, so that a step that draws nothing formats nothing."""
    tail = staticmethod(lambda: "")

    @property
    def format_dict(self):
        return {**super().format_dict, "tail": self.tail()}


class _Bar(_Tail, tqdm):
    pass


def notebook_bar_class():
    """tqdm.auto's widget bar (with ``{tail}``) when this runs in a Jupyter kernel that has
    ipywidgets, else None. Without ipywidgets tqdm.auto would fall back to carriage returns on
    stderr, which a notebook keeps as one output per redraw: then a line per run is shown instead."""
    if "ipykernel.zmqshell" not in sys.modules and "IPython.utils._process_emscripten" not in sys.modules:
        return None                          # not in a kernel: do not import IPython for nothing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # tqdm's "experimental" and "no ipywidgets" warnings
        from tqdm.auto import tqdm as auto
        from tqdm.notebook import tqdm as widget
    if not issubclass(auto, widget):
        return None
    return type("_WidgetBar", (_Tail, auto), {})


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
    """Observer for a stderr that is not a terminal (a log file, CI, a notebook without
    ipywidgets): one line per run as it finishes, so that a long job shows its progress without
    carriage returns; with ``delay`` only for a run that took at least that many seconds.

        moons: 390 steps, cost 0.02594 agree, 0.4 s
    """
    logs = False          # reads no gradients and no evaluations (compare.train.torch_only)

    def __init__(self, stream=None, clock=time.monotonic, delay=0.0):
        self.stream = sys.stderr if stream is None else stream
        self.clock = clock
        self.delay = delay

    def on_start(self, run):
        self.name, self.start = run.name, self.clock()

    def on_end(self, run, result):
        seconds = self.clock() - self.start
        if seconds < self.delay:
            return
        self.stream.write(f"{self.name}: {result.steps} steps, {outcome(result)}, {seconds:.1f} s\n")
        self.stream.flush()


def progress_for(quiet=False, stream=None, delay=0.0):
    """The observer that shows progress: a widget in a Jupyter kernel with ipywidgets, a bar on
    ``stream`` (stderr) when it is a terminal, a line per finished run elsewhere, nothing when
    ``quiet``. With ``delay`` (seconds) nothing is shown for a run that ends sooner."""
    if quiet:
        return None
    widget = notebook_bar_class() if stream is None else None
    if widget is not None:
        return ProgressBar(delay=delay, bar_class=widget)
    return ProgressBar(stream, delay=delay) if progress_wanted(False, stream) else RunLines(stream, delay=delay)


class ProgressBar:
    """Observer drawing ``name [####----] pct step epoch cost time`` on ``stream``.

    ``columns`` (the line width; default the terminal's, followed as it is resized) can be given
    so that tests need no terminal. ``delay``: the bar appears only once a run has taken that
    many seconds. ``bar_class``: the tqdm class that draws it (``notebook_bar_class()`` for the
    widget; its bar takes the width the notebook gives it).
    """

    logs = False          # reads no gradients and no evaluations (compare.train.torch_only)

    def __init__(self, stream=None, min_interval=0.1, bar_width=12, columns=None, delay=0.0, bar_class=None):
        self.stream = sys.stderr if stream is None else stream
        self.min_interval = min_interval
        self.bar_width = bar_width
        self.columns = columns
        self.delay = delay
        self.bar_class = bar_class or _Bar
        self.bar = None

    def on_start(self, run):
        self.total, self.epochs = total_steps(run), run.spec.epochs
        self.epoch = 0
        self.cost = None
        widget = not issubclass(self.bar_class, _Bar)
        bar_format = BAR_FORMAT if widget else BAR_FORMAT.replace("{bar}", f"{{bar:{self.bar_width}}}")
        self.bar = self.bar_class(total=self.total, desc=f"{run.name:<14}", file=self.stream, ascii="-#",
                                  bar_format=bar_format, mininterval=self.min_interval, ncols=self.columns,
                                  dynamic_ncols=self.columns is None and not widget, leave=True, delay=self.delay)
        self.bar.tail = self._tail

    def on_step(self, run, rec):
        self.epoch, self.cost = rec.epoch, _cost(rec)
        self.bar.update(rec.step - self.bar.n)

    def reads_sides_at(self, step):
        return False          # only the records (compare.lockstep.blocks)

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
