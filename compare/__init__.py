"""compare: runs manual/ and torch_ref/ side by side, and checks hand-derived gradients.

The checks load on first use (they import torch), so ``import compare`` stays fast:

    from compare import check_function, check_layer, check_network, assert_gradients_match
"""
_LAZY = {
    "check_function": "compare.check",
    "check_layer": "compare.check",
    "check_network": "compare.check",
    "assert_gradients_match": "compare.check",
    "CheckResult": "compare.check",
    "CheckError": "compare.check",
    "trace_example": "compare.trace",
    "format_trace": "compare.trace",
}

__all__ = list(_LAZY)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'compare' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(_LAZY[name]), name)
