"""The loop ops: ``scan`` (``jax.lax.scan``'s loop) and ``while`` (``jax.lax.while_loop``
on a traced condition), one node per output, the step a graph of its own.

``gradc.lax.scan`` traces the step function once, into a graph of its own (the
:class:`Body`), and puts one ``scan`` node per output leaf into the model's graph::

    %9  = scan %2 %5 %1 body=scan#3f0a1c index=0 ncarry=1 nx=1 reverse=False length=None
    %10 = scan %2 %5 %1 body=scan#3f0a1c index=1 ...

Arguments: the initial carry's leaves (``ncarry``), the leaves of ``xs`` (``nx``, each
with the steps as its leading axis), then the values the step closed over.  The body's
inputs are in the same order (a step's slice of each ``xs`` leaf); its outputs are the
new carry's leaves, then the leaves of ``y``.  Node ``index`` is the final carry's leaf
``index``, or for ``index >= ncarry`` the stacked ``y`` leaf (the steps' values along a
new leading axis).  ``length`` is the number of steps when there is no ``xs``.

The nodes of one call have the same arguments and parameters but ``index``, and form a
group: autodiff differentiates them together (one backward scan for the whole loop),
the scheduler computes them in one nest (the step compiled once, run in a native loop),
and the reference below runs the loop once for all of them.  The rules themselves live
in :mod:`gradc.control_flow` (scan's) and :mod:`gradc.control_while` (while's): they
trace and differentiate bodies, which this layer cannot import, and fill :data:`RULES`
when imported, which every way of making a loop node does first.
"""
from __future__ import annotations

import hashlib
import threading

import numpy as np

from ..errors import GradcError, ShapeError
from .registry import Op, register

# Filled by gradc.control_flow: "run" (reference evaluation of all outputs), "vjp",
# "jvp", "batch" (the group rules; see autodiff and batching).
RULES: dict = {}


class Body:
    """A scan's step: a traced graph with inputs (carry leaves, x leaves, closed-over
    values) and outputs (carry leaves, y leaves).  Immutable; compared and hashed by its
    content (the listing and the constants' bytes), so equal steps are one op parameter
    and the parameter names the compiled code's cache key."""

    __slots__ = ("graph", "ncarry", "nx", "key", "base", "tag", "remat")

    def __init__(self, graph, ncarry: int, nx: int, base: "Body | None" = None, tag: str = "",
                 remat: str | tuple | None = None):
        # remat: what the forward loop may save for the backward one (gradc.remat's
        # step_remat): a checkpoint policy's name for a step checkpointed as a whole,
        # or (node, policy name) pairs for the nodes made in checkpointed calls
        self.graph, self.ncarry, self.nx, self.base, self.tag, self.remat = graph, ncarry, nx, base, tag, remat
        h = hashlib.sha1(graph.text(sources=False).encode())
        h.update(f"|{ncarry}|{nx}|{tag}".encode())
        if remat is not None:
            h.update(f"|remat={remat}".encode())
        for n in graph.order():
            d = graph[n]
            if d.op == "const":
                h.update(d.params["value"].dtype.str.encode())
                h.update(d.params["value"].tobytes())
        self.key = h.hexdigest()[:12]

    @property
    def ny(self) -> int:
        return len(self.graph.outputs) - self.ncarry

    @property
    def nconst(self) -> int:
        return len(self.graph.inputs) - self.ncarry - self.nx

    def __eq__(self, other):
        return isinstance(other, Body) and other.key == self.key

    def __hash__(self):
        return hash(self.key)

    def __repr__(self):
        return f"scan#{self.key[:6]}"

    def __getstate__(self):
        return {k: getattr(self, k) for k in self.__slots__}

    def __setstate__(self, state):
        for k, v in state.items():
            object.__setattr__(self, k, v)


def symbol_map(body: Body, arg_shapes, env=None, what: str = "scan") -> dict:
    """{body size symbol: the caller's size} from the shapes of a scan node's arguments
    (an ``xs`` leaf's without its leading axis).  With ``env`` (a trace's ShapeEnv) the
    sizes are unified as they go, so a step that requires two sizes to be equal makes
    them equal in the caller's graph too; without, the caller's graph is final and its
    shapes are read off."""
    g = body.graph
    symmap: dict = {}
    for k, (nid, shape) in enumerate(zip(g.inputs, arg_shapes)):
        d = g[nid]
        if body.ncarry <= k < body.ncarry + body.nx:
            shape = tuple(shape)[1:]
        if len(d.shape) != len(shape):
            raise ShapeError(f"{what}: the step was traced with {d.name} of rank {len(d.shape)}, "
                             f"it gets rank {len(shape)}")
        for gd, vd in zip(d.shape, shape):
            if env is None:
                if isinstance(gd, str):
                    symmap.setdefault(gd, vd)
                continue
            if isinstance(gd, int):
                env.equal(vd, gd, f"{what} {d.name}")
            elif gd in symmap:
                symmap[gd] = env.equal(symmap[gd], vd, f"{what} {d.name}")
            else:
                symmap[gd] = vd
    if env is not None:
        for s, k in g.minimum.items():
            if s in symmap:
                env.at_least(symmap[s], k)
    return symmap


def body_shape(body: Body, symmap: dict, shape) -> tuple:
    """A shape of the body's graph in the caller's sizes."""
    out = []
    for d in shape:
        if isinstance(d, str):
            if d not in symmap:
                raise GradcError(f"internal: the scan step's size {d} is not one of its inputs' sizes")
            d = symmap[d]
        out.append(d)
    return tuple(out)


def steps_of(shapes, ncarry: int, nx: int, length):
    """The number of steps: the leading size of the ``xs`` leaves, else ``length``."""
    return shapes[ncarry][0] if nx else length


def _shape(env, avals, body, index, ncarry, nx, reverse, length):
    g = body.graph
    if len(avals) != len(g.inputs):
        raise ShapeError(f"scan: {len(avals)} arguments for a step of {len(g.inputs)} inputs")
    for k, ((shape, dtype), nid) in enumerate(zip(avals, g.inputs)):
        if dtype != g[nid].dtype:
            raise ShapeError(f"scan: argument {k} has dtype {dtype}, the step was traced for {g[nid].dtype}")
        if ncarry <= k < ncarry + nx:
            if not shape:
                raise ShapeError("scan: an xs leaf is a scalar; each needs a leading axis of steps")
            env.equal(shape[0], avals[ncarry][0][0], "scan: the leading sizes of xs")
    symmap = symbol_map(body, [s for s, _ in avals], env)
    out = g[g.outputs[index]]
    shape = body_shape(body, symmap, out.shape)
    if index >= ncarry:
        shape = (steps_of([s for s, _ in avals], ncarry, nx, length),) + shape
    return shape, out.dtype


# The last loop the reference ran on this thread: every output node of one call asks
# for its own output, and the loop runs once for all of them.  Arguments are compared
# by content (a caller may change an array in place between two calls).
_last = threading.local()


def _numpy(*args, body, index, ncarry, nx, reverse, length):
    hit = getattr(_last, "run", None)
    if hit is None or hit[0] != (body, reverse, length) or len(hit[1]) != len(args) or not all(
            a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
            for a, b in zip(hit[1], map(np.asarray, args))):
        outs = RULES["run"](body, list(args), reverse, length)
        _last.run = hit = ((body, reverse, length), [np.array(a, copy=True) for a in args], outs)
    return hit[2][index]


def _batch(n, args, batched, **params):
    return RULES["batch"](n, args, batched, **params)


# -- while: jax.lax.while_loop with a condition on traced values ---------------------------
# ``%9 = while %2 %1 %5 cond=scan#.. body=scan#.. index=0 ncarry=1 ncond=1``: arguments
# the initial carry's leaves (``ncarry``), the values the condition closed over
# (``ncond``), then those the body closed over.  The condition's graph takes the carry
# and its values and returns one bool; the body's takes the carry and its values and
# returns the carry.  Node ``index`` is the final carry's leaf ``index``.
def while_inputs(args, ncarry, ncond):
    """(the condition's arguments, the body's) of a while node's ``args``."""
    args = list(args)
    return args[:ncarry] + args[ncarry:ncarry + ncond], args[:ncarry] + args[ncarry + ncond:]


def _while_shape(env, avals, cond, body, index, ncarry, ncond):
    c_avals, b_avals = while_inputs(avals, ncarry, ncond)
    for what, step, av in (("condition", cond, c_avals), ("body", body, b_avals)):
        g = step.graph
        if len(av) != len(g.inputs):
            raise ShapeError(f"while_loop: {len(av)} arguments for a {what} of {len(g.inputs)} inputs")
        for k, ((_shape, dtype), nid) in enumerate(zip(av, g.inputs)):
            if dtype != g[nid].dtype:
                raise ShapeError(f"while_loop: argument {k} of the {what} has dtype {dtype}, it was traced for "
                                 f"{g[nid].dtype}")
    symbol_map(cond, [s for s, _ in c_avals], env, "while_loop")
    symmap = symbol_map(body, [s for s, _ in b_avals], env, "while_loop")
    out = body.graph[body.graph.outputs[index]]
    return body_shape(body, symmap, out.shape), out.dtype


def _while_numpy(*args, cond, body, index, ncarry, ncond):
    hit = getattr(_last, "loop", None)
    if hit is None or hit[0] != (cond, body) or len(hit[1]) != len(args) or not all(
            a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
            for a, b in zip(hit[1], map(np.asarray, args))):
        outs = RULES["while_run"](cond, body, list(args), ncarry, ncond)
        _last.loop = hit = ((cond, body), [np.array(a, copy=True) for a in args], outs)
    return hit[2][index]


def _while_batch(n, args, batched, **params):
    return RULES["while_batch"](n, args, batched, **params)


register(Op("scan", "structure", _shape, _numpy, root=True, batch=_batch,
            extra={"scan": True, "explain_params": ("body", "index", "reverse")},
            rule="scan ⇒ a scan of the step's adjoint, backwards over the steps",
            doc="an output of jax.lax.scan's loop (gradc.lax.scan): the final carry's leaf or a stacked y "
                "leaf; the step is a graph compiled once and run in a native loop"))
register(Op("while", "structure", _while_shape, _while_numpy, root=True, batch=_while_batch,
            extra={"scan": True, "explain_params": ("index",)},
            rule="while_loop ⇒ its tangent loop (forward mode only: the number of steps is not known)",
            doc="an output of jax.lax.while_loop whose condition depends on traced values: the final "
                "carry's leaf; the condition and the body are graphs compiled once, run in a native loop"))
