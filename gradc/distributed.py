"""Data-parallel calls on Dask: a gradc function called with dask arrays chunked along
their first (sample) axis runs its compiled kernel on each chunk, on the workers, and
adds the chunks' results in a tree.  The calling process never holds the data.

Adding per-chunk results is right only when the function's output is a sum (or mean)
over the samples of per-sample terms, plus terms that do not depend on the data.  gradc
proves this from the traced forward graph before it runs anything (:func:`analyze`):

* *per-sample* nodes: those whose shape has a sample axis.  Each must be row-local --
  its row i depends on row i of its arguments only (element-wise ops, reductions over
  other axes, matrix products that keep the sample axis, slices and reshapes that keep
  it, gathers that pick within a row).
* *partial sums*: a ``sum`` over the sample axis, or a matrix product contracting it.
  A chunk's value is its share of the whole; the chunks' values add up to it.
* ``count`` over the sample axis (the divisor of a mean) becomes the total count over
  all chunks, an input of the per-chunk kernel: a chunk's mean is weighted by its size.
* after a partial sum only linear operations with data-independent coefficients:
  ``add``/``sub``, ``neg``, ``mul`` and ``div`` by data-independent values, ``sum``,
  reshapes, slices, transposes, matrix products with data-independent matrices.  A term
  they add that does not depend on the data (a regularizer) is counted by the first
  chunk only (it is multiplied by an input that is 1 there and 0 elsewhere).

Then the output is exactly the sum of the per-chunk outputs, and so are its derivatives
with respect to the (not chunked) parameters.  Anything else -- a max over the
samples, a ``log`` of a sum, an output that keeps the sample axis, reading
``X.shape[0]`` -- raises :class:`gradc.GradcError` naming the node and the user's line.

Parameters (the arguments that are not dask arrays) are sent to each worker once per
call (``Client.scatter(..., broadcast=True)``); the per-chunk function is sent once per
client and compiled once per worker process.  See docs/distributed.md."""
from __future__ import annotations

import inspect
import math

import numpy as np

from .api import (FOREIGN_ARRAYS, Transformed, _bind_args, _check_argnums, _float_dtype, _is_literal, _names,
                  prepare)
from .errors import ArgumentError, GradcError
from .tracer import bind, replay
from .tree_util import tree_flatten, tree_unflatten

SUPPORTED = ("jit", "grad", "value_and_grad")
SPLIT_EVERY = 8   # partial results combined per task: the tree is ceil(log8 chunks) deep

# How each op may follow a partial sum and stay linear in it.  The value says which
# arguments may depend on the partial sums: "any" (add/sub/concatenate: the others are
# constant terms, counted once), "one" (mul, matmul: exactly one), "first" (div,
# gather: the numerator / the gathered array), "all" (unary structure ops).
_LINEAR = {"add": "any", "sub": "any", "concatenate": "any", "mul": "one", "matmul": "one",
           "div": "first", "gather": "first", "neg": "all", "reshape": "all",
           "broadcast_to": "all", "slice": "all", "transpose": "all", "sum": "all",
           "stop_gradient": "all", "cast": "all"}
_SOURCE_INDEX = ("reshape", "broadcast_to", "cast")   # ops an iota may pass through to a gather


def is_dask(x) -> bool:
    """A dask array (checked without importing dask)."""
    return type(x).__module__.split(".")[0] == "dask" and hasattr(x, "chunks")


def _where(graph, nid) -> str:
    d = graph[nid]
    args = " ".join(graph.label(a) for a in d["args"])
    src = f" ({graph.source(nid)})" if graph.source(nid) else ""
    return f"%{nid} = {d['op']} {args}{src}"


class Split:
    """What :func:`analyze` proved: the count nodes to replace by the total count, the
    constant terms (``(node, argument position)``, or ``(output, None)``) to count once."""

    def __init__(self, counts, constants):
        self.counts, self.constants = counts, constants


def analyze(graph, chunked: list[int], fname: str) -> Split:
    """Prove that ``graph``'s outputs are sums over the samples of the ``chunked``
    inputs (positions in ``graph.inputs``) plus data-independent terms; raise
    GradcError saying where it is not so."""
    samples = set()
    for pos in chunked:
        nid = graph.inputs[pos]
        dim = graph[nid]["shape"][0]
        if isinstance(dim, int):
            raise GradcError(f"{fname}: argument {graph[nid]['name']!r} is chunked over its first axis, but its "
                             f"size there is fixed at {dim} in the traced graph: the function reads "
                             f"{graph[nid]['name']}.shape[0] or len({graph[nid]['name']}), or slices along the "
                             "rows (z[1:]); a chunk would compute with its own size.  Use np.mean / np.sum over "
                             "the rows, which gradc weights by each chunk's size")
        samples.add(dim)
    for pos, nid in enumerate(graph.inputs):
        if pos not in chunked and any(d in samples for d in graph[nid]["shape"]):
            raise GradcError(f"{fname}: argument {graph[nid]['name']!r} has the sample axis's size but is not a "
                             "dask array; pass it as a dask array chunked like the data")

    def sample_axis(nid):
        axes = [k for k, d in enumerate(graph[nid]["shape"]) if d in samples]
        if len(axes) > 1:
            raise GradcError(f"{fname}: {_where(graph, nid)} pairs every sample with every other one "
                             "(two sample axes); it does not split over chunks")
        return axes[0] if axes else None

    kind = {}            # node -> "row" (per sample), "index" (row numbers), "partial" (linear in sums), "const"
    counts, constants = [], []
    for nid in graph.order():
        d = graph[nid]
        op, args = d["op"], d["args"]
        ax = sample_axis(nid)
        akinds = [kind[a] for a in args]
        if op == "input":
            kind[nid] = "row" if ax is not None else "const"
        elif ax is not None:
            kind[nid] = _row_kind(graph, nid, ax, akinds, sample_axis, fname)
        elif any(k in ("row", "index") for k in akinds):
            # a per-sample value leaves the sample axis: a sum over it, or a count
            a0 = args[0]
            a_ax = sample_axis(a0)
            if op == "count" and a_ax in d["params"]["axes"]:
                counts.append(nid)
                kind[nid] = "const"
            elif op == "count":
                kind[nid] = "const"
            elif op == "sum" and a_ax in d["params"]["axes"] and kind[a0] == "row":
                kind[nid] = "partial"
            elif op == "matmul" and all(kind[a] == "row" for a in args):
                kind[nid] = "partial"     # contracts the sample axis of both: a sum of products
            else:
                raise GradcError(f"{fname}: {_where(graph, nid)} combines the samples by {op}, which does not split "
                                 "over chunks; gradc splits a function that sums or averages per-sample terms")
        elif "partial" in akinds:
            rule = _LINEAR.get(op)
            n_partial = akinds.count("partial")
            ok = rule is not None and (rule in ("any", "all") or (rule == "one" and n_partial == 1)
                                       or (rule == "first" and akinds[0] == "partial" and n_partial == 1))
            if op == "cast" and np.dtype(d["dtype"]).kind != "f":
                ok = False
            if not ok:
                what = "a product of two sums over the samples" if rule == "one" else \
                    f"{op} of a sum over the samples, which is not linear in it"
                raise GradcError(f"{fname}: {_where(graph, nid)} is {what}; the output must be a sum or mean of "
                                 "per-sample terms plus terms that do not depend on the data, to split over chunks")
            if rule == "any":
                constants += [(nid, k) for k, kk in enumerate(akinds) if kk == "const"]
            kind[nid] = "partial"
        else:
            kind[nid] = "const"
    for o in graph.outputs:
        if kind[o] in ("row", "index"):
            raise GradcError(f"{fname}: the output {_where(graph, o)} keeps the sample axis; gradc splits over chunks "
                             "only functions that sum or average over the samples")
        if kind[o] == "const":
            constants.append((o, None))
    return Split(counts, constants)


def _row_kind(graph, nid, ax, akinds, sample_axis, fname) -> str:
    """A node with a sample axis: "row" if its row i depends on row i of its arguments only."""
    d = graph[nid]
    op, args, params = d["op"], d["args"], d["params"]
    from .ops.registry import OPS
    spec = OPS.get(op)
    if "partial" in akinds:
        raise GradcError(f"{fname}: {_where(graph, nid)} broadcasts a sum over the samples back over the samples; "
                         "it does not split over chunks")
    if op == "iota":
        return "index" if params["axis"] == ax else "const"
    if "index" in akinds:
        if op in _SOURCE_INDEX:
            return "index"
        if not (op == "gather" and akinds[0] != "index"):
            raise GradcError(f"{fname}: {_where(graph, nid)} uses the row numbers within a chunk as values; "
                             "they differ from the row numbers of the whole array")
    if spec is not None and spec.kind == "elementwise":
        return "row"
    if op in ("sum", "max", "min", "logsumexp", "count"):
        a_ax = sample_axis(args[0])
        if a_ax is None or a_ax not in params["axes"]:
            return "row"
    elif op in ("transpose", "broadcast_to"):
        return "row"
    elif op == "matmul":
        return "row"         # the sample axis is in the output: it is not contracted
    elif op == "reshape":
        a_shape, shape = graph[args[0]]["shape"], d["shape"]
        a_ax = sample_axis(args[0])
        if a_ax is not None and all(x == 1 for x in a_shape[:a_ax]) and all(x == 1 for x in shape[:ax]):
            return "row"
    elif op == "slice":
        a_ax = sample_axis(args[0])
        if a_ax is None or tuple(params["index"][a_ax]) in ((0, None, 1),):
            return "row"
    elif op == "concatenate":
        if params["axis"] != ax:
            return "row"
    elif op == "gather":
        a_ax = sample_axis(args[0])
        if a_ax is None:
            return "row"
        index = args[1 + a_ax]
        while graph[index]["op"] in _SOURCE_INDEX:
            index = graph[index]["args"][0]
        if graph[index]["op"] == "iota" and graph[index]["params"]["axis"] == sample_axis(index):
            return "row"
    raise GradcError(f"{fname}: {_where(graph, nid)} mixes different samples (rows of the chunked data); "
                     "it does not split over chunks")


class ChunkFunction:
    """The function each chunk runs: the user's forward graph replayed with every count
    over the samples replaced by the total count, and the constant terms multiplied by
    ``first`` (1 on the first chunk, 0 on the others).  Its outputs, summed over the
    chunks, are the user's function's on the whole data."""

    def __init__(self, graph, split: Split, structure, names):
        self.graph, self.split, self.structure, self.n_args = graph, split, structure, len(names)
        self.__name__ = graph.name
        params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names]
        params += [inspect.Parameter(f"total_count{k}", inspect.Parameter.POSITIONAL_OR_KEYWORD)
                   for k in range(len(split.counts))]
        params.append(inspect.Parameter("first_chunk", inspect.Parameter.POSITIONAL_OR_KEYWORD))
        self.__signature__ = inspect.Signature(params)

    def __call__(self, *args):
        n = self.n_args
        user, totals, first = _leaves(args[:n]), args[n:-1], args[-1]
        total_of = dict(zip(self.split.counts, totals))
        scale = {}
        for nid, k in self.split.constants:
            scale.setdefault(nid, set()).add(k)

        def once(v):
            return bind("mul", v, bind("cast", first, dtype=v.dtype))

        def rewrite(graph, nid, vals):
            if nid in total_of:
                return bind("cast", total_of[nid], dtype=graph[nid]["dtype"])
            ks = scale.get(nid, set()) - {None}
            if ks:
                vals = [once(v) if k in ks else v for k, v in enumerate(vals)]
                return bind(graph[nid]["op"], *vals, **graph[nid]["params"])
            return None
        env = replay(self.graph, list(user), rewrite)
        outs = [once(env[o]) if None in scale.get(o, ()) else env[o] for o in self.graph.outputs]
        return tree_unflatten(self.structure, outs)


class Plan:
    """One signature's proof and per-chunk function, kept on the transformed function."""

    def __init__(self, chunk_fn, split, graph):
        self.chunk_fn, self.split, self.graph = chunk_fn, split, graph
        self.scattered = {}      # client id -> future of chunk_fn on the workers


def _leaves(args) -> list:
    """The arguments' leaves in the graph's input order (a dask array is one leaf)."""
    out = []
    for a in args:
        out += [a] if is_dask(a) else tree_flatten(a, is_leaf=_is_literal)[0]
    return out


def _add(*parts):
    """Add partial results (pytrees of arrays and scalars) leaf by leaf."""
    flat = [tree_flatten(p)[0] for p in parts]
    total = flat[0]
    for leaves in flat[1:]:
        total = [a + b for a, b in zip(total, leaves)]
    return tree_unflatten(tree_flatten(parts[0])[1], total)


def _run_chunk(fn, *args):
    return fn(*args)


def _signature_key(args):
    key = []
    for a in args:
        if is_dask(a):
            key.append(("dask", a.dtype.str, a.ndim))
        else:
            leaves, tree = tree_flatten(a, is_leaf=_is_literal)
            key.append((str(tree),) + tuple((np.asarray(x).dtype.str, np.ndim(x),
                                             tuple(s == 1 for s in np.shape(x))) for x in leaves))
    return tuple(key)


def _align_rows(arrays, fname, names):
    """The chunked arguments, rechunked to share the first one's row chunks (and one
    chunk along their other axes); a chunk of one row joins its neighbour."""
    rows = arrays[0].chunks[0]
    for a, n in zip(arrays, names):
        if any(math.isnan(c) for c in a.chunks[0]):
            raise ArgumentError(f"{fname}: dask argument {n!r} has chunks of unknown size; call "
                                f"{n}.compute_chunk_sizes() (or to_dask_array(lengths=True)) first")
        if a.shape[0] != arrays[0].shape[0]:
            raise ArgumentError(f"{fname}: dask argument {n!r} has {a.shape[0]} rows, but {names[0]!r} has "
                                f"{arrays[0].shape[0]}; chunked arguments must have the same number of rows")
    rows = list(rows)
    while len(rows) > 1 and min(rows) < 2:   # a one-row chunk would trace as a fixed size 1
        k = rows.index(min(rows))
        j = k - 1 if k > 0 else k + 1
        rows[min(j, k)] += rows[max(j, k)]
        del rows[max(j, k)]
    if rows[0] < 2 and len(rows) == 1:
        raise ArgumentError(f"{fname}: dask argument {names[0]!r} has fewer than 2 rows")
    return [a.rechunk((tuple(rows),) + tuple(-1 for _ in a.shape[1:])) for a in arrays], rows


def lazy(t, *args, **kwargs):
    """The call ``t(*args)`` as a ``dask.delayed`` object: ``.compute()`` runs it (on
    the default ``dask.distributed`` client if there is one) and returns numpy arrays,
    the same structure as ``t(*args)`` with numpy arguments."""
    import dask
    fname = t.name
    if t.kind not in SUPPORTED:
        raise ArgumentError(f"{t.kind}({fname}): dask arrays are supported by {', '.join(SUPPORTED)}; "
                            f"call {t.kind} on numpy arrays")
    if getattr(t, "has_aux", False):
        raise ArgumentError(f"{t.kind}({fname}, has_aux=True): dask arrays are not supported with has_aux "
                            "(an aux value has no rule for adding chunks); call it on numpy arrays")
    args = _bind_args(t.fun, args, kwargs, fname)
    names = _names(t.fun, len(args))
    chunked = [k for k, a in enumerate(args) if is_dask(a)]
    for k in chunked:
        a = args[k]
        if a.ndim == 0 or a.ndim > 2 or np.dtype(a.dtype) not in (np.float32, np.float64) and np.dtype(a.dtype).kind not in "biu":
            raise ArgumentError(f"{fname}: dask argument {names[k]!r} is {a.dtype}[{a.ndim}-d]; expected a float32, "
                                "float64, int or bool array of rank 1 or 2 chunked along its first axis")
    wrt = _check_argnums(t.argnums, len(args), fname) if t.kind in ("grad", "value_and_grad") else ()
    bad = [names[k] for k in chunked if k in wrt]
    if bad:
        raise ArgumentError(f"{t.kind}({fname}): cannot differentiate with respect to {bad[0]!r}, a dask array "
                            "chunked over samples; differentiate with respect to the parameters (numpy arrays)")
    blocks, rows = _align_rows([args[k] for k in chunked], fname, [names[k] for k in chunked])
    plan = _plan(t, args, chunked, max(rows), names)
    params = [a for k, a in enumerate(args) if k not in chunked]
    totals = _totals(plan, args)

    client = _client()
    if client is not None:
        fn = plan.scattered.get(client.id)
        if fn is None or fn.status != "finished":
            fn = plan.scattered[client.id] = client.scatter(plan.chunk_fn, broadcast=True, hash=False)
        params = client.scatter(params, broadcast=True, hash=False) if params else []
    else:
        fn = plan.chunk_fn
    per_block = []
    for a in blocks:
        d = a.to_delayed()
        per_block.append(list(d.reshape(-1)))
    run = dask.delayed(_run_chunk, pure=False)   # pure=True would hash (pickle) fn per task
    parts = []
    for i in range(len(rows)):
        it = iter(params)
        call_args = [per_block[chunked.index(k)][i] if k in chunked else next(it) for k in range(len(args))]
        first = np.array(1.0 if i == 0 else 0.0, plan.dtype)
        parts.append(run(fn, *call_args, *totals, first))
    add = dask.delayed(_add, pure=False)
    while len(parts) > 1:
        parts = [add(*parts[i:i + SPLIT_EVERY]) if len(parts[i:i + SPLIT_EVERY]) > 1 else parts[i]
                 for i in range(0, len(parts), SPLIT_EVERY)]
    return parts[0]


def call(t, args, kwargs):
    """``t(*args)`` with dask arguments: computed on the cluster, returned as numpy."""
    return lazy(t, *args, **kwargs).compute()


FOREIGN_ARRAYS["dask"] = call


def _client():
    """The dask.distributed client that ``compute`` will use, if it is one."""
    import dask.base
    try:
        from distributed import default_client
        client = default_client()
    except (ImportError, ValueError):
        return None
    return client if getattr(dask.base.get_scheduler(), "__self__", None) is client else None


def _plan(t, args, chunked, rows, names) -> Plan:
    key = _signature_key(args)
    plans = t.__dict__.setdefault("_dask_plans", {})
    if key in plans:
        return plans[key]
    # Stand-ins with the chunks' shapes and dtypes (zero-stride: no memory) to trace on.
    stand = [np.broadcast_to(np.zeros((), a.dtype), (rows,) + tuple(a.shape[1:])) if k in chunked else a
             for k, a in enumerate(args)]
    tj = Transformed(t.fun, "jit")
    flat = tj._flatten(stand)
    arrays = prepare(flat.leaves, (), t.name, flat.labels, flat.positions)
    specs, spec_names = tj._specs_names(arrays, flat)
    try:
        _unopt, forward, _g, structure, _captured = tj.build(specs, spec_names, flat)
    except GradcError as e:
        rows_total = args[chunked[0]].shape[0]
        same = [names[k] for k, a in enumerate(args)
                if k not in chunked and np.ndim(a) >= 1 and np.shape(a)[0] == rows_total]
        if not same:
            raise
        raise type(e)(f"{e} (traced on one chunk of the dask arguments: argument {same[0]!r} has the sample "
                      "axis's size but is not a dask array; pass it as a dask array chunked like the data)") from None
    split = analyze(forward, [flat.spans[k][0] for k in chunked], t.name)
    chunk_fn = ChunkFunction(forward, split, structure, names)
    runner = Transformed(chunk_fn, t.kind, t.argnums, t._backend, t._debug_nans)
    plans[key] = plan = Plan(runner, split, forward)
    plan.dtype = _float_dtype(arrays)   # of the extra inputs: they must not promote a float32 call
    return plan


def _totals(plan, args):
    """Each replaced count's value over the whole data: the product of the counted axes'
    sizes (a dask argument's shape is the whole array's)."""
    g = plan.graph
    sizes = {}
    for nid, a in zip(g.inputs, _leaves(args)):
        for d, n in zip(g[nid]["shape"], getattr(a, "shape", None) or np.shape(a)):
            sizes[d] = int(n)
    out = []
    for nid in plan.split.counts:
        shape = g[g[nid]["args"][0]]["shape"]
        dims = [shape[x] if isinstance(shape[x], int) else sizes.get(shape[x]) for x in g[nid]["params"]["axes"]]
        if None in dims:
            raise GradcError(f"internal: the size of {_where(g, nid)} is not one of the arguments' sizes")
        n = math.prod(dims)
        out.append(np.array(n, plan.dtype))
    return out
