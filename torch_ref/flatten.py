"""Flatten: torch.nn.Flatten itself, dimensions start_dim=1 .. end_dim=-1 made into one."""
from torch.nn import Flatten

__all__ = ["Flatten"]
