"""The torch side's training step replayed from CUDA graphs (torch_ref.graphs), for ``train``.

``cuda_graph``: None (the default) uses graphs where the run can take them and says why not
where it cannot; True requires them (a SpecError naming the reason where they cannot be used);
False keeps every step eager. The steps that are not replayed are the side's own eager ones.
"""
from backprop_oracle.compare.errors import SpecError
from backprop_oracle.torch_ref.graphs import GraphedStep, why_eager


class CudaGraphChoice:
    """What a run decided: ``graphed`` (a GraphedStep, or None) and ``reason`` (why eager, or None)."""

    def __init__(self, graphed=None, reason=None):
        self.graphed, self.reason = graphed, reason

    def summary(self):
        """For the run's JSON: whether graphs were used and, if not, why; replayed and eager counts."""
        if self.graphed is None:
            return {"used": False, "why_eager": self.reason}
        return {"used": True, "why_eager": None, **self.graphed.describe()}


def decide(device, optimizer, loss, processes, cuda_graph, model=None):
    """None where a graph may be used, else why the steps stay eager; raises where one was required."""
    if cuda_graph is False:
        return "not asked for (--no-cuda-graph)"
    reason = why_eager(device, optimizer, loss, processes, model)
    if reason is not None and cuda_graph is True:
        raise SpecError(f"--cuda-graph cannot be used here: {reason}; leave it out (cuda_graph=None) to train "
                        "eagerly where a graph cannot hold the step")
    return reason


def attach(run, cuda_graph=None):
    """Give ``run.torch`` (a TorchSide whose data is loaded) graphed ``forward_backward`` and
    ``step`` where they can be used; returns the CudaGraphChoice."""
    if cuda_graph not in (None, True, False):
        raise SpecError(f"cuda_graph must be True, False or None (where possible), got {cuda_graph!r}")
    side = run.torch
    processes = 1 if run.dist is None else run.dist.world_size
    reason = decide(side.device, side.optimizer, side.loss, processes, cuda_graph, side.model)
    if reason is not None:
        return CudaGraphChoice(reason=reason)
    X, Y = side.data["train"]
    graphed = GraphedStep(side.model, side.loss, side.optimizer, X, Y,
                          eager_forward_backward=side.forward_backward, eager_step=side.step)
    side.forward_backward, side.step = graphed.forward_backward, graphed.step
    return CudaGraphChoice(graphed)
