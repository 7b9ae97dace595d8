"""How close is close enough, per dtype.

An element passes when |manual - torch| <= atol + rtol * max|torch|, where the maximum is taken
over the whole tensor it belongs to (one gradient, one weight matrix, the cost). Rounding error
is relative to the size of the numbers that were added up, not to the (possibly tiny) result:
an element of a gradient that is a sum of terms of size 1 which cancel to 1e-9 carries an error
of about 1e-16 · 1, not 1e-16 · 1e-9. Measured against its own value, such an element "differs"
by 1e-7 relative although both sides are right to the last bit they can hold; measured against
its tensor's scale it does not. A derivation mistake changes whole tensors (a factor, a sign, a
transpose, a missing term), so it shows at the tensor's scale all the same.

float64: rtol 1e-10, atol 1e-12. Both sides compute the same formulas in a different order
(NumPy's and torch's matmul kernels sum in different orders), which costs a few units of float64's
2.2e-16 per operation. Over thousands of training steps the parameters of a well-conditioned run
drift apart by about 1e-13 relative, so 1e-10 leaves three orders of margin, while any real
derivation mistake (a missing factor, a wrong sign, a transposed matrix) differs at 1e-3 or more.
atol covers elements that should be exactly 0 (a dead ReLU's gradient) and come out as 1e-17.

float32: rtol 1e-4, atol 1e-6. float32's epsilon is 1.2e-7; the same reordering differs at about
1e-6 relative per step, and training amplifies that: after a few hundred steps the parameters
of the digit networks differ by up to ~1e-5 of their scale. 1e-4 keeps a margin over that and
is still far below any derivation mistake.
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float

    def allowed(self, scale):
        """The largest |manual - torch| allowed in a tensor whose largest |torch| element is ``scale``."""
        return self.atol + self.rtol * scale

    def __str__(self):
        return f"atol {self.atol:g} + rtol {self.rtol:g}·max|torch| of each tensor"


def tensor_scale(reference):
    """max |element| over the finite elements of a tensor (0 for an empty or all-NaN one)."""
    a = np.abs(np.asarray(reference, dtype=np.float64))
    a = a[np.isfinite(a)]
    return float(a.max()) if a.size else 0.0


TOLERANCES = {
    "float64": Tolerance(rtol=1e-10, atol=1e-12),
    "float32": Tolerance(rtol=1e-4, atol=1e-6),
}


def tolerance_for(dtype):
    """The Tolerance used for ``dtype`` ("float64" or "float32")."""
    name = str(dtype).replace("torch.", "")
    if name not in TOLERANCES:
        raise ValueError(f"no tolerance for dtype {dtype!r}; choose one of: {', '.join(TOLERANCES)}")
    return TOLERANCES[name]
