"""Flatten: torch.nn.Flatten itself, (N, C, H, W) -> (N, C·H·W)."""
from torch.nn import Flatten

__all__ = ["Flatten"]
