"""Sequential: modules applied in order, backpropagated in reverse, named like torch.nn.Sequential."""
import numpy as np

from backprop_oracle.manual.activations import make_activation
from backprop_oracle.manual.dtypes import as_dtype
from backprop_oracle.manual.linear import Linear
from backprop_oracle.manual.module import FlatParameters, Module


class Sequential(Module):
    """y = module_{n-1}( ... module_0(x)).

    After ``forward``, ``outputs[i]`` is module i's output; after ``backward``,
    ``output_grads[i]`` is dL/d(outputs[i]). For an mlp, modules alternate Linear and activation,
    so these are z_1, a_1, z_2, a_2, ... and dL/dz_1, dL/da_1, ... Parameter names are "0.weight",
    "0.bias", "2.weight", ... exactly as torch names them, and buffers (a BatchNorm's running
    statistics) "1.running_mean", ...; ``train()`` / ``eval()`` switch every module's mode.

    The parameters' values live in one flat array and their gradients in another (``self.flat``,
    see manual.module.FlatParameters; each ``.data`` / ``.grad`` is a view), so that the
    optimizers' updates are one NumPy operation for the whole network and ``zero_grad`` none (the
    zeros are written where a gradient is asked for before a backward writes it). The layers read
    ``.data`` and add into ``.grad`` as before; Linear writes into a gradient just zeroed.
    """

    def __init__(self, *modules):
        super().__init__()
        self.modules = list(modules)
        first = {}
        for i, m in enumerate(self.modules):
            j = first.setdefault(id(m), i)
            if j != i:
                raise ValueError(
                    f"Sequential: modules {j} and {i} are the same {type(m).__name__} object; a module keeps "
                    f"its last input for its backward, so one object cannot sit at two places (its first "
                    f"place would get the second's gradient): make a module for each place")
        self.outputs = []
        self.output_grads = []
        params = self.parameters()
        self.flat = FlatParameters(params) if FlatParameters.can_hold(params) else None

    def __getitem__(self, i):
        return self.modules[i]

    def __len__(self):
        return len(self.modules)

    def named_parameters(self, prefix=""):
        for i, m in enumerate(self.modules):
            yield from m.named_parameters(f"{prefix}{i}.")

    def named_buffers(self, prefix=""):
        """Every module's buffers, named "1.running_mean", "1.num_batches_tracked", ... as in torch."""
        for i, m in enumerate(self.modules):
            yield from m.named_buffers(f"{prefix}{i}.")

    def children(self):
        return list(self.modules)

    def zero_grad(self):
        """Set every gradient to 0 (at no cost while the flat buffer is intact: see FlatParameters)."""
        flat = self.flat
        if flat is not None and flat.intact():
            flat.zero_grad()
        else:
            super().zero_grad()

    def forward(self, x):
        self.outputs = []            # let go of the last step's arrays, so the layers can reuse them
        for m in self.modules:
            x = m.forward(x)
            self.outputs.append(x)
        return x

    def backward(self, dL_dy, input_grad=True):
        """Backpropagate dL/dy through every module; gradients add into ``.grad``; returns dL/dx.

        With ``input_grad=False`` the gradient with respect to the network's input is not computed
        (None is returned), as torch skips it for data that does not require grad: the first
        layer's dL/dx = dL/dz W is one matrix product per step that training never uses.
        """
        self.output_grads = []
        grads = [None] * len(self.modules)
        first = self.modules[0] if self.modules else None
        skip = not input_grad and getattr(first, "input_grad", None) is True
        if skip:
            first.input_grad = False
        try:
            for i in reversed(range(len(self.modules))):
                grads[i] = dL_dy
                dL_dy = self.modules[i].backward(dL_dy)
        finally:
            if skip:
                first.input_grad = True
        self.output_grads = grads
        return None if not input_grad else dL_dy

    def __repr__(self):
        body = "\n".join(f"  ({i}): {m!r}" for i, m in enumerate(self.modules))
        return f"Sequential(\n{body}\n)"


def mlp(sizes, activation="sigmoid", output_activation="identity", *, bias=True, seed=None,
        dtype="float64"):
    """Linear(sizes[0], sizes[1]), activation, ..., Linear(sizes[-2], sizes[-1]), output_activation.

    Every Linear is followed by an activation module (the output one too, even 'identity'), so
    the linear layers are modules 0, 2, 4, ... as in torch. Initial values follow torch.nn.Linear's
    default; use ``load_state_dict`` (see manual.init) for others.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"mlp needs at least two positive sizes (inputs, outputs), got {sizes}")
    dt = as_dtype(dtype)
    rng = np.random.default_rng(seed)
    modules = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        modules.append(Linear(fan_in, fan_out, bias=bias, rng=rng, dtype=dt))
        last = i == len(sizes) - 2
        modules.append(make_activation(output_activation if last else activation))
    return Sequential(*modules)
