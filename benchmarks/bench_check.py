"""How long a full gradient check of the 784-16-16-10 network takes, beside torch.autograd.gradcheck.

The network has 13,002 parameters (sigmoid hidden layers, logits out, cross-entropy). The
"user" is a correct hand-written NumPy backprop. check_network runs it, runs torch_ref.mlp with
the same parameters (forward, retain_grad on every intermediate, backward) and compares every
element of every gradient (and, in the second row, every intermediate too).

gradcheck checks torch's own gradient of the same function against finite differences: full
mode perturbs each of the 13,002 parameters in turn (two forward passes each); fast_mode
compares one random projection of the Jacobian. All timings come from the same run, one CPU
thread, batch of 4 examples; medians over repeats (full gradcheck: a single run).

    python benchmarks/bench_check.py            # about 15 s
    python benchmarks/bench_check.py --no-full  # without the full gradcheck
"""
import argparse
import statistics
import time

import numpy as np
import torch
from torch.autograd import gradcheck
from torch.func import functional_call

from backprop_oracle import manual
from backprop_oracle import torch_ref
from backprop_oracle.compare.check import check_network

SIZES = (784, 16, 16, 10)
SPEC = dict(sizes=SIZES, activation="sigmoid", output_activation="identity", loss="cross_entropy")
BATCH = 4


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def backprop(params, X, Y, intermediates=False):
    """A correct hand-written backprop: sigmoid hidden layers, logits, mean cross-entropy."""
    L, N = len(SIZES) - 1, X.shape[0]
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


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-full", action="store_true", help="skip the full gradcheck (about 6-10 s)")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    template = manual.mlp(SIZES, "sigmoid", "identity")
    params = manual.init_parameters(template, "xavier_uniform", rng, zero_bias=False)
    X, Y = rng.standard_normal((BATCH, SIZES[0])), rng.integers(0, SIZES[-1], BATCH)
    n_params = sum(v.size for v in params.values())

    model = torch_ref.mlp(SIZES, "sigmoid", "identity")
    loss = torch_ref.make_loss("cross_entropy")
    tparams = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    Xt, Yt = torch.tensor(X), torch.tensor(Y)

    def cost_of(*values):
        return loss(functional_call(model, dict(zip(tparams, values)), (Xt,)), Yt)

    def one_backward():
        torch.autograd.grad(cost_of(*tparams.values()), list(tparams.values()))

    for fn in (backprop, with_intermediates):      # warm up: imports, the cached torch model
        assert check_network(fn, SPEC, data=(X, Y), params=params).passed
    rows = [
        ("torch forward + backward (one pass)", median_time(one_backward, args.repeats)),
        ("your NumPy backprop alone", median_time(lambda: backprop(params, X, Y), args.repeats)),
        ("check_network: every parameter gradient",
         median_time(lambda: check_network(backprop, SPEC, data=(X, Y), params=params), args.repeats)),
        ("check_network: + every z, a, dL/dz, dL/da",
         median_time(lambda: check_network(with_intermediates, SPEC, data=(X, Y), params=params), args.repeats)),
        ("gradcheck fast_mode (one random projection)",
         median_time(lambda: gradcheck(cost_of, tuple(tparams.values()), fast_mode=True), max(5, args.repeats // 5))),
    ]
    if not args.no_full:
        rows.append(("gradcheck full (finite differences, every element)",
                     median_time(lambda: gradcheck(cost_of, tuple(tparams.values())), 1)))
    check = rows[2][1]
    print(f"{'-'.join(map(str, SIZES))} network, {n_params:,} parameters, batch {BATCH}, float64, "
          f"torch {torch.__version__}, 1 CPU thread")
    print(f"{'':52} {'median':>10} {'vs check':>10}")
    for name, seconds in rows:
        print(f"{name:52} {seconds * 1e3:8.2f} ms {seconds / check:9.1f}x")
    fast = rows[4][1]
    print(f"\ncheck_network is {fast / check:.1f}x faster than gradcheck's fast_mode"
          + ("" if args.no_full else f" and {rows[5][1] / check:,.0f}x faster than full gradcheck")
          + f", and costs {check / rows[0][1]:.1f} torch forward+backward passes.")


if __name__ == "__main__":
    main()
