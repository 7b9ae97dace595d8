"""``run`` under torchrun spreads its lockstep runs over the ranks (compare.spread): rank 0
alone reports, and what it reports equals one process's report of the same command: the table
line for line, the JSON apart from seconds, the log tree folder for folder, with the runs done on
other ranks logged in it exactly (their float64 costs equal the JSON's)."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util import tensor_util

from backprop_oracle.compare.spread import runs as spread
from backprop_oracle.compare.cli.main import main
from backprop_oracle.compare.dashboards.tensorboard import make_run_dir, run_dir_names
from backprop_oracle.compare.experiments.presets import select_presets

pytestmark = pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                                reason="torch.distributed with gloo is not available")

LIMIT = 300         # seconds: the hard bound on one torchrun command (about 10 s on a quiet machine)


def torchrun(nproc, args, cwd):
    """``torchrun --standalone --nproc_per_node=nproc -m backprop_oracle ARGS`` in ``cwd``; its whole
    process group is killed if it outlives LIMIT. Returns (exit code, stdout, stderr)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             f"--nproc_per_node={nproc}", "-m", "backprop_oracle", *args],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=LIMIT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"torchrun {' '.join(args)} ran past {LIMIT} s; stderr: {err[-2000:]}")
    return proc.returncode, out, err


def tree(root):
    """{folder: sorted file names, event files' names (time, host, process) as "events"}."""
    out = {}
    for d, _, files in os.walk(root):
        out[os.path.relpath(d, root)] = sorted("events" if ".tfevents." in f else f for f in files)
    return out


def exact_costs(run_dir, side):
    acc = EventAccumulator(run_dir, size_guidance={"tensors": 0})
    acc.Reload()
    return [float(tensor_util.make_ndarray(e.tensor_proto)) for e in acc.Tensors(f"exact/step/cost/{side}")]


def without_seconds(report):
    return [{k: v for k, v in run.items() if k != "seconds"} for run in report["runs"]]


def test_two_processes_report_once_what_one_process_reports(tmp_path, monkeypatch, capsys):
    # or-gate, xor:single-unit, xor:hidden: rank 0 runs the first and third, rank 1 the second.
    args = ["run", "or-gate", "xor", "--epochs", "40", "--quiet", "--json", "report.json", "--logdir", "runs"]
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    monkeypatch.chdir(tmp_path / "one")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    code = main(args)
    one_out = capsys.readouterr().out
    got, out, err = torchrun(2, args, tmp_path / "two")
    assert got == code, f"two processes exited {got}, one process {code}; stderr: {err[-2000:]}"
    assert "Traceback" not in err, err[-2000:]
    assert out == one_out, f"two processes printed\n{out}\none process printed\n{one_out}"
    assert out.count("preset ") == 1 and "3 of 3 run(s) agree" in out, out
    one = json.loads((tmp_path / "one" / "report.json").read_text())
    two = json.loads((tmp_path / "two" / "report.json").read_text())
    assert [r["preset"] for r in two["runs"]] == ["or-gate", "xor:single-unit", "xor:hidden"]
    assert without_seconds(two) == without_seconds(one) and two["passed"] == one["passed"]
    # One log tree, made by rank 0: the command's folder and latest, the same folders and files.
    logs_one, logs_two = tmp_path / "one" / "runs" / "latest", tmp_path / "two" / "runs" / "latest"
    assert len(os.listdir(tmp_path / "two" / "runs")) == 2, os.listdir(tmp_path / "two" / "runs")
    assert tree(logs_two) == tree(logs_one)
    assert sorted(os.listdir(logs_two)) == ["or-gate", "xor", "xor_hidden", "xor_single-unit"]
    for run in two["runs"]:                       # xor:single-unit was logged by rank 1
        folder = logs_two / run["preset"].replace(":", "_")
        config = json.loads((folder / "config.json").read_text())
        assert os.path.realpath(tmp_path / "two" / config["folder"]) == os.path.realpath(folder), \
            f"{run['preset']}: config.json names {config['folder']}, it lies in {folder}"
        for side in ("manual", "torch"):
            logged, reported = exact_costs(str(folder), side), run[f"step_cost_{side}"]
            assert len(logged) == len(reported) == 40, f"{run['preset']} {side}: {len(logged)} logged, " \
                                                       f"{len(reported)} reported, 40 steps"
            worst = int(np.argmax(np.abs(np.subtract(logged, reported))))
            assert logged == reported, (f"{run['preset']} {side} step {worst + 1}: logged {logged[worst]!r}, "
                                        f"reported {reported[worst]!r} (float64, equal bit for bit)")


def test_a_rank_without_a_run_says_so_and_waits(tmp_path):
    got, out, err = torchrun(3, ["run", "or-gate", "and-gate", "--epochs", "5", "--quiet", "--no-tensorboard"],
                             tmp_path)
    assert got == 0, err[-2000:]
    idle = [line for line in err.splitlines() if "no run for it" in line]
    assert idle == ["rank 2 of 3: no run for it (2 run(s) over 3 processes); it waits for the others"], err
    assert out.count("preset ") == 1 and "2 of 2 run(s) agree" in out, out
    assert [line.split()[0] for line in out.splitlines()[2:4]] == ["or-gate", "and-gate"], out
    assert os.listdir(tmp_path) == [], "--no-tensorboard: nothing written"


def test_the_runs_go_round_robin_in_the_one_process_order():
    assert [spread.share(7, r, 3) for r in range(3)] == [[0, 3, 6], [1, 4], [2, 5]]
    assert spread.share(2, 2, 3) == []
    names = [name for _, _, name, _ in spread.work(select_presets(["or-gate", "xor"]))]
    assert names == ["or-gate", "xor:single-unit", "xor:hidden"]
    everything = [name for _, _, name, _ in spread.work(select_presets(["all"]))]
    assert len(everything) == len(set(everything)) > 10 and everything[0] == "or-gate", everything


def test_the_planned_folder_names_are_those_make_run_dir_gives(tmp_path):
    names = ["a:b", "a_b", "a", "a:b-2", "x y", "a"]
    made = [os.path.basename(make_run_dir(str(tmp_path), n)) for n in names]
    assert run_dir_names(names) == made == ["a_b", "a_b-2", "a", "a_b-2-2", "x_y", "a-2"]


class Store:
    """The few calls of torch.distributed.Store that ``wait_for_others`` makes, on a dict."""

    def __init__(self, **keys):
        self.keys = {k: v.encode() for k, v in keys.items()}

    def set(self, key, value):
        self.keys[key] = value.encode()

    def get(self, key):
        return self.keys[key]

    def check(self, keys):
        return all(k in self.keys for k in keys)


def test_a_rank_that_makes_no_progress_is_given_up_with_a_word(capsys):
    store = Store(**{f"{spread.KEY}/beat/1": "7 120 xor:hidden", f"{spread.KEY}/done/2": "1"})
    with pytest.raises(SystemExit) as stop:
        spread.wait_for_others(store, 0, 3, silence=0.3, poll=0.05)
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert err == ("backprop-oracle run: rank 1 has made no progress for 0 s (in xor:hidden at step 120); "
                   "rank 0 gives up on it. Run again, or without torchrun\n"), err


def test_a_rank_that_finishes_is_waited_for(capsys):
    store = Store()
    beats = iter(range(1000))

    class Working(Store):
        def check(self, keys):
            n = next(beats)
            if n == 10:                       # rank 1 finishes after a few polls, stepping until then
                self.set(f"{spread.KEY}/done/1", "1")
            self.set(f"{spread.KEY}/beat/1", f"{n} {n} moons")
            return super().check(keys)

    store = Working()
    spread.wait_for_others(store, 0, 2, silence=0.3, poll=0.05)
    assert store.keys[f"{spread.KEY}/done/0"] == b"1"
    assert capsys.readouterr().err == ""


def test_save_and_resume_under_torchrun_are_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["run", "or-gate", "--save", "run.npz"]) == 2
    err = capsys.readouterr().err
    assert "under torchrun (2 processes)" in err and "run it without torchrun" in err and err.count("\n") == 1, err
    assert not list(tmp_path.iterdir())
