"""check_layer on normalisation and dropout layers: the torch module runs in the layer's mode from
the layer's buffers, the running statistics are compared after each forward (and put back), a
random forward is refused by central differences, and layers written the CS231n way (forward ->
(out, cache), backward(dout, cache) -> (dx, dgamma, dbeta)) are checked with their gradients
matched by position."""
import numpy as np
import pytest
import torch

from backprop_oracle import manual
from backprop_oracle import torch_ref
from backprop_oracle.compare.check import CheckError, cached_layer, check_layer

BUFFERS = ["running_mean (buffer after forward)", "running_var (buffer after forward)",
           "num_batches_tracked (buffer after forward)"]


def names(result):
    return [t.diff.name for t in result.tensors]


@pytest.mark.parametrize("layer,ref,shape", [
    (lambda: manual.BatchNorm1d(3), lambda: torch_ref.BatchNorm1d(3), (5, 3)),
    (lambda: manual.BatchNorm1d(2, momentum=None), lambda: torch_ref.BatchNorm1d(2, momentum=None), (4, 2, 3)),
    (lambda: manual.BatchNorm2d(2), lambda: torch_ref.BatchNorm2d(2), (3, 2, 2, 3)),
    (lambda: manual.LayerNorm((2, 3)), lambda: torch_ref.LayerNorm((2, 3)), (4, 2, 3)),
])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_the_manual_layers_pass_against_torch_and_central_differences(layer, ref, shape, mode):
    m = layer().train(mode == "train")
    if hasattr(m, "running_var"):
        m.running_mean[...] = np.linspace(-1, 1, m.num_features)
        m.running_var[...] = np.linspace(0.5, 2, m.num_features)
    before = {n: b.copy() for n, b in m.named_buffers()}
    r = check_layer(m, ref(), input_shape=shape)
    assert r.passed, r.report()
    assert names(r)[:4] == ["y (forward)", "dL/dx", "weight.grad", "bias.grad"]
    if before:
        assert set(BUFFERS) <= set(names(r)), names(r)
        assert any(f"ran in {'training' if mode == 'train' else 'evaluation'} mode" in n for n in r.notes), r.notes
    for n, b in m.named_buffers():
        assert np.array_equal(b, before[n]), f"the check left {n} changed: {b} vs {before[n]}"
    r = check_layer(m, None, input_shape=shape)
    assert r.passed, r.report()


def test_the_torch_module_is_run_in_the_layers_mode():
    """A layer in eval mode against a torch module left in training mode: still compared in eval."""
    m = manual.BatchNorm1d(3).eval()
    m.running_var[...] = 4.0
    r = check_layer(m, torch_ref.BatchNorm1d(3), input_shape=(4, 3))
    assert r.passed, r.report()


def test_a_layer_without_the_modules_buffers_is_refused():
    m = manual.BatchNorm1d(3)
    with pytest.raises(CheckError, match="buffer 'running_mean' but the torch module has none"):
        check_layer(m, torch_ref.BatchNorm1d(3, track_running_stats=False), input_shape=(4, 3))


def test_dropout_against_torch_with_the_layers_own_mask():
    layer = manual.Dropout(0.3, rng=np.random.default_rng(0))
    ref = torch_ref.Dropout(0.3, mask=lambda shape, p: layer.last_mask)   # the mask the layer just drew
    r = check_layer(layer, ref, input_shape=(6, 5), trials=3)
    assert r.passed and names(r) == ["y (forward)", "dL/dx"], r.report()


def test_a_torch_dropout_with_its_own_generator_is_refused_not_compared():
    layer = manual.Dropout(0.3, rng=np.random.default_rng(0))
    with pytest.raises(CheckError, match="mask from torch's own generator, so its y cannot be yours"):
        check_layer(layer, torch.nn.Dropout(0.3), input_shape=(6, 5))
    assert check_layer(layer.eval(), torch.nn.Dropout(0.3), input_shape=(6, 5)).passed


def test_a_random_forward_is_refused_by_central_differences_and_a_held_mask_is_checked():
    with pytest.raises(CheckError, match="returned different values for the same input"):
        check_layer(manual.Dropout(0.5, rng=np.random.default_rng(0)), None, input_shape=(4, 3))
    keep = np.random.default_rng(1).random((4, 3)) >= 0.5
    r = check_layer(manual.Dropout(0.5, mask=lambda shape, p: keep), None, input_shape=(4, 3))
    assert r.passed, r.report()


# ---- the CS231n way: forward -> (out, cache), backward(dout, cache) -> (dx, dgamma, dbeta) ----

def batchnorm_forward(x, gamma, beta, bn_param):
    """The assignment's layout: momentum keeps the old value (0.9), running_var biased."""
    mode, eps, momentum = bn_param["mode"], bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9)
    D = x.shape[1]
    running_mean = bn_param.get("running_mean", np.zeros(D))
    running_var = bn_param.get("running_var", np.zeros(D))
    if mode == "train":
        mu, var = x.mean(axis=0), x.var(axis=0)
        std = np.sqrt(var + eps)
        x_hat = (x - mu) / std
        running_mean = momentum * running_mean + (1 - momentum) * mu
        running_var = momentum * running_var + (1 - momentum) * var
    else:
        std = np.sqrt(running_var + eps)
        x_hat = (x - running_mean) / std
    bn_param["running_mean"], bn_param["running_var"] = running_mean, running_var
    return gamma * x_hat + beta, (x_hat, gamma, std, mode)


def batchnorm_backward(dout, cache):
    x_hat, gamma, std, mode = cache
    N = dout.shape[0]
    dgamma, dbeta = (dout * x_hat).sum(axis=0), dout.sum(axis=0)
    dx_hat = dout * gamma
    if mode != "train":
        return dx_hat / std, dgamma, dbeta
    dx = (N * dx_hat - dx_hat.sum(axis=0) - x_hat * (dx_hat * x_hat).sum(axis=0)) / (N * std)
    return dx, dgamma, dbeta


class BatchNormLayer:
    """The same as an object: self.gamma, self.beta; forward(x) -> (out, cache)."""

    def __init__(self, D, swap=False):
        self.gamma, self.beta = np.ones(D), np.zeros(D)
        self.bn_param, self.swap = {"mode": "train"}, swap

    def forward(self, x):
        return batchnorm_forward(x, self.gamma, self.beta, self.bn_param)

    def backward(self, dout, cache):
        dx, dgamma, dbeta = batchnorm_backward(dout, cache)
        return (dx, dbeta, dgamma) if self.swap else (dx, dgamma, dbeta)


def test_a_cs231n_function_pair_is_checked_with_its_gradients_matched_by_position():
    D = 4
    bn_param = {"mode": "train", "running_mean": np.zeros(D), "running_var": np.ones(D)}
    layer = cached_layer(batchnorm_forward, batchnorm_backward,
                         params={"gamma": np.ones(D), "beta": np.zeros(D)}, args=(bn_param,))
    r = check_layer(layer, torch.nn.BatchNorm1d(D), input_shape=(6, D))
    assert r.passed, r.report()
    assert names(r)[:4] == ["y (forward)", "dL/dx", "gamma.grad", "beta.grad"]
    assert any("matched by position: the 1st as dL/dx, the 2nd as gamma.grad, the 3rd as beta.grad" in n
               for n in r.notes), r.notes
    assert check_layer(layer, None, input_shape=(6, D)).passed
    # evaluation mode: bn_param's mode, the torch module follows it
    bn_param.update(mode="test", running_mean=np.linspace(-1, 1, D), running_var=np.linspace(1, 3, D))
    assert check_layer(layer, torch.nn.BatchNorm1d(D), input_shape=(6, D)).passed


def test_a_cs231n_running_variance_is_biased_and_named_it_differs_from_torchs():
    D = 3
    bn_param = {"mode": "train", "running_mean": np.zeros(D), "running_var": np.ones(D)}
    params = {"gamma": np.ones(D), "beta": np.zeros(D)}
    r = check_layer(cached_layer(batchnorm_forward, batchnorm_backward, params=params, args=(bn_param,),
                                 buffers=("running_mean",)), torch.nn.BatchNorm1d(D), input_shape=(5, D))
    assert r.passed and "running_mean (buffer after forward)" in names(r), r.report()
    assert np.array_equal(bn_param["running_mean"], np.zeros(D)), "the check left bn_param changed"
    r = check_layer(cached_layer(batchnorm_forward, batchnorm_backward, params=params, args=(bn_param,),
                                 buffers=("running_mean", "running_var")), torch.nn.BatchNorm1d(D), input_shape=(5, D))
    assert not r.passed and r.mismatch.stage == "buffers", r.report()
    assert r.mismatch.diff.name == "running_var (buffer after forward)"
    assert "unbiased" in r.mismatch.reason and "every output and gradient is right" in r.mismatch.reason


def test_a_cs231n_layer_object_is_found_by_its_backward_and_a_swapped_gradient_is_named():
    r = check_layer(BatchNormLayer(3), torch.nn.BatchNorm1d(3), input_shape=(5, 3))
    assert r.passed, r.report()
    assert any("the 2nd as gamma.grad, the 3rd as beta.grad" in n for n in r.notes), r.notes
    r = check_layer(BatchNormLayer(3, swap=True), torch.nn.BatchNorm1d(3), input_shape=(5, 3))
    assert not r.passed and r.mismatch.diff.name == "gamma.grad", r.report()
    layer = BatchNormLayer(3)
    layer.gamma[...] = 2.0
    check_layer(layer, None, input_shape=(5, 3))
    assert np.array_equal(layer.gamma, np.full(3, 2.0)), "the check left the object's gamma changed"


def test_a_cached_backward_returning_too_few_arrays_is_a_clear_error():
    layer = cached_layer(batchnorm_forward, lambda dout, cache: batchnorm_backward(dout, cache)[:2],
                         params={"gamma": np.ones(2), "beta": np.zeros(2)}, args=({"mode": "train"},))
    with pytest.raises(CheckError, match=r"returned 2 array\(s\); it should return \(dx, dgamma, dbeta\)"):
        check_layer(layer, torch.nn.BatchNorm1d(2), input_shape=(4, 2))


def test_the_readme_block_runs():
    """README's normalisation and dropout block, with the CS231n functions of this file as the user's."""
    import pathlib
    text = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in (part.split("```")[0] for part in text.split("```python\n")[1:]) if "DropoutMasks" in b)
    namespace = {"batchnorm_forward": batchnorm_forward, "batchnorm_backward": batchnorm_backward}
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["layer"].params.keys() == {"gamma", "beta"}


def dropout_forward(x, dropout_param):
    """The assignment's dropout: p is the probability of KEEPING a unit; the mask carries 1/p."""
    p, mode = dropout_param["p"], dropout_param["mode"]
    if "seed" in dropout_param:
        np.random.seed(dropout_param["seed"])
    mask = (np.random.rand(*x.shape) < p) / p if mode == "train" else None
    return (x * mask if mode == "train" else x), (dropout_param, mask)


def dropout_backward(dout, cache):
    dropout_param, mask = cache
    return dout * mask if dropout_param["mode"] == "train" else dout


def test_a_cs231n_dropout_is_checked_against_torch_with_its_own_mask_and_by_central_differences():
    state = np.random.get_state()
    try:
        layer = cached_layer(dropout_forward, dropout_backward, params={}, args=({"p": 0.7, "mode": "train", "seed": 1},))
        ref = torch_ref.Dropout(0.3, mask=lambda shape, p: layer.cache[1] != 0)   # torch's p is the share dropped
        r = check_layer(layer, ref, input_shape=(5, 4))
        assert r.passed and names(r) == ["y (forward)", "dL/dx"], r.report()
        assert check_layer(layer, None, input_shape=(5, 4)).passed      # the seed makes its forward repeatable
        wrong = cached_layer(dropout_forward, lambda dout, cache: dout, params={},
                             args=({"p": 0.7, "mode": "train", "seed": 1},))
        r = check_layer(wrong, torch_ref.Dropout(0.3, mask=lambda shape, p: wrong.cache[1] != 0), input_shape=(5, 4))
        assert not r.passed and r.mismatch.diff.name == "dL/dx", r.report()
    finally:
        np.random.set_state(state)
