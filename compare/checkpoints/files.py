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
import os
import pickle
import zipfile
from dataclasses import fields, replace

import numpy as np
import torch

from backprop_oracle.compare.checkpoints.state import (Checkpoint, CheckpointError, SavedDrift, load_into,
                                                       manual_state, torch_state)
from backprop_oracle.compare.experiments.spec import ExperimentSpec
from backprop_oracle.compare.files import write_atomic
from backprop_oracle.compare.lockstep.progress import CURVES, Progress
from backprop_oracle.compare.network.layers import network_of
from backprop_oracle.compare.sides.sides import ManualSide, TorchSide

FORMAT = "backprop-oracle checkpoint 1"
EXTENSIONS = (".npz", ".pt")


def _fail(path, what, fix="save it again, or start afresh without --resume"):
    raise CheckpointError(f"{path}: {what}; {fix}")


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


# ---- writing -------------------------------------------------------------------------------------

def _record(progress, rng_state, masks=None):
    return json.dumps({
        "step": progress.step, "epoch": progress.epoch, "first_cost": progress.first_cost,
        "last_finite": progress.last_finite, "maxima": progress.maxima, "compared": progress.compared,
        "drifts": [{"record": d.to_dict(), "text": d.describe()} for d in progress.drifts],
        "rng_state": rng_state, "masks": masks})


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
              "record": np.array(_record(c.progress, c.rng_state, c.masks))}
    for k in CURVES:
        arrays[f"curve/{k}"] = np.asarray(c.progress.curves.get(k, []), dtype=np.float64)
    m = c.manual
    for name, value in m["params"].items():
        arrays[f"manual/param/{name}"] = np.asarray(value)
    for name, value in m.get("buffers", {}).items():
        arrays[f"manual/buffer/{name}"] = np.asarray(value)
    for i, state in enumerate(m["optimizer"]):
        for key, value in state.items():
            arrays[f"manual/optimizer/{i}/{key}"] = np.asarray(value)
    arrays["manual/lr"] = np.float64(m["lr"])
    arrays["manual/initial_lr"] = np.float64(m["initial_lr"])
    arrays["manual/last_epoch"] = np.int64(m["last_epoch"])
    arrays["manual/scheduler"] = np.array(json.dumps(m.get("scheduler") or {"last_epoch": m["last_epoch"]}))
    arrays["manual/hyper"] = np.array(json.dumps(m.get("hyper", {})))
    if c.torch is not None:
        arrays["torch.pt"] = np.frombuffer(_torch_bytes(c.torch), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_atomic(path, buffer.getvalue())


def write_pt(path, checkpoint):
    """The torch side's state_dicts with the record, in one torch.save file."""
    c = checkpoint
    payload = {"format": FORMAT, "spec": _spec_json(c.spec), "record": _record(c.progress, c.rng_state, c.masks),
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
        c = replace(c, manual=manual_state(side), torch=None)
    elif ext == ".pt" and c.torch is None:
        side = TorchSide(_on_cpu(c.spec), c.sizes, c.manual["params"])
        load_into(side, c)
        c = replace(c, manual=None, torch=torch_state(side))
    (write_npz if ext == ".npz" else write_pt)(path, c)


def _on_cpu(spec):
    return replace(spec, device="cpu")


def _dummy_params(c):
    """The torch model's parameters (its running statistics apart), to build a manual side with."""
    names = {n for n, _ in network_of(c.spec, c.sizes).manual().named_parameters()}
    return {k: v.detach().to(torch.float64).numpy() for k, v in c.torch["model"].items() if k in names}


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
        return progress, record["rng_state"], record.get("masks")     # no "masks": saved before they were kept
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
        progress, rng_state, masks = _parse_record(str(arrays["record"]), path)
        progress.curves = {k: arrays[f"curve/{k}"].tolist() for k in CURVES}
        params = {k[len("manual/param/"):]: v for k, v in arrays.items() if k.startswith("manual/param/")}
        buffers = {k[len("manual/buffer/"):]: v for k, v in arrays.items() if k.startswith("manual/buffer/")}
        states = {}
        for k, v in arrays.items():
            if k.startswith("manual/optimizer/"):
                i, key = k[len("manual/optimizer/"):].split("/", 1)
                states.setdefault(int(i), {})[key] = int(v) if key == "step" else v
        n = len(params)
        manual = {"params": params, "optimizer": [states.get(i, {}) for i in range(n)],
                  "lr": float(arrays["manual/lr"]), "initial_lr": float(arrays["manual/initial_lr"]),
                  "last_epoch": int(arrays["manual/last_epoch"])}
        if buffers:                                   # a network with running statistics
            manual["buffers"] = buffers
        for key in ("scheduler", "hyper"):            # absent from files of the first format's early days
            if f"manual/{key}" in arrays:
                manual[key] = json.loads(str(arrays[f"manual/{key}"]))
    except KeyError as e:
        raise _damaged(path, f"missing {e}") from None
    own_torch = None
    if "torch.pt" in arrays:
        own_torch = _torch_load(io.BytesIO(arrays["torch.pt"].tobytes()), path)
        own_torch.pop("digest", None)
    return Checkpoint(spec, progress, rng_state, manual, own_torch, path, masks)


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
        progress, rng_state, masks = _parse_record(payload["record"], path)
        progress.curves = {k: payload["curves"][k].tolist() for k in CURVES}
        own_torch = {k: payload[k] for k in ("model", "optimizer", "scheduler")}
        if "digest" not in payload:
            raise KeyError("digest")
    except (KeyError, AttributeError) as e:
        raise _damaged(path, f"missing {e}") from None
    return Checkpoint(spec, progress, rng_state, None, own_torch, path, masks)


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
    if ext == ".pt":      # from an .npz: the manual side's numbers become the torch side's
        c = replace(c, torch=None)
    # (to an .npz from a .pt, write_checkpoint makes the manual side's numbers of the torch side's)
    write_checkpoint(os.fspath(target), c)
    return c
