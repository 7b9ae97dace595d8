"""Where each tensor sits in a flat vector, and manual Parameters as views of one flat buffer."""
import numpy as np


def layout_offsets(layout):
    """Where each parameter of ``layout`` [(name, shape), ...] starts in the flat vectors."""
    return np.cumsum([0] + [int(np.prod(shape)) for _, shape in layout[:-1]])



def consecutive(arrays):
    """The 1-D array of which ``arrays`` are consecutive C-contiguous views, in order, or None."""
    first = arrays[0]
    root = first
    while isinstance(root.base, np.ndarray):
        root = root.base
    if not root.flags.c_contiguous or root.dtype != first.dtype:
        return None
    address = lambda a: a.__array_interface__["data"][0]          # noqa: E731
    start, rem = divmod(address(first) - address(root), first.itemsize)
    total = sum(a.size for a in arrays)
    if rem or start < 0 or start + total > root.size:
        return None
    flat = root.reshape(-1)[start:start + total]
    at = address(flat)
    for a in arrays:
        if a.dtype != first.dtype or not a.flags.c_contiguous or address(a) != at:
            return None
        at += a.nbytes
    return flat


def bind_flat(params, attr):
    """(flat buffer, views) for attribute ``attr`` ("data" or "grad") of manual Parameters: the
    arrays they hold when these already are consecutive views of one buffer, else a new buffer
    whose views the parameters then hold."""
    arrays = [getattr(p, attr) for p in params]
    flat = consecutive(arrays)
    if flat is not None:
        return flat, arrays
    flat = np.concatenate([a.ravel() for a in arrays])
    views = split(flat, [a.shape for a in arrays])
    for p, v in zip(params, views):
        setattr(p, attr, v)
    return flat, views


def keep_bound(params, attr, views):
    """Put back the views of a parameter whose array was replaced, taking its new values."""
    for p, v in zip(params, views):
        a = getattr(p, attr)
        if a is not v:
            v[...] = a
            setattr(p, attr, v)


def split(flat, shapes):
    """Views of consecutive pieces of ``flat`` with the given shapes."""
    views, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        views.append(flat[start:start + size].reshape(shape))
        start += size
    return views


def unflatten(flat, layout):
    """Split a flat vector into {name: array} by ``layout`` [(name, shape), ...]."""
    out, start = {}, 0
    for name, shape in layout:
        size = int(np.prod(shape))
        out[name] = flat[start:start + size].reshape(shape)
        start += size
    return out
