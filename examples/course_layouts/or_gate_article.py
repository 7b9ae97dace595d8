"""The OR-gate article's vectorised neuron, checked as it is written: examples in columns, X (2, m),
W (1, 2), b one number, Y (1, m), Cost = ½ · the mean of the squared errors.

    .venv/bin/python examples/course_layouts/or_gate_article.py
"""
import sys

import numpy as np

from backprop_oracle import check_network


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def backprop(params, X, Y):
    W, b = params["W"], params["b"]
    m = X.shape[1]
    Z = W @ X + b
    A = sigmoid(Z)
    cost = (1 / (2 * m)) * np.sum((A - Y) ** 2)
    dZ = (A - Y) * A * (1 - A) / m
    return cost, {"dW": dZ @ X.T, "db": np.sum(dZ, axis=1, keepdims=True)}


if __name__ == "__main__":
    result = check_network(backprop, sizes=(2, 1), activation="sigmoid", output_activation="sigmoid",
                           loss="squared_error")
    print(result.report())
    sys.exit(0 if result.passed else 1)
