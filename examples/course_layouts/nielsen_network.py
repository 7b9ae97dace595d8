"""Michael Nielsen's network.py, checked as it is: weights and biases as lists, biases[l] (n, 1), a
per-example backprop(x, y) -> (nabla_b, nabla_w) with x a column and y one-hot, the quadratic cost
½‖a − y‖². The check runs backprop on each example of a batch and averages the nablas, as
update_mini_batch applies them (summed, times eta/len(mini_batch)).

    .venv/bin/python examples/course_layouts/nielsen_network.py
"""
import sys

import numpy as np

from backprop_oracle import check_network


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z):
    return sigmoid(z) * (1 - sigmoid(z))


class Network:
    def __init__(self, sizes):
        rng = np.random.default_rng(0)
        self.num_layers, self.sizes = len(sizes), sizes
        self.biases = [rng.standard_normal((y, 1)) for y in sizes[1:]]
        self.weights = [rng.standard_normal((y, x)) for x, y in zip(sizes[:-1], sizes[1:])]

    def backprop(self, x, y):
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        activation, activations, zs = x, [x], []
        for b, w in zip(self.biases, self.weights):
            z = np.dot(w, activation) + b
            zs.append(z)
            activation = sigmoid(z)
            activations.append(activation)
        delta = self.cost_derivative(activations[-1], y) * sigmoid_prime(zs[-1])
        nabla_b[-1] = delta
        nabla_w[-1] = np.dot(delta, activations[-2].transpose())
        for l in range(2, self.num_layers):
            delta = np.dot(self.weights[-l + 1].transpose(), delta) * sigmoid_prime(zs[-l])
            nabla_b[-l] = delta
            nabla_w[-l] = np.dot(delta, activations[-l - 1].transpose())
        return (nabla_b, nabla_w)

    def cost_derivative(self, output_activations, y):
        return output_activations - y


if __name__ == "__main__":
    result = check_network(Network([6, 5, 3]), activation="sigmoid", output_activation="sigmoid")
    print(result.report())
    sys.exit(0 if result.passed else 1)
