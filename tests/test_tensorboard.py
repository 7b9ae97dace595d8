"""TensorBoard logging: what a run writes, read back as TensorBoard reads it.

One OR-gate run of 40 steps (full batch, so one step per epoch) is logged once and inspected by
every test; the values read back are compared with the LockstepResult's own numbers. A whole
``run all`` (one epoch each) checks that a command's runs stay under the 40 beyond which
TensorBoard's dashboards select none.
"""
import json
import os
import sys
from datetime import datetime

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as tensorboards_masked_crc32c
from tensorboard.util import tensor_util

from backprop_oracle.compare.dashboards.event_file import EventFile, float64_value, masked_crc32c, scalar_value
from backprop_oracle.compare.lockstep.run import LockstepRun
from backprop_oracle.compare.experiments.presets import PRESETS, get_preset
from backprop_oracle.compare.cli.runner import apply_overrides
from backprop_oracle.compare.cli.main import main
from backprop_oracle.compare.dashboards import plots
from backprop_oracle.compare.dashboards.run_pictures import once_or_per_side
from backprop_oracle.compare.dashboards.tensorboard import (LATEST, TensorBoardLogger, logdir_for_runs, tensorboard_executable,
                                                            make_command_dir, make_run_dir, safe_name)

STEPS = 40
SIDES = ("manual", "torch")
TENSORBOARD_SELECTS_AT_MOST = 40   # runs; with more, its dashboards select none and draw nothing
EVERYTHING = {k: 0 for k in ("scalars", "tensors", "images", "histograms", "compressedHistograms", "audio")}


def accumulator(path):
    acc = EventAccumulator(path, size_guidance=EVERYTHING)
    acc.Reload()
    return acc


def event_dirs(root):
    """Every folder under root that holds an event file: TensorBoard's runs."""
    return sorted(os.path.relpath(d, root) for d, _, files in os.walk(root)
                  if any(".tfevents." in f for f in files))


def run_logged(logdir, preset="or-gate", epochs=STEPS, **logger_args):
    spec = apply_overrides(get_preset(preset).runs[""], {"epochs": epochs})
    logger = TensorBoardLogger(str(logdir), preset, **logger_args)
    result = LockstepRun(spec, name=preset, observers=[logger]).run()
    return logger, result


@pytest.fixture(scope="module")
def or_gate(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("runs")
    logger, result = run_logged(logdir)
    return logdir, logger.run_dir, result, accumulator(logger.run_dir)


def png_width(path):
    with open(path, "rb") as f:
        return plots.png_size(f.read(24))[1]


# ---- the event file writer -----------------------------------------------------------------

def test_crc_of_many_records_matches_tensorboards_crc():
    rng = np.random.default_rng(0)
    records = [rng.integers(0, 256, size=n, dtype=np.uint8).tobytes() for n in [0, 1, 7, 8, 300, 513, 2000]]
    records += [rng.integers(0, 256, size=int(n), dtype=np.uint8).tobytes() for n in rng.integers(0, 200, 50)]
    for i, record in enumerate(records):
        crc, want = masked_crc32c(record), tensorboards_masked_crc32c(record)
        assert crc == want, f"record {i} ({len(record)} bytes): crc {int(crc):#010x}, tensorboard's {want:#010x}"


def test_hand_encoded_scalars_event_is_the_proto_classes_event(tmp_path):
    f = EventFile(str(tmp_path))
    scalars = {"step/cost": 0.08891294752305501, "grad_norm/0.weight": 1e300, "step/lr": float("nan")}
    exact = {"exact/step/cost": 0.08891294752305501}
    for step in (1, 300):   # the first event of a tag is built by the classes, the second by hand
        f.add_scalars(step, scalars, exact, wall_time=1234.5)
        expected = Event(wall_time=1234.5, step=step, summary=Summary(value=[
            scalar_value("step/cost", 0.08891294752305501),
            scalar_value("grad_norm/0.weight", float("inf")),   # beyond float32: written as inf
            scalar_value("step/lr", float("nan")), float64_value("exact/step/cost", 0.08891294752305501)]))
        got = f._pending[-1]
        assert got == expected.SerializeToString(), \
            f"step {step}: event bytes {got!r} differ from the proto classes' {expected.SerializeToString()!r}"
    f.close()


# ---- the run folder ------------------------------------------------------------------------

def test_run_folder_is_one_tensorboard_run_with_each_picture_once(or_gate):
    logdir, run_dir, result, _ = or_gate
    assert os.path.relpath(run_dir, logdir) == "or-gate"
    assert event_dirs(str(logdir)) == ["or-gate"], "both sides and their differences in one run"
    files = [f for f in os.listdir(run_dir) if ".tfevents." in f]
    assert len(files) == 1, f"{run_dir} holds {files}, expected one event file"
    pngs = sorted(f for f in os.listdir(run_dir) if f.endswith(".png"))
    assert pngs == sorted(["cost.png"] + [f"boundary_step{k:06d}.png" for k in (0, STEPS // 2, STEPS)])
    contents = {}
    for name in pngs:
        with open(os.path.join(run_dir, name), "rb") as f:
            data = f.read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{name} is not a PNG"
        assert data not in contents.values(), f"{name} is byte for byte {[k for k, v in contents.items() if v == data]}"
        contents[name] = data
        width = plots.png_size(data)[1]
        assert 760 <= width <= 900, f"{name} is {width} pixels wide, expected about 800"
    config = json.load(open(os.path.join(run_dir, "config.json")))
    assert config["spec"]["epochs"] == STEPS and config["spec"]["initial_params"] == {"0.weight": [[0.1, 0.6]],
                                                                                     "0.bias": [0.0]}
    assert config["steps"] == STEPS and config["layer_sizes"] == [2, 1]


def test_run_folders_are_unique_and_safely_named(tmp_path):
    first = make_run_dir(str(tmp_path), "xor:single-unit")
    second = make_run_dir(str(tmp_path), "xor:single-unit")
    assert os.path.relpath(first, tmp_path) == "xor_single-unit"
    assert os.path.relpath(second, tmp_path) == "xor_single-unit-2"
    now = datetime(2024, 5, 6, 7, 8, 9)
    assert os.path.relpath(make_command_dir(str(tmp_path), now=now), tmp_path) == "20240506-070809"
    assert os.path.relpath(make_command_dir(str(tmp_path), now=now), tmp_path) == "20240506-070809-2"
    assert safe_name("../etc") == "etc" and safe_name("a b/c") == "a_b_c"


def test_each_command_gets_a_folder_and_latest_points_to_it(tmp_path):
    logdir = str(tmp_path / "runs")
    with logdir_for_runs(logdir) as first:
        make_run_dir(first, "or-gate")
    assert os.readlink(os.path.join(logdir, LATEST)) == os.path.basename(first)
    with pytest.raises(RuntimeError):
        with logdir_for_runs(logdir) as failed:
            assert os.readlink(os.path.join(logdir, LATEST)) == os.path.basename(failed)
            raise RuntimeError("a data error before any run")
    assert not os.path.exists(failed), "a command that ran nothing leaves no folder"
    assert os.readlink(os.path.join(logdir, LATEST)) == os.path.basename(first), "latest points back"
    assert sorted(os.listdir(logdir)) == sorted([os.path.basename(first), LATEST])


def test_run_all_writes_few_enough_runs_for_tensorboard_to_show_them(tmp_path, capsys):
    logdir = tmp_path / "runs"
    assert main(["run", "or-gate", "--epochs", "1", "--quiet", "--logdir", str(logdir)]) == 0
    # a second command must not add to what the README's command shows
    assert main(["run", "all", "--epochs", "1", "--quiet", "--logdir", str(logdir)]) == 0
    err = capsys.readouterr().err
    assert f"view with: {tensorboard_executable()} --logdir {logdir / LATEST}" in err, err
    shown = event_dirs(str(logdir / LATEST))
    presets = [p for p in PRESETS.values()]
    runs = [safe_name(n) for p in presets for n in p.run_names()]
    several = [p.name for p in presets if len(p.runs) > 1]
    assert sorted(shown) == sorted(runs + several), "one TensorBoard run per run, and one per preset of several"
    assert len(shown) <= TENSORBOARD_SELECTS_AT_MOST, \
        f"run all writes {len(shown)} TensorBoard runs; TensorBoard selects none beyond {TENSORBOARD_SELECTS_AT_MOST}"
    folders = [d for d in os.listdir(logdir) if d != LATEST]
    assert len(folders) == 2 and os.readlink(logdir / LATEST) == max(folders), "latest is the newest command"
    for preset in several:
        acc = accumulator(str(logdir / LATEST / preset))
        # a preset about generalisation (dropout) also has its runs' training and validation accuracy
        also = ["pictures/generalisation"] if PRESETS[preset].picture == "generalisation" else []
        assert sorted(acc.Tags()["images"]) == also + ["pictures/runs"], f"{preset}: its runs' costs on one plot"
        assert png_width(logdir / LATEST / preset / "runs_cost.png") >= 760
    pictures = sorted((logdir / LATEST).glob("*/*.png"))
    assert not [p for p in pictures if p.stem.endswith(("_manual", "_torch"))], "sides that agree share a picture"
    assert len({p.read_bytes() for p in pictures}) == len(pictures), "no picture is written twice"


# ---- what the runs hold --------------------------------------------------------------------

def test_both_sides_have_the_same_tags_side_by_side(or_gate):
    _, _, _, acc = or_gate
    tags = acc.Tags()
    for kind in ("scalars", "tensors", "histograms"):
        mine = {t[:-len("/manual")] for t in tags[kind] if t.endswith("/manual")}
        theirs = {t[:-len("/torch")] for t in tags[kind] if t.endswith("/torch")}
        assert mine == theirs and mine, f"{kind}: manual has {sorted(mine)}, torch has {sorted(theirs)}"
    scalars = set(tags["scalars"])
    for s in SIDES:
        assert {f"step/cost/{s}", f"step/lr/{s}", f"grad_norm/0.weight/{s}", f"grad_norm/0.bias/{s}",
                f"epoch/cost/{s}", f"epoch/lr/{s}", f"epoch/train_accuracy/{s}", f"final/cost/{s}",
                f"final/train_accuracy/{s}"} <= scalars
        assert {f"exact/step/cost/{s}", f"exact/epoch/cost/{s}", f"exact/final/cost/{s}"} <= set(tags["tensors"])
    assert {"step/max_abs_grad_diff", "step/max_rel_grad_diff", "step/max_abs_param_diff", "step/abs_cost_diff",
            "epoch/abs_cost_diff", "final/agree", "final/max_abs_grad_diff"} <= scalars
    assert {"config/text_summary", "verdict/text_summary"} <= set(tags["tensors"])
    assert set(tags["images"]) == {"pictures/boundary", "pictures/cost"}
    assert set(tags["histograms"]) == {f"{k}/0.{p}/{s}" for k in ("weights", "grads") for p in ("weight", "bias")
                                       for s in SIDES}
    assert tags["graph"], "the run holds the torch model's graph"
    # TensorBoard's landing page orders groups by name: the curves come before the pictures.
    assert min(t.split("/")[0] for t in scalars) < "pictures"


@pytest.mark.parametrize("side", SIDES)
def test_cost_curve_has_every_step_exactly(or_gate, side):
    _, _, result, acc = or_gate
    report = getattr(result, f"step_cost_{side}")
    exact = acc.Tensors(f"exact/step/cost/{side}")
    assert [e.step for e in exact] == list(range(1, STEPS + 1))
    for e, want in zip(exact, report):
        got = tensor_util.make_ndarray(e.tensor_proto).item()
        assert got == want, f"{side} exact/step/cost at step {e.step}: logged {got!r}, report {want!r} (tolerance 0)"
    shown = acc.Scalars(f"step/cost/{side}")   # what the Scalars dashboard plots: float32
    assert [e.step for e in shown] == list(range(1, STEPS + 1))
    for e, want in zip(shown, report):
        assert e.value == float(np.float32(want)), f"{side} step/cost at step {e.step}: {e.value!r} vs {want!r}"
    epochs = [tensor_util.make_ndarray(e.tensor_proto).item() for e in acc.Tensors(f"exact/epoch/cost/{side}")]
    assert epochs == getattr(result, f"epoch_cost_{side}")
    (final,) = acc.Tensors(f"exact/final/cost/{side}")
    assert tensor_util.make_ndarray(final.tensor_proto).item() == getattr(result, f"final_cost_{side}")


def test_step_scalars_match_the_step_records(or_gate):
    _, _, result, acc = or_gate
    # The first step of the article's OR gate: w = [0.1, 0.6], b = 0, cost 0.0889 (the OR-gate article).
    first = acc.Scalars("step/cost/manual")[0].value
    assert abs(first - 0.08891294752305501) < 1e-7, f"first step cost {first}, the article's 0.0889129"
    assert all(e.value == 1.0 for e in acc.Scalars("step/lr/manual")), "the OR gate's α is 1"
    diffs = [e.value for e in acc.Scalars("step/max_abs_grad_diff")]
    assert len(diffs) == STEPS and max(diffs) == pytest.approx(result.max_abs_grad_diff, rel=1e-6)
    agree = acc.Scalars("final/agree")
    assert [(e.step, e.value) for e in agree] == [(STEPS, 1.0)]


def test_images_and_histograms_span_the_run(or_gate):
    _, _, _, acc = or_gate
    images = acc.Images("pictures/boundary")
    assert [i.step for i in images] == [0, STEPS // 2, STEPS]
    assert all(i.encoded_image_string[:4] == b"\x89PNG" and 760 <= i.width <= 900 for i in images)
    assert [i.step for i in acc.Images("pictures/cost")] == [STEPS]
    for side in SIDES:
        steps = [h.step for h in acc.Histograms(f"weights/0.weight/{side}")]
        assert steps[0] == 0 and steps[-1] == STEPS and 5 <= len(steps) <= 12
        grads = acc.Histograms(f"grads/0.weight/{side}")
        assert grads and grads[0].step > 0 and grads[0].histogram_value.num == 2   # two weights


def test_images_of_a_digits_preset(tmp_path):
    if "digits" not in PRESETS:
        pytest.skip("no digits preset")
    logger, result = run_logged(tmp_path, "digits", epochs=1)
    acc = accumulator(logger.run_dir)
    assert set(acc.Tags()["images"]) == {"pictures/digits", "pictures/confusion", "pictures/cost"}, \
        "64 features: no 2-D boundary; the sides agree, so one grid of samples and one confusion matrix"
    assert sorted(f for f in os.listdir(logger.run_dir) if f.endswith(".png")) == \
        ["confusion.png", "cost.png", "digits.png"]


def test_boundary_of_a_two_dimensional_preset(tmp_path):
    if "moons" not in PRESETS:
        pytest.skip("no moons preset")
    logger, _ = run_logged(tmp_path, "moons", epochs=2, snapshots=2)
    acc = accumulator(logger.run_dir)
    assert [i.step for i in acc.Images("pictures/boundary")] == [0, logger.total]


def test_sides_that_predict_differently_get_a_picture_each_and_grey_where_they_differ():
    drawn = []
    same = once_or_per_side({"manual": np.array([0, 1]), "torch": np.array([0, 1])}, "pictures/digits",
                            "digits.png", lambda s, label: drawn.append((s, label)) or b"png")
    assert same == [("pictures/digits", "digits.png", b"png")] and drawn == [("manual", "both sides")]
    apart = once_or_per_side({"manual": np.array([0, 1]), "torch": np.array([1, 1])}, "pictures/digits",
                             "digits.png", lambda s, label: s.encode())
    assert apart == [("pictures/digits/manual", "digits_manual.png", b"manual"),
                     ("pictures/digits/torch", "digits_torch.png", b"torch")]
    X = np.array([[0.0, 0.0], [1.0, 1.0]])
    figure = plots.BoundaryFigure(X, np.array([0, 1]), 2, resolution=4)
    manual = (figure.points[:, 0] > 0.5).astype(int)
    torch_side = manual.copy()
    torch_side[0] = 1 - torch_side[0]
    png = figure.render({"manual": manual, "torch": torch_side}, {}, "t")
    shading = np.asarray(figure.image.get_array()).reshape(-1, 3)   # uint8 RGB
    grey = (plots.DISAGREE * 255).round()
    assert np.array_equal(shading[0], grey), f"cell 0 shaded {shading[0]}, expected {grey}"
    assert not np.any(np.all(shading[1:] == grey, axis=1)), "only the cell the sides differ on is grey"
    assert png[:4] == b"\x89PNG"


# ---- interrupted runs ----------------------------------------------------------------------

class StopAt:
    """An observer that interrupts the run at a step, as Ctrl-C would."""

    def __init__(self, step, error=KeyboardInterrupt):
        self.step, self.error = step, error

    def on_step(self, run, record):
        if record.step == self.step:
            raise self.error("stopped")


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_run_keeps_every_step_so_far(tmp_path, error):
    spec = apply_overrides(get_preset("or-gate").runs[""], {"epochs": 1000})
    logger = TensorBoardLogger(str(tmp_path), "or-gate")
    with pytest.raises(error):
        LockstepRun(spec, name="or-gate", observers=[logger, StopAt(17, error)]).run()
    acc = accumulator(logger.run_dir)
    for tag in ("step/cost/manual", "step/cost/torch", "step/abs_cost_diff"):
        assert [e.step for e in acc.Scalars(tag)] == list(range(1, 18)), f"{tag}: steps 1..17 logged"


def test_the_view_command_can_be_pasted(tmp_path, monkeypatch):
    # After the README's set-up the venv is not activated: the command names its tensorboard.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    own = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    assert tensorboard_executable() == (os.path.relpath(own) if not os.path.relpath(own).startswith("..") else own)
    assert os.path.exists(tensorboard_executable())
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + ":/usr/bin:/bin")
    assert tensorboard_executable() == "tensorboard"
