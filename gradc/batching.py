"""Batching: the graph transformation behind ``gradc.vmap``.

A function is traced once for one example (its arguments without the mapped axis); the
graph is then replayed into the current trace for a batch of examples.  A node none of
whose operands depends on the batch is replayed as it is (a weight's transpose is
computed once, not once per example); any other node becomes its op's ``batch`` rule
(the op's block in ``gradc/ops``), which computes the op for every example at once,
with the batch as the result's leading axis: an element-wise op broadcasts, a reduction
moves its axes by one, a matrix product becomes a stack of products or a product with
more rows, a gather reads each example's row.  The result is ordinary primitives, so a
vmapped function differentiates, optimizes and compiles like any other, and vmap of a
gradient (per-example gradients) batches the adjoint graph's ops too.
"""
from __future__ import annotations

from dataclasses import replace

from .errors import ShapeError, UnsupportedError
from .graph import Graph
from .ops import OPS
from .tracer import bind, current, provenance, subst_params, to_value


def batch_replay(graph: Graph, args: list, batched: list[bool], n) -> list[tuple]:
    """Replay ``graph`` (traced for one example) into the current trace for ``n``
    examples.  ``args`` are its inputs; ``batched[i]``: input i has the batch as a new
    leading axis (the others are shared by every example).  Returns ``(value, batched)``
    per output of the graph."""
    b = current()
    symmap: dict = {}
    env: dict = {}
    for nid, a, bt in zip(graph.inputs, args, batched, strict=True):
        v = to_value(a, b)
        d = graph[nid]
        if v.dtype != d.dtype:
            v = bind("cast", v, dtype=d.dtype)
        shape = v._shape[1:] if bt else v._shape
        if len(d.shape) != len(shape):
            raise ShapeError(f"vmap: {d.name} expects rank {len(d.shape)} per example, got {len(shape)}")
        for gd, vd in zip(d.shape, shape):
            if isinstance(gd, int):
                b.env.equal(vd, gd, f"vmap: {d.name}")
            elif gd in symmap:
                symmap[gd] = b.env.equal(symmap[gd], vd, f"vmap: {d.name}")
            else:
                symmap[gd] = vd
        env[nid] = (v, bt)
    for s, k in graph.minimum.items():
        if s in symmap:
            b.env.at_least(symmap[s], k)
    for nid in graph.order():
        if nid in env:
            continue
        d = graph[nid]
        if d.op == "const":
            env[nid] = (b.const(d.params["value"]), False)
            continue
        operands = [env[a] for a in d.args]
        params = subst_params(d.params, symmap)
        prov = d.provenance
        if prov is not None and prov.mode:     # a derivative node: what it differentiates, here
            of = graph.differentiates(nid)
            prov = replace(prov, of=env[of][0]._id if of in env else None)
        prev_role = b.role
        if d.role != "forward":        # a derivative's node stays one (Graph listings, explain)
            b.role = d.role
        try:
            with provenance(prov):
                env[nid] = _batch_node(d.op, operands, params, n)
        finally:
            b.role = prev_role
    return [env[o] for o in graph.outputs]


def _batch_node(opname: str, operands: list[tuple], params: dict, n) -> tuple:
    vals = [v for v, _ in operands]
    batched = [bt for _, bt in operands]
    if not any(batched):
        return bind(opname, *vals, **params), False
    rule = OPS[opname].batch
    if rule is None:
        raise UnsupportedError(f"vmap: the op {opname} has no batching rule")
    out = rule(n, vals, batched, **params)
    return out, True
