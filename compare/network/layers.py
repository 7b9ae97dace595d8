"""A network as a list of layers: the syntax, the registry of layer kinds, and the shapes checked
before anything runs.

Each layer is written ``kind`` or ``kind(arg, ..., name=value)``, the arguments Python literals
in torch's order and names; the input size is never written, it is the shape flowing in::

    linear(16) tanh linear(10) sigmoid            # the 64-16-10 network of --hidden 16
    flatten linear(10)                            # (N, 1, 8, 8) -> (N, 64) -> (N, 10)
    leaky_relu(negative_slope=0.1)                # or as a key with arguments: leaky_relu:negative_slope=0.1

``hidden_sizes`` is the short form of a dense network and becomes the same list
(``dense_layers``): ``linear(h) activation`` per hidden layer, then ``linear(outputs)
output_activation``, so its modules are those of ``manual.mlp`` with torch's names 0.weight,
2.weight, ...

Adding a layer kind is one entry of ``LAYERS``: a ``LayerKind`` with the function that builds the
manual module and the one that builds the torch module, each from the shape of one example
flowing in (without the batch axis) and the arguments written. The torch builder is handed
``backprop_oracle.torch_ref`` by the side that builds it (this room never imports torch); an
entry for a convolution reads::

    "conv": LayerKind(lambda shape, out_channels, kernel_size, *, dtype, **kw:
                          manual.Conv2d(_channels(shape, "conv"), out_channels, kernel_size, dtype=dtype, **kw),
                      lambda ref, shape, out_channels, kernel_size, *, dtype, device, **kw:
                          ref.Conv2d(_channels(shape, "conv"), out_channels, kernel_size, dtype=dtype,
                                     device=device, **kw),
                      "layer", "(N, C, H, W)"),

(a pooling, normalisation or dropout entry has the role "inner": it belongs to the layer before it).
The kinds: linear, conv (Conv2d), conv1d, maxpool, avgpool (MaxPool2d, AvgPool2d), batchnorm
(BatchNorm1d or 2d, chosen by the shape flowing in), layernorm (over each example's whole shape),
dropout, flatten and every activation key::

    conv(8, 3, padding=1) relu maxpool(2) conv(16, 3, padding=1) relu maxpool(2) flatten linear(10)
    linear(32) batchnorm sigmoid dropout(0.2) linear(10)
The output shape is never written either: ``resolve`` builds each manual module and runs one
example of zeros through it, so a layer whose input does not fit is named (its position and text)
with the shape it got, before a step is taken.
"""
import ast
import functools
import inspect
from dataclasses import dataclass
from typing import Callable

import numpy as np

from backprop_oracle import manual
from backprop_oracle.compare.errors import SpecError


class LayerShapeError(ValueError):
    """A layer cannot take the shape flowing into it (the message says what it takes)."""


def _features(shape, kind):
    """in_features of a layer that takes (N, features)."""
    if len(shape) != 1:
        raise LayerShapeError(f"{kind} takes (N, features); put flatten before it")
    return shape[0]


def _channels(shape, kind, rank=3):
    """in_channels of a layer that takes (N, C, ...) with ``rank`` axes after N (3: (N, C, H, W))."""
    if len(shape) != rank:
        raise LayerShapeError(f"{kind} takes {('(N, C, L)', '(N, C, H, W)')[rank - 2]}; give the data "
                              "that shape with input_shape")
    return shape[0]


@dataclass(frozen=True)
class LayerKind:
    """How to build one kind of layer on each side."""
    manual: Callable      # (shape, *args, dtype, **kwargs) -> a manual Module taking (N, *shape)
    torch: Callable       # (torch_ref, shape, *args, dtype, device, **kwargs) -> a torch.nn.Module
    role: str             # how the walk and the trace name it: "linear", "layer" (starts a layer: a
                          # convolution), "activation", or "inner" (pooling, flatten, norm, dropout)
    takes: str            # the input it takes, for messages
    stands_for: str = ""  # torch's class (list --keys): "torch.nn.Conv2d"


def _batch_norm(side, shape):
    """BatchNorm1d of ``side`` (manual or torch_ref) for (N, C) and (N, C, L), BatchNorm2d for (N, C, H, W)."""
    if len(shape) not in (1, 2, 3):
        raise LayerShapeError("batchnorm takes (N, C), (N, C, L) or (N, C, H, W)")
    return side.BatchNorm2d if len(shape) == 3 else side.BatchNorm1d


def _activation(key):
    # built from the key with its arguments ("elu:alpha=0.5"), so that a wrong argument is refused in
    # the words --activation uses
    return LayerKind(lambda shape, *, dtype, **kw: manual.make_activation(manual.join_key(key, kw)),
                     lambda ref, shape, *, dtype, device, **kw: ref.make_activation(manual.join_key(key, kw)),
                     "activation", "any shape")


LAYERS = {
    "linear": LayerKind(
        lambda shape, out_features, bias=True, *, dtype: manual.Linear(
            _features(shape, "linear"), out_features, bias=bias, rng=np.random.default_rng(0), dtype=dtype),
        lambda ref, shape, out_features, bias=True, *, dtype, device: ref.Linear(
            _features(shape, "linear"), out_features, bias=bias, dtype=dtype, device=device),
        "linear", "(N, features)", "torch.nn.Linear"),
    "flatten": LayerKind(
        lambda shape, start_dim=1, end_dim=-1, *, dtype: manual.Flatten(start_dim, end_dim),
        lambda ref, shape, start_dim=1, end_dim=-1, *, dtype, device: ref.Flatten(start_dim, end_dim),
        "inner", "any shape", "torch.nn.Flatten"),
    "conv": LayerKind(
        lambda shape, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True, *, dtype:
            manual.Conv2d(_channels(shape, "conv"), out_channels, kernel_size, stride, padding, dilation, groups,
                          bias, rng=np.random.default_rng(0), dtype=dtype),
        lambda ref, shape, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True, *,
            dtype, device: ref.Conv2d(_channels(shape, "conv"), out_channels, kernel_size, stride, padding, dilation,
                                      groups, bias, dtype=dtype, device=device),
        "layer", "(N, C, H, W)", "torch.nn.Conv2d"),
    "conv1d": LayerKind(
        lambda shape, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True, *, dtype:
            manual.Conv1d(_channels(shape, "conv1d", 2), out_channels, kernel_size, stride, padding, dilation,
                          groups, bias, rng=np.random.default_rng(0), dtype=dtype),
        lambda ref, shape, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True, *,
            dtype, device: ref.Conv1d(_channels(shape, "conv1d", 2), out_channels, kernel_size, stride, padding,
                                      dilation, groups, bias, dtype=dtype, device=device),
        "layer", "(N, C, L)", "torch.nn.Conv1d"),
    "maxpool": LayerKind(
        lambda shape, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *, dtype:
            manual.MaxPool2d(kernel_size, stride, padding, dilation, ceil_mode=ceil_mode),
        lambda ref, shape, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *, dtype, device:
            ref.MaxPool2d(kernel_size, stride, padding, dilation, ceil_mode=ceil_mode),
        "inner", "(N, C, H, W)", "torch.nn.MaxPool2d"),
    "avgpool": LayerKind(
        lambda shape, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, *, dtype:
            manual.AvgPool2d(kernel_size, stride, padding, ceil_mode, count_include_pad),
        lambda ref, shape, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, *, dtype,
            device: ref.AvgPool2d(kernel_size, stride, padding, ceil_mode, count_include_pad),
        "inner", "(N, C, H, W)", "torch.nn.AvgPool2d"),
    # batch norm over the channels: BatchNorm1d for (N, C) and (N, C, L), BatchNorm2d for (N, C, H, W)
    "batchnorm": LayerKind(
        lambda shape, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, *, dtype:
            _batch_norm(manual, shape)(shape[0], eps, momentum, affine, track_running_stats, dtype=dtype),
        lambda ref, shape, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, *, dtype, device:
            _batch_norm(ref, shape)(shape[0], eps, momentum, affine, track_running_stats, dtype=dtype, device=device),
        "inner", "(N, C), (N, C, L) or (N, C, H, W)", "torch.nn.BatchNorm1d, torch.nn.BatchNorm2d"),
    # layer norm over each example's whole shape (torch's normalized_shape = the shape flowing in)
    "layernorm": LayerKind(
        lambda shape, eps=1e-5, elementwise_affine=True, bias=True, *, dtype:
            manual.LayerNorm(shape, eps, elementwise_affine, bias, dtype=dtype),
        lambda ref, shape, eps=1e-5, elementwise_affine=True, bias=True, *, dtype, device:
            ref.LayerNorm(shape, eps, elementwise_affine, bias, dtype=dtype, device=device),
        "inner", "any shape", "torch.nn.LayerNorm"),
    # the mask is given to both sides by the comparison (compare.sides: one DropoutMasks per run)
    "dropout": LayerKind(
        lambda shape, p=0.5, *, dtype: manual.Dropout(p, rng=np.random.default_rng(0)),
        lambda ref, shape, p=0.5, *, dtype, device: ref.Dropout(p),
        "inner", "any shape", "torch.nn.Dropout"),
    **{key: _activation(key) for key in manual.ACTIVATIONS},
}


@dataclass(frozen=True)
class Layer:
    """One parsed layer: ``kind`` with ``args`` and ``kwargs`` (a tuple of (name, value)), as written."""
    kind: str
    args: tuple
    kwargs: tuple
    text: str

    @property
    def role(self):
        return LAYERS[self.kind].role


def split_layers(text):
    """A layers list written in one string, split at the spaces (or commas) outside parentheses:
    "conv(8, 3) relu flatten" -> ["conv(8, 3)", "relu", "flatten"]."""
    items, depth, current = [], 0, ""
    for ch in text:
        depth += (ch in "([") - (ch in ")]")
        # a comma inside a key's arguments ("softplus:beta=2,threshold=10") stays in it
        if depth == 0 and (ch.isspace() or (ch == "," and ":" not in current)):
            items.append(current)
            current = ""
        else:
            current += ch
    return [item for item in items + [current] if item]


def as_layers(value):
    """The spec's form of a layers list: a tuple of layer texts (a string is split, see split_layers)."""
    if isinstance(value, str):
        return tuple(split_layers(value))
    return tuple(value)


def _literal(node, text):
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise SpecError(f"layer {text!r}: {ast.unparse(node)!r} is not a number, true/false or a tuple "
                        "of them") from None


def parse_layer(text, position):
    """A Layer from ``kind`` or ``kind(args)``; SpecError naming the layer (1-based ``position``)."""
    where = f"layers: layer {position} {text!r}"
    if not isinstance(text, str):
        raise SpecError(f"{where} is not a text such as 'linear(10)' or 'relu'")
    if ":" in text and "(" not in text:          # an activation key with torch's arguments, "elu:alpha=0.5"
        return _key_layer(text, where)
    source = text.strip().replace("true", "True").replace("false", "False")
    try:
        node = ast.parse(source, mode="eval").body
    except SyntaxError:
        raise SpecError(f"{where} is not a layer: write kind or kind(arguments), e.g. 'linear(10)', "
                        "'conv(8, 3, padding=1)', 'relu'") from None
    if isinstance(node, ast.Name):
        kind, args, kwargs = node.id, (), ()
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
            not any(isinstance(a, ast.Starred) for a in node.args) and all(k.arg for k in node.keywords):
        kind = node.func.id
        args = tuple(_literal(a, text) for a in node.args)
        kwargs = tuple((k.arg, _literal(k.value, text)) for k in node.keywords)
    else:
        raise SpecError(f"{where} is not a layer: write kind or kind(arguments), e.g. 'linear(10)'")
    if kind not in LAYERS:
        raise SpecError(f"{where}: unknown layer kind {kind!r}; choose one of: {', '.join(LAYERS)}")
    return Layer(kind, args, kwargs, text.strip())


def _key_layer(text, where):
    """An activation written as its registry key with arguments, as --activation takes it:
    "elu:alpha=0.5" is the layer elu(alpha=0.5)."""
    try:
        kind, kwargs = manual.split_key(text.strip())
    except ValueError as e:
        raise SpecError(f"{where}: {e}") from None
    if kind not in LAYERS or LAYERS[kind].role != "activation":
        raise SpecError(f"{where}: only an activation is written name:arguments (e.g. 'elu:alpha=0.5'); "
                        f"write other layers kind(arguments), e.g. 'linear(10)'")
    return Layer(kind, (), tuple(kwargs.items()), text.strip())


def parse_layers(texts):
    return tuple(parse_layer(t, i) for i, t in enumerate(texts, 1))


def dense_layers(hidden_sizes, activation, output_activation, outputs):
    """The layers list of a dense network: ``hidden_sizes``' short form written out."""
    layers = []
    for h in hidden_sizes:
        layers += [f"linear({h})", activation]
    return tuple(layers + [f"linear({outputs})", output_activation])


def final_activation(texts):
    """The activation the network's output comes out of: the last layer's, or 'identity' where the
    list ends with a layer that is not an activation (then the output is that layer's)."""
    if not texts:
        return "identity"
    last = parse_layer(texts[-1], len(texts))
    return last.kind if last.role == "activation" else "identity"


def arguments(kind):
    """The arguments a layer kind takes, as written: "out_features, bias=True"."""
    params = list(inspect.signature(LAYERS[kind].manual).parameters.values())[1:]      # after the shape
    return ", ".join(p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
                     for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _shape(shape):
    return "(N" + "".join(f", {s}" for s in shape) + ")"


@dataclass(frozen=True)
class Network:
    """A checked layers list: each layer with the shape of one example flowing in (``shapes[i]``)
    and out of the last (``shapes[-1]``)."""
    layers: tuple
    shapes: tuple

    @property
    def kinds(self):
        return [layer.kind for layer in self.layers]

    @property
    def roles(self):
        return [layer.role for layer in self.layers]

    @property
    def sizes(self):
        """(inputs, the outputs of each linear layer but the last, outputs): a dense network's layer sizes."""
        hidden = [int(np.prod(out)) for layer, out in zip(self.layers, self.shapes[1:]) if layer.kind == "linear"]
        return (int(np.prod(self.shapes[0])), *hidden[:-1], int(np.prod(self.shapes[-1])))

    def manual(self, dtype="float64"):
        """A fresh manual.Sequential of these layers."""
        dt = manual.as_dtype(dtype)
        return manual.Sequential(*[LAYERS[l.kind].manual(shape, *l.args, dtype=dt, **dict(l.kwargs))
                                   for l, shape in zip(self.layers, self.shapes)])

    def torch(self, torch_ref, dtype="float64", device="cpu"):
        """A fresh torch.nn.Sequential of these layers, built with ``torch_ref`` (backprop_oracle.torch_ref)."""
        dt, dev = torch_ref.as_dtype(dtype), torch_ref.resolve_device(device)
        return torch_ref.Sequential(*[LAYERS[l.kind].torch(torch_ref, shape, *l.args, dtype=dt, device=dev,
                                                           **dict(l.kwargs))
                                      for l, shape in zip(self.layers, self.shapes)])

    def describe(self):
        return " ".join(layer.text for layer in self.layers)


@functools.lru_cache(maxsize=256)
def resolve(texts, input_shape, outputs):
    """The Network of the layer texts for examples of ``input_shape`` and ``outputs`` outputs: each
    layer is built for the shape flowing in and a batch of two examples of zeros is run through it. A layer
    that cannot take its input, or an output that is not (N, outputs), is a SpecError that names
    the layer by its position and text and says what it got."""
    layers, shapes, shape = parse_layers(texts), [], tuple(input_shape)
    for position, layer in enumerate(layers, 1):
        where = f"layers: layer {position} {layer.text!r} gets {_shape(shape)}"
        shapes.append(shape)
        try:
            module = LAYERS[layer.kind].manual(shape, *layer.args, dtype=np.float64, **dict(layer.kwargs))
        except LayerShapeError as e:
            raise SpecError(f"{where}, but {e}") from None
        except TypeError:
            raise SpecError(f"layers: layer {position} {layer.text!r}: {layer.kind} takes "
                            f"{layer.kind}({arguments(layer.kind)})") from None
        except ValueError as e:
            raise SpecError(f"{where}: {e}") from None
        try:
            with np.errstate(all="ignore"):
                out = module.forward(np.zeros((2,) + shape))     # two: a batch norm refuses one in training
        except Exception as e:        # any layer's own complaint, named with the layer
            raise SpecError(f"{where}, which it cannot take ({type(e).__name__}: {e}); it takes "
                            f"{LAYERS[layer.kind].takes}") from None
        if layer.kind == "maxpool" and np.isneginf(out).any():     # zeros in, -inf out: a window of padding only
            raise SpecError(f"{where}, and a window of it lies wholly in its padding, seeing no input (torch "
                            f"gives -inf there and its backward writes outside the input); give it less padding "
                            f"or dilation")
        shape = tuple(int(s) for s in np.shape(out)[1:])
    shapes.append(shape)
    if shape != (outputs,):
        last = f"layer {len(layers)} {layers[-1].text!r}" if layers else "the input"
        raise SpecError(f"layers: the network's output is {_shape(shape)} ({last}) but the data has "
                        f"{outputs} output(s): end with linear({outputs})" + (
                            "" if len(shape) == 1 else " after flatten"))
    return Network(layers, tuple(shapes))


def network_of(spec, sizes):
    """The Network of ``spec`` (its layers, or its hidden_sizes written out) on data of ``sizes``
    (inputs, ..., outputs), each example of ``spec.input_shape`` (default: (inputs,))."""
    outputs = sizes[-1]
    texts = spec.layers or dense_layers(spec.hidden_sizes, spec.activation, spec.output_activation, outputs)
    return resolve(tuple(texts), tuple(spec.input_shape) or (sizes[0],), outputs)


# ---- a built network's running statistics and modes, on either side (duck-typed: no torch here) ----

def named_buffers(model):
    """{"i.name": array} of every module's buffers (running statistics), where modules have
    ``named_buffers``: torch's always do, manual ones that keep statistics do. Integer buffers
    (torch's num_batches_tracked) are counts, not statistics, and are left out."""
    out = {}
    for i, m in enumerate(model):
        for name, b in (m.named_buffers() if hasattr(m, "named_buffers") else ()):
            dt = getattr(b, "dtype", None)
            if dt is not None and (dt.is_floating_point if hasattr(dt, "is_floating_point")      # a torch tensor's
                                   else np.issubdtype(dt, np.floating)):
                out[f"{i}.{name}"] = b
    return out


def evaluating(model):
    """Put a manual model and each of its modules that has ``eval`` in eval mode (running statistics
    used, no dropout); returns a function that puts them back in training mode."""
    parts = [m for m in (model, *model) if hasattr(m, "eval")]
    for m in parts:
        m.eval()
    return lambda: [m.train() for m in parts]
