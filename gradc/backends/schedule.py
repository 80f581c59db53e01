"""Scheduling a graph into fused loop nests (shared by the LLVM and C backends).

Every element-wise and view op (transpose, broadcast_to, reshape, slice, unslice,
gather, iota, count, ...) is *inlined*: computed as an expression of the loop index
where it is used.  Only *roots* get buffers: graph outputs, reductions, matrix
products, scatter-adds, and operands a matrix product must read from memory.

Roots whose iteration domain is the same symbolic shape share one loop nest when
their dependencies allow it, so a forward value, its reduction and the adjoint of an
element-wise loss are computed in one pass over memory (LLVM's GVN then shares the
common subexpressions inside the loop body).

This module decides which nodes are roots and forms the nests (``schedule``); the
steps around it live beside it: graph rewrites before scheduling (schedule_graph),
per-node domains, reads and index maps (schedule_index), row pipelines (pipelines),
the workspace's layout and slots (workspace), and the data types (schedule_types).
The names other modules use are re-exported here.
"""
from __future__ import annotations

import networkx as nx

from ..graph import Graph
from ..ops import OPS
from ..ops.scan import symbol_map, while_inputs
from ..passes import strip_custom
from .pipelines import _row_pipelines
from .schedule_graph import _fill_constant_outputs, _mask_from_relu, decompose, is_stack_product, native_sort_rank
from .schedule_index import (MAX_NEST_COST, _arg_map, _cost, _is_viewable, _op, _reads, _stage_after, _suffix_start,
                             crosses_chunks, domain, is_lapack, is_reduction, swaps_last_two)
from .schedule_types import Nest, ScanStep, Schedule
from .workspace import _assign_slots, _in_place
# Re-exported: names other modules and tests import from gradc.backends.schedule.
from .schedule_graph import is_flat_product, sort_kinds  # noqa: F401
from .schedule_index import broadcast_index, identity, view_index  # noqa: F401
from .schedule_types import RowPipeline  # noqa: F401
from .workspace import ALIGN, PACKED_WIDTH, row_stride, workspace_bytes, workspace_layout  # noqa: F401


CHUNKS_PER_THREAD = 4   # parallel nests run as this many chunks per thread, taken dynamically
MAX_INLINE_DEPTH = 48
MAX_INLINE_COST = 160


def _bound_inline_depth(g: Graph, roots: set) -> None:
    """Materialize a node when the expression inlined into it would nest deeper than
    MAX_INLINE_DEPTH or cost more than MAX_INLINE_COST (see _cost): code generation
    recurses over inlined expressions, and LLVM's optimizer is super-linear in the size
    of a loop body, so a model with thousands of chained ops must neither overflow the
    stack nor build one giant loop body."""
    depth, inlined = {}, {}
    for n in g.order():
        d = g[n]
        if d["op"] in ("input", "const"):
            depth[n], inlined[n] = 0, frozenset()
            continue
        live = [a for a in d["args"] if a not in roots]
        k = 1 + max((depth[a] for a in live), default=0)
        body = frozenset({n}).union(*(inlined[a] for a in live))
        if (k > MAX_INLINE_DEPTH or _cost(body, g, roots) > MAX_INLINE_COST) \
                and OPS[d["op"]].kind != "source" and n not in roots:
            roots.add(n)
        if n in roots:
            k, body = 0, frozenset()
        depth[n], inlined[n] = k, body


# an operand of a concatenation (or an unslice: zeros outside its window) costing more
# than this, inlined, is computed into a buffer of its own (see _materialize_pieces)
MAX_PIECE_COST = 8


def _materialize_pieces(g: Graph, roots: set) -> None:
    """A concatenation (or an unslice) reads each piece through a select of its window,
    and a vector loop computes every operand of a select: inlined, each piece would be
    computed over the whole result (a GRU's gate gradients, three pieces of a 10-step
    chain each, were computed three times over).  A piece that costs more than
    MAX_PIECE_COST becomes a buffer of its own, computed over its own elements once."""
    def body(n, seen):
        if n in seen or n in roots or g[n]["op"] in ("input", "const"):
            return
        seen.add(n)
        for a in g[n]["args"]:
            body(a, seen)

    for n in g.order():
        if g[n]["op"] not in ("concatenate", "unslice"):
            continue
        for a in g[n]["args"]:
            if a in roots or g[a]["op"] in ("input", "const") or OPS[g[a]["op"]].kind == "source":
                continue
            if tuple(g[a]["shape"]) == tuple(g[n]["shape"]):
                continue        # a window that is the whole result: nothing computed for naught
            inlined: set = set()
            body(a, inlined)
            if _cost(inlined, g, roots) > MAX_PIECE_COST:
                roots.add(a)


ROW_BLOCK_SHARED, ROW_BLOCK_OTHER = 4, 1


def last_level_cache_bytes(default: int = 16 << 20) -> int:
    """The size of this host's largest CPU cache (Linux sysfs; ``default`` elsewhere):
    a matrix larger than this streams from memory on every call."""
    import glob
    best = 0
    for path in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        try:
            with open(path) as f:
                text = f.read().strip().upper()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text[:-1] if text[-1:] in "KMG" else text
        if digits.isdigit():
            best = max(best, int(digits) * scale)
    return best or default


def _row_block(g: Graph, nest: Nest, roots: set) -> int:
    """Rows per pass of a 2-d nest whose rows reduce over the inner axis.  Where the
    reductions read an operand shared by all rows (``w`` in ``X @ w``), 4 rows per pass
    share its loads (and an accumulation over rows loads and stores its output once per
    block).  Other row reductions (a softmax over classes) run a row at a time: blocks
    of rows would overlap the rows' independent chains (M5 value_and_grad 2-8% faster
    with 4 rows, measured in one process), but every row of a block is another copy of
    the body for LLVM to compile: M5's first call took 0.15 s unblocked, 0.23-0.26 s with
    2-row blocks, 0.18-0.23 s with 4."""
    local = [n for n in nest.roots if is_reduction(g, n) and nest.stage_local(n)]
    if not local:
        return 1
    return ROW_BLOCK_SHARED if any(_reads_row_invariant(g, n, roots) for n in local) else ROW_BLOCK_OTHER


# A nest reading a matrix across (its transpose) runs in tiles of TILE x TILE elements:
# the TILE rows of the matrix a tile reads, a few cache lines each, stay in L1 while the
# tile's rows pass, where whole rows of the nest read one element of each line and came
# back for the next after the line had left L1 (A + B.T at 2048 x 2048: 9-11 against 17
# ms in float64, 6 against 12 in float32; docs/native-backend.md, Transposes).
TILE = 32


def _tile(g: Graph, nest: Nest, roots: set) -> int:
    """Tile size for a 2-d element-wise nest (no reductions: every root written at each
    element) that reads a stored matrix with the nest's inner axis along the matrix's
    rows (a transpose); 0 otherwise."""
    if nest.kind != "loop" or len(nest.domain) != 2 or nest.row_block > 1:
        return 0
    if any(is_reduction(g, n) or nest.info[n]["level"] != "full" for n in nest.roots):
        return 0
    starts = [(a, _arg_map(g, n, a, (0, 1))) for n in nest.roots for a in g[n]["args"]]
    # (the domain's inner axis indexes a stored matrix's leading axis)
    return TILE if _reads_stored(g, starts, roots, lambda m: len(m) >= 2 and 1 in m[:-1]) else 0


def _reads_stored(g: Graph, starts, roots: set, test) -> bool:
    """Does an expression, walked from each (node, index map) of ``starts`` through the
    nodes inlined into it, read a stored node (a root, an input, a constant) through an
    index map for which ``test(map)`` holds?"""
    seen = set()

    def walk(n, m):
        if (n, m) in seen or m is None:
            return False
        seen.add((n, m))
        d = g[n]
        if n in roots or d["op"] in ("input", "const"):
            return test(m)
        if d["op"] == "count":
            return False
        return any(walk(a, _arg_map(g, n, a, m)) for a in d["args"])
    return any(walk(n, m) for n, m in starts)


def _reads_row_invariant(g: Graph, nid: int, roots: set) -> bool:
    """Does reduction ``nid`` over the inner axis of a 2-d domain read an operand that
    is the same for every row (``w`` in the row dot products of ``X @ w``)?  Then rows
    are worth processing in blocks: one load of that operand serves the whole block.
    (A row-wise softmax reads nothing of the kind, and blocking would only multiply the
    code LLVM compiles: twice the compile time for 5% speed, measured on M5.)"""
    return _reads_stored(g, [(g[nid]["args"][0], (0, 1))], roots, lambda m: 1 in m and 0 not in m)


def _materialize_row_math(g: Graph, roots: set) -> None:
    """A transcendental function of a per-row vector (the softplus of each row's margin
    in logistic regression, the sigmoid its gradient broadcasts over the row) is, when
    inlined, evaluated one row at a time: LLVM hoists it out of the loop over the row's
    elements, a full vector-math call per row.  As a root it is computed at the row
    level of the nest over the matrix, for a block of rows at once (the SLP vectorizer
    puts the block's rows in vector lanes), and with ``row_local`` it costs no memory."""
    rows = {g[n]["shape"][0] for n in g.nx.nodes if len(g[n]["shape"]) == 2}
    for n in g.nx.nodes:
        d = g[n]
        if n not in roots and _op(g, n).cost > 1 and len(d["shape"]) == 1 and d["shape"][0] in rows:
            roots.add(n)


def _materialize_shared_softmax(g: Graph, roots: set) -> None:
    """The exponentials ``e = exp(x - max)`` a logsumexp and its adjoint's softmax share
    (``e * (1 / sum(e))``, see decompose) are stored where the sum computes them, so
    the softmax reads them instead of calling exp again (a vector-math call per element
    against a store and a load)."""
    for n in g.nx.nodes:
        if g[n]["op"] != "exp" or n in roots:
            continue
        users = g.users(n)
        sums = {u for u in users if g[u]["op"] == "sum"}
        for u in users:
            if g[u]["op"] == "mul":
                other = [a for a in g[u]["args"] if a != n]
                if other and g[other[0]]["op"] == "div" and g[other[0]]["args"][1] in sums:
                    roots.add(n)
                    break


def _materialize_math_across_nests(g: Graph, roots: set) -> None:
    """A vector-math value (``Op.cost`` > 1: exp, tanh, sigmoid, ...) that two roots
    inline, one of them computed from the other (so in a later nest, or a later pass
    over the row), is stored where it is first computed instead of evaluated again:
    a gelu layer's ``sigmoid`` feeds its activation in the forward pass and its
    derivative in the backward one, and evaluating it twice cost more than storing and
    loading it (a 2-layer gelu MLP at batch 2048 and 64 units, one core: see
    docs/benchmarks.md)."""
    bodies = {}     # root -> the non-root nodes its loop body computes

    def body(r):
        if r not in bodies:
            seen, stack = set(), list(g[r]["args"])
            while stack:
                a = stack.pop()
                if a in seen or a in roots or g[a]["op"] in ("input", "const", "count"):
                    continue     # (count reads only a shape, as in _reads)
                seen.add(a)
                stack.extend(g[a]["args"])
            bodies[r] = seen
        return bodies[r]

    candidates = {n for n in g.nx.nodes if n not in roots and _op(g, n).cost > 1 and OPS[g[n]["op"]].kind != "source"}
    if not candidates:
        return
    readers: dict = {}
    for r in list(roots):
        for n in body(r) & candidates:
            readers.setdefault(n, []).append(r)
    after: dict = {}    # root -> the nodes computed from it (shared by every candidate it reads)
    for n, rs in readers.items():
        if len(rs) < 2:
            continue
        for r in rs:
            if r not in after:
                after[r] = nx.descendants(g.nx, r)
        if any(u in after[r] for r in rs for u in rs):
            roots.add(n)


LOOP_OPS = ("scan", "while")   # ops whose nest calls a step kernel of its own (lower_scan)


def schedule(graph: Graph, threads: int = 1, share: bool = True, row_local: bool = False,
             batched_products: bool = False, native_sort: bool | str = False) -> Schedule:
    """Fused loop nests for ``graph``; with ``threads`` > 1, loop nests are split over
    their outer loop, so reductions across it get per-chunk partial buffers.  With
    ``share``, intermediates whose lifetimes do not overlap share workspace memory.
    With ``row_local``, per-row values of a 2-d nest that only that nest reads (a row's
    dot product, a row-level sigmoid) get no workspace: the code generator keeps them
    for the current block of rows only (``Schedule.row_local``).  ``batched_products``:
    the renderer has a library for stacks of products (``is_stack_product``);
    ``native_sort``: one for sorting (``native_sort_rank``)."""
    g = decompose(strip_custom(graph), batched_products, native_sort)   # code holds no custom_jvp/vjp marks
    if any(g[n]["op"] == "relu" for n in g.nx.nodes):
        g = g.copy() if g is graph else g
        _mask_from_relu(g)
    if any(g[o]["op"] == "const" for o in g.outputs):
        g = g.copy() if g is graph else g
        _fill_constant_outputs(g)
    roots = set()
    for nid in g.nx.nodes:
        if _op(g, nid).root:
            roots.add(nid)
    for o in g.outputs:
        roots.add(o)  # outputs that are inputs or constants are copied by the caller
    # operands of a matrix product must be in memory; one of rank 3 or more (a flat
    # product's rows, a contraction's) as stored, contiguous, not through a view
    changed = True
    while changed:
        changed = False
        for nid in list(g.nx.nodes):
            if g[nid]["op"] in ("matmul", "contract"):
                for a in g[nid]["args"]:
                    flat = (len(g[a]["shape"]) > 2 or g[nid]["op"] == "contract") and g[a]["op"] not in ("input", "const")
                    if flat and is_stack_product(g, nid) and swaps_last_two(g, a) and (g[a]["args"][0] in roots or
                                                           g[g[a]["args"][0]]["op"] in ("input", "const")):
                        flat = False        # a stack's transposed matrices: BLAS reads them in place
                    if a not in roots and (not _is_viewable(g, a, roots) or flat):
                        # A matrix's transpose of a computed value: the value is stored
                        # as it is computed and BLAS reads it transposed, instead of a
                        # nest writing the transpose a column at a time (exp(S).T @ D, S
                        # 2048 x 2048 float32: 9.5 ms against 2.0)
                        d = g[a]
                        roots.add(d["args"][0] if d["op"] == "transpose" and len(d["shape"]) == 2 and not flat
                                  else a)
                        changed = True
    # operands of a LAPACK call are whole contiguous buffers (runtime/lapack.c reads them),
    # and so are a scan's (its step kernel's inputs)
    for nid in list(g.nx.nodes):
        if is_lapack(g, nid) or native_sort_rank(g, nid, native_sort) or g[nid]["op"] in LOOP_OPS:
            roots.update(a for a in g[nid]["args"] if g[a]["op"] not in ("input", "const"))
            roots.add(nid)
    roots = {r for r in roots if g[r]["op"] not in ("input", "const")}
    _bound_inline_depth(g, roots)
    _materialize_pieces(g, roots)
    _materialize_row_math(g, roots)
    _materialize_shared_softmax(g, roots)
    _materialize_math_across_nests(g, roots)
    nests: list[Nest] = []
    where: dict = {}
    last_use: dict = {}
    reads_of: dict = {}
    scan_nests: dict = {}    # a scan's group -> its nest: one loop computes all its outputs
    for nid in g.order():
        if nid not in roots:
            continue
        op = g[nid]["op"]
        if op in LOOP_OPS:
            d = g[nid]
            key = (op, d["args"], tuple(sorted((k, v) for k, v in d["params"].items() if k != "index")))
            if key not in scan_nests:
                scan_nests[key] = len(nests)
                nests.append(Nest("scan", ()))
            j = scan_nests[key]
            nests[j].roots.append(nid)
            nests[j].info[nid] = {"level": "full", "stage": 0, "acc": None}
            reads_of[nid] = {a: None for a in d["args"] if a in roots}
            for r in reads_of[nid]:
                last_use[r] = max(last_use.get(r, 0), j)
            where[nid] = j
            continue
        dom = domain(g, nid)
        kind = "lapack" if is_lapack(g, nid) else "sort" if native_sort_rank(g, nid, native_sort) else \
            {"matmul": "matmul", "contract": "matmul", "scatter_add": "scatter"}.get(op, "loop")
        reads, cost = _reads(g, nid, roots)
        reads_of[nid] = reads
        lb = max((where[r] for r in reads), default=0)
        placed = None
        if kind == "loop":
            for j in range(lb, len(nests)):
                nest = nests[j]
                if nest.kind != "loop" or (nest.roots and nest.cost + cost > MAX_NEST_COST):
                    continue
                r = len(nest.domain)
                if nest.domain == dom:
                    full = True
                elif r >= 1 and nest.domain[:-1] == dom and not (threads > 1 and r == 1):
                    full = False    # (a row level of a split 1-d loop would run once per chunk)
                else:
                    continue
                stage = 0 if full else 1
                for S, m in reads.items():
                    if where[S] == j:
                        st = _stage_after(g, S, m, nest, full, r, threads)
                        if st is None:
                            stage = None
                            break
                        stage = max(stage, st)
                if stage is None:
                    continue
                if (stage % 2 == 0) != full:
                    stage += 1
                placed = (j, full, stage)
                break
        if placed is None:
            nests.append(Nest(kind, dom))
            placed = (len(nests) - 1, True, 0)
        j, full, stage = placed
        nest = nests[j]
        rank = len(dom)
        acc = _suffix_start(g[nid]["params"]["axes"], rank) if is_reduction(g, nid) else None
        nest.roots.append(nid)
        for r in reads:
            last_use[r] = max(last_use.get(r, 0), j)
        nest.cost += cost
        nest.work += cost + _op(g, nid).cost
        nest.info[nid] = {"level": "full" if full else "row", "stage": stage, "acc": acc}
        where[nid] = j
    nests, pipelines = _row_pipelines(g, nests, reads_of, roots)
    if pipelines:   # nests moved: where and last use again, a pipeline's nests as one span
        span = {j: (p.first, p.last) for p in pipelines for j in range(p.first, p.last + 1)}
        where = {n: j for j, nest in enumerate(nests) for n in nest.roots}
        last_use = {}
        for n, reads in reads_of.items():
            for r in reads:
                if r in where:
                    last_use[r] = max(last_use.get(r, 0), span.get(where[n], (0, where[n]))[1])
        where = {n: span.get(j, (j, j))[0] for n, j in where.items()}
    symbols = sorted({s for n in g.nx.nodes for s in g[n]["shape"] if isinstance(s, str)}
                     | {s for i in g.inputs for s in g[i]["shape"] if isinstance(s, str)})
    # (a LAPACK call reads its operands by pointer: pinv's rcond of one matrix is a scalar)
    lapack_args = {a for n in g.nx.nodes if is_lapack(g, n) or g[n]["op"] in LOOP_OPS for a in g[n]["args"]}
    consts = [n for n in g.order() if g[n]["op"] == "const" and (g[n]["params"]["value"].ndim > 0 or n in lapack_args)]
    outs = set(g.outputs)
    local = []
    if row_local:
        for j, nest in enumerate(nests):
            if nest.kind == "loop" and len(nest.domain) == 2:
                # (a square nest's column sums have a row's shape too, but need every row)
                local += [n for n in nest.roots if n not in outs and last_use.get(n, j) == j
                          and tuple(g[n]["shape"]) == tuple(nest.domain[:1])
                          and not crosses_chunks(g, n, nest.info[n])]
    workspace = [n for n in g.order() if n in roots and n not in outs and n not in local]
    for nest in nests:
        if nest.kind == "loop" and len(nest.domain) == 2:
            nest.row_block = _row_block(g, nest, roots)
            nest.tile = _tile(g, nest, roots)
    candidates = _in_place(g, nests, where, reads_of, pipelines) if share else {}
    slots, in_place = _assign_slots(workspace, where, last_use, candidates) if share \
        else ([[n] for n in workspace], {})
    nonempty = [(n, g[n]["params"]["axes"]) for n in g.nx.nodes
                if _op(g, n).combine in ("max", "min") and g[n]["params"].get("initial") is None]
    partials = []
    if threads > 1:
        for nest in nests:
            if nest.kind == "loop" and nest.domain:
                nest.parallel = True
                partials += [n for n in nest.roots if crosses_chunks(g, n, nest.info[n])]
        partials += [p.tail for p in pipelines]   # each chunk sums its blocks' x^T G
    chunks = threads * CHUNKS_PER_THREAD if threads > 1 else 1
    # each scan's step: scheduled as a graph of its own, with the same options
    scans = {}
    for nest in nests:
        if nest.kind == "scan":
            d = g[nest.roots[0]]

            def step(body, args):
                bs = schedule(body.graph, threads, share, row_local, batched_products, native_sort)
                return ScanStep(bs, symbol_map(body, [g[a]["shape"] for a in args]))
            if d["op"] == "while":
                c_args, b_args = while_inputs(d["args"], d["params"]["ncarry"], d["params"]["ncond"])
                scans[nest.roots[0]] = step(d["params"]["body"], b_args)
                scans[nest.roots[0]].cond = step(d["params"]["cond"], c_args)
            else:
                scans[nest.roots[0]] = step(d["params"]["body"], d["args"])
                body = d["params"]["body"]
                scans[nest.roots[0]].steps = g[d["args"][body.ncarry]]["shape"][0] if body.nx else d["params"]["length"]
    return Schedule(g, nests, roots, list(g.outputs), workspace, symbols, consts, nonempty,
                    threads=chunks, partials=partials, slots=slots, pool_threads=threads, row_local=local,
                    pipelines=pipelines, stream_bytes=last_level_cache_bytes(), in_place=in_place, scans=scans)


def describe(s: Schedule) -> str:
    """A readable listing of the loop nests (what `.lower()` shows)."""
    from ..shapes import fmt_shape
    lines = []
    for k, n in enumerate(s.nests):
        roots = ", ".join(f"{s.graph.label(r)}={s.graph[r]['op']}"
                          + (f"@{n.info[r]['stage']}" if n.info.get(r, {}).get("stage") else "")
                          for r in n.roots)
        pipe = next((p for p in s.pipelines if p.first <= k <= p.last), None)
        tail = f" (row pipeline over {s.graph.label(pipe.x)}: nests {pipe.first}-{pipe.last})" if pipe else ""
        lines.append(f"nest {k}: {n.kind} over {fmt_shape(n.domain)}: {roots}{tail}")
    return "\n".join(lines)
