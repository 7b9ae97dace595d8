"""Ctrl-C in the middle of ``backprop-oracle run``: a real SIGINT to a running process leaves
event files that read back with every step logged so far."""
import glob
import os
import signal
import subprocess
import sys
import time

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def test_sigint_mid_run_leaves_readable_event_files_with_the_steps_so_far(tmp_path):
    logdir = tmp_path / "runs"
    # A million epochs: the run is still going whenever the signal comes.
    proc = subprocess.Popen([sys.executable, "-m", "backprop_oracle", "run", "or-gate", "--epochs", "1000000",
                             "--logdir", str(logdir), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, sizes, grown = time.monotonic() + 120, set(), False
        while time.monotonic() < deadline and proc.poll() is None:
            files = glob.glob(str(logdir / "*" / "or-gate" / "events.out.tfevents.*"))
            if files:
                sizes.add(os.path.getsize(files[0]))
            # Three sizes seen: the header alone, the first flush (config, pictures, first steps)
            # and a later one, which only steps make.
            if len(sizes) >= 3:
                grown = True
                break
            time.sleep(0.1)
        assert proc.poll() is None, f"the run ended before it was interrupted: {proc.communicate()}"
        assert grown, "the manual event file did not grow within 120 s"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, f"exit code {proc.returncode}, expected 130; stderr: {err[-1000:]}"
    assert "Traceback" not in err, err[-2000:]
    (run_dir,) = glob.glob(str(logdir / "latest" / "or-gate"))
    counts = {}
    acc = EventAccumulator(run_dir, size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    for tag, exact_tag in (("step/cost/manual", "exact/step/cost/manual"), ("step/cost/torch", "exact/step/cost/torch"),
                           ("step/abs_cost_diff", None)):
        steps = [e.step for e in acc.Scalars(tag)]
        assert steps and steps == list(range(1, len(steps) + 1)), \
            f"{tag}: {len(steps)} points, steps {steps[:3]}...{steps[-3:]}; expected 1..N consecutive"
        exact = [e.step for e in acc.Tensors(exact_tag)] if exact_tag else steps
        assert exact == steps, f"{exact_tag} has {len(exact)} points, {tag} {len(steps)}"
        counts[tag] = len(steps)
    assert len(set(counts.values())) == 1, f"every run logged the same steps: {counts}"
    if counts["step/cost/manual"] < 2:
        pytest.fail(f"only {counts['step/cost/manual']} step logged before the interrupt")
