"""The manual side's speed machinery changes no number and no contract: flat parameter buffers,
whole-buffer optimizer steps, reused workspace arrays and the fused softmax cross-entropy.

Every case trains against torch autograd (float64, F64 tolerance) or against the same network
stepped tensor by tensor, and a steady training step is checked to allocate (almost) nothing.
"""
import copy
import math
import tracemalloc

import numpy as np
import pytest
import torch

from backprop_oracle import manual
from backprop_oracle import torch_ref
from backprop_oracle.compare.verdict.tolerances import tolerance_for
from backprop_oracle.manual.module import FlatParameters
from tests.helpers import assert_close

SIZES = (6, 5, 4, 3)


def make_pair(sizes=SIZES, activation="sigmoid", optimizer="sgd", dtype="float64", seed=0, **opt_args):
    """A manual and a torch network with the same parameters, optimizer and loss (cross-entropy)."""
    rng = np.random.default_rng(seed)
    m = manual.mlp(sizes, activation, "identity", dtype=dtype)
    state = manual.init_parameters(m, "xavier_uniform", rng, zero_bias=False, dtype=dtype)
    m.load_state_dict(state)
    t = torch_ref.mlp(sizes, activation, "identity", dtype=dtype)
    t.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    om = manual.make_optimizer(optimizer, m.parameters(), **opt_args)
    ot = torch_ref.make_optimizer(optimizer, t.parameters(), **opt_args)
    return m, om, t, ot


def manual_step(model, opt, loss, X, Y, **backward):
    opt.zero_grad()
    cost = loss(model.forward(X), Y)
    model.backward(loss.backward(), **backward)
    opt.step()
    return float(cost)


def torch_step(model, opt, loss, X, Y):
    opt.zero_grad()
    cost = loss(model(X), Y)
    cost.backward()
    opt.step()
    return cost.item()


def data(n=7, sizes=SIZES, seed=1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, sizes[0])).astype(dtype), rng.integers(0, sizes[-1], n)


def assert_same_as_torch(m, om, t, ot, steps=4, X=None, Y=None, label=""):
    X, Y = data() if X is None else (X, Y)
    lm, lt = manual.make_loss("cross_entropy"), torch_ref.make_loss("cross_entropy")
    for k in range(steps):
        cm = manual_step(m, om, lm, X, Y)
        ct = torch_step(t, ot, lt, torch.tensor(X), torch.tensor(Y))
        assert_close(f"{label} cost at step {k + 1}", cm, ct)
    tp = dict(t.named_parameters())
    for name, p in m.named_parameters():
        assert_close(f"{label} {name} after {steps} steps", p.data, tp[name])
        assert_close(f"{label} {name}.grad after {steps} steps", p.grad, tp[name].grad)


# ---------------------------------------------------------------- flat buffers

def test_parameters_are_views_of_the_flat_buffers():
    m = manual.mlp(SIZES)
    assert m.flat is not None and m.flat.intact()
    start = 0
    for name, p in m.named_parameters():
        assert p.data.base is m.flat.data and p.grad.base is m.flat.grad, f"{name} is not a view"
        assert np.array_equal(m.flat.data[start:start + p.data.size], p.data.ravel()), name
        start += p.data.size
    assert start == m.flat.data.size


OPTIMIZERS = [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.1, momentum=0.9)),
    ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.5)),
    ("sgd", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("sgd", dict(lr=0.1, momentum=0.9, weight_decay=0.05)),
    ("sgd", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.05)),
    ("adam", dict(lr=0.01)),
    ("adam", dict(lr=0.01, betas=(0.8, 0.9), weight_decay=0.1)),
]


@pytest.mark.parametrize("optimizer,args", OPTIMIZERS, ids=[f"{o}{a}" for o, a in OPTIMIZERS])
def test_whole_buffer_step_matches_torch(optimizer, args):
    m, om, t, ot = make_pair(optimizer=optimizer, **args)
    assert FlatParameters.of(om.params) is m.flat, "the optimizer should step the flat buffer"
    assert_same_as_torch(m, om, t, ot, label=f"{optimizer}{args}")


@pytest.mark.parametrize("optimizer,args", OPTIMIZERS, ids=[f"{o}{a}" for o, a in OPTIMIZERS])
def test_whole_buffer_step_is_the_tensor_by_tensor_step_exactly(optimizer, args):
    """The same formula on one flat array or on each tensor: identical to the last bit."""
    flat, of, _, _ = make_pair(optimizer=optimizer, **args)
    each, oe, _, _ = make_pair(optimizer=optimizer, **args)
    for p in each.parameters():
        p.data = p.data.copy()                         # takes every parameter out of the flat buffer
        p.grad = p.grad.copy()
    assert not each.flat.intact() and FlatParameters.of(oe.params) is None
    X, Y = data()
    loss = manual.make_loss("cross_entropy")
    for _ in range(3):
        manual_step(flat, of, loss, X, Y)
        manual_step(each, oe, loss, X, Y)
    for (name, a), b in zip(flat.named_parameters(), each.parameters()):
        assert np.array_equal(a.data, b.data), f"{name}: flat {a.data} vs tensor by tensor {b.data}"
    for i, (sa, sb) in enumerate(zip(of.state, oe.state)):
        assert set(sa) == set(sb), f"state {i}: keys {set(sa)} vs {set(sb)}"
        for key in sa:
            assert np.array_equal(sa[key], sb[key]), f"state {i} {key}: {sa[key]} vs {sb[key]}"


def test_optimizer_state_is_per_parameter_views_that_follow_the_steps():
    m, om, t, ot = make_pair(optimizer="adam", lr=0.01)
    X, Y = data()
    loss = manual.make_loss("cross_entropy")
    manual_step(m, om, loss, X, Y)
    manual_step(m, om, loss, X, Y)
    for (name, p), s in zip(m.named_parameters(), om.state):
        assert s["step"] == 2, f"{name}: step {s['step']}"
        assert s["exp_avg"].shape == p.shape and s["exp_avg_sq"].shape == p.shape, name
    before = [s["exp_avg"].copy() for s in om.state]
    manual_step(m, om, loss, X, Y)
    assert any(not np.array_equal(b, s["exp_avg"]) for b, s in zip(before, om.state)), \
        "state[i]['exp_avg'] did not follow the flat step"


def test_assigning_data_takes_a_parameter_out_and_training_stays_right():
    m, om, t, ot = make_pair(optimizer="sgd", lr=0.1, momentum=0.9)
    X, Y = data()
    assert_same_as_torch(m, om, t, ot, steps=2, X=X, Y=Y, label="before the assignment")
    w = m[2].weight
    new = w.data.copy()
    w.data = new                                       # as in torch: the parameter now holds this array
    assert w.data is new and not m.flat.intact() and FlatParameters.of(om.params) is None
    assert_same_as_torch(m, om, t, ot, steps=3, X=X, Y=Y, label="after p.data = array")
    assert w.data is new, "the assigned array was replaced"


def test_intact_follows_every_way_a_parameter_leaves_and_rejoins():
    """``intact`` counts the parameters out of the buffer; over a random run of assignments,
    assignments back, copies and a second buffer taking the parameters over it must say what
    looking at every parameter says."""
    rng = np.random.default_rng(3)
    m = manual.mlp(SIZES, "tanh")
    flats = [m.flat]
    params = m.parameters()
    for k in range(300):
        p = params[rng.integers(len(params))]
        home = p._home
        views = home.views[home.index[id(p)]]
        action = rng.integers(5)
        if action == 0:
            p.data = p.data.copy()
        elif action == 1:
            p.grad = p.grad.copy()
        elif action == 2:
            p.data = views[0]
        elif action == 3:
            p.grad = views[1]
        elif action == 4:
            copy.deepcopy(m)                               # a copy must leave the model as it was
        if k in (100, 200):
            for q in params:                               # every parameter back in its buffer, then
                value, grad = q._home.views[q._home.index[id(q)]]
                q.data, q.grad = value, grad
            assert flats[-1].intact(), f"after step {k}: every parameter is back, but intact() is False"
            flats.append(FlatParameters(params))           # another buffer takes them over, views and all
        for f in flats:
            looked = all(q._flat is f for q in f.params)
            assert f.intact() == looked, (f"after step {k} (action {action}): intact() = {f.intact()}, "
                                          f"but the parameters say {looked}")
    c = copy.deepcopy(m)
    assert not c.flat.intact(), "a copy's buffer says intact, but its parameters stand alone"


def test_a_state_replaced_from_outside_is_used():
    """Setting optimizer.state (as a proof does on a copy) wins over the flat state kept inside."""
    m, om, t, ot = make_pair(optimizer="sgd", lr=0.1, momentum=0.9)
    X, Y = data()
    assert_same_as_torch(m, om, t, ot, steps=2, X=X, Y=Y)
    om.state = [{k: v * 0.5 for k, v in s.items()} for s in om.state]
    for p in t.parameters():
        ot.state[p]["momentum_buffer"] *= 0.5
    assert_same_as_torch(m, om, t, ot, steps=2, X=X, Y=Y, label="after halving the momentum")


def test_a_copy_of_the_model_trains_on_its_own():
    m, om, t, ot = make_pair(optimizer="sgd", lr=0.1, momentum=0.9)
    X, Y = data()
    twin = copy.deepcopy(m)
    before = m.state_dict()
    loss = manual.make_loss("cross_entropy")
    opt = manual.make_optimizer("sgd", twin.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):
        manual_step(twin, opt, loss, X, Y)
    for name, p in m.named_parameters():
        assert np.array_equal(p.data, before[name]), f"training a copy moved the original's {name}"
    ref = make_pair(optimizer="sgd", lr=0.1, momentum=0.9)
    assert_same_as_torch(*ref, steps=3, X=X, Y=Y)
    for (name, a), b in zip(twin.named_parameters(), ref[0].parameters()):
        assert_close(f"copy's {name} after 3 steps", a.data, b.data)


# ---------------------------------------------------------------- workspace arrays

def test_kept_results_are_never_overwritten():
    m = manual.mlp(SIZES, "relu")
    X1, _ = data(seed=1)
    X2, _ = data(seed=2)
    out1 = m.forward(X1)
    kept, outputs1 = out1.copy(), [o.copy() for o in m.outputs]
    held = list(m.outputs)
    for _ in range(3):                                 # more calls than the two arrays kept per name
        m.forward(X2)
    assert np.array_equal(out1, kept), "a kept forward output was overwritten by later calls"
    for i, (h, c) in enumerate(zip(held, outputs1)):
        assert np.array_equal(h, c), f"outputs[{i}] kept by the caller was overwritten"
    view = m.forward(X1)[:, :1]                         # a view keeps its array too
    m.forward(X2)
    assert np.array_equal(view, kept[:, :1]), "an array a view was kept of was overwritten"


def test_gradients_kept_by_the_caller_are_never_overwritten():
    m = manual.mlp(SIZES, "tanh")
    loss = manual.make_loss("cross_entropy")
    X, Y = data()
    loss(m.forward(X), Y)
    m.backward(loss.backward())
    kept = list(m.output_grads)
    copies = [g.copy() for g in kept]
    for _ in range(3):
        loss(m.forward(X * 2), Y)
        m.backward(loss.backward())
    for i, (k, c) in enumerate(zip(kept, copies)):
        assert np.array_equal(k, c), f"output_grads[{i}] kept by the caller was overwritten"


def _backward(m, loss, X, Y):
    loss(m.forward(X), Y)
    m.backward(loss.backward())


def _accumulated(m, loss, batches, start=None):
    """Every gradient of ``batches`` added by hand (from ``start``, else zeros): g_1 + g_2 + ...
    each g computed on its own by a copy of the model."""
    total = {n: (np.zeros_like(p.data) if start is None else start[n].copy()) for n, p in m.named_parameters()}
    for X, Y in batches:
        c = copy.deepcopy(m)
        c.zero_grad()
        _backward(c, loss, X, Y)
        for n, p in c.named_parameters():
            total[n] += p.grad
    return total


def assert_grads(label, m, expected):
    for n, p in m.named_parameters():
        bad = np.flatnonzero(p.grad.ravel() != expected[n].ravel())
        assert bad.size == 0, (f"{label}: {n}.grad[{np.unravel_index(bad[0], p.grad.shape)}] = "
                               f"{p.grad.ravel()[bad[0]]!r}, expected {expected[n].ravel()[bad[0]]!r} (tolerance 0)")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_gradient_written_after_zero_grad_is_the_sum_into_zeros_to_the_bit(dtype):
    m = manual.mlp(SIZES, "sigmoid", dtype=dtype)
    loss = manual.make_loss("cross_entropy")
    X, Y = data(dtype=dtype)
    expected = {n: np.zeros_like(p.data) for n, p in m.named_parameters()}
    c = copy.deepcopy(m)                             # a copy stands alone: every gradient is added
    assert FlatParameters.of(c.parameters()) is None
    c.zero_grad()
    _backward(c, loss, X, Y)
    for n, p in c.named_parameters():
        expected[n] += p.grad
    m.zero_grad()
    _backward(m, loss, X, Y)
    assert_grads("after zero_grad", m, expected)


@pytest.mark.parametrize("between", ["nothing", "read and written", "replaced", "zeroed tensor by tensor"])
def test_gradients_add_up_whatever_happened_to_them_since_zero_grad(between):
    m = manual.mlp(SIZES, "tanh")
    loss = manual.make_loss("cross_entropy")
    (X1, Y1), (X2, Y2) = data(seed=1), data(seed=2)
    opt = manual.make_optimizer("sgd", m.parameters(), lr=0.1)
    opt.zero_grad()
    start = {n: np.zeros_like(p.data) for n, p in m.named_parameters()}
    if between == "read and written":
        for n, p in m.named_parameters():
            p.grad[...] = 0.25                           # e.g. a gradient added by hand before backward
            start[n][...] = 0.25
    elif between == "replaced":
        for n, p in m.named_parameters():
            p.grad = np.full_like(p.data, -1.5)
            start[n][...] = -1.5
    elif between == "zeroed tensor by tensor":
        for p in m.parameters():
            p.grad[...] = 0
    expected = _accumulated(m, loss, [(X1, Y1), (X2, Y2)], start)
    _backward(m, loss, X1, Y1)
    _backward(m, loss, X2, Y2)                          # a second backward adds to the first
    assert_grads(f"two backwards after zero_grad, {between} in between", m, expected)
    opt.zero_grad()
    assert all(not p.grad.any() for p in m.parameters()), "zero_grad left a gradient that is not 0"
    _backward(m, loss, X2, Y2)
    assert_grads("one backward after the next zero_grad", m, _accumulated(m, loss, [(X2, Y2)]))


def test_only_a_gradient_nobody_had_since_zero_grad_is_written():
    m = manual.mlp(SIZES, "sigmoid")
    w, b = m[0].weight, m[0].bias
    m.zero_grad()
    assert w.zeroed_grad(np.float32) is None, "a gradient of another dtype was offered to write"
    assert w.zeroed_grad(np.float64) is w.grad
    assert w.zeroed_grad(np.float64) is None, "the same zeros were offered twice"
    b.grad
    assert b.zeroed_grad(np.float64) is None, "a gradient read through .grad was offered to write"
    m.zero_grad()
    assert b.zeroed_grad(np.float64) is b.grad, "zero_grad did not make the gradient writable again"
    c = copy.deepcopy(m)
    c.zero_grad()
    assert c[0].weight.zeroed_grad(np.float64) is None, "a copy out of the flat buffer was offered"


def _dirty(m, value=7.0):
    """Every gradient set to ``value`` through .grad, then zero_grad: each is 0 from then on,
    though no zeros need be in the flat array yet."""
    for p in m.parameters():
        p.grad[...] = value
    m.zero_grad()


@pytest.mark.parametrize("asked", ["each .grad", "the flat array", "a copy", "data replaced", "grad replaced",
                                   "a failed backward", "state_dict and a step"])
def test_a_gradient_is_zero_after_zero_grad_however_it_is_asked_for(asked):
    m = manual.mlp(SIZES, "sigmoid")
    _dirty(m)
    if asked == "each .grad":
        got = {n: p.grad for n, p in m.named_parameters()}
    elif asked == "the flat array":
        got = dict(zip([n for n, _ in m.named_parameters()], m.flat.split(m.flat.grad.copy())))
    elif asked == "a copy":
        got = {n: p.grad for n, p in copy.deepcopy(m).named_parameters()}
    elif asked == "data replaced":
        for p in m.parameters():
            p.data = p.data.copy()                          # takes it out of the flat buffer
        got = {n: p.grad for n, p in m.named_parameters()}
    elif asked == "grad replaced":
        views = [p._grad for p in m.parameters()]
        for p in m.parameters():
            p.grad = np.zeros_like(p.data)
        got = {n: v for (n, _), v in zip(m.named_parameters(), views)}   # what the views were left holding
    elif asked == "a failed backward":
        X, Y = data()
        loss = manual.make_loss("cross_entropy")
        loss(m.forward(X), Y)
        with pytest.raises(ValueError):
            m.backward(loss.backward()[:, :2])              # dL/dy of the wrong shape
        got = {n: p.grad for n, p in m.named_parameters()}
    else:
        m.state_dict()
        opt = manual.make_optimizer("sgd", m.parameters(), lr=0.1, momentum=0.9)
        before = {n: p.data.copy() for n, p in m.named_parameters()}
        opt.step()                                          # a step on zero gradients moves nothing
        for n, p in m.named_parameters():
            assert np.array_equal(p.data, before[n]), f"{n} moved by a step on zero gradients"
        got = {n: p.grad for n, p in m.named_parameters()}
    for n, g in got.items():
        bad = np.flatnonzero(g)
        assert bad.size == 0, (f"{n}.grad[{np.unravel_index(bad[0], g.shape)}] = {g.ravel()[bad[0]]!r} after "
                               f"zero_grad, asked for by {asked}; expected 0 (tolerance 0)")


def test_the_flat_array_holds_written_gradients_and_zeros_for_the_rest():
    m = manual.mlp(SIZES, "sigmoid")
    _dirty(m)
    w = m[0].weight
    into = w.zeroed_grad(np.float64)
    into[...] = 3.0                                         # as a backward writes it
    flat = m.flat.split(m.flat.grad)
    for (n, p), g in zip(m.named_parameters(), flat):
        expected = 3.0 if p is w else 0.0
        assert np.all(g == expected), f"flat gradient of {n}: {g.ravel()[:3]}..., expected all {expected}"


ALLOCATION_BOUND = 16 * 1024     # bytes: below every array a step at batch 8192 uses (see below)


def assert_steady_step_allocates_no_arrays(m, loss, X, Y, label, **backward):
    """Two warm-up steps (zero_grad, forward, loss, backward, SGD momentum 0.9), then one under
    tracemalloc: at its peak and at its end it holds at most ALLOCATION_BOUND bytes more than
    before, a few small Python objects, where the smallest array of the step (a float32 column of
    N = X.shape[0] numbers) would be more.

    NumPy's own iteration buffer (np.getbufsize() elements, 64 KiB in float64 by default, freed
    within the call that makes it: a broadcast such as z + b uses it) is set small while
    measuring, since its size is NumPy's setting and not the network's."""
    opt = manual.make_optimizer("sgd", m.parameters(), lr=0.01, momentum=0.9)
    old = np.setbufsize(256)
    try:
        for _ in range(2):
            manual_step(m, opt, loss, X, Y, **backward)
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            manual_step(m, opt, loss, X, Y, **backward)
            current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        np.setbufsize(old)
    smallest = X.shape[0] * X.dtype.itemsize
    assert ALLOCATION_BOUND < smallest, f"{label}: batch too small for the bound to exclude an array"
    assert peak - base <= ALLOCATION_BOUND, \
        f"{label}: a steady step allocated {peak - base} bytes at its peak (bound {ALLOCATION_BOUND})"
    assert current - base <= ALLOCATION_BOUND, \
        f"{label}: a steady step kept {current - base} bytes (bound {ALLOCATION_BOUND})"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("input_grad", [True, False])
def test_a_steady_training_step_allocates_no_arrays(dtype, input_grad):
    """Sigmoid hidden layers, logits and cross-entropy on class indices, batch 8192."""
    sizes, n = (16, 32, 32, 10), 8192
    rng = np.random.default_rng(0)
    m = manual.mlp(sizes, "sigmoid", "identity", dtype=dtype)
    X, Y = rng.standard_normal((n, sizes[0])).astype(dtype), rng.integers(0, sizes[-1], n)
    assert_steady_step_allocates_no_arrays(m, manual.make_loss("cross_entropy"), X, Y,
                                           f"cross_entropy {dtype}", input_grad=input_grad)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("sizes,loss", [((2, 1), "squared_error"), ((64, 16, 16, 10), "sum_squared_error")],
                         ids=["or-gate", "digits"])
def test_the_bench_steps_allocate_no_arrays(sizes, loss, dtype):
    """The steps of ``backprop-oracle bench``'s table (a) and of ``fit`` (sigmoid output, the
    squared errors on 0/1 targets, dL/dX of the data skipped), at batch 8192."""
    n = 8192
    rng = np.random.default_rng(1)
    m = manual.mlp(sizes, "sigmoid", "sigmoid", dtype=dtype)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    Y = (rng.random((n, sizes[-1])) < 0.5).astype(dtype)
    assert_steady_step_allocates_no_arrays(m, manual.make_loss(loss), X, Y, f"{sizes} {loss} {dtype}",
                                           input_grad=False)


def test_first_layer_input_gradient_is_skipped_only_when_asked():
    m = manual.mlp(SIZES)
    loss = manual.make_loss("cross_entropy")
    X, Y = data()
    loss(m.forward(X), Y)
    dx = m.backward(loss.backward())
    grads = {n: p.grad.copy() for n, p in m.named_parameters()}
    m.zero_grad()
    loss(m.forward(X), Y)
    assert m.backward(loss.backward(), input_grad=False) is None
    for n, p in m.named_parameters():
        assert np.array_equal(p.grad, grads[n]), f"{n}.grad changed when dL/dx was skipped"
    assert m[0].input_grad, "the first layer must compute dL/dx again after the call"
    Xt = torch.tensor(X, requires_grad=True)
    t = torch_ref.mlp(SIZES)
    t.load_state_dict({k: torch.tensor(v) for k, v in m.state_dict().items()})
    torch_ref.make_loss("cross_entropy")(t(Xt), torch.tensor(Y)).backward()
    assert_close("dL/dx of the network's input", dx, Xt.grad)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_bias_gradient_is_the_exact_batch_sum_to_rounding(dtype):
    """dL/db = sum_n dL/dy_n, computed as the product 1^T dL/dy: each column's exact sum (math.fsum)
    to a few units of the dtype's rounding of the terms added up, in the dtype, into ``out``."""
    from backprop_oracle.manual.linear import batch_sum
    rng = np.random.default_rng(3)
    a = rng.standard_normal((1797, 16)).astype(dtype)
    out = np.empty(16, dtype)
    got = batch_sum(a, out=out)
    assert got is out and got.dtype == np.dtype(dtype)
    eps = np.finfo(dtype).eps
    for j in range(16):
        exact = math.fsum(float(v) for v in a[:, j])
        scale = float(np.abs(a[:, j].astype(np.float64)).sum())
        tol = 8 * eps * scale
        assert abs(float(got[j]) - exact) <= tol, f"dL/db[{j}]: {got[j]!r} vs exact {exact!r} (tolerance {tol:.3g})"
    assert np.array_equal(batch_sum(np.zeros((0, 3), dtype)), np.zeros(3)), "an empty batch sums to 0"


LAYOUTS = {                       # how an (N, K) operand can be laid out
    "C": lambda a: np.ascontiguousarray(a),
    "transposed": lambda a: np.ascontiguousarray(a.T).T,
    "rows of a wider array": lambda a: np.pad(a, ((0, 0), (0, 3)))[:, :a.shape[1]],
    "every other row": lambda a: np.repeat(a, 2, axis=0)[::2],
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("dtypes", [("float64", "float64"), ("float32", "float32"), ("float32", "float64")],
                         ids=["float64", "float32", "mixed"])
def test_the_layers_products_are_numpys_matmul_to_the_last_bit(layout, dtypes):
    """manual.linear.product (np.dot, cheaper per call) gives np.matmul's numbers bit for bit for
    every product a dense layer computes: x W^T, dL/dy^T x, dL/dy W and batch_sum's 1^T dL/dy, into
    a given array or a new one, in each dtype and for mixed ones (there np.dot refuses the ``out``
    of np.matmul's dtype and np.matmul itself is called)."""
    from backprop_oracle.manual.linear import batch_sum, product
    rng = np.random.default_rng(6)
    lay = LAYOUTS[layout]
    for n, k, m in [(1, 1, 1), (4, 2, 1), (32, 64, 16), (10, 784, 16), (257, 33, 10)]:
        x = lay(rng.standard_normal((n, k)).astype(dtypes[0]))
        W = lay(rng.standard_normal((m, k)).astype(dtypes[1]))
        dy = lay(rng.standard_normal((n, m)).astype(dtypes[0]))
        for name, a, b in [("x W^T", x, W.T), ("dL/dy^T x", dy.T, x), ("dL/dy W", dy, W)]:
            want = np.matmul(a, b)
            out = np.empty(want.shape, want.dtype)
            for got in (product(a, b), product(a, b, out=out)):
                assert got.dtype == want.dtype and np.array_equal(got, want), \
                    f"{name} ({n}, {k}, {m}) {layout} {dtypes}: max gap {np.max(np.abs(got - want))}"
            assert product(a, b, out=out) is out
        out = np.empty(m, np.result_type(*dtypes))                  # as Linear asks: the step's dtype
        want = np.matmul(np.ones(n, dy.dtype), dy, out=out.copy())
        got = batch_sum(dy, out=out)
        assert got is out and np.array_equal(got, want), \
            f"1^T dL/dy ({n}, {m}) {layout} {dtypes}: max gap {np.max(np.abs(got - want))}"


# ---------------------------------------------------------------- the fused softmax cross-entropy

@pytest.mark.parametrize("targets", ["indices", "probabilities"])
def test_cross_entropy_fused_with_its_softmax_matches_torch_at_extreme_logits(targets):
    """Logits up to ±800: the softmax underflows to 0 for most classes, yet the cost stays torch's
    finite log-sum-exp value and the gradient softmax - y."""
    rng = np.random.default_rng(4)
    z = rng.standard_normal((6, 5)) * 300
    z[0, 0], z[1, 3] = 800.0, -800.0
    y = rng.integers(0, 5, 6) if targets == "indices" else rng.dirichlet(np.ones(5), 6)
    m = manual.CrossEntropyLoss()
    cost = m(z, y)
    grad = m.backward()
    zt = torch.tensor(z, requires_grad=True)
    ct = torch.nn.CrossEntropyLoss()(zt, torch.tensor(y))
    ct.backward()
    assert_close(f"cross-entropy cost ({targets})", cost, ct)
    assert_close(f"cross-entropy dL/dz ({targets})", grad, zt.grad)
    other = z[::-1].copy()                              # grad of another input computes its own softmax
    zo = torch.tensor(other, requires_grad=True)
    torch.nn.CrossEntropyLoss()(zo, torch.tensor(y)).backward()
    assert_close(f"cross-entropy dL/dz of a new input ({targets})", m.grad(other, y), zo.grad)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "leaky_relu", "softmax"])
def test_activations_match_torch_far_out(activation):
    """The in-place activations keep their values where exp overflows (|z| up to 1000)."""
    z = np.array([[-1000.0, -745.0, -30.0, -1.0, 0.0, 1e-9, 2.0, 30.0, 745.0, 1000.0]])
    g = np.linspace(-1, 1, z.size).reshape(z.shape)
    a = manual.make_activation(activation)
    ma, md = a.forward(z).copy(), a.backward(g).copy()
    zt = torch.tensor(z, requires_grad=True)
    at = torch_ref.make_activation(activation)(zt)
    at.backward(torch.tensor(g))
    assert_close(f"{activation}(z)", ma, at)
    assert_close(f"d{activation}/dz", md, zt.grad)


# ---------------------------------------------------------------- the squared errors' reused error array

@pytest.mark.parametrize("name,half,factor", [("squared_error", 0.5, 1.0), ("sum_squared_error", 1.0, 2.0)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_squared_errors_are_their_formulas_to_the_last_bit(name, half, factor, dtype):
    """Cost and gradient from the one reused ŷ - y equal the docstring formulas computed afresh,
    bit for bit, step after step; a gradient of another input computes its own error."""
    rng = np.random.default_rng(5)
    loss = manual.make_loss(name)
    Y = rng.random((9, 3)).astype(dtype)
    for k in range(3):
        out = rng.standard_normal((9, 3)).astype(dtype)
        cost, grad = loss(out, Y), loss.backward()
        want_cost = half * np.sum((Y - out) ** 2) / 9
        want_grad = factor * (out - Y) / 9
        assert cost.dtype == want_cost.dtype and cost == want_cost, f"{name} cost at step {k}: {cost} vs {want_cost}"
        assert grad.dtype == want_grad.dtype and np.array_equal(grad, want_grad), \
            f"{name} gradient at step {k}: max gap {np.max(np.abs(grad - want_grad))}"
    other = out[::-1].copy()
    assert np.array_equal(loss.grad(other, Y), factor * (other - Y) / 9), f"{name} gradient of another input"
    t = torch.tensor(out, requires_grad=True)
    torch_ref.make_loss(name)(t, torch.tensor(Y)).backward()
    assert_close(f"{name} dL/dinput against torch autograd ({dtype})", loss.grad(out, Y), t.grad,
                 tolerance_for(dtype))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("n,k", [(1797, 16), (1797, 10), (256, 64), (4 * 64, 16), (4 * 64 - 1, 16), (32, 16),
                                 (1000, 3), (9, 1024)])
def test_the_bias_added_in_strips_is_the_broadcast_sum_to_the_bit(n, k, dtype):
    """Linear adds b to its rows in strips of m rows (manual.linear.add_to_rows) where that is
    quicker: every element must be exactly y + b, as ``y += b`` gives it, strip or left-over row."""
    from backprop_oracle.manual.linear import add_to_rows, strip_rows
    rng = np.random.default_rng(n * k)
    y = (rng.standard_normal((n, k)) * 10.0 ** rng.integers(-8, 8, (n, k))).astype(dtype)
    b = (rng.standard_normal(k) * 10.0 ** rng.integers(-8, 8, k)).astype(dtype)
    m = strip_rows(n, k)
    if (n, k) == (1797, 16):
        assert m > 0 and n % m, "the case meant to use strips with rows left over uses none"
    expected = y + b
    got = add_to_rows(y.copy(), b, np.full((m, k), np.nan, dtype) if m else None)
    bad = np.flatnonzero(got.view(np.uint8).reshape(n, -1) != expected.view(np.uint8).reshape(n, -1))
    assert bad.size == 0, (f"y + b in strips of {m} rows, {dtype}: element {np.unravel_index(bad[0] // got.itemsize, (n, k))}"
                           f" is {got.ravel()[bad[0] // got.itemsize]!r}, y + b is "
                           f"{expected.ravel()[bad[0] // got.itemsize]!r} (tolerance 0)")
    layer = manual.Linear(k, k, rng=rng, dtype=dtype)
    x = rng.standard_normal((n, k)).astype(dtype)
    out = layer.forward(x)
    assert np.array_equal(out, np.matmul(x, layer.weight.data.T) + layer.bias.data), \
        f"Linear({k}, {k}) forward at batch {n}, {dtype}: not x W^T + b to the bit"



def test_a_module_used_twice_is_refused_with_the_reason():
    """A manual module keeps its last input for its backward, so one object at two places would
    give the first place the second's gradient: Sequential says so instead of training wrongly."""
    L = manual.Linear(4, 4, rng=np.random.default_rng(5))
    with pytest.raises(ValueError, match=r"modules 0 and 2 are the same Linear"):
        manual.Sequential(L, manual.Tanh(), L)
    act = manual.Tanh()
    with pytest.raises(ValueError, match=r"modules 1 and 3 are the same Tanh"):
        manual.Sequential(manual.Linear(4, 4), act, manual.Linear(4, 4), act)
