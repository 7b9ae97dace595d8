"""The formulas of the layers beyond dense as the trace prints them: a convolution's forward and
its dL/dX, dL/dW, dL/db; a normalisation's forward and its dL/dx, dL/dγ, dL/dβ; dropout's mask and
scale; a pool's window and how its backward routes the gradient; flatten's reshape.

Each function takes the manual module (its stride, padding, p, eps, ... are read from it, so the
formula names this network's numbers) and the symbols of its input and output ("h₃", "z₂").
"""


def _pair(v):
    return v if v[0] != v[1] else v[0]


def _geometry(m, defaults=(("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1))):
    """", stride 2, padding 1": the arguments of a convolution or pool that are not the default."""
    out = []
    for name, default in defaults:
        value = getattr(m, name, default)
        value = _pair(value) if isinstance(value, tuple) else value
        if value != default:
            out.append(f"{name} {value}")
    return "".join(f", {o}" for o in out)


def _window(m):
    k = m.kernel_size
    return f"{k[0]}×{k[1]}"


def _over(m, kind):
    """The elements one mean and variance are taken over."""
    if kind == "layernorm":
        return f"each example ({'×'.join(map(str, m.normalized_shape))})"
    return "the batch and positions, per channel" if type(m).__name__ == "BatchNorm2d" else "the batch, per feature"


def forward(kind, m, x, W="W", b="b"):
    """The formula of module ``m`` (a ``kind`` of the layers list) computing its output from ``x``
    (a convolution's parameters written ``W`` and ``b``)."""
    if kind in ("conv", "conv1d"):
        bias = f" + {b}" if m.bias is not None else ""
        return f"{W} ⋆ {x}{bias}: a cross-correlation, each window of {x} times {W}{_geometry(m)}"
    if kind == "maxpool":
        geometry = _geometry(m, (("stride", _pair(m.kernel_size)), ("padding", 0), ("dilation", 1)))
        return f"max of each {_window(m)} window of {x}{geometry}"
    if kind == "avgpool":
        counted = "the padding's zeros counted" if m.count_include_pad else "the padding not counted"
        pad = f", padding {_pair(m.padding)} ({counted})" if m.padding != (0, 0) else ""
        stride = f", stride {_pair(m.stride)}" if m.stride != m.kernel_size else ""
        return f"mean of each {_window(m)} window of {x}{stride}{pad}"
    if kind == "batchnorm":
        return (f"γ ({x} − μ)/√(σ² + ε) + β; μ, σ² (biased) over {_over(m, kind)}; ε {m.eps:g}, "
                f"running statistics by momentum {m.momentum}")
    if kind == "layernorm":
        return f"γ ({x} − μ)/√(σ² + ε) + β; μ, σ² (biased) over {_over(m, kind)}; ε {m.eps:g}"
    if kind == "dropout":
        return f"{x} ⊙ m / (1 − p), p = {m.p:g}: the kept elements scaled by {1 / (1 - m.p):.4g}" if m.p < 1 else \
            "0 (p = 1)"
    if kind == "flatten":
        return f"{x} reshaped to (N, features)"
    return f"{kind} of {x}"


def mask(m, keep):
    """The dropout mask's node: what it is and how many it kept."""
    return (f"keep mask: 1 with probability 1 − p = {1 - m.p:g}, one draw for both sides "
            f"({int(keep.sum())} of {keep.size} kept)")


def backward(kind, m, g, x, W="W"):
    """How ∂L/∂``x`` (the module's input) comes from ∂L/∂``g`` (its output) through module ``m``."""
    if kind in ("conv", "conv1d"):
        return (f"{W}ᵀ ∂L/∂{g} added back onto the windows of {x} it came from: a transposed "
                f"convolution{_geometry(m)}, the padding cropped")
    if kind == "maxpool":
        return f"∂L/∂{g} routed to each window's maximum of {x} (the first in scan order), 0 elsewhere"
    if kind == "avgpool":
        return f"∂L/∂{g} / D on every element of its window (D: the elements its mean was over)"
    if kind in ("batchnorm", "layernorm"):
        return f"(1/σ)(ĝ − mean ĝ − x̂ mean(ĝ x̂)), ĝ = γ ∂L/∂{g}; means over {_over(m, kind)}"
    if kind == "dropout":
        return f"∂L/∂{g} ⊙ m / (1 − p): the forward's mask and scale"
    if kind == "flatten":
        return f"∂L/∂{g} reshaped back to {x}'s shape"
    return f"∂L/∂{g} back through {kind}"


def parameter(kind, m, name, g, x):
    """The formula of ∂L/∂(the module's parameter ``name``), from ∂L/∂``g`` (its output) and its input ``x``."""
    if kind in ("conv", "conv1d"):
        if name == "weight":
            return f"Σ ∂L/∂{g} × the window of {x} it saw, over examples and positions ({x} ⋆ ∂L/∂{g})"
        return f"Σ ∂L/∂{g} over examples and positions"
    if kind in ("batchnorm", "layernorm"):
        over = "the batch" + (" and positions" if type(m).__name__ == "BatchNorm2d" else "")
        return f"Σ ∂L/∂{g} ⊙ x̂ over {over}" if name == "weight" else f"Σ ∂L/∂{g} over {over}"
    return f"{kind}'s parameter gradient from ∂L/∂{g}"


# the symbol of a normalisation's parameters: γ (weight) and β (bias), as the teaching texts write them
NORM_SYMBOLS = {"weight": "γ", "bias": "β"}
