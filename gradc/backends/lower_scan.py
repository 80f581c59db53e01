"""Lowering a scan nest (:mod:`gradc.ops.scan`): one :class:`~.loop_ir.ScanCall`, the
step's own kernel called once per step with each step's slices of ``xs`` and ``ys``.

The step kernel reads the carry from one buffer and writes the next into another,
which is copied back after each step (a carry is small beside the work of a step: a
GRU's 32 x 64 doubles are 16 KB).  Outputs the step kernel does not write itself (an
input passed through, a second name for one of its outputs) are copies after it.
"""
from __future__ import annotations

import numpy as np

from ..errors import GradcError
from .loop_ir import Bin, Const, Copy, ScanCall, numel, size
from .schedule import Schedule


def _bytes(shape, dtype):
    return Bin("mul", numel(shape), Const(np.dtype(dtype).itemsize))


def scan(s: Schedule, nest) -> list:
    g = s.graph
    first = nest.roots[0]
    step = s.scans[first]
    bs, bg = step.schedule, step.schedule.graph
    d = g[first]
    body = d["params"]["body"]
    nc, nx = body.ncarry, body.nx
    args = d["args"]
    length = size(g[args[nc]]["shape"][0]) if nx else size(d["params"]["length"])
    node_of = {g[n]["params"]["index"]: n for n in nest.roots}

    inputs, before = [], []
    for k, a in enumerate(args):
        ab = _bytes(g[a]["shape"], g[a]["dtype"])
        if k < nc:
            inputs.append((("carry", first, k, 0), None))
            before.append(Copy((("carry", first, k, 0), None), (a, None), ab))
        elif k < nc + nx:
            inputs.append((a, _bytes(g[a]["shape"][1:], g[a]["dtype"])))
        else:
            inputs.append((a, None))

    def dest(j):
        """Where output j of the step goes at step t."""
        o = bg.outputs[j]
        if j < nc:
            return (("carry", first, j, 1), None)
        nbytes = _bytes(step.shape(bg[o]["shape"]), bg[o]["dtype"])
        return (node_of[j], nbytes) if j in node_of else (("y", first, j), None)

    written = list(dict.fromkeys(o for o in bs.outputs if o in bs.roots))
    first_use = {}
    for j, o in enumerate(bg.outputs):
        first_use.setdefault(o, j)
    outputs = [dest(first_use[o]) for o in written]
    after_step = []
    for j, o in enumerate(bg.outputs):
        if o in bs.roots and first_use[o] == j:
            continue            # the step kernel writes it there
        if o in bs.roots:
            src = dest(first_use[o])
        elif bg[o]["op"] == "input":
            src = inputs[bg.inputs.index(o)]
        elif o in bs.consts:
            src = ("stepconst", bs.consts.index(o))
        else:
            raise GradcError(f"internal: the scan step's output {j} is neither computed, an input nor a constant")
        after_step.append(Copy(dest(j), src, _bytes(step.shape(bg[o]["shape"]), bg[o]["dtype"])))
    for k in range(nc):
        o = bg.outputs[k]
        after_step.append(Copy((("carry", first, k, 0), None), (("carry", first, k, 1), None),
                               _bytes(step.shape(bg[o]["shape"]), bg[o]["dtype"])))
    after = [Copy((node_of[k], None), (("carry", first, k, 0), None), _bytes(g[node_of[k]]["shape"], g[node_of[k]]["dtype"]))
             for k in range(nc) if k in node_of]
    sizes = [size(step.sizes[x]) if x in step.sizes else _unknown(x) for x in bs.symbols]
    from .workspace import workspace_layout
    ws = ("scanws", first, 0, 0) if workspace_layout(bs) else None
    # the step kernel's arguments after its outputs: its constants, then its own scans' tables
    return [ScanCall(first, ("scanfn", first), len(bs.consts) + len(bs.scans), length, bool(d["params"]["reverse"]), inputs,
                     outputs, sizes, ws, before, after_step, after)]


def _unknown(x):
    raise GradcError(f"internal: the scan step's size {x} is none of its inputs' sizes")
