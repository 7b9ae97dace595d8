"""Which pictures a run draws, and of what: the boundary (or fit) at a few steps, the cost curves,
and for digit images a grid of samples and a confusion matrix.

Each picture shows both sides: the boundary, the fit and the cost curves draw one line per side
in one figure; the digit samples and the confusion matrix, which are the same picture for sides
that predict the same classes (the usual case: the sides agree), are drawn once then, and once
per side, named after it, where the sides' predictions differ.

Each call returns [(tag, file name, drawing), ...]: the models are read at the call (their outputs,
their predicted classes), and each drawing is a call of a compare.dashboards.plots function on that
data that returns the PNG; compare.dashboards.tensorboard has it drawn (compare.dashboards.drawing,
in a second process on the command line) and writes it.
"""
import itertools
from functools import partial

import numpy as np
import torch

from backprop_oracle.compare.dashboards import plots
from backprop_oracle.compare.sides.sides import evaluating, to_numpy  # noqa: F401 (evaluating: network's)


def side_outputs(side, X):
    """(N, K) float64 outputs of a side's model on X (N, features), without touching its gradients,
    in eval mode (running statistics used and left as they are)."""
    back_to_training = evaluating(side.model)
    try:
        if hasattr(side, "tensor"):   # the torch side keeps its arrays on a device
            with torch.no_grad():
                return to_numpy(side.model(side.tensor(X)))
        return np.asarray(side.model.forward(X), dtype=np.float64)
    finally:
        back_to_training()


def once_or_per_side(predictions, tag, filename, render):
    """One picture when every side's ``predictions`` are equal, else one per side.

    ``render(side, label)`` is the drawing of ``side``'s predictions, ``label`` naming the
    side(s) it shows; ``filename`` is "stem.png". Returns [(tag, file name, drawing)]: the tag and
    file name as given for a shared picture, with "/side" and "_side" added to each side's own.
    """
    sides = list(predictions)
    first = predictions[sides[0]]
    if all(np.array_equal(first, predictions[s]) for s in sides[1:]):
        label = "both sides" if len(sides) > 1 else f"{sides[0]} side"
        return [(tag, filename, render(sides[0], label))]
    stem = filename[:-len(".png")]
    return [(f"{tag}/{s}", f"{stem}_{s}.png", render(s, f"{s} side (the sides differ)")) for s in sides]


_RUNS = itertools.count()      # a key per run, under which its boundary figure is kept where it is drawn


class RunPictures:
    """The pictures of one run. ``sides``: {"manual": ManualSide, "torch": TorchSide} or a subset;
    ``total``: the steps the run is set to take, ``steps_per_epoch`` its batches an epoch."""

    def __init__(self, run, name, sides, total, steps_per_epoch):
        p = self.problem = run.problem
        self.name, self.sides = name, sides
        self.total, self.steps_per_epoch = total, steps_per_epoch
        self.threshold = run.threshold
        self.boundary = self.fit_xs = None
        if p.X.ndim == 2 and p.X.shape[1] == 2 and p.labels is not None:
            num_classes = int(max(p.labels.max() + 1, 2))
            # what plots.boundary_png builds its figure from, once per run (the key), wherever it draws
            self.boundary = (next(_RUNS), p.X, p.labels, num_classes, tuple(sides))
            self.grid = plots.boundary_grid(p.X)[2]
        elif p.X.ndim == 2 and p.X.shape[1] == 1 and p.task == "regression" and p.Y.shape[1] == 1:
            self.fit_xs = np.linspace(p.X.min(), p.X.max(), 200)

    def _when(self, step):
        epoch = step / self.steps_per_epoch
        epochs = f"epoch {epoch:g}" if epoch == int(epoch) else f"epoch {epoch:.2f}"
        return f"at step {step} of {self.total} ({epochs})" if step else "at the start (step 0)"

    def snapshot(self, step):
        """The decision boundary (2-D classification) or the fit (one-input regression) at ``step``,
        every side in one picture."""
        p = self.problem
        if self.boundary is not None:
            grid = self.grid.astype(p.X.dtype)
            outputs = {s: side_outputs(side, grid) for s, side in self.sides.items()}
            lines = {s: plots.boundary_values(o, self.threshold) for s, o in outputs.items()}
            classes = {s: plots.predicted_classes(o, self.threshold) for s, o in outputs.items()}
            drawing = partial(plots.boundary_png, *self.boundary, classes, lines,
                              f"{self.name} — boundary {self._when(step)}")
            return [("pictures/boundary", f"boundary_step{step:06d}.png", drawing)]
        if self.fit_xs is not None:
            xs = self.fit_xs.reshape(-1, 1).astype(p.X.dtype)
            predictions = {s: side_outputs(side, xs)[:, 0] for s, side in self.sides.items()}
            drawing = partial(plots.regression_fit, p.X, p.Y, self.fit_xs, predictions,
                              f"{self.name} — fit {self._when(step)}")
            return [("pictures/fit", f"fit_step{step:06d}.png", drawing)]
        return []

    def at_end(self, result):
        """The cost curves of every side on one plot; for digit images, samples and a confusion matrix."""
        p = self.problem
        drawing = partial(plots.cost_curves, {s: getattr(result, f"step_cost_{s}") for s in self.sides},
                          {s: getattr(result, f"epoch_cost_{s}") for s in self.sides},
                          self.steps_per_epoch, f"{self.name} — cost")
        out = [("pictures/cost", "cost.png", drawing)]
        if int(np.prod(p.X.shape[1:])) in plots.IMAGE_SIDES and p.labels is not None:      # (N, 64) or (N, 1, 8, 8)
            X, labels, split = (p.X, p.labels, "train") if p.X_val is None else (p.X_val, p.labels_val, "validation")
            num_classes = int(max(labels.max(), p.labels.max()) + 1)
            predicted = {s: plots.predicted_classes(side_outputs(side, X), self.threshold)
                         for s, side in self.sides.items()}
            def samples(s, label):
                # the first images only, which is all the grid shows (not the whole set to the drawing)
                n = plots.DIGIT_COLUMNS * plots.DIGIT_ROWS
                return partial(plots.digit_samples, X[:n].reshape(min(n, len(X)), -1), labels[:n], predicted[s][:n],
                               f"{self.name} — predicted by {label}, {split} set\n"
                               "green: right; red: wrong, with the true class in brackets")

            def confusion(s, label):
                return partial(plots.confusion_matrix, labels, predicted[s], num_classes, f"{self.name} — {label}, "
                               f"{split} accuracy {np.mean(predicted[s] == labels):.3f}")
            out += once_or_per_side(predicted, "pictures/digits", "digits.png", samples)
            out += once_or_per_side(predicted, "pictures/confusion", "confusion.png", confusion)
        return out
