"""Functional updates of traced values, as JAX's ``x.at[idx]``::

    y = x.at[0].set(1.0)          # a new value: x with x[0] = 1 (x is unchanged)
    y = x.at[:, 1:].add(v)        # x with v added to the slice
    y = x.at[idx].multiply(s)     # integer-array indices: ...min(v), .max(v), .get()

The index is anything ``x[idx]`` accepts (ints, slices, None, ``...``, integer arrays,
constant or traced, beside full or partial slices); ``v`` broadcasts to ``x[idx]``'s
shape and takes ``x``'s dtype.  With partial slices beside index arrays, the sliced
region is updated by the arrays and then set back in place.

Every update is built from ops that already differentiate: the indexed region is put
in place by ``unslice`` (basic indices) or ``scatter_add`` (integer arrays), whose
adjoints are ``slice`` and ``gather``, and selected by ``where``.  Repeated integer
indices follow numpy when the indices are constants (``set``: the last value wins;
``add``, ``multiply``, ``min``, ``max`` accumulate, as ``np.add.at`` and friends):
gradc splits them into rounds of distinct indices.  With traced index arrays gradc
cannot see repeats while tracing: ``add`` still accumulates, ``set`` takes the mean of
the values given for one position (JAX leaves which one undefined), and ``multiply``,
``min`` and ``max`` need ``unique_indices=True`` (else an error points to
``gradc.ops.segment_prod``/``segment_min``/``segment_max``, which reduce exactly).
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from . import elementwise as ew, structure as st

MODES = ("set", "add", "multiply", "min", "max")


def _trace():
    from .. import tracer
    return tracer


class IndexUpdateHelper:
    """``x.at``: index it (``x.at[idx]``) to choose what to update."""

    __slots__ = ("_x",)

    def __init__(self, x):
        self._x = x

    def __getitem__(self, idx):
        return IndexUpdateRef(self._x, idx)

    def __repr__(self):
        return f"_IndexUpdateHelper({self._x!r})"


class IndexUpdateRef:
    """``x.at[idx]``: each method returns a new value; ``x`` is never changed."""

    __slots__ = ("_x", "_idx")

    def __init__(self, x, idx):
        self._x, self._idx = x, idx

    def get(self, *, indices_are_sorted=False, unique_indices=False, mode=None, fill_value=None):
        """``x[idx]``; ``mode="clip"`` or ``"fill"`` (with ``fill_value``, NaN for floats by
        default) for one integer index array, as JAX's."""
        one = _check_mode(self._x, self._idx, mode, ("clip", "fill"))
        if one is not None:   # (negative indices count from the end first, as in x[i])
            from .axes import take
            n = _trace().to_value(self._x)._b.env.pin(_trace().to_value(self._x)._shape[one[0]])
            i = one[1] if mode == "fill" else _from_end(one[1], n)
            return take(self._x, i, axis=one[0], mode=mode, fill_value=fill_value)
        return st.getitem(self._x, self._idx)

    def set(self, values, *, indices_are_sorted=False, unique_indices=False, mode=None):
        """``x`` with ``x[idx] = values``."""
        return self._update(values, "set", mode, False)

    def add(self, values, *, indices_are_sorted=False, unique_indices=False, mode=None):
        """``x`` with ``x[idx] += values`` (repeated indices accumulate, as ``np.add.at``)."""
        return self._update(values, "add", mode, False)

    def multiply(self, values, *, indices_are_sorted=False, unique_indices=False, mode=None):
        """``x`` with ``x[idx] *= values``."""
        return self._update(values, "multiply", mode, unique_indices)

    def min(self, values, *, indices_are_sorted=False, unique_indices=False, mode=None):
        """``x`` with ``x[idx] = minimum(x[idx], values)``."""
        return self._update(values, "min", mode, unique_indices)

    def max(self, values, *, indices_are_sorted=False, unique_indices=False, mode=None):
        """``x`` with ``x[idx] = maximum(x[idx], values)``."""
        return self._update(values, "max", mode, unique_indices)

    def _update(self, values, how, mode, unique):
        one = _check_mode(self._x, self._idx, mode, ("clip", "drop"))
        if one is None:
            return update(self._x, self._idx, values, how, unique=unique)
        return _update_out_of_bounds(self._x, one[0], one[1], values, how, mode, unique)


def _check_mode(x, idx, mode, modes):
    """JAX's ``mode=`` for out-of-bounds indices: None (the default, every index
    checked) or ``"promise_in_bounds"`` give None; ``modes`` (``clip``, ``fill`` for a
    read, ``drop`` for an update) are supported for one integer index array after full
    slices (``x.at[i]``, ``x.at[:, i]``), and give ``(axis, index array)``.
    ``indices_are_sorted`` and ``unique_indices`` are hints, accepted and not needed."""
    if mode in (None, "promise_in_bounds"):
        return None
    t = _trace()
    parts = idx if isinstance(idx, tuple) else (idx,)
    arr = parts[-1] if parts else None
    if isinstance(arr, (list, np.ndarray)):
        arr = np.asarray(arr)
    ok_arr = (isinstance(arr, t.Value) and arr.dtype.kind in "iu") or \
        (isinstance(arr, np.ndarray) and arr.dtype.kind in "iu")
    if mode in modes and ok_arr and all(isinstance(p, slice) and p == slice(None) for p in parts[:-1]):
        return len(parts) - 1, arr
    raise UnsupportedError(f"x.at[...](mode={mode!r}): gradc supports mode {' and '.join(map(repr, modes))} for "
                           "one integer index array after full slices (x.at[i], x.at[:, i]); otherwise it checks "
                           "every index, and one out of bounds is an error (an IndexError naming the argument): "
                           "clip or mask the indices first")


def _update_out_of_bounds(x, axis, i, values, how, mode, unique):
    """An update along ``axis`` at index array ``i`` with JAX's ``mode``: ``"clip"``
    clamps the indices (negative ones from the end first); ``"drop"`` sends the ones
    outside ``[-n, n)`` to one extra slot appended along ``axis`` and cut off after, so
    they change nothing whatever the update (set, add, min, ...) and get no gradient."""
    x = _trace().to_value(x)
    n = x._b.env.pin(x._shape[axis])
    j = _from_end(i, n)
    head = (slice(None),) * axis
    if mode == "clip":
        return update(x, head + ((np.clip if isinstance(j, np.ndarray) else ew.clip)(j, 0, n - 1),), values, how,
                      unique=unique)
    pad = st.concatenate([x, st.zeros_like(st.getitem(x, head + (slice(0, 1),)))], axis=axis)
    if isinstance(i, np.ndarray):   # constant indices stay constants: update sees their repeats
        j = np.where((i >= -n) & (i < n), j, n)
    else:
        j = ew.where(ew.logical_and(ew.greater_equal(i, -n), ew.less(i, n)), j, n)
    out = update(pad, head + (j,), values, how, unique=unique)
    return st.getitem(out, head + (slice(0, n),))


def _from_end(i, n):
    """Index array ``i`` with its negative entries counted from the end of ``n``."""
    if isinstance(i, np.ndarray):
        return np.where(i < 0, i + n, i)
    return ew.where(ew.less(i, 0), i + n, i)


def _combine(old, new, mode):
    if mode == "multiply":
        return ew.multiply(old, new)
    if mode == "min":
        return ew.minimum(old, new)
    if mode == "max":
        return ew.maximum(old, new)
    return new


def update(x, key, values, mode, unique=False):
    """``x.at[key].<mode>(values)``: see the module docstring.  ``unique``: the caller
    promises that traced index arrays do not repeat a position (JAX's ``unique_indices``)."""
    t = _trace()
    if mode not in MODES:
        raise UnsupportedError(f"x.at[...].{mode} is not an update (expected one of {', '.join(MODES)})")
    x = t.to_value(x)
    key = key if isinstance(key, tuple) else (key,)
    v = ew.convert(values, x.dtype)            # the update takes x's dtype, as in JAX
    key = st._constant_masks_as_indices(x, key)
    if any(st._is_index_array(k) for k in key):
        return _advanced_update(x, key, v, mode, unique)
    index, result_shape = st.basic_index(x, key)
    if all(ix == (0, None, 1) for ix in index):   # the whole array
        vb = st.reshape_sym(st.broadcast_to(v, result_shape(x)), x._shape)
        return ew.add(x, vb) if mode == "add" else _combine(x, vb, mode)
    region = t.bind("slice", x, index=index)
    vb = st.reshape_sym(st.broadcast_to(v, result_shape(region)), region._shape)

    def place(u):                     # zeros of x's shape with u at the region: unslice
        return t.bind("unslice", u, index=index, shape=x._shape)
    if mode == "add":
        return ew.add(x, place(vb))
    inside = ew.greater(place(_ones(region)), 0)
    return ew.where(inside, place(_combine(region, vb, mode)), x)


def _ones(v):
    dt = np.dtype(np.int8) if v.dtype == np.bool_ else v.dtype
    return st.full_like(v, 1, dtype=dt)


def _advanced_update(x, key, v, mode, unique=False):
    pre, key = st.advanced_key(x, key)
    if pre is not None:               # partial slices: update inside the sliced region
        region = st.getitem(x, pre)
        return update(x, pre, _advanced_update(region, key, v, mode, unique), "set")
    t = _trace()
    distinct = unique
    if mode in ("multiply", "min", "max") and not unique and any(isinstance(k, t.Value) for k in key):
        from ..tracer import user_source
        src = user_source()
        combine, segment = {"multiply": ("product", "prod"), "min": ("minimum", "min"), "max": ("maximum", "max")}[mode]
        raise UnsupportedError(
            f"x.at[...].{mode} with traced index arrays: gradc cannot see while tracing whether they repeat a "
            f"position, where the values would combine by their {combine}. Pass unique_indices=True if they "
            f"never repeat; for a reduction per segment use gradc.ops.segment_{segment}(values, indices, "
            "num_segments)" + (f"  [at {src}]" if src else ""))
    if mode != "add" and not unique and all(not isinstance(k, t.Value) for k in key):
        rounds = _distinct_rounds(x, key)
        if rounds is not None:                 # repeated constant indices: numpy's order
            vb = st.broadcast_to(v, st.getitem(x, key)._shape)
            flat_v = st.reshape(vb, -1)
            y = x
            for sub_key, sel in rounds:
                y = update(y, sub_key, st.getitem(flat_v, (sel,)), mode)
            return y
        distinct = True
    idx = st.advanced_index(x, key)
    region = t.bind("gather", x, *idx)
    vb = st.broadcast_to(v, region._shape)

    def place(u):                     # zeros of x's shape, adding u at the indices
        return t.bind("scatter_add", u, *idx, shape=x._shape)
    if mode == "add":
        return ew.add(x, place(vb))
    count = place(_ones(region))
    inside = ew.greater(count, 0)
    new = place(_combine(region, vb, mode))
    if not distinct:                  # traced indices may repeat: the mean of their values
        new = ew.divide(new, ew.maximum(count, 1))
        if new.dtype != x.dtype:
            new = ew.convert(new, x.dtype)
    return ew.where(inside, new, x)


def _distinct_rounds(x, key):
    """For constant indices (``key`` as ``advanced_key`` leaves it): None if they select
    distinct elements; else rounds ``(all-axes key, selection)`` of distinct elements in
    numpy's order (the k-th repeat of a position is in round k), ``selection`` counting
    the selected elements row-major.  numpy's own indexing of the positions
    ``arange(x.size)`` says which element each selected one is."""
    shape = tuple(x._b.env.pin(d) for d in x._shape)
    positions = np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)
    pos = positions[tuple(k if isinstance(k, slice) else np.asarray(k) for k in key)].reshape(-1)
    if pos.size == len(np.unique(pos)):
        return None
    order = np.argsort(pos, kind="stable")
    sp = pos[order]
    starts = np.r_[0, np.flatnonzero(sp[1:] != sp[:-1]) + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, sp.size]))
    occurrence = np.empty_like(pos)
    occurrence[order] = np.arange(sp.size) - group_start
    out = []
    for r in range(int(occurrence.max()) + 1):
        sel = np.flatnonzero(occurrence == r)
        out.append((tuple(np.unravel_index(pos[sel], shape)), sel))
    return out
