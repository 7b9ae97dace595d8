"""The cost and gradients of one batch by autograd, and every intermediate's gradient."""
import torch

from backprop_oracle.torch_ref.losses import make_loss


def forward_with_intermediates(model, x):
    """Run an nn.Sequential module by module, keeping each output with ``retain_grad()``, so that
    after ``backward`` ``outputs[i].grad`` is dL/d(output of module i): dL/dz_1, dL/da_1, ..."""
    outputs = []
    for module in model:
        x = module(x)
        if x.requires_grad:
            x.retain_grad()
        outputs.append(x)
    return x, outputs


def value_and_grad(model, loss, X, Y):
    """Return (cost, {name: dCost/dparam}) for the batch (X, Y) by autograd, leaving ``.grad`` as it was."""
    loss_fn = make_loss(loss)
    params = dict(model.named_parameters())
    cost = loss_fn(model(X), Y)
    grads = torch.autograd.grad(cost, list(params.values()))
    return cost.item(), {name: g.detach().clone() for name, g in zip(params, grads)}
