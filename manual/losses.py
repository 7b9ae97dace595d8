"""Losses. Each takes (input, target) like torch's, returns the cost as a 0-d array, and
``backward()`` returns dL/dinput. Every docstring states the reduction, because a factor of N
or 1/2 is the commonest difference between a hand derivation and a framework.

N is the number of examples (rows); K the number of outputs per example.
Registry keys are shared with torch_ref/losses.py.
"""
import numpy as np

from backprop_oracle.manual.activations import sigmoid, softmax
from backprop_oracle.keys import build
from backprop_oracle.manual.module import Workspace


def _elementwise_dtype(a, b):
    """The dtype NumPy gives a - b (float32 stays float32)."""
    dtype = a.dtype
    return dtype if dtype == getattr(b, "dtype", None) and dtype.kind == "f" else np.result_type(a, b)


def _check_same_shape(name, input, target):
    if input.shape != target.shape:
        raise ValueError(f"{name}: input and target must have the same shape, got input {input.shape} "
                         f"and target {target.shape}")


class Loss(Workspace):
    """Base class: ``forward(input, target)`` caches both; ``backward()`` returns dL/dinput."""

    def __call__(self, input, target):
        return self.forward(input, target)

    def forward(self, input, target):
        self.check(input, target)
        self.input, self.target = input, target
        return self.loss(input, target)

    def backward(self):
        return self.grad(self.input, self.target)

    def check(self, input, target):
        if input.shape != target.shape:
            _check_same_shape(type(self).__name__, input, target)

    def __repr__(self):
        return f"{type(self).__name__}()"


class _Squares(Loss):
    """The error ŷ - y, computed once per step into a reused array: the cost squares it and the
    gradient scales it ((y - ŷ)^2 = (ŷ - y)^2 exactly, so the numbers are those of the formulas)."""
    _error = None          # (input, target, ŷ - y) of the last ``sum_of_squares``

    def error(self, input, target):
        """ŷ - y: the array the last ``loss`` made when given the same input and target, else new."""
        kept = self._error
        if kept is not None and kept[0] is input and kept[1] is target:
            return kept[2]
        return np.subtract(input, target)

    def sum_of_squares(self, input, target):
        """sum (ŷ - y)^2 over every element (``ndarray.sum``'s reduction, called directly), and ŷ - y
        kept for ``grad``."""
        dtype = _elementwise_dtype(input, target)
        e = np.subtract(input, target, out=self.buffer("error", input.shape, dtype))
        self._error = (input, target, e)
        return np.add.reduce(np.multiply(e, e, out=self.buffer("squares", input.shape, dtype)), axis=None)

    def scaled_error(self, input, target, factor):
        """factor (ŷ - y) / N for factor 1 or 2, into a reused array, computed as (ŷ - y) / (N / factor):
        one division and the same number to the last bit, since factor (ŷ - y) and N / factor are
        exact (each side is the quotient factor (ŷ - y) / N rounded once; only where 2 (ŷ - y)
        would overflow, past 1e308 in float64, is this one finite where that one is inf)."""
        e = self.error(input, target)
        return np.divide(e, input.shape[0] / factor, out=self.buffer("dL_dinput", e.shape, e.dtype))


def _reduction(name, reduction):
    if reduction not in ("mean", "sum"):
        raise ValueError(f"{name}: reduction must be 'mean' or 'sum' (a cost is one number), got {reduction!r}")
    return reduction


class _ElementwiseLoss(Loss):
    """Cost = (1/(N K)) sum over every element of ℓ(ŷ, y) (reduction="mean", torch's default) or the
    sum (reduction="sum"); dCost/dŷ = ℓ'(ŷ, y) / (N K), or ℓ'(ŷ, y)."""

    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = _reduction(type(self).__name__, reduction)

    def divisor(self, input):
        return input.size if self.reduction == "mean" else 1

    def loss(self, input, target):
        return np.sum(self.elementwise(input, target)) / self.divisor(input)

    def grad(self, input, target):
        return self.derivative(input, target) / self.divisor(input)

    def __repr__(self):
        return f"{type(self).__name__}(reduction={self.reduction!r})"


class SquaredError(_Squares):
    """Cost = (1/N) sum_n 1/2 sum_k (y - ŷ)^2, the seeds' OR-gate cost;  dCost/dŷ = (ŷ - y) / N."""

    def loss(self, input, target):
        return 0.5 * self.sum_of_squares(input, target) / input.shape[0]

    def grad(self, input, target):
        return self.scaled_error(input, target, 1.0)


class SumSquaredError(_Squares):
    """Cost = (1/N) sum_n sum_k (y - ŷ)^2, the 3Blue1Brown digits cost;  dCost/dŷ = 2 (ŷ - y) / N."""

    def loss(self, input, target):
        return self.sum_of_squares(input, target) / input.shape[0]

    def grad(self, input, target):
        return self.scaled_error(input, target, 2.0)


class MSELoss(Loss):
    """Cost = (1/(N K)) sum (y - ŷ)^2, torch's mean over every element;  dCost/dŷ = 2 (ŷ - y) / (N K)."""

    @staticmethod
    def loss(input, target):
        return np.mean((input - target) ** 2)

    @staticmethod
    def grad(input, target):
        return 2.0 * (input - target) / input.size


class BCELoss(Loss):
    """Cost = -(1/(N K)) sum [y log p + (1 - y) log(1 - p)] on probabilities p (torch.nn.BCELoss);
    dCost/dp = (p - y) / (p (1 - p)) / (N K).

    As torch does, each log is clamped at -100 and p (1 - p) at 1e-12 so that p = 0 or 1 stays finite.
    """
    # torch's clamp constant is the float32 nearest 1e-12 (9.99999996e-13), in every dtype.
    EPSILON = float(np.float32(1e-12))

    def check(self, input, target):
        super().check(input, target)
        if np.any((input < 0) | (input > 1)):
            raise ValueError("bce: input must be probabilities in [0, 1] (put a sigmoid before it, "
                             "or use cross_entropy on logits)")

    @staticmethod
    def loss(input, target):
        with np.errstate(divide="ignore"):   # log 0 = -inf, clamped next
            log_p = np.maximum(np.log(input), -100.0)
            log_1mp = np.maximum(np.log1p(-input), -100.0)
        return -np.mean(target * log_p + (1 - target) * log_1mp)

    @classmethod
    def grad(cls, input, target):
        return (input - target) / np.maximum((1 - input) * input, cls.EPSILON) / input.size


class CrossEntropyLoss(Loss):
    """Cost = -(1/N) sum_n sum_k y_nk log softmax(z)_nk on logits z (torch.nn.CrossEntropyLoss);
    dCost/dz = (softmax(z) - y) / N for one-hot y (in general (p sum_k y_k - y) / N).

    ``target`` is either class indices of shape (N,) or class probabilities / one-hot of shape (N, C).
    Softmax is applied inside: the network's last layer should output raw logits.

    torch's arguments: ``weight`` (one per class), ``label_smoothing`` ε, ``reduction``. With them the
    cost is sum_nk q_nk (-log softmax(z)_nk) / D and dCost/dz = (p sum_k q_nk - q_nk) / D, where for
    class indices t_n: q_nk = (1 - ε) w_t [k = t_n] + (ε / K) w_k and D = sum_n w_{t_n} (torch's
    weighted mean; N without weights); for probabilities y: q_nk = w_k ((1 - ε) y_nk + ε / K), D = N.
    reduction="sum": D = 1. (ε is spread over all K classes, the target's included.)
    """

    def __init__(self, weight=None, label_smoothing=0.0, reduction="mean"):
        super().__init__()
        self.weight = None if weight is None else np.asarray(weight, dtype=np.float64).reshape(-1)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)
        self.reduction = _reduction("cross_entropy", reduction)
        self._plain = weight is None and label_smoothing == 0.0 and reduction == "mean"

    def check(self, input, target):
        if input.ndim != 2:
            raise ValueError(f"cross_entropy: input must be logits of shape (N, C), got {input.shape}")
        n, c = input.shape
        if target.ndim == 1:
            if target.shape[0] != n:
                raise ValueError(f"cross_entropy: {target.shape[0]} class indices for {n} examples")
            if target.dtype.kind not in "iu":
                raise ValueError("cross_entropy: 1-D targets must be integer class indices")
            if target.size and (target.min() < 0 or target.max() >= c):
                raise ValueError(f"cross_entropy: class indices must lie in [0, {c - 1}], "
                                 f"got {target.min()}..{target.max()}")
        else:
            _check_same_shape("cross_entropy", input, target)
        _check_weight("cross_entropy", getattr(self, "weight", None), c)

    def targets(self, input, target):
        """(q, D) of the docstring: each class's weight in the cost, and the divisor."""
        n, c = input.shape
        w = np.ones(c, input.dtype) if self.weight is None else self.weight.astype(input.dtype)
        eps = self.label_smoothing
        if target.ndim == 1:
            q = np.zeros((n, c), input.dtype)
            q[np.arange(n), target] = (1.0 - eps) * w[target]
            q += (eps / c) * w
            d = float(np.sum(w[target])) if self.reduction == "mean" else 1.0
        else:
            q = w * ((1.0 - eps) * target + eps / c)
            d = n if self.reduction == "mean" else 1.0
        return q.astype(input.dtype, copy=False), d

    @staticmethod
    def _probabilities(input, target):
        if target.ndim == 1:
            onehot = np.zeros_like(input)
            onehot[np.arange(input.shape[0]), target] = 1.0
            return onehot
        return target

    def loss(self, input, target):
        """log softmax(z)_nk = z_nk - m_n - log sum_j e^{z_nj - m_n} with m_n = max_j z_nj, so
        Cost = (1/N) sum_n [sum_k y_nk] log sum_j e^{z_nj - m_n} - (1/N) sum_nk y_nk (z_nk - m_n).

        The softmax e^{z - m} / sum_j e^{z_j - m} is made on the way and kept for ``grad``, which
        needs it too (the loss and its softmax fused: one exponential per logit and step).
        """
        if not getattr(self, "_plain", True):
            q, d = self.targets(input, target)
            return np.vdot(q, -log_softmax_of(input)) / d
        n, c = input.shape
        dtype = input.dtype if input.dtype.kind == "f" else np.result_type(input, np.float32)
        m = input.max(axis=1, keepdims=True, out=self.buffer("sums", (n, 1), dtype))      # m_n, (N, 1)
        shifted = np.subtract(input, m, out=self.buffer("softmax", (n, c), dtype))       # z - m, (N, C)
        if target.ndim == 1:                  # class indices: y_nk = 1 where k = t_n, else 0
            y_shifted = np.take(shifted, self._flat_indices(target, c), mode="clip",    # (N,): z_nt - m_n
                                out=self.buffer("picked", (n,), dtype))   # (in range: checked; "raise" copies)
        else:
            y_shifted = np.vdot(target, shifted)                          # sum_nk y_nk (z_nk - m_n)
        p = np.exp(shifted, out=shifted)
        s = p.sum(axis=1, keepdims=True, out=m)                           # sum_j e^{z_nj - m_n}, (N, 1)
        p /= s                                                            # softmax(z), (N, C)
        self._softmax = (input, p)
        log_s = np.log(s, out=s)
        if target.ndim == 1:
            return np.subtract(log_s[:, 0], y_shifted, out=y_shifted).sum() / n
        return (np.vdot(target.sum(axis=1, keepdims=True), log_s) - y_shifted) / n

    def _flat_indices(self, target, c):
        """n C + t_n: where example n's target class sits in the (N, C) array, read flat."""
        n = target.shape[0]
        key, rows = getattr(self, "_rows", (None, None))
        if key != (n, c):
            rows = np.arange(n) * c
            self._rows = ((n, c), rows)
        return np.add(rows, target, out=self.buffer("indices", (n,), rows.dtype))

    def grad(self, input, target):
        if not getattr(self, "_plain", True):
            q, d = self.targets(input, target)
            p = softmax(input, 1)
            return (p * q.sum(axis=1, keepdims=True) - q) / d
        y = target
        kept_input, p = getattr(self, "_softmax", (None, None))
        if kept_input is not input:                   # not the input of the last loss(): compute it
            p = softmax(input, 1)
        n, c = input.shape
        g = self.buffer("dL_dz", p.shape, p.dtype)
        g[...] = p
        if y.ndim == 1:                               # p - onehot(t)
            flat = self._flat_indices(y, c)
            picked = np.take(g, flat, out=self.buffer("picked", (n,), g.dtype), mode="clip")
            picked -= 1.0
            np.put(g, flat, picked, mode="clip")
        else:                                         # p sum_k y_k - y
            g *= y.sum(axis=1, keepdims=True)
            g -= y
        g /= n
        return g


class HingeLoss(Loss):
    """Cost = (1/(N K)) sum max(0, 1 - y s) for labels y in {-1, +1} and scores s (binary SVM);
    dCost/ds = -y / (N K) where 1 - y s > 0, else 0 (0 at the kink, as relu).
    """

    def check(self, input, target):
        super().check(input, target)
        if not np.all((target == 1) | (target == -1)):
            raise ValueError("hinge: targets must be -1 or +1 (binary SVM labels)")

    @staticmethod
    def loss(input, target):
        return np.mean(np.maximum(1.0 - target * input, 0))

    @staticmethod
    def grad(input, target):
        return -target * ((1.0 - target * input) > 0) / input.size


def log_softmax_of(z):
    """log softmax(z) over the classes (dim 1): z - m - log sum_j e^{z_j - m}, m the row's max."""
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))


def _check_weight(name, weight, classes):
    if weight is not None and weight.shape != (classes,):
        raise ValueError(f"{name}: weight must hold one number per class ({classes}), got {weight.shape[0]}")


def _check_indices(name, input, target):
    if input.ndim != 2:
        raise ValueError(f"{name}: input must be of shape (N, C), got {input.shape}")
    n, c = input.shape
    if target.ndim != 1 or target.shape[0] != n or target.dtype.kind not in "iu":
        raise ValueError(f"{name}: target must be {n} integer class indices, got shape {target.shape}, "
                         f"dtype {target.dtype}")
    if target.size and (target.min() < 0 or target.max() >= c):
        raise ValueError(f"{name}: class indices must lie in [0, {c - 1}], got {target.min()}..{target.max()}")


class NLLLoss(Loss):
    """Cost = -sum_n w_{t_n} x_{n t_n} / sum_n w_{t_n} on log-probabilities x (torch.nn.NLLLoss: put
    log_softmax before it), t_n the class index of example n, w the class weights (1 without
    ``weight``: the mean over N); reduction="sum": -sum_n w_{t_n} x_{n t_n}.
    dCost/dx_nk = -w_k [k = t_n] / sum_n w_{t_n} (or without the divisor for "sum")."""

    def __init__(self, weight=None, reduction="mean"):
        super().__init__()
        self.weight = None if weight is None else np.asarray(weight, dtype=np.float64).reshape(-1)
        self.reduction = _reduction("nll", reduction)

    def check(self, input, target):
        _check_indices("nll", input, target)
        _check_weight("nll", self.weight, input.shape[1])

    def _weights(self, input, target):
        """(w_{t_n} for each example, the divisor)."""
        w = np.ones(input.shape[0], input.dtype) if self.weight is None else self.weight[target].astype(input.dtype)
        return w, (float(np.sum(w)) if self.reduction == "mean" else 1.0)

    def loss(self, input, target):
        w, d = self._weights(input, target)
        return -np.sum(w * input[np.arange(input.shape[0]), target]) / d

    def grad(self, input, target):
        w, d = self._weights(input, target)
        g = np.zeros_like(input)
        g[np.arange(input.shape[0]), target] = -w / d
        return g

    def __repr__(self):
        return f"NLLLoss(weight={self.weight}, reduction={self.reduction!r})"


class BCEWithLogitsLoss(_ElementwiseLoss):
    """ℓ(x, y) = -[p_w y log s(x) + (1 - y) log(1 - s(x))] on logits x (torch.nn.BCEWithLogitsLoss:
    the sigmoid inside), p_w the ``pos_weight`` (a number, or one per output column), computed in
    torch's stable form (1 - y) x + (1 + (p_w - 1) y) (log(1 + e^{-|x|}) + max(-x, 0));
    ℓ'(x, y) = (1 + (p_w - 1) y) s(x) - p_w y  (s(x) - y without pos_weight).
    Mean over all N K elements (reduction="mean") or the sum ("sum")."""

    def __init__(self, pos_weight=None, reduction="mean"):
        super().__init__(reduction)
        self.pos_weight = None if pos_weight is None else np.asarray(pos_weight, dtype=np.float64).reshape(-1)

    def check(self, input, target):
        super().check(input, target)
        if self.pos_weight is not None and self.pos_weight.size not in (1, input.shape[-1]):
            raise ValueError(f"bce_with_logits: pos_weight must be one number or one per output "
                             f"({input.shape[-1]}), got {self.pos_weight.size}")

    def _pos_weight(self, input):
        return 1.0 if self.pos_weight is None else self.pos_weight.astype(input.dtype)

    def _log_weight(self, input, target):
        return 1.0 if self.pos_weight is None else 1.0 + (self._pos_weight(input) - 1.0) * target

    def elementwise(self, input, target):
        softplus_minus_x = np.log1p(np.exp(-np.abs(input))) + np.maximum(-input, 0)   # -log s(x)
        return (1 - target) * input + self._log_weight(input, target) * softplus_minus_x

    def derivative(self, input, target):
        return self._log_weight(input, target) * sigmoid(input) - self._pos_weight(input) * target


class L1Loss(_ElementwiseLoss):
    """ℓ(ŷ, y) = |ŷ - y|;  ℓ' = sign(ŷ - y), 0 at ŷ = y (torch's subgradient). Mean over all N K
    elements (reduction="mean") or the sum ("sum")."""
    kinks = (0.0,)     # in ŷ - y

    def elementwise(self, input, target):
        return np.abs(input - target)

    def derivative(self, input, target):
        return np.sign(input - target)


class SmoothL1Loss(_ElementwiseLoss):
    """ℓ = ½ d² / β if |d| < β else |d| - ½ β, d = ŷ - y (torch.nn.SmoothL1Loss, β = ``beta``);
    ℓ' = d / β if |d| < β else sign(d) (β = 0: the L1 loss). Mean over all N K elements or the sum."""

    def __init__(self, beta=1.0, reduction="mean"):
        super().__init__(reduction)
        if beta < 0:
            raise ValueError(f"smooth_l1: beta must be >= 0, got {beta}")
        self.beta = float(beta)

    @property
    def kinks(self):
        return (0.0,) if self.beta == 0 else ()

    def elementwise(self, input, target):
        d = np.abs(input - target)
        if self.beta == 0:
            return d
        return np.where(d < self.beta, 0.5 * d * d / self.beta, d - 0.5 * self.beta)

    def derivative(self, input, target):
        d = input - target
        if self.beta == 0:
            return np.sign(d)
        return np.where(np.abs(d) < self.beta, d / self.beta, np.sign(d))


class HuberLoss(_ElementwiseLoss):
    """ℓ = ½ d² if |d| <= δ else δ (|d| - ½ δ), d = ŷ - y (torch.nn.HuberLoss, δ = ``delta``);
    ℓ' = d if |d| <= δ else δ sign(d). Mean over all N K elements or the sum. (smooth_l1 with
    β = δ is huber / δ.)"""
    kinks = ()

    def __init__(self, delta=1.0, reduction="mean"):
        super().__init__(reduction)
        if not delta > 0:
            raise ValueError(f"huber: delta must be > 0, got {delta}")
        self.delta = float(delta)

    def elementwise(self, input, target):
        d = np.abs(input - target)
        return np.where(d <= self.delta, 0.5 * d * d, self.delta * (d - 0.5 * self.delta))

    def derivative(self, input, target):
        d = input - target
        return np.where(np.abs(d) <= self.delta, d, self.delta * np.sign(d))


LOSSES = {
    "squared_error": SquaredError,
    "sum_squared_error": SumSquaredError,
    "mse": MSELoss,
    "bce": BCELoss,
    "cross_entropy": CrossEntropyLoss,
    "hinge": HingeLoss,
    "bce_with_logits": BCEWithLogitsLoss,
    "l1": L1Loss,
    "smooth_l1": SmoothL1Loss,
    "huber": HuberLoss,
    "nll": NLLLoss,
}


def make_loss(name):
    """Build the loss registered under ``name``, a key or a key with torch's arguments
    ("cross_entropy:label_smoothing=0.1", see backprop_oracle/keys.py); a Loss instance passes through."""
    if isinstance(name, Loss):
        return name
    return build(LOSSES, "loss", name)
