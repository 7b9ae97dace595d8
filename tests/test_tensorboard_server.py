"""A real TensorBoard server, on the loopback interface, serving a finished run.

The server is started on a free port with TensorBoard's default loader, asked over its HTTP data
API what a person's browser would ask, and stopped by the test.
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest

from backprop_oracle.compare.lockstep.run import LockstepRun
from backprop_oracle.compare.experiments.presets import get_preset
from backprop_oracle.compare.cli.runner import apply_overrides
from backprop_oracle.compare.dashboards.tensorboard import TensorBoardLogger

STEPS = 30
HOST = "127.0.0.1"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def get(port, path):
    with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


def post(port, path, body):
    request = urllib.request.Request(f"http://{HOST}:{port}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", "X-XSRF-Protected": "1"})
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read())


def wait_for(port, path, ready, server, seconds=90):
    """Poll ``path`` (at most ``seconds``, every 0.25 s) until ``ready(answer)``; return the answer."""
    deadline, answer = time.monotonic() + seconds, None
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"tensorboard exited with {server.returncode}: {server.stdout.read()[-2000:]}")
        try:
            answer = get(port, path)
            if ready(answer):
                return answer
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    pytest.fail(f"tensorboard did not answer {path} as expected within {seconds} s; last answer {answer!r}")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("runs")
    spec = apply_overrides(get_preset("or-gate").runs[""], {"epochs": STEPS})
    logger = TensorBoardLogger(str(logdir), "or-gate")
    result = LockstepRun(spec, name="or-gate", observers=[logger]).run()
    base = os.path.relpath(logger.run_dir, logdir).replace(os.sep, "/")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", HOST,
                               "--port", str(port), "--reload_interval", "1"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield port, server, base, result
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_server_lists_one_run_holding_both_sides(served):
    port, server, base, _ = served
    runs = wait_for(port, "/data/runs", lambda r: len(r) >= 1, server)
    assert runs == [base]


@pytest.mark.parametrize("side", ["manual", "torch"])
def test_server_serves_each_sides_cost_curve_point_by_point(served, side):
    port, server, run, result = served
    tags = wait_for(port, "/data/plugin/scalars/tags", lambda t: f"step/cost/{side}" in t.get(run, {}), server)
    assert {f"step/cost/{side}", f"epoch/cost/{side}", f"grad_norm/0.weight/{side}", f"final/cost/{side}",
            "step/abs_cost_diff"} <= set(tags[run])
    query = urllib.parse.urlencode({"run": run, "tag": f"step/cost/{side}"})
    points = get(port, f"/data/plugin/scalars/scalars?{query}")   # [[wall time, step, value], ...]
    assert [p[1] for p in points] == list(range(1, STEPS + 1))
    report = getattr(result, f"step_cost_{side}")
    for (_, step, value), want in zip(points, report):
        assert value == float(np.float32(want)), \
            f"{side} step/cost at step {step}: served {value!r}, report {want!r} as float32 (tolerance 0)"


def test_server_has_the_images_histograms_graph_and_hparams(served):
    port, server, base, result = served
    images = wait_for(port, "/data/plugin/images/tags", lambda t: base in t, server)
    assert set(images[base]) == {"pictures/boundary", "pictures/cost"}
    histograms = get(port, "/data/plugin/histograms/tags")
    assert {"weights/0.weight/manual", "weights/0.weight/torch"} <= set(histograms[base])
    graphs = get(port, "/data/plugin/graphs/info")
    assert base in graphs and graphs[base]["run_graph"]
    groups = post(port, "/data/plugin/hparams/session_groups", {
        "experimentName": "", "startIndex": 0, "sliceSize": 10, "aggregationType": "AGGREGATION_AVG",
        "allowedStatuses": ["STATUS_SUCCESS", "STATUS_UNKNOWN", "STATUS_RUNNING", "STATUS_FAILURE"],
        "colParams": [{"metric": {"tag": "final/cost/manual", "group": ""}, "order": "ORDER_ASC"}]})
    sessions = {g["name"]: g for g in groups["sessionGroups"]}
    assert set(sessions) == {base}, "one session per run"
    session = sessions[base]
    assert session["hparams"]["run"] == "or-gate" and session["hparams"]["sides"] == "manual,torch"
    assert session["hparams"]["lr"] == 1.0
    metrics = {m["name"]["tag"]: m["value"] for m in session["metricValues"]}
    assert metrics["final/agree"] == 1.0
    for side in ("manual", "torch"):
        assert metrics[f"final/train_accuracy/{side}"] == getattr(result, f"train_accuracy_{side}")
        assert metrics[f"final/cost/{side}"] == float(np.float32(getattr(result, f"final_cost_{side}")))
