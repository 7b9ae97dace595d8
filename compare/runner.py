"""Run presets: every run of each preset in lockstep, with command-line overrides applied."""
from compare.lockstep import LockstepRun
from compare.presets import PRESETS, get_preset

# Command-line names of the overrides that apply to every run of a preset.
OVERRIDABLE = ("epochs", "lr", "batch_size", "optimizer", "seed", "dtype", "device")


def resolve_presets(names):
    """Preset objects for names given on the command line; "all" is every preset, in order."""
    if not names:
        raise_missing()
    if "all" in names:
        return list(PRESETS.values())
    seen, out = set(), []
    for n in names:
        if n not in seen:
            out.append(get_preset(n))
            seen.add(n)
    return out


def raise_missing():
    from compare.spec import SpecError
    raise SpecError(f"name a preset to run, or 'all'; presets: {', '.join(PRESETS)}")


def apply_overrides(spec, overrides):
    """The spec with overrides applied; batch_size "full" means the whole training set."""
    changes = {k: v for k, v in (overrides or {}).items() if v is not None}
    if changes.get("batch_size") == "full":
        changes["batch_size"] = None
        spec = spec.with_overrides(**{k: v for k, v in changes.items() if k != "batch_size"})
        from dataclasses import replace
        return replace(spec, batch_size=None).validate()
    return spec.with_overrides(**changes)


def run_preset(preset, overrides=None, observers_for=None):
    """Run every run of ``preset``; returns [(run name, LockstepResult, (goal met, goal text) or None)].

    ``observers_for(run_name, spec)`` returns the observers (progress bar, TensorBoard) for one run.
    """
    specs = [(name, apply_overrides(spec, overrides))
             for name, spec in zip(preset.run_names(), preset.runs.values())]
    out = []
    for (name, spec), label in zip(specs, preset.runs):
        observers = observers_for(name, spec) if observers_for else ()
        result = LockstepRun(spec, name=name, observers=observers).run()
        expectation = preset.expect.get(label)
        goal = None
        if expectation is not None:
            ok, value = expectation.check(result)
            goal = (ok, f"{expectation}, reached {value if value is None else format(value, '.4g')}")
        out.append((name, result, goal))
    return out
