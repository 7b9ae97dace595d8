"""backprop-oracle list: the presets and what each demonstrates."""
import textwrap

from backprop_oracle.compare.experiments.presets import PRESETS, SOURCES

HELP = "list the presets"


def add_arguments(parser):
    pass


def main(args):
    for preset in PRESETS.values():
        goals = ", ".join(f"{(preset.name + ':' + k) if k else preset.name}: {v}" for k, v in preset.expect.items())
        print(preset.name)
        print(textwrap.fill(preset.description, width=96, initial_indent="    ", subsequent_indent="    "))
        if goals:
            print(f"    goal: {goals}")
    print("\nsources:")
    for name, what in SOURCES.items():
        print(textwrap.fill(f"{name}: {what}", width=96, initial_indent="    ", subsequent_indent="        "))
    return 0
