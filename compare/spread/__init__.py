"""``run`` across processes: under torchrun the lockstep runs spread over the ranks, each whole on one
rank, and rank 0 gathers their results and TensorBoard logs to report them as one process would.

Imports compare.train (the process group), compare.dashboards (the log folders' names) and
compare.files; never the command line, which calls it with the function that runs one run.

    runs         run_spread, share (the round-robin rule), wait_for_others, processes
"""
