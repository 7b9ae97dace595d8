"""Initialisers from torch.nn.init, under the registry keys of manual/init.py.

These draw from torch's generator, so they serve torch-only training; a comparison copies the
arrays made by manual/init.py into both sides instead.
"""
import math

import torch
from torch import nn


def zeros(weight):
    return nn.init.zeros_(weight)


def normal(weight, std=0.01):
    return nn.init.normal_(weight, 0.0, std)


def uniform(weight, a=-0.05, b=0.05):
    return nn.init.uniform_(weight, a, b)


def xavier_uniform(weight, gain=1.0):
    return nn.init.xavier_uniform_(weight, gain=gain)


def xavier_normal(weight, gain=1.0):
    return nn.init.xavier_normal_(weight, gain=gain)


def he_normal(weight):
    return nn.init.normal_(weight, 0.0, math.sqrt(2.0 / weight.shape[1]))


def he_uniform(weight):
    r = math.sqrt(6.0 / weight.shape[1])
    return nn.init.uniform_(weight, -r, r)


def kaiming_uniform(weight, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    return nn.init.kaiming_uniform_(weight, a=a, mode=mode, nonlinearity=nonlinearity)


def kaiming_normal(weight, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    return nn.init.kaiming_normal_(weight, a=a, mode=mode, nonlinearity=nonlinearity)


def orthogonal(weight, gain=1.0):
    return nn.init.orthogonal_(weight, gain=gain)


def trunc_normal(weight, mean=0.0, std=1.0, a=-2.0, b=2.0):
    return nn.init.trunc_normal_(weight, mean=mean, std=std, a=a, b=b)


INITIALISERS = {
    "zeros": zeros,
    "normal": normal,
    "uniform": uniform,
    "xavier_uniform": xavier_uniform,
    "xavier_normal": xavier_normal,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "kaiming_uniform": kaiming_uniform,
    "kaiming_normal": kaiming_normal,
    "orthogonal": orthogonal,
    "trunc_normal": trunc_normal,
}


# torch's function for each key (he_* are kaiming_* at their defaults for ReLU: a = 0, fan_in).
TORCH_NAMES = {"zeros": "zeros_", "normal": "normal_", "uniform": "uniform_", "xavier_uniform": "xavier_uniform_",
               "xavier_normal": "xavier_normal_", "he_normal": "kaiming_normal_(nonlinearity='relu')",
               "he_uniform": "kaiming_uniform_(nonlinearity='relu')", "kaiming_uniform": "kaiming_uniform_",
               "kaiming_normal": "kaiming_normal_", "orthogonal": "orthogonal_", "trunc_normal": "trunc_normal_"}


def torch_name(name):
    """torch's name of the initialiser registered under ``name``: "torch.nn.init.kaiming_uniform_"."""
    return f"torch.nn.init.{TORCH_NAMES[name]}"


@torch.no_grad()
def init_parameters(model, scheme="xavier_uniform", seed=None, *, zero_bias=True, **kwargs):
    """Initialise ``model`` in place: weights by ``scheme``, biases zero unless ``zero_bias`` is False."""
    if scheme not in INITIALISERS:
        raise ValueError(f"unknown initialiser {scheme!r}; choose one of: {', '.join(INITIALISERS)}")
    if seed is not None:
        torch.manual_seed(seed)
    norms = {f"{n}.{k}" if n else k for n, m in model.named_modules()
             if isinstance(m, (torch.nn.modules.batchnorm._NormBase, torch.nn.LayerNorm))
             for k, _ in m.named_parameters(recurse=False)}
    for name, p in model.named_parameters():
        if name in norms:           # a normalisation's scale and shift: ones and zeros, as torch makes them
            p.fill_(1.0 if name.endswith("weight") else 0.0)
        elif name.endswith("bias"):
            if zero_bias:
                p.zero_()
            else:
                INITIALISERS[scheme](p.view(-1, 1), **kwargs)
        else:
            INITIALISERS[scheme](p, **kwargs)
    return model
