"""``gradc.trace(f, *example_args)``: the forward graph of ``f`` for these arguments."""
from __future__ import annotations

from .api import _names, prepare
from .graph import Graph
from .passes import optimize
from .tracer import Spec, trace as _trace


def trace(f, *example_args, optimized=False) -> Graph:
    """Trace ``f`` on arguments shaped like ``example_args``; returns its Graph
    (``graph.nx`` is the networkx DiGraph; ``str(graph)`` a readable listing)."""
    name = getattr(f, "__name__", "f")
    names = _names(f, len(example_args))
    arrays = prepare(example_args, (), name, names)
    g, _, _ = _trace(f, [Spec.of(a) for a in arrays], names, name=name)
    return optimize(g) if optimized else g
