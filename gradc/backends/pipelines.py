"""Row pipelines (RowPipeline): a narrow product x @ W, the row-local nests that
consume it and the product x^T @ G that closes it run together, block by block over
x's rows, so x is read from memory once.  Finding them and reordering the nests around
them (_row_pipelines) is the step of schedule.schedule() after the nests are formed;
a module of its own so the scheduler's file stays readable."""
from __future__ import annotations

from ..graph import Graph
from .schedule_index import _reads, broadcast_index, domain, is_reduction, view_index
from .schedule_types import Nest, RowPipeline
from .workspace import PACKED_WIDTH


_UNKNOWN = -1   # an index map entry: some index, not known to be the domain's row


def _narrow_head(g: Graph, z: int, x: int, roots: set) -> bool:
    """Is root ``z`` the product x @ W of x as stored with a stored W whose columns are
    few (at most PACKED_WIDTH, or a size symbol: checked when the kernel runs)?"""
    d = g[z]
    if d["op"] != "matmul" or d["args"][0] != x:
        return False
    w = d["args"][1]
    cols = g[w]["shape"][-1] if len(g[w]["shape"]) == 2 else None
    stored = w in roots or g[w]["op"] == "input"
    same_type = d["dtype"] == g[x]["dtype"] == g[w]["dtype"]
    return stored and same_type and (isinstance(cols, str) or (isinstance(cols, int) and cols <= PACKED_WIDTH))


def _tail_operand(g: Graph, gw: int, roots: set):
    """(x, G) when root ``gw`` is x^T @ G of stored matrices (a gradient's X^T G), else None."""
    d = g[gw]
    if d["op"] != "matmul":
        return None
    a, b = d["args"]
    if g[a]["op"] != "transpose" or tuple(g[a]["params"]["perm"]) != (1, 0):
        return None
    x = g[a]["args"][0]
    stored = lambda n: n in roots or g[n]["op"] == "input"   # noqa: E731
    if not (stored(x) and stored(b)) or g[x]["dtype"].kind != "f" or not d["dtype"] == g[x]["dtype"] == g[b]["dtype"]:
        return None
    return x, b


def _row_iota(g: Graph, n: int, m) -> bool:
    """Is node ``n``, read through index map ``m``, the domain's row index (the row
    numbers take_along_axis gathers with)?"""
    d = g[n]
    if d["op"] == "iota":
        return m[d["params"]["axis"]] == 0
    if d["op"] in ("convert", "reshape", "broadcast_to"):
        inner = view_index(g, n, d["args"][0], m, None)
        return inner is not None and _row_iota(g, d["args"][0], tuple(inner))
    return False


def _reads_own_row(g: Graph, nid: int, inside: set, roots: set) -> bool:
    """Does root ``nid`` (of a nest whose domain's first axis is the rows) read every
    buffer in ``inside`` (made in the same block of rows) at its own row only?"""
    seen: set = set()

    def walk(n, m):
        if (n, m) in seen:
            return True
        seen.add((n, m))
        d = g[n]
        if n in roots:
            return n not in inside or (len(m) > 0 and m[0] == 0)
        if d["op"] in ("input", "const", "count"):
            return True
        if d["op"] == "gather":   # x[rows, idx]: its own row when the row index is the row
            x, *ix = d["args"]
            maps = [tuple(broadcast_index(g[a]["shape"], len(d["shape"]), m, None)) for a in ix]
            row = bool(ix) and _row_iota(g, ix[0], maps[0])
            xm = tuple([0 if row else _UNKNOWN] + [_UNKNOWN] * (len(g[x]["shape"]) - 1))
            return all(walk(a, am) for a, am in zip(ix, maps)) and walk(x, xm)
        return all(walk(a, _map_or_unknown(g, n, a, m)) for a in d["args"])

    d = g[nid]
    if is_reduction(g, nid):
        return walk(d["args"][0], tuple(range(len(domain(g, nid)))))
    ident = tuple(range(len(d["shape"])))
    return all(walk(a, _map_or_unknown(g, nid, a, ident)) for a in d["args"])


def _map_or_unknown(g, n, a, m):
    """view_index's map of argument ``a`` of node ``n``, with _UNKNOWN where it is not a
    domain axis (a slice's axes that do not start at 0 with step 1, gathered axes)."""
    if g[n]["op"] in ("slice", "unslice"):   # (unslice: zeros outside the argument's window)
        return tuple(i if (start == 0 and step == 1) else _UNKNOWN
                     for i, (start, _stop, step) in zip(m, g[n]["params"]["index"]))
    r = view_index(g, n, a, m, None)
    return tuple(r) if r is not None else (_UNKNOWN,) * len(g[a]["shape"])


def _row_pipelines(g: Graph, nests: list, reads_of: dict, roots: set):
    """Find row pipelines (see RowPipeline) and move nests so each is consecutive: of
    the nests between its head and its tail, those that do not depend on the head run
    before it, those the tail does not need after the tail.  Returns (nests, pipelines)."""
    pipelines: list = []
    while True:
        where = {n: j for j, nest in enumerate(nests) for n in nest.roots}
        deps = [{where[r] for n in nest.roots for r in reads_of[n] if r in where} - {j}
                for j, nest in enumerate(nests)]
        taken = {j for p in pipelines for j in range(p.first, p.last + 1)}
        found = None
        for t, nest in enumerate(nests):
            if nest.kind != "matmul" or t in taken:
                continue
            operands = _tail_operand(g, nest.roots[0], roots)
            if operands is None:
                continue
            x, _G = operands
            for h in range(t - 1, -1, -1):
                if h in taken or nests[h].kind != "matmul" or not _narrow_head(g, nests[h].roots[0], x, roots):
                    continue
                found = _pipeline_order(g, nests, deps, reads_of, roots, h, t, x, taken)
                if found:
                    break
            if found:
                break
        if not found:
            return nests, pipelines
        order, (first, last, h, t) = found
        nests = [nests[j] for j in order]
        pipelines = [RowPipeline(order.index(p.first), order.index(p.last), p.x, p.head, p.tail) for p in pipelines]
        pipelines.append(RowPipeline(first, last, x, nests[first].roots[0], nests[last].roots[0]))


def _pipeline_order(g, nests, deps, reads_of, roots, h, t, x, taken):
    """The nests' new order with head ``h`` and tail ``t`` around the row-local nests
    the tail needs, and (first, last, h, t) in it; None when a nest the tail needs is not
    a loop over x's rows that reads the block's values at its own row only.  A root of
    such a nest that is not row-local, not a reduction and read by nothing in the
    pipeline (a mean: the sum over rows divided by n) moves to a nest of its own after
    the tail: nests are appended for them, and the order places them there."""
    between = range(h + 1, t)
    if any(j in taken for j in between):
        return None
    after_head = set()
    for j in between:
        if deps[j] & (after_head | {h}):
            after_head.add(j)
    needed, todo = set(), [j for j in deps[t] if j in after_head]
    while todo:
        j = todo.pop()
        if j not in needed:
            needed.add(j)
            todo += [i for i in deps[j] if i in after_head]
    rows = g[x]["shape"][0]
    inside = {nests[h].roots[0]} | {n for j in needed for n in nests[j].roots}
    evicted = []
    for j in sorted(needed):
        nest = nests[j]
        if nest.kind != "loop" or not nest.domain or nest.domain[0] != rows:
            return None
        for n in nest.roots:
            if not _reads_own_row(g, n, inside, roots):
                if is_reduction(g, n):
                    return None
                evicted.append((j, n))
    if evicted:
        out = {n for _j, n in evicted}
        readers = inside - out | {nests[t].roots[0]}
        if any(n in reads_of[r] for r in readers for n in out):
            return None
        for j, n in evicted:
            nest = nests[j]
            nest.roots.remove(n)
            info = nest.info.pop(n)
            nests.append(Nest("loop", domain(g, n), [n], {n: {**info, "level": "full", "stage": 0}},
                              cost=_reads(g, n, roots)[1]))
    moved = list(range(len(nests) - len(evicted), len(nests)))
    before = [j for j in between if j not in after_head]
    middle = [j for j in between if j in needed]
    later = [j for j in between if j in after_head and j not in needed]
    order = list(range(h)) + before + [h] + middle + [t] + moved + later + \
        list(range(t + 1, len(nests) - len(evicted)))
    first = h + len(before)
    return order, (first, first + len(middle) + 1, h, t)
