"""check_layer on image layers: a user's conv or pool layer against the torch module, in torch's
NCHW or in the user's channels-last NHWC (converted at the boundary and said so in the report)."""
import numpy as np
import pytest
import torch

from backprop_oracle import manual
from backprop_oracle.compare.check import CheckError, check_layer
from backprop_oracle.compare.layouts.images import from_nchw, to_nchw


def test_nchw_and_nhwc_round_trip():
    a = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    nhwc = from_nchw(a, "NHWC")
    assert nhwc.shape == (2, 4, 5, 3) and nhwc[1, 2, 3, 0] == a[1, 0, 2, 3]
    assert np.array_equal(to_nchw(nhwc, "NHWC"), a)
    assert to_nchw(a, "NCHW") is not None and np.array_equal(to_nchw(a, "NCHW"), a)
    assert np.array_equal(from_nchw(a[:, :, 0, 0], "NHWC"), a[:, :, 0, 0])      # (N, D): nothing to move


class NHWCConv(manual.Module):
    """A user's 2-D convolution that takes and returns channels-last images (N, H, W, C), its
    weight in torch's (out, in, kH, kW): wraps the manual layer, so it is right by construction."""

    def __init__(self, *args, wrong_dx=False, **kwargs):
        super().__init__()
        self.conv = manual.Conv2d(*args, **kwargs)
        self._parameters = self.conv._parameters
        self.wrong_dx = wrong_dx

    def forward(self, x):
        return np.moveaxis(self.conv.forward(np.ascontiguousarray(np.moveaxis(x, -1, 1))), 1, -1)

    def backward(self, dL_dy):
        dx = np.moveaxis(self.conv.backward(np.ascontiguousarray(np.moveaxis(dL_dy, -1, 1))), 1, -1)
        if self.wrong_dx:
            dx = dx.copy()
            dx[0, 1, 2, 0] += 1.0         # one element of dL/dx wrong, at a channels-last index
        return dx


def test_a_4d_conv_layer_checks_in_nchw():
    r = check_layer(manual.Conv2d(2, 3, 3, padding=1), torch.nn.Conv2d(2, 3, 3, padding=1), input_shape=(2, 2, 5, 5))
    assert r.passed, r.report()
    assert not any("layout" in n for n in r.notes)


def test_an_nhwc_layer_checks_against_the_nchw_torch_module_and_says_so():
    r = check_layer(NHWCConv(2, 3, 3, padding=1), torch.nn.Conv2d(2, 3, 3, padding=1), input_shape=(2, 5, 6, 2),
                    layout="NHWC")
    assert r.passed, r.report()
    assert any("layout NHWC" in n and "channels-first NCHW" in n for n in r.notes), r.notes
    assert "layout NHWC" in r.report()
    unconverted = lambda: check_layer(NHWCConv(2, 3, 3, padding=1), torch.nn.Conv2d(2, 3, 3, padding=1),
                               input_shape=(2, 5, 6, 2))
    with pytest.raises(CheckError):      # without the layout its channels-last x does not fit the torch module
        unconverted()


def test_an_nhwc_mistake_is_reported_at_the_users_own_index():
    r = check_layer(NHWCConv(2, 3, 3, padding=1, wrong_dx=True), torch.nn.Conv2d(2, 3, 3, padding=1),
                    input_shape=(2, 5, 6, 2), layout="NHWC", trials=1)
    assert not r.passed and r.mismatch.diff.name == "dL/dx", r.report()
    assert tuple(r.mismatch.diff.index) == (0, 1, 2, 0), r.report()


def test_an_nhwc_pool_without_parameters():
    class NHWCPool:
        def __init__(self):
            self.pool = manual.MaxPool2d(2)

        def forward(self, x):
            return np.moveaxis(self.pool.forward(np.ascontiguousarray(np.moveaxis(x, -1, 1))), 1, -1)

        def backward(self, g):
            return np.moveaxis(self.pool.backward(np.ascontiguousarray(np.moveaxis(g, -1, 1))), 1, -1)
    r = check_layer(NHWCPool(), torch.nn.MaxPool2d(2), input_shape=(2, 4, 6, 3), layout="NHWC", params={})
    assert r.passed, r.report()


def test_an_unknown_layout_and_a_conv_weight_of_the_wrong_shape_are_clear_errors():
    with pytest.raises(CheckError, match="unknown layout 'HWC'; choose one of: NCHW .*NHWC"):
        check_layer(manual.Conv2d(2, 3, 3), torch.nn.Conv2d(2, 3, 3), input_shape=(1, 2, 5, 5), layout="HWC")
    with pytest.raises(CheckError, match=r"a convolution's as \(out, in/groups, kH, kW\)"):
        check_layer(manual.Conv2d(2, 3, 3), torch.nn.Conv2d(3, 2, 3), input_shape=(1, 2, 5, 5))


def test_the_readmes_conv_example_runs():
    import pathlib
    text = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("**Convolution and pooling layers.**", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "README.md", "exec"), {})
