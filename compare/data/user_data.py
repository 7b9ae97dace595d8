"""The user's own data: a CSV file with a header row, or an NPZ file of arrays, read into a Dataset.

CSV: one example per line, one column per feature and one target column, named by ``target``.
NPZ: arrays ``X`` (N, features) and ``y`` (N,) or (N, outputs), and optionally ``X_val`` and
``y_val``, a validation split of the user's own; it is read with ``allow_pickle=False``, so a
file holding Python objects is refused, never unpickled.

The task follows the targets unless it is stated: integer targets are class labels
("classify"), any other number a regression target ("regress"). Class labels may be any
integers; they are numbered 0..K-1 in increasing order. Without a validation split of the
user's own, one is drawn from the seed, stratified by class (compare.data.datasets.train_val_split).
Features are used as they are, unless ``standardize``: then each is shifted and scaled by the
mean and standard deviation of the training split alone (a constant feature is only shifted), so
nothing of the validation split leaks into training.

Every mistake is a DataError that names the file, the place (the line and column of a CSV, the
array of an NPZ) and the fix.
"""
import csv
import math
import os
import zipfile

import numpy as np

from backprop_oracle.compare.errors import DataError

TASK_NAMES = {"classify": ("binary", "multiclass"), "regress": ("regression",)}
NPZ_KEYS = ("X", "y", "X_val", "y_val")


def _check_path(path):
    if not os.path.exists(path):
        raise DataError(f"--data: {path} not found; give a .csv or .npz file")
    if os.path.isdir(path):
        raise DataError(f"--data: {path} is a folder; give a .csv or .npz file")
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".csv", ".npz"):
        raise DataError(f"--data: {path} is neither .csv nor .npz; save the data as a CSV with a header "
                        f"row or as an NPZ of arrays X and y (numpy.savez)")
    return ext


# ---- reading the two formats ------------------------------------------------------------------

def read_csv(path, target):
    """(X (N, features) float64, y (N,) float64, feature names) of a CSV with a header row;
    ``target`` names the target column."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:   # -sig: a spreadsheet's byte-order mark
            rows = list(csv.reader(f))
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not a text file (byte {e.start} is not UTF-8); save it as CSV") from None
    # Blank lines (a trailing newline, a spreadsheet's empty last row) carry no example.
    numbered = [(i + 1, r) for i, r in enumerate(rows) if any(cell.strip() for cell in r)]
    if not numbered:
        raise DataError(f"{path}: the file is empty; a CSV needs a header row and at least one example")
    (_, header), body = numbered[0], numbered[1:]
    header = [h.strip() for h in header]
    if target is None:
        raise DataError(f"{path}: name the target column with --target; the columns are {', '.join(header)}")
    if target not in header:
        raise DataError(f"{path}: no column {target!r}; the columns are {', '.join(header)}")
    if len(set(header)) != len(header):
        twice = sorted({h for h in header if header.count(h) > 1})
        raise DataError(f"{path}: the header names column {twice[0]!r} twice; give each column its own name")
    if len(header) < 2:
        raise DataError(f"{path}: the only column is the target {target!r}; a data set needs at least one feature")
    if not body:
        raise DataError(f"{path}: the header is the only line; add at least one example")
    values = np.empty((len(body), len(header)))        # (N, columns)
    for r, (line, cells) in enumerate(body):
        if len(cells) != len(header):
            raise DataError(f"{path}: line {line} has {len(cells)} cells but the header has {len(header)}; "
                            f"every line needs one cell per column")
        for c, cell in enumerate(cells):
            text = cell.strip()
            if not text:
                raise DataError(f"{path}: line {line}, column {header[c]!r} is empty; fill it in or drop the line")
            try:
                v = float(text)
            except ValueError:
                raise DataError(f"{path}: line {line}, column {header[c]!r}: {text!r} is not a number; "
                                f"every cell must be numeric (class labels as integers 0, 1, ...)") from None
            if not math.isfinite(v):
                raise DataError(f"{path}: line {line}, column {header[c]!r} is {text}; clean or drop that example")
            values[r, c] = v
    t = header.index(target)
    features = [h for i, h in enumerate(header) if i != t]
    return np.delete(values, t, axis=1), values[:, t], features


def read_npz(path, target=None):
    """{"X", "y"[, "X_val", "y_val"]} of an NPZ file, read without unpickling anything."""
    if target is not None:
        raise DataError(f"{path}: --target names a CSV column; an NPZ file holds its targets in the array y")
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.files)
            unknown = sorted(set(keys) - set(NPZ_KEYS))
            if unknown or "X" not in keys or "y" not in keys:
                raise DataError(f"{path}: the arrays are {', '.join(keys) or 'none'}; an NPZ needs X and y "
                                f"(and optionally X_val and y_val), e.g. numpy.savez(path, X=X, y=y)")
            arrays = {}
            for key in keys:
                try:
                    arrays[key] = npz[key]
                except ValueError:    # numpy refuses an object array without allow_pickle
                    raise DataError(f"{path}: array {key} holds Python objects, which are not read (loading "
                                    f"them could run code); save numbers, e.g. {key}.astype(float)") from None
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable NPZ file ({e}); save it with numpy.savez") from None
    except ValueError as e:            # not an NPZ at all: a pickle, a bare .npy of objects, ...
        raise DataError(f"{path}: not an NPZ of plain arrays ({e}); save it with numpy.savez") from None
    if ("X_val" in arrays) != ("y_val" in arrays):
        raise DataError(f"{path}: give both X_val and y_val, or neither")
    return arrays


# ---- targets: the task, labels numbered 0..K-1 ------------------------------------------------

def _is_integral(y):
    return np.issubdtype(y.dtype, np.integer) or (np.issubdtype(y.dtype, np.floating) and
                                                  np.all(np.isfinite(y)) and np.all(y == np.round(y)))


def infer_task(path, y, task=None):
    """"classify" or "regress": ``task`` when stated, else classify for integer targets."""
    if task is not None and task not in TASK_NAMES:
        raise DataError(f"unknown task {task!r}; choose one of: {', '.join(TASK_NAMES)}")
    if task is None:
        task = "classify" if y.ndim == 1 and _is_integral(y) else "regress"
    if task == "classify":
        if y.ndim != 1:
            raise DataError(f"{path}: class labels must be one per example (N,), got shape {y.shape}; "
                            f"for one-hot rows use y.argmax(axis=1), or --task regress")
        if not _is_integral(y):
            bad = int(np.flatnonzero(~(np.isfinite(y) & (y == np.round(y))))[0])
            raise DataError(f"{path}: target {y[bad]!r} of example {bad} is not an integer, so it is no class "
                            f"label; use --task regress, or labels 0, 1, ...")
    return task


def number_classes(path, y, y_val=None):
    """Labels numbered 0..K-1 in increasing order of their values: (y, y_val, the values)."""
    classes = np.unique(y)
    if len(classes) < 2:
        raise DataError(f"{path}: every example has the label {classes[0]:g}: a classifier needs at least "
                        f"two classes (or use --task regress)")
    out = np.searchsorted(classes, y).astype(np.int64)
    if y_val is None:
        return out, None, classes
    y_val = np.asarray(y_val)
    if y_val.ndim != 1 or not _is_integral(y_val):
        raise DataError(f"{path}: y_val must hold integer class labels (N,), as y does")
    unseen = np.flatnonzero(~np.isin(y_val, classes))
    if unseen.size:
        raise DataError(f"{path}: y_val has label {y_val[unseen[0]]:g} at row {unseen[0]}, which no training "
                        f"example has; the labels of y are {', '.join(f'{c:g}' for c in classes)}")
    return out, np.searchsorted(classes, y_val).astype(np.int64), classes


def standardize(X_train, X_val):
    """Each feature shifted and scaled by the training split's mean and standard deviation (a
    feature constant in training is only shifted); returns (X_train, X_val, mean, std)."""
    mean = X_train.mean(axis=0)                     # (features,)
    std = X_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    scale = lambda X: None if X is None else (X - mean) / std
    return scale(X_train), scale(X_val), mean, std


# ---- the loader -------------------------------------------------------------------------------

def load_file(seed=0, *, path, target=None, task=None, standardize_features=False, val_fraction=0.2):
    """The Dataset of a CSV (``target`` names its target column) or NPZ file; ``task`` "classify" or
    "regress" (None: integer targets are classes); the validation split is the file's own (NPZ
    X_val, y_val) or ``val_fraction`` of it, drawn from ``seed`` and stratified by class."""
    from backprop_oracle.compare.data.datasets import Dataset, train_val_split, validate_arrays
    path = os.fspath(path)
    name = os.path.splitext(os.path.basename(path))[0]
    if _check_path(path) == ".csv":
        X, y, _ = read_csv(path, target)
        X_val = y_val = None
    else:
        arrays = read_npz(path, target)
        X, y, X_val, y_val = arrays["X"], arrays["y"], arrays.get("X_val"), arrays.get("y_val")
    validate_arrays(X, y, None, path)
    if X_val is not None:
        validate_arrays(X_val, y_val, None, f"{path} (X_val, y_val)")
        if X_val.shape[1] != X.shape[1]:
            raise DataError(f"{path}: X_val has {X_val.shape[1]} features but X has {X.shape[1]}; "
                            f"both splits need the same columns")
    if y.ndim > 2 or (y_val is not None and y_val.ndim != y.ndim):
        raise DataError(f"{path}: targets must be (N,) or (N, outputs), got y {y.shape}"
                        + ("" if y_val is None else f" and y_val {y_val.shape}"))
    X = X.astype(np.float64)
    X_val = None if X_val is None else X_val.astype(np.float64)
    task = infer_task(path, y, task)
    what = f"{name}: {len(X) + (0 if X_val is None else len(X_val))} examples, {X.shape[1]} features"
    if task == "classify":
        y, y_val, classes = number_classes(path, y, y_val)
        num_classes = len(classes)
        kind = "binary" if num_classes == 2 else "multiclass"
        numbered = np.array_equal(classes, np.arange(num_classes))
        what += f", {num_classes} classes" + ("" if numbered else
                                              f" (labels {', '.join(f'{c:g}' for c in classes)} as 0..{num_classes - 1})")
    else:
        num_classes, kind = None, "regression"
        y = y.astype(np.float64).reshape(len(y), -1)                 # (N, outputs)
        y_val = None if y_val is None else y_val.astype(np.float64).reshape(len(y_val), -1)
        what += f", {y.shape[1]} regression target{'s' if y.shape[1] > 1 else ''}"
    if X_val is None:
        X, y, X_val, y_val = train_val_split(X, y, val_fraction=val_fraction, seed=seed,
                                             stratify=kind != "regression")
        split = f"validation {val_fraction:g} of it, drawn from seed {seed}" + \
                (", stratified" if kind != "regression" else "")
    else:
        split = "the file's own validation split"
    if len(X) < 1:
        raise DataError(f"{path}: no training example is left after the split; give more examples")
    if standardize_features:
        X, X_val, _, _ = standardize(X, X_val)
        scaling = "features standardized by the training split's mean and std"
    else:
        scaling = "features as they are"
    n_val = 0 if X_val is None else len(X_val)
    return Dataset(name, X, y, X_val, y_val, num_classes, kind,
                   f"{what}; {split}; {scaling}; {len(X)} train / {n_val} val")
