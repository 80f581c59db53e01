"""One compiled signature and its stages: :class:`Entry` (the graphs, the executable and
the size checks of a call), ``_compile`` (a graph to an executable with a backend, in
checked mode when ``debug_nans`` says so) and :class:`Lowered` (what ``.lower()`` returns:
every stage of an entry as text -- graphs, LLVM IR, assembly, C, loop nests, loop IR --
and its explanation), with ``_rebuild_lowered``, which unpickles a Lowered by compiling
its graph again.  The global options (``_config``, set by :func:`gradc.config`) live
here because ``_compile`` reads them; gradc.api re-exports every name."""
from __future__ import annotations

from . import backends
from .errors import ArgumentError, GradcError
from .graph import Graph, fmt_type
from .passes import strip_custom

import os as _os

# Native code is the default; GRADC_BACKEND overrides it (numpy: the reference evaluator).
_config = {"backend": _os.environ.get("GRADC_BACKEND", "llvm"), "debug_nans": False}


class Entry:
    """One compiled signature: its graphs, its executable, and how to call it."""

    def __init__(self, graph: Graph, forward: Graph, unoptimized: Graph, run, structure, backend):
        self.graph, self.forward, self.unoptimized = graph, forward, unoptimized
        self.run, self.structure, self.backend = run, structure, backend
        self.plan = None

    def match(self, arrays, names, fname):
        """None if the arrays fit; "retrace" if a fixed size or a bound differs."""
        sizes, origin = {}, {}
        g = self.graph
        for nid, a, name in zip(g.inputs, arrays, names):
            for ax, (d, n) in enumerate(zip(g[nid]["shape"], a.shape)):
                if isinstance(d, int):
                    if d != n:
                        return "retrace"
                elif d in sizes:
                    if sizes[d] != n:
                        raise ArgumentError(
                            f"{fname}: argument '{name}' has size {n} on axis {ax}, but argument "
                            f"'{origin[d][0]}' has size {sizes[d]} on axis {origin[d][1]}; "
                            f"these must agree (both are the size {d} in {fmt_type(g[nid]['shape'], g[nid]['dtype'])})")
                else:
                    sizes[d] = n
                    origin[d] = (name, ax)
        for s, k in g.minimum.items():
            if s in sizes and sizes[s] < k:
                return "retrace"
        return None


def _compile(graph: Graph, backend: str, debug_nans: bool | None = None):
    if debug_nans is None:
        debug_nans = _config["debug_nans"]
    return backends.get(backend).compile(graph, debug_nans=debug_nans)



class Lowered:
    """Every stage of one compiled signature.

    ``graph``: the optimized graph that runs (forward and adjoint nodes);
    ``forward``: the optimized forward graph; ``unoptimized``: the transformed graph
    before optimization.  ``str(lowered)`` lists the graph."""

    def __init__(self, entry: Entry):
        self._entry = entry
        self.graph = entry.graph
        self.forward = entry.forward
        self.unoptimized = entry.unoptimized
        self.backend = entry.backend

    def __reduce__(self):
        """The graphs travel; the kernel is rebuilt on load (from the disk cache, or
        compiled again)."""
        e = self._entry
        return (_rebuild_lowered, (e.graph, e.forward, e.unoptimized, e.structure, e.backend,
                                   getattr(self, "_fun", None), getattr(e, "argnums", None)))

    def __str__(self):
        return str(self.graph)

    def to_dot(self) -> str:
        return self.graph.to_dot()

    def _native(self):
        art = getattr(self._entry.run, "artifact", None)
        if art is None:
            raise GradcError(f"backend {self.backend!r} has no native code; "
                             "lower with backend='llvm' to see LLVM IR and assembly")
        return art

    def llvm_ir(self, optimized=True, cpu="native") -> str:
        """The kernel's LLVM IR as generated (``optimized=False``) or after LLVM's O3
        pipeline.  ``cpu`` (one of ``"native"``, ``"generic"``, ``"x86-64-v3"``,
        ``"x86-64-v4"``) shows the code gradc would make for another CPU, e.g. the
        ``<8 x double>`` loops of an AVX-512 machine on an AVX2 one; only the host's
        code runs."""
        return self._native().llvm_ir(optimized, cpu)

    def c_source(self) -> str:
        """The same optimized, fused graph as readable C99 (what backend="c" compiles)."""
        from .backends.c_backend import c_source
        return c_source(self.graph)

    def loop_nests(self) -> str:
        """How the native backend fuses the graph: one line per loop nest (backend
        "llvm": its own schedule, with its threads and library products)."""
        from .backends.schedule import describe, schedule
        kernel = getattr(self._entry.run, "kernel", None)
        s = getattr(kernel, "schedule", None)
        return describe(s if s is not None else schedule(self.graph))

    def loop_ir(self) -> str:
        """The loop IR the backend's code generator renders: every nest's loops, loads
        through index maps, element-wise ops, math library calls, accumulators, stores,
        bounds and status checks and library calls, with the node numbers of
        :attr:`graph`.  Backend "llvm" shows its own (threads, row blocks, BLAS); other
        backends a serial kernel's (row blocks, no BLAS)."""
        from .backends.loop_ir import render_text
        from .backends.lower_loops import build
        from .backends.schedule import schedule
        kernel = getattr(self._entry.run, "loop_ir", None)
        return render_text(kernel() if kernel else build(schedule(self.graph), self.graph.name))

    def asm(self, cpu="native") -> str:
        """The kernel's native assembly, for this host or another ``cpu`` (see
        :meth:`llvm_ir`)."""
        return self._native().asm(cpu)

    def explain(self, latex=False):
        """The derivative as mathematics (see :mod:`gradc.explain`); ``print`` it, or
        ``.latex()`` for LaTeX.  A ``jit`` is explained w.r.t. its float arguments."""
        from .explain import explain_lowered
        ex = explain_lowered(self)
        return ex.latex() if latex else ex


def _rebuild_lowered(graph, forward, unoptimized, structure, backend, fun, argnums):
    graph = strip_custom(graph)     # (a pickled Lowered's graph is stripped already: a scan)
    entry = Entry(graph, forward, unoptimized, _compile(graph, backend, False), structure, backend)
    if argnums is not None:
        entry.argnums = argnums
    low = Lowered(entry)
    low._fun = fun
    return low

