"""numpy functions composed of other gradc.numpy functions at trace time: numpy's
keyword forms of the reductions (``where=``, ``initial=``, ``dtype=``), the nan-ignoring
reductions, order statistics (``median``, ``quantile``, ``percentile`` through ``sort``),
``ptp``, ``cov``/``corrcoef``, ``kron``, ``cross``, ``vecdot``/``matvec``/``vecmat``,
``multi_dot``, ``matrix_power``, the array API's ``matrix_transpose``/``permute_dims``,
``fliplr``/``flipud``/``rot90``, ``append``, ``select``, ``isclose``, ``sinc``,
``trapezoid``, ``polyval``.  Each falls back to numpy on concrete arrays outside a
trace; each has its derivatives because its parts do.
"""
from __future__ import annotations

import builtins
import math

import numpy as np

from ..errors import ShapeError, UnsupportedError
from .stats import _eager, _trace


_NS = None


def _gnp():
    """The gradc.numpy functions used here, from the ops modules (gradc.numpy itself
    imports this module)."""
    global _NS
    if _NS is None:
        from types import SimpleNamespace
        from . import arrays as arr, axes as ax, elementwise as ew, linalg as la, mathfuncs as mf
        from . import reduce as red, structure as st
        from ..tracer import Value, to_value
        _NS = SimpleNamespace(
            abs=ew.abs, asarray=to_value, astype=ew.astype, atleast_2d=arr.atleast_2d,
            broadcast_to=st.broadcast_to, concatenate=arr.concatenate, diagonal=arr.diagonal,
            expand_dims=st.expand_dims, flip=ax.flip, isnan=mf.isnan, log=ew.log,
            logical_and=ew.logical_and, logical_not=ew.logical_not, logical_or=mf.logical_or,
            maximum=ew.maximum, minimum=ew.minimum, mean=red.mean, moveaxis=ax.moveaxis,
            ndim=lambda x: x.ndim if isinstance(x, Value) else np.ndim(x), reshape=st.reshape, sin=ew.sin,
            sort=arr.sort, sqrt=ew.sqrt, stack=st.stack, sum=red.sum_, swapaxes=la.swapaxes, transpose=la.transpose,
            where=ew.where)
    return _NS


def _no_out(out, name):
    if out is not None:
        raise UnsupportedError(f"{name}(..., out=...) cannot write into a traced value")


# ----------------------------------------------------------------------------- reductions
def sum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):  # noqa: A001
    """numpy.sum with ``dtype`` (the operand converted first, as numpy accumulates),
    ``initial`` and ``where`` (masked-out elements count as 0)."""
    if _eager(a, where):
        kw = {} if where is None else {"where": where}
        return np.sum(a, axis=axis, dtype=dtype, keepdims=keepdims, initial=initial or 0, **kw)
    _no_out(out, "sum")
    g, red = _gnp(), _reduce()
    x = g.astype(a, dtype) if dtype is not None else a
    if where is not None:
        x = g.where(where, x, 0)
    r = red.sum_(x, axis, keepdims)
    if dtype is not None and r.dtype != np.dtype(dtype):
        r = g.astype(r, dtype)     # a small integer dtype: summed in int64, wrapped as numpy's own accumulator
    return r + initial if initial is not None else r


def mean(a, axis=None, dtype=None, out=None, keepdims=False, where=None):
    """numpy.mean with ``dtype`` and ``where`` (the mean of the selected elements)."""
    if _eager(a, where):
        kw = {} if where is None else {"where": where}
        return np.mean(a, axis=axis, dtype=dtype, keepdims=keepdims, **kw)
    _no_out(out, "mean")
    g, red = _gnp(), _reduce()
    x = g.astype(a, dtype) if dtype is not None else a
    if where is None and dtype is not None and np.dtype(dtype).kind in "iu":
        # numpy sums in the integer dtype (wrapping), then divides
        n = red.sum_(g.astype(x, np.float64) * 0.0 + 1.0, axis, keepdims)    # the count (x is an integer: finite)
        r = sum(x, axis, dtype, None, keepdims) / n
    elif where is None:
        r = red.mean(x, axis, keepdims)
    else:
        x = g.where(where, x, 0)
        if x.dtype.kind != "f":
            x = g.astype(x, np.float64)
        n = red.sum_(g.astype(g.broadcast_to(where, x.shape), x.dtype), axis, keepdims)
        r = red.sum_(x, axis, keepdims) / n
    # an integer dtype= is the result's, truncated, as numpy's (np.mean(k, dtype=np.int32))
    return g.astype(r, dtype) if dtype is not None and r.dtype != np.dtype(dtype) else r


def _extreme(name):
    def f(a, axis=None, out=None, keepdims=False, initial=None, where=None):
        if _eager(a, where):
            kw = {} if where is None else {"where": where}
            return getattr(np, name)(a, axis=axis, keepdims=keepdims,
                                     **({} if initial is None else {"initial": initial}), **kw)
        _no_out(out, name)
        g, red = _gnp(), _reduce()
        if where is not None:
            if initial is None:
                raise ValueError(f"reduction operation '{'maximum' if name == 'max' else 'minimum'}' does not "
                                 "have an identity, so to use a where mask one has to specify 'initial'")
            a = g.where(where, a, initial)
        r = (red.max_ if name == "max" else red.min_)(a, axis, keepdims)
        if initial is not None:
            r = (g.maximum if name == "max" else g.minimum)(r, initial)
        return r
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"numpy.{name} with ``initial`` and ``where`` (which needs ``initial``, as numpy's)."
    return f


max_, min_ = _extreme("max"), _extreme("min")


def _reduce():
    from . import reduce
    return reduce


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """log(sum(b exp(a))) (scipy's and jax.nn's ``b``: a positive weight per element)."""
    red = _reduce()
    if return_sign:
        return _logsumexp_signed(a, axis, b, keepdims)
    if b is None:
        return red.logsumexp(a, axis=axis, keepdims=keepdims)
    if _eager(a, b):
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        m = np.max(a, axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        r = np.log(np.sum(b * np.exp(a - m), axis=axis, keepdims=True)) + m
        return r if keepdims else np.squeeze(r, axis=axis)
    if not isinstance(b, _value_type()) and np.any(np.asarray(b) < 0):
        raise UnsupportedError("logsumexp with a negative b: pass return_sign=True (the log of |sum| and its sign)")
    g = _gnp()
    return red.logsumexp(a + g.log(b), axis=axis, keepdims=keepdims)


def _logsumexp_signed(a, axis, b, keepdims):
    """(log |sum(b exp(a))|, its sign): b may be negative (scipy's return_sign=True)."""
    from . import elementwise as ew, mathfuncs as mf, reduce as red, structure as st
    if _eager(a) and (b is None or _eager(b)):
        a = np.asarray(a, dtype=float) if np.asarray(a).dtype.kind != "f" else np.asarray(a)
        m = np.max(a, axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        s = np.sum(np.exp(a - m) * (1.0 if b is None else np.asarray(b)), axis=axis, keepdims=True)
        with np.errstate(divide="ignore"):
            r, sign = np.log(np.abs(s)) + m, np.sign(s)
        return (r, sign) if keepdims else (np.squeeze(r, axis=axis), np.squeeze(sign, axis=axis))
    m = red.max_(a, axis=axis, keepdims=True)
    m = ew.stop_gradient(ew.where(mf.isfinite(m), m, 0.0))
    s = red.sum_(ew.exp(a - m) * (1.0 if b is None else b), axis=axis, keepdims=True)
    r, sign = ew.log(ew.abs(s)) + m, ew.sign(s)
    if not keepdims:
        axes = tuple(range(np.ndim(r))) if axis is None else axis
        r, sign = st.squeeze(r, axis=axes), st.squeeze(sign, axis=axes)
    return r, sign


def _value_type():
    from ..tracer import Value
    return Value


def nansum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    """numpy.nansum: sum with nans counted as 0 (``initial``, ``where`` as sum's)."""
    if _eager(a, where):
        return np.nansum(a, axis=axis, dtype=dtype, keepdims=keepdims, **_given(initial=initial, where=where))
    _no_out(out, "nansum")
    g = _gnp()
    return sum(g.where(g.isnan(a), 0, a), axis, dtype, None, keepdims, initial, where)   # (0: an integer stays one)


def nanmean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=None):
    """numpy.nanmean: the mean of the elements that are not nan (and selected by ``where``)."""
    if _eager(a, where):
        return np.nanmean(a, axis=axis, dtype=dtype, keepdims=keepdims, **_given(where=where))
    _no_out(out, "nanmean")
    g = _gnp()
    ok = g.logical_not(g.isnan(a))
    if where is not None:
        ok = g.logical_and(ok, where)
    return mean(g.where(ok, a, 0.0), axis, dtype, None, keepdims, where=ok)


def _nanextreme(name, fill, reducer):
    def f(a, axis=None, out=None, keepdims=False, initial=None, where=None):
        if _eager(a, where):
            return getattr(np, name)(a, axis=axis, keepdims=keepdims, **_given(initial=initial, where=where))
        _no_out(out, name)
        g = _gnp()
        if np.dtype(getattr(a, "dtype", None) or np.asarray(a).dtype).kind == "f":   # (an integer keeps its dtype)
            a = g.where(g.isnan(a), fill, a)
        return reducer(a, axis, None, keepdims, initial, where)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"numpy.{name}: nans ignored (``initial``, ``where`` as {name[3:]}'s)."
    return f


def _given(**kw):
    """The keywords that were passed (not None), to hand on to numpy."""
    return {k: v for k, v in kw.items() if v is not None}


nanmax = _nanextreme("nanmax", -np.inf, max_)
nanmin = _nanextreme("nanmin", np.inf, min_)


def ptp(a, axis=None, out=None, keepdims=False):
    """numpy.ptp: max - min."""
    if _eager(a):
        return np.ptp(a, axis=axis, keepdims=keepdims)
    red = _reduce()
    return red.max_(a, axis, keepdims) - red.min_(a, axis, keepdims)


def count_nonzero(a, axis=None, *, keepdims=False):
    """numpy.count_nonzero (an integer count; derivative none)."""
    if _eager(a):
        return np.count_nonzero(a, axis=axis, keepdims=keepdims)
    g = _gnp()
    return _reduce().sum_(g.astype(a != 0, np.int64), axis, keepdims)


# ----------------------------------------------------------------------------- order statistics
# numpy's methods that interpolate between the two neighbours of q (n - 1): the weight of
# the upper one from the fraction and the lower index (nearest rounds half to even, as numpy)
_QUANTILE_METHODS = {
    "linear": lambda f, lo: f,
    "lower": lambda f, lo: 0.0,
    "higher": lambda f, lo: 1.0 if f > 0 else 0.0,
    "midpoint": lambda f, lo: 0.5 if f > 0 else 0.0,
    "nearest": lambda f, lo: 1.0 if f > 0.5 or (f == 0.5 and lo % 2 == 1) else 0.0,
}


def quantile(a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False,
             skip_nan=False):
    """numpy.quantile, methods 'linear' (the default), 'lower', 'higher', 'midpoint' and
    'nearest': the sorted values at ``q (n - 1)``, interpolated between the two
    neighbours; q a constant.  A slice holding a nan gives nan; ``skip_nan`` (nanquantile)
    takes the quantile of the numbers among it, method 'linear'."""
    if _eager(a):
        return np.quantile(a, q, axis=axis, method=method, keepdims=keepdims)
    _no_out(out, "quantile")
    if skip_nan and method != "linear":
        raise UnsupportedError(f"nanquantile method {method!r}: gradc supports 'linear'")
    if method not in _QUANTILE_METHODS:
        raise UnsupportedError(f"quantile method {method!r}: gradc supports "
                               f"{', '.join(map(repr, _QUANTILE_METHODS))}")
    g = _gnp()
    a = g.asarray(a)
    if a.dtype.kind != "f":   # numpy's quantiles of integers or bools are float64 (1.5 of [1, 2])
        a = g.astype(a, np.float64)
    rank, shape_in = a.ndim, tuple(a.shape)
    axes = tuple(range(rank)) if axis is None else tuple(
        ax % rank for ax in (axis if isinstance(axis, (tuple, list)) else (axis,)))
    if len(axes) != 1 or rank == 0:   # several axes (or all): one axis of their elements, last
        rest = [i for i in range(rank) if i not in axes]
        a = g.reshape(g.transpose(a, rest + list(axes)), tuple(a.shape[i] for i in rest) + (-1,))
        axis = a.ndim - 1
    else:
        axis = axes[0]
    s = g.moveaxis(g.sort(a, axis=axis), axis, -1)
    n = s.shape[-1]
    qs = np.asarray(q, dtype=np.float64)
    if skip_nan:
        from . import elementwise as ew, mathfuncs as mf, structure as st
        red = _reduce()
        k = red.sum_(ew.astype(ew.logical_not(mf.isnan(s)), np.int64), -1, True)   # the numbers, sorted first
        last = ew.maximum(k - 1, 0)
    out_ = []
    for qk in qs.reshape(-1):
        if skip_nan:   # q (k - 1) differs from slice to slice: gather its two neighbours
            pos = float(qk) * ew.astype(k - 1, s.dtype)
            lo = ew.clip(ew.astype(mf.floor(pos), np.int64), 0, last)
            frac = pos - ew.astype(lo, s.dtype)
            hi = ew.minimum(lo + 1, last)
            v = (st.take_along_axis(s, lo, axis=-1) * (1 - frac) + st.take_along_axis(s, hi, axis=-1) * frac)[..., 0]
            v = g.where(k[..., 0] == 0, np.nan, v)   # an all-nan slice: nan, as numpy
        else:
            pos = float(qk) * (n - 1)
            lo = min(int(math.floor(pos)), n - 1)
            hi = min(lo + 1, n - 1)
            frac = _QUANTILE_METHODS[method](pos - lo, lo)
            v = s[..., lo] if frac == 0 else s[..., lo] * (1 - frac) + s[..., hi] * frac
            # nan sorts last: a slice holding one has a nan quantile (numpy's), whichever q
            v = g.where(g.isnan(s[..., -1]), np.nan, v)
        if keepdims:   # a 1 for every reduced axis, where it was
            v = g.reshape(v, tuple(1 if i in axes else d for i, d in enumerate(shape_in)))
        out_.append(v)
    if qs.ndim == 0:
        return out_[0]
    return g.reshape(g.stack(out_, axis=0), qs.shape + tuple(out_[0].shape))


def percentile(a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False):
    """numpy.percentile: quantile(a, q / 100)."""
    if _eager(a):
        return np.percentile(a, q, axis=axis, method=method, keepdims=keepdims)
    return quantile(a, np.asarray(q, dtype=np.float64) / 100.0, axis, out, overwrite_input, method, keepdims)


def median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """numpy.median: quantile 0.5 (the mean of the two middle values of an even count)."""
    if _eager(a):
        return np.median(a, axis=axis, keepdims=keepdims)
    return quantile(a, 0.5, axis, out, keepdims=keepdims)


def nanquantile(a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False):
    """numpy.nanquantile: the quantile of the numbers, nans ignored (method 'linear')."""
    if _eager(a):
        return np.nanquantile(a, q, axis=axis, method=method, keepdims=keepdims)
    return quantile(a, q, axis, out, overwrite_input, method, keepdims, skip_nan=True)


def nanpercentile(a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False):
    """numpy.nanpercentile: nanquantile(a, q / 100)."""
    if _eager(a):
        return np.nanpercentile(a, q, axis=axis, method=method, keepdims=keepdims)
    return nanquantile(a, np.asarray(q, dtype=np.float64) / 100.0, axis, out, overwrite_input, method, keepdims)


def nanmedian(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """numpy.nanmedian: nanquantile 0.5."""
    if _eager(a):
        return np.nanmedian(a, axis=axis, keepdims=keepdims)
    return nanquantile(a, 0.5, axis, out, keepdims=keepdims)


# ----------------------------------------------------------------------------- statistics
def cov(m, y=None, rowvar=True, bias=False, ddof=None, fweights=None, aweights=None, *, dtype=None):
    """numpy.cov (rows are variables unless ``rowvar`` is False), with numpy's
    frequency and analytic weights; the result is at least float64 unless ``dtype``
    says otherwise, as numpy's."""
    if _eager(m, y, fweights, aweights):
        return np.cov(m, y, rowvar=rowvar, bias=bias, ddof=ddof, fweights=fweights, aweights=aweights,
                      dtype=dtype)
    g = _gnp()
    x = g.atleast_2d(m)
    if not rowvar and x.shape[0] != 1:
        x = x.T
    if y is not None:
        yy = g.atleast_2d(y)
        if not rowvar and yy.shape[0] != 1:
            yy = yy.T
        x = g.concatenate([x, yy], axis=0)
    want = np.dtype(dtype) if dtype is not None else np.result_type(
        x.dtype, *([] if y is None else [g.asarray(y).dtype]), np.float64)
    x = g.astype(x, want)
    n = x.shape[1]
    d = ddof if ddof is not None else (0 if bias else 1)
    w = None
    for name, v in (("fweights", fweights), ("aweights", aweights)):
        if v is not None:
            v = g.astype(g.asarray(v), want)
            if v.shape != (n,):
                raise ShapeError(f"cov: {name} must have shape ({n},) (one per observation), got {v.shape}")
            w = v if w is None else w * v
    if w is None:
        xc = x - g.mean(x, axis=1, keepdims=True)
        c = (xc @ xc.T) / (n - d)
    else:
        w_sum = g.sum(w)
        xc = x - (g.sum(x * w, axis=1, keepdims=True) / w_sum)
        fact = w_sum - d if aweights is None else \
            w_sum - d * g.sum(w * g.astype(g.asarray(aweights), want)) / w_sum
        c = (xc @ (xc * w).T) / fact
    return c[0, 0] if c.shape == (1, 1) else c


def corrcoef(x, y=None, rowvar=True, *, dtype=None):
    """numpy.corrcoef: cov scaled by the standard deviations."""
    if _eager(x, y):
        return np.corrcoef(x, y, rowvar=rowvar, dtype=dtype)
    g = _gnp()
    c = cov(x, y, rowvar, dtype=dtype)
    if c.ndim == 0:
        return c / c
    s = g.sqrt(g.diagonal(c))
    return c / (s[:, None] * s[None, :])


# ----------------------------------------------------------------------------- products
def kron(a, b):
    """numpy.kron of two matrices (or vectors)."""
    if _eager(a, b):
        return np.kron(a, b)
    g = _gnp()
    a, b = g.asarray(a), g.asarray(b)
    if a.ndim == 1 and b.ndim == 1:
        return g.reshape(a[:, None] * b[None, :], (-1,))
    if a.ndim != 2 or b.ndim != 2:
        raise UnsupportedError("kron: gradc supports vectors and matrices")
    (m, n), (p, q) = a.shape, b.shape
    return g.reshape(a[:, None, :, None] * b[None, :, None, :], (m * p, n * q))


def cross(a, b, axis=-1):
    """numpy.cross of 3-vectors along ``axis``."""
    if _eager(a, b):
        return np.cross(a, b, axis=axis)
    g = _gnp()
    a, b = g.moveaxis(g.asarray(a), axis, -1), g.moveaxis(g.asarray(b), axis, -1)
    if a.shape[-1] != 3 or b.shape[-1] != 3:
        raise UnsupportedError("cross: gradc supports 3-vectors")
    c = g.stack([a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1], a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
                 a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]], axis=-1)
    return g.moveaxis(c, -1, axis)


def vecdot(x1, x2, axis=-1):
    """numpy.vecdot (real): the sum of the products along ``axis``."""
    if _eager(x1, x2):
        return np.sum(np.multiply(x1, x2), axis=axis)
    return _reduce().sum_(x1 * x2, axis)


def matvec(x1, x2):
    """numpy.matvec: a stack of matrices times a stack of vectors."""
    if _eager(x1, x2):
        return np.matmul(x1, np.expand_dims(x2, -1))[..., 0]
    g = _gnp()
    return (x1 @ g.expand_dims(x2, -1))[..., 0]


def vecmat(x1, x2):
    """numpy.vecmat: a stack of vectors times a stack of matrices."""
    if _eager(x1, x2):
        return np.matmul(np.expand_dims(x1, -2), x2)[..., 0, :]
    g = _gnp()
    return (g.expand_dims(x1, -2) @ x2)[..., 0, :]


def multi_dot(arrays, *, out=None):
    """numpy.linalg.multi_dot: the chain of products, cheapest order (numpy's dynamic
    programming over the sizes) for three or more."""
    if _eager(*arrays):
        return np.linalg.multi_dot(arrays)
    _no_out(out, "multi_dot")
    g = _gnp()
    xs = list(arrays)
    first_vec, last_vec = xs[0].ndim == 1, xs[-1].ndim == 1
    if first_vec:
        xs[0] = g.expand_dims(xs[0], 0)
    if last_vec:
        xs[-1] = g.expand_dims(xs[-1], -1)
    dims = [x.shape[0] for x in xs] + [xs[-1].shape[1]]
    n = len(xs)
    cost = [[0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    for length in range(1, n):
        for i in range(n - length):
            j = i + length
            cost[i][j] = None
            for k in range(i, j):
                c = cost[i][k] + cost[k + 1][j] + dims[i] * dims[k + 1] * dims[j + 1]
                if cost[i][j] is None or c < cost[i][j]:
                    cost[i][j], split[i][j] = c, k

    def chain(i, j):
        return xs[i] if i == j else chain(i, split[i][j]) @ chain(split[i][j] + 1, j)
    r = chain(0, n - 1)
    if first_vec:
        r = r[0]
    if last_vec:
        r = r[..., 0]
    return r


def matrix_power(a, n):
    """numpy.linalg.matrix_power for n >= 0: products by repeated squaring."""
    if _eager(a):
        return np.linalg.matrix_power(a, n)
    g = _gnp()
    n = int(n)
    if n < 0:
        raise UnsupportedError("matrix_power with a negative exponent: use linalg.inv first")
    result, base = None, a
    while True:
        if n & 1:
            result = base if result is None else result @ base
        n >>= 1
        if not n:
            break
        base = base @ base
    if result is None:
        eye = np.broadcast_to(np.eye(a.shape[-1], dtype=a.dtype), tuple(a.shape))
        return g.asarray(a) * 0 + eye
    return result


# ----------------------------------------------------------------------------- axes and arrays
def matrix_transpose(x):
    """numpy.matrix_transpose: a stack of matrices' last two axes swapped."""
    if _eager(x):
        return np.swapaxes(x, -1, -2)
    return _gnp().swapaxes(x, -1, -2)


def permute_dims(a, axes=None):
    """numpy.permute_dims (the array API's transpose)."""
    return _gnp().transpose(a, axes)


def ravel(a, order="C"):
    """numpy.ravel (row-major)."""
    return _gnp().reshape(a, -1) if not _eager(a) else np.ravel(a)


def fliplr(m):
    return _gnp().flip(m, 1)


def flipud(m):
    return _gnp().flip(m, 0)


def rot90(m, k=1, axes=(0, 1)):
    """numpy.rot90: flips and a transpose."""
    if _eager(m):
        return np.rot90(m, k, axes)
    g = _gnp()
    k %= 4
    a0, a1 = axes
    if k == 0:
        return m
    if k == 2:
        return g.flip(g.flip(m, a0), a1)
    perm = list(range(m.ndim))
    perm[a0], perm[a1] = perm[a1], perm[a0]
    return g.transpose(g.flip(m, a1), perm) if k == 1 else g.flip(g.transpose(m, perm), a1)


def append(arr, values, axis=None):
    """numpy.append: concatenate (both flattened without an axis)."""
    if _eager(arr, values):
        return np.append(arr, values, axis=axis)
    g = _gnp()
    if axis is None:
        return g.concatenate([g.reshape(arr, -1), g.reshape(values, -1)])
    return g.concatenate([arr, values], axis=axis)


def select(condlist, choicelist, default=0):
    """numpy.select: the first choice whose condition holds, else ``default``."""
    if _eager(*condlist, *choicelist, default):
        return np.select(condlist, choicelist, default)
    g = _gnp()
    r = default
    for c, v in reversed(list(zip(condlist, choicelist))):
        r = g.where(c, v, r)
    return r


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """numpy.isclose: |a - b| <= atol + rtol |b| (infinities equal to themselves)."""
    if _eager(a, b):
        return np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)
    g = _gnp()
    close = g.abs(a - b) <= atol + rtol * g.abs(b)
    close = g.logical_or(close, a == b)
    if equal_nan:
        close = g.logical_or(close, g.logical_and(g.isnan(a), g.isnan(b)))
    return close


# sin(y)/y = sum_n (-1)^n y^2n / (2n+1)!, through y^18 (1/19! = 8e-18: below float64's
# rounding for |y| < 1)
_SINC_SERIES = [(-1) ** n / math.factorial(2 * n + 1) for n in range(10)]


def sinc(x):
    """numpy.sinc: sin(pi x) / (pi x), 1 at 0 (its derivative there, 0, too).

    For |pi x| < 1 it is the Taylor series in (pi x)^2: the quotient's derivative,
    (y cos y - sin y) / y^2, cancels there (all of it below |x| ~ 1e-8, 100% error at
    x = 1e-4 in float32), while the series differentiates term by term without
    cancellation."""
    if _eager(x):
        return np.sinc(x)
    g = _gnp()
    y = math.pi * x
    small = g.abs(y) < 1.0
    big = g.where(small, 1.0, y)            # the quotient's branch never sees 0 (or 0/0's nan gradient)
    t = g.where(small, y, 0.0) ** 2
    series = t * 0 + _SINC_SERIES[-1]
    for c in reversed(_SINC_SERIES[:-1]):
        series = series * t + c
    return g.where(small, series, g.sin(big) / big)


def trapezoid(y, x=None, dx=1.0, axis=-1):
    """numpy.trapezoid: the trapezoidal rule along ``axis``."""
    if _eager(y, x):
        return np.trapezoid(y, x, dx=dx, axis=axis)
    g = _gnp()
    y = g.moveaxis(y, axis, -1)
    mid = (y[..., 1:] + y[..., :-1]) / 2.0
    if x is None:
        return _reduce().sum_(mid, -1) * dx
    xs = g.moveaxis(g.asarray(x), axis, -1) if g.ndim(x) > 1 else x
    return _reduce().sum_(mid * (xs[..., 1:] - xs[..., :-1]), -1)


def polyval(p, x):
    """numpy.polyval: Horner's rule, highest power first."""
    if _eager(p, x):
        return np.polyval(p, x)
    if isinstance(p, (list, tuple)) and not builtins.any(isinstance(c, _trace().Value) for c in p):
        p = np.asarray(p)       # as numpy: a list of ints is an int64 array (its entries are not weak scalars)
    r = x * 0                   # numpy's zeros_like(x): integers stay integers
    for k in range(len(p)):
        r = r * x + p[k]
    return r
