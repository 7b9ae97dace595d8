"""The user's own data (``--data FILE``): CSV and NPZ files the tests write, the task and the
class numbering read off the targets, the stratified split from the seed, standardization from
the training split alone, the network sized to the file, and every bad file refused in one line."""
import json
import pickle

import numpy as np
import pytest

from backprop_oracle.compare.cli import main
from backprop_oracle.compare.data.datasets import load_dataset
from backprop_oracle.compare.experiments.own_data import on_file
from backprop_oracle.compare.experiments.presets import get_preset
from backprop_oracle.compare.lockstep.run import LockstepRun

RNG = np.random.default_rng(7)
X3 = RNG.normal(size=(90, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, -2.0]     # (90, 3), features on different scales
LABELS3 = np.repeat([4, 7, 9], 30)                                        # three classes, 30 each, not 0..2


def write_csv(path, header, rows):
    path.write_text(",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def three_class_csv(tmp_path):
    rows = [[*x, label] for x, label in zip(X3.tolist(), LABELS3.tolist())]
    return write_csv(tmp_path / "three.csv", ["f1", "f2", "f3", "kind"], rows)


def cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# ---- reading and the task -----------------------------------------------------------------------

def test_csv_classes_are_numbered_and_split_stratified(tmp_path):
    path = three_class_csv(tmp_path)
    ds = load_dataset("file", seed=3, path=str(path), target="kind")
    assert (ds.task, ds.num_classes) == ("multiclass", 3)
    assert (len(ds.X_train), len(ds.X_val)) == (72, 18), "20% of 90 to validation"
    # labels 4, 7, 9 are classes 0, 1, 2; each keeps 20% (6 of 30) in validation: stratified
    assert np.bincount(ds.y_val).tolist() == [6, 6, 6], np.bincount(ds.y_val)
    assert "labels 4, 7, 9 as 0..2" in ds.description, ds.description
    # every row comes back whole, with its own label
    rows = {tuple(x): label for x, label in zip(X3.tolist(), np.searchsorted([4, 7, 9], LABELS3).tolist())}
    for X, y in ((ds.X_train, ds.y_train), (ds.X_val, ds.y_val)):
        for x, label in zip(X.tolist(), y.tolist()):
            assert rows[tuple(x)] == label, f"row {x}: label {label}, the file says {rows[tuple(x)]}"
    again = load_dataset("file", seed=3, path=str(path), target="kind")
    other = load_dataset("file", seed=4, path=str(path), target="kind")
    assert np.array_equal(again.X_val, ds.X_val), "the same seed draws the same split"
    assert not np.array_equal(other.X_val, ds.X_val), "another seed draws another split"


def test_float_targets_are_regression_and_the_task_can_be_stated(tmp_path):
    y = X3 @ [1.0, 0.5, -2.0] + 0.25
    path = write_csv(tmp_path / "reg.csv", ["a", "b", "c", "y"], [[*x, t] for x, t in zip(X3.tolist(), y.tolist())])
    ds = load_dataset("file", path=str(path), target="y")
    assert ds.task == "regression" and ds.num_classes is None and ds.y_train.shape == (72, 1)
    as_numbers = load_dataset("file", path=str(three_class_csv(tmp_path)), target="kind", task="regress")
    assert as_numbers.task == "regression" and set(np.unique(as_numbers.y_train)) <= {4.0, 7.0, 9.0}
    with pytest.raises(ValueError, match=r"is not an integer, so it is no class label; use --task regress"):
        load_dataset("file", path=str(path), target="y", task="classify")


def test_standardize_uses_the_training_split_only(tmp_path):
    path = three_class_csv(tmp_path)
    raw = load_dataset("file", seed=1, path=str(path), target="kind")
    scaled = load_dataset("file", seed=1, path=str(path), target="kind", standardize_features=True)
    mean, std = raw.X_train.mean(axis=0), raw.X_train.std(axis=0)
    np.testing.assert_allclose(scaled.X_train.mean(axis=0), 0.0, atol=1e-12, err_msg="training means after scaling")
    np.testing.assert_allclose(scaled.X_train.std(axis=0), 1.0, rtol=1e-12, err_msg="training stds after scaling")
    # validation is scaled with the training split's numbers, not its own
    np.testing.assert_allclose(scaled.X_val, (raw.X_val - mean) / std, rtol=0, atol=1e-12,
                               err_msg="validation scaled by the training mean and std")
    assert abs(scaled.X_val.mean(axis=0)).max() > 1e-3, "validation's own mean is not forced to 0"


def test_npz_with_its_own_validation_split(tmp_path):
    path = tmp_path / "own.npz"
    np.savez(path, X=X3[:60], y=LABELS3[:60] // 7, X_val=X3[60:], y_val=LABELS3[60:] // 7)   # labels 0 and 1
    ds = load_dataset("file", path=str(path))
    assert ds.task == "binary" and len(ds.X_train) == 60 and np.array_equal(ds.X_val, X3[60:])
    assert "the file's own validation split" in ds.description


# ---- end to end, from the command line ----------------------------------------------------------

def test_run_on_a_csv_sizes_the_network_to_it(tmp_path, capsys):
    path = three_class_csv(tmp_path)
    report = tmp_path / "r.json"
    code, out, err = cli(capsys, "run", "spiral", "--data", str(path), "--target", "kind", "--standardize",
                         "--epochs", "3", "--no-tensorboard", "--json", str(report))
    assert code == 0, err
    (r,) = json.loads(report.read_text())["runs"]
    assert r["preset"] == "spiral-three" and r["passed"] and r["goal_met"] is None, r
    spiral = get_preset("spiral").runs[""]
    assert r["steps"] == 3 * -(-72 // spiral.batch_size), r["steps"]          # ceil(72 / batch) a epoch
    assert r["spec"]["dataset"] == "file" and r["spec"]["dataset_args"]["standardize_features"] is True
    assert r["spec"]["hidden_sizes"] == list(spiral.hidden_sizes), "the preset's hidden layers are kept"
    run = LockstepRun(on_file(get_preset("spiral"), path, target="kind").runs[""])
    assert run.problem.sizes == (3, *spiral.hidden_sizes, 3), f"3 features in, 3 classes out: {run.problem.sizes}"


def test_train_on_an_npz_regression(tmp_path, capsys):
    path = tmp_path / "reg.npz"
    np.savez(path, X=X3, y=np.sin(X3[:, :1]))
    report = tmp_path / "t.json"
    code, out, err = cli(capsys, "train", "regression", "--data", str(path), "--epochs", "2", "--device", "cpu",
                         "--no-tensorboard", "--json", str(report))
    assert code == 0, err
    (r,) = json.loads(report.read_text())["runs"]
    assert r["preset"] == "regression-reg" and r["steps"] > 0 and np.isfinite(r["final_cost"])


class WritesMarker:
    """Unpickled, it would create a file: a test that the file is never unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def bad_files(tmp_path):
    """(file, --target or None, the words the one-line error must hold)."""
    header = ["a", "b", "y"]
    cases = [
        (write_csv(tmp_path / "ok.csv", header, [[1, 2, 0], [3, 4, 1]]), "label", "no column 'label'; the columns are a, b, y"),
        (write_csv(tmp_path / "word.csv", header, [[1, 2, 0], [3, "four", 1]]), "y", "line 3, column 'b': 'four' is not a number"),
        (write_csv(tmp_path / "nan.csv", header, [[1, 2, 0], [3, "nan", 1]]), "y", "line 3, column 'b' is nan"),
        (write_csv(tmp_path / "empty.csv", header, [[1, "", 0], [3, 4, 1]]), "y", "line 2, column 'b' is empty"),
        (write_csv(tmp_path / "one.csv", header, [[1, 2, 1], [3, 4, 1]]), "y", "every example has the label 1"),
        (write_csv(tmp_path / "ragged.csv", header, [[1, 2, 0], [3, 1]]), "y", "line 3 has 2 cells but the header has 3"),
        (write_csv(tmp_path / "ok2.csv", header, [[1, 2, 0], [3, 4, 1]]), None, "name the target column with --target"),
    ]
    np.savez(tmp_path / "keys.npz", features=X3, labels=LABELS3)
    cases.append((tmp_path / "keys.npz", None, "the arrays are features, labels; an NPZ needs X and y"))
    np.savez(tmp_path / "nan.npz", X=np.where(np.eye(90, 3) == 1, np.nan, X3), y=LABELS3)
    cases.append((tmp_path / "nan.npz", None, "X contains NaN at row 0, column 0"))
    np.savez(tmp_path / "shape.npz", X=X3, y=LABELS3[:80])
    cases.append((tmp_path / "shape.npz", None, "X has 90 rows but y has 80 targets"))
    objects = np.array([WritesMarker(str(tmp_path / "MARKER")), 1, 2] * 30, dtype=object)
    np.savez(tmp_path / "pickle.npz", X=X3, y=objects)
    cases.append((tmp_path / "pickle.npz", None, "array y holds Python objects, which are not read"))
    (tmp_path / "notes.txt").write_text("1,2\n")
    cases.append((tmp_path / "notes.txt", None, "neither .csv nor .npz"))
    cases.append((tmp_path / "missing.csv", "y", "missing.csv not found"))
    return cases


@pytest.mark.parametrize("command", ["run", "train"])
def test_bad_files_exit_2_with_one_line(tmp_path, capsys, command):
    for path, target, words in bad_files(tmp_path):
        extra = [] if target is None else ["--target", target]
        code, out, err = cli(capsys, command, "moons", "--data", str(path), *extra, "--logdir", str(tmp_path / "runs"))
        assert code == 2, f"{path.name}: exit {code}, stderr {err!r}"
        assert words in err and err.count("\n") == 1 and "Traceback" not in err, f"{path.name}: {err!r}"
        assert not (tmp_path / "runs").exists(), f"{path.name}: a refused file leaves no log folder"
    assert not (tmp_path / "MARKER").exists(), "the object array of pickle.npz was unpickled"
    code, out, err = cli(capsys, command, "moons", "--target", "y")
    assert code == 2 and "--target describes the file of --data; give --data FILE too" in err, err
