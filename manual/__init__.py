"""manual: a neural network whose backward pass is written by hand, in NumPy only.

Every piece mirrors a file of ``torch_ref/`` (same file names, same registry keys,
torch's parameter names and shapes), so the two can be compared element by element.
This package never imports torch.
"""
from manual.module import Module, Parameter
from manual.linear import Linear
from manual.activations import (ACTIVATIONS, Identity, Step, Sigmoid, Tanh, ReLU, LeakyReLU,
                                Softmax, NoGradientError, make_activation)
from manual.losses import (LOSSES, SquaredError, SumSquaredError, MSELoss, BCELoss,
                           CrossEntropyLoss, HingeLoss, make_loss)
from manual.sequential import Sequential, mlp
from manual.init import INITIALISERS, init_parameters
from manual.optim import OPTIMIZERS, SGD, Adam, make_optimizer
from manual.lr_scheduler import SCHEDULERS, ConstantLR, StepLR, ExponentialLR, make_scheduler
from manual.grad import value_and_grad, loop_value_and_grad
from manual.train import fit
from manual.dtypes import DTYPES, as_dtype

__all__ = [
    "Module", "Parameter", "Linear",
    "ACTIVATIONS", "Identity", "Step", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "Softmax",
    "NoGradientError", "make_activation",
    "LOSSES", "SquaredError", "SumSquaredError", "MSELoss", "BCELoss", "CrossEntropyLoss",
    "HingeLoss", "make_loss",
    "Sequential", "mlp", "INITIALISERS", "init_parameters",
    "OPTIMIZERS", "SGD", "Adam", "make_optimizer",
    "SCHEDULERS", "ConstantLR", "StepLR", "ExponentialLR", "make_scheduler",
    "value_and_grad", "loop_value_and_grad", "fit", "DTYPES", "as_dtype",
]
