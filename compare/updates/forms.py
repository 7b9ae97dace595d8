"""The shapes a hand-written update rule comes in, each turned into one interface: a fresh
``stepper(params, grads) -> params`` per run (dicts name -> float64 array), so that no state is
carried from one run into the next.

    form       what the check calls                                   hyperparameters
    "state"    step(params, grads, state) -> (params, state)          keyword arguments the function
               (state starts as {} and is yours; return None or      declares (lr=..., momentum=...),
               params alone when you change them in place)           under torch's names
    "config"   update(w, dw, config) -> (next_w, config), once per    config starts with them under
               parameter, each with its own config (CS231n's optim)   CS231n's names (learning_rate,
                                                                      momentum, beta1, beta2, epsilon)
                                                                      and torch's (lr, betas, eps, ...)
    "object"   obj.step(params, grads) or obj.update(params, grads)   the object's own; an attribute
               (in place, or returning the new params); a copy of     lr, momentum, ... that differs
               the object for each run                               from the check's is refused
    "class"    Cls(parameters, **hyperparameters).step(), torch.optim's way: parameters are
               manual.Parameter objects, step() reads p.grad and changes p.data; the hyperparameters
               its constructor declares are passed
    "stateless" step(params, grads) -> params (plain SGD only: it has nowhere to keep a buffer that
               the check could reset between runs)

The parameters are those of a 3-4-2 network, under torch's names: "0.weight" (4, 3), "0.bias" (4,),
"2.weight" (2, 4), "2.bias" (2,). The form is worked out from the target (a class, an object with .step/.update, a function's
parameter names) or given as ``form=``.
"""
import copy
import inspect
import traceback
import types

import numpy as np

from backprop_oracle.compare.errors import CheckError

FORMS = ("state", "config", "object", "class", "stateless")
CONFIG_NAMES = {"config", "cfg", "conf", "optim_config", "settings", "hparams", "hyper"}
STATE_NAMES = {"state", "states", "st", "memory", "cache", "opt_state", "optimizer_state", "slots"}
ONE_PARAMETER = {"w", "x", "p", "param", "theta", "weight", "weights_array", "value", "wt"}
ALL_PARAMETERS = {"params", "parameters", "weights", "ws", "model", "variables", "theta_dict", "net"}
CS231N_NAMES = {"lr": "learning_rate", "eps": "epsilon"}
ATTRIBUTES = {"lr": ("lr", "learning_rate", "alpha"), "momentum": ("momentum", "mu"),
              "dampening": ("dampening",), "weight_decay": ("weight_decay", "wd"), "nesterov": ("nesterov",),
              "betas": ("betas",), "eps": ("eps", "epsilon"), "amsgrad": ("amsgrad",), "maximize": ("maximize",),
              "alpha": ("alpha", "decay_rate", "rho"), "centered": ("centered",), "lr_decay": ("lr_decay",),
              "initial_accumulator_value": ("initial_accumulator_value",)}


def describe(target):
    """"student.adam_step", "student.MyAdam", "student.MyAdam object"."""
    obj = target if isinstance(target, (type, types.FunctionType, types.MethodType)) else type(target)
    name = getattr(obj, "__qualname__", None) or repr(obj)
    module = (getattr(obj, "__module__", None) or "").removeprefix("backprop_oracle_user_")
    if module.startswith("backprop_oracle."):
        module = module.split(".")[1]
    text = f"{module.rsplit('.', 1)[-1]}.{name}" if module not in ("", "__main__", "builtins") else name
    return text if obj is target else f"{text} object"


def where(exc):
    """" (at file.py:12 in fn)" for the innermost frame of an exception, or ""."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f" (at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""


def call_user(fn, *args, what, **kwargs):
    """Call code the user wrote; anything it raises becomes a CheckError naming ``what`` and the line."""
    try:
        return fn(*args, **kwargs)
    except CheckError:
        raise
    except SystemExit as e:
        raise CheckError(f"{what} called sys.exit({e.code!r}){where(e)}; it must return its values") from None
    except Exception as e:  # the user's code may raise anything; say what and where
        raise CheckError(f"{what} raised {type(e).__name__}: {e}{where(e)}") from e


def as_parameter(value, what, shape):
    """A returned parameter as a float64 (or float32, kept) array of ``shape``; NaN is allowed (it is
    a wrong answer, compared like any other), a wrong type or shape is a CheckError."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        raise CheckError(f"{what} is a torch tensor; the hand-written rule must return NumPy arrays")
    try:
        a = np.asarray(value)
    except Exception as e:  # an object NumPy cannot turn into an array
        raise CheckError(f"{what} is not an array ({type(value).__name__}: {e})") from None
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise CheckError(f"{what} has dtype {a.dtype}; expected a floating-point array")
    if a.shape != tuple(shape):
        raise CheckError(f"{what} has shape {a.shape} but the parameter has {tuple(shape)}")
    return a if a.dtype == np.float32 else a.astype(np.float64)


def _positional(fn):
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None, None
    params = list(sig.parameters.values())
    required = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                and p.default is p.empty]
    return sig, required


def detect(target):
    """The form of ``target`` (see the module's table), or a CheckError saying how to give it."""
    if isinstance(target, type):
        return "class"
    if not isinstance(target, (types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
        if callable(getattr(target, "step", None)) or callable(getattr(target, "update", None)):
            return "object"
        if not callable(target):
            raise CheckError(f"{describe(target)} is neither a function nor an object with .step(params, grads) "
                             "or .update(params, grads); see compare/updates/forms.py for the forms a rule may take")
    sig, required = _positional(target)
    if sig is None:
        raise CheckError(f"cannot read the signature of {describe(target)}; give form='state' or form='config'")
    names = [p.name.lower() for p in required]
    if len(names) == 2:
        return "stateless"
    if len(names) == 3:
        if names[2] in CONFIG_NAMES or names[0] in ONE_PARAMETER:
            return "config"
        if names[2] in STATE_NAMES or names[0] in ALL_PARAMETERS:
            return "state"
        raise CheckError(f"cannot tell from {describe(target)}({', '.join(names)}) whether it updates every "
                         "parameter at once, step(params, grads, state) -> (params, state), or one at a time, "
                         "update(w, dw, config) -> (next_w, config); give form='state' or form='config'")
    raise CheckError(f"{describe(target)} takes {len(names)} required argument(s) ({', '.join(names) or 'none'}); "
                     "an update rule is step(params, grads, state), update(w, dw, config), step(params, grads), "
                     "an object with .step(params, grads), or a class built as Cls(parameters, lr=...)")


def keywords(fn, hp, given):
    """The hyperparameters (torch's names) that ``fn`` declares as keyword arguments."""
    sig, _ = _positional(fn)
    if sig is None:
        return {}
    params = sig.parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return {k: hp[k] for k in given}
    return {k: hp[k] for k in hp if k in params and params[k].kind in (params[k].POSITIONAL_OR_KEYWORD,
                                                                         params[k].KEYWORD_ONLY)}


def _params_out(value, passed, shapes, what):
    """The parameters a rule returned (a dict, or None for "changed in place")."""
    if value is None:
        value = passed
    if not isinstance(value, dict):
        raise CheckError(f"{what} returned {type(value).__name__} for the parameters; return the dict "
                         "name -> array it was given (or None after changing it in place)")
    missing, extra = sorted(set(shapes) - set(value)), sorted(set(value) - set(shapes))
    if missing or extra:
        raise CheckError(f"{what} returned parameters {sorted(value)}; expected {sorted(shapes)}")
    return {k: as_parameter(value[k], f"{what}: parameter {k!r}", shapes[k]) for k in shapes}


def _copies(arrays):
    return {k: np.array(v, dtype=np.float64, copy=True) for k, v in arrays.items()}


def _check_attributes(obj, hp, given, what):
    """Refuse an object whose own hyperparameters are not the ones the check compares against."""
    for name in hp:
        for attr in ATTRIBUTES.get(name, ()):
            if attr != name and attr in hp:         # RMSprop's alpha is its own, not a learning rate
                continue
            value = getattr(obj, attr, None)
            if value is None or callable(value):
                continue
            try:
                same = np.allclose(np.asarray(value, dtype=float), np.asarray(hp[name], dtype=float),
                                   rtol=1e-12, atol=0)
            except (TypeError, ValueError):
                continue
            if not same:
                raise CheckError(f"{what} has {attr} = {value!r} but the check compares against {name}={hp[name]!r}: "
                                 "build it with the hyperparameters you check, or check the ones it has")


def stepper_factory(target, form, hp, given, name):
    """A function that returns a fresh ``stepper(params, grads) -> params`` for each run."""
    what = describe(target)
    if form == "stateless":
        def fresh():
            kw = keywords(target, hp, given)
            return lambda params, grads: _params_out(
                call_user(target, params, grads, what=what, **kw), params, _shapes(params), what)
        return fresh
    if form == "state":
        def fresh():
            kw, box = keywords(target, hp, given), {"state": {}}

            def stepper(params, grads):
                out = call_user(target, params, grads, box["state"], what=what, **kw)
                if isinstance(out, tuple) and len(out) == 2:
                    out, state = out
                    box["state"] = box["state"] if state is None else state
                return _params_out(out, params, _shapes(params), what)
            return stepper
        return fresh
    if form == "config":
        base = dict(hp, **{CS231N_NAMES.get(k, k): v for k, v in hp.items()})
        if "betas" in hp:
            base.update(beta1=hp["betas"][0], beta2=hp["betas"][1])

        def fresh():
            configs = {}

            def stepper(params, grads):
                out = {}
                for k in params:
                    config = configs.setdefault(k, copy.deepcopy(base))
                    ret = call_user(target, params[k], grads[k], config, what=f"{what} (parameter {k!r})")
                    if isinstance(ret, tuple) and len(ret) == 2:
                        ret, new = ret
                        configs[k] = config if new is None else new
                    out[k] = params[k] if ret is None else ret
                return _params_out(out, params, _shapes(params), what)
            return stepper
        return fresh
    if form == "object":
        method = "step" if callable(getattr(target, "step", None)) else "update"
        _check_attributes(target, hp, given, what)

        def fresh():
            obj = copy.deepcopy(target)
            return lambda params, grads: _params_out(
                call_user(getattr(obj, method), params, grads, what=f"{what}.{method}"), params,
                _shapes(params), f"{what}.{method}")
        return fresh
    if form == "class":
        from backprop_oracle.manual.module import Parameter

        def fresh():
            box = {}

            def stepper(params, grads):
                if "opt" not in box:
                    box["params"] = {k: Parameter(v) for k, v in params.items()}
                    kw = keywords(target, hp, given)
                    box["opt"] = call_user(target, list(box["params"].values()), what=f"{what}(parameters, ...)", **kw)
                for k, p in box["params"].items():
                    p.grad = np.array(grads[k], copy=True)
                call_user(box["opt"].step, what=f"{what}.step")
                return _params_out({k: p.data for k, p in box["params"].items()}, None, _shapes(params), what)
            return stepper
        return fresh
    raise CheckError(f"unknown form {form!r}; choose one of: {', '.join(FORMS)}")


def _shapes(params):
    return {k: np.shape(v) for k, v in params.items()}


def run_user(fresh, start, grads):
    """[{parameter: w after step s}] of the user's rule from ``start`` fed the gradient dicts
    ``grads``: each step gets copies of its own last parameters and of the gradients."""
    stepper, params, out = fresh(), _copies(start), []
    for g in grads:
        params = stepper(_copies(params), _copies(g))
        out.append(params)
    return out
