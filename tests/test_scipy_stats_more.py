"""gradc.scipy.stats' chi2, gumbel_l/r, pareto, truncnorm, vonmises, gennorm, geom,
nbinom, betabinom, multinomial, dirichlet, rankdata and sem: each line against its
density written element by element with Python's math or mpmath (independent formulas)
on every backend at 10,000 elements, float64 and float32; gradients in every float
argument against central differences of that formula; against scipy where installed.

Tolerances: 1e-13 relative to max(1, |value|) (a few logs, lgamma's 1e-14 and
log_ndtr's 2e-13 for truncnorm's far tails, tests/test_scipy_special.py); chi2's and
gennorm's CDFs 3e-14 absolute (gammainc's); float32 2e-5 relative to max(1, |value|)
(a dozen ops of a few ulp, lgamma's float32 2e-5); finite differences as
tests/gradc_helpers (1e-6).
"""
from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
from gradc.scipy import stats

from gradc_helpers import assert_fd_close, fd_grad

BACKENDS = ["numpy", "llvm", "c"]
r = np.random.default_rng(0)
N = 10000
X = np.concatenate([r.standard_normal(N) * 3, [0.0, 1.0, -3.5, 12.0, -12.0]])
UNIT = r.uniform(0.001, 0.999, N)
K = np.concatenate([np.round(r.uniform(0, 30, N)), [0.0, 1.0, 1.5, -1.0]])
TAIL = np.concatenate([r.uniform(8.0, 12.0, 2000), [7.0, 13.0]])
mpmath.mp.dps = 40


def _lg(v):
    return math.lgamma(v)


def _ncdf(v):
    return mpmath.ncdf(mpmath.mpf(v))


def _chi2_logpdf(x, df, m, s):
    z = (x - m) / s
    return (df / 2 - 1) * math.log(z) - z / 2 - _lg(df / 2) - df / 2 * math.log(2) - math.log(s) if z > 0 else -math.inf


def _inc(a, z):
    return float(mpmath.gammainc(a, 0, z, regularized=True))


def _truncnorm_logpdf(x, a, b, m, s):
    z = (x - m) / s
    if not a <= z <= b:
        return -math.inf
    return float(-z * z / 2 - mpmath.log(mpmath.sqrt(2 * mpmath.pi) * s * (_ncdf(b) - _ncdf(a))))


def _truncnorm_logcdf(x, a, b, m, s):
    z = (x - m) / s
    if z <= a:
        return -math.inf
    return 0.0 if z >= b else float(mpmath.log((_ncdf(z) - _ncdf(a)) / (_ncdf(b) - _ncdf(a))))


def _truncnorm_logsf(x, a, b, m, s):
    z = (x - m) / s
    if z >= b:
        return -math.inf
    return 0.0 if z <= a else float(mpmath.log((_ncdf(b) - _ncdf(z)) / (_ncdf(b) - _ncdf(a))))


def _gumbel_r(x, m, s):
    z = (x - m) / s
    return -z - math.exp(-z) - math.log(s)


def _pareto_logpdf(x, b, m, s):
    z = (x - m) / s
    return math.log(b) - (b + 1) * math.log(z) - math.log(s) if z >= 1 else -math.inf


def _i0(k):
    return float(mpmath.besseli(0, k) * mpmath.exp(-k))


_SLOW = 400      # lines whose oracle is mpmath: the first _SLOW elements


# (id, gradc function, formula of one element, arguments, differentiated argument indices)
LINES = [
    ("chi2.logpdf", stats.chi2.logpdf, _chi2_logpdf, (X, 3.5, 0.2, 1.5), (0, 1, 2, 3)),
    ("chi2.cdf", stats.chi2.cdf, lambda x, df, m, s: _inc(df / 2, max(0, (x - m) / s) / 2), (X[:_SLOW], 3.5, 0.2, 1.5),
     (0, 2, 3)),
    ("chi2.sf", stats.chi2.sf, lambda x, df, m, s: 1 - _inc(df / 2, max(0, (x - m) / s) / 2), (X[:_SLOW], 3.5, 0.2, 1.5),
     (0, 2, 3)),
    ("gamma.cdf", stats.gamma.cdf, lambda x, a, m, s: _inc(a, max(0, (x - m) / s)), (X[:_SLOW], 2.5, -1.0, 1.5),
     (0, 2, 3)),
    ("gamma.logsf", stats.gamma.logsf, lambda x, a, m, s: math.log(1 - _inc(a, max(0, (x - m) / s))),
     (X[:_SLOW] / 3, 2.5, -1.0, 1.5), (0, 2, 3)),
    ("gumbel_r.logpdf", stats.gumbel_r.logpdf, _gumbel_r, (X, 0.3, 1.7), (0, 1, 2)),
    ("gumbel_r.cdf", stats.gumbel_r.cdf, lambda x, m, s: math.exp(-math.exp(-(x - m) / s)), (X, 0.3, 1.7), (0, 1, 2)),
    ("gumbel_r.logsf", stats.gumbel_r.logsf, lambda x, m, s: math.log(-math.expm1(-math.exp(-(x - m) / s))),
     (X, 0.3, 1.7), (0, 1, 2)),
    ("gumbel_r.ppf", stats.gumbel_r.ppf, lambda q, m, s: m - s * math.log(-math.log(q)), (UNIT, 0.3, 1.7), (0, 1, 2)),
    ("gumbel_l.logpdf", stats.gumbel_l.logpdf, lambda x, m, s: _gumbel_r(-x, -m, s), (X, 0.3, 1.7), (0, 1, 2)),
    ("gumbel_l.logcdf", stats.gumbel_l.logcdf, lambda x, m, s: math.log(-math.expm1(-math.exp((x - m) / s))),
     (X, 0.3, 1.7), (0, 1, 2)),
    ("gumbel_l.sf", stats.gumbel_l.sf, lambda x, m, s: math.exp(-math.exp((x - m) / s)), (X, 0.3, 1.7), (0, 1, 2)),
    ("pareto.logpdf", stats.pareto.logpdf, _pareto_logpdf, (X, 2.5, -1.0, 1.5), (0, 1, 2, 3)),
    ("pareto.cdf", stats.pareto.cdf, lambda x, b, m, s: 1 - ((x - m) / s) ** -b if x - m >= s else 0.0,
     (X, 2.5, -1.0, 1.5), (0, 1, 2, 3)),
    ("pareto.logsf", stats.pareto.logsf, lambda x, b, m, s: -b * math.log((x - m) / s) if x - m >= s else 0.0,
     (X, 2.5, -1.0, 1.5), (0, 1, 2, 3)),
    ("pareto.ppf", stats.pareto.ppf, lambda q, b, m, s: m + s * (1 - q) ** (-1 / b), (UNIT, 2.5, -1.0, 1.5), (0, 1, 2, 3)),
    ("truncnorm.logpdf", stats.truncnorm.logpdf, _truncnorm_logpdf, (X[:_SLOW], -1.0, 2.5, 0.3, 1.2), (0, 3, 4)),
    ("truncnorm.logcdf", stats.truncnorm.logcdf, _truncnorm_logcdf, (X[:_SLOW], -1.0, 2.5, 0.3, 1.2), (0, 3, 4)),
    ("truncnorm.logsf", stats.truncnorm.logsf, _truncnorm_logsf, (X[:_SLOW], -1.0, 2.5, 0.3, 1.2), (0, 3, 4)),
    ("truncnorm.logpdf tail", stats.truncnorm.logpdf, _truncnorm_logpdf, (TAIL[:_SLOW], 8.0, 12.0, 0.0, 1.0), (0,)),
    ("truncnorm.logcdf tail", stats.truncnorm.logcdf, _truncnorm_logcdf, (TAIL[:_SLOW], 8.0, 12.0, 0.0, 1.0), (0,)),
    ("truncnorm.logsf left tail", stats.truncnorm.logsf, _truncnorm_logsf, (-TAIL[:_SLOW], -12.0, -8.0, 0.0, 1.0),
     (0,)),
    ("vonmises.logpdf", stats.vonmises.logpdf, lambda x, k: k * (math.cos(x) - 1) - math.log(2 * math.pi * _i0(k)),
     (X[:_SLOW], 2.5), (0, 1)),
    ("vonmises.logpdf large kappa", stats.vonmises.logpdf,
     lambda x, k: k * (math.cos(x) - 1) - math.log(2 * math.pi * _i0(k)), (X[:_SLOW] / 30, 900.0), (0, 1)),
    ("gennorm.logpdf", stats.gennorm.logpdf, lambda x, b: math.log(b / 2) - _lg(1 / b) - abs(x) ** b, (X, 1.5), (1,)),
    ("gennorm.cdf", stats.gennorm.cdf,
     lambda x, b: 0.5 + math.copysign(0.5, x) * _inc(1 / b, abs(x) ** b), (X[:_SLOW], 1.5), (0,)),
    ("geom.logpmf", stats.geom.logpmf,
     lambda k, p: (k - 1) * math.log1p(-p) + math.log(p) if k >= 1 and k == int(k) else -math.inf, (K, 0.3), (1,)),
    ("nbinom.logpmf", stats.nbinom.logpmf,
     lambda k, n, p: (_lg(n + k) - _lg(k + 1) - _lg(n) + n * math.log(p) + k * math.log1p(-p))
     if k >= 0 and k == int(k) else -math.inf, (K, 3.5, 0.3), (1, 2)),
    ("betabinom.logpmf", stats.betabinom.logpmf,
     lambda k, n, a, b: (_lg(n + 1) - _lg(k + 1) - _lg(n - k + 1) + _lg(k + a) + _lg(n - k + b) - _lg(n + a + b)
                         - _lg(a) - _lg(b) + _lg(a + b)) if 0 <= k <= n and k == int(k) else -math.inf,
     (K, 20.0, 2.5, 0.7), (2, 3)),
]
IDS = [line[0] for line in LINES]


def _oracle(formula, args):
    arrays = np.broadcast_arrays(*[np.asarray(a, dtype=float) for a in args])
    return np.array([formula(*vals) for vals in zip(*[a.ravel() for a in arrays])]).reshape(arrays[0].shape)


def _close(got, want, tol, name):
    finite = np.isfinite(want)
    np.testing.assert_array_equal(np.isfinite(got), finite, err_msg=name)
    np.testing.assert_array_equal(got[~finite], want[~finite], err_msg=name)
    err = np.abs(got[finite] - want[finite]) / np.maximum(1.0, np.abs(want[finite]))
    assert err.max() <= tol, (name, err.max())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("line", LINES, ids=IDS)
def test_value_against_the_formula(line, backend):
    name, fn, formula, args, _ = line
    want = _oracle(formula, args)
    _close(gradc.jit(fn, backend=backend)(*args), want, 1e-13, name)
    if backend == "llvm":                   # float32 on one backend: the same graph, narrower floats
        got32 = gradc.jit(fn, backend=backend)(*[np.asarray(a, np.float32) for a in args])
        assert got32.dtype == np.float32, name
        keep = np.isfinite(want) & (np.abs(want) < 1e4)
        assert np.all(np.abs(got32[keep] - want[keep]) <= 2e-5 * np.maximum(1, np.abs(want[keep]))), name


@pytest.mark.parametrize("line", [ln for ln in LINES if ln[4]], ids=[ln[0] for ln in LINES if ln[4]])
def test_gradient_against_finite_differences(line):
    """The gradient of sum(f) over 40 finite entries away from kinks and support edges."""
    name, fn, formula, args, diff = line
    want = _oracle(formula, [a[:200] if i == 0 else a for i, a in enumerate(args)])
    first = np.asarray(args[0])[:200]
    keep = np.isfinite(want)
    if name.startswith("pareto") and "ppf" not in name:
        keep &= np.abs((first - args[2]) / args[3] - 1) > 1e-3
    if name.startswith("gennorm"):
        keep &= np.abs(first) > 1e-3
    sub = (first[keep][:40],) + tuple(args[1:])

    def loss(f, ops):
        def g(*d):
            full = list(sub)
            for i, v in zip(diff, d):
                full[i] = v
            return ops(f(*full))
        return g
    point = [np.asarray(sub[i], dtype=float) for i in diff]
    got = gradc.grad(loss(fn, gnp.sum), argnums=tuple(range(len(diff))))(*point)
    numpy_loss = loss(lambda *a: _oracle(formula, a), lambda v: float(np.sum(v)))
    for k in range(len(diff)):
        assert_fd_close(got[k], fd_grad(numpy_loss, point, k), f"{name}, argument {diff[k]}")


def test_chi2_cdf_derivative_in_df():
    """d cdf / d df against mpmath's central difference (h = 1e-5: its error, h^2 times
    the third derivative / 6, ~ 1e-11 relative; 1e-8 leaves room)."""
    z, df = np.abs(X[:10]) + 0.1, np.linspace(0.5, 30, 10)
    got = gradc.grad(lambda d: gnp.sum(stats.chi2.cdf(z, d)))(df)
    with mpmath.workdps(40):
        def cdf(v, d):
            return mpmath.gammainc(mpmath.mpf(d) / 2, 0, mpmath.mpf(v) / 2, regularized=True)
        want = [float((cdf(v, d + 1e-5) - cdf(v, d - 1e-5)) / 2e-5) for v, d in zip(z, df)]
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_multinomial_and_dirichlet(backend):
    rr = np.random.default_rng(3)
    p = np.array([0.2, 0.3, 0.5])
    x = rr.multinomial(6, p, size=(50, 4, 10)).astype(float)       # (..., K) of rank 4, 2000 rows
    x[0, 0, 0] = [1.0, 2.0, 2.5]                                     # not integers: -inf
    x[0, 0, 1] = [3.0, 3.0, 1.0]                                     # sum 7 != 6: -inf
    want = np.array([(_lg(7) + sum(c * math.log(q) - _lg(c + 1) for c, q in zip(v, p)))
                     if v.sum() == 6 and all(c == int(c) for c in v) else -math.inf
                     for v in x.reshape(-1, 3)]).reshape(x.shape[:-1])
    _close(gradc.jit(stats.multinomial.logpmf, backend=backend)(x, 6.0, p), want, 1e-13, "multinomial")
    g = gradc.grad(lambda q: gnp.sum(stats.multinomial.logpmf(x[1:], 6.0, q)), backend=backend)(p)
    np.testing.assert_allclose(g, x[1:].reshape(-1, 3).sum(0) / p, rtol=1e-13)          # d/dp sum x log p
    alpha = np.array([1.5, 2.0, 0.7, 3.0])
    xd = rr.dirichlet(alpha, 10000).T                                   # (K, N)
    log_b = sum(_lg(a) for a in alpha) - _lg(alpha.sum())
    want = ((alpha[:, None] - 1) * np.log(xd)).sum(0) - log_b
    got = gradc.jit(stats.dirichlet.logpdf, backend=backend)(xd, alpha)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gradc.jit(stats.dirichlet.logpdf, backend=backend)(xd[:3], alpha), want,
                               rtol=1e-9, atol=1e-9)        # (the last component as 1 - sum: its rounding / x_K)
    off = gradc.jit(stats.dirichlet.logpdf, backend=backend)(np.array([[0.5, -0.1], [0.2, 0.6], [0.2, 0.2],
                                                                       [0.2, 0.3]]), alpha)
    assert np.all(off == -np.inf)
    def psi(v):
        return np.array([float(mpmath.digamma(t)) for t in np.atleast_1d(v)])
    ga = gradc.grad(lambda a: gnp.sum(stats.dirichlet.logpdf(xd[:, :100], a)), backend=backend)(alpha)
    np.testing.assert_allclose(ga, np.log(xd[:, :100]).sum(1) - 100 * (psi(alpha) - psi(alpha.sum())), rtol=1e-11)


def _rank_oracle(a, method):
    """Ranks by definition: ordinal by (value, position); the others from counts."""
    a = np.asarray(a, float)
    less = (a[None, :] < a[:, None]).sum(1)
    equal = (a[None, :] == a[:, None]).sum(1)
    if method == "min":
        return less + 1.0
    if method == "max":
        return less + equal + 0.0
    if method == "average":
        return less + (equal + 1) / 2.0
    if method == "dense":
        u = np.unique(a)
        return (u[None, :] < a[:, None]).sum(1) + 1.0
    before = np.array([(a[:i] == a[i]).sum() for i in range(len(a))])
    return less + before + 1.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_rankdata_and_sem(backend):
    rr = np.random.default_rng(9)
    a = np.round(rr.uniform(0, 50, 3000))                     # many ties
    for method in ("average", "min", "max", "dense", "ordinal"):
        got = gradc.jit(lambda v: stats.rankdata(v, method), backend=backend)(a)
        np.testing.assert_array_equal(got, _rank_oracle(a, method), err_msg=method)
    m = np.round(rr.uniform(0, 5, (4, 6, 30)))
    got = gradc.jit(lambda v: stats.rankdata(v, "average", axis=1), backend=backend)(m)
    want = np.stack([np.stack([_rank_oracle(m[i, :, j], "average") for j in range(30)], -1) for i in range(4)])
    np.testing.assert_array_equal(got, want)
    nan = gradc.jit(lambda v: stats.rankdata(v), backend=backend)(np.array([1.0, np.nan, 0.0]))
    assert np.isnan(nan).all()
    with pytest.raises(gradc.GradcError, match="method"):
        stats.rankdata(a, "first")
    s = rr.standard_normal((20, 500, 3))
    for axis in (0, 1, None):
        n = s.size if axis is None else s.shape[axis]
        want = np.std(s, axis=axis, ddof=1) / math.sqrt(n)
        np.testing.assert_allclose(gradc.jit(lambda v: stats.sem(v, axis=axis), backend=backend)(s), want, rtol=1e-13)
    g = gradc.grad(lambda v: gnp.sum(stats.sem(v, axis=0)), backend=backend)(s[:, :4, 0])
    c = s[:, :4, 0] - s[:, :4, 0].mean(0)
    np.testing.assert_allclose(g, c / (19 * np.sqrt(20) * np.std(s[:, :4, 0], axis=0, ddof=1)), rtol=1e-12)


@pytest.mark.parametrize("line", LINES, ids=IDS)
def test_against_scipy_where_installed(line):
    ss = pytest.importorskip("scipy.stats")
    name, fn, _, args, _ = line
    dist, method = name.split(" ")[0].split(".")
    with np.errstate(all="ignore"):
        want = getattr(getattr(ss, dist), method)(*args)
    got = gradc.jit(fn)(*args)
    finite = np.isfinite(want)
    np.testing.assert_array_equal(np.isfinite(got), finite)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-12, atol=1e-13)


def test_rankdata_multinomial_dirichlet_against_scipy_where_installed():
    ss = pytest.importorskip("scipy.stats")
    a = np.round(np.random.default_rng(1).uniform(0, 9, 200))
    for method in ("average", "min", "max", "dense", "ordinal"):
        np.testing.assert_array_equal(gradc.jit(lambda v: stats.rankdata(v, method))(a), ss.rankdata(a, method))
    p, x = np.array([0.1, 0.6, 0.3]), np.array([[2.0, 3.0, 1.0], [0.0, 6.0, 0.0]])
    np.testing.assert_allclose(gradc.jit(stats.multinomial.logpmf)(x, 6.0, p), ss.multinomial.logpmf(x, 6, p),
                               rtol=1e-13)
    alpha = np.array([1.5, 2.0, 0.7])
    xd = np.random.default_rng(2).dirichlet(alpha, 20).T
    np.testing.assert_allclose(gradc.jit(stats.dirichlet.logpdf)(xd, alpha), ss.dirichlet.logpdf(xd, alpha),
                               rtol=1e-12, atol=3e-14)          # (a sum of logs and lgammas cancelling near 0)


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
def test_pareto_ppf_outside_unit_interval_is_nan(backend):
    # q < 0 gave a finite quantile (log1p(-q) is finite there); scipy's is nan
    q = np.array([-0.1, 0.0, 0.5, 1.0, 1.1])
    got = np.asarray(gradc.jit(lambda q: stats.pareto.ppf(q, 2.0, 0.5, 1.5), backend=backend)(q))
    want = np.array([np.nan, 2.0, 0.5 + 1.5 * 0.5 ** -0.5, np.inf, np.nan])
    np.testing.assert_allclose(got, want, rtol=1e-13)
    g = np.asarray(gradc.jit(gradc.vmap(gradc.grad(lambda q: stats.pareto.ppf(q, 2.0, 0.5, 1.5))), backend=backend)(
        np.array([0.25, 0.5])))
    np.testing.assert_allclose(g, 1.5 / 2.0 * (1 - np.array([0.25, 0.5])) ** -1.5, rtol=1e-12)
