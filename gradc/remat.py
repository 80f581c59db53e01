"""``checkpoint`` (``remat``) and its policies: what the backward loop of a scan saves.

A model's own graph needs no checkpoint: gradc compiles its forward and adjoint passes
into one scheduled graph, where the scheduler decides what is kept and what is
recomputed inside fused loops.  A loop is different.  The backward loop of a
``lax.scan`` reads the step's values of every step, which the forward loop stacks:
memory that grows with the number of steps.  A step wrapped in ``checkpoint`` keeps
only what its policy saves (by default nothing but the carry going into each step) and
recomputes the rest of the step inside the backward loop, as ``jax.checkpoint`` on a
scan's step does in JAX.
"""
from __future__ import annotations

import functools
import sys
import threading
from contextlib import contextmanager
from types import SimpleNamespace

from .errors import ArgumentError
from .tracer import current

_DOTS = ("matmul", "contract")


def _everything(graph, nid) -> bool:
    return True


def _nothing(graph, nid) -> bool:
    return False


def _dots(graph, nid) -> bool:
    return graph[nid].op in _DOTS


def _dots_no_batch(graph, nid) -> bool:
    d = graph[nid]
    return d.op == "contract" or (d.op == "matmul" and all(len(graph[a].shape) <= 2 for a in d.args))


# {name: predicate(step graph, node) -> may the forward loop save this node's values?}
POLICIES = {"everything_saveable": _everything, "nothing_saveable": _nothing,
            "dots_saveable": _dots, "checkpoint_dots": _dots,
            "dots_with_no_batch_dims_saveable": _dots_no_batch,
            "checkpoint_dots_with_no_batch_dims": _dots_no_batch}


def _named(name):
    def policy(*args, **kwargs):
        raise ArgumentError(f"checkpoint_policies.{name} is a policy to pass to checkpoint(policy=...), "
                            f"not a function to call")
    policy.__name__ = policy.__qualname__ = name
    return policy


#: ``jax.checkpoint_policies``' names that gradc knows (JAX's own policy objects, passed
#: where JAX is imported, are recognized by these names too).
checkpoint_policies = SimpleNamespace(**{name: _named(name) for name in POLICIES})


def policy_name(policy) -> str:
    """The name in POLICIES of ``policy`` (None: save nothing, JAX's default)."""
    if policy is None:
        return "nothing_saveable"
    for name in POLICIES:
        if getattr(checkpoint_policies, name) is policy:
            return name
    jax = sys.modules.get("jax")        # (JAX's own policy objects, where JAX is imported)
    for name in POLICIES:
        if jax is not None and getattr(getattr(jax, "checkpoint_policies", None), name, None) is policy:
            return name
    raise ArgumentError(f"checkpoint: policy={policy!r} is not one gradc knows; use one of "
                        f"gradc.checkpoint_policies' {', '.join(sorted(POLICIES))} (or JAX's of those names)")


def checkpoint(fun=None, *, prevent_cse=True, policy=None, static_argnums=(), static_argnames=()):
    """``jax.checkpoint`` (``jax.remat``): ``fun`` unchanged in what it computes, marked
    so that a ``lax.scan`` (or ``fori_loop``) whose step it is saves for the backward
    loop only what ``policy`` allows (by default nothing but each step's incoming
    carry) and recomputes the rest of the step there.  Called inside a step, only the
    values made in the call are recomputed.  The stacked memory of a long
    loop then is one carry per step.  ``policy`` is one of ``checkpoint_policies``
    (``everything_saveable``, ``nothing_saveable``, ``dots_saveable`` /
    ``checkpoint_dots``, ``dots_with_no_batch_dims_saveable``).  Elsewhere it changes
    nothing: a graph without a loop has no tape to bound (the scheduler decides what
    is recomputed).  ``prevent_cse``, ``static_argnums`` and ``static_argnames`` are
    accepted for JAX's signature."""
    name = policy_name(policy)

    def mark(f):
        @functools.wraps(f)
        def checkpointed(*args, **kwargs):
            b = current()
            if b is None or getattr(_recording, "regions", None) is None:
                return f(*args, **kwargs)
            first = b.graph._next
            out = f(*args, **kwargs)
            _recording.regions.append((b.graph, range(first, b.graph._next), name))
            return out
        checkpointed.gradc_remat = name
        return checkpointed
    return mark if fun is None else mark(fun)


remat = checkpoint


def remat_of(fun) -> str | None:
    """The policy's name a function was marked with by ``checkpoint``, or None."""
    return getattr(fun, "gradc_remat", None)


_recording = threading.local()


@contextmanager
def recording():
    """Record the checkpointed calls made while a loop's step is traced: yields the
    list of (graph, range of its nodes made in the call, policy name) it fills."""
    prev = getattr(_recording, "regions", None)
    _recording.regions = calls = []
    try:
        yield calls
    finally:
        _recording.regions = prev


def step_remat(fun, calls: list, graph):
    """A step's ``Body.remat``: the policy's name when the step ``fun`` is checkpointed
    as a whole, else the sorted (node, policy) pairs of the checkpointed ``calls`` it
    made in its traced ``graph`` (a nested call's own policy wins), or None."""
    if remat_of(fun) is not None:
        return remat_of(fun)
    found: dict = {}
    for g, nodes, name in calls:
        if g is graph:
            for n in nodes:
                if n in graph.nx:
                    found.setdefault(n, name)
    return tuple(sorted(found.items())) or None


def saveable(graph, nodes, remat) -> list:
    """Of the step's values ``nodes`` its adjoint reads, those the step's checkpoint
    (``remat``, as :func:`step_remat` gives) lets the forward loop save: a value made
    outside every checkpointed call is saved.  When this drops any, the step's incoming
    carries (which the caller adds) are what the rest is recomputed from."""
    if remat is None:
        return list(nodes)
    if isinstance(remat, str):
        keep = POLICIES[remat]
        return [n for n in nodes if keep(graph, n)]
    policy = dict(remat)
    return [n for n in nodes if n not in policy or POLICIES[policy[n]](graph, n)]


def whole(remat):
    """What a step derived from one with ``remat`` (its tangent, batched or adjoint step,
    whose nodes are others) keeps of it: a whole-step policy."""
    return remat if isinstance(remat, str) else None
