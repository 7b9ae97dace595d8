"""Every user mistake gets a clear answer and leaves nothing behind.

Each row is one bad input at the command line: the exit code it must give (2 a usage error, 1 a
disagreement), words its one-line message must hold (the problem and the fix), and, for all of
them, no traceback and no file or folder left in the folder it ran in. The same mistakes made
from Python raise SpecError, DataError or CheckError (all ValueErrors) with the same words.
"""
import json
import math
import os
import struct
import textwrap

import numpy as np
import pytest
import torch

from backprop_oracle import manual
from backprop_oracle import torch_ref
from backprop_oracle import CheckError, DataError, ExperimentSpec, SpecError, check_layer, check_network
from backprop_oracle.compare.cli import main
from backprop_oracle.compare.data.idx import write_idx
from backprop_oracle.compare.lockstep.run import LockstepRun
from tests.random_data import random_dataset

STUDENT = textwrap.dedent('''
    import numpy as np

    def backprop(params, X, Y):
        W, b = params["0.weight"], params["0.bias"]
        z = X @ W.T + b
        dz = (z - Y) / X.shape[0]
        return 0.5 * np.sum((z - Y) ** 2) / X.shape[0], {"0.weight": dz.T @ X, "0.bias": dz.sum(0)}

    def wrong(params, X, Y):
        cost, grads = backprop(params, X, Y)
        return cost, {"0.weight": 2 * grads["0.weight"], "0.bias": grads["0.bias"]}

    def flipped(params, X, Y):
        cost, grads = backprop(params, X, Y)
        return cost, {"0.weight": grads["0.weight"].T, "0.bias": grads["0.bias"]}

    def exits(params, X, Y):
        import sys
        sys.exit(3)

    def uses_neighbour(params, X, Y):
        import neighbour           # imported when called, from the file's own folder
        return neighbour.backprop(params, X, Y)
''')

NET = ["--sizes", "3,2", "--activation", "identity", "--output-activation", "identity"]


def files(tmp_path):
    """The user's folder with the fixtures they made: a student file, spec files, bad MNIST folders."""
    (tmp_path / "student.py").write_text(STUDENT)
    (tmp_path / "neighbour.py").write_text(STUDENT)
    (tmp_path / "raises.py").write_text("raise RuntimeError('oops')\n")
    (tmp_path / "exits_on_import.py").write_text("import sys\nsys.exit(4)\n")
    (tmp_path / "a_file").write_text("")
    (tmp_path / "a_folder").mkdir()
    for name, spec in {"batch_negative": {"sizes": [3, 2], "batch": -4}, "batch_zero": {"sizes": [3, 2], "batch": 0}, "batch_string": {"sizes": [3, 2], "batch": "4"},
                       "batch_float": {"sizes": [3, 2], "batch": 2.5}, "seed_string": {"sizes": [3, 2], "seed": "x"},
                       "unknown_key": {"sizes": [3, 2], "lr": 1}, "sizes_one": {"sizes": [3]},
                       "loss_typo": {"sizes": [3, 2], "loss": "mse2"}}.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(spec))
    (tmp_path / "not_json.json").write_text("{sizes: [3, 2]")
    junk = tmp_path / "mnist_junk"
    junk.mkdir()
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (junk / stem).write_bytes(b"junk")
    empty = tmp_path / "mnist_empty"
    empty.mkdir()
    for stem, arr in (("train-images-idx3-ubyte", np.zeros((0, 28, 28), np.uint8)),
                      ("train-labels-idx1-ubyte", np.zeros(0, np.uint8)),
                      ("t10k-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8)),
                      ("t10k-labels-idx1-ubyte", np.zeros(2, np.uint8))):
        write_idx(empty / stem, arr)
    huge = tmp_path / "mnist_huge"
    huge.mkdir()
    for stem in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (huge / stem).write_bytes((empty / stem).read_bytes())
    (huge / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + struct.pack(">III", 2**32 - 1, 2**32 - 1, 28))
    return tmp_path


S = "student.py"
CASES = [
    # run: the spec's own checks, the same words as from Python
    (["run", "or-gate", "--seed", "-1"], 2, "seed must be an integer from 0 to 4294967295"),
    (["run", "moons", "--seed", "4294967296"], 2, "seed must be an integer from 0 to 4294967295"),
    (["run", "or-gate", "--seed", "x"], 2, "--seed: invalid int value"),
    (["run", "or-gate", "--epochs", "99999999999999999999"], 2, "epochs must be an integer from 1 to 1,000,000,000"),
    (["run", "or-gate", "--epochs", "0"], 2, "expected a positive integer"),
    (["run", "or-gate", "--lr", "-1"], 2, "expected a positive number"),
    (["run", "or-gate", "--lr", "inf"], 2, "expected a positive number"),
    (["run", "or-gate", "--lr", "nan"], 2, "expected a positive number"),
    (["run", "or-gat"], 2, "did you mean 'or-gate'?"),
    (["run", "xor:hiden"], 2, "xor has no run 'hiden'; its runs are xor:single-unit, xor:hidden"),
    (["run", "or-gate:x"], 2, "none: or-gate is a single run"),
    (["run"], 2, "name a preset to run, or 'all', or give --config FILE or --dataset NAME"),
    (["run", "or-gate", "--batch-size", "5"], 2, "batch size 5 is larger than its training set of 4 examples"),
    (["run", "or-gate", "--batch-size", "0"], 2, "expected a positive integer"),
    (["run", "sgd-vs-batch", "--batch-size", "8"], 2, "sgd-vs-batch compares runs that differ only in batch_size"),
    (["run", "or-gate", "--optimizer", "lion"], 2, "invalid choice: 'lion'"),
    (["run", "or-gate", "--dtype", "float16"], 2, "invalid choice: 'float16'"),
    (["run", "or-gate", "--device", "tpu"], 2, "unknown device 'tpu'; choose cpu, cuda, cuda:N or auto"),
    (["run", "digits", "--mnist-dir", "no/such/dir"], 2, "--mnist-dir: no/such/dir is not a directory"),
    (["run", "moons", "--mnist-dir", "."], 2, "--mnist-dir switches the digits preset to MNIST"),
    (["run", "digits", "--mnist-limit", "10"], 2, "--mnist-limit needs --mnist-dir"),
    (["run", "digits", "--mnist-dir", "mnist_junk"], 2, "bad magic number"),
    (["run", "digits", "--mnist-dir", "mnist_empty"], 2, "holds no images (shape (0, 28, 28))"),
    (["run", "digits", "--mnist-dir", "mnist_huge"], 2, "the file is corrupt or not an IDX file"),
    (["run", "digits", "--mnist-dir", "mnist_empty", "--mnist-limit", "0"], 2, "expected a positive integer"),
    (["run", "or-gate", "--logdir", "a_file"], 2, "--logdir: a_file is a file"),
    (["run", "or-gate", "--json", "a_folder"], 2, "--json: a_folder is a folder"),
    (["run", "or-gate", "--json", "no/such/dir/r.json"], 2, "does not exist; create it or choose another path"),
    (["run", "--bogus", "or-gate"], 2, "unrecognized arguments: --bogus"),
    # train
    (["train", "or-gat"], 2, "did you mean 'or-gate'?"),
    (["train", "moons", "--seed", "-1"], 2, "seed must be an integer from 0 to 4294967295"),
    (["train", "moons", "--epochs", "0"], 2, "expected a positive integer"),
    (["train", "or-gate", "--batch-size", "9"], 2, "batch size 9 is larger than its training set"),
    (["train", "or-gate", "--device", "tpu"], 2, "unknown device 'tpu'"),
    (["train", "or-gate", "--logdir", "a_file"], 2, "--logdir: a_file is a file"),
    # check
    (["check", "missing.py:backprop", *NET], 2, "missing.py: no such file"),
    (["check", S, *NET], 2, "expected FILE.py:FUNCTION"),
    (["check", f"{S}:nothing", *NET], 2, "has no function 'nothing'"),
    (["check", f"{S}:backprop"], 2, "give the network: --sizes 2,3,1"),
    (["check", f"{S}:backprop", "--sizes", "3"], 2, "--sizes: expected positive integers separated by commas"),
    (["check", f"{S}:backprop", "--sizes", "3,x"], 2, "--sizes: expected positive integers"),
    (["check", f"{S}:backprop", *NET, "--seed", "-1"], 2, "seed must be an integer from 0 to 4294967295"),
    (["check", f"{S}:backprop", *NET, "--batch", "0"], 2, "expected a positive integer"),
    (["check", f"{S}:backprop", "--spec", "batch_negative.json"], 2, "batch must be a positive integer, got -4"),
    (["check", f"{S}:backprop", "--spec", "batch_zero.json"], 2, "batch must be a positive integer, got 0"),
    (["check", f"{S}:backprop", "--spec", "batch_string.json"], 2, 'batch must be a positive integer, got "4"'),
    (["check", f"{S}:backprop", "--spec", "batch_float.json"], 2, "batch must be a positive integer, got 2.5"),
    (["check", f"{S}:backprop", "--spec", "seed_string.json"], 2, 'seed must be an integer from 0 to 4294967295, got "x"'),
    (["check", f"{S}:backprop", "--spec", "unknown_key.json"], 2, "unknown key(s) ['lr']"),
    (["check", f"{S}:backprop", "--spec", "sizes_one.json"], 2, "sizes must be a list of at least two positive"),
    (["check", f"{S}:backprop", "--spec", "loss_typo.json"], 2, "loss must be one of"),
    (["check", f"{S}:backprop", "--spec", "not_json.json"], 2, "--spec not_json.json: Expecting property name"),
    (["check", f"{S}:backprop", "--spec", "no_such.json"], 2, "No such file or directory"),
    (["check", f"{S}:backprop", "--preset", "or-gate", "--sizes", "2,3,1"], 2, "--preset takes the network and its data"),
    (["check", f"{S}:backprop", "--preset", "or-gat"], 2, "unknown preset"),
    (["check", f"{S}:exits", *NET], 2, "exits called sys.exit(3)"),
    (["check", "exits_on_import.py:f", *NET], 2, "called sys.exit(4); a file to check must not exit"),
    (["check", "raises.py:f", *NET], 2, "importing raises.py raised RuntimeError: oops"),
    (["check", f"{S}:backprop", *NET, "--json", "a_folder"], 2, "--json: a_folder is a folder"),
    (["check", f"{S}:wrong", *NET], 1, "MISMATCH"),
    (["check", f"{S}:flipped", *NET], 1, "looks transposed"),
    # trace
    (["trace", "or-gat"], 2, "unknown preset"),
    (["nosuchcommand"], 2, "invalid choice: 'nosuchcommand'"),
]


@pytest.mark.parametrize("args,code,words", CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_a_bad_input_gets_a_clear_answer_and_leaves_nothing(args, code, words, tmp_path, monkeypatch, capsys):
    folder = files(tmp_path)
    monkeypatch.chdir(folder)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    try:
        got = main(args)
    except SystemExit as e:          # argparse's own errors exit 2
        got = e.code
    out, err = capsys.readouterr()
    text = out + err
    assert got == code, f"{args}: exit {got}, expected {code}\n{text}"
    assert words in text, f"{args}: the message does not say {words!r}:\n{text}"
    assert "Traceback" not in text, text
    after = sorted(p.relative_to(folder) for p in folder.rglob("*") if "__pycache__" not in p.parts)
    assert after == [p for p in before if "__pycache__" not in p.parts], f"{args} left {set(after) - set(before)}"
    if code == 2:
        assert len([line for line in err.splitlines() if ": error: " in line]) == 1, err


def test_a_function_importing_its_neighbour_when_called_is_checked(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(files(tmp_path))
    assert main(["check", f"{S}:uses_neighbour", *NET]) == 0, capsys.readouterr()


def test_finished_files_get_the_umasks_permissions(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    old = os.umask(0o022)
    try:
        assert main(["run", "or-gate", "--epochs", "2", "--quiet", "--json", "r.json"]) == 0
    finally:
        os.umask(old)
    pictures = list(tmp_path.glob("runs/*/or-gate/*.png")) + list(tmp_path.glob("runs/*/or-gate/config.json"))
    assert pictures
    for path in [tmp_path / "r.json", *pictures]:
        assert oct(path.stat().st_mode & 0o777) == oct(0o644), path


def test_ctrl_c_prints_what_finished_and_writes_it(tmp_path, monkeypatch, capsys):
    import backprop_oracle.compare.cli.runner

    class Interrupting(LockstepRun):
        def run(self):
            if self.name == "and-gate":
                self.observers.append(type("Stop", (), {"on_step": lambda s, run, rec: (
                    (_ for _ in ()).throw(KeyboardInterrupt) if rec.step == 7 else None)})())
            return super().run()
    monkeypatch.setattr(backprop_oracle.compare.cli.runner, "LockstepRun", Interrupting)
    monkeypatch.chdir(tmp_path)
    code = main(["run", "or-gate", "and-gate", "--epochs", "20", "--quiet", "--json", "r.json"])
    out, err = capsys.readouterr()
    assert code == 130
    assert "or-gate " in out and "1 of 1 run(s) agree" in out, out
    assert "interrupted: and-gate at step 7" in err and "TensorBoard logs in runs" in err, err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["interrupted"] is True and report["interrupted_run"] == "and-gate"
    assert [r["preset"] for r in report["runs"]] == ["or-gate"]


# ---- the same mistakes from Python ------------------------------------------------------------

SPEC = dict(dataset="random", hidden_sizes=(3,), activation="tanh", output_activation="identity", loss="mse",
            epochs=1)
API_CASES = [
    (dict(lr=math.inf), "learning rate must be a positive number"),
    (dict(lr=True), "learning rate must be a positive number"),
    (dict(epochs=True), "epochs must be an integer from 1"),
    (dict(epochs=10**20), "epochs must be an integer from 1 to 1,000,000,000"),
    (dict(seed=-1), "seed must be an integer from 0 to 4294967295"),
    (dict(seed=2**32), "seed must be an integer from 0 to 4294967295"),
    (dict(optimizer_args={"momentum": math.nan}), "optimizer_args['momentum'] must be a finite number"),
    (dict(optimizer_args={"momentun": 0.9}), "it takes momentum, dampening, weight_decay, nesterov"),
    (dict(optimizer_args={"momentum": -1}), "Invalid momentum value: -1"),
    (dict(optimizer="adam", optimizer_args={"betas": (0.9, 1.5)}), "Invalid beta parameter at index 1"),
    (dict(schedule="step", schedule_args={"gama": 0.5}), "it takes step_size, gamma"),
    (dict(schedule="step"), "missing 1 required positional argument: 'step_size'"),
    (dict(schedule="cosine"), "give --t-max (schedule_args T_max)"),
    (dict(schedule="multistep"), "give --milestones (schedule_args milestones)"),
    (dict(init_args={"std": 1.0}), "init_args for xavier_uniform: unknown std; it takes gain"),
    (dict(optimizer_args=[0.9]), "optimizer_args must be a dict"),
    (dict(initial_params=[1, 2]), "initial_params must be a dict"),
    (dict(loss="hinge", output_activation="sigmoid"), "hinge takes scores of either sign"),
    (dict(activation="step"), "the step activation has no useful derivative"),
    (dict(batch_size=0), "batch size must be a positive integer"),
    (dict(device="tpu"), "unknown device 'tpu'"),
]


@pytest.mark.parametrize("changes,words", API_CASES, ids=[str(c[0])[:50] for c in API_CASES])
def test_the_same_mistakes_from_python_raise_spec_error(changes, words):
    with pytest.raises(SpecError) as e:
        ExperimentSpec(**dict(SPEC, **changes)).validate()
    assert words in str(e.value), str(e.value)
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize("changes,words", [
    (dict(batch_size=50), "batch size 50 is larger than the 12 training examples"),
    (dict(output_activation="softmax"), "softmax over a single output is always 1"),
    (dict(initial_params={"9.weight": [[1.0]]}), "initial_params: explicit values for unknown parameters ['9.weight']"),
    (dict(initial_params={"0.weight": np.ones((2, 2))}), "explicit value for '0.weight' has shape (2, 2), expected (3, 3)"),
    (dict(initial_params={"0.bias": [np.nan, 0, 0]}), "initial_params['0.bias'] holds NaN or infinity"),
])
def test_mistakes_found_when_the_data_is_known_raise_spec_error(changes, words):
    with pytest.raises(SpecError) as e:
        LockstepRun(ExperimentSpec(**dict(SPEC, **changes)), dataset=random_dataset(0, n=12, features=3))
    assert words in str(e.value), str(e.value)


def test_numpy_numbers_are_taken():
    spec = ExperimentSpec(**dict(SPEC, lr=np.float32(0.5), epochs=np.int64(2), seed=np.int64(3))).validate()
    assert LockstepRun(spec, dataset=random_dataset(0)).run().passed


def test_bad_data_raises_data_error():
    from backprop_oracle.compare.data.datasets import Dataset
    with pytest.raises(DataError, match="contains NaN at row 0"):
        Dataset("d", np.full((3, 2), np.nan), np.zeros((3, 1)), None, None, None, "regression", "")


@pytest.mark.parametrize("data,loss,words", [
    ((np.zeros((4, 3)), np.zeros((3, 2))), "mse", "X has 4 rows but Y has 3"),
    ((np.zeros((4, 3)), np.full((4, 2), 2.0)), "bce", "bce takes targets in [0, 1]"),
    ((np.zeros((4, 3)), np.array([0, 1, 7, 1])), "cross_entropy", "class indices 0..1 for 2 outputs"),
    ((np.full((4, 3), np.nan), np.zeros((4, 2))), "mse", "X holds NaN or infinity (row 0)"),
    ((np.zeros((4, 3)), np.zeros((4, 3))), "mse", "Y has shape (4, 3); the network's 2 output(s)"),
])
def test_check_network_refuses_data_it_cannot_use(data, loss, words):
    out = "sigmoid" if loss == "bce" else "identity"
    with pytest.raises(CheckError) as e:
        check_network(lambda p, X, Y: (0.0, {}), sizes=(3, 2), loss=loss, output_activation=out, data=data)
    assert words in str(e.value), str(e.value)


def test_check_network_refuses_a_bad_seed_or_batch():
    with pytest.raises(CheckError, match="seed must be an integer from 0"):
        check_network(lambda p, X, Y: (0.0, {}), sizes=(3, 2), seed=-1)
    with pytest.raises(CheckError, match="batch must be a positive integer"):
        check_network(lambda p, X, Y: (0.0, {}), sizes=(3, 2), batch=0)


def test_both_sides_refuse_hinge_labels_of_zero_and_one_alike():
    s, y = np.zeros((2, 1)), np.array([[0.0], [1.0]])
    with pytest.raises(ValueError) as m:
        manual.make_loss("hinge")(s, y)
    with pytest.raises(ValueError) as t:
        torch_ref.make_loss("hinge")(torch.tensor(s), torch.tensor(y))
    assert str(m.value) == str(t.value) == "hinge: targets must be -1 or +1 (binary SVM labels)"


def test_check_layer_refuses_what_it_cannot_compare():
    class Opaque:
        def __init__(self):
            self.W = np.ones((2, 3))

        def forward(self, x):
            self.x = x
            return x @ self.W.T

        def backward(self, dy):
            return dy @ self.W
    with pytest.raises(CheckError, match="found no gradient for them after backward"):
        check_layer(Opaque(), None, input_shape=(4, 3))


class FullDisk:
    """A file that takes its first ``room`` bytes and then answers as a full disk does."""

    def __init__(self, real, room):
        self.real, self.room = real, room

    def write(self, data):
        if self.room < len(data):
            self.real.write(data[:max(self.room, 0)])     # a partial write, as a full disk gives
            self.room = -1
            raise OSError(28, "No space left on device")
        self.room -= len(data)
        return self.real.write(data)

    def __getattr__(self, name):
        return getattr(self.real, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()


def test_a_full_disk_under_logdir_says_so_and_keeps_the_complete_records(tmp_path, monkeypatch, capsys):
    import builtins

    import backprop_oracle.compare.dashboards.event_file as event_file
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    real_open = builtins.open
    monkeypatch.setattr(event_file, "open", lambda path, mode: FullDisk(real_open(path, mode), 3000),
                        raising=False)
    monkeypatch.chdir(tmp_path)
    code = main(["run", "or-gate", "--epochs", "400", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 2 and "no space left on the device of" in err and "Traceback" not in err, err
    logs = list(tmp_path.glob("runs/*/or-gate/events.out.tfevents.*"))
    assert logs
    for events in logs:
        data, at, records = events.read_bytes(), 0, 0
        while at < len(data):        # TFRecord framing: length, its crc, the record, its crc
            (length,) = struct.unpack("<Q", data[at:at + 8])
            at += 8 + 4 + length + 4
            records += 1
        assert at == len(data) and records >= 1, f"{events}: a record cut in half at the end"
        EventAccumulator(str(events.parent)).Reload()      # TensorBoard reads what is left


def test_a_full_disk_under_json_says_so_and_leaves_no_file(tmp_path, monkeypatch, capsys):
    import backprop_oracle.compare.files
    real_fdopen = os.fdopen
    monkeypatch.setattr(backprop_oracle.compare.files.os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode), 100))
    monkeypatch.chdir(tmp_path)
    code = main(["run", "or-gate", "--epochs", "2", "--quiet", "--no-tensorboard", "--json", "r.json"])
    out, err = capsys.readouterr()
    assert code == 2 and "no space left on the device of" in err and "r.json was not written" in err, err
    assert not list(tmp_path.iterdir()), list(tmp_path.iterdir())


def test_a_seed_that_changes_nothing_is_said(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "or-gate", "moons", "--seed", "3", "--epochs", "2", "--no-tensorboard", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "or-gate: --seed changes nothing here" in err and "moons: --seed" not in err, err


def test_a_gpu_that_is_not_there_is_named_with_the_count(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"'cuda:1' was asked for but this machine has 1 GPU \(cuda:0\)"):
        torch_ref.resolve_device("cuda:1")


def test_more_processes_than_gpus_is_refused_before_any_waits(monkeypatch):
    from backprop_oracle.compare.train.torch_only import process_group
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(SpecError, match=r"torchrun starts 2 processes on this machine but it has 1 GPU .*"
                                        r"--nproc_per_node=1, or --device cpu"):
        with process_group("cuda"):
            pass
