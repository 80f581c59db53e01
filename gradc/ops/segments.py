"""Reductions per segment, as ``jax.ops``: ``segment_sum(data, segment_ids,
num_segments)`` adds the rows of ``data`` that share an id (message passing in graph
networks, pooling by cluster), and ``segment_max``, ``segment_min`` and ``segment_prod``
reduce them the other ways; ``bincount`` is numpy's count (or weighted sum) per value.

``segment_sum`` scatters (its adjoint a gather: O(rows) work).  The others compare every
row's id with every segment (a mask of num_segments x rows, O(num_segments x rows) work)
and reduce, so repeated ids combine exactly and the gradient follows the reductions'
rules (ties of a max share it).  With traced ids, ``num_segments`` must be given (the
result's size).  An id outside ``[0, num_segments)`` belongs to no segment (its row is
dropped, as JAX's: graph networks pad edges with such ids).  An empty segment holds the
reduction's identity: 0, -inf, inf, 1.
"""
from __future__ import annotations

import numpy as np

from ..errors import ArgumentError, UnsupportedError
from . import elementwise as ew
from .bind import convert, tracer
from .reduce import max_, min_
from .stats import _eager, prod
from .structure import broadcast_to, expand_dims, zeros_like


def _count(segment_ids, num_segments, what) -> int:
    """The number of segments: ``num_segments``, or one past the largest constant id."""
    if num_segments is not None:
        return int(num_segments)
    if isinstance(segment_ids, tracer().Value):
        raise ArgumentError(f"{what}: num_segments is needed with traced segment ids (it is the result's size)")
    ids = np.asarray(segment_ids)
    return int(ids.max()) + 1 if ids.size else 0


def _prepare(data, segment_ids, num_segments, what):
    t = tracer()
    num_segments = _count(segment_ids, num_segments, what)
    data = t.to_value(data)
    ids = convert(t.to_value(segment_ids), np.int64)
    if ids.ndim != 1 or data.ndim < 1:
        raise ArgumentError(f"{what}: segment_ids must be 1-D and data at least 1-D, got ranks {ids.ndim} and "
                            f"{data.ndim}")
    return data, ids, num_segments


def _jax_options(kw, what):
    """JAX's ``bucket_size`` (a speed hint) and ``mode`` (out-of-range ids: gradc drops
    them, JAX's default) are accepted; ``mode="clip"`` and unknown keywords are refused."""
    unknown = sorted(set(kw) - {"bucket_size", "mode"})
    if unknown:
        raise TypeError(f"{what}() got unexpected keyword arguments {unknown}")
    mode = kw.get("mode")
    if mode is not None and "clip" in str(mode).lower():
        raise UnsupportedError(f"{what}: mode={mode!r} is not supported: ids outside [0, num_segments) are "
                               "dropped (JAX's default, mode='drop')")


def segment_sum(data, segment_ids, num_segments=None, indices_are_sorted=False, unique_indices=False, **kw):
    """``out[s] = sum of data[i] over the i with segment_ids[i] == s``."""
    _jax_options(kw, "segment_sum")
    if _eager(data, segment_ids):
        data, ids = np.asarray(data), np.asarray(segment_ids)
        n = _count(ids, num_segments, "segment_sum")
        out = np.zeros((n,) + data.shape[1:], dtype=data.dtype)
        keep = (ids >= 0) & (ids < n)
        np.add.at(out, ids[keep], data[keep])
        return out
    data, ids, n = _prepare(data, segment_ids, num_segments, "segment_sum")
    # an id outside [0, n) is dropped, as JAX's (padding edges point past the segments):
    # its row adds 0 to segment 0
    keep = ew.logical_and(ew.greater_equal(ids, 0), ew.less(ids, n))
    rows = ew.where(_per_row(keep, data.ndim), data, np.zeros((), data.dtype))
    zeros = broadcast_to(np.zeros((), data.dtype), (n,) + tuple(data._shape[1:]))
    return zeros.at[ew.where(keep, ids, 0)].add(rows)


def _per_row(mask, ndim):
    """A mask per row, with ones appended to broadcast against rank-``ndim`` rows."""
    for _ in range(ndim - 1):
        mask = expand_dims(mask, -1)
    return mask


def _masked(name, identity, np_reduce, reduce):
    def segment_reduce(data, segment_ids, num_segments=None, indices_are_sorted=False, unique_indices=False, **kw):
        _jax_options(kw, name)
        if _eager(data, segment_ids):
            data, ids = np.asarray(data), np.asarray(segment_ids)
            n = _count(ids, num_segments, name)
            mask = ids[None, :] == np.arange(n)[:, None]
            mask = mask.reshape(mask.shape + (1,) * (data.ndim - 1))
            return np_reduce(np.where(mask, data[None], identity), axis=1)
        data, ids, n = _prepare(data, segment_ids, num_segments, name)
        t = tracer()
        segments = t.bind("iota", shape=(n, 1), axis=0, dtype=np.dtype(np.int64))
        mask = _per_row(ew.equal(expand_dims(ids, 0), segments), data.ndim)   # (segments, rows, 1...)
        return reduce(ew.where(mask, expand_dims(data, 0), identity), axis=1)
    segment_reduce.__name__ = name
    segment_reduce.__doc__ = f"``out[s]``: the {name[8:]} of the ``data[i]`` with ``segment_ids[i] == s``."
    return segment_reduce


segment_max = _masked("segment_max", -np.inf, np.max, max_)
segment_min = _masked("segment_min", np.inf, np.min, min_)
segment_prod = _masked("segment_prod", 1.0, np.prod, prod)


def bincount(x, weights=None, minlength=0, *, length=None):
    """numpy.bincount: how often each value 0, 1, ... occurs in ``x`` (or the sum of its
    ``weights``); with traced ``x``, ``length`` (JAX's) is the result's size."""
    if _eager(x, *(() if weights is None else (weights,))):
        r = np.bincount(np.asarray(x), weights=weights, minlength=minlength)
        return r if length is None else r[:length] if r.size >= length else np.pad(r, (0, length - r.size))
    t = tracer()
    if length is None:
        if isinstance(x, t.Value):
            raise ArgumentError("bincount of traced values: give length= (the result's size), as JAX requires")
        length = max(int(np.max(x)) + 1 if np.size(x) else 0, minlength)
    ones = ew.add(zeros_like(convert(t.to_value(x), np.int64)), 1) if weights is None else weights
    return segment_sum(ones, x, num_segments=length)
