"""backprop-oracle bench: how fast each side trains, what the lockstep costs on top, the per-example
loop against the vectorized gradient and the gradient check against gradcheck; every ratio from
one run, with interleaved repeats and their spread, each beside its goal (see compare/bench/)."""
import sys

from backprop_oracle.compare.arguments.types import json_path
from backprop_oracle.compare.errors import UsageError

HELP = "time both sides and the lockstep, and print every ratio beside its goal"


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"--threads: {text!r} is not a whole number of at least 1; try --threads 1")
    return value


def add_arguments(parser):
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats and shorter runs (seconds, not minutes): checks that it works, "
                             "its ratios are rough")
    parser.add_argument("--json", metavar="FILE", help="also write every measurement to FILE")
    parser.add_argument("--device", default="cpu", metavar="DEVICE",
                        help="cpu (default), or cuda / cuda:N to add a table of the torch side on that GPU")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall (default): elapsed time; cpu: this process's CPU time, which other programs "
                             "on a busy machine do not inflate (use it with --threads 1)")
    parser.add_argument("--threads", default="1", metavar="N",
                        help="threads for NumPy's BLAS and for torch (default 1, as `run` uses)")


def main(args):
    n_threads = positive_int(args.threads)
    if args.json:
        json_path(args.json)
    import torch
    from backprop_oracle.compare.bench.suite import format_bench, run_bench
    from backprop_oracle.compare.lockstep.report import write_json

    if args.device != "cpu":
        if not args.device.startswith("cuda"):
            raise UsageError(f"--device: unknown device {args.device!r}; choose cpu, cuda or cuda:N")
        if not torch.cuda.is_available():
            raise UsageError(f"--device {args.device}: CUDA is not available on this machine (torch "
                             f"{torch.__version__}); run without --device for the CPU tables")
        try:
            index = torch.device(args.device).index or 0
        except RuntimeError:
            raise UsageError(f"--device: {args.device!r} is not a device; choose cpu, cuda or cuda:N") from None
        if index >= torch.cuda.device_count():
            raise UsageError(f"--device {args.device}: this machine has {torch.cuda.device_count()} GPU(s); "
                             "use cuda:0")
    from backprop_oracle.compare.cli.runner import run_preset
    from backprop_oracle.compare.experiments.presets import get_preset

    def cli_run(name, spec):        # what `backprop-oracle run NAME --epochs E --quiet --no-tensorboard` runs
        return run_preset(get_preset(name), {"epochs": spec.epochs})

    result = run_bench(quick=args.quick, n_threads=n_threads, device=args.device, cli_run=cli_run,
                       timer=args.clock, say=lambda what: print(f"bench: {what} ...", file=sys.stderr, flush=True))
    print(format_bench(result))
    if args.json:
        write_json(args.json, result)
    return 0
