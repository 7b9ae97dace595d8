"""What a run is set up with, on either side or both: the data set with its targets encoded for the
loss and the network sized to it, the initial weights, the batch order, and how a side's
parameters are evaluated. The lockstep run and the torch-only run share all of it, so that both
start from the same numbers."""
from dataclasses import dataclass

import numpy as np

from backprop_oracle import manual
from backprop_oracle.compare.data.datasets import load_dataset
from backprop_oracle.compare.data.targets import accuracy, encode_targets
from backprop_oracle.compare.network.layers import network_of
from backprop_oracle.compare.experiments.spec import SpecError, key_name


@dataclass
class Problem:
    """The arrays a run trains and validates on, with targets encoded for its loss."""
    X: np.ndarray
    Y: np.ndarray
    labels: np.ndarray | None
    X_val: np.ndarray | None
    Y_val: np.ndarray | None
    labels_val: np.ndarray | None
    task: str
    sizes: tuple            # (inputs, hidden..., outputs); of a layers list: inputs, its linear layers', outputs
    network: object = None  # the checked layers (compare.network.layers.Network)


def prepare(spec, dataset=None):
    """Load (or take) the data set, encode its targets for the spec's loss and size the network."""
    spec.validate()
    ds = dataset if dataset is not None else load_dataset(spec.dataset, seed=spec.seed, **spec.dataset_args)
    dt = manual.as_dtype(spec.dtype)
    classification = ds.task != "regression"

    def encode(y):
        if y is None:
            return None
        return encode_targets(y, spec.loss, ds.num_classes, dtype=spec.dtype)

    Y = encode(ds.y_train)
    outputs = ds.num_classes if Y.ndim == 1 else Y.shape[1]
    sizes = (ds.X_train.shape[1], *spec.hidden_sizes, outputs)
    n = ds.X_train.shape[0]
    shape = _example_shape(spec, ds)
    network = network_of(spec, sizes)            # every layer's shape checked: SpecError names the one that does not fit
    sizes = network.sizes
    if spec.batch_size is not None and spec.batch_size > n:
        raise SpecError(f"batch size {spec.batch_size} is larger than the {n} training examples of "
                        f"{spec.dataset}; use at most {n} (or omit it for the full batch)")
    loss = manual.make_loss(spec.loss)
    for arg, allowed in (("weight", (outputs,)), ("pos_weight", (1, outputs))):
        value = getattr(loss, arg, None)
        if value is not None and value.size not in allowed:
            raise SpecError(f"{spec.loss}: {arg} holds {value.size} number(s) but the network has {outputs} "
                            f"output(s) ({'one per class' if arg == 'weight' else 'one, or one per output'}); "
                            f"give {' or '.join(map(str, allowed))}")
    output = spec.final_activation           # a registry name: the layers list's last, or output_activation's
    if output in ("softmax", "log_softmax") and outputs == 1:
        raise SpecError(f"{output} over a single output is always {1 if output == 'softmax' else 0}, so nothing "
                        f"can be learned; with one output use 'sigmoid'"
                        f"{' (bce takes probabilities)' if key_name(spec.loss) == 'bce' else ''}")
    return Problem(
        X=ds.X_train.astype(dt).reshape((n,) + shape), Y=Y, labels=ds.y_train if classification else None,
        X_val=None if ds.X_val is None else ds.X_val.astype(dt).reshape((-1,) + shape), Y_val=encode(ds.y_val),
        labels_val=ds.y_val if classification and ds.y_val is not None else None,
        task=ds.task, sizes=sizes, network=network)


def _example_shape(spec, ds):
    """The shape of one example: ``spec.input_shape`` (its rows reshaped to it), else a row's."""
    features = ds.X_train.shape[1]
    if spec.input_shape and int(np.prod(spec.input_shape)) != features:
        raise SpecError(f"input_shape {list(spec.input_shape)} holds {int(np.prod(spec.input_shape))} numbers but "
                        f"each example of {spec.dataset} has {features}; give a shape whose product is {features}")
    return tuple(spec.input_shape) or (features,)


def initial_state(spec, sizes, rng):
    """The initial parameters of ``spec``'s network, {name: array}, drawn from ``rng`` (explicit
    values where the spec gives them). Both sides, and a torch-only run, start from these."""
    template = network_of(spec, sizes).manual()
    for name, value in (spec.initial_params or {}).items():
        try:
            value = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise SpecError(f"initial_params[{name!r}] is not an array of numbers") from None
        if not np.isfinite(value).all():
            raise SpecError(f"initial_params[{name!r}] holds NaN or infinity; give finite starting values")
    try:
        return manual.init_parameters(template, spec.init, rng, explicit=spec.initial_params, dtype=spec.dtype,
                                      **spec.init_args)
    except (KeyError, ValueError) as e:      # unknown names, wrong shapes: the message says which
        raise SpecError(f"initial_params: {e.args[0] if e.args else e}") from None


def decision_threshold(loss):
    """Where a one-column output switches from class 0 to 1: 0 for hinge's scores and bce_with_logits'
    logits, 0.5 for probabilities."""
    return 0.0 if key_name(loss) in ("hinge", "bce_with_logits") else 0.5


def evaluate(side, problem, split, threshold):
    """(cost, accuracy) of a side's current parameters on a whole split ("train" or "val");
    accuracy is None for regression."""
    cost, out = side.evaluate(split)
    labels = problem.labels if split == "train" else problem.labels_val
    if labels is None or problem.task == "regression":
        return cost, None
    return cost, float(accuracy(out, labels, problem.task, threshold=threshold))


def default_eval_every(epochs):
    """Accuracy and validation cost are measured about 100 times a run (and always at the end):
    at every one of the OR gate's 5000 one-step epochs they would cost more than training."""
    return max(1, epochs // 100)


def epoch_batches(rng, n, batch_size, shuffle=True):
    """One epoch's batches of indices into n examples: a permutation drawn from ``rng`` (or
    0..n-1 in order), cut into batches of ``batch_size`` (None: one batch of all n)."""
    order = rng.permutation(n) if shuffle else np.arange(n)
    size = n if batch_size is None else batch_size
    return [order[i:i + size] for i in range(0, n, size)]


# Data sets with no randomness: the truth tables.
FIXED_DATASETS = ("or", "and", "xor")


def seed_matters(spec):
    """Whether ``spec.seed`` changes anything: the data, the initial weights or the batch order. It
    does not for the OR gate of the article: given weights, a truth table, the whole batch in order."""
    if spec.dataset not in FIXED_DATASETS:
        return True
    problem = prepare(spec)
    if spec.shuffle and spec.batch_size is not None and spec.batch_size < problem.X.shape[0]:
        return True
    names = {n for n, _ in problem.network.manual().named_parameters()}
    return not names <= set(spec.initial_params or {})
