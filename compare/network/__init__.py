"""The network a run trains, written as a layers list: the registry of layer kinds (how each side
builds one from the shape flowing in), the syntax, and the shapes checked by one example through it.

Imports compare.errors and manual only (a kind's torch builder is handed torch_ref by the side that
builds it, so this room never imports torch).

    layers     LAYERS, LayerKind, parse_layers, dense_layers, resolve, network_of(spec, sizes)
"""
