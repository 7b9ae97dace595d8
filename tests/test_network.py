"""Linear, Sequential and mlp: torch's shapes and names, state dicts, and gradients checked by
torch autograd and by central finite differences (a third opinion, away from kinks)."""
import numpy as np
import pytest
import torch

from backprop_oracle import manual
from backprop_oracle import torch_ref
from tests.helpers import assert_close

rng = np.random.default_rng(3)


def build_pair(sizes, activation, output_activation, seed=0):
    m = manual.mlp(sizes, activation, output_activation)
    state = manual.init_parameters(m, "xavier_normal", seed)
    m.load_state_dict(state)
    t = torch_ref.mlp(sizes, activation, output_activation)
    t.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    return m, t, state


def test_parameter_names_and_shapes_are_torchs():
    m, t, _ = build_pair([4, 3, 2], "relu", "identity")
    assert [(n, p.shape) for n, p in m.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in t.named_parameters()] == \
        [("0.weight", (3, 4)), ("0.bias", (3,)), ("2.weight", (2, 3)), ("2.bias", (2,))]


def test_linear_is_x_times_w_transposed_plus_b():
    lin = manual.Linear(3, 2)
    lin.weight.data[...] = [[1, 2, 3], [4, 5, 6]]
    lin.bias.data[...] = [0.5, -1]
    assert_close("Linear forward", lin.forward(np.array([[1.0, 0, -1]])), [[-1.5, -3.0]])


def test_linear_rejects_wrong_input_width():
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 3\), got \(2, 4\)"):
        manual.Linear(3, 2).forward(np.zeros((2, 4)))


def test_state_dict_round_trip_and_mismatch_errors():
    m, _, state = build_pair([2, 3, 1], "tanh", "sigmoid")
    sd = m.state_dict()
    for k in state:
        assert_close(f"state_dict[{k}]", sd[k], state[k])
    with pytest.raises(KeyError, match="missing \\['2.bias'\\]"):
        m.load_state_dict({k: v for k, v in sd.items() if k != "2.bias"})
    with pytest.raises(ValueError, match="has shape \\(3,\\), the model's is \\(1,\\)"):
        m.load_state_dict(dict(sd, **{"2.bias": np.zeros(3)}))


@pytest.mark.parametrize("activation,output_activation,loss", [
    ("sigmoid", "sigmoid", "squared_error"),
    ("tanh", "identity", "mse"),
    ("relu", "identity", "cross_entropy"),
    ("leaky_relu", "softmax", "sum_squared_error"),
    ("sigmoid", "sigmoid", "bce"),
    ("tanh", "identity", "hinge"),
])
def test_network_gradients_match_autograd(activation, output_activation, loss):
    sizes = [5, 4, 3, 1 if loss in ("bce", "hinge") else 3]
    m, t, _ = build_pair(sizes, activation, output_activation)
    X = rng.normal(size=(8, 5))
    if loss == "cross_entropy":
        Y = rng.integers(0, 3, size=8)
    elif loss == "hinge":
        Y = np.where(rng.random((8, 1)) < 0.5, -1.0, 1.0)
    else:
        Y = rng.random((8, sizes[-1]))
    cost, grads = manual.value_and_grad(m, loss, X, Y)
    cost_t, grads_t = torch_ref.value_and_grad(t, loss, torch.tensor(X), torch.tensor(Y))
    assert_close(f"{loss} cost", cost, cost_t)
    for name in grads:
        assert_close(f"dCost/d{name}", grads[name], grads_t[name])


def central_difference(model, loss, X, Y, name, h=1e-6):
    """(C(θ + h) - C(θ - h)) / 2h for every element of one parameter."""
    p = dict(model.named_parameters())[name]
    out = np.zeros_like(p.data)
    loss_fn = manual.make_loss(loss)
    for i in np.ndindex(p.data.shape):
        old = p.data[i]
        p.data[i] = old + h
        plus = loss_fn(model.forward(X), Y)
        p.data[i] = old - h
        minus = loss_fn(model.forward(X), Y)
        p.data[i] = old
        out[i] = (plus - minus) / (2 * h)
    return out


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "leaky_relu"])
def test_manual_gradients_match_finite_differences(activation):
    m, _, _ = build_pair([3, 4, 2], activation, "softmax", seed=7)
    X = rng.normal(size=(6, 3))
    Y = rng.random((6, 2))
    # Keep every hidden pre-activation away from ReLU's kink, where the difference quotient is meaningless.
    z = X @ m[0].weight.data.T + m[0].bias.data
    assert np.abs(z).min() > 1e-3, "test data sits on a kink; choose another seed"
    _, grads = manual.value_and_grad(m, "mse", X, Y)
    from backprop_oracle.compare.verdict.tolerances import Tolerance
    fd_tol = Tolerance(rtol=1e-6, atol=1e-9)   # central differences: O(h²) truncation + 1e-16/h rounding
    for name in grads:
        assert_close(f"dCost/d{name} vs central differences", grads[name],
                     central_difference(m, "mse", X, Y, name), tol=fd_tol)


def test_loop_and_vectorized_batch_gradients_agree():
    """The OR-gate article's two ways to compute a batch gradient: accumulate Δ per example, or vectorize."""
    m, _, _ = build_pair([4, 5, 3], "tanh", "identity", seed=4)
    X, Y = rng.normal(size=(10, 4)), rng.integers(0, 3, size=10)
    for loss, target in (("cross_entropy", Y), ("mse", np.eye(3)[Y]), ("squared_error", np.eye(3)[Y])):
        cost_v, grads_v = manual.value_and_grad(m, loss, X, target)
        cost_l, grads_l = manual.loop_value_and_grad(m, loss, X, target)
        assert_close(f"{loss} cost, loop vs vectorized", cost_l, cost_v)
        for name in grads_v:
            assert_close(f"{loss} d/d{name}, loop vs vectorized", grads_l[name], grads_v[name])


def test_value_and_grad_leaves_parameters_and_grads_untouched():
    m, _, state = build_pair([2, 2, 1], "sigmoid", "sigmoid")
    for p in m.parameters():
        p.grad[...] = 7.0
    manual.value_and_grad(m, "squared_error", rng.normal(size=(3, 2)), rng.random((3, 1)))
    for name, p in m.named_parameters():
        assert_close(f"{name} value", p.data, state[name])
        assert_close(f"{name}.grad", p.grad, np.full_like(p.grad, 7.0))


@pytest.mark.parametrize("scheme", list(manual.INITIALISERS))
def test_initialisers_are_seeded_and_biases_zero(scheme):
    m = manual.mlp([30, 20, 10], "relu")
    a = manual.init_parameters(m, scheme, 5)
    b = manual.init_parameters(m, scheme, 5)
    for k in a:
        assert_close(f"{scheme} {k} with the same seed", a[k], b[k])
    assert not a["0.bias"].any(), "biases start at zero"


def test_he_and_xavier_have_their_variances():
    m = manual.mlp([400, 300], "relu")
    he = manual.init_parameters(m, "he_normal", 0)["0.weight"]
    xa = manual.init_parameters(m, "xavier_uniform", 0)["0.weight"]
    assert abs(he.var() / (2 / 400) - 1) < 0.02, f"He variance {he.var():.3g}, expected {2 / 400:.3g}"
    assert abs(xa.var() / (2 / 700) - 1) < 0.02, f"Xavier variance {xa.var():.3g}, expected {2 / 700:.3g}"


def test_training_loops_of_both_sides_give_the_same_costs():
    m, t, _ = build_pair([2, 4, 1], "tanh", "sigmoid", seed=3)
    X, Y = rng.normal(size=(12, 2)), rng.integers(0, 2, size=(12, 1)).astype(float)
    hm = manual.fit(m, "bce", manual.make_optimizer("sgd", m.parameters(), lr=0.5, momentum=0.9), X, Y,
                    epochs=4, batch_size=5, seed=11)
    ht = torch_ref.fit(t, "bce", torch_ref.make_optimizer("sgd", t.parameters(), lr=0.5, momentum=0.9),
                       torch.tensor(X), torch.tensor(Y), epochs=4, batch_size=5, seed=11)
    assert len(hm["step_cost"]) == 4 * 3
    assert_close("step costs, manual.fit vs torch_ref.fit", hm["step_cost"], ht["step_cost"])
    assert_close("epoch costs", hm["epoch_cost"], ht["epoch_cost"])
