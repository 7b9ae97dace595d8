"""backprop-oracle train: the torch side alone, with the same TensorBoard dashboards.

In float64 it must reproduce the lockstep run's torch side exactly (same data, initial weights
and batch order); under two processes (as torchrun starts them) its costs must match one
process's up to the order of floating-point sums.
"""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util import tensor_util

from backprop_oracle.compare.cli import main
from backprop_oracle.compare.lockstep.run import run_lockstep
from backprop_oracle.compare.experiments.presets import get_preset
from backprop_oracle.compare.cli.runner import apply_overrides

EPOCHS = 25


def train(tmp_path, capsys, *extra):
    out = tmp_path / "out.json"
    code = main(["train", "or-gate", "--epochs", str(EPOCHS), "--device", "cpu", "--logdir", str(tmp_path / "runs"),
                 "--json", str(out), *extra])
    captured = capsys.readouterr()
    return code, captured, (json.loads(out.read_text())["runs"] if out.exists() else None)


def test_train_float64_reproduces_the_lockstep_torch_side_exactly(tmp_path, capsys):
    code, captured, runs = train(tmp_path, capsys, "--dtype", "float64")
    assert code == 0, captured.err
    assert "or-gate" in captured.out and "float64" in captured.out
    (run,) = runs
    spec = apply_overrides(get_preset("or-gate").runs[""], {"epochs": EPOCHS})
    lockstep = run_lockstep(spec, name="or-gate")
    assert run["steps"] == EPOCHS and run["world_size"] == 1 and run["device"] == "cpu"
    for step, (got, want) in enumerate(zip(run["step_cost"], lockstep.step_cost_torch), start=1):
        assert got == want, f"step {step}: train cost {got!r}, lockstep torch cost {want!r} (tolerance 0)"
    assert run["final_cost"] == lockstep.final_cost_torch

    # Only the torch run is logged, with the lockstep run's tags.
    run_dir = run["logdir"]
    assert os.path.samefile(run_dir, tmp_path / "runs" / "latest" / "or-gate")
    acc = EventAccumulator(run_dir, size_guidance={"tensors": 0, "scalars": 0, "images": 0})
    acc.Reload()
    exact = [tensor_util.make_ndarray(e.tensor_proto).item() for e in acc.Tensors("exact/step/cost/torch")]
    assert exact == run["step_cost"]
    assert {"step/cost/torch", "step/lr/torch", "grad_norm/0.weight/torch", "epoch/cost/torch",
            "final/cost/torch"} <= set(acc.Tags()["scalars"])
    assert not [t for t in acc.Tags()["scalars"] if t.endswith("/manual")], "the torch side only"
    assert {"pictures/boundary", "pictures/cost"} <= set(acc.Tags()["images"])
    assert "final/agree" not in acc.Tags()["scalars"], "no agreement figures without a manual side"


def test_train_defaults_to_float32(tmp_path, capsys):
    code, captured, (run,) = train(tmp_path, capsys, "--no-tensorboard")
    assert code == 0, captured.err
    assert run["dtype"] == "float32" and run["logdir"] is None
    assert not (tmp_path / "runs").exists(), "--no-tensorboard writes nothing"
    # float32 follows the float64 curve to float32 precision: the seed's first cost 0.0889129.
    assert run["step_cost"][0] == pytest.approx(0.08891294752305501, rel=1e-6)


def test_train_usage_errors_exit_2_with_one_line(tmp_path, capsys):
    code = main(["train", "no-such-preset", "--logdir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "unknown preset 'no-such-preset'" in err and "or-gate" in err and err.count("\n") == 1
    (tmp_path / "a-file").write_text("")
    code = main(["train", "or-gate", "--logdir", str(tmp_path / "a-file")])
    err = capsys.readouterr().err
    assert code == 2 and "is a file" in err and err.count("\n") == 1
    if not torch.cuda.is_available():
        code = main(["train", "or-gate", "--device", "cuda", "--logdir", str(tmp_path)])
        err = capsys.readouterr().err
        assert code == 2 and "CUDA is not available" in err and err.count("\n") == 1


@pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                    reason="torch.distributed with gloo is not available")
def test_two_processes_train_as_one(tmp_path):
    # What torchrun --nproc_per_node=2 sets for each process; batch size 3 of 4 examples gives
    # shards of 2 and 1, then a batch of 1 that leaves rank 1 an empty shard.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    common = ["train", "or-gate", "--epochs", "8", "--batch-size", "3", "--dtype", "float64", "--device", "cpu"]
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
        args = ["--json", str(tmp_path / "ddp.json"), "--logdir", str(tmp_path / "runs")] if rank == 0 \
            else ["--no-tensorboard"]
        procs.append(subprocess.Popen([sys.executable, "-m", "backprop_oracle", *common, *args], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=120))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for rank, (p, (out, err)) in enumerate(zip(procs, outputs)):
        assert p.returncode == 0, f"rank {rank} exited {p.returncode}: {err[-2000:]}"
    assert outputs[1][0] == "", "only rank 0 prints"
    (ddp,) = json.loads((tmp_path / "ddp.json").read_text())["runs"]
    assert ddp["world_size"] == 2 and ddp["steps"] == 16
    spec = apply_overrides(get_preset("or-gate").runs[""], {"epochs": 8, "batch_size": 3})
    single = run_lockstep(spec, name="or-gate").step_cost_torch
    got, want = np.array(ddp["step_cost"]), np.array(single)
    worst = int(np.argmax(np.abs(got - want)))
    assert np.allclose(got, want, rtol=1e-12, atol=1e-15), \
        f"step {worst + 1}: two processes {got[worst]!r}, one {want[worst]!r} (rtol 1e-12, atol 1e-15)"
    assert os.listdir(tmp_path / "runs" / "latest" / "or-gate"), "rank 0 logged the run"
    assert len(os.listdir(tmp_path / "runs")) == 2, "one folder for the command (and latest), made by rank 0"


def test_a_worker_that_joined_a_group_ends_at_once_its_output_flushed(monkeypatch):
    """compare.train.distributed.exit_process: a process that joined a process group leaves with
    os._exit and the status it is given, its stdout and stderr flushed first (here still in their
    buffers: no newline, pipes) and the interpreter's teardown skipped (the atexit line is never
    written); any other process gets SystemExit, as from sys.exit."""
    from backprop_oracle.compare.train import distributed
    script = ("import atexit, sys; from backprop_oracle.compare.train import distributed; "
              "distributed._joined = True; atexit.register(lambda: sys.stderr.write(' torn down')); "
              "sys.stdout.write('table'); sys.stderr.write('note'); distributed.exit_process(3)")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "table", "note"), proc
    monkeypatch.setattr(distributed, "_joined", False)
    with pytest.raises(SystemExit) as ended:
        distributed.exit_process(2)
    assert ended.value.code == 2

def _two_ranks(tmp_path, args):
    """Run ``backprop-oracle ARGS`` as ranks 0 and 1 of a two-process job; [(returncode, out, err)]."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
        extra = ["--json", str(tmp_path / "ddp.json")] if rank == 0 else []
        procs.append(subprocess.Popen([sys.executable, "-m", "backprop_oracle", *args, "--no-tensorboard", *extra],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        outputs = [p.communicate(timeout=180) for p in procs]
        return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs)]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()


@pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                    reason="torch.distributed with gloo is not available")
def test_dropout_on_two_processes_keeps_the_one_process_masks_and_batch_norm_is_said_to_differ(tmp_path):
    layers = "linear(8) relu dropout(0.3) linear(8) batchnorm relu linear(1) sigmoid"
    common = ["train", "moons", "--layers", layers, "--epochs", "2", "--dtype", "float64", "--device", "cpu"]
    (c0, out0, err0), (c1, out1, err1) = _two_ranks(tmp_path, common)
    assert c0 == 0 and c1 == 0, (err0[-2000:], err1[-2000:])
    assert "note: batch norm (module 4) normalises each rank's shard" in err0 and "note" not in err1
    # without the batch norm, two processes are one: the same dropout masks, the same costs
    layers = "linear(8) relu dropout(0.3) linear(8) relu linear(1) sigmoid"
    common[3] = layers
    (c0, _, err0), (c1, _, err1) = _two_ranks(tmp_path, common)
    assert c0 == 0 and c1 == 0, (err0[-2000:], err1[-2000:])
    (ddp,) = json.loads((tmp_path / "ddp.json").read_text())["runs"]
    spec = apply_overrides(get_preset("moons").runs[""], {"epochs": 2, "layers": layers})
    single = run_lockstep(spec, name="moons").step_cost_torch
    got, want = np.array(ddp["step_cost"]), np.array(single)
    worst = int(np.argmax(np.abs(got - want)))
    assert got.shape == want.shape and np.allclose(got, want, rtol=1e-12, atol=1e-15), \
        f"worst at step {worst + 1}: two processes {got[worst]!r}, one {want[worst]!r} (rtol 1e-12, atol 1e-15)"
