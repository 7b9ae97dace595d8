"""The two sides of a comparison, built from one spec: the NumPy network and the torch network,
each with its own data, loss, optimizer, schedule, running statistics and dropout masks, behind one
interface (forward_backward, flat_grads, flat_params, trace, evaluate), so that the lockstep, the
checkpoints, the dashboards and a torch-only run drive either the same way.

Imports manual, torch_ref, compare.experiments, compare.network, compare.flat and compare.verdict
(the Trace a side records); never the lockstep that drives the sides, the checks or the command line.

    sides        ManualSide / TorchSide, the optimizer state copied between them, flat views
    ahead        TorchAhead: the torch side run a block of steps ahead, answering from what it kept
"""
