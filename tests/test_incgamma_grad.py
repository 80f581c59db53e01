"""The derivative of the regularized incomplete Gamma function in its shape a
(gradc.scipy._incgamma_grad, reached through ``grad`` of gammainc/gammaincc): against
mpmath's derivative of P (or of Q where x > a, so that P ~ 1 does not swamp it) at 50
digits, over a in [1e-3, 1e3] and x in (0, 1e3], on every backend, float64 and float32.

Tolerances: float64 relative 1e-11: the result is exp(E) times a sum, and E = a log x - x
- lgamma(a) reaches ~ 7000 at a ~ 1e3, so its rounding alone is eps |E| ~ 1.5e-12 (measured
worst 1.6e-12); the sums converge to eps.  float32: the arguments are exact float32 numbers
and the computation is float64, so only the final rounding remains: 2^-24 ~ 6e-8; 2e-7.
dP/da < 0 everywhere, so relative errors are meaningful (no zeros).
"""
from __future__ import annotations

import mpmath
import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
import gradc.scipy.special as sp
from gradc.scipy._incgamma_grad import gammainc_grad_a

BACKENDS = ["numpy", "llvm", "c"]


def _dp_da(a, x):
    with mpmath.workdps(50):
        a, x = mpmath.mpf(float(a)), mpmath.mpf(float(x))
        if x < a:
            return float(mpmath.diff(lambda t: mpmath.gammainc(t, 0, x, regularized=True), a))
        return -float(mpmath.diff(lambda t: mpmath.gammainc(t, x, mpmath.inf, regularized=True), a))


def _points(dtype, n=160):
    r = np.random.default_rng(5)
    a = 10.0 ** r.uniform(-3, 3, n)
    x = np.where(np.arange(n) % 2 == 0, a * np.exp(r.normal(0, 0.3, n)), 10.0 ** r.uniform(-3, 3, n))
    x = np.minimum(x, 1e3)
    a, x = a.astype(dtype), x.astype(dtype)
    want = np.array([_dp_da(u, v) for u, v in zip(a, x)])
    keep = np.abs(want) > 1e-290          # (mpmath's difference of a P that rounds to 1 or 0)
    return a[keep], x[keep], want[keep]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_against_mpmath(dtype, backend):
    a, x, want = _points(dtype)
    assert len(want) > 100
    g = gradc.jit(gradc.grad(lambda s, v: gnp.sum(sp.gammainc(s, v))), backend=backend)(a, x)
    gq = gradc.jit(gradc.grad(lambda s, v: gnp.sum(sp.gammaincc(s, v))), backend=backend)(a, x)
    assert g.dtype == gq.dtype == dtype
    tol = 1e-11 if dtype == np.float64 else 2e-7
    normal = np.abs(want) > np.finfo(dtype).tiny          # (below, float32's result underflows)
    np.testing.assert_allclose(g.astype(float)[normal], want[normal], rtol=tol, atol=0)
    np.testing.assert_allclose(gq.astype(float)[normal], -want[normal], rtol=tol, atol=0)
    assert np.all(np.abs(g.astype(float)[~normal]) <= 2 * np.finfo(dtype).tiny)


def test_eager_vmap_jvp_and_edges():
    a = np.array([1e-3, 0.5, 3.0, 50.0, 999.0])
    x = np.array([2e-3, 2.0, 2.5, 60.0, 1000.0])
    want = np.array([_dp_da(u, v) for u, v in zip(a, x)])
    np.testing.assert_allclose(gammainc_grad_a(a, x), want, rtol=1e-11)
    per = gradc.jit(gradc.vmap(gradc.grad(lambda s, v: sp.gammainc(s, v))))(a, x)
    np.testing.assert_allclose(per, want, rtol=1e-11)
    t = gradc.jvp(lambda s: sp.gammainc(s, x), (a,), (np.full(5, 2.0),))[1]
    np.testing.assert_allclose(t, 2 * want, rtol=1e-11)
    # the mixed derivative d/dx dP/da = d/da density = density (log x - psi(a)), forward mode
    # through the loop, against mpmath
    with mpmath.workdps(40):
        mixed = [float(mpmath.diff(lambda s: mpmath.exp((s - 1) * mpmath.log(v) - v - mpmath.loggamma(s)), u))
                 for u, v in zip(a, x)]
        d2 = [float(mpmath.diff(lambda s: mpmath.gammainc(s, 0, v, regularized=True), u, 2)) for u, v in zip(a, x)]
    h = gradc.jacfwd(lambda v: gradc.grad(lambda s: gnp.sum(sp.gammainc(s, v)))(a))(x)
    np.testing.assert_allclose(np.diag(h), mixed, rtol=1e-9)
    h = gradc.grad(lambda s: gnp.sum(gradc.grad(lambda v: gnp.sum(sp.gammainc(s, v)))(x)))(a)
    np.testing.assert_allclose(h, mixed, rtol=1e-9)
    # the second derivative in a, forward over reverse (through the loop), against mpmath
    h = gradc.jacfwd(lambda s: gradc.grad(lambda t: gnp.sum(sp.gammainc(t, x)))(s))(a)
    np.testing.assert_allclose(np.diag(h), d2, rtol=1e-7)
    # scipy's ends: 0 at x = 0 and x = inf, nan for a <= 0 or x < 0
    e = gammainc_grad_a(np.array([2.0, 2.0, 0.0, -1.0, 2.0]), np.array([0.0, np.inf, 1.0, 1.0, -1.0]))
    np.testing.assert_array_equal(e, [0.0, 0.0, np.nan, np.nan, np.nan])


def test_reverse_over_reverse_in_a_is_refused():
    """The second derivative in a is forward mode only (above); reverse over reverse runs
    into the while_loop and raises, never a silent 0."""
    with pytest.raises(gradc.UnsupportedError, match="while_loop"):
        gradc.grad(lambda s: gnp.sum(gradc.grad(lambda t: gnp.sum(sp.gammainc(t, 2.0)))(s)))(np.array([1.5]))


def test_loops_stop_when_every_element_has_converged(monkeypatch):
    """Each element's state freezes once converged, so an array stops with its slowest
    element (regression: past convergence the fraction's rounding flickered and 10^4
    elements of a = 5 ran all 2000 steps).  The values stay mpmath's."""
    import gradc.scipy._incgamma_grad as m
    steps = []
    inner = m.while_loop

    def counting(cond, body, init):
        out = inner(cond, body, init)
        steps.append(int(out[0]))
        return out
    monkeypatch.setattr(m, "while_loop", counting)
    x = np.random.default_rng(2).gamma(5.0, size=10000)
    got = m.gammainc_grad_a(np.full(10000, 5.0), x)
    assert max(steps) < 100, steps
    idx = np.arange(0, 10000, 500)
    np.testing.assert_allclose(got[idx], [_dp_da(5.0, v) for v in x[idx]], rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lax_names(dtype):
    """lax.igamma_grad_a is dP/da; lax.random_gamma_grad is -(dP/da) / (dP/dx), the
    density from mpmath."""
    a = np.array([1e-3, 0.4, 2.0, 30.0, 700.0], dtype)
    x = np.array([1e-5, 0.3, 4.0, 25.0, 720.0], dtype)
    want = np.array([_dp_da(u, v) for u, v in zip(a, x)])
    dens = np.array([float(mpmath.exp((mpmath.mpf(float(u)) - 1) * mpmath.log(float(v)) - float(v)
                                      - mpmath.loggamma(float(u)))) for u, v in zip(a, x)])
    tol = 1e-11 if dtype == np.float64 else 2e-7
    got = gradc.jit(gradc.lax.igamma_grad_a)(a, x)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=tol)
    np.testing.assert_allclose(gradc.lax.random_gamma_grad(a, x), -want / dens, rtol=tol)
