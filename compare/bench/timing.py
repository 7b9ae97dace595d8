"""Timings with their spread, measured by interleaved repeats: every contender runs once per round,
so a machine that slows down for a while slows all of them alike and the ratios stay honest."""
import contextlib
import statistics
import time
from dataclasses import dataclass

# "wall": elapsed time (what a user waits); "cpu": this process's CPU time, which other programs
# on a busy machine do not inflate (on one thread the two agree on an idle machine).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = {"now": time.perf_counter}


@contextlib.contextmanager
def clock(name):
    """Time with CLOCKS[name] inside the block."""
    previous = _clock["now"]
    _clock["now"] = CLOCKS[name]
    try:
        yield
    finally:
        _clock["now"] = previous


def now():
    return _clock["now"]()


@dataclass(frozen=True)
class Spread:
    """Seconds over repeats: the smallest, the median and the largest."""
    min: float
    median: float
    max: float
    repeats: int

    @classmethod
    def of(cls, seconds):
        seconds = list(seconds)
        return cls(min(seconds), statistics.median(seconds), max(seconds), len(seconds))

    def to_dict(self):
        return {"min": self.min, "median": self.median, "max": self.max, "repeats": self.repeats}

    def ms(self, scale=1.0):
        """"median [min–max]" in milliseconds (times ``scale``, e.g. 1 / steps for a time per step)."""
        k = 1e3 * scale
        return f"{self.median * k:.3g} [{self.min * k:.3g}-{self.max * k:.3g}]"


def once(fn):
    """Seconds one call of ``fn`` takes."""
    start = now()
    fn()
    return now() - start


def interleaved(contenders, repeats, warmup=1):
    """{name: Spread} of every contender, run in turn ``repeats`` rounds after ``warmup`` untimed
    rounds. ``contenders[name]()`` prepares a fresh start (builds models, loads data) and returns
    the work to time, a callable without arguments: only the work is timed."""
    seconds = {name: [] for name in contenders}
    for round_ in range(warmup + repeats):
        for name, prepare in contenders.items():
            took = once(prepare())
            if round_ >= warmup:
                seconds[name].append(took)
    return {name: Spread.of(s) for name, s in seconds.items()}


def ratio(a, b):
    """a / b of two medians, 0 when b is 0."""
    return a / b if b > 0 else 0.0
