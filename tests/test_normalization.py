"""BatchNorm1d, BatchNorm2d and LayerNorm on both sides: forward, backward and running statistics
against torch autograd (float64 tight, float32 at its stated tolerance) and central differences,
in training and evaluation mode; the batch of one refused as torch refuses it; buffers named and
saved as torch names them."""
import numpy as np
import pytest
import torch

from backprop_oracle import manual
from backprop_oracle import torch_ref
from backprop_oracle.compare.verdict.finite_diff import numerical_vjp
from backprop_oracle.compare.verdict.tolerances import Tolerance
from tests.helpers import F64, assert_close

# float32: both sides round every one of the normalisation's sums at float32's 1.2e-7; dividing by
# sigma (as small as sqrt(eps) = 3e-3) magnifies that, so 1e-4 relative / 1e-5 absolute of the scale.
F32 = Tolerance(rtol=1e-4, atol=1e-5)

KINDS = {"bn1d": ("BatchNorm1d", 1), "bn2d": ("BatchNorm2d", 1), "ln": ("LayerNorm", None)}


def random_shape(rng, kind):
    """A random input shape for the layer: (N, C), (N, C, L), (N, C, H, W) or (N, ..., D)."""
    N = int(rng.integers(2, 6))
    if kind == "bn1d":
        return (N, int(rng.integers(1, 5))) + ((int(rng.integers(1, 4)),) if rng.random() < 0.5 else ())
    if kind == "bn2d":
        return (N, int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(2, 4)))
    return (N,) + tuple(int(rng.integers(1, 5)) for _ in range(int(rng.integers(1, 3))))


def make_pair(kind, shape, rng, dtype="float64", **kw):
    """The manual layer and torch's, with the same random weight, bias and running statistics."""
    name = KINDS[kind][0]
    first = shape[1] if kind != "ln" else shape[-kw.pop("dims", 1):]
    m = getattr(manual, name)(first, **kw, dtype=np.dtype(dtype))
    t = getattr(torch_ref, name)(first, **kw, dtype=getattr(torch, dtype))
    state = {}
    for n, p in m.named_parameters():
        p.data[...] = rng.uniform(0.5, 1.5, p.shape) * rng.choice([-1, 1], p.shape)
        state[n] = p.data
    if getattr(m, "running_mean", None) is not None:
        m.running_mean[...] = rng.standard_normal(m.running_mean.shape)
        m.running_var[...] = rng.uniform(0.5, 2.0, m.running_var.shape)
    state.update(m.named_buffers())
    t.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    return m, t


def run_both(m, t, x, g):
    """(manual y, dx, grads) and (torch y, dx, grads) for one forward and backward with upstream g."""
    y = m.forward(x)
    dx = m.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    yt = t(xt)
    yt.backward(torch.tensor(g))
    return ((y, dx, {n: p.grad for n, p in m.named_parameters()}),
            (yt, xt.grad, {n: p.grad for n, p in t.named_parameters()}))


def assert_same(label, mine, ref, tol):
    (y, dx, grads), (yt, dxt, gt) = mine, ref
    assert_close(f"{label} y", y, yt, tol)
    assert_close(f"{label} dL/dx", dx, dxt, tol)
    assert set(grads) == set(gt), f"{label}: parameters {sorted(grads)} vs torch's {sorted(gt)}"
    for n in grads:
        assert_close(f"{label} {n}.grad", grads[n], gt[n], tol)


CASES = [(kind, mode, seed) for kind in KINDS for mode in ("train", "eval") for seed in range(3)]


@pytest.mark.parametrize("kind,mode,seed", CASES)
def test_forward_and_backward_match_torch_autograd_in_float64(kind, mode, seed):
    rng = np.random.default_rng(seed)
    shape = random_shape(rng, kind)
    m, t = make_pair(kind, shape, rng)
    m.train(mode == "train"), t.train(mode == "train")
    x = rng.standard_normal(shape) * 3 + 1
    g = rng.standard_normal(shape)
    assert_same(f"{kind} {shape} {mode}", *run_both(m, t, x, g), F64)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_float32_matches_torch_float32_within_its_tolerance(kind, mode):
    rng = np.random.default_rng(7)
    shape = random_shape(rng, kind)
    m, t = make_pair(kind, shape, rng, dtype="float32")
    m.train(mode == "train"), t.train(mode == "train")
    x = (rng.standard_normal(shape) * 2).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    mine, ref = run_both(m, t, x, g)
    assert mine[0].dtype == np.float32 and mine[1].dtype == np.float32
    assert_same(f"{kind} float32 {mode}", mine, ref, F32)


@pytest.mark.parametrize("kind,kw", [("bn1d", dict(affine=False)), ("bn2d", dict(affine=False)),
                                     ("bn1d", dict(track_running_stats=False)),
                                     ("ln", dict(elementwise_affine=False)), ("ln", dict(bias=False)),
                                     ("ln", dict(dims=2, eps=1e-3))])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_the_options_match_torch(kind, kw, mode):
    rng = np.random.default_rng(11)
    shape = (4, 3, 2, 3) if kind != "bn1d" else (5, 3)
    m, t = make_pair(kind, shape, rng, **kw)
    m.train(mode == "train"), t.train(mode == "train")
    x, g = rng.standard_normal(shape), rng.standard_normal(shape)
    assert_same(f"{kind} {kw} {mode}", *run_both(m, t, x, g), F64)


@pytest.mark.parametrize("kind,mode", [(k, m) for k in KINDS for m in ("train", "eval")])
def test_backward_matches_central_differences(kind, mode):
    """dL/dx, dL/dgamma, dL/dbeta against central differences of <forward(x), g> (float64)."""
    rng = np.random.default_rng(3)
    shape = random_shape(rng, kind)
    m, _ = make_pair(kind, shape, rng)
    m.train(mode == "train")
    params = [p for _, p in m.named_parameters()]
    x, g = rng.standard_normal(shape), rng.standard_normal(shape)
    m.forward(x)
    dx = m.backward(g)
    saved = {n: np.array(b, copy=True) for n, b in m.named_buffers()}

    def forward(arrays):
        for p, a in zip(params, arrays[1:]):
            p.data = a
        return m.forward(arrays[0])
    arrays = [x] + [p.data.copy() for p in params]
    names = ["dL/dx"] + [f"{n}.grad" for n, _ in m.named_parameters()]
    mine = [dx] + [p.grad.copy() for p in params]
    for i, (name, value) in enumerate(zip(names, mine)):
        num = numerical_vjp(forward, arrays, g, i)
        assert not num.near_kink.any(), f"{name}: normalisation has no kink"
        assert_close(f"{kind} {mode} {name} (central differences)", value, num.grad, num.tolerance())
    if mode == "eval":     # evaluation leaves the running statistics alone
        for n, b in m.named_buffers():
            assert np.array_equal(b, saved[n]), f"eval forward changed {n}"


@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
@pytest.mark.parametrize("kind", ["bn1d", "bn2d"])
def test_running_statistics_after_several_steps_are_torchs(kind, momentum):
    rng = np.random.default_rng(5)
    shape = (3, 4, 5) if kind == "bn1d" else (2, 3, 2, 3)
    m, t = make_pair(kind, shape, rng, momentum=momentum)
    for step in range(1, 6):
        x = rng.standard_normal(shape) * step + step
        m.forward(x)
        t(torch.tensor(x))
        for n, b in t.named_buffers():
            assert_close(f"{kind} momentum={momentum} {n} after step {step}", getattr(m, n), b)
    assert int(m.num_batches_tracked) == 5 and m.num_batches_tracked.dtype == np.int64
    # running_var is the unbiased one: one step from running_var = 1 by hand
    m2, _ = make_pair(kind, shape, np.random.default_rng(0), momentum=1.0)
    x = rng.standard_normal(shape)
    m2.forward(x)
    axes = (0,) + tuple(range(2, x.ndim))
    assert_close("running_var with momentum 1", m2.running_var, x.var(axis=axes, ddof=1))
    assert_close("running_mean with momentum 1", m2.running_mean, x.mean(axis=axes))


def test_eval_mode_normalises_with_the_running_statistics():
    m = manual.BatchNorm1d(2)
    m.running_mean[...] = [1.0, -2.0]
    m.running_var[...] = [4.0, 0.25]
    m.eval()
    x = np.array([[3.0, -2.0], [1.0, -1.5]])
    expected = (x - m.running_mean) / np.sqrt(m.running_var + 1e-5)
    assert_close("eval output", m.forward(x), expected)
    assert_close("eval dL/dx", m.backward(np.ones_like(x)), np.ones_like(x) / np.sqrt(m.running_var + 1e-5))


@pytest.mark.parametrize("kind,shape", [("bn1d", (1, 3)), ("bn1d", (1, 3, 1)), ("bn2d", (1, 2, 1, 1))])
def test_training_on_one_value_per_channel_is_refused_as_torch_refuses_it(kind, shape):
    m, t = make_pair(kind, shape, np.random.default_rng(0))
    x = np.ones(shape)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training") as mine:
        m.forward(x)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        t(torch.tensor(x))
    assert str(shape) in str(mine.value)
    # evaluation mode, and one example with several positions, are allowed on both sides
    m.eval(), t.eval()
    assert_close(f"{kind} {shape} eval", m.forward(x), t(torch.tensor(x)))
    if kind == "bn2d":
        m.train(), t.train()
        x = np.random.default_rng(1).standard_normal((1, 2, 2, 2))
        assert_close("bn2d one example of 4 positions", m.forward(x), t(torch.tensor(x)))


def test_wrong_input_shapes_are_clear_errors():
    with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input\)"):
        manual.BatchNorm1d(3).forward(np.ones((2, 3, 1, 1)))
    with pytest.raises(ValueError, match=r"expected 4D input \(got 2D input\)"):
        manual.BatchNorm2d(3).forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match="expects 3 channels on axis 1"):
        manual.BatchNorm1d(3).forward(np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"expected input with shape \[\*, 4\]"):
        manual.LayerNorm(4).forward(np.ones((2, 3)))


def test_a_network_names_and_saves_its_buffers_as_torch_does():
    m = manual.Sequential(manual.Linear(3, 4), manual.BatchNorm1d(4), manual.ReLU(), manual.Linear(4, 2))
    t = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    assert list(m.state_dict()) == list(t.state_dict())
    assert [n for n, _ in m.named_buffers()] == [n for n, _ in t.named_buffers()]
    assert [n for n, _ in m.named_parameters()] == [n for n, _ in t.named_parameters()]
    # buffers are not parameters: the flat parameter buffer holds every parameter and nothing else
    assert m.flat is not None and m.flat.intact()
    assert m.flat.data.size == sum(p.numel() for p in t.parameters())
    m.eval()
    assert not m.training and not m[1].training and not m[0].training
    m.train()
    assert m[1].training
    # a state from torch loads (buffers too, keeping the model's dtype) and comes back equal
    t.double()
    with torch.no_grad():
        t[1].running_mean.uniform_(-1, 1)
    t[1].num_batches_tracked += 3
    m.load_state_dict({k: v.numpy() for k, v in t.state_dict().items()})
    for k, v in m.state_dict().items():
        assert_close(f"loaded {k}", v, t.state_dict()[k])
    assert m[1].num_batches_tracked.dtype == np.int64 and int(m[1].num_batches_tracked) == 3
    assert m.flat.intact(), "loading a state took a parameter out of the flat buffer"
    with pytest.raises(KeyError, match=r"missing \['1.running_mean'\]"):
        m.load_state_dict({k: v for k, v in m.state_dict().items() if k != "1.running_mean"})
    m.load_state_dict({"0.weight": np.zeros((4, 3))}, strict=False)
    assert not m[0].weight.data.any()


def test_a_network_with_batch_norm_trains_like_torch():
    """Three SGD steps of Linear-BatchNorm-Tanh-Linear, cross-entropy: every parameter and buffer equal."""
    rng = np.random.default_rng(2)
    m = manual.Sequential(manual.Linear(3, 5), manual.BatchNorm1d(5, momentum=None), manual.Tanh(), manual.Linear(5, 2))
    t = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.BatchNorm1d(5, momentum=None), torch.nn.Tanh(),
                            torch.nn.Linear(5, 2)).double()
    t.load_state_dict({k: torch.tensor(v) for k, v in m.state_dict().items()})
    om, ot = manual.SGD(m.parameters(), lr=0.5), torch.optim.SGD(t.parameters(), lr=0.5)
    lm, lt = manual.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    X, Y = rng.standard_normal((6, 3)), rng.integers(0, 2, 6)
    for step in range(3):
        om.zero_grad(), ot.zero_grad()
        cm = lm(m.forward(X), Y)
        m.backward(lm.backward())
        om.step()
        ct = lt(t(torch.tensor(X)), torch.tensor(Y))
        ct.backward()
        ot.step()
        assert_close(f"cost at step {step + 1}", cm, ct)
    for k, v in t.state_dict().items():
        assert_close(f"{k} after 3 steps", m.state_dict()[k], v)
    m.eval(), t.eval()
    assert_close("eval output", m.forward(X), t(torch.tensor(X)))
