"""gradc.scipy.stats, one line per function: against the density written element by
element with Python's math (an independent formula), on every backend; the gradient
in every float argument against central differences of that formula; and against scipy
itself where it is installed.  Tolerances: 1e-13 relative to max(1, |value|) (sums
of a few logs and lgamma's 1e-14); finite differences as tests/gradc_helpers."""
from __future__ import annotations

import math

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
from gradc.scipy import stats

from gradc_helpers import assert_fd_close, fd_grad

BACKENDS = ["numpy", "llvm", "c"]
r = np.random.default_rng(0)
X = np.concatenate([r.standard_normal(40) * 2, [0.0, -0.0, 1.0, -3.5, 12.0]])
POS = np.abs(X) + 0.05
UNIT = np.concatenate([r.uniform(0.02, 0.98, 30), [0.5]])
K = np.array([0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 1.5, -1.0])


def _lg(v):
    return math.lgamma(v)


_INV_CDF = __import__("statistics").NormalDist().inv_cdf      # the standard library's, independent


def _norm_cdf(z):
    return 0.5 * math.erfc(-z / math.sqrt(2))


# (id, gradc function, math formula of one element, arguments, which are differentiated)
LINES = [
    ("norm.logpdf", stats.norm.logpdf, lambda x, m, s: -0.5 * ((x - m) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi),
     (X, 0.3, 1.7), (0, 1, 2)),
    ("norm.pdf", stats.norm.pdf, lambda x, m, s: math.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2 * math.pi)),
     (X, 0.3, 1.7), (0, 1, 2)),
    ("norm.cdf", stats.norm.cdf, lambda x, m, s: _norm_cdf((x - m) / s), (X, 0.3, 1.7), (0, 1, 2)),
    ("norm.logcdf", stats.norm.logcdf, lambda x, m, s: math.log(_norm_cdf((x - m) / s)), (X, 0.3, 1.7), (0, 1, 2)),
    ("norm.sf", stats.norm.sf, lambda x, m, s: _norm_cdf(-(x - m) / s), (X, 0.3, 1.7), (0, 1, 2)),
    ("norm.logsf", stats.norm.logsf, lambda x, m, s: math.log(_norm_cdf(-(x - m) / s)), (X, 0.3, 1.7), (0, 1, 2)),
    ("norm.ppf", stats.norm.ppf, lambda q, m, s: m + s * _INV_CDF(q), (UNIT, 0.3, 1.7), (0, 1, 2)),
    ("norm.isf", stats.norm.isf, lambda q, m, s: m - s * _INV_CDF(q), (UNIT, 0.3, 1.7), (0, 1, 2)),
    ("t.logpdf", stats.t.logpdf,
     lambda x, df, m, s: (_lg((df + 1) / 2) - _lg(df / 2) - 0.5 * math.log(df * math.pi) - math.log(s)
                          - (df + 1) / 2 * math.log1p(((x - m) / s) ** 2 / df)), (X, 3.5, 0.1, 2.0), (0, 1, 2, 3)),
    ("laplace.logpdf", stats.laplace.logpdf, lambda x, m, s: -abs(x - m) / s - math.log(2 * s), (X, 0.2, 1.3), (1, 2)),
    ("laplace.cdf", stats.laplace.cdf,
     lambda x, m, s: 0.5 * math.exp((x - m) / s) if x < m else 1 - 0.5 * math.exp(-(x - m) / s), (X, 0.2, 1.3), (0, 1, 2)),
    ("logistic.logpdf", stats.logistic.logpdf,
     lambda x, m, s: -(x - m) / s - 2 * math.log1p(math.exp(-(x - m) / s)) - math.log(s), (X, 0.2, 1.3), (0, 1, 2)),
    ("logistic.cdf", stats.logistic.cdf, lambda x, m, s: 1 / (1 + math.exp(-(x - m) / s)), (X, 0.2, 1.3), (0, 1, 2)),
    ("logistic.sf", stats.logistic.sf, lambda x, m, s: 1 / (1 + math.exp((x - m) / s)), (X, 0.2, 1.3), (0, 1, 2)),
    ("logistic.ppf", stats.logistic.ppf, lambda q, m, s: m + s * math.log(q / (1 - q)), (UNIT, 0.2, 1.3), (0, 1, 2)),
    ("cauchy.logpdf", stats.cauchy.logpdf, lambda x, m, s: -math.log(math.pi * s * (1 + ((x - m) / s) ** 2)),
     (X, 1.0, 0.5), (0, 1, 2)),
    ("cauchy.cdf", stats.cauchy.cdf, lambda x, m, s: 0.5 + math.atan((x - m) / s) / math.pi, (X, 1.0, 0.5), (0, 1, 2)),
    ("expon.logpdf", stats.expon.logpdf, lambda x, m, s: -(x - m) / s - math.log(s) if x >= m else -math.inf,
     (X, 0.1, 2.0), (2,)),
    ("expon.cdf", stats.expon.cdf, lambda x, m, s: -math.expm1(-(x - m) / s) if x >= m else 0.0, (X, 0.1, 2.0), (2,)),
    ("gamma.logpdf", stats.gamma.logpdf,
     lambda x, a, m, s: ((a - 1) * math.log((x - m) / s) - (x - m) / s - _lg(a) - math.log(s)) if x > m else -math.inf,
     (X, 2.5, 0.0, 1.5), (1, 3)),
    ("beta.logpdf", stats.beta.logpdf,
     lambda x, a, b: (a - 1) * math.log(x) + (b - 1) * math.log1p(-x) - _lg(a) - _lg(b) + _lg(a + b),
     (UNIT, 2.5, 0.7), (0, 1, 2)),
    ("uniform.logpdf", stats.uniform.logpdf, lambda x, m, s: -math.log(s) if m <= x <= m + s else -math.inf,
     (X, -1.0, 2.0), (2,)),
    ("uniform.cdf", stats.uniform.cdf, lambda x, m, s: min(1.0, max(0.0, (x - m) / s)), (X, -1.0, 2.0), ()),
    ("poisson.logpmf", stats.poisson.logpmf,
     lambda k, mu: k * math.log(mu) - _lg(k + 1) - mu if k >= 0 and k == int(k) else -math.inf, (K, 3.2), (1,)),
    ("bernoulli.logpmf", stats.bernoulli.logpmf,
     lambda k, p: math.log(p) if k == 1 else math.log1p(-p) if k == 0 else -math.inf, (K, 0.3), (1,)),
    ("binom.logpmf", stats.binom.logpmf,
     lambda k, n, p: (_lg(n + 1) - _lg(k + 1) - _lg(n - k + 1) + k * math.log(p) + (n - k) * math.log1p(-p))
     if 0 <= k <= n and k == int(k) else -math.inf, (K, 6.0, 0.35), (2,)),
]
IDS = [line[0] for line in LINES]


def _oracle(formula, args):
    arrays = np.broadcast_arrays(*[np.asarray(a, dtype=float) for a in args])
    return np.array([formula(*vals) for vals in zip(*[a.ravel() for a in arrays])]).reshape(arrays[0].shape)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("line", LINES, ids=IDS)
def test_value_against_the_formula(line, backend):
    name, fn, formula, args, _ = line
    got = gradc.jit(fn, backend=backend)(*args)
    want = _oracle(formula, args)
    finite = np.isfinite(want)
    np.testing.assert_array_equal(np.isfinite(got), finite, err_msg=name)
    np.testing.assert_array_equal(got[~finite], want[~finite], err_msg=name)
    err = np.abs(got[finite] - want[finite]) / np.maximum(1.0, np.abs(want[finite]))
    assert err.max() <= 1e-13, (name, err.max())


@pytest.mark.parametrize("line", [ln for ln in LINES if ln[4]], ids=[ln[0] for ln in LINES if ln[4]])
def test_gradient_against_finite_differences(line):
    """The gradient of sum(f) over the finite entries, in each differentiated argument
    (the points of the support where a neighbourhood stays inside it)."""
    name, fn, formula, args, diff = line
    want = _oracle(formula, args)
    keep = np.isfinite(want)
    if name.startswith(("laplace", "uniform", "expon")):
        keep &= np.abs(args[0] - args[1]) > 1e-3          # not at the kink or the support's edge
    if name.startswith("uniform"):
        keep &= np.abs(args[0] - args[1] - args[2]) > 1e-3   # nor at the upper edge
    if name.startswith("gamma"):
        keep &= args[0] > 1e-3
    sub = (args[0][keep],) + tuple(args[1:])

    def numpy_loss(*d):
        full = list(sub)
        for i, v in zip(diff, d):
            full[i] = v
        return float(np.sum(_oracle(formula, full)))

    def gradc_loss(*d):
        full = list(sub)
        for i, v in zip(diff, d):
            full[i] = v
        return gnp.sum(fn(*full))
    point = [np.asarray(sub[i], dtype=float) for i in diff]
    got = gradc.grad(gradc_loss, argnums=tuple(range(len(diff))))(*point)
    for k in range(len(diff)):
        assert_fd_close(got[k], fd_grad(numpy_loss, point, k), f"{name}, argument {diff[k]}")


def test_multivariate_normal_against_the_closed_form():
    rr = np.random.default_rng(4)
    mean, A = rr.standard_normal(3), rr.standard_normal((3, 3))
    cov = A @ A.T + np.eye(3)
    xs = rr.standard_normal((10, 3))
    inv = np.linalg.inv(cov)
    _, logdet = np.linalg.slogdet(cov)
    want = np.array([-0.5 * (x - mean) @ inv @ (x - mean) - 0.5 * logdet - 1.5 * math.log(2 * math.pi) for x in xs])
    np.testing.assert_allclose(gradc.jit(stats.multivariate_normal.logpdf)(xs, mean, cov), want, rtol=1e-13)
    np.testing.assert_allclose(gradc.jit(stats.multivariate_normal.logpdf)(xs[0], mean, cov), want[0], rtol=1e-13)
    gm, gc = gradc.grad(lambda m, c: gnp.sum(stats.multivariate_normal.logpdf(xs, m, c)), argnums=(0, 1))(mean, cov)
    np.testing.assert_allclose(gm, inv @ (xs - mean).sum(0), rtol=1e-12)
    S = sum(np.outer(x - mean, x - mean) for x in xs)
    np.testing.assert_allclose(gc, 0.5 * (inv @ S @ inv - 10 * inv), rtol=1e-11, atol=1e-13)


def test_the_same_functions_on_concrete_inputs():
    formula = {line[0]: line[2] for line in LINES}
    np.testing.assert_allclose(stats.norm.logpdf(X, 0.3, 1.7), _oracle(formula["norm.logpdf"], (X, 0.3, 1.7)),
                               rtol=1e-14)
    np.testing.assert_allclose(stats.gamma.logpdf(POS, 2.0), _oracle(formula["gamma.logpdf"], (POS, 2.0, 0.0, 1.0)),
                               rtol=1e-13)


@pytest.mark.parametrize("line", LINES, ids=IDS)
def test_against_scipy_where_installed(line):
    ss = pytest.importorskip("scipy.stats")
    name, fn, _, args, _ = line
    dist, method = name.split(".")
    want = getattr(getattr(ss, dist), method)(*args)
    got = gradc.jit(fn)(*args)
    finite = np.isfinite(want)
    np.testing.assert_array_equal(np.isfinite(got), finite)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_float32_arguments_give_float32_with_python_number_parameters(backend):
    # a parameter given as a Python number (scale=1.0, df=3.0) made a float64 term of its
    # own (log(scale), gammaln(df / 2)), which promoted the float32 result to float64
    x = np.array([0.2, 0.5, 1.5], np.float32)
    k = np.array([0.0, 1.0, 2.0], np.float32)
    cases = [(stats.norm.logpdf, (x,), math.log(1 / math.sqrt(2 * math.pi)) - 0.5 * x.astype(np.float64) ** 2),
             (stats.t.logpdf, (x, 3.0), None), (stats.gamma.logpdf, (x, 2.0), np.log(x.astype(np.float64)) - x),
             (stats.gamma.cdf, (x, 2.0), None), (stats.beta.pdf, (x / 2, 2.0, 3.0), None),
             (stats.uniform.logpdf, (x,), np.array([0.0, 0.0, -np.inf])), (stats.poisson.logpmf, (k, 2.0), None)]
    for f, args, want in cases:
        run = (lambda *a: f(*a)) if backend == "numpy" else gradc.jit(lambda *a: f(*a), backend=backend)
        got = run(*args)
        assert np.asarray(got).dtype == np.float32, f
        if want is not None:
            np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-6)
    # a float64 array among the arguments keeps float64, and so does a float64 x
    assert np.asarray(stats.t.logpdf(x, np.float64(3.0))).dtype == np.float64
    assert np.asarray(stats.norm.logpdf(x.astype(np.float64))).dtype == np.float64
