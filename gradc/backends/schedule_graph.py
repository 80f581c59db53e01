"""Graph rewrites before scheduling.  decompose() turns the ops backends do not lower
directly (logsumexp, sort_rank ranked pairwise, matrix-vector and batched products)
into ones they do, and renumbers the retraced graph so one numbering runs from the
lowered graph to the code; the relu derivative's mask and constant outputs are
rewritten in place.  Also here: which products stay library calls
(is_stack_product, is_flat_product) and which sorts a renderer runs natively
(sort_kinds, native_sort_rank).  schedule.schedule() runs these first; they are a
module of their own so the scheduler's file stays readable."""
from __future__ import annotations

import numpy as np

from ..graph import Graph
from ..tracer import replay, trace_specs
from ..passes import PAST_DIFFERENTIATION, optimize, rewrite as apply_rewrites


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
