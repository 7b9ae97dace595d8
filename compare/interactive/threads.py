"""How many threads torch and NumPy's BLAS use while the networks here run: one each.

The networks are tiny (a matrix product is microseconds): a second thread costs more in hand-over
than it saves, and on a busy machine the waiting threads made each step 2 to 6 times slower
(measured: 1.3 ms against 3.6 to 21 ms a step for the spiral network). The command line
(compare.cli.runner), ``run_lockstep``, ``train_torch`` on the CPU and the gradient checks all run
inside ``single_threaded``; the caller's thread counts are restored afterwards, also on an error.
"""
import functools
from contextlib import contextmanager

import torch
from threadpoolctl import threadpool_limits


@contextmanager
def single_threaded():
    """Run NumPy's BLAS and torch on one thread each, then restore both."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(previous)


def runs_single_threaded(fn):
    """Decorator: ``fn`` runs inside ``single_threaded`` (the command line's thread count)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with single_threaded():
            return fn(*args, **kwargs)
    return wrapper
