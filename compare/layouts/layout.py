"""A layout: where hand-written code keeps examples, weights, biases, targets and gradients.

The reference always runs in torch's layout: X (N, inputs) with examples in rows, W_l (out, in),
b_l (out,), parameters named "0.weight", "0.bias", "2.weight", ... A Layout turns the reference's
values into the user's (``params_for``, ``X_for``, ``Y_for``), what the user returns back into
torch's (``grads_from``, ``intermediates_from``), and the report's shapes, indices and words into
the user's (``user_shape``, ``user_index``, ``words``).

    examples   "rows" X (N, inputs), or "columns" X (inputs, m)      (the intermediates follow)
    weights    "out_in" W (out, in), or "in_out" W (in, out)
    bias       "flat" (out,), "column" (out, 1), or "row" (1, out)
    names      "torch" 0.weight, "W1", "w1", "W" (W, b: a single layer), "lists"
               (params["weights"][0], params["biases"][0]), or a tuple of the user's own names in
               torch's order (W1, b1, W2, b2, ...), as a model's params dict has them
    targets    "labels" ((N,) class indices, (1, m) in columns) or "onehot", for cross_entropy;
               other losses take their targets as encoded (one row, or one column, per example)
"""
import re
from dataclasses import dataclass, replace

import numpy as np

from backprop_oracle.compare.errors import CheckError

EXAMPLES, WEIGHTS, BIASES = ("rows", "columns"), ("out_in", "in_out"), ("flat", "column", "row")
NAME_KINDS = ("torch", "W1", "w1", "W", "lists")


@dataclass(frozen=True)
class Layout:
    examples: str = "rows"
    weights: str = "out_in"
    bias: str = "flat"
    names: object = "torch"
    targets: str = "labels"
    family: str = ""          # the named layout it is, in words, or ""

    def validate(self):
        for field, value, allowed in (("examples", self.examples, EXAMPLES), ("weights", self.weights, WEIGHTS),
                                      ("bias", self.bias, BIASES), ("targets", self.targets, ("labels", "onehot"))):
            if value not in allowed:
                raise CheckError(f"layout: {field} must be one of {', '.join(allowed)}, got {value!r}")
        if not isinstance(self.names, tuple) and self.names not in NAME_KINDS:
            raise CheckError(f"layout: names must be one of {', '.join(NAME_KINDS)} or a tuple of your names, "
                             f"got {self.names!r}")
        if self.names == "torch" and (self.examples, self.weights, self.bias) != ("rows", "out_in", "flat"):
            raise CheckError("layout: torch's names (0.weight, 0.bias) go with torch's layout (examples in rows, "
                             "W (out, in), b (out,)); name the parameters W1, b1, ... for another layout")
        return self

    # ------------------------------------------------------------------ names

    def user_names(self, layers):
        """[(W name, b name)] per layer, 1-based order: "W1"/"b1", "weights[0]"/"biases[0]", ..."""
        if isinstance(self.names, tuple):
            if len(self.names) != 2 * layers:
                raise CheckError(f"the parameters are named {', '.join(self.names)}: {len(self.names)} arrays, "
                                 f"but the network has {layers} layer(s), a weight and a bias each")
            return [(self.names[2 * i], self.names[2 * i + 1]) for i in range(layers)]
        if self.names == "torch":
            return [(f"{2 * i}.weight", f"{2 * i}.bias") for i in range(layers)]
        if self.names == "lists":
            return [(f"weights[{i}]", f"biases[{i}]") for i in range(layers)]
        if self.names == "W":
            if layers != 1:
                raise CheckError("layout: names 'W' (W, b) are for a network of one layer")
            return [("W", "b")]
        w, b = ("W", "b") if self.names == "W1" else ("w", "b")
        return [(f"{w}{l}", f"{b}{l}") for l in range(1, layers + 1)]

    def torch_to_user_names(self, layers):
        """{torch name: the user's name}."""
        out = {}
        for i, (w, b) in enumerate(self.user_names(layers)):
            out[f"{2 * i}.weight"], out[f"{2 * i}.bias"] = w, b
        return out

    # ------------------------------------------------------------------ values into the user's layout

    def param_for(self, torch_name, value):
        if torch_name.endswith("weight"):
            return np.array(value.T if self.weights == "in_out" else value, copy=True)
        return np.array({"flat": value, "column": value.reshape(-1, 1), "row": value.reshape(1, -1)}[self.bias],
                        copy=True)

    def params_for(self, state, layers):
        """The parameters as the user's code takes them: {name: array}, or {"weights": [...], "biases": [...]}."""
        names = self.torch_to_user_names(layers)
        if self.names == "lists":
            return {"weights": [self.param_for(f"{2 * i}.weight", state[f"{2 * i}.weight"]) for i in range(layers)],
                    "biases": [self.param_for(f"{2 * i}.bias", state[f"{2 * i}.bias"]) for i in range(layers)]}
        return {names[t]: self.param_for(t, v) for t, v in state.items()}

    def X_for(self, X):
        return np.array(X.T if self.examples == "columns" else X, copy=True)

    def Y_for(self, Y, loss, outputs):
        Y = np.asarray(Y)
        if loss == "cross_entropy" and Y.ndim == 1 and self.targets == "onehot":
            Y = np.eye(outputs)[Y]
        if self.examples == "columns":
            Y = Y.T if Y.ndim == 2 else Y.reshape(1, -1)
        return np.array(Y, copy=True)

    # ------------------------------------------------------------------ shapes and words

    def user_shape(self, torch_name, shape):
        """The shape of a parameter (torch name) or an intermediate ("z1", ...) in the user's layout."""
        shape = tuple(shape)
        if torch_name.endswith("weight"):
            return shape[::-1] if self.weights == "in_out" else shape
        if torch_name.endswith("bias"):
            return {"flat": shape, "column": shape + (1,), "row": (1,) + shape}[self.bias]
        return shape[::-1] if self.examples == "columns" and len(shape) == 2 else shape

    def user_index(self, torch_name, index):
        index = tuple(index)
        if torch_name.endswith("weight"):
            return index[::-1] if self.weights == "in_out" else index
        if torch_name.endswith("bias"):
            return {"flat": index, "column": index + (0,), "row": (0,) + index}[self.bias]
        return index[::-1] if self.examples == "columns" and len(index) == 2 else index

    def shapes_text(self):
        """"W1 (out, in), b1 (out, 1)"."""
        w, b = self.user_names(1)[0] if not isinstance(self.names, tuple) else self.names[:2]
        if self.names == "lists":
            w, b = "weights[l]", "biases[l]"
        bias = {"flat": "(out,)", "column": "(out, 1)", "row": "(1, out)"}[self.bias]
        return f"{w} ({'out, in' if self.weights == 'out_in' else 'in, out'}), {b} {bias}"

    def describe(self):
        """"examples in columns, W1 (out, in), b1 (out, 1): the layout of the OR-gate article and ..."."""
        text = f"examples in {self.examples}, {self.shapes_text()}"
        return text + (f": the layout of {self.family}" if self.family else "")

    def words(self, text):
        """A reason written for torch's layout, in this layout's terms: the axis examples lie on and the
        formulas of the chain with the user's own orientation."""
        if self.examples == "rows" and self.weights == "out_in":
            return text
        key = (self.examples, self.weights)
        grad_w = {("rows", "in_out"): "a{k}^T dL/dz{l}", ("columns", "out_in"): "dL/dz{l} a{k}^T",
                  ("columns", "in_out"): "a{k} dL/dz{l}^T"}[key]
        back = {("rows", "in_out"): "dL/dz{l} W{k}^T", ("columns", "out_in"): "W{k}^T dL/dz{l}",
                ("columns", "in_out"): "W{k} dL/dz{l}"}[key]
        lin = {("rows", "in_out"): "z = a W + b", ("columns", "out_in"): "z = W a + b",
               ("columns", "in_out"): "z = W^T a + b"}[key]
        if self.examples == "columns":
            text = text.replace("the batch (axis 0)", "the examples (axis 1: examples are columns)")
            text = text.replace("sum over the batch (axis 0)", "sum over the examples (axis 1)")
        text = re.sub(r"dL/dz(_?\d*)\^T a(_?\d*)", lambda m: grad_w.format(l=m.group(1), k=m.group(2)), text)
        text = re.sub(r"dL/dz(_?\d*) W(_?\d*)(?!\^T| \^T)", lambda m: back.format(l=m.group(1), k=m.group(2)), text)
        text = text.replace(" (no transpose)", "").replace(", no transpose", "").replace("z = a W^T + b", lin)
        return text


# The named layouts, in the order auto tries them when two fit equally.
_ARTICLE = "the OR-gate article and the deeplearning.ai course"
NAMED = {
    "torch": Layout("rows", "out_in", "flat", "torch", family="torch (examples in rows, 0.weight (out, in))"),
    "or-gate": Layout("columns", "out_in", "column", "W1", family=_ARTICLE),
    "deeplearning.ai": Layout("columns", "out_in", "column", "W1", family=_ARTICLE),
    "cs231n": Layout("rows", "in_out", "flat", "W1", family="Stanford CS231n's two-layer net"),
    "nielsen": Layout("columns", "out_in", "column", "lists", family="Michael Nielsen's network.py"),
}


def family_of(layout):
    """The named layout a layout's shapes are, in words (names aside), or ""."""
    for named in NAMED.values():
        if (named.examples, named.weights, named.bias) == (layout.examples, layout.weights, layout.bias) and \
                (named.names == "lists") == (layout.names == "lists"):
            return named.family
    if (layout.examples, layout.weights) == ("rows", "out_in") and layout.names != "lists":
        return "torch (examples in rows, W (out, in))"
    return ""


def resolve(layout, names=None):
    """A Layout from a name, a dict of fields or a Layout; ``names`` fixes the parameter names."""
    if isinstance(layout, str):
        if layout not in NAMED:
            raise CheckError(f"unknown layout {layout!r}; choose one of: auto, {', '.join(NAMED)}, or "
                             "Layout(examples=..., weights=..., bias=..., names=...)")
        out = NAMED[layout]
    elif isinstance(layout, dict):
        try:
            out = Layout(**layout)
        except TypeError as e:
            raise CheckError(f"layout: {e}; its keys are examples, weights, bias, names, targets") from None
    elif isinstance(layout, Layout):
        out = layout
    else:
        raise CheckError(f"layout must be 'auto', a name ({', '.join(NAMED)}), a dict or a Layout, got "
                         f"{type(layout).__name__}")
    if names is not None and out.names != names:
        if names == "torch" or out.names == "torch":
            out = replace(out, names=names) if names != "torch" else NAMED["torch"]
        else:
            out = replace(out, names=names)
    out = out.validate()
    return replace(out, family=out.family or family_of(out))


def candidates(names, spec_layers, loss, fixed=None):
    """Every layout auto tries, the named ones first. ``names``: the name kinds to try; ``fixed``:
    {field: value} an adapter knows (a model's own names, a per-example backprop's columns)."""
    fixed = fixed or {}
    out = []
    targets = ("labels", "onehot") if loss == "cross_entropy" else ("labels",)
    shapes = [("rows", "out_in", "flat"), ("columns", "out_in", "column"), ("rows", "in_out", "flat")]
    shapes += [(e, w, b) for e in EXAMPLES for w in WEIGHTS for b in BIASES if (e, w, b) not in shapes]
    for n in names:
        if n == "W" and spec_layers != 1:
            continue
        for e, w, b in shapes:
            if n == "torch" and (e, w, b) != ("rows", "out_in", "flat"):
                continue
            for t in targets:
                lay = Layout(e, w, b, n, t)
                if any(getattr(lay, k) != v for k, v in fixed.items()):
                    continue
                out.append(replace(lay, family=family_of(lay)))
    return out


def in_user_terms(result, layout):
    """The result with each tensor's shape and worst element in the user's layout."""
    if layout.examples == "rows" and layout.weights == "out_in" and layout.bias == "flat":
        return result

    def kind(name):
        return "0.weight" if name.startswith("dL/dW") else "0.bias" if name.startswith("dL/db") else \
            ("cost" if name == "cost" else "z")

    def mapped(d):
        k = kind(d.name)
        if k == "cost":
            return d
        return replace(d, shape=layout.user_shape(k, d.shape), index=layout.user_index(k, d.index))
    result.tensors = [replace(t, diff=mapped(t.diff)) for t in result.tensors]
    if result.mismatch is not None:
        result.mismatch = replace(result.mismatch, diff=mapped(result.mismatch.diff))
    return result
