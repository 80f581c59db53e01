"""numpy's functions whose result holds indices or counts: ``nonzero``, ``flatnonzero``,
``argwhere``, one-argument ``where``, ``unravel_index``, ``ravel_multi_index``,
``histogram``, ``histogram_bin_edges`` and ``unique`` (with ``unique_values``,
``unique_counts``, ``unique_inverse``, ``unique_all``).

How many elements are nonzero depends on the data, and a compiled function's shapes
may not: as in JAX, ``nonzero`` and its relatives take ``size=`` (the result's length)
inside a trace, padded with ``fill_value`` (0 unless given) when fewer elements are
nonzero and cut to the first ``size`` when more.  The ``k``-th nonzero element goes to
slot ``k``: its slot is the running count of nonzero elements before it, so one
running sum and one scatter compute the result, O(n log n) work for n elements.

Outside a trace each function is numpy's own.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import ArgumentError, UnsupportedError
from . import elementwise as ew
from .arrays import _iota, argsort, concatenate
from .bind import convert, tracer
from .mathfuncs import isnan
from .reduce import max_, min_, sum_
from .segments import segment_sum
from .stats import _eager, cumsum
from .structure import broadcast_to, reshape, stack


def _need_size(size, what, counted="nonzero elements"):
    if size is None:
        raise UnsupportedError(f"{what} of a traced array: the number of {counted} depends on the data; "
                               f"give size= (the result's length, padded with fill_value), as JAX requires")
    size = int(size)
    if size < 0:
        raise ArgumentError(f"{what}: size must be >= 0, got {size}")
    return size


def _flat_positions(a, size):
    """(the flat positions of ``a``'s first ``size`` nonzero elements, padded with -1;
    whether each slot holds one)."""
    t = tracer()
    flat = reshape(t.to_value(a), (-1,))
    nonzero = ew.not_equal(flat, 0)
    n = flat._shape[0]
    rank = cumsum(convert(nonzero, np.int64))             # 1 for the first nonzero element
    slot = ew.where(ew.logical_and(nonzero, ew.less_equal(rank, size)), rank - 1, size)
    empty = broadcast_to(np.array(-1, np.int64), (size + 1,))
    pos = empty.at[slot].set(_iota((n,), 0))[:size]              # slot `size` takes the rest
    return pos, ew.greater_equal(pos, 0)


def _fills(fill_value, ndim, what):
    if fill_value is None:
        return (0,) * ndim
    fills = tuple(np.ravel(fill_value).tolist()) if np.ndim(fill_value) else (fill_value,) * ndim
    if len(fills) != ndim:
        raise ArgumentError(f"{what}: fill_value must be a scalar or one value per axis ({ndim}), got {fill_value!r}")
    return fills


def nonzero(a, *, size=None, fill_value=None):
    """The indices of ``a``'s nonzero elements, one array per axis (numpy's order)."""
    if _eager(a) and size is None:
        return np.nonzero(a)
    if _eager(a):
        idx = np.nonzero(a)
        fills = _fills(fill_value, len(idx), "nonzero")
        return tuple(np.concatenate([i[:size], np.full(max(size - i.size, 0), f, np.int64)])
                     for i, f in zip(idx, fills))
    size = _need_size(size, "nonzero")
    a = tracer().to_value(a)
    if a.ndim == 0:
        raise ArgumentError("nonzero of a 0-d array: use atleast_1d(a).nonzero(), as numpy requires")
    pos, found = _flat_positions(a, size)
    coords = unravel_index(ew.where(found, pos, 0), tuple(a._shape))
    fills = _fills(fill_value, a.ndim, "nonzero")
    return tuple(ew.where(found, c, np.array(f, np.int64)) for c, f in zip(coords, fills))


def flatnonzero(a, *, size=None, fill_value=None):
    """The flat indices of ``a``'s nonzero elements."""
    if _eager(a) and size is None:
        return np.flatnonzero(a)
    return nonzero(reshape(tracer().to_value(a), (-1,)) if not _eager(a) else np.ravel(a),
                   size=size, fill_value=fill_value)[0]


def argwhere(a, *, size=None, fill_value=None):
    """The indices of ``a``'s nonzero elements as rows: shape ``(count, a.ndim)``."""
    if _eager(a) and size is None:
        return np.argwhere(a)
    if _eager(a):
        return np.stack(nonzero(np.atleast_1d(a), size=size, fill_value=fill_value), axis=-1)
    a = tracer().to_value(a)
    if a.ndim == 0:
        return _argwhere_0d(size)
    return stack(list(nonzero(a, size=size, fill_value=fill_value)), axis=-1)


def _argwhere_0d(size):
    """numpy's argwhere of a 0-d array has shape (count, 0): no index to give."""
    _need_size(size, "argwhere")
    return broadcast_to(np.zeros((), np.int64), (int(size), 0))


def where_indices(condition, *, size=None, fill_value=None):
    """``where(condition)``: numpy's one-argument form, ``nonzero(condition)``."""
    return nonzero(condition, size=size, fill_value=fill_value)


def unravel_index(indices, shape, order="C"):
    """numpy.unravel_index: the coordinates of flat ``indices`` in an array of ``shape``."""
    if _eager(indices):
        return np.unravel_index(indices, shape, order=order)
    if order not in ("C", "F"):
        raise ArgumentError(f"unravel_index: order must be 'C' or 'F', got {order!r}")
    shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)
    rest = convert(tracer().to_value(indices), np.int64)
    out = []
    for s in (reversed(shape) if order == "C" else shape):
        out.append(rest % s)
        rest = rest // s
    return tuple(reversed(out)) if order == "C" else tuple(out)


def ravel_multi_index(multi_index, dims, mode="raise", order="C"):
    """numpy.ravel_multi_index; with traced indices ``mode`` is 'clip' or 'wrap' (an
    index out of bounds cannot raise from compiled code: 'raise' clips, as JAX)."""
    if _eager(*multi_index):
        return np.ravel_multi_index(multi_index, dims, mode=mode, order=order)
    dims = tuple(int(d) for d in dims)
    if len(multi_index) != len(dims):
        raise ArgumentError(f"ravel_multi_index: {len(multi_index)} index arrays for {len(dims)} dimensions")
    modes = (mode,) * len(dims) if isinstance(mode, str) else tuple(mode)
    t = tracer()
    flat, stride = None, 1
    order_dims = list(zip(multi_index, dims, modes))
    for idx, d, m in (reversed(order_dims) if order == "C" else order_dims):
        i = convert(t.to_value(idx), np.int64)
        i = i % d if m == "wrap" else ew.minimum(ew.maximum(i, 0), d - 1)
        term = i * stride
        flat = term if flat is None else flat + term
        stride *= d
    return flat


# ----------------------------------------------------------------------------- histograms
def _edges(a, bins, range_, what):
    """The bin edges numpy's histogram computes (equal bins: numpy's linspace, its last
    edge exactly the range's end)."""
    t = tracer()
    edge_dtype = a.dtype if a.dtype.kind == "f" else np.dtype(np.float64)
    if np.ndim(bins) == 1 or isinstance(bins, t.Value):
        edges = t.to_value(bins)                # numpy keeps the edges' own dtype
        if edges.ndim != 1 or edges._shape[0] < 2:
            raise ArgumentError(f"{what}: bins must be an int or a 1-D array of at least 2 edges")
        return edges
    if isinstance(bins, str):
        raise UnsupportedError(f"{what}: bins={bins!r} (an estimator) is not supported; give the number of bins")
    n = int(bins)
    if n < 1:
        raise ArgumentError(f"{what}: bins must be positive, got {n}")
    if range_ is not None:
        lo, hi = (float(r) for r in range_)
        if not lo <= hi:
            raise ArgumentError(f"{what}: range max must be >= min, got {range_}")
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        return t.to_value(np.linspace(lo, hi, n + 1).astype(edge_dtype))
    lo, hi = convert(min_(a), edge_dtype), convert(max_(a), edge_dtype)
    same = ew.equal(lo, hi)
    lo, hi = ew.where(same, lo - 0.5, lo), ew.where(same, hi + 0.5, hi)
    step = (hi - lo) / n
    inner = convert(_iota((n,), 0), edge_dtype) * step + lo          # numpy's linspace: i * step + start
    return concatenate([inner, reshape(hi, (1,))])


def histogram_bin_edges(a, bins=10, range=None, weights=None):  # noqa: A002  (numpy's name)
    """numpy.histogram_bin_edges."""
    if _eager(a, bins):
        return np.histogram_bin_edges(a, bins=bins, range=range, weights=weights)
    a = reshape(tracer().to_value(a), (-1,))
    return _edges(a, bins, range, "histogram_bin_edges")


def histogram(a, bins=10, range=None, density=None, weights=None):  # noqa: A002  (numpy's name)
    """numpy.histogram: ``(counts, edges)``.  Bin ``i`` holds ``edges[i] <= x <
    edges[i + 1]``, the last bin its right edge too; values outside the edges are not
    counted.  With ``weights`` each value adds its weight (differentiable in the
    weights); ``density`` divides by the total and the bin widths.  The counts are
    constant in ``a`` almost everywhere (their derivative is 0); the edges of a range
    taken from the data follow its min and max."""
    t = tracer()
    if _eager(a, bins, *(() if weights is None else (weights,))):
        return np.histogram(a, bins=bins, range=range, density=density, weights=weights)
    a = reshape(t.to_value(a), (-1,))
    edges = _edges(a, bins, range, "histogram")
    nbins = edges._shape[0] - 1
    common = np.result_type(a.dtype, edges.dtype)
    x, edges_c = convert(a, common), convert(edges, common)
    # bin i: edges[i] <= x < edges[i + 1]; x at the last edge belongs to the last bin
    below = convert(ew.less_equal(reshape(edges_c[:-1], (1, nbins)), reshape(x, (-1, 1))), np.int64)
    idx = sum_(below, axis=1) - 1
    inside = ew.logical_and(ew.greater_equal(x, edges_c[0]), ew.less_equal(x, edges_c[-1]))
    idx = ew.where(inside, ew.minimum(idx, nbins - 1), -1)          # -1 belongs to no bin
    if weights is None:
        w = broadcast_to(np.array(1, np.int64), (a._shape[0],))
    else:
        w = reshape(t.to_value(weights), (-1,))
        a._b.env.equal(w._shape[0], a._shape[0], "histogram: the number of weights and of values")
    counts = segment_sum(w, idx, num_segments=nbins)
    if density:
        fdt = np.result_type(counts.dtype, edges.dtype, np.float64 if edges.dtype.kind != "f" else edges.dtype)
        widths = convert(edges[1:] - edges[:-1], fdt)
        counts = convert(counts, fdt) / widths / sum_(convert(counts, fdt))
    return counts, edges


# ----------------------------------------------------------------------------- unique
class UniqueAllResult(NamedTuple):
    values: object
    indices: object
    inverse_indices: object
    counts: object


class UniqueCountsResult(NamedTuple):
    values: object
    counts: object


class UniqueInverseResult(NamedTuple):
    values: object
    inverse_indices: object


def _pad_eager(parts, size, fill_value):
    """numpy's unique results padded or cut to ``size`` as JAX's: values with
    ``fill_value`` (else the smallest value), first indices with the smallest value's,
    counts with 0; the inverse is unchanged."""
    values, rest = parts[0], list(parts[1:])
    k = values.size
    fill = values[0] if fill_value is None and k else (0 if fill_value is None else fill_value)
    pad = max(size - k, 0)
    out = [np.concatenate([values[:size], np.full(pad, fill, values.dtype)])]
    for name, arr in rest:
        if name == "index":
            arr = np.concatenate([arr[:size], np.full(pad, arr[0] if k else 0, arr.dtype)])
        elif name == "counts":
            arr = np.concatenate([arr[:size], np.zeros(pad, arr.dtype)])
        out.append(arr)
    return tuple(out)


def unique(ar, return_index=False, return_inverse=False, return_counts=False, axis=None, *,
           equal_nan=True, size=None, fill_value=None, sorted=True):  # noqa: A002  (numpy's name)
    """numpy.unique of the flattened array; inside a trace with JAX's ``size=`` (the
    number of values returned: the smallest ``size`` distinct values, padded with
    ``fill_value``, by default the smallest value; first indices padded with its index,
    counts with 0).  Differentiable in the values (each distinct value is the element
    that holds it first in sorted order)."""
    flags = (return_index, return_inverse, return_counts)
    if _eager(ar):
        r = np.unique(ar, return_index=return_index, return_inverse=return_inverse,
                      return_counts=return_counts, axis=axis, equal_nan=equal_nan)
        if size is None:
            return r
        r = r if isinstance(r, tuple) else (r,)
        names = [n for n, f in zip(("index", "inverse", "counts"), flags) if f]
        padded = _pad_eager([r[0], *zip(names, r[1:])], int(size), fill_value)
        return padded if len(padded) > 1 else padded[0]
    if axis is not None:
        raise UnsupportedError("unique(axis=...) of a traced array: gradc supports axis=None (the flattened array)")
    size = _need_size(size, "unique", "distinct values")
    t = tracer()
    x = t.to_value(ar)
    flat = reshape(x, (-1,))
    n = flat._shape[0]
    perm = argsort(flat)                                   # stable: the first occurrence leads its group
    s = flat[perm]
    differs = ew.not_equal(s[1:], s[:-1])
    if equal_nan and s.dtype.kind == "f":                  # NaNs (sorted last) form one group
        differs = ew.logical_and(differs, ew.logical_not(ew.logical_and(isnan(s[1:]), isnan(s[:-1]))))
    starts = concatenate([broadcast_to(np.array(True), (1,)), differs])
    group = cumsum(convert(starts, np.int64)) - 1          # each sorted element's distinct value
    pos, found = _flat_positions(starts, size)
    first = ew.where(found, pos, 0)
    fill = s[0] if fill_value is None else convert(t.to_value(fill_value), s.dtype)
    out = [ew.where(found, s[first], fill)]
    if return_index:
        out.append(ew.where(found, perm[first], perm[0]))
    if return_inverse:
        inverse = broadcast_to(np.array(0, np.int64), (n,)).at[perm].set(group)
        out.append(reshape(inverse, tuple(x._shape)))
    if return_counts:
        out.append(segment_sum(broadcast_to(np.array(1, np.int64), (n,)), group, num_segments=size))
    return tuple(out) if len(out) > 1 else out[0]


def unique_values(x, *, size=None, fill_value=None):
    """numpy.unique_values (sorted, as numpy's)."""
    return unique(x, size=size, fill_value=fill_value)


def unique_counts(x, *, size=None, fill_value=None):
    """numpy.unique_counts: ``(values, counts)``."""
    return UniqueCountsResult(*unique(x, return_counts=True, size=size, fill_value=fill_value))


def unique_inverse(x, *, size=None, fill_value=None):
    """numpy.unique_inverse: ``(values, inverse_indices)``, the inverse of x's shape."""
    return UniqueInverseResult(*unique(x, return_inverse=True, size=size, fill_value=fill_value))


def unique_all(x, *, size=None, fill_value=None):
    """numpy.unique_all: ``(values, indices, inverse_indices, counts)``."""
    return UniqueAllResult(*unique(x, return_index=True, return_inverse=True, return_counts=True,
                                   size=size, fill_value=fill_value))
