"""Batch and layer normalisation: torch.nn.BatchNorm1d, BatchNorm2d and LayerNorm themselves, with
their defaults (eps 1e-5, momentum 0.1, running_var kept unbiased, weight ones, bias zeros) and
their names ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")."""
from torch.nn import BatchNorm1d, BatchNorm2d, LayerNorm

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm"]
