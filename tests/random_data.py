"""Small random data sets for the lockstep tests: made from one seed, in NumPy, with no scikit-learn,
so that hundreds of random experiments run in seconds."""
import numpy as np

from backprop_oracle.compare.data.datasets import Dataset


def random_dataset(seed, n=12, features=3, task="regression", classes=2, outputs=1, scale=1.0):
    """X (n, features) ~ N(0, scale²); y: class labels in [0, classes) or (n, outputs) targets."""
    rng = np.random.default_rng(seed)
    X = scale * rng.standard_normal((n, features))
    if task == "regression":
        y = rng.standard_normal((n, outputs))
        return Dataset("random", X, y, None, None, None, "regression", f"random regression, {n} rows")
    classes = 2 if task == "binary" else classes
    y = rng.integers(0, classes, size=n)
    y[:min(classes, n)] = np.arange(min(classes, n))     # every class appears (where there are rows enough)
    return Dataset("random", X, y.astype(np.int64), None, None, classes, task, f"random {task}, {n} rows")
