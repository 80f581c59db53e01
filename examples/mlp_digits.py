"""A two-layer perceptron on scikit-learn's bundled handwritten digits (1797 images of
8x8 pixels, 10 classes; no download), trained with gradc's gradients and gradc.optim's
Adam over a dict of parameters, then the same training with numpy's hand-written
backward pass, both timed in this process.  The last line is the test accuracy of
gradc's model.

    logits_i = W2ᵀ relu(W1ᵀ x_i + b1) + b2
    C = 1/N Σ_i (logsumexp(logits_i) − logits_i[y_i])          (softmax cross-entropy)

    pip install scikit-learn      # the 'examples' extra: pip install -e '.[examples]'
    python examples/mlp_digits.py
"""
import sys
import time

import numpy as np

import gradc
import gradc.numpy as gnp

HIDDEN = 64
STEPS = 300
LR = 0.01


def loss(params, X, labels):
    h = gnp.relu(X @ params["W1"] + params["b1"])
    logits = h @ params["W2"] + params["b2"]
    picked = gnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
    return gnp.mean(gnp.logsumexp(logits, axis=1) - picked)


def numpy_value_and_grad(params, X, labels):
    """The same loss and its gradients, the backward pass written by hand."""
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    N = len(labels)
    rows = np.arange(N)
    z1 = X @ W1 + b1
    h = np.maximum(z1, 0.0)
    logits = h @ W2 + b2
    m = logits.max(axis=1, keepdims=True)
    p = np.exp(logits - m)
    s = p.sum(axis=1, keepdims=True)
    value = np.mean(m[:, 0] + np.log(s[:, 0]) - logits[rows, labels])
    G = p / s                                   # softmax
    G[rows, labels] -= 1.0
    G /= N
    dh = G @ W2.T
    dz1 = dh * (z1 > 0)
    return value, {"W1": X.T @ dz1, "b1": dz1.sum(axis=0), "W2": h.T @ G, "b2": G.sum(axis=0)}


def init(n_in, n_out, seed=0):
    rng = np.random.default_rng(seed)
    return {"W1": rng.normal(0, np.sqrt(2 / n_in), (n_in, HIDDEN)), "b1": np.zeros(HIDDEN),
            "W2": rng.normal(0, np.sqrt(1 / HIDDEN), (HIDDEN, n_out)), "b2": np.zeros(n_out)}


def train(value_and_grad, params, X, labels):
    """Adam (gradc.optim), full batch."""
    opt = gradc.optim.adam(LR)
    state = opt.init(params)
    for _ in range(STEPS):
        value, grads = value_and_grad(params, X, labels)
        params, state = opt.update(grads, state, params)
    return params, value


def predict(params, X):
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    return np.argmax(np.maximum(X @ W1 + b1, 0) @ W2 + b2, axis=1)


def main():
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        print("this example needs scikit-learn: pip install scikit-learn  (or pip install -e '.[examples]')")
        return 2
    digits = load_digits()
    X, labels = digits.data / 16.0, digits.target.astype(np.int64)
    X_tr, X_te, y_tr, y_te = train_test_split(X, labels, test_size=0.25, random_state=0, stratify=labels)
    print(f"digits: {len(y_tr)} training and {len(y_te)} test images of {X.shape[1]} pixels, 10 classes; "
          f"MLP {X.shape[1]}-{HIDDEN}-10, Adam, {STEPS} full-batch steps")

    vg = gradc.value_and_grad(loss)                        # d loss / d params: a dict like params
    t0 = time.perf_counter()
    vg(init(X.shape[1], 10), X_tr, y_tr)                   # trace, differentiate, compile
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    params, C = train(vg, init(X.shape[1], 10), X_tr, y_tr)
    t_gradc = time.perf_counter() - t0
    t0 = time.perf_counter()
    params_np, C_np = train(numpy_value_and_grad, init(X.shape[1], 10), X_tr, y_tr)
    t_numpy = time.perf_counter() - t0

    diff = max(float(np.max(np.abs(params[k] - params_np[k]))) for k in params)
    print(f"  gradc ({vg.backend}):  loss {C:.5f}   {t_gradc:.3f} s  ({t_gradc / STEPS * 1e3:.2f} ms per step; "
          f"first call, which compiles: {t_compile:.2f} s)")
    print(f"  numpy by hand: loss {C_np:.5f}   {t_numpy:.3f} s  ({t_numpy / STEPS * 1e3:.2f} ms per step)")
    print(f"  gradc / numpy time: {t_gradc / t_numpy:.2f};  largest parameter difference {diff:.1e}")
    print(f"  numpy model's test accuracy: {np.mean(predict(params_np, X_te) == y_te):.4f}")
    print(f"train accuracy: {np.mean(predict(params, X_tr) == y_tr):.4f}")
    print(f"test accuracy: {np.mean(predict(params, X_te) == y_te):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
