"""gradc.nn: jax.nn's functions by their names, each against a numpy formula written
here (values, float64 and float32) and central finite differences of that formula
(gradients, away from kinks), on every backend; against jax.nn itself where JAX is
installed.  Tolerances: values 1e-13 relative (float64; a few roundings of O(1)
terms) and 1e-6 (float32); finite differences as tests/gradc_helpers.py justifies."""
from __future__ import annotations

import math

import numpy as np
import pytest

import gradc
import gradc.nn as nn
import gradc.numpy as gnp

from gradc_helpers import FD_ATOL, FD_RTOL, fd_grad


def _softplus(x):
    return np.logaddexp(0.0, x)


def _sig(x):
    return 0.5 * (1 + np.tanh(x / 2))


_ERF = np.vectorize(math.erf)
ALPHA, SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
# name, gradc function, numpy formula
TABLE = [
    ("relu6", nn.relu6, lambda x: np.clip(x, 0, 6)),
    ("silu", nn.silu, lambda x: x * _sig(x)),
    ("swish", nn.swish, lambda x: x * _sig(x)),
    ("log_sigmoid", nn.log_sigmoid, lambda x: -_softplus(-x)),
    ("elu", nn.elu, lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0)))),
    ("elu_alpha", lambda x: nn.elu(x, 0.5), lambda x: np.where(x > 0, x, 0.5 * np.expm1(np.minimum(x, 0)))),
    ("celu", lambda x: nn.celu(x, 2.0), lambda x: np.maximum(x, 0) + 2.0 * np.expm1(np.minimum(x, 0) / 2.0)),
    ("selu", nn.selu, lambda x: SCALE * np.where(x > 0, x, ALPHA * np.expm1(np.minimum(x, 0)))),
    ("leaky_relu", nn.leaky_relu, lambda x: np.where(x >= 0, x, 0.01 * x)),
    ("hard_tanh", nn.hard_tanh, lambda x: np.clip(x, -1, 1)),
    ("hard_sigmoid", nn.hard_sigmoid, lambda x: np.clip(x + 3, 0, 6) / 6),
    ("hard_silu", nn.hard_silu, lambda x: x * np.clip(x + 3, 0, 6) / 6),
    ("mish", nn.mish, lambda x: x * np.tanh(_softplus(x))),
    ("squareplus", nn.squareplus, lambda x: (x + np.sqrt(x * x + 4)) / 2),
    ("gelu", nn.gelu, lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))),
    ("gelu_exact", lambda x: nn.gelu(x, approximate=False), lambda x: x * 0.5 * (1 + _ERF(x / np.sqrt(2)))),
    ("gelu_tanh", nn.gelu_tanh, lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))),
    ("glu", nn.glu, lambda x: x[..., :3] * _sig(x[..., 3:])),
    ("standardize", nn.standardize,
     lambda x: (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)),
    ("log1mexp", lambda x: nn.log1mexp(gnp.abs(x) + 0.01), lambda x: np.log(-np.expm1(-(np.abs(x) + 0.01)))),
    ("soft_sign", nn.soft_sign, lambda x: x / (np.abs(x) + 1)),
    ("sparse_plus", nn.sparse_plus, lambda x: np.where(x <= -1, 0, np.where(x >= 1, x, (x + 1) ** 2 / 4))),
    ("sparse_sigmoid", nn.sparse_sigmoid, lambda x: np.clip((x + 1) / 2, 0, 1)),
    ("logmeanexp_last_axis", lambda x: nn.logmeanexp(x, axis=-1), lambda x: np.log(np.mean(np.exp(x), axis=-1))),
    ("tanh_identity", lambda x: nn.tanh(nn.identity(x)), np.tanh),
]


def _points(shape):
    """Away from every kink (0, +-1, -3, 3, 6) by at least 0.05: a finite-difference
    step never crosses one."""
    x = np.random.default_rng(0).uniform(-7.5, 7.5, shape)
    for k in (0.0, 1.0, -1.0, 3.0, -3.0, 6.0):
        x = np.where(np.abs(x - k) < 0.05, x + 0.1, x)
    return x


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
@pytest.mark.parametrize("name,f,ref", TABLE, ids=[t[0] for t in TABLE])
def test_values_and_gradients_against_numpy(name, f, ref, backend):
    x = _points((5, 6))
    w = np.random.default_rng(1).standard_normal(ref(x).shape)
    np.testing.assert_allclose(gradc.jit(f, backend=backend)(x), ref(x), rtol=1e-13, atol=1e-13)
    x32 = x.astype(np.float32)
    got32 = gradc.jit(f, backend=backend)(x32)
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, ref(x32.astype(np.float64)), rtol=1e-5, atol=1e-5)
    g = gradc.grad(lambda v: gnp.sum(f(v) * w), backend=backend)(x)
    np.testing.assert_allclose(g, fd_grad(lambda v: np.sum(ref(v) * w), [x], 0), rtol=FD_RTOL, atol=FD_ATOL)


def test_one_hot_traced_and_concrete():
    labels = np.array([2, 0, 3, 3])
    want = np.eye(4)[labels]
    np.testing.assert_array_equal(nn.one_hot(labels, 4), want)
    f = gradc.value_and_grad(lambda W, y: gnp.sum(nn.one_hot(y, 4) * W))
    v, g = f(np.arange(16.0).reshape(4, 4), labels)
    assert v == np.sum(want * np.arange(16.0).reshape(4, 4))
    np.testing.assert_array_equal(g, want)


def test_same_as_jax_nn_where_installed():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    x = _points((4, 6))
    for name, f, _ref in TABLE:
        jf = getattr(jax.nn, name, None)
        if name in ("gelu_exact", "gelu_tanh"):
            jf = (lambda a: jax.nn.gelu(a, approximate=False)) if name == "gelu_exact" else jax.nn.gelu
        if jf is None or name in ("elu_alpha", "celu", "log1mexp"):
            continue
        want = np.asarray(jf(x))
        np.testing.assert_allclose(gradc.jit(f)(x), want, rtol=1e-12, atol=1e-12, err_msg=name)
        jg = np.asarray(jax.grad(lambda a: (jf(a) ** 2).sum())(x))
        g = gradc.grad(lambda a: gnp.sum(f(a) ** 2))(x)
        np.testing.assert_allclose(g, jg, rtol=1e-11, atol=1e-11, err_msg=name)


@pytest.mark.parametrize("name,alpha,slope", [("elu", 1.0, 1.0), ("celu", 1.0, 1.0),
                                               ("selu", None, 1.0507009873554805 * 1.6732632423543772)])
def test_elu_family_at_zero_has_jaxs_slope(name, alpha, slope):
    """At x = 0 the negative branch's slope, as JAX's where-based forms give (alpha for
    elu; celu's is 1; selu's scale x alpha): not the 0 of minimum(x, 0)'s tie rule."""
    f = getattr(nn, name)
    g = gradc.grad(lambda x: gnp.sum(f(x)))(np.zeros(3))
    np.testing.assert_allclose(g, slope, rtol=1e-15)


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
def test_hard_tanh_at_its_corners_has_jaxs_slope(backend):
    """jax.nn.hard_tanh is where(x > 1, 1, where(x < -1, -1, x)): slope 1 at x = +-1
    (the closed form of that definition), 0 beyond, 1 inside."""
    x = np.array([-2.0, -1.0, -0.5, 0.0, 1.0, 3.0])
    g = gradc.grad(lambda x: gnp.sum(nn.hard_tanh(x)), backend=backend)(x)
    np.testing.assert_array_equal(g, [0.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    np.testing.assert_array_equal(gradc.jit(nn.hard_tanh, backend=backend)(x), np.clip(x, -1, 1))


def _masked_softmax_np(x, m):
    e = np.where(m, np.exp(x - x.max(axis=-1, keepdims=True)), 0.0)
    s = e.sum(axis=-1, keepdims=True)
    return np.where(m, e / np.where(s > 0, s, 1.0), 0.0)


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
def test_softmax_log_softmax_logsumexp_where_as_jax_nn(backend):
    # jax.nn's where= mask (masked attention) was a TypeError: only the selected elements
    # take part; softmax gives 0, log_softmax -inf at the others; a row with none selected
    # gives 0 / -inf (and no gradient)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 7))
    m = rng.random((2, 3, 7)) > 0.4
    m[1, 2] = False
    m[0, 0] = True
    want = _masked_softmax_np(x, m)
    np.testing.assert_allclose(gradc.jit(lambda x: nn.softmax(x, where=m), backend=backend)(x), want, rtol=1e-13)
    lsm = gradc.jit(lambda x: nn.log_softmax(x, where=m), backend=backend)(x)
    np.testing.assert_allclose(lsm[m], np.log(want[m]), rtol=1e-12)
    assert np.all(lsm[~m] == -np.inf)
    lse = gradc.jit(lambda x: nn.logsumexp(x, axis=-1, where=m), backend=backend)(x)
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(lse, np.log(np.sum(np.where(m, np.exp(x), 0.0), axis=-1)), rtol=1e-13)
    w = rng.standard_normal(x.shape)
    g = gradc.grad(lambda x: gnp.sum(nn.softmax(x, where=m) * w), backend=backend)(x)
    np.testing.assert_allclose(g, fd_grad(lambda x: np.sum(_masked_softmax_np(x, m) * w), [x], 0),
                               rtol=FD_RTOL, atol=FD_ATOL)
    assert np.all(g[~m] == 0)


def test_nn_and_scipy_are_attributes_of_gradc():
    """As jax.nn and jax.scipy: usable after `import gradc` alone (in a fresh process)."""
    import subprocess
    import sys
    code = ("import numpy as np, gradc; x = np.linspace(-2, 2, 9); "
            "print(repr(float(gradc.grad(lambda x: gradc.numpy.sum(gradc.scipy.special.erf(x) + gradc.nn.silu(x)))"
            "(x).sum())))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    x = np.linspace(-2, 2, 9)
    s = 1 / (1 + np.exp(-x))
    want = np.sum(2 / np.sqrt(np.pi) * np.exp(-x * x) + s * (1 + x * (1 - s)))
    assert abs(float(out) - want) < 1e-12 * abs(want)


# ----------------------------------------------------------------------------- attention
def _attention_np(q, k, v, bias=None, mask=None, scale=None, causal=False, qlen=None, kvlen=None, window=None):
    """jax.nn.dot_product_attention written out per batch and head, in float64."""
    B, T, N, H = q.shape
    S, K = k.shape[1], k.shape[2]
    scale = 1 / np.sqrt(H) if scale is None else scale
    out = np.zeros((B, T, N, H))
    neg = -0.7 * np.finfo(np.float64).max
    for b in range(B):
        for n in range(N):
            kh = n // (N // K)                      # the key head serving query head n
            logits = q[b, :, n] @ k[b, :, kh].T * scale
            if bias is not None:
                logits = logits + np.broadcast_to(bias, (B, N, T, S))[b, n]
            keep = np.ones((T, S), bool)
            if mask is not None:
                keep &= np.broadcast_to(mask, (B, N, T, S))[b, n]
            t, s = np.arange(T)[:, None], np.arange(S)[None, :]
            if causal:
                keep &= t >= s
            if window is not None:
                keep &= (t <= s + window[0]) & (t >= s - window[1])
            if qlen is not None:
                keep &= t < qlen[b]
            if kvlen is not None:
                keep &= s < kvlen[b]
            logits = np.where(keep, logits, neg)
            p = np.exp(logits - logits.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            out[b, :, n] = p @ v[b, :, kh]
            if qlen is not None:
                out[b, qlen[b]:, n] = 0.0
    return out


_RNG = np.random.default_rng(21)
_B, _T, _N, _K, _H = 2, 9, 4, 2, 8
ATTENTION = [
    ("plain", {}, {}),
    ("bias_mask_scale", {"bias": _RNG.standard_normal((1, _N, _T, _T)), "mask": _RNG.random((_B, 1, _T, _T)) > 0.3,
                         "scale": 0.3}, {}),
    ("causal", {"is_causal": True}, {"causal": True}),
    ("seq_lengths", {"query_seq_lengths": np.array([4, 9], np.int32), "key_value_seq_lengths": np.array([9, 3], np.int32)},
     {"qlen": [4, 9], "kvlen": [9, 3]}),
    ("window", {"local_window_size": (1, 2)}, {"window": (1, 2)}),
    ("fully_masked_row", {"mask": np.tril(np.ones((_T, _T), bool), -1)[None, None]}, {}),
]


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
@pytest.mark.parametrize("name,kw,ref_kw", ATTENTION, ids=[a[0] for a in ATTENTION])
def test_dot_product_attention(name, kw, ref_kw, backend):
    """Grouped-query attention (4 query heads over 2 key heads) against the loops above;
    its gradient against finite differences of them."""
    q = _RNG.standard_normal((_B, _T, _N, _H))
    k, v = _RNG.standard_normal((_B, _T, _K, _H)), _RNG.standard_normal((_B, _T, _K, _H))
    ref = dict(ref_kw, bias=kw.get("bias"), mask=kw.get("mask"), scale=kw.get("scale"))
    got = gradc.jit(lambda q, k, v: nn.dot_product_attention(q, k, v, **kw), backend=backend)(q, k, v)
    np.testing.assert_allclose(got, _attention_np(q, k, v, **ref), rtol=1e-12, atol=1e-13)
    w = _RNG.standard_normal(got.shape)
    grads = gradc.grad(lambda q, k, v: gnp.sum(nn.dot_product_attention(q, k, v, **kw) * w), argnums=(0, 1, 2),
                       backend=backend)(q, k, v)
    for i, g in enumerate(grads):
        want = fd_grad(lambda q, k, v: np.sum(_attention_np(q, k, v, **ref) * w), [q, k, v], i)
        np.testing.assert_allclose(g, want, rtol=FD_RTOL, atol=FD_ATOL)
    unbatched = gradc.jit(lambda q, k, v: nn.dot_product_attention(q, k, v), backend=backend)(q[0], k[0], v[0])
    np.testing.assert_allclose(unbatched, _attention_np(q[:1], k[:1], v[:1])[0], rtol=1e-12, atol=1e-13)


def test_dot_product_attention_matches_jax_where_installed():
    """JAX computes logits and softmax in float32 even for float64 inputs: agreement to
    float32's resolution (1e-6 relative on O(1) outputs)."""
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    q = _RNG.standard_normal((_B, _T, _N, _H))
    k, v = _RNG.standard_normal((_B, _T, _K, _H)), _RNG.standard_normal((_B, _T, _K, _H))
    for _, kw, _ in ATTENTION:
        got = gradc.jit(lambda q, k, v: nn.dot_product_attention(q, k, v, **kw))(q, k, v)
        np.testing.assert_allclose(got, np.asarray(jax.nn.dot_product_attention(q, k, v, **kw)), rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("name,scale,mode,dist", [("glorot_uniform", 1.0, "avg", "u"), ("glorot_normal", 1.0, "avg", "t"),
                                                  ("lecun_normal", 1.0, "in", "t"), ("he_uniform", 2.0, "in", "u"),
                                                  ("he_normal", 2.0, "in", "t")])
def test_initializers_have_jaxs_variance_and_support(name, scale, mode, dist):
    """A conv kernel's shape (3, 3, 64, 128): fan-in 3*3*64, fan-out 3*3*128; the draws'
    variance is scale / fan within 3% (73,728 draws: 5 standard errors of a variance
    are about 2.6%), a uniform's support +-sqrt(3 var), a truncated normal's +-2 of its
    standard deviation before the correction 1/0.8796; native code draws the same."""
    shape, k = (3, 3, 64, 128), gr_key(1)
    fan = {"in": 9 * 64, "avg": 9 * 96}[mode]
    init = getattr(nn.initializers, name)()
    w = init(k, shape)
    assert w.shape == shape and w.dtype == np.float64
    assert abs(w.var() / (scale / fan) - 1) < 0.03
    bound = np.sqrt(3 * scale / fan) if dist == "u" else 2 * np.sqrt(scale / fan) / .87962566103423978
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    # (erfinv of the normal ones may round an ulp apart on native code)
    np.testing.assert_allclose(gradc.jit(lambda k: init(k, shape), backend="llvm")(k), w, rtol=1e-14, atol=1e-16)
    assert init(k, (5, 4), np.float32).dtype == np.float32


def gr_key(seed):
    import gradc.random as gr
    return gr.PRNGKey(seed)


def test_initializers_match_jax_where_installed():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    ji = jax.nn.initializers
    k, jk = gr_key(5), jax.random.PRNGKey(5)
    for name in ("glorot_uniform", "glorot_normal", "lecun_uniform", "lecun_normal", "he_uniform", "he_normal"):
        for shape in ((30, 20), (3, 3, 4, 8)):
            np.testing.assert_allclose(getattr(nn.initializers, name)()(k, shape),
                                       np.asarray(getattr(ji, name)()(jk, shape)), rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(nn.initializers.uniform(0.3)(k, (4, 5)), np.asarray(ji.uniform(0.3)(jk, (4, 5))))
    vs = dict(scale=0.5, mode="fan_out", distribution="normal", in_axis=0, out_axis=1)
    np.testing.assert_allclose(nn.initializers.variance_scaling(**vs)(k, (5, 6, 7)),
                               np.asarray(ji.variance_scaling(**vs)(jk, (5, 6, 7))), rtol=1e-13, atol=1e-15)
