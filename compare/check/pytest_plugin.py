"""pytest plugin, registered as ``backprop_oracle`` under the pytest11 entry point, so a course's
test file needs no import at all:

    def test_my_linear(check_gradients):
        check_gradients.layer(MyLinear(3, 2), torch.nn.Linear(3, 2), input_shape=(4, 3))

    def test_my_backprop(check_gradients):
        check_gradients.network(backprop, sizes=(2, 3, 1), activation="sigmoid",
                                output_activation="sigmoid", loss="squared_error")

A mismatch fails the test with the check's report as the message. The checks (and torch) are
imported only when the fixture is used, so the plugin costs nothing in other test runs.
Disable it with ``pytest -p no:backprop_oracle``.
"""
import pytest


@pytest.fixture
def check_gradients():
    """A compare.check.GradientChecker: .function(...), .layer(...), .network(...), .optimizer(...),
    .schedule(...), or call it
    like compare.check.assert_gradients_match."""
    from backprop_oracle.compare.check.api import GradientChecker
    return GradientChecker()
