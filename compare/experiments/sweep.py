"""Sweeps: one run per value of a change, or per combination of several (their product).

A list is a sweep, anything else one value: ``lr=[0.5, 5, 50]`` is three runs,
``hidden_sizes=[(4,), (16,), (64,)]`` three networks, ``hidden_sizes=(32, 32)`` one network of two
layers. Each run is named by the values it was given, in the command line's words:
``or-gate[lr=5]``, ``moons[hidden=32x32,seed=1]``. ::

    from backprop_oracle import ExperimentSpec, run_lockstep, sweep
    for name, spec in sweep(ExperimentSpec(dataset="or", epochs=500), name="or", lr=[0.5, 5, 50]).items():
        print(run_lockstep(spec, name=name).verdict)
"""
import itertools
from dataclasses import replace

from backprop_oracle.compare.errors import SpecError
from backprop_oracle.compare.experiments.overrides import CHANGES, FLAGS, flag, with_changes


def _text(value):
    """A value as a run name shows it: 5.0 -> "5", (32, 32) -> "32x32", None -> "full"."""
    if isinstance(value, (tuple, list)):
        return "x".join(_text(v) for v in value)
    if value is None:
        return "full"
    if isinstance(value, bool):
        return str(value).lower()
    text = repr(value) if isinstance(value, float) else str(value)
    return text[:-2] if text.endswith(".0") else text


def combinations(changes):
    """[(label, changes)]: one entry per combination of the swept (list) values, in the order the
    changes are given, the last varying fastest; the label is "[lr=5,seed=1]" ("" without a sweep)."""
    changes = {k: v for k, v in changes.items() if v is not None}
    swept = {}
    for key, value in changes.items():
        if isinstance(value, list):
            if not value:
                raise SpecError(f"{flag(key)}: give at least one value")
            texts = [_text(v) for v in value]
            twice = sorted({t for t in texts if texts.count(t) > 1})
            if twice:
                raise SpecError(f"{flag(key)} lists {', '.join(twice)} more than once; give each value once")
            if len(value) > 1:
                swept[key] = value
            else:
                changes[key] = value[0]
    out = []
    for values in itertools.product(*swept.values()):
        chosen = dict(zip(swept, values))
        label = ",".join(f"{FLAGS.get(k, k).replace('_', '-')}={' '.join(v) if k == 'layers' else _text(v)}"
                         for k, v in chosen.items())
        out.append((f"[{label}]" if label else "", {**changes, **chosen}))
    return out


def expand(preset, changes, notes=None):
    """``preset`` (compare.experiments.presets.Preset) with ``changes`` applied to each of its runs, a
    run for each combination of swept values, each validated; goals carry over. ``notes`` receives
    "preset: what was dropped" sentences (compare.experiments.overrides.with_changes)."""
    runs, expect = {}, {}
    for label, spec in preset.runs.items():
        for suffix, chosen in combinations(changes):
            said = []
            runs[label + suffix] = with_changes(spec, said, **chosen)
            if label in preset.expect:
                expect[label + suffix] = preset.expect[label]
            if notes is not None:
                notes.extend(n for n in (f"{preset.name}: {s}" for s in said) if n not in notes)
    return replace(preset, runs=runs, expect=expect)


def sweep(spec, name="", **changes):
    """{run name: ExperimentSpec}, a run for each combination of the listed values of ``changes``
    (flat names: lr, seed, hidden_sizes, momentum, ...; see compare.experiments.overrides)."""
    unknown = sorted(set(changes) - set(CHANGES))
    if unknown:
        raise SpecError(f"unknown change(s) {', '.join(unknown)}; changes are: {', '.join(CHANGES)}")
    return {name + label: with_changes(spec, **chosen) for label, chosen in combinations(changes)}
