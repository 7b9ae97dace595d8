"""Every registry key of both sides (activations, losses, optimizers, schedules, initialisers, layer kinds) with
the torch name it stands for and its arguments, read from the registries themselves
(``backprop-oracle list --keys``).

Imports manual and torch_ref, compare.tables and compare.network (the layer kinds); nothing else of compare.

    listing    registry_rows, keys_table, torch_name
"""
