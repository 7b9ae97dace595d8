"""Learning-rate schedules mirroring torch.optim.lr_scheduler.

A schedule is stepped once per epoch (``interval = "epoch"``) or once per optimizer step
(``interval = "step"``: ``onecycle``); ``interval(name)`` tells which. Like torch's, each rate is
worked out from the previous one (its ``get_lr``), so both sides compute the same numbers.
"Annealing the learning rate" in the seeds is ``exponential`` (or ``step``) decay.
Registry keys are shared with torch_ref/lr_scheduler.py.
"""
import math
from bisect import bisect_right
from collections import Counter


class LRScheduler:
    """Calls ``get_lr`` at every ``step()`` and writes the result into ``optimizer.lr``.
    ``last_epoch`` counts the steps taken (epochs, or batches for a per-step schedule)."""
    interval = "epoch"

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.last_epoch = 0

    def _initial_step(self):
        """torch's first step at construction: the rate of epoch 0 (changed only by linear and onecycle)."""
        self.last_epoch = 0
        self.optimizer.lr = self.get_lr()

    def step(self):
        self.last_epoch += 1
        self.optimizer.lr = self.get_lr()

    def restart(self):
        """Start again at epoch 0 from the initial rate (torch's ``_update_lr(0)``, as SequentialLR
        does at a milestone): the closed form at epoch 0."""
        self.last_epoch = 0
        self.optimizer.lr = self.optimizer.initial_lr

    def get_last_lr(self):
        return self.optimizer.lr

    def state_dict(self):
        """What a checkpoint keeps (numbers only); the rate itself is the optimizer's."""
        return {"last_epoch": self.last_epoch}

    def load_state_dict(self, state):
        self.last_epoch = int(state["last_epoch"])


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
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
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
        if self.last_epoch == 0:
            return self.optimizer.lr
        return self.optimizer.lr * self.gamma


class MultiStepLR(LRScheduler):
    """lr_t = lr_{t-1} · gamma^k when t is a milestone k times, else lr_{t-1}: lr_0 · gamma^(number
    of milestones <= t) (torch.optim.lr_scheduler.MultiStepLR)."""

    def __init__(self, optimizer, milestones, gamma=0.1):
        super().__init__(optimizer)
        self.milestones, self.gamma = Counter(int(m) for m in milestones), float(gamma)

    def get_lr(self):
        if self.last_epoch not in self.milestones:
            return self.optimizer.lr
        return self.optimizer.lr * self.gamma ** self.milestones[self.last_epoch]


class CosineAnnealingLR(LRScheduler):
    """lr_t = eta_min + (lr_0 - eta_min) · (1 + cos(π t / T_max)) / 2, worked out from lr_{t-1} as
    torch does (torch.optim.lr_scheduler.CosineAnnealingLR):

        lr_t = eta_min + (lr_{t-1} - eta_min) · (1 + cos(π t / T_max)) / (1 + cos(π (t - 1) / T_max))

    and, where that would divide by 0 (t - 1 - T_max a multiple of 2 T_max: the bottom of the
    curve), lr_t = lr_{t-1} + (lr_0 - eta_min) · (1 - cos(π / T_max)) / 2. After T_max the rate
    climbs back (a cosine, not a restart)."""

    def __init__(self, optimizer, T_max, eta_min=0.0):
        super().__init__(optimizer)
        self.T_max, self.eta_min = T_max, float(eta_min)

    def get_lr(self):
        t, T, lr, eta = self.last_epoch, self.T_max, self.optimizer.lr, self.eta_min
        if t == 0:
            return lr
        if (t - 1 - T) % (2 * T) == 0:
            return lr + (self.optimizer.initial_lr - eta) * (1 - math.cos(math.pi / T)) / 2
        return (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T)) * (lr - eta) + eta


class LinearLR(LRScheduler):
    """Linear warm-up: lr_t = lr_0 · (start_factor + (end_factor - start_factor) · min(t, total_iters)
    / total_iters), worked out from lr_{t-1} as torch does (torch.optim.lr_scheduler.LinearLR):

        lr_0 = lr · start_factor ;  lr_t = lr_{t-1} · (1 + (end_factor - start_factor) /
               (total_iters · start_factor + (t - 1) · (end_factor - start_factor)))   for 1 <= t <= total_iters

    and lr_t = lr_{t-1} after total_iters."""

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5):
        super().__init__(optimizer)
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError("Starting multiplicative factor expected to be greater than 0 and less or equal to 1.")
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError("Ending multiplicative factor expected to be between 0 and 1.")
        self.start_factor, self.end_factor, self.total_iters = float(start_factor), float(end_factor), total_iters
        self._initial_step()

    def get_lr(self):
        t, lr = self.last_epoch, self.optimizer.lr
        if t == 0:
            return lr * self.start_factor
        if t > self.total_iters:
            return lr
        d = self.end_factor - self.start_factor
        return lr * (1.0 + d / (self.total_iters * self.start_factor + (t - 1) * d))

    def restart(self):
        self.last_epoch = 0
        self.optimizer.lr = self.optimizer.initial_lr * self.start_factor


class OneCycleLR(LRScheduler):
    """The 1cycle policy, stepped after every optimizer step (torch.optim.lr_scheduler.OneCycleLR):
    from lr_0 = max_lr / div_factor up to max_lr over the first pct_start of the total_steps, then
    down to lr_0 / final_div_factor, each phase annealed from start to end over its fraction p:

        cos:    end + (start - end) · (1 + cos(π p)) / 2
        linear: start + (end - start) · p

    The phases end at step pct_start · total_steps - 1 and total_steps - 1 (three_phase: up,
    back down to lr_0 at 2 · pct_start · total_steps - 2, then to the minimum). With cycle_momentum
    the momentum (SGD's, RMSprop's, or Adam's β1) runs the other way, max_momentum to base_momentum
    and back. ``max_lr`` None is the optimizer's learning rate; the total is total_steps, or epochs ·
    steps_per_epoch."""
    interval = "step"

    def __init__(self, optimizer, max_lr=None, total_steps=None, epochs=None, steps_per_epoch=None, pct_start=0.3,
                 anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85, max_momentum=0.95,
                 div_factor=25.0, final_div_factor=1e4, three_phase=False):
        super().__init__(optimizer)
        if total_steps is not None:
            if not isinstance(total_steps, int) or total_steps <= 0:
                raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
            self.total_steps = total_steps
        elif epochs is not None and steps_per_epoch is not None:
            if not isinstance(epochs, int) or epochs <= 0:
                raise ValueError(f"Expected positive integer epochs, but got {epochs}")
            if not isinstance(steps_per_epoch, int) or steps_per_epoch <= 0:
                raise ValueError(f"Expected positive integer steps_per_epoch, but got {steps_per_epoch}")
            self.total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
        n = self.total_steps
        if three_phase:
            self.phases = [(float(pct_start * n) - 1, "initial", "max", "max_m", "base_m"),
                           (float(2 * pct_start * n) - 2, "max", "initial", "base_m", "max_m"),
                           (n - 1, "initial", "min", "max_m", "max_m")]
        else:
            self.phases = [(float(pct_start * n) - 1, "initial", "max", "max_m", "base_m"),
                           (n - 1, "max", "min", "base_m", "max_m")]
        if pct_start < 0 or pct_start > 1 or not isinstance(pct_start, float):
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
        self.anneal_strategy = anneal_strategy
        max_lr = optimizer.lr if max_lr is None else float(max_lr)
        self.values = {"initial": max_lr / div_factor, "max": max_lr}
        self.values["min"] = self.values["initial"] / final_div_factor
        optimizer.initial_lr = self.values["initial"]
        self.cycle_momentum = bool(cycle_momentum)
        if self.cycle_momentum:
            if not (hasattr(optimizer, "momentum") or hasattr(optimizer, "betas")):
                raise ValueError("optimizer must support momentum or beta1 with `cycle_momentum` option enabled")
            self.use_beta1 = hasattr(optimizer, "betas")
            self.values["max_m"], self.values["base_m"] = float(max_momentum), float(base_momentum)
            self._set_momentum(self.values["max_m"])
        self._initial_step()

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _set_momentum(self, value):
        if self.use_beta1:
            self.optimizer.betas = (value, *self.optimizer.betas[1:])
        else:
            self.optimizer.momentum = value

    def get_lr(self):
        t = self.last_epoch
        if t > self.total_steps:
            raise ValueError(f"Tried to step {t} times. The specified number of total steps is {self.total_steps}")
        start_step = 0.0
        for i, (end_step, lr_from, lr_to, m_from, m_to) in enumerate(self.phases):
            if t <= end_step or i == len(self.phases) - 1:
                pct = (t - start_step) / (end_step - start_step)
                if self.cycle_momentum:
                    self._set_momentum(self._anneal(self.values[m_from], self.values[m_to], pct))
                return self._anneal(self.values[lr_from], self.values[lr_to], pct)
            start_step = end_step

    def state_dict(self):
        return {"last_epoch": self.last_epoch, "total_steps": self.total_steps,
                "end_steps": [p[0] for p in self.phases]}

    def load_state_dict(self, state):
        """The step count and the length, and the momentum they imply (the rate is the optimizer's)."""
        self.last_epoch = int(state["last_epoch"])
        if "total_steps" in state:
            self.total_steps = int(state["total_steps"])
            self.phases = [(float(end), *p[1:]) for end, p in zip(state["end_steps"], self.phases)]
        if self.cycle_momentum:
            keep = self.optimizer.lr
            self.optimizer.lr = self.get_lr()     # sets the momentum of this step, as torch's last step did
            self.optimizer.lr = keep


class SequentialLR(LRScheduler):
    """One schedule after another (torch.optim.lr_scheduler.SequentialLR): ``schedulers[i]`` runs
    from epoch ``milestones[i - 1]`` (restarted there at its epoch 0, from the initial rate) until
    ``milestones[i]``. A warm-up then a decay: schedulers = [linear, cosine], milestones = [w].

    ``schedulers`` are schedules built on the same optimizer, or tables ``{"schedule": key, ...its
    arguments}`` built here (the form an experiment file gives)."""

    def __init__(self, optimizer, schedulers, milestones):
        super().__init__(optimizer)
        built = []
        for i, s in enumerate(schedulers):
            if isinstance(s, dict):
                s = _child(optimizer, s, i)
            if s.optimizer is not optimizer:
                raise ValueError(f"SequentialLR expects all schedulers to belong to the same optimizer, but got "
                                 f"scheduler {type(s).__name__} at index {i} on another one")
            built.append(s)
        if len(built) < 1:
            raise ValueError("SequentialLR expects at least one scheduler, but got no scheduler.")
        milestones = [int(m) for m in milestones]
        if len(milestones) != len(built) - 1:
            raise ValueError("Sequential Schedulers expects number of schedulers provided to be one more than the "
                             f"number of milestone points, but got number of schedulers {len(built)} and the "
                             f"number of milestones to be equal to {len(milestones)}")
        self.schedulers, self.milestones = built, milestones
        optimizer.lr = optimizer.initial_lr          # undo what the schedules did when they were made
        for s in built:
            s.last_epoch -= 1
        built[bisect_right(milestones, 0)]._initial_step()

    def step(self):
        self.last_epoch += 1
        i = bisect_right(self.milestones, self.last_epoch)
        if i > 0 and self.milestones[i - 1] == self.last_epoch:
            self.schedulers[i].restart()
        else:
            self.schedulers[i].step()

    def state_dict(self):
        return {"last_epoch": self.last_epoch, "schedulers": [s.state_dict() for s in self.schedulers]}

    def load_state_dict(self, state):
        self.last_epoch = int(state["last_epoch"])
        for s, saved in zip(self.schedulers, state.get("schedulers", [])):
            s.load_state_dict(saved)


def _child(optimizer, table, index):
    """A schedule of a SequentialLR from its table {"schedule": key, ...arguments}."""
    table = dict(table)
    name = table.pop("schedule", None)
    if name not in SCHEDULERS or name == "sequential" or SCHEDULERS[name].interval != "epoch":
        choices = ", ".join(k for k, v in SCHEDULERS.items() if k != "sequential" and v.interval == "epoch")
        raise ValueError(f"SequentialLR: schedulers[{index}] needs \"schedule\": one of {choices}, got {name!r}")
    try:
        return SCHEDULERS[name](optimizer, **table)
    except TypeError as e:
        raise ValueError(f"SequentialLR: schedulers[{index}] ({name}): {e}") from None


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


def interval(name):
    """"epoch" or "step": when the schedule ``name`` is stepped."""
    return SCHEDULERS[name].interval


def make_scheduler(name, optimizer, **kwargs):
    """Build the schedule registered under ``name``."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown schedule {name!r}; choose one of: {', '.join(SCHEDULERS)}")
    try:
        return SCHEDULERS[name](optimizer, **kwargs)
    except TypeError as e:
        raise ValueError(f"schedule {name!r}: {e}") from None
