"""backprop-oracle trace PRESET [--example I]: one example's hand computation, node by node."""
from backprop_oracle.compare.experiments.presets import PRESETS

HELP = ("print one example's forward pass, backward pass and update node by node, the manual "
        "value beside torch's")


def add_arguments(parser):
    parser.add_argument("preset", metavar="PRESET",
                        help=f"a preset ({', '.join(PRESETS)}), or PRESET:RUN for one of its runs")
    parser.add_argument("--example", type=int, default=0, metavar="I",
                        help="which training example, from 0 (default 0)")


def main(args):
    from backprop_oracle.compare.trace.example import format_trace, trace_example
    trace = trace_example(args.preset, args.example)
    print(format_trace(trace))
    return 0 if trace.passed else 1
