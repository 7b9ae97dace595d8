"""One example through a preset's network, node by node, the way the teaching texts compute it by hand:
forward (x, z, ŷ, L), backward (∂L/∂ŷ, ∂ŷ/∂z, ∂L/∂z, ∂L/∂W, ∂L/∂b for each layer, from the
output back), then the update. Each node shows the manual value beside torch's, from
``retain_grad`` on every intermediate (torch_ref.forward_with_intermediates).

For the OR gate's first example (x = (0, 0), y = 0, w = [0.1, 0.6], b = 0, α = 1) this is seed
004's computation: ŷ = 0.5, L = 0.125, ∂L/∂w = [0, 0], ∂L/∂b = 0.125, b -> -0.125.
"""
import re
from dataclasses import dataclass, field

import numpy as np

from backprop_oracle.compare.experiments.presets import PRESETS
from backprop_oracle.compare.experiments.spec import ExperimentSpec, SpecError
from backprop_oracle.compare.tables import aligned
from backprop_oracle.compare.trace import layers as formulas
from backprop_oracle.compare.verdict.diff import compare_arrays
from backprop_oracle.compare.verdict.localise import layer_numbers

# activation key -> (a = f(z), f'(z) written with a and z); the registry keys of manual/activations.py
ACTIVATION_FORMULAS = {
    "identity": ("z", "1"),
    "step": ("1 if z > 0 else 0", "0 (no gradient)"),
    "sigmoid": ("1 / (1 + e^-z)", "a (1 − a)"),
    "tanh": ("tanh(z)", "1 − a²"),
    "relu": ("max(0, z)", "1 if z > 0 else 0"),
    "leaky_relu": ("z if z > 0 else 0.01 z", "1 if z > 0 else 0.01"),
    "softmax": ("e^z / Σ e^z", "a_i (δ_ij − a_j), a Jacobian"),
    "elu": ("z if z > 0 else α (e^z − 1)", "1 if z > 0 else α e^z"),
    "selu": ("λ (z if z > 0 else α (e^z − 1)), λ = 1.0507, α = 1.6733", "λ if z > 0 else λ α e^z"),
    "gelu": ("z Φ(z)", "Φ(z) + z φ(z)"),
    "silu": ("z σ(z)", "σ(z) (1 + z (1 − σ(z)))"),
    "softplus": ("(1/β) log(1 + e^(βz)), z where βz > threshold", "σ(βz), 1 where βz > threshold"),
    "hardtanh": ("clamp(z, min_val, max_val)", "1 if min_val < z < max_val else 0"),
    "hardsigmoid": ("clamp(z/6 + ½, 0, 1)", "1/6 if −3 < z < 3 else 0"),
    "hardswish": ("z clamp(z + 3, 0, 6) / 6", "0 if z ≤ −3, z/3 + ½ if −3 < z < 3, else 1"),
    "log_softmax": ("z − log Σ e^z", "δ_ij − softmax(z)_j, a Jacobian"),
}

# loss key -> (L for one example, ∂L/∂ŷ); K outputs. The keys of manual/losses.py.
LOSS_FORMULAS = {
    "squared_error": ("½ Σ (y − ŷ)²", "ŷ − y"),
    "sum_squared_error": ("Σ (y − ŷ)²", "2 (ŷ − y)"),
    "mse": ("(1/K) Σ (y − ŷ)²", "2 (ŷ − y) / K"),
    "bce": ("−(1/K) Σ [y log ŷ + (1 − y) log(1 − ŷ)]", "(ŷ − y) / (ŷ (1 − ŷ)) / K"),
    "cross_entropy": ("−log softmax(ŷ)_y", "softmax(ŷ) − onehot(y)"),
    "hinge": ("(1/K) Σ max(0, 1 − y ŷ)", "−y / K where 1 − y ŷ > 0"),
    "bce_with_logits": ("−(1/K) Σ [p_w y log σ(ŷ) + (1 − y) log(1 − σ(ŷ))]", "((1 + (p_w − 1) y) σ(ŷ) − p_w y) / K"),
    "l1": ("(1/K) Σ |ŷ − y|", "sign(ŷ − y) / K"),
    "smooth_l1": ("(1/K) Σ (½ d²/β if |d| < β else |d| − ½β), d = ŷ − y", "(d/β if |d| < β else sign d) / K"),
    "huber": ("(1/K) Σ (½ d² if |d| ≤ δ else δ (|d| − ½δ)), d = ŷ − y", "(d if |d| ≤ δ else δ sign d) / K"),
    "nll": ("−ŷ_y (ŷ: log-probabilities)", "−onehot(y)"),
}


def _loss_formula(loss, part):
    """The loss's formula (part 0) or derivative (part 1), with the key's arguments after it."""
    name, _, args = loss.partition(":")
    text = LOSS_FORMULAS.get(name, (name, "the loss derivative"))[part]
    return f"{text} [{args}]" if args else text

_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


@dataclass(frozen=True)
class TraceNode:
    """One node of the hand computation: its symbol, its formula, and both sides' values."""
    stage: str            # "forward", "backward" or "update"
    symbol: str           # "z", "∂L/∂b₂", ...
    formula: str
    manual: np.ndarray
    torch: np.ndarray
    diff: object          # compare.verdict.diff.TensorDiff of the two


@dataclass
class ExampleTrace:
    """Every node of one example's forward pass, backward pass and update, on both sides."""
    name: str
    example: int
    x: np.ndarray         # the example (batch 1), or the batch's examples in rows
    y: np.ndarray
    spec: object          # the ExperimentSpec
    tolerance: object
    nodes: list = field(default_factory=list)
    batch: int = 1        # examples example .. example + batch - 1, one batch

    @property
    def inputs(self):
        """x with its batch axis."""
        return self.x.reshape((1,) + self.x.shape) if self.batch == 1 else self.x

    @property
    def passed(self):
        return all(n.diff.passed for n in self.nodes)

    def first_disagreement(self):
        return next((n for n in self.nodes if not n.diff.passed), None)


def resolve_run(name):
    """(run name, ExperimentSpec) for "preset" (its first run) or "preset:label"."""
    preset_name, _, label = name.partition(":")
    if preset_name not in PRESETS:
        raise SpecError(f"unknown preset {preset_name!r}; choose one of: {', '.join(PRESETS)}")
    preset = PRESETS[preset_name]
    if label and label not in preset.runs:
        labels = ", ".join(f"{preset.name}:{k}" for k in preset.runs if k)
        raise SpecError(f"preset {preset.name!r} has no run {label!r}; its runs: {labels or preset.name}")
    label = label or next(iter(preset.runs))
    return (preset.name if not label else f"{preset.name}:{label}"), preset.runs[label]


def trace_example(preset_or_spec, example=0, *, name=None, batch_size=1):
    """Trace example ``example`` of a preset (a name, "preset:label") or an ExperimentSpec.

    Builds the run exactly as compare.lockstep.LockstepRun does (data, initial parameters from
    the spec's initial_params / init), runs one forward and backward pass of that example on
    both sides with every intermediate kept, then one optimizer step. Returns an ExampleTrace.
    ``batch_size``: the examples from ``example`` on taken as one batch (a batch norm over
    features, which normalises over the batch, needs 2 or more).
    """
    from backprop_oracle.compare.lockstep.run import LockstepRun
    if isinstance(preset_or_spec, ExperimentSpec):
        run_name, spec = name or preset_or_spec.dataset, preset_or_spec
    else:
        run_name, spec = resolve_run(preset_or_spec)
    run = LockstepRun(spec, name=run_name)
    n = run.problem.X.shape[0]
    if isinstance(example, bool) or not isinstance(example, (int, np.integer)) or not 0 <= example < n:
        raise SpecError(f"example must be an index from 0 to {n - 1} ({run_name} has {n} training "
                        f"examples), got {example!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or \
            not 1 <= batch_size <= n - example:
        raise SpecError(f"the batch must be 1 to {n - example} examples (from example {example} of {n}), "
                        f"got {batch_size!r}")
    network = run.problem.network
    for i, (layer, shape) in enumerate(zip(network.layers, network.shapes)):
        if layer.kind == "batchnorm" and batch_size * int(np.prod(shape[1:])) == 1:
            raise SpecError(f"module {i} ({layer.text}) normalises over the batch, and one example leaves it "
                            f"nothing to normalise over; trace a batch of 2 or more (--batch 2)")
    idx = np.arange(example, example + batch_size)
    tm, tt = run.manual.trace(idx), run.torch.trace(idx)
    rows = idx[0] if batch_size == 1 else idx
    trace = ExampleTrace(run_name, int(example), run.problem.X[rows], run.problem.Y[rows], spec, run.tolerance,
                         batch=int(batch_size))
    _forward_nodes(trace, tm, tt, run)
    _backward_nodes(trace, tm, tt, run)
    before_m, before_t = run.manual.params(), run.torch.params()
    run.manual.step()
    run.torch.step()
    _update_nodes(trace, run, before_m, before_t)
    return trace


def _symbols(kinds, roles=None):
    """(output symbol of each module, {parameter name: symbol}): per layer l z_l, a_l, W_l, b_l (one
    layer is the OR-gate article's z, ŷ, w, b; a convolution is a layer too); any other module's
    output is h_i (module i), a normalisation's parameters γ_i and β_i."""
    roles = roles or ["linear" if k == "linear" else "activation" for k in kinds]
    layers = layer_numbers(kinds, roles)
    starts = [l for l, r in zip(layers, roles) if r in ("linear", "layer")]
    L = max(starts) if starts else 0
    outs, params = [], {}
    for i, (l, role) in enumerate(zip(layers, roles)):
        s = "" if L == 1 else str(l).translate(_SUB)
        if role in ("linear", "layer"):
            outs.append(f"z{s}")
            params[f"{i}.weight"], params[f"{i}.bias"] = ("w" if L == 1 else f"W{s}"), f"b{s}"
        elif role == "activation":
            outs.append("ŷ" if l == L and all(r == "activation" for r in roles[i:]) else f"a{s}")
        else:
            sub = str(i).translate(_SUB)
            outs.append(f"h{sub}")
            params.update({f"{i}.{n}": f"{g}{sub}" for n, g in formulas.NORM_SYMBOLS.items()})
    return outs, params


def _symbolic(formula, z, a):
    """A registry formula written for this layer: "a (1 − a)" -> "a₁ (1 − a₁)"."""
    return re.sub(r"\ba\b", a, re.sub(r"\bz\b", z, formula))


def _add(trace, stage, symbol, formula, manual, torch):
    d = compare_arrays(symbol, manual, torch, trace.tolerance)
    trace.nodes.append(TraceNode(stage, symbol, formula, np.asarray(manual, dtype=np.float64),
                                 np.asarray(torch, dtype=np.float64), d))


def _forward_nodes(trace, tm, tt, run):
    spec, kinds = trace.spec, tm.kinds
    outs, params = _symbols(kinds, tm.roles)
    roles = tm.roles or ["linear" if k == "linear" else "activation" for k in kinds]
    x = trace.inputs
    _add(trace, "forward", "x", "the input", x, x)
    for i, kind in enumerate(kinds):
        prev = "x" if i == 0 else outs[i - 1]
        if roles[i] == "linear":
            formula = f"{prev} {params[f'{i}.weight']}ᵀ + {params[f'{i}.bias']}" if f"{i}.bias" in tm.param_grads \
                else f"{prev} {params[f'{i}.weight']}ᵀ"
        elif roles[i] == "activation":
            written = _symbolic(ACTIVATION_FORMULAS.get(kind, (kind, ''))[0], prev, outs[i])
            formula = written if written == f"{kind}({prev})" else f"{kind}({prev}) = {written}"
        else:
            formula = formulas.forward(kind, run.manual.model[i], prev, params.get(f"{i}.weight", "W"),
                                       params.get(f"{i}.bias", "b"))
        if kind == "dropout" and getattr(run.manual.model[i], "dropped", False):
            keep_m, keep_t = run.manual.model[i].last_mask, run.torch.model[i].last_mask
            _add(trace, "forward", f"m{str(i).translate(_SUB)}", formulas.mask(run.manual.model[i], keep_m),
                 keep_m, keep_t)
        _add(trace, "forward", outs[i], formula, tm.outputs[i], tt.outputs[i])
    _add(trace, "forward", "L", f"{_loss_formula(spec.loss, 0)}, y = {_fmt(trace.y)}",
         tm.cost, tt.cost)


def _local_derivatives(run, i, z_manual, z_torch):
    """∂a/∂z of activation module i, element by element, on both sides (None for a Jacobian)."""
    import torch
    act_m, act_t = run.manual.model[i], run.torch.model[i]
    if type(act_m).__name__ in ("Softmax", "LogSoftmax", "Step"):
        return None, None
    act_m.forward(z_manual)                       # recompute its cache for this z
    d_manual = act_m.backward(np.ones_like(z_manual))
    zt = torch.tensor(z_torch, dtype=run.torch.dtype, requires_grad=True)
    d_torch, = torch.autograd.grad(act_t(zt), zt, torch.ones_like(zt))
    return d_manual, d_torch.detach().cpu().numpy()


def _backward_nodes(trace, tm, tt, run):
    kinds, loss = tm.kinds, trace.spec.loss
    outs, params = _symbols(kinds, tm.roles)
    roles = tm.roles or ["linear" if k == "linear" else "activation" for k in kinds]
    x = trace.inputs
    for i in reversed(range(len(kinds))):
        kind, out, prev = kinds[i], outs[i], ("x" if i == 0 else outs[i - 1])
        if i == len(kinds) - 1:
            formula = _loss_formula(loss, 1)
        elif roles[i + 1] == "linear":
            formula = f"∂L/∂{outs[i + 1]} {params[f'{i + 1}.weight']}"
        elif roles[i + 1] == "activation" and roles[i] != "activation":
            formula = f"∂L/∂{outs[i + 1]} · ∂{outs[i + 1]}/∂{out}"
        elif roles[i + 1] == "activation":
            formula = f"∂L/∂{outs[i + 1]} back through {kinds[i + 1]}"
        else:
            formula = formulas.backward(kinds[i + 1], run.manual.model[i + 1], outs[i + 1], out,
                                        params.get(f"{i + 1}.weight", "W"))
        if tm.output_grads[i] is None or tt.output_grads[i] is None:
            continue        # before the first parameter nothing needs a gradient: torch computes none
        _add(trace, "backward", f"∂L/∂{out}", formula, tm.output_grads[i], tt.output_grads[i])
        if roles[i] == "activation":
            z_m, z_t = (x, x) if i == 0 else (tm.outputs[i - 1], tt.outputs[i - 1])
            d_m, d_t = _local_derivatives(run, i, z_m, z_t)
            if d_m is not None:
                _add(trace, "backward", f"∂{out}/∂{prev}",
                     _symbolic(ACTIVATION_FORMULAS.get(kind, ("", kind))[1], prev, out), d_m, d_t)
        for name in [n for n in tm.param_grads if n.split(".", 1)[0] == str(i)]:
            symbol = params.get(name, f"({name})")
            formula = (f"∂L/∂{out}ᵀ {prev}" if name.endswith("weight") and roles[i] == "linear"
                       else f"Σ ∂L/∂{out} over the batch" if roles[i] == "linear"
                       else formulas.parameter(kind, run.manual.model[i], name.split(".", 1)[1], out, prev))
            _add(trace, "backward", f"∂L/∂{symbol}", formula, tm.param_grads[name], tt.param_grads[name])


def _update_nodes(trace, run, before_m, before_t):
    spec = trace.spec
    _, params = _symbols(run.manual.kinds, run.manual.roles)
    after_m, after_t = run.manual.params(), run.torch.params()
    plain_sgd = spec.optimizer == "sgd" and not any(spec.optimizer_args.values())
    for name in after_m:
        p = params.get(name, name)
        formula = (f"{p} − α ∂L/∂{p}, α = {spec.lr:g}" if plain_sgd
                   else f"{spec.optimizer} step, lr {spec.lr:g} {spec.optimizer_args or ''}".rstrip())
        _add(trace, "update", f"{p} →", f"{formula} (was {_fmt(before_m[name])})", after_m[name], after_t[name])


def _fmt(value, limit=6):
    """A value as the teaching texts print it: 0.125, [0.1, 0.6], [[1, 2], [3, 4]]; big arrays summarised."""
    a = np.asarray(value, dtype=np.float64) + 0.0          # + 0.0 turns -0 into 0
    if a.ndim > 1 and a.shape[0] == 1:
        a = a[0]                                             # one example or one unit: drop the axis (once:
                                                             # an image's one channel stays, (1, 8, 8))
    if a.size > limit:
        return f"{a.shape} array, |max| {np.abs(a).max():.6g}"
    if a.size == 1:
        return f"{a.reshape(-1)[0]:.6g}"
    if a.ndim == 1:
        return "[" + ", ".join(f"{v:.6g}" for v in a) + "]"
    return "[" + ", ".join(_fmt(row) if np.ndim(row) else f"{row:.6g}" for row in a) + "]"


def format_trace(trace):
    """The trace as a table: stage, node, formula, manual, torch, and whether they agree."""
    spec = trace.spec
    which = (f"example {trace.example}" if trace.batch == 1 else
             f"examples {trace.example} to {trace.example + trace.batch - 1} as one batch")
    head = (f"{trace.name}, {which}: x = {_fmt(np.asarray(trace.x)[None] if trace.batch == 1 else trace.x)}, y = {_fmt(trace.y)}  "
            f"({spec.loss} loss, {spec.optimizer} lr {spec.lr:g}, {spec.dtype})")
    rows = [["", "node", "formula", "manual", "torch", ""]]
    stage = None
    for n in trace.nodes:
        label = n.stage if n.stage != stage else ""
        stage = n.stage
        rows.append([label, n.symbol, n.formula, _fmt(n.manual), _fmt(n.torch),
                     "agree" if n.diff.passed else "DIFFER"])
    lines = [head, ""] + aligned(rows)
    first = trace.first_disagreement()
    lines.append("")
    if first is None:
        lines.append(f"every node agrees (tolerance {trace.tolerance})")
    else:
        lines.append(f"the sides first disagree at {first.symbol}: {first.diff.describe()}")
    return "\n".join(lines)
