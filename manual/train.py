"""A plain training loop for the manual network (the comparison drives both sides itself)."""
import numpy as np

from backprop_oracle.manual.losses import make_loss


def batches(n, batch_size, rng=None):
    """Index arrays for one epoch: shuffled by ``rng`` when given; ``batch_size`` None is the full batch."""
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
            optimizer.zero_grad()
            cost = float(loss_fn(model.forward(X[idx]), Y[idx]))
            model.backward(loss_fn.backward(), input_grad=False)   # training never needs dL/dX
            optimizer.step()
            step_costs.append(cost)
            total += cost * len(idx)
        epoch_costs.append(total / X.shape[0])
        if scheduler is not None:
            scheduler.step()
    return {"step_cost": step_costs, "epoch_cost": epoch_costs}
