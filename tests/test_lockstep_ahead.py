"""The torch side run ahead of the manual side, a block of steps at a time (compare.lockstep.blocks,
compare.sides.ahead), gives the run that the two sides stepped alternately give, field for field:
the verdict, the step, node, proof and values of a difference, every drift resynchronised, the
divergence, the maxima, the curves and what the observers receive; a mistake in the middle of a
block is found at its own step; and the torch side set back into a block is, bit for bit, where
the step-by-step run has it."""
import math
from dataclasses import fields, is_dataclass, replace

import numpy as np
import pytest
import torch

from backprop_oracle import manual
from backprop_oracle.compare.experiments.presets import get_preset
from backprop_oracle.compare.experiments.spec import ExperimentSpec
from backprop_oracle.compare.lockstep import blocks
from backprop_oracle.compare.sides.ahead import FORWARD, START, STEPPED, Kept, MaskReplay, TorchAhead
from backprop_oracle.compare.lockstep.run import LockstepRun
from backprop_oracle.compare.sides.sides import ManualSide, dropout_masks, share_masks
from tests import test_cnn_mutations as cnn_mutations
from tests import test_mutations as mutations
from tests.random_data import random_dataset

BLOCK = 7        # steps a block takes in these tests: blocks end inside epochs and run across their ends


@pytest.fixture(autouse=True)
def blocks_of_their_length(monkeypatch):
    """Blocks as long as asked however long they take (on a busy machine a slow block is halved):
    the tests say where a step falls in them."""
    monkeypatch.setattr(blocks, "BLOCK_SECONDS", math.inf)


class Recorder:
    """Every StepRecord and EpochRecord, copied (the flat gradients are valid only during the call);
    it reads the evaluations (``logs``) and nothing of the sides."""
    logs = True

    def __init__(self):
        self.steps, self.epochs = [], []

    def on_step(self, run, record):
        values = {f.name: getattr(record, f.name) for f in fields(record)}
        values["flat_grads_manual"] = record.flat_grads_manual.copy()
        values["flat_grads_torch"] = record.flat_grads_torch.copy()
        self.steps.append(values)

    def on_epoch(self, run, record):
        self.epochs.append({f.name: getattr(record, f.name) for f in fields(record)})

    def reads_sides_at(self, step):
        return False


def outcome(result):
    """Everything a result says, but its time: its JSON, every drift in full and the descriptions."""
    out = result.to_dict()
    out.pop("seconds")
    out["drifts"] = [d.to_dict() for d in result.drifts]
    out["mismatch_text"] = None if result.mismatch is None else result.mismatch.describe()
    out["divergence_text"] = None if result.divergence is None else result.divergence.describe()
    return out


def first_difference(a, b, where="result"):
    """Where two outcomes first differ (NaN equals NaN, an array equals its bit-for-bit copy), or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return f"{where}: keys {sorted(set(a) ^ set(b))}"
        return next((d for k in a if (d := first_difference(a[k], b[k], f"{where}.{k}"))), None)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f"{where}: {len(a)} items against {len(b)}"
        return next((d for i, (x, y) in enumerate(zip(a, b)) if (d := first_difference(x, y, f"{where}[{i}]"))), None)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        same = np.array_equal(a, b, equal_nan=True) and np.asarray(a).dtype == np.asarray(b).dtype
        return None if same else f"{where}: arrays differ"
    if type(a) is not type(b):
        return f"{where}: {type(a).__name__} {a!r} against {type(b).__name__} {b!r}"
    if a != b and not (isinstance(a, float) and math.isnan(a) and math.isnan(b)):
        return f"{where}: {a!r} step by step, {b!r} ahead"
    return None


def both_ways(spec, dataset=None, side=None, block=BLOCK):
    """The run step by step and with the torch side ahead in blocks of ``block`` steps: asserts
    every outcome and every record is the same; returns (step-by-step result, ahead run, result).
    ``side``: a function making the manual side class (a fresh one for each run)."""
    runs = []
    for steps in (1, block):
        recorder = Recorder()
        run = LockstepRun(spec, dataset=dataset, manual_side=side() if side else None, observers=[recorder],
                          block_steps=steps)
        runs.append((run, run.run(), recorder))
    (_, alone, a), (ahead, result, b) = runs
    difference = first_difference((outcome(alone), a.steps, a.epochs), (outcome(result), b.steps, b.epochs))
    assert difference is None, difference
    return alone, ahead, result


def assert_blocks(run):
    assert run.plan.blocks > 0, "the torch side never ran ahead: this compared nothing new"


def inside_a_block(run, step):
    """True when ``step`` was in a block the torch side ran ahead through, and not its first step."""
    started = [s for s in run.plan.starts if s <= step]
    return bool(started) and started[-1] < step and not run.plan.early


# ---- the planted mistakes of the mutation tests -----------------------------------------------------

@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(mutations.MUTATIONS))
def test_each_planted_mistake_gets_the_same_verdict_ahead(name, dtype, monkeypatch):
    mutation = mutations.MUTATIONS[name]
    spec = replace(mutations.BASE, dtype=dtype, **{"epochs": 3, **mutation.spec})
    monkeypatch.setattr(mutation.target, mutation.method, mutation.body)
    alone, run, _ = both_ways(spec, random_dataset(seed=5, **mutation.data))
    assert not alone.passed and alone.mismatch.node == mutation.node, alone.mismatch.describe()
    assert_blocks(run)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(cnn_mutations.MUTATIONS))
def test_each_planted_mistake_in_a_layer_gets_the_same_verdict_ahead(name, dtype, monkeypatch):
    # batch norm, dropout, pooling and convolutions, two steps a run
    mutation = cnn_mutations.MUTATIONS[name]
    for target, attribute, body in ((mutation.target, mutation.attribute, mutation.body), *mutation.extra):
        monkeypatch.setattr(target, attribute, body)
    alone, run, _ = both_ways(cnn_mutations.spec_for(mutation.layers, dtype), cnn_mutations.DIGITS)
    assert not alone.passed and alone.mismatch.node == mutation.node, alone.mismatch.describe()
    assert_blocks(run)


# ---- correct sides: drifts resynchronised, dropout, batch norm, divergence, schedules ----------------

SINE32 = ExperimentSpec(dataset="sine", hidden_sizes=(16,), activation="tanh", output_activation="identity",
                        loss="mse", optimizer="sgd", lr=0.1, optimizer_args={"momentum": 0.9},
                        batch_size=32, epochs=100, seed=0, dtype="float32")


def preset(name, label="", **overrides):
    return replace(get_preset(name).runs[label], **overrides)


@pytest.mark.parametrize("spec", [
    pytest.param(SINE32, id="sine float32 (drifts)"),
    pytest.param(preset("regression", dtype="float32"), id="regression float32 (a drift)"),
    pytest.param(preset("dropout", "without", dtype="float32"), id="dropout:without float32 (drifts)"),
    pytest.param(preset("dropout", "with", dtype="float32"), id="dropout:with float32 (a drift)"),
    pytest.param(preset("dropout", "with", epochs=40), id="dropout:with"),
    pytest.param(preset("batchnorm", "with", epochs=10), id="batchnorm:with"),
    pytest.param(preset("batchnorm", "with", epochs=10, dtype="float32"), id="batchnorm:with float32"),
    pytest.param(preset("digits", epochs=3), id="digits"),
    pytest.param(preset("or-gate", epochs=300), id="or-gate (an epoch a step)"),
    pytest.param(preset("moons", epochs=4), id="moons (momentum, exponential schedule)"),
    pytest.param(preset("optimizers", "adam"), id="adam"),
    pytest.param(preset("learning-rate", "too-large"), id="both sides diverge"),
    pytest.param(replace(SINE32, dtype="float64", schedule="onecycle", schedule_args={"max_lr": 0.2}, epochs=6),
                 id="onecycle, a schedule stepped every step"),
    pytest.param(replace(SINE32, dtype="float64", schedule="step", schedule_args={"step_size": 2, "gamma": 0.5},
                         epochs=7, batch_size=50), id="step schedule"),
])
def test_a_run_ahead_is_the_run_step_by_step(spec):
    alone, run, _ = both_ways(spec)
    assert_blocks(run)


def test_a_drift_inside_a_block_is_resynchronised_at_its_own_step():
    alone, run, result = both_ways(SINE32, block=10)
    assert [d.step for d in alone.drifts] == [259], "the float32 sine run drifts once, at step 259"
    assert alone.drifts[0].stage == "drift" and result.drifts[0].step == 259
    assert run.plan.early == 1, "the resync, in the middle of a block of 10, ends it there"


def test_a_run_with_float32_amplified_rounding_is_the_same_ahead():
    from tests.test_verdicts import saturated_tanh_spec
    alone, run, _ = both_ways(replace(saturated_tanh_spec(), epochs=4), random_dataset(0, n=32, features=3))
    assert any(d.stage == "amplified" for d in alone.drifts), [d.describe() for d in alone.drifts]


def test_one_side_diverging_is_the_same_difference_ahead():
    class Exploding(ManualSide):
        """The manual side's cost is infinite at the first step of the third epoch whose batch
        holds example 3: one side diverging is a difference, localised like any other."""
        def forward_backward(self, idx):
            cost = super().forward_backward(idx)
            return math.inf if self.scheduler.last_epoch >= 2 and 3 in idx else cost
    alone, run, result = both_ways(preset("moons", epochs=4), side=lambda: Exploding)
    assert not alone.passed and alone.mismatch.step > 26 and alone.mismatch.epoch == 3, alone.mismatch.describe()
    assert_blocks(run)


# ---- a mistake in the middle of a block ---------------------------------------------------------------

def wrong_from(spec, step):
    """A manual side whose gradients are 1% too large from step ``step`` on, where the first example
    of that step's batch comes again: a mistake that depends on the data and on the schedule's
    count of epochs only, state that the sides are set back with."""
    run = LockstepRun(spec, block_steps=1)
    steps = [(epoch, idx) for epoch in range(1, spec.epochs + 1) for idx in run.batches()]
    epoch, batch = steps[step - 1]
    example = int(batch[0])

    class Side(ManualSide):
        def forward_backward(self, idx):
            cost = super().forward_backward(idx)
            if self.scheduler.last_epoch >= epoch - 1 and example in idx:
                self._flat_grad *= 1.01
            return cost
    return lambda: Side


@pytest.mark.parametrize("step", [12, 14, 24], ids=["mid-block", "after an epoch's end in its block", "later"])
def test_a_mistake_in_the_middle_of_a_block_is_found_at_its_step(step):
    spec = preset("moons", epochs=3)             # 13 steps an epoch, an exponential schedule, momentum
    alone, run, result = both_ways(spec, side=wrong_from(spec, step))
    assert not alone.passed and result.mismatch.step == alone.mismatch.step == step, result.mismatch.describe()
    assert inside_a_block(run, step)


def test_a_mistake_that_a_count_of_calls_brings_is_found_at_its_step():
    """The manual side is never run twice over a step: a side whose mistake comes with the
    number of calls made to it gets the step-by-step verdict."""
    def late():
        calls = {"n": 0}

        def backward(self, g):
            calls["n"] += 1
            return g * self.a * (1 - self.a) * (1.5 if calls["n"] > 9 else 1.0)    # from step 5
        Wrong = type("LateSigmoid", (manual.Sigmoid,), {"backward": backward})

        class Side(ManualSide):
            def __init__(self, spec, sizes, state):
                super().__init__(spec, sizes, state)
                for i, m in enumerate(self.model.modules):
                    if type(m) is manual.Sigmoid:
                        self.model.modules[i] = Wrong.__new__(Wrong)
                        self.model.modules[i].__dict__.update(m.__dict__)
        return Side
    spec = ExperimentSpec(dataset="xor", hidden_sizes=(3,), activation="sigmoid", output_activation="sigmoid",
                          loss="squared_error", optimizer="sgd", lr=0.5, epochs=20, seed=1)
    alone, run, result = both_ways(spec, side=late)
    assert result.mismatch.stage == "backward" and result.mismatch.step == 5 == alone.mismatch.step
    assert inside_a_block(run, 5)


def test_a_schedule_mistake_in_a_block_is_found_at_its_epoch():
    mutation = mutations.MUTATIONS[next(k for k, m in mutations.MUTATIONS.items() if m.node == "schedule")]
    spec = replace(mutations.BASE, **{"epochs": 4, **mutation.spec})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mutation.target, mutation.method, mutation.body)
        alone, run, result = both_ways(spec, random_dataset(seed=5, **mutation.data), block=7)
    assert result.mismatch.node == "schedule" and result.mismatch.step > 1, result.mismatch.describe()
    assert_blocks(run)


# ---- observers ---------------------------------------------------------------------------------------

class LiveReader:
    """Reads the torch side's parameters in on_step at the steps it names (``reads_sides_at``)."""
    logs = False

    def __init__(self, steps):
        self.at, self.seen = set(steps), {}

    def reads_sides_at(self, step):
        return step in self.at

    def on_step(self, run, record):
        if record.step in self.at:
            self.seen[record.step] = run.torch.flat_params().copy()


def test_an_observer_reads_the_torch_side_as_step_by_step_at_the_steps_it_names():
    spec = preset("digits", epochs=2)
    seen = []
    for steps in (1, BLOCK):
        reader = LiveReader([3, 17, 45, 46, 90])
        run = LockstepRun(spec, observers=[reader], block_steps=steps)
        run.run()
        seen.append(reader.seen)
    assert sorted(seen[0]) == sorted(seen[1]) == [3, 17, 45, 46, 90]
    for step in seen[0]:
        assert np.array_equal(seen[0][step], seen[1][step]), f"step {step}: the torch side's parameters differ"
    assert run.plan.blocks > 0


def test_an_observer_that_says_nothing_of_what_it_reads_gets_the_sides_at_every_step():
    class Undeclared:
        def on_step(self, run, record):
            pass
    run = LockstepRun(preset("digits", epochs=1), observers=[Undeclared()])
    run.run()
    assert run.plan.blocks == 0


def test_a_checkpoint_saver_gets_the_sides_at_every_epoch_end(tmp_path):
    from backprop_oracle.compare.checkpoints import Saver
    ends = []

    class Ends:
        def on_epoch(self, run, record):
            ends.append(record.step)

        def reads_sides_at(self, step):
            return False
    run = LockstepRun(preset("digits", epochs=3), observers=[Saver(tmp_path / "c.npz", every=1), Ends()],
                      block_steps=64)
    run.run()
    assert run.plan.blocks > 0 and run.plan.blocks >= len(ends)
    spec = preset("digits", epochs=3)
    straight = LockstepRun(spec, block_steps=1)
    straight.run()
    from backprop_oracle.compare.checkpoints.files import load_checkpoint
    saved = load_checkpoint(str(tmp_path / "c.npz"))
    assert np.array_equal(saved.torch["model"]["0.weight"].numpy(), straight.torch.params()["0.weight"])


def plain(x):
    """A checkpoint's contents as dicts, lists and arrays (tensors as their arrays, dtype kept)."""
    if isinstance(x, torch.Tensor):
        return x.numpy()
    if is_dataclass(x):
        return {f.name: plain(getattr(x, f.name)) for f in fields(x)}
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    return x


def saved_run(spec, tmp_path, monkeypatch, block_steps, every, resume=None):
    """The run with a Saver (every ``every`` epochs) in blocks of ``block_steps``: (run, {epoch: what the
    checkpoint written at its end holds, read back from its file}). Each write goes to a file of its own."""
    from backprop_oracle.compare.checkpoints import Saver, load_checkpoint, resume as saving
    folder = tmp_path / f"blocks-{block_steps}-{resume is not None}"
    folder.mkdir()
    written, real = {}, saving.write_checkpoint

    def write_each(path, checkpoint):
        written[checkpoint.progress.epoch] = own = str(folder / f"epoch-{checkpoint.progress.epoch}.npz")
        real(own, checkpoint)
    with monkeypatch.context() as patch:
        patch.setattr(saving, "write_checkpoint", write_each)
        run = LockstepRun(spec, observers=[Saver(folder / "c.npz", every=every)], block_steps=block_steps,
                          resume=resume)
        run.run()
    return run, {epoch: dict(plain(load_checkpoint(path)), path=None) for epoch, path in written.items()}


@pytest.mark.parametrize("spec, every", [
    pytest.param(preset("moons", epochs=6), 2, id="moons (momentum, exponential schedule), every 2 epochs"),
    pytest.param(preset("dropout", "with", epochs=6), 4, id="dropout (its masks' Generator), every 4"),
    pytest.param(preset("batchnorm", "with", epochs=4), 3, id="batch norm (running statistics), every 3"),
    pytest.param(preset("or-gate", epochs=20), 5, id="or-gate (an epoch a step), every 5"),
])
def test_a_run_saved_in_blocks_writes_the_checkpoints_of_the_run_step_by_step(spec, every, tmp_path, monkeypatch):
    _, alone = saved_run(spec, tmp_path, monkeypatch, 1, every)
    run, ahead = saved_run(spec, tmp_path, monkeypatch, BLOCK, every)
    assert sorted(alone) == sorted(ahead) == sorted({*range(every, spec.epochs + 1, every), spec.epochs})
    for epoch in alone:
        difference = first_difference(alone[epoch], ahead[epoch], f"checkpoint of epoch {epoch}")
        assert difference is None, difference
    assert_blocks(run)


def test_saving_ends_the_blocks_only_at_the_saved_epochs():
    """The OR gate's epochs are one step each: saved every 5 epochs, the run goes in blocks of 5
    steps, each ending at a save (it went step by step when saving ended a block at every epoch)."""
    from backprop_oracle.compare.checkpoints import Saver
    spec = preset("or-gate", epochs=20)
    written = []

    class Saves(Saver):
        def on_epoch_done(self, run, progress):
            if self.saves_at(progress.epoch, run.spec.epochs):
                written.append((progress.step, run.plan.starts[-1]))
    run = LockstepRun(spec, observers=[Saves("unused.npz", every=5)])
    run.run()
    assert run.plan.starts == [1, 6, 11, 16] and run.plan.early == 0, (run.plan.starts, run.plan.early)
    assert written == [(5, 1), (10, 6), (15, 11), (20, 16)], written


def test_a_resumed_run_saved_in_blocks_writes_the_checkpoints_of_the_run_step_by_step(tmp_path, monkeypatch):
    """Resumed at the end of epoch 4 (step 52 of moons' 13-step epochs), saved every 3 epochs: 6 and 9."""
    from backprop_oracle.compare.checkpoints import Saver, load_checkpoint
    LockstepRun(preset("moons", epochs=4), observers=[Saver(tmp_path / "four.npz")], block_steps=1).run()
    runs = []
    for steps in (1, BLOCK):
        runs.append(saved_run(preset("moons", epochs=9), tmp_path, monkeypatch, steps, 3,
                              resume=load_checkpoint(tmp_path / "four.npz")))
    (_, alone), (run, ahead) = runs
    assert sorted(alone) == sorted(ahead) == [6, 9]
    for epoch in alone:
        difference = first_difference(alone[epoch], ahead[epoch], f"checkpoint of epoch {epoch}")
        assert difference is None, difference
    assert_blocks(run)
    assert run.plan.starts[0] == 53

def test_tensorboard_logs_the_same_ahead(tmp_path):
    from backprop_oracle.compare.dashboards.tensorboard import TensorBoardLogger
    from tests.test_tensorboard import accumulator
    spec = preset("moons", epochs=6)
    logged = []
    for steps in (1, BLOCK):
        logger = TensorBoardLogger(str(tmp_path / str(steps)), "moons", histograms=7, snapshots=4)
        run = LockstepRun(spec, name="moons", observers=[logger], block_steps=steps)
        run.run()
        acc = accumulator(logger.run_dir)
        tags = acc.Tags()
        logged.append({
            "scalars": {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in tags["scalars"]},
            "tensors": {t: [(e.step, e.tensor_proto.SerializeToString()) for e in acc.Tensors(t)]
                        for t in tags["tensors"] if t.startswith("exact/")},
            "histograms": {t: [(e.step, tuple(e.histogram_value.bucket), e.histogram_value.sum)
                               for e in acc.Histograms(t)] for t in tags["histograms"]},
            "images": {t: [e.step for e in acc.Images(t)] for t in tags["images"]}})
    assert run.plan.blocks > 0
    for kind in logged[0]:
        assert logged[0][kind] == logged[1][kind], f"the {kind} differ"


# ---- the torch side set back into a block ------------------------------------------------------------

def bn_dropout(schedule="onecycle", **arguments):
    """Batch norm, dropout, Adam and a schedule: everything a torch side keeps that a step changes."""
    return ExperimentSpec(dataset="moons", dataset_args={"n_samples": 90}, layers=(
        "linear(12)", "batchnorm", "relu", "dropout(0.3)", "linear(1)", "sigmoid"), loss="bce", optimizer="adam",
        lr=0.05, schedule=schedule, schedule_args=arguments, epochs=3, batch_size=16, seed=4)


SCHEDULES = [pytest.param(bn_dropout("onecycle", max_lr=0.05), id="onecycle (every step)"),
             pytest.param(bn_dropout("exponential", gamma=0.7), id="exponential (every epoch)")]


def torch_state(side):
    """Everything of a torch side that its steps change, as plain values to compare bit for bit."""
    out = {"params": side.flat_params().copy(), "grads": side.flat_grads().copy(), "lr": side.lr,
           "stepped_with": dict(side.stepped_with)}
    out["buffers"] = {n: b.clone() for n, b in side.model.named_buffers()}
    out["optimizer"] = [{k: (v.clone() if isinstance(v, torch.Tensor) else v)
                         for k, v in side.optimizer.state[p].items()} for p in side.model.parameters()]
    out["groups"] = [{k: v for k, v in g.items() if k != "params"} for g in side.optimizer.param_groups]
    out["scheduler"] = side.scheduler.state_dict()
    return out


def assert_same_state(a, b, where):
    def same(x, y):
        if isinstance(x, torch.Tensor):
            return torch.equal(x, y) and x.dtype == y.dtype
        if isinstance(x, np.ndarray):
            return np.array_equal(x, y)
        if isinstance(x, dict):
            return set(x) == set(y) and all(same(x[k], y[k]) for k in x)
        if isinstance(x, list):
            return len(x) == len(y) and all(same(u, v) for u, v in zip(x, y))
        return x == y
    for key in a:
        assert same(a[key], b[key]), f"{where}: the torch side's {key} differ"


def torch_side(spec):
    """A lockstep run's torch side with a mask stream of its own (the same masks for every one)."""
    run = LockstepRun(spec, block_steps=1)
    share_masks(dropout_masks(spec, ("torch",)), run.torch)
    return run, run.torch


def steps_of(run, epochs=2, count=9):
    steps = []
    for epoch in range(1, epochs + 1):
        batches = run.batches()
        steps += [(epoch, idx, j == len(batches) - 1) for j, idx in enumerate(batches)]
    return steps[:count]


@pytest.mark.parametrize("spec", SCHEDULES)
def test_snapshot_and_restore_set_the_torch_side_back_bit_for_bit(spec):
    spec = replace(spec, layers=tuple(x for x in spec.layers if not x.startswith("dropout")))
    run, side = torch_side(spec)
    steps = steps_of(run)
    side.forward_backward(steps[0][1])
    side.step()                         # Adam's moments, onecycle's momentum, running statistics exist
    saved, before = side.snapshot(), torch_state(side)

    def go():
        costs = []
        for _, idx, ends in steps[1:]:
            costs.append(side.forward_backward(idx))
            side.step()
            if ends:
                side.end_epoch()
        return costs, torch_state(side)
    costs, after = go()
    assert not np.array_equal(after["params"], before["params"]) and after["lr"] != before["lr"]
    side.restore(saved)
    assert_same_state(before, torch_state(side), "restored")
    again, after_again = go()
    assert again == costs, "the same steps from the restored side give other costs"
    assert_same_state(after, after_again, "the same steps again")
    side.restore(saved)                  # a snapshot restores more than once
    assert_same_state(before, torch_state(side), "restored twice")


@pytest.mark.parametrize("spec", SCHEDULES)
@pytest.mark.parametrize("at", [START, FORWARD, STEPPED], ids=["before the forward", "after it", "after the step"])
def test_the_torch_side_set_back_to_a_step_of_a_block_is_where_step_by_step_has_it(at, spec):
    """Each step of a 9-step block that runs across an epoch's end (and a network with batch norm,
    dropout, Adam and onecycle): the torch side run ahead through the block and set back there has
    every number the torch side stepped alone to that point has, and takes the same next mask."""
    run, _ = torch_side(spec)
    steps = steps_of(run)
    assert any(ends for _, _, ends in steps[:-1]), "the block should cross an epoch's end"
    for row in range(len(steps)):
        _, side = torch_side(spec)
        with MaskReplay(side).installed() as masks:
            ahead = TorchAhead(side, steps, Kept(len(steps), side.flat_params().size), masks)
            assert ahead.filled == len(steps)
            _, twin = torch_side(spec)
            for j, (_, idx, ends) in enumerate(steps[:row + 1]):
                if j == row and at == START:
                    break
                twin.forward_backward(idx)
                if j == row and at == FORWARD:
                    break
                twin.step()
                if ends and j < row:
                    twin.end_epoch()
            ahead.begin(row)
            ahead.at = at
            live = ahead.here()
            assert_same_state(torch_state(twin), torch_state(live), f"step {row + 1} of the block")
            if row + 1 == len(steps):
                continue
            # the rest of this step and the next forward: the same numbers, so the same masks
            for s in (twin, live):
                if at == START:
                    s.forward_backward(steps[row][1])
                if at != STEPPED:
                    s.step()
                if steps[row][2]:
                    s.end_epoch()
            want, got = twin.forward_backward(steps[row + 1][1]), live.forward_backward(steps[row + 1][1])
            assert want == got, f"step {row + 2}: cost {got} after setting back, {want} step by step"
            assert np.array_equal(twin.flat_grads(), live.flat_grads()), f"step {row + 2}: gradients"
