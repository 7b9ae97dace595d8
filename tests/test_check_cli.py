"""backprop-oracle check: exit 0 when every gradient agrees, 1 on a mismatch, 2 on a usage error
(one line on stderr, no traceback)."""
import json
import subprocess
import sys
import textwrap

import pytest

from backprop_oracle.compare.cli import main

STUDENT = textwrap.dedent('''
    import numpy as np

    def sigmoid(z):
        return 1 / (1 + np.exp(-z))

    def backprop(params, X, Y, slip=False):
        """One hidden sigmoid layer, sigmoid output, ½-squared-error cost averaged over the batch."""
        W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
        N = X.shape[0]
        a1 = sigmoid(X @ W1.T + b1)
        a2 = sigmoid(a1 @ W2.T + b2)
        cost = 0.5 * np.sum((Y - a2) ** 2) / N
        dz2 = (a2 - Y) / N * a2 * (1 - a2)
        da1 = dz2 @ W2
        dz1 = da1 * (a1 if slip else a1 * (1 - a1))
        grads = {"W2": dz2.T @ a1, "b2": dz2.sum(0), "W1": dz1.T @ X, "b1": dz1.sum(0)}
        return cost, grads, {"dz2": dz2, "da1": da1, "dz1": dz1}

    def slipped(params, X, Y):
        return backprop(params, X, Y, slip=True)

    def crashes(params, X, Y):
        return params["W1"] @ params["W2"]
''')

NET = ["--sizes", "2,3,1", "--activation", "sigmoid", "--output-activation", "sigmoid",
       "--loss", "squared_error", "--naming", "layers"]


@pytest.fixture
def student(tmp_path):
    path = tmp_path / "student.py"
    path.write_text(STUDENT)
    return str(path)


def test_a_correct_backprop_exits_0(student, capsys):
    assert main(["check", f"{student}:backprop", *NET]) == 0
    out = capsys.readouterr().out
    assert ": PASSED" in out and "dL/dW1 (W1)" in out and "dL/dz1" in out


def test_a_mistake_exits_1_and_names_the_node(student, capsys):
    assert main(["check", f"{student}:slipped", *NET]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "first wrong (trial 1): dL/dz1" in out
    assert "the activation derivative of layer 1 (sigmoid" in out


def test_a_json_spec_file_and_a_json_report(student, tmp_path, capsys):
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps({"sizes": [2, 3, 1], "activation": "sigmoid", "output_activation": "sigmoid",
                                "loss": "squared_error", "naming": "layers", "trials": 3}))
    out_file = tmp_path / "result.json"
    assert main(["check", f"{student}:slipped", "--spec", str(spec), "--json", str(out_file)]) == 1
    result = json.loads(out_file.read_text())
    assert result["passed"] is False and result["trials"] == 3
    assert result["mismatch"]["tensor"]["name"] == "dL/dz1" and result["mismatch"]["layer"] == 1


@pytest.mark.parametrize("args, message", [
    (["{s}:nothing", *NET], "has no function 'nothing'; it defines: sigmoid, backprop, slipped, crashes"),
    (["missing.py:backprop", *NET], "missing.py: no such file"),
    (["{s}", *NET], "expected FILE.py:FUNCTION"),
    (["{s}:backprop"], "give the network: --sizes"),
    (["{s}:backprop", "--sizes", "2,x,1"], "--sizes: expected positive integers"),
    (["{s}:crashes", *NET], "crashes raised ValueError"),
    (["{s}:backprop", *NET[:-2], "--naming", "torch"], "the params are named 0.weight"),
    (["{s}:backprop", *NET, "--layout", "or-gate"], "backprop raised ValueError: matmul"),
    (["{s}:backprop", "--spec", "{s}"], "student.py: Expecting value"),
])
def test_usage_errors_exit_2_with_one_line(student, capsys, args, message):
    assert main(["check", *[a.format(s=student) for a in args]]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("backprop-oracle check: error: ") and message in captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


def test_without_naming_the_layout_is_found_and_said(student, capsys):
    assert main(["check", f"{student}:backprop", *NET[:-2]]) == 0
    out = capsys.readouterr().out
    assert "layout: examples in rows, W1 (out, in), b1 (out,)" in out and ": PASSED" in out


def test_a_network_object_is_checked_with_its_own_sizes(tmp_path, capsys):
    path = tmp_path / "nielsen.py"
    path.write_text(textwrap.dedent('''
        import numpy as np

        class Network:
            def __init__(self, sizes):
                rng = np.random.default_rng(0)
                self.sizes = sizes
                self.biases = [rng.standard_normal((y, 1)) for y in sizes[1:]]
                self.weights = [rng.standard_normal((y, x)) for x, y in zip(sizes[:-1], sizes[1:])]

            def backprop(self, x, y):
                a = 1 / (1 + np.exp(-(self.weights[0] @ x + self.biases[0])))
                delta = (a - y) * a * (1 - a)
                return [delta], [delta @ x.T * 2]          # planted: a factor 2 in nabla_w

        net = Network([3, 2])
    '''))
    assert main(["check", f"{path}:net", "--output-activation", "sigmoid"]) == 1
    out = capsys.readouterr().out
    assert "Michael Nielsen's network.py" in out and "first wrong (trial 1): dL/dW1 (nabla_w[0])" in out, out


def test_a_usage_error_from_the_installed_command_has_no_traceback(student):
    proc = subprocess.run([sys.executable, "-m", "backprop_oracle", "check", f"{student}:crashes", *NET],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert "crashes raised ValueError" in proc.stderr and "student.py:" in proc.stderr


def test_a_transposed_gradient_exits_1_and_says_transposed(tmp_path, capsys):
    path = tmp_path / "flipped.py"
    path.write_text(STUDENT + textwrap.dedent('''
        def flipped(params, X, Y):
            cost, grads, inter = backprop(params, X, Y)
            grads["W1"] = grads["W1"].T
            return cost, grads, inter
    '''))
    assert main(["check", f"{path}:flipped", *NET]) == 1
    out = capsys.readouterr().out
    assert "looks transposed" in out, out
