"""jax.lax's array ops (``gradc.lax`` re-exports them): padding, slicing (static and
dynamic), ``dot_general``, the shape ops and the element-wise names, with jax.lax's
signatures and semantics (convolution and windowed reductions: gradc/lax_windows.py).

Each is composed at trace time from gradc's primitives, so it differentiates through
their rules and runs on every backend; outside a trace it computes with numpy:

* ``pad``: interior padding is the ``unslice`` primitive with a step (the adjoint of a
  strided slice), negative padding a slice of the result;
* ``dynamic_slice`` and friends: concrete starts are Python slices; traced starts are
  clamped as JAX clamps them and become a gather (and the updates a masked select).
"""
from __future__ import annotations

import builtins
import operator

import numpy as np

from . import numpy as gnp
from .errors import ArgumentError, ShapeError
from .scipy import special as _special
from .tracer import Value, bind as _bind, current as _current, to_value as _to_value

_slice, _max, _min = builtins.slice, builtins.max, builtins.min


def _traced(*xs):
    return any(isinstance(x, Value) for x in xs)


def _shape(x):
    return tuple(x.shape) if isinstance(x, Value) else np.shape(x)


def _eager(*xs):
    """No trace running and every operand concrete: numpy computes."""
    return _current() is None and not _traced(*xs)


def _squeeze(x, axes):
    return np.squeeze(x, axes) if _eager(x) else gnp.squeeze(x, axes)


def _expand_dims(x, axes):
    return np.expand_dims(x, axes) if _eager(x) else gnp.expand_dims(x, axes)


def _ints(seq, n, what):
    """A sequence of ``n`` Python ints (``None``: ones)."""
    if seq is None:
        return (1,) * n
    try:
        out = tuple(int(s) for s in seq)
    except TypeError:
        raise ArgumentError(f"{what}: expected a sequence of {n} ints, got {seq!r}") from None
    if len(out) != n:
        raise ArgumentError(f"{what}: expected {n} values (one per dimension), got {len(out)}: {seq!r}")
    return out


def axis_index(axis, ndim, what, word="axis"):
    """``axis`` (an int in [-ndim, ndim)) as a non-negative axis; else an ArgumentError
    naming ``what`` and the parameter (``word``: jax.lax's sort says dimension)."""
    try:
        a = operator.index(axis)
    except TypeError:
        raise ArgumentError(f"{what}: {word} must be an int, got {axis!r}") from None
    if not -ndim <= a < ndim:
        raise ArgumentError(f"{what}: {word} {axis} is out of range for an operand of rank {ndim}")
    return a % ndim


# ----------------------------------------------------------------------------- pad, slice
def pad(operand, padding_value, padding_config):
    """``jax.lax.pad``: ``padding_config`` has one ``(low, high, interior)`` per axis;
    ``interior`` zeros-worth of ``padding_value`` go between neighbouring elements, and
    a negative ``low``/``high`` removes elements from that end."""
    shape = _shape(operand)
    config = [tuple(int(v) for v in c) for c in padding_config]
    if len(config) != len(shape) or any(len(c) != 3 for c in config):
        raise ArgumentError(f"pad: padding_config needs one (low, high, interior) per axis of the operand "
                            f"(rank {len(shape)}), got {padding_config!r}")
    if any(c[2] < 0 for c in config):
        raise ArgumentError(f"pad: interior padding must be >= 0, got {padding_config!r}")
    grown = [n + _max(lo, 0) + _max(hi, 0) + _max(n - 1, 0) * it for n, (lo, hi, it) in zip(shape, config)]
    index = tuple((_max(lo, 0), _max(lo, 0) + ((n - 1) * (it + 1) + 1 if n else 0), it + 1)
                  for n, (lo, hi, it) in zip(shape, config))
    inside = np.zeros(grown, dtype=bool)
    inside[tuple(_slice(*i) for i in index)] = True
    if _eager(operand, padding_value):
        y = np.full(grown, padding_value, dtype=np.result_type(operand))
        y[tuple(_slice(*i) for i in index)] = operand
    else:
        x = _to_value(operand)
        y = _bind("unslice", x, index=index, shape=tuple(grown)) if tuple(grown) != shape else x
        if isinstance(padding_value, Value) or float(padding_value) != 0.0:
            y = gnp.where(inside, y, gnp.astype(padding_value, y.dtype))
    crop = tuple(_slice(-lo if lo < 0 else 0, g + hi if hi < 0 else g) for g, (lo, hi, _) in zip(grown, config))
    return y[crop] if any(lo < 0 or hi < 0 for lo, hi, _ in config) else y


def slice(operand, start_indices, limit_indices, strides=None):  # noqa: A001  (jax.lax's name)
    """``jax.lax.slice``: ``operand[start:limit:stride]`` on every axis."""
    n = len(_shape(operand))
    start, limit = _ints(start_indices, n, "slice's start_indices"), _ints(limit_indices, n, "slice's limit_indices")
    step = _ints(strides, n, "slice's strides")
    for a, (b, e, d) in enumerate(zip(start, limit, _shape(operand))):
        if not 0 <= b <= e <= d:
            raise ArgumentError(f"slice: axis {a} needs 0 <= start <= limit <= {d}, got start {b}, limit {e}")
    return operand[tuple(_slice(b, e, s) for b, e, s in zip(start, limit, step))]


def slice_in_dim(operand, start_index, limit_index, stride=1, axis=0):
    """``jax.lax.slice_in_dim``: ``operand[..., start:limit:stride, ...]`` on ``axis``."""
    shape = _shape(operand)
    axis = axis % len(shape)
    b, e, _ = _slice(start_index, limit_index).indices(shape[axis])
    start, limit, strides = [0] * len(shape), list(shape), [1] * len(shape)
    start[axis], limit[axis], strides[axis] = b, _max(e, b), stride
    return slice(operand, start, limit, strides)


def index_in_dim(operand, index, axis=0, keepdims=True):
    """``jax.lax.index_in_dim``: element ``index`` of ``axis`` (negative counts from the end)."""
    shape = _shape(operand)
    axis = axis % len(shape)
    i = int(index) + (shape[axis] if int(index) < 0 else 0)
    if not 0 <= i < shape[axis]:
        raise ArgumentError(f"index_in_dim: index {index} is out of bounds for axis {axis} of size {shape[axis]}")
    y = slice_in_dim(operand, i, i + 1, 1, axis)
    return y if keepdims else _squeeze(y, axis)


# ----------------------------------------------------------------------------- dynamic slicing
def _starts(start_indices, shape, sizes, negative, what):
    """Per axis: the clamped start, a Python int when it is concrete, else a traced int."""
    n = len(shape)
    if isinstance(start_indices, Value):
        if start_indices.ndim != 1 or start_indices.shape[0] != n:
            raise ArgumentError(f"{what}: start_indices must hold {n} indices, got shape {start_indices.shape}")
        start_indices = [start_indices[a] for a in range(n)]
    elif isinstance(start_indices, np.ndarray):
        start_indices = list(start_indices.reshape(-1)) if start_indices.ndim == 1 else [start_indices]
    else:
        start_indices = list(start_indices)
    if len(start_indices) != n:
        raise ArgumentError(f"{what}: start_indices must hold {n} indices (one per axis), got {len(start_indices)}")
    neg = [negative] * n if isinstance(negative, bool) else list(negative)
    out = []
    for a, (s, d, k) in enumerate(zip(start_indices, shape, sizes)):
        if not 0 <= k <= d:
            raise ArgumentError(f"{what}: slice size {k} of axis {a} must be between 0 and the axis size {d}")
        if isinstance(s, Value):
            if s.dtype.kind not in "iu":
                raise ArgumentError(f"{what}: start index {a} must be an integer, got {s.dtype}")
            if s.ndim != 0:
                raise ArgumentError(f"{what}: start index {a} must be a scalar, got shape {s.shape}")
            if neg[a]:
                s = gnp.where(s < 0, s + d, s)
            out.append(gnp.clip(s, 0, d - k))      # JAX clamps so the slice stays in bounds
        else:
            if np.asarray(s).dtype.kind not in "iu":
                raise ArgumentError(f"{what}: start index {a} must be an integer, got {s!r}")
            s = int(s)
            s = s + d if neg[a] and s < 0 else s
            out.append(_min(_max(s, 0), d - k))
    return out


def dynamic_slice(operand, start_indices, slice_sizes, *, allow_negative_indices=True):
    """``jax.lax.dynamic_slice``: the block of ``slice_sizes`` at ``start_indices`` (a
    negative start counts from the end; starts are clamped so the block is in bounds).
    Traced starts gather the block, and the gradient scatters back to it."""
    shape = _shape(operand)
    sizes = _ints(slice_sizes, len(shape), "dynamic_slice's slice_sizes")
    starts = _starts(start_indices, shape, sizes, allow_negative_indices, "dynamic_slice")
    y = operand[tuple(_slice(s, s + k) if not isinstance(s, Value) else _slice(None)
                      for s, k in zip(starts, sizes))]
    for a, (s, k) in enumerate(zip(starts, sizes)):
        if isinstance(s, Value):
            y = gnp.take(y, s + np.arange(k), axis=a)
    return y


def dynamic_update_slice(operand, update, start_indices, *, allow_negative_indices=True):
    """``jax.lax.dynamic_update_slice``: ``operand`` with the block at ``start_indices``
    replaced by ``update`` (starts clamped as in ``dynamic_slice``)."""
    shape, ushape = _shape(operand), _shape(update)
    if len(ushape) != len(shape):
        raise ArgumentError(f"dynamic_update_slice: update has rank {len(ushape)}, operand rank {len(shape)}")
    starts = _starts(start_indices, shape, ushape, allow_negative_indices, "dynamic_update_slice")
    if not _traced(*starts):
        key = tuple(_slice(s, s + k) for s, k in zip(starts, ushape))
        if _eager(operand, update):
            out = np.array(operand, copy=True)
            out[key] = update
            return out
        return _to_value(operand).at[key].set(update)
    # traced starts: spread update over operand's shape by a gather per axis, then select
    u, inside = update, np.True_
    for a, (s, d, k) in enumerate(zip(starts, shape, ushape)):
        rel = np.arange(d) - s if isinstance(s, Value) else _to_value(np.arange(d) - s)
        u = gnp.take(u, gnp.clip(rel, 0, _max(k - 1, 0)), axis=a)
        ok = gnp.logical_and(rel >= 0, rel < k)
        inside = gnp.logical_and(inside, gnp.reshape(ok, [d if j == a else 1 for j in range(len(shape))]))
    return gnp.where(inside, u, operand)


def dynamic_slice_in_dim(operand, start_index, slice_size, axis=0, *, allow_negative_indices=True):
    """``jax.lax.dynamic_slice_in_dim``: ``dynamic_slice`` along one axis."""
    shape = _shape(operand)
    axis = axis % len(shape)
    starts = [0] * len(shape)
    starts[axis] = start_index
    sizes = list(shape)
    sizes[axis] = slice_size
    return dynamic_slice(operand, starts, sizes, allow_negative_indices=allow_negative_indices)


def dynamic_index_in_dim(operand, index, axis=0, keepdims=True, *, allow_negative_indices=True):
    """``jax.lax.dynamic_index_in_dim``: element ``index`` of ``axis`` (clamped)."""
    axis = axis % len(_shape(operand))
    y = dynamic_slice_in_dim(operand, index, 1, axis, allow_negative_indices=allow_negative_indices)
    return y if keepdims else _squeeze(y, axis)


def dynamic_update_slice_in_dim(operand, update, start_index, axis, *, allow_negative_indices=True):
    """``jax.lax.dynamic_update_slice_in_dim``: ``dynamic_update_slice`` along one axis."""
    shape = _shape(operand)
    axis = axis % len(shape)
    starts = [0] * len(shape)
    starts[axis] = start_index
    return dynamic_update_slice(operand, update, starts, allow_negative_indices=allow_negative_indices)


def dynamic_update_index_in_dim(operand, update, index, axis, *, allow_negative_indices=True):
    """``jax.lax.dynamic_update_index_in_dim``: element ``index`` of ``axis`` replaced by
    ``update`` (which may lack that axis)."""
    shape = _shape(operand)
    axis = axis % len(shape)
    if len(_shape(update)) == len(shape) - 1:
        update = _expand_dims(update, axis)
    return dynamic_update_slice_in_dim(operand, update, index, axis, allow_negative_indices=allow_negative_indices)


# ----------------------------------------------------------------------------- shapes and contractions
def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None, out_sharding=None):
    """``jax.lax.dot_general``: ``dimension_numbers = ((lhs_contract, rhs_contract),
    (lhs_batch, rhs_batch))``; the result's axes are the batch axes, then lhs's free
    axes, then rhs's, as in JAX."""
    (lc, rc), (lb, rb) = dimension_numbers
    ls, rs = _shape(lhs), _shape(rhs)
    lc, rc = [a % len(ls) for a in lc], [a % len(rs) for a in rc]
    lb, rb = [a % len(ls) for a in lb], [a % len(rs) for a in rb]
    if len(lc) != len(rc) or len(lb) != len(rb):
        raise ArgumentError(f"dot_general: contracting {dimension_numbers[0]} and batch {dimension_numbers[1]} "
                            "axes must pair up")
    for a, b in list(zip(lc, rc)) + list(zip(lb, rb)):
        if ls[a] != rs[b]:
            raise ShapeError(f"dot_general: lhs axis {a} (size {ls[a]}) and rhs axis {b} (size {rs[b]}) differ")
    letters = iter("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    lsub, rsub = [None] * len(ls), [None] * len(rs)
    for a, b in list(zip(lb, rb)) + list(zip(lc, rc)):
        lsub[a] = rsub[b] = next(letters)
    lfree = [a for a in range(len(ls)) if lsub[a] is None]
    rfree = [b for b in range(len(rs)) if rsub[b] is None]
    for a in lfree:
        lsub[a] = next(letters)
    for b in rfree:
        rsub[b] = next(letters)
    out = "".join(lsub[a] for a in lb) + "".join(lsub[a] for a in lfree) + "".join(rsub[b] for b in rfree)
    y = gnp.einsum(f"{''.join(lsub)},{''.join(rsub)}->{out}", lhs, rhs)
    return gnp.astype(y, preferred_element_type) if preferred_element_type is not None else y


def dot(lhs, rhs, precision=None, preferred_element_type=None):
    """``jax.lax.dot``: vector . vector, matrix @ vector or matrix @ matrix."""
    y = gnp.dot(lhs, rhs)
    return gnp.astype(y, preferred_element_type) if preferred_element_type is not None else y


def broadcast_in_dim(operand, shape, broadcast_dimensions, *, out_sharding=None):
    """``jax.lax.broadcast_in_dim``: axis i of ``operand`` becomes axis
    ``broadcast_dimensions[i]`` of the result of ``shape`` (sizes equal, or 1)."""
    oshape, shape, dims = _shape(operand), tuple(int(s) for s in shape), tuple(int(d) for d in broadcast_dimensions)
    if len(dims) != len(oshape) or list(dims) != sorted(set(dims)) or any(not 0 <= d < len(shape) for d in dims):
        raise ArgumentError(f"broadcast_in_dim: broadcast_dimensions {dims} must be increasing axes of the result "
                            f"{shape}, one per axis of the operand {oshape}")
    full = [1] * len(shape)
    for i, d in enumerate(dims):
        if oshape[i] not in (1, shape[d]):
            raise ShapeError(f"broadcast_in_dim: operand axis {i} has size {oshape[i]}, result axis {d} size {shape[d]}")
        full[d] = oshape[i]
    if _eager(operand):
        return np.broadcast_to(np.reshape(operand, full), shape)
    return gnp.broadcast_to(gnp.reshape(operand, full), shape)


def broadcast(operand, sizes, *, out_sharding=None):
    """``jax.lax.broadcast``: new leading axes of ``sizes``."""
    shape = tuple(sizes) + _shape(operand)
    return broadcast_in_dim(operand, shape, range(len(sizes), len(shape)))


def reshape(operand, new_sizes, dimensions=None, *, out_sharding=None):
    """``jax.lax.reshape``: row-major reshape, after transposing by ``dimensions``."""
    x = gnp.transpose(operand, tuple(dimensions)) if dimensions is not None else operand
    return gnp.reshape(x, tuple(int(s) for s in new_sizes))


def transpose(operand, permutation):
    """``jax.lax.transpose``: the axes permuted."""
    return gnp.transpose(operand, tuple(int(a) for a in permutation))


def squeeze(array, dimensions):
    """``jax.lax.squeeze``: the given size-1 axes removed."""
    dims = tuple(dimensions)
    return _squeeze(array, dims) if dims else array


def expand_dims(array, dimensions):
    """``jax.lax.expand_dims``: size-1 axes inserted at ``dimensions``."""
    dims = tuple(dimensions)
    if len(set(dims)) != len(dims):
        raise ArgumentError(f"expand_dims: repeated axis in {dims}")
    return _expand_dims(array, dims) if dims else array


def concatenate(operands, dimension):
    """``jax.lax.concatenate``: joined along ``dimension``."""
    return gnp.concatenate(list(operands), axis=dimension)


def rev(operand, dimensions):
    """``jax.lax.rev``: reversed along each axis in ``dimensions``."""
    dims = tuple(dimensions)
    return gnp.flip(operand, dims) if dims else operand


def clamp(min, x, max):  # noqa: A002  (jax.lax's argument names)
    """``jax.lax.clamp``: ``x`` limited to [min, max] (note the argument order)."""
    return gnp.minimum(gnp.maximum(x, min), max)


def integer_pow(x, y):
    """``jax.lax.integer_pow``: ``x ** y`` for a Python int ``y`` (negative: 1 / x**-y)."""
    if int(y) != y:
        raise ArgumentError(f"integer_pow: the exponent must be an int, got {y!r}")
    y = int(y)
    if y == 0:
        return gnp.ones_like(x)
    return gnp.power(x, y) if y > 0 else 1.0 / gnp.power(x, -y)


def rsqrt(x):
    """``jax.lax.rsqrt``: 1 / sqrt(x)."""
    return 1.0 / gnp.sqrt(x)


def div(x, y):
    """``jax.lax.div``: x / y; for integers rounded toward zero (C's division, as JAX)."""
    if _kind(x) in "iu" and _kind(y) in "iu":
        return gnp.astype(gnp.trunc(gnp.astype(x, np.float64) / gnp.astype(y, np.float64)), _dtype(x))
    return gnp.divide(x, y)


def _dtype(x):
    return x.dtype if isinstance(x, Value) else np.result_type(x)


def _kind(x):
    return np.dtype(_dtype(x)).kind


def round(x, rounding_method=0):  # noqa: A001  (jax.lax's name)
    """``jax.lax.round``: half away from zero (``rounding_method=0``, JAX's default) or
    half to even (1)."""
    if int(rounding_method) == 1:
        return gnp.rint(x)
    return gnp.sign(x) * gnp.floor(gnp.abs(x) + 0.5)


def convert_element_type(operand, new_dtype):
    """``jax.lax.convert_element_type``: ``operand`` as ``new_dtype``."""
    return gnp.astype(operand, new_dtype)


def _reduce(f):
    def reducer(operand, axes):
        return f(operand, axis=tuple(int(a) for a in axes))
    reducer.__doc__ = f"``jax.lax.{f.__name__}``-style reduction over ``axes``."
    return reducer


reduce_sum, reduce_max, reduce_min, reduce_prod = (_reduce(gnp.sum), _reduce(gnp.max), _reduce(gnp.min),
                                                   _reduce(gnp.prod))


def argmax(operand, axis, index_dtype=np.int32):
    """``jax.lax.argmax``: index of the first maximum along ``axis``."""
    return gnp.astype(gnp.argmax(operand, axis=axis), index_dtype)


def argmin(operand, axis, index_dtype=np.int32):
    """``jax.lax.argmin``: index of the first minimum along ``axis``."""
    return gnp.astype(gnp.argmin(operand, axis=axis), index_dtype)


def cumsum(operand, axis=0, reverse=False):
    """``jax.lax.cumsum``: running sum along ``axis`` (from the end when ``reverse``)."""
    if reverse:
        return gnp.flip(gnp.cumsum(gnp.flip(operand, axis), axis=axis), axis)
    return gnp.cumsum(operand, axis=axis)


def cumprod(operand, axis=0, reverse=False):
    """``jax.lax.cumprod``: running product along ``axis``."""
    if reverse:
        return gnp.flip(gnp.cumprod(gnp.flip(operand, axis), axis=axis), axis)
    return gnp.cumprod(operand, axis=axis)


# jax.lax's element-wise names, as gradc.numpy's functions
add, sub, mul, neg = gnp.add, gnp.subtract, gnp.multiply, gnp.negative
max, min = gnp.maximum, gnp.minimum  # noqa: A001
exp, exp2, log, log1p, expm1, sqrt, cbrt = gnp.exp, gnp.exp2, gnp.log, gnp.log1p, gnp.expm1, gnp.sqrt, gnp.cbrt
tanh, logistic, sin, cos, tan = gnp.tanh, gnp.sigmoid, gnp.sin, gnp.cos, gnp.tan
sinh, cosh, asin, acos, atan, atan2 = gnp.sinh, gnp.cosh, gnp.arcsin, gnp.arccos, gnp.arctan, gnp.arctan2
asinh, acosh, atanh = gnp.arcsinh, gnp.arccosh, gnp.arctanh
abs, sign, floor, ceil, square, pow = gnp.abs, gnp.sign, gnp.floor, gnp.ceil, gnp.square, gnp.power  # noqa: A001
rem, erf, erfc, is_finite = gnp.fmod, gnp.erf, gnp.erfc, gnp.isfinite
erf_inv, lgamma, digamma, reciprocal = _special.erfinv, _special.gammaln, _special.digamma, gnp.reciprocal
eq, ne, lt, le, gt, ge = gnp.equal, gnp.not_equal, gnp.less, gnp.less_equal, gnp.greater, gnp.greater_equal
select = gnp.where
