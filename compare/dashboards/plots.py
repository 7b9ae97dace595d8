"""The pictures a run draws, as PNG bytes: decision boundaries, cost curves, digits, a confusion matrix.

Every figure is drawn by matplotlib's Agg backend through ``FigureCanvasAgg`` directly, so no
display is needed and the process's pyplot backend is left alone. Figures are small and drawn a
few times a run: a run's pictures should cost well under a second in all.
"""
from collections import OrderedDict

import numpy as np
from contourpy import contour_generator
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

# The figure, its PNG, the styles and the cost curves are drawn in compare.interactive.pictures, so
# that a LockstepResult can draw its own (result.plot()); the dashboards use the same code.
from backprop_oracle.compare.interactive.pictures import (LABEL, LEGEND, SIDE_STYLES, TICK, TITLE, _all_positive,
                                                          _log_y, _thin, cost_figure, figure_png, new_figure,
                                                          quiet_corner)

# The OR-gate article's figure: red below the boundary (output 0), green above it (output 1).
BINARY_COLOURS = np.array([[0.84, 0.15, 0.16], [0.17, 0.63, 0.17]])
IMAGE_SIDES = {64: 8, 784: 28}   # features -> side of a square digit image (8x8 digits, 28x28 MNIST)
DISAGREE = np.array([0.45, 0.45, 0.45])   # shading where the sides predict different classes


def class_colours(num_classes):
    """(C, 3) RGB: red and green for two classes (as the OR-gate article), the tab10 palette for more."""
    if num_classes <= 2:
        return BINARY_COLOURS
    from matplotlib import colormaps
    return np.array(colormaps["tab10"].colors)[np.arange(num_classes) % 10]


def png_size(png):
    """(height, width) from a PNG's IHDR chunk."""
    return int.from_bytes(png[20:24], "big"), int.from_bytes(png[16:20], "big")


def predicted_classes(outputs, threshold=0.5):
    """(N, K) outputs -> (N,) classes: argmax for K > 1, ``outputs > threshold`` for one column."""
    outputs = np.asarray(outputs)
    if outputs.shape[1] > 1:
        return outputs.argmax(axis=1)
    return (outputs[:, 0] > threshold).astype(np.int64)


def boundary_grid(X, resolution=120, margin=0.15):
    """Points covering the data: (xs (R,), ys (R,), points (R*R, 2)), ``margin`` of the range around."""
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = (hi - lo) * margin + 1e-9
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution)
    gx, gy = np.meshgrid(xs, ys)   # (R, R), rows follow y
    return xs, ys, np.column_stack([gx.ravel(), gy.ravel()])


class BoundaryFigure:
    """The decision boundary of 2-D classification data, both sides in one picture, redrawn
    cheaply at several steps.

    The background is shaded by the class the sides predict (binary: red = 0, green = 1), grey
    where they predict different classes; each side's boundary is a line (manual solid, torch
    dashed), so two sides that agree draw one line. Data points are coloured by their true class.
    The figure is built once; a redraw only changes the shading, the lines (traced by contourpy)
    and the title.
    """

    def __init__(self, X, labels, num_classes, sides=("manual", "torch"), resolution=120, max_points=400):
        self.xs, self.ys, self.points = boundary_grid(X, resolution)
        self.shape = (len(self.ys), len(self.xs))
        self.num_classes = max(2, num_classes)
        self.colours = class_colours(self.num_classes)
        self.fig = new_figure(8.0, 7.2)
        ax = self.ax = self.fig.add_axes((0.09, 0.13, 0.87, 0.8))
        extent = (self.xs[0], self.xs[-1], self.ys[0], self.ys[-1])
        # uint8 RGB: matplotlib resamples it to the screen several times faster than floats
        self.image = ax.imshow(np.full(self.shape + (3,), 255, dtype=np.uint8), extent=extent, origin="lower",
                               aspect="auto", interpolation="nearest")
        keep = np.linspace(0, len(X) - 1, min(len(X), max_points)).astype(int)   # evenly, deterministic
        Xs, ys = X[keep], labels[keep]
        size = 220 if len(Xs) <= 20 else 45   # a truth table's four points should stand out
        if self.num_classes == 2:
            for c, marker in ((0, "o"), (1, "X")):   # the article: red dots for 0, green crosses for 1
                m = ys == c
                ax.scatter(Xs[m, 0], Xs[m, 1], c=[self.colours[c]], marker=marker, s=size,
                           edgecolors="black", linewidths=0.5, zorder=3)
        else:
            ax.scatter(Xs[:, 0], Xs[:, 1], c=self.colours[ys], s=size * 0.8, edgecolors="black",
                       linewidths=0.4, zorder=3)
        self.lines = {}
        for side in sides:
            style = SIDE_STYLES.get(side, SIDE_STYLES["torch"])
            self.lines[side] = ax.add_collection(LineCollection(
                [], colors=style["color"], linestyles=style["linestyle"], linewidths=style["linewidth"], zorder=2))
        self.handles = [Line2D([], [], label=f"{side} boundary", **SIDE_STYLES.get(side, SIDE_STYLES["torch"]))
                        for side in sides]
        self.legend = None
        ax.set_xlim(extent[:2])
        ax.set_ylim(extent[2:])
        ax.locator_params(nbins=5)
        ax.tick_params(labelsize=TICK)
        self.title = ax.set_title("", fontsize=TITLE)

    def render(self, classes, boundaries, title):
        """PNG of the figure shaded by the sides' predicted ``classes`` (side -> (R*R,)), grey where
        they differ, with one line per ``boundaries`` entry: side name -> (values (R*R,), levels),
        the boundary being where values cross a level."""
        light = 0.72 * np.ones(3) + 0.28 * self.colours   # (C, 3), pale versions of the class colours
        predicted = [np.asarray(c) for c in classes.values()]
        shading = light[predicted[0]]                       # (R*R, 3)
        apart = np.zeros(len(predicted[0]), dtype=bool)
        for other in predicted[1:]:
            apart |= other != predicted[0]
        shading[apart] = DISAGREE
        self.image.set_data((shading.reshape(self.shape + (3,)) * 255).round().astype(np.uint8))
        handles = self.handles + ([Patch(color=DISAGREE, label="the sides predict different classes")]
                                  if apart.any() else [])
        if self.legend is not None:
            self.legend.remove()
        # Below the axes, where it hides no data point.
        self.legend = self.fig.legend(handles=handles, loc="lower center", ncol=len(handles),
                                      fontsize=LEGEND, frameon=False)
        for side, collection in self.lines.items():
            segments = []
            if side in boundaries:
                values, levels = boundaries[side]
                values = np.asarray(values, dtype=np.float64).reshape(self.shape)
                if np.all(np.isfinite(values)):
                    generator = contour_generator(self.xs, self.ys, values)
                    segments = [line for level in levels for line in generator.lines(level)]
            collection.set_segments(segments)
        self.title.set_text(title)
        return figure_png(self.fig)


# The BoundaryFigures this process drew last, by their run's key: a run's figure is built once and
# redrawn at each of its snapshots (in a drawing worker, compare.dashboards.drawing, or here).
_FIGURES = OrderedDict()
_KEEP_FIGURES = 4


def boundary_png(key, X, labels, num_classes, sides, classes, boundaries, title):
    """BoundaryFigure(X, labels, num_classes, sides).render(classes, boundaries, title): the PNG
    of one snapshot, the figure built at the first snapshot of ``key`` (a run's) and kept for the
    next (the few last runs' figures are kept)."""
    figure = _FIGURES.pop(key, None)
    if figure is None:
        figure = BoundaryFigure(X, labels, num_classes, sides=sides)
    _FIGURES[key] = figure
    while len(_FIGURES) > _KEEP_FIGURES:
        _FIGURES.popitem(last=False)
    return figure.render(classes, boundaries, title)

def boundary_values(outputs, threshold):
    """What a boundary line is drawn on: (values, levels). One output column: the output itself
    against the threshold (a smooth line); several: the predicted class, a line between classes."""
    outputs = np.asarray(outputs)
    if outputs.shape[1] == 1:
        return outputs[:, 0], [threshold]
    return predicted_classes(outputs).astype(np.float64), list(np.arange(outputs.shape[1] - 1) + 0.5)


def cost_curves(step_curves, epoch_curves, steps_per_epoch, title):
    """PNG of compare.interactive.pictures.cost_figure: one run's cost against the epoch, both sides."""
    return figure_png(cost_figure(step_curves, epoch_curves, steps_per_epoch, title))


def runs_cost(curves, title):
    """Several runs of one preset (full-batch GD, SGD, mini-batches; a single unit against a
    hidden layer) on one axis: each run's mean cost per epoch, a colour per run, the manual side
    solid and the torch side dashed on top. ``curves``: run label -> {side: epoch costs}."""
    from matplotlib import colormaps
    colours = colormaps["tab10"].colors
    fig = new_figure(8.0, 5.0)
    ax = fig.add_axes((0.11, 0.12, 0.85, 0.78))
    arrays = []
    for k, (label, sides) in enumerate(curves.items()):
        for side, c in sides.items():
            c = np.asarray(c, dtype=np.float64)
            arrays.append(c)
            keep = _thin(len(c))
            # the run's colour; the torch side's dashes in black on top, where they stay visible
            style = dict(SIDE_STYLES["manual"], color=colours[k % 10]) if side == "manual" else \
                dict(color="black", linestyle="--", linewidth=1.2)
            marker = dict(marker="o", markersize=4) if side == "manual" and len(c) <= 60 else {}
            ax.plot(keep + 1, c[keep], label=label if side == "manual" or len(sides) == 1 else None,
                    **marker, **style)
    if _all_positive(arrays):
        _log_y(ax, arrays)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = ax.get_legend_handles_labels()
    if any(len(s) > 1 for s in curves.values()):
        handles += [Line2D([], [], label="manual side", **dict(SIDE_STYLES["manual"], color="#777777")),
                    Line2D([], [], label="torch side", color="black", linestyle="--", linewidth=1.2)]
    ax.legend(handles=handles, fontsize=LEGEND, loc=quiet_corner(ax))
    ax.set_ylabel("mean cost of each epoch", fontsize=LABEL)
    ax.set_xlabel("epoch", fontsize=LABEL)
    ax.set_title(title, fontsize=TITLE)
    ax.tick_params(labelsize=TICK)
    return figure_png(fig)


def runs_generalisation(curves, title):
    """Several runs of one preset (without and with dropout) on one axis: each run's training
    accuracy (solid) and validation accuracy (dashed) at the epochs it was evaluated, in a colour
    per run, the gap between them shaded and its final width written at the right; the torch
    side's curves thin and dotted in black on top. ``curves``: run label -> {"epoch": [...],
    "train_accuracy_<side>": [...], "val_accuracy_<side>": [...]} (compare.cli.runner.EpochFigures)."""
    from matplotlib import colormaps
    colours = colormaps["tab10"].colors
    fig = new_figure(8.0, 5.0)
    ax = fig.add_axes((0.11, 0.12, 0.78, 0.78))
    for k, (label, c) in enumerate(curves.items()):
        epochs = np.asarray(c["epoch"], dtype=np.float64)
        train = np.asarray(c["train_accuracy_manual"], dtype=np.float64)
        val = np.asarray(c["val_accuracy_manual"], dtype=np.float64)
        colour = colours[k % 10]
        ax.fill_between(epochs, val, train, color=colour, alpha=0.12, linewidth=0)
        ax.plot(epochs, train, color=colour, linewidth=2.4, label=f"{label}: training")
        ax.plot(epochs, val, color=colour, linewidth=2.4, linestyle="--", label=f"{label}: validation")
        for key in ("train_accuracy_torch", "val_accuracy_torch"):
            if c.get(key) and None not in c[key]:
                ax.plot(epochs, np.asarray(c[key], dtype=np.float64), color="black", linestyle=":", linewidth=1.0)
        if len(epochs):
            ax.annotate(f"gap {train[-1] - val[-1]:.3f}", (epochs[-1], (train[-1] + val[-1]) / 2),
                        xytext=(6, 0), textcoords="offset points", va="center", fontsize=TICK, color=colour,
                        annotation_clip=False)
    handles, _ = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="black", linestyle=":", linewidth=1.0, label="torch side"))
    ax.legend(handles=handles, fontsize=LEGEND, loc="upper left", ncol=2)   # where the curves start low
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch", fontsize=LABEL)
    ax.set_ylabel("accuracy (final parameters of each epoch)", fontsize=LABEL)
    ax.set_title(title, fontsize=TITLE)
    ax.tick_params(labelsize=TICK)
    return figure_png(fig)


DIGIT_COLUMNS, DIGIT_ROWS = 8, 4      # the grid of digit_samples


def digit_samples(X, labels, predicted, title, columns=DIGIT_COLUMNS, rows=DIGIT_ROWS):
    """A grid of the first rows*columns images of X (N, side*side), each captioned below with its
    predicted label: green where it is right, red "pred (true)" where it is wrong."""
    side = IMAGE_SIDES[X.shape[1]]
    n = min(len(X), rows * columns)
    rows = -(-n // columns)
    gap, caption = max(1, side // 8), side // 2 + 1   # white space between tiles and under each
    width, height = side + gap, side + caption
    mosaic = np.ones((rows * height + gap, columns * width + gap))
    for i in range(n):
        r, c = divmod(i, columns)
        img = X[i].reshape(side, side)
        span = img.max() - img.min()
        top, left = gap + r * height, gap + c * width
        mosaic[top:top + side, left:left + side] = 1.0 - (img - img.min()) / (span if span > 0 else 1.0)
    inches = 1.0 / width   # inches per mosaic pixel: 1 in (100 pixels) per tile
    head = 0.8             # inches above the mosaic for the title's two lines
    fig = new_figure(mosaic.shape[1] * inches, mosaic.shape[0] * inches + head)
    ax = fig.add_axes((0, 0, 1, 1 - head / (mosaic.shape[0] * inches + head)))
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest", aspect="auto")
    for i in range(n):
        r, c = divmod(i, columns)
        ok = predicted[i] == labels[i]
        ax.text(gap + c * width + side / 2 - 0.5, gap + r * height + side + caption / 2 - 0.5,
                str(predicted[i]) if ok else f"{predicted[i]} ({labels[i]})", fontsize=LABEL,
                color="#1a7f1a" if ok else "#d62728", ha="center", va="center")
    ax.set_axis_off()
    fig.suptitle(title, fontsize=TITLE, y=0.99, va="top")
    return figure_png(fig)


def confusion_counts(labels, predicted, num_classes):
    """(C, C) counts: row = true class, column = predicted class."""
    return np.bincount(np.asarray(labels) * num_classes + np.asarray(predicted),
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def confusion_matrix(labels, predicted, num_classes, title):
    counts = confusion_counts(labels, predicted, num_classes)
    fig = new_figure(8.0, 7.6)
    ax = fig.add_axes((0.1, 0.09, 0.86, 0.83))
    ax.imshow(counts, cmap="Blues", interpolation="nearest")
    top = counts.max() or 1
    for (i, j), v in np.ndenumerate(counts):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=LABEL if num_classes <= 10 else TICK,
                    color="white" if v > top / 2 else "black")
    ticks = np.arange(num_classes)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.tick_params(labelsize=TICK)
    ax.set_xlabel("predicted class", fontsize=LABEL)
    ax.set_ylabel("true class", fontsize=LABEL)
    ax.set_title(title, fontsize=TITLE)
    return figure_png(fig)


def regression_fit(X, Y, xs, predictions, title):
    """1-D regression: the data, and each side's prediction over ``xs`` (side -> (R,) values)."""
    fig = new_figure(8.0, 5.0)
    ax = fig.add_axes((0.09, 0.12, 0.87, 0.78))
    ax.scatter(X[:, 0], Y[:, 0], s=14, color="#999999", label="training data")
    for side, ys in predictions.items():
        ax.plot(xs, ys, label=f"{side} prediction", **SIDE_STYLES.get(side, SIDE_STYLES["torch"]))
    ax.tick_params(labelsize=TICK)
    ax.legend(fontsize=LEGEND, loc=quiet_corner(ax))
    ax.set_xlabel("x", fontsize=LABEL)
    ax.set_ylabel("y", fontsize=LABEL)
    ax.set_title(title, fontsize=TITLE)
    return figure_png(fig)
