"""check_network on code written in the courses' own layouts: the OR-gate article's vectorised code
(examples in columns), a CS231n-style two-layer net (W (in, out), a model with loss(X, y)), Michael
Nielsen's network.py (lists, a per-example backprop), the deeplearning.ai course's L-layer functions,
and layer objects chained by the user's own code. For each: the correct code passes, each planted
mistake fails at its node in the user's own names, and bad input is a clear error.
"""
import numpy as np
import pytest

from backprop_oracle.compare.check import CheckError, check_network
from backprop_oracle.compare.layouts.adapters import forward_backward, layer_chain, per_example


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def by_name(r):
    return {t.diff.name: t.diff for t in r.tensors}


# ---------------------------------------------------------------- the OR-gate article: examples in columns

def or_gate(mistake=None):
    """The article's vectorised single neuron: X (2, m), W (1, 2), b one number, Y (1, m), Cost = ½ mean."""
    def backprop(params, X, Y):
        W, b = params["W"], params["b"]
        m = X.shape[1]
        Z = W @ X + b
        A = sigmoid(Z)
        cost = (1 / (2 * m)) * np.sum((A - Y) ** 2)
        dZ = (A - Y) * A * (1 - A) / (1 if mistake == "forgot 1/m" else m)
        dW = X @ dZ.T if mistake == "transposed" else dZ @ X.T
        db = np.sum(dZ, axis=0, keepdims=True) if mistake == "axis" else np.sum(dZ)
        return cost, {"dW": dW, "db": db}
    return backprop


OR_SPEC = dict(sizes=(2, 1), activation="sigmoid", output_activation="sigmoid", loss="squared_error")


def test_the_or_gate_articles_vectorised_code_passes_in_its_own_layout():
    r = check_network(or_gate(), **OR_SPEC)
    assert r.passed, r.report()
    assert r.layout.startswith("examples in columns, W (out, in), b (out, 1)"), r.layout
    assert "layout: examples in columns" in r.report()
    d = by_name(r)
    assert set(d) == {"cost", "dL/dW1 (dW)", "dL/db1 (db)"}
    assert d["dL/dW1 (dW)"].shape == (1, 2) and d["dL/db1 (db)"].shape == (1, 1)
    assert all(x.max_abs < 1e-15 for x in d.values()), r.report()


def test_the_or_gate_bias_summed_over_the_wrong_axis_is_named_in_the_articles_terms():
    r = check_network(or_gate("axis"), **OR_SPEC)
    assert not r.passed and r.mismatch.diff.name == "dL/db1 (db)", r.report()
    assert r.mismatch.reason == ("your db sums over axis 0 of a (1, 4) array (dZ): examples are columns, sum over "
                                 "axis 1: np.sum(dZ, axis=1, keepdims=True)"), r.mismatch.reason


def test_the_or_gate_transposed_dw_and_forgotten_1_over_m_fail_at_dw():
    r = check_network(or_gate("transposed"), **OR_SPEC)
    assert not r.passed and r.mismatch.diff.name == "dL/dW1 (dW)"
    assert "grads['dW'] has shape (2, 1) where W is (1, 2): it looks transposed" in r.mismatch.reason
    r = check_network(or_gate("forgot 1/m"), **OR_SPEC)
    assert not r.passed and r.mismatch.diff.name == "dL/dW1 (dW)", r.report()
    assert "dL/dW1 and dL/db1 are both wrong" in r.mismatch.reason
    assert "forgotten 1/N" in r.hint, r.hint


# ---------------------------------------------------------------- two layers in columns: the deeplearning.ai course

def relu(z):
    return np.maximum(z, 0)


def L_model_forward(X, parameters):
    caches, A, L = [], X, len(parameters) // 2
    for l in range(1, L + 1):
        W, b = parameters[f"W{l}"], parameters[f"b{l}"]
        Z = W @ A + b
        caches.append(((A, W, b), Z))
        A = sigmoid(Z) if l == L else relu(Z)
    return A, caches


def compute_cost(AL, Y):
    m = Y.shape[1]
    return float(-np.sum(Y * np.log(AL) + (1 - Y) * np.log(1 - AL)) / m)


def course_backward(mistake=None):
    def linear_backward(dZ, cache):
        A_prev, W, b = cache
        m = A_prev.shape[1]
        dW = dZ @ A_prev.T / (1 if mistake == "dW without 1/m" else m)
        db = np.sum(dZ, axis=0 if mistake == "axis" else 1, keepdims=True) / m
        return W.T @ dZ, dW, db

    def L_model_backward(AL, Y, caches):
        grads, L = {}, len(caches)
        Y = Y.reshape(AL.shape)
        dA = -(np.divide(Y, AL) - np.divide(1 - Y, 1 - AL))
        for l in reversed(range(1, L + 1)):
            linear_cache, Z = caches[l - 1]
            if l == L:
                dZ = dA * sigmoid(Z) * (1 - sigmoid(Z))
            else:
                dZ = dA * (Z > 0) if mistake != "relu of A" else dA * (linear_cache[0].sum() > 0)
            dA, grads[f"dW{l}"], grads[f"db{l}"] = linear_backward(dZ, linear_cache)
            grads[f"dA{l - 1}"] = dA
        if mistake == "dA0 doubled":
            grads["dA0"] = 2 * grads["dA0"]
        return grads
    return L_model_backward


COURSE_SPEC = dict(sizes=(3, 4, 1), activation="relu", output_activation="sigmoid", loss="bce")


def test_the_deeplearning_ai_functions_pass_with_their_dA_compared():
    r = check_network(forward_backward(L_model_forward, course_backward(), compute_cost), **COURSE_SPEC)
    assert r.passed, r.report()
    assert "the layout of the OR-gate article and the deeplearning.ai course" in r.layout
    d = by_name(r)
    assert {"cost", "dL/dW1 (dW1)", "dL/db1 (db1)", "dL/dW2 (dW2)", "dL/db2 (db2)", "dL/da1", "dL/da0"} == set(d)
    assert d["dL/db1 (db1)"].shape == (4, 1) and d["dL/da0"].shape == (3, 5)   # (features, m): theirs
    assert any("dA_l / m is compared" in n for n in r.notes)


def test_the_deeplearning_ai_db_summed_over_axis_0_is_named_at_db1():
    r = check_network(forward_backward(L_model_forward, course_backward("axis"), compute_cost), **COURSE_SPEC)
    assert not r.passed and r.mismatch.diff.name == "dL/db1 (db1)", r.report()
    assert r.mismatch.reason.startswith("your db1 sums over axis 0 of a (4, 5) array (dZ1): examples are "
                                        "columns, sum over axis 1"), r.mismatch.reason


def test_the_deeplearning_ai_dW_without_1_over_m_fails_at_dW2_with_db2_right():
    r = check_network(forward_backward(L_model_forward, course_backward("dW without 1/m"), compute_cost),
                      **COURSE_SPEC)
    assert not r.passed and r.mismatch.diff.name == "dL/dW2 (dW2)", r.report()
    assert "dL/dW2 is wrong while dL/db2 is right" in r.mismatch.reason
    assert "dL/dz2 a1^T" in r.mismatch.reason, r.mismatch.reason     # their orientation, not torch's
    assert by_name(r)["dL/db2 (db2)"].passed


def test_a_wrong_gradient_of_the_input_is_named_as_such():
    r = check_network(forward_backward(L_model_forward, course_backward("dA0 doubled"), compute_cost), **COURSE_SPEC)
    assert not r.passed and r.mismatch.diff.name == "dL/da0", r.report()
    assert "the gradient with respect to the input" in r.mismatch.reason
    assert [t.diff.name for t in r.tensors if not t.passed] == ["dL/da0"]


def test_an_explicit_layout_is_taken_as_given():
    fb = forward_backward(L_model_forward, course_backward(), compute_cost)
    assert check_network(fb, **COURSE_SPEC, layout="deeplearning.ai").passed
    assert check_network(fb, **COURSE_SPEC, layout=dict(examples="columns", bias="column", names="W1")).passed
    with pytest.raises(CheckError, match=r"layout examples in rows.*does not fit .*examples columns"):
        check_network(fb, **COURSE_SPEC, layout="cs231n")


# ---------------------------------------------------------------- CS231n: a model, W (in, out), labels (N,)

class TwoLayerNet:
    def __init__(self, D, H, C, reg=0.0, mistake=None, seed=0):
        rng = np.random.default_rng(seed)
        self.params = {"W1": 1e-1 * rng.standard_normal((D, H)), "b1": np.zeros(H),
                       "W2": 1e-1 * rng.standard_normal((H, C)), "b2": np.zeros(C)}
        self.reg, self.mistake = reg, mistake

    def loss(self, X, y):
        W1, b1, W2, b2 = (self.params[k] for k in ("W1", "b1", "W2", "b2"))
        N, reg = X.shape[0], self.reg
        h = np.maximum(0, X @ W1 + b1)
        scores = h @ W2 + b2
        probs = np.exp(scores - scores.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        loss = -np.log(probs[np.arange(N), y]).mean() + reg * (np.sum(W1 * W1) + np.sum(W2 * W2))
        dscores = probs.copy()
        dscores[np.arange(N), y] -= 1
        dscores /= N
        k = 1 if self.mistake == "reg without 2" else 2
        grads = {"W2": h.T @ dscores + k * reg * W2, "b2": dscores.sum(axis=0)}
        dh = dscores @ W2.T
        if self.mistake != "no relu mask":
            dh[h <= 0] = 0
        grads["W1"] = X.T @ dh + k * reg * W1
        grads["b1"] = dh.sum(axis=0)
        return loss, grads


CS_SPEC = dict(activation="relu", output_activation="identity", loss="cross_entropy")


def test_a_cs231n_two_layer_net_passes_as_it_is_with_its_regularisation():
    net = TwoLayerNet(4, 6, 3, reg=0.05)
    saved = {k: v.copy() for k, v in net.params.items()}
    r = check_network(net, **CS_SPEC, l2=net.reg)
    assert r.passed, r.report()
    assert "W1 (in, out), b1 (out,): the layout of Stanford CS231n's two-layer net" in r.layout
    assert "l2 = 0.05" in r.reference
    d = by_name(r)
    assert d["dL/dW1 (W1)"].shape == (4, 6) and d["cost"].passed
    assert all(np.array_equal(net.params[k], v) for k, v in saved.items())     # its own arrays put back


def test_cs231n_regularisation_without_its_factor_2_fails_at_dW2_with_db2_right():
    net = TwoLayerNet(4, 6, 3, reg=0.05, mistake="reg without 2")
    r = check_network(net, **CS_SPEC, l2=net.reg)
    assert not r.passed and r.mismatch.diff.name == "dL/dW2 (W2)", r.report()
    assert by_name(r)["dL/db2 (b2)"].passed and by_name(r)["cost"].passed
    assert "a1^T dL/dz2" in r.mismatch.reason, r.mismatch.reason


def test_cs231n_without_the_relu_mask_fails_at_layer_1_and_an_unstated_l2_at_the_cost():
    r = check_network(TwoLayerNet(4, 6, 3, mistake="no relu mask"), **CS_SPEC)
    assert not r.passed and r.mismatch.diff.name == "dL/dW1 (W1)", r.report()
    assert "dL/dW1 and dL/db1 are both wrong" in r.mismatch.reason
    assert "activation derivative of layer 1 (relu)" in r.mismatch.reason
    r = check_network(TwoLayerNet(4, 6, 3, reg=0.05), **CS_SPEC)           # l2 not stated: the cost differs
    assert not r.passed and r.mismatch.diff.name == "cost", r.report()


# ---------------------------------------------------------------- Nielsen's network.py: lists, per example

class Network:
    def __init__(self, sizes, mistake=None, seed=0):
        rng = np.random.default_rng(seed)
        self.num_layers, self.sizes, self.mistake = len(sizes), sizes, mistake
        self.biases = [rng.standard_normal((y, 1)) for y in sizes[1:]]
        self.weights = [rng.standard_normal((y, x)) for x, y in zip(sizes[:-1], sizes[1:])]

    def backprop(self, x, y):
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        activation, activations, zs = x, [x], []
        for b, w in zip(self.biases, self.weights):
            z = np.dot(w, activation) + b
            zs.append(z)
            activation = sigmoid(z)
            activations.append(activation)
        cost_derivative = (y - activations[-1]) if self.mistake == "sign" else (activations[-1] - y)
        delta = cost_derivative * sigmoid(zs[-1]) * (1 - sigmoid(zs[-1]))
        nabla_b[-1] = delta
        nabla_w[-1] = np.dot(delta, activations[-2].transpose())
        if self.mistake == "transposed":
            nabla_w[-1] = nabla_w[-1].T
        for l in range(2, self.num_layers):
            sp = sigmoid(zs[-l]) * (1 - sigmoid(zs[-l]))
            delta = np.dot(self.weights[-l + 1].transpose(), delta) * sp
            nabla_b[-l] = delta
            nabla_w[-l] = np.dot(delta, activations[-l - 1].transpose())
        return (nabla_b, nabla_w)


NIELSEN_SPEC = dict(activation="sigmoid", output_activation="sigmoid")


def test_nielsens_network_passes_with_the_reduction_of_its_training_loop_stated():
    net = Network([3, 4, 2])
    r = check_network(net, **NIELSEN_SPEC)
    assert r.passed, r.report()
    assert "Michael Nielsen's network.py" in r.layout
    d = by_name(r)
    assert set(d) == {"dL/dW1 (nabla_w[0])", "dL/db1 (nabla_b[0])", "dL/dW2 (nabla_w[1])", "dL/db2 (nabla_b[1])"}
    assert d["dL/db1 (nabla_b[0])"].shape == (4, 1)
    assert any("update_mini_batch" in n and "no cost" in n for n in r.notes)


def test_nielsens_weight_decay_is_checked_as_its_training_loop_applies_it():
    lmbda, n = 5.0, 1000                       # network2.py: C = C0 + λ/(2n)·Σw²
    r = check_network(Network([3, 4, 2]), **NIELSEN_SPEC, l2=lmbda / (2 * n))
    assert r.passed and "l2 = 0.0025" in r.reference, r.report()
    assert any("weight decay 2·l2·w is added to each nabla_w" in note for note in r.notes)


def test_nielsens_cost_derivative_with_its_sign_flipped_fails_at_the_output_layer():
    r = check_network(Network([3, 4, 2], mistake="sign"), **NIELSEN_SPEC)
    assert not r.passed and r.mismatch.diff.name == "dL/dW2 (nabla_w[1])", r.report()
    assert "sign flipped" in r.hint


def test_nielsens_transposed_nabla_w_looks_transposed_in_its_own_shape():
    r = check_network(Network([3, 4, 2], mistake="transposed"), **NIELSEN_SPEC)
    assert not r.passed and r.mismatch.diff.name == "dL/dW2 (nabla_w[1])"
    assert "nabla_w[1] has shape (4, 2) where weights[1] is (2, 4): it looks transposed" in r.mismatch.reason


# ---------------------------------------------------------------- layer objects chained by the user's own code

class Dense:
    def __init__(self, n_in, n_out, rng):
        self.W, self.b = rng.standard_normal((n_in, n_out)), np.zeros(n_out)

    def forward(self, A):
        self.A_prev = A
        return A @ self.W + self.b

    def backward(self, dZ, mistake=None):
        self.dW = self.A_prev.T @ dZ
        self.db = dZ.mean(axis=0) if mistake else dZ.sum(axis=0)
        self.dA_prev = dZ @ self.W.T
        return self.dA_prev


class Sigmoid:
    def forward(self, Z):
        self.out = sigmoid(Z)
        return self.out

    def backward(self, dA, mistake=None):
        self.dA_prev = dA * self.out * (1 - self.out)
        return self.dA_prev


def chain(mistake=None):
    rng = np.random.default_rng(0)
    layers = [Dense(3, 4, rng), Sigmoid(), Dense(4, 2, rng), Sigmoid()]

    def step(X, Y):
        A = X
        for layer in layers:
            A = layer.forward(A)
        cost = 0.5 * np.sum((A - Y) ** 2) / X.shape[0]
        dA = (A - Y) / X.shape[0]
        for i, layer in reversed(list(enumerate(layers))):
            dA = layer.backward(dA, mistake if i == 0 else None)
        return cost
    return layers, step


def test_layer_objects_chained_by_the_users_code_pass_with_every_dA_prev_compared():
    r = check_network(layer_chain(*chain()), **NIELSEN_SPEC)
    assert r.passed, r.report()
    names = set(by_name(r))
    assert {"dL/dW1 (layers[0].dW)", "dL/db2 (layers[2].db)", "dL/dz2", "dL/da1", "dL/dz1", "dL/da0"} <= names


def test_a_layer_object_that_averages_its_bias_gradient_fails_at_db1():
    r = check_network(layer_chain(*chain("mean")), **NIELSEN_SPEC)
    assert not r.passed and r.mismatch.diff.name == "dL/db1 (layers[0].db)", r.report()
    assert "a mean where a sum belongs" in r.hint


# ---------------------------------------------------------------- choosing the layout, and bad input

def test_code_in_torchs_layout_still_runs_in_torchs_layout():
    def backprop(params, X, Y):
        W, b = params["W1"], params["b1"]
        a = X @ W.T + b
        dz = (a - Y) / X.shape[0]
        return 0.5 * np.sum((a - Y) ** 2) / X.shape[0], {"W1": dz.T @ X, "b1": dz.sum(0)}
    r = check_network(backprop, sizes=(3, 2), activation="identity", output_activation="identity")
    assert r.passed and r.layout.startswith("examples in rows, W1 (out, in), b1 (out,)"), r.layout


def test_two_layouts_that_fit_with_different_verdicts_are_refused():
    def backprop(params, X, Y):       # square weights: (out, in) and (in, out) both run
        W, b = params["W1"], params["b1"]
        a = X @ W.T + b
        dz = (a - Y) / X.shape[0]
        return 0.5 * np.sum((a - Y) ** 2) / X.shape[0], {"W1": dz.T @ X, "b1": dz.sum(0)}
    with pytest.raises(CheckError, match=r"two layouts fit .* give different verdicts \(examples in rows, W1 "
                                         r"\(out, in\).*PASSED; .*W1 \(in, out\).*wrong\); say which"):
        check_network(backprop, sizes=(3, 3), activation="identity", output_activation="identity")
    r = check_network(backprop, sizes=(3, 3), activation="identity", output_activation="identity", layout="torch",
                      naming="layers")
    assert r.passed, r.report()


def test_a_function_that_crashes_in_every_layout_says_so():
    def backprop(params, X, Y):
        raise ValueError("not written yet")
    with pytest.raises(CheckError, match="backprop raised ValueError: not written yet .*it raised in every layout "
                                         "tried"):
        check_network(backprop, **OR_SPEC)


def test_grads_of_the_wrong_count_are_named():
    def backprop(params, X, Y):
        c, g = or_gate()(params, X, Y)
        return c, {"dW": g["dW"]}
    with pytest.raises(CheckError, match=r"missing \['b'\].*\(1 of the 2 parameters' gradients found\)"):
        check_network(backprop, **OR_SPEC)
    net = Network([3, 4, 2])
    net.backprop = lambda x, y: ([np.zeros((4, 1))], [np.zeros((4, 3))])
    with pytest.raises(CheckError, match=r"returned 1 weight and 1 bias gradient\(s\); the network has 2 layer"):
        check_network(net, **NIELSEN_SPEC)


def test_a_layout_that_fits_nothing_and_an_unknown_layout_are_clear_errors():
    with pytest.raises(CheckError, match="unknown layout 'keras'; choose one of: auto, torch, or-gate"):
        check_network(or_gate(), **OR_SPEC, layout="keras")
    with pytest.raises(CheckError, match=r"layout examples in rows, weights\[l\].*does not fit .*examples columns"):
        check_network(Network([3, 4, 2]), **NIELSEN_SPEC, layout=dict(examples="rows", names="lists"))
    with pytest.raises(CheckError, match=r"object is not a network with lists weights, biases and backprop\(x, y\)"):
        check_network(per_example(object()), **NIELSEN_SPEC)


def test_the_pytest_fixture_takes_a_network_object(check_gradients):
    r = check_gradients.network(Network([3, 4, 2]), **NIELSEN_SPEC)
    assert r.passed and "nielsen" in r.layout.lower()
    with pytest.raises(AssertionError, match=r"dL/dW2 \(nabla_w\[1\]\) wrong"):
        check_gradients.network(Network([3, 4, 2], mistake="sign"), **NIELSEN_SPEC)


@pytest.mark.parametrize("example, family", [
    ("or_gate_article.py", "the OR-gate article"), ("cs231n_two_layer_net.py", "CS231n"),
    ("nielsen_network.py", "Nielsen's network.py"), ("deeplearning_ai_l_layer.py", "deeplearning.ai")])
def test_each_course_example_runs_and_passes(example, family, capsys):
    import pathlib
    import runpy
    path = pathlib.Path(__file__).resolve().parents[1] / "examples" / "course_layouts" / example
    with pytest.raises(SystemExit) as done:          # run as a script, in this process (torch is loaded)
        runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    assert done.value.code == 0, out
    assert ": PASSED" in out and family in out.splitlines()[2], out
