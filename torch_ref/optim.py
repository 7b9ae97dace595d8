"""torch.optim optimizers under the registry keys of manual/optim.py (same argument names)."""
from torch.optim import SGD, Adam, AdamW, RMSprop, Adagrad

OPTIMIZERS = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "rmsprop": RMSprop,
    "adagrad": Adagrad,
}


def make_optimizer(name, params, **kwargs):
    """Build the optimizer registered under ``name``. foreach/fused are off so the single-tensor
    reference implementation runs on every device."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    try:
        return OPTIMIZERS[name](params, foreach=False, **kwargs)
    except TypeError as e:
        raise ValueError(f"optimizer {name!r}: {e}") from None


def torch_name(name):
    """torch's name of the optimizer registered under ``name``: "torch.optim.AdamW"."""
    return f"torch.optim.{OPTIMIZERS[name].__name__}"
