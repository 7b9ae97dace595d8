"""Element-by-element comparison of two arrays: did they agree, and where is the worst element?"""
from dataclasses import dataclass

import numpy as np

from compare.tolerances import Tolerance


def relative_error(a, b):
    """|a - b| / max(1e-8, |a| + |b|), element by element (cs231n's form, safe at 0)."""
    return np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))


@dataclass(frozen=True)
class TensorDiff:
    """The comparison of one tensor: manual (``a``) against torch (``b``)."""
    name: str            # e.g. "dL/dW of layer 2 (2.weight)"
    shape: tuple
    passed: bool
    max_abs: float       # max |a - b|
    max_rel: float       # max relative_error(a, b)
    index: tuple         # the worst element: the one furthest outside (or nearest to) the tolerance
    manual: float        # a[index]
    torch: float         # b[index]
    tolerance: Tolerance

    def describe(self):
        where = f"[{', '.join(map(str, self.index))}]" if self.index else ""
        verdict = "agrees" if self.passed else "DIFFERS"
        return (f"{self.name}{where} {verdict}: manual {self.manual:.12g} vs torch {self.torch:.12g}, "
                f"|diff| {abs(self.manual - self.torch):.3g} (tolerance {self.tolerance})")

    def to_dict(self):
        return {"name": self.name, "shape": list(self.shape), "passed": self.passed,
                "max_abs": self.max_abs, "max_rel": self.max_rel, "index": list(self.index),
                "manual": self.manual, "torch": self.torch,
                "rtol": self.tolerance.rtol, "atol": self.tolerance.atol}


def compare_arrays(name, manual, torch, tolerance):
    """Compare two arrays of the same shape under ``tolerance``; NaN only matches NaN."""
    a = np.asarray(manual, dtype=np.float64)
    b = np.asarray(torch, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"{name}: manual has shape {a.shape} but torch has {b.shape}")
    if a.size == 0:
        return TensorDiff(name, a.shape, True, 0.0, 0.0, (), 0.0, 0.0, tolerance)
    with np.errstate(invalid="ignore", over="ignore"):
        abs_diff = np.abs(a - b)
        allowed = tolerance.atol + tolerance.rtol * np.abs(b)
        ratio = abs_diff / allowed
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        both_nan = nan_a & nan_b
        ratio = np.where(both_nan, 0.0, np.where(nan_a | nan_b, np.inf, ratio))
        same_inf = np.isinf(a) & (a == b)
        ratio = np.where(same_inf, 0.0, ratio)
        abs_diff = np.where(both_nan | same_inf, 0.0, abs_diff)
        rel = np.where(both_nan | same_inf, 0.0, relative_error(a, b))
    flat = int(np.argmax(ratio))
    index = tuple(int(i) for i in np.unravel_index(flat, a.shape))
    return TensorDiff(
        name=name, shape=a.shape, passed=bool(ratio.flat[flat] <= 1.0),
        max_abs=float(np.nanmax(abs_diff)) if not np.all(np.isnan(abs_diff)) else float("nan"),
        max_rel=float(np.nanmax(rel)) if not np.all(np.isnan(rel)) else float("nan"),
        index=index, manual=float(a.flat[flat]), torch=float(b.flat[flat]), tolerance=tolerance)


def quick_diff(manual, torch, tolerance):
    """(passed, max |a - b|, max relative error) of two flat float64 arrays: the per-step fast
    path. A NaN on either side fails (and makes the maxima NaN); ``compare_arrays`` then says where."""
    d = np.abs(manual - torch)
    passed = bool(np.all(d <= tolerance.atol + tolerance.rtol * np.abs(torch)))
    if d.size == 0:
        return True, 0.0, 0.0
    return passed, float(d.max()), float(relative_error(manual, torch).max())
