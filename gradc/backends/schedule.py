"""Scheduling a graph into fused loop nests (shared by the LLVM and C backends).

Every element-wise and view op (transpose, broadcast_to, reshape, slice, unslice,
gather, iota, count, ...) is *inlined*: computed as an expression of the loop index
where it is used.  Only *roots* get buffers: graph outputs, reductions, matrix
products, scatter-adds, and operands a matrix product must read from memory.

Roots whose iteration domain is the same symbolic shape share one loop nest when
their dependencies allow it, so a forward value, its reduction and the adjoint of an
element-wise loss are computed in one pass over memory (LLVM's GVN then shares the
common subexpressions inside the loop body).
"""
from __future__ import annotations

import networkx as nx

from dataclasses import dataclass, field

import numpy as np

from ..graph import Graph
from ..ops import OPS
from ..tracer import replay, trace_specs
from ..passes import PAST_DIFFERENTIATION, optimize, rewrite as apply_rewrites, strip_custom



@dataclass
class Nest:
    kind: str                 # "loop" | "matmul" | "scatter" | "lapack" | "sort"
    domain: tuple             # symbolic iteration space
    roots: list = field(default_factory=list)
    # per root: level "full" (indexed by the whole domain) or "row" (by all but the last
    # axis, computed between inner loops); stage (even: inner loop, odd: row level);
    # acc: the loop level a reduction accumulates in a register from (None: in memory)
    info: dict = field(default_factory=dict)
    parallel: bool = False    # split over the outer loop across threads
    row_block: int = 1        # rows per pass of a 2-d nest's inner loops (see _row_block)
    cost: int = 0             # estimated size of the loop body (see MAX_NEST_COST)
    work: int = 0             # estimated time per element: cost plus the roots' own ops

    # What the code generators (C and LLVM) ask of a loop nest's roots, in index terms.
    def stage_local(self, nid) -> bool:
        """A reduction over the innermost axis only, accumulated within its stage."""
        return self.info[nid]["level"] == "full" and self.info[nid]["acc"] == len(self.domain) - 1

    def root_rank(self, nid) -> int:
        """How many of the domain's indices address root ``nid``."""
        return len(self.domain) if self.info[nid]["level"] == "full" else len(self.domain) - 1

    @staticmethod
    def reduced_index(d: dict, idx: list, zero) -> list:
        """The output element of reduction node ``d`` that domain index ``idx`` adds
        into: reduced axes dropped (or ``zero`` with keepdims)."""
        axes, keep = d["params"]["axes"], d["params"]["keepdims"]
        if keep:
            return [zero if a in axes else i for a, i in enumerate(idx)]
        return [i for a, i in enumerate(idx) if a not in axes]


@dataclass
class Schedule:
    graph: Graph
    nests: list
    roots: set                # materialized nodes (excluding inputs and array constants)
    outputs: list             # graph outputs in order
    workspace: list           # materialized non-output nodes, in allocation order
    symbols: list             # size symbols, in the order the kernel receives them
    consts: list              # array constants passed by pointer
    nonempty: list            # (node, axes) of max/min reductions that need a non-empty input
    threads: int = 1          # chunks a parallel nest is split into (partials are per chunk)
    partials: list = field(default_factory=list)  # reductions crossing chunks: per-chunk buffers
    slots: list = field(default_factory=list)     # workspace nodes sharing memory (disjoint lifetimes)
    pool_threads: int = 1     # threads that run the chunks
    row_local: list = field(default_factory=list)  # per-row values kept for one row block only
    pipelines: list = field(default_factory=list)  # RowPipeline: nests run block by block over rows
    stream_bytes: int = 16 << 20  # a matrix larger than this streams from memory (the host's cache)
    in_place: dict = field(default_factory=dict)  # node -> the buffer it overwrites (see _in_place)
    # set by the backend for its host (llvm_backend):
    stream_row_bytes: int | None = None  # only rows shorter than this stream (None: any; lower_loops)
    align_rows: bool = True   # a matrix's rows start their inner loops at a 64-byte boundary (lower_loops)


@dataclass
class RowPipeline:
    """Nests ``first``..``last`` (consecutive) run together, block by block over the rows
    of ``x`` (n, d): the narrow product ``head`` = x @ W (W with few columns), the
    row-local loop nests between, which compute the rows of ``G``, and ``tail`` = x^T @ G,
    accumulated over the blocks.  A block of x read by the head stays in cache for the
    tail, so x is read from memory once (softmax regression's gradient X^T (P - Y),
    logistic regression's, a narrow linear layer's with a row-wise loss).  The lowering
    runs it when it has gradc's narrow kernels (else the nests run one after another,
    in the same order)."""
    first: int
    last: int
    x: int
    head: int
    tail: int


def _mask_from_relu(g: Graph) -> None:
    """Read the relu derivative's mask off the relu's output: 1[z > 0] = 1[relu(z) > 0].
    The pre-activation z then dies with the forward pass instead of living until the
    adjoint (a saving of one activation-sized buffer per layer)."""
    for n in list(g.nx.nodes):
        d = g[n]
        if d["op"] != "gt" or g[d["args"][1]]["op"] != "const" or g[d["args"][1]]["params"]["value"].ndim != 0 \
                or float(g[d["args"][1]]["params"]["value"]) != 0.0:
            continue
        z = d["args"][0]
        relus = [u for u in g.users(z) if g[u]["op"] == "relu" and g[u]["shape"] == g[z]["shape"]]
        if relus:
            a = d["args"]
            g.nx.remove_edge(z, n) if z not in a[1:] else None
            d["args"] = (relus[0],) + a[1:]
            g.nx.add_edge(relus[0], n)


def _is_vector_product(graph, n):
    d = graph[n]
    return d["op"] == "matmul" and min(len(graph[a]["shape"]) for a in d["args"]) == 1


def _is_batched_product(graph, n, library=False):
    """A stack of products to decompose into a fused loop nest: ``library``, one whose
    stacks have the same batch axes stays a product (``is_stack_product``) for a library."""
    d = graph[n]
    return (d["op"] == "matmul" and max(len(graph[a]["shape"]) for a in d["args"]) > 2
            and not is_flat_product(graph, n) and not (library and is_stack_product(graph, n)))


def is_stack_product(graph, n) -> bool:
    """``a @ b`` of two floating-point stacks of matrices with the same batch axes (no
    broadcasting between them): one library call runs the stack (lower_loops.matmul)."""
    d = graph[n]
    if d["op"] != "matmul" or d["dtype"].kind != "f":
        return False
    a, b = (graph[x]["shape"] for x in d["args"])
    return len(a) == len(b) > 2 and tuple(a[:-2]) == tuple(b[:-2]) and 1 not in a[:-2]


def is_flat_product(graph, n) -> bool:
    """``x @ W`` with x of rank 3 or more and W a matrix, in floating point: one matrix
    product over x's leading axes as rows (lower_loops.matmul), not a batch of them."""
    d = graph[n]
    if d["op"] != "matmul" or d["dtype"].kind != "f":
        return False
    a, b = (graph[x]["shape"] for x in d["args"])
    return len(a) > 2 and len(b) == 2


def sort_kinds(native_sort) -> str:
    """The numpy dtype kinds a renderer ranks by the merge sort: ``native_sort`` is
    True (all of them: floats, signed and unsigned integers, bool; generated C and
    ahead-of-time libraries, which compile gradc.h's), False (none), or the kinds
    themselves (the JIT's: what its C extension's gradc_sort_rank has,
    ``llvm_jit.init()["native_sort"]``; "f" from an extension that ranks floats only)."""
    if native_sort is True:
        return "fiub"
    return native_sort or ""


def native_sort_rank(g: Graph, nid: int, native_sort) -> bool:
    """Does node ``nid`` rank by runtime/gradc.h's merge sort (generated C calls it,
    LLVM code through gradc_sort_rank: runtime/sortrank.c in the JIT, its own copy in an
    ahead-of-time library): sort_rank of a dtype the renderer has it for
    (``sort_kinds``)?  Elsewhere its ranks are counted pairwise (``decompose``)."""
    return g[nid]["op"] == "sort_rank" and g[g[nid]["args"][0]]["dtype"].kind in sort_kinds(native_sort)


def decompose(graph: Graph, batched_products: bool = False, native_sort: bool | str = False) -> Graph:
    """Rewrite ops that backends do not lower directly into ones they do:
    logsumexp -> max, exp, sum, log (the stable two-pass formula); sort_rank -> its
    pairwise comparisons counted (``ops.arrays.pairwise_ranks``); matrix-vector,
    vector-matrix and dot products -> element-wise products and sums, so they fuse
    with what produces and consumes them (the neuron loss reads X once); batched
    products (..., m, k) @ (..., k, n) -> a product broadcast over (..., m, k, n) summed
    over k, which fuses into one loop nest (the i-k-j order, vectorized over n) without
    materializing the rank-N product; with ``batched_products`` (a library runs stacks),
    only those whose stacks' batch axes differ; with ``native_sort``, sort_rank stays
    for the dtypes the renderer merge sorts (``native_sort_rank``)."""
    batched = lambda g, n: _is_batched_product(g, n, batched_products)   # noqa: E731
    pairwise = lambda g, n: g[n]["op"] == "sort_rank" and not native_sort_rank(g, n, native_sort)  # noqa: E731
    if not any(graph[n]["op"] == "logsumexp" or pairwise(graph, n) or _is_vector_product(graph, n)
               or batched(graph, n) for n in graph.nx.nodes):
        return graph
    softmax_of = _softmax_of_logsumexp(graph)
    from ..ops import reduce as red, elementwise as ew
    from ..ops.structure import reshape_sym
    from ..tracer import Spec, bind

    shared: dict = {}   # logsumexp node -> its exp(x - max) and their sum (keepdims)

    def lse(nid, x, axes, keepdims):
        # max with initial=-inf: an empty axis gives log(0) = -inf, as numpy's formula does
        m = bind("max", x, axes=axes, keepdims=True, initial=-np.inf)
        ms = ew.where(ew.abs(m) < np.inf, m, 0.0)     # +-inf/nan max -> shift by 0
        e = ew.exp(x - ms)
        s = red.sum_(e, axes, keepdims=True)
        shared[nid] = (e, s)
        r = ew.log(s) + ms
        return r if keepdims else reshape_sym(r, tuple(d for i, d in enumerate(x._shape) if i not in axes))

    def vector_product(a, b):
        if a.ndim == 1 and b.ndim == 1:
            return red.sum_(a * b)
        if a.ndim == 2:   # (m,k) @ (k,): row dot products
            return red.sum_(a * reshape_sym(b, (1, b._shape[0])), axis=1)
        return red.sum_(reshape_sym(a, (a._shape[0], 1)) * b, axis=0)   # (k,) @ (k,n)

    def batched_product(a, b):
        sa, sb = a._shape, b._shape
        prod = reshape_sym(a, sa + (1,)) * reshape_sym(b, sb[:-2] + (1,) + sb[-2:])
        return red.sum_(prod, axis=prod.ndim - 2)

    specs = [Spec.of_node(graph, i) for i in graph.inputs]
    names = [graph[i]["name"] for i in graph.inputs]

    def rewrite(graph, nid, args):
        d = graph[nid]
        if d["op"] == "logsumexp":
            return lse(nid, args[0], d["params"]["axes"], d["params"]["keepdims"])
        if pairwise(graph, nid):        # compared pairwise: the comparisons fuse into the count
            from ..ops.arrays import pairwise_ranks
            return pairwise_ranks(args[0])
        if nid in softmax_of and softmax_of[nid] in shared:
            e, s = shared[softmax_of[nid]]
            return e * (1.0 / s)
        if _is_vector_product(graph, nid) or batched(graph, nid):
            r = (vector_product if _is_vector_product(graph, nid) else batched_product)(*args)
            return r if r.dtype == d["dtype"] else ew.convert(r, d["dtype"])   # (an int32 sum is int64)
        return None

    replayed: dict = {}

    def body(*args):
        env = replay(graph, list(args), rewrite)
        replayed.update(env)
        return tuple(env[o] for o in graph.outputs)

    g, _, _ = trace_specs(body, specs, names, name=graph.name)
    g.output_names = graph.output_names
    g.notes = list(graph.notes)
    apply_rewrites(g, PAST_DIFFERENTIATION)    # a log_softmax's logsumexp reuses its shift's max
    g = optimize(g, stabilize=False)
    old_of: dict = {}
    for old in graph.order():           # a new node takes the number of the first it replays
        if old in replayed:
            old_of.setdefault(replayed[old]._id, old)
    return _renumber(g, old_of, graph._next)


def _softmax_of_logsumexp(graph: Graph) -> dict:
    """{node: logsumexp node} for the nodes ``exp(x - logsumexp(x))`` (the softmax in
    logsumexp's adjoint, over the same axes), which decompose computes as ``exp(x -
    max) * (1 / sum)`` from the logsumexp's own exponentials: one exp per element
    instead of two, and equal to it (both are NaN where a row's max is infinite)."""
    found = {}
    for n in graph.nx.nodes:
        d = graph[n]
        if d["op"] != "exp" or graph[d["args"][0]]["op"] != "sub":
            continue
        x, a = graph[d["args"][0]]["args"]
        while graph[a]["op"] in ("reshape", "broadcast_to"):   # logsumexp's value, row by row
            a = graph[a]["args"][0]
        la = graph[a]
        if (la["op"] == "logsumexp" and la["args"][0] == x and tuple(d["shape"]) == tuple(graph[x]["shape"])
                and d["dtype"] == graph[x]["dtype"]):
            found[n] = a
    return found


def _renumber(g: Graph, old_of: dict, first_new: int) -> Graph:
    """Give the nodes of a retraced graph the numbers of the nodes they replay
    (``old_of``), and the nodes a rewrite made numbers from ``first_new`` on: one
    numbering runs across ``Lowered.graph``, the loop nests, the loop IR and the code."""
    rel, k = {}, first_new
    for n in g.order():
        if n in old_of:
            rel[n] = old_of[n]
        else:
            rel[n], k = k, k + 1
    return g.relabel(rel)


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


def _reads_row_invariant(g: Graph, nid: int, roots: set) -> bool:
    """Does reduction ``nid`` over the inner axis of a 2-d domain read an operand that
    is the same for every row (``w`` in the row dot products of ``X @ w``)?  Then rows
    are worth processing in blocks: one load of that operand serves the whole block.
    (A row-wise softmax reads nothing of the kind, and blocking would only multiply the
    code LLVM compiles: twice the compile time for 5% speed, measured on M5.)"""
    seen = set()

    def walk(n, m):
        if (n, m) in seen or m is None:
            return False
        seen.add((n, m))
        d = g[n]
        if n in roots or d["op"] in ("input", "const"):
            return 1 in m and 0 not in m
        if d["op"] == "count":
            return False
        return any(walk(a, _arg_map(g, n, a, m)) for a in d["args"])
    return walk(g[nid]["args"][0], (0, 1))


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


# ----------------------------------------------------------------------------- row pipelines
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


def _fill_constant_outputs(g: Graph) -> None:
    """A constant output (the zero gradient of an argument the value does not read, a
    folded constant) becomes a copy of itself, ``broadcast_to(c, c.shape)``, which a nest
    stores into the output's buffer: every output is then a buffer the kernel fills or
    a copy of an argument, and the C call path (``Kernel.make_plan``), its hot code and
    the batch split serve the call (a model with a parameter its loss does not read ran
    every call through the Python path)."""
    outs = list(g.outputs)
    for k, o in enumerate(outs):
        d = g[o]
        if d["op"] == "const":
            outs[k] = g.add("broadcast_to", (o,), shape=d["shape"], dtype=d["dtype"],
                            params={"shape": tuple(d["shape"])}, provenance=d.provenance, role=d.role)
    g.outputs[:] = outs


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
                        roots.add(a)
                        changed = True
    # operands of a LAPACK call are whole contiguous buffers (runtime/lapack.c reads them)
    for nid in list(g.nx.nodes):
        if is_lapack(g, nid) or native_sort_rank(g, nid, native_sort):
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
    for nid in g.order():
        if nid not in roots:
            continue
        op = g[nid]["op"]
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
    lapack_args = {a for n in g.nx.nodes if is_lapack(g, n) for a in g[n]["args"]}
    consts = [n for n in g.order() if g[n]["op"] == "const" and (g[n]["params"]["value"].ndim > 0 or n in lapack_args)]
    outs = set(g.outputs)
    local = []
    if row_local:
        for j, nest in enumerate(nests):
            if nest.kind == "loop" and len(nest.domain) == 2:
                local += [n for n in nest.roots if n not in outs and last_use.get(n, j) == j
                          and tuple(g[n]["shape"]) == tuple(nest.domain[:1])]
    workspace = [n for n in g.order() if n in roots and n not in outs and n not in local]
    for nest in nests:
        if nest.kind == "loop" and len(nest.domain) == 2:
            nest.row_block = _row_block(g, nest, roots)
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
    return Schedule(g, nests, roots, list(g.outputs), workspace, symbols, consts, nonempty,
                    threads=chunks, partials=partials, slots=slots, pool_threads=threads, row_local=local,
                    pipelines=pipelines, stream_bytes=last_level_cache_bytes(), in_place=in_place)


ALIGN = 64  # every workspace region starts on a cache line
PACKED_WIDTH = 16   # GRADC_SKINNY_MAX_N: a packed row of a narrow product's operand


def row_stride(block: int, dtype) -> int:
    """Elements between two chunks' blocks of a row-local value: the block rounded up to
    whole cache lines.  Chunks run on different threads at the same time, and two
    blocks in one line would move it between the cores on every block of rows.  (M2 at
    4096x256 on two threads of a Zen 4, where two chunks' blocks of 4 doubles shared a
    line: no difference measured, both kernels alternating in one process; a wider row
    type or a machine with costlier transfers would pay more.)"""
    per_line = ALIGN // np.dtype(dtype).itemsize
    return -(-block // per_line) * per_line


def workspace_layout(s: Schedule) -> list:
    """The workspace's regions in order, the one definition every lowering and caller
    follows.  Each region is a list of (key, shape, dtype): buffers with disjoint
    lifetimes sharing it (key: a node id, ("partial", node) for per-chunk partial
    results of shape (threads,) + shape, ("rows", node) for a row-local value's
    block of rows per chunk, ("sort", node) for a merge sort's scratch row).  A
    region's size is its largest buffer's, rounded up to ALIGN bytes."""
    g = s.graph
    regions = [[(n, g[n]["shape"], g[n]["dtype"]) for n in slot] for slot in s.slots]
    regions += [[(("partial", n), (s.threads,) + tuple(g[n]["shape"]), g[n]["dtype"])] for n in s.partials]
    # row-local values: one row block per chunk (memory, not the stack: LLVM's SROA would
    # turn a stack array into registers, and the block's rows would no longer be
    # consecutive stores for the SLP vectorizer to put in vector lanes)
    blocks = {n: nest.row_block for nest in s.nests for n in nest.roots}
    regions += [[(("rows", n), (s.threads, row_stride(blocks[n], g[n]["dtype"])), g[n]["dtype"])]
                for n in s.row_local]
    # a row pipeline's narrow operand W, packed once per call for the head's blocks
    # (runtime/skinny.c: gradc_skinny_pack, K x 16 elements at most)
    # and the tail's sum, padded to that width, per chunk
    for p in s.pipelines:
        w, x = g[p.head]["args"][1], p.x
        regions.append([(("packed", p.head), (g[w]["shape"][0], PACKED_WIDTH), g[w]["dtype"])])
        regions.append([(("padded", p.tail), (s.threads, g[x]["shape"][1], PACKED_WIDTH), g[x]["dtype"])])
    # a merge sort's second index buffer, one row long (the ranks are the first:
    # gradc.h's gradc_sort_rank_*), so a kernel that sorts allocates nothing
    for nest in s.nests:
        if nest.kind == "sort":
            (nid,) = nest.roots
            regions.append([(("sort", nid), tuple(g[g[nid]["args"][0]]["shape"][-1:]), np.dtype(np.int64))])
    return regions


def workspace_bytes(s: Schedule, sizes: dict) -> int:
    """Bytes of workspace the kernel needs for these run-time sizes."""
    total = 0
    for region in workspace_layout(s):
        biggest = 0
        for _key, shape, dtype in region:
            n = 1
            for x in shape:
                n *= x if isinstance(x, int) else sizes[x]
            biggest = max(biggest, n * np.dtype(dtype).itemsize)
        total += (biggest + ALIGN - 1) & -ALIGN
    return total


def _assign_slots(workspace, where, last_use, candidates):
    """Greedy interval packing: a buffer reuses the memory of one whose last reader ran
    in an earlier nest, or overwrites, element by element, one its own nest reads for
    the last time (``candidates``, see _in_place).  (A slot's size is the largest of
    its buffers, at run time.)  Returns the slots and {node: the buffer it overwrites}."""
    slots, free_after, in_place = [], [], {}
    for n in sorted(workspace, key=lambda n: where[n]):
        start, end = where[n], max(last_use.get(n, where[n]), where[n])
        for k, f in enumerate(free_after):
            over = slots[k][-1] in candidates.get(n, ()) and f == start
            if f < start or over:
                slots[k].append(n)
                free_after[k] = end
                if over:
                    in_place[n] = slots[k][-2]
                break
        else:
            slots.append([n])
            free_after.append(end)
    return slots, in_place


def _in_place(g, nests, where, reads_of, pipelines) -> dict:
    """{n: buffers n may overwrite in place}: n, an element-wise root of a loop nest, may
    take the memory of a buffer r it reads at its own element when nothing reads r after
    n has written that element.  So r has n's shape and dtype, and within n's nest
    every root that reads r (n too) reads it at its own element (the identity index
    map), n in the same pass over a row, the others in an earlier pass (stage) of the
    row or not at all; rows, blocks of rows and threads' chunks never share elements.
    (Readers in later nests are excluded by the caller: r's last reader is n's nest.)
    Writing the softmax of attention's 2048x2048 scores over their exponentials, or a
    layer's backward dZ = dA * (1 - A**2) over dA, one stream of memory instead of two.
    Not in a row pipeline (its products read blocks of rows), nor in a nest whose rows
    run in blocks (Nest.row_block): there LLVM's vectorizer checks at run time that the
    block's rows of the two buffers do not overlap, finds that they do (they are one
    buffer) and runs the scalar loop: a tanh layer beside a softmax head took 1.7 ms
    in place and 0.62 ms not (2048 x 64, one thread)."""
    in_pipe = {j for p in pipelines for j in range(p.first, p.last + 1)}
    out: dict = {}
    for j, nest in enumerate(nests):
        if nest.kind != "loop" or j in in_pipe or nest.row_block > 1:
            continue
        ident = tuple(range(len(nest.domain)))
        for n in nest.roots:
            info = nest.info[n]
            if is_reduction(g, n) or info["level"] != "full" or tuple(g[n]["shape"]) != tuple(nest.domain):
                continue
            for r, m in reads_of[n].items():
                if m != ident or r == n or g[r]["dtype"] != g[n]["dtype"] \
                        or tuple(g[r]["shape"]) != tuple(g[n]["shape"]):
                    continue
                if where.get(r) == j and not nest.info[r]["stage"] < info["stage"]:
                    continue
                readers = [u for u in nest.roots if r in reads_of[u]]
                if all(reads_of[u][r] == ident and nest.info[u]["level"] == "full"
                       and (u == n or nest.info[u]["stage"] < info["stage"]) for u in readers):
                    out.setdefault(n, []).append(r)
    return out


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
