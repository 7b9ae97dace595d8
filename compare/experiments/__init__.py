"""Experiments: what to run. ``ExperimentSpec`` names every part of a run (data, network, loss,
optimizer, schedule, initialisation, dtype, device) and validates it; the presets are the teaching
texts' experiments written as specs.

Imports compare.errors, compare.data and manual (the valid names, the network's layout and its
initial weights) and compare.network (a layers list's kinds and shapes); never torch.

    spec       ExperimentSpec, SpecError
    presets    PRESETS, get_preset(name), select_presets(names), on_mnist(preset, dir)
    overrides  with_changes(spec, lr=5, momentum=0.9, hidden_sizes=(32, 32)): the command line's changes
    sweep      sweep(spec, lr=[0.5, 5, 50]), expand(preset, changes): a run per swept value
    config     load_config(path), parse_config(text), dump_config(preset): experiment files in TOML
    setup      prepare (data, targets, sizes), initial_state, epoch_batches, evaluate
"""
