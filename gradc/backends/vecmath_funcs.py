"""The bodies of gradc's vector math functions (vecmath.py): exp, expm1, log, log1p,
tanh, sigmoid, softplus, sin and cos, written on a ``_Ctx`` (vecmath_ctx.py) with the
polynomials of vecmath_coeffs.py, and ``_IMPL``, which names them.

Each function takes the context and its argument and returns the result, straight-line
code for one lane or all lanes of a vector at once; vecmath.py turns them into the
library's scalar functions and vector variants (``library_ir``).  The module docstring
of vecmath.py explains the approach and the accuracy.
"""

from __future__ import annotations

import math

from llvmlite import ir

from .vecmath_coeffs import _COEFFS
from .vecmath_ctx import (_LN2, _LOG2E, _PI, _PIO2, _TWO_OVER_PI, _Ctx, _Format, _round_bits,
                          _trunc_bits)


def _coeffs(name: str, fmt: _Format):
    return _COEFFS[(name, fmt.suffix)]


# ---------------------------------------------------------------------------
# exp / expm1 core
# ---------------------------------------------------------------------------

def _exp_reduce(c: _Ctx, x, lo, hi):
    """x = k*ln2 + r (+ corr), |r| <= ln2/2 (about), k integral float.

    x is clamped to [lo, hi] first (nan -> lo) so k stays small and the
    later i32 conversion is in range; the callers fix nan/overflow cases
    (lo = None: the caller has bounded x already).
    ln2 is split Cody-Waite style: LN2_HI has prec-kbits bits, so k*LN2_HI
    is exact and x - k*LN2_HI is exact (the operands nearly cancel); LN2_LO
    carries the rest of ln2, and r is rounded once more: an error below
    half an ulp of r (k = 0: r = x exactly).
    """
    fmt = c.fmt
    ln2_hi, ln2_lo = fmt.split(_LN2, fmt.prec - fmt.kbits)
    xc = x if lo is None else c.clamp(x, lo, hi)
    k = c.rint(c.mul(xc, c.k(_LOG2E)))
    nk = c.neg(k)
    r_hi = c.mad(nk, c.k(ln2_hi), xc)               # exact
    r = c.mad(nk, c.k(ln2_lo), r_hi)
    return k, r


def _exp_limits(fmt):
    # Clamp bounds: beyond them exp is 0 / inf anyway (exp(-745.2)=0,
    # exp(709.8)=inf; float32 -103.98 / 88.73), and k stays within twice
    # the exponent range, as ldexp() needs.
    return (-760.0, 720.0) if fmt.f64 else (-110.0, 100.0)


def _exp(c: _Ctx, x):
    return c.sel(c.isnan(x), x, _exp_core(c, x))


def _exp_core(c: _Ctx, x, bounded=False):
    """exp(x) for x not nan (``bounded``: x already within the clamp bounds)."""
    lo, hi = (None, None) if bounded else _exp_limits(c.fmt)
    k, r = _exp_reduce(c, x, lo, hi)
    # exp(r) = 1 + r*(1 + r*P(r)): Horner to the end, the last step rounding
    # once; the inner rounding is damped by |r| <= 0.35.
    one = c.k(1.0)
    e = c.mad(r, c.mad(r, c.poly(r, _coeffs("exp", c.fmt)), one), one)
    # 2^k * exp(r), rounded once (into the subnormals too); k = 1024 (x
    # just below overflow) works.
    return c.ldexp(e, k)


def _expm1(c: _Ctx, x):
    return _expm1_short(c, x)


def _expm1_short(c: _Ctx, x):
    """expm1 by a short path: no three-term sum, no scaling in two steps.

    x = k*ln2 + r, q = r^2*P(r) (so expm1(r) = r + q), and expm1(x) = 2^k * (c + r + q)
    with c = 1 - 2^-k: one sum, scaled exactly.  k = 0 (|x| < 0.35): c = 0, r = x
    exactly and the sum is r + q, with full relative accuracy for small x.  Otherwise
    |expm1(x)| >= 0.29 and c + r is added first: exact where it cancels most (k = 1,
    r < -1/4, where 2*expm1(r) + 1 comes down to 0.41), so only r's own rounding error
    (half an ulp of r) is amplified there; float64 adds it back, float32 leaves it
    (1.32 ulp at most on every 16th float32).  c is exact for |k| <= prec and rounds
    to 1 beyond (where the -1 is below half an ulp).  expm1 has x's sign, so the result
    takes it: -0.0 stays -0.0 (the reduction turns it into +0.0).

    On AVX-512 the clamp keeps nan (its compares are false), which then passes through
    every step (vscalefpd, not a float-to-int conversion, does the scaling); elsewhere
    the clamp turns nan into lo (the int conversions need it) and a select restores it.
    """
    fmt = c.fmt
    ln2_hi, ln2_lo = fmt.split(_LN2, fmt.prec - fmt.kbits)
    # Below lo expm1 is -1 (from -37.5 in float64, -17.4 in float32); above hi it
    # overflows (from 709.8, 88.73): k stays within [-73, 1039] and [-44, 145].
    lo_v, hi_v = (-50.0, 720.0) if fmt.f64 else (-30.0, 100.0)
    lo, hi = c.k(lo_v), c.k(hi_v)
    if c.avx512:
        xc = c.sel(c.lt(x, lo), lo, x)
        xc = c.sel(c.gt(xc, hi), hi, xc)
    else:
        xc = c.clamp(x, lo_v, hi_v)
    k = c.rint(c.mul(xc, c.k(_LOG2E)))
    nk = c.neg(k)
    r_hi = c.mad(nk, c.k(ln2_hi), xc)                         # exact
    r = c.mad(nk, c.k(ln2_lo), r_hi)
    q = c.mul(r, r)
    if fmt.f64:
        # r's rounding error as well (three operations; without it 1.5 ulp)
        q = c.mad(q, c.poly(r, _coeffs("exp", fmt)), c.mad(nk, c.k(ln2_lo), c.sub(r_hi, r)))
    else:
        q = c.mul(q, c.poly(r, _coeffs("exp", fmt)))
    one = c.k(1.0)
    if c.avx512:
        y = c._avx512("scalef", c.add(c.add(c.sub(one, c._avx512("scalef", one, nk)), r), q), k)
    else:
        n = c.to_i32(k)
        cap = c.ki32(fmt.prec + 1)
        n25 = c.b.select(c.b.icmp_signed("<", n, cap), n, cap)
        y = c.ldexp(c.add(c.add(c.sub(one, c.pow2i(c.b.neg(n25))), r), q), k)
        y = c.sel(c.isnan(x), x, y)
    return c.copysign(y, x)


# ---------------------------------------------------------------------------
# log / log1p core
# ---------------------------------------------------------------------------

def _log_core(c: _Ctx, k, f, corr, wide=False):
    """k*ln2 + log(1 + f) + corr, for f in [sqrt(1/2)-1, sqrt(2)-1] (``wide``:
    [-1/4, 1/2), with a polynomial one degree higher).

    With s = f/(2+f), log(1+f) = 2 atanh(s) = 2s + s*z*R(z), z = s^2 (fdlibm's R).
    Since 2s = f - s*f, that is f - s*(f - z*R(z)): the leading term f is exact and
    s's rounding errors only reach the correction s*(f - z*R), about f^2/2 (a
    quarter of the result or less), computed in two fused multiply-adds together
    with the other small terms (k*LN2_LO and corr: log1p's corr can cancel much of
    f, so it must not meet f first); then f, and an exact k*LN2_HI in the last,
    once-rounded step.  (fdlibm's own rearrangement, f - hfsq + s*(hfsq + R),
    takes nine operations after the polynomial, this one five.)
    """
    fmt = c.fmt
    ln2_hi, ln2_lo = fmt.split(_LN2, fmt.prec - fmt.kbits)
    s = c.div(f, c.add(c.k(2.0), f))
    z = c.mul(s, s)
    R = c.poly(z, _coeffs("log_wide" if wide else "log", fmt))
    lo = c.mad(k, c.k(ln2_lo), corr)
    small = c.mad(c.neg(s), c.mad(c.neg(z), R, f), lo)   # lo - s*(f - z*R)
    return c.mad(k, c.k(ln2_hi), c.add(f, small))


def _log(c: _Ctx, x):
    fmt = c.fmt
    if c.avx512:
        k, m = c.frexp_avx512(x)
    else:
        # Subnormal inputs have no implicit leading bit: scale them into the
        # normal range first and subtract the scale from the exponent.
        smallest_normal = 2.0 ** (1 - fmt.bias)
        scale_bits = 54 if fmt.f64 else 25
        sub = c.lt(x, c.k(smallest_normal))
        xs = c.sel(sub, c.mul(x, c.k(2.0**scale_bits)), x)
        k, m = c.frexp_sqrt2(xs)
        k = c.sub(k, c.sel(sub, c.k(float(scale_bits)), c.k(0.0)))
    y = _log_core(c, k, c.sub(m, c.k(1.0)), c.k(0.0), wide=c.avx512)   # m - 1 exact (Sterbenz)
    # Outside (0, inf): log(x<0) = nan, log(+-0) = -inf, log(inf) = inf, nan.
    if c.avx512:
        return c.fixup_avx512(y, x, {"nan": "x", "zero": "-inf", "+inf": "+inf", "-inf": "nan",
                                     "neg": "nan"})
    y = c.sel(c.lt(x, c.k(0.0)), c.k(math.nan), y)
    y = c.sel(c.eq(x, c.k(0.0)), c.k(-math.inf), y)
    return c.sel(c.b.fcmp_unordered(">=", x, c.k(math.inf)), x, y)


def _log1p(c: _Ctx, x):
    # u = fl(1 + x) loses the low bits of x; as in fdlibm they are
    # recovered as corr = (1 + x - u)/u and added: log(1+x) ~ log(u) + corr.
    # 1 + x - u is computed exactly as x - (u - 1) (u - 1 is exact for
    # 0.5 <= u < 2^prec, and x = 1 + x - u exactly when u < 0.5).  Once
    # u >= 2^prec, u - 1 may round, but then |x - (u - 1)| <= 1.5 ulp(u) and
    # corr <= 2^-(prec-1) is far below an ulp of log(u) >= 16.6.
    u = c.add(c.k(1.0), x)
    # u >= 2^-53 (normal) whenever x > -1
    k, m = c.frexp_avx512(u) if c.avx512 else c.frexp_sqrt2(u)
    one = c.k(1.0)
    num = c.sub(x, c.sub(u, one))
    corr = c.div(num, u)             # all of the result when u rounds to 1
    y = _log_core(c, k, c.sub(m, one), corr, wide=c.avx512)
    # For |x| < 2^-prec, u = 1, k = f = 0 and y = corr = x exactly (subnormals
    # too), except that -0.0 comes out as +0.0.
    y = c.sel(c.eq(x, c.k(0.0)), x, y)
    if c.avx512:                     # by u = 1 + x: 0 for x = -1 (only), < 0 below
        return c.fixup_avx512(y, u, {"nan": "x", "zero": "-inf", "+inf": "+inf", "-inf": "nan",
                                     "neg": "nan"})
    y = c.sel(c.lt(x, c.k(-1.0)), c.k(math.nan), y)
    y = c.sel(c.eq(x, c.k(-1.0)), c.k(-math.inf), y)
    return c.sel(c.b.fcmp_unordered(">=", x, c.k(math.inf)), x, y)     # inf, nan


# ---------------------------------------------------------------------------
# Functions built on exp/expm1/log1p
# ---------------------------------------------------------------------------

# float64 tanh on [0, 0.625): a + a*z*P(z)/Q(z), z = a^2, Q monic (Cephes' tanh.c
# coefficients; relative error below 2.5e-16 there)
_TANH_P = (-1.61468768441708447952e3, -9.92877231001918586564e1, -9.64399179425052238628e-1)
_TANH_Q = (4.84406305325125486048e3, 2.23548839060100448583e3, 1.12811678491632931402e2, 1.0)


def _tanh(c: _Ctx, x):
    if not c.fmt.f64:
        return _tanh_f32(c, x)
    # a = |x|, two regimes selected branch-free, one division for both:
    #   a < 0.625: tanh a = a + a*z*P(z)/Q(z), z = a^2 (full relative accuracy near 0);
    #   otherwise: tanh a = 1 - 2/(e + 1), e = exp(2a) >= 3.49: the error of the
    #              quotient (at most 0.45) is damped against the result (>= 0.55).
    # a is clamped to 22, where tanh is 1 to double precision (a nan a becomes 22; the
    # result is replaced at the end).
    a = c.fabs(x)
    a = c.sel(c.lt(a, c.k(22.0)), a, c.k(22.0))
    small = c.lt(a, c.k(0.625))
    z = c.mul(a, a)
    e = _exp_core(c, c.mul(c.k(2.0), a), bounded=True)
    one = c.k(1.0)
    q = c.div(c.sel(small, c.poly(z, _TANH_P), c.k(2.0)), c.sel(small, c.poly(z, _TANH_Q), c.add(e, one)))
    t = c.sel(small, c.mad(c.mul(a, z), q, a), c.sub(one, q))
    y = c.copysign(t, x)             # odd function; keeps tanh(-0.0) = -0.0
    return c.sel(c.isnan(x), x, y)


# float32 tanh on AVX-512: 32 intervals of |x| of this width (exact in float32), up to
# the clamp (tanh(9.1) rounds to 1); tools/vecmath_coeffs.py's TANH_TABLE.
_TANH_TABLE_N, _TANH_TABLE_W, _TANH_TABLE_CLAMP = 32, 37 / 128, 9.1


def _tanh_f32_table(c: _Ctx, x):
    """float32 tanh on AVX-512 by a table of polynomials (as numpy's own AVX-512 tanh):
    i = rint(|x|/w), t = |x| - i*w in [-w/2, w/2], tanh|x| = P_i(t), a degree-5
    polynomial whose 6 coefficients come out of 32-entry tables held in registers
    (vpermi2ps), and the sign of x.  No exponential, no division, no second branch:
    17 operations where the two-branch form takes 28.  (Degree 6 measured 1.1 ulp
    at most and ran 15% slower; degree 5 is within 1.77 ulp on every 16th float32,
    its worst in the intervals next to 0, where rounding the coefficients to float32
    costs most.)

    i comes from adding 2^23 (|x|/w <= 31.5 rounds to an integer in the low mantissa
    bits, which are the permutes' index); t = |x| - i*w is exact.  The first
    interval's polynomial is t*(1 + t*...) (0 and 1 exactly), so tiny x,
    subnormals and -0.0 come out as x.  The clamp's compare is false for nan, which
    then passes through every step (its index bits are harmless).
    """
    a = c.fabs(x)
    cl = c.k(_TANH_TABLE_CLAMP)
    a = c.sel(c.gt(a, cl), cl, a)
    magic = c.k(2.0**23)
    shifted = c.mad(a, c.k(1 / _TANH_TABLE_W), magic)          # 2^23 + rint(|x|/w)
    i = c.sub(shifted, magic)
    t = c.mad(c.neg(i), c.k(_TANH_TABLE_W), a)                 # exact
    idx = c.b.bitcast(shifted, c.ity)
    table = _coeffs("tanh_table", c.fmt)
    per = len(table) // _TANH_TABLE_N

    def coefficient(j):
        return c.permute_avx512([table[n * per + j] for n in range(_TANH_TABLE_N)], idx)

    acc = coefficient(per - 1)
    for j in reversed(range(per - 1)):
        acc = c.mad(acc, t, coefficient(j))
    return c.copysign(acc, x)


def _tanh_f32(c: _Ctx, x):
    if c.avx512:
        return _tanh_f32_table(c, x)
    # float32 has room for a cheaper split (a = |x|), both computed and one
    # selected: below a = 0.55 an odd polynomial a + a*z*T(z), z = a^2 (full
    # relative accuracy near 0, no expm1); above it 1 - 2/(exp(2a) + 1), where
    # the result is >= 1/2 and the rounding errors of exp(2a) + 1 and of the
    # reciprocal are damped.
    a = c.fabs(x)
    z = c.mul(a, a)
    small = c.mad(c.mul(a, z), c.poly(z, _coeffs("tanh", c.fmt)), a)
    one = c.k(1.0)
    # tanh(20) is 1 in float32: the clamp keeps exp(2a) finite
    # (and turns nan into 20: no nan reaches exp's float-to-int conversion).
    a20 = c.sel(c.lt(a, c.k(20.0)), a, c.k(20.0))
    e = _exp_core(c, c.add(a20, a20), bounded=True)
    large = c.sub(one, c.div(one, c.mad(e, c.k(0.5), c.k(0.5))))    # 1 - 2/(e + 1)
    # A nan x takes the polynomial's branch (the compare is false), which
    # keeps it nan.
    t = c.sel(c.ge(a, c.k(0.55)), large, small)
    return c.copysign(t, x)          # odd function; keeps tanh(-0.0) = -0.0


def _sigmoid(c: _Ctx, x):
    # z = exp(-|x|) is in (0, 1], so nothing overflows:
    #   x >= 0: 1/(1 + z);   x < 0: z/(1 + z)  (= e^x/(1 + e^x)).
    # The rounding error dl of d = 1 + z is added back to first order, as
    # in tanh; the error of z is then damped by at most 1.
    one = c.k(1.0)
    z = _exp(c, c.neg(c.fabs(x)))
    d = c.add(one, z)
    dl = c.add(c.sub(one, d), z)                      # Fast2Sum error, 1 >= z
    y = c.div(c.sel(c.ge(x, c.k(0.0)), one, z), d)
    y = c.mad(c.neg(y), c.small_quotient(dl, d), y)
    return c.sel(c.isnan(x), x, y)


def _softplus(c: _Ctx, x):
    # log(1 + e^x) = max(x, 0) + log1p(e^-|x|): the exponential is <= 1,
    # and for very negative x the result is log1p(e^x) ~ e^x (down into the
    # subnormals) rather than log(1 + tiny) = 0.
    z = _exp(c, c.neg(c.fabs(x)))
    l = _log1p(c, z)
    y = c.add(c.sel(c.gt(x, c.k(0.0)), x, c.k(0.0)), l)
    return c.sel(c.isnan(x), x, y)


# ---------------------------------------------------------------------------
# sin / cos
# ---------------------------------------------------------------------------

def _trig_reduce(c: _Ctx, x):
    """x = fn*pi/2 + (y0 + y1), |y0| <= pi/4 (about); returns (y0, y1, fn).

    float64 (fdlibm's "medium" reduction, made branch-free): pi/2 is split
    in three 33-bit pieces P1, P2, P3 and a 53-bit tail P3T.  For
    |fn| < 2^20 every product fn*Pi is exact, x - fn*P1 is exact, and the
    rounding errors of the next two subtractions are captured exactly with
    TwoSum, so y0 + y1 carries ~150 bits of pi/2: enough for the worst
    cancellation near multiples of pi/2 in that range.  y1 is None for
    float32.

    float32: four full-precision float32 pieces of pi/2 with a true fused
    multiply-add (x - fn*P1 with a single rounding is exact), ~96 bits of
    pi/2 (an FMA-free split would need ~10 pieces); accurate for |x| < 2^21.

    Larger |x| would need Payne-Hanek; instead y0 (and y1) are clamped so
    the kernels still return finite values in [-1, 1] (not accurate).
    """
    fmt = c.fmt
    fn = c.rint(c.mul(x, c.k(_TWO_OVER_PI)))
    nfn = c.neg(fn)
    if fmt.f64:
        p1 = _round_bits(_PIO2, 33)
        p2 = _round_bits(_PIO2 - p1, 33)
        p3 = _round_bits(_PIO2 - p1 - p2, 33)
        p3t = fmt.rnd(_PIO2 - p1 - p2 - p3)
        r1 = c.mad(nfn, c.k(float(p1)), x)                       # exact
        r2, d2 = c.two_diff(r1, c.mul(fn, c.k(float(p2))))      # fn*P2 exact
        r3, d3 = c.two_diff(r2, c.mul(fn, c.k(float(p3))))      # fn*P3 exact
        tail = c.sub(c.mul(fn, c.k(p3t)), c.add(d2, d3))
        y0 = c.sub(r3, tail)
        y1 = c.sub(c.sub(r3, y0), tail)                          # Fast2Sum error
        y1 = c.clamp(y1, -2.0**-30, 2.0**-30)
    else:
        p1 = _round_bits(_PIO2, 24)
        p2 = _round_bits(_PIO2 - p1, 24)
        p3 = _round_bits(_PIO2 - p1 - p2, 24)
        p4 = _round_bits(_PIO2 - p1 - p2 - p3, 24)
        y0 = c.fma(nfn, c.k(float(p1)), x)                      # exact
        y0 = c.fma(nfn, c.k(float(p2)), y0)
        # The last two pieces are tiny next to y0: sum them first so y0 is
        # rounded once more, not twice.
        y0 = c.add(y0, c.fma(nfn, c.k(float(p4)), c.mul(nfn, c.k(float(p3)))))
        y1 = None
    # In float32, x*2/pi is rounded to 24 bits, so for |x| >~ 2^17 fn can be
    # off by one and |y0| exceed pi/4 (up to ~0.86 at 2^20); the kernels stay
    # accurate up to 1.  The clamp only matters past the accurate domain.
    bound = 0.8 if fmt.f64 else 1.0
    y0 = c.clamp(y0, -bound, bound)
    return y0, y1, fn


def _sin_kernel(c: _Ctx, y0, y1, z):
    """sin(y0 + y1) ~ sin(y0) + y1*cos(y0), cos(y0) ~ 1 - z/2, z = y0^2."""
    p = c.poly(z, _coeffs("sin", c.fmt))
    v = c.mul(z, y0)
    if y1 is None:
        return c.mad(v, p, y0)
    tail = c.sub(y1, c.mul(c.mul(c.k(0.5), z), y1))
    return c.add(y0, c.mad(v, p, tail))


def _cos_kernel(c: _Ctx, y0, y1, z):
    """cos(y0 + y1) ~ cos(y0) - y1*y0.

    fdlibm: w = 1 - z/2 is rounded; ((1 - w) - z/2) is that rounding error
    exactly, and is added back with the small terms, which avoids losing
    bits in the cancellation 1 - z/2 for |y0| near pi/4.
    """
    hz = c.mul(c.k(0.5), z)
    w = c.sub(c.k(1.0), hz)
    small = c.mul(c.mul(z, z), c.poly(z, _coeffs("cos", c.fmt)))
    if y1 is not None:
        small = c.sub(small, c.mul(y0, y1))
    return c.add(w, c.add(c.sub(c.sub(c.k(1.0), w), hz), small))


def _trig_reduce_f32_without_fma(c: _Ctx, x):
    """float32 reduction for hosts without FMA, where llvm.fma would become
    a libm call: run the exact float64 reduction on fpext(x) and round y0 to
    float32 (fn < 2^24 converts exactly).  Correct, but the double
    arithmetic halves the vector width of float32 loops."""
    c64 = c.retyped(ir.DoubleType())
    y0, _, fn = _trig_reduce(c64, c.b.fpext(x, c64.ty))
    return c.b.fptrunc(y0, c.ty), None, c.b.fptrunc(fn, c.ty)


def _sincos_f32_by_pi(c: _Ctx, x, is_cos: bool):
    """float32 sin/cos with FMA, from one polynomial: x = n*pi + y with
    |y| <= pi/2 (about), sin(x) = (-1)^n sin(y); and x = (m + 1/2)*pi + y,
    cos(x) = (-1)^(m+1) sin(y).  (The quadrant reduction by pi/2 needs both a
    sine and a cosine polynomial and selects.)

    n (m + 1) comes out of adding 1.5*2^23, which rounds to an integer in the
    low mantissa bits: its parity bit, shifted into the sign, flips the
    result.  pi is split into four float32 pieces as in ``_trig_reduce``
    (n*P1 and x - n*P1 exact with a fused multiply-add for |n| < 2^22).  Near
    the accurate limit (2^21) x/pi is off by up to 0.05 (the product's
    rounding to 1/16 and 1/pi's), so |y| may reach pi/2 + 0.16; the
    polynomial holds to 1.76.  Beyond the limit y is clamped
    (results finite, in [-1, 1], not accurate).  nan and +-inf give nan by
    themselves (the clamp's compares are false for nan), and sin keeps -0.0
    (the result takes y's sign, which sin(y) has for |y| < pi).
    """
    magic = 1.5 * 2.0**23
    inv_pi = c.k(1 / _PI)
    if is_cos:
        m = c.floor(c.mul(x, inv_pi))
        h = c.add(m, c.k(0.5))
        t = c.add(m, c.k(magic + 1.0))                          # low bit: m + 1
    else:
        t = c.fma(x, inv_pi, c.k(magic))                        # low bit: n
        h = c.sub(t, c.k(magic))                                # n = rint(x/pi)
    # Pieces rounded down, so all are positive: for x = -0.0 every product
    # with -h = -0.0 is -0.0 and y stays -0.0 (a negative piece would make
    # a +0.0 product, and -0.0 + +0.0 is +0.0).
    pieces, rest = [], _PI
    for _ in range(4):
        pieces.append(_trunc_bits(rest, 24))
        rest -= pieces[-1]
    p1, p2, p3, p4 = pieces
    nh = c.neg(h)
    y = c.fma(nh, c.k(float(p1)), x)                            # exact
    y = c.fma(nh, c.k(float(p2)), y)
    y = c.add(y, c.fma(nh, c.k(float(p4)), c.mul(nh, c.k(float(p3)))))
    bound = c.k(1.76)
    y = c.sel(c.gt(y, bound), bound, y)
    y = c.sel(c.lt(y, c.neg(bound)), c.neg(bound), y)
    z = c.mul(y, y)
    v = c.copysign(c.mad(c.mul(y, z), c.poly(z, _coeffs("sin_pi", c.fmt)), y), y)
    flip = c.b.shl(c.b.bitcast(t, c.ity), c.ki(31))
    y = c.b.bitcast(c.b.xor(c.b.bitcast(v, c.ity), flip), c.ty)
    if is_cos:
        # sin(+-fl(pi/2)) rounds to 1 - 1 ulp about as often as to 1: cos(x) is
        # 1 for |x| < 2^-13 (cos(+-0) = 1 exactly, as in numpy).
        y = c.sel(c.lt(c.fabs(x), c.k(2.0**-13)), c.k(1.0), y)
    return y


def _sincos(c: _Ctx, x, is_cos: bool):
    if not c.fmt.f64 and c.fma_ok:
        return _sincos_f32_by_pi(c, x, is_cos)
    if c.fmt.f64 or c.fma_ok:
        y0, y1, fn = _trig_reduce(c, x)
    else:
        y0, y1, fn = _trig_reduce_f32_without_fma(c, x)
    z = c.mul(y0, y0)
    s = _sin_kernel(c, y0, y1, z)
    co = _cos_kernel(c, y0, y1, z)
    # Quadrant q = fn mod 4 in float arithmetic (no float->int conversion,
    # which would be poison for huge fn): exact for |fn| < 2^53.
    q = c.sub(fn, c.mul(c.k(4.0), c.floor(c.mul(fn, c.k(0.25)))))
    if is_cos:
        q = c.add(q, c.k(1.0))       # cos(x) = sin(x + pi/2)
        q = c.sel(c.ge(q, c.k(4.0)), c.sub(q, c.k(4.0)), q)
    odd = c.b.or_(c.eq(q, c.k(1.0)), c.eq(q, c.k(3.0)))
    neg = c.ge(q, c.k(2.0))
    v = c.sel(odd, co, s)
    y = c.sel(neg, c.neg(v), v)
    if not is_cos:
        # sin(x) == x for tiny x; keeps sin(-0.0) = -0.0.
        tiny = 2.0**-27 if c.fmt.f64 else 2.0**-12
        y = c.sel(c.lt(c.fabs(x), c.k(tiny)), x, y)
    y = c.sel(c.eq(c.fabs(x), c.k(math.inf)), c.k(math.nan), y)
    return c.sel(c.isnan(x), x, y)


def _sin(c, x): return _sincos(c, x, is_cos=False)
def _cos(c, x): return _sincos(c, x, is_cos=True)


_IMPL = {
    "exp": _exp, "log": _log, "log1p": _log1p, "expm1": _expm1, "tanh": _tanh,
    "sigmoid": _sigmoid, "softplus": _softplus, "sin": _sin, "cos": _cos,
}
