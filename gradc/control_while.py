"""``lax.while_loop`` on a traced condition: the condition and the body traced once
each (two :class:`~gradc.ops.scan.Body`), the ``while`` op's nodes in the model's graph
(:mod:`gradc.ops.scan`), and the op's rules:

* **Reference** (``_while_run``): the numpy evaluator on the condition and the body.
* **Forward mode** (``_while_jvp``): one loop of the body's tangent graph, carrying the
  primal and the tangent, under the same condition of the primal carry.
* **Reverse mode** (``_while_vjp``): refused, as in JAX: the number of steps is known
  only when the loop runs, so no backward loop can be laid out when tracing.
* **vmap** (``_while_batch``): the batch runs while any example's condition holds; an
  example whose condition no longer holds keeps its carry.

The tracing helpers are gradc.control_flow's (scan's)."""
from __future__ import annotations

import numpy as np

from .autodiff import jvp_graph
from .batching import batch_replay
from .control_flow import _cast_carry_outputs, _leaf_names, _spec, _step_checked, new_carry, split
from .errors import ArgumentError, GradcError, UnsupportedError
from .evaluate import evaluate, hunting
from .graph import Graph
from .ops.bind import batch_materialize, bind
from .ops.scan import RULES, Body
from .ops.structure import zeros_like
from .tracer import current, inline, to_value, trace_specs
from .tree_util import tree_flatten, tree_unflatten


def while_loop(cond_fun, body_fun, init):
    """``lax.while_loop`` inside a trace whose condition depends on traced values: the
    condition and the body traced once each, the loop's nodes bound."""
    b = current()
    c_leaves, c_tree = tree_flatten(init)
    c_vals = [to_value(c, b) for c in c_leaves]
    names = _leaf_names("carry", c_tree, len(c_vals))
    for _attempt in range(4):
        def body_step(*leaves):
            out = body_fun(tree_unflatten(c_tree, list(leaves)))
            return tuple(new_carry("while_loop", "body", out, c_tree, names, leaves))
        gb, _, body_captured = trace_specs(body_step, [_spec(v) for v in c_vals], names, name="while_body")
        changed = False
        for k, (i, o) in enumerate(zip(gb.inputs, gb.outputs)):
            if gb[i].dtype != gb[o].dtype:
                if not isinstance(c_leaves[k], (bool, int, float)) or changed:
                    raise ArgumentError(f"while_loop: the carry's leaf {names[k]} is {gb[i].dtype} before the body "
                                        f"and {gb[o].dtype} after it (a carry keeps its dtype, as in "
                                        f"jax.lax.while_loop)")
                c_vals[k] = c_vals[k].astype(gb[o].dtype)
                changed = True
        if not changed:
            break

    def cond_step(*leaves):
        c = to_value(cond_fun(tree_unflatten(c_tree, list(leaves))))
        if c.shape != () or c.dtype != np.bool_:
            raise ArgumentError(f"while_loop: the condition must return a bool scalar, it returns "
                                f"{c.dtype}{list(c.shape)}")
        return (c,)
    gc, _, cond_captured = trace_specs(cond_step, [_spec(v) for v in c_vals], names, name="while_cond")
    cond, body = Body(gc, len(c_vals), 0), Body(_cast_carry_outputs(gb, len(c_vals)), len(c_vals), 0)
    args = c_vals + list(cond_captured) + list(body_captured)
    outs = [bind("while", *args, cond=cond, body=body, index=k, ncarry=len(c_vals), ncond=len(cond_captured))
            for k in range(len(c_vals))]
    return tree_unflatten(c_tree, outs)


def _while_run(cond: Body, body: Body, args: list, ncarry: int, ncond: int) -> list:
    args = [np.asarray(a) for a in args]
    carry, c_consts, b_consts = args[:ncarry], args[ncarry:ncarry + ncond], args[ncarry + ncond:]
    check = hunting()
    t = 0
    while True:
        (go,) = _step_checked(cond.graph, carry + c_consts, t, "a while_loop's condition") if check else \
            evaluate(cond.graph, carry + c_consts)
        if not bool(go):
            break
        carry = _step_checked(body.graph, carry + b_consts, t, "a while_loop's body") if check else \
            evaluate(body.graph, carry + b_consts)
        t += 1
    return [np.asarray(c, dtype=body.graph[o].dtype) for c, o in zip(carry, body.graph.outputs)]


def _while_vjp(args, cts, need, *, cond, body, ncarry, ncond, **_):
    if not any(need[k] for k in range(len(args))):
        return [None] * len(args)
    raise UnsupportedError("reverse-mode differentiation of lax.while_loop whose condition depends on traced values "
                           "is not supported (the number of steps is known only when it runs), as in JAX: use "
                           "lax.scan or lax.fori_loop with a number of steps known when tracing, or forward mode "
                           "(gradc.jvp, gradc.jacfwd)")


def _while_jvp(args: list, tangents: list, *, cond, body, ncarry, ncond, **_):
    g = body.graph
    nc = ncarry
    b_consts = args[nc + ncond:]
    fc = [k for k in range(nc) if g[g.inputs[k]].dtype.kind == "f"]
    tk = [m for m in range(len(b_consts)) if tangents[nc + ncond + m] is not None and b_consts[m].dtype.kind == "f"]
    jg = jvp_graph(g, fc + [nc + m for m in tk])
    specs = ([_spec(a) for a in args[:nc]] + [_spec(args[k]) for k in fc] + [_spec(c) for c in args[nc:nc + ncond]]
             + [_spec(c) for c in b_consts] + [_spec(b_consts[m]) for m in tk])

    def body_step(*leaves):
        c, tc, _cc, bc, tb = split(leaves, nc, len(fc), ncond, len(b_consts), len(tk))
        outs = inline(jg, c + bc + tc + tb)
        return tuple(outs[:nc]) + tuple(outs[nc + k] for k in fc)

    def cond_step(*leaves):
        c = list(leaves[:nc])
        cc = list(leaves[nc + len(fc):nc + len(fc) + ncond])
        return tuple(inline(cond.graph, c + cc))
    # the tangent loop's carry: (carry, tangents); its condition reads the carry only
    cg, _, _ = trace_specs(cond_step, specs, [f"in{k}" for k in range(len(specs))], name="while_cond_jvp")
    bg, _, captured = trace_specs(body_step, specs, [f"in{k}" for k in range(len(specs))], name="while_body_jvp")
    cg2 = cg
    nj = nc + len(fc)
    # both graphs take every input; the loop passes the condition its values and the body its own
    cond_j = Body(_only_inputs(cg2, nj, nj, ncond), nj, 0)
    body_j = Body(_only_inputs(bg, nj, nj + ncond, len(b_consts) + len(tk)), nj, 0)
    t0 = [tangents[k] if tangents[k] is not None else zeros_like(args[k]) for k in fc]
    jargs = list(args[:nc]) + t0 + list(args[nc:nc + ncond]) + list(b_consts) + [tangents[nc + ncond + m] for m in tk]
    if captured:
        raise GradcError("internal: a while_loop's tangent body closed over values")
    outs = [bind("while", *jargs, cond=cond_j, body=body_j, index=k, ncarry=nj, ncond=ncond) for k in range(nj)]
    result: list = [None] * nc
    for k, o in zip(fc, outs[nc:]):
        result[k] = o
    return result


def _only_inputs(g: Graph, ncarry: int, start: int, count: int) -> Graph:
    """``g`` with inputs the first ``ncarry`` and ``count`` from ``start`` on (the
    others unused by it): a loop's condition or body takes the carry and its own values."""
    keep = list(g.inputs[:ncarry]) + list(g.inputs[start:start + count])
    dropped = [i for i in g.inputs if i not in keep]
    if any(g.users(i) for i in dropped):
        raise GradcError("internal: a while_loop's tangent condition or body reads values of the other")
    g = g.copy()
    for i in dropped:
        g.remove(i)
    g.inputs = keep
    for k, i in enumerate(keep):
        g[i].params = {**g[i].params, "index": k}
    return g


def _while_batch(n, args, batched, *, cond, body, index, ncarry, ncond):
    b = current()
    cache = b.__dict__.setdefault("while_batches", {})
    key = (cond, body, tuple(a._id for a in args), tuple(batched))
    if key not in cache:
        cache[key] = _while_batch_loop(n, args, batched, cond, body, ncarry, ncond)
    return cache[key][index]


def _while_batch_loop(n, args, batched, cond, body, ncarry, ncond):
    """The batched loop runs while any example's condition holds; an example whose
    condition no longer holds keeps its carry (JAX's semantics).  Every carry is
    batched."""
    nc = ncarry
    ins = [a if bt else batch_materialize(n, a) for a, bt in zip(args[:nc], batched[:nc])]
    c_consts, b_consts = list(args[nc:nc + ncond]), list(args[nc + ncond:])
    c_b, b_b = list(batched[nc:nc + ncond]), list(batched[nc + ncond:])
    specs = [_spec(a) for a in ins] + [_spec(c) for c in c_consts] + [_spec(c) for c in b_consts]
    names = [f"in{k}" for k in range(len(specs))]

    def conds(leaves):
        (go, bt), = batch_replay(cond.graph, list(leaves[:nc]) + list(leaves[nc:nc + ncond]), [True] * nc + c_b, n)
        return go if bt else batch_materialize(n, go)

    def cond_step(*leaves):
        return (bind("max", conds(leaves), axes=(0,), keepdims=False),)    # any example still going

    def body_step(*leaves):
        go = conds(leaves)
        res = batch_replay(body.graph, list(leaves[:nc]) + list(leaves[nc + ncond:]), [True] * nc + b_b, n)
        outs = []
        for c, (v, bt) in zip(leaves[:nc], res):
            v = v if bt else batch_materialize(n, v)
            mask = bind("reshape", go, shape=(go._shape[0],) + (1,) * (len(v._shape) - 1))
            outs.append(bind("where", mask, v, c))
        return tuple(outs)
    cg, _, cc = trace_specs(cond_step, specs, names, name="while_cond_vmap")
    bg, _, bc = trace_specs(body_step, specs, names, name="while_body_vmap")
    if cc or bc:
        raise GradcError("internal: a batched while_loop closed over values")
    cond_b = Body(_only_inputs(cg, nc, nc, ncond), nc, 0)
    body_b = Body(_only_inputs(bg, nc, nc, ncond + len(b_consts)), nc, 0)
    # the body reads the condition's values too (it keeps finished examples' carries)
    jargs = ins + c_consts + c_consts + b_consts
    return [bind("while", *jargs, cond=cond_b, body=body_b, index=k, ncarry=nc, ncond=ncond) for k in range(nc)]


RULES.update(while_run=_while_run, while_vjp=_while_vjp, while_jvp=_while_jvp, while_batch=_while_batch)
