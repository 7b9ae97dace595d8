"""Convolutions with torch.nn.Conv2d's and Conv1d's shapes, names and defaults (NCHW).

The vectorising trick lives in two small helpers that the pooling layers share:

- ``windows(xp, ...)`` is every receptive field of a padded input at once, a read-only
  ``as_strided`` view (N, C, kH, kW, Ho, Wo) with view[n, c, i, j, p, q] = xp[n, c, p s + i d, q s + j d];
  nothing is copied until the convolution lays it out for its matrix product (im2col).
- ``fold(cols, out, ...)`` is its adjoint (col2im): it adds each window's values back where
  they were read, one vectorised add per kernel offset (i, j), kH kW of them; overlapping windows
  accumulate.

With them a convolution is one matrix product per group, forward and backward, and the layer
reads like its equation.
"""
import numpy as np

from backprop_oracle.manual.module import Module


def pair(value, name):
    """(a, b) from an int or a pair of ints (torch's _pair), each checked to be an int."""
    t = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(t) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in t):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return int(t[0]), int(t[1])


def new_array(name, shape, dtype):
    """The ``buffers`` of the functions below when no Module lends its own: a new array each call."""
    return np.empty(shape, dtype)


def output_size(size, kernel, stride, padding, dilation, ceil_mode=False):
    """Ho = floor((H + 2 p - d (k - 1) - 1) / s) + 1, or ceil(...) + 1 with ``ceil_mode``, where
    torch then drops a last window that would start beyond the input and its left padding."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if span < 0:
        return 0
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


def pad(x, padding, value, out):
    """x (N, C, H, W) written into ``out`` (N, C, H + pH + extra, W + pW + extra) at offset
    (pH, pW), the border filled with ``value`` (0 for a convolution, -inf for max-pooling)."""
    (pH, pW), (H, W) = padding, x.shape[2:]
    out.fill(value)
    out[:, :, pH:pH + H, pW:pW + W] = x
    return out


def windows(xp, kernel, stride, dilation, out_size):
    """The receptive fields of xp (N, C, Hp, Wp): a read-only view (N, C, kH, kW, Ho, Wo) with
    view[n, c, i, j, p, q] = xp[n, c, p sH + i dH, q sW + j dW]. No copy (numpy's as_strided)."""
    (kH, kW), (sH, sW), (dH, dW), (Ho, Wo) = kernel, stride, dilation, out_size
    bN, bC, bH, bW = xp.strides
    return np.lib.stride_tricks.as_strided(
        xp, shape=xp.shape[:2] + (kH, kW, Ho, Wo),
        strides=(bN, bC, bH * dH, bW * dW, bH * sH, bW * sW), writeable=False)


def fold(cols, out, stride, dilation):
    """The adjoint of ``windows`` (col2im): out[n, c, p sH + i dH, q sW + j dW] += cols[n, c, i, j, p, q]
    for cols (N, C, kH, kW, Ho, Wo), added into ``out`` (N, C, Hp, Wp). One vectorised add per
    kernel offset (i, j); where windows overlap (s < d (k - 1) + 1) their values accumulate.
    (The first two axes may be any two: the convolution's backward folds (C, N, ...) arrays.)"""
    kH, kW, Ho, Wo = cols.shape[2:]
    (sH, sW), (dH, dW) = stride, dilation
    for i in range(kH):
        for j in range(kW):
            out[:, :, i * dH:i * dH + sH * (Ho - 1) + 1:sH, j * dW:j * dW + sW * (Wo - 1) + 1:sW] += cols[:, :, i, j]
    return out


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, out=None, buffers=None):
    """y[n, o, p, q] = b[o] + sum_{c, i, j} W[o, c, i, j] xp[n, g Cg + c, p s + i d, q s + j d]

    (a cross-correlation, as torch computes it), xp the input zero-padded by p on each side, o in
    group g = o // (O / G), Cg = C / G. x (N, C, H, W), W (O, C / G, kH, kW), b (O,) ->
    y (N, O, Ho, Wo) with Ho = floor((H + 2 p - d (kH - 1) - 1) / s) + 1.

    As matrix products, one per group (one batched matmul): y_g = W_g X_g, with W_g the group's
    weights as (O / G, Cg kH kW) and X_g its columns (Cg kH kW, N Ho Wo), every receptive field a
    column (im2col). ``out``: an (N, O, Ho, Wo) array for y; ``buffers(name, shape, dtype)``:
    where the padded input and the columns go (a Module's ``buffer``; new arrays if None).
    Returns (y, X) with X (G, Cg kH kW, N Ho Wo), which conv2d_backward needs.
    """
    stride, padding, dilation = pair(stride, "stride"), pair(padding, "padding"), pair(dilation, "dilation")
    buffers = buffers or new_array
    N, C, H, W = x.shape
    O, Cg, kH, kW = weight.shape
    G = groups
    Ho, Wo = (output_size(H, kH, stride[0], padding[0], dilation[0]),
              output_size(W, kW, stride[1], padding[1], dilation[1]))
    dtype = x.dtype if x.dtype == weight.dtype else np.result_type(x, weight)
    xp = x if padding == (0, 0) else pad(x, padding, 0, buffers(
        "xp", (N, C, H + 2 * padding[0], W + 2 * padding[1]), x.dtype))
    win = windows(xp, (kH, kW), stride, dilation, (Ho, Wo))                    # (N, C, kH, kW, Ho, Wo)
    cols = buffers("cols", (G, Cg * kH * kW, N * Ho * Wo), dtype)               # im2col, one copy
    cols.reshape(G, Cg, kH, kW, N, Ho, Wo)[...] = \
        win.reshape(N, G, Cg, kH, kW, Ho, Wo).transpose(1, 2, 3, 4, 0, 5, 6)
    yg = np.matmul(weight.reshape(G, O // G, Cg * kH * kW), cols,               # (G, O/G, N Ho Wo)
                   out=buffers("yg", (G, O // G, N * Ho * Wo), dtype))
    yg = yg.reshape(O, N, Ho, Wo).transpose(1, 0, 2, 3)                         # (N, O, Ho, Wo)
    y = np.empty((N, O, Ho, Wo), dtype) if out is None else out
    if bias is None:
        y[...] = yg
    else:
        np.add(yg, bias[:, None, None], out=y)                                  # + b, in the same pass
    return y, cols


def conv2d_backward(x, weight, dL_dy, cols, stride=1, padding=0, dilation=1, groups=1,
                    out=(None, None, None), buffers=None):
    """The three gradients of y = conv2d(x, W) + b, with X the columns forward made:

        dL/db[o]          = sum_{n, p, q} dL/dy[n, o, p, q]
        dL/dW[o, c, i, j] = sum_{n, p, q} dL/dy[n, o, p, q] xp[n, g Cg + c, p s + i d, q s + j d]
                            (per group dL/dW_g = dL/dY_g X_g^T: the input correlated with dL/dy)
        dL/dx             = dL/dxp cropped by the padding, where dL/dxp = fold(W_g^T dL/dY_g):
                            dL/dxp[n, g Cg + c, p s + i d, q s + j d] += W[o, c, i, j] dL/dy[n, o, p, q]
                            (a transposed convolution; for s = 1 a full convolution of dL/dy
                            with the kernel flipped)

    dL/dY_g is dL/dy as (O / G, N Ho Wo). ``out``: arrays for (dL/dx, dL/dW, dL/db); dL/dx is
    skipped (None) when ``out[0]`` is False. Returns (dL/dx, dL/dW, dL/db).
    """
    stride, padding, dilation = pair(stride, "stride"), pair(padding, "padding"), pair(dilation, "dilation")
    buffers = buffers or new_array
    N, C, H, W = x.shape
    O, Cg, kH, kW = weight.shape
    G, (Ho, Wo) = groups, dL_dy.shape[2:]
    dtype = cols.dtype if cols.dtype == dL_dy.dtype else np.result_type(cols, dL_dy)
    dY = buffers("dY", (O, N, Ho, Wo), dL_dy.dtype)                              # dL/dy, channels first
    dY[...] = dL_dy.transpose(1, 0, 2, 3)
    dY = dY.reshape(G, O // G, N * Ho * Wo)
    dL_db = dL_dy.sum(axis=(0, 2, 3), out=out[2])                                # (O,)
    dL_dW = np.matmul(dY, cols.transpose(0, 2, 1),                               # (G, O/G, Cg kH kW)
                      out=None if out[1] is None else out[1].reshape(G, O // G, Cg * kH * kW))
    dL_dW = dL_dW.reshape(O, Cg, kH, kW)
    if out[0] is False:
        return None, dL_dW, dL_db
    dcols = np.matmul(weight.reshape(G, O // G, Cg * kH * kW).transpose(0, 2, 1), dY,   # (G, Cg kH kW, N Ho Wo)
                      out=buffers("dcols", (G, Cg * kH * kW, N * Ho * Wo), dtype))
    # Folded channels first, into dL/dxp as (C, N, Hp, Wp): each kernel offset's values are then
    # whole (N, Ho, Wo) blocks of dcols, read in the order they lie in memory (1.5x quicker than
    # folding into (N, C, Hp, Wp) through a view that jumps between channels at every example).
    dcols = dcols.reshape(C, kH, kW, N, Ho, Wo).transpose(0, 3, 1, 2, 4, 5)      # (C, N, kH, kW, Ho, Wo)
    dxp = buffers("dxp", (C, N, H + 2 * padding[0], W + 2 * padding[1]), dtype)
    dxp.fill(0)
    fold(dcols, dxp, stride, dilation)
    dL_dx = np.empty((N, C, H, W), dtype) if out[0] is None else out[0]
    dL_dx[...] = dxp[:, :, padding[0]:padding[0] + H, padding[1]:padding[1] + W].transpose(1, 0, 2, 3)
    return dL_dx, dL_dW, dL_db


class Conv2d(Module):
    """Applies y = W * x + b, a 2-D cross-correlation over C input channels (see ``conv2d``).

    Shape: input (N, C_in, H, W), weight (C_out, C_in / groups, kH, kW), bias (C_out,), output
    (N, C_out, Ho, Wo), Ho = floor((H + 2 padding - dilation (kH - 1) - 1) / stride) + 1, exactly
    as torch.nn.Conv2d (zero padding only). ``groups``: the channels split into that many groups,
    each group of outputs seeing only its group of inputs.

    The default initial values follow torch.nn.Conv2d: kaiming_uniform with a = sqrt(5), which
    is W ~ U(-k, k) with k = gain sqrt(3 / fan_in) = 1 / sqrt(fan_in) (gain = sqrt(2 / (1 + a^2))),
    fan_in = C_in / groups kH kW; b ~ U(-k, k), the same bound. ``rng`` is a numpy Generator.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", *, rng=None, dtype=np.float64):
        super().__init__()
        self._setup(in_channels, out_channels, pair(kernel_size, "kernel_size"), pair(stride, "stride"),
                    pair(padding, "padding"), pair(dilation, "dilation"), groups, bias, padding_mode, rng, dtype)

    def _setup(self, in_channels, out_channels, kernel, stride, padding, dilation, groups, bias, padding_mode,
               rng, dtype):
        name = type(self).__name__
        if padding_mode != "zeros":
            raise ValueError(f"{name} pads with zeros only (padding_mode='zeros'), got padding_mode={padding_mode!r}")
        if int(in_channels) < 1 or int(out_channels) < 1 or int(groups) < 1:
            raise ValueError(f"{name} needs positive sizes, got in_channels={in_channels}, "
                             f"out_channels={out_channels}, groups={groups}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels ({out_channels}) "
                             f"must both be divisible by groups ({groups})")
        if min(kernel + stride + dilation) < 1 or min(padding) < 0:
            raise ValueError(f"{name} needs kernel_size, stride, dilation >= 1 and padding >= 0, got "
                             f"kernel_size={kernel}, stride={stride}, dilation={dilation}, padding={padding}")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size, self.stride, self.padding, self.dilation = kernel, stride, padding, dilation
        rng = np.random.default_rng() if rng is None else rng
        shape = (self.out_channels, self.in_channels // self.groups) + kernel
        k = 1.0 / np.sqrt(shape[1] * kernel[0] * kernel[1])                       # 1 / sqrt(fan_in)
        self.weight = self.register_parameter("weight", rng.uniform(-k, k, size=shape).astype(dtype))
        self.bias = self.register_parameter(
            "bias", rng.uniform(-k, k, size=(self.out_channels,)).astype(dtype) if bias else None)
        self.x = self.cols = None
        self.input_grad = True       # whether backward computes dL/dx

    def _check_input(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{self!r} expects input of shape (N, {self.in_channels}, H, W), got {x.shape}")
        (kH, kW), (dH, dW), (pH, pW) = self.kernel_size, self.dilation, self.padding
        if x.shape[2] + 2 * pH < dH * (kH - 1) + 1 or x.shape[3] + 2 * pW < dW * (kW - 1) + 1:
            raise ValueError(f"{self!r}: the input's (H, W) = {x.shape[2:]} padded by {self.padding} is "
                             f"smaller than the kernel ({dH * (kH - 1) + 1}, {dW * (kW - 1) + 1}) "
                             "(its size with dilation)")

    def forward(self, x):
        self._check_input(x)
        self.x = x
        x = self._as_4d(x)
        W = self.weight.data.reshape((self.out_channels, self.in_channels // self.groups) + self.kernel_size)
        b = None if self.bias is None else self.bias.data
        N, H, Wd = x.shape[0], x.shape[2], x.shape[3]
        Ho = output_size(H, self.kernel_size[0], self.stride[0], self.padding[0], self.dilation[0])
        Wo = output_size(Wd, self.kernel_size[1], self.stride[1], self.padding[1], self.dilation[1])
        y = self.buffer("y", (N, self.out_channels, Ho, Wo), x.dtype if x.dtype == W.dtype else np.result_type(x, W))
        y, self.cols = conv2d(x, W, b, self.stride, self.padding, self.dilation, self.groups, out=y,
                              buffers=self.buffer)
        return self._from_4d(y)

    def backward(self, dL_dy):
        """Adds dL/dW and dL/db into the parameters' ``.grad``; returns dL/dx (None when
        ``input_grad`` is False: the first layer of a network, whose input is data)."""
        x, dL_dy = self._as_4d(self.x), self._as_4d(dL_dy)
        W = self.weight.data.reshape((self.out_channels, self.in_channels // self.groups) + self.kernel_size)
        dtype = dL_dy.dtype if x.dtype == W.dtype == dL_dy.dtype else np.result_type(x, W, dL_dy)
        out = (self.buffer("dL_dx", x.shape, dtype) if self.input_grad else False,
               self.buffer("dL_dW", W.shape, dtype), self.buffer("dL_db", (W.shape[0],), dtype))
        dL_dx, dL_dW, dL_db = conv2d_backward(x, W, dL_dy, self.cols, self.stride, self.padding, self.dilation,
                                              self.groups, out=out, buffers=self.buffer)
        self.weight.grad += dL_dW.reshape(self.weight.grad.shape)
        if self.bias is not None:
            self.bias.grad += dL_db
        return None if dL_dx is None else self._from_4d(dL_dx)

    # Conv2d works on (N, C, H, W) as it is; Conv1d sees its (N, C, L) as (N, C, 1, L).
    def _as_4d(self, a):
        return a

    def _from_4d(self, a):
        return a

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + ("" if self.bias is not None else ", bias=False")


class Conv1d(Conv2d):
    """Applies y = W * x + b over a sequence: Conv2d on x as (N, C_in, 1, L) with a (1, k) kernel.

    Shape: input (N, C_in, L), weight (C_out, C_in / groups, k), bias (C_out,), output
    (N, C_out, Lo), Lo = floor((L + 2 padding - dilation (k - 1) - 1) / stride) + 1, exactly as
    torch.nn.Conv1d; the same default initial values as Conv2d (fan_in = C_in / groups k).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", *, rng=None, dtype=np.float64):
        Module.__init__(self)
        single = lambda v, name: pair(tuple(v) * 2 if isinstance(v, (tuple, list)) and len(v) == 1 else v, name)[0]
        # a (1, k) kernel over (1, L): height 1, its stride and dilation 1, no padding above or below
        self._setup(in_channels, out_channels, (1, single(kernel_size, "kernel_size")), (1, single(stride, "stride")),
                    (0, single(padding, "padding")), (1, single(dilation, "dilation")), groups, bias, padding_mode,
                    rng, dtype)
        self.weight.data = self.weight.data[:, :, 0, :].copy()       # (C_out, C_in / groups, k), torch's shape
        self.weight.grad = np.zeros_like(self.weight.data)

    def _check_input(self, x):
        if x.ndim != 3 or x.shape[1] != self.in_channels:
            raise ValueError(f"{self!r} expects input of shape (N, {self.in_channels}, L), got {x.shape}")
        span = self.dilation[1] * (self.kernel_size[1] - 1) + 1
        if x.shape[2] + 2 * self.padding[1] < span:
            raise ValueError(f"{self!r}: the input's length {x.shape[2]} padded by {self.padding[1]} is shorter "
                             f"than the kernel ({span}, its size with dilation)")

    def _as_4d(self, a):
        return a[:, :, None, :]

    def _from_4d(self, a):
        return a[:, :, 0, :]

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size[1:]}, "
             f"stride={self.stride[1:]}")
        if self.padding[1]:
            s += f", padding={self.padding[1:]}"
        if self.dilation[1] != 1:
            s += f", dilation={self.dilation[1:]}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + ("" if self.bias is not None else ", bias=False")
