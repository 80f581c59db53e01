"""Arguments of a transformed function's call, before anything is traced or compiled:
binding them to the function's parameters (names, keywords, defaults), converting each to
an array with the dtype rules of numpy 2 and JAX (weak Python scalars, ragged-list and
bad-dtype errors that name the argument), flattening pytree arguments to leaves
(:class:`Flat`), checking ``argnums``, and the C call path for pytree arguments
(:class:`_TreePlan`, with the call path's MISS).  gradc.api calls these and re-exports
the names other modules import from it."""
from __future__ import annotations

import inspect
import re
import weakref

import numpy as np

from .errors import ArgumentError
from .tracer import Value, user_source
from .tree_util import (PyTreeDef, compile_flatten, compile_unflatten, flatten_as, keystr, leaf_paths,
                        tree_flatten, tree_unflatten)

try:
    from ._callpath import MISS as _MISS
except ImportError:  # the C extension is optional: the ctypes path is used instead
    _MISS = object()

MAX_RANK = 8   # the native call path's MAXDIM (runtime/callpath.c)


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
                f"as floats (e.g. x.astype(np.float64)), leave it out of argnums, or pass allow_int=True "
                f"(its gradient is then zeros of dtype float0)"
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



def _args_tree(flat: Flat) -> str:
    return ", ".join(map(str, flat.tree.children))

