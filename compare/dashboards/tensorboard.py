"""TensorBoard logging of a run, as an observer of compare.lockstep.LockstepRun (or of the
torch-only compare.train.torch_only.TorchRun).

Layout: ``<logdir>/<run name>/<timestamp>/`` holds one TensorBoard run per side, ``manual/`` and
``torch/``, with the same tags, so TensorBoard draws their curves on top of each other; ``diff/``
with the differences between them; ``config.json``; and a PNG copy of every picture.

Tags of the manual and torch runs:
    step/cost, step/lr, grad_norm/<parameter>        every step
    epoch/cost, epoch/lr                             every epoch, at the step that ended it
    epoch/train_accuracy, epoch/val_cost, epoch/val_accuracy   where the run evaluated
    final/cost, final/train_accuracy, final/val_cost, final/val_accuracy, and (with a diff run)
    final/max_abs_grad_diff, final/max_abs_param_diff, final/max_abs_cost_diff, final/agree:
                                                     at the last step; the HParams metrics
    weights/<parameter>, grads/<parameter>           histograms, about ``histograms`` times a run
    boundary/decision (2-D classification), fit/prediction (one-input regression): ``snapshots``
    times a run, from the start to the end; cost/curves; digits/samples, digits/confusion
    config, verdict (text); hparams; the model graph (torch run)
    exact/step/cost, exact/epoch/cost, exact/final/cost: the costs again as float64 tensors,
        equal bit for bit to the report's (the dashboard's scalars are float32)
Tags of the diff run: step/max_abs_grad_diff, step/max_rel_grad_diff, step/max_abs_param_diff,
step/abs_cost_diff, epoch/abs_cost_diff, the final/ agreement figures, config, verdict.
"""
import contextlib
import json
import math
import os
import re
import warnings
from datetime import datetime

import numpy as np
from tensorboard.compat.proto.summary_pb2 import Summary

from backprop_oracle.compare.dashboards.event_file import EventFile
from backprop_oracle.compare.errors import UsageError
from backprop_oracle.compare.files import write_atomic
from backprop_oracle.compare.lockstep.sides import layout_offsets

SIDES = ("manual", "torch")
# HParams metric -> the result field it comes from (with "_manual" or "_torch" appended).
METRICS = {"final/cost": "final_cost", "final/train_accuracy": "train_accuracy",
           "final/val_cost": "val_cost", "final/val_accuracy": "val_accuracy"}
AGREEMENT = ("final/max_abs_grad_diff", "final/max_abs_param_diff", "final/max_abs_cost_diff", "final/agree")


def safe_name(name):
    """A folder name for a run name: "xor:single-unit" -> "xor_single-unit"."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._") or "run"


def make_run_dir(logdir, run_name, now=None):
    """Create and return ``<logdir>/<safe run name>/<YYYYmmdd-HHMMSS>``; a run started in the same
    second as another gets ``-2``, ``-3``, ... (the folder is created exclusively, so two
    processes never share one)."""
    parent = os.path.join(logdir, safe_name(run_name))
    os.makedirs(parent, exist_ok=True)
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    k = 1
    while True:
        path = os.path.join(parent, stamp if k == 1 else f"{stamp}-{k}")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            k += 1


@contextlib.contextmanager
def logdir_for_runs(path):
    """``check_logdir(path)`` for the commands' whole work: the folders it had to create are removed
    again if the command fails before any run wrote into them (a data or seed error), so that a
    mistake leaves nothing behind."""
    created = []
    head = os.path.abspath(path)
    while not os.path.exists(head):
        created.append(head)
        head = os.path.dirname(head)
    check_logdir(path)
    try:
        yield path
    except BaseException:
        for folder in created:          # deepest first
            try:
                os.rmdir(folder)        # only while empty
            except OSError:
                break
        raise


def check_logdir(path):
    """Raise compare.errors.UsageError if runs cannot be written under ``path`` (checked before a run
    starts, so that a long run never ends in a write error); the folder is created when needed."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"--logdir: {path} is a file; give a folder (it is created if missing)")
    try:   # creating it is the only sure test (permissions, read-only or virtual file systems)
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--logdir: cannot create {path} ({e.strerror}); choose another folder") from None
    if not os.access(path, os.W_OK):
        raise UsageError(f"--logdir: cannot write in {path}; choose another folder")
    return path


def image_summary(tag, png):
    """A Summary holding a PNG (RGBA, as matplotlib writes it) for TensorBoard's Images tab."""
    from backprop_oracle.compare.dashboards.plots import png_size
    height, width = png_size(png)
    return Summary(value=[Summary.Value(tag=tag, image=Summary.Image(
        height=height, width=width, colorspace=4, encoded_image_string=png))])


def hparams_of(run, name, side):
    """The run's configuration as flat HParams values (numbers and strings only)."""
    spec, p = run.spec, run.problem
    out = {"run": name, "side": side, "hidden_sizes": ",".join(map(str, spec.hidden_sizes)) or "none",
           "batch_size": spec.batch_size or len(p.X)}   # the full batch is logged as its size
    for key, value in spec.to_dict().items():
        if key not in out and key != "initial_params":
            out[key] = value if isinstance(value, (int, float, str)) and not isinstance(value, bool) \
                else json.dumps(value, sort_keys=True, default=str)
        if isinstance(value, dict) and key != "initial_params":
            # each argument as a value of its own, so that a sweep of momentum is a column to sort by
            for k, v in value.items():
                if isinstance(v, (int, float, str)) and not isinstance(v, bool):
                    out[f"{key}.{k}"] = v
    out["initial_params"] = "given" if spec.initial_params else spec.init
    return out


class TensorBoardLogger:
    """Observer writing TensorBoard event files and PNG pictures for one run.

    ``sides``: which sides to log ("manual", "torch", or only "torch" for a torch-only run);
    ``diff``: also write the diff run (needs both sides). ``histograms``: about how many times a
    run the weight and gradient histograms are written; ``snapshots``: how many pictures of the
    boundary (or fit) a run draws, the first at the start and the last at the end. After
    ``on_start``, ``run_dir`` is the run's folder.
    """

    def __init__(self, logdir="runs", run_name=None, *, sides=SIDES, diff=True, histograms=10,
                 snapshots=3, flush_secs=1.0):
        self.logdir, self.run_name = logdir, run_name
        self.side_names = tuple(sides)
        self.diff = diff and len(self.side_names) == 2
        self.histograms, self.snapshots, self.flush_secs = histograms, max(2, snapshots), flush_secs
        self.run_dir, self.files, self._pending = None, {}, None

    # ---- observer methods ------------------------------------------------------------------

    def on_start(self, run):
        p, spec = run.problem, run.spec
        self.name = self.run_name or run.name
        self.sides = {s: getattr(run, s) for s in self.side_names}
        self.run_dir = make_run_dir(self.logdir, self.name)
        try:
            names = self.side_names + (("diff",) if self.diff else ())
            self.files = {s: EventFile(os.path.join(self.run_dir, s), self.flush_secs) for s in names}
            layout = next(iter(self.sides.values())).layout
            self.norm_tags = [f"grad_norm/{n}" for n, _ in layout]
            self.offsets = layout_offsets(layout)
            batch = spec.batch_size or len(p.X)
            self.total = spec.epochs * math.ceil(len(p.X) / batch)
            self.hist_steps = set(np.linspace(0, self.total, self.histograms + 1).round().astype(int)[1:].tolist())
            self.snap_steps = set(np.linspace(0, self.total, self.snapshots).round().astype(int)[1:-1].tolist())
            self._log_config(run)
            self._log_graph(run)
            start = getattr(run, "start_step", 0)     # a run resumed from a checkpoint goes on from its step
            self._histograms(start)
            from backprop_oracle.compare.dashboards.run_pictures import RunPictures
            self.pictures = RunPictures(run, self.name, self.sides)
            self._add_images(self.pictures.snapshot(start), start)
        except BaseException:
            self._close()
            raise

    def on_step(self, run, record):
        self._emit()
        scalars, exact = {}, {}
        for s in self.side_names:
            flat = getattr(record, f"flat_grads_{s}")
            norms = np.sqrt(np.add.reduceat(flat * flat, self.offsets))
            cost = getattr(record, f"cost_{s}")
            scalars[s] = {"step/cost": cost, "step/lr": getattr(record, f"lr_{s}"),
                          **dict(zip(self.norm_tags, norms.tolist()))}
            exact[s] = {"exact/step/cost": cost}
        if self.diff:
            scalars["diff"] = {"step/max_abs_grad_diff": record.max_abs_grad_diff,
                               "step/max_rel_grad_diff": record.max_rel_grad_diff,
                               "step/max_abs_param_diff": record.max_abs_param_diff,
                               "step/abs_cost_diff": record.abs_cost_diff}
        self._pending = (record.step, scalars, exact)
        if record.step in self.hist_steps:
            self._histograms(record.step, record)
        if record.step in self.snap_steps:
            self._add_images(self.pictures.snapshot(record.step), record.step)

    def on_epoch(self, run, record):
        if self._pending is None or self._pending[0] != record.step:
            self._emit()
            self._pending = (record.step, {}, {})
        _, scalars, exact = self._pending
        for s in self.side_names:
            v = scalars.setdefault(s, {})
            v["epoch/cost"], v["epoch/lr"] = getattr(record, f"cost_{s}"), getattr(record, f"lr_{s}")
            exact.setdefault(s, {})["exact/epoch/cost"] = v["epoch/cost"]
            for key in ("train_accuracy", "val_cost", "val_accuracy"):
                x = getattr(record, f"{key}_{s}") if record.evaluated else None
                if x is not None:
                    v[f"epoch/{key}"] = x
        if self.diff:
            scalars.setdefault("diff", {})["epoch/abs_cost_diff"] = abs(record.cost_manual - record.cost_torch)

    def on_end(self, run, result):
        self._emit()
        step = result.steps
        agreement = {}
        if self.diff:
            agreement = {"final/max_abs_grad_diff": result.max_abs_grad_diff,
                         "final/max_abs_param_diff": result.max_abs_param_diff,
                         "final/max_abs_cost_diff": result.max_abs_cost_diff,
                         "final/agree": float(result.passed)}
            self.files["diff"].add_scalars(step, agreement)
        for s in self.side_names:
            final = {m: getattr(result, f"{field}_{s}") for m, field in METRICS.items()}
            final = {k: v for k, v in final.items() if v is not None}
            self.files[s].add_scalars(step, {**final, **agreement}, {"exact/final/cost": final["final/cost"]})
        if step not in self.hist_steps:
            self._histograms(step)
        self._add_images(self.pictures.snapshot(step), step)
        self._add_images(self.pictures.at_end(result), step)
        verdict = self._verdict(result)
        from torch.utils.tensorboard.summary import text
        for s, f in self.files.items():
            f.add_summary(text("verdict", verdict), step)
            if s in self._session_end:
                f.add_summary(self._session_end[s], step)
        for f in self.files.values():
            f.flush()

    def on_close(self, run):
        """Always called, also on an error or Ctrl-C: every step logged so far reaches the disk."""
        self._close()

    # ---- pieces ----------------------------------------------------------------------------

    def _emit(self):
        """Write the scalars of the last step (held back so that its epoch's values join them)."""
        if self._pending is None:
            return
        (step, scalars, exact), self._pending = self._pending, None
        for s, v in scalars.items():
            self.files[s].add_scalars(step, v, exact.get(s))

    def _close(self):
        try:
            if self.files:
                self._emit()
        finally:
            for f in self.files.values():
                f.close()

    def _log_config(self, run):
        from torch.utils.tensorboard.summary import hparams, text
        p = run.problem
        config = {"run": self.name, "folder": self.run_dir, "sides": list(self.side_names),
                  "layer_sizes": list(p.sizes), "task": p.task, "train_examples": len(p.X),
                  "val_examples": None if p.X_val is None else len(p.X_val), "steps": self.total,
                  "spec": run.spec.to_dict(), **getattr(run, "extra_config", {})}
        body = json.dumps(config, indent=2, sort_keys=False, default=str)
        write_atomic(os.path.join(self.run_dir, "config.json"), (body + "\n").encode())
        markdown = "\n".join("    " + line for line in body.splitlines())   # a code block keeps it exact
        metrics = tuple(METRICS) + (AGREEMENT if self.diff else ())
        self._session_end = {}
        for s, f in self.files.items():
            f.add_summary(text("config", markdown), 0)
            if s in self.side_names:
                exp, start, self._session_end[s] = hparams(hparams_of(run, self.name, s), dict.fromkeys(metrics, 0.0))
                f.add_summary(exp, 0)
                f.add_summary(start, 0)

    def _log_graph(self, run):
        """The torch model's graph, traced by torch.jit through torch's (private) graph exporter;
        a torch that changed it costs the Graphs tab, not the run."""
        if "torch" not in self.sides:
            return
        side = self.sides["torch"]
        try:
            from torch.utils.tensorboard._pytorch_graph import graph
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # the tracer's notes on constants, not meant for users
                graph_def, run_metadata = graph(side.model, side.tensor(run.problem.X[:1]))
        except (ImportError, AttributeError, RuntimeError, TypeError) as e:
            from torch.utils.tensorboard.summary import text
            self.files["torch"].add_summary(text("graph", f"the model graph could not be traced: {e}"), 0)
            return
        self.files["torch"].add_graph(graph_def, run_metadata)

    def _histograms(self, step, record=None):
        from torch.utils.tensorboard.summary import histogram
        for s, side in self.sides.items():
            arrays = [(f"weights/{n}", v) for n, v in side.params().items()]
            if record is not None:
                arrays += [(f"grads/{n}", v) for n, v in record.grads(s).items()]
            for tag, values in arrays:
                values = values[np.isfinite(values)]
                if values.size:
                    self.files[s].add_summary(histogram(tag, values, bins=30), step)

    def _add_images(self, images, step):
        """Each picture into its side's run and, as a PNG file, into the run's folder."""
        for side, tag, filename, png in images:
            self.files[side].add_summary(image_summary(tag, png), step)
            write_atomic(os.path.join(self.run_dir, filename), png)

    def _verdict(self, result):
        passed = getattr(result, "passed", None)
        lines = [f"**{self.name}**: {result.steps} steps, {result.epochs} epochs."]
        if passed is not None:
            mismatch = getattr(result, "mismatch", None)
            lines.append(f"Verdict: **{result.verdict}**.")
            lines.append("The sides agree at every step they were compared." if passed else
                         f"The sides disagree {mismatch.describe() if mismatch is not None else ''}")
            if result.drifts:
                lines.append(f"Rounding proven and resynchronised {len(result.drifts)} time(s); the first "
                             f"{result.drifts[0].describe()}")
        divergence = getattr(result, "divergence", None)
        if divergence is not None:
            text = divergence.describe()
            lines.append(text[0].upper() + text[1:] + ".")
        for s in self.side_names:
            cost = getattr(result, f"final_cost_{s}")
            lines.append(f"- {s}: final cost {cost:.6g}")
        return "\n".join(lines)
