"""Data sets as NumPy arrays, made once from a seed, for both sides of a comparison.

Examples are rows: X is (N, features) float64. Classification labels are (N,) int64 class
indices; regression targets are (N, outputs) float64. compare/targets.py turns labels into what
each loss expects. Only NumPy and scikit-learn are used here, never torch: the arrays are
copied into each side by whoever runs it.
"""
import inspect
from dataclasses import dataclass, field

import numpy as np

from backprop_oracle.compare.data import idx
from backprop_oracle.compare.data.user_data import load_file
from backprop_oracle.compare.errors import DataError


def _sklearn_datasets():
    # scikit-learn takes a second to import: load it only when a data set needs it, so that
    # the command line answers a usage error at once.
    from sklearn import datasets
    return datasets

TASKS = ("binary", "multiclass", "regression")


@dataclass(frozen=True, eq=False)  # eq=False: == on arrays is elementwise, not a yes/no
class Dataset:
    """A named train split and an optional validation split.

    X_* (N, features) float64; y_* (N,) int64 class labels for "binary"/"multiclass", (N, outputs)
    float64 for "regression". num_classes is None for regression, 2 for binary.
    """
    name: str
    X_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    X_val: np.ndarray | None = field(repr=False)  # None where the data set has no validation split
    y_val: np.ndarray | None = field(repr=False)
    num_classes: int | None
    task: str
    description: str

    def __post_init__(self):
        if self.task not in TASKS:
            raise DataError(f"{self.name}: unknown task {self.task!r}; choose one of: {', '.join(TASKS)}")
        expected = {"binary": "2", "multiclass": "an integer >= 2", "regression": "None"}[self.task]
        ok = {"binary": self.num_classes == 2, "regression": self.num_classes is None,
              "multiclass": isinstance(self.num_classes, (int, np.integer)) and self.num_classes >= 2}
        if not ok[self.task]:
            raise DataError(f"{self.name}: a {self.task} task needs num_classes {expected}, "
                            f"got {self.num_classes!r}")
        validate_arrays(self.X_train, self.y_train, self.num_classes, f"{self.name} train")
        if (self.X_val is None) != (self.y_val is None):
            raise DataError(f"{self.name}: give both X_val and y_val, or neither")
        if self.X_val is not None:
            validate_arrays(self.X_val, self.y_val, self.num_classes, f"{self.name} val")
            if self.X_val.shape[1] != self.X_train.shape[1]:
                raise DataError(f"{self.name}: X_val has {self.X_val.shape[1]} features but X_train "
                                f"has {self.X_train.shape[1]}; both splits need the same columns")

    @property
    def num_features(self):
        return self.X_train.shape[1]


def _first_non_finite(name, which, a):
    """Raise naming the first NaN/inf of ``a`` (1-D or 2-D) by row and, for 2-D, column."""
    bad = np.argwhere(~np.isfinite(a))
    if not bad.size:
        return
    where = tuple(int(i) for i in bad[0])
    value = a[where]
    kind = "NaN" if np.isnan(value) else ("+inf" if value > 0 else "-inf")
    place = f"row {where[0]}" + (f", column {where[1]}" if len(where) == 2 else "")
    raise DataError(f"{name}: {which} contains {kind} at {place} ({len(bad)} non-finite value"
                    f"{'s' if len(bad) > 1 else ''} in all); clean or drop that example")


def check_labels(name, y, num_classes):
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise DataError(f"{name}: num_classes must be an integer >= 2, got {num_classes!r}")
    if y.ndim != 1:
        raise DataError(f"{name}: class labels must be 1-D (N,), got shape {y.shape}; "
                        f"for one-hot rows use y.argmax(axis=1)")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{name}: class labels must be integers, got dtype {y.dtype}; "
                        f"cast with y.astype(np.int64)")
    bad = np.flatnonzero((y < 0) | (y >= num_classes))
    if bad.size:
        raise DataError(f"{name}: label {y[bad[0]]} at row {bad[0]} is outside [0, {num_classes}); "
                        f"labels must be 0..{num_classes - 1} (or raise num_classes)")


def validate_arrays(X, y, num_classes=None, name="data"):
    """Check that X (N, features) and y can be trained on; raise DataError if not.

    X: 2-D, at least one row and column, numeric, finite. y: one entry per row of X; with
    ``num_classes`` it holds integer class labels in [0, num_classes), otherwise finite targets.
    """
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim != 2:
        raise DataError(f"{name}: X must be 2-D (examples, features), got shape {X.shape}; "
                        f"flatten each example with X.reshape(len(X), -1)")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"{name}: X is empty (shape {X.shape}); a data set needs at least one "
                        f"example and one feature")
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise DataError(f"{name}: X must be real numbers, got dtype {X.dtype}; "
                        f"convert with X.astype(np.float64)")
    _first_non_finite(name, "X", X)
    if y.ndim == 0 or y.shape[0] != X.shape[0]:
        got = "a scalar" if y.ndim == 0 else f"{y.shape[0]} targets"
        raise DataError(f"{name}: X has {X.shape[0]} rows but y has {got}; give one target per example")
    if num_classes is not None:
        check_labels(name, y, num_classes)
    elif not np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.complexfloating):
        raise DataError(f"{name}: targets must be real numbers, got dtype {y.dtype}")
    else:
        _first_non_finite(name, "y", y)


def train_val_split(X, y, *, val_fraction=0.2, seed=0, stratify=True):
    """Split rows into (X_train, y_train, X_val, y_val), shuffled, from ``default_rng(seed)``
    (``seed`` may be a Generator, whose stream then continues).

    Stratified: each class c with n_c rows gives round(n_c * val_fraction) of them to validation,
    keeping at least one in training. val_fraction 0 gives (X, y, None, None).
    """
    if not 0 <= val_fraction < 1:
        raise DataError(f"val_fraction must lie in [0, 1), got {val_fraction!r}")
    if val_fraction == 0:
        return X, y, None, None
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(len(X))]
    train, val = [], []
    for rows in groups:
        rows = rng.permutation(rows)
        k = min(int(np.floor(len(rows) * val_fraction + 0.5)), len(rows) - 1)
        val.append(rows[:k])
        train.append(rows[k:])
    # Shuffle again so that classes are interleaved, not in blocks.
    train, val = rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(val))
    return X[train], y[train], X[val], y[val]


def _dataset(name, X, y, *, seed, val_fraction, num_classes, task, description, rng=None):
    # A loader that drew X from default_rng(seed) passes that rng on, so the split is drawn from
    # fresh numbers of the stream rather than from the very numbers that made X.
    X_tr, y_tr, X_val, y_val = train_val_split(X, y, val_fraction=val_fraction,
                                               seed=seed if rng is None else rng,
                                               stratify=task != "regression")
    n_val = 0 if X_val is None else len(X_val)
    return Dataset(name, X_tr, y_tr, X_val, y_val, num_classes, task,
                   f"{description}; {len(X_tr)} train / {n_val} val (seed {seed})")


def _check_int(name, option, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataError(f"{name}: {option} must be an integer >= {minimum}, got {value!r}")


def _check_size(name, n_samples, noise):
    _check_int(name, "n_samples", n_samples, 2)
    if not noise >= 0:
        raise DataError(f"{name}: noise must be >= 0, got {noise!r}")


# ---- the data sets, simplest first --------------------------------------------------------------

_GATE_INPUTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)  # (4, 2)
_GATE_OUTPUTS = {"or": [0, 1, 1, 1], "and": [0, 0, 0, 1], "xor": [0, 1, 1, 0]}


def _gate(name):
    def load(seed=0):
        """The {name} truth table: 4 rows (0,0), (0,1), (1,0), (1,1); no validation split."""
        y = np.array(_GATE_OUTPUTS[name], dtype=np.int64)
        return Dataset(name, _GATE_INPUTS.copy(), y, None, None, 2, "binary",
                       f"{name.upper()} gate truth table, 4 rows, no validation split")
    load.__name__ = f"load_{name}"
    load.__doc__ = load.__doc__.format(name=name.upper())
    return load


def load_moons(seed=0, *, n_samples=500, noise=0.2, val_fraction=0.2):
    """Two interleaving half circles (sklearn make_moons), 2 features, 2 classes."""
    _check_size("moons", n_samples, noise)
    X, y = _sklearn_datasets().make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    return _dataset("moons", X.astype(np.float64), y.astype(np.int64), seed=seed,
                    val_fraction=val_fraction, num_classes=2, task="binary",
                    description=f"moons: {n_samples} points, noise {noise}")


def load_circles(seed=0, *, n_samples=500, noise=0.05, factor=0.5, val_fraction=0.2):
    """A small circle inside a large one (sklearn make_circles, radius ratio ``factor``), 2 classes."""
    _check_size("circles", n_samples, noise)
    X, y = _sklearn_datasets().make_circles(n_samples=n_samples, noise=noise, factor=factor, random_state=seed)
    return _dataset("circles", X.astype(np.float64), y.astype(np.int64), seed=seed,
                    val_fraction=val_fraction, num_classes=2, task="binary",
                    description=f"circles: {n_samples} points, noise {noise}, factor {factor}")


def load_blobs(seed=0, *, n_samples=600, centers=3, n_features=2, noise=1.0, val_fraction=0.2):
    """Gaussian blobs (sklearn make_blobs), one class per center; ``noise`` is each blob's std.

    Centers are drawn in [-10, 10] per feature, so features are not scaled to [0, 1].
    """
    _check_size("blobs", n_samples, noise)
    _check_int("blobs", "centers", centers, 2)
    X, y = _sklearn_datasets().make_blobs(n_samples=n_samples, centers=centers, n_features=n_features,
                          cluster_std=noise, random_state=seed)
    return _dataset("blobs", X.astype(np.float64), y.astype(np.int64), seed=seed,
                    val_fraction=val_fraction, num_classes=centers,
                    task="binary" if centers == 2 else "multiclass",
                    description=f"blobs: {n_samples} points, {centers} centers, std {noise}")


def load_spiral(seed=0, *, points_per_class=100, num_classes=3, noise=0.2, val_fraction=0.2):
    """The cs231n spiral: for class j, radius r = linspace(0, 1, N) and angle
    t = linspace(4j, 4(j+1), N) + noise * normal; x = (r sin t, r cos t). Not linearly separable.
    """
    _check_size("spiral", points_per_class, noise)
    _check_int("spiral", "num_classes", num_classes, 2)
    rng = np.random.default_rng(seed)
    X = np.zeros((points_per_class * num_classes, 2))  # (N K, 2)
    y = np.zeros(points_per_class * num_classes, dtype=np.int64)
    for j in range(num_classes):
        rows = slice(points_per_class * j, points_per_class * (j + 1))
        r = np.linspace(0.0, 1.0, points_per_class)
        t = np.linspace(4.0 * j, 4.0 * (j + 1), points_per_class)
        t = t + rng.standard_normal(points_per_class) * noise
        X[rows] = np.column_stack([r * np.sin(t), r * np.cos(t)])
        y[rows] = j
    return _dataset("spiral", X, y, seed=seed, rng=rng, val_fraction=val_fraction,
                    num_classes=num_classes, task="binary" if num_classes == 2 else "multiclass",
                    description=f"spiral: {num_classes} arms of {points_per_class} points, noise {noise}")


def load_sine(seed=0, *, n_samples=400, noise=0.1, val_fraction=0.2):
    """1-D regression: x ~ Uniform[-pi, pi], y = sin(x) + noise * normal; X and y both (N, 1)."""
    _check_size("sine", n_samples, noise)
    rng = np.random.default_rng(seed)
    X = rng.uniform(-np.pi, np.pi, size=(n_samples, 1))  # (N, 1)
    y = np.sin(X) + noise * rng.standard_normal((n_samples, 1))  # (N, 1)
    return _dataset("sine", X, y, seed=seed, rng=rng, val_fraction=val_fraction, num_classes=None,
                    task="regression", description=f"sine: {n_samples} points, noise {noise}")


def load_digits(seed=0, *, val_fraction=0.2):
    """sklearn's 1797 8x8 handwritten digits, pixels / 16 so they lie in [0, 1]; 64 features, 10 classes."""
    digits = _sklearn_datasets().load_digits()
    X = digits.data.astype(np.float64) / 16.0  # (1797, 64), stored pixels are 0..16
    return _dataset("digits", X, digits.target.astype(np.int64), seed=seed, val_fraction=val_fraction,
                    num_classes=10, task="multiclass", description="digits: 1797 8x8 images")


def load_mnist(seed=0, *, directory, limit=None):
    """MNIST from the four IDX files in ``directory`` (plain or .gz); pixels / 255, flattened to
    rows (N, rows*cols); the validation split is the 10k test set. ``limit``: first n training rows.
    ``seed`` is unused: the split is the one the files define.
    """
    X_tr, y_tr, X_te, y_te = idx.load_mnist(directory, limit=limit)
    X_tr = X_tr.reshape(len(X_tr), -1).astype(np.float64) / 255.0  # (N, 784) for 28x28
    X_te = X_te.reshape(len(X_te), -1).astype(np.float64) / 255.0
    return Dataset("mnist", X_tr, y_tr, X_te, y_te, 10, "multiclass",
                   f"mnist from {directory}: {len(X_tr)} train / {len(X_te)} val (the t10k files)")


DATASETS = {
    "or": _gate("or"),
    "and": _gate("and"),
    "xor": _gate("xor"),
    "moons": load_moons,
    "circles": load_circles,
    "blobs": load_blobs,
    "spiral": load_spiral,
    "sine": load_sine,
    "digits": load_digits,
    "mnist": load_mnist,
    "file": load_file,          # the user's own CSV or NPZ (compare.data.user_data)
}


def load_dataset(name, *, seed=0, **kwargs):
    """Build the data set registered under ``name``; ``kwargs`` are that loader's options."""
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
    loader = DATASETS[name]
    options = {p.name: p for p in inspect.signature(loader).parameters.values()
               if p.kind is inspect.Parameter.KEYWORD_ONLY}
    accepted = ", ".join(options) or "none"
    for key in kwargs:
        if key not in options:
            raise DataError(f"{name}: unknown option {key!r}; accepted options: {accepted}")
    for key, p in options.items():
        if p.default is inspect.Parameter.empty and key not in kwargs:
            raise DataError(f"{name}: needs {key}=...; accepted options: {accepted}")
    return loader(seed, **kwargs)
