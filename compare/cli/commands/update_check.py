"""backprop-oracle check FILE.py:NAME --optimizer sgd|adam|adamw|rmsprop|adagrad [...] or --schedule KIND [...]:
a hand-written update rule against torch.optim, or a learning-rate schedule against
torch.optim.lr_scheduler (compare/updates). NAME is a function, a class or an object in the file.
Exit 0 when they agree, 1 on a mismatch, 2 on a usage error."""
import os
import sys

from backprop_oracle.compare.arguments.types import json_path, positive_int
from backprop_oracle.compare.cli.commands.user_file import import_user_file
from backprop_oracle.compare.errors import CheckError, UsageError

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULES = ("constant", "step", "exponential", "multistep", "cosine", "linear")
OPTIMIZER_FLAGS = {"momentum": "--momentum", "dampening": "--dampening", "nesterov": "--nesterov",
                   "weight_decay": "--weight-decay", "betas": "--betas", "eps": "--eps", "amsgrad": "--amsgrad",
                   "alpha": "--alpha", "centered": "--centered", "lr_decay": "--lr-decay",
                   "initial_accumulator_value": "--initial-accumulator-value", "maximize": "--maximize", "steps": "--steps", "form": "--form"}
SCHEDULE_FLAGS = {"step_size": "--step-size", "gamma": "--gamma", "milestones": "--milestones",
                  "T_max": "--t-max", "eta_min": "--eta-min", "start_factor": "--start-factor",
                  "end_factor": "--end-factor", "total_iters": "--total-iters", "epochs": "--epochs"}
NETWORK_FLAGS = {"sizes": "--sizes", "activation": "--activation", "output_activation": "--output-activation",
                 "loss": "--loss", "spec": "--spec", "preset": "--preset", "batch": "--batch", "trials": "--trials",
                 "naming": "--naming", "dtype": "--dtype"}


def number_list(kind, text):
    try:
        return [kind(s) for s in text.split(",")]
    except ValueError:
        raise UsageError(f"expected numbers separated by commas, got {text!r}") from None


def add_arguments(parser):
    opt = parser.add_argument_group(
        "an update rule (--optimizer): NAME is step(params, grads, state), update(w, dw, config), an object "
        "with .step(params, grads), or a class Cls(parameters, **args); torch's defaults where a flag is not given")
    opt.add_argument("--optimizer", choices=OPTIMIZERS,
                     help="check NAME against torch.optim.SGD, Adam, AdamW, RMSprop or Adagrad")
    opt.add_argument("--lr", type=float, help="learning rate (torch's default 1e-3; with --schedule the first "
                                              "epoch's rate, default 0.1)")
    opt.add_argument("--momentum", type=float)
    opt.add_argument("--dampening", type=float)
    opt.add_argument("--nesterov", action="store_true", default=None)
    opt.add_argument("--weight-decay", type=float)
    opt.add_argument("--betas", metavar="B1,B2", help="Adam's betas, e.g. 0.9,0.999")
    opt.add_argument("--eps", type=float)
    opt.add_argument("--amsgrad", action="store_true", default=None)
    opt.add_argument("--alpha", type=float, help="RMSprop's smoothing constant")
    opt.add_argument("--centered", action="store_true", default=None, help="RMSprop")
    opt.add_argument("--lr-decay", type=float, help="Adagrad")
    opt.add_argument("--initial-accumulator-value", type=float, help="Adagrad")
    opt.add_argument("--maximize", action="store_true", default=None)
    opt.add_argument("--steps", type=positive_int, help="steps per run (default 10)")
    opt.add_argument("--form", choices=("state", "config", "object", "class", "stateless"),
                     help="how to call NAME, where it cannot be told from NAME itself")
    sch = parser.add_argument_group("a learning-rate schedule (--schedule): NAME is f(epoch) -> lr, "
                                    "f(epoch, lr) -> lr, a class Cls(optimizer, **args) or an object with .step()")
    sch.add_argument("--schedule", choices=SCHEDULES, help="check NAME against torch.optim.lr_scheduler's schedule")
    sch.add_argument("--step-size", type=positive_int)
    sch.add_argument("--gamma", type=float)
    sch.add_argument("--milestones", metavar="M1,M2,...")
    sch.add_argument("--t-max", dest="T_max", type=positive_int)
    sch.add_argument("--eta-min", type=float)
    sch.add_argument("--start-factor", type=float, help="linear warm-up (LinearLR)")
    sch.add_argument("--end-factor", type=float)
    sch.add_argument("--total-iters", type=positive_int)
    sch.add_argument("--epochs", type=positive_int, help="epochs compared (default 10)")


def wanted(args):
    """Whether the command checks an update rule or a schedule (rather than a network's backprop);
    a flag of one kind given with the other is a UsageError."""
    given = lambda flags: [flag for dest, flag in flags.items() if getattr(args, dest, None) is not None]
    if args.optimizer and args.schedule:
        raise UsageError("--optimizer and --schedule check different things; give one of them")
    if args.optimizer or args.schedule:
        network = given(NETWORK_FLAGS)
        if network:
            raise UsageError(f"{', '.join(network)} describe a network; --{'optimizer' if args.optimizer else 'schedule'} "
                             "checks an update rule on its own. Give one or the other")
        wrong = given(SCHEDULE_FLAGS) if args.optimizer else given(OPTIMIZER_FLAGS)
        if wrong:
            raise UsageError(f"{', '.join(wrong)} belong to {'--schedule' if args.optimizer else '--optimizer'}, "
                             f"not to --{'optimizer' if args.optimizer else 'schedule'}")
        return True
    stray = given(OPTIMIZER_FLAGS) + given(SCHEDULE_FLAGS) + (["--lr"] if args.lr is not None else [])
    if stray:
        raise UsageError(f"{', '.join(stray)} {'needs' if len(stray) == 1 else 'need'} --optimizer sgd|adam|adamw|rmsprop|adagrad "
                         "or --schedule KIND")
    return False


def load_target(target):
    """The function, class or object named by FILE.py:NAME, imported from that file."""
    module, path, name = import_user_file(target, "NAME", "student.py:adam_step")
    if not hasattr(module, name):
        found = [k for k in vars(module) if not k.startswith("_") and not isinstance(vars(module)[k], type(sys))]
        raise UsageError(f"{path} has no {name!r}; it defines: {', '.join(found) or 'nothing'}")
    return getattr(module, name)


def main(args):
    if args.json:
        json_path(args.json)
    folder = os.path.dirname(os.path.abspath(args.target.rpartition(":")[0]))
    sys.path.insert(0, folder)
    try:
        target = load_target(args.target)
        if args.optimizer:
            from backprop_oracle.compare.updates.optimizer import check_optimizer
            torch_args = {k: getattr(args, k) for k in ("lr", "momentum", "dampening", "nesterov", "weight_decay",
                                                         "eps", "amsgrad", "alpha", "centered", "lr_decay",
                                                         "initial_accumulator_value", "maximize") if getattr(args, k) is not None}
            if args.betas is not None:
                torch_args["betas"] = tuple(number_list(float, args.betas))
            result = check_optimizer(target, args.optimizer, args.steps or 10, form=args.form,
                                     seed=args.seed or 0, name=args.target, **torch_args)
        else:
            from backprop_oracle.compare.updates.schedule import check_schedule
            torch_args = {k: getattr(args, k) for k in ("step_size", "gamma", "T_max", "eta_min", "start_factor",
                                                         "end_factor", "total_iters")
                          if getattr(args, k) is not None}
            if args.milestones is not None:
                torch_args["milestones"] = number_list(int, args.milestones)
            result = check_schedule(target, args.schedule, args.epochs or 10, name=args.target,
                                    **({"lr": args.lr} if args.lr is not None else {}), **torch_args)
    except CheckError as e:
        raise UsageError(str(e)) from None
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    print(result.report())
    if args.json:
        from backprop_oracle.compare.lockstep.report import write_json
        write_json(args.json, result.to_dict())
    sys.stdout.flush()
    return 0 if result.passed else 1
