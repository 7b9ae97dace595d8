"""The oracle still catches every real mistake: one formula at a time is planted into the manual side
(at run time, undone after each test), and the lockstep run must say DIFFER, name the node that is
wrong, and show it wrong on identical inputs; none may be explained away as rounding.

Each mistake is one a student makes when deriving backpropagation by hand: a derivative written
as the function, a missing transpose, a lost 1/N, a momentum buffer started wrongly, Adam without
its bias correction, a weight decay with the wrong sign, a schedule that counts epochs from 0,
AdamW decaying the gradient, RMSprop's eps inside the root, a warm-up one step late, a 1cycle whose
per-step rate goes wrong inside the first epoch.
"""
from dataclasses import dataclass, replace

import numpy as np
import pytest

from backprop_oracle import manual
from backprop_oracle.compare.experiments.spec import ExperimentSpec
from backprop_oracle.compare.lockstep.run import LockstepRun
from tests.random_data import random_dataset

BASE = ExperimentSpec(dataset="random", hidden_sizes=(4,), activation="tanh", output_activation="identity",
                      loss="mse", optimizer="sgd", lr=0.1, epochs=3, batch_size=4, init="xavier_uniform", seed=3)


@dataclass
class Mutation:
    target: object          # the class whose method is replaced
    method: str
    body: object            # the wrong method
    node: str               # the node the report must name
    module: int | None      # the module that computes it (None: the loss, the optimizer, the schedule)
    spec: dict              # changes to BASE
    data: dict              # random_dataset arguments
    step: int | None = None  # the step the mismatch must be found at, where it matters (a schedule's)


def sgd_step(first_buffer=None, dampen=True, look_ahead=True, decay_sign=1.0):
    """manual.SGD.step with one of its lines changed."""
    def step(self):
        for p, state in zip(self.params, self.state):
            g = p.grad
            if self.weight_decay != 0:
                g = g + decay_sign * self.weight_decay * p.data
            if self.momentum != 0:
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = np.array(g if first_buffer is None else first_buffer(self, g))
                else:
                    buf *= self.momentum
                    buf += ((1 - self.dampening) if dampen else 1.0) * g
                g = g + self.momentum * buf if (self.nesterov and look_ahead) else buf
            p.data -= self.lr * g
    return step


def adam_without_bias_correction(self):
    beta1, beta2 = self.betas
    for p, state in zip(self.params, self.state):
        g = p.grad
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(p.data), exp_avg_sq=np.zeros_like(p.data))
        state["step"] += 1
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m += (1 - beta1) * (g - m)
        v *= beta2
        v += (1 - beta2) * g * g
        p.data -= self.lr * m / (np.sqrt(v) + self.eps)


def steplr_counting_from_zero(self):
    return self.optimizer.lr * (self.gamma if (self.last_epoch - 1) % self.step_size == 0 else 1.0)


def adam_update(decay_gradient=False, amsgrad_v=False):
    """manual.Adam.update (and AdamW's) written plainly, with one of its lines changed."""
    def update(self, w, grad, state, scratch):
        beta1, beta2 = self.betas
        g = grad
        if self.weight_decay != 0 and self.decoupled and not decay_gradient:
            w *= 1 - self.lr * self.weight_decay
        elif self.weight_decay != 0:
            g = grad + self.weight_decay * w                  # AdamW: the gradient decayed, not the weight
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(w), exp_avg_sq=np.zeros_like(w))
            if self.amsgrad:
                state["max_exp_avg_sq"] = np.zeros_like(w)
        state["step"] += 1
        t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
        m += (1 - beta1) * (g - m)
        v *= beta2
        v += (1 - beta2) * g * g
        if self.amsgrad:
            np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            if not amsgrad_v:                                 # the mistake divides by v, not max v
                v = state["max_exp_avg_sq"]
        w -= self.lr / (1 - beta1 ** t) * m / (np.sqrt(v) / np.sqrt(1 - beta2 ** t) + self.eps)
    return update


def rmsprop_update(eps_inside=False, uncentered=False):
    """manual.RMSprop.update written plainly, with one of its lines changed."""
    def update(self, w, grad, state, scratch):
        g = grad + self.weight_decay * w
        if not state:
            state.update(step=0, square_avg=np.zeros_like(w), grad_avg=np.zeros_like(w))
        state["step"] += 1
        v, ga = state["square_avg"], state["grad_avg"]
        v *= self.alpha
        v += (1 - self.alpha) * g * g
        ga += (1 - self.alpha) * (g - ga)
        var = v - ga * ga if (self.centered and not uncentered) else v
        d = np.sqrt(var + self.eps) if eps_inside else np.sqrt(var) + self.eps
        w -= self.lr * g / d
    return update


def adagrad_decay_from_t(self, w, grad, state, scratch):
    if not state:
        state.update(step=0, sum=np.full_like(w, self.initial_accumulator_value))
    state["step"] += 1
    clr = self.lr / (1 + state["step"] * self.lr_decay)          # torch: (t − 1) · lr_decay
    state["sum"] += grad * grad
    w -= clr * grad / (np.sqrt(state["sum"]) + self.eps)


def linear_warmup_one_step_late(self):
    t, lr, d = self.last_epoch, self.optimizer.lr, self.end_factor - self.start_factor
    if t == 0:
        return lr * self.start_factor
    if t > self.total_iters:
        return lr
    return lr * (1.0 + d / (self.total_iters * self.start_factor + t * d))   # torch: (t − 1) · d


def cosine_without_eta_min(self):
    t, T = self.last_epoch, self.T_max
    if t == 0:
        return self.optimizer.lr
    return self.optimizer.initial_lr * (1 + np.cos(np.pi * t / T)) / 2


def multistep_after_milestone(self):
    return self.optimizer.lr * (self.gamma if self.last_epoch - 1 in self.milestones else 1.0)


_ONECYCLE_GET_LR = manual.lr_scheduler.OneCycleLR.get_lr


def onecycle_phase_without_minus_one(self):
    if not getattr(self, "_moved", False):       # torch's first phase ends at pct_start · total − 1
        self.phases[0] = (self.phases[0][0] + 1, *self.phases[0][1:])
        self._moved = True
    return _ONECYCLE_GET_LR(self)


def sequential_without_restart(self):
    from bisect import bisect_right
    self.last_epoch += 1
    self.schedulers[bisect_right(self.milestones, self.last_epoch)].step()   # torch restarts it at a milestone


def linear_backward_without_transpose(self, dL_dy):
    self.weight.grad += dL_dy.T @ self.x
    self.bias.grad += dL_dy.sum(axis=0)
    return dL_dy @ self.weight.data.T          # should be dL_dy @ W: square layers keep the shapes


def linear_bias_mean(self, dL_dy):
    self.weight.grad += dL_dy.T @ self.x
    self.bias.grad += dL_dy.mean(axis=0)        # should be the sum over the batch
    return dL_dy @ self.weight.data


A = manual.activations
L = manual.losses
MULTI = dict(task="multiclass", classes=3)
MUTATIONS = {
    "sigmoid' = s": Mutation(A.Sigmoid, "backward", lambda self, g: g * self.a, "activation_derivative", 1,
                             dict(activation="sigmoid"), {}),
    "tanh' = 1 - a": Mutation(A.Tanh, "backward", lambda self, g: g * (1 - self.a), "activation_derivative", 1,
                              {}, {}),
    "relu' = 1": Mutation(A.ReLU, "backward", lambda self, g: g, "activation_derivative", 1,
                          dict(activation="relu"), {}),
    "leaky_relu' swapped": Mutation(A.LeakyReLU, "backward",
                                    lambda self, g: np.where(self.z > 0, g * self.negative_slope, g),
                                    "activation_derivative", 1, dict(activation="leaky_relu"), {}),
    "softmax Jacobian diagonal only": Mutation(A.Softmax, "backward", lambda self, g: self.a * g,
                                               "activation_derivative", 3,
                                               dict(output_activation="softmax", loss="mse"), MULTI),
    "linear dL/da = dL/dz W^T": Mutation(manual.Linear, "backward", linear_backward_without_transpose,
                                         "linear_input_grad", 4, dict(hidden_sizes=(4, 4)),
                                         dict(features=4, outputs=4)),
    "linear dL/db = mean": Mutation(manual.Linear, "backward", linear_bias_mean, "linear_param_grad", 2, {}, {}),
    "squared_error without 1/N": Mutation(L.SquaredError, "grad", staticmethod(lambda x, y: x - y),
                                          "loss_derivative", None, dict(loss="squared_error"), {}),
    "squared_error cost without 1/2": Mutation(
        L.SquaredError, "loss", staticmethod(lambda x, y: np.sum((y - x) ** 2) / x.shape[0]), "loss", None,
        dict(loss="squared_error"), {}),
    "sum_squared_error without 2": Mutation(L.SumSquaredError, "grad",
                                            staticmethod(lambda x, y: (x - y) / x.shape[0]), "loss_derivative",
                                            None, dict(loss="sum_squared_error"), {}),
    "mse over N, not N K": Mutation(L.MSELoss, "grad", staticmethod(lambda x, y: 2 * (x - y) / x.shape[0]),
                                    "loss_derivative", None, {}, dict(outputs=3)),
    "bce without 1/N": Mutation(
        L.BCELoss, "grad", classmethod(lambda cls, p, y: (p - y) / np.maximum((1 - p) * p, cls.EPSILON)),
        "loss_derivative", None, dict(output_activation="sigmoid", loss="bce"), dict(task="binary")),
    "cross_entropy without 1/N": Mutation(
        L.CrossEntropyLoss, "grad",
        lambda self, z, y: manual.activations.softmax(z, 1) * self._probabilities(z, y).sum(1, keepdims=True)
        - self._probabilities(z, y), "loss_derivative", None, dict(loss="cross_entropy"), MULTI),
    "hinge without 1/N": Mutation(L.HingeLoss, "grad", staticmethod(lambda s, y: -y * ((1 - y * s) > 0)),
                                  "loss_derivative", None, dict(loss="hinge"), dict(task="binary")),
    "momentum's first buffer dampened": Mutation(
        manual.SGD, "step", sgd_step(first_buffer=lambda self, g: (1 - self.dampening) * g), "optimizer", None,
        dict(optimizer_args={"momentum": 0.9, "dampening": 0.5}), {}),
    "dampening ignored": Mutation(manual.SGD, "step", sgd_step(dampen=False), "optimizer", None,
                                  dict(optimizer_args={"momentum": 0.9, "dampening": 0.5}), {}),
    "nesterov without look-ahead": Mutation(manual.SGD, "step", sgd_step(look_ahead=False), "optimizer", None,
                                            dict(optimizer_args={"momentum": 0.9, "nesterov": True}), {}),
    "weight decay's sign": Mutation(manual.SGD, "step", sgd_step(decay_sign=-1.0), "optimizer", None,
                                    dict(optimizer_args={"weight_decay": 0.1}), {}),
    "adam without bias correction": Mutation(manual.Adam, "step", adam_without_bias_correction, "optimizer",
                                             None, dict(optimizer="adam", lr=0.01), {}),
    "AdamW decaying the gradient": Mutation(manual.AdamW, "update", adam_update(decay_gradient=True), "optimizer",
                                            None, dict(optimizer="adamw", lr=0.01,
                                                       optimizer_args={"weight_decay": 0.5}), {}, step=1),
    "amsgrad dividing by v, not max v": Mutation(
        manual.Adam, "update", adam_update(amsgrad_v=True), "optimizer", None,
        dict(optimizer="adam", lr=0.01, optimizer_args={"amsgrad": True, "betas": (0.9, 0.5)}), {}),
    "RMSprop's eps inside the root": Mutation(manual.RMSprop, "update", rmsprop_update(eps_inside=True),
                                              "optimizer", None, dict(optimizer="rmsprop", lr=0.01,
                                                                      optimizer_args={"eps": 0.1}), {}, step=1),
    "RMSprop centered without the mean": Mutation(
        manual.RMSprop, "update", rmsprop_update(uncentered=True), "optimizer", None,
        dict(optimizer="rmsprop", lr=0.01, optimizer_args={"centered": True}), {}, step=1),
    "Adagrad's lr_decay from t, not t - 1": Mutation(
        manual.Adagrad, "update", adagrad_decay_from_t, "optimizer", None,
        dict(optimizer="adagrad", optimizer_args={"lr_decay": 0.5}), {}, step=1),
    "linear warm-up one step late": Mutation(
        manual.lr_scheduler.LinearLR, "get_lr", linear_warmup_one_step_late, "schedule", None,
        dict(schedule="linear", schedule_args={"start_factor": 0.25, "total_iters": 2}), {}, step=4),
    "cosine without eta_min": Mutation(
        manual.lr_scheduler.CosineAnnealingLR, "get_lr", cosine_without_eta_min, "schedule", None,
        dict(schedule="cosine", schedule_args={"T_max": 2, "eta_min": 0.05}), {}, step=4),
    "multistep decaying after the milestone": Mutation(
        manual.lr_scheduler.MultiStepLR, "get_lr", multistep_after_milestone, "schedule", None,
        dict(schedule="multistep", schedule_args={"milestones": [1]}), {}, step=4),
    "onecycle's first phase a step too long": Mutation(   # per step: found inside the first epoch
        manual.lr_scheduler.OneCycleLR, "get_lr", onecycle_phase_without_minus_one, "schedule", None,
        dict(schedule="onecycle", optimizer_args={"momentum": 0.9}), {}, step=2),
    "sequential not restarting at its milestone": Mutation(
        manual.lr_scheduler.SequentialLR, "step", sequential_without_restart, "schedule", None,
        dict(schedule="sequential", schedule_args={
            "schedulers": [{"schedule": "linear", "start_factor": 0.25, "total_iters": 3},
                           {"schedule": "exponential", "gamma": 0.5}], "milestones": [1]}), {}, step=4),
    "StepLR counting epochs from 0": Mutation(
        manual.lr_scheduler.StepLR, "get_lr", steplr_counting_from_zero, "schedule", None,
        dict(schedule="step", schedule_args={"step_size": 2, "gamma": 0.5}), {}),
}


# The newer activations and losses: one planted mistake per formula.
_s = manual.activations.sigmoid
_Phi = lambda z: 0.5 * (1 + manual.activations._erf(z / np.sqrt(2)).astype(float))   # noqa: E731
_t = lambda z: np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z ** 3))                  # noqa: E731


def smoothing_over_k_minus_1(self, input, target):
    """cross_entropy's targets with ε spread over the K - 1 other classes (and 1 - ε on the true one)."""
    n, c = input.shape
    q = np.full((n, c), self.label_smoothing / (c - 1))
    q[np.arange(n), target] = 1 - self.label_smoothing
    return q.astype(input.dtype), float(n)


def nll_mean_over_n(self, input, target):
    w = self.weight[target].astype(input.dtype)
    return w, float(input.shape[0])                # torch divides by the sum of the targets' weights


def bce_logits_derivative_without_pos_weight(self, x, y):
    return _s(x) - y


NEW = {
    "elu' without alpha": Mutation(A.ELU, "df", lambda self, z, g, out=None: g * np.where(z > 0, 1, np.exp(z)),
                                   "activation_derivative", 1, dict(activation="elu:alpha=0.5"), {}),
    "selu' without scale": Mutation(A.SELU, "df", lambda self, z, g, out=None:
                                    g * np.where(z > 0, 1, A.SELU_ALPHA * np.exp(z)),
                                    "activation_derivative", 1, dict(activation="selu"), {}),
    "gelu' without the pdf term": Mutation(A.GELU, "df", lambda self, z, g, out=None: g * _Phi(z),
                                           "activation_derivative", 1, dict(activation="gelu"), {}),
    "gelu tanh' without the product rule": Mutation(A.GELU, "df", lambda self, z, g, out=None: g * 0.5 * (1 + _t(z)),
                                                    "activation_derivative", 1,
                                                    dict(activation="gelu:approximate=tanh"), {}),
    "silu' = s(z)": Mutation(A.SiLU, "df", staticmethod(lambda z, g, out=None: g * _s(z)), "activation_derivative",
                             1, dict(activation="silu"), {}),
    "softplus' threshold ignored": Mutation(A.Softplus, "df", lambda self, z, g, out=None: g * _s(self.beta * z),
                                            "activation_derivative", 1,
                                            dict(activation="softplus:threshold=0.5"), {}),
    "hardtanh' without the clamp": Mutation(A.Hardtanh, "df", lambda self, z, g, out=None: g.copy(),
                                            "activation_derivative", 1, dict(activation="hardtanh"),
                                            dict(scale=5.0)),
    "hardsigmoid' without the clamp": Mutation(A.Hardsigmoid, "df", staticmethod(lambda z, g, out=None: g / 6),
                                               "activation_derivative", 1, dict(activation="hardsigmoid"),
                                               dict(scale=5.0)),
    "hardswish' without the 1/2": Mutation(A.Hardswish, "df", staticmethod(
        lambda z, g, out=None: g * np.where(z <= -3, 0, np.where(z >= 3, 1, z / 3))), "activation_derivative", 1,
        dict(activation="hardswish"), dict(scale=5.0)),
    "log_softmax' without the softmax term": Mutation(A.LogSoftmax, "backward", lambda self, g: g.copy(),
                                                      "activation_derivative", 3,
                                                      dict(output_activation="log_softmax", loss="nll"), MULTI),
    "label smoothing over K-1": Mutation(L.CrossEntropyLoss, "targets", smoothing_over_k_minus_1, "loss", None,
                                         dict(loss="cross_entropy:label_smoothing=0.2"), MULTI),
    "nll weighted mean over N": Mutation(L.NLLLoss, "_weights", nll_mean_over_n, "loss", None,
                                         dict(output_activation="log_softmax", loss="nll:weight=1,2,0.5"), MULTI),
    "bce_with_logits' without pos_weight": Mutation(L.BCEWithLogitsLoss, "derivative",
                                                    bce_logits_derivative_without_pos_weight, "loss_derivative", None,
                                                    dict(loss="bce_with_logits:pos_weight=3"), dict(task="binary")),
    "l1' without 1/N": Mutation(L.L1Loss, "grad", lambda self, x, y: np.sign(x - y), "loss_derivative", None,
                                dict(loss="l1"), {}),
    "smooth_l1' without 1/beta": Mutation(L.SmoothL1Loss, "derivative", lambda self, x, y:
                                          np.where(np.abs(x - y) < self.beta, x - y, np.sign(x - y)),
                                          "loss_derivative", None, dict(loss="smooth_l1:beta=0.5"), {}),
    "huber' without delta": Mutation(L.HuberLoss, "derivative", lambda self, x, y:
                                     np.where(np.abs(x - y) <= self.delta, x - y, np.sign(x - y)),
                                     "loss_derivative", None, dict(loss="huber:delta=0.3"), {}),
}
for m in NEW.values():
    m.spec.setdefault("epochs", 1)      # each is caught at the first step: one epoch keeps the suite short
MUTATIONS.update(NEW)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(MUTATIONS))
def test_planted_mistake_is_named_at_its_node(name, dtype, monkeypatch):
    mutation = MUTATIONS[name]
    spec = replace(BASE, dtype=dtype, **mutation.spec)
    data = random_dataset(seed=5, **mutation.data)
    assert LockstepRun(spec, dataset=data).run().passed, f"{name}: the correct side must agree first"
    monkeypatch.setattr(mutation.target, mutation.method, mutation.body)
    r = LockstepRun(spec, dataset=data).run()
    mm = r.mismatch
    assert not r.passed and mm is not None, f"{name} ({dtype}): a planted mistake was not caught: {r.verdict}"
    assert mm.stage != "amplified" and not [d for d in r.drifts if d.stage == "amplified" and d.step == mm.step]
    assert mm.node == mutation.node, f"{name}: blamed {mm.node}, expected {mutation.node}\n{mm.describe()}"
    assert mm.node_module == mutation.module, f"{name}: blamed module {mm.node_module}\n{mm.describe()}"
    if mutation.step is not None:
        assert mm.step == mutation.step, f"{name}: found at step {mm.step}, expected {mutation.step}\n{mm.describe()}"
    if mutation.node != "schedule":
        assert mm.proof is not None and mm.proof.wrong, f"{name}: no proof on identical inputs\n{mm.describe()}"
        assert "the node itself is wrong" in mm.reason, mm.describe()


def test_there_are_at_least_fifteen_mistakes():
    assert len(MUTATIONS) >= 15


def test_every_activation_and_loss_has_a_planted_mistake():
    planted = {m.target for m in MUTATIONS.values()}
    missing = [k for k, cls in {**manual.ACTIVATIONS, **manual.LOSSES}.items()
               if cls not in planted and k not in ("identity", "step")]
    assert not missing, f"no planted mistake for {missing}"
