"""Unmodified numpy code traces: numpy's functions and ufuncs dispatch to gradc on traced
values, numpy constants work on either side of an operator, traced values have numpy's
attributes and methods, and ``gradc.numpy`` mirrors numpy (also outside a trace).

Each model is written once with ``np`` (real numpy) and run twice: by numpy directly
(the oracle) and by gradc.jit; gradients are checked against finite differences."""
from __future__ import annotations

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp

from gradc_helpers import assert_fd_close, fd_grad

pytestmark = pytest.mark.usefixtures("core_backend")

r = np.random.default_rng(0)
x = r.standard_normal(4)
z = r.standard_normal(4)
A = r.standard_normal((3, 4))
arr = r.standard_normal(4)
c = 2.5


def same(f, *args, grad=True):
    """jit(f) == f on numpy arrays; grad(sum(f)) == finite differences of f."""
    want = f(*args)
    got = gradc.jit(f)(*args)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert np.shape(got) == np.shape(want)
    if grad:
        g = gradc.grad(lambda *a: gnp.sum(f(*a)))(*args)
        assert_fd_close(g, fd_grad(lambda *a: np.sum(f(*a)), list(args), 0))
    return got


NUMPY_CODE = [
    ("np.exp", lambda x: np.exp(x)),
    ("np.maximum(0, z)", lambda x: np.maximum(0.0, x)),
    ("np.sum axis 0", lambda X: np.sum(X, axis=0)),
    ("np.sum keepdims", lambda X: np.sum(X, axis=1, keepdims=True)),
    ("np.mean", lambda X: np.mean(X)),
    ("np.max axis", lambda X: np.max(X, axis=1)),
    ("np.dot(w, x)", lambda x: np.dot(x, x[::-1])),
    ("np.dot(A, x)", lambda x: np.dot(A, x)),
    ("A @ x (numpy on the left)", lambda x: A @ x),
    ("x @ A.T", lambda x: x @ A.T),
    ("c * x", lambda x: c * x),
    ("x * c", lambda x: x * c),
    ("x + arr", lambda x: x + arr),
    ("arr + x", lambda x: arr + x),
    ("arr - x", lambda x: arr - x),
    ("arr / (1 + x*x)", lambda x: arr / (1 + x * x)),
    ("arr ** 2 * x", lambda x: arr ** 2 * x),
    ("np.float64 scalar * x", lambda x: np.float64(3.0) * x),
    ("np.tanh/np.log1p/np.square", lambda x: np.tanh(x) + np.log1p(np.square(x))),
    ("np.sqrt(np.abs)", lambda x: np.sqrt(np.abs(x) + 1.0)),
    ("np.where", lambda x: np.where(x > 0, x, 0.1 * x)),
    ("np.clip", lambda x: np.clip(x, -0.5, 0.5)),
    ("np.transpose", lambda X: np.transpose(X)),
    ("np.reshape", lambda X: np.reshape(X, (-1,))),
    ("np.outer", lambda x: np.outer(x, arr)),
    ("np.matmul", lambda x: np.matmul(A, x)),
    ("np.stack", lambda x: np.stack([x, 2 * x])),
    ("np.concatenate", lambda x: np.concatenate([x, x[:2]])),
    ("np.expand_dims", lambda x: np.expand_dims(x, 0) * A),
    ("np.squeeze", lambda X: np.squeeze(X[:, :1])),
    ("np.sum(x * x) (norm^2)", lambda x: np.sum(x * x)),
    ("np.add.reduce", lambda X: np.add.reduce(X, axis=0)),
    ("np.maximum.reduce", lambda X: np.maximum.reduce(X, axis=1)),
]


@pytest.mark.parametrize("name,f", NUMPY_CODE, ids=[n for n, _ in NUMPY_CODE])
def test_unmodified_numpy_code(name, f):
    arg = A if "X" in f.__code__.co_varnames else x
    same(f, arg)


def test_softmax_regression_loss_in_plain_numpy():
    """A whole model in plain numpy: softmax cross-entropy with a gather by labels."""
    W = r.standard_normal((4, 3))
    Xd = r.standard_normal((5, 4))
    labels = np.array([0, 2, 1, 1, 0])

    def loss(W):
        S = Xd @ W
        S = S - np.max(S, axis=1, keepdims=True)
        logp = S - np.log(np.sum(np.exp(S), axis=1, keepdims=True))
        return -np.mean(logp[np.arange(Xd.shape[0]), labels])
    same(loss, W)


# ----------------------------------------------------------------------------- attributes
def test_attributes():
    seen = {}

    def f(X):
        seen.update(shape=X.shape, ndim=X.ndim, size=X.size, dtype=X.dtype, len=len(X),
                    np_shape=np.shape(X), np_ndim=np.ndim(X))
        return X
    gradc.jit(f)(A)
    assert seen == dict(shape=(3, 4), ndim=2, size=12, dtype=np.float64, len=3, np_shape=(3, 4), np_ndim=2)
    gradc.jit(f)(A.astype(np.float32))
    assert seen["dtype"] == np.float32


METHODS = [
    (".T", lambda X: X.T),
    (".sum()", lambda X: X.sum()),
    (".sum(axis=1)", lambda X: X.sum(axis=1)),
    (".mean()", lambda X: X.mean()),
    (".mean(axis=0, keepdims)", lambda X: X.mean(axis=0, keepdims=True)),
    (".max()", lambda X: X.max()),
    (".max(axis=0)", lambda X: X.max(axis=0)),
    (".min(axis=1)", lambda X: X.min(axis=1)),
    (".dot()", lambda X: X.dot(arr)),
    (".reshape(tuple)", lambda X: X.reshape((4, 3))),
    (".reshape(*ints)", lambda X: X.reshape(2, -1)),
    (".astype(float32)", lambda X: X.astype(np.float32).astype(np.float64)),
    (".copy()", lambda X: X.copy() * 2.0),
    (".clip()", lambda X: X.clip(-0.3, 0.3)),
    (".transpose()", lambda X: X.transpose()),
    ("indexing X[1]", lambda X: X[1]),
    ("indexing X[:, 2]", lambda X: X[:, 2]),
    ("indexing X[1:, ::2]", lambda X: X[1:, ::2]),
    ("indexing X[-1, ::-1]", lambda X: X[-1, ::-1]),
    ("indexing X[None]", lambda X: X[0][None, :]),
    ("iteration", lambda X: sum(row * i for i, row in enumerate(X))),
]


@pytest.mark.parametrize("name,f", METHODS, ids=[m[0] for m in METHODS])
def test_methods_and_indexing(name, f):
    same(f, A, grad=name != ".astype(float32)")


def test_astype_float32_result_dtype():
    out = gradc.jit(lambda X: X.astype(np.float32) * 2)(A)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, (A * 2).astype(np.float32), rtol=1e-7)


# ----------------------------------------------------------------------------- gradc.numpy
def test_array_of_traced_scalars():
    def f(v):
        a, b = v[0], v[1]
        return gnp.array([a * b, a - b, gnp.sin(a)])
    v = np.array([0.3, -1.2])
    same(f, v)
    np.testing.assert_allclose(gradc.jacobian(f)(v), [[v[1], v[0]], [1, -1], [np.cos(v[0]), 0]],
                               rtol=1e-12)


def test_nested_array_of_traced_scalars():
    def f(v):
        return gnp.array([[v[0], v[1]], [v[1] * 2, v[0] ** 2]])
    v = np.array([0.3, -1.2])
    got = gradc.jit(f)(v)
    np.testing.assert_allclose(got, [[0.3, -1.2], [-2.4, 0.09]], rtol=1e-12)


def test_stack_concatenate_traced():
    def f(a, b):
        return gnp.concatenate([gnp.stack([a, b], axis=1), gnp.stack([b, a], axis=1)], axis=0)
    got = gradc.jit(f)(x, z)
    np.testing.assert_allclose(got, np.concatenate([np.stack([x, z], 1), np.stack([z, x], 1)]))


def test_constructors_mixed_with_traced():
    def f(x):
        return gnp.eye(4) @ x + gnp.zeros(4) + gnp.ones(4) * gnp.sum(x) + gnp.full(4, 0.5)
    same(f, x)
    same(lambda x: gnp.zeros_like(x) + gnp.ones_like(x) * x + np.zeros_like(x), x)


def test_where_with_traced_and_constant_branches():
    same(lambda x: gnp.where(x > 0, x, arr), x)
    same(lambda x: gnp.where(arr > 0, 1.0, x * x), x)


def test_gradc_numpy_falls_back_to_numpy_outside_trace():
    """gradc.numpy on concrete arrays is numpy."""
    np.testing.assert_array_equal(gnp.exp(x), np.exp(x))
    np.testing.assert_array_equal(gnp.sum(A, axis=0), np.sum(A, axis=0))
    np.testing.assert_array_equal(gnp.maximum(0.0, x), np.maximum(0.0, x))
    np.testing.assert_array_equal(gnp.dot(A, x), np.dot(A, x))
    np.testing.assert_array_equal(gnp.stack([x, z]), np.stack([x, z]))
    np.testing.assert_array_equal(gnp.where(x > 0, x, z), np.where(x > 0, x, z))
    np.testing.assert_allclose(gnp.logsumexp(np.array([1000.0, 1000.0])), 1000 + np.log(2))
    np.testing.assert_allclose(gnp.sigmoid(np.array([-800.0, 0.0, 800.0])), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(gnp.softplus(np.array([-800.0, 800.0])), [0.0, 800.0])
    assert isinstance(gnp.array([1.0, 2.0]), np.ndarray)


def test_gradc_numpy_names_match_numpy():
    for name in ["exp", "log", "log1p", "expm1", "sqrt", "sign", "sin", "cos", "tanh", "square",
                 "abs", "absolute", "negative", "add", "subtract", "multiply", "divide", "power",
                 "maximum", "minimum", "where", "clip", "greater", "less", "equal", "sum", "max",
                 "min", "mean", "amax", "amin", "matmul", "dot", "outer", "transpose", "reshape",
                 "expand_dims", "squeeze", "stack", "concatenate", "take_along_axis", "broadcast_to",
                 "zeros_like", "ones_like", "full_like", "array", "asarray", "zeros", "ones", "eye",
                 "float32", "float64", "pi", "newaxis"]:
        assert hasattr(gnp, name), name
        assert hasattr(np, name), name


def test_mixed_gradc_and_numpy_namespaces():
    same(lambda x: gradc.relu(np.tanh(x)) + gnp.sigmoid(x) * np.exp(-x * x), x)


# ----------------------------------------------------------------------------- integer / bool inputs
K = np.array([1, 2, 3])
BOOLS = np.array([True, False, True])
INT_OPS_MATCHING_NUMPY = [
    ("k + 1", lambda k: k + 1), ("k * k", lambda k: k * k), ("k - 1.0", lambda k: k - 1.0),
    ("k * 2.5", lambda k: k * 2.5), ("k / 2", lambda k: k / 2), ("k > 1", lambda k: k > 1),
    ("where(k > 1, k, 0)", lambda k: gnp.where(k > 1, k, 0)), ("maximum(k, 2)", lambda k: gnp.maximum(k, 2)),
    ("k[::-1]", lambda k: k[::-1]), ("stack", lambda k: gnp.stack([k, k])), ("exp(k)", lambda k: gnp.exp(k)),
    ("mean(k)", lambda k: gnp.mean(k)), ("sign(k)", lambda k: gnp.sign(k)),
]


@pytest.mark.parametrize("name,f", INT_OPS_MATCHING_NUMPY, ids=[n for n, _ in INT_OPS_MATCHING_NUMPY])
def test_integer_inputs_follow_numpy(name, f):
    want = np.asarray(f(K))
    got = np.asarray(gradc.jit(f)(K))
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


INT_OPS_KEEPING_DTYPE = [
    ("-k", lambda k: -k), ("abs(k)", lambda k: abs(k)), ("k ** 2", lambda k: k ** 2),
    ("k ** 3", lambda k: k ** 3), ("k ** 0", lambda k: k ** 0), ("2 ** k", lambda k: 2 ** k),
    ("k ** k", lambda k: k ** k), ("square(k)", lambda k: gnp.square(k)), ("sum(k)", lambda k: gnp.sum(k)),
    ("max(k)", lambda k: gnp.max(k)), ("min(k)", lambda k: gnp.min(k)), ("k @ k", lambda k: k @ k),
    ("sum(outer, axis=0)", lambda k: gnp.sum(gnp.outer(k, k), axis=0)),
    ("max(outer, axis=1)", lambda k: gnp.max(gnp.outer(k, -k), axis=1)),
    ("outer @ k", lambda k: gnp.outer(k, k) @ k), ("k @ outer", lambda k: k @ gnp.outer(k, k)),
    ("outer @ outer", lambda k: gnp.outer(k, k) @ gnp.outer(k, -k)),
    ("abs(-k) * k - 1", lambda k: abs(-k) * k - 1),
]
INT_ARRAYS = {
    "int64": np.array([1, 2, 3, -4, 0, 7, -1], np.int64),
    "int32": np.array([1, 2, 3, -4, 0, 7, -1], np.int32),
}


@pytest.mark.parametrize("dt", sorted(INT_ARRAYS))
@pytest.mark.parametrize("name,f", INT_OPS_KEEPING_DTYPE, ids=[n for n, _ in INT_OPS_KEEPING_DTYPE])
def test_integer_ops_keep_numpys_dtype(name, f, dt):
    """Integer arithmetic stays integer, as in numpy (int32 sums widen to int64):
    the same values and the same dtype."""
    k = INT_ARRAYS[dt]
    if "** k" in name:
        k = np.abs(k)                         # numpy refuses negative integer powers
    want = np.asarray(f(k))
    got = np.asarray(gradc.jit(f)(k))
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_integer_sums_are_exact_beyond_2_to_the_53():
    """A float64 accumulator would round these (2**60 + 1 is not a double); numpy's
    int64 sum, and gradc's, are exact (and wrap on overflow as numpy's do)."""
    k = np.array([2 ** 60, 1, 3, 2 ** 60], np.int64)
    assert gradc.jit(lambda k: gnp.sum(k))(k) == np.sum(k) == 2 ** 61 + 4
    big = np.full(3, 2 ** 62, np.int64)
    with np.errstate(over="ignore"):
        assert gradc.jit(lambda k: gnp.sum(k))(big) == np.sum(big)
        np.testing.assert_array_equal(gradc.jit(lambda k: k * k)(big), big * big)


def test_integer_max_min_of_extremes():
    k = np.array([np.iinfo(np.int64).min, -5, np.iinfo(np.int64).max], np.int64)
    assert gradc.jit(lambda k: gnp.max(k))(k) == np.iinfo(np.int64).max
    assert gradc.jit(lambda k: gnp.min(k))(k) == np.iinfo(np.int64).min
    assert gradc.jit(lambda k: gnp.max(k[:1]))(k) == np.iinfo(np.int64).min
    np.testing.assert_array_equal(gradc.jit(lambda k: abs(k))(k), abs(k))   # abs(min) wraps, as in numpy


def test_negative_integer_powers_are_refused_like_numpy():
    k = np.array([1, 2, 3])
    with pytest.raises(ValueError, match="Integers to negative integer powers are not allowed"):
        gradc.jit(lambda k: k ** -1)(k)
    with pytest.raises(ValueError, match="Integers to negative integer powers are not allowed"):
        gradc.jit(lambda k, e: k ** e)(k, np.array([1, -2, 0]))
    np.testing.assert_array_equal(gradc.jit(lambda k: k ** -1.0)(k), k ** -1.0)   # a float exponent: floats


def test_bool_arithmetic_like_numpy():
    """Including numpy's quirks: a bool array's square and ``** 2`` are int8 (square
    has no bool loop), ``np.power(b, 2)`` and ``** 3`` int64."""
    b = np.array([True, False, True])
    for f in (lambda b: abs(b), lambda b: gnp.max(b), lambda b: gnp.min(b),
              lambda b: gnp.sum(b), lambda b: b @ b, lambda b: gnp.outer(b, b) @ b,
              lambda b: gnp.square(b), lambda b: b ** 2, lambda b: gnp.power(b, 2), lambda b: b ** 3):
        want, got = np.asarray(f(b)), np.asarray(gradc.jit(f)(b))
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    with pytest.raises(TypeError, match="boolean negative"):
        gradc.jit(lambda b: -b)(b)


def test_integer_results_feed_float_gradients():
    """An integer part of a model (no gradient) next to a differentiated float part."""
    k = np.array([3, -1, 2])
    x = np.array([0.5, 1.5, -2.0])
    f = gradc.value_and_grad(lambda x, k: gnp.sum(x * abs(k) ** 2) + gnp.sum(k))
    v, g = f(x, k)
    assert v == pytest.approx(np.sum(x * abs(k) ** 2) + np.sum(k), rel=1e-15)
    np.testing.assert_array_equal(g, (abs(k) ** 2).astype(float))


def test_bool_inputs():
    np.testing.assert_array_equal(gradc.jit(lambda b, x: gnp.where(b, x, -x))(BOOLS, x[:3]),
                                  np.where(BOOLS, x[:3], -x[:3]))
    assert gradc.jit(lambda b: gnp.sum(b))(BOOLS) == 2
    np.testing.assert_array_equal(gradc.jit(lambda b: ~b & b)(BOOLS), np.zeros(3, bool))


@pytest.mark.parametrize("rows", [7, 100, 203])
def test_two_temporary_index_arrays_stay_distinct(rows, core_backend):
    """`z[np.arange(n), labels]`: both index arrays are temporaries of the same size; a
    constant cache keyed by id() once merged them when the first was freed before the
    second was made (found with 100+ rows, where constants are not keyed by content)."""
    rng = np.random.default_rng(rows)
    X, W = rng.standard_normal((rows, 3)), rng.standard_normal((3, 4))
    labels = rng.integers(0, 4, rows)

    def loss(W, X):
        z = X @ W
        return gradc.sum(z[np.arange(rows), labels])
    v, g = gradc.value_and_grad(loss, backend=core_backend)(W, X)
    onehot = np.zeros((rows, 4))
    onehot[np.arange(rows), labels] = 1.0
    np.testing.assert_allclose(v, np.sum((X @ W)[np.arange(rows), labels]), rtol=1e-12)
    np.testing.assert_allclose(g, X.T @ onehot, rtol=1e-12, atol=1e-13)


UNSIGNED_OPS = [   # (name, function, numpy's)
    ("greater", lambda x, y: x > y, np.greater),
    ("less_equal", lambda x, y: x <= y, np.less_equal),
    ("maximum", lambda x, y: gnp.maximum(x, y), np.maximum),
    ("minimum", lambda x, y: gnp.minimum(x, y), np.minimum),
    ("abs", lambda x, y: abs(x), lambda x, y: np.abs(x)),
    ("max", lambda x, y: gnp.max(x), lambda x, y: np.max(x)),
    ("min", lambda x, y: gnp.min(x), lambda x, y: np.min(x)),
    ("max_rows", lambda x, y: gnp.max(gnp.reshape(x, (3, -1)), axis=1), lambda x, y: np.max(x.reshape(3, -1), axis=1)),
    ("sum", lambda x, y: gnp.sum(x), lambda x, y: np.sum(x)),
    ("to_float", lambda x, y: x * 0.5, lambda x, y: x * 0.5),
]


@pytest.mark.parametrize("dtype", [np.uint32, np.uint64])
@pytest.mark.parametrize("n", [3, 600_000])
@pytest.mark.parametrize("name,f,ref", UNSIGNED_OPS, ids=[o[0] for o in UNSIGNED_OPS])
def test_unsigned_values_above_the_signed_range(name, f, ref, n, dtype, core_backend):
    """Unsigned integers at and above 2**(bits-1) (negative if read as signed) compare,
    reduce and convert as numpy's: same values, same dtype.  600,000 elements run the
    reductions in threads, whose partial results are combined unsigned too."""
    top = np.iinfo(dtype).max
    rng = np.random.default_rng(n)
    x = rng.integers(0, top, n, dtype=dtype, endpoint=True)
    y = rng.integers(0, top, n, dtype=dtype, endpoint=True)
    x[:3] = [top // 2 + 1, 5, top]          # above, below and at the top of the range
    y[:3] = [3, top // 2 + 1, 7]
    x[-1] = top                             # the largest value in the last chunk
    got, want = gradc.jit(f, backend=core_backend)(x, y), ref(x, y)
    assert np.asarray(got).dtype == np.asarray(want).dtype
    np.testing.assert_array_equal(got, want)


SMALL_INT_OPS = [   # (name, function, numpy's); results keep numpy's dtypes
    ("mul", lambda x, y: x * y, lambda x, y: x * y),
    ("sub", lambda x, y: x - y, lambda x, y: x - y),
    ("neg", lambda x, y: -x, lambda x, y: -x),
    ("abs", lambda x, y: abs(x), lambda x, y: np.abs(x)),
    ("cube", lambda x, y: x ** 3, lambda x, y: x ** 3),
    ("greater", lambda x, y: x > y, np.greater),
    ("maximum", lambda x, y: gnp.maximum(x, y), np.maximum),
    ("where", lambda x, y: gnp.where(x > y, x, y), lambda x, y: np.where(x > y, x, y)),
    ("max", lambda x, y: gnp.max(x), lambda x, y: np.max(x)),
    ("min", lambda x, y: gnp.min(y), lambda x, y: np.min(y)),
    ("sum", lambda x, y: gnp.sum(x), lambda x, y: np.sum(x)),
    ("to_float", lambda x, y: x / 2, lambda x, y: x / 2),
]


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16])
@pytest.mark.parametrize("n", [5, 600_000])
@pytest.mark.parametrize("name,f,ref", SMALL_INT_OPS, ids=[o[0] for o in SMALL_INT_OPS])
def test_one_and_two_byte_integers(name, f, ref, n, dtype, core_backend):
    """int8, uint8, int16 and uint16 arrays compute as numpy's: wrapping arithmetic in
    their own type, signed or unsigned comparisons, sums widened to 64 bits.  (They
    once reached the code generators' type tables and failed with a KeyError.)  600,000
    elements run max/min in threads, combined in the element's own type."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(n)
    x = rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True)
    y = rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True)
    x[:5] = [info.min, info.max, 3, info.max // 2 + 1, 0]
    y[:5] = [info.max, 1, info.min, 7, 2]
    x[-1], y[-2] = info.max, info.min        # the extremes in the last chunk
    got = gradc.jit(f, backend=core_backend)(x, y)
    with np.errstate(all="ignore"):
        want = ref(x, y)
    assert np.asarray(got).dtype == np.asarray(want).dtype
    np.testing.assert_array_equal(got, want)
