"""Run presets: every run of each preset (or experiment file) in lockstep, with the command line's
changes applied and its sweeps expanded."""
import os
from dataclasses import replace

import numpy as np

from backprop_oracle import torch_ref
from backprop_oracle.compare.data.datasets import load_dataset
from backprop_oracle.compare.data.idx import MNIST_FILES
from backprop_oracle.compare.errors import DataError
from backprop_oracle.compare.experiments.config import load_config
from backprop_oracle.compare.experiments.overrides import with_changes
from backprop_oracle.compare.experiments.presets import MNIST_PRESETS, on_mnist, select_presets
from backprop_oracle.compare.experiments.setup import initial_state, prepare
from backprop_oracle.compare.experiments.spec import SpecError, optimizer_arguments
from backprop_oracle.compare.experiments.sweep import expand
from backprop_oracle.compare.lockstep.run import LockstepRun
from backprop_oracle.compare.interactive.threads import single_threaded
from backprop_oracle.manual import OPTIMIZERS

def apply_overrides(spec, overrides):
    """The spec with overrides (the command line's changes, compare.experiments.overrides) applied;
    batch_size "full" means the whole training set. A new optimizer keeps the preset's
    optimizer_args that it takes too (weight_decay) and drops the rest (``dropped_arguments``)."""
    return with_changes(spec, **(overrides or {}))


def dropped_arguments(spec, overrides):
    """The preset's optimizer_args that ``apply_overrides`` drops for a new optimizer, e.g. ["momentum"]."""
    new = (overrides or {}).get("optimizer")
    if new is None or new == spec.optimizer or new not in OPTIMIZERS:
        return []
    return [k for k in spec.optimizer_args if k not in optimizer_arguments(new)]


def preset_overrides(preset, overrides):
    """The overrides without those ``preset`` is about (``Preset.fixed``): under ``run all`` it keeps
    its own. Returns (overrides, [fields kept])."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    kept = [f for f in preset.fixed if f in overrides]
    return {k: v for k, v in overrides.items() if k not in kept}, kept


# The options whose names are not their field's
FLAGS = {"hidden_sizes": "hidden"}


def expand_presets(presets, overrides, everything=False):
    """Each preset with the overrides applied to each run and a run per combination of swept values
    (compare.experiments.sweep.expand), its ``notes`` saying what the changes dropped. An override a
    preset is about (``Preset.fixed``) is refused; under ``everything`` (run all) it keeps its own."""
    out = []
    for preset in presets:
        own, kept = preset_overrides(preset, overrides)
        if kept and not everything:
            field = kept[0]
            raise SpecError(f"{preset.name} compares runs that differ only in {preset.fixed[0]}; overriding "
                            f"--{FLAGS.get(field, field.replace('_', '-'))} would make them the same. Leave it out, or "
                            f"run the other presets without {preset.name}")
        notes = []
        expanded = expand(preset, own, notes)
        out.append(replace(expanded, notes=tuple(notes)))
    return out


def _check_run(name, spec):
    """What ``LockstepRun`` would refuse once started, refused now: a data set that is not there, a
    batch larger than the training set, a softmax over one output, initial weights that do not fit."""
    try:
        ds = load_dataset(spec.dataset, seed=spec.seed, **spec.dataset_args)
    except DataError as e:
        raise DataError(f"{name}: {e}") from None
    n_train = ds.X_train.shape[0]
    if spec.batch_size is not None and spec.batch_size > n_train:
        raise SpecError(f"{name}: batch size {spec.batch_size} is larger than its training set of "
                        f"{n_train} examples; use at most {n_train}, or 'full' for the whole set")
    try:
        problem = prepare(spec, ds)
    except SpecError as e:
        raise SpecError(f"{name}: {e}") from None
    try:
        initial_state(spec, problem.sizes, np.random.default_rng(spec.seed))
    except SpecError as e:
        raise SpecError(f"{name}: {e}; the network is {'-'.join(map(str, problem.sizes))}") from None


def check_overrides(presets, overrides, everything=False):
    """Raise SpecError for an override that makes no sense for one of ``presets``, before anything
    runs: one the preset is about (``Preset.fixed``; under ``everything``, run all, that preset keeps
    its own instead), incompatible parts (ExperimentSpec.validate), a batch larger than a training
    set, a device that is not here. Returns every run's (name, spec) with the overrides applied."""
    return _specs(expand_presets(presets, overrides, everything), overrides)


def _specs(expanded, overrides):
    specs = []
    for preset in expanded:
        for name, spec in zip(preset.run_names(), preset.runs.values()):
            # Data sets are small and made in milliseconds, except MNIST: its size is checked
            # when it is loaded, by LockstepRun (compare.experiments.setup.prepare).
            if spec.dataset != "mnist":
                _check_run(name, spec)
            specs.append((name, spec))
    device = (overrides or {}).get("device")
    if device is not None:
        try:
            torch_ref.resolve_device(device)
        except ValueError as e:
            raise SpecError(str(e)) from None
    return specs


def use_mnist(presets, directory, limit=None):
    """``presets`` with digits and digits-cnn switched to MNIST from ``directory``
    (compare.experiments.presets.on_mnist: MNIST_PRESETS).

    Raises SpecError when the directory or one of its four IDX files is missing, or when neither
    preset was asked for (MNIST has no other preset to go to).
    """
    if not any(p.name in MNIST_PRESETS for p in presets):
        raise SpecError("--mnist-dir switches the digits preset to MNIST (and digits-cnn to its 28x28 network), "
                        "but neither is being run; add 'digits' or 'digits-cnn' (or 'all') to the presets")
    if not os.path.isdir(directory):
        raise SpecError(f"--mnist-dir: {directory} is not a directory; give the directory that holds "
                        f"{', '.join(MNIST_FILES.values())} (each plain or .gz)")
    for stem in MNIST_FILES.values():
        if not any(os.path.isfile(os.path.join(directory, stem + ext)) for ext in ("", ".gz")):
            raise SpecError(f"--mnist-dir: {os.path.join(directory, stem)} not found (nor {stem}.gz); "
                            f"the directory must hold all four MNIST files")
    return [on_mnist(p, directory, limit) if p.name in MNIST_PRESETS else p for p in presets]


def select_runs(names, overrides, mnist_dir=None, mnist_limit=None, config=None):
    """What a command line asks for: the presets named and the experiment file ``config`` (with
    digits and digits-cnn on MNIST when ``mnist_dir`` is given), ``overrides`` applied to every run and swept
    values expanded into runs, all checked before anything runs.
    Returns (presets as they will run, [(run name, spec), ...])."""
    presets = select_presets(names) if names or config is None else []
    if config is not None:
        presets.append(load_config(config))
    if mnist_limit is not None and mnist_dir is None:
        raise SpecError("--mnist-limit needs --mnist-dir")
    if mnist_dir is not None:
        presets = use_mnist(presets, mnist_dir, mnist_limit)
    expanded = expand_presets(presets, overrides, everything="all" in names)
    runs = _specs(expanded, overrides)
    seen = set()
    for name, _ in runs:
        if name in seen:
            raise SpecError(f"two runs are named {name}: the experiment file is named as a preset that runs "
                            "too; give the file another name = \"...\"")
        seen.add(name)
    return expanded, runs


class EpochFigures:
    """Observer: each side's training and validation accuracy and validation cost at every epoch the
    run evaluates (about 100 a run, compare.experiments.setup.default_eval_every), for the picture of
    a preset about generalisation; the run's ``extra["epochs"]``."""
    KEYS = ("train_accuracy", "val_accuracy", "val_cost")

    def __init__(self):
        self.curves = {"epoch": [], **{f"{k}_{s}": [] for k in self.KEYS for s in ("manual", "torch")}}

    def on_epoch(self, run, record):
        if record.evaluated:
            self.curves["epoch"].append(record.epoch)
            for key in self.curves:
                if key != "epoch":
                    self.curves[key].append(getattr(record, key))

    def reads_sides_at(self, step):
        return False          # only the records (compare.lockstep.blocks)


def run_preset(preset, overrides=None, observers_for=None, resume=None):
    """Run every run of ``preset``; returns [(run name, LockstepResult, (goal met, goal text) or None)].

    ``observers_for(run_name, spec)`` returns the observers (progress bar, TensorBoard) for one run;
    ``resume``: a checkpoint to continue from (compare.lockstep.checkpoint; a preset of one run).
    """
    overrides, _ = preset_overrides(preset, overrides)      # run all: it keeps what it is about
    specs = [(name, apply_overrides(spec, overrides))
             for name, spec in zip(preset.run_names(), preset.runs.values())]
    return [run_one(preset, label, name, spec, observers_for, resume)
            for (name, spec), label in zip(specs, preset.runs)]


def run_one(preset, label, name, spec, observers_for=None, resume=None):
    """Run ``preset``'s run ``label`` (named ``name``, its spec ``spec``); returns (run name,
    LockstepResult, (goal met, goal text) or None) as ``run_preset`` does for each."""
    with single_threaded():
        run = LockstepRun(spec, name=name, resume=resume)    # refuses a batch larger than the data (MNIST's too)
        run.observers = list(observers_for(name, spec)) if observers_for else []
        figures = EpochFigures() if preset.picture == "generalisation" else None
        run.observers += [figures] if figures is not None else []
        result = run.run()
    if figures is not None:
        result.extra["epochs"] = figures.curves
    expectation = preset.expect.get(label)
    goal = None
    if expectation is not None:
        ok, value = expectation.check(result)
        goal = (ok, f"{expectation}, {expectation.reached(value)}")
    return name, result, goal
