"""The experiment spec: everything that decides a comparison run, in one frozen dataclass.

The input and output sizes come from the data set; ``hidden_sizes`` are the layers in between.
Every name is a registry key shared by manual/ and torch_ref/.
"""
from dataclasses import dataclass, field, fields, replace

import numpy as np

from manual import ACTIVATIONS, DTYPES, INITIALISERS, LOSSES, OPTIMIZERS, SCHEDULERS
from compare.errors import SpecError


@dataclass(frozen=True)
class ExperimentSpec:
    dataset: str = "or"                    # a compare.data.datasets key
    dataset_args: dict = field(default_factory=dict)   # e.g. {"noise": 0.1}
    hidden_sizes: tuple = ()               # () is a single layer: inputs -> outputs
    activation: str = "sigmoid"            # hidden layers
    output_activation: str = "sigmoid"
    loss: str = "squared_error"
    optimizer: str = "sgd"
    lr: float = 1.0
    optimizer_args: dict = field(default_factory=dict)  # torch's names: momentum, weight_decay, betas, ...
    schedule: str = "constant"             # "constant", "step" or "exponential", stepped once an epoch
    schedule_args: dict = field(default_factory=dict)   # step_size, gamma
    epochs: int = 100
    batch_size: int | None = None          # None: full batch (batch GD); 1: SGD; k: mini-batch
    shuffle: bool = True                   # reshuffle the batch order each epoch (the same order on both sides)
    init: str = "xavier_uniform"           # weights; biases start at zero
    init_args: dict = field(default_factory=dict)
    initial_params: dict | None = None     # explicit starting values by parameter name
    seed: int = 0                          # one numpy Generator makes weights and batch order
    dtype: str = "float64"                 # the oracle's precision; "float32" available
    device: str = "cpu"                    # torch side: "cpu", "cuda", "auto"

    def validate(self):
        """Raise SpecError naming the first field that makes no sense, and the fix."""
        for value, registry, what in ((self.activation, ACTIVATIONS, "activation"),
                                      (self.output_activation, ACTIVATIONS, "output activation"),
                                      (self.loss, LOSSES, "loss"),
                                      (self.optimizer, OPTIMIZERS, "optimizer"),
                                      (self.schedule, SCHEDULERS, "schedule"),
                                      (self.init, INITIALISERS, "initialiser"),
                                      (self.dtype, DTYPES, "dtype")):
            if value not in registry:
                raise SpecError(f"unknown {what} {value!r}; choose one of: {', '.join(registry)}")
        if self.output_activation == "step" or (self.hidden_sizes and self.activation == "step"):
            raise SpecError("the step activation has no useful derivative, so it cannot be trained by "
                            "backpropagation; use 'sigmoid' (a smooth step) to train")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise SpecError(f"learning rate must be a positive number, got {self.lr!r}")
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            raise SpecError(f"epochs must be a positive integer, got {self.epochs!r}")
        if self.batch_size is not None and not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise SpecError(f"batch size must be a positive integer (or omitted for the full batch), "
                            f"got {self.batch_size!r}")
        if any(not isinstance(h, int) or h < 1 for h in self.hidden_sizes):
            raise SpecError(f"hidden sizes must be positive integers, got {self.hidden_sizes!r}")
        if not (self.device in ("cpu", "cuda", "auto") or
                (self.device.startswith("cuda:") and self.device[5:].isdigit())):
            raise SpecError(f"unknown device {self.device!r}; choose cpu, cuda, cuda:N or auto")
        if self.loss == "cross_entropy" and self.output_activation != "identity":
            raise SpecError(f"cross_entropy applies softmax to logits itself; with output activation "
                            f"{self.output_activation!r} it would be applied twice. Use output "
                            "activation 'identity'")
        if self.loss == "bce" and self.output_activation not in ("sigmoid", "softmax"):
            raise SpecError("bce takes probabilities: use output activation 'sigmoid'")
        return self

    def with_overrides(self, **overrides):
        """A copy with the given fields replaced (None values ignored), validated."""
        names = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise SpecError(f"unknown spec field(s) {unknown}; fields are: {', '.join(sorted(names))}")
        changes = {k: v for k, v in overrides.items() if v is not None}
        return replace(self, **changes).validate()

    def to_dict(self):
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "initial_params" and v is not None:
                v = {k: np.asarray(value, dtype=float).tolist() for k, value in v.items()}
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out
