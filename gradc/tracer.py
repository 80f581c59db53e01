"""Tracing: run a Python function on :class:`Value` placeholders and record a Graph.

``bind(op, *args, **params)`` is the one way a node enters a graph: it converts
constants, checks the op's shape rule, and adds the node to the current
:class:`Builder`.  Builders nest (``grad(grad(f))`` traces ``f`` inside the trace of
``grad(f)``); a Value of an outer builder used inside an inner one is captured as an
extra input of the inner graph (closure conversion), so every graph is self-contained.
"""
from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np

from .errors import ArgumentError, GradcError, ShapeError, TracerBoolError, UnsupportedError
from .graph import Graph, Provenance, fmt_type
from .shapes import ShapeEnv, fmt_shape
from .tree_util import register_pytree_node

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
_state = threading.local()


def _stack() -> list:
    s = getattr(_state, "stack", None)
    if s is None:
        s = _state.stack = []
    return s


def current() -> "Builder | None":
    s = _stack()
    return s[-1] if s else None


@contextmanager
def outside_trace():
    """Compute concretely inside the block, even within a trace (a function of Python
    numbers alone folds to a number, as a constant would)."""
    saved = _stack()[:]
    _state.stack = []
    try:
        yield
    finally:
        _state.stack = saved


def user_provenance() -> Provenance | None:
    """The innermost frame outside gradc (the user's model code): file, line, function."""
    f = sys._getframe(1)
    while f is not None:
        code = f.f_code
        if not os.path.abspath(code.co_filename).startswith(_PKG_DIR):
            return Provenance(code.co_filename, f.f_lineno, code.co_name)
        f = f.f_back
    return None


def user_source() -> str | None:
    """``file.py:line`` of the innermost frame outside gradc, for messages."""
    p = user_provenance()
    return p.where if p is not None else None


@contextmanager
def provenance(p: Provenance | None):
    """Give the nodes bound inside the block provenance ``p`` (instead of the caller's
    line): a transformation's nodes belong to the value they transform."""
    b = current()
    prev, b.provenance = b.provenance, p
    try:
        yield
    finally:
        b.provenance = prev


@dataclass(frozen=True)
class Spec:
    """An argument's abstract type: symbolic shape, dtype, example sizes."""
    shape: tuple
    dtype: np.dtype
    example: tuple

    @staticmethod
    def of_node(graph: Graph, nid: int) -> "Spec":
        """The spec of a graph input, keeping its size symbols' names."""
        d = graph[nid]
        ex = graph.example
        return Spec(d.shape, d.dtype, tuple(x if isinstance(x, int) else ex.get(x, 2) for x in d.shape))

    @staticmethod
    def of(arr: np.ndarray) -> "Spec":
        return Spec(tuple(1 if s == 1 else None for s in arr.shape), arr.dtype, arr.shape)

    def __str__(self):
        return fmt_type(self.example, self.dtype)


class Builder:
    """Collects the nodes of one trace into a Graph."""

    def __init__(self, name="f"):
        self.graph = Graph(name)
        self.env = ShapeEnv()
        self.env.where = user_source          # (the line that fixes a size the caller named)
        self.role = "forward"
        self.provenance: Provenance | None = None   # set: every node bound gets it
        self.captured: list[Value] = []      # outer Values captured as extra inputs
        self._capture_ids: dict[int, Value] = {}
        self.consts: dict = {}
        self.active = True
        for outer in _stack():        # (see ShapeEnv.reserved)
            self.env.reserved.update(outer.env._parent)

    def __enter__(self):
        _stack().append(self)
        return self

    def __exit__(self, *exc):
        _stack().pop()
        self.active = False

    def input(self, spec: Spec, name: str) -> "Value":
        shape = tuple(self.env.new(e) if d is None else self.env.named(d, e) if isinstance(d, str) else d
                      for d, e in zip(spec.shape, spec.example))
        nid = self.graph.add("input", (), shape=shape, dtype=spec.dtype, name=name,
                             params={"index": len(self.graph.inputs)})
        self.graph.inputs.append(nid)
        return Value(self, nid)

    def const(self, value) -> "Value":
        arr = np.asarray(value)
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            raise UnsupportedError(f"constant of dtype {arr.dtype} is not supported "
                                   "(expected a float, int or bool array)")
        if arr.dtype.kind == "f" and arr.dtype.itemsize < 4:
            arr = value = arr.astype(np.float32)    # as a float16 argument is (api._to_array)
        # Small constants are shared by content, big ones by identity.  The entry keeps
        # `value` alive: otherwise a temporary (`x[np.arange(n), labels]`) could be freed
        # and a later one reuse its id, and two different constants would become one.
        key = (arr.dtype.str, arr.shape, arr.tobytes()) if arr.size <= 64 else ("id", id(value))
        hit = self.consts.get(key)
        if hit is not None:
            return hit[1]
        arr = arr.copy()
        arr.flags.writeable = False
        v = Value(self, self.graph.add("const", (), shape=arr.shape, dtype=arr.dtype,
                                       params={"value": arr}, role=self.role))
        self.consts[key] = (value, v)
        return v

    def capture(self, v: "Value") -> "Value":
        if not v._b.active:
            raise GradcError("a traced value escaped its trace (it was stored outside the "
                             "function being transformed and used later)")
        hit = self._capture_ids.get(id(v))
        if hit is not None:
            return hit
        # The captured value keeps the outer trace's sizes: a number stays that number, a
        # symbol that symbol's name (which no size of this trace has otherwise: the
        # names ShapeEnv.new picks here avoid the outer trace's).  An op of this trace
        # may compute with them: a reshape of the captured value, whose target shape was
        # read off the outer value, names the outer sizes.
        spec = Spec(tuple(v._shape), v.dtype, tuple(v._b.env.value(d) for d in v._shape))
        inner = self.input(spec, f"captured{len(self.captured)}")
        self.graph[inner._id].params["captured"] = True
        self.captured.append(v)
        self._capture_ids[id(v)] = inner
        return inner

    def finish(self, outputs: list["Value"]) -> Graph:
        """Canonicalize shapes after unification and return the graph."""
        g = self.graph
        g.outputs = [o._id for o in outputs]
        for nid in g.nx.nodes:
            d = g[nid]
            d.shape = self.env.canon(d.shape)
            d.params = {k: canon_param(v, self.env.find) for k, v in d.params.items()}
        g.minimum = {self.env.find(k): v for k, v in self.env.minimum.items()
                     if isinstance(self.env.find(k), str)}
        g.example = {s: self.env.example[s] for s in self.env.example if self.env.find(s) == s}
        for name, (v, where) in sorted(self.env.fixed.items()):
            g.notes.append(f"size {name} is fixed to {v}" + (f" at {where}" if where else "")
                           + " (the code there needs it as a number)")
        return g


def canon_param(v, f):
    if isinstance(v, tuple):
        return tuple(canon_param(x, f) for x in v)
    if isinstance(v, str) and not v.isidentifier():
        return v
    return f(v) if isinstance(v, str) else v


def subst_params(params: dict, symmap: dict) -> dict:
    def s(v):
        if isinstance(v, tuple):
            return tuple(s(x) for x in v)
        if isinstance(v, str) and v in symmap:
            return symmap[v]
        return v
    return {k: s(v) for k, v in params.items()}


# ----------------------------------------------------------------------------- binding
from .ops.registry import CONVERSIONS, OPS  # noqa: E402  (ops import Value lazily through this module)


def to_value(x, b: Builder | None = None) -> "Value":
    b = b or current()
    if isinstance(x, Value):
        return x if x._b is b else b.capture(x)
    if isinstance(x, (bool, int, float, np.generic, np.ndarray, list, tuple)):
        if isinstance(x, (list, tuple)) and any(isinstance(e, Value) for e in _flat(x)):
            return CONVERSIONS["nested_list"](x)
        return b.const(x)
    if isinstance(x, complex) or (hasattr(x, "dtype") and np.dtype(x.dtype).kind == "c"):
        raise UnsupportedError("complex values are not supported (gradc differentiates real functions)")
    raise UnsupportedError(f"cannot use a {type(x).__name__} in a gradc computation "
                           "(expected an array, a Python number or a traced value)")


def _flat(x):
    for e in x:
        if isinstance(e, (list, tuple)):
            yield from _flat(e)
        else:
            yield e


def bind(opname: str, *args, **params) -> "Value":
    """Add one node: ``opname`` applied to ``args`` (Values or constants)."""
    b = current()
    if b is None:
        raise GradcError(f"internal: bind({opname}) outside a trace")
    vals = [to_value(a, b) for a in args]
    op = OPS[opname]
    avals = [(v._shape, v.dtype) for v in vals]
    try:
        shape, dtype = op.shape_rule(b.env, avals, **params)
    except ShapeError as e:
        src = user_source()
        shown = ", ".join(fmt_type(tuple(b.env.shown(d) for d in s), t) for s, t in avals)
        raise ShapeError(f"{op.name}({shown}): {e}" + (f"  [at {src}]" if src else "")) from None
    if dtype is not None and np.dtype(dtype).kind == "f" and np.dtype(dtype) not in (np.float32, np.float64):
        # (float16 arguments and constants are widened to float32; native code has no
        # other float type, and a value rounded to float16 would silently not be)
        src = user_source()
        raise UnsupportedError(f"{op.name}: a {np.dtype(dtype)} result is not supported (gradc computes in float32 "
                               f"and float64; float16 arguments compute in float32): use np.float32"
                               + (f"  [at {src}]" if src else ""))
    nid = b.graph.add(opname, [v._id for v in vals], shape=shape, dtype=dtype, params=params,
                      provenance=b.provenance or user_provenance(), role=b.role)
    return Value(b, nid)


def inline(graph: Graph, args: list) -> list["Value"]:
    """Replay ``graph`` into the current trace on ``args``; returns its outputs."""
    env = replay(graph, args)
    return [env[o] for o in graph.outputs]


def replay(graph: Graph, args: list, rewrite=None, passthrough=None) -> dict:
    """Replay ``graph`` into the current trace; returns {graph node: Value}.

    ``rewrite(graph, nid, argument Values)`` may return a Value to use instead of
    re-binding node ``nid`` (backends decompose ops this way).  ``passthrough(node)``
    may name an argument position whose value the node becomes, unreplayed (autodiff
    drops custom-derivative nodes whose rule it consumes).  Each node keeps its
    provenance, with the node a derivative differentiates renamed to its replay."""
    b = current()
    vals = [to_value(a, b) for a in args]
    if len(vals) != len(graph.inputs):
        raise GradcError(f"internal: inlining {graph.name} with {len(vals)} of {len(graph.inputs)} inputs")
    vals, symmap = match_inputs(graph, vals, [v._shape for v in vals], f"{graph.name}: argument")
    env: dict = dict(zip(graph.inputs, vals))
    later = []   # (new node ids, their provenance, the node it differentiates) replayed later
    for nid in graph.order():
        d = graph[nid]
        if nid in env:
            continue
        if d.op == "const":
            env[nid] = b.const(d.params["value"])
            continue
        if passthrough is not None:
            k = passthrough(d)
            if k is not None:
                env[nid] = env[d.args[k]]
                continue
        prov = d.provenance
        of = graph.differentiates(nid) if prov is not None and prov.mode else None
        if prov is not None and prov.mode:
            prov = replace(prov, of=env[of]._id if of in env else None)
        prev, prev_role = b.provenance, b.role
        b.provenance = prov
        if rewrite is not None:
            b.role = d.role
        first = b.graph._next
        try:
            out = rewrite(graph, nid, [env[a] for a in d.args]) if rewrite is not None else None
            env[nid] = out if out is not None else \
                bind(d.op, *[env[a] for a in d.args], **subst_params(d.params, symmap))
        finally:
            b.provenance = prev
            if rewrite is not None:
                b.role = prev_role
        if of is not None and of not in env:
            later.append((range(first, b.graph._next), prov, of))
    for new_ids, prov, of in later:
        fixed = replace(prov, of=env[of]._id)
        for n in new_ids:
            if n in b.graph.nx and b.graph[n].provenance is prov:
                b.graph[n].provenance = fixed
    return env


def match_inputs(graph: Graph, vals: list, shapes: list, what: str) -> tuple[list, dict]:
    """``graph``'s inputs given ``vals`` (Values of the current trace) whose shapes, as
    the graph sees them, are ``shapes``: each value cast to its input's dtype, and each
    input's sizes unified with those shapes.  Returns the values and {graph's size
    symbol: the trace's size}, for substituting into the nodes' params."""
    b = current()
    symmap: dict = {}
    out = []
    for nid, v, shape in zip(graph.inputs, vals, shapes):
        d = graph[nid]
        if v.dtype != d.dtype:
            v = bind("cast", v, dtype=d.dtype)
        if len(d.shape) != len(shape):
            raise ShapeError(f"{what} {d.name} expects rank {len(d.shape)}, got {len(shape)}")
        for gd, vd in zip(d.shape, shape):
            if isinstance(gd, int):
                b.env.equal(vd, gd, f"{what} {d.name}")
            elif gd in symmap:
                symmap[gd] = b.env.equal(symmap[gd], vd, f"{what} {d.name}")
            else:
                symmap[gd] = vd
        out.append(v)
    for s, k in graph.minimum.items():
        if s in symmap:
            b.env.at_least(symmap[s], k)
    return out, symmap


# jax.dtypes.float0: the tangent type of integer values, a void of no bytes
float0 = np.dtype([("float0", np.void, 0)])


class Float0Zeros:
    """Zeros of dtype float0 a traced function returns (``grad(..., allow_int=True)``'s
    gradient of an integer leaf).  They hold no data, so they are no output of the graph:
    the output's structure keeps them as a node without leaves, and rebuilding the tree
    after a call makes the zeros."""
    __slots__ = ("shape",)

    def __init__(self, shape):
        self.shape = tuple(int(d) for d in shape)


register_pytree_node(Float0Zeros, lambda z: ((), z.shape), lambda shape, _: np.zeros(shape, float0))


def _is_float0(x) -> bool:
    return isinstance(x, np.ndarray) and x.dtype == float0


def _output_leaves(out):
    """``tree_flatten(out)``, float0 arrays taken into the structure (Float0Zeros)."""
    from .tree_util import tree_flatten, tree_unflatten
    leaves, structure = tree_flatten(out)
    if not any(_is_float0(x) for x in leaves):
        return leaves, structure
    marked = [Float0Zeros(x.shape) if _is_float0(x) else x for x in leaves]
    return tree_flatten(tree_unflatten(structure, marked))


def batch_float0(structure, n: int, axis: int = 0):
    """``structure`` with the float0 zeros in it given a mapped axis of size n (vmap)."""
    from .tree_util import PyTreeDef
    if structure.node_type is Float0Zeros:
        shape = list(structure.aux)
        shape.insert(axis % (len(shape) + 1), int(n))
        return PyTreeDef(Float0Zeros, tuple(shape), ())
    if not structure.children:
        return structure
    kids = tuple(batch_float0(c, n, axis) for c in structure.children)
    return structure if kids == structure.children else PyTreeDef(structure.node_type, structure.aux, kids)


def trace_specs(fn, specs: list[Spec], names: list[str], name: str = "f"):
    """Trace ``fn`` on placeholders of the given specs (``gradc.trace`` is the public
    entry, on example arrays).

    Returns ``(graph, structure, captured)``: ``structure`` is the output's pytree
    structure (a :class:`~gradc.tree_util.PyTreeDef`: a single leaf for one array; the
    graph's outputs are its leaves); ``captured`` lists outer Values the function closed
    over (extra inputs at the end of the graph).
    """
    with Builder(name) as b:
        args = [b.input(s, n) for s, n in zip(specs, names)]
        out = fn(*args)
        if out is None:
            raise ArgumentError(f"{name} returned None; it must return an array or a pytree of arrays")
        leaves, structure = _output_leaves(out)
        outs = [to_value(o, b) for o in leaves]
        g = b.finish(outs)
    return g, structure, b.captured


# ----------------------------------------------------------------------------- Value
def _in_numpy_vectorize() -> bool:
    """Whether numpy.vectorize's own code is on the stack: its Python loop converts the
    arguments to arrays first, where a traced value refuses, and the message should name
    gradc.numpy.vectorize (numpy.vectorize is a class, so ``__array_function__`` cannot
    redirect it as it does numpy's functions)."""
    f = sys._getframe(1)
    for _ in range(40):
        if f is None:
            return False
        if isinstance(f.f_locals.get("self"), np.vectorize):
            return True
        f = f.f_back
    return False


class Value:
    """A traced array: a node of the graph being built.  Behaves like a numpy array."""

    __slots__ = ("_b", "_id")
    __array_priority__ = 1000

    def __init__(self, builder: Builder, nid: int):
        self._b = builder
        self._id = nid

    @property
    def _node(self):
        return self._b.graph[self._id]

    @property
    def _shape(self):
        return self._b.env.canon(self._node["shape"])

    @property
    def dtype(self):
        return self._node["dtype"]

    @property
    def ndim(self):
        return len(self._node["shape"])

    @property
    def shape(self):
        """Concrete sizes.  Reading them fixes the graph to these sizes (a call with
        other sizes retraces), since Python code may compute with them."""
        return tuple(self._b.env.pin(d) for d in self._shape)

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d traced value")
        return self._b.env.pin(self._shape[0])      # (fixes the first size, not the others)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self):
        ex = tuple(self._b.env.value(d) for d in self._shape)
        return f"Traced<{fmt_type(self._shape, self.dtype)}, example {fmt_shape(ex)}> {self._b.graph.label(self._id)}"

    def _concrete_error(self, what):
        src = user_source()
        head = f"{what} of a traced value {fmt_type(self._shape, self.dtype)}" + (f" at {src}" if src else "")
        node = self._b.graph[self._id]
        if node["op"] == "input" and self._shape == () and what in ("bool()", "int()", "use as an index"):
            name = node.get("name") or "the argument"
            head += (f" (argument {name!r}; a Python value that decides the code, such as a loop count, a "
                     f"size or a flag, can be made static: gradc.jit(f, static_argnames=({name!r},)))")
        if _in_numpy_vectorize():
            return TracerBoolError(
                head + ": numpy.vectorize loops in Python over the array's numbers, and a traced value "
                "has none yet (they exist only when the compiled function runs). Use "
                "gradc.numpy.vectorize(pyfunc, excluded=..., signature=...) instead: the same arguments, "
                "mapped with gradc.vmap, as jax.numpy.vectorize.")
        if what in ("bool()",):
            return TracerBoolError(
                head + ": its value is not known while gradc traces the function. Python control "
                "flow (if/while/and/or) cannot depend on it; use gradc.where(cond, a, b) to "
                "select values, or pass the value as a static Python number.")
        return TracerBoolError(
            head + ": gradc runs the function once on placeholders to record its operations, "
            "so a traced value has no numbers yet (they exist only when the compiled function "
            "runs), and numpy's own code cannot compute with it. Keep it an array of gradc's: "
            "use `import gradc.numpy as np` (whose functions accept traced values), "
            "return the value instead of converting it, and compute constants that do not "
            "depend on the arguments outside the function. To choose values by a condition, "
            "use gradc.where(cond, a, b).")

    def __bool__(self):
        raise self._concrete_error("bool()")

    def __float__(self):
        raise self._concrete_error("float()")

    def __int__(self):
        raise self._concrete_error("int()")

    def __index__(self):
        raise self._concrete_error("use as an index")

    def __complex__(self):
        raise self._concrete_error("complex()")

    def __array__(self, dtype=None, copy=None):
        raise self._concrete_error("conversion to a numpy array")

    def item(self, *args):
        raise self._concrete_error(".item()")

    def tolist(self):
        raise self._concrete_error(".tolist()")

    def _index_dtype_error(self):
        """The error for a non-integer traced value used as an index: names the argument
        when it is one (a Python int argument takes the float dtype of the others)."""
        src = user_source()
        msg = f"index arrays must be integers, got {fmt_type(self._shape, self.dtype)}"
        node = self._b.graph[self._id]
        if node["op"] == "input":
            name = node.get("name") or "the argument"
            msg += (f" (argument {name!r}: a Python int passed to a compiled function is a weak scalar and "
                    f"takes the float dtype of the other arguments, as in numpy 2; pass an integer array or "
                    f"np.int64(...), or make it static: gradc.jit(f, static_argnames=({name!r},)))")
        return UnsupportedError(msg + (f"  [at {src}]" if src else ""))

    def __hash__(self):
        return id(self)

    def __setitem__(self, key, value):
        src = user_source()
        raise UnsupportedError(
            f"in-place assignment x[...] = ... on a traced value {fmt_type(self._shape, self.dtype)}"
            + (f" at {src}" if src else "")
            + ": gradc's traced values are immutable (the graph records values, not memory). "
            "Write x = x.at[index].set(value) instead (x[index] += v is x = x.at[index].add(v); "
            "likewise .multiply, .min, .max)")
