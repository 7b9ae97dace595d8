"""Checkpoints of a CNN with batch norm and dropout: a run saved after 1 epoch and resumed for 1
more is the run of 2, bit for bit, on both sides: its parameters, its running statistics (batch
norm's running_mean, running_var and num_batches_tracked) and its cost curves, because the
dropout masks go on from the Generator state the checkpoint kept. So does a resume from the
torch side's format (convert), and one of the torch side alone (train); a checkpoint saved
before running statistics were kept is refused for such a network, in one line."""
import json

import numpy as np
import pytest
import torch

from backprop_oracle.compare.checkpoints import load_checkpoint
from backprop_oracle.compare.checkpoints.files import write_npz
from backprop_oracle.compare.cli import main

# module 0 conv, 1 batchnorm (running statistics), 2 relu, 3 maxpool, 4 flatten, 5 dropout, 6 linear
LAYERS = "conv(3, 3, padding=1) batchnorm relu maxpool(2) flatten dropout(0.3) linear(10)"
COMMON = ["digits", "--layers", LAYERS, "--input-shape", "1,8,8", "--loss", "cross_entropy", "--batch-size", "256",
          "--lr", "0.1", "--momentum", "0.9", "--quiet", "--no-tensorboard"]


def report(path):
    (r,) = json.loads(path.read_text())["runs"]
    return r


def assert_same_report(straight, resumed):
    for key in straight:
        if key not in ("seconds", "extra", "logdir"):
            assert straight[key] == resumed[key], f"{key}: straight {straight[key]!r}, resumed {resumed[key]!r}"


def assert_same_numbers(a, b, what):
    """Every array of two {name: array} dicts equal, bit for bit."""
    assert set(a) == set(b), f"{what}: {sorted(a)} vs {sorted(b)}"
    for name in a:
        x, y = np.asarray(a[name]), np.asarray(b[name])
        assert x.dtype == y.dtype and np.array_equal(x, y), \
            f"{what} {name}: max |diff| {np.abs(x.astype(float) - y.astype(float)).max():.3g}, expected 0"


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The run of 2 epochs, uninterrupted, and the same run saved every epoch."""
    d = tmp_path_factory.mktemp("cnn")
    assert main(["run", *COMMON, "--epochs", "2", "--json", str(d / "s.json"), "--save", str(d / "s.npz")]) == 0
    assert main(["run", *COMMON, "--epochs", "1", "--save-every", "1", "--save", str(d / "half.npz")]) == 0
    return d


def test_a_checkpoint_keeps_the_running_statistics_and_the_masks_stream(straight):
    c = load_checkpoint(straight / "half.npz")
    assert set(c.manual["buffers"]) == {"1.running_mean", "1.running_var", "1.num_batches_tracked"}
    assert int(c.manual["buffers"]["1.num_batches_tracked"]) == 6          # 1438 examples in batches of 256
    assert not np.array_equal(c.manual["buffers"]["1.running_var"], np.ones(3)), "the statistics moved"
    torch_model = c.torch["model"]
    for name, value in c.manual["buffers"].items():      # each side's own, equal within float64's rounding
        gap = np.abs(value - torch_model[name].numpy()).max()
        assert gap <= 1e-12, f"{name}: the two sides' running statistics differ by {gap:.3g} (allowed 1e-12)"
    assert c.masks["bit_generator"] == "PCG64" and c.masks != load_checkpoint(straight / "s.npz").masks


def test_one_and_one_epochs_are_two_with_batch_norm_and_dropout(tmp_path, straight):
    assert main(["run", *COMMON, "--epochs", "2", "--resume", str(straight / "half.npz"), "--json",
                 str(tmp_path / "r.json"), "--save", str(tmp_path / "r.npz")]) == 0
    s, r = report(straight / "s.json"), report(tmp_path / "r.json")
    assert s["passed"] and r["steps"] == 12
    assert_same_report(s, r)
    a, b = load_checkpoint(straight / "s.npz"), load_checkpoint(tmp_path / "r.npz")
    assert_same_numbers(a.manual["params"], b.manual["params"], "manual parameters")
    assert_same_numbers(a.manual["buffers"], b.manual["buffers"], "manual running statistics")
    assert_same_numbers({k: v.numpy() for k, v in a.torch["model"].items()},
                        {k: v.numpy() for k, v in b.torch["model"].items()}, "torch state_dict")
    assert a.masks == b.masks


def test_the_torch_format_resumes_the_same_run(tmp_path, straight):
    assert main(["convert", str(straight / "half.npz"), str(tmp_path / "half.pt")]) == 0
    c = load_checkpoint(tmp_path / "half.pt")
    assert c.manual is None and "1.running_var" in c.torch["model"] and c.masks == load_checkpoint(
        straight / "half.npz").masks
    assert main(["run", *COMMON, "--epochs", "2", "--resume", str(tmp_path / "half.pt"), "--json",
                 str(tmp_path / "r.json")]) == 0
    s, r = report(straight / "s.json"), report(tmp_path / "r.json")
    # convert made the .pt of the manual side's numbers: the manual side goes on from them bit for
    # bit, the torch side from them too, which agree with its own within rounding (and only with the
    # same masks: others would move the costs by far more). The report holds the steps after the
    # resume only: a .pt's record is not the manual side's.
    assert r["passed"] and r["steps"] == 12 and r["step_cost_manual"] == s["step_cost_manual"][6:]
    gap = np.abs(np.array(r["step_cost_torch"]) - s["step_cost_torch"][6:]).max()
    assert gap <= 1e-12, f"torch step costs resumed from the torch format differ by {gap:.3g} (allowed 1e-12)"
    # and back: the .pt's torch numbers become the manual side's, running statistics with them
    assert main(["convert", str(tmp_path / "half.pt"), str(tmp_path / "back.npz")]) == 0
    back, half = load_checkpoint(tmp_path / "back.npz"), load_checkpoint(straight / "half.npz")
    assert_same_numbers(back.manual["buffers"], half.manual["buffers"], "running statistics through .pt")


def test_the_torch_side_alone_resumes_bit_for_bit(tmp_path):
    common = ["train", *COMMON, "--dtype", "float64", "--device", "cpu"]
    assert main([*common, "--epochs", "2", "--json", str(tmp_path / "s.json"), "--save", str(tmp_path / "s.pt")]) == 0
    assert main([*common, "--epochs", "1", "--save", str(tmp_path / "half.pt")]) == 0
    assert main([*common, "--epochs", "2", "--resume", str(tmp_path / "half.pt"), "--json", str(tmp_path / "r.json"),
                 "--save", str(tmp_path / "r.pt")]) == 0
    assert_same_report(report(tmp_path / "s.json"), report(tmp_path / "r.json"))
    a, b = load_checkpoint(tmp_path / "s.pt").torch["model"], load_checkpoint(tmp_path / "r.pt").torch["model"]
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs after the resume"


def test_a_checkpoint_without_running_statistics_is_refused_by_name(tmp_path, straight, capsys):
    c = load_checkpoint(straight / "half.npz")
    old = dict(c.manual)
    del old["buffers"]
    write_npz(tmp_path / "old.npz", type(c)(c.spec, c.progress, c.rng_state, old, None, c.path))
    capsys.readouterr()
    code = main(["run", *COMMON, "--epochs", "2", "--resume", str(tmp_path / "old.npz")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert "holds no running statistics (1.num_batches_tracked, 1.running_mean, 1.running_var)" in err, err
    assert "start afresh without --resume" in err, err
