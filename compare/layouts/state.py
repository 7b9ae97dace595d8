"""What a layer holds besides its parameters: its mode (``training``), its buffers (a batch norm's
running_mean, running_var, num_batches_tracked) and whether its forward is random (a dropout drawing
a new mask each call), as check_layer carries them to the torch module and compares them.

check_layer gives the torch module the layer's mode and the buffers of ``before`` (taken before
the layer's forward); after both forwards each buffer of the layer is compared with the module's
(a running statistic updated by a wrong rule is a mismatch of its own kind, even when every
gradient is right), and the layer's buffers are put back after the check. Central differences need
a forward that returns the same y for the same x: a random one is refused, never judged.
Imports compare.errors and NumPy only.
"""
import numpy as np

from backprop_oracle.compare.errors import CheckError

SUFFIX = " (buffer after forward)"


def layer_buffers(layer):
    """{name: array} of the layer's buffers (manual.Module.named_buffers), {} for a layer without."""
    named = getattr(layer, "named_buffers", None)
    if not callable(named):
        return {}
    return {n: b for n, b in named() if isinstance(b, np.ndarray)}


class LayerState:
    """The layer's mode and buffers: ``training`` (None where the layer states none), ``before`` (the
    buffers the torch module starts from), ``module_after`` (the module's, set by check_layer)."""

    def __init__(self, layer):
        self.layer = layer
        self.training = None if not hasattr(layer, "training") else bool(layer.training)
        self.saved = {n: np.array(b, copy=True) for n, b in layer_buffers(layer).items()}
        self.before, self.module_after = dict(self.saved), None

    def snapshot(self):
        """Before the layer's forward: the buffers the torch module starts from."""
        self.before = {n: np.array(b, copy=True) for n, b in layer_buffers(self.layer).items()}
        self.module_after = None

    def check_module_buffers(self, own):
        """Refuse a torch module (its {name: tensor} buffers) lacking one of the layer's buffers."""
        for n, value in self.before.items():
            if own.get(n) is None:
                raise CheckError(f"your layer has the buffer {n!r} but the torch module has none "
                                 f"(its buffers are {', '.join(k for k, v in own.items() if v is not None) or 'none'}); "
                                 "name the buffer as torch does, or build the module with the same options "
                                 "(e.g. track_running_stats)")
            if tuple(own[n].shape) != value.shape:
                raise CheckError(f"buffer {n!r} has shape {value.shape} but the torch module's has {tuple(own[n].shape)}")

    def pairs(self):
        """[(name, yours, torch)] of every buffer after this trial's forward ([] without a module's)."""
        if not self.module_after:
            return []
        now = layer_buffers(self.layer)
        return [(n + SUFFIX, np.asarray(now[n], dtype=np.float64), ref) for n, ref in self.module_after.items()]

    def restore(self):
        now = layer_buffers(self.layer)
        for n, value in self.saved.items():
            if n in now:
                now[n][...] = value       # in place: the layer (or the dict it keeps them in) holds its arrays

    def notes(self, reference_is_module):
        if not self.saved:
            return []
        names = ", ".join(self.saved)
        mode = "evaluation" if self.training is False else "training"
        if reference_is_module:
            return [f"the torch module ran in {mode} mode, as your layer is, from your layer's buffers; "
                    f"{names} were compared after each forward and put back after the check"]
        return [f"your layer ran in {mode} mode; its buffers {names} were not compared (only a torch module "
                "has buffers to compare them with) and were put back after the check"]


def buffer_reason(diff_name):
    """Why a buffer that is the only thing wrong is wrong: torch's rule for it."""
    name = diff_name.removesuffix(SUFFIX)
    rule = ("torch keeps running = (1 - momentum) running + momentum batch statistic, and for "
            "running_var the unbiased variance var·n/(n - 1), while it normalises with the biased one"
            if name in ("running_mean", "running_var") else
            "torch adds 1 to num_batches_tracked at each training forward" if name == "num_batches_tracked" else
            "the torch module updates it in its forward")
    return f"every output and gradient is right, but the buffer {name} is updated differently: {rule}"


def require_deterministic(forward, x, what):
    """Refuse a forward that gives two different y for the same x (central differences need one)."""
    y1 = np.array(forward(x), dtype=np.float64, copy=True)
    y2 = np.asarray(forward(x), dtype=np.float64)
    if y1.shape != y2.shape or not np.array_equal(y1, y2, equal_nan=True):
        raise CheckError(f"{what}.forward returned different values for the same input (a dropout drawing a "
                         "new mask each call?), so central differences cannot check it: hold the mask fixed "
                         "(manual.Dropout(p, mask=lambda shape, p: keep)), or compare with torch_ref.Dropout("
                         "p, mask=...) reading your layer's mask")
