"""A DIFFER is a proof: the node blamed for a difference, recomputed alone on identical inputs.

When the walk (compare.verdict.localise) finds the first tensor that differs, the node that
computed it (a linear map, an activation or its derivative, a linear layer's backward, the loss or
its derivative, the optimizer's update) is run once more, alone, on the torch side, from the manual
side's exact inputs: its input, its upstream gradient, its parameters (for the update: the manual
side's parameters, gradients and optimizer state before the step). Then:

- the node's output still differs beyond the tolerance: the node itself is wrong, proven on
  identical inputs. That, and only that, is a DIFFER.
- it agrees: the node is right. Its inputs differed by rounding (within the tolerance) and the
  computation amplified it: an ill-conditioned derivative, Adam's m̂/(√v̂ + eps) at gradients that
  are 0 in exact arithmetic, a chaotic run. The report says so, names the node and the factor
  (how much larger the output's difference is than its inputs', both relative to their scale),
  and the run goes on from identical numbers.

In float32 a node can disagree with itself on identical inputs: np.tanh and torch.tanh may round
a = tanh(z) to neighbouring floats, and 1 - a² magnifies one unit in the last place by up to
2a²/(1 - a²) (at a = 1 - 1 ulp, infinitely: torch's 1 - a² is 0, NumPy's 1.2e-7). So a float32
node that differs is recomputed once more on both sides, the manual side's own code and torch's,
in float64 from the same inputs: if the two agree there, within the run's tolerance, the formula is
right and the float32 difference is rounding; a formula mistake differs in float64 just the same.
In a float64 run there is no wider precision to recompute in: a node that is ill-conditioned in
float64 itself (1 - a² at a = 1 - 1e-12) may still be blamed; the tolerance's scale (each tensor's
largest element) keeps such elements from deciding a verdict unless the whole tensor is saturated.
"""
import copy
from dataclasses import dataclass

import numpy as np
import torch

from backprop_oracle import torch_ref
from backprop_oracle.manual.module import Parameter
from backprop_oracle.compare.sides.sides import load_optimizer_state, to_numpy, unflatten
from backprop_oracle.compare.verdict.diff import compare_arrays
from backprop_oracle.compare.verdict.localise import NODES, layer_numbers

# How a node's sensitivity to rounding is measured (see rounding_explains).
JITTER_ROUNDS, JITTER_ULPS, SPREAD_FACTOR = 4, 4.0, 4.0


@dataclass(frozen=True)
class NodeProof:
    """The node recomputed alone: ``diff`` is the manual side's value against torch's from the manual
    side's inputs; ``wrong`` whether the node itself is wrong."""
    node: str
    where: str                 # "layer 1 (tanh, module 1)", "" for the loss and the optimizer
    wrong: bool
    diff: object               # TensorDiff: manual vs torch's node on identical inputs
    inputs: object             # TensorDiff of the node's input that differed most in the two runs (or None)
    output: object             # TensorDiff of its output in the two runs: the tensor that differed
    float64: object = None     # TensorDiff of both sides' node recomputed in float64 (float32 runs only)

    @property
    def factor(self):
        """How much the node magnified its inputs' difference, each measured in units of what the
        tolerance allows it (inf where the inputs were identical)."""
        used_in = 0.0 if self.inputs is None else self.inputs.max_abs / self.inputs.allowed
        used_out = self.output.max_abs / self.output.allowed
        return used_out / used_in if used_in > 0 else float("inf")

    @property
    def what(self):
        return NODES[self.node] + (f" of {self.where}" if self.where else "")

    def describe(self):
        d = self.diff
        at = f"[{', '.join(map(str, d.index))}]" if d.index else ""
        if self.wrong:
            text = (f"recomputed alone on the torch side from the manual side's exact inputs, {self.what} "
                    f"gives {d.torch:.12g} where the manual side has {d.manual:.12g} at {d.name}{at} "
                    f"(|diff| {d.max_abs:.3g}, allowed {d.allowed:.3g}): the node itself is wrong")
            if self.float64 is not None:
                text += (f"; recomputed in float64 on both sides from the same inputs it still differs "
                         f"(manual {self.float64.manual:.12g} vs torch {self.float64.torch:.12g})")
            return text
        jittered = (f"differs by no more than moving its inputs by {JITTER_ULPS:g} units in the last place "
                    f"moves torch's own result (cancellation: the two sides add in a different order)")
        if d.passed:
            how = f"agrees (max |diff| {d.max_abs:.3g}, allowed {d.allowed:.3g})"
        elif self.float64 is None:
            how = f"{jittered} (max |diff| {d.max_abs:.3g})"
        else:
            d64 = self.float64
            how = (f"differs in float32 by rounding alone (max |diff| {d.max_abs:.3g}): recomputed in float64 "
                   f"on both sides from the same inputs it " + (
                       f"agrees (max |diff| {d64.max_abs:.3g}, allowed {d64.allowed:.3g})" if d64.passed
                       else jittered))
        text = f"not a formula: recomputed on torch from the manual side's exact inputs, {self.what} {how}"
        out = self.output
        if self.inputs is None or self.inputs.max_abs == 0:
            return text + (f". Its inputs were identical; its rounding alone ({out.max_abs:.3g} in {out.name}) "
                           f"exceeds the tolerance there ({out.allowed:.3g}): an ill-conditioned computation")
        inp = self.inputs
        return text + (f". The two runs' {inp.name} differed by at most {inp.max_abs:.3g} (rounding, "
                       f"{inp.max_abs / inp.allowed:.2g} of its tolerance) and {out.name} by {out.max_abs:.3g} "
                       f"({out.max_abs / out.allowed:.3g} times its tolerance): the computation amplified "
                       f"rounding about {self.factor:.3g}x there")

    def to_dict(self):
        return {"node": self.node, "where": self.where, "wrong": self.wrong, "recomputed": self.diff.to_dict(),
                "inputs": None if self.inputs is None else self.inputs.to_dict(), "output": self.output.to_dict(),
                "amplification": self.factor,
                "float64": None if self.float64 is None else self.float64.to_dict()}


# Activations whose backward torch computes from the saved output a (not the input z): the node
# dL/dz = f(dL/da, a), run with torch's own backward kernels.
SAVED_OUTPUT_BACKWARD = {
    "sigmoid": torch.ops.aten.sigmoid_backward,                   # dL/da · a (1 - a)
    "tanh": torch.ops.aten.tanh_backward,                         # dL/da · (1 - a²)
    "softmax": lambda g, a: torch.ops.aten._softmax_backward_data(g, a, 1, a.dtype),   # a (g - Σ g a)
    "log_softmax": lambda g, a: torch.ops.aten._log_softmax_backward_data(g, a, 1, a.dtype),  # g - e^a Σ g
}


# Modules that do no arithmetic on their input: a max-pool selects one element of each window and
# its backward routes the gradient to that element. Nothing there rounds, and moving the input by
# a few ulps (rounding_explains) would change which of two tied elements wins: a gradient sent to
# every tied element would pass for rounding. Their input is never jittered.
SELECTING = {"maxpool"}


def judge(name, manual_value, torch_at, manual_at_float64, tolerance, dtype, jitter=None):
    """(wrong, diff, float64 diff) for a node: the manual side's ``manual_value`` against torch's node
    ``torch_at(torch dtype)`` on the same inputs; in float32, where they differ, once more both in
    float64 (``manual_at_float64()`` against ``torch_at(torch.float64)``). Where they still differ,
    the difference is held against the node's own sensitivity to rounding (``rounding_explains``)."""
    dt = torch_ref.as_dtype(dtype)
    d = compare_arrays(name, manual_value, torch_at(dt), tolerance)
    if d.passed or rounding_explains(manual_value, torch_at, dt, d, jitter):
        return False, d, None
    if dtype != "float32":
        return True, d, None
    manual64 = manual_at_float64()
    d64 = compare_arrays(f"{name} in float64", manual64, torch_at(torch.float64), tolerance)
    wrong = not (d64.passed or rounding_explains(manual64, torch_at, torch.float64, d64, jitter))
    return wrong, d, d64


def rounding_explains(manual_value, torch_at, dt, diff, jitter):
    """Whether a node's difference on identical inputs is no larger than what rounding its inputs
    moves it by. A node that sums large terms to a small result (softmax's backward on bce's
    1/(p (1 - p)) near p = 0) loses digits to cancellation in a way that depends on the order of the
    additions, which the two sides do differently. So torch's node is run JITTER_ROUNDS times more
    with every input moved by up to JITTER_ULPS units in the last place; every element of the
    manual side's value must lie within the tolerance plus SPREAD_FACTOR times how far those moved
    it. A formula mistake moves a result by its own size, far beyond rounding."""
    if jitter is None:
        return False
    reference = np.asarray(torch_at(dt), dtype=np.float64)
    rng = np.random.default_rng(0)
    spread = np.zeros_like(reference)
    for _ in range(JITTER_ROUNDS):
        jitter["rng"] = rng
        try:
            moved = np.asarray(torch_at(dt), dtype=np.float64)
        finally:
            jitter["rng"] = None
        spread = np.maximum(spread, np.abs(moved - reference))
    with np.errstate(invalid="ignore"):
        gap = np.abs(np.asarray(manual_value, dtype=np.float64) - reference)
        return bool(np.all(gap <= diff.allowed + SPREAD_FACTOR * spread))


def _jittered(a, dt, jitter):
    """``a`` as float64, moved by up to JITTER_ULPS units in the last place of ``dt`` while
    ``jitter["rng"]`` is set (rounding_explains); a probability stays in [0, 1]."""
    a = np.asarray(a, dtype=np.float64)
    if jitter["rng"] is None:
        return a
    moved = a * (1 + JITTER_ULPS * torch.finfo(dt).eps * jitter["rng"].uniform(-1, 1, a.shape))
    return np.where((a >= 0) & (a <= 1), np.clip(moved, 0, 1), moved)


def _float64(value):
    """A float64 copy of an array (integer targets stay integers)."""
    a = np.asarray(value)
    return a.copy() if np.issubdtype(a.dtype, np.integer) else a.astype(np.float64)


def _manual_module_at_float64(module, params, prefix):
    """A float64 copy of a manual module with the given parameter values and zeroed gradients."""
    module = copy.deepcopy(module)
    for name, p in module.named_parameters():
        p.data = _float64(params[prefix + name])
        p.grad = np.zeros_like(p.data)
    return module


def _widest(diffs):
    """The TensorDiff that used most of its tolerance, or None."""
    diffs = [d for d in diffs if d is not None]
    return max(diffs, key=lambda d: d.max_abs / d.allowed) if diffs else None


def _where(found, trace):
    j = found.node_module
    return "" if j is None else f"layer {layer_numbers(trace.kinds, trace.roles)[j]} ({trace.kinds[j]}, module {j})"


def prove_node(found, tm, tt, manual_side, torch_side, X, Y, params, tolerance, dtype):
    """Recompute the node of ``found`` (a Mismatch from localise, both traces ``tm``/``tt`` taken at the
    same parameters ``params``) on torch from the manual trace's inputs; return a NodeProof."""
    node, j = found.node, found.node_module
    device = torch_side.device

    jitter = {"rng": None}      # set by rounding_explains: move every input by a few ulps

    def tensor(a, dt, grad=False, exact=False):
        if np.issubdtype(np.asarray(a).dtype, np.integer):
            return torch.tensor(a, dtype=torch.int64, device=device)
        a = np.asarray(a, dtype=np.float64) if exact else _jittered(a, dt, jitter)
        return torch.tensor(a, dtype=dt, device=device, requires_grad=grad)

    def input_of(i, trace):
        return X if i == 0 else trace.outputs[i - 1]

    def module_at(i, dt):
        # in training mode, as the step ran it: a batch norm normalises with the batch's statistics
        module = copy.deepcopy(torch_side.model[i]).to(dt).train()
        with torch.no_grad():
            for name, p in module.named_parameters():
                p.copy_(tensor(params[f"{i}.{name}"], dt))
        return module

    def run_module(i, dt, upstream):
        x = tensor(input_of(i, tm), dt, grad=True, exact=tm.kinds[i] in SELECTING)
        module = module_at(i, dt)
        y = module(x)
        if upstream is not None:
            y.backward(tensor(upstream, dt))
        return y, x, dict(module.named_parameters())

    def manual_module(i, upstream):
        """(output, dL/dinput, {name: grad}) of the manual side's own module i, in float64; an
        activation whose backward uses its saved output gets the manual run's (as torch's does)."""
        module = _manual_module_at_float64(manual_side.model[i], params, f"{i}.")
        y = module.forward(_float64(input_of(i, tm)))
        if upstream is not None and tm.kinds[i] in SAVED_OUTPUT_BACKWARD and hasattr(module, "a"):
            module.a = _float64(tm.outputs[i])
        dx = None if upstream is None else module.backward(_float64(upstream))
        return y, dx, {n: p.grad for n, p in module.named_parameters()}

    def manual_loss(gradient):
        loss = copy.deepcopy(manual_side.loss)
        cost = loss.forward(_float64(tm.outputs[-1]), _float64(Y))
        return loss.backward() if gradient else cost

    def between_runs(name, a, b):
        return compare_arrays(name, a, b, tolerance)

    inputs = [between_runs("inputs", input_of(j, tm), input_of(j, tt))] if j not in (None, 0) else []
    if node in ("linear", "activation", "forward"):
        manual_value = tm.outputs[j]
        recompute = lambda dt: to_numpy(run_module(j, dt, None)[0])           # noqa: E731
        manual64 = lambda: manual_module(j, None)[0]                          # noqa: E731
    elif node in ("loss", "loss_derivative"):
        inputs = [between_runs("outputs", tm.outputs[-1], tt.outputs[-1])]

        def loss_at(dt):
            out = tensor(tm.outputs[-1], dt, grad=True)
            target = tensor(Y, dt, exact=True)     # the data, not a computed value
            cost = copy.deepcopy(torch_side.loss)(out, target)
            if node == "loss":
                return to_numpy(cost)
            cost.backward()
            return to_numpy(out.grad)
        manual_value = tm.cost if node == "loss" else tm.output_grads[-1]
        recompute = loss_at
        manual64 = lambda: manual_loss(node == "loss_derivative")             # noqa: E731
    elif node in ("linear_param_grad", "param_grad"):
        inputs.append(between_runs("upstream gradients", tm.output_grads[j], tt.output_grads[j]))
        pname = found.diff.name.split("(")[-1].split(".grad")[0]        # "dL/dW_1 (0.weight.grad)"
        pname, attr = pname, pname.split(".", 1)[1]
        manual_value = tm.param_grads[pname]
        recompute = lambda dt: to_numpy(run_module(j, dt, tm.output_grads[j])[2][attr].grad)  # noqa: E731
        manual64 = lambda: manual_module(j, tm.output_grads[j])[2][attr]                      # noqa: E731
    else:   # the backward of module j: dL/d(input of j) from its input and dL/d(output of j)
        inputs.append(between_runs("upstream gradients", tm.output_grads[j], tt.output_grads[j]))
        manual_value = tm.output_grads[j - 1]
        kind = tm.kinds[j]
        if kind in SAVED_OUTPUT_BACKWARD:
            # torch's autograd computes these from the output it saved in the forward pass; the
            # node's inputs are that output and dL/d(output): both are given the manual side's.
            inputs.append(between_runs("outputs", tm.outputs[j], tt.outputs[j]))
            recompute = lambda dt: to_numpy(SAVED_OUTPUT_BACKWARD[kind](                      # noqa: E731
                tensor(tm.output_grads[j], dt), tensor(tm.outputs[j], dt)))
        else:
            recompute = lambda dt: to_numpy(run_module(j, dt, tm.output_grads[j])[1].grad)  # noqa: E731
        manual64 = lambda: manual_module(j, tm.output_grads[j])[1]                      # noqa: E731
    wrong, d, d64 = judge(found.diff.name, manual_value, recompute, manual64, tolerance, dtype, jitter)
    return NodeProof(node, _where(found, tm), wrong, d, _widest(inputs), found.diff, d64)


def prove_buffers(found, manual_value, manual_side, torch_side, j, x, params, before, tolerance, dtype):
    """Running statistic ``found.name`` ("1.running_var") of module ``j`` differs after a step whose
    forward and gradients agreed: torch's module j, given the manual side's parameters and statistics
    ``before`` the step, runs the training forward on the manual side's input ``x`` to it; its
    statistic after it against the manual side's ``manual_value`` (in float32, both recomputed in
    float64 as well)."""
    device, prefix = torch_side.device, f"{j}."
    name = found.name[len(prefix):]

    def recompute(dt):
        module = copy.deepcopy(torch_side.model[j]).to(dt).train()
        with torch.no_grad():
            for n, p in module.named_parameters():
                p.copy_(torch.tensor(params[prefix + n], dtype=dt, device=device))
            for n, b in module.named_buffers():
                if prefix + n in before:
                    b.copy_(torch.tensor(before[prefix + n], dtype=b.dtype, device=device))
            module(torch.tensor(np.asarray(x, dtype=np.float64), dtype=dt, device=device))
        return to_numpy(dict(module.named_buffers())[name])

    def manual64():
        module = _manual_module_at_float64(manual_side.model[j], params, prefix)
        for n, b in module.named_buffers():
            if prefix + n in before:
                b[...] = before[prefix + n]
        module.forward(_float64(x))
        return np.asarray(dict(module.named_buffers())[name], dtype=np.float64)

    wrong, d, d64 = judge(found.name, manual_value, recompute, manual64, tolerance, dtype)
    return NodeProof("running_stats", f"module {j} ({torch_side.kinds[j]})", wrong, d, None, found, d64)


def prove_update(spec, manual_side, torch_side, layout, before, state, grads, after, lr, tolerance, found,
                 grads_diff):
    """Step torch's optimizer from the manual side's exact parameters ``before``, gradients ``grads``
    (flat vectors) and optimizer ``state`` with learning rate ``lr``; compare with the manual side's
    parameters ``after`` the step. ``found`` is the TensorDiff of the parameter that differed in the
    two runs, ``grads_diff`` the TensorDiff of the two runs' gradients at this step."""
    names = [n for n, _ in layout]
    b, g, a = unflatten(before, layout), unflatten(grads, layout), unflatten(after, layout)

    jitter = {"rng": None}      # set by rounding_explains: move every input by a few ulps

    def stepped(dt):
        device = torch_side.device
        params = [torch.tensor(_jittered(b[n], dt, jitter), dtype=dt, device=device, requires_grad=True)
                  for n in names]
        for p, n in zip(params, names):
            p.grad = torch.tensor(_jittered(g[n], dt, jitter), dtype=dt, device=device)
        optimizer = torch_ref.make_optimizer(spec.optimizer, params, lr=lr, **spec.optimizer_args)
        # what a schedule had set when the step was taken (onecycle cycles the momentum or beta1)
        optimizer.param_groups[0].update({k: v for k, v in torch_side.stepped_with.items() if k != "lr"})
        moved = [{k: _jittered(v, dt, jitter) if isinstance(v, np.ndarray) else v for k, v in s.items()}
                 for s in (state or [])]
        load_optimizer_state(optimizer, params, moved, dt, device)
        optimizer.step()
        return {n: to_numpy(p) for n, p in zip(names, params)}

    def manual_stepped():
        """The manual side's own optimizer, stepped in float64 from the same numbers."""
        optimizer = copy.deepcopy(manual_side.optimizer)
        params = [_manual_module_parameter(b[n], g[n]) for n in names]
        optimizer.params, optimizer.lr = params, lr_manual
        for k, v in manual_side.stepped_with.items():
            setattr(optimizer, k, v)
        optimizer.state = [{k: _float64(v) if isinstance(v, np.ndarray) else v for k, v in s.items()}
                           for s in (state or [{} for _ in names])]
        optimizer.step()
        return {n: p.data for n, p in zip(names, params)}

    lr_manual = manual_side.stepped_with["lr"]
    cache = {}

    def cached(key, make):
        if key not in cache:
            cache[key] = make()
        return cache[key]

    def recompute_one(name):
        # Jittered steps are drawn afresh; the exact ones are made once for every parameter.
        return (lambda dt: (stepped(dt) if jitter["rng"] is not None else cached(dt, lambda: stepped(dt)))[name],
                lambda: cached("manual", manual_stepped)[name])

    worst = None
    for name in names:
        wrong, d, d64 = judge(f"{name} after the update", a[name], *recompute_one(name), tolerance, spec.dtype,
                              jitter)
        if worst is None or wrong > worst[0] or (wrong == worst[0] and d.scaled > worst[1].scaled):
            worst = (wrong, d, d64)
    wrong, d, d64 = worst
    return NodeProof("optimizer", "", wrong, d, grads_diff, found, d64)


def _manual_module_parameter(value, grad):
    p = Parameter(_float64(value))
    p.grad = _float64(grad)
    return p
