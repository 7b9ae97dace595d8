"""The command line, ``backprop-oracle`` (or ``python -m backprop_oracle``): the parser, one module per
command under ``commands/``, and the runner that turns presets and overrides into lockstep runs.

The top of the arrows: it may import every other room of compare/, and nothing imports it.
It parses, calls the library and prints; everything it does is reachable from Python too.

    main        main(argv) -> exit code (0 agree, 1 differ, 2 usage error)
    arguments   argument types (positive_int, batch_size, json_path, ...)
    runner      select_runs, apply_overrides, run_preset, run_one, single_threaded
    commands    run, list, check, trace, train
"""
from backprop_oracle.compare.cli.main import main

__all__ = ["main"]
