"""The Gamma family of gradc.scipy.special, composed from ``gammaln`` (log |Gamma| for
every real x, by the reflection formula ``Gamma(x) Gamma(1 - x) = pi / sin(pi x)`` below
0: _basic.py):

* ``gamma``, ``gammasgn``, ``beta``, ``poch``, ``factorial`` and ``comb`` (``exact=False``)
  as ``sign * exp(log|Gamma| ...)``: relative error about ``eps * max(1, |log Gamma|)``
  plus gammaln's 1e-14 (so 1e-13 near gamma(170), where log Gamma = 700);
* ``multigammaln``, ``loggamma`` (real x >= 0);
* ``zeta(x, q)`` (Hurwitz) by Euler-Maclaurin summation, and ``polygamma(n, x)`` from it.

The argument ``sin(pi x)`` is evaluated at ``x - round(x)`` (exact in floating point), so
the reflection keeps its digits far from 0.  Poles follow scipy: ``gamma(+-0) = +-inf``,
nan at the negative integers.
"""
from __future__ import annotations

import functools
import math

import numpy as _np

from .. import numpy as np
from ._basic import _float_like, _lgamma_finite, gammaln, gammaln_positive

_LOG_PI = math.log(math.pi)


def _quiet(f):
    """``f`` without numpy's warnings on concrete input (the branches not taken divide by
    zero and overflow by design)."""
    @functools.wraps(f)
    def g(*args, **kwargs):
        with _np.errstate(all="ignore"):
            return f(*args, **kwargs)
    return g


@_quiet
def gammasgn(x):
    """The sign of Gamma(x): 1 for x > 0, (-1)^ceil(-x) between the poles, nan at the
    negative integers (and nan); scipy's value 1 at 0 (-1 at -0, as ``gamma(-0) = -inf``)."""
    fl = np.floor(x)
    odd = (fl - 2.0 * np.floor(0.5 * fl)) == 1.0
    neg = np.where(odd, -1.0, 1.0)
    zero = np.where(np.signbit(x), -1.0, 1.0)
    out = np.where(x > 0, 1.0, np.where(x == 0, zero, np.where(x == fl, _np.nan, neg)))
    return _float_like(np.where(np.isnan(x), _np.nan, out), x)


@_quiet
def gamma(x):
    """Gamma(x) for every real x (``scipy.special.gamma``): ``exp(gammaln(x))`` above 0,
    ``pi / (sin(pi x) Gamma(1 - x))`` below; +-inf at +-0, nan at the negative integers and
    -inf, inf beyond 171.6.  Derivative ``Gamma(x) psi(x)`` through the composition."""
    lg, _ = _lgamma_finite(x, np)
    fl = np.floor(x)
    bad = (x == fl) & (x < 0) | (x == -_np.inf)
    val = gammasgn(np.where(bad | (x == 0), 0.5, x)) * np.exp(lg)
    return np.where(x == 0, 1.0 / np.where(x == 0, x, 1.0), np.where(bad, _np.nan, val))


@_quiet
def loggamma(x):
    """log Gamma(x) for real x >= 0 (``scipy.special.loggamma`` on reals): inf at 0, nan below."""
    return np.where(x == 0, _np.inf, gammaln_positive(np.where(x == 0, 1.0, x)))


@_quiet
def beta(a, b):
    """B(a, b) = Gamma(a) Gamma(b) / Gamma(a + b), with its sign for negative non-integer
    arguments (``scipy.special.beta``); for a, b > 0 ``exp(betaln(a, b))``."""
    return gammasgn(a) * gammasgn(b) * gammasgn(a + b) * np.exp(gammaln(a) + gammaln(b) - gammaln(a + b))


@_quiet
def poch(z, m):
    """The rising factorial ``(z)_m = Gamma(z + m) / Gamma(z)`` (``scipy.special.poch``) for z
    and z + m off the poles; 1 where m = 0."""
    val = gammasgn(z + m) * gammasgn(z) * np.exp(gammaln(z + m) - gammaln(z))
    return np.where(m == 0, 1.0, val)


@_quiet
def factorial(n, exact=False):
    """n! = Gamma(n + 1) for n >= 0, 0 below (``scipy.special.factorial(n, exact=False)``)."""
    if exact:
        from ..errors import UnsupportedError
        raise UnsupportedError("gradc.scipy.special.factorial: exact=True (Python integers) is not traceable; "
                               "use exact=False")
    ok = n >= 0
    return _float_like(np.where(ok, gamma(np.where(ok, n, 0.0) + 1.0), 0.0), n)


@_quiet
def comb(N, k, exact=False, repetition=False):
    """N choose k as a float (``scipy.special.comb(N, k, exact=False, repetition=...)``):
    ``exp(gammaln(N+1) - gammaln(k+1) - gammaln(N-k+1))`` for 0 <= k <= N, 0 otherwise;
    with ``repetition=True``, (N + k - 1) choose k."""
    if exact:
        from ..errors import UnsupportedError
        raise UnsupportedError("gradc.scipy.special.comb: exact=True (Python integers) is not traceable; "
                               "use exact=False")
    if repetition:
        return comb(N + k - 1.0, k)
    ok = (k >= 0) & (N >= k) & (N >= 0)
    Ns, ks = np.where(ok, N, 1.0), np.where(ok, k, 0.0)
    return _float_like(np.where(ok, np.exp(gammaln_positive(Ns + 1.0) - gammaln_positive(ks + 1.0) - gammaln_positive(Ns - ks + 1.0)), 0.0), N, k)


@_quiet
def multigammaln(a, d):
    """The log of the multivariate Gamma function of dimension ``d`` (a Python int):
    ``d(d-1)/4 log pi + sum_j gammaln(a - j/2)``, j = 0..d-1 (nan where a <= (d-1)/2)."""
    d = int(d)
    out = d * (d - 1) / 4.0 * _LOG_PI
    for j in range(d):
        out = out + gammaln_positive(a - 0.5 * j)
    return out


# ----------------------------------------------------------------------------- zeta, polygamma
_EM_N = 9          # terms summed directly before Euler-Maclaurin's tail (as Cephes' zeta)
# B_2j / (2j)!, j = 1..12: the tail's coefficients
_B2J = (0.08333333333333333, -0.001388888888888889, 3.306878306878307e-05, -8.267195767195768e-07,
        2.08767569878681e-08, -5.284190138687493e-10, 1.3382536530684679e-11, -3.3896802963225827e-13,
        8.586062056277845e-15, -2.174868698558062e-16, 5.5090028283602295e-18, -1.3954464685812522e-19)


def _zeta(x, q):
    """sum_{k<N} (q+k)^-x + w^(1-x)/(x-1) + w^-x/2 + sum_j B_2j/(2j)! x(x+1)..(x+2j-2) w^(-x-2j+1),
    w = q + N: the tail's terms fall as (x + 2j)^2 / (2 pi w)^2, so 12 of them reach 1e-17
    relative for x up to ~ 40 with N = 9 (as Cephes)."""
    s = 0.0 * (x + q)
    for k in range(_EM_N):
        s = s + (q + k) ** (-x)
    w = q + _EM_N
    wx = w ** (-x)
    s = s + w * wx / (x - 1.0) + 0.5 * wx
    fac, pw = x + 0.0 * w, wx / w
    for j, c in enumerate(_B2J):
        s = s + c * fac * pw
        fac = fac * (x + 2 * j + 1) * (x + 2 * j + 2)
        pw = pw / (w * w)
    return s


@_quiet
def zeta(x, q=None):
    """The Hurwitz zeta function ``sum_k (k + q)^-x`` (``scipy.special.zeta(x, q)``; q = 1,
    Riemann's, when omitted) for x > 1, q > 0 by Euler-Maclaurin summation; inf at x = 1,
    nan for x < 1 and q <= 0.  Differentiable in q (-x zeta(x + 1, q)) and in x through the
    sum."""
    if q is None:
        q = 1.0
    ok = (x > 1) & (q > 0)
    xs, qs = np.where(ok, x, 2.0), np.where(ok, q, 1.0)
    return _float_like(np.where(ok, _zeta(xs, qs), np.where((x == 1) & (q > 0), _np.inf, _np.nan)), x, q)


@_quiet
def polygamma(n, x):
    """The n-th derivative of digamma (``scipy.special.polygamma``): digamma for n = 0,
    ``(-1)^(n+1) n! zeta(n + 1, x)`` for n >= 1 (x > 0).  ``n`` a Python int or an array of
    integers."""
    from ._basic import digamma
    if isinstance(n, (int, _np.integer)):
        if n == 0:
            return digamma(x)
        return ((-1.0) ** (n + 1) * math.factorial(n)) * zeta(n + 1.0, x)
    n = np.asarray(n) if not hasattr(n, "dtype") else n
    sgn = np.where(np.floor(0.5 * n) * 2.0 == n, -1.0, 1.0)
    nz = np.where(n == 0, 1.0, n)
    rest = sgn * np.exp(gammaln_positive(nz + 1.0)) * zeta(nz + 1.0, x)
    return np.where(n == 0, digamma(np.where(n == 0, x, 1.0)), rest)
