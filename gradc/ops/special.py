"""The error function and what is built on it: ``erf`` and ``erfc`` (primitives: erfc
keeps its relative accuracy in the tail, where 1 - erf would be 0) and the exact
``gelu`` (``x * Phi(x)``, PyTorch's default and ``jax.nn.gelu(approximate=False)``).

One algorithm serves the numpy reference and the LLVM lowering (written once over a
small set of arithmetic operations, :func:`_erf`), so the two agree to rounding:

* ``|x| < 1``: ``erf(x) = x P(x^2)``;
* ``1 <= |x| < 6``: ``erf(x) = sign(x) (1 - exp(-x^2) Q_k(|x| - c_k))`` on three pieces;
* beyond, ``sign(x)`` (``erfc(6) = 2e-17`` is below half an ulp of 1).

P and the Q_k are mpmath's Chebyshev fits of the exact functions (``tools/fit_erf.py``),
each to below 1e-18; what is left is Horner's rounding, a few ulp (tests/test_special.py
measures it against ``math.erf``).  A vector loop computes all four polynomials and one
exp per element and selects, so erf costs about 70 multiply-adds and an exp.  The C
backend calls libm's ``erf`` and ``erfc``.  erfc (:func:`_erfc`) uses the same pieces
for |x| >= 1, one more on [0.5, 1) and a tail fit to 28, with exp(-x^2) computed from a
split of x so that x*x's rounding does not cost 1e-13 (:func:`_exp_minus_square`):
about 1.7x erf's time.

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
# erfc's tail, 6 <= x < 28: erfc(x) = exp(-x^2) T(1/x^2) / x, T's coefficients in 1/x^2,
# highest first (tools/fit_erf.py; error below 1e-19 on T ~ 0.56)
_T = (-703071.8720580325, 199252.00134020735, -32054.432688688474, 4315.930174182638, -592.9235561882374,
      91.60261024565234, -16.660926642160625, 3.702492393969653, -1.0578554624787775, 0.42314218764539896,
      -0.2820947917738591, 0.5641895835477563)
# erfc on [0.5, 1): exp(-x^2) Q_0(x - 0.75) (as erf's pieces; error below 4e-21), where
# 1 - erf(x) would lose up to 3 bits
_Q0 = (1.0, 0.75, (-1.4567881256540653e-06, 4.653752310183548e-06, -1.408512949400527e-05, 4.236125943559736e-05, -0.0001233545520026088, 0.0003467512575452147, -0.000938512056293829, 0.0024376373433168705, -0.00605153229729106, 0.014289198666213443, -0.03189726203968118, 0.06679054252756655, -0.1298360619948811, 0.2309581315512983, -0.3679726916557954, 0.5069376502931449))
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _horner(o, z, coeffs):
    acc = o.c(coeffs[0])
    for k in coeffs[1:]:
        acc = o.add(o.mul(acc, z), o.c(k))
    return acc


def _erf(x, o):
    """erf(x) with the operations of ``o``: c(value), add, mul, lt (a < b), select,
    abs, exp."""
    def horner(z, coeffs):
        return _horner(o, z, coeffs)
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


def _exp_minus_square(u, o):
    """exp(-u^2) to a few ulp for u up to 28: u^2 = h^2 + t with h the high half of u's
    bits (Veltkamp's split, so h^2 is exact) and t small, exp(-h^2) exp(-t).  (exp(-u*u)
    would carry u*u's rounding, up to 0.5 ulp of 784, into a relative error of 1e-13.)"""
    p = o.mul(u, o.c(o.splitter))
    h = o.add(p, o.mul(o.c(-1.0), o.add(p, o.mul(o.c(-1.0), u))))
    t = o.mul(o.add(u, o.mul(o.c(-1.0), h)), o.add(u, h))
    return o.mul(o.exp(o.mul(o.mul(h, h), o.c(-1.0))), o.exp(o.mul(t, o.c(-1.0))))


def _erfc(x, o):
    """erfc(x) to a few ulp of its own size (not of 1): ``1 - x P(x^2)`` (erf's P) for
    |x| < 0.5, where erfc is near 1; for |x| >= 0.5, E = exp(-|x|^2) Q_k(|x| - c_k) on
    [0.5, 1) and erf's pieces of [1, 6), exp(-|x|^2) T(1/|x|^2)/|x| on [6, 28), 0 beyond
    (erfc(27.3) is below the smallest float64): erfc(x) = E for x > 0, 2 - E below."""
    a = o.abs(x)
    u = o.select(o.lt(a, o.c(0.5)), o.c(0.5), o.select(o.lt(a, o.c(28.0)), a, o.c(28.0)))
    q = o.div(_horner(o, o.div(o.c(1.0), o.mul(u, u)), _T), u)
    for end, centre, coeffs in reversed((_Q0,) + _Q):
        q = o.select(o.lt(u, o.c(end)), _horner(o, o.add(u, o.c(-centre)), coeffs), q)
    e = o.select(o.lt(a, o.c(28.0)), o.mul(_exp_minus_square(u, o), q), o.c(0.0))
    big = o.select(o.lt(x, o.c(0.0)), o.add(o.c(2.0), o.mul(o.c(-1.0), e)), e)
    small = o.add(o.c(1.0), o.mul(o.c(-1.0), o.mul(x, _horner(o, o.mul(x, x), _P))))
    return o.select(o.lt(a, o.c(0.5)), small, o.select(o.lt(x, x), x, big))   # (nan stays nan)


class _NumpyOps:
    def __init__(self, dtype):
        self.dtype = dtype

    def c(self, v):
        return self.dtype.type(v)

    @property
    def splitter(self):          # Veltkamp's 2^s + 1: s = half the significand's bits
        return 4097.0 if self.dtype == np.float32 else 134217729.0

    add, mul, div, lt, abs, exp = np.add, np.multiply, np.divide, np.less, np.abs, np.exp

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

    def div(self, a, b):
        return self.e.div(a, b)

    @property
    def splitter(self):
        from llvmlite import ir
        return 4097.0 if isinstance(self.ty, ir.FloatType) else 134217729.0

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


def _erfc_np(x):
    x = np.asarray(x)
    with np.errstate(all="ignore"):
        r = _erfc(x, _NumpyOps(x.dtype))
        return np.where(np.isnan(x), x, r).astype(x.dtype)


def _erfc_llvm(e, x):
    r = _erfc(x, _LLVMOps(e, x))
    return e.select(e.b.fcmp_unordered("uno", x, x), x, r)


elementwise("erfc", _erfc_np, lambda y, x: (-_TWO_OVER_SQRT_PI * ew.exp(-(x * x)),),
            c="gradc_erfc({0})", llvm=_erfc_llvm, cost=32, notation="erfc", deriv="−2/√π exp(−{u}²)",
            doc="1 - erf(x) to a few ulp of its own size (floats): Chebyshev fits and two exps (LLVM), "
                "libm's erfc (C); derivative -2/sqrt(pi) exp(-x^2)")


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
    """1 - erf(x) (``scipy.special.erfc``), accurate to a few ulp of its own value, so
    in the tail too (erfc(10) = 2.1e-45, float64)."""
    from .. import tracer as t
    if t.current() is None and not isinstance(x, t.Value):
        return _erfc_np(np.asarray(x, dtype=np.result_type(x, np.float32) if np.asarray(x).dtype.kind == "f"
                                   else np.float64))
    return ew._bind("erfc", _floats(x))


def gelu(x, approximate=False):
    """GELU: ``x * Phi(x) = x (1 + erf(x / sqrt 2)) / 2`` (exact, PyTorch's default and
    ``jax.nn.gelu(approximate=False)``), or with ``approximate=True`` the tanh form
    ``x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2`` (``jax.nn.gelu``'s default)."""
    if approximate:
        return 0.5 * x * (1.0 + ew.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * (x * x * x))))
    return 0.5 * x * (1.0 + erf(x * (1.0 / math.sqrt(2.0))))
