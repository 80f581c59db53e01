"""More of numpy's (and jax.numpy's) surface, composed of gradc's other ops: the dtype
queries ``finfo`` and ``iinfo``, ``lexsort``, the index helpers ``ix_``,
``diag_indices_from``, ``tril_indices_from`` and ``triu_indices_from``, and the
polynomial helpers ``polyadd``, ``polysub``, ``polymul``, ``polyder``, ``polyint`` and
``vander``.  Outside a trace each is numpy's own.
"""
from __future__ import annotations

import numpy as np

from ..errors import ArgumentError, ShapeError, UnsupportedError
from .arrays import argsort, concatenate, diagonal, trace
from .compose import cross, matrix_transpose, vecdot
from .einsum import tensordot
from .linalg import matmul, outer
from .bind import convert, tracer
from .lookup import convolve
from .stats import _eager
from .structure import broadcast_to, reshape, stack, take_along_axis


def _val(x):
    return tracer().to_value(x)


def _is_traced(x):
    return isinstance(x, tracer().Value)


# ----------------------------------------------------------------------------- dtype queries
def finfo(dtype):
    """numpy.finfo: machine limits of a float type (a traced value: of its dtype, as
    jax.numpy.finfo takes an array)."""
    return np.finfo(dtype.dtype if _is_traced(dtype) else dtype)


def iinfo(int_type):
    """numpy.iinfo: machine limits of an integer type (a traced value: of its dtype)."""
    return np.iinfo(int_type.dtype if _is_traced(int_type) else int_type)


# ----------------------------------------------------------------------------- sorting
def lexsort(keys, axis=-1):
    """numpy.lexsort: the indices sorting by several keys, the last key primary (a
    stable argsort by each key in turn, first to last); ties in every key keep their
    order. ``keys``: a sequence of same-shaped arrays, or an array whose first axis
    enumerates them."""
    if _eager(keys):
        return np.lexsort(keys, axis=axis)
    if _is_traced(keys):
        keys = [keys[i] for i in range(keys.shape[0])] if keys.ndim > 1 else [keys]
    elif isinstance(keys, (list, tuple)):
        keys = list(keys)
    else:
        a = np.asarray(keys)
        keys = [a[i] for i in range(a.shape[0])] if a.ndim > 1 else [a]
    if not keys:
        raise ArgumentError("lexsort: keys must hold at least one key, got none")
    keys = [_val(k) for k in keys]
    shapes = {k.shape for k in keys}
    if len(shapes) != 1:
        raise ShapeError(f"lexsort: all keys must have the same shape (numpy's rule), got shapes {sorted(shapes)}")
    if keys[0].ndim == 0:
        raise ShapeError("lexsort: the keys must have at least one axis, got 0-d keys")
    order = argsort(keys[0], axis=axis)
    for k in keys[1:]:
        order = take_along_axis(order, argsort(take_along_axis(k, order, axis), axis=axis), axis)
    return order


# ----------------------------------------------------------------------------- index helpers
def ix_(*args):
    """numpy.ix_: each 1-D sequence reshaped to its own axis of an open mesh, for
    indexing the cross product (``a[ix_(rows, cols)]``). Traced integer arrays keep
    their values; a traced boolean array is refused (its number of positions is data)."""
    if _eager(*args):
        return np.ix_(*args)
    out = []
    n = len(args)
    for k, a in enumerate(args):
        if not _is_traced(a):
            a = np.asarray(a)
            if a.dtype == np.bool_:
                a = np.nonzero(a)[0]
            elif a.size == 0:
                a = a.astype(np.intp)
        elif a.dtype == np.bool_:
            raise UnsupportedError("ix_: a traced boolean array: its number of True positions would fix the result's "
                                   "shape from the data; pass the positions as constants, or use where")
        if np.ndim(a) != 1:
            raise ArgumentError(f"ix_: argument {k} must be 1-D, got rank {np.ndim(a)}")
        shape = (1,) * k + (-1,) + (1,) * (n - k - 1)
        out.append(reshape(a, shape) if _is_traced(a) else np.reshape(a, shape))
    return tuple(out)


def _like(arr):
    """A stand-in with ``arr``'s shape for numpy's functions that read only the shape."""
    return np.broadcast_to(np.zeros((), np.int8), arr.shape) if _is_traced(arr) else arr


def diag_indices_from(arr):
    """numpy.diag_indices_from: the indices of the main diagonal of an n-d array with all
    sizes equal (from its shape; numpy arrays)."""
    return np.diag_indices_from(_like(arr))


def tril_indices_from(arr, k=0):
    """numpy.tril_indices_from: the indices of a 2-D array's lower triangle (from its shape)."""
    return np.tril_indices_from(_like(arr), k)


def triu_indices_from(arr, k=0):
    """numpy.triu_indices_from: the indices of a 2-D array's upper triangle (from its shape)."""
    return np.triu_indices_from(_like(arr), k)


# ----------------------------------------------------------------------------- polynomials
def _coefficients(p, what, name="p"):
    p = _val(p)
    if p.ndim == 0:
        p = reshape(p, (1,))
    if p.ndim != 1:
        raise ShapeError(f"{what}: {name} must be a 1-D array of coefficients (highest power first), "
                         f"got shape {p.shape}")
    return p


def _padded_pair(a1, a2, what):
    a1, a2 = _coefficients(a1, what, "a1"), _coefficients(a2, what, "a2")
    n1, n2 = a1.shape[0], a2.shape[0]
    if n1 < n2:      # the shorter one gets leading zeros (its missing high powers)
        a1 = concatenate([broadcast_to(np.zeros((), a1.dtype), (n2 - n1,)), a1])
    elif n2 < n1:
        a2 = concatenate([broadcast_to(np.zeros((), a2.dtype), (n1 - n2,)), a2])
    return a1, a2


def polyadd(a1, a2):
    """numpy.polyadd: the sum of two polynomials (coefficients, highest power first)."""
    if _eager(a1, a2):
        return np.polyadd(a1, a2)
    a1, a2 = _padded_pair(a1, a2, "polyadd")
    return a1 + a2


def polysub(a1, a2):
    """numpy.polysub: the difference of two polynomials."""
    if _eager(a1, a2):
        return np.polysub(a1, a2)
    a1, a2 = _padded_pair(a1, a2, "polysub")
    return a1 - a2


def polymul(a1, a2):
    """numpy.polymul: the product of two polynomials (the convolution of their coefficients)."""
    if _eager(a1, a2):
        return np.polymul(a1, a2)
    return convolve(_coefficients(a1, "polymul", "a1"), _coefficients(a2, "polymul", "a2"))


def _order(m, what):
    if isinstance(m, (bool, np.bool_)) or not isinstance(m, (int, np.integer)) or m < 0:
        raise ArgumentError(f"{what}: the order m must be a non-negative integer, got {m!r}")
    return int(m)


def polyder(p, m=1):
    """numpy.polyder: the ``m``-th derivative of a polynomial."""
    if _eager(p):
        return np.polyder(p, m)
    m = _order(m, "polyder")
    p = _coefficients(p, "polyder")
    for _ in range(m):
        n = p.shape[0] - 1
        if n <= 0:
            raise UnsupportedError(f"polyder: the derivative of a constant polynomial ({p.shape[0]} coefficient(s)) "
                                   "is numpy's empty array, which gradc does not trace; take m below the degree + 1")
        p = p[:-1] * np.arange(n, 0, -1)         # numpy's promotion: an int64 factor
    return p


def polyint(p, m=1, k=None):
    """numpy.polyint: the ``m``-th antiderivative, integration constants ``k`` (one per
    integration, lowest order last; a scalar is used for every one; default zeros)."""
    if _eager(p, k):
        return np.polyint(p, m, k)
    m = _order(m, "polyint")
    p = _coefficients(p, "polyint")
    if k is None:
        k = np.zeros(m)
    k = reshape(_val(k), (-1,)) if _is_traced(k) else np.atleast_1d(k)
    if k.shape[0] == 1 and m > 1:
        k = broadcast_to(reshape(k, ()), (m,)) if _is_traced(k) else np.full(m, k[0])
    if k.shape[0] < m:
        raise ArgumentError(f"polyint: k must hold one integration constant per integration ({m}), "
                            f"got {k.shape[0]}")
    for j in range(m):
        # numpy's promotion: divided by an int64 range, joined with the constant's dtype
        p = concatenate([p / np.arange(p.shape[0], 0, -1), reshape(_val(k[j]), (1,))])
    return p


def vander(x, N=None, increasing=False):
    """numpy.vander: the columns are powers of the vector ``x``, highest first (or lowest,
    ``increasing``); built by repeated products, so its gradient is finite at x = 0."""
    if _eager(x):
        return np.vander(x, N, increasing)
    x = _val(x)
    if x.ndim != 1:
        raise ShapeError(f"vander: x must be a 1-D array, got shape {x.shape}")
    n = x.shape[0] if N is None else N
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ArgumentError(f"vander: N must be a non-negative integer, got {N!r}")
    dt = np.promote_types(x.dtype, np.int64)
    x = convert(x, dt)
    cols, col = [], broadcast_to(np.ones((), dt), (x.shape[0],))
    for j in range(n):
        cols.append(col)
        if j + 1 < n:
            col = col * x
    if not cols:
        return broadcast_to(np.zeros((), dt), (x.shape[0], 0))
    return stack(cols if increasing else cols[::-1], axis=1)


__all__ = ["finfo", "iinfo", "lexsort", "ix_", "diag_indices_from", "tril_indices_from", "triu_indices_from",
           "polyadd", "polysub", "polymul", "polyder", "polyint", "vander"]


# ----------------------------------------------------------------------------- numpy.linalg's array-API names
def _linalg_cross(x1, x2, /, *, axis=-1):
    """numpy.linalg.cross: the cross product of 3-vectors along ``axis`` (both must have 3
    elements there, numpy's rule)."""
    if _eager(x1, x2):
        return np.linalg.cross(x1, x2, axis=axis)
    a, b = _val(x1), _val(x2)
    if a.ndim == 0 or b.ndim == 0 or a.shape[axis] != 3 or b.shape[axis] != 3:
        raise ShapeError(f"linalg.cross: x1 and x2 must have 3 elements along axis {axis}, "
                         f"got shapes {a.shape} and {b.shape}")
    return cross(a, b, axis=axis)


def _linalg_diagonal(x, /, *, offset=0):
    """numpy.linalg.diagonal: the ``offset``-th diagonal of each matrix on the last two axes."""
    if _eager(x):
        return np.linalg.diagonal(x, offset=offset)
    return diagonal(x, offset, -2, -1)


def _linalg_trace(x, /, *, offset=0, dtype=None):
    """numpy.linalg.trace: the sum of each matrix's ``offset``-th diagonal (last two axes)."""
    if _eager(x):
        return np.linalg.trace(x, offset=offset, dtype=dtype)
    return trace(x, offset, -2, -1, dtype)


def _linalg_matmul(x1, x2, /):
    """numpy.linalg.matmul: ``x1 @ x2`` (numpy.matmul's rules)."""
    if _eager(x1, x2):
        return np.linalg.matmul(x1, x2)
    return matmul(x1, x2)


def _linalg_outer(x1, x2, /):
    """numpy.linalg.outer: the outer product of two 1-D arrays (numpy's rule: only 1-D)."""
    if _eager(x1, x2):
        return np.linalg.outer(x1, x2)
    a, b = _val(x1), _val(x2)
    if a.ndim != 1 or b.ndim != 1:
        raise ShapeError(f"linalg.outer: x1 and x2 must be 1-D, got ranks {a.ndim} and {b.ndim}")
    return outer(a, b)


def _linalg_tensordot(x1, x2, /, *, axes=2):
    """numpy.linalg.tensordot: numpy.tensordot with ``axes`` a keyword."""
    if _eager(x1, x2):
        return np.linalg.tensordot(x1, x2, axes=axes)
    return tensordot(x1, x2, axes)


def _linalg_matrix_transpose(x, /):
    """numpy.linalg.matrix_transpose: each matrix of the last two axes transposed."""
    if _eager(x):
        return np.linalg.matrix_transpose(x)
    x = _val(x)
    if x.ndim < 2:
        raise ShapeError(f"linalg.matrix_transpose: x must have at least two axes, got rank {x.ndim}")
    return matrix_transpose(x)


def _linalg_vecdot(x1, x2, /, *, axis=-1):
    """numpy.linalg.vecdot: the sum of the products along ``axis``."""
    if _eager(x1, x2):
        return np.linalg.vecdot(x1, x2, axis=axis)
    return vecdot(x1, x2, axis)


LINALG = {n[len("_linalg_"):]: f for n, f in list(globals().items()) if n.startswith("_linalg_")}
