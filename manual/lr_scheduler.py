"""Learning-rate schedules, stepped once per epoch, mirroring torch.optim.lr_scheduler.

"Annealing the learning rate" in the seeds is ``exponential`` (or ``step``) decay.
Registry keys are shared with torch_ref/lr_scheduler.py.
"""


class LRScheduler:
    """Calls ``get_lr`` at every ``step()`` and writes the result into ``optimizer.lr``."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.last_epoch = 0

    def step(self):
        self.last_epoch += 1
        self.optimizer.lr = self.get_lr()

    def get_last_lr(self):
        return self.optimizer.lr


class ConstantLR(LRScheduler):
    """lr_t = lr_0 (no schedule)."""

    def get_lr(self):
        return self.optimizer.lr


class StepLR(LRScheduler):
    """lr_t = lr_{t-1} · gamma when t is a multiple of step_size, else lr_{t-1} (torch.optim.lr_scheduler.StepLR)."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        super().__init__(optimizer)
        if int(step_size) < 1:
            raise ValueError(f"StepLR: step_size must be a positive integer, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def get_lr(self):
        if self.last_epoch % self.step_size != 0:
            return self.optimizer.lr
        return self.optimizer.lr * self.gamma


class ExponentialLR(LRScheduler):
    """lr_t = lr_{t-1} · gamma = lr_0 · gamma^t (torch.optim.lr_scheduler.ExponentialLR)."""

    def __init__(self, optimizer, gamma):
        super().__init__(optimizer)
        if not gamma > 0:
            raise ValueError(f"ExponentialLR: gamma must be positive, got {gamma}")
        self.gamma = float(gamma)

    def get_lr(self):
        return self.optimizer.lr * self.gamma


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
