"""Checkpoints (``--save``, ``--save-every``, ``--resume``, ``convert``): a run saved after 10 epochs
and resumed for 10 more is the run of 20, bit for bit, on both sides and in its report; saves are
atomic; a damaged, foreign or code-bearing file is refused in one line and never runs code; either
side's checkpoint loads into the other with the same predictions."""
import json
import os

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util import tensor_util

import backprop_oracle.compare.files
from backprop_oracle import manual, torch_ref
from backprop_oracle.compare.cli import main
from backprop_oracle.compare.cli.runner import single_threaded
from backprop_oracle.compare.experiments.presets import get_preset
from backprop_oracle.compare.checkpoints import Saver, load_checkpoint, resume as ckpt_resume
from backprop_oracle.compare.checkpoints.files import FORMAT
from backprop_oracle.compare.lockstep.run import LockstepRun
from backprop_oracle.compare.experiments.setup import prepare
from backprop_oracle.compare.verdict.tolerances import Tolerance
from tests.helpers import assert_close

# moons: shuffled mini-batches, SGD with momentum 0.9 and an exponential schedule; every piece of
# state a resume needs (batch order, momentum buffers, the annealed rate) shows in 10 epochs.
PRESET = "moons"


def cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def report(path):
    (r,) = json.loads(path.read_text())["runs"]
    return r


def assert_same_report(straight, resumed, ignore=("seconds", "extra", "logdir")):
    for key in straight:
        if key not in ignore:
            assert straight[key] == resumed[key], f"{key}: straight {straight[key]!r}, resumed {resumed[key]!r}"


def assert_same_state(a, b):
    """Two checkpoints hold the same numbers, bit for bit, on every side they both hold."""
    for side in ("manual", "torch"):
        x, y = getattr(a, side), getattr(b, side)
        if x is None or y is None:
            continue
        params_x = x["params"] if side == "manual" else x["model"]
        params_y = y["params"] if side == "manual" else y["model"]
        for name in params_x:
            vx, vy = np.asarray(params_x[name]), np.asarray(params_y[name])
            assert np.array_equal(vx, vy), f"{side} {name}: max |diff| {np.abs(vx - vy).max():.3g}, expected 0"


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """The run of 20 epochs, uninterrupted, with its report and checkpoint."""
    d = tmp_path_factory.mktemp("straight")
    code = main(["run", PRESET, "--epochs", "20", "--quiet", "--no-tensorboard", "--json", str(d / "r.json"),
                 "--save", str(d / "end.npz")])
    assert code == 0
    return d


def test_ten_and_ten_epochs_are_twenty(tmp_path, capsys, straight_run):
    code, out, err = cli(capsys, "run", PRESET, "--epochs", "10", "--quiet", "--no-tensorboard",
                         "--save", str(tmp_path / "half.npz"))
    assert code == 0 and "saved epoch 10 (step 130)" in err, err
    code, out, err = cli(capsys, "run", PRESET, "--epochs", "20", "--quiet", "--logdir", str(tmp_path / "runs"),
                         "--resume", str(tmp_path / "half.npz"), "--save", str(tmp_path / "end.npz"),
                         "--json", str(tmp_path / "r.json"))
    assert code == 0, err
    straight, resumed = report(straight_run / "r.json"), report(tmp_path / "r.json")
    assert resumed["steps"] == 260 and len(resumed["step_cost_manual"]) == 260
    assert_same_report(straight, resumed)
    assert resumed["extra"]["resumed"] == {"from": str(tmp_path / "half.npz"), "step": 130, "epoch": 10,
                                           "compared_before": True}
    a, b = load_checkpoint(straight_run / "end.npz"), load_checkpoint(tmp_path / "end.npz")
    assert a.torch is not None and b.torch is not None, "a lockstep checkpoint holds the torch side's own state"
    assert_same_state(a, b)
    assert a.rng_state == b.rng_state and a.progress.maxima == b.progress.maxima

    # TensorBoard: the resumed run's curves go on at step 131, with the straight run's numbers
    # (the exact/ tensors are the report's float64 costs, bit for bit).
    (run_dir,) = [d for d, _, files in os.walk(tmp_path / "runs") if any(f.startswith("events.") for f in files)]
    acc = EventAccumulator(run_dir, size_guidance={"tensors": 0, "histograms": 0})
    acc.Reload()
    for side in ("manual", "torch"):
        rest = {e.step: tensor_util.make_ndarray(e.tensor_proto).item() for e in acc.Tensors(f"exact/step/cost/{side}")}
        assert sorted(rest) == list(range(131, 261)), f"{side}: resumed steps {min(rest)}..{max(rest)}, expected 131..260"
        for s, cost in rest.items():
            assert cost == straight[f"step_cost_{side}"][s - 1], \
                f"{side} step {s}: resumed cost {cost!r}, straight {straight[f'step_cost_{side}'][s - 1]!r}"
        first = min(e.step for e in acc.Histograms(f"weights/0.weight/{side}"))
        assert first == 130, f"{side}: the resumed run's first histogram is at the step it resumed at, 130, not {first}"


def test_train_resumes_adam_exactly(tmp_path, capsys):
    common = ["train", PRESET, "--optimizer", "adam", "--dtype", "float64", "--device", "cpu", "--quiet",
              "--no-tensorboard"]
    assert main([*common, "--epochs", "20", "--json", str(tmp_path / "s.json"), "--save", str(tmp_path / "s.pt")]) == 0
    assert main([*common, "--epochs", "10", "--save", str(tmp_path / "half.pt")]) == 0
    code, out, err = cli(capsys, *common, "--epochs", "20", "--resume", str(tmp_path / "half.pt"),
                         "--json", str(tmp_path / "r.json"), "--save", str(tmp_path / "r.pt"))
    assert code == 0, err
    assert_same_report(report(tmp_path / "s.json"), report(tmp_path / "r.json"))
    a, b = load_checkpoint(tmp_path / "s.pt"), load_checkpoint(tmp_path / "r.pt")
    assert_same_state(a, b)
    for i, state in a.torch["optimizer"]["state"].items():
        for key, value in state.items():
            other = b.torch["optimizer"]["state"][i][key]
            assert torch.equal(value, other), f"Adam state {i} {key} differs after the resume"
    assert a.torch["scheduler"] == b.torch["scheduler"]


def test_save_every_writes_at_those_epochs(tmp_path, monkeypatch):
    written = []
    real = ckpt_resume.write_checkpoint
    monkeypatch.setattr(ckpt_resume, "write_checkpoint", lambda path, c: (written.append(c.progress.epoch), real(path, c)))
    spec = get_preset(PRESET).runs[""].with_overrides(epochs=10)
    with single_threaded():
        LockstepRun(spec, observers=[Saver(tmp_path / "c.npz", every=4)]).run()
    assert written == [4, 8, 10], written
    assert load_checkpoint(tmp_path / "c.npz").progress.epoch == 10


def test_a_crash_during_a_save_keeps_the_previous_file(tmp_path, monkeypatch):
    spec = get_preset(PRESET).runs[""].with_overrides(epochs=1)
    with single_threaded():
        LockstepRun(spec, observers=[Saver(tmp_path / "c.npz")]).run()
    before = (tmp_path / "c.npz").read_bytes()

    def crash(src, dst):
        raise KeyboardInterrupt          # killed between writing the new file and putting it in place
    monkeypatch.setattr(backprop_oracle.compare.files.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt), single_threaded():
        LockstepRun(spec.with_overrides(epochs=2), observers=[Saver(tmp_path / "c.npz")]).run()
    assert (tmp_path / "c.npz").read_bytes() == before, "the previous checkpoint was damaged"
    assert sorted(os.listdir(tmp_path)) == ["c.npz"], "a temporary file was left behind"


class WritesMarker:
    """Unpickled, this creates a file: the proof that a loader ran code from the checkpoint."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("saved")
    assert main(["run", PRESET, "--epochs", "2", "--quiet", "--no-tensorboard", "--save", str(d / "c.npz")]) == 0
    assert main(["train", PRESET, "--epochs", "2", "--quiet", "--no-tensorboard", "--dtype", "float64",
                 "--device", "cpu", "--save", str(d / "t.pt")]) == 0
    return d


def bad_checkpoints(d, saved):
    """(file, the words of its one-line error)."""
    good_npz, good_pt = (saved / "c.npz").read_bytes(), (saved / "t.pt").read_bytes()
    marker = str(d / "MARKER")
    cases = []
    for name, data in (("half.npz", good_npz[:len(good_npz) // 2]), ("half.pt", good_pt[:len(good_pt) // 2])):
        (d / name).write_bytes(data)
        cases.append((d / name, "not a readable checkpoint, or a damaged one"))
    for name, data in (("flipped.npz", good_npz), ("flipped.pt", good_pt)):
        data = bytearray(data)
        middle = len(data) // 2
        data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
        (d / name).write_bytes(bytes(data))
        cases.append((d / name, "damaged"))
    torch.save({"format": FORMAT, "spec": WritesMarker(marker)}, d / "code.pt")
    cases.append((d / "code.pt", "it was not loaded (loading it could run code)"))
    np.savez(d / "code.npz", format=np.array(FORMAT), spec=np.array([WritesMarker(marker)], dtype=object))
    cases.append((d / "code.npz", "holds Python objects, which are not loaded (loading them could run code)"))
    np.savez(d / "foreign.npz", weights=np.ones(3))
    cases.append((d / "foreign.npz", "not a backprop-oracle checkpoint"))
    cases.append((d / "missing.npz", "missing.npz not found"))
    return cases


@pytest.mark.parametrize("command", ["run", "train"])
def test_bad_checkpoints_exit_2_and_run_no_code(tmp_path, capsys, saved, command):
    for path, words in bad_checkpoints(tmp_path, saved):
        code, out, err = cli(capsys, command, PRESET, "--epochs", "4", "--resume", str(path),
                             "--logdir", str(tmp_path / "runs"))
        assert code == 2, f"{path.name}: exit {code}, {err!r}"
        assert words in err and err.count("\n") == 1 and "Traceback" not in err, f"{path.name}: {err!r}"
        assert not (tmp_path / "runs").exists(), f"{path.name}: a refused checkpoint leaves no log folder"
    assert not (tmp_path / "MARKER").exists(), "loading a checkpoint ran code from it"


def test_a_checkpoint_of_another_run_is_refused(capsys, saved):
    code, out, err = cli(capsys, "run", "circles", "--epochs", "4", "--resume", str(saved / "c.npz"), "--no-tensorboard")
    assert code == 2 and "was saved by a run with" in err and "resumes only the run that saved it" in err, err
    code, out, err = cli(capsys, "run", PRESET, "--epochs", "4", "--lr", "0.5", "--resume", str(saved / "c.npz"),
                         "--no-tensorboard")
    assert code == 2 and "was saved by a run with lr 0.1, this run has 0.5" in err, err
    code, out, err = cli(capsys, "run", PRESET, "--epochs", "2", "--resume", str(saved / "c.npz"), "--no-tensorboard")
    assert code == 2 and "has trained 2 epochs already; ask for more in all (--epochs 3 or more)" in err, err
    for args, words in ((["xor", "--save", "x.npz"], "--save and --resume hold one run, and 2 were asked for"),
                        ([PRESET, "--save", "x.pt"], "run saves both sides"),
                        ([PRESET, "--save-every", "2"], "--save-every needs --save FILE")):
        code, out, err = cli(capsys, "run", *args, "--no-tensorboard")
        assert code == 2 and words in err and err.count("\n") == 1, err


def predictions(path, X):
    """The outputs on X of the network in a checkpoint, on the side of its format: the manual
    network for an .npz, the torch network for a .pt."""
    c = load_checkpoint(path)
    if path.suffix == ".npz":
        model = manual.mlp(c.sizes, c.spec.activation, c.spec.output_activation)
        model.load_state_dict(c.manual["params"])
        return model.forward(X)
    model = torch_ref.mlp(c.sizes, c.spec.activation, c.spec.output_activation, dtype="float64")
    model.load_state_dict(c.torch["model"])
    return model(torch.tensor(X)).detach().numpy()


def test_convert_keeps_the_predictions(tmp_path, capsys, saved):
    X = prepare(load_checkpoint(saved / "c.npz").spec).X            # (N, 2) moons
    for source, target in (("c.npz", "c.pt"), ("t.pt", "t.npz")):
        code, out, err = cli(capsys, "convert", str(saved / source), str(tmp_path / target))
        assert code == 0 and f"of {saved / source}" in out, err
        before, after = predictions(saved / source, X), predictions(tmp_path / target, X)
        assert_close(f"predictions of {source} and {target}", after, before)
    # the converted torch checkpoint trains on with the torch side alone
    code, out, err = cli(capsys, "train", PRESET, "--epochs", "3", "--dtype", "float64", "--device", "cpu",
                         "--quiet", "--no-tensorboard", "--resume", str(tmp_path / "c.pt"))
    assert code == 0, err
    code, out, err = cli(capsys, "convert", str(saved / "c.npz"), str(tmp_path / "again.npz"))
    assert code == 2 and "convert writes the other format" in err, err


class InterruptAt:
    """A progress observer that presses Ctrl-C at a given step."""

    def __init__(self, step):
        self.step = step

    def on_step(self, run, record):
        if record.step == self.step:
            raise KeyboardInterrupt


def test_an_interrupted_run_resumes_from_its_last_save(tmp_path, capsys, monkeypatch, straight_run):
    import backprop_oracle.compare.dashboards.progress as progress
    with monkeypatch.context() as m:
        m.setattr(progress, "progress_for", lambda quiet: InterruptAt(200))     # in epoch 16 of 13-step epochs
        code, out, err = cli(capsys, "run", PRESET, "--epochs", "20", "--no-tensorboard", "--save-every", "5",
                             "--save", str(tmp_path / "c.npz"))
    assert code == 130 and "c.npz: holds epoch 15 (step 195)" in err, err
    code, out, err = cli(capsys, "run", PRESET, "--epochs", "20", "--quiet", "--no-tensorboard",
                         "--resume", str(tmp_path / "c.npz"), "--json", str(tmp_path / "r.json"))
    assert code == 0, err
    assert_same_report(report(straight_run / "r.json"), report(tmp_path / "r.json"))


@pytest.mark.parametrize("options", [
    ["--optimizer", "adamw", "--amsgrad", "--lr", "0.01"],
    ["--optimizer", "rmsprop", "--centered", "--momentum", "0.5", "--lr", "0.01"],
    ["--optimizer", "adagrad", "--lr-decay", "0.01", "--initial-accumulator-value", "0.1", "--lr", "0.1"],
    ["--optimizer", "adam", "--schedule", "onecycle", "--total-steps", "78", "--lr", "0.05"],
    ["--optimizer", "sgd", "--schedule", "sequential", "--schedulers", "linear,cosine", "--milestones", "2",
     "--total-iters", "2", "--t-max", "4", "--lr", "0.5"],
], ids=["adamw-amsgrad", "rmsprop-centered-momentum", "adagrad", "onecycle", "warmup-cosine"])
def test_three_and_three_epochs_are_six_with_each_new_optimizer_and_schedule(tmp_path, options):
    """Saved after 3 epochs (13 steps each) and resumed: the run of 6, bit for bit in float64, on both
    sides (parameters, optimizer state, the rate and what a schedule set, onecycle's cycled momentum)."""
    common = ["run", PRESET, *options, "--quiet", "--no-tensorboard"]
    assert main([*common, "--epochs", "6", "--json", str(tmp_path / "s.json"), "--save", str(tmp_path / "s.npz")]) == 0
    assert main([*common, "--epochs", "3", "--save", str(tmp_path / "half.npz")]) == 0
    assert main([*common, "--epochs", "6", "--resume", str(tmp_path / "half.npz"), "--json", str(tmp_path / "r.json"),
                 "--save", str(tmp_path / "r.npz")]) == 0
    straight, resumed = report(tmp_path / "s.json"), report(tmp_path / "r.json")
    assert straight["passed"] and resumed["steps"] == 78
    assert_same_report(straight, resumed)
    a, b = load_checkpoint(tmp_path / "s.npz"), load_checkpoint(tmp_path / "r.npz")
    assert_same_state(a, b)
    for i, (x, y) in enumerate(zip(a.manual["optimizer"], b.manual["optimizer"])):
        assert set(x) == set(y) and all(np.array_equal(x[k], y[k]) for k in x), f"manual optimizer state {i} differs"
    for key in ("lr", "initial_lr", "last_epoch", "scheduler", "hyper"):
        assert a.manual[key] == b.manual[key], f"manual {key}: straight {a.manual[key]!r}, resumed {b.manual[key]!r}"
    for i, state in a.torch["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.equal(value, b.torch["optimizer"]["state"][i][key]), f"torch optimizer state {i} {key} differs"
    assert a.torch["optimizer"]["param_groups"] == b.torch["optimizer"]["param_groups"]


@pytest.mark.parametrize("schedule", [["--schedule", "onecycle", "--total-steps", "78"],
                                      ["--schedule", "sequential", "--schedulers", "linear,cosine", "--milestones", "2",
                                       "--t-max", "4"]], ids=["onecycle", "sequential"])
def test_a_manual_checkpoint_resumes_the_torch_side_too(tmp_path, schedule):
    """A checkpoint holding only the manual side (convert .pt -> .npz drops nothing the torch side
    needs): torch's schedule state is rebuilt from the manual one, and the resumed run agrees."""
    common = ["run", PRESET, "--optimizer", "sgd", *schedule, "--quiet", "--no-tensorboard"]
    assert main([*common, "--epochs", "6", "--json", str(tmp_path / "s.json")]) == 0
    assert main([*common, "--epochs", "3", "--save", str(tmp_path / "half.npz")]) == 0
    c = load_checkpoint(tmp_path / "half.npz")
    from backprop_oracle.compare.checkpoints.files import write_npz
    write_npz(tmp_path / "manual_only.npz", type(c)(c.spec, c.progress, c.rng_state, c.manual, None, c.path))
    assert main([*common, "--epochs", "6", "--resume", str(tmp_path / "manual_only.npz"),
                 "--json", str(tmp_path / "r.json")]) == 0
    straight, resumed = report(tmp_path / "s.json"), report(tmp_path / "r.json")
    assert resumed["passed"], resumed.get("mismatch")
    assert resumed["step_cost_manual"] == straight["step_cost_manual"]
    # the torch side goes on from the manual side's numbers, which agree with its own within rounding
    assert_close("torch side's step costs, resumed from the manual state", np.array(resumed["step_cost_torch"]),
                 np.array(straight["step_cost_torch"]), tol=Tolerance(rtol=1e-12, atol=1e-14))
