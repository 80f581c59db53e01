"""backend="numpy": run the graph with the numpy evaluator."""
from __future__ import annotations

import numpy as np

from ..errors import NonFiniteError
from ..evaluate import evaluate
from ..graph import Graph


def nan_checker(graph: Graph):
    """A check(nid, value) that raises on the first non-finite node value."""
    def check(nid, v):
        if v.dtype.kind == "f" and not np.all(np.isfinite(v)):
            d = graph[nid]
            bad = np.argwhere(~np.isfinite(np.atleast_1d(v)))[0]
            what = "nan" if np.isnan(np.atleast_1d(v)[tuple(bad)]) else "inf"
            where = f" at index {tuple(int(i) for i in bad)}" if v.ndim else ""
            raise NonFiniteError(
                f"{d['role']} node {graph.label(nid)} = {graph.expr(nid)} produced {what}{where}"
                + (f"; created at {d['src']}" if d.get("src") else ""))
    return check


def compile(graph: Graph, *, debug_nans=False):
    check = nan_checker(graph) if debug_nans else None

    def run(arrays):
        if check is not None:
            for nid, a in zip(graph.inputs, arrays):
                if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                    raise NonFiniteError(f"argument {graph[nid]['name']} contains non-finite values")
        return evaluate(graph, arrays, check=check)
    return run
