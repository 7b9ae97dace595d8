"""Each side's state as a checkpoint holds it, and loaded back into either side: the manual side's
parameters, optimizer state and schedule as NumPy arrays; the torch side's as its state_dicts. A
side missing from a checkpoint takes the other side's numbers, converted here.

Running statistics (a batch norm's running_mean, running_var and num_batches_tracked) travel with
the parameters: the manual state's "buffers", the torch state's model state_dict (where torch keeps
them). The dropout masks to come are the state of the Generator they are drawn from (each side's
``masks``, a manual.DropoutMasks; in a lockstep run both sides share one): a checkpoint keeps its
``bit_generator.state`` (``Checkpoint.masks``), so a resumed run draws the masks the unbroken run
would have drawn. A checkpoint written before either was kept loads as before into a network
without them (a dense one); into one with running statistics it is refused, by name."""
import copy
import json
from dataclasses import dataclass

import numpy as np
import torch

from backprop_oracle.compare.errors import UsageError
from backprop_oracle.compare.experiments.spec import ExperimentSpec
from backprop_oracle.compare.lockstep.progress import Progress
from backprop_oracle.compare.sides.sides import load_optimizer_state


class CheckpointError(UsageError):
    """A checkpoint that cannot be read or does not fit the run; the message names the file and the fix."""


@dataclass
class SavedDrift:
    """A difference proven to be rounding before the run was saved, as its report described it."""
    record: dict
    text: str

    @property
    def step(self):
        return self.record.get("step")

    def to_dict(self):
        return self.record

    def describe(self):
        return self.text


@dataclass
class Checkpoint:
    """A checkpoint in memory: the spec, the progress, the batch-order Generator's state, and the
    state of one side or both ({"params", "buffers", "optimizer", "lr", "initial_lr", "last_epoch"} for the
    manual side; {"model", "optimizer", "scheduler"} state_dicts for the torch side)."""
    spec: ExperimentSpec
    progress: Progress
    rng_state: dict
    manual: dict | None = None
    torch: dict | None = None
    path: str = "checkpoint"
    masks: dict | None = None  # the dropout masks' Generator state (bit_generator.state); None: not kept

    def restore(self, run):
        """Give ``run`` (a LockstepRun or TorchRun, its sides built) this checkpoint's state; returns
        the Progress its loop starts from (compare.checkpoints.resume)."""
        from backprop_oracle.compare.checkpoints.resume import restore
        return restore(run, self)

    @property
    def sizes(self):
        return sizes_of(self.manual["params"] if self.manual is not None else self.torch["model"])


def sizes_of(params):
    """The layer sizes (inputs, hidden..., outputs) of an mlp's parameters {"0.weight": (out, in), ...}."""
    weights = sorted((int(k.split(".")[0]), tuple(v.shape)) for k, v in params.items() if k.endswith(".weight"))
    return (weights[0][1][1], *[shape[0] for _, shape in weights])


# ---- each side's state, read and written ----------------------------------------------------------

HYPERPARAMETERS = ("momentum", "betas")      # set on the optimizer by a schedule (onecycle cycles them)


def masks_state(side):
    """The state of the Generator ``side``'s dropout masks are drawn from (JSON-able), or None."""
    masks = getattr(side, "masks", None)
    return None if masks is None else json.loads(json.dumps(masks.rng.bit_generator.state))


def load_masks(side, state):
    """``side``'s dropout masks go on from a saved Generator state (None: as they are)."""
    masks = getattr(side, "masks", None)
    if state is not None and masks is not None:
        masks.rng.bit_generator.state = copy.deepcopy(state)


def manual_state(side):
    """The manual side's parameters, running statistics (``buffers``, num_batches_tracked too),
    optimizer state and schedule, as copies (``scheduler``: its state_dict, numbers only;
    ``hyper``: the momentum or betas a schedule sets)."""
    o = side.optimizer
    return {"params": {n: p.data.copy() for n, p in side.model.named_parameters()},
            "buffers": {n: np.array(b, copy=True) for n, b in side.model.named_buffers()},
            "optimizer": side.optimizer_state(), "lr": float(o.lr),
            "initial_lr": float(o.initial_lr), "last_epoch": int(side.scheduler.last_epoch),
            "scheduler": side.scheduler.state_dict(),
            "hyper": {k: getattr(o, k) for k in HYPERPARAMETERS if hasattr(o, k)}}


def _schedule_from_torch(state):
    """A torch scheduler's state_dict as the manual schedule's state_dict (numbers only)."""
    out = {"last_epoch": int(state["last_epoch"])}
    if "total_steps" in state and "_schedule_phases" in state:
        out["total_steps"] = int(state["total_steps"])
        out["end_steps"] = [float(p["end_step"]) for p in state["_schedule_phases"]]
    if "_schedulers" in state:
        out["schedulers"] = [_schedule_from_torch(s) for s in state["_schedulers"]]
    return out


def _schedule_into_torch(scheduler, state, lr):
    """Give a torch scheduler a manual schedule's state_dict."""
    scheduler.last_epoch = int(state["last_epoch"])
    scheduler._last_lr = [lr]
    if "total_steps" in state and hasattr(scheduler, "_schedule_phases"):
        scheduler.total_steps = int(state["total_steps"])
        for phase, end in zip(scheduler._schedule_phases, state["end_steps"]):
            phase["end_step"] = float(end)
    for child, saved in zip(getattr(scheduler, "_schedulers", []), state.get("schedulers", [])):
        _schedule_into_torch(child, saved, lr)


def torch_state(side):
    """The torch side's state_dicts (model, optimizer, scheduler), on the CPU."""
    model = {k: v.detach().to("cpu", copy=True) for k, v in side.model.state_dict().items()}
    optimizer = side.optimizer.state_dict()
    optimizer["state"] = {i: {k: (v.detach().to("cpu", copy=True) if isinstance(v, torch.Tensor) else v)
                              for k, v in s.items()} for i, s in optimizer["state"].items()}
    return {"model": model, "optimizer": optimizer, "scheduler": side.scheduler.state_dict()}


def _manual_from_torch(state, layout):
    """A torch state as the manual side's: its tensors as float64 arrays (running statistics apart
    from the parameters, num_batches_tracked an int64 count), Adam's step as an int."""
    names = {n for n, _ in layout}
    params = {k: v.detach().to(torch.float64).numpy().copy() for k, v in state["model"].items() if k in names}
    buffers = {k: v.detach().to("cpu").numpy().astype(np.float64 if v.is_floating_point() else np.int64)
               for k, v in state["model"].items() if k not in names}
    by_index = state["optimizer"]["state"]
    optimizer = []
    for i in range(len(layout)):
        s = by_index.get(i, {})
        optimizer.append({k: (int(v.item()) if k == "step" else v.detach().to(torch.float64).numpy().copy())
                          for k, v in s.items() if v is not None})
    group = state["optimizer"]["param_groups"][0]
    return {"params": params, "buffers": buffers, "optimizer": optimizer, "lr": float(group["lr"]),
            "initial_lr": float(group.get("initial_lr", group["lr"])),
            "last_epoch": int(state["scheduler"]["last_epoch"]),
            "scheduler": _schedule_from_torch(state["scheduler"]),
            "hyper": {k: (tuple(float(b) for b in group[k]) if k == "betas" else float(group[k]))
                      for k in HYPERPARAMETERS if k in group}}


def _fail(path, what, fix="save it again, or start afresh without --resume"):
    raise CheckpointError(f"{path}: {what}; {fix}")


def _buffers_of(side, state, path):
    """The saved running statistics for ``side``'s network ({} where it keeps none)."""
    own = dict(side.model.named_buffers())
    if own and "buffers" not in state:
        _fail(path, f"it holds no running statistics ({', '.join(sorted(own))}): it was saved before "
                    "checkpoints kept them", "start afresh without --resume")
    return state.get("buffers", {}) if own else {}


def load_manual(side, state, path="checkpoint"):
    """Give the manual side a saved manual state (copies)."""
    try:
        side.model.load_state_dict({**{k: np.asarray(v, dtype=np.float64) for k, v in state["params"].items()},
                                    **_buffers_of(side, state, path)})
    except (KeyError, ValueError) as e:
        _fail(path, f"its parameters do not fit this network ({e.args[0] if e.args else e})")
    if len(state["optimizer"]) != len(side.optimizer.state):
        _fail(path, f"its optimizer state has {len(state['optimizer'])} entries, the network "
                    f"{len(side.optimizer.state)} parameters")
    dtype = side.model[0].weight.data.dtype
    for own, saved in zip(side.optimizer.state, state["optimizer"]):
        own.clear()
        own.update({k: (int(v) if k == "step" else np.array(v, dtype=dtype)) for k, v in saved.items()})
    side.optimizer.lr = float(state["lr"])
    side.optimizer.initial_lr = float(state["initial_lr"])
    for k, v in state.get("hyper", {}).items():
        if hasattr(side.optimizer, k):
            setattr(side.optimizer, k, tuple(float(b) for b in v) if k == "betas" else float(v))
    side.scheduler.load_state_dict(state.get("scheduler") or {"last_epoch": int(state["last_epoch"])})


def load_torch(side, state, path="checkpoint"):
    """Give the torch side a saved torch state."""
    try:
        side.model.load_state_dict({k: v.to(side.device, side.dtype) for k, v in state["model"].items()})
        side.optimizer.load_state_dict(state["optimizer"])
        side.scheduler.load_state_dict(state["scheduler"])
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        _fail(path, f"its torch state does not fit this network ({str(e).splitlines()[0] if str(e) else type(e).__name__})")


@torch.no_grad()
def load_torch_from_manual(side, state, path="checkpoint"):
    """Give the torch side a saved manual state: the same parameters, optimizer state and schedule."""
    own = dict(side.model.named_parameters())
    if set(own) != set(state["params"]):
        _fail(path, f"its parameters {sorted(state['params'])} are not this network's {sorted(own)}")
    for name, p in own.items():
        value = np.asarray(state["params"][name])
        if value.shape != tuple(p.shape):
            _fail(path, f"its {name} has shape {value.shape}, this network's is {tuple(p.shape)}")
        p.copy_(torch.tensor(value, dtype=side.dtype, device=side.device))
    saved = _buffers_of(side, state, path)
    for name, b in side.model.named_buffers():
        if name not in saved or np.shape(saved[name]) != tuple(b.shape):
            _fail(path, f"its running statistics {sorted(saved)} are not this network's "
                        f"{sorted(n for n, _ in side.model.named_buffers())}")
        b.copy_(torch.tensor(np.asarray(saved[name]), dtype=b.dtype, device=b.device))
    params = list(side.model.parameters())
    side.optimizer.state.clear()
    load_optimizer_state(side.optimizer, params, state["optimizer"], side.dtype, side.device)
    for group in side.optimizer.param_groups:
        group["lr"] = float(state["lr"])
        group["initial_lr"] = float(state["initial_lr"])
        for k, v in state.get("hyper", {}).items():
            if k in group:
                group[k] = tuple(float(b) for b in v) if k == "betas" else float(v)
    _schedule_into_torch(side.scheduler, state.get("scheduler") or {"last_epoch": int(state["last_epoch"])},
                         float(state["lr"]))


def load_into(side, checkpoint):
    """Give ``side`` (manual or torch) its own state from ``checkpoint``, or the other side's where the
    file holds only that one."""
    c, path = checkpoint, checkpoint.path
    load_masks(side, c.masks)
    if side.name == "manual":
        state = c.manual if c.manual is not None else _manual_from_torch(c.torch, side.layout)
        load_manual(side, state, path)
    elif c.torch is not None:
        load_torch(side, c.torch, path)
    else:
        load_torch_from_manual(side, c.manual, path)
