"""gradc.scipy.special's Gamma family, zeta/polygamma, the Bessel functions I0/I1 and
their scaled forms, erfcx, kl_div/rel_entr and Box-Cox: against Python's math (libm's
tgamma and lgamma), identities (Gamma(x+1) = x Gamma(x), reflection, zeta's shift),
mpmath at 40 digits (a test dependency), closed-form derivatives and central differences;
against scipy where it is installed.  10,000+ elements so loops vectorize, on every
backend, float64 and float32.

Tolerances (float64, relative): gamma 2e-15 max(1, |log Gamma|) + 3e-14 (exp of gammaln,
whose own error is 1e-14 absolute near its zeros, 1e-15 relative elsewhere); the scaled
Bessel functions 2e-15 (a 30-term Clenshaw sum, each step's rounding ~ eps); their
derivatives 5e-14 (i1e - i0e cancels to i0e/(2x): 2x times the terms' error at |x| <= 30);
erfcx 4e-15 (erfc's few ulp times an exp(x^2) from an exactly squared split of x); zeta
and polygamma 1e-14 (nine terms plus a tail, each a pow with its x log q rounding).
float32: a few ulp of float32 (eps 6e-8) per op, 1e-5 after a dozen ops.
"""
from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
import gradc.scipy.special as sp

BACKENDS = ["numpy", "llvm", "c"]
mpmath.mp.dps = 40


def _mp(f, *xs):
    return np.array([float(f(*(mpmath.mpf(float(v)) for v in vals))) for vals in zip(*xs)])


def _grid(lo, hi, n=10001):
    """n points over [lo, hi] away from the integers (the poles of Gamma below 0)."""
    x = np.linspace(lo, hi, n)
    return x[np.abs(x - np.round(x)) > 1e-3]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gamma_recurrence_reflection_and_libm(dtype, backend):
    x = _grid(-20.0, 30.0).astype(dtype)
    g = gradc.jit(sp.gamma, backend=backend)
    got, up = g(x), g(x + dtype(1))
    assert got.dtype == dtype and got.size > 9000
    want = np.array([math.gamma(float(v)) for v in x])
    lg = np.abs(np.array([math.lgamma(float(v)) for v in x]))
    tol = 2e-15 * np.maximum(1, lg) + 3e-14 if dtype == np.float64 else 1e-5 * np.maximum(1, lg)
    assert np.all(np.abs(got - want) <= tol * np.abs(want))
    # Gamma(x + 1) = x Gamma(x), from two independent evaluations
    x64 = x.astype(float)
    assert np.all(np.abs(up - x64 * got) <= 2 * tol * np.abs(x64 * want))
    # the sign and the poles as scipy: +-inf at +-0, nan at negative integers and -inf
    edge = np.array([0.0, -0.0, -1.0, -7.0, np.inf, -np.inf, np.nan, 172.0, -0.5, -1.5], dtype)
    e = g(edge)
    assert e[0] == np.inf and e[1] == -np.inf and np.isnan(e[[2, 3, 5, 6]]).all() and e[4] == e[7] == np.inf
    rel = 1e-14 if dtype == np.float64 else 2e-5         # (float32 gammaln: 2e-5, tests/test_scipy_special.py)
    assert e[8] == pytest.approx(-2 * math.sqrt(math.pi), rel=rel)
    assert e[9] == pytest.approx(4 / 3 * math.sqrt(math.pi), rel=rel)
    s = gradc.jit(sp.gammasgn, backend=backend)(edge)
    np.testing.assert_array_equal(s, [1, -1, np.nan, np.nan, 1, np.nan, np.nan, 1, -1, 1])
    np.testing.assert_array_equal(np.sign(got), gradc.jit(sp.gammasgn, backend=backend)(x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_gamma_derivative_is_gamma_times_digamma(backend):
    x = _grid(-6.0, 12.0)
    dg = gradc.grad(lambda v: gnp.sum(sp.gamma(v)), backend=backend)(x)
    sub = x[::97]
    want = _mp(lambda v: mpmath.gamma(v) * mpmath.digamma(v), sub)
    np.testing.assert_allclose(dg[::97], want, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_beta_poch_factorial_comb_multigammaln_loggamma(backend):
    r = np.random.default_rng(1)
    a, b = r.uniform(0.05, 20, 10000), r.uniform(0.05, 20, 10000)
    lb = np.array([math.lgamma(p) + math.lgamma(q) - math.lgamma(p + q) for p, q in zip(a, b)])
    np.testing.assert_allclose(gradc.jit(sp.beta, backend=backend)(a, b), np.exp(lb),
                               rtol=2e-15 * 60 + 3e-14)            # |log B| <= 60 here
    neg = np.array([-0.5, -1.5, 2.5])
    want = [math.gamma(p) * math.gamma(1.25) / math.gamma(p + 1.25) for p in neg]
    np.testing.assert_allclose(gradc.jit(sp.beta, backend=backend)(neg, 1.25), want, rtol=1e-14)
    m = np.round(r.uniform(0, 8, 10000))
    np.testing.assert_allclose(gradc.jit(sp.poch, backend=backend)(a, m),
                               [math.prod(p + k for k in range(int(q))) for p, q in zip(a, m)], rtol=1e-13)
    n = np.arange(-3.0, 30.0)
    np.testing.assert_allclose(gradc.jit(sp.factorial, backend=backend)(n),
                               [float(math.factorial(int(v))) if v >= 0 else 0.0 for v in n], rtol=2e-14)
    N, k = np.round(r.uniform(0, 60, 10000)), np.round(r.uniform(-2, 40, 10000))
    want = [float(math.comb(int(p), int(q))) if 0 <= q else 0.0 for p, q in zip(N, k)]
    np.testing.assert_allclose(gradc.jit(sp.comb, backend=backend)(N, k), want, rtol=1e-13)
    rep = gradc.jit(lambda p, q: sp.comb(p, q, repetition=True), backend=backend)(N + 1, np.abs(k))
    want = np.array([float(math.comb(int(p + q), int(q))) for p, q in zip(N, np.abs(k))])
    np.testing.assert_allclose(rep, want, rtol=2e-15 * np.log(want).max() + 3e-14)     # (as gamma's)
    x = a + 3
    want = 1.5 * math.log(math.pi) + sum(np.array([math.lgamma(v - j / 2) for v in x]) for j in range(3))
    np.testing.assert_allclose(gradc.jit(lambda v: sp.multigammaln(v, 3), backend=backend)(x), want, rtol=1e-14,
                               atol=4e-14)        # (three gammaln, 1e-14 absolute each)
    lg = gradc.jit(sp.loggamma, backend=backend)(np.array([0.0, 0.5, 30.0, -1.5]))
    assert lg[0] == np.inf and np.isnan(lg[3]) and lg[1] == pytest.approx(math.lgamma(0.5), rel=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_zeta_and_polygamma(backend):
    z = gradc.jit(sp.zeta, backend=backend)
    np.testing.assert_allclose(z(np.array([2.0, 4.0, 6.0]), np.ones(3)),
                               [math.pi ** 2 / 6, math.pi ** 4 / 90, math.pi ** 6 / 945], rtol=1e-15)
    r = np.random.default_rng(2)
    x, q = r.uniform(1.05, 30, 10000), r.uniform(0.01, 50, 10000)
    # zeta(x, q) = q^-x + zeta(x, q + 1), evaluated independently
    lhs, rhs = z(x, q), q ** -x + z(x, q + 1)
    np.testing.assert_allclose(lhs, rhs, rtol=3e-14)
    with mpmath.workdps(80):        # (at 40 digits mpmath's own zeta is off by 1e-12 for x, q ~ 25, 50)
        np.testing.assert_allclose(lhs[:300], _mp(mpmath.zeta, x[:300], q[:300]), rtol=1e-14)
    edge = z(np.array([1.0, 0.5, 2.0]), np.array([1.0, 1.0, -1.0]))
    assert edge[0] == np.inf and np.isnan(edge[1:]).all()
    gq = gradc.grad(lambda v: gnp.sum(sp.zeta(x[:300], v)), backend=backend)(q[:300])
    np.testing.assert_allclose(gq, -x[:300] * z(x[:300] + 1, q[:300]), rtol=1e-13)
    v = r.uniform(0.05, 40, 10000)
    for n in (0, 1, 2, 5):
        got = gradc.jit(lambda t: sp.polygamma(n, t), backend=backend)(v)
        np.testing.assert_allclose(got[:200], _mp(lambda t: mpmath.psi(n, t), v[:200]), rtol=1e-14, atol=1e-15,
                                   err_msg=f"n = {n}")
    ns = np.arange(10000) % 4
    got = gradc.jit(sp.polygamma, backend=backend)(ns, v)
    # (n! as exp(gammaln(n + 1)) for array n: 4e-15)
    np.testing.assert_allclose(got[:200], [float(mpmath.psi(int(n), t)) for n, t in zip(ns[:200], v[:200])],
                               rtol=1e-14, atol=1e-15)
    # the derivative of polygamma(1) is polygamma(2)
    g = gradc.grad(lambda t: gnp.sum(sp.polygamma(1, t)), backend=backend)(v)
    np.testing.assert_allclose(g, gradc.jit(lambda t: sp.polygamma(2, t), backend=backend)(v), rtol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype,tol,dtol", [(np.float64, 2e-15, 5e-14), (np.float32, 2e-6, None)])
def test_bessel_i0_i1_and_scaled(dtype, tol, dtol, backend):
    x = np.concatenate([np.linspace(-30, 30, 10001), [0.0, 8.0, -8.0, 8.000001, 1e-30, 700.0, 1e10]]).astype(dtype)
    sub = np.concatenate([x[::100], x[-7:]])
    for name, f in [("i0e", lambda v: mpmath.besseli(0, v) * mpmath.exp(-abs(v))),
                    ("i1e", lambda v: mpmath.besseli(1, v) * mpmath.exp(-abs(v))),
                    ("i0", lambda v: mpmath.besseli(0, v)), ("i1", lambda v: mpmath.besseli(1, v))]:
        got = gradc.jit(getattr(sp, name), backend=backend)(x)
        assert got.dtype == dtype
        keep = np.abs(sub) < (80 if dtype == np.float32 else 700) if name in ("i0", "i1") else slice(None)
        want = _mp(f, sub[keep])
        s = np.concatenate([got[::100], got[-7:]])[keep]
        np.testing.assert_allclose(s, want, rtol=tol, atol=0, err_msg=name)
    if dtol is None:
        return
    # derivatives: i0' = i1, i1' = i0 - i1/x (1/2 at 0), and the scaled ones likewise
    y = x[np.abs(x) < 30]
    d = {name: gradc.grad(lambda v: gnp.sum(getattr(sp, name)(v)), backend=backend)(y) for name in ("i0", "i1", "i0e", "i1e")}
    v = {name: gradc.jit(getattr(sp, name), backend=backend)(y) for name in ("i0", "i1", "i0e", "i1e")}
    nz = np.where(y == 0, 1.0, y)
    np.testing.assert_allclose(d["i0"], v["i1"], rtol=dtol)
    np.testing.assert_allclose(d["i1"], np.where(y == 0, 0.5, v["i0"] - v["i1"] / nz), rtol=dtol)
    np.testing.assert_allclose(d["i0e"], v["i1e"] - np.sign(y) * v["i0e"], rtol=dtol)
    np.testing.assert_allclose(d["i1e"], np.where(y == 0, 0.5, v["i0e"] - v["i1e"] / nz - np.sign(y) * v["i1e"]),
                               rtol=dtol, atol=1e-17)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 4e-15), (np.float32, 1e-6)])
def test_erfcx_to_large_arguments(dtype, tol, backend):
    big = [1e3, 1e6, 1e10, 1e20, 1e30]
    x = np.concatenate([np.linspace(-26 if dtype == np.float64 else -9, 40, 10001), big]).astype(dtype)
    got = gradc.jit(sp.erfcx, backend=backend)(x)
    sub = np.concatenate([x[::40], x[-5:]])
    want = _mp(lambda v: mpmath.exp(v * v) * mpmath.erfc(v), sub)
    np.testing.assert_allclose(np.concatenate([got[::40], got[-5:]]), want, rtol=tol, atol=0)
    e = gradc.jit(sp.erfcx, backend=backend)(np.array([np.inf, -np.inf, -27.0, 0.0, np.nan], dtype))
    assert e[0] == 0 and e[1] == np.inf and e[2] == np.inf and e[3] == 1 and np.isnan(e[4])
    if dtype == np.float64:
        g = gradc.grad(lambda v: gnp.sum(sp.erfcx(v)), backend=backend)(x)
        np.testing.assert_allclose(g[::40], _mp(lambda v: 2 * v * mpmath.exp(v * v) * mpmath.erfc(v)
                                                - 2 / mpmath.sqrt(mpmath.pi), x[::40]), rtol=1e-12, atol=1e-17)


@pytest.mark.parametrize("backend", BACKENDS)
def test_kl_div_rel_entr_boxcox(backend):
    x = np.array([0.0, 0.0, 1.0, 2.0, -1.0, 0.5, 3.0])
    y = np.array([0.0, 2.0, 2.0, 0.0, 1.0, 0.25, -1.0])
    want_rel = [0.0, 0.0, math.log(0.5), np.inf, np.inf, 0.5 * math.log(2.0), np.inf]
    np.testing.assert_allclose(gradc.jit(sp.rel_entr, backend=backend)(x, y), want_rel, rtol=1e-15)
    want_kl = [0.0, 2.0, math.log(0.5) + 1.0, np.inf, np.inf, 0.5 * math.log(2.0) - 0.25, np.inf]
    np.testing.assert_allclose(gradc.jit(sp.kl_div, backend=backend)(x, y), want_kl, rtol=1e-15)
    gx, gy = gradc.grad(lambda a, b: gnp.sum(sp.kl_div(a, b)), argnums=(0, 1), backend=backend)(x[[2, 5]], y[[2, 5]])
    np.testing.assert_allclose(gx, np.log(x[[2, 5]] / y[[2, 5]]), rtol=1e-15)
    np.testing.assert_allclose(gy, 1 - x[[2, 5]] / y[[2, 5]], rtol=1e-15)
    r = np.random.default_rng(5)
    v, lam = r.uniform(1e-3, 10, 10000), r.uniform(-2, 2, 10000)
    lam[:5] = 0.0
    want = np.where(lam == 0, np.log(v), (v ** lam - 1) / np.where(lam == 0, 1, lam))
    np.testing.assert_allclose(gradc.jit(sp.boxcox, backend=backend)(v, lam), want, rtol=1e-12, atol=1e-14)
    small = np.array([1e-20, 1e-10, 0.5])
    np.testing.assert_allclose(gradc.jit(sp.boxcox1p, backend=backend)(small, np.array([0.0, 0.5, -1.0])),
                               [1e-20, float(mpmath.sqrt(1 + mpmath.mpf(1e-10)) - 1) / 0.5, 1 - 1 / 1.5],
                               rtol=1e-15)
    # d/dlmbda: (x^l log x - (x^l - 1)/l) / l, against the closed form
    gl = gradc.grad(lambda a: gnp.sum(sp.boxcox(v[5:], a)), backend=backend)(lam[5:])
    lv, p = np.log(v[5:]), v[5:] ** lam[5:]
    np.testing.assert_allclose(gl, (p * lv - (p - 1) / lam[5:]) / lam[5:], rtol=1e-8, atol=1e-8)


def test_against_scipy_where_installed():
    ss = pytest.importorskip("scipy.special")
    r = np.random.default_rng(7)
    x = np.concatenate([r.uniform(-10, 10, 500), r.uniform(0.1, 60, 500)])
    a = r.uniform(0.1, 20, 1000)
    with np.errstate(all="ignore"):
        for name in ("gamma", "gammasgn", "i0", "i0e", "i1", "i1e", "erfcx"):
            np.testing.assert_allclose(gradc.jit(getattr(sp, name))(x), getattr(ss, name)(x), rtol=1e-13,
                                       err_msg=name)
        for name in ("beta", "poch", "kl_div", "rel_entr", "boxcox", "boxcox1p"):
            np.testing.assert_allclose(gradc.jit(getattr(sp, name))(a, x / 5), getattr(ss, name)(a, x / 5),
                                       rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(gradc.jit(sp.zeta)(a + 1.01, x[::-1] + 11), ss.zeta(a + 1.01, x[::-1] + 11),
                                   rtol=1e-13)
        for n in (0, 1, 3):
            np.testing.assert_allclose(gradc.jit(lambda v: sp.polygamma(n, v))(a), ss.polygamma(n, a), rtol=1e-13)
        np.testing.assert_allclose(gradc.jit(lambda v: sp.multigammaln(v, 4))(a + 2), ss.multigammaln(a + 2, 4),
                                   rtol=1e-14, atol=5e-14)       # (four gammaln, 1e-14 absolute each)
        np.testing.assert_allclose(gradc.jit(sp.comb)(np.round(a * 3), np.round(a)),
                                   ss.comb(np.round(a * 3), np.round(a)), rtol=1e-13)


def test_scipys_own_ufuncs_trace():
    """scipy.special's ufuncs on traced values (unmodified scipy code) dispatch here."""
    ss = pytest.importorskip("scipy.special")
    x = np.linspace(0.1, 3.0, 7)

    def f(s):
        return lambda v: gnp.sum(s.gamma(v) + s.i0e(v) + s.i1(v) + s.erfcx(v) + s.kl_div(v, 1.5) + s.boxcox1p(v, 0.3))
    v, g = gradc.value_and_grad(f(ss))(x)
    want_v, want_g = gradc.value_and_grad(f(sp))(x)
    assert v == pytest.approx(want_v, rel=1e-15)
    np.testing.assert_allclose(g, want_g, rtol=1e-15)
    assert v == pytest.approx(float(f(ss)(x)), rel=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gammainc_gammaincc(dtype, backend):
    """Against mpmath (absolute 3e-14 for a <= 40: the prefactor exp(a log x - x -
    lgamma(a)) carries ~ eps times its terms of ~ 100; float32 3e-5: gammaln's own float32
    error, 2e-5 absolute, enters that exponent), the recurrence
    P(a + 1, x) = P(a, x) - x^a e^-x / Gamma(a + 1) and P + Q = 1 at 10,000 points; the
    derivative in x against the density, in a against differences."""
    r = np.random.default_rng(11)
    a, x = r.uniform(0.05, 40, 10000).astype(dtype), r.uniform(0, 80, 10000).astype(dtype)
    P = gradc.jit(sp.gammainc, backend=backend)
    Q = gradc.jit(sp.gammaincc, backend=backend)
    p, q = P(a, x), Q(a, x)
    assert p.dtype == q.dtype == dtype
    tol = 3e-14 if dtype == np.float64 else 3e-5
    want = _mp(lambda s, v: mpmath.gammainc(s, 0, v, regularized=True), a[:300], x[:300])
    np.testing.assert_allclose(p[:300], want, rtol=0, atol=tol)
    np.testing.assert_allclose(q[:300], 1 - want, rtol=0, atol=tol)
    small = want < 0.5      # Q where P is near 1, relative to its own size (the fraction, not 1 - P)
    wq = _mp(lambda s, v: mpmath.gammainc(s, v, mpmath.inf, regularized=True), a[:300][~small], x[:300][~small])
    np.testing.assert_allclose(q[:300][~small], wq, rtol=1e-12 if dtype == np.float64 else 1e-4, atol=0)
    np.testing.assert_allclose(p + q, 1.0, rtol=0, atol=2 * tol)
    a64, x64 = a.astype(float), x.astype(float)
    step = np.exp(a64 * np.log(np.where(x64 > 0, x64, 1)) - x64 - np.array([math.lgamma(v + 1) for v in a64]))
    np.testing.assert_allclose(P(a + dtype(1), x), p - np.where(x64 > 0, step, 0), rtol=0, atol=3 * tol)
    e = P(np.array([0, 1, 2, -1, 1, 2, 0, 3], dtype), np.array([1, 0, np.inf, 1, -1, np.nan, 0, 0], dtype))
    np.testing.assert_array_equal(e, [1, 0, 1, np.nan, np.nan, np.nan, np.nan, 0])
    if dtype == np.float64:
        g = gradc.grad(lambda v: gnp.sum(sp.gammainc(a64, v) - 2 * sp.gammaincc(a64, v)), backend=backend)(x64 + 0.01)
        dens = np.exp((a64 - 1) * np.log(x64 + 0.01) - x64 - 0.01 - np.array([math.lgamma(v) for v in a64]))
        np.testing.assert_allclose(g, 3 * dens, rtol=1e-13, atol=1e-300)
        # the derivative in a (tests/test_incgamma_grad.py checks it against mpmath closely):
        # d(P - Q)/da = 2 dP/da against mpmath's central difference of P, h = 1e-4 a, whose
        # error h^2 P'''/6 is ~ 1e-8 relative (1e-6 leaves room; absolute 1e-12 where P' ~ 0)
        ga = gradc.grad(lambda s: gnp.sum(sp.gammainc(s, x64[:20] + 0.5) - sp.gammaincc(s, x64[:20] + 0.5)),
                        backend=backend)(a64[:20])
        h = 1e-4 * a64[:20]
        fd = (_mp(lambda s, v: mpmath.gammainc(s, 0, v, regularized=True), a64[:20] + h, x64[:20] + 0.5)
              - _mp(lambda s, v: mpmath.gammainc(s, 0, v, regularized=True), a64[:20] - h, x64[:20] + 0.5)) / h
        np.testing.assert_allclose(ga, fd, rtol=1e-6, atol=1e-12)
        # the second derivative in x too: D ((a - 1)/x - 1)
        xs = x64[:50] + 0.5
        d2 = gradc.grad(lambda v: gnp.sum(gradc.grad(lambda w: gnp.sum(sp.gammainc(a64[:50], w)))(v)),
                        backend=backend)(xs)
        dens = np.exp((a64[:50] - 1) * np.log(xs) - xs - np.array([math.lgamma(v) for v in a64[:50]]))
        np.testing.assert_allclose(d2, dens * ((a64[:50] - 1) / xs - 1), rtol=1e-12, atol=1e-300)
