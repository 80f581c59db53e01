"""Reductions: sum, max, min (with axes and keepdims), count (the size of the reduced
axes, known at run time), logsumexp (stable), and the composites mean, softmax,
log_softmax.  The adjoint of a sum is a broadcast (the paper: d sum(x)/dx = 1^T)."""
from __future__ import annotations

import numpy as np

from .bind import batch_materialize, bind, convert, reduce_dtype, tracer
from .elementwise import exp
from .registry import Op, register
from .structure import broadcast_to, reshape_sym


def norm_axes(axis, ndim: int) -> tuple:
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)):
        axis = (int(axis),)
    out = []
    for a in axis:
        a = int(a)
        if not -ndim <= a < max(ndim, 1) or (ndim == 0 and a not in (0, -1)):
            from ..errors import ShapeError
            raise ShapeError(f"axis {a} is out of bounds for an array of rank {ndim}")
        out.append(a % ndim if ndim else 0)
    if len(set(out)) != len(out):
        from ..errors import ShapeError
        raise ShapeError(f"repeated axis in {axis}")
    return tuple(sorted(out)) if ndim else ()


def reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _rshape(env, avals, axes, keepdims, initial=None):
    (shape, dtype), = avals[:1]
    return reduced_shape(shape, axes, keepdims), dtype


def expand_back(g, axes, keepdims, shape):
    """Bring a reduced array back to the input's shape (the adjoint of a reduction)."""
    if not keepdims and axes:
        g = reshape_sym(g, reduced_shape(shape, axes, True))
    return broadcast_to(g, shape)


def _batch_reduce(name):
    """A reduction per example: the same axes, one further right."""
    def rule(n, args, batched, axes, **params):
        (x,) = args
        axes = tuple(range(x.ndim - 1)) if axes is None else axes
        return bind(name, x, axes=tuple(a + 1 for a in axes), **params)
    return rule


def _sum_vjp(g, ans, x, axes, keepdims):
    return (expand_back(g, axes, keepdims, x._shape),)


register(Op("sum", "reduce", _rshape, lambda x, axes, keepdims: np.sum(x, axis=axes, keepdims=keepdims),
            vjp=_sum_vjp, jvp=lambda ts, y, x, axes, keepdims: sum_(ts[0], axes, keepdims),
            doc="sum over axes; adjoint broadcasts g back (scalar expansion)", root=True, combine="sum",
            batch=_batch_reduce("sum")))


def _minmax_vjp(g, ans, x, axes, keepdims, initial=None):
    # Ties share the gradient equally, so the adjoint stays a valid subgradient.
    a = expand_back(ans, axes, keepdims, x._shape)
    hit = convert(x == a, x.dtype)
    return (expand_back(g, axes, keepdims, x._shape) * hit / sum_(hit, axes, True),)


def _minmax_jvp(ts, ans, x, axes, keepdims, initial=None):
    a = expand_back(ans, axes, keepdims, x._shape)
    hit = convert(x == a, x.dtype)
    return sum_(ts[0] * hit, axes, keepdims) / sum_(hit, axes, keepdims)


def _reduces_nothing(x, axes):
    """Does some output element reduce no elements?  (A (8, 0) array has a min over
    axis 0, empty, but none over axis 1.)"""
    return any(x.shape[a] == 0 for a in (range(x.ndim) if axes is None else axes))


def _np_max(x, axes, keepdims, initial=None):
    if initial is not None:   # numpy's `initial`: the value of an empty reduction
        return np.max(x, axis=axes, keepdims=keepdims, initial=initial)
    if _reduces_nothing(x, axes):
        raise ValueError("max of an empty array has no identity (numpy raises too)")
    return np.max(x, axis=axes, keepdims=keepdims)


def _np_min(x, axes, keepdims, initial=None):
    if initial is not None:
        return np.min(x, axis=axes, keepdims=keepdims, initial=initial)
    if _reduces_nothing(x, axes):
        raise ValueError("min of an empty array has no identity (numpy raises too)")
    return np.min(x, axis=axes, keepdims=keepdims)


register(Op("max", "reduce", _rshape, _np_max, vjp=_minmax_vjp, jvp=_minmax_jvp, root=True, combine="max",
            batch=_batch_reduce("max")))
register(Op("min", "reduce", _rshape, _np_min, vjp=_minmax_vjp, jvp=_minmax_jvp, root=True, combine="min",
            batch=_batch_reduce("min")))


def _count_shape(env, avals, axes, dtype):
    return (), np.dtype(dtype)


register(Op("count", "reduce", _count_shape,
            lambda x, axes, dtype: np.asarray(np.prod([x.shape[a] for a in axes], dtype=np.int64), dtype=dtype),
            vjp=lambda g, y, x, axes, dtype: (None,), jvp=lambda ts, y, x, axes, dtype: None,
            doc="number of elements over axes (a run-time size; non-differentiable)",
            # the same count for every example
            batch=lambda n, args, batched, axes, dtype: batch_materialize(
                n, bind("count", args[0], axes=tuple(a + 1 for a in axes), dtype=dtype))))


def _lse_np(x, axes, keepdims):
    if x.size == 0 and any(x.shape[a] == 0 for a in axes):
        return np.log(np.sum(np.exp(x), axis=axes, keepdims=keepdims))
    m = np.max(x, axis=axes, keepdims=True)
    m = np.where(np.isfinite(m), m, np.zeros((), x.dtype))
    with np.errstate(divide="ignore"):
        r = m + np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True))
    return r if keepdims else np.squeeze(r, axis=axes)


def _lse_vjp(g, ans, x, axes, keepdims):
    a = expand_back(ans, axes, keepdims, x._shape)
    return (expand_back(g, axes, keepdims, x._shape) * exp(x - a),)


def _lse_jvp(ts, ans, x, axes, keepdims):
    a = expand_back(ans, axes, keepdims, x._shape)
    return sum_(ts[0] * exp(x - a), axes, keepdims)


register(Op("logsumexp", "reduce", _rshape, _lse_np, vjp=_lse_vjp, jvp=_lse_jvp,
            doc="log(sum(exp(x))) computed as m + log(sum(exp(x - m))), m = max(x); "
                "its adjoint is g * softmax(x)", rule="logsumexp ⇒ softmax", batch=_batch_reduce("logsumexp")))


# ----------------------------------------------------------------------------- user API
def _reduce(name, x, axis, keepdims, npfn):
    t = tracer()
    if not isinstance(x, t.Value):
        if t.current() is None:
            return npfn(np.asarray(x), axis=axis, keepdims=keepdims)
        x = t.to_value(x)
    dt = reduce_dtype(name, x.dtype)
    if dt != x.dtype:
            x = convert(x, dt)
    return t.bind(name, x, axes=norm_axes(axis, x.ndim), keepdims=bool(keepdims))


def sum_(x, axis=None, keepdims=False):
    """Sum over ``axis`` (None: all axes)."""
    return _reduce("sum", x, axis, keepdims, np.sum)


def max_(x, axis=None, keepdims=False):
    return _reduce("max", x, axis, keepdims, np.max)


def min_(x, axis=None, keepdims=False):
    return _reduce("min", x, axis, keepdims, np.min)


def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x), axis)), stable for large and small x."""
    t = tracer()
    if not isinstance(x, t.Value) and t.current() is None:
        x = np.asarray(x, dtype=float) if np.asarray(x).dtype.kind != "f" else np.asarray(x)
        return _lse_np(x, norm_axes(axis, x.ndim), keepdims)
    return _reduce("logsumexp", x, axis, keepdims, None)


def mean(x, axis=None, keepdims=False):
    """Mean over ``axis``: a sum divided by the run-time count (a mean of nothing is nan)."""
    t = tracer()
    if not isinstance(x, t.Value) and t.current() is None:
        return np.mean(x, axis=axis, keepdims=keepdims)
    x = t.to_value(x)
    if x.dtype.kind != "f":
            x = convert(x, np.float64)
    axes = norm_axes(axis, x.ndim)
    return sum_(x, axes, keepdims) / t.bind("count", x, axes=axes, dtype=x.dtype)


def softmax(x, axis=-1):
    """exp(log_softmax(x)): stable forward, and its adjoint never overflows."""
    return exp(log_softmax(x, axis))


def log_softmax(x, axis=-1):
    """``(x - m) - logsumexp(x - m)``, m the max along ``axis`` (a constant: the
    derivative is the same for any m).  ``x - logsumexp(x)`` would cancel where the
    logits are large against their spread (logits near 1e4 in float32 lost 3 digits)
    and give 0 for a row filled with -1e9 (a masked row), not -log n."""
    from .elementwise import stop_gradient, where
    t = tracer()
    if not isinstance(x, t.Value) and t.current() is None:
        x = np.asarray(x, dtype=float) if np.asarray(x).dtype.kind != "f" else np.asarray(x)
        m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)    # (rows of no elements: -inf)
        xs = x - np.where(np.isfinite(m), m, 0)
        return xs - _lse_np(xs, norm_axes(axis, x.ndim), True)
    x = t.to_value(x)
    if x.dtype.kind != "f":
        x = convert(x, np.float64)
    # the shift: each row's max, -inf for a row of no elements (whose result is empty)
    m = t.bind("max", x, axes=norm_axes(axis, x.ndim), keepdims=True, initial=-np.inf)
    xs = x - stop_gradient(where(abs(m) < np.inf, m, 0.0))
    return xs - logsumexp(xs, axis=axis, keepdims=True)
