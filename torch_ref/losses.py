"""Losses in torch, under the registry keys of manual/losses.py. Where torch has the loss
(mse, bce, cross_entropy, bce_with_logits, l1, smooth_l1, huber, nll) it is used as it is (a list of
class weights becomes the tensor torch takes); the others are written here with the same
reduction as their manual twins.

N is the number of examples (rows); K the number of outputs per example.
"""
import torch
from torch import nn
from torch.nn import MSELoss, L1Loss, SmoothL1Loss, HuberLoss

from backprop_oracle.keys import build


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


def _refuse_none(reduction):
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum' (a cost is one number), got {reduction!r}")


def _weight_tensor(weight):
    """A class-weight list (as the manual side takes it) as the float64 tensor torch wants."""
    return None if weight is None else torch.tensor(weight, dtype=torch.float64).reshape(-1)


class CrossEntropyLoss(nn.CrossEntropyLoss):
    """torch.nn.CrossEntropyLoss; ``weight`` may be a list of numbers, cast to the input's dtype."""

    def __init__(self, weight=None, label_smoothing=0.0, reduction="mean"):
        _refuse_none(reduction)
        super().__init__(weight=_weight_tensor(weight), label_smoothing=label_smoothing, reduction=reduction)

    def forward(self, input, target):
        weight = None if self.weight is None else self.weight.to(input.dtype)
        return nn.functional.cross_entropy(input, target, weight=weight, reduction=self.reduction,
                                           label_smoothing=self.label_smoothing)


class NLLLoss(nn.NLLLoss):
    """torch.nn.NLLLoss on log-probabilities; ``weight`` may be a list, cast to the input's dtype."""

    def __init__(self, weight=None, reduction="mean"):
        _refuse_none(reduction)
        super().__init__(weight=_weight_tensor(weight), reduction=reduction)

    def forward(self, input, target):
        weight = None if self.weight is None else self.weight.to(input.dtype)
        return nn.functional.nll_loss(input, target, weight=weight, reduction=self.reduction)


class BCEWithLogitsLoss(nn.BCEWithLogitsLoss):
    """torch.nn.BCEWithLogitsLoss; ``pos_weight`` may be a number or a list (one per output)."""

    def __init__(self, pos_weight=None, reduction="mean"):
        _refuse_none(reduction)
        super().__init__(pos_weight=_weight_tensor(pos_weight), reduction=reduction)

    def forward(self, input, target):
        pw = None if self.pos_weight is None else self.pos_weight.to(input.dtype)
        return nn.functional.binary_cross_entropy_with_logits(input, target, pos_weight=pw,
                                                              reduction=self.reduction)


LOSSES = {
    "squared_error": SquaredError,
    "sum_squared_error": SumSquaredError,
    "mse": MSELoss,
    "bce": BCELoss,
    "cross_entropy": CrossEntropyLoss,
    "hinge": HingeLoss,
    "bce_with_logits": BCEWithLogitsLoss,
    "l1": L1Loss,
    "smooth_l1": SmoothL1Loss,
    "huber": HuberLoss,
    "nll": NLLLoss,
}


def make_loss(name):
    """Build the loss registered under ``name``, a key or a key with torch's arguments
    ("cross_entropy:label_smoothing=0.1", see backprop_oracle/keys.py); an nn.Module passes through."""
    if isinstance(name, nn.Module):
        return name
    return build(LOSSES, "loss", name)
