"""Lowering a schedule's fused nests into the loop IR (``loop_ir.py``), once for both
code generators.

Everything about *what* a kernel computes is decided here: the loop order and extents,
row blocks, which reductions accumulate in a register and where they start from (and
resume, in a split nest's remaining rows), how a view maps its index, where a gather
checks its bounds and an integer power its exponent, which products call a library
and which ops the math library, when a parallel nest runs on the pool and how its
chunks' partial results combine.
"""
from __future__ import annotations

import numpy as np

from ..ops import OPS
from ..shapes import common_ends
from .loop_ir import (BLAS_CALL, CHUNK, END, SKINNY_MAX_N, START, STATUS_NEGATIVE_POWER, ZERO, Acc, AccInit,
                      AccValue, Accumulate, Apply, Bin, Checked, Comment, Const, Eval, Expr, Fill, FromIndex, Gemm,
                      Guard, Kernel, Load, Loop, MathCall, Nest, Not, Parallel, Rebase, Select, SkinnyPack, SkinnyRows,
                      Size, SkinnyUnpad, Store, ToIndex, Update, Var, flat_offset, numel, size)
from .schedule import (PACKED_WIDTH, Schedule, swaps_last_two, row_stride, broadcast_index, crosses_chunks, describe, identity, is_reduction,
                       view_index)
from .loop_ir import LAPACK_RECT, LapackCall, SortRanks

# Threads pay off once a nest's single-thread time dwarfs the pool's hand-off (a few
# microseconds): elements x estimated time per element (schedule.Nest.work: Op.cost of
# every node the body computes, its roots included) of at least PAR_MIN_WORK, about 60 us
# of work.  (M1 medium, 10,000 elements of a 61-cost body, runs 150 us serially and
# 63-78 us on 2 threads.  A layer's tanh(X @ W + b), 2048x64, ran 255 us on one thread
# while the roots' own ops were left out of the estimate, 107-129 us on 2 threads.)
PAR_MIN_WORK = 1 << 18

# A row pipeline's block of rows of x: about this many bytes, so that the block the head
# product reads is still in the core's L2 cache when the tail reads it again (256 KB of
# the 1-2 MB L2 of current x86 cores: the block's rows of the narrow intermediates and
# the tail's accumulator share it), and at least PIPE_MIN_ROWS rows (the narrow kernels
# run 4 rows at a time).
PIPE_BLOCK_BYTES = 256 << 10
PIPE_MIN_ROWS, PIPE_MAX_ROWS = 16, 1024


def refuse_lapack(s: Schedule, blas: dict | None) -> None:
    """Raise UnsupportedError, naming the op and the user's line, when schedule ``s``
    has a linear algebra op and the backend has no LAPACK to call (generated C,
    ahead-of-time libraries, a numpy without its OpenBLAS, an extension built before
    runtime/lapack.c)."""
    if blas and blas.get("lapack"):
        return
    for nest in s.nests:
        if nest.kind != "lapack":
            continue
        from ..errors import UnsupportedError
        d = s.graph[nest.roots[0]]
        p = d["provenance"]
        at = f" (at {p.where})" if p is not None and p.where else ""
        raise UnsupportedError(
            f"linalg.{d['op']}{at} runs on backend=\"llvm\", which calls the LAPACK numpy ships, or on "
            f"backend=\"numpy\"; backend=\"c\" and ahead-of-time libraries (gradc build) do not support it"
            + ("" if blas is None else " (and this numpy's LAPACK was not found, or gradc's extension "
               "predates it: rebuild it with `python setup.py build_ext --inplace`)"))


class LoopLowering:
    """Lowers a schedule's nests into statements (see :func:`build`)."""

    def __init__(self, s: Schedule, blas: dict | None, split: bool, block_rows: bool):
        self.s, self.g = s, s.graph
        self.blas, self.split, self.block_rows = blas or None, split, block_rows
        self.buffered = set(self.g.inputs) | set(s.roots) | set(s.consts)
        self.row_local = set(s.row_local)
        self.block_first = None   # the first row of the block being built (row-local values)
        self.memo: dict = {}

    # -- expressions -------------------------------------------------------------------
    def shape(self, nid):
        return self.g[nid]["shape"]

    def ref(self, nid, idx):
        """(buffer, index, shape) of element ``idx`` of root ``nid``: a row-local value
        lives in this chunk's block of rows, at (row - first row of the block)."""
        if nid in self.row_local:
            nest = next(n for n in self.s.nests if nid in n.roots)
            return nid, (Bin("sub", idx[0], self.block_first),), (nest.row_block,)
        return nid, tuple(idx), self.shape(nid)

    def load(self, nid, idx):
        buf, index, shape = self.ref(nid, idx)
        return Load(buf, index, shape, self.g[nid]["dtype"])

    def val(self, nid, idx):
        """The value of node ``nid`` at index ``idx`` (inlined unless it has a buffer)."""
        key = (nid, tuple(id(i) for i in idx))
        hit = self.memo.get(key)
        if hit is None:
            hit = self.memo[key] = (self._val(nid, idx), idx)   # idx kept alive: ids stay unique
        return hit[0]

    def val_root(self, nid, idx):
        """A root's own expression (not a load of its buffer)."""
        self.buffered.discard(nid)
        try:
            return self._val(nid, idx)
        finally:
            self.buffered.add(nid)

    def argidx(self, arg, out_shape, idx):
        return broadcast_index(self.shape(arg), len(out_shape), idx, ZERO)

    def _val(self, nid, idx):
        d = self.g[nid]
        op = d["op"]
        if op == "const" and d["params"]["value"].ndim == 0:
            return Const(d["params"]["value"].item(), d["dtype"])
        if nid in self.buffered:
            return self.load(nid, idx)
        if OPS[op].kind == "elementwise":
            args = tuple(self.val(a, self.argidx(a, d["shape"], idx)) for a in d["args"])
            if OPS[op].math is not None:
                return MathCall(OPS[op].math, args, d["dtype"], OPS[op].libm, nid)
            if op == "pow" and d["dtype"].kind == "i" and not isinstance(args[1], Const):
                args = (args[0], self.nonnegative(args[1], d["dtype"], nid))
            return Apply(op, args, d["dtype"], tuple(self.g[a]["dtype"] for a in d["args"]), d["params"], nid)
        return getattr(self, "_view_" + op)(nid, d, idx)

    @staticmethod
    def nonnegative(exponent, dtype, nid):
        """A signed integer exponent, checked: numpy raises on an integer to a negative
        integer power, a kernel sets STATUS_NEGATIVE_POWER.  (A constant exponent was
        checked when traced; an unsigned one cannot be negative.)"""
        ok = Apply("ge", (exponent, Const(0, dtype)), np.dtype(np.bool_), (dtype, dtype))
        return Guard(exponent, ok, STATUS_NEGATIVE_POWER, nid)

    def _view_broadcast_to(self, nid, d, idx):
        return self.val(d["args"][0], view_index(self.g, nid, d["args"][0], idx, ZERO))

    _view_transpose = _view_broadcast_to   # a permutation of the index (view_index)

    def _view_reshape(self, nid, d, idx):
        a = d["args"][0]
        plain = view_index(self.g, nid, a, idx, ZERO)   # only size-1 axes added or dropped
        if plain is not None:
            return self.val(a, plain)
        ins, outs = self.shape(a), d["shape"]
        # general reshape: the axes both shapes begin and end with keep their indices
        # (``(n, 5, 32) -> (n, 160)``: only the last index is split); the middle is
        # linearized, then delinearized
        p, q = common_ends(ins, outs)
        mid_in = ins[p:len(ins) - q]
        flat = flat_offset(outs[p:len(outs) - q], idx[p:len(idx) - q])
        inner = []
        for k in range(len(mid_in) - 1, -1, -1):
            n = size(mid_in[k])
            inner.append(Bin("urem", flat, n) if k else flat)
            if k:
                flat = Bin("udiv", flat, n)
        return self.val(a, list(idx[:p]) + inner[::-1] + list(idx[len(idx) - q:]))

    def _view_slice(self, nid, d, idx):
        inner = []
        for i, (a, _, c) in zip(idx, d["params"]["index"]):
            j = i if c == 1 else Bin("mul", i, Const(c))
            inner.append(j if a == 0 else Bin("add", j, Const(a)))
        return self.val(d["args"][0], inner)

    def _view_unslice(self, nid, d, idx):
        """Zeros with the argument placed at a strided window: read it where inside."""
        src = d["args"][0]
        ok, inner = None, []
        for i, (a, _, c), n in zip(idx, d["params"]["index"], self.shape(src)):
            rel = i if a == 0 else Bin("sub", i, Const(a))
            conds = []
            if c != 1:
                conds.append(Bin("eq", Bin("srem", rel, Const(c)), ZERO))
                rel = Bin("sdiv", rel, Const(c))
            conds += [Bin("ge", rel, ZERO), Bin("lt", rel, size(n))]
            for cond in conds:
                ok = cond if ok is None else Bin("and", ok, cond)
            inner.append(rel)
        ok = ok if ok is not None else Const(True, np.dtype(np.bool_))
        v = self.val(src, [Select(ok, r, ZERO) for r in inner])
        return Select(ok, v, Const(0, d["dtype"]), nid)

    def _view_gather(self, nid, d, idx):
        x, *ix = d["args"]
        inner = [Checked(ToIndex(self.val(a, self.argidx(a, d["shape"], idx)), self.g[a]["dtype"]),
                         size(n), nid, axis)
                 for axis, (a, n) in enumerate(zip(ix, self.shape(x)))]
        return self.val(x, inner)

    def _view_iota(self, nid, d, idx):
        return FromIndex(idx[d["params"]["axis"]], d["dtype"])

    def _view_count(self, nid, d, idx):
        shape = self.shape(d["args"][0])
        dims = [shape[a] for a in d["params"]["axes"]]
        if all(isinstance(x, int) for x in dims):
            return Const(int(np.prod(dims, dtype=np.int64)), d["dtype"])
        return FromIndex(numel(dims), d["dtype"])

    def _view_concatenate(self, nid, d, idx):
        axis = d["params"]["axis"]
        result, start = None, 0
        for a in d["args"]:
            n = self.shape(a)[axis]
            rel = idx[axis] if start == 0 else Bin("sub", idx[axis], Const(start))
            inside = Bin("and", Bin("ge", rel, ZERO), Bin("lt", rel, Const(n)))
            v = self.val(a, [Select(inside, rel, ZERO) if k == axis else i for k, i in enumerate(idx)])
            result = v if result is None else Select(inside, v, result, nid)
            start += n
        return result

    # -- statements ----------------------------------------------------------------------
    def loop(self, stop, body_fn, name, start=None, plain=False, var=None):
        """A loop over [start, stop) whose body ``body_fn(index)`` returns (``var``: the
        index variable to use, shared by loops that are fused later)."""
        v = var if var is not None else Var(name)
        return Loop(v, start if start is not None else ZERO, stop, body_fn(v), plain)

    def fill(self, nid, value, rows=None):
        """Set a root's buffer (the identity of a reduction), or with ``rows`` = (start,
        end) only those rows of its first axis."""
        shape, dt = self.shape(nid), self.g[nid]["dtype"]
        if rows is None:
            start, stop = ZERO, numel(shape)
        else:
            row = numel(shape[1:])
            start, stop = Bin("mul", rows[0], row), Bin("mul", rows[1], row)
        return Fill(nid, Const(value, dt), start, stop, nid)

    def store(self, nid, idx, value):
        buf, index, shape = self.ref(nid, idx)
        return Store(buf, index, shape, value, nid)

    def update(self, nid, idx, op, value, reassoc=True):
        buf, index, shape = self.ref(nid, idx)
        return Update(buf, index, shape, op, value, self.g[nid]["dtype"], nid, reassoc)

    def row_blocks(self, lo, hi, emit, block, blocks=True, rest=True):
        """Rows lo..hi in blocks of ``block`` rows (``emit`` gets the block's row
        indices), then the remaining rows one at a time in plain loops (see
        llvm_codegen's Codegen.loop: O3's interleaved and unrolled versions of them were
        a third of the neuron loss's compile time and bought nothing measurable)."""
        lo = lo if lo is not None else ZERO
        nblocks = Bin("sdiv", Bin("sub", hi, lo), Const(block))
        out = []
        if blocks:
            def first(t):
                return Bin("add", lo, Bin("mul", t, Const(block)))

            def emit_block(t):
                rows = [Bin("add", first(t), Const(k), f"row{k}") for k in range(block)]
                return [Eval(r) for r in rows] + emit(rows)
            out.append(self.loop(nblocks, emit_block, "rows"))
        if rest:
            out.append(self.loop(hi, lambda i: emit([i]), "row",
                                 start=Bin("add", lo, Bin("mul", nblocks, Const(block))), plain=True))
        return out

    def loop_nest(self, nest, outer=None, part="all") -> list:
        """Loops over the nest's domain.  Outer loops are shared; at the innermost level
        the stages run in order for each outer index: even stages are inner loops over
        the last axis, odd stages compute row-level roots between them.

        ``outer``: (start, end) of the outer loop a parallel chunk runs.  ``part`` splits
        a row-blocked nest's rows in two (compiled on different cores): "blocks" runs
        the whole blocks of rows; "rest" the rows after them (all of the chunk's rows of
        a matrix larger than the cache), one at a time, continuing the reductions
        "blocks" left in memory (no fill; the accumulators outside the
        row loop start from their stored values), which sums every element in the same
        order as "all".  "block" runs rows ``outer`` of a row pipeline's block: a
        reduction across rows continues from its stored value (the pipeline fills it
        once per chunk), one that keeps the rows fills the block's rows."""
        g, s = self.g, self.s
        dom, r, info = nest.domain, len(nest.domain), nest.info
        out = []
        # per-row values only this nest reads live for one block of rows (schedule's
        # row_local): a few bytes of workspace per chunk, which stay in cache
        for nid in nest.roots:
            if nid in self.row_local:
                stride = row_stride(nest.row_block, g[nid]["dtype"])
                out.append(Rebase(nid, ("rows", nid), Bin("mul", CHUNK, Const(stride)), g[nid]["dtype"]))
        for nid in nest.roots:
            d = g[nid]
            if part == "block" and crosses_chunks(g, nid, info[nid]):
                continue
            if is_reduction(g, nid) and info[nid]["acc"] is None and part != "rest":
                # A chunk of a parallel nest owns only its rows of a reduction that keeps
                # the outer axis (other chunks fill and fill in theirs concurrently); a
                # reduction across chunks writes this chunk's own partial buffer.
                own_rows = outer if outer is not None and nid not in s.partials else None
                out.append(self.fill(nid, identity(d["op"], d["dtype"]), rows=own_rows))
        accs, rows_now = {}, []
        n_stages = max((info[n]["stage"] for n in nest.roots), default=0) + 1

        def is_reduce(nid):
            return is_reduction(g, nid)

        stage_local, root_rank = nest.stage_local, nest.root_rank

        def out_index(nid, idx):
            return nest.reduced_index(g[nid], idx, ZERO)

        def acc_slot(nid, idx):   # where an accumulator for outer index idx is stored
            return out_index(nid, idx + [ZERO] * (root_rank(nid) - len(idx)))

        def acc_dtype(nid):
            """A float32 sum over the rows (the outer loop: a batch's thousands of terms)
            accumulates in float64 and is rounded once, at the end: in float32 its error
            grew with the batch (a Student-t scale's gradient over 16,389 rows: 6.7e-5
            relative).  Sums along a row (a few hundred terms) stay float32."""
            d = g[nid]
            wide = d["op"] == "sum" and d["dtype"] == np.float32 and info[nid]["acc"] == 0
            return np.dtype(np.float64) if wide else d["dtype"]

        def cast(v, src, dst):
            return v if src == dst else Apply("cast", (v,), dst, (src,), {"dtype": dst})

        def init_acc(key, resume_at=None):
            nid = key[0] if isinstance(key, tuple) else key
            d, dt = g[nid], acc_dtype(nid)
            block = isinstance(key, tuple) and len(rows_now) > 1
            acc = accs[key] = Acc(f"acc{nid}" + (f".{key[1]}" if block else ""), nid, dt)
            if resume_at is None:
                return AccInit(acc, Const(identity(d["op"], dt), dt))
            return AccInit(acc, cast(self.load(nid, acc_slot(nid, resume_at)), d["dtype"], dt))   # part "rest"

        def store_acc(key, idx):
            nid = key[0] if isinstance(key, tuple) else key
            return self.store(nid, acc_slot(nid, idx), cast(AccValue(accs[key]), accs[key].dtype, g[nid]["dtype"]))

        def body(roots, idx, b=0):
            self.memo = {}
            stmts = []
            for nid in roots:
                op = g[nid]["op"]
                if not is_reduce(nid):
                    stmts.append(self.store(nid, idx, self.val_root(nid, idx)))
                    continue
                v = self.val(g[nid]["args"][0], idx)
                if info[nid]["acc"] is not None:
                    acc = accs[(nid, b)] if (nid, b) in accs else accs[nid]
                    stmts.append(Accumulate(acc, op, cast(v, g[nid]["dtype"], acc.dtype)))
                else:
                    stmts.append(self.update(nid, out_index(nid, idx), op, v))
            return stmts

        def stage_parts(rows, ivar=None):
            """Each stage's statements for a block of rows (outer indices), in order: an
            inner-loop stage as (before, its loop, after), a row-level stage as a list.
            An inner loop serves all rows of the block, so row dot products share loads
            of the other operand and an accumulation over rows loads and stores its
            output once per block.  ``ivar``: the inner loops' index variable."""
            rows_now[:] = rows
            if r == 2:
                self.block_first = rows[0][0]
            parts = []
            for st in range(n_stages):
                roots = [n for n in nest.roots if info[n]["stage"] == st]
                if not roots:
                    parts.append([] if st % 2 else ([], None, []))
                    continue
                if st % 2:
                    stmts = [Comment(f"stage {st}: row level")]
                    for b, idx in enumerate(rows):
                        stmts += body(roots, idx, b)
                    parts.append(stmts)
                    continue
                local = [n for n in roots if is_reduce(n) and stage_local(n)]
                resume = part == "block" and r == 1    # (a sum over the rows of a 1-d nest)
                before = [init_acc((n, b), idx if resume else None) for b, idx in enumerate(rows) for n in local]
                after = [store_acc((n, b), idx) for b, idx in enumerate(rows) for n in local]
                if not r:
                    parts.append((before + body(roots, rows[0]), None, after))
                    continue
                if n_stages > 1:
                    before.append(Comment(f"stage {st}"))
                lo, hi = (outer if outer and r == 1 else (None, size(dom[r - 1])))

                def inner(i, roots=roots):
                    return [x for b, idx in enumerate(rows) for x in body(roots, idx + [i], b)]
                parts.append((before, self.loop(hi, inner, f"i{r - 1}", start=lo, var=ivar), after))
            return parts

        def stages(rows):
            stmts = []
            for p in stage_parts(rows):
                stmts += p if isinstance(p, list) else p[0] + ([p[1]] if p[1] is not None else []) + p[2]
            return stmts

        def lagged_blocks(lo, hi, block, idx):
            """Whole blocks of rows with the second inner loop one block behind: block
            t's dot products (stage 0) and block t-1's accumulation over its rows
            (stage 2, whose rows are still in L1) run in one loop over the columns, so
            the loads of the rows stage 2 reads again run beside the stream of new rows
            from memory instead of after it.  Every sum adds the same terms in the same
            order as blocks run one after another."""
            lo = lo if lo is not None else ZERO
            nblocks = Bin("sdiv", Bin("sub", hi, lo), Const(block))

            def rows_of(t, tag):
                first = Bin("add", lo, Bin("mul", t, Const(block)))
                return [Bin("add", first, Const(k), f"{tag}{k}") for k in range(block)]

            def flat(p):
                return p if isinstance(p, list) else p[0] + [p[1]] + p[2]

            def head(t):        # block 0: its dot products and row-level values
                rows = rows_of(t, "row")
                p = stage_parts([idx + [i] for i in rows])
                return [Eval(x) for x in rows] + flat(p[0]) + flat(p[1])

            def steady(t):      # block t's stages 0 and 1, block t-1's stage 2
                rows, prev = rows_of(t, "row"), rows_of(Bin("sub", t, Const(1)), "prev")
                ivar = Var(f"i{r - 1}")
                late = stage_parts([idx + [i] for i in prev], ivar)[2][1]
                p = stage_parts([idx + [i] for i in rows], ivar)
                (before, loop0, after) = p[0]
                fused = Loop(ivar, loop0.start, loop0.stop, loop0.body + late.body)
                before = [x for x in before if not isinstance(x, Comment)]
                return [Eval(x) for x in rows + prev] + before + [Comment("stage 0, and stage 2 of the block before")] \
                    + [fused] + after + flat(p[1])

            def tail(t):        # the last block's stage 2
                prev = rows_of(t, "prev")
                p = stage_parts([idx + [i] for i in prev])
                return [Eval(x) for x in prev] + flat(p[2])
            one = Const(1)
            last = Select(Bin("lt", nblocks, one), nblocks, Bin("sub", nblocks, one))   # max(nblocks - 1, 0)
            # (the first and the last block run once per chunk: plain loops, less code)
            return [self.loop(Select(Bin("lt", nblocks, one), nblocks, one), head, "rows", plain=True),
                    self.loop(nblocks, steady, "rows", start=one),
                    self.loop(nblocks, tail, "rows", start=last, plain=True)]

        def can_lag(k):
            """Stage 2 may run one block behind: three stages (dot products, row-level
            values, an accumulation over rows that keeps no accumulator of its own), in
            whole blocks of a 2-d nest."""
            if not (r == 2 and k == 0 and n_stages == 3):
                return False
            by_stage = [[n for n in nest.roots if info[n]["stage"] == st] for st in range(3)]
            return all(by_stage) and not any(is_reduce(n) and stage_local(n) for n in by_stage[2])

        # Rows in blocks: see schedule.Nest.row_block (the schedule decides).
        blocked = self.block_rows and r == 2 and nest.row_block > 1

        def level(k, idx):
            outers = [n for n in nest.roots if is_reduce(n) and info[n]["acc"] == k and not stage_local(n)]
            # (outside the row loop when k <= r - 2)
            resume = (part == "rest" and blocked and k <= r - 2) or (part == "block" and k == 0)
            stmts = [init_acc(n, idx if resume else None) for n in outers]
            if k >= r - 1:
                stmts += stages([idx])
            else:
                lo, hi = outer if (outer and k == 0) else (None, size(dom[k]))
                if blocked and k == r - 2 and part != "block":
                    # A matrix larger than the last-level cache streams from memory:
                    # there one row at a time reads it as one sequential stream, at
                    # the bandwidth of a plain sum, where a block's rows are as many
                    # streams and ran 1.5-2.5x slower (M2 on 65,536 x 512, one thread,
                    # Zen 4: 9.7 against 15 ms in float64, 5.0 against 12.6 in
                    # float32); a matrix in cache is faster in blocks (M2 on 4,096 x
                    # 256: 0.17 against 0.26-0.32 ms).  blocked_end gives one form
                    # all of the chunk's rows and the other an empty range.  One row
                    # loop runs the rows after the last block and the streamed rows
                    # (the first when the blocks run, the second when they do not):
                    # one copy of the row's stages for LLVM instead of two (M2 medium,
                    # O3 and code generation of its modules: 98-103 against 117-119 ms
                    # as two loops), in the order of the rows as before.
                    item = Const(np.dtype(g[nest.roots[0]]["dtype"]).itemsize)
                    big = Bin("gt", Bin("mul", numel(dom), item), Const(s.stream_bytes))
                    if s.stream_row_bytes is not None:   # (and its rows are short: Schedule.stream_row_bytes)
                        big = Bin("and", big, Bin("lt", Bin("mul", size(dom[r - 1]), item), Const(s.stream_row_bytes)))
                    mid = Bin("add", Select(big, lo if lo is not None else ZERO, hi), ZERO, "blocked_end")
                    rows_stmts = [Eval(mid)]
                    if part != "rest" and can_lag(k):
                        rows_stmts += lagged_blocks(lo, mid, nest.row_block, idx)
                    elif part != "rest":
                        rows_stmts += self.row_blocks(lo, mid, lambda rows: stages([idx + [i] for i in rows]),
                                                      nest.row_block, rest=False)
                    if part != "blocks":
                        first = lo if lo is not None else ZERO
                        after = Bin("add", first, Bin("mul", Bin("sdiv", Bin("sub", mid, first), Const(nest.row_block)),
                                                      Const(nest.row_block)), "after_blocks")
                        rows_stmts += [Eval(after), self.loop(hi, lambda i: stages([idx + [i]]), "row", start=after)]
                    if s.align_rows:                 # (the rows of a matrix: see align_inner_loops)
                        align_inner_loops(rows_stmts)
                    stmts += rows_stmts
                elif blocked and k == r - 2:        # (a row pipeline's block of rows)
                    stmts += self.row_blocks(lo, hi, lambda rows: stages([idx + [i] for i in rows]),
                                             nest.row_block, blocks=part != "rest", rest=part != "blocks")
                else:
                    stmts.append(self.loop(hi, lambda i: level(k + 1, idx + [i]), f"i{k}", start=lo))
            stmts += [store_acc(n, idx) for n in outers]
            return stmts

        return out + level(0, [])

    def parallel(self, nest, k) -> Parallel:
        s, g = self.s, self.g
        crossing = [n for n in nest.roots if n in s.partials]
        split_rest = self.split and self.block_rows and len(nest.domain) == 2 and nest.row_block > 1
        parts = [(f"nest{k}", "blocks"), (f"nest{k}.rest", "rest")] if split_rest else [(f"nest{k}", "all")]
        bodies = []
        for name, part in parts:
            # this chunk's partial result of each reduction across chunks
            stmts = [Rebase(r, ("partial", r), Bin("mul", CHUNK, numel(self.shape(r))), g[r]["dtype"])
                     for r in crossing]
            bodies.append((name, stmts + self.loop_nest(nest, outer=(START, END), part=part)))
        n0 = size(nest.domain[0])
        min_work = max(1, PAR_MIN_WORK // max(nest.work, 1))
        cond = Bin("and", Bin("and", Bin("ge", numel(nest.domain), Const(min_work)), Bin("ge", n0, Const(s.threads))),
                   Not(BLAS_CALL))
        combine = [(r, g[r]["op"], g[r]["dtype"], numel(self.shape(r))) for r in crossing]
        return Parallel(k, n0, cond, bodies, combine)

    def matmul(self, nest) -> list:
        """A matrix-matrix product (schedule.decompose turned every product with a
        vector operand into element-wise products and sums, fused with their nests); x @
        W with x of rank 3 or more, x's leading axes its rows (schedule.is_flat_product);
        or contract(a, b), a's rows transposed times b's."""
        (nid,) = nest.roots
        d = self.g[nid]
        a, bb = d["args"]
        sa, sb = self.shape(a), self.shape(bb)
        contract = d["op"] == "contract"
        stack = not contract and len(sb) > 2      # (schedule.is_stack_product)
        assert contract or len(sb) == 2 or stack, "internal: decompose() leaves only matrix products"
        if contract:        # (rows, m)^T @ (rows, n): m x n, summed over the rows
            k, m, n = numel(sa[:-1]), size(sa[-1]), size(sb[-1])
        elif stack:         # (..., m, k) @ (..., k, n), item by item
            k, m, n = size(sa[-1]), size(sa[-2]), size(sb[-1])
        else:               # (rows, k) @ (k, n)
            k, m, n = size(sa[-1]), numel(sa[:-1]), size(sb[-1])
        self.memo = {}
        lib = self.library_product(a, bb, contract, stack)
        pool = self.s.pool_threads if self.blas and self.blas.get("pool") else 0
        if stack and (lib is None or not self.blas.get("batched")):
            return self.matmul_loops(nid, a, bb)
        if stack:
            ops, _narrow = lib
            items = [numel(self.shape(x)[-2:]) for x, _t in ops] + [numel(sa[-2:-1] + sb[-1:])]
            return [Gemm(nid, ops[0], ops[1], m, n, k, d["dtype"], False, Const(1, np.dtype(np.int32)), pool,
                         batch=numel(sa[:-2]), strides=tuple(items))]
        if lib is not None:
            # Every product goes to a library when there is one: OpenBLAS's small-matrix
            # path costs about a microsecond, and not emitting a vectorized loop fallback
            # keeps compile time down.  Products with at most SKINNY_MAX_N columns (a
            # softmax's classes, a layer's few outputs) first try gradc's narrow kernels,
            # several times faster there than OpenBLAS (runtime/skinny.c).
            ops, narrow = lib
            # the narrow kernel runs on gradc's threads unless this call uses BLAS (see calls_blas)
            i32 = np.dtype(np.int32)
            threads = Select(BLAS_CALL, Const(1, i32), Const(self.s.pool_threads, i32))
            return [Gemm(nid, ops[0], ops[1], m, n, k, d["dtype"], narrow, threads, pool)]
        return self.matmul_loops(nid, a, bb, contract)

    def library_product(self, a, bb, contract=False, stack=False):
        """How a matrix product ``a @ bb`` (``contract``: a's rows transposed times bb's)
        runs: None for generated loops (no BLAS, or an operand BLAS cannot read in place),
        else (the operands as BLAS reads them, whether gradc's narrow kernel is tried
        first).  An operand of rank 3 or more is read as stored: its leading axes are
        its rows; ``stack``: a stack of products, each operand a stack as stored or with
        its matrices transposed (its last two axes swapped)."""
        if not self.blas or self.g[a]["dtype"].kind != "f":      # integer products: generated loops
            return None
        ops = []
        for x in (a, bb):   # (base node, transposed?) when BLAS can read it in place
            d = self.g[x]
            if x in self.buffered:
                ops.append((x, contract and x == a))
            elif d["op"] == "transpose" and d["args"][0] in self.buffered and not contract and (
                    len(d["shape"]) == 2 or (stack and swaps_last_two(self.g, x))):
                ops.append((d["args"][0], True))
            else:
                return None
        return ops, bool(self.blas.get("skinny")) and not ops[1][1]

    def calls_blas(self) -> Expr:
        """Does this call of the kernel wake OpenBLAS's own thread pool?  Then gradc's threads
        sit this call out: OpenBLAS's worker spins for ~120 ms after each of its calls,
        and gradc's two threads on two cores beside it ran slower than one (M4 medium
        12.6-13.0 ms with gradc on 2 threads, 11.7-12.4 ms on 1).  With the pool-split
        products (``blas["pool"]``, runtime/poolgemm.c) OpenBLAS never runs threads of its
        own."""
        flag = Const(False, np.dtype(np.bool_))
        if any(nest.kind == "lapack" for nest in self.s.nests):   # LAPACK runs on OpenBLAS's threads
            return Const(True, np.dtype(np.bool_))
        if self.blas and self.blas.get("pool"):     # (ahead-of-time libraries have no BLAS)
            return flag
        for nest in self.s.nests:
            if nest.kind != "matmul":
                continue
            d = self.g[nest.roots[0]]
            a, bb = d["args"]
            contract = d["op"] == "contract"
            lib = self.library_product(a, bb, contract, not contract and len(self.shape(bb)) > 2)
            if lib is None:
                this = Const(False, np.dtype(np.bool_))
            elif not lib[1]:
                this = Const(True, np.dtype(np.bool_))
            else:
                this = Bin("gt", size(self.shape(bb)[1]), Const(SKINNY_MAX_N))
            flag = Bin("or", flag, this)
        return flag

    def matmul_loops(self, nid, a, bb, contract=False):
        """Generated loops for a product: over a's rows (its leading axes), then the
        contracted axis (a contraction's: a's last), then b's columns (the inner loop
        streams rows of b and c, and vectorizes)."""
        dtype = self.g[nid]["dtype"]
        sa, sb = self.shape(a), self.shape(bb)
        lead = sa[:-1]
        batch = len(sb) - 2 if len(sb) > 2 and not contract else 0     # a stack's batch axes

        def row(idx):
            def middle(x):
                self.memo = {}
                va = self.val(a, idx + [x])

                def over_j(j):
                    self.memo = {}
                    vb = self.val(bb, (idx if contract else idx[:batch] + [x]) + [j])
                    prod = Apply("mul", (va, vb), dtype, (dtype, dtype))
                    return [self.update(nid, ([x] if contract else idx) + [j], "sum", prod)]
                return [Eval(va), self.loop(size(sb[-1]), over_j, "j")]
            return [self.loop(size(sa[-1]), middle, "i" if contract else "k")]

        def rows(level, idx):
            if level == len(lead):
                return row(idx)
            name = ("r" if contract else "i") + (str(level) if len(lead) > 1 else "")
            return [self.loop(size(lead[level]), lambda i: rows(level + 1, idx + [i]), name)]
        return [self.fill(nid, 0.0)] + rows(0, [])

    def lapack(self, nest) -> list:
        """A linear algebra op: one call of numpy's LAPACK for the whole stack of matrices
        (runtime/lapack.c), when the backend links it (``blas["lapack"]``: the LLVM JIT
        with numpy's OpenBLAS); generated C and ahead-of-time libraries refuse it."""
        (nid,) = nest.roots
        d = self.g[nid]
        refuse_lapack(self.s, self.blas)
        sa = self.shape(d["args"][0])
        if d["op"] in LAPACK_RECT:
            k = size(sa[-2])
        else:
            k = size(self.shape(d["args"][1])[-1]) if len(d["args"]) > 1 else ZERO
        return [LapackCall(d["op"], nid, tuple(d["args"]), numel(sa[:-2]), size(sa[-1]), k, d["dtype"],
                           d["params"].get("lower", True), d["params"].get("full", False))]

    def sort_ranks(self, nest) -> list:
        """sort_rank by runtime/gradc.h's merge sort (floats, integers, bool), one call for every row
        (the schedule makes it a nest of its own only where the renderer has it), with
        the workspace's scratch row (schedule.workspace_layout)."""
        (nid,) = nest.roots
        (a,) = self.g[nid]["args"]
        sa = self.shape(a)
        return [SortRanks(nid, a, numel(sa[:-1]), size(sa[-1]), self.g[a]["dtype"], ("sort", nid))]

    def scatter(self, nest):
        (nid,) = nest.roots
        d = self.g[nid]
        upd, *ix = d["args"]
        dom, shape = nest.domain, d["shape"]

        def level(k, idx):
            if k < len(dom):
                return [self.loop(size(dom[k]), lambda i: level(k + 1, idx + [i]), f"s{k}")]
            self.memo = {}
            inner = [Checked(ToIndex(self.val(a, self.argidx(a, dom, idx)), self.g[a]["dtype"]), size(n), nid, axis)
                     for axis, (a, n) in enumerate(zip(ix, shape))]
            return [self.update(nid, inner, "sum", self.val(upd, idx), reassoc=False)]
        return [self.fill(nid, 0.0)] + level(0, [])

    def pipelined(self) -> bool:
        """Row pipelines run as such with gradc's narrow kernels for their blocks and
        BLAS on gradc's pool for products too wide for them (else their nests run one
        after another, as the schedule ordered them)."""
        return bool(self.blas and self.blas.get("skinny_rows") and self.blas.get("pool"))

    def pipeline(self, p, k) -> list:
        """Row pipeline ``p`` (schedule.RowPipeline): W packed once; then, in chunks of
        rows on the pool (or all rows serially), blocks of rows of x: the head's rows
        of x @ W, the row-local nests' rows, and the tail's x[rows]^T @ G[rows] added
        into this chunk's partial result (combined in chunk order after, as a split
        reduction's).  When W or G has more columns than the narrow kernels take (a
        size symbol, known at run time), the blocks run only the row-local nests, and
        the two products run whole before and after."""
        s, g = self.s, self.g
        x, z, gw = p.x, p.head, p.tail
        w, G = g[z]["args"][1], g[gw]["args"][1]
        dt = g[x]["dtype"]
        n_rows, cols = (size(v) for v in self.shape(x))
        packed, acc = ("packed", z), ("padded", gw)
        middle = s.nests[p.first + 1:p.last]
        crossing = [n for nest in middle for n in nest.roots if crosses_chunks(g, n, nest.info[n])]
        row_bytes = Bin("mul", cols, Const(dt.itemsize))
        raw = Bin("sdiv", Const(PIPE_BLOCK_BYTES), Select(Bin("lt", row_bytes, Const(1)), Const(1), row_bytes))
        block = Bin("add", Select(Bin("lt", raw, Const(PIPE_MIN_ROWS)), Const(PIPE_MIN_ROWS),
                                  Select(Bin("gt", raw, Const(PIPE_MAX_ROWS)), Const(PIPE_MAX_ROWS), raw)),
                    ZERO, "block_size")   # (named: computed once, shown once)
        parallel = s.threads > 1
        width = g[z]["shape"][1]   # the narrow product's columns: the row-local nests' rows
        # Products wider than the narrow kernels (a width known only at run time): the
        # blocks skip them, and they run whole before and after, on the pool; then the
        # tail's partial results are neither cleared nor combined (attention's 2048x32
        # dV: 4 MB of partials cleared and added up on the calling thread for nothing,
        # 170-250 us)
        narrow = Bin("and", Bin("lt", size(self.shape(w)[1]), Const(SKINNY_MAX_N + 1)),
                     Bin("lt", size(self.shape(G)[1]), Const(SKINNY_MAX_N + 1)))
        wide = Not(narrow)
        tail_numel = Select(narrow, numel(self.shape(gw)), ZERO)

        def chunk(lo, hi):
            stmts = []
            if parallel:   # this chunk's partial results
                stmts += [Rebase(r, ("partial", r), Bin("mul", CHUNK, numel(self.shape(r))), g[r]["dtype"])
                          for r in crossing + [gw]]
            stmts.append(Rebase(acc, acc, Bin("mul", CHUNK, Bin("mul", cols, Const(PACKED_WIDTH))), dt))
            stmts += [self.fill(r, identity(g[r]["op"], g[r]["dtype"])) for r in crossing]
            stmts += [Fill(gw, Const(0.0, g[gw]["dtype"]), ZERO, tail_numel, gw),
                      Fill(acc, Const(0.0, dt), ZERO, Bin("mul", cols, Const(PACKED_WIDTH)), gw), Eval(block)]
            nblocks = Bin("sdiv", Bin("add", Bin("sub", hi, lo), Bin("sub", block, Const(1))), block)

            def one_block(t):
                b0 = Bin("add", lo, Bin("mul", t, block), "block_start")
                end = Bin("add", b0, block)
                b1 = Bin("add", Select(Bin("lt", end, hi), end, hi), ZERO, "block_end")
                rows = Bin("sub", b1, b0, "block_rows")
                out = [Eval(b0), Eval(b1), Eval(rows),
                       SkinnyRows(z, x, w, packed, False, b0, rows, size(self.shape(z)[1]), cols, dt)]
                for nest in middle:
                    out += _mark_narrow(self.loop_nest(nest, outer=(b0, b1), part="block"), width)
                out.append(SkinnyRows(gw, x, G, acc, True, b0, rows, size(self.shape(gw)[1]), cols, dt))
                return out
            return stmts + [self.loop(nblocks, one_block, "block"),
                            SkinnyUnpad(gw, acc, cols, size(self.shape(gw)[1]), dt)]

        i32 = np.dtype(np.int32)
        threads = Const(s.pool_threads, i32)
        head = Gemm(z, (x, False), (w, False), n_rows, size(self.shape(w)[1]), cols, dt, False, threads,
                    s.pool_threads, wide)
        tail = Gemm(gw, (x, True), (G, False), cols, size(self.shape(G)[1]), n_rows, dt, False, threads,
                    s.pool_threads, wide)
        out = [Comment(f"row pipeline: blocks of rows of {g.label(x)} read once by nests {p.first}-{p.last}"),
               SkinnyPack(packed, w, size(self.shape(w)[1]), cols, dt), head]
        if not parallel:
            return out + chunk(ZERO, n_rows) + [tail]
        work = numel(self.shape(x))
        cond = Bin("and", Bin("and", Bin("ge", work, Const(PAR_MIN_WORK // 16)), Bin("ge", n_rows, Const(s.threads))),
                   Not(BLAS_CALL))
        combine = [(r, g[r]["op"], g[r]["dtype"], numel(self.shape(r))) for r in crossing]
        combine.append((gw, "sum", g[gw]["dtype"], tail_numel))
        return out + [Parallel(k, n_rows, cond, [(f"pipe{k}", chunk(START, END))], combine), tail]

    def kernel(self, name) -> Kernel:
        s = self.s
        titles = describe(s).splitlines()
        blas_call = self.calls_blas()
        nests = []
        pipes = {p.first: p for p in s.pipelines} if self.pipelined() else {}
        inside = {j for p in pipes.values() for j in range(p.first + 1, p.last + 1)}
        for k, nest in enumerate(s.nests):
            if k in inside:
                continue
            if k in pipes:
                p = pipes[k]
                nests.append(Nest(k, " | ".join(titles[p.first:p.last + 1]), self.pipeline(p, k)))
                continue
            if nest.kind == "loop" and nest.parallel:
                body = [self.parallel(nest, k)]
            else:
                body = {"loop": self.loop_nest, "matmul": self.matmul, "scatter": self.scatter,
                        "lapack": self.lapack, "sort": self.sort_ranks}[nest.kind](nest)
            nests.append(Nest(k, titles[k], body))
        return Kernel(name, s, nests, blas_call, s.threads, s.pool_threads)


def _affine(x) -> bool:
    """An index expression of loop variables, sizes and constants only (evaluating it
    before the loop has no side effect: no bounds check, no load)."""
    if isinstance(x, (Var, Const, Size)):
        return True
    return isinstance(x, Bin) and _affine(x.a) and _affine(x.b)


def _walk_expr(x):
    """Expression ``x`` and every expression in it, left to right."""
    yield x
    for f in ("a", "b", "cond", "value", "ok"):
        sub = getattr(x, f, None)
        if isinstance(sub, Expr):
            yield from _walk_expr(sub)
    for a in getattr(x, "args", ()):
        if isinstance(a, Expr):
            yield from _walk_expr(a)


def _values(stmts):
    """The expressions statements ``stmts`` compute (not their indices)."""
    return [v for st in stmts for v in (getattr(st, "value", None),) if isinstance(v, Expr)]


def align_inner_loops(stmts) -> None:
    """Give each innermost loop over a contiguous axis that reduces along it or adds
    into an accumulator (a row's dot product, a block's contribution to a gradient) the
    load its renderer aligns (``Loop.align``): numpy's large arrays start 16 bytes past
    a 64-byte line, so without it every other 32-byte load and every 64-byte load of a
    row straddles two cache lines and costs two.

    The peel is a second copy of the loop's body, and LLVM's time grows with every copy
    (vectorized or scalar alike), so only loops that run for most of a matrix's rows
    get it: the steady blocks of a row-blocked nest and its streamed rows.  Loops under
    a ``plain`` one (a chunk's first and last block of lagged blocks, the rows after
    the last block) run a few rows per chunk and are left unpeeled: aligning them
    bought nothing measurable (M2 on 4,096 x 256, one thread) and cost 4 of the 7
    peels of its kernel.  Other nests get none: peeling every nest's inner loops made
    tests/test_ops.py 2.4x slower to compile with an empty cache (221 against 92 s).
    The anchor is a float load whose last index is the loop variable, from a matrix
    when there is one (its rows stream from memory; a vector operand stays in L1);
    loads of arrays that start alike are aligned with it."""
    for st in stmts:
        if isinstance(st, Parallel):
            for _name, body in st.bodies:
                align_inner_loops(body)
            continue
        if not isinstance(st, Loop):
            continue
        inner = [x for x in st.body if isinstance(x, (Loop, Parallel))]
        if inner:
            if not st.plain:     # (a plain loop's rows are a chunk's few: see above)
                align_inner_loops(st.body)
            continue
        if not any(isinstance(x, (Accumulate, Update)) for x in st.body):
            continue     # (only reductions along the loop and accumulations over rows)
        exprs = [x for v in _values(st.body) for x in _walk_expr(v)]
        if st.plain or st.narrow or any(isinstance(x, MathCall) for x in exprs):
            continue     # (a loop that calls vector math is bound by its arithmetic; a narrow one is one masked step)
        found = [ld for ld in exprs if isinstance(ld, Load) and ld.index and ld.index[-1] is st.var
                 and ld.dtype.kind == "f" and all(map(_affine, ld.index))]
        if found:
            st.align = max(found, key=lambda ld: len(ld.shape))    # the first of the highest rank


def _mark_narrow(stmts: list, width) -> list:
    """Loops over ``width`` (a row pipeline's narrow product's columns, at most
    SKINNY_MAX_N when its blocks run) in ``stmts`` marked ``narrow``: 10 classes are
    one masked vector step (two in float64 on AVX-512) instead of a vector step and a
    scalar remainder of exp or stores."""
    for st in stmts:
        if isinstance(st, Loop):
            stop = st.stop
            if (isinstance(stop, Size) and stop.symbol == width) or (isinstance(stop, Const) and stop.value == width):
                st.narrow = True
            _mark_narrow(st.body, width)
    return stmts


def build(s: Schedule, name: str, *, blas: dict | None = None, split: bool = False,
          block_rows: bool = True) -> Kernel:
    """The loop IR of schedule ``s`` for a kernel called ``name``.  ``blas`` (see
    backends/blas.py): matrix products call the library (else generated loops);
    ``split``: a row-blocked parallel nest's remaining rows get a function of their own
    (compiled in a module of its own); ``block_rows``: 2-d nests run their rows in the
    blocks the schedule chose (else one row at a time)."""
    return LoopLowering(s, blas, split, block_rows).kernel(name)
