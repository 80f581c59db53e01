"""The numpy evaluator: runs any graph (forward or adjoint) with each op's numpy
reference.  It is the oracle every native backend is tested against, and what
``backend="numpy"`` selects."""
from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np

from .errors import LinAlgError
from .graph import Graph
from .ops import OPS
from .shapes import resolve


def bind_sizes(graph: Graph, arrays) -> dict:
    """Run-time value of every size symbol, read off the input arrays."""
    sizes = {}
    for nid, a in zip(graph.inputs, arrays):
        for d, n in zip(graph[nid].shape, np.shape(a)):
            if isinstance(d, str):
                sizes.setdefault(d, n)
    return sizes


def product_macs(graph: Graph, sizes) -> float:
    """Multiply-adds of the matrix products in ``graph`` at these sizes (m n k each;
    ``sizes`` maps every size symbol of the products to its value)."""
    total = 0.0
    for n in graph.nx.nodes:
        d = graph[n]
        if d["op"] == "matmul":       # the result's elements x the contracted size
            dims = tuple(d["shape"]) + (graph[d["args"][0]]["shape"][-1],)
        elif d["op"] == "contract":   # a's elements x b's columns
            dims = tuple(graph[d["args"][0]]["shape"]) + (graph[d["args"][1]]["shape"][-1],)
        else:
            continue
        macs = 1.0
        for x in dims:
            macs *= x if isinstance(x, int) else sizes[x]
        total += macs
    return total


def _resolve_params(params: dict, sizes: dict) -> dict:
    out = {}
    for k, v in params.items():
        if k == "shape":
            v = resolve(v, sizes)
        out[k] = v
    return out


_hunt = threading.local()


@contextmanager
def hunting_nans():
    """Within the block the evaluator hunts non-finite values (``debug_nans``): an op
    that evaluates a graph of its own (a scan's step) checks that graph's values too
    (``hunting()``)."""
    prev = getattr(_hunt, "on", False)
    _hunt.on = True
    try:
        yield
    finally:
        _hunt.on = prev


def hunting() -> bool:
    return getattr(_hunt, "on", False)


def evaluate(graph: Graph, arrays, *, check=None) -> list[np.ndarray]:
    """Evaluate ``graph`` on numpy arrays; returns the outputs.

    ``check(nid, value)`` is called on every computed node (debug_nans uses it)."""
    sizes = bind_sizes(graph, arrays)
    vals: dict = {}
    for nid, a in zip(graph.inputs, arrays):
        vals[nid] = a
    with np.errstate(all="ignore"):
        for nid in graph.order():
            if nid in vals:
                continue
            d = graph[nid]
            if d.op == "const":
                vals[nid] = d.params["value"]
                continue
            op = OPS[d.op]
            try:
                v = op.numpy(*[vals[a] for a in d.args], **_resolve_params(d.params, sizes))
            except LinAlgError as e:     # a singular matrix: name the op and the user's line
                from .ops.lapack import failure_site
                raise LinAlgError(f"{e} (in {failure_site(d.op, d.provenance)})") from None
            v = np.asarray(v)
            if v.dtype != d.dtype:
                v = v.astype(d.dtype)
            vals[nid] = v
            if check is not None:
                check(nid, v)
    return [np.asarray(vals[o]) for o in graph.outputs]
