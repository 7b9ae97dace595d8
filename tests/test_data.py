"""Data sets, target encodings, the bad-data checks and accuracy, each with the numbers written out."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backprop_oracle import manual
from backprop_oracle.compare.data.datasets import DATASETS, DataError, Dataset, load_dataset, train_val_split, validate_arrays
from backprop_oracle.compare.data.targets import LOSS_NAMES, accuracy, encode_targets

ROOT = Path(__file__).resolve().parents[1]


def assert_same(name, got, want):
    """Bit-identical arrays; the message names the first differing element and both values."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{name}: shape {got.shape}, expected {want.shape}"
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype}, expected {want.dtype}"
    diff = np.argwhere(got != want)
    assert not diff.size, (f"{name}: element {tuple(diff[0])} is {got[tuple(diff[0])]!r}, "
                           f"expected {want[tuple(diff[0])]!r}")


def assert_close(name, got, want, atol):
    err = np.abs(np.asarray(got) - np.asarray(want))
    worst = np.unravel_index(np.argmax(err), err.shape)
    assert err[worst] <= atol, (f"{name}: element {worst} is {np.asarray(got)[worst]}, expected "
                                f"{np.asarray(want)[worst]} (|diff| {err[worst]:.3g} > atol {atol})")


def all_rows(ds):
    """Train and validation stacked back together: (N_train + N_val, ...)."""
    return np.concatenate([ds.X_train, ds.X_val]), np.concatenate([ds.y_train, ds.y_val])


# ---- the gates ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, labels", [("or", [0, 1, 1, 1]), ("and", [0, 0, 0, 1]),
                                          ("xor", [0, 1, 1, 0])])
def test_gate_truth_tables(name, labels):
    ds = load_dataset(name)
    assert_same(f"{name} X_train", ds.X_train, np.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]]))
    assert_same(f"{name} y_train", ds.y_train, np.array(labels, dtype=np.int64))
    assert ds.X_val is None and ds.y_val is None, f"{name} has no validation split"
    assert (ds.num_classes, ds.task, ds.num_features) == (2, "binary", 2)


# ---- digits ------------------------------------------------------------------------------------

def test_digits_split_and_scale():
    ds = load_dataset("digits")
    assert (ds.X_train.shape, ds.X_val.shape) == ((1438, 64), (359, 64)), "0.8 / 0.2 of 1797"
    assert (ds.y_train.shape, ds.y_val.shape) == ((1438,), (359,))
    X, y = all_rows(ds)
    assert X.min() == 0.0 and X.max() == 1.0, f"pixels / 16 lie in [0, 1], got {X.min()}..{X.max()}"
    assert np.all(np.isin(X * 16, np.arange(17))), "every pixel is a multiple of 1/16"
    # The split is a partition of the 1797 images: the row sums, sorted, match sklearn's data.
    from sklearn.datasets import load_digits
    raw = load_digits()
    assert_same("sorted row sums", np.sort(X.sum(axis=1)), np.sort(raw.data.sum(axis=1) / 16.0))
    assert_same("class counts", np.bincount(y), np.bincount(raw.target))


def test_digits_is_stratified():
    ds = load_dataset("digits", seed=3)
    total = np.bincount(np.concatenate([ds.y_train, ds.y_val]), minlength=10)
    in_val = np.bincount(ds.y_val, minlength=10)
    for c in range(10):
        expected = 0.2 * total[c]
        assert abs(in_val[c] - expected) <= 1, f"class {c}: {in_val[c]} in val, expected {expected:.1f} ± 1"


def test_digits_seed():
    a, b, c = load_dataset("digits", seed=0), load_dataset("digits", seed=0), load_dataset("digits", seed=1)
    for field in ("X_train", "y_train", "X_val", "y_val"):
        assert_same(f"digits seed 0 {field}", getattr(b, field), getattr(a, field))
    assert not np.array_equal(a.y_val, c.y_val), "seeds 0 and 1 gave the same validation labels"


def test_digits_val_fraction():
    ds = load_dataset("digits", val_fraction=0.5)
    assert abs(len(ds.y_val) - 1797 / 2) <= 5, f"{len(ds.y_val)} validation rows for val_fraction 0.5"


# ---- the 2-D toy sets and the sine ----------------------------------------------------------------

TOYS = {  # name: (train rows, val rows, features, num_classes, task)
    "moons": (400, 100, 2, 2, "binary"),
    "circles": (400, 100, 2, 2, "binary"),
    "blobs": (480, 120, 2, 3, "multiclass"),
    "spiral": (240, 60, 2, 3, "multiclass"),
    "sine": (320, 80, 1, None, "regression"),
}


@pytest.mark.parametrize("name", list(TOYS))
def test_toy_shapes_and_labels(name):
    n_train, n_val, features, num_classes, task = TOYS[name]
    ds = load_dataset(name)
    target = (1,) if task == "regression" else ()
    assert ds.X_train.shape == (n_train, features), f"{name} X_train {ds.X_train.shape}"
    assert ds.X_val.shape == (n_val, features), f"{name} X_val {ds.X_val.shape}"
    assert ds.y_train.shape == (n_train, *target), f"{name} y_train {ds.y_train.shape}"
    assert ds.y_val.shape == (n_val, *target), f"{name} y_val {ds.y_val.shape}"
    assert (ds.num_classes, ds.task) == (num_classes, task)
    assert ds.X_train.dtype == np.float64, f"{name} X dtype {ds.X_train.dtype}"
    if task != "regression":
        assert ds.y_train.dtype == np.int64, f"{name} y dtype {ds.y_train.dtype}"
        _, y = all_rows(ds)
        assert_same(f"{name} labels present", np.unique(y), np.arange(num_classes))
        in_val, total = np.bincount(ds.y_val), np.bincount(y)
        assert np.all(np.abs(in_val - 0.2 * total) <= 1), f"{name} not stratified: {in_val} of {total}"


@pytest.mark.parametrize("name", list(TOYS))
def test_toy_seed(name):
    a, b, c = load_dataset(name, seed=7), load_dataset(name, seed=7), load_dataset(name, seed=8)
    for field in ("X_train", "y_train", "X_val", "y_val"):
        assert getattr(a, field).tobytes() == getattr(b, field).tobytes(), f"{name} seed 7 {field} differs"
    assert not np.array_equal(a.X_train, c.X_train), f"{name}: seeds 7 and 8 gave the same X_train"


def test_moons_without_noise_lie_on_the_two_arcs():
    X, y = all_rows(load_dataset("moons", noise=0.0))
    # class 0: the unit upper half circle; class 1: the unit circle about (1, 0.5), lower half.
    assert_close("moon 0 radius", np.hypot(*X[y == 0].T), 1.0, atol=1e-12)
    assert_close("moon 1 radius", np.hypot(X[y == 1, 0] - 1.0, X[y == 1, 1] - 0.5), 1.0, atol=1e-12)


def test_circles_without_noise():
    X, y = all_rows(load_dataset("circles", noise=0.0, factor=0.3))
    assert_close("outer radius", np.hypot(*X[y == 0].T), 1.0, atol=1e-12)
    assert_close("inner radius", np.hypot(*X[y == 1].T), 0.3, atol=1e-12)


def test_blobs_centers():
    ds = load_dataset("blobs", centers=4, n_samples=200, n_features=3)
    _, y = all_rows(ds)
    assert (ds.num_classes, ds.task, ds.num_features) == (4, "multiclass", 3)
    assert_same("blob counts", np.bincount(y), np.full(4, 50))


def test_spiral_geometry():
    ds = load_dataset("spiral", points_per_class=50, noise=0.0)
    X, y = all_rows(ds)
    r = np.hypot(*X.T)
    assert_same("points per arm", np.bincount(y), np.full(3, 50))
    assert r.max() <= 1.0 + 1e-12, f"radius {r.max()} > 1"
    assert np.sum(r == 0.0) == 3, f"each arm starts at the origin: {np.sum(r == 0.0)} points there"
    # Without noise, arm j at radius 1 has angle t = 4 (j + 1): the point (sin t, cos t).
    for j in range(3):
        end = X[(y == j) & np.isclose(r, 1.0)]
        assert_close(f"arm {j} end", end, [[np.sin(4.0 * (j + 1)), np.cos(4.0 * (j + 1))]], atol=1e-12)


def test_sine():
    ds = load_dataset("sine", n_samples=2000, noise=0.1)
    X, y = all_rows(ds)
    assert -np.pi <= X.min() and X.max() <= np.pi, f"x in [-pi, pi], got {X.min()}..{X.max()}"
    residual_std = float(np.std(y - np.sin(X)))
    assert abs(residual_std - 0.1) < 0.01, f"noise std {residual_std}, expected 0.1 ± 0.01"
    clean = load_dataset("sine", noise=0.0)
    assert_same("sine without noise", clean.y_train, np.sin(clean.X_train))


# ---- the registry ------------------------------------------------------------------------------

def test_registry_names():
    assert set(DATASETS) == {"or", "and", "xor", "digits", "mnist", "moons", "circles", "blobs",
                             "spiral", "sine", "file"}


def test_unknown_dataset():
    with pytest.raises(ValueError, match=r"unknown data set 'iris'; choose one of: or, and, xor, .*digits"):
        load_dataset("iris")


def test_unknown_option():
    with pytest.raises(ValueError, match=r"moons: unknown option 'nosie'; accepted options: "
                                         r"n_samples, noise, val_fraction"):
        load_dataset("moons", nosie=0.1)
    with pytest.raises(ValueError, match=r"xor: unknown option 'noise'; accepted options: none"):
        load_dataset("xor", noise=0.1)


def test_mnist_needs_directory():
    with pytest.raises(ValueError, match=r"mnist: needs directory=\.\.\.; accepted options: "
                                         r"directory, limit"):
        load_dataset("mnist")


def test_bad_options():
    with pytest.raises(DataError, match=r"val_fraction must lie in \[0, 1\), got 1\.0"):
        load_dataset("moons", val_fraction=1.0)
    with pytest.raises(DataError, match=r"moons: n_samples must be an integer >= 2, got 1\.5"):
        load_dataset("moons", n_samples=1.5)
    with pytest.raises(DataError, match=r"sine: noise must be >= 0, got -0\.1"):
        load_dataset("sine", noise=-0.1)


def test_split_without_validation():
    X, y = np.arange(10.0).reshape(5, 2), np.array([0, 1, 0, 1, 1])
    assert train_val_split(X, y, val_fraction=0.0) == (X, y, None, None)
    ds = load_dataset("moons", val_fraction=0.0)
    assert ds.X_val is None and ds.X_train.shape == (500, 2), ds.X_train.shape


def test_dataset_checks_its_fields():
    X, y = np.zeros((3, 2)), np.array([0, 1, 2])
    with pytest.raises(DataError, match=r"toy: a binary task needs num_classes 2, got 3"):
        Dataset("toy", X, y, None, None, 3, "binary", "")
    with pytest.raises(DataError, match=r"toy: unknown task 'ranking'; choose one of: binary, multiclass"):
        Dataset("toy", X, y, None, None, 3, "ranking", "")
    with pytest.raises(DataError, match=r"toy: give both X_val and y_val, or neither"):
        Dataset("toy", X, y, X, None, 3, "multiclass", "")


# ---- validate_arrays ---------------------------------------------------------------------------

def test_validate_accepts_good_data():
    validate_arrays(np.zeros((4, 3)), np.array([0, 1, 2, 1]), num_classes=3)
    validate_arrays(np.zeros((4, 1)), np.ones((4, 1)))


@pytest.mark.parametrize("X, y, num_classes, message", [
    (np.zeros(4), np.zeros(4, int), 2, r"data: X must be 2-D \(examples, features\), got shape \(4,\); "
                                       r"flatten each example with X\.reshape\(len\(X\), -1\)"),
    (np.zeros((2, 2, 2)), np.zeros(2, int), 2, r"X must be 2-D .* got shape \(2, 2, 2\)"),
    (np.zeros((0, 3)), np.zeros(0, int), 2, r"data: X is empty \(shape \(0, 3\)\)"),
    (np.zeros((3, 0)), np.zeros(3, int), 2, r"data: X is empty \(shape \(3, 0\)\)"),
    (np.zeros((3, 2)), np.zeros(4, int), 2, r"data: X has 3 rows but y has 4 targets; give one target per"),
    (np.zeros((3, 2)), np.array([0, 2, 1]), 2, r"label 2 at row 1 is outside \[0, 2\); "
                                               r"labels must be 0\.\.1"),
    (np.zeros((3, 2)), np.array([0, -1, 1]), 2, r"label -1 at row 1 is outside \[0, 2\)"),
    (np.zeros((3, 2)), np.array([0., 1., 1.]), 2, r"class labels must be integers, got dtype float64; "
                                                  r"cast with y\.astype\(np\.int64\)"),
    (np.zeros((3, 2)), np.eye(3, dtype=int), 3, r"class labels must be 1-D \(N,\), got shape \(3, 3\)"),
    (np.zeros((3, 2)), np.zeros(3, int), 1, r"num_classes must be an integer >= 2, got 1"),
    (np.array([["a", "b"]]), np.zeros(1, int), 2, r"X must be real numbers, got dtype <U1"),
])
def test_validate_rejects(X, y, num_classes, message):
    with pytest.raises(DataError, match=message):
        validate_arrays(X, y, num_classes=num_classes)


def test_validate_names_the_non_finite_element():
    X = np.zeros((5, 8))
    X[3, 7] = np.nan
    X[4, 0] = np.inf
    with pytest.raises(DataError, match=r"^digits: X contains NaN at row 3, column 7 \(2 non-finite values "
                                        r"in all\); clean or drop that example$"):
        validate_arrays(X, np.zeros(5, int), num_classes=10, name="digits")
    X[3, 7] = 0.0
    with pytest.raises(DataError, match=r"X contains \+inf at row 4, column 0 \(1 non-finite value in all\)"):
        validate_arrays(X, np.zeros(5, int), num_classes=10)
    X[4, 0] = -np.inf
    with pytest.raises(DataError, match=r"X contains -inf at row 4, column 0"):
        validate_arrays(X, np.zeros(5, int), num_classes=10)
    y = np.zeros((5, 1))
    y[2, 0] = np.nan
    with pytest.raises(DataError, match=r"sine: y contains NaN at row 2, column 0"):
        validate_arrays(np.zeros((5, 1)), y, name="sine")


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)


# ---- encode_targets ----------------------------------------------------------------------------

def test_loss_names_mirror_manual():
    assert set(LOSS_NAMES) == set(manual.LOSSES), f"{sorted(LOSS_NAMES)} != {sorted(manual.LOSSES)}"


BINARY = np.array([0, 1, 1, 0])
MULTI = np.array([2, 0, 1, 2])
ONE_HOT = np.array([[0., 0., 1.], [1., 0., 0.], [0., 1., 0.], [0., 0., 1.]])


@pytest.mark.parametrize("loss, labels, num_classes, want", [
    ("cross_entropy", BINARY, 2, np.array([0, 1, 1, 0])),
    ("cross_entropy", MULTI, 3, np.array([2, 0, 1, 2])),
    ("bce", BINARY, 2, np.array([[0.], [1.], [1.], [0.]])),
    ("bce", MULTI, 3, ONE_HOT),
    ("hinge", BINARY, 2, np.array([[-1.], [1.], [1.], [-1.]])),
    ("squared_error", BINARY, 2, np.array([[0.], [1.], [1.], [0.]])),
    ("sum_squared_error", MULTI, 3, ONE_HOT),
    ("mse", MULTI, 3, ONE_HOT),
    ("mse", BINARY, 2, np.array([[0.], [1.], [1.], [0.]])),
])
def test_encode_targets(loss, labels, num_classes, want):
    assert_same(f"{loss} targets", encode_targets(labels, loss, num_classes), want)


def test_encode_float32():
    got = encode_targets(BINARY, "hinge", 2, dtype="float32")
    assert_same("hinge float32", got, np.array([[-1.], [1.], [1.], [-1.]], dtype=np.float32))
    assert encode_targets(MULTI, "cross_entropy", 3, dtype="float32").dtype == np.int64, "indices stay int64"


@pytest.mark.parametrize("loss", ["mse", "squared_error", "sum_squared_error"])
def test_regression_targets_pass_through(loss):
    y = np.array([[0.5], [-1.25]])
    got = encode_targets(y, loss, None)
    assert_same(f"{loss} regression targets", got, y)
    assert got is not y, "a copy, so that training cannot change the data set"


@pytest.mark.parametrize("loss", ["bce", "cross_entropy", "hinge", "nll", "bce_with_logits"])
def test_regression_targets_rejected_by_classification_losses(loss):
    with pytest.raises(ValueError, match=rf"{loss} is a classification loss but the targets are regression "
                                         rf"values of shape \(2, 1\); use one of: squared_error"):
        encode_targets(np.array([[0.5], [-1.25]]), loss, None)


def test_encode_errors():
    with pytest.raises(ValueError, match=r"hinge is a binary loss \(targets -1/\+1\) but there are "
                                         r"3 classes; use cross_entropy"):
        encode_targets(MULTI, "hinge", 3)
    with pytest.raises(ValueError, match=r"unknown loss 'focal'; choose one of: squared_error, "
                                         r"sum_squared_error, mse, bce, cross_entropy, hinge"):
        encode_targets(BINARY, "focal", 2)
    with pytest.raises(ValueError, match=r"label 2 at row 0 is outside \[0, 2\)"):
        encode_targets(MULTI, "bce", 2)
    with pytest.raises(ValueError, match=r"bce: num_classes is needed to encode class labels"):
        encode_targets(BINARY, "bce", None)
    with pytest.raises(ValueError, match=r"labels must be \(N,\) integer class labels or \(N, K\) float "
                                         r"regression targets, got shape \(4,\) dtype float64"):
        encode_targets(BINARY.astype(float), "mse", 2)
    with pytest.raises(ValueError, match=r"unsupported dtype 'float16'; choose one of: float64, float32"):
        encode_targets(BINARY, "mse", 2, dtype="float16")


# ---- accuracy ----------------------------------------------------------------------------------

def test_accuracy_binary_probabilities():
    probs = np.array([[0.9], [0.2], [0.51], [0.5]])  # predicted 1, 0, 1, 0 (0.5 is not above 0.5)
    assert accuracy(probs, np.array([1, 0, 0, 0]), "binary") == 0.75
    assert accuracy(probs, np.array([[1.], [0.], [0.], [0.]]), "binary") == 0.75


def test_accuracy_binary_scores_with_threshold():
    scores = np.array([[2.0], [-0.3], [0.1], [-5.0]])  # sign gives 1, 0, 1, 0
    assert accuracy(scores, np.array([[1.], [-1.], [-1.], [-1.]]), "binary", threshold=0.0) == 0.75
    assert accuracy(scores, np.array([1, 0, 1, 0]), "binary", threshold=0.0) == 1.0


def test_accuracy_multiclass():
    logits = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.2, 0.1, 0.0]])
    assert accuracy(logits, np.array([1, 0, 2, 1]), "multiclass") == 0.75
    assert accuracy(logits, np.eye(3)[[1, 0, 2, 1]], "multiclass") == 0.75, "one-hot labels"
    assert accuracy(logits[:, :2], np.array([1, 0, 0, 1]), "binary") == 0.75, "two logits for two classes"


def test_accuracy_errors():
    with pytest.raises(ValueError, match=r"accuracy is undefined for regression"):
        accuracy(np.zeros((2, 1)), np.zeros((2, 1)), "regression")
    with pytest.raises(ValueError, match=r"unknown task 'ranking'; choose one of: "
                                         r"binary, multiclass, regression"):
        accuracy(np.zeros((2, 1)), np.zeros(2), "ranking")
    with pytest.raises(ValueError, match=r"accuracy: 3 predictions for 2 labels"):
        accuracy(np.zeros((3, 1)), np.zeros(2), "binary")
    with pytest.raises(ValueError, match=r"multiclass scores need one column per class, got shape \(2, 1\)"):
        accuracy(np.zeros((2, 1)), np.zeros(2, int), "multiclass")


# ---- the one-way arrow -------------------------------------------------------------------------

def test_data_modules_do_not_import_torch():
    code = ("import sys, compare.data.datasets, compare.data.idx, compare.data.targets; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'manual', 'torch_ref')); "
            "assert not bad, bad[:3]")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"importing compare.data.datasets pulled in: {done.stderr.strip().splitlines()[-1:]}"
