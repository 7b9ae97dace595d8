"""The deeplearning.ai course's L-layer functions, checked as they are: parameters {"W1": (n1, n0),
"b1": (n1, 1), ...}, L_model_forward(X, parameters) -> (AL, caches), L_model_backward(AL, Y, caches)
-> grads {"dW1", "db1", "dA0", ...}, Y (1, m), the cross-entropy averaged over m.

    .venv/bin/python examples/course_layouts/deeplearning_ai_l_layer.py
"""
import sys

import numpy as np

from backprop_oracle import check_network, forward_backward


def sigmoid(Z):
    return 1 / (1 + np.exp(-Z))


def L_model_forward(X, parameters):
    caches, A, L = [], X, len(parameters) // 2
    for l in range(1, L + 1):
        W, b = parameters["W" + str(l)], parameters["b" + str(l)]
        Z = W @ A + b
        caches.append(((A, W, b), Z))
        A = sigmoid(Z) if l == L else np.maximum(0, Z)
    return A, caches


def compute_cost(AL, Y):
    m = Y.shape[1]
    return -np.sum(Y * np.log(AL) + (1 - Y) * np.log(1 - AL)) / m


def linear_backward(dZ, cache):
    A_prev, W, b = cache
    m = A_prev.shape[1]
    return W.T @ dZ, dZ @ A_prev.T / m, np.sum(dZ, axis=1, keepdims=True) / m


def L_model_backward(AL, Y, caches):
    grads, L = {}, len(caches)
    Y = Y.reshape(AL.shape)
    dA = -(np.divide(Y, AL) - np.divide(1 - Y, 1 - AL))
    for l in reversed(range(1, L + 1)):
        linear_cache, Z = caches[l - 1]
        dZ = dA * sigmoid(Z) * (1 - sigmoid(Z)) if l == L else dA * (Z > 0)
        dA, grads["dW" + str(l)], grads["db" + str(l)] = linear_backward(dZ, linear_cache)
        grads["dA" + str(l - 1)] = dA
    return grads


if __name__ == "__main__":
    result = check_network(forward_backward(L_model_forward, L_model_backward, compute_cost),
                           sizes=(5, 4, 3, 1), activation="relu", output_activation="sigmoid", loss="bce")
    print(result.report())
    sys.exit(0 if result.passed else 1)
