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

The renderer is four modules, importing one way: ``llvm_exprs.py`` (LLVM types of
dtypes, the per-element :class:`Emitter` of the ops' lowerings), ``llvm_calls.py``
(library calls: GEMM, skinny products, LAPACK, sort ranks), ``llvm_parallel.py``
(parallel nests and a split kernel's parts), and this one: :class:`Codegen` (loops,
statements, expressions, the kernel function and its ABI wrapper, with the other two
as mixins) and the entry points ``render``, ``lower`` and ``lower_parts``.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from ..ops import OPS
from . import loop_ir as lir, vecmath
from .llvm_calls import LibraryCalls
from .llvm_exprs import F32, F64, I1, I8, I32, I64, Emitter, _const, ir_type, reg_type  # noqa: F401 (re-exported)
from .llvm_parallel import COMBINE_KINDS, ParallelNests  # noqa: F401 (re-exported)
from .lower_loops import build
from .loop_ir import STATUS_INDEX_OUT_OF_BOUNDS, STATUS_NEGATIVE_POWER  # noqa: F401 (the ABI's codes)
from .schedule_types import step_tables
from .schedule import ALIGN, Schedule, workspace_bytes, workspace_layout  # noqa: F401


# Loops with a Loop.align load start their main part at a 64-byte boundary (a cache
# line; an AVX-512 vector) when they run at least ALIGN_MIN_ITERATIONS iterations.
ALIGN_BYTES, ALIGN_MIN_ITERATIONS = 64, 64


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


# A split kernel of at least this many nests calls its serial nests as functions too
# (Codegen.call_outlined); below it they stay in the kernel's function, where a call
# of a few microseconds spends nothing on calls between nests.
OUTLINE_MIN_NESTS = 48


class Codegen(LibraryCalls, ParallelNests):
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
        elif isinstance(st, lir.ScanCall):
            self.emit_scan(st)
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

    # -- the function ----------------------------------------------------------------
    def build(self) -> ir.Module:
        s, g = self.s, self.g
        # buffers passed to impl: inputs, outputs, constants, workspace
        self.regions = workspace_layout(s)
        self.region_of = {key: (k, dtype) for k, region in enumerate(self.regions) for key, _shape, dtype in region}
        direct = list(g.inputs) + list(dict.fromkeys(o for o in s.outputs if o in s.roots)) + list(s.consts) \
            + [key for key, _step in step_tables(s)]
        self.buffer_nodes = direct + [("region", k) for k in range(len(self.regions))]
        ptr_tys = [(I64 if isinstance(n, tuple) else ir_type(g[n]["dtype"])).as_pointer() for n in direct] \
            + [I8.as_pointer()] * len(self.regions)
        self.ptr_tys = ptr_tys
        impl_ty = ir.FunctionType(I32, ptr_tys + [I64] * len(s.symbols))
        impl = ir.Function(self.module, impl_ty, name=f"{self.name}.impl")
        impl.linkage = "internal"
        impl.attributes.add("alwaysinline")
        for k, arg in enumerate(impl.args[: len(ptr_tys)]):
            # noalias holds for regions too: buffers sharing one are all based on its pointer
            arg.add_attribute("noalias")
            key = self.buffer_nodes[k]
            arg.name = f"p{key}" if isinstance(key, int) else f"{key[0]}{key[1]}"
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
