"""Lowering a scan nest (:mod:`gradc.ops.scan`): one :class:`~.loop_ir.ScanCall`, the
step's own kernel called once per step with each step's slices of ``xs`` and ``ys``.

A carry is not copied from step to step: the step reads it where the step before wrote
it (at first, the initial carry's own buffer) and writes the next one into the other of
two buffers, or straight into the step's slice of a ``y`` that stacks it (the residuals
of an adjoint keep the step's new carry: the RNN's hidden state), which the step after
reads in place.  Outputs the step kernel does not write itself (an input passed
through, a second name for one of its outputs) are copies after it.
"""
from __future__ import annotations

import numpy as np

from ..errors import GradcError
from ..ops.scan import while_inputs
from .loop_ir import Bin, Const, Copy, LoopCond, ScanCall, numel, size
from .schedule import Schedule
from .schedule_types import step_tables
from .workspace import workspace_layout


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
    cond = None
    if d["op"] == "while":
        c_args, args = while_inputs(args, nc, d["params"]["ncond"])
        length = None
        cond = _cond(first, step.cond, c_args, nc)
    else:
        length = size(g[args[nc]]["shape"][0]) if nx else size(d["params"]["length"])
    node_of = {g[n]["params"]["index"]: n for n in nest.roots}

    def nbytes(o):
        return _bytes(step.shape(bg[o]["shape"]), bg[o]["dtype"])

    inputs = [(("cur", k), None) if k < nc else (a, _bytes(g[a]["shape"][1:], g[a]["dtype"])) if k < nc + nx
              else (a, None) for k, a in enumerate(args)]

    def dest(j):
        """Where output j of the step goes at step t."""
        if j < nc:
            return (("next", j), None)
        return (node_of[j], nbytes(bg.outputs[j])) if j in node_of else (("y", first, j), None)

    # a carry the step also returns as a y the graph keeps is written into that y's
    # slice of the step (one per step: the step after reads it there)
    carries, direct = [], set()
    for k in range(nc):
        o = bg.outputs[k]
        j = next((j for j in range(nc, len(bg.outputs)) if bg.outputs[j] == o and j in node_of
                  and j not in direct), None) if o in bs.roots else None
        if j is not None:
            direct.add(j)
        carries.append(((args[k], None), (("carry", first, k, 0), ("carry", first, k, 1)),
                        dest(j) if j is not None else None))
    written = list(dict.fromkeys(o for o in bs.outputs if o in bs.roots))
    first_use = {}
    for j, o in enumerate(bg.outputs):
        first_use.setdefault(o, j)
    outputs = [dest(first_use[o]) for o in written]
    after_step = []
    for j, o in enumerate(bg.outputs):
        if (o in bs.roots and first_use[o] == j) or j in direct:
            continue            # the step kernel writes it there
        if o in bs.roots:
            src = dest(first_use[o])
        elif bg[o]["op"] == "input":
            src = inputs[bg.inputs.index(o)]
        elif o in bs.consts:
            src = ("stepconst", bs.consts.index(o))
        else:
            raise GradcError(f"internal: the scan step's output {j} is neither computed, an input nor a constant")
        after_step.append(Copy(dest(j), src, nbytes(o)))
    after = [Copy((node_of[k], None), (("cur", k), None), _bytes(g[node_of[k]]["shape"], g[node_of[k]]["dtype"]))
             for k in range(nc) if k in node_of]
    ws = ("scanws", first, 0, 0) if workspace_layout(bs) else None
    return [ScanCall(first, ("scanfn", first), _nconst(bs), length, bool(d["params"].get("reverse", False)),
                     inputs, outputs, _sizes(step), ws, carries, after_step, after, cond)]


def _nconst(bs) -> int:
    """The step kernel's arguments after its outputs: its constants, then its own
    scans' tables."""
    return len(bs.consts) + len(step_tables(bs))


def _sizes(step) -> list:
    for x in step.schedule.symbols:
        if x not in step.sizes:
            raise GradcError(f"internal: the scan step's size {x} is none of its inputs' sizes")
    return [size(step.sizes[x]) for x in step.schedule.symbols]


def _cond(first, step, args, nc) -> LoopCond:
    """A while loop's condition: the carry (where the step reads it) and its values in,
    its bool into the loop's flag (or read where it is, an input passed through)."""
    bs, bg = step.schedule, step.schedule.graph
    inputs = [(("cur", k), None) if k < nc else (a, None) for k, a in enumerate(args)]
    (o,) = bg.outputs
    if o in bs.roots:
        outputs, flag = [(("flag", first), None)], (("flag", first), None)
    elif bg[o]["op"] == "input":
        outputs, flag = [], inputs[bg.inputs.index(o)]
    else:
        raise GradcError("internal: a while loop's condition is neither computed nor an input")
    ws = ("condws", first, 0, 0) if workspace_layout(bs) else None
    return LoopCond(("condfn", first), _nconst(bs), inputs, outputs, _sizes(step), ws, flag)
