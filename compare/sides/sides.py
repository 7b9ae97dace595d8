"""The two sides of a comparison behind one interface, so the lockstep loop reads the same for both.

Each side holds its own copy of the data, its model, loss, optimizer and schedule. The fast path
(``forward_backward``, ``flat_grads``, ``flat_params``) is what runs at every step; ``trace``
recomputes one step with every intermediate kept, and runs only when the sides disagree.

Dropout: a mask is never drawn inside a side. ``dropout_masks(spec)`` is one
``manual.DropoutMasks`` drawing from the run's own stream of its seed
(``SeedSequence(seed, spawn_key=(1,))``, so adding a dropout layer changes neither the initial
weights nor the batch order); ``share_masks`` gives the k-th mask of dropout layer i to both sides'
layer i, so a network with dropout is compared element by element like any other. A side built
alone draws from the same stream (a torch-only run uses the masks a lockstep run would).
``same_masks_again`` makes every dropout layer reuse its last mask while a step is recomputed
(the walk, the proof of a node), so the recomputation is the step that was compared.

Each side's parameters and gradients are views of one flat buffer of its own (compare.flat):
``flat_grads`` and ``flat_params`` return it (a float64 copy in float32 or on a GPU), so a caller
that keeps it past the step copies it.
"""
import contextlib
import copy

import numpy as np
import torch

from backprop_oracle import manual
from backprop_oracle import torch_ref
from backprop_oracle.compare.experiments.spec import schedule_arguments
from backprop_oracle.compare.network.layers import evaluating, named_buffers, network_of
from backprop_oracle.compare.flat import bind_flat, keep_bound, layout_offsets, unflatten  # noqa: F401
from backprop_oracle.compare.verdict.localise import Trace

_MANUAL_KINDS = {cls: key for key, cls in manual.ACTIVATIONS.items()}
_TORCH_KINDS = {cls: key for key, cls in torch_ref.ACTIVATIONS.items()}


def module_kinds(model):
    """"linear" or the activation key of every module of a manual or torch Sequential."""
    kinds = []
    for m in model:
        if isinstance(m, (manual.Linear, torch.nn.Linear)):
            kinds.append("linear")
        else:
            kind = _MANUAL_KINDS.get(type(m)) or _TORCH_KINDS.get(type(m))
            kinds.append(kind if kind is not None else type(m).__name__)
    return kinds


DROPOUT_STREAM = 1          # the spawn key of the seed's stream that dropout masks are drawn from


def dropout_masks(spec, sides=("manual", "torch")):
    """The run's dropout masks: one DropoutMasks for ``sides``, drawing from the seed's dropout stream."""
    rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(DROPOUT_STREAM,)))
    return manual.DropoutMasks(rng, sides=sides)


def dropouts(model):
    """[(i, module)] of every dropout layer of a manual or torch Sequential."""
    return [(i, m) for i, m in enumerate(model) if isinstance(m, (manual.Dropout, torch_ref.Dropout))]


def share_masks(masks, *sides):
    """Dropout layer i of every side draws its masks from ``masks`` under the key i (see DropoutMasks)."""
    for side in sides:
        for i, m in dropouts(side.model):
            m.mask_provider = masks.provider(i, side.name)
        side.masks = masks


@contextlib.contextmanager
def same_masks_again(source, *sides):
    """While inside, dropout layer i of each of ``sides`` reuses ``source``'s (a side) last mask of
    layer i instead of drawing the next: a recomputed step is the step that was compared."""
    saved = []
    last = {i: m.last_mask for i, m in dropouts(source.model)}
    try:
        for side in sides:
            for i, m in dropouts(side.model):
                if last.get(i) is not None:
                    saved.append((m, m.mask_provider))
                    m.mask_provider = lambda shape, p, mask=last[i]: mask
        yield
    finally:
        for m, provider in saved:
            m.mask_provider = provider


def to_numpy(t):
    """A float64 NumPy copy of a tensor (on any device), or None."""
    # .numpy() shares memory with the tensor, so copy: the sides must never alias each other.
    return None if t is None else t.detach().to("cpu", torch.float64, copy=True).numpy()


@torch.no_grad()
def load_optimizer_state(optimizer, params, states, dtype, device):
    """Give a torch optimizer over ``params`` the per-parameter ``states`` of a manual optimizer
    (dicts with torch's keys: momentum_buffer, step, exp_avg, exp_avg_sq), as copies."""
    for p, state in zip(params, states):
        own = optimizer.state[p]
        for key, value in state.items():
            old = own.get(key)
            if key == "step":          # torch keeps Adam's step count as a tensor
                own[key] = torch.tensor(float(value), dtype=old.dtype if old is not None else torch.float32)
            else:
                own[key] = torch.tensor(value, dtype=dtype, device=device)


class _Stepping:
    """The optimizer's step and the schedule's, the same on both sides (each side has its
    ``optimizer``, ``scheduler``, ``per_step`` and ``hyperparameters()``)."""

    def step(self):
        """The optimizer's step, then a per-step schedule's (``stepped_with``: the values it used)."""
        self.stepped_with = self.hyperparameters()
        self.optimizer.step()
        if self.per_step and self.scheduler.last_epoch < self.scheduler.total_steps:
            self.scheduler.step()

    def end_epoch(self):
        if not self.per_step:
            self.scheduler.step()


class ManualSide(_Stepping):
    """The NumPy network, its loss, optimizer and schedule."""
    name = "manual"

    def __init__(self, spec, sizes, state):
        network = network_of(spec, sizes)
        self.model = network.manual(spec.dtype)
        # The parameters only, as on the torch side: buffers (running statistics) start as the modules make them.
        params = {n for n, _ in self.model.named_parameters()}
        if set(state) != params:
            raise KeyError(f"state does not match the model: missing {sorted(params - set(state))}, "
                           f"unexpected {sorted(set(state) - params)}")
        self.model.load_state_dict(state, strict=False)
        share_masks(dropout_masks(spec, (self.name,)), self)       # until share_masks gives it the run's
        self.loss = manual.make_loss(spec.loss)
        self.optimizer = manual.make_optimizer(spec.optimizer, self.model.parameters(), lr=spec.lr,
                                               **spec.optimizer_args)
        self.spec = spec
        self.per_step = manual.lr_scheduler.interval(spec.schedule) == "step"
        self.scheduler = manual.make_scheduler(spec.schedule, self.optimizer, **schedule_arguments(spec))
        self.stepped_with = self.hyperparameters()
        self.kinds, self.roles = network.kinds, network.roles
        self.layout = [(n, p.shape) for n, p in self.model.named_parameters()]
        self.buffer_names = sorted(named_buffers(self.model))
        self._params = self.model.parameters()
        self._flat_data, self._data_views = bind_flat(self._params, "data")
        self._flat_grad, self._grad_views = bind_flat(self._params, "grad")
        self._as64 = self._flat_data.dtype != np.float64
        self.data = {}

    def load(self, problem):
        """Keep the run's arrays: "train" and, where there is one, "val"; a schedule stepped after
        every optimizer step is made again to the run's length."""
        if self.per_step:
            self.scheduler = manual.make_scheduler(self.spec.schedule, self.optimizer,
                                                   **schedule_arguments(self.spec, problem.X.shape[0]))
        self.data = {"train": (problem.X, problem.Y)}
        if problem.X_val is not None:
            self.data["val"] = (problem.X_val, problem.Y_val)

    def forward_backward(self, idx):
        """Zero the gradients, run forward and backward on the batch ``idx``; return the cost.
        dL/dX of the data is not computed, as ``manual.fit`` and torch skip it: nothing compares it
        (``output_grads`` are the gradients of the modules' outputs)."""
        X, Y = self.data["train"]
        self.optimizer.zero_grad()
        cost = self.loss(self.model.forward(X[idx]), Y[idx])
        self.model.backward(self.loss.backward(), input_grad=False)
        return float(cost)

    def trace(self, idx):
        """The same step again with every intermediate kept (the Sequential keeps them anyway)."""
        cost = self.forward_backward(idx)
        return Trace(self.kinds, [np.asarray(o, dtype=np.float64) for o in self.model.outputs],
                     [np.asarray(g, dtype=np.float64) for g in self.model.output_grads],
                     self.grads(), cost, self.roles)

    def flat_grads(self):
        """Every parameter gradient, in layout order: the flat buffer itself in float64."""
        keep_bound(self._params, "grad", self._grad_views)
        return self._flat_grad.astype(np.float64) if self._as64 else self._flat_grad

    def flat_params(self):
        """Every parameter, in layout order: the flat buffer itself in float64."""
        keep_bound(self._params, "data", self._data_views)
        return self._flat_data.astype(np.float64) if self._as64 else self._flat_data

    def grads(self):
        return {n: p.grad.astype(np.float64) for n, p in self.model.named_parameters()}

    def params(self):
        return {n: p.data.astype(np.float64) for n, p in self.model.named_parameters()}

    def buffers(self):
        """Copies of every running statistic, float64, by name ("1.running_mean": ...)."""
        return {n: np.array(b, dtype=np.float64) for n, b in named_buffers(self.model).items()}

    def load_buffers(self, values):
        for name, b in named_buffers(self.model).items():
            b[...] = values[name]

    def optimizer_state(self):
        """A copy of the optimizer's per-parameter state (momentum buffers, Adam's moments and step);
        plain SGD keeps none, and copies nothing."""
        return [{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                for s in self.optimizer.state]

    def hyperparameters(self):
        """What a schedule sets on the optimizer: the rate, and the momentum or betas onecycle cycles."""
        o = self.optimizer
        return {"lr": o.lr, **{k: getattr(o, k) for k in ("momentum", "betas") if hasattr(o, k)}}

    @property
    def lr(self):
        return self.optimizer.lr

    def evaluate(self, split):
        """(cost, outputs) of the current parameters on a whole split."""
        X, Y = self.data[split]
        back_to_training = evaluating(self.model)
        try:
            out = self.model.forward(X)
        finally:
            back_to_training()
        return float(self.loss(out, Y)), np.asarray(out, dtype=np.float64)


class TorchSide(_Stepping):
    """The torch.nn network, its loss, torch.optim optimizer and scheduler."""
    name = "torch"

    def __init__(self, spec, sizes, state):
        self.device = torch_ref.resolve_device(spec.device)
        self.dtype = torch_ref.as_dtype(spec.dtype)
        network = network_of(spec, sizes)
        self.model = network.torch(torch_ref, spec.dtype, self.device)
        share_masks(dropout_masks(spec, (self.name,)), self)       # until share_masks gives it the run's
        # torch.tensor copies: the two sides must never share memory, or they would agree falsely.
        # The parameters only: buffers (running statistics) start as the modules make them.
        missing, unexpected = self.model.load_state_dict(
            {k: torch.tensor(v, dtype=self.dtype, device=self.device) for k, v in state.items()}, strict=False)
        params = {n for n, _ in self.model.named_parameters()}
        if unexpected or set(missing) & params:
            raise KeyError(f"state does not match the model: missing {sorted(set(missing) & params)}, "
                           f"unexpected {sorted(unexpected)}")
        self.loss = torch_ref.make_loss(spec.loss)
        self.optimizer = torch_ref.make_optimizer(spec.optimizer, self.model.parameters(), lr=spec.lr,
                                                  **spec.optimizer_args)
        self.spec = spec
        self.per_step = torch_ref.lr_scheduler.interval(spec.schedule) == "step"
        self.scheduler = torch_ref.make_scheduler(spec.schedule, self.optimizer, **schedule_arguments(spec))
        self.stepped_with = self.hyperparameters()
        self.kinds, self.roles = network.kinds, network.roles
        self.layout = [(n, tuple(p.shape)) for n, p in self.model.named_parameters()]
        self.buffer_names = sorted(named_buffers(self.model))
        # Looked up once: Module.parameters() walks the module tree, a cost paid twice every step.
        self._params = list(self.model.parameters())
        self._bind_flat()
        self.data = {}

    @torch.no_grad()
    def _bind_flat(self):
        """Make every parameter, and its gradient, a view of one flat tensor (see the module's
        docstring); on the CPU in float64 the NumPy arrays compared are views of the same memory."""
        sizes = [p.numel() for p in self._params]
        self._flat_data = torch.cat([p.detach().reshape(-1) for p in self._params])
        self._flat_grad = torch.zeros_like(self._flat_data)
        for p, d, g in zip(self._params, self._flat_data.split(sizes), self._flat_grad.split(sizes)):
            p.data = d.view_as(p)
            p.grad = g.view_as(p)
        self._grad_views = [p.grad for p in self._params]
        self._data_at = [p.data_ptr() for p in self._params]
        shared = self.device.type == "cpu" and self.dtype == torch.float64
        self._grads_np = self._flat_grad.numpy() if shared else None
        self._params_np = self._flat_data.numpy() if shared else None

    def _keep_grads_bound(self):
        """Put back the flat views of gradients that were replaced (``zero_grad()`` sets them to
        None; DistributedDataParallel and ``trace`` make new ones), taking their values. Checked
        several times a step, so no_grad (a few microseconds to enter) is entered only to rebind."""
        for p, g in zip(self._params, self._grad_views):
            if p.grad is not g:
                with torch.no_grad():
                    g.copy_(p.grad) if p.grad is not None else g.zero_()
                    p.grad = g

    def _keep_params_bound(self):
        """The same for parameters whose data was replaced (``p.data = ...``)."""
        if any(p.data_ptr() != at for p, at in zip(self._params, self._data_at)):
            with torch.no_grad():
                sizes = [p.numel() for p in self._params]
                for p, d in zip(self._params, self._flat_data.split(sizes)):
                    if p.data_ptr() != d.data_ptr():
                        d.copy_(p.detach().reshape(-1))
                        p.data = d.view_as(p)

    def tensor(self, array):
        if array is None:
            return None
        if np.issubdtype(array.dtype, np.integer):
            return torch.tensor(array, dtype=torch.int64, device=self.device)
        return torch.tensor(array, dtype=self.dtype, device=self.device)

    def load(self, problem):
        """Copy the run's arrays to the device once: "train" and, where there is one, "val"; a
        schedule stepped after every optimizer step is made again to the run's length."""
        if self.per_step:
            self.scheduler = torch_ref.make_scheduler(self.spec.schedule, self.optimizer,
                                                      **schedule_arguments(self.spec, problem.X.shape[0]))
        self.data = {"train": (self.tensor(problem.X), self.tensor(problem.Y))}
        self._in_order = np.arange(problem.X.shape[0])
        if problem.X_val is not None:
            self.data["val"] = (self.tensor(problem.X_val), self.tensor(problem.Y_val))

    def _batch(self, idx):
        X, Y = self.data["train"]
        if len(idx) == X.shape[0] and np.array_equal(idx, self._in_order):
            return X, Y
        # The batch's row numbers: only read, never written, so on the CPU torch may use NumPy's
        # memory (a tenth of torch.as_tensor's time); the data itself is torch's own copy.
        shareable = (self.device.type == "cpu" and isinstance(idx, np.ndarray) and idx.dtype == np.int64
                     and idx.flags.writeable)
        rows = torch.from_numpy(idx) if shareable else torch.as_tensor(idx, device=self.device)
        if rows.dim() == 1 and rows.dtype == torch.int64:
            return X.index_select(0, rows), Y.index_select(0, rows)     # the same rows, gathered quicker
        return X[rows], Y[rows]

    def forward_backward(self, idx):
        """Zero the gradients, run forward and backward on the batch ``idx``; return the cost.
        The gradients accumulate into the flat buffer (zeroed in one go, as ``zero_grad(set_to_none=False)``
        would, and 0 + g is g exactly)."""
        X, Y = self._batch(idx)
        self._keep_grads_bound()
        self._flat_grad.zero_()
        cost = self.loss(self.model(X), Y)
        cost.backward()
        return cost.item()

    def trace(self, idx):
        """The same step again with ``retain_grad`` on every module's output."""
        X, Y = self._batch(idx)
        self.optimizer.zero_grad()
        out, outputs = torch_ref.forward_with_intermediates(self.model, X)
        cost = self.loss(out, Y)
        cost.backward()
        return Trace(self.kinds, [to_numpy(o) for o in outputs], [to_numpy(o.grad) for o in outputs],
                     self.grads(), cost.item(), self.roles)

    def gradients_at(self, params, idx):
        """(cost, flat gradients) of the batch ``idx`` at the given parameter values, computed on a
        copy of the model so that this side's own state is untouched."""
        model = copy.deepcopy(self.model)
        model.load_state_dict({k: torch.tensor(v, dtype=self.dtype, device=self.device) for k, v in params.items()},
                              strict=not self.buffer_names)     # the buffers stay the copy's own
        X, Y = self._batch(idx)
        cost = self.loss(model(X), Y)
        cost.backward()
        return cost.item(), to_numpy(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))

    # ---- set back: the lockstep runs this side ahead of the manual one (compare.sides.ahead) -----

    @torch.no_grad()
    def snapshot(self):
        """Copies of everything a training step or a schedule's step changes on this side: the
        parameters, their gradients, every buffer (num_batches_tracked too), the optimizer's
        per-parameter state and its groups' settings (lr, momentum, ...), the schedule and
        ``stepped_with``; ``restore`` sets them back, bit for bit. The dropout masks it takes are
        not in it (compare.sides.ahead replays them)."""
        self._keep_params_bound()
        self._keep_grads_bound()
        index = {p: i for i, p in enumerate(self._params)}
        return {"params": self._flat_data.clone(), "grads": self._flat_grad.clone(),
                "buffers": self.buffer_state(),
                "optimizer": {index[p]: _copied(s) for p, s in self.optimizer.state.items()},
                "groups": [_copied({k: v for k, v in g.items() if k != "params"}) for g in self.optimizer.param_groups],
                "scheduler": _scheduler_state(self.scheduler, self.optimizer),
                "stepped_with": dict(self.stepped_with)}

    @torch.no_grad()
    def restore(self, saved):
        """Set this side back to a ``snapshot`` (which stays as it was: it can be restored again)."""
        self._keep_params_bound()
        self._keep_grads_bound()
        self._flat_data.copy_(saved["params"])
        self._flat_grad.copy_(saved["grads"])
        self.load_buffer_state(saved["buffers"])
        self.optimizer.state.clear()
        for i, state in saved["optimizer"].items():
            self.optimizer.state[self._params[i]] = _copied(state)
        for group, values in zip(self.optimizer.param_groups, saved["groups"]):
            group.update(_copied(values))
        _load_scheduler_state(self.scheduler, saved["scheduler"], self.optimizer)
        self.stepped_with = dict(saved["stepped_with"])

    @torch.no_grad()
    def set_grads(self, flat):
        """Every parameter's gradient from a flat float64 vector in layout order (one that
        ``flat_grads`` returned: in float32 or on a GPU, it holds this side's values exactly)."""
        self._keep_grads_bound()
        self._flat_grad.copy_(torch.as_tensor(flat))

    @torch.no_grad()
    def buffer_state(self):
        """Copies of every buffer of the model (the running statistics and num_batches_tracked)."""
        return {n: b.detach().clone() for n, b in self.model.named_buffers()}

    @torch.no_grad()
    def load_buffer_state(self, state):
        for n, b in self.model.named_buffers():
            b.copy_(state[n])

    @torch.no_grad()
    def sync_from(self, other, grads=False):
        """Take the other side's parameters, optimizer state and learning rate (and, with ``grads``,
        its gradients), so both continue from the same numbers. Done only after the difference has
        been proven to be rounding (see LockstepRun._localise and compare.lockstep.proof)."""
        for mine, p in zip(self._params, other.model.parameters()):
            mine.copy_(torch.tensor(p.data, dtype=self.dtype, device=self.device))
            if grads:
                mine.grad.copy_(torch.tensor(p.grad, dtype=self.dtype, device=self.device))
        if self.buffer_names:
            self.load_buffers(other.buffers())
        self.optimizer.state.clear()
        load_optimizer_state(self.optimizer, self._params, other.optimizer.state, self.dtype, self.device)
        for group in self.optimizer.param_groups:
            group["lr"] = other.lr

    def flat_grads(self):
        """Every parameter gradient, in layout order, float64 (a view of the flat buffer on the CPU)."""
        self._keep_grads_bound()
        return self._grads_np if self._grads_np is not None else to_numpy(self._flat_grad)

    def flat_params(self):
        """Every parameter, in layout order, float64 (a view of the flat buffer on the CPU)."""
        self._keep_params_bound()
        return self._params_np if self._params_np is not None else to_numpy(self._flat_data)

    def grads(self):
        return {n: to_numpy(p.grad) for n, p in self.model.named_parameters()}

    def params(self):
        return {n: to_numpy(p) for n, p in self.model.named_parameters()}

    def hyperparameters(self):
        """What a schedule sets on the optimizer: the rate, and the momentum or betas onecycle cycles."""
        group = self.optimizer.param_groups[0]
        return {k: group[k] for k in ("lr", "momentum", "betas") if k in group}

    def buffers(self):
        return {n: to_numpy(b) for n, b in named_buffers(self.model).items()}

    @torch.no_grad()
    def load_buffers(self, values):
        for name, b in named_buffers(self.model).items():
            b.copy_(torch.tensor(values[name], dtype=b.dtype, device=b.device))

    @property
    def lr(self):
        return self.optimizer.param_groups[0]["lr"]

    @torch.no_grad()
    def evaluate(self, split):
        """(cost, outputs) of the current parameters on a whole split, in eval mode."""
        X, Y = self.data[split]
        self.model.eval()
        try:
            out = self.model(X)
        finally:
            self.model.train()
        return float(self.loss(out, Y).item()), to_numpy(out)


def _copied(state):
    """A copy of a dict of an optimizer's: tensors cloned, anything else deep-copied."""
    return {k: (v.detach().clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v)) for k, v in state.items()}


def _scheduler_state(scheduler, optimizer):
    """A deep copy of a scheduler's attributes, the optimizer it steps left shared (and itself,
    for attributes that refer back to it): a schedule's state is its attributes (last_epoch,
    _last_lr, a SequentialLR's children, ...), whatever torch keeps there."""
    return copy.deepcopy(vars(scheduler), {id(optimizer): optimizer, id(scheduler): scheduler})


def _load_scheduler_state(scheduler, state, optimizer):
    attributes = vars(scheduler)
    attributes.clear()
    attributes.update(copy.deepcopy(state, {id(optimizer): optimizer, id(scheduler): scheduler}))
