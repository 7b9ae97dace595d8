"""Benchmarks: how fast each side trains, how much the lockstep adds on top, the per-example loop
against the vectorized gradient, the gradient check against torch.autograd.gradcheck; every ratio
measured in one run, with interleaved repeats and their spread (``backprop-oracle bench``).

Imports manual, torch_ref, compare.data, compare.experiments, compare.lockstep, compare.check and
the shared compare.errors, compare.tables and compare.files; never the dashboards or the command
line. Goals are printed beside the ratios, never asserted: a timing depends on the machine.

    timing     Spread (min, median, max) and interleaved repeats
    steps      the time per training step of each side, NumPy's GEMM rate
    overhead   the lockstep run against the two sides trained separately
    gradients  the per-example loop against the batch gradient; the check against gradcheck
    suite      every table of one run, as text and as JSON
"""
