"""erf, erfc and gelu (gradc/ops/special.py) against Python's math.erf (libm's, within
an ulp), on every backend, in float64 and float32, at the pieces' ends, at 0, -0, the
infinities and nan, at sizes that split over threads and vectorize.

Tolerances: the fits are exact to 1e-18; Horner's rounding leaves a few ulp, bounded
here at 2 ulp (float64) and 4 (float32: its ulp is coarser than the rounding of the
float32 polynomial evaluation by a few steps) of math.erf's value.  Derivatives are
exp's (2/sqrt(pi) exp(-x^2)): within a few ulp of numpy's formula."""
from __future__ import annotations

import math

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
import gradc.scipy.special as sp

BACKENDS = ["numpy", "llvm", "c"]
EDGES = [0.0, -0.0, 1e-300, 1e-8, 0.5, 0.99999999, 1.0, 1.5, 2.0, 3.5, 5.9999999, 6.0, 6.5, 30.0, np.inf]


def _values(dtype):
    edges = np.array(EDGES + [-e for e in EDGES] + [np.nan])
    return np.concatenate([np.linspace(-7.0, 7.0, 40001), edges]).astype(dtype)


def _erf_ref(x):
    return np.array([math.erf(float(v)) if not np.isnan(v) else np.nan for v in x.ravel()]).reshape(x.shape)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype,ulps", [(np.float64, 2), (np.float32, 4)])
def test_erf_within_a_few_ulp_of_libm(dtype, ulps, backend):
    x = _values(dtype)
    got = gradc.jit(gnp.erf, backend=backend)(x)
    want = _erf_ref(x)
    assert got.dtype == dtype
    assert np.array_equal(np.isnan(got), np.isnan(x))
    num = ~np.isnan(x)
    spacing = np.spacing(np.maximum(np.abs(want[num]), np.finfo(dtype).tiny).astype(dtype)).astype(np.float64)
    assert np.max(np.abs(got[num] - want[num]) / spacing) <= ulps
    assert np.array_equal(np.signbit(got[num]), np.signbit(want[num].astype(dtype)))    # erf(-0) = -0


@pytest.mark.parametrize("backend", BACKENDS)
def test_erf_derivatives_are_exact_at_rank_3(backend):
    """The gradient is the closed form, not the fit's derivative; rank 3, a size that
    splits over threads; the second derivative (-2x times the first) too."""
    x = np.random.default_rng(0).standard_normal((16, 64, 33)) * 2
    w = np.random.default_rng(1).standard_normal(x.shape)
    g = gradc.grad(lambda v: gnp.sum(gnp.erf(v) * w), backend=backend)(x)
    d = 2 / np.sqrt(np.pi) * np.exp(-x * x)
    np.testing.assert_allclose(g, w * d, rtol=4e-16 * 8, atol=1e-300)
    h = gradc.grad(lambda v: gnp.sum(gradc.grad(lambda u: gnp.sum(gnp.erf(u)))(v) * w), backend=backend)(x)
    np.testing.assert_allclose(h, w * (-2 * x) * d, rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize("backend", BACKENDS)
def test_exact_and_tanh_gelu_against_numpy(backend):
    """gelu(x) = x Phi(x), with its derivative Phi(x) + x phi(x); the tanh form as
    jax.nn.gelu's default writes it."""
    x = np.random.default_rng(2).standard_normal((512, 40)) * 3
    phi = np.exp(-x * x / 2) / np.sqrt(2 * np.pi)
    Phi = 0.5 * (1 + _erf_ref(x / np.sqrt(2)))
    v, g = gradc.value_and_grad(lambda u: gnp.sum(gnp.gelu(u)), backend=backend)(x)
    assert v == pytest.approx(np.sum(x * Phi), rel=1e-13)
    np.testing.assert_allclose(g, Phi + x * phi, rtol=1e-13, atol=1e-15)
    t = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(gradc.jit(lambda u: gnp.gelu(u, approximate=True), backend=backend)(x), t,
                               rtol=1e-14, atol=1e-15)


def _erfc_ref(x):
    import mpmath
    mpmath.mp.dps = 40
    return np.array([float(mpmath.erfc(mpmath.mpf(float(v)))) if not np.isnan(v) else np.nan for v in x])


@pytest.mark.parametrize("dtype,ulps", [(np.float64, 4), (np.float32, 6)])
@pytest.mark.parametrize("backend", BACKENDS)
def test_erfc_within_a_few_ulp_of_its_own_value_into_the_tail(dtype, ulps, backend):
    """erfc against mpmath, in ulp of erfc itself (not of 1): where erfc is 1e-300
    too.  The fits are exact to 1e-19; Horner's rounding, the product and the two exps
    of exp(-x^2) leave 3 ulp (float64) and 4.4 (float32, in its coarser steps), measured;
    libm (backend c) 2 and 2.6.  Below the smallest normal: within one subnormal step."""
    x = np.concatenate([np.linspace(-7.0, 30.0, 8001), EDGES, [-e for e in EDGES], [27.2, 27.3, 9.9, 10.0, 0.7]])
    x = x.astype(dtype)
    got = gradc.jit(gnp.erfc, backend=backend)(x).astype(np.float64)
    want = _erfc_ref(x.astype(np.float64))
    rounded = want.astype(dtype).astype(np.float64)
    normal = rounded >= np.finfo(dtype).tiny
    ulp = np.abs(got - want)[normal] / np.spacing(rounded[normal].astype(dtype)).astype(np.float64)
    assert ulp.max() <= ulps, (ulp.max(), x[normal][np.argmax(ulp)])
    below = ~normal & np.isfinite(want)
    assert np.abs(got - rounded)[below].max() <= np.finfo(dtype).smallest_subnormal
    assert np.array_equal(np.isnan(got), np.isnan(x))


def test_erfc_derivative_in_the_tail():
    x = np.array([-3.0, 0.2, 0.7, 2.5, 8.0, 20.0])
    g = gradc.grad(lambda v: gnp.sum(gnp.erfc(v)))(x)
    np.testing.assert_allclose(g, -2 / np.sqrt(np.pi) * np.exp(-x * x), rtol=1e-14, atol=0)


def test_erfc_and_concrete_inputs():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 2.0, 4.0])
    want = np.array([math.erfc(v) for v in x])
    np.testing.assert_allclose(gradc.jit(gnp.erfc)(x), want, rtol=0, atol=2e-16)
    np.testing.assert_allclose(gnp.erf(x), _erf_ref(x), rtol=0, atol=2.3e-16)     # outside a trace
    assert gnp.erf(np.float32(0.5)).dtype == np.float32


def _mp_erfinv(x):
    import mpmath
    mpmath.mp.dps = 50
    return np.array([float(mpmath.erfinv(mpmath.mpf(float(v)))) for v in x])


def _mp_ndtri(p):
    import mpmath
    mpmath.mp.dps = 50

    def one(v):
        v = mpmath.mpf(float(v))
        if v < 0.5:          # from the log of the CDF: exact for p far below 1e-17
            return mpmath.findroot(lambda t: mpmath.log(mpmath.ncdf(t)) - mpmath.log(v),
                                   -mpmath.sqrt(-2 * mpmath.log(v)))
        return mpmath.sqrt(2) * mpmath.erfinv(2 * v - 1)
    return np.array([float(one(v)) for v in p])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype,ulps", [(np.float64, 4), (np.float32, 3)])
def test_erfinv_within_a_few_ulp_up_to_the_ends(dtype, ulps, backend):
    """Against mpmath, in ulp of the value: LLVM and the numpy evaluator evaluate the
    fits (exact to 6e-18; measured 3 ulp in float64, 2 in float32 from the product and
    Horner's rounding), backend c Newton's method on libm's erf and erfc (1 ulp)."""
    x = np.concatenate([np.linspace(-0.999, 0.999, 2001), 1 - np.logspace(-16, -1, 80),
                        -(1 - np.logspace(-16, -1, 80)), [0.5, -0.5, 1e-300, 0.0, -0.0]]).astype(dtype)
    x = x[np.abs(x) < 1]
    want = _mp_erfinv(x.astype(np.float64))
    got = gradc.jit(sp.erfinv, backend=backend)(x)
    assert got.dtype == dtype
    nz = want != 0
    ulp = np.abs(got.astype(np.float64) - want)[nz] / np.spacing(np.abs(want[nz]).astype(dtype)).astype(np.float64)
    assert ulp.max() <= ulps, (ulp.max(), x[nz][np.argmax(ulp)])
    assert np.array_equal(np.signbit(got[~nz]), np.signbit(x[~nz]))       # erfinv(-0) = -0
    ends = gradc.jit(sp.erfinv, backend=backend)(np.array([1.0, -1.0, 1.5, -2.0, np.nan], dtype))
    assert ends[0] == np.inf and ends[1] == -np.inf and np.isnan(ends[2:]).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_ndtri_into_the_far_tail(backend):
    """ndtri from p = 1e-300 to 1 - 1e-16 against mpmath (LLVM: 4 ulp measured; c 2);
    0 and 1 give -inf and inf, outside [0, 1] nan; and ndtr(ndtri(p)) = p to the
    conditioning of ndtr."""
    p = np.concatenate([np.logspace(-300, -1, 120), np.linspace(0.01, 0.99, 197), 1 - np.logspace(-16, -1, 40)])
    want = _mp_ndtri(p)
    got = gradc.jit(sp.ndtri, backend=backend)(p)
    ulp = np.abs(got - want)[want != 0] / np.spacing(np.abs(want[want != 0]))
    assert ulp.max() <= 5, (ulp.max(), p[want != 0][np.argmax(ulp)])
    ends = gradc.jit(sp.ndtri, backend=backend)(np.array([0.0, 1.0, -0.1, 1.1, np.nan]))
    assert ends[0] == -np.inf and ends[1] == np.inf and np.isnan(ends[2:]).all()
    # the round trip is conditioned by ndtr: a relative error e in y moves ndtr(y) by
    # y^2 e relative: 8 eps (1 + y^2)
    mid, y = p[p < 0.99], want[p < 0.99]
    back = gradc.jit(lambda v: sp.ndtr(sp.ndtri(v)), backend=backend)(mid)
    assert np.all(np.abs(back - mid) <= 8 * np.finfo(float).eps * (1 + y * y) * mid)


@pytest.mark.parametrize("backend", BACKENDS)
def test_erfinv_and_ndtri_derivatives(backend):
    """The derivative is the reciprocal of erf's (ndtr's) at the result: sqrt(pi)/2
    exp(y^2) and sqrt(2 pi) exp(y^2 / 2); second derivatives through the result."""
    x = np.array([-0.99, -0.3, 0.0, 0.4, 0.999])
    y = _mp_erfinv(x)
    g = gradc.grad(lambda v: gnp.sum(sp.erfinv(v)), backend=backend)(x)
    np.testing.assert_allclose(g, np.sqrt(np.pi) / 2 * np.exp(y * y), rtol=1e-13)
    h = gradc.grad(lambda v: gnp.sum(gradc.grad(lambda u: gnp.sum(sp.erfinv(u)))(v)), backend=backend)(x)
    np.testing.assert_allclose(h, 2 * y * (np.sqrt(np.pi) / 2 * np.exp(y * y)) ** 2, rtol=1e-12, atol=1e-14)
    p = np.array([1e-30, 0.02, 0.5, 0.9])
    z = _mp_ndtri(p)
    g = gradc.grad(lambda v: gnp.sum(sp.ndtri(v)), backend=backend)(p)
    np.testing.assert_allclose(g, np.sqrt(2 * np.pi) * np.exp(z * z / 2), rtol=1e-13)
