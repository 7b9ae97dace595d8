"""Distributed training when something goes wrong: a killed or frozen (SIGSTOP) peer ends the other
rank within --dist-timeout with one line, a node that never comes ends our own launch after the
timeout, and a group that torchrun restarts resumes from the last checkpoint to the very parameters
of a run that was never killed. gloo on the loopback; every process under a hard timeout.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

pytestmark = [
    pytest.mark.distributed,
    pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available())
                       or not sys.platform.startswith("linux"), reason="gloo on Linux is needed"),
]

HARD = 150          # seconds any process may take (a loaded machine starts torch slowly)
TIMEOUT = 4         # --dist-timeout of these runs
SLACK = 5           # after the timeout: watching the heartbeats (1 s) and exiting
BIN = os.path.dirname(sys.executable)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def long_run(tmp_path, extra=()):
    """Two ranks as torchrun would start them, each in a folder of its own with the same relative
    paths; a run long enough to be stopped from outside after its first checkpoint."""
    port = free_port()
    args = ["train", "or-gate", "--epochs", "100000", "--device", "cpu", "--dtype", "float64", "--quiet",
            "--dist-timeout", str(TIMEOUT), "--save", "run.pt", "--save-every", "100", "--json", "out.json", *extra]
    procs = []
    for rank in range(2):
        folder = tmp_path / f"rank{rank}"
        folder.mkdir()
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([sys.executable, "-m", "backprop_oracle", *args], env=env, cwd=folder,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs, args


def wait_for(path, procs, limit=HARD):
    start = time.monotonic()
    while not path.exists():
        assert all(p.poll() is None for p in procs), \
            f"a rank ended before {path.name} was written: {[p.communicate()[1][-2000:] for p in procs]}"
        assert time.monotonic() - start < limit, f"{path} not written within {limit} s"
        time.sleep(0.05)


def finish(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.communicate()


def fault(tmp_path, how, extra=()):
    """Stop rank 1 (``how``: SIGKILL or SIGSTOP) after rank 0's first checkpoint; returns rank 0's
    (exit code, stderr, seconds from the fault to its exit)."""
    procs, args = long_run(tmp_path, extra)
    try:
        wait_for(tmp_path / "rank0" / "run.pt", procs)
        os.kill(procs[1].pid, how)
        start = time.monotonic()
        out, err = procs[0].communicate(timeout=HARD)
        took = time.monotonic() - start
    finally:
        if procs[1].poll() is None:
            os.kill(procs[1].pid, signal.SIGKILL)
        finish(procs)
    return procs[0].returncode, out, err, took, args


def check_line(err, code, args):
    assert code == 1, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("backprop-oracle train: error:")]
    assert len(lines) == 1 and err.strip() == lines[0], f"one line expected, got: {err[-3000:]}"
    line = lines[0]
    assert "rank 1 of 2 went silent after step " in line and "rank 0 of 2 stopped at step " in line, line
    assert "the last checkpoint is run.pt (epoch " in line, line
    assert line.endswith(" ".join([sys.executable, "-m", "backprop_oracle", *args, "--resume", "run.pt"])), line
    return line


def test_killed_worker_ends_the_other_rank_with_one_line(tmp_path):
    code, out, err, took, args = fault(tmp_path, signal.SIGKILL, ["--logdir", "runs"])
    line = check_line(err, code, args)
    assert "its connection closed" in line, line
    assert took < TIMEOUT + SLACK, f"rank 0 took {took:.1f} s after the kill (bound {TIMEOUT + SLACK} s)"
    # The run folder and the JSON say where and why the run ended.
    (run_dir,) = (tmp_path / "rank0" / "runs").glob("2*/or-gate")
    ended = json.loads((run_dir / "config.json").read_text())["ended_early"]
    report = json.loads((tmp_path / "rank0" / "out.json").read_text())
    assert report["runs"] == [] and report["ended_early"]["step"] == ended["step"] >= 100
    assert ended["silent_ranks"] == [1] and ended["checkpoint"]["path"] == "run.pt"
    assert ended["checkpoint"]["epoch"] % 100 == 0 and ended["checkpoint"]["epoch"] <= ended["epoch"]
    assert "went silent" in ended["why"] and ended["next"].startswith("resume with: ")
    # Rank 1 ran with the same --logdir, --save and --json and created nothing.
    assert os.listdir(tmp_path / "rank1") == []


def test_frozen_worker_ends_the_other_rank_within_the_timeout(tmp_path):
    code, out, err, took, args = fault(tmp_path, signal.SIGSTOP, ["--no-tensorboard"])
    line = check_line(err, code, args)
    assert f"no answer for {TIMEOUT} s, --dist-timeout" in line, line
    assert TIMEOUT - 0.5 < took < TIMEOUT + SLACK, f"rank 0 took {took:.1f} s after SIGSTOP (timeout {TIMEOUT} s)"


def test_missing_node_under_our_launch_says_what_it_waits_for(tmp_path):
    port = free_port()
    start = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "backprop_oracle", "train", "or-gate", "--device", "cpu",
                        "--no-tensorboard", "--nproc-per-node", "1", "--nnodes", "2", "--node-rank", "0",
                        "--master", f"127.0.0.1:{port}", "--dist-timeout", str(TIMEOUT)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=HARD)
    took = time.monotonic() - start
    assert p.returncode == 1, p.stderr[-3000:]
    assert re.search(rf"^waiting for node 1 of 2 at 127\.0\.0\.1:{port}, [23] s so far$", p.stderr, re.M), p.stderr[-3000:]
    assert p.stderr.strip().splitlines()[-1] == (
        f"backprop-oracle train: error: node 1 of 2 did not join at 127.0.0.1:{port} within {TIMEOUT} s "
        f"(--dist-timeout); start it with --nnodes 2 --node-rank 1 --master 127.0.0.1:{port}, or wait longer "
        "with --dist-timeout"), p.stderr[-3000:]
    assert "Traceback" not in p.stderr
    assert os.listdir(tmp_path) == [], "nothing was started, nothing was written"
    assert took < HARD


def test_launch_options_are_checked(capsys):
    from backprop_oracle.compare.cli import main
    for argv, message in [(["--nnodes", "2"], "--nnodes needs --nproc-per-node N"),
                          (["--nproc-per-node", "1", "--nnodes", "2"], "--nnodes 2 needs --master HOST:PORT"),
                          (["--nproc-per-node", "1", "--nnodes", "2", "--node-rank", "2", "--master", "h:1"],
                           "--node-rank 2 with --nnodes 2: node ranks run from 0 to 1")]:
        assert main(["train", "or-gate", "--no-tensorboard", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_elastic_restart_resumes_to_the_parameters_of_a_straight_run(tmp_path):
    args = ["-m", "backprop_oracle", "train", "or-gate", "--epochs", "1500", "--device", "cpu", "--dtype", "float64",
            "--quiet", "--no-tensorboard", "--save", "run.pt", "--save-every", "100", "--dist-timeout", "20"]
    torchrun = [os.path.join(BIN, "torchrun"), "--standalone", "--nproc_per_node=2"]
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    killed.mkdir()
    straight.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    agent = subprocess.Popen([*torchrun, "--max-restarts=1", *args], cwd=killed, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(killed / "run.pt", [agent])
        # Rank 1: the agent's child whose environment says RANK=1.
        workers = subprocess.run(["pgrep", "-P", str(agent.pid)], capture_output=True, text=True).stdout.split()
        rank1 = [int(w) for w in workers
                 if b"RANK=1" in open(f"/proc/{w}/environ", "rb").read().split(b"\0")]
        assert len(rank1) == 1, f"workers {workers}"
        os.kill(rank1[0], signal.SIGKILL)
        out, err = agent.communicate(timeout=HARD)
    finally:
        finish([agent])
    assert agent.returncode == 0, err[-3000:]
    assert "restart 1: resuming from run.pt at epoch " in err, err[-3000:]
    epoch = int(err.split("restart 1: resuming from run.pt at epoch ")[1].split()[0])
    assert 100 <= epoch < 1500 and epoch % 100 == 0
    p = subprocess.run([*torchrun, *args], cwd=straight, env=env, capture_output=True, text=True, timeout=HARD)
    assert p.returncode == 0, p.stderr[-3000:]
    a = torch.load(killed / "run.pt", weights_only=True)
    b = torch.load(straight / "run.pt", weights_only=True)
    for name, value in b["model"].items():
        got = a["model"][name]
        worst = (got - value).abs().max().item()
        assert torch.equal(got, value), f"{name}: restarted and straight runs differ by up to {worst!r} (tolerance 0)"
    assert torch.equal(a["curves"]["step_t"], b["curves"]["step_t"]), "the cost curves differ (tolerance 0)"


RESTARTED = """
import os, sys, time
import torch
import torch.distributed as dist
from backprop_oracle.compare.train.distributed import process_group

attempt, rank = int(os.environ["TORCHELASTIC_RESTART_COUNT"]), int(os.environ["RANK"])
if attempt == 1 and rank == 0:
    time.sleep(2)        # the restarted rank 1 looks for rank 0's address before rank 0 has written it
with process_group("cpu", timeout=20) as d:
    if attempt == 0:
        if rank == 1:
            os._exit(9)  # killed: the agent restarts the group
        time.sleep(HARD)
    total = torch.tensor([float(rank + 1)], dtype=torch.float64)
    dist.all_reduce(total, group=d.group)
    sys.stdout.write(f"attempt {attempt} rank {rank}: sum {total.item()!r}\\n")   # one write: two ranks share the pipe
    sys.stdout.flush()
""".replace("HARD", str(HARD))


def test_restarted_group_reads_its_own_addresses_not_the_killed_attempts(tmp_path):
    # torch's agent keeps one store for every attempt of the job; a restarted rank that came first
    # found the killed attempt's address of its peer there (gloo: connectFullMesh, Connection refused).
    (tmp_path / "worker.py").write_text(RESTARTED)
    p = subprocess.run([os.path.join(BIN, "torchrun"), "--standalone", "--nproc_per_node=2", "--max-restarts=1",
                        "worker.py"], cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS="1"),
                       capture_output=True, text=True, timeout=HARD)
    assert p.returncode == 0, p.stderr[-3000:]
    for rank in range(2):
        assert re.search(rf"attempt 1 rank {rank}: sum 3\.0(?!\d)", p.stdout), p.stdout[-3000:] + p.stderr[-3000:]
