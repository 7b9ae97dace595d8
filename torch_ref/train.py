"""A plain training loop for the torch network, the mirror of manual/train.py."""
import numpy as np
import torch

from backprop_oracle.torch_ref.losses import make_loss


def batches(n, batch_size, rng=None):
    """Index arrays for one epoch: shuffled by ``rng`` (a numpy Generator) when given; None is the full batch."""
    order = np.arange(n) if rng is None else rng.permutation(n)
    size = n if batch_size is None else int(batch_size)
    return [order[i:i + size] for i in range(0, n, size)]


def fit(model, loss, optimizer, X, Y, *, epochs=1, batch_size=None, scheduler=None, seed=None,
        shuffle=True):
    """Train ``model`` in place; return the cost of every step (before its update) and of every
    epoch (the batch costs averaged, weighted by batch size)."""
    loss_fn = make_loss(loss)
    rng = np.random.default_rng(seed) if shuffle else None
    step_costs, epoch_costs = [], []
    for _ in range(epochs):
        total = 0.0
        for idx in batches(X.shape[0], batch_size, rng):
            idx = torch.as_tensor(idx, device=X.device)
            optimizer.zero_grad()
            cost = loss_fn(model(X[idx]), Y[idx])
            cost.backward()
            optimizer.step()
            step_costs.append(cost.item())
            total += cost.item() * len(idx)
        epoch_costs.append(total / X.shape[0])
        if scheduler is not None:
            scheduler.step()
    return {"step_cost": step_costs, "epoch_cost": epoch_costs}
