"""Command-line options that ``run`` and ``train`` share: the overrides of a preset's spec,
MNIST, TensorBoard and the JSON report."""
from backprop_oracle.compare.cli.arguments import batch_size, positive_float, positive_int
from backprop_oracle.manual import DTYPES, OPTIMIZERS


def add_preset_arguments(parser, *, dtype_default, dtype_help, device_default, device_help):
    parser.add_argument("presets", nargs="+", metavar="PRESET", help="preset names, or 'all'")
    parser.add_argument("--epochs", type=positive_int, help="override the number of epochs")
    parser.add_argument("--lr", type=positive_float, help="override the learning rate")
    parser.add_argument("--batch-size", type=batch_size, help="override the batch size (a number, or 'full')")
    parser.add_argument("--optimizer", choices=list(OPTIMIZERS),
                        help="override the optimizer; the preset's optimizer arguments the new one does not "
                             "take (SGD's momentum, Adam's betas) are dropped, weight_decay is kept")
    # Checked by ExperimentSpec, so that the command line and Python say the same.
    parser.add_argument("--seed", type=int, help="override the seed of weights, batch order and data "
                                                 "(0 to 2^32 - 1)")
    parser.add_argument("--dtype", choices=list(DTYPES), default=dtype_default, help=dtype_help)
    parser.add_argument("--device", default=device_default, help=device_help)
    parser.add_argument("--mnist-dir", metavar="DIR", help="use MNIST for the digits preset's 784-16-16-10 "
                        "network: DIR holds the four IDX files (plain or .gz)")
    parser.add_argument("--mnist-limit", type=positive_int, metavar="N",
                        help="with --mnist-dir: train on the first N of the 60000 images")
    parser.add_argument("--logdir", default="runs", metavar="DIR",
                        help="TensorBoard logs go to DIR/RUN/TIMESTAMP (default: runs)")
    parser.add_argument("--no-tensorboard", action="store_true", help="write no TensorBoard logs")
    parser.add_argument("--json", metavar="FILE", help="also write the results, with cost curves, as JSON")


def overrides_from(args):
    """The spec fields the command line overrides (None: keep the preset's)."""
    return {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size, "optimizer": args.optimizer,
            "seed": args.seed, "dtype": args.dtype, "device": args.device}


def say_dropped(presets, overrides, optimizer):
    """Tell, on stderr, which optimizer arguments of each preset a new ``--optimizer`` does not take,
    and which presets keep a field they are about (run all)."""
    import sys
    from backprop_oracle.compare.cli.runner import dropped_arguments, preset_overrides
    from backprop_oracle.compare.experiments.setup import seed_matters
    for preset in presets:
        dropped = sorted({k for spec in preset.runs.values() for k in dropped_arguments(spec, overrides)})
        if dropped:
            print(f"{preset.name}: {optimizer} takes no {', '.join(dropped)}; dropped from the "
                  f"preset's optimizer arguments", file=sys.stderr)
        if overrides.get("seed") is not None and not any(seed_matters(spec) for spec in preset.runs.values()):
            print(f"{preset.name}: --seed changes nothing here: its weights are given, its data is fixed and "
                  "it trains on it in order", file=sys.stderr)
        _, kept = preset_overrides(preset, overrides)
        if kept:
            print(f"{preset.name}: keeps its own {', '.join(kept)} (the preset compares runs that differ in it)",
                  file=sys.stderr)
