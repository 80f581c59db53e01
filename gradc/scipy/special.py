"""``import gradc.scipy.special as sp``: scipy.special's (and jax.scipy.special's)
functions that losses and likelihoods use, composed from gradc.numpy at trace time.

* ``xlogy(x, y) = x log y`` and ``xlog1py(x, y) = x log1p(y)``, 0 where x = 0 (even where
  log y is infinite), with derivatives ``log y`` and ``x / y`` (``log1p y``, ``x/(1+y)``)
  as JAX's;
* ``expit`` (the logistic sigmoid), ``logit(p) = log p - log1p(-p)``, ``entr(x) = -x log
  x`` (0 at 0, -inf below), ``erf``, ``erfc``;
* ``gammaln`` = log |Gamma(x)|: for x > 0 the recurrence ``lgamma(x) = lgamma(x + n) -
  log(x (x+1) ... (x+n-1))`` up to x + n >= 16, then Stirling's series to the x**-13
  term (error below 1e-17 there): within about 1e-14 absolute of scipy (the
  recurrence's two terms of ~30 cancel near lgamma's zeros at 1 and 2), relative 1e-15
  elsewhere; below 0 the reflection formula ``log pi - log |sin(pi x)| - lgamma(1 - x)``
  (inf at the poles 0, -1, -2, ..., as scipy's); ``digamma`` the same way (``psi(x) =
  psi(x + n) - sum 1/(x+k)``, below 0 ``psi(1 - x) - pi cot(pi x)``), so ``gammaln``'s
  derivative is checked against ``digamma`` and both against scipy where it is
  installed.

and, in their own modules: the Gamma family, zeta and polygamma (_gamma.py), gammainc
and gammaincc (_incgamma.py), i0/i0e/i1/i1e/erfcx (primitives, gradc/ops/bessel.py),
kl_div, rel_entr, boxcox, boxcox1p (_basic.py).
"""
from __future__ import annotations

import functools

from ..ops.bind import is_python_number, weak_result
from ..tracer import outside_trace
from ..ops.bessel import erfcx, i0, i0e, i1, i1e  # noqa: F401
from ..ops.special import erf, erfc, erfinv, ndtri  # noqa: F401
from ._basic import (betaln, boxcox, boxcox1p, digamma, entr, expit, kl_div, log_ndtr, log_softmax,  # noqa: F401
                     logit, logsumexp, ndtr, psi, rel_entr, softmax, xlog1py, xlogy, gammaln)
from ._gamma import (beta, comb, factorial, gamma, gammasgn, loggamma, multigammaln, poch,  # noqa: F401
                     polygamma, zeta)
from ._incgamma import gammainc, gammaincc  # noqa: F401


def _weak_on_numbers(f):
    """``f`` that folds a call on Python numbers alone into a weak number (as gradc.numpy's
    ufuncs do, and jax.scipy.special's weakly typed results): ``x32 + gammaln(3.0)`` stays
    float32 inside a trace."""
    @functools.wraps(f)
    def call(*args, **kwargs):
        if args and not kwargs and all(is_python_number(a) for a in args):
            with outside_trace():
                return weak_result(f(*args))
        return f(*args, **kwargs)
    return call


for _name in ("betaln", "boxcox", "boxcox1p", "digamma", "entr", "expit", "kl_div", "log_ndtr", "logit", "ndtr",
              "psi", "rel_entr", "xlog1py", "xlogy", "gammaln", "erfcx", "i0", "i0e", "i1", "i1e", "erf", "erfc",
              "erfinv", "ndtri", "beta", "comb", "factorial", "gamma", "gammasgn", "loggamma", "multigammaln",
              "poch", "polygamma", "zeta", "gammainc", "gammaincc"):
    globals()[_name] = _weak_on_numbers(globals()[_name])
del _name
