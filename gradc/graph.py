"""The graph: a ``networkx.DiGraph`` of vector ops.

Each node carries ``op`` (a name in the op registry), ``args`` (ordered argument node
ids: a DiGraph cannot hold two edges between one pair, as in ``x * x``, and has no edge
order), ``shape`` (symbolic, see :mod:`gradc.shapes`), ``dtype``, ``params`` (a dict of
hashable op parameters), ``src`` (the user's source line that created it) and ``role``
(``"forward"``, ``"adjoint"`` or ``"tangent"``).  Edges run from argument to user.
"""
from __future__ import annotations

import heapq

import networkx as nx
import numpy as np

from .shapes import Shape, fmt_shape

_DT = {np.dtype("float64"): "f64", np.dtype("float32"): "f32", np.dtype("int64"): "i64",
       np.dtype("bool"): "bool", np.dtype("int32"): "i32"}


def fmt_type(shape: Shape, dtype) -> str:
    return _DT.get(np.dtype(dtype), str(dtype)) + fmt_shape(shape)


class Graph:
    """A traced function: inputs, nodes, outputs.

    ``nx`` is the underlying ``networkx.DiGraph``.  ``inputs`` and ``outputs`` are node
    ids in order; ``minimum`` maps size symbols to lower bounds checked at call time.
    """

    def __init__(self, name: str = "f"):
        self.nx = nx.DiGraph()
        self.name = name
        self.inputs: list[int] = []
        self.outputs: list[int] = []
        self.output_names: list[str] = []
        self.minimum: dict[str, int] = {}
        self.notes: list[str] = []
        self._next = 0

    # -- building ----------------------------------------------------------------
    def add(self, op: str, args=(), *, shape: Shape, dtype, params=None, src=None,
            role="forward", name=None) -> int:
        nid = self._next
        self._next += 1
        self.nx.add_node(nid, op=op, args=tuple(args), shape=tuple(shape),
                         dtype=np.dtype(dtype), params=dict(params or {}), src=src,
                         role=role, name=name)
        for a in set(args):
            self.nx.add_edge(a, nid)
        return nid

    # Node data through the DiGraph's own dicts (``_node``, ``_succ``, ``_pred``, the
    # storage networkx's views wrap): compiling a model reads node data thousands of
    # times, and the views' lookups were a tenth of a cached first call.
    def node(self, nid: int) -> dict:
        return self.nx._node[nid]

    def __getitem__(self, nid: int) -> dict:
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
        g.nx = self.nx.copy()
        for attr in ("inputs", "outputs", "output_names", "notes"):
            setattr(g, attr, list(getattr(self, attr)))
        g.minimum = dict(self.minimum)
        g._next = self._next
        return g

    def replace_uses(self, old: int, new: int) -> None:
        """Point every user of ``old`` (and the outputs) at ``new``."""
        if old == new:
            return
        for u in list(self.nx.successors(old)):
            d = self.nx._node[u]
            d["args"] = tuple(new if a == old else a for a in d["args"])
            self.nx.remove_edge(old, u)
            self.nx.add_edge(new, u)
        self.outputs = [new if o == old else o for o in self.outputs]

    def remove(self, nid: int) -> None:
        self.nx.remove_node(nid)

    # -- showing -------------------------------------------------------------------
    def label(self, nid: int) -> str:
        d = self.nx._node[nid]
        if d["op"] == "const" and d["params"]["value"].ndim == 0:
            return _fmt_const(d["params"]["value"])
        if d["op"] == "input" or d.get("name"):
            return d["name"] or f"%{nid}"
        return f"%{nid}"

    def expr(self, nid: int) -> str:
        """One node as an expression over its arguments' labels."""
        d = self.nx._node[nid]
        op, params = d["op"], d["params"]
        if op == "const":
            v = params["value"]
            return _fmt_const(v)
        args = " ".join(self.label(a) for a in d["args"])
        shown = {k: v for k, v in params.items() if k != "value"}
        ps = "".join(f" {k}={_fmt_param(v)}" for k, v in sorted(shown.items()))
        return f"{op} {args}{ps}".rstrip()

    def __str__(self) -> str:
        return self.text()

    def text(self, sources: bool = True) -> str:
        """The listing; ``sources=False`` leaves out the user's source lines (what the
        compiled code depends on: cache keys must not change when a comment moves)."""
        ins = ", ".join(f"{self.label(i)}: {fmt_type(self[i]['shape'], self[i]['dtype'])}"
                        for i in self.inputs)
        outs = ", ".join(fmt_type(self[o]["shape"], self[o]["dtype"]) for o in self.outputs)
        lines = [f"graph {self.name}({ins}) -> ({outs})"]
        role = "forward"
        for nid in self.order():
            d = self[nid]
            if d["op"] == "input" or (d["op"] == "const" and d["params"]["value"].ndim == 0):
                continue
            if d["role"] != role:
                role = d["role"]
                lines.append(f"  # -- {role} --")
            lhs = self.label(nid)
            t = fmt_type(d["shape"], d["dtype"])
            src = f"    # {d['src']}" if sources and d.get("src") else ""
            lines.append(f"  {lhs:>6} = {self.expr(nid):<40} : {t}{src}")
        names = self.output_names or [""] * len(self.outputs)
        rets = ", ".join((f"{n}=" if n else "") + self.label(o) for n, o in zip(names, self.outputs))
        lines.append(f"  return {rets}")
        for k, v in sorted(self.minimum.items()):
            lines.append(f"  # requires {k} >= {v}")
        for note in self.notes:
            lines.append(f"  # note: {note}")
        return "\n".join(lines)

    def to_dot(self) -> str:
        """Graphviz DOT: inputs as boxes, adjoint nodes shaded, edges labelled by position."""
        out = [f'digraph "{self.name}" {{', "  rankdir=TB;", '  node [fontname="monospace"];']
        for nid in self.order():
            d = self[nid]
            t = fmt_type(d["shape"], d["dtype"])
            if d["op"] == "const" and d["params"]["value"].ndim == 0 and nid not in self.outputs:
                continue
            if d["op"] == "input":
                attrs = f'shape=box, label="{self.label(nid)}\\n{t}"'
            else:
                fill = {"adjoint": "#fde2c8", "tangent": "#d8ecff"}.get(d["role"], "#ffffff")
                txt = self.expr(nid).replace('"', "'")
                attrs = f'shape=ellipse, style=filled, fillcolor="{fill}", label="{self.label(nid)} = {txt}\\n{t}"'
            out.append(f"  n{nid} [{attrs}];")
            for pos, a in enumerate(d["args"]):
                if self[a]["op"] == "const" and self[a]["params"]["value"].ndim == 0 and a not in self.outputs:
                    continue
                lab = f' [label="{pos}"]' if len(d["args"]) > 1 else ""
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
