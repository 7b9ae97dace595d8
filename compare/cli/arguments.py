"""Argument types of the command line: each refuses a bad value with a message that names it."""
import argparse
import os

from backprop_oracle.compare.errors import UsageError


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



def single_process(command):
    """Refuse to run ``command`` once per process under torchrun, where it would only repeat itself."""
    world = os.environ.get("WORLD_SIZE", "1")
    if world.isdigit() and int(world) > 1:
        raise UsageError(f"{command} compares both sides in one process; under torchrun ({world} processes) each "
                         f"would run the whole comparison again. Run it without torchrun, or use "
                         f"'torchrun ... -m backprop_oracle train PRESET' to train the torch side across processes")
