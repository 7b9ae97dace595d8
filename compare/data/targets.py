"""Targets and scoring: class labels encoded for each loss, and accuracy.

Labels are (N,) int64 class indices (compare/data.py); each loss wants its own form: indices for
cross_entropy, a 0/1 column or one-hot rows for bce and the squared losses, -1/+1 for hinge.
NumPy only, as compare/data.py.
"""
import numpy as np

from backprop_oracle.compare.data.datasets import TASKS, DataError, check_labels


def one_hot(labels, num_classes, dtype=np.float64):
    """(N,) class indices -> (N, C) rows with a single 1 at the label."""
    out = np.zeros((len(labels), num_classes), dtype=dtype)
    out[np.arange(len(labels)), labels] = 1
    return out


def _zero_one(labels, num_classes, dtype):
    # One output unit for two classes (sigmoid + threshold), one unit per class otherwise.
    if num_classes == 2:
        return labels.reshape(-1, 1).astype(dtype)  # (N, 1)
    return one_hot(labels, num_classes, dtype)  # (N, C)


def _plus_minus_one(labels, num_classes, dtype):
    if num_classes != 2:
        raise DataError(f"hinge is a binary loss (targets -1/+1) but there are {num_classes} classes; "
                         f"use cross_entropy for more than two classes")
    return (2.0 * labels - 1.0).reshape(-1, 1).astype(dtype)  # (N, 1): class 0 -> -1, class 1 -> +1


def _indices(labels, num_classes, dtype):
    return labels.astype(np.int64)  # (N,): cross_entropy takes class indices, as torch's does


# loss name -> label encoder. The keys mirror manual.LOSSES (not imported: this module needs
# neither network); a test asserts the two key sets are equal.
TARGET_ENCODERS = {
    "squared_error": _zero_one,
    "sum_squared_error": _zero_one,
    "mse": _zero_one,
    "bce": _zero_one,
    "cross_entropy": _indices,
    "hinge": _plus_minus_one,
    "bce_with_logits": _zero_one,
    "l1": _zero_one,
    "smooth_l1": _zero_one,
    "huber": _zero_one,
    "nll": _indices,
}
LOSS_NAMES = tuple(TARGET_ENCODERS)
REGRESSION_LOSSES = ("squared_error", "sum_squared_error", "mse", "l1", "smooth_l1", "huber")
_FLOAT_DTYPES = {"float64": np.float64, "float32": np.float32}


def encode_targets(labels, loss, num_classes, dtype="float64"):
    """Labels -> the target array ``loss`` expects.

    cross_entropy: (N,) int64 indices. bce and the squared losses: (N, 1) 0/1 for two classes,
    (N, C) one-hot otherwise. hinge: (N, 1) of -1/+1, two classes only. Regression targets
    (N, K) floats pass through (as ``dtype``) for the squared losses only.
    """
    loss = loss.partition(":")[0]         # "cross_entropy:label_smoothing=0.1": its arguments change no target
    if loss not in TARGET_ENCODERS:
        raise DataError(f"unknown loss {loss!r}; choose one of: {', '.join(LOSS_NAMES)}")
    dtype = _FLOAT_DTYPES.get(dtype, dtype)
    if dtype not in (np.float64, np.float32):
        raise DataError(f"unsupported dtype {dtype!r}; choose one of: {', '.join(_FLOAT_DTYPES)}")
    dtype = np.dtype(dtype)
    labels = np.asarray(labels)
    if labels.ndim == 2 and np.issubdtype(labels.dtype, np.floating):
        if loss not in REGRESSION_LOSSES:
            raise DataError(f"{loss} is a classification loss but the targets are regression values of "
                             f"shape {labels.shape}; use one of: {', '.join(REGRESSION_LOSSES)}")
        return labels.astype(dtype, copy=True)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"labels must be (N,) integer class labels or (N, K) float regression targets, "
                         f"got shape {labels.shape} dtype {labels.dtype}")
    if num_classes is None:
        raise DataError(f"{loss}: num_classes is needed to encode class labels")
    check_labels("labels", labels, num_classes)
    return TARGET_ENCODERS[loss](labels, num_classes, dtype)


def accuracy(scores_or_probs, labels, task, threshold=0.5):
    """Fraction of examples whose predicted class is the label.

    Prediction: one output column -> class 1 where score > threshold (0.5 for probabilities,
    0 for logits or hinge scores); several columns -> argmax. Labels may be (N,) indices, a
    (N, 1) column of 0/1 or -1/+1 (positive means class 1), or (N, C) one-hot.
    """
    if task not in TASKS:
        raise DataError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    if task == "regression":
        raise DataError("accuracy is undefined for regression; compare the mse instead")
    scores, labels = np.asarray(scores_or_probs), np.asarray(labels)
    if scores.shape[0] != labels.shape[0] or scores.shape[0] == 0:
        raise DataError(f"accuracy: {scores.shape[0]} predictions for {labels.shape[0]} labels; "
                         f"need the same, non-zero number")
    if scores.ndim == 2 and scores.shape[1] > 1:
        predicted = scores.argmax(axis=1)
    elif task == "binary":
        predicted = (scores.reshape(-1) > threshold).astype(np.int64)
    else:
        raise DataError(f"accuracy: multiclass scores need one column per class, got shape {scores.shape}")
    if labels.ndim == 2 and labels.shape[1] > 1:
        truth = labels.argmax(axis=1)
    else:
        truth = labels.reshape(-1)
        if task == "binary":
            truth = (truth > 0).astype(np.int64)  # 0/1 and -1/+1 both mean "positive is class 1"
    return float(np.mean(predicted == truth))
