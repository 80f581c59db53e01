"""More of jax.scipy.stats (see stats.py for the conventions): chi2, dirichlet, geom,
gumbel_l, gumbel_r, nbinom, pareto, truncnorm, vonmises, gennorm, betabinom,
multinomial, and rankdata and sem.

Stable forms: a Gumbel's CDFs and survival functions through ``expm1``; truncnorm's
normalizer ``log(Phi(b) - Phi(a))`` from ``log_ndtr`` on the side of 0 where the
interval lies (both bounds in the upper tail: mirrored), so the far tails keep their
digits; vonmises' normalizer through ``i0e`` (``log I0(k) = log i0e(k) + k``).  The CDFs
of chi2 and gennorm use ``gammainc``, differentiable in the shape parameter too.
"""
from __future__ import annotations

import math

import numpy as _np

from .. import numpy as np
from ..ops.bessel import i0e
from ._basic import _float_like, betaln, gammaln_positive as gammaln, log_ndtr, xlog1py, xlogy  # (> 0)
from ._incgamma import gammainc, gammaincc
from ._stats_basic import _integer_in, _namespace, _within, _z

_LOG_2PI = math.log(2 * math.pi)
_NEG_INF = -_np.inf


def _log(v):
    """log of a parameter: math.log of a Python number (numpy's log of one would be a
    float64 scalar, which turns float32 results into float64)."""
    return math.log(v) if isinstance(v, (int, float)) else np.log(v)


# ----------------------------------------------------------------------------- chi2
def _chi2_logpdf(x, df, loc=0.0, scale=1.0):
    z = _z(x, loc, scale)
    inside = z >= 0
    zs = np.where(inside, z, 1.0)
    h = 0.5 * df
    return _within(inside, xlogy(h - 1.0, zs) - 0.5 * zs - gammaln(h) - h * math.log(2.0) - _log(scale))


def _chi2_cdf(x, df, loc=0.0, scale=1.0):
    z = _z(x, loc, scale)
    return gammainc(0.5 * df, np.maximum(0.5 * z, 0.0))


def _chi2_sf(x, df, loc=0.0, scale=1.0):
    z = _z(x, loc, scale)
    return gammaincc(0.5 * df, np.maximum(0.5 * z, 0.0))


chi2 = _namespace(logpdf=_chi2_logpdf, cdf=_chi2_cdf, sf=_chi2_sf,
                  logcdf=lambda *a, **k: np.log(_chi2_cdf(*a, **k)),
                  logsf=lambda *a, **k: np.log(_chi2_sf(*a, **k)))


# ----------------------------------------------------------------------------- gumbel
def _gumbel_r_logpdf(x, loc=0.0, scale=1.0):
    z = _z(x, loc, scale)
    return -z - np.exp(-z) - _log(scale)


def _gumbel_l_logpdf(x, loc=0.0, scale=1.0):
    z = _z(x, loc, scale)
    return z - np.exp(z) - _log(scale)


gumbel_r = _namespace(
    logpdf=_gumbel_r_logpdf,
    cdf=lambda x, loc=0.0, scale=1.0: np.exp(-np.exp(-_z(x, loc, scale))),
    logcdf=lambda x, loc=0.0, scale=1.0: -np.exp(-_z(x, loc, scale)),
    sf=lambda x, loc=0.0, scale=1.0: -np.expm1(-np.exp(-_z(x, loc, scale))),
    logsf=lambda x, loc=0.0, scale=1.0: np.log(-np.expm1(-np.exp(-_z(x, loc, scale)))),
    ppf=lambda q, loc=0.0, scale=1.0: loc - scale * np.log(-np.log(q)),
)
gumbel_l = _namespace(
    logpdf=_gumbel_l_logpdf,
    cdf=lambda x, loc=0.0, scale=1.0: -np.expm1(-np.exp(_z(x, loc, scale))),
    logcdf=lambda x, loc=0.0, scale=1.0: np.log(-np.expm1(-np.exp(_z(x, loc, scale)))),
    sf=lambda x, loc=0.0, scale=1.0: np.exp(-np.exp(_z(x, loc, scale))),
    logsf=lambda x, loc=0.0, scale=1.0: -np.exp(_z(x, loc, scale)),
    ppf=lambda q, loc=0.0, scale=1.0: loc + scale * np.log(-np.log1p(-q)),
)


# ----------------------------------------------------------------------------- pareto
def _pareto_parts(x, b, loc, scale):
    z = _z(x, loc, scale)
    inside = z >= 1
    return inside, np.log(np.where(inside, z, 1.0))


def _pareto_logpdf(x, b, loc=0.0, scale=1.0):
    inside, lz = _pareto_parts(x, b, loc, scale)
    return _within(inside, np.log(b) - (b + 1.0) * lz - _log(scale))


def _pareto_logsf(x, b, loc=0.0, scale=1.0):
    inside, lz = _pareto_parts(x, b, loc, scale)
    return np.where(inside, -b * lz, 0.0)


def _pareto_cdf(x, b, loc=0.0, scale=1.0):
    inside, lz = _pareto_parts(x, b, loc, scale)
    return np.where(inside, -np.expm1(-b * lz), 0.0)


def _pareto_logcdf(x, b, loc=0.0, scale=1.0):
    inside, lz = _pareto_parts(x, b, loc, scale)
    return _within(inside & (lz > 0), np.log1p(-np.exp(-b * np.where(lz > 0, lz, 1.0))))


def _pareto_ppf(q, b, loc=0.0, scale=1.0):
    # q outside [0, 1] is nan (scipy's): log1p(-q) alone is finite for q < 0
    ok = (q >= 0) & (q <= 1)
    return np.where(ok, loc + scale * np.exp(-np.log1p(-np.where(ok, q, 0.0)) / b), _np.nan)


pareto = _namespace(
    logpdf=_pareto_logpdf, logsf=_pareto_logsf, cdf=_pareto_cdf, logcdf=_pareto_logcdf,
    sf=lambda *a, **k: np.exp(_pareto_logsf(*a, **k)),
    ppf=lambda q, b, loc=0.0, scale=1.0: _pareto_ppf(q, b, loc, scale),
)


# ----------------------------------------------------------------------------- truncnorm
def _log_mass(lo, hi):
    """log(Phi(hi) - Phi(lo)) for lo <= hi, on the side of 0 where the interval lies:
    both above 0, mirrored (Phi(-lo) - Phi(-hi)); across 0, log1p(-Phi(lo) - Phi(-hi))."""
    right = lo > 0
    left = hi < 0
    mid = ~(right | left)
    lo_m, hi_m = np.where(right, -hi, lo), np.where(right, -lo, hi)      # both <= 0 now, unless mid
    la, lb = log_ndtr(np.where(mid, -1.0, lo_m)), log_ndtr(np.where(mid, 1.0, hi_m))
    tail = lb + np.log1p(-np.exp(la - lb))
    from ._basic import ndtr
    centre = np.log1p(-ndtr(np.where(mid, lo, 0.0)) - ndtr(-np.where(mid, hi, 0.0)))
    return np.where(mid, centre, tail)


def _truncnorm_logpdf(x, a, b, loc=0.0, scale=1.0):
    z = _z(x, loc, scale)
    inside = (z >= a) & (z <= b)
    zs = np.where(inside, z, 0.5 * (a + b))
    return _within(inside, -0.5 * zs * zs - 0.5 * _LOG_2PI - _log_mass(a, b) - _log(scale))


def _truncnorm_logcdf(x, a, b, loc=0.0, scale=1.0):
    z = _z(x, loc, scale)
    inside = (z > a) & (z < b)
    zs = np.where(inside, z, 0.5 * (a + b))
    return np.where(inside, _log_mass(a, zs) - _log_mass(a, b), _float_like(np.where(z >= b, 0.0, _NEG_INF), z))


def _truncnorm_logsf(x, a, b, loc=0.0, scale=1.0):
    z = _z(x, loc, scale)
    inside = (z > a) & (z < b)
    zs = np.where(inside, z, 0.5 * (a + b))
    return np.where(inside, _log_mass(zs, b) - _log_mass(a, b), _float_like(np.where(z <= a, 0.0, _NEG_INF), z))


truncnorm = _namespace(
    logpdf=_truncnorm_logpdf, logcdf=_truncnorm_logcdf, logsf=_truncnorm_logsf,
    cdf=lambda *a, **k: np.exp(_truncnorm_logcdf(*a, **k)),
    sf=lambda *a, **k: np.exp(_truncnorm_logsf(*a, **k)),
)


# ----------------------------------------------------------------------------- vonmises, gennorm
def _vonmises_logpdf(x, kappa, loc=0.0, scale=1.0):
    """kappa cos(x) - log(2 pi I0(kappa)) = kappa (cos x - 1) - log(2 pi i0e(kappa)), with
    cos x - 1 = -2 sin(x/2)^2 (which keeps its digits near x = 0, where kappa is large)."""
    z = _z(x, loc, scale)
    h = np.sin(0.5 * z)
    return -2.0 * kappa * h * h - _LOG_2PI - np.log(i0e(kappa)) - _log(scale)


vonmises = _namespace(logpdf=_vonmises_logpdf)


def _gennorm_logpdf(x, beta, loc=0.0, scale=1.0):
    z = _z(x, loc, scale)
    return np.log(0.5 * beta) - gammaln(1.0 / beta) - np.abs(z) ** beta - _log(scale)


def _gennorm_cdf(x, beta, loc=0.0, scale=1.0):
    z = _z(x, loc, scale)
    half = 0.5 * gammaincc(1.0 / beta, np.abs(z) ** beta)      # the tail beyond |z|
    return np.where(z < 0, half, 1.0 - half)


gennorm = _namespace(logpdf=_gennorm_logpdf, cdf=_gennorm_cdf)


# ----------------------------------------------------------------------------- discrete
def _geom_logpmf(k, p, loc=0):
    k = k - loc
    inside = _integer_in(k, 1)
    ks = np.where(inside, k, 1.0)
    return _within(inside, xlog1py(ks - 1.0, -p) + np.log(p))


geom = _namespace(logpmf=_geom_logpmf)


def _nbinom_logpmf(k, n, p, loc=0):
    k = k - loc
    inside = _integer_in(k, 0)
    ks = np.where(inside, k, 0.0)
    return _within(inside, gammaln(n + ks) - gammaln(ks + 1.0) - gammaln(n) + xlogy(n, p) + xlog1py(ks, -p))


nbinom = _namespace(logpmf=_nbinom_logpmf)


def _betabinom_logpmf(k, n, a, b, loc=0):
    k = k - loc
    inside = _integer_in(k, 0, n)
    ks = np.where(inside, k, 0.0)
    comb = gammaln(n + 1.0) - gammaln(ks + 1.0) - gammaln(n - ks + 1.0)
    return _within(inside, comb + betaln(ks + a, n - ks + b) - betaln(a, b))


betabinom = _namespace(logpmf=_betabinom_logpmf)


def _multinomial_logpmf(x, n, p):
    """x and p of (..., K): log n! - sum log x_i! + sum x_i log p_i where the counts are
    non-negative integers summing to n, -inf elsewhere."""
    ok = np.all(_integer_in(x, 0), axis=-1) & (np.sum(x, axis=-1) == n)
    xs = np.where(_integer_in(x, 0), x, 0.0)
    return _within(ok, gammaln(n + 1.0) + np.sum(xlogy(xs, p) - gammaln(xs + 1.0), axis=-1))


multinomial = _namespace(logpmf=_multinomial_logpmf)


def _dirichlet_logpdf(x, alpha):
    """x of (K, ...) (or K - 1 components, the last being 1 - their sum), alpha of (K,):
    sum (alpha_i - 1) log x_i - log B(alpha) on the simplex (sum within 1e-6 of 1, as
    floats of 32 bits allow), -inf off it."""
    K = np.shape(alpha)[0]
    if np.shape(x)[0] == K - 1:
        x = np.concatenate([x, (1.0 - np.sum(x, axis=0))[None]], axis=0)
    al = np.reshape(alpha, (K,) + (1,) * (np.ndim(x) - 1))
    ok = np.all(x >= 0, axis=0) & (np.abs(np.sum(x, axis=0) - 1.0) <= 1e-6)
    xs = np.where(x >= 0, x, 1.0)
    log_b = np.sum(gammaln(alpha)) - gammaln(np.sum(alpha))
    return _within(ok, np.sum(xlogy(al - 1.0, xs), axis=0) - log_b)


dirichlet = _namespace(logpdf=_dirichlet_logpdf)


# ----------------------------------------------------------------------------- rankdata, sem
_METHODS = ("average", "min", "max", "dense", "ordinal")


def rankdata(a, method="average", *, axis=None, nan_policy="propagate"):
    """Ranks from 1 (``scipy.stats.rankdata``), ties by ``method`` (average, min, max,
    dense, ordinal: by order of appearance); over the flattened array (``axis=None``) or
    along ``axis`` (one slice at a time: meant for modest numbers of slices).  No derivative (ranks are piecewise constant); NaN anywhere in a
    slice makes its ranks NaN (nan_policy='propagate', the only one)."""
    from ..errors import ArgumentError
    if method not in _METHODS:
        raise ArgumentError(f"rankdata: method must be one of {', '.join(_METHODS)}, got {method!r}")
    if nan_policy != "propagate":
        raise ArgumentError(f"rankdata: nan_policy must be 'propagate', got {nan_policy!r}")
    a = np.asarray(a)
    if axis is None:
        return _ranks_1d(np.reshape(a, (-1,)), method)
    moved = np.moveaxis(a, axis, -1)
    lead = np.shape(moved)[:-1]
    flat = np.reshape(moved, (-1, np.shape(moved)[-1]))
    # one slice at a time (their number is static: a trace unrolls it)
    out = np.stack([_ranks_1d(flat[i], method) for i in range(np.shape(flat)[0])])
    return np.moveaxis(np.reshape(out, lead + (np.shape(moved)[-1],)), -1, axis)


def _ranks_1d(a, method):
    n = np.shape(a)[0]
    order = np.argsort(a, stable=True)
    s = np.take(a, order)
    if method == "ordinal":
        r = np.argsort(order, stable=True) + 1.0
    elif method == "dense":
        new = np.concatenate([np.ones((1,), bool), s[1:] != s[:-1]]) if n > 1 else np.ones((n,), bool)
        r = np.take(np.cumsum(new.astype(_np.float64)), np.argsort(order, stable=True))
    else:
        lo = np.searchsorted(s, a, side="left") + 1.0
        hi = np.searchsorted(s, a, side="right") + 0.0
        r = {"min": lo, "max": hi, "average": 0.5 * (lo + hi)}[method]
    r = r.astype(_np.float64)
    return np.where(np.any(np.isnan(a)), _np.nan, r)


def sem(a, axis=0, ddof=1, nan_policy="propagate", *, keepdims=False):
    """The standard error of the mean, ``std(a, ddof) / sqrt(n)`` along ``axis``
    (``scipy.stats.sem``; None: every element)."""
    from ..errors import ArgumentError
    if nan_policy != "propagate":
        raise ArgumentError(f"sem: nan_policy must be 'propagate', got {nan_policy!r}")
    a = np.asarray(a)
    n = np.size(a) if axis is None else np.shape(a)[axis]
    return np.std(a, axis=axis, ddof=ddof, keepdims=keepdims) / math.sqrt(n)


# ----------------------------------------------------------------------------- gamma's CDFs
def _gamma_cdf(x, a, loc=0.0, scale=1.0):
    return gammainc(a, np.maximum(_z(x, loc, scale), 0.0))


def _gamma_sf(x, a, loc=0.0, scale=1.0):
    return gammaincc(a, np.maximum(_z(x, loc, scale), 0.0))


def _add_gamma_cdfs():
    """stats.gamma (logpdf, pdf) gains cdf, sf, logcdf, logsf."""
    from ._stats_basic import _keep_dtype, gamma
    gamma.cdf, gamma.sf = _keep_dtype(_gamma_cdf), _keep_dtype(_gamma_sf)
    gamma.logcdf = _keep_dtype(lambda *a, **k: np.log(_gamma_cdf(*a, **k)))
    gamma.logsf = _keep_dtype(lambda *a, **k: np.log(_gamma_sf(*a, **k)))


_add_gamma_cdfs()
