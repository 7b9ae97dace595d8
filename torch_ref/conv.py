"""Convolutions: torch.nn.Conv2d and torch.nn.Conv1d themselves, NCHW, weight (out, in/groups, kH, kW)."""
from torch.nn import Conv1d, Conv2d

__all__ = ["Conv2d", "Conv1d"]
