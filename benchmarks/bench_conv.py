"""How long one convolution layer's forward and backward take in the hand-written NumPy code, beside torch.

A step is what a training loop asks of the layer: y = conv(x), then backward of a fixed dL/dy
(dL/dx, dL/dW, dL/db, the gradients added into .grad and zeroed between steps). Rows are the
conv layers of two small CNNs: the 8x8 digits (batch 64, 1 -> 8 and 8 -> 16 channels) and 28x28
images (batch 128, the same channels), kernel 3, padding 1; the last rows add the 2x2 max-pool
after each. Both sides run the same layer on the same arrays, in interleaved rounds in one
process; each round gives one manual/torch ratio, and the table shows the median ratio and its
spread (lowest - highest round), and each side's fastest round ("best", the figure least
disturbed by other processes on a shared machine). Both sides run on one thread, NumPy's BLAS
and torch alike, as the lockstep runs them (compare.interactive.threads), timed by this
process's CPU time, which other programs on a busy machine do not inflate (``--clock wall`` for
elapsed time, ``--threads 2`` for two threads each).

Goals: at most 3x torch at the digits sizes and 2x at 28x28.

    .venv/bin/python benchmarks/bench_conv.py              # about a minute
    .venv/bin/python benchmarks/bench_conv.py --rounds 5   # quicker, noisier
"""
import argparse
import statistics

import numpy as np
import torch

from backprop_oracle import manual
from backprop_oracle import torch_ref
from threadpoolctl import threadpool_limits

from backprop_oracle.compare.bench.timing import CLOCKS

# (label, batch, in channels, out channels, height = width, pool after the conv)
CASES = [
    ("digits conv1", 64, 1, 8, 8, False),
    ("digits conv2", 64, 8, 16, 4, False),
    ("28x28 conv1", 128, 1, 8, 28, False),
    ("28x28 conv2", 128, 8, 16, 14, False),
    ("digits conv2+pool", 64, 8, 16, 4, True),
    ("28x28 conv2+pool", 128, 8, 16, 14, True),
]
GOALS = {"digits": 3.0, "28x28": 2.0}


def make_case(batch, c_in, c_out, size, pool, dtype, seed=0):
    """Both sides with the same weights, input and upstream gradient; returns (manual_step, torch_step)."""
    rng = np.random.default_rng(seed)
    conv = manual.Conv2d(c_in, c_out, 3, padding=1, rng=rng, dtype=dtype)
    layers = [conv] + ([manual.MaxPool2d(2)] if pool else [])
    x = rng.standard_normal((batch, c_in, size, size)).astype(dtype)
    out = (size // 2) if pool else size
    g = rng.standard_normal((batch, c_out, out, out)).astype(dtype)

    def manual_step():
        conv.zero_grad()
        y = x
        for m in layers:
            y = m.forward(y)
        d = g
        for m in reversed(layers):
            d = m.backward(d)
        return d

    tdt = torch_ref.as_dtype(dtype)
    tconv = torch_ref.Conv2d(c_in, c_out, 3, padding=1).to(tdt)
    with torch.no_grad():
        tconv.weight.copy_(torch.tensor(conv.weight.data))
        tconv.bias.copy_(torch.tensor(conv.bias.data))
    tlayers = torch.nn.Sequential(tconv, *([torch_ref.MaxPool2d(2)] if pool else []))
    xt = torch.tensor(x, requires_grad=True)
    gt = torch.tensor(g)

    def torch_step():
        tconv.zero_grad()
        xt.grad = None
        tlayers(xt).backward(gt)
        return xt.grad

    return manual_step, torch_step


def per_step(fn, steps, now):
    start = now()
    for _ in range(steps):
        fn()
    return (now() - start) / steps


def compare(manual_step, torch_step, rounds, now, target_s=0.02):
    """Interleaved rounds, who goes first alternating; returns (manual ms, torch ms, [ratio]) per round."""
    for _ in range(3):                             # warm up: caches, buffers, torch's allocator
        manual_step(), torch_step()
    k_m, k_t = (max(1, int(target_s / max(per_step(fn, 3, now), 1e-9))) for fn in (manual_step, torch_step))
    ms, ts, ratios = [], [], []
    for r in range(rounds):
        pair = [("m", manual_step, k_m), ("t", torch_step, k_t)]
        if r % 2:
            pair.reverse()
        got = {side: per_step(fn, k, now) for side, fn, k in pair}
        ms.append(got["m"] * 1e3)
        ts.append(got["t"] * 1e3)
        ratios.append(got["m"] / got["t"])
    return ms, ts, ratios


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds per row (default 15)")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--threads", type=int, default=1, help="threads for torch and NumPy's BLAS (default 1)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                        help="cpu: this process's CPU time (default); wall: elapsed time")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads):
        table(args)


def table(args):
    now = CLOCKS[args.clock]
    dtypes = args.dtypes.split(",")
    print(f"one conv layer step (forward, backward: dL/dx, dL/dW, dL/db), kernel 3, padding 1; "
          f"torch {torch.__version__}, NumPy {np.__version__}, {args.threads} thread(s) each, {args.clock} clock; "
          f"{args.rounds} interleaved rounds; ms and 'best' from each side's fastest round, "
          f"'median (spread)' of the per-round ratios; goal: <= 3x at digits sizes, <= 2x at 28x28")
    head = f"{'layer':>18} {'N, C, H':>12}"
    for dt in dtypes:
        head += f" | {dt + ' manual':>15} {'torch':>10} {'best':>6} {'median (spread)':>21}"
    print(head + " | goal")
    for label, batch, c_in, c_out, size, pool in CASES:
        line = f"{label:>18} {f'{batch}, {c_in}->{c_out}, {size}':>12}"
        worst = 0.0
        for dt in dtypes:
            m_ms, t_ms, ratios = compare(*make_case(batch, c_in, c_out, size, pool, dt), args.rounds, now)
            median = statistics.median(ratios)
            worst = max(worst, median)
            line += (f" | {min(m_ms):12.3f} ms {min(t_ms):7.3f} ms {min(m_ms) / min(t_ms):6.3f} "
                     f"{median:7.3f} ({min(ratios):.3f}-{max(ratios):.3f})")
        goal = GOALS[label.split()[0]]
        print(line + f" | <= {goal:g}x {'met' if worst <= goal else 'NOT met'}", flush=True)


if __name__ == "__main__":
    main()
