"""An RNN unrolled over a (batch, time, feature) input, trained with gradc.

The task: read a sequence of 2-d inputs and output, at the end, the running sum of the
first feature minus the last value of the second (a small memory task).  The model is
the textbook Elman RNN, written with gradc.numpy over rank-3 arrays:

    h_t = tanh(x[:, t, :] @ Wx + h_{t-1} @ Wh + b),   prediction = h_T @ Wo + c

Its gradient (backpropagation through time, by gradc's source transformation) is
checked against central finite differences of the same model in plain numpy, then the
model trains with gradient descent and the loss falls."""
import numpy as onp

import gradc
import gradc.numpy as np

B, T, F, H = 64, 12, 2, 16


def predict(params, x):
    Wx, Wh, b, Wo, c = params
    h = np.tanh(x[:, 0, :] @ Wx + b)
    for t in range(1, x.shape[1]):
        h = np.tanh(x[:, t, :] @ Wx + h @ Wh + b)
    return h @ Wo + c


def loss(Wx, Wh, b, Wo, c, x, y):
    return np.mean((predict((Wx, Wh, b, Wo, c), x)[:, 0] - y) ** 2)


def loss_numpy(Wx, Wh, b, Wo, c, x, y):
    h = onp.tanh(x[:, 0, :] @ Wx + b)
    for t in range(1, x.shape[1]):
        h = onp.tanh(x[:, t, :] @ Wx + h @ Wh + b)
    return onp.mean(((h @ Wo + c)[:, 0] - y) ** 2)


def data(rng):
    x = rng.normal(size=(B, T, F)) * 0.5
    return x, x[:, :, 0].sum(axis=1) * 0.3 - x[:, -1, 1]


def main():
    rng = onp.random.default_rng(0)
    params = [rng.normal(size=(F, H)) * 0.5, rng.normal(size=(H, H)) * 0.2, onp.zeros(H),
              rng.normal(size=(H, 1)) * 0.3, onp.zeros(1)]
    vg = gradc.value_and_grad(loss, argnums=(0, 1, 2, 3, 4))
    x, y = data(rng)
    value, grads = vg(*params, x, y)
    # central differences of the numpy model at 30 random parameter entries
    worst = 0.0
    for _ in range(30):
        i = int(rng.integers(len(params)))
        k = tuple(int(rng.integers(n)) for n in params[i].shape)
        h = 1e-6
        plus = [p.copy() for p in params]
        minus = [p.copy() for p in params]
        plus[i][k] += h
        minus[i][k] -= h
        fd = (loss_numpy(*plus, x, y) - loss_numpy(*minus, x, y)) / (2 * h)
        worst = max(worst, abs(grads[i][k] - fd) / max(1e-3, abs(fd)))
    print(f"loss {value:.4f}; gradient vs finite differences of numpy (30 entries): max rel err {worst:.1e}")
    lr, window = 0.2, []
    first = value
    for step in range(1, 301):
        x, y = data(rng)            # a fresh batch each step
        value, grads = vg(*params, x, y)
        params = [p - lr * g for p, g in zip(params, grads)]
        window.append(value)
        if step % 100 == 0:
            print(f"steps {step - 99}-{step}: mean loss {onp.mean(window):.4f}")
            last, window = onp.mean(window), []
    print(f"trained: loss {first:.4f} -> {last:.4f}")


if __name__ == "__main__":
    main()
