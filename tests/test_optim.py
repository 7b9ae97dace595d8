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
