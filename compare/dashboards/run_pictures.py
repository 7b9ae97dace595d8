"""Which pictures a run draws, and of what: the boundary (or fit) at a few steps, the cost curves,
and for digit images a grid of samples and a confusion matrix.

Each call returns [(side, tag, file name, PNG bytes), ...]; compare.dashboards.tensorboard writes them.
"""
import numpy as np
import torch

from backprop_oracle.compare.dashboards import plots
from backprop_oracle.compare.lockstep.sides import to_numpy


def side_outputs(side, X):
    """(N, K) float64 outputs of a side's model on X (N, features), without touching its gradients."""
    if hasattr(side, "tensor"):   # the torch side keeps its arrays on a device
        with torch.no_grad():
            return to_numpy(side.model(side.tensor(X)))
    return np.asarray(side.model.forward(X), dtype=np.float64)


def shared(predictions, render):
    """{side: PNG}, drawn once for sides whose ``predictions`` are equal (the usual case: the
    sides agree), so a picture costs one drawing, not two. ``render(side, label)``; the label
    names the side(s) the picture shows."""
    out = {}
    for s, pred in predictions.items():
        same = [t for t in out if np.array_equal(predictions[t], pred)]
        if same:
            out[s] = out[same[0]]
            continue
        alike = [t for t, other in predictions.items() if np.array_equal(other, pred)]
        out[s] = render(s, "both sides" if len(alike) > 1 else f"{s} side")
    return out


class RunPictures:
    """The pictures of one run. ``sides``: {"manual": ManualSide, "torch": TorchSide} or a subset."""

    def __init__(self, run, name, sides):
        p = self.problem = run.problem
        self.name, self.sides = name, sides
        self.threshold = run.threshold
        self.boundary = self.fit_xs = None
        if p.X.shape[1] == 2 and p.labels is not None:
            num_classes = int(max(p.labels.max() + 1, 2))
            self.boundary = plots.BoundaryFigure(p.X, p.labels, num_classes, sides=tuple(sides))
        elif p.X.shape[1] == 1 and p.task == "regression" and p.Y.shape[1] == 1:
            self.fit_xs = np.linspace(p.X.min(), p.X.max(), 200)

    def snapshot(self, step):
        """The decision boundary (2-D classification) or the fit (one-input regression) at ``step``."""
        p = self.problem
        if self.boundary is not None:
            grid = self.boundary.points.astype(p.X.dtype)
            outputs = {s: side_outputs(side, grid) for s, side in self.sides.items()}
            lines = {s: plots.boundary_values(o, self.threshold) for s, o in outputs.items()}
            classes = {s: plots.predicted_classes(o, self.threshold) for s, o in outputs.items()}
            pngs = shared(classes, lambda s, label: self.boundary.render(
                classes[s], lines, f"{self.name}, step {step} (shading: {label})"))
            return [(s, "boundary/decision", f"boundary_{s}_step{step:06d}.png", png) for s, png in pngs.items()]
        if self.fit_xs is not None:
            xs = self.fit_xs.reshape(-1, 1).astype(p.X.dtype)
            predictions = {s: side_outputs(side, xs)[:, 0] for s, side in self.sides.items()}
            png = plots.regression_fit(p.X, p.Y, self.fit_xs, predictions, f"{self.name}, step {step}")
            return [(s, "fit/prediction", f"fit_{s}_step{step:06d}.png", png) for s in self.sides]
        return []

    def at_end(self, result):
        """The cost curves of every side on one plot; for digit images, samples and a confusion matrix."""
        p, out = self.problem, []
        curves = {s: getattr(result, f"step_cost_{s}") for s in self.sides}
        png = plots.cost_curves(curves, f"{self.name}: cost per step")
        out += [(s, "cost/curves", "cost_curves.png", png) for s in self.sides]
        if p.X.shape[1] in plots.IMAGE_SIDES and p.labels is not None:
            X, labels, split = (p.X, p.labels, "train") if p.X_val is None else (p.X_val, p.labels_val, "val")
            num_classes = int(max(labels.max(), p.labels.max()) + 1)
            predicted = {s: plots.predicted_classes(side_outputs(side, X), self.threshold)
                         for s, side in self.sides.items()}
            samples = shared(predicted, lambda s, label: plots.digit_samples(
                X, labels, predicted[s], f"{self.name}: {label}, {split} set"))
            confusion = shared(predicted, lambda s, label: plots.confusion_matrix(
                labels, predicted[s], num_classes,
                f"{label}, {split} accuracy {np.mean(predicted[s] == labels):.3f}"))
            for s in self.sides:
                out += [(s, "digits/samples", f"digits_{s}.png", samples[s]),
                        (s, "digits/confusion", f"confusion_{s}.png", confusion[s])]
        return out
