"""Parameters and the module base class: the small part of torch.nn.Module that backprop needs."""
import numpy as np


class Parameter:
    """A trainable array and the gradient accumulated into it.

    ``data`` holds the value; ``grad`` has the same shape and dtype and is *added to* by every
    ``backward`` (as in torch), so call ``zero_grad`` between steps.
    """

    def __init__(self, data):
        self.data = np.array(data, copy=True)
        self.grad = np.zeros_like(self.data)

    @property
    def shape(self):
        return self.data.shape

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class: ``forward`` caches what ``backward`` needs; ``backward(dL_dy)`` returns ``dL_dx``."""

    def __init__(self):
        self._parameters = {}  # name -> Parameter, in definition order (as torch registers them)

    def register_parameter(self, name, value):
        self._parameters[name] = None if value is None else Parameter(value)
        return self._parameters[name]

    def named_parameters(self, prefix=""):
        for name, p in self._parameters.items():
            if p is not None:
                yield prefix + name, p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def zero_grad(self):
        for p in self.parameters():
            p.grad[...] = 0

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, dL_dy):  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_repr(self):
        return ""

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"
