"""Parameters and the module base class: the small part of torch.nn.Module that backprop needs.

Two pieces of machinery make a training step cheap without changing any formula:

- ``Workspace.buffer`` hands a layer an array for an intermediate result (z, a, dL/dz, ...), the
  same one from step to step, so that a steady training loop allocates nothing. An array that
  anyone outside still holds (a caller kept ``forward``'s output) is never handed out again.
- ``FlatParameters`` keeps the values of a model's parameters in one contiguous array and their
  gradients in another, each ``Parameter.data`` / ``.grad`` a view into them, so that updating every
  value is one NumPy operation (see Sequential and the optimizers) and zeroing every gradient is
  none: the zeros are written only where a backward does not write the gradient first.
"""
import sys

import numpy as np


class Parameter:
    """A trainable array and the gradient accumulated into it.

    ``data`` holds the value; ``grad`` has the same shape and dtype and is *added to* by every
    ``backward`` (as in torch), so call ``zero_grad`` between steps.

    Update them in place (``p.data[...] = value``, ``p.data -= ...``). Assigning a new array
    (``p.data = value``) works as in torch: the parameter then holds that array, and if it was a
    view into its model's flat buffer it leaves it (zero_grad and the optimizers then treat it on
    its own, correctly but one tensor at a time).
    """

    def __init__(self, data):
        self._data = np.array(data, copy=True)
        self._grad = np.zeros_like(self._data)
        self._home = None             # the FlatParameters that made views for this parameter, if any
        self._flat = None             # the same while .data and .grad are those views, else None
        self._seen = 0                # _flat.zeroings when .grad last held what it says (see _settle)

    @property
    def data(self):
        return self._data

    @data.setter
    def data(self, value):
        if value is not self._data:          # (``p.data -= x`` assigns the same array back)
            self._settle()
            self._data = value
            self._rejoin()

    @property
    def grad(self):
        flat = self._flat
        if flat is not None and self._seen != flat.zeroings:
            self._settle()
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not self._grad:          # (``p.grad += x`` assigns the same array back)
            self._settle()
            self._grad = value
            self._rejoin()

    def zeroed_grad(self, dtype):
        """The gradient array, to write a gradient into instead of adding it to zeros (0 + g is
        g), when its flat buffer's ``zero_grad`` has set it to 0 and nothing has had it since,
        and its dtype is ``dtype``; else None (then add into ``.grad``). The caller must write
        the whole gradient there: the zeros are not in the array (see FlatParameters)."""
        flat = self._flat
        if flat is None or self._seen == flat.zeroings or self._grad.dtype != dtype:
            return None
        self._seen = flat.zeroings
        flat.owed -= 1
        return self._grad

    def _settle(self):
        """Write the zeros of the flat buffer's last ``zero_grad`` into the gradient, if they are
        owed: before anyone has the array, and before it leaves the buffer."""
        flat = self._flat
        if flat is not None and self._seen != flat.zeroings:
            self._grad.fill(0)
            self._seen = flat.zeroings
            flat.owed -= 1

    def _rejoin(self):
        """In the flat buffer exactly while .data and .grad are its views (assigning them back rejoins)."""
        home, was = self._home, self._flat
        views = None if home is None else home.views[home.index[id(self)]]
        self._flat = home if views is not None and self._data is views[0] and self._grad is views[1] else None
        if self._flat is not was:
            home.out += 1 if was is not None else -1
        if self._flat is not None:
            self._seen = self._flat.zeroings

    def __getstate__(self):
        # A copy (copy.deepcopy, pickle) holds copies of the arrays, not views: it stands alone.
        self._settle()
        state = dict(self.__dict__)
        state["_home"] = state["_flat"] = None
        return state

    @property
    def shape(self):
        return self._data.shape

    def __repr__(self):
        return f"Parameter(shape={self._data.shape}, dtype={self._data.dtype})"


class FlatParameters:
    """The values of ``params`` in one contiguous array ``data`` and their gradients in ``grad``;
    each parameter's ``.data`` and ``.grad`` become views into them (values and gradients are
    copied in, nothing changes numerically). All parameters must share one dtype.

    ``zero_grad`` counts a zeroing in ``zeroings`` and writes no zeros yet: a backward writes
    each gradient into its array as it is (``Parameter.zeroed_grad``; 0 + g is g), and the zeros
    are written into a parameter's gradient only where someone asks for it first (``.grad``,
    replacing it, a copy) and into the whole flat array where ``grad`` is asked for. So a step
    makes one pass fewer over the gradients for the zeroing, and one for each sum into zeros,
    with the same numbers. (As in torch, whose ``zero_grad`` sets each gradient to None: an
    array taken from ``.grad`` before a ``zero_grad`` and written after it is not the gradient
    the next backward starts from.)
    """
    zeroings = 0
    out = 0                # how many of its parameters are out of it (see intact)
    owed = 0               # at least how many parameters are owed their zeros (0: none is)

    def __init__(self, params):
        self.params = list(params)
        dtype = self.params[0].data.dtype
        sizes = [p.data.size for p in self.params]
        self.data = np.empty(sum(sizes), dtype)
        self._grad = np.empty(sum(sizes), dtype)
        self.spans = []                                   # (start, stop, shape) per parameter
        start = 0
        for p, size in zip(self.params, sizes):
            self.spans.append((start, start + size, p.data.shape))
            start += size
        self.views = list(zip(self.split(self.data), self.split(self._grad)))   # (value, gradient) views
        self.index = {id(p): i for i, p in enumerate(self.params)}
        for p, (value, grad) in zip(self.params, self.views):
            value[...], grad[...] = p.data, p.grad
            if p._flat is not None and p._flat is not self:
                p._flat.out += 1                          # it leaves the buffer it was in
            p._data, p._grad, p._home, p._flat, p._seen = value, grad, self, self, self.zeroings

    @property
    def grad(self):
        """The flat array of every gradient, the zeros owed to it written in."""
        if self.owed:
            owed = [p for p in self.params if p._flat is self and p._seen != self.zeroings]
            if len(owed) == len(self.params):
                self._grad.fill(0)                         # (no parameter has its gradient yet)
                for p in owed:
                    p._seen = self.zeroings
            else:
                for p in owed:
                    p._settle()
            self.owed = 0
        return self._grad

    def zero_grad(self):
        """Every gradient = 0 (written where it is next asked for, or not at all where a backward
        writes the gradient first)."""
        self.zeroings += 1
        self.owed = len(self.params)        # (at least as many as are owed: ``grad`` counts them)

    def __getstate__(self):
        self.grad                                          # (a copy gets the zeros, not what they replace)
        state = dict(self.__dict__)
        state["out"] = len(self.params)                    # a copy's parameters are copies that stand alone
        return state

    def split(self, flat):
        """Views of a flat array laid out like ``data``, one per parameter, in its shape."""
        return [flat[start:stop].reshape(shape) for start, stop, shape in self.spans]

    @staticmethod
    def can_hold(params):
        """True when ``params`` are Parameters of NumPy floats of one dtype (what a flat buffer needs)."""
        params = list(params)
        return bool(params) and all(isinstance(p, Parameter) and isinstance(p.data, np.ndarray)
                                    and isinstance(p.grad, np.ndarray) for p in params) \
            and len({p.data.dtype for p in params} | {p.grad.dtype for p in params}) == 1 \
            and np.issubdtype(params[0].data.dtype, np.floating) \
            and all(p.grad.shape == p.data.shape for p in params)

    def intact(self):
        """True while every parameter's ``.data`` and ``.grad`` are still the views made here: an
        assignment ``p.data = array`` takes it out (until its view is assigned back), and a copy
        of a parameter (copy.deepcopy, pickle) stands alone. (Each parameter counts itself in
        ``out`` when it leaves and out when it rejoins.)"""
        return self.out == 0

    @staticmethod
    def of(params):
        """The intact FlatParameters that holds exactly ``params``, in that order, or None."""
        flat = getattr(params[0], "_flat", None) if params else None
        if flat is None or flat.params != params or not flat.intact():
            return None
        return flat


_refcount = sys.getrefcount


def _spare_refcount():
    """sys.getrefcount of an array that only a Workspace pool holds, as ``Workspace.buffer`` sees it."""
    for a in [np.empty(0)]:
        return _refcount(a)


class Workspace:
    """Arrays for intermediate results, reused from call to call.

    ``buffer(name, shape, dtype)`` returns one of the (at most two) arrays kept under ``name``
    when it has that shape and dtype and nothing but this pool refers to it, or else a new one.
    Two, because the arrays of the previous call are usually still referred to (by the next
    layer's saved input) when this call asks. The reference count is what makes reuse safe: an
    array that a caller kept, or a view of it, is never overwritten.
    """

    def buffer(self, name, shape, dtype):
        try:
            pool = self._buffers[name]
        except AttributeError:
            self._buffers = {}
            pool = self._buffers[name] = []
        except KeyError:
            pool = self._buffers[name] = []
        for a in pool:
            if _refcount(a) == _SPARE and a.shape == shape and a.dtype == dtype:
                return a
        if len(pool) == 2:
            del pool[0]
        pool.append(np.empty(shape, dtype))
        return pool[-1]


_SPARE = _spare_refcount()


class Module(Workspace):
    """Base class: ``forward`` caches what ``backward`` needs; ``backward(dL_dy)`` returns ``dL_dx``.

    As in torch.nn.Module: ``training`` (True after construction) is switched by ``train(mode)`` /
    ``eval()`` for the module and every module inside it (layers such as BatchNorm and Dropout
    behave differently in the two modes); ``register_buffer(name, array)`` keeps an array that is
    state but not a parameter (BatchNorm's running_mean): it is the attribute ``name``, is listed
    by ``named_buffers`` and saved by ``state_dict`` under torch's names ("1.running_mean"), and
    gets no gradient, no optimizer step and no place in a flat parameter buffer.
    """
    training = True          # class defaults, for subclasses that do not call Module.__init__
    _buffer_names = ()

    def __init__(self):
        self._parameters = {}  # name -> Parameter, in definition order (as torch registers them)
        self._buffer_names = []   # names of the attributes that are buffers, in registration order
        self.training = True

    def register_parameter(self, name, value):
        self._parameters[name] = None if value is None else Parameter(value)
        return self._parameters[name]

    def register_buffer(self, name, value):
        """Keep ``value`` (an array, or None) as the buffer ``name``, read as ``self.<name>``.

        Update it in place (``self.running_mean *= ...``) or assign a new array to the attribute;
        either way ``named_buffers`` and ``state_dict`` see the current one."""
        if "." in name or not name.isidentifier():
            raise KeyError(f"buffer name must be an identifier without '.', got {name!r}")
        if name in self._parameters:
            raise KeyError(f"attribute {name!r} is already a parameter")
        if not isinstance(self._buffer_names, list):        # a subclass that skipped Module.__init__
            self._buffer_names = list(self._buffer_names)
        if name not in self._buffer_names:
            self._buffer_names.append(name)
        setattr(self, name, None if value is None else np.asarray(value))
        return getattr(self, name)

    def named_parameters(self, prefix=""):
        for name, p in self._parameters.items():
            if p is not None:
                yield prefix + name, p

    def named_buffers(self, prefix=""):
        """(prefix + name, array) of every buffer that is not None, in registration order."""
        for name in self._buffer_names:
            value = getattr(self, name, None)
            if value is not None:
                yield prefix + name, value

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def buffers(self):
        return [b for _, b in self.named_buffers()]

    def children(self):
        """The modules directly inside this one (none for a layer; Sequential's modules)."""
        return []

    def train(self, mode=True):
        """Set training mode (``mode=True``) or evaluation mode here and in every module inside; returns self."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        self.training = mode
        for m in self.children():
            m.train(mode)
        return self

    def eval(self):
        """Evaluation mode, ``train(False)``: BatchNorm uses its running statistics, Dropout passes x through."""
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad[...] = 0

    def state_dict(self):
        """Copies of every parameter's value and every buffer, keyed by torch's names
        ("0.weight", "1.running_mean", "1.num_batches_tracked")."""
        return {name: (value.data.copy() if isinstance(value, Parameter) else np.array(value, copy=True))
                for name, value in self._state_items()}

    def _state_items(self, prefix=""):
        """(name, Parameter or buffer) in torch's state_dict order: a module's own parameters, its
        own buffers, then each module inside it."""
        for name, p in self._parameters.items():
            if p is not None:
                yield prefix + name, p
        for name in self._buffer_names:
            if getattr(self, name, None) is not None:
                yield prefix + name, getattr(self, name)
        for i, m in enumerate(self.children()):
            yield from m._state_items(f"{prefix}{i}.")

    def load_state_dict(self, state_dict, strict=True):
        """Copy values in; with ``strict`` (torch's default) the names must match exactly; shapes always.

        Values are written in place (the model's arrays and dtypes stay; a flat parameter buffer
        stays intact), as torch copies into its tensors."""
        own = dict(self.named_parameters())
        buffers = {name: (m, local) for m, name, local in self._buffer_owners()}
        missing = sorted((set(own) | set(buffers)) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(own) - set(buffers))
        if strict and (missing or unexpected):
            raise KeyError(f"state_dict does not match the model: missing {missing}, unexpected {unexpected}")
        for name, p in own.items():
            if name not in state_dict:
                continue
            value = np.asarray(state_dict[name])
            if value.shape != p.data.shape:
                raise ValueError(f"state_dict[{name!r}] has shape {value.shape}, the model's is {p.data.shape}")
            p.data[...] = value
        for name, (m, local) in buffers.items():
            if name not in state_dict:
                continue
            old, value = getattr(m, local), np.asarray(state_dict[name])
            if value.shape != old.shape:
                raise ValueError(f"state_dict[{name!r}] has shape {value.shape}, the model's is {old.shape}")
            old[...] = value

    def _buffer_owners(self, prefix=""):
        """(module, full name, name in that module) of every buffer, for load_state_dict."""
        for name in self._buffer_names:
            if getattr(self, name, None) is not None:
                yield self, prefix + name, name
        for i, m in enumerate(self.children()):
            yield from m._buffer_owners(f"{prefix}{i}.")

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, dL_dy):  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_repr(self):
        return ""

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"
