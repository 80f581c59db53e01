"""jax.lax's sorting ops (``gradc.lax`` re-exports them): ``sort`` (one operand or several
sorted by their leading keys), ``sort_key_val`` and ``top_k``.

Each is composed from gradc.numpy's stable ``argsort`` and ``take_along_axis``: the
permutation is integer data (no gradient), and the sorted values are a gather of the
operand, so the gradient scatters the cotangent back to where each value came from.
Several keys sort lexicographically (gradc.numpy's ``lexsort``). Ties keep their order,
as in JAX with ``is_stable=True``; NaN sorts last in ``sort`` and first in ``top_k``
(JAX's orders). Outside a trace they compute with numpy.
"""
from __future__ import annotations

import numpy as np

from . import numpy as gnp
from .errors import ArgumentError
from .lax_arrays import axis_index
from .tracer import Value, current as _current


def _eager(*xs):
    return _current() is None and not any(isinstance(x, Value) for x in xs)


def _lib(*xs):
    return np if _eager(*xs) else gnp


def _lex_order(keys, axis):
    """Indices that sort ``keys[0]`` along ``axis``, ties broken by ``keys[1]``, and so on;
    stable (numpy's lexsort, whose primary key is the last)."""
    return _lib(*keys).lexsort(keys[::-1], axis=axis)


def _operands(operand, what):
    many = isinstance(operand, (list, tuple))
    ops = list(operand) if many else [operand]
    if not ops:
        raise ArgumentError(f"{what}: no operands")
    shapes = {tuple(np.shape(o)) if not isinstance(o, Value) else tuple(o.shape) for o in ops}
    if len(shapes) != 1:
        raise ArgumentError(f"{what}: the operands must have one shape, got {sorted(shapes)}")
    if not shapes.pop():
        raise ArgumentError(f"{what}: the operands must have at least one dimension, got scalars")
    return many, ops


def sort(operand, dimension=-1, is_stable=True, num_keys=1):
    """``jax.lax.sort``: ``operand`` (an array, or a sequence of arrays of one shape)
    sorted along ``dimension``.  Several operands are all permuted by the order of the
    first ``num_keys`` of them (lexicographic); the result has the operand's structure.
    The sort is always stable, whatever ``is_stable`` says; NaN sorts last."""
    many, ops = _operands(operand, "sort")
    if not 1 <= int(num_keys) <= len(ops):
        raise ArgumentError(f"sort: num_keys={num_keys} must be between 1 and the number of operands ({len(ops)})")
    axis = axis_index(dimension, len(np.shape(ops[0])) if not isinstance(ops[0], Value) else ops[0].ndim, "sort",
                      "dimension")
    m = _lib(*ops)
    if len(ops) == 1:
        out = [m.sort(ops[0], axis=axis, kind="stable")]
    else:
        order = _lex_order(ops[:int(num_keys)], axis)
        out = [m.take_along_axis(o, order, axis=axis) for o in ops]
    return tuple(out) if many else out[0]


def sort_key_val(keys, values, dimension=-1, is_stable=True):
    """``jax.lax.sort_key_val``: ``keys`` sorted along ``dimension`` and ``values``
    permuted the same way (stable)."""
    return sort((keys, values), dimension, is_stable, num_keys=1)


def _total_order_bits(m, x):
    """Integers ordered as the floats ``x`` are in IEEE's total order: the bits as a
    signed integer, with a negative number's magnitude bits flipped."""
    it = np.dtype(f"int{x.dtype.itemsize * 8}")
    bits = x.view(it)
    return m.where(bits < 0, bits ^ it.type(np.iinfo(it).max), bits)


def top_k(operand, k, *, axis=-1):
    """``jax.lax.top_k``: the ``k`` largest values along ``axis`` in descending order,
    and their indices (int32).  Equal values keep their order (the lower index first);
    floats rank in IEEE's total order, as in JAX: NaN above every number, -NaN below,
    +0.0 above -0.0.  The values' gradient goes to the
    elements taken."""
    if isinstance(k, Value):
        raise ArgumentError("top_k: k must be a Python int (it fixes the result's shape); it is a traced value")
    ndim = operand.ndim if isinstance(operand, Value) else np.ndim(operand)
    if ndim == 0:
        raise ArgumentError("top_k: the operand must have at least one dimension, got a scalar")
    ax = axis_index(axis, ndim, "top_k")
    size = (operand.shape if isinstance(operand, Value) else np.shape(operand))[ax]
    k = int(k)
    if not 0 <= k <= size:
        raise ArgumentError(f"top_k: k={k} must be between 0 and the size of axis {axis} ({size})")
    m = _lib(operand)
    x = m.asarray(operand)
    if x.dtype == np.bool_:
        x = x.astype(np.int8)
    # descending order: a key that reverses the order without overflow (~x for integers);
    # floats in JAX's total order (-NaN < -inf < ... < -0.0 < +0.0 < ... < inf < NaN) as the
    # integers of their bits, sign and magnitude made two's complement, reversed the same way
    order = _lex_order([~(_total_order_bits(m, x) if x.dtype.kind == "f" else x)], ax)
    index = [slice(None)] * ndim
    index[ax] = slice(0, k)
    indices = order[tuple(index)]
    values = m.take_along_axis(m.asarray(operand), indices, axis=ax)
    return values, indices.astype(np.int32)
