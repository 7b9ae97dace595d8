"""The floating-point types both sides support, by name."""
import torch

# float64 is the oracle's precision; float32 is what people train in.
DTYPES = {"float64": torch.float64, "float32": torch.float32}


def as_dtype(name):
    """Return the torch dtype for "float64" or "float32" (a torch dtype passes through)."""
    if isinstance(name, torch.dtype):
        if name not in DTYPES.values():
            raise ValueError(f"unsupported dtype {name}; choose one of: {', '.join(DTYPES)}")
        return name
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; choose one of: {', '.join(DTYPES)}")
    return DTYPES[name]
