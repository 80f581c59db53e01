"""The exponentially scaled functions of gradc.scipy.special, each with its exact
derivative (``gradc.custom_jvp``), not the derivative of its fit:

* ``i0e``, ``i1e`` (``exp(-|x|) I_n(x)``) by Chebyshev expansions in Cephes' layout,
  coefficients computed afresh with mpmath (``tools/fit_bessel.py``, below 1e-20): in
  t = x/4 - 1 for |x| <= 8, in t = 16/|x| - 1 above (divided by sqrt|x|); ``i0``, ``i1``
  as ``exp(|x|)`` times them.  Derivatives ``i0e' = i1e - sign(x) i0e`` and
  ``i1e' = i0e - i1e/x - sign(x) i1e`` (1/2 at 0), so ``i0' = i1``, ``i1' = i0 - i1/x``.
* ``erfcx(x) = exp(x^2) erfc(x)``: ``exp(x^2)`` from a split of x (``exp(h^2) exp(t)``
  with h^2 exact, so x*x's rounding does not cost x^2 ulp) times erfc below 10 (5 in
  float32, where exp(x^2) still fits), the asymptotic series ``1/(x sqrt pi) sum_k
  (-1)^k (2k-1)!! / (2x^2)^k`` to k = 12 above (its terms fall below 1e-17 there), and
  ``2 exp(x^2) - erfcx(-x)`` below 0 (inf below -26.64).  Derivative ``2x erfcx(x) - 2/sqrt pi``.
"""
from __future__ import annotations

import math

import numpy as _np

from .. import numpy as np
from ..custom_derivatives import custom_jvp
from ..ops.special import erfc

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


def _clenshaw(t, coeffs):
    """sum'_k c_k T_k(t) (c_0 halved), coefficients highest degree first."""
    b1, b2 = 0.0 * t, 0.0 * t
    for c in coeffs[:-1]:
        b1, b2 = 2.0 * t * b1 - b2 + c, b1
    return t * b1 - b2 + 0.5 * coeffs[-1]


def _scaled(x, small, large, odd):
    """exp(-|x|) I_n(x): |x| <= 8 by ``small`` (times x for I1), above by ``large`` / sqrt|x|."""
    a = np.abs(x)
    near = a <= 8.0
    an = np.where(near, a, 8.0)
    af = np.where(near, 16.0, a)
    lo = _clenshaw(0.25 * an - 1.0, small)
    hi = _clenshaw(16.0 / af - 1.0, large) / np.sqrt(af)
    if odd:
        return np.where(near, lo * x, np.sign(x) * hi)
    return np.where(near, lo, hi)


@custom_jvp
def _i0e(x):
    return _scaled(x, _I0_SMALL, _I0_LARGE, odd=False)


@custom_jvp
def _i1e(x):
    return _scaled(x, _I1_SMALL, _I1_LARGE, odd=True)


@_i0e.defjvp
def _i0e_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    y = _i0e(x)
    return y, (_i1e(x) - np.sign(x) * y) * t


@_i1e.defjvp
def _i1e_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    y = _i1e(x)
    zero = x == 0
    d = _i0e(x) - y / np.where(zero, 1.0, x) - np.sign(x) * y
    return y, np.where(zero, 0.5, d) * t


def _floats(x):
    from ..ops.special import _floats as floats
    return floats(x)


def _quiet(f):
    import functools

    @functools.wraps(f)
    def g(x):
        with _np.errstate(all="ignore"):
            return f(_floats(x))
    return g


@_quiet
def i0e(x):
    """exp(-|x|) I0(x), the exponentially scaled modified Bessel function of order 0
    (``scipy.special.i0e``); derivative i1e(x) - sign(x) i0e(x)."""
    return _i0e(x)


@_quiet
def i1e(x):
    """exp(-|x|) I1(x) (``scipy.special.i1e``); derivative i0e - i1e/x - sign(x) i1e."""
    return _i1e(x)


# I0 and I1 carry their own rules too: through exp(|x|) i0e(x) the derivative would be
# sign(x) (i0e + i0e') = sign(x) (1 - (1 - x/2)) near 0, with eps of absolute error on x/2
@custom_jvp
def _i0(x):
    return np.exp(np.abs(x)) * _i0e(x)


@custom_jvp
def _i1(x):
    return np.exp(np.abs(x)) * _i1e(x)


@_i0.defjvp
def _i0_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return _i0(x), _i1(x) * t


@_i1.defjvp
def _i1_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    y = _i1(x)
    zero = x == 0
    return y, np.where(zero, 0.5, _i0(x) - y / np.where(zero, 1.0, x)) * t


@_quiet
def i0(x):
    """The modified Bessel function of order 0 (``scipy.special.i0``); derivative i1."""
    return _i0(x)


@_quiet
def i1(x):
    """The modified Bessel function of order 1 (``scipy.special.i1``); derivative i0 - i1/x."""
    return _i1(x)


# ----------------------------------------------------------------------------- erfcx
_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)


def _exp_square(u, splitter):
    """exp(u^2) with u = h + l, h holding half of u's bits (Veltkamp), so h^2 is exact:
    exp(h^2) exp(l (u + h))."""
    p = u * splitter
    h = p - (p - u)
    return np.exp(h * h) * np.exp((u - h) * (u + h))


def _erfcx_pos(a, cut, splitter):
    """erfcx for a >= 0: exp(a^2) erfc(a) below ``cut``, the asymptotic series above."""
    near = a < cut
    an = np.where(near, a, 0.0)
    af = np.where(near, cut, a)
    direct = _exp_square(an, splitter) * erfc(an)
    w = 1.0 / (2.0 * af * af)
    series, term = 1.0 + 0.0 * w, 1.0 + 0.0 * w
    for k in range(1, 13):
        term = -term * (2 * k - 1) * w
        series = series + term
    return np.where(near, direct, _INV_SQRT_PI * series / af)


@custom_jvp
def _erfcx(x):
    f32 = x.dtype == _np.float32
    cut, splitter = (5.0, 4097.0) if f32 else (10.0, 134217729.0)
    neg = x < 0
    a = np.abs(x)
    pos = _erfcx_pos(a, cut, splitter)
    big = a > (10.0 if f32 else 27.0)                   # exp(x^2) overflows
    an = np.where(neg & ~big, a, 0.0)
    return np.where(neg, np.where(big, _np.inf, 2.0 * _exp_square(an, splitter) - pos), pos)


@_erfcx.defjvp
def _erfcx_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    y = _erfcx(x)
    return y, (2.0 * x * y - 2.0 * _INV_SQRT_PI) * t


@_quiet
def erfcx(x):
    """The scaled complementary error function exp(x^2) erfc(x) (``scipy.special.erfcx``),
    accurate for large x (erfcx(1e10) = 5.6e-11) and inf below -26.64; derivative
    2x erfcx(x) - 2/sqrt(pi)."""
    return _erfcx(x)
