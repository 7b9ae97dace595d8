"""A CS231n-style TwoLayerNet, checked as it is: X (N, D) @ W1 (D, H) + b1 (H,), ReLU, W2 (H, C),
softmax loss on integer labels y (N,) plus reg·ΣW², gradients in a dict under the params' keys.

    .venv/bin/python examples/course_layouts/cs231n_two_layer_net.py
"""
import sys

import numpy as np

from backprop_oracle import check_network


class TwoLayerNet:
    def __init__(self, input_size, hidden_size, output_size, reg=0.05, std=1e-1):
        rng = np.random.default_rng(0)
        self.params = {"W1": std * rng.standard_normal((input_size, hidden_size)), "b1": np.zeros(hidden_size),
                       "W2": std * rng.standard_normal((hidden_size, output_size)), "b2": np.zeros(output_size)}
        self.reg = reg

    def loss(self, X, y):
        W1, b1, W2, b2 = (self.params[k] for k in ("W1", "b1", "W2", "b2"))
        N = X.shape[0]
        h = np.maximum(0, X @ W1 + b1)
        scores = h @ W2 + b2
        probs = np.exp(scores - scores.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        loss = -np.log(probs[np.arange(N), y]).mean() + self.reg * (np.sum(W1 * W1) + np.sum(W2 * W2))
        dscores = probs.copy()
        dscores[np.arange(N), y] -= 1
        dscores /= N
        grads = {"W2": h.T @ dscores + 2 * self.reg * W2, "b2": dscores.sum(axis=0)}
        dh = dscores @ W2.T
        dh[h <= 0] = 0
        grads["W1"] = X.T @ dh + 2 * self.reg * W1
        grads["b1"] = dh.sum(axis=0)
        return loss, grads


if __name__ == "__main__":
    net = TwoLayerNet(4, 10, 3)
    result = check_network(net, activation="relu", loss="cross_entropy", l2=net.reg)   # sizes from net.params
    print(result.report())
    sys.exit(0 if result.passed else 1)
