"""``backprop-oracle trace``: one example through one step of a run, every intermediate of both
sides beside its formula (x, z, ŷ, L, ∂L/∂ŷ, ∂ŷ/∂z, ∂L/∂z, ∂L/∂w, ∂L/∂b, the update).

Imports compare.lockstep (the run it builds, on first use), compare.experiments, compare.verdict
and compare.tables; never the checks, the dashboards or the command line.

    example    trace_example, format_trace, resolve_run
"""
