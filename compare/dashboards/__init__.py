"""Dashboards: what a run looks like. TensorBoard logs of both sides and of their differences, the
event-file writer behind them, the pictures (decision boundaries, fits, cost curves, weights) and
the progress bar, each an observer of a lockstep run or a function that returns a figure.

Imports compare.lockstep (the records it observes), compare.interactive (the figure helpers and
the progress bar it re-exports), compare.errors, matplotlib and tensorboard's
protos; never the checks or the command line.

    tensorboard   TensorBoardLogger, logdir_for_runs (a folder per command, and latest),
                  log_preset_runs (a preset's runs on one plot), check_logdir, make_run_dir
    event_file    EventFile: batched, checksummed TensorBoard records
    plots         the figures;  run_pictures  which figures a run gets
    drawing       Drawer: the pictures drawn in place, or in a second process beside the run
    progress      ProgressBar, progress_wanted (from compare.interactive.progress)
"""
