"""Logistic regression on scikit-learn's bundled breast cancer data (569 samples, 30
features; no download), trained by gradient descent with gradc's gradient, then the same
loop with numpy's hand-written gradient, both timed in this process.

    C(w, b) = 1/N Σ_i log(1 + exp(−y_i (w·x_i + b))),   y_i in {−1, +1}

gradc rewrites log1p(exp(t)) into the stable softplus(t), whose derivative is the
sigmoid σ(t): dC/dw = −1/N Σ_i y_i σ(−y_i (w·x_i + b)) x_iᵀ.

    pip install scikit-learn      # the 'examples' extra: pip install -e '.[examples]'
    python examples/logistic_regression.py
"""
import sys
import time

import numpy as np

import gradc
import gradc.numpy as gnp

STEPS = 500
LR = 0.5


def loss(w, b, X, y):
    z = X @ w + b
    return gnp.mean(gnp.log1p(gnp.exp(-y * z)))


def numpy_value_and_grad(w, b, X, y):
    """The same loss and its gradient, written by hand in numpy."""
    z = X @ w + b
    t = -y * z
    value = np.mean(np.logaddexp(0.0, t))
    g = -y / (1.0 + np.exp(-t)) / len(y)       # dC/dz_i = −y_i σ(t_i) / N
    return value, (X.T @ g, np.sum(g))


def train(value_and_grad, X, y):
    w, b = np.zeros(X.shape[1]), 0.0
    for _ in range(STEPS):
        value, (dw, db) = value_and_grad(w, b, X, y)
        w, b = w - LR * dw, b - LR * db
    return w, b, value


def accuracy(w, b, X, y):
    return float(np.mean(np.sign(X @ w + b) == y))


def main():
    try:
        from sklearn.datasets import load_breast_cancer
        from sklearn.model_selection import train_test_split
    except ImportError:
        print("this example needs scikit-learn: pip install scikit-learn  (or pip install -e '.[examples]')")
        return 2
    data = load_breast_cancer()
    X, y = data.data, np.where(data.target == 1, 1.0, -1.0)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    mu, sd = X_tr.mean(axis=0), X_tr.std(axis=0)          # standardize with the training statistics
    X_tr, X_te = (X_tr - mu) / sd, (X_te - mu) / sd
    print(f"breast cancer data: {len(y_tr)} training and {len(y_te)} test samples, {X.shape[1]} features")

    vg = gradc.value_and_grad(loss, argnums=(0, 1))
    t0 = time.perf_counter()
    vg(np.zeros(X.shape[1]), 0.0, X_tr, y_tr)              # trace, differentiate, compile
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    w, b, C = train(vg, X_tr, y_tr)
    t_gradc = time.perf_counter() - t0
    t0 = time.perf_counter()
    w_np, b_np, C_np = train(numpy_value_and_grad, X_tr, y_tr)
    t_numpy = time.perf_counter() - t0

    same = float(np.max(np.abs(w - w_np)) + abs(b - b_np))
    print(f"gradient descent, {STEPS} steps, learning rate {LR}")
    print(f"  gradc ({vg.backend}):  loss {C:.5f}   "
          f"{t_gradc:.3f} s  ({t_gradc / STEPS * 1e6:.0f} µs per step; first call, which compiles: {t_compile:.2f} s)")
    print(f"  numpy by hand: loss {C_np:.5f}   {t_numpy:.3f} s  ({t_numpy / STEPS * 1e6:.0f} µs per step)")
    print(f"  gradc / numpy time: {t_gradc / t_numpy:.2f};  max |w_gradc − w_numpy| + |b_gradc − b_numpy| = {same:.1e}")
    print(f"train accuracy: {accuracy(w, b, X_tr, y_tr):.4f}")
    print(f"test accuracy: {accuracy(w, b, X_te, y_te):.4f}")
    return 0 if same < 1e-8 else 1


if __name__ == "__main__":
    sys.exit(main())
