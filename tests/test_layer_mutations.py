"""check_layer catches the mistakes students make in normalisation and dropout layers: one formula at
a time is planted into the manual layer (monkeypatched, undone after each test), and the check
against the torch module must fail naming the tensor the mistake first shows in, while the layer
without it passes."""
from dataclasses import dataclass

import numpy as np
import pytest

from backprop_oracle import manual
from backprop_oracle import torch_ref
from backprop_oracle.compare.check import check_layer
from backprop_oracle.manual import dropout as dropout_module
from backprop_oracle.manual import normalization as norm_module


@dataclass
class Planted:
    target: object        # the module or class whose attribute is replaced
    name: str
    body: object          # the wrong function
    layer: str            # which layer to check (see LAYERS)
    tensor: str           # the tensor the check must name
    stage: str            # the mismatch's stage


def dx_without_mean_of_gradient(g_hat, x_hat, inv_std, axes):
    M = int(np.prod([x_hat.shape[a] for a in axes]))
    return (inv_std / M) * (M * g_hat - x_hat * (g_hat * x_hat).sum(axis=axes, keepdims=True))


def dx_without_variance_term(g_hat, x_hat, inv_std, axes):
    M = int(np.prod([x_hat.shape[a] for a in axes]))
    return (inv_std / M) * (M * g_hat - g_hat.sum(axis=axes, keepdims=True))


def normalize_with_unbiased_variance(x, axes, eps):
    mu = x.mean(axis=axes, keepdims=True)
    M = int(np.prod([x.shape[a] for a in axes]))
    var = ((x - mu) ** 2).sum(axis=axes, keepdims=True) / (M - 1)     # should be / M
    inv_std = 1.0 / np.sqrt(var + eps)
    return (x - mu) * inv_std, inv_std


def running_var_biased(self, x, axes, n):
    self.num_batches_tracked += 1
    f = self.momentum
    mu = x.mean(axis=axes)
    var = ((x - norm_module._channels(mu, x.ndim)) ** 2).mean(axis=axes)   # should be / (n - 1)
    self.running_mean[...] = (1 - f) * self.running_mean + f * mu
    self.running_var[...] = (1 - f) * self.running_var + f * var


def running_momentum_flipped(self, x, axes, n):
    self.num_batches_tracked += 1
    f = self.momentum
    mu = x.mean(axis=axes)
    var = ((x - norm_module._channels(mu, x.ndim)) ** 2).sum(axis=axes) / (n - 1)
    self.running_mean[...] = f * self.running_mean + (1 - f) * mu      # the share of the old value swapped
    self.running_var[...] = f * self.running_var + (1 - f) * var


def dgamma_with_x_not_x_hat(self, dL_dy):
    x = self.x_hat / self.inv_std     # x - mu: the input before normalising
    dx = norm_module.normalize_backward(dL_dy * norm_module._channels(self.weight.data, dL_dy.ndim),
                                        self.x_hat, self.inv_std, (0,))
    self.weight.grad += (dL_dy * x).sum(axis=0)                           # should use x_hat
    self.bias.grad += dL_dy.sum(axis=0)
    return dx


def layernorm_dbeta_mean(self, dL_dy):
    lead = tuple(range(dL_dy.ndim - len(self.normalized_shape)))
    dx = norm_module.normalize_backward(dL_dy * self.weight.data, self.x_hat, self.inv_std,
                                        self._axes(dL_dy.ndim))
    self.weight.grad += (dL_dy * self.x_hat).sum(axis=lead)
    self.bias.grad += dL_dy.mean(axis=lead)                              # should be the sum
    return dx


def dropout_without_scale(x, keep, p):
    return x * keep                                                      # should be x keep / (1 - p)


def dropout_backward_without_mask(dL_dy, keep, p):
    return dL_dy / (1.0 - p)                                             # the mask dropped


PLANTED = {
    "batch-norm dx without the mean-of-gradient term": Planted(
        norm_module, "normalize_backward", dx_without_mean_of_gradient, "bn1d", "dL/dx", "backward"),
    "batch-norm dx without the x_hat mean(x_hat g) term": Planted(
        norm_module, "normalize_backward", dx_without_variance_term, "bn2d", "dL/dx", "backward"),
    "variance unbiased in the normalisation": Planted(
        norm_module, "normalize", normalize_with_unbiased_variance, "bn1d", "y (forward)", "forward"),
    "running variance kept biased": Planted(
        norm_module._BatchNorm, "_update_running_stats", running_var_biased, "bn1d",
        "running_var (buffer after forward)", "buffers"),
    "running statistics with the momentum's share swapped": Planted(
        norm_module._BatchNorm, "_update_running_stats", running_momentum_flipped, "bn1d",
        "running_mean (buffer after forward)", "buffers"),
    "dgamma from x instead of x_hat": Planted(
        norm_module._BatchNorm, "backward", dgamma_with_x_not_x_hat, "bn1d", "weight.grad", "backward"),
    "layer-norm dbeta averaged over the batch": Planted(
        norm_module.LayerNorm, "backward", layernorm_dbeta_mean, "ln", "bias.grad", "backward"),
    "dropout without 1/(1 - p)": Planted(
        dropout_module, "dropout", dropout_without_scale, "dropout", "y (forward)", "forward"),
    "dropout's mask not applied in backward": Planted(
        dropout_module, "dropout_backward", dropout_backward_without_mask, "dropout", "dL/dx", "backward"),
}


def check(layer_kind):
    """check_layer of a fresh manual layer of the kind against its torch twin (float64, 2 trials)."""
    if layer_kind == "bn1d":
        return check_layer(manual.BatchNorm1d(3), torch_ref.BatchNorm1d(3), input_shape=(6, 3), trials=2)
    if layer_kind == "bn2d":
        return check_layer(manual.BatchNorm2d(2), torch_ref.BatchNorm2d(2), input_shape=(3, 2, 2, 2), trials=2)
    if layer_kind == "ln":
        return check_layer(manual.LayerNorm(4), torch_ref.LayerNorm(4), input_shape=(5, 4), trials=2)
    layer = manual.Dropout(0.4, rng=np.random.default_rng(0))
    return check_layer(layer, torch_ref.Dropout(0.4, mask=lambda shape, p: layer.last_mask),
                       input_shape=(5, 4), trials=2)


@pytest.mark.parametrize("kind", ["bn1d", "bn2d", "ln", "dropout"])
def test_every_layer_passes_without_a_planted_mistake(kind):
    r = check(kind)
    assert r.passed, r.report()


@pytest.mark.parametrize("label", list(PLANTED))
def test_each_planted_mistake_is_caught_at_the_right_tensor(label, monkeypatch):
    planted = PLANTED[label]
    monkeypatch.setattr(planted.target, planted.name, planted.body)
    r = check(planted.layer)
    assert not r.passed, f"{label}: not caught\n{r.report()}"
    assert r.mismatch.diff.name == planted.tensor, f"{label}: named {r.mismatch.diff.name}\n{r.report()}"
    assert r.mismatch.stage == planted.stage, f"{label}: stage {r.mismatch.stage}\n{r.report()}"
    d = r.mismatch.diff
    assert abs(d.manual - d.torch) > d.allowed, f"{label}: the difference shown is within the tolerance"
    assert "linear layer" not in r.mismatch.reason, f"{label}: a linear layer's formula quoted\n{r.report()}"
    if planted.layer != "dropout" and planted.stage == "backward":
        assert "for a normalisation y = gamma x_hat + beta" in r.mismatch.reason, r.report()
