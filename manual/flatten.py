"""Flatten: the dimensions start_dim..end_dim of x made into one, as torch.nn.Flatten does."""
from backprop_oracle.manual.module import Module


class Flatten(Module):
    """y = x reshaped so that dimensions start_dim..end_dim become one (torch.nn.Flatten's defaults:
    start_dim=1, end_dim=-1, so (N, C, H, W) -> (N, C H W), in C order: c slowest, w fastest).

    backward: dL/dx = dL/dy reshaped back to x's shape (a reshape moves no value). No parameters.
    """

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)
        self.x_shape = None

    def forward(self, x):
        ndim = x.ndim
        start, end = self.start_dim % max(ndim, 1), self.end_dim % max(ndim, 1)
        if not (-ndim <= self.start_dim < ndim and -ndim <= self.end_dim < ndim) or start > end:
            raise ValueError(f"{self!r} cannot flatten an input of shape {x.shape} "
                             f"(dimensions {self.start_dim}..{self.end_dim} of {ndim})")
        self.x_shape = x.shape
        return x.reshape(x.shape[:start] + (-1,) + x.shape[end + 1:])

    def backward(self, dL_dy):
        return dL_dy.reshape(self.x_shape)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
