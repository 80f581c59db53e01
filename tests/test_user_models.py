"""Models written as a JAX user writes them (``import gradc.numpy as jnp``, pytrees of
parameters, ``gradc.lax``, ``gradc.nn``, ``vmap`` of ``grad``, grad inside grad), each
checked end to end: the value against the same model written in plain numpy, every
gradient against central finite differences of that numpy model (``gradc_helpers``:
FD_RTOL = FD_ATOL = 1e-6, justified there), on the numpy reference evaluator and native
code; against JAX itself where it is installed.  Sizes are small enough for finite
differences over every parameter; ``test_per_example_gradients_*`` runs at batch 4096 on
one and two threads against a closed form.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest

import gradc
import gradc.lax as lax
import gradc.nn as nn
import gradc.numpy as jnp
import gradc.scipy.linalg as sla
from gradc import tree_util as tu
from gradc_helpers import FD_ATOL, FD_RTOL, fd_grad

BACKENDS = ["numpy", "llvm"]


def _rng(seed):
    return np.random.default_rng(seed)


def fd_tree(f_np, params, *rest):
    """Central differences of the numpy model ``f_np(params, *rest)`` in every leaf of
    the pytree ``params``, in its structure."""
    leaves, tree = tu.tree_flatten(params)
    sizes = [np.size(a) for a in leaves]
    flat = np.concatenate([np.ravel(a) for a in leaves]).astype(np.float64)

    def unflat(v):
        out, k = [], 0
        for a, n in zip(leaves, sizes):
            out.append(v[k:k + n].reshape(np.shape(a)))
            k += n
        return tu.tree_unflatten(tree, out)
    g = fd_grad(lambda v: f_np(unflat(v), *rest), [flat], 0)
    return unflat(g)


def assert_tree_close(got, want, rtol=FD_RTOL, atol=FD_ATOL):
    gl, gt = tu.tree_flatten(got)
    wl, wt = tu.tree_flatten(want)
    assert gt == wt, f"{gt} != {wt}"
    for a, b in zip(gl, wl):
        np.testing.assert_allclose(np.asarray(a, np.float64), b, rtol=rtol, atol=atol)


def check(model, model_np, params, *data, backend, rtol_value=1e-12):
    """value_and_grad of ``model`` in ``params`` against the numpy model and finite
    differences of it."""
    v, g = gradc.value_and_grad(model, backend=backend)(params, *data)
    np.testing.assert_allclose(v, model_np(params, *data), rtol=rtol_value)
    assert_tree_close(g, fd_tree(model_np, params, *data))
    return v, g


def _softmax_np(s, axis=-1):
    e = np.exp(s - s.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def _log_softmax_np(s, axis=-1):
    m = s.max(axis, keepdims=True)
    return s - m - np.log(np.exp(s - m).sum(axis, keepdims=True))


# ----------------------------------------------------------------------------- transformer block
H = 2


def transformer(p, x, m=jnp, gelu=nn.gelu, softmax=nn.softmax):
    def ln(x):
        mu = m.mean(x, axis=-1, keepdims=True)
        return (x - mu) / m.sqrt(m.var(x, axis=-1, keepdims=True) + 1e-5) * p["g"] + p["b"]
    B, T, D = x.shape
    h = ln(x)
    q, k, v = ((h @ p[w]).reshape(B, T, H, D // H) for w in ("wq", "wk", "wv"))
    s = m.einsum("bthd,bshd->bhts", q, k) / np.sqrt(D // H)
    s = m.where(np.tril(np.ones((T, T), bool)), s, -np.inf)          # causal mask
    o = m.einsum("bhts,bshd->bthd", softmax(s, axis=-1), v).reshape(B, T, D)
    x = x + o @ p["wo"]
    x = x + gelu(ln(x) @ p["w1"]) @ p["w2"]
    return m.sum(x ** 2) / x.size


def transformer_np(p, x):
    def gelu(z):
        return 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z ** 3)))
    return transformer(p, x, np, gelu, _softmax_np)


@pytest.mark.parametrize("backend", BACKENDS)
def test_transformer_block_causal_mask(backend):
    r, D = _rng(0), 8
    p = {w: r.standard_normal((D, D)) / 3 for w in ("wq", "wk", "wv", "wo")}
    p.update(g=1 + 0.1 * r.standard_normal(D), b=0.1 * r.standard_normal(D),
             w1=r.standard_normal((D, 12)) / 3, w2=r.standard_normal((12, D)) / 3)
    x = r.standard_normal((2, 5, D))
    check(transformer, transformer_np, p, x, backend=backend)


# ----------------------------------------------------------------------------- conv net
def _conv_np(x, k, pad):
    """NCHW x OIHW, stride 1, symmetric padding ``pad``: explicit loops over the taps."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    O, _, kh, kw = k.shape
    Ho, Wo = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    out = np.zeros((x.shape[0], O, Ho, Wo))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nchw,oc->nohw", x[:, :, i:i + Ho, j:j + Wo], k[:, :, i, j])
    return out


def convnet(p, x, y):
    h = nn.relu(lax.conv_general_dilated(x, p["k1"], (1, 1), "SAME"))
    h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
    h = jnp.tanh(lax.conv_general_dilated(h, p["k2"], (1, 1), ((1, 1), (1, 1))))
    logits = h.reshape(h.shape[0], -1) @ p["w"]
    return -jnp.mean(jnp.sum(y * nn.log_softmax(logits), axis=-1))


def convnet_np(p, x, y):
    h = np.maximum(_conv_np(x, p["k1"], 1), 0)
    n, c, hh, ww = h.shape
    h = h.reshape(n, c, hh // 2, 2, ww // 2, 2).max(axis=(3, 5))
    h = np.tanh(_conv_np(h, p["k2"], 1))
    logits = h.reshape(n, -1) @ p["w"]
    return -np.mean(np.sum(y * _log_softmax_np(logits), axis=-1))


@pytest.mark.parametrize("backend", BACKENDS)
def test_conv_net_with_max_pooling(backend):
    r = _rng(1)
    p = {"k1": r.standard_normal((3, 2, 3, 3)) / 3, "k2": r.standard_normal((2, 3, 3, 3)) / 3,
         "w": r.standard_normal((2 * 3 * 3, 4)) / 3}
    x, y = r.standard_normal((3, 2, 6, 6)), np.eye(4)[r.integers(0, 4, 3)]
    check(convnet, convnet_np, p, x, y, backend=backend)


# ----------------------------------------------------------------------------- VAE, MDN
def vae(p, x, eps, m=jnp):
    h = m.tanh(x @ p["enc"])
    mu, lv = h @ p["mu"], h @ p["lv"]
    xr = (mu + m.exp(0.5 * lv) * eps) @ p["dec"]                      # reparametrization
    kl = -0.5 * m.sum(1 + lv - mu ** 2 - m.exp(lv), axis=1)
    return m.mean(0.5 * m.sum((x - xr) ** 2, axis=1) + kl)


def mdn(p, x, y, m=jnp, log_softmax=nn.log_softmax, logsumexp=nn.logsumexp):
    h = m.tanh(x @ p["w1"] + p["b1"])
    logpi = log_softmax(h @ p["wpi"], axis=-1)
    mu, ls = h @ p["wmu"], h @ p["wsig"]
    lp = -0.5 * ((y[:, None] - mu) / m.exp(ls)) ** 2 - ls - 0.5 * np.log(2 * np.pi)
    return -m.mean(logsumexp(logpi + lp, axis=-1))


def _logsumexp_np(a, axis):
    mx = a.max(axis, keepdims=True)
    return (mx + np.log(np.exp(a - mx).sum(axis, keepdims=True))).squeeze(axis)


@pytest.mark.parametrize("backend", BACKENDS)
def test_vae_and_mixture_density_network(backend):
    r = _rng(2)
    p = {"enc": r.standard_normal((6, 5)) / 2, "mu": r.standard_normal((5, 2)) / 2,
         "lv": r.standard_normal((5, 2)) / 2, "dec": r.standard_normal((2, 6)) / 2}
    x, eps = r.standard_normal((10, 6)), r.standard_normal((10, 2))
    check(vae, lambda p, x, eps: vae(p, x, eps, np), p, x, eps, backend=backend)
    q = {"w1": r.standard_normal((1, 6)), "b1": r.standard_normal(6), "wpi": r.standard_normal((6, 3)) / 2,
         "wmu": r.standard_normal((6, 3)), "wsig": r.standard_normal((6, 3)) / 3}
    xm, ym = r.standard_normal((20, 1)), r.standard_normal(20)
    check(mdn, lambda p, x, y: mdn(p, x, y, np, _log_softmax_np, _logsumexp_np), q, xm, ym, backend=backend)


# ----------------------------------------------------------------------------- PINN
def test_pinn_loss_with_the_laplacian_of_the_network():
    """u(z) = v . tanh(W z + b); the loss holds u's Laplacian in z, by gradc.hessian
    vmapped over the collocation points, and is differentiated in the parameters (grad
    of a vmap of a Hessian).  Oracle: the Laplacian's closed form
    sum_j v_j (-2 t_j (1 - t_j^2)) |W_j|^2 in numpy, finite differences of it."""
    r = _rng(3)
    p = {"W": r.standard_normal((8, 2)), "b": r.standard_normal(8) / 2, "v": r.standard_normal(8) / 2}
    pts = r.uniform(-1, 1, (12, 2))

    def u(p, z):
        return jnp.tanh(p["W"] @ z + p["b"]) @ p["v"]

    def loss(p, pts):
        Hs = gradc.vmap(gradc.hessian(u, argnums=1), in_axes=(None, 0))(p, pts)
        du = gradc.vmap(gradc.grad(u, argnums=1), in_axes=(None, 0))(p, pts)
        return jnp.mean((jnp.trace(Hs, axis1=1, axis2=2) - jnp.sin(pts[:, 0])) ** 2) + 0.1 * jnp.mean(du ** 2)

    def loss_np(p, pts):
        t = np.tanh(pts @ p["W"].T + p["b"])                          # (points, hidden)
        lap = (p["v"] * -2 * t * (1 - t ** 2)) @ np.sum(p["W"] ** 2, axis=1)
        du = (p["v"] * (1 - t ** 2)) @ p["W"]
        return np.mean((lap - np.sin(pts[:, 0])) ** 2) + 0.1 * np.mean(du ** 2)
    check(loss, loss_np, p, pts, backend="llvm")


# ----------------------------------------------------------------------------- training loop in scan
def test_adam_training_loop_inside_scan_with_grad_in_the_step():
    """A scan whose step takes grad of the loss and updates params and Adam's moments
    (a pytree carry); the final params and the loss history against the same loop in
    numpy with the linear model's gradient written out."""
    r = _rng(4)
    X, y = r.standard_normal((40, 3)), r.standard_normal(40)
    p0 = {"w": r.standard_normal(3), "b": np.array(0.3)}

    def loss(p, X, y):
        return jnp.mean((X @ p["w"] + p["b"] - y) ** 2)

    def fit(p, X, y):
        zeros = tu.tree_map(jnp.zeros_like, p)

        def step(c, t):
            p, m, v = c
            val, g = gradc.value_and_grad(loss)(p, X, y)
            m = tu.tree_map(lambda m, g: 0.9 * m + 0.1 * g, m, g)
            v = tu.tree_map(lambda v, g: 0.999 * v + 0.001 * g * g, v, g)
            p = tu.tree_map(lambda p, m, v: p - 0.05 * (m / (1 - 0.9 ** t)) / (jnp.sqrt(v / (1 - 0.999 ** t)) + 1e-8),
                            p, m, v)
            return (p, m, v), val
        (p, _, _), hist = lax.scan(step, (p, zeros, zeros), jnp.arange(1.0, 26.0))
        return p, hist

    w, b = p0["w"].copy(), float(p0["b"])
    m, v, hist = np.zeros(4), np.zeros(4), []
    for t in range(1, 26):
        e = X @ w + b - y
        hist.append(np.mean(e ** 2))
        g = np.append(2 * X.T @ e / len(y), 2 * np.mean(e))
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        step = 0.05 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
        w, b = w - step[:3], b - step[3]
    for backend in BACKENDS:
        p, h = gradc.jit(fit, backend=backend)(p0, X, y)
        np.testing.assert_allclose(h, hist, rtol=1e-11)
        np.testing.assert_allclose(p["w"], w, rtol=1e-11)
        np.testing.assert_allclose(p["b"], b, rtol=1e-11)


# ----------------------------------------------------------------------------- GP, flow
def test_gaussian_process_nll_and_normalizing_flow():
    r = _rng(5)
    X, y = r.uniform(-2, 2, (15, 2)), r.standard_normal(15)

    def nll(th, X, y, m=jnp, cholesky=jnp.linalg.cholesky, solve_lower=None):
        ls, sf, sn = m.exp(th[0]), m.exp(th[1]), m.exp(th[2])
        d2 = m.sum((X[:, None, :] - X[None, :, :]) ** 2, -1)
        K = sf ** 2 * m.exp(-0.5 * d2 / ls ** 2) + sn ** 2 * np.eye(len(y))
        L = cholesky(K)
        a = (solve_lower or (lambda L, y: sla.solve_triangular(L, y, lower=True)))(L, y)
        return 0.5 * a @ a + m.sum(m.log(m.diag(L))) + 0.5 * len(y) * np.log(2 * np.pi)
    check(nll, lambda th, X, y: nll(th, X, y, np, np.linalg.cholesky, np.linalg.solve), np.array([0.2, -0.1, -1.0]),
          X, y, backend="llvm", rtol_value=1e-11)

    def flow(params, x, m=jnp, slogdet=jnp.linalg.slogdet):
        z, ld = x, 0.0
        for W, b in params:
            z = z @ W.T + b
            ld = ld + slogdet(W)[1] + m.sum(m.where(z > 0, 0.0, np.log(0.5)), axis=-1)
            z = m.where(z > 0, z, 0.5 * z)
        return -m.mean(-0.5 * m.sum(z ** 2, -1) + ld)
    params = [(np.eye(3) + 0.3 * r.standard_normal((3, 3)), 0.1 * r.standard_normal(3)) for _ in range(2)]
    check(flow, lambda p, x: flow(p, x, np, np.linalg.slogdet), params, r.standard_normal((30, 3)), backend="llvm")


# ----------------------------------------------------------------------------- GRU with masks
class GRU(NamedTuple):
    Wz: np.ndarray
    Uz: np.ndarray
    Wh: np.ndarray
    Uh: np.ndarray
    out: np.ndarray


def gru_loss(p, xs, lens):
    def step(h, inp):
        x, t = inp
        z = nn.sigmoid(x @ p.Wz + h @ p.Uz)
        hn = (1 - z) * h + z * jnp.tanh(x @ p.Wh + h @ p.Uh)
        live = (t < lens)[:, None]                    # sequences that have ended keep h
        hn = jnp.where(live, hn, h)
        return hn, jnp.where(live[:, 0], hn @ p.out, 0.0)
    h, ys = lax.scan(step, jnp.zeros((xs.shape[1], p.Uz.shape[0])), (xs, jnp.arange(xs.shape[0])))
    return jnp.sum(ys ** 2) / jnp.sum(lens) + jnp.sum(h)


def gru_loss_np(p, xs, lens):
    sig = lambda a: 1 / (1 + np.exp(-a))   # noqa: E731
    h, total = np.zeros((xs.shape[1], p.Uz.shape[0])), 0.0
    for t, x in enumerate(xs):
        z = sig(x @ p.Wz + h @ p.Uz)
        hn = (1 - z) * h + z * np.tanh(x @ p.Wh + h @ p.Uh)
        live = t < lens
        h = np.where(live[:, None], hn, h)
        total += np.sum(np.where(live, h @ p.out, 0.0) ** 2)
    return total / np.sum(lens) + np.sum(h)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gru_over_variable_length_sequences(backend):
    r = _rng(6)
    p = GRU(*(r.standard_normal(s) / 2 for s in [(3, 4), (4, 4), (3, 4), (4, 4), (4,)]))
    xs, lens = r.standard_normal((6, 4, 3)), np.array([6, 2, 4, 1])
    check(gru_loss, gru_loss_np, p, xs, lens, backend=backend)


# ----------------------------------------------------------------------------- indices
@pytest.mark.parametrize("backend", BACKENDS)
def test_embeddings_message_passing_and_out_of_bounds_padding(backend):
    """Embedding rows by x[idx] and jnp.take, messages summed per receiver by
    segment_sum and .at[].add with repeated ids, and a padding id (-1 -> out of range)
    read with take(mode="fill", fill_value=0) as JAX users pad token sequences."""
    r = _rng(7)
    E, W = r.standard_normal((10, 4)), r.standard_normal((4, 4)) / 2
    tokens = np.array([[1, 4, 4, 10], [0, 9, 10, 10]])              # 10: padding
    snd, rcv = r.integers(0, 10, 25), r.integers(0, 10, 25)

    def model(p, tokens, snd, rcv):
        e = jnp.take(p["E"], tokens, axis=0, mode="fill", fill_value=0.0)
        h = p["E"]
        for _ in range(2):
            msg = jnp.tanh(h[snd] @ p["W"])
            h = h + gradc.ops.segment_sum(msg, rcv, num_segments=10) + jnp.zeros_like(h).at[rcv].add(0.5 * msg)
        return jnp.sum(jnp.sum(e, axis=1) ** 2) + jnp.sum(h ** 2) / 10

    def model_np(p, tokens, snd, rcv):
        e = np.where((tokens < 10)[..., None], p["E"][np.minimum(tokens, 9)], 0.0)
        h = p["E"]
        for _ in range(2):
            msg = np.tanh(h[snd] @ p["W"])
            agg = np.zeros_like(h)
            np.add.at(agg, rcv, 1.5 * msg)
            h = h + agg
        return np.sum(np.sum(e, axis=1) ** 2) + np.sum(h ** 2) / 10
    check(model, model_np, {"E": E, "W": W}, tokens, snd, rcv, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sort_top_k_and_cumsum_losses(backend):
    r = _rng(8)
    x = r.standard_normal((5, 7))                     # continuous draws: no ties

    def loss(x, m=jnp):
        if m is jnp:
            top = lax.top_k(x, 3)[0]
        else:
            top = -np.sort(-x, axis=-1)[:, :3]
        return (m.sum(top * np.arange(1.0, 4.0)) + m.sum(m.sort(x, axis=0)[::2] ** 2)
                + m.sum(m.cumsum(x, axis=1) ** 2) / 10 + m.sum(m.max(x, axis=1)))
    check(loss, lambda x: loss(x, np), x, backend=backend)


# ----------------------------------------------------------------------------- per-example gradients
@pytest.mark.parametrize("threads", ["1", "2"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_per_example_gradients_at_batch_4096(threads, dtype, monkeypatch):
    """vmap(grad(loss), in_axes=(None, 0, 0)) of a logistic loss with an L2 term on a
    pytree of params, at batch 4096 on one and two threads: each example's gradient has
    the closed form ((sigmoid(x.w + b) - y) x + lam w, sigmoid(x.w + b) - y)."""
    monkeypatch.setenv("GRADC_NUM_THREADS", threads)
    r = _rng(9)
    X, y = r.standard_normal((4096, 6)).astype(dtype), (r.random(4096) > 0.5).astype(dtype)
    p = {"w": r.standard_normal(6).astype(dtype), "b": dtype(0.2)}

    def loss(p, x, y):
        z = x @ p["w"] + p["b"]
        return nn.softplus(z) - y * z + 0.05 * jnp.sum(p["w"] ** 2)
    g = gradc.vmap(gradc.grad(loss), in_axes=(None, 0, 0))(p, X, y)
    X64, w64 = X.astype(np.float64), p["w"].astype(np.float64)
    err = 1 / (1 + np.exp(-(X64 @ w64 + float(p["b"])))) - y
    tol = 1e-12 if dtype == np.float64 else 2e-5
    assert g["w"].dtype == dtype and g["w"].shape == (4096, 6)
    np.testing.assert_allclose(g["w"], err[:, None] * X64 + 0.1 * w64, rtol=tol, atol=tol)
    np.testing.assert_allclose(g["b"], err, rtol=tol, atol=tol)


# ----------------------------------------------------------------------------- JAX itself
def test_transformer_matches_jax_where_installed():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jjnp
    r = _rng(10)
    D = 8
    p = {w: r.standard_normal((D, D)) / 3 for w in ("wq", "wk", "wv", "wo")}
    p.update(g=1 + 0.1 * r.standard_normal(D), b=0.1 * r.standard_normal(D),
             w1=r.standard_normal((D, 12)) / 3, w2=r.standard_normal((12, D)) / 3)
    x = r.standard_normal((2, 5, D))
    want_v, want_g = jax.jit(jax.value_and_grad(lambda p, x: transformer(p, x, jjnp, jax.nn.gelu,
                                                                        jax.nn.softmax)))(p, x)
    v, g = gradc.value_and_grad(transformer)(p, x)
    np.testing.assert_allclose(v, want_v, rtol=1e-12)
    assert_tree_close(g, tu.tree_map(np.asarray, want_g), rtol=1e-10, atol=1e-13)
