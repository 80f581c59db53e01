"""numpy's reductions and scans beyond sum/max/min/mean, composed at trace time from
primitives (so each has its derivatives and runs on every backend):

* ``var``/``std`` (``ddof``): the sum of squared deviations from the mean over the
  run-time count minus ``ddof``;  ``average`` (``weights``);
* ``prod``: a balanced tree of products of halves along each reduced axis.  Its
  adjoint multiplies the cotangent by the product of the other half at every level, so
  the gradient of each element is the product of all the others, computed without
  division: correct when the input holds zeros (one zero: only that element's
  gradient is nonzero; two: all are zero);
* ``cumsum``/``cumprod``: a Hillis-Steele scan (log2 n steps of "add/multiply the
  array shifted by 2**k"), whose adjoint is the reversed scan; ``diff``;
* ``argmax``/``argmin`` (the first extreme, a nan counting as the extreme, as numpy),
  ``any``/``all``, ``linalg.norm``.

Scans and products fix the size of the axes they run along (a call with other sizes
retraces).
"""
from __future__ import annotations

import builtins

import numpy as np

from ..errors import ShapeError, UnsupportedError
from . import elementwise as ew
from .elementwise import convert, where
from .elementwise import where as where_   # var/prod take numpy's where= keyword
from .reduce import max_, min_, norm_axes, reduced_shape, sum_


def _trace():
    from .. import tracer as trace
    return trace


def _eager(*xs):
    """True when every operand is concrete and no trace is running: numpy answers."""
    t = _trace()
    return t.current() is None and not builtins.any(isinstance(x, t.Value) for x in xs)


def _float(x):
    x = _trace().to_value(x)
    return convert(x, np.float64) if x.dtype.kind != "f" else x


def _count(x, axes):
    return _trace().bind("count", x, axes=axes, dtype=x.dtype)


def _keep(r, x, axes, keepdims):
    from .structure import reshape_sym
    if not keepdims:
        return r
    return reshape_sym(r, reduced_shape(x._shape, axes, True))


# ----------------------------------------------------------------------------- moments
def _no_kw(kw, name, supported):
    """numpy keywords gradc does not implement are an error: ignored, they would change
    the result without a word."""
    if kw:
        raise UnsupportedError(f"{name}: keyword(s) {', '.join(sorted(kw))} not supported "
                               f"(supported: {supported})")


def _given(**kw):
    """The keywords that were passed (not None), to hand on to numpy."""
    return {k: v for k, v in kw.items() if v is not None}


def _mask_of(where_, x):
    """numpy's ``where=`` mask broadcast against ``x`` (a bool Value or array)."""
    from .structure import broadcast_to
    w = where_ if isinstance(where_, _trace().Value) else np.asarray(where_, dtype=bool)
    return broadcast_to(_trace().to_value(w), x._shape)


def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None,
        correction=None, **kw):
    """Variance: sum((x - mean)^2) / (N - ddof), with numpy 2's keywords: ``where`` (the
    variance of the selected elements), ``mean`` (given, shaped as with keepdims) and
    ``correction`` (ddof's array-API name)."""
    if _eager(a, where, mean):
        return np.var(a, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims,
                      **_given(where=where, mean=mean, correction=correction), **kw)
    _no_out(out, "var")
    _no_kw(kw, "var", "axis, dtype, ddof, keepdims, where, mean, correction")
    if correction is not None:
        if ddof != 0:
            raise ValueError("var: ddof and correction can't be provided simultaneously.")
        ddof = correction
    x = _float(a) if dtype is None else convert(_trace().to_value(a), dtype)
    axes = norm_axes(axis, x.ndim)
    if where is None:
        mu = sum_(x, axes, True) / _count(x, axes) if mean is None else mean
        d = x - mu
        n = ew.maximum(_count(x, axes) - float(ddof), 0.0)
    else:
        m = _mask_of(where, x)
        sel = sum_(convert(m, x.dtype), axes, True)
        mu = sum_(where_(m, x, 0.0), axes, True) / sel if mean is None else mean
        d = where_(m, x - mu, 0.0)
        n = ew.maximum(sum_(convert(m, x.dtype), axes, keepdims) - float(ddof), 0.0)
    return sum_(d * d, axes, keepdims) / n


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None,
        correction=None, **kw):
    """Standard deviation: sqrt(var(a, axis, ddof)), var's keywords too."""
    if _eager(a, where, mean):
        return np.std(a, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims,
                      **_given(where=where, mean=mean, correction=correction), **kw)
    return ew.sqrt(var(a, axis, dtype, out, ddof, keepdims, where=where, mean=mean, correction=correction,
                       **kw))


def average(a, axis=None, weights=None, returned=False, keepdims=False):
    """sum(a * w) / sum(w) over axis (a plain mean without weights)."""
    if _eager(a, weights):
        return np.average(a, axis=axis, weights=weights, returned=returned, keepdims=keepdims)
    from .reduce import mean
    from .structure import broadcast_to, reshape_sym
    x = _float(a)
    if weights is None:
        avg = mean(x, axis, keepdims)
        scl = _count(x, norm_axes(axis, x.ndim))
        return (avg, broadcast_to(convert(scl, avg.dtype), avg._shape)) if returned else avg
    dt = ew.result_dtype([x, weights], float_result=True)
    x, w = convert(x, dt), convert(weights, dt)
    if w.ndim != x.ndim:
        if axis is None or not isinstance(axis, (int, np.integer)) or w.ndim != 1:
            raise ShapeError(f"average: weights of shape {w.shape} differ from a's {x.shape}; "
                             "1-D weights need an integer axis")
        ax = int(axis) % x.ndim
        w = reshape_sym(w, tuple(w._shape[0] if i == ax else 1 for i in range(x.ndim)))
    axes = norm_axes(axis, x.ndim)
    xw = x * w
    scl = sum_(broadcast_to(w, xw._shape), axes, keepdims)
    avg = sum_(xw, axes, keepdims) / scl
    return (avg, broadcast_to(scl, avg._shape)) if returned else avg


def _no_out(out, name):
    if out is not None:
        raise UnsupportedError(f"{name}(..., out=...) cannot write into a traced value")


# ----------------------------------------------------------------------------- helpers along one axis
def _cut(x, axis, start, stop):
    """x[start:stop] along ``axis`` (static bounds)."""
    index = tuple((start, stop, 1) if a == axis else (0, None, 1) for a in range(x.ndim))
    return _trace().bind("slice", x, index=index)


def _shift(x, axis, s, n):
    """x moved s places forward along axis, zeros in front: y[i] = x[i - s]."""
    index = tuple((s, n, 1) if a == axis else (0, None, 1) for a in range(x.ndim))
    return _trace().bind("unslice", _cut(x, axis, 0, n - s), index=index, shape=x._shape)


def _iota(x, axis, dtype=np.int64):
    """0, 1, ... along ``axis`` in an array of x's rank (size 1 on the other axes)."""
    shape = tuple(x._shape[a] if a == axis else 1 for a in range(x.ndim))
    return _trace().bind("iota", shape=shape, axis=axis, dtype=np.dtype(dtype))


def materialize(x):
    """x itself, computed into a buffer of its own by the native backends (the ``copy``
    op, and its adjoint too).

    A scan level or a product-tree level reads the level before it at two places; the
    backends inline element-wise and view ops into their consumers, so L such levels
    would be expanded into 2**L reads per element (and as much code)."""
    from .elementwise import copy
    return copy(x) if x.ndim else x


def _accum_dtype(dt):
    """numpy's for sum-like reductions and scans: small integers and bools -> int64."""
    dt = np.dtype(dt)
    if dt.kind == "f":
        return dt
    return np.dtype(np.uint64 if dt.kind == "u" else np.int64)


def _prepare_scan(a, axis, dtype):
    from .structure import reshape
    x = _trace().to_value(a)
    if axis is None:
        x = reshape(x, -1)
        axis = 0
    axis = norm_axes(axis, x.ndim)[0] if x.ndim else 0
    x = convert(x, np.dtype(dtype) if dtype is not None else _accum_dtype(x.dtype))
    return x, axis, x._b.env.pin(x._shape[axis]) if x.ndim else 1


# ----------------------------------------------------------------------------- product
def prod(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None, **kw):
    """Product over axis: a tree of products of halves (exact gradient with zeros);
    numpy's ``initial`` multiplies it, ``where`` leaves elements out (as 1s)."""
    if _eager(a, where):
        return np.prod(a, axis=axis, dtype=dtype, keepdims=keepdims, **_given(initial=initial, where=where), **kw)
    _no_out(out, "prod")
    _no_kw(kw, "prod", "axis, dtype, keepdims, initial, where")
    r = _prod(a, axis, dtype, keepdims, where)
    return r if initial is None else r * initial


def _prod(a, axis, dtype, keepdims, mask):
    from .structure import reshape_sym
    x = _trace().to_value(a)
    x = convert(x, np.dtype(dtype) if dtype is not None else _accum_dtype(x.dtype))
    if mask is not None:
        x = where_(_mask_of(mask, x), x, 1)
    axes = norm_axes(axis, x.ndim)
    env = x._b.env
    y = x
    for ax in sorted(axes, reverse=True):
        n = env.pin(y._shape[ax])
        if n == 0:
            shape = tuple(1 if i == ax else d for i, d in enumerate(y._shape))
            from .structure import broadcast_to
            y = broadcast_to(_trace().to_value(np.ones((), y.dtype)), shape)
            n = 1
        while n > 1:
            h = n // 2
            z = _cut(y, ax, 0, h) * _cut(y, ax, h, 2 * h)
            if n % 2:
                from .structure import concatenate
                z = concatenate([z, _cut(y, ax, 2 * h, n)], axis=ax)
            y, n = materialize(z), h + n % 2
        y = reshape_sym(y, tuple(d for i, d in enumerate(y._shape) if i != ax))
    return _keep(y, x, axes, keepdims)


# ----------------------------------------------------------------------------- scans
def _scan(a, axis, dtype, combine, pad):
    x, axis, n = _prepare_scan(a, axis, dtype)
    if x.ndim == 0:
        from .structure import reshape_sym
        return reshape_sym(x, (1,))
    s = 1
    while s < n:
        shifted = _shift(x, axis, s, n)
        if pad != 0:
            shifted = where(_iota(x, axis) >= s, shifted, pad)
        x = materialize(combine(x, shifted))
        s *= 2
    return x


def cumsum(a, axis=None, dtype=None, out=None):
    """Running sum along axis (None: of the flattened array)."""
    if _eager(a):
        return np.cumsum(a, axis=axis, dtype=dtype)
    _no_out(out, "cumsum")
    return _scan(a, axis, dtype, ew.add, 0)


def cumprod(a, axis=None, dtype=None, out=None):
    """Running product along axis; its gradient needs no division (zeros are fine)."""
    if _eager(a):
        return np.cumprod(a, axis=axis, dtype=dtype)
    _no_out(out, "cumprod")
    return _scan(a, axis, dtype, ew.multiply, 1)


def diff(a, n=1, axis=-1, prepend=None, append=None):
    """n-th discrete difference along axis (bools: not-equal, as numpy)."""
    if _eager(a, prepend, append):
        kw = {k: v for k, v in (("prepend", prepend), ("append", append)) if v is not None}
        return np.diff(a, n=n, axis=axis, **kw)
    from .structure import broadcast_to, concatenate
    t = _trace()
    x = t.to_value(a)
    if x.ndim == 0:
        raise ShapeError("diff requires input that is at least one dimensional")
    axis = norm_axes(axis, x.ndim)[0]
    parts = []
    for extra in (prepend,):
        if extra is not None:
            parts.append(extra)
    parts.append(x)
    if append is not None:
        parts.append(append)
    if len(parts) > 1:
        vals = []
        for p in parts:
            p = t.to_value(p)
            if p.ndim == 0:
                p = broadcast_to(p, tuple(1 if i == axis else d for i, d in enumerate(x._shape)))
            vals.append(p)
        x = concatenate(vals, axis=axis)
    for _ in range(int(n)):
        m = x._b.env.pin(x._shape[axis])
        if m == 0:
            break
        hi, lo = _cut(x, axis, 1, m), _cut(x, axis, 0, m - 1)
        x = ew.not_equal(hi, lo) if x.dtype == np.bool_ else hi - lo
        if n > 2:       # each difference reads its input twice (see materialize)
            x = materialize(x)
    return x


# ----------------------------------------------------------------------------- arg-extremes and tests
_NO_INDEX = 2 ** 62     # larger than any index: a min over "not a hit" never picks it


def _arg_extreme(a, axis, keepdims, extreme):
    from .structure import reshape
    t = _trace()
    x = t.to_value(a)
    if x.dtype == np.bool_:
        x = convert(x, np.int8)
    if axis is None:
        out_shape = (1,) * x.ndim if keepdims else None
        x = reshape(x, -1)
        axis = 0
    else:
        out_shape = None
    axis = norm_axes(axis, x.ndim)[0]
    if x._b.env.value(x._shape[axis]) == 0:
        raise ValueError(f"attempt to get arg{extreme.__name__.strip('_')} of an empty sequence")
    x._b.env.at_least(x._shape[axis], 1)      # (a size, not fixed: a call with 0 is refused)
    m = extreme(x, axis, True)
    hit = ew.equal(x, m)
    if x.dtype.kind == "f":       # numpy: the first nan is the extreme
        from .mathfuncs import isnan, logical_or
        hit = logical_or(hit, isnan(x))
    r = min_(where(hit, _iota(x, axis), _NO_INDEX), axis, keepdims and out_shape is None)
    if out_shape is not None:
        from .structure import reshape_sym
        r = reshape_sym(r, out_shape)
    return r


def argmax(a, axis=None, out=None, keepdims=False):
    """Index of the first maximum (of the flattened array when axis is None)."""
    if _eager(a):
        return np.argmax(a, axis=axis, keepdims=keepdims)
    _no_out(out, "argmax")
    return _arg_extreme(a, axis, keepdims, max_)


def argmin(a, axis=None, out=None, keepdims=False):
    """Index of the first minimum (of the flattened array when axis is None)."""
    if _eager(a):
        return np.argmin(a, axis=axis, keepdims=keepdims)
    _no_out(out, "argmin")
    return _arg_extreme(a, axis, keepdims, min_)


def any(a, axis=None, out=None, keepdims=False, *, where=None):  # noqa: A001
    """Is any element nonzero (nan counts as nonzero)?  ``where``: among the selected."""
    if _eager(a, where):
        return np.any(a, axis=axis, keepdims=keepdims, **_given(where=where))
    _no_out(out, "any")
    x = _trace().to_value(a)
    nz = x if x.dtype == np.bool_ else ew.not_equal(x, 0)
    if where is not None:
        nz = ew.logical_and(nz, _mask_of(where, x))
    return ew.greater(sum_(convert(nz, np.int64), axis, keepdims), 0)


def all(a, axis=None, out=None, keepdims=False, *, where=None):  # noqa: A001
    """Is every element nonzero?  ``where``: every selected one."""
    if _eager(a, where):
        return np.all(a, axis=axis, keepdims=keepdims, **_given(where=where))
    _no_out(out, "all")
    x = _trace().to_value(a)
    zero = ew.logical_not(x) if x.dtype == np.bool_ else ew.equal(x, 0)
    if where is not None:
        zero = ew.logical_and(zero, _mask_of(where, x))
    return ew.equal(sum_(convert(zero, np.int64), axis, keepdims), 0)


# ----------------------------------------------------------------------------- norms
def norm(x, ord=None, axis=None, keepdims=False):
    """numpy.linalg.norm: vector ord None/2, 1, inf, -inf, 0 and any p; matrix 'fro',
    'nuc', 1, -1, 2, -2, inf, -inf (2, -2 and 'nuc' from the singular values)."""
    if _eager(x):
        return np.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims)
    v = _float(x)
    if axis is None:
        if ord is None or (ord in ("fro", "f") and v.ndim == 2):
            axes = tuple(range(v.ndim))
            return ew.sqrt(sum_(v * v, axes, keepdims))
        if v.ndim == 1:
            axis = (0,)
        elif v.ndim == 2:
            axis = (0, 1)
        else:
            raise ShapeError(f"norm: an ord needs a vector or a matrix, got rank {v.ndim}")
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    axes = tuple(norm_axes(a, v.ndim)[0] for a in axes)
    if len(axes) == 1:
        return _vector_norm(v, ord, axes, keepdims)
    if len(axes) == 2:
        return _matrix_norm(v, ord, axes, keepdims)
    raise ShapeError(f"norm: axis {axis} must name one axis (vector) or two (matrix)")


def _vector_norm(v, ord, axes, keepdims):
    a = ew.abs(v)
    if ord is None or ord == 2:
        return ew.sqrt(sum_(v * v, axes, keepdims))
    if ord == np.inf:
        return max_(a, axes, keepdims)
    if ord == -np.inf:
        return min_(a, axes, keepdims)
    if ord == 0:
        return sum_(convert(ew.not_equal(v, 0.0), v.dtype), axes, keepdims)
    if ord == 1:
        return sum_(a, axes, keepdims)
    if isinstance(ord, str):
        raise UnsupportedError(f"norm: ord={ord!r} is a matrix norm; a vector takes a number")
    return ew.power(sum_(ew.power(a, float(ord)), axes, keepdims), 1.0 / float(ord))


def _matrix_norm(v, ord, axes, keepdims):
    r, c = axes
    if r == c:
        raise ShapeError("norm: duplicate axes given")
    a = ew.abs(v)
    if ord is None or ord in ("fro", "f"):
        return ew.sqrt(sum_(v * v, axes, keepdims))
    if ord in (1, -1, np.inf, -np.inf):
        over, then = (r, c) if ord in (1, -1) else (c, r)
        sums = sum_(a, over, True)
        ext = max_ if ord in (1, np.inf) else min_
        res = ext(sums, then, True)
        if keepdims:
            return res
        from .structure import reshape_sym
        return reshape_sym(res, reduced_shape(v._shape, axes, False))
    if ord in (2, -2, "nuc"):
        return _svd_norm(v, ord, axes, keepdims)
    raise UnsupportedError(f"norm: matrix ord={ord!r} is not a matrix norm; supported: None/'fro', 'nuc', "
                           "1, -1, 2, -2, inf, -inf")


def _svd_norm(v, ord, axes, keepdims):
    """ord 2, -2, 'nuc': the largest, the smallest singular value, their sum (numpy's
    with initial 0: an empty matrix has norm 0).  The gradient of ord 2 is u₁v₁ᵀ, of
    'nuc' U Vᵀ: svdvals' rule, defined at repeated singular values too."""
    from .axes import moveaxis
    from .decomp import svdvals
    from .structure import reshape_sym
    s = svdvals(moveaxis(v, axes, (-2, -1)))
    k = s._b.env.value(s._shape[-1])
    if k == 0:
        res = sum_(s, s.ndim - 1)
    elif ord == "nuc":
        res = sum_(s, s.ndim - 1)
    else:
        res = s[..., 0] if ord == 2 else s[..., k - 1]
    return reshape_sym(res, reduced_shape(v._shape, axes, keepdims))


def cond(x, p=None):
    """numpy.linalg.cond: s_max / s_min for p None or 2 (-2: s_min / s_max), inf for a
    singular matrix; other p: norm(x, p) · norm(inv(x), p) (square x)."""
    if _eager(x):
        return np.linalg.cond(x, p)
    from .decomp import _operand, _sizes, svdvals
    from .lapack import inv
    v = _operand(x, "cond", "x")
    m, n = _sizes(v)
    if m == 0 or n == 0:
        from ..errors import LinAlgError
        raise LinAlgError("linalg.cond is not defined on empty arrays")
    if p is None or p in (2, -2):
        s = svdvals(v)
        r = s[..., -1] / s[..., 0] if p == -2 else s[..., 0] / s[..., -1]
    else:
        r = norm(v, p, (-2, -1)) * norm(inv(v), p, (-2, -1))
    had_nan = sum_(convert(v != v, np.int64), axis=(v.ndim - 2, v.ndim - 1)) > 0
    return where(ew.logical_and(r != r, ew.logical_not(had_nan)), np.inf, r)
