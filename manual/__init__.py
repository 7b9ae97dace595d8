"""manual: a neural network whose backward pass is written by hand, in NumPy only.

Every piece mirrors a file of ``torch_ref/`` (same file names, same registry keys,
torch's parameter names and shapes), so the two can be compared element by element.
This package never imports torch.
"""
from backprop_oracle.manual.module import Module, Parameter
from backprop_oracle.manual.linear import Linear
from backprop_oracle.manual.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from backprop_oracle.manual.dropout import Dropout, DropoutMasks
from backprop_oracle.manual.conv import Conv2d, Conv1d
from backprop_oracle.manual.pooling import MaxPool2d, AvgPool2d
from backprop_oracle.manual.flatten import Flatten
from backprop_oracle.manual.activations import (ACTIVATIONS, Identity, Step, Sigmoid, Tanh, ReLU, LeakyReLU,
                                Softmax, NoGradientError, make_activation)
from backprop_oracle.manual.activations import (ELU, SELU, GELU, SiLU, Softplus, Hardtanh, Hardsigmoid, Hardswish,
                                   LogSoftmax)
from backprop_oracle.manual.losses import (LOSSES, SquaredError, SumSquaredError, MSELoss, BCELoss,
                           CrossEntropyLoss, HingeLoss, make_loss)
from backprop_oracle.manual.losses import BCEWithLogitsLoss, L1Loss, SmoothL1Loss, HuberLoss, NLLLoss
from backprop_oracle.keys import split_key, join_key
from backprop_oracle.manual.sequential import Sequential, mlp
from backprop_oracle.manual.init import INITIALISERS, init_parameters
from backprop_oracle.manual.optim import OPTIMIZERS, SGD, Adam, AdamW, RMSprop, Adagrad, make_optimizer
from backprop_oracle.manual.lr_scheduler import (SCHEDULERS, ConstantLR, StepLR, ExponentialLR, MultiStepLR,
                                                      CosineAnnealingLR, LinearLR, OneCycleLR, SequentialLR,
                                                      make_scheduler)
from backprop_oracle.manual.grad import value_and_grad, loop_value_and_grad
from backprop_oracle.manual.train import fit
from backprop_oracle.manual.dtypes import DTYPES, as_dtype

__all__ = [
    "Module", "Parameter", "Linear", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "Dropout", "DropoutMasks",
    "Conv2d", "Conv1d", "MaxPool2d", "AvgPool2d", "Flatten",
    "ACTIVATIONS", "Identity", "Step", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "Softmax",
    "NoGradientError", "make_activation",
    "LOSSES", "SquaredError", "SumSquaredError", "MSELoss", "BCELoss", "CrossEntropyLoss",
    "HingeLoss", "make_loss",
    "ELU", "SELU", "GELU", "SiLU", "Softplus", "Hardtanh", "Hardsigmoid", "Hardswish", "LogSoftmax",
    "BCEWithLogitsLoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "NLLLoss", "split_key", "join_key",
    "Sequential", "mlp", "INITIALISERS", "init_parameters",
    "OPTIMIZERS", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "make_optimizer",
    "SCHEDULERS", "ConstantLR", "StepLR", "ExponentialLR", "MultiStepLR", "CosineAnnealingLR", "LinearLR",
    "OneCycleLR", "SequentialLR", "make_scheduler",
    "value_and_grad", "loop_value_and_grad", "fit", "DTYPES", "as_dtype",
]
