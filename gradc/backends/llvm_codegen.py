"""Lowering a :class:`~gradc.backends.schedule.Schedule` to LLVM IR (llvmlite.ir).

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

import numpy as np
from llvmlite import ir

from ..ops import OPS
from . import vecmath
from .schedule import (ALIGN, REDUCE, Lowering, Schedule, broadcast_index, identity, view_index,  # noqa: F401
                       workspace_bytes, workspace_layout)

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
F32, F64 = ir.FloatType(), ir.DoubleType()

# A kernel's status: an OR of these bits (runtime/gradc.h's GRADC_* codes).
STATUS_INDEX_OUT_OF_BOUNDS = 1   # a gather or scatter index outside its array
STATUS_NEGATIVE_POWER = 8        # an integer raised to a negative integer power

# gradc_combine's element types (runtime/parallel.c), by numpy kind and size; bool and
# uint8 share unsigned bytes (a bool's max is an or, its min an and)
COMBINE_KINDS = {"f8": 0, "f4": 1, "i8": 2, "i4": 3, "b1": 4, "u1": 4, "u8": 5, "u4": 6,
                 "i1": 7, "i2": 8, "u2": 9}


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

    def math(self, name, x):
        return self.cg.math(name, x)

    def sign(self, x):
        one, zero = _const(x.type, 1), _const(x.type, 0)
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
        return self.cg.convert(x, reg_type(dtype), unsigned=self._unsigned())

    def pow(self, x, y):
        if not self._float(x):
            if isinstance(y, ir.Constant):      # tracing refused negative constants
                return self._int_pow(x, int(y.constant))
            return self.cg.int_pow(x, y)
        if isinstance(y, ir.Constant) and float(y.constant).is_integer() and abs(y.constant) <= 64:
            return self._int_pow(x, int(y.constant))
        if isinstance(y, ir.Constant) and y.constant == 0.5:
            return self.intrinsic("llvm.sqrt", x)
        # General exponents: libm's correctly handled pow (scalar; rare in models).
        return self.cg.libm("pow", x, y)

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


class Codegen(Lowering):
    def __init__(self, s: Schedule, name: str, blas: dict | None = None, split: bool = False):
        if s.partials and not s.threads > 1:
            raise ValueError("internal: partial buffers without threads")
        self.s, self.g, self.name = s, s.graph, name
        self.blas = blas or None
        self.module = ir.Module(name=name)
        self.e = Emitter(self)
        self._libm = {}
        self.row_local = set(s.row_local)   # per-row values kept for one row block
        self.block_first = None    # the first row of the block being emitted
        self.chunk = ir.Constant(I64, 0)   # the chunk a parallel nest's body runs
        self.blas_call = ir.Constant(I1, 0)  # this call uses OpenBLAS (see calls_blas)
        self.flagged = False       # flag_error was emitted (in the nest being emitted)
        self.ctx = None            # the parallel nests' shared context array
        self.split = split         # each parallel nest's task in a module of its own
        self.parts = []            # those modules
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

    def size(self, d) -> ir.Value:
        return ir.Constant(I64, d) if isinstance(d, int) else self.sizes[d]

    def numel(self, shape) -> ir.Value:
        n = ir.Constant(I64, 1)
        for d in shape:
            if d != 1:
                n = self.b.mul(n, self.size(d)) if not (isinstance(n, ir.Constant) and n.constant == 1) else self.size(d)
        return n

    # -- memory ----------------------------------------------------------------------
    def offset(self, shape, idx) -> ir.Value:
        """Row-major offset of ``idx`` in a contiguous array of ``shape``."""
        off = None
        for d, i in zip(shape, idx):
            if off is None:
                off = i if d != 1 else ir.Constant(I64, 0)
            elif d != 1:
                off = self.b.add(self.b.mul(off, self.size(d)), i)
        return off if off is not None else ir.Constant(I64, 0)

    def ptr(self, nid, idx):
        d = self.g[nid]
        base = self.bufs[nid]
        if nid in self.row_local:   # a row-local value: slot (row - first row of the block)
            return self.b.gep(base, [self.b.sub(idx[0], self.block_first)], inbounds=True)
        return self.b.gep(base, [self.offset(d["shape"], idx)], inbounds=True)

    def load(self, nid, idx):
        v = self.b.load(self.ptr(nid, idx), name=f"n{nid}")
        return self.b.trunc(v, I1) if self.g[nid]["dtype"] == np.bool_ else v

    def store(self, nid, idx, v):
        if self.g[nid]["dtype"] == np.bool_:
            v = self.b.zext(v, I8)
        self.b.store(v, self.ptr(nid, idx))

    # -- expressions -----------------------------------------------------------------
    def val(self, nid, idx):
        """The value of node ``nid`` at index ``idx`` (inlined unless it has a buffer)."""
        key = (nid, tuple(id(i) for i in idx))
        hit = self.memo.get(key)
        if hit is not None:
            return hit[0]
        v = self._val(nid, idx)
        if isinstance(v, ir.Instruction) and not v.name:
            v.name = f"n{nid}"   # IR values carry the graph node they compute
        self.memo[key] = (v, idx)  # keep idx alive so ids stay unique
        return v

    def _argidx(self, arg, out_shape, idx):
        """Broadcasting: the index of ``arg`` that feeds element ``idx`` of the result."""
        return broadcast_index(self.g[arg]["shape"], len(out_shape), idx, ir.Constant(I64, 0))

    def _val(self, nid, idx):
        d = self.g[nid]
        op = d["op"]
        if op == "const":
            v = d["params"]["value"]
            if v.ndim == 0:
                return _const(reg_type(d["dtype"]), v.item())
            return self.load(nid, idx)
        if nid in self.bufs:
            return self.load(nid, idx)
        o = OPS[op]
        if o.kind == "elementwise":
            args = [self.val(a, self._argidx(a, d["shape"], idx)) for a in d["args"]]
            self.e.arg_dtypes = [self.g[a]["dtype"] for a in d["args"]]
            v = o.llvm(self.e, *args, **d["params"])
            return v
        return getattr(self, "_view_" + op)(nid, d, idx)

    def _view_broadcast_to(self, nid, d, idx):
        return self.val(d["args"][0], view_index(self.g, nid, d["args"][0], idx, ir.Constant(I64, 0)))

    _view_transpose = _view_broadcast_to   # a permutation of the index (view_index)

    def _view_reshape(self, nid, d, idx):
        a = d["args"][0]
        ins, outs = self.g[a]["shape"], d["shape"]
        plain = view_index(self.g, nid, a, idx, ir.Constant(I64, 0))   # only size-1 axes added or dropped
        if plain is not None:
            return self.val(a, plain)
        flat = self.offset(outs, idx)  # general reshape: linearize, then delinearize
        inner = []
        for k in range(len(ins) - 1, -1, -1):
            n = self.size(ins[k])
            inner.append(self.b.urem(flat, n) if k else flat)
            if k:
                flat = self.b.udiv(flat, n)
        return self.val(a, inner[::-1])

    def _view_slice(self, nid, d, idx):
        inner = []
        for i, (a, _, c) in zip(idx, d["params"]["index"]):
            j = i if c == 1 else self.b.mul(i, ir.Constant(I64, c))
            inner.append(j if a == 0 else self.b.add(j, ir.Constant(I64, a)))
        return self.val(d["args"][0], inner)

    def _view_unslice(self, nid, d, idx):
        src = d["args"][0]
        ok, inner = _const(I1, 1), []
        for i, (a, _, c), n in zip(idx, d["params"]["index"], self.g[src]["shape"]):
            rel = self.b.sub(i, ir.Constant(I64, a))
            if c != 1:
                ok = self.b.and_(ok, self.b.icmp_signed("==", self.b.srem(rel, ir.Constant(I64, c)), ir.Constant(I64, 0)))
                rel = self.b.sdiv(rel, ir.Constant(I64, c))
            ok = self.b.and_(ok, self.b.icmp_signed(">=", rel, ir.Constant(I64, 0)))
            ok = self.b.and_(ok, self.b.icmp_signed("<", rel, self.size(n)))
            inner.append(rel)
        safe = [self.b.select(ok, r, ir.Constant(I64, 0)) for r in inner]
        v = self.val(src, safe)
        return self.b.select(ok, v, _const(v.type, 0))

    def _view_gather(self, nid, d, idx):
        x, *ix = d["args"]
        xs = self.g[x]["shape"]
        inner = []
        for a, n in zip(ix, xs):
            k = self.convert(self.val(a, self._argidx(a, d["shape"], idx)), I64)
            nn = self.size(n)
            k = self.b.select(self.b.icmp_signed("<", k, ir.Constant(I64, 0)), self.b.add(k, nn), k)
            ok = self.b.and_(self.b.icmp_signed(">=", k, ir.Constant(I64, 0)), self.b.icmp_signed("<", k, nn))
            self.flag_error(ok)
            inner.append(self.b.select(ok, k, ir.Constant(I64, 0)))
        return self.val(x, inner)

    def _view_iota(self, nid, d, idx):
        return self.convert(idx[d["params"]["axis"]], reg_type(d["dtype"]))

    def _view_count(self, nid, d, idx):
        shape = self.g[d["args"][0]]["shape"]
        n = self.numel([shape[a] for a in d["params"]["axes"]])
        return self.b.sitofp(n, reg_type(d["dtype"]))

    def _view_concatenate(self, nid, d, idx):
        axis = d["params"]["axis"]
        result, start = None, 0
        for a in d["args"]:
            n = self.g[a]["shape"][axis]
            rel = self.b.sub(idx[axis], ir.Constant(I64, start))
            inside = self.b.and_(self.b.icmp_signed(">=", rel, ir.Constant(I64, 0)),
                                 self.b.icmp_signed("<", rel, ir.Constant(I64, n)))
            safe = self.b.select(inside, rel, ir.Constant(I64, 0))
            v = self.val(a, [safe if k == axis else i for k, i in enumerate(idx)])
            result = v if result is None else self.b.select(inside, v, result)
            start += n
        return result

    def flag_error(self, ok, code=None):
        """Unless ``ok``, OR ``code`` (a ``GRADC_*`` bit of runtime/gradc.h; default:
        an index out of bounds) into the kernel's status."""
        self.flagged = True
        bad = self.b.select(ok, ir.Constant(I32, 0), ir.Constant(I32, code or STATUS_INDEX_OUT_OF_BOUNDS))
        self.b.store(self.b.or_(self.b.load(self.status), bad), self.status)

    def int_pow(self, x, y):
        """Integer ``x ** y`` (wrapping, as numpy's): square-and-multiply in a helper
        function of this module; a negative ``y`` sets GRADC_NEGATIVE_POWER."""
        self.flag_error(self.b.icmp_signed(">=", y, _const(y.type, 0)), STATUS_NEGATIVE_POWER)
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
            b.cbranch(b.icmp_signed(">", e, _const(x.type, 0)), body, done)
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
    def loop(self, n, body, name="i", start=None):
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
        if self.plain_loops or self.math_calls > calls:
            back.set_metadata("llvm.loop", self.plain_loop_id())
        b.position_at_end(end)

    def plain_loop_id(self):
        """Loop metadata (a self-referential node, one per loop) that asks LLVM for one
        vector loop without interleaving or unrolling: far less code than the O3 default
        (a vector loop interleaved four times, an epilogue vector loop, a scalar one)."""
        m = self.module
        hints = [m.add_metadata([ir.MetaDataString(m, "llvm.loop.interleave.count"), ir.Constant(I32, 1)]),
                 m.add_metadata([ir.MetaDataString(m, "llvm.loop.unroll.disable")])]
        loop_id = m.add_metadata([None, *hints])
        loop_id.operands = (loop_id, *hints)
        return loop_id

    def row_blocks(self, lo, hi, emit, size, blocks=True, rest=True):
        """Rows lo..hi in blocks of ``size`` (``emit`` gets the block's row indices), then
        the remaining rows one at a time.  The remaining rows (at most size - 1 per
        call) run plain vector loops (``plain_loop_id``): O3's interleaved and unrolled
        versions of them were a third of the neuron loss's compile time (M2: 75 against
        111 ms for its modules, median of 15) and bought nothing measurable (M2 on
        (7, 1000) floats: 3.7 against 3.6-4.6 us; not vectorizing them at all was 6.9-12)."""
        b = self.b
        lo = lo if lo is not None else ir.Constant(I64, 0)
        n = b.sub(hi, lo)
        nblocks = b.sdiv(n, ir.Constant(I64, size))
        first = lambda t: b.add(lo, b.mul(t, ir.Constant(I64, size)))  # noqa: E731
        if blocks:
            self.loop(nblocks, lambda t: emit([b.add(first(t), ir.Constant(I64, k)) for k in range(size)]),
                      name="rows")
        if rest:
            saved, self.plain_loops = self.plain_loops, True
            self.loop(hi, lambda i: emit([i]), name="row", start=b.add(lo, b.mul(nblocks, ir.Constant(I64, size))))
            self.plain_loops = saved

    def fill(self, nid, value, rows=None):
        """Set every element of a root's buffer (the identity of a reduction), or with
        ``rows`` = (start, end) only those rows of its first axis."""
        shape = self.g[nid]["shape"]
        ty = reg_type(self.g[nid]["dtype"])
        base = self.bufs[nid]
        if rows is None:
            start, end = None, self.numel(shape)
        else:
            row = self.numel(shape[1:])
            start, end = self.b.mul(rows[0], row), self.b.mul(rows[1], row)
        self.loop(end, lambda i: self.b.store(_const(ty, value), self.b.gep(base, [i], inbounds=True)),
                  f"fill{nid}", start=start)

    # -- nests -----------------------------------------------------------------------
    def combine(self, op, acc, v, dtype):
        """``acc`` and ``v`` combined by reduction ``op`` over values of ``dtype``."""
        if op == "sum":
            return self.b.fadd(acc, v, name="acc") if self.e._float(v) else self.b.add(acc, v)
        self.e.arg_dtypes = [dtype]            # max/min compare unsigned integers unsigned
        return self.e.maximum(acc, v) if op == "max" else self.e.minimum(acc, v)

    def emit_loop_nest(self, nest, outer=None, part="all"):
        """Loops over the nest's domain.  Outer loops are shared; at the innermost level
        the stages run in order for each outer index: even stages are inner loops over
        the last axis, odd stages compute row-level roots between them.

        ``part`` splits a row-blocked nest's rows in two (``lower_parts`` compiles the
        halves on different cores): "blocks" runs the whole blocks of rows; "rest" the
        rows after them, one at a time, continuing the reductions "blocks" left in
        memory (no fill; the accumulators outside the row loop start from their stored
        values), which sums every element in the same order as "all"."""
        dom, r = nest.domain, len(nest.domain)
        info = nest.info
        # per-row values only this nest reads live for one block of rows (schedule's
        # row_local): a few bytes of workspace per chunk, which stay in cache
        for nid in nest.roots:
            if nid in self.row_local:   # this chunk's block of rows (workspace_layout)
                off = self.b.mul(self.chunk, ir.Constant(I64, nest.row_block))
                self.bufs[nid] = self.b.gep(self.bufs[("rows", nid)], [off])
        for nid in nest.roots:
            d = self.g[nid]
            if d["op"] in REDUCE and info[nid]["acc"] is None and part != "rest":
                # A chunk of a parallel nest owns only its rows of a reduction that keeps
                # the outer axis (other chunks fill and fill in theirs concurrently); a
                # reduction across chunks writes this chunk's own partial buffer.
                own_rows = outer if outer is not None and nid not in self.s.partials else None
                self.fill(nid, identity(d["op"], d["dtype"]), rows=own_rows)
        accs = {}
        n_stages = max((info[n]["stage"] for n in nest.roots), default=0) + 1

        def is_reduce(nid):
            return self.g[nid]["op"] in REDUCE

        stage_local, root_rank = nest.stage_local, nest.root_rank

        def out_index(nid, idx):
            return nest.reduced_index(self.g[nid], idx, ir.Constant(I64, 0))

        def acc_slot(nid, idx):   # where an accumulator for outer index idx is stored
            return out_index(nid, idx + [ir.Constant(I64, 0)] * (root_rank(nid) - len(idx)))

        def init_acc(key, resume_at=None):
            nid = key[0] if isinstance(key, tuple) else key
            acc = self.alloca(reg_type(self.g[nid]["dtype"]), name=f"n{nid}.acc")
            d = self.g[nid]
            if resume_at is None:
                self.b.store(_const(acc.type.pointee, identity(d["op"], d["dtype"])), acc)
            else:   # part "rest": from where part "blocks" stored it
                self.b.store(self.load(nid, acc_slot(nid, resume_at)), acc)
            accs[key] = acc

        def store_acc(key, idx):
            nid = key[0] if isinstance(key, tuple) else key
            self.store(nid, acc_slot(nid, idx), self.b.load(accs[key]))

        def body(roots, idx, b=0):
            self.memo = {}
            for nid in roots:
                op = self.g[nid]["op"]
                if not is_reduce(nid):
                    self.store(nid, idx, self._val_root(nid, idx))
                    continue
                v = self.val(self.g[nid]["args"][0], idx)
                dtype = self.g[nid]["dtype"]
                if info[nid]["acc"] is not None:
                    acc = accs[(nid, b)] if (nid, b) in accs else accs[nid]
                    self.b.store(self.combine(op, self.b.load(acc), v, dtype), acc)
                else:
                    p = self.ptr(nid, out_index(nid, idx))
                    self.b.store(self.combine(op, self.b.load(p), v, dtype), p)

        def stages(rows):
            """Every stage for a block of rows (outer indices): an inner loop serves all
            rows of the block, so row dot products share loads of the other operand and
            an accumulation over rows loads and stores its output once per block."""
            if r == 2:
                self.block_first = rows[0][0]
            for st in range(n_stages):
                roots = [n for n in nest.roots if info[n]["stage"] == st]
                if not roots:
                    continue
                if st % 2:
                    for b, idx in enumerate(rows):
                        body(roots, idx, b)
                    continue
                local = [n for n in roots if is_reduce(n) and stage_local(n)]
                for b in range(len(rows)):
                    for n in local:
                        init_acc((n, b))
                if r:
                    lo, hi = (outer if outer and r == 1 else (None, self.size(dom[r - 1])))

                    def inner(i, roots=roots):
                        for b, idx in enumerate(rows):
                            body(roots, idx + [i], b)
                    self.loop(hi, inner, name=f"i{r - 1}", start=lo)
                else:
                    body(roots, rows[0])
                for b, idx in enumerate(rows):
                    for n in local:
                        store_acc((n, b), idx)

        # Rows in blocks: see Nest.row_block (the schedule decides).
        blocked = r == 2 and nest.row_block > 1

        def level(k, idx):
            outers = [n for n in nest.roots if is_reduce(n) and info[n]["acc"] == k and not stage_local(n)]
            for n in outers:   # (outside the row loop when k <= r - 2)
                init_acc(n, idx if part == "rest" and blocked and k <= r - 2 else None)
            if k >= r - 1:
                stages([idx])
            else:
                lo, hi = outer if (outer and k == 0) else (None, self.size(dom[k]))
                if blocked and k == r - 2:
                    self.row_blocks(lo, hi, lambda rows: stages([idx + [i] for i in rows]), nest.row_block,
                                    blocks=part != "rest", rest=part != "blocks")
                else:
                    self.loop(hi, lambda i: level(k + 1, idx + [i]), name=f"i{k}", start=lo)
            for n in outers:
                store_acc(n, idx)

        level(0, [])

    # Threads pay off once a nest's single-thread time dwarfs the pool's hand-off (a few
    # microseconds): elements x estimated body cost (schedule._cost: 8 per transcendental
    # call, 1 per other op) of at least PAR_MIN_WORK, about 60 us of work.  (M1 medium,
    # 10,000 elements of a 61-cost body, runs 150 us serially and 63-78 us on 2 threads.)
    PAR_MIN_WORK = 1 << 18

    def new_part(self, name):
        """Start module ``name`` of a split kernel (``lower_parts``); returns the module
        being emitted before, to go back to."""
        previous, self.module = self.module, ir.Module(name=name)
        self.parts.append(self.module)
        return previous

    def nest_function(self, nest, name, body_ty, crossing, part):
        """A function of this module running ``part`` of ``nest`` (emit_loop_nest) over
        rows [start, end) of its outer loop for chunk ``tid``: buffers, sizes, start,
        end, tid, the chunks' status array."""
        s = self.s
        n_ptr, n_sym = len(self.ptr_tys), len(s.symbols)
        fn = ir.Function(self.module, body_ty, name=name)
        for arg in fn.args[:n_ptr]:
            arg.add_attribute("noalias")
        saved = (self.b, self.entry, self.bufs, self.sizes, self.status, self.chunk)
        self.entry = fn.append_basic_block("entry")
        self.b = ir.IRBuilder(self.entry)
        self.bind_buffers(fn.args[:n_ptr])
        self.sizes = dict(zip(s.symbols, fn.args[n_ptr:n_ptr + n_sym]))
        start, end, tid, status_arr = fn.args[n_ptr + n_sym:]
        self.status = self.b.gep(status_arr, [tid])
        self.chunk = self.b.sext(tid, I64)
        for r in crossing:   # this chunk's partial result
            off = self.b.mul(self.b.sext(tid, I64), self.numel(self.g[r]["shape"]))
            self.bufs[r] = self.b.gep(self.bufs[("partial", r)], [off])
        self.emit_loop_nest(nest, outer=(start, end), part=part)
        self.b.ret_void()
        self.b, self.entry, self.bufs, self.sizes, self.status, self.chunk = saved
        return fn

    def emit_parallel_nest(self, nest, k, impl):
        """Outline the nest into a body function over [start, end) of its outer loop, run
        it in chunks on the thread pool, then combine per-chunk partial reductions in
        chunk order (the same result every run for a given thread count)."""
        s, T = self.s, self.s.threads   # T: chunks (a fixed multiple of the pool's threads)
        crossing = [n for n in nest.roots if n in s.partials]
        n_ptr, n_sym = len(self.ptr_tys), len(s.symbols)
        body_ty = ir.FunctionType(ir.VoidType(), self.ptr_tys + [I64] * n_sym + [I64, I64, I32, I32.as_pointer()])
        if self.split:   # helpers and declarations the body needs go to the task's module
            kernel_module = self.new_part(f"{self.name}.task{k}")
        # Split modules: a row-blocked nest's rows after its last block go to a module
        # of their own too (a third of the nest's compile time; emit_loop_nest's part)
        split_rest = self.split and len(nest.domain) == 2 and nest.row_block > 1
        flagged_before, self.flagged = self.flagged, False
        body = self.nest_function(nest, f"{self.name}.nest{k}", body_ty, crossing, "blocks" if split_rest else "all")
        body.linkage = "internal"
        body.attributes.add("alwaysinline")
        if split_rest:
            task_module = self.new_part(f"{self.name}.nest{k}.rest")
            rest = self.nest_function(nest, f"{self.name}.nest{k}.rest", body_ty, crossing, "rest")
            self.module = task_module
            rest = ir.Function(self.module, body_ty, name=rest.name)   # declared; linked by the JIT
        can_fail = self.flagged          # only gathers and integer powers set a status
        self.flagged = flagged_before or can_fail

        # task(ctx, start, end, chunk): unpack the context, call the body
        vp = I8.as_pointer()
        task_ty = ir.FunctionType(ir.VoidType(), [vp, I64, I64, I32])
        task = ir.Function(self.module, task_ty, name=f"{self.name}.task{k}")
        if not self.split:
            task.linkage = "internal"
        task.attributes.add("noinline")   # one copy of the nest serves the pool and the serial call
        tb = ir.IRBuilder(task.append_basic_block("entry"))
        ctx = tb.bitcast(task.args[0], vp.as_pointer())
        vals = [tb.bitcast(tb.load(tb.gep(ctx, [ir.Constant(I64, j)])), t) for j, t in enumerate(self.ptr_tys)]
        szp = tb.bitcast(tb.load(tb.gep(ctx, [ir.Constant(I64, n_ptr)])), I64.as_pointer())
        stp = tb.bitcast(tb.load(tb.gep(ctx, [ir.Constant(I64, n_ptr + 1)])), I32.as_pointer())
        vals += [tb.load(tb.gep(szp, [ir.Constant(I64, j)])) for j in range(n_sym)]
        tb.call(body, vals + [task.args[1], task.args[2], task.args[3], stp])
        if split_rest:
            tb.call(rest, vals + [task.args[1], task.args[2], task.args[3], stp])
        tb.ret_void()
        if self.split:   # the kernel's module declares the task; the JIT links the objects
            self.module = kernel_module
            task = ir.Function(self.module, task_ty, name=task.name)

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
        n0 = self.size(nest.domain[0])
        chunks = self.alloca(I64, name=f"nest{k}.chunks")
        work = self.numel(nest.domain)
        min_work = max(1, self.PAR_MIN_WORK // max(nest.cost, 1))
        par = b.and_(b.and_(b.icmp_signed(">=", work, ir.Constant(I64, min_work)),
                            b.icmp_signed(">=", n0, ir.Constant(I64, T))),
                     b.not_(self.blas_call))
        pf = self.module.globals.get("gradc_parallel_for")
        if pf is None:
            pf = ir.Function(self.module, ir.FunctionType(ir.VoidType(), [task_ty.as_pointer(), vp, I64, I32, I32]),
                             "gradc_parallel_for")
        with b.if_else(par) as (then, otherwise):
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
        for r in crossing:   # merge the chunks' partial results, in chunk order
            op = {"sum": 0, "max": 1, "min": 2}[self.g[r]["op"]]
            dt = self.g[r]["dtype"]
            kind = COMBINE_KINDS[dt.kind + str(dt.itemsize)]
            b.call(comb, [ir.Constant(I32, op), ir.Constant(I32, kind), b.bitcast(self.bufs[("partial", r)], vp),
                          b.bitcast(self.bufs[r], vp), self.numel(self.g[r]["shape"]), nch])
        for t in range(T if can_fail else 0):   # chunks that did not run left theirs at 0
            st = b.load(b.gep(st_arr, [z, ir.Constant(I64, t)]))
            b.store(b.or_(b.load(self.status), st), self.status)

    def emit_matmul(self, nest):
        """A matrix-matrix product (schedule.decompose turned every product with a
        vector operand into element-wise products and sums, fused with their nests)."""
        (nid,) = nest.roots
        d = self.g[nid]
        a, bb = d["args"]
        sa, sb = self.g[a]["shape"], self.g[bb]["shape"]
        assert len(sa) == len(sb) == 2, "internal: decompose() leaves only matrix-matrix products"
        ty = reg_type(d["dtype"])
        b = self.b
        k, m, n = self.size(sa[1]), self.size(sa[0]), self.size(sb[1])
        self.memo = {}
        lib = self.library_product(a, bb)
        if lib is None:
            self.matmul_loops(nid, a, bb, k, m, n)
            return
        ops, narrow = lib
        # Every product goes to a library when there is one: OpenBLAS's small-matrix
        # path costs about a microsecond, and not emitting a vectorized loop fallback
        # keeps compile time down.  Products with at most 16 columns (a softmax's
        # classes, a layer's few outputs) first try gradc's narrow kernels, several
        # times faster there than OpenBLAS (runtime/skinny.c); wider ones return 1.
        if narrow:
            done = self.call_skinny(nid, ops, m, n, k, ty)
            with b.if_then(b.icmp_signed("!=", done, ir.Constant(I32, 0)), likely=False):
                self.call_gemm(nid, ops, m, n, k, ty)
        else:
            self.call_gemm(nid, ops, m, n, k, ty)

    def library_product(self, a, bb):
        """How a matrix-matrix product ``a @ bb`` runs: None for generated loops (no BLAS,
        or an operand BLAS cannot read in place), else (the operands as BLAS reads them,
        whether gradc's narrow kernel is tried first)."""
        if not self.blas or len(self.g[a]["shape"]) != 2 or len(self.g[bb]["shape"]) != 2 \
                or self.g[a]["dtype"].kind != "f":      # integer products: generated loops
            return None
        ops = self.blas_operands(a, bb)
        if ops is None:
            return None
        return ops, bool(self.blas.get("skinny")) and not ops[1][1]

    def goes_to_blas(self, nest):
        """i1: does this matrix-product nest call OpenBLAS in this call (rather than
        gradc's narrow kernel or generated loops)?"""
        a, bb = self.g[nest.roots[0]]["args"]
        lib = self.library_product(a, bb)
        if lib is None:
            return ir.Constant(I1, 0)
        if not lib[1]:
            return ir.Constant(I1, 1)
        return self.b.icmp_signed(">", self.size(self.g[bb]["shape"][1]), ir.Constant(I64, self.SKINNY_MAX_N))

    SKINNY_MAX_N = 16   # GRADC_SKINNY_MAX_N in runtime/skinny.c

    def calls_blas(self):
        """i1: does this call of the kernel wake OpenBLAS's own thread pool?  Then
        gradc's own threads sit this call out: OpenBLAS's worker spins for ~120 ms after
        each of its calls, and gradc's two threads on two cores beside it ran slower than
        one (M4 medium 12.6-13.0 ms with gradc on 2 threads, 11.7-12.4 ms on 1).  With
        the pool-split products (call_gemm) OpenBLAS never runs threads of its own."""
        flag = ir.Constant(I1, 0)
        if self.blas and self.blas.get("pool"):     # (ahead-of-time libraries have no BLAS)
            return flag
        for nest in self.s.nests:
            if nest.kind == "matmul":
                flag = self.b.or_(flag, self.goes_to_blas(nest))
        return flag

    def blas_operands(self, a, bb):
        """(base node, transposed?) for each operand when BLAS can read it in place."""
        out = []
        for x in (a, bb):
            d = self.g[x]
            if x in self.bufs:
                out.append((x, False))
            elif d["op"] == "transpose" and d["args"][0] in self.bufs:
                out.append((d["args"][0], True))
            else:
                return None
        return out

    def ld(self, x):
        """Leading dimension of a stored matrix: its row length, at least 1."""
        b = self.b
        cols = self.size(self.g[x]["shape"][1])
        return b.select(b.icmp_signed(">", cols, ir.Constant(I64, 1)), cols, ir.Constant(I64, 1))

    def call_skinny(self, nid, ops, m, n, k, ty):
        """gradc_skinny_gemm (runtime/skinny.c): 0 when it computed the product."""
        vp = I8.as_pointer()
        fn = self.module.globals.get("gradc_skinny_gemm")
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(I32, [I32, I32, I64, I64, I64, vp, I64, vp, I64, vp, I64, I32]),
                             "gradc_skinny_gemm")
        (xa, ta), (xb, _) = ops
        b = self.b
        cast = lambda x: b.bitcast(self.bufs[x], vp)  # noqa: E731
        return b.call(fn, [ir.Constant(I32, 0 if ty == F64 else 1), ir.Constant(I32, 1 if ta else 0), m, n, k,
                           cast(xa), self.ld(xa), cast(xb), self.ld(xb), cast(nid), self.ld(nid),
                           self.b.select(self.blas_call, ir.Constant(I32, 1), ir.Constant(I32, self.s.pool_threads))])

    def call_gemm(self, nid, ops, m, n, k, ty):
        """C = op(A) @ op(B) by BLAS: split into row blocks on gradc's pool, one
        single-threaded BLAS call each (gradc_pool_*gemm, runtime/poolgemm.c), where
        OpenBLAS lets a thread ask for one thread; else OpenBLAS's CBLAS directly."""
        b = self.b
        iw = ir.IntType(self.blas["int"])
        fp = ty.as_pointer()
        pool = bool(self.blas.get("pool"))
        name = ("gradc_pool_" if pool else "gradc_cblas_") + ("dgemm" if ty == F64 else "sgemm")
        fn = self.module.globals.get(name)
        if fn is None:
            params = [I32, I32, I32, iw, iw, iw, ty, fp, iw, fp, iw, ty, fp, iw] + ([I32] if pool else [])
            fn = ir.Function(self.module, ir.FunctionType(ir.VoidType(), params), name)

        def ld(x):
            return self.convert(self.ld(x), iw)
        (xa, ta), (xb, tb) = ops
        args = [ir.Constant(I32, 101), ir.Constant(I32, 112 if ta else 111), ir.Constant(I32, 112 if tb else 111),
                self.convert(m, iw), self.convert(n, iw), self.convert(k, iw), _const(ty, 1.0),
                self.bufs[xa], ld(xa), self.bufs[xb], ld(xb), _const(ty, 0.0), self.bufs[nid], ld(nid)]
        b.call(fn, args + ([ir.Constant(I32, self.s.pool_threads)] if pool else []))

    def matmul_loops(self, nid, a, bb, k, m, n):
        b = self.b
        dtype = self.g[nid]["dtype"]
        self.fill(nid, 0.0)

        def over_i(i):     # i-k-j order: the inner loop streams rows of b and c (vectorizes)
            def over_k(kk):
                self.memo = {}
                va = self.val(a, [i, kk])

                def over_j(j):
                    self.memo = {}
                    p = self.ptr(nid, [i, j])
                    b.store(self.combine("sum", b.load(p), self.e.mul(va, self.val(bb, [kk, j])), dtype), p)
                self.loop(n, over_j, name="j")
            self.loop(k, over_k, name="k")
        self.loop(m, over_i, name="i")

    def emit_scatter(self, nest):
        (nid,) = nest.roots
        d = self.g[nid]
        upd, *ix = d["args"]
        self.fill(nid, 0.0)
        dom = nest.domain
        shape = d["shape"]

        def level(k, idx):
            if k == len(dom):
                self.memo = {}
                inner = []
                for a, n in zip(ix, shape):
                    kk = self.convert(self.val(a, self._argidx(a, dom, idx)), I64)
                    nn = self.size(n)
                    kk = self.b.select(self.b.icmp_signed("<", kk, ir.Constant(I64, 0)), self.b.add(kk, nn), kk)
                    ok = self.b.and_(self.b.icmp_signed(">=", kk, ir.Constant(I64, 0)), self.b.icmp_signed("<", kk, nn))
                    self.flag_error(ok)
                    inner.append(self.b.select(ok, kk, ir.Constant(I64, 0)))
                v = self.val(upd, idx)
                p = self.ptr(nid, inner)
                self.b.store(self.e.add(self.b.load(p), v), p)
            else:
                self.loop(self.size(dom[k]), lambda i: level(k + 1, idx + [i]), name=f"s{k}")
        level(0, [])

    # -- the function ----------------------------------------------------------------
    def build(self) -> ir.Module:
        s, g = self.s, self.g
        # buffers passed to impl: inputs, outputs, constants, workspace
        self.regions = workspace_layout(s)
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
        self.blas_call = self.calls_blas()
        for k, nest in enumerate(s.nests):
            if nest.kind == "loop" and nest.parallel:
                self.emit_parallel_nest(nest, k, impl)
            else:
                {"loop": self.emit_loop_nest, "matmul": self.emit_matmul,
                 "scatter": self.emit_scatter}[nest.kind](nest)
        self.b.ret(self.b.load(self.status))
        self._wrapper(impl, ptr_tys)
        return self.module

    def bind_buffers(self, args):
        """Map buffer keys to pointers: direct ones, then each region's buffers (typed
        views of the region's pointer)."""
        self.bufs = dict(zip(self.buffer_nodes, args))
        for k, region in enumerate(self.regions):
            base = self.bufs[("region", k)]
            for key, _shape, dtype in region:
                self.bufs[key] = self.b.bitcast(base, ir_type(dtype).as_pointer())

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
                nb = b.mul(self.numel(shape), ir.Constant(I64, np.dtype(dtype).itemsize))
                nbytes = nb if nbytes is None else b.select(b.icmp_unsigned(">", nb, nbytes), nb, nbytes)
            off = b.add(off, b.and_(b.add(nbytes, ir.Constant(I64, ALIGN - 1)), ir.Constant(I64, -ALIGN)))
        b.ret(b.call(impl, ptrs + szs))


def lower(s: Schedule, name: str, blas: dict | None = None) -> ir.Module:
    """The kernel's LLVM module; ``blas`` (see backends/blas.py) enables library GEMM calls."""
    return Codegen(s, name, blas).build()


def lower_parts(s: Schedule, name: str, blas: dict | None = None) -> list[ir.Module]:
    """The kernel as several modules, which the JIT compiles at once on as many cores:
    the kernel function (with its serial nests) first, then one module per parallel
    nest's task, which the first declares.  The objects link when the engine loads
    them.  (A task is called through the thread pool or, serially, as a noinline call:
    splitting costs no inlining.)"""
    cg = Codegen(s, name, blas, split=True)
    return [cg.build()] + cg.parts
