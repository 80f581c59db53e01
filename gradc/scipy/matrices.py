"""scipy.linalg's special matrices (``import gradc.scipy.linalg as sla``: ``sla.toeplitz``
and the others), built from their arguments by gathers, concatenations and arithmetic,
so they differentiate in their arguments and run on every backend (no LAPACK).

Each matrix is one gather ``vals[..., idx]`` where scipy strides over a 1-D array: the
index grid ``idx`` is computed here with numpy from the sizes alone, so its adjoint is a
scatter-add of the cotangent onto the entries each value fills.  ``toeplitz``,
``circulant``, ``companion``, ``convolution_matrix``, ``leslie`` and ``fiedler`` treat
leading axes as a batch (scipy 1.17's rule; batch axes broadcast between ``c`` and
``r``, ``f`` and ``s``); ``hankel`` ravels its arguments, as scipy does.  ``hilbert``,
``pascal`` and ``helmert`` take only sizes: they return numpy arrays (constants in a
trace), as scipy's.
"""
from __future__ import annotations

import math

import numpy as onp

from .. import numpy as np
from ..errors import ArgumentError, UnsupportedError


def _is_concrete(*xs):
    from .. import tracer
    return not any(isinstance(x, tracer.Value) for x in xs)


def _ns(*xs):
    """numpy outside a trace (every argument concrete), gradc.numpy inside one."""
    from .. import tracer
    return np if tracer.current() is not None or not _is_concrete(*xs) else onp


def _vector(x, fname, argname):
    """x as an array of rank >= 1 (a scalar becomes (1,)), with a numeric dtype."""
    np = _ns(x)
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise ArgumentError(f"scipy.linalg.{fname}: argument {argname} has dtype {x.dtype}; it takes real numbers")
    return np.reshape(x, (1,)) if x.ndim == 0 else x


def _batch(fname, *xs):
    """xs broadcast to their common batch shape (all axes but the last)."""
    try:
        batch = onp.broadcast_shapes(*(tuple(x.shape[:-1]) for x in xs))
    except ValueError:
        shapes = ", ".join(str(tuple(x.shape)) for x in xs)
        raise ArgumentError(f"scipy.linalg.{fname}: the batch axes (all but the last) of arguments of shapes "
                            f"{shapes} do not broadcast") from None
    np = _ns(*xs)
    return [np.broadcast_to(x, tuple(batch) + (x.shape[-1],)) for x in xs]


def _gather(vals, idx):
    """vals[..., idx]: a matrix of the values' last axis at the index grid idx."""
    return _ns(vals).take(vals, onp.asarray(idx, dtype=onp.int64), axis=-1)


def toeplitz(c, r=None):
    """The Toeplitz matrix T[i, j] = c[i − j] (i ≥ j), r[j − i] (j > i), of shape
    (len(c), len(r)); ``r=None`` takes r = c.  r[0] is ignored."""
    np = _ns(c, r)
    c = _vector(c, "toeplitz", "c")
    r = c if r is None else _vector(r, "toeplitz", "r")
    c, r = _batch("toeplitz", c, r)
    m, n = c.shape[-1], r.shape[-1]
    vals = np.concatenate([np.flip(c, axis=-1), r[..., 1:]], axis=-1)
    i, j = onp.ogrid[:m, :n]
    return _gather(vals, m - 1 - i + j)


def hankel(c, r=None):
    """The Hankel matrix H[i, j] = c[i + j] (i + j < len(c)), r[i + j − len(c) + 1]
    after, of shape (len(c), len(r)); ``r=None`` takes zeros.  r[0] is ignored;
    arguments of rank > 1 are raveled (scipy's rule)."""
    np = _ns(c, r)
    c = np.ravel(_vector(c, "hankel", "c"))
    r = np.zeros_like(c) if r is None else np.ravel(_vector(r, "hankel", "r"))
    m, n = c.shape[0], r.shape[0]
    vals = np.concatenate([c, r[1:]])
    i, j = onp.ogrid[:m, :n]
    return _gather(vals, i + j)


def circulant(c):
    """The circulant matrix C[i, j] = c[(i − j) mod n] (its first column is c)."""
    c = _vector(c, "circulant", "c")
    n = c.shape[-1]
    i, j = onp.ogrid[:n, :n]
    return _gather(c, (i - j) % n)


def companion(a):
    """The companion matrix of the polynomial with coefficients a (highest power first):
    first row −a[1:]/a[0], ones on the subdiagonal; (n − 1, n − 1) for len(a) = n ≥ 2."""
    np = _ns(a)
    a = _vector(a, "companion", "a")
    n = a.shape[-1]
    if n < 2:
        raise ArgumentError(f"scipy.linalg.companion: argument a has {n} coefficient(s) along its last axis; "
                            "it needs at least 2")
    if _is_concrete(a) and onp.any(onp.asarray(a)[..., 0] == 0):
        raise ArgumentError("scipy.linalg.companion: the first coefficient(s) of a (a[..., 0]) must not be zero")
    first = -a[..., 1:] / (1.0 * a[..., :1])
    ones = np.ones_like(first[..., :1])
    vals = np.concatenate([first, ones, np.zeros_like(ones)], axis=-1)    # [row 0, 1, 0]
    i, j = onp.ogrid[:n - 1, :n - 1]
    return _gather(vals, onp.where(i == 0, j, onp.where(i == j + 1, n - 1, n)))


def convolution_matrix(a, n, mode="full"):
    """The matrix A with A @ v = numpy.convolve(a, v, mode) for v of length n: A[i, j] =
    a[i − j] in the full (len(a) + n − 1, n) matrix, whose middle rows 'same' and
    'valid' keep."""
    np = _ns(a)
    if not isinstance(n, (int, onp.integer)) or n <= 0:
        raise ArgumentError(f"scipy.linalg.convolution_matrix: n must be a positive integer, got {n!r}")
    if mode not in ("full", "valid", "same"):
        raise ArgumentError(f"scipy.linalg.convolution_matrix: mode must be 'full', 'valid' or 'same', got {mode!r}")
    a = _vector(a, "convolution_matrix", "a")
    m = a.shape[-1]
    if m == 0:
        raise ArgumentError("scipy.linalg.convolution_matrix: argument a is empty; len(a) must be at least 1")
    trim = min(n, m) - 1
    top = {"full": 0, "same": trim // 2, "valid": trim}[mode]
    bottom = {"full": 0, "same": trim - trim // 2, "valid": trim}[mode]
    i, j = onp.ogrid[top:m + n - 1 - bottom, :n]
    vals = np.concatenate([a, np.zeros_like(a[..., :1])], axis=-1)          # vals[m] = 0
    return _gather(vals, onp.where((i - j >= 0) & (i - j < m), i - j, m))


def leslie(f, s):
    """The Leslie matrix: first row f (fecundities), subdiagonal s (survival); (n, n)
    for len(f) = n, len(s) = n − 1."""
    np = _ns(f, s)
    f, s = _vector(f, "leslie", "f"), _vector(s, "leslie", "s")
    n = f.shape[-1]
    if s.shape[-1] != n - 1:
        raise ArgumentError(f"scipy.linalg.leslie: s has {s.shape[-1]} entries along its last axis and f has "
                            f"{n}; s needs one fewer than f")
    if s.shape[-1] == 0:
        raise ArgumentError("scipy.linalg.leslie: the length of s must be at least 1")
    f, s = _batch("leslie", f, s)
    vals = np.concatenate([f, s, np.zeros_like(f[..., :1])], axis=-1)
    i, j = onp.ogrid[:n, :n]
    return _gather(vals, onp.where(i == 0, j, onp.where(i == j + 1, n + j, 2 * n - 1)))


def fiedler(a):
    """The symmetric Fiedler matrix F[i, j] = |a[i] − a[j]|."""
    np = _ns(a)
    a = np.asarray(a)
    if a.size == 0:
        return onp.asarray([], dtype=onp.float64)
    if a.size == 1:
        return onp.asarray([[0.0]])
    a = _vector(a, "fiedler", "a")
    return np.abs(a[..., :, None] - a[..., None, :])


def block_diag(*arrs):
    """The block diagonal matrix of the arrays (each at least 2-D: a vector is one row, a
    scalar a 1 x 1 block); leading axes are a batch, broadcast between the arrays."""
    np = _ns(*arrs)
    if not arrs:
        arrs = ([],)
    arrs = [np.asarray(a) for a in arrs]
    arrs = [np.reshape(a, (1,) * (2 - a.ndim) + tuple(a.shape)) if a.ndim < 2 else a for a in arrs]
    batch = tuple(onp.broadcast_shapes(*(tuple(a.shape[:-2]) for a in arrs)))
    dtype = onp.result_type(*[a.dtype for a in arrs])
    cols = sum(a.shape[-1] for a in arrs)
    rows, c = [], 0
    for a in arrs:
        rr, cc = a.shape[-2:]
        a = np.broadcast_to(np.asarray(a, dtype=dtype), batch + (rr, cc))
        parts = [np.zeros(batch + (rr, c), dtype=dtype)] if c else []
        parts.append(a)
        if cols - c - cc:
            parts.append(np.zeros(batch + (rr, cols - c - cc), dtype=dtype))
        rows.append(np.concatenate(parts, axis=-1) if len(parts) > 1 else a)
        c += cc
    return np.concatenate(rows, axis=-2) if len(rows) > 1 else rows[0]


def hilbert(n):
    """The n x n Hilbert matrix H[i, j] = 1/(i + j + 1) (a numpy constant)."""
    i, j = onp.ogrid[:n, :n]
    return 1.0 / (i + j + 1.0)


def pascal(n, kind="symmetric", exact=True):
    """The n x n Pascal matrix: binomial coefficients C(i, j) ('lower'), its transpose
    ('upper'), or their product ('symmetric': C(i + j, i)); exact=True as uint64 (Python
    ints in an object array from n = 35, as scipy), else float64 (a numpy constant)."""
    if kind not in ("symmetric", "lower", "upper"):
        raise ArgumentError(f"scipy.linalg.pascal: kind must be 'symmetric', 'lower' or 'upper', got {kind!r}")
    dtype = (object if n >= 35 else onp.uint64) if exact else onp.float64
    lower = onp.zeros((n, n), dtype=dtype)
    for i in range(n):
        for j in range(i + 1):
            lower[i, j] = math.comb(i, j)
    if kind == "lower":
        return lower
    if kind == "upper":
        return lower.T.copy()
    return onp.dot(lower, lower.T)


def helmert(n, full=False):
    """The Helmert matrix of order n: (n − 1, n) rows orthonormal and orthogonal to the
    ones vector, or with ``full=True`` (n, n) and first row 1/√n (a numpy constant)."""
    h = onp.tril(onp.ones((n, n)), -1) - onp.diag(onp.arange(n))
    d = onp.arange(n) * onp.arange(1, n + 1)
    h[0] = 1
    d[0] = n
    h = h / onp.sqrt(d)[:, None]
    return h if full else h[1:]


def dft(n, scale=None):
    """Not supported: the DFT matrix is complex and gradc's arrays are real."""
    raise UnsupportedError("scipy.linalg.dft: the DFT matrix is complex, and gradc's arrays are real; use "
                           "cos and sin of 2πjk/n for its real and imaginary parts")
