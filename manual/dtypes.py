"""The floating-point types both sides support, by name."""
import numpy as np

# float64 is the oracle's precision; float32 is what people train in.
DTYPES = {"float64": np.float64, "float32": np.float32}


def as_dtype(name):
    """Return the NumPy dtype for "float64" or "float32" (a NumPy dtype passes through)."""
    if isinstance(name, str):
        if name not in DTYPES:
            raise ValueError(f"unknown dtype {name!r}; choose one of: {', '.join(DTYPES)}")
        return np.dtype(DTYPES[name])
    dt = np.dtype(name)
    if dt not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise ValueError(f"unsupported dtype {dt}; choose one of: {', '.join(DTYPES)}")
    return dt
