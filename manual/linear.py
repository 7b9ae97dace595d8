"""The fully connected layer, with torch.nn.Linear's shapes and names."""
import functools

import numpy as np

from backprop_oracle.manual.module import Module


def linear(x, weight, bias=None, out=None, rows=None):
    """y = x W^T + b.  x (N, in), W (out, in), b (out,) -> y (N, out).  (``out``: an (N, out) array to
    write y into; ``rows``: a work array for ``add_to_rows``.)"""
    y = product(x, weight.T, out=out)
    if bias is not None:
        add_to_rows(y, bias, rows)                         # y_n += b for every row n
    return y


STRIP = 1024       # numbers per strip in add_to_rows


@functools.lru_cache(maxsize=64)
def strip_rows(n, k):
    """m, the rows of an (n, k) array that ``add_to_rows`` adds b to at once (m k ≈ STRIP numbers),
    or 0 where the array is too wide or too short for strips to gain anything."""
    m = -(-STRIP // k)
    return m if m > 1 and n >= 4 * m else 0


def add_to_rows(y, b, rows=None):
    """y += b, b (K,) added to every row of y (N, K), in place: the additions of ``y += b`` exactly.

    NumPy runs that broadcast as one inner loop per row, each over only K numbers: for a narrow
    layer over a large batch (K = 16, N = 1797), 10 to 15 times as long as adding two arrays of
    y's shape. With ``rows``, an (m, K) array (m = strip_rows(N, K)), b is written into each of
    its m rows and y is taken as strips of m rows, each a row of m K numbers, and ``rows`` is added
    to every strip: the same sums, in long loops; the N mod m rows left over get b as before.
    """
    if rows is None or not y.flags.c_contiguous:
        y += b
        return y
    m, k = rows.shape
    np.copyto(rows, b)                                     # b, b, ..., b: m rows
    whole = y.shape[0] // m * m
    strips = y[:whole].reshape(-1, m * k)
    strips += rows.reshape(-1)
    if whole < y.shape[0]:
        y[whole:] += b
    return y


def linear_backward(x, weight, dL_dy, out=(None, None, None)):
    """dL/dx = dL/dy W;  dL/dW = dL/dy^T x (summed over the batch);  dL/db = sum_n dL/dy.

    ``out``: arrays to write (dL/dx, dL/dW, dL/db) into; dL/dx is skipped (None) when ``out[0]`` is False.
    """
    dL_dx = None if out[0] is False else product(dL_dy, weight, out=out[0])   # (N, out) @ (out, in) -> (N, in)
    dL_dW = product(dL_dy.T, x, out=out[1])                                    # (out, N) @ (N, in) -> (out, in)
    dL_db = batch_sum(dL_dy, out=out[2])                                       # (out,)
    return dL_dx, dL_dW, dL_db


def batch_sum(a, out=None):
    """sum_n a_n over the rows of a (N, K), computed as the product 1^T a with a row of N ones.

    The same sum as ``a.sum(axis=0)`` up to the order of its additions; BLAS's matrix-vector
    product is several times quicker than NumPy's reduction down the columns when K is small
    (a narrow layer over a large batch).
    """
    ones = _ones(a.shape[0], a.dtype)
    return product(ones, a, out=out) if a.flags.c_contiguous else np.matmul(ones, a, out=out)


def product(a, b, out=None):
    """a @ b, into ``out`` when given: ``np.dot`` for operands of one dtype, where for 2-D operands
    (and the row of ones of ``batch_sum``) it makes the same BLAS call as ``np.matmul``, the same
    numbers to the last bit, with about 0.5 µs less overhead per call, a tenth of a small
    network's training step; ``np.matmul`` for mixed dtypes (which it converts otherwise) and
    where ``np.dot`` takes no such ``out`` (one of another dtype than its result)."""
    if a.dtype == b.dtype:
        try:
            return _dot(a, b, out)
        except ValueError:
            pass
    return np.matmul(a, b, out=out)


# np.dot's C function itself: np.dot first calls a Python function that names its array arguments
# (for the __array_function__ protocol, which arrays of other libraries use; this layer's are NumPy's).
_dot = getattr(np.dot, "_implementation", np.dot)


@functools.lru_cache(maxsize=16)
def _ones(n, dtype):
    ones = np.ones(n, dtype)
    ones.flags.writeable = False
    return ones


class Linear(Module):
    """Applies y = x W^T + b.

    Shape: input (N, in_features), weight (out_features, in_features), bias (out_features,),
    output (N, out_features). Examples are rows, exactly as in torch.nn.Linear.

    The default initial values follow torch.nn.Linear: W and b uniform on (-k, k) with
    k = 1/sqrt(in_features). ``rng`` is a numpy Generator (a fresh one if None).
    """

    def __init__(self, in_features, out_features, bias=True, *, rng=None, dtype=np.float64):
        super().__init__()
        if int(in_features) < 1 or int(out_features) < 1:
            raise ValueError(f"Linear needs positive sizes, got in_features={in_features}, "
                             f"out_features={out_features}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        rng = np.random.default_rng() if rng is None else rng
        k = 1.0 / np.sqrt(self.in_features)
        self.weight = self.register_parameter(
            "weight", rng.uniform(-k, k, size=(self.out_features, self.in_features)).astype(dtype))
        self.bias = self.register_parameter(
            "bias", rng.uniform(-k, k, size=(self.out_features,)).astype(dtype) if bias else None)
        self.x = None
        self.input_grad = True       # whether backward computes dL/dx

    def forward(self, x):
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"Linear({self.in_features}, {self.out_features}) expects input of shape "
                             f"(N, {self.in_features}), got {x.shape}")
        self.x = x
        W, b = self.weight.data, None if self.bias is None else self.bias.data
        y = self.buffer("y", (x.shape[0], self.out_features), x.dtype if x.dtype == W.dtype else np.result_type(x, W))
        m = 0 if b is None else strip_rows(*y.shape)
        return linear(x, W, b, out=y, rows=self.buffer("bias_rows", (m, y.shape[1]), y.dtype) if m else None)

    def backward(self, dL_dy):
        """Adds dL/dW and dL/db into the parameters' ``.grad``; returns dL/dx (None when
        ``input_grad`` is False: the first layer of a network, whose input is data)."""
        x, W, b = self.x, self.weight.data, self.bias
        dtype = dL_dy.dtype if x.dtype == W.dtype == dL_dy.dtype else np.result_type(x, W, dL_dy)
        # Gradients that zero_grad has just set to 0 are written, not added (0 + g is g).
        into_W = self.weight.zeroed_grad(dtype)
        into_b = None if b is None else b.zeroed_grad(dtype)
        out = (self.buffer("dL_dx", x.shape, dtype) if self.input_grad else False,
               self.buffer("dL_dW", W.shape, dtype) if into_W is None else into_W,
               self.buffer("dL_db", (W.shape[0],), dtype) if into_b is None else into_b)
        try:
            dL_dx, dL_dW, dL_db = linear_backward(x, W, dL_dy, out=out)
        except BaseException:
            for g in (into_W, into_b):
                if g is not None:
                    g.fill(0)                              # the gradient is still zero_grad's zeros
            raise
        if into_W is None:
            self.weight.grad += dL_dW
        if b is not None and into_b is None:
            b.grad += dL_db
        return dL_dx

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
