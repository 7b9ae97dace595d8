"""What every gradient check shares: its error type, calling the user's code, validating what it
returns, and choosing the tolerance for the precision it computed in.
"""
import traceback
import types
import warnings

import numpy as np

from backprop_oracle.compare.errors import CheckError
from backprop_oracle.compare.verdict.tolerances import tolerance_for


class PrecisionWarning(UserWarning):
    """The values checked are float32, so only float32's tolerance can be asked of them."""


def describe(fn):
    """A readable name for a function, class or object: "student.backprop", "torch.sigmoid",
    "torch.nn.Linear(in_features=3, out_features=2, bias=True)"."""
    if isinstance(fn, types.BuiltinFunctionType):
        return f"{getattr(fn, '__module__', None) or 'builtins'}.{fn.__name__}"
    if not isinstance(fn, (types.FunctionType, types.MethodType, type)):
        cls, text = type(fn), repr(fn)
        if text.startswith(cls.__name__):   # "Linear(in_features=3, ...)": keep the arguments
            return describe(cls) + text[len(cls.__name__):]
        return describe(cls)
    name = getattr(fn, "__qualname__", None) or repr(fn)
    module = getattr(fn, "__module__", None) or ""
    if module.startswith("torch.nn.modules"):
        return f"torch.nn.{name}"
    if module in ("", "__main__", "builtins") or module.startswith("backprop_oracle_user_"):
        return name
    first = module.removeprefix("backprop_oracle.").split(".", 1)[0]
    if first in ("manual", "torch_ref", "compare", "torch"):
        return f"{first}.{name}"                    # the package that exports it: manual.Linear
    return f"{module.rsplit('.', 1)[-1]}.{name}"   # the user's own file: student.backprop


def _where(exc):
    """" (at file.py:12 in fn)" for the innermost frame of an exception, or ""."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    f = frames[-1]
    return f" (at {f.filename}:{f.lineno} in {f.name})"


def call_user(fn, *args, what):
    """Call code the user wrote; anything it raises becomes a CheckError naming ``what`` and the line."""
    try:
        return fn(*args)
    except CheckError:
        raise
    except SystemExit as e:  # sys.exit() in a function under check must not end the check silently
        raise CheckError(f"{what} called sys.exit({e.code!r}){_where(e)}; a function to check must return "
                         "its values, not exit") from None
    except Exception as e:  # the user's code may raise anything; say what and where
        raise CheckError(f"{what} raised {type(e).__name__}: {e}{_where(e)}") from e


def as_array(value, what, shape=None, hint=""):
    """``value`` as a floating NumPy array (float32 kept as float32, anything else float64).

    Raises CheckError if it is not numeric, has the wrong shape, or holds NaN or infinity
    (naming the first such element)."""
    if value is None:
        raise CheckError(f"{what} is None; return an array{hint}")
    try:
        a = np.asarray(value)
    except Exception as e:  # an object NumPy cannot turn into an array
        raise CheckError(f"{what} is not an array ({type(value).__name__}: {e})") from None
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        raise CheckError(f"{what} is a torch tensor; the hand-written side must return NumPy arrays")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)
            or a.dtype == bool):
        raise CheckError(f"{what} has dtype {a.dtype}; expected a floating-point array")
    if a.dtype != np.float32:
        a = a.astype(np.float64)
    if shape is not None and a.shape != tuple(shape):
        raise CheckError(f"{what} has shape {a.shape} but should have {tuple(shape)}"
                         f"{shape_hint(a.shape, tuple(shape))}{hint}")
    bad = ~np.isfinite(a)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        kind = "NaN" if np.isnan(a[index]) else "infinite"
        where = f" at {list(index)}" if index else ""
        raise CheckError(f"{what} is {kind}{where} ({int(bad.sum())} of {a.size} elements are not "
                         "finite): look for a division by zero, log(0), or exp of a large number")
    return a


def shape_hint(got, expected):
    """Why a gradient might have the wrong shape, in words."""
    if len(got) == 2 and len(expected) == 2 and got == expected[::-1]:
        return ": it looks transposed (torch's convention: weights are (out, in), examples are rows)"
    if len(got) == len(expected) + 1 and got[1:] == expected:
        return (f": it has one entry per example ({got[0]} rows); a parameter's gradient is summed "
                "over the batch (axis 0)")
    if len(got) == 2 and len(expected) == 1 and expected[0] in got:
        return ": a bias gradient is a vector; sum over the batch (axis 0) and do not keep the dimension"
    return ""


def precision_of(*arrays):
    """"float32" if any of the arrays is float32, else "float64"."""
    return "float32" if any(getattr(a, "dtype", None) == np.float32 for a in arrays) else "float64"


class Precision:
    """The precision a check's values came in, and so its tolerance.

    float32 anywhere (asked for, or returned by the user's code) means float32's tolerance
    (rtol 1e-4) and a PrecisionWarning, once: that tolerance lets through mistakes that float64's
    (rtol 1e-10) would catch. The reference is always computed in float64.
    """

    def __init__(self, dtype="float64", tolerance=None):
        if dtype not in ("float64", "float32"):
            raise CheckError(f"unknown dtype {dtype!r}; choose one of: float64, float32")
        self.dtype, self.fixed, self.notes = "float64", tolerance, []
        if dtype == "float32":
            self.see()

    def see(self, *arrays):
        """Note the precision of values the user's code made; return the tolerance to use."""
        if self.dtype != "float32" and (not arrays or precision_of(*arrays) == "float32"):
            self.dtype = "float32"
            message = ("float32 values: compared with float32's tolerance "
                       f"(atol {tolerance_for('float32').atol:g} + rtol {tolerance_for('float32').rtol:g}·max|reference|) against a float64 reference; float64 is the "
                       "oracle's precision and catches smaller mistakes, so check in float64 where you can")
            warnings.warn(message, PrecisionWarning, stacklevel=4)
            self.notes.append(message)
        return self.tolerance

    @property
    def tolerance(self):
        return self.fixed if self.fixed is not None else tolerance_for(self.dtype)


def standard_normal(rng, shape):
    """The default sampler: independent N(0, 1) values of the given shape."""
    return rng.standard_normal(shape)
