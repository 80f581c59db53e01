"""Array behaviour of traced values: operators, methods, and numpy's dispatch protocols
(``__array_ufunc__``, ``__array_function__``), so unmodified numpy code traces."""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..tracer import Value
from . import at, bitwise as bw, elementwise as ew, reduce as red, linalg as la, structure as st
from . import arrays as arr, axes as axes_ops, compose, einsum, mathfuncs, stats


def _r(f):
    return lambda self, other: f(other, self)


# the arithmetic operators and their reflected forms (x + 1, 1 + x)
for _name, _f in [("add", ew.add), ("sub", ew.subtract), ("mul", ew.multiply), ("truediv", ew.divide),
                  ("floordiv", mathfuncs.floor_divide), ("mod", mathfuncs.remainder), ("divmod", mathfuncs.divmod_)]:
    setattr(Value, f"__{_name}__", (lambda f: lambda s, o: f(s, o))(_f))
    setattr(Value, f"__r{_name}__", _r(_f))
Value.__pow__ = lambda s, o: ew.power(s, o, operator=True)
Value.__rpow__ = _r(ew.power)
Value.__matmul__ = lambda s, o: la.matmul(s, o)
Value.__rmatmul__ = _r(la.matmul)
Value.__neg__ = lambda s: ew.neg(s)
Value.__pos__ = lambda s: s
Value.__abs__ = lambda s: ew.abs(s)
Value.__gt__ = lambda s, o: ew.greater(s, o)
Value.__ge__ = lambda s, o: ew.greater_equal(s, o)
Value.__lt__ = lambda s, o: ew.less(s, o)
Value.__le__ = lambda s, o: ew.less_equal(s, o)
Value.__eq__ = lambda s, o: ew.equal(s, o)
Value.__ne__ = lambda s, o: ew.not_equal(s, o)


# & | ^ ~ << >>: numpy's bitwise operations on integers, logical ones on booleans (masks)
for _name, _f in [("and", bw.bitwise_and), ("or", bw.bitwise_or), ("xor", bw.bitwise_xor),
                  ("lshift", bw.left_shift), ("rshift", bw.right_shift)]:
    setattr(Value, f"__{_name}__", (lambda f: lambda s, o: f(s, o))(_f))
    setattr(Value, f"__r{_name}__", _r(_f))
Value.__invert__ = lambda s: bw.invert(s)
Value.view = lambda s, dtype=None, type=None: bw.view(s, dtype, type)
Value.__getitem__ = lambda s, k: st.getitem(s, k)
Value.at = property(lambda s: at.IndexUpdateHelper(s),
                    doc="Functional updates: x.at[idx].set(v) (and .add, .multiply, .min, .max, .get) "
                        "return a new value; see gradc.ops.at.")
Value.T = property(lambda s: la.transpose(s))
Value.mT = property(lambda s: la.swapaxes(s, -1, -2), doc="The stack of matrices transposed (last two axes swapped).")
Value.swapaxes = lambda s, axis1, axis2: la.swapaxes(s, axis1, axis2)
Value.sum = lambda s, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None: \
    compose.sum(s, axis, dtype, out, keepdims, initial, where)
Value.mean = lambda s, axis=None, dtype=None, out=None, keepdims=False, where=None: \
    compose.mean(s, axis, dtype, out, keepdims, where)
Value.max = lambda s, axis=None, out=None, keepdims=False, initial=None, where=None: \
    compose.max_(s, axis, out, keepdims, initial, where)
Value.min = lambda s, axis=None, out=None, keepdims=False, initial=None, where=None: \
    compose.min_(s, axis, out, keepdims, initial, where)
Value.ptp = lambda s, axis=None, out=None, keepdims=False: compose.ptp(s, axis, out, keepdims)
Value.dot = lambda s, o: einsum.dot(s, o)
Value.reshape = lambda s, *shape: st.reshape(s, *shape)
Value.transpose = lambda s, *axes: la.transpose(s, axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else (axes or None))
Value.astype = lambda s, dtype: ew.astype(s, dtype)
Value.copy = lambda s: s
Value.round = lambda s, decimals=0, out=None: mathfuncs.round(s, decimals, out)
Value.conj = Value.conjugate = lambda s: s
Value.real = property(lambda s: s, doc="The real part: a real array (gradc's arrays are real) is itself.")
Value.clip = lambda s, a_min=None, a_max=None, out=None, **kw: ew.clip(s, a_min, a_max, out, **kw)
Value.squeeze = lambda s, axis=None: st.squeeze(s, axis)
# (numpy's keywords where=, mean=, correction=, initial=: as the functions take them)
Value.var = lambda s, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw: \
    stats.var(s, axis, dtype, out, ddof, keepdims, **kw)
Value.std = lambda s, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw: \
    stats.std(s, axis, dtype, out, ddof, keepdims, **kw)
Value.prod = lambda s, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None: \
    stats.prod(s, axis, dtype, out, keepdims, initial, where)
Value.cumsum = lambda s, axis=None, dtype=None, out=None: stats.cumsum(s, axis, dtype, out)
Value.cumprod = lambda s, axis=None, dtype=None, out=None: stats.cumprod(s, axis, dtype, out)
Value.argmax = lambda s, axis=None, out=None, keepdims=False: stats.argmax(s, axis, out, keepdims)
Value.argmin = lambda s, axis=None, out=None, keepdims=False: stats.argmin(s, axis, out, keepdims)
Value.any = lambda s, axis=None, out=None, keepdims=False, *, where=None: stats.any(s, axis, out, keepdims, where=where)
Value.all = lambda s, axis=None, out=None, keepdims=False, *, where=None: stats.all(s, axis, out, keepdims, where=where)
Value.argsort = lambda s, axis=-1, kind=None, order=None, **kw: arr.argsort(s, axis, kind, order, **kw)
Value.diagonal = lambda s, offset=0, axis1=0, axis2=1: arr.diagonal(s, offset, axis1, axis2)
Value.trace = lambda s, offset=0, axis1=0, axis2=1, dtype=None, out=None: arr.trace(s, offset, axis1, axis2, dtype, out)
Value.repeat = lambda s, repeats, axis=None: arr.repeat(s, repeats, axis)
Value.take = lambda s, indices, axis=None: axes_ops.take(s, indices, axis)
Value.ravel = lambda s, order="C": st.reshape(s, -1)
Value.flatten = lambda s, order="C": st.reshape(s, -1)


def _sort_in_place(self, axis=-1, kind=None, order=None):
    raise UnsupportedError("x.sort() sorts in place, and a traced value cannot be changed: "
                           "use y = gradc.numpy.sort(x, axis)")


Value.sort = _sort_in_place


_SCIPY_UFUNCS = frozenset({"erf", "erfc", "erfinv", "ndtr", "ndtri", "log_ndtr", "expit", "logit", "xlogy",
                            "xlog1py", "entr", "gammaln", "psi", "digamma", "gamma", "gammasgn", "loggamma",
                            "beta", "poch", "kl_div", "rel_entr", "boxcox", "boxcox1p", "erfcx", "i0", "i0e",
                            "i1", "i1e"})


def _scipy_ufunc(name):
    """scipy.special's ufunc ``name`` as gradc.scipy.special has it, or None (scipy code on
    traced values: ``scipy.special.erf(x)`` dispatches here)."""
    if name not in _SCIPY_UFUNCS:
        return None
    from ..scipy import special
    return getattr(special, name)


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    from .. import numpy as gnp
    from ..tracer import user_source
    if kwargs.get("out") is not None:
        raise UnsupportedError(f"numpy.{ufunc.__name__}(..., out=...) cannot write into a traced value")
    kwargs.pop("out", None)
    if method == "__call__":
        f = gnp.UFUNCS.get(ufunc.__name__) or _scipy_ufunc(ufunc.__name__)
        if f is None:
            raise gnp.unsupported(ufunc.__name__, "numpy", user_source())
        if kwargs:
            raise UnsupportedError(f"numpy.{ufunc.__name__}: keyword arguments {sorted(kwargs)} are not supported")
        return f(*inputs)
    from .ufuncs import array_ufunc_method
    return array_ufunc_method(ufunc, method, inputs, kwargs, gnp.UFUNCS.get(ufunc.__name__))


def _array_function(self, func, types, args, kwargs):
    from .. import numpy as gnp
    from ..tracer import user_source
    module = getattr(func, "__module__", None) or "numpy"
    if module == "numpy.linalg":
        f = gnp.LINALG_FUNCTIONS.get(func.__name__)
        name = f"linalg.{func.__name__}"
    else:
        f = gnp.FUNCTIONS.get(func.__name__) if module == "numpy" else None
        name = func.__name__ if module == "numpy" else f"{module[len('numpy.'):]}.{func.__name__}"
    if f is None:
        raise gnp.unsupported(name, "numpy", user_source())
    return f(*args, **kwargs)


Value.__array_ufunc__ = _array_ufunc
Value.__array_function__ = _array_function
