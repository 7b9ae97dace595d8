"""The time per training step of the convolutional networks of the layers lists, on each side.

The networks are the digits-cnn preset's (two 3x3 convolution-ReLU-max-pool blocks and a linear
layer on the 8x8 digits, batch 64) and the one it becomes on MNIST's 28x28 images (5x5 kernels,
batch 128), each built from its layers list on both sides (compare.network.layers). A step is
what the preset's run asks of each side per batch: zero the gradients, forward, the
cross-entropy on the logits, backward (no dL/dx for the data), the optimizer's step (SGD, so that
the layers' cost is what is timed). Both sides start from the same weights (drawn once, in
NumPy, torch's fans) and train on the same random batch; ``ratio`` is manual time / torch time.
The rounds are interleaved (compare.bench.timing), so a machine that slows down slows both.
"""
from dataclasses import dataclass

import numpy as np
import torch

from backprop_oracle import manual, torch_ref
from backprop_oracle.compare.bench.steps import per_step_times, repeat_count, warm_up
from backprop_oracle.compare.bench.timing import now, ratio
from backprop_oracle.compare.experiments.presets import CNN_LAYERS, MNIST_CNN_LAYERS
from backprop_oracle.compare.network.layers import resolve


@dataclass(frozen=True)
class ConvNet:
    label: str
    layers: tuple
    input_shape: tuple    # one example's, (C, H, W)
    batch: int
    goal: float           # manual time / torch time at most

    @property
    def name(self):
        return f"{self.label} b{self.batch}"


NETS = (
    ConvNet("digits-cnn 8x8", CNN_LAYERS, (1, 8, 8), 64, 3.0),
    ConvNet("digits-cnn 28x28 (MNIST)", MNIST_CNN_LAYERS, (1, 28, 28), 128, 2.0),
)
DTYPES = ("float64", "float32")
CLASSES = 10


def problem(net, dtype, seed=0):
    """(the checked Network, initial state, X (batch, C, H, W), class indices (batch,))."""
    network = resolve(net.layers, net.input_shape, CLASSES)
    rng = np.random.default_rng(seed)
    state = manual.init_parameters(network.manual(dtype), "kaiming_uniform", rng, dtype=dtype)
    X = rng.random((net.batch, *net.input_shape)).astype(dtype)      # pixels in [0, 1], as the data's
    labels = rng.integers(0, CLASSES, net.batch)
    return network, state, X, labels


def manual_step(network, dtype, state, X, labels):
    model = network.manual(dtype)
    model.load_state_dict(state)
    loss = manual.make_loss("cross_entropy")
    opt = manual.make_optimizer("sgd", model.parameters(), lr=0.01)

    def step():
        opt.zero_grad()
        loss(model.forward(X), labels)
        model.backward(loss.backward(), input_grad=False)
        opt.step()
    return step


def torch_step(network, dtype, state, X, labels):
    dt = torch_ref.as_dtype(dtype)
    model = network.torch(torch_ref, dtype)
    model.load_state_dict({k: torch.tensor(v, dtype=dt) for k, v in state.items()})
    loss = torch_ref.make_loss("cross_entropy")
    opt = torch_ref.make_optimizer("sgd", model.parameters(), lr=0.01)
    Xt, yt = torch.tensor(X), torch.tensor(labels)

    def step():
        opt.zero_grad()
        cost = loss(model(Xt), yt)
        cost.backward()
        opt.step()
        cost.item()                 # the cost comes back to Python every step, as in the lockstep
    return step


def measure(net, dtype, repeats, target):
    """One row: Spread of seconds per step for each side, and their ratio (of the medians)."""
    network, state, X, labels = problem(net, dtype)
    m = manual_step(network, dtype, state, X, labels)
    t = torch_step(network, dtype, state, X, labels)
    count = 1
    if target > 0:                                    # (0: one step each, not warmed up: --quick)
        warm_up((m, t), target)                       # first steps: allocations, caches, torch's lazy set-up
        start = now()
        m(), t()
        count = repeat_count((now() - start) / 2, target)
    per_step = per_step_times({"manual": m, "torch": t}, count, repeats)
    r = ratio(per_step["manual"].median, per_step["torch"].median)
    return {"net": net.name, "layers": " ".join(net.layers), "input_shape": list(net.input_shape),
            "batch": net.batch, "dtype": dtype, "parameters": int(sum(v.size for v in state.values())),
            "steps_per_run": count, "seconds_per_step": {k: v.to_dict() for k, v in per_step.items()},
            "ratio": r, "goal": net.goal, "met": r <= net.goal}


def table_lines(rows, repeats, ms, met):
    """The command's table of these rows (``ms`` and ``met`` format as the other tables do)."""
    from backprop_oracle.compare.tables import aligned
    head = ("(h) time per training step of the convolutional networks, ms (the layers lists of digits-cnn; "
            f"zero_grad, forward, cross-entropy, backward, SGD step; {repeats} repeats)")
    out = [["net", "dtype", "manual", "torch", "manual/torch", "goal"]]
    for row in rows:
        sp = row["seconds_per_step"]
        out.append([row["net"], row["dtype"], ms(sp["manual"]), ms(sp["torch"]), f"{row['ratio']:.3g}",
                     f"<= {row['goal']:g} {met(row['met'])}"])
    return [head] + aligned(out, rule=True, indent="  ")
