"""The installed package in a user's own project folder, whose files are called what course files are
called: compare.py, manual.py, torch_ref.py. None of them may shadow the package, its pytest
plugin or its command line (everything is imported as backprop_oracle.*)."""
import os
import pathlib
import subprocess
import sys
import textwrap

BIN = pathlib.Path(sys.executable).parent

# The user's own files, named like the package's parts. Importing any of them by mistake fails loudly.
CLASHING = {
    "compare.py": "raise ImportError('the user\\'s own compare.py was imported')\n",
    "manual.py": "raise ImportError('the user\\'s own manual.py was imported')\n",
    "torch_ref.py": "raise ImportError('the user\\'s own torch_ref.py was imported')\n",
}

LAYER = '''
import numpy as np


class MyLinear:
    """y = x W^T + b, W (out, in); backward sets weight_grad and bias_grad and returns dL/dx."""

    def __init__(self, n_in, n_out, seed=0):
        rng = np.random.default_rng(seed)
        self.weight = rng.normal(size=(n_out, n_in))
        self.bias = rng.normal(size=n_out)

    def forward(self, x):
        self.x = x
        return x @ self.weight.T + self.bias

    def backward(self, dy):
        self.weight_grad = dy.T @ self.x
        self.bias_grad = dy.sum(axis=0){bias_mistake}
        return dy @ self.weight
'''

TESTS = '''
import torch

from backprop_oracle import check_layer
from backprop_oracle.manual import Linear
from layer import MyLinear


def test_with_the_fixture(check_gradients):
    check_gradients.layer(Linear(3, 2), torch.nn.Linear(3, 2), input_shape=(4, 3))


def test_with_the_function():
    assert check_layer(Linear(3, 2), torch.nn.Linear(3, 2), input_shape=(4, 3)).passed


def test_my_layer(check_gradients):
    check_gradients.layer(MyLinear(3, 2), torch.nn.Linear(3, 2), input_shape=(4, 3))
'''


def project(tmp_path, bias_mistake=""):
    for name, text in CLASHING.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "layer.py").write_text(LAYER.format(bias_mistake=bias_mistake))
    (tmp_path / "test_mine.py").write_text(textwrap.dedent(TESTS))
    return tmp_path


def run(args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["COLUMNS"] = "200"      # pytest cuts its summary lines at the terminal's width
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


def test_a_project_with_clashing_file_names_runs_its_tests_with_the_plugin(tmp_path):
    p = project(tmp_path)
    proc = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_mine.py"], p)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed" in proc.stdout, proc.stdout


def test_a_failing_check_in_that_project_is_the_one_line_verdict(tmp_path):
    p = project(tmp_path, bias_mistake=" * 0.5")
    proc = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_mine.py"], p)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed, 2 passed" in proc.stdout, proc.stdout
    summary = [line for line in proc.stdout.splitlines() if line.startswith("FAILED")]
    assert len(summary) == 1 and "test_my_layer" in summary[0] and "bias.grad wrong" in summary[0], proc.stdout


def test_the_command_line_runs_from_that_project(tmp_path):
    p = project(tmp_path)
    proc = run([str(BIN / "backprop-oracle"), "run", "or-gate", "--epochs", "50", "--quiet", "--no-tensorboard"], p)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "or-gate" in proc.stdout and "agree" in proc.stdout, proc.stdout
    proc = run([sys.executable, "-m", "backprop_oracle", "list"], p)
    assert proc.returncode == 0 and "or-gate" in proc.stdout, proc.stdout + proc.stderr


def test_the_package_imports_nothing_heavy_and_no_user_file(tmp_path):
    p = project(tmp_path)
    code = ("import sys, backprop_oracle, backprop_oracle.manual\n"
            "assert 'torch' not in sys.modules\n"
            "assert not {'compare', 'manual', 'torch_ref'} & set(sys.modules), sorted(sys.modules)\n"
            "print(backprop_oracle.manual.Linear.__module__)")
    proc = run([sys.executable, "-c", code], p)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "backprop_oracle.manual.linear"
