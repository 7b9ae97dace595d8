"""The trace of one example, node by node, reads like the OR-gate article's computation."""
import numpy as np
import pytest

from backprop_oracle import manual
from backprop_oracle.compare.cli import main
from backprop_oracle.compare.experiments.spec import SpecError
from backprop_oracle.compare.trace.example import ACTIVATION_FORMULAS, LOSS_FORMULAS, format_trace, trace_example


def node(trace, symbol):
    return next(n for n in trace.nodes if n.symbol == symbol)


def test_the_or_gates_first_example_is_the_seeds_computation():
    """x = (0, 0), y = 0, w = [0.1, 0.6], b = 0, α = 1 (the OR-gate article)."""
    t = trace_example("or-gate", 0)
    expected = {
        "x": [0.0, 0.0], "z": 0.0, "ŷ": 0.5, "L": 0.125,                     # forward
        "∂L/∂ŷ": 0.5, "∂ŷ/∂z": 0.25, "∂L/∂z": 0.125,                         # backward
        "∂L/∂w": [0.0, 0.0], "∂L/∂b": 0.125,
        "w →": [0.1, 0.6], "b →": -0.125,                                     # update
    }
    assert [n.symbol for n in t.nodes] == list(expected)
    for symbol, value in expected.items():
        n = node(t, symbol)
        assert np.allclose(n.manual.reshape(-1), value, rtol=1e-15, atol=0), (symbol, n.manual, value)
        assert np.allclose(n.torch.reshape(-1), value, rtol=1e-15, atol=0), (symbol, n.torch, value)
        assert n.diff.passed, n.diff.describe()
    assert t.passed


def test_the_fourth_example_moves_both_weights():
    t = trace_example("or-gate", 3)                  # x = (1, 1), y = 1
    y_hat = 1 / (1 + np.exp(-0.7))
    dz = (y_hat - 1) * y_hat * (1 - y_hat)
    assert node(t, "ŷ").manual.item() == pytest.approx(y_hat, rel=1e-15)
    assert node(t, "∂L/∂w").torch.reshape(-1) == pytest.approx([dz, dz], rel=1e-14)
    assert node(t, "w →").manual.reshape(-1) == pytest.approx([0.1 - dz, 0.6 - dz], rel=1e-14)


def test_the_printed_trace_shows_both_columns():
    text = format_trace(trace_example("or-gate", 0))
    assert text.splitlines()[0].startswith("or-gate, example 0: x = [0, 0], y = 0")
    assert any(line.split()[:2] == ["∂L/∂b", "Σ"] and line.split()[-3:] == ["0.125", "0.125", "agree"]
               for line in text.splitlines()), text
    assert "b − α ∂L/∂b, α = 1 (was 0)" in text and "-0.125      -0.125" in text
    assert "every node agrees" in text


def test_a_bad_example_or_preset_is_a_clear_error():
    with pytest.raises(SpecError, match="example must be an index from 0 to 3"):
        trace_example("or-gate", 4)
    with pytest.raises(SpecError, match="unknown preset 'nor'; choose one of: or-gate"):
        trace_example("nor")


def test_the_formulas_cover_every_registry_key():
    assert set(ACTIVATION_FORMULAS) == set(manual.ACTIVATIONS)
    assert set(LOSS_FORMULAS) == set(manual.LOSSES)


def test_the_command_line(capsys):
    assert main(["trace", "or-gate", "--example", "0"]) == 0
    out = capsys.readouterr().out
    assert "ŷ" in out and "0.125" in out and "-0.125" in out
    assert main(["trace", "or-gate", "--example", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("backprop-oracle trace: error: example must be") and "Traceback" not in err
