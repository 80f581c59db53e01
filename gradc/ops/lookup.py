"""Searching sorted arrays and what is built on it, and 1-D convolution, composed at
trace time from primitives (so each differentiates and runs on every backend):

* ``searchsorted`` and ``digitize``: the count of sorted entries below (or not above)
  each value, a comparison of every value with every entry summed (O(values x entries));
  integer results, so not differentiated;
* ``interp``: numpy's piecewise-linear interpolation, differentiable in ``x`` (the
  segment's slope inside, 0 outside), in ``fp`` and in ``xp``;
* ``convolve`` and ``correlate`` (modes full, same, valid): the shorter array's entries
  weight shifted slices of the longer one (one fused loop for kernels up to 64 long),
  or for longer kernels a product with the matrix of the longer array's windows.

Sizes read here are fixed in the graph (another length retraces).
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError, UnsupportedError
from . import elementwise as ew
from .bind import convert, result_dtype, tracer
from .linalg import matmul
from .reduce import sum_
from .stats import _eager
from .arrays import pad
from .structure import along_axis_index, concatenate, expand_dims, gather, reshape

SLICED_KERNEL = 64       # convolve: up to this many taps, shifted slices; beyond, a windows product


def _value(x):
    return tracer().to_value(x)


def _sorted_1d(a, what):
    a = _value(a)
    if a.ndim != 1:
        raise ShapeError(f"{what}: the sorted array must be 1-D, got rank {a.ndim}")
    return a


def searchsorted(a, v, side="left", sorter=None):
    """Indices where ``v`` would be inserted into the sorted 1-D ``a`` to keep it sorted
    (``side="left"``: before equal entries; ``"right"``: after them)."""
    if _eager(a, v):
        return np.searchsorted(a, v, side=side, sorter=sorter)
    if sorter is not None:
        a = _value(a)[sorter]
    if side not in ("left", "right"):
        raise ValueError(f"searchsorted: side must be 'left' or 'right', got {side!r}")
    a = _sorted_1d(a, "searchsorted")
    v = _value(v)
    dt = result_dtype([a, v], float_result=False)
    a, v = convert(a, dt), convert(v, dt)
    below = ew.less(a, expand_dims(v, -1)) if side == "left" else ew.less_equal(a, expand_dims(v, -1))
    return sum_(convert(below, np.int64), axis=-1)


def digitize(x, bins, right=False):
    """numpy.digitize: the bin of each ``x`` for increasing ``bins`` (decreasing bins
    when they are concrete)."""
    if _eager(x, bins):
        return np.digitize(x, bins, right=right)
    if not isinstance(bins, tracer().Value):
        b = np.asarray(bins)
        if b.ndim == 1 and b.size > 1 and np.all(b[1:] <= b[:-1]) and not np.all(b[1:] == b[:-1]):
            return b.size - searchsorted(b[::-1], x, side="left" if right else "right")
    return searchsorted(bins, x, side="left" if right else "right")


def interp(x, xp, fp, left=None, right=None, period=None):
    """numpy.interp: ``fp`` at ``x`` by linear interpolation between the points ``xp``
    (increasing); ``fp[0]`` (or ``left``) below ``xp[0]``, ``fp[-1]`` (or ``right``)
    above ``xp[-1]``."""
    if _eager(x, xp, fp):
        return np.interp(x, xp, fp, left=left, right=right, period=period)
    if period is not None:
        raise UnsupportedError("interp(..., period=...) is not supported")
    xp, fp = _sorted_1d(xp, "interp"), _value(fp)
    if fp.ndim != 1 or fp.shape[0] != xp.shape[0]:
        raise ShapeError(f"interp: fp must be 1-D of xp's length {xp.shape[0]}")
    x = _value(x)
    dt = result_dtype([x, xp, fp])
    x, xp, fp = convert(x, dt), convert(xp, dt), convert(fp, dt)
    n = xp.shape[0]
    if n == 1:
        return ew.where(x < xp[0], fp[0] if left is None else left,
                        ew.where(x > xp[0], fp[0] if right is None else right, fp[0] + 0.0 * x))
    i = ew.minimum(ew.maximum(searchsorted(xp, x, side="right") - 1, 0), n - 2)
    x0, x1, f0, f1 = gather(xp, i), gather(xp, i + 1), gather(fp, i), gather(fp, i + 1)
    y = f0 + (x - x0) * ((f1 - f0) / (x1 - x0))
    y = ew.where(x < xp[0], fp[0] if left is None else left, y)
    return ew.where(x > xp[n - 1], fp[n - 1] if right is None else right, y)


def _full_convolution(a, v):
    """The full convolution of 1-D ``a`` (length n) and ``v`` (m <= n): n + m - 1 values."""
    n, m = a.shape[0], v.shape[0]
    padded = pad(a, (m - 1, m - 1))
    length = n + m - 1
    if m <= SLICED_KERNEL:
        out = None
        for j in range(m):
            term = v[j] * padded[m - 1 - j: m - 1 - j + length]
            out = term if out is None else out + term
        return out
    k = np.arange(length)[:, None] - np.arange(m)[None, :] + (m - 1)     # windows: (length, m)
    return matmul(gather(padded, k.astype(np.int64)), v)


def convolve(a, v, mode="full"):
    """numpy.convolve of two 1-D arrays: ``out[k] = sum_j a[k - j] v[j]``, modes
    ``"full"`` (n + m - 1 values), ``"same"`` (max(n, m), centred) and ``"valid"``
    (max(n, m) - min(n, m) + 1)."""
    if _eager(a, v):
        return np.convolve(a, v, mode=mode)
    a, v = _value(a), _value(v)
    if a.ndim != 1 or v.ndim != 1:
        raise ShapeError(f"convolve: both arrays must be 1-D, got ranks {a.ndim} and {v.ndim}")
    n, m = a.shape[0], v.shape[0]
    if n == 0 or m == 0:
        raise ValueError("convolve: an array is empty")
    dt = result_dtype([a, v], float_result=False)
    a, v = convert(a, dt), convert(v, dt)
    if m > n:
        a, v, n, m = v, a, m, n
    full = _full_convolution(a, v)
    if mode == "full":
        return full
    if mode == "same":
        start = (m - 1) // 2
        return full[start: start + n]
    if mode == "valid":
        return full[m - 1: n]
    raise ValueError(f"convolve: mode must be 'full', 'same' or 'valid', got {mode!r}")


def correlate(a, v, mode="valid"):
    """numpy.correlate of two 1-D arrays (real): ``out[k] = sum_n a[n + k] v[n]``,
    the convolution with ``v`` reversed."""
    if _eager(a, v):
        return np.correlate(a, v, mode=mode)
    a, v = _value(a), _value(v)
    if a.ndim != 1 or v.ndim != 1:
        raise ShapeError(f"correlate: both arrays must be 1-D, got ranks {a.ndim} and {v.ndim}")
    if v.shape[0] > a.shape[0]:        # numpy: the arrays swap and the result reverses
        return convolve(v, a[::-1], mode)[::-1]
    return convolve(a, v[::-1], mode)


def ediff1d(ary, to_end=None, to_begin=None):
    """numpy.ediff1d: differences of the flattened array, with optional ends."""
    if _eager(ary, *(e for e in (to_end, to_begin) if e is not None)):
        return np.ediff1d(ary, to_end=to_end, to_begin=to_begin)
    x = reshape(_value(ary), -1)
    parts = [x[1:] - x[:-1]]
    if to_begin is not None:
        parts.insert(0, reshape(convert(_value(to_begin), parts[0].dtype), -1))
    if to_end is not None:
        parts.append(reshape(convert(_value(to_end), parts[-1].dtype), -1))
    return concatenate(parts) if len(parts) > 1 else parts[0]


def put_along_axis(arr, indices, values, axis, inplace=True, mode=None):
    """numpy.put_along_axis as JAX has it: a traced array cannot change in place, so
    ``inplace=False`` returns a new array with ``values`` at ``indices`` along ``axis``
    (``x.at[...].set``; differentiable in ``arr`` and ``values``); ``mode`` is JAX's
    out-of-bounds mode of that update ("clip", "drop"; None checks every index)."""
    if _eager(arr, indices, values):
        if not inplace:
            arr = np.array(arr, copy=True)
        np.put_along_axis(arr, np.asarray(indices), values, axis)
        return arr if not inplace else None
    if inplace:
        raise UnsupportedError("put_along_axis on a traced array: pass inplace=False (it returns the updated "
                               "array, as jax.numpy.put_along_axis does)")
    if axis is None:
        raise UnsupportedError("put_along_axis(..., axis=None) is not supported")
    x = _value(arr)
    if isinstance(indices, tracer().Value):
        return x.at[tuple(along_axis_index(x, indices, axis, "put_along_axis"))].set(values, mode=mode)
    # constant indices: numpy's index arrays, so a repeated position takes the last value
    grid = list(np.ogrid[tuple(slice(n) for n in x.shape)])
    grid[axis % x.ndim] = np.asarray(indices)
    return x.at[tuple(grid)].set(values, mode=mode)
