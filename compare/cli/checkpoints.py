"""``--save FILE``, ``--save-every N`` and ``--resume FILE`` for ``run`` and ``train``, and the
``convert`` command: checkpoints (compare.lockstep.checkpoint) from the command line."""
import os
import sys

from backprop_oracle.compare.arguments.types import json_path, positive_int
from backprop_oracle.compare.errors import UsageError

HELP = "convert a checkpoint between the manual side's .npz and the torch side's .pt"


def add_checkpoint_arguments(parser, both_sides):
    group = parser.add_argument_group("checkpoints")
    kinds = ".npz (both sides)" if both_sides else ".pt (the torch side's state_dict) or .npz (as the manual side's)"
    group.add_argument("--save", metavar="FILE", help=f"save the run at its end to FILE, {kinds}; a save "
                       "replaces the file whole, so a crash leaves the previous one")
    group.add_argument("--save-every", type=positive_int, metavar="N",
                       help="with --save: also save at the end of every N-th epoch")
    group.add_argument("--resume", metavar="FILE", help="continue the run saved in FILE (.npz or .pt) exactly "
                       "where it stopped; give the same preset and options, and --epochs for the whole run")


def _check_save_path(path, both_sides):
    ext = os.path.splitext(path)[1].lower()
    if both_sides and ext != ".npz":
        raise UsageError(f"--save: {path}: run saves both sides, the manual side's arrays with the torch side's "
                         f"state_dict inside, in an .npz file; name it {os.path.splitext(path)[0]}.npz")
    if ext not in (".npz", ".pt"):
        raise UsageError(f"--save: {path} must end in .pt (the torch side's state_dict) or .npz (as the manual "
                         f"side's arrays)")
    json_path(path, "--save", example="run.npz")


def checkpoint_options(args, runs, both_sides):
    """Check --save, --save-every and --resume against the runs asked for, before anything runs;
    returns (resume: a loaded Checkpoint or None, saver_for(): a new Saver observer or None)."""
    save, every, resume = getattr(args, "save", None), getattr(args, "save_every", None), getattr(args, "resume", None)
    if every is not None and save is None:
        raise UsageError("--save-every needs --save FILE")
    if save is None and resume is None:
        return None, lambda: None
    if len(runs) != 1:
        names = ", ".join(name for name, _ in runs)
        raise UsageError(f"--save and --resume hold one run, and {len(runs)} were asked for ({names}); "
                         f"name one, e.g. {runs[0][0]}")
    from backprop_oracle.compare.checkpoints import Saver, check_spec, load_checkpoint
    if save is not None:
        _check_save_path(save, both_sides)
    checkpoint = None
    if resume is not None:
        checkpoint = load_checkpoint(resume)
        check_spec(checkpoint, runs[0][1])
    return checkpoint, (lambda: Saver(save, every)) if save is not None else (lambda: None)


def say_saved(saver, result):
    """Tell, on stderr, what was saved, or why the end of the run was not."""
    if saver is None:
        return
    epochs = result.spec.epochs
    if saver.saved is not None and saver.saved[0] == epochs:
        print(f"saved epoch {epochs} (step {saver.saved[1]}) to {saver.path}", file=sys.stderr)
        return
    where = f"epoch {saver.saved[0]} is the last saved in it" if saver.saved else "it was not written"
    print(f"{saver.path}: the run stopped at step {result.steps} before its end, so its end was not saved; "
          f"{where}", file=sys.stderr)


def say_interrupted(saver):
    """After Ctrl-C: what the checkpoint file holds."""
    if saver is not None:
        held = f"holds epoch {saver.saved[0]} (step {saver.saved[1]})" if saver.saved else "was not written"
        print(f"{saver.path}: {held}; --resume {saver.path} goes on from there", file=sys.stderr)


def add_arguments(parser):
    parser.add_argument("source", metavar="IN", help="a checkpoint written by --save (.npz or .pt)")
    parser.add_argument("target", metavar="OUT", help="the checkpoint to write in the other format (.pt or .npz)")


def main(args):
    from backprop_oracle.compare.checkpoints import convert
    src, dst = os.path.splitext(args.source)[1].lower(), os.path.splitext(args.target)[1].lower()
    if src == dst and src in (".npz", ".pt"):
        raise UsageError(f"convert writes the other format: {args.source} is {src} already; name OUT "
                         f"{os.path.splitext(args.target)[0]}{'.pt' if src == '.npz' else '.npz'}")
    directory = os.path.dirname(os.path.abspath(args.target))
    if not os.path.isdir(directory):
        raise UsageError(f"convert: the folder {directory} does not exist; create it or choose another path")
    checkpoint = convert(args.source, args.target)
    side = "torch side's state_dict" if dst == ".pt" else "manual side's arrays"
    print(f"{args.target}: the {side} at epoch {checkpoint.progress.epoch} (step {checkpoint.progress.step}) "
          f"of {args.source}")
    return 0
