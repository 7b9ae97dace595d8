"""Optimizers with torch.optim's update rules, argument names and argument checks.

Batch gradient descent, stochastic gradient descent and mini-batch gradient descent are all
``SGD``: they differ only in how many examples make each gradient (the batch size).
Registry keys are shared with torch_ref/optim.py.
"""
import numpy as np

from backprop_oracle.manual.module import FlatParameters, Workspace


def _refuse_negative(**values):
    """torch.optim's constructor checks: each named value must be 0 or more ("Invalid epsilon value: -1")."""
    for name, value in values.items():
        if value < 0.0:
            raise ValueError(f"Invalid {name} value: {value}")


class Optimizer(Workspace):
    """Holds parameters (objects with ``.data`` and ``.grad``), the learning rate and per-parameter state.

    ``step`` applies ``update(w, g, state, scratch)``, the rule written once for one array. When
    the parameters are exactly a model's flat buffer (manual.module.FlatParameters) it is applied
    once, to the whole buffer; otherwise tensor by tensor. Either way ``state[i]`` holds parameter
    i's arrays (in the flat case, views into one flat array per key).
    """

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
        flat = FlatParameters.of(self.params)
        if flat is not None:
            flat.zero_grad()
        else:
            for p in self.params:
                p.grad[...] = 0

    def step(self):
        flat = FlatParameters.of(self.params)
        state = None if flat is None else self._flat_state(flat)
        if state is None:
            for i, (p, s) in enumerate(zip(self.params, self.state)):
                self.update(p.data, p.grad, s, lambda name, i=i, w=p.data: self.buffer((name, i), w.shape, w.dtype))
        else:
            self.update(flat.data, flat.grad, state, lambda name: self.buffer(name, flat.data.shape, flat.data.dtype))
            self._share_flat_state(flat, state)

    def update(self, w, grad, state, scratch):  # pragma: no cover - abstract
        """Update the array ``w`` in place from its gradient ``grad`` and its ``state`` dict;
        ``scratch(name)`` gives a work array of w's shape."""
        raise NotImplementedError

    # The flat state: one dict of flat arrays whose pieces are the per-parameter states' arrays.
    def _flat_state(self, flat):
        """The state dict for the flat arrays, rebuilt from ``self.state`` when that has changed
        (a step taken tensor by tensor, or a state set from outside); None when the per-parameter
        states differ in kind (then the step goes tensor by tensor)."""
        kept = getattr(self, "_flat", None)
        if kept is not None and kept[0] is flat and self._shares(kept[2]):
            return kept[1]
        keys = set(self.state[0])
        if any(set(s) != keys for s in self.state):
            return None
        state = {}
        for key in keys:
            values = [s[key] for s in self.state]
            if isinstance(values[0], np.ndarray):
                state[key] = np.concatenate([np.asarray(v, dtype=flat.data.dtype).ravel() for v in values])
            elif any(v != values[0] for v in values):
                return None
            else:
                state[key] = values[0]
        self._flat = (flat, state, [{} for _ in self.state])
        self._share_flat_state(flat, state)
        return state

    def _shares(self, expected):
        """True while every ``self.state[i]`` holds exactly what the flat state gave it."""
        for s, mine in zip(self.state, expected):
            if len(s) != len(mine):
                return False
            for key, value in mine.items():
                if s.get(key) is not value:
                    return False
        return True

    def _share_flat_state(self, flat, state):
        """Give every ``self.state[i]`` its piece (a view) of each flat state array, and the counters."""
        expected = self._flat[2]
        for key, value in state.items():
            if isinstance(value, np.ndarray):
                if key in expected[0] and expected[0][key].base is value:
                    continue                                  # its views are given already
                values = flat.split(value)
            else:
                values = [value] * len(self.state)
            for s, mine, v in zip(self.state, expected, values):
                s[key] = mine[key] = v

    def decayed(self, w, grad, scratch):
        """g = ∇ + weight_decay · w (L2 weight decay added to the gradient; the gradient itself when
        weight_decay is 0), written into the "g" scratch array."""
        if self.weight_decay == 0:
            return grad
        g = np.multiply(w, self.weight_decay, out=scratch("g"))
        g += grad
        return g


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
        _refuse_negative(momentum=momentum, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        self.momentum, self.dampening = float(momentum), float(dampening)
        self.weight_decay, self.nesterov = float(weight_decay), bool(nesterov)

    def update(self, w, grad, state, scratch):
        g = self.decayed(w, grad, scratch)                        # g = ∇ + weight_decay · w
        if self.momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(g, copy=True)       # buf = g
            else:
                buf *= self.momentum                                          # buf = momentum · buf
                buf += g if self.dampening == 0 else np.multiply(g, 1 - self.dampening, out=scratch("t"))
            if self.nesterov:
                g = np.add(g, np.multiply(buf, self.momentum, out=scratch("t")),
                           out=g if g is not grad else scratch("g"))          # g = g + momentum · buf
            else:
                g = buf
        w -= np.multiply(g, self.lr, out=scratch("t"))                      # w = w - lr · g


class Adam(Optimizer):
    """Adam, exactly torch.optim.Adam, with L2 weight decay added to the gradient:

        g  = ∇ + weight_decay · w
        m  = β1 m + (1 - β1) g ;   v = β2 v + (1 - β2) g²        (m = v = 0 before step 1)
        m̂ = m / (1 - β1^t) ;       v̂ = v / (1 - β2^t)            (bias correction, t = 1, 2, ...)
        v_max = max(v_max, v)  and  v̂ = v_max / (1 - β2^t)      (only with amsgrad; v_max = 0 before step 1)
        w  = w - lr · m̂ / (sqrt(v̂) + eps)
    """
    decoupled = False         # AdamW decays the weight itself instead

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
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
        self.amsgrad = bool(amsgrad)

    def update(self, w, grad, state, scratch):
        beta1, beta2 = self.betas
        if self.decoupled:
            g = grad
            if self.weight_decay != 0:
                w *= 1 - self.lr * self.weight_decay              # w = w · (1 - lr · weight_decay)
        else:
            g = self.decayed(w, grad, scratch)                    # g = ∇ + weight_decay · w
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(w)
            state["exp_avg_sq"] = np.zeros_like(w)
            if self.amsgrad:
                state["max_exp_avg_sq"] = np.zeros_like(w)
        state["step"] += 1
        t = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        tmp = scratch("t")
        m += np.multiply(np.subtract(g, m, out=tmp), 1 - beta1, out=tmp)   # m += (1 - β1)(g - m), torch's lerp
        v *= beta2
        v += np.multiply(np.multiply(g, 1 - beta2, out=tmp), g, out=tmp)   # v = β2 v + (1 - β2) g²
        if self.amsgrad:
            v = np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])   # v_max = max(v_max, v)
        bias_correction1 = 1 - beta1 ** t
        bias_correction2 = 1 - beta2 ** t
        step_size = self.lr / bias_correction1
        denom = np.sqrt(v, out=tmp)
        denom /= np.sqrt(bias_correction2)
        denom += self.eps                                         # sqrt(v) / sqrt(1 - β2^t) + eps
        w -= np.multiply(np.divide(m, denom, out=tmp), step_size, out=tmp)  # w -= lr / (1 - β1^t) · m / denom


class AdamW(Adam):
    """AdamW, exactly torch.optim.AdamW: Adam with decoupled weight decay (default 1e-2):

        w  = w · (1 - lr · weight_decay)                         (the weight decays, not the gradient)
        m  = β1 m + (1 - β1) ∇ ;   v = β2 v + (1 - β2) ∇²
        w  = w - lr · m̂ / (sqrt(v̂) + eps)                       (m̂, v̂ and amsgrad as in Adam)

    Adam's L2 decay goes through m and v, so a large gradient's history shrinks it; AdamW's does not.
    """
    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


class RMSprop(Optimizer):
    """RMSprop, exactly torch.optim.RMSprop:

        g   = ∇ + weight_decay · w
        v   = α v + (1 - α) g²                                (v = 0 before step 1)
        ḡ   = α ḡ + (1 - α) g ;  ṽ = v - ḡ²                   (only with centered; else ṽ = v)
        d   = sqrt(ṽ) + eps                                   (eps outside the square root)
        buf = μ buf + g / d ;   w = w - lr · buf              (with momentum μ > 0; buf = 0 before step 1)
        w   = w - lr · g / d                                  (without momentum)
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
        super().__init__(params, lr)
        _refuse_negative(epsilon=eps, momentum=momentum, weight_decay=weight_decay, alpha=alpha)
        self.alpha, self.eps, self.weight_decay = float(alpha), float(eps), float(weight_decay)
        self.momentum, self.centered = float(momentum), bool(centered)

    def update(self, w, grad, state, scratch):
        alpha = self.alpha
        g = self.decayed(w, grad, scratch)                        # g = ∇ + weight_decay · w
        if not state:
            state["step"] = 0
            state["square_avg"] = np.zeros_like(w)
            if self.momentum > 0:
                state["momentum_buffer"] = np.zeros_like(w)
            if self.centered:
                state["grad_avg"] = np.zeros_like(w)
        state["step"] += 1
        v, tmp, d = state["square_avg"], scratch("t"), scratch("d")
        v *= alpha
        v += np.multiply(np.multiply(g, 1 - alpha, out=tmp), g, out=tmp)   # v = α v + (1 - α) g²
        if self.centered:
            ga = state["grad_avg"]
            ga += np.multiply(np.subtract(g, ga, out=tmp), 1 - alpha, out=tmp)   # ḡ += (1 - α)(g - ḡ), torch's lerp
            d = np.subtract(v, np.multiply(ga, ga, out=tmp), out=d)             # ṽ = v - ḡ²
            d = np.sqrt(d, out=d)
        else:
            d = np.sqrt(v, out=d)
        d += self.eps                                             # d = sqrt(ṽ) + eps
        if self.momentum > 0:
            buf = state["momentum_buffer"]
            buf *= self.momentum
            buf += np.divide(g, d, out=tmp)                       # buf = μ buf + g / d
            w -= np.multiply(buf, self.lr, out=tmp)               # w = w - lr · buf
        else:
            w -= np.multiply(np.divide(g, d, out=tmp), self.lr, out=tmp)   # w = w - lr · g / d


class Adagrad(Optimizer):
    """Adagrad, exactly torch.optim.Adagrad:

        g   = ∇ + weight_decay · w
        clr = lr / (1 + (t - 1) · lr_decay)                   (t = 1, 2, ...)
        s   = s + g²                                          (s = initial_accumulator_value before step 1)
        w   = w - clr · g / (sqrt(s) + eps)
    """

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
        super().__init__(params, lr)
        _refuse_negative(lr_decay=lr_decay, weight_decay=weight_decay,
                         initial_accumulator_value=initial_accumulator_value, epsilon=eps)
        self.lr_decay, self.weight_decay = float(lr_decay), float(weight_decay)
        self.initial_accumulator_value, self.eps = float(initial_accumulator_value), float(eps)

    def update(self, w, grad, state, scratch):
        g = self.decayed(w, grad, scratch)                        # g = ∇ + weight_decay · w
        if not state:
            state["step"] = 0
            state["sum"] = np.full_like(w, self.initial_accumulator_value)
        state["step"] += 1
        clr = self.lr / (1 + (state["step"] - 1) * self.lr_decay)
        s, tmp, d = state["sum"], scratch("t"), scratch("d")
        s += np.multiply(g, g, out=tmp)                           # s = s + g²
        d = np.sqrt(s, out=d)
        d += self.eps                                             # sqrt(s) + eps
        w -= np.multiply(np.divide(g, d, out=tmp), clr, out=tmp)  # w = w - clr · g / (sqrt(s) + eps)


OPTIMIZERS = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "rmsprop": RMSprop,
    "adagrad": Adagrad,
}


def make_optimizer(name, params, **kwargs):
    """Build the optimizer registered under ``name`` with torch's argument names."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    try:
        return OPTIMIZERS[name](params, **kwargs)
    except TypeError as e:  # an argument the optimizer does not take
        raise ValueError(f"optimizer {name!r}: {e}") from None
