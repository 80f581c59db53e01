"""The regularized incomplete Gamma functions ``gammainc(a, x) = P(a, x)`` and
``gammaincc(a, x) = Q(a, x) = 1 - P`` (scipy.special's), as Cephes computes them:

* x <= max(a, 1): P's power series ``x^a e^-x / Gamma(a + 1) sum_k x^k / ((a+1)...(a+k))``;
* beyond: Q's continued fraction (Legendre's, evaluated bottom-up from a fixed depth)
  times ``x^a e^-x / Gamma(a)``;

the other function as 1 minus it.  Both run a fixed number of terms (a trace unrolls
them, _TERMS): the series' terms fall by x/(a + k) and the fraction converges about as
fast, so the error is below 1e-14 for a up to ~ 60 (tests/test_scipy_special_more.py checks
it against mpmath); for larger a both would need more terms (Cephes switches to Temme's
uniform asymptotic expansion there, not implemented here).

Derivative: in x exact, ``x^(a-1) e^-x / Gamma(a)``, and the second too (the value at
stop_gradient(x) plus Taylor terms that are 0 in value; third derivatives are 0); in a
by a zero-valued ``custom_jvp`` term whose rule is dP/da (:mod:`._incgamma_grad`: its own
series and continued fraction, run to convergence, accurate for a up to 1e3 and beyond).
"""
from __future__ import annotations

import numpy as _np

from .. import numpy as np
from ._basic import _float_like, gammaln_positive as gammaln, xlogy  # arguments > 0

_TERMS = 64


def _series(a, x):
    """P(a, x) by the power series (x <= max(a, 1) fed in)."""
    term, total = 1.0 + 0.0 * x, 1.0 + 0.0 * x
    for k in range(1, _TERMS):
        term = term * x / (a + k)
        total = total + term
    return np.exp(xlogy(a, x) - x - gammaln(a + 1.0)) * total


def _fraction(a, x):
    """Q(a, x) = e^-x x^a / Gamma(a) / (x + 1 - a - 1 (1 - a) / (x + 3 - a - 2 (2 - a) / ...)),
    from depth _TERMS up (x > max(a, 1) fed in)."""
    t = 0.0 * x
    for n in range(_TERMS, 0, -1):
        t = n * (n - a) / (x + (2 * n + 1) - a - t)
    return np.exp(a * np.log(x) - x - gammaln(a)) / (x + 1.0 - a - t)


def _p_and_q(a, x, upper):
    """Q (upper) or P; each method fed only arguments of its own range."""
    ok = (a > 0) & (x >= 0)
    fin = ok & (x < _np.inf)
    frac = fin & (x > np.maximum(a, 1.0))
    ser = fin & ~frac
    aS, xS = np.where(ser, a, 1.0), np.where(ser, x, 0.5)
    aF, xF = np.where(frac, a, 1.0), np.where(frac, x, 2.0)
    p, q = _series(aS, xS), _fraction(aF, xF)
    val = np.where(frac, q, 1.0 - p) if upper else np.where(frac, 1.0 - q, p)
    # scipy's ends: P = 1 at x = inf or a = 0 (x > 0), P = 0 at a = inf (x finite)
    one = (ok & (x == _np.inf) & (a < _np.inf)) | ((a == 0) & (x > 0))
    zero = (a == _np.inf) & (x >= 0) & (x < _np.inf)
    p_end = np.where(one, 1.0, np.where(zero, 0.0, _np.nan))
    ends = 1.0 - p_end if upper else p_end
    return np.where(fin & (a < _np.inf), val, _float_like(ends, x))


def _density(a, x):
    """dP/dx = x^(a-1) e^-x / Gamma(a) (1 at x = 0 for a = 1, inf for a < 1)."""
    ok = (a > 0) & (x >= 0)
    return np.where(ok, np.exp(xlogy(a - 1.0, np.where(ok, x, 1.0)) - x - gammaln(np.where(ok, a, 1.0))), _np.nan)


def _with_x_derivatives(value, a, x, sign):
    """``value(a, x)`` with the exact first and second derivatives in x: the value at
    stop_gradient(x) plus its Taylor terms D (x - x0) + D' (x - x0)^2 / 2, which are 0 in
    value and give D = sign * x^(a-1) e^-x / Gamma(a) and D' = D ((a - 1)/x - 1) as the
    derivatives (third and higher derivatives in x are 0: not supported)."""
    from ..ops.elementwise import stop_gradient
    x0 = stop_gradient(x)
    d = sign * _density(a, x0)
    d = np.where(np.abs(d) < _np.inf, d, 0.0)      # (inf at x = 0 for a < 1: 0 * inf would spoil the value)
    pos = x0 > 0
    d1 = np.where(pos, d * ((a - 1.0) / np.where(pos, x0, 1.0) - 1.0), 0.0)
    dx = np.where(np.abs(x0) < _np.inf, x - x0, 0.0)          # (inf - inf would be nan)
    return value(stop_gradient(a), x0) + dx * (d + 0.5 * d1 * dx)    # (the a-derivative: _guarded's)


def _gammainc(a, x):
    return _with_x_derivatives(lambda a, x: _p_and_q(a, x, upper=False), a, x, 1.0)


def _gammaincc(a, x):
    return _with_x_derivatives(lambda a, x: _p_and_q(a, x, upper=True), a, x, -1.0)


# The term that carries the derivative in a: 0 in value, dP/da times a's tangent in
# derivative.  It is a custom_jvp function over lax.while_loop, a layer above this module's,
# so gradc.scipy._incgamma_grad installs it here when gradc is imported (through gradc.lax).
A_TERM: list = []


def _a_derivative(a, x):
    if not A_TERM:
        from ..errors import UnsupportedError
        raise UnsupportedError("gradc.scipy.special.gammainc: the derivative in a is not installed "
                               "(import gradc, which imports gradc.scipy._incgamma_grad)")
    return A_TERM[0](a, x)


def _guarded(f, a, x):
    from ..tracer import Value
    a, x = np.asarray(a) if not isinstance(a, Value) else a, np.asarray(x) if not isinstance(x, Value) else x
    dt = _np.result_type(*[v.dtype if v.dtype.kind == "f" else _np.float32 for v in (a, x)])
    if a.dtype.kind != "f" and x.dtype.kind != "f":
        dt = _np.float64
    a, x = a.astype(dt), x.astype(dt)
    with _np.errstate(all="ignore"):
        out = f(a, x)
        if isinstance(a, Value):
            out = out + (_a_derivative(a, x) if f is _gammainc else -_a_derivative(a, x))
    return out


def gammainc(a, x):
    """The regularized lower incomplete Gamma function P(a, x) (``scipy.special.gammainc``)
    for a > 0, x >= 0 (nan elsewhere; 1 at x = inf); accurate to 1e-14 for a up to ~ 60.
    Differentiable in x (``x^(a-1) e^-x / Gamma(a)``) and in a (to ~ 1e-12 relative,
    float64, for a in [1e-3, 1e3], x in (0, 1e3]; reverse mode over that derivative in a
    again raises ``gradc.UnsupportedError``)."""
    return _guarded(_gammainc, a, x)


def gammaincc(a, x):
    """The regularized upper incomplete Gamma function Q(a, x) = 1 - P(a, x)
    (``scipy.special.gammaincc``), computed directly (not as 1 - P) where it is small."""
    return _guarded(_gammaincc, a, x)
