"""backprop-oracle run PRESET... | all: each preset in lockstep, then one verdict table."""
import sys

from compare.cli import batch_size, json_path, positive_float, positive_int
from manual import DTYPES, OPTIMIZERS

HELP = "run presets in lockstep on both sides and print the verdict"


def add_arguments(parser):
    parser.add_argument("presets", nargs="+", metavar="PRESET", help="preset names, or 'all'")
    parser.add_argument("--epochs", type=positive_int, help="override the number of epochs")
    parser.add_argument("--lr", type=positive_float, help="override the learning rate")
    parser.add_argument("--batch-size", type=batch_size, help="override the batch size (a number, or 'full')")
    parser.add_argument("--optimizer", choices=list(OPTIMIZERS), help="override the optimizer")
    parser.add_argument("--seed", type=int, help="override the seed of weights, batch order and data")
    parser.add_argument("--dtype", choices=list(DTYPES), help="precision of both sides (default float64)")
    parser.add_argument("--device", help="torch side's device: cpu, cuda, cuda:N or auto")
    parser.add_argument("--json", metavar="FILE", help="also write the whole table, with cost curves, as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def overrides_from(args):
    return {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size,
            "optimizer": args.optimizer, "seed": args.seed, "dtype": args.dtype, "device": args.device}


def main(args):
    # Imported here so that usage errors are reported before torch is loaded.
    from compare.report import format_table, write_json
    from compare.runner import apply_overrides, resolve_presets, run_preset
    if args.json:
        json_path(args.json)
    presets = resolve_presets(args.presets)
    overrides = overrides_from(args)
    # Check every override against every preset before anything runs.
    for preset in presets:
        for spec in preset.runs.values():
            apply_overrides(spec, overrides)
    results, goals = [], {}
    for preset in presets:
        for name, result, goal in run_preset(preset, overrides):
            results.append(result)
            if goal is not None:
                goals[name] = goal
    print(format_table(results, goals))
    if args.json:
        write_json(args.json, {"passed": all(r.passed for r in results),
                               "runs": [dict(r.to_dict(), goal_met=None if r.name not in goals else goals[r.name][0])
                                        for r in results]})
    sys.stdout.flush()
    return 0 if all(r.passed for r in results) else 1
