"""Results in a notebook: short reprs, HTML with the verdict badge, the wrong rows and the reason,
a cost figure; the Python API runs on the command line's thread count and restores the caller's."""
import io
import re
from html import escape as html_escape

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from backprop_oracle import CheckError, check_function, check_network, manual, run_lockstep
from backprop_oracle.compare.check.result import table_rows
from backprop_oracle.compare.experiments.presets import PRESETS
from backprop_oracle.compare.interactive.progress import ProgressBar, RunLines, progress_for
from backprop_oracle.compare.train.torch_only import train_torch

OR_GATE = PRESETS["or-gate"].runs[""].with_overrides(epochs=20)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def right(z, dL_ds):
    return dL_ds * sigmoid(z) * (1 - sigmoid(z))


def wrong(z, dL_ds):
    return dL_ds * sigmoid(z)            # sigmoid' written as sigmoid


def marked_rows(html):
    """The text of each table row shown as wrong (red and bold)."""
    return [re.sub(r"<[^>]+>", " ", row) for row in re.findall(r'<tr style="color:#cf222e[^"]*">(.*?)</tr>', html)]


# ---- check results --------------------------------------------------------------------------------

def test_a_wrong_check_shows_a_red_badge_the_wrong_row_and_the_reason():
    r = check_function(sigmoid, wrong, torch.sigmoid, shapes=(4, 3))
    html = r._repr_html_()
    assert "MISMATCH" in html and "#cf222e" in html
    rows = marked_rows(html)
    assert len(rows) == 1 and "dL/dz" in rows[0] and "WRONG" in rows[0], rows
    d = r.mismatch.diff
    assert f"yours {d.manual:.12g}, reference {d.torch:.12g}" in html
    assert html_escape(r.mismatch.reason.split("\n")[0]) in html
    assert "atol 1e-12 + rtol 1e-10" in html, "the tolerance is stated"
    assert "y (forward)" in html and "y (forward)" not in " ".join(rows), "the right row is not marked"


def test_a_passing_check_shows_a_green_badge_and_no_wrong_row():
    r = check_function(sigmoid, right, torch.sigmoid, shapes=(4, 3))
    html = r._repr_html_()
    assert r.passed and "PASSED" in html and "#1a7f37" in html
    assert marked_rows(html) == [] and "first wrong" not in html


def test_a_network_check_names_the_first_wrong_node_in_html():
    def backprop(params, X, Y):
        W1, b1 = params["0.weight"], params["0.bias"]
        z1 = X @ W1.T + b1
        a1 = sigmoid(z1)
        da1 = (a1 - Y) / X.shape[0]
        dz1 = da1 * a1                    # sigmoid' written as sigmoid
        cost = 0.5 * np.mean(np.sum((Y - a1) ** 2, axis=1))
        return cost, {"0.weight": dz1.T @ X, "0.bias": dz1.sum(axis=0)}, {"z1": z1, "a1": a1, "da1": da1, "dz1": dz1}

    r = check_network(backprop, sizes=(2, 1), activation="sigmoid", output_activation="sigmoid", loss="squared_error")
    html = r._repr_html_()
    assert not r.passed and "activation derivative of layer 1" in html
    assert any("dL/dz1" in row for row in marked_rows(html))


def test_the_table_names_the_trial_of_each_rows_worst_element():
    # Each row is a tensor's worst element over all trials; the first wrong line names its trial.
    # With several trials, the row says which trial it comes from, so the two never seem to disagree.
    r = check_function(sigmoid, wrong, torch.sigmoid, shapes=(4, 3), trials=3)
    rows = table_rows(r)
    assert rows[0][:4] == ["tensor", "shape", "worst at", "trial"]
    for t, row in zip(r.tensors, rows[1:]):
        assert row[0] == t.diff.name and row[2] == "[" + ", ".join(map(str, t.diff.index)) + "]"
        assert row[3] == str(t.trial)
    lines = r.report().splitlines()
    assert any(line.split()[:2] == ["tensor", "shape"] and "trial" in line for line in lines)
    first = next(line for line in lines if line.startswith("first wrong"))
    assert f"(trial {r.mismatch_trial})" in first
    one = check_function(sigmoid, wrong, torch.sigmoid, shapes=(4, 3), trials=1).report()
    assert "trial" not in next(line for line in one.splitlines() if line.strip().startswith("tensor")).split()


def test_repr_is_one_short_line_and_print_is_the_report():
    r = check_function(sigmoid, wrong, torch.sigmoid, shapes=(4, 3))
    assert repr(r).startswith("<CheckResult check_function") and "\n" not in repr(r) and len(repr(r)) < 300
    assert "TensorCheck(" not in repr(r) and "TensorDiff(" not in repr(r.tensors[0])
    assert str(r) == r.report()

    class Printer:               # what IPython's pretty printer hands _repr_pretty_
        text_written = ""

        def text(self, s):
            self.text_written += s

    p = Printer()
    r._repr_pretty_(p, False)
    assert p.text_written == r.report()


# ---- lockstep results -----------------------------------------------------------------------------

def test_a_lockstep_result_shows_its_verdict_row_and_cost_curves():
    r = run_lockstep(OR_GATE, name="or-gate", progress=False)
    assert r.passed
    html = r._repr_html_()
    assert ">agree<" in html and "#1a7f37" in html and marked_rows(html) == []
    assert "<svg" in html and html.count("<polyline") == 2, "both sides' cost curves"
    assert f"{r.final_cost_manual:.6g}" in html and "float64: atol 1e-12" in html
    assert repr(r).startswith("<LockstepResult or-gate: agree, 20 steps") and len(repr(r)) < 200
    assert r.report().splitlines()[2].split()[:2] == ["or-gate", "20"] and str(r) == r.report()
    fig = r.plot()
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["manual", "torch"]
    np.testing.assert_array_equal(lines[0].get_ydata(), r.epoch_cost_manual)
    np.testing.assert_array_equal(lines[1].get_ydata(), r.epoch_cost_torch)
    assert fig._repr_png_().startswith(b"\x89PNG"), "a notebook shows the figure inline"


def test_a_differing_lockstep_result_marks_its_row_and_shows_the_wrong_node(monkeypatch):
    monkeypatch.setattr(manual.Sigmoid, "backward", lambda self, dL_da: dL_da * self.a)
    r = run_lockstep(OR_GATE, name="or-gate", progress=False)
    assert not r.passed
    html = r._repr_html_()
    assert ">DIFFER<" in html and "#cf222e" in html
    assert len(marked_rows(html)) == 1 and "DIFFER" in marked_rows(html)[0]
    assert "the activation derivative of layer 1 (sigmoid, module 1)" in html and "the node itself is wrong" in html
    assert "the sides disagree" in r.report() and repr(r).startswith("<LockstepResult or-gate: DIFFER")


# ---- thread counts --------------------------------------------------------------------------------

def blas_threads():
    return {p["internal_api"]: p["num_threads"] for p in threadpool_info()}


@pytest.fixture
def two_threads():
    """The caller's settings: torch on 2 threads, BLAS on 2."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    with threadpool_limits(limits=2):
        yield blas_threads()
    torch.set_num_threads(before)


def test_run_lockstep_runs_single_threaded_and_restores_the_callers_threads(two_threads):
    seen = []

    class Spy:
        def on_step(self, run, rec):
            seen.append((torch.get_num_threads(), set(blas_threads().values())))

    run_lockstep(OR_GATE, progress=False, observers=[Spy()])
    assert seen and set(t for t, _ in seen) == {1} and all(b <= {1} for _, b in seen), seen[:3]
    assert torch.get_num_threads() == 2 and blas_threads() == two_threads


def test_checks_and_train_run_single_threaded_and_restore_after_an_error(two_threads):
    seen = []

    def spying(z, dL_ds):
        seen.append(torch.get_num_threads())
        return right(z, dL_ds)

    assert check_function(sigmoid, spying, torch.sigmoid, shapes=(4, 3)).passed
    assert set(seen) == {1} and torch.get_num_threads() == 2

    def broken(z, dL_ds):
        raise RuntimeError("the user's backward failed")

    with pytest.raises(CheckError, match="the user's backward failed"):
        check_function(sigmoid, broken, torch.sigmoid, shapes=(4, 3))
    assert torch.get_num_threads() == 2 and blas_threads() == two_threads

    inside = []

    class Spy:
        def on_step(self, run, rec):
            inside.append(torch.get_num_threads())

    train_torch(OR_GATE.with_overrides(device="cpu"), progress=False, observers=[Spy()])
    assert set(inside) == {1} and torch.get_num_threads() == 2 and blas_threads() == two_threads


# ---- progress -------------------------------------------------------------------------------------

class Clock:
    def __init__(self, *times):
        self.times = list(times)

    def __call__(self):
        return self.times.pop(0)


def test_the_api_shows_no_line_for_a_short_run_and_one_for_a_long_one():
    r = run_lockstep(OR_GATE, progress=False)
    short, long = io.StringIO(), io.StringIO()
    for stream, clock in ((short, Clock(0.0, 1.9)), (long, Clock(0.0, 2.5))):
        lines = RunLines(stream, clock=clock, delay=2.0)
        lines.on_start(type("Run", (), {"name": "or-gate"})())
        lines.on_end(None, r)
    assert short.getvalue() == ""
    assert long.getvalue() == f"or-gate: 20 steps, cost {r.final_cost_manual:.4g} agree, 2.5 s\n"
    assert progress_for(True) is None
    assert isinstance(progress_for(False, io.StringIO(), delay=2.0), RunLines)


def test_a_bar_with_a_delay_draws_nothing_for_a_short_run():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    bar = progress_for(False, stream, delay=60.0)
    assert isinstance(bar, ProgressBar)
    run_lockstep(OR_GATE, progress=False, observers=[bar])
    assert stream.getvalue() == ""


# ---- optimizer and schedule checks ----------------------------------------------------------------

def averaged_momentum(w, dw, config):
    """SGD with momentum, CS231n's form, the buffer an average: v = μ v + (1 − μ) dw (torch: v = μ v + dw)."""
    v = config.get("velocity", np.zeros_like(w))
    v = config["momentum"] * v + (1 - config["momentum"]) * dw
    config["velocity"] = v
    return w - config["learning_rate"] * v, config


def test_an_update_check_shows_its_wrong_steps_and_cause_and_runs_single_threaded(two_threads):
    from backprop_oracle import check_optimizer
    r = check_optimizer(averaged_momentum, "sgd", steps=4, lr=0.1, momentum=0.9)
    assert not r.passed and torch.get_num_threads() == 2 and blas_threads() == two_threads
    html = r._repr_html_()
    assert "MISMATCH" in html and "#cf222e" in html
    rows = marked_rows(html)
    assert rows and len(rows) == sum(not s.passed for s in r.steps)
    assert html_escape(_first_line(r.report())) in html
    assert r.report().startswith(f"check_optimizer {r.name}: MISMATCH")


def _first_line(report):
    return next(line for line in report.splitlines() if line.startswith("first wrong"))
