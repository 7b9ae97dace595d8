"""``--data FILE`` (with ``--target``, ``--task``, ``--standardize``) for ``run`` and ``train``: the
presets' networks on the user's own CSV or NPZ file (compare.data.user_data)."""
from backprop_oracle.compare.errors import UsageError


def add_data_arguments(parser):
    group = parser.add_argument_group("your own data (a preset's hidden layers and hyperparameters, sized to the file)")
    group.add_argument("--data", metavar="FILE", help="train on FILE instead of the preset's data: a .csv with a "
                       "header row (name the target column with --target) or a .npz with arrays X, y and "
                       "optionally X_val, y_val")
    group.add_argument("--target", metavar="COLUMN", help="with a CSV --data: the column that holds the targets")
    group.add_argument("--task", choices=("classify", "regress"),
                       help="with --data: what the targets are (default: integers are class labels, other "
                            "numbers regression targets)")
    group.add_argument("--standardize", action="store_true",
                       help="with --data: scale each feature by the training split's mean and std "
                            "(default: features as they are)")


def check_data_arguments(args):
    """Refuse --target, --task or --standardize without --data, at once."""
    if getattr(args, "data", None) is None:
        for flag, value in (("--target", args.target), ("--task", args.task), ("--standardize", args.standardize)):
            if value:
                raise UsageError(f"{flag} describes the file of --data; give --data FILE too")


def with_own_data(args, presets, runs, overrides, everything=False):
    """(presets, [(run name, spec)]) on the file of ``--data`` (``presets`` and ``runs`` unchanged
    without it), with the overrides checked against the file's data as against the presets' own."""
    from backprop_oracle.compare.cli.runner import check_overrides
    from backprop_oracle.compare.data.datasets import load_dataset
    from backprop_oracle.compare.experiments.own_data import on_file
    check_data_arguments(args)
    if args.data is None:
        return presets, runs
    if getattr(args, "mnist_dir", None) is not None:
        raise UsageError("--data and --mnist-dir both choose the data; give one of them")
    presets = [on_file(p, args.data, target=args.target, task=args.task, standardize=args.standardize)
               for p in presets]
    # Read once here, so that a bad file is answered before anything is created or run.
    spec = next(iter(presets[0].runs.values()))
    load_dataset("file", seed=spec.seed, **spec.dataset_args)
    return presets, check_overrides(presets, overrides, everything=everything)
