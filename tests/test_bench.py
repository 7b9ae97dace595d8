"""backprop-oracle bench --quick: every table there, every number positive, every ratio the one of
the times printed beside it. Goals are printed, never asserted here: timings depend on the machine."""
import json
import math
import subprocess
import sys

import pytest

from backprop_oracle.compare.bench import steps
from backprop_oracle.compare.bench.timing import Spread, interleaved
from backprop_oracle.compare.cli.main import main


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-12), f"{a} vs {b}"


def positive_spread(s, what):
    assert 0 < s["min"] <= s["median"] <= s["max"], f"{what}: {s}"


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "backprop_oracle", "bench", "--quick", "--clock", "cpu",
                           "--json", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, json.loads(path.read_text())


def test_the_step_table_has_every_network_in_both_dtypes(quick):
    text, r = quick
    assert [(row["net"], row["dtype"]) for row in r["steps"]] == [(n.name, d) for n in steps.NETS for d in steps.DTYPES]
    for row in r["steps"]:
        for side in ("manual", "torch"):
            positive_spread(row["seconds_per_step"][side], f"{row['net']} {row['dtype']} {side}")
        ok, msg = close(row["ratio"], row["seconds_per_step"]["manual"]["median"]
                        / row["seconds_per_step"]["torch"]["median"])
        assert ok, f"{row['net']} {row['dtype']}: ratio is not manual/torch of the medians: {msg}"
        assert row["met"] == (row["ratio"] <= row["goal"])
        assert row["net"] in text
    assert [n.goal for n in steps.NETS] == [0.2, 0.2, 0.2, 0.5, 0.8, 0.8]


def test_the_conv_table_times_both_cnns_in_both_dtypes(quick):
    from backprop_oracle.compare.bench import layers
    text, r = quick
    assert [(row["net"], row["dtype"]) for row in r["conv_steps"]] == \
        [(n.name, d) for n in layers.NETS for d in layers.DTYPES]
    assert [(n.name, n.goal) for n in layers.NETS] == [("digits-cnn 8x8 b64", 3.0), ("digits-cnn 28x28 (MNIST) b128", 2.0)]
    for row in r["conv_steps"]:
        for side in ("manual", "torch"):
            positive_spread(row["seconds_per_step"][side], f"{row['net']} {row['dtype']} {side}")
        ok, msg = close(row["ratio"], row["seconds_per_step"]["manual"]["median"]
                        / row["seconds_per_step"]["torch"]["median"])
        assert ok, f"{row['net']} {row['dtype']}: ratio is not manual/torch of the medians: {msg}"
        assert row["met"] == (row["ratio"] <= row["goal"]) and row["net"] in text
    # 1 -> 8 (3x3) -> 16 (3x3) -> 10 on 8x8; 1 -> 8 (5x5) -> 16 (5x5) -> 10 from 16*7*7 on 28x28
    assert [row["parameters"] for row in r["conv_steps"][::2]] == [80 + 1168 + 650, 208 + 3216 + 7850]
    assert "(h) time per training step of the convolutional networks" in text


def test_the_gemm_fractions_are_the_step_rates_over_numpys(quick):
    text, r = quick
    assert {e["net"] for e in r["gemm_fraction"]} == set(steps.LARGE)
    for e in r["gemm_fraction"]:
        row = next(x for x in r["steps"] if (x["net"], x["dtype"]) == (e["net"], e["dtype"]))
        rate = r["gemm"][e["dtype"]]["flop_per_s"]
        assert rate > 0
        for side in ("manual", "torch"):
            ok, msg = close(e[side]["fraction"], row["flops"] / row["seconds_per_step"][side]["median"] / rate)
            assert ok, f"{e['net']} {side}: {msg}"
        products = row["products_per_step"]
        positive_spread(products, f"{e['net']} {e['dtype']} products alone")
        ok, msg = close(e["products"]["fraction"], row["flops"] / products["median"] / rate)
        assert ok, f"{e['net']} products alone: {msg}"
        ok, msg = close(e["best_ratio"], products["median"] / row["torch_beside_products"]["median"])
        assert ok, f"{e['net']} {e['dtype']}: best ratio is not products alone / torch of the medians: {msg}"
    assert "best manual/torch" in text
    # 784-1024-1024-10 at batch 1024: forward, weight gradients, input gradients but the first layer's
    assert steps.Net((784, 1024, 1024, 10), 1024, 0.8).flops == 1024 * (6 * (784 * 1024 + 1024 * 1024 + 1024 * 10)
                                                                         - 2 * 784 * 1024)


def test_the_products_alone_are_the_manual_steps_matrix_products(monkeypatch):
    """The products timed alone compute exactly the step's FLOPs, in the manual step's shapes."""
    import numpy as np
    net = steps.Net((784, 256, 256, 10), 3, 0.8)
    products = steps.step_products(net, "float64", np.zeros((3, 784)))
    done, matmul = [], np.matmul
    monkeypatch.setattr(np, "matmul", lambda a, b, out: done.append((a.shape, b.shape)) or matmul(a, b, out=out))
    products()
    assert sum(2 * a[0] * a[1] * b[1] for a, b in done) == net.flops, done
    assert ((3, 784), (784, 256)) in done and ((256, 3), (3, 784)) in done and ((3, 256), (256, 784)) not in done



def test_the_conv_table_counts_its_steps_per_run_from_warm_steps(monkeypatch):
    """A step slow on its first three calls (torch's lazy set-up) and steady after: the steps per timed
    run are the target over the steady step, not over a cold one. The clock is a fake one that each
    step moves on, in binary fractions, so that the count is exact."""
    from backprop_oracle.compare.bench import layers, timing
    clock = [0.0]
    monkeypatch.setitem(timing._clock, "now", lambda: clock[0])

    def slow_at_first(*_):
        calls = [0]

        def step():
            calls[0] += 1
            clock[0] += 2.0 ** -6 if calls[0] <= 3 else 2.0 ** -12
        return step
    monkeypatch.setattr(layers, "manual_step", slow_at_first)
    monkeypatch.setattr(layers, "torch_step", slow_at_first)
    row = layers.measure(layers.NETS[0], "float64", repeats=1, target=2.0 ** -3)
    assert row["steps_per_run"] == 2 ** 9, f"steps per run {row['steps_per_run']}, want 512 (0.125 s / 2**-12 s)"
    assert row["seconds_per_step"]["manual"]["median"] == 2.0 ** -12, row["seconds_per_step"]


def test_the_lockstep_overhead_is_lockstep_over_both_fits(quick):
    _, r = quick
    assert [e["preset"] for e in r["lockstep"]] == ["or-gate", "digits", "moons"]
    for e in r["lockstep"]:
        sec = e["seconds"]
        for k in ("lockstep", "manual.fit", "torch_ref.fit"):
            positive_spread(sec[k], f"{e['preset']} {k}")
        ok, msg = close(e["ratio"], sec["lockstep"]["median"] / (sec["manual.fit"]["median"]
                                                                 + sec["torch_ref.fit"]["median"]))
        assert ok, f"{e['preset']}: {msg}"
        assert e["steps"] > 0 and e["goal"] == 1.25


def test_the_api_row_is_run_lockstep_over_the_command_lines_run(quick):
    out, r = quick
    a = r["api"]
    sec = a["seconds"]
    for k in ("run_lockstep", "command line"):
        positive_spread(sec[k], f"api {k}")
    ok, msg = close(a["ratio"], sec["run_lockstep"]["median"] / sec["command line"]["median"])
    assert ok, f"api: {msg}"
    assert a["preset"] == "moons" and a["goal"] == 1.10
    assert "(f) the Python API against the command line" in out


def test_the_two_gradients_agree_and_the_checks_are_timed(quick):
    text, r = quick
    lv = r["loop_vs_vectorized"]
    assert lv["max_abs_grad_gap"] < 1e-12, "the per-example loop and the batch gradient must agree"
    ok, msg = close(lv["ratio"], lv["seconds"]["loop"]["median"] / lv["seconds"]["vectorized"]["median"])
    assert ok, msg
    gc = r["gradcheck"]
    assert gc["parameters"] == 13002 and "full" not in gc["seconds"]      # --quick skips the full gradcheck
    for k, s in gc["seconds"].items():
        positive_spread(s, k)
    ok, msg = close(gc["fast_mode_over_check"], gc["seconds"]["fast"]["median"] / gc["seconds"]["check"]["median"])
    assert ok, msg
    for heading in ("(a)", "(b)", "(c)", "(d)", "(e)"):
        assert heading in text
    assert "cuda" not in r
    assert "(g) the torch side on a GPU, eager and replayed from CUDA graphs: not measured in this run" in text


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA device here")
def test_the_gpu_rows_time_eager_and_replayed_steps():
    net = next(n for n in steps.NETS if n.name == steps.CUDA_GOAL_AT)
    e = steps.measure_cuda(net, "float32", repeats=2, target=0.01)
    for side in ("eager", "graph"):
        positive_spread(e["seconds_per_step"][side], side)
        ok, msg = close(e["samples_per_s"][side], net.batch / e["seconds_per_step"][side]["median"])
        assert ok, msg
    ok, msg = close(e["graph_speedup"], e["seconds_per_step"]["eager"]["median"] / e["seconds_per_step"]["graph"]["median"])
    assert ok, msg
    assert e["graph_steps"]["replayed"]["forward_backward"] > 0 and e["graph_steps"]["fallback"] is None, e["graph_steps"]
    assert e["met"] == (e["graph_speedup"] >= e["goal"])


def test_bench_on_cuda_without_cuda_is_refused(capsys, monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["bench", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bench_refuses_a_bad_thread_count(capsys):
    assert main(["bench", "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err


def test_interleaved_times_only_the_work_and_reports_its_spread():
    calls = []

    def prepare():
        calls.append("prepare")
        return lambda: calls.append("work")
    times = interleaved({"a": prepare, "b": prepare}, repeats=3, warmup=1)
    assert calls.count("work") == 8 and calls.count("prepare") == 8
    assert set(times) == {"a", "b"} and all(isinstance(t, Spread) and t.repeats == 3 for t in times.values())
    assert Spread.of([3.0, 1.0, 2.0]) == Spread(1.0, 2.0, 3.0, 3)


def test_the_machine_line_names_numpys_kernels_and_a_forced_core_type(quick, monkeypatch):
    from threadpoolctl import threadpool_info
    from backprop_oracle.compare.bench.suite import machine
    text, r = quick
    arch = [i["architecture"] for i in threadpool_info() if i.get("user_api") == "blas" and i.get("architecture")]
    if arch:
        assert f"{arch[0]} kernels" in text.splitlines()[0], text.splitlines()[0]
    forced = "OPENBLAS_CORETYPE" in r["machine"]["blas_forced"]
    assert ("is set here: NumPy's OpenBLAS runs those kernels" in text) == forced
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Zen")
    monkeypatch.delenv("OPENBLAS_L2_SIZE", raising=False)
    assert machine()["blas_forced"] == {"OPENBLAS_CORETYPE": "Zen"}
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    assert machine()["blas_forced"] == {}
