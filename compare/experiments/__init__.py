"""Experiments: what to run. ``ExperimentSpec`` names every part of a run (data, network, loss,
optimizer, schedule, initialisation, dtype, device) and validates it; the presets are the teaching
texts' experiments written as specs.

Imports compare.errors and manual's registries (the valid names) only; never torch.

    spec       ExperimentSpec, SpecError
    presets    PRESETS, get_preset(name), on_mnist(preset, dir)
"""
