"""Where an image's channels are: torch's channels-first NCHW (N, C, H, W), or the channels-last
NHWC (N, H, W, C) that TensorFlow and many hand-written NumPy layers use. The reference runs in
NCHW; a check converts the user's arrays at the boundary with these two functions and its results
back, so that its report speaks of the user's shapes and indices.

Both layouts apply to arrays of 3 or more dimensions (NHWC is NLC for a sequence, (N, L, C));
an array of fewer dimensions (a flattened (N, D), a bias) has no channel axis to move.
"""
import numpy as np

from backprop_oracle.compare.errors import CheckError

IMAGE_LAYOUTS = {
    "NCHW": "channels first, (N, C, H, W), torch's layout",
    "NHWC": "channels last, (N, H, W, C)",
}


def check_image_layout(layout):
    """The layout's name, or a CheckError listing the valid ones."""
    if layout not in IMAGE_LAYOUTS:
        raise CheckError(f"unknown layout {layout!r}; choose one of: "
                         + ", ".join(f"{k} ({v})" for k, v in IMAGE_LAYOUTS.items()))
    return layout


def to_nchw(a, layout):
    """An array in ``layout`` as torch's (N, C, H, W): NHWC's last axis moved to position 1."""
    a = np.asarray(a)
    if layout == "NCHW" or a.ndim < 3:
        return a
    return np.ascontiguousarray(np.moveaxis(a, -1, 1))


def from_nchw(a, layout):
    """Torch's (N, C, H, W) as an array in ``layout``: NHWC's channels moved from position 1 to last."""
    a = np.asarray(a)
    if layout == "NCHW" or a.ndim < 3:
        return a
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))
