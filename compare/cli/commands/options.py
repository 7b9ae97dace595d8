"""Command-line options that ``run`` and ``train`` share: what to run (presets, an experiment file,
or an experiment of one's own), every part of its spec, sweeps, MNIST, TensorBoard and the JSON
report.

A comma list on an option is a sweep, one run per value (the product of several lists):
``--lr 0.5,5,50``. ``--hidden`` and ``--betas`` take commas inside one value (``--hidden 32,32`` is
two layers of 32), so their alternatives are separated by spaces: ``--hidden 4 16 64``.
"""
import argparse

from backprop_oracle.compare.cli.arguments import (batch_size, layer_sizes, listed, number, pair,
                                                   positive_float, positive_int)
from backprop_oracle.manual import ACTIVATIONS, DTYPES, INITIALISERS, LOSSES, OPTIMIZERS, SCHEDULERS

# option destination -> the change's name (compare.experiments.overrides); the others are the same.
_RENAMED = {"hidden": "hidden_sizes"}
CHANGE_OPTIONS = ("dataset", "hidden", "activation", "output_activation", "loss", "init", "optimizer", "lr",
                  "momentum", "dampening", "nesterov", "weight_decay", "betas", "eps", "schedule", "step_size",
                  "gamma", "epochs", "batch_size", "shuffle", "seed", "dtype", "device")


def add_preset_arguments(parser, *, dtype_default, dtype_help, device_default, device_help):
    parser.add_argument("presets", nargs="*", metavar="PRESET",
                        help="preset names, 'all', or 'custom' (ExperimentSpec's defaults, set by the options "
                             "below); none with --config or --dataset")
    what = parser.add_argument_group("what to run")
    what.add_argument("--config", metavar="FILE", help="run the experiment file FILE (TOML: one [[run]] table "
                                                       "per run; --dump-config writes one)")
    what.add_argument("--dump-config", nargs="?", const="-", metavar="FILE",
                      help="write the runs asked for (with every change and sweep) as an experiment file to FILE "
                           "(default: print it), and run nothing")
    what.add_argument("--dataset", type=listed(str), help="the data set (without a preset: an experiment of "
                                                          "your own on it)")
    net = parser.add_argument_group("the network (comma lists sweep: --activation relu,tanh)")
    net.add_argument("--hidden", nargs="+", type=layer_sizes, metavar="SIZES",
                     help="hidden layer sizes, e.g. 32,32 (two layers) or none; several, separated by spaces, "
                          "sweep: --hidden 4 16 64")
    net.add_argument("--activation", type=listed(str, ACTIVATIONS), help=f"hidden layers: {', '.join(ACTIVATIONS)}")
    net.add_argument("--output-activation", type=listed(str, ACTIVATIONS), help="the last layer's activation")
    net.add_argument("--loss", type=listed(str, LOSSES), help=", ".join(LOSSES))
    net.add_argument("--init", type=listed(str, INITIALISERS),
                     help=f"weight initialiser ({', '.join(INITIALISERS)}); replaces a preset's given weights")
    opt = parser.add_argument_group("training (numbers: comma lists sweep, e.g. --lr 0.5,5,50)")
    opt.add_argument("--optimizer", type=listed(str, OPTIMIZERS),
                     help="the optimizer; the preset's optimizer arguments the new one does not take (SGD's "
                          "momentum, Adam's betas) are dropped, weight_decay is kept")
    opt.add_argument("--lr", type=listed(positive_float), help="the learning rate α")
    opt.add_argument("--momentum", type=listed(number), help="SGD's momentum μ")
    opt.add_argument("--dampening", type=listed(number), help="SGD's dampening")
    opt.add_argument("--nesterov", action=argparse.BooleanOptionalAction, help="SGD's Nesterov momentum")
    opt.add_argument("--weight-decay", type=listed(number), help="L2 weight decay (SGD and Adam)")
    opt.add_argument("--betas", nargs="+", type=pair, metavar="B1,B2", help="Adam's betas, e.g. 0.9,0.999")
    opt.add_argument("--eps", type=listed(number), help="Adam's epsilon")
    opt.add_argument("--schedule", type=listed(str, SCHEDULERS),
                     help="the learning rate each epoch: constant, step (--step-size, --gamma) or exponential "
                          "(--gamma)")
    opt.add_argument("--step-size", type=listed(positive_int), help="step schedule: epochs between decays")
    opt.add_argument("--gamma", type=listed(number), help="step and exponential schedules: the decay factor")
    opt.add_argument("--epochs", type=listed(positive_int), help="the number of epochs")
    opt.add_argument("--batch-size", type=listed(batch_size), help="the batch size (a number, or 'full')")
    opt.add_argument("--shuffle", action=argparse.BooleanOptionalAction,
                     help="reshuffle the batch order each epoch (the same order on both sides)")
    # Checked by ExperimentSpec, so that the command line and Python say the same.
    opt.add_argument("--seed", type=listed(int), help="the seed of weights, batch order and data (0 to 2^32 - 1)")
    opt.add_argument("--dtype", type=listed(str, DTYPES), default=dtype_default, help=dtype_help)
    opt.add_argument("--device", default=device_default, help=device_help)
    parser.add_argument("--mnist-dir", metavar="DIR", help="use MNIST for the digits preset's 784-16-16-10 "
                        "network: DIR holds the four IDX files (plain or .gz)")
    parser.add_argument("--mnist-limit", type=positive_int, metavar="N",
                        help="with --mnist-dir: train on the first N of the 60000 images")
    parser.add_argument("--logdir", default="runs", metavar="DIR",
                        help="TensorBoard logs go to DIR/RUN/TIMESTAMP (default: runs)")
    parser.add_argument("--no-tensorboard", action="store_true", help="write no TensorBoard logs")
    parser.add_argument("--json", metavar="FILE", help="also write the results, with cost curves, as JSON")


def overrides_from(args):
    """The changes the command line makes to each run's spec (None: keep the preset's); a list of
    more than one value is a sweep."""
    return {_RENAMED.get(k, k): getattr(args, k, None) for k in CHANGE_OPTIONS}


def what_to_run(args):
    """The names to run: the presets named, "custom" for ``--dataset`` alone; none with ``--config``."""
    if args.presets or args.config:
        return list(args.presets)
    return ["custom"] if args.dataset is not None else []


def dump_config_of(presets, command, path="-"):
    """Write the one preset asked for, as it would run, as an experiment file
    (compare.experiments.config.dump_config) to ``path`` ("-": stdout), whole or not at all."""
    from backprop_oracle.compare.errors import UsageError
    from backprop_oracle.compare.experiments.config import dump_config
    from backprop_oracle.compare.files import write_atomic
    if len(presets) != 1:
        raise UsageError(f"--dump-config writes one preset (or experiment file) at a time, got {len(presets)} "
                         f"({', '.join(p.name for p in presets)}); name one")
    import sys
    for note in presets[0].notes:
        print(note, file=sys.stderr)
    text = dump_config(presets[0])
    if path == "-":
        print(text, end="")
    else:
        write_atomic(path, text)
        print(f"wrote {path}; run it with: backprop-oracle {command} --config {path}", file=sys.stderr)
    return 0


def say_dropped(presets, overrides, optimizer=None):
    """Tell, on stderr, what the changes dropped from each preset (``Preset.notes``: SGD's momentum
    under --optimizer adam, the OR gate's given weights under --hidden), where --seed changes nothing,
    and which presets keep a field they are about (run all)."""
    import sys
    from backprop_oracle.compare.cli.runner import preset_overrides
    from backprop_oracle.compare.experiments.setup import seed_matters
    for preset in presets:
        for note in preset.notes:
            print(note, file=sys.stderr)
        if overrides.get("seed") is not None and not any(seed_matters(spec) for spec in preset.runs.values()):
            print(f"{preset.name}: --seed changes nothing here: its weights are given, its data is fixed and "
                  "it trains on it in order", file=sys.stderr)
        _, kept = preset_overrides(preset, overrides)
        if kept:
            print(f"{preset.name}: keeps its own {', '.join(kept)} (the preset compares runs that differ in it)",
                  file=sys.stderr)
