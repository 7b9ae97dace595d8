"""``backprop-oracle trace`` of a CNN: convolution, pools, batch norm, layer norm and dropout each
show their node with its formula (a convolution's dL/dW, dL/db, dL/dX; a normalisation's dL/dγ,
dL/dβ, dL/dx; dropout's mask and scale; a pool's routing), both sides' values beside it."""
import numpy as np
import pytest

from backprop_oracle import manual
from backprop_oracle.compare.cli import main
from backprop_oracle.compare.experiments.spec import ExperimentSpec, SpecError
from backprop_oracle.compare.trace.example import format_trace, trace_example

# module 0 conv, 1 batchnorm, 2 relu, 3 maxpool, 4 conv, 5 avgpool, 6 flatten, 7 dropout, 8 linear,
# 9 layernorm, 10 tanh, 11 linear
LAYERS = ("conv(2, 3, padding=1) batchnorm relu maxpool(2) conv(2, 3, stride=2, padding=1) avgpool(2, padding=1) "
          "flatten dropout(0.25) linear(6) layernorm tanh linear(10)")
SPEC = ExperimentSpec(dataset="digits", layers=LAYERS, input_shape=(1, 8, 8), loss="cross_entropy", lr=0.1, seed=1)


@pytest.fixture(scope="module")
def trace():
    return trace_example(SPEC, 3)


def node(trace, symbol):
    (n,) = [n for n in trace.nodes if n.symbol == symbol]
    return n


def test_every_node_of_a_cnn_agrees_and_says_its_formula(trace):
    assert trace.passed, format_trace(trace)
    expected = {
        "z₁": "W₁ ⋆ x + b₁: a cross-correlation, each window of x times W₁, padding 1",
        "h₁": "γ (z₁ − μ)/√(σ² + ε) + β; μ, σ² (biased) over the batch and positions, per channel",
        "h₃": "max of each 2×2 window of a₁",
        "z₂": "W₂ ⋆ h₃ + b₂: a cross-correlation, each window of h₃ times W₂, stride 2, padding 1",
        "h₅": "mean of each 2×2 window of z₂, padding 1 (the padding's zeros counted)",
        "m₇": "keep mask: 1 with probability 1 − p = 0.75, one draw for both sides",
        "h₇": "h₆ ⊙ m / (1 − p), p = 0.25: the kept elements scaled by 1.333",
        "h₉": "γ (z₃ − μ)/√(σ² + ε) + β; μ, σ² (biased) over each example (6)",
        "∂L/∂γ₉": "Σ ∂L/∂h₉ ⊙ x̂ over the batch",
        "∂L/∂β₉": "Σ ∂L/∂h₉ over the batch",
        "∂L/∂z₃": "(1/σ)(ĝ − mean ĝ − x̂ mean(ĝ x̂)), ĝ = γ ∂L/∂h₉; means over each example (6)",
        "∂L/∂h₆": "∂L/∂h₇ ⊙ m / (1 − p): the forward's mask and scale",
        "∂L/∂z₂": "∂L/∂h₅ / D on every element of its window",
        "∂L/∂W₂": "Σ ∂L/∂z₂ × the window of h₃ it saw, over examples and positions (h₃ ⋆ ∂L/∂z₂)",
        "∂L/∂b₂": "Σ ∂L/∂z₂ over examples and positions",
        "∂L/∂h₃": "W₂ᵀ ∂L/∂z₂ added back onto the windows of h₃ it came from: a transposed convolution, stride 2, "
                  "padding 1, the padding cropped",
        "∂L/∂a₁": "∂L/∂h₃ routed to each window's maximum of a₁ (the first in scan order), 0 elsewhere",
        "∂L/∂γ₁": "Σ ∂L/∂h₁ ⊙ x̂ over the batch and positions",
        "∂L/∂z₁": "(1/σ)(ĝ − mean ĝ − x̂ mean(ĝ x̂)), ĝ = γ ∂L/∂h₁; means over the batch and positions, per channel",
        "W₁ →": "W₁ − α ∂L/∂W₁, α = 0.1",
        "γ₉ →": "γ₉ − α ∂L/∂γ₉, α = 0.1",
    }
    for symbol, formula in expected.items():
        assert node(trace, symbol).formula.startswith(formula), f"{symbol}: {node(trace, symbol).formula!r}"
    text = format_trace(trace)
    assert "DIFFER" not in text and "every node agrees" in text


def test_the_nodes_hold_the_numbers_their_formulas_say(trace):
    keep, h6, h7 = node(trace, "m₇").manual, node(trace, "h₆").manual, node(trace, "h₇").manual
    assert np.array_equal(keep, node(trace, "m₇").torch) and set(np.unique(keep)) <= {0.0, 1.0}
    assert np.abs(h7 - h6 * keep / 0.75).max() <= 1e-15, "dropout: y = x m / (1 - p)"
    g6, g7 = node(trace, "∂L/∂h₆").manual, node(trace, "∂L/∂h₇").manual
    assert np.abs(g6 - g7 * keep / 0.75).max() <= 1e-15, "dropout's backward: the same mask and scale"
    # max-pool: the gradient lands on one element of each 2x2 window, the window's maximum
    a1, g_a1, g_h3 = node(trace, "a₁").manual[0], node(trace, "∂L/∂a₁").manual[0], node(trace, "∂L/∂h₃").manual[0]
    win = lambda t: t.reshape(2, 4, 2, 4, 2).transpose(0, 1, 3, 2, 4).reshape(2, 4, 4, 4)   # noqa: E731
    assert np.array_equal((win(g_a1) != 0).sum(-1) <= 1, np.ones((2, 4, 4), bool))
    assert np.abs(win(g_a1).sum(-1) - g_h3).max() <= 1e-15
    assert np.all((win(g_a1) == 0) | (win(a1) == win(a1).max(-1, keepdims=True)))
    # layer norm: dL/dβ = dL/dh (one example), dL/dγ = dL/dh ⊙ x̂ with x̂ = (z - μ)/√(σ² + ε)
    z3, g9 = node(trace, "z₃").manual[0], node(trace, "∂L/∂h₉").manual[0]
    x_hat = (z3 - z3.mean()) / np.sqrt(z3.var() + 1e-5)
    assert np.abs(node(trace, "∂L/∂β₉").manual - g9).max() <= 1e-15
    assert np.abs(node(trace, "∂L/∂γ₉").manual - g9 * x_hat).max() <= 1e-12


def test_a_planted_mistake_shows_at_its_node(monkeypatch):
    real = manual.conv.conv2d_backward

    def flipped(*args, **kwargs):
        dx, dW, db = real(*args, **kwargs)
        return dx, dW[:, :, ::-1, ::-1].copy(), db
    monkeypatch.setattr(manual.conv, "conv2d_backward", flipped)
    first = trace_example(SPEC, 3).first_disagreement()
    assert first is not None and first.symbol == "∂L/∂W₂", first and first.symbol


def test_a_batch_norm_over_features_needs_a_batch(capsys, tmp_path):
    spec = ExperimentSpec(dataset="digits", layers="flatten linear(6) batchnorm relu linear(10)", input_shape=(1, 8, 8),
                          loss="cross_entropy", lr=0.1)
    with pytest.raises(SpecError, match=r"module 2 \(batchnorm\) normalises over the batch.*--batch 2"):
        trace_example(spec, 0)
    t = trace_example(spec, 4, batch_size=3)
    assert t.passed and node(t, "h₂").manual.shape == (3, 6)
    assert "examples 4 to 6 as one batch" in format_trace(t)
    assert main(["run", "digits", "--layers", "flatten linear(6) batchnorm relu linear(10)", "--input-shape", "1,8,8",
                 "--loss", "cross_entropy", "--dump-config"]) == 0
    (tmp_path / "bn.toml").write_text(capsys.readouterr().out)
    assert main(["trace", "--config", str(tmp_path / "bn.toml")]) == 2
    err = capsys.readouterr().err
    assert "trace a batch of 2 or more (--batch 2)" in err and "Traceback" not in err, err
    assert main(["trace", "--config", str(tmp_path / "bn.toml"), "--batch", "2"]) == 0
    assert "∂L/∂γ₂" in capsys.readouterr().out
