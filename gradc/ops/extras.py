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
from . import elementwise as ew
from .bessel import i0 as bessel_i0
from .bind import convert, result_dtype, tracer
from .bitwise import view
from .mathfuncs import isfinite, isnan, logical_or, remainder
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



# ----------------------------------------------------------------------------- floating-point bits
# (float dtype -> the integer of its size, mantissa bits, exponent mask, frexp's bias, the
# power of two that lifts a subnormal to a normal number)
_BITS = {np.dtype(np.float64): (np.dtype(np.int64), 52, 0x7FF, 1022, 54),
         np.dtype(np.float32): (np.dtype(np.int32), 23, 0xFF, 126, 25)}


def _floats(*xs):
    """The traced arguments of a float ufunc in their common float type (integers compute
    in float64, as gradc's other float functions)."""
    dt = result_dtype(list(xs), float_result=True)
    return [convert(_val(x), dt) for x in xs]


def _bits_to_float(i, dt):
    return view(i, dt)


def frexp(x, /):
    """numpy.frexp: (mantissa, exponent) with ``x = mantissa * 2**exponent``, the
    mantissa's magnitude in [0.5, 1) (0, inf and nan: themselves, exponent 0), the
    exponent int32. Read from the bits; the mantissa's derivative is ``2**-exponent``."""
    if _eager(x):
        return np.frexp(x)
    (x,) = _floats(x)
    it, mbits, emask, bias, lift = _BITS[x.dtype]
    a = ew.abs(ew.stop_gradient(x))
    sub = ew.less(a, np.finfo(x.dtype).tiny)
    a = ew.where(sub, a * x.dtype.type(2.0 ** lift), a)
    raw = (view(a, it) >> it.type(mbits)) & it.type(emask)
    regular = ew.logical_and(isfinite(x), ew.not_equal(x, 0))
    e = ew.where(regular, raw - it.type(bias) - ew.where(sub, it.type(lift), it.type(0)), it.type(0))
    # x * 2**-e as two exact powers of two, each within the normal range (e spans -1073..1024)
    half = e // it.type(2)
    m = x * _pow2(-half, x.dtype) * _pow2(half - e, x.dtype)
    return ew.where(regular, m, x), convert(e, np.int32)


def _pow2(k, dt):
    """2.0**k for integer k in the normal exponent range, from its bits (exact)."""
    it, mbits, _, bias, _ = _BITS[dt]
    return ew.stop_gradient(_bits_to_float((k + it.type(bias + 1)) << it.type(mbits), dt))


def nextafter(x1, x2, /):
    """numpy.nextafter: the next float after ``x1`` towards ``x2`` (``x2`` when they are
    equal, nan if either is). From the bits; no gradient (a step function of x1)."""
    if _eager(x1, x2):
        return np.nextafter(x1, x2)
    x1, x2 = (ew.stop_gradient(v) for v in _floats(x1, x2))
    it = _BITS[x1.dtype][0]
    bits = view(x1, it)
    # the bits hold sign and magnitude: +1 moves away from zero, -1 towards it
    away = ew.equal(ew.greater(x2, x1), ew.greater(x1, 0))
    step = _bits_to_float(ew.where(away, bits + it.type(1), bits - it.type(1)), x1.dtype)
    smallest = ew.where(ew.greater(x2, 0), x1.dtype.type(1), x1.dtype.type(-1)) * np.array(
        np.finfo(x1.dtype).smallest_subnormal, x1.dtype)
    out = ew.where(ew.equal(x1, 0), smallest, step)
    out = ew.where(ew.equal(x1, x2), x2, out)
    return ew.where(logical_or(isnan(x1), isnan(x2)), x1.dtype.type(np.nan), out)


def spacing(x, /):
    """numpy.spacing: the distance from ``x`` to the next float away from zero (negative
    for negative x; nan for inf and nan). No gradient (a step function)."""
    if _eager(x):
        return np.spacing(x)
    (x,) = _floats(x)
    x = ew.stop_gradient(x)
    inf = x.dtype.type(np.inf)
    out = nextafter(x, ew.where(ew.less(x, 0), -inf, inf)) - x
    return ew.where(isfinite(x), out, x.dtype.type(np.nan))


# ----------------------------------------------------------------------------- integer number theory
# Euclid's algorithm unrolled: consecutive Fibonacci numbers take the most steps, and
# F(k) outgrows each type's range within these many steps.
_EUCLID_STEPS = {1: 14, 2: 25, 4: 48, 8: 94}


def _integers(x1, x2, what):
    a, b = _val(x1), _val(x2)
    dt = result_dtype([x1, x2], float_result=False)
    if dt.kind not in "iu":
        raise UnsupportedError(f"{what}: the arguments must be integers (numpy's rule), got {dt}")
    return convert(a, dt), convert(b, dt), dt


def gcd(x1, x2, /):
    """numpy.gcd: the greatest common divisor of |x1| and |x2| (gcd(0, 0) = 0), integers;
    Euclid's algorithm unrolled for the type's worst case."""
    if _eager(x1, x2):
        return np.gcd(x1, x2)
    a, b, dt = _integers(x1, x2, "gcd")
    a, b = ew.abs(a), ew.abs(b)
    zero, one = dt.type(0), dt.type(1)
    for _ in range(_EUCLID_STEPS[dt.itemsize]):
        done = ew.equal(b, zero)
        a, b = ew.where(done, a, b), ew.where(done, zero, remainder(a, ew.where(done, one, b)))
    return a


def lcm(x1, x2, /):
    """numpy.lcm: the least common multiple of |x1| and |x2| (0 if either is 0), integers."""
    if _eager(x1, x2):
        return np.lcm(x1, x2)
    a, b, dt = _integers(x1, x2, "lcm")
    a, b = ew.abs(a), ew.abs(b)
    g = gcd(a, b)
    zero = ew.equal(g, dt.type(0))
    return ew.where(zero, dt.type(0), (a // ew.where(zero, dt.type(1), g)) * b)


def i0(x):
    """numpy.i0: the modified Bessel function of the first kind, order 0 (gradc.scipy.special's,
    derivative i1)."""
    if _eager(x):
        return np.i0(x)
    return bessel_i0(x)


__all__ = ["finfo", "iinfo", "lexsort", "ix_", "diag_indices_from", "tril_indices_from", "triu_indices_from",
           "polyadd", "polysub", "polymul", "polyder", "polyint", "vander", "frexp", "nextafter", "spacing", "gcd", "lcm", "i0"]


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
