"""backprop-oracle train PRESET... | all: the torch side alone, on CUDA when present, with the same
TensorBoard dashboards as ``run`` (the torch run only). Under ``torchrun --nproc_per_node=N`` (or
``--nproc-per-node N``, our own launch: compare.cli.launch) each process trains on a shard of every
batch (DistributedDataParallel); rank 0 alone logs, prints and writes files.

A peer that stops answering ends every other rank within --dist-timeout with one line (who went
silent, at which step, the last checkpoint, the command to resume) and exit code 1; rank 0 marks
the run folder's config.json and the --json file as ended early. A group that torchrun restarts
(--max-restarts) with --save resumes from the checkpoint this job saved last."""
import argparse
import contextlib
import math
import os
import sys

from backprop_oracle.compare.arguments.types import json_path
from backprop_oracle.compare.errors import UsageError
from backprop_oracle.compare.cli.commands.options import (add_preset_arguments, dump_config_of, overrides_from,
                                                           say_dropped, what_to_run)
from backprop_oracle.compare.cli.own_data import add_data_arguments, check_data_arguments
from backprop_oracle.compare.cli.checkpoints import add_checkpoint_arguments, checkpoint_options, say_saved
from backprop_oracle.compare.cli.launch import add_launch_arguments
from backprop_oracle.compare.experiments.presets import select_presets

HELP = "train presets with the torch side only (CUDA when present), logging to TensorBoard"


def add_arguments(parser):
    add_preset_arguments(parser, dtype_default="float32",
                         dtype_help="precision (default float32, the usual training precision on a GPU; "
                                    "float64 reproduces the lockstep run's torch side exactly)",
                         device_default="auto", device_help="cpu, cuda, cuda:N or auto (default: CUDA when present)")
    parser.add_argument("--quiet", action="store_true", help="no progress: no bars on a terminal, no line per "
                                                                 "finished run elsewhere")
    add_data_arguments(parser)
    add_checkpoint_arguments(parser, both_sides=False)
    parser.add_argument("--cuda-graph", action=argparse.BooleanOptionalAction, default=None,
                        help="on CUDA, replay each step from CUDA graphs (default: where the run allows it, "
                             "eager otherwise, the reason in --json's cuda_graph; --cuda-graph: an error where "
                             "it cannot; --no-cuda-graph: always eager)")
    add_launch_arguments(parser)


def main(args):
    names = what_to_run(args)
    if not args.config:
        select_presets(names)            # a mistyped name is answered before torch is loaded
    check_data_arguments(args)
    from backprop_oracle.compare.train.launch import wants_launch
    if wants_launch(args):
        from backprop_oracle.compare.train.launch import NodeMissing, launch
        try:
            return launch(args, args.argv)
        except NodeMissing as e:
            print(f"backprop-oracle train: error: {e}", file=sys.stderr)
            return 1
    from backprop_oracle import torch_ref
    from backprop_oracle.compare.lockstep.report import write_json
    from backprop_oracle.compare.cli.runner import select_runs, single_threaded
    from backprop_oracle.compare.dashboards.progress import progress_for
    from backprop_oracle.compare.dashboards.tensorboard import TensorBoardLogger, logdir_for_runs
    from backprop_oracle.compare.train.distributed import PeerLost, process_group
    from backprop_oracle.compare.train.launch import TellSaved, ended_early
    from backprop_oracle.compare.train.torch_only import format_train_table, train_torch

    if args.json:
        json_path(args.json)
    presets, runs = select_runs(names, overrides_from(args), args.mnist_dir, args.mnist_limit, config=args.config)
    from backprop_oracle.compare.cli.own_data import with_own_data
    presets, runs = with_own_data(args, presets, runs, overrides_from(args), everything="all" in names)
    if args.dump_config not in (None, "-"):
        json_path(args.dump_config, "--dump-config")
    if args.dump_config:
        return dump_config_of(presets, "train", args.dump_config)
    rank0 = int(os.environ.get("RANK", "0") or 0) == 0
    # Rank 0 alone reads a --resume file and hands it to the others (no other rank needs the file).
    resume, saver_for = checkpoint_options(args if rank0 else argparse.Namespace(**dict(vars(args), resume=None)),
                                           runs, both_sides=False)
    savers, loggers = [], []
    guard = contextlib.nullcontext()
    if not args.no_tensorboard and rank0:   # only rank 0 logs
        guard = logdir_for_runs(args.logdir)     # created once everything else is known good
        # Loaded before the other ranks wait for this one (matplotlib takes seconds on a busy machine).
        from backprop_oracle.compare.dashboards import run_pictures  # noqa: F401
    if rank0:
        say_dropped(presets, overrides_from(args))
    # Tiny networks on the CPU run fastest on one thread (see compare.cli.runner.single_threaded).
    threads = single_threaded if torch_ref.resolve_device(args.device).type == "cpu" else contextlib.nullcontext
    if args.cuda_graph and torch_ref.resolve_device(args.device).type != "cuda":
        raise UsageError(f"--cuda-graph needs a CUDA device, not {args.device!r}: use --device cuda, or leave "
                         "--cuda-graph out")
    results, run_dirs = [], {}
    first, dist = True, None
    try:
        with guard as folder, process_group(args.device, args.dist_timeout) as dist:
            first = dist is None or dist.rank == 0   # only rank 0 logs and prints
            if dist is not None:
                resume = _shared_checkpoint(args, dist, resume)
            for name, spec in runs:
                logger = TensorBoardLogger(folder, name, sides=("torch",), diff=False) \
                    if first and not args.no_tensorboard else None
                loggers.append(logger)
                progress = progress_for(args.quiet) if first else None
                savers.append(saver_for() if first else None)
                told = TellSaved(savers[-1], dist) if savers[-1] is not None and dist is not None else None
                observers = [o for o in (progress, logger, savers[-1], told) if o is not None]
                with threads():
                    results.append(train_torch(spec, name=name, observers=observers, distributed=dist,
                                               resume=resume, cuda_graph=args.cuda_graph))
                if logger is not None:
                    run_dirs[name] = logger.run_dir
    except PeerLost as lost:
        return ended_early(args, lost, dist, savers, loggers, results, run_dirs)
    if not first:
        return 0
    print(format_train_table(results, run_dirs))
    for saver, result in zip(savers, results):
        say_saved(saver, result)
    if run_dirs:
        from backprop_oracle.compare.dashboards.tensorboard import view_command
        print(f"view with: {view_command(args.logdir, folder)}", file=sys.stderr)
    if args.json:
        write_json(args.json, {"runs": [dict(r.to_dict(), logdir=run_dirs.get(r.name)) for r in results]})
    sys.stdout.flush()
    diverged = [r for r in results if r.divergence is not None or not math.isfinite(r.final_cost_torch)]
    for r in diverged:
        what = r.divergence.describe() if r.divergence is not None else "the final cost is not finite; lower --lr"
        print(f"{r.name}: {what}", file=sys.stderr)
    return 1 if diverged else 0


def _shared_checkpoint(args, dist, resume):
    """The checkpoint every rank starts from: --resume's, read by rank 0, or, in a group torchrun
    restarted, the one this job saved last (the resume rule); None for a fresh start."""
    import torch.distributed
    saved = dist.saved() if args.save is not None and args.resume is None and dist.restarted() else None
    if args.resume is None and saved is None:
        return resume
    if dist.rank == 0 and saved is not None:
        from backprop_oracle.compare.checkpoints import load_checkpoint
        resume = load_checkpoint(saved[2])
        print(f"restart {dist.restarted()}: resuming from {args.save} at epoch {resume.progress.epoch} "
              f"(step {resume.progress.step})", file=sys.stderr)
    box = [resume if dist.rank == 0 else None]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]
