"""The cost and every parameter's gradient for one batch, computed the two ways the OR-gate
seed describes:

1. ``loop_value_and_grad``: for each of the m examples, backpropagate that example alone and
   accumulate its gradient δ into Δ; at the end average: ∂Cost/∂θ = Δ / m.
2. ``value_and_grad``: the vectorized pass over the whole batch at once (the default).

Both hold because every cost here is the mean over examples of a per-example loss.
Neither touches the parameters' values or leaves anything in their ``.grad``.
"""
import numpy as np

from backprop_oracle.manual.losses import make_loss


def _saved_grads(model):
    return [(p, p.grad.copy()) for p in model.parameters()]


def value_and_grad(model, loss, X, Y):
    """Return (cost, {name: dCost/dparam}) for the batch (X, Y), vectorized."""
    loss_fn = make_loss(loss)
    saved = _saved_grads(model)
    try:
        model.zero_grad()
        cost = loss_fn(model.forward(X), Y)
        model.backward(loss_fn.backward())
        grads = {name: p.grad.copy() for name, p in model.named_parameters()}
    finally:
        for p, g in saved:
            p.grad[...] = g
    return float(cost), grads


def loop_value_and_grad(model, loss, X, Y):
    """Return (cost, {name: dCost/dparam}) by the per-example loop: Δ += δ_i, then Δ / m."""
    loss_fn = make_loss(loss)
    m = X.shape[0]
    total_cost = 0.0
    Delta = {name: np.zeros_like(p.data) for name, p in model.named_parameters()}
    saved = _saved_grads(model)
    try:
        for i in range(m):
            model.zero_grad()
            xi, yi = X[i:i + 1], Y[i:i + 1]          # one example, kept 2-D: (1, in)
            total_cost += float(loss_fn(model.forward(xi), yi))
            model.backward(loss_fn.backward())
            for name, p in model.named_parameters():
                Delta[name] += p.grad              # δ of example i
    finally:
        for p, g in saved:
            p.grad[...] = g
    return total_cost / m, {name: d / m for name, d in Delta.items()}
