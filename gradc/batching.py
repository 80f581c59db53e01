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

from .errors import GradcError, UnsupportedError
from .graph import Graph
from .ops import OPS
from .ops.collectives import batch_named
from .tracer import bind, current, match_inputs, provenance, subst_params, to_value


def batch_replay(graph: Graph, args: list, batched: list[bool], n, axis_name=None) -> list[tuple]:
    """Replay ``graph`` (traced for one example) into the current trace for ``n``
    examples.  ``args`` are its inputs; ``batched[i]``: input i has the batch as a new
    leading axis (the others are shared by every example).  ``axis_name``: the vmap's
    name for the batch, which its collectives (``gradc.ops.collectives``) reduce over.
    Returns ``(value, batched)`` per output of the graph."""
    b = current()
    if len(args) != len(graph.inputs) or len(batched) != len(args):
        raise GradcError(f"internal: batching {graph.name} with {len(args)} of {len(graph.inputs)} inputs")
    vals = [to_value(a, b) for a in args]
    vals, symmap = match_inputs(graph, vals, [v._shape[1:] if bt else v._shape for v, bt in zip(vals, batched)],
                                "vmap: per example,")
    env: dict = {nid: (v, bt) for nid, v, bt in zip(graph.inputs, vals, batched)}
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
                env[nid] = (batch_named(d.op, operands, params, n, axis_name)
                            or _batch_node(d.op, operands, params, n))
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
