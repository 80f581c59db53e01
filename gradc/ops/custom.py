"""The two ops behind ``gradc.custom_jvp`` and ``gradc.custom_vjp`` (the rules themselves
are in :mod:`gradc.custom_derivatives`).

A call of a function with a custom derivative traces the function (``custom_vjp``: its
``fwd``) into the graph as usual and then wraps each output leaf in one of these ops::

    %7 = custom_vjp %5 %0 %1 %6 call=81275310294 index=0

Each node's value is its ``index``-th argument (the primal output); its arguments are
every primal output of the call, then its inputs, its array ``nondiff_argnums``, its
residuals and the traced values it closed over, so that every value the rule needs is a
node of the graph (a rule runs later, in another trace, on the replayed values).  The
Python rule lives in :data:`CALLS` under the ``call`` number: graph params stay small
hashable ints and compiled code never holds a Python callable.

All the nodes of one call (one per output leaf) form a group that differentiates as one:
:mod:`gradc.autodiff` gathers the cotangents of the whole group and calls the rule once
(a ``bwd`` needs every output's cotangent), and blocks the gradient through the inlined
primal computation.  Before code generation :func:`gradc.passes.strip_custom` replaces
every node by its primal argument, so a compiled graph holds only ordinary ops.
"""
from __future__ import annotations

import secrets

from ..errors import GradcError
from .bind import batch_all, bind
from .registry import Op, register

CUSTOM_OPS = ("custom_jvp", "custom_vjp")

# call number -> its rule record (gradc.custom_derivatives._Call).  Numbers are random,
# not counted, so a graph unpickled in another process cannot name an unrelated rule.
CALLS: dict[int, object] = {}


def register_call(record) -> int:
    while True:
        k = secrets.randbits(40)
        if k not in CALLS:
            CALLS[k] = record
            return k


def call_record(call: int, op: str = "custom_vjp"):
    """The rule record of ``call``; a clear error when this process does not have it."""
    rec = CALLS.get(call)
    if rec is None:
        raise GradcError(f"{op} call={call}: this graph's custom derivative rule is not known in this "
                         "process (a graph holding a custom_jvp/custom_vjp call was unpickled or copied "
                         "elsewhere: rules are Python functions and do not travel with graphs; trace the "
                         "function again here)")
    return rec


def _shape(env, avals, call, index):
    return avals[index]


def _numpy(*args, call, index):
    return args[index]


def _batch(op):
    def rule(n, args, batched, call, index):
        # every argument batched (shared ones materialized), so the batched rule maps
        # every one of them over the examples (gradc.custom_derivatives._Batched)
        vals = batch_all(n, args, batched)
        return bind(op, *vals, call=call_record(call, op).batched_call(), index=index)
    return rule


for _name in CUSTOM_OPS:
    register(Op(_name, "structure", _shape, _numpy, batch=_batch(_name), extra={"custom": True},
                rule=f"gradc.{_name} ⇒ the user's rule",
                doc=f"an output of a function with a custom derivative (gradc.{_name}): the value of "
                    "its primal argument; differentiated by the user's rule"))
