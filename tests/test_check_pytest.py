"""The pytest side: assert_gradients_match, and the check_gradients fixture that the installed
plugin (entry point pytest11: backprop_oracle) gives every test without an import."""
import textwrap

import numpy as np
import pytest
import torch

from backprop_oracle import manual
from backprop_oracle import assert_gradients_match, check_layer

pytest_plugins = ["pytester"]


class AveragedBias(manual.Linear):
    def backward(self, dL_dy):
        self.weight.grad += dL_dy.T @ self.x
        self.bias.grad += dL_dy.mean(axis=0)
        return dL_dy @ self.weight.data


def test_the_fixture_comes_from_the_installed_plugin(check_gradients, request):
    plugin = request.config.pluginmanager.get_plugin("backprop_oracle")
    assert plugin is not None and plugin.__name__ == "backprop_oracle.compare.check.pytest_plugin"
    result = check_gradients.layer(manual.Linear(3, 2), torch.nn.Linear(3, 2), input_shape=(4, 3))
    assert result.passed and result.kind == "layer"


def test_a_mismatch_fails_with_the_report_as_message(check_gradients):
    with pytest.raises(AssertionError) as info:
        check_gradients.layer(AveragedBias(3, 2), torch.nn.Linear(3, 2), input_shape=(4, 3))
    message = str(info.value)
    assert "check_layer" in message and "MISMATCH" in message
    assert "first wrong (trial" in message and "bias.grad" in message and "N = 4" in message


def test_assert_gradients_match_picks_the_check_from_its_arguments():
    sig = lambda x: 1 / (1 + np.exp(-x))
    r = assert_gradients_match(sig, lambda x, g: g * sig(x) * (1 - sig(x)), torch.sigmoid, shapes=(3, 2))
    assert r.kind == "function"
    assert assert_gradients_match(manual.Tanh(), torch.nn.Tanh(), input_shape=(3, 2)).kind == "layer"
    failed = check_layer(AveragedBias(2, 2), torch.nn.Linear(2, 2), input_shape=(5, 2))
    with pytest.raises(AssertionError, match="bias.grad"):
        assert_gradients_match(failed)


def test_a_course_test_file_needs_no_import(pytester):
    pytester.makepyfile(test_course=textwrap.dedent('''
        import numpy as np

        def sigmoid(x):
            return 1 / (1 + np.exp(-x))

        def test_sigmoid_backward(check_gradients):
            check_gradients.function(sigmoid, lambda x, g: g * sigmoid(x), shapes=(2, 3))
    '''))
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*check_function *<lambda>: MISMATCH*", "*first wrong (trial *): dL/dx [[]*"])


def test_a_network_spec_as_second_argument_means_check_network():
    def backprop(params, X, Y):
        W, b = params["0.weight"], params["0.bias"]
        y_hat = X @ W.T + b
        d = (y_hat - Y) / X.shape[0]
        return 0.5 * np.sum((Y - y_hat) ** 2) / X.shape[0], {"0.weight": d.T @ X, "0.bias": d.sum(0)}
    r = assert_gradients_match(backprop, {"sizes": [3, 2], "output_activation": "identity"})
    assert r.kind == "network" and r.name == "test_check_pytest.test_a_network_spec_as_second_argument_means_check_network.<locals>.backprop"


def test_pytests_short_summary_shows_the_one_line_verdict(pytester):
    pytester.makepyfile(test_layer=textwrap.dedent('''
        import numpy as np
        import torch

        class Transposed:
            def __init__(self):
                self.W, self.b = np.ones((2, 3)), np.zeros(2)

            def forward(self, x):
                self.x = x
                return x @ self.W.T + self.b

            def backward(self, dy):
                self.dW, self.db = self.x.T @ dy, dy.sum(0)
                return dy @ self.W

        def test_my_layer(check_gradients):
            check_gradients.layer(Transposed(), None, input_shape=(4, 3))
    '''))
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", "-rf")
    result.assert_outcomes(failed=1)
    # The assertion's first line, which pytest shows first and in its short summary, is the verdict.
    result.stdout.fnmatch_lines(["E       AssertionError: check_layer test_layer.Transposed: W.grad wrong: "
                                 "W.grad has shape (3, 2) where W is (2, 3): it looks transposed*",
                                 "FAILED test_layer.py::test_my_layer - AssertionError: check_layer test_layer*"])
    assert "CheckError" not in result.stdout.str()
