"""Optimizers and schedules against torch.optim over several steps (tinygrad's pattern: initial
arrays made once from a fixed seed, one helper that runs either side, each case a one-liner)."""
import numpy as np
import pytest
import torch

from backprop_oracle import manual
from backprop_oracle import torch_ref
from backprop_oracle.compare.verdict.tolerances import Tolerance
from tests.helpers import assert_close

rng = np.random.default_rng(2)
W0 = rng.normal(size=(4, 3))
B0 = rng.normal(size=(4,))
GRADS = [(rng.normal(size=(4, 3)), rng.normal(size=(4,))) for _ in range(6)]


def run_manual(name, steps, schedule=None, schedule_args=None, **kwargs):
    params = [manual.Parameter(W0), manual.Parameter(B0)]
    opt = manual.make_optimizer(name, params, **kwargs)
    sched = manual.make_scheduler(schedule, opt, **(schedule_args or {})) if schedule else None
    lrs = []
    for gw, gb in GRADS[:steps]:
        params[0].grad[...], params[1].grad[...] = gw, gb
        lrs.append(opt.lr)
        opt.step()
        if sched:
            sched.step()
    return [p.data for p in params], lrs


def run_torch(name, steps, schedule=None, schedule_args=None, **kwargs):
    params = [torch.nn.Parameter(torch.tensor(W0)), torch.nn.Parameter(torch.tensor(B0))]
    opt = torch_ref.make_optimizer(name, params, **kwargs)
    sched = torch_ref.make_scheduler(schedule, opt, **(schedule_args or {})) if schedule else None
    lrs = []
    for gw, gb in GRADS[:steps]:
        params[0].grad, params[1].grad = torch.tensor(gw), torch.tensor(gb)
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if sched:
            sched.step()
    return params, lrs


def check(name, steps=6, **kwargs):
    (mw, mb), mlr = run_manual(name, steps, **kwargs)
    (tw, tb), tlr = run_torch(name, steps, **kwargs)
    label = f"{name}({kwargs})"
    assert_close(f"{label} weight after {steps} steps", mw, tw)
    assert_close(f"{label} bias after {steps} steps", mb, tb)
    assert_close(f"{label} learning rates", mlr, tlr)


def test_sgd(): check("sgd", lr=0.1)
def test_sgd_momentum(): check("sgd", lr=0.3, momentum=0.6)                     # the lecture notes' values
def test_sgd_momentum_dampening(): check("sgd", lr=0.1, momentum=0.9, dampening=0.5)
def test_sgd_nesterov(): check("sgd", lr=0.1, momentum=0.9, nesterov=True)
def test_sgd_weight_decay(): check("sgd", lr=0.1, weight_decay=0.01)
def test_sgd_momentum_weight_decay(): check("sgd", lr=0.1, momentum=0.9, weight_decay=0.05)
def test_adam(): check("adam", lr=0.01)
def test_adam_first_step_bias_correction(): check("adam", steps=1, lr=0.01)
def test_adam_betas_eps_weight_decay(): check("adam", lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)
def test_step_decay(): check("sgd", lr=0.5, momentum=0.5, schedule="step", schedule_args={"step_size": 2, "gamma": 0.5})
def test_exponential_decay(): check("sgd", lr=0.5, schedule="exponential", schedule_args={"gamma": 0.9})
def test_constant_schedule(): check("adam", lr=0.01, schedule="constant")


def test_adam_first_step_moves_each_weight_by_lr():
    """With bias correction, Adam's first step is lr · g/|g| (up to eps) for every element."""
    (mw, _), _ = run_manual("adam", 1, lr=0.01)
    # |g| >= 1e-3 here, so eps = 1e-8 changes the step by at most 1e-5 relative.
    assert_close("Adam step-1 displacement", np.abs(mw - W0), np.full_like(W0, 0.01),
                 tol=Tolerance(rtol=1e-5, atol=0))


def test_seeds_momentum_form_equals_torchs_with_constant_lr():
    """Δw_t = -α ∇ + μ Δw_{t-1} (seed 003) gives torch's SGD-momentum trajectory when α is constant."""
    alpha, mu, w, dw = 0.3, 0.6, W0.copy(), np.zeros_like(W0)
    for gw, _ in GRADS:
        dw = -alpha * gw + mu * dw
        w = w + dw
    (mw, _), _ = run_manual("sgd", len(GRADS), lr=alpha, momentum=mu)
    assert_close("seed-form momentum weight", w, mw)


@pytest.mark.parametrize("name,kwargs,message", [
    ("sgd", {"lr": -1.0}, "Invalid learning rate: -1.0"),
    ("sgd", {"lr": 0.1, "momentum": -0.5}, "Invalid momentum value"),
    ("sgd", {"lr": 0.1, "nesterov": True}, "Nesterov momentum requires"),
    ("adam", {"lr": 0.1, "betas": (1.0, 0.9)}, "Invalid beta parameter at index 0"),
    ("adam", {"lr": 0.1, "momentum": 0.9}, "unexpected keyword argument 'momentum'"),
])
def test_invalid_arguments_are_rejected_like_torch(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        manual.make_optimizer(name, [manual.Parameter(W0)], **kwargs)
    with pytest.raises(ValueError, match=message):
        torch_ref.make_optimizer(name, [torch.nn.Parameter(torch.tensor(W0))], **kwargs)


def test_adamw(): check("adamw", lr=0.01)                                            # torch's weight_decay 1e-2
def test_adamw_amsgrad_decay(): check("adamw", lr=0.05, weight_decay=0.2, amsgrad=True, betas=(0.9, 0.5))
def test_adam_amsgrad(): check("adam", lr=0.05, amsgrad=True, betas=(0.8, 0.5), weight_decay=0.1)
def test_rmsprop(): check("rmsprop", lr=0.01)
def test_rmsprop_centered_momentum(): check("rmsprop", lr=0.01, alpha=0.9, centered=True, momentum=0.8, weight_decay=0.1)
def test_rmsprop_large_eps(): check("rmsprop", lr=0.01, eps=0.5)                      # eps outside the root shows
def test_adagrad(): check("adagrad", lr=0.1)
def test_adagrad_decay_accumulator(): check("adagrad", lr=0.1, lr_decay=0.3, initial_accumulator_value=0.5,
                                            weight_decay=0.1, eps=1e-3)
def test_multistep(): check("sgd", lr=0.5, schedule="multistep", schedule_args={"milestones": [1, 3, 3], "gamma": 0.5})
def test_cosine(): check("sgd", lr=0.5, schedule="cosine", schedule_args={"T_max": 2, "eta_min": 0.05})   # past T_max
def test_linear_warmup(): check("adam", lr=0.1, schedule="linear", schedule_args={"start_factor": 0.1, "total_iters": 3})
def test_onecycle_cycles_momentum(): check("sgd", lr=0.5, schedule="onecycle", schedule_args={"total_steps": 6})
def test_onecycle_three_phase_adam(): check("adam", lr=0.5, schedule="onecycle", schedule_args={
    "total_steps": 6, "three_phase": True, "anneal_strategy": "linear", "pct_start": 0.4})
def test_sequential_warmup_then_cosine(): check("sgd", lr=0.5, schedule="sequential", schedule_args={
    "schedulers": [{"schedule": "linear", "start_factor": 0.2, "total_iters": 2}, {"schedule": "cosine", "T_max": 3}],
    "milestones": [2]})
def test_sequential_step_after_exponential(): check("rmsprop", lr=0.5, schedule="sequential", schedule_args={
    "schedulers": [{"schedule": "exponential", "gamma": 0.5}, {"schedule": "step", "step_size": 2}],
    "milestones": [3]})


@pytest.mark.parametrize("name,kwargs", [("adam", {"amsgrad": True}), ("adamw", {}), ("rmsprop", {"centered": True,
                         "momentum": 0.5}), ("adagrad", {"lr_decay": 0.1})])
def test_flat_buffer_step_equals_tensor_by_tensor(name, kwargs):
    """The one NumPy operation over a model's flat buffer gives the numbers of the per-tensor step."""
    def run(flat):
        model = manual.mlp([3, 4, 2], "tanh", "identity")
        model.load_state_dict(manual.init_parameters(model, "xavier_uniform", 0))
        params = model.parameters() if flat else [manual.Parameter(p.data) for p in model.parameters()]
        opt = manual.make_optimizer(name, params, lr=0.05, **kwargs)
        assert (manual.module.FlatParameters.of(opt.params) is not None) == flat
        for step in range(4):
            for i, p in enumerate(params):
                p.grad[...] = np.random.default_rng(10 * step + i).normal(size=p.shape)
            opt.step()
        return [p.data.copy() for p in params]
    for i, (a, b) in enumerate(zip(run(True), run(False))):
        assert np.array_equal(a, b), f"{name} parameter {i}: flat and per-tensor steps differ by {np.abs(a - b).max()}"


def test_schedule_intervals_are_the_same_on_both_sides():
    for name in manual.SCHEDULERS:
        assert manual.lr_scheduler.interval(name) == torch_ref.lr_scheduler.interval(name), name
    assert manual.lr_scheduler.interval("onecycle") == "step" and manual.lr_scheduler.interval("cosine") == "epoch"


def test_onecycle_refuses_an_optimizer_without_momentum_like_torch():
    message = "optimizer must support momentum or beta1"
    with pytest.raises(ValueError, match=message):
        manual.make_scheduler("onecycle", manual.make_optimizer("adagrad", [manual.Parameter(W0)]), total_steps=5)
    with pytest.raises(ValueError, match=message):
        torch_ref.make_scheduler("onecycle", torch_ref.make_optimizer("adagrad", [torch.nn.Parameter(torch.tensor(W0))]),
                                 total_steps=5)


@pytest.mark.parametrize("name,kwargs", [
    ("kaiming_uniform", {}), ("kaiming_uniform", {"mode": "fan_out", "nonlinearity": "relu"}),
    ("kaiming_normal", {"a": 0.2}), ("kaiming_normal", {"mode": "fan_out", "nonlinearity": "tanh"}),
    ("trunc_normal", {"std": 0.5, "a": -0.3, "b": 0.8}), ("orthogonal", {"gain": 2.0})])
def test_initialisers_draw_torchs_distribution(name, kwargs):
    """Each initialiser draws from torch.nn.init's distribution: on a (300, 200) weight the mean,
    standard deviation and (where it has them) bounds agree with torch's own draw within 3% of the std (sampling error of
    60000 values is about 0.5%); the values themselves are drawn once, in NumPy, and copied into both."""
    shape = (300, 200)
    mine = manual.init.INITIALISERS[name](np.random.default_rng(0), shape, **kwargs)
    torch.manual_seed(0)
    theirs = torch_ref.init.INITIALISERS[name](torch.empty(shape, dtype=torch.float64), **kwargs).numpy()
    stats = [("mean", mine.mean(), theirs.mean()), ("std", mine.std(), theirs.std())]
    if name != "kaiming_normal" and name != "orthogonal":       # bounded: the extremes are the bounds
        stats += [("min", mine.min(), theirs.min()), ("max", mine.max(), theirs.max())]
    for what, a, b in stats:
        assert abs(a - b) <= 0.03 * theirs.std(), f"{name}({kwargs}) {what}: manual {a:.5g}, torch {b:.5g}, tol 3% of std"


def test_orthogonal_rows_are_orthonormal():
    for shape in ((3, 5), (5, 3), (4, 4)):
        w = manual.init.orthogonal(np.random.default_rng(1), shape, gain=1.5)
        gram = w @ w.T if shape[0] <= shape[1] else w.T @ w
        assert_close(f"orthogonal {shape} gram matrix / gain²", gram / 1.5 ** 2, np.eye(min(shape)))


@pytest.mark.parametrize("nonlinearity,param", [("linear", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                                                ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None)])
def test_calculate_gain_is_torchs(nonlinearity, param):
    assert manual.init.calculate_gain(nonlinearity, param) == pytest.approx(
        torch.nn.init.calculate_gain(nonlinearity, param), rel=1e-15, abs=0)


def test_every_key_has_the_same_torch_name_registered_on_both_sides():
    """The torch_ref side names each key's torch class or function, and it exists there."""
    import torch.nn.init
    import torch.optim.lr_scheduler
    for registry, other, module, where in ((manual.OPTIMIZERS, torch_ref.OPTIMIZERS, torch_ref.optim, torch.optim),
                                           (manual.SCHEDULERS, torch_ref.SCHEDULERS, torch_ref.lr_scheduler,
                                            torch.optim.lr_scheduler),
                                           (manual.INITIALISERS, torch_ref.INITIALISERS, torch_ref.init, torch.nn.init)):
        assert list(registry) == list(other), f"manual keys {list(registry)}, torch_ref keys {list(other)}"
        for key in registry:
            name = module.torch_name(key)
            attr = name.removeprefix(where.__name__ + ".").split("(")[0]
            assert callable(getattr(where, attr, None)), f"{key}: {name} is not in {where.__name__}"
