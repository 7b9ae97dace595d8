"""Checkpoints: a run saved at the end of an epoch, resumed exactly where it stopped, and converted
between the two sides' formats (the manual side's .npz, the torch side's .pt state_dicts).

Imports compare.lockstep (the sides, the run's Progress), compare.experiments (the spec),
compare.files and compare.errors; never the dashboards or the command line. The runs do not
import it: a LockstepRun or TorchRun is handed a Checkpoint (``resume=``), which restores it, and
a Saver observes it.

    state    Checkpoint, each side's state read, written and converted to the other side's
    files    load_checkpoint, write_checkpoint, convert: the .npz and .pt formats, read without running code
    resume   check_spec, restore, Saver, save_checkpoint
"""
from backprop_oracle.compare.checkpoints.files import convert, load_checkpoint, write_checkpoint
from backprop_oracle.compare.checkpoints.files import convert as convert_checkpoint
from backprop_oracle.compare.checkpoints.resume import Saver, check_spec, save_checkpoint
from backprop_oracle.compare.checkpoints.state import Checkpoint, CheckpointError

__all__ = ["Checkpoint", "CheckpointError", "Saver", "check_spec", "convert", "convert_checkpoint", "load_checkpoint",
           "save_checkpoint", "write_checkpoint"]
