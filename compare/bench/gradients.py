"""Two ways to the same gradient, timed against each other.

The OR-gate article's two methods for a batch gradient: the per-example loop
(``manual.loop_value_and_grad``: backpropagate each example alone, Δ += δ, then Δ / m) and the
vectorized pass over the whole batch (``manual.value_and_grad``), on the 3Blue1Brown 64-16-16-10
network and all 1797 8x8 digits.

The gradient check of the 784-16-16-10 network (13,002 parameters; sigmoid hidden layers, logits,
cross-entropy, a batch of 4) against torch.autograd.gradcheck. The "user" is a correct
hand-written NumPy backprop; ``check_network`` runs it and torch_ref.mlp with the same
parameters and compares every element of every gradient (and, in the second row, every
intermediate too). gradcheck checks torch's own gradient of the same function against finite
differences: full mode perturbs each of the 13,002 parameters in turn (two forward passes
each); fast_mode compares one random projection of the Jacobian.
"""
import numpy as np
import torch
from torch.autograd import gradcheck
from torch.func import functional_call

from backprop_oracle import manual
from backprop_oracle import torch_ref
from backprop_oracle.compare.bench.timing import interleaved, ratio
from backprop_oracle.compare.check import check_network

LOOP_NET = (64, 16, 16, 10)
LOOP_BATCH = 1797
CHECK_SIZES = (784, 16, 16, 10)
CHECK_SPEC = dict(sizes=CHECK_SIZES, activation="sigmoid", output_activation="identity", loss="cross_entropy")
CHECK_BATCH = 4


def loop_vs_vectorized(repeats):
    """Spread of seconds of each method on one batch, the ratio loop / vectorized, and the largest
    difference between their gradients (they must agree: the same mean of per-example gradients)."""
    rng = np.random.default_rng(0)
    model = manual.mlp(LOOP_NET, "sigmoid", "sigmoid")
    model.load_state_dict(manual.init_parameters(model, "xavier_uniform", rng))
    X = rng.standard_normal((LOOP_BATCH, LOOP_NET[0]))
    Y = np.eye(LOOP_NET[-1])[rng.integers(0, LOOP_NET[-1], LOOP_BATCH)]
    found = {}

    def method(name, fn):
        def prepare():
            return lambda: found.__setitem__(name, fn(model, "sum_squared_error", X, Y)[1])
        return prepare
    times = interleaved({"loop": method("loop", manual.loop_value_and_grad),
                         "vectorized": method("vectorized", manual.value_and_grad)}, repeats, warmup=0)
    gap = max(float(np.max(np.abs(found["loop"][n] - found["vectorized"][n]))) for n in found["vectorized"])
    return {"net": "-".join(map(str, LOOP_NET)), "batch": LOOP_BATCH, "loss": "sum_squared_error",
            "seconds": {k: v.to_dict() for k, v in times.items()},
            "ratio": ratio(times["loop"].median, times["vectorized"].median), "max_abs_grad_gap": gap}


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def backprop(params, X, Y, intermediates=False):
    """A correct hand-written backprop: sigmoid hidden layers, logits, mean cross-entropy."""
    L, N = len(CHECK_SIZES) - 1, X.shape[0]
    a, z = [X], [None]
    for l in range(1, L + 1):
        z.append(a[-1] @ params[f"{2 * l - 2}.weight"].T + params[f"{2 * l - 2}.bias"])
        a.append(sigmoid(z[-1]) if l < L else z[-1])
    e = np.exp(z[L] - z[L].max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    cost = -np.mean(np.log(p[np.arange(N), Y]))
    dz = p.copy()
    dz[np.arange(N), Y] -= 1.0
    dz /= N                                                   # dCost/dz_L = (softmax - onehot) / N
    da = dz                                                   # the output layer is the identity
    grads, inter = {}, {}
    for l in range(L, 0, -1):
        if l < L:
            dz = da * a[l] * (1.0 - a[l])                      # sigmoid'(z) = a (1 - a)
        grads[f"{2 * l - 2}.weight"] = dz.T @ a[l - 1]
        grads[f"{2 * l - 2}.bias"] = dz.sum(axis=0)
        inter.update({f"z{l}": z[l], f"a{l}": a[l], f"da{l}": da, f"dz{l}": dz})
        da = dz @ params[f"{2 * l - 2}.weight"]                 # dCost/da_{l-1}
    return (cost, grads, inter) if intermediates else (cost, grads)


def with_intermediates(params, X, Y):
    return backprop(params, X, Y, intermediates=True)


CHECK_ROWS = {
    "torch": "torch forward + backward (one pass)",
    "user": "your NumPy backprop alone",
    "check": "check_network: every parameter gradient",
    "check_all": "check_network: + every z, a, dL/dz, dL/da",
    "fast": "gradcheck fast_mode (one random projection)",
    "full": "gradcheck full (finite differences, every element)",
}


def check_vs_gradcheck(repeats, full=True):
    """Spread of seconds of each row of CHECK_ROWS ("full" with one repeat, only with ``full``),
    and the ratios of gradcheck to check_network."""
    rng = np.random.default_rng(0)
    template = manual.mlp(CHECK_SIZES, "sigmoid", "identity")
    params = manual.init_parameters(template, "xavier_uniform", rng, zero_bias=False)
    X, Y = rng.standard_normal((CHECK_BATCH, CHECK_SIZES[0])), rng.integers(0, CHECK_SIZES[-1], CHECK_BATCH)
    model = torch_ref.mlp(CHECK_SIZES, "sigmoid", "identity")
    loss = torch_ref.make_loss("cross_entropy")
    tparams = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    Xt, Yt = torch.tensor(X), torch.tensor(Y)

    def cost_of(*values):
        return loss(functional_call(model, dict(zip(tparams, values)), (Xt,)), Yt)

    def one_backward():
        torch.autograd.grad(cost_of(*tparams.values()), list(tparams.values()))

    for fn in (backprop, with_intermediates):      # warm up: imports, the cached torch model
        assert check_network(fn, CHECK_SPEC, data=(X, Y), params=params).passed
    work = {
        "torch": one_backward,
        "user": lambda: backprop(params, X, Y),
        "check": lambda: check_network(backprop, CHECK_SPEC, data=(X, Y), params=params),
        "check_all": lambda: check_network(with_intermediates, CHECK_SPEC, data=(X, Y), params=params),
        "fast": lambda: gradcheck(cost_of, tuple(tparams.values()), fast_mode=True),
    }
    times = interleaved({k: (lambda fn=fn: fn) for k, fn in work.items()}, repeats, warmup=0)
    if full:
        times.update(interleaved({"full": lambda: lambda: gradcheck(cost_of, tuple(tparams.values()))}, 1,
                                 warmup=0))
    check = times["check"].median
    return {"net": "-".join(map(str, CHECK_SIZES)), "parameters": int(sum(v.size for v in params.values())),
            "batch": CHECK_BATCH, "seconds": {k: v.to_dict() for k, v in times.items()},
            "fast_mode_over_check": ratio(times["fast"].median, check),
            "full_over_check": ratio(times["full"].median, check) if full else None,
            "check_over_torch_pass": ratio(check, times["torch"].median)}
