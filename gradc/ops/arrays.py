"""numpy's array-building and array-ordering functions, composed at trace time from the
structural primitives (slice, unslice, gather, scatter_add, iota, reshape,
broadcast_to, concatenate) and element-wise selects:

* matrix structure: ``diag``, ``diagonal`` (a gather of the k-th diagonal, of any
  two axes of any rank), ``trace``, ``triu``/``tril`` (a select on row and column
  numbers; a stack of matrices on its last two axes);
* joining: ``hstack``, ``vstack``, ``dstack``, ``column_stack``, ``atleast_*d``;
* repetition: ``tile`` and ``repeat`` (broadcast along a new axis, then merge it),
  ``repeat`` with per-element counts and ``pad`` with the index modes (edge, reflect,
  symmetric, wrap) as gathers of numpy's own index maps; ``pad`` mode constant places
  the array in zeros (unslice) and fills the border (the statistic modes and
  linear_ramp: ``ops/padding.py``);
* ordering: ``sort`` and ``argsort`` by ranks.  The rank of x[i] is the number of
  elements that sort before it (smaller, or equal and earlier: a stable sort; nan
  last, as numpy).  Each position scattered to its rank is the argsort (integers,
  exact); ``sort`` gathers x at it, so each element's bits are copied (-0.0 stays
  -0.0: numpy's stable sort bit for bit) and its gradient is the cotangent scattered
  back through the permutation.  Any axis of any rank: the axis is moved last and
  back.  The ranks are one op, ``sort_rank``: backend numpy computes it with numpy's
  stable argsort (O(n log n) time, O(n) memory); the native backends (llvm, c and
  ahead-of-time libraries) by a merge sort, floats, integers and bool alike
  (runtime/gradc.h's ``gradc_sort_rank_f64``, ``_i64``, ``_u64``, ...: O(n log n)
  time, a workspace row of n indices).  A renderer without it for a dtype (the JIT
  with a C extension built before integers had it) compares all pairs along the axis
  (``pairwise_ranks``: O(n^2) work in fused loops, O(n) memory).

Every gradient comes from the primitives' adjoints.  These functions fix the sizes of
the axes they index (a call with other sizes retraces).
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError, UnsupportedError
from . import elementwise as ew
from .bind import reduce_dtype
from .elementwise import convert, where
from .registry import Op, register
from .reduce import norm_axes, sum_
from .structure import broadcast_to, concatenate as _concatenate, reshape, reshape_sym


def _trace():
    from .. import tracer as trace
    return trace


def _eager(*xs):
    t = _trace()
    flat = []
    for x in xs:
        flat += list(x) if isinstance(x, (list, tuple)) else [x]
    return t.current() is None and not any(isinstance(x, t.Value) for x in flat)


def _val(x):
    return _trace().to_value(x)


def _iota(shape, axis):
    return _trace().bind("iota", shape=tuple(shape), axis=axis, dtype=np.dtype(np.int64))


def _pin(x, axis):
    return x._b.env.pin(x._shape[axis])


# ----------------------------------------------------------------------------- matrix structure
def _transpose(x, perm):
    perm = tuple(perm)
    return x if perm == tuple(range(x.ndim)) else _trace().bind("transpose", x, perm=perm)


def _lead_iotas(x, lead, rank):
    """For each of the first ``lead`` axes of ``x``, its index as an iota of rank
    ``rank`` (the axis's size on its own position, 1 elsewhere): a gather's or
    scatter's index on the axes it keeps."""
    return [_iota(tuple(x._shape[a] if j == a else 1 for j in range(rank)), a) for a in range(lead)]


def diagonal(a, offset=0, axis1=0, axis2=1):
    """numpy.diagonal on any rank: the ``offset``-th diagonal of the matrices spanned by
    ``axis1`` and ``axis2``, on a new last axis after the other axes (a gather; its
    adjoint scatters back)."""
    if _eager(a):
        return np.diagonal(a, offset, axis1, axis2)
    x = _val(a)
    if x.ndim < 2:
        raise ShapeError(f"diagonal: the array must have at least two axes, got rank {x.ndim}")
    a1, a2 = norm_axes(axis1, x.ndim)[0], norm_axes(axis2, x.ndim)[0]
    if a1 == a2:
        raise ShapeError(f"diagonal: axis1 and axis2 cannot be the same (both are axis {a1})")
    # the other axes first, then the two matrix axes: x[..., i, j]
    x = _transpose(x, [q for q in range(x.ndim) if q not in (a1, a2)] + [a1, a2])
    lead = x.ndim - 2
    n, m = _pin(x, lead), _pin(x, lead + 1)
    r0, c0 = max(-offset, 0), max(offset, 0)
    length = max(0, min(n - r0, m - c0))
    k = np.arange(length, dtype=np.int64).reshape((1,) * lead + (length,))
    from .structure import gather
    return gather(x, *_lead_iotas(x, lead, lead + 1), k + r0, k + c0)


def diag(v, k=0):
    """A vector's square matrix with v on the k-th diagonal, or a matrix's k-th diagonal."""
    if _eager(v):
        return np.diag(v, k)
    x = _val(v)
    if x.ndim == 2:
        return diagonal(x, k)
    if x.ndim != 1:
        raise ShapeError(f"diag: input must be 1-d or 2-d, got rank {x.ndim} (numpy's rule; "
                         "np.diagonal takes the diagonals of a stack)")
    n = _pin(x, 0)
    m = n + abs(k)
    if k:
        x = _trace().bind("unslice", x, index=((0, n, 1),), shape=(m,))
    rows, cols = _iota((m, 1), 0), _iota((1, m), 1)
    on = ew.equal(cols - rows, k)
    along = reshape_sym(x, (m, 1) if k >= 0 else (1, m))   # v[i] on row i (k >= 0) or column j
    return where(on, along, 0)


def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    """numpy.trace on any rank: the sums of the ``offset``-th diagonals (see diagonal)."""
    if _eager(a):
        return np.trace(a, offset, axis1, axis2, dtype)
    d = diagonal(a, offset, axis1, axis2)
    r = sum_(convert(d, reduce_dtype("sum", d.dtype)), axis=-1)
    return ew.astype(r, dtype) if dtype is not None else r


def _triangle(m, k, keep):
    """triu/tril of the matrices on the last two axes (a stack keeps its other axes)."""
    x = _val(m)
    if x.ndim == 0:
        raise ShapeError("triu/tril: the array must have at least one axis, got a 0-d array")
    if x.ndim == 1:
        x = broadcast_to(reshape_sym(x, (1, x._shape[0])), (x._shape[0], x._shape[0]))
    lead = (1,) * (x.ndim - 2)
    rows, cols = x._shape[-2], x._shape[-1]
    dist = _iota(lead + (1, cols), x.ndim - 1) - _iota(lead + (rows, 1), x.ndim - 2)   # column - row
    return where(keep(dist, k), x, 0)


def triu(m, k=0):
    """Zeros below the k-th diagonal."""
    return np.triu(m, k) if _eager(m) else _triangle(m, k, ew.greater_equal)


def tril(m, k=0):
    """Zeros above the k-th diagonal."""
    return np.tril(m, k) if _eager(m) else _triangle(m, k, ew.less_equal)


# ----------------------------------------------------------------------------- joining
def atleast_1d(x):
    if _eager(x):
        return np.atleast_1d(x)
    x = _val(x)
    return reshape_sym(x, (1,)) if x.ndim == 0 else x


def atleast_2d(x):
    if _eager(x):
        return np.atleast_2d(x)
    x = _val(x)
    return reshape_sym(x, (1,) * (2 - x.ndim) + x._shape) if x.ndim < 2 else x


def atleast_3d(x):
    """numpy's rule: (n,) -> (1, n, 1), (m, n) -> (m, n, 1)."""
    if _eager(x):
        return np.atleast_3d(x)
    x = _val(x)
    if x.ndim == 0:
        return reshape_sym(x, (1, 1, 1))
    if x.ndim == 1:
        return reshape_sym(x, (1, x._shape[0], 1))
    if x.ndim == 2:
        return reshape_sym(x, x._shape + (1,))
    return x


def _only_casting(kw, out, what):
    """numpy's ``casting=`` only validates a dtype conversion: accepted; ``out=`` would
    have the result written into an array, which a traced function cannot: refused, as
    is any other keyword (silently ignoring one could change the answer)."""
    unknown = sorted(set(kw) - {"casting"})
    if unknown:
        raise TypeError(f"{what}() got unexpected keyword arguments {unknown}")
    if out is not None:
        raise UnsupportedError(f"{what}: out= is not supported (use the returned array)")


def concatenate(arrays, axis=0, out=None, dtype=None, **kw):
    """numpy.concatenate; axis=None joins the flattened arrays."""
    _only_casting(kw, out, "concatenate")
    arrays = list(arrays)
    if _eager(arrays):
        return np.concatenate(arrays, axis=axis, dtype=dtype)
    if axis is None:
        arrays, axis = [reshape(_val(a), -1) for a in arrays], 0
    r = _concatenate(arrays, axis)
    return ew.astype(r, dtype) if dtype is not None else r


def _nested_leaves(x):
    if isinstance(x, list):
        for e in x:
            yield from _nested_leaves(e)
    else:
        yield x


def block(arrays):
    """numpy.block: nested lists of arrays joined, the innermost lists along the last
    axis, the lists around them along the one before, and so on."""
    leaves = list(_nested_leaves(arrays))
    if _eager(leaves):
        return np.block(arrays)

    def depth(x):
        return 1 + depth(x[0]) if isinstance(x, list) and x else 0
    d = depth(arrays)
    rank = max([d] + [np.ndim(x) if not isinstance(x, _trace().Value) else x.ndim for x in leaves])

    def join(x, level):
        if not isinstance(x, list):
            v = _val(x)
            return reshape_sym(v, (1,) * (rank - v.ndim) + v._shape) if v.ndim < rank else v
        if isinstance(x, list) and not x:
            raise ShapeError("block: an empty list")
        return concatenate([join(e, level + 1) for e in x], axis=rank - d + level)
    return join(arrays, 0)


def hstack(tup, dtype=None, **kw):
    _only_casting(kw, None, "hstack")
    if _eager(tup):
        return np.hstack(tup, dtype=dtype)
    xs = [atleast_1d(x) for x in tup]
    return concatenate(xs, 0 if xs[0].ndim == 1 else 1, dtype=dtype)


def vstack(tup, dtype=None, **kw):
    _only_casting(kw, None, "vstack")
    if _eager(tup):
        return np.vstack(tup, dtype=dtype)
    return concatenate([atleast_2d(x) for x in tup], 0, dtype=dtype)


def dstack(tup):
    if _eager(tup):
        return np.dstack(tup)
    return concatenate([atleast_3d(x) for x in tup], 2)


def column_stack(tup):
    if _eager(tup):
        return np.column_stack(tup)
    cols = []
    for x in tup:
        x = _val(x)
        cols.append(reshape_sym(x, (x._shape[0], 1)) if x.ndim == 1 else atleast_2d(x))
    return concatenate(cols, 1)


# ----------------------------------------------------------------------------- repetition
def _repeat_axis(x, axis, r, inner):
    """Each element (inner) or the whole axis (not inner) r times along axis, by
    broadcasting along a new size-r axis and merging it with the axis."""
    n = _pin(x, axis)
    shape = list(x._shape)
    new_at = axis + 1 if inner else axis
    expanded = reshape_sym(x, tuple(shape[:new_at]) + (1,) + tuple(shape[new_at:]))
    big = list(expanded._shape)
    big[new_at] = r
    y = broadcast_to(expanded, tuple(big))
    for a in range(x.ndim):
        if a != axis:
            _pin(x, a)
    out = shape[:axis] + [n * r] + shape[axis + 1:]
    return reshape(y, tuple(x._b.env.value(d) for d in out))


def tile(A, reps):
    """A repeated reps times along each axis (reps aligned to the last axes)."""
    if _eager(A):
        return np.tile(A, reps)
    x = _val(A)
    reps = (int(reps),) if np.ndim(reps) == 0 else tuple(int(r) for r in reps)
    if len(reps) > x.ndim:
        x = reshape_sym(x, (1,) * (len(reps) - x.ndim) + x._shape)
    reps = (1,) * (x.ndim - len(reps)) + reps
    for axis, r in enumerate(reps):
        if r != 1:
            x = _repeat_axis(x, axis, r, inner=False)
    return x


def repeat(a, repeats, axis=None):
    """Each element repeated (a count, or one count per element) along axis."""
    if _eager(a):
        return np.repeat(a, repeats, axis)
    x = _val(a)
    if axis is None:
        x, axis = reshape(x, -1), 0
    axis = norm_axes(axis, x.ndim)[0]
    if np.ndim(repeats) == 0:
        return _repeat_axis(x, axis, int(repeats), inner=True)
    counts = np.asarray(repeats)
    return _take(x, np.repeat(np.arange(_pin(x, axis)), counts), axis)


def _take(a, indices, axis):
    """x's slices at a 1-d integer index array along ``axis``: one gather."""
    from .structure import gather
    x = _val(a)
    if axis is None:
        x, axis = reshape(x, -1), 0
    axis = norm_axes(axis, x.ndim)[0]
    idx = _val(np.asarray(indices, np.int64) if not isinstance(indices, _trace().Value) else indices)
    if idx.ndim != 1:
        raise UnsupportedError("take: gradc takes a 1-d index array")
    full = []
    for k in range(x.ndim):
        shape = tuple(idx._shape[0] if j == k else 1 for j in range(x.ndim))
        full.append(reshape_sym(idx, shape) if k == axis else
                    _iota(tuple(x._shape[k] if j == k else 1 for j in range(x.ndim)), k))
    return gather(x, *full)


def _pad_widths(pad_width, ndim):
    w = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (ndim, 2))
    if (w < 0).any():
        raise ValueError("index can't contain negative values")
    return [tuple(int(v) for v in row) for row in w]


def pad(array, pad_width, mode="constant", **kw):
    """numpy.pad: modes constant (a scalar constant_values), edge, reflect, symmetric, wrap."""
    if _eager(array):
        return np.pad(array, pad_width, mode=mode, **kw)
    x = _val(array)
    widths = _pad_widths(pad_width, x.ndim)
    if mode == "constant":
        c = kw.pop("constant_values", 0)
        if kw or np.ndim(c) != 0:
            raise UnsupportedError("pad: gradc supports one scalar constant_values"
                                   + (f" (got {sorted(kw)})" if kw else ""))
        # (an axis not padded keeps its size a symbol; a padded one's grows by a number)
        padded = [b != 0 or e != 0 for b, e in widths]
        sizes = [_pin(x, a) if padded[a] else x._shape[a] for a in range(x.ndim)]
        shape = tuple(n + b + e if p else n for n, (b, e), p in zip(sizes, widths, padded))
        index = tuple((b, b + n, 1) if p else (0, None, 1) for n, (b, _), p in zip(sizes, widths, padded))
        if not any(padded):
            return x
        y = _trace().bind("unslice", x, index=index, shape=shape)
        if c == 0:
            return y
        inside = None
        for a, (n, (b, _)) in enumerate(zip(sizes, widths)):
            if not padded[a]:
                continue
            i = _iota(tuple(shape[a] if j == a else 1 for j in range(x.ndim)), a)
            ok = ew.logical_and(ew.greater_equal(i, b), ew.less(i, b + n))
            inside = ok if inside is None else ew.logical_and(inside, ok)
        return where(inside, y, c)
    if mode in ("edge", "reflect", "symmetric", "wrap"):
        if kw:
            raise UnsupportedError(f"pad: mode {mode!r} with {sorted(kw)} is not supported")
        for a, (b, e) in enumerate(widths):
            if b or e:
                # numpy's own index map of this mode (and its errors, e.g. for size 0)
                x = _take(x, np.pad(np.arange(_pin(x, a)), (b, e), mode=mode), a)
        return x
    raise UnsupportedError(f"pad: mode {mode!r} is not supported (constant, edge, reflect, "
                           "symmetric, wrap are)")


# ----------------------------------------------------------------------------- ordering
def pairwise_ranks(x):
    """Stable sort position of every element along the last axis, by comparing all pairs:
    op ``sort_rank`` where a renderer has no merge sort for the dtype (O(n^2) work in
    loops that keep O(n) memory: the comparisons fuse into the sum; ``gradc.backends.
    schedule.decompose``).  The native backends merge sort floats, integers and bool
    (``schedule.native_sort_rank``); this is the definition their ranks equal, and what
    the JIT falls back to with a C extension built before integers had the merge sort."""
    from .mathfuncs import isnan, logical_or
    n = x._shape[-1]
    lead = x._shape[:-1]
    xi = reshape_sym(x, lead + (n, 1))       # the element being ranked
    xj = reshape_sym(x, lead + (1, n))       # every element it is compared with
    before = ew.less(xj, xi)
    same = ew.equal(xj, xi)
    if x.dtype.kind == "f":
        nan_i, nan_j = isnan(xi), isnan(xj)
        before = logical_or(before, ew.logical_and(nan_i, ew.logical_not(nan_j)))
        same = logical_or(same, ew.logical_and(nan_i, nan_j))
    r = len(lead)
    earlier = ew.less(_iota((1,) * r + (1, n), r + 1), _iota((1,) * r + (n, 1), r))
    first = logical_or(before, ew.logical_and(same, earlier))
    return sum_(convert(first, np.int64), axis=r + 1)


def _sort_rank_np(x):
    """The ranks from numpy's stable argsort (nan last): O(n log n) time, O(n) memory,
    where the pairwise comparisons would hold n^2 booleans per row in numpy."""
    order = np.argsort(x, axis=-1, kind="stable")
    ranks = np.empty(x.shape, np.int64)
    np.put_along_axis(ranks, order, np.broadcast_to(np.arange(x.shape[-1], dtype=np.int64), x.shape), axis=-1)
    return ranks


def _sort_rank_batch(n, args, batched):
    from .bind import batch_all
    return _trace().bind("sort_rank", *batch_all(n, args, batched))


register(Op("sort_rank", "structure", lambda env, avals: (tuple(avals[0][0]), np.dtype(np.int64)),
            _sort_rank_np, vjp=lambda g, y, x: (None,), jvp=lambda ts, y, x: None,
            doc="the stable sort position of each element along the last axis (nan last; unsigned "
                "integers compare as unsigned): numpy's stable argsort on backend numpy, a merge sort "
                "of floats, integers and bool on the native backends; an integer, no derivative",
            batch=_sort_rank_batch, rule="an integer result ⇒ no gradient"))


def _by_rank(a, axis, take_values):
    """The stable sort along ``axis`` (any rank): the axis is moved last, ranked
    (op ``sort_rank``), and each position's index is scattered to its rank -- the
    argsort, the inverse permutation, exact in int64.  ``take_values``: the sorted
    values, a gather of x at that argsort (not x scattered into zeros by rank, where
    0.0 + -0.0 made every -0.0 a +0.0: a gather copies each element's bits); else the
    argsort.  Moved back to ``axis``."""
    x = _val(a)
    if axis is None:
        x, axis = reshape(x, -1), 0
    if x.ndim == 0:
        raise ShapeError("sort: a 0-d array has no axis to sort")
    axis = norm_axes(axis, x.ndim)[0]
    perm = [q for q in range(x.ndim) if q != axis] + [axis]
    x = _transpose(x, perm)
    t, lead = _trace(), _lead_iotas(x, x.ndim - 1, x.ndim)
    position = broadcast_to(_iota((1,) * (x.ndim - 1) + (x._shape[-1],), x.ndim - 1), x._shape)
    order = t.bind("scatter_add", position, *lead, t.bind("sort_rank", x), shape=x._shape)
    out = t.bind("gather", x, *lead, order) if take_values else order
    return _transpose(out, [int(q) for q in np.argsort(perm)])


def _sort_options(name, kw):
    """``stable`` (numpy 2's and JAX's; gradc's sorts are always stable, which also
    meets ``stable=False``) and ``descending`` (JAX's); anything else is numpy's
    TypeError, not a keyword silently dropped."""
    unknown = set(kw) - {"stable", "descending"}
    if unknown:
        raise TypeError(f"{name}() got an unexpected keyword argument {sorted(unknown)[0]!r}")
    return bool(kw.get("descending", False))


def _descending(a, axis, take_values, eager):
    """JAX's descending sort: the values the ascending sort's reversed; the indices of
    the reversed array's stable argsort, mapped back and reversed, so equal values keep
    their order (the lower index first), as ``jnp.argsort(descending=True)``."""
    from .axes import flip
    x = np.asarray(a) if eager else _val(a)
    if axis is None:
        x, axis = (x.reshape(-1) if eager else reshape(x, -1)), 0
    if eager:
        if take_values:
            return np.flip(np.sort(x, axis=axis, kind="stable"), axis)
        n = x.shape[axis]
        return np.flip(n - 1 - np.argsort(np.flip(x, axis), axis=axis, kind="stable"), axis)
    if take_values:
        return flip(sort(x, axis), axis)
    ax = norm_axes(axis, x.ndim)[0]
    from .reduce import max_
    last = max_(_iota(tuple(x._shape[a] if a == ax else 1 for a in range(x.ndim)), ax), ax, keepdims=True)
    return flip(ew.subtract(last, argsort(flip(x, ax), ax)), ax)     # (n - 1 - index, n symbolic)


def sort(a, axis=-1, kind=None, order=None, **kw):
    """Sorted copy along axis, stable (nan last; equal values, -0.0 and 0.0 among them,
    keep their order: numpy's ``kind="stable"`` bit for bit); differentiable through
    its permutation (a gather: the gradient scatters the cotangent back).
    ``descending=True`` (JAX's) reverses it."""
    if _sort_options("sort", kw):
        return _descending(a, axis, True, _eager(a))
    if _eager(a):       # stable whatever the kind, as the traced sort (numpy's default is not)
        return np.sort(a, axis=axis, kind="stable", order=order)
    x = _val(a)
    if x.dtype == np.bool_:
        return ew.astype(_by_rank(convert(x, np.int8), axis, True), np.bool_)
    return _by_rank(x, axis, True)


def argsort(a, axis=-1, kind=None, order=None, **kw):
    """Indices that sort a along axis; stable (ties keep their order) for every kind.
    ``descending=True`` (JAX's): the largest first, equal values in their order."""
    if _sort_options("argsort", kw):
        return _descending(a, axis, False, _eager(a))
    if _eager(a):       # stable whatever the kind, as the traced argsort (numpy's default is not)
        return np.argsort(a, axis=axis, kind="stable", order=order)
    x = _val(a)
    if x.dtype == np.bool_:
        x = convert(x, np.int8)
    return _by_rank(x, axis, False)
