"""Figures drawn by matplotlib's Agg backend through ``FigureCanvasAgg`` directly, so that no
display is needed and the process's pyplot backend is left alone: a run's cost curves, both sides
(``LockstepResult.plot()`` and the dashboards' cost picture), and the figure, PNG and style helpers
the dashboards' other pictures share (compare.dashboards.plots)."""
import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator

SIDE_STYLES = {"manual": dict(color="black", linestyle="-", linewidth=3.0),
               "torch": dict(color="#1f77b4", linestyle="--", linewidth=1.8)}
# About 800 pixels wide with type that stays legible when TensorBoard shrinks a picture to its card.
_DPI = 100
TITLE, LABEL, TICK, LEGEND = 14, 13, 12, 12   # font sizes, points


class ShownFigure(Figure):
    """A matplotlib Figure that a notebook shows inline (as PNG) even where pyplot was never
    imported; everything else is a plain Figure's (``savefig``, ``axes``)."""

    def _repr_png_(self):
        return figure_png(self)


def new_figure(width, height):
    fig = ShownFigure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig):
    """The figure as PNG bytes (fast zlib level: these are checksummed and written every run)."""
    buf = io.BytesIO()
    fig.canvas.print_png(buf, pil_kwargs={"compress_level": 1})
    return buf.getvalue()


def _log_y(ax, arrays):
    """Log scale with a few plain labels: powers of ten ("1e-03") over a wide range, 1, 2 and 5
    times them ("0.2", "0.5") over less than two decades, where powers of ten alone would leave
    one label or none. (Minor ticks and TeX labels cost more to draw than the rest of the figure.)"""
    ax.set_yscale("log")
    values = np.concatenate([c[np.isfinite(c)] for c in arrays])
    narrow = values.size and values.max() < 100 * values.min()
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if narrow else (1.0,), numticks=8))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}" if narrow else f"{v:.0e}"))


def _thin(n, most=1000):
    """Indices of at most ``most`` evenly spread points of n, the last included: a screen shows
    no more, and each drawn point costs."""
    return np.unique(np.linspace(0, n - 1, min(n, most)).round().astype(int)) if n else np.arange(0)


def cost_figure(step_curves, epoch_curves, steps_per_epoch, title):
    """One run's cost against the epoch, every side on one plot (manual a thick solid line,
    torch dashed on top of it), log scale when positive. ``step_curves``/``epoch_curves``: side
    -> each batch's cost / each epoch's mean of its batch costs. With one step an epoch (a full
    batch) the two are the same curve; with several, each batch's cost (the manual side's) is a
    faint band behind the epoch means, which a batch of 1 would otherwise hide in its noise.
    (The per-step difference of the sides is TensorBoard's step/abs_cost_diff.) Returns the Figure."""
    fig = new_figure(8.0, 5.0)
    ax = fig.add_axes((0.11, 0.12, 0.85, 0.78))
    steps = {side: np.asarray(c, dtype=np.float64) for side, c in step_curves.items()}
    epochs = {side: np.asarray(c, dtype=np.float64) for side, c in epoch_curves.items()}
    log = _all_positive(list(epochs.values()))   # a batch's cost of 0 (the hinge) is a gap in the band
    if steps_per_epoch > 1 and steps:
        side, c = next(iter(steps.items()))
        if log:
            c = np.where(c > 0, c, np.nan)
        keep = _thin(len(c), 4000)
        ax.plot((keep + 1) / steps_per_epoch, c[keep], color="#b0b0b0", linewidth=0.6, zorder=1,
                label=f"each batch's cost ({side}, {steps_per_epoch} batches an epoch)")
    for side, c in epochs.items():
        keep = _thin(len(c))
        marker = dict(marker="o", markersize=4) if len(c) <= 60 else {}
        ax.plot(keep + 1, c[keep], label=f"{side}, mean cost of each epoch" if steps_per_epoch > 1 else side,
                zorder=2, **marker, **SIDE_STYLES.get(side, SIDE_STYLES["torch"]))
    if log:
        _log_y(ax, list(epochs.values()) + [c[c > 0] for c in steps.values()])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("cost", fontsize=LABEL)
    ax.set_xlabel("epoch", fontsize=LABEL)
    ax.set_title(title, fontsize=TITLE)
    ax.tick_params(labelsize=TICK)
    ax.legend(fontsize=LEGEND, loc=quiet_corner(ax))
    return fig


def quiet_corner(ax, width=0.4, height=0.3):
    """The legend's place: the corner of the axes where the fewest of its lines' and points' data
    fall in a box of ``width`` x ``height`` (fractions of the axes). Matplotlib's loc="best" asks
    the same question of every vertex against many boxes, a fifth of a picture's drawing time
    with a cost curve of thousands of steps; four corners answer it from the data in a few
    microseconds."""
    ax.autoscale_view()
    points = [np.column_stack(line.get_data()) for line in ax.get_lines()]
    points += [c.get_offsets() for c in ax.collections if len(c.get_offsets())]
    if not points:
        return "upper right"
    xy = np.concatenate([np.asarray(p, dtype=np.float64) for p in points])
    xy = xy[np.isfinite(xy).all(axis=1)]
    if ax.get_yscale() == "log":
        xy = xy[xy[:, 1] > 0]
    if not len(xy):
        return "upper right"
    u = ax.transAxes.inverted().transform(ax.transData.transform(xy))       # 0..1 across the axes
    corners = {"upper right": (u[:, 0] > 1 - width) & (u[:, 1] > 1 - height),
               "upper left": (u[:, 0] < width) & (u[:, 1] > 1 - height),
               "lower left": (u[:, 0] < width) & (u[:, 1] < height),
               "lower right": (u[:, 0] > 1 - width) & (u[:, 1] < height)}
    return min(corners, key=lambda c: int(corners[c].sum()))      # the first of the emptiest, in this order


def _all_positive(arrays):
    return bool(arrays) and all(len(c) and np.all(c[np.isfinite(c)] > 0) for c in arrays)
