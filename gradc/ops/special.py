"""The error function and what is built on it: ``erf`` (a primitive), ``erfc`` and the
exact ``gelu`` (``x * Phi(x)``, PyTorch's default and ``jax.nn.gelu(approximate=False)``).

One algorithm serves the numpy reference and the LLVM lowering (written once over a
small set of arithmetic operations, :func:`_erf`), so the two agree to rounding:

* ``|x| < 1``: ``erf(x) = x P(x^2)``;
* ``1 <= |x| < 6``: ``erf(x) = sign(x) (1 - exp(-x^2) Q_k(|x| - c_k))`` on three pieces;
* beyond, ``sign(x)`` (``erfc(6) = 2e-17`` is below half an ulp of 1).

P and the Q_k are mpmath's Chebyshev fits of the exact functions (``tools/fit_erf.py``),
each to below 1e-18; what is left is Horner's rounding, a few ulp (tests/test_special.py
measures it against ``math.erf``).  A vector loop computes all four polynomials and one
exp per element and selects, so erf costs about 70 multiply-adds and an exp.  The C
backend calls libm's ``erf``.

The derivative is exact, not the derivative of the fit: ``2/sqrt(pi) exp(-x^2)``.
"""
from __future__ import annotations

import math

import numpy as np

from . import elementwise as ew
from .elementwise import elementwise

_P = (5.957176147748911e-11, -1.1372848856791674e-09, 1.4659775274047436e-08, -1.6350312701054695e-07,
      1.6461000484121368e-06, -1.4925595266831182e-05, 0.0001205533111164271, -0.000854832698083379,
      0.0052239776248180145, -0.026866170645076792, 0.11283791670954879, -0.3761263890318375,
      1.1283791670955126)
# (end of the piece, its centre c_k, Q_k's coefficients in |x| - c_k, highest first)
_Q = (
    (2.0, 1.5, (-3.4778531023839574e-09, 1.329844554951821e-08, -4.585146974854072e-08, 1.6708703859197203e-07,
                -5.961119446974675e-07, 2.067088490322641e-06, -6.974987241686018e-06, 2.2864294807967016e-05,
                -7.265892257522832e-05, 0.00022330994586274217, -0.0006619300663930904, 0.0018861348769562312,
                -0.005145957547985475, 0.013377340953068511, -0.032930905299562635, 0.07615103985547739,
                -0.16362291773256007, 0.3215854164543175)),
    (3.5, 2.75, (-1.9033341776852134e-11, 8.88871719258283e-11, -3.601905695321358e-10, 1.6194561547466204e-09,
                 -7.2012225046835695e-09, 3.121531648858328e-08, -1.3262502467727597e-07, 5.519738191507474e-07,
                 -2.2473735137402935e-06, 8.940156439196906e-06, -3.469860956890751e-05, 0.0001311818004875362,
                 -0.0004821950849815436, 0.0017195818852915683, -0.005934337896997966, 0.019758592987322816,
                 -0.06323763756063484, 0.1936620962790687)),
    (6.0, 4.75, (-6.967058483586665e-16, 4.418116067216368e-15, -2.2296939163216056e-14, 1.3788567789968384e-13,
                 -8.616561594719681e-13, 5.21891018757171e-12, -3.12214957291069e-11, 1.8479759770409932e-10,
                 -1.0807615553487736e-09, 6.242438035376163e-09, -3.559574699373066e-08, 2.002919683441791e-07,
                 -1.1115677201483395e-06, 6.08111455078227e-06, -3.277578113462419e-05, 0.0001739283040406064,
                 -0.0009080988970296908, 0.004661326368972343, -0.02350344859816315, 0.11630270721024731)),
)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _erf(x, o):
    """erf(x) with the operations of ``o``: c(value), add, mul, lt (a < b), select,
    abs, exp."""
    def horner(z, coeffs):
        acc = o.c(coeffs[0])
        for k in coeffs[1:]:
            acc = o.add(o.mul(acc, z), o.c(k))
        return acc
    a = o.abs(x)
    small = o.mul(x, horner(o.mul(x, x), _P))
    u = o.select(o.lt(a, o.c(6.0)), a, o.c(6.0))          # the pieces' polynomials stay finite
    q = None
    for end, centre, coeffs in reversed(_Q):
        piece = horner(o.add(u, o.c(-centre)), coeffs)
        q = piece if q is None else o.select(o.lt(u, o.c(end)), piece, q)
    big = o.add(o.c(1.0), o.mul(o.c(-1.0), o.mul(o.exp(o.mul(o.mul(u, u), o.c(-1.0))), q)))
    big = o.select(o.lt(a, o.c(6.0)), big, o.c(1.0))
    signed = o.select(o.lt(x, o.c(0.0)), o.mul(big, o.c(-1.0)), big)
    return o.select(o.lt(a, o.c(1.0)), small, o.select(o.lt(x, x), x, signed))   # (nan stays nan)


class _NumpyOps:
    def __init__(self, dtype):
        self.dtype = dtype

    def c(self, v):
        return self.dtype.type(v)

    add, mul, lt, abs, exp = np.add, np.multiply, np.less, np.abs, np.exp

    @staticmethod
    def select(cond, a, b):
        return np.where(cond, a, b)


def _erf_np(x):
    x = np.asarray(x)
    with np.errstate(all="ignore"):
        r = _erf(x, _NumpyOps(x.dtype))
        return np.where(np.isnan(x), x, r).astype(x.dtype)


class _LLVMOps:
    """The operations of _erf as LLVM IR (one element; the loop vectorizer widens it)."""

    def __init__(self, e, x):
        self.e, self.ty = e, x.type

    def c(self, v):
        from llvmlite import ir
        return ir.Constant(self.ty, float(v))

    def add(self, a, b):
        return self.e.add(a, b)

    def mul(self, a, b):
        return self.e.mul(a, b)

    def lt(self, a, b):
        return self.e.compare("<", a, b)

    def select(self, cond, a, b):
        return self.e.select(cond, a, b)

    def abs(self, a):
        return self.e.abs(a)

    def exp(self, a):
        return self.e.cg.math("exp", a)


def _erf_llvm(e, x):
    r = _erf(x, _LLVMOps(e, x))
    return e.select(e.b.fcmp_unordered("uno", x, x), x, r)


elementwise("erf", _erf_np, lambda y, x: (_TWO_OVER_SQRT_PI * ew.exp(-(x * x)),),
            c="gradc_erf({0})", llvm=_erf_llvm, cost=24, notation="erf", deriv="2/√π exp(−{u}²)",
            doc="the error function (floats): Chebyshev fits and one exp (LLVM), libm's erf (C); "
                "derivative 2/sqrt(pi) exp(-x^2)")


def _floats(x):
    from .mathfuncs import _floats as floats
    return floats(x)[0]


def erf(x):
    """The error function, 2/sqrt(pi) times the integral of exp(-t^2) from 0 to x
    (``scipy.special.erf``, ``jax.scipy.special.erf``)."""
    from .. import tracer as t
    if t.current() is None and not isinstance(x, t.Value):
        return _erf_np(np.asarray(x, dtype=np.result_type(x, np.float32) if np.asarray(x).dtype.kind == "f"
                                  else np.float64))
    return ew._bind("erf", _floats(x))


def erfc(x):
    """1 - erf(x) (``scipy.special.erfc``): accurate to an ulp of 1, so its relative
    accuracy falls off where erfc is small (x beyond about 3)."""
    return 1.0 - erf(x)


def gelu(x, approximate=False):
    """GELU: ``x * Phi(x) = x (1 + erf(x / sqrt 2)) / 2`` (exact, PyTorch's default and
    ``jax.nn.gelu(approximate=False)``), or with ``approximate=True`` the tanh form
    ``x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2`` (``jax.nn.gelu``'s default)."""
    if approximate:
        return 0.5 * x * (1.0 + ew.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * (x * x * x))))
    return 0.5 * x * (1.0 + erf(x * (1.0 / math.sqrt(2.0))))
