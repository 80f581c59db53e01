"""Axis functions on arrays of any rank: moveaxis, flip, roll, split, array_split, take.

Composites of indexing, transposes and concatenation, so each differentiates through
ops that already have their rules; sizes stay symbolic where the operation allows
(flip and moveaxis always; roll, split and take by an array along an axis pin the
sizes they must know, as numpy's own shapes depend on them)."""
from __future__ import annotations

import numpy as np

from ..errors import ArgumentError, ShapeError, UnsupportedError


def _trace():
    from .. import tracer as trace
    return trace


def _concrete(x):
    t = _trace()
    return not isinstance(x, t.Value) and t.current() is None


def _axis(a, ndim, what):
    a = int(a)
    if not -ndim <= a < max(ndim, 1):
        raise ShapeError(f"{what}: axis {a} is out of bounds for an array of rank {ndim}")
    return a % max(ndim, 1)


def _axes(axis, ndim, what):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
    out = tuple(_axis(a, ndim, what) for a in axes)
    if len(set(out)) != len(out):
        raise ShapeError(f"{what}: repeated axis in {axis}")
    return out


def moveaxis(x, source, destination):
    """numpy.moveaxis: a transpose."""
    from .linalg import transpose
    if _concrete(x):
        return np.moveaxis(x, source, destination)
    x = _trace().to_value(x)
    src, dst = _axes(source, x.ndim, "moveaxis"), _axes(destination, x.ndim, "moveaxis")
    if len(src) != len(dst):
        raise ShapeError("moveaxis: source and destination must have the same number of axes")
    order = [a for a in range(x.ndim) if a not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(x, order)


def flip(x, axis=None):
    """numpy.flip: a slice with step -1 on each axis."""
    if _concrete(x):
        return np.flip(x, axis)
    x = _trace().to_value(x)
    axes = _axes(axis, x.ndim, "flip")
    return x[tuple(slice(None, None, -1) if a in axes else slice(None) for a in range(x.ndim))]


def roll(x, shift, axis=None):
    """numpy.roll: the two pieces of each axis concatenated in swapped order."""
    from .structure import concatenate, reshape
    if _concrete(x):
        return np.roll(x, shift, axis)
    x = _trace().to_value(x)
    if axis is None:
        return reshape(roll(reshape(x, -1), shift, 0), x.shape)
    axes = _axes(axis, x.ndim, "roll")
    shifts = (shift,) * len(axes) if np.ndim(shift) == 0 else tuple(shift)
    if len(shifts) != len(axes):
        raise ShapeError("roll: shift and axis must have the same length")
    for a, s in zip(axes, shifts):
        n = x.shape[a]                  # the split point depends on the size: pinned
        s = int(s) % n if n else 0
        if s == 0:
            continue
        head = x[tuple(slice(n - s, None) if b == a else slice(None) for b in range(x.ndim))]
        tail = x[tuple(slice(0, n - s) if b == a else slice(None) for b in range(x.ndim))]
        x = concatenate([head, tail], axis=a)
    return x


def array_split(x, indices_or_sections, axis=0):
    """numpy.array_split: a list of slices along ``axis`` (sections may differ by one)."""
    if _concrete(x):
        return np.array_split(x, indices_or_sections, axis)
    x = _trace().to_value(x)
    a = _axis(axis, x.ndim, "split")
    n = x.shape[a]
    if np.ndim(indices_or_sections) == 0:
        k = int(indices_or_sections)
        if k <= 0:
            raise ShapeError("split: the number of sections must be positive")
        sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
        bounds = np.cumsum([0] + sizes).tolist()
    else:
        bounds = [0] + [min(max(int(i), 0), n) for i in indices_or_sections] + [n]
    return [x[tuple(slice(lo, max(lo, hi)) if b == a else slice(None) for b in range(x.ndim))]
            for lo, hi in zip(bounds[:-1], bounds[1:])]


def split(x, indices_or_sections, axis=0):
    """numpy.split: as array_split, but equal sections must divide the axis."""
    if _concrete(x):
        return np.split(x, indices_or_sections, axis)
    x = _trace().to_value(x)
    if np.ndim(indices_or_sections) == 0:
        n = x.shape[_axis(axis, x.ndim, "split")]
        if n % int(indices_or_sections):
            raise ShapeError(f"split: {indices_or_sections} sections do not divide an axis of {n}")
    return array_split(x, indices_or_sections, axis)


def hsplit(x, indices_or_sections):
    """numpy.hsplit: split along axis 1 (axis 0 of a 1-D array)."""
    nd = np.ndim(x) if _concrete(x) else _trace().to_value(x).ndim
    return split(x, indices_or_sections, axis=1 if nd > 1 else 0)


def vsplit(x, indices_or_sections):
    """numpy.vsplit: split along axis 0 of an array of rank 2 or more."""
    if (np.ndim(x) if _concrete(x) else _trace().to_value(x).ndim) < 2:
        raise ShapeError("vsplit only works on arrays of 2 or more dimensions")
    return split(x, indices_or_sections, axis=0)


def dsplit(x, indices_or_sections):
    """numpy.dsplit: split along axis 2 of an array of rank 3 or more."""
    if (np.ndim(x) if _concrete(x) else _trace().to_value(x).ndim) < 3:
        raise ShapeError("dsplit only works on arrays of 3 or more dimensions")
    return split(x, indices_or_sections, axis=2)


def take(x, indices, axis=None, out=None, mode="raise", unique_indices=False, indices_are_sorted=False,
         fill_value=None):
    """numpy.take: elements (axis None: of the flattened array) or slices along ``axis``
    at integer ``indices`` (negative ones wrap; out of range is an IndexError, or with
    numpy's ``mode="wrap"`` taken modulo the length, with ``mode="clip"`` clipped to it).
    JAX's ``mode="fill"``: an index outside ``[-n, n)`` gives ``fill_value`` (NaN for
    floats, as JAX's default; its gradient is 0); ``"promise_in_bounds"`` is ``"raise"``
    (gradc checks anyway).  ``unique_indices`` and ``indices_are_sorted`` are JAX's hints."""
    from .structure import reshape
    if mode is None or mode == "promise_in_bounds":
        mode = "raise"
    if mode not in ("raise", "wrap", "clip", "fill"):
        raise ArgumentError(f"take: mode must be 'raise', 'wrap', 'clip' or 'fill', got {mode!r}")
    if _concrete(x) and _concrete(indices):
        if mode != "fill":
            return np.take(x, indices, axis, mode=mode)
        x, i = np.asarray(x), np.asarray(indices)
        a = 0 if axis is None else _axis(axis, x.ndim, "take")
        x = x.reshape(-1) if axis is None else x
        n = x.shape[a]
        ok = (i >= -n) & (i < n)
        got = np.take(x, np.where(ok, i, 0), a)
        ok = ok.reshape((1,) * a + ok.shape + (1,) * (x.ndim - a - 1))
        return np.where(ok, got, np.asarray(fill_for(x.dtype, fill_value), x.dtype))
    if out is not None:
        raise UnsupportedError("take(..., out=...) cannot write into a traced value")
    x = _trace().to_value(x)
    if axis is None:
        x, a = reshape(x, -1), 0
    else:
        a = _axis(axis, x.ndim, "take")
    if mode == "fill":
        return _take_fill(x, indices, a, fill_value)
    if mode != "raise":
        indices = _wrap_or_clip(indices, x._b.env.pin(x._shape[a]), mode)
    return x[(slice(None),) * a + (indices,)]


def fill_for(dtype, fill_value):
    """JAX's fill value of a gather out of bounds: ``fill_value``, or by default NaN for
    floats, the most negative value of a signed integer, the largest of an unsigned one,
    True for bools."""
    if fill_value is not None:
        return fill_value
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.nan
    if dtype.kind == "b":
        return True
    return np.iinfo(dtype).min if dtype.kind == "i" else np.iinfo(dtype).max


def _take_fill(x, indices, a, fill_value):
    """take along axis ``a`` of traced ``x`` with ``mode="fill"``: the in-range indices
    (negative ones from the end) gathered, the others' places set to the fill value."""
    from . import elementwise as ew
    from .structure import expand_dims
    n = x._b.env.pin(x._shape[a])
    i = indices if isinstance(indices, _trace().Value) else np.asarray(indices)
    ok = ew.logical_and(ew.greater_equal(i, -n), ew.less(i, n))
    got = x[(slice(None),) * a + (_wrap_or_clip(ew.where(ok, i, 0), n, "wrap"),)]
    k, rest = (i.ndim if isinstance(i, _trace().Value) else np.ndim(i)), x.ndim - a - 1
    if rest:   # the mask lines up with the gathered axes (the leading ones broadcast)
        ok = expand_dims(ok, tuple(range(k, k + rest)))
    return ew.where(ok, got, ew.astype(fill_for(x.dtype, fill_value), x.dtype))


def _wrap_or_clip(indices, n, mode):
    """take's out-of-range indices brought into [0, n): modulo n, or clipped."""
    from . import elementwise as ew
    if not isinstance(indices, _trace().Value):
        i = np.asarray(indices)
        return np.mod(i, n) if mode == "wrap" else np.clip(i, 0, n - 1)
    if mode == "clip":
        return ew.clip(indices, 0, n - 1)
    # i - n trunc(i / n) (the quotient in float64, truncated by the cast: exact below
    # 2**53), then a negative remainder moved up by n
    q = ew.astype(ew.divide(ew.astype(indices, np.float64), float(n)), indices.dtype)
    r = indices - q * n
    return ew.where(r < 0, r + n, r)


def take_along_axis(x, indices, axis, mode=None, fill_value=None):
    """numpy.take_along_axis with JAX's ``mode``: None, ``"raise"`` or
    ``"promise_in_bounds"`` check every index (an IndexError out of bounds); ``"clip"``
    clamps to ``[0, n)`` (negative indices from the end first); ``"wrap"`` takes them
    modulo n; ``"fill"`` gives ``fill_value`` (NaN for floats) outside ``[-n, n)``, where
    the gradient is 0."""
    from . import elementwise as ew
    from .structure import take_along_axis as gather_along
    if mode is None or mode in ("raise", "promise_in_bounds"):
        return gather_along(x, indices, axis)
    if mode not in ("clip", "wrap", "fill"):
        raise ArgumentError(f"take_along_axis: mode must be 'raise', 'clip', 'wrap', 'fill' or "
                            f"'promise_in_bounds', got {mode!r}")
    if _concrete(x) and _concrete(indices):
        x, i = np.asarray(x), np.asarray(indices)
        n = x.shape[axis]
        ok = (i >= -n) & (i < n)
        j = np.mod(i, n) if mode == "wrap" else np.clip(np.where(i < 0, i + n, i), 0, n - 1)
        got = np.take_along_axis(x, j, axis)
        return np.where(ok, got, np.asarray(fill_for(x.dtype, fill_value), x.dtype)) if mode == "fill" else got
    x = _trace().to_value(x)
    n = x._b.env.pin(x._shape[_axis(axis, x.ndim, "take_along_axis")])
    i = indices if isinstance(indices, _trace().Value) else np.asarray(indices)
    if mode == "wrap":
        return gather_along(x, _wrap_or_clip(i, n, "wrap"), axis)
    j = _wrap_or_clip(ew.where(ew.less(i, 0), i + n, i), n, "clip")
    got = gather_along(x, j, axis)
    if mode == "clip":
        return got
    ok = ew.logical_and(ew.greater_equal(i, -n), ew.less(i, n))
    return ew.where(ok, got, ew.astype(fill_for(x.dtype, fill_value), x.dtype))
