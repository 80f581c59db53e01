"""The paper's neuron, as trained by train_neuron.c: the mean squared error of a
rectified linear unit, C(w, b, X, y) = mean((relu(X @ w + b) - y) ** 2).

    gradc build runtime/examples/neuron.py:loss 'f64[d]' 'f64[]' 'f64[n,d]' 'f64[n]' --wrt w,b -o aot --name neuron
"""
import gradc.numpy as np


def loss(w, b, X, y):
    return np.mean((np.relu(X @ w + b) - y) ** 2)
