"""Lowering a schedule's fused nests of element-wise ops and reductions into loops:
the outer loops shared by a nest's roots, its stages (inner loops over the last axis,
row-level values between them), accumulators in registers and where they start and
resume, row blocks (lagged, or streamed for a matrix larger than the cache), a
parallel nest's chunks and how their partial results combine, and the aligned inner
loops.  A mixin of ``lower_loops.LoopLowering`` (whose expressions and basic statements
it uses), apart because this is most of the lowering's logic and reads on its own.
"""
from __future__ import annotations

import numpy as np

from .loop_ir import (BLAS_CALL, CHUNK, END, START, ZERO, Acc, AccInit, AccValue, Accumulate, Apply, Bin, Comment,
                      Const, Eval, Expr, Load, Loop, MathCall, Not, Parallel, Rebase, Select, Size, Update, Var, numel,
                      size)
from .schedule import crosses_chunks, identity, is_reduction, row_stride


# Threads pay off once a nest's single-thread time dwarfs the pool's hand-off (a few
# microseconds): elements x estimated time per element (schedule.Nest.work: Op.cost of
# every node the body computes, its roots included) of at least PAR_MIN_WORK, about 60 us
# of work.  (M1 medium, 10,000 elements of a 61-cost body, runs 150 us serially and
# 63-78 us on 2 threads.  A layer's tanh(X @ W + b), 2048x64, ran 255 us on one thread
# while the roots' own ops were left out of the estimate, 107-129 us on 2 threads.)
PAR_MIN_WORK = 1 << 18


class LoopNests:
    """Fused loop nests and parallel chunks (a mixin of LoopLowering: uses its state,
    expressions (``val``, ``load``, ``memo``) and statements (``store``, ``update``,
    ``loop``, ``fill``))."""

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
                if columns:                         # (a tile's columns)
                    lo, hi = columns

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

        columns = None      # the inner loops' range when not the whole row (tiles)

        def tiles(lo, hi, idx):
            """Rows lo..hi in square tiles of nest.tile rows and columns (schedule._tile:
            the nest reads a matrix across): for each tile of rows, each tile of columns,
            its rows, each over the tile's columns.  Every element is computed once, as
            in whole rows."""
            t = Const(nest.tile)
            lo = lo if lo is not None else ZERO
            width = size(dom[1])

            def count(n):
                return Bin("sdiv", Bin("add", n, Const(nest.tile - 1)), t)

            def least(a, b):
                return Select(Bin("lt", a, b), a, b)

            def row_tile(t0):
                first = Bin("add", lo, Bin("mul", t0, t), "tile_row")

                def column_tile(t1):
                    nonlocal columns
                    c0 = Bin("mul", t1, t, "tile_col")
                    columns = (c0, least(Bin("add", c0, t), width))
                    body = [Eval(c0), self.loop(least(Bin("add", first, t), hi),
                                                lambda i: stages([idx + [i]]), "i0", start=first)]
                    columns = None
                    return body
                return [Eval(first), self.loop(count(width), column_tile, "tile1")]
            return [self.loop(count(Bin("sub", hi, lo)), row_tile, "tile0")]

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
                elif nest.tile and r == 2:
                    stmts += tiles(lo, hi, idx)
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


def _affine(x) -> bool:
    """An index expression of loop variables, sizes and constants only (evaluating it
    before the loop has no side effect: no bounds check, no load)."""
    if isinstance(x, (Var, Const, Size)):
        return True
    return isinstance(x, Bin) and _affine(x.a) and _affine(x.b)


def _walk_expr(x, seen=None):
    """Expression ``x`` and every expression in it, left to right, each node once: an
    expression is a DAG (a fused chain reuses its values: threefry's 20 rounds use each
    word twice), and walking it as a tree takes time exponential in its depth."""
    seen = set() if seen is None else seen
    if id(x) in seen:
        return
    seen.add(id(x))
    yield x
    for f in ("a", "b", "cond", "value", "ok"):
        sub = getattr(x, f, None)
        if isinstance(sub, Expr):
            yield from _walk_expr(sub, seen)
    for a in getattr(x, "args", ()):
        if isinstance(a, Expr):
            yield from _walk_expr(a, seen)


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
        seen: set = set()
        exprs = [x for v in _values(st.body) for x in _walk_expr(v, seen)]
        if st.plain or st.narrow or any(isinstance(x, MathCall) for x in exprs):
            continue     # (a loop that calls vector math is bound by its arithmetic; a narrow one is one masked step)
        found = [ld for ld in exprs if isinstance(ld, Load) and ld.index and ld.index[-1] is st.var
                 and ld.dtype.kind == "f" and all(map(_affine, ld.index))]
        if found:
            st.align = max(found, key=lambda ld: len(ld.shape))    # the first of the highest rank
