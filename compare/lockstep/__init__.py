"""The lockstep engine: both sides built from one spec, run on the same batches from the same
initial weights, compared at every step; every difference proven at its node; divergence; the
result and its report.

    a preset -> spec -> sides (ManualSide, TorchSide) -> run (compare every step) -> verdict.localise
             -> proof (the node alone, on identical inputs) -> result (LockstepResult) -> report

Imports manual, torch_ref, compare.data, compare.experiments, compare.verdict, compare.flat, compare.errors,
compare.tables, compare.sides (the two networks it drives) and compare.interactive (progress, thread counts, HTML, the cost figure); never the
checks, the dashboards or the command line (they observe a run through
its observer calls, see run.LockstepRun).

    run          LockstepRun, run_lockstep
    blocks       where the torch side's blocks of steps ahead of the manual side end
    result       LockstepResult (report(), plot(), its HTML in a notebook)
    proof        a difference's node recomputed alone on identical inputs: wrong, or amplified rounding
    divergence   the rule for a diverged run, its report and a learning rate that does not diverge
    report       format_table, format_html, write_json
"""
