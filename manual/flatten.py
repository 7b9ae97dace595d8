"""Flatten: every example's axes after the first made one, as torch.nn.Flatten (start_dim=1)."""
from backprop_oracle.manual.module import Module


class Flatten(Module):
    """y = x.reshape(N, -1) over axes start_dim..end_dim;  dL/dx = dL/dy reshaped back to x's shape.

    Shape: x (N, C, H, W) -> y (N, C·H·W) with the defaults, as torch.nn.Flatten.
    """

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        self.input_shape = x.shape                    # backward puts dL/dy back in it
        for dim in (self.start_dim, self.end_dim):
            if not -x.ndim <= dim < x.ndim:
                raise IndexError(f"Dimension out of range (expected to be in range of [{-x.ndim}, {x.ndim - 1}], "
                                 f"but got {dim})")
        start, end = self.start_dim % x.ndim, self.end_dim % x.ndim
        if start > end:
            raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
        return x.reshape(x.shape[:start] + (-1,) + x.shape[end + 1:])

    def backward(self, dL_dy):
        return dL_dy.reshape(self.input_shape)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
