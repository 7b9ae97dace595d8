"""TensorBoard logging: what a run writes, read back as TensorBoard reads it.

One OR-gate run of 40 steps (full batch, so one step per epoch) is logged once and inspected by
every test; the values read back are compared with the LockstepResult's own numbers.
"""
import json
import os
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
from backprop_oracle.compare.dashboards.tensorboard import TensorBoardLogger, make_run_dir, safe_name

STEPS = 40
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
    return logdir, logger.run_dir, result, {s: accumulator(os.path.join(logger.run_dir, s))
                                             for s in ("manual", "torch", "diff")}


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

def test_run_folder_holds_exactly_manual_torch_and_diff_runs_and_the_pictures(or_gate):
    logdir, run_dir, result, _ = or_gate
    assert os.path.dirname(os.path.relpath(run_dir, logdir)) == "or-gate"
    base = os.path.relpath(run_dir, logdir)
    assert event_dirs(str(logdir)) == [os.path.join(base, s) for s in ("diff", "manual", "torch")]
    for side in ("manual", "torch", "diff"):
        files = os.listdir(os.path.join(run_dir, side))
        assert len(files) == 1 and ".tfevents." in files[0], f"{side}/ holds {files}, expected one event file"
    pngs = sorted(f for f in os.listdir(run_dir) if f.endswith(".png"))
    expected = ["cost_curves.png"] + [f"boundary_{s}_step{k:06d}.png" for s in ("manual", "torch")
                                      for k in (0, STEPS // 2, STEPS)]
    assert pngs == sorted(expected)
    for name in pngs:
        with open(os.path.join(run_dir, name), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", f"{name} is not a PNG"
    config = json.load(open(os.path.join(run_dir, "config.json")))
    assert config["spec"]["epochs"] == STEPS and config["spec"]["initial_params"] == {"0.weight": [[0.1, 0.6]],
                                                                                     "0.bias": [0.0]}
    assert config["steps"] == STEPS and config["layer_sizes"] == [2, 1]


def test_run_folders_are_unique_and_safely_named(tmp_path):
    now = datetime(2024, 5, 6, 7, 8, 9)
    first = make_run_dir(str(tmp_path), "xor:single-unit", now=now)
    second = make_run_dir(str(tmp_path), "xor:single-unit", now=now)
    assert first != second
    assert os.path.relpath(first, tmp_path) == os.path.join("xor_single-unit", "20240506-070809")
    assert os.path.relpath(second, tmp_path) == os.path.join("xor_single-unit", "20240506-070809-2")
    assert safe_name("../etc") == "etc" and safe_name("a b/c") == "a_b_c"


# ---- what the runs hold --------------------------------------------------------------------

def test_manual_and_torch_runs_have_the_same_tags(or_gate):
    _, _, _, acc = or_gate
    m, t = acc["manual"].Tags(), acc["torch"].Tags()
    for kind in ("scalars", "tensors", "images", "histograms"):
        assert m[kind] == t[kind], f"{kind}: manual has {m[kind]}, torch has {t[kind]}"
    assert {"step/cost", "step/lr", "grad_norm/0.weight", "grad_norm/0.bias", "epoch/cost", "epoch/lr",
            "epoch/train_accuracy", "final/cost", "final/train_accuracy", "final/agree"} <= set(m["scalars"])
    assert {"exact/step/cost", "exact/epoch/cost", "config/text_summary", "verdict/text_summary"} <= set(m["tensors"])
    assert set(m["images"]) == {"boundary/decision", "cost/curves"}
    assert set(m["histograms"]) == {"weights/0.weight", "weights/0.bias", "grads/0.weight", "grads/0.bias"}
    assert t["graph"] and not m["graph"], "the torch run holds the model graph"
    assert set(acc["diff"].Tags()["scalars"]) >= {"step/max_abs_grad_diff", "step/max_rel_grad_diff",
                                                  "step/max_abs_param_diff", "step/abs_cost_diff"}


@pytest.mark.parametrize("side", ["manual", "torch"])
def test_cost_curve_has_every_step_exactly(or_gate, side):
    _, _, result, acc = or_gate
    report = getattr(result, f"step_cost_{side}")
    exact = acc[side].Tensors("exact/step/cost")
    assert [e.step for e in exact] == list(range(1, STEPS + 1))
    for e, want in zip(exact, report):
        got = tensor_util.make_ndarray(e.tensor_proto).item()
        assert got == want, f"{side} exact/step/cost at step {e.step}: logged {got!r}, report {want!r} (tolerance 0)"
    shown = acc[side].Scalars("step/cost")   # what the Scalars dashboard plots: float32
    assert [e.step for e in shown] == list(range(1, STEPS + 1))
    for e, want in zip(shown, report):
        assert e.value == float(np.float32(want)), f"{side} step/cost at step {e.step}: {e.value!r} vs {want!r}"
    epochs = [tensor_util.make_ndarray(e.tensor_proto).item() for e in acc[side].Tensors("exact/epoch/cost")]
    assert epochs == getattr(result, f"epoch_cost_{side}")


def test_step_scalars_match_the_step_records(or_gate):
    _, _, result, acc = or_gate
    # The first step of the article's OR gate: w = [0.1, 0.6], b = 0, cost 0.0889 (the OR-gate article).
    first = acc["manual"].Scalars("step/cost")[0].value
    assert abs(first - 0.08891294752305501) < 1e-7, f"first step cost {first}, the article's 0.0889129"
    assert all(e.value == 1.0 for e in acc["manual"].Scalars("step/lr")), "the OR gate's α is 1"
    diffs = [e.value for e in acc["diff"].Scalars("step/max_abs_grad_diff")]
    assert len(diffs) == STEPS and max(diffs) == pytest.approx(result.max_abs_grad_diff, rel=1e-6)
    agree = acc["manual"].Scalars("final/agree")
    assert [(e.step, e.value) for e in agree] == [(STEPS, 1.0)]


def test_images_and_histograms_span_the_run(or_gate):
    _, _, _, acc = or_gate
    for side in ("manual", "torch"):
        images = acc[side].Images("boundary/decision")
        assert [i.step for i in images] == [0, STEPS // 2, STEPS]
        assert all(i.encoded_image_string[:4] == b"\x89PNG" and i.width > 100 for i in images)
        assert [i.step for i in acc[side].Images("cost/curves")] == [STEPS]
        steps = [h.step for h in acc[side].Histograms("weights/0.weight")]
        assert steps[0] == 0 and steps[-1] == STEPS and 5 <= len(steps) <= 12
        grads = acc[side].Histograms("grads/0.weight")
        assert grads and grads[0].step > 0 and grads[0].histogram_value.num == 2   # two weights


def test_images_of_a_digits_preset(tmp_path):
    if "digits" not in PRESETS:
        pytest.skip("no digits preset")
    logger, result = run_logged(tmp_path, "digits", epochs=1)
    for side in ("manual", "torch"):
        acc = accumulator(os.path.join(logger.run_dir, side))
        assert {"digits/samples", "digits/confusion", "cost/curves"} <= set(acc.Tags()["images"])
        assert "boundary/decision" not in acc.Tags()["images"], "64 features: no 2-D boundary"
    assert {"digits_manual.png", "confusion_torch.png"} <= set(os.listdir(logger.run_dir))


def test_boundary_of_a_two_dimensional_preset(tmp_path):
    if "moons" not in PRESETS:
        pytest.skip("no moons preset")
    logger, _ = run_logged(tmp_path, "moons", epochs=2, snapshots=2)
    acc = accumulator(os.path.join(logger.run_dir, "torch"))
    assert [i.step for i in acc.Images("boundary/decision")][0] == 0
    assert len(acc.Images("boundary/decision")) == 2


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
    for side in ("manual", "torch", "diff"):
        acc = accumulator(os.path.join(logger.run_dir, side))
        tag = "step/abs_cost_diff" if side == "diff" else "step/cost"
        assert [e.step for e in acc.Scalars(tag)] == list(range(1, 18)), f"{side}: steps 1..17 logged"
