"""Element-by-element comparison of two arrays: did they agree, and where is the worst element?"""
import math
from dataclasses import dataclass

import numpy as np

from backprop_oracle.compare.verdict.tolerances import Tolerance, tensor_scale


def relative_error(a, b):
    """|a - b| / max(1e-8, |a| + |b|), element by element (cs231n's form, safe at 0)."""
    return np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))


@dataclass(frozen=True)
class TensorDiff:
    """The comparison of one tensor: manual (``a``) against torch (``b``)."""
    name: str            # e.g. "dL/dW_2 (2.weight.grad)"
    shape: tuple
    passed: bool
    max_abs: float       # max |a - b|
    max_rel: float       # max relative_error(a, b), element by element
    index: tuple         # the worst element: the largest |a - b| (a NaN on one side only is worst)
    manual: float        # a[index]
    torch: float         # b[index]
    tolerance: Tolerance
    allowed: float = 0.0  # the largest |a - b| this tensor may have: atol + rtol · max|b|

    @property
    def scaled(self):
        """max |a - b| / max |b|: the difference relative to the tensor's scale, what rtol bounds."""
        scale = (self.allowed - self.tolerance.atol) / self.tolerance.rtol if self.tolerance.rtol else 0.0
        return self.max_abs / scale if scale > 0 else (0.0 if self.max_abs == 0 else float("inf"))

    def describe(self):
        where = f"[{', '.join(map(str, self.index))}]" if self.index else ""
        verdict = "agrees" if self.passed else "DIFFERS"
        return (f"{self.name}{where} {verdict}: manual {self.manual:.12g} vs torch {self.torch:.12g}, "
                f"|diff| {abs(self.manual - self.torch):.3g}, allowed {self.allowed:.3g} "
                f"(tolerance {self.tolerance})")

    def to_dict(self):
        return {"name": self.name, "shape": list(self.shape), "passed": self.passed,
                "max_abs": self.max_abs, "max_rel": self.max_rel, "index": list(self.index),
                "manual": self.manual, "torch": self.torch, "allowed": self.allowed,
                "rtol": self.tolerance.rtol, "atol": self.tolerance.atol}


def compare_arrays(name, manual, torch, tolerance):
    """Compare two arrays of the same shape under ``tolerance`` (compare.verdict.tolerances); NaN only matches NaN."""
    a = np.asarray(manual, dtype=np.float64)
    b = np.asarray(torch, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"{name}: manual has shape {a.shape} but torch has {b.shape}")
    if a.size == 0:
        return TensorDiff(name, a.shape, True, 0.0, 0.0, (), 0.0, 0.0, tolerance, tolerance.allowed(0.0))
    abs_b = np.abs(b)
    if np.isfinite(a).all() and np.isfinite(b).all():     # the usual case: fewer passes over the data
        allowed = tolerance.allowed(float(abs_b.max()))
        abs_diff = np.abs(a - b)
        rel = abs_diff / np.maximum(1e-8, np.abs(a) + abs_b)
    else:
        allowed = tolerance.allowed(tensor_scale(b))
        with np.errstate(invalid="ignore", over="ignore"):
            nan_a, nan_b = np.isnan(a), np.isnan(b)
            same = (nan_a & nan_b) | (np.isinf(a) & (a == b))
            abs_diff = np.where(same, 0.0, np.abs(a - b))
            abs_diff = np.where((nan_a | nan_b) & ~same, np.inf, abs_diff)
            rel = np.where(same, 0.0, relative_error(a, b))
            rel = np.where(np.isnan(rel), np.inf, rel)
    flat = int(np.argmax(abs_diff))
    index = tuple(int(i) for i in np.unravel_index(flat, a.shape))
    worst = float(abs_diff.flat[flat])
    return TensorDiff(
        name=name, shape=a.shape, passed=bool(worst <= allowed), max_abs=worst,
        max_rel=float(rel.max()), index=index, manual=float(a.flat[flat]), torch=float(b.flat[flat]),
        tolerance=tolerance, allowed=allowed)


def quick_diff(manual, torch, tolerance, offsets=(0,), scales=None):
    """The per-step fast path over several tensors concatenated into flat float64 arrays, the
    tensors starting at ``offsets``: (passed, max |a - b|, max |a - b| / max|b| of its tensor).
    A NaN on either side fails, and so does an infinity: ``compare_arrays`` then says where.
    ``scales``: max|b| of each tensor where the caller has it (``tensor_maxima(torch, offsets)``,
    the same numbers), so that only the differences are left to compute.

    Every element is compared: its tensor's bound atol + rtol · max|b| is one number, so
    "every |a - b| within it" is "the tensor's largest |a - b| within it", and (division by a
    positive number being monotonic, also in floating point) the largest |a - b| / max|b| is
    the largest |a - b| over max|b|: the same numbers as element by element, in two passes over
    the data; what is left is one number per tensor, done in Python (a network has a handful).
    Where every |a - b| is 0 (the sides agree to the last bit, as on the OR gate) the answer is
    known without the scales: 0 differences are finite, within every bound, and 0 relative."""
    if manual.size == 0:
        return True, 0.0, 0.0
    d = np.abs(manual - torch)
    worst = np.maximum.reduceat(d, offsets).tolist()              # max |a - b| of each tensor (NaN wins)
    if not any(worst):                                            # all 0.0 (a NaN is true)
        return True, 0.0, 0.0
    if scales is None:
        scales = tensor_maxima(torch, offsets)                    # max |b| of each tensor
    atol, rtol = tolerance.atol, tolerance.rtol
    passed, scaled, nan, unscaled = True, 0.0, False, None
    for i, (w, s) in enumerate(zip(worst, scales)):
        # NaN fails every comparison; an infinite scale would allow an infinite difference.
        if not (w <= atol + rtol * s) or s == math.inf:
            passed = False
        if s > 0:
            r = w / s
        else:
            # torch's tensor is 0 (or NaN): inf where an element differs, else 0, NaN-blind as per element
            if unscaled is None:
                unscaled = np.fmax.reduceat(d, offsets).tolist()
            r = math.inf if unscaled[i] > 0 else 0.0
        if r != r:
            nan = True
        elif r > scaled:
            scaled = r
    g_abs = math.nan if any(w != w for w in worst) else max(worst)
    return passed, g_abs, math.nan if nan else scaled


def tensor_maxima(torch, offsets=(0,)):
    """max |b| of each tensor of a flat vector (``offsets`` where they start; NaN wins), as a list;
    of each row of a (K, P) array of K flat vectors, as K lists."""
    return np.maximum.reduceat(np.abs(torch), offsets, axis=-1).tolist()
