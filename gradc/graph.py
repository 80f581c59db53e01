"""The graph: a ``networkx.DiGraph`` of vector ops, one typed :class:`Node` per node.

A node's record holds ``op`` (a name in the op registry), ``args`` (ordered argument
node ids: a DiGraph cannot hold two edges between one pair, as in ``x * x``, and has no
edge order), ``params`` (a dict of hashable op parameters), ``dtype``, ``shape``
(symbolic, see :mod:`gradc.shapes`), ``provenance`` (a :class:`Provenance`: the user's
line that created it and, for a derivative node, the forward node it differentiates),
``role`` (``"forward"``, ``"adjoint"`` or ``"tangent"``) and ``name`` (an input's).
Edges run from argument to user.

The record is the DiGraph's own node attribute mapping (networkx's
``node_attr_dict_factory``), so ``g.nx.nodes[n]`` and ``g[n]`` are the same object, read
as ``g[n].op`` or, like a dict, ``g[n]["op"]``.
"""
from __future__ import annotations

import heapq
import os
from dataclasses import dataclass, field, fields, replace

import networkx as nx
import numpy as np

from .shapes import Shape, fmt_shape

_DT = {np.dtype("float64"): "f64", np.dtype("float32"): "f32", np.dtype("int64"): "i64",
       np.dtype("bool"): "bool", np.dtype("int32"): "i32"}


def fmt_type(shape: Shape, dtype) -> str:
    return _DT.get(np.dtype(dtype), str(dtype)) + fmt_shape(shape)


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a node comes from.

    ``file``/``line``/``function``: the user's source line (for a derivative node, the
    line of the forward value it differentiates).  ``mode`` is ``None`` for a value the
    user's code computes, ``"adjoint"`` for a node of its reverse-mode derivative and
    ``"tangent"`` for one of its forward-mode derivative; ``of`` is then the forward node
    differentiated, a node id *of the same graph* (kept current when passes replace it
    and when a graph is replayed into another), and ``of_op`` that node's op, shown
    when the node is no longer in the graph."""
    file: str | None = None
    line: int | None = None
    function: str | None = None
    mode: str | None = None
    of: int | None = None
    of_op: str | None = None

    @property
    def where(self) -> str:
        """``model.py:6`` (empty when the line is not known)."""
        if self.file is None:
            return ""
        return f"{os.path.basename(self.file)}:{self.line}"

    def derivative(self, mode: str, of: int, of_op: str) -> "Provenance":
        """The provenance of a node that differentiates the node this one describes."""
        return Provenance(self.file, self.line, self.function, mode, of, of_op)

    def text(self, label=None) -> str:
        """``model.py:6``, ``d/d %12 (model.py:6)`` or ``tangent of %12 (model.py:6)``;
        ``label(of)`` names the differentiated node (None: it is no longer computed, and
        its op is shown instead)."""
        where = self.where
        if self.mode is None:
            return where
        what = label(self.of) if label is not None else (None if self.of is None else f"%{self.of}")
        head = ("d/d " if self.mode == "adjoint" else "tangent of ") + (what or self.of_op or "?")
        return f"{head} ({where})" if where else head

    def __str__(self):
        return self.text()


_FIELDS = ("op", "args", "params", "dtype", "shape", "provenance", "role", "name")
_FIELD_SET = frozenset(_FIELDS)


@dataclass(slots=True, eq=False)
class Node:
    """One node's record.  Read it by attribute (``node.op``) or, as networkx and older
    code do, like a mapping (``node["op"]``, ``node.get("name")``).  The provenance as
    text is :meth:`Graph.source` (it names the differentiated node as the listing does)."""
    op: str = ""
    args: tuple = ()
    params: dict = field(default_factory=dict)
    dtype: np.dtype | None = None
    shape: tuple = ()
    provenance: Provenance | None = None
    role: str = "forward"
    name: str | None = None

    # Unhashable, as a dict is: networkx tells a ``(node, attributes)`` pair from a node
    # by whether the pair can be hashed.
    __hash__ = None

    # -- the mapping view networkx and the code generators read -----------------------
    def __getitem__(self, key: str):
        if key in _FIELD_SET:
            return getattr(self, key)
        raise KeyError(key)

    def __setitem__(self, key: str, value) -> None:
        if key not in _FIELD_SET:
            raise KeyError(f"a graph node has no field {key!r} (fields: {', '.join(_FIELDS)})")
        setattr(self, key, value)

    def get(self, key: str, default=None):
        try:
            v = self[key]
        except KeyError:
            return default
        return default if v is None else v

    def __contains__(self, key) -> bool:
        return key in _FIELD_SET

    def keys(self):
        return _FIELDS

    def __iter__(self):
        return iter(_FIELDS)

    def __len__(self) -> int:
        return len(_FIELDS)

    def items(self):
        return [(k, getattr(self, k)) for k in _FIELDS]

    def update(self, other=(), **kw) -> None:
        if other:
            for k, v in (other.items() if hasattr(other, "items") else other):
                self[k] = v
        for k, v in kw.items():
            self[k] = v

    def copy(self) -> "Node":
        return Node(self.op, self.args, dict(self.params), self.dtype, self.shape,
                    self.provenance, self.role, self.name)


assert tuple(f.name for f in fields(Node)) == _FIELDS


class DAG(nx.DiGraph):
    """A networkx DiGraph whose node attribute mappings are :class:`Node` records."""
    node_attr_dict_factory = Node


class Graph:
    """A traced function: inputs, nodes, outputs.

    ``nx`` is the underlying ``networkx.DiGraph`` (a :class:`DAG`); ``inputs`` and
    ``outputs`` are node ids in order, ``output_names`` their display names;
    ``minimum`` maps size symbols to lower bounds checked at call time, ``example`` to
    the sizes they had when traced; ``notes`` are lines the listing ends with.  These
    are all it holds (``__slots__``): a later stage keeps its own records elsewhere."""

    __slots__ = ("nx", "name", "inputs", "outputs", "output_names", "minimum", "example",
                 "notes", "_next", "_moved")

    def __init__(self, name: str = "f"):
        self.nx = DAG()
        self.name = name
        self.inputs: list[int] = []
        self.outputs: list[int] = []
        self.output_names: list[str] = []
        self.minimum: dict[str, int] = {}
        self.example: dict[str, int] = {}
        self.notes: list[str] = []
        self._next = 0
        # replaced node -> its replacement: what a derivative's ``provenance.of`` follows
        # when a pass has replaced the forward node it names
        self._moved: dict[int, int] = {}

    # -- building ----------------------------------------------------------------
    def add(self, op: str, args=(), *, shape: Shape, dtype, params=None, provenance=None,
            role="forward", name=None) -> int:
        nid = self._next
        self._next += 1
        self.nx.add_node(nid)
        node = self.nx._node[nid]
        node.op, node.args, node.shape, node.dtype = op, tuple(args), tuple(shape), np.dtype(dtype)
        node.params, node.provenance, node.role, node.name = dict(params or {}), provenance, role, name
        for a in set(args):
            self.nx.add_edge(a, nid)
        return nid

    # Node data through the DiGraph's own dicts (``_node``, ``_succ``, ``_pred``, the
    # storage networkx's views wrap): compiling a model reads node data thousands of
    # times, and the views' lookups were a tenth of a cached first call.
    def __getitem__(self, nid: int) -> Node:
        return self.nx._node[nid]

    def __len__(self):
        return self.nx.number_of_nodes()

    def order(self) -> list[int]:
        """Nodes in a topological order (stable: ties broken by creation order).

        The same order as ``nx.lexicographical_topological_sort`` (Kahn's algorithm,
        smallest ready node first), written out because compilation calls it dozens of
        times and the generic version was a fifth of a cached first call."""
        succ = self.nx._succ
        indegree = {n: len(p) for n, p in self.nx._pred.items()}
        ready = [n for n, k in indegree.items() if k == 0]
        heapq.heapify(ready)
        out = []
        while ready:
            n = heapq.heappop(ready)
            out.append(n)
            for s in succ[n]:
                indegree[s] -= 1
                if indegree[s] == 0:
                    heapq.heappush(ready, s)
        if len(out) != len(indegree):
            raise nx.NetworkXUnfeasible("graph contains a cycle")
        return out

    def users(self, nid: int) -> list[int]:
        return list(self.nx._succ[nid])

    def reachable(self, starts, forward: bool = True) -> set:
        """``starts`` and every node reachable from them along the edges (``forward``)
        or against them: what ``nx.descendants``/``nx.ancestors`` give, without
        networkx's dispatch layer."""
        adj = self.nx._succ if forward else self.nx._pred
        seen = set(starts)
        todo = list(seen)
        while todo:
            for m in adj[todo.pop()]:
                if m not in seen:
                    seen.add(m)
                    todo.append(m)
        return seen

    def copy(self) -> "Graph":
        g = Graph(self.name)
        g.nx.add_nodes_from(self.nx._node)
        records = g.nx._node
        for n, d in self.nx._node.items():
            records[n] = d.copy()
        g.nx.add_edges_from(self.nx.edges)
        for attr in ("inputs", "outputs", "output_names", "notes"):
            setattr(g, attr, list(getattr(self, attr)))
        g.minimum = dict(self.minimum)
        g.example = dict(self.example)
        g._moved = dict(self._moved)
        g._next = self._next
        return g

    def relabel(self, mapping: dict) -> "Graph":
        """A copy with node ``n`` numbered ``mapping.get(n, n)`` wherever it is named: its
        users' arguments, the inputs and outputs, and derivative nodes' provenance (use
        this, not ``networkx.relabel_nodes``, so ``d/d %k`` stays right)."""
        def new(n):
            return mapping.get(n, n)
        ids = [new(n) for n in self.nx._node]
        if len(set(ids)) != len(ids):
            raise ValueError("relabel: two nodes would get one number")
        g = Graph(self.name)
        g.nx.add_nodes_from(ids)
        records = g.nx._node
        for n, d in self.nx._node.items():
            r = d.copy()
            r.args = tuple(new(a) for a in d.args)
            p = r.provenance
            if p is not None and p.of is not None:
                k = self.resolve(p.of)
                r.provenance = replace(p, of=None if k is None else new(k))
            records[new(n)] = r
        g.nx.add_edges_from((new(u), new(v)) for u, v in self.nx.edges)
        g.inputs, g.outputs = [new(n) for n in self.inputs], [new(n) for n in self.outputs]
        g.output_names, g.notes = list(self.output_names), list(self.notes)
        g.minimum, g.example = dict(self.minimum), dict(self.example)
        g._next = max([self._next - 1] + ids) + 1
        return g

    def replace_uses(self, old: int, new: int) -> None:
        """Point every user of ``old`` (and the outputs, and derivative nodes' provenance)
        at ``new``."""
        if old == new:
            return
        for u in list(self.nx.successors(old)):
            d = self.nx._node[u]
            d.args = tuple(new if a == old else a for a in d.args)
            self.nx.remove_edge(old, u)
            self.nx.add_edge(new, u)
        self.outputs = [new if o == old else o for o in self.outputs]
        self._moved[old] = new

    def remove(self, nid: int) -> None:
        self.nx.remove_node(nid)

    # -- provenance ------------------------------------------------------------------
    def differentiates(self, nid: int) -> int | None:
        """The node of this graph that derivative node ``nid`` differentiates (following
        replacements by passes), or None (not a derivative node, or that value is no
        longer computed here)."""
        p = self.nx._node[nid].provenance
        if p is None or p.of is None:
            return None
        return self.resolve(p.of)

    def resolve(self, nid: int) -> int | None:
        """``nid`` if it is a node of this graph, else what replaced it (None if nothing)."""
        seen = 0
        while nid not in self.nx._node:
            nid = self._moved.get(nid)
            seen += 1
            if nid is None or seen > len(self._moved):
                return None
        return nid

    def source(self, nid: int) -> str:
        """Node ``nid``'s provenance as every listing prints it: ``model.py:6``, or for a
        derivative node ``d/d %12 (model.py:6)`` with ``%12`` labelled as in this graph
        (the differentiated op's name when that value is no longer computed here)."""
        p = self.nx._node[nid].provenance
        if p is None:
            return ""
        if p.mode is None:
            return p.where
        return p.text(lambda k: self._label_of(self.resolve(k)) if k is not None else None)

    def _label_of(self, nid):
        if nid is None:
            return None
        d = self.nx._node[nid]
        if d.op == "const":            # folded to a constant: name the op it was
            return None
        return self.label(nid)

    # -- showing -------------------------------------------------------------------
    def label(self, nid: int) -> str:
        d = self.nx._node[nid]
        if d.op == "const" and d.params["value"].ndim == 0:
            return _fmt_const(d.params["value"])
        if d.op == "input" or d.name:
            return d.name or f"%{nid}"
        return f"%{nid}"

    def expr(self, nid: int) -> str:
        """One node as an expression over its arguments' labels."""
        d = self.nx._node[nid]
        op, params = d.op, d.params
        if op == "const":
            v = params["value"]
            return _fmt_const(v)
        args = " ".join(self.label(a) for a in d.args)
        shown = {k: v for k, v in params.items() if k != "value"}
        ps = "".join(f" {k}={_fmt_param(v)}" for k, v in sorted(shown.items()))
        return f"{op} {args}{ps}".rstrip()

    def __str__(self) -> str:
        return self.text()

    def text(self, sources: bool = True) -> str:
        """The listing; ``sources=False`` leaves out the user's source lines (what the
        compiled code depends on: cache keys must not change when a comment moves)."""
        ins = ", ".join(f"{self.label(i)}: {fmt_type(self[i].shape, self[i].dtype)}"
                        for i in self.inputs)
        outs = ", ".join(fmt_type(self[o].shape, self[o].dtype) for o in self.outputs)
        lines = [f"graph {self.name}({ins}) -> ({outs})"]
        role = "forward"
        for nid in self.order():
            d = self[nid]
            if d.op == "input" or (d.op == "const" and d.params["value"].ndim == 0):
                continue
            if d.role != role:
                role = d.role
                lines.append(f"  # -- {role} --")
            lhs = self.label(nid)
            t = fmt_type(d.shape, d.dtype)
            src = self.source(nid) if sources else ""
            src = f"    # {src}" if src else ""
            lines.append(f"  {lhs:>6} = {self.expr(nid):<40} : {t}{src}")
        names = self.output_names or [""] * len(self.outputs)
        rets = ", ".join((f"{n}=" if n else "") + self.label(o) for n, o in zip(names, self.outputs))
        lines.append(f"  return {rets}")
        for k, v in sorted(self.minimum.items()):
            lines.append(f"  # requires {k} >= {v}")
        for note in self.notes:
            lines.append(f"  # note: {note}")
        if sources:     # the graphs ops hold (a scan's step), for the reader; keys hash them apart
            shown = {}
            for nid in self.order():
                for v in self[nid].params.values():
                    sub = getattr(v, "graph", None)
                    if isinstance(sub, Graph):
                        shown.setdefault(repr(v), sub)
            for label, sub in shown.items():
                lines.append(f"  # {label}, the step:")
                lines += ["  #   " + line for line in sub.text().splitlines()]
        return "\n".join(lines)

    def to_dot(self) -> str:
        """Graphviz DOT: inputs as boxes, adjoint nodes shaded, edges labelled by
        position; each node's label ends with its provenance as the listing prints it."""
        out = [f'digraph "{self.name}" {{', "  rankdir=TB;", '  node [fontname="monospace"];']
        for nid in self.order():
            d = self[nid]
            t = fmt_type(d.shape, d.dtype)
            if d.op == "const" and d.params["value"].ndim == 0 and nid not in self.outputs:
                continue
            if d.op == "input":
                attrs = f'shape=box, label="{self.label(nid)}\\n{t}"'
            else:
                fill = {"adjoint": "#fde2c8", "tangent": "#d8ecff"}.get(d.role, "#ffffff")
                txt = self.expr(nid).replace('"', "'")
                src = self.source(nid).replace('"', "'")
                src = f"\\n# {src}" if src else ""
                attrs = (f'shape=ellipse, style=filled, fillcolor="{fill}", '
                         f'label="{self.label(nid)} = {txt}\\n{t}{src}"')
            out.append(f"  n{nid} [{attrs}];")
            for pos, a in enumerate(d.args):
                if self[a].op == "const" and self[a].params["value"].ndim == 0 and a not in self.outputs:
                    continue
                lab = f' [label="{pos}"]' if len(d.args) > 1 else ""
                out.append(f"  n{a} -> n{nid}{lab};")
        names = self.output_names or []
        for k, o in enumerate(self.outputs):
            name = names[k] if k < len(names) and names[k] else f"out{k}"
            out.append(f'  out{k} [shape=doublecircle, label="{name}"];')
            out.append(f"  n{o} -> out{k};")
        out.append("}")
        return "\n".join(out)


def _fmt_param(v) -> str:
    if isinstance(v, tuple):
        return "(" + ",".join(_fmt_param(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    if isinstance(v, slice):
        return f"{'' if v.start is None else v.start}:{'' if v.stop is None else v.stop}" + (
            "" if v.step in (None, 1) else f":{v.step}")
    if isinstance(v, np.dtype):
        return _DT.get(v, str(v))
    return str(v)


def _fmt_const(v: np.ndarray) -> str:
    if v.ndim == 0:
        x = v.item()
        return f"{x:g}" if isinstance(x, float) else str(x)
    if v.size <= 4:
        return "const " + np.array2string(v, separator=",").replace("\n", "")
    return f"const <{v.dtype}{list(v.shape)}>"
