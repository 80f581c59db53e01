"""The public transformations: jit, grad, value_and_grad, jvp, vjp (jacobian in
jacobian.py, hessian and hvp in hessian.py, built on these), and trace and explain.  Each
transformation returns a callable that traces the user's function on first call for each
input signature (rank, dtype, which sizes are 1), differentiates and optimizes the graph,
compiles it with a backend, and caches the result.

Called with traced values (inside another transformation) a transformation builds its
graph and inlines it into the outer trace, so transformations compose: grad(grad(f)),
jacobian(grad(f)), jit(grad(f)).

Beside this module: a call's arguments (binding, conversion to arrays, pytree flattening,
argnums) in api_args.py; a compiled signature and its stages (Entry, _compile, Lowered)
in api_lowered.py.  The names other modules import from gradc.api are re-exported here."""
from __future__ import annotations

import collections
import contextlib
import functools
import sys
import threading
import uuid
import weakref

import numpy as np

from .api_args import (_MISS, Flat, _TreePlan, _args_tree, _bind_args, _check_argnums, _is_literal, _names, _plain,
                       _signature, prepare)
from .api_lowered import Entry, Lowered, _compile, _config
from .autodiff import jvp_graph, vjp_graph
from .errors import ArgumentError, GradcError
from .graph import Graph, fmt_type
from .passes import optimize, strip_custom
from .tracer import Spec, Value, current, inline, trace_specs
from .tree_util import PyTreeDef, tree_flatten, tree_unflatten
# Re-exported: names other modules, tests and pickles take from gradc.api.
from .api_args import (MAX_RANK, _SIGNATURES, _float_dtype, _identifier, _ragged, _ragged_message,  # noqa: F401
                       _to_array)
from .api_lowered import _rebuild_lowered  # noqa: F401

try:
    from ._callpath import Dispatch as _Dispatch
except ImportError:  # no extension (or a build older than Dispatch): the same in Python
    class _Dispatch:
        """Calls ``_fast`` (when set) and, on MISS or keyword arguments,
        ``self._slow_call(args, kwargs)`` (runtime/callpath.c's Dispatch in Python)."""

        _fast = None

        def __call__(self, *args, **kwargs):
            fast = self._fast
            if fast is not None and not kwargs:
                r = fast(*args)
                if r is not _MISS:
                    return r
            return self._slow_call(args, kwargs)


RECENT_PLANS = 3   # call paths of earlier signatures a function keeps for a miss


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
            t._fast, t._recent = None, ()
    return old


_JIT_DISABLED = [False]


@contextlib.contextmanager
def disable_jit(disable: bool = True):
    """``jax.disable_jit``: inside the block a ``jit`` function runs its Python code on
    the arguments as they are (numpy arrays: gradc.numpy computes eagerly, so ``print``
    and a debugger see values).  ``grad``, ``vmap`` and the others still trace (a jit
    inside them is inlined, as always)."""
    before = _JIT_DISABLED[0]
    _JIT_DISABLED[0] = bool(disable)
    for t in list(_LIVE):             # the C call path would run the compiled code
        t._fast, t._recent = None, ()
    try:
        yield
    finally:
        _JIT_DISABLED[0] = before


# Calls with another library's arrays (dask) go to the handler that library's module
# registers here (gradc.distributed registers itself for "dask"; the package imports it):
# {top-level module of the argument's type: handler(transformed, args, kwargs)}.
FOREIGN_ARRAYS: dict = {}


def foreign_handler(args):
    """The handler for the first argument of a registered foreign array type, or None."""
    if FOREIGN_ARRAYS:
        for a in args:
            h = FOREIGN_ARRAYS.get(type(a).__module__.partition(".")[0])
            if h is not None:
                return h
    return None


_LIVE = weakref.WeakSet()   # every Transformed, so config(debug_nans=...) can reach them
_BY_TOKEN = weakref.WeakValueDictionary()   # pickle token -> the live function in this process
# Functions unpickled here stay alive (with their compiled kernels) for the next tasks
# that bring the same pickle: a Dask or pool worker compiles once, not once per task.
_UNPICKLED = collections.deque(maxlen=32)


# ----------------------------------------------------------------------------- transformed functions
class Transformed(_Dispatch):
    """A function transformed by gradc (jit, grad, value_and_grad, jvp, vjp).

    A call runs the C call path of the signature seen last (``_fast``, checked argument
    by argument; runtime/callpath.c's Dispatch calls it without a Python frame) and
    falls back to ``_slow_call``, which binds keyword arguments and tries the call
    paths of the few signatures before it (``_recent``) before the Python path."""

    def __init__(self, fun, kind, argnums=0, backend=None, debug_nans=None, has_aux=False):
        self.fun, self.kind, self.argnums, self._backend = fun, kind, argnums, backend
        self._debug_nans = debug_nans
        self.has_aux = bool(has_aux)   # grad, value_and_grad: fun returns (loss, aux)
        self.name = getattr(fun, "__name__", "f")
        if self.name == "<lambda>":
            self.name = "lambda"
        self._cache: dict = {}
        self._fast = None  # the C call path of the most recent signature
        self._recent = ()  # the call paths of the signatures before it (_use_plan)
        self._lock = threading.RLock()
        functools.update_wrapper(self, fun, updated=())
        _LIVE.add(self)
        self._token = uuid.uuid4().hex   # names this function across pickles (see _rebuild)
        _BY_TOKEN[self._token] = self

    def __reduce__(self):
        """Pickle the Python function and the options, never compiled code: a decorated
        module-level function goes by name; otherwise the function itself (by reference
        for ``pickle``, by value when cloudpickle needs it).  On load the first call per
        signature traces again and takes the kernel from the disk cache (or compiles)."""
        if _importable(self) and not _cloudpickle_by_value(self.__module__):
            return self.__qualname__
        extra = {"n_primals": self.n_primals} if hasattr(self, "n_primals") else {}
        return (_rebuild, (type(self), self._constructor_args(), extra, self._token))

    def _constructor_args(self) -> tuple:
        """``type(self)(*these)`` makes this function again (a subclass whose constructor
        differs says so)."""
        return (self.fun, self.kind, self.argnums, self._backend, self._debug_nans, self.has_aux)

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
    def build(self, specs, names, flat: Flat | None = None):
        """(unoptimized graph, optimized forward, optimized transformed graph, output
        structure (a PyTreeDef), captured values).  ``flat`` says how the arguments were
        flattened (None: one leaf per argument)."""
        fname = self.name
        n_args = flat.n_primal if flat is not None else \
            self.n_primals if self.kind == "vjp" else len(specs) // 2 if self.kind == "jvp" else len(specs)
        fun = flat.fun(self.fun) if flat is not None else self.fun
        if self.has_aux and self.kind in ("grad", "value_and_grad"):
            return self._build_with_aux(fun, specs[:n_args], names[:n_args], flat)
        F, structure, captured = trace_specs(fun, specs[:n_args], names[:n_args], name=fname)
        Fo = optimize(F)
        if self.kind == "jit":
            return F, Fo, Fo, structure, captured
        if self.kind in ("grad", "value_and_grad"):
            argnums = _check_argnums(self.argnums, len(flat.spans) if flat is not None else n_args, fname)
            wrt = flat.wrt(argnums) if flat is not None else argnums
            if not structure.is_leaf():
                raise ArgumentError(f"{self.kind}({fname}): the function must return a single scalar, "
                                    f"but it returned a {structure.node_type.__name__} of "
                                    f"{structure.num_leaves} arrays: {structure}")
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

    def _build_with_aux(self, fun, specs, names, flat):
        """``has_aux``: one graph with outputs (loss, aux's leaves, the gradients): the
        function traced for its aux, and value_and_grad of its loss alone traced beside
        it (common subexpressions merge the two forward passes)."""
        fname = self.name
        argnums = _check_argnums(self.argnums, len(flat.spans) if flat is not None else len(specs), fname)
        wrt = flat.wrt(argnums) if flat is not None else argnums

        def pair(out):
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise ArgumentError(f"{self.kind}({fname}, has_aux=True): the function must return a pair "
                                    "(loss, aux), but it returned "
                                    + (f"a {type(out).__name__} of {len(out)}" if isinstance(out, (tuple, list))
                                       else "an array" if isinstance(out, Value) else type(out).__name__))
            return out
        loss = Transformed(lambda *leaves: pair(fun(*leaves))[0], "value_and_grad", tuple(wrt), self._backend)
        loss.name = fname

        def combined(*leaves):
            value, grads = loss(*leaves)
            return value, pair(fun(*leaves))[1], grads
        F, structure, captured = trace_specs(combined, specs, names, name=fname)
        Fo = optimize(F)
        return F, Fo, Fo, structure, captured

    def _flatten(self, args) -> Flat:
        """The call's leaves: jvp's are the primals' then the tangents' (the same tree),
        vjp's the primals' then the cotangents' (the output's tree)."""
        if self.kind == "jvp":
            h = len(args) // 2
            names = _names(self.fun, h)
            primals = Flat(args[:h], names)
            tangents = Flat(args[h:], names)
            if tangents.tree != primals.tree:
                raise ArgumentError(f"jvp({self.name}): the tangents' structure {_args_tree(tangents)} differs "
                                    f"from the primals' {_args_tree(primals)}")
            return Flat(args[:h], names, tangents.leaves, [f"t{x}" for x in primals.names])
        if self.kind == "vjp":
            h = self.n_primals
            cts = list(args[h:])      # vjp_fn passes the cotangent tree's leaves
            return Flat(args[:h], _names(self.fun, h), cts, [f"ct{k}" for k in range(len(cts))])
        return Flat(args, _names(self.fun, len(args)))

    def _specs_names(self, arrays, flat: Flat):
        specs = []
        for a in arrays:
            if isinstance(a, Value):
                env = a._b.env
                specs.append(Spec(tuple(1 if d == 1 else None for d in a._shape), a.dtype,
                                  tuple(env.value(d) for d in a._shape)))
            else:
                specs.append(Spec.of(a))
        return specs, flat.names

    # -- calling ------------------------------------------------------------------------
    def _wrt(self, flat: Flat):
        """The leaf indices differentiated (checked against the argument count)."""
        if self.kind in ("grad", "value_and_grad"):
            return flat.wrt(_check_argnums(self.argnums, len(flat.spans), self.name))
        return ()

    def _arrays(self, args, kwargs):
        args = _bind_args(self.fun, args, kwargs, self.name) if self.kind not in ("jvp", "vjp") else args
        flat = self._flatten(args)
        return prepare(flat.leaves, self._wrt(flat), self.name, flat.labels, flat.positions), flat

    def _slow_call(self, args, kwargs):
        if _JIT_DISABLED[0] and self.kind == "jit" and current() is None:
            return self.fun(*args, **kwargs)
        fast = self._fast
        if fast is not None and self.kind not in ("jvp", "vjp"):
            positional = args
            if kwargs:
                # keyword arguments: bound to their positions, the C call path serves them
                # too (the full path below raises any binding error with the function's name)
                sig = _signature(self.fun)
                ba = None
                if sig is not None:
                    try:
                        ba = sig.bind(*args, **kwargs)
                    except TypeError:
                        pass
                positional = ba.args if ba is not None and not ba.kwargs else None
            if positional is not None:
                # the last signature's plan first, then the ones before it: a function
                # called with two signatures in turn (float32 and float64 batches) takes
                # the C call path for both
                for plan in (fast, *self._recent) if kwargs else self._recent:
                    r = plan(*positional)
                    if r is not _MISS:
                        if plan is not fast:
                            self._use_plan(plan)
                        return r
        handler = foreign_handler(args)
        if handler is not None:       # dask arrays: gradc.distributed sums per-chunk results
            return handler(self, args, kwargs)
        static = self._python_values(args, kwargs)
        if static is not None:
            return self._with_static(static)(*args, **kwargs)
        arrays, flat = self._arrays(args, kwargs)
        if current() is not None or any(isinstance(a, Value) for a in arrays):
            return self._call_traced(arrays, flat)
        entry = self._entry(arrays, flat)
        outs = entry.run(arrays)
        if entry.plan is not None and not self.debug_nans and not _JIT_DISABLED[0]:
            self._use_plan(entry.plan)
        return self._restructure(outs, entry.structure, flat)

    def _python_values(self, args, kwargs):
        """``grad``'s and ``value_and_grad``'s arguments that stay Python values, as JAX
        keeps every argument it does not differentiate concrete: a positional ``str`` or
        ``bool`` (an activation's name, a ``train`` flag tested with ``if``) and a
        keyword-only argument that is not an array.  ``(positions, names)``, or None when
        there are none (the usual path: numbers stay traced inputs, one compile for all)."""
        if self.kind not in ("grad", "value_and_grad"):
            return None
        n = len(args)
        nums = (self.argnums,) if isinstance(self.argnums, (int, np.integer)) else tuple(self.argnums)
        wrt = {int(a) % n for a in nums if n and -n <= a < n}
        pos = tuple(i for i, a in enumerate(args) if type(a) in (str, bool) and i not in wrt)
        names, keyword_only = (), False
        if kwargs:
            sig = _signature(self.fun)
            params = sig.parameters if sig is not None else {}
            only = {k for k in kwargs if k in params and params[k].kind == params[k].KEYWORD_ONLY}
            # a keyword-only array is an input as any other (the StaticJit passes it on)
            names = tuple(sorted(k for k, v in kwargs.items() if (k in only or type(v) in (str, bool))
                                 and k in params and not _array_like(v)))
            keyword_only = bool(only)
        return (pos, names) if pos or names or keyword_only else None

    def _with_static(self, static):
        """This function with the arguments ``_python_values`` found static: a
        :class:`gradc.static_args.StaticJit` over it (one per set of positions and names),
        compiling once per distinct set of their values."""
        from .static_args import StaticJit
        cache = self.__dict__.setdefault("_static_variants", {})
        sj = cache.get(static)
        if sj is None:
            def make(f, kind, argnums, has_aux, inner):
                return Transformed(f, kind, argnums, self._backend, self._debug_nans, has_aux)
            sj = cache[static] = StaticJit(self.fun, static[0], static[1], make, self)
        return sj

    def _use_plan(self, plan):
        """Make ``plan`` the one calls try first; the one it replaces joins the few kept
        for a miss (``_recent``, the most recent first)."""
        self._recent = tuple(p for p in (self._fast, *self._recent) if p is not None and p is not plan)[:RECENT_PLANS]
        self._fast = plan

    def _entry(self, arrays, flat: Flat):
        debug = self.debug_nans
        key = (debug, flat.tree) + tuple((a.dtype.str, a.ndim, tuple(s == 1 for s in a.shape)) for a in arrays)
        specs, names = self._specs_names(arrays, flat)
        with self._lock:
            for e in self._cache.get(key, ()):
                if e.match(arrays, flat.labels, self.name) is None:
                    return e
            unopt, fwd, g, structure, captured = self.build(specs, names, flat)
            if captured:
                raise GradcError("internal: a top-level trace captured outer values")
            g = strip_custom(g)     # what runs holds no custom_jvp/custom_vjp nodes (their rules are used)
            e = Entry(g, fwd, unopt, _compile(g, self.backend, debug), structure, self.backend)
            make_plan = getattr(e.run, "make_plan", None)
            if make_plan is not None and self.kind in ("jit", "grad", "value_and_grad", "jacobian") \
                    and len(g.inputs) == len(arrays):
                template = self._restructure(list(range(len(g.outputs))), structure, flat)
                if flat.flat and _plain(template):
                    e.plan = make_plan(template)
                else:                 # pytrees: the C path runs on the leaves
                    plan = make_plan(tuple(range(len(g.outputs))))
                    result = self._result_tree(structure, flat)
                    if result is not None and result.num_leaves != len(g.outputs):
                        result = None         # not one leaf per output: _restructure builds it
                    if plan is not None:
                        e.plan = _TreePlan.make(flat.tree, plan, result,
                                                lambda outs, st=structure, fl=flat:
                                                self._restructure(list(outs), st, fl))
            if e.match(arrays, flat.labels, self.name) is not None:
                raise GradcError(f"internal: {self.name} retraced but the new graph does not fit its arguments")
            self._cache.setdefault(key, []).append(e)
            return e

    def _call_traced(self, arrays, flat: Flat):
        specs, names = self._specs_names(arrays, flat)
        unopt, fwd, g, structure, captured = self.build(specs, names, flat)
        # the graph's inputs: the function's arguments, the captured values, then the
        # tangents (jvp) or cotangents (vjp)
        k = flat.n_primal
        outs = inline(g, list(arrays[:k]) + list(captured) + list(arrays[k:]))
        return self._restructure(outs, structure, flat)

    def _restructure(self, outs, structure: PyTreeDef, flat: Flat):
        outs = [_scalar(o) for o in outs]
        if self.kind == "jit":
            return tree_unflatten(structure, outs)
        if self.has_aux and self.kind in ("grad", "value_and_grad"):   # outs: loss, aux, gradients
            argnums = _check_argnums(self.argnums, len(flat.spans), self.name)
            n_aux = structure.children[1].num_leaves
            aux = tree_unflatten(structure.children[1], outs[1:1 + n_aux])
            grads = flat.group(argnums, outs[1 + n_aux:])
            g = grads[0] if isinstance(self.argnums, (int, np.integer)) else tuple(grads)
            return ((outs[0], aux), g) if self.kind == "value_and_grad" else (g, aux)
        if self.kind in ("grad", "value_and_grad"):
            argnums = _check_argnums(self.argnums, len(flat.spans), self.name)
            n = len(flat.wrt(argnums))
            grads = flat.group(argnums, outs[len(outs) - n:])
            g = grads[0] if isinstance(self.argnums, (int, np.integer)) else tuple(grads)
            return (outs[0], g) if self.kind == "value_and_grad" else g
        if self.kind == "jvp":
            h = len(outs) // 2
            return tree_unflatten(structure, outs[:h]), tree_unflatten(structure, outs[h:])
        if self.kind == "vjp":
            return tuple(tree_unflatten(flat.tree, outs))
        return outs

    def _result_tree(self, structure: PyTreeDef, flat: Flat) -> PyTreeDef | None:
        """The structure :meth:`_restructure` gives the graph's outputs, as one treedef
        whose leaves are the outputs in order (jit, grad, value_and_grad), else None."""
        if self.kind == "jit":
            return structure
        if self.has_aux:
            return None
        if self.kind in ("grad", "value_and_grad"):
            argnums = _check_argnums(self.argnums, len(flat.spans), self.name)
            trees = [flat.tree.children[a] for a in argnums]
            g = trees[0] if isinstance(self.argnums, (int, np.integer)) else PyTreeDef(tuple, None, tuple(trees))
            return PyTreeDef(tuple, None, (PyTreeDef(None, None, ()), g)) if self.kind == "value_and_grad" else g
        return None

    def lower(self, *args, **kwargs):
        """Compile for these arguments and return a :class:`Lowered` showing each stage."""
        arrays, flat = self._arrays(args, kwargs)
        if any(isinstance(a, Value) for a in arrays):
            raise ArgumentError("lower() needs concrete arrays, not traced values")
        low = Lowered(self._entry(arrays, flat))
        low._fun = self.fun           # explain reads its source to name intermediates
        return low


def _importable(t) -> bool:
    """Is ``t`` what its module's attribute of that name holds (``@gradc.jit def f``)?"""
    obj = sys.modules.get(getattr(t, "__module__", None) or "")
    for part in getattr(t, "__qualname__", "<").split("."):
        obj = getattr(obj, part, None)
    return obj is t


def _cloudpickle_by_value(module: str) -> bool:
    """Is cloudpickle pickling us, with ``module`` to go by value (``__main__``, or
    registered)?  Then a by-name reference would not resolve where the pickle is loaded
    (a Dask worker has another ``__main__``), so the function goes by value."""
    cp = sys.modules.get("cloudpickle")
    if cp is None:
        return False
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith("cloudpickle"):
            registered = getattr(cp, "list_registry_pickle_by_value", lambda: ())()
            return module == "__main__" or module in registered
        frame = frame.f_back
    return False


def _rebuild(cls, args, extra, token):
    """Unpickle a transformed function: the live one with this token if this process has
    it (its kernels are compiled), else a new one that compiles on first call."""
    live = _BY_TOKEN.get(token)
    if live is not None:
        return live
    t = cls(*args)
    t.__dict__.update(extra)
    del _BY_TOKEN[t._token]
    t._token = token
    _BY_TOKEN[token] = t
    _UNPICKLED.append(t)
    return t


def _scalar(o):
    if isinstance(o, np.ndarray) and o.ndim == 0:
        return o[()]
    return o



# ----------------------------------------------------------------------------- public API
def jit(fun=None, *, static_argnums=None, static_argnames=None, backend=None, debug_nans=None,
        donate_argnums=None, donate_argnames=None, inline=False, keep_unused=False):
    """Compile ``fun`` (traced once per input signature).  ``static_argnums`` /
    ``static_argnames``: arguments that are Python values (hashable), constants of the
    trace: each distinct set of them compiles once (see :mod:`gradc.static_args`).
    ``debug_nans=True``: checked mode, raising :class:`gradc.NonFiniteError` at the first
    non-finite node (default: ``gradc.config``'s setting).  ``donate_argnums``,
    ``donate_argnames``, ``inline`` and ``keep_unused`` are JAX's hints, accepted so a
    JAX training step ports unchanged, and ignored: gradc never writes into an argument
    (results are new arrays) and inlines a jit called inside a trace anyway."""
    if fun is None:
        return lambda f: jit(f, static_argnums=static_argnums, static_argnames=static_argnames,
                             backend=backend, debug_nans=debug_nans)
    if static_argnums is not None or static_argnames is not None:
        from .static_args import StaticJit

        def make(f, kind, argnums, has_aux, inner):
            inner_backend = inner._backend if inner is not None else None
            inner_nans = inner._debug_nans if inner is not None else None
            return Transformed(f, kind, argnums, backend or inner_backend,
                               debug_nans if debug_nans is not None else inner_nans, has_aux)
        inner = fun if isinstance(fun, Transformed) and fun.kind in ("jit", "grad", "value_and_grad") else None
        sj = StaticJit(fun, static_argnums, static_argnames, make, inner)
        sj.backend, sj.debug_nans = backend, debug_nans
        return sj
    return Transformed(fun, "jit", backend=backend, debug_nans=debug_nans)


def _array_like(v) -> bool:
    """An array or a pytree holding one: a value ``grad`` traces, never a static one."""
    return any(isinstance(leaf, (np.ndarray, Value)) or hasattr(leaf, "__array__") for leaf in tree_flatten(v)[0])


def _over_static_jit(fun, kind, argnums, has_aux, backend, debug_nans):
    """``grad(jit(f, static_argnums=s))`` is ``jit(grad(f), static_argnums=s)``: the static
    arguments stay Python values (JAX's grad leaves them alone too); None when ``fun`` is
    not a jit with static arguments."""
    from .static_args import StaticJit
    if not isinstance(fun, StaticJit) or (fun._inner is not None and fun._inner.kind != "jit"):
        return None
    target = fun._inner.fun if fun._inner is not None else fun.fun
    inner = Transformed(target, kind, argnums, backend or fun.backend, debug_nans if debug_nans is not None
                        else fun.debug_nans, has_aux)
    return jit(inner, static_argnums=tuple(sorted(fun.static_nums)), static_argnames=tuple(sorted(fun.static_names)))


def grad(fun, argnums=0, *, has_aux=False, allow_int=False, backend=None, debug_nans=None):
    """The gradient of a scalar function with respect to argument(s) ``argnums``.
    ``has_aux=True``: ``fun`` returns ``(loss, aux)`` (aux: any pytree of arrays, not
    differentiated) and the result is ``(gradient, aux)``, as in JAX.  Arguments not
    differentiated that are a ``str`` or a ``bool``, keyword-only arguments that are not
    arrays, and the static arguments of a ``jit`` it wraps stay Python values, as in JAX.
    ``allow_int=True``: integer and bool leaves of the differentiated arguments are
    allowed, and their gradients are zeros of dtype ``gradc.float0`` (JAX's ``float0``)."""
    if allow_int:
        from .api_allow_int import AllowInt
        return AllowInt(Transformed, fun, "grad", argnums, has_aux, backend, debug_nans)
    return (_over_static_jit(fun, "grad", argnums, has_aux, backend, debug_nans)
            or Transformed(fun, "grad", argnums, backend, debug_nans, has_aux))


def value_and_grad(fun, argnums=0, *, has_aux=False, allow_int=False, backend=None, debug_nans=None):
    """``(f(*args), grad(f)(*args))`` in one call sharing the forward pass.
    ``has_aux=True``: ``fun`` returns ``(loss, aux)`` and the result is
    ``((loss, aux), gradient)``, as in JAX.  Python values stay Python values and
    ``allow_int`` is as in :func:`grad`."""
    if allow_int:
        from .api_allow_int import AllowInt
        return AllowInt(Transformed, fun, "value_and_grad", argnums, has_aux, backend, debug_nans)
    return (_over_static_jit(fun, "value_and_grad", argnums, has_aux, backend, debug_nans)
            or Transformed(fun, "value_and_grad", argnums, backend, debug_nans, has_aux))


def _as_dtype_of(x, like):
    """``x`` converted to ``like``'s dtype (a traced value is left as it is)."""
    if isinstance(x, Value) or isinstance(like, Value):
        return x
    dtype = np.asarray(like).dtype
    return x if np.asarray(x).dtype == dtype else np.asarray(x, dtype)


def jvp(fun, primals, tangents, *, backend=None):
    """Forward mode: ``(f(*primals), J·tangents)``.  ``primals`` is a tuple of arguments
    (pytrees); ``tangents`` has the same structure; the results have the output's."""
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ArgumentError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    # the tangent graph takes each tangent in its primal's dtype: a float32 tangent of
    # a float64 primal must be converted, not read as float64 (out of its buffer)
    p_leaves, p_tree = tree_flatten(primals)
    t_leaves, t_tree = tree_flatten(tangents, is_leaf=_is_literal)
    if p_tree == t_tree:
        tangents = tree_unflatten(t_tree, [_as_dtype_of(tn, p) for tn, p in zip(t_leaves, p_leaves)])
    t = Transformed(fun, "jvp", backend=backend)
    return t(*primals, *tangents)


def vjp(fun, *primals, backend=None):
    """Reverse mode: returns ``(f(*primals), vjp_fn)``; ``vjp_fn(ct)`` gives one
    cotangent per primal (in the primal's structure), ``ct^T J``; ``ct`` has the
    output's structure (a tuple output's cotangents may also be passed one by one)."""
    out = Transformed(fun, "jit", backend=backend)(*primals)
    t = Transformed(fun, "vjp", backend=backend)
    t.n_primals = len(primals)
    return out, VJPFunction(t, primals, out)


class VJPFunction:
    """``vjp_fn`` of :func:`vjp`: ``vjp_fn(ct)`` gives one cotangent per primal.  It
    pickles (the function, the primals and the output), so it can be sent to a worker."""

    def __init__(self, transformed, primals, out):
        self.transformed, self.primals, self.out = transformed, primals, out

    def __repr__(self):
        return f"<gradc.vjp_fn of {self.transformed.name}>"

    def __call__(self, *cts):
        out_leaves, out_tree = tree_flatten(self.out)
        if len(cts) == 1:
            ct = cts[0]
        elif out_tree.node_type is tuple:
            ct = tuple(cts)       # a tuple output's cotangents, one argument each
        else:
            raise ArgumentError(f"vjp_fn: expected 1 cotangent, got {len(cts)}")
        ct_leaves, ct_tree = tree_flatten(ct, is_leaf=_is_literal)   # [1.0, 0.0]: one array
        if ct_tree != out_tree:
            if ct_tree.node_type is tuple and out_tree.node_type is tuple:
                raise ArgumentError(f"vjp_fn: expected {len(out_tree.children)} cotangents, got {len(ct_tree.children)}")
            raise ArgumentError(f"vjp_fn: the cotangent's structure {ct_tree} differs from the output's {out_tree}")
        for k, (c, o) in enumerate(zip(ct_leaves, out_leaves)):
            if np.shape(c) != np.shape(o) and not isinstance(c, Value):
                raise ArgumentError(f"vjp_fn: cotangent {k} has shape {np.shape(c)}, expected the output's shape {np.shape(o)}")
        # the adjoint graph takes each cotangent in its output's dtype (see jvp)
        ct_leaves = [_as_dtype_of(c, o) for c, o in zip(ct_leaves, out_leaves)]
        return self.transformed(*self.primals, *ct_leaves)


def explain(fun, *args, argnums=0, output_name=None):
    """The derivative of ``fun`` at arguments shaped like ``args`` with respect to
    ``argnums``, as a :class:`gradc.Explanation` (print it; ``.latex()`` for LaTeX).  For a
    scalar ``fun`` the gradient; for an array result its Jacobian.

    >>> print(gradc.explain(loss, w, b, X, y, argnums=(0, 1)))     # doctest: +SKIP
    """
    return explain_with(fun, lambda t: t.lower(*args), argnums, output_name, args=args)


def explain_with(fun, lower, argnums=0, output_name=None, args=None):
    """:func:`explain` with ``lower(transformed) -> Lowered`` choosing the signature
    (``gradc explain`` lowers for the command line's types and size names).  ``args``
    (pytrees allowed) map ``argnums`` to the graph's inputs: every leaf of a tree."""
    from .explain import explain_lowered
    nums = (argnums,) if isinstance(argnums, (int, np.integer)) else tuple(argnums)
    low = lower(jit(fun, backend="numpy"))
    fo = low.forward
    n = len(args) if args is not None else len(fo.inputs)
    for a in nums:
        if not isinstance(a, (int, np.integer)) or not -n <= a < n:
            raise ArgumentError(f"explain: argnums {a} is out of range for a function of {n} argument(s)")
    nums = tuple(int(a) % n for a in nums)
    wrt = list(Flat(args, _names(fun, n)).wrt(nums)) if args is not None else list(nums)
    if len(fo.outputs) == 1 and fo[fo.outputs[0]].shape == ():
        low = lower(value_and_grad(fun, argnums=nums, backend="numpy"))
    return explain_lowered(low, wrt=wrt, output_name=output_name)


def trace(f, *example_args, optimized=False) -> Graph:
    """Trace ``f`` on arguments shaped like ``example_args``; returns its Graph
    (``graph.nx`` is the networkx DiGraph; ``str(graph)`` a readable listing)."""
    name = getattr(f, "__name__", "f")
    flat = Flat(example_args, _names(f, len(example_args)))    # pytrees: one input per leaf
    arrays = prepare(flat.leaves, (), name, flat.labels, flat.positions)
    g, _, _ = trace_specs(flat.fun(f), [Spec.of(a) for a in arrays], flat.names, name=name)
    return optimize(g) if optimized else g
