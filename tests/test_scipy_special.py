"""gradc.scipy.special against Python's math.lgamma (libm's), identities of digamma
(psi(1) = -Euler's gamma, psi(x + 1) = psi(x) + 1/x) and central differences of
math.lgamma, and numpy formulas for xlogy, xlog1py, logit, entr; on every backend.

Tolerances: gammaln within 2e-14 absolute (relative where |lgamma| > 1): the
recurrence's two terms of about 30 cancel near lgamma's zeros at 1 and 2 (float32: 2e-5);
digamma 2e-14 against its identities, 1e-8 against central differences of lgamma
(step 1e-5: truncation h^2 psi''/6 plus rounding eps/h)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
import gradc.scipy.special as sp

BACKENDS = ["numpy", "llvm", "c"]
X = np.concatenate([np.linspace(0.01, 40, 2001), [1e-8, 0.5, 1.0, 2.0, 15.999, 16.0, 100.0, 1e5, 1e300]])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 2e-14), (np.float32, 2e-5)])
def test_gammaln_against_libm(dtype, tol, backend):
    x = X[X < np.finfo(dtype).max].astype(dtype)
    got = gradc.jit(sp.gammaln, backend=backend)(x)
    want = np.array([math.lgamma(float(v)) for v in x])
    assert got.dtype == dtype
    assert np.all(np.abs(got - want) <= tol * np.maximum(1.0, np.abs(want)))
    special = gradc.jit(sp.gammaln, backend=backend)(np.array([0.0, -0.0, -1.0, -7.0, -np.inf, np.inf, np.nan], dtype))
    np.testing.assert_array_equal(special, [np.inf, np.inf, np.inf, np.inf, -np.inf, np.inf, np.nan])   # scipy's


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 2e-14), (np.float32, 2e-5)])
def test_gammaln_and_digamma_below_zero_by_reflection(dtype, tol, backend):
    """Below 0, log |Gamma(x)| = log pi - log |sin(pi x)| - lgamma(1 - x) and psi(x) =
    psi(1 - x) - pi cot(pi x), as scipy's and jax.lax.lgamma's, against libm's lgamma and
    mpmath's digamma: non-integers from -40 to 0, 1e-6 beside the poles too, 20,000 points
    (split over threads).  The derivative of gammaln is digamma, and digamma's is mpmath's
    trigamma.  Tolerance as above, relative to max(1, |value|) (the reflection adds a few
    roundings of terms no larger than the result's scale away from lgamma's zeros)."""
    mpmath = pytest.importorskip("mpmath")
    r = np.random.default_rng(5)
    x = np.concatenate([-r.uniform(0, 40, 20000), -np.arange(1, 30) + 1e-6, -np.arange(0, 30) - 1e-6]).astype(dtype)
    x = x[x != np.round(x)]
    lg = gradc.jit(sp.gammaln, backend=backend)(x)
    want = np.array([math.lgamma(float(v)) for v in x])
    assert lg.dtype == dtype
    assert np.all(np.abs(lg - want) <= tol * np.maximum(1.0, np.abs(want)))
    sub = x[::200]
    psi = np.array([float(mpmath.digamma(float(v))) for v in sub])
    got_psi = gradc.jit(sp.digamma, backend=backend)(sub)
    assert got_psi.dtype == dtype
    assert np.all(np.abs(got_psi - psi) <= tol * np.maximum(1.0, np.abs(psi)))
    g = gradc.grad(lambda v: gnp.sum(sp.gammaln(v)), backend=backend)(sub)
    assert np.all(np.abs(g - psi) <= tol * np.maximum(1.0, np.abs(psi)))
    tri = np.array([float(mpmath.psi(1, float(v))) for v in sub])
    g2 = gradc.grad(lambda v: gnp.sum(sp.digamma(v)), backend=backend)(sub)
    assert np.all(np.abs(g2 - tri) <= tol * np.maximum(1.0, np.abs(tri)))
    ends = gradc.jit(sp.digamma, backend=backend)(np.array([0.0, -0.0, -3.0, -np.inf, np.inf, np.nan], dtype))
    np.testing.assert_array_equal(ends, [-np.inf, np.inf, np.nan, np.nan, np.inf, np.nan])               # scipy's


@pytest.mark.parametrize("backend", BACKENDS)
def test_digamma_identities_and_gammaln_derivative(backend):
    x = X[(X > 1e-6) & (X < 1e6)]
    psi = gradc.jit(sp.digamma, backend=backend)
    assert psi(np.array([1.0]))[0] == pytest.approx(-0.57721566490153286, abs=2e-15)
    # (relative to the terms: psi(0.01) = -100.56 and 1/0.01 cancel to -0.56)
    assert np.all(np.abs(psi(x + 1) - (psi(x) + 1 / x)) <= 2e-14 * (1 + np.abs(psi(x)) + 1 / x))
    h = 1e-5
    mid = x[(x > 0.1) & (x < 100)]      # (beyond, lgamma's rounding over h swamps the difference)
    fd = np.array([(math.lgamma(v + h) - math.lgamma(v - h)) / (2 * h) for v in mid])
    np.testing.assert_allclose(psi(mid), fd, rtol=1e-8, atol=1e-8)
    g = gradc.grad(lambda v: gnp.sum(sp.gammaln(v)), backend=backend)(x)       # its derivative: digamma
    np.testing.assert_allclose(g, psi(x), rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_xlogy_xlog1py_are_zero_at_x_zero_whatever_y(backend):
    """0 where x = 0 for y < 0 (and y <= -1 for xlog1py) and nan too, in a trace as
    outside one (JAX's rule; a traced 0 * log(-2) gave nan), with a 0 gradient there."""
    x = np.array([0.0, 0.0, 0.0, 2.0])
    y = np.array([-2.0, np.nan, -np.inf, 3.0])
    want = np.array([0.0, 0.0, 0.0, 2 * np.log(3.0)])
    for f, yy in ((sp.xlogy, y), (sp.xlog1py, y - 1)):
        np.testing.assert_allclose(gradc.jit(f, backend=backend)(x, yy), want, rtol=1e-15)
        np.testing.assert_allclose(f(x, yy), want, rtol=1e-15)
        gx, gy = gradc.grad(lambda a, b: gnp.sum(f(a, b)), argnums=(0, 1), backend=backend)(x, yy)
        np.testing.assert_allclose(gx, [0, 0, 0, np.log(3.0)], rtol=1e-15)
        np.testing.assert_allclose(gy, [0, 0, 0, 2 / 3], rtol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_xlogy_xlog1py_logit_entr(backend):
    x = np.array([0.0, 0.0, 0.0, 1.5, 2.0, 0.3])
    y = np.array([0.0, 0.7, np.inf, 0.25, 3.0, 0.9])
    with np.errstate(divide="ignore", invalid="ignore"):
        want = np.where(x == 0, 0.0, x * np.log(y))
    np.testing.assert_allclose(gradc.jit(sp.xlogy, backend=backend)(x, y), want, rtol=4e-16, atol=0)
    gx, gy = gradc.grad(lambda a, b: gnp.sum(sp.xlogy(a, b)), argnums=(0, 1), backend=backend)(x, y)
    np.testing.assert_allclose(gx[3:], np.log(y[3:]), rtol=1e-15)       # d/dx x log y = log y
    assert gx[1] == pytest.approx(math.log(0.7))                          # at x = 0 too
    np.testing.assert_allclose(gy, np.where(x == 0, 0.0, x / np.where(y == 0, 1, y)), rtol=1e-15)
    y1 = np.array([-1.0, 0.5, -0.5, 0.25, 3.0, 0.9])
    with np.errstate(divide="ignore", invalid="ignore"):
        want1 = np.where(x == 0, 0.0, x * np.log1p(y1))
    np.testing.assert_allclose(gradc.jit(sp.xlog1py, backend=backend)(x, y1), want1, rtol=4e-16, atol=0)
    p = np.array([1e-9, 0.25, 0.5, 0.999])
    np.testing.assert_allclose(gradc.jit(sp.logit, backend=backend)(p), np.log(p / (1 - p)), rtol=1e-14)
    np.testing.assert_allclose(gradc.grad(lambda v: gnp.sum(sp.logit(v)), backend=backend)(p), 1 / (p * (1 - p)),
                               rtol=1e-12)
    e = np.array([0.0, 0.5, 2.0, -1.0])
    np.testing.assert_allclose(gradc.jit(sp.entr, backend=backend)(e),
                               [0.0, -0.5 * math.log(0.5), -2 * math.log(2), -np.inf], rtol=4e-16, atol=0)


def test_concrete_inputs_and_scipy_where_installed():
    x = np.array([0.5, 3.0, 17.5])
    np.testing.assert_allclose(sp.gammaln(x), [math.lgamma(v) for v in x], rtol=1e-14)
    scipy_special = pytest.importorskip("scipy.special")
    for name in ("gammaln", "digamma", "logit", "entr", "erf", "erfc"):
        np.testing.assert_allclose(gradc.jit(getattr(sp, name))(x / 20), getattr(scipy_special, name)(x / 20),
                                   rtol=1e-13, err_msg=name)


def test_scipys_own_functions_trace():
    """scipy.special's ufuncs called on traced values (unmodified scipy code) dispatch to
    gradc.scipy.special: value and gradient as gradc's own names give."""
    scipy_special = pytest.importorskip("scipy.special")
    x = np.linspace(0.1, 3.0, 7)

    def f(s):
        return lambda v: gnp.sum(s.erf(v) + s.gammaln(v) + s.xlogy(v, v) + s.expit(v) + s.entr(v))
    v, g = gradc.value_and_grad(f(scipy_special))(x)
    want_v, want_g = gradc.value_and_grad(f(sp))(x)
    assert v == pytest.approx(want_v, rel=1e-15)
    np.testing.assert_allclose(g, want_g, rtol=1e-15)
    assert v == pytest.approx(float(f(scipy_special)(x)), rel=1e-13)     # scipy's own values, concrete


def _mp(f, x):
    import mpmath
    mpmath.mp.dps = 40
    return np.array([float(f(mpmath.mpf(float(v)))) for v in x])


def _log_ncdf(v):
    import mpmath
    # log1p(-ncdf(-x)) above 0: ncdf(x) itself rounds to 1 at 40 digits far out
    return mpmath.log(mpmath.ncdf(v)) if v <= 0 else mpmath.log1p(-mpmath.ncdf(-v))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype,lower", [(np.float64, -40.0), (np.float32, -13.0)])
def test_ndtr_and_log_ndtr_into_both_tails(dtype, lower, backend):
    """Against mpmath, relative to the value.  The bound is the functions' own
    conditioning (x^2 times the rounding of x, for the argument x / sqrt 2) plus
    erfc's few ulp: 2e-13 at |x| <= 40 in float64, 3e-5 at |x| <= 13 in float32.
    log_ndtr far below (-1e5, where ndtr underflows) by its series; its derivative
    phi/ndtr within 1e-13 (float64) everywhere, finite at every branch point."""
    x = np.concatenate([np.linspace(lower, 12.0, 3001), [-20.0, -20.001, -19.999, -10.0, 0.0, 1e-3, -1e-3]])
    x = x.astype(dtype)
    eps = 2e-13 if dtype == np.float64 else 3e-5
    want = _mp(lambda v: _log_ncdf(v), x)
    got = gradc.jit(sp.log_ndtr, backend=backend)(x)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=eps, atol=0)
    import mpmath
    nd = _mp(mpmath.ncdf, x)
    normal = nd > np.finfo(dtype).tiny
    np.testing.assert_allclose(gradc.jit(sp.ndtr, backend=backend)(x)[normal], nd[normal], rtol=eps, atol=0)
    far = np.array([-1e5, -1e3, -50.0], dtype)
    np.testing.assert_allclose(gradc.jit(sp.log_ndtr, backend=backend)(far),
                               _mp(lambda v: _log_ncdf(v), far), rtol=eps)
    if dtype == np.float64:
        g = gradc.grad(lambda v: gnp.sum(sp.log_ndtr(v)), backend=backend)(x)
        gw = _mp(lambda v: mpmath.npdf(v) / mpmath.ncdf(v), x)
        np.testing.assert_allclose(g, gw, rtol=1e-13, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_logsumexp_with_signed_weights_softmax_and_betaln(backend):
    r = np.random.default_rng(3)
    a, b = r.standard_normal((4, 5)), r.standard_normal((4, 5))
    for axis in (None, 0, 1):
        for keep in (False, True):
            got, sign = gradc.jit(lambda a, b: sp.logsumexp(a, axis=axis, b=b, keepdims=keep, return_sign=True),
                                  backend=backend)(a, b)
            s = np.sum(b * np.exp(a), axis=axis, keepdims=keep)
            np.testing.assert_allclose(got, np.log(np.abs(s)), rtol=1e-14)
            np.testing.assert_array_equal(sign, np.sign(s))
    g = gradc.grad(lambda a: sp.logsumexp(a, b=b, return_sign=True)[0], backend=backend)(a)
    np.testing.assert_allclose(g, b * np.exp(a) / np.sum(b * np.exp(a)), rtol=1e-12)
    e = np.exp(a - a.max())
    np.testing.assert_allclose(gradc.jit(sp.softmax, backend=backend)(a), e / e.sum(), rtol=1e-14)
    np.testing.assert_allclose(gradc.jit(sp.log_softmax, backend=backend)(a), np.log(e / e.sum()), rtol=1e-14)
    x, y = np.array([0.5, 2.0, 7.5]), np.array([1.5, 0.25, 3.0])
    want = [math.lgamma(p) + math.lgamma(q) - math.lgamma(p + q) for p, q in zip(x, y)]
    np.testing.assert_allclose(gradc.jit(sp.betaln, backend=backend)(x, y), want, rtol=0, atol=4e-14)


# ----------------------------------------------------------------------------- Python numbers
NUMBER_CASES = [("gammaln", (3.5,)), ("digamma", (2.0,)), ("erf", (0.5,)), ("erfc", (0.5,)), ("expit", (0.3,)),
                ("logit", (0.3,)), ("ndtr", (2.0,)), ("log_ndtr", (-3.0,)), ("ndtri", (0.3,)), ("xlogy", (2.0, 3.0)),
                ("gammainc", (2.0, 1.0)), ("i0e", (2.0,)), ("beta", (2.0, 3.0)), ("polygamma", (1, 2.0))]


@pytest.mark.parametrize("name, args", NUMBER_CASES, ids=[c[0] for c in NUMBER_CASES])
def test_python_numbers_fold_to_weak_float64(name, args):
    """scipy's float64 value (ndtr and log_ndtr of a Python float computed in float32
    before: 0.97724986 for ndtr(2.0)), weakly typed: beside a float32 array inside a trace
    it stays float32, as jax.scipy.special's weakly typed results do."""
    scipy_special = pytest.importorskip("scipy.special")
    c = getattr(sp, name)(*args)
    want = getattr(scipy_special, name)(*args)
    assert c.dtype == np.float64 and abs(c - want) <= 1e-14 * max(1.0, abs(want))
    x = np.linspace(0.1, 1.0, 5, dtype=np.float32)
    got = gradc.jit(lambda x: x + getattr(sp, name)(*args))(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, x + np.float32(want), rtol=1e-6)
