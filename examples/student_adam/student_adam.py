"""A student's Adam, written as the lecture notes write it, one parameter dict at a time:

    m = β1 m + (1 − β1) g        v = β2 v + (1 − β2) g²        (m = v = 0 before step 1)
    m̂ = m / (1 − β1^t)           v̂ = v / (1 − β2^t)            (t = 1, 2, ...)
    w = w − lr · m̂ / (√v̂ + eps)

``adam_step(params, grads, state) -> (params, state)``: params and grads are dicts name -> array,
state is a dict the function keeps its moments and step counter in (empty before the first step).

It has one mistake in it. check_student_adam.py finds it.
"""
import numpy as np


def adam_step(params, grads, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    beta1, beta2 = betas
    state["t"] = state.get("t", 0) + 1
    t = state["t"]
    new = {}
    for name, w in params.items():
        g = grads[name]
        m = beta1 * state.get(("m", name), np.zeros_like(w)) + (1 - beta1) * g
        v = beta2 * state.get(("v", name), np.zeros_like(w)) + (1 - beta2) * g * g
        state[("m", name)], state[("v", name)] = m, v
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        new[name] = w - lr * m_hat / np.sqrt(v_hat + eps)
    return new, state
