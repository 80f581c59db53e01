"""Which nodes of two graphs compute the same value.

An adjoint graph replays the forward graph, so the forward graph's nodes reappear in
it with new ids.  The explainer (reading a gradient in the paper's notation) matches
them up by structure: the same op, parameters and dtype on the same arguments."""
from __future__ import annotations

import numpy as np

from .graph import Graph


def _param_key(v):
    if isinstance(v, np.ndarray):
        return ("arr", v.dtype.str, v.shape, v.tobytes())
    if isinstance(v, (tuple, list)):
        return tuple(_param_key(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _param_key(x)) for k, x in v.items()))
    if isinstance(v, (np.dtype, slice)):
        return repr(v)
    return v


def structural_keys(graph: Graph, intern: dict, transparent=frozenset()) -> dict:
    """{node: small int} equal for nodes computing the same thing from the same inputs
    (inputs by position).  ``add(x, δ)`` with ``δ`` in ``transparent`` keys as ``x``."""
    keys: dict = {}
    pos = {n: k for k, n in enumerate(graph.inputs)}
    for nid in graph.order():
        d = graph[nid]
        op = d.op
        if op == "input":
            k = ("input", pos.get(nid, nid), len(d.shape), d.dtype.str)
        elif op == "const":
            k = ("const", _param_key(d.params["value"]))
        elif op == "add" and len(d.args) == 2 and d.args[1] in transparent:
            keys[nid] = keys[d.args[0]]
            continue
        else:
            k = (op, _param_key(d.params), d.dtype.str, tuple(keys[a] for a in d.args))
        keys[nid] = intern.setdefault(k, len(intern))
    return keys


def forward_match(fwd: Graph, graph: Graph) -> dict:
    """{node of ``fwd``: the forward node of ``graph`` that computes the same value}.

    Adjoint graphs replay the forward graph, so its nodes reappear with new ids; their
    ``d/d %k`` tags number ``fwd``'s nodes."""
    intern: dict = {}
    kf = structural_keys(fwd, intern)
    kg = structural_keys(graph, intern)
    back = {}
    for nid, k in kg.items():
        if graph[nid].role == "forward" or graph[nid].op in ("input", "const"):
            back.setdefault(k, nid)
    return {n: back[k] for n, k in kf.items() if k in back}
