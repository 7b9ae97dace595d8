"""Losses in torch, under the registry keys of manual/losses.py. Where torch has the loss
(mse, bce, cross_entropy) it is used as it is; the others are written here with the same
reduction as their manual twins.

N is the number of examples (rows); K the number of outputs per example.
"""
import torch
from torch import nn
from torch.nn import MSELoss, CrossEntropyLoss


class SquaredError(nn.Module):
    """Cost = (1/N) sum_n 1/2 sum_k (y - ŷ)^2, the seeds' OR-gate cost."""

    def forward(self, input, target):
        return 0.5 * torch.sum((target - input) ** 2) / input.shape[0]


class SumSquaredError(nn.Module):
    """Cost = (1/N) sum_n sum_k (y - ŷ)^2, the 3Blue1Brown digits cost."""

    def forward(self, input, target):
        return torch.sum((target - input) ** 2) / input.shape[0]


class BCELoss(nn.BCELoss):
    """torch.nn.BCELoss, except that a probability that is not a number (a run that diverged) gives a
    NaN cost and NaN gradients, as on the manual side, where torch would raise "all elements of
    input should be between 0 and 1"; every finite input is torch's own computation."""

    def forward(self, input, target):
        if not bool(torch.isfinite(input).all()):
            return (input * float("nan")).mean()
        return super().forward(input, target)


class HingeLoss(nn.Module):
    """Cost = (1/(N K)) sum max(0, 1 - y s) for labels y in {-1, +1} (binary SVM).

    Written with relu so that the subgradient at the kink is 0, as on the manual side.
    """

    def forward(self, input, target):
        if not bool(torch.all((target == 1) | (target == -1))):      # the same refusal as manual's
            raise ValueError("hinge: targets must be -1 or +1 (binary SVM labels)")
        return torch.mean(torch.relu(1.0 - target * input))


LOSSES = {
    "squared_error": SquaredError,
    "sum_squared_error": SumSquaredError,
    "mse": MSELoss,
    "bce": BCELoss,
    "cross_entropy": CrossEntropyLoss,
    "hinge": HingeLoss,
}


def make_loss(name):
    """Build the loss registered under ``name`` (an nn.Module passes through)."""
    if isinstance(name, nn.Module):
        return name
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of: {', '.join(LOSSES)}")
    return LOSSES[name]()
