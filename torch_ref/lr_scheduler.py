"""torch.optim.lr_scheduler schedules under the registry keys of manual/lr_scheduler.py, stepped once per epoch."""
from torch.optim.lr_scheduler import LambdaLR, StepLR, ExponentialLR


def ConstantLR(optimizer):
    """lr_t = lr_0 (no schedule)."""
    return LambdaLR(optimizer, lambda epoch: 1.0)


SCHEDULERS = {
    "constant": ConstantLR,
    "step": StepLR,
    "exponential": ExponentialLR,
}


def make_scheduler(name, optimizer, **kwargs):
    """Build the schedule registered under ``name``."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown schedule {name!r}; choose one of: {', '.join(SCHEDULERS)}")
    try:
        return SCHEDULERS[name](optimizer, **kwargs)
    except TypeError as e:
        raise ValueError(f"schedule {name!r}: {e}") from None
