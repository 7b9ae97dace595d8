"""Batch and layer normalisation, with torch.nn.BatchNorm1d / BatchNorm2d / LayerNorm's shapes,
names, defaults and running statistics.

Both normalise x over some axes (a batch norm over the examples and positions of each channel, a
layer norm over the last dimensions of each example) with the same two pure functions:

    forward    mu = mean(x),  var = mean((x - mu)^2)   (biased: divided by M, the count)
               x_hat = (x - mu) / sigma,  sigma = sqrt(var + eps),  y = gamma x_hat + beta
    backward   with g = dL/dy and g_hat = g gamma (= dL/dx_hat), summing over the same M elements,
               dL/dx = (1/M) (1/sigma) (M g_hat - sum(g_hat) - x_hat sum(g_hat x_hat))
               dL/dgamma = sum g x_hat,   dL/dbeta = sum g   (over every axis but the feature axes)

The three terms of dL/dx: the direct path through x_hat, the path through mu (each x moves the
mean: -sum(g_hat)), and the path through var (each x moves the spread: -x_hat sum(g_hat x_hat)).
"""
import numpy as np

from backprop_oracle.manual.module import Module


# ---------------------------------------------------------------- pure functions

def normalize(x, axes, eps):
    """(x_hat, 1/sigma) with x_hat = (x - mean) / sqrt(var + eps) over ``axes``, var biased (/M).

    1/sigma keeps its reduced axes (size 1), so it broadcasts against x."""
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)      # biased: the normalisation's variance
    inv_std = 1.0 / np.sqrt(var + eps)
    return (x - mu) * inv_std, inv_std


def normalize_backward(g_hat, x_hat, inv_std, axes):
    """dL/dx = (1/M) (1/sigma) (M g_hat - sum(g_hat) - x_hat sum(g_hat x_hat)), sums over ``axes``
    (the M elements that shared one mean and variance); g_hat = dL/dx_hat."""
    M = int(np.prod([x_hat.shape[a] for a in axes]))
    sum_g = g_hat.sum(axis=axes, keepdims=True)
    sum_gx = (g_hat * x_hat).sum(axis=axes, keepdims=True)
    return (inv_std / M) * (M * g_hat - sum_g - x_hat * sum_gx)


def _channels(a, ndim):
    """A (C,) array shaped (1, C, 1, ...) to broadcast against an (N, C, ...) input of ``ndim`` axes."""
    return a.reshape((1, -1) + (1,) * (ndim - 2))


# ---------------------------------------------------------------- batch normalisation

class _BatchNorm(Module):
    """y = gamma (x - mu) / sqrt(var + eps) + beta, one mu and var per channel (axis 1).

    Training (or ``track_running_stats=False``): mu and var are the batch's, var biased (/n, with
    n = N times the positions per channel), and the running statistics move towards them:

        running_mean = (1 - momentum) running_mean + momentum mu
        running_var  = (1 - momentum) running_var  + momentum var n/(n - 1)     (unbiased)

    With ``momentum=None`` the factor is 1/num_batches_tracked instead: a cumulative average.
    Training on one value per channel (n = 1) is refused, as torch refuses it.
    Backward in training, per channel over its n values (gamma factored out of g_hat = g gamma):

        dL/dx = (1/n) gamma/sigma (n g - sum g - x_hat sum(g x_hat))

    Evaluation (``eval()``) with running statistics: mu, var = running_mean, running_var, and
    backward is then the plain scaling dL/dx = g gamma / sqrt(running_var + eps).

    Parameters weight (gamma, ones) and bias (beta, zeros), shape (C,), when ``affine``; buffers
    running_mean (zeros), running_var (ones), num_batches_tracked (0, int64) when
    ``track_running_stats`` (else None), named as torch names them.
    """
    _dims = ()                       # the input's number of axes each subclass accepts

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, *,
                 dtype=np.float64):
        super().__init__()
        if int(num_features) < 1:
            raise ValueError(f"{type(self).__name__} needs num_features >= 1, got {num_features}")
        if momentum is not None and not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"momentum must be in [0, 1] or None, got {momentum}")
        self.num_features, self.eps = int(num_features), float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        C = self.num_features
        self.weight = self.register_parameter("weight", np.ones(C, dtype) if affine else None)
        self.bias = self.register_parameter("bias", np.zeros(C, dtype) if affine else None)
        track = self.track_running_stats
        self.register_buffer("running_mean", np.zeros(C, dtype) if track else None)
        self.register_buffer("running_var", np.ones(C, dtype) if track else None)
        self.register_buffer("num_batches_tracked", np.array(0, np.int64) if track else None)
        self.x_hat = self.inv_std = None      # what backward needs
        self.batch_stats = True               # whether the last forward normalised with the batch's own statistics

    def _check_input(self, x):
        if x.ndim not in self._dims:
            want = " or ".join(f"{d}D" for d in self._dims)
            raise ValueError(f"{type(self).__name__}: expected {want} input (got {x.ndim}D input)")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}) expects {self.num_features} channels "
                             f"on axis 1, got input of shape {x.shape}")

    def forward(self, x):
        self._check_input(x)
        axes = (0,) + tuple(range(2, x.ndim))                # every axis but the channel's
        n = x.size // self.num_features                      # values per channel
        if self.training and n == 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {x.shape}")
        self.batch_stats = self.training or self.running_mean is None
        if self.batch_stats:
            self.x_hat, self.inv_std = normalize(x, axes, self.eps)
            if self.training and self.running_mean is not None:
                self._update_running_stats(x, axes, n)
        else:
            self.inv_std = _channels(1.0 / np.sqrt(self.running_var + self.eps), x.ndim)
            self.x_hat = (x - _channels(self.running_mean, x.ndim)) * self.inv_std
        y = self.x_hat
        if self.affine:
            y = y * _channels(self.weight.data, x.ndim) + _channels(self.bias.data, x.ndim)
        return y.astype(x.dtype, copy=False)

    def _update_running_stats(self, x, axes, n):
        """running = (1 - f) running + f batch, f = momentum (or 1/num_batches_tracked when None);
        the variance kept is the unbiased one, var n/(n - 1)."""
        self.num_batches_tracked += 1
        f = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        mu = x.mean(axis=axes)
        var_unbiased = ((x - _channels(mu, x.ndim)) ** 2).sum(axis=axes) / (n - 1)
        self.running_mean *= 1.0 - f
        self.running_mean += f * mu
        self.running_var *= 1.0 - f
        self.running_var += f * var_unbiased

    def backward(self, dL_dy):
        """Adds dL/dgamma = sum g x_hat and dL/dbeta = sum g (over every axis but 1); returns dL/dx
        (the three-term formula of the module docstring in training, g gamma / sigma in eval)."""
        nd = dL_dy.ndim
        axes = (0,) + tuple(range(2, nd))
        g_hat = dL_dy * _channels(self.weight.data, nd) if self.affine else dL_dy
        if self.batch_stats:
            dL_dx = normalize_backward(g_hat, self.x_hat, self.inv_std, axes)
        else:
            dL_dx = g_hat * self.inv_std
        if self.affine:
            self.weight.grad += (dL_dy * self.x_hat).sum(axis=axes)
            self.bias.grad += dL_dy.sum(axis=axes)
        return dL_dx.astype(dL_dy.dtype, copy=False)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of x (N, C) or (N, C, L): one mean and variance per channel C, over N
    (and L). See _BatchNorm for the formulas, the running statistics and the modes."""
    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of x (N, C, H, W): one mean and variance per channel C, over N, H and W.
    See _BatchNorm for the formulas, the running statistics and the modes."""
    _dims = (4,)


# ---------------------------------------------------------------- layer normalisation

class LayerNorm(Module):
    """y = gamma (x - mu) / sqrt(var + eps) + beta, mu and var (biased) over the last
    len(normalized_shape) axes of each example; no running statistics, the same in both modes.

    Shape: x (N, ..., *normalized_shape) -> y of the same shape; weight (gamma, ones) and bias
    (beta, zeros) of shape normalized_shape when ``elementwise_affine`` (bias only with ``bias``).
    Backward: dL/dx by the module formula with M = prod(normalized_shape); dL/dgamma = sum g x_hat
    and dL/dbeta = sum g over the leading (example) axes.
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, *, dtype=np.float64):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
        if not shape or min(int(s) for s in shape) < 1:
            raise ValueError(f"LayerNorm needs a normalized_shape of positive sizes, got {normalized_shape!r}")
        self.normalized_shape, self.eps = tuple(int(s) for s in shape), float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        self.weight = self.register_parameter("weight", np.ones(shape, dtype) if elementwise_affine else None)
        self.bias = self.register_parameter("bias", np.zeros(shape, dtype) if elementwise_affine and bias else None)
        self.x_hat = self.inv_std = None

    def _axes(self, ndim):
        return tuple(range(ndim - len(self.normalized_shape), ndim))

    def forward(self, x):
        k = len(self.normalized_shape)
        if x.ndim < k or tuple(x.shape[x.ndim - k:]) != self.normalized_shape:
            raise ValueError(f"Given normalized_shape={list(self.normalized_shape)}, expected input with shape "
                             f"[*, {', '.join(map(str, self.normalized_shape))}], but got input of size {x.shape}")
        self.x_hat, self.inv_std = normalize(x, self._axes(x.ndim), self.eps)
        y = self.x_hat
        if self.weight is not None:
            y = y * self.weight.data
        if self.bias is not None:
            y = y + self.bias.data
        return y.astype(x.dtype, copy=False)

    def backward(self, dL_dy):
        """Adds dL/dgamma = sum g x_hat, dL/dbeta = sum g (over the example axes); returns dL/dx."""
        axes = self._axes(dL_dy.ndim)
        lead = tuple(range(dL_dy.ndim - len(self.normalized_shape)))
        g_hat = dL_dy * self.weight.data if self.weight is not None else dL_dy
        dL_dx = normalize_backward(g_hat, self.x_hat, self.inv_std, axes)
        if self.weight is not None:
            self.weight.grad += (dL_dy * self.x_hat).sum(axis=lead)
        if self.bias is not None:
            self.bias.grad += dL_dy.sum(axis=lead)
        return dL_dx.astype(dL_dy.dtype, copy=False)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
