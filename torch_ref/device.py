"""Where the torch side runs: "cpu", "cuda" (or "cuda:N"), or "auto" (CUDA when present)."""
import torch


def resolve_device(device="cpu"):
    """Return a torch.device; "auto" picks CUDA when available. Asking for CUDA without it is an error."""
    if isinstance(device, torch.device):
        return device
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for but CUDA is not available here; "
                             "use --device cpu or --device auto")
        device = torch.device(name)
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"device {name!r} was asked for but this machine has {count} GPU"
                             f"{'s' if count != 1 else ''} (cuda:0{f' to cuda:{count - 1}' if count > 1 else ''}); "
                             f"use one of those, or fewer processes under torchrun (one GPU each), "
                             "or --device cpu (gloo)")
        return device
    raise ValueError(f"unknown device {name!r}; choose cpu, cuda, cuda:N or auto")
