"""The code generator of gradc's vector math (vecmath.py): exact constants and ``_Ctx``.

The range-reduction constants (ln 2, 1/ln 2, pi, pi/2, 2/pi) are exact rationals
(``fractions.Fraction``), rounded to the format where a function uses them.  ``_Ctx``
is an ``ir.IRBuilder`` with the float format (``_Format``) and the small helpers every
function body is written with: constants, intrinsics, arithmetic, compares and
selects, Horner polynomials, exponent bit tricks and the AVX-512F instructions used
on x86-64-v4.  Kept apart from the function bodies (vecmath_funcs.py) so that each
reads in one sitting; it needs only llvmlite (setup.py loads the vector math modules
before gradc's other dependencies are installed).
"""

from __future__ import annotations

import decimal
import math
from fractions import Fraction

from llvmlite import ir


# ---------------------------------------------------------------------------
# Exact constants
# ---------------------------------------------------------------------------

def _ln2() -> Fraction:
    with decimal.localcontext() as ctx:
        ctx.prec = 70
        return Fraction(decimal.Decimal(2).ln())


_PI = Fraction(decimal.Decimal(
    "3.14159265358979323846264338327950288419716939937510582097494459230781640628"))
_LN2 = _ln2()
_LOG2E = 1 / _LN2
_PIO2 = _PI / 2
_TWO_OVER_PI = 2 / _PI


def _round_bits(v: Fraction, bits: int) -> Fraction:
    """Round ``v`` to ``bits`` significant binary digits (nearest, ties away)."""
    if v == 0:
        return Fraction(0)
    a = abs(v)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:          # now 2**e <= a < 2**(e+1)
        e -= 1
    scale = Fraction(2) ** (bits - 1 - e)
    n = math.floor(a * scale + Fraction(1, 2))
    return (n / scale) * (1 if v > 0 else -1)


def _trunc_bits(v: Fraction, bits: int) -> Fraction:
    """``v`` > 0 rounded down to ``bits`` significant binary digits."""
    e = v.numerator.bit_length() - v.denominator.bit_length()
    if Fraction(2) ** e > v:          # now 2**e <= v < 2**(e+1)
        e -= 1
    scale = Fraction(2) ** (bits - 1 - e)
    return math.floor(v * scale) / scale


class _Format:
    """What the code generator needs to know about float32 / float64."""

    def __init__(self, ty: ir.Type):
        self.f64 = isinstance(ty, ir.DoubleType)
        if not self.f64 and not isinstance(ty, ir.FloatType):
            raise TypeError(f"vecmath supports float and double, not {ty}")
        self.suffix = "f64" if self.f64 else "f32"
        self.prec = 53 if self.f64 else 24          # significant bits
        self.nmant = self.prec - 1                   # stored mantissa bits
        self.bias = 1023 if self.f64 else 127
        self.bits = 64 if self.f64 else 32
        # |k| bound (in bits) of the integer multipliers used in exp/log
        # range reduction, so that k * <hi part of ln2> is exact.
        self.kbits = 11 if self.f64 else 8

    def rnd(self, v) -> float:
        """Round an exact value to the nearest number of this format."""
        v = Fraction(v)
        return float(_round_bits(v, self.prec)) if v else 0.0

    def split(self, v: Fraction, hi_bits: int):
        """Cody-Waite split v = hi + lo with hi having only ``hi_bits`` bits."""
        hi = _round_bits(v, hi_bits)
        return float(hi), self.rnd(v - hi)


# ---------------------------------------------------------------------------
# IR building helpers
# ---------------------------------------------------------------------------

class _Ctx:
    """An IRBuilder plus the float format, with small math helpers.

    ``ty`` is ``float``/``double`` or a vector of them: every helper emits the
    same operations for one lane or for all lanes at once (constants are
    splats, intrinsics the ``.vNf64`` forms, integers vectors of integers),
    so a vector function computes, lane for lane, exactly what the scalar
    function computes.  Every helper emits straight-line code: no branches,
    only selects.  ``fma`` says whether the target has fused multiply-add,
    ``avx512`` whether it has AVX-512F (then a few helpers use its instructions:
    the results are the same bits as the generic code's).
    """

    def __init__(self, builder: ir.IRBuilder, ty: ir.Type, fma: bool, avx512: bool = False):
        self.b, self.ty, self.fma_ok, self.avx512 = builder, ty, fma, avx512
        self.lanes = ty.count if isinstance(ty, ir.VectorType) else None
        self.elt = ty.element if self.lanes else ty
        self.fmt = _Format(self.elt)
        self.ity = self._like(ir.IntType(self.fmt.bits))    # same-width integer
        self.i32 = self._like(ir.IntType(32))
        self.tname = (f"v{self.lanes}" if self.lanes else "") + self.fmt.suffix

    def _like(self, scalar: ir.Type) -> ir.Type:
        """``scalar``, or a vector of it with this context's lanes."""
        return ir.VectorType(scalar, self.lanes) if self.lanes else scalar

    def _splat(self, c: ir.Constant) -> ir.Constant:
        return ir.Constant(self._like(c.type), [c] * self.lanes) if self.lanes else c

    def retyped(self, elt: ir.Type) -> "_Ctx":
        """The same builder and lanes for another float type."""
        return _Ctx(self.b, self._like(elt), self.fma_ok, self.avx512)

    # -- constants ---------------------------------------------------------
    def k(self, v) -> ir.Constant:
        """A float constant; exact values are rounded to the format."""
        if isinstance(v, Fraction):
            v = self.fmt.rnd(v)
        return self._splat(ir.Constant(self.elt, float(v)))

    def ki(self, v: int) -> ir.Constant:
        """An integer constant as wide as the float format."""
        return self._splat(ir.Constant(ir.IntType(self.fmt.bits), v))

    def ki32(self, v: int) -> ir.Constant:
        return self._splat(ir.Constant(ir.IntType(32), v))

    # -- intrinsics ----------------------------------------------------------
    def _intrinsic(self, name: str, nargs: int) -> ir.Function:
        full = f"llvm.{name}.{self.tname}"
        m = self.b.module
        fn = m.globals.get(full)
        if fn is None:
            fn = ir.Function(m, ir.FunctionType(self.ty, [self.ty] * nargs), full)
        return fn

    def call(self, name: str, *args):
        return self.b.call(self._intrinsic(name, len(args)), args)

    # -- arithmetic ------------------------------------------------------------
    def add(self, a, b): return self.b.fadd(a, b)
    def sub(self, a, b): return self.b.fsub(a, b)
    def mul(self, a, b): return self.b.fmul(a, b)
    def div(self, a, b): return self.b.fdiv(a, b)
    def neg(self, a): return self.b.fneg(a)

    def mad(self, a, b, c):
        """a*b + c, fused if the target has FMA (accuracy never relies on it)."""
        return self.call("fmuladd", a, b, c)

    def fma(self, a, b, c):
        """a*b + c with a single rounding (needed for exact products)."""
        return self.call("fma", a, b, c)

    def fabs(self, a): return self.call("fabs", a)
    def rint(self, a): return self.call("rint", a)
    def floor(self, a): return self.call("floor", a)
    def copysign(self, mag, sgn): return self.call("copysign", mag, sgn)

    # -- comparisons / selection (ordered compares are false for nan) ----------
    def lt(self, a, b): return self.b.fcmp_ordered("<", a, b)
    def le(self, a, b): return self.b.fcmp_ordered("<=", a, b)
    def gt(self, a, b): return self.b.fcmp_ordered(">", a, b)
    def ge(self, a, b): return self.b.fcmp_ordered(">=", a, b)
    def eq(self, a, b): return self.b.fcmp_ordered("==", a, b)
    def isnan(self, a): return self.b.fcmp_unordered("uno", a, a)
    def sel(self, c, a, b): return self.b.select(c, a, b)

    def clamp(self, x, lo, hi):
        """Clamp to [lo, hi]; nan becomes lo.  Keeps later float->int
        conversions in range (an out-of-range fptosi would be poison)."""
        x = self.sel(self.ge(x, self.k(lo)), x, self.k(lo))
        return self.sel(self.le(x, self.k(hi)), x, self.k(hi))

    def poly(self, x, coeffs):
        """Horner evaluation of sum(coeffs[i] * x**i) with fused mul-adds (Estrin's
        scheme, with a shorter dependency chain but more operations, measured no
        faster: the functions are throughput-bound)."""
        acc = self.k(coeffs[-1])
        for c in reversed(coeffs[:-1]):
            acc = self.mad(acc, x, self.k(c))
        return acc

    def two_diff(self, a, b):
        """(s, err) with s = fl(a - b) and a - b == s + err exactly (Knuth's
        TwoSum, valid whatever the magnitudes of a and b)."""
        s = self.sub(a, b)
        bb = self.sub(a, s)            # the part of b that made it into s
        err = self.add(self.sub(a, self.add(s, bb)), self.sub(bb, b))
        return s, err

    # -- exponent bit tricks ------------------------------------------------
    def to_i32(self, xf):
        """float holding an integer in i32 range -> i32 (cvttpd2dq)."""
        return self.b.fptosi(xf, self.i32)

    def pow2i(self, n):
        """2**n from an i32 n in the normal exponent range, by writing the
        biased exponent straight into the exponent field."""
        if self.fmt.f64:
            n = self.b.sext(n, self.ity)
        e = self.b.add(n, self.ki(self.fmt.bias))
        return self.b.bitcast(self.b.shl(e, self.ki(self.fmt.nmant)), self.ty)

    def ldexp(self, x, kf):
        """x * 2**k for k = kf, a float holding an integer up to about twice the
        exponent range, rounded once (into the subnormals too).

        2**k itself may not be representable (k < -1022 for a subnormal result,
        k = 1024 just before overflow), so scale in two steps by 2**(k>>1) and
        2**(k - (k>>1)); each factor is a normal number, so the first product is
        exact and only the last multiplication rounds.  AVX-512's vscalefpd
        computes the same correctly rounded x * 2**k in one instruction.
        """
        if self.avx512:
            return self._avx512("scalef", x, kf)
        n = self.to_i32(kf)
        n1 = self.b.ashr(n, self.ki32(1))
        n2 = self.b.sub(n, n1)
        return self.mul(self.mul(x, self.pow2i(n1)), self.pow2i(n2))

    def _avx512(self, op: str, *args, imm=None):
        """AVX-512F's 512-bit ``op`` on this context's type: ``scalef`` (a * 2**floor(b),
        rounded once), ``getexp`` (floor(log2|a|) as a float, subnormals too) or
        ``getmant`` (a's significand normalized to the interval ``imm`` selects),
        ``rcp14`` (1/a to 14 bits).
        Narrower vectors (and scalars) run in the low lanes of a 512-bit one (AVX-512F
        alone has no 256-bit forms; those need AVX-512VL)."""
        f64 = self.fmt.f64
        full = 8 if f64 else 16
        vty = ir.VectorType(self.elt, full)
        mask_ty, i32 = ir.IntType(full), ir.IntType(32)
        # rcp14 has no rounding operand and no "mask." in its name
        name = f"llvm.x86.avx512.{'' if op == 'rcp14' else 'mask.'}{op}.{'pd' if f64 else 'ps'}.512"
        undef = ir.Constant(vty, ir.Undefined)
        if self.lanes == full:
            wide = list(args)
        elif self.lanes:
            idx = ir.Constant(ir.VectorType(i32, full), [i % self.lanes for i in range(full)])
            wide = [self.b.shuffle_vector(v, ir.Constant(self.ty, ir.Undefined), idx) for v in args]
        else:
            wide = [self.b.insert_element(undef, v, ir.Constant(i32, 0)) for v in args]
        # (args, [imm,] passthru, mask: all lanes, rounding 4: the current mode)
        operands = wide + ([ir.Constant(i32, imm)] if imm is not None else []) + \
            [undef, ir.Constant(mask_ty, -1)] + ([] if op == "rcp14" else [ir.Constant(i32, 4)])
        m = self.b.module
        fn = m.globals.get(name) or ir.Function(m, ir.FunctionType(vty, [o.type for o in operands]), name)
        y = self.b.call(fn, operands)
        if self.lanes == full:
            return y
        if self.lanes:
            first = ir.Constant(ir.VectorType(i32, self.lanes), list(range(self.lanes)))
            return self.b.shuffle_vector(y, undef, first)
        return self.b.extract_element(y, ir.Constant(i32, 0))

    def fixup_avx512(self, y, x, table: dict):
        """y, with the lanes where x is a special value replaced as ``table`` says
        (AVX-512F's vfixupimmpd, one instruction for what takes a compare and a
        blend per case).  ``table`` maps x's class ("nan", "zero", "one", "-inf",
        "+inf", "neg", "pos") to a response: "y" (keep y), "x", "nan", "-inf",
        "+inf", "+0"; unlisted classes keep y.  (Subnormals are "pos"/"neg": the
        instruction treats them as zeros only under MXCSR.DAZ, which gradc never
        sets.)"""
        tokens = {"nan": (0, 1), "zero": (2,), "one": (3,), "-inf": (4,), "+inf": (5,),
                  "neg": (6,), "pos": (7,)}
        codes = {"y": 0, "x": 1, "nan": 3, "-inf": 4, "+inf": 5, "+0": 8}
        word = 0
        for cls, response in table.items():
            for t in tokens[cls]:
                word |= codes[response] << (4 * t)
        f64 = self.fmt.f64
        full = 8 if f64 else 16
        vty = ir.VectorType(self.elt, full)
        ity = ir.VectorType(ir.IntType(64 if f64 else 32), full)
        i32 = ir.IntType(32)
        undef = ir.Constant(vty, ir.Undefined)
        if self.lanes == full:
            a, b = y, x
        elif self.lanes:
            idx = ir.Constant(ir.VectorType(i32, full), [i % self.lanes for i in range(full)])
            a, b = (self.b.shuffle_vector(v, ir.Constant(self.ty, ir.Undefined), idx) for v in (y, x))
        else:
            a, b = (self.b.insert_element(undef, v, ir.Constant(i32, 0)) for v in (y, x))
        name = f"llvm.x86.avx512.mask.fixupimm.{'pd' if f64 else 'ps'}.512"
        operands = [a, b, ir.Constant(ity, [word] * full), ir.Constant(i32, 0),
                    ir.Constant(ir.IntType(full), -1), ir.Constant(i32, 4)]
        m = self.b.module
        fn = m.globals.get(name) or ir.Function(m, ir.FunctionType(vty, [o.type for o in operands]), name)
        r = self.b.call(fn, operands)
        if self.lanes == full:
            return r
        if self.lanes:
            first = ir.Constant(ir.VectorType(i32, self.lanes), list(range(self.lanes)))
            return self.b.shuffle_vector(r, undef, first)
        return self.b.extract_element(r, ir.Constant(i32, 0))

    def permute_avx512(self, values, idx):
        """values[idx & 31] in each lane, for 32 float32 ``values`` held in two
        registers (AVX-512F's vpermi2ps); ``idx`` is an i32 vector of this
        context's lanes."""
        assert not self.fmt.f64 and len(values) == 32
        i32 = ir.IntType(32)
        vty, ity = ir.VectorType(self.elt, 16), ir.VectorType(i32, 16)
        lo = ir.Constant(vty, [ir.Constant(self.elt, float(v)) for v in values[:16]])
        hi = ir.Constant(vty, [ir.Constant(self.elt, float(v)) for v in values[16:]])
        if self.lanes == 16:
            wide = idx
        elif self.lanes:
            sel = ir.Constant(ity, [i % self.lanes for i in range(16)])
            wide = self.b.shuffle_vector(idx, ir.Constant(idx.type, ir.Undefined), sel)
        else:
            wide = self.b.insert_element(ir.Constant(ity, ir.Undefined), idx, ir.Constant(i32, 0))
        name = "llvm.x86.avx512.vpermi2var.ps.512"
        m = self.b.module
        fn = m.globals.get(name) or ir.Function(m, ir.FunctionType(vty, [vty, ity, vty]), name)
        r = self.b.call(fn, [lo, wide, hi])
        if self.lanes == 16:
            return r
        if self.lanes:
            first = ir.Constant(ir.VectorType(i32, self.lanes), list(range(self.lanes)))
            return self.b.shuffle_vector(r, ir.Constant(vty, ir.Undefined), first)
        return self.b.extract_element(r, ir.Constant(i32, 0))

    def small_quotient(self, n, d):
        """n/d for a correction term n far below an ulp of the result: a division on
        generic targets, a multiplication by AVX-512's 14-bit reciprocal (a relative error of 2**-14
        in a term far below an ulp of the result)."""
        if self.avx512:
            return self.mul(n, self._avx512("rcp14", d))
        return self.div(n, d)

    def frexp_avx512(self, u):
        """u = 2**k * m with m in [3/4, 3/2), for positive u, subnormals too (AVX-512F's
        vgetmantpd/vgetexppd).  Returns (k as a float, m); k = getexp(u) - getexp(m),
        as m is u's significand in [1, 2), halved when it is >= 3/2.  A negative u
        (-0.0 too) gives a nan m."""
        m = self._avx512("getmant", u, imm=0b1011)  # interval [3/4, 3/2); nan if u < 0
        return self.sub(self._avx512("getexp", u), self._avx512("getexp", m)), m

    def frexp_sqrt2(self, u):
        """u = 2**k * m with m in [sqrt(1/2), sqrt(2)), for positive normal u.

        Returns (k as a float, m).  Adding (bits(1.0) - bits(sqrt(1/2))) to
        the bit pattern carries into the exponent field exactly when the
        significand is >= sqrt(2), so k is the exponent field of the sum and
        m is the sum's mantissa re-based at sqrt(1/2) (the musl trick).
        Centering m on 1 keeps f = m - 1 within [-0.29, 0.41].
        """
        f = self.fmt
        if f.f64:
            one, sqrth = 0x3FF0000000000000, 0x3FE6A09E00000000
        else:
            one, sqrth = 0x3F800000, 0x3F3504F3
        bits = self.b.bitcast(u, self.ity)
        ix = self.b.add(bits, self.ki(one - sqrth))
        ebits = self.b.lshr(ix, self.ki(f.nmant))          # biased exponent
        if f.f64:
            ebits = self.b.trunc(ebits, self.i32)          # i32 -> cvtdq2pd
        kf = self.b.sitofp(self.b.sub(ebits, self.ki32(f.bias)), self.ty)
        mbits = self.b.add(self.b.and_(ix, self.ki((1 << f.nmant) - 1)), self.ki(sqrth))
        return kf, self.b.bitcast(mbits, self.ty)
