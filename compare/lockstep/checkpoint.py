"""Checkpoints: a run saved at the end of an epoch and resumed exactly where it stopped.

A checkpoint holds everything the rest of the run depends on: each side's parameters, optimizer
state (momentum buffers, Adam's moments and step) and schedule (the learning rate and the epochs
counted), the step and the epoch, the state of the Generator that draws the batch order, the
record of the steps so far (the cost curves, the largest differences, the rounding proven) and
the spec, as JSON text. A resumed run therefore takes the very batches, and computes the very
numbers, that the run would have computed had it never stopped.

Two formats, one per side, neither of which can run code when read:

    FILE.npz  the manual side's arrays (numpy.savez), read with ``allow_pickle=False``; a lockstep
              run's (``run --save``) also holds the torch side's own state as the bytes of its
              ``torch.save`` file (the array "torch.pt"), so that both sides resume bit for bit.
    FILE.pt   the torch side's ``state_dict``s (model, optimizer, scheduler) with the same record,
              written by ``torch.save`` and read by ``torch.load(weights_only=True)``, which
              refuses any object other than tensors, numbers, strings and containers of them.

Either loads into either side: a side missing from a file takes the other side's numbers
(``convert`` writes one format from the other). Files are written whole or not at all
(compare.files.write_atomic): a crash during a save leaves the previous file.
"""
import hashlib
import io
import json
import math
import os
import pickle
import zipfile
from dataclasses import dataclass, field, fields

import numpy as np
import torch

from backprop_oracle.compare.errors import SpecError, UsageError
from backprop_oracle.compare.experiments.spec import ExperimentSpec
from backprop_oracle.compare.files import write_atomic
from backprop_oracle.compare.lockstep.sides import ManualSide, TorchSide, load_optimizer_state

FORMAT = "backprop-oracle checkpoint 1"
EXTENSIONS = (".npz", ".pt")
# Spec fields a resumed run may change: how long it trains, and where the torch side runs.
RESUMABLE = ("epochs", "device")


class CheckpointError(UsageError):
    """A checkpoint that cannot be read or does not fit the run; the message names the file and the fix."""


# ---- what a run carries from step to step ---------------------------------------------------------

def _no_maxima():
    return dict(grad_abs=0.0, grad_rel=0.0, param_abs=0.0, cost_abs=0.0)


CURVES = ("step_m", "step_t", "epoch_m", "epoch_t")


@dataclass
class Progress:
    """Where a run stands at the end of an epoch: what its loop carries into the next one."""
    step: int = 0                  # steps taken
    epoch: int = 0                 # epochs completed
    first_cost: float | None = None   # the divergence rule's reference (compare.lockstep.divergence)
    last_finite: float | None = None
    maxima: dict = field(default_factory=_no_maxima)   # the largest differences so far (lockstep)
    curves: dict = field(default_factory=lambda: {k: [] for k in CURVES})   # step_m, step_t, epoch_m, epoch_t
    drifts: list = field(default_factory=list)   # differences proven to be rounding (Mismatch or SavedDrift)
    compared: bool = True          # every step so far was compared on both sides (False after a torch-only run)

    def snapshot(self):
        """A copy that later steps of the run do not change."""
        return Progress(self.step, self.epoch, self.first_cost, self.last_finite, dict(self.maxima),
                        {k: list(v) for k, v in self.curves.items()}, list(self.drifts), self.compared)


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
    state of one side or both ({"params", "optimizer", "lr", "initial_lr", "last_epoch"} for the
    manual side; {"model", "optimizer", "scheduler"} state_dicts for the torch side)."""
    spec: ExperimentSpec
    progress: Progress
    rng_state: dict
    manual: dict | None = None
    torch: dict | None = None
    path: str = "checkpoint"

    @property
    def sizes(self):
        return sizes_of(self.manual["params"] if self.manual is not None else self.torch["model"])


def sizes_of(params):
    """The layer sizes (inputs, hidden..., outputs) of an mlp's parameters {"0.weight": (out, in), ...}."""
    weights = sorted((int(k.split(".")[0]), tuple(v.shape)) for k, v in params.items() if k.endswith(".weight"))
    return (weights[0][1][1], *[shape[0] for _, shape in weights])


# ---- each side's state, read and written ----------------------------------------------------------

def manual_state(side):
    """The manual side's parameters, optimizer state and schedule, as copies."""
    return {"params": {n: p.data.copy() for n, p in side.model.named_parameters()},
            "optimizer": side.optimizer_state(), "lr": float(side.optimizer.lr),
            "initial_lr": float(side.optimizer.initial_lr), "last_epoch": int(side.scheduler.last_epoch)}


def torch_state(side):
    """The torch side's state_dicts (model, optimizer, scheduler), on the CPU."""
    model = {k: v.detach().to("cpu", copy=True) for k, v in side.model.state_dict().items()}
    optimizer = side.optimizer.state_dict()
    optimizer["state"] = {i: {k: (v.detach().to("cpu", copy=True) if isinstance(v, torch.Tensor) else v)
                              for k, v in s.items()} for i, s in optimizer["state"].items()}
    return {"model": model, "optimizer": optimizer, "scheduler": side.scheduler.state_dict()}


def _manual_from_torch(state, layout):
    """A torch state as the manual side's: its tensors as float64 arrays, Adam's step as an int."""
    params = {k: v.detach().to(torch.float64).numpy().copy() for k, v in state["model"].items()}
    by_index = state["optimizer"]["state"]
    optimizer = []
    for i in range(len(layout)):
        s = by_index.get(i, {})
        optimizer.append({k: (int(v.item()) if k == "step" else v.detach().to(torch.float64).numpy().copy())
                          for k, v in s.items() if v is not None})
    group = state["optimizer"]["param_groups"][0]
    return {"params": params, "optimizer": optimizer, "lr": float(group["lr"]),
            "initial_lr": float(group.get("initial_lr", group["lr"])),
            "last_epoch": int(state["scheduler"]["last_epoch"])}


def _fail(path, what, fix="save it again, or start afresh without --resume"):
    raise CheckpointError(f"{path}: {what}; {fix}")


def load_manual(side, state, path="checkpoint"):
    """Give the manual side a saved manual state (copies)."""
    try:
        side.model.load_state_dict({k: np.asarray(v, dtype=np.float64) for k, v in state["params"].items()})
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
    side.scheduler.last_epoch = int(state["last_epoch"])


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
    params = list(side.model.parameters())
    side.optimizer.state.clear()
    load_optimizer_state(side.optimizer, params, state["optimizer"], side.dtype, side.device)
    for group in side.optimizer.param_groups:
        group["lr"] = float(state["lr"])
        group["initial_lr"] = float(state["initial_lr"])
    side.scheduler.last_epoch = int(state["last_epoch"])
    side.scheduler._last_lr = [float(state["lr"])]


def load_into(side, checkpoint):
    """Give ``side`` (manual or torch) its own state from ``checkpoint``, or the other side's where the
    file holds only that one."""
    c, path = checkpoint, checkpoint.path
    if side.name == "manual":
        state = c.manual if c.manual is not None else _manual_from_torch(c.torch, side.layout)
        load_manual(side, state, path)
    elif c.torch is not None:
        load_torch(side, c.torch, path)
    else:
        load_torch_from_manual(side, c.manual, path)


# ---- the spec, as JSON text ------------------------------------------------------------------------

def _spec_json(spec):
    return json.dumps(spec.to_dict(), sort_keys=True)


def spec_from_json(text, path="checkpoint"):
    try:
        data = json.loads(text)
        names = {f.name for f in fields(ExperimentSpec)}
        unknown = sorted(set(data) - names)
        if unknown:
            _fail(path, f"its spec has fields this version does not know ({', '.join(unknown)})",
                  "resume it with the version of backprop-oracle that saved it")
        data["hidden_sizes"] = tuple(data.get("hidden_sizes", ()))
        return ExperimentSpec(**data).validate()
    except (ValueError, TypeError) as e:
        _fail(path, f"its spec cannot be read ({e})")


def check_spec(checkpoint, spec):
    """Raise CheckpointError naming the first field, other than the epochs and the device, in which
    ``spec`` differs from the spec the checkpoint was saved with."""
    saved = json.loads(_spec_json(checkpoint.spec))
    wanted = json.loads(_spec_json(spec))
    for key in wanted:
        if key not in RESUMABLE and saved.get(key) != wanted[key]:
            option = f"--{key.replace('_', '-')}"
            raise CheckpointError(f"{checkpoint.path} was saved by a run with {key} {saved.get(key)!r}, "
                                  f"this run has {wanted[key]!r}: a checkpoint resumes only the run that "
                                  f"saved it. Resume with the same preset and options ({option}), or start "
                                  f"afresh without --resume")
    if spec.epochs <= checkpoint.progress.epoch:
        raise CheckpointError(f"{checkpoint.path} has trained {checkpoint.progress.epoch} epochs already; "
                              f"ask for more in all (--epochs {checkpoint.progress.epoch + 1} or more)")


# ---- writing -------------------------------------------------------------------------------------

def _record(progress, rng_state):
    return json.dumps({
        "step": progress.step, "epoch": progress.epoch, "first_cost": progress.first_cost,
        "last_finite": progress.last_finite, "maxima": progress.maxima, "compared": progress.compared,
        "drifts": [{"record": d.to_dict(), "text": d.describe()} for d in progress.drifts],
        "rng_state": rng_state})


def _digest(value, h=None):
    """SHA-256 of every tensor's bytes, shape and dtype and every other value's repr, keys in order:
    torch's zip reader checks no checksum, so a flipped byte inside a tensor would load silently."""
    h = h or hashlib.sha256()
    if isinstance(value, dict):
        for key in sorted(value, key=str):
            if key != "digest":
                h.update(repr(key).encode())
                _digest(value[key], h)
    elif isinstance(value, (list, tuple)):
        h.update(f"{type(value).__name__}{len(value)}".encode())
        for v in value:
            _digest(v, h)
    elif isinstance(value, torch.Tensor):
        t = value.detach().to("cpu").contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    else:
        h.update(repr(value).encode())
    return h.hexdigest()


def _torch_bytes(payload):
    buffer = io.BytesIO()
    torch.save(dict(payload, digest=_digest(payload)), buffer)
    return buffer.getvalue()


def write_npz(path, checkpoint):
    """The manual side's arrays (and the torch side's torch.save bytes where there are both) in ``path``."""
    c = checkpoint
    arrays = {"format": np.array(FORMAT), "spec": np.array(_spec_json(c.spec)),
              "record": np.array(_record(c.progress, c.rng_state))}
    for k in CURVES:
        arrays[f"curve/{k}"] = np.asarray(c.progress.curves.get(k, []), dtype=np.float64)
    m = c.manual
    for name, value in m["params"].items():
        arrays[f"manual/param/{name}"] = np.asarray(value)
    for i, state in enumerate(m["optimizer"]):
        for key, value in state.items():
            arrays[f"manual/optimizer/{i}/{key}"] = np.asarray(value)
    arrays["manual/lr"] = np.float64(m["lr"])
    arrays["manual/initial_lr"] = np.float64(m["initial_lr"])
    arrays["manual/last_epoch"] = np.int64(m["last_epoch"])
    if c.torch is not None:
        arrays["torch.pt"] = np.frombuffer(_torch_bytes(c.torch), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_atomic(path, buffer.getvalue())


def write_pt(path, checkpoint):
    """The torch side's state_dicts with the record, in one torch.save file."""
    c = checkpoint
    payload = {"format": FORMAT, "spec": _spec_json(c.spec), "record": _record(c.progress, c.rng_state),
               "curves": {k: torch.tensor(c.progress.curves.get(k, []), dtype=torch.float64) for k in CURVES},
               **c.torch}
    write_atomic(path, _torch_bytes(payload))


def _kind(path, what):
    ext = os.path.splitext(path)[1].lower()
    if ext not in EXTENSIONS:
        raise CheckpointError(f"{what}: {path} must end in .npz (the manual side's arrays, with both sides from "
                              f"`run`) or .pt (the torch side's state_dict)")
    return ext


def write_checkpoint(path, checkpoint):
    """``checkpoint`` in ``path``, as .npz or .pt by its extension; the side a format needs but the
    checkpoint lacks is converted from the other, through a side built on the CPU."""
    ext = _kind(path, "--save")
    c = checkpoint
    if ext == ".npz" and c.manual is None:
        side = ManualSide(c.spec, c.sizes, _dummy_params(c))
        load_into(side, c)
        c = Checkpoint(c.spec, c.progress, c.rng_state, manual_state(side), None, c.path)
    elif ext == ".pt" and c.torch is None:
        side = TorchSide(_on_cpu(c.spec), c.sizes, c.manual["params"])
        load_into(side, c)
        c = Checkpoint(c.spec, c.progress, c.rng_state, None, torch_state(side), c.path)
    (write_npz if ext == ".npz" else write_pt)(path, c)


def _on_cpu(spec):
    from dataclasses import replace
    return replace(spec, device="cpu")


def _dummy_params(c):
    return {k: v.detach().to(torch.float64).numpy() for k, v in c.torch["model"].items()}


# ---- reading -------------------------------------------------------------------------------------

def _damaged(path, e):
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return CheckpointError(f"{path}: not a readable checkpoint, or a damaged one (truncated or corrupted: "
                           f"{text}); resume from another save, or start afresh without --resume")


def _parse_record(text, path):
    try:
        record = json.loads(text)
        progress = Progress(int(record["step"]), int(record["epoch"]), record["first_cost"], record["last_finite"],
                            {k: float(v) for k, v in record["maxima"].items()}, {k: [] for k in CURVES},
                            [SavedDrift(d["record"], d["text"]) for d in record["drifts"]], bool(record["compared"]))
        return progress, record["rng_state"]
    except (ValueError, KeyError, TypeError) as e:
        raise _damaged(path, e) from None


def read_npz(path):
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as e:
        if "allow_pickle" in str(e) or "Object arrays" in str(e):
            raise CheckpointError(f"{path}: holds Python objects, which are not loaded (loading them could run "
                                  f"code); use a checkpoint written by backprop-oracle") from None
        raise _damaged(path, e) from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as e:
        raise _damaged(path, e) from None
    if str(arrays.get("format", "")) != FORMAT:
        raise CheckpointError(f"{path}: not a backprop-oracle checkpoint (no format {FORMAT!r}); give a file "
                              f"written by --save")
    try:
        spec = spec_from_json(str(arrays["spec"]), path)
        progress, rng_state = _parse_record(str(arrays["record"]), path)
        progress.curves = {k: arrays[f"curve/{k}"].tolist() for k in CURVES}
        params = {k[len("manual/param/"):]: v for k, v in arrays.items() if k.startswith("manual/param/")}
        states = {}
        for k, v in arrays.items():
            if k.startswith("manual/optimizer/"):
                i, key = k[len("manual/optimizer/"):].split("/", 1)
                states.setdefault(int(i), {})[key] = int(v) if key == "step" else v
        n = len(params)
        manual = {"params": params, "optimizer": [states.get(i, {}) for i in range(n)],
                  "lr": float(arrays["manual/lr"]), "initial_lr": float(arrays["manual/initial_lr"]),
                  "last_epoch": int(arrays["manual/last_epoch"])}
    except KeyError as e:
        raise _damaged(path, f"missing {e}") from None
    own_torch = None
    if "torch.pt" in arrays:
        own_torch = _torch_load(io.BytesIO(arrays["torch.pt"].tobytes()), path)
        own_torch.pop("digest", None)
    return Checkpoint(spec, progress, rng_state, manual, own_torch, path)


def _torch_load(source, path):
    try:
        payload = torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path}: holds Python objects beyond tensors, numbers and strings; it was not "
                              f"loaded (loading it could run code); use a checkpoint written by backprop-oracle") from None
    except Exception as e:        # a damaged zip archive surfaces as RuntimeError, EOFError, OSError, ...
        raise _damaged(path, e) from None
    if isinstance(payload, dict) and "digest" in payload and payload["digest"] != _digest(payload):
        raise _damaged(path, "its numbers do not match the checksum saved with them")
    return payload


def read_pt(path):
    payload = _torch_load(path, path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a backprop-oracle checkpoint (no format {FORMAT!r}); give a file "
                              f"written by --save")
    try:
        spec = spec_from_json(payload["spec"], path)
        progress, rng_state = _parse_record(payload["record"], path)
        progress.curves = {k: payload["curves"][k].tolist() for k in CURVES}
        own_torch = {k: payload[k] for k in ("model", "optimizer", "scheduler")}
        if "digest" not in payload:
            raise KeyError("digest")
    except (KeyError, AttributeError) as e:
        raise _damaged(path, f"missing {e}") from None
    return Checkpoint(spec, progress, rng_state, None, own_torch, path)


def load_checkpoint(path):
    """The Checkpoint in ``path`` (.npz or .pt); CheckpointError, never code run, for anything else."""
    path = os.fspath(path)
    ext = _kind(path, "--resume")
    if not os.path.isfile(path):
        raise CheckpointError(f"--resume: {path} not found; give a file written by --save")
    return (read_npz if ext == ".npz" else read_pt)(path)


def convert(source, target):
    """Write the checkpoint in ``source`` in the other format at ``target`` (.npz <-> .pt): the
    manual side's numbers into the torch side's state_dicts, or the reverse."""
    c = load_checkpoint(source)
    ext = _kind(os.fspath(target), "convert")
    if ext == ".npz":     # from a .pt: the torch side's numbers become the manual side's
        c = Checkpoint(c.spec, c.progress, c.rng_state, None, c.torch, c.path) if c.manual is None else c
    else:                 # from an .npz: the manual side's numbers become the torch side's
        c = Checkpoint(c.spec, c.progress, c.rng_state, c.manual, None, c.path)
    write_checkpoint(os.fspath(target), c)
    return c


# ---- a run's side of it --------------------------------------------------------------------------

def resume_into(run, resume):
    """Set up ``run`` (a LockstepRun or TorchRun, sides built) to continue from ``resume`` (a path or a
    Checkpoint); returns the Progress its loop starts from (a fresh one without ``resume``)."""
    run.start_step = 0
    if resume is None:
        return Progress()
    checkpoint = resume if isinstance(resume, Checkpoint) else load_checkpoint(resume)
    check_spec(checkpoint, run.spec)
    if tuple(checkpoint.sizes) != tuple(run.problem.sizes):
        raise CheckpointError(f"{checkpoint.path} holds a {'-'.join(map(str, checkpoint.sizes))} network but this "
                              f"data gives {'-'.join(map(str, run.problem.sizes))}; resume on the data it was "
                              "saved from")
    for name in ("manual", "torch"):
        side = getattr(run, name, None)
        if side is not None:
            load_into(side, checkpoint)
    run.rng.bit_generator.state = checkpoint.rng_state
    run.start_step = checkpoint.progress.step
    progress = checkpoint.progress.snapshot()
    both = getattr(run, "manual", None) is not None
    if both and not (progress.compared and checkpoint.manual is not None):
        # Steps the sides were not compared at (a torch-only run's) are not part of this verdict.
        progress = Progress(progress.step, progress.epoch, None, None, compared=False)
    return progress


def resumed_note(run, progress_at_start, path):
    """What a result says of where it resumed (empty without a resume)."""
    if progress_at_start.step == 0 and progress_at_start.epoch == 0:
        return {}
    return {"resumed": {"from": None if path is None else os.fspath(path), "step": progress_at_start.step,
                        "epoch": progress_at_start.epoch, "compared_before": progress_at_start.compared}}


def checkpoint_of(run, progress):
    """The Checkpoint of ``run`` at the end of the epoch ``progress`` describes."""
    manual = getattr(run, "manual", None)
    return Checkpoint(run.spec, progress, run.rng.bit_generator.state,
                      manual_state(manual) if manual is not None else None, torch_state(run.torch),
                      "checkpoint")


def save_checkpoint(run, path):
    """Write ``run``'s state at the end of its last completed epoch to ``path`` (.npz or .pt)."""
    progress = getattr(run, "progress", None)
    if progress is None:
        raise CheckpointError(f"--save: the run completed no epoch, so {path} was not written")
    write_checkpoint(os.fspath(path), checkpoint_of(run, progress))


class Saver:
    """Observer: writes the run to ``path`` at the end of every ``every``-th epoch and of the last one
    (``every`` None: the last only). ``saved`` is (epoch, step) of the last write, or None."""

    def __init__(self, path, every=None):
        self.path = os.fspath(path)
        _kind(self.path, "--save")
        self.every, self.saved = every, None

    def on_epoch_done(self, run, progress):
        last = progress.epoch == run.spec.epochs
        if last or (self.every and progress.epoch % self.every == 0):
            write_checkpoint(self.path, checkpoint_of(run, progress))
            self.saved = (progress.epoch, progress.step)
