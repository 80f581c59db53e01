"""numpy's nan-ignoring functions beyond ``nansum``/``nanmean``/``nanmax``/``nanmin``
(gradc/ops/compose.py): ``nanvar``, ``nanstd``, ``nanprod``, ``nanargmax``,
``nanargmin``, ``nancumsum`` and ``nancumprod``.  Each replaces a nan by the operation's
neutral element (0 for sums, 1 for products, -inf/inf for the arg-extremes) and counts
only the numbers, so gradients reach the numbers only.  Outside a trace, numpy's own.
"""
from __future__ import annotations

import numpy as np

from . import elementwise as ew
from .compose import _given
from .mathfuncs import isnan
from .bind import tracer
from .stats import _eager, _no_out, argmax, argmin, cumprod, cumsum, prod, var


def _nan_to(a, value):
    """``a`` with its nans replaced by ``value`` (integers and bools hold none: as they are)."""
    a = tracer().to_value(a)
    return ew.where(isnan(a), value, a) if a.dtype.kind == "f" else a


def nanvar(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None,
           correction=None):
    """numpy.nanvar: the variance of the numbers (``ddof``/``correction`` as var's)."""
    if _eager(a, where):
        return np.nanvar(a, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims,
                         **_given(where=where, mean=mean, correction=correction))
    _no_out(out, "nanvar")
    ok = ew.logical_not(isnan(a))
    if where is not None:
        ok = ew.logical_and(ok, where)
    return var(ew.where(ok, a, 0.0), axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims, where=ok, mean=mean,
               correction=correction)


def nanstd(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None,
           correction=None):
    """numpy.nanstd: sqrt(nanvar)."""
    if _eager(a, where):
        return np.nanstd(a, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims,
                         **_given(where=where, mean=mean, correction=correction))
    return ew.sqrt(nanvar(a, axis, dtype, out, ddof, keepdims, where=where, mean=mean, correction=correction))


def nanprod(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    """numpy.nanprod: the product with nans counted as 1."""
    if _eager(a, where):
        return np.nanprod(a, axis=axis, dtype=dtype, keepdims=keepdims, **_given(initial=initial, where=where))
    _no_out(out, "nanprod")
    return prod(_nan_to(a, 1.0), axis=axis, dtype=dtype, keepdims=keepdims, initial=initial, where=where)


def _nanarg(name, fill, arg):
    def f(a, axis=None, out=None, *, keepdims=False):
        if _eager(a):
            return getattr(np, name)(a, axis=axis, keepdims=keepdims)
        _no_out(out, name)
        # numpy raises for a slice of nans only; compiled code cannot, and gives the
        # index of the slice's first element (an all-nan slice ranks its nans equal)
        return arg(_nan_to(a, fill), axis=axis, keepdims=keepdims)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = (f"numpy.{name}: the index of the {name[6:]} ignoring nans (a slice of nans only gives 0, "
                 "where numpy raises).")
    return f


nanargmax = _nanarg("nanargmax", -np.inf, argmax)
nanargmin = _nanarg("nanargmin", np.inf, argmin)


def nancumsum(a, axis=None, dtype=None, out=None):
    """numpy.nancumsum: the running sum with nans counted as 0."""
    if _eager(a):
        return np.nancumsum(a, axis=axis, dtype=dtype)
    _no_out(out, "nancumsum")
    return cumsum(_nan_to(a, 0.0), axis=axis, dtype=dtype)


def nancumprod(a, axis=None, dtype=None, out=None):
    """numpy.nancumprod: the running product with nans counted as 1."""
    if _eager(a):
        return np.nancumprod(a, axis=axis, dtype=dtype)
    _no_out(out, "nancumprod")
    return cumprod(_nan_to(a, 1.0), axis=axis, dtype=dtype)
