"""``python -m backprop_oracle``: the same as the ``backprop-oracle`` command. torchrun and our own
launch start each training process this way; one that joined a process group ends with os._exit
(compare.train.distributed.exit_process)."""
from backprop_oracle.compare.cli import main
from backprop_oracle.compare.train.distributed import exit_process

exit_process(main())
