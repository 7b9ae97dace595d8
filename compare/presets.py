"""Named experiments: each runs both implementations on one of the seeds' examples.

A preset is one or more runs (``runs``: label -> ExperimentSpec) and what each must reach
(``expect``: label -> Expectation). ``backprop-oracle list`` prints them.
"""
from dataclasses import dataclass, field

from compare.spec import ExperimentSpec, SpecError


@dataclass(frozen=True)
class Expectation:
    """What a run must reach, e.g. Expectation("accuracy", ">=", 0.95) or ("final_cost", "<=", 1e-3).

    "accuracy" is validation accuracy where the data set has a validation split, else training
    accuracy; "final_cost" is the cost of the final parameters on the whole training set.
    """
    metric: str
    op: str
    bound: float

    def check(self, result):
        """(ok, value) for the manual side's figure (the sides agree, or the run fails anyway)."""
        value = {"accuracy": result.accuracy_manual, "final_cost": result.final_cost_manual}[self.metric]
        if value is None:
            return False, None
        return (value >= self.bound if self.op == ">=" else value <= self.bound), value

    def __str__(self):
        return f"{self.metric} {self.op} {self.bound:g}"


@dataclass(frozen=True)
class Preset:
    name: str
    description: str            # names the seed concept it demonstrates
    runs: dict                  # label -> ExperimentSpec; the label "" is the preset itself
    expect: dict = field(default_factory=dict)   # label -> Expectation

    def run_names(self):
        return [self.name if label == "" else f"{self.name}:{label}" for label in self.runs]


OR_GATE = ExperimentSpec(
    dataset="or",
    hidden_sizes=(),
    output_activation="sigmoid",
    loss="squared_error",
    optimizer="sgd",
    lr=1.0,                       # α = 1, as the seed
    epochs=5000,
    batch_size=None,              # full-batch gradient descent
    shuffle=False,
    initial_params={"0.weight": [[0.1, 0.6]], "0.bias": [0.0]},   # w1 = 0.1, w2 = 0.6, b = 0
)

PRESETS = {p.name: p for p in [
    Preset(
        "or-gate",
        "One sigmoid unit learns OR by full-batch gradient descent on the ½-squared-error cost, "
        "from w = [0.1, 0.6], b = 0 with α = 1 (seed 004, the worked OR-gate example). "
        "Cost 0.089 -> about 0.0005 after 5000 epochs; accuracy 1.0.",
        {"": OR_GATE},
        {"": Expectation("accuracy", ">=", 1.0)},
    ),
]}


def get_preset(name):
    """The preset registered under ``name``; an unknown name lists the valid ones."""
    if name not in PRESETS:
        raise SpecError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)} (or 'all')")
    return PRESETS[name]
