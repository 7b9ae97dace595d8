"""The command line: ``backprop-oracle`` (the same as ``python -m backprop_oracle``).

It parses arguments, calls the library and prints. Exit codes: 0 the sides agree, 1 they do
not, 2 a usage error (reported in one line, without a traceback).
"""
import argparse
import os
import sys

from backprop_oracle.compare.cli import commands
from backprop_oracle.compare.errors import USER_ERRORS


def build_parser():
    parser = argparse.ArgumentParser(
        prog="backprop-oracle",
        description="Run hand-derived NumPy backpropagation and torch autograd side by side and "
                    "prove they agree, step by step.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module in commands.COMMANDS.items():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(handler=module.main)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)     # as given: a launch passes it on
    try:
        return args.handler(args)
    except USER_ERRORS as e:
        print(f"backprop-oracle {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("backprop-oracle: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``backprop-oracle list | head``): stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
