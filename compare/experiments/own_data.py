"""A preset's network on the user's own data (the data set "file", compare.data.user_data).

The preset keeps its hidden layers, activations, loss, optimizer and hyperparameters; the input
and output sizes follow the file (compare.experiments.setup.prepare sizes the network to its data
set). What belonged to the preset's own data goes: its initial weights (shaped for that data), its
data set's options, and its goal (a figure reached on that data).
"""
import os
import re
from dataclasses import replace

from backprop_oracle.compare.experiments.spec import SpecError


def data_args(path, *, target=None, task=None, standardize=False, val_fraction=None):
    """The data set arguments of "file" for ``path`` (made absolute, so that a checkpoint's spec
    names the same file from any folder)."""
    args = {"path": os.path.abspath(os.fspath(path))}
    if target is not None:
        args["target"] = target
    if task is not None:
        args["task"] = task
    if standardize:
        args["standardize_features"] = True
    if val_fraction is not None:
        args["val_fraction"] = val_fraction
    return args


def on_file(preset, path, **options):
    """``preset`` with every run trained on the file at ``path`` (options: target, task,
    standardize, val_fraction, as ``data_args``); its runs are named PRESET-FILESTEM."""
    if any(spec.dataset == "mnist" for spec in preset.runs.values()):
        raise SpecError("--data and --mnist-dir both choose the data; give one of them")
    args = data_args(path, **options)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.splitext(os.path.basename(args["path"]))[0]) or "data"
    base, _, label = preset.name.partition(":")
    name = f"{base}-{stem}" + (f":{label}" if label else "")
    return replace(preset, name=name, expect={},
                   runs={label: replace(spec, dataset="file", dataset_args=dict(args), initial_params=None)
                         for label, spec in preset.runs.items()})
