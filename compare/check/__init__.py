"""Check your own hand-derived gradients: a function and its backward, a layer, a whole network,
against torch autograd (or finite differences), with a report that names the first wrong tensor.

    from backprop_oracle.compare.check import check_function, check_layer, check_network, assert_gradients_match

Imports compare.verdict (tolerances, diff, localise), compare.experiments (a network's spec),
compare.data (targets), compare.errors, compare.tables, compare.updates (the fixture's .optimizer and
.schedule), compare.layouts (the user's layout and networks as objects), compare.interactive (HTML,
thread counts), manual and torch; never the lockstep run,
the dashboards or the command line. The names below load on first use, so that the pytest plugin
(``pytest_plugin``) costs nothing until its fixture is used.

    api           check_function, check_layer, check_network, assert_gradients_match, GradientChecker
    functions     check_function      layers    check_layer        networks   check_network
    netspec       NetworkSpec         result    CheckResult (its report, and its HTML in a notebook)
    parameters    where a layer keeps its parameters and gradients
    common        CheckError, precision, calling user code
"""
_PUBLIC = ("check_function", "check_layer", "check_network", "assert_gradients_match", "GradientChecker",
           "CheckResult", "CheckError", "PrecisionWarning", "NetworkSpec",
           "forward_backward", "layer_chain", "model_loss", "per_example", "cached_layer", "Layout")

__all__ = list(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'backprop_oracle.compare.check' has no attribute {name!r}")
    from backprop_oracle.compare.check import api
    return getattr(api, name)
