"""Check a hand-written optimizer step or learning-rate schedule against torch.optim and
torch.optim.lr_scheduler, step by step in float64, with the first wrong step and parameter named
and, where a variant of torch's rule reproduces your numbers, the cause.

    from backprop_oracle.compare.updates import check_optimizer, check_schedule

Imports compare.verdict (tolerances, diff), compare.errors, compare.tables, compare.files (JSON), compare.interactive (HTML,
thread counts), manual and torch;
never the gradient checks, the lockstep run or the command line (compare.check and compare.cli
import this room, not the other way round). The names below load on first use.

    optimizer    check_optimizer, assert_optimizer_matches     schedule   check_schedule, assert_schedule_matches
    rules        torch's update rules in NumPy, with the variants that name a cause
    forms        the shapes a user's rule comes in (a function with a state, CS231n's config, an object, a class)
    result       UpdateResult, StepCheck and the report
"""
_PUBLIC = {"check_optimizer": "optimizer", "assert_optimizer_matches": "optimizer",
           "check_schedule": "schedule", "assert_schedule_matches": "schedule",
           "UpdateResult": "result"}

__all__ = list(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'backprop_oracle.compare.updates' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(f"backprop_oracle.compare.updates.{_PUBLIC[name]}"), name)
