"""torch.optim's update rules in NumPy, with knobs: each knob at its default is torch's rule
(tests/test_updates_rules.py holds them to torch.optim step by step), and each variant turns one
knob to a mistake a student makes. A variant names a cause only when it reproduces the user's
numbers at every step; see compare/updates/optimizer.py.

SGD (torch.optim.SGD, the single-tensor code):

    g   = ∇ (−∇ with maximize) + λ w                       (coupled weight decay)
    buf = g on the first step; then buf = μ buf + (1 − dampening) g
    g   = g + μ buf with Nesterov, else buf                (only when μ ≠ 0)
    w   = w − lr g

Adam (torch.optim.Adam; AdamW decays decoupled instead, w = w (1 − lr λ) before the update):

    t = t + 1 (t = 1 on the first step);  g = ∇ + λ w
    m = β1 m + (1 − β1) g ;  v = β2 v + (1 − β2) g²        (m = v = 0 before step 1)
    w = w − lr / (1 − β1^t) · m / (√v / √(1 − β2^t) + eps)   (amsgrad: max of v over the steps)

RMSprop (torch.optim.RMSprop): g = ∇ + λ w; v = α v + (1 − α) g²; centered: ḡ = α ḡ + (1 − α) g,
ṽ = v − ḡ²; d = √ṽ + eps; momentum: buf = μ buf + g / d, w = w − lr buf; else w = w − lr g / d.

Adagrad (torch.optim.Adagrad): g = ∇ + λ w; s = s + g² (s = initial_accumulator_value first);
w = w − lr / (1 + (t − 1) lr_decay) · g / (√s + eps).
"""
from dataclasses import dataclass

import numpy as np


SGD_KNOBS = dict(first_buffer="g", damping="1-d", average=False, look_ahead="torch", decay="coupled",
                 decay_scale=1.0, momentum_on=True, maximize_on=True, lr=None)
ADAM_KNOBS = dict(bias="both", eps="outside", t_offset=0, decay="torch", decay_scale=1.0, betas_swapped=False,
                  one_minus=True, sqrt=True, amsgrad_on=True, maximize_on=True, lr=None)


def sgd_step(w, grad, state, hp, k):
    """One torch.optim.SGD step of one parameter under knobs ``k``; returns the new w."""
    lr = hp["lr"] if k["lr"] is None else k["lr"]
    mu, d, wd = hp["momentum"], hp["dampening"], hp["weight_decay"] * k["decay_scale"]
    g = -grad if (hp["maximize"] and k["maximize_on"]) else grad
    if wd != 0 and k["decay"] == "coupled":
        g = g + wd * w
    if wd != 0 and k["decay"] == "decoupled":
        w = w * (1 - lr * wd)
    if mu != 0 and k["momentum_on"]:
        buf = state.get("buf")
        if k["average"]:                              # v = μ v + (1 − μ) g, from v = 0
            buf = (0 if buf is None else mu * buf) + (1 - mu) * g
        elif buf is None:
            buf = (1 - d) * g if k["first_buffer"] == "dampened" else g.copy()
        else:
            factor = {"1-d": 1 - d, "1": 1.0, "d": d}[k["damping"]]
            buf = mu * buf + factor * g
        state["buf"] = buf
        look = k["look_ahead"]
        if look == "torch":
            look = "new" if hp["nesterov"] else "none"
        if look == "new":
            g = g + mu * buf
        else:
            g = buf
    return w - lr * g


def adam_step(w, grad, state, hp, k):
    """One torch.optim.Adam (or AdamW, hp["decoupled"]) step of one parameter under knobs ``k``."""
    lr = hp["lr"] if k["lr"] is None else k["lr"]
    beta1, beta2 = hp["betas"][::-1] if k["betas_swapped"] else hp["betas"]
    eps, wd = hp["eps"], hp["weight_decay"] * k["decay_scale"]
    g = -grad if (hp["maximize"] and k["maximize_on"]) else grad
    state["t"] = state.get("t", 0) + 1
    t = state["t"] + k["t_offset"]
    decay = k["decay"] if k["decay"] != "torch" else ("decoupled" if hp["decoupled"] else "coupled")
    if wd != 0 and decay == "coupled":
        g = g + wd * w
    elif wd != 0 and decay == "decoupled":
        w = w * (1 - lr * wd)
    elif wd != 0 and decay == "decoupled_no_lr":
        w = w * (1 - wd)
    m, v = state.get("m", np.zeros_like(w)), state.get("v", np.zeros_like(w))
    if k["one_minus"]:
        m = m + (1 - beta1) * (g - m)
        v = beta2 * v + (1 - beta2) * g * g
    else:
        m, v = beta1 * m + g, beta2 * v + g * g
    state["m"], state["v"] = m, v
    if hp["amsgrad"] == k["amsgrad_on"]:              # amsgrad asked and not ignored, or added unasked
        v = state["vmax"] = np.maximum(state.get("vmax", v), v)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        bc1 = np.float64(1 - beta1 ** t if k["bias"] in ("both", "m") else 1.0)   # NumPy's: 1/0 is inf, not an error
        bc2 = np.float64(1 - beta2 ** t if k["bias"] in ("both", "v") else 1.0)
        root = np.sqrt if k["sqrt"] else (lambda x: x)
        if k["eps"] == "outside":
            denom = root(v) / root(bc2) + eps
            return w - (lr / bc1) * (m / denom)
        if k["eps"] == "inside":
            return w - (lr / bc1) * (m / root(v / bc2 + eps))
        return w - lr * root(bc2) / bc1 * (m / (root(v) + eps))   # "before_correction"


RMSPROP_KNOBS = dict(eps="outside", centered_on=True, momentum_on=True, sqrt=True, decay="coupled",
                    one_minus=True, maximize_on=True, lr=None)
ADAGRAD_KNOBS = dict(decay_from="t-1", accumulator="given", eps="outside", sqrt=True, decay="coupled",
                    maximize_on=True, lr=None)


def rmsprop_step(w, grad, state, hp, k):
    """One torch.optim.RMSprop step of one parameter under knobs ``k``."""
    lr = hp["lr"] if k["lr"] is None else k["lr"]
    a, eps, mu = hp["alpha"], hp["eps"], hp["momentum"]
    g = -grad if (hp["maximize"] and k["maximize_on"]) else grad
    if hp["weight_decay"] != 0 and k["decay"] == "coupled":
        g = g + hp["weight_decay"] * w
    v = state.get("v", np.zeros_like(w))
    v = a * v + ((1 - a) if k["one_minus"] else 1.0) * g * g
    state["v"] = v
    if hp["centered"] and k["centered_on"]:
        ga = state.get("ga", np.zeros_like(w))
        ga = ga + (1 - a) * (g - ga)
        state["ga"] = ga
        v = v - ga * ga
    root = np.sqrt if k["sqrt"] else (lambda x: x)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = root(v) + eps if k["eps"] == "outside" else root(v + eps)
        if mu > 0 and k["momentum_on"]:
            buf = mu * state.get("buf", np.zeros_like(w)) + g / d
            state["buf"] = buf
            return w - lr * buf
        return w - lr * g / d


def adagrad_step(w, grad, state, hp, k):
    """One torch.optim.Adagrad step of one parameter under knobs ``k``."""
    lr = hp["lr"] if k["lr"] is None else k["lr"]
    g = -grad if (hp["maximize"] and k["maximize_on"]) else grad
    if hp["weight_decay"] != 0 and k["decay"] == "coupled":
        g = g + hp["weight_decay"] * w
    state["t"] = state.get("t", 0) + 1
    t = state["t"] if k["decay_from"] == "t" else state["t"] - 1
    clr = lr / (1 + t * hp["lr_decay"])
    start = hp["initial_accumulator_value"] if k["accumulator"] == "given" else 0.0
    s = state.get("sum", np.full_like(w, start)) + g * g
    state["sum"] = s
    root = np.sqrt if k["sqrt"] else (lambda x: x)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = root(s) + hp["eps"] if k["eps"] == "outside" else root(s + hp["eps"])
        return w - clr * g / d


@dataclass(frozen=True)
class Variant:
    """One knob of a rule turned to a mistake: ``key`` (stable, for tests and JSON), the knob
    changes, and the cause in words."""
    key: str
    changes: tuple      # ((knob, value), ...)
    cause: str

    def knobs(self, defaults):
        return dict(defaults, **dict(self.changes))


SGD_VARIANTS = [
    Variant("first_buffer", (("first_buffer", "dampened"),),
            "momentum's first buffer: torch starts buf = g on the first step, yours starts at (1 − dampening)·g "
            "(as if buf began at 0 and was dampened)"),
    Variant("dampening_ignored", (("damping", "1"),),
            "dampening ignored: yours adds the whole gradient to the buffer (buf = μ·buf + g) where torch adds "
            "(1 − dampening)·g"),
    Variant("dampening_inverted", (("damping", "d"),),
            "dampening used the wrong way round: yours adds dampening·g to the buffer where torch adds "
            "(1 − dampening)·g"),
    Variant("momentum_averaged", (("average", True),),
            "momentum as an exponential average, v = μ·v + (1 − μ)·g from v = 0; torch's buffer is "
            "buf = μ·buf + (1 − dampening)·g, starting at buf = g"),
    Variant("look_ahead_missing", (("look_ahead", "none"),),
            "Nesterov's look-ahead missing: yours steps along the buffer (plain momentum); torch's Nesterov "
            "step is g + μ·buf"),
    Variant("look_ahead_unasked", (("look_ahead", "new"),),
            "a Nesterov look-ahead (g + μ·buf) that was not asked for: with nesterov=False torch steps along buf"),
    Variant("momentum_ignored", (("momentum_on", False),), "momentum ignored: yours is plain SGD, w = w − lr·g"),
    Variant("decay_decoupled", (("decay", "decoupled"),),
            "weight decay decoupled (w = w·(1 − lr·λ), as AdamW): torch's SGD adds λ·w to the gradient "
            "(L2, coupled), so it also goes through the momentum buffer"),
    Variant("decay_ignored", (("decay", "none"),), "weight decay ignored: torch adds λ·w to the gradient"),
    Variant("decay_sign", (("decay_scale", -1.0),),
            "weight decay's sign: yours adds −λ·w to the gradient, torch +λ·w (the gradient of λ/2·‖w‖²)"),
    Variant("decay_doubled", (("decay_scale", 2.0),),
            "weight decay doubled: yours adds 2λ·w (the gradient of λ·‖w‖²); torch's weight_decay λ adds λ·w"),
    Variant("decay_halved", (("decay_scale", 0.5),),
            "weight decay halved: yours adds λ/2·w; torch's weight_decay λ adds λ·w (the gradient of λ/2·‖w‖²)"),
    Variant("maximize_ignored", (("maximize_on", False),),
            "maximize ignored: with maximize=True torch steps up the gradient (uses −∇)"),
]

ADAM_VARIANTS = [
    Variant("bias_correction_missing", (("bias", "none"),),
            "Adam's bias correction missing: yours uses m and v as they are; torch divides them by 1 − β1^t and "
            "1 − β2^t"),
    Variant("bias_correction_m_only", (("bias", "m"),),
            "Adam's bias correction of v missing: yours divides m by 1 − β1^t but not v by 1 − β2^t"),
    Variant("bias_correction_v_only", (("bias", "v"),),
            "Adam's bias correction of m missing: yours divides v by 1 − β2^t but not m by 1 − β1^t"),
    Variant("eps_inside_sqrt", (("eps", "inside"),),
            "eps inside the square root: yours divides by √(v̂ + eps); torch by √v̂ + eps"),
    Variant("eps_before_correction", (("eps", "before_correction"),),
            "eps added to √v before the bias correction (the Adam paper's 'efficient' form, lr·√(1 − β2^t)/"
            "(1 − β1^t) · m/(√v + eps)); torch adds eps to √v̂ = √v/√(1 − β2^t)"),
    Variant("step_counter_from_0", (("t_offset", -1),),
            "the step counter starts at 0: yours bias-corrects the first step with t = 0 (t − 1 at every step); "
            "torch counts t = 1, 2, ... and corrects with 1 − β^t"),
    Variant("step_counter_ahead", (("t_offset", 1),),
            "the step counter runs one ahead: yours bias-corrects the first step with t = 2; torch with t = 1"),
    Variant("decay_decoupled", (("decay", "decoupled"),),
            "weight decay decoupled (AdamW: w = w·(1 − lr·λ)); torch.optim.Adam adds λ·w to the gradient "
            "(coupled L2), which then goes through m and v"),
    Variant("decay_coupled", (("decay", "coupled"),),
            "weight decay coupled (L2: λ·w added to the gradient, as Adam); AdamW decays the weights directly, "
            "w = w·(1 − lr·λ)"),
    Variant("decay_without_lr", (("decay", "decoupled_no_lr"),),
            "weight decay decoupled without the learning rate: yours w = w·(1 − λ); torch's AdamW w·(1 − lr·λ)"),
    Variant("decay_ignored", (("decay", "none"),), "weight decay ignored"),
    Variant("decay_sign", (("decay_scale", -1.0),), "weight decay's sign: yours decays with −λ, torch with +λ"),
    Variant("betas_swapped", (("betas_swapped", True),),
            "β1 and β2 swapped: yours averages m with β2 and v with β1"),
    Variant("one_minus_beta_missing", (("one_minus", False),),
            "the (1 − β) factors missing: yours m = β1·m + g, v = β2·v + g²; torch m = β1·m + (1 − β1)·g, "
            "v = β2·v + (1 − β2)·g²"),
    Variant("sqrt_missing", (("sqrt", False),), "the square root missing: yours divides by v̂ + eps, torch by √v̂ + eps"),
    Variant("amsgrad_ignored", (("amsgrad_on", False),),
            "amsgrad ignored (amsgrad=True divides by the running maximum of v), or used where it was not asked"),
    Variant("maximize_ignored", (("maximize_on", False),),
            "maximize ignored: with maximize=True torch steps up the gradient (uses −∇)"),
]

RMSPROP_VARIANTS = [
    Variant("eps_inside_sqrt", (("eps", "inside"),),
            "eps inside the square root: yours divides by √(v + eps); torch's RMSprop by √v + eps"),
    Variant("centered_ignored", (("centered_on", False),),
            "centered ignored: with centered=True torch divides by √(v − ḡ²) + eps, ḡ the running mean of g"),
    Variant("momentum_ignored", (("momentum_on", False),),
            "momentum ignored: torch's RMSprop keeps buf = μ·buf + g/(√v + eps) and steps w − lr·buf"),
    Variant("one_minus_alpha_missing", (("one_minus", False),),
            "the (1 − α) factor missing: yours v = α·v + g², torch v = α·v + (1 − α)·g²"),
    Variant("sqrt_missing", (("sqrt", False),), "the square root missing: yours divides by v + eps, torch by √v + eps"),
    Variant("decay_ignored", (("decay", "none"),), "weight decay ignored: torch adds λ·w to the gradient"),
    Variant("maximize_ignored", (("maximize_on", False),),
            "maximize ignored: with maximize=True torch steps up the gradient (uses −∇)"),
]

ADAGRAD_VARIANTS = [
    Variant("lr_decay_from_t", (("decay_from", "t"),),
            "lr_decay counted from t: yours lr / (1 + t·lr_decay), torch's lr / (1 + (t − 1)·lr_decay)"),
    Variant("initial_accumulator_ignored", (("accumulator", "zero"),),
            "initial_accumulator_value ignored: torch's sum of g² starts at it"),
    Variant("eps_inside_sqrt", (("eps", "inside"),),
            "eps inside the square root: yours divides by √(sum + eps); torch's Adagrad by √sum + eps"),
    Variant("sqrt_missing", (("sqrt", False),), "the square root missing: yours divides by sum + eps"),
    Variant("decay_ignored", (("decay", "none"),), "weight decay ignored: torch adds λ·w to the gradient"),
    Variant("maximize_ignored", (("maximize_on", False),),
            "maximize ignored: with maximize=True torch steps up the gradient (uses −∇)"),
]

RULES = {
    "sgd": (sgd_step, SGD_KNOBS, SGD_VARIANTS),
    "adam": (adam_step, ADAM_KNOBS, ADAM_VARIANTS),
    "adamw": (adam_step, ADAM_KNOBS, ADAM_VARIANTS),
    "rmsprop": (rmsprop_step, RMSPROP_KNOBS, RMSPROP_VARIANTS),
    "adagrad": (adagrad_step, ADAGRAD_KNOBS, ADAGRAD_VARIANTS),
}


def run_rule(name, knobs, hp, start, grads):
    """[{parameter: w after step s}] for s = 1..len(grads): the rule under ``knobs`` from ``start``,
    fed the gradient dicts ``grads`` in turn."""
    step, _, _ = RULES[name]
    params, states, out = dict(start), {k: {} for k in start}, []
    with np.errstate(all="ignore"):                   # a variant may divide by 0 (t = 0): NaN is its answer
        for g in grads:
            params = {k: step(params[k], g[k], states[k], hp, knobs) for k in params}
            out.append(params)
    return out
