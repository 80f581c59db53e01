"""backend="numpy": run the graph with the numpy evaluator.

It is also the checked mode (``debug_nans``) of every backend: the native backends fall
back to it, and it names the first node whose value is not finite, with the user's line
read off the node's provenance."""
from __future__ import annotations

import numpy as np

from ..errors import NonFiniteError
from ..evaluate import evaluate, hunting_nans
from ..graph import Graph


def _at(x, idx, shape):
    """Operand ``x`` (broadcast to the node's ``shape``) at index ``idx``, as text."""
    try:
        e = np.broadcast_to(np.asarray(x), shape)[idx]
    except (IndexError, TypeError, ValueError):
        return None
    return str(bool(e)) if e.dtype == np.bool_ else f"{e:.6g}"


def describe_nonfinite(graph: Graph, nid: int, v: np.ndarray, vals: dict | None = None) -> str:
    """The message of a :class:`NonFiniteError` for node ``nid`` of ``graph``: the node,
    what it produced where, the user's line that created it, and for an adjoint node the
    forward node it differentiates."""
    d = graph[nid]
    flat = np.atleast_1d(v)
    bad = tuple(int(i) for i in np.argwhere(~np.isfinite(flat))[0])
    what = "nan" if np.isnan(flat[bad]) else ("inf" if flat[bad] > 0 else "-inf")
    where = f" at index {bad}" if v.ndim else ""
    msg = f"{d.role} node {graph.label(nid)} = {graph.expr(nid)} produced {what}{where}"
    if vals is not None and d.args:
        shown = []
        for a in d.args:
            if a not in vals or (graph[a].op == "const" and np.ndim(vals[a]) == 0):
                continue
            t = _at(vals[a], bad if v.ndim else (), v.shape)
            if t is not None:
                shown.append(f"{graph.label(a)} = {t}")
        if shown:
            msg += f" (operands there: {', '.join(shown)})"
    p = d.provenance
    at = f" created at {p.where}" if p is not None and p.where else ""
    if p is not None and p.mode is not None:
        verb = "differentiates" if p.mode == "adjoint" else "is the tangent of"
        k = graph.differentiates(nid)
        if k is not None and graph[k].op == "input":
            msg += f"; it {verb} argument {graph.label(k)}"
        elif k is not None and graph[k].op != "const":
            msg += f"; it {verb} {graph.label(k)} = {graph.expr(k)}{at}"
        else:
            msg += f"; it {verb} a {p.of_op}{at} (a value this graph does not compute)"
    elif at:
        msg += ";" + at
    return msg


class _Found(Exception):
    def __init__(self, nid, value):
        self.nid, self.value = nid, value


def _first_nonfinite(nid, v):
    if v.dtype.kind == "f" and not np.all(np.isfinite(v)):
        raise _Found(nid, v)


def evaluate_checked(graph: Graph, arrays, prefix: str = "") -> list:
    """``evaluate`` hunting non-finite values: raises NonFiniteError (its message after
    ``prefix``) at the first node in execution order whose value is not finite; graphs
    an op evaluates (a loop's step) are checked too (``evaluate.hunting_nans``)."""
    try:
        with hunting_nans():
            return evaluate(graph, arrays, check=_first_nonfinite)
    except _Found as f:
        found = f
    # Only on failure: evaluate again recording every value, to show the operands.
    vals = dict(zip(graph.inputs, arrays))
    vals.update((n, graph[n].params["value"]) for n in graph.nx if graph[n].op == "const")
    evaluate(graph, arrays, check=vals.__setitem__)
    raise NonFiniteError(prefix + describe_nonfinite(graph, found.nid, found.value, vals)) from None


def compile(graph: Graph, *, debug_nans=False):
    if not debug_nans:
        def run(arrays):
            return evaluate(graph, arrays)
        return run

    def run(arrays):
        for nid, a in zip(graph.inputs, arrays):
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                bad = tuple(int(i) for i in np.argwhere(~np.isfinite(np.atleast_1d(a)))[0])
                where = f" (first at index {bad})" if a.ndim else ""
                raise NonFiniteError(f"argument {graph[nid].name} contains non-finite values{where}")
        return evaluate_checked(graph, arrays)
    run.debug_nans = True
    return run
