"""torch.optim.lr_scheduler schedules under the registry keys of manual/lr_scheduler.py.

``interval(name)`` says when each is stepped: once per epoch, or once per optimizer step
("onecycle"). Each entry's ``__name__`` is torch's class name.
"""
from torch.optim import lr_scheduler
from torch.optim.lr_scheduler import (LambdaLR, StepLR, ExponentialLR, MultiStepLR, CosineAnnealingLR, LinearLR)


def ConstantLR(optimizer):
    """lr_t = lr_0 (no schedule): torch's LambdaLR(lambda epoch: 1.0)."""
    return LambdaLR(optimizer, lambda epoch: 1.0)


def OneCycleLR(optimizer, max_lr=None, **kwargs):
    """torch's OneCycleLR; ``max_lr`` None is the optimizer's learning rate (as on the manual side)."""
    return lr_scheduler.OneCycleLR(optimizer, optimizer.param_groups[0]["lr"] if max_lr is None else max_lr, **kwargs)


def SequentialLR(optimizer, schedulers, milestones):
    """torch's SequentialLR; ``schedulers`` are schedules on ``optimizer`` or tables
    {"schedule": key, ...its arguments} built here (as on the manual side)."""
    built = []
    for i, s in enumerate(schedulers):
        if isinstance(s, dict):
            s = dict(s)
            name = s.pop("schedule", None)
            if name not in SCHEDULERS or INTERVALS.get(name, "epoch") != "epoch" or name == "sequential":
                choices = ", ".join(k for k in SCHEDULERS if k != "sequential" and k not in INTERVALS)
                raise ValueError(f"SequentialLR: schedulers[{i}] needs \"schedule\": one of {choices}, got {name!r}")
            try:
                s = SCHEDULERS[name](optimizer, **s)
            except TypeError as e:
                raise ValueError(f"SequentialLR: schedulers[{i}] ({name}): {e}") from None
        built.append(s)
    return lr_scheduler.SequentialLR(optimizer, built, list(milestones))


SCHEDULERS = {
    "constant": ConstantLR,
    "step": StepLR,
    "exponential": ExponentialLR,
    "multistep": MultiStepLR,
    "cosine": CosineAnnealingLR,
    "linear": LinearLR,
    "onecycle": OneCycleLR,
    "sequential": SequentialLR,
}
INTERVALS = {"onecycle": "step"}        # the others are stepped once per epoch


def interval(name):
    """"epoch" or "step": when the schedule ``name`` is stepped."""
    return INTERVALS.get(name, "epoch")


def make_scheduler(name, optimizer, **kwargs):
    """Build the schedule registered under ``name``."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown schedule {name!r}; choose one of: {', '.join(SCHEDULERS)}")
    try:
        return SCHEDULERS[name](optimizer, **kwargs)
    except TypeError as e:
        raise ValueError(f"schedule {name!r}: {e}") from None


def torch_name(name):
    """torch's name of the schedule registered under ``name``: "torch.optim.lr_scheduler.OneCycleLR"."""
    if name == "constant":
        return "torch.optim.lr_scheduler.LambdaLR(lambda epoch: 1.0)"
    return f"torch.optim.lr_scheduler.{SCHEDULERS[name].__name__}"
