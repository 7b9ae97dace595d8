"""Where do two backward passes part ways?

A ``Trace`` holds one side's forward outputs, the gradient of the cost with respect to each of
them, and the parameter gradients. ``localise`` walks the two traces the way a person checks a
derivation: the forward pass from the input, then the cost, then backward from the output layer,
at each layer dL/da, dL/dz, dL/dW, dL/db in that order. The first tensor that disagrees is the
mistake; the one before it agreed, which says which derivative is wrong.

Layers are numbered from 1 as in the teaching texts: layer l is z_l = a_{l-1} W_l^T + b_l, a_l = f_l(z_l),
with a_0 = x. In a Sequential from ``mlp`` layer l is modules 2l-2 (Linear) and 2l-1 (activation).

Any other Sequential is walked the same way, module by module: each module has a ``role``
(compare.network.layers): "linear" and "layer" (a convolution) start a new layer, "activation"
and "inner" (pooling, flatten, normalisation, dropout) belong to the layer they follow. A module's
output is z (linear), a (activation) or y (the others); its parameter gradients are named by
torch's names ("3.weight"), and the node blamed for a tensor is that module's forward, its
parameter gradient, or the backward of the module after it.
"""
from dataclasses import dataclass, field

from backprop_oracle.compare.verdict.diff import compare_arrays


@dataclass
class Trace:
    """One side's record of one forward and backward pass over a Sequential."""
    kinds: list             # per module: "linear" or an activation key ("sigmoid", ...)
    outputs: list           # per module: its forward output, as a float64 NumPy array
    output_grads: list      # per module: dL/d(its output); None where not computed
    param_grads: dict       # "0.weight" -> dL/dW_1, ...
    cost: float
    roles: list | None = None   # per module: "linear", "activation", "layer" or "inner"; None: a dense network


def roles_of(trace):
    """Each module's role; a trace without roles is a dense network's (linear or activation)."""
    return trace.roles or ["linear" if k == "linear" else "activation" for k in trace.kinds]


@dataclass(frozen=True)
class Mismatch:
    """The first place the two sides disagree, and what that means."""
    stage: str              # "forward", "cost", "backward", "update" or "buffers" (running statistics)
    diff: object            # the TensorDiff of the first disagreeing tensor
    layer: int | None
    module: int | None
    reason: str
    step: int | None = None
    epoch: int | None = None
    agreed: list = field(default_factory=list)   # names of the tensors checked before it, all agreeing
    node: str | None = None   # the computation blamed, one of NODES (None where none is)
    node_module: int | None = None   # the module that computes it (the loss and optimizer: None)
    proof: object = None      # what recomputing the node alone on identical inputs showed (lockstep)

    def describe(self):
        when = "" if self.step is None else f"at step {self.step} (epoch {self.epoch}): "
        what = self.diff.describe()
        if self.stage in ("drift", "amplified"):     # proven rounding: not a verdict against a formula
            what = what.replace(" DIFFERS: ", " differs by rounding: ", 1)
        return f"{when}{what}\n  -> {self.reason}"

    def to_dict(self):
        out = {"stage": self.stage, "step": self.step, "epoch": self.epoch, "layer": self.layer,
               "module": self.module, "node": self.node, "node_module": self.node_module,
               "tensor": self.diff.to_dict(), "reason": self.reason}
        if self.proof is not None:
            out["proof"] = self.proof.to_dict()
        return out


# The computations a mismatch can be blamed on: the node that produced the first wrong tensor.
NODES = {
    "linear": "the linear map z = a W^T + b",
    "activation": "the activation function",
    "loss": "the loss function",
    "loss_derivative": "the loss derivative dL/d(output)",
    "activation_derivative": "the activation derivative",
    "linear_input_grad": "the linear layer's input gradient dL/da = dL/dz W",
    "linear_param_grad": "the linear layer's parameter gradient (dL/dW = dL/dz^T a, dL/db = sum of dL/dz)",
    "forward": "the layer's forward pass",
    "param_grad": "the layer's parameter gradient",
    "backward": "the backward",
    "running_stats": "the running statistics' update in the training forward pass",
    "optimizer": "the optimizer's update rule",
    "schedule": "the learning-rate schedule",
}


def layer_numbers(kinds, roles=None):
    """Layer number of each module: Linear modules (and, with ``roles``, every "layer") start a new
    layer; activations and the "inner" modules belong to it (modules before the first: layer 1)."""
    roles = roles or ["linear" if k == "linear" else "activation" for k in kinds]
    numbers, layer = [], 0
    for role in roles:
        if role in ("linear", "layer"):
            layer += 1
        numbers.append(max(layer, 1))
    return numbers


_SYMBOLS = {"linear": "z", "activation": "a"}


def _output_symbol(role):
    return _SYMBOLS.get(role, "y")


def localise(manual, torch, tolerance, loss_name="the loss"):
    """Return the first ``Mismatch`` between two Traces, or None when every tensor agrees."""
    kinds, roles = manual.kinds, roles_of(manual)
    if kinds != torch.kinds:
        raise ValueError(f"the two models differ in structure: manual {kinds}, torch {torch.kinds}")
    layers = layer_numbers(kinds, roles)
    agreed = []
    last_layer = layers[-1] if layers else 0

    # 1. forward, from the input
    for i, kind in enumerate(kinds):
        sym, l = _output_symbol(roles[i]), layers[i]
        d = compare_arrays(f"{sym}_{l} (output of module {i}, {kind})", manual.outputs[i],
                           torch.outputs[i], tolerance)
        if not d.passed:
            node = {"linear": "linear", "activation": "activation"}.get(roles[i], "forward")
            what = {"linear": "the linear map z = a W^T + b", "activation": f"the activation function {kind}"}.get(
                roles[i], f"the {kind} layer's forward pass")
            return Mismatch("forward", d, l, i, f"the forward pass differs first at layer {l}: {what} "
                            f"(module {i}); everything before it agreed", agreed=agreed,
                            node=node, node_module=i)
        agreed.append(d.name)

    # 2. the cost
    d = compare_arrays("cost", manual.cost, torch.cost, tolerance)
    if not d.passed:
        return Mismatch("cost", d, last_layer, None,
                        f"the forward pass agrees but the cost differs: the loss function {loss_name} "
                        "(check its formula and reduction: mean over examples or over elements, "
                        "the factor 1/2)", agreed=agreed, node="loss")
    agreed.append(d.name)

    # 3. backward, from the output layer: per layer dL/da, dL/dz, dL/dW, dL/db
    for i in reversed(range(len(kinds))):
        kind, l = kinds[i], layers[i]
        sym = _output_symbol(roles[i])
        if manual.output_grads[i] is not None and torch.output_grads[i] is not None:
            d = compare_arrays(f"dL/d{sym}_{l} (gradient at module {i}'s output, {kind})",
                               manual.output_grads[i], torch.output_grads[i], tolerance)
            if not d.passed:
                node, node_module = backward_node(kinds, i, roles)
                return Mismatch("backward", d, l, i, _backward_reason(kinds, layers, i, loss_name, roles),
                                agreed=agreed, node=node, node_module=node_module)
            agreed.append(d.name)
        if kind != "linear":
            for pname in [n for n in manual.param_grads if n.split(".", 1)[0] == str(i)]:
                d = compare_arrays(f"dL/d({pname}) ({pname}.grad)", manual.param_grads[pname],
                                   torch.param_grads[pname], tolerance)
                if not d.passed:
                    return Mismatch("backward", d, l, i,
                                    f"dL/d({pname}) is wrong while the gradient at module {i}'s output is right: "
                                    f"the {kind} layer's parameter gradient (module {i})",
                                    agreed=agreed, node="param_grad", node_module=i)
                agreed.append(d.name)
        else:
            for pname, symbol in ((f"{i}.weight", "W"), (f"{i}.bias", "b")):
                if pname not in manual.param_grads:
                    continue
                d = compare_arrays(f"dL/d{symbol}_{l} ({pname}.grad)", manual.param_grads[pname],
                                   torch.param_grads[pname], tolerance)
                if not d.passed:
                    formula = ("dL/dW = dL/dz^T a_{l-1}, summed over the batch" if symbol == "W"
                               else "dL/db = sum over the batch of dL/dz")
                    return Mismatch("backward", d, l, i,
                                    f"dL/d{symbol} of layer {l} is wrong while dL/dz of layer {l} is "
                                    f"right: the linear layer's parameter gradient ({formula})",
                                    agreed=agreed, node="linear_param_grad", node_module=i)
                agreed.append(d.name)
    return None


def backward_node(kinds, i, roles=None):
    """(node, module) that computes dL/d(output of module i): the loss derivative for the last
    module, else the backward of module i + 1."""
    roles = roles or ["linear" if k == "linear" else "activation" for k in kinds]
    if i == len(kinds) - 1:
        return "loss_derivative", None
    if roles[i + 1] == "linear":
        return "linear_input_grad", i + 1
    if roles[i + 1] == "activation" and roles[i] != "activation":
        return "activation_derivative", i + 1
    return "backward", i + 1


def _backward_reason(kinds, layers, i, loss_name, roles):
    kind, l, sym = kinds[i], layers[i], _output_symbol(roles[i])
    if i == len(kinds) - 1:
        return (f"the gradient of the cost with respect to the network's output is wrong: the loss "
                f"derivative of {loss_name} (check its sign and its reduction: 1/N, 1/(N K), the 1/2)")
    nxt, nl = kinds[i + 1], layers[i + 1]
    if roles[i + 1] == "linear":
        return (f"dL/d{sym} of layer {l} is wrong while dL/dz of layer {nl} is right: the linear layer's "
                f"input gradient in layer {nl} (dL/d{sym}_{l} = dL/dz_{nl} W_{nl}, no transpose)")
    if roles[i + 1] == "activation" and roles[i] != "activation":
        return (f"dL/d{sym} of layer {l} is wrong while dL/da of layer {l} is right: the activation "
                f"derivative of layer {l} ({nxt}, module {i + 1})")
    return (f"the gradient at module {i}'s output is wrong while the one after it is right: "
            f"the backward of module {i + 1} ({nxt})")
