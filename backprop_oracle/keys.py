"""Registry keys with arguments: ``"elu:alpha=0.5"``, ``"gelu:approximate=tanh"``,
``"softplus:beta=2,threshold=10"``, ``"cross_entropy:weight=1,2,3,label_smoothing=0.1"``.

A key is a registry name, then optionally ``:`` and torch's keyword arguments separated by commas.
A piece without ``=`` continues the list of the argument before it (``weight=1,2,3`` is a list of
three numbers). Values are numbers, ``true``/``false`` or words (``tanh``, ``sum``). The same text
works in Python (``mlp(sizes, "elu:alpha=0.5")``), in experiment files and on the command line.
Both sides read keys through this one module (it imports nothing, so manual/ stays NumPy-only and
torch_ref/ imports nothing of manual/).
"""


def _value(text):
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def split_key(key):
    """"elu:alpha=0.5" -> ("elu", {"alpha": 0.5}); "relu" -> ("relu", {})."""
    if not isinstance(key, str):
        raise ValueError(f"a registry key must be a string such as 'relu' or 'elu:alpha=0.5', got {key!r}")
    name, sep, rest = key.partition(":")
    name = name.strip()
    args, last = {}, None
    if sep and not rest.strip():
        raise ValueError(f"{key!r}: nothing after ':'; write arguments as {name}:name=value,name=value")
    for piece in (rest.split(",") if sep else []):
        piece = piece.strip()
        if "=" in piece:
            k, _, v = piece.partition("=")
            k, v = k.strip(), v.strip()
            if not k.isidentifier() or not v:
                raise ValueError(f"{key!r}: {piece!r} is not name=value")
            if k in args:
                raise ValueError(f"{key!r}: {k} is given twice")
            args[k], last = _value(v), k
        elif piece and last is not None:               # weight=1,2,3: the list goes on
            previous = args[last]
            args[last] = (*(previous if isinstance(previous, tuple) else (previous,)), _value(piece))
        else:
            raise ValueError(f"{key!r}: {piece!r} is not name=value; write arguments as "
                             f"{name}:name=value,name=value")
    return name, args


def join_key(name, args):
    """The inverse of split_key: ("elu", {"alpha": 0.5}) -> "elu:alpha=0.5"."""
    def text(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (tuple, list)):
            return ",".join(text(x) for x in v)
        return str(v)
    return name + (":" + ",".join(f"{k}={text(v)}" for k, v in args.items()) if args else "")


def build(registry, what, key, **kwargs):
    """``registry[name](**args, **kwargs)`` for a key "name:args"; an unknown name or argument is a
    ValueError that lists the valid ones."""
    import inspect
    name, args = split_key(key)
    if name not in registry:
        raise ValueError(f"unknown {what} {name!r}; choose one of: {', '.join(registry)}")
    takes = [p for p in inspect.signature(registry[name]).parameters if p not in ("self", "inplace")]
    unknown = [k for k in args if k not in takes]
    if unknown:
        raise ValueError(f"the {what} {name} takes no {', '.join(unknown)}; it takes "
                         f"{', '.join(takes) or 'no arguments'}")
    try:
        return registry[name](**args, **kwargs)
    except TypeError as e:
        raise ValueError(f"{what} {name}: {e}; it takes {', '.join(takes) or 'no arguments'}") from None
