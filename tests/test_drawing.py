"""Pictures drawn in a second process are the pictures drawn in place, byte for byte, and none is
lost when there is no second process or it dies (compare.dashboards.drawing)."""
import os
from functools import partial

import numpy as np
import pytest

from backprop_oracle.compare.dashboards import drawing, plots
from backprop_oracle.compare.dashboards.drawing import Drawer


def drawings():
    """A cost plot, two snapshots of one boundary figure (the second redraws the first's), digits."""
    rng = np.random.default_rng(0)
    costs = np.exp(-np.linspace(0, 3, 40)) + 0.01
    X = rng.standard_normal((30, 2))
    labels = (X[:, 0] > 0).astype(np.int64)
    grid = plots.boundary_grid(X)[2]
    out = []
    for t in (0.3, 0.8):
        values = 1 / (1 + np.exp(-(grid[:, 0] - t)))
        classes = (values > 0.5).astype(np.int64)
        out.append(partial(plots.boundary_png, "test-boundary", X, labels, 2, ("manual", "torch"),
                           {"manual": classes, "torch": classes},
                           {"manual": (values, [0.5]), "torch": (values, [0.5])}, f"boundary {t}"))
    out.append(partial(plots.cost_curves, {"manual": costs, "torch": costs},
                       {"manual": costs[::10], "torch": costs[::10]}, 10, "cost"))
    images = rng.random((8, 64))
    out.append(partial(plots.digit_samples, images, np.arange(8) % 10, np.arange(8) % 10, "digits"))
    return out


def test_a_second_process_draws_the_same_bytes():
    expected = [d() for d in drawings()]
    with Drawer(process=True) as drawer:
        pending = [(d, drawer.submit(d)) for d in drawings()]
        got = [drawer.png(d, p) for d, p in pending]
        assert drawer._worker is not None and not drawer._inline, "the pictures were drawn in place, not by the worker"
    for i, (a, b) in enumerate(zip(expected, got)):
        assert a == b, f"picture {i}: {len(b)} bytes from the worker differ from the {len(a)} drawn in place"
    assert all(p.startswith(b"\x89PNG") for p in got)


def test_drawn_in_place_without_a_process(monkeypatch):
    def no_processes(*args, **kwargs):
        raise OSError("no processes here")
    monkeypatch.setattr(drawing.subprocess, "Popen", no_processes)
    d = drawings()[2]
    with Drawer(process=True) as drawer:
        pending = drawer.submit(d)
        assert pending.done() and drawer._worker is None
        assert drawer.png(d, pending) == d()


def test_a_dead_worker_costs_no_picture():
    d = drawings()[2]
    with Drawer(process=True) as drawer:
        first = drawer.submit(d)
        assert drawer.png(d, first) == d()
        drawer._worker.kill()
        later = [drawer.submit(d) for _ in range(3)]
        assert [drawer.png(d, p) for p in later] == [d()] * 3
        # after that, everything is drawn in place
        assert drawer.submit(d).done()


def test_data_that_cannot_be_sent_is_drawn_in_place():
    with Drawer(process=True) as drawer:
        d = partial(plots.cost_curves, {"manual": np.ones(3)}, {"manual": np.ones(1)}, 3, "cost")
        drawer.png(d, drawer.submit(d))
        local = lambda: d()        # noqa: E731 (a lambda cannot be pickled)
        assert drawer.png(local, drawer.submit(local)) == d()


def test_an_error_in_a_drawing_is_the_callers():
    bad = partial(plots.cost_curves, {"manual": "not numbers"}, {}, 1, "cost")
    with Drawer(process=True) as drawer:
        pending = drawer.submit(bad)
        with pytest.raises(Exception):
            drawer.png(bad, pending)
    with pytest.raises(Exception):
        Drawer().submit(bad)


def test_not_ready_is_none_until_drawn():
    d = drawings()[3]
    with Drawer(process=True) as drawer:
        pending = drawer.submit(d)
        first = drawer.png(d, pending, wait=False)
        assert first is None or first == d()
        assert drawer.png(d, pending) == d()


def pictures_of(folder):
    return {f: open(os.path.join(folder, f), "rb").read() for f in sorted(os.listdir(folder)) if f.endswith(".png")}


@pytest.mark.parametrize("preset, epochs", [("moons", 6), ("digits", 2)])
def test_a_run_logged_through_the_worker_has_the_pictures_drawn_in_place(tmp_path, preset, epochs):
    from backprop_oracle.compare.cli.runner import apply_overrides
    from backprop_oracle.compare.dashboards.tensorboard import TensorBoardLogger
    from backprop_oracle.compare.experiments.presets import get_preset
    from backprop_oracle.compare.lockstep.run import LockstepRun
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    spec = apply_overrides(get_preset(preset).runs[""], {"epochs": epochs})
    with Drawer(process=True) as drawer:
        here = TensorBoardLogger(str(tmp_path / "here"), preset)
        there = TensorBoardLogger(str(tmp_path / "there"), preset, drawer=drawer)
        LockstepRun(spec, name=preset, observers=[here, there]).run()
        assert drawer._worker is not None and not drawer._inline
    expected, got = pictures_of(here.run_dir), pictures_of(there.run_dir)
    assert len(expected) >= 2 and list(got) == list(expected)
    for name in expected:
        assert got[name] == expected[name], f"{name}: the worker's picture differs from the one drawn in place"
    tags = {}
    for logger in (here, there):
        acc = EventAccumulator(logger.run_dir, size_guidance={"images": 0})
        acc.Reload()
        tags[logger] = {t: [(i.step, i.encoded_image_string) for i in acc.Images(t)] for t in acc.Tags()["images"]}
    assert tags[there] == tags[here] and tags[here]


def test_an_interrupted_run_still_writes_the_pictures_it_took(tmp_path):
    from backprop_oracle.compare.cli.runner import apply_overrides
    from backprop_oracle.compare.dashboards.tensorboard import TensorBoardLogger
    from backprop_oracle.compare.experiments.presets import get_preset
    from backprop_oracle.compare.lockstep.run import LockstepRun

    class Stop:
        def on_step(self, run, record):
            if record.step == 30:
                raise KeyboardInterrupt

    spec = apply_overrides(get_preset("moons").runs[""], {"epochs": 10})
    with Drawer(process=True) as drawer:
        logger = TensorBoardLogger(str(tmp_path), "moons", drawer=drawer)
        with pytest.raises(KeyboardInterrupt):
            LockstepRun(spec, name="moons", observers=[logger, Stop()]).run()
    assert list(pictures_of(logger.run_dir)) == ["boundary_step000000.png"]
