"""Assertions whose failure message names the tensor, the element, both values and the tolerance."""
import numpy as np
import torch

from backprop_oracle.compare.verdict.diff import compare_arrays
from backprop_oracle.compare.verdict.tolerances import Tolerance

F64 = Tolerance(rtol=1e-10, atol=1e-12)   # float64: both sides differ only by summation order


def as_array(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy().copy()
    return np.asarray(x, dtype=np.float64)


def assert_close(name, manual, reference, tol=F64):
    d = compare_arrays(name, as_array(manual), as_array(reference), tol)
    assert d.passed, d.describe()


def assert_seed_value(name, value, expected, decimals=3, truncated=False):
    """The seeds print values rounded to 3 decimals: check to that rounding (half a unit in the
    last place), or, where the article cut the digits off instead (``truncated``), to that."""
    value, unit = float(value), 10 ** -decimals
    if truncated:
        # cutting digits off moves a value towards 0 by less than one unit
        ok = (expected <= value < expected + unit) if value >= 0 else (expected - unit < value <= expected)
        how = f"truncated to {decimals} decimals"
    else:
        ok = abs(value - expected) <= 0.5 * unit + 1e-12
        how = f"to {decimals} decimals, tolerance {0.5 * unit:g}"
    assert ok, f"{name}: got {value:.6f}, the article prints {expected} ({how})"
