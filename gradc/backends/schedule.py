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

from dataclasses import dataclass, field

import numpy as np

from ..graph import Graph
from ..ops import OPS
from ..tracer import Builder, current, replay, trace
from ..passes import optimize

VIEW_OPS = {"transpose", "broadcast_to", "reshape", "slice"}
INLINE_OPS = VIEW_OPS | {"unslice", "gather", "iota", "count", "concatenate"}
ROOT_OPS = {"sum", "max", "min", "matmul", "scatter_add"}


@dataclass
class Nest:
    kind: str                 # "loop" | "matmul" | "scatter"
    domain: tuple             # symbolic iteration space
    roots: list = field(default_factory=list)


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


def decompose(graph: Graph) -> Graph:
    """Rewrite ops that backends do not lower directly into ones they do
    (logsumexp -> max, exp, sum, log: the stable two-pass formula)."""
    if not any(graph[n]["op"] == "logsumexp" for n in graph.nx.nodes):
        return graph
    from ..ops import reduce as red, elementwise as ew
    from ..ops.structure import reshape_sym
    from ..tracer import Spec

    def lse(x, axes, keepdims):
        m = red.max_(x, axes, keepdims=True)
        ms = ew.where(ew.abs(m) < np.inf, m, 0.0)     # +-inf/nan max -> shift by 0
        s = red.sum_(ew.exp(x - ms), axes, keepdims=True)
        r = ew.log(s) + ms
        return r if keepdims else reshape_sym(r, tuple(d for i, d in enumerate(x._shape) if i not in axes))

    from ..tracer import Value, bind
    import contextlib

    specs = [Spec.of_node(graph, i) for i in graph.inputs]
    names = [graph[i]["name"] for i in graph.inputs]

    def body(*args):
        from .. import tracer
        b = current()
        env = {}
        for nid, a in zip(graph.inputs, args):
            env[nid] = a
        symmap = {}
        for nid in graph.order():
            d = graph[nid]
            if nid in env:
                continue
            if d["op"] == "const":
                env[nid] = b.const(d["params"]["value"])
                continue
            b.role, b.src_override = d["role"], d.get("src")
            if d["op"] == "logsumexp":
                env[nid] = lse(env[d["args"][0]], d["params"]["axes"], d["params"]["keepdims"])
            else:
                env[nid] = bind(d["op"], *[env[a] for a in d["args"]], **d["params"])
        return tuple(env[o] for o in graph.outputs)

    g, _, _ = trace(body, specs, names, name=graph.name)
    g.output_names = graph.output_names
    g.notes = list(graph.notes)
    return optimize(g, stabilize=False)


def _is_viewable(g: Graph, nid: int, roots: set) -> bool:
    """Can a matrix product read this node from memory through strides?"""
    d = g[nid]
    if nid in roots or d["op"] in ("input", "const"):
        return True
    if d["op"] == "transpose" or (d["op"] == "reshape" and _only_unit_dims(g, nid)) or \
            d["op"] == "broadcast_to":
        return _is_viewable(g, d["args"][0], roots)
    return False


def _only_unit_dims(g, nid):
    d = g[nid]
    a = g[d["args"][0]]
    return [x for x in a["shape"] if x != 1] == [x for x in d["shape"] if x != 1]


def domain(g: Graph, nid: int) -> tuple:
    d = g[nid]
    if d["op"] in ("sum", "max", "min"):
        return g[d["args"][0]]["shape"]
    if d["op"] == "scatter_add":
        return g[d["args"][0]]["shape"]
    return d["shape"]


def _reads(g: Graph, nid: int, roots: set, dom: tuple):
    """Materialized nodes read by root ``nid``'s expression, with whether each is read at
    the root's own index (so it may be computed earlier in the same loop body)."""
    out = {}
    d = g[nid]
    start = d["args"]
    if d["op"] == "matmul":
        # a matrix product reads whole operands
        for a in start:
            for r, _ in _walk(g, a, roots, dom, False).items():
                out[r] = False
        return out
    for pos, a in enumerate(start):
        ident = d["op"] in ("sum", "max", "min") and pos == 0 or \
            (OPS[d["op"]].kind == "elementwise" and g[a]["shape"] == dom)
        if d["op"] == "scatter_add" and pos == 0:
            ident = g[a]["shape"] == dom
        for r, f in _walk(g, a, roots, dom, ident).items():
            out[r] = out.get(r, True) and f
    return out


def _walk(g, nid, roots, dom, ident):
    d = g[nid]
    if nid in roots or d["op"] in ("input", "const"):
        return {nid: ident} if nid in roots else {}
    out = {}
    for a in d["args"]:
        same = ident and OPS[d["op"]].kind == "elementwise" and g[a]["shape"] == dom
        for r, f in _walk(g, a, roots, dom, same).items():
            out[r] = out.get(r, True) and f
    return out


def schedule(graph: Graph) -> Schedule:
    g = decompose(graph)
    roots = set()
    for nid in g.nx.nodes:
        if g[nid]["op"] in ROOT_OPS:
            roots.add(nid)
    for o in g.outputs:
        roots.add(o)  # outputs that are inputs or constants are copied by the caller
    # operands of a matrix product must be in memory
    changed = True
    while changed:
        changed = False
        for nid in list(g.nx.nodes):
            if g[nid]["op"] == "matmul":
                for a in g[nid]["args"]:
                    if not _is_viewable(g, a, roots):
                        roots.add(a)
                        changed = True
    roots = {r for r in roots if g[r]["op"] not in ("input", "const")}
    nests: list[Nest] = []
    where: dict = {}
    for nid in g.order():
        if nid not in roots:
            continue
        op = g[nid]["op"]
        dom = domain(g, nid)
        kind = {"matmul": "matmul", "scatter_add": "scatter"}.get(op, "loop")
        lb = 0
        for r, ident in _reads(g, nid, roots, dom).items():
            j = where[r]
            same_ok = ident and kind == "loop" and nests[j].kind == "loop" and \
                g[r]["op"] not in ("sum", "max", "min") and nests[j].domain == dom
            lb = max(lb, j if same_ok else j + 1)
        target = None
        if kind == "loop":
            for j in range(lb, len(nests)):
                if nests[j].kind == "loop" and nests[j].domain == dom:
                    target = j
                    break
        if target is None:
            nests.append(Nest(kind, dom))
            target = len(nests) - 1
        nests[target].roots.append(nid)
        where[nid] = target
    symbols = sorted({s for n in g.nx.nodes for s in g[n]["shape"] if isinstance(s, str)}
                     | {s for i in g.inputs for s in g[i]["shape"] if isinstance(s, str)})
    consts = [n for n in g.order() if g[n]["op"] == "const" and g[n]["params"]["value"].ndim > 0]
    outs = set(g.outputs)
    workspace = [n for n in g.order() if n in roots and n not in outs]
    nonempty = [(n, g[n]["params"]["axes"]) for n in g.nx.nodes if g[n]["op"] in ("max", "min")]
    return Schedule(g, nests, roots, list(g.outputs), workspace, symbols, consts, nonempty)


def describe(s: Schedule) -> str:
    """A readable listing of the loop nests (what `.lower()` shows)."""
    from ..shapes import fmt_shape
    lines = []
    for k, n in enumerate(s.nests):
        roots = ", ".join(f"{s.graph.label(r)}={s.graph[r]['op']}" for r in n.roots)
        lines.append(f"nest {k}: {n.kind} over {fmt_shape(n.domain)}: {roots}")
    return "\n".join(lines)
