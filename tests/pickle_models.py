"""Models for tests/test_pickle.py, at module level so that ``pickle`` can send them to
another process by reference (a spawned child imports this module by name).  Each has
a closed-form numpy oracle here; the oracles use numpy only, never gradc."""
import numpy as onp

import gradc
import gradc.numpy as np


def logistic_loss(w, X, y):
    """Mean logistic loss of labels y in {-1, 1}."""
    return np.mean(np.log1p(np.exp(-y * (X @ w))))


def layer(x, A):
    """A vector-valued function: tanh(A x)."""
    return np.tanh(A @ x)


@gradc.jit
def decorated_sq(w):
    """A decorated module-level function: pickled by name."""
    return np.sum(w * w)


def oracle_loss(w, X, y):
    return onp.mean(onp.log1p(onp.exp(-y * (X @ w))))


def oracle_grad(w, X, y):
    s = 1.0 / (1.0 + onp.exp(y * (X @ w)))        # sigmoid(-y z)
    return -(X.T @ (y * s)) / len(y)


def oracle_hessian(w, X, y):
    p = 1.0 / (1.0 + onp.exp(-(X @ w)))
    return (X.T * (p * (1 - p))) @ X / len(y)


def oracle_layer_jacobian(x, A):
    return (1 - onp.tanh(A @ x) ** 2)[:, None] * A


def data(n=3000, d=5, seed=0, dtype=onp.float64):
    r = onp.random.default_rng(seed)
    X = r.standard_normal((n, d)).astype(dtype)
    y = onp.where(r.standard_normal(n) > 0, 1.0, -1.0).astype(dtype)
    w = (0.3 * r.standard_normal(d)).astype(dtype)
    return w, X, y


def call(fn, args):
    """What a worker runs: the unpickled function on its arguments."""
    return fn(*args)


def call_cloudpickled(blob, args):
    """For the pools that pickle with ``pickle``: a closure travels as cloudpickle bytes."""
    import cloudpickle
    return cloudpickle.loads(blob)(*args)


def lower_and_describe(blob):
    """Load a pickled ``Lowered`` and show what its rebuilt kernel is."""
    import pickle
    low = pickle.loads(blob)
    return low.loop_nests(), low.llvm_ir(), str(low)


def block(index, rows, d, dtype="float64"):
    """Rows ``[X | y]`` of one chunk, generated where it is used (a dask worker): the
    same numbers for the same ``index`` in any process."""
    r = onp.random.default_rng(1000 + index)
    X = r.standard_normal((rows, d))
    y = onp.where(X @ onp.linspace(-1, 1, d) + r.standard_normal(rows) > 0, 1.0, -1.0)
    return onp.concatenate([X, y[:, None]], axis=1).astype(dtype)


def mlp_loss(W1, b1, w2, b2, X, y):
    """A one-hidden-layer tanh network, mean logistic loss, plus an L2 term."""
    h = np.tanh(X @ W1 + b1)
    z = h @ w2 + b2
    return np.mean(np.log1p(np.exp(-y * z))) + 1e-3 * (np.sum(W1 * W1) + np.sum(w2 * w2))


def oracle_mlp(W1, b1, w2, b2, X, y):
    """Loss and gradients of mlp_loss by hand-written backpropagation."""
    h = onp.tanh(X @ W1 + b1)
    z = h @ w2 + b2
    n = len(y)
    loss = onp.mean(onp.log1p(onp.exp(-y * z))) + 1e-3 * (onp.sum(W1 * W1) + onp.sum(w2 * w2))
    dz = -y / (1 + onp.exp(y * z)) / n
    dh = onp.outer(dz, w2) * (1 - h * h)
    return loss, (X.T @ dh + 2e-3 * W1, dh.sum(0), h.T @ dz + 2e-3 * w2, dz.sum())
