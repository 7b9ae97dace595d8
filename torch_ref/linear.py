"""The fully connected layer: torch.nn.Linear itself, y = x W^T + b, W (out, in), b (out,)."""
from torch.nn import Linear

__all__ = ["Linear"]
