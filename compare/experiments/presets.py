"""Named experiments: each runs both implementations on one of the teaching texts' examples (SOURCES).

A preset is one or more runs (``runs``: label -> ExperimentSpec) and what each must reach
(``expect``: label -> Expectation). ``backprop-oracle list`` prints them. Every figure quoted in
a description is what the preset reaches in float64 with its own hyperparameters; the tests in
tests/test_presets.py hold each preset to its Expectation.
"""
import difflib
from dataclasses import dataclass, field, replace

from backprop_oracle.compare.experiments.spec import ExperimentSpec, SpecError

# The teaching texts the presets come from, by the names the descriptions use (README: Sources).
SOURCES = {
    "the OR-gate article": "\"Nothing but NumPy: Understanding & Creating Neural Networks with Computational "
                           "Graphs from Scratch\" (Towards AI), Part I: the OR-gate worked example",
    "the 3Blue1Brown notes": "notes on 3Blue1Brown's \"But what is a neural network?\": digits, 784-16-16-10",
    "the concept overview": "\"Neural Networks Concept Overview\" course notes: loss functions, ReLU, softmax, "
                            "gradient descent",
    "the lecture notes": "neural-network lecture notes: XOR and hidden layers, momentum, digits",
    "the introduction notebook": "an introduction-to-neural-networks notebook: neuron structure, the binary "
                                 "Softmax and SVM classifiers",
}


@dataclass(frozen=True)
class Expectation:
    """What a run must reach, e.g. Expectation("accuracy", ">=", 0.95) or ("final_cost", "<=", 1e-3),
    or that it diverges: Expectation("diverges").

    "accuracy" is validation accuracy where the data set has a validation split, else training
    accuracy; "final_cost" is the cost of the final parameters on the whole training set;
    "gap" is the generalisation gap, training accuracy minus validation accuracy (both of the final
    parameters, in eval mode); "diverges" is met by a run that diverged (its value is the step it
    diverged at).
    """
    metric: str
    op: str = ""
    bound: float = 0.0

    METRICS = ("accuracy", "final_cost", "gap", "diverges")

    def check(self, result):
        """(ok, value) for the manual side's figure (the sides agree, or the run fails anyway)."""
        if self.metric == "diverges":
            step = None if result.divergence is None else result.divergence.step
            return step is not None, step
        if self.metric == "gap":
            train, val = result.train_accuracy_manual, result.val_accuracy_manual
            value = None if train is None or val is None else train - val
        else:
            value = {"accuracy": result.accuracy_manual, "final_cost": result.final_cost_manual}[self.metric]
        if value is None:
            return False, None
        return (value >= self.bound if self.op == ">=" else value <= self.bound), value

    def reached(self, value):
        """What the run reached, in words: "reached 0.0245", "diverged at step 6"."""
        if self.metric == "diverges":
            return "did not diverge" if value is None else f"diverged at step {value}"
        return f"reached {value if value is None else format(value, '.4g')}"

    def __str__(self):
        return "diverges" if self.metric == "diverges" else f"{self.metric} {self.op} {self.bound:g}"


@dataclass(frozen=True)
class Preset:
    name: str
    description: str            # names the source and the concept it demonstrates
    runs: dict                  # label -> ExperimentSpec; the label "" is the preset itself
    expect: dict = field(default_factory=dict)   # label -> Expectation
    fixed: tuple = ()           # spec fields the preset is about: overriding them is an error
    notes: tuple = ()           # what changing it dropped (compare.experiments.sweep.expand), to tell the user
    picture: str = "cost"       # its runs on one plot: "cost" per epoch, or "generalisation": training
                                # and validation accuracy per epoch (compare.dashboards.plots)

    def run_names(self):
        """"or-gate", "xor:hidden"; a swept run's label starts with its values: "or-gate[lr=5]"."""
        return [self.name + label if label == "" or label.startswith("[") else f"{self.name}:{label}"
                for label in self.runs]


OR_GATE = ExperimentSpec(
    dataset="or",
    hidden_sizes=(),
    output_activation="sigmoid",
    loss="squared_error",
    optimizer="sgd",
    lr=1.0,                       # α = 1, as the article
    epochs=5000,
    batch_size=None,              # full-batch gradient descent
    shuffle=False,
    initial_params={"0.weight": [[0.1, 0.6]], "0.bias": [0.0]},   # w1 = 0.1, w2 = 0.6, b = 0
)

# AND needs a negative bias where OR's stays positive; from the same start it is separated
# (accuracy 1.0) from epoch 8 on, and 1000 epochs bring the cost down to 0.0061.
AND_GATE = replace(OR_GATE, dataset="and", epochs=1000)

# The lecture notes' update Δw_t = -α ∇ + μ Δw_{t-1} with α ≈ 0.3 and μ ≈ 0.6 (torch's SGD momentum is
# the same rule while α is constant). Full batch, squared error, as the OR gate.
XOR_SINGLE = ExperimentSpec(dataset="xor", hidden_sizes=(), loss="squared_error", optimizer="sgd", lr=0.3,
                            optimizer_args={"momentum": 0.6}, epochs=500, shuffle=False, seed=3)
# Two hidden units can separate XOR but often settle in a local minimum (the lecture notes: momentum
# "escapes local minima, not always"); from seed 3's weights they reach accuracy 1.0 by epoch
# 1500 and cost 0.016 at 2000.
XOR_HIDDEN = replace(XOR_SINGLE, hidden_sizes=(2,), epochs=2000)

# The 3Blue1Brown network: two hidden layers of 16 sigmoids, the summed squared error,
# mini-batch SGD. lr 3 with batches of 32, as Nielsen's book uses for the quadratic cost.
DIGITS = ExperimentSpec(dataset="digits", hidden_sizes=(16, 16), activation="sigmoid",
                        output_activation="sigmoid", loss="sum_squared_error", optimizer="sgd", lr=3.0,
                        batch_size=32, epochs=16, seed=1)

DIGITS_SOFTMAX = ExperimentSpec(dataset="digits", hidden_sizes=(32,), activation="relu",
                                output_activation="identity",   # cross_entropy applies the softmax
                                loss="cross_entropy", optimizer="adam", lr=0.01, batch_size=32, epochs=10,
                                init="he_uniform", seed=2)

# noise 0.15 rather than make_moons' usual 0.2: at 0.2 the 100 validation points cost 0.92..0.99
# depending on the seed; at 0.15 every seed 0..4 gives 0.97 or more.
MOONS = ExperimentSpec(dataset="moons", dataset_args={"noise": 0.15}, hidden_sizes=(16, 16),
                       activation="relu", output_activation="sigmoid", loss="bce", optimizer="sgd", lr=0.1,
                       optimizer_args={"momentum": 0.9}, schedule="exponential", schedule_args={"gamma": 0.95},
                       batch_size=32, epochs=30, init="he_uniform", seed=0)

CIRCLES = ExperimentSpec(dataset="circles", hidden_sizes=(8,), activation="tanh", output_activation="sigmoid",
                         loss="bce", optimizer="sgd", lr=0.1, optimizer_args={"momentum": 0.9},
                         batch_size=32, epochs=20, seed=0)

# Two Gaussian blobs with std 2.5 overlap a little (seed 1 places the centers): a straight line
# gets about 0.95 of them, so the linear classifiers have something to get wrong.
TWO_BLOBS = {"centers": 2, "n_samples": 200, "noise": 2.5}
LOGISTIC = ExperimentSpec(dataset="blobs", dataset_args=TWO_BLOBS, hidden_sizes=(), output_activation="sigmoid",
                          loss="bce", optimizer="sgd", lr=0.05, optimizer_args={"weight_decay": 1e-2},
                          batch_size=16, epochs=20, seed=1)
SVM = replace(LOGISTIC, output_activation="identity", loss="hinge")

SPIRAL = ExperimentSpec(dataset="spiral", hidden_sizes=(32,), activation="relu", output_activation="identity",
                        loss="cross_entropy", optimizer="sgd", lr=0.1, optimizer_args={"momentum": 0.9},
                        batch_size=32, epochs=60, init="he_uniform", seed=0)

REGRESSION = ExperimentSpec(dataset="sine", hidden_sizes=(16,), activation="tanh", output_activation="identity",
                            loss="mse", optimizer="sgd", lr=0.1, optimizer_args={"momentum": 0.9},
                            batch_size=32, epochs=100, seed=0)

# 48 training points of the moons, so that SGD's 48 steps an epoch stay cheap.
SMALL_MOONS = ExperimentSpec(dataset="moons", dataset_args={"n_samples": 60, "noise": 0.1}, hidden_sizes=(8,),
                             activation="tanh", output_activation="sigmoid", loss="bce", optimizer="sgd", lr=0.5,
                             epochs=20, seed=4)

# The learning rate α on one network, full-batch gradient descent so that nothing but α differs:
# too small crawls, a good one converges, too large overshoots the minimum by more each step.
SINE_GD = replace(REGRESSION, optimizer_args={}, batch_size=None, epochs=200)

# The optimizers on one network: the regression preset's 1-16-1 tanh fit, mini-batches of 32, the
# same start and batch order; each optimizer with its usual rate (torch's defaults otherwise).
SINE_20 = replace(REGRESSION, optimizer_args={}, epochs=20)
OPTIMIZER_RUNS = {
    "sgd": replace(SINE_20, optimizer="sgd", lr=0.1),
    "momentum": replace(SINE_20, optimizer="sgd", lr=0.1, optimizer_args={"momentum": 0.9}),
    "rmsprop": replace(SINE_20, optimizer="rmsprop", lr=0.01),
    "adam": replace(SINE_20, optimizer="adam", lr=0.01),
    "adamw": replace(SINE_20, optimizer="adamw", lr=0.01),
}


# The activation alone changes: a 2-16-16-1 network on the moons, one start, plain mini-batch SGD.
ACTIVATION_MOONS = ExperimentSpec(dataset="moons", dataset_args={"noise": 0.15}, hidden_sizes=(16, 16),
                                  activation="relu", output_activation="sigmoid", loss="bce", optimizer="sgd",
                                  lr=0.5, batch_size=32, epochs=20, init="xavier_uniform", seed=0)


# Two convolution-ReLU-pool blocks and a linear layer on the 8x8 digits as images (N, 1, 8, 8):
# 8x8 -> 8 channels, pooled to 4x4 -> 16 channels, pooled to 2x2 -> 64 features -> 10 logits.
CNN_LAYERS = ("conv(8, 3, padding=1)", "relu", "maxpool(2)", "conv(16, 3, padding=1)", "relu", "maxpool(2)",
              "flatten", "linear(10)")
DIGITS_CNN = ExperimentSpec(dataset="digits", layers=CNN_LAYERS, input_shape=(1, 8, 8),
                            output_activation="identity",     # the last linear layer gives the logits
                            loss="cross_entropy", optimizer="adam", lr=0.02, batch_size=64, epochs=5,
                            init="kaiming_uniform", seed=1)
# On MNIST's 28x28 images: 5x5 kernels, 28 -> 14 -> 7 after the pools, 16 x 7 x 7 = 784 features.
MNIST_CNN_LAYERS = ("conv(8, 5, padding=2)", "relu", "maxpool(2)", "conv(16, 5, padding=2)", "relu", "maxpool(2)",
                    "flatten", "linear(10)")


def deep_sigmoid(width, depth, norm):
    """``depth`` sigmoid hidden layers of ``width`` units, each with batch norm between its linear
    map and its sigmoid where ``norm`` (the batch-norm paper's place: normalise what goes in). A bias
    before batch norm is subtracted again with the batch mean (its gradient is 0 but for rounding),
    so there the linear map has none, and batch norm's shift is the bias; the weights start the same."""
    block = (f"linear({width}, bias=False)", "batchnorm", "sigmoid") if norm else (f"linear({width})", "sigmoid")
    return block * depth + ("linear(10)",)


# Six sigmoid layers on the digits, plain mini-batch SGD: the batch-norm layers alone differ.
DEEP_SIGMOID = ExperimentSpec(dataset="digits", layers=deep_sigmoid(16, 6, False), output_activation="identity",
                              loss="cross_entropy", optimizer="sgd", lr=1.0, batch_size=128, epochs=10, seed=0)

# Few noisy moons (200 to train on, 200 to validate), a wide 2-128-128-1 ReLU network, Adam on the
# full batch for long enough to learn the noise; with dropout(0.5) after each hidden layer.
NOISY_MOONS = {"n_samples": 400, "noise": 0.35, "val_fraction": 0.5}


def wide_relu(p):
    """2-128-128-1: two ReLU layers of 128 and a sigmoid output, each hidden layer followed by
    dropout(p) where ``p``."""
    drop = (f"dropout({p})",) if p else ()
    return ("linear(128)", "relu") + drop + ("linear(128)", "relu") + drop + ("linear(1)", "sigmoid")


OVERFIT_MOONS = ExperimentSpec(dataset="moons", dataset_args=NOISY_MOONS, layers=wide_relu(0), loss="bce",
                               optimizer="adam", lr=0.015, batch_size=None, epochs=200, init="he_uniform", seed=0)


PRESETS = {p.name: p for p in [
    Preset(
        "or-gate",
        "One sigmoid unit learns OR by full-batch gradient descent on the ½-squared-error cost, "
        "from w = [0.1, 0.6], b = 0 with α = 1 (the OR-gate article's worked example). "
        "Cost 0.089 -> about 0.0005 after 5000 epochs; accuracy 1.0.",
        {"": OR_GATE},
        {"": Expectation("accuracy", ">=", 1.0)},
    ),
    Preset(
        "and-gate",
        "The OR gate's unit, start and α = 1 on AND (the OR-gate article: a linearly separable gate needs no "
        "hidden layer). The bias turns negative; cost 0.0061 after 1000 epochs, accuracy 1.0.",
        {"": AND_GATE},
        {"": Expectation("accuracy", ">=", 1.0)},
    ),
    Preset(
        "xor",
        "XOR is not linearly separable (the lecture notes: a hidden layer is needed when the problem is not "
        "linearly solvable). A single sigmoid unit ends at cost 0.125, every output near 0.5 "
        "(accuracy 0.75, the most a straight line can get); a 2-2-1 network with the lecture notes' learning rate "
        "0.3 and momentum 0.6 separates it: accuracy 1.0, cost 0.016 after 2000 epochs.",
        {"single-unit": XOR_SINGLE, "hidden": XOR_HIDDEN},
        {"single-unit": Expectation("accuracy", "<=", 0.75), "hidden": Expectation("accuracy", ">=", 1.0)},
    ),
    Preset(
        "digits",
        "The 3Blue1Brown network: 64-16-16-10 sigmoids, the summed squared error "
        "(cost of one image = sum of (output - wanted)^2), mini-batch SGD with lr 3 and batches of 32 on "
        "sklearn's 8x8 digits. Validation accuracy 0.955 after 16 epochs. With --mnist-dir it is the "
        "784-16-16-10 network on MNIST.",
        {"": DIGITS},
        {"": Expectation("accuracy", ">=", 0.90)},
    ),
    Preset(
        "digits-softmax",
        "The concept overview's classifier: a ReLU hidden layer (64-32-10), softmax output with the cross-entropy "
        "loss, Adam (lr 0.01), mini-batches of 32. The softmax lives in the loss (cross_entropy takes "
        "logits), so the last layer's activation is the identity. Validation accuracy 0.964 after 10 epochs.",
        {"": DIGITS_SOFTMAX},
        {"": Expectation("accuracy", ">=", 0.95)},
    ),
    Preset(
        "moons",
        "Two ReLU hidden layers (2-16-16-1), sigmoid output with binary cross-entropy, SGD with "
        "momentum 0.9 (the lecture notes) and the learning rate annealed by 0.95 an epoch (the "
        "OR-gate article's learning-rate decay; the concept overview's ReLU). Validation accuracy 0.99 after 30 epochs.",
        {"": MOONS},
        {"": Expectation("accuracy", ">=", 0.95)},
    ),
    Preset(
        "circles",
        "A circle inside a circle: one tanh hidden layer (2-8-1) bends the boundary into a ring "
        "(the lecture notes' hidden layer for a problem no line solves), bce, SGD with momentum 0.9. "
        "Validation accuracy 1.0 after 20 epochs (goal 0.95).",
        {"": CIRCLES},
        {"": Expectation("accuracy", ">=", 0.95)},
    ),
    Preset(
        "logistic",
        "The introduction notebook's binary Softmax classifier: one sigmoid neuron read as P(y = 1 | x) with the "
        "cross-entropy (bce) loss, i.e. logistic regression, with L2 regularisation (weight decay "
        "0.01, the notebook's 'gradual forgetting'). Two overlapping blobs: validation accuracy 0.95.",
        {"": LOGISTIC},
        {"": Expectation("accuracy", ">=", 0.90)},
    ),
    Preset(
        "svm",
        "The introduction notebook's binary SVM: one linear neuron (no activation) with the max-margin hinge loss "
        "max(0, 1 - y s) on labels -1/+1, L2 weight decay 0.01. The same blobs as 'logistic': "
        "validation accuracy 0.975.",
        {"": SVM},
        {"": Expectation("accuracy", ">=", 0.90)},
    ),
    Preset(
        "spiral",
        "Three interleaved spiral arms (the cs231n data): no line separates them. A ReLU hidden "
        "layer (2-32-3), softmax with cross-entropy on the logits (the concept overview's multi-class output; "
        "the introduction notebook's Softmax classifier with more than two classes), mini-batch SGD with momentum. "
        "Validation accuracy 1.0 (training 0.983) after 60 epochs.",
        {"": SPIRAL},
        {"": Expectation("accuracy", ">=", 0.95)},
    ),
    Preset(
        "regression",
        "Regression (the concept overview's mean squared error): a tanh hidden layer (1-16-1) with an identity "
        "output fits y = sin(x) + 0.1 noise; the noise alone costs 0.01. Final training mse 0.014 "
        "after 100 epochs of mini-batch SGD with momentum.",
        {"": REGRESSION},
        {"": Expectation("final_cost", "<=", 0.02)},
    ),
    Preset(
        "sgd-vs-batch",
        "Batch, stochastic and mini-batch gradient descent (the 3Blue1Brown notes, the concept overview, the OR-gate article): the same 2-8-1 "
        "network, start and lr 0.5 for 20 epochs on 48 moons, one batch of 48 (20 updates), batches "
        "of 1 (960 updates) and of 8 (120 updates). Final costs 0.35, 0.025 and 0.24; the three cost "
        "curves are in the --json report.",
        {"batch": replace(SMALL_MOONS, batch_size=None), "sgd": replace(SMALL_MOONS, batch_size=1),
         "mini-batch": replace(SMALL_MOONS, batch_size=8)},
        {"batch": Expectation("final_cost", "<=", 0.40), "sgd": Expectation("final_cost", "<=", 0.05),
         "mini-batch": Expectation("final_cost", "<=", 0.30)},
        fixed=("batch_size",),
    ),
    Preset(
        "learning-rate",
        "The learning rate α (the OR-gate article, the concept overview's gradient descent): the regression "
        "preset's 1-16-1 tanh network, full-batch gradient descent for 200 epochs from the same start with "
        "α = 0.01, 0.1 and 0.5. Too small crawls (cost 0.109), a good α converges (0.0245), too large "
        "overshoots further each step and diverges at step 6, on both sides alike.",
        {"small": replace(SINE_GD, lr=0.01), "good": replace(SINE_GD, lr=0.1),
         "too-large": replace(SINE_GD, lr=0.5)},
        {"small": Expectation("final_cost", ">=", 0.1), "good": Expectation("final_cost", "<=", 0.03),
         "too-large": Expectation("diverges")},
        fixed=("lr",),
    ),
    Preset(
        "optimizers",
        "The family of update rules (the lecture notes' momentum, then the adaptive rates that end in Adam): the "
        "regression preset's 1-16-1 tanh network fitted for 20 epochs of mini-batches by SGD (lr 0.1), "
        "momentum 0.9 (lr 0.1), RMSprop, Adam and AdamW (lr 0.01, torch's other defaults), from the same "
        "start; their costs on one plot. Momentum gets ahead first and ends lowest (cost 0.0187); SGD ends at "
        "0.0295, RMSprop at 0.0294, Adam at 0.0273, AdamW, whose decoupled weight decay of 0.01 barely shows "
        "here, at 0.0274. Every update is compared with torch.optim at every step.",
        OPTIMIZER_RUNS,
        {k: Expectation("final_cost", "<=", 0.035) for k in OPTIMIZER_RUNS},
        fixed=("optimizer",),
    ),
    Preset(
        "activations",
        "The activation function (the concept overview: step, sigmoid, ReLU, ... bring the non-linearity): the "
        "same 2-16-16-1 network on the moons from the same start, plain mini-batch SGD, lr 0.5, 20 epochs, "
        "with sigmoid, tanh, ReLU and GELU hidden layers. Sigmoid's slope is at most 1/4, so its gradient "
        "shrinks through two layers and it has barely left its plateau (final cost 0.330, validation 0.85); "
        "tanh reaches 0.092, ReLU 0.066, GELU 0.196. Their cost curves are side by side in pictures/runs.",
        {act: replace(ACTIVATION_MOONS, activation=act) for act in ("sigmoid", "tanh", "relu", "gelu")},
        {"sigmoid": Expectation("final_cost", ">=", 0.3), "tanh": Expectation("final_cost", "<=", 0.1),
         "relu": Expectation("final_cost", "<=", 0.08), "gelu": Expectation("final_cost", "<=", 0.25)},
        fixed=("activation",),
    ),
    Preset(
        "digits-cnn",
        "The 3Blue1Brown notes' digits as images: where a dense network gives every pixel an input neuron of its "
        "own (the lecture notes), a convolution looks at each 3x3 patch with one set of weights, wherever it is. "
        "Two blocks of a 3x3 convolution, ReLU and a 2x2 max-pool (1 -> 8 -> 16 channels, 8x8 -> 4x4 -> 2x2), "
        "then a linear layer to 10 logits, softmax with cross-entropy (the concept overview), Adam (lr 0.02), "
        "batches of 64. Every convolution's and pool's forward and backward is "
        "compared element by element. Validation accuracy 0.986 after 5 epochs. With --mnist-dir it is the "
        "28x28 network on MNIST (5x5 kernels, 28x28 -> 14x14 -> 7x7).",
        {"": DIGITS_CNN},
        {"": Expectation("accuracy", ">=", 0.95)},
    ),
    Preset(
        "batchnorm",
        "Why batch normalisation was invented: six sigmoid hidden layers of 16 on the digits (64-16x6-10), "
        "softmax with cross-entropy, plain mini-batch SGD (lr 1, batches of 128), 10 epochs, from the same "
        "start, without and with a batch-norm layer between each linear map and its sigmoid (the map then "
        "without its bias, which batch norm's shift replaces). Sigmoid's slope "
        "is at most 1/4 (the concept overview's activations), so the plain network's gradient fades through "
        "six layers and it stays on its plateau: cost 2.33, ln 10 = 2.30 being the cost of a guess, "
        "validation accuracy 0.10. Normalised, each layer's inputs keep mean 0 and variance 1 (then its own "
        "scale and shift), its sigmoids stay where their slope is, and it trains: cost 0.334, validation "
        "0.866. The running statistics are compared after every step too.",
        {"without": DEEP_SIGMOID, "with": replace(DEEP_SIGMOID, layers=deep_sigmoid(16, 6, True))},
        {"without": Expectation("final_cost", ">=", 2.2), "with": Expectation("final_cost", "<=", 0.4)},
        fixed=("layers", "hidden_sizes"),
    ),
    Preset(
        "dropout",
        "Overfitting, and dropout against it (the introduction notebook: a network is judged on a validation "
        "set it never trained on, and regularised to prevent overfitting): 200 noisy moons (noise 0.35) to "
        "train on, 200 to validate, a wide 2-128-128-1 ReLU network, bce, Adam (lr 0.015) on the full batch for "
        "200 epochs, from the same start, without and with dropout(0.5) after each hidden layer. Without, it "
        "learns the noise: training accuracy 0.940, validation 0.835, a gap of 0.105. With, a new random half of "
        "the units is silenced at every step (the same mask on both sides) and it generalises: training 0.880, "
        "validation 0.875, a gap of 0.005. Their training and validation accuracy per epoch are on one plot.",
        {"without": OVERFIT_MOONS, "with": replace(OVERFIT_MOONS, layers=wide_relu(0.5))},
        {"without": Expectation("gap", ">=", 0.08), "with": Expectation("gap", "<=", 0.05)},
        fixed=("layers", "hidden_sizes"),
        picture="generalisation",
    ),
]}


def get_preset(name):
    """The preset registered under ``name``, or under "PRESET:RUN" that preset with its one run;
    an unknown name suggests the closest and lists the valid ones."""
    base, _, label = str(name).partition(":")
    if base not in PRESETS:
        close = difflib.get_close_matches(base, PRESETS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise SpecError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)} (or 'all', or 'custom' for your own){hint}")
    preset = PRESETS[base]
    if not label:
        return preset
    if label not in preset.runs or label == "":
        runs = ", ".join(n for n in preset.run_names() if ":" in n) or f"none: {base} is a single run"
        raise SpecError(f"{base} has no run {label!r}; its runs are {runs}")
    # One run compares nothing with its siblings: what the preset is about (fixed) is free to change.
    return replace(preset, name=f"{base}:{label}", runs={"": preset.runs[label]}, fixed=(),
                   expect={"": preset.expect[label]} if label in preset.expect else {})


# No preset: ExperimentSpec's defaults, every part set by the command line's options.
CUSTOM = Preset("custom", "An experiment of your own: ExperimentSpec's defaults (one sigmoid unit on the OR "
                "gate, squared error, full-batch gradient descent with lr 1 for 100 epochs), every part set "
                "by the options: --dataset, --hidden, --activation, --loss, --optimizer, ...",
                {"": ExperimentSpec()})


def select_presets(names):
    """Presets for names given on the command line ("PRESET" or "PRESET:RUN"); "all" is every
    preset, in order; "custom" is ExperimentSpec's defaults (CUSTOM). Needs no torch, so a
    mistyped name is answered at once."""
    if not names:
        raise SpecError(f"name a preset to run, or 'all', or give --config FILE or --dataset NAME; "
                        f"presets: {', '.join(PRESETS)}")
    if "all" in names:
        return list(PRESETS.values())
    seen, out = set(), []
    for n in names:
        if n not in seen:
            out.append(CUSTOM if n == CUSTOM.name else get_preset(n))
            seen.add(n)
    return out


# The presets --mnist-dir switches to MNIST, and what each becomes there.
MNIST_PRESETS = {"digits": "the 784-16-16-10 network", "digits-cnn": "the 28x28 convolutional network"}


def on_mnist(preset, directory, limit=None):
    """A preset of MNIST_PRESETS on MNIST: the data set "mnist" read from ``directory`` (the four IDX
    files), its first ``limit`` training images, the same hyperparameters. The digits network
    becomes 784-16-16-10 by itself (its sizes follow the data); digits-cnn takes the 28x28 images
    (1, 28, 28) through 5x5 convolutions (MNIST_CNN_LAYERS)."""
    args = {"directory": str(directory)} if limit is None else {"directory": str(directory), "limit": limit}

    def switched(spec):
        spec = replace(spec, dataset="mnist", dataset_args=args)
        if spec.layers == CNN_LAYERS:
            spec = replace(spec, layers=MNIST_CNN_LAYERS, input_shape=(1, 28, 28))
        return spec
    return replace(preset, name=f"{preset.name}-mnist", runs={label: switched(spec) for label, spec in preset.runs.items()})
