"""backprop-oracle run PRESET... | all: each preset in lockstep, then one verdict table."""
import contextlib
import os
import sys

from backprop_oracle.compare.arguments.types import json_path
from backprop_oracle.compare.cli.commands.options import (add_preset_arguments, dump_config_of, overrides_from,
                                                           say_dropped, what_to_run)
from backprop_oracle.compare.cli.own_data import add_data_arguments, check_data_arguments
from backprop_oracle.compare.cli.checkpoints import (add_checkpoint_arguments, checkpoint_options, say_interrupted,
                                                     say_saved)
from backprop_oracle.compare.errors import UsageError
from backprop_oracle.compare.experiments.presets import select_presets

HELP = "run presets in lockstep on both sides and print the verdict"


def add_arguments(parser):
    add_preset_arguments(parser, dtype_default=None, dtype_help="precision of both sides (default float64)",
                         device_default=None, device_help="torch side's device: cpu, cuda, cuda:N or auto")
    parser.add_argument("--quiet", action="store_true", help="no progress: no bars on a terminal, no line per "
                                                                 "finished run elsewhere")
    parser.add_argument("--fail-on-divergence", action="store_true",
                        help="exit with code 1 when a run diverges, even where both sides diverge together "
                             "(which is agreement, exit code 0, by default)")
    add_data_arguments(parser)
    add_checkpoint_arguments(parser, both_sides=True)


class Current:
    """Observer: which run is going, and its last step (for the message after Ctrl-C)."""
    name, step = None, 0

    def on_start(self, run):
        self.name, self.step = run.name, 0

    def on_step(self, run, record):
        self.step = record.step

    def reads_sides_at(self, step):
        return False          # only the records (compare.lockstep.blocks)


def main(args):
    from backprop_oracle.compare.spread.runs import processes
    world = processes()                  # under torchrun the runs spread over the ranks (compare.spread.runs)
    rank = int(os.environ.get("RANK", "0")) if world > 1 else 0
    names = what_to_run(args)
    if not args.config:
        select_presets(names)            # a mistyped name is answered before torch is loaded
    check_data_arguments(args)
    if args.json and rank == 0:          # only rank 0 writes files
        json_path(args.json)
    from backprop_oracle.compare.cli.runner import run_preset, select_runs
    from backprop_oracle.compare.dashboards.progress import progress_for
    from backprop_oracle.compare.lockstep.report import format_table, write_json
    overrides = overrides_from(args)
    presets, runs = select_runs(names, overrides, args.mnist_dir, args.mnist_limit, config=args.config)
    from backprop_oracle.compare.cli.own_data import with_own_data
    presets, runs = with_own_data(args, presets, runs, overrides, everything="all" in names)
    if args.dump_config not in (None, "-") and rank == 0:
        json_path(args.dump_config, "--dump-config")
    if args.dump_config:
        return dump_config_of(presets, "run", args.dump_config) if rank == 0 else 0
    if world > 1 and (args.save or args.resume):
        raise UsageError(f"--save and --resume hold one run in one process; under torchrun ({world} processes) "
                         "the runs spread over the processes: run it without torchrun")
    resume, saver_for = checkpoint_options(args, runs, both_sides=True)
    savers = []
    guard = contextlib.nullcontext()
    if not args.no_tensorboard and world == 1:
        from backprop_oracle.compare.dashboards.tensorboard import logdir_for_runs
        guard = logdir_for_runs(args.logdir)     # removed again if nothing could run
    if rank == 0:
        say_dropped(presets, overrides)
    loggers, current, folder = [], Current(), None
    # The pictures are drawn in a second process while the runs go on (one process: under torchrun
    # each rank's runs draw their own in place); it is stopped when the command ends.
    from backprop_oracle.compare.dashboards.drawing import Drawer
    drawer = Drawer(process=world == 1 and not args.no_tensorboard)

    def observers_for(name, spec, **where):
        progress = progress_for(args.quiet) if rank == 0 else None     # other ranks' bars would run into it
        observers = [current] + ([progress] if progress is not None else [])
        savers.append(saver_for())
        observers += [savers[-1]] if savers[-1] is not None else []
        if not args.no_tensorboard:
            from backprop_oracle.compare.dashboards.tensorboard import TensorBoardLogger
            loggers.append(TensorBoardLogger(folder, name, drawer=drawer, **where))
            observers.append(loggers[-1])
        return observers

    results, goals, interrupted = [], {}, None

    def take(preset, ran):
        for name, result, goal in ran:
            results.append(result)
            if goal is not None:
                goals[name] = goal
        if folder is not None and len(ran) > 1 and len(ran) == len(preset.runs):
            from backprop_oracle.compare.dashboards.tensorboard import log_preset_runs
            log_preset_runs(folder, preset.name, [(name, result) for name, result, _ in ran])

    if world > 1:
        from backprop_oracle.compare.spread.runs import run_spread
        from backprop_oracle.compare.cli.runner import run_one
        spread = run_spread(presets, run_one, observers_for, None if args.no_tensorboard else args.logdir,
                            quiet=args.quiet)
        if spread is None:
            return 0                     # not rank 0: rank 0 reports
        folder, ran_by_preset, interrupted = spread
        for preset, ran in ran_by_preset:
            take(preset, ran)
    else:
        with guard as folder, drawer:
            try:
                for preset in presets:
                    take(preset, run_preset(preset, None, observers_for, resume=resume))
            except KeyboardInterrupt:
                # Ctrl-C: what finished is still a result; say where the interrupted run stopped.
                interrupted = (current.name, current.step)
    print(format_table(results, goals) if results else "no run finished.")
    for saver, result in zip(savers, results):
        say_saved(saver, result)
    if interrupted is not None:
        print(f"\ninterrupted: {interrupted[0]} at step {interrupted[1]}; the table shows the "
              f"{len(results)} run(s) that finished", file=sys.stderr)
        say_interrupted(savers[-1] if len(savers) > len(results) else None)
    if loggers or (world > 1 and folder is not None and results):
        from backprop_oracle.compare.dashboards.tensorboard import view_command
        print(f"TensorBoard logs in {folder}; view with: {view_command(args.logdir, folder)}", file=sys.stderr)
    if args.json:
        payload = {"passed": bool(results) and all(r.passed for r in results),
                   "runs": [dict(r.to_dict(), goal_met=None if r.name not in goals else goals[r.name][0])
                            for r in results]}
        if interrupted is not None:
            payload.update(interrupted=True, interrupted_run=interrupted[0], interrupted_at_step=interrupted[1])
        write_json(args.json, payload)
    sys.stdout.flush()
    if interrupted is not None:
        print("backprop-oracle: interrupted", file=sys.stderr)
        return 130
    failed = not all(r.passed for r in results)
    if args.fail_on_divergence:
        failed = failed or any(r.divergence is not None for r in results)
    return 1 if failed else 0
