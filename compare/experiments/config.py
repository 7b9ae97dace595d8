"""Experiment files: the whole ExperimentSpec of one or more runs in TOML.

``backprop-oracle run --config exp.toml`` runs one; ``--dump-config`` writes any preset (with the
command line's changes) as one, so that a file starts from a preset and is edited::

    name = "xor"                      # the runs are named xor:single-unit, xor:hidden
    epochs = 500                      # a field at the top applies to every run that does not set it

    [[run]]
    label = "single-unit"
    dataset = "xor"
    hidden_sizes = []                 # or the whole network: layers = ["flatten", "linear(16)", "relu", "linear(1)"]
    lr = 0.3
    optimizer_args = { momentum = 0.6 }
    batch_size = "full"               # or a number; TOML has no None
    goal = "accuracy <= 0.75"         # optional: "accuracy >= X", "final_cost <= X", "gap <= X", "diverges"

Every other key is a field of ExperimentSpec, under its own name. An unknown key or a bad value
is a SpecError that names the file, the line and the fix.
"""
import difflib
import json
import math
import os
import re
import tomllib
from dataclasses import fields

from backprop_oracle.compare.errors import SpecError
from backprop_oracle.compare.experiments.presets import Expectation, Preset
from backprop_oracle.compare.experiments.spec import ExperimentSpec

SPEC_FIELDS = tuple(f.name for f in fields(ExperimentSpec))
RUN_KEYS = ("label", "goal") + SPEC_FIELDS
TOP_KEYS = ("name", "description", "picture", "run") + SPEC_FIELDS
PICTURES = ("cost", "generalisation")     # what a preset's runs share one plot of (Preset.picture)
_TYPES = {"dataset": str, "activation": str, "output_activation": str, "loss": str, "optimizer": str,
          "schedule": str, "init": str, "dtype": str, "device": str, "lr": (int, float), "epochs": int,
          "seed": int, "shuffle": bool, "dataset_args": dict, "optimizer_args": dict, "schedule_args": dict,
          "init_args": dict, "initial_params": dict, "hidden_sizes": list, "batch_size": (int, str),
          "layers": list, "input_shape": list,
          "label": str, "goal": str}
_WORDS = {int: "an integer", (int, float): "a number", bool: "true or false", dict: "a table",
          list: "a list", (int, str): 'a number or "full"'}
# Which field a message of ExperimentSpec.validate is about, by its opening words (for the line).
_MESSAGE_FIELDS = [("unknown activation", "activation"), ("unknown output activation", "output_activation"),
                   ("unknown loss", "loss"), ("unknown optimizer", "optimizer"), ("unknown schedule", "schedule"),
                   ("unknown initialiser", "init"), ("unknown dtype", "dtype"), ("the step activation", "activation"),
                   ("learning rate", "lr"), ("epochs", "epochs"), ("batch size", "batch_size"), ("seed", "seed"),
                   ("hidden sizes", "hidden_sizes"), ("layers", "layers"), ("input_shape", "input_shape"),
                   ("unknown device", "device"), ("cross_entropy", "loss"),
                   ("bce", "loss"), ("hinge", "loss"), ("optimizer_args", "optimizer_args"),
                   ("schedule_args", "schedule_args"), ("init_args", "init_args"),
                   ("initial_params", "initial_params")]
_GOAL = re.compile(r"^\s*(accuracy|final_cost|gap)\s*(>=|<=)\s*(\S+)\s*$|^\s*(diverges)\s*$")


class _Lines:
    """Line numbers of keys in a TOML text (tomllib gives them for syntax errors only): the line
    where run ``index``'s (None: the top level's) ``key`` is set, else the run's ``[[run]]`` line."""

    def __init__(self, text):
        self.keys, self.headers = {}, []    # (run index or None, key) -> line; [[run]] lines
        run, table = None, None
        for number, line in enumerate(text.splitlines(), 1):
            stripped = line.strip()
            if re.match(r"^\[\[\s*run\s*\]\]", stripped):
                run, table = len(self.headers), None
                self.headers.append(number)
                continue
            header = re.match(r"^\[\s*(?:run\s*\.\s*)?([^\]]+?)\s*\]", stripped)
            if header:
                table = header.group(1).strip('"\'')
                self.keys.setdefault((run, table), number)
                continue
            key = re.match(r"""^("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*[=.]""", stripped)
            if key:
                self.keys.setdefault((run, table or key.group(1).strip('"\'')), number)

    def of(self, index, key):
        line = self.keys.get((index, key))
        if line is None and index is not None:
            line = self.keys.get((None, key), self.headers[index] if index < len(self.headers) else None)
        return line


def _close(key, valid):
    close = difflib.get_close_matches(key, valid, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; keys are: {', '.join(valid)}"


def _spec_of(table, where, lines, index):
    """An ExperimentSpec from one run's table, validated; every mistake names its line."""
    def fail(key, message):
        line = lines.of(index, key)
        raise SpecError(f"{where}:{line}: {message}" if line else f"{where}: {message}")

    for key, value in table.items():
        kinds = _TYPES.get(key)
        if kinds is not None and (not isinstance(value, kinds) or (isinstance(value, bool) and kinds is not bool)):
            fail(key, f"{key} must be {_WORDS.get(kinds, 'a string')}, got {json.dumps(value, default=str)}")
    values = {k: v for k, v in table.items() if k in SPEC_FIELDS}
    if "hidden_sizes" in values:
        values["hidden_sizes"] = tuple(values["hidden_sizes"])
    if "batch_size" in values and isinstance(values["batch_size"], str):
        if values["batch_size"] != "full":
            fail("batch_size", f'batch_size must be a number or "full", got {values["batch_size"]!r}')
        values["batch_size"] = None
    if isinstance(values.get("lr"), int):
        values["lr"] = float(values["lr"])
    for key in ("optimizer_args", "schedule_args", "init_args"):
        if "betas" in values.get(key, {}):
            values[key] = dict(values[key], betas=tuple(values[key]["betas"]))
    try:
        spec = ExperimentSpec(**values).validate()
    except SpecError as e:
        key = next((k for opening, k in _MESSAGE_FIELDS if str(e).startswith(opening)), None)
        fail(key, str(e))
    goal = None
    if "goal" in table:
        m = _GOAL.match(table["goal"])
        if not m or (m.group(3) is not None and not _is_number(m.group(3))):
            fail("goal", f'goal {table["goal"]!r} is not a goal; write "accuracy >= 0.9", "final_cost <= 0.01", '
                         '"gap <= 0.05" or "diverges"')
        goal = Expectation("diverges") if m.group(4) else Expectation(m.group(1), m.group(2), float(m.group(3)))
    return spec, goal


def _is_number(text):
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def parse_config(text, where="<config>"):
    """A Preset from the text of an experiment file (``where`` names it in messages)."""
    lines = _Lines(text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{where}: not valid TOML: {e}") from None
    for key in data:
        if key not in TOP_KEYS:
            raise SpecError(f"{where}:{lines.of(None, key)}: unknown key {key!r}{_close(key, TOP_KEYS)}")
    runs = data.get("run", [{}] if any(k in SPEC_FIELDS for k in data) else None)
    if not isinstance(runs, list) or not runs or not all(isinstance(r, dict) for r in runs):
        raise SpecError(f"{where}: no [[run]] table; give each run as a [[run]] table of ExperimentSpec fields "
                        "(backprop-oracle run PRESET --dump-config writes an example)")
    name = data.get("name", os.path.splitext(os.path.basename(where))[0] or "config")
    if not isinstance(name, str) or not name or ":" in name or "[" in name:
        raise SpecError(f"{where}:{lines.of(None, 'name')}: name must be a string without ':' or '[', "
                        f"got {json.dumps(name)}")
    shared = {k: v for k, v in data.items() if k in SPEC_FIELDS}
    specs, expect = {}, {}
    for i, table in enumerate(runs):
        for key in table:
            if key not in RUN_KEYS:
                raise SpecError(f"{where}:{lines.of(i, key)}: unknown key {key!r} in [[run]] {i + 1}"
                                f"{_close(key, RUN_KEYS)}")
        label = table.get("label", "" if len(runs) == 1 else f"run{i + 1}")
        if not isinstance(label, str) or ":" in label:
            raise SpecError(f"{where}:{lines.of(i, 'label')}: label must be a string without ':', "
                            f"got {json.dumps(label)}")
        if label in specs:
            raise SpecError(f"{where}:{lines.of(i, 'label')}: two runs are labelled {label!r}; give each its own")
        specs[label], goal = _spec_of({**shared, **table}, where, lines, i)
        if goal is not None:
            expect[label] = goal
    description = data.get("description", f"the experiment file {where}")
    picture = data.get("picture", "cost")
    if picture not in PICTURES:
        raise SpecError(f"{where}:{lines.of(None, 'picture')}: picture must be \"cost\" (the runs' cost per epoch) "
                        f"or \"generalisation\" (their training and validation accuracy), got {json.dumps(picture)}")
    return Preset(name, str(description), specs, expect, picture=picture)


def load_config(path):
    """A Preset from the experiment file at ``path``: its runs and their goals."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise SpecError(f"--config: cannot read {path}: {e.strerror}; give the path of a TOML experiment file") \
            from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a text file (TOML is UTF-8); give a TOML experiment file") from None
    return parse_config(text, where=str(path))


# Writing: every value ExperimentSpec holds is a string, bool, number, list or flat dict.

def _value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, float):
        return repr(v)          # repr round-trips exactly; TOML reads it back to the same float
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }" if v else "{}"
    if hasattr(v, "tolist"):
        return _value(v.tolist())
    raise SpecError(f"cannot write {v!r} in TOML")


def _key(k):
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def dump_config(preset, command=None):
    """The TOML text of ``preset``'s runs (each an ExperimentSpec and its goal): ``load_config``
    of it gives the same specs. ``command`` is quoted in the header comment."""
    out = ["# A backprop-oracle experiment: every field of each run's ExperimentSpec. Edit it and run it with",
           "#     backprop-oracle run --config FILE",
           "# Add [[run]] tables for more runs; a field at the top applies to every run that does not set it."]
    if command:
        out.append(f"# Written by: {command}")
    out += ["", f"name = {_value(preset.name)}", f"description = {_value(preset.description)}"]
    if preset.picture != "cost":
        out.append(f"picture = {_value(preset.picture)}   # the runs' training and validation accuracy on one plot")
    for label, spec in preset.runs.items():
        out += ["", "[[run]]"]
        if label:
            out.append(f"label = {_value(label)}")
        if label in preset.expect:
            out.append(f"goal = {_value(str(preset.expect[label]))}")
        for key, value in spec.to_dict().items():
            if (key == "initial_params" and value is None) or (key in ("layers", "input_shape") and not value):
                continue
            if key == "batch_size" and value is None:
                value = "full"
            unused = spec.layers and key in ("activation", "output_activation")
            out.append(f"{key} = {_value(value)}" + ("   # not used: each layer names its own" if unused else ""))
    return "\n".join(out) + "\n"
