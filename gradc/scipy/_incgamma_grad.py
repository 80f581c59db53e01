"""The derivative of the regularized incomplete Gamma function P(a, x) (and of
Q = 1 - P) with respect to the shape ``a``, and the implicit derivative of a Gamma
sample, d x / d a = -(dP/da) / (dP/dx) at P(a, x) fixed (Figurnov et al., *Implicit
reparameterization gradients*, 2018).

Computed in float64 (float32 arguments are widened and the result rounded back) by one
of two expansions, each differentiated term by term and summed until its terms stop
changing the sum (a ``lax.while_loop``, each element frozen once converged: a few tens of
steps, up to ~ 300 for a ~ 1000 near x ~ a; at most _MAX_STEPS):

* x < a + 1: P's series ``P = exp(M) S``, ``M = a log x - x - log Gamma(a + 1)``,
  ``S = sum_k u_k``, ``u_0 = 1``, ``u_k = u_(k-1) x / (a + k)``; then
  ``dP/da = exp(M) ((log x - psi(a + 1)) S + D)``, ``D = sum_k u_k h_k``,
  ``h_k = -sum_(j<=k) 1 / (a + j)``;
* beyond: Legendre's continued fraction ``Q = exp(L) F``, ``L = a log x - x - log
  Gamma(a)``, its convergents A_n / B_n and their derivatives in a by the three-term
  recurrences (rescaled every step); ``dQ/da = exp(L) ((log x - psi(a)) F + dF/da)``.

Both are written as ``exp(E) * B`` so that the sample's derivative (divided by the
density ``x^(a-1) e^-x / Gamma(a) = exp(L) / x``) needs no exponential, and stays finite
where x underflows (``d log x / d a`` for ``loggamma``).

The derivative of these derivatives (second order in a) is forward-mode only (jvp,
jacfwd: through the loop); reverse mode over them raises UnsupportedError, as
``lax.while_loop`` does.
"""
from __future__ import annotations

import numpy as _np

from .. import numpy as np
from ..control_while import while_loop as _traced_while
from ..custom_derivatives import custom_jvp
from . import _incgamma
from ._basic import digamma, gammaln_positive as gammaln

_MAX_STEPS = 2000
_EPS = 2.0 ** -53


def while_loop(cond, body, val):
    """``lax.while_loop`` (which imports this module: gradc.lax exports igamma_grad_a)."""
    from ..tracer import Value
    while True:
        go = cond(val)
        if isinstance(go, Value):
            return _traced_while(cond, body, val)
        if not go:
            return val
        val = body(val)


def _frozen(old, new, live):
    """The step's state where the element was still converging, the old one where it had
    converged (its state stays put: past convergence the recurrences' rounding drifts, and
    one element's flicker would keep every element looping), with the new live flags."""
    go = old[-1] > 0
    out = tuple(np.where(go, n, o) for o, n in zip(old[1:-1], new))
    return (old[0] + 1.0, *out, np.where(go & live, 1.0, 0.0))


def _series(a, x, logx):
    """(M, B) with P = exp(M) S and dP/da = exp(M) B (x < a + 1 fed in)."""
    zero = 0.0 * x
    init = (np.asarray(0.0), zero + 1.0, zero + 1.0, zero, zero, zero + 1.0)

    def cond(c):
        return (c[0] < _MAX_STEPS) & np.any(c[5] > 0)

    def body(c):
        k, u, s, h, d, _ = c
        k = k + 1.0
        u = u * x / (a + k)
        h = h - 1.0 / (a + k)
        s, d = s + u, d + u * h
        live = (np.abs(u) > _EPS * np.abs(s)) | (np.abs(u * h) > _EPS * np.abs(d))
        return _frozen(c, (u, s, h, d), live)

    _, _, s, _, d, _ = while_loop(cond, body, init)
    m = a * logx - x - gammaln(a + 1.0)
    return m, (logx - digamma(a + 1.0)) * s + d


def _fraction(a, x, logx):
    """(L, B) with Q = exp(L) F and dQ/da = exp(L) B (x >= a + 1 fed in).

    F = 1 / (b_1 + c_2 / (b_2 + c_3 / ...)), b_n = x + 2n - 1 - a, c_(n+1) = -n (n - a):
    A_n = b_n A_(n-1) + c_n A_(n-2) (B_n likewise), and their derivatives in a with
    db_n/da = -1, dc_(n+1)/da = n."""
    zero = 0.0 * x
    b1 = x + 1.0 - a
    # (n, A_(n-1), A_n, B_(n-1), B_n, dA_(n-1), dA_n, dB_(n-1), dB_n, live) at n = 1,
    # scaled by 1/B_1: A_0 = 0, A_1 = 1, B_0 = 1, B_1 = b_1
    init = (np.asarray(1.0), zero, 1.0 / b1, 1.0 / b1, zero + 1.0, zero, zero, zero, -1.0 / b1, zero + 1.0)

    def cond(c):
        return (c[0] < _MAX_STEPS) & np.any(c[9] > 0)

    def body(c):
        n, a0, a1, bb0, bb1, da0, da1, db0, db1, _ = c
        f_old, df_old = a1 / bb1, (da1 - a1 / bb1 * db1) / bb1
        cn, dcn = -n * (n - a), n
        bn = x + 2.0 * n + 1.0 - a
        a2 = bn * a1 + cn * a0
        b2 = bn * bb1 + cn * bb0
        da2 = -a1 + bn * da1 + dcn * a0 + cn * da0
        db2 = -bb1 + bn * db1 + dcn * bb0 + cn * db0
        r = 1.0 / b2                                        # rescale: B_n = 1
        a1, a2, bb1, da1, da2, db1, db2 = a1 * r, a2 * r, bb1 * r, da1 * r, da2 * r, db1 * r, db2 * r
        f, df = a2, da2 - a2 * db2
        # (a few ulp: the recurrence's rounding moves the last bit; dF/da may cross 0, so its
        # change is measured against |dF/da| + |F| too)
        live = (np.abs(f - f_old) > 4 * _EPS * np.abs(f)) | (np.abs(df - df_old) > 4 * _EPS * (np.abs(df) + np.abs(f)))
        return _frozen(c, (a1, a2, bb1, zero + 1.0, da1, da2, db1, db2), live)

    c = while_loop(cond, body, init)
    f = c[2] / c[4]
    df = (c[6] - f * c[8]) / c[4]
    return a * logx - x - gammaln(a), (logx - digamma(a)) * f + df


def _parts(a, x, logx):
    """(series?, E, B): dP/da = exp(E) B where x < a + 1, -exp(E) B beyond (float64
    a > 0, x > 0; each expansion fed only arguments of its own range)."""
    ser = x < a + 1.0
    aS, xS, lS = np.where(ser, a, 1.0), np.where(ser, x, 0.5), np.where(ser, logx, _np.log(0.5))
    aF, xF, lF = np.where(ser, 1.0, a), np.where(ser, 3.0, x), np.where(ser, _np.log(3.0), logx)
    ms, bs = _series(aS, xS, lS)
    mf, bf = _fraction(aF, xF, lF)
    return ser, np.where(ser, ms, mf), np.where(ser, bs, -bf)


def _widen(a, x):
    a, x = np.asarray(a), np.asarray(x)
    dt = _np.result_type(*[v.dtype if v.dtype.kind == "f" else _np.float32 for v in (a, x)])
    if a.dtype.kind != "f" and x.dtype.kind != "f":
        dt = _np.dtype(_np.float64)
    a, x = np.broadcast_arrays(np.astype(a, _np.float64), np.astype(x, _np.float64))
    return a, x, dt


def gammainc_grad_a(a, x):
    """dP(a, x)/da, P = gammainc (float64 inside; a > 0, x >= 0, nan elsewhere; 0 at
    x = 0 and x = inf).  d gammaincc / da is its negative."""
    a, x, dt = _widen(a, x)
    with _np.errstate(all="ignore"):
        ok = (a > 0) & (x > 0) & (a < _np.inf) & (x < _np.inf)
        a1, x1 = np.where(ok, a, 1.0), np.where(ok, x, 1.0)
        _, e, b = _parts(a1, x1, np.log(x1))
        out = np.where(ok, np.exp(e) * b, np.where((a > 0) & ((x == 0) | (x == _np.inf)), 0.0, _np.nan))
    return np.astype(out, dt)


def gamma_sample_dlog_da(a, x, logx):
    """d log x / d a of a Gamma(a) sample x = exp(logx) at P(a, x) fixed:
    ``-(dP/da) / (x dP/dx)`` (float64 a > 0; x may have underflowed to 0 when logx is
    finite).  x dP/dx = exp(L) = exp(M) a, so no exponential is evaluated."""
    with _np.errstate(all="ignore"):
        ser, _, b = _parts(a, x, logx)
        out = -np.where(ser, b / a, b)
        return np.where(np.isfinite(logx), out, 0.0)


def random_gamma_grad(a, x):
    """``jax.lax.random_gamma_grad``: d x / d a of a Gamma(a) sample x at P(a, x) fixed,
    ``-(dP/da) / (dP/dx)`` (float64 inside; 0 where x = 0)."""
    a, x, dt = _widen(a, x)
    with _np.errstate(all="ignore"):
        ok = (a > 0) & (x > 0) & (a < _np.inf) & (x < _np.inf)
        a1, x1 = np.where(ok, a, 1.0), np.where(ok, x, 1.0)
        out = np.where(ok, x1 * gamma_sample_dlog_da(a1, x1, np.log(x1)), np.where(a > 0, 0.0, _np.nan))
    return np.astype(out, dt)


def _a_term_value(a, x):
    return np.zeros_like(a + x)


def _a_term_jvp(primals, tangents):
    from ..ops.elementwise import stop_gradient
    (a, x), (ta, _tx) = primals, tangents
    # at stop_gradient(x): the mixed derivative d2P/dadx is gammainc's x-Taylor term's (its
    # density differentiates in a), counted once
    return _a_term(a, x), gammainc_grad_a(a, stop_gradient(x)) * ta


_a_term = custom_jvp(_a_term_value)
_a_term.defjvp(_a_term_jvp)
_incgamma.A_TERM[:] = [_a_term]
