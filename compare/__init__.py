"""compare: runs manual/ and torch_ref/ side by side, and checks hand-derived gradients.

Everything loads on first use (the checks and the lockstep run import torch), so ``import compare``
stays fast:

    from compare import check_function, check_layer, check_network, assert_gradients_match
    from compare import ExperimentSpec, run_lockstep, PRESETS, load_dataset

The rooms, from the bottom of the arrows up (each subpackage's docstring says what it may import):

    errors, tables,  shared by every room: the user's-mistake errors, text tables,
    files            files written whole or not at all
    data             data sets, IDX files, target encodings
    verdict          tolerances, element-by-element diffs, localising the first wrong node
    experiments      ExperimentSpec and the presets
    lockstep         both sides run step by step and compared, differences proven; results, reports
    train            the torch side trained alone (GPU, DDP)
    check            the public gradient checks and the pytest plugin
    dashboards       TensorBoard logs, pictures, progress bars
    cli              the command line
"""
_LAZY = {
    "check_function": "compare.check.api",
    "check_layer": "compare.check.api",
    "check_network": "compare.check.api",
    "assert_gradients_match": "compare.check.api",
    "CheckResult": "compare.check.api",
    "CheckError": "compare.errors",
    "SpecError": "compare.errors",
    "DataError": "compare.errors",
    "ExperimentSpec": "compare.experiments.spec",
    "PRESETS": "compare.experiments.presets",
    "load_dataset": "compare.data.datasets",
    "run_lockstep": "compare.lockstep.run",
    "LockstepRun": "compare.lockstep.run",
    "LockstepResult": "compare.lockstep.result",
    "trace_example": "compare.lockstep.trace",
    "format_trace": "compare.lockstep.trace",
}

__all__ = list(_LAZY)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'compare' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(_LAZY[name]), name)


def __dir__():
    return sorted(list(globals()) + __all__)
