"""backprop_oracle.compare: runs manual/ and torch_ref/ side by side, and checks hand-derived gradients.

Everything loads on first use (the checks and the lockstep run import torch), so importing it
stays fast; users import the same names from ``backprop_oracle`` itself:

    from backprop_oracle import check_function, check_layer, check_network, assert_gradients_match
    from backprop_oracle import check_optimizer, check_schedule
    from backprop_oracle import ExperimentSpec, run_lockstep, PRESETS, load_dataset
    from backprop_oracle import with_changes, sweep, load_config, dump_config

The rooms, from the bottom of the arrows up (each subpackage's docstring says what it may import):

    errors, tables,  shared by every room: the user's-mistake errors, text tables,
    files            files written whole or not at all
    interactive      what a person sees and waits for: HTML of results, progress, figures, threads
    data             data sets, IDX files, target encodings
    verdict          tolerances, element-by-element diffs, localising the first wrong node
    flat             a side's parameters and gradients as views of one buffer, compared in one piece
    network          a network as a layers list: the layer kinds, the syntax, the shapes checked
    experiments      ExperimentSpec and the presets
    layouts          the user's layout (examples in columns, W (in, out), lists) and networks as objects
    sides            the NumPy and the torch network of one spec behind one interface
    lockstep         both sides run step by step and compared, differences proven; results, reports
    train            the torch side trained alone (GPU, DDP)
    updates          hand-written optimizer steps and learning-rate schedules against torch.optim
    checkpoints      a run saved and resumed exactly; the two sides' formats converted
    trace            one example through one step, every intermediate beside its formula
    check            the public gradient checks and the pytest plugin
    dashboards       TensorBoard logs, pictures, progress bars
    bench            the timings of backprop-oracle bench
    keys             every registry key with its torch name and arguments (list --keys)
    arguments        the command line's value types, each refusing a bad value by name
    spread           run's lockstep runs spread over torchrun's processes, reported once by rank 0
    cli              the command line
"""
_LAZY = {
    "check_function": "backprop_oracle.compare.check.api",
    "check_layer": "backprop_oracle.compare.check.api",
    "check_network": "backprop_oracle.compare.check.api",
    "assert_gradients_match": "backprop_oracle.compare.check.api",
    "CheckResult": "backprop_oracle.compare.check.api",
    "check_optimizer": "backprop_oracle.compare.updates.optimizer",
    "assert_optimizer_matches": "backprop_oracle.compare.updates.optimizer",
    "check_schedule": "backprop_oracle.compare.updates.schedule",
    "assert_schedule_matches": "backprop_oracle.compare.updates.schedule",
    "UpdateResult": "backprop_oracle.compare.updates.result",
    "forward_backward": "backprop_oracle.compare.check.api",
    "layer_chain": "backprop_oracle.compare.check.api",
    "per_example": "backprop_oracle.compare.check.api",
    "cached_layer": "backprop_oracle.compare.check.api",
    "Layout": "backprop_oracle.compare.check.api",
    "CheckError": "backprop_oracle.compare.errors",
    "SpecError": "backprop_oracle.compare.errors",
    "DataError": "backprop_oracle.compare.errors",
    "ExperimentSpec": "backprop_oracle.compare.experiments.spec",
    "PRESETS": "backprop_oracle.compare.experiments.presets",
    "with_changes": "backprop_oracle.compare.experiments.overrides",
    "sweep": "backprop_oracle.compare.experiments.sweep",
    "load_config": "backprop_oracle.compare.experiments.config",
    "dump_config": "backprop_oracle.compare.experiments.config",
    "load_dataset": "backprop_oracle.compare.data.datasets",
    "run_lockstep": "backprop_oracle.compare.lockstep.run",
    "LockstepRun": "backprop_oracle.compare.lockstep.run",
    "LockstepResult": "backprop_oracle.compare.lockstep.result",
    "trace_example": "backprop_oracle.compare.trace.example",
    "format_trace": "backprop_oracle.compare.trace.example",
    "TorchRun": "backprop_oracle.compare.train.torch_only",
    "load_checkpoint": "backprop_oracle.compare.checkpoints",
    "save_checkpoint": "backprop_oracle.compare.checkpoints",
    "convert_checkpoint": "backprop_oracle.compare.checkpoints",
    "Saver": "backprop_oracle.compare.checkpoints",
}

__all__ = list(_LAZY)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'backprop_oracle.compare' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(_LAZY[name]), name)


def __dir__():
    return sorted(list(globals()) + __all__)
