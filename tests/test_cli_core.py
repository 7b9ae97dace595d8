"""The command line's contract: exit codes 0 / 1 / 2, the JSON report, and user mistakes reported
in one line without a traceback and without leaving files behind."""
import json
import subprocess
import sys

import pytest

REQUIRED = {"preset", "passed", "steps", "max_abs_grad_diff", "max_rel_grad_diff", "max_abs_param_diff",
            "max_abs_cost_diff", "final_cost_manual", "final_cost_torch"}


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "backprop_oracle", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_run_or_gate_writes_the_json_report(tmp_path):
    proc = cli("run", "or-gate", "--epochs", "50", "--json", "report.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "or-gate" in proc.stdout and "agree" in proc.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    run = report["runs"][0]
    assert REQUIRED <= set(run), f"missing keys {REQUIRED - set(run)}"
    assert report["passed"] is True and run["steps"] == 50
    assert len(run["step_cost_manual"]) == 50
    assert run["step_cost_manual"][0] == pytest.approx(0.0889129475, abs=1e-10)
    assert run["final_cost_manual"] == pytest.approx(run["final_cost_torch"], rel=1e-10)


@pytest.mark.parametrize("args,message", [
    (["run", "no-such-preset"], "unknown preset 'no-such-preset'; choose one of: or-gate"),
    (["run", "or-gate", "--lr", "-1"], "expected a positive number"),
    (["run", "or-gate", "--epochs", "0"], "expected a positive integer"),
    (["run", "or-gate", "--dtype", "float16"], "invalid choice: 'float16'"),
    (["run", "or-gate", "--json", "missing/dir/report.json"], "does not exist"),
    (["run", "or-gate", "--device", "tpu"], "unknown device 'tpu'"),
])
def test_usage_errors_exit_2_without_traceback(tmp_path, args, message):
    proc = cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.rglob("*.json")), "a failed command must not leave a report behind"


def test_list_shows_the_or_gate_with_its_seed(tmp_path):
    proc = cli("list", cwd=tmp_path)
    assert proc.returncode == 0
    assert "or-gate" in proc.stdout and "the OR-gate article's worked example" in proc.stdout
    assert "the OR-gate article: \"Nothing but NumPy" in proc.stdout and "seed 00" not in proc.stdout


def test_console_script_is_the_same_as_python_m_compare():
    from backprop_oracle.compare.cli import main
    assert main(["list"]) == 0


@pytest.mark.parametrize("logdir,message", [("a-file", "is a file"), ("a-file/runs", "cannot create")])
def test_a_logdir_that_cannot_be_written_is_a_usage_error(tmp_path, logdir, message):
    (tmp_path / "a-file").write_text("not a folder")
    proc = cli("run", "or-gate", "--epochs", "2", "--logdir", logdir, cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
