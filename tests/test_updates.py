"""Hand-written update rules and schedules checked against torch.optim: a correct rule passes in
every form a user writes one; a planted mistake fails at the step and parameter where it first
shows, with the cause named only because a variant of torch's rule reproduces its numbers."""
import json

import numpy as np
import pytest

from backprop_oracle import manual
from backprop_oracle import assert_gradients_match, check_optimizer, check_schedule
from backprop_oracle.compare.cli import main
from backprop_oracle.compare.errors import CheckError
from backprop_oracle.compare.updates.optimizer import DEFAULTS, draw_problem, torch_runs
from backprop_oracle.compare.updates.rules import RULES, run_rule


# --- the users' rules, in the forms the check accepts ------------------------------------------

def sgd_state(params, grads, state, lr=0.01, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0,
              first_buffer="g", damp=True, look_ahead=True, decoupled=False):
    """step(params, grads, state) -> (params, state): torch's SGD, or with one line changed."""
    out = {}
    for k, w in params.items():
        if decoupled:
            w, g = w * (1 - lr * weight_decay), grads[k]
        else:
            g = grads[k] + weight_decay * w
        buf = state.get(k)
        if buf is None:
            buf = g if first_buffer == "g" else (1 - dampening) * g
        else:
            buf = momentum * buf + ((1 - dampening) if damp else 1.0) * g
        state[k] = buf
        out[k] = w - lr * (g + momentum * buf if (nesterov and look_ahead) else buf)
    return out, state


def sgd_momentum(w, dw, config):
    """CS231n's optim.sgd_momentum: v = μ v − lr dw; w = w + v."""
    v = config.get("velocity", np.zeros_like(w))
    v = config["momentum"] * v - config["learning_rate"] * dw
    config["velocity"] = v
    return w + v, config


def sgd_nesterov(w, dw, config):
    """The lecture notes' Nesterov momentum in CS231n's form: v = μ v − lr dw; w += −μ v_prev + (1 + μ) v."""
    v_prev = config.get("velocity", np.zeros_like(w))
    v = config["momentum"] * v_prev - config["learning_rate"] * dw
    config["velocity"] = v
    return w - config["momentum"] * v_prev + (1 + config["momentum"]) * v, config


def adam_config(w, dw, config, eps_inside=False, counter_start=1):
    """CS231n's optim.adam, or with eps under the square root, or a counter started elsewhere."""
    config.setdefault("t", counter_start - 1)
    config.setdefault("m", np.zeros_like(w))
    config.setdefault("v", np.zeros_like(w))
    b1, b2, eps = config["beta1"], config["beta2"], config["epsilon"]
    config["t"] += 1
    config["m"] = b1 * config["m"] + (1 - b1) * dw
    config["v"] = b2 * config["v"] + (1 - b2) * dw ** 2
    m_hat = config["m"] / (1 - b1 ** config["t"])
    v_hat = config["v"] / (1 - b2 ** config["t"])
    denom = np.sqrt(v_hat + eps) if eps_inside else np.sqrt(v_hat) + eps
    return w - config["learning_rate"] * m_hat / denom, config


class StudentAdam:
    """An object with .step(params, grads) that changes params in place."""

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, bias_correction=True,
                 decoupled=False):
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.bias_correction, self.decoupled = bias_correction, decoupled
        self.t, self.m, self.v = 0, {}, {}

    def step(self, params, grads):
        b1, b2 = self.betas
        self.t += 1
        for k, w in params.items():
            g = grads[k]
            if self.decoupled:
                w *= 1 - self.lr * self.weight_decay
            else:
                g = g + self.weight_decay * w
            self.m[k] = b1 * self.m.get(k, 0) + (1 - b1) * g
            self.v[k] = b2 * self.v.get(k, 0) + (1 - b2) * g * g
            c1, c2 = (1 - b1 ** self.t, 1 - b2 ** self.t) if self.bias_correction else (1.0, 1.0)
            w -= self.lr * (self.m[k] / c1) / (np.sqrt(self.v[k] / c2) + self.eps)


def momentum_averaged(w, dw, config):
    """The deep-learning course's momentum: v = β v + (1 − β) dw from v = 0; w = w − lr v."""
    config["v"] = config["momentum"] * config.get("v", 0) + (1 - config["momentum"]) * dw
    return w - config["learning_rate"] * config["v"], config


# --- the reference rules are torch's -----------------------------------------------------------

HYPER = [("sgd", dict(lr=0.1)), ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01)),
         ("sgd", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1, maximize=True)),
         ("adam", dict(lr=0.01)), ("adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, amsgrad=True)),
         ("adamw", dict(lr=0.02, weight_decay=0.1, maximize=True))]


@pytest.mark.parametrize("optimizer,given", HYPER)
def test_the_numpy_rules_are_torchs_step_by_step(optimizer, given):
    hp = dict(DEFAULTS[optimizer], **given)
    start, grads, X, Y = draw_problem(1, 12)
    all_grads, ref = torch_runs(optimizer, hp, start, grads, X, Y)
    _, knobs, _ = RULES[optimizer]
    for run in ("random", "network"):
        mine = run_rule(optimizer, knobs, dict(hp, decoupled=optimizer == "adamw"), start, all_grads[run])
        for s, (a, b) in enumerate(zip(mine, ref[run])):
            for k in a:
                err = np.max(np.abs(a[k] - b[k])) / max(1.0, np.max(np.abs(b[k])))
                assert err < 1e-14, f"{optimizer} {given} {run} step {s + 1} {k}: {err:.2e} from torch"


def rmsprop_state(params, grads, state, lr=0.01, alpha=0.99, eps=1e-8, centered=False, momentum=0.0,
                  eps_inside=False):
    """RMSprop as a student writes it, state form; ``eps_inside`` plants the mistake."""
    out = {}
    for k, w in params.items():
        g = grads[k]
        v = state[("v", k)] = alpha * state.get(("v", k), 0.0) + (1 - alpha) * g * g
        if centered:
            ga = state[("ga", k)] = alpha * state.get(("ga", k), 0.0) + (1 - alpha) * g
            v = v - ga * ga
        d = np.sqrt(v + eps) if eps_inside else np.sqrt(v) + eps
        if momentum > 0:
            buf = state[("b", k)] = momentum * state.get(("b", k), 0.0) + g / d
            out[k] = w - lr * buf
        else:
            out[k] = w - lr * g / d
    return out, state


def adagrad_state(params, grads, state, lr=0.01, lr_decay=0.0, eps=1e-10, from_t=False):
    out = {}
    state["t"] = state.get("t", 0) + 1
    clr = lr / (1 + (state["t"] if from_t else state["t"] - 1) * lr_decay)
    for k, w in params.items():
        s = state[("s", k)] = state.get(("s", k), 0.0) + grads[k] ** 2
        out[k] = w - clr * grads[k] / (np.sqrt(s) + eps)
    return out, state


# --- correct rules pass, in every form ---------------------------------------------------------

@pytest.mark.parametrize("rule,optimizer,kwargs", [
    (sgd_state, "sgd", dict(lr=0.1, momentum=0.9, dampening=0.5, weight_decay=0.01)),
    (sgd_state, "sgd", dict(lr=0.1, momentum=0.9, nesterov=True)),
    (sgd_momentum, "sgd", dict(lr=0.1, momentum=0.9)),
    (sgd_nesterov, "sgd", dict(lr=0.1, momentum=0.9, nesterov=True)),
    (manual.SGD, "sgd", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
    (adam_config, "adam", dict(lr=0.01, betas=(0.8, 0.99))),
    (StudentAdam(lr=0.01, weight_decay=0.1), "adam", dict(lr=0.01, weight_decay=0.1)),
    (StudentAdam(lr=0.01, weight_decay=0.1, decoupled=True), "adamw", dict(lr=0.01, weight_decay=0.1)),
    (manual.Adam, "adam", dict(lr=0.01, weight_decay=0.01)),
    (manual.AdamW, "adamw", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    (manual.Adam, "adam", dict(lr=0.01, amsgrad=True, betas=(0.9, 0.5))),
    (manual.RMSprop, "rmsprop", dict(lr=0.01, alpha=0.9, centered=True, momentum=0.5, weight_decay=0.01)),
    (rmsprop_state, "rmsprop", dict(lr=0.01, centered=True)),
    (manual.Adagrad, "adagrad", dict(lr=0.1, lr_decay=0.1, initial_accumulator_value=0.1, weight_decay=0.01)),
    (adagrad_state, "adagrad", dict(lr=0.1, lr_decay=0.1)),
], ids=["sgd-state", "nesterov-state", "cs231n-momentum", "cs231n-nesterov", "manual.SGD", "cs231n-adam", "adam-object", "adamw-object",
        "manual.Adam", "manual.AdamW-amsgrad", "manual.Adam-amsgrad", "manual.RMSprop", "rmsprop-state", "manual.Adagrad",
        "adagrad-state"])
def test_a_correct_rule_passes(rule, optimizer, kwargs):
    r = check_optimizer(rule, optimizer, steps=8, **kwargs)
    assert r.passed, r.report()
    assert len(r.steps) == 16 and {s.run for s in r.steps} == {"random", "network"}
    assert ": PASSED" in r.report() and "network" in r.compared


# --- planted mistakes: the right step, parameter and cause -------------------------------------

MISTAKES = {
    # name: (rule, optimizer, kwargs, first wrong step, parameter, cause)
    "first buffer": (lambda params, grads, state, **kw: sgd_state(params, grads, state, first_buffer="dampened", **kw), "sgd",
                     dict(lr=0.1, momentum=0.9, dampening=0.5), 1, "0.weight", "first_buffer"),
    "dampening": (lambda params, grads, state, **kw: sgd_state(params, grads, state, damp=False, **kw), "sgd",
                  dict(lr=0.1, momentum=0.9, dampening=0.5), 2, "0.weight", "dampening_ignored"),
    "look-ahead": (lambda params, grads, state, **kw: sgd_state(params, grads, state, look_ahead=False, **kw), "sgd",
                   dict(lr=0.1, momentum=0.9, nesterov=True), 1, "0.weight", "look_ahead_missing"),
    "nesterov, decay decoupled": (lambda params, grads, state, **kw: sgd_state(params, grads, state, decoupled=True, **kw),
                                  "sgd", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1), 1, "0.weight",
                                  "decay_decoupled"),
    "momentum as an average": (momentum_averaged, "sgd", dict(lr=0.1, momentum=0.9), 1, "0.weight",
                               "momentum_averaged"),
    "bias correction": (StudentAdam(lr=0.01, bias_correction=False), "adam", dict(lr=0.01), 1, "0.weight",
                        "bias_correction_missing"),
    "eps placement": (lambda w, dw, config: adam_config(w, dw, config, eps_inside=True), "adam", dict(lr=0.01), 1,
                      "0.weight", "eps_inside_sqrt"),
    "decay coupling": (StudentAdam(lr=0.01, weight_decay=0.1, decoupled=True), "adam",
                       dict(lr=0.01, weight_decay=0.1), 1, "0.weight", "decay_decoupled"),
    "step counter from 0": (lambda w, dw, config: adam_config(w, dw, config, counter_start=0), "adam",
                            dict(lr=0.01), 1, "0.weight", "step_counter_from_0"),
    "RMSprop's eps inside the root": (lambda params, grads, state, **kw: rmsprop_state(params, grads, state,
                                                                                          eps_inside=True, **kw),
                                      "rmsprop", dict(lr=0.01, eps=0.1), 1, "0.weight", "eps_inside_sqrt"),
    "RMSprop not centered": (lambda params, grads, state, lr=0.01, centered=False: rmsprop_state(params, grads, state,
                                                                                                    lr=lr),
                             "rmsprop", dict(lr=0.01, centered=True), 1, "0.weight", "centered_ignored"),
    "Adagrad's lr_decay from t": (lambda params, grads, state, **kw: adagrad_state(params, grads, state, from_t=True,
                                                                                   **kw),
                                  "adagrad", dict(lr=0.1, lr_decay=0.5), 1, "0.weight", "lr_decay_from_t"),
    "step counter ahead": (lambda w, dw, config: adam_config(w, dw, config, counter_start=2), "adam",
                           dict(lr=0.01), 1, "0.weight", "step_counter_ahead"),
}


@pytest.mark.filterwarnings("ignore:divide by zero", "ignore:invalid value")   # the counter from 0: 1/0
@pytest.mark.parametrize("name", list(MISTAKES))
def test_a_planted_mistake_is_named_at_its_step_and_parameter(name):
    rule, optimizer, kwargs, step, parameter, cause = MISTAKES[name]
    r = check_optimizer(rule, optimizer, steps=6, **kwargs)
    assert not r.passed
    assert (r.first.run, r.first.step, r.first.diff.name) == ("random", step, parameter), r.report()
    assert r.causes == [cause], r.report()
    assert all(s.passed for s in r.steps[:step - 1]), "the steps before the first wrong one agree"
    text = r.report()
    assert f"first wrong: step {step} (random gradients), {parameter} [" in text
    assert "likely cause: " in text and "gives your parameters at every step of both runs" in text
    d = r.first.diff
    assert f"yours {d.manual:.12g}, torch {d.torch:.12g}" in text, "both values are shown"


def test_two_mistakes_together_are_named_as_two():
    def adam(params, grads, state, lr=0.01, betas=(0.9, 0.999), eps=1e-8):
        out = {}
        for k, w in params.items():
            m = betas[0] * state.get(("m", k), 0) + (1 - betas[0]) * grads[k]
            v = betas[1] * state.get(("v", k), 0) + (1 - betas[1]) * grads[k] ** 2
            state[("m", k)], state[("v", k)] = m, v
            out[k] = w - lr * m / np.sqrt(v + eps)          # no bias correction, eps under the root
        return out, state
    r = check_optimizer(adam, "adam", steps=5, lr=0.01)
    assert r.causes == ["bias_correction_missing+eps_inside_sqrt"], r.report()
    assert "two mistakes" in r.cause


def test_a_hard_coded_learning_rate_is_found_by_reproducing_it():
    r = check_optimizer(lambda params, grads, state: ({k: w - 0.05 * grads[k] for k, w in params.items()}, state),
                        "sgd", steps=4, lr=0.1)
    assert r.causes == ["learning_rate"] and "a learning rate of 0.05" in r.cause, r.report()


def test_an_unknown_mistake_is_shown_but_no_cause_is_claimed():
    def cubed(params, grads, state, lr=0.1):
        return {k: w - lr * grads[k] ** 3 for k, w in params.items()}, state
    r = check_optimizer(cubed, "sgd", steps=3, lr=0.1)
    assert not r.passed and r.causes == []
    assert "no known mistake reproduces your numbers" in r.report() and "likely cause" not in r.report()
    assert r.first.step == 1 and r.first.diff.manual != r.first.diff.torch


def test_a_state_that_survives_between_runs_would_be_a_false_alarm_so_each_run_starts_fresh():
    adam = StudentAdam(lr=0.01)
    r = check_optimizer(adam, "adam", steps=5, lr=0.01)
    assert r.passed, r.report()
    assert adam.t == 0 and adam.m == {}, "the user's own object is left as it was"


# --- usage errors: one clear message -----------------------------------------------------------

@pytest.mark.parametrize("call,message", [
    (lambda: check_optimizer(sgd_state, "lion"), "unknown optimizer 'lion'; choose one of: sgd, adam, adamw, rmsprop, "
                                                 "adagrad"),
    (lambda: check_optimizer(sgd_state, "sgd", foreach=True), "foreach not supported"),
    (lambda: check_optimizer(sgd_state, "sgd", lr=0.1, nesterov=True), "torch.optim.SGD refuses these arguments"),
    (lambda: check_optimizer(lambda a, b, c: None, "sgd"), "give form='state' or form='config'"),
    (lambda: check_optimizer(lambda params, grads: params, "sgd", momentum=0.9), "nowhere to keep sgd's state"),
    (lambda: check_optimizer(StudentAdam(lr=0.1), "adam", lr=0.01), "has lr = 0.1 but the check compares against lr=0.01"),
    (lambda: check_optimizer(lambda params, grads, state: ([1], state), "sgd"), "returned list for the parameters"),
    (lambda: check_schedule(lambda e: 0.1, "step"), "needs step_size"),
    (lambda: check_schedule(lambda e: 0.1, "cyclic"), "unknown schedule 'cyclic'"),
])
def test_a_check_that_cannot_run_says_why(call, message):
    with pytest.raises(CheckError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        call()


# --- schedules ---------------------------------------------------------------------------------

def test_a_correct_schedule_passes_in_every_form():
    step = lambda epoch, lr=0.1, step_size=3, gamma=0.5: lr * gamma ** (epoch // step_size)
    keras = lambda epoch, lr: lr * 0.9 if epoch else lr
    for schedule, kind, kwargs in [(step, "step", dict(step_size=3, gamma=0.5)),
                                   (manual.lr_scheduler.StepLR, "step", dict(step_size=3, gamma=0.5)),
                                   (manual.lr_scheduler.ExponentialLR, "exponential", dict(gamma=0.9)),
                                   (keras, "exponential", dict(gamma=0.9)),
                                   (lambda e: 0.1 * 0.5 ** sum(e >= m for m in (2, 5)), "multistep",
                                    dict(milestones=[2, 5], gamma=0.5))]:
        r = check_schedule(schedule, kind, epochs=12, **kwargs)
        assert r.passed, r.report()


@pytest.mark.parametrize("cls,kind,kwargs", [
    (manual.lr_scheduler.MultiStepLR, "multistep", dict(milestones=[2, 5], gamma=0.5)),
    (manual.lr_scheduler.CosineAnnealingLR, "cosine", dict(T_max=4, eta_min=0.01)),      # and back up after T_max
    (manual.lr_scheduler.LinearLR, "linear", dict(start_factor=0.1, total_iters=4)),
])
def test_the_manual_schedules_pass(cls, kind, kwargs):
    r = check_schedule(cls, kind, epochs=12, **kwargs)
    assert r.passed, r.report()


def test_a_warm_up_one_step_late_is_named(monkeypatch):
    from tests.test_mutations import linear_warmup_one_step_late
    monkeypatch.setattr(manual.lr_scheduler.LinearLR, "get_lr", linear_warmup_one_step_late)
    r = check_schedule(manual.lr_scheduler.LinearLR, "linear", epochs=8, start_factor=0.25, total_iters=4)
    assert not r.passed and r.first.step == 1, r.report()


def test_steplr_counting_epochs_from_0_is_one_epoch_early(monkeypatch):
    from tests.test_mutations import steplr_counting_from_zero
    monkeypatch.setattr(manual.lr_scheduler.StepLR, "get_lr", steplr_counting_from_zero)
    r = check_schedule(manual.lr_scheduler.StepLR, "step", epochs=8, step_size=2, gamma=0.5)
    assert not r.passed and r.first.step == 1 and r.causes == ["one_epoch_early"], r.report()
    assert (r.first.diff.manual, r.first.diff.torch) == (0.05, 0.1)
    assert "first wrong: epoch 1: yours 0.05, torch 0.1" in r.report()


def test_gamma_at_every_epoch_and_gamma_from_epoch_1_are_told_apart():
    r = check_schedule(lambda e: 0.1 * 0.5 ** e, "step", epochs=8, step_size=3, gamma=0.5)
    assert r.causes == ["gamma_every_epoch"] and r.first.step == 1, r.report()
    r = check_schedule(lambda e: 0.1 * 0.9 ** (e + 1), "exponential", epochs=6, gamma=0.9)
    assert r.causes == ["one_epoch_early"] and r.first.step == 0, r.report()


# --- the fixture, the assertion and the command line -------------------------------------------

def test_the_fixture_and_the_assertion(check_gradients):
    assert check_gradients.optimizer(sgd_momentum, "sgd", lr=0.1, momentum=0.9).passed
    assert check_gradients.schedule(manual.lr_scheduler.ExponentialLR, "exponential", gamma=0.9).passed
    with pytest.raises(AssertionError, match="bias correction missing") as info:
        check_gradients.optimizer(StudentAdam(lr=0.01, bias_correction=False), "adam", lr=0.01)
    assert "first wrong at step 1 (random gradients), 0.weight" in str(info.value).splitlines()[0]
    failed = check_schedule(lambda e: 0.1, "exponential", gamma=0.9)
    with pytest.raises(AssertionError, match="check_schedule"):
        assert_gradients_match(failed)


STUDENT = '''
import numpy as np

def adam(params, grads, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    state["t"] = state.get("t", 0) + 1
    out = {}
    for k, w in params.items():
        m = betas[0] * state.get("m" + k, 0) + (1 - betas[0]) * grads[k]
        v = betas[1] * state.get("v" + k, 0) + (1 - betas[1]) * grads[k] ** 2
        state["m" + k], state["v" + k] = m, v
        m_hat, v_hat = m / (1 - betas[0] ** state["t"]), v / (1 - betas[1] ** state["t"])
        out[k] = w - lr * m_hat / (np.sqrt(v_hat) + eps)
    return out, state

def schedule(epoch):
    return 0.1 * 0.5 ** (epoch // 2)
'''


def test_the_command_line_exits_0_1_2(tmp_path, capsys):
    path = tmp_path / "student.py"
    path.write_text(STUDENT)
    assert main(["check", f"{path}:adam", "--optimizer", "adam", "--lr", "0.01", "--steps", "3"]) == 0
    assert "check_optimizer" in capsys.readouterr().out
    out = tmp_path / "r.json"
    # the rule takes betas as a keyword (so 0.8 reaches it) but knows no weight decay
    assert main(["check", f"{path}:adam", "--optimizer", "adam", "--lr", "0.01", "--betas", "0.8,0.999",
                 "--weight-decay", "0.1", "--steps", "3", "--json", str(out)]) == 1
    text = capsys.readouterr().out
    assert "first wrong: step 1" in text and "likely cause: weight decay ignored" in text, text
    assert json.loads(out.read_text())["passed"] is False
    assert main(["check", f"{path}:schedule", "--schedule", "step", "--step-size", "2", "--gamma", "0.5"]) == 0
    assert main(["check", f"{path}:schedule", "--schedule", "step", "--step-size", "3", "--gamma", "0.5"]) == 1
    capsys.readouterr()
    for argv, message in [(["--optimizer", "adam", "--sizes", "2,1"], "--sizes describe a network"),
                          (["--momentum", "0.9"], "--momentum needs --optimizer"),
                          (["--optimizer", "sgd", "--gamma", "0.5"], "--gamma belong to --schedule"),
                          (["--optimizer", "sgd", "--betas", "0.9,0.99"], "betas not supported"),
                          (["--schedule", "step"], "needs step_size")]:
        assert main(["check", f"{path}:adam", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


@pytest.mark.parametrize("rule,optimizer,kwargs", [
    (manual.SGD, "sgd", dict(lr=0.3, momentum=0.95, nesterov=True, weight_decay=0.01)),
    (manual.Adam, "adam", dict(lr=0.1, betas=(0.5, 0.9), eps=1e-10)),
], ids=["nesterov", "adam"])
def test_a_correct_rule_stays_within_the_tolerance_over_a_long_run(rule, optimizer, kwargs):
    # NumPy and torch round differently at every step; 300 steps must not add up to a false alarm.
    r = check_optimizer(rule, optimizer, steps=300, **kwargs)
    assert r.passed, r.report()
    worst = max(abs(s.diff.manual - s.diff.torch) / s.diff.allowed for s in r.steps)
    assert worst < 0.1, f"rounding used {worst:.2f} of the tolerance"
