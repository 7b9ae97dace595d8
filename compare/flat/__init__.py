"""Flat buffers: a model's parameters (or their gradients) as views of one flat array, so that the
lockstep compares every element of every tensor, and copies them, in one piece instead of
concatenating copies at every step. Each side has buffers of its own: the two sides never share
memory. Code that rebinds a parameter's array (``p.grad = ...``) is caught by ``keep_bound``: the
buffer takes the new values and the parameter the view again, before anything is compared.

Imports NumPy only, nothing of compare (the torch side's buffers are torch's, in compare.sides.sides).

    layout_offsets, unflatten, split   where each tensor sits in a flat vector; its pieces
    consecutive, bind_flat, keep_bound a side's parameters as views of one buffer
"""
from backprop_oracle.compare.flat.views import (bind_flat, consecutive, keep_bound, layout_offsets,  # noqa: F401
                                                 split, unflatten)
