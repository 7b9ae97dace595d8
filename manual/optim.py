"""Optimizers with torch.optim's update rules, argument names and argument checks.

Batch gradient descent, stochastic gradient descent and mini-batch gradient descent are all
``SGD``: they differ only in how many examples make each gradient (the batch size).
Registry keys are shared with torch_ref/optim.py.
"""
import numpy as np


class Optimizer:
    """Holds parameters (objects with ``.data`` and ``.grad``), the learning rate and per-parameter state."""

    def __init__(self, params, lr):
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        self.lr = float(lr)
        self.initial_lr = self.lr
        self.state = [dict() for _ in self.params]

    def zero_grad(self):
        for p in self.params:
            p.grad[...] = 0

    def step(self):  # pragma: no cover - abstract
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent, exactly torch.optim.SGD:

        g   = ∇ + weight_decay · w                 (weight decay is the gradient of λ/2 ‖w‖²)
        buf = g                                    on the first step (torch's first buffer)
        buf = momentum · buf + (1 - dampening) · g on later steps
        g   = g + momentum · buf if nesterov else buf   (only when momentum ≠ 0)
        w   = w - lr · g

    The seeds write momentum as Δw_t = -α ∇ + μ Δw_{t-1}. With dampening 0 and a constant α this is
    the same rule: Δw_t = -α buf_t = -α ∇ + μ (-α buf_{t-1}). They differ only when α changes
    between steps (a schedule): torch's buffer holds gradients, so a new α applies to the whole
    remembered velocity, whereas the seeds' Δw remembers the old α.
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, lr)
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        self.momentum, self.dampening = float(momentum), float(dampening)
        self.weight_decay, self.nesterov = float(weight_decay), bool(nesterov)

    def step(self):
        for p, state in zip(self.params, self.state):
            g = p.grad
            if self.weight_decay != 0:
                g = g + self.weight_decay * p.data
            if self.momentum != 0:
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = np.array(g, copy=True)
                else:
                    buf *= self.momentum
                    buf += (1 - self.dampening) * g
                g = g + self.momentum * buf if self.nesterov else buf
            p.data -= self.lr * g


class Adam(Optimizer):
    """Adam, exactly torch.optim.Adam (amsgrad off), with L2 weight decay added to the gradient:

        g  = ∇ + weight_decay · w
        m  = β1 m + (1 - β1) g ;   v = β2 v + (1 - β2) g²        (m = v = 0 before step 1)
        m̂ = m / (1 - β1^t) ;       v̂ = v / (1 - β2^t)            (bias correction, t = 1, 2, ...)
        w  = w - lr · m̂ / (sqrt(v̂) + eps)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        if eps < 0.0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        self.betas, self.eps, self.weight_decay = (float(betas[0]), float(betas[1])), float(eps), float(weight_decay)

    def step(self):
        beta1, beta2 = self.betas
        for p, state in zip(self.params, self.state):
            g = p.grad
            if self.weight_decay != 0:
                g = g + self.weight_decay * p.data
            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(p.data)
                state["exp_avg_sq"] = np.zeros_like(p.data)
            state["step"] += 1
            t = state["step"]
            m, v = state["exp_avg"], state["exp_avg_sq"]
            m += (1 - beta1) * (g - m)              # torch: exp_avg.lerp_(grad, 1 - beta1)
            v *= beta2
            v += (1 - beta2) * g * g
            bias_correction1 = 1 - beta1 ** t
            bias_correction2 = 1 - beta2 ** t
            step_size = self.lr / bias_correction1
            denom = np.sqrt(v) / np.sqrt(bias_correction2) + self.eps
            p.data -= step_size * (m / denom)


OPTIMIZERS = {
    "sgd": SGD,
    "adam": Adam,
}


def make_optimizer(name, params, **kwargs):
    """Build the optimizer registered under ``name`` with torch's argument names."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    try:
        return OPTIMIZERS[name](params, **kwargs)
    except TypeError as e:  # an argument the optimizer does not take
        raise ValueError(f"optimizer {name!r}: {e}") from None
