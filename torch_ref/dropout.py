"""torch.nn.Dropout with its mask taken from a provider instead of torch's generator.

    training   y = x keep / (1 - p),  dL/dx = dL/dy keep / (1 - p)   (autograd through the product)
    eval       y = x

``mask`` is a function (shape, p) -> boolean keep mask (a NumPy array, copied in), the same
providers manual.Dropout takes; ``manual.dropout.DropoutMasks(rng).provider(key, "torch")`` gives
this side the masks that the manual side's ``provider(key, "manual")`` gets, so a network with
dropout is compared element by element. Without a provider it is torch.nn.Dropout exactly.
"""
import numpy as np
import torch


class Dropout(torch.nn.Dropout):
    """torch.nn.Dropout(p, inplace); with ``mask=provider`` the keep mask is ``provider(x.shape, p)``."""

    def __init__(self, p=0.5, inplace=False, *, mask=None):
        super().__init__(p, inplace)
        if mask is not None and not callable(mask):
            raise ValueError("mask must be a function (shape, p) -> boolean keep mask")
        self.mask_provider = mask
        self.last_mask = None

    def forward(self, x):
        if self.mask_provider is None or not self.training or self.p == 0.0:
            return super().forward(x)
        keep = np.asarray(self.mask_provider(tuple(x.shape), self.p))
        if keep.shape != tuple(x.shape):
            raise ValueError(f"the dropout mask has shape {keep.shape}, the input {tuple(x.shape)}")
        self.last_mask = keep
        scale = 0.0 if self.p == 1.0 else 1.0 / (1.0 - self.p)
        factor = torch.tensor(keep.astype(np.float64) * scale, dtype=x.dtype, device=x.device)
        return x.mul_(factor) if self.inplace else x * factor


__all__ = ["Dropout"]
