"""Dropout on both sides: the same mask (from one DropoutMasks) gives the same y and dL/dx as torch
autograd and as torch's own functional computation with that mask; inverted scaling; identity in
evaluation; central differences with the mask held fixed."""
import numpy as np
import pytest
import torch

from backprop_oracle import manual
from backprop_oracle import torch_ref
from backprop_oracle.compare.verdict.finite_diff import numerical_vjp
from backprop_oracle.compare.verdict.tolerances import Tolerance
from tests.helpers import F64, assert_close

F32 = Tolerance(rtol=1e-6, atol=1e-7)   # float32: one product per element, rounded once on each side


@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("dtype,tol", [("float64", F64), ("float32", F32)])
def test_shared_masks_give_torchs_values_element_by_element(p, dtype, tol):
    rng = np.random.default_rng(int(p * 10))
    masks = manual.DropoutMasks(np.random.default_rng(42))
    m = manual.Dropout(p, mask=masks.provider("1", "manual"))
    t = torch_ref.Dropout(p, mask=masks.provider("1", "torch"))
    for step in range(3):                            # a new mask each step, the same on both sides
        shape = (4, 5) if step < 2 else (3, 2, 2)
        x, g = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
        xt = torch.tensor(x, requires_grad=True)
        yt = t(xt)                                   # torch asks first this time: order does not matter
        yt.backward(torch.tensor(g))
        y, dx = m.forward(x), m.backward(g)
        assert y.dtype == np.dtype(dtype) and dx.dtype == np.dtype(dtype)
        assert p in (0.0,) or np.array_equal(m.last_mask, t.last_mask), f"step {step + 1}: the masks differ"
        assert_close(f"p={p} step {step + 1} y", y, yt, tol)
        assert_close(f"p={p} step {step + 1} dL/dx", dx, xt.grad, tol)
        if 0 < p:
            # torch's functional computation with the same mask: x * mask / (1 - p)
            keep = torch.tensor(m.last_mask, dtype=xt.dtype)
            xf = torch.tensor(x, requires_grad=True)
            yf = xf * keep / (1 - p) if p < 1 else xf * keep * 0.0
            yf.backward(torch.tensor(g))
            assert_close(f"p={p} y against x*mask/(1-p)", y, yf, tol)
            assert_close(f"p={p} dL/dx against x*mask/(1-p)", dx, xf.grad, tol)


def test_inverted_scaling_keeps_the_mean_and_drops_about_p():
    m = manual.Dropout(0.25, rng=np.random.default_rng(0))
    y = m.forward(np.ones((200, 200)))
    assert set(np.unique(y)) == {0.0, 4.0 / 3.0}, "kept elements are scaled by 1/(1 - p)"
    assert abs((~m.last_mask).mean() - 0.25) < 0.01 and abs(y.mean() - 1.0) < 0.02


def test_evaluation_is_the_identity_on_both_sides():
    masks = manual.DropoutMasks(np.random.default_rng(0))
    m = manual.Dropout(0.5, mask=masks.provider(0, "manual")).eval()
    t = torch_ref.Dropout(0.5, mask=masks.provider(0, "torch")).eval()
    x = np.random.default_rng(1).standard_normal((3, 4))
    assert np.array_equal(m.forward(x), x) and np.array_equal(m.backward(x), x)
    assert np.array_equal(t(torch.tensor(x)).numpy(), x)
    seq = manual.Sequential(manual.Linear(4, 4), manual.Dropout(0.5))
    seq.eval()
    assert not seq[1].training and np.array_equal(seq.forward(x), seq[0].forward(x))


def test_backward_matches_central_differences_with_the_mask_held():
    rng = np.random.default_rng(3)
    keep = rng.random((4, 3)) >= 0.4
    m = manual.Dropout(0.4, mask=lambda shape, p: keep)
    x, g = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    m.forward(x)
    num = numerical_vjp(lambda arrays: m.forward(arrays[0]), [x], g, 0)
    assert_close("dropout dL/dx (central differences)", m.backward(g), num.grad, num.tolerance())


def test_the_masks_are_drawn_once_per_layer_and_step_and_let_go():
    masks = manual.DropoutMasks(np.random.default_rng(0))
    a, b = masks.provider("a", "manual"), masks.provider("b", "manual")
    ta = masks.provider("a", "torch")
    first, second = a((2, 3), 0.5), a((2, 3), 0.5)
    other = b((2, 3), 0.5)
    assert not np.array_equal(first, second) or not np.array_equal(first, other)
    assert np.array_equal(ta((2, 3), 0.5), first) and np.array_equal(ta((2, 3), 0.5), second)
    assert masks._drawn["a"] == {}, "masks both sides took are let go"
    with pytest.raises(ValueError, match="the two sides run different layers"):
        masks.provider("b", "torch")((3, 3), 0.5)
    with pytest.raises(ValueError, match="unknown side"):
        masks.take("a", "numpy", (2, 3), 0.5)


def test_p_outside_zero_one_is_refused_as_torch_refuses_it():
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        manual.Dropout(1.5)
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        torch_ref.Dropout(1.5)


def test_a_network_with_dropout_trains_like_torch_with_shared_masks():
    """Linear-ReLU-Dropout-Linear on both sides, three SGD steps: the masks of one DropoutMasks make
    every cost, parameter and gradient equal; eval then passes through."""
    rng = np.random.default_rng(4)
    masks = manual.DropoutMasks(np.random.default_rng(9))
    m = manual.Sequential(manual.Linear(4, 6), manual.ReLU(), manual.Dropout(0.5, mask=masks.provider(2, "manual")),
                          manual.Linear(6, 3))
    t = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch_ref.Dropout(0.5, mask=masks.provider(2, "torch")),
                            torch.nn.Linear(6, 3)).double()
    t.load_state_dict({k: torch.tensor(v) for k, v in m.state_dict().items()})
    om, ot = manual.SGD(m.parameters(), lr=0.3), torch.optim.SGD(t.parameters(), lr=0.3)
    lm, lt = manual.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    X, Y = rng.standard_normal((8, 4)), rng.integers(0, 3, 8)
    for step in range(3):
        om.zero_grad(), ot.zero_grad()
        cm = lm(m.forward(X), Y)
        m.backward(lm.backward())
        ct = lt(t(torch.tensor(X)), torch.tensor(Y))
        ct.backward()
        assert np.array_equal(m[2].last_mask, t[2].last_mask), f"step {step + 1}: masks differ"
        assert_close(f"cost at step {step + 1}", cm, ct)
        tp = dict(t.named_parameters())
        for n, p in m.named_parameters():
            assert_close(f"{n}.grad at step {step + 1}", p.grad, tp[n].grad)
        om.step(), ot.step()
    m.eval(), t.eval()
    assert_close("eval output", m.forward(X), t(torch.tensor(X)))
