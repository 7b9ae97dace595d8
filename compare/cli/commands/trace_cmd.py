"""backprop-oracle trace PRESET [--example I]: one example's hand computation, node by node
(or trace --config FILE [LABEL]: a run of an experiment file, a layers list's among them)."""
from backprop_oracle.compare.experiments.presets import PRESETS

HELP = ("print one example's forward pass, backward pass and update node by node, the manual "
        "value beside torch's")


def add_arguments(parser):
    parser.add_argument("preset", metavar="PRESET", nargs="?",
                        help=f"a preset ({', '.join(PRESETS)}), or PRESET:RUN for one of its runs; with --config, "
                             "the label of one of the file's runs (default: its first)")
    parser.add_argument("--config", metavar="FILE",
                        help="trace a run of the experiment file FILE (TOML, as --dump-config writes it)")
    parser.add_argument("--example", type=int, default=0, metavar="I",
                        help="which training example, from 0 (default 0)")
    parser.add_argument("--batch", type=int, default=1, metavar="N",
                        help="trace examples I to I+N-1 as one batch (default 1; a batch norm over features "
                             "needs 2 or more)")


def main(args):
    from backprop_oracle.compare.errors import UsageError
    from backprop_oracle.compare.trace.example import format_trace, trace_example
    if args.config:
        from backprop_oracle.compare.experiments.config import load_config
        preset = load_config(args.config)
        label = args.preset if args.preset is not None else next(iter(preset.runs))
        if label not in preset.runs:
            raise UsageError(f"{args.config} has no run {label!r}; its runs: {', '.join(map(repr, preset.runs))}")
        name = f"{preset.name}:{label}" if label else preset.name
        trace = trace_example(preset.runs[label], args.example, name=name, batch_size=args.batch)
    elif args.preset is None:
        raise UsageError("name a preset to trace (e.g. or-gate), or give --config FILE")
    else:
        trace = trace_example(args.preset, args.example, batch_size=args.batch)
    print(format_trace(trace))
    return 0 if trace.passed else 1
