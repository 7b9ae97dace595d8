"""The progress bar lives in compare.interactive.progress, so that ``run_lockstep`` can show it too;
these names stay importable from here."""
from backprop_oracle.compare.interactive.progress import (ProgressBar, RunLines, notebook_bar_class, outcome,
                                                       progress_for, progress_wanted, total_steps)

__all__ = ["ProgressBar", "RunLines", "notebook_bar_class", "outcome", "progress_for", "progress_wanted",
           "total_steps"]
