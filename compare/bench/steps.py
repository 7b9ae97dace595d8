"""The time per training step of each side, and how close the large steps come to NumPy's GEMM.

A step is what ``manual.fit`` and ``torch_ref.fit`` do per batch: zero the gradients, forward,
the loss, backward, the optimizer's step (SGD with momentum 0.9). Both sides start from the same
weights and train on the same random batch; ``ratio`` is manual time / torch time (below 1: the
NumPy side is the faster). A step's FLOPs are its matrix products: 2·N·in·out for each layer's
forward, the same for its weight gradient, and again for its input gradient except at the first
layer (the data needs none), i.e. 6·N·Σ in·out − 2·N·in₀·out₀.

For the large networks the step's matrix products are also timed alone (the same shapes and
memory layouts as the manual step's, into preallocated arrays: NumPy's BLAS doing nothing else),
interleaved with torch's step in rounds of their own after the manual/torch rounds, which stay
exactly as they were. The manual step cannot be quicker than its products, so ``best_ratio`` =
their time / torch's step time (from those rounds) is the lowest manual/torch ratio NumPy's BLAS
allows on this machine: the ratio of a manual step whose activations, loss and update cost
nothing. It is printed beside the goal; ``ratio`` does not include it.
"""
from dataclasses import dataclass

import numpy as np
import torch

from backprop_oracle import manual
from backprop_oracle import torch_ref
from backprop_oracle.compare.bench.timing import Spread, clock, interleaved, now, ratio
from backprop_oracle.torch_ref.graphs import GraphedStep


@dataclass(frozen=True)
class Net:
    sizes: tuple
    batch: int
    goal: float           # manual time / torch time at most
    activation: str = "sigmoid"
    output_activation: str = "sigmoid"
    loss: str = "sum_squared_error"

    @property
    def name(self):
        return f"{'-'.join(map(str, self.sizes))} b{self.batch}"

    @property
    def flops(self):
        pairs = list(zip(self.sizes[:-1], self.sizes[1:]))
        return 6 * self.batch * sum(i * o for i, o in pairs) - 2 * self.batch * pairs[0][0] * pairs[0][1]


# The OR gate of the article; the 3Blue1Brown digits network on 8x8 digits (batch 32, the whole
# 1797), on 28x28 MNIST (batch 10); two wide MNIST networks where the matrix products dominate.
NETS = (
    Net((2, 1), 4, 0.2, loss="squared_error"),
    Net((64, 16, 16, 10), 32, 0.2),
    Net((784, 16, 16, 10), 10, 0.2),
    Net((64, 16, 16, 10), 1797, 0.5),
    Net((784, 256, 256, 10), 256, 0.8),
    Net((784, 1024, 1024, 10), 1024, 0.8),
)
LARGE = ("784-256-256-10 b256", "784-1024-1024-10 b1024")
GEMM_GOAL = 0.75      # the manual step's FLOP rate over NumPy's GEMM rate, at the largest network
GEMM_GOAL_AT = "784-1024-1024-10 b1024"
DTYPES = ("float64", "float32")
LR, MOMENTUM = 0.01, 0.9     # every step's optimizer: SGD with momentum, on both sides


def problem(net, dtype, seed=0):
    """(initial state, X, Y) for ``net``: weights drawn once, a random batch with one-hot targets."""
    rng = np.random.default_rng(seed)
    template = manual.mlp(net.sizes, net.activation, net.output_activation)
    state = manual.init_parameters(template, "xavier_uniform", rng, dtype=dtype)
    X = rng.standard_normal((net.batch, net.sizes[0])).astype(dtype)
    if net.sizes[-1] == 1:
        Y = (rng.random((net.batch, 1)) < 0.5).astype(dtype)
    else:
        Y = np.eye(net.sizes[-1], dtype=dtype)[rng.integers(0, net.sizes[-1], net.batch)]
    return state, X, Y


def repeat_count(seconds_per_step, target):
    """Steps per timed run: enough for ``target`` seconds, at least one."""
    return max(1, int(target / max(seconds_per_step, 1e-7)))


def manual_steps(net, dtype, state, X, Y, momentum=MOMENTUM):
    """One manual training step of ``net`` on (X, Y), a function without arguments."""
    model = manual.mlp(net.sizes, net.activation, net.output_activation, dtype=dtype)
    model.load_state_dict(state)
    loss = manual.make_loss(net.loss)
    opt = manual.make_optimizer("sgd", model.parameters(), lr=LR, momentum=momentum)

    def step():
        opt.zero_grad()
        loss(model.forward(X), Y)
        model.backward(loss.backward(), input_grad=False)   # as fit does: no dL/dX for data (torch skips it too)
        opt.step()
    return step


def torch_steps(net, dtype, state, X, Y, device="cpu", momentum=MOMENTUM):
    """The same step on the torch side (on ``device``)."""
    dt = torch_ref.as_dtype(dtype)
    model = torch_ref.mlp(net.sizes, net.activation, net.output_activation, dtype=dtype, device=device)
    model.load_state_dict({k: torch.tensor(v, dtype=dt, device=device) for k, v in state.items()})
    loss = torch_ref.make_loss(net.loss)
    opt = torch_ref.make_optimizer("sgd", model.parameters(), lr=LR, momentum=momentum)
    Xt, Yt = torch.tensor(X, device=device), torch.tensor(Y, device=device)

    def step():
        opt.zero_grad()
        cost = loss(model(Xt), Yt)
        cost.backward()
        opt.step()
        cost.item()                 # as fit does: the cost comes back to Python every step
    return step


def looped(step, count):
    def work():
        for _ in range(count):
            step()
    return work


def step_products(net, dtype, X):
    """The matrix products of one manual step alone, as the layers compute them (z = x W^T;
    dL/dW = dL/dz^T x; dL/dx = dL/dz W except at the first layer), into preallocated arrays."""
    rng = np.random.default_rng(1)
    pairs = list(zip(net.sizes[:-1], net.sizes[1:]))
    Ws = [rng.uniform(-0.1, 0.1, (o, i)).astype(dtype) for i, o in pairs]
    xs = [X] + [rng.random((net.batch, o)).astype(dtype) for _, o in pairs[:-1]]    # each layer's input
    zs = [np.empty((net.batch, o), dtype) for _, o in pairs]                      # (N, out); reused as dL/dz
    dWs = [np.empty_like(W) for W in Ws]
    dxs = [np.empty_like(x) for x in xs]

    def products():
        for x, W, z in zip(xs, Ws, zs):
            np.matmul(x, W.T, out=z)                            # z = x W^T
        for l in reversed(range(len(Ws))):
            np.matmul(zs[l].T, xs[l], out=dWs[l])               # dL/dW = dL/dz^T x
            if l > 0:
                np.matmul(zs[l], Ws[l], out=dxs[l])             # dL/dx = dL/dz W
    return products


def warm_up(steps, target, most=10):
    """Each of ``steps`` in turn, ``most`` times or until ``target`` seconds have passed (once at
    least): the first steps allocate, fill the caches and, on torch's side, set up lazily. Steps per
    timed run counted from a cold step were far too few: torch's first OR-gate step takes 3 ms, 20
    times a steady one, which gave 15 steps per run where the target asks for several hundred."""
    start = now()
    for _ in range(most):
        for step in steps:
            step()
        if now() - start > target:
            break


def measure_step(net, dtype, repeats, target, momentum=MOMENTUM):
    """One row of the step table: Spread of seconds per step for each side, and their ratio; for
    the large networks also the step's matrix products alone and the best ratio they allow."""
    state, X, Y = problem(net, dtype)
    m = manual_steps(net, dtype, state, X, Y, momentum=momentum)
    t = torch_steps(net, dtype, state, X, Y, momentum=momentum)
    count = 1
    if target > 0:                                    # (0: one step, not warmed up; rough, and quick)
        warm_up((m, t), target)
        start = now()
        m(), t()
        count = repeat_count((now() - start) / 2, target)
    per_step = per_step_times({"manual": m, "torch": t}, count, repeats)
    r = ratio(per_step["manual"].median, per_step["torch"].median)
    row = {"net": net.name, "sizes": list(net.sizes), "batch": net.batch, "dtype": dtype, "momentum": momentum,
           "steps_per_run": count, "flops": net.flops,
           "seconds_per_step": {k: v.to_dict() for k, v in per_step.items()},
           "ratio": r, "goal": net.goal, "met": r <= net.goal}
    if net.name in LARGE:
        # A run of its own, so that the manual and torch steps above are timed exactly as they
        # always were; torch's step is timed again beside the products, in the same rounds.
        products = step_products(net, dtype, X)
        if target > 0:
            products()
        beside = per_step_times({"products": products, "torch": t}, count, repeats)
        row["products_per_step"] = beside["products"].to_dict()
        row["torch_beside_products"] = beside["torch"].to_dict()
        row["best_ratio"] = ratio(beside["products"].median, beside["torch"].median)
    return row


def per_step_times(steps_by_name, count, repeats):
    """{name: Spread of seconds per step}: ``count`` steps per timed run, in interleaved rounds."""
    times = interleaved({k: (lambda fn=fn: looped(fn, count)) for k, fn in steps_by_name.items()}, repeats,
                        warmup=0)
    return {k: Spread(v.min / count, v.median / count, v.max / count, v.repeats) for k, v in times.items()}


def gemm_rate(dtype, repeats, target, n=1024):
    """NumPy's matrix product rate (FLOP/s) for an n x n by n x n product, median of the repeats."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)).astype(dtype), rng.standard_normal((n, n)).astype(dtype)
    out = np.empty((n, n), dtype=dtype)
    one = lambda: np.matmul(a, b, out=out)     # noqa: E731
    start = now()
    one()
    count = repeat_count(now() - start, target)
    spread = interleaved({"gemm": lambda: looped(one, count)}, repeats, warmup=0)["gemm"]
    per = Spread(spread.min / count, spread.median / count, spread.max / count, spread.repeats)
    return {"dtype": dtype, "n": n, "flops": 2 * n ** 3, "seconds": per.to_dict(),
            "flop_per_s": 2 * n ** 3 / per.median}


def gemm_fractions(rows, rates):
    """For each large network's step: its FLOP rate on each side over NumPy's GEMM rate."""
    out = []
    for row in rows:
        if row["net"] not in LARGE:
            continue
        rate = rates[row["dtype"]]["flop_per_s"]
        entry = {"net": row["net"], "dtype": row["dtype"], "gemm_flop_per_s": rate}
        for side in ("manual", "torch"):
            achieved = row["flops"] / row["seconds_per_step"][side]["median"]
            entry[side] = {"flop_per_s": achieved, "fraction": achieved / rate}
        if "products_per_step" in row:
            achieved = row["flops"] / row["products_per_step"]["median"]
            entry["products"] = {"flop_per_s": achieved, "fraction": achieved / rate}
            entry["best_ratio"], entry["ratio"], entry["ratio_goal"] = row["best_ratio"], row["ratio"], row["goal"]
        if row["net"] == GEMM_GOAL_AT:
            entry["goal"], entry["met"] = GEMM_GOAL, entry["manual"]["fraction"] >= GEMM_GOAL
        out.append(entry)
    return out


CUDA_GOAL = 10.0        # the replayed step's steps/s over the eager step's, at least, at this network
CUDA_GOAL_AT = "784-16-16-10 b10"


def graphed_steps(net, dtype, state, X, Y, device="cuda", momentum=MOMENTUM):
    """The torch step replayed from CUDA graphs (torch_ref.graphs.GraphedStep), the batch gathered on
    the device from its row numbers as ``train`` does; returns (step, the GraphedStep)."""
    dt = torch_ref.as_dtype(dtype)
    model = torch_ref.mlp(net.sizes, net.activation, net.output_activation, dtype=dtype, device=device)
    model.load_state_dict({k: torch.tensor(v, dtype=dt, device=device) for k, v in state.items()})
    loss = torch_ref.make_loss(net.loss)
    opt = torch_ref.make_optimizer("sgd", model.parameters(), lr=LR, momentum=momentum)
    graphed = GraphedStep(model, loss, opt, torch.tensor(X, device=device), torch.tensor(Y, device=device))
    rows = np.arange(net.batch)

    def step():
        graphed.forward_backward(rows)  # the cost comes back to Python every step, as in the eager step
        graphed.step()
    return step, graphed


def measure_cuda(net, dtype, repeats, target, device="cuda"):
    """The torch side alone on a GPU, eager and replayed from CUDA graphs, interleaved: ms per step,
    samples per second, TFLOP/s (wall clock: the GPU's work is not this process's CPU time)."""
    state, X, Y = problem(net, dtype)
    eager = torch_steps(net, dtype, state, X, Y, device=device)
    graph, graphed = graphed_steps(net, dtype, state, X, Y, device=device)
    with clock("wall"):
        for _ in range(3):                  # the graph is captured on the second step
            eager(), graph()
        torch.cuda.synchronize(device)
        start = now()
        eager()
        torch.cuda.synchronize(device)
        count = repeat_count(now() - start, target)

        def timed(step):
            def prepare():
                def work():
                    for _ in range(count):
                        step()
                    torch.cuda.synchronize(device)
                return work
            return prepare
        spreads = interleaved({"eager": timed(eager), "graph": timed(graph)}, repeats, warmup=0)
    per = {k: Spread(v.min / count, v.median / count, v.max / count, v.repeats) for k, v in spreads.items()}
    speedup = ratio(per["eager"].median, per["graph"].median)
    entry = {"net": net.name, "dtype": dtype, "device": str(torch.device(device)),
             "name": torch.cuda.get_device_name(device), "steps_per_run": count,
             "seconds_per_step": {k: v.to_dict() for k, v in per.items()},
             "samples_per_s": {k: net.batch / v.median for k, v in per.items()},
             "tflop_per_s": {k: net.flops / v.median / 1e12 for k, v in per.items()},
             "graph_speedup": speedup, "graph_steps": graphed.describe()}
    if net.name == CUDA_GOAL_AT:
        entry["goal"], entry["met"] = CUDA_GOAL, speedup >= CUDA_GOAL
    return entry
