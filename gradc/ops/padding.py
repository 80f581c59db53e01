"""numpy.pad: every mode but ``empty`` (which leaves garbage) and a callable mode.

The index modes (constant, edge, reflect, symmetric, wrap) are in ``ops/arrays.py``.
This module adds the statistic modes ``mean``, ``maximum``, ``minimum``, ``median``
(``stat_length``) and ``linear_ramp`` (``end_values``), as numpy computes them: axis by
axis, each axis padded on the array as the earlier axes left it (so corners take the
statistic of the padding before them), each side's pad the statistic of the
``stat_length`` elements of the original region nearest that side (all of them when
None), broadcast along the axis and joined by ``concatenate``; ``linear_ramp`` the
values ``end + i * (edge - end) / width`` (numpy's ``linspace`` without its endpoint)
from the end value up to the edge element.  The gradients come from the reductions'
adjoints (``maximum``/``minimum``: tied elements share, as ``max``), ``median``'s
(through ``sort``) and the ramps' (``i / width`` of the edge's cotangent).
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from . import arrays, elementwise as ew
from .reduce import max_, min_, sum_

STAT_MODES = ("mean", "maximum", "minimum", "median")
MODES = ("constant", "edge", "reflect", "symmetric", "wrap", *STAT_MODES, "linear_ramp")


def _trace():
    from .. import tracer
    return tracer


def _pairs(v, ndim, what, as_index):
    """numpy's ``_as_pairs``: one (before, after) pair per axis from a scalar, a pair,
    or one pair per axis."""
    if isinstance(v, _trace().Value):
        raise UnsupportedError(f"pad: {what} must be constants (numbers), not traced values")
    a = np.asarray(v, dtype=np.int64 if as_index else np.float64)
    if as_index and a.dtype.kind == "i" and (a < 0).any():
        raise ValueError("index can't contain negative values")
    try:
        a = np.broadcast_to(a, (ndim, 2))
    except ValueError:
        raise ValueError(f"pad: {what} of shape {np.shape(v)} does not fit an array of rank {ndim} "
                         "(give a number, a (before, after) pair, or one pair per axis)") from None
    return [tuple(r) for r in a.tolist()]


def _slab(x, axis, start, stop):
    index = tuple((start, stop, 1) if a == axis else (0, None, 1) for a in range(x.ndim))
    return _trace().bind("slice", x, index=index)


def _stat(x, axis, mode):
    """The statistic of ``x`` along ``axis`` (kept), in ``x``'s dtype as numpy's pad
    writes it (integers: the mean and the median rounded half to even)."""
    from .compose import median
    if mode == "maximum":
        return max_(x, axis, keepdims=True)
    if mode == "minimum":
        return min_(x, axis, keepdims=True)
    f = x if x.dtype.kind == "f" else ew.astype(x, np.float64)
    r = (sum_(f, axis, keepdims=True) / x._b.env.pin(x._shape[axis]) if mode == "mean"
         else median(f, axis=axis, keepdims=True))
    if x.dtype.kind != "f":
        from .mathfuncs import rint
        r = ew.astype(rint(r), x.dtype)
    return r


def _fill(v, axis, width, x):
    from .structure import broadcast_to
    shape = tuple(width if a == axis else d for a, d in enumerate(x._shape))
    return broadcast_to(v, shape) if v._shape != shape else v


def _ramp(edge, end, axis, width, reverse):
    """numpy's linspace(end, edge, width, endpoint=False) along ``axis`` (reversed for
    the right side): ``end + i * (edge - end) / width``."""
    shape = tuple(width if a == axis else 1 for a in range(edge.ndim))
    i = np.arange(width, dtype=np.float64)[::-1 if reverse else 1].reshape(shape)
    f = edge if edge.dtype.kind == "f" else ew.astype(edge, np.float64)
    r = (f - end) / float(width) * i.astype(f.dtype) + end
    if edge.dtype.kind != "f":        # numpy's linspace to an integer dtype floors
        from .mathfuncs import floor
        r = ew.astype(floor(r), edge.dtype)
    return r


def pad(array, pad_width, mode="constant", **kw):
    """numpy.pad: modes constant, edge, reflect, symmetric, wrap, mean, maximum, minimum,
    median (``stat_length``) and linear_ramp (``end_values``)."""
    if arrays._eager(array):
        return np.pad(array, pad_width, mode=mode, **kw)
    if mode not in STAT_MODES and mode != "linear_ramp":
        if mode in MODES or not isinstance(mode, str):
            return arrays.pad(array, pad_width, mode, **kw)
        raise UnsupportedError(f"pad: mode {mode!r} is not supported (the modes are {', '.join(MODES)})")
    allowed = "stat_length" if mode in STAT_MODES else "end_values"
    if set(kw) - {allowed}:
        raise UnsupportedError(f"pad: mode {mode!r} takes {allowed}=, not {sorted(set(kw) - {allowed})}")
    x = _trace().to_value(array)
    widths = arrays._pad_widths(pad_width, x.ndim)
    if mode in STAT_MODES:
        s = kw.get("stat_length")
        lengths = [(None, None)] * x.ndim if s is None else _pairs(s, x.ndim, "stat_length", True)
    else:
        ends = _pairs(kw.get("end_values", 0), x.ndim, "end_values", False)
    for a, (b, e) in enumerate(widths):
        if not (b or e):
            continue
        n = arrays._pin(x, a)
        if n == 0:
            raise ValueError(f"can't extend empty axis {a} using modes other than 'constant' or 'empty'")
        if mode == "linear_ramp":
            left = _ramp(_slab(x, a, 0, 1), ends[a][0], a, b, False) if b else None
            right = _ramp(_slab(x, a, n - 1, n), ends[a][1], a, e, True) if e else None
        else:
            lo, hi = (n if k is None else min(int(k), n) for k in lengths[a])
            if (lo == 0 or hi == 0) and mode in ("maximum", "minimum"):
                raise ValueError("stat_length of 0 yields no value for padding")
            nan = _trace().to_value(np.full((1,) * x.ndim, np.nan, x.dtype)) if x.dtype.kind == "f" else None
            left = _stat(_slab(x, a, 0, lo), a, mode) if lo else nan
            right = left if lo == hi == n else _stat(_slab(x, a, n - hi, n), a, mode) if hi else nan
            if left is None or right is None:
                raise ValueError(f"pad: stat_length 0 gives no {mode} of an integer array")
        parts = ([_fill(left, a, b, x)] if b else []) + [x] + ([_fill(right, a, e, x)] if e else [])
        x = arrays._concatenate(parts, axis=a)
    return x
