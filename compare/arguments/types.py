"""Argument types of the command line: each refuses a bad value with a message that names it."""
import argparse
import os

from backprop_oracle.compare.errors import UsageError


def _whole_number(text, least, words):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {words}, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"expected {words}, got {text!r}")
    return value


def positive_int(text):
    return _whole_number(text, 1, "a positive integer")


def non_negative_int(text):
    return _whole_number(text, 0, "a whole number 0 or more")


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def number(text):
    """A finite number; its range is checked by the spec (ExperimentSpec.validate), which names the fix."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def listed(kind, choices=None):
    """An argument type for a comma list of ``kind`` (a sweep when it has more than one value):
    "0.5,5,50" -> [0.5, 5.0, 50.0]. ``choices``: the valid names, listed when one is not."""
    def parse(text):
        values = []
        for part in text.split(","):
            part = part.strip()
            if not part:
                raise argparse.ArgumentTypeError(f"an empty value in {text!r}; separate values by single commas")
            if choices is not None and part not in choices:
                raise argparse.ArgumentTypeError(f"invalid choice: {part!r} (choose from {', '.join(choices)}; "
                                                 "a comma list sweeps)")
            values.append(kind(part))
        return values
    parse.__name__ = getattr(kind, "__name__", "value")   # argparse names the type in its messages
    return parse


def registry_key(choices, what="key"):
    """An argument type for one registry key, with torch's arguments if any: "relu", "elu:alpha=0.5",
    "softplus:beta=2,threshold=10" (see backprop_oracle/keys.py). ``choices``: the registry, listed when the
    name is not in it."""
    def parse(text):
        from backprop_oracle.manual import split_key
        text = text.strip()
        try:
            name, _ = split_key(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        if name not in choices:
            raise argparse.ArgumentTypeError(f"invalid choice: {name!r} (choose from {', '.join(choices)}; "
                                             f"torch's arguments after a colon: elu:alpha=0.5)")
        return text
    parse.__name__ = what
    return parse


def listed_keys(choices, what="key"):
    """A comma list of registry keys (a sweep when it has more than one): "relu,elu:alpha=0.5" ->
    ["relu", "elu:alpha=0.5"]. A key's own commas are kept: a piece that is not a registry name,
    after a key with a colon, continues it ("softplus:beta=2,threshold=10", "nll:weight=1,2,3")."""
    one = registry_key(choices, what)

    def parse(text):
        values = []
        for part in text.split(","):
            part = part.strip()
            if not part:
                raise argparse.ArgumentTypeError(f"an empty value in {text!r}; separate values by single commas")
            if values and ":" in values[-1] and ":" not in part and part not in choices:
                values[-1] += "," + part         # an argument (threshold=10) or a list's next number
            else:
                values.append(part)
        return [one(v) for v in values]
    parse.__name__ = what
    return parse


def _positive_ints(text, expected):
    """A comma list of positive whole numbers, "1,8,8" -> (1, 8, 8); else "expected <expected>, got ..."."""
    try:
        return tuple(positive_int(part.strip()) for part in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None


def layer_sizes(text):
    """Hidden layer sizes: "32,32" -> (32, 32); "none" (or "") -> () , a single layer."""
    if text.strip().lower() in ("none", ""):
        return ()
    return _positive_ints(text, "layer sizes such as 32 or 32,32 (or none)")


def layers_list(text):
    """A network written out: "flatten linear(16) relu linear(10)" -> ("flatten", "linear(16)", ...),
    each layer checked for its kind and arguments (compare.network.layers)."""
    from backprop_oracle.compare.errors import SpecError
    from backprop_oracle.compare.network.layers import parse_layers, split_layers
    texts = tuple(split_layers(text))
    if not texts:
        raise argparse.ArgumentTypeError("expected layers such as \"flatten linear(16) relu linear(10)\", got none")
    try:
        parse_layers(texts)
    except SpecError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("layers: ")) from None
    return texts


def shape(text):
    """One example's shape: "1,8,8" -> (1, 8, 8)."""
    return _positive_ints(text, "a shape such as 1,8,8 (channels, height, width)")


def pair(text):
    """Two numbers: "0.9,0.999" -> (0.9, 0.999) (Adam's betas)."""
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected two numbers such as 0.9,0.999, got {text!r}")
    return tuple(number(p) for p in parts)


def int_list(text):
    """Positive integers: "2,5" -> (2, 5) (multistep's milestones)."""
    try:
        return tuple(positive_int(part.strip()) for part in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected positive integers such as 5 or 10,20, got {text!r}") from None


def keywords(text):
    """Keyword arguments: "mode=fan_out,a=0.1" -> {"mode": "fan_out", "a": 0.1}; a value that reads
    as a number is one, true/false are flags, anything else a word."""
    out = {}
    for part in text.split(","):
        key, eq, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key.isidentifier() or not value:
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE pairs such as mode=fan_out,a=0.1, got {text!r}")
        if value.lower() in ("true", "false"):
            out[key] = value.lower() == "true"
            continue
        try:
            out[key] = number(value)
        except argparse.ArgumentTypeError:
            out[key] = value
    return out


def batch_size(text):
    if text == "full":
        return "full"
    return positive_int(text)


def json_path(path, option="--json", example=None):
    """Check an output path before any work is done, so a long run never ends in a write error.
    ``example``: the file name the message suggests when ``path`` is a folder."""
    directory = os.path.dirname(os.path.abspath(path))
    example = example or ("report.json" if option == "--json" else "experiment.toml")
    if not os.path.isdir(directory):
        raise UsageError(f"{option}: the folder {directory} does not exist; create it or choose another path")
    if os.path.isdir(path):
        raise UsageError(f"{option}: {path} is a folder; give a file name such as {example}")
    if not os.access(directory, os.W_OK):
        raise UsageError(f"{option}: cannot write in {directory}")
    return path
