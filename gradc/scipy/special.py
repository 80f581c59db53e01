"""``import gradc.scipy.special as sp``: scipy.special's (and jax.scipy.special's)
functions that losses and likelihoods use, composed from gradc.numpy at trace time.

* ``xlogy(x, y) = x log y`` and ``xlog1py(x, y) = x log1p(y)``, 0 where x = 0 (even where
  log y is infinite), with derivatives ``log y`` and ``x / y`` (``log1p y``, ``x/(1+y)``)
  as JAX's;
* ``expit`` (the logistic sigmoid), ``logit(p) = log p - log1p(-p)``, ``entr(x) = -x log
  x`` (0 at 0, -inf below), ``erf``, ``erfc``;
* ``gammaln`` for x > 0: the recurrence ``lgamma(x) = lgamma(x + n) - log(x (x+1) ...
  (x+n-1))`` up to x + n >= 16, then Stirling's series to the x**-13 term (error below
  1e-17 there): within about 1e-14 absolute of scipy (the recurrence's two terms of ~30
  cancel near lgamma's zeros at 1 and 2), relative 1e-15 elsewhere; ``digamma`` the same way (``psi(x) = psi(x + n) - sum 1/(x+k)``), so
  ``gammaln``'s derivative is checked against ``digamma`` and both against scipy where
  it is installed.  Non-positive x gives nan (scipy: inf at the poles, the reflection
  formula between them: not supported).
"""
from __future__ import annotations

import math

import numpy as _np

from .. import numpy as np
from ..ops.special import erf, erfc  # noqa: F401
from ..ops.stats import _eager as _concrete

expit = np.sigmoid


def xlogy(x, y):
    """x log y, 0 where x = 0."""
    if _concrete(x, y):
        x, y = _np.asarray(x, dtype=float), _np.asarray(y, dtype=float)
        with _np.errstate(divide="ignore", invalid="ignore"):
            return _np.where(x == 0, 0.0, x * _np.log(_np.where(x == 0, 1.0, y)))
    bad = (x == 0) & ((y == 0) | np.isinf(y) | np.isnan(y))
    return x * np.log(np.where(bad, 1.0, y))


def xlog1py(x, y):
    """x log1p(y), 0 where x = 0."""
    if _concrete(x, y):
        x, y = _np.asarray(x, dtype=float), _np.asarray(y, dtype=float)
        with _np.errstate(divide="ignore", invalid="ignore"):
            return _np.where(x == 0, 0.0, x * _np.log1p(_np.where(x == 0, 0.0, y)))
    bad = (x == 0) & ((y == -1) | np.isinf(y) | np.isnan(y))
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


def gammaln(x):
    """log |Gamma(x)| for x > 0 (nan elsewhere); its derivative is digamma's series."""
    if _concrete(x):
        with _np.errstate(all="ignore"):
            return _gammaln(_np.asarray(x, dtype=float), _np)
    return _gammaln(x, np)


def digamma(x):
    """psi(x) = d/dx lgamma(x), x > 0 (nan elsewhere)."""
    if _concrete(x):
        with _np.errstate(all="ignore"):
            return _digamma(_np.asarray(x, dtype=float), _np)
    return _digamma(x, np)


psi = digamma
