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
        default) for integer index arrays beside full slices, as JAX's."""
        arrays = _check_mode(self._x, self._idx, mode, ("clip", "fill"))
        if arrays is None:
            return st.getitem(self._x, self._idx)
        if len(arrays) == 1:   # (negative indices count from the end first, as in x[i])
            from .axes import take
            (axis, i), = arrays.items()
            n = _trace().to_value(self._x)._b.env.pin(_trace().to_value(self._x)._shape[axis])
            return take(self._x, i if mode == "fill" else _from_end(i, n), axis=axis, mode=mode, fill_value=fill_value)
        return _get_out_of_bounds(self._x, arrays, mode, fill_value)

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
        arrays = _check_mode(self._x, self._idx, mode, ("clip", "drop"))
        if arrays is None:
            return update(self._x, self._idx, values, how, unique=unique)
        return _update_out_of_bounds(self._x, arrays, values, how, mode, unique)


def _check_mode(x, idx, mode, modes):
    """JAX's ``mode=`` for out-of-bounds indices: None (the default, every index
    checked) or ``"promise_in_bounds"`` give None; ``modes`` (``clip``, ``fill`` for a
    read, ``drop`` for an update) are supported for integer index arrays (and integers)
    beside full slices (``x.at[i]``, ``x.at[:, i]``, ``x.at[i, j]``), and give
    ``{axis: index array}``.  ``indices_are_sorted`` and ``unique_indices`` are hints,
    accepted and not needed."""
    if mode in (None, "promise_in_bounds"):
        return None
    t = _trace()
    parts = idx if isinstance(idx, tuple) else (idx,)
    arrays = {}
    for axis, p in enumerate(parts):
        if isinstance(p, slice) and p == slice(None):
            continue
        if isinstance(p, (int, np.integer)) and not isinstance(p, (bool, np.bool_)):
            p = np.asarray(p)
        if isinstance(p, list):
            p = np.asarray(p)
        if (isinstance(p, t.Value) or isinstance(p, np.ndarray)) and p.dtype.kind in "iu":
            arrays[axis] = p
            continue
        arrays = {}
        break
    if mode in modes and arrays:
        return arrays
    raise UnsupportedError(f"x.at[...](mode={mode!r}): gradc supports mode {' and '.join(map(repr, modes))} for "
                           "integer index arrays beside full slices (x.at[i], x.at[:, i], x.at[i, j]); otherwise it "
                           "checks every index, and one out of bounds is an error (an IndexError naming the "
                           "argument): clip or mask the indices first")


def _np_or_ew(i, np_fn, ew_fn):
    return np_fn if isinstance(i, np.ndarray) else ew_fn


def _in_bounds(arrays, sizes):
    """Where every index array is inside ``[-n, n)`` of its axis (broadcast together)."""
    ok = None
    for axis, i in arrays.items():
        n = sizes[axis]
        both = _np_or_ew(i, np.logical_and, ew.logical_and)
        this = both(_np_or_ew(i, np.greater_equal, ew.greater_equal)(i, -n), _np_or_ew(i, np.less, ew.less)(i, n))
        ok = this if ok is None else (np.logical_and(ok, this) if isinstance(ok, np.ndarray)
                                      and isinstance(this, np.ndarray) else ew.logical_and(ok, this))
    return ok


def _key(ndim, arrays):
    return tuple(arrays.get(a, slice(None)) for a in range(ndim))


def _get_out_of_bounds(x, arrays, mode, fill_value):
    """``x[i, j, ...]`` with several index arrays: ``"clip"`` clamps each to its axis
    (negative ones from the end first); ``"fill"`` reads at in-bounds stand-ins and puts
    ``fill_value`` where any index of an element is outside ``[-n, n)``."""
    from .axes import fill_for
    x = _trace().to_value(x)
    sizes = {a: x._b.env.pin(x._shape[a]) for a in arrays}
    ends = {a: _from_end(i, sizes[a]) for a, i in arrays.items()}
    if mode == "clip":
        return st.getitem(x, _key(x.ndim, {a: _np_or_ew(j, np.clip, ew.clip)(j, 0, sizes[a] - 1)
                                           for a, j in ends.items()}))
    ok = _in_bounds(arrays, sizes)
    safe = {a: np.where(ok, j, 0) if isinstance(ok, np.ndarray) and isinstance(j, np.ndarray) else ew.where(ok, j, 0)
            for a, j in ends.items()}
    got = st.getitem(x, _key(x.ndim, safe))
    # the index arrays' axes in the result: where the first array was when they are
    # adjacent (numpy's rule), else first
    axes = sorted(arrays)
    lead = axes[0] if axes == list(range(axes[0], axes[-1] + 1)) else 0
    ok_ndim = np.ndim(ok) if isinstance(ok, np.ndarray) else ok.ndim
    where_ok = (None,) * lead + (Ellipsis,) + (None,) * (got.ndim - lead - ok_ndim)
    mask = ok[where_ok] if isinstance(ok, np.ndarray) else st.getitem(ok, where_ok)
    return ew.where(mask, got, ew.astype(fill_for(x.dtype, fill_value), x.dtype))


def _update_out_of_bounds(x, arrays, values, how, mode, unique):
    """An update at index arrays with JAX's ``mode``: ``"clip"`` clamps the indices
    (negative ones from the end first); ``"drop"`` sends an element whose index on any
    axis is outside ``[-n, n)`` to one extra slot appended along each indexed axis and
    cut off after, so it changes nothing whatever the update (set, add, min, ...) and
    gets no gradient."""
    x = _trace().to_value(x)
    sizes = {a: x._b.env.pin(x._shape[a]) for a in arrays}
    ends = {a: _from_end(i, sizes[a]) for a, i in arrays.items()}
    if mode == "clip":
        return update(x, _key(x.ndim, {a: _np_or_ew(j, np.clip, ew.clip)(j, 0, sizes[a] - 1)
                                       for a, j in ends.items()}), values, how, unique=unique)
    pad = x
    for a in arrays:
        head = (slice(None),) * a
        pad = st.concatenate([pad, st.zeros_like(st.getitem(pad, head + (slice(0, 1),)))], axis=a)
    ok = _in_bounds(arrays, sizes)
    if all(isinstance(i, np.ndarray) for i in arrays.values()):   # constants stay constants: update sees repeats
        moved = {a: np.where(ok, j, sizes[a]) for a, j in ends.items()}
    else:
        moved = {a: ew.where(ok, j, sizes[a]) for a, j in ends.items()}
    out = update(pad, _key(x.ndim, moved), values, how, unique=unique)
    return st.getitem(out, tuple(slice(0, sizes[a]) if a in arrays else slice(None) for a in range(x.ndim)))


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
