"""Pooling: torch.nn.MaxPool2d and torch.nn.AvgPool2d themselves, NCHW, stride defaulting to the kernel."""
from torch.nn import AvgPool2d, MaxPool2d

__all__ = ["MaxPool2d", "AvgPool2d"]
