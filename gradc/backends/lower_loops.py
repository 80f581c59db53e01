"""Lowering a schedule's fused nests into the loop IR (``loop_ir.py``), once for both
code generators.

Everything about *what* a kernel computes is decided here: the loop order and extents,
row blocks, which reductions accumulate in a register and where they start from (and
resume, in a split nest's remaining rows), how a view maps its index, where a gather
checks its bounds and an integer power its exponent, which products call a library
and which ops the math library, when a parallel nest runs on the pool and how its
chunks' partial results combine.

The lowering is three modules, importing one way: ``lower_nests.py`` (fused nests of
element-wise ops and reductions: stages, accumulators, row blocks, parallel chunks,
aligned inner loops), ``lower_calls.py`` (products, LAPACK, sort ranks, scatter-adds,
row pipelines), and this one: :class:`LoopLowering` (its state, the expressions of a
node's value at an index, the basic statements, the kernel, with the other two as
mixins) and the entry point :func:`build`.  The names other modules use are
re-exported here.
"""
from __future__ import annotations

import numpy as np

from ..ops import OPS
from ..shapes import common_ends
from .loop_ir import (STATUS_NEGATIVE_POWER, ZERO, Apply, Bin, Checked, Const, Fill, FromIndex, Guard, Kernel, Load,
                      Loop, MathCall, Nest, Select, Store, ToIndex, Update, Var, flat_offset, numel, size)
from .lower_calls import LibraryNests
from .lower_nests import LoopNests
from .schedule import Schedule, broadcast_index, describe, view_index
# Re-exported: names other modules and tests import from gradc.backends.lower_loops.
from . import lower_scan
from .lower_calls import PIPE_BLOCK_BYTES, PIPE_MAX_ROWS, PIPE_MIN_ROWS, refuse_lapack  # noqa: F401
from .lower_nests import PAR_MIN_WORK, align_inner_loops  # noqa: F401


class LoopLowering(LoopNests, LibraryNests):
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
        # the parts' sizes along the axis may be symbols (a traced size), though the
        # result's is a number (the shape rule adds their values): offsets are
        # expressions then, numbers while every size so far is one
        axis = d["params"]["axis"]
        expr = lambda v: size(v) if isinstance(v, (int, str)) else v     # noqa: E731  (a number, a symbol, an Expr)
        result, start = None, 0
        for a in d["args"]:
            n = self.shape(a)[axis]
            if isinstance(n, int) and n == 0:
                # an empty part (x[2:] of two rows) has no element to read: its value,
                # computed beside the others before the select, would read out of bounds
                continue
            rel = idx[axis] if isinstance(start, int) and start == 0 else Bin("sub", idx[axis], expr(start))
            inside = Bin("and", Bin("ge", rel, ZERO), Bin("lt", rel, size(n)))
            v = self.val(a, [Select(inside, rel, ZERO) if k == axis else i for k, i in enumerate(idx)])
            result = v if result is None else Select(inside, v, result, nid)
            start = start + n if isinstance(start, int) and isinstance(n, int) else Bin("add", expr(start), size(n))
        return result if result is not None else Const(0, d["dtype"])     # (every part empty: never read)

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
                        "lapack": self.lapack, "sort": self.sort_ranks,
                        "scan": lambda nest: lower_scan.scan(s, nest)}[nest.kind](nest)
            nests.append(Nest(k, titles[k], body))
        return Kernel(name, s, nests, blas_call, s.threads, s.pool_threads)


def build(s: Schedule, name: str, *, blas: dict | None = None, split: bool = False,
          block_rows: bool = True) -> Kernel:
    """The loop IR of schedule ``s`` for a kernel called ``name``.  ``blas`` (see
    backends/blas.py): matrix products call the library (else generated loops);
    ``split``: a row-blocked parallel nest's remaining rows get a function of their own
    (compiled in a module of its own); ``block_rows``: 2-d nests run their rows in the
    blocks the schedule chose (else one row at a time)."""
    return LoopLowering(s, blas, split, block_rows).kernel(name)
