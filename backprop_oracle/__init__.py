"""backprop-oracle: hand-derived NumPy backpropagation, checked step by step against torch autograd.

What a user imports:

    from backprop_oracle import check_function, check_layer, check_network, assert_gradients_match
    from backprop_oracle import check_optimizer, check_schedule    # hand-written update rules, schedules
    from backprop_oracle import ExperimentSpec, run_lockstep, PRESETS, load_dataset
    from backprop_oracle import with_changes, sweep, load_config, dump_config   # experiments, sweeps, files
    from backprop_oracle import manual        # the NumPy network (never imports torch)
    from backprop_oracle import torch_ref     # the same network in torch.nn

The three parts are the repository's folders ``manual/``, ``torch_ref/`` and ``compare/``, installed
as ``backprop_oracle.manual``, ``backprop_oracle.torch_ref`` and ``backprop_oracle.compare``: short
top-level names such as ``compare`` or ``manual`` are taken on PyPI and are what a course's own files
are called (``manual.py``, ``compare.py``), and a file in the user's folder comes first on
``sys.path``; one distinctive name never clashes. Every name here loads on first use, so
``import backprop_oracle`` imports neither torch nor the comparison engine.
"""
import importlib
import os

# Installed, the three parts sit inside this package. In a checkout whose folder is the current
# directory (so this file is found before the installed copy), they are this folder's siblings.
_checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if all(os.path.isfile(os.path.join(_checkout, part, "__init__.py")) for part in ("manual", "torch_ref", "compare")) \
        and os.path.isfile(os.path.join(_checkout, "pyproject.toml")):
    __path__.append(_checkout)

_PARTS = ("manual", "torch_ref", "compare")
_PUBLIC = ("check_function", "check_layer", "check_network", "assert_gradients_match", "CheckResult",
           "check_optimizer", "check_schedule", "assert_optimizer_matches", "assert_schedule_matches", "UpdateResult",
           "CheckError", "SpecError", "DataError", "ExperimentSpec", "PRESETS", "load_dataset",
           "with_changes", "sweep", "load_config", "dump_config",
           "run_lockstep", "LockstepRun", "LockstepResult", "trace_example", "format_trace", "TorchRun",
           "forward_backward", "layer_chain", "per_example", "cached_layer", "Layout",
           "load_checkpoint", "save_checkpoint", "convert_checkpoint", "Saver")

__all__ = list(_PUBLIC) + list(_PARTS)


def __getattr__(name):
    if name in _PARTS:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _PUBLIC:
        return getattr(importlib.import_module(f"{__name__}.compare"), name)
    raise AttributeError(f"module 'backprop_oracle' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
