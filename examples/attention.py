"""Batched multi-head self-attention over (batch, heads, seq, dim) arrays, with gradc.

    Q, K, V = einsum('bsd,hde->bhse', X, W)    for W in Wq, Wk, Wv   (batch, heads, seq, dim)
    P       = softmax(Q @ swapaxes(K, -1, -2) / sqrt(dim), axis=-1)
    out     = einsum('bhse,hef->bsf', P @ V, Wo)

trained to reproduce a fixed linear map of the average of each sequence (a task one
attention layer solves by attending uniformly).  Its gradient is checked against central
finite differences of the same model in plain numpy, then it trains."""
import numpy as onp

import gradc
import gradc.numpy as np

B, S, D, HEADS, E = 8, 10, 12, 3, 4


def attention(m, Wq, Wk, Wv, Wo, X):
    Q, K, V = (m.einsum("bsd,hde->bhse", X, W) for W in (Wq, Wk, Wv))
    scores = Q @ m.swapaxes(K, -1, -2) / onp.sqrt(E)
    scores = scores - m.max(scores, axis=-1, keepdims=True)
    P = m.exp(scores)
    P = P / m.sum(P, axis=-1, keepdims=True)
    return m.einsum("bhse,hef->bsf", P @ V, Wo)


def loss(Wq, Wk, Wv, Wo, X, Y):
    return np.mean((attention(np, Wq, Wk, Wv, Wo, X) - Y) ** 2)


def loss_numpy(Wq, Wk, Wv, Wo, X, Y):
    return onp.mean((attention(onp, Wq, Wk, Wv, Wo, X) - Y) ** 2)


def main():
    rng = onp.random.default_rng(0)
    target = rng.normal(size=(D, D)) / onp.sqrt(D)
    params = [rng.normal(size=(HEADS, D, E)) / onp.sqrt(D) for _ in range(3)] + \
             [rng.normal(size=(HEADS, E, D)) / onp.sqrt(HEADS * E)]

    def data():
        X = rng.normal(size=(B, S, D))
        return X, onp.broadcast_to(X.mean(axis=1, keepdims=True) @ target, (B, S, D))

    vg = gradc.value_and_grad(loss, argnums=(0, 1, 2, 3))
    X, Y = data()
    value, grads = vg(*params, X, Y)
    worst = 0.0
    for _ in range(30):
        i = int(rng.integers(len(params)))
        k = tuple(int(rng.integers(n)) for n in params[i].shape)
        h = 1e-6
        plus, minus = [p.copy() for p in params], [p.copy() for p in params]
        plus[i][k] += h
        minus[i][k] -= h
        fd = (loss_numpy(*plus, X, Y) - loss_numpy(*minus, X, Y)) / (2 * h)
        worst = max(worst, abs(grads[i][k] - fd) / max(1e-3, abs(fd)))
    print(f"loss {value:.4f}; gradient vs finite differences of numpy (30 entries): max rel err {worst:.1e}")
    first, window, lr = value, [], 0.5
    for step in range(1, 301):
        X, Y = data()
        value, grads = vg(*params, X, Y)
        params = [p - lr * g for p, g in zip(params, grads)]
        window.append(value)
        if step % 100 == 0:
            print(f"steps {step - 99}-{step}: mean loss {onp.mean(window):.4f}")
            last, window = onp.mean(window), []
    print(f"trained: loss {first:.4f} -> {last:.4f}")


if __name__ == "__main__":
    main()
