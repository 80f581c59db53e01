"""jax.lax's array constructors and multi-array ops (``gradc.lax`` re-exports them):
``iota``, ``broadcasted_iota``, ``full``, ``full_like``, ``select_n``, ``split``,
``stack``, ``tile`` and ``optimization_barrier``, with jax.lax's signatures.

``iota`` and ``broadcasted_iota`` are constants (numpy arrays, folded into the graph);
the others are composed from gradc.numpy's ops (a traced ``fill_value`` or case keeps
its gradient), and compute with numpy outside a trace.
"""
from __future__ import annotations

import operator

import numpy as np

from . import numpy as gnp
from .errors import ArgumentError
from .lax_arrays import axis_index
from .tracer import Value


def _shape(x):
    return tuple(x.shape) if isinstance(x, Value) else np.shape(x)


def _dtype(x):
    return np.dtype(x.dtype) if isinstance(x, Value) else np.result_type(x)


def _sizes(shape, what):
    try:
        out = tuple(operator.index(s) for s in (shape if np.ndim(shape) else (shape,)))
    except TypeError:
        raise ArgumentError(f"{what}: expected a shape (a sequence of ints), got {shape!r}") from None
    if any(s < 0 for s in out):
        raise ArgumentError(f"{what}: sizes must be >= 0, got {shape!r}")
    return out


def iota(dtype, size):
    """``jax.lax.iota``: ``0, 1, ..., size - 1`` as ``dtype`` (a constant)."""
    (n,) = _sizes((size,), "iota's size")
    return np.arange(n).astype(np.dtype(dtype))


def broadcasted_iota(dtype, shape, dimension, *, out_sharding=None):
    """``jax.lax.broadcasted_iota``: an array of ``shape`` whose value is the index
    along axis ``dimension`` (a constant)."""
    shape = _sizes(shape, "broadcasted_iota's shape")
    d = axis_index(dimension, len(shape), "broadcasted_iota")
    ramp = np.arange(shape[d]).astype(np.dtype(dtype)).reshape([shape[d] if a == d else 1 for a in range(len(shape))])
    return np.broadcast_to(ramp, shape).copy()


def full(shape, fill_value, dtype=None, *, sharding=None):
    """``jax.lax.full``: an array of ``shape`` filled with the scalar ``fill_value``
    (as ``dtype``, by default the fill value's)."""
    shape = _sizes(shape, "full's shape")
    if _shape(fill_value) != ():
        raise ArgumentError(f"full: fill_value must be a scalar, got shape {_shape(fill_value)}")
    dt = np.dtype(dtype) if dtype is not None else _dtype(fill_value)
    if not isinstance(fill_value, Value):
        return np.full(shape, fill_value, dt)
    return gnp.broadcast_to(gnp.astype(fill_value, dt), shape)


def full_like(x, fill_value, dtype=None, shape=None, sharding=None):
    """``jax.lax.full_like``: ``full`` with ``x``'s shape and dtype unless ``shape`` or
    ``dtype`` is given."""
    return full(_shape(x) if shape is None else shape, fill_value, _dtype(x) if dtype is None else dtype)


def select_n(which, *cases):
    """``jax.lax.select_n``: element-wise ``cases[which]``.  A boolean ``which`` takes
    exactly two cases (``cases[0]`` where False, ``cases[1]`` where True); an integer one
    any number (outside ``[0, len(cases))`` JAX leaves the result unspecified; gradc takes
    the last case).  ``which`` is a scalar or has the cases' shape; the cases share one
    shape and dtype.  The unselected cases get a zero gradient."""
    if not cases:
        raise ArgumentError("select_n: expected at least one case, got none")
    shapes = {_shape(c) for c in cases}
    if len(shapes) != 1:
        raise ArgumentError(f"select_n: the cases must have one shape, got {sorted(shapes)}")
    dtypes = {_dtype(c) for c in cases}
    if len(dtypes) != 1:
        raise ArgumentError(f"select_n: the cases must have one dtype, got {sorted(map(str, dtypes))}")
    shape, kind = shapes.pop(), _dtype(which).kind
    if _shape(which) not in ((), shape):
        raise ArgumentError(f"select_n: which must be a scalar or have the cases' shape {shape}, "
                            f"got shape {_shape(which)}")
    if kind == "b":
        if len(cases) != 2:
            raise ArgumentError(f"select_n: a boolean which selects between exactly 2 cases, got {len(cases)}")
        return gnp.where(which, cases[1], cases[0])
    if kind not in "iu":
        raise ArgumentError(f"select_n: which must be boolean or integer, got {_dtype(which)}")
    out = cases[-1]
    for j in range(len(cases) - 2, -1, -1):
        out = gnp.where(gnp.equal(which, j), cases[j], out)
    return gnp.broadcast_to(out, shape) if _shape(out) != shape else out


def split(operand, sizes, axis=0):
    """``jax.lax.split``: ``operand`` cut along ``axis`` into pieces of ``sizes`` (which
    must add up to the axis's size); a list of arrays."""
    shape = _shape(operand)
    a = axis_index(axis, len(shape), "split")
    sizes = _sizes(sizes, "split's sizes")
    if sum(sizes) != shape[a]:
        raise ArgumentError(f"split: sizes {sizes} must add up to the size of axis {axis} ({shape[a]}), "
                            f"they add up to {sum(sizes)}")
    out, start = [], 0
    for s in sizes:
        out.append(operand[(slice(None),) * a + (slice(start, start + s),)])
        start += s
    return out


def stack(operands, axis=0):
    """``jax.lax.stack``: arrays of one shape joined along a new axis."""
    operands = list(operands)
    if not operands:
        raise ArgumentError("stack: expected at least one operand, got none")
    shapes = {_shape(x) for x in operands}
    if len(shapes) != 1:
        raise ArgumentError(f"stack: the operands must have one shape, got {sorted(shapes)}")
    return gnp.stack(operands, axis=axis_index(axis, len(shapes.pop()) + 1, "stack"))


def tile(operand, reps):
    """``jax.lax.tile``: ``operand`` repeated ``reps[i]`` times along axis i (one rep per
    axis, as JAX requires)."""
    reps = _sizes(reps, "tile's reps")
    if len(reps) != len(_shape(operand)):
        raise ArgumentError(f"tile: reps must have one entry per axis of the operand (rank {len(_shape(operand))}), "
                            f"got {len(reps)}: {reps}")
    return gnp.tile(operand, reps)


def optimization_barrier(operand, /):
    """``jax.lax.optimization_barrier``: ``operand`` (any pytree) unchanged.  In JAX it
    stops XLA from moving computations across it; gradc's scheduler has no such
    reordering to prevent, so it is the identity (gradient included)."""
    return operand
