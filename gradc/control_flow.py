"""``lax.scan`` as a loop that stays a loop: the step traced once into a :class:`Body`,
the ``scan`` op's nodes in the model's graph (:mod:`gradc.ops.scan`), and the op's rules.

* **Reverse mode** (``_vjp``).  The backward loop runs the other way over the steps;
  its step is the step's adjoint (``autodiff.backward`` on the body's graph), carrying
  the carry's cotangent and the running sum of the closed-over values' gradients, and
  stacking the gradients of the ``xs`` slices.  The forward step's values that adjoint
  reads (found by tracing it once) are stacked by the forward loop: a scan of the step
  extended by those outputs, which ``passes.merge_scans`` computes in place of the
  plain one.  So nothing is computed twice, and the memory is what an unrolled loop's
  adjoint would keep; a step marked by ``checkpoint`` (gradc.remat) stacks only what
  its policy saves and its carry, and the backward step recomputes the rest.
* **Forward mode** (``_jvp``): one loop of the step's tangent graph, primal and tangent
  carries side by side.
* **vmap** (``_batch``): the step batched (``batching.batch_replay``), the carries
  batched where they must be (a fixed point), ``xs`` and ``ys`` with the batch as their
  second axis inside the loop.
* **Reference** (``_run``): the numpy evaluator on the step, step by step.

Every one of these makes new ``scan`` nodes, so they compose: a gradient of a gradient,
a vmap of a gradient, a scan in a scan."""
from __future__ import annotations


import numpy as np

from .autodiff import backward, jvp_graph
from .batching import batch_replay
from .errors import ArgumentError
from .evaluate import evaluate, hunting
from .graph import Graph
from .ops.bind import batch_materialize, bind
from .ops.scan import RULES, Body, body_shape, symbol_map
from .ops.structure import zeros_like
from .remat import recording, saveable, step_remat, whole
from .shapes import resolve
from .tracer import Spec, Value, current, inline, replay, to_value, trace_specs
from .tree_util import keystr, leaf_paths, tree_flatten, tree_unflatten


# ----------------------------------------------------------------------------- tracing
def _spec(v: Value, drop: int = 0) -> Spec:
    """The spec of a step input like ``v`` (without its ``drop`` leading axes), keeping
    the caller's size names so the step's graph speaks of the same sizes."""
    env = v._b.env
    dims = v._shape[drop:]
    return Spec(tuple(dims), v.dtype, tuple(env.value(d) for d in dims))


def _scan_nodes(body: Body, args: list, reverse: bool, length, outputs=None) -> list:
    """The scan's nodes for ``outputs`` (indices; default all) on ``args``."""
    idx = range(len(body.graph.outputs)) if outputs is None else outputs
    params = dict(body=body, ncarry=body.ncarry, nx=body.nx, reverse=bool(reverse),
                  length=None if body.nx else length)
    return [bind("scan", *args, index=j, **params) for j in idx]


def split(leaves, *counts) -> list:
    """``leaves`` cut into lists of these lengths, in order (a step's inputs by role)."""
    out, k = [], 0
    for n in counts:
        out.append(list(leaves[k:k + n]))
        k += n
    return out


def _leaf_names(prefix, tree, n):
    paths = leaf_paths(tree) if n else []
    return [f"{prefix}{keystr(p)}" if p else prefix for p in paths] if len(paths) == n else \
        [f"{prefix}{k}" for k in range(n)]


def scan(f, init, xs, length, reverse):
    """``lax.scan`` inside a trace: trace ``f`` once and bind the loop's nodes."""
    b = current()
    c_leaves, c_tree = tree_flatten(init)
    x_leaves, x_tree = tree_flatten(xs)
    x_vals = [to_value(x, b) for x in x_leaves]
    # A Python number in the carry is weak, as in JAX: it takes the dtype the step gives
    # it (a float32 model's 0.0 is a float32 carry); an array keeps its own dtype.
    weak = [isinstance(c, (bool, int, float)) for c in c_leaves]
    floats32 = [v.dtype == np.float32 for v in x_vals if v.dtype.kind == "f"]
    c_vals = [to_value(np.float32(c) if isinstance(c, float) and floats32 and all(floats32) else c, b)
              for c in c_leaves]
    if x_vals:
        n = x_vals[0]._shape[0]
        for v in x_vals[1:]:
            b.env.equal(v._shape[0], n, "scan: the leading sizes of the xs leaves")
    else:
        n = int(length)
    c_names = _leaf_names("carry", c_tree, len(c_vals))
    x_names = _leaf_names("x", x_tree, len(x_vals))
    for _attempt in range(4):
        y_tree = []

        def step(*leaves):
            c = tree_unflatten(c_tree, list(leaves[:len(c_vals)]))
            x = tree_unflatten(x_tree, list(leaves[len(c_vals):])) if x_vals else None
            out = f(c, x)
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise ArgumentError(f"scan: the step function must return a pair (carry, y); it returned "
                                    f"{type(out).__name__ if not isinstance(out, (tuple, list)) else f'{len(out)} values'}")
            c2, y = out
            c2_leaves = new_carry("scan", "step", c2, c_tree, c_names, leaves)
            y_leaves, yt = tree_flatten(y)
            y_tree.append(yt)
            return tuple(c2_leaves) + tuple(y_leaves)
        specs = [_spec(v) for v in c_vals] + [_spec(v, 1) for v in x_vals]
        with recording() as calls:          # (checkpointed calls inside the step)
            g, _structure, captured = trace_specs(step, specs, c_names + x_names, name="scan_step")
        retrace = False
        for k, (i, o) in enumerate(zip(g.inputs, g.outputs[:len(c_vals)])):
            di, do = g[i], g[o]
            if di.dtype == do.dtype:
                continue
            if not weak[k]:
                raise ArgumentError(f"scan: the carry's leaf {c_names[k]} is {di.dtype} before the step and "
                                    f"{do.dtype} after it (a carry keeps its dtype from step to step, as in "
                                    f"jax.lax.scan): give the initial carry the dtype the step computes, e.g. "
                                    f"init.astype(np.{do.dtype})")
            c_vals[k] = c_vals[k].astype(do.dtype)
            weak[k] = False        # (settled: a second change is the step's own)
            retrace = True
        if not retrace:
            break
    else:
        raise ArgumentError("scan: the carry's dtypes do not settle from step to step")
    remat = step_remat(f, calls, g)
    cast = _cast_carry_outputs(g, len(c_vals))
    body = Body(cast, len(c_vals), len(x_vals), remat=remat if cast is g else whole(remat))
    g = cast
    if b.env.find(n) == 0:      # no step runs: the initial carry, and ys of no steps
        sizes = symbol_map(body, [v._shape for v in c_vals] + [v._shape for v in x_vals]
                           + [v._shape for v in captured])
        ys = [bind("broadcast_to", b.const(np.zeros((), g[o].dtype)), shape=(0,) + body_shape(body, sizes, g[o].shape))
              for o in g.outputs[len(c_vals):]]
        return tree_unflatten(c_tree, c_vals), tree_unflatten(y_tree[-1], ys)
    outs = _scan_nodes(body, c_vals + x_vals + list(captured), reverse, n)
    carry = tree_unflatten(c_tree, outs[:len(c_vals)])
    ys = tree_unflatten(y_tree[-1], outs[len(c_vals):])
    return carry, ys


def empty_ys(f, init, xs):
    """The ``ys`` of a scan of no steps on concrete values: ``f`` traced on one step's
    placeholders for the structure, shapes and dtypes of its ``y``, each with a
    leading axis of 0."""
    c_leaves, c_tree = tree_flatten(init)
    x_leaves, x_tree = tree_flatten(xs)
    shapes = [np.shape(c) for c in c_leaves] + [np.shape(x)[1:] for x in x_leaves]
    dtypes = [np.asarray(v).dtype for v in c_leaves + x_leaves]
    specs = [Spec(tuple(s), dt, tuple(s)) for s, dt in zip(shapes, dtypes)]
    y_tree = []

    def step(*leaves):
        c = tree_unflatten(c_tree, list(leaves[:len(c_leaves)]))
        x = tree_unflatten(x_tree, list(leaves[len(c_leaves):])) if x_leaves else None
        y_leaves, yt = tree_flatten(f(c, x)[1])
        y_tree.append(yt)
        return tuple(y_leaves)
    g, _, _ = trace_specs(step, specs, [f"in{k}" for k in range(len(specs))], name="scan_step")
    return tree_unflatten(y_tree[0], [np.zeros((0,) + tuple(g.example.get(d, d) if isinstance(d, str) else d
                                                            for d in g[o].shape), g[o].dtype) for o in g.outputs])


def new_carry(what: str, part: str, carry, tree, names, before) -> list:
    """The leaves of the carry a loop's step (``part``) returns, as values of this
    trace, checked against the carry it got (``before``, leaves of structure ``tree``):
    the same structure, and each leaf the same shape, whose sizes become the same
    symbols."""
    leaves, got = tree_flatten(carry)
    if got != tree:
        raise ArgumentError(f"{what}: the {part} returns a carry of structure {got}; the initial carry has "
                            f"structure {tree} (they must match)")
    leaves = [to_value(v) for v in leaves]
    env = current().env
    for name, b, a in zip(names, before, leaves):
        shown = (tuple(env.value(d) for d in b._shape), tuple(env.value(d) for d in a._shape))
        if len(b._shape) != len(a._shape) or shown[0] != shown[1]:
            raise ArgumentError(f"{what}: the carry's leaf {name} has shape {shown[0]} before the {part} and "
                                f"{shown[1]} after it (a carry keeps its shape from step to step)")
        for x, y in zip(b._shape, a._shape):
            env.equal(x, y, f"{what}: the carry's leaf {name}")
    return leaves


def _cast_carry_outputs(g: Graph, ncarry: int) -> Graph:
    """The step's graph with each carry output cast to its carry input's dtype (a step
    that narrows its carry, float64 in and float32 out, keeps the carry's dtype)."""
    if all(g[i].dtype == g[o].dtype for i, o in zip(g.inputs, g.outputs[:ncarry])):
        return g
    specs = [Spec.of_node(g, i) for i in g.inputs]

    carry_dtypes = [g[i].dtype for i in g.inputs[:ncarry]]

    def cast(*args):
        outs = inline(g, list(args))
        return tuple(o.astype(carry_dtypes[k]) if k < ncarry else o for k, o in enumerate(outs))
    g2, _, _ = trace_specs(cast, specs, [g[i].name for i in g.inputs], name=g.name)
    return g2


# ----------------------------------------------------------------------------- reference
def _run(body: Body, args: list, reverse: bool, length) -> list:
    g, nc, nx = body.graph, body.ncarry, body.nx
    args = [np.asarray(a) for a in args]
    carry, xs, consts = args[:nc], args[nc:nc + nx], args[nc + nx:]
    n = xs[0].shape[0] if nx else int(length)
    sizes = symbol_map(body, [a.shape for a in args])
    ys: list = [[None] * n for _ in range(body.ny)]
    for t in (range(n - 1, -1, -1) if reverse else range(n)):
        outs = _step_checked(g, carry + [x[t] for x in xs] + consts, t) if hunting() else \
            evaluate(g, carry + [x[t] for x in xs] + consts)
        carry = outs[:nc]
        for k, y in enumerate(outs[nc:]):
            ys[k][t] = y
    stacked = []
    for k, o in enumerate(g.outputs[nc:]):
        shape = resolve(body_shape(body, sizes, g[o].shape), {})
        arr = np.empty((n,) + tuple(shape), g[o].dtype)
        for t in range(n):
            arr[t] = ys[k][t]
        stacked.append(arr)
    return [np.asarray(c, dtype=g[o].dtype) for c, o in zip(carry, g.outputs[:nc])] + stacked


def _step_checked(g: Graph, args: list, t: int, what: str = "a scan") -> list:
    """One step evaluated hunting non-finite values (``debug_nans``): the first names
    the step's node, its line and the step."""
    from .backends.numpy_backend import evaluate_checked
    return evaluate_checked(g, args, f"in step {t} of {what}: ")


# ----------------------------------------------------------------------------- reverse mode
def with_outputs(body: Body, extra: list, tag: str) -> Body:
    """The step extended by outputs ``extra`` (nodes of its graph) that the loop
    stacks; its first outputs are the step's own (``passes.merge_scans`` computes the
    extended loop in place of the plain one)."""
    g = body.graph.copy()
    g.outputs = list(g.outputs) + list(extra)
    g.output_names = []
    return Body(g, body.ncarry, body.nx, base=body, tag=tag, remat=body.remat)


def _vjp(args: list, cts: dict, need: list, *, body, ncarry, nx, reverse, length, **_):
    g = body.graph
    nc, ny = ncarry, body.ny
    consts = args[nc + nx:]
    fc = [k for k in range(nc) if g[g.inputs[k]].dtype.kind == "f"]           # float carries
    dxs = [i for i in range(nx) if need[nc + i] and g[g.inputs[nc + i]].dtype.kind == "f"]
    dcs = [m for m in range(len(consts)) if need[nc + nx + m] and consts[m].dtype.kind == "f"]
    dys = [j for j in range(ny) if (nc + j) in cts and g[g.outputs[nc + j]].dtype.kind == "f"]
    if not any(need[k] for k in fc) and not dxs and not dcs:
        return [None] * len(args)
    given = set(g.inputs[nc:])           # x slices and closed-over values: at hand in the backward loop

    def backward_step(saved: list):
        """The backward step, reading the forward step's values ``saved`` (nodes of g)
        from inputs after the cotangents, and recomputing the rest."""
        def bwd_step(*leaves):
            ct_c, sums, res, x_i, ct_y, cs = split(leaves, len(fc), len(dcs), len(saved), nx, len(dys), len(consts))
            res = dict(zip(saved, res))
            # a carry the adjoint does not read feeds only recomputed values it does not
            # read either (dead code): its cotangent, of its type, stands in for it
            stand_in = dict(zip([g.inputs[k] for k in fc], ct_c))
            carry = [res[i] if i in res else stand_in[i] for i in g.inputs[:nc]]
            env = replay(g, carry + x_i + cs, rewrite=lambda _g, nid, _args: res.get(nid))
            seeds: dict = {}
            for o, ct in [(g.outputs[k], c) for k, c in zip(fc, ct_c)] + \
                         [(g.outputs[nc + j], c) for j, c in zip(dys, ct_y)]:
                seeds[o] = seeds[o] + ct if o in seeds else ct
            wrt = [g.inputs[k] for k in fc] + [g.inputs[nc + i] for i in dxs] + [g.inputs[nc + nx + m] for m in dcs]
            grads = backward(g, env, seeds, wrt)
            grads = [gr if gr.dtype == g[w].dtype else gr.astype(g[w].dtype) for gr, w in zip(grads, wrt)]
            d_c, d_x, d_consts = grads[:len(fc)], grads[len(fc):len(fc) + len(dxs)], grads[len(fc) + len(dxs):]
            bwd_step.env = env
            return tuple(d_c) + tuple(s + d for s, d in zip(sums, d_consts)) + tuple(d_x)
        specs = ([_spec(args[k]) for k in fc] + [_spec(consts[m]) for m in dcs]
                 + [_node_spec(g, body, n, args) for n in saved] + [_spec(args[nc + i], 1) for i in range(nx)]
                 + [_spec(cts[nc + j], 1) for j in dys] + [_spec(c) for c in consts])
        names = ([f"ct_carry{k}" for k in fc] + [f"sum_d{m}" for m in dcs] + [f"saved{n}" for n in saved]
                 + [f"x{i}" for i in range(nx)] + [f"ct_y{j}" for j in dys] + [f"const{m}" for m in range(len(consts))])
        gb, _, captured = trace_specs(bwd_step, specs, names, name="scan_step_vjp")
        return gb, captured, bwd_step.env

    # which of the forward step's values its adjoint reads: traced once recomputing
    # everything, then again reading those (stacked by the forward loop) instead
    # (carries that are not floats have no cotangent to stand in for them: saved too)
    ints = [g.inputs[k] for k in range(nc) if k not in fc]
    gb, _, env = backward_step(ints)
    replayed = {v._id: n for n, v in env.items()}
    saved = sorted({replayed[a] for n in gb.nx.nodes if gb[n].role == "adjoint" for a in gb[n].args
                    if a in replayed and replayed[a] not in given and g[replayed[a]].op != "const"} | set(ints))
    kept = saveable(g, saved, body.remat)    # (a step marked by checkpoint: what its policy saves)
    if len(kept) < len(saved):               # the rest recomputed from each step's incoming carry
        saved = sorted(set(kept) | set(g.inputs[:nc]))
    gb, captured, _ = backward_step(saved)
    res = _scan_nodes(with_outputs(body, saved, "residuals"), args, reverse, length,
                      outputs=range(nc + ny, nc + ny + len(saved))) if saved else []
    bbody = Body(gb, len(fc) + len(dcs), len(saved) + nx + len(dys), remat=whole(body.remat))
    ct0 = [cts[k] if k in cts else zeros_like(args[k]) for k in fc]
    zs = [zeros_like(consts[m]) for m in dcs]
    bargs = ct0 + zs + res + list(args[nc:nc + nx]) + [cts[nc + j] for j in dys] + list(consts) + list(captured)
    outs = _scan_nodes(bbody, bargs, not reverse, length)
    grads: list = [None] * len(args)
    for k, o in zip(fc, outs[:len(fc)]):
        grads[k] = o
    for m, o in zip(dcs, outs[len(fc):len(fc) + len(dcs)]):
        grads[nc + nx + m] = o
    for i, o in zip(dxs, outs[len(fc) + len(dcs):]):
        grads[nc + i] = o
    return grads


def _node_spec(g: Graph, body: Body, nid: int, args: list) -> Spec:
    """The spec of one step's value of node ``nid`` of the step's graph ``g``, in the
    sizes (and their names) of the scan's arguments ``args``, values of this trace."""
    env = current().env
    symmap = symbol_map(body, [a._shape for a in args])
    dims = tuple(env.find(symmap[d]) if isinstance(d, str) else d for d in g[nid].shape)
    return Spec(dims, g[nid].dtype, tuple(env.value(d) for d in dims))


# ----------------------------------------------------------------------------- forward mode
def _jvp(args: list, tangents: list, *, body, ncarry, nx, reverse, length, **_):
    g = body.graph
    nc, ny = ncarry, body.ny
    consts = args[nc + nx:]
    fc = [k for k in range(nc) if g[g.inputs[k]].dtype.kind == "f"]
    tx = [i for i in range(nx) if tangents[nc + i] is not None]
    tk = [m for m in range(len(consts)) if tangents[nc + nx + m] is not None]
    wrt = fc + [nc + i for i in tx] + [nc + nx + m for m in tk]
    jg = jvp_graph(g, wrt)     # inputs: g's, then a tangent per wrt; outputs: g's, then theirs
    fy = [j for j in range(ny) if g[g.outputs[nc + j]].dtype.kind == "f"]
    n_in, n_out = len(g.inputs), len(g.outputs)
    specs = ([_spec(a) for a in args[:nc]] + [_spec(args[k]) for k in fc]
             + [_spec(a, 1) for a in args[nc:nc + nx]] + [_spec(args[nc + i], 1) for i in tx]
             + [_spec(c) for c in consts] + [_spec(consts[m]) for m in tk])

    def jvp_step(*leaves):
        c, tc, x, txs, cs, tks = split(leaves, nc, len(fc), nx, len(tx), len(consts), len(tk))
        outs = inline(jg, c + x + cs + tc + txs + tks)
        prim, tan = outs[:n_out], outs[n_out:]
        return (tuple(prim[:nc]) + tuple(tan[k] for k in fc) + tuple(prim[nc:])
                + tuple(tan[nc + j] for j in fy))

    gj, _, captured = trace_specs(jvp_step, specs, [f"in{k}" for k in range(len(specs))], name="scan_step_jvp")
    del n_in
    jbody = Body(gj, nc + len(fc), nx + len(tx), remat=whole(body.remat))
    t0 = [tangents[k] if tangents[k] is not None else zeros_like(args[k]) for k in fc]
    jargs = (list(args[:nc]) + t0 + list(args[nc:nc + nx]) + [tangents[nc + i] for i in tx]
             + list(consts) + [tangents[nc + nx + m] for m in tk] + list(captured))
    outs = _scan_nodes(jbody, jargs, reverse, length)
    result: list = [None] * (nc + ny)
    for k, o in zip(fc, outs[nc:nc + len(fc)]):
        result[k] = o
    base = nc + len(fc) + ny
    for j, o in zip(fy, outs[base:]):
        result[nc + j] = o
    return result


# ----------------------------------------------------------------------------- vmap
def _batch(n, args, batched, *, body, index, ncarry, nx, reverse, length):
    # the group's nodes batch one by one: the first makes the batched loop for all
    # (kept on the trace's builder, which it lives and dies with)
    b = current()
    cache = b.__dict__.setdefault("scan_batches", {})
    key = (body, tuple(a._id for a in args), tuple(batched))
    if key not in cache:
        cache[key] = _batch_loop(n, args, batched, body, reverse, length)
    outs, nc = cache[key]
    out = outs[index]
    if index >= nc:       # (steps, n, ...) -> (n, steps, ...)
        perm = (1, 0) + tuple(range(2, len(out._shape)))
        out = bind("transpose", out, perm=perm)
    return out


def _batch_loop(n, args, batched, body, reverse, length):
    g, nc, nx = body.graph, body.ncarry, body.nx
    carry_b = list(batched[:nc])
    rest_b = list(batched[nc:])
    # xs with the batch second: each step's slice is one batched operand
    xs = []
    for a, bt in zip(args[nc:nc + nx], batched[nc:nc + nx]):
        xs.append(bind("transpose", a, perm=(1, 0) + tuple(range(2, len(a._shape)))) if bt else a)
    for _ in range(nc + 1):
        ins = [batch_materialize(n, a) if cb and not bt else a for a, cb, bt in zip(args[:nc], carry_b, batched)]
        allb = carry_b + rest_b
        specs = ([_spec(a) for a in ins] + [_spec(x, 1) for x in xs] + [_spec(a) for a in args[nc + nx:]])
        flags: list = []

        def step(*leaves, allb=allb):
            res = batch_replay(g, list(leaves), allb, n)
            flags[:] = [bt for _, bt in res]
            outs = []
            for k, (v, bt) in enumerate(res):
                if not bt and (k >= nc or carry_b[k]):
                    v = batch_materialize(n, v)
                outs.append(v)
            return tuple(outs)
        gb, _, captured = trace_specs(step, specs, [f"in{k}" for k in range(len(specs))], name="scan_step_vmap")
        grown = [cb or fb for cb, fb in zip(carry_b, flags[:nc])]
        if grown == carry_b:
            break
        carry_b = grown
    bbody = Body(gb, nc, nx, remat=whole(body.remat))
    outs = _scan_nodes(bbody, ins + xs + list(args[nc + nx:]) + list(captured), reverse, length)
    # an unbatched carry stays shared: the rule's result must have the batch leading
    outs = [o if (k >= nc or carry_b[k]) else batch_materialize(n, o) for k, o in enumerate(outs)]
    return outs, nc


RULES.update(run=_run, vjp=_vjp, jvp=_jvp, batch=_batch)
