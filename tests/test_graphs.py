"""The torch side's step replayed from CUDA graphs (torch_ref.graphs, ``train --cuda-graph``).

Everything that decides whether a graph is used runs here without a GPU; the replay itself is
checked against the eager path, bit for bit in float64, only where CUDA is present."""
import json

import numpy as np
import pytest
import torch

from backprop_oracle import torch_ref
from backprop_oracle.compare.cli.main import main as cli
from backprop_oracle.compare.errors import SpecError
from backprop_oracle.compare.experiments.presets import get_preset
from backprop_oracle.compare.train.captured import decide
from backprop_oracle.compare.train.torch_only import TorchRun
from backprop_oracle.torch_ref.graphs import GraphedStep, why_eager

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device here: the replay is checked where one is")


def parts(optimizer="sgd", loss="sum_squared_error", **args):
    model = torch_ref.mlp((4, 3, 2), dtype="float64")
    return torch_ref.make_optimizer(optimizer, model.parameters(), lr=0.1, **args), torch_ref.make_loss(loss)


def test_what_never_runs_in_a_graph_is_named():
    sgd, sse = parts(momentum=0.9)
    assert "cpu" in why_eager("cpu", sgd, sse)
    # Decided before CUDA is looked for, so that these hold on any machine.
    assert "2 processes" in why_eager("cuda", sgd, sse, processes=2)
    adam, _ = parts("adam")
    assert "Adam" in why_eager("cuda", adam, sse)
    for loss in ("bce", "hinge"):
        assert f"the {loss} loss" in why_eager("cuda", sgd, torch_ref.make_loss(loss))
    assert why_eager("cuda", sgd, sse) == (None if CUDA else "CUDA is not available here")
    assert why_eager("cuda", sgd, torch_ref.make_loss("cross_entropy")) == (None if CUDA else "CUDA is not available here")
    with_dropout = torch.nn.Sequential(torch.nn.Linear(4, 3), torch_ref.Dropout(0.5, mask=lambda shape, p: None))
    assert "a dropout layer takes a new mask from the host" in why_eager("cuda", sgd, sse, model=with_dropout)
    cumulative = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3, momentum=None))
    assert "momentum=None" in why_eager("cuda", sgd, sse, model=cumulative)
    plain = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch_ref.Dropout(0.5))
    assert why_eager("cuda", sgd, sse, model=plain) == (None if CUDA else "CUDA is not available here")


def test_the_choice_eager_graph_or_error():
    sgd, sse = parts()
    assert decide("cuda", sgd, sse, 1, False) == "not asked for (--no-cuda-graph)"
    assert "cpu" in decide("cpu", sgd, sse, 1, None)                     # the default falls back, saying why
    with pytest.raises(SpecError, match="--cuda-graph cannot be used here: the device is cpu"):
        decide("cpu", sgd, sse, 1, True)
    adam, _ = parts("adam")
    with pytest.raises(SpecError, match="the optimizer is Adam"):
        decide("cuda", adam, sse, 1, True)


def test_a_graphed_step_refuses_what_it_cannot_hold():
    sgd, sse = parts()
    model = torch_ref.mlp((4, 3, 2), dtype="float64")
    with pytest.raises(ValueError, match="the device is cpu"):
        GraphedStep(model, sse, sgd, torch.zeros(5, 4, dtype=torch.float64), torch.zeros(5, 2, dtype=torch.float64))


def test_a_cpu_run_is_eager_and_says_why():
    spec = get_preset("xor").runs["hidden"].with_overrides(device="cpu", epochs=3)
    run = TorchRun(spec)
    result = run.run()
    assert result.extra["cuda_graph"] == {"used": False, "why_eager": "the device is cpu: CUDA graphs need a CUDA GPU"}
    assert run.torch.forward_backward.__func__ is type(run.torch).forward_backward     # the side's own step
    with pytest.raises(SpecError, match="CUDA graphs need a CUDA GPU"):
        TorchRun(spec, cuda_graph=True)
    with pytest.raises(SpecError, match="cuda_graph must be True, False or None"):
        TorchRun(spec, cuda_graph="yes")


def test_cuda_graph_on_the_command_line(tmp_path, capsys):
    assert cli(["train", "xor", "--device", "cpu", "--cuda-graph", "--no-tensorboard", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["backprop-oracle train: error: --cuda-graph needs a CUDA device, not 'cpu': use --device cuda, "
                   "or leave --cuda-graph out"], err
    out = tmp_path / "train.json"
    assert cli(["train", "xor", "--device", "cpu", "--no-cuda-graph", "--epochs", "2", "--no-tensorboard", "--quiet",
                "--json", str(out)]) == 0
    runs = json.loads(out.read_text())["runs"]
    assert runs and all(r["cuda_graph"] == {"used": False, "why_eager": "not asked for (--no-cuda-graph)"} for r in runs)


# ---------------------------------------------------------------- the bookkeeping, with a stand-in for CUDA

class Replay:
    """A stand-in for a captured graph: replaying runs the captured work again on the same tensors
    and writes its result into the tensor the capture returned, as a graph's replay fills it."""

    def __init__(self, work, out):
        self.work, self.out = work, out

    def replay(self):
        new = self.work()
        if isinstance(self.out, torch.Tensor):
            with torch.no_grad():
                self.out.copy_(new)


class OnTheCPU(GraphedStep):
    """GraphedStep with its four CUDA calls stood in for, so that its choices (what is captured
    when, what is put back, what is dropped) run here."""
    _refusal = staticmethod(lambda device, optimizer, loss: None)
    records = 0

    def _side_stream(self):
        return None

    def _record(self, work):
        for _ in range(self.warmup):
            work()                        # as the warm-up does: it changes what it steps
        self.records += 1
        out = work()                      # (a real capture runs nothing; what this run changes is put back or rewritten)
        return Replay(work, out), out

    def _host_rows(self, n):
        return torch.empty(n, dtype=torch.int64)


def stand_in(run):
    side = run.torch
    X, Y = side.data["train"]
    g = OnTheCPU(side.model, side.loss, side.optimizer, X, Y, eager_forward_backward=side.forward_backward,
                 eager_step=side.step)
    side.forward_backward, side.step = g.forward_backward, g.step
    return g


@pytest.mark.parametrize("args", [
    dict(),
    dict(optimizer_args={"momentum": 0.9, "dampening": 0.5}, schedule="step", schedule_args={"step_size": 1, "gamma": 0.5}),
], ids=["sgd", "momentum-step-schedule"])
def test_the_replaying_loop_trains_exactly_as_the_eager_one(args):
    """Digits (a partial last batch every epoch), float64: replaying from the second sight of each
    batch size and learning rate, with the update's warm-up put back, gives the eager numbers."""
    spec = get_preset("digits").runs[""].with_overrides(device="cpu", dtype="float64", epochs=2, **args)
    eager = TorchRun(spec, cuda_graph=False)
    er = eager.run()
    run = TorchRun(spec, cuda_graph=False)
    g = stand_in(run)
    gr = run.run()
    steps = len(er.step_cost_torch)
    # Two batch sizes (32 and the last one) and, with the schedule, a learning rate per epoch.
    updates = 2 if "schedule" in args else 1
    assert g.eager == {"forward_backward": 2, "step": updates}, g.describe()
    assert g.replayed == {"forward_backward": steps - 2, "step": steps - updates}, g.describe()
    assert g.records == 2 + updates and g.fallback is None
    for k, (a, b) in enumerate(zip(er.step_cost_torch, gr.step_cost_torch)):
        assert a == b, f"step {k + 1}: eager cost {a!r} vs replayed {b!r}"
    for (name, p), q in zip(eager.torch.model.named_parameters(), run.torch.model.parameters()):
        assert torch.equal(p, q), f"{name}: eager and replayed differ by up to {(p - q).abs().max().item():.3g}"


def test_replaced_tensors_drop_the_graphs_and_a_failed_capture_stays_eager():
    spec = get_preset("digits").runs[""].with_overrides(device="cpu", dtype="float64", epochs=1)
    run = TorchRun(spec, cuda_graph=False)
    g = stand_in(run)
    idx = np.arange(32)
    for _ in range(3):
        run.torch.forward_backward(idx)
        run.torch.step()
    assert g.replayed == {"forward_backward": 2, "step": 2}, g.describe()
    p = run.torch.model[0].weight
    with torch.no_grad():
        p.data = p.data.clone() * 0.5     # no longer the tensor the graphs were captured on
    records = g.records
    cost = run.torch.forward_backward(idx)
    assert g.records == records + 1, "the forward/backward pass should be captured again on the new tensor"
    X, Y = run.torch.data["train"]
    with torch.no_grad():
        want = run.torch.loss(run.torch.model(X[:32]), Y[:32]).item()
    assert cost == want, f"replayed cost {cost!r} vs the new parameters' {want!r}"

    def broken(work):
        raise RuntimeError("operation not permitted when stream is capturing\nmore")
    g._record = broken
    run.torch.step()
    run.torch.forward_backward(idx)
    assert g.fallback == "capture failed, eager from here on: operation not permitted when stream is capturing"
    before = dict(g.eager)
    run.torch.forward_backward(idx)
    run.torch.step()
    assert g.eager == {"forward_backward": before["forward_backward"] + 1, "step": before["step"] + 1}


# ---------------------------------------------------------------- on a GPU: the replay is the eager path

def train_both(spec):
    eager, graphed = TorchRun(spec, cuda_graph=False), TorchRun(spec, cuda_graph=True)
    return eager, eager.run(), graphed, graphed.run()


@needs_cuda
@pytest.mark.parametrize("args", [
    dict(),                                                                   # plain SGD, a partial last batch
    dict(optimizer_args={"momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}),
    dict(optimizer_args={"momentum": 0.9, "dampening": 0.5}, schedule="step", schedule_args={"step_size": 1, "gamma": 0.5}),
], ids=["sgd", "nesterov", "momentum-step-schedule"])
def test_replayed_steps_are_the_eager_steps_bit_for_bit(args):
    spec = get_preset("digits").runs[""].with_overrides(device="cuda", dtype="float64", epochs=3, **args)
    eager, er, graphed, gr = train_both(spec)
    summary = gr.extra["cuda_graph"]
    assert summary["used"] and summary["fallback"] is None, summary
    assert summary["replayed"]["forward_backward"] > summary["eager"]["forward_backward"], summary
    assert summary["replayed"]["step"] > 0, summary
    assert len(er.step_cost_torch) == len(gr.step_cost_torch)
    for k, (a, b) in enumerate(zip(er.step_cost_torch, gr.step_cost_torch)):
        assert a == b, f"step {k + 1}: eager cost {a!r} vs replayed {b!r}"
    for (name, p), q in zip(eager.torch.model.named_parameters(), graphed.torch.model.parameters()):
        gap = (p - q).abs().max().item()
        assert torch.equal(p, q), f"{name} after training: eager and replayed differ by up to {gap:.3g}"
    assert er.final_cost_torch == gr.final_cost_torch, (er.final_cost_torch, gr.final_cost_torch)


@needs_cuda
def test_a_replaced_parameter_drops_the_graphs_and_steps_eagerly():
    spec = get_preset("digits").runs[""].with_overrides(device="cuda", dtype="float64", epochs=1)
    run = TorchRun(spec, cuda_graph=True)
    g = run.cuda_graph.graphed
    idx = np.arange(32)
    for _ in range(3):
        run.torch.forward_backward(idx)
        run.torch.step()
    assert g.replayed["forward_backward"] == 2 and g.replayed["step"] == 2, g.describe()
    p = run.torch.model[0].weight
    with torch.no_grad():
        p.data = p.data.clone()        # no longer the tensor the graphs were captured on
    before = dict(g.eager)
    run.torch.forward_backward(idx)
    assert g.eager["forward_backward"] == before["forward_backward"] + 1, g.describe()
