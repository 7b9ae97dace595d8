"""The network a check_network runs against: its spec, its parameter names and shapes, random
batches with targets encoded for its loss, and torch_ref.mlp running it with every intermediate kept.
"""
from dataclasses import dataclass, fields

import numpy as np

from backprop_oracle.compare.check.common import CheckError
from backprop_oracle.compare.experiments.spec import ExperimentSpec
from backprop_oracle.compare.verdict.localise import Trace, layer_numbers


@dataclass(frozen=True)
class NetworkSpec:
    """An mlp: Linear(sizes[0], sizes[1]), activation, ..., Linear(.., sizes[-1]), output_activation,
    trained on ``loss``. Every name is a registry key of manual/ and torch_ref/."""
    sizes: tuple                        # (inputs, hidden..., outputs)
    activation: str = "sigmoid"         # hidden layers
    output_activation: str = "identity"
    loss: str = "squared_error"

    @classmethod
    def from_dict(cls, d):
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise CheckError(f"unknown network spec key(s) {unknown}; keys are: {', '.join(names)}")
        if "sizes" not in d:
            raise CheckError("the network spec needs sizes, e.g. [2, 3, 1]")
        return cls(**{k: tuple(v) if k == "sizes" else v for k, v in d.items()}).validate()

    def validate(self):
        """Raise SpecError (or CheckError for the sizes) naming what makes no sense."""
        if (len(self.sizes) < 2 or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1
                                       for s in self.sizes)):
            raise CheckError(f"sizes must be at least two positive integers (inputs, ..., outputs), "
                             f"got {list(self.sizes)}")
        ExperimentSpec(hidden_sizes=tuple(int(s) for s in self.sizes[1:-1]), activation=self.activation,
                       output_activation=self.output_activation, loss=self.loss).validate()
        loss = self.loss.partition(":")[0]
        if loss in ("cross_entropy", "nll") and self.sizes[-1] < 2:
            raise CheckError(f"{loss} needs one output per class, at least 2")
        return self

    @property
    def layers(self):
        return len(self.sizes) - 1

    def __str__(self):
        return (f"{'-'.join(map(str, self.sizes))}, {self.activation} hidden, "
                f"{self.output_activation} output, {self.loss} loss")


# How the user's function names each parameter: layer l (1-based), "W" or "b" -> name.
NAMINGS = {
    "torch": lambda l, symbol: f"{2 * (l - 1)}.{'weight' if symbol == 'W' else 'bias'}",
    "layers": lambda l, symbol: f"{symbol}{l}",
}


def parameter_names(spec, naming):
    """{torch name: the user's name} in torch's order."""
    if naming not in NAMINGS:
        raise CheckError(f"unknown naming {naming!r}; choose one of: {', '.join(NAMINGS)}")
    return {NAMINGS["torch"](l, s): NAMINGS[naming](l, s) for l in range(1, spec.layers + 1) for s in "Wb"}


def random_batch(spec, batch, rng, dtype):
    """X ~ N(0, 1) of shape (batch, inputs) and the targets of random class labels, encoded for
    the loss by compare.data.targets.encode_targets ((N, 1) 0/1, (N, C) one-hot, (N,) indices, -1/+1)."""
    from backprop_oracle.compare.data.targets import encode_targets
    X = rng.standard_normal((batch, spec.sizes[0])).astype(dtype)
    classes = 2 if spec.sizes[-1] == 1 else spec.sizes[-1]
    try:
        return X, encode_targets(rng.integers(0, classes, batch), spec.loss, classes, dtype=dtype)
    except ValueError as e:
        raise CheckError(f"{spec}: {e}") from None


def param_shapes(spec):
    """{torch name: shape}: W_l (out, in), b_l (out,)."""
    shapes = {}
    for l, (n_in, n_out) in enumerate(zip(spec.sizes[:-1], spec.sizes[1:]), start=1):
        shapes[NAMINGS["torch"](l, "W")], shapes[NAMINGS["torch"](l, "b")] = (n_out, n_in), (n_out,)
    return shapes


class TorchNetwork:
    """torch_ref.mlp for the spec in float64, run with retain_grad on every module's output.
    ``TorchNetwork.for_spec`` keeps one per spec: building the modules costs more than a check."""

    _cache = {}

    @classmethod
    def for_spec(cls, spec):
        if spec not in cls._cache:
            if len(cls._cache) >= 8:
                cls._cache.pop(next(iter(cls._cache)))
            cls._cache[spec] = cls(spec)
        return cls._cache[spec]

    def __init__(self, spec):
        import torch
        from backprop_oracle import torch_ref
        from backprop_oracle.compare.sides.sides import module_kinds
        self.torch, self.torch_ref = torch, torch_ref
        self.model = torch_ref.mlp(spec.sizes, spec.activation, spec.output_activation, dtype="float64")
        self.loss = torch_ref.make_loss(spec.loss)
        self.kinds = module_kinds(self.model)
        self.layers = layer_numbers(self.kinds)

    def trace(self, state, X, Y, keep=None, l2=0.0, input_grad=False):
        """A compare.verdict.localise.Trace of one forward and backward pass with these parameter values.
        ``keep``: the modules whose outputs (and their gradients) to copy out; None: every one.
        ``l2``: the cost gets l2·Σ_l ΣW_l² (weights only); ``input_grad``: dCost/dX is kept in
        ``self.input_grad``."""
        torch = self.torch
        from backprop_oracle.compare.sides.sides import to_numpy
        # torch.tensor copies: the two sides never share memory, so they cannot agree falsely.
        with torch.no_grad():
            for n, p in self.model.named_parameters():
                p.copy_(torch.tensor(np.asarray(state[n], dtype=np.float64)))
        self.model.zero_grad(set_to_none=True)
        Xt = torch.tensor(np.asarray(X, dtype=np.float64), requires_grad=bool(input_grad))
        Yt = torch.tensor(Y if np.issubdtype(Y.dtype, np.integer) else np.asarray(Y, dtype=np.float64))
        out, outputs = self.torch_ref.forward_with_intermediates(self.model, Xt)
        cost = self.loss(out, Yt)
        if l2:
            cost = cost + l2 * sum((p ** 2).sum() for n, p in self.model.named_parameters() if n.endswith("weight"))
        cost.backward()
        self.input_grad = to_numpy(Xt.grad) if input_grad else None
        kept = range(len(outputs)) if keep is None else keep
        return Trace(self.kinds, [to_numpy(o) if i in kept else None for i, o in enumerate(outputs)],
                     [to_numpy(o.grad) if i in kept else None for i, o in enumerate(outputs)],
                     {n: to_numpy(p.grad) for n, p in self.model.named_parameters()}, cost.item())
