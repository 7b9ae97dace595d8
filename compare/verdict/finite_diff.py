"""Central finite differences in float64, and the kinks they cannot see through.

For a forward map y = f(x) and an upstream gradient g = dL/dy, the scalar L(x) = <f(x), g> has
dL/dx_i = (L(x + h e_i) - L(x - h e_i)) / 2h + O(h^2), the central difference. Its error is the
truncation h^2 |L'''| / 6 plus the rounding of L itself, about eps S / h where eps = 2.2e-16 and
S = sum |y g|. h = 1e-6 max(1, |x_i|) makes both about 1e-10 of the gradient's scale in float64
(the optimum is near eps^(1/3) = 6e-6; a little smaller keeps more elements away from kinks).

A kink (relu at 0, |x|, max) within h of x_i breaks the estimate: the function is not smooth
there, and the central difference averages the two one-sided slopes. The one-sided differences

    d+ = (L(x + h e_i) - L(x)) / h,    d- = (L(x) - L(x - h e_i)) / h

then disagree by a jump of order one, where a smooth function makes them differ by only
h |L''| (about 1e-6). Such elements are reported as "near a kink" instead of being failed;
the checks then draw new random inputs.
"""
from dataclasses import dataclass

import numpy as np

from backprop_oracle.compare.verdict.tolerances import Tolerance

EPS = np.finfo(np.float64).eps
REL_STEP = 1e-6          # h = REL_STEP * max(1, |x|)


@dataclass
class NumericalGradient:
    """dL/dx of one array by central differences, with what is needed to judge it."""
    grad: np.ndarray        # central differences, float64, shape of x
    d_plus: np.ndarray      # forward one-sided differences
    d_minus: np.ndarray     # backward one-sided differences
    near_kink: np.ndarray   # bool: the one-sided differences disagree (a kink within h)
    noise: float            # estimated rounding error of one central difference, eps S / h

    def tolerance(self):
        """How far an exact gradient may sit from these estimates: rtol 1e-6, and an atol of the
        rounding noise (x 100) plus 1e-8 of the largest estimate (for truncation)."""
        scale = float(np.abs(self.grad).max()) if self.grad.size else 0.0
        return Tolerance(rtol=1e-6, atol=max(100.0 * self.noise + 1e-8 * scale, 1e-12))


def _loss(forward, arrays, g):
    y = np.asarray(forward(arrays), dtype=np.float64)
    return float(np.sum(y * g)), float(np.sum(np.abs(y * g)))


def numerical_vjp(forward, arrays, dL_dy, which, rel_step=REL_STEP):
    """Central differences of L = <forward(arrays), dL_dy> with respect to ``arrays[which]``.

    ``forward`` takes the list of arrays (float64 copies, one perturbed in place at a time) and
    returns y. Costs 2 forward calls per element. Returns a NumericalGradient.
    """
    arrays = [np.array(a, dtype=np.float64, copy=True) for a in arrays]
    g = np.asarray(dL_dy, dtype=np.float64)
    x = arrays[which]
    L0, S = _loss(forward, arrays, g)
    plus, minus, steps = np.empty(x.shape), np.empty(x.shape), np.empty(x.shape)
    flat = x.reshape(-1)   # a view: writing into it perturbs arrays[which]
    for i in range(flat.size):
        old = flat[i]
        h = rel_step * max(1.0, abs(old))
        h = (old + h) - old          # a step that is exact in binary floating point
        flat[i] = old + h
        plus.flat[i], s_plus = _loss(forward, arrays, g)
        flat[i] = old - h
        minus.flat[i], s_minus = _loss(forward, arrays, g)
        flat[i] = old
        steps.flat[i] = h
        S = max(S, s_plus, s_minus)
    d_plus, d_minus = (plus - L0) / steps, (L0 - minus) / steps
    central = (plus - minus) / (2.0 * steps)
    noise = EPS * S / float(steps.min()) if steps.size else 0.0
    scale = float(np.abs(central).max()) if central.size else 0.0
    # A smooth function makes d+ - d- = h L'' (tiny); a kink within h makes it a finite jump.
    jump = np.abs(d_plus - d_minus)
    near_kink = jump > 1e-3 * (np.abs(d_plus) + np.abs(d_minus)) + 1e-4 * scale + 8.0 * noise
    return NumericalGradient(central, d_plus, d_minus, near_kink, noise)


def describe_kinks(name, num, limit=3):
    """One line naming the elements of ``name`` that sat near a kink, with both one-sided slopes."""
    idx = np.argwhere(num.near_kink)
    parts = []
    for index in idx[:limit]:
        t = tuple(int(i) for i in index)
        parts.append(f"{list(t)} (slope {num.d_minus[t]:.4g} on the left, {num.d_plus[t]:.4g} on the right)")
    more = f" and {len(idx) - limit} more" if len(idx) > limit else ""
    return (f"{name}: {len(idx)} element(s) sat within a finite-difference step of a kink, where "
            f"the two one-sided differences disagree, and were not compared: {', '.join(parts)}{more}")
