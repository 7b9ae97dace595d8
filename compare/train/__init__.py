"""Training the torch side alone: the same spec, data, initial weights and batch order as a lockstep
run, on a CPU or a GPU and across processes (DDP under torchrun), with nothing to compare against.
This is what ``backprop-oracle train`` runs once a preset has been shown to agree.

Imports compare.lockstep (the sides, the batch order, the records observers get), compare.data,
compare.experiments, compare.errors, compare.tables and torch_ref; never the checks, the
dashboards or the command line.

    torch_only   TorchRun, train_torch, TrainResult, format_train_table
    captured     on CUDA, the step replayed from CUDA graphs (torch_ref.graphs) or why it stays eager
    distributed  process_group (bounded waits), Distributed, PeerLost: who went silent, where
    launch       launch (our own launcher: which node it waits for), resume_command
"""
