"""The LLVM renderer's library calls: matrix products (gradc's narrow kernel,
runtime/skinny.c, then BLAS through gradc's pool or CBLAS), row-pipeline blocks, the
LAPACK-backed ops (runtime/lapack.c) and sort ranks (runtime/sortrank.c).

A mixin of ``llvm_codegen.Codegen``, which renders the loop IR's Gemm, SkinnyPack,
SkinnyRows, LapackCall and SortRanks statements with these methods; apart because
each is a call's signature and arguments, not loops, and reads on its own.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from . import loop_ir as lir
from .llvm_exprs import F64, I8, I32, I64, _const, reg_type


class LibraryCalls:
    """Calls of gradc's runtime and of BLAS; uses the Codegen's builder (``b``), module,
    buffers (``bufs``), expressions (``e_``), ``convert`` and status."""

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

    # -- scans ---------------------------------------------------------------------------
    def emit_scan(self, st: lir.ScanCall):
        """A scan's loop: the step kernel called once per step (``step_caller``); each
        carry a pointer variable, where the step reads it, set to where it wrote it."""
        b, vp = self.b, I8.as_pointer()
        consts, call = self.step_caller(st, f"scan{st.nid}")
        cur = [self.alloca(vp, name=f"scan{st.nid}.cur{k}") for k in range(len(st.carries))]
        for k, (init, _bufs, _y) in enumerate(st.carries):
            b.store(self.place_ptr(init, None, {}), cur[k])
        n = self.e_(st.length) if st.length is not None else None
        cond = self.scan_cond(st) if st.cond is not None else None

        def step(i):
            t = b.sub(b.sub(n, ir.Constant(I64, 1)), i) if st.reverse else i
            odd = b.trunc(i, ir.IntType(1))
            carry = {("cur", k): b.load(cur[k]) for k in range(len(st.carries))}
            if cond is not None:
                cond(t, carry)
            for k, (_init, (b0, b1), y) in enumerate(st.carries):
                carry[("next", k)] = self.place_ptr(y, t, carry) if y is not None else \
                    b.select(odd, b.bitcast(self.bufs[b1], vp), b.bitcast(self.bufs[b0], vp))
            carry["stepconst"] = consts
            call(t, carry)
            for c in st.after_step:
                self.emit_copy(c, t, carry)
            for k in range(len(st.carries)):
                b.store(carry[("next", k)], cur[k])
        if cond is None:
            self.loop(n, step, name=f"scan{st.nid}.t")
        else:
            self.loop_until_break(step, name=f"while{st.nid}.t")
        final = {("cur", k): b.load(cur[k]) for k in range(len(st.carries))}
        for c in st.after:
            self.emit_copy(c, None, final)

    def step_caller(self, st, name):
        """(its constants' pointers, ``call(t, known)``) for the step kernel of ``st``
        (a ScanCall or LoopCond: its address and constants in its ``fn`` table): the
        call fills a pointer array on the stack with its places at step ``t`` and calls
        it through the kernel ABI with its sizes (stored once, before the loop), OR-ing
        its status into the kernel's."""
        b, vp, zero = self.b, I8.as_pointer(), ir.Constant(I32, 0)
        fnty = ir.FunctionType(I32, [vp.as_pointer(), I64.as_pointer(), vp])
        table = b.bitcast(self.bufs[st.fn], I64.as_pointer())
        fn = b.inttoptr(b.load(table), fnty.as_pointer())
        consts = [b.inttoptr(b.load(b.gep(table, [ir.Constant(I64, 1 + c)])), vp) for c in range(st.nconst)]
        places = list(st.inputs) + list(st.outputs)
        ptrs = self.alloca(ir.ArrayType(vp, max(len(places) + st.nconst, 1)), name=f"{name}.args")
        sizes = self.alloca(ir.ArrayType(I64, max(len(st.sizes), 1)), name=f"{name}.sizes")
        for k, x in enumerate(st.sizes):
            b.store(self.e_(x), b.gep(sizes, [zero, ir.Constant(I32, k)]))
        for c, p in enumerate(consts):
            b.store(p, b.gep(ptrs, [zero, ir.Constant(I32, len(places) + c)]))
        ws = b.bitcast(self.bufs[st.ws], vp) if st.ws is not None else ir.Constant(vp, None)

        def call(t, known):
            known = {**known, "stepconst": consts}
            for k, place in enumerate(places):
                b.store(self.place_ptr(place, t, known), b.gep(ptrs, [zero, ir.Constant(I32, k)]))
            rc = b.call(fn, [b.bitcast(ptrs, vp.as_pointer()), b.bitcast(sizes, I64.as_pointer()), ws])
            b.store(b.or_(b.load(self.status), rc), self.status)
        return consts, call

    def scan_cond(self, st: lir.ScanCall):
        """``check(t, carry)``: a while loop's condition call and the branch out of the
        loop (``self.loop_exit``) when its bool is false."""
        b, c = self.b, st.cond
        consts, call = self.step_caller(c, f"while{st.nid}.cond")

        def check(t, carry):
            call(t, carry)
            flag = self.place_ptr(c.flag, t, {**carry, "stepconst": consts})
            more = b.append_basic_block(f"while{st.nid}.more")
            b.cbranch(b.icmp_unsigned("!=", b.load(flag), ir.Constant(I8, 0)), more, self.loop_exit)
            b.position_at_end(more)
        return check

    def loop_until_break(self, body, name):
        """A loop over i = 0, 1, ... that ``body(i)`` leaves by branching to
        ``self.loop_exit``."""
        b = self.b
        iv = self.alloca(I64, name=name + ".addr")
        b.store(ir.Constant(I64, 0), iv)
        head = b.append_basic_block(name + ".body")
        end = b.append_basic_block(name + ".end")
        b.branch(head)
        b.position_at_end(head)
        saved, self.loop_exit = getattr(self, "loop_exit", None), end
        i = b.load(iv, name=name)
        body(i)
        b.store(b.add(i, ir.Constant(I64, 1)), iv)
        b.branch(head)
        self.loop_exit = saved
        b.position_at_end(end)

    def place_ptr(self, place, t, known):
        """The i8* of a place of a ScanCall at step ``t``; ``known``: the carries'
        pointers (("cur", k), ("next", k)) and the step's constants ("stepconst")."""
        b, vp = self.b, I8.as_pointer()
        key, step = place
        if key == "stepconst":
            return known["stepconst"][step]
        if isinstance(key, tuple) and key[0] in ("cur", "next"):
            return known[key]
        p = b.bitcast(self.bufs[key], vp)
        if step is not None:
            p = b.gep(p, [b.mul(t, self.e_(step))], inbounds=True)
        return p

    def emit_copy(self, st: lir.Copy, t, known):
        vp = I8.as_pointer()
        fn = self.module.declare_intrinsic("llvm.memcpy", [vp, vp, I64])
        self.b.call(fn, [self.place_ptr(st.dst, t, known), self.place_ptr(st.src, t, known), self.e_(st.nbytes),
                         ir.Constant(ir.IntType(1), 0)])
