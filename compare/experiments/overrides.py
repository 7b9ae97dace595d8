"""Changing a spec by the command line's names: every part of an experiment, one flat keyword each.

``with_changes(spec, lr=5, momentum=0.9, hidden_sizes=(32, 32))`` is what
``--lr 5 --momentum 0.9 --hidden 32,32`` does. The spec's own fields keep their names; the
optimizer's and the schedule's arguments are flat keywords (``momentum``, ``betas``, ``step_size``,
``gamma``, ...), merged into ``optimizer_args`` and ``schedule_args``. What belonged to the part
that was replaced goes with it, and a note says so:

- a new optimizer keeps the arguments it takes too (weight_decay) and drops the rest (SGD's
  momentum, Adam's betas): they belong to the old update rule;
- a new schedule drops the arguments it does not take;
- a new data set drops the old one's options (``dataset_args``);
- a new data set, hidden layers or initialiser drops the preset's given initial weights
  (``initial_params``: the OR gate's w = [0.1, 0.6]), which fit only the old network or say
  nothing of the new initialiser; the weights are drawn by ``init`` instead.

An argument given explicitly that the optimizer or schedule does not take is an error, never
dropped. The result is validated (``ExperimentSpec.validate``).
"""
from dataclasses import fields, replace

from backprop_oracle.compare.errors import SpecError
from backprop_oracle.compare.network.layers import as_layers
from backprop_oracle.compare.experiments.spec import ExperimentSpec, arguments_of, optimizer_arguments
from backprop_oracle.manual import INITIALISERS, OPTIMIZERS, SCHEDULERS

SPEC_FIELDS = tuple(f.name for f in fields(ExperimentSpec))
# Flat names of optimizer_args and schedule_args (torch's keyword names).
OPTIMIZER_KEYS = ("momentum", "dampening", "nesterov", "weight_decay", "betas", "eps", "amsgrad", "alpha",
                  "centered", "lr_decay", "initial_accumulator_value")
SCHEDULE_KEYS = ("step_size", "gamma", "milestones", "T_max", "eta_min", "start_factor", "end_factor",
                 "total_iters", "max_lr", "total_steps", "pct_start", "anneal_strategy", "cycle_momentum",
                 "base_momentum", "max_momentum", "div_factor", "final_div_factor", "three_phase", "schedulers")
CHANGES = SPEC_FIELDS + OPTIMIZER_KEYS + SCHEDULE_KEYS
# The command line's name for each change, where it is not the field's own with dashes.
FLAGS = {"hidden_sizes": "hidden", "T_max": "t_max"}


def flag(key):
    """The command-line option of a change: "hidden_sizes" -> "--hidden", "weight_decay" -> "--weight-decay"."""
    return "--" + FLAGS.get(key, key).replace("_", "-")


def schedule_arguments(name):
    return arguments_of(SCHEDULERS, name, ("optimizer",))


_WHO_TAKES = {"step_size": "; choose --schedule step", "milestones": "; choose --schedule multistep (or sequential)",
              "T_max": "; choose --schedule cosine", "eta_min": "; choose --schedule cosine",
              "start_factor": "; choose --schedule linear", "end_factor": "; choose --schedule linear",
              "total_iters": "; choose --schedule linear", "schedulers": "; choose --schedule sequential",
              "gamma": "; choose --schedule step, exponential or multistep"}
_WHO_TAKES.update({k: "; choose --schedule onecycle" for k in (
    "max_lr", "total_steps", "pct_start", "anneal_strategy", "cycle_momentum", "base_momentum", "max_momentum",
    "div_factor", "final_div_factor", "three_phase")})


def _schedule_value(key, value):
    """A flat schedule argument as schedule_args holds it: milestones a list of integers, counts integers."""
    if key == "milestones":
        return [int(m) for m in value]
    if key in ("step_size", "T_max", "total_iters", "total_steps"):
        return int(value)
    return value


def _sequential(args, changes):
    """Sequential's arguments with the flat changes applied: ``schedulers`` (names, or tables) and
    ``milestones`` are its own; every other schedule argument goes to each schedule in it that
    takes it (--start-factor to linear, --t-max to cosine), and one that none takes is an error."""
    args = dict(args)
    if "schedulers" in changes:
        old = {t.get("schedule"): t for t in args.get("schedulers", []) if isinstance(t, dict)}
        args["schedulers"] = [dict(old.get(n, {"schedule": n})) if isinstance(n, str) else dict(n)
                              for n in changes["schedulers"]]
    if "milestones" in changes:
        args["milestones"] = _schedule_value("milestones", changes["milestones"])
    tables = args.get("schedulers", [])
    for key in SCHEDULE_KEYS:
        if key in changes and key not in ("schedulers", "milestones"):
            names = [t.get("schedule") for t in tables]
            takers = [t for t in tables if t.get("schedule") in SCHEDULERS and key in schedule_arguments(t["schedule"])]
            if not takers:
                listed = ", ".join(map(str, names)) or "none: give --schedulers, e.g. linear,cosine"
                raise SpecError(f"{flag(key)}: no schedule of the sequence ({listed}) takes {key}")
            for t in takers:
                t[key] = _schedule_value(key, changes[key])
    for i, t in enumerate(tables):
        if t.get("schedule") not in SCHEDULERS or t.get("schedule") in ("sequential", "onecycle"):
            choices = ", ".join(k for k in SCHEDULERS if k not in ("sequential", "onecycle"))
            raise SpecError(f"--schedulers: schedule {i + 1} of the sequence is {t.get('schedule')!r}; choose from "
                            f"{choices}")
    if "milestones" not in args and len(tables) > 1:
        raise SpecError("the sequential schedule switches at milestones: give --milestones, one epoch per switch "
                        f"({len(tables) - 1} for {len(tables)} schedules), e.g. --milestones 5")
    return args


def _takes(kind, name, key, takes, fix):
    if key not in takes:
        raise SpecError(f"{flag(key)}: the {name} {kind} takes no {key}; it takes "
                        f"{', '.join(takes) or 'no arguments'}{fix}")


def _network_changes(spec, new, changes, notes):
    """A layers list replaces the hidden sizes (and the reverse): each is the whole network. With a
    layers list each layer names its own activation, so --activation and --output-activation
    would say nothing: refused, never dropped."""
    if "layers" in new:
        new["layers"] = as_layers(new["layers"])
        if "hidden_sizes" in changes and new["layers"]:
            raise SpecError("--layers writes the whole network; --hidden is its short form for a dense one: "
                            "give one of them")
        if spec.hidden_sizes and new["layers"]:
            notes.append(f"--layers replaces the hidden layers {'x'.join(map(str, spec.hidden_sizes))}")
            new["hidden_sizes"] = ()
    elif "hidden_sizes" in new and spec.layers:
        notes.append("--hidden replaces the layers list")
        new["layers"] = ()
        if spec.input_shape and "input_shape" not in changes:      # a dense network takes each example's row
            notes[-1] += f" and its input shape {'x'.join(map(str, spec.input_shape))}"
            new["input_shape"] = ()
    given = [k for k in ("activation", "output_activation") if k in changes]
    if given and new.get("layers", spec.layers):
        raise SpecError(f"{flag(given[0])}: with --layers each layer names its own activation "
                        "(\"linear(16) tanh linear(1) sigmoid\"): write it in the list")


def with_changes(spec, notes=None, **changes):
    """``spec`` with ``changes`` (flat names, None values ignored) applied, validated. ``notes``, a
    list, receives one sentence for each thing of the old spec that was dropped (see above).
    ``batch_size="full"`` is the whole training set (None)."""
    changes = {k: v for k, v in changes.items() if v is not None}
    unknown = sorted(set(changes) - set(CHANGES))
    if unknown:
        raise SpecError(f"unknown change(s) {', '.join(unknown)}; changes are: {', '.join(CHANGES)}")
    notes = [] if notes is None else notes
    new = {k: v for k, v in changes.items() if k in SPEC_FIELDS}
    if new.get("batch_size") == "full":
        new["batch_size"] = None
    if "hidden_sizes" in new:
        new["hidden_sizes"] = tuple(new["hidden_sizes"])
    _network_changes(spec, new, changes, notes)

    optimizer = new.get("optimizer", spec.optimizer)
    opt_args = dict(new.pop("optimizer_args", spec.optimizer_args))
    if optimizer != spec.optimizer and optimizer in OPTIMIZERS:
        takes = optimizer_arguments(optimizer)
        dropped = [k for k in opt_args if k not in takes]
        if dropped and "optimizer_args" not in changes:
            notes.append(f"{optimizer} takes no {', '.join(dropped)}; dropped from the preset's optimizer arguments")
            opt_args = {k: v for k, v in opt_args.items() if k in takes}
    for key in OPTIMIZER_KEYS:
        if key in changes:
            if optimizer in OPTIMIZERS:
                takers = [name for name in OPTIMIZERS if key in optimizer_arguments(name)]
                _takes("optimizer", optimizer, key, optimizer_arguments(optimizer),
                       f"; choose --optimizer {' or '.join(takers)}")
            opt_args[key] = tuple(changes[key]) if key == "betas" else changes[key]

    schedule = new.get("schedule", spec.schedule)
    sched_args = dict(new.pop("schedule_args", spec.schedule_args))
    if schedule != spec.schedule and schedule in SCHEDULERS and "schedule_args" not in changes:
        takes = schedule_arguments(schedule)
        dropped = [k for k in sched_args if k not in takes]
        if dropped:
            notes.append(f"the {schedule} schedule takes no {', '.join(dropped)}; dropped from the preset's "
                         "schedule arguments")
        sched_args = {k: v for k, v in sched_args.items() if k in takes}
    if schedule == "sequential":
        sched_args = _sequential(sched_args, changes)
    else:
        for key in SCHEDULE_KEYS:
            if key in changes:
                if schedule in SCHEDULERS:
                    _takes("schedule", schedule, key, schedule_arguments(schedule), _WHO_TAKES.get(key, ""))
                sched_args[key] = _schedule_value(key, changes[key])

    if opt_args.get("nesterov") and optimizer == "sgd" and (not opt_args.get("momentum") or opt_args.get("dampening")):
        raise SpecError("Nesterov momentum looks ahead along the momentum, so it needs momentum > 0 and dampening 0: "
                        "add --momentum 0.9 (and leave --dampening at 0), or drop --nesterov")
    if schedule == "step" and "step_size" not in sched_args:
        raise SpecError("the step schedule multiplies the learning rate by gamma every step_size epochs: give "
                        "--step-size N (and --gamma, default 0.1)")
    if new.get("dataset", spec.dataset) != spec.dataset and spec.dataset_args and "dataset_args" not in new:
        notes.append(f"the {spec.dataset} data set's options ({', '.join(sorted(spec.dataset_args))}) are "
                     f"dropped for {new['dataset']}")
        new["dataset_args"] = {}
    init = new.get("init", spec.init)
    if init != spec.init and init in INITIALISERS and spec.init_args and "init_args" not in new:
        takes = arguments_of(INITIALISERS, init, ("rng", "shape"))
        dropped = [k for k in spec.init_args if k not in takes]
        if dropped:
            notes.append(f"{init} takes no {', '.join(dropped)}; dropped from the preset's init arguments")
        new["init_args"] = {k: v for k, v in spec.init_args.items() if k in takes}
    reshaped = [k for k in ("dataset", "hidden_sizes", "layers", "input_shape", "init")
                if k in new and new[k] != getattr(spec, k)]
    if spec.initial_params is not None and reshaped and "initial_params" not in new:
        notes.append(f"{flag(reshaped[0])} makes a new network: the preset's given initial weights are dropped, "
                     f"drawn by {new.get('init', spec.init)} instead")
        new["initial_params"] = None
    return replace(spec, **new, optimizer_args=opt_args, schedule_args=sched_args).validate()
