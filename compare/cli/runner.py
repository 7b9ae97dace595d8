"""Run presets: every run of each preset in lockstep, with command-line overrides applied."""
import os
from contextlib import contextmanager
from dataclasses import replace

import torch
from threadpoolctl import threadpool_limits

from backprop_oracle import torch_ref
from backprop_oracle.compare.data.datasets import load_dataset
from backprop_oracle.compare.data.idx import MNIST_FILES
from backprop_oracle.compare.experiments.presets import on_mnist, select_presets
from backprop_oracle.compare.experiments.spec import SpecError, optimizer_arguments
from backprop_oracle.compare.lockstep.run import LockstepRun
from backprop_oracle.manual import OPTIMIZERS

def apply_overrides(spec, overrides):
    """The spec with overrides applied; batch_size "full" means the whole training set.

    A new optimizer keeps the preset's optimizer_args that it takes too (weight_decay) and drops
    the rest (SGD's momentum, Adam's betas): they belong to the old update rule, and passing them
    on would only fail. ``dropped_arguments`` says which were dropped.
    """
    changes = {k: v for k, v in (overrides or {}).items() if v is not None}
    if changes.get("optimizer", spec.optimizer) != spec.optimizer and changes["optimizer"] in OPTIMIZERS:
        takes = optimizer_arguments(changes["optimizer"])
        changes["optimizer_args"] = {k: v for k, v in spec.optimizer_args.items() if k in takes}
    if changes.get("batch_size") == "full":   # with_overrides skips None, so set the full batch here
        del changes["batch_size"]
        spec = replace(spec, batch_size=None)
    return spec.with_overrides(**changes)


def dropped_arguments(spec, overrides):
    """The preset's optimizer_args that ``apply_overrides`` drops for a new optimizer, e.g. ["momentum"]."""
    new = (overrides or {}).get("optimizer")
    if new is None or new == spec.optimizer or new not in OPTIMIZERS:
        return []
    return [k for k in spec.optimizer_args if k not in optimizer_arguments(new)]


def _check_batch_size(name, spec, n_train):
    if spec.batch_size is not None and spec.batch_size > n_train:
        raise SpecError(f"{name}: batch size {spec.batch_size} is larger than its training set of "
                        f"{n_train} examples; use at most {n_train}, or 'full' for the whole set")


def preset_overrides(preset, overrides):
    """The overrides without those ``preset`` is about (``Preset.fixed``): under ``run all`` it keeps
    its own. Returns (overrides, [fields kept])."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    kept = [f for f in preset.fixed if f in overrides]
    return {k: v for k, v in overrides.items() if k not in kept}, kept


def check_overrides(presets, overrides, everything=False):
    """Raise SpecError for an override that makes no sense for one of ``presets``, before anything
    runs: one the preset is about (``Preset.fixed``; under ``everything``, run all, that preset keeps
    its own instead), a batch larger than a training set, a device that is not here. Returns every
    run's spec with the overrides applied."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    specs = []
    for preset in presets:
        own, kept = preset_overrides(preset, overrides)
        if kept and not everything:
            field = kept[0]
            raise SpecError(f"{preset.name} compares runs that differ only in {field}; overriding "
                            f"--{field.replace('_', '-')} would make them the same. Leave it out, or "
                            f"run the other presets without {preset.name}")
        for name, spec in zip(preset.run_names(), preset.runs.values()):
            spec = apply_overrides(spec, own)
            # Data sets are small and made in milliseconds, except MNIST: its size is checked
            # when it is loaded, by LockstepRun (compare.experiments.setup.prepare).
            if isinstance(spec.batch_size, int) and spec.dataset != "mnist":
                ds = load_dataset(spec.dataset, seed=spec.seed, **spec.dataset_args)
                _check_batch_size(name, spec, ds.X_train.shape[0])
            specs.append((name, spec))
    if "device" in overrides:
        try:
            torch_ref.resolve_device(overrides["device"])
        except ValueError as e:
            raise SpecError(str(e)) from None
    return specs


def use_mnist(presets, directory, limit=None):
    """``presets`` with "digits" switched to MNIST from ``directory`` (compare.experiments.presets.on_mnist).

    Raises SpecError when the directory or one of its four IDX files is missing, or when no
    digits preset was asked for (MNIST has no other preset to go to).
    """
    if not any(p.name == "digits" for p in presets):
        raise SpecError("--mnist-dir switches the digits preset to MNIST, but digits is not being run; "
                        "add 'digits' (or 'all') to the presets")
    if not os.path.isdir(directory):
        raise SpecError(f"--mnist-dir: {directory} is not a directory; give the directory that holds "
                        f"{', '.join(MNIST_FILES.values())} (each plain or .gz)")
    for stem in MNIST_FILES.values():
        if not any(os.path.isfile(os.path.join(directory, stem + ext)) for ext in ("", ".gz")):
            raise SpecError(f"--mnist-dir: {os.path.join(directory, stem)} not found (nor {stem}.gz); "
                            f"the directory must hold all four MNIST files")
    return [on_mnist(p, directory, limit) if p.name == "digits" else p for p in presets]


def select_runs(names, overrides, mnist_dir=None, mnist_limit=None):
    """What a command line asks for: the presets named (with digits on MNIST when ``mnist_dir``
    is given) and every run's spec with ``overrides`` applied, all checked before anything runs.
    Returns (presets, [(run name, spec), ...])."""
    presets = select_presets(names)
    if mnist_limit is not None and mnist_dir is None:
        raise SpecError("--mnist-limit needs --mnist-dir")
    if mnist_dir is not None:
        presets = use_mnist(presets, mnist_dir, mnist_limit)
    return presets, check_overrides(presets, overrides, everything="all" in names)


@contextmanager
def single_threaded():
    """Run NumPy's BLAS and torch on one thread each, then restore both.

    The networks here are tiny (a matrix product is microseconds): a second thread costs more in
    hand-over than it saves, and on a busy machine the waiting threads made each step 2 to 6
    times slower (measured: 1.3 ms against 3.6 to 21 ms a step for the spiral network).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(previous)


def run_preset(preset, overrides=None, observers_for=None):
    """Run every run of ``preset``; returns [(run name, LockstepResult, (goal met, goal text) or None)].

    ``observers_for(run_name, spec)`` returns the observers (progress bar, TensorBoard) for one run.
    """
    overrides, _ = preset_overrides(preset, overrides)      # run all: it keeps what it is about
    specs = [(name, apply_overrides(spec, overrides))
             for name, spec in zip(preset.run_names(), preset.runs.values())]
    out = []
    for (name, spec), label in zip(specs, preset.runs):
        with single_threaded():
            run = LockstepRun(spec, name=name)    # refuses a batch larger than the data (MNIST's too)
            run.observers = list(observers_for(name, spec)) if observers_for else []
            result = run.run()
        expectation = preset.expect.get(label)
        goal = None
        if expectation is not None:
            ok, value = expectation.check(result)
            goal = (ok, f"{expectation}, reached {value if value is None else format(value, '.4g')}")
        out.append((name, result, goal))
    return out
