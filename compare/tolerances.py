"""How close is close enough, per dtype.

An element passes when |manual - torch| <= atol + rtol * |torch| (numpy.allclose's rule).

float64: rtol 1e-10, atol 1e-12. Both sides compute the same formulas in a different order
(NumPy's and torch's matmul kernels sum in different orders), which costs a few units of float64's
2.2e-16 per operation. Over thousands of training steps the parameters of a well-conditioned run
drift apart by about 1e-13 relative, so 1e-10 leaves three orders of margin, while any real
derivation mistake (a missing factor, a wrong sign, a transposed matrix) differs at 1e-3 or more.
atol covers elements that should be exactly 0 (a dead ReLU's gradient) and come out as 1e-17.

float32: rtol 1e-4, atol 1e-6. float32's epsilon is 1.2e-7; the same reordering differs at about
1e-6 relative per step, and training amplifies that: after a few hundred steps the parameters
of the digit networks differ by up to ~1e-5 relative. 1e-4 keeps a margin of ten over that and
is still far below any derivation mistake.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float

    def __str__(self):
        return f"atol {self.atol:g} + rtol {self.rtol:g}·|torch|"


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
