"""A training step recorded once as CUDA graphs and then replayed: small networks past the launch floor.

Eagerly, Python launches every kernel of a step (forward, loss, backward, the update) one by one,
and on a GPU a small network's step costs that launching, whatever its size. A CUDA graph records
the launches once (torch.cuda.graph, stream capture) and replays them with one call. Each step is
two graphs: forward + backward (the cost and the gradients, which a training loop reads before
it updates: a run whose cost exploded stops before its update, as eagerly) and the optimizer's step.

What a graph replays must stay put: the same shapes, the same memory, no value read back to the
host while it runs. Hence:

- the training data stays on the GPU and each batch is gathered there (``index_select``) from its
  row numbers, copied into a fixed index tensor; one forward/backward graph per batch size (a
  partial last batch gets its own);
- the update graph holds the learning rate and the other hyperparameters: new ones (a scheduler)
  get a new graph;
- a batch size or a learning rate runs eagerly the first time it is seen and is captured the
  second: the optimizer's state (SGD's momentum buffers, made by its first step) exists then,
  and a learning rate used once (one step per epoch under a changing schedule) is never
  captured for nothing;
- before each replay the parameters, gradients and momentum buffers are checked to be the
  tensors captured; if one was replaced (a checkpoint restored, ``p.data = ...``), the graphs are
  dropped and that step runs eagerly.

``why_eager`` names what never runs in a graph: a device that is not CUDA, several processes
(DistributedDataParallel's all-reduce), an optimizer other than SGD (Adam's step count lives on
the host; ``capturable=True`` moves it to the GPU but computes the update with other kernels,
which need not give the eager numbers bit for bit), and a loss that checks its input on the host
every step (bce, hinge), a dropout layer whose mask comes from the host (the masks both sides
share), and a batch norm with ``momentum=None``. A capture that fails all the same leaves the step eager for the rest of
the run, the error kept in ``fallback``.

The replayed kernels are the eager kernels on the same tensors, so the numbers are meant to be
the eager path's exactly (tests/test_graphs.py asserts it in float64 where CUDA is present).
"""
import numpy as np
import torch

from backprop_oracle.torch_ref.losses import BCELoss, HingeLoss

HOST_CHECKS = {BCELoss: "bce", HingeLoss: "hinge"}


def why_eager(device, optimizer, loss, processes=1, model=None):
    """Why a step with these parts cannot be a CUDA graph, or None when it can."""
    device = torch.device(device)
    if device.type != "cuda":
        return f"the device is {device.type}: CUDA graphs need a CUDA GPU"
    if processes > 1:
        return (f"{processes} processes: DistributedDataParallel averages the gradients with an all-reduce "
                "that runs eagerly")
    if type(optimizer) is not torch.optim.SGD:
        return (f"the optimizer is {type(optimizer).__name__}: only SGD's update is captured (Adam keeps its step "
                "count on the host, and its capturable form need not give the eager numbers bit for bit)")
    for kind, name in HOST_CHECKS.items():
        if isinstance(loss, kind):
            return f"the {name} loss checks its input on the host every step, which a graph cannot hold"
    for m in (model.modules() if model is not None else ()):
        if isinstance(m, torch.nn.Dropout) and getattr(m, "mask_provider", None) is not None and m.p > 0:
            return ("a dropout layer takes a new mask from the host every step (the masks the manual side "
                    "gets), which a graph would freeze at the first")
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.momentum is None and m.track_running_stats:
            return "a batch norm with momentum=None divides by its step count on the host every step"
    if not torch.cuda.is_available():
        return "CUDA is not available here"
    return None


class GraphedStep:
    """``forward_backward(idx)`` and ``step()`` of one training loop, replayed from CUDA graphs.

    ``X``, ``Y``: the whole training set on the GPU; ``idx``: a batch's row numbers (NumPy). The
    steps that are not replayed (see the module's docstring) call ``eager_forward_backward(idx)``
    and ``eager_step()`` when given, so that they are exactly the caller's own eager step; without
    them, the step written here (gradients zeroed in place, the batch gathered on the device).
    """

    def __init__(self, model, loss, optimizer, X, Y, *, eager_forward_backward=None, eager_step=None, warmup=2):
        reason = self._refusal(X.device, optimizer, loss)
        if reason is not None:
            raise ValueError(f"a CUDA graph cannot hold this training step: {reason}")
        self.model, self.loss, self.optimizer, self.X, self.Y = model, loss, optimizer, X, Y
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.eager_forward_backward = eager_forward_backward or self._forward_backward
        self.eager_step = eager_step or optimizer.step
        self.warmup = int(warmup)
        self.device = X.device
        self.stream = self._side_stream()   # warm-ups and captures on one side stream
        self.seen = set()            # batch sizes and hyperparameters stepped eagerly once
        self.passes = {}             # batch size -> (graph, row numbers, cost), all static
        self.updates = {}            # hyperparameters -> graph
        self.pinned = {}             # batch size -> row numbers in pinned host memory
        self.tensors = None          # what the graphs were captured on (see _same_tensors)
        self.replayed = {"forward_backward": 0, "step": 0}
        self.eager = {"forward_backward": 0, "step": 0}
        self.fallback = None         # why capturing stopped (a failed capture), else None

    # What touches CUDA itself: _refusal, _side_stream, _record and _host_rows (a test stands in
    # for them on a machine without a GPU, to check the bookkeeping around them).
    _refusal = staticmethod(why_eager)

    def _side_stream(self):
        return torch.cuda.Stream(self.device)

    # -------------------------------------------------------------- the two halves of a step
    def forward_backward(self, idx):
        """The batch's cost; its gradients are left in the parameters' ``.grad``."""
        n = len(idx)
        entry = self.passes.get(n) if self._same_tensors() else None
        if entry is None and self.fallback is None and ("batch", n) in self.seen and self._ready():
            entry = self._capture(self._capture_pass, n)
        if entry is None:
            self.seen.add(("batch", n))
            self.eager["forward_backward"] += 1
            return self.eager_forward_backward(idx)
        graph, rows, cost = entry
        host = self.pinned[n]
        host.numpy()[...] = idx          # free to overwrite: the last replay's cost was read, so its copy is done
        rows.copy_(host, non_blocking=True)
        graph.replay()
        self.replayed["forward_backward"] += 1
        return cost.item()

    def step(self):
        """The optimizer's update of the parameters from their ``.grad``."""
        key = self._hyperparameters()
        graph = self.updates.get(key) if self._same_tensors() else None
        if graph is None and self.fallback is None and ("update", key) in self.seen and self._ready():
            self.updates.clear()         # an older learning rate's graph is not replayed again
            graph = self._capture(self._capture_update, key)
        if graph is None:
            self.seen.add(("update", key))
            self.eager["step"] += 1
            return self.eager_step()
        graph.replay()
        self.replayed["step"] += 1
        return None

    def describe(self):
        """What ran how: replayed and eager counts, and why capturing stopped if it did."""
        return {"replayed": dict(self.replayed), "eager": dict(self.eager), "fallback": self.fallback}

    # -------------------------------------------------------------- eager, as the graphs do it
    def _zero_grads(self):
        grads = [p.grad for p in self.params if p.grad is not None]
        if grads:
            torch._foreach_zero_(grads)

    def _forward_backward(self, idx):
        rows = torch.as_tensor(np.asarray(idx), dtype=torch.int64).to(self.device)
        self._zero_grads()
        cost = self.loss(self.model(self.X.index_select(0, rows)), self.Y.index_select(0, rows))
        cost.backward()
        return cost.item()

    # -------------------------------------------------------------- capture
    def _capture(self, capture, key):
        if self.tensors is not None and self.tensors != self._tensors():
            self._drop()
        try:
            made = capture(key)
        except RuntimeError as e:        # something in the step that a graph cannot hold
            self.fallback = f"capture failed, eager from here on: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
            self._drop()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            return None
        self.tensors = self._tensors()
        return made

    def _record(self, work):
        """(graph, what ``work`` returned while captured): ``work`` run ``warmup`` times on the side
        stream first, as capture wants (lazy set-up, such as cuBLAS's handle for that stream, then
        happens outside the graph), then captured on that stream. Capturing runs nothing: the
        graph's outputs are filled by ``replay``."""
        current = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(current)
        with torch.cuda.stream(self.stream):
            for _ in range(self.warmup):
                work()
        current.wait_stream(self.stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"):
            out = work()
        return graph, out

    def _host_rows(self, n):
        """Where a batch's row numbers wait on the host: pinned memory, copied without blocking."""
        return torch.empty(n, dtype=torch.int64, pin_memory=True)

    def _capture_pass(self, n):
        rows = torch.zeros(n, dtype=torch.int64, device=self.device)   # row 0 for the warm-up: any valid rows do

        def work():
            self._zero_grads()
            cost = self.loss(self.model(self.X.index_select(0, rows)), self.Y.index_select(0, rows))
            cost.backward()
            return cost
        # The warm-up writes only the gradients, which every step zeroes first.
        graph, cost = self._record(work)
        self.pinned[n] = self._host_rows(n)
        self.passes[n] = (graph, rows, cost)
        return self.passes[n]

    @torch.no_grad()
    def _capture_update(self, key):
        # The warm-up updates the parameters and momentum buffers: they are put back afterwards.
        state = self._state_tensors()
        saved = [t.clone() for t in state]
        try:
            graph, _ = self._record(self.optimizer.step)
        finally:
            for t, s in zip(state, saved):
                t.copy_(s)
        self.updates[key] = graph
        return graph

    # -------------------------------------------------------------- what must not change
    def _state_tensors(self):
        state = list(self.params)
        for p in self.params:
            buf = self.optimizer.state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                state.append(buf)
        return state

    def _ready(self):
        """Every gradient exists and, with momentum, every momentum buffer (made by the first step)."""
        if any(p.grad is None for p in self.params):
            return False
        return all(group["momentum"] == 0 or all(self.optimizer.state.get(p, {}).get("momentum_buffer") is not None
                                                 for p in group["params"])
                   for group in self.optimizer.param_groups)

    def _tensors(self):
        """Where every parameter, gradient and momentum buffer lives."""
        return tuple((p.data_ptr(), None if p.grad is None else p.grad.data_ptr(),
                      None if (b := self.optimizer.state.get(p, {}).get("momentum_buffer")) is None else b.data_ptr())
                     for p in self.params)

    def _same_tensors(self):
        if self.tensors is None:
            return False
        if self._tensors() != self.tensors:
            self._drop()
            return False
        return True

    def _drop(self):
        """Forget every graph: the next steps run eagerly, and capture again on their second sight."""
        self.passes.clear()
        self.updates.clear()
        self.tensors = None

    def _hyperparameters(self):
        return tuple((g["lr"], g["momentum"], g["dampening"], g["weight_decay"], g["nesterov"], g.get("maximize", False))
                     for g in self.optimizer.param_groups)
