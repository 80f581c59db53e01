"""``from gradc.scipy.stats import norm, t, ...``: the log densities (and the CDFs that
have closed forms) of scipy.stats (jax.scipy.stats) that likelihoods use, composed from
gradc.numpy and gradc.scipy.special at trace time, so every backend runs them and they
differentiate in every argument (``loc``, ``scale``, shapes) like any model code.

Each distribution is a namespace of functions with scipy's signatures and defaults
(``norm.logpdf(x, loc=0, scale=1)``); outside the support a log density is ``-inf``
and a density 0.  Each branch is fed only values of its own range, so a derivative
never meets ``0 * inf``.  ``tests/test_scipy_stats.py`` checks them against the
formulas in numpy and math, finite differences, and scipy itself where installed.
"""
from __future__ import annotations

from ._stats_basic import (bernoulli, beta, binom, cauchy, expon, gamma, laplace, logistic, multivariate_normal, norm, poisson, t, uniform)  # noqa: F401
from ._stats_more import (betabinom, chi2, dirichlet, gennorm, geom, gumbel_l, gumbel_r,  # noqa: F401
                          multinomial, nbinom, pareto, rankdata, sem, truncnorm, vonmises)
