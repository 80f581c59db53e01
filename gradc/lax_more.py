"""More of jax.lax's names (``gradc.lax`` re-exports them), composed from gradc's ops:

* bitwise reductions ``reduce_and``, ``reduce_or``, ``reduce_xor`` (booleans or
  integers), by gradc.lax's ``reduce``;
* ``reduce_precision``: XLA's rounding to a float format of fewer exponent and mantissa
  bits, from the bits (round to nearest even, overflow to inf, underflow and subnormals
  of the narrow format to zero, NaN kept);
* ``index_take``, ``broadcast_to_rank``, ``batch_matmul``;
* the special functions under their jax.lax names: ``polygamma``, ``igamma``,
  ``igammac``, ``bessel_i0e``, ``bessel_i1e`` (gradc.scipy.special's), ``nextafter``;
* ``mulhi``: the high half of an integer product.
"""
from __future__ import annotations

import operator

import numpy as np

from . import numpy as gnp
from .errors import ArgumentError, ShapeError
from .lax_arrays import _dtype, _eager, _shape, axis_index, broadcast, dot_general
from .lax_scans import reduce as _reduce
from .ops import bitwise as _bitwise
from .scipy import special as _special
from .tracer import Value

__all__ = ["reduce_and", "reduce_or", "reduce_xor", "reduce_precision", "index_take", "broadcast_to_rank",
           "batch_matmul", "polygamma", "igamma", "igammac", "bessel_i0e", "bessel_i1e", "nextafter", "mulhi"]


# ----------------------------------------------------------------------------- bitwise reductions
def _bitwise_reduction(name, fn, identity):
    def reducer(operand, axes):
        x = operand if isinstance(operand, Value) else np.asarray(operand)
        dt = np.dtype(_dtype(x))
        if dt.kind not in "biu":
            raise ArgumentError(f"{name}: operand must be a boolean or integer array, got {dt}")
        dims = tuple(axis_index(a, len(_shape(x)), name) for a in axes)
        if len(set(dims)) != len(dims):
            raise ArgumentError(f"{name}: repeated axis in axes {tuple(axes)}")
        if not dims:
            return x
        return _reduce(x, dt.type(identity(dt)), fn, dims)
    reducer.__name__ = reducer.__qualname__ = name
    reducer.__doc__ = (f"``jax.lax.{name}(operand, axes)``: the bitwise {name[7:]} of ``operand``'s elements "
                       "over ``axes`` (logical on booleans).")
    return reducer


def _all_ones(dt):
    return True if dt.kind == "b" else (-1 if dt.kind == "i" else np.iinfo(dt).max)


reduce_and = _bitwise_reduction("reduce_and", gnp.bitwise_and, _all_ones)
reduce_or = _bitwise_reduction("reduce_or", gnp.bitwise_or, lambda dt: 0)
reduce_xor = _bitwise_reduction("reduce_xor", gnp.bitwise_xor, lambda dt: 0)


# ----------------------------------------------------------------------------- reduce_precision
_FORMATS = {np.dtype(np.float32): (np.uint32, 8, 23), np.dtype(np.float64): (np.uint64, 11, 52)}


def _bits_rounded(x, exponent_bits, mantissa_bits):
    """XLA's ReducePrecision on the bits of ``x`` (no gradient: a step function)."""
    dt = np.dtype(_dtype(x))
    ut, nexp, nman = _FORMATS[dt]
    u = ut
    bits = _bitwise.bitcast_convert_type(gnp.stop_gradient(x), np.dtype(ut))
    if mantissa_bits < nman:
        last = 1 << (nman - mantissa_bits)           # the last mantissa bit kept
        odd = gnp.right_shift(gnp.bitwise_and(bits, u(last)), u(nman - mantissa_bits))
        bits = gnp.bitwise_and(bits + odd + u((last >> 1) - 1), u(~(last - 1) & ((1 << (8 * dt.itemsize)) - 1)))
    if exponent_bits < nexp:
        bias, reduced = (1 << (nexp - 1)) - 1, (1 << (exponent_bits - 1)) - 1
        exp_mask = u(((1 << nexp) - 1) << nman)
        exponent = gnp.bitwise_and(bits, exp_mask)
        signed_zero = gnp.bitwise_and(bits, u(1 << (8 * dt.itemsize - 1)))
        bits = gnp.where(exponent > u((bias + reduced) << nman), gnp.bitwise_or(signed_zero, exp_mask), bits)
        bits = gnp.where(exponent <= u((bias - reduced) << nman), signed_zero, bits)
    out = _bitwise.bitcast_convert_type(bits, dt)
    return gnp.where(gnp.isnan(x), x, out)         # (the rounding made NaN an inf or a zero)


def reduce_precision(operand, exponent_bits, mantissa_bits):
    """``jax.lax.reduce_precision``: ``operand`` rounded to the float format of
    ``exponent_bits`` exponent and ``mantissa_bits`` mantissa bits, in its own dtype
    (float32 or float64), as XLA does: the mantissa rounded to nearest, ties to even; a
    value beyond the format's largest finite becomes inf, one below its smallest normal
    (its subnormals included) a zero of the same sign; NaN stays NaN.
    ``reduce_precision(x, 8, 7)`` is bfloat16's rounding, ``(5, 10)`` float16's (except
    that float16 keeps subnormals).  The derivative is 1 wherever ``operand`` is finite
    (JAX's is the tangent rounded the same way: equal for tangents the format holds)."""
    for what, v, lo in (("exponent_bits", exponent_bits, 1), ("mantissa_bits", mantissa_bits, 0)):
        try:
            v = operator.index(v)
        except TypeError:
            raise ArgumentError(f"reduce_precision: {what} must be an int, got {v!r}") from None
        if v < lo:
            raise ArgumentError(f"reduce_precision: {what} must be at least {lo}, got {v}")
    eager = _eager(operand)
    x = np.asarray(operand) if eager else gnp.asarray(operand)
    dt = np.dtype(_dtype(x))
    if dt not in _FORMATS:
        raise ArgumentError(f"reduce_precision: operand must be float32 or float64, got {dt}")
    if eager:
        with np.errstate(over="ignore", invalid="ignore"):
            return np.asarray(_bits_rounded(x, int(exponent_bits), int(mantissa_bits)))
    r = _bits_rounded(x, int(exponent_bits), int(mantissa_bits))
    # derivative 1: r - (x - x) is r bit for bit (a subtraction of +0 keeps -0's sign)
    return gnp.where(gnp.isfinite(x), r - (gnp.stop_gradient(x) - x), r)


# ----------------------------------------------------------------------------- indexing and shapes
def index_take(src, idxs, axes):
    """``jax.lax.index_take(src, idxs, axes)``: ``src`` at the integer index arrays
    ``idxs`` (one 1-D array of a common length N per axis in ``axes``, negative ones
    wrapping), of shape ``(N,) + the other axes of src``."""
    ndim = len(_shape(src))
    axes = tuple(axis_index(a, ndim, "index_take") for a in axes)
    idxs = list(idxs)
    if len(idxs) != len(axes) or len(set(axes)) != len(axes):
        raise ArgumentError(f"index_take: idxs must hold one index array per axis of axes {axes} (distinct axes), "
                            f"got {len(idxs)} arrays")
    for k, i in enumerate(idxs):
        if np.dtype(_dtype(i)).kind not in "iu" or len(_shape(i)) != 1:
            raise ArgumentError(f"index_take: idxs[{k}] must be a 1-D integer array, got {np.dtype(_dtype(i))} "
                                f"of shape {_shape(i)}")
    shape = _shape(src)
    lib = np if _eager(src, *idxs) else gnp
    moved = lib.moveaxis(src, axes, tuple(range(len(axes))))
    return moved[tuple(lib.mod(i, shape[a]) for i, a in zip(idxs, axes))]


def broadcast_to_rank(x, rank):
    """``jax.lax.broadcast_to_rank``: ``x`` with leading axes of size 1 added up to
    ``rank`` (``x`` itself when it has that rank)."""
    ndim = len(_shape(x))
    if operator.index(rank) < ndim:
        raise ArgumentError(f"broadcast_to_rank: rank {rank} is below the operand's rank {ndim}")
    return x if ndim == rank else broadcast(x, (1,) * (rank - ndim))


def batch_matmul(lhs, rhs, precision=None):
    """``jax.lax.batch_matmul``: matrix products over the leading (batch) axes, which must
    be equal (no broadcasting): ``(..., m, k) @ (..., k, n) -> (..., m, n)``."""
    ls, rs = _shape(lhs), _shape(rhs)
    if len(ls) < 2 or len(ls) != len(rs):
        raise ArgumentError(f"batch_matmul: lhs and rhs must have one rank, at least 2, got shapes {ls} and {rs}")
    if tuple(ls[:-2]) != tuple(rs[:-2]):
        raise ShapeError(f"batch_matmul: the batch axes differ: lhs {ls} and rhs {rs}")
    batch = tuple(range(len(ls) - 2))
    return dot_general(lhs, rhs, (((len(ls) - 1,), (len(rs) - 2,)), (batch, batch)), precision=precision)


# ----------------------------------------------------------------------------- special functions
def polygamma(m, x):
    """``jax.lax.polygamma(m, x)``: the m-th derivative of digamma at ``x`` (``m`` a
    non-negative integer, as a number or array; x > 0 for m >= 1); differentiable in ``x``."""
    if not isinstance(m, Value):
        mm = np.asarray(m)
        if mm.dtype.kind not in "biuf" or np.any(mm < 0) or np.any(mm != np.floor(mm)):
            raise ArgumentError(f"polygamma: m must hold non-negative integers, got {m!r}")
        if mm.ndim == 0:
            m = int(mm)
    return _special.polygamma(m, x)


def igamma(a, x):
    """``jax.lax.igamma``: the regularized lower incomplete gamma function P(a, x)
    (gradc.scipy.special.gammainc, differentiable in x and a)."""
    return _special.gammainc(a, x)


def igammac(a, x):
    """``jax.lax.igammac``: the regularized upper incomplete gamma function Q(a, x) =
    1 - P(a, x) (gradc.scipy.special.gammaincc, differentiable in x and a)."""
    return _special.gammaincc(a, x)


def bessel_i0e(x):
    """``jax.lax.bessel_i0e``: exp(-|x|) I0(x), differentiable."""
    return _special.i0e(x)


def bessel_i1e(x):
    """``jax.lax.bessel_i1e``: exp(-|x|) I1(x), differentiable."""
    return _special.i1e(x)


def nextafter(x1, x2):
    """``jax.lax.nextafter``: the next float after ``x1`` towards ``x2`` (no gradient)."""
    return gnp.nextafter(x1, x2)


# ----------------------------------------------------------------------------- mulhi
def mulhi(x, y, /):
    """``jax.lax.mulhi``: the high half of the product of two integers of one dtype (the
    bits above the type's width of the double-width product), signed or unsigned."""
    eager = _eager(x, y)
    lib = np if eager else gnp
    x, y = (np.asarray(v) if eager else gnp.asarray(v) for v in (x, y))
    dt = np.dtype(_dtype(x))
    if dt != np.dtype(_dtype(y)) or dt.kind not in "iu":
        raise ArgumentError(f"mulhi: x and y must be integers of one dtype, got {dt} and {np.dtype(_dtype(y))}")
    bits = 8 * dt.itemsize
    if bits < 64:                                   # exact in the double-width type
        wide = np.dtype(f"{dt.kind}{2 * dt.itemsize}")
        p = lib.astype(x, wide) * lib.astype(y, wide)
        return lib.astype(lib.right_shift(p, wide.type(bits)), dt)
    # 64 bits: the unsigned product from 32-bit halves, then the signed correction
    u = np.uint64
    cast = (lambda v: v.view(u)) if eager else (lambda v: _bitwise.bitcast_convert_type(v, np.dtype(u)))
    a, b = (cast(v) if dt.kind == "i" else v for v in (x, y))
    mask, s = u(0xFFFFFFFF), u(32)
    al, ah, bl, bh = (lib.bitwise_and(a, mask), lib.right_shift(a, s), lib.bitwise_and(b, mask), lib.right_shift(b, s))
    t = ah * bl + lib.right_shift(al * bl, s)
    w = lib.bitwise_and(t, mask) + al * bh
    hi = ah * bh + lib.right_shift(t, s) + lib.right_shift(w, s)
    if dt.kind == "i":                              # (a - 2^64 [a<0]) (b - 2^64 [b<0])
        hi = hi - lib.where(x < 0, b, u(0)) - lib.where(y < 0, a, u(0))
        return hi.view(dt) if eager else _bitwise.bitcast_convert_type(hi, dt)
    return hi
