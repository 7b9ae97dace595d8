"""What the shape of a difference suggests: a flipped sign, a constant factor (the 1/N, the ½, a
mean where a sum belongs), a transposed matrix, a gradient that is all zeros.

Each pattern is tested on the whole tensor, so a hint is only given when it explains every element.
"""
import numpy as np

from backprop_oracle.compare.verdict.localise import Mismatch


def _close(a, b, scale):
    return bool(np.all(np.abs(a - b) <= 1e-6 * scale + 1e-12))


def _factor_meaning(k, batch):
    """Words for a constant factor ``k`` between yours and the reference."""
    meanings = []
    if batch and batch > 1:
        if abs(k - 1.0 / batch) < 1e-6 / batch:
            meanings.append(f"1/N for the N = {batch} examples: a mean where a sum belongs (a bias "
                            "gradient averaged over the batch), or the 1/N applied twice")
        elif abs(k - batch) < 1e-6 * batch:
            meanings.append(f"N for the N = {batch} examples: a forgotten 1/N (the cost is the mean "
                            "over the batch, so every gradient carries 1/N)")
    if abs(k - 2.0) < 1e-6:
        meanings.append("a factor 2 too many: the ½ in ½ (y − ŷ)² cancels the 2 from the square")
    elif abs(k - 0.5) < 1e-6:
        meanings.append("a factor ½ too few: the derivative of (y − ŷ)² is 2 (ŷ − y), unless the "
                        "loss carries a ½")
    return meanings


def explain_difference(yours, reference, batch=None):
    """A short sentence describing how ``yours`` differs from ``reference``, or "" if no simple
    pattern explains it. ``batch`` is the number of examples N, to recognise 1/N."""
    a = np.asarray(yours, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape or a.size == 0 or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return ""
    scale = max(float(np.abs(b).max()), float(np.abs(a).max()))
    if scale == 0.0:
        return ""
    if not np.any(a):
        return "yours is all zeros where the reference is not: a gradient that never got written or added"
    if not np.any(b):
        return "the reference is all zeros but yours is not: this value should not depend on its inputs"
    if a.ndim == 2 and a.shape[0] == a.shape[1] and a.shape[0] > 1 and _close(a, b.T, scale):
        return "yours is the transpose of the reference: a missing or extra transpose"
    if _close(a, -b, scale):
        return "yours is the reference with its sign flipped: a sign error (ŷ − y written y − ŷ, or a minus lost)"
    k = float(np.sum(a * b) / np.sum(b * b))
    if _close(a, k * b, scale) and abs(k - 1.0) > 1e-6:
        text = f"yours is {k:.6g} × the reference in every element"
        meanings = _factor_meaning(k, batch)
        return text + (": " + "; or ".join(meanings) if meanings else ": a constant factor")
    bad = ~np.isclose(a, b, rtol=1e-6, atol=1e-9 * scale)
    if a.ndim >= 1 and bad.any():
        return f"{int(bad.sum())} of {a.size} elements differ"
    return ""


# For a layer y = x W^T + b, what each gradient should be (named as check_layer names them).
LINEAR_FORMULAS = {
    "dL/dx": "dL/dx = dL/dy W",
    "weight.grad": "dL/dW = dL/dy^T x, summed over the batch by the product",
    "bias.grad": "dL/db = dL/dy summed over the batch (axis 0)",
}


# For a convolution y = W * x + b (torch's cross-correlation, x zero-padded, stride s, dilation d).
CONV_FORMULAS = {
    "dL/dx": "dL/dx = the transposed convolution of dL/dy with W: each dL/dy[n, o, p, q] W[o, c, i, j] "
             "added back at x[n, c, p s + i d, q s + j d], then the padding cropped",
    "weight.grad": "dL/dW[o, c, i, j] = sum over n, p, q of dL/dy[n, o, p, q] x[n, c, p s + i d, q s + j d], "
                   "the input correlated with dL/dy (no kernel flip)",
    "bias.grad": "dL/db = dL/dy summed over the batch and every position (axes 0, 2, 3)",
}
FORMULAS = {
    "linear": ("a linear layer y = x W^T + b", LINEAR_FORMULAS),
    "conv": ("a convolution y = W * x + b", CONV_FORMULAS),
}


def _formula(name, kind="linear"):
    what, formulas = FORMULAS[kind]
    formula = formulas.get(name)
    return f" (for {what}: {formula})" if formula else ""


def first_wrong(tensors, per_trial, values, batch=None, kind="linear"):
    """(Mismatch, hint, trial) for the first wrong tensor of a function or layer check, or
    (None, "", None).

    ``tensors`` are the merged checks (worst over the trials); the hint comes from the trial
    where that tensor was worst. ``kind`` ("linear", "conv"): whose formulas the reason quotes."""
    first = next((c for c in tensors if not c.passed), None)
    if first is None:
        return None, "", None
    hint = explain_difference(*values[first.trial - 1][first.diff.name], batch=batch)
    if first.diff.name.startswith("y (forward)"):
        text = ("the forward values differ: your forward and the reference compute different "
                "functions, so the gradients cannot be compared until they agree")
        return Mismatch("forward", first.diff, None, None, text), hint, first.trial
    wrong = [c.diff.name for c in tensors if not c.passed]
    # the forward and the accumulation checks ("... after a 2nd backward") are not gradients
    right = [c.diff.name for c in tensors if c.passed and not c.diff.name.startswith("y (forward)")
             and "after a 2nd backward" not in c.diff.name]
    text = f"{', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} wrong"
    if right:
        text += f" while {', '.join(right)} {'is' if len(right) == 1 else 'are'} right"
    if len(wrong) == 1 and right:
        text += f": only the formula for {wrong[0]} is wrong{_formula(wrong[0], kind)}"
    elif len(wrong) == 1:
        text += (": the derivative itself, dL/dx = J^T dL/dy (for an elementwise f, "
                 "dL/dy * f'(x) element by element)")
    elif not right:
        text += (": every gradient, so look at what they share (the upstream gradient dL/dy and the "
                 "local derivative of the output)")
    return Mismatch("backward", first.diff, None, None, text), hint, first.trial


# For a normalisation y = gamma x_hat + beta, x_hat = (x - mu) / sigma over M values (batch norm:
# each channel's N·H·W, layer norm: each example's normalized_shape), named as check_layer names them.
NORM_FORMULAS = {
    "dL/dx": "dL/dx = (1/M) gamma/sigma (M g - sum g - x_hat sum(g x_hat)) with g = dL/dy: the paths through "
             "x_hat, the mean (- sum g) and the variance (- x_hat sum(g x_hat)); in eval mode g gamma/sigma",
    "weight.grad": "dL/dgamma = sum of dL/dy x_hat over every axis but the features'",
    "bias.grad": "dL/dbeta = sum of dL/dy over every axis but the features'",
    "gamma.grad": "dL/dgamma = sum of dL/dy x_hat over every axis but the features'",
    "beta.grad": "dL/dbeta = sum of dL/dy over every axis but the features'",
}


def reason_for_layer(reason, name, norm):
    """The reason first_wrong gave, quoting a normalisation's formula for ``name`` instead of a linear
    layer's when ``norm``, and no linear formula for a layer without a weight matrix (norm None)."""
    linear = LINEAR_FORMULAS.get(name)
    cut = f" (for a linear layer y = x W^T + b: {linear})" if linear else ""
    if not cut or cut not in reason:
        return reason
    formula = NORM_FORMULAS.get(name) if norm else None
    return reason.replace(cut, f" (for a normalisation y = gamma x_hat + beta: {formula})" if formula else "")
