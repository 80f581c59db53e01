"""gradc.vmap against jax.vmap on idioms JAX users write: ensembles, pairwise kernels,
per-example gradients and Hessian-vector products, vmap of a Jacobian, nested maps,
per-sequence RNN gradients, out_axes, linear algebra, sorting.

    python tools/vmap_speed.py

Each line checks gradc's result against ``jax.jit`` of the same ``jax.vmap`` program,
then prints the best of 20 calls of each (after a first call that compiles) and their
ratio.  Needs JAX (``pip install 'gradc[peers]'``)."""
import time

import jax
import jax.numpy as jnp
import numpy as onp

import gradc
import gradc.numpy as gnp

jax.config.update("jax_enable_x64", True)
r = onp.random.default_rng(0)
X, V = r.standard_normal((256, 8)), r.standard_normal((256, 8))
W = r.standard_normal((8, 8))
WS, XS = r.standard_normal((5, 8, 4)), r.standard_normal((100, 8))
WH = r.standard_normal((8, 8)) * 0.3
SEQS = r.standard_normal((64, 10, 8))
Q, K = r.standard_normal((16, 4, 8)), r.standard_normal((16, 4, 8))
LABELS = r.integers(0, 8, 256)
A = r.standard_normal((10, 5, 5))
A = A @ A.transpose(0, 2, 1) + 5 * onp.eye(5)
B = r.standard_normal((10, 5))
KER = r.standard_normal(3)
ONES = onp.ones((8, 8))


class Gradc:
    np, vmap, grad, jvp, jacobian = gnp, staticmethod(gradc.vmap), staticmethod(gradc.grad), \
        staticmethod(gradc.jvp), staticmethod(gradc.jacrev)


class Jax:
    np, vmap, grad, jvp, jacobian = jnp, staticmethod(jax.vmap), staticmethod(jax.grad), \
        staticmethod(jax.jvp), staticmethod(jax.jacrev)


def rnn_grad(m):
    def run(seq):
        h = m.np.zeros(8)
        for t in range(10):
            h = m.np.tanh(h @ WH + seq[t])
        return h.sum()
    return m.vmap(m.grad(run)), (SEQS,)


def softmax_rows(m):
    def attend(q, k):
        s = q @ k.T
        e = m.np.exp(s - s.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return m.vmap(attend, in_axes=(1, 1)), (Q, K)


def hvp(m):
    def f(w, x):
        return m.np.sum(m.np.tanh(w @ x) ** 2)
    return m.vmap(lambda x: m.jvp(m.grad(lambda w: f(w, x)), (W,), (ONES,))[1]), (X[:64],)


LINES = [
    ("ensemble (weights mapped)", lambda m: (m.vmap(lambda w, x: m.np.tanh(x @ w).sum(), in_axes=(0, None)),
                                             (WS, XS))),
    ("pairwise RBF kernel", lambda m: (m.vmap(m.vmap(lambda a, b: m.np.exp(-m.np.sum((a - b) ** 2)),
                                                     in_axes=(None, 0)), in_axes=(0, None)), (X[:50], X[:40]))),
    ("per-example hvp", hvp),
    ("vmap of jacobian", lambda m: (m.vmap(m.jacobian(lambda x: m.np.tanh(W @ x))), (X[:32],))),
    ("per-sequence RNN gradient", rnn_grad),
    ("softmax rows, in_axes=1", softmax_rows),
    ("per-example cross-entropy grad", lambda m: (m.vmap(m.grad(
        lambda w, x, k: m.np.log(m.np.sum(m.np.exp(x @ w))) - (x @ w)[k]), in_axes=(None, 0, 0)), (W, X, LABELS))),
    ("solve + slogdet grad", lambda m: (m.vmap(m.grad(
        lambda a, b: b @ m.np.linalg.solve(a, b) + m.np.linalg.slogdet(a)[1])), (A, B))),
    ("sort and cumsum", lambda m: (m.vmap(lambda x: m.np.cumsum(m.np.sort(x)) * x), (X,))),
    ("per-example huber grad", lambda m: (m.vmap(m.grad(lambda w, x: m.np.sum(m.np.where(
        m.np.abs(x @ w) < 1, 0.5 * (x @ w) ** 2, m.np.abs(x @ w) - 0.5))), in_axes=(None, 0)), (W, X))),
    ("conv1d by slices", lambda m: (m.vmap(lambda x: x[:-2] * KER[0] + x[1:-1] * KER[1] + x[2:] * KER[2]), (X,))),
    ("einsum per example", lambda m: (m.vmap(lambda a, b: m.np.einsum("ij,jk->ik", a, b)),
                                      (r.standard_normal((6, 3, 4)), r.standard_normal((6, 4, 2))))),
    ("vmap of vmap of grad", lambda m: (m.vmap(m.vmap(m.grad(lambda a, b: m.np.sum(m.np.sin(a * b))),
                                                      in_axes=(None, 0)), in_axes=(0, None)), (X[:10], X[:7]))),
    ("layer norm grad", lambda m: (m.vmap(m.grad(lambda x: m.np.sum(
        (x - x.mean()) / m.np.sqrt(x.var() + 1e-5) * m.np.arange(8.0)))), (X,))),
]


def best_ms(f, args):
    jax.block_until_ready(f(*args))
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3


for name, build in LINES:
    g, args = build(Gradc)
    j, _ = build(Jax)
    j = jax.jit(j)
    err = max(float(onp.abs(onp.asarray(a) - onp.asarray(b)).max())
              for a, b in zip(jax.tree_util.tree_leaves(g(*args)), jax.tree_util.tree_leaves(j(*args))))
    tg, tj = best_ms(g, args), best_ms(j, args)
    print(f"{name:32s} max |gradc - jax| {err:.1e}   gradc {tg:.3f} ms   jax {tj:.3f} ms   ratio {tg / tj:.2f}")
