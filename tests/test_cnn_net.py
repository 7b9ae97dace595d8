"""Convolution, pooling, normalisation and dropout layers in an experiment's layers list: built on
both sides from the registry, initialised with torch's fans, compared in lockstep with one dropout
mask for both sides, and a mistake in one of them found at its module."""
import numpy as np
import pytest
import torch

from backprop_oracle import manual, torch_ref
from backprop_oracle.compare.errors import SpecError
from backprop_oracle.compare.experiments.spec import ExperimentSpec
from backprop_oracle.compare.lockstep.run import LockstepRun, run_lockstep
from backprop_oracle.compare.network.layers import resolve
from backprop_oracle.compare.sides.sides import TorchSide, dropouts

# every new kind once: module 0 conv, 1 relu, 2 maxpool, 3 conv, 4 batchnorm, 5 relu, 6 avgpool,
# 7 flatten, 8 dropout, 9 linear, 10 layernorm, 11 tanh, 12 linear
EVERY_KIND = ("conv(4, 3, padding=1) relu maxpool(2) conv(6, 3, padding=1, stride=1) batchnorm relu "
              "avgpool(2) flatten dropout(0.25) linear(12) layernorm tanh linear(10)")
CNN = ExperimentSpec(dataset="digits", layers=EVERY_KIND, input_shape=(1, 8, 8), loss="cross_entropy",
                     optimizer="sgd", lr=0.05, optimizer_args={"momentum": 0.9}, init="kaiming_uniform",
                     epochs=1, batch_size=128, seed=3)


def test_every_layer_kind_gets_the_shape_flowing_in_and_says_what_it_takes():
    net = resolve(tuple(EVERY_KIND.replace(", ", ",").split()), (1, 8, 8), 10)
    assert net.shapes == ((1, 8, 8), (4, 8, 8), (4, 8, 8), (4, 4, 4), (6, 4, 4), (6, 4, 4), (6, 4, 4),
                          (6, 2, 2), (24,), (24,), (12,), (12,), (12,), (10,))
    assert [type(m).__name__ for m in net.manual()][:5] == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "BatchNorm2d"]
    assert type(net.torch(torch_ref)[4]) is torch.nn.BatchNorm2d
    assert type(resolve(("flatten", "batchnorm", "linear(10)"), (1, 8, 8), 10).manual()[1]).__name__ == "BatchNorm1d"
    with pytest.raises(SpecError, match=r"layer 2 'conv\(4, 3\)' gets \(N, 64\), but conv takes \(N, C, H, W\)"):
        resolve(("flatten", "conv(4, 3)", "flatten", "linear(10)"), (1, 8, 8), 10)
    with pytest.raises(SpecError, match=r"layer 1 'maxpool\(16\)' gets \(N, 1, 8, 8\), which it cannot take"):
        resolve(("maxpool(16)", "flatten", "linear(10)"), (1, 8, 8), 10)
    with pytest.raises(SpecError, match=r"conv takes conv\(out_channels, kernel_size, stride=1, padding=0"):
        resolve(("conv(4)", "flatten", "linear(10)"), (1, 8, 8), 10)


@pytest.mark.parametrize("shape", [(5, 3), (8, 2, 3, 3), (6, 4, 5), (3, 12, 1, 1)])
def test_initialisers_use_torch_s_fans_for_convolution_weights(shape):
    t = torch.empty(shape, dtype=torch.float64)
    assert manual.init.fans(shape) == torch.nn.init._calculate_fan_in_and_fan_out(t)
    for mode in ("fan_in", "fan_out"):
        assert manual.init._fan(shape, mode) == torch.nn.init._calculate_correct_fan(t, mode)
    q = manual.init.orthogonal(np.random.default_rng(0), shape)
    flat = q.reshape(shape[0], -1)
    small = min(flat.shape)
    gram = flat @ flat.T if flat.shape[0] == small else flat.T @ flat
    assert q.shape == shape and np.abs(gram - np.eye(small)).max() <= 1e-12


def test_a_normalisation_s_scale_and_shift_start_at_one_and_zero_on_both_sides():
    net = resolve(("conv(3, 3)", "batchnorm", "flatten", "layernorm", "linear(10)"), (1, 8, 8), 10)
    state = manual.init_parameters(net.manual(), "xavier_uniform", np.random.default_rng(0))
    assert (state["1.weight"] == 1).all() and (state["1.bias"] == 0).all()
    assert (state["3.weight"] == 1).all() and (state["3.bias"] == 0).all()
    assert state["0.weight"].std() > 0.05
    model = torch_ref.init_parameters(net.torch(torch_ref), "xavier_uniform", seed=0)
    assert (model[1].weight == 1).all() and (model[3].bias == 0).all() and model[0].weight.std() > 0.05


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_cnn_with_every_kind_agrees_in_lockstep_with_one_dropout_mask_for_both_sides(dtype):
    from dataclasses import replace
    run = LockstepRun(replace(CNN, dtype=dtype))
    seen = []
    run.observers.append(type("Masks", (), {"on_step": lambda self, r, rec: seen.append(
        (run.manual.model[8].last_mask.copy(), run.torch.model[8].last_mask.copy()))})())
    result = run.run()
    assert result.passed, result.mismatch and result.mismatch.describe()
    n = run.problem.X.shape[0]
    assert result.steps == len(seen) == -(-n // 128)
    for k, (m, t) in enumerate(seen):
        assert m.shape == (min(128, n - 128 * k), 24)
        assert np.array_equal(m, t), f"step {k + 1}: the two sides' dropout masks differ"
        assert 0.6 < m.mean() < 0.9              # p = 0.25: about 3 in 4 kept
    assert not np.array_equal(seen[0][0], seen[1][0]), "a new mask every step"
    bm, bt = run.manual.buffers(), run.torch.buffers()
    assert set(bm) == {"4.running_mean", "4.running_var"}
    for name in bm:
        assert np.abs(bm[name] - bt[name]).max() <= (1e-12 if dtype == "float64" else 1e-5), name


def test_a_torch_side_built_alone_draws_the_masks_a_lockstep_run_gives_both():
    run = LockstepRun(CNN)
    alone = TorchSide(CNN, run.problem.sizes, run.initial_state)
    alone.load(run.problem)
    idx = np.arange(128)
    run.manual.forward_backward(idx)
    run.torch.forward_backward(idx)
    alone.forward_backward(idx)
    [(i, m)] = dropouts(alone.model)
    assert np.array_equal(m.last_mask, run.manual.model[i].last_mask)
    assert np.array_equal(m.last_mask, run.torch.model[i].last_mask)


def test_dropout_without_its_scale_is_found_at_the_dropout_module(monkeypatch):
    monkeypatch.setattr(manual.dropout, "dropout", lambda x, keep, p: x * keep)     # 1/(1 - p) forgotten
    m = run_lockstep(CNN, progress=False).mismatch
    assert m is not None and m.step == 1
    assert (m.node, m.node_module) == ("forward", 8), m.describe()
    assert m.proof.wrong and "dropout" in m.proof.where.lower()


def test_dropout_s_backward_without_the_mask_is_found_at_that_module(monkeypatch):
    monkeypatch.setattr(manual.dropout, "dropout_backward", lambda g, keep, p: g / (1 - p))   # the mask not applied
    m = run_lockstep(CNN, progress=False).mismatch
    assert m is not None and m.step == 1
    assert (m.node, m.node_module) == ("backward", 8), m.describe()
    assert m.proof.wrong


def test_hidden_sizes_on_a_cnn_preset_make_a_dense_network_of_the_rows():
    from backprop_oracle.compare.experiments.overrides import with_changes
    from backprop_oracle.compare.experiments.presets import get_preset
    from backprop_oracle.compare.experiments.setup import prepare
    spec = with_changes(get_preset("digits-cnn").runs[""], hidden_sizes=(32,))
    assert spec.layers == () and spec.input_shape == ()
    assert prepare(spec).network.sizes == (64, 32, 10)
    kept = with_changes(get_preset("digits-cnn").runs[""], hidden_sizes=(32,), input_shape=(64,))
    assert kept.input_shape == (64,)
