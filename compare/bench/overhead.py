"""What the lockstep costs on top of its two sides: a lockstep run of a preset against the same
spec trained separately, ``manual.fit`` then ``torch_ref.fit``, overhead = lockstep time /
(manual time + torch time).

The comparison is fair: each fit does the work its side does in the lockstep and nothing more.
The same prepared data (the same arrays, on the torch side copied once to tensors before the
timing, as the lockstep's torch side does), the same initial weights, optimizer, schedule, batch
size, shuffling and number of steps; no evaluation between epochs (the lockstep evaluates only for
an observer that reads it, and the bench has none); and, as the lockstep reports them at the end,
the final parameters' cost and accuracy on the training and validation data. Only the work is
timed on both sides: building the models and loading the data happen before the clock starts.
What is left in the ratio is what the lockstep adds: reading and comparing every gradient, the
cost and every parameter at every step, keeping what a proof would need, and running the two
sides in turn, a block of steps each (compare.lockstep.blocks), rather than one after the other
(a side then starts each block with the processor's caches filled by the other's). A ratio of 1
is the floor.
"""
from dataclasses import replace

import numpy as np
import torch

from backprop_oracle import manual
from backprop_oracle import torch_ref
from backprop_oracle.compare.bench.timing import interleaved, ratio
from backprop_oracle.compare.data.datasets import load_dataset
from backprop_oracle.compare.data.targets import accuracy
from backprop_oracle.compare.experiments.presets import get_preset
from backprop_oracle.compare.experiments.setup import decision_threshold, initial_state, prepare
from backprop_oracle.compare.lockstep.run import LockstepRun

PRESETS = ("or-gate", "digits", "moons")
GOAL = 1.25          # lockstep time / (manual.fit + torch_ref.fit) time
API_PRESET = "moons"
API_GOAL = 1.10      # run_lockstep from Python / the command line's run of the same spec


def preset_spec(name, epochs=None):
    """The spec of a one-run preset, with fewer epochs when given (a quick measurement)."""
    spec = get_preset(name).runs[""]
    return spec if epochs is None else replace(spec, epochs=min(epochs, spec.epochs))


def contenders(spec):
    """({"lockstep", "manual.fit", "torch_ref.fit": prepare()} for ``interleaved``, the number of
    training examples): each prepare builds its models from the same initial weights and returns
    the training to time."""
    dataset = load_dataset(spec.dataset, seed=spec.seed, **spec.dataset_args)
    problem = prepare(spec, dataset)
    state = initial_state(spec, problem.sizes, np.random.default_rng(spec.seed))
    fit_args = dict(epochs=spec.epochs, batch_size=spec.batch_size, seed=spec.seed, shuffle=spec.shuffle)

    splits = [(problem.X, problem.Y, problem.labels)]
    if problem.X_val is not None:
        splits.append((problem.X_val, problem.Y_val, problem.labels_val))
    threshold = decision_threshold(spec.loss)

    def final(outputs, labels):
        """The accuracy the lockstep's result gives of a side's outputs on a whole split."""
        if labels is not None and problem.task != "regression":
            accuracy(outputs, labels, problem.task, threshold=threshold)

    def lockstep():
        return LockstepRun(spec, dataset=dataset).run

    def manual_fit():
        model = manual.mlp(problem.sizes, spec.activation, spec.output_activation, dtype=spec.dtype)
        model.load_state_dict(state)
        opt = manual.make_optimizer(spec.optimizer, model.parameters(), lr=spec.lr, **spec.optimizer_args)
        sched = manual.make_scheduler(spec.schedule, opt, **spec.schedule_args)
        loss = manual.make_loss(spec.loss)

        def work():
            manual.fit(model, spec.loss, opt, problem.X, problem.Y, scheduler=sched, **fit_args)
            model.eval()
            for X, Y, labels in splits:
                out = model.forward(X)
                float(loss(out, Y))
                final(np.asarray(out, dtype=np.float64), labels)
            model.train()
        return work

    def torch_fit():
        dt = torch_ref.as_dtype(spec.dtype)
        model = torch_ref.mlp(problem.sizes, spec.activation, spec.output_activation, dtype=spec.dtype)
        model.load_state_dict({k: torch.tensor(v, dtype=dt) for k, v in state.items()})
        opt = torch_ref.make_optimizer(spec.optimizer, model.parameters(), lr=spec.lr, **spec.optimizer_args)
        sched = torch_ref.make_scheduler(spec.schedule, opt, **spec.schedule_args)
        loss = torch_ref.make_loss(spec.loss)
        tensors = [(torch.tensor(X, dtype=dt), targets(Y, dt), labels) for X, Y, labels in splits]

        def work():
            (X, Y, _), *_ = tensors
            torch_ref.fit(model, spec.loss, opt, X, Y, scheduler=sched, **fit_args)
            model.eval()
            with torch.no_grad():
                for X, Y, labels in tensors:
                    out = model(X)
                    loss(out, Y).item()
                    final(out.detach().to("cpu", torch.float64, copy=True).numpy(), labels)
            model.train()
        return work

    return {"lockstep": lockstep, "manual.fit": manual_fit, "torch_ref.fit": torch_fit}, problem.X.shape[0]


def targets(Y, dtype):
    """Y as the lockstep's torch side holds it: class indices as int64, anything else in ``dtype``."""
    return torch.tensor(Y, dtype=torch.int64 if np.issubdtype(Y.dtype, np.integer) else dtype)


def steps_of(spec, n_train):
    per_epoch = 1 if spec.batch_size is None else -(-n_train // spec.batch_size)
    return per_epoch * spec.epochs


def measure_overhead(name, repeats=3, epochs=None, warmup=1):
    """The overhead of one preset: times (Spread of seconds per run), steps, ratio and goal."""
    spec = preset_spec(name, epochs)
    found, n_train = contenders(spec)
    times = interleaved(found, repeats, warmup=warmup)
    separate = times["manual.fit"].median + times["torch_ref.fit"].median
    return {"preset": name, "epochs": spec.epochs, "steps": steps_of(spec, n_train),
            "seconds": {k: v.to_dict() for k, v in times.items()},
            "ratio": ratio(times["lockstep"].median, separate), "goal": GOAL,
            "met": ratio(times["lockstep"].median, separate) <= GOAL}


def measure_api(cli_run, name=API_PRESET, repeats=3, epochs=None, warmup=1):
    """``run_lockstep(spec)`` from Python against the command line's own runner (``cli_run(name,
    spec)``, which the bench command passes in) on the same preset, both called with the caller's
    thread settings as they are: each chooses its own, and the goal is that they choose alike."""
    from backprop_oracle.compare.lockstep.run import run_lockstep
    spec = preset_spec(name, epochs)
    times = interleaved({"run_lockstep": lambda: (lambda: run_lockstep(spec, progress=False)),
                         "command line": lambda: (lambda: cli_run(name, spec))}, repeats, warmup=warmup)
    r = ratio(times["run_lockstep"].median, times["command line"].median)
    return {"preset": name, "epochs": spec.epochs, "seconds": {k: v.to_dict() for k, v in times.items()},
            "ratio": r, "goal": API_GOAL, "met": r <= API_GOAL}
