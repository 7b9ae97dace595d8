"""torch_ref: the same networks, losses, optimizers and schedules as ``manual/``, built from
torch.nn and torch.optim so that autograd is the reference.

File names, registry keys, builder signatures and parameter names mirror ``manual/``.
This package imports torch (and NumPy) only.
"""
from backprop_oracle.torch_ref.dtypes import DTYPES, as_dtype
from backprop_oracle.torch_ref.device import resolve_device
from backprop_oracle.torch_ref.linear import Linear
from backprop_oracle.torch_ref.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from backprop_oracle.torch_ref.dropout import Dropout
from backprop_oracle.torch_ref.conv import Conv2d, Conv1d
from backprop_oracle.torch_ref.pooling import MaxPool2d, AvgPool2d
from backprop_oracle.torch_ref.flatten import Flatten
from backprop_oracle.torch_ref.activations import (ACTIVATIONS, Identity, Step, Sigmoid, Tanh, ReLU, LeakyReLU,
                                   Softmax, make_activation)
from backprop_oracle.torch_ref.activations import (ELU, SELU, GELU, SiLU, Softplus, Hardtanh, Hardsigmoid, Hardswish,
                                   LogSoftmax)
from backprop_oracle.torch_ref.losses import (LOSSES, SquaredError, SumSquaredError, MSELoss, BCELoss,
                              CrossEntropyLoss, HingeLoss, make_loss)
from backprop_oracle.torch_ref.losses import BCEWithLogitsLoss, L1Loss, SmoothL1Loss, HuberLoss, NLLLoss
from backprop_oracle.keys import split_key, join_key
from backprop_oracle.torch_ref.sequential import Sequential, mlp
from backprop_oracle.torch_ref.init import INITIALISERS, init_parameters
from backprop_oracle.torch_ref.optim import OPTIMIZERS, SGD, Adam, AdamW, RMSprop, Adagrad, make_optimizer
from backprop_oracle.torch_ref.lr_scheduler import (SCHEDULERS, ConstantLR, StepLR, ExponentialLR, MultiStepLR,
                                                      CosineAnnealingLR, LinearLR, OneCycleLR, SequentialLR,
                                                      make_scheduler)
from backprop_oracle.torch_ref.grad import value_and_grad, forward_with_intermediates
from backprop_oracle.torch_ref.train import fit

__all__ = [
    "DTYPES", "as_dtype", "resolve_device", "Linear", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "Dropout",
    "Conv2d", "Conv1d", "MaxPool2d", "AvgPool2d", "Flatten",
    "ACTIVATIONS", "Identity", "Step", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "Softmax",
    "make_activation",
    "LOSSES", "SquaredError", "SumSquaredError", "MSELoss", "BCELoss", "CrossEntropyLoss",
    "HingeLoss", "make_loss",
    "ELU", "SELU", "GELU", "SiLU", "Softplus", "Hardtanh", "Hardsigmoid", "Hardswish", "LogSoftmax",
    "BCEWithLogitsLoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "NLLLoss", "split_key", "join_key",
    "Sequential", "mlp", "INITIALISERS", "init_parameters",
    "OPTIMIZERS", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "make_optimizer",
    "SCHEDULERS", "ConstantLR", "StepLR", "ExponentialLR", "MultiStepLR", "CosineAnnealingLR", "LinearLR",
    "OneCycleLR", "SequentialLR", "make_scheduler",
    "value_and_grad", "forward_with_intermediates", "fit",
]
