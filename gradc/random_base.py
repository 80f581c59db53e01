"""The keys, bits and first samplers of ``gradc.random`` (see its docstring): the Threefry
hash, ``uniform``, ``normal`` and the samplers built directly on them.
"""
from __future__ import annotations

import math

import numpy as np

from . import numpy as gnp
from .errors import ArgumentError
from .tracer import Value

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _u32(x):
    return gnp.astype(gnp.asarray(x), np.uint32)


def _rotl(x, r):
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def threefry_2x32(k1, k2, x1, x2):
    """The Threefry-2x32 hash of counter pairs ``(x1, x2)`` (uint32 arrays of one
    shape) under the key ``(k1, k2)``: 20 rounds, a key injection every 4.  The adds
    wrap modulo 2**32 (numpy warns of it on scalars, as for a key's single draw)."""
    with np.errstate(over="ignore"):
        ks = (k1, k2, k1 ^ k2 ^ np.uint32(0x1BD11BDA))
        x = [x1 + ks[0], x2 + ks[1]]
        for i in range(5):
            for r in _ROTATIONS[i % 2]:
                x[0] = x[0] + x[1]
                x[1] = _rotl(x[1], r) ^ x[0]
            x[0] = x[0] + ks[(i + 1) % 3]
            x[1] = x[1] + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x[0], x[1]


def _check_key(key, what):
    key = gnp.asarray(key)
    if tuple(key.shape) != (2,) or key.dtype != np.uint32:
        raise ArgumentError(f"gradc.random.{what}: the key must be a uint32 array of shape (2,) "
                            f"(gradc.random.PRNGKey(seed)), got {key.dtype} {tuple(key.shape)}")
    return key[0], key[1]


def _shape(shape):
    return (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)


def _counters(shape):
    """Each element's flat index as two uint32 halves (high, low), in the shape.  In a
    trace the index is computed from iotas, not held as a constant (a draw of 10^7
    numbers would otherwise carry 80 MB of counters in its kernel)."""
    from .ops.bind import tracer
    if tracer().current() is None or len(shape) == 0:
        idx = np.arange(math.prod(shape), dtype=np.uint64).reshape(shape)
        return (idx >> np.uint64(32)).astype(np.uint32), (idx & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    flat, stride = None, 1
    for axis in reversed(range(len(shape))):
        i = tracer().bind("iota", shape=shape, axis=axis, dtype=np.dtype(np.int64))
        flat = i * stride if flat is None else flat + i * stride
        stride *= shape[axis]
    return gnp.astype(flat >> 32, np.uint32), gnp.astype(flat & 0xFFFFFFFF, np.uint32)


def _hash(key, shape, what):
    k1, k2 = _check_key(key, what)
    hi, lo = _counters(shape)
    return threefry_2x32(k1, k2, _u32(hi), _u32(lo))


# ----------------------------------------------------------------------------- keys
def PRNGKey(seed):  # noqa: N802  (JAX's name)
    """The key of an integer seed: ``[seed >> 32, seed & 0xFFFFFFFF]`` as uint32."""
    s = int(seed)
    if not -(1 << 63) <= s < (1 << 64):
        raise ArgumentError(f"gradc.random.PRNGKey: the seed must fit 64 bits, got {seed}")
    s &= (1 << 64) - 1
    return np.array([s >> 32, s & 0xFFFFFFFF], dtype=np.uint32)


key = PRNGKey


def split(key, num=2):
    """``num`` new keys (an array ``(num, 2)``; a tuple shape gives ``(*shape, 2)``)."""
    shape = _shape(num)
    b1, b2 = _hash(key, shape, "split")
    return gnp.stack([b1, b2], axis=len(shape))


def fold_in(key, data):
    """A new key from ``key`` and an integer ``data`` (a step number, a layer index)."""
    k1, k2 = _check_key(key, "fold_in")
    d = _u32(data)
    b1, b2 = threefry_2x32(k1, k2, gnp.reshape(_u32(0), (1,)), gnp.reshape(d, (1,)))
    return gnp.concatenate([b1, b2])


def bits(key, shape=(), dtype=np.uint64):
    """Uniform random bits: uint64 (the two hash words; JAX's default with x64) or
    uint32 (the two words xor-ed)."""
    shape, dtype = _shape(shape), np.dtype(dtype)
    b1, b2 = _hash(key, shape, "bits")
    if dtype == np.uint32:
        return b1 ^ b2
    if dtype == np.uint64:
        return (gnp.astype(b1, np.uint64) << np.uint64(32)) | gnp.astype(b2, np.uint64)
    raise ArgumentError(f"gradc.random.bits: dtype must be uint32 or uint64, got {dtype}")


# ----------------------------------------------------------------------------- samplers
def _float_dtype(dtype, what):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ArgumentError(f"gradc.random.{what}: dtype must be float32 or float64, got {dtype}")
    return dtype


def uniform(key, shape=(), dtype=np.float64, minval=0.0, maxval=1.0):
    """Floats uniform in [minval, maxval): random mantissa bits with exponent 0, minus 1,
    scaled (JAX's construction)."""
    shape, dtype = _shape(shape), _float_dtype(dtype, "uniform")
    nbits, nmant = dtype.itemsize * 8, np.finfo(dtype).nmant
    utype = np.dtype(f"uint{nbits}")
    raw = bits(key, shape, utype)
    one = np.array(1.0, dtype).view(utype)
    floats = ((raw >> utype.type(nbits - nmant)) | one).view(dtype) - dtype.type(1.0)
    lo = gnp.astype(gnp.asarray(minval), dtype)
    hi = gnp.astype(gnp.asarray(maxval), dtype)
    return gnp.maximum(lo, floats * (hi - lo) + lo)


def normal(key, shape=(), dtype=np.float64):
    """Standard normal: ``sqrt(2) erfinv(u)`` for u uniform in (-1, 1)."""
    from .scipy.special import erfinv
    dtype = _float_dtype(dtype, "normal")
    lo = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype))
    return dtype.type(np.sqrt(2)) * erfinv(uniform(key, shape, dtype, lo, 1.0))


def bernoulli(key, p=0.5, shape=None):
    """True with probability ``p`` (broadcast to ``shape``, p's shape by default)."""
    p = gnp.asarray(p)
    dtype = p.dtype if p.dtype.kind == "f" else np.dtype(np.float64)
    shape = tuple(p.shape) if shape is None else _shape(shape)
    return uniform(key, shape, dtype) < p


def exponential(key, shape=(), dtype=np.float64):
    """Exponential with rate 1: ``-log1p(-u)``."""
    return -gnp.log1p(-uniform(key, shape, dtype))


def gumbel(key, shape=(), dtype=np.float64):
    """Standard Gumbel: ``-log(-log(u))``, u uniform in [tiny, 1)."""
    dtype = _float_dtype(dtype, "gumbel")
    return -gnp.log(-gnp.log(uniform(key, shape, dtype, np.finfo(dtype).tiny, 1.0)))


def categorical(key, logits, axis=-1, shape=None):
    """Samples of the classes along ``axis`` with probabilities ``softmax(logits)``: the
    Gumbel-max trick (one sample per row; ``shape`` adds leading sample axes)."""
    logits = gnp.asarray(logits)
    axis = axis + logits.ndim if axis < 0 else axis
    batch = tuple(logits.shape[:axis]) + tuple(logits.shape[axis + 1:])
    shape = batch if shape is None else _shape(shape)
    lead = shape[:len(shape) - len(batch)]
    full = lead + tuple(logits.shape)
    noise = gumbel(key, full, logits.dtype if logits.dtype.kind == "f" else np.float64)
    return gnp.argmax(noise + logits, axis=len(lead) + axis)


def truncated_normal(key, lower, upper, shape=None, dtype=np.float64):
    """Normal truncated to [lower, upper], by the inverse CDF of a uniform draw between
    the bounds' CDF values."""
    from .scipy.special import erf, erfinv
    dtype = _float_dtype(dtype, "truncated_normal")
    lower, upper = gnp.astype(gnp.asarray(lower), dtype), gnp.astype(gnp.asarray(upper), dtype)
    shape = tuple(np.broadcast_shapes(tuple(lower.shape), tuple(upper.shape))) if shape is None else _shape(shape)
    s2 = dtype.type(np.sqrt(2))
    a, b = erf(lower / s2), erf(upper / s2)
    out = s2 * erfinv(uniform(key, shape, dtype, a, b))
    if not isinstance(lower, Value) and not isinstance(upper, Value):     # the open interval, as JAX
        lower, upper = np.nextafter(lower, dtype.type(np.inf)), np.nextafter(upper, dtype.type(-np.inf))
    return gnp.clip(out, lower, upper)


def randint(key, shape, minval, maxval, dtype=np.int64):
    """Integers uniform in [minval, maxval) (int32 or int64), JAX's construction bit for
    bit: two words of random bits each reduced modulo the span and combined, which
    keeps the bias of a span that is not a power of 2 small; ``maxval <= minval`` gives
    ``minval``; bounds beyond the type's range are clipped to it."""
    shape, dtype = _shape(shape), np.dtype(dtype)
    if dtype not in (np.int32, np.int64):
        raise ArgumentError(f"gradc.random.randint: dtype must be int32 or int64, got {dtype}")
    info, ut = np.iinfo(dtype), np.dtype(f"uint{dtype.itemsize * 8}")
    lo, hi = gnp.asarray(minval), gnp.asarray(maxval)
    lo = lo if lo.dtype.kind in "iu" else gnp.astype(lo, np.int64)
    hi = hi if hi.dtype.kind in "iu" else gnp.astype(hi, np.int64)
    hi_out_of_range = hi > info.max
    lo = gnp.astype(gnp.clip(lo, info.min, info.max), dtype)
    hi = gnp.astype(gnp.clip(hi, info.min, info.max), dtype)
    k1, k2 = split(key)
    higher, lower = bits(k1, shape, ut), bits(k2, shape, ut)
    span = gnp.astype(hi - lo, ut)
    span = gnp.where(hi <= lo, ut.type(1), span)
    span = gnp.where(hi_out_of_range & (hi > lo), span + ut.type(1), span)
    half = ut.type(2 ** (ut.itemsize * 4))
    with np.errstate(over="ignore"):     # unsigned products wrap, as they do in a trace
        multiplier = half % span
        multiplier = (multiplier * multiplier) % span
        offset = ((higher % span) * multiplier + lower % span) % span
    return lo + gnp.astype(offset, dtype)


def permutation(key, x, axis=0, independent=False):
    """A random permutation of ``arange(x)`` (an int) or of ``x`` along ``axis``, as
    JAX's: rounds of a stable sort by 32 random bits per element (one round up to about
    1,600 elements); ``independent=True`` shuffles each slice along ``axis`` on its own,
    else the slices move together."""
    if isinstance(x, (int, np.integer)):
        return _shuffle(key, gnp.arange(int(x)), 0)
    x = gnp.asarray(x)
    axis = axis + x.ndim if axis < 0 else axis
    if independent or x.ndim == 1:
        return _shuffle(key, x, axis)
    order = _shuffle(key, gnp.arange(x.shape[axis]), 0)
    return gnp.take(x, order, axis=axis)


def choice(key, a, shape=(), replace=True, p=None, axis=0, *, mode=None):
    """Samples of ``a`` (an array's slices along ``axis``, or ``arange(a)`` for an int),
    ``shape`` of them, as JAX's, bit for bit: with replacement ``randint`` indices (or,
    with probabilities ``p``, the first index whose cumulative sum of ``p`` reaches a
    uniform draw scaled to the sum); without, the first of a ``permutation`` (or, with
    ``p``, the top ``k`` of Gumbel noise plus ``log(p)``).  ``mode`` is accepted for
    JAX's signature; its "low" form is the one computed."""
    from .lax_sorting import top_k
    if not isinstance(shape, (tuple, list)):
        raise ArgumentError(f"gradc.random.choice: shape must be a tuple of sizes, got {shape!r}")
    shape = _shape(tuple(shape))
    if mode not in (None, "low"):
        raise ArgumentError(f"gradc.random.choice: mode must be None or 'low', got {mode!r}")
    if isinstance(a, Value) and a.ndim == 0:
        raise ArgumentError("gradc.random.choice: a must be a Python int or an array; a traced scalar "
                            "would make the number of choices depend on data")
    arr = gnp.asarray(a)
    if arr.ndim == 0:
        n = int(a)
    else:
        axis = axis + arr.ndim if axis < 0 else axis
        n = int(arr.shape[axis])
    draws = int(np.prod(shape))
    if draws == 0:
        return gnp.zeros(shape, dtype=arr.dtype)
    if n <= 0:
        raise ArgumentError("gradc.random.choice: a must be greater than 0 unless no samples are taken")
    if not replace and draws > n:
        raise ArgumentError(f"gradc.random.choice: cannot take a larger sample (size {draws}) than the "
                            f"population (size {n}) when replace=False")
    if p is None:
        if replace:
            ind = randint(key, shape, 0, n)
            result = ind if arr.ndim == 0 else gnp.take(arr, ind, axis=axis)
        else:
            perm = permutation(key, n if arr.ndim == 0 else arr, axis)
            result = perm[(slice(None),) * (axis if arr.ndim else 0) + (slice(draws),)]
    else:
        p = gnp.asarray(p)
        if p.dtype.kind != "f":
            p = gnp.astype(p, np.float64)
        if tuple(p.shape) != (n,):
            raise ArgumentError(f"gradc.random.choice: p must be a vector of a.shape[axis] = {n} "
                                f"probabilities, got shape {tuple(p.shape)}")
        if replace:
            cum = gnp.cumsum(p)
            r = cum[-1] * (1 - uniform(key, shape, dtype=p.dtype))
            ind = gnp.astype(gnp.searchsorted(cum, r), np.int64)
        else:
            g = gumbel(key, (n,), dtype=p.dtype) + gnp.log(p)
            ind = gnp.astype(top_k(g, draws)[1], np.int64)
        result = ind if arr.ndim == 0 else gnp.take(arr, ind, axis=axis)
    out = shape if arr.ndim == 0 else tuple(arr.shape[:axis]) + shape + tuple(arr.shape[axis + 1:])
    return gnp.reshape(result, out)


def _shuffle(key, x, axis):
    size = int(np.prod(x.shape))
    for _ in range(int(np.ceil(3 * np.log(max(1, size)) / np.log(np.iinfo(np.uint32).max)))):
        key, sub = split(key)
        order = gnp.argsort(bits(sub, tuple(x.shape), np.uint32), axis=axis, kind="stable")
        x = gnp.take_along_axis(x, order, axis=axis)
    return x


def dropout_mask(key, rate, shape):
    """A keep mask for dropout at ``rate`` (True with probability ``1 - rate``)."""
    return bernoulli(key, 1.0 - rate, shape)


__all__ = ["PRNGKey", "key", "split", "fold_in", "bits", "uniform", "normal", "bernoulli", "exponential",
           "gumbel", "categorical", "truncated_normal", "dropout_mask", "threefry_2x32", "randint", "permutation",
           "choice"]
