"""The workspace: the memory a kernel needs besides its arguments and outputs.
workspace_layout is the one definition of its regions that every lowering and caller
follows (workspace_bytes sizes it for run-time sizes); _assign_slots lets buffers with
disjoint lifetimes share memory, and _in_place finds the element-wise results that may
overwrite a buffer they read.  schedule.schedule() assigns the slots; the code
generators and the call path read the layout."""
from __future__ import annotations

import numpy as np

from .schedule_index import is_reduction
from .schedule_types import Schedule


ALIGN = 64  # every workspace region starts on a cache line
PACKED_WIDTH = 16   # GRADC_SKINNY_MAX_N: a packed row of a narrow product's operand


def row_stride(block: int, dtype) -> int:
    """Elements between two chunks' blocks of a row-local value: the block rounded up to
    whole cache lines.  Chunks run on different threads at the same time, and two
    blocks in one line would move it between the cores on every block of rows.  (M2 at
    4096x256 on two threads of a Zen 4, where two chunks' blocks of 4 doubles shared a
    line: no difference measured, both kernels alternating in one process; a wider row
    type or a machine with costlier transfers would pay more.)"""
    per_line = ALIGN // np.dtype(dtype).itemsize
    return -(-block // per_line) * per_line


def workspace_layout(s: Schedule) -> list:
    """The workspace's regions in order, the one definition every lowering and caller
    follows.  Each region is a list of (key, shape, dtype): buffers with disjoint
    lifetimes sharing it (key: a node id, ("partial", node) for per-chunk partial
    results of shape (threads,) + shape, ("rows", node) for a row-local value's
    block of rows per chunk, ("sort", node) for a merge sort's scratch row).  A
    region's size is its largest buffer's, rounded up to ALIGN bytes."""
    g = s.graph
    regions = [[(n, g[n]["shape"], g[n]["dtype"]) for n in slot] for slot in s.slots]
    regions += [[(("partial", n), (s.threads,) + tuple(g[n]["shape"]), g[n]["dtype"])] for n in s.partials]
    # row-local values: one row block per chunk (memory, not the stack: LLVM's SROA would
    # turn a stack array into registers, and the block's rows would no longer be
    # consecutive stores for the SLP vectorizer to put in vector lanes)
    blocks = {n: nest.row_block for nest in s.nests for n in nest.roots}
    regions += [[(("rows", n), (s.threads, row_stride(blocks[n], g[n]["dtype"])), g[n]["dtype"])]
                for n in s.row_local]
    # a row pipeline's narrow operand W, packed once per call for the head's blocks
    # (runtime/skinny.c: gradc_skinny_pack, K x 16 elements at most)
    # and the tail's sum, padded to that width, per chunk
    for p in s.pipelines:
        w, x = g[p.head]["args"][1], p.x
        regions.append([(("packed", p.head), (g[w]["shape"][0], PACKED_WIDTH), g[w]["dtype"])])
        regions.append([(("padded", p.tail), (s.threads, g[x]["shape"][1], PACKED_WIDTH), g[x]["dtype"])])
    # a merge sort's second index buffer, one row long (the ranks are the first:
    # gradc.h's gradc_sort_rank_*), so a kernel that sorts allocates nothing
    for nest in s.nests:
        if nest.kind == "sort":
            (nid,) = nest.roots
            regions.append([(("sort", nid), tuple(g[g[nid]["args"][0]]["shape"][-1:]), np.dtype(np.int64))])
    # a scan: the carry a step reads and the one it writes, each output y's slot of one
    # step when the graph does not use that y, and the step kernel's own workspace (its
    # regions in order, so the step lays them out from their first as it would alone)
    for first, step in s.scans.items():
        for key, shape, dtype in scan_buffers(s, first):
            regions.append([(key, shape, dtype)])
        for tag, st in (("scanws", step), ("condws", step.cond)):
            if st is None:
                continue
            for r, region in enumerate(workspace_layout(st.schedule)):
                regions.append([((tag, first, r, i), st.shape(shape), dtype)
                                for i, (_key, shape, dtype) in enumerate(region)])
    return regions


def scan_buffers(s: Schedule, first: int) -> list:
    """(key, shape, dtype) of a scan nest's own buffers: ``("carry", first, k, 0)`` and
    ``("carry", first, k, 1)``, the two a carry leaf k is written into by turns, ``("y",
    first, j)`` one step of output j when no node of the graph takes it, and a while
    loop's ``("flag", first)``, its condition's bool."""
    step = s.scans[first]
    g, bg = s.graph, step.schedule.graph
    d = g[first]
    body = d["params"]["body"]
    out = [(("flag", first), (), np.dtype(np.bool_))] if step.cond is not None else []
    for k, o in enumerate(bg.outputs[:body.ncarry]):
        shape = step.shape(bg[o]["shape"])
        out += [(("carry", first, k, 0), shape, bg[o]["dtype"]), (("carry", first, k, 1), shape, bg[o]["dtype"])]
    taken = {g[n]["params"]["index"] for n in s.nests[nest_of(s, first)].roots}
    for j, o in enumerate(bg.outputs[body.ncarry:], body.ncarry):
        if j not in taken:
            out.append((("y", first, j), step.shape(bg[o]["shape"]), bg[o]["dtype"]))
    return out


def nest_of(s: Schedule, nid: int) -> int:
    """The nest whose roots hold ``nid``."""
    return next(k for k, nest in enumerate(s.nests) if nid in nest.roots)


def workspace_bytes(s: Schedule, sizes: dict) -> int:
    """Bytes of workspace the kernel needs for these run-time sizes."""
    total = 0
    for region in workspace_layout(s):
        biggest = 0
        for _key, shape, dtype in region:
            n = 1
            for x in shape:
                n *= x if isinstance(x, int) else sizes[x]
            biggest = max(biggest, n * np.dtype(dtype).itemsize)
        total += (biggest + ALIGN - 1) & -ALIGN
    return total


def _assign_slots(workspace, where, last_use, candidates):
    """Greedy interval packing: a buffer reuses the memory of one whose last reader ran
    in an earlier nest, or overwrites, element by element, one its own nest reads for
    the last time (``candidates``, see _in_place).  (A slot's size is the largest of
    its buffers, at run time.)  Returns the slots and {node: the buffer it overwrites}."""
    slots, free_after, in_place = [], [], {}
    for n in sorted(workspace, key=lambda n: where[n]):
        start, end = where[n], max(last_use.get(n, where[n]), where[n])
        for k, f in enumerate(free_after):
            over = slots[k][-1] in candidates.get(n, ()) and f == start
            if f < start or over:
                slots[k].append(n)
                free_after[k] = end
                if over:
                    in_place[n] = slots[k][-2]
                break
        else:
            slots.append([n])
            free_after.append(end)
    return slots, in_place


def _in_place(g, nests, where, reads_of, pipelines) -> dict:
    """{n: buffers n may overwrite in place}: n, an element-wise root of a loop nest, may
    take the memory of a buffer r it reads at its own element when nothing reads r after
    n has written that element.  So r has n's shape and dtype, and within n's nest
    every root that reads r (n too) reads it at its own element (the identity index
    map), n in the same pass over a row, the others in an earlier pass (stage) of the
    row or not at all; rows, blocks of rows and threads' chunks never share elements.
    (Readers in later nests are excluded by the caller: r's last reader is n's nest.)
    Writing the softmax of attention's 2048x2048 scores over their exponentials, or a
    layer's backward dZ = dA * (1 - A**2) over dA, one stream of memory instead of two.
    Not in a row pipeline (its products read blocks of rows), nor in a nest whose rows
    run in blocks (Nest.row_block): there LLVM's vectorizer checks at run time that the
    block's rows of the two buffers do not overlap, finds that they do (they are one
    buffer) and runs the scalar loop: a tanh layer beside a softmax head took 1.7 ms
    in place and 0.62 ms not (2048 x 64, one thread)."""
    in_pipe = {j for p in pipelines for j in range(p.first, p.last + 1)}
    out: dict = {}
    for j, nest in enumerate(nests):
        if nest.kind != "loop" or j in in_pipe or nest.row_block > 1:
            continue
        ident = tuple(range(len(nest.domain)))
        for n in nest.roots:
            info = nest.info[n]
            if is_reduction(g, n) or info["level"] != "full" or tuple(g[n]["shape"]) != tuple(nest.domain):
                continue
            for r, m in reads_of[n].items():
                if m != ident or r == n or g[r]["dtype"] != g[n]["dtype"] \
                        or tuple(g[r]["shape"]) != tuple(g[n]["shape"]):
                    continue
                if where.get(r) == j and not nest.info[r]["stage"] < info["stage"]:
                    continue
                readers = [u for u in nest.roots if r in reads_of[u]]
                if all(reads_of[u][r] == ident and nest.info[u]["level"] == "full"
                       and (u == n or nest.info[u]["stage"] < info["stage"]) for u in readers):
                    out.setdefault(n, []).append(r)
    return out
