"""gradc.scipy.stats' first distributions (see stats.py, which exports them)."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as _np

from .. import numpy as np
from ..ops.bind import is_python_number
from ._basic import gammaln_positive as gammaln  # arguments > 0 inside each support
from .special import betaln, log_ndtr, ndtr, ndtri, xlog1py, xlogy

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_NEG_INF = -_np.inf


def _z(x, loc, scale):
    return (x - loc) / scale


def _within(cond, logp):
    """``logp`` where ``cond``, -inf elsewhere."""
    return np.where(cond, logp, _NEG_INF)


def _input_dtype(args):
    """The dtype JAX gives a result of these arguments: the promotion of the arrays
    among them, Python numbers weak (None when no array is a float)."""
    strong = [_np.dtype(a.dtype) for a in args
              if hasattr(a, "dtype") and hasattr(a, "shape") and not is_python_number(a)]
    if not strong:
        return None
    dt = _np.result_type(*strong)
    return dt if dt.kind == "f" else None


def _keep_dtype(f):
    """``f`` whose float64 result is cast to float32 when its array arguments are
    float32: a parameter given as a Python number (``scale=1.0``, ``df=3.0``) makes a
    float64 term of its own (``log(scale)``, ``gammaln(df / 2)``), which promoted the
    whole result; in JAX it stays weak and the result float32."""
    def wrapped(*args, **kwargs):
        out = f(*args, **kwargs)
        want = _input_dtype(args + tuple(kwargs.values()))
        if want == _np.float32 and getattr(out, "dtype", None) == _np.float64:
            out = np.astype(out, _np.float32)
        return out
    wrapped.__name__, wrapped.__doc__ = getattr(f, "__name__", "f"), f.__doc__
    return wrapped


def _namespace(**functions):
    ns = SimpleNamespace(**{k: _keep_dtype(f) for k, f in functions.items()})
    if "logpdf" in functions:
        ns.pdf = lambda *a, **k: np.exp(ns.logpdf(*a, **k))
    if "logpmf" in functions:
        ns.pmf = lambda *a, **k: np.exp(ns.logpmf(*a, **k))
    return ns


# ----------------------------------------------------------------------------- continuous
def _norm_logpdf(x, loc=0.0, scale=1.0):
    z = _z(x, loc, scale)
    return -0.5 * z * z - np.log(scale) - _LOG_SQRT_2PI


norm = _namespace(
    logpdf=_norm_logpdf,
    cdf=lambda x, loc=0.0, scale=1.0: ndtr(_z(x, loc, scale)),
    logcdf=lambda x, loc=0.0, scale=1.0: log_ndtr(_z(x, loc, scale)),
    sf=lambda x, loc=0.0, scale=1.0: ndtr(-_z(x, loc, scale)),
    logsf=lambda x, loc=0.0, scale=1.0: log_ndtr(-_z(x, loc, scale)),
    ppf=lambda q, loc=0.0, scale=1.0: loc + scale * ndtri(q),
    isf=lambda q, loc=0.0, scale=1.0: loc - scale * ndtri(q),
)


def _t_logpdf(x, df, loc=0.0, scale=1.0):
    z = _z(x, loc, scale)
    return (gammaln(0.5 * (df + 1.0)) - gammaln(0.5 * df) - 0.5 * np.log(df * math.pi) - np.log(scale)
            - 0.5 * (df + 1.0) * np.log1p(z * z / df))


t = _namespace(logpdf=_t_logpdf)


def _laplace_cdf(x, loc=0.0, scale=1.0):
    z = _z(x, loc, scale)
    neg = z < 0
    return np.where(neg, 0.5 * np.exp(np.where(neg, z, 0.0)), 1.0 - 0.5 * np.exp(-np.where(neg, 0.0, z)))


laplace = _namespace(
    logpdf=lambda x, loc=0.0, scale=1.0: -np.abs(_z(x, loc, scale)) - np.log(2.0 * scale),
    cdf=_laplace_cdf,
)


def _logistic_logpdf(x, loc=0.0, scale=1.0):
    z = _z(x, loc, scale)
    return -z - 2.0 * np.softplus(-z) - np.log(scale)


logistic = _namespace(
    logpdf=_logistic_logpdf,
    cdf=lambda x, loc=0.0, scale=1.0: np.sigmoid(_z(x, loc, scale)),
    sf=lambda x, loc=0.0, scale=1.0: np.sigmoid(-_z(x, loc, scale)),
    ppf=lambda q, loc=0.0, scale=1.0: loc + scale * (np.log(q) - np.log1p(-q)),
)


def _cauchy_logpdf(x, loc=0.0, scale=1.0):
    z = _z(x, loc, scale)
    return -np.log1p(z * z) - np.log(math.pi * scale)


cauchy = _namespace(
    logpdf=_cauchy_logpdf,
    cdf=lambda x, loc=0.0, scale=1.0: 0.5 + np.arctan(_z(x, loc, scale)) / math.pi,
)


def _expon_logpdf(x, loc=0.0, scale=1.0):
    z = _z(x, loc, scale)
    return _within(z >= 0, -z - np.log(scale))


def _expon_cdf(x, loc=0.0, scale=1.0):
    z = _z(x, loc, scale)
    return np.where(z >= 0, -np.expm1(-np.where(z >= 0, z, 0.0)), 0.0)


expon = _namespace(logpdf=_expon_logpdf, cdf=_expon_cdf)


def _gamma_logpdf(x, a, loc=0.0, scale=1.0):
    z = _z(x, loc, scale)
    inside = z >= 0
    zs = np.where(inside, z, 1.0)
    return _within(inside, xlogy(a - 1.0, zs) - zs - gammaln(a) - np.log(scale))


gamma = _namespace(logpdf=_gamma_logpdf)


def _beta_logpdf(x, a, b, loc=0.0, scale=1.0):
    z = _z(x, loc, scale)
    inside = (z >= 0) & (z <= 1)
    zs = np.where(inside, z, 0.5)
    return _within(inside, xlogy(a - 1.0, zs) + xlog1py(b - 1.0, -zs) - betaln(a, b) - np.log(scale))


beta = _namespace(logpdf=_beta_logpdf)


def _uniform_logpdf(x, loc=0.0, scale=1.0):
    return _within((x >= loc) & (x <= loc + scale), 0.0 * x - np.log(scale))


def _uniform_cdf(x, loc=0.0, scale=1.0):
    return np.clip(_z(x, loc, scale), 0.0, 1.0)


uniform = _namespace(logpdf=_uniform_logpdf, cdf=_uniform_cdf)


def _mvn_logpdf(x, mean, cov):
    """x of (..., d): the log density of N(mean, cov) by cov's Cholesky factor L:
    -|L^-1 (x - mean)|^2 / 2 - sum log diag L - d log sqrt(2 pi)."""
    from ..ops.lapack import solve_triangular
    L = np.linalg.cholesky(cov)
    r = x - mean
    d = np.shape(cov)[-1]
    lead = r.shape[:-1]
    cols = np.reshape(r, (-1, d)).T if r.ndim != 1 else np.reshape(r, (d, 1))
    u = solve_triangular(L, cols, lower=True)
    maha = np.sum(u * u, axis=0)
    logdet = np.sum(np.log(np.diagonal(L)))
    out = -0.5 * maha - logdet - d * _LOG_SQRT_2PI
    return np.reshape(out, lead) if r.ndim != 1 else out[0]


multivariate_normal = _namespace(logpdf=_mvn_logpdf)


# ----------------------------------------------------------------------------- discrete
def _integer_in(k, low, high=None):
    ok = (k == np.floor(k)) & (k >= low)
    return ok if high is None else ok & (k <= high)


def _poisson_logpmf(k, mu, loc=0):
    k = k - loc
    inside = _integer_in(k, 0)
    ks = np.where(inside, k, 0.0)
    return _within(inside, xlogy(ks, mu) - gammaln(ks + 1.0) - mu)


poisson = _namespace(logpmf=_poisson_logpmf)


def _bernoulli_logpmf(k, p, loc=0):
    k = k - loc
    inside = _integer_in(k, 0, 1)
    ks = np.where(inside, k, 0.0)
    return _within(inside, xlogy(ks, p) + xlog1py(1.0 - ks, -p))


bernoulli = _namespace(logpmf=_bernoulli_logpmf)


def _binom_logpmf(k, n, p, loc=0):
    k = k - loc
    inside = _integer_in(k, 0, n)
    ks = np.where(inside, k, 0.0)
    return _within(inside, gammaln(n + 1.0) - gammaln(ks + 1.0) - gammaln(n - ks + 1.0)
                   + xlogy(ks, p) + xlog1py(n - ks, -p))


binom = _namespace(logpmf=_binom_logpmf)

