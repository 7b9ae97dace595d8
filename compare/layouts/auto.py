"""layout="auto": the one layout that fits what the user's code accepts and returns.

Every layout of compare.layouts.layout.candidates is tried, the named ones first, by running the
whole check in it (``check_in``, compare.check's); a layout fits when the code runs in it and
returns what the check can read. One fit, or several with the same verdict: the first is taken and
named in the report. None: the error of the layout the code ran in (else of the first tried).
Several with different verdicts: refused, naming them, for a wrong pick would be a false verdict.
"""
from backprop_oracle.compare.errors import CheckError
from backprop_oracle.compare.layouts.layout import NAME_KINDS, candidates, resolve


def choose_layout(adapted, names_kind, run, check_in):
    """The check in the one layout that fits what the function accepts and returns; CheckError where
    none fits, or where two fit and give different verdicts."""
    spec, batch = run["spec"], run["batch"]
    kinds = [names_kind] if names_kind is not None else list(NAME_KINDS)
    fixed = {k: v for k, v in adapted.fixed.items() if k != "names"}
    tried = candidates(kinds, spec.layers, spec.loss, fixed)
    if run["data"] is None and run["batch"] in spec.sizes:
        # a batch the size of a layer would let one array pass for another's transpose
        run = dict(run, batch=next(b for b in range(run["batch"] + 1, 10**6) if b not in spec.sizes))
    fits, errors = [], []
    for lay in tried:
        try:
            fits.append((lay, check_in(adapted, lay, **run)))
        except CheckError as e:
            errors.append((lay, e))
    if not fits:
        ran = [(lay, e) for lay, e in errors if getattr(e, "stage", "") == "returns"]
        lay, e = (ran or errors)[0]
        if ran:
            raise CheckError(f"{e} (in the layout it runs in: {lay.describe()})") from None
        raise CheckError(f"{e}; it raised in every layout tried ({len(tried)}: examples in rows or columns, "
                         "W (out, in) or (in, out), b (out,), (out, 1) or (1, out)); if yours is another, "
                         "say so with layout=Layout(...)") from None
    first_layout, first = fits[0]
    verdict = lambda r: (r.passed, None if r.mismatch is None else r.mismatch.diff.name)
    other = next(((lay, r) for lay, r in fits[1:] if verdict(r) != verdict(first)), None)
    if other is not None:
        def said(lay, r):
            return f"{lay.describe()}: {'PASSED' if r.passed else r.mismatch.diff.name + ' wrong'}"
        raise CheckError(f"two layouts fit {run['what']} and give different verdicts ({said(first_layout, first)}; "
                         f"{said(*other)}); say which is yours with layout=... (e.g. layout='torch', "
                         "layout='or-gate', layout='cs231n') or a batch and sizes that tell them apart")
    first.layout = first_layout.describe()
    if run["batch"] != batch:
        first.notes.append(f"batches of {run['batch']} examples, not {batch}: a batch as large as a layer would "
                           "let one layout pass for another")
    return first


def check_in_layout(adapted, layout, names_kind, run, check_in):
    """The check in the layout asked for ("auto", a name, a dict, a Layout); torch's names mean torch's layout."""
    if layout == "auto" and names_kind != "torch":
        return choose_layout(adapted, names_kind, run, check_in)
    chosen = resolve("torch" if layout == "auto" else layout, names_kind)
    wrong = {k: v for k, v in adapted.fixed.items() if k != "names" and getattr(chosen, k) != v}
    if wrong:
        raise CheckError(f"layout {chosen.describe()} does not fit {run['what']}, whose own arrays have "
                         + ", ".join(f"{k} {v}" for k, v in wrong.items()))
    return check_in(adapted, chosen, **run)
