"""check_network: a student's whole-network backprop, right and with each classic mistake planted.

The student's code is written once below, the way a course writes it (W (out, in), examples in
rows, the cost the mean over the batch); ``mistake`` plants one error. Each case asserts where
the check says the first wrong node is, and why.
"""
import warnings

import numpy as np
import pytest
import torch

from backprop_oracle import torch_ref
from backprop_oracle.compare.check import CheckError, PrecisionWarning, check_network

SPEC = dict(sizes=(3, 3, 3, 2), activation="sigmoid", output_activation="sigmoid", loss="squared_error")


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def student(mistake=None, intermediates=True, naming="torch"):
    """A hand-written backprop for an mlp of sigmoids with the ½-squared-error cost."""
    def key(symbol, l):
        return f"{2 * (l - 1)}.{'weight' if symbol == 'W' else 'bias'}" if naming == "torch" else f"{symbol}{l}"

    def backprop(params, X, Y):
        L, N = len(params) // 2, X.shape[0]
        a, z = {0: X}, {}
        for l in range(1, L + 1):
            z[l] = a[l - 1] @ params[key("W", l)].T + params[key("b", l)]
            a[l] = sigmoid(z[l])
        cost = 0.5 * np.sum((Y - a[L]) ** 2) / N
        da = {L: (a[L] - Y) / N}
        if mistake == "sign":
            da[L] = (Y - a[L]) / N
        if mistake == "forgot 1/N":
            da[L] = a[L] - Y
        dz, grads, inter = {}, {}, {}
        for l in range(L, 0, -1):
            local = a[l] if mistake == "activation" and l == 1 else a[l] * (1 - a[l])
            dz[l] = da[l] * local
            grads[key("W", l)] = dz[l].T @ a[l - 1]
            grads[key("b", l)] = dz[l].mean(axis=0) if mistake == "bias mean" and l == L else dz[l].sum(axis=0)
            if l > 1:
                W = params[key("W", l)]
                da[l - 1] = dz[l] @ (W.T if mistake == "transpose" and l == 2 else W)
            inter.update({f"z{l}": z[l], f"a{l}": a[l], f"dz{l}": dz[l], f"da{l}": da[l]})
        return (cost, grads, inter) if intermediates else (cost, grads)
    return backprop


def relu_cross_entropy(params, X, Y):
    """A 2-layer relu network with the cross-entropy cost on logits, targets as class indices."""
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    N = X.shape[0]
    z1 = X @ W1.T + b1
    a1 = np.maximum(z1, 0)
    z2 = a1 @ W2.T + b2
    e = np.exp(z2 - z2.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    cost = -np.mean(np.log(p[np.arange(N), Y]))
    dz2 = p.copy()
    dz2[np.arange(N), Y] -= 1
    dz2 /= N
    da1 = dz2 @ W2
    dz1 = da1 * (z1 > 0)
    grads = {"W2": dz2.T @ a1, "b2": dz2.sum(0), "W1": dz1.T @ X, "b1": dz1.sum(0)}
    return cost, grads, {"z1": z1, "a1": a1, "z2": z2, "dz2": dz2, "da1": da1, "dz1": dz1}


# ---------------------------------------------------------------- right

def test_a_correct_network_passes_every_tensor():
    r = check_network(student(), SPEC)
    assert r.passed, r.report()
    names = [t.diff.name for t in r.tensors]
    assert names[:7] == ["z1", "a1", "z2", "a2", "z3", "a3", "cost"]
    assert names[7:11] == ["dL/da3", "dL/dz3", "dL/dW3 (4.weight)", "dL/db3 (4.bias)"]
    assert len(names) == 19 and r.trials == 2
    assert all(t.diff.max_abs < 1e-14 for t in r.tensors), r.report()


def test_relu_and_cross_entropy_with_the_seeds_names_pass():
    r = check_network(relu_cross_entropy, sizes=(4, 5, 3), activation="relu", output_activation="identity",
                      loss="cross_entropy", naming="layers", batch=6, trials=3)
    assert r.passed, r.report()
    assert "dL/dW1 (W1)" in [t.diff.name for t in r.tensors]


def test_the_reference_numbers_are_torch_autograds():
    """With given params and data, the reference column is exactly torch_ref.value_and_grad's."""
    rng = np.random.default_rng(3)
    params = {"0.weight": rng.normal(size=(2, 2)), "0.bias": rng.normal(size=2)}
    X, Y = rng.normal(size=(5, 2)), rng.uniform(size=(5, 2))
    r = check_network(student(intermediates=False), sizes=(2, 2), activation="sigmoid",
                      output_activation="sigmoid", data=(X, Y), params=params)
    model = torch_ref.mlp((2, 2), "sigmoid", "sigmoid")
    model.load_state_dict({k: torch.tensor(v) for k, v in params.items()})
    cost, grads = torch_ref.value_and_grad(model, "squared_error", torch.tensor(X), torch.tensor(Y))
    by_name = {t.diff.name: t.diff for t in r.tensors}
    assert r.trials == 1 and by_name["cost"].torch == pytest.approx(cost, rel=1e-15)
    d = by_name["dL/dW1 (0.weight)"]
    assert d.torch == pytest.approx(grads["0.weight"][d.index].item(), rel=1e-15), d.describe()


# ---------------------------------------------------------------- each planted mistake, located

@pytest.mark.parametrize("mistake, tensor, reason, hint", [
    ("activation", "dL/dz1", "activation derivative of layer 1", "elements differ"),
    ("transpose", "dL/da1", "input gradient in layer 2 (dL/da_1 = dL/dz_2 W_2, no transpose)", "elements differ"),
    ("forgot 1/N", "dL/da3", "loss derivative of squared_error", "forgotten 1/N"),
    ("sign", "dL/da3", "loss derivative of squared_error", "sign flipped"),
    ("bias mean", "dL/db3 (4.bias)", "sum over the batch of dL/dz", "a mean where a sum belongs"),
])
def test_each_mistake_is_located_at_its_node(mistake, tensor, reason, hint):
    r = check_network(student(mistake), SPEC)
    assert not r.passed
    m = r.mismatch
    assert m.diff.name == tensor and not m.diff.passed, r.report()
    assert reason in m.reason, r.report()
    assert hint in r.hint, r.report()
    # everything the walk checked before the first wrong node agreed
    before = [t for t in r.tensors if t.diff.name in m.agreed or t.diff.name in ("cost",)]
    assert all(t.passed for t in before)


@pytest.mark.parametrize("mistake, tensor, reason", [
    ("activation", "dL/dW1 (0.weight)", "so dL/dz1 is wrong"),
    ("transpose", "dL/dW1 (0.weight)", "dL/da1 = dL/dz2 W2"),
    ("forgot 1/N", "dL/dW3 (4.weight)", "the loss derivative of squared_error"),
    ("sign", "dL/dW3 (4.weight)", "the loss derivative of squared_error"),
    ("bias mean", "dL/db3 (4.bias)", "dL/db3 is wrong while dL/dW3 is right"),
])
def test_with_parameter_gradients_only_the_first_wrong_one_is_named(mistake, tensor, reason):
    r = check_network(student(mistake, intermediates=False), SPEC)
    assert r.mismatch.diff.name == tensor, r.report()
    assert reason in r.mismatch.reason, r.report()
    assert any("return intermediates" in n for n in r.notes)


def test_the_report_names_tensor_element_both_values_and_tolerance():
    r = check_network(student("sign"), SPEC)
    d = r.mismatch.diff
    text = r.report()
    assert d.manual == pytest.approx(-d.torch) and abs(d.torch) > 1e-3
    assert f"first wrong (trial 1): dL/da3 [{d.index[0]}, {d.index[1]}]: yours {d.manual:.12g}" in text
    assert f"reference {d.torch:.12g}" in text and "atol 1e-12 + rtol 1e-10" in text


# ---------------------------------------------------------------- precision

def test_float32_uses_float32_tolerance_and_warns():
    with pytest.warns(PrecisionWarning, match="float32"):
        r = check_network(student(), SPEC, dtype="float32")
    assert r.passed, r.report()
    assert r.dtype == "float32" and r.tolerance.rtol == 1e-4
    assert any("float32" in n for n in r.notes)


def test_float32_still_catches_a_mistake():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrecisionWarning)
        r = check_network(student("activation"), SPEC, dtype="float32")
    assert r.mismatch.diff.name == "dL/dz1", r.report()


# ---------------------------------------------------------------- bad usage: clear errors

def _returning(transform):
    good = student(intermediates=False)

    def fn(params, X, Y):
        return transform(*good(params, X, Y))
    return fn


def test_a_transposed_gradient_is_a_failed_check_that_says_so():
    # A classic mistake, not a usage error: the check fails (exit code 1 at the command line).
    fn = _returning(lambda c, g: (c, dict(g, **{"0.weight": g["0.weight"].T})))
    r = check_network(fn, sizes=(2, 3, 1))
    assert not r.passed, r.report()
    assert "grads['0.weight'] has shape (2, 3) where 0.weight is (3, 2): it looks transposed" in r.mismatch.reason


def test_a_bias_gradient_left_per_example_says_sum_over_the_batch():
    fn = _returning(lambda c, g: (c, dict(g, **{"2.bias": np.ones((4, 1))})))
    with pytest.raises(CheckError, match="one entry per example.*summed over the batch"):
        check_network(fn, sizes=(2, 3, 1), batch=4)


def test_missing_names_and_unknown_intermediates_are_listed():
    with pytest.raises(CheckError, match=r"missing \['2.bias'\]"):
        check_network(_returning(lambda c, g: (c, {k: v for k, v in g.items() if k != "2.bias"})), sizes=(2, 3, 1))
    with pytest.raises(CheckError, match="unknown intermediate.*'h1'.*z1, a1, dz1, da1"):
        check_network(_returning(lambda c, g: (c, g, {"h1": 0})), sizes=(2, 3, 1))


def test_a_function_that_raises_is_named_with_its_line():
    def backprop(params, X, Y):
        return params["W1"]
    with pytest.raises(CheckError, match=r"backprop raised KeyError: 'W1' \(at .*test_check_network.py:\d+ in "
                                         r"backprop\).*naming='layers'"):
        check_network(backprop, sizes=(2, 3, 1))


def test_nan_in_the_output_names_the_element():
    def nan_at(c, g):
        g["0.weight"][1, 0] = np.nan
        return c, g
    with pytest.raises(CheckError, match=r"grads\['0.weight'\].* is NaN at \[1, 0\]"):
        check_network(_returning(nan_at), sizes=(2, 3, 1))


def test_a_cost_per_example_and_a_wrong_return_are_explained():
    with pytest.raises(CheckError, match="cost .* has shape \\(4, 1\\); it must be one number"):
        check_network(_returning(lambda c, g: (np.ones((4, 1)), g)), sizes=(2, 3, 1), batch=4)
    with pytest.raises(CheckError, match="return \\(cost, grads\\)"):
        check_network(_returning(lambda c, g: c), sizes=(2, 3, 1))


def test_a_bad_spec_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown activation 'sigmod'; choose one of: identity"):
        check_network(student(), sizes=(2, 1), activation="sigmod")
    with pytest.raises(CheckError, match="unknown naming 'keras'; choose one of: torch, layers"):
        check_network(student(), sizes=(2, 1), naming="keras")


@pytest.mark.parametrize("loss, outputs, dtype", [("squared_error", 1, np.float64), ("bce", 3, np.float64),
                                                  ("cross_entropy", 3, np.int64), ("hinge", 1, np.float64)])
def test_random_targets_are_encoded_for_the_loss(loss, outputs, dtype):
    out_act = "identity" if loss in ("cross_entropy", "hinge") else "sigmoid"
    from backprop_oracle.compare.check.netspec import NetworkSpec, random_batch
    _, Y = random_batch(NetworkSpec((2, outputs), "sigmoid", out_act, loss), 64, np.random.default_rng(0), "float64")
    assert Y.dtype == dtype
    values = {"squared_error": {0, 1}, "bce": {0, 1}, "cross_entropy": {0, 1, 2}, "hinge": {-1, 1}}[loss]
    assert set(np.unique(Y).tolist()) == values
    assert Y.shape == ((64,) if loss == "cross_entropy" else (64, outputs))


def test_hinge_with_several_outputs_is_a_clear_error():
    with pytest.raises(CheckError, match="hinge is a binary loss"):
        check_network(student(), sizes=(2, 3), output_activation="identity", loss="hinge")


def test_float32_data_given_is_checked_as_float32():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(4, 3)).astype(np.float32), rng.uniform(size=(4, 2)).astype(np.float32)
    with pytest.warns(PrecisionWarning):
        r = check_network(student(), sizes=(3, 2), output_activation="sigmoid", data=(X, Y))
    assert r.passed and r.dtype == "float32", r.report()


def test_a_transposed_weight_gradient_is_a_failed_check_not_a_usage_error():
    import numpy as np
    from backprop_oracle.compare.check import check_network

    def backprop(params, X, Y):
        W, b = params["W1"], params["b1"]
        a = X @ W.T + b
        cost = 0.5 * np.sum((a - Y) ** 2) / X.shape[0]
        dz = (a - Y) / X.shape[0]
        return cost, {"W1": X.T @ dz, "b1": dz.sum(0)}        # dW as (in, out)
    r = check_network(backprop, sizes=(3, 2), activation="identity", output_activation="identity",
                      loss="squared_error", naming="layers")
    assert not r.passed and "looks transposed (its transpose has the right values)" in r.mismatch.reason, r.report()


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_softmax_jacobian_on_top_of_cross_entropy_is_explained_as_the_loss_derivative():
    def backprop(params, X, Y):
        W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
        N, Yh = X.shape[0], np.eye(3)[Y]
        a1 = np.tanh(X @ W1.T + b1)
        p = _softmax(a1 @ W2.T + b2)
        dp = (p - Yh) / N                                      # already dL/dz of cross-entropy on logits
        dz2 = p * (dp - (dp * p).sum(1, keepdims=True))        # softmax's Jacobian applied again
        dz1 = (dz2 @ W2) * (1 - a1 ** 2)
        return -np.sum(Yh * np.log(p)) / N, {"W1": dz1.T @ X, "b1": dz1.sum(0), "W2": dz2.T @ a1, "b2": dz2.sum(0)}
    r = check_network(backprop, sizes=(3, 4, 3), activation="tanh", output_activation="identity",
                      loss="cross_entropy", naming="layers")
    assert not r.passed
    assert "cross_entropy includes the softmax" in r.mismatch.reason, r.mismatch.reason
    assert "(identity)" not in r.mismatch.reason, r.mismatch.reason


def test_deltas_swapped_between_layers_are_named_as_swapped():
    def backprop(params, X, Y):
        W1, b1, W2, b2, W3, b3 = (params[k] for k in ("W1", "b1", "W2", "b2", "W3", "b3"))
        N = X.shape[0]
        a1 = np.tanh(X @ W1.T + b1)
        a2 = np.tanh(a1 @ W2.T + b2)
        z3 = a2 @ W3.T + b3
        dz3 = (z3 - Y) / N
        dz2 = (dz3 @ W3) * (1 - a2 ** 2)
        dz1 = (dz2 @ W2) * (1 - a1 ** 2)
        grads = {"W1": dz2.T @ X, "b1": dz2.sum(0), "W2": dz1.T @ a1, "b2": dz1.sum(0),    # swapped
                 "W3": dz3.T @ a2, "b3": dz3.sum(0)}
        return 0.5 * np.sum((z3 - Y) ** 2) / N, grads
    r = check_network(backprop, sizes=(4, 4, 4, 2), activation="tanh", output_activation="identity",
                      loss="squared_error", naming="layers")
    assert not r.passed
    assert "the deltas dL/dz2 and dL/dz1 look swapped" in r.mismatch.reason, r.mismatch.reason
