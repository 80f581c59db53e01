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
# erfinv and ndtri: y = x R(w) with Giles' variable w = -log((1 - x)(1 + x)); R's fits
# (tools/fit_erf.py; errors below 6e-18): in w - 3.125 for w < 6.25, then in s - centre on
# pieces of s = sqrt(w) (end of the piece, its centre, coefficients highest first)
_R_CENTRAL = (
    -1.9123778045391186e-23, -3.3795536525485224e-22, 4.357475280244854e-21, 1.8739434875095462e-20,
    -3.7848217521105335e-19, 6.396664855709971e-19, 1.5992591736199305e-17, -1.226305743260548e-16,
    -4.417003393665373e-17, 6.525767922399858e-15, -3.998852309540432e-14, -8.074665167507013e-14,
    2.6303859148085384e-12, -1.2978692479994892e-11, -5.4142609576164565e-11, 1.051223070748762e-09,
    -4.112661266924503e-09, -2.907039074871087e-08, 4.234788178266526e-07, -1.3654691764135042e-06,
    -1.3882523394637344e-05, 0.0001867342080200925, -0.0007407025341544301, -0.006033670871426909,
    0.2401581824255883, 1.6536545626831027,)
_R_TAIL = (
    (4.0, 3.25, (
        -1.4414402902576647e-09, 7.602734181548034e-09, -1.1037793186805448e-08, -2.069721217948336e-08,
        1.2617019273822622e-07, -2.4575721605517875e-07, -2.3768438869458365e-08, 1.4817686493076977e-06,
        -3.987383279152877e-06, 2.9325103785542764e-06, 1.2465490012885596e-05, -4.732066388775043e-05,
        6.828703766281446e-05, 2.4031510350318603e-05, -0.00035503780550499826, 0.000953289341795833,
        -0.001688275535921936, 0.002491442097947516, -0.003751208508212327, 0.005370914553555193,
        1.0052589676941652, 3.0838856104922208,)),
    (6.2, 5.1, (
        2.3209656537806653e-14, -8.653810666120385e-13, 3.994342861436602e-12, -6.570869188226889e-12,
        -4.7283629842438035e-12, 6.618929984788362e-11, -2.7566713235824025e-10, 8.338362004928273e-10,
        -2.0397498228790544e-09, 4.26505948004683e-09, -8.160494349411793e-09, 1.655525512320721e-08,
        -4.542693036848007e-08, 1.791311353920007e-07, -8.310733731932234e-07, 3.889939071860899e-06,
        -1.7162632767188418e-05, 6.680006834627947e-05, -0.00018651301730326244, -0.0001988588686202921,
        1.010266564502291, 4.950934853078874,)),
    (13.0, 9.6, (
        -1.6602853818861059e-22, 1.6895224535178393e-21, -6.478347135979852e-21, 6.27488677731094e-20,
        -8.910449488157727e-19, 8.644431528661186e-18, -7.851172338394351e-17, 7.424510920377793e-16,
        -6.9730028883490165e-15, 6.413658389340692e-14, -5.788333661085642e-13, 5.103855936591736e-12,
        -4.357854921464782e-11, 3.548068209694195e-10, -2.6691029154829193e-09, 1.7099131476614274e-08,
        -6.500464812280601e-08, -5.480169673132147e-07, 1.956183980191772e-05, -0.00037272104744758537,
        1.0062585504105512, 9.488164110415585,)),
    (27.5, 20.25, (
        -1.3268850182356042e-29, 2.5662846156879654e-28, -1.0910096080977158e-27, 1.9576674154440117e-26,
        -8.201094426055775e-25, 1.4961573862511013e-23, -2.3289176185913167e-22, 3.946078390772645e-21,
        -6.439577181757945e-20, 9.268617264185317e-19, -1.0357802666893854e-17, 2.3186513983818964e-17,
        3.7152701133187056e-15, -1.6992756503151227e-13, 5.607135612712437e-12, -1.6382655794128986e-10,
        4.5081422394613265e-09, -1.2027806057505892e-07, 3.170750961466559e-06, -8.409770023301425e-05,
        1.0023087132676716, 20.178638048598987,)),
)
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


def _inverse_ratio(w, o):
    """R(w) = erfinv(x) / x for w = -log((1 - x)(1 + x)) (w >= 0): the central fit below
    6.25, the pieces of s = sqrt(w) above; each piece's variable clamped into range so an
    unused piece stays finite (w = inf at x = 1 is handled by the caller)."""
    central = _horner(o, o.add(o.select(o.lt(w, o.c(6.25)), w, o.c(6.25)), o.c(-3.125)), _R_CENTRAL)
    s = o.sqrt(o.select(o.lt(w, o.c(756.0)), w, o.c(756.0)))
    r = None
    for end, centre, coeffs in reversed(_R_TAIL):
        piece = _horner(o, o.add(s, o.c(-centre)), coeffs)
        r = piece if r is None else o.select(o.lt(s, o.c(end)), piece, r)
    return o.select(o.lt(w, o.c(6.25)), central, r)


def _erfinv(x, o):
    """x R(w); +-inf at x = +-1 (w infinite), nan beyond."""
    one = o.c(1.0)
    a = o.abs(x)
    w = o.mul(o.c(-1.0), o.log(o.mul(o.add(one, o.mul(o.c(-1.0), x)), o.add(one, x))))
    ends = o.select(o.lt(one, a), o.c(float("nan")), o.mul(x, o.c(float("inf"))))
    return o.select(o.lt(a, one), o.mul(x, _inverse_ratio(w, o)), ends)


def _ndtri(p, o):
    """sqrt 2 erfinv(2p - 1), with w = -log(4 p (1 - p)) from p itself (2p - 1 rounds to
    -1 for p below 1e-17, where w still holds p's digits); -inf at 0, inf at 1."""
    x = o.add(o.mul(o.c(2.0), p), o.c(-1.0))
    w = o.mul(o.c(-1.0), o.log(o.mul(o.mul(o.c(4.0), p), o.add(o.c(1.0), o.mul(o.c(-1.0), p)))))
    y = o.mul(o.mul(x, _inverse_ratio(w, o)), o.c(math.sqrt(2.0)))
    inside = o.select(o.lt(o.c(0.0), p), o.lt(p, o.c(1.0)), o.lt(p, p))
    ends = o.select(o.lt(p, o.c(0.0)), o.c(float("nan")),
                    o.select(o.lt(o.c(1.0), p), o.c(float("nan")), o.mul(x, o.c(float("inf")))))
    return o.select(inside, y, ends)


class _NumpyOps:
    def __init__(self, dtype):
        self.dtype = dtype

    def c(self, v):
        return self.dtype.type(v)

    @property
    def splitter(self):          # Veltkamp's 2^s + 1: s = half the significand's bits
        return 4097.0 if self.dtype == np.float32 else 134217729.0

    add, mul, div, lt, abs, exp, log, sqrt = np.add, np.multiply, np.divide, np.less, np.abs, np.exp, np.log, np.sqrt

    @staticmethod
    def select(cond, a, b):
        return np.where(cond, a, b)


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

    def log(self, a):
        return self.e.cg.math("log", a)

    def sqrt(self, a):
        return self.e.intrinsic("llvm.sqrt", a)


def _np_of(algorithm):
    """The numpy reference of an algorithm written over ``o`` (nan stays nan)."""
    def f(x):
        x = np.asarray(x)
        with np.errstate(all="ignore"):
            r = algorithm(x, _NumpyOps(x.dtype))
            return np.where(np.isnan(x), x, r).astype(x.dtype)
    return f


def _llvm_of(algorithm):
    """Its LLVM lowering, one element (nan stays nan)."""
    def f(e, x):
        return e.select(e.b.fcmp_unordered("uno", x, x), x, algorithm(x, _LLVMOps(e, x)))
    return f


def _public(name, algorithm, doc):
    """The numpy-facing function of primitive ``name``: the algorithm's numpy reference
    on concrete input outside a trace (float32 stays float32, integers become float64),
    the primitive on traced values."""
    reference = _np_of(algorithm)

    def f(x):
        from .. import tracer as t
        if t.current() is None and not isinstance(x, t.Value):
            a = np.asarray(x)
            return reference(a.astype(np.result_type(a, np.float32) if a.dtype.kind == "f" else np.float64))
        return ew._bind(name, _floats(x))
    f.__name__, f.__qualname__, f.__doc__ = name, name, doc
    return f


elementwise("erf", _np_of(_erf), lambda y, x: (_TWO_OVER_SQRT_PI * ew.exp(-(x * x)),),
            c="gradc_erf({0})", llvm=_llvm_of(_erf), cost=24, notation="erf", deriv="2/√π exp(−{u}²)",
            doc="the error function (floats): Chebyshev fits and one exp (LLVM), libm's erf (C); "
                "derivative 2/sqrt(pi) exp(-x^2)")
elementwise("erfc", _np_of(_erfc), lambda y, x: (-_TWO_OVER_SQRT_PI * ew.exp(-(x * x)),),
            c="gradc_erfc({0})", llvm=_llvm_of(_erfc), cost=32, notation="erfc", deriv="−2/√π exp(−{u}²)",
            doc="1 - erf(x) to a few ulp of its own size (floats): Chebyshev fits and two exps (LLVM), "
                "libm's erfc (C); derivative -2/sqrt(pi) exp(-x^2)")


_SQRT_PI_OVER_2 = math.sqrt(math.pi) / 2
_SQRT_2PI = math.sqrt(2 * math.pi)
elementwise("erfinv", _np_of(_erfinv), lambda y, x: (_SQRT_PI_OVER_2 * ew.exp(y * y),),
            c="gradc_erfinv({0})", llvm=_llvm_of(_erfinv), cost=40, notation="erf⁻¹",
            deriv="√π/2 exp(erf⁻¹({u})²)",
            doc="the inverse of erf on (-1, 1) (floats): x R(-log(1 - x^2)), R Chebyshev fits (LLVM); "
                "Newton's method on libm's erf and erfc (C); derivative sqrt(pi)/2 exp(y^2)")
elementwise("ndtri", _np_of(_ndtri), lambda y, p: (_SQRT_2PI * ew.exp(0.5 * (y * y)),),
            c="gradc_ndtri({0})", llvm=_llvm_of(_ndtri), cost=40, notation="Φ⁻¹", deriv="√(2π) exp(Φ⁻¹({u})²/2)",
            doc="the inverse of the standard normal CDF on (0, 1) (floats), from the same fits with "
                "w = -log(4p(1 - p)) computed from p; derivative sqrt(2 pi) exp(y^2 / 2)")


def _floats(x):
    from .mathfuncs import _floats as floats
    return floats(x)[0]


erf = _public("erf", _erf, """The error function, 2/sqrt(pi) times the integral of
exp(-t^2) from 0 to x (``scipy.special.erf``, ``jax.scipy.special.erf``).""")
erfc = _public("erfc", _erfc, """1 - erf(x) (``scipy.special.erfc``), accurate to a few
ulp of its own value, so in the tail too (erfc(10) = 2.1e-45, float64).""")
erfinv = _public("erfinv", _erfinv, """The inverse error function (``scipy.special.erfinv``):
``erf(erfinv(x)) = x`` on (-1, 1), +-inf at +-1, nan beyond.""")
ndtri = _public("ndtri", _ndtri, """The inverse of the standard normal CDF
(``scipy.special.ndtri``), accurate for small p too (ndtri(1e-300) = -37.0).""")


def gelu(x, approximate=False):
    """GELU: ``x * Phi(x) = x (1 + erf(x / sqrt 2)) / 2`` (exact, PyTorch's default and
    ``jax.nn.gelu(approximate=False)``), or with ``approximate=True`` the tanh form
    ``x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2`` (``jax.nn.gelu``'s default)."""
    if approximate:
        return 0.5 * x * (1.0 + ew.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * (x * x * x))))
    return 0.5 * x * (1.0 + erf(x * (1.0 / math.sqrt(2.0))))
