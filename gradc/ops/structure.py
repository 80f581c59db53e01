"""Structure: reshape, broadcast_to, slicing (and its adjoint, unslice), concatenate,
gather by integer arrays (and its adjoint, scatter_add), iota; and the numpy-facing
helpers built on them (indexing, stack, take_along_axis, expand_dims, squeeze)."""
from __future__ import annotations

import numpy as np

from .bind import (batch_all, batch_expand, batch_rows, bind, convert, result_dtype, tracer,
                   unbroadcast)
from .registry import CONVERSIONS, Op, register
from ..errors import ShapeError, UnsupportedError
from ..graph import fmt_type
from ..shapes import common_ends, resolve


# ----------------------------------------------------------------------------- reshape
def _reshape_shape(env, avals, shape):
    (s, t), = avals
    a = [env.find(d) for d in s]
    b = [env.find(d) for d in shape]
    if sorted(map(str, (d for d in a if d != 1))) != sorted(map(str, (d for d in b if d != 1))):
        if not _merges_fixed_axes(a, b):
            raise ShapeError(f"cannot reshape {tuple(env.shown(d) for d in s)} to {tuple(env.shown(d) for d in shape)}")
    return tuple(b), t


def _merges_fixed_axes(a, b) -> bool:
    """Is reshaping ``a`` to ``b`` (sizes or symbols) a row-major reshape of fixed sizes
    between a common leading and trailing part (``(n, 5, 32) -> (n, 160)``: the symbols
    stay symbolic, each row of ``n`` maps to itself)?  Or of two empty shapes: a size
    of 0 on each side holds no element to map (``(0, 9, 0) -> (0, 0)``, which pairing
    the ends would read as 9 elements against 1)."""
    a, b = [d for d in a if d != 1], [d for d in b if d != 1]
    if 0 in a and 0 in b:
        return True
    p, q = common_ends(a, b)
    mid_a, mid_b = a[p:len(a) - q], b[p:len(b) - q]
    return (all(isinstance(d, int) for d in mid_a + mid_b)
            and np.prod(mid_a, dtype=np.int64) == np.prod(mid_b, dtype=np.int64))


register(Op("reshape", "structure", _reshape_shape,
            lambda x, shape, sizes=None: np.reshape(x, shape),
            vjp=lambda g, y, x, shape: (reshape_sym(g, x._shape),),
            jvp=lambda ts, y, x, shape: reshape_sym(ts[0], shape), rule="reshape ⇒ reshape back",
            batch=lambda n, args, batched, shape: bind("reshape", args[0], shape=(n,) + tuple(shape)),
            view=True))


def reshape_sym(x, shape):
    """Reshape to a symbolic shape (internal; sizes must match symbol for symbol)."""
    t = tracer()
    x = t.to_value(x)
    shape = tuple(x._b.env.find(d) for d in shape)
    if shape == x._shape:
        return x
    return t.bind("reshape", x, shape=shape)


def reshape(x, *shape):
    """numpy's reshape (one -1 allowed).  Sizes are kept symbolic when the reshape only
    adds or removes size-1 axes; otherwise the input's sizes are fixed (retrace on change)."""
    t = tracer()
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if not isinstance(x, t.Value):
        if t.current() is None:
            return np.reshape(x, shape)
        x = t.to_value(x)
    env = x._b.env
    ex = [env.value(d) for d in x._shape]
    total = int(np.prod(ex, dtype=np.int64))
    shape = [int(s) for s in shape]

    def refuse(why):     # as a shape rule's errors read: the op, its operand and the user's line
        src = t.user_source()
        raise ShapeError(f"reshape({fmt_type(tuple(env.shown(d) for d in x._shape), x.dtype)}): {why}"
                         + (f"  [at {src}]" if src else ""))
    if shape.count(-1) > 1:
        refuse("can only specify one unknown dimension (-1)")
    if -1 in shape:
        known = int(np.prod([s for s in shape if s != -1], dtype=np.int64))
        if known == 0 or total % known:
            refuse(f"cannot reshape array of size {total} into shape {tuple(shape)}")
        shape[shape.index(-1)] = total // known
    if int(np.prod(shape, dtype=np.int64)) != total:
        refuse(f"cannot reshape array of size {total} into shape {tuple(shape)}")
    src = [d for d in x._shape if d != 1]
    if [s for s in shape if s != 1] == [env.value(d) for d in src]:
        it = iter(src)
        return reshape_sym(x, tuple(1 if s == 1 else next(it) for s in shape))
    for d in x._shape:
        env.pin(d)
    return reshape_sym(x, tuple(shape))


def expand_dims(x, axis):
    x = tracer().to_value(x)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    nd = x.ndim + len(axes)
    axes = sorted(a % nd for a in axes)
    shape = list(x._shape)
    for a in axes:
        shape.insert(a, 1)
    return reshape_sym(x, tuple(shape))


def squeeze(x, axis=None):
    x = tracer().to_value(x)
    env = x._b.env
    if axis is None:
        axes = [i for i, d in enumerate(x._shape) if env.find(d) == 1]
    else:
        axes = [a % x.ndim for a in ((axis,) if isinstance(axis, int) else axis)]
        for a in axes:
            if env.find(x._shape[a]) != 1:
                raise ShapeError(f"squeeze: axis {a} has size {env.shown(x._shape[a])}, not 1")
    return reshape_sym(x, tuple(d for i, d in enumerate(x._shape) if i not in axes))


# ----------------------------------------------------------------------------- broadcast_to
def _bcast_shape(env, avals, shape):
    (s, t), = avals
    if len(s) > len(shape):
        raise ShapeError(f"cannot broadcast rank {len(s)} to rank {len(shape)}")
    out = env.broadcast([s, tuple(shape)], "broadcast_to")
    if len(out) != len(shape) or any(env.find(a) != env.find(b) for a, b in zip(out, shape)):
        raise ShapeError(f"cannot broadcast {tuple(env.shown(d) for d in s)} to {tuple(env.shown(d) for d in shape)}")
    return tuple(shape), t


register(Op("broadcast_to", "structure", _bcast_shape,
            lambda x, shape: np.broadcast_to(x, shape),
            vjp=lambda g, y, x, shape: (unbroadcast(g, x._shape),),
            jvp=lambda ts, y, x, shape: broadcast_to(ts[0], shape),
            doc="scalar expansion; its adjoint sums over the expanded axes", rule="scalar expansion ⇒ sum",
            batch=lambda n, args, batched, shape: bind("broadcast_to", batch_expand(args[0], len(shape)),
                                                       shape=(n,) + tuple(shape)),
            view=True))


def broadcast_to(x, shape):
    t = tracer()
    x = t.to_value(x)
    env = x._b.env
    shape = tuple(env.find(d) for d in shape)
    if x._shape == shape:
        return x
    return t.bind("broadcast_to", x, shape=shape)


# ----------------------------------------------------------------------------- slicing
def _slice_len(start, stop, step):
    return len(range(start, stop, step))


def _slice_shape(env, avals, index):
    (s, t), = avals
    out = []
    for d, (a, b, c) in zip(s, index):
        out.append(d if b is None and a == 0 and c == 1 else _slice_len(a, -1 if b is None else b, c))
    return tuple(out), t


def _np_index(index):
    return tuple(slice(a, b, c) for a, b, c in index)


register(Op("slice", "structure", _slice_shape, lambda x, index: x[_np_index(index)],
            vjp=lambda g, y, x, index: (_bind_unslice(g, index, x._shape),),
            jvp=lambda ts, y, x, index: bind("slice", ts[0], index=index),
            doc="x[start:stop:step] per axis (static bounds)", rule="slice ⇒ zero-padded gradient",
            batch=lambda n, args, batched, index: bind("slice", args[0], index=((0, None, 1),) + tuple(index)),
            view=True))


def _unslice_np(g, index, shape):
    z = np.zeros(shape, dtype=g.dtype)
    z[_np_index(index)] = g
    return z


register(Op("unslice", "structure", lambda env, avals, index, shape: (tuple(shape), avals[0][1]),
            _unslice_np,
            vjp=lambda g, y, x, index, shape: (bind("slice", g, index=index),),
            jvp=lambda ts, y, x, index, shape: _bind_unslice(ts[0], index, shape),
            doc="zeros of `shape` with the argument placed at index: the adjoint of slice",
            rule="padding ⇒ slice",
            batch=lambda n, args, batched, index, shape: _bind_unslice(args[0], ((0, None, 1),) + tuple(index),
                                                                       (n,) + tuple(shape))))


def _bind_unslice(g, index, shape):
    return bind("unslice", g, index=index, shape=tuple(shape))


def _norm_slice(env, d, sl: slice):
    """Static (start, stop, step) for one axis; keeps a symbolic size when possible."""
    step = 1 if sl.step is None else int(sl.step)
    if step == 0:
        raise ShapeError("slice step cannot be zero")
    start, stop = sl.start, sl.stop
    if step == 1 and (start is None or start == 0) and stop is None:
        return (0, None, 1)
    if step > 0 and (start is None or start >= 0) and stop is not None and stop >= 0 \
            and isinstance(env.find(d), str) and env.value(d) >= stop:
        env.at_least(d, int(stop))
        return (0 if start is None else int(start), int(stop), step)
    n = env.pin(d)
    a, b, c = slice(start, stop, step).indices(n)
    if c < 0 and b < 0:
        b = None
    return (a, b, c)


def getitem(x, key):
    """numpy indexing: ints, slices (negative steps too), None, Ellipsis; integer-array
    (advanced) indexing on any axes (``S[rows, labels]``, ``x[:, idx]``, ``v[idx]``)."""
    t = tracer()
    x = t.to_value(x)
    if not isinstance(key, tuple):
        key = (key,)
    key = _constant_masks_as_indices(x, key)
    if any(_is_index_array(k) for k in key):
        if any(k is None for k in key):
            x, key = _newaxes_as_unit_axes(x, key)
        return _advanced(x, key)
    index, shape = basic_index(x, key)
    y = x
    if any(ix != (0, None, 1) for ix in index):
        y = t.bind("slice", x, index=index)
    return reshape_sym(y, shape(y))


def basic_index(x, key: tuple):
    """A basic index (ints, slices, None, Ellipsis) of ``x`` as the static ``slice``
    bounds per axis, and ``shape(sliced)``: the result's shape (ints drop their axis,
    None adds one) from the sliced value's."""
    if sum(k is Ellipsis for k in key) > 1:
        raise ShapeError("an index can only have a single ellipsis")
    n_real = sum(1 for k in key if k is not None and k is not Ellipsis)
    if n_real > x.ndim:
        raise ShapeError(f"too many indices: {n_real} for an array of rank {x.ndim}")
    if Ellipsis in key:
        i = key.index(Ellipsis)
        key = key[:i] + (slice(None),) * (x.ndim - n_real) + key[i + 1:]
        n_real = x.ndim  # the ellipsis already filled the missing axes
    key = key + (slice(None),) * (x.ndim - n_real)
    env = x._b.env
    index, out_shape_plan, axis = [], [], 0
    for k in key:
        if k is None:
            out_shape_plan.append(("new",))
            continue
        d = x._shape[axis]
        if isinstance(k, (int, np.integer)) and not isinstance(k, bool):
            k = int(k)
            n = env.value(d)
            if not -n <= k < n:
                raise IndexError(f"index {k} is out of bounds for axis {axis} with size {n}")
            if k >= 0 and isinstance(env.find(d), str):
                env.at_least(d, k + 1)
                index.append((k, k + 1, 1))
            else:
                kk = k % env.pin(d)
                index.append((kk, kk + 1, 1))
            out_shape_plan.append(("drop",))
        elif isinstance(k, slice):
            index.append(_norm_slice(env, d, k))
            out_shape_plan.append(("keep", axis))
        else:
            raise UnsupportedError(f"unsupported index {k!r} of type {type(k).__name__} "
                                   "(gradc supports ints, slices, None, ... and integer arrays)")
        axis += 1

    def shape(y):
        ys = y._shape
        return tuple(1 if p[0] == "new" else ys[p[1]] for p in out_shape_plan if p[0] != "drop")
    return tuple(index), shape


def _is_constant_mask(k):
    return isinstance(k, (list, np.ndarray)) and np.asarray(k).dtype == bool and np.ndim(k) > 0


def _constant_masks_as_indices(x, key: tuple) -> tuple:
    """A constant boolean mask (a numpy array or list, not a traced value) selects a
    shape known while tracing: numpy's ``x[mask]`` is ``x[mask.nonzero()]``, one integer
    array per axis of the mask, which must match the axes it covers."""
    if not any(_is_constant_mask(k) for k in key):
        return key
    width = [np.ndim(k) if _is_constant_mask(k) else 0 if k is None or k is Ellipsis else 1 for k in key]
    ell = next((i for i, k in enumerate(key) if k is Ellipsis), None)
    out = []
    for i, k in enumerate(key):
        if not _is_constant_mask(k):
            out.append(k)
            continue
        m = np.asarray(k)
        first = sum(width[:i]) if ell is None or i < ell else x.ndim - sum(width[i:])
        sizes = tuple(x._b.env.pin(d) for d in x._shape[first:first + m.ndim])
        if first < 0 or tuple(sizes) != m.shape:
            raise IndexError(f"boolean index of shape {m.shape} does not match the indexed array's "
                             f"axes {first}..{first + m.ndim - 1} of shape {tuple(sizes)}")
        out.extend(np.nonzero(m))
    return tuple(out)


def _newaxes_as_unit_axes(x, key: tuple):
    """None beside index arrays: a size-1 axis of ``x`` indexed by a full slice places
    its axis exactly as numpy places a newaxis (between or around the index arrays), so
    insert one per None and index those with ``:``."""
    if sum(k is Ellipsis for k in key) > 1:
        raise ShapeError("an index can only have a single ellipsis")
    n_real = sum(1 for k in key if k is not None and k is not Ellipsis)
    if n_real > x.ndim:
        raise ShapeError(f"too many indices: {n_real} for an array of rank {x.ndim}")
    if any(k is Ellipsis for k in key):     # (identity: == on an index array is element-wise)
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:i] + (slice(None),) * (x.ndim - n_real) + key[i + 1:]
    key = tuple(key) + (slice(None),) * (x.ndim - sum(1 for k in key if k is not None))
    shape, axis = [], 0
    for k in key:
        if k is None:
            shape.append(1)
        else:
            shape.append(x._shape[axis])
            axis += 1
    return reshape_sym(x, tuple(shape)), tuple(slice(None) if k is None else k for k in key)


def _is_index_array(k):
    t = tracer()
    if isinstance(k, t.Value):
        if k.dtype == np.bool_:
            raise UnsupportedError("boolean mask indexing gives a data-dependent shape; "
                                   "use gradc.where(mask, x, 0) instead")
        return True
    if isinstance(k, (list, np.ndarray)):
        a = np.asarray(k)
        if a.dtype == bool:
            raise UnsupportedError("boolean mask indexing gives a data-dependent shape; "
                                   "use gradc.where(mask, x, 0) instead")
        return True
    return False


def _advanced(x, key):
    """numpy's advanced indexing: integer arrays (and ints beside them) on any axes,
    full or partial slices and an ellipsis on the others.  The index arrays broadcast
    together; their shape replaces the indexed axes where those are adjacent, and goes
    first where they are not (numpy's rule).  One gather: each other axis is indexed by
    an iota."""
    pre, key = advanced_key(x, key)
    if pre is not None:
        x = getitem(x, pre)
    return bind("gather", x, *advanced_index(x, key))


def advanced_key(x, key: tuple):
    """``(pre, key)``: an advanced index checked and split in two steps, as gather
    takes it.  ``pre`` is the basic index of the partial slices (None when there are
    none), applied first (it keeps every axis); ``key`` then has one entry per axis of
    ``x[pre]``: an index array, an int, or ``slice(None)``."""
    if any(k is None for k in key):
        raise UnsupportedError("None (newaxis) beside integer-array indices is not supported: "
                               "index first, then add the axis with expand_dims")
    if sum(k is Ellipsis for k in key) > 1:
        raise ShapeError("an index can only have a single ellipsis")
    n_real = sum(1 for k in key if k is not Ellipsis)
    if n_real > x.ndim:
        raise ShapeError(f"too many indices: {n_real} for an array of rank {x.ndim}")
    if any(k is Ellipsis for k in key):     # (identity: == on an index array is element-wise)
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:i] + (slice(None),) * (x.ndim - n_real) + key[i + 1:]
    key = tuple(key) + (slice(None),) * (x.ndim - len(key))
    pre = None
    if any(isinstance(k, slice) and k != slice(None) for k in key):
        pre = tuple(k if isinstance(k, slice) else slice(None) for k in key)
        key = tuple(slice(None) if isinstance(k, slice) else k for k in key)
    return pre, key


def advanced_index(x, key: tuple) -> list:
    """One int64 index per axis of ``x`` for gather (and its adjoint, scatter_add), from
    a ``key`` as :func:`advanced_key` leaves it."""
    t = tracer()
    adv = [a for a, k in enumerate(key) if _is_index_array(k) or isinstance(k, (int, np.integer))]
    idx = {a: _index_value(key[a]) for a in adv}
    b = x._b.env.broadcast([idx[a]._shape for a in adv], "index arrays")
    rest = [a for a in range(x.ndim) if a not in adv]
    adjacent = adv == list(range(adv[0], adv[-1] + 1))
    before = [a for a in rest if a < adv[0]] if adjacent else []
    after = [a for a in rest if a not in before]
    rank = len(before) + len(b) + len(after)
    full = []
    for a in range(x.ndim):
        if a in idx:              # its dims go to the broadcast slot
            v = idx[a]
            shape = (1,) * len(before) + (1,) * (len(b) - v.ndim) + tuple(v._shape) + (1,) * len(after)
            full.append(reshape_sym(v, shape))
        else:                     # an iota along its own output position
            pos = before.index(a) if a in before else len(before) + len(b) + after.index(a)
            shape = tuple(x._shape[a] if q == pos else 1 for q in range(rank))
            full.append(t.bind("iota", shape=shape, axis=pos, dtype=np.dtype(np.int64)))
    return full


# ----------------------------------------------------------------------------- gather
def _gather_shape(env, avals):
    (s, t), *idx = avals
    if len(idx) != len(s):
        raise ShapeError(f"gather needs {len(s)} index arrays, got {len(idx)}")
    for _, it in idx:
        if np.dtype(it).kind not in "iu":
            raise ShapeError(f"index arrays must be integers, got {it}")
    return env.broadcast([i for i, _ in idx], "gather indices"), t


def _gather_np(x, *idx):
    return x[tuple(idx)]


def _scatter_np(g, *idx, shape):
    z = np.zeros(shape, dtype=g.dtype)
    np.add.at(z, tuple(np.broadcast_arrays(*idx)), g)
    return z


def _gather_batch(n, args, batched):
    """x[i0, i1, ...] per example: batched indices get the examples' common rank; a
    batched x is read at one more index, the example's row."""
    (x, *idx), (bx, *bidx) = args, batched
    rank = max(i.ndim - int(b) for i, b in zip(idx, bidx))
    idx = [batch_expand(i, rank) if b else i for i, b in zip(idx, bidx)]
    return bind("gather", x, batch_rows(n, rank), *idx) if bx else bind("gather", x, *idx)


def _scatter_batch(n, args, batched, shape):
    """Each example scatters into its own row of a ``(n, *shape)`` result."""
    (u, *idx), (bu, *bidx) = args, batched
    rank = max(i.ndim - int(b) for i, b in zip(idx, bidx))
    idx = [batch_expand(i, rank) if b else i for i, b in zip(idx, bidx)]
    idx = [batch_rows(n, rank)] + idx
    # the values at every index position: the native scatter reads u as the indices' shape
    full = u._b.env.broadcast([i._shape for i in idx], "scatter indices")
    u = batch_expand(u, rank) if bu else u
    if u._shape != full:
        u = bind("broadcast_to", u, shape=full)
    return bind("scatter_add", u, *idx, shape=(n,) + tuple(shape))


register(Op("gather", "structure", _gather_shape, _gather_np,
            vjp=lambda g, y, x, *idx: (bind("scatter_add", g, *idx, shape=x._shape),) + (None,) * len(idx),
            jvp=lambda ts, y, x, *idx: bind("gather", ts[0], *idx),
            doc="x[i0, i1, ...] with integer index arrays (broadcast together)",
            rule="indexing ⇒ scatter (one-hot)", batch=_gather_batch))
register(Op("scatter_add", "structure",
            lambda env, avals, shape: (tuple(shape), avals[0][1]), _scatter_np,
            vjp=lambda g, y, u, *idx, shape: (bind("gather", g, *idx),) + (None,) * len(idx),
            jvp=lambda ts, y, u, *idx, shape: bind("scatter_add", ts[0], *idx, shape=shape),
            doc="zeros of `shape`, adding u at the indices: the adjoint of gather", root=True,
            batch=_scatter_batch))


def _index_value(k):
    t = tracer()
    if isinstance(k, t.Value):
        if k.dtype.kind not in "iu":
            raise k._index_dtype_error()
        return k if k.dtype == np.int64 else t.bind("cast", k, dtype=np.dtype(np.int64))
    a = np.asarray(k)
    if a.dtype.kind not in "iu":
        raise UnsupportedError(f"index arrays must be integers, got {a.dtype}")
    return t.to_value(a.astype(np.int64))


def gather(x, *idx):
    t = tracer()
    x = t.to_value(x)
    vals = [_index_value(k) for k in idx]
    return t.bind("gather", x, *vals)


def take_along_axis(x, indices, axis):
    """numpy.take_along_axis, differentiable in x (its adjoint is a scatter-add; with one
    index per fiber, as a picked class, a select that fuses into its consumer)."""
    t = tracer()
    if not isinstance(x, t.Value) and not isinstance(indices, t.Value) and t.current() is None:
        return np.take_along_axis(np.asarray(x), np.asarray(indices), axis)
    x = t.to_value(x)
    return t.bind("gather", x, *along_axis_index(x, indices, axis, "take_along_axis"))


def along_axis_index(x, indices, axis, what):
    """The index arrays that pick ``indices`` along ``axis`` of ``x`` and every position
    along the other axes (an iota each): take_along_axis's and put_along_axis's."""
    t = tracer()
    idx = _index_value(indices)
    if idx.ndim != x.ndim:
        raise ShapeError(f"{what}: indices have rank {idx.ndim}, x has rank {x.ndim}")
    axis = axis % x.ndim
    full = []
    for a in range(x.ndim):
        if a == axis:
            full.append(idx)
        else:
            shp = tuple(x._shape[a] if b == a else 1 for b in range(x.ndim))
            full.append(t.bind("iota", shape=shp, axis=a, dtype=np.dtype(np.int64)))
    return full


def _iota_np(shape, axis, dtype):
    shp = [1] * len(shape)
    shp[axis] = shape[axis]
    return np.broadcast_to(np.arange(shape[axis], dtype=dtype).reshape(shp), shape)


register(Op("iota", "source", lambda env, avals, shape, axis, dtype: (tuple(shape), np.dtype(dtype)),
            _iota_np, doc="0, 1, 2, ... along axis (e.g. the row numbers of a gather)"))


def arange_like(x, axis=0):
    """0..n-1 for n = x.shape[axis], kept symbolic (unlike np.arange(x.shape[0]))."""
    t = tracer()
    x = t.to_value(x)
    return t.bind("iota", shape=(x._shape[axis],), axis=0, dtype=np.dtype(np.int64))


# ----------------------------------------------------------------------------- concatenate
def _concat_shape(env, avals, axis):
    shapes = [s for s, _ in avals]
    r = len(shapes[0])
    if any(len(s) != r for s in shapes):
        raise ShapeError("concatenate: all arrays must have the same rank")
    out = list(shapes[0])
    for s in shapes[1:]:
        for i in range(r):
            if i != axis:
                out[i] = env.equal(out[i], s[i], "concatenate")
    out[axis] = int(sum(env.value(s[axis]) for s in shapes))
    return tuple(out), avals[0][1]


def _concat_vjp(g, y, *xs, axis):
    outs, start = [], 0
    for x in xs:
        n = x._b.env.value(x._shape[axis])
        index = tuple((start, start + n, 1) if a == axis else (0, None, 1) for a in range(x.ndim))
        outs.append(bind("slice", g, index=index))
        start += n
    return tuple(outs)


def _concat_jvp(ts, y, *xs, axis):
    parts = [t if t is not None else zeros_like(x) for t, x in zip(ts, xs)]
    return bind("concatenate", *parts, axis=axis)


register(Op("concatenate", "structure", _concat_shape,
            lambda *xs, axis: np.concatenate(xs, axis=axis), vjp=_concat_vjp, jvp=_concat_jvp,
            rule="concatenation ⇒ slices",
            batch=lambda n, args, batched, axis: bind("concatenate", *batch_all(n, args, batched), axis=axis + 1)))


def concatenate(xs, axis=0):
    t = tracer()
    xs = list(xs)
    if not any(isinstance(x, t.Value) for x in xs) and t.current() is None:
        return np.concatenate(xs, axis=axis)
    dt = result_dtype(xs, float_result=False)
    vals = [convert(x, dt) for x in xs]
    if any(v.ndim == 0 for v in vals):
        raise ShapeError("zero-dimensional arrays cannot be concatenated")
    axis = axis % vals[0].ndim
    for v in vals:
        v._b.env.pin(v._shape[axis])
    return t.bind("concatenate", *vals, axis=axis)


def stack(xs, axis=0):
    t = tracer()
    xs = list(xs)
    if not xs:
        raise ShapeError("need at least one array to stack")
    if not any(isinstance(x, t.Value) for x in xs) and t.current() is None:
        return np.stack(xs, axis=axis)
    vals = [t.to_value(x) for x in xs]
    nd = vals[0].ndim + 1
    return concatenate([expand_dims(v, axis % nd) for v in vals], axis=axis % nd)


def stack_nested(x):
    """``array([[a, b], [c, d]])`` of traced scalars/arrays.  Elements of different
    shapes (a list of parameters such as ``[W, b]``) cannot be stacked: a ShapeError
    says so and advises taking the elements apart (the list is a pytree)."""
    t = tracer()
    if not isinstance(x, (list, tuple)):
        return t.to_value(x)
    vals = [stack_nested(e) for e in x]
    env = vals[0]._b.env if vals else None
    if len({tuple(env.value(d) for d in v._shape) for v in vals}) > 1:   # sizes, not symbols
        shown = ", ".join(f"[{k}] {fmt_type(tuple(env.shown(d) for d in v._shape), v.dtype)}"
                          for k, v in enumerate(vals[:4])) + (", ..." if len(vals) > 4 else "")
        src = t.user_source()
        raise ShapeError(
            f"a {type(x).__name__} of arrays of different shapes ({shown}) is used as one array, "
            "and numpy cannot stack it. If it holds parameters, it is a pytree: take its "
            "elements apart (W, b = params) or index them (params[0]) instead of passing the "
            "whole list to a numpy function" + (f"  [at {src}]" if src else ""))
    return stack(vals)


CONVERSIONS["nested_list"] = stack_nested


# ----------------------------------------------------------------------------- constructors
def full_like(x, value, dtype=None, order="K", subok=True, shape=None):
    """numpy.full_like; the fill value may be traced (it is broadcast)."""
    t = tracer()
    if not isinstance(x, t.Value) and not isinstance(value, t.Value):
        return np.full_like(x, value, dtype=dtype, shape=shape)
    dt = np.dtype(dtype or getattr(x, "dtype", None) or np.float64)
    if isinstance(value, t.Value):
        v = convert(value, dt)
    else:
        v = t.to_value(np.asarray(value, dtype=dt))
    if shape is not None:
        return broadcast_to(v, (shape,) if isinstance(shape, int) else tuple(shape))
    return broadcast_to(v, t.to_value(x)._shape if isinstance(x, t.Value) else np.shape(x))


def zeros_like(x, dtype=None, order="K", subok=True, shape=None):
    return full_like(x, 0, dtype, shape=shape)


def ones_like(x, dtype=None, order="K", subok=True, shape=None):
    return full_like(x, 1, dtype, shape=shape)
