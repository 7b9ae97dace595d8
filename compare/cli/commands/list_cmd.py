"""backprop-oracle list: the presets and what each demonstrates; ``--keys``: every registry key
(activations, losses, optimizers, schedules, initialisers) with its torch name."""
import textwrap

from backprop_oracle.compare.experiments.presets import CUSTOM, PRESETS, SOURCES

HELP = "list the presets (--keys: every activation, loss, optimizer, schedule, initialiser and layer kind)"


def add_arguments(parser):
    parser.add_argument("--keys", action="store_true",
                        help="list every registry key (activations, losses, optimizers, schedules, initialisers, layer kinds) "
                             "with the torch name it stands for and its arguments")


def main(args):
    if getattr(args, "keys", False):
        from backprop_oracle.compare.keys.listing import keys_table
        print(keys_table(), end="")
        return 0
    for preset in PRESETS.values():
        goals = ", ".join(f"{(preset.name + ':' + k) if k else preset.name}: {v}" for k, v in preset.expect.items())
        print(preset.name)
        print(textwrap.fill(preset.description, width=96, initial_indent="    ", subsequent_indent="    "))
        if goals:
            print(f"    goal: {goals}")
    print(f"\n{CUSTOM.name}")
    print(textwrap.fill(CUSTOM.description, width=96, initial_indent="    ", subsequent_indent="    "))
    print(textwrap.fill("Any preset takes the same options; a comma list sweeps (--lr 0.5,5,50); --dump-config "
                        "writes the runs as an experiment file for --config.", width=96, initial_indent="    ",
                        subsequent_indent="    "))
    print("\nsources:")
    for name, what in SOURCES.items():
        print(textwrap.fill(f"{name}: {what}", width=96, initial_indent="    ", subsequent_indent="        "))
    return 0
