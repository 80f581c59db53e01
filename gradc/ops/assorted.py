"""numpy functions composed of gradc's other ops, each small: array building and
taking apart (``broadcast_arrays``, ``concat``, ``unstack``, ``rollaxis``, ``delete``,
``insert``, ``diagflat``, ``empty``, ``fill_diagonal``, ``resize``), element-wise and
predicate helpers (``piecewise``, ``isin``, ``isneginf``, ``isposinf``, ``real``,
``imag``, ``ldexp``, ``modf``, ``allclose``, ``array_equal``, ``array_equiv``),
``gradient``, ``unwrap``, ``partition``/``argpartition``, ``apply_over_axes``, the
window functions and numpy's dtype queries.  Outside a trace each is numpy's own.
"""
from __future__ import annotations

import builtins
import math

import numpy as np

from ..errors import ArgumentError, UnsupportedError
from . import elementwise as ew
from .arrays import argsort, concatenate, sort
from .bind import convert, tracer
from .mathfuncs import isinf, isnan, remainder
from .reduce import sum_
from .stats import _eager, all as all_
from .structure import broadcast_to, expand_dims, reshape, squeeze, stack
from .axes import moveaxis


def _val(x):
    return tracer().to_value(x)


# ----------------------------------------------------------------------------- building
def broadcast_arrays(*args):
    """numpy.broadcast_arrays: every argument broadcast to their common shape."""
    if _eager(*args):
        return tuple(np.broadcast_arrays(*args))
    vals = [_val(a) for a in args]
    shape = vals[0]._b.env.broadcast([v._shape for v in vals], "broadcast_arrays")
    return tuple(broadcast_to(v, tuple(shape)) for v in vals)


def concat(arrays, /, *, axis=0):
    """numpy.concat (the array API's name for concatenate)."""
    if _eager(*arrays):
        return np.concat(arrays, axis=axis)
    return concatenate(list(arrays), axis=axis)


def unstack(x, /, *, axis=0):
    """numpy.unstack: the slices of ``x`` along ``axis``, as a tuple."""
    if _eager(x):
        return np.unstack(x, axis=axis)
    x = moveaxis(_val(x), axis, 0)
    return tuple(x[i] for i in range(x._b.env.pin(x._shape[0])))


def rollaxis(a, axis, start=0):
    """numpy.rollaxis: ``axis`` moved to before ``start``."""
    if _eager(a):
        return np.rollaxis(a, axis, start)
    a = _val(a)
    n = a.ndim
    axis = axis + n if axis < 0 else axis
    start = start + n if start < 0 else start
    if start > axis:
        start -= 1
    return moveaxis(a, axis, start)


def _constant_positions(obj, what):
    if isinstance(obj, tracer().Value):
        raise UnsupportedError(f"{what} at traced positions: the result's size would depend on the data; "
                               "give the positions as constants (numbers, a list, a slice or a numpy array)")


def _positions(obj, n, what):
    idx = np.arange(n)[obj] if isinstance(obj, slice) else np.asarray(obj)
    if not (idx.dtype.kind in "iu" or idx.size == 0):
        raise ArgumentError(f"{what}: the positions must be integers or a slice, got {obj!r}")
    return idx.astype(np.int64)


def _along(arr, obj, axis, what):
    """(the array, flattened when ``axis`` is None; the axis; its size) for delete and
    insert at constant positions ``obj``."""
    _constant_positions(obj, what)
    a = _val(arr)
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    axis = axis + a.ndim if axis < 0 else axis
    return a, axis, a._b.env.pin(a._shape[axis])


def delete(arr, obj, axis=None):
    """numpy.delete at constant positions (ints, a slice, or a boolean mask)."""
    if _eager(arr):
        return np.delete(arr, obj, axis=axis)
    a, axis, n = _along(arr, obj, axis, "delete")
    drop = np.zeros(n, bool)
    o = np.asarray(obj) if not isinstance(obj, slice) else obj
    if isinstance(o, np.ndarray) and o.dtype == np.bool_:
        drop |= o
    else:
        drop[_positions(obj, n, "delete")] = True
    keep = np.flatnonzero(~drop)
    return a[(slice(None),) * axis + (keep,)]


def insert(arr, obj, values, axis=None):
    """numpy.insert at constant positions: ``values`` go before the given indices."""
    if _eager(arr, values):
        return np.insert(arr, obj, values, axis=axis)
    a, axis, n = _along(arr, obj, axis, "insert")
    scalar_pos = np.ndim(obj) == 0 and not isinstance(obj, slice)
    pos = _positions(obj, n + 1, "insert") if not isinstance(obj, slice) else np.arange(n)[obj]
    pos = np.where(pos < 0, pos + n, pos).reshape(-1)
    v = convert(_val(values), a.dtype)
    # the inserted slices: one per position, values broadcast to them
    piece_shape = tuple(a._shape[:axis]) + (len(pos),) + tuple(a._shape[axis + 1:])
    if scalar_pos and v.ndim == a.ndim:            # numpy: values inserted as given along axis
        v = moveaxis(v, axis, 0)
        pieces = [moveaxis(v[j:j + 1], 0, axis) for j in range(v._b.env.pin(v._shape[0]))]
        pos = np.repeat(pos, len(pieces))
    else:
        if scalar_pos and v.ndim == a.ndim - 1:
            v = expand_dims(v, axis)
        vb = broadcast_to(v, piece_shape)          # (one position: piece_shape has 1 on axis)
        pieces = [vb[(slice(None),) * axis + (slice(j, j + 1),)] for j in range(len(pos))]
    order = np.argsort(pos, kind="stable")
    parts, prev = [], 0
    for j in order:
        p = int(pos[j])
        if p > prev:
            parts.append(a[(slice(None),) * axis + (slice(prev, p),)])
        parts.append(pieces[j])
        prev = max(prev, p)
    if prev < n:
        parts.append(a[(slice(None),) * axis + (slice(prev, n),)])
    return concatenate(parts, axis=axis)


def diagflat(v, k=0):
    """numpy.diagflat: the flattened ``v`` on diagonal ``k`` of a square matrix."""
    if _eager(v):
        return np.diagflat(v, k)
    from .arrays import diag
    return diag(reshape(_val(v), (-1,)), k)


def empty(shape, dtype=float, order="C", *, like=None):
    """numpy.empty: gradc's is zero-filled (its contents are undefined in numpy)."""
    return np.zeros(shape, dtype=dtype)


def empty_like(prototype, dtype=None, order="K", subok=True, shape=None):
    """numpy.empty_like, zero-filled."""
    if _eager(prototype):
        return np.zeros_like(prototype, dtype=dtype, shape=shape)
    p = _val(prototype)
    dt = p.dtype if dtype is None else np.dtype(dtype)
    return broadcast_to(np.zeros((), dt), tuple(p._shape) if shape is None else tuple(np.atleast_1d(shape)))


def fill_diagonal(a, val, wrap=False, *, inplace=True):
    """numpy.fill_diagonal as JAX's (``inplace=False``: the filled copy is returned;
    traced arrays cannot be changed in place)."""
    if _eager(a, val):
        if inplace:
            return np.fill_diagonal(a, val, wrap=wrap)
        out = np.array(a, copy=True)
        np.fill_diagonal(out, val, wrap=wrap)
        return out
    if inplace:
        raise UnsupportedError("fill_diagonal of a traced array: pass inplace=False and use the result, as in JAX")
    a = _val(a)
    sizes = tuple(a._b.env.pin(d) for d in a._shape)
    if a.ndim < 2 or (a.ndim > 2 and len(set(sizes)) != 1):
        raise ArgumentError(f"fill_diagonal: the array must be 2-d, or have all its sizes equal, got {sizes}")
    mark = np.zeros(sizes, bool)
    np.fill_diagonal(mark, True, wrap=wrap)          # numpy's own choice of positions
    idx = np.nonzero(mark)
    k = len(idx[0])
    v = reshape(convert(_val(val), a.dtype), (-1,))
    # numpy assigns the values in turn along the diagonal, repeating them as needed
    v = v[np.arange(k) % a._b.env.pin(v._shape[0])] if k else v[:0]
    return a.at[idx].set(v)


def resize(a, new_shape):
    """numpy.resize: ``a`` flattened, repeated (or cut) to fill ``new_shape``."""
    if _eager(a):
        return np.resize(a, new_shape)
    a = reshape(_val(a), (-1,))
    shape = (new_shape,) if np.ndim(new_shape) == 0 else tuple(new_shape)
    total, n = math.prod(shape), a._b.env.pin(a._shape[0])
    if n == 0:
        return broadcast_to(np.zeros((), a.dtype), shape)
    reps = -(-total // n)
    return reshape(concatenate([a] * reps)[:total], shape)


# ----------------------------------------------------------------------------- element-wise
def piecewise(x, condlist, funclist, *args, **kw):
    """numpy.piecewise: ``funclist[i](x)`` where ``condlist[i]`` holds (the last one
    first among overlaps, as numpy), one extra function (or value) for elsewhere."""
    if _eager(x, *condlist):
        return np.piecewise(x, condlist, funclist, *args, **kw)
    x = _val(x)
    conds = [condlist] if not isinstance(condlist, (list, tuple)) else list(condlist)
    if len(funclist) not in (len(conds), len(conds) + 1):
        raise ArgumentError(f"piecewise: {len(conds)} conditions need {len(conds)} or {len(conds) + 1} functions, "
                            f"got {len(funclist)}")

    def value(f):
        return f(x, *args, **kw) if callable(f) else f
    out = broadcast_to(np.zeros((), x.dtype), x._shape) if len(funclist) == len(conds) else value(funclist[-1])
    for c, f in zip(conds, funclist):
        out = ew.where(c, value(f), out)
    return convert(out, x.dtype)


def isin(element, test_elements, assume_unique=False, invert=False, *, kind=None):
    """numpy.isin: whether each element occurs in ``test_elements`` (compared with
    every one of them)."""
    if _eager(element, test_elements):
        return np.isin(element, test_elements, assume_unique=assume_unique, invert=invert, kind=kind)
    e = _val(element)
    t = reshape(_val(test_elements), (-1,))
    hit = sum_(convert(ew.equal(expand_dims(e, -1), t), np.int64), axis=-1) > 0
    return ew.logical_not(hit) if invert else hit


def isneginf(x, out=None):
    """numpy.isneginf."""
    if _eager(x):
        return np.isneginf(x)
    return ew.logical_and(isinf(x), ew.less(x, 0))


def isposinf(x, out=None):
    """numpy.isposinf."""
    if _eager(x):
        return np.isposinf(x)
    return ew.logical_and(isinf(x), ew.greater(x, 0))


def real(val):
    """numpy.real of a real array: the array."""
    return np.real(val) if _eager(val) else _val(val)


def imag(val):
    """numpy.imag of a real array: zeros."""
    if _eager(val):
        return np.imag(val)
    v = _val(val)
    return broadcast_to(np.zeros((), v.dtype), v._shape)


def ldexp(x1, x2):
    """numpy.ldexp: ``x1 * 2**x2`` (exact: a power of two)."""
    if _eager(x1, x2):
        return np.ldexp(x1, x2)
    x1 = _val(x1)
    dt = x1.dtype if x1.dtype.kind == "f" else np.dtype(np.float64)
    return convert(x1, dt) * ew.power(convert(np.asarray(2.0), dt), convert(_val(x2), dt))


def modf(x, out=None):
    """numpy.modf: (fractional part, integral part), both with x's sign."""
    if _eager(x):
        return np.modf(x)
    x = _val(x)
    whole = ew.trunc(x)
    return x - whole, whole


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """numpy.allclose (a traced bool)."""
    if _eager(a, b):
        return np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)
    from .compose import isclose
    return all_(isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))


def array_equal(a1, a2, equal_nan=False):
    """numpy.array_equal: same shape and elements (shapes are known while tracing)."""
    if _eager(a1, a2):
        return np.array_equal(a1, a2, equal_nan=equal_nan)
    a, b = _val(a1), _val(a2)
    if tuple(a._b.env.pin(d) for d in a._shape) != tuple(b._b.env.pin(d) for d in b._shape):
        return np.bool_(False)
    same = ew.equal(a, b)
    if equal_nan:
        same = ew.logical_or(same, ew.logical_and(isnan(a), isnan(b))) if a.dtype.kind == "f" else same
    return all_(same)


def array_equiv(a1, a2):
    """numpy.array_equiv: equal after broadcasting."""
    if _eager(a1, a2):
        return np.array_equiv(a1, a2)
    return all_(ew.equal(_val(a1), _val(a2)))


# ----------------------------------------------------------------------------- along axes
def gradient(f, *varargs, axis=None, edge_order=1):
    """numpy.gradient: central differences inside, one-sided at the ends (edge_order 1
    or 2), spacing a scalar per axis or the coordinates (constant) along it."""
    if _eager(f, *varargs):
        return np.gradient(f, *varargs, axis=axis, edge_order=edge_order)
    f = _val(f)
    axes = tuple(range(f.ndim)) if axis is None else ((axis,) if np.ndim(axis) == 0 else tuple(axis))
    axes = tuple(a + f.ndim if a < 0 else a for a in axes)
    spacing = list(varargs) if len(varargs) > 1 else list(varargs) * len(axes) if varargs else [1.0] * len(axes)
    if len(spacing) != len(axes):
        raise ArgumentError(f"gradient: {len(varargs)} spacings for {len(axes)} axes")
    out = []
    for ax, h in zip(axes, spacing):
        n = f._b.env.pin(f._shape[ax])
        if n < edge_order + 1:
            raise ArgumentError(f"gradient: axis {ax} has {n} points; edge_order={edge_order} needs {edge_order + 1}")
        x = np.arange(n, dtype=float) * float(h) if np.ndim(h) == 0 else np.asarray(h, dtype=float)
        out.append(_gradient_1d(moveaxis(f, ax, -1), x, edge_order))
    out = [moveaxis(g, -1, ax) for g, ax in zip(out, axes)]
    return out[0] if len(out) == 1 else tuple(out)


def _gradient_1d(f, x, edge_order):
    """numpy's second-order formulas on (possibly uneven) points ``x`` along the last axis."""
    dt = f.dtype if f.dtype.kind == "f" else np.dtype(np.float64)
    f = convert(f, dt)
    h = np.diff(x)
    hs, hd = h[:-1], h[1:]
    a = -hd / (hs * (hs + hd))
    b = (hd - hs) / (hs * hd)
    c = hs / (hd * (hs + hd))
    mid = f[..., :-2] * a.astype(dt) + f[..., 1:-1] * b.astype(dt) + f[..., 2:] * c.astype(dt)
    if edge_order == 1:
        first = (f[..., 1:2] - f[..., 0:1]) / dt.type(h[0])
        last = (f[..., -1:] - f[..., -2:-1]) / dt.type(h[-1])
    else:
        h1, h2 = h[0], h[1]
        first = (f[..., 0:1] * dt.type(-(2 * h1 + h2) / (h1 * (h1 + h2))) + f[..., 1:2] * dt.type((h1 + h2) / (h1 * h2))
                 + f[..., 2:3] * dt.type(-h1 / (h2 * (h1 + h2))))
        h1, h2 = h[-1], h[-2]
        last = (f[..., -3:-2] * dt.type(h1 / (h2 * (h1 + h2))) + f[..., -2:-1] * dt.type(-(h2 + h1) / (h1 * h2))
                + f[..., -1:] * dt.type((2 * h1 + h2) / (h1 * (h1 + h2))))
    return concatenate([first, mid, last], axis=-1)


def unwrap(p, discont=None, axis=-1, *, period=2 * np.pi):
    """numpy.unwrap: jumps larger than ``discont`` (default period / 2) corrected by
    multiples of ``period``."""
    if _eager(p):
        return np.unwrap(p, discont=discont, axis=axis, period=period)
    p = moveaxis(_val(p), axis, -1)
    if p.dtype.kind != "f":
        p = convert(p, np.float64)
    discont = period / 2 if discont is None else builtins.max(discont, period / 2)
    dd = p[..., 1:] - p[..., :-1]
    half = period / 2
    ddmod = remainder(dd + half, period) - half                 # numpy's: into [-half, half)
    ddmod = ew.where(ew.logical_and(ew.equal(ddmod, -half), ew.greater(dd, 0)), half, ddmod)
    correct = ew.where(ew.less(ew.abs(dd), discont), 0.0, ddmod - dd)
    from .stats import cumsum
    fixed = concatenate([p[..., :1], p[..., 1:] + cumsum(correct, axis=-1)], axis=-1)
    return moveaxis(fixed, -1, axis)


def partition(a, kth, axis=-1, kind="introselect", order=None):
    """numpy.partition: a fully sorted copy satisfies its contract (the k-th element in
    place, smaller before, larger after) and is what gradc returns."""
    if _eager(a):
        return np.partition(a, kth, axis=axis, kind=kind, order=order)
    return sort(a, axis=axis)


def argpartition(a, kth, axis=-1, kind="introselect", order=None):
    """numpy.argpartition: the stable full argsort (it satisfies the contract)."""
    if _eager(a):
        return np.argpartition(a, kth, axis=axis, kind=kind, order=order)
    return argsort(a, axis=axis)


def apply_over_axes(func, a, axes):
    """numpy.apply_over_axes: ``func(a, axis)`` for each axis in turn, keeping the axis."""
    if _eager(a):
        return np.apply_over_axes(func, a, axes)
    out = _val(a)
    for ax in np.atleast_1d(axes):
        r = _val(func(out, int(ax)))
        out = r if r.ndim == out.ndim else expand_dims(r, int(ax))
    return out


# ----------------------------------------------------------------------------- constants and dtypes
hamming, hanning, blackman, bartlett, kaiser = np.hamming, np.hanning, np.blackman, np.bartlett, np.kaiser


def _dtype_of(x):
    return x.dtype if isinstance(x, tracer().Value) else x


def result_type(*arrays_and_dtypes):
    """numpy.result_type, traced values taken by their dtype."""
    return np.result_type(*[_dtype_of(x) for x in arrays_and_dtypes])


def can_cast(from_, to, casting="safe"):
    """numpy.can_cast, a traced value taken by its dtype."""
    return np.can_cast(_dtype_of(from_), to, casting=casting)


promote_types, issubdtype, isdtype = np.promote_types, np.issubdtype, np.isdtype


def isscalar(element):
    """numpy.isscalar: a traced value is an array, never a scalar (as JAX's)."""
    return False if isinstance(element, tracer().Value) else np.isscalar(element)


def broadcast_shapes(*shapes):
    """numpy.broadcast_shapes."""
    return np.broadcast_shapes(*shapes)


__all__ = [n for n in dir() if not n.startswith("_") and n not in (
    "annotations", "builtins", "math", "np", "ArgumentError", "UnsupportedError", "ew", "argsort", "concatenate",
    "sort", "convert", "tracer", "isinf", "isnan", "remainder", "sum_", "all_", "broadcast_to", "expand_dims", "reshape",
    "squeeze", "stack", "moveaxis")]
