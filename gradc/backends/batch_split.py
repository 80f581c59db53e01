"""Split a batch, not the loops: every core runs the whole gradient on its part of the rows.

A model's loss is usually a sum (or mean) over the rows of a batch of what each row
contributes, and its gradient then is too: ``dW1 = X^T @ dA`` adds one term per row.
Run on half the rows, the same graph gives half of each sum, so two threads can each
take half of the batch through the whole forward and backward pass and add their
results.  For a small MLP that is the only parallelism worth having: its products are
too small to split (each thread's operands sit in its own core's cache), and a pool
woken for every nest costs more than the nest (a two-layer MLP on 64 rows: 25 µs on
one core, 14 µs on half the rows).

:func:`plan` decides whether a graph splits that way, and over which size symbol.  It
classifies every node:

* ``row``: has the batch as its leading axis, row ``i`` computed from row ``i`` of the
  batch inputs alone (element-wise ops, ``rows @ W``, sums over other axes, reshapes
  and broadcasts that keep the leading axis);
* ``rowT``: the transpose of a 2-d ``row`` value (``X^T``), only ever contracted with
  another row value over the batch;
* ``red``: a sum over the batch (``sum(.., axis=0)``, ``X^T @ G``) or a linear function
  of such sums (scaled by a batch-free value, added to another, reshaped): halves add.
  A batch-free term added to one (a regularizer, and its gradient) is added by the
  first part alone;
* ``free``: no batch axis and no batch data (the parameters, constants, and counts of
  elements, which the split graph takes as inputs: a mean over the batch divides by
  the whole batch's count, not the part's).

Anything else (a max over the batch, ``x - mean(x, axis=0)``, the log of a mean,
gathers, slices along the batch, linear algebra) keeps the graph whole.
Every output must be ``row`` (each part writes its rows), ``red`` (the parts' results
are added, in part order: the same bits on every call for a given thread count) or
``free`` (the first part's result).  The call path (runtime/callpath.c,
``Plan.set_split``) runs the parts on gradc's pool."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ..evaluate import product_macs
from ..graph import Graph
from ..ops import OPS

ROW, ROWT, RED, FREE = "row", "rowT", "red", "free"
MIN_PART_ROWS = 16          # a part's products still fill a vector register's rows
MIN_WORK = 100_000          # multiply-adds of the products: below, waking the pool costs more
MIN_CHUNK_ROWS = 256        # a part's chunk: its products still run near the machine's peak
OUTPUT_KINDS = {ROW: 0, RED: 1, FREE: 2}   # runtime/callpath.c's out_kind codes

_LINEAR_IN_FIRST = {"mul", "div"}           # red (op) free stays red
_STRUCTURE = {"reshape", "transpose", "broadcast_to"}


def chunk_bytes() -> int:
    """About how many bytes of workspace and row data one chunk of a part may touch
    (GRADC_SPLIT_CHUNK_BYTES; 0: a part runs all its rows at once).  A part of a large
    batch runs its rows in chunks so that its intermediates stay in cache between the
    nests that write and read them, where half a large batch's went to memory and back.
    Default: an eighth of the last-level cache."""
    import os
    env = os.environ.get("GRADC_SPLIT_CHUNK_BYTES")
    if env is not None and env.strip():
        try:
            return max(0, int(float(env)))
        except ValueError:
            raise ValueError(f"GRADC_SPLIT_CHUNK_BYTES must be a number of bytes, got {env!r}") from None
    from .schedule import last_level_cache_bytes
    return last_level_cache_bytes() // 8


@dataclass
class Split:
    """How a graph splits over its batch.  ``graph``: the graph a part runs, whose
    counts over the batch are extra scalar inputs after the original ones (and then,
    with ``first``, a bool true in the first part only); ``counts``:
    each such input's counted dims (ints or size symbols: the whole batch's count is
    their product) and dtype; ``row_inputs``: per original input, whether the batch is
    its leading axis; ``outputs``: per graph output, its kind (row, red or free);
    ``work_per_row``: the products' multiply-adds per row at the traced sizes."""
    graph: Graph
    symbol: str
    row_inputs: tuple
    counts: tuple
    outputs: tuple
    work_per_row: float
    least: int = 0          # the graph's own minimum size of the batch (Graph.minimum)
    first: bool = False     # the part graph takes a last input: true in the first part only

    def min_rows(self, parts: int) -> int:
        """Rows below which the call runs whole (too little work to share)."""
        by_work = int(np.ceil(MIN_WORK / max(self.work_per_row, 1e-9)))
        return max(parts * max(MIN_PART_ROWS, self.least), by_work)


def plan(g: Graph) -> Split | None:
    """The split of ``g`` over a batch, or None when it does not split."""
    if not any(g[n]["op"] in ("matmul", "contract") for n in g.nx.nodes):
        return None            # element-wise and reduction nests split their loops already
    leading = [g[i]["shape"][0] for i in g.inputs if g[i]["shape"] and isinstance(g[i]["shape"][0], str)]
    for sym in sorted(set(leading), key=lambda s: (-leading.count(s), s)):
        cls = _classify(g, sym)
        if cls is not None:
            split = _build(g, sym, cls)
            if split is not None:
                return split
    return None


def _classify(g: Graph, sym: str) -> dict | None:
    cls = {}
    for n in g.order():
        c = _kind(g, n, sym, cls)
        if c is None:
            return None
        cls[n] = c
    return cls


def _kind(g: Graph, n: int, sym: str, cls: dict) -> str | None:
    d = g[n]
    op, shape, args = d["op"], d["shape"], d["args"]
    has = sym in shape
    if op == "input":
        if not has:
            return FREE
        return ROW if shape[0] == sym and sym not in shape[1:] else None
    if op == "count":             # depends on sizes only; the split graph takes it as an input
        return FREE
    if op in ("const", "iota"):
        return None if has else FREE
    kinds = [cls[a] for a in args]
    if RED in kinds:
        # a sum over the batch brought back to the rows (``z + sum(z, axis=0)``) is no
        # sum of the parts' values
        return None if has else _linear(g, n, kinds)
    if ROWT in kinds:
        return RED if op == "matmul" and _contracts_batch(g, n, sym, cls) else None
    if ROW not in kinds:          # batch-free arguments
        if not has:
            return FREE
        # a batch-free value broadcast along the rows: each part broadcasts its own
        return ROW if op == "broadcast_to" and shape[0] == sym and sym not in shape[1:] else None
    spec = OPS.get(op)
    if spec is not None and spec.kind == "elementwise":
        # a row argument of lower rank would line its rows up with a later axis
        ok = shape and shape[0] == sym and sym not in shape[1:] and all(
            k != ROW or len(g[a]["shape"]) == len(shape) for a, k in zip(args, kinds))
        return ROW if ok else None
    if op == "contract":          # x^T G over every row: the batch's rows among them
        return RED if kinds == [ROW, ROW] and not has else None
    if op == "matmul":
        if _contracts_batch(g, n, sym, cls):
            return RED
        a, b = args
        rows_times_w = kinds == [ROW, FREE] and len(g[a]["shape"]) >= 2 and len(g[b]["shape"]) <= 2
        stacks = kinds == [ROW, ROW] and len(g[a]["shape"]) == len(g[b]["shape"]) > 2   # a row's own matrices
        ok = (rows_times_w or stacks) and shape[0] == sym and sym not in shape[1:]
        return ROW if ok else None
    if op in ("sum", "max", "min", "logsumexp"):
        axes = tuple(d["params"]["axes"])
        if 0 in axes:             # across the rows: only a sum adds up over the parts
            return RED if op == "sum" and not has else None
        return ROW if shape and shape[0] == sym and sym not in shape[1:] else None
    if op == "transpose":
        perm = tuple(d["params"]["perm"])
        if perm[0] == 0 and sym not in shape[1:]:
            return ROW
        return ROWT if perm == (1, 0) else None
    if op in ("reshape", "broadcast_to"):
        (a,) = args
        ok = (len(g[a]["shape"]) >= 1 and shape and shape[0] == sym and sym not in shape[1:]
              and (op == "reshape" or len(g[a]["shape"]) == len(shape)))
        return ROW if ok else None
    return None


def _contracts_batch(g: Graph, n: int, sym: str, cls: dict) -> bool:
    """``a @ b`` summing over the batch: a is ``X^T`` (or a row vector), b has the batch
    as its leading axis, and the result has no batch axis."""
    a, b = g[n]["args"]
    sa, sb = g[a]["shape"], g[b]["shape"]
    a_ok = (cls[a] == ROWT and len(sa) == 2) or (cls[a] == ROW and len(sa) == 1)
    b_ok = cls[b] == ROW and len(sb) in (1, 2)
    return a_ok and b_ok and sa[-1] == sym and sb[0] == sym and sym not in g[n]["shape"]


def _linear(g: Graph, n: int, kinds: list) -> str | None:
    """A node reading a sum over the batch stays one (halves add) only if it is linear
    in it: sum + sum, sum * free, sum / free, -sum, reshapes and sums of it; and sum +
    free, whose free term only the first part adds (``_first_part_terms``)."""
    op = g[n]["op"]
    if op in ("add", "sub"):
        # + free (a regularizer): the part graph adds it in the first part only
        return RED if FREE not in kinds or g[n]["dtype"].kind == "f" else None
    if op in _LINEAR_IN_FIRST and kinds == [RED, FREE]:
        return RED
    if op == "mul" and kinds == [FREE, RED]:
        return RED
    if op in ("neg", "sum") or op in _STRUCTURE:
        return RED
    if op == "cast" and np.issubdtype(g[n]["dtype"], np.floating):
        return RED
    return None


def _build(g: Graph, sym: str, cls: dict) -> Split | None:
    outs = []
    for o in g.outputs:
        d = g[o]
        if d["op"] in ("input", "count") or cls[o] == ROWT:
            return None          # outputs a part does not compute into a buffer of its own
        if cls[o] == RED and d["dtype"] not in (np.float64, np.float32):
            return None          # the call path adds floating-point results only
        outs.append(cls[o])
    if RED not in outs:
        return None
    half = g.copy()
    counts = []
    for n in g.order():
        d = g[n]
        if d["op"] != "count":
            continue
        counted = tuple(g[d["args"][0]]["shape"][a] for a in d["params"]["axes"])
        if sym not in counted:
            continue
        for a in set(half[n]["args"]):
            half.nx.remove_edge(a, n)
        node = half[n]
        node.op, node.args, node.params = "input", (), {"index": len(half.inputs)}
        half.inputs.append(n)
        counts.append((counted, np.dtype(d["dtype"])))
    first = _first_part_terms(g, half, cls)
    work = product_macs(g, defaultdict(lambda: 1, g.example))   # at the traced sizes
    rows = g.example.get(sym, 0)
    return Split(half, sym, tuple(bool(g[i]["shape"]) and g[i]["shape"][0] == sym for i in g.inputs),
                 tuple(counts), tuple(outs), work / rows if rows else 0.0, int(g.minimum.get(sym, 0)), first)


def _first_part_terms(g: Graph, half: Graph, cls: dict) -> bool:
    """A batch-free term added to a sum over the batch (a regularizer, its gradient) is
    the whole batch's once, not once per part: in ``half`` it becomes ``where(first, term,
    0)``, ``first`` a boolean input after the counts that only the first part gets true
    (a select, not a product: an infinite term stays infinite, not NaN).  True if any."""
    terms = [(n, k) for n in g.order() if cls[n] == RED and g[n]["op"] in ("add", "sub")
             for k, a in enumerate(g[n]["args"]) if cls[a] == FREE]
    if not terms:
        return False
    flag = half.add("input", shape=(), dtype=np.bool_, params={"index": len(half.inputs)})
    half.inputs.append(flag)
    gated = {}
    for n, k in terms:
        a = g[n]["args"][k]
        if a not in gated:
            d = g[a]
            zero = half.add("const", shape=(), dtype=d["dtype"], params={"value": np.zeros((), d["dtype"])})
            gated[a] = half.add("where", (flag, a, zero), shape=d["shape"], dtype=d["dtype"])
        args = list(half[n]["args"])
        args[k] = gated[a]
        if a not in args:
            half.nx.remove_edge(a, n)
        half[n]["args"] = tuple(args)
        half.nx.add_edge(gated[a], n)
    return True
