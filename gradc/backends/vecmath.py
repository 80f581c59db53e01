"""Vectorized transcendental functions, emitted as LLVM IR and compiled once.

Why this module exists
----------------------
LLVM's loop vectorizer happily widens ``llvm.exp.f64`` to ``llvm.exp.v4f64``,
but the x86 backend has no vector instruction for it and scalarizes the call
back into four libm calls, so a loop over ``exp``/``log``/``tanh``/``sin`` never
runs as SIMD code.  Here every function is written with plain arithmetic only:
fadd/fmul/fdiv, ``llvm.fmuladd``/``llvm.fma``, ``llvm.fabs``, ``llvm.rint``,
``llvm.floor``, ``llvm.copysign``, bitcasts, integer adds/shifts/ands,
fcmp/select, all of which have vector forms.  The bodies are branch-free:
every special case (nan, inf, overflow, tiny arguments) is computed
unconditionally and chosen with ``select``.

On AVX-512 targets a few steps use AVX-512F instructions instead (``llvm.x86``
intrinsics; ``_Ctx._avx512``): ``vscalefpd`` for ldexp (the same correctly
rounded x * 2**k as the generic two-step scaling, in one instruction; float32
expm1 scales by it without converting k to an integer),
``vgetmantpd``/``vgetexppd`` for log's frexp (subnormals and negative inputs
without selects; the significand in [3/4, 3/2) instead of [sqrt(1/2), sqrt(2)),
with a polynomial one degree higher), ``vfixupimmpd`` for log's and log1p's
special values (one instruction for several compares and blends), ``vrcp14pd``
where a quotient is only a correction term far below an ulp (sigmoid), and
``vpermi2ps`` for float32 tanh, a table of 32 polynomials held in registers (the
generic code takes an exponential and a polynomial branch).  So the x86-64-v3
and v4 libraries may differ in the last bits; within one library every entry
point agrees bit for bit.

How kernels call it
-------------------
Each function exists as a scalar function ``gradc_vm_<name>_<f64|f32>`` and
vector variants ``..._v<lanes>`` for the target's vector widths
(``Target.widths``: 2 and 4 doubles, 4 and 8 floats on AVX2; 8 doubles and 16
floats more with AVX-512).  The same code (``_IMPL``, on a ``_Ctx`` generic
over scalar and vector types) emits the body of each width of 256 bits or
more; the scalar function and the 128-bit variants run the narrowest body on
repeated lanes (as fast on x86, and half the compile time of bodies of their
own).  So every lane computes exactly what the scalar function computes: a
value does not depend on whether a loop's vector part or its remainder
computed it.

A kernel only declares the scalar function (``declare``) and calls it one
element at a time.  ``annotate`` marks it pure and names its variants in the
``vector-function-abi-variant`` attribute (LLVM's vector function ABI), so the
loop vectorizer turns four calls into one call of ``..._v4``.  The
definitions (``library_ir``) are compiled when gradc is built, for x86-64-v3
(AVX2, FMA) and x86-64-v4 (AVX-512) (``build_prebuilt``, run by setup.py), and
the JIT loads the one for its host; on other hosts, or when the prebuilt
library does not match this file, the JIT compiles the functions a kernel
needs, once per process, and keeps them in the on-disk cache
(``llvm_jit.load_vecmath``).  Inlining them into every kernel instead cost
tens of milliseconds of LLVM time per call site; the price is speed in hot
loops, where a call per vector keeps the scheduler from interleaving
neighbouring vectors' dependency chains (M1's value_and_grad: 10-13% slower).
Ahead-of-time libraries, compiled once, and JIT kernels that have run long enough
(``kernel.Kernel.upgrade``) link the definitions in after vectorization and inline
the vector bodies (``llvm_jit.link_vecmath``).

The approach is the classic one of fdlibm / SLEEF / tinygrad's
``transcendental.py``: Cody-Waite range reduction with a constant split into an
exactly multipliable high part and a low part, a polynomial on the reduced
argument, and exponent manipulation (frexp/ldexp) with integer bit operations.
float32 functions compute in float32 with float32-sized polynomials, so a float
loop gets twice the lanes of a double loop.

The range-reduction constants are derived here, at import time, from exact
rational arithmetic (``fractions.Fraction``; ln 2 from ``decimal``, pi from its
well-known digits).  The polynomials are Chebyshev approximations (near-minimax:
two or three terms fewer than Taylor polynomials of the same accuracy), computed
with mpmath by ``tools/vecmath_coeffs.py``, which prints the ``_COEFFS`` table
(float32 tanh's table of polynomials too).
They are evaluated by Horner's rule: the functions are throughput-bound (Estrin's
scheme, shorter chains but more operations, measured no faster).

Polynomials use ``llvm.fmuladd`` (fused where the target has FMA, mul+add
otherwise); no result relies on it being fused.  The only place that needs a
real fused multiply-add is the float32 sin/cos range reduction (``llvm.fma``);
for a target without FMA (``Target.fma``) it is replaced by the float64
reduction, since llvm.fma would there become a libm ``fmaf`` call.

Accuracy (measured by ``tests/backends/test_vecmath.py``, see its docstring):
at most a few ulp against numpy over the whole domain of every function, both
dtypes.  sin/cos are accurate for ``|x| < TRIG_ACCURATE_LIMIT``: 2**20 * pi/2
(about 1.65e6) in float64, where the Cody-Waite products are exact by
construction (measured accurate up to about 8e6), and 2**21 (about 2.1e6) in
float32 (measured; it breaks down between 2**21 and 2**22, where the float32
product x*2/pi picks a wrong quadrant).  Beyond that there is no Payne-Hanek
reduction: the results are finite values in [-1, 1] but not accurate.
sin/cos(+-inf) and any nan input give nan, as in numpy.
"""

from __future__ import annotations

import decimal
import math
import re
from dataclasses import dataclass
from fractions import Fraction

from llvmlite import ir

__all__ = ["NAMES", "TRIG_ACCURATE_LIMIT", "Target", "host_target", "symbol", "declare",
           "library_ir", "annotate", "functions_in"]

NAMES = ("exp", "log", "log1p", "expm1", "tanh", "sigmoid", "softplus", "sin", "cos")

# |x| below which sin/cos are <= 4 ulp (see module docstring).
TRIG_ACCURATE_LIMIT = {"f64": 2.0**20 * math.pi / 2, "f32": 2.0**21}


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


# ---------------------------------------------------------------------------
# Polynomial coefficients
# ---------------------------------------------------------------------------

# Chebyshev approximations (near-minimax: a few terms fewer than Taylor polynomials of
# the same accuracy), lowest degree first, made and checked by tools/vecmath_coeffs.py
# (mpmath), which prints this table; each polynomial's error, times the factor it is
# scaled by, is below about 1/8 ulp of the result (the script's err/ulp figures).
#   exp:  exp(r) = 1 + r + r^2*P(r),  |r| <= ln2/2
#   log:  log(1+f) = 2s + s*z*R(z),  s = f/(2+f), z = s^2 <= 0.0295
#   sin:  sin(r) = r + r*z*S(z);  cos: cos(r) = 1 - z/2 + z^2*C(z),  z = r^2 <= (pi/4)^2
#         (float32: z <= 0.92^2, the reduced argument's reach near the accurate limit)
#   sin_pi: sin(y) = y + y*z*S(z),  z = y^2 <= 1.76^2 (float32 reduced by pi)
#   tanh: tanh(a) = a + a*z*T(z),  z = a^2 <= 0.55^2  (float32 only)
#   tanh_table: float32 tanh on AVX-512, a polynomial per interval (see _tanh_f32_table)
def _hex(text: str) -> tuple[float, ...]:
    return tuple(float.fromhex(h) for h in text.split())


_COEFFS = {
    # err/ulp 0.127
    ("exp", "f64"): _hex("0x1.0000000000001p-1 0x1.5555555555556p-3 0x1.5555555553d63p-5 0x1.11111111109b3p-7 0x1.6c16c1788bd90p-10 0x1.a01a01a7c41d5p-13 0x1.a019b90d2ae7ap-16 0x1.71de0dae63bb3p-19 0x1.289185613a3d6p-22 0x1.af38a9b0ec855p-26"),
    # err/ulp 0.136
    ("exp", "f32"): _hex("0x1.0000000000000p-1 0x1.5554dc0000000p-3 0x1.55551a0000000p-5 0x1.120b6e0000000p-7 0x1.6d110a0000000p-10"),
    # err/ulp 0.0423
    ("log", "f64"): _hex("0x1.5555555555558p-1 0x1.99999999952d7p-2 0x1.2492492df281ap-2 0x1.c71c62e3f11e6p-3 0x1.7462b51cb66b1p-3 0x1.39fe51a7c18f9p-3 0x1.2b5900de53b32p-3"),
    # err/ulp 0.0503
    ("log", "f32"): _hex("0x1.55555c0000000p-1 0x1.997c2e0000000p-2 0x1.2ee6560000000p-2"),
    # err/ulp 0.00795
    ("log_wide", "f64"): _hex("0x1.5555555555555p-1 0x1.9999999999f18p-2 0x1.24924923de528p-2 0x1.c71c72df7cf9dp-3 0x1.745cac3874569p-3 0x1.3b29d20b4b924p-3 0x1.0e8c32bc710e5p-3 0x1.169d45f561cc7p-3"),
    # err/ulp 0.0109
    ("log_wide", "f32"): _hex("0x1.5555560000000p-1 0x1.999a6a0000000p-2 0x1.242cdc0000000p-2 0x1.e659500000000p-3"),
    # err/ulp 0.176
    ("sin", "f64"): _hex("-0x1.5555555555555p-3 0x1.1111111110bb2p-7 -0x1.a01a019e83816p-13 0x1.71de379654304p-19 -0x1.ae600aca92c64p-26 0x1.5e0b05bff20f2p-33"),
    # err/ulp 0.057
    ("sin", "f32"): _hex("-0x1.5555560000000p-3 0x1.1111080000000p-7 -0x1.a00e140000000p-13 0x1.6c37ea0000000p-19"),
    # err/ulp 0.27
    ("sin_pi", "f32"): _hex("-0x1.5555560000000p-3 0x1.11110e0000000p-7 -0x1.a018120000000p-13 0x1.716e020000000p-19 -0x1.9987fc0000000p-26"),
    # err/ulp 0.0116
    ("cos", "f64"): _hex("0x1.5555555555555p-5 -0x1.6c16c16c16967p-10 0x1.a01a019f4e9b4p-16 -0x1.27e4fa17bf139p-22 0x1.1eeb68cd22f56p-29 -0x1.907d8f29fe831p-37"),
    # err/ulp 0.0567
    ("cos", "f32"): _hex("0x1.5555520000000p-5 -0x1.6c0f600000000p-10 0x1.9a46200000000p-16"),
    # err/ulp 0.101
    ("tanh", "f32"): _hex("-0x1.5555540000000p-2 0x1.110fea0000000p-3 -0x1.b9a0440000000p-5 0x1.5d220e0000000p-6 -0x1.b135380000000p-8"),
    # err/ulp 1.52
    ("tanh_table", "f32"): _hex(
        "0x0.0p+0 0x1.0000000000000p+0 0x1.5b48080000000p-21 -0x1.555fd20000000p-2 0x1.8084120000000p-11 0x1.07e0e20000000p-3 "
        "0x1.2005b00000000p-2 0x1.d77e740000000p-1 -0x1.09380e0000000p-2 -0x1.df9b700000000p-3 0x1.3329cc0000000p-3 0x1.dea0980000000p-5 "
        "0x1.0ae8000000000p-1 0x1.74dc860000000p-1 -0x1.84bb880000000p-2 -0x1.6f6fd20000000p-5 0x1.30754a0000000p-3 -0x1.78b77a0000000p-5 "
        "0x1.665ed80000000p-1 0x1.05294c0000000p-1 -0x1.6d991a0000000p-2 0x1.4726b80000000p-4 0x1.03f4e00000000p-4 -0x1.e4c1140000000p-5 "
        "0x1.a3beaa0000000p-1 0x1.4fc6520000000p-2 -0x1.1347780000000p-2 0x1.c7010c0000000p-4 -0x1.b179520000000p-11 -0x1.d6dac80000000p-6 "
        "0x1.ca1e420000000p-1 0x1.985f720000000p-3 -0x1.6d66f40000000p-3 0x1.7da4240000000p-4 -0x1.82a1300000000p-6 -0x1.60bede0000000p-8 "
        "0x1.e10f6e0000000p-1 0x1.e014180000000p-4 -0x1.c3156c0000000p-4 0x1.07c9140000000p-4 -0x1.82bd2a0000000p-6 0x1.c3205a0000000p-9 "
        "0x1.ee693a0000000p-1 0x1.1496da0000000p-4 -0x1.0b12fc0000000p-4 0x1.4b6fd80000000p-5 -0x1.1e13940000000p-6 0x1.34e5bc0000000p-8 "
        "0x1.f60efc0000000p-1 0x1.3b09f20000000p-5 -0x1.34f5660000000p-5 0x1.8bd0100000000p-6 -0x1.675fc60000000p-7 0x1.e800460000000p-9 "
        "0x1.fa66440000000p-1 0x1.64795a0000000p-6 -0x1.60a58e0000000p-6 0x1.cbc6e40000000p-7 -0x1.ad82ea0000000p-8 0x1.4149b00000000p-9 "
        "0x1.fcd9d00000000p-1 0x1.91daf00000000p-7 -0x1.8f7ca40000000p-7 0x1.06f8d00000000p-7 -0x1.f2a0100000000p-9 0x1.874e040000000p-10 "
        "0x1.fe3b280000000p-1 0x1.c40f860000000p-8 -0x1.c26aa00000000p-8 0x1.2a41840000000p-8 -0x1.2d20300000000p-9 0x1.ca232e0000000p-11 "
        "0x1.ff01ca0000000p-1 0x1.fbefb20000000p-9 -0x1.fba6100000000p-9 0x1.50a5b20000000p-9 -0x1.1a61e40000000p-10 0x1.08d70a0000000p-11 "
        "0x1.ff71560000000p-1 0x1.1d2b500000000p-9 -0x1.1c835a0000000p-9 0x1.7afd160000000p-10 -0x1.ae91a40000000p-11 0x1.2b4d1e0000000p-12 "
        "0x1.ffaff40000000p-1 0x1.4015740000000p-10 -0x1.3f53680000000p-10 0x1.a9fe540000000p-11 -0x1.ff0a880000000p-12 0x1.53711c0000000p-13 "
        "0x1.ffd3180000000p-1 0x1.6732a20000000p-11 -0x1.67f33e0000000p-11 0x1.de6ee40000000p-12 -0x1.5b27780000000p-13 0x1.7ebed20000000p-14 "
        "0x1.ffe6ce0000000p-1 0x1.930b440000000p-12 -0x1.8efae00000000p-12 0x1.0c8a740000000p-12 -0x1.1ce15c0000000p-12 0x1.ad9c2c0000000p-15 "
        "0x1.fff1de0000000p-1 0x1.c4366a0000000p-13 -0x1.c2edb40000000p-13 0x1.2d606a0000000p-13 -0x1.8b4b700000000p-14 0x1.e2e56e0000000p-16 "
        "0x1.fff8120000000p-1 0x1.fb5c4a0000000p-14 -0x1.ef9fdc0000000p-14 0x1.522e700000000p-14 -0x1.3174840000000p-13 0x1.0e96e40000000p-16 "
        "0x1.fffb8e0000000p-1 0x1.1c9c6c0000000p-14 -0x1.2784e80000000p-14 0x1.7b707c0000000p-15 0x1.3c88880000000p-14 0x1.309e7a0000000p-17 "
        "0x1.fffd820000000p-1 0x1.3f4f340000000p-15 -0x1.5cc0260000000p-15 0x1.a9b7900000000p-16 0x1.f5cbb40000000p-14 0x1.55f3e80000000p-18 "
        "0x1.fffe9a0000000p-1 0x1.663c540000000p-16 -0x1.7c9f620000000p-16 0x1.dda0e80000000p-17 0x1.6a40240000000p-15 0x1.7f74b00000000p-19 "
        "0x1.ffff380000000p-1 0x1.91e7e80000000p-17 -0x1.22d5800000000p-16 0x1.0bed500000000p-17 0x1.9f3c8e0000000p-13 0x1.af3d680000000p-20 "
        "0x1.ffff900000000p-1 0x1.c2e6120000000p-18 -0x1.6a1aa40000000p-17 0x1.2c977e0000000p-18 0x1.3d55180000000p-13 0x1.e350ac0000000p-21 "
        "0x1.ffffc00000000p-1 0x1.f9dcfc0000000p-19 0x1.224c420000000p-21 0x1.513e060000000p-19 -0x1.576dee0000000p-13 0x1.0e0e0c0000000p-21 "
        "0x1.ffffdc0000000p-1 0x1.1bc3880000000p-19 0x1.ce30ce0000000p-21 0x1.7a59700000000p-20 -0x1.d979660000000p-14 0x1.2f778a0000000p-22 "
        "0x1.ffffec0000000p-1 0x1.3e5ab20000000p-20 -0x1.4674220000000p-21 0x1.a877ba0000000p-21 -0x1.7439d80000000p-16 0x1.54dd780000000p-23 "
        "0x1.fffff40000000p-1 0x1.6529440000000p-21 0x1.0f98c60000000p-18 0x1.dc38660000000p-22 -0x1.7518620000000p-13 0x1.7cf16a0000000p-24 "
        "0x1.fffffa0000000p-1 0x1.90b2da0000000p-22 -0x1.edb20e0000000p-20 0x1.0b21080000000p-22 0x1.cea3ea0000000p-15 0x1.ad4be40000000p-25 "
        "0x1.fffffc0000000p-1 0x1.c18b0c0000000p-23 0x1.53de800000000p-19 0x1.2bb1e00000000p-23 -0x1.b1de580000000p-14 0x1.e0a9320000000p-26 "
        "0x1.fffffe0000000p-1 0x1.f8577c0000000p-24 0x1.b31fc80000000p-25 0x1.5039d40000000p-24 -0x1.abf2000000000p-18 0x1.0dd7b80000000p-26 "
        "0x1.fffffe0000000p-1 0x1.1ae8fa0000000p-24 0x1.4d00520000000p-18 0x1.79379e0000000p-25 -0x1.8da1980000000p-13 0x1.2dd8640000000p-27 "
    ),
}


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
assert tuple(_IMPL) == NAMES


# ---------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """What the generated code may assume about the CPU that runs it."""

    vector_bits: int     # widest float vector register: 128 (SSE2), 256 (AVX), 512 (AVX-512F)
    fma: bool            # fused multiply-add instructions

    def widths(self, suffix: str) -> tuple[int, ...]:
        """Lanes of the vector variants of a function: from 128 bits (2 doubles,
        4 floats) up to the widest register."""
        bits, lo = (64, 2) if suffix == "f64" else (32, 4)
        return tuple(w for w in (lo, 2 * lo, 4 * lo) if w * bits <= self.vector_bits)

    @classmethod
    def from_features(cls, features: dict) -> "Target":
        """From an LLVM feature map such as ``llvm.get_host_cpu_features()``."""
        bits = 512 if features.get("avx512f") else 256 if features.get("avx") else 128
        return cls(bits, bool(features.get("fma")))


def host_target() -> Target:
    """The CPU gradc's JIT compiles for (this host)."""
    try:
        import llvmlite.binding as llvm
        features = dict(llvm.get_host_cpu_features())
    except Exception:                  # feature query unsupported: assume the baseline
        features = {}
    return Target.from_features(features)


# ---------------------------------------------------------------------------
# The library and the declarations that call it
# ---------------------------------------------------------------------------

_FLOAT = {"f64": ir.DoubleType(), "f32": ir.FloatType()}

# A vecmath function never reads or writes memory, never unwinds, always returns: LLVM
# may hoist, merge and vectorize its calls.
_PURE = "nounwind willreturn memory(none)"

# The header of a vecmath function's definition or declaration, as llvmlite prints it.
_HEADER = re.compile(r'^(declare|define) (\S.*?) @"?gradc_vm_([a-z0-9]+)_(f64|f32)(_v\d+)?"?\(([^()]*)\)(.*)$', re.M)


def symbol(name: str, suffix: str, lanes: int | None = None) -> str:
    """``gradc_vm_<name>_<f64|f32>``, or its ``lanes``-wide vector variant ``..._v<lanes>``."""
    if name not in _IMPL:
        raise ValueError(f"unknown vecmath function {name!r}; known: {NAMES}")
    return f"gradc_vm_{name}_{suffix}" + (f"_v{lanes}" if lanes else "")


def declare(module: ir.Module, name: str, ty: ir.Type) -> ir.Function:
    """The scalar function ``gradc_vm_<name>_<f32|f64>`` of type ``ty(ty)``, declared in
    ``module`` (once).  A kernel calls it one element at a time; :func:`annotate` (run
    on the module's text) adds what lets the loop vectorizer call a vector variant."""
    fname = symbol(name, _Format(ty).suffix)
    fn = module.globals.get(fname)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ty, [ty]), fname)
    return fn


def _define(module: ir.Module, name: str, ty: ir.Type, fname: str, target: Target) -> ir.Function:
    """``fname``: the body of function ``name`` on ``ty`` (a float type or a vector)."""
    fn = ir.Function(module, ir.FunctionType(ty, [ty]), fname)
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    # AVX-512F implies FMA: a 512-bit target without it is a CPU with AVX-512 switched
    # off in part (LLVM then drops AVX-512F too), so it gets the generic code.
    avx512 = target.vector_bits >= 512 and target.fma
    builder.ret(_IMPL[name](_Ctx(builder, ty, target.fma, avx512), fn.args[0]))
    return fn


def _define_narrow(module: ir.Module, ty: ir.Type, fname: str, body: ir.Function) -> None:
    """``fname`` on ``ty`` (the scalar type or a narrower vector) through ``body``: the
    argument's lanes repeated to the body's width, the result's first lanes.  On x86
    a vector instruction costs what the scalar or narrower one costs, so this is as
    fast as a body of its own, and compiles in no time."""
    fn = ir.Function(module, ir.FunctionType(ty, [ty]), fname)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    wide = body.function_type.return_type
    x = fn.args[0]
    if isinstance(ty, ir.VectorType):
        mask = ir.Constant(ir.VectorType(ir.IntType(32), wide.count), [i % ty.count for i in range(wide.count)])
        y = b.call(body, [b.shuffle_vector(x, ir.Constant(ty, ir.Undefined), mask)])
        first = ir.Constant(ir.VectorType(ir.IntType(32), ty.count), list(range(ty.count)))
        b.ret(b.shuffle_vector(y, ir.Constant(wide, ir.Undefined), first))
    else:
        zero = ir.Constant(ir.IntType(32), 0)
        v = b.insert_element(ir.Constant(wide, ir.Undefined), x, zero)
        splat = b.shuffle_vector(v, ir.Constant(wide, ir.Undefined),
                                 ir.Constant(ir.VectorType(ir.IntType(32), wide.count), [0] * wide.count))
        b.ret(b.extract_element(b.call(body, [splat]), zero))


def library_ir(target: Target, functions=None, inline: bool = False) -> str:
    """LLVM IR (text) defining, for each ``(name, "f64"|"f32")`` in ``functions``
    (default: all), the external scalar function and its vector variants for
    ``target`` (``Target.widths``).

    Each width of at least 256 bits (128 on a host without AVX) gets a body of its
    own; the scalar function and narrower variants run the narrowest body (see
    ``_define_narrow``).  Every lane runs the same operations, so all of them agree
    bit for bit.  ``inline`` marks the bodies ``alwaysinline``, for a module that
    links them in after the loop vectorizer has placed its calls (``aot``)."""
    if functions is None:
        functions = [(n, sfx) for n in NAMES for sfx in _FLOAT]
    module = ir.Module(name="gradc_vecmath")
    for name, sfx in sorted(functions):
        elt = _FLOAT[sfx]
        widths = target.widths(sfx)
        bits = 64 if sfx == "f64" else 32
        own = [w for w in widths if w * bits >= min(256, target.vector_bits)]
        bodies = {w: _define(module, name, ir.VectorType(elt, w), symbol(name, sfx, w), target) for w in own}
        if inline:
            for body in bodies.values():
                body.attributes.add("alwaysinline")
        base = bodies[own[0]]
        _define_narrow(module, elt, symbol(name, sfx), base)
        for w in widths:
            if w not in bodies:
                _define_narrow(module, ir.VectorType(elt, w), symbol(name, sfx, w), base)
    return annotate(str(module), target)


def annotate(text: str, target: Target) -> str:
    """The module ``text`` with its vecmath functions' attributes filled in.

    Every vecmath function, defined or declared, is pure (``_PURE``).  A scalar one
    also names its vector variants in LLVM's ``vector-function-abi-variant``
    attribute (mangled ``_ZGV_LLVM_N<lanes>v_<scalar>(<variant>)``: not masked, one
    vector argument), so the loop vectorizer calls ``<scalar>_v4`` on four lanes
    instead of the scalar function four times.  Where the scalar function is only
    declared, its variants are declared next to it and listed in
    ``@llvm.compiler.used``: the vectorizer only uses variants that exist in the
    module, and without that list GlobalDCE deletes them (unused) before it runs.
    """
    used = []

    def header(m):
        kind, ret, name, sfx, vec, args, attrs = m.groups()
        line = f"{kind} {ret} @{symbol(name, sfx)}{vec or ''}({args}){attrs} {_PURE}"
        if vec:
            return line
        variants = [(w, symbol(name, sfx, w)) for w in target.widths(sfx)]
        line += ' "vector-function-abi-variant"="%s"' % ",".join(
            f"_ZGV_LLVM_N{w}v_{symbol(name, sfx)}({v})" for w, v in variants)
        if kind == "declare":
            for w, v in variants:
                vty = f"<{w} x {ret}>"
                line += f"\ndeclare {vty} @{v}({vty}) {_PURE}"
                used.append(v)
        return line

    text = _HEADER.sub(header, text)
    if used:
        text += ('\n@llvm.compiler.used = appending global [%d x ptr] [%s], section "llvm.metadata"\n'
                 % (len(used), ", ".join(f"ptr @{v}" for v in used)))
    return text


_CALLED = re.compile(rb"gradc_vm_([a-z0-9]+)_(f64|f32)")


def functions_in(code: bytes | str) -> set[tuple[str, str]]:
    """The ``(name, "f64"|"f32")`` vecmath functions that LLVM IR or object code
    refers to (an object file names the symbols it needs in its string table)."""
    if isinstance(code, str):
        code = code.encode()
    return {(n.decode(), s.decode()) for n, s in _CALLED.findall(code) if n.decode() in _IMPL}


# ---------------------------------------------------------------------------
# The prebuilt library: compiled when gradc is built, not on a user's first call
# ---------------------------------------------------------------------------

# Each prebuilt object is the whole library compiled for one x86-64 level; the JIT
# loads it on a host with every feature the level assumes (LLVM's feature names) and
# the same vector math target, and compiles the library itself anywhere else.
PREBUILT_LEVELS = {
    "x86-64-v3": (Target(256, True), ("avx", "avx2", "bmi", "bmi2", "f16c", "fma", "lzcnt", "movbe", "xsave")),
    "x86-64-v4": (Target(512, True), ("avx", "avx2", "bmi", "bmi2", "f16c", "fma", "lzcnt", "movbe", "xsave",
                                      "avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl")),
}
PREBUILT_MANIFEST = "vecmath.json"


def source_digest() -> str:
    """SHA-256 of this file: a prebuilt object is used only with the code it came from."""
    import hashlib
    with open(__file__, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def build_prebuilt(out_dir: str) -> list[str]:
    """Compile the whole library for each of ``PREBUILT_LEVELS`` into ``out_dir``, with
    a manifest naming each object's level, target, required features and digest (the
    JIT's code model, as ``llvm_jit.vecmath_object`` compiles it).  Run by setup.py;
    needs llvmlite.  Returns the files written."""
    import hashlib
    import json
    import os
    import llvmlite.binding as llvm
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    triple = llvm.get_default_triple()
    if not triple.startswith("x86_64"):
        return []
    os.makedirs(out_dir, exist_ok=True)
    target = llvm.Target.from_triple(triple)
    objects, written = [], []
    for level, (vm, requires) in PREBUILT_LEVELS.items():
        tm = target.create_target_machine(cpu=level, features="", opt=3, codemodel="jitdefault")
        mod = llvm.parse_assembly(library_ir(vm))
        mod.triple, mod.data_layout = triple, str(tm.target_data)
        mod.verify()
        obj = tm.emit_object(mod)
        name = f"vecmath-{level}.o"
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(obj)
        written.append(os.path.join(out_dir, name))
        objects.append({"file": name, "level": level, "vector_bits": vm.vector_bits, "fma": vm.fma,
                        "requires": list(requires), "sha256": hashlib.sha256(obj).hexdigest()})
    manifest = os.path.join(out_dir, PREBUILT_MANIFEST)
    with open(manifest, "w") as f:
        json.dump({"source_sha256": source_digest(), "triple": triple, "objects": objects}, f, indent=1)
    return written + [manifest]
