"""torch.nn.Sequential and the mlp builder with manual/sequential.py's signature."""
import torch
from torch.nn import Sequential

from backprop_oracle.torch_ref.activations import make_activation
from backprop_oracle.torch_ref.device import resolve_device
from backprop_oracle.torch_ref.dtypes import as_dtype
from backprop_oracle.torch_ref.linear import Linear


def mlp(sizes, activation="sigmoid", output_activation="identity", *, bias=True, seed=None,
        dtype="float64", device="cpu"):
    """Linear(sizes[0], sizes[1]), activation, ..., Linear(sizes[-2], sizes[-1]), output_activation,
    as an nn.Sequential whose parameters are named "0.weight", "0.bias", "2.weight", ...

    Initial values are torch.nn.Linear's default (from ``torch.manual_seed(seed)`` when a seed is
    given); the comparison overwrites them with values made once in NumPy.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"mlp needs at least two positive sizes (inputs, outputs), got {sizes}")
    dt, dev = as_dtype(dtype), resolve_device(device)
    if seed is not None:
        torch.manual_seed(seed)
    modules = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        modules.append(Linear(fan_in, fan_out, bias=bias, dtype=dt, device=dev))
        last = i == len(sizes) - 2
        modules.append(make_activation(output_activation if last else activation))
    return Sequential(*modules)


__all__ = ["Sequential", "mlp"]
