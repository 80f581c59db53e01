"""The public transformations: jit, grad, value_and_grad, jvp, vjp (jacobian in
jacobian.py, hessian and hvp in hessian.py, built on these), and trace and explain.  Each
transformation returns a callable that traces the user's function on first call for each
input signature (rank, dtype, which sizes are 1), differentiates and optimizes the graph,
compiles it with a backend, and caches the result.

Called with traced values (inside another transformation) a transformation builds its
graph and inlines it into the outer trace, so transformations compose: grad(grad(f)),
jacobian(grad(f)), jit(grad(f))."""
from __future__ import annotations

import collections
import functools
import inspect
import re
import sys
import threading
import uuid
import weakref

import numpy as np

from . import backends
from .autodiff import jvp_graph, vjp_graph
from .errors import ArgumentError, GradcError
from .graph import Graph, fmt_type
from .passes import optimize, strip_custom
from .tracer import Spec, Value, current, inline, trace_specs, user_source
from .tree_util import (PyTreeDef, compile_flatten, compile_unflatten, flatten_as, keystr, leaf_paths,
                        tree_flatten, tree_unflatten)

import os as _os

# Native code is the default; GRADC_BACKEND overrides it (numpy: the reference evaluator).
_config = {"backend": _os.environ.get("GRADC_BACKEND", "llvm"), "debug_nans": False}

try:
    from ._callpath import MISS as _MISS
except ImportError:  # the C extension is optional: the ctypes path is used instead
    _MISS = object()

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


MAX_RANK = 8   # the native call path's MAXDIM (runtime/callpath.c)
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


# ----------------------------------------------------------------------------- arguments
_SIGNATURES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _signature(fun):
    """``inspect.signature(fun)`` (None where it has none), kept per function: a call
    with keyword arguments binds them on every call (inspect took about 30 us of it)."""
    try:
        return _SIGNATURES[fun]
    except (KeyError, TypeError):
        pass
    try:
        sig = inspect.signature(fun)
    except (TypeError, ValueError):
        sig = None
    try:
        _SIGNATURES[fun] = sig
    except TypeError:          # not weakly referable: asked again next time
        pass
    return sig


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
        if isinstance(x, (list, tuple)):
            raise ArgumentError(_ragged_message(x, i, name, fname)) from None
        raise ArgumentError(f"{fname}: argument {i} ({name}) cannot be converted to an array: {e}") from None
    k = a.dtype.kind
    if k == "c":
        raise ArgumentError(f"{fname}: argument {i} ({name}) has complex dtype {a.dtype}; expected float32 or float64")
    if k not in "biuf":
        hint = ""
        if a.dtype == object and a.ndim == 0:     # an object gradc does not know as a container
            hint = (f"; if {type(x).__name__} holds arrays, register it as a pytree node "
                    "(gradc.tree_util.register_dataclass for a dataclass, register_pytree_node_class "
                    "or register_pytree_node otherwise)")
        raise ArgumentError(f"{fname}: argument {i} ({name}) has dtype {a.dtype} ({type(x).__name__}); "
                            "expected a numeric array (float32, float64, int or bool)" + hint)
    if a.ndim > MAX_RANK:
        raise ArgumentError(f"{fname}: argument {i} ({name}) has rank {a.ndim}; gradc supports ranks 0 to {MAX_RANK}")
    if k == "f" and a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float32 if a.dtype.itemsize < 4 else np.float64)
    # Python numbers are weakly typed, as in numpy 2 and JAX; numpy's integer and bool
    # scalars (np.int32(2)) keep their dtype, as numpy 2's; numpy's float scalars stay
    # weak (np.float64 is a Python float, and the C call path takes it as one): see prepare
    if isinstance(x, (bool, int, float)) and not isinstance(x, (np.integer, np.bool_)):
        a = ("weak", a)
    return a


def _ragged(x, path=()):
    """``(path, shapes)``: the first place where the elements of the nested list ``x``
    disagree in shape (numpy cannot stack them), or None."""
    if not isinstance(x, (list, tuple)):
        return None
    shapes = [np.shape(e) if not isinstance(e, (list, tuple)) or _ragged(e) is None else None
              for e in x]
    for k, e in enumerate(x):
        inner = _ragged(e, path + (k,))
        if inner is not None:
            return inner
    if len(set(shapes)) > 1:
        return path, shapes
    return None


def _ragged_message(x, i, name, fname) -> str:
    where = _ragged(x)
    src = user_source()
    got = "a nested list"
    if where is not None:
        path, shapes = where
        shown = ", ".join(f"{name}{keystr(path + (k,))}: {s}" for k, s in enumerate(shapes[:4]))
        got = f"a list whose elements have different shapes ({shown}{', ...' if len(shapes) > 4 else ''})"
    return (f"{fname}: argument {i} ({name}) is {got}; numpy cannot stack it into one array. "
            "Expected an array, or a rectangular nested list of numbers that numpy reads as one. "
            "If these are separate parameters, pass them as a pytree: a list, tuple or dict of "
            "arrays ([np.asarray(W), np.asarray(b)] or {'W': W, 'b': b}), whose gradient comes back "
            "in the same structure" + (f"  [at {src}]" if src else ""))


def prepare(args, wrt, fname, names, positions=None):
    """Convert call arguments (leaves) to arrays: weak Python scalars take the
    computation's float dtype, and so do differentiated (``wrt``) literals such as
    ``[1, 2, 3]``.  A differentiated integer or bool array is an error, as in JAX: its
    gradient is not defined.  ``names`` label the arguments in
    messages; ``positions`` give each one's argument number (default: its index)."""
    positions = range(len(args)) if positions is None else positions
    raw = [_to_array(x, i, n, fname) for x, i, n in zip(args, positions, names)]
    strong = [r for r in raw if not isinstance(r, tuple)]
    dt = _float_dtype(strong)
    # A Python int or bool beside integer arrays and no float ones takes their integer
    # type (int32 array * 2 stays int32, as numpy's); alone, int64 (bool stays bool)
    floats = any(getattr(r, "dtype", np.dtype(np.float64)).kind == "f" for r in strong)
    ints = [r.dtype for r in strong if isinstance(r, (np.ndarray, Value)) and r.dtype.kind in "iub"]
    out = []
    for k, r in enumerate(raw):
        if isinstance(r, tuple):
            v = r[1]
            if v.dtype.kind in "biu" and not floats and k not in wrt:
                r = v.astype(np.result_type(*ints) if ints and not (v.dtype.kind != "b" and
                                                                   all(d.kind == "b" for d in ints))
                             else (v.dtype if v.dtype.kind == "b" else np.int64))
            else:
                r = v.astype(dt)
        elif isinstance(r, np.ndarray) and k in wrt and r.dtype.kind != "f":
            if isinstance(args[k], (list, tuple)):   # a literal of Python numbers: weakly typed
                out.append(r.astype(dt))
                continue
            src = user_source()
            raise ArgumentError(
                f"{fname}: argument {positions[k]} ({names[k]}) is differentiated (argnums) but has dtype "
                f"{r.dtype}; gradients are taken with respect to float32 or float64 arrays only. Pass it "
                f"as floats (e.g. x.astype(np.float64)) or leave it out of argnums"
                + (f"  [at {src}]" if src else ""))
        out.append(r)
    return out


# ----------------------------------------------------------------------------- pytrees
def _is_literal(x) -> bool:
    """A (nested) list or tuple of numbers: numpy reads it as one array, and so does
    gradc (``f([1.0, 2.0])`` passes a vector).  Any other list or tuple is a pytree."""
    return type(x) in (list, tuple) and len(x) > 0 and all(
        isinstance(e, (bool, int, float, complex, np.generic)) or _is_literal(e) for e in x)


def _identifier(k) -> str:
    return re.sub(r"\W", "_", str(k))


class Flat:
    """A call's arguments flattened to leaves: the graph's inputs.

    ``tree``: the structure of the function's own arguments (a tuple of them);
    ``spans[i]``: the leaf range of argument i; ``names``: a name per leaf usable in
    graphs and C headers (``params_W1``); ``labels``: as messages show it
    (``params['W1']``); ``positions``: each leaf's argument number."""

    __slots__ = ("leaves", "tree", "spans", "names", "labels", "positions", "n_primal", "flat")

    def __init__(self, args, arg_names, extra=(), extra_names=()):
        leaves, subtrees = [], []
        for x in args:      # one by one: the argument tuple itself is never an array literal
            xs, sub = tree_flatten(x, is_leaf=_is_literal)
            leaves += xs
            subtrees.append(sub)
        tree = PyTreeDef(tuple, None, tuple(subtrees))
        self.tree, self.n_primal = tree, len(leaves)
        self.flat = all(c.is_leaf() for c in tree.children)
        self.spans, self.names, self.labels, self.positions = [], [], [], []
        start, taken = 0, set()
        for i, (sub, name) in enumerate(zip(tree.children, arg_names)):
            self.spans.append((start, start + sub.num_leaves))
            start += sub.num_leaves
            for path in leaf_paths(sub):
                nm = "_".join([name] + [_identifier(k) for k in path])
                while nm in taken:
                    nm += "_"
                taken.add(nm)
                self.names.append(nm)
                self.labels.append(name + keystr(path))
                self.positions.append(i)
        self.leaves = leaves + list(extra)
        self.names += list(extra_names)
        self.labels += list(extra_names)
        self.positions += list(range(len(args), len(args) + len(extra)))

    def wrt(self, argnums) -> tuple:
        """The leaf indices of arguments ``argnums``."""
        return tuple(k for a in argnums for k in range(*self.spans[a]))

    def group(self, argnums, leaves):
        """Per argument of ``argnums``, its tree rebuilt from ``leaves`` (in wrt order)."""
        out, k = [], 0
        for a in argnums:
            n = self.tree.children[a].num_leaves
            out.append(tree_unflatten(self.tree.children[a], leaves[k:k + n]))
            k += n
        return out

    def fun(self, f):
        """``f`` taking leaves instead of trees (``f`` itself when every argument is a leaf)."""
        if self.flat:
            return f
        tree = self.tree

        def flat_f(*leaves):
            return f(*tree_unflatten(tree, leaves))
        return flat_f


class _TreePlan:
    """The C call path for pytree arguments: flatten the call's arguments, checking that
    their containers are the compiled ones (code generated per structure:
    ``tree_util.compile_flatten``), run the C plan on the leaves (it checks each leaf's
    type, rank, dtype, sizes and layout), and rebuild the result's structure (code
    generated too).  MISS when anything differs: the slow path takes over."""

    __slots__ = ("flatten", "plan", "finish")

    def __init__(self, flatten, plan, finish):
        self.flatten, self.plan, self.finish = flatten, plan, finish

    def __call__(self, *args):
        leaves = self.flatten(*args)
        if leaves is None:
            return _MISS
        r = self.plan(*leaves)
        return r if r is _MISS else self.finish(r)

    @staticmethod
    def make(tree: PyTreeDef, plan, result: PyTreeDef | None, restructure):
        """The plan for arguments of structure ``tree`` (a tuple of the arguments'
        treedefs); ``result`` is the result's structure over the graph's outputs (None
        when it is not one: ``restructure(outs)`` builds it)."""
        flatten = compile_flatten(tree.children, is_leaf=_is_literal)
        if flatten is None:        # a registered node type: the generic walk
            def flatten(*args, children=tree.children):
                if len(args) != len(children):
                    return None
                leaves = []
                for sub, x in zip(children, args):     # as Flat: argument by argument
                    xs = flatten_as(sub, x, is_leaf=_is_literal)
                    if xs is None:
                        return None
                    leaves += xs
                return leaves
        finish = compile_unflatten(result) if result is not None else None
        return _TreePlan(flatten, plan, finish or restructure)


def _plain(template) -> bool:
    """A result layout the C call path can build: an int or nested tuples of them."""
    return isinstance(template, int) or (type(template) is tuple and all(_plain(t) for t in template))


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
        arrays, flat = self._arrays(args, kwargs)
        if current() is not None or any(isinstance(a, Value) for a in arrays):
            return self._call_traced(arrays, flat)
        entry = self._entry(arrays, flat)
        outs = entry.run(arrays)
        if entry.plan is not None and not self.debug_nans:
            self._use_plan(entry.plan)
        return self._restructure(outs, entry.structure, flat)

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


def _args_tree(flat: Flat) -> str:
    return ", ".join(map(str, flat.tree.children))


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


# ----------------------------------------------------------------------------- public API
def jit(fun=None, *, static_argnums=None, static_argnames=None, backend=None, debug_nans=None):
    """Compile ``fun`` (traced once per input signature).  ``static_argnums`` /
    ``static_argnames``: arguments that are Python values (hashable), constants of the
    trace: each distinct set of them compiles once (see :mod:`gradc.static_args`).
    ``debug_nans=True``: checked mode, raising :class:`gradc.NonFiniteError` at the first
    non-finite node (default: ``gradc.config``'s setting)."""
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
        return StaticJit(fun, static_argnums, static_argnames, make, inner)
    return Transformed(fun, "jit", backend=backend, debug_nans=debug_nans)


def grad(fun, argnums=0, *, has_aux=False, backend=None, debug_nans=None):
    """The gradient of a scalar function with respect to argument(s) ``argnums``.
    ``has_aux=True``: ``fun`` returns ``(loss, aux)`` (aux: any pytree of arrays, not
    differentiated) and the result is ``(gradient, aux)``, as in JAX."""
    return Transformed(fun, "grad", argnums, backend, debug_nans, has_aux)


def value_and_grad(fun, argnums=0, *, has_aux=False, backend=None, debug_nans=None):
    """``(f(*args), grad(f)(*args))`` in one call sharing the forward pass.
    ``has_aux=True``: ``fun`` returns ``(loss, aux)`` and the result is
    ``((loss, aux), gradient)``, as in JAX."""
    return Transformed(fun, "value_and_grad", argnums, backend, debug_nans, has_aux)


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
