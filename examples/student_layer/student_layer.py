"""A student's fully connected layer, written in the style of manual/ (y = x W^T + b, W (out, in),
examples in rows; backward adds into param.grad and returns dL/dx).

It has one mistake in it. check_student_layer.py finds it.
"""
import numpy as np

from backprop_oracle.manual.module import Module


class StudentLinear(Module):
    """y = x W^T + b.  x (N, in), W (out, in), b (out,) -> y (N, out)."""

    def __init__(self, in_features, out_features, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        k = 1.0 / np.sqrt(in_features)
        self.weight = self.register_parameter("weight", rng.uniform(-k, k, (out_features, in_features)))
        self.bias = self.register_parameter("bias", rng.uniform(-k, k, out_features))

    def forward(self, x):
        self.x = x                                      # (N, in), kept for backward
        return x @ self.weight.data.T + self.bias.data  # (N, out)

    def backward(self, dL_dy):
        self.weight.grad += dL_dy.T @ self.x            # (out, N) @ (N, in) -> (out, in)
        self.bias.grad += dL_dy.mean(axis=0)            # (out,)
        return dL_dy @ self.weight.data                 # (N, out) @ (out, in) -> (N, in)
