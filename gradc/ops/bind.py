"""The op modules' one low-level entry point: bind a primitive by its registry name, and
the few helpers every op block's rules share (numpy's dtype promotion, a cast, the
adjoint of broadcasting).

The op modules import one way (their order is stated in tests/test_layers.py): this
module, then structure, elementwise, reduce, linalg, and the composites above them.  A
rule that needs an op of a module above its own binds that op here by name --
``bind("sum", g, axes=(0,), keepdims=False)`` -- instead of importing the module's
numpy-facing wrapper, whose argument checks and promotion a rule does not need.
"""
from __future__ import annotations

import numpy as np


def tracer():
    """gradc.tracer, imported when first needed: the tracer imports the op registry,
    which this package fills as it is imported."""
    from .. import tracer as trace
    return trace


def bind(name: str, *args, **params):
    """Apply the registered op ``name`` to traced values (``gradc.tracer.bind``)."""
    return tracer().bind(name, *args, **params)


# ----------------------------------------------------------------------------- dtypes
class _WeakScalar:
    """What a weak number has of an array (JAX's weak_type=True 0-d arrays): a gradc.numpy
    function of Python numbers alone (``gnp.log(2 * gnp.pi)``, ``gnp.sqrt(2)``) returns
    one, so ``x32 - gnp.log(2.0)`` stays float32 inside a trace as in JAX, where numpy's
    float64 scalar would promote the model to float64.  It is a Python number otherwise
    (numpy treats it as a float64 or int64 scalar)."""
    __slots__ = ()
    shape, ndim, size, weak_type = (), 0, 1, True

    def item(self):
        return self._base(self)

    def astype(self, dtype):
        return np.asarray(self._base(self), dtype)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self._base(self), dtype)

    def __str__(self):
        return repr(self._base(self))

    def __repr__(self):
        return f"{self._base(self)!r} (weak {self.dtype})"


class WeakFloat(_WeakScalar, float):
    __slots__ = ()
    _base, dtype = float, np.dtype(np.float64)


class WeakInt(_WeakScalar, int):
    __slots__ = ()
    _base, dtype = int, np.dtype(np.int64)


def is_python_number(x) -> bool:
    """A weakly typed number: a Python bool, int or float (numpy's scalars are not)."""
    return isinstance(x, (bool, int, float)) and not isinstance(x, np.generic)


def weak_result(x):
    """numpy's result of Python numbers as a weak number where it is a float64 or int64
    scalar (bools and other dtypes as they are; tuples entry by entry)."""
    if isinstance(x, tuple):
        return tuple(weak_result(e) for e in x)
    if isinstance(x, (np.float64, np.int64)) or (isinstance(x, np.ndarray) and x.ndim == 0
                                                 and x.dtype in (np.float64, np.int64)):
        return WeakFloat(x) if x.dtype == np.float64 else WeakInt(x)
    return x


def result_dtype(xs, float_result=True):
    """numpy's promotion with Python scalars weak; ints become float64 for float ops."""
    Value = tracer().Value
    strong = [x.dtype for x in xs if isinstance(x, Value)]
    strong += [x.dtype for x in xs if isinstance(x, (np.ndarray, np.generic))]
    weak = [x for x in xs if is_python_number(x)]
    if strong:
        dt = np.result_type(*strong)
        if any(isinstance(w, float) for w in weak) and dt.kind in "biu":
            dt = np.dtype(np.float64)
        elif any(isinstance(w, int) and not isinstance(w, bool) for w in weak) and dt.kind == "b":
            dt = np.dtype(np.int64)
    else:
        dt = np.result_type(*[np.asarray(w).dtype for w in weak]) if weak else np.dtype(np.float64)
    if float_result and dt.kind != "f":
        dt = np.dtype(np.float64)
    return np.dtype(dt)


def reduce_dtype(name, dtype):
    """numpy's: max and min keep the dtype; a sum of bools or of integers narrower than
    int64 is int64 (uint64 for unsigned); logsumexp is a float."""
    if dtype.kind == "f" or name in ("max", "min"):
        return dtype
    if name == "sum":
        return np.dtype(np.uint64 if dtype.kind == "u" else np.int64)
    return np.dtype(np.float64)


def convert(x, dtype):
    """A Value or constant of the given dtype."""
    t = tracer()
    if isinstance(x, t.Value):
        return x if x.dtype == dtype else t.bind("cast", x, dtype=np.dtype(dtype))
    if isinstance(x, (list, tuple)) or (hasattr(x, "dtype") and x.dtype.kind in "OUSc"):
        x = t.to_value(x)
        return convert(x, dtype)
    return t.to_value(np.asarray(x, dtype=dtype))


# ----------------------------------------------------------------------------- adjoints
def sum_axes(x, axes: tuple, keepdims: bool):
    """The op ``sum`` over sorted, non-negative ``axes``, in numpy's sum dtype."""
    x = convert(x, reduce_dtype("sum", x.dtype))
    return bind("sum", x, axes=tuple(axes), keepdims=bool(keepdims))


def unbroadcast(g, shape):
    """Adjoint of broadcasting ``shape`` to ``g``'s shape: sum over the expanded axes."""
    if g is None:
        return None
    gs = g._shape
    extra = len(gs) - len(shape)
    if extra:
        g = sum_axes(g, tuple(range(extra)), False)
        gs = g._shape
    env = g._b.env
    axes = tuple(i for i, d in enumerate(shape) if env.find(d) == 1 and env.find(gs[i]) != 1)
    if axes:
        g = sum_axes(g, axes, True)
    return g


# ----------------------------------------------------------------------------- batching
# An op's ``batch`` rule (gradc.batching, vmap) gets ``(n, args, batched, **params)``:
# ``n`` the batch size, ``args`` the operands, ``batched[i]`` whether operand i carries
# the batch as a new leading axis (the others are shared by every example), and returns
# the result with the batch as its leading axis.  These helpers line the operands up.
def batch_expand(x, rank: int):
    """A batched operand ``(n, *s)`` whose example has rank ``len(s) <= rank``, as
    ``(n, 1, ..., 1, *s)``: its example broadcast on the left to ``rank`` axes, as numpy
    broadcasts an example of lower rank, with the batch axis kept first."""
    s = x._shape
    if len(s) - 1 >= rank:
        return x
    return bind("reshape", x, shape=(s[0],) + (1,) * (rank - len(s) + 1) + tuple(s[1:]))


def batch_materialize(n, x):
    """A shared operand given to every one of the ``n`` examples: ``(n, *x.shape)``."""
    x = tracer().to_value(x)
    s = x._shape
    return bind("broadcast_to", bind("reshape", x, shape=(1,) + tuple(s)), shape=(n,) + tuple(s))


def batch_all(n, args, batched) -> list:
    """Every operand batched: shared ones materialized for the ``n`` examples."""
    return [a if b else batch_materialize(n, a) for a, b in zip(args, batched)]


def batch_broadcasting(name):
    """The rule of an op whose operands broadcast as numpy's (element-wise ops): the
    batched operands get the examples' common rank, the shared ones broadcast as is."""
    def rule(n, args, batched, **params):
        rank = max(a.ndim - int(b) for a, b in zip(args, batched))
        return bind(name, *[batch_expand(a, rank) if b else a for a, b in zip(args, batched)], **params)
    return rule


def batch_stacked(name):
    """The rule of an op that already maps over leading axes its operands share (LAPACK's
    stacks of matrices): every operand batched, the batch one more leading axis."""
    def rule(n, args, batched, **params):
        return bind(name, *batch_all(n, args, batched), **params)
    return rule


def batch_rows(n, rank: int):
    """The example number ``0..n-1`` along the leading axis of ``(n, 1, ..., 1)`` (``rank``
    ones): the extra index that gathers or scatters every example in its own row."""
    return bind("iota", shape=(n,) + (1,) * rank, axis=0, dtype=np.dtype(np.int64))
