"""The public transformations: jit, grad, value_and_grad, jvp, vjp (jacobian in
jacobian.py, hessian and hvp in hessian.py, built on these), and trace and explain.  Each
transformation returns a callable that traces the user's function on first call for each
input signature (rank, dtype, which sizes are 1), differentiates and optimizes the graph,
compiles it with a backend, and caches the result.

Called with traced values (inside another transformation) a transformation builds its
graph and inlines it into the outer trace, so transformations compose: grad(grad(f)),
jacobian(grad(f)), jit(grad(f))."""
from __future__ import annotations

import functools
import inspect
import threading
import weakref

import numpy as np

from . import backends
from .autodiff import jvp_graph, vjp_graph
from .errors import ArgumentError, GradcError
from .graph import Graph, fmt_type
from .passes import optimize
from .tracer import Spec, Value, current, inline, trace_specs

import os as _os

# Native code is the default; GRADC_BACKEND overrides it (numpy: the reference evaluator).
_config = {"backend": _os.environ.get("GRADC_BACKEND", "llvm"), "debug_nans": False}

try:
    from ._callpath import MISS as _MISS
except ImportError:  # the C extension is optional: the ctypes path is used instead
    _MISS = object()


MAX_RANK = 8   # the native call path's MAXDIM (runtime/callpath.c)


def config(**options):
    """Set global options: ``backend`` ("llvm", "c" or "numpy"), ``debug_nans`` (bool).
    Returns the previous values of the options given; with no arguments, all options."""
    if not options:
        return dict(_config)
    old = {}
    for k, v in options.items():
        if k not in _config:
            raise ArgumentError(f"unknown config option {k!r} (known: {', '.join(sorted(_config))})")
        old[k] = _config[k]
        _config[k] = v
    if "debug_nans" in options:
        # The C fast path runs unchecked native code: drop it, so the next call looks
        # up (or compiles) the entry for the new setting.  Calls cost nothing extra.
        for t in list(_LIVE):
            t._fast = None
    return old


_LIVE = weakref.WeakSet()   # every Transformed, so config(debug_nans=...) can reach them


# ----------------------------------------------------------------------------- arguments
def _signature(fun):
    try:
        return inspect.signature(fun)
    except (TypeError, ValueError):
        return None


def _names(fun, n):
    sig = _signature(fun)
    names = []
    if sig is not None:
        for p in sig.parameters.values():
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                names.append(p.name)
            elif p.kind == p.VAR_POSITIONAL:
                names += [f"{p.name}{i}" for i in range(n - len(names))]
    names += [f"arg{i}" for i in range(len(names), n)]
    return names[:n]


def _bind_args(fun, args, kwargs, fname):
    sig = _signature(fun)
    if sig is None:
        if kwargs:
            raise ArgumentError(f"{fname}: keyword arguments are not supported for this function")
        return tuple(args)
    try:
        ba = sig.bind(*args, **kwargs)
    except TypeError as e:
        params = [p.name for p in sig.parameters.values()]
        raise ArgumentError(f"{fname}({', '.join(params)}): {e}") from None
    # Parameters left to their defaults are not passed: they stay static Python values
    # (``axis=-1``, ``lam=0.1``) instead of becoming traced inputs.
    if ba.kwargs:
        raise ArgumentError(f"{fname}: keyword-only arguments {sorted(ba.kwargs)} are not supported")
    return tuple(ba.args)


def _float_dtype(arrays):
    fl = [a.dtype for a in arrays if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    fl += [a.dtype for a in arrays if isinstance(a, Value) and a.dtype.kind == "f"]
    if not fl:
        return np.dtype(np.float64)
    return np.dtype(np.float32) if all(d == np.float32 for d in fl) else np.dtype(np.float64)


def _to_array(x, i, name, fname):
    if isinstance(x, Value):
        return x
    if x is None:
        raise ArgumentError(f"{fname}: argument {i} ({name}) is None; expected an array or a number")
    if isinstance(x, (str, bytes)):
        raise ArgumentError(f"{fname}: argument {i} ({name}) is a {type(x).__name__}; expected an array or a number")
    if isinstance(x, complex):
        raise ArgumentError(f"{fname}: argument {i} ({name}) is complex; gradc differentiates real functions (float32/float64)")
    try:
        a = np.asarray(x)
    except Exception as e:  # ragged lists and the like
        raise ArgumentError(f"{fname}: argument {i} ({name}) cannot be converted to an array: {e}") from None
    k = a.dtype.kind
    if k == "c":
        raise ArgumentError(f"{fname}: argument {i} ({name}) has complex dtype {a.dtype}; expected float32 or float64")
    if k not in "biuf":
        raise ArgumentError(f"{fname}: argument {i} ({name}) has dtype {a.dtype} ({type(x).__name__}); "
                            "expected a numeric array (float32, float64, int or bool)")
    if a.ndim > MAX_RANK:
        raise ArgumentError(f"{fname}: argument {i} ({name}) has rank {a.ndim}; gradc supports ranks 0 to {MAX_RANK}")
    if k == "f" and a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float32 if a.dtype.itemsize < 4 else np.float64)
    if isinstance(x, (bool, int, float)) or (k in "biu" and a.ndim == 0 and not isinstance(x, np.ndarray)):
        a = ("weak", a)
    return a


def prepare(args, wrt, fname, names):
    """Convert call arguments to arrays: weak Python scalars and differentiated integer
    arrays take the computation's float dtype."""
    raw = [_to_array(x, i, n, fname) for i, (x, n) in enumerate(zip(args, names))]
    dt = _float_dtype([r for r in raw if not isinstance(r, tuple)])
    out = []
    for i, r in enumerate(raw):
        if isinstance(r, tuple):
            r = r[1].astype(dt)
        elif isinstance(r, np.ndarray) and i in wrt and r.dtype.kind != "f":
            r = r.astype(dt)
        out.append(r)
    return out


def _check_argnums(argnums, n, fname):
    nums = (argnums,) if isinstance(argnums, (int, np.integer)) else tuple(argnums)
    if not nums:
        raise ArgumentError(f"{fname}: argnums is empty")
    for a in nums:
        if not isinstance(a, (int, np.integer)) or not -n <= a < n:
            raise ArgumentError(f"{fname}: argnums {a} is out of range for a function of {n} argument(s)")
    return tuple(int(a) % n for a in nums)


# ----------------------------------------------------------------------------- entries
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


class Transformed:
    """A function transformed by gradc (jit, grad, value_and_grad, jvp, vjp)."""

    def __init__(self, fun, kind, argnums=0, backend=None, debug_nans=None):
        self.fun, self.kind, self.argnums, self._backend = fun, kind, argnums, backend
        self._debug_nans = debug_nans
        self.name = getattr(fun, "__name__", "f")
        if self.name == "<lambda>":
            self.name = "lambda"
        self._cache: dict = {}
        self._fast = None  # the C call path of the most recent signature
        self._lock = threading.RLock()
        functools.update_wrapper(self, fun, updated=())
        _LIVE.add(self)

    @property
    def backend(self):
        return self._backend or _config["backend"]

    @property
    def debug_nans(self) -> bool:
        """Checked mode: this function's ``debug_nans=`` if given, else ``gradc.config``'s."""
        return bool(_config["debug_nans"] if self._debug_nans is None else self._debug_nans)

    def __repr__(self):
        return f"<gradc.{self.kind} of {self.name}>"

    # -- graph construction -------------------------------------------------------------
    def _n_primal(self, n):
        """How many of ``n`` call arrays are the traced function's own arguments."""
        if self.kind == "jvp":
            return n // 2
        if self.kind == "vjp":
            return self.n_primals
        return n

    def build(self, specs, names):
        """(unoptimized graph, optimized forward, optimized transformed graph, structure)."""
        fname = self.name
        n = len(specs)
        if self.kind == "vjp":
            fwd_specs, fwd_names = specs[: self.n_primals], names[: self.n_primals]
        elif self.kind == "jvp":
            fwd_specs, fwd_names = specs[: n // 2], names[: n // 2]
        else:
            fwd_specs, fwd_names = specs, names
        F, structure, captured = trace_specs(self.fun, fwd_specs, fwd_names, name=fname)
        n_args = len(fwd_specs)
        Fo = optimize(F)
        if self.kind == "jit":
            return F, Fo, Fo, structure, captured
        if self.kind in ("grad", "value_and_grad"):
            wrt = _check_argnums(self.argnums, n_args, fname)
            if len(Fo.outputs) != 1 or structure is not None:
                raise ArgumentError(f"{self.kind}({fname}): the function must return a single scalar, "
                                    f"but it returned a tuple of {len(Fo.outputs)}")
            o = Fo[Fo.outputs[0]]
            if o["shape"] != ():
                raise ArgumentError(f"{self.kind}({fname}): the function must return a scalar, but it returned "
                                    f"{fmt_type(o['shape'], o['dtype'])}; use jacobian or vjp for non-scalar outputs")
            if o["dtype"].kind != "f":
                raise ArgumentError(f"{self.kind}({fname}): the output has dtype {o['dtype']}, not a float")
            G = vjp_graph(Fo, list(wrt), seed="one", keep_value=self.kind == "value_and_grad")
            return G, Fo, optimize(G), structure, captured
        if self.kind == "vjp":
            wrt = list(range(n_args))   # captured values are extra inputs after these
            G = vjp_graph(Fo, wrt, seed="input", keep_value=False)
            return G, Fo, optimize(G), structure, captured
        if self.kind == "jvp":
            wrt = list(range(n_args))   # captured values are extra inputs after these
            G = jvp_graph(Fo, wrt)
            return G, Fo, optimize(G), structure, captured
        raise GradcError(f"unknown transformation {self.kind}")

    def _specs_names(self, arrays):
        names = _names(self.fun, len(arrays)) if self.kind != "jvp" else None
        if self.kind == "jvp":
            h = len(arrays) // 2
            base = _names(self.fun, h)
            names = base + [f"t{x}" for x in base]
        if self.kind == "vjp":
            names = names[: len(arrays)]
        specs = []
        for a in arrays:
            if isinstance(a, Value):
                env = a._b.env
                specs.append(Spec(tuple(1 if d == 1 else None for d in a._shape), a.dtype,
                                  tuple(env.value(d) for d in a._shape)))
            else:
                specs.append(Spec.of(a))
        return specs, names

    # -- calling ------------------------------------------------------------------------
    def _wrt(self, n):
        if self.kind in ("grad", "value_and_grad"):
            return _check_argnums(self.argnums, n, self.name)
        return ()

    def __call__(self, *args, **kwargs):
        fast = self._fast
        if fast is not None and not kwargs:
            r = fast(*args)
            if r is not _MISS:
                return r
        return self._slow_call(args, kwargs)

    def _slow_call(self, args, kwargs):
        args = _bind_args(self.fun, args, kwargs, self.name) if self.kind not in ("jvp", "vjp") else args
        arrays = prepare(args, self._wrt(len(args)), self.name, _names(self.fun, len(args)))
        if current() is not None or any(isinstance(a, Value) for a in arrays):
            return self._call_traced(arrays)
        entry = self._entry(arrays)
        outs = entry.run(arrays)
        if entry.plan is not None and not self.debug_nans:
            self._fast = entry.plan
        return self._restructure(outs, entry.structure, len(arrays))

    def _entry(self, arrays):
        debug = self.debug_nans
        key = (debug,) + tuple((a.dtype.str, a.ndim, tuple(s == 1 for s in a.shape)) for a in arrays)
        specs, names = self._specs_names(arrays)
        with self._lock:
            for e in self._cache.get(key, ()):
                if e.match(arrays, names, self.name) is None:
                    return e
            unopt, fwd, g, structure, captured = self.build(specs, names)
            if captured:
                raise GradcError("internal: a top-level trace captured outer values")
            e = Entry(g, fwd, unopt, _compile(g, self.backend, debug), structure, self.backend)
            make_plan = getattr(e.run, "make_plan", None)
            if make_plan is not None and self.kind in ("jit", "grad", "value_and_grad") \
                    and len(g.inputs) == len(arrays):
                template = self._restructure(list(range(len(g.outputs))), structure, len(arrays))
                e.plan = make_plan(template)
            if e.match(arrays, names, self.name) is not None:
                raise GradcError(f"internal: {self.name} retraced but the new graph does not fit its arguments")
            self._cache.setdefault(key, []).append(e)
            return e

    def _call_traced(self, arrays):
        specs, names = self._specs_names(arrays)
        unopt, fwd, g, structure, captured = self.build(specs, names)
        # the graph's inputs: the function's arguments, the captured values, then the
        # tangents (jvp) or cotangents (vjp)
        k = self._n_primal(len(arrays))
        outs = inline(g, list(arrays[:k]) + list(captured) + list(arrays[k:]))
        return self._restructure(outs, structure, len(arrays))

    def _restructure(self, outs, structure, n_args):
        outs = [_scalar(o) for o in outs]
        if self.kind == "jit":
            return outs[0] if structure is None else tuple(outs)
        if self.kind in ("grad", "value_and_grad"):
            single = isinstance(self.argnums, (int, np.integer))
            grads = outs[-len(self._wrt(n_args)):]
            g = grads[0] if single else tuple(grads)
            return (outs[0], g) if self.kind == "value_and_grad" else g
        return outs

    def lower(self, *args, **kwargs):
        """Compile for these arguments and return a :class:`Lowered` showing each stage."""
        args = _bind_args(self.fun, args, kwargs, self.name) if self.kind not in ("jvp", "vjp") else args
        arrays = prepare(args, self._wrt(len(args)), self.name, _names(self.fun, len(args)))
        if any(isinstance(a, Value) for a in arrays):
            raise ArgumentError("lower() needs concrete arrays, not traced values")
        low = Lowered(self._entry(arrays))
        low._fun = self.fun
        return low


def _scalar(o):
    if isinstance(o, np.ndarray) and o.ndim == 0:
        return o[()]
    return o


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
        """How the native backend fuses the graph: one line per loop nest."""
        from .backends.schedule import describe, schedule
        return describe(schedule(self.graph))

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


# ----------------------------------------------------------------------------- public API
def jit(fun=None, *, backend=None, debug_nans=None):
    """Compile ``fun`` (traced once per input signature).  ``debug_nans=True``: checked
    mode, raising :class:`gradc.NonFiniteError` at the first non-finite node (default:
    ``gradc.config``'s setting)."""
    if fun is None:
        return lambda f: jit(f, backend=backend, debug_nans=debug_nans)
    return Transformed(fun, "jit", backend=backend, debug_nans=debug_nans)


def grad(fun, argnums=0, *, backend=None, debug_nans=None):
    """The gradient of a scalar function with respect to argument(s) ``argnums``."""
    return Transformed(fun, "grad", argnums, backend, debug_nans)


def value_and_grad(fun, argnums=0, *, backend=None, debug_nans=None):
    """``(f(*args), grad(f)(*args))`` in one call sharing the forward pass."""
    return Transformed(fun, "value_and_grad", argnums, backend, debug_nans)


def jvp(fun, primals, tangents, *, backend=None):
    """Forward mode: ``(f(*primals), J·tangents)``."""
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ArgumentError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    t = Transformed(fun, "jvp", backend=backend)
    outs = t(*primals, *tangents)
    h = len(outs) // 2
    if h == 1:
        return outs[0], outs[1]
    return tuple(outs[:h]), tuple(outs[h:])


def vjp(fun, *primals, backend=None):
    """Reverse mode: returns ``(f(*primals), vjp_fn)``; ``vjp_fn(ct)`` gives one
    cotangent per primal, ``ct^T J``."""
    out = Transformed(fun, "jit", backend=backend)(*primals)
    t = Transformed(fun, "vjp", backend=backend)
    t.n_primals = len(primals)

    def vjp_fn(*cts):
        if isinstance(out, tuple):
            if len(cts) == 1 and isinstance(cts[0], tuple):
                cts = cts[0]
            if len(cts) != len(out):
                raise ArgumentError(f"vjp_fn: expected {len(out)} cotangents, got {len(cts)}")
        elif len(cts) != 1:
            raise ArgumentError(f"vjp_fn: expected 1 cotangent, got {len(cts)}")
        for k, (c, o) in enumerate(zip(cts, out if isinstance(out, tuple) else (out,))):
            if np.shape(c) != np.shape(o) and not isinstance(c, Value):
                raise ArgumentError(f"vjp_fn: cotangent {k} has shape {np.shape(c)}, expected the output's shape {np.shape(o)}")
        return tuple(t(*primals, *cts))
    return out, vjp_fn


def explain(fun, *args, argnums=0, output_name=None):
    """The derivative of ``fun`` at arguments shaped like ``args`` with respect to
    ``argnums``, as a :class:`gradc.Explanation` (print it; ``.latex()`` for LaTeX).  For a
    scalar ``fun`` the gradient; for an array result its Jacobian.

    >>> print(gradc.explain(loss, w, b, X, y, argnums=(0, 1)))     # doctest: +SKIP
    """
    return explain_with(fun, lambda t: t.lower(*args), argnums, output_name)


def explain_with(fun, lower, argnums=0, output_name=None):
    """:func:`explain` with ``lower(transformed) -> Lowered`` choosing the signature
    (``gradc explain`` lowers for the command line's types and size names)."""
    from .explain import explain_lowered
    nums = (argnums,) if isinstance(argnums, (int, np.integer)) else tuple(argnums)
    low = lower(jit(fun, backend="numpy"))
    fo = low.forward
    n = len(fo.inputs)
    for a in nums:
        if not isinstance(a, (int, np.integer)) or not -n <= a < n:
            raise ArgumentError(f"explain: argnums {a} is out of range for a function of {n} argument(s)")
    wrt = [int(a) % n for a in nums]
    if len(fo.outputs) == 1 and fo[fo.outputs[0]].shape == ():
        low = lower(value_and_grad(fun, argnums=tuple(wrt), backend="numpy"))
    return explain_lowered(low, wrt=wrt, output_name=output_name)


def trace(f, *example_args, optimized=False) -> Graph:
    """Trace ``f`` on arguments shaped like ``example_args``; returns its Graph
    (``graph.nx`` is the networkx DiGraph; ``str(graph)`` a readable listing)."""
    name = getattr(f, "__name__", "f")
    names = _names(f, len(example_args))
    arrays = prepare(example_args, (), name, names)
    g, _, _ = trace_specs(f, [Spec.of(a) for a in arrays], names, name=name)
    return optimize(g) if optimized else g
