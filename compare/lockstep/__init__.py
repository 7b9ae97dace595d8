"""The lockstep engine: both sides built from one spec, run on the same batches from the same
initial weights, compared at every step; the result and its report; one example traced through
the network; and the torch side trained alone (on a GPU, across processes).

    a preset -> spec -> sides (ManualSide, TorchSide) -> run (compare every step) -> verdict.localise
             -> result (LockstepResult) -> report (table, JSON)

Imports manual, torch_ref, compare.data, compare.experiments, compare.verdict, compare.errors and
compare.tables; never the checks, the dashboards or the command line (they observe a run through
its observer calls, see run.LockstepRun).

    sides        ManualSide / TorchSide behind one interface
    run          LockstepRun, run_lockstep
    result       LockstepResult
    report       format_table, write_json
    trace        trace_example: one example's forward and backward, number by number
    train_torch  the torch side alone (TorchRun), with DDP under torchrun
"""
