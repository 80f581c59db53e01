"""gradc/random_more.py: samplers built on uniform and normal draws.

Oracles: each sampler's closed-form CDF, by the Kolmogorov-Smirnov statistic of 10^5
draws (below 1.95 / sqrt(n), the 0.1% critical value: the draws are a fixed key's, so
the test is deterministic); sample moments for the multivariate ones; orthogonality
exactly; gradients of the reparameterized samples against finite differences; JAX's
own draws where JAX is installed.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
import gradc.random as gr

N = 100_000
_erf = np.vectorize(math.erf)


def _phi(x):
    return 0.5 * (1 + _erf(np.asarray(x) / math.sqrt(2)))


CDFS = {
    "cauchy": ((), lambda x: 0.5 + np.arctan(x) / np.pi),
    "laplace": ((), lambda x: np.where(x < 0, 0.5 * np.exp(x), 1 - 0.5 * np.exp(-x))),
    "logistic": ((), lambda x: 1 / (1 + np.exp(-x))),
    "lognormal": ((0.7,), lambda x: _phi(np.log(x) / 0.7)),
    "pareto": ((2.5,), lambda x: 1 - x ** -2.5),
    "maxwell": ((), lambda x: _erf(x / np.sqrt(2)) - np.sqrt(2 / np.pi) * x * np.exp(-x * x / 2)),
    "rayleigh": ((1.5,), lambda x: 1 - np.exp(-x * x / (2 * 1.5 ** 2))),
    "weibull_min": ((1.5, 2.0), lambda x: 1 - np.exp(-(x / 1.5) ** 2.0)),
    "triangular": ((0.0, 0.3, 1.0), lambda x: np.where(x < 0.3, x * x / 0.3, 1 - (1 - x) ** 2 / 0.7)),
    "wald": ((1.3,), lambda x: _phi(np.sqrt(1 / x) * (x / 1.3 - 1)) + np.exp(2 / 1.3) * _phi(-np.sqrt(1 / x) * (x / 1.3 + 1))),
}


@pytest.mark.parametrize("name", sorted(CDFS))
def test_draws_follow_the_closed_form_distribution(name):
    params, cdf = CDFS[name]
    x = np.sort(gradc.jit(lambda k: getattr(gr, name)(gr.PRNGKey(1) if k is None else k, *params, shape=(N,)))(
        gr.PRNGKey(1)))
    assert x.shape == (N,) and x.dtype == np.float64 and np.all(np.isfinite(x))
    emp = np.arange(1, N + 1) / N
    d = max(np.max(np.abs(emp - cdf(x))), np.max(np.abs(emp - 1 / N - cdf(x))))
    assert d < 1.95 / np.sqrt(N), d


def test_discrete_and_sign_samplers():
    k = gr.PRNGKey(2)
    g = gradc.jit(lambda k: gr.geometric(k, 0.3, (N,)))(k)
    assert g.dtype == np.int64 and g.min() >= 1
    for j in range(1, 6):   # P(K = j) = p (1 - p)^(j - 1), within 5 standard errors
        p = 0.3 * 0.7 ** (j - 1)
        assert abs(np.mean(g == j) - p) < 5 * np.sqrt(p * (1 - p) / N)
    r = gradc.jit(lambda k: gr.rademacher(k, (N,)))(k)
    assert r.dtype == np.int64 and set(np.unique(r)) == {-1, 1} and abs(r.mean()) < 5 / np.sqrt(N)
    d = gr.double_sided_maxwell(k, 1.0, 2.0, (N,))
    assert abs(np.mean(d) - 1.0) < 5 * 2 * np.sqrt(3 / N) and abs(np.var(d) - 4 * 3) < 0.3


@pytest.mark.parametrize("method", ["cholesky", "eigh", "svd"])
def test_multivariate_normal_moments(method):
    mean = np.array([1.0, -1.0, 0.5])
    cov = np.array([[2.0, 0.5, 0.1], [0.5, 1.0, 0.2], [0.1, 0.2, 0.5]])
    x = gradc.jit(lambda k, m, c: gr.multivariate_normal(k, m, c, (N,), method=method))(gr.PRNGKey(3), mean, cov)
    assert x.shape == (N, 3)
    np.testing.assert_allclose(x.mean(0), mean, atol=5 * np.sqrt(2.0 / N))
    np.testing.assert_allclose(np.cov(x.T), cov, atol=0.03)


def test_orthogonal_matrices():
    q = gradc.jit(lambda k: gr.orthogonal(k, 4, (50,)))(gr.PRNGKey(4))
    assert q.shape == (50, 4, 4)
    np.testing.assert_allclose(q @ np.swapaxes(q, -1, -2), np.broadcast_to(np.eye(4), q.shape), atol=1e-13)
    dets = np.linalg.det(q)
    assert np.any(dets > 0) and np.any(dets < 0)      # both components of O(4)
    wide = gr.orthogonal(gr.PRNGKey(4), 2, m=5)
    np.testing.assert_allclose(wide @ wide.T, np.eye(2), atol=1e-13)


def test_reparameterized_gradients():
    """d/dsigma of mean(lognormal(sigma)) and d/dscale, d/dc of weibull against finite
    differences of the same draws (a fixed key: the draws are a smooth function of the
    parameters)."""
    k = gr.PRNGKey(5)

    def f(sigma, scale, c, mean, cov):
        return (gnp.mean(gr.lognormal(k, sigma, (1000,))) + gnp.mean(gr.weibull_min(k, scale, c, (1000,)))
                + gnp.sum(gr.multivariate_normal(k, mean, cov, (200,)) ** 2) / 200)
    args = [np.float64(0.7), np.float64(1.5), np.float64(2.0), np.array([1.0, -0.5]), np.array([[1.0, 0.3], [0.3, 0.8]])]
    grads = gradc.grad(f, argnums=(0, 1, 2, 3, 4))(*args)
    for i, g in enumerate(grads):
        x = np.asarray(args[i], dtype=np.float64)
        fd = np.zeros_like(x)
        for j in np.ndindex(x.shape):
            e = np.zeros_like(x)
            e[j] = 1e-6
            hi = [a if t != i else (x + e) for t, a in enumerate(args)]
            lo = [a if t != i else (x - e) for t, a in enumerate(args)]
            fd[j] = (f(*hi) - f(*lo)) / 2e-6
        if i == 4:      # only the symmetric part of cov enters cholesky's derivative
            fd, g = (fd + fd.T) / 2, (g + g.T) / 2
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-7)


def test_key_helpers_and_bad_requests():
    k = gr.PRNGKey(6)
    assert gr.key_data(k) is k and gr.wrap_key_data(k) is k and gr.clone(k) is k
    with pytest.raises(gradc.ArgumentError, match="method"):
        gr.multivariate_normal(k, np.zeros(2), np.eye(2), method="qr")
    with pytest.raises(gradc.ArgumentError, match="does not broadcast"):
        gr.pareto(k, np.ones(3), shape=(4,))


def test_same_draws_as_jax_where_installed():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jr = jax.random
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    cases = [("cauchy", ((9,),)), ("laplace", ((9,),)), ("logistic", ((9,),)), ("lognormal", (0.7, (9,))),
             ("pareto", (2.5, (9,))), ("rademacher", ((9,),)), ("maxwell", ((9,),)),
             ("double_sided_maxwell", (1.0, 2.0, (9,))), ("rayleigh", (1.5, (9,))), ("weibull_min", (1.5, 2.0, (9,))),
             ("triangular", (0.0, 0.3, 1.0, (9,))), ("wald", (1.3, (9,))), ("geometric", (0.3, (9,))),
             ("multivariate_normal", (np.ones(2), cov, (4,))), ("orthogonal", (3, (2,)))]
    for name, a in cases:
        want = np.asarray(getattr(jr, name)(jr.PRNGKey(4), *a))
        got = getattr(gr, name)(gr.PRNGKey(4), *a)
        assert got.dtype == want.dtype and got.shape == want.shape, name
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15, err_msg=name)
