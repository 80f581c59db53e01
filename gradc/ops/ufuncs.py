"""numpy's ufunc methods on gradc.numpy's ufuncs (``np.add.reduce``, ``np.maximum.accumulate``,
``np.multiply.outer``, ...), and on numpy's own ufuncs applied to traced values (numpy hands
``np.add.reduce(x)`` to ``Value.__array_ufunc__`` with method ``"reduce"``).

Each method is composed from ops that already differentiate:

* ``reduce``: the reductions (add: ``sum``, multiply: ``prod``, maximum/minimum: ``max``/
  ``min``, logical_and/logical_or: ``all``/``any``, logaddexp/logaddexp2: ``logsumexp``),
  with numpy's default ``axis=0``;
* ``accumulate``: the scans (add: ``cumsum``, multiply: ``cumprod``, logaddexp and
  logaddexp2: a scan of ``logaddexp``, smooth, so differentiating through its tree is
  exact) and the running maximum and minimum below;
* ``outer``: the ufunc on ``a`` reshaped to ``a.shape + (1,) * b.ndim`` against ``b``
  (broadcasting), for every binary ufunc;
* ``at`` writes into its first operand in place, which a traced value cannot be: it is
  refused with the functional form to use (``x.at[idx].add(v)``); so is ``reduceat``.

The running maximum (minimum alike) is a Hillis-Steele scan of ``maximum`` on the values
with the gradient stopped (log2 n shifted maximums, O(n log n) work, each level a buffer
of its own), plus a term whose value is exactly 0 and which carries the gradient.  A
plain scan of ``maximum`` would differentiate through its tree of pairwise maximums and
split a tie 1/2, 1/4, 1/4 by the tree's shape; instead the gradient follows gradc's
``max`` reduction (docs/derivatives.md): ``y[i]``'s cotangent is shared equally by the
``k`` elements ``x[j]``, ``j <= i``, equal to ``y[i]`` (``k`` tied ones get ``1/k``), so
``maximum.accumulate(x)[-1]`` and ``max(x)`` have the same gradient.  Such elements all lie
in the run of positions where ``y`` holds the value ``y[i]`` and hold it themselves
(``x[j] == y[j]``); with ``s[i]`` the start of ``i``'s run (a running maximum of run
starts) and ``d = x - stop_gradient(x)`` (0 in value, gradient 1) masked to those
elements, the term is ``(D[i] - D_excl[s[i]]) / k[i]``, ``D`` the running sum of ``d``
and ``D_excl`` its exclusive form, ``k`` counted the same way: cumsums and gathers, whose
adjoints are the reversed cumsums and scatter-adds.  A nan makes every later value nan
(numpy's rule) and gets no gradient, nor do infinite elements.
"""
from __future__ import annotations

import functools

import numpy as np

from ..errors import UnsupportedError
from . import elementwise as ew
from .bind import is_python_number, weak_result


def _trace():
    from .. import tracer
    return tracer


def _eager(*xs):
    t = _trace()
    return t.current() is None and not any(isinstance(x, t.Value) for x in xs)


# ----------------------------------------------------------------------------- reduce
_LN2 = float(np.log(2.0))


def _logaddexp_reduce(x, axis, keepdims):
    from .compose import logsumexp
    return logsumexp(x, axis, keepdims=keepdims)


def _logaddexp2_reduce(x, axis, keepdims):
    return _logaddexp_reduce(x * _LN2, axis, keepdims) / _LN2


def _reductions():
    from . import compose, stats
    return {"add": compose.sum, "multiply": stats.prod, "maximum": compose.max_, "minimum": compose.min_,
            "logical_and": stats.all, "logical_or": stats.any,
            "logaddexp": _logaddexp_reduce, "logaddexp2": _logaddexp2_reduce}


_ACCUMULATE = ("add", "multiply", "maximum", "minimum", "logaddexp", "logaddexp2")


def reduce(name, a, axis=0, dtype=None, out=None, keepdims=False, initial=None, where=True):
    """numpy's ``ufunc.reduce`` (default ``axis=0``; None: every axis) for add, multiply,
    maximum, minimum, logical_and, logical_or, logaddexp and logaddexp2 (logsumexp)."""
    if _eager(a, where):
        kw = {} if initial is None else {"initial": initial}
        return getattr(np, name).reduce(a, axis=axis, dtype=dtype, keepdims=keepdims, where=where, **kw)
    f = _reductions().get(name)
    if f is None:
        raise UnsupportedError(f"{name}.reduce is not supported by gradc (add, multiply, maximum, minimum, "
                               "logical_and, logical_or, logaddexp and logaddexp2 reduce)")
    if out is not None:
        raise UnsupportedError(f"{name}.reduce(..., out=...) cannot write into a traced value")
    where = None if where is True else where
    x = _trace().to_value(a)
    if name in ("add", "multiply"):
        return f(x, axis, dtype, None, keepdims, initial, where)
    if dtype is not None:
        x = ew.astype(x, dtype)
    if name in ("maximum", "minimum"):
        return f(x, axis, None, keepdims, initial, where)
    if initial is not None or (where is not None and name.startswith("logaddexp")):
        raise UnsupportedError(f"{name}.reduce: {'initial' if initial is not None else 'where'}= "
                               "is not supported by gradc")
    if name.startswith("logaddexp"):
        if x.dtype.kind != "f":
            x = ew.astype(x, np.float64)
        return f(x, axis, keepdims)
    return f(x, axis, None, keepdims, where=where)


# ----------------------------------------------------------------------------- accumulate
def accumulate(name, a, axis=0, dtype=None, out=None):
    """numpy's ``ufunc.accumulate`` along ``axis`` (default 0) for add (cumsum), multiply
    (cumprod), maximum and minimum (running extremes), logaddexp and logaddexp2 (a running
    logsumexp: a scan of the smooth ``logaddexp``)."""
    if _eager(a):
        return getattr(np, name).accumulate(a, axis=axis, dtype=dtype)
    if name not in _ACCUMULATE:
        raise UnsupportedError(f"{name}.accumulate is not supported by gradc ({', '.join(_ACCUMULATE)} "
                               "accumulate)")
    if out is not None:
        raise UnsupportedError(f"{name}.accumulate(..., out=...) cannot write into a traced value")
    if axis is None or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{name}.accumulate: axis must be one integer (numpy's rule), got {axis!r}")
    x = _trace().to_value(a)
    if x.ndim == 0:
        raise ValueError(f"{name}.accumulate: cannot accumulate a 0-d array (numpy's rule)")
    from . import stats
    if name == "add":
        return stats.cumsum(x, axis, dtype)
    if name == "multiply":
        return stats.cumprod(x, axis, dtype)
    if dtype is not None:
        x = ew.astype(x, dtype)
    if name.startswith("logaddexp"):
        from . import mathfuncs
        from .reduce import norm_axes
        if x.dtype.kind != "f":
            x = ew.astype(x, np.float64)
        return _scan(x, norm_axes(axis, x.ndim)[0], getattr(mathfuncs, name))
    return running_extreme(x, axis, ew.maximum if name == "maximum" else ew.minimum)


def _scan(v, axis, combine):
    """Hillis-Steele: log2(n) levels of ``combine(v, v shifted by 2**k)`` (where the
    shift reaches before the start, ``v`` as it is), each level a buffer of its own."""
    from .stats import _iota, _shift, materialize
    n = v._b.env.pin(v._shape[axis])
    i = _iota(v, axis)
    s = 1
    while s < n:
        v = materialize(ew.where(ew.greater_equal(i, s), combine(v, _shift(v, axis, s, n)), v))
        s *= 2
    return v


def running_extreme(x, axis, combine):
    """``maximum.accumulate`` (``combine=maximum``) or ``minimum.accumulate`` of ``x`` along
    ``axis``; the gradient is shared equally by tied elements (the module's docstring)."""
    from .reduce import norm_axes
    from .stats import _cut, _iota, cumsum
    from .structure import take_along_axis
    axis = norm_axes(axis, x.ndim)[0]
    if x.dtype == np.bool_:
        return ew.astype(running_extreme(ew.astype(x, np.int8), axis, combine), np.bool_)
    n = x._b.env.pin(x._shape[axis])
    i = _iota(x, axis)
    if n < 2:
        return x
    v = ew.stop_gradient(x) if x.dtype.kind == "f" else x
    y = _scan(v, axis, combine)
    if x.dtype.kind != "f":
        return y
    from .mathfuncs import isfinite, logical_or
    from .structure import concatenate
    before = concatenate([_cut(y, axis, 0, 1), _cut(y, axis, 0, n - 1)], axis=axis)
    new_run = logical_or(ew.equal(i, 0), ew.not_equal(y, before))
    start = _scan(ew.where(new_run, i, 0), axis, ew.maximum)           # where i's run of equal running values starts
    holds = ew.logical_and(ew.equal(v, y), isfinite(v))
    d = ew.where(holds, x - v, 0.0)                  # 0, with gradient 1 where x[j] holds y
    cnt = ew.astype(holds, np.int64)

    def in_run(c):                                   # c's running sum over i's run, up to i
        total = cumsum(c, axis)
        return total - take_along_axis(total - c, start, axis)

    k = ew.maximum(ew.astype(in_run(cnt), x.dtype), 1.0)
    return y + in_run(d) / k


# ----------------------------------------------------------------------------- outer
def outer(name, f, a, b, **kw):
    """numpy's ``ufunc.outer``: ``f(a[..., None, ..., None], b)`` (``b.ndim`` new axes)."""
    if _eager(a, b):
        return getattr(np, name).outer(a, b, **kw)
    if kw:
        raise UnsupportedError(f"{name}.outer: keyword arguments {sorted(kw)} are not supported")
    from .structure import reshape_sym
    t = _trace()
    a = t.to_value(a) if isinstance(a, t.Value) else np.asarray(a)
    b_ndim = b.ndim if isinstance(b, t.Value) else np.ndim(b)
    shape = tuple(a._shape if isinstance(a, t.Value) else a.shape) + (1,) * b_ndim
    return f(reshape_sym(a, shape) if isinstance(a, t.Value) else np.reshape(a, shape), b)


# ----------------------------------------------------------------------------- the objects
_AT_MODES = {"add": "add", "multiply": "multiply", "maximum": "max", "minimum": "min"}


def _refuse_at(name):
    how = (f"use the functional form y = x.at[indices].{_AT_MODES[name]}(v) (a new array; repeated "
           "indices accumulate, as numpy's)" if name in _AT_MODES else "gradc has no functional form of it")
    return UnsupportedError(f"{name}.at writes into its first operand in place, which a traced value "
                            f"cannot be: {how}")


class Ufunc:
    """A gradc.numpy ufunc: called as its function, with numpy's methods ``reduce``,
    ``accumulate`` and ``outer`` (see gradc/ops/ufuncs.py for which ufuncs have which)."""

    def __init__(self, name, f, lookup):
        functools.update_wrapper(self, f)
        self.__name__ = self.__qualname__ = name
        self._f = f
        self._lookup = lookup       # name -> the ufunc gradc.numpy has under it (how one pickles)
        ref = getattr(np, name, None)
        self.nin = getattr(ref, "nin", 1)
        self.nout = getattr(ref, "nout", 1)
        self.nargs = getattr(ref, "nargs", self.nin + self.nout)
        self.identity = getattr(ref, "identity", None)
        self.signature = None

    def __call__(self, *args, **kw):
        if args and not kw and all(is_python_number(a) for a in args) and hasattr(np, self.__name__):
            # Python numbers alone: a weak number, folded now (also inside a trace, where
            # it is a constant of the graph and, as a traced op's, its value warns of nothing)
            if _trace().current() is None:
                return weak_result(getattr(np, self.__name__)(*args))
            with np.errstate(all="ignore"):
                return weak_result(getattr(np, self.__name__)(*args))
        return self._f(*args, **kw)

    def __repr__(self):
        return f"<gradc ufunc '{self.__name__}'>"

    def __reduce__(self):
        return self._lookup, (self.__name__,)

    def reduce(self, array, axis=0, dtype=None, out=None, keepdims=False, initial=None, where=True):
        """numpy's ufunc.reduce (add, multiply, maximum, minimum, logical_and, logical_or, logaddexp(2))."""
        return reduce(self.__name__, array, axis, dtype, out, keepdims, initial, where)

    def accumulate(self, array, axis=0, dtype=None, out=None):
        """numpy's ufunc.accumulate (add, multiply, maximum, minimum, logaddexp, logaddexp2)."""
        return accumulate(self.__name__, array, axis, dtype, out)

    def outer(self, A, B, /, **kwargs):
        """numpy's ufunc.outer: every pair of elements (binary ufuncs)."""
        if self.nin != 2:
            raise ValueError(f"{self.__name__}.outer: only binary ufuncs have an outer (numpy's rule)")
        return outer(self.__name__, self._f, A, B, **kwargs)

    def at(self, a, indices, b=None, /):
        """numpy's ufunc.at writes in place: on concrete arrays outside a trace numpy's;
        on traced values refused, naming the functional form ``x.at[indices]``."""
        if _eager(a, indices, b):
            args = (a, indices) if b is None else (a, indices, b)
            return getattr(np, self.__name__).at(*args)
        raise _refuse_at(self.__name__)

    def reduceat(self, *args, **kwargs):
        """numpy's ufunc.reduceat: not supported by gradc (gradc.ops.segment_sum reduces segments)."""
        raise UnsupportedError(f"{self.__name__}.reduceat is not supported by gradc "
                               "(gradc.ops.segment_sum and friends reduce segments)")

    def __getattr__(self, attr):
        if attr.startswith("_"):
            raise AttributeError(attr)
        raise UnsupportedError(f"{self.__name__}.{attr} is not supported by gradc (gradc's ufuncs have "
                               "reduce, accumulate, outer; see docs/numpy.md)")


def array_ufunc_method(ufunc, method, inputs, kwargs, f):
    """``Value.__array_ufunc__`` for a method other than a call: numpy's ``ufunc.<method>``
    on traced values, as gradc.numpy's ufunc of that name (``f``, or None) does it."""
    from ..tracer import user_source
    name = ufunc.__name__
    if method == "at":
        raise _refuse_at(name)
    if method == "reduce" and name in _reductions():
        return reduce(name, *inputs, **kwargs)
    if method == "accumulate" and name in _ACCUMULATE:
        return accumulate(name, *inputs, **kwargs)
    if method == "outer" and f is not None and ufunc.nin == 2:
        return outer(name, f, *inputs, **kwargs)
    at = user_source()
    raise UnsupportedError(f"numpy.{name}.{method} is not supported by gradc" + (f" (at {at})" if at else "")
                           + ": gradc's ufuncs reduce (add, multiply, maximum, minimum, logical_and, logical_or, "
                           "logaddexp, logaddexp2), accumulate (add, multiply, maximum, minimum, logaddexp, "
                           "logaddexp2) and take outer (binary ufuncs); "
                           "see docs/numpy.md")
