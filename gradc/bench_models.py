"""The model zoo of ``gradc bench``.

Each model is written four or five times:

* ``gradc``: the model with ``gradc.numpy`` (what a gradc user writes);
* ``np_forward`` / ``np_value_and_grad``: numpy by hand, the way a careful numpy user
  writes it: the gradient reuses the forward's intermediates, no pass is wasted
  (``g @ X`` rather than ``X.T @ np.diag(g)``, one ``exp`` reused for the value and the
  gradient, in-place updates of temporaries that are not needed any more);
* ``jax`` / ``torch``: the peers, built only when the package is importable.

Every hand-written gradient is checked against finite differences and against gradc
(both backends) in ``tests/test_bench.py``, so the baseline is trustworthy.

``make_data(model, size, dtype)`` builds deterministic arguments; weights are scaled by
``1/sqrt(fan_in)`` so activations stay O(1) at every size (no overflow of ``exp`` in
float32, a relu active set of about half the samples).
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np

import gradc.numpy as gnp

SIZES = ("small", "medium", "large")
HIDDEN = 128      # M4's hidden layer
OUTPUTS = 10      # M4's outputs, M5's classes

MLP_HIDDEN, MLP_OUTPUTS = 64, 4     # M6's two hidden layers (tanh) and outputs
ATTN_HEAD = 32                      # M7's query/key/value width

# (n, d) of X for M2..M7, n for M1
_VEC = {"small": 16, "medium": 10_000, "large": 4_000_000}
_MAT = {"small": (64, 16), "medium": (4096, 256), "large": (65536, 512)}
_MLP = {"small": (64, 16), "medium": (2048, 16), "large": (65536, 64)}     # batch x inputs
_SEQ = {"small": (32, 16), "medium": (512, 64), "large": (2048, 64)}       # sequence x features


# ----------------------------------------------------------------------------- M1
def m1_gradc(x):
    return gnp.sum(gnp.tanh(x) * gnp.exp(-x * x) + gnp.log1p(x * x))


def m1_forward(x):
    x2 = x * x
    t = np.tanh(x)
    t *= np.exp(-x2)
    t += np.log1p(x2)
    return t.sum()


def m1_value_and_grad(x):
    x2 = x * x
    t = np.tanh(x)
    e = np.exp(-x2)
    te = t * e
    value = (te + np.log1p(x2)).sum()
    # d/dx [tanh(x) exp(-x^2)] = (1 - t^2) e - 2 x t e;  d/dx log1p(x^2) = 2x / (1 + x^2)
    x2 += 1.0
    g = e - t * te - 2.0 * x * te + 2.0 * x / x2
    return value, g


# ----------------------------------------------------------------------------- M2
def m2_gradc(w, b, X, y):
    return gnp.mean((gnp.relu(X @ w + b) - y) ** 2)


def m2_forward(w, b, X, y):
    z = X @ w
    z += b
    np.maximum(z, 0.0, out=z)
    z -= y
    return np.dot(z, z) / z.shape[0]


def m2_value_and_grad(w, b, X, y):
    z = X @ w
    z += b
    r = np.maximum(z, 0.0)
    r -= y
    n = r.shape[0]
    value = np.dot(r, r) / n
    g = np.where(z > 0.0, r, 0.0)       # dC/dz = 2/n (relu(z) - y) [z > 0]
    g *= 2.0 / n
    return value, (g @ X, g.sum())


# ----------------------------------------------------------------------------- M3
def m3_gradc(w, b, X, y):
    return gnp.mean(gnp.log1p(gnp.exp(-y * (X @ w + b))))


def m3_forward(w, b, X, y):
    z = X @ w
    z += b
    z *= y
    np.negative(z, out=z)
    np.exp(z, out=z)
    np.log1p(z, out=z)
    return z.mean()


def m3_value_and_grad(w, b, X, y):
    z = X @ w
    z += b
    z *= y
    np.negative(z, out=z)
    e = np.exp(z, out=z)                # e = exp(-y (Xw + b))
    value = np.log1p(e).mean()
    n = e.shape[0]
    # dC/dz = -y e / (1 + e) / n
    s = e / (1.0 + e)
    s *= y
    s *= -1.0 / n
    return value, (s @ X, s.sum())


# ----------------------------------------------------------------------------- M4
def m4_gradc(W1, b1, W2, b2, X, Y):
    return gnp.mean((gnp.relu(X @ W1 + b1) @ W2 + b2 - Y) ** 2)


def m4_forward(W1, b1, W2, b2, X, Y):
    H = X @ W1
    H += b1
    np.maximum(H, 0.0, out=H)
    O = H @ W2
    O += b2
    O -= Y
    return np.vdot(O, O) / O.size


def m4_value_and_grad(W1, b1, W2, b2, X, Y):
    H = X @ W1
    H += b1
    A = np.maximum(H, 0.0)
    D = A @ W2
    D += b2
    D -= Y
    value = np.vdot(D, D) / D.size
    D *= 2.0 / D.size                    # dC/dO
    dW2 = A.T @ D
    db2 = D.sum(axis=0)
    dA = D @ W2.T
    dA *= H > 0.0                        # dC/dH
    dW1 = X.T @ dA
    db1 = dA.sum(axis=0)
    return value, (dW1, db1, dW2, db2)


# ----------------------------------------------------------------------------- M5
def m5_gradc(W, X, labels):
    S = X @ W
    return gnp.mean(gnp.logsumexp(S, axis=1) - gnp.take_along_axis(S, labels[:, None], axis=1)[:, 0])


def _m5_common(W, X, labels):
    S = X @ W
    rows = np.arange(S.shape[0])
    picked = S[rows, labels]
    mx = S.max(axis=1, keepdims=True)
    S -= mx
    E = np.exp(S, out=S)
    se = E.sum(axis=1)
    lse = np.log(se)
    lse += mx[:, 0]
    value = (lse - picked).mean()
    return value, E, se, rows


def m5_forward(W, X, labels):
    return _m5_common(W, X, labels)[0]


def m5_value_and_grad(W, X, labels):
    value, E, se, rows = _m5_common(W, X, labels)
    P = E                                 # softmax(S) - onehot(labels), over n
    P /= se[:, None]
    P[rows, labels] -= 1.0
    P *= 1.0 / P.shape[0]
    return value, X.T @ P


# ----------------------------------------------------------------------------- M6
def m6_gradc(W1, b1, W2, b2, W3, b3, X, Y):
    H1 = gnp.tanh(X @ W1 + b1)
    H2 = gnp.tanh(H1 @ W2 + b2)
    return gnp.mean((H2 @ W3 + b3 - Y) ** 2)


def _m6_layers(W1, b1, W2, b2, W3, b3, X, Y):
    H1 = X @ W1
    H1 += b1
    np.tanh(H1, out=H1)
    H2 = H1 @ W2
    H2 += b2
    np.tanh(H2, out=H2)
    D = H2 @ W3
    D += b3
    D -= Y
    return H1, H2, D


def m6_forward(*args):
    D = _m6_layers(*args)[2]
    return np.vdot(D, D) / D.size


def m6_value_and_grad(W1, b1, W2, b2, W3, b3, X, Y):
    H1, H2, D = _m6_layers(W1, b1, W2, b2, W3, b3, X, Y)
    value = np.vdot(D, D) / D.size
    D *= 2.0 / D.size                    # dC/dO
    dW3, db3 = H2.T @ D, D.sum(axis=0)
    G2 = D @ W3.T
    G2 *= 1.0 - H2 * H2                  # through tanh: 1 - tanh^2
    dW2, db2 = H1.T @ G2, G2.sum(axis=0)
    G1 = G2 @ W2.T
    G1 *= 1.0 - H1 * H1
    dW1, db1 = X.T @ G1, G1.sum(axis=0)
    return value, (dW1, db1, dW2, db2, dW3, db3)


# ----------------------------------------------------------------------------- M7
def m7_gradc(Wq, Wk, Wv, X, Y):
    # the scale is a Python float: numpy's float64 scalar (np.sqrt's) would promote a
    # float32 model to float64, as numpy itself does (NEP 50)
    Q, K, V = X @ Wq, X @ Wk, X @ Wv
    P = gnp.softmax((Q @ K.T) * (1.0 / math.sqrt(Wq.shape[1])), axis=1)
    return gnp.mean((P @ V - Y) ** 2)


def _m7_attention(Wq, Wk, Wv, X, Y):
    Q, K, V = X @ Wq, X @ Wk, X @ Wv
    c = 1.0 / np.sqrt(Wq.shape[1])
    S = Q @ K.T
    S *= c
    S -= S.max(axis=1, keepdims=True)
    P = np.exp(S, out=S)
    P /= P.sum(axis=1, keepdims=True)
    D = P @ V
    D -= Y
    return Q, K, V, P, D, c


def m7_forward(*args):
    D = _m7_attention(*args)[4]
    return np.vdot(D, D) / D.size


def m7_value_and_grad(Wq, Wk, Wv, X, Y):
    Q, K, V, P, D, c = _m7_attention(Wq, Wk, Wv, X, Y)
    value = np.vdot(D, D) / D.size
    D *= 2.0 / D.size                    # dC/dO, O = P V
    dV = P.T @ D
    dP = D @ V.T
    dP -= np.einsum("ij,ij->i", dP, P)[:, None]
    dP *= P                              # through the row softmax: P (dP - <dP, P>)
    dP *= c                              # dC/dS' for S' = Q K^T
    dQ, dK = dP @ K, dP.T @ Q
    return value, (X.T @ dQ, X.T @ dK, X.T @ dV)


# ----------------------------------------------------------------------------- peers
def _jax_models():
    import jax.numpy as jnp

    def m1(x):
        return jnp.sum(jnp.tanh(x) * jnp.exp(-x * x) + jnp.log1p(x * x))

    def m2(w, b, X, y):
        return jnp.mean((jnp.maximum(X @ w + b, 0.0) - y) ** 2)

    def m3(w, b, X, y):
        return jnp.mean(jnp.log1p(jnp.exp(-y * (X @ w + b))))

    def m4(W1, b1, W2, b2, X, Y):
        return jnp.mean((jnp.maximum(X @ W1 + b1, 0.0) @ W2 + b2 - Y) ** 2)

    def m5(W, X, labels):
        from jax.scipy.special import logsumexp
        S = X @ W
        return jnp.mean(logsumexp(S, axis=1) - jnp.take_along_axis(S, labels[:, None], axis=1)[:, 0])

    def m6(W1, b1, W2, b2, W3, b3, X, Y):
        H = jnp.tanh(jnp.tanh(X @ W1 + b1) @ W2 + b2)
        return jnp.mean((H @ W3 + b3 - Y) ** 2)

    def m7(Wq, Wk, Wv, X, Y):
        import jax
        Q, K, V = X @ Wq, X @ Wk, X @ Wv
        P = jax.nn.softmax((Q @ K.T) * (1.0 / math.sqrt(Wq.shape[1])), axis=1)
        return jnp.mean((P @ V - Y) ** 2)
    return {"M1": m1, "M2": m2, "M3": m3, "M4": m4, "M5": m5, "M6": m6, "M7": m7}


def _torch_models():
    import torch

    def m1(x):
        return torch.sum(torch.tanh(x) * torch.exp(-x * x) + torch.log1p(x * x))

    def m2(w, b, X, y):
        return torch.mean((torch.relu(X @ w + b) - y) ** 2)

    def m3(w, b, X, y):
        return torch.mean(torch.log1p(torch.exp(-y * (X @ w + b))))

    def m4(W1, b1, W2, b2, X, Y):
        return torch.mean((torch.relu(X @ W1 + b1) @ W2 + b2 - Y) ** 2)

    def m5(W, X, labels):
        S = X @ W
        return torch.mean(torch.logsumexp(S, dim=1) - torch.gather(S, 1, labels[:, None])[:, 0])

    def m6(W1, b1, W2, b2, W3, b3, X, Y):
        H = torch.tanh(torch.tanh(X @ W1 + b1) @ W2 + b2)
        return torch.mean((H @ W3 + b3 - Y) ** 2)

    def m7(Wq, Wk, Wv, X, Y):
        Q, K, V = X @ Wq, X @ Wk, X @ Wv
        P = torch.softmax((Q @ K.T) * (1.0 / math.sqrt(Wq.shape[1])), dim=1)
        return torch.mean((P @ V - Y) ** 2)
    return {"M1": m1, "M2": m2, "M3": m3, "M4": m4, "M5": m5, "M6": m6, "M7": m7}


# ----------------------------------------------------------------------------- the zoo
@dataclass
class Model:
    name: str
    title: str
    formula: str
    params: tuple            # argument names, in order
    argnums: object          # what gradc.value_and_grad / jax.value_and_grad get
    gradc: object
    np_forward: object
    np_value_and_grad: object
    sizes: dict = field(default_factory=dict)

    @property
    def wrt(self) -> tuple:
        return (self.argnums,) if isinstance(self.argnums, int) else tuple(self.argnums)

    def dims(self, size: str) -> dict:
        s = self.sizes[size]
        return {"n": s} if isinstance(s, int) else {"n": s[0], "d": s[1]}

    def describe_size(self, size: str) -> str:
        s = self.sizes[size]
        return f"x[{s:,}]" if isinstance(s, int) else f"X[{s[0]:,}x{s[1]:,}]"

    def elements(self, size: str) -> int:
        """Elements of the main input (x or X): the x axis of the plot."""
        s = self.sizes[size]
        return s if isinstance(s, int) else s[0] * s[1]


MODELS = {
    "M1": Model("M1", "element-wise chain", "sum(tanh(x) * exp(-x*x) + log1p(x*x))",
                ("x",), 0, m1_gradc, m1_forward, m1_value_and_grad, _VEC),
    "M2": Model("M2", "neuron loss (Parr & Howard)", "mean((relu(X @ w + b) - y)**2)",
                ("w", "b", "X", "y"), (0, 1), m2_gradc, m2_forward, m2_value_and_grad, _MAT),
    "M3": Model("M3", "logistic regression", "mean(log1p(exp(-y * (X @ w + b))))",
                ("w", "b", "X", "y"), (0, 1), m3_gradc, m3_forward, m3_value_and_grad, _MAT),
    "M4": Model("M4", f"two-layer MLP ({HIDDEN} hidden, {OUTPUTS} outputs)",
                "mean((relu(X @ W1 + b1) @ W2 + b2 - Y)**2)",
                ("W1", "b1", "W2", "b2", "X", "Y"), (0, 1, 2, 3), m4_gradc, m4_forward, m4_value_and_grad, _MAT),
    "M5": Model("M5", f"softmax cross-entropy ({OUTPUTS} classes)",
                "mean(logsumexp(X @ W, axis=1) - (X @ W)[rows, labels])",
                ("W", "X", "labels"), 0, m5_gradc, m5_forward, m5_value_and_grad, _MAT),
    "M6": Model("M6", f"three-layer MLP ({MLP_HIDDEN}-{MLP_HIDDEN} tanh, {MLP_OUTPUTS} outputs)",
                "mean((tanh(tanh(X @ W1 + b1) @ W2 + b2) @ W3 + b3 - Y)**2)",
                ("W1", "b1", "W2", "b2", "W3", "b3", "X", "Y"), (0, 1, 2, 3, 4, 5),
                m6_gradc, m6_forward, m6_value_and_grad, _MLP),
    "M7": Model("M7", f"single-head self-attention (head {ATTN_HEAD})",
                "mean((softmax((X Wq)(X Wk)^T / sqrt(h), axis=1) @ (X Wv) - Y)**2)",
                ("Wq", "Wk", "Wv", "X", "Y"), (0, 1, 2), m7_gradc, m7_forward, m7_value_and_grad, _SEQ),
}


def make_data(model: str, size: str, dtype="float64") -> tuple:
    """Deterministic arguments of ``model`` at ``size`` (a tuple in parameter order).
    Large arrays are drawn directly in ``dtype`` (no float64 temporary)."""
    dt = np.dtype(dtype)
    m = MODELS[model]
    rng = np.random.default_rng(zlib.crc32(f"{model}/{size}".encode()))

    def normal(shape, scale=1.0):
        a = rng.standard_normal(shape, dtype=dt)
        if scale != 1.0:
            a *= dt.type(scale)
        return a

    dims = m.dims(size)
    if model == "M1":
        return (normal(dims["n"]),)
    n, d = dims["n"], dims["d"]
    if model in ("M2", "M3"):
        w = normal(d, 1.0 / np.sqrt(d))
        b = np.asarray(0.1, dt)
        X = normal((n, d))
        y = normal(n) if model == "M2" else np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(dt)
        return w, b, X, y
    if model == "M4":
        W1 = normal((d, HIDDEN), 1.0 / np.sqrt(d))
        b1 = normal(HIDDEN, 0.1)
        W2 = normal((HIDDEN, OUTPUTS), 1.0 / np.sqrt(HIDDEN))
        b2 = normal(OUTPUTS, 0.1)
        X = normal((n, d))
        Y = normal((n, OUTPUTS))
        return W1, b1, W2, b2, X, Y
    if model == "M5":
        W = normal((d, OUTPUTS), 1.0 / np.sqrt(d))
        X = normal((n, d))
        labels = rng.integers(0, OUTPUTS, n, dtype=np.int64)
        return W, X, labels
    if model == "M6":
        W1, b1 = normal((d, MLP_HIDDEN), 1.0 / np.sqrt(d)), normal(MLP_HIDDEN, 0.1)
        W2, b2 = normal((MLP_HIDDEN, MLP_HIDDEN), 1.0 / np.sqrt(MLP_HIDDEN)), normal(MLP_HIDDEN, 0.1)
        W3, b3 = normal((MLP_HIDDEN, MLP_OUTPUTS), 1.0 / np.sqrt(MLP_HIDDEN)), normal(MLP_OUTPUTS, 0.1)
        return W1, b1, W2, b2, W3, b3, normal((n, d)), normal((n, MLP_OUTPUTS))
    if model == "M7":
        Wq, Wk, Wv = (normal((d, ATTN_HEAD), 1.0 / np.sqrt(d)) for _ in range(3))
        return Wq, Wk, Wv, normal((n, d)), normal((n, ATTN_HEAD))
    raise KeyError(model)


def jax_model(model: str):
    return _jax_models()[model]


def torch_model(model: str):
    return _torch_models()[model]
