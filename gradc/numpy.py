"""``import gradc.numpy as np``: numpy's names for everything gradc supports.

Each function works on traced values inside a gradc transformation and falls back to
numpy on concrete arrays outside one.  Names numpy lacks (relu, sigmoid, softplus,
logsumexp, softmax, log_softmax, stop_gradient, erf, erfc, gelu) are here too.
"""
from __future__ import annotations

import builtins
import difflib as _difflib
import functools as _functools
import inspect as _inspect
import types as _types

import numpy as _np

from .ops import axes as _ax, einsum as _es, elementwise as _ew, reduce as _red, linalg as _la, structure as _st
from .ops import mathfuncs as _mf, stats as _stats, arrays as _arr, lapack as _lapack, decomp as _decomp, special as _special
from .ops import bitwise as _bw, compose as _cmp, lookup as _lookup, segments as _segments, indices as _idx
from .ops import extras as _extras, assorted as _asd, nanfuncs as _nanf, ufuncs as _ufuncs, padding as _padding
from .tracer import Value as _Value, current as _current, to_value as _to_value

float32, float64, int64, int32, bool_ = _np.float32, _np.float64, _np.int64, _np.int32, _np.bool_
int8, int16, uint8, uint16, uint32, uint64 = _np.int8, _np.int16, _np.uint8, _np.uint16, _np.uint32, _np.uint64
# float16: arguments and constants compute in float32; a cast to float16 is refused (docs/arrays.md)
float16, bool, dtype = _np.float16, _np.bool_, _np.dtype  # noqa: A001
pi, e, inf, nan, newaxis = _np.pi, _np.e, _np.inf, _np.nan, None
euler_gamma = _np.euler_gamma
# numpy's other names for its dtypes, and the abstract types issubdtype tests against
# (``jnp.issubdtype(x.dtype, jnp.floating)``)
double, single, float_, int_, uint = _np.float64, _np.float32, _np.float64, _np.int64, _np.uint64
generic, number, inexact, floating, integer = _np.generic, _np.number, _np.inexact, _np.floating, _np.integer
signedinteger, unsignedinteger, character, flexible, object_ = (_np.signedinteger, _np.unsignedinteger,
                                                                _np.character, _np.flexible, _np.object_)
# index helpers that build Python indices and constant grids, never traced values
s_, index_exp, mgrid, ogrid = _np.s_, _np.index_exp, _np.mgrid, _np.ogrid
iterable, get_printoptions, set_printoptions, printoptions = (_np.iterable, _np.get_printoptions,
                                                              _np.set_printoptions, _np.printoptions)


def isrealobj(x):
    """True: gradc's arrays are real (no complex dtype), as numpy's isrealobj of them."""
    return not _np.iscomplexobj(x) if not isinstance(x, _Value) else True


def iscomplexobj(x):
    """False for gradc's real arrays, as numpy's iscomplexobj of them."""
    return _np.iscomplexobj(x) if not isinstance(x, _Value) else False


def isreal(x):
    """True at every element of a real array (a boolean array of ``x``'s shape)."""
    return _st.full_like(x, True, dtype=_np.bool_) if isinstance(x, _Value) else _np.isreal(x)


def iscomplex(x):
    """False at every element of a real array (a boolean array of ``x``'s shape)."""
    return _st.full_like(x, False, dtype=_np.bool_) if isinstance(x, _Value) else _np.iscomplex(x)


class _ArrayType(type):
    """``isinstance(x, ndarray)`` holds for numpy arrays and traced values alike."""

    def __instancecheck__(cls, obj):
        return isinstance(obj, (_np.ndarray, _Value))

    def __subclasscheck__(cls, sub):
        return issubclass(sub, (_np.ndarray, _Value))


class ndarray(metaclass=_ArrayType):
    """The array type, as ``jax.numpy.ndarray`` (``jax.Array``) serves model code:
    ``isinstance(x, gradc.numpy.ndarray)`` is true for a numpy array and for a traced
    value, so a check written for JAX holds while gradc traces.  Calling it makes a
    ``numpy.ndarray``."""

    def __new__(cls, *args, **kwargs):
        return _np.ndarray(*args, **kwargs)


Array = ndarray

# element-wise
exp, log, log1p, expm1, sqrt, sign = _ew.exp, _ew.log, _ew.log1p, _ew.expm1, _ew.sqrt, _ew.sign
sin, cos, tanh, square = _ew.sin, _ew.cos, _ew.tanh, _ew.square
abs = absolute = _ew.abs  # noqa: A001
negative, add, subtract, multiply = _ew.neg, _ew.add, _ew.subtract, _ew.multiply
divide = true_divide = _ew.divide
power, maximum, minimum, clip = _ew.power, _ew.maximum, _ew.minimum, _ew.clip
greater, greater_equal, less, less_equal = _ew.greater, _ew.greater_equal, _ew.less, _ew.less_equal
equal, not_equal, logical_and, logical_not = _ew.equal, _ew.not_equal, _ew.logical_and, _ew.logical_not
relu, sigmoid, softplus = _ew.relu, _ew.sigmoid, _ew.softplus   # stop_gradient: below (pytrees)
# reductions (numpy's keywords: gradc/ops/compose.py)
sum, max, min, mean = _cmp.sum, _cmp.max_, _cmp.min_, _cmp.mean  # noqa: A001
amax, amin = max, min
logsumexp, softmax, log_softmax = _cmp.logsumexp, _red.softmax, _red.log_softmax
nansum, nanmean, nanmax, nanmin, ptp, count_nonzero = (_cmp.nansum, _cmp.nanmean, _cmp.nanmax, _cmp.nanmin,
                                                       _cmp.ptp, _cmp.count_nonzero)
median, quantile, percentile, cov, corrcoef = _cmp.median, _cmp.quantile, _cmp.percentile, _cmp.cov, _cmp.corrcoef
nanmedian, nanquantile, nanpercentile = _cmp.nanmedian, _cmp.nanquantile, _cmp.nanpercentile
kron, cross, vecdot, matvec, vecmat = _cmp.kron, _cmp.cross, _cmp.vecdot, _cmp.matvec, _cmp.vecmat
matrix_transpose, permute_dims, ravel = _cmp.matrix_transpose, _cmp.permute_dims, _cmp.ravel
fliplr, flipud, rot90, append, select = _cmp.fliplr, _cmp.flipud, _cmp.rot90, _cmp.append, _cmp.select
isclose, sinc, trapezoid, polyval = _cmp.isclose, _cmp.sinc, _cmp.trapezoid, _cmp.polyval
# linear algebra
matmul, outer, transpose, dot = _la.matmul, _la.outer, _la.transpose, _es.dot
swapaxes = _la.swapaxes
moveaxis, flip, roll, split, array_split, take = _ax.moveaxis, _ax.flip, _ax.roll, _ax.split, _ax.array_split, _ax.take
hsplit, vsplit, dsplit, block = _ax.hsplit, _ax.vsplit, _ax.dsplit, _arr.block
searchsorted, digitize, interp, convolve, correlate = (
    _lookup.searchsorted, _lookup.digitize, _lookup.interp, _lookup.convolve, _lookup.correlate)
ediff1d, put_along_axis = _lookup.ediff1d, _lookup.put_along_axis
bincount = _segments.bincount
nonzero, flatnonzero, argwhere = _idx.nonzero, _idx.flatnonzero, _idx.argwhere
unravel_index, ravel_multi_index = _idx.unravel_index, _idx.ravel_multi_index
histogram, histogram_bin_edges = _idx.histogram, _idx.histogram_bin_edges
unique, unique_values, unique_counts = _idx.unique, _idx.unique_values, _idx.unique_counts
unique_inverse, unique_all = _idx.unique_inverse, _idx.unique_all
nanvar, nanstd, nanprod, nanargmax, nanargmin = _nanf.nanvar, _nanf.nanstd, _nanf.nanprod, _nanf.nanargmax, _nanf.nanargmin
nancumsum, nancumprod = _nanf.nancumsum, _nanf.nancumprod
for _name in _asd.__all__:
    globals()[_name] = getattr(_asd, _name)
for _name in _extras.__all__:
    globals()[_name] = getattr(_extras, _name)
# bitwise (integers; logical on booleans)
bitwise_and, bitwise_or, bitwise_xor, invert = _bw.bitwise_and, _bw.bitwise_or, _bw.bitwise_xor, _bw.invert
bitwise_not = bitwise_invert = invert
left_shift, right_shift, bitwise_count = _bw.left_shift, _bw.right_shift, _bw.bitwise_count
bitwise_left_shift, bitwise_right_shift = left_shift, right_shift


def where(condition, x=None, y=None, *, size=None, fill_value=None):
    """numpy.where: ``x`` where ``condition`` holds, else ``y``; with only the
    condition, ``nonzero(condition)`` (``size=`` inside a trace, as JAX's)."""
    if x is None and y is None:
        return _idx.where_indices(condition, size=size, fill_value=fill_value)
    if x is None or y is None:
        raise ValueError("where: give both x and y, or neither")
    return _ew.where(condition, x, y)
tensordot, inner, vdot = _es.tensordot, _es.inner, _es.vdot
# structure
stack, concatenate, take_along_axis = _st.stack, _st.concatenate, _ax.take_along_axis


def expand_dims(a, axis):
    """numpy.expand_dims (numpy's own on a concrete array outside a trace)."""
    return _st.expand_dims(a, axis) if _current() is not None or _traced(a) else _np.expand_dims(a, axis)


def squeeze(a, axis=None):
    """numpy.squeeze (numpy's own on a concrete array outside a trace)."""
    return _st.squeeze(a, axis) if _current() is not None or _traced(a) else _np.squeeze(a, axis)


def broadcast_to(array, shape):
    """numpy.broadcast_to (numpy's own on a concrete array outside a trace)."""
    return _st.broadcast_to(array, shape) if _current() is not None or _traced(array) else \
        _np.broadcast_to(array, shape)
zeros_like, ones_like, full_like = _st.zeros_like, _st.ones_like, _st.full_like
arange_like = _st.arange_like
# element-wise math composed from the primitives (gradc/ops/mathfuncs.py)
logaddexp, logaddexp2, exp2, log2, log10 = _mf.logaddexp, _mf.logaddexp2, _mf.exp2, _mf.log2, _mf.log10
sinh, cosh, tan, arcsinh, arctanh = _mf.sinh, _mf.cosh, _mf.tan, _mf.arcsinh, _mf.arctanh
arctan, arctan2, arcsin, arccos, cbrt = _mf.arctan, _mf.arctan2, _mf.arcsin, _mf.arccos, _mf.cbrt
reciprocal, heaviside, nan_to_num = _mf.reciprocal, _mf.heaviside, _mf.nan_to_num
isnan, isinf, isfinite, signbit, logical_or = _mf.isnan, _mf.isinf, _mf.isfinite, _mf.signbit, _mf.logical_or
floor, ceil, trunc, rint, fix, round, around = (_mf.floor, _mf.ceil, _mf.trunc, _mf.rint, _mf.fix,  # noqa: A001
                                               _mf.round, _mf.around)
fmod, remainder, mod, floor_divide, divmod = (_mf.fmod, _mf.remainder, _mf.mod, _mf.floor_divide,  # noqa: A001
                                              _mf.divmod_)
copysign, hypot, fmax, fmin, arccosh = _mf.copysign, _mf.hypot, _mf.fmax, _mf.fmin, _mf.arccosh
degrees, radians, rad2deg, deg2rad = _mf.degrees, _mf.radians, _mf.rad2deg, _mf.deg2rad
logical_xor, positive, fabs, float_power = _mf.logical_xor, _mf.positive, _mf.fabs, _mf.float_power
conj, conjugate = _mf.conj, _mf.conjugate
# scipy.special's error function, and the exact GELU built on it (gradc/ops/special.py)
erf, erfc, gelu = _special.erf, _special.erfc, _special.gelu
# numpy 2's short names (the array API's)
acos, asin, atan, atan2, acosh, asinh, atanh, pow = (arccos, arcsin, arctan, arctan2, arccosh,  # noqa: A001
                                                     arcsinh, arctanh, power)
# reductions and scans (gradc/ops/stats.py)
var, std, average, prod, cumsum, cumprod, diff = (_stats.var, _stats.std, _stats.average, _stats.prod,
                                                  _stats.cumsum, _stats.cumprod, _stats.diff)
argmax, argmin, any, all = _stats.argmax, _stats.argmin, _stats.any, _stats.all  # noqa: A001
# structure, joining, ordering (gradc/ops/arrays.py)
diag, diagonal, trace, triu, tril = _arr.diag, _arr.diagonal, _arr.trace, _arr.triu, _arr.tril
concatenate = _arr.concatenate
hstack, vstack, dstack, column_stack = _arr.hstack, _arr.vstack, _arr.dstack, _arr.column_stack
atleast_1d, atleast_2d, atleast_3d = _arr.atleast_1d, _arr.atleast_2d, _arr.atleast_3d
tile, repeat, pad, sort, argsort = _arr.tile, _arr.repeat, _padding.pad, _arr.sort, _arr.argsort


def reshape(a, shape=None, order="C", *, newshape=None, copy=None):
    """numpy.reshape (``shape``, or numpy < 2.1's ``newshape``; row-major only)."""
    if order != "C":
        from .errors import UnsupportedError
        raise UnsupportedError(f"reshape(order={order!r}): gradc's arrays are row-major")
    return _st.reshape(a, newshape if shape is None else shape)


def einsum(subscripts, *operands, out=None, dtype=None, order="K", casting="safe", optimize=False,
           precision=None, preferred_element_type=None):
    """numpy.einsum (``optimize`` is accepted: gradc always contracts in a greedy
    order, see docs/arrays.md; ``dtype``: the operands converted to it first).  JAX's
    ``precision`` is accepted (gradc multiplies in the operands' own dtype, never in
    reduced precision) and ``preferred_element_type`` is the dtype the operands are
    converted to first, as ``dtype``."""
    if out is not None:
        from .errors import UnsupportedError
        raise UnsupportedError("einsum(..., out=...) cannot write into a traced value")
    dtype = dtype if dtype is not None else preferred_element_type
    if dtype is not None:
        operands = [astype(o, dtype) for o in operands]
    return _es.einsum(subscripts, *operands)


def _with_jax_precision(f):
    """``f(a, b)`` (a product) taking JAX's keyword arguments: ``precision`` accepted
    (gradc multiplies in the operands' own dtype) and ``preferred_element_type``, the
    dtype both operands are converted to first."""
    import functools

    @functools.wraps(f)
    def product(a, b, *args, precision=None, preferred_element_type=None, **kwargs):
        if preferred_element_type is not None:
            a, b = astype(a, preferred_element_type), astype(b, preferred_element_type)
        return f(a, b, *args, **kwargs)
    return product


matmul, dot, tensordot, inner, vdot, outer = map(_with_jax_precision, (matmul, dot, tensordot, inner, vdot, outer))


def stop_gradient(x):
    """``x`` with no gradient flowing back through it (as ``jax.lax.stop_gradient``): an
    array, or every leaf of a pytree of them."""
    from .tree_util import tree_map
    return tree_map(_ew.stop_gradient, x)


def _vector_norm(x, /, *, axis=None, keepdims=False, ord=2):
    """numpy.linalg.vector_norm: every element one vector when ``axis`` is None, and the
    elements of all the axes of a tuple one vector (never a matrix norm, as ``norm``'s
    two axes are)."""
    if _stats._eager(x):
        return _np.linalg.vector_norm(x, axis=axis, keepdims=keepdims, ord=ord)
    v = _stats._float(x)
    axes = tuple(range(v.ndim)) if axis is None else ((axis,) if isinstance(axis, (int, _np.integer)) else tuple(axis))
    axes = _stats.norm_axes(axes, v.ndim)
    return _stats._vector_norm(v, ord, axes, keepdims)


def _matrix_norm(x, /, *, keepdims=False, ord="fro"):
    """numpy.linalg.matrix_norm over the last two axes."""
    return _stats.norm(x, ord, (-2, -1), keepdims)


def astype(x, dtype):
    return _ew.astype(x, dtype)


def _traced(x):
    if isinstance(x, _Value):
        return True
    if isinstance(x, (list, tuple)):
        return builtins.any(_traced(e) for e in x)
    return False


def array(obj, dtype=None):
    """numpy.array; a (nested) list of traced values becomes a stacked traced array."""
    if _traced(obj):
        v = _st.stack_nested(obj) if isinstance(obj, (list, tuple)) else obj
        return astype(v, dtype) if dtype is not None else v
    return _np.array(obj, dtype=dtype)


def asarray(obj, dtype=None):
    if isinstance(obj, _Value) and dtype is None:
        return obj
    return array(obj, dtype)


class _NewArray(_np.ndarray):
    """An array ``zeros``, ``ones`` or ``full`` made inside a trace: numpy's, so it can be
    written in place as numpy code does, and with JAX's ``.at`` too
    (``zeros(n).at[i].add(v)``), which makes it a constant of the graph."""

    @property
    def at(self):
        from .ops.at import IndexUpdateHelper
        return IndexUpdateHelper(_to_value(_np.asarray(self)))


def _new(a):
    return a.view(_NewArray) if _current() is not None else a


def zeros(shape, dtype=float):
    return _new(_np.zeros(shape, dtype))


def ones(shape, dtype=float):
    return _new(_np.ones(shape, dtype))


def full(shape, fill_value, dtype=None):
    """numpy.full; a traced fill value is broadcast to the shape."""
    if isinstance(fill_value, _Value):
        v = astype(fill_value, dtype) if dtype is not None else fill_value
        return _st.broadcast_to(v, (shape,) if isinstance(shape, int) else tuple(shape))
    return _new(_np.full(shape, fill_value, dtype))


def eye(N, M=None, k=0, dtype=float):
    """numpy.eye; inside a trace a constant of the graph, so that a traced integer
    array can index it (``eye(K)[labels]``: one-hot rows), which a numpy array cannot."""
    a = _np.eye(N, M, k, dtype=dtype)
    return _to_value(a) if _current() is not None else a


def identity(n, dtype=float):
    return eye(n, dtype=dtype)


def arange(*args, **kw):
    return _np.arange(*args, **kw)


# constants of the graph, as numpy makes them (sizes and ranges are Python numbers)
linspace, logspace, geomspace = _np.linspace, _np.logspace, _np.geomspace
triu_indices, tril_indices, diag_indices, indices = _np.triu_indices, _np.tril_indices, _np.diag_indices, _np.indices
tri = _np.tri


def _cumulative(name, scan, identity):
    def f(x, /, *, axis=None, dtype=None, out=None, include_initial=False):
        if not isinstance(x, _Value) and _current() is None:
            return getattr(_np, name)(x, axis=axis, dtype=dtype, include_initial=include_initial)
        if out is not None:
            from .errors import UnsupportedError
            raise UnsupportedError(f"{name}(..., out=...) cannot write into a traced value")
        x = _to_value(x)
        if axis is None:
            if x.ndim != 1:
                raise ValueError(f"{name}: axis must be given for an array of rank {x.ndim} (numpy's rule)")
            axis = 0
        r = scan(x, axis=axis, dtype=dtype)
        if not include_initial:
            return r
        ax = axis % x.ndim
        return pad(r, [(1, 0) if i == ax else (0, 0) for i in range(x.ndim)], constant_values=identity)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = (f"numpy.{name} (numpy 2.1): {scan.__name__} along ``axis`` (needed above rank 1), "
                 f"starting with {identity} when ``include_initial``.")
    return f


cumulative_sum = _cumulative("cumulative_sum", cumsum, 0)
cumulative_prod = _cumulative("cumulative_prod", cumprod, 1)


def meshgrid(*xi, indexing="xy", sparse=False, copy=True):
    """numpy.meshgrid: each vector broadcast along the others' axes (traced too)."""
    if not builtins.any(isinstance(x, _Value) for x in xi):
        return _np.meshgrid(*xi, indexing=indexing, sparse=sparse, copy=copy)
    shape = [size(x) for x in xi]
    if indexing == "xy" and len(xi) >= 2:
        shape[0], shape[1] = shape[1], shape[0]
    out = []
    for k, x in enumerate(xi):
        axis = (1 if k == 0 else 0 if k == 1 else k) if indexing == "xy" and len(xi) >= 2 else k
        s = [1] * len(xi)
        s[axis] = size(x)
        v = reshape(x, tuple(s))
        out.append(v if sparse else broadcast_to(v, tuple(shape)))
    return out


def shape(x):
    return x.shape if isinstance(x, _Value) else _np.shape(x)


def ndim(x):
    return x.ndim if isinstance(x, _Value) else _np.ndim(x)


def size(x):
    return x.size if isinstance(x, _Value) else _np.size(x)


def copy(x):
    return x if isinstance(x, _Value) else _np.copy(x)


# numpy ufunc name -> gradc function (used by Value.__array_ufunc__)
UFUNCS = {
    "add": add, "subtract": subtract, "multiply": multiply, "divide": divide,
    "true_divide": divide, "power": power, "negative": negative, "positive": positive,
    "exp": exp, "log": log, "log1p": log1p, "expm1": expm1, "sqrt": sqrt, "absolute": abs,
    "fabs": fabs, "sign": sign, "sin": sin, "cos": cos, "tanh": tanh, "square": square,
    "maximum": maximum, "minimum": minimum, "greater": greater, "greater_equal": greater_equal,
    "less": less, "less_equal": less_equal, "equal": equal, "not_equal": not_equal,
    "logical_and": logical_and, "logical_not": logical_not, "matmul": matmul,
    "logaddexp": logaddexp, "logaddexp2": logaddexp2, "exp2": exp2, "log2": log2, "log10": log10,
    "sinh": sinh, "cosh": cosh, "tan": tan, "arcsinh": arcsinh, "arctanh": arctanh,
    "arctan": arctan, "arctan2": arctan2, "arcsin": arcsin, "arccos": arccos, "cbrt": cbrt,
    "reciprocal": reciprocal, "heaviside": heaviside, "isnan": isnan, "isinf": isinf,
    "isfinite": isfinite, "signbit": signbit, "logical_or": logical_or,
    "floor": floor, "ceil": ceil, "trunc": trunc, "rint": rint, "fmod": fmod, "remainder": remainder,
    "floor_divide": floor_divide, "divmod": divmod, "copysign": copysign, "hypot": hypot, "fmax": fmax,
    "fmin": fmin, "arccosh": arccosh, "degrees": degrees, "radians": radians, "rad2deg": rad2deg,
    "deg2rad": deg2rad, "logical_xor": logical_xor, "float_power": float_power, "conjugate": conjugate,
    "bitwise_and": bitwise_and, "bitwise_or": bitwise_or, "bitwise_xor": bitwise_xor, "invert": invert,
    "left_shift": left_shift, "right_shift": right_shift, "bitwise_count": bitwise_count,
    **{_n: getattr(_extras, _n) for _n in ("frexp", "nextafter", "spacing", "gcd", "lcm")},
}
# numpy's ufunc objects: gradc.numpy's ufuncs are callables with numpy's methods
# (np.add.reduce, np.maximum.accumulate, np.multiply.outer: gradc/ops/ufuncs.py)
def _ufunc(name):
    """The ufunc gradc.numpy has under ``name`` (how one unpickles)."""
    return UFUNCS[name]


_wrapped = {}
for _name, _f in UFUNCS.items():
    if id(_f) not in _wrapped:
        _wrapped[id(_f)] = _ufuncs.Ufunc(_name, _f, _ufunc)
    UFUNCS[_name] = _wrapped[id(_f)]
for _name, _v in list(globals().items()):
    if not _name.startswith("_") and id(_v) in _wrapped and _name not in ("UFUNCS",):
        globals()[_name] = _wrapped[id(_v)]
del _wrapped, _name, _f, _v

# numpy function name -> gradc function (used by Value.__array_function__)
FUNCTIONS = {
    "sum": sum, "mean": mean, "max": max, "min": min, "amax": max, "amin": min,
    "nansum": nansum, "nanmean": nanmean, "nanmax": nanmax, "nanmin": nanmin, "ptp": ptp,
    "count_nonzero": count_nonzero, "median": median, "quantile": quantile, "percentile": percentile,
    "cov": cov, "corrcoef": corrcoef, "kron": kron, "cross": cross, "vecdot": vecdot, "matvec": matvec,
    "vecmat": vecmat, "matrix_transpose": matrix_transpose, "permute_dims": permute_dims, "ravel": ravel,
    "fliplr": fliplr, "flipud": flipud, "rot90": rot90, "append": append, "select": select,
    "isclose": isclose, "sinc": sinc, "trapezoid": trapezoid, "polyval": polyval,
    "dot": dot, "matmul": matmul, "outer": outer, "transpose": transpose, "where": where,
    "reshape": reshape,
    "stack": stack, "concatenate": concatenate, "full": full, "take_along_axis": take_along_axis,
    "expand_dims": expand_dims, "squeeze": squeeze, "clip": clip, "broadcast_to": broadcast_to,
    "zeros_like": zeros_like, "ones_like": ones_like, "full_like": full_like,
    "shape": shape, "ndim": ndim, "size": size, "copy": copy, "array": array, "asarray": asarray,
    "var": var, "std": std, "average": average, "prod": prod, "cumsum": cumsum, "cumprod": cumprod,
    "diff": diff, "argmax": argmax, "argmin": argmin, "any": any, "all": all,
    "diag": diag, "diagonal": diagonal, "trace": trace, "triu": triu, "tril": tril,
    "hstack": hstack, "vstack": vstack, "dstack": dstack, "column_stack": column_stack,
    "atleast_1d": atleast_1d, "atleast_2d": atleast_2d, "atleast_3d": atleast_3d,
    "tile": tile, "repeat": repeat, "pad": pad, "take": take, "sort": sort, "argsort": argsort,
    "nan_to_num": nan_to_num, "moveaxis": moveaxis, "flip": flip, "roll": roll, "split": split,
    "array_split": array_split, "swapaxes": swapaxes, "einsum": einsum, "tensordot": tensordot,
    "inner": inner, "vdot": vdot, "identity": identity, "eye": eye, "meshgrid": meshgrid,
    "round": round, "around": around, "fix": fix,
    "hsplit": hsplit, "vsplit": vsplit, "dsplit": dsplit, "block": block, "searchsorted": searchsorted,
    "digitize": digitize, "interp": interp, "convolve": convolve, "correlate": correlate, "ediff1d": ediff1d,
    "put_along_axis": put_along_axis, "bincount": bincount, "nonzero": nonzero, "flatnonzero": flatnonzero,
    "argwhere": argwhere, "unravel_index": unravel_index, "ravel_multi_index": ravel_multi_index,
    "histogram": histogram, "histogram_bin_edges": histogram_bin_edges, "unique": unique,
    "unique_values": unique_values, "unique_counts": unique_counts, "unique_inverse": unique_inverse,
    "unique_all": unique_all, "nanvar": nanvar, "nanstd": nanstd, "nanprod": nanprod, "nanargmax": nanargmax,
    "nanargmin": nanargmin, "nancumsum": nancumsum, "nancumprod": nancumprod,
    **{_n: getattr(_asd, _n) for _n in _asd.__all__},
    **{_n: getattr(_extras, _n) for _n in _extras.__all__},
    "cumulative_sum": cumulative_sum, "cumulative_prod": cumulative_prod,
    "nanmedian": nanmedian, "nanquantile": nanquantile, "nanpercentile": nanpercentile,
}


# numpy.linalg function name -> gradc function (Value.__array_function__ and gradc.numpy.linalg)
LINALG_FUNCTIONS = {"norm": _stats.norm, "vector_norm": _vector_norm, "matrix_norm": _matrix_norm, "multi_dot": _cmp.multi_dot, "matrix_power": _cmp.matrix_power,
                    "matrix_transpose": _cmp.matrix_transpose, "vecdot": _cmp.vecdot, "cond": _stats.cond,
                    **_lapack.FUNCTIONS, **_decomp.FUNCTIONS, **_extras.LINALG}

DOCS = "docs/numpy.md"


def supported_names() -> list[str]:
    """Every numpy name gradc.numpy provides (``linalg.*`` for numpy.linalg's)."""
    own = [n for n, v in globals().items()
           if not n.startswith("_") and n not in _NOT_NUMPY and not isinstance(v, _types.ModuleType)]
    return sorted(own) + sorted(f"linalg.{n}" for n in LINALG_FUNCTIONS)


_NOT_NUMPY = {"annotations", "builtins", "UFUNCS", "FUNCTIONS", "LINALG_FUNCTIONS", "DOCS",
              "supported_names", "unsupported", "linalg"}


def unsupported(name: str, where: str = "gradc.numpy", line: str | None = None):
    """The error for a numpy name gradc lacks: what, the nearest supported names, where
    the list is."""
    from .errors import UnsupportedNameError
    short = name.rsplit(".", 1)[-1]
    pool = supported_names()
    near = _difflib.get_close_matches(short, pool, n=3, cutoff=0.6)
    near += [n for n in _difflib.get_close_matches(name, pool, n=3, cutoff=0.6) if n not in near]
    msg = f"{where}.{name} is not supported by gradc" + (f" (at {line})" if line else "") + "."
    if near:
        msg += " Nearest supported: " + ", ".join(near[:3]) + "."
    msg += f" The supported numpy names are listed in {DOCS}."
    return UnsupportedNameError(msg)


def _honour_out(name, f):
    """``f`` with numpy's ``out=`` kept honest: outside a trace, on concrete arrays, the
    call goes to numpy's own function, which writes ``out`` (gradc's fallback otherwise
    computed the result and left ``out`` as it was); inside a trace it is refused, as a
    traced value cannot be written into."""
    sig = _inspect.signature(f)

    @_functools.wraps(f)
    def call(*args, **kwargs):
        try:
            out = sig.bind_partial(*args, **kwargs).arguments.get("out")
        except TypeError:
            return f(*args, **kwargs)          # (f raises its own TypeError)
        if out is None:
            return f(*args, **kwargs)
        if _current() is None and not _traced(list(args) + list(kwargs.values())) and hasattr(_np, name):
            return getattr(_np, name)(*args, **kwargs)
        from .errors import UnsupportedError
        raise UnsupportedError(f"{name}(..., out=...): a traced value cannot be written into; use the "
                               f"returned array")
    return call


def _wrap_out_parameters():
    for name in supported_names():
        f = globals().get(name)
        if callable(f) and not isinstance(f, type):
            try:
                params = _inspect.signature(f).parameters
            except (TypeError, ValueError):
                continue
            if "out" in params:
                globals()[name] = _honour_out(name, f)


_wrap_out_parameters()


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(f"module 'gradc.numpy' has no attribute {name!r}")
    raise unsupported(name)


def _linalg_getattr(name):
    if name.startswith("__"):
        raise AttributeError(f"module 'gradc.numpy.linalg' has no attribute {name!r}")
    raise unsupported(f"linalg.{name}")


linalg = _types.ModuleType("gradc.numpy.linalg", "numpy.linalg's functions that gradc supports.")
linalg.__dict__.update(LINALG_FUNCTIONS, __getattr__=_linalg_getattr)
