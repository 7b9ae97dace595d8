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
2a²/(1 - a²). So a float32 node that differs is judged once more against the same node computed in
float64 from the same inputs: when the manual side is off the float64 value by no more than
RESIDUAL_FACTOR times torch's own float32 error (plus the tolerance), it is as right as float32
can be there, and is not blamed.
"""
import copy
from dataclasses import dataclass

import numpy as np
import torch

import torch_ref
from compare.lockstep.sides import load_optimizer_state, to_numpy, unflatten
from compare.verdict.diff import compare_arrays
from compare.verdict.localise import NODES, layer_numbers

# A float32 node is right if its error against float64 is within this many times torch's own.
RESIDUAL_FACTOR = 8.0


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
    float32_error: float | None = None   # torch's own float32 error against float64, where judged so
    manual_error: float | None = None    # the manual side's error against float64

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
            if self.float32_error is not None:
                text += (f"; against the same node in float64 the manual side is off by "
                         f"{self.manual_error:.3g}, torch's float32 by {self.float32_error:.3g}")
            return text
        how = (f"agrees (max |diff| {d.max_abs:.3g}, allowed {d.allowed:.3g})" if d.passed else
               f"is as close to its float64 value as torch's own float32 (manual off by "
               f"{self.manual_error:.3g}, torch by {self.float32_error:.3g})")
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
                "amplification": self.factor, "float32_error": self.float32_error,
                "manual_error": self.manual_error}


def judge(name, manual_value, recompute, tolerance, dtype):
    """(wrong, diff, float32_error, manual_error) for a node whose torch value is ``recompute(torch_dtype)``."""
    d = compare_arrays(name, manual_value, recompute(torch_ref.as_dtype(dtype)), tolerance)
    if d.passed or dtype != "float32":
        return not d.passed, d, None, None
    ref = np.asarray(recompute(torch.float64), dtype=np.float64)
    t = np.asarray(recompute(torch.float32), dtype=np.float64)
    m = np.asarray(manual_value, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        err_t = float(np.max(np.abs(t - ref))) if t.size else 0.0
        err_m = np.abs(m - ref)
    if not (np.isfinite(err_t) and np.isfinite(err_m).all()):
        return True, d, err_t, float(np.max(err_m))
    wrong = bool(np.any(err_m > d.allowed + RESIDUAL_FACTOR * err_t))
    return wrong, d, err_t, float(err_m.max())


def _widest(diffs):
    """The TensorDiff that used most of its tolerance, or None."""
    diffs = [d for d in diffs if d is not None]
    return max(diffs, key=lambda d: d.max_abs / d.allowed) if diffs else None


def _where(found, kinds):
    j = found.node_module
    return "" if j is None else f"layer {layer_numbers(kinds)[j]} ({kinds[j]}, module {j})"


def prove_node(found, tm, tt, torch_side, X, Y, params, tolerance, dtype):
    """Recompute the node of ``found`` (a Mismatch from localise, both traces ``tm``/``tt`` taken at the
    same parameters ``params``) on torch from the manual trace's inputs; return a NodeProof."""
    node, j = found.node, found.node_module
    device = torch_side.device

    def tensor(a, dt, grad=False):
        if np.issubdtype(np.asarray(a).dtype, np.integer):
            return torch.tensor(a, dtype=torch.int64, device=device)
        return torch.tensor(np.asarray(a), dtype=dt, device=device, requires_grad=grad)

    def input_of(i, trace):
        return X if i == 0 else trace.outputs[i - 1]

    def module_at(i, dt):
        module = copy.deepcopy(torch_side.model[i]).to(dt)
        with torch.no_grad():
            for name, p in module.named_parameters():
                p.copy_(tensor(params[f"{i}.{name}"], dt))
        return module

    def run_module(i, dt, upstream):
        x = tensor(input_of(i, tm), dt, grad=True)
        module = module_at(i, dt)
        y = module(x)
        if upstream is not None:
            y.backward(tensor(upstream, dt))
        return y, x, dict(module.named_parameters())

    def between_runs(name, a, b):
        return compare_arrays(name, a, b, tolerance)

    inputs = [between_runs("inputs", input_of(j, tm), input_of(j, tt))] if j not in (None, 0) else []
    if node in ("linear", "activation"):
        manual_value = tm.outputs[j]
        recompute = lambda dt: to_numpy(run_module(j, dt, None)[0])           # noqa: E731
    elif node in ("loss", "loss_derivative"):
        inputs = [between_runs("outputs", tm.outputs[-1], tt.outputs[-1])]

        def loss_at(dt):
            out = tensor(tm.outputs[-1], dt, grad=True)
            target = tensor(Y, dt)
            cost = copy.deepcopy(torch_side.loss)(out, target)
            if node == "loss":
                return to_numpy(cost)
            cost.backward()
            return to_numpy(out.grad)
        manual_value = tm.cost if node == "loss" else tm.output_grads[-1]
        recompute = loss_at
    elif node == "linear_param_grad":
        inputs.append(between_runs("upstream gradients", tm.output_grads[j], tt.output_grads[j]))
        pname = found.diff.name.split("(")[-1].split(".grad")[0]        # "dL/dW_1 (0.weight.grad)"
        manual_value = tm.param_grads[pname]
        recompute = lambda dt: to_numpy(run_module(j, dt, tm.output_grads[j])[2][pname.split(".")[1]].grad)  # noqa: E731
    else:   # the backward of module j: dL/d(input of j) from its input and dL/d(output of j)
        inputs.append(between_runs("upstream gradients", tm.output_grads[j], tt.output_grads[j]))
        manual_value = tm.output_grads[j - 1]
        recompute = lambda dt: to_numpy(run_module(j, dt, tm.output_grads[j])[1].grad)  # noqa: E731
    wrong, d, err_t, err_m = judge(found.diff.name, manual_value, recompute, tolerance, dtype)
    return NodeProof(node, _where(found, tm.kinds), wrong, d, _widest(inputs), found.diff, err_t, err_m)


def prove_update(spec, torch_side, layout, before, state, grads, after, lr, tolerance, found, grads_diff):
    """Step torch's optimizer from the manual side's exact parameters ``before``, gradients ``grads``
    (flat vectors) and optimizer ``state`` with learning rate ``lr``; compare with the manual side's
    parameters ``after`` the step. ``found`` is the TensorDiff of the parameter that differed in the
    two runs, ``grads_diff`` the TensorDiff of the two runs' gradients at this step."""
    names = [n for n, _ in layout]
    b, g, a = unflatten(before, layout), unflatten(grads, layout), unflatten(after, layout)

    def stepped(dt):
        params = [torch.tensor(b[n], dtype=dt, device=torch_side.device, requires_grad=True) for n in names]
        for p, n in zip(params, names):
            p.grad = torch.tensor(g[n], dtype=dt, device=torch_side.device)
        optimizer = torch_ref.make_optimizer(spec.optimizer, params, lr=lr, **spec.optimizer_args)
        load_optimizer_state(optimizer, params, state, dt, torch_side.device)
        optimizer.step()
        return {n: to_numpy(p) for n, p in zip(names, params)}

    cache = {}

    def recompute_one(name):
        def recompute(dt):
            if dt not in cache:
                cache[dt] = stepped(dt)
            return cache[dt][name]
        return recompute

    worst = None
    for name in names:
        wrong, d, err_t, err_m = judge(f"{name} after the update", a[name], recompute_one(name), tolerance,
                                       spec.dtype)
        if worst is None or wrong > worst[0] or (wrong == worst[0] and d.scaled > worst[1].scaled):
            worst = (wrong, d, err_t, err_m)
    wrong, d, err_t, err_m = worst
    return NodeProof("optimizer", "", wrong, d, grads_diff, found, err_t, err_m)
