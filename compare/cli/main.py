"""The command line: ``backprop-oracle`` (the same as ``python -m compare``).

It parses arguments, calls the library and prints. Exit codes: 0 the sides agree, 1 they do
not, 2 a usage error (reported in one line, without a traceback).
"""
import argparse
import os
import sys

from compare.data import DataError
from compare.idx import IdxError
from compare.spec import SpecError


class UsageError(Exception):
    """A mistake in how the command was called."""


USER_ERRORS = (UsageError, SpecError, DataError, IdxError)


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def batch_size(text):
    if text == "full":
        return "full"
    return positive_int(text)


def json_path(path):
    """Check an output path before any work is done, so a long run never ends in a write error."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"--json: the folder {directory} does not exist; create it or choose another path")
    if os.path.isdir(path):
        raise UsageError(f"--json: {path} is a folder; give a file name such as report.json")
    if not os.access(directory, os.W_OK):
        raise UsageError(f"--json: cannot write in {directory}")
    return path


def build_parser():
    from compare import commands
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
    try:
        return args.handler(args)
    except USER_ERRORS as e:
        print(f"backprop-oracle {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("backprop-oracle: interrupted", file=sys.stderr)
        return 130
