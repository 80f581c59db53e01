"""Rendering the loop IR (``loop_ir.py``, made by ``lower_loops.build`` from a
:class:`~gradc.backends.schedule.Schedule`) as LLVM IR (llvmlite.ir).

The kernel ABI (see ``runtime/gradc.h``)::

    int32_t NAME(void **args, const int64_t *sizes, void *workspace)

``args`` holds the data pointers of the inputs, then the outputs, then array constants;
``sizes`` the run-time value of each size symbol (``Schedule.symbols`` order);
``workspace`` the intermediates' memory (``workspace_bytes(sizes)``).  It returns 0, or
1 when a gather index was out of bounds.

The exported function loads the pointers and calls an internal ``NAME.impl`` whose
pointer parameters are ``noalias`` (after inlining LLVM keeps that as alias metadata),
so loops vectorize without run-time overlap checks.  Loops are written with allocas
(clang's style); SROA/mem2reg turn them into SSA, and O3 vectorizes the inner loops.
IR values are named after the graph nodes they compute (``n12``) so the IR reads next
to the graph.
"""
from __future__ import annotations

import re

import numpy as np
from llvmlite import ir

from ..ops import OPS
from . import loop_ir as lir, vecmath
from .lower_loops import build
from .loop_ir import STATUS_INDEX_OUT_OF_BOUNDS, STATUS_NEGATIVE_POWER  # noqa: F401 (the ABI's codes)
from .schedule import ALIGN, Schedule, workspace_bytes, workspace_layout  # noqa: F401

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
F32, F64 = ir.FloatType(), ir.DoubleType()

# gradc_combine's element types (runtime/parallel.c), by numpy kind and size; bool and
# uint8 share unsigned bytes (a bool's max is an or, its min an and)
COMBINE_KINDS = {"f8": 0, "f4": 1, "i8": 2, "i4": 3, "b1": 4, "u1": 4, "u8": 5, "u4": 6,
                 "i1": 7, "i2": 8, "u2": 9}


# Loops with a Loop.align load start their main part at a 64-byte boundary (a cache
# line; an AVX-512 vector) when they run at least ALIGN_MIN_ITERATIONS iterations.
ALIGN_BYTES, ALIGN_MIN_ITERATIONS = 64, 64


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



class _RegionViews(dict):
    """A function's buffer pointers by key: the direct ones given; a region's buffer is
    ``view(region pointer, dtype)``, made once, the first time it is asked for."""

    def __init__(self, direct, region_of, view):
        super().__init__(direct)
        self.region_of, self.view = region_of, view

    def __missing__(self, key):
        if key not in self.region_of:
            raise KeyError(key)
        k, dtype = self.region_of[key]
        made = self[key] = self.view(self[("region", k)], dtype)
        return made


class Emitter:
    """Scalar operations used by the ops' ``llvm`` lowerings (one element at a time;
    the loop vectorizer widens them)."""

    def __init__(self, cg: "Codegen"):
        self.cg = cg
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


# a local value named after a graph node (%"n12", %"n12.acc"): see Codegen.shared_body
_LOCAL_NODE_NAME = re.compile(r'%"n\d+')
# A split kernel of at least this many nests calls its serial nests as functions too
# (Codegen.call_outlined); below it they stay in the kernel's function, where a call
# of a few microseconds spends nothing on calls between nests.
OUTLINE_MIN_NESTS = 48


class Codegen:
    """Spells a :class:`~gradc.backends.loop_ir.Kernel` with llvmlite's IRBuilder: loops
    with allocas (clang's style), accumulators in allocas, parallel nests outlined into
    task functions; what is computed is the loop IR's."""

    def __init__(self, kernel: lir.Kernel, blas: dict | None = None, split: bool = False):
        s = kernel.schedule
        if s.partials and not s.threads > 1:
            raise ValueError("internal: partial buffers without threads")
        self.kernel, self.s, self.g, self.name = kernel, s, s.graph, kernel.name
        self.blas = blas or None
        self.module = ir.Module(name=self.name)
        self.e = Emitter(self)
        self.memo = lir.Scopes()   # rendered expressions, per loop body
        self.vars: dict = {}       # id(Var) -> its value
        self.accs: dict = {}       # id(Acc) -> its alloca
        self.flagged = False       # flag_error was emitted (in the nest being emitted)
        self.ctx = None            # the parallel nests' shared context array
        self.split = split         # each parallel nest's task in a module of its own
        self.parts = []            # those modules (a nest body's as its text)
        self.bodies: dict = {}     # a split kernel's parallel bodies: their code -> function name
        self.places = None         # buffer key -> its place in buffer_nodes (pointers_used)
        self.plain_loops = False   # loops being emitted get plain_loop_id metadata
        self.math_calls = 0        # vector math calls emitted so far (see loop)

    # -- helpers ----------------------------------------------------------------------
    def alloca(self, ty, name=""):
        with self.b.goto_block(self.entry):
            self.b.position_at_start(self.entry)
            return self.b.alloca(ty, name=name)

    def convert(self, x, ty, unsigned=False):
        """``x`` as LLVM type ``ty``; ``unsigned``: ``x`` is an unsigned integer (LLVM's
        integer types carry no sign), converted with uitofp / zext."""
        b, src = self.b, x.type
        if src == ty:
            return x
        fl = (ir.FloatType, ir.DoubleType)
        if isinstance(src, fl) and isinstance(ty, fl):
            return b.fpext(x, ty) if ty == F64 else b.fptrunc(x, ty)
        if isinstance(src, fl):
            if ty == I1:
                return b.fcmp_unordered("!=", x, _const(src, 0))
            return b.fptosi(x, ty)
        if isinstance(ty, fl):
            return b.uitofp(x, ty) if src == I1 or unsigned else b.sitofp(x, ty)
        if ty == I1:
            return b.icmp_signed("!=", x, _const(src, 0))
        if src == I1:
            return b.zext(x, ty)
        if ty.width > src.width:
            return b.zext(x, ty) if unsigned else b.sext(x, ty)
        return b.trunc(x, ty)

    def float_to_int(self, x, dt):
        """Float ``x`` as integer dtype ``dt``, numpy's answer on x86-64 (its contiguous
        loops') for every value: truncated toward zero through int32 (to 1, 2 and 4-byte
        signed and 1, 2-byte unsigned types, wrapping to the narrower type) or int64; a
        value out of range or NaN gives the range's minimum (cvttsd2si's answer); uint32
        and uint64 take values from 2^31 (2^63) up as x - 2^31 (2^63) with the top bit
        set.  LLVM's fptosi of an out-of-range value is poison, so each conversion sees
        an in-range value (tests/test_arrays.py, test_float_to_int_out_of_range)."""
        b = self.b
        x = self.convert(x, F64)

        def trunc(v, bits):
            ity, lim = ir.IntType(bits), float(2 ** (bits - 1))
            ok = b.and_(b.fcmp_ordered(">=", v, _const(F64, -lim)), b.fcmp_ordered("<", v, _const(F64, lim)))
            k = b.fptosi(b.select(ok, v, _const(F64, 0.0)), ity)
            return b.select(ok, k, _const(ity, -2 ** (bits - 1)))
        bits = 64 if dt.itemsize == 8 else 32
        if dt.kind == "u" and dt.itemsize >= 4:
            top = 2.0 ** (bits - 1)
            big = b.fcmp_ordered(">=", x, _const(F64, top))
            k = trunc(b.select(big, b.fsub(x, _const(F64, top)), x), bits)
            k = b.select(big, b.xor(k, _const(k.type, -2 ** (bits - 1))), k)
        else:
            k = trunc(x, bits)
        return self.convert(k, reg_type(dt))

    def libm(self, name, *xs):
        ty = xs[0].type
        fname = name if ty == F64 else name + "f"
        fn = self.module.globals.get(fname)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(ty, [ty] * len(xs)), fname)
        return self.b.call(fn, list(xs))

    def math(self, name, x):
        """A transcendental function from gradc's vector math (vecmath.py), compiled once
        per process: the kernel only declares it, and the loop vectorizer calls its
        vector variants (``vecmath.annotate``, applied by ``llvm_jit.prepare_ir``)."""
        self.math_calls += 1
        return self.b.call(vecmath.declare(self.module, name, x.type), [x])

    # -- memory ----------------------------------------------------------------------
    def ptr(self, buf, index, shape):
        return self.b.gep(self.bufs[buf], [self.e_(lir.flat_offset(shape, index))], inbounds=True)

    def load(self, x):
        v = self.b.load(self.ptr(x.buf, x.index, x.shape), name=f"n{x.buf}" if isinstance(x.buf, int) else "")
        return self.b.trunc(v, I1) if x.dtype == np.bool_ else v

    def store_value(self, p, v, dtype):
        if dtype == np.bool_:
            v = self.b.zext(v, I8)
        self.b.store(v, p)

    # -- expressions -----------------------------------------------------------------
    def e_(self, x):
        """The value of loop IR expression ``x``, computed once per loop body."""
        if isinstance(x, lir.Var):
            return self.vars[id(x)]
        if isinstance(x, lir.Const):
            return ir.Constant(I64, int(x.value)) if x.dtype == lir.INDEX else _const(reg_type(x.dtype), x.value)
        if isinstance(x, lir.Size):
            return self.sizes[x.symbol]
        hit = self.memo.get(x)
        if hit is None:
            hit = self._e(x)
            if getattr(x, "nid", None) is not None and isinstance(hit, ir.Instruction) and not hit.name:
                hit.name = f"n{x.nid}"   # IR values carry the graph node they compute
            self.memo.put(x, hit)
        return hit

    _BIN = {"add": "add", "sub": "sub", "mul": "mul", "sdiv": "sdiv", "srem": "srem", "udiv": "udiv",
            "urem": "urem", "and": "and_", "or": "or_"}
    _CMP = {"lt": "<", "ge": ">=", "gt": ">", "eq": "=="}

    def _e(self, x):
        b, e_ = self.b, self.e_
        if isinstance(x, lir.Bin):
            if x.op in self._CMP:
                return b.icmp_signed(self._CMP[x.op], e_(x.a), e_(x.b))
            return getattr(b, self._BIN[x.op])(e_(x.a), e_(x.b), name=x.name or "")
        if isinstance(x, lir.Not):
            return b.not_(e_(x.a))
        if isinstance(x, lir.Select):
            return b.select(e_(x.cond), e_(x.a), e_(x.b))
        if isinstance(x, lir.Load):
            return self.load(x)
        if isinstance(x, lir.Apply):
            args = [e_(a) for a in x.args]
            self.e.arg_dtypes = list(x.arg_dtypes)
            return OPS[x.op].llvm(self.e, *args, **x.params)
        if isinstance(x, lir.MathCall):
            args = [e_(a) for a in x.args]
            if x.fn in vecmath.NAMES:
                return self.math(x.fn, *args)
            return self.e.intrinsic(f"llvm.{x.fn}", *args)    # sqrt: an instruction
        if isinstance(x, lir.Guard):
            value = e_(x.value)
            self.flag_error(e_(x.ok), x.code)
            return value
        if isinstance(x, lir.AccValue):
            return b.load(self.accs[id(x.acc)])
        if isinstance(x, lir.ToIndex):
            return self.convert(e_(x.a), I64)
        if isinstance(x, lir.FromIndex):
            return self.convert(e_(x.a), reg_type(x.dtype))
        if isinstance(x, lir.Checked):
            k, n, zero = e_(x.a), e_(x.n), ir.Constant(I64, 0)
            k = b.select(b.icmp_signed("<", k, zero), b.add(k, n), k)
            ok = b.and_(b.icmp_signed(">=", k, zero), b.icmp_signed("<", k, n))
            self.flag_error(ok)
            return b.select(ok, k, zero)
        raise TypeError(f"internal: LLVM has no spelling of {type(x).__name__}")

    def flag_error(self, ok, code=None):
        """Unless ``ok``, OR ``code`` (a ``GRADC_*`` bit of runtime/gradc.h; default:
        an index out of bounds) into the kernel's status."""
        self.flagged = True
        bad = self.b.select(ok, ir.Constant(I32, 0), ir.Constant(I32, code or lir.STATUS_INDEX_OUT_OF_BOUNDS))
        self.b.store(self.b.or_(self.b.load(self.status), bad), self.status)

    def int_pow(self, x, y):
        """Integer ``x ** y`` (wrapping, as numpy's): square-and-multiply over the bits of
        ``y`` in a helper function of this module (a negative ``y`` is flagged by the
        loop IR's Guard; what the helper returns for it is not used)."""
        name = f"gradc.ipow.i{x.type.width}"
        fn = self.module.globals.get(name)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(x.type, [x.type, x.type]), name)
            fn.linkage = "internal"
            bx, by = fn.args
            b = ir.IRBuilder(fn.append_basic_block("entry"))
            loop, body, done = (fn.append_basic_block(n) for n in ("loop", "body", "done"))
            b.branch(loop)
            b.position_at_end(loop)
            result, base, e = (b.phi(x.type, name=n) for n in ("result", "base", "e"))
            for phi, v in ((result, _const(x.type, 1)), (base, bx), (e, by)):
                phi.add_incoming(v, fn.entry_basic_block)
            b.cbranch(b.icmp_unsigned("!=", e, _const(x.type, 0)), body, done)   # (a uint8 200 is no -56)
            b.position_at_end(body)
            odd = b.trunc(e, I1)
            result.add_incoming(b.select(odd, b.mul(result, base), result), body)
            base.add_incoming(b.mul(base, base), body)
            e.add_incoming(b.lshr(e, _const(x.type, 1)), body)
            b.branch(loop)
            b.position_at_end(done)
            b.ret(result)
        return self.b.call(fn, [x, y])

    # -- loops -----------------------------------------------------------------------
    def loop(self, n, body, name="i", start=None, narrow=False):
        b = self.b
        iv = self.alloca(I64, name=name + ".addr")
        b.store(start if start is not None else ir.Constant(I64, 0), iv)
        cond = b.append_basic_block(name + ".cond")
        bodyb = b.append_basic_block(name + ".body")
        end = b.append_basic_block(name + ".end")
        b.branch(cond)
        b.position_at_end(cond)
        i = b.load(iv, name=name)
        b.cbranch(b.icmp_signed("<", i, n), bodyb, end)
        b.position_at_end(bodyb)
        calls = self.math_calls
        body(i)
        b.store(b.add(i, ir.Constant(I64, 1), flags=["nsw"]), iv)
        back = b.branch(cond)
        # A loop that calls vector math runs one call per vector, not O3's four
        # interleaved ones: every call clobbers all vector registers, so the
        # interleaved loop spilled and reloaded the other vectors around each call,
        # which doubled the time of whole processes (gradc bench --vecmath, float64
        # exp on 4,096 elements: 5.2 against 2.8 us on an AVX-512 Zen 4, depending
        # on where the process's memory lay).
        if narrow:
            back.set_metadata("llvm.loop", self.plain_loop_id(masked=True))
        elif self.plain_loops or self.math_calls > calls:
            back.set_metadata("llvm.loop", self.plain_loop_id())
        b.position_at_end(end)

    def aligned_start(self, loop, start, stop):
        """The first index of ``loop`` at which its ``align`` load's address is a
        multiple of 64 bytes: at most a vector's worth past ``start``, and not past
        ``stop``; ``start`` itself for loops shorter than ALIGN_MIN_ITERATIONS (peeling
        would cost more than it saves) or an address not a multiple of the element size."""
        b, x = self.b, loop.align
        self.vars[id(loop.var)] = start
        self.memo.push()      # (index expressions of the loop variable, at start only)
        # a plain getelementptr: the address is only looked at, and it may lie past the
        # array when the loop is empty
        addr = b.ptrtoint(b.gep(self.bufs[x.buf], [self.e_(lir.flat_offset(x.shape, x.index))]), I64)
        self.memo.pop()
        item = np.dtype(x.dtype).itemsize
        const = lambda v: ir.Constant(I64, v)  # noqa: E731
        peel = b.udiv(b.and_(b.sub(const(0), addr), const(ALIGN_BYTES - 1)), const(item))
        ok = b.and_(b.icmp_unsigned("==", b.and_(addr, const(item - 1)), const(0)),
                    b.icmp_signed(">=", b.sub(stop, start), const(ALIGN_MIN_ITERATIONS)))
        return b.add(start, b.select(ok, peel, const(0)), name=loop.var.name + ".aligned")

    def plain_loop_id(self, masked=False):
        """Loop metadata (a self-referential node, one per loop) that asks LLVM for one
        vector loop without interleaving or unrolling: far less code than the O3 default
        (a vector loop interleaved four times, an epilogue vector loop, a scalar one).
        Loops that run a few rows per chunk (``loop_ir.Loop.plain``: a chunk's first
        and last block of a row-blocked nest, a row pipeline's remaining rows) run such
        loops: O3's interleaved and unrolled versions of a row-blocked nest's remaining
        rows were a third of the neuron loss's compile time (M2: 75 against 111 ms for
        its modules, median of 15) and bought nothing measurable (M2 on (7, 1000)
        floats: 3.7 against 3.6-4.6 us; not vectorizing them at all was 6.9-12).  (Those
        rows now share one loop with the rows of a matrix larger than the cache: see
        lower_loops.)"""
        m = self.module
        hints = [m.add_metadata([ir.MetaDataString(m, "llvm.loop.interleave.count"), ir.Constant(I32, 1)]),
                 m.add_metadata([ir.MetaDataString(m, "llvm.loop.unroll.disable")])]
        if masked:   # a narrow loop (loop_ir.Loop.narrow): its last vector masked, no scalar remainder
            hints.append(m.add_metadata([ir.MetaDataString(m, "llvm.loop.vectorize.predicate.enable"),
                                         ir.Constant(ir.IntType(1), 1)]))
        loop_id = m.add_metadata([None, *hints])
        loop_id.operands = (loop_id, *hints)
        return loop_id

    # -- statements --------------------------------------------------------------------
    def combine(self, op, acc, v, dtype, reassoc=True):
        """``acc`` and ``v`` combined by reduction rule ``op`` over values of ``dtype``
        (a sum named "acc" gets ``reassoc``: llvm_jit.prepare_ir)."""
        if op == "sum":
            if not reassoc:
                return self.e.add(acc, v)
            return self.b.fadd(acc, v, name="acc") if self.e._float(v) else self.b.add(acc, v)
        self.e.arg_dtypes = [dtype]            # max/min compare unsigned integers unsigned
        return self.e.maximum(acc, v) if op == "max" else self.e.minimum(acc, v)

    def block(self, stmts):
        for st in stmts:
            self.stmt(st)

    def stmt(self, st):
        b = self.b
        if isinstance(st, lir.Loop):
            start, stop = self.e_(st.start), self.e_(st.stop)

            def body(i):
                self.vars[id(st.var)] = i
                self.memo.push()
                self.block(st.body)
                self.memo.pop()
            saved = self.plain_loops
            self.plain_loops = saved or st.plain
            if st.align is not None:
                # the first few iterations alone (a plain loop, which LLVM compiles to
                # one masked vector), then the rest from an aligned address of
                # st.align.  The peel is a second copy of the body, and LLVM's time
                # grows with every copy whatever its form (M2 medium with its 7 row
                # loops peeled, O3 and code generation of its modules on one thread,
                # min of 7-9: 133-141 ms as here, 102-105 with no peel; a scalar peel
                # 124-130; explicit width and masking hints on the peel 133-139; one
                # masked peel loop with a main loop of whole vectors and no scalar
                # remainder 144).  One copy run in two passes, [start, aligned) and
                # [aligned, stop), compiled in 120-130 ms but ran the peel in the
                # scalar remainder (171 -> 197 us per call, one thread), or masked
                # every vector when LLVM folded the tail (108-117 ms, 220 us).  So
                # lower_loops.align_inner_loops peels only the loops most rows run.
                mid = self.aligned_start(st, start, stop)
                self.plain_loops = True
                self.loop(mid, body, name=st.var.name + ".peel", start=start)
                self.plain_loops = saved or st.plain
                start = mid
            self.loop(stop, body, name=st.var.name, start=start, narrow=st.narrow)
            self.plain_loops = saved
        elif isinstance(st, lir.Fill):
            base, value = self.bufs[st.buf], _const(ir_type(st.value.dtype), st.value.value)   # (a bool is i8 in memory)
            start, stop = self.e_(st.start), self.e_(st.stop)
            self.loop(stop, lambda i: b.store(value, b.gep(base, [i], inbounds=True)), f"fill{st.nid}", start=start)
        elif isinstance(st, lir.Store):
            v = self.e_(st.value)
            self.store_value(self.ptr(st.buf, st.index, st.shape), v, self.g[st.nid]["dtype"])
        elif isinstance(st, lir.Update):
            v = self.e_(st.value)
            p = self.ptr(st.buf, st.index, st.shape)
            if st.dtype == np.bool_:     # a bool max/min in memory: i8 there, i1 in registers
                self.store_value(p, self.combine(st.op, b.trunc(b.load(p), I1), v, st.dtype, st.reassoc), st.dtype)
            else:
                b.store(self.combine(st.op, b.load(p), v, st.dtype, st.reassoc), p)
        elif isinstance(st, lir.AccInit):
            acc = self.accs[id(st.acc)] = self.alloca(reg_type(st.acc.dtype), name=f"n{st.acc.nid}.acc")
            b.store(self.e_(st.init), acc)
        elif isinstance(st, lir.Accumulate):
            v, acc = self.e_(st.value), self.accs[id(st.acc)]
            b.store(self.combine(st.op, b.load(acc), v, st.acc.dtype), acc)
        elif isinstance(st, lir.Eval):
            self.e_(st.value)
        elif isinstance(st, lir.Rebase):
            self.bufs[st.buf] = b.gep(self.bufs[st.base], [self.e_(st.offset)])
        elif isinstance(st, lir.Comment):
            pass
        elif isinstance(st, lir.Gemm):
            self.emit_gemm(st)
        elif isinstance(st, lir.LapackCall):
            self.emit_lapack(st)
        elif isinstance(st, lir.SortRanks):
            self.emit_sort_ranks(st)
        elif isinstance(st, lir.Parallel):
            self.emit_parallel_nest(st)
        elif isinstance(st, lir.SkinnyPack):
            self.emit_skinny_pack(st)
        elif isinstance(st, lir.SkinnyRows):
            self.emit_skinny_rows(st)
        elif isinstance(st, lir.SkinnyUnpad):
            vp, b = I8.as_pointer(), self.b
            fn = self.declare("gradc_skinny_unpad", ir.VoidType(), [I32, I64, I64, vp, vp, I64])
            b.call(fn, [ir.Constant(I32, 0 if st.dtype == np.float64 else 1), self.e_(st.m), self.e_(st.n),
                        b.bitcast(self.bufs[st.padded], vp), b.bitcast(self.bufs[st.out], vp), self.ld(st.out)])
        else:
            raise TypeError(f"internal: LLVM has no spelling of {type(st).__name__}")

    def new_part(self, name):
        """Start module ``name`` of a split kernel (``lower_parts``); returns the module
        being emitted before, to go back to."""
        previous, self.module = self.module, ir.Module(name=name)
        self.parts.append(self.module)
        return previous

    def nest_function(self, name, body_ty, stmts, used, serial=False):
        """A function of this module running a parallel nest's body ``stmts`` over rows
        [start, end) of its outer loop for chunk ``tid``: the buffers it reads or writes
        (``used``: their places in ``buffer_nodes``), sizes, start, end, tid, the
        chunks' status array."""
        s = self.s
        n_ptr, n_sym = len(used), len(s.symbols)
        fn = ir.Function(self.module, body_ty, name=name)
        for arg in fn.args[:n_ptr]:
            arg.add_attribute("noalias")
        saved = (self.b, self.entry, self.bufs, self.sizes, self.status, self.memo, dict(self.vars))
        self.entry = fn.append_basic_block("entry")
        self.b = ir.IRBuilder(self.entry)
        self.memo = lir.Scopes()
        self.bind_buffers(fn.args[:n_ptr], used)
        self.sizes = dict(zip(s.symbols, fn.args[n_ptr:n_ptr + n_sym]))
        start, end, tid, status_arr = fn.args[n_ptr + n_sym:]
        self.status = self.b.gep(status_arr, [tid])
        self.vars.update({id(lir.START): start, id(lir.END): end, id(lir.CHUNK): self.b.sext(tid, I64)})
        if serial:      # a serial nest's products ask whether this call uses BLAS: from the sizes
            self.vars[id(lir.BLAS_CALL)] = self.e_(self.kernel.blas_call)
        self.block(stmts)
        self.b.ret_void()
        self.b, self.entry, self.bufs, self.sizes, self.status, self.memo, self.vars = saved
        return fn

    def shared_body(self, name, body_ty, stmts, used, serial=False):
        """A parallel nest's body in a split kernel: a function in a module of its own,
        which the kernel's module declares, or the function of an earlier nest whose body
        is the same code.  An unrolled loop (``lax.scan``) repeats one step's nests with
        other buffers, which the task passes: an RNN's gradient over 100 steps has 207
        parallel nests and 10 distinct bodies, and LLVM compiles each once.  Bodies are
        the same when their modules' texts are, up to the module's and the function's
        names and the names of values (which carry graph node ids and mean nothing to
        LLVM)."""
        kernel_module = self.new_part(f"{self.name}.{name}")
        fn = self.nest_function(f"{self.name}.{name}", body_ty, stmts, used, serial)
        text = str(self.module)
        key = _LOCAL_NODE_NAME.sub('%"n', text.split("\n", 1)[1].replace(f'@"{fn.name}"', "@body"))
        shared = self.bodies.setdefault(key, fn.name)
        if shared != fn.name:       # the same code as an earlier nest's body: compile that one
            self.parts.pop()
        else:                       # its text, made once (llvmlite's printing is slow)
            self.parts[-1] = text
        self.module = kernel_module
        return self.module.globals.get(shared) or ir.Function(self.module, body_ty, name=shared)

    def call_outlined(self, nest: lir.Nest):
        """A serial nest of a kernel of many nests, as a call of a body function
        (``shared_body``): an unrolled loop's steps repeat the same nests with other
        buffers, and each distinct body compiles once, in a module of its own, instead of
        every copy in the kernel's one long function (an RNN's gradient over 100 steps:
        about 700 nests, a handful of distinct bodies)."""
        used = self.pointers_used([nest.body])
        n_sym = len(self.s.symbols)
        body_ty = ir.FunctionType(ir.VoidType(), [self.ptr_tys[j] for j in used] + [I64] * n_sym
                                  + [I64, I64, I32, I32.as_pointer()])
        fn = self.shared_body(f"nest{nest.k}", body_ty, nest.body, used, serial=True)
        z = ir.Constant(I64, 0)
        self.b.call(fn, [self.bufs[self.buffer_nodes[j]] for j in used] + [self.sizes[sym] for sym in self.s.symbols]
                    + [z, z, ir.Constant(I32, 0), self.status])

    def emit_parallel_nest(self, par: lir.Parallel):
        """Outline the nest's body (or its parts) into functions over [start, end) of its
        outer loop, run them in chunks on the thread pool, then combine per-chunk
        partial reductions in chunk order (the same result every run for a given thread
        count)."""
        s, T, k = self.s, self.s.threads, par.k   # T: chunks (a fixed multiple of the pool's threads)
        n_ptr, n_sym = len(self.ptr_tys), len(s.symbols)
        used = self.pointers_used([body for _name, body in par.bodies])
        body_ty = ir.FunctionType(ir.VoidType(), [self.ptr_tys[j] for j in used] + [I64] * n_sym
                                  + [I64, I64, I32, I32.as_pointer()])
        flagged_before, self.flagged = self.flagged, False
        if self.split:
            bodies = [self.shared_body(name, body_ty, stmts, used) for name, stmts in par.bodies]
        else:
            ((name, stmts),) = par.bodies     # one body: only split kernels have a part "rest"
            body = self.nest_function(f"{self.name}.{name}", body_ty, stmts, used)
            body.linkage = "internal"
            body.attributes.add("alwaysinline")
            bodies = [body]
        can_fail = self.flagged          # only gathers and integer powers set a status
        self.flagged = flagged_before or can_fail

        # task(ctx, start, end, chunk): unpack the context, call the bodies
        vp = I8.as_pointer()
        task_ty = ir.FunctionType(ir.VoidType(), [vp, I64, I64, I32])
        task = ir.Function(self.module, task_ty, name=f"{self.name}.task{k}")
        task.linkage = "internal"
        task.attributes.add("noinline")   # one copy of the nest serves the pool and the serial call
        tb = ir.IRBuilder(task.append_basic_block("entry"))
        ctx = tb.bitcast(task.args[0], vp.as_pointer())
        vals = [tb.bitcast(tb.load(tb.gep(ctx, [ir.Constant(I64, j)])), self.ptr_tys[j]) for j in used]
        szp = tb.bitcast(tb.load(tb.gep(ctx, [ir.Constant(I64, n_ptr)])), I64.as_pointer())
        stp = tb.bitcast(tb.load(tb.gep(ctx, [ir.Constant(I64, n_ptr + 1)])), I32.as_pointer())
        vals += [tb.load(tb.gep(szp, [ir.Constant(I64, j)])) for j in range(n_sym)]
        for body in bodies:
            tb.call(body, vals + [task.args[1], task.args[2], task.args[3], stp])
        tb.ret_void()

        # in the kernel: the context (built once, shared by every parallel nest: the
        # buffers and sizes do not change), run serially or on the pool, combine
        b = self.b
        z = ir.Constant(I64, 0)
        if self.ctx is None:
            ctx_arr = self.alloca(ir.ArrayType(vp, n_ptr + 2), name="nest.ctx")
            sz_arr = self.alloca(ir.ArrayType(I64, max(n_sym, 1)), name="nest.sizes")
            for j, key in enumerate(self.buffer_nodes):
                b.store(b.bitcast(self.bufs[key], vp), b.gep(ctx_arr, [z, ir.Constant(I64, j)]))
            for j, sym in enumerate(s.symbols):
                b.store(self.sizes[sym], b.gep(sz_arr, [z, ir.Constant(I64, j)]))
            b.store(b.bitcast(b.gep(sz_arr, [z, z]), vp), b.gep(ctx_arr, [z, ir.Constant(I64, n_ptr)]))
            self.ctx = ctx_arr
        ctx_arr = self.ctx
        # a status per chunk, for nests that can set one (no shared write, no atomics)
        st_arr = self.alloca(ir.ArrayType(I32, T), name=f"nest{k}.status") if can_fail else None
        st_p = b.bitcast(b.gep(st_arr, [z, z]), vp) if can_fail else ir.Constant(vp, None)
        b.store(st_p, b.gep(ctx_arr, [z, ir.Constant(I64, n_ptr + 1)]))
        for t in range(T if can_fail else 0):
            b.store(ir.Constant(I32, 0), b.gep(st_arr, [z, ir.Constant(I64, t)]))
        ctx_p = b.bitcast(ctx_arr, vp)
        n0 = self.e_(par.n0)
        chunks = self.alloca(I64, name=f"nest{k}.chunks")
        par_ok = self.e_(par.cond)
        pf = self.module.globals.get("gradc_parallel_for")
        if pf is None:
            pf = ir.Function(self.module, ir.FunctionType(ir.VoidType(), [task_ty.as_pointer(), vp, I64, I32, I32]),
                             "gradc_parallel_for")
        with b.if_else(par_ok) as (then, otherwise):
            with then:
                b.call(pf, [task, ctx_p, n0, ir.Constant(I32, T), ir.Constant(I32, s.pool_threads)])
                b.store(ir.Constant(I64, T), chunks)
            with otherwise:
                b.call(task, [ctx_p, z, n0, ir.Constant(I32, 0)])
                b.store(ir.Constant(I64, 1), chunks)
        nch = b.load(chunks)
        comb = self.module.globals.get("gradc_combine")
        if comb is None:
            comb = ir.Function(self.module, ir.FunctionType(ir.VoidType(), [I32, I32, vp, vp, I64, I64]),
                               "gradc_combine")
        for r, op, dt, count in par.crossing:   # merge the chunks' partial results, in chunk order
            kind = COMBINE_KINDS[dt.kind + str(dt.itemsize)]
            b.call(comb, [ir.Constant(I32, {"sum": 0, "max": 1, "min": 2}[op]), ir.Constant(I32, kind),
                          b.bitcast(self.bufs[("partial", r)], vp), b.bitcast(self.bufs[r], vp), self.e_(count), nch])
        for t in range(T if can_fail else 0):   # chunks that did not run left theirs at 0
            st = b.load(b.gep(st_arr, [z, ir.Constant(I64, t)]))
            b.store(b.or_(b.load(self.status), st), self.status)

    def emit_gemm(self, st: lir.Gemm):
        """A library matrix product: gradc's narrow kernel first when the IR says so (it
        returns 1 for products wider than SKINNY_MAX_N columns), else (or then) BLAS."""
        if st.only_if is not None:
            with self.b.if_then(self.e_(st.only_if)):
                self.emit_gemm(lir.Gemm(st.out, st.a, st.b, st.m, st.n, st.k, st.dtype, st.narrow, st.threads,
                                        st.pool_threads))
            return
        ty, b = reg_type(st.dtype), self.b
        m, n, k = self.e_(st.m), self.e_(st.n), self.e_(st.k)
        ops = [st.a, st.b]
        if st.batch is not None:
            self.call_gemm(st.out, ops, m, n, k, ty, st.pool_threads, (self.e_(st.batch), [self.e_(x) for x in st.strides]))
        elif st.narrow:
            done = self.call_skinny(st.out, ops, m, n, k, ty, self.e_(st.threads))
            with b.if_then(b.icmp_signed("!=", done, ir.Constant(I32, 0)), likely=False):
                self.call_gemm(st.out, ops, m, n, k, ty, st.pool_threads)
        else:
            self.call_gemm(st.out, ops, m, n, k, ty, st.pool_threads)

    def declare(self, name, ret, params):
        fn = self.module.globals.get(name)
        return fn if fn is not None else ir.Function(self.module, ir.FunctionType(ret, params), name)

    def emit_skinny_pack(self, st: lir.SkinnyPack):
        vp, b = I8.as_pointer(), self.b
        fn = self.declare("gradc_skinny_pack", I32, [I32, I64, I64, vp, I64, vp])
        b.call(fn, [ir.Constant(I32, 0 if st.dtype == np.float64 else 1), self.e_(st.n), self.e_(st.k),
                    b.bitcast(self.bufs[st.b], vp), self.ld(st.b), b.bitcast(self.bufs[st.packed], vp)])

    def emit_skinny_rows(self, st: lir.SkinnyRows):
        """One block of a row pipeline's product: gradc_skinny_rows (which declines
        products too wide for it: the pipeline's whole products run instead)."""
        b, vp = self.b, I8.as_pointer()
        ty = reg_type(st.dtype)
        row0, rows, n, cols = (self.e_(v) for v in (st.row0, st.rows, st.n, st.cols))

        def at_row(key, r):   # row r of a stored matrix
            return b.gep(self.bufs[key], [b.mul(r, self.ld(key))], inbounds=True)
        a = at_row(st.a, row0)
        if st.tn:
            bb, out, m, nn, kk = at_row(st.b, row0), self.bufs[st.padded], cols, n, rows
        else:
            bb, out, m, nn, kk = self.bufs[st.padded], at_row(st.out, row0), rows, n, cols
        fn = self.declare("gradc_skinny_rows", I32, [I32, I32, I64, I64, I64, vp, I64, vp, I64, vp, I64])
        ldb = self.ld(st.b) if st.tn else ir.Constant(I64, 0)
        b.call(fn, [ir.Constant(I32, 0 if ty == F64 else 1), ir.Constant(I32, int(st.tn)), m, nn, kk,
                    b.bitcast(a, vp), self.ld(st.a), b.bitcast(bb, vp), ldb, b.bitcast(out, vp),
                    ir.Constant(I64, 0) if st.tn else self.ld(st.out)])

    def emit_lapack(self, st: lir.LapackCall):
        """gradc_lapack (runtime/lapack.c): the op on every matrix of the stack; its
        failures (a singular matrix, ...) are OR-ed into the kernel's status."""
        vp = I8.as_pointer()
        fn = self.module.globals.get("gradc_lapack")
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(I32, [I32, I32, I64, I64, I64, vp, vp, vp]), "gradc_lapack")
        b = self.b
        a = st.args[0]
        rhs = st.args[1] if len(st.args) > 1 else a
        rc = b.call(fn, [ir.Constant(I32, st.routine), ir.Constant(I32, int(st.dtype == np.float32)),
                         self.e_(st.batch), self.e_(st.n), self.e_(st.k), b.bitcast(self.bufs[a], vp),
                         b.bitcast(self.bufs[rhs], vp), b.bitcast(self.bufs[st.out], vp)])
        b.store(b.or_(b.load(self.status), rc), self.status)

    def emit_sort_ranks(self, st: lir.SortRanks):
        """gradc_sort_rank (runtime/sortrank.c; an ahead-of-time library defines its own,
        aot.helpers_source): every row's ranks, with the workspace's scratch row."""
        vp = I8.as_pointer()
        fn = self.module.globals.get("gradc_sort_rank")
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(I32, [I32, I64, I64, vp, vp, vp]), "gradc_sort_rank")
        b = self.b
        rc = b.call(fn, [ir.Constant(I32, st.code), self.e_(st.batch), self.e_(st.n),
                         b.bitcast(self.bufs[st.arg], vp), b.bitcast(self.bufs[st.out], vp),
                         b.bitcast(self.bufs[st.scratch], vp)])
        b.store(b.or_(b.load(self.status), rc), self.status)

    def ld(self, x):
        """Leading dimension of a stored matrix: its row length, at least 1."""
        b = self.b
        cols = self.e_(lir.size(self.g[x]["shape"][-1]))
        return b.select(b.icmp_signed(">", cols, ir.Constant(I64, 1)), cols, ir.Constant(I64, 1))

    def call_skinny(self, nid, ops, m, n, k, ty, threads):
        """gradc_skinny_gemm (runtime/skinny.c): 0 when it computed the product."""
        vp = I8.as_pointer()
        fn = self.module.globals.get("gradc_skinny_gemm")
        if fn is None:
            fnty = ir.FunctionType(I32, [I32, I32, I64, I64, I64, vp, I64, vp, I64, vp, I64, I32])
            fn = ir.Function(self.module, fnty, "gradc_skinny_gemm")
        (xa, ta), (xb, _) = ops
        b = self.b
        cast = lambda x: b.bitcast(self.bufs[x], vp)  # noqa: E731
        return b.call(fn, [ir.Constant(I32, 0 if ty == F64 else 1), ir.Constant(I32, 1 if ta else 0), m, n, k,
                           cast(xa), self.ld(xa), cast(xb), self.ld(xb), cast(nid), self.ld(nid), threads])

    def call_gemm(self, nid, ops, m, n, k, ty, pool_threads, stack=None):
        """C = op(A) @ op(B) by BLAS: split into row blocks on gradc's pool, one
        single-threaded BLAS call each (gradc_pool_*gemm, runtime/poolgemm.c), where
        OpenBLAS lets a thread ask for one thread; else OpenBLAS's CBLAS directly.
        ``stack``: (items, [a's, b's and C's item strides]): a stack of products, items
        spread over the pool (gradc_pool_*gemm_batched)."""
        b = self.b
        iw = ir.IntType(self.blas["int"])
        fp = ty.as_pointer()
        pool = pool_threads > 0
        name = ("gradc_pool_" if pool or stack else "gradc_cblas_") + ("dgemm" if ty == F64 else "sgemm") \
            + ("_batched" if stack else "")
        fn = self.module.globals.get(name)
        if fn is None:
            if stack:
                params = [I32, I32, I32, iw, iw, iw, ty, fp, iw, I64, fp, iw, I64, ty, fp, iw, I64, I64, I32]
            else:
                params = [I32, I32, I32, iw, iw, iw, ty, fp, iw, fp, iw, ty, fp, iw] + ([I32] if pool else [])
            fn = ir.Function(self.module, ir.FunctionType(ir.VoidType(), params), name)

        def ld(x):
            return self.convert(self.ld(x), iw)
        (xa, ta), (xb, tb) = ops
        head = [ir.Constant(I32, 101), ir.Constant(I32, 112 if ta else 111), ir.Constant(I32, 112 if tb else 111),
                self.convert(m, iw), self.convert(n, iw), self.convert(k, iw), _const(ty, 1.0)]
        if stack:
            items, (sa, sb, sc) = stack
            b.call(fn, head + [self.bufs[xa], ld(xa), sa, self.bufs[xb], ld(xb), sb, _const(ty, 0.0),
                               self.bufs[nid], ld(nid), sc, items, ir.Constant(I32, max(pool_threads, 1))])
            return
        args = head + [self.bufs[xa], ld(xa), self.bufs[xb], ld(xb), _const(ty, 0.0), self.bufs[nid], ld(nid)]
        b.call(fn, args + ([ir.Constant(I32, pool_threads)] if pool else []))

    # -- the function ----------------------------------------------------------------
    def build(self) -> ir.Module:
        s, g = self.s, self.g
        # buffers passed to impl: inputs, outputs, constants, workspace
        self.regions = workspace_layout(s)
        self.region_of = {key: (k, dtype) for k, region in enumerate(self.regions) for key, _shape, dtype in region}
        direct = list(g.inputs) + list(dict.fromkeys(o for o in s.outputs if o in s.roots)) + list(s.consts)
        self.buffer_nodes = direct + [("region", k) for k in range(len(self.regions))]
        ptr_tys = [ir_type(g[n]["dtype"]).as_pointer() for n in direct] + [I8.as_pointer()] * len(self.regions)
        self.ptr_tys = ptr_tys
        impl_ty = ir.FunctionType(I32, ptr_tys + [I64] * len(s.symbols))
        impl = ir.Function(self.module, impl_ty, name=f"{self.name}.impl")
        impl.linkage = "internal"
        impl.attributes.add("alwaysinline")
        for k, arg in enumerate(impl.args[: len(ptr_tys)]):
            # noalias holds for regions too: buffers sharing one are all based on its pointer
            arg.add_attribute("noalias")
            key = self.buffer_nodes[k]
            arg.name = f"p{key}" if isinstance(key, int) else f"region{key[1]}"
        for sym, arg in zip(s.symbols, impl.args[len(ptr_tys):]):
            arg.name = f"size.{sym}"
        self.entry = impl.append_basic_block("entry")
        self.b = ir.IRBuilder(self.entry)
        self.bind_buffers(impl.args[: len(ptr_tys)])
        self.sizes = {sym: a for sym, a in zip(s.symbols, impl.args[len(ptr_tys):])}
        self.status = self.b.alloca(I32, name="status")
        self.b.store(ir.Constant(I32, 0), self.status)
        self.blas_call = self.e_(self.kernel.blas_call)
        self.vars.update({id(lir.BLAS_CALL): self.blas_call, id(lir.CHUNK): ir.Constant(I64, 0)})
        outline = self.split and len(self.kernel.nests) >= OUTLINE_MIN_NESTS
        for nest in self.kernel.nests:
            if outline and not any(isinstance(st, lir.Parallel) for st in lir.walk(nest.body)):
                self.call_outlined(nest)
                continue
            self.memo.push()
            self.block(nest.body)
            self.memo.pop()
        self.b.ret(self.b.load(self.status))
        self._wrapper(impl, ptr_tys)
        return self.module

    def bind_buffers(self, args, used=None):
        """Map buffer keys to pointers: the direct ones ``args`` (all of ``buffer_nodes``,
        or those at places ``used``), then each region's buffers, typed views of the
        region's pointer made at the function's entry when first used."""
        keys = self.buffer_nodes if used is None else [self.buffer_nodes[j] for j in used]
        self.bufs = _RegionViews(dict(zip(keys, args)), self.region_of, self.region_view)

    def pointers_used(self, bodies) -> list:
        """The places in ``buffer_nodes`` of the buffers the statements of ``bodies``
        name (a region for any of its buffers), in order.  A parallel nest's function
        takes only these: with every buffer in every nest's signature and unpacking, the
        IR grew with nests x buffers (an RNN unrolled over 50 steps has about a hundred
        of each: 3.6 s to compile).  Any value of a statement's fields that is a buffer's
        key counts, so a place may be passed that is not used; never the reverse (a
        missing one is a KeyError when the body is emitted)."""
        place = self.places
        if place is None:       # made once: a kernel of many nests asks for every nest
            place = {key: j for j, key in enumerate(self.buffer_nodes)}
            for key, (k, _dtype) in self.region_of.items():
                place[key] = place[("region", k)]
            self.places = place
        found, stack, seen = set(), list(bodies), set()
        while stack:
            x = stack.pop()
            if isinstance(x, (list, tuple)):
                try:
                    if x in place:
                        found.add(place[x])
                except TypeError:
                    pass
                stack.extend(x)
            elif isinstance(x, (int, str)) and not isinstance(x, bool):
                if x in place:
                    found.add(place[x])
            elif type(x).__module__ == lir.__name__ and id(x) not in seen:
                seen.add(id(x))
                stack.extend(vars(x).values())
        return sorted(found)

    def region_view(self, base, dtype):
        """A typed view of a region's pointer, at the start of the entry block (where it
        dominates every use, as an alloca)."""
        with self.b.goto_block(self.entry):
            self.b.position_at_start(self.entry)
            return self.b.bitcast(base, ir_type(dtype).as_pointer())

    def _wrapper(self, impl, ptr_tys):
        s = self.s
        vp = I8.as_pointer()
        fnty = ir.FunctionType(I32, [vp.as_pointer(), I64.as_pointer(), vp])
        fn = ir.Function(self.module, fnty, name=self.name)
        args, sizes, ws = fn.args
        args.name, sizes.name, ws.name = "args", "sizes", "workspace"
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        n_direct = len(self.buffer_nodes) - len(self.regions)
        ptrs = []
        for k in range(n_direct):
            p = b.load(b.gep(args, [ir.Constant(I64, k)]))
            ptrs.append(b.bitcast(p, ptr_tys[k]))
        szs = [b.load(b.gep(sizes, [ir.Constant(I64, k)]), name=f"size.{sym}") for k, sym in enumerate(s.symbols)]
        self.b = b
        self.sizes = dict(zip(s.symbols, szs))
        off = ir.Constant(I64, 0)
        for k, region in enumerate(self.regions):
            ptrs.append(b.gep(ws, [off]))
            nbytes = None
            for _key, shape, dtype in region:   # the region holds its largest buffer
                nb = b.mul(self.e_(lir.numel(shape)), ir.Constant(I64, np.dtype(dtype).itemsize))
                nbytes = nb if nbytes is None else b.select(b.icmp_unsigned(">", nb, nbytes), nb, nbytes)
            off = b.add(off, b.and_(b.add(nbytes, ir.Constant(I64, ALIGN - 1)), ir.Constant(I64, -ALIGN)))
        b.ret(b.call(impl, ptrs + szs))


def render(kernel: lir.Kernel, blas: dict | None = None, split: bool = False) -> list:
    """A loop IR kernel as LLVM modules: the kernel function (with its serial nests and
    its parallel nests' tasks) first, then with ``split`` one module per distinct body
    of a parallel nest (and per row-blocked nest's rows one at a time), as its text.
    ``blas``: the library's interface (its integer width)."""
    cg = Codegen(kernel, blas, split)
    return [cg.build()] + cg.parts


def lower(s: Schedule, name: str, blas: dict | None = None) -> ir.Module:
    """The kernel's LLVM module; ``blas`` (see backends/blas.py) enables library GEMM calls."""
    return render(build(s, name, blas=blas), blas)[0]


def lower_parts(s: Schedule, name: str, blas: dict | None = None) -> list:
    """The kernel as several modules (the kernel's ``ir.Module``, then the bodies'
    texts), which the JIT compiles at once on as many cores: the kernel function with
    its parallel nests' tasks first, then one module per distinct body of a parallel
    nest, which the first declares and the tasks call (``Codegen.shared_body``).  The
    objects link when the engine loads them."""
    return render(build(s, name, blas=blas, split=True), blas, split=True)
