"""The LLVM renderer's parallel nests: a nest's body outlined into functions over
row ranges, a task that unpacks the shared context and calls them, the kernel's call
of ``gradc_parallel_for`` (runtime/parallel.c) and the in-order combination of the
chunks' partial reductions; and a split kernel's modules (``lower_parts``): bodies in
modules of their own, shared by nests whose code is the same.

A mixin of ``llvm_codegen.Codegen``, which renders a loop IR Parallel statement with
``emit_parallel_nest`` and a serial nest of a long kernel with ``call_outlined``.
"""
from __future__ import annotations

import re

from llvmlite import ir

from . import loop_ir as lir
from .llvm_exprs import I8, I32, I64

# gradc_combine's element types (runtime/parallel.c), by numpy kind and size; bool and
# uint8 share unsigned bytes (a bool's max is an or, its min an and)
COMBINE_KINDS = {"f8": 0, "f4": 1, "i8": 2, "i4": 3, "b1": 4, "u1": 4, "u8": 5, "u4": 6,
                 "i1": 7, "i2": 8, "u2": 9}

# a local value named after a graph node (%"n12", %"n12.acc"): see Codegen.shared_body
_LOCAL_NODE_NAME = re.compile(r'%"n\d+')


class ParallelNests:
    """Outlined nest bodies, thread-pool tasks and split-kernel parts; uses the
    Codegen's builder, module, buffers, expressions and statement renderer (``block``)."""

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
