"""``python -m backprop_oracle``: the same as the ``backprop-oracle`` command."""
import sys

from backprop_oracle.compare.cli import main

sys.exit(main())
