"""The LLVM renderer's scalar layer: the LLVM types of gradc's dtypes and the
:class:`Emitter`, which spells one element of an op at a time (the ops' ``llvm``
lowerings in ``gradc/ops`` call it; the loop vectorizer widens what it emits).

It sits below ``llvm_codegen.py`` (the loop and statement renderer), which gives it
its builder, conversions and libm and vector math calls; kept apart so the
op-by-op arithmetic reads on its own, next to the numpy semantics it reproduces.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
F32, F64 = ir.FloatType(), ir.DoubleType()


def ir_type(dtype) -> ir.Type:
    """The LLVM type of an element in memory (integers carry no sign in LLVM: the ops
    that care ask the dtype)."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return {8: F64, 4: F32}[dt.itemsize]
    return ir.IntType(8 * dt.itemsize)       # bool: one byte, as numpy stores it


def reg_type(dtype) -> ir.Type:
    return I1 if np.dtype(dtype) == np.bool_ else ir_type(dtype)


def _const(ty, v):
    if ty == I1:
        return ir.Constant(I1, int(bool(v)))
    if isinstance(ty, ir.IntType):
        return ir.Constant(ty, int(v))
    return ir.Constant(ty, float(v))


class Emitter:
    """Scalar operations used by the ops' ``llvm`` lowerings (one element at a time;
    the loop vectorizer widens them)."""

    def __init__(self, cg):
        self.cg = cg               # the llvm_codegen.Codegen rendering the kernel
        self.arg_dtypes = []       # the dtypes of the arguments of the op being lowered

    @property
    def b(self) -> ir.IRBuilder:
        return self.cg.b

    def _float(self, x):
        return isinstance(x.type, (ir.FloatType, ir.DoubleType))

    def neg(self, x):
        return self.b.fneg(x) if self._float(x) else self.b.neg(x)

    def add(self, x, y):
        if x.type == I1:   # numpy's bool + bool is logical or; i1 add wraps (True + True = False)
            return self.b.or_(x, y)
        return self.b.fadd(x, y) if self._float(x) else self.b.add(x, y)

    def sub(self, x, y):
        return self.b.fsub(x, y) if self._float(x) else self.b.sub(x, y)

    def mul(self, x, y):
        return self.b.fmul(x, y) if self._float(x) else self.b.mul(x, y)

    def div(self, x, y):
        return self.b.fdiv(x, y)

    def abs(self, x):
        if self._float(x):
            return self.intrinsic("llvm.fabs", x)
        if x.type == I1 or self._unsigned():
            return x
        # numpy's abs of the most negative integer is itself (wraps); so is this
        return self.b.select(self.b.icmp_signed("<", x, _const(x.type, 0)), self.b.neg(x), x)

    def intrinsic(self, name, *xs):
        ty = xs[0].type
        fn = self.cg.module.declare_intrinsic(name, [ty], ir.FunctionType(ty, [x.type for x in xs]))
        return self.b.call(fn, list(xs))

    def sign(self, x):
        one, zero = _const(x.type, 1), _const(x.type, 0)
        if not self._float(x):       # integers: (x > 0) - (x < 0), unsigned ones 0 or 1
            pos = self._icmp(">", x, zero)
            if self._unsigned():
                return self.b.zext(pos, x.type)
            return self.b.sub(self.b.zext(pos, x.type), self.b.zext(self._icmp("<", x, zero), x.type))
        pos = self.b.fcmp_ordered(">", x, zero)
        negv = self.b.fcmp_ordered("<", x, zero)
        return self.b.select(pos, one, self.b.select(negv, _const(x.type, -1), x))

    def _unsigned(self):
        """Are the integers of the op being lowered unsigned?  (LLVM's integer types
        carry no sign: a uint64 above 2**63 compares as negative unless told.)"""
        return bool(self.arg_dtypes) and self.arg_dtypes[0].kind == "u"

    def _icmp(self, op, x, y):
        # bools are i1: compare them unsigned (as signed, True would be -1)
        unsigned = x.type == I1 or self._unsigned()
        return (self.b.icmp_unsigned if unsigned else self.b.icmp_signed)(op, x, y)

    def maximum(self, x, y):
        if self._float(x):
            return self.intrinsic("llvm.maximum", x, y)   # propagates NaN, as numpy does
        return self.b.select(self._icmp(">", x, y), x, y)

    def minimum(self, x, y):
        if self._float(x):
            return self.intrinsic("llvm.minimum", x, y)
        return self.b.select(self._icmp("<", x, y), x, y)

    def relu(self, x):
        return self.maximum(x, _const(x.type, 0))

    def compare(self, op, x, y):
        if self._float(x):
            if op == "!=":
                return self.b.fcmp_unordered("!=", x, y)
            return self.b.fcmp_ordered(op, x, y)
        return self._icmp(op, x, y)

    def select(self, c, x, y):
        return self.b.select(c, x, y)

    def logical_and(self, x, y):
        return self.b.and_(x, y)

    def logical_not(self, x):
        return self.b.xor(x, _const(I1, 1))

    def cast(self, x, dtype):
        if isinstance(x.type, (ir.FloatType, ir.DoubleType)) and np.dtype(dtype).kind in "iu":
            return self.cg.float_to_int(x, np.dtype(dtype))
        return self.cg.convert(x, reg_type(dtype), unsigned=self._unsigned())

    def pow(self, x, y):
        if not self._float(x):
            if isinstance(y, ir.Constant):      # tracing refused negative constants
                return self._int_pow(x, int(y.constant))
            return self.cg.int_pow(x, y)        # (the loop IR checked a signed y: Guard)
        if isinstance(y, ir.Constant) and float(y.constant).is_integer() and abs(y.constant) <= 64:
            return self._int_pow(x, int(y.constant))
        if isinstance(y, ir.Constant) and y.constant == 0.5:
            return self.intrinsic("llvm.sqrt", x)
        # General exponents: libm's correctly handled pow (scalar; rare in models).
        return self.cg.libm("pow", x, y)

    def int_divide(self, x, y, which):
        """numpy's integer division of ``x`` by ``y``: ``which`` "q" the quotient rounded
        down, "r" the remainder with y's sign, "fmod" C's (x's sign).  LLVM's division
        is undefined for a zero divisor and for the most negative integer by -1, so
        both divide by 1 instead: x // 0 and x % 0 are 0 and MIN // -1 wraps to MIN,
        as numpy's."""
        b, ty = self.b, x.type
        zero, one = _const(ty, 0), _const(ty, 1)
        by_zero = b.icmp_unsigned("==", y, zero)
        if self._unsigned():
            d = b.select(by_zero, one, y)
            q, r = b.udiv(x, d), b.urem(x, d)
        else:
            minus_one = b.icmp_signed("==", y, _const(ty, -1))
            d = b.select(b.or_(by_zero, minus_one), one, y)
            q, r = b.sdiv(x, d), b.srem(x, d)     # truncated: r has x's sign
            q = b.select(minus_one, b.neg(x), q)
            r = b.select(minus_one, zero, r)
            if which != "fmod":                    # round down: r takes y's sign
                off = b.and_(b.icmp_signed("!=", r, zero),
                             b.icmp_signed("!=", b.icmp_signed("<", r, zero), b.icmp_signed("<", y, zero)))
                q = b.select(off, b.sub(q, one), q)
                r = b.select(off, b.add(r, y), r)
        return b.select(by_zero, zero, q if which == "q" else r)

    def shift(self, x, y, left):
        """numpy's left_shift / right_shift of integers (arithmetic for signed ones).
        LLVM's shl/ashr/lshr are poison for a count outside [0, width): numpy gives 0
        there, or -1 for a negative value shifted right, so the count is checked
        (unsigned: a negative count is out of range too) -- an arithmetic shift by
        width - 1 is that sign fill."""
        b, ty = self.b, x.type
        width = _const(ty, ty.width)
        ok = b.icmp_unsigned("<", y, width)
        if not left and not self._unsigned():
            return b.ashr(x, b.select(ok, y, _const(ty, ty.width - 1)))
        count = b.select(ok, y, _const(ty, 0))
        shifted = b.shl(x, count) if left else b.lshr(x, count)
        return b.select(ok, shifted, _const(ty, 0))

    def bitwise_count(self, x):
        """numpy's bitwise_count: the 1 bits of |x| (the most negative value's
        wrapped abs is itself, one bit, as numpy's), as uint8."""
        if not self._unsigned():
            x = self.abs(x)
        n = self.intrinsic("llvm.ctpop", x)
        return self.b.trunc(n, I8) if x.type.width > 8 else n

    def bitcast(self, x, dtype):
        """The same bits as ``dtype`` (numpy's ndarray.view of the same item size)."""
        ty = reg_type(dtype)
        return x if x.type == ty else self.b.bitcast(x, ty)

    def _int_pow(self, x, n):
        """x**n by repeated squaring (exact for the small integer exponents models use)."""
        if n == 0:
            return _const(x.type, 1)
        result, base, k = None, x, abs(n)
        while k:
            if k & 1:
                result = base if result is None else self.mul(result, base)
            k >>= 1
            if k:
                base = self.mul(base, base)
        return self.b.fdiv(_const(x.type, 1), result) if n < 0 else result
