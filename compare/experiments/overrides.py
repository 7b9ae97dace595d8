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
from backprop_oracle.compare.experiments.spec import ExperimentSpec, arguments_of, optimizer_arguments
from backprop_oracle.manual import OPTIMIZERS, SCHEDULERS

SPEC_FIELDS = tuple(f.name for f in fields(ExperimentSpec))
# Flat names of optimizer_args and schedule_args (torch's keyword names).
OPTIMIZER_KEYS = ("momentum", "dampening", "nesterov", "weight_decay", "betas", "eps")
SCHEDULE_KEYS = ("step_size", "gamma")
CHANGES = SPEC_FIELDS + OPTIMIZER_KEYS + SCHEDULE_KEYS
# The command line's name for each change, where it is not the field's own with dashes.
FLAGS = {"hidden_sizes": "hidden"}


def flag(key):
    """The command-line option of a change: "hidden_sizes" -> "--hidden", "weight_decay" -> "--weight-decay"."""
    return "--" + FLAGS.get(key, key).replace("_", "-")


def schedule_arguments(name):
    return arguments_of(SCHEDULERS, name, ("optimizer",))


def _takes(kind, name, key, takes, fix):
    if key not in takes:
        raise SpecError(f"{flag(key)}: the {name} {kind} takes no {key}; it takes "
                        f"{', '.join(takes) or 'no arguments'}{fix}")


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
                _takes("optimizer", optimizer, key, optimizer_arguments(optimizer),
                       "; choose --optimizer sgd" if optimizer != "sgd" and key in ("momentum", "dampening", "nesterov")
                       else "; choose --optimizer adam" if key in ("betas", "eps") else "")
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
    for key in SCHEDULE_KEYS:
        if key in changes:
            if schedule in SCHEDULERS:
                _takes("schedule", schedule, key, schedule_arguments(schedule),
                       "; choose --schedule step (step_size, gamma) or exponential (gamma)")
            sched_args[key] = changes[key]

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
    reshaped = [k for k in ("dataset", "hidden_sizes", "init") if k in new and new[k] != getattr(spec, k)]
    if spec.initial_params is not None and reshaped and "initial_params" not in new:
        notes.append(f"{flag(reshaped[0])} makes a new network: the preset's given initial weights are dropped, "
                     f"drawn by {new.get('init', spec.init)} instead")
        new["initial_params"] = None
    return replace(spec, **new, optimizer_args=opt_args, schedule_args=sched_args).validate()
