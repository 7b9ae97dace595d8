"""Check your own hand-derived gradients: the public face of the checks.

    check_function(f, grad, torch_f=None, shapes=...)      a function and its backward
    check_layer(layer, torch.nn.Linear(3, 2), input_shape=(4, 3))    a manual-style layer
    check_network(fn, sizes=(2, 3, 1), activation=..., loss=...)   a whole network's backprop, in its
                                                            own layout (layout="auto") or as an object
    assert_gradients_match(...)                             any of them, as a test assertion

Each returns a CheckResult: ``passed``, every tensor's worst element with both values, absolute
and relative error and the tolerance, the first wrong tensor with the reason in plain words,
and ``report()``; in a notebook a result shows as a table. Relative error is
|a - b| / max(1e-8, |a| + |b|) (compare.verdict.diff.relative_error). Each check runs torch and
NumPy's BLAS on one thread, as the command line does (compare.interactive.threads: the fastest for
arrays this small), and restores the caller's thread counts after.
"""
from backprop_oracle.compare.check.common import CheckError, PrecisionWarning
from backprop_oracle.compare.check.functions import check_function
from backprop_oracle.compare.check.layers import check_layer
from backprop_oracle.compare.check.networks import NetworkSpec, check_network
from backprop_oracle.compare.check.result import CheckResult
from backprop_oracle.compare.layouts.adapters import forward_backward, layer_chain, model_loss, per_example
from backprop_oracle.compare.layouts.cached import cached_layer
from backprop_oracle.compare.layouts.layout import Layout

__all__ = ["check_function", "check_layer", "check_network", "assert_gradients_match",
           "GradientChecker", "CheckResult", "CheckError", "PrecisionWarning", "NetworkSpec",
           "forward_backward", "layer_chain", "model_loss", "per_example", "cached_layer", "Layout"]


def _pick(target, args, kwargs):
    """The check a call to assert_gradients_match means, from its arguments."""
    if isinstance(target, CheckResult) or (hasattr(target, "passed") and callable(getattr(target, "report", None))):
        return None
    if hasattr(target, "backward") and hasattr(target, "forward"):
        return check_layer
    if "spec" in kwargs or "sizes" in kwargs or (args and isinstance(args[0], (dict, NetworkSpec))):
        return check_network
    return check_function


def assert_gradients_match(target, *args, **kwargs):
    """Run a check and raise AssertionError, with the report as its message, if it fails.

    target is a CheckResult (asserted as it is), a layer (forward/backward: check_layer), a
    network function when a spec (``spec=``, ``sizes=``, or a dict / NetworkSpec second) is given
    (check_network), or else a function
    (check_function(target, grad, torch_f, ...)). Returns the CheckResult when it passes.
    """
    __tracebackhide__ = True   # pytest shows the test's line, not this one
    check = _pick(target, args, kwargs)
    result = target if check is None else check(target, *args, **kwargs)
    if not result.passed:
        # The first line is the one-line verdict pytest puts in its short test summary.
        raise AssertionError(result.summary() + "\n\n" + result.report())
    return result


class GradientChecker:
    """What the pytest fixture ``check_gradients`` gives a test: each method runs a check and
    fails the test with the report on a mismatch; calling it is assert_gradients_match."""

    def function(self, f, grad, torch_f=None, **kwargs):
        __tracebackhide__ = True
        return assert_gradients_match(check_function(f, grad, torch_f, **kwargs))

    def layer(self, layer, reference=None, **kwargs):
        __tracebackhide__ = True
        return assert_gradients_match(check_layer(layer, reference, **kwargs))

    def network(self, fn, spec=None, **kwargs):
        __tracebackhide__ = True
        return assert_gradients_match(check_network(fn, spec, **kwargs))

    def optimizer(self, step, optimizer="sgd", steps=10, **kwargs):
        """compare.updates.check_optimizer: a hand-written update rule against torch.optim."""
        __tracebackhide__ = True
        from backprop_oracle.compare.updates.optimizer import check_optimizer
        return assert_gradients_match(check_optimizer(step, optimizer, steps, **kwargs))

    def schedule(self, schedule, kind="step", epochs=10, **kwargs):
        """compare.updates.check_schedule: a hand-written learning-rate schedule against torch's."""
        __tracebackhide__ = True
        from backprop_oracle.compare.updates.schedule import check_schedule
        return assert_gradients_match(check_schedule(schedule, kind, epochs, **kwargs))

    def __call__(self, target, *args, **kwargs):
        __tracebackhide__ = True
        return assert_gradients_match(target, *args, **kwargs)
