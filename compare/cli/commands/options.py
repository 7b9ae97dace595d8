"""Command-line options that ``run`` and ``train`` share: what to run (presets, an experiment file,
or an experiment of one's own), every part of its spec, sweeps, MNIST, TensorBoard and the JSON
report.

A comma list on an option is a sweep, one run per value (the product of several lists):
``--lr 0.5,5,50``. ``--hidden`` and ``--betas`` take commas inside one value (``--hidden 32,32`` is
two layers of 32), so their alternatives are separated by spaces: ``--hidden 4 16 64``.
"""
import argparse

from backprop_oracle.compare.arguments.types import (batch_size, int_list, keywords, layer_sizes, layers_list,
                                                     listed, listed_keys, number, pair, positive_float,
                                                     positive_int, shape)
from backprop_oracle.compare.network.layers import LAYERS
from backprop_oracle.manual import ACTIVATIONS, DTYPES, INITIALISERS, LOSSES, OPTIMIZERS, SCHEDULERS

# option destination -> the change's name (compare.experiments.overrides); the others are the same.
_RENAMED = {"hidden": "hidden_sizes", "t_max": "T_max"}
CHANGE_OPTIONS = ("dataset", "hidden", "layers", "input_shape", "activation", "output_activation", "loss", "init", "init_args", "optimizer",
                  "lr", "momentum", "dampening", "nesterov", "weight_decay", "betas", "eps", "amsgrad", "alpha",
                  "centered", "lr_decay", "initial_accumulator_value", "schedule", "step_size", "gamma",
                  "milestones", "t_max", "eta_min", "start_factor", "end_factor", "total_iters", "max_lr",
                  "total_steps", "pct_start", "anneal_strategy", "cycle_momentum", "base_momentum", "max_momentum",
                  "div_factor", "final_div_factor", "three_phase", "schedulers",
                  "epochs", "batch_size", "shuffle", "seed", "dtype", "device")


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
    net = parser.add_argument_group("the network (comma lists sweep: --activation relu,tanh; torch's arguments "
                                    "after a colon: --activation elu:alpha=0.5, --loss "
                                    "cross_entropy:label_smoothing=0.1,weight=1,2,3)")
    net.add_argument("--hidden", nargs="+", type=layer_sizes, metavar="SIZES",
                     help="hidden layer sizes, e.g. 32,32 (two layers) or none; several, separated by spaces, "
                          "sweep: --hidden 4 16 64")
    net.add_argument("--layers", nargs="+", type=layers_list, metavar="LAYERS",
                     help="the whole network written out instead of --hidden, each layer kind or kind(arguments) "
                          "in torch's order and names, the input size never written (it is the shape flowing in): "
                          f"\"flatten linear(16) relu linear(10)\"; kinds: {', '.join(LAYERS)}. The last layer "
                          "gives the outputs and, where it is an activation, is the output activation; several "
                          "networks, each quoted, sweep")
    net.add_argument("--input-shape", type=shape, metavar="C,H,W",
                     help="the shape of one example, e.g. 1,8,8: each row of the data reshaped to it (for --layers)")
    net.add_argument("--activation", type=listed_keys(ACTIVATIONS, "activation"),
                     help=f"hidden layers: {', '.join(ACTIVATIONS)}")
    net.add_argument("--output-activation", type=listed_keys(ACTIVATIONS, "activation"),
                     help="the last layer's activation")
    net.add_argument("--loss", type=listed_keys(LOSSES, "loss"),
                     help=f"{', '.join(LOSSES)} (backprop-oracle list --keys: each with torch's name)")
    net.add_argument("--init", type=listed(str, INITIALISERS),
                     help=f"weight initialiser ({', '.join(INITIALISERS)}); replaces a preset's given weights")
    net.add_argument("--init-args", nargs="+", type=keywords, metavar="KEY=VALUE,...",
                     help="the initialiser's arguments, torch's names: kaiming_* a, mode (fan_in, fan_out), "
                          "nonlinearity (relu, leaky_relu, tanh, ...); orthogonal and xavier_* gain; trunc_normal "
                          "mean, std, a, b (bounds); e.g. mode=fan_out,nonlinearity=relu; several, separated by "
                          "spaces, sweep")
    opt = parser.add_argument_group("training (numbers: comma lists sweep, e.g. --lr 0.5,5,50)")
    opt.add_argument("--optimizer", type=listed(str, OPTIMIZERS),
                     help="the optimizer; the preset's optimizer arguments the new one does not take (SGD's "
                          "momentum, Adam's betas) are dropped, weight_decay is kept")
    opt.add_argument("--lr", type=listed(positive_float), help="the learning rate α")
    opt.add_argument("--momentum", type=listed(number), help="SGD's momentum μ")
    opt.add_argument("--dampening", type=listed(number), help="SGD's dampening")
    opt.add_argument("--nesterov", action=argparse.BooleanOptionalAction, help="SGD's Nesterov momentum")
    opt.add_argument("--weight-decay", type=listed(number),
                     help="weight decay λ: added to the gradient (L2) by sgd, adam, rmsprop, adagrad; decoupled, "
                          "w·(1 − lr·λ), by adamw (default 0.01)")
    opt.add_argument("--betas", nargs="+", type=pair, metavar="B1,B2", help="Adam's and AdamW's betas, e.g. 0.9,0.999")
    opt.add_argument("--eps", type=listed(number), help="epsilon of adam, adamw, rmsprop, adagrad (outside the root)")
    opt.add_argument("--amsgrad", action=argparse.BooleanOptionalAction,
                     help="adam, adamw: divide by the running maximum of v")
    opt.add_argument("--alpha", type=listed(number), help="RMSprop's smoothing constant α (default 0.99)")
    opt.add_argument("--centered", action=argparse.BooleanOptionalAction,
                     help="RMSprop: divide by the variance estimate v − ḡ² instead of v")
    opt.add_argument("--lr-decay", type=listed(number), help="Adagrad: lr / (1 + (t − 1)·lr_decay)")
    opt.add_argument("--initial-accumulator-value", type=listed(number), help="Adagrad's starting sum of g²")
    opt.add_argument("--schedule", type=listed(str, SCHEDULERS),
                     help="the learning rate: per epoch constant, step (--step-size, --gamma), exponential "
                          "(--gamma), multistep (--milestones, --gamma), cosine (--t-max, --eta-min), linear "
                          "warm-up (--start-factor, --end-factor, --total-iters), sequential (--schedulers, "
                          "--milestones: e.g. --schedulers linear,cosine --milestones 5 --total-iters 5 --t-max 95); "
                          "per step onecycle (--max-lr, default --lr; its length the run's unless --total-steps)")
    opt.add_argument("--step-size", type=listed(positive_int), help="step schedule: epochs between decays")
    opt.add_argument("--gamma", type=listed(number), help="step, exponential and multistep: the decay factor")
    opt.add_argument("--milestones", nargs="+", type=int_list, metavar="E1,E2",
                     help="multistep: the epochs where the rate decays; sequential: where the next schedule starts")
    opt.add_argument("--t-max", type=listed(positive_int), help="cosine: the epochs of the half cosine (T_max)")
    opt.add_argument("--eta-min", type=listed(number), help="cosine: the lowest rate")
    opt.add_argument("--start-factor", type=listed(number), help="linear: the first epoch's factor (default 1/3)")
    opt.add_argument("--end-factor", type=listed(number), help="linear: the factor reached (default 1)")
    opt.add_argument("--total-iters", type=listed(positive_int), help="linear: the epochs the warm-up lasts (default 5)")
    opt.add_argument("--schedulers", nargs="+", type=listed(str, [k for k in SCHEDULERS if k not in ("sequential", "onecycle")]),
                     metavar="S1,S2", help="sequential: the schedules, in order, e.g. linear,cosine")
    opt.add_argument("--max-lr", type=listed(positive_float), help="onecycle: the peak rate (default: --lr)")
    opt.add_argument("--total-steps", type=listed(positive_int), help="onecycle: its length in steps (default: the run's)")
    opt.add_argument("--pct-start", type=listed(number), help="onecycle: the share of steps spent rising (0.3)")
    opt.add_argument("--anneal-strategy", type=listed(str, ("cos", "linear")), help="onecycle: cos or linear")
    opt.add_argument("--cycle-momentum", action=argparse.BooleanOptionalAction,
                     help="onecycle: cycle the momentum (or Adam's β1) against the rate (torch's default: on)")
    opt.add_argument("--base-momentum", type=listed(number), help="onecycle: the lowest momentum (0.85)")
    opt.add_argument("--max-momentum", type=listed(number), help="onecycle: the highest momentum (0.95)")
    opt.add_argument("--div-factor", type=listed(number), help="onecycle: first rate = max_lr / div_factor (25)")
    opt.add_argument("--final-div-factor", type=listed(number),
                     help="onecycle: last rate = first rate / final_div_factor (1e4)")
    opt.add_argument("--three-phase", action=argparse.BooleanOptionalAction,
                     help="onecycle: up, down to the first rate, then to the last")
    opt.add_argument("--epochs", type=listed(positive_int), help="the number of epochs")
    opt.add_argument("--batch-size", type=listed(batch_size), help="the batch size (a number, or 'full')")
    opt.add_argument("--shuffle", action=argparse.BooleanOptionalAction,
                     help="reshuffle the batch order each epoch (the same order on both sides)")
    # Checked by ExperimentSpec, so that the command line and Python say the same.
    opt.add_argument("--seed", type=listed(int), help="the seed of weights, batch order and data (0 to 2^32 - 1)")
    opt.add_argument("--dtype", type=listed(str, DTYPES), default=dtype_default, help=dtype_help)
    opt.add_argument("--device", default=device_default, help=device_help)
    parser.add_argument("--mnist-dir", metavar="DIR", help="use MNIST for the digits preset's 784-16-16-10 "
                        "network and digits-cnn's 28x28 one: DIR holds the four IDX files (plain or .gz)")
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
