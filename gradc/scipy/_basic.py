"""gradc.scipy.special's first functions (see special.py, which exports them)."""
from __future__ import annotations

import math

import numpy as _np

from .. import numpy as np
from ..ops.special import _floats, erf, erfc, erfinv, ndtri  # noqa: F401
from ..ops.stats import _eager as _concrete

expit = np.sigmoid


def xlogy(x, y):
    """x log y, 0 where x = 0 (whatever y, as JAX's).  Where x = 0 and log y is finite
    the derivative in x is log y (JAX's); where log y is not (y <= 0, inf, nan) the log
    reads 1 instead, so the value is 0, not 0 * nan, and the derivative is 0."""
    if _concrete(x, y):
        x, y = _np.asarray(x, dtype=float), _np.asarray(y, dtype=float)
        with _np.errstate(divide="ignore", invalid="ignore"):
            return _np.where(x == 0, 0.0, x * _np.log(_np.where(x == 0, 1.0, y)))
    bad = (x == 0) & ~((y > 0) & np.isfinite(y))
    return x * np.log(np.where(bad, 1.0, y))


def xlog1py(x, y):
    """x log1p(y), 0 where x = 0 (whatever y; the derivative as :func:`xlogy`'s)."""
    if _concrete(x, y):
        x, y = _np.asarray(x, dtype=float), _np.asarray(y, dtype=float)
        with _np.errstate(divide="ignore", invalid="ignore"):
            return _np.where(x == 0, 0.0, x * _np.log1p(_np.where(x == 0, 0.0, y)))
    bad = (x == 0) & ~((y > -1) & np.isfinite(y))      # as xlogy's: log1p(y) not finite
    return x * np.log1p(np.where(bad, 0.0, y))


def logit(p):
    """log(p / (1 - p))."""
    if _concrete(p):
        p = _np.asarray(p, dtype=float)
        with _np.errstate(divide="ignore", invalid="ignore"):
            return _np.log(p) - _np.log1p(-p)
    return np.log(p) - np.log1p(-p)


def entr(x):
    """-x log x for x > 0, 0 at 0, -inf below."""
    if _concrete(x):
        x = _np.asarray(x, dtype=float)
        with _np.errstate(divide="ignore", invalid="ignore"):
            return _np.where(x > 0, -x * _np.log(_np.where(x > 0, x, 1.0)), _np.where(x == 0, 0.0, -_np.inf))
    pos = x > 0
    return np.where(pos, -x * np.log(np.where(pos, x, 1.0)), np.where(x == 0, 0.0, -np.inf))


_LOG_PI = math.log(math.pi)
_SHIFT = 16          # the recurrence moves x to x + n >= 16, where Stirling's series converges
# Stirling's series for lgamma: B_2k / (2k (2k-1) x^(2k-1)), k = 1..7
_STIRLING = (1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360, 1 / 156)
# for digamma: -B_2k / (2k x^2k), k = 1..7
_DIGAMMA = (-1 / 12, 1 / 120, -1 / 252, 1 / 240, -1 / 132, 691 / 32760, -1 / 12)


def _shifted(x, m):
    """x shifted up by the smallest n with x + n >= _SHIFT (n <= _SHIFT), as m ops."""
    n = m.maximum(m.ceil(_SHIFT - x), 0.0)
    return n, x + n


def _series(z, coeffs, m, first_power):
    """sum c_k z^-(first_power + 2k), Horner in 1/z^2."""
    w = 1.0 / (z * z)
    acc = 0.0 * z + coeffs[-1]
    for c in coeffs[-2::-1]:
        acc = acc * w + c
    return acc / (z ** first_power)


def _gammaln(x, m):
    """lgamma(x) for x > 0 with the operations of numpy or gradc.numpy ``m``."""
    n, z = _shifted(x, m)
    lg = (z - 0.5) * m.log(z) - z + 0.5 * math.log(2 * math.pi) + _series(z, _STIRLING, m, 1)
    prod = 1.0 + 0.0 * x         # x (x+1) ... (x+n-1): the factors with k < n (below 32**16)
    for k in range(_SHIFT):
        prod = prod * m.where(k < n, x + k, 1.0)
    lg = m.where(x < _np.inf, lg - m.log(prod), _np.inf)        # lgamma(inf) = inf
    return m.where(x > 0, lg, _np.nan)


def _digamma(x, m):
    n, z = _shifted(x, m)
    psi = m.log(z) - 0.5 / z + _series(z, _DIGAMMA, m, 2)
    acc = 0.0 * x
    for k in range(_SHIFT):
        acc = acc + m.where(k < n, 1.0 / m.where(k < n, x + k, 1.0), 0.0)
    psi = m.where(x < _np.inf, psi - acc, _np.inf)
    return m.where(x > 0, psi, _np.nan)


def gammaln_positive(x):
    """log Gamma(x) for x > 0 (nan elsewhere): what the Gamma family and the
    distributions call, whose arguments are positive by construction."""
    if _concrete(x):
        with _np.errstate(all="ignore"):
            return _float_like(_gammaln(_np.asarray(x, dtype=float), _np), x)
    return _gammaln(x, np)


def _reflection(x, m):
    """Below 0, Gamma's reflection ``Gamma(x) Gamma(1 - x) = pi / sin(pi x)``: returns
    (x > 0, x for the positive branch, 1 - x for the reflected one, r = x - round(x)
    with sin(pi x) = +-sin(pi r) exactly, the poles 0, -1, -2, ...).  Each branch gets only
    values of its own range (r = 1/2 at the poles, -1/2 where x > 0 or x = -inf), so the
    branches not taken keep finite derivatives."""
    pos = x > 0
    xn = m.where(pos | (x == -_np.inf), -0.5, x)
    r = xn - m.round(xn)
    pole = r == 0.0
    return pos, m.where(pos, x, 1.0), 1.0 - xn, m.where(pole, 0.5, r), pole


def _lgamma_finite(x, m):
    """(log |Gamma(x)| away from the poles, finite at them, the poles)."""
    pos, xp, one_minus, r, pole = _reflection(x, m)
    reflected = _LOG_PI - m.log(m.abs(m.sin(math.pi * r))) - _gammaln(one_minus, m)
    return m.where(pos, _gammaln(xp, m), reflected), pole


def _gammaln_real(x, m):
    lg, pole = _lgamma_finite(x, m)
    return m.where(x == -_np.inf, -_np.inf, m.where(pole, _np.inf, lg))


def _digamma_real(x, m):
    pos, xp, one_minus, r, pole = _reflection(x, m)
    reflected = _digamma(one_minus, m) - math.pi / m.tan(math.pi * r)        # psi(1-x) - pi cot(pi x)
    at_zero = -m.copysign(_np.inf, x)                                       # -inf at +0, inf at -0
    out = m.where(pos, _digamma(xp, m), m.where(x == 0, at_zero, m.where(pole, _np.nan, reflected)))
    return m.where(x == -_np.inf, _np.nan, out)


def gammaln(x):
    """log |Gamma(x)| for every real x (``scipy.special.gammaln``, ``jax.lax.lgamma``):
    the series above 0, the reflection formula below; inf at the poles 0, -1, -2, ...,
    -inf at -inf.  Its derivative is digamma."""
    if _concrete(x):
        with _np.errstate(all="ignore"):
            return _float_like(_gammaln_real(_np.asarray(x, dtype=float), _np), x)
    return _gammaln_real(x, np)


def digamma(x):
    """psi(x) = d/dx log |Gamma(x)| for every real x (``scipy.special.digamma``): below 0
    ``psi(1 - x) - pi cot(pi x)``; -inf at +0 and inf at -0, nan at the negative integers
    and -inf."""
    if _concrete(x):
        with _np.errstate(all="ignore"):
            return _float_like(_digamma_real(_np.asarray(x, dtype=float), _np), x)
    return _digamma_real(x, np)


psi = digamma


def betaln(a, b):
    """log |B(a, b)| = gammaln(a) + gammaln(b) - gammaln(a + b), for a, b > 0."""
    return gammaln_positive(a) + gammaln_positive(b) - gammaln_positive(a + b)


# ----------------------------------------------------------------------------- the normal CDF
_SQRT_HALF = math.sqrt(0.5)
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _concrete_floats(x):
    """x as a float array: a float32 array stays float32; a Python number (weak, which
    numpy's result_type with float32 would make float32), ints and bools are float64."""
    x = _np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(_np.float64)


def ndtr(x):
    """The standard normal CDF, ``erfc(-x / sqrt 2) / 2``: accurate to a few ulp of its
    own value in the lower tail too (ndtr(-30) = 4.9e-198)."""
    if _concrete(x):
        return 0.5 * erfc(-_SQRT_HALF * _concrete_floats(x))
    return 0.5 * erfc(-_SQRT_HALF * _floats(x))


def _log_ndtr(x, m, lower):
    """log ndtr(x) with the operations of numpy or gradc.numpy ``m``, each branch fed only
    inputs of its own range (so the others' derivatives stay finite):

    * x > 0: ``log1p(-ndtr(-x))`` (log of a number near 1 would lose its digits);
    * lower < x <= 0: ``log(ndtr(x))`` (erfc is accurate in the tail);
    * x <= lower: the asymptotic series ``-x^2/2 - log(-x) - log sqrt(2 pi) +
      log(1 - 1/x^2 + 3/x^4 - ...)`` to its x**-20 term (below 1e-17 relative at x = -20)."""
    upper = x > 0.0
    mid = (x > lower) & ~upper
    hi = m.where(upper, x, 1.0)
    md = m.where(mid, x, -1.0)
    lo = m.where(upper | mid, lower, x)
    w = 1.0 / (lo * lo)
    series, term = 1.0 + 0.0 * lo, 1.0 + 0.0 * lo
    for k in range(1, 11):
        term = -term * (2 * k - 1) * w
        series = series + term
    tail = -0.5 * lo * lo - m.log(-lo) - _LOG_SQRT_2PI + m.log(series)
    return m.where(upper, m.log1p(-ndtr(-hi)), m.where(mid, m.log(ndtr(md)), tail))


def log_ndtr(x):
    """log of the standard normal CDF, accurate from the far lower tail (log_ndtr(-1e5)
    = -5e9) to the upper one (log_ndtr(10) = -7.6e-24), derivative ``phi(x) / ndtr(x)``
    by the same branches."""
    if _concrete(x):
        x = _concrete_floats(x)
        with _np.errstate(all="ignore"):
            return _log_ndtr(x, _np, -10.0 if x.dtype == _np.float32 else -20.0)
    x = _floats(x)
    return _log_ndtr(x, np, -10.0 if x.dtype == _np.float32 else -20.0)


# ----------------------------------------------------------------------------- softmax and its kin
from ..ops.compose import logsumexp  # noqa: E402,F401  (scipy's signature: axis, b, keepdims, return_sign)


def softmax(x, axis=None):
    """exp(x) / sum(exp(x)) over ``axis`` (scipy's default: every element)."""
    return np.softmax(x, axis=axis)


def log_softmax(x, axis=None):
    """x - logsumexp(x) over ``axis`` (scipy's default: every element), stably."""
    return np.log_softmax(x, axis=axis)



def _float_like(v, *xs):
    """``v`` in the float dtype of ``xs`` (float32 stays float32; constants in np.where
    would make it float64)."""
    dts = [getattr(x, "dtype", None) for x in xs]
    dt = _np.result_type(*[d if d is not None and d.kind == "f" else _np.float32 for d in dts])
    if all(d is None or d.kind != "f" for d in dts):
        dt = _np.float64
    return np.asarray(v).astype(dt) if getattr(v, "dtype", None) != dt else v


def _quietly(f):
    """``f`` without numpy's warnings on concrete input (unused branches divide by zero)."""
    import functools

    @functools.wraps(f)
    def g(*args):
        with _np.errstate(all="ignore"):
            return f(*args)
    return g


@_quietly
def rel_entr(x, y):
    """x log(x/y) for x, y > 0; 0 at x = 0, y >= 0; inf otherwise (``scipy.special.rel_entr``)."""
    both = (x > 0) & (y > 0)
    xs, ys = np.where(both, x, 1.0), np.where(both, y, 1.0)
    return _float_like(np.where(both, xs * np.log(xs / ys), np.where((x == 0) & (y >= 0), 0.0, _np.inf)), x, y)


@_quietly
def kl_div(x, y):
    """x log(x/y) - x + y for x, y > 0; y at x = 0, y >= 0; inf otherwise (``scipy.special.kl_div``)."""
    both = (x > 0) & (y > 0)
    xs, ys = np.where(both, x, 1.0), np.where(both, y, 1.0)
    return np.where(both, xs * np.log(xs / ys) - xs + ys, np.where((x == 0) & (y >= 0), y, _np.inf))


def _boxcox(logx, lmbda):
    zero = lmbda == 0
    ls = np.where(zero, 1.0, lmbda)
    return np.where(zero, logx, np.expm1(ls * logx) / ls)


@_quietly
def boxcox(x, lmbda):
    """The Box-Cox transform ``(x^lmbda - 1) / lmbda`` as ``expm1(lmbda log x) / lmbda``
    (log x at lmbda = 0) (``scipy.special.boxcox``)."""
    return _boxcox(np.log(x), lmbda)


@_quietly
def boxcox1p(x, lmbda):
    """``((1 + x)^lmbda - 1) / lmbda`` as ``expm1(lmbda log1p x) / lmbda`` (log1p x at
    lmbda = 0), accurate for small x (``scipy.special.boxcox1p``)."""
    return _boxcox(np.log1p(x), lmbda)
