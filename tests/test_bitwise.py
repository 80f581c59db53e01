"""Integer bitwise operations and bit casts against numpy, bit for bit: each integer type
over its whole range (the extremes included), shift counts from negative to beyond the
width, numpy 2's promotion of mixed types and Python ints, hashes written in numpy, and
``x.view(dtype)`` -- on the numpy evaluator, LLVM and C, traced and then through the
native call path.  Arrays of rank 3 with odd sizes (vector loops and their scalar
remainders), large enough that LLVM's loops split over threads."""
from __future__ import annotations

import numpy as np
import pytest

import gradc
import gradc.lax
import gradc.numpy as gnp
from gradc.backends.lower_loops import PAR_MIN_WORK

BACKENDS = ["numpy", "llvm", "c"]
SHAPE = (7, 11, 157)          # 12,089 elements
BIG = (16, 32, 515)           # 263,680: every nest splits over threads (at any cost per element)
assert np.prod(BIG) >= PAR_MIN_WORK
INTEGERS = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


def _same(got, want):
    """Equal bit for bit, of numpy's dtype and shape."""
    got = np.asarray(got)
    assert got.dtype == want.dtype, f"{got.dtype} != numpy's {want.dtype}"
    assert got.shape == want.shape
    if want.dtype.kind == "f":            # NaN payloads and -0.0 too
        got, want = got.view(f"u{want.itemsize}"), want.view(f"u{want.itemsize}")
    np.testing.assert_array_equal(got, want)


def _twice(f, args, want):
    """``f`` traced and compiled, then called again (the native call path)."""
    for got in (f(*args), f(*args)):
        got = got if isinstance(got, tuple) else (got,)
        want_ = want if isinstance(want, tuple) else (want,)
        assert len(got) == len(want_)
        for g, w in zip(got, want_):
            _same(g, w)


_BYTE_BITS = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def popcount(a):
    """The oracle of bitwise_count: the 1 bits of |a|, byte by byte from a table, uint8
    (numpy 2's bitwise_count; numpy 1.26 has none)."""
    a = np.asarray(a)
    if a.dtype == np.bool_:
        a = a.astype(np.uint8)
    with np.errstate(over="ignore"):
        mag = np.ascontiguousarray(np.where(a < 0, -a, a).astype(f"u{a.itemsize}"))   # -MIN wraps to MIN
    return _BYTE_BITS[mag.reshape(mag.shape + (1,)).view(np.uint8)].sum(axis=-1, dtype=np.uint8)


def _whole_range(dtype, seed, shape=BIG):
    info = np.iinfo(dtype)
    a = np.random.default_rng(seed).integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    a.flat[:6] = [info.min, info.max, 0, 1, info.max - 1, info.min + 1]
    if info.min < 0:
        a.flat[6] = -1
    return a


# ----------------------------------------------------------------------------- the whole range
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", INTEGERS, ids=lambda d: np.dtype(d).name)
def test_bitwise_ops_over_the_whole_range(dtype, backend):
    """& | ^ ~ << >> and bitwise_count of two arrays of random values of the whole range
    (the extremes at the front), shift counts -4 .. width+3 (numpy: 0, or -1 for a
    negative value shifted right, outside [0, width); LLVM and C leave it undefined)."""
    a, b = _whole_range(dtype, 1), _whole_range(dtype, 2)
    width = 8 * np.dtype(dtype).itemsize
    lo = -4 if np.iinfo(dtype).min < 0 else 0
    s = np.random.default_rng(3).integers(lo, width + 4, BIG).astype(dtype)
    s.flat[:width + 4 - lo] = np.arange(lo, width + 4).astype(dtype)       # every count at least once
    f = gradc.jit(lambda x, y, n: (x & y, x | y, x ^ y, ~x, x << n, x >> n, gnp.bitwise_count(x),
                                   gnp.invert(y), gnp.left_shift(y, n), gnp.right_shift(y, n)), backend=backend)
    want = (a & b, a | b, a ^ b, ~a, a << s, a >> s, popcount(a), ~b, b << s, b >> s)
    _twice(f, (a, b, s), want)
    if backend == "llvm":
        assert "parallel over" in f.lower(a, b, s).loop_ir()        # (its chunks ran the loops above)


# ----------------------------------------------------------------------------- promotion
_U32 = np.arange(12_089, dtype=np.uint32).reshape(SHAPE) * np.uint32(357_913)
_I8 = (np.arange(12_089) % 256 - 128).astype(np.int8).reshape(SHAPE)
_U8 = (np.arange(12_089) % 256).astype(np.uint8).reshape(SHAPE)
_I32 = (np.arange(12_089, dtype=np.int32) * 179_424_673).reshape(SHAPE)
_B = (np.arange(12_089) % 3 == 0).reshape(SHAPE)
_C = (np.arange(12_089) % 5 < 2).reshape(SHAPE)
_COUNT8 = (np.arange(12_089) % 13 - 3).astype(np.int8).reshape(SHAPE)

# (id, function written in numpy, arguments): gradc's dtype and bits must be numpy's
MIXED = [
    ("u32_xor_pyint", lambda x: x ^ 0xFFFFFFFF, (_U32,)),              # stays uint32 (numpy 2)
    ("u32_and_mask", lambda x: (x & 0xFF) | (x >> 24), (_U32,)),
    ("pyint_shl_u32", lambda n: 1 << (n & 31), (_U32,)),                # reflected: uint32
    ("pyint_rshift_u32", lambda n: 0x80000000 >> (n & 7), (_U32,)),
    ("i8_and_neg_pyint", lambda x: x & -16, (_I8,)),
    ("i8_shl_pyint", lambda x: x << 3, (_I8,)),                         # wraps in int8
    ("i8_counts", lambda x, n: (x << n, x >> n), (_I8, _COUNT8)),       # negative counts: 0 / -1
    ("i8_xor_i32", lambda x, y: x ^ y, (_I8, _I32)),                    # int32
    ("u8_or_i8", lambda x, y: x | y, (_U8, _I8)),                       # int16
    ("u32_shl_i32", lambda x, y: x << (y & 7), (_U32, _I32)),           # int64
    ("u32_xor_numpy_scalar", lambda x: x ^ np.uint32(0x9E3779B9), (_U32,)),
    ("numpy_ufuncs", lambda x, y: (np.bitwise_xor(x, y), np.left_shift(x, 2), np.invert(x),
                                   np.right_shift(y, 3)), (_U32, _I32)),
    ("numpy_array_and_traced", lambda x: (x & _U32[::-1], _U32 | x), (_U32,)),
    ("bool_and_or_xor_not", lambda p, q: (p & q, p | q, p ^ q, ~p, p & True), (_B, _C)),   # bool
    ("bool_and_pyint", lambda p: p & 1, (_B,)),                         # int64
    ("bool_shifts", lambda p, q: (p << q, p >> q, np.left_shift(p, q)), (_B, _C)),   # int8
    ("masks_and_integers", lambda x, p: gnp.where(p & (x > 100), x & 7, x >> 1), (_U32, _B)),
]
if hasattr(np, "bitwise_count"):       # numpy 2's ufunc on traced values
    MIXED += [("numpy_bitwise_count", lambda x, p: (np.bitwise_count(x), np.bitwise_count(p)), (_I32, _B))]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fn,args", [m[1:] for m in MIXED], ids=[m[0] for m in MIXED])
def test_mixed_types_promote_as_numpy(fn, args, backend):
    _twice(gradc.jit(fn, backend=backend), args, fn(*args))


def test_concrete_operands_outside_a_trace_are_numpys():
    for name in ("bitwise_and", "bitwise_or", "bitwise_xor", "left_shift", "right_shift"):
        _same(getattr(gnp, name)(_U32, 5), getattr(np, name)(_U32, 5))
    _same(gnp.bitwise_not(_I8), np.invert(_I8))
    _same(gnp.bitwise_count(_I32), popcount(_I32))
    _same(gnp.bitwise_count(_B), popcount(_B))
    if hasattr(np, "bitwise_count"):       # the oracle is numpy 2's
        for dtype in INTEGERS:
            a = _whole_range(dtype, 10, SHAPE)
            _same(popcount(a), np.bitwise_count(a))


# ----------------------------------------------------------------------------- hashes
def xorshift32(x):
    """Marsaglia's 32-bit xorshift, three rounds (uint32 wraps)."""
    for _ in range(3):
        x = x ^ (x << 13)
        x = x ^ (x >> 17)
        x = x ^ (x << 5)
    return x


def splitmix64(z):
    """splitmix64's finalizer (uint64 multiplications wrap)."""
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> 30)) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> 27)) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> 31)


def uniform01(bits):
    """Random float32s in [0, 1) from 32 random bits: 23 bits of mantissa under 1.0's exponent."""
    return ((bits >> 9) | 0x3F800000).view(np.float32) - np.float32(1.0)


def uniform01_64(bits):
    """Random float64s in [0, 1) from 64 random bits."""
    return ((bits >> np.uint64(12)) | np.uint64(0x3FF0000000000000)).view(np.float64) - 1.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_hashes_written_in_numpy_are_bit_exact(backend):
    x32 = _whole_range(np.uint32, 4)
    x64 = _whole_range(np.uint64, 5)
    f = gradc.jit(lambda a, b: (xorshift32(a), splitmix64(b), uniform01(xorshift32(a)), uniform01_64(splitmix64(b)),
                                gnp.bitwise_count(splitmix64(b))), backend=backend)
    want = (xorshift32(x32), splitmix64(x64), uniform01(xorshift32(x32)), uniform01_64(splitmix64(x64)),
            popcount(splitmix64(x64)))
    _twice(f, (x32, x64), want)
    u = want[2]
    assert 0.0 <= u.min() and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.01    # the hash's bits look random


@pytest.mark.parametrize("backend", BACKENDS)
def test_vmap_of_a_hash(backend):
    keys = _whole_range(np.uint64, 6, SHAPE)[:, :, :4]
    f = gradc.jit(gradc.vmap(lambda k: splitmix64(k) >> np.uint64(3) ^ (k << np.uint64(7))), backend=backend)
    _twice(f, (keys,), splitmix64(keys) >> np.uint64(3) ^ (keys << np.uint64(7)))


# ----------------------------------------------------------------------------- bit casts
def _special_floats(dtype):
    """Random bits, and the floats numbers tend to break on: signed zeros, infinities,
    quiet and signalling NaNs with payloads, subnormals, the extremes."""
    u = np.dtype(f"u{np.dtype(dtype).itemsize}")
    bits = _whole_range(u, 7)
    fi = np.finfo(dtype)
    special = np.array([0.0, -0.0, np.inf, -np.inf, fi.max, -fi.max, fi.tiny, fi.smallest_subnormal, 1.0], dtype)
    bits.flat[:special.size] = special.view(u)
    quiet = np.array(np.nan, dtype).view(u)
    bits.flat[special.size:special.size + 3] = [quiet | u.type(5), quiet ^ (u.type(1) << u.type(8 * u.itemsize - 1)),
                                                 (quiet & ~(quiet >> u.type(1) & ~(quiet >> u.type(2)))) | u.type(1)]
    return bits.view(dtype)


PAIRS = [(np.float32, np.uint32), (np.float32, np.int32), (np.float64, np.uint64), (np.float64, np.int64),
         (np.int32, np.uint32), (np.int64, np.uint64), (np.int8, np.uint8), (np.int16, np.uint16)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("a,b", PAIRS, ids=[f"{np.dtype(a).name}-{np.dtype(b).name}" for a, b in PAIRS])
def test_view_is_numpys_and_round_trips(a, b, backend):
    x = _special_floats(a) if np.dtype(a).kind == "f" else _whole_range(a, 8)
    y = x.view(b)
    f = gradc.jit(lambda x, y: (x.view(b), x.view(b).view(a), y.view(a), gradc.lax.bitcast_convert_type(y, a)),
                  backend=backend)
    _twice(f, (x, y), (x.view(b), x, y.view(a), y.view(a)))


def test_gradients_flow_beside_integer_bits():
    """Integer bit operations carry no gradient (their results are integers): the float
    math around them differentiates as usual.  f(w) = sum(w^2 u + sin(w) v) with u and
    v random numbers made from a counter: df/dw = 2 w u + cos(w) v."""
    w = np.random.default_rng(9).standard_normal(BIG)
    counter = np.arange(w.size, dtype=np.uint32).reshape(BIG)

    def f(w, n):
        u = uniform01(xorshift32(n)).astype(np.float64)
        v = uniform01_64(splitmix64(n.astype(np.uint64)))
        return gnp.sum(w * w * u + gnp.sin(w) * v)

    u = uniform01(xorshift32(counter)).astype(np.float64)
    v = uniform01_64(splitmix64(counter.astype(np.uint64)))
    for backend in BACKENDS:
        g = gradc.jit(gradc.grad(f), backend=backend)
        for got in (g(w, counter), g(w, counter)):
            np.testing.assert_allclose(got, 2 * w * u + np.cos(w) * v, rtol=1e-14, atol=1e-15)
    val, grads = gradc.value_and_grad(lambda w: gnp.sum(w * (xorshift32(counter) & 1)))(w)
    np.testing.assert_array_equal(grads, xorshift32(counter) & 1)
    assert val == pytest.approx(np.sum(w * (xorshift32(counter) & 1)), rel=1e-14)


# ----------------------------------------------------------------------------- refusals
A = np.linspace(-1.0, 1.0, 24).reshape(2, 3, 4)
K = np.arange(24).reshape(2, 3, 4)

# (id, function, arguments, error, what the message must say); numpy refuses all but
# the views, whose other sizes and bools gradc leaves out
REFUSED = [
    ("float_and", lambda a: a & 3, (A,), gradc.UnsupportedError, r"bitwise_and \(the & operator\) of float64"),
    ("int_xor_float", lambda k: k ^ 1.5, (K,), gradc.UnsupportedError, "int64 and a Python float.*floats"),
    ("float32_shift", lambda a: a.astype(np.float32) << 2, (A,), gradc.UnsupportedError, "left_shift.*float32"),
    ("float_invert", lambda a: ~a, (A,), gradc.UnsupportedError, r"invert \(the ~ operator\) of float64"),
    ("float_bitwise_count", lambda a: gnp.bitwise_count(a), (A,), gradc.UnsupportedError, "bitwise_count of float64"),
    ("int64_xor_uint64", lambda k: k ^ k.astype(np.uint64), (K,), gradc.UnsupportedError,
     "int64 and uint64: their common type is float64"),
    ("pyint_out_of_range", lambda k: k.astype(np.uint8) & 300, (K,), OverflowError, "300 out of bounds for uint8"),
    ("view_other_size", lambda a: a.view(np.float32), (A,), gradc.UnsupportedError, "same size only"),
    ("view_bool", lambda k: (k > 3).view(np.uint8), (K,), gradc.UnsupportedError, "bool as uint8"),
]


@pytest.mark.parametrize("fn,args,error,match", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_refused_as_numpy_refuses(fn, args, error, match):
    """numpy raises TypeError for bitwise operations on floats (gradc's UnsupportedError
    is a TypeError) and OverflowError for a Python int its array's type cannot hold;
    the message names the operation, the dtypes and the user's line."""
    with pytest.raises(error, match=match) as e:
        gradc.jit(fn)(*args)
    assert isinstance(e.value, TypeError) or error is OverflowError
    if error is not OverflowError:
        assert f"test_bitwise.py:{fn.__code__.co_firstlineno}" in str(e.value)
        if "view" not in fn.__code__.co_names:
            with pytest.raises(TypeError):        # numpy refuses them too
                fn(*args)
    else:
        with pytest.raises(OverflowError):
            fn(*args)


def test_lax_bitwise_names():
    """jax.lax's names: a logical right shift of a signed integer shifts in zeros."""
    import gradc.lax as lax
    x = np.array([-8, -1, 5, 1 << 40], np.int64)
    y = np.array([1, 3, 0, 62], np.int64)
    got = gradc.jit(lambda x, y: (lax.shift_right_logical(x, y), lax.shift_right_arithmetic(x, y),
                                  lax.shift_left(x, y), lax.bitwise_not(x)))(x, y)
    want = ((x.view(np.uint64) >> y.astype(np.uint64)).view(np.int64), x >> y, x << y, ~x)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
