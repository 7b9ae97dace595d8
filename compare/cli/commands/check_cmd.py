"""backprop-oracle check FILE.py:FUNCTION --sizes 2,3,1 ...: a hand-written network backprop
against torch autograd, every gradient element by element, the first wrong node named.

The function (or network object) may keep its values in its own layout (--layout, found out by
default). The network comes from flags, a JSON spec file (--spec; keys: sizes, activation,
output_activation, loss, and optionally batch, trials, seed, naming, dtype, layout, l2), or a preset
(--preset: its architecture and its training data). Flags override the file, which overrides
the preset. Exit 0 when every tensor agrees, 1 on a mismatch, 2 on a usage error.
"""
import argparse
import json
import os
import sys

from backprop_oracle.compare.arguments.types import json_path, positive_int, registry_key
from backprop_oracle.compare.cli.commands import update_check
from backprop_oracle.compare.cli.commands.user_file import import_user_file
from backprop_oracle.compare.errors import UsageError
from backprop_oracle.manual import ACTIVATIONS, DTYPES, LOSSES

HELP = "check a hand-written network backprop function (params, X, Y) -> (cost, grads) against torch"

SPEC_KEYS = ("sizes", "activation", "output_activation", "loss", "batch", "trials", "seed", "naming", "dtype",
             "layout", "l2")
DEFAULTS = {"activation": "sigmoid", "output_activation": "identity", "loss": "squared_error",
            "batch": 4, "trials": 2, "seed": 0, "naming": None, "dtype": "float64", "layout": "auto", "l2": 0.0}
LAYOUTS = ("auto", "torch", "or-gate", "deeplearning.ai", "cs231n", "nielsen")


def sizes_list(text):
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        sizes = []
    if len(sizes) < 2 or min(sizes) < 1:
        raise UsageError(f"--sizes: expected positive integers separated by commas (inputs,hidden...,"
                         f"outputs), e.g. 2,3,1; got {text!r}")
    return sizes


def _factor(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0 (the factor of FACTOR·ΣW² in the cost), "
                                         f"got {text!r}")
    return value


def add_arguments(parser):
    parser.add_argument("target", metavar="FILE.py:FUNCTION",
                        help="fn(params, X, Y) -> (cost, grads) or (cost, grads, intermediates), or a network "
                             "object: a model with params and loss(X, y), a net with weights, biases, backprop(x, y)")
    net = parser.add_argument_group("the network (flags, --spec FILE.json, or --preset NAME)")
    net.add_argument("--sizes", help="layer sizes, inputs first: e.g. 2,3,1")
    net.add_argument("--activation", type=registry_key(ACTIVATIONS, "activation"),
                     help=f"hidden layers (default sigmoid): {', '.join(ACTIVATIONS)}; torch's arguments after a "
                          "colon, elu:alpha=0.5")
    net.add_argument("--output-activation", type=registry_key(ACTIVATIONS, "activation"),
                     help="output layer (default identity)")
    net.add_argument("--loss", type=registry_key(LOSSES, "loss"),
                     help=f"the cost (default squared_error): {', '.join(LOSSES)}; with arguments, "
                          "cross_entropy:label_smoothing=0.1")
    net.add_argument("--spec", metavar="FILE.json",
                     help=f"a JSON object with the keys {', '.join(SPEC_KEYS)} (sizes required)")
    net.add_argument("--preset", help="take the architecture and the training data from a preset")
    parser.add_argument("--batch", type=positive_int, help="random examples per trial (default 4)")
    parser.add_argument("--trials", type=positive_int, help="random draws of parameters and data (default 2)")
    parser.add_argument("--seed", type=int, help="seed of the random draws, 0 to 2^32 - 1 (default 0)")
    parser.add_argument("--naming", choices=["torch", "layers"],
                        help="parameter names: torch's 0.weight, 0.bias, ... or W1, b1, ... (default: found out)")
    parser.add_argument("--layout", choices=list(LAYOUTS),
                        help="where your code keeps examples, weights and biases (default auto: found out from "
                             "what it accepts and returns, and said in the report)")
    parser.add_argument("--l2", type=_factor, metavar="FACTOR",
                        help="the cost includes FACTOR·ΣW² over every layer's weights (default 0)")
    parser.add_argument("--dtype", choices=list(DTYPES), help="precision handed to your function (default float64)")
    parser.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    update_check.add_arguments(parser)        # --optimizer / --schedule: an update rule instead of a network


def load_function(target):
    """The function named by FILE.py:FUNCTION, imported from that file."""
    module, path, name = import_user_file(target, "FUNCTION", "student.py:backprop")
    fn = getattr(module, name, None)
    if fn is not None and not callable(fn) and (callable(getattr(fn, "loss", None)) or
                                               callable(getattr(fn, "backprop", None))):
        return fn          # a network object: a model with loss(X, y), a net with backprop(x, y)
    if not callable(fn):
        found = [k for k, v in vars(module).items()
                 if callable(v) and not k.startswith("_") and not isinstance(v, type)]
        raise UsageError(f"{path} has no function {name!r}; it defines: {', '.join(found) or 'none'}")
    return fn


def _key_in(value, registry):
    """A registry key, with torch's arguments if any ("elu:alpha=0.5"), whose name is in ``registry``."""
    from backprop_oracle.manual import split_key
    try:
        return isinstance(value, str) and split_key(value)[0] in registry
    except ValueError:
        return False


def _check_value(source, key, value):
    """A --spec value of the right kind, or a UsageError naming the key and what it takes."""
    def positive(v):
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1
    rules = {
        "sizes": (lambda v: isinstance(v, list) and len(v) >= 2 and all(positive(x) for x in v),
                  "a list of at least two positive integers, inputs first, e.g. [2, 3, 1]"),
        "activation": (lambda v: _key_in(v, ACTIVATIONS), f"one of {', '.join(ACTIVATIONS)} (elu:alpha=0.5 with "
                                                             "torch's arguments)"),
        "output_activation": (lambda v: _key_in(v, ACTIVATIONS), f"one of {', '.join(ACTIVATIONS)}"),
        "loss": (lambda v: _key_in(v, LOSSES), f"one of {', '.join(LOSSES)}"),
        "batch": (positive, "a positive integer"),
        "trials": (positive, "a positive integer"),
        "seed": (lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 2**32 - 1,
                 "an integer from 0 to 4294967295"),
        "naming": (lambda v: v in ("torch", "layers"), "'torch' or 'layers'"),
        "layout": (lambda v: v in LAYOUTS, f"one of {', '.join(LAYOUTS)}"),
        "l2": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < float("inf"),
               "a number >= 0"),
        "dtype": (lambda v: v in DTYPES, f"one of {', '.join(DTYPES)}"),
    }
    ok, takes = rules[key]
    if not ok(value):
        raise UsageError(f"{source}: {key} must be {takes}, got {json.dumps(value)}")


def resolve_options(args):
    """(options, data): the network and run options from preset, spec file and flags, in that order."""
    options, data = dict(DEFAULTS), None
    architecture = [f"--{k.replace('_', '-')}" for k in ("sizes", "activation", "output_activation", "loss")
                    if getattr(args, k) is not None] + (["--spec"] if args.spec else [])
    if args.preset and architecture:
        raise UsageError(f"--preset takes the network and its data from the preset; {', '.join(architecture)} "
                         "would describe another network. Give one or the other")
    if args.preset:
        from backprop_oracle.compare.experiments.setup import prepare
        from backprop_oracle.compare.trace.example import resolve_run
        _, spec = resolve_run(args.preset)
        problem = prepare(spec)
        options.update(sizes=list(problem.sizes), activation=spec.activation,
                       output_activation=spec.output_activation, loss=spec.loss, dtype=spec.dtype)
        data = (problem.X, problem.Y)
    if args.spec:
        try:
            with open(args.spec) as f:
                loaded = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise UsageError(f"--spec {args.spec}: {e}") from None
        if not isinstance(loaded, dict):
            raise UsageError(f"--spec {args.spec}: expected a JSON object with keys {', '.join(SPEC_KEYS)}")
        unknown = sorted(set(loaded) - set(SPEC_KEYS))
        if unknown:
            raise UsageError(f"--spec {args.spec}: unknown key(s) {unknown}; keys are: {', '.join(SPEC_KEYS)}")
        for key, value in loaded.items():
            _check_value(f"--spec {args.spec}", key, value)
        options.update(loaded)
    flags = {"sizes": sizes_list(args.sizes) if args.sizes else None, "activation": args.activation,
             "output_activation": args.output_activation, "loss": args.loss, "batch": args.batch,
             "trials": args.trials, "seed": args.seed, "naming": args.naming, "dtype": args.dtype,
             "layout": args.layout, "l2": args.l2}
    options.update({k: v for k, v in flags.items() if v is not None})
    if data is not None and args.batch:
        data = (data[0][:args.batch], data[1][:args.batch])
    return options, data


def main(args):
    if update_check.wanted(args):
        return update_check.main(args)
    from backprop_oracle.compare.check.api import CheckError, check_network
    if args.json:
        json_path(args.json)
    options, data = resolve_options(args)
    # The file's folder stays importable for the whole check: its functions may import their
    # neighbours when they are called, not only when the file is imported.
    folder = os.path.dirname(os.path.abspath(args.target.rpartition(":")[0]))
    sys.path.insert(0, folder)
    try:
        fn = load_function(args.target)
        if "sizes" not in options:
            from backprop_oracle.compare.layouts.adapters import adapt
            if adapt(fn).sizes is None:
                raise UsageError("give the network: --sizes 2,3,1 (with --activation, --output-activation, "
                                 "--loss), or --spec FILE.json, or --preset NAME")
            options["sizes"] = list(adapt(fn).sizes)     # the object's own arrays show them
        spec = {k: options[k] for k in ("sizes", "activation", "output_activation", "loss")}
        result = check_network(fn, spec, batch=options["batch"], trials=options["trials"],
                               seed=options["seed"], naming=options["naming"], dtype=options["dtype"],
                               layout=options["layout"], l2=options["l2"], data=data, name=args.target)
    except CheckError as e:
        raise UsageError(str(e)) from None
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    print(result.report())
    if args.json:
        from backprop_oracle.compare.lockstep.report import write_json
        write_json(args.json, result.to_dict())
    sys.stdout.flush()
    return 0 if result.passed else 1
