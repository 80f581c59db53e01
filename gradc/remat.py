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
from types import SimpleNamespace

from .errors import ArgumentError

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


def checkpoint(fun=None, *, prevent_cse=True, policy=None, static_argnums=()):
    """``jax.checkpoint`` (``jax.remat``): ``fun`` unchanged in what it computes, marked
    so that a ``lax.scan`` (or ``fori_loop``) whose step it is saves for the backward
    loop only what ``policy`` allows (by default nothing but each step's incoming
    carry) and recomputes the rest of the step there.  The stacked memory of a long
    loop then is one carry per step.  ``policy`` is one of ``checkpoint_policies``
    (``everything_saveable``, ``nothing_saveable``, ``dots_saveable`` /
    ``checkpoint_dots``, ``dots_with_no_batch_dims_saveable``).  Elsewhere it changes
    nothing: a graph without a loop has no tape to bound (the scheduler decides what
    is recomputed).  ``prevent_cse`` and ``static_argnums`` are accepted for JAX's
    signature."""
    name = policy_name(policy)

    def mark(f):
        @functools.wraps(f)
        def checkpointed(*args, **kwargs):
            return f(*args, **kwargs)
        checkpointed.gradc_remat = name
        return checkpointed
    return mark if fun is None else mark(fun)


remat = checkpoint


def remat_of(fun) -> str | None:
    """The policy's name a function was marked with by ``checkpoint``, or None."""
    return getattr(fun, "gradc_remat", None)


def saveable(graph, nodes, name: str | None) -> list:
    """Of the step's values ``nodes`` its adjoint reads, those the policy ``name`` lets
    the forward loop save; when it drops any, the step's incoming carries (inputs
    ``graph.inputs[:ncarry]``, which the caller adds) are what the rest is recomputed from."""
    if name is None:
        return list(nodes)
    keep = POLICIES[name]
    return [n for n in nodes if keep(graph, n)]
