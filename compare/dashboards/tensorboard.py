"""TensorBoard logging of a run, as an observer of compare.lockstep.LockstepRun (or of the
torch-only compare.train.torch_only.TorchRun).

Layout: each command writes into a folder of its own, ``<logdir>/<YYYYmmdd-HHMMSS>/``, which
``<logdir>/latest`` points to (``logdir_for_runs``); in it, ``<run name>/`` is one TensorBoard
run for each run (``xor_hidden``), holding both sides' curves, their differences, the pictures
(each also a PNG file beside the events) and ``config.json``. One TensorBoard run per run keeps
``run all`` well under the 40 runs beyond which TensorBoard's dashboards select none, and makes
the HParams dashboard one session per run, each side's final figures and their agreement in one
row. A preset of several runs also gets a run of its own, its name, with their costs on one plot.

Tags: the side is the last part of a tag, so both sides' charts of a quantity stand side by side:
    step/cost/<side>, step/lr/<side>, grad_norm/<parameter>/<side>     every step
    step/max_abs_grad_diff, step/max_rel_grad_diff, step/max_abs_param_diff, step/abs_cost_diff
    epoch/cost/<side>, epoch/lr/<side>, epoch/abs_cost_diff           every epoch, at its last step
    epoch/train_accuracy/<side>, epoch/val_cost/<side>, epoch/val_accuracy/<side>   where evaluated
    final/cost/<side>, final/train_accuracy/<side>, final/val_cost/<side>, final/val_accuracy/<side>,
    final/max_abs_grad_diff, final/max_abs_param_diff, final/max_abs_cost_diff, final/agree:
                                                     at the last step; the HParams metrics
    weights/<parameter>/<side>, grads/<parameter>/<side>   histograms, about ``histograms`` times a run
    pictures/boundary (2-D classification) or pictures/fit (one-input regression): ``snapshots``
    times a run, from the start to the end; pictures/cost; pictures/digits, pictures/confusion
    config, verdict (text); hparams; the torch model's graph
    exact/step/cost/<side>, exact/epoch/cost/<side>, exact/final/cost/<side>: the costs again as
        float64 tensors, equal bit for bit to the report's (the dashboard's scalars are float32)
The difference tags are written where both sides run (``diff``).
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

from backprop_oracle.compare.dashboards.drawing import Drawer
from backprop_oracle.compare.dashboards.event_file import EventFile
from backprop_oracle.compare.errors import UsageError
from backprop_oracle.compare.files import write_atomic
from backprop_oracle.compare.sides.sides import layout_offsets

SIDES = ("manual", "torch")
# HParams metric -> the result field it comes from (with "_manual" or "_torch" appended).
METRICS = {"final/cost": "final_cost", "final/train_accuracy": "train_accuracy",
           "final/val_cost": "val_cost", "final/val_accuracy": "val_accuracy"}
AGREEMENT = ("final/max_abs_grad_diff", "final/max_abs_param_diff", "final/max_abs_cost_diff", "final/agree")


def safe_name(name):
    """A folder name for a run name: "xor:single-unit" -> "xor_single-unit"."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._") or "run"


def make_run_dir(logdir, run_name):
    """Create and return ``<logdir>/<safe run name>``; a name already there gets ``-2``, ``-3``, ...
    (the folder is created exclusively, so two runs never share one)."""
    os.makedirs(logdir, exist_ok=True)
    base = os.path.join(logdir, safe_name(run_name))
    k = 1
    while True:
        path = base if k == 1 else f"{base}-{k}"
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            k += 1


def run_dir_names(names):
    """The folder names ``make_run_dir`` gives runs named ``names`` when it makes them in this
    order in an empty folder: ["a:b", "a_b"] -> ["a_b", "a_b-2"]."""
    taken, out = set(), []
    for name in names:
        base, k = safe_name(name), 1
        while (base if k == 1 else f"{base}-{k}") in taken:
            k += 1
        out.append(base if k == 1 else f"{base}-{k}")
        taken.add(out[-1])
    return out


def make_command_dir(logdir, now=None):
    """Create and return ``<logdir>/<YYYYmmdd-HHMMSS>``, the folder of one command's runs; a
    command started in the same second as another gets ``-2``, ``-3``, ... (created exclusively)."""
    return make_run_dir(logdir, (now or datetime.now()).strftime("%Y%m%d-%H%M%S"))


LATEST = "latest"


def point_latest(logdir, target):
    """Make ``<logdir>/latest`` a relative symbolic link to ``target`` (a folder in ``logdir``), or
    remove it for ``target`` None; replaced in one step, so a reader never sees it missing.
    Returns whether it could (a file system without links keeps no ``latest``)."""
    link = os.path.join(logdir, LATEST)
    if os.path.lexists(link) and not os.path.islink(link):
        return False                 # a user's own file or folder of that name: left alone
    try:
        if target is None:
            os.remove(link)
            return True
        temporary = f"{link}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)     # left by a process of the same id that was killed here
        os.symlink(os.path.basename(target), temporary, target_is_directory=True)
        os.replace(temporary, link)
        return True
    except OSError:
        return False


def view_command(logdir, folder):
    """The command that shows ``folder``'s runs: through ``<logdir>/latest`` while it points there."""
    link = os.path.join(logdir, LATEST)
    shown = link if os.path.islink(link) and os.readlink(link) == os.path.basename(folder) else folder
    return f"{tensorboard_executable()} --logdir {shown}"


def tensorboard_executable():
    """How to start this environment's TensorBoard from the current folder: ``tensorboard`` when
    that name on PATH is this environment's own, else its path (``.venv/bin/tensorboard`` for a
    venv that is not activated, as after the README's set-up)."""
    import shutil
    import sys
    own = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    if not os.path.exists(own):
        return "tensorboard"
    on_path = shutil.which("tensorboard")
    if on_path is not None and os.path.realpath(on_path) == os.path.realpath(own):
        return "tensorboard"
    relative = os.path.relpath(own)
    return own if relative.startswith("..") else relative


@contextlib.contextmanager
def logdir_for_runs(path):
    """``check_logdir(path)``, then a new folder for the command's runs (``make_command_dir``),
    which ``<path>/latest`` points to; yields that folder. The folders it had to create are
    removed again, and ``latest`` pointed back, if the command fails before any run wrote into
    them (a data or seed error), so that a mistake leaves nothing behind."""
    created = []
    head = os.path.abspath(path)
    while not os.path.exists(head):
        created.append(head)
        head = os.path.dirname(head)
    check_logdir(path)
    link = os.path.join(path, LATEST)
    before = os.readlink(link) if os.path.islink(link) else None
    folder = make_command_dir(path)
    point_latest(path, folder)
    try:
        yield folder
    except BaseException:
        _undo(path, folder, before, created)
        raise


def _undo(path, folder, before, created):
    """Remove the command's folder while it is empty, point ``latest`` back to ``before``, and
    remove the folders ``created`` for it (deepest first) while they are empty."""
    try:
        os.rmdir(folder)
    except OSError:
        return                          # a run wrote into it: it stays, and stays the latest
    if before is not None:
        point_latest(path, os.path.join(path, before))
    else:
        point_latest(path, None)
    for made in created:
        try:
            os.rmdir(made)
        except OSError:
            break


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


def hparams_of(run, name, sides):
    """The run's configuration as flat HParams values (numbers and strings only)."""
    spec, p = run.spec, run.problem
    out = {"run": name, "sides": ",".join(sides), "hidden_sizes": ",".join(map(str, spec.hidden_sizes)) or "none",
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
    """Observer writing one TensorBoard run, and PNG pictures, for one run.

    ``logdir``: the folder the run's own folder is made in (``<logdir>/<run name>``; the commands
    pass the folder ``logdir_for_runs`` made). ``sides``: which sides to log ("manual", "torch",
    or only "torch" for a torch-only run); ``diff``: also log their differences (needs both
    sides). ``histograms``: about how many times a run the weight and gradient histograms are
    written; ``snapshots``: how many pictures of the boundary (or fit) a run draws, the first at
    the start and the last at the end. After ``on_start``, ``run_dir`` is the run's folder.
    ``folder``: write into this folder (created if missing) instead of a new ``<logdir>/<run
    name>``; ``final_folder``: the folder ``config.json`` names as the run's, where its files end
    up when they are written elsewhere first (a run on another process, compare.spread.runs).
    ``drawer``: what draws the pictures (compare.dashboards.drawing.Drawer); by default they are
    drawn in place, the command line draws them in a second process. Either way each picture goes
    into the run, in the order taken and at the step it shows, as soon as it is drawn, and all of
    them before the run's logs are closed.
    """

    def __init__(self, logdir="runs", run_name=None, *, sides=SIDES, diff=True, histograms=10,
                 snapshots=3, flush_secs=1.0, folder=None, final_folder=None, drawer=None):
        self.logdir, self.run_name = logdir, run_name
        self.folder, self.final_folder = folder, final_folder
        self.side_names = tuple(sides)
        self.diff = diff and len(self.side_names) == 2
        self.histograms, self.snapshots, self.flush_secs = histograms, max(2, snapshots), flush_secs
        self.run_dir, self.file, self._pending = None, None, None
        self.drawer = Drawer() if drawer is None else drawer
        self._drawing = []        # [(step, tag, file name, drawing, pending)]: pictures not written yet

    # ---- observer methods ------------------------------------------------------------------

    def on_start(self, run):
        p, spec = run.problem, run.spec
        self.name = self.run_name or run.name
        self.sides = {s: getattr(run, s) for s in self.side_names}
        if self.folder is None:
            self.run_dir = make_run_dir(self.logdir, self.name)
        else:
            os.makedirs(self.folder, exist_ok=True)
            self.run_dir = self.folder
        try:
            self.file = EventFile(self.run_dir, self.flush_secs)
            layout = next(iter(self.sides.values())).layout
            self.norm_tags = {s: [f"grad_norm/{n}/{s}" for n, _ in layout] for s in self.side_names}
            self.offsets = layout_offsets(layout)
            batch = spec.batch_size or len(p.X)
            self.steps_per_epoch = math.ceil(len(p.X) / batch)
            self.total = spec.epochs * self.steps_per_epoch
            self.hist_steps = set(np.linspace(0, self.total, self.histograms + 1).round().astype(int)[1:].tolist())
            self.snap_steps = set(np.linspace(0, self.total, self.snapshots).round().astype(int)[1:-1].tolist())
            self._log_config(run)
            self._log_graph(run)
            start = getattr(run, "start_step", 0)     # a run resumed from a checkpoint goes on from its step
            self._histograms(start)
            from backprop_oracle.compare.dashboards.run_pictures import RunPictures
            self.pictures = RunPictures(run, self.name, self.sides, self.total, self.steps_per_epoch)
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
            scalars[f"step/cost/{s}"] = cost
            scalars[f"step/lr/{s}"] = getattr(record, f"lr_{s}")
            scalars.update(zip(self.norm_tags[s], norms.tolist()))
            exact[f"exact/step/cost/{s}"] = cost
        if self.diff:
            scalars.update({"step/max_abs_grad_diff": record.max_abs_grad_diff,
                            "step/max_rel_grad_diff": record.max_rel_grad_diff,
                            "step/max_abs_param_diff": record.max_abs_param_diff,
                            "step/abs_cost_diff": record.abs_cost_diff})
        self._pending = (record.step, scalars, exact)
        if record.step in self.hist_steps:
            self._histograms(record.step, record)
        if record.step in self.snap_steps:
            self._add_images(self.pictures.snapshot(record.step), record.step)

    def reads_sides_at(self, step):
        """The steps whose calls read the sides' models and parameters, not only the records: the
        histograms' and the pictures' (compare.lockstep.blocks)."""
        return step in self.hist_steps or step in self.snap_steps

    def on_epoch(self, run, record):
        if self._pending is None or self._pending[0] != record.step:
            self._emit()
            self._pending = (record.step, {}, {})
        _, scalars, exact = self._pending
        for s in self.side_names:
            scalars[f"epoch/cost/{s}"] = exact[f"exact/epoch/cost/{s}"] = getattr(record, f"cost_{s}")
            scalars[f"epoch/lr/{s}"] = getattr(record, f"lr_{s}")
            for key in ("train_accuracy", "val_cost", "val_accuracy"):
                x = getattr(record, f"{key}_{s}") if record.evaluated else None
                if x is not None:
                    scalars[f"epoch/{key}/{s}"] = x
        if self.diff:
            scalars["epoch/abs_cost_diff"] = abs(record.cost_manual - record.cost_torch)

    def on_end(self, run, result):
        self._emit()
        step = result.steps
        final = {}
        for s in self.side_names:
            for m, field in METRICS.items():
                value = getattr(result, f"{field}_{s}")
                if value is not None:
                    final[f"{m}/{s}"] = value
        if self.diff:
            final.update({"final/max_abs_grad_diff": result.max_abs_grad_diff,
                          "final/max_abs_param_diff": result.max_abs_param_diff,
                          "final/max_abs_cost_diff": result.max_abs_cost_diff,
                          "final/agree": float(result.passed)})
        self.file.add_scalars(step, final, {f"exact/final/cost/{s}": final[f"final/cost/{s}"]
                                            for s in self.side_names})
        if step not in self.hist_steps:
            self._histograms(step)
        self._add_images(self.pictures.snapshot(step), step)
        self._add_images(self.pictures.at_end(result), step)
        self._write_images(wait=True)
        from torch.utils.tensorboard.summary import text
        self.file.add_summary(text("verdict", self._verdict(result)), step)
        self.file.add_summary(self._session_end, step)
        self.file.flush()

    def on_close(self, run):
        """Always called, also on an error or Ctrl-C: every step logged so far reaches the disk."""
        self._close()

    def note_ended_early(self, note):
        """Mark the run's config.json as ended early (``note``: at which step, why, what next), for a
        run a failure stopped from outside it (a peer of a distributed run that went silent)."""
        path = os.path.join(self.run_dir, "config.json")
        with open(path) as f:
            config = json.load(f)
        config["ended_early"] = note
        body = json.dumps(config, indent=2, sort_keys=False, default=str)
        write_atomic(path, (body + "\n").encode())

    # ---- pieces ----------------------------------------------------------------------------

    def _emit(self):
        """Write the scalars of the last step (held back so that its epoch's values join them), and
        the pictures drawn since."""
        if self._drawing:
            self._write_images()
        if self._pending is None:
            return
        (step, scalars, exact), self._pending = self._pending, None
        self.file.add_scalars(step, scalars, exact)

    def _close(self):
        if self.file is None:
            return
        try:
            self._emit()
            self._write_images(wait=True)
        finally:
            self.file.close()

    def metrics(self):
        """The HParams metrics: each side's final figures, and their agreement."""
        return [f"{m}/{s}" for m in METRICS for s in self.side_names] + (list(AGREEMENT) if self.diff else [])

    def _log_config(self, run):
        from torch.utils.tensorboard.summary import hparams, text
        p = run.problem
        config = {"run": self.name, "folder": self.final_folder or self.run_dir, "sides": list(self.side_names),
                  "layer_sizes": list(p.sizes), "task": p.task, "train_examples": len(p.X),
                  "val_examples": None if p.X_val is None else len(p.X_val), "steps": self.total,
                  "spec": run.spec.to_dict(), **getattr(run, "extra_config", {})}
        body = json.dumps(config, indent=2, sort_keys=False, default=str)
        write_atomic(os.path.join(self.run_dir, "config.json"), (body + "\n").encode())
        markdown = "\n".join("    " + line for line in body.splitlines())   # a code block keeps it exact
        self.file.add_summary(text("config", markdown), 0)
        exp, start, self._session_end = hparams(hparams_of(run, self.name, self.side_names),
                                                dict.fromkeys(self.metrics(), 0.0))
        self.file.add_summary(exp, 0)
        self.file.add_summary(start, 0)

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
            self.file.add_summary(text("graph", f"the model graph could not be traced: {e}"), 0)
            return
        self.file.add_graph(graph_def, run_metadata)

    def _histograms(self, step, record=None):
        from torch.utils.tensorboard.summary import histogram
        for s, side in self.sides.items():
            arrays = [(f"weights/{n}/{s}", v) for n, v in side.params().items()]
            if record is not None:
                arrays += [(f"grads/{n}/{s}", v) for n, v in record.grads(s).items()]
            for tag, values in arrays:
                values = values[np.isfinite(values)]
                if values.size:
                    self.file.add_summary(histogram(tag, values, bins=30), step)

    def _add_images(self, images, step):
        """Have each picture (tag, file name, drawing) drawn; it is written when it is done."""
        for tag, filename, drawing in images:
            self._drawing.append((step, tag, filename, drawing, self.drawer.submit(drawing)))
        self._write_images()

    def _write_images(self, wait=False):
        """Each picture drawn so far, in the order taken, into the run and, as a PNG file, into the
        run's folder; with ``wait``, every one. (A picture written after a later step's scalars is no
        trouble for TensorBoard: a value out of step order makes it drop only the later values of
        that value's own tag, and a tag's pictures are written in step order.)"""
        while self._drawing:
            step, tag, filename, drawing, pending = self._drawing[0]
            png = self.drawer.png(drawing, pending, wait=wait)
            if png is None:
                return
            del self._drawing[0]
            self.file.add_summary(image_summary(tag, png), step)
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


def log_preset_runs(logdir, preset_name, results):
    """A TensorBoard run ``<logdir>/<preset name>`` for a preset of several runs: their mean cost
    per epoch on one plot (``pictures/runs``, also ``runs_cost.png`` beside it), the point of
    presets such as sgd-vs-batch; where every run carries its training and validation accuracy per
    epoch (``extra["epochs"]``, a preset about generalisation such as dropout), those on one plot too
    (``pictures/generalisation``, ``runs_generalisation.png``). ``results``: [(run name, LockstepResult)]."""
    from backprop_oracle.compare.dashboards.plots import runs_cost
    from torch.utils.tensorboard.summary import text
    curves, lines = {}, []
    for name, result in results:
        spec = result.spec
        batch = "full batch" if spec.batch_size is None else f"batch {spec.batch_size}"
        label = f"{name.partition(':')[2] or name}: {batch}, {result.steps} updates"
        curves[label] = {s: getattr(result, f"epoch_cost_{s}") for s in SIDES}
        lines.append(f"- **{name}** ({batch}, {result.steps} updates): final cost {result.final_cost_manual:.6g}, "
                     f"{result.verdict}")
    png = runs_cost(curves, f"{preset_name} — its runs' cost per epoch")
    folder = make_run_dir(logdir, preset_name)
    write_atomic(os.path.join(folder, "runs_cost.png"), png)
    general = None
    if all("epochs" in r.extra for _, r in results):
        from backprop_oracle.compare.dashboards.plots import runs_generalisation
        general = runs_generalisation({name.partition(":")[2] or name: r.extra["epochs"] for name, r in results},
                                      f"{preset_name} — training against validation accuracy")
        write_atomic(os.path.join(folder, "runs_generalisation.png"), general)
        lines = [line + (f"; training accuracy {r.train_accuracy_manual:.4g}, validation {r.val_accuracy_manual:.4g}"
                         if r.val_accuracy_manual is not None else "") for line, (_, r) in zip(lines, results)]
    events = EventFile(folder)
    try:
        step = max(r.epochs for _, r in results)
        events.add_summary(image_summary("pictures/runs", png), step)
        if general is not None:
            events.add_summary(image_summary("pictures/generalisation", general), step)
        events.add_summary(text("runs", "\n".join(lines)), step)
    finally:
        events.close()
    return folder
