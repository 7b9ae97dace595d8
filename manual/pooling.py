"""Max- and average-pooling with torch.nn.MaxPool2d's and AvgPool2d's shapes, names and defaults
(NCHW), and their backward: max-pooling routes each output's gradient to the one input that won
its window, average-pooling spreads it evenly over the window. Both read the windows through
``conv.windows`` and give the gradient back through ``conv.fold``.
"""
import numpy as np

from backprop_oracle.manual.conv import fold, new_array, output_size, pad, pair, windows
from backprop_oracle.manual.module import Module


def _geometry(x, kernel, stride, padding, dilation, ceil_mode, name):
    """((Ho, Wo), the padding on the (top, left) and the padded (Hp, Wp)), with room on the bottom
    and right for the last window of ``ceil_mode`` (which may reach past the padding)."""
    if x.ndim != 4:
        raise ValueError(f"{name} expects input of shape (N, C, H, W), got {x.shape}")
    size = []
    for axis in range(2):
        n = output_size(x.shape[2 + axis], kernel[axis], stride[axis], padding[axis], dilation[axis], ceil_mode)
        if n < 1:
            raise ValueError(f"{name}: the input's (H, W) = {x.shape[2:]} padded by {padding} is smaller than "
                             f"the window ({dilation[0] * (kernel[0] - 1) + 1}, {dilation[1] * (kernel[1] - 1) + 1})")
        size.append(n)
    padded = tuple(max(x.shape[2 + a] + 2 * padding[a], (size[a] - 1) * stride[a] + dilation[a] * (kernel[a] - 1) + 1)
                   for a in range(2))
    return tuple(size), padded


def _arguments(kernel_size, stride, padding, dilation=1):
    """(kernel, stride, padding, dilation) as pairs; the stride defaults to the kernel, as in torch."""
    kernel = pair(kernel_size, "kernel_size")
    return kernel, pair(kernel if stride is None else stride, "stride"), pair(padding, "padding"), \
        pair(dilation, "dilation")


def _check_padding(name, kernel, padding):
    # torch refuses a padding larger than half the kernel (dilation aside): a window could then see only padding.
    for k, p in zip(kernel, padding):
        if p > k // 2:
            raise ValueError(f"{name}: padding {padding} should be at most half of the kernel size {kernel}, "
                             "as torch requires")


def _padded(x, padding, padded_size, value, buffers):
    """x with ``padding`` on the top and left and whatever ``padded_size`` asks on the bottom and right."""
    if padding == (0, 0) and padded_size == x.shape[2:]:
        return x
    return pad(x, padding, value, buffers("xp", x.shape[:2] + padded_size, x.dtype))


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, buffers=None):
    """y[n, c, p, q] = max_{i, j} xp[n, c, p s + i d, q s + j d], xp the input padded with -inf.

    Ties: the first maximum in the window's scan order (row by row, i then j) wins, as torch's
    CPU kernel decides (it replaces the running maximum only on a strictly larger value, or on a
    NaN, so a NaN in the window wins, the last one if several). x (N, C, H, W) -> y (N, C, Ho, Wo).
    Returns (y, argmax) with argmax[n, c, p, q] = i kW + j, the winning offset, for the backward.
    """
    kernel, stride, padding, dilation = _arguments(kernel_size, stride, padding, dilation)
    buffers = buffers or new_array
    out_size, padded_size = _geometry(x, kernel, stride, padding, dilation, ceil_mode, "max_pool2d")
    win = windows(_padded(x, padding, padded_size, -np.inf, buffers), kernel, stride, dilation, out_size)
    k = kernel[0] * kernel[1]
    cols = buffers("cols", (k,) + x.shape[:2] + out_size, x.dtype)   # the windows, offset first: long rows
    cols.reshape(kernel + x.shape[:2] + out_size)[...] = win.transpose(2, 3, 0, 1, 4, 5)
    y = buffers("y", x.shape[:2] + out_size, x.dtype)
    index = np.int16 if k < 2 ** 15 else np.intp
    argmax, step = buffers("argmax", y.shape, index), buffers("step", y.shape, index)
    y[...], argmax[...] = cols[0], 0
    wins, nan = buffers("wins", y.shape, bool), buffers("nan", y.shape, bool)
    for offset in range(1, k):                                 # scan order: i, then j
        v = cols[offset]
        np.greater(v, y, out=wins)                             # strictly larger, or a NaN: it wins
        wins |= np.isnan(v, out=nan)
        np.maximum(y, v, out=y)                                # (NaN propagates, as it wins)
        np.subtract(offset, argmax, out=step)                  # argmax = offset where it wins, as a blend
        step *= wins                                           # (faster than np.where on a random mask)
        argmax += step
    return y, argmax


def max_pool2d_backward(dL_dy, argmax, input_shape, kernel_size, stride=None, padding=0, dilation=1,
                        buffers=None):
    """dL/dx[n, c, p s + i d, q s + j d] += dL/dy[n, c, p, q] for the one (i, j) = argmax[n, c, p, q]
    that won the window (cropped by the padding); every other input of the window gets 0 from it,
    and an input that wins several overlapping windows gets the sum of their gradients."""
    kernel, stride, padding, dilation = _arguments(kernel_size, stride, padding, dilation)
    buffers = buffers or new_array
    (N, C, H, W), (Ho, Wo) = input_shape, dL_dy.shape[2:]
    k = kernel[0] * kernel[1]
    won = np.equal(argmax, np.arange(k).reshape(k, 1, 1, 1, 1), out=buffers("won", (k, N, C, Ho, Wo), bool))
    cols = np.multiply(won, dL_dy, out=buffers("dcols", (k, N, C, Ho, Wo), dL_dy.dtype))   # one-hot: the winner gets dL/dy
    return _fold_cropped(cols.reshape(kernel + (N, C, Ho, Wo)).transpose(2, 3, 0, 1, 4, 5), input_shape, stride,
                         padding, dilation, buffers)


def _fold_cropped(cols, input_shape, stride, padding, dilation, buffers):
    """fold(cols) into a zeroed padded gradient, then the part over the input (padding cropped)."""
    (N, C, H, W), (kH, kW, Ho, Wo) = input_shape, cols.shape[2:]
    padded_size = tuple(max(input_shape[2 + a] + 2 * padding[a],
                            (cols.shape[4 + a] - 1) * stride[a] + dilation[a] * (cols.shape[2 + a] - 1) + 1)
                        for a in range(2))
    dxp = buffers("dxp", (N, C) + padded_size, cols.dtype)
    dxp.fill(0)
    fold(cols, dxp, stride, dilation)
    return dxp[:, :, padding[0]:padding[0] + H, padding[1]:padding[1] + W]


def avg_divisor(size, kernel, stride, padding, out, ceil_mode, count_include_pad):
    """How many elements each output's window averages over, along one axis (torch's rule): the
    window clipped to the padded input (its ceil_mode overhang never counts), and with
    ``count_include_pad=False`` clipped to the input itself. The 2-D divisor is the outer product."""
    start = np.arange(out) * stride - padding
    end = np.minimum(start + kernel, size + padding)
    if count_include_pad:
        return end - start
    return np.minimum(end, size) - np.maximum(start, 0)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, buffers=None):
    """y[n, c, p, q] = (1 / D[p, q]) sum_{i, j} xp[n, c, p s + i, q s + j], xp zero-padded, with D
    the window's size kH kW (``count_include_pad=True``, torch's default) or the number of its
    elements inside the input (False), or ``divisor_override``. x (N, C, H, W) -> y (N, C, Ho, Wo).
    Returns (y, D) with D (Ho, Wo), for the backward."""
    kernel, stride, padding, _ = _arguments(kernel_size, stride, padding)
    buffers = buffers or new_array
    out_size, padded_size = _geometry(x, kernel, stride, padding, (1, 1), ceil_mode, "avg_pool2d")
    win = windows(_padded(x, padding, padded_size, 0, buffers), kernel, stride, (1, 1), out_size)
    if divisor_override:
        D = np.full(out_size, float(divisor_override))
    else:
        D = np.outer(*(avg_divisor(x.shape[2 + a], kernel[a], stride[a], padding[a], out_size[a], ceil_mode,
                                   count_include_pad) for a in range(2))).astype(x.dtype)
    y = buffers("y", x.shape[:2] + out_size, x.dtype)
    y[...] = win[:, :, 0, 0]
    for i in range(kernel[0]):                   # one add per kernel offset: faster than a sum over
        for j in range(kernel[1]):               # the window axes of the strided view
            if i or j:
                y += win[:, :, i, j]
    y /= D
    return y, D


def avg_pool2d_backward(dL_dy, divisor, input_shape, kernel_size, stride=None, padding=0, buffers=None):
    """dL/dx[n, c, p s + i, q s + j] += dL/dy[n, c, p, q] / D[p, q] for every (i, j) of the window,
    cropped by the padding (what fell on the padding is dropped)."""
    kernel, stride, padding, _ = _arguments(kernel_size, stride, padding)
    buffers = buffers or new_array
    share = dL_dy / divisor                                               # (N, C, Ho, Wo)
    cols = np.broadcast_to(share[:, :, None, None], share.shape[:2] + kernel + share.shape[2:])
    return _fold_cropped(cols, input_shape, stride, padding, (1, 1), buffers)


class MaxPool2d(Module):
    """y = the maximum of each kH x kW window (see ``max_pool2d``); backward routes dL/dy to the
    window's first maximum in scan order, as torch does on the CPU.

    Shape: input (N, C, H, W), output (N, C, Ho, Wo), Ho = floor((H + 2 padding - dilation
    (kH - 1) - 1) / stride) + 1 (ceil with ``ceil_mode``), exactly as torch.nn.MaxPool2d;
    stride defaults to the kernel size. No parameters.
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        if return_indices:
            raise ValueError("MaxPool2d(return_indices=True) is not supported: the layer returns y only")
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(self.kernel_size if stride is None else stride, "stride")
        self.padding, self.dilation = pair(padding, "padding"), pair(dilation, "dilation")
        if min(self.kernel_size + self.stride + self.dilation) < 1 or min(self.padding) < 0:
            raise ValueError(f"MaxPool2d needs kernel_size, stride, dilation >= 1 and padding >= 0, got {self!r}")
        _check_padding("MaxPool2d", self.kernel_size, self.padding)
        self.ceil_mode = bool(ceil_mode)
        self.x_shape = self.argmax = None

    def forward(self, x):
        self.x_shape = x.shape
        y, self.argmax = max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                                    buffers=self.buffer)
        return y

    def backward(self, dL_dy):
        """dL/dx: each output's gradient on its window's winner, zero elsewhere."""
        return max_pool2d_backward(dL_dy, self.argmax, self.x_shape, self.kernel_size, self.stride,
                                   self.padding, self.dilation, buffers=self.buffer)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """y = the mean of each kH x kW window (see ``avg_pool2d``); backward spreads dL/dy / D evenly
    over the window.

    Shape: input (N, C, H, W), output (N, C, Ho, Wo), Ho = floor((H + 2 padding - kH) / stride) + 1
    (ceil with ``ceil_mode``), exactly as torch.nn.AvgPool2d; stride defaults to the kernel size.
    ``count_include_pad`` (default True): the padding's zeros count in the mean. No parameters.
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(self.kernel_size if stride is None else stride, "stride")
        self.padding = pair(padding, "padding")
        if min(self.kernel_size + self.stride) < 1 or min(self.padding) < 0:
            raise ValueError(f"AvgPool2d needs kernel_size, stride >= 1 and padding >= 0, got {self!r}")
        _check_padding("AvgPool2d", self.kernel_size, self.padding)
        if divisor_override is not None and (not isinstance(divisor_override, int) or divisor_override < 1):
            raise ValueError(f"AvgPool2d: divisor_override must be a positive int, got {divisor_override!r}")
        self.ceil_mode, self.count_include_pad = bool(ceil_mode), bool(count_include_pad)
        self.divisor_override = divisor_override
        self.x_shape = self.divisor = None

    def forward(self, x):
        self.x_shape = x.shape
        y, self.divisor = avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                     self.count_include_pad, self.divisor_override, buffers=self.buffer)
        return y

    def backward(self, dL_dy):
        """dL/dx: each output's gradient divided by its window's size D, on every input of the window."""
        return avg_pool2d_backward(dL_dy, self.divisor, self.x_shape, self.kernel_size, self.stride,
                                   self.padding, buffers=self.buffer)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"ceil_mode={self.ceil_mode}, count_include_pad={self.count_include_pad}")
