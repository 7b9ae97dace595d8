"""The experiment spec: everything that decides a comparison run, in one frozen dataclass.

The input and output sizes come from the data set; ``hidden_sizes`` are the layers in between, or
``layers`` writes the whole network out, any sequence of layer kinds (compare.network.layers).
Every name is a registry key shared by manual/ and torch_ref/.
"""
import inspect
import math
import re
import numbers
from dataclasses import dataclass, field, fields, replace

import numpy as np

from backprop_oracle.compare.errors import SpecError
from backprop_oracle.compare.network.layers import as_layers, final_activation, parse_layers
from backprop_oracle.manual import ACTIVATIONS, DTYPES, INITIALISERS, LOSSES, OPTIMIZERS, SCHEDULERS, Parameter
from backprop_oracle.manual import make_activation, make_loss, make_optimizer, make_scheduler, split_key

MAX_EPOCHS = 10**9          # more could not finish; and the step counters are exact in float64
MAX_SEED = 2**32 - 1        # numpy's and scikit-learn's seeds are 32-bit


def _is_int(value):
    """An integer, NumPy's included, but not a bool (True is not an epoch count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _finite_numbers(name, args):
    """Every value of an arguments dict is a finite number (or a tuple/list of them), a bool flag,
    a word (kaiming's mode="fan_out", onecycle's anneal_strategy="linear"), or, in a list, a table
    of the same (sequential's schedulers)."""
    if not isinstance(args, dict):
        raise SpecError(f"{name} must be a dict of keyword arguments, got {type(args).__name__}")
    for key, value in args.items():
        values = value if isinstance(value, (tuple, list)) else [value]
        for i, v in enumerate(values):
            if isinstance(v, (bool, np.bool_, str)):
                continue
            if isinstance(v, dict) and isinstance(value, (tuple, list)):
                _finite_numbers(f"{name}[{key!r}][{i}]", v)
                continue
            if not (_is_real(v) and math.isfinite(v)):
                raise SpecError(f"{name}[{key!r}] must be a finite number, got {value!r}")


def arguments_of(registry, name, positional):
    """The keyword arguments ``registry[name]`` takes besides ``positional`` (torch's names)."""
    return [p for p in inspect.signature(registry[name]).parameters if p not in positional]


def optimizer_arguments(name):
    """The keyword arguments optimizer ``name`` takes besides params and lr: momentum, betas, ..."""
    return arguments_of(OPTIMIZERS, name, ("params", "lr"))


def schedule_arguments(spec, n_examples=None):
    """The schedule's arguments for a run on ``n_examples`` training examples. A schedule stepped
    after every optimizer step (onecycle) is given the run's step count as ``total_steps`` unless
    its own length is given (``total_steps``, or ``epochs`` and ``steps_per_epoch``), which must then
    cover the run; and the run's ``lr`` as its ``max_lr`` unless that is given. Without
    ``n_examples`` the count is a stand-in (the epochs), for checking the other arguments."""
    args = dict(spec.schedule_args)
    if SCHEDULERS[spec.schedule].interval != "step":
        return args
    args.setdefault("max_lr", spec.lr)
    steps = spec.epochs
    if n_examples is not None:
        steps *= len(range(0, n_examples, n_examples if spec.batch_size is None else spec.batch_size))
    given = args.get("total_steps") or (args.get("epochs") or 0) * (args.get("steps_per_epoch") or 0)
    if not given and not any(k in args for k in ("total_steps", "epochs", "steps_per_epoch")):
        args["total_steps"] = steps
    elif n_examples is not None and isinstance(given, int) and given < steps:
        raise SpecError(f"the {spec.schedule} schedule is {given} steps long, the run takes {steps} "
                        f"({spec.epochs} epochs of {steps // spec.epochs} batches): leave out total_steps (and "
                        "epochs, steps_per_epoch) to fit the run, or give at least that many")
    return args


def key_name(key):
    """The registry name of a key with arguments: "elu:alpha=0.5" -> "elu" (an unknown or malformed
    key is returned whole, for the validation to name)."""
    try:
        return split_key(key)[0]
    except ValueError:
        return key


# Output activations whose values a loss cannot use, and why (the loss's input is the last layer's output).
NONNEGATIVE_OUTPUTS = ("sigmoid", "softmax", "relu", "softplus", "hardsigmoid")


def _check_output_fits_loss(loss, output, layers=()):
    """Refuse a last layer the loss cannot take, with the fix (with a layers list: where it goes)."""
    last = _LAST if layers else ""
    if loss in ("cross_entropy", "bce_with_logits") and output != "identity":
        inside = "softmax" if loss == "cross_entropy" else "sigmoid"
        what = "it would be applied twice" if output == inside else "the network's output would not be logits"
        raise SpecError(f"{loss} applies {inside} to logits itself; with output activation {output!r} {what}. Use "
                        f"output activation 'identity'{last}")
    if loss == "nll" and output != "log_softmax":
        raise SpecError(f"nll takes log-probabilities; output activation {output!r} does not give them. Use "
                        f"output activation 'log_softmax'{last} (or cross_entropy on logits)")
    if loss == "bce" and output not in ("sigmoid", "softmax"):
        raise SpecError(f"bce takes probabilities: use output activation 'sigmoid'{last} (or bce_with_logits on "
                        "logits)")
    if loss == "hinge" and output in NONNEGATIVE_OUTPUTS + ("log_softmax",):
        sign = "above" if output == "log_softmax" else "below"
        raise SpecError(f"hinge takes scores of either sign (labels are -1 and +1); {output!r} never goes {sign} 0, "
                        f"so every example of one class stays misclassified. Use output activation 'identity'{last}")


# With a layers list the output activation is its last layer's.
_LAST = " (with layers: end the list with it, or with the last linear layer for identity)"


def _check_keys(spec):
    """Each activation and loss key, with its arguments, built on the manual side (which checks them
    as torch does), so that a bad argument is named before anything runs."""
    for key, build, what in ((spec.activation, make_activation, "activation"),
                             (spec.output_activation, make_activation, "output activation"),
                             (spec.loss, make_loss, "loss")):
        try:
            build(key)
        except (ValueError, TypeError) as e:
            raise SpecError(f"{what} {key!r}: {e}") from None


def _check_arguments(spec):
    """The optimizer's, schedule's and initialiser's arguments, tried on the manual side's own classes
    (which check them as torch does), so that a bad one is named before anything runs."""
    for name, args in (("optimizer_args", spec.optimizer_args), ("schedule_args", spec.schedule_args),
                       ("init_args", spec.init_args)):
        _finite_numbers(name, args)
    if "total_steps" in spec.schedule_args and not _is_int(spec.schedule_args["total_steps"]):
        raise SpecError(f"schedule_args['total_steps'] must be an integer, got {spec.schedule_args['total_steps']!r}")
    try:
        optimizer = make_optimizer(spec.optimizer, [Parameter(np.zeros(1))], lr=spec.lr, **spec.optimizer_args)
    except (ValueError, TypeError) as e:
        takes = optimizer_arguments(spec.optimizer)
        raise SpecError(f"optimizer_args for {spec.optimizer}: {e}; it takes {', '.join(takes)}") from None
    try:
        make_scheduler(spec.schedule, optimizer, **schedule_arguments(spec))
    except (ValueError, TypeError) as e:
        takes = arguments_of(SCHEDULERS, spec.schedule, ("optimizer",))
        fix = (" (--no-cycle-momentum, cycle_momentum = false, for an optimizer without one)"
               if "cycle_momentum" in str(e) else "")
        missing = re.findall(r"'(\w+)'", str(e).split("missing", 1)[1]) if "required positional" in str(e) else []
        if missing:        # the command line's flag is the argument's name: T_max is --t-max
            fix = "; give " + " and ".join(f"--{m.lower().replace('_', '-')} (schedule_args {m})" for m in missing)
        raise SpecError(f"schedule_args for the {spec.schedule} schedule: {e}; it takes "
                        f"{', '.join(takes) or 'no arguments'}{fix}") from None
    takes = arguments_of(INITIALISERS, spec.init, ("rng", "shape"))
    unknown = sorted(set(spec.init_args) - set(takes))
    if unknown:
        raise SpecError(f"init_args for {spec.init}: unknown {', '.join(unknown)}; it takes "
                        f"{', '.join(takes) or 'no arguments'}")
    try:
        INITIALISERS[spec.init](np.random.default_rng(0), (2, 2), **spec.init_args)
    except (ValueError, TypeError) as e:
        raise SpecError(f"init_args for {spec.init}: {e}; it takes {', '.join(takes) or 'no arguments'}") from None
    if spec.initial_params is not None and not isinstance(spec.initial_params, dict):
        raise SpecError(f"initial_params must be a dict {{parameter name: values}}, got "
                        f"{type(spec.initial_params).__name__}")


def _check_layers(spec):
    """A layers list: every layer parses (kind and arguments), and hidden_sizes is not given too.
    Its shapes are checked with the data (compare.network.layers.resolve, from prepare)."""
    if not isinstance(spec.layers, tuple) or not spec.layers:
        raise SpecError(f"layers must be a list of layer texts such as ['linear(16)', 'relu'], got {spec.layers!r}")
    if spec.hidden_sizes:
        raise SpecError(f"layers writes the whole network; hidden_sizes {spec.hidden_sizes!r} is its short form for "
                        "a dense one: give one of them")
    parse_layers(spec.layers)


@dataclass(frozen=True)
class ExperimentSpec:
    dataset: str = "or"                    # a compare.data.datasets key
    dataset_args: dict = field(default_factory=dict)   # e.g. {"noise": 0.1}
    hidden_sizes: tuple = ()               # () is a single layer: inputs -> outputs
    activation: str = "sigmoid"            # hidden layers; a key with torch's arguments: "elu:alpha=0.5"
    layers: tuple = ()                     # the whole network instead: ("flatten", "linear(10)", ...); see layers.py
    input_shape: tuple = ()                # one example's shape, e.g. (1, 8, 8); (): the data's rows as they are
    output_activation: str = "sigmoid"
    loss: str = "squared_error"            # or "cross_entropy:label_smoothing=0.1,weight=1,2,3"
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

    def __post_init__(self):
        # a layers list may be written as one string, "linear(16) relu linear(1)"
        if isinstance(self.layers, (str, list)):
            object.__setattr__(self, "layers", as_layers(self.layers))
        if isinstance(self.input_shape, list):
            object.__setattr__(self, "input_shape", tuple(self.input_shape))

    @property
    def final_activation(self):
        """The registry name of the activation the network's output comes out of (with ``layers``: the
        list's last one): "elu" for output_activation "elu:alpha=0.5"."""
        return final_activation(self.layers) if self.layers else key_name(self.output_activation)

    def validate(self):
        """Raise SpecError naming the first field that makes no sense, and the fix."""
        for key in (self.activation, self.output_activation, self.loss):
            if not isinstance(key, str):
                raise SpecError(f"activations and losses are named by a registry key such as 'relu' or "
                                f"'elu:alpha=0.5', got {key!r}")
        activation, output, loss = (key_name(k) for k in (self.activation, self.output_activation, self.loss))
        for value, registry, what in ((activation, ACTIVATIONS, "activation"),
                                      (output, ACTIVATIONS, "output activation"),
                                      (loss, LOSSES, "loss"),
                                      (self.optimizer, OPTIMIZERS, "optimizer"),
                                      (self.schedule, SCHEDULERS, "schedule"),
                                      (self.init, INITIALISERS, "initialiser"),
                                      (self.dtype, DTYPES, "dtype")):
            if value not in registry:
                raise SpecError(f"unknown {what} {value!r}; choose one of: {', '.join(registry)}")
        _check_keys(self)
        if self.layers:
            _check_layers(self)
            output = self.final_activation
        if (output == "step" or (self.hidden_sizes and activation == "step")
                or any(layer.kind == "step" for layer in parse_layers(self.layers))):
            raise SpecError("the step activation has no useful derivative, so it cannot be trained by "
                            "backpropagation; use 'sigmoid' (a smooth step) to train")
        if not (_is_real(self.lr) and math.isfinite(self.lr) and self.lr > 0):
            raise SpecError(f"learning rate must be a positive number (finite), got {self.lr!r}")
        if not (_is_int(self.epochs) and 1 <= self.epochs <= MAX_EPOCHS):
            raise SpecError(f"epochs must be an integer from 1 to {MAX_EPOCHS:,}, got {self.epochs!r}")
        if self.batch_size is not None and not (_is_int(self.batch_size) and self.batch_size >= 1):
            raise SpecError(f"batch size must be a positive integer (or omitted for the full batch), "
                            f"got {self.batch_size!r}")
        if not (_is_int(self.seed) and 0 <= self.seed <= MAX_SEED):
            raise SpecError(f"seed must be an integer from 0 to {MAX_SEED} (2^32 - 1), got {self.seed!r}")
        if any(not _is_int(h) or h < 1 for h in self.hidden_sizes):
            raise SpecError(f"hidden sizes must be positive integers, got {self.hidden_sizes!r}")
        if not isinstance(self.input_shape, tuple) or any(not _is_int(s) or s < 1 for s in self.input_shape):
            raise SpecError(f"input_shape must be positive integers such as (1, 8, 8), got {self.input_shape!r}")
        if not (self.device in ("cpu", "cuda", "auto") or
                (self.device.startswith("cuda:") and self.device[5:].isdigit())):
            raise SpecError(f"unknown device {self.device!r}; choose cpu, cuda, cuda:N or auto")
        _check_output_fits_loss(loss, output, self.layers)
        _check_arguments(self)
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
