"""Lowering the nests that are one op each, most of them library calls: matrix
products (BLAS, gradc's narrow kernels, or generated loops; whether a call wakes
OpenBLAS's own threads), LAPACK, sort ranks and scatter-adds; and row pipelines, whose
blocks of rows run the head and tail products through the narrow kernels with the
row-local nests between them.  A mixin of ``lower_loops.LoopLowering``; apart because
each is a call's operands and conditions rather than fused loops.
"""
from __future__ import annotations

import numpy as np

from .loop_ir import (BLAS_CALL, CHUNK, END, LAPACK_RECT, SKINNY_MAX_N, START, ZERO, Apply, Bin, Checked, Comment,
                      Const, Eval, Expr, Fill, Gemm, LapackCall, Loop, Not, Parallel, Rebase, Select, Size, SkinnyPack,
                      SkinnyRows, SkinnyUnpad, SortRanks, ToIndex, numel, size)
from .lower_nests import PAR_MIN_WORK
from .schedule import PACKED_WIDTH, Schedule, crosses_chunks, identity, swaps_last_two

# A row pipeline's block of rows of x: about this many bytes, so that the block the head
# product reads is still in the core's L2 cache when the tail reads it again (256 KB of
# the 1-2 MB L2 of current x86 cores: the block's rows of the narrow intermediates and
# the tail's accumulator share it), and at least PIPE_MIN_ROWS rows (the narrow kernels
# run 4 rows at a time).
PIPE_BLOCK_BYTES = 256 << 10
PIPE_MIN_ROWS, PIPE_MAX_ROWS = 16, 1024


# the user's functions behind a LAPACK op whose name is not theirs (for messages)
_CALLED_AS = {"eigvalsh": "eigh/eigvalsh", "svdvals": "svd/svdvals/norm/cond/matrix_rank/lstsq",
              "svd_u": "svd", "svd_vt": "svd", "qr_q": "qr", "qr_r": "qr", "pinv": "pinv/lstsq",
              "lu": "lu/lu_factor", "lu_pivots": "lu_factor", "lu_perm": "lu"}


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
        called = _CALLED_AS.get(d["op"])
        raise UnsupportedError(
            f"linalg.{d['op']}{at}{f' (behind {called})' if called else ''} runs on backend=\"llvm\", "
            f"which calls the LAPACK numpy ships, or on "
            f"backend=\"numpy\"; backend=\"c\" and ahead-of-time libraries (gradc build) do not support it"
            + ("" if blas is None else " (and this numpy's LAPACK was not found, or gradc's extension "
               "predates it: rebuild it with `python setup.py build_ext --inplace`)"))


class LibraryNests:
    """Products, LAPACK, sort ranks, scatter-adds and row pipelines (a mixin of
    LoopLowering: uses its expressions, statements and ``loop_nest``)."""

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
