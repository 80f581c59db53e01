"""What the scheduler asks of one node, in index terms: its iteration domain, whether
it reduces or calls LAPACK, the materialized nodes it reads and through which index
maps (view_index and broadcast_index: the one definition the scheduler and both
lowerings share), the cost of inlining it, and the stage of a nest it can run in.
The lowest of the scheduler's modules: schedule(), the row pipelines, the workspace
analysis and the lowerings read these."""
from __future__ import annotations

import numpy as np

from ..graph import Graph
from ..ops import OPS


def _is_viewable(g: Graph, nid: int, roots: set) -> bool:
    """Can a matrix product read this node from memory through strides?"""
    d = g[nid]
    if nid in roots or d["op"] in ("input", "const"):
        return True
    if d["op"] == "transpose" or (d["op"] == "reshape" and _only_unit_dims(g, nid)) or \
            d["op"] == "broadcast_to":
        return _is_viewable(g, d["args"][0], roots)
    return False


def swaps_last_two(g, nid) -> bool:
    """Is node ``nid`` a transpose of a stack (rank 3 or more) that swaps only its last
    two axes?"""
    d = g[nid]
    if d["op"] != "transpose" or len(d["shape"]) < 3:
        return False
    r = len(d["shape"])
    return tuple(d["params"]["perm"]) == tuple(range(r - 2)) + (r - 1, r - 2)


def _only_unit_dims(g, nid):
    d = g[nid]
    a = g[d["args"][0]]
    return [x for x in a["shape"] if x != 1] == [x for x in d["shape"] if x != 1]


def domain(g: Graph, nid: int) -> tuple:
    """The iteration space of root ``nid``: its argument's for a reduction or a
    scatter-add (one iteration per element read), else its own shape."""
    d = g[nid]
    if is_reduction(g, nid) or d["op"] == "scatter_add":
        return g[d["args"][0]]["shape"]
    return d["shape"]


def is_reduction(g: Graph, nid: int) -> bool:
    """Does node ``nid`` accumulate (``Op.combine``: sum, max, min)?"""
    return _op(g, nid).combine is not None


def is_lapack(g: Graph, nid: int) -> bool:
    """Is node ``nid`` a linear algebra op computed by a LAPACK call (``Op.extra["lapack"]``)?"""
    op = OPS.get(g[nid]["op"])
    return op is not None and "lapack" in op.extra


class _Leaf:
    """Inputs and constants: not registry ops; no flags."""
    cost, view, root, combine = 0, False, False, None


def _op(g: Graph, nid: int):
    """The registry entry of node ``nid``'s op (what the scheduler reads from it)."""
    return OPS.get(g[nid]["op"], _Leaf)


def identity(op: str, dtype):
    """The value a reduction with combine rule ``op`` starts from: 0 for a sum; for max (min) the lowest
    (highest) value of ``dtype``: -inf (inf) for floats, the integer limits, False
    (True) for bools."""
    dt = np.dtype(dtype)
    if op == "sum":
        return 0
    low = op == "max"
    if dt.kind == "f":
        return -np.inf if low else np.inf
    if dt.kind == "b":
        return not low
    info = np.iinfo(dt)
    return int(info.min if low else info.max)


def _reads(g: Graph, nid: int, roots: set):
    """Materialized nodes read by root ``nid``, each with its *index map*: for every
    dimension of the node read, which dimension of the root's iteration domain indexes
    it (None: always 0), or None when the map is not a plain broadcast/permutation."""
    d = g[nid]
    out: dict = {}
    seen: set = set()   # (node, map) pairs: shared subexpressions are walked once

    def add(r, m):
        out[r] = m if r not in out or out[r] == m else None

    def walk(n, m):
        if (n, m) in seen:
            return
        seen.add((n, m))
        dn = g[n]
        if n in roots:
            add(n, m)
            return
        if dn["op"] in ("input", "const", "count"):   # count reads only a shape
            return
        for a in dn["args"]:
            walk(a, _arg_map(g, n, a, m))

    if is_reduction(g, nid) or d["op"] == "scatter_add":
        dom = domain(g, nid)
        for pos, a in enumerate(d["args"]):
            walk(a, tuple(range(len(dom))) if pos == 0 else None)
    else:
        ident = tuple(range(len(d["shape"])))
        for a in d["args"]:
            walk(a, _arg_map(g, nid, a, ident) if d["op"] != "matmul" else None)
    return out, _cost({n for n, _ in seen}, g, roots)


# Relative cost of inlining one node into a loop body (``Op.cost``: vector math expands
# to dozens of instructions).  LLVM's O3 is super-linear in the size of a loop body, so a
# nest stops taking roots past MAX_NEST_COST (measured: 150 chained sin layers in one body
# took 25 s to optimize; bodies under this budget optimize in well under a second).
MAX_NEST_COST = 400


def _cost(nodes, g, roots):
    return sum(_op(g, n).cost for n in nodes if n not in roots)


def broadcast_index(arg_shape, out_rank: int, idx, zero):
    """numpy broadcasting: the index of an argument of ``arg_shape`` that feeds element
    ``idx`` of a result of rank ``out_rank`` (``zero`` where the argument has size 1)."""
    ra = len(arg_shape)
    return [zero if arg_shape[k] == 1 else idx[out_rank - ra + k] for k in range(ra)]


def view_index(g: Graph, n: int, a: int, idx, zero):
    """The index of argument ``a`` that element ``idx`` of node ``n`` reads, when ``n`` is
    element-wise, a broadcast, a transpose, or a reshape that only adds or drops size-1
    axes; None for any other op.  Entries of ``idx`` are passed through (loop indices in
    the code generators, domain positions in the scheduler), ``zero`` fills broadcast
    axes.  The one definition of these index maps for the scheduler and both lowerings."""
    if idx is None:
        return None
    dn, da = g[n], g[a]
    op = dn["op"]
    s_out, s_in = dn["shape"], da["shape"]
    if OPS[op].kind == "elementwise" or op == "broadcast_to":
        return broadcast_index(s_in, len(s_out), idx, zero)
    if op == "reshape" and [x for x in s_in if x != 1] == [x for x in s_out if x != 1]:
        it = iter([i for i, x in zip(idx, s_out) if x != 1])
        return [zero if x == 1 else next(it) for x in s_in]
    if op == "transpose":
        inner = [None] * len(idx)
        for j, p in enumerate(dn["params"]["perm"]):
            inner[p] = idx[j]
        return inner
    return None


def _arg_map(g, n, a, m):
    """Index map of argument ``a`` of node ``n`` given ``n``'s own map ``m``: for each
    dimension of ``a``, the domain axis indexing it (None: always 0)."""
    r = view_index(g, n, a, m, None)
    return None if r is None else tuple(r)


def _suffix_start(axes, rank):
    """Reductions over a suffix of the axes accumulate in a register from that level."""
    if axes and tuple(axes) == tuple(range(min(axes), rank)):
        return min(axes)
    return None


def crosses_chunks(g, nid, info) -> bool:
    """Does this reduction accumulate across the outer loop (which threads split)?"""
    if not is_reduction(g, nid):
        return False
    return info["acc"] == 0 or (info["acc"] is None and 0 in g[nid]["params"]["axes"])


def _stage_after(g, S, m, nest, R_full, r, threads=1):
    """The earliest stage root R may take in ``nest`` given that it reads root S of the
    same nest through index map ``m``; None if S is only complete after the nest."""
    if m is None:
        return None
    info = nest.info[S]
    real = tuple(x for x in m if x is not None)
    row_read = real == tuple(range(r - 1))
    if info["level"] == "full":
        if is_reduction(g, S):
            if info["acc"] == r - 1 and row_read and not (threads > 1 and crosses_chunks(g, S, info)):
                return info["stage"] + 1                    # complete after its inner loop
            return None
        if R_full and m == tuple(range(r)):                 # same element, same iteration
            return info["stage"]
        return None
    if is_reduction(g, S):                                   # a row-level reduction: whole nest
        return None
    if R_full and row_read:
        return info["stage"] + 1
    if not R_full and m == tuple(range(r - 1)):
        return info["stage"]
    return None
