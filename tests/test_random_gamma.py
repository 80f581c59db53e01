"""gradc/random_gamma.py: the Gamma family of samplers and their implicit gradients.

Oracles: scipy.stats' CDFs by the Kolmogorov-Smirnov statistic of 10^5 draws (below
1.95 / sqrt(n), the 0.1% critical value; the keys are fixed, so each test is
deterministic); closed-form moments (E X = a, E log X = psi(a), Dirichlet's means) within
5 standard errors; the implicit gradient per draw against central differences of scipy's
inverse CDF at the draw's probability, and its mean against d E/da in closed form; JAX's
``random_gamma_grad`` at the same draws where JAX is installed.
"""
from __future__ import annotations

import mpmath
import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
import gradc.random as gr

N = 100_000


def _ks(x, cdf):
    x = np.sort(np.asarray(x, dtype=float))
    n = len(x)
    c = cdf(x)
    emp = np.arange(1, n + 1) / n
    return max(np.max(np.abs(emp - c)), np.max(np.abs(emp - 1 / n - c))) * np.sqrt(n)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("a", [0.01, 0.3, 1.0, 2.5, 100.0])
def test_gamma_follows_the_gamma_distribution(a, dtype):
    stats = pytest.importorskip("scipy.stats")
    if dtype == np.float32 and a < 0.1:
        # P(X < 1.4e-45, float32's least) = 0.35 at a = 0.01: those draws are 0; loggamma's
        # test below checks the float32 draws of small a
        a = 0.1
    x = gradc.jit(lambda k, s: gr.gamma(k, s, (N,), dtype))(gr.PRNGKey(3), dtype(a))
    assert x.shape == (N,) and x.dtype == dtype and np.all(x >= 0) and np.all(np.isfinite(x))
    assert _ks(x, lambda v: stats.gamma.cdf(v, a)) < 1.95
    assert abs(np.mean(x, dtype=float) - a) < 5 * np.sqrt(a / N)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loggamma_follows_the_log_gamma_distribution(dtype):
    special = pytest.importorskip("scipy.special")
    y = gradc.jit(lambda k: gr.loggamma(k, 0.01, (N,), dtype))(gr.PRNGKey(2))
    assert y.dtype == dtype and np.all(np.isfinite(y))
    assert _ks(y, lambda v: special.gammainc(0.01, np.exp(v))) < 1.95


def test_loggamma_of_tiny_a_has_the_closed_form_moments():
    """E log X = psi(a), Var log X = psi'(a) (a = 1e-3: about -1000 and 1e6, where X itself
    underflows to 0)."""
    a = 1e-3
    y = gradc.jit(lambda k: gr.loggamma(k, a, (N,)))(gr.PRNGKey(4))
    assert np.all(np.isfinite(y))
    mean, var = float(mpmath.digamma(a)), float(mpmath.polygamma(1, a))
    assert abs(np.mean(y) - mean) < 5 * np.sqrt(var / N)
    assert abs(np.var(y) / var - 1) < 0.05          # (the sample variance's error, heavy left tail)
    g = gradc.grad(lambda s: gnp.mean(gr.loggamma(gr.PRNGKey(4), s, (N,))))(a)
    # d E log X / da = psi'(a); the per-draw derivatives' spread gives the tolerance
    per = gradc.jit(gradc.vmap(gradc.grad(lambda s, k: gr.loggamma(k, s)), in_axes=(None, 0)))(
        a, gr.split(gr.PRNGKey(5), 20000))
    assert abs(g - var) < 5 * np.std(per) / np.sqrt(N)


@pytest.mark.parametrize("a", [0.05, 0.7, 3.0, 40.0, 800.0])
def test_implicit_gradient_per_draw(a):
    """dx/da at each draw against central differences of the inverse CDF at the draw's
    probability: x(a) = gammaincinv(a, P(a0, x0)), h = 1e-6 a, error ~ h^2 ~ 1e-12 relative
    plus gammaincinv's rounding ~ 1e-15 / h: rtol 1e-5."""
    special = pytest.importorskip("scipy.special")
    keys = gr.split(gr.PRNGKey(6), 200)
    f = gradc.jit(gradc.vmap(gradc.value_and_grad(lambda s, k: gr.gamma(k, s)), in_axes=(None, 0)))
    x, g = f(a, keys)
    p = special.gammainc(a, x)
    h = 1e-6 * a
    fd = (special.gammaincinv(a + h, p) - special.gammaincinv(a - h, p)) / (2 * h)
    inner = (p > 1e-12) & (p < 1 - 1e-12)       # (where the inverse CDF is well conditioned)
    assert inner.sum() > 150
    np.testing.assert_allclose(g[inner], fd[inner], rtol=1e-5)
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    want = np.asarray(jax.lax.random_gamma_grad(jax.numpy.full(200, a), jax.numpy.asarray(x)))
    np.testing.assert_allclose(g, want, rtol=1e-9)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mean_gradient_is_one(dtype):
    """E X = a, so d mean / da = 1 within 5 standard errors of the per-draw derivatives."""
    for a in (0.2, 1.5, 30.0):
        f = gradc.jit(gradc.grad(lambda s, k: gnp.mean(gr.gamma(k, s, (N,), dtype))))
        g = f(dtype(a), gr.PRNGKey(7))
        assert g.dtype == dtype
        per = gradc.jit(gradc.vmap(gradc.grad(lambda s, k: gr.gamma(k, s, (), dtype)), in_axes=(None, 0)))(
            dtype(a), gr.split(gr.PRNGKey(8), 20000))
        assert abs(float(g) - 1) < 5 * np.std(per) / np.sqrt(N), (a, g)


def test_vmap_matches_separate_calls_and_shapes():
    keys = gr.split(gr.PRNGKey(9), 3)
    a = np.array([0.5, 2.0, 7.0])
    v = gradc.jit(gradc.vmap(lambda k, s: gr.gamma(k, s, (4,))))(keys, a)
    for i in range(3):
        np.testing.assert_allclose(v[i], gr.gamma(keys[i], a[i], (4,)), rtol=1e-13)
    assert gr.gamma(keys[0], a).shape == (3,)
    assert gr.gamma(keys[0], a, (2, 3)).shape == (2, 3)
    with pytest.raises(gradc.ArgumentError, match="shape"):
        gr.gamma(keys[0], a, (2,))
    with pytest.raises(gradc.ArgumentError, match="a must be > 0"):
        gr.gamma(keys[0], np.array([1.0, -1.0]))
    with pytest.raises(gradc.ArgumentError, match="dtype"):
        gr.gamma(keys[0], 1.0, dtype=np.int32)
    with pytest.raises(gradc.ArgumentError, match="alpha must have"):
        gr.dirichlet(keys[0], 1.0)
    with pytest.raises(gradc.ArgumentError, match="alpha must be > 0"):
        gr.dirichlet(keys[0], np.array([1.0, 0.0]))
    with pytest.raises(gradc.ArgumentError, match="b must be > 0"):
        gr.beta(keys[0], 1.0, -2.0)
    with pytest.raises(gradc.ArgumentError, match="df must be > 0"):
        gr.t(keys[0], 0.0)
    # traced a <= 0 gives nan, not a hang
    assert np.isnan(gradc.jit(lambda s: gr.gamma(gr.PRNGKey(0), s, (2,)))(-1.0)).all()


def test_beta_chisquare_f_t_follow_their_distributions():
    stats = pytest.importorskip("scipy.stats")
    k = gr.PRNGKey(10)
    draws = gradc.jit(lambda k: (gr.beta(k, 0.3, 2.0, (N,)), gr.chisquare(k, 3.0, (N,)),
                                 gr.f(k, 4.0, 7.0, (N,)), gr.t(k, 2.5, (N,)), gr.beta(k, 1e-3, 5e-3, (N,))))(k)
    assert _ks(draws[0], lambda v: stats.beta.cdf(v, 0.3, 2.0)) < 1.95
    assert _ks(draws[1], lambda v: stats.chi2.cdf(v, 3.0)) < 1.95
    assert _ks(draws[2], lambda v: stats.f.cdf(v, 4.0, 7.0)) < 1.95
    assert _ks(draws[3], lambda v: stats.t.cdf(v, 2.5)) < 1.95
    tiny = draws[4]                       # tiny a, b: 0 or 1 almost surely, P(X ~ 1) = a / (a + b)
    assert np.all(np.isfinite(tiny)) and abs(np.mean(tiny) - 1 / 6) < 5 * np.sqrt(5 / 36 / N)


def test_dirichlet_marginals_and_gradient():
    stats = pytest.importorskip("scipy.stats")
    alpha = np.array([0.4, 1.0, 3.5])
    d = gradc.jit(lambda k: gr.dirichlet(k, alpha, (N,)))(gr.PRNGKey(11))
    assert d.shape == (N, 3)
    np.testing.assert_allclose(d.sum(-1), 1.0, rtol=1e-12)
    s = alpha.sum()
    for i in range(3):          # each marginal is Beta(alpha_i, sum - alpha_i)
        assert _ks(d[:, i], lambda v: stats.beta.cdf(v, alpha[i], s - alpha[i])) < 1.95
    # d E[X_0] / d alpha = (e_0 s - alpha_0) / s^2, per component within 5 standard errors
    g = gradc.jit(gradc.grad(lambda al: gnp.mean(gr.dirichlet(gr.PRNGKey(12), al, (N,))[:, 0])))(alpha)
    want = (np.eye(3)[0] * s - alpha[0]) / s ** 2
    per = gradc.jit(gradc.vmap(gradc.grad(lambda al, k: gr.dirichlet(k, al)[0]), in_axes=(None, 0)))(
        alpha, gr.split(gr.PRNGKey(13), 20000))
    assert np.all(np.abs(g - want) < 5 * per.std(0) / np.sqrt(N)), (g, want)


def test_beta_gradient_matches_closed_form_mean():
    """E X = a / (a + b): d/da = b / (a + b)^2, d/db = -a / (a + b)^2."""
    a, b = 0.8, 2.5
    g = gradc.jit(gradc.grad(lambda a, b: gnp.mean(gr.beta(gr.PRNGKey(14), a, b, (N,))), argnums=(0, 1)))(a, b)
    per = gradc.jit(gradc.vmap(gradc.grad(lambda a, b, k: gr.beta(k, a, b), argnums=(0, 1)),
                               in_axes=(None, None, 0)))(a, b, gr.split(gr.PRNGKey(15), 20000))
    assert abs(g[0] - b / (a + b) ** 2) < 5 * np.std(per[0]) / np.sqrt(N)
    assert abs(g[1] + a / (a + b) ** 2) < 5 * np.std(per[1]) / np.sqrt(N)


@pytest.mark.parametrize("lam", [0.5, 4.0, 9.99, 10.0, 37.5, 1e4])
def test_poisson_follows_the_poisson_distribution(lam):
    """The discrete KS statistic against the closed-form CDF (sum of exp(k log lam - lam -
    lgamma(k + 1))) below the continuous 0.1% value (conservative for a discrete law),
    and the mean within 5 standard errors."""
    import math
    n = gradc.jit(lambda k, l: gr.poisson(k, l, (N,)))(gr.PRNGKey(16), lam)
    assert n.dtype == np.int64 and n.min() >= 0
    ks = np.arange(0, n.max() + 1)
    pmf = np.array([math.exp(k * math.log(lam) - lam - math.lgamma(k + 1)) for k in ks])
    emp = np.cumsum(np.bincount(n, minlength=len(ks))) / N
    assert np.max(np.abs(emp - np.cumsum(pmf))) * np.sqrt(N) < 1.95
    assert abs(n.mean() - lam) < 5 * np.sqrt(lam / N)


def test_poisson_edges_and_errors():
    k = gr.PRNGKey(17)
    out = gradc.jit(lambda l: gr.poisson(k, l, (3, 4), np.int32))(np.array([0.0, 2.0, -1.0, np.inf]))
    assert out.dtype == np.int32 and out.shape == (3, 4)
    assert np.all(out[:, 0] == 0) and np.all(out[:, 2:] == -1) and np.all(out[:, 1] >= 0)
    with pytest.raises(gradc.ArgumentError, match="lam"):
        gr.poisson(k, -1.0)
    with pytest.raises(gradc.ArgumentError, match="dtype"):
        gr.poisson(k, 1.0, dtype=np.float64)
    assert gr.poisson(k, 1.0, dtype=None).dtype == np.int64 and gr.gamma(k, 1.0, dtype=None).dtype == np.float64
    v = gradc.vmap(lambda kk: gr.poisson(kk, 25.0, (5,)))(gr.split(k, 2))
    np.testing.assert_array_equal(v[1], gr.poisson(gr.split(k, 2)[1], 25.0, (5,)))
