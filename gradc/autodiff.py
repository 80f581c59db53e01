"""Automatic differentiation by source transformation: Graph -> Graph.

Reverse mode (:func:`vjp_graph`) replays the forward graph into a new trace, then walks
it in reversed topological order (micrograd's loop) and, instead of mutating ``.grad``,
emits each node's VJP rule as new graph nodes.  Fan-out accumulates with ``add``.
Forward mode (:func:`jvp_graph`) walks the same order forwards emitting JVP rules.
The results are ordinary graphs, so they can be optimized, compiled, and differentiated
again (Hessians, ``grad(grad(f))``).

Every node a rule emits has the provenance of the forward value it differentiates
(``d/d %k (model.py:6)``, ``%k`` the replayed forward node), and so do the ``add`` that
sums the cotangents of a value used twice and the casts and zeros of the results."""
from __future__ import annotations

import numpy as np

from .errors import ArgumentError
from .graph import Graph, Provenance
from .ops import OPS
from .ops.custom import CUSTOM_OPS, call_record
from .ops.scan import RULES as SCAN_RULES
from .ops.structure import zeros_like
from .tracer import Spec, current, provenance, replay, trace_specs


def _specs(fwd: Graph):
    return [Spec.of_node(fwd, i) for i in fwd.inputs], [fwd[i].name for i in fwd.inputs]


def derivative_of(fwd: Graph, nid: int, env: dict, mode: str) -> Provenance:
    """The provenance of the nodes that differentiate forward node ``nid`` (``mode``:
    ``"adjoint"`` or ``"tangent"``): its user's line, and its replay ``env[nid]``."""
    d = fwd[nid]
    return (d.provenance or Provenance()).derivative(mode, env[nid]._id, d.op)


def relevant(fwd: Graph, wrt: list[int], outs: list[int]) -> set:
    """Nodes on a path from a ``wrt`` input to an output: only they need adjoints."""
    return fwd.reachable(wrt) & fwd.reachable(outs, forward=False)


def _check_wrt(fwd: Graph, wrt):
    for i in wrt:
        d = fwd[fwd.inputs[i]]
        if d.dtype.kind != "f":
            raise ArgumentError(f"cannot differentiate with respect to argument {i} ({d.name}): "
                                f"it has dtype {d.dtype}; differentiated arguments must be float32 or float64")


def group_key(d):
    """The group a node of a multi-output call belongs to, or None: a custom_jvp/
    custom_vjp call (:mod:`gradc.ops.custom`) or a scan (:mod:`gradc.ops.scan`; its
    nodes share arguments and parameters but ``index``).  A group differentiates as one."""
    if d.op in CUSTOM_OPS:
        return d.params["call"]
    if d.op in ("scan", "while"):
        return (d.op, tuple(d.args), tuple(sorted((k, v) for k, v in d.params.items() if k != "index")))
    return None


def _groups(fwd: Graph, order: list[int]) -> dict:
    """{group: its nodes in ``order``} (``group_key``)."""
    groups: dict = {}
    for nid in order:
        key = group_key(fwd[nid])
        if key is not None:
            groups.setdefault(key, []).append(nid)
    return groups


def _group_vjp(d, args, cts: dict, need: list):
    """The cotangents of a group's arguments from its outputs' ({index: cotangent})."""
    if d.op in ("scan", "while"):
        return SCAN_RULES["vjp" if d.op == "scan" else "while_vjp"](args, cts, need, **d.params)
    return call_record(d.params["call"], d.op).vjp_args(args, cts, need)


def _group_jvp(d, args, tangents: list):
    """The tangents of a group's outputs (a list by index) from its arguments'."""
    if d.op in ("scan", "while"):
        return SCAN_RULES["jvp" if d.op == "scan" else "while_jvp"](args, tangents, **d.params)
    return call_record(d.params["call"], d.op).jvp_args(args, tangents)


def _consumed(d):
    """The replay of a custom-derivative node whose rule this differentiation consumes:
    its primal value, when the derived graph should differentiate the primal as written
    at the next order (a custom_vjp whose fwd did not call the function itself, as in
    JAX); None keeps the node, so the rule applies again."""
    if d.op in CUSTOM_OPS and not call_record(d.params["call"], d.op).again:
        return d.params["index"]
    return None


def backward(fwd: Graph, env: dict, cts: dict, wrt_nodes: list[int]) -> list:
    """The reverse walk.  ``env`` maps forward nodes to their replayed Values, ``cts``
    maps output nodes to their cotangents; returns the cotangents of ``wrt_nodes``."""
    b = current()
    need = relevant(fwd, wrt_nodes, list(cts))
    ct = {k: v for k, v in cts.items() if k in need}
    b.role = "adjoint"
    order = fwd.order()
    groups = _groups(fwd, order)
    pending: dict = {}       # group -> {output index: cotangent} until its first node

    def send(args, grads):
        for a, ga in zip(args, grads):
            if ga is None or a not in need:
                continue
            if a not in ct:
                ct[a] = ga
            else:   # a value used twice: its cotangent is the sum, which belongs to it
                with provenance(derivative_of(fwd, a, env, "adjoint")):
                    ct[a] = ct[a] + ga

    for nid in reversed(order):
        d = fwd[nid]
        key = group_key(d)
        if key is not None:
            # A group's rule needs the cotangents of all of its outputs: they are
            # complete when the walk reaches the group's first node (every user of every
            # output comes after it in the forward order).
            if nid in ct:
                pending.setdefault(key, {})[d.params["index"]] = ct.pop(nid)
            if nid != groups[key][0] or key not in pending:
                continue
            with provenance(derivative_of(fwd, nid, env, "adjoint")):
                grads = _group_vjp(d, [env[a] for a in d.args], pending.pop(key), [a in need for a in d.args])
            send(d.args, grads)
            continue
        if nid not in ct or d.op in ("input", "const"):
            continue
        g = ct.pop(nid)
        rule = OPS[d.op].vjp
        if rule is None:
            continue
        # Shapes in params name the forward graph's symbols, which the replay kept.
        with provenance(derivative_of(fwd, nid, env, "adjoint")):
            grads = rule(g, env[nid], *[env[a] for a in d.args], **d.params)
        send(d.args, grads)
    out = []
    for w in wrt_nodes:
        g = ct.get(w)
        if g is None:
            with provenance(derivative_of(fwd, w, env, "adjoint")):
                g = zeros_like(env[w])
        out.append(g)
    return out


def vjp_graph(fwd: Graph, wrt: list[int], *, seed: str = "input", keep_value=True) -> Graph:
    """The adjoint graph of ``fwd``.

    Inputs: fwd's inputs, then (``seed="input"``) one cotangent per output.  With
    ``seed="one"`` the single scalar output is seeded with 1 (a gradient).  Outputs:
    fwd's outputs (if ``keep_value``), then the cotangent of each ``wrt`` input."""
    _check_wrt(fwd, wrt)
    specs, names = _specs(fwd)
    n_in = len(specs)
    if seed == "input":
        for k, o in enumerate(fwd.outputs):
            specs.append(Spec.of_node(fwd, o))
            names.append(f"ct{k}" if len(fwd.outputs) > 1 else "ct")

    def adjoint(*args):
        env = replay(fwd, list(args[:n_in]), passthrough=_consumed)
        b = current()
        b.role = "adjoint"
        if seed == "input":
            cts = {}
            for o, c in zip(fwd.outputs, args[n_in:]):
                if o in cts:      # one node returned twice: its cotangents add up
                    with provenance(derivative_of(fwd, o, env, "adjoint")):
                        c = cts[o] + c
                cts[o] = c
        else:
            (o,) = fwd.outputs
            cts = {o: b.const(np.ones((), fwd[o].dtype))}
        wrt_nodes = [fwd.inputs[i] for i in wrt]
        grads = backward(fwd, env, cts, wrt_nodes)
        for k, (g, w) in enumerate(zip(grads, wrt_nodes)):
            if g.dtype != env[w].dtype:
                with provenance(derivative_of(fwd, w, env, "adjoint")):
                    grads[k] = g.astype(env[w].dtype)
        vals = [env[o] for o in fwd.outputs] if keep_value else []
        return tuple(vals + grads)

    g, _, _ = trace_specs(adjoint, specs, names, name=f"{fwd.name}_vjp")
    wnames = [f"d{fwd[fwd.inputs[i]].name}" for i in wrt]
    g.output_names = (["value"] * len(fwd.outputs) if keep_value else []) + wnames
    g.example = {**fwd.example, **g.example}
    return g


def jvp_graph(fwd: Graph, wrt: list[int]) -> Graph:
    """The tangent graph: inputs are fwd's inputs then one tangent per ``wrt`` input;
    outputs are fwd's outputs then their tangents."""
    _check_wrt(fwd, wrt)
    specs, names = _specs(fwd)
    n_in = len(specs)
    for i in wrt:
        specs.append(Spec.of_node(fwd, fwd.inputs[i]))
        names.append(f"t{fwd[fwd.inputs[i]].name}")

    def tangent(*args):
        b = current()
        env = replay(fwd, list(args[:n_in]), passthrough=_consumed)
        tan = {fwd.inputs[i]: t for i, t in zip(wrt, args[n_in:])}
        need = relevant(fwd, [fwd.inputs[i] for i in wrt], fwd.outputs)
        b.role = "tangent"
        order = fwd.order()
        custom: dict = {}     # group -> the tangents of its outputs (computed at its first node)
        for nid in order:
            d = fwd[nid]
            if nid in tan or nid not in need or d.op in ("input", "const"):
                continue
            ts = [tan.get(a) for a in d.args]
            if all(t is None for t in ts):
                continue
            key = group_key(d)
            if key is not None:
                with provenance(derivative_of(fwd, nid, env, "tangent")):
                    if key not in custom:
                        custom[key] = _group_jvp(d, [env[a] for a in d.args], ts)
                    t = custom[key][d.params["index"]]
                    if t is not None:
                        tan[nid] = t if t.dtype == d.dtype else t.astype(d.dtype)
                continue
            rule = OPS[d.op].jvp
            if rule is None:
                continue
            with provenance(derivative_of(fwd, nid, env, "tangent")):
                t = rule(ts, env[nid], *[env[a] for a in d.args], **d.params)
                if t is not None:
                    tan[nid] = t if t.dtype == d.dtype else t.astype(d.dtype)
        outs = [env[o] for o in fwd.outputs]
        touts = []
        for o in fwd.outputs:
            if o not in tan:
                with provenance(derivative_of(fwd, o, env, "tangent")):
                    tan[o] = zeros_like(env[o])
            touts.append(tan[o])
        return tuple(outs + touts)

    g, _, _ = trace_specs(tangent, specs, names, name=f"{fwd.name}_jvp")
    g.output_names = ["value"] * len(fwd.outputs) + ["tangent"] * len(fwd.outputs)
    return g


def is_diagonal(fwd: Graph, wrt_input: int, out: int) -> bool:
    """The paper's diagonal condition: every node between input and output is
    element-wise over the input's shape, so the Jacobian is diagonal."""
    x = fwd[wrt_input]
    if fwd[out].shape != x.shape or len(x.shape) == 0:
        return False
    path = relevant(fwd, [wrt_input], [out])
    if out not in path:
        return False
    for nid in path - {wrt_input}:
        d = fwd[nid]
        if OPS[d.op].kind != "elementwise" or d.shape != x.shape:
            return False
        for a in d.args:
            if a in path and fwd[a].shape != x.shape:
                return False
    return True
