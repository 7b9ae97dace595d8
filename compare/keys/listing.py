"""Every registry key of both sides with the torch name it stands for, read from the registries
themselves (manual's and torch_ref's ACTIVATIONS, LOSSES, OPTIMIZERS, SCHEDULERS, INITIALISERS, and
the layer kinds of a layers list, compare.network's LAYERS), so that a key added to a registry is
listed without a word here: ``backprop-oracle list --keys``."""
import importlib
import inspect
import re

from backprop_oracle import manual, torch_ref
from backprop_oracle.compare.network.layers import LAYERS, arguments

# (heading, the registry's name in manual/ and torch_ref/, positional arguments not listed)
REGISTRIES = (
    ("activations", "ACTIVATIONS", ()),
    ("losses", "LOSSES", ()),
    ("optimizers", "OPTIMIZERS", ("params", "lr")),
    ("schedules", "SCHEDULERS", ("optimizer",)),
    ("initialisers", "INITIALISERS", ("rng", "shape", "weight")),
)
# The modules whose names are torch's public ones, most specific last.
_PUBLIC = ("torch", "torch.nn", "torch.nn.functional", "torch.nn.init", "torch.optim", "torch.optim.lr_scheduler")


def _public_name(obj):
    """torch's public dotted name of ``obj`` (torch.nn.GELU, not torch.nn.modules.activation.GELU), or None."""
    name = getattr(obj, "__name__", None)
    if name is None:
        return None
    for module_name in reversed(_PUBLIC):
        if getattr(importlib.import_module(module_name), name, None) is obj:
            return f"{module_name}.{name}"
    return None


def torch_name(entry):
    """What a torch_ref registry entry stands for in torch: its class or the class it extends
    (torch_ref's Softmax is torch.nn.Softmax with dim=1), the torch functions a function calls
    (ConstantLR: torch.optim.lr_scheduler.LambdaLR), or "written in torch_ref" for a module of its own."""
    import torch
    if isinstance(entry, type):
        for cls in entry.__mro__:
            if cls in (torch.nn.Module, object):
                break
            name = _public_name(cls)
            if name:
                return name
        return f"written in {entry.__module__.removeprefix('backprop_oracle.')} from torch operations"
    try:
        source = inspect.getsource(entry)
    except (OSError, TypeError):
        return "?"
    found = []
    for chain in re.findall(r"\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*", source):
        parts = chain.split(".")
        obj = entry.__globals__.get(parts[0])
        for part in parts[1:]:
            obj = getattr(obj, part, None)
        name = _public_name(obj) if obj is not None and obj is not entry else None
        if name and name not in found and (callable(obj) and not isinstance(obj, type(torch))):
            found.append(name)
    return ", ".join(found) or "?"


def _arguments(entry, skip):
    """Its keyword arguments with their defaults, as a key takes them: "alpha=1.0, inplace=False"."""
    try:
        params = inspect.signature(entry).parameters.values()
    except (TypeError, ValueError):
        return ""
    return ", ".join(p.name if p.default is p.empty else f"{p.name}={p.default!r}" for p in params
                     if p.name not in skip and p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))


def registry_rows():
    """[(heading, [(key, torch name, the manual side's arguments)])] for every registry."""
    out = []
    for heading, registry, skip in REGISTRIES:
        mine, theirs = getattr(manual, registry), getattr(torch_ref, registry)
        out.append((heading, [(key, torch_name(theirs[key]) if key in theirs else "(no torch side)",
                               _arguments(mine[key], skip)) for key in mine]))
    # the layer kinds other than the activations (listed above): their arguments as a layer takes them
    out.append(("layers", [(kind, entry.stands_for or "?", f"{kind}({arguments(kind)})", entry.takes)
                           for kind, entry in LAYERS.items() if entry.role != "activation"]))
    return out


def keys_table():
    """The text ``list --keys`` prints."""
    from backprop_oracle.compare.tables import aligned
    lines = []
    for heading, rows in registry_rows():
        lines.append(f"{heading} ({len(rows)})")
        header = ["key", "torch", "arguments (a key takes them: elu:alpha=0.5)" if heading in ("activations", "losses")
                  else "arguments"]
        if heading == "layers":
            header = ["kind", "torch", "written (--layers; every activation key is a layer too)", "takes"]
        lines += aligned([header] + [list(r) for r in rows], rule=True, indent="  ")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
