"""Verdicts: how two sets of numbers are judged. Tolerances per dtype, relative to each tensor's
scale; the element-by-element comparison that finds the worst element; and the walk that finds the
first node of a network where two traces part ways, and says what it means.

Imports NumPy only: the lockstep run and the user's checks judge with the same code.

    tolerances    Tolerance, tolerance_for(dtype)
    diff          compare_arrays -> TensorDiff, quick_diff (the per-step fast path)
    localise      Trace, Mismatch, localise(manual_trace, torch_trace, tolerance)
    hints         what the shape of a difference suggests (a sign, a factor 1/N, a transpose)
    finite_diff   a numerical reference: central differences of vector-Jacobian products
    explain       the first wrong node of a network check in plain words, from the tensors returned
"""
