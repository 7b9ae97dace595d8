"""Experiments: what to run. ``ExperimentSpec`` names every part of a run (data, network, loss,
optimizer, schedule, initialisation, dtype, device) and validates it; the presets are the teaching
texts' experiments written as specs.

Imports compare.errors, compare.data and manual (the valid names, the network's layout and its
initial weights); never torch.

    spec       ExperimentSpec, SpecError
    presets    PRESETS, get_preset(name), select_presets(names), on_mnist(preset, dir)
    setup      prepare (data, targets, sizes), initial_state, epoch_batches, evaluate
"""
