"""The exponentially scaled functions of scipy.special as element-wise primitives, each
with its exact derivative (not the derivative of its fit): ``i0e``, ``i1e``
(``exp(-|x|) I_n(x)``), ``i0``, ``i1`` and ``erfcx`` (``exp(x^2) erfc(x)``).

One algorithm per function, written over gradc/ops/special.py's small set of operations,
is the numpy reference and the LLVM lowering; backend "c" calls gradc.h's C version of
the same algorithm.

* I0, I1: Chebyshev expansions in Cephes' layout, coefficients computed afresh with
  mpmath (``tools/fit_bessel.py``, below 1e-20): in t = |x|/4 - 1 for |x| <= 8, in
  t = 16/|x| - 1 above (divided by sqrt|x|); i0 and i1 are exp(|x|) times them.
  Derivatives ``i0e' = i1e - sign(x) i0e``, ``i1e' = i0e - i1e/x - sign(x) i1e`` (1/2 at
  0), ``i0' = i1``, ``i1' = i0 - i1/x``.
* erfcx: ``exp(x^2)`` from a split of x (``exp(h^2) exp((x-h)(x+h))``, h^2 exact) times
  erfc below 10 (5 in float32, where exp(x^2) still fits), the asymptotic series
  ``1/(x sqrt pi) sum_k (-1)^k (2k-1)!! / (2x^2)^k`` to k = 12 above, ``2 exp(x^2) -
  erfcx(-x)`` below 0 (inf below -27).  Derivative ``2x erfcx(x) - 2/sqrt(pi)``.
"""
from __future__ import annotations

import math

from . import elementwise as ew
from .elementwise import elementwise
from .special import _erfc, _llvm_of, _np_of, _public

_I0_SMALL = (
    -7.057100692457294e-20, 5.669178006921496e-19, -4.4153416464793395e-18, 3.3307945188222384e-17,
    -2.431279846547955e-16, 1.715391285555133e-15, -1.1685332877993451e-14, 7.676185498604936e-14,
    -4.856446783111929e-13, 2.95505266312964e-12, -1.726826291441556e-11, 9.675809035373237e-11,
    -5.189795601635263e-10, 2.6598237246823866e-09, -1.300025009986248e-08, 6.046995022541919e-08,
    -2.670793853940612e-07, 1.1173875391201037e-06, -4.4167383584587505e-06, 1.6448448070728896e-05,
    -5.754195010082104e-05, 0.00018850288509584165, -0.0005763755745385824, 0.0016394756169413357,
    -0.004324309995050576, 0.010546460394594998, -0.02373741480589947, 0.04930528423967071,
    -0.09490109704804764, 0.17162090152220877, -0.3046826723431984, 0.6767952744094761)
_I1_SMALL = (
    4.379302756655071e-20, -3.541581772542136e-19, 2.7779141127610464e-18, -2.111421214358166e-17,
    1.5536319577362005e-16, -1.1055969477353862e-15, 7.600684294735408e-15, -5.042185504727912e-14,
    3.223793365945575e-13, -1.9839743977649436e-12, 1.1736186298890901e-11, -6.663489723502027e-11,
    3.625590281552117e-10, -1.8872497517228294e-09, 9.381537386495773e-09, -4.445059128796328e-08,
    2.0032947535521353e-07, -8.568720264695455e-07, 3.4702513081376785e-06, -1.3273163656039436e-05,
    4.781565107550054e-05, -0.00016176081582589674, 0.0005122859561685758, -0.0015135724506312532,
    0.004156422944312888, -0.010564084894626197, 0.024726449030626516, -0.05294598120809499,
    0.1026436586898471, -0.17641651835783406, 0.25258718644363365)
_I0_LARGE = (
    -1.601954907174972e-20, 2.886051596289224e-20, 6.444656697373444e-20, -1.938426454160906e-19,
    -2.4887098371508075e-19, 1.193650890845982e-18, 9.921475412173699e-19, -7.233180487874754e-18,
    -4.830504485944182e-18, 4.46562142029676e-17, 3.461222867697461e-17, -2.8276239805165836e-16,
    -3.425485619677219e-16, 1.7725601330565263e-15, 3.8116806693526224e-15, -9.554846698828307e-15,
    -4.150569347287222e-14, 1.54008621752141e-14, 3.8527783827421426e-13, 7.180124451383666e-13,
    -1.7941785315068062e-12, -1.3215811840447713e-11, -3.1499165279632416e-11, 1.1889147107846439e-11,
    4.94060238822497e-10, 3.3962320257083865e-09, 2.266668990498178e-08, 2.0489185894690638e-07,
    2.8913705208347567e-06, 6.889758346916825e-05, 0.0033691164782556943, 0.8044904110141088)
_I1_LARGE = (
    1.6128418516514802e-20, -3.049812452373096e-20, -6.394267188269098e-20, 2.0269443840532852e-19,
    2.4142767194548486e-19, -1.242193275194891e-18, -9.314178867326884e-19, 7.517296310842105e-18,
    4.414348323071708e-18, -4.6503053684893586e-17, -3.209525921993424e-17, 2.96262899764595e-16,
    3.3082023109209285e-16, -1.8803547755107825e-15, -3.8144030724370075e-15, 1.0420276984128802e-14,
    4.272440016711951e-14, -2.1015418427726643e-14, -4.0835511110921974e-13, -7.198551776245908e-13,
    2.0356285441470896e-12, 1.4125807436613782e-11, 3.2526035830154884e-11, -1.8974958123505413e-11,
    -5.589743462196584e-10, -3.835380385964237e-09, -2.6314688468895196e-08, -2.512236237870209e-07,
    -3.882564808877691e-06, -0.00011058893876262371, -0.009761097491361469, 0.7785762350182801)


def _clenshaw(o, t, coeffs):
    """sum'_k c_k T_k(t) (c_0 halved), coefficients highest degree first."""
    b1, b2 = o.c(0.0), o.c(0.0)
    t2 = o.mul(o.c(2.0), t)
    for c in coeffs[:-1]:
        b1, b2 = o.add(o.add(o.mul(t2, b1), o.mul(o.c(-1.0), b2)), o.c(c)), b1
    return o.add(o.add(o.mul(t, b1), o.mul(o.c(-1.0), b2)), o.c(0.5 * coeffs[-1]))


def _scaled(x, o, small, large, odd):
    """exp(-|x|) I_n(x): |x| <= 8 by ``small`` (times x for I1), beyond by ``large`` / sqrt|x|."""
    a = o.abs(x)
    far = o.lt(o.c(8.0), a)
    an = o.select(far, o.c(8.0), a)
    af = o.select(far, a, o.c(16.0))
    lo = _clenshaw(o, o.add(o.mul(o.c(0.25), an), o.c(-1.0)), small)
    hi = o.div(_clenshaw(o, o.add(o.div(o.c(16.0), af), o.c(-1.0)), large), o.sqrt(af))
    if odd:
        return o.select(far, o.select(o.lt(x, o.c(0.0)), o.mul(o.c(-1.0), hi), hi), o.mul(lo, x))
    return o.select(far, hi, lo)


def _i0e(x, o):
    return _scaled(x, o, _I0_SMALL, _I0_LARGE, odd=False)


def _i1e(x, o):
    return _scaled(x, o, _I1_SMALL, _I1_LARGE, odd=True)


def _i0(x, o):
    a = o.abs(x)
    return o.select(o.lt(a, o.c(math.inf)), o.mul(o.exp(a), _i0e(x, o)), a)


def _i1(x, o):
    a = o.abs(x)
    return o.select(o.lt(a, o.c(math.inf)), o.mul(o.exp(a), _i1e(x, o)), x)


_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)


def _exp_square(u, o):
    """exp(u^2), u = h + l with h half of u's bits (Veltkamp), so h^2 is exact."""
    p = o.mul(u, o.c(o.splitter))
    h = o.add(p, o.mul(o.c(-1.0), o.add(p, o.mul(o.c(-1.0), u))))
    t = o.mul(o.add(u, o.mul(o.c(-1.0), h)), o.add(u, h))
    return o.mul(o.exp(o.mul(h, h)), o.exp(t))


def _erfcx(x, o):
    f32 = o.splitter == 4097.0
    cut = 5.0 if f32 else 10.0
    a = o.abs(x)
    near = o.lt(a, o.c(cut))
    an = o.select(near, a, o.c(0.0))
    af = o.select(near, o.c(cut), a)
    direct = o.mul(_exp_square(an, o), _erfc(an, o))
    w = o.div(o.c(0.5), o.mul(af, af))
    series = o.c(1.0)          # 1 - w (1 - 3w (1 - 5w (...))), Horner from k = 12 down
    for k in range(12, 0, -1):
        series = o.add(o.c(1.0), o.mul(o.mul(o.c(-(2 * k - 1)), w), series))
    pos = o.select(near, direct, o.mul(o.c(_INV_SQRT_PI), o.div(series, af)))
    big = o.lt(o.c(10.0 if f32 else 27.0), a)             # exp(x^2) overflows
    neg = o.lt(x, o.c(0.0))
    am = o.select(neg, o.select(big, o.c(0.0), a), o.c(0.0))
    below = o.add(o.mul(o.c(2.0), _exp_square(am, o)), o.mul(o.c(-1.0), pos))
    return o.select(neg, o.select(big, o.c(math.inf), below), pos)


def _sign(x):
    return ew.sign(x)


def _i1e_slope(y, x):
    """i0e - i1e/x - sign(x) i1e, 1/2 at 0."""
    zero = x == 0.0
    return ew.where(zero, 0.5, i0e(x) - y / ew.where(zero, 1.0, x) - _sign(x) * y)


def _i1_slope(y, x):
    zero = x == 0.0
    return ew.where(zero, 0.5, i0(x) - y / ew.where(zero, 1.0, x))


elementwise("i0e", _np_of(_i0e), lambda y, x: (i1e(x) - _sign(x) * y,), c="gradc_i0e({0})",
            llvm=_llvm_of(_i0e), cost=40, notation="i0e", deriv="i1e({u}) − sign({u}) i0e({u})",
            doc="exp(-|x|) I0(x) (floats): Chebyshev expansions; derivative i1e - sign(x) i0e")
elementwise("i1e", _np_of(_i1e), lambda y, x: (_i1e_slope(y, x),), c="gradc_i1e({0})",
            llvm=_llvm_of(_i1e), cost=40, notation="i1e", deriv="i0e({u}) − i1e({u})/{u} − sign({u}) i1e({u})",
            doc="exp(-|x|) I1(x) (floats): Chebyshev expansions; derivative i0e - i1e/x - sign(x) i1e")
elementwise("i0", _np_of(_i0), lambda y, x: (i1(x),), c="gradc_i0({0})",
            llvm=_llvm_of(_i0), cost=48, notation="I₀", deriv="I₁({u})",
            doc="the modified Bessel function I0 (floats): exp(|x|) i0e(x); derivative i1")
elementwise("i1", _np_of(_i1), lambda y, x: (_i1_slope(y, x),), c="gradc_i1({0})",
            llvm=_llvm_of(_i1), cost=48, notation="I₁", deriv="I₀({u}) − I₁({u})/{u}",
            doc="the modified Bessel function I1 (floats): exp(|x|) i1e(x); derivative i0 - i1/x")
elementwise("erfcx", _np_of(_erfcx), lambda y, x: (2.0 * x * y - 2.0 * _INV_SQRT_PI,), c="gradc_erfcx({0})",
            llvm=_llvm_of(_erfcx), cost=48, notation="erfcx", deriv="2{u} erfcx({u}) − 2/√π",
            doc="exp(x^2) erfc(x) (floats), stable for large x; derivative 2x erfcx(x) - 2/sqrt(pi)")

i0e = _public("i0e", _i0e, """exp(-|x|) I0(x), the exponentially scaled modified Bessel
function of order 0 (``scipy.special.i0e``); derivative i1e(x) - sign(x) i0e(x).""")
i1e = _public("i1e", _i1e, """exp(-|x|) I1(x) (``scipy.special.i1e``); derivative
i0e - i1e/x - sign(x) i1e.""")
i0 = _public("i0", _i0, """The modified Bessel function of order 0 (``scipy.special.i0``);
derivative i1.""")
i1 = _public("i1", _i1, """The modified Bessel function of order 1 (``scipy.special.i1``);
derivative i0 - i1/x.""")
erfcx = _public("erfcx", _erfcx, """The scaled complementary error function exp(x^2) erfc(x)
(``scipy.special.erfcx``), accurate for large x (erfcx(1e10) = 5.6e-11), inf below -27;
derivative 2x erfcx(x) - 2/sqrt(pi).""")
