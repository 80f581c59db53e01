"""Graph -> Graph optimization, run to a fixed point.

Passes: dead-code elimination, common-subexpression elimination, constant folding, and
two rewrite databases (PyTensor's naming): ``CANONICALIZE`` (algebraic identities that
are exact in floating point) and ``STABILIZE`` (naive formulas replaced by stable ones,
so that their gradients do not overflow where the stable formula would not).

A rewrite is ``f(graph, nid) -> replacement node id | None``; it may add nodes.
"""
from __future__ import annotations

import numpy as np

from .graph import Graph
from .ops import OPS

MAX_FOLD = 4096  # constant-fold only small results: big constants bloat code


# ----------------------------------------------------------------------------- helpers
def _const(g: Graph, nid: int):
    d = g[nid]
    return d.params["value"] if d.op == "const" else None


def _is_scalar_const(g, nid, value):
    v = _const(g, nid)
    return v is not None and v.size >= 1 and np.all(v == value) and (v.ndim == 0 or v.size == 1)


def _is_fill(g, nid, value):
    """A constant (or a broadcast of one) every element of which is ``value``."""
    d = g[nid]
    if d.op == "broadcast_to":
        return _is_fill(g, d.args[0], value)
    v = _const(g, nid)
    return v is not None and v.size > 0 and bool(np.all(v == value))


def _same_type(g, a, b):
    return g[a].shape == g[b].shape and g[a].dtype == g[b].dtype


def _new(g: Graph, like: int, op: str, args, params=None, shape=None, dtype=None):
    d = g[like]
    return g.add(op, args, shape=d.shape if shape is None else shape,
                 dtype=d.dtype if dtype is None else dtype, params=params or {},
                 provenance=d.provenance, role=d.role)


# ----------------------------------------------------------------------------- canonicalize
def identity_ops(g, nid):
    """x+0, x-0, x*1, x/1, --x, no-op reshapes/broadcasts/casts, where(c, x, x)."""
    d = g[nid]
    op, a = d.op, d.args
    if op in ("add", "sub") and _is_fill(g, a[1], 0) and _same_type(g, a[0], nid):
        return a[0]
    if op == "add" and _is_fill(g, a[0], 0) and _same_type(g, a[1], nid):
        return a[1]
    if op in ("mul", "div") and _is_fill(g, a[1], 1) and _same_type(g, a[0], nid):
        return a[0]
    if op == "mul" and _is_fill(g, a[0], 1) and _same_type(g, a[1], nid):
        return a[1]
    if op == "neg" and g[a[0]].op == "neg":
        return g[a[0]].args[0]
    if op in ("reshape", "broadcast_to", "cast", "stop_gradient") and _same_type(g, a[0], nid) \
            and op != "stop_gradient":
        return a[0]
    if op == "where" and a[1] == a[2] and _same_type(g, a[1], nid):
        return a[1]
    if op == "sum" and not d.params["axes"] and _same_type(g, a[0], nid):
        return a[0]
    if op == "reshape" and g[a[0]].op == "reshape":
        return _new(g, nid, "reshape", (g[a[0]].args[0],), d.params)
    if op == "transpose" and g[a[0]].op == "transpose":
        inner = g[a[0]]
        perm = tuple(inner.params["perm"][p] for p in d.params["perm"])
        if perm == tuple(range(len(perm))):
            return inner.args[0]
    return None


def negations(g, nid):
    """x * -1 -> -x;  0 - x -> -x;  x + (-y) -> x - y;  x - (-y) -> x + y;  (-x) * y -> -(x*y)."""
    d = g[nid]
    op, a = d.op, d.args
    if op == "mul" and _is_scalar_const(g, a[1], -1) and _same_type(g, a[0], nid):
        return _new(g, nid, "neg", (a[0],))
    if op == "sub" and _is_fill(g, a[0], 0) and _same_type(g, a[1], nid):
        return _new(g, nid, "neg", (a[1],))
    if op in ("add", "sub") and g[a[1]].op == "neg":
        return _new(g, nid, "sub" if op == "add" else "add", (a[0], g[a[1]].args[0]))
    if op == "add" and g[a[0]].op == "neg":
        return _new(g, nid, "sub", (a[1], g[a[0]].args[0]))
    return None


def mask_select(g, nid):
    """where(c, g, 0) * where(c, 1, 0) style chains stay readable: where(c, where(c, x, 0), 0) -> where(c, x, 0)."""
    d = g[nid]
    if d.op != "where":
        return None
    c, x, y = d.args
    if g[x].op == "where" and g[x].args[0] == c and _same_type(g, x, nid):
        return _new(g, nid, "where", (c, g[x].args[1], y))
    return None


def _is_iota(g, nid, shape, axis):
    """``nid`` is 0, 1, 2, ... along ``axis`` of ``shape`` (an iota, or one folded)."""
    d = g[nid]
    if d.shape != tuple(shape):
        return False
    if d.op == "iota":
        return d.params["axis"] == axis
    v = _const(g, nid)
    return v is not None and v.dtype.kind in "iu" and np.array_equal(v, OPS["iota"].numpy(v.shape, axis, v.dtype))


def one_hot_scatter(g, nid):
    """scatter_add(u, iota_0, ..., idx_j, ..., shape) whose index on every axis but j is
    that axis's own position, and whose u has one element along j (the adjoint of
    ``take_along_axis(x, idx[:, None], 1)`` or ``x[rows, labels]``: a softmax's picked
    class) -> where(iota_j == idx_j, u, 0), broadcast along j.

    Each output element receives at most one u, so the select is the same sum; unlike
    the scatter (a fill of the whole output, then the scattered writes, on one thread,
    in a nest of its own), it is element-wise and fuses into its consumer (the softmax
    gradient's ``p - onehot``).  The index is taken through a gather of 0..n-1, which
    keeps the scatter's handling of it: a negative index counts from the end, one out
    of range is reported as the gather's error."""
    d = g[nid]
    if d.op != "scatter_add":
        return None
    u, *idx = d.args
    out, t = d.shape, g[u].shape    # t: the indices broadcast together

    def fits(i):                    # each dim of index i is 1 or the same as t's
        s = g[i].shape
        return len(s) == len(t) and all(a == 1 or a == b for a, b in zip(s, t))

    if len(idx) != len(out) or len(t) != len(out) or not all(fits(i) for i in idx):
        return None
    free = [a for a in range(len(out))
            if not (g[idx[a]].shape[a] == out[a] and _is_iota(g, idx[a], g[idx[a]].shape, a))]
    if len(free) != 1 or t[free[0]] != 1:
        return None
    j = free[0]
    i64 = np.dtype(np.int64)
    positions = _new(g, nid, "iota", (), {"shape": (out[j],), "axis": 0, "dtype": i64},
                     shape=(out[j],), dtype=i64)
    checked = _new(g, nid, "gather", (positions, idx[j]), shape=g[idx[j]].shape, dtype=i64)
    along_j = _new(g, nid, "iota", (), {"shape": tuple(out), "axis": j, "dtype": i64}, dtype=i64)
    hit = _new(g, nid, "eq", (along_j, _new(g, nid, "broadcast_to", (checked,), {"shape": tuple(out)},
                                            dtype=i64)), dtype=np.dtype(bool))
    spread = _new(g, nid, "broadcast_to", (u,), {"shape": tuple(out)})
    return _new(g, nid, "where", (hit, spread, _scalar_like(g, nid, 0)))


def _broadcast_result(shapes):
    """numpy's broadcast of ``shapes`` where it needs no run-time size (every dim along
    an axis is 1 or the same size or symbol); None where it would."""
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = {s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0} - {1}
        if len(dims) > 1:
            return None
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def implicit_broadcasts(g, nid):
    """An element-wise op's operand ``broadcast_to(x)`` -> ``x`` where the op's own
    broadcasting gives the same result shape.  The adjoint of a reduction writes its
    broadcasts explicitly (``reduce.expand_back``), so the adjoint of a softmax's
    logsumexp held ``exp(s - broadcast_to(lse))`` beside the forward's ``exp(s - lse)``:
    two nodes that CSE could not see were one (M7: a second exp of every element of
    the attention matrix)."""
    d = g[nid]
    if OPS[d.op].kind != "elementwise" or len(d.args) < 2:
        return None
    for i, a in enumerate(d.args):
        if g[a].op != "broadcast_to":
            continue
        args = (*d.args[:i], g[a].args[0], *d.args[i + 1:])
        if _broadcast_result([g[x].shape for x in args]) == tuple(d.shape):
            return _new(g, nid, d.op, args, d.params)
    return None


CANONICALIZE = [identity_ops, negations, mask_select, one_hot_scatter, implicit_broadcasts]


# ----------------------------------------------------------------------------- past differentiation
def _finite_shift(g, nid):
    """``nid`` is a softmax's or logsumexp's shift ``where(|m| < inf, m, 0)`` (through
    stop_gradient, reshapes and broadcasts): finite by construction."""
    d = g[nid]
    while d.op in ("stop_gradient", "reshape", "broadcast_to"):
        nid = d.args[0]
        d = g[nid]
    if d.op != "where" or not _is_fill(g, d.args[2], 0):
        return False
    c, m = g[d.args[0]], d.args[1]
    if c.op != "lt" or not _is_fill(g, c.args[1], np.inf):
        return False
    a = g[c.args[0]]
    return a.op == "abs" and a.args[0] == m


def shifted_extremum(g, nid):
    """max(x - c) -> max(x) - c (and min, and x + c), c one of a softmax's finite shifts
    that is constant along the reduced axes.  Exact in value: subtracting a finite c
    rounds monotonically, so the largest of the x - c is the largest x minus c, NaN and
    infinities included.  A log_softmax's logsumexp of its shifted logits then reuses the
    shift's max (CSE) instead of a second pass over every row.  Not in CANONICALIZE: at
    values that rounding makes equal the derivative's tie split would differ, so this
    runs only on graphs past differentiation (schedule.decompose)."""
    d = g[nid]
    if d.op not in ("max", "min") or g[d.args[0]].op not in ("sub", "add"):
        return None
    inner = g[d.args[0]]
    x, c = inner.args
    axes = d.params["axes"]
    sx, sc = g[x].shape, g[c].shape
    if (len(sc) != len(sx) or sx != inner.shape or any(sc[a] != 1 for a in axes)
            or g[x].dtype != inner.dtype or not _finite_shift(g, c)):
        return None
    keep = dict(d.params, keepdims=True)
    m = _new(g, nid, d.op, (x,), keep, shape=tuple(1 if i in axes else n for i, n in enumerate(sx)))
    r = _new(g, nid, inner.op, (m, c), inner.params, shape=g[m].shape)
    if d.params["keepdims"]:
        return r
    return _new(g, nid, "reshape", (r,), {"shape": d.shape})


PAST_DIFFERENTIATION = [shifted_extremum]


# ----------------------------------------------------------------------------- stabilize
def softplus_rewrite(g, nid):
    """log(1 + exp(x)) and log1p(exp(x)) -> softplus(x)."""
    d = g[nid]
    if d.op == "log1p" and g[d.args[0]].op == "exp":
        x = g[d.args[0]].args[0]
        if _same_type(g, x, nid):
            return _new(g, nid, "softplus", (x,))
    if d.op == "log" and g[d.args[0]].op == "add":
        s = g[d.args[0]]
        for one, e in (s.args, s.args[::-1]):
            if _is_scalar_const(g, one, 1) and g[e].op == "exp":
                x = g[e].args[0]
                if _same_type(g, x, nid):
                    return _new(g, nid, "softplus", (x,))
    return None


def logsumexp_rewrite(g, nid):
    """log(sum(exp(x))) -> logsumexp(x)."""
    d = g[nid]
    if d.op == "log" and g[d.args[0]].op == "sum":
        s = g[d.args[0]]
        e = s.args[0]
        if g[e].op == "exp":
            return _new(g, nid, "logsumexp", (g[e].args[0],), dict(s.params))
    return None


def log_sigmoid_rewrite(g, nid):
    """log(sigmoid(x)) -> -softplus(-x)."""
    d = g[nid]
    if d.op == "log" and g[d.args[0]].op == "sigmoid":
        x = g[d.args[0]].args[0]
        nx_ = _new(g, nid, "neg", (x,), shape=g[x].shape)
        sp = _new(g, nid, "softplus", (nx_,), shape=g[x].shape)
        return _new(g, nid, "neg", (sp,), shape=g[x].shape)
    return None


def _scalar_like(g: Graph, like: int, value):
    """A scalar constant of node ``like``'s dtype."""
    d = g[like]
    v = np.array(value, dtype=d.dtype)
    v.flags.writeable = False
    return g.add("const", (), shape=(), dtype=d.dtype, params={"value": v}, provenance=d.provenance, role=d.role)


def tanh_sum_rewrite(g, nid):
    """1 + tanh(u) -> 2 sigmoid(2u), 1 - tanh(u) -> 2 sigmoid(-2u) (gelu's tanh form),
    when nothing else reads the tanh, in float64.  The sum cancels where tanh(u) is near
    -1 (near 1 for the difference): 1 + tanh(-20) is 0 in float64, 2 sigmoid(-40) is
    8.5e-18.  And float64 sigmoid costs a little less than tanh (AVX-512, 2048x256
    doubles, one thread: 0.55 against 0.61 ms), in the forward pass and again in the
    backward pass, which recomputes it (its derivative s (1 - s) reads its value).
    Not in float32, where AVX-512's tanh (a table of polynomials) is as fast as sigmoid
    and the rewrite made the gelu MLPs of ``gradc bench --sweep`` 8-14% slower."""
    d = g[nid]
    if d.op not in ("add", "sub") or d.dtype != np.float64:
        return None
    a, b = d.args
    for one, t in ((a, b), (b, a)) if d.op == "add" else ((a, b),):
        if not (_is_scalar_const(g, one, 1) and g[t].op == "tanh"):
            continue
        if g.users(t) != [nid] or t in g.outputs or not _same_type(g, t, nid):
            continue
        u = g[t].args[0]
        if any(w != t and g[w].op == "tanh" for w in g.users(u)):
            continue        # another tanh(u), before CSE has merged the two: it stays
        two_u = _new(g, nid, "mul", (_scalar_like(g, nid, 2.0 if d.op == "add" else -2.0), u))
        return _new(g, nid, "mul", (_scalar_like(g, nid, 2.0), _new(g, nid, "sigmoid", (two_u,))))
    return None


STABILIZE = [softplus_rewrite, logsumexp_rewrite, log_sigmoid_rewrite, tanh_sum_rewrite]


# ----------------------------------------------------------------------------- passes
def dce(g: Graph) -> bool:
    live = set(g.outputs) | set(g.inputs)
    stack = list(g.outputs)
    while stack:
        n = stack.pop()
        for a in g[n].args:
            if a not in live:
                live.add(a)
                stack.append(a)
    dead = [n for n in g.nx.nodes if n not in live]
    for n in dead:
        g.remove(n)
    return bool(dead)


def _key(d):
    def h(v):
        if isinstance(v, np.ndarray):
            return (v.dtype.str, v.shape, v.tobytes()) if v.size <= 4096 else id(v)
        if isinstance(v, dict):
            return tuple(sorted((k, h(x)) for k, x in v.items()))
        if isinstance(v, (list, tuple)):
            return tuple(h(x) for x in v)
        return v
    return (d.op, d.args, h(d.params), d.dtype.str, d.shape)


def cse(g: Graph) -> bool:
    seen, changed = {}, False
    for n in g.order():
        d = g[n]
        if d.op == "input":
            continue
        k = _key(d)
        if k in seen:
            g.replace_uses(n, seen[k])
            changed = True
        else:
            seen[k] = n
    return changed


def fold_constants(g: Graph) -> bool:
    changed = False
    for n in g.order():
        d = g[n]
        if d.op in ("input", "const") or OPS[d.op].extra.get("placeholder"):
            continue
        shape_known = all(isinstance(s, int) for s in d.shape)
        args = d.args
        if not shape_known or int(np.prod(d.shape, dtype=np.int64)) > MAX_FOLD:
            continue
        if d.op == "count":
            src = g[args[0]].shape
            if not all(isinstance(src[a], int) for a in d.params["axes"]):
                continue
        elif not args or not all(g[a].op == "const" for a in args):
            if d.op != "iota":
                continue
        if d.op == "count":
            # only the reduced axes are static; the others may be symbolic sizes
            axes, src = d.params["axes"], g[args[0]].shape
            dummy = np.empty(tuple(s if i in axes else 1 for i, s in enumerate(src)), dtype=np.int8)
            v = OPS["count"].numpy(dummy, **d.params)
        else:
            with np.errstate(all="ignore"):
                v = OPS[d.op].numpy(*[g[a].params["value"] for a in args], **d.params)
        v = np.array(v, dtype=d.dtype)
        v.flags.writeable = False
        c = g.add("const", (), shape=v.shape, dtype=v.dtype, params={"value": v},
                  provenance=d.provenance, role=d.role)
        g.replace_uses(n, c)
        changed = True
    return changed


def rewrite(g: Graph, rules) -> bool:
    changed = False
    for n in g.order():
        if n not in g.nx or g[n].op in ("input", "const"):
            continue
        for rule in rules:
            r = rule(g, n)
            if r is not None and r != n:
                g.replace_uses(n, r)
                changed = True
                break
    return changed


# ----------------------------------------------------------------------------- scans
_optimized_bodies: dict = {}   # Body key -> its optimized Body (bodies are immutable)
MAX_OPTIMIZED_BODIES = 512     # (the oldest are forgotten: a long program traces many)


def merge_scans(g: Graph) -> bool:
    """A scan and the scan of the same loop extended to stack more of its step's values
    (the residuals its adjoint reads, control_flow.with_outputs) become one loop: the
    plain one's nodes are replaced by the extended one's outputs of the same index (the
    extension's first outputs are the plain step's)."""
    from .autodiff import group_key   # (passes come after autodiff)
    groups: dict = {}
    for n in g.order():
        d = g[n]
        if d.op == "scan":
            groups.setdefault(group_key(d), []).append(n)
    changed = False
    for key, nodes in groups.items():
        params = dict(key[2])
        body = params["body"]
        if body.base is None:
            continue
        plain = groups.get((key[0], key[1], tuple(sorted({**params, "body": body.base}.items()))))
        if not plain:
            continue
        mine = {g[n].params["index"]: n for n in nodes}
        like = g[nodes[0]]
        for n in plain:
            j = g[n].params["index"]
            if j not in mine:
                mine[j] = g.add("scan", like.args, shape=g[n].shape, dtype=g[n].dtype,
                                params={**like.params, "index": j}, provenance=g[n].provenance, role=g[n].role)
            g.replace_uses(n, mine[j])
            changed = True
    return changed


def optimize_scan_bodies(g: Graph) -> bool:
    """Each scan's step graph optimized by these same passes (once per step)."""
    changed = False
    for n in list(g.nx.nodes):
        d = g[n]
        if d.op not in ("scan", "while"):
            continue
        for name in ("body", "cond"):
            if name not in d.params:
                continue
            opt = _optimized(d.params[name])
            if opt is not d.params[name]:
                d.params = {**d.params, name: opt}
                changed = True
    return changed


def _optimized(body):
    opt = _optimized_bodies.get(body.key)
    if opt is None:
        from .ops.scan import Body
        og = optimize(body.graph)
        opt = body if og.text(sources=False) == body.graph.text(sources=False) else \
            Body(og, body.ncarry, body.nx, base=body.base, tag=body.tag, remat=body.remat)
        if len(_optimized_bodies) >= MAX_OPTIMIZED_BODIES:
            for k in list(_optimized_bodies)[:MAX_OPTIMIZED_BODIES // 2]:
                del _optimized_bodies[k]
        _optimized_bodies[body.key] = _optimized_bodies[opt.key] = opt
    return opt


def optimize(graph: Graph, *, stabilize=True, max_rounds=20) -> Graph:
    """Run every pass to a fixed point; returns a new graph."""
    g = graph.copy()
    rules = CANONICALIZE + (STABILIZE if stabilize else [])
    if any(d.op in ("scan", "while") for d in g.nx._node.values()):
        merge_scans(g)
        optimize_scan_bodies(g)
    for _ in range(max_rounds):
        changed = fold_constants(g)
        changed |= rewrite(g, rules)
        changed |= cse(g)
        changed |= dce(g)
        if not changed:
            break
    return g


def strip_custom(graph: Graph) -> Graph:
    """``graph`` with every custom_jvp/custom_vjp node replaced by its primal output
    (:mod:`gradc.ops.custom`), optimized again: what code generation gets.  A graph
    without such nodes comes back as it is.  Derivatives must be taken before this: the
    nodes are where the user's rules are found."""
    from .ops.custom import CUSTOM_OPS
    found = [n for n, d in graph.nx._node.items() if d.op in CUSTOM_OPS]
    if not found:
        return graph
    g = graph.copy()
    for n in found:
        d = g[n]
        g.replace_uses(n, d.args[d.params["index"]])
        g.remove(n)
    return optimize(g)
