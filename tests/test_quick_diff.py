"""The lockstep's per-step comparison of flat vectors (quick_diff) says what comparing every
tensor element by element (compare_arrays) says, to the last bit of its maxima, and fails on
every NaN and infinity, which compare_arrays then locates."""
import math

import numpy as np
import pytest

from backprop_oracle.compare.verdict.diff import compare_arrays, quick_diff
from backprop_oracle.compare.verdict.tolerances import tolerance_for

SHAPES = [(3, 4), (4,), (4, 2), (2,), (1,)]


def flat_pair(rng, scale=1e-11):
    """Manual and torch flat vectors of the tensors in SHAPES: torch's values, manual's off by
    about ``scale`` of them."""
    sizes = [int(np.prod(s)) for s in SHAPES]
    b = rng.normal(size=sum(sizes))
    a = b + scale * rng.normal(size=b.size) * np.abs(b)
    return a, b, np.cumsum([0] + sizes[:-1])


def element_by_element(a, b, offsets, tol):
    """(passed, max |a - b|, max of each tensor's max |a - b| / max |b|), tensor by tensor."""
    ends = list(offsets[1:]) + [a.size]
    diffs, rel = [], 0.0
    for i, (start, end) in enumerate(zip(offsets, ends)):
        d = compare_arrays(f"t{i}", a[start:end], b[start:end], tol)
        diffs.append(d)
        scale = float(np.max(np.abs(b[start:end])))
        rel = max(rel, d.max_abs / scale if scale > 0 else (math.inf if d.max_abs > 0 else 0.0))
    return all(d.passed for d in diffs), max(d.max_abs for d in diffs), rel


@pytest.mark.parametrize("scale", [0.0, 1e-15, 1e-11, 1e-9, 1e-3])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_finite_vectors_get_the_element_by_element_verdict_and_maxima(scale, dtype):
    tol = tolerance_for(dtype)
    rng = np.random.default_rng(int(scale * 1e15) % 1000)
    for _ in range(20):
        a, b, offsets = flat_pair(rng, scale)
        got = quick_diff(a, b, tol, offsets)
        want = element_by_element(a, b, offsets, tol)
        assert got == want, f"quick_diff {got} but element by element {want} (tolerance {tol}, scale {scale})"


def test_identical_vectors_agree_with_zero_differences():
    a, b, offsets = flat_pair(np.random.default_rng(0), 0.0)
    assert np.array_equal(a, b)
    assert quick_diff(a, b.copy(), tolerance_for("float64"), offsets) == (True, 0.0, 0.0)


def test_one_element_just_past_its_tensors_bound_fails():
    tol = tolerance_for("float64")
    a, b, offsets = flat_pair(np.random.default_rng(1), 0.0)
    j = int(offsets[2]) + 1                                  # inside the third tensor
    bound = tol.allowed(float(np.max(np.abs(b[offsets[2]:offsets[3]]))))
    a[j] = b[j] + 0.9 * bound
    passed, g_abs, _ = quick_diff(a, b, tol, offsets)
    assert passed and g_abs == abs(a[j] - b[j]), f"{g_abs} for |diff| {abs(a[j] - b[j])} within {bound}"
    a[j] = b[j] + 1.1 * bound
    passed, g_abs, _ = quick_diff(a, b, tol, offsets)
    assert not passed, f"element {j}: |diff| {abs(a[j] - b[j])} > allowed {bound}, but quick_diff passed"
    assert g_abs == abs(a[j] - b[j])


def test_a_difference_where_torchs_tensor_is_zero_is_infinitely_relative():
    tol = tolerance_for("float64")
    a, b, offsets = flat_pair(np.random.default_rng(2), 0.0)
    b[offsets[1]:offsets[2]] = 0.0
    a[offsets[1]:offsets[2]] = 0.0
    assert quick_diff(a, b, tol, offsets) == (True, 0.0, 0.0)
    a[offsets[1]] = 5e-13                                    # within atol, but relative to a zero tensor
    passed, g_abs, g_rel = quick_diff(a, b, tol, offsets)
    assert (passed, g_abs, g_rel) == (True, 5e-13, math.inf), (passed, g_abs, g_rel)


@pytest.mark.parametrize("manual_value, torch_value", [
    (math.nan, 1.0), (1.0, math.nan), (math.nan, math.nan),
    (math.inf, 1.0), (1.0, math.inf), (math.inf, math.inf), (-math.inf, -math.inf)])
def test_every_nan_and_infinity_fails(manual_value, torch_value):
    tol = tolerance_for("float64")
    a, b, offsets = flat_pair(np.random.default_rng(3), 0.0)
    j = int(offsets[1]) + 2
    a[j], b[j] = manual_value, torch_value
    with np.errstate(invalid="ignore"):       # inf - inf; the lockstep runs with NumPy's warnings off
        passed, _, _ = quick_diff(a, b, tol, offsets)
    assert not passed, f"element {j}: manual {manual_value} vs torch {torch_value} passed"
