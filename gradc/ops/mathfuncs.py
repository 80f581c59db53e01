"""numpy's element-wise math beyond the primitives, composed at trace time.

Each function here is built from primitives (exp, expm1, log1p, softplus, sin, cos,
pow, where, ...), so it has its derivatives for free and nothing to add to the
backends.  The formulations are chosen to be accurate in the forward AND the adjoint:

* ``logaddexp(a, b)``: the larger operand plus ``softplus`` of the (non-positive)
  difference, taken on whichever side is larger; both sides have the exact gradients
  ``sigmoid(a - b)``, ``sigmoid(b - a)``, so a tie gets 1/2, 1/2.
* ``sinh``/``cosh`` from ``u = expm1(|x|)``: ``(u + u/(u+1))/2`` and
  ``1 + u (u/(u+1))/2`` lose nothing near 0 (``cosh``'s adjoint is then no
  ``(E - 1/E)/2`` cancellation); beyond |x| = 709 (where ``expm1`` overflows first)
  ``(exp(|x|/2)/2) exp(|x|/2)``, which overflows exactly where numpy's does.
* ``arctan``: Cephes' rational approximation on ``[0, 0.66]`` after the reductions
  ``atan q = pi/4 + atan((q-1)/(q+1))`` and ``atan x = pi/2 - atan(1/x)``; ``arctan2``
  always takes the arctangent of the ratio of the smaller to the larger magnitude, so
  no branch divides by zero; ``arcsin``/``arccos`` are ``arctan2`` of ``x`` and
  ``sqrt((1-x)(1+x))``.
* ``floor_divide`` and ``remainder`` as numpy computes them (``npy_divmod``): the exact
  remainder from the ``fmod`` primitive, the quotient snapped to the integer nearest
  ``(a - mod)/b``, so ``a // b`` and ``a % b`` are numpy's bits and agree; ``hypot``
  scaled by the larger magnitude (no overflow of the squares).
* ``arcsinh`` as fdlibm: ``log1p(a + a^2/(1+sqrt(1+a^2)))``, ``log(a) + ln 2`` beyond
  2**28; ``arctanh(x) = log1p(2a/(1-a))/2``.

gradc has no vector implementation of its own for these functions (their LLVM code is
the composition of the primitives' vector implementations); the accuracy of each is
measured against numpy by tests/test_numpy_api.py.

A branch chosen by ``where`` is computed everywhere; its input is clamped to the branch's
own domain (the "double where"), so the branch not taken never produces an inf or nan
whose zero cotangent would turn the gradient into a nan.
"""
from __future__ import annotations

import decimal
import functools
import math
from fractions import Fraction

import numpy as np

from . import elementwise as ew
from .elementwise import (convert, exp, expm1, log, log1p, maximum, minimum, softplus, sqrt,
                          where)


def _trace():
    from .. import tracer as trace
    return trace


def _floats(*xs):
    """The operands as traced values of their common float dtype."""
    t = _trace()
    dt = ew.result_dtype(xs, float_result=True)
    return [convert(x, dt) for x in xs] if t.current() is not None else xs


def composite(reference, floats=True):
    """numpy ``reference`` answers on concrete inputs outside a trace; otherwise the
    decorated composition runs on traced operands (converted to floats unless
    ``floats`` is False: predicates keep an integer's dtype)."""
    def wrap(f):
        @functools.wraps(f)
        def g(*xs, **kw):
            t = _trace()
            if t.current() is None and not any(isinstance(x, t.Value) for x in xs):
                return reference(*xs, **kw)
            return f(*(_floats(*xs) if floats else [t.to_value(x) for x in xs]), **kw)
        return g
    return wrap


def _full(x, value, dtype=np.bool_):
    from .structure import full_like
    return full_like(x, value, dtype)


# ----------------------------------------------------------------------------- predicates
@composite(np.isnan, floats=False)
def isnan(x):
    """x != x (an unordered comparison: true exactly for nan)."""
    if x.dtype.kind != "f":
        return _full(x, False)
    return ew.not_equal(x, x)


@composite(np.isinf, floats=False)
def isinf(x):
    if x.dtype.kind != "f":
        return _full(x, False)
    return ew.equal(ew.abs(x), np.inf)


@composite(np.isfinite, floats=False)
def isfinite(x):
    """|x| < inf: false for inf and for nan (an ordered comparison)."""
    if x.dtype.kind != "f":
        return _full(x, True)
    return ew.less(ew.abs(x), np.inf)


def logical_or(a, b):
    t = _trace()
    if t.current() is None and not any(isinstance(v, t.Value) for v in (a, b)):
        return np.logical_or(a, b)
    return ew.logical_not(ew.logical_and(ew.logical_not(a), ew.logical_not(b)))


@composite(np.signbit, floats=False)
def signbit(x):
    """x < 0, or x is -0.0 (1/x is then -inf)."""
    if x.dtype.kind != "f":
        return ew.less(x, 0)
    safe = where(ew.equal(x, 0.0), x, 1.0)
    return logical_or(ew.less(x, 0.0), ew.less(1.0 / safe, 0.0))


def _odd(f, x):
    """f(x) for an odd f computed on |x| (the sign restored by select, so the derivative
    at 0 is f'(0), not sign(0) f'(0) = 0); -0.0 keeps its sign."""
    neg = ew.less(x, 0.0)
    a = where(neg, -x, x)
    v = f(a)
    return where(neg, -v, v)


# ----------------------------------------------------------------------------- exp and log
@composite(np.logaddexp)
def logaddexp(a, b):
    """log(exp(a) + exp(b)) without overflow: max + softplus(-|a - b|)."""
    return _logaddexp(a, b, softplus)


@composite(np.logaddexp2)
def logaddexp2(a, b):
    """log2(2**a + 2**b) = max + log2(1 + 2**(-|a-b|)).  The tail is log1p(2**d) (not
    softplus(d ln 2): rounding d ln 2 costs |d| ulp once exponentiated)."""
    return _logaddexp(a, b, lambda d: _times(log1p(ew.power(convert(2.0, d.dtype), d)), _LOG2E))


def _logaddexp(a, b, tail):
    """The larger operand plus ``tail`` of minus the distance, on each side."""
    a_wins = ew.greater_equal(a, b)
    d = b - a
    # a == b == +-inf: b - a is nan, the answer is a (the tail of 0 is finite); a nan
    # operand stays nan, and a finite tie keeps the gradient of d
    d = where(ew.logical_and(ew.equal(a, b), isinf(a)), 0.0, d)
    return where(a_wins, a + tail(where(a_wins, d, 0.0)), b + tail(where(a_wins, 0.0, -d)))


@composite(np.exp2)
def exp2(x):
    """2**x as pow(2, x) (exact at integers; exp(x ln 2) loses |x| ulps)."""
    return ew.power(convert(2.0, x.dtype), x)


# 1/ln 2 and 1/ln 10 to 40 digits: split per dtype into a rounded high part and the
# rest, so the product with log(x) loses no more than its own rounding (float32's
# 1/ln 10 alone is off by 0.4 ulp, which log10 would pass on)
_LOG2E = Fraction(decimal.Decimal("1.442695040888963407359924681001892137427"))
_LOG10E = Fraction(decimal.Decimal("0.4342944819032518276511289196583745281779"))


def _times(y, c: Fraction):
    hi = np.dtype(y.dtype).type(float(c))
    lo = float(c - Fraction(float(hi)))
    return where(isfinite(y), y * float(hi) + y * lo, y * float(hi))   # inf * lo may be -inf


@composite(np.log2)
def log2(x):
    return _times(log(x), _LOG2E)


@composite(np.log10)
def log10(x):
    return _times(log(x), _LOG10E)


@composite(np.cbrt)
def cbrt(x):
    """sign(x) |x|**(1/3), odd by construction.  pow(a, 1/3) is off by (1/3 - fl(1/3))
    ln a relative (60 ulp at 1e300); one Newton step y + (a/y^2 - y)/3 restores the last
    bits, and its derivative is exactly 1/(3 y^2) whatever the error of the first y."""
    def on_abs(a):
        y = ew.power(a, 1.0 / 3.0)
        ok = ew.logical_and(y > 0.0, isfinite(y))
        ys = where(ok, y, 1.0)
        return where(ok, ys + (a / (ys * ys) - ys) * (1.0 / 3.0), y)
    return _odd(on_abs, x)


def reciprocal(x):
    t = _trace()
    if not isinstance(x, t.Value) and t.current() is None:
        return np.reciprocal(x)
    x = t.to_value(x)
    if x.dtype.kind != "f":
        from ..errors import UnsupportedError
        raise UnsupportedError(f"reciprocal of {x.dtype} is an integer division in numpy "
                               "(1/2 == 0); gradc supports it for floats: use 1.0 / x")
    return 1.0 / x


# ----------------------------------------------------------------------------- hyperbolic
def _split(a):
    """expm1 overflows at 709.78 (float32: 88.72), sinh and cosh at 710.48 (89.42)."""
    return 709.0 if a.dtype == np.float64 else 88.0


def _big_half_exp(a):
    """exp(a)/2 for a >= the split as (exp(a/2)/2) exp(a/2): finite as far as numpy's."""
    e = exp(0.5 * maximum(a, _split(a)))
    return (0.5 * e) * e


@composite(np.sinh)
def sinh(x):
    def on_abs(a):
        u = expm1(minimum(a, _split(a)))
        return where(a < _split(a), 0.5 * (u + u / (u + 1.0)), _big_half_exp(a))
    return _odd(on_abs, x)


@composite(np.cosh)
def cosh(x):
    a = ew.abs(x)
    u = expm1(minimum(a, _split(a)))
    return where(a < _split(a), 1.0 + 0.5 * u * (u / (u + 1.0)), _big_half_exp(a))


@composite(np.arcsinh)
def arcsinh(x):
    big = 2.0 ** 28        # 1 + a^2 == a^2 in float64 beyond; fdlibm's switch
    def on_abs(a):
        s = minimum(a, big)
        small = log1p(s + s * s / (1.0 + sqrt(1.0 + s * s)))
        return where(a < big, small, log(maximum(a, big)) + math.log(2.0))
    return _odd(on_abs, x)


@composite(np.arctanh)
def arctanh(x):
    return _odd(lambda a: 0.5 * log1p(2.0 * a / (1.0 - a)), x)


# ----------------------------------------------------------------------------- trigonometric
@composite(np.tan)
def tan(x):
    return ew.sin(x) / ew.cos(x)


# Cephes atan.c: atan(t) = t + t z P(z)/Q(z), z = t^2, for |t| <= 0.66
_ATAN_P = (-8.750608600031904122785e-1, -1.615753718733365076637e1, -7.500855792314704667340e1,
           -1.228866684490136173410e2, -6.485021904942025371773e1)
_ATAN_Q = (2.485846490142306297962e1, 1.650270098316988542046e2, 4.328810604912902668951e2,
           4.853903996359136964868e2, 1.945506571482613964425e2)
_PIO2_LO = 6.123233995736765886130e-17    # pi/2 - float64(pi/2)


def _horner(z, coeffs, leading_one=False):
    acc = z + coeffs[0] if leading_one else coeffs[0]
    for c in coeffs[1:]:
        acc = acc * z + c
    return acc


def _atan01(q):
    """atan(q) for 0 <= q <= 1 (nan stays nan)."""
    mid = q > 0.66
    t = where(mid, (q - 1.0) / (q + 1.0), q)
    z = t * t
    r = t + t * (z * _horner(z, _ATAN_P) / _horner(z, _ATAN_Q, leading_one=True))
    return where(mid, (math.pi / 4 + 0.5 * _PIO2_LO) + r, r)


def _atan2_abs(num, den):
    """atan2(num, den) for num, den >= 0: the arctangent of the smaller over the larger."""
    swap = num > den
    lo, hi = where(swap, den, num), where(swap, num, den)
    both_inf = ew.logical_and(isinf(lo), isinf(hi))
    q = where(both_inf, 1.0, lo / where(hi == 0.0, 1.0, hi))
    r = _atan01(q)
    return where(swap, (math.pi / 2 - r) + _PIO2_LO, r)


@composite(np.arctan)
def arctan(x):
    return _odd(lambda a: _atan2_abs(a, _full(a, 1.0, a.dtype)), x)


@composite(np.arctan2)
def arctan2(y, x):
    """The angle of (x, y) in (-pi, pi], with numpy's signed zeros and infinities.  The
    magnitudes are taken by select, not abs, so the derivative at y = 0 (or x = 0) is the
    limit's (abs'(0) = 0 would give 0: arcsin'(0) = 0 instead of 1)."""
    r = _atan2_abs(where(signbit(y), -y, y), where(signbit(x), -x, x))
    r = where(signbit(x), (math.pi - r) + 2 * _PIO2_LO, r)
    return where(signbit(y), -r, r)


@composite(np.arcsin)
def arcsin(x):
    return arctan2(x, sqrt((1.0 - x) * (1.0 + x)))


@composite(np.arccos)
def arccos(x):
    return arctan2(sqrt((1.0 - x) * (1.0 + x)), x)


# ----------------------------------------------------------------------------- steps and values
def heaviside(x1, x2):
    """0 where x1 < 0, x2 where x1 == 0, 1 where x1 > 0 (nan where x1 is nan)."""
    t = _trace()
    if t.current() is None and not any(isinstance(v, t.Value) for v in (x1, x2)):
        return np.heaviside(x1, x2)
    x1, x2 = _floats(x1, x2)
    return where(x1 > 0.0, 1.0, where(x1 < 0.0, 0.0, where(x1 == 0.0, x2, np.nan)))


def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """nan -> ``nan``, +-inf -> ``posinf``/``neginf`` (default: the dtype's largest
    finite values); the derivative is 1 where x is finite, 0 elsewhere."""
    t = _trace()
    if not isinstance(x, t.Value) and t.current() is None:
        return np.nan_to_num(x, copy=copy, nan=nan, posinf=posinf, neginf=neginf)
    x = t.to_value(x)
    if x.dtype.kind != "f":
        return x
    big = float(np.finfo(x.dtype).max)
    hi = big if posinf is None else posinf
    lo = -big if neginf is None else neginf
    return where(isnan(x), nan, where(x == np.inf, hi, where(x == -np.inf, lo, x)))


# ----------------------------------------------------------------------------- rounding and remainders
def _integral(name, integers_keep):
    """numpy.floor, ceil, trunc and rint: the primitive on floats; an integer (or a
    boolean) is its own floor, ceil and trunc (numpy 2 keeps its dtype), and rint of an
    integer is a float64, as numpy's."""
    reference = getattr(np, name)

    def f(x):
        t = _trace()
        if t.current() is None and not isinstance(x, t.Value):
            return reference(x)
        x = t.to_value(x)
        if x.dtype.kind != "f":
            if integers_keep:
                return x
            _refuse_bool(x, name)
            return ew._bind(name, convert(x, np.dtype(np.float64)))
        return ew._bind(name, x)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"numpy.{name}; its derivative is 0."
    return f


def _refuse_bool(x, name):
    if x.dtype == np.bool_:
        from ..errors import UnsupportedError
        raise UnsupportedError(f"{name} of a boolean array is float16 in numpy, which gradc does not have: "
                               f"convert first (x.astype(float))")


floor, ceil, trunc, rint = (_integral(n, n != "rint") for n in ("floor", "ceil", "trunc", "rint"))
fix = trunc


def round(a, decimals=0, out=None):  # noqa: A001
    """numpy.round: halves to even; ``decimals`` as numpy's (scaled by 10**decimals,
    rounded, scaled back); derivative 0."""
    t = _trace()
    if t.current() is None and not isinstance(a, t.Value):
        return np.round(a, decimals)
    if out is not None:
        from ..errors import UnsupportedError
        raise UnsupportedError("round(..., out=...) cannot write into a traced value")
    a = t.to_value(a)
    decimals = int(decimals)
    if a.dtype.kind != "f":
        _refuse_bool(a, "round")
        if decimals < 0:
            from ..errors import UnsupportedError
            raise UnsupportedError("round of an integer array to negative decimals is not supported")
        return a
    if decimals == 0:
        return rint(a)
    if decimals > 0:            # numpy: rint(a * 10**d) / 10**d
        scale = float(10.0 ** decimals)
        return rint(a * scale) / scale
    scale = float(10.0 ** -decimals)
    return rint(a / scale) * scale


around = round


def _binary(reference, integer=None):
    """Concrete operands: numpy answers; traced: both as floats, or two integer (bool)
    operands by ``integer`` (numpy's integer division), which takes the two Values."""
    def wrap(f):
        @functools.wraps(f)
        def g(a, b):
            t = _trace()
            if t.current() is None and not any(isinstance(x, t.Value) for x in (a, b)):
                return reference(a, b)
            va, vb = t.to_value(a), t.to_value(b)
            if va.dtype.kind != "f" and vb.dtype.kind != "f":
                dt = ew.result_dtype([a, b], float_result=False)
                if dt.kind == "b":
                    dt = np.dtype(np.int8)       # numpy: bool // bool and bool % bool are int8
                return integer(ew.convert(va, dt), ew.convert(vb, dt))
            return f(*_floats(a, b))
        return g
    return wrap


@_binary(np.fmod, integer=lambda a, b: ew._bind("int_fmod", a, b, float_result=False))
def fmod(a, b):
    """C's fmod: exact, with the sign of ``a``; derivatives 1 and -trunc(a/b)."""
    return ew._bind("fmod", a, b)


def _divmod(a, b):
    """numpy's npy_divmod: (floor(a/b), a mod b) with the remainder exact (from fmod) and
    the quotient snapped to the integer ``(a - mod)/b`` is nearest, so ``a == b*q + r``
    as far as rounding allows and the two agree with each other."""
    mod = ew._bind("fmod", a, b)
    div = (a - mod) / b
    adjust = (mod != 0.0) & ((b < 0.0) != (mod < 0.0))
    # a zero remainder takes b's sign, and keeps fmod's derivatives (1 in a): the term
    # subtracted from copysign(0, b) is +0.0, with derivative -1 in mod
    exact = where(mod == 0.0, copysign(0.0, b) - (ew.stop_gradient(mod) - mod), mod)
    mod = where(adjust, mod + b, exact)
    div = where(adjust, div - 1.0, div)
    fl = floor(div)
    q = where(div != 0.0, where(div - fl > 0.5, fl + 1.0, fl), copysign(0.0, a / b))
    q = where(b == 0.0, a / b, q)
    return ew.stop_gradient(q), mod


@_binary(np.remainder, integer=lambda a, b: ew._bind("int_remainder", a, b, float_result=False))
def remainder(a, b):
    """numpy.remainder (Python's %): the sign of ``b``; derivatives 1 and -floor(a/b)."""
    return _divmod(a, b)[1]


mod = remainder


@_binary(np.floor_divide, integer=lambda a, b: ew._bind("int_floor_divide", a, b, float_result=False))
def floor_divide(a, b):
    """numpy.floor_divide (Python's //) of floats, as numpy computes it (from fmod, so
    ``a // b`` and ``a % b`` agree); derivative 0."""
    return _divmod(a, b)[0]


def divmod_(a, b):
    """numpy.divmod: (floor_divide(a, b), remainder(a, b)).  The operands go on as given:
    a Python int stays weak (divmod(int8 array, 7) is int8, as numpy's), where
    ``composite`` would make it an int64 constant."""
    t = _trace()
    if t.current() is None and not any(isinstance(x, t.Value) for x in (a, b)):
        return np.divmod(a, b)
    return floor_divide(a, b), remainder(a, b)


@composite(np.copysign)
def copysign(a, b):
    """|a| with the sign of b (signbit: -0.0 counts as negative); derivative in a:
    sign(a) times b's sign."""
    return where(signbit(b), -ew.abs(a), ew.abs(a))


@composite(np.hypot)
def hypot(a, b):
    """sqrt(a^2 + b^2) without overflow or underflow: the larger magnitude times
    sqrt(1 + r^2), r the ratio of the smaller to it (0 where both are 0; inf if either
    is inf, even beside a nan, as C's hypot)."""
    x, y = ew.abs(a), ew.abs(b)
    big, small = maximum(x, y), minimum(x, y)
    zero = big == 0.0
    safe = where(zero, 1.0, big)
    r = where(zero, 0.0, small) / safe
    h = where(zero, 0.0, safe * sqrt(1.0 + r * r))
    return where(isinf(a) | isinf(b), np.inf, h)


def _nan_ignoring(reference, pick):
    @composite(reference)
    def f(a, b):
        return where(isnan(b), a, where(isnan(a), b, pick(a, b)))
    f.__name__ = f.__qualname__ = reference.__name__
    f.__doc__ = f"numpy.{reference.__name__}: as {pick.__name__}, but a nan loses to a number."
    return f


fmax, fmin = _nan_ignoring(np.fmax, maximum), _nan_ignoring(np.fmin, minimum)


@composite(np.degrees)
def degrees(x):
    return x * (180.0 / math.pi)


@composite(np.radians)
def radians(x):
    return x * (math.pi / 180.0)


rad2deg, deg2rad = degrees, radians


@composite(np.arccosh)
def arccosh(x):
    """fdlibm's form: log1p(t + sqrt(2t + t^2)), t = x - 1 (accurate near 1), and
    log(x) + ln 2 beyond 2**28; nan below 1."""
    big = 2.0 ** 28
    t = minimum(x, big) - 1.0
    near = log1p(t + sqrt(t * (t + 2.0)))
    return where(x < big, near, log(maximum(x, big)) + math.log(2.0))


@composite(np.logical_xor, floats=False)
def logical_xor(a, b):
    return ew.not_equal(ew.convert_bool(a), ew.convert_bool(b))


@composite(np.positive, floats=False)
def positive(x):
    return x


@composite(np.fabs)
def fabs(x):
    return ew.abs(x)


def float_power(a, b):
    """numpy.float_power: a ** b in float64 (float32 operands too)."""
    t = _trace()
    if t.current() is None and not any(isinstance(v, t.Value) for v in (a, b)):
        return np.float_power(a, b)
    f64 = np.dtype(np.float64)
    return ew.power(convert(t.to_value(a), f64), convert(t.to_value(b), f64))


@composite(np.conjugate, floats=False)
def conjugate(x):
    """The complex conjugate: a real array (gradc's arrays are real) is its own."""
    return x


conj = conjugate
