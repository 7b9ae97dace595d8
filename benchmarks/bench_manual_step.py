"""How long one training step of the hand-written NumPy network takes, beside torch, from tiny to large.

A step is what every training loop does: zero the gradients, forward, the loss, backward, one SGD
step with momentum 0.9. Both sides run the same network (sigmoid hidden layers; the 2-1 OR gate has
a sigmoid output and the squared error, the others logits and cross-entropy on class indices) on the
same batch, over and over (the steady state of a training run). The sides are timed in interleaved
rounds in one process; each round gives one manual/torch ratio, and the table shows the median ratio
and its spread (lowest - highest round). On a shared machine other processes slow some rounds down,
so the table also gives each side's fastest round (ms) and their ratio ("best"), the figure least
disturbed by them. torch runs on 2 CPU threads; NumPy uses its BLAS as installed.

The last lines give the largest network's GEMM rate: the matrix products its step computes
(forward x W^T, backward dL/dz^T x and dL/dz W, the first layer's only where dL/dX is asked for)
timed alone in NumPy, divided by the whole manual step: the share of NumPy's own matrix-product
rate that the step reaches; and those products alone over torch's step, the lowest manual/torch
ratio NumPy's BLAS allows (a manual step whose activations, loss and update cost nothing).

    .venv/bin/python benchmarks/bench_manual_step.py             # about a minute
    .venv/bin/python benchmarks/bench_manual_step.py --rounds 5  # quicker, noisier
    .venv/bin/python benchmarks/bench_manual_step.py --no-input-grad   # every row without dL/dX
"""
import argparse
import statistics
import time

import numpy as np
import torch

from backprop_oracle import manual
from backprop_oracle import torch_ref

# (sizes, batch, output activation, loss, input_grad). The last row runs backward with
# input_grad=False, as a training loop may (manual.fit does): torch skips dL/dX for data too.
CASES = [
    ((2, 1), 4, "sigmoid", "squared_error", True),
    ((64, 16, 16, 10), 32, "identity", "cross_entropy", True),
    ((784, 16, 16, 10), 10, "identity", "cross_entropy", True),
    ((64, 16, 16, 10), 1797, "identity", "cross_entropy", True),
    ((784, 256, 256, 10), 256, "identity", "cross_entropy", True),
    ((784, 1024, 1024, 10), 1024, "identity", "cross_entropy", True),
    ((784, 1024, 1024, 10), 1024, "identity", "cross_entropy", False),
]
LR, MOMENTUM = 0.1, 0.9


def make_case(sizes, batch, output_activation, loss, input_grad, dtype, seed=0):
    """Both sides with the same initial parameters and batch; returns (manual_step, torch_step)."""
    rng = np.random.default_rng(seed)
    model = manual.mlp(sizes, "sigmoid", output_activation, dtype=dtype)
    state = manual.init_parameters(model, "xavier_uniform", rng, dtype=dtype)
    model.load_state_dict(state)
    X = rng.standard_normal((batch, sizes[0])).astype(dtype)
    if loss == "cross_entropy":
        Y = rng.integers(0, sizes[-1], batch)
    else:
        Y = rng.integers(0, 2, (batch, sizes[-1])).astype(dtype)
    loss_m = manual.make_loss(loss)
    opt_m = manual.make_optimizer("sgd", model.parameters(), lr=LR, momentum=MOMENTUM)

    def manual_step():
        opt_m.zero_grad()
        cost = loss_m(model.forward(X), Y)
        if input_grad:
            model.backward(loss_m.backward())            # what most loops write: dL/dX too
        else:
            model.backward(loss_m.backward(), input_grad=False)
        opt_m.step()
        return cost

    tdt = torch_ref.as_dtype(dtype)
    tmodel = torch_ref.mlp(sizes, "sigmoid", output_activation, dtype=dtype)
    tmodel.load_state_dict({k: torch.tensor(v, dtype=tdt) for k, v in state.items()})
    Xt = torch.tensor(X, dtype=tdt)
    Yt = torch.tensor(Y) if loss == "cross_entropy" else torch.tensor(Y, dtype=tdt)
    loss_t = torch_ref.make_loss(loss)
    opt_t = torch_ref.make_optimizer("sgd", tmodel.parameters(), lr=LR, momentum=MOMENTUM)

    def torch_step():
        opt_t.zero_grad()
        cost = loss_t(tmodel(Xt), Yt)
        cost.backward()
        opt_t.step()
        return cost

    return manual_step, torch_step


def per_step(fn, steps):
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def steps_per_block(fn, target_s=0.01):
    """How many steps make a timed block of about ``target_s`` seconds (at least one)."""
    fn()
    t = per_step(fn, 3)
    return max(1, int(target_s / max(t, 1e-9)))


def compare(manual_step, torch_step, rounds):
    """Interleaved rounds; returns (manual ms per round, torch ms per round, [ratio per round])."""
    for _ in range(3):                             # warm up: caches, buffers, torch's allocator
        manual_step(), torch_step()
    k_m, k_t = steps_per_block(manual_step), steps_per_block(torch_step)
    ms, ts, ratios = [], [], []
    for r in range(rounds):
        pair = [("m", manual_step, k_m), ("t", torch_step, k_t)]
        if r % 2:
            pair.reverse()                         # alternate who goes first
        got = {side: per_step(fn, k) for side, fn, k in pair}
        ms.append(got["m"])
        ts.append(got["t"])
        ratios.append(got["m"] / got["t"])
    return [t * 1e3 for t in ms], [t * 1e3 for t in ts], ratios


def gemm_fraction(sizes, batch, dtype, manual_ms, input_grad, repeats=5):
    """(GEMM-only ms, flops, fraction): the step's matrix products alone, with preallocated outputs."""
    rng = np.random.default_rng(1)
    Ws = [rng.standard_normal((o, i)).astype(dtype) for i, o in zip(sizes[:-1], sizes[1:])]
    acts = [rng.standard_normal((batch, s)).astype(dtype) for s in sizes]
    outs = [np.empty((batch, o), dtype) for o in sizes[1:]]
    dWs = [np.empty_like(W) for W in Ws]
    dxs = [np.empty((batch, i), dtype) for i in sizes[:-1]]

    def products():
        for l, W in enumerate(Ws):
            np.matmul(acts[l], W.T, out=outs[l])               # z = x W^T
        for l in reversed(range(len(Ws))):
            np.matmul(outs[l].T, acts[l], out=dWs[l])          # dL/dW = dL/dz^T x
            if l > 0 or input_grad:
                np.matmul(outs[l], Ws[l], out=dxs[l])          # dL/dx = dL/dz W
    products()
    gemm_ms = min(per_step(products, 1) for _ in range(repeats)) * 1e3
    flops = 2 * batch * sum(i * o for i, o in zip(sizes[:-1], sizes[1:])) * 3 \
        - (0 if input_grad else 2 * batch * sizes[0] * sizes[1])
    return gemm_ms, flops, gemm_ms / manual_ms


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds per row (default 15)")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--no-input-grad", action="store_true",
                        help="every row backward(..., input_grad=False): no dL/dX, as torch for data")
    args = parser.parse_args()
    torch.set_num_threads(2)
    dtypes = args.dtypes.split(",")
    print(f"one training step (zero_grad, forward, loss, backward, SGD momentum {MOMENTUM}); "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; NumPy {np.__version__}; "
          f"{args.rounds} interleaved rounds; ms and 'best' from each side's fastest round, "
          f"'median (spread)' of the per-round ratios")
    head = f"{'net':>17} {'batch':>5} {'dL/dX':>5}"
    for dt in dtypes:
        head += f" | {dt + ' manual':>15} {'torch':>10} {'best':>6} {'median (spread)':>21}"
    print(head)
    largest = {}
    cases = [c[:-1] + (False,) for c in CASES if c[-1]] if args.no_input_grad else CASES
    for sizes, batch, out_act, loss, input_grad in cases:
        line = f"{'-'.join(map(str, sizes)):>17} {batch:>5} {'yes' if input_grad else 'no':>5}"
        for dt in dtypes:
            m_ms, t_ms, ratios = compare(*make_case(sizes, batch, out_act, loss, input_grad, dt), args.rounds)
            line += (f" | {min(m_ms):12.3f} ms {min(t_ms):7.3f} ms {min(m_ms) / min(t_ms):6.3f} "
                     f"{statistics.median(ratios):7.3f} ({min(ratios):.3f}-{max(ratios):.3f})")
            if sizes == CASES[-1][0]:
                largest[dt, input_grad] = min(m_ms), min(t_ms)
        print(line, flush=True)
    sizes, batch = CASES[-1][0], CASES[-1][1]
    print(f"\nGEMM rate of the {'-'.join(map(str, sizes))} step at batch {batch} (fastest rounds):")
    for (dt, input_grad), (step_ms, torch_ms) in largest.items():
        gemm_ms, flops, frac = gemm_fraction(sizes, batch, dt, step_ms, input_grad)
        print(f"  {dt}{'' if input_grad else ', no dL/dX'}: its matrix products alone {gemm_ms:.1f} ms "
              f"({flops / gemm_ms / 1e6:.1f} GFLOP/s), the whole step {step_ms:.1f} ms: {frac:.0%} of NumPy's GEMM rate; "
              f"best manual/torch NumPy's BLAS allows: {gemm_ms / torch_ms:.3f} (products alone / torch's step)")


if __name__ == "__main__":
    main()
