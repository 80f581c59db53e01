"""``gradc.random``'s Gamma family: ``gamma``, ``loggamma`` and what is built on them
(``beta``, ``dirichlet``, ``chisquare``, ``f``, ``t``), and ``poisson``, with
``jax.random``'s signatures.  Statistically JAX's distributions, not JAX's numbers (JAX's
rejection loops draw in another order).

Gamma(a) by Marsaglia and Tsang (*A simple method for generating gamma variables*, ACM
TOMS 2000): ``d = a - 1/3``, ``v = (1 + z / sqrt(9 d))^3`` for a normal z, accepted when
``log u < z^2/2 + d - d v + d log v``; for a < 1 the draw for a + 1 times ``u^(1/a)``,
kept as a logarithm (``loggamma`` of a = 1e-3 is about -1000, whose exp is 0).  Every
element draws a fresh (z, u) each round (keys ``fold_in(key, round)``) and keeps its first
accepted one, in a ``lax.while_loop`` that stops when all are accepted (acceptance is
above 95% per round, so a few rounds; at most _ROUNDS, an element never accepted by then,
probability < 0.05^64, takes its last proposal).

The draws differentiate in ``a`` by implicit reparameterization (Figurnov et al., 2018):
``d x / d a = -(dP/da) / (dP/dx)`` at the draw, P the Gamma CDF
(gradc.scipy._incgamma_grad), a ``custom_jvp`` rule, so the loop itself is never
differentiated (reverse mode works; jit, vmap too).
"""
from __future__ import annotations

import numpy as np

from . import numpy as gnp
from .custom_derivatives import custom_jvp
from .errors import ArgumentError
from .ops.elementwise import stop_gradient
from .random_base import _float_dtype, _shape, fold_in, normal, split, uniform
from .random_more import _params_shape
from .scipy._incgamma_grad import gamma_sample_dlog_da, while_loop
from .tracer import Value

__all__ = ["gamma", "loggamma", "beta", "dirichlet", "chisquare", "f", "t", "poisson"]

_ROUNDS = 64


def _positive(what, name, value):
    """A concrete parameter must be > 0 (traced: nan draws where it is not)."""
    if not isinstance(value, Value):
        v = np.asarray(value)
        if v.dtype.kind not in "biuf":
            raise ArgumentError(f"gradc.random.{what}: {name} must be a number or an array of numbers, "
                                f"got {v.dtype}")
        if np.any(~(v > 0)):
            raise ArgumentError(f"gradc.random.{what}: {name} must be > 0, got {v.min()}")


def _log_draw(key, a, shape, dtype):
    """log of Gamma(a) draws of ``shape`` (a broadcast to it, float ``dtype``, > 0)."""
    boost = a < 1
    ab = gnp.where(boost, a + dtype.type(1), a)
    d = ab - dtype.type(1 / 3)
    c = dtype.type(1) / gnp.sqrt(dtype.type(9) * d)
    keys = split(key, 2)
    rounds, k_boost = keys[0], keys[1]

    def cond(s):
        return (s[0] < _ROUNDS) & gnp.any(~s[2])

    def body(s):
        i, logx, done = s
        kk = split(fold_in(rounds, i), 2)
        z = normal(kk[0], shape, dtype)
        u = uniform(kk[1], shape, dtype)
        v = dtype.type(1) + c * z
        v3 = v * v * v
        pos = v > 0
        logv = gnp.log(gnp.where(pos, v3, dtype.type(1)))
        ok = pos & (gnp.log(u) < dtype.type(0.5) * z * z + d - d * v3 + d * logv)
        last = i == _ROUNDS - 1
        logx = gnp.where(~done & (ok | (last & pos)), gnp.log(d) + logv, logx)
        return i + 1, logx, done | ok

    init = (gnp.asarray(np.int64(0)), gnp.log(d), gnp.zeros(shape, dtype=bool))
    _, logx, _ = while_loop(cond, body, init)
    e = -gnp.log1p(-uniform(k_boost, shape, dtype))              # log u' = -e, u' in (0, 1]
    return gnp.where(boost, logx - e / a, logx)


def _implicit_value(a, logx):
    return logx


def _implicit_jvp(primals, tangents):
    (a, logx), (ta, tl) = primals, tangents
    a64, l64 = gnp.astype(a, np.float64), gnp.astype(logx, np.float64)
    dlog = gnp.astype(gamma_sample_dlog_da(a64, gnp.exp(l64), l64), logx.dtype)
    return _implicit(a, logx), tl + dlog * ta


_implicit = custom_jvp(_implicit_value)
_implicit.defjvp(_implicit_jvp)


def _loggamma(what, key, a, shape, dtype, name="a"):
    dtype = _float_dtype(dtype, what)
    _positive(what, name, a)
    shape = _params_shape(what, shape, a)
    a = gnp.broadcast_to(gnp.astype(gnp.asarray(a), dtype), shape)
    ok = a > 0
    safe = gnp.where(ok, a, dtype.type(1))
    logx = stop_gradient(_log_draw(key, stop_gradient(safe), shape, dtype))
    return gnp.where(ok, _implicit(safe, logx), dtype.type(np.nan))


def loggamma(key, a, shape=None, dtype=np.float64):
    """The logarithm of Gamma(a) draws (``jax.random.loggamma``), exact for small a where
    the draw itself underflows; differentiable in a (implicit reparameterization)."""
    return _loggamma("loggamma", key, a, shape, dtype)


def gamma(key, a, shape=None, dtype=np.float64):
    """Gamma(a) draws, rate 1 (``jax.random.gamma``): Marsaglia-Tsang with the u^(1/a)
    boost below 1; ``shape`` defaults to a's; differentiable in a (implicit
    reparameterization: d x / d a = -(dP/da) / (dP/dx) at the draw)."""
    return gnp.exp(_loggamma("gamma", key, a, shape, dtype))


def beta(key, a, b, shape=None, dtype=np.float64):
    """Beta(a, b) draws (``jax.random.beta``): X / (X + Y) for X ~ Gamma(a), Y ~ Gamma(b),
    from their logarithms (so small a and b do not give 0/0); differentiable in a and b."""
    _float_dtype(dtype, "beta")
    shape = _params_shape("beta", shape, a, b)
    ka, kb = split(key, 2)
    lx = _loggamma("beta", ka, a, shape, dtype)
    ly = _loggamma("beta", kb, b, shape, dtype, "b")
    m = stop_gradient(gnp.maximum(lx, ly))
    x, y = gnp.exp(lx - m), gnp.exp(ly - m)
    return x / (x + y)


def dirichlet(key, alpha, shape=None, dtype=np.float64):
    """Dirichlet(alpha) draws (``jax.random.dirichlet``), the last axis alpha's (K >= 1):
    normalized Gamma(alpha_k) draws, as a softmax of their logarithms; ``shape`` is the
    batch shape (alpha.shape[:-1] by default); differentiable in alpha."""
    alpha = alpha if isinstance(alpha, Value) else np.asarray(alpha)
    if len(alpha.shape) < 1:
        raise ArgumentError(f"gradc.random.dirichlet: alpha must have at least one axis (the K "
                            f"concentrations), got shape {tuple(alpha.shape)}")
    k = alpha.shape[-1]
    batch = tuple(alpha.shape[:-1]) if shape is None else _shape(shape)
    try:
        np.broadcast_shapes(batch, tuple(alpha.shape[:-1]))
        if tuple(np.broadcast_shapes(batch, tuple(alpha.shape[:-1]))) != batch:
            raise ValueError
    except ValueError:
        raise ArgumentError(f"gradc.random.dirichlet: shape {batch} does not broadcast with alpha's batch "
                            f"shape {tuple(alpha.shape[:-1])}") from None
    lg = _loggamma("dirichlet", key, alpha, batch + (k,), dtype, "alpha")
    lg = lg - stop_gradient(gnp.max(lg, axis=-1, keepdims=True))
    e = gnp.exp(lg)
    return e / gnp.sum(e, axis=-1, keepdims=True)


def chisquare(key, df, shape=None, dtype=np.float64):
    """Chi-square(df) draws (``jax.random.chisquare``): 2 Gamma(df / 2); differentiable in df."""
    dtype = _float_dtype(dtype, "chisquare")
    _positive("chisquare", "df", df)
    half = gnp.astype(gnp.asarray(df), dtype) * dtype.type(0.5)
    return dtype.type(2) * gnp.exp(_loggamma("chisquare", key, half, shape, dtype))


def f(key, dfnum, dfden, shape=None, dtype=np.float64):
    """F(dfnum, dfden) draws (``jax.random.f``): (X1 / dfnum) / (X2 / dfden) for
    chi-square X1, X2; differentiable in both."""
    dtype = _float_dtype(dtype, "f")
    _positive("f", "dfnum", dfnum)
    _positive("f", "dfden", dfden)
    shape = _params_shape("f", shape, dfnum, dfden)
    k1, k2 = split(key, 2)
    n = gnp.astype(gnp.asarray(dfnum), dtype)
    m = gnp.astype(gnp.asarray(dfden), dtype)
    return (chisquare(k1, n, shape, dtype) / n) / (chisquare(k2, m, shape, dtype) / m)


def t(key, df, shape=None, dtype=np.float64):
    """Student's t(df) draws (``jax.random.t``): ``z sqrt((df / 2) / G)`` for a normal z
    and G ~ Gamma(df / 2); differentiable in df."""
    dtype = _float_dtype(dtype, "t")
    _positive("t", "df", df)
    shape = _params_shape("t", shape, df)
    kn, kg = split(key, 2)
    half = gnp.astype(gnp.asarray(df), dtype) * dtype.type(0.5)
    z = normal(kn, shape, dtype)
    return z * gnp.sqrt(half / gnp.exp(_loggamma("t", kg, half, shape, dtype)))


def _knuth(key, lam, shape):
    """Poisson counts for lam < 10: the arrivals in [0, lam] of a rate-1 Poisson process,
    one exponential gap per round (lam + 1 rounds on average)."""
    def cond(s):
        return (s[0] < _POISSON_ROUNDS) & gnp.any(s[1] <= lam)

    def body(s):
        i, t, n = s
        t = t - gnp.log1p(-uniform(fold_in(key, i), shape, np.float64))
        return i + 1, t, n + gnp.where(t <= lam, 1, 0)

    init = (gnp.asarray(np.int64(0)), gnp.zeros(shape), gnp.zeros(shape, dtype=np.int64))
    return while_loop(cond, body, init)[2]


def _ptrs(key, lam, shape):
    """Poisson counts for lam >= 10: Hoermann's transformed rejection with squeeze (PTRS,
    *The transformed rejection method for generating Poisson random variables*, 1993), as
    numpy's random_poisson_ptrs: a fresh (U, V) per round, the first accepted k kept."""
    from .scipy._basic import gammaln_positive
    slam, loglam = gnp.sqrt(lam), gnp.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    log_invalpha = gnp.log(1.1239 + 1.1328 / (b - 3.4))
    vr = 0.9277 - 3.6224 / (b - 2.0)

    def cond(s):
        return (s[0] < _POISSON_ROUNDS) & gnp.any(~s[2])

    def body(s):
        i, n, done = s
        kk = split(fold_in(key, i), 2)
        u = uniform(kk[0], shape, np.float64) - 0.5
        v = uniform(kk[1], shape, np.float64)
        us = gnp.maximum(0.5 - gnp.abs(u), 1e-300)
        k = gnp.floor((2.0 * a / us + b) * u + lam + 0.43)
        quick = (us >= 0.07) & (v <= vr)
        kp = gnp.where(k >= 0, k, 0.0)
        slow = (k >= 0) & ~((us < 0.013) & (v > us)) & (
            gnp.log(v) + log_invalpha - gnp.log(a / (us * us) + b) <= -lam + kp * loglam - gammaln_positive(kp + 1.0))
        ok = (quick | slow) & (k >= 0) & (k < np.inf)
        n = gnp.where(~done & ok, k, n)
        return i + 1, n, done | ok

    init = (gnp.asarray(np.int64(0)), gnp.zeros(shape), gnp.zeros(shape, dtype=bool))
    return gnp.astype(while_loop(cond, body, init)[1], np.int64)


_POISSON_ROUNDS = 1000


def poisson(key, lam, shape=None, dtype=np.int64):
    """Poisson(lam) counts (``jax.random.poisson``; integers, no derivative): for lam < 10
    the arrivals in [0, lam] of a rate-1 Poisson process (Knuth), beyond Hoermann's PTRS
    rejection sampler; ``shape`` defaults to lam's.  0 where lam = 0; -1 where a traced
    lam is negative or not finite (a concrete one must be >= 0 and finite)."""
    dtype = np.dtype(np.int64 if dtype is None else dtype)             # (None: JAX's default int)
    if dtype.kind not in "iu":
        raise ArgumentError(f"gradc.random.poisson: dtype must be an integer type, got {dtype}")
    if not isinstance(lam, Value):
        v = np.asarray(lam)
        if v.dtype.kind not in "biuf" or np.any(~(v >= 0)) or np.any(~np.isfinite(v)):
            raise ArgumentError(f"gradc.random.poisson: lam must be finite numbers >= 0, got {lam!r}")
    shape = _params_shape("poisson", shape, lam)
    lam = gnp.broadcast_to(gnp.astype(gnp.asarray(lam), np.float64), shape)
    valid = (lam >= 0) & (lam < np.inf)
    small = lam < 10
    k1, k2 = split(key, 2)
    few = _knuth(k1, gnp.where(valid & small, lam, 0.0), shape)
    many = _ptrs(k2, gnp.where(valid & ~small, lam, 10.0), shape)
    return gnp.astype(gnp.where(valid, gnp.where(small, few, many), -1), dtype)
