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
    (".swapaxes()", lambda X: X.swapaxes(0, -1)),
    (".mT", lambda X: X.mT),
    ("masks | & ^ ~", lambda X: np.where(((X > 0.3) | (X < -0.5)) & ~(X > 1.0) ^ (X < -0.9), X, 0.0)),
    ("masks with Python bools", lambda X: np.where(True & (X > 0) | False, X, -X)),
    (".var(axis, where)", lambda X: X.var(axis=1, where=np.arange(4) != 2)),
    (".std(ddof, where)", lambda X: X.std(axis=0, ddof=1, where=np.arange(3)[:, None] != 1)),
    (".prod(axis, initial, where)", lambda X: X.prod(axis=1, initial=2.0, where=np.arange(4) != 0)),
    (".real", lambda X: X.real * 2.0),
    (".any(where)", lambda X: np.where(X.any(axis=1, where=np.arange(4) > 5), 1.0, X[:, 0])),
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


X3 = np.random.default_rng(11).standard_normal((4, 5, 6))
I2, J1 = np.array([[0, 2], [3, 3]]), np.array([1, -1])
M5, M45 = np.array([True, False, True, True, False]), np.random.default_rng(12).random((4, 5)) > 0.5
# numpy accepts these and gradc once refused them: a constant boolean mask (its shape is known
# while tracing: numpy indexes by its nonzero()), and None beside integer-array indices
MASKS_AND_NEWAXES = [
    ("X[:, mask]", lambda X: X[:, M5]),
    ("X[mask2d]", lambda X: X[M45]),
    ("X[mask2d, ::-2]", lambda X: X[M45, ::-2]),
    ("X[1, mask, None]", lambda X: X[1, M5, None]),
    ("X[list of bools]", lambda X: X[[True, False, True, False]]),
    ("X[None, I, ..., J]", lambda X: X[None, I2[0], ..., J1]),
    ("X[I, None, J]", lambda X: X[I2, None, J1]),
    ("X[:, None, J, None]", lambda X: X[:, None, J1, None]),
    ("X[None, None, I, 1:3, J]", lambda X: X[None, None, I2, 1:3, J1]),
]


@pytest.mark.parametrize("name,f", MASKS_AND_NEWAXES, ids=[m[0] for m in MASKS_AND_NEWAXES])
@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_constant_masks_and_newaxis_beside_index_arrays(name, f, backend):
    want = f(X3)
    got = gradc.jit(f, backend=backend)(X3)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    w = np.random.default_rng(13).standard_normal(want.shape)
    g = gradc.grad(lambda X: gnp.sum(f(X) * w), backend=backend)(X3)
    assert_fd_close(g, fd_grad(lambda X: np.sum(f(X) * w), [X3], 0))


def test_at_update_through_a_constant_mask():
    m = np.array([True, False, True])
    got = gradc.jit(lambda X: X.at[m].multiply(3.0))(A)
    np.testing.assert_array_equal(got, np.where(m[:, None], A * 3.0, A))


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


# ----------------------------------------------------------------------------- numpy's wider surface
# Accuracy of the composed element-wise functions (gradc/ops/mathfuncs.py) against numpy
# over wide ranges and the special values, in ulp of numpy's result.  numpy's own
# functions are within 1-2 ulp (glibc / numpy's SIMD code), gradc's primitives within a
# few; the compositions were measured at most 3 ulp (float64) and 5 ulp (float32) on both
# backends, so MAX_ULP = 8 leaves room for a different libm yet catches any real loss of
# accuracy (a cancellation costs thousands of ulp).
MAX_ULP = 8


def _ulp_error(got, want, scale=None):
    """max |got - want| in ulp of |want| (or of ``scale``, the magnitude the result is
    computed from, where it cancels towards 0)."""
    got, want = np.asarray(got), np.asarray(want)
    fin = np.isfinite(want)
    same_special = (got[~fin] == want[~fin]) | (np.isnan(got[~fin]) & np.isnan(want[~fin]))
    assert same_special.all(), f"non-finite results differ: {got[~fin][~same_special]} vs {want[~fin][~same_special]}"
    mag = np.abs(want) if scale is None else np.maximum(np.abs(want), np.abs(scale))
    sp = np.spacing(mag[fin].astype(want.dtype)).astype(np.float64)
    return float(np.max(np.abs(got[fin].astype(np.float64) - want[fin]) / sp, initial=0.0))


def _wide_values(dtype, n=4000):
    g = np.random.default_rng(5)
    parts = [g.standard_normal(n) * s for s in (1e-6, 1e-2, 1.0, 10.0, 80.0, 300.0)]
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 88.5, 89.3, 709.5, 710.2, -710.2, 711.0, 1e300, 2.0 ** 28]
    with np.errstate(over="ignore"):
        return np.concatenate(parts + [np.array(special)]).astype(dtype)


def _unit_values(dtype):
    g = np.random.default_rng(6)
    return np.concatenate([g.uniform(-1, 1, 20000), [1.0, -1.0, 0.0, -0.0, 1.5, -2.0, np.nan, 1 - 1e-12]]).astype(dtype)


UNARY_ACCURACY = [
    ("sinh", _wide_values), ("cosh", _wide_values), ("arcsinh", _wide_values), ("arctan", _wide_values),
    ("cbrt", _wide_values), ("exp2", lambda dt: _wide_values(dt) / 4),
    ("tan", lambda dt: _wide_values(dt)[np.abs(_wide_values(dt)) < 1e5]),
    ("log2", lambda dt: np.abs(_wide_values(dt))), ("log10", lambda dt: np.abs(_wide_values(dt))),
    ("arctanh", _unit_values), ("arcsin", _unit_values), ("arccos", _unit_values),
    ("arccosh", lambda dt: 1 + np.abs(_wide_values(dt))), ("degrees", _wide_values), ("radians", _wide_values),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,values", UNARY_ACCURACY, ids=[u[0] for u in UNARY_ACCURACY])
def test_composed_math_is_accurate(name, values, dtype):
    v = values(dtype)
    got = gradc.jit(getattr(gnp, name))(v)
    with np.errstate(all="ignore"):
        want = getattr(np, name)(v)
    assert got.dtype == want.dtype
    assert _ulp_error(got, want) <= MAX_ULP


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["arctan2", "logaddexp", "logaddexp2", "hypot", "copysign", "fmax", "fmin"])
def test_composed_binary_math_is_accurate(name, dtype):
    v = _wide_values(dtype)
    a, b = v, np.roll(v, 1001)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, 1.0, np.nan], dtype)
    a = np.concatenate([a, np.repeat(specials, 6)])          # every pair of special values
    b = np.concatenate([b, np.tile(specials, 6)])
    got = gradc.jit(getattr(gnp, name))(a, b)
    with np.errstate(all="ignore"):
        want = getattr(np, name)(a, b)
        # logaddexp(a, b) = max + log1p(...) cancels to 0 near max = -log 2: numpy's own
        # formula does the same, so the error is measured against the larger operand
        scale = np.maximum(a, b) if name.startswith("logaddexp") else None
    assert _ulp_error(got, want, scale) <= MAX_ULP
    # the sign of a zero too (a nan's sign bit means nothing; max(0.0, -0.0) is either
    # zero: numpy's fmax picks the first, its maximum the second, LLVM's the +0.0)
    num = ~np.isnan(want) & ((want != 0) | (name not in ("fmax", "fmin")))
    assert np.array_equal(np.signbit(got[num]), np.signbit(want[num])) or name.startswith("logaddexp")


@pytest.mark.parametrize("backend", ["llvm", "c", "numpy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["floor", "ceil", "trunc", "rint", "round", "fmod", "remainder", "floor_divide",
                                  "divmod"])
def test_rounding_and_remainders_are_numpys_bits(name, dtype, backend):
    """numpy's own results, bit for bit with the sign of zero, at halves, exact multiples,
    opposite signs, zeros, infinities and nans: floor_divide and remainder are computed
    from fmod as numpy computes them, so a // b and a % b agree with numpy's and with each
    other."""
    v = _wide_values(dtype, 500)
    halves = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 6.0, -6.0, 3.0, -3.0, 1e16 + 2], dtype)
    a = np.concatenate([v, halves, np.repeat(halves[5:9], 4)])
    b = np.concatenate([np.roll(v, 7), np.full(halves.size, 1.0, dtype), np.tile(halves[5:9], 4)])
    f = {"round": lambda x, y: gnp.round(x * 100, 2) - gnp.round(y, -1),
         "divmod": lambda x, y: gnp.divmod(x, y)}.get(name)
    if f is None:
        f = (lambda x, y: getattr(gnp, name)(x)) if name in ("floor", "ceil", "trunc", "rint") else getattr(gnp, name)
    got = gradc.jit(f, backend=backend)(a, b)
    with np.errstate(all="ignore"):
        want = f(a, b)          # outside a trace: numpy's own functions
    for g, w in zip(*((got, want) if name == "divmod" else ((got,), (want,)))):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)
        assert np.array_equal(np.signbit(g[~np.isnan(w)]), np.signbit(w[~np.isnan(w)]))


def test_rounding_and_remainder_derivatives():
    """floor, rint, round and floor_divide have derivative 0; fmod and remainder 1 in a
    and -trunc(a/b), -floor(a/b) in b, also where the remainder is an exact zero (a % b
    of whole numbers, whose derivative in a is 1 from both sides)."""
    a = np.array([7.3, -7.3, 6.0, -6.0, 2.2, 0.0, 9.0])
    b = np.array([2.0, 2.0, 3.0, 3.0, -0.7, 1.5, -3.0])
    w = np.arange(1.0, 8.0)
    for f, da, db in ((gnp.fmod, np.ones_like(a), -np.trunc(a / b)),
                      (lambda x, y: x % y, np.ones_like(a), -np.floor(a / b)),
                      (lambda x, y: x // y + gnp.floor(x) + gnp.rint(y) + gnp.round(x, 1), 0 * a, 0 * b)):
        ga, gb = gradc.grad(lambda x, y: gnp.sum(f(x, y) * w), argnums=(0, 1))(a, b)
        np.testing.assert_array_equal(ga, w * da)
        np.testing.assert_array_equal(gb, w * db)


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
def test_integer_division_and_remainder_are_numpys(backend):
    # ids % n, k // 2 and fmod of integer arrays were refused ("convert to float first"):
    # exact integer results now, with numpy's signs, dtypes and 0 for a zero divisor
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.integers(-50, 50, 300), [0, 7, -7, 7, -7, 2**40 + 3, -(2**40) - 5, 9, 0]])
    b = np.concatenate([rng.integers(-9, 10, 300), [3, 3, 3, -3, -3, 7, 7, 0, 0]])
    with np.errstate(divide="ignore"):
        for f in (lambda a, b: a % b, lambda a, b: a // b, lambda a, b: np.fmod(a, b) if isinstance(a, np.ndarray)
                  else gnp.fmod(a, b), lambda a, b: a % 7, lambda a, b: 100 // b,
                  lambda a, b: a.astype(np.int32) % b.astype(np.int32), lambda a, b: (a > 0) // (b > 0),
                  # a Python int stays weak: divmod of int8 is int8 (was int64)
                  lambda a, b: (np.divmod if isinstance(a, np.ndarray) else gnp.divmod)(a.astype(np.int8), -7)):
            got, want = gradc.jit(f, backend=backend)(a, b), f(a, b)
            for g, w in zip(*((got, want) if isinstance(want, tuple) else ((got,), (want,)))):
                assert g.dtype == w.dtype
                np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int8, np.uint64, np.uint32, np.uint8])
def test_integer_division_is_exact_over_the_whole_range(dtype, backend):
    """//, % and fmod of integers anywhere in their range (hashes modulo a table size,
    beyond 2**53 where a float64 quotient is inexact), the most negative integer by -1
    (wraps, as numpy's) and zero divisors (0), against numpy, on 10,000 elements (the
    loops vectorize and split over threads)."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(5)
    a = rng.integers(info.min, info.max, 10_000, dtype=dtype, endpoint=True)
    b = rng.integers(info.min, info.max, 10_000, dtype=dtype, endpoint=True)
    b[::5] = rng.integers(max(int(info.min), -7), 8, b[::5].size).astype(dtype)    # small divisors and zeros
    a[:4], a[4:8] = info.min, info.max
    b[:8] = np.array([-1, 0, 1, 3, -1, 0, 2, 3] if info.min < 0 else [0, 1, 2, 3] * 2).astype(dtype)
    f = gradc.jit(lambda x, y: (x // y, x % y, gnp.fmod(x, y)), backend=backend)
    with np.errstate(all="ignore"):
        want = (a // b, a % b, np.fmod(a, b))
    for got in (f(a, b), f(a, b)):          # traced, then the C call path
        for g, w in zip(got, want):
            assert g.dtype == w.dtype
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8, np.uint64])
@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
def test_integer_sign_and_abs_keep_the_dtype(dtype, backend):
    """numpy's sign and abs of integers are integers of the same type (abs of the most
    negative value wraps), over the whole range, on 10,000 elements."""
    info = np.iinfo(dtype)
    a = np.random.default_rng(6).integers(info.min, info.max, 10_000, dtype=dtype, endpoint=True)
    a[:3] = [info.min, 0, info.max]
    f = gradc.jit(lambda x: (gnp.sign(x), gnp.abs(x), gnp.sign(x) * x), backend=backend)
    with np.errstate(all="ignore"):
        want = (np.sign(a), np.abs(a), np.sign(a) * a)
    for got in (f(a), f(a)):
        for g, w in zip(got, want):
            assert g.dtype == w.dtype
            np.testing.assert_array_equal(g, w)
    with pytest.raises(TypeError, match="sign"):
        gradc.jit(gnp.sign)(np.array([True, False]))


def _x86_float_to_int(x, dtype):
    """numpy's float-to-integer cast on x86-64 (its contiguous loops), spelled without
    casting an out-of-range value: truncation through int32 (int64 for 8-byte types),
    out of range or NaN -> the minimum, uint32/uint64 from 2**31/2**63 up as x - 2**31
    (2**63) with the top bit set, then wrapped to ``dtype``."""
    dt, x = np.dtype(dtype), x.astype(np.float64)
    bits = 64 if dt.itemsize == 8 else 32
    ity = np.int64 if bits == 64 else np.int32

    def trunc(v):
        ok = (v >= -2.0 ** (bits - 1)) & (v < 2.0 ** (bits - 1))
        return np.where(ok, np.trunc(np.where(ok, v, 0.0)).astype(ity), np.iinfo(ity).min).astype(ity)
    if dt.kind == "u" and dt.itemsize >= 4:
        big = x >= 2.0 ** (bits - 1)
        k = trunc(np.where(big, x - 2.0 ** (bits - 1), x))
        k = np.where(big, k ^ np.iinfo(ity).min, k).astype(ity)
    else:
        k = trunc(x)
    return k.astype(dt)


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
@pytest.mark.parametrize("src", [np.float64, np.float32])
def test_float_to_int_out_of_range(src, backend):
    """x.astype(int type) of values out of the type's range, NaN and infinities: numpy
    (on x86-64, which gives the range's minimum, INT_MIN, as the hardware does) on every
    backend, never C's or LLVM's undefined conversion (LLVM gave -128 for int8 where
    numpy gives 0, 2**31 for uint32 where numpy gives 0).  10,007 elements: the loops
    vectorize and split over threads."""
    special = np.array([0.0, -0.0, 1.5, -1.5, 2.5, -2.5, 1e20, -1e20, np.nan, np.inf, -np.inf, 2.0**31, -2.0**31,
                        2.0**31 - 0.5, -2.0**31 - 1, 2.0**32, 2.0**63, -2.0**63, 2.0**64, 300.0, -300.0, 255.5,
                        -1.0, 65535.9, 1.8e19, 3e9, -3e9, 5e9, 4294967295.0, 127.9, -128.9, 32768.0])
    x = np.concatenate([np.resize(special, 5000), np.random.default_rng(4).normal(0, 1e10, 5007)]).astype(src)
    types = (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)
    f = gradc.jit(lambda x: tuple(x.astype(t) for t in types), backend=backend)
    in_range = np.abs(x) < 100
    for got in (f(x), f(x)):
        for g, t in zip(got, types):
            assert g.dtype == t
            np.testing.assert_array_equal(g, _x86_float_to_int(x, t), err_msg=np.dtype(t).name)
            np.testing.assert_array_equal(g[in_range], x[in_range].astype(t))      # numpy's own, where defined


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
def test_float16_inside_a_model_is_refused_or_widened(backend):
    """A float16 value inside a model: astype(float16) and dtype=float16 were float16 on
    the evaluator and crashed native code generation (KeyError: 2); now a clear error
    on every backend.  A float16 constant is widened to float32, as a float16 argument."""
    x = np.random.default_rng(0).normal(size=(7, 33, 47))
    for f in (lambda x: x.astype(np.float16) * 2, lambda x: gnp.sum(x, axis=1, dtype=np.float16)):
        with pytest.raises(gradc.UnsupportedError, match="float16 result is not supported.*float32"):
            gradc.jit(f, backend=backend)(x)
    h = np.linspace(-3, 3, 47).astype(np.float16)
    got = gradc.jit(lambda x: x.astype(np.float32) * h, backend=backend)(x)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, x.astype(np.float32) * h.astype(np.float32))
    got = gradc.jit(lambda x: gnp.full_like(x, 2.5, dtype=np.float16), backend=backend)(x)
    assert got.dtype == np.float32 and np.all(got == 2.5)


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
def test_sum_dtype_small_integer_wraps_as_numpy(backend):
    """sum(k, dtype=int8) is int8, wrapped as numpy's int8 accumulator (gradc gave the
    int64 sum); also uint8, int16 and from bools, over axes and all, at rank 3; mean(k,
    dtype=int32) is int32, truncated (was float64), and int8's sum wraps first, as numpy's."""
    k = np.random.default_rng(1).integers(-100, 100, (7, 33, 47)).astype(np.int32)
    fs = (lambda m, k: m.sum(k, dtype=np.int8), lambda m, k: m.sum(k, axis=1, dtype=np.uint8),
          lambda m, k: m.sum(k, axis=(0, 2), dtype=np.int16), lambda m, k: m.sum(k > 0, axis=0, dtype=np.int8),
          lambda m, k: m.sum(k, axis=2, dtype=np.int8, initial=5), lambda m, k: m.mean(k, axis=1, dtype=np.int32),
          lambda m, k: m.mean(k * 7, axis=(0, 2), dtype=np.int16), lambda m, k: m.mean(k, axis=1, dtype=np.int8))
    for f in fs:
        got, want = gradc.jit(lambda k: f(gnp, k), backend=backend)(k), f(np, k)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
def test_integer_and_bool_reductions_keep_numpys_dtype(backend):
    """nansum/nanmax/nanmin of integers stay integers (they were float64: the nan mask's
    0.0 promoted them), polyval of integers with integer coefficients is an integer (was
    float64; a list of coefficients is an int64 array, as numpy's), and min/max of a bool
    array over some axes compiles on llvm (it crashed storing an i1 to the bool buffer)."""
    rng = np.random.default_rng(2)
    k = rng.integers(-20, 20, (7, 33, 47)).astype(np.int32)
    fs = (lambda m, a: m.nansum(a, axis=1), lambda m, a: m.nanmax(a, axis=(0, 2)), lambda m, a: m.nanmin(a),
          lambda m, a: m.polyval([1, -2, 3], a), lambda m, a: m.polyval(np.array([2, 1], np.int32), a),
          lambda m, a: m.min(a > 0, axis=(0, 2)), lambda m, a: m.max(a > 3, axis=1), lambda m, a: m.nanmin(a > 0, axis=0))
    for a in (k, k.astype(np.uint8), k.astype(np.float32)):
        for f in fs:
            got, want = gradc.jit(lambda a: f(gnp, a), backend=backend)(a), f(np, a)
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)


def test_bitwise_is_refused_clearly():
    with pytest.raises(gradc.UnsupportedError, match="float16"):
        gradc.jit(lambda k: gnp.rint(k))(np.array([True]))


# closed-form derivatives: the adjoint of a composition is as accurate as its value
# (no cancellation in it), checked at 2000 points against the formula evaluated by numpy
DERIVATIVES = [
    ("sinh", np.cosh, lambda g: 3 * g.standard_normal(2000)),
    ("cosh", np.sinh, lambda g: np.concatenate([3 * g.standard_normal(1000), 1e-9 * g.standard_normal(1000)])),
    ("arcsinh", lambda x: 1 / np.sqrt(1 + x * x), lambda g: 10 * g.standard_normal(2000)),
    ("arctanh", lambda x: 1 / ((1 - x) * (1 + x)), lambda g: g.uniform(-0.999, 0.999, 2000)),
    ("arctan", lambda x: 1 / (1 + x * x), lambda g: 10 * g.standard_normal(2000)),
    ("arcsin", lambda x: 1 / np.sqrt((1 - x) * (1 + x)), lambda g: g.uniform(-0.999, 0.999, 2000)),
    ("arccos", lambda x: -1 / np.sqrt((1 - x) * (1 + x)), lambda g: g.uniform(-0.999, 0.999, 2000)),
    ("tan", lambda x: 1 / np.cos(x) ** 2, lambda g: g.uniform(-1.5, 1.5, 2000)),
    ("cbrt", lambda x: 1 / (3 * np.cbrt(x) ** 2), lambda g: g.standard_normal(2000) * 10.0 ** g.integers(-5, 5, 2000)),
    ("log10", lambda x: 1 / (x * np.log(10)), lambda g: g.uniform(0.01, 100, 2000)),
    ("exp2", lambda x: np.exp2(x) * np.log(2), lambda g: 5 * g.standard_normal(2000)),
]


@pytest.mark.parametrize("name,deriv,make", DERIVATIVES, ids=[d[0] for d in DERIVATIVES])
def test_composed_math_derivatives(name, deriv, make):
    v = make(np.random.default_rng(7))
    g = gradc.grad(lambda x: gnp.sum(getattr(gnp, name)(x)))(v)
    # 1e-13 relative: ~500 ulp, far above rounding (a few ulp per step of the adjoint
    # chain) and far below any formula error
    np.testing.assert_allclose(g, deriv(v), rtol=1e-13, atol=0)


def test_logaddexp_gradient_at_ties_and_extremes():
    a = np.array([1.0, -3.0, 800.0, -800.0, 0.0, 5.0])
    b = np.array([1.0, -3.0, 800.0, 0.0, 800.0, -np.inf])
    ga, gb = gradc.grad(lambda a, b: gnp.sum(gnp.logaddexp(a, b)), argnums=(0, 1))(a, b)
    sa = 1 / (1 + np.exp(np.clip(b - a, -700, 700)))        # exp(a) / (exp(a) + exp(b))
    np.testing.assert_allclose(ga, sa, rtol=1e-15, atol=1e-300)   # exp(-800) underflows in gradc
    np.testing.assert_allclose(gb, 1 - sa, rtol=1e-15, atol=1e-300)
    assert ga[0] == gb[0] == 0.5
    with np.errstate(all="ignore"):
        inf = np.array([np.inf, -np.inf, np.inf])
        np.testing.assert_array_equal(gradc.jit(gnp.logaddexp)(inf, inf), np.logaddexp(inf, inf))


def test_sinh_cosh_overflow_where_numpy_does():
    v = np.array([709.0, 709.9, 710.4, 710.6, -710.4, -710.6])
    with np.errstate(over="ignore"):
        for name in ("sinh", "cosh"):
            np.testing.assert_allclose(gradc.jit(getattr(gnp, name))(v), getattr(np, name)(v), rtol=1e-14)
            v32 = np.array([88.0, 89.0, 89.4, 89.5, -89.5], np.float32)
            np.testing.assert_allclose(gradc.jit(getattr(gnp, name))(v32), getattr(np, name)(v32), rtol=1e-6)


def test_prod_gradient_with_zeros_is_the_product_of_the_others():
    X = np.array([[0.0, 2.0, 3.0, -1.5], [0.0, 0.0, 4.0, 2.0], [1.5, 2.0, -0.5, 3.0]])
    g = gradc.grad(lambda X: gnp.sum(gnp.prod(X, axis=1)))(X)
    others = np.array([[np.prod(np.delete(row, j)) for j in range(4)] for row in X])
    np.testing.assert_array_equal(g, others)
    assert (g[0] == [-9.0, 0, 0, 0]).all() and (g[1] == 0).all()
    gc = gradc.grad(lambda x: gnp.sum(gnp.cumprod(x)))(X[0])
    want = [sum(np.prod(np.delete(X[0][:k + 1], j)) for k in range(j, 4)) for j in range(4)]
    np.testing.assert_allclose(gc, want, rtol=1e-15)


def test_large_scans_and_reductions_against_numpy():
    """Above the size where nests split over threads and vectorize."""
    g = np.random.default_rng(8)
    v = g.standard_normal(300_001)
    got = gradc.jit(lambda v: (gnp.cumsum(v), gnp.var(v), gnp.prod(1 + v * 1e-4), gnp.argmax(v),
                               gnp.linalg.norm(v, 1)))(v)
    want = (np.cumsum(v), np.var(v), np.prod(1 + v * 1e-4), np.argmax(v), np.linalg.norm(v, 1))
    # the scan adds in a different order from numpy's sequential cumsum: both are within
    # n * eps * max |partial sum| of the exact sums (300001 * 2.2e-16 * ~600 ~ 4e-8)
    np.testing.assert_allclose(got[0], want[0], rtol=0, atol=1e-7)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-10)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-10)
    assert got[3] == want[3]
    np.testing.assert_allclose(got[4], want[4], rtol=1e-10)
    gv = gradc.grad(lambda v: gnp.sum(gnp.cumsum(v) * v))(v[:200_000])
    w = v[:200_000]
    np.testing.assert_allclose(gv, np.cumsum(w) + np.cumsum(w[::-1])[::-1], rtol=0, atol=1e-7)


def test_sort_with_ties_and_nan():
    v = np.array([2.0, np.nan, -1.0, 2.0, 0.0, -1.0, np.nan, 2.0, 5.0])
    np.testing.assert_array_equal(gradc.jit(gnp.sort)(v), np.sort(v))
    np.testing.assert_array_equal(gradc.jit(gnp.argsort)(v), np.argsort(v, kind="stable"))
    np.testing.assert_array_equal(gradc.jit(gnp.argmax)(v), np.argmax(v))
    np.testing.assert_array_equal(gradc.jit(gnp.argmin)(v), np.argmin(v))
    # the gradient of sum(w * sort(x)) sends w[k] to the element sorted into place k
    t = np.array([2.0, -1.0, 2.0, 0.0, -1.0, 2.0, 5.0])
    w = np.arange(1.0, 8.0)
    grad = gradc.grad(lambda t: gnp.sum(gnp.sort(t) * w))(t)
    want = np.empty_like(w)
    want[np.argsort(t, kind="stable")] = w
    np.testing.assert_array_equal(grad, want)


def test_sort_large_matrix_rows():
    g = np.random.default_rng(9)
    X = np.round(g.standard_normal((20, 300)), 1)          # many ties
    np.testing.assert_array_equal(gradc.jit(lambda X: gnp.sort(X, axis=1))(X), np.sort(X, axis=1))
    np.testing.assert_array_equal(gradc.jit(lambda X: gnp.argsort(X, axis=0))(X), np.argsort(X, axis=0, kind="stable"))


def test_new_functions_fall_back_to_numpy_outside_a_trace():
    for name in ("var", "std", "prod", "cumsum", "cumprod", "diff", "argmax", "sort", "argsort", "trace",
                 "triu", "sinh", "arctan", "isnan", "any"):
        np.testing.assert_array_equal(getattr(gnp, name)(A), getattr(np, name)(A), err_msg=name)
    np.testing.assert_array_equal(gnp.linalg.norm(A, 1), np.linalg.norm(A, 1))
    np.testing.assert_array_equal(gnp.pad(A, 1, mode="edge"), np.pad(A, 1, mode="edge"))
    np.testing.assert_array_equal(gnp.logaddexp(x, z), np.logaddexp(x, z))


# ----------------------------------------------------------------------------- errors that teach
def test_missing_name_is_an_attribute_error_with_suggestions():
    assert not hasattr(gnp, "stdd") and hasattr(gnp, "std")
    assert getattr(gnp, "fft_thing", None) is None
    with pytest.raises(gradc.UnsupportedNameError) as e:
        gnp.argsrot
    assert isinstance(e.value, AttributeError) and isinstance(e.value, gradc.GradcError)
    msg = str(e.value)
    assert "gradc.numpy.argsrot is not supported" in msg and "argsort" in msg and "docs/numpy.md" in msg
    with pytest.raises(AttributeError, match="linalg.norm"):
        gnp.linalg.nrom


@pytest.mark.parametrize("call,name", [
    (lambda v: np.linalg.eig(v), "numpy.linalg.eig"),
    (lambda v: np.fft.fft(v), "numpy.fft.fft"),
    (lambda v: np.trim_zeros(v), "numpy.trim_zeros"),
    (lambda v: np.histogram2d(v, v), "numpy.histogram2d"),
], ids=["linalg.eig", "fft.fft", "trim_zeros", "histogram2d"])
def test_dispatch_to_a_missing_function_names_it_and_the_line(call, name):
    with pytest.raises(gradc.UnsupportedNameError) as e:
        gradc.jit(call)(A)
    msg = str(e.value)
    assert f"{name} is not supported" in msg
    assert f"test_numpy_api.py:{call.__code__.co_firstlineno}" in msg
    assert "docs/numpy.md" in msg


@pytest.mark.parametrize("conv", [np.asarray, float, np.array], ids=["asarray", "float", "array"])
def test_conversion_of_a_traced_value_explains_tracing(conv):
    f = (lambda v: conv(v)) if conv is not float else (lambda v: float(v[0]))
    with pytest.raises(gradc.TracerBoolError) as e:
        gradc.jit(f)(x)
    msg = str(e.value)
    assert "placeholders" in msg and "gradc.numpy" in msg
    assert f"test_numpy_api.py:{f.__code__.co_firstlineno}" in msg


def test_unsupported_variants_are_clear_errors():
    with pytest.raises(gradc.UnsupportedError, match=r"matrix ord=3 is not a matrix norm; supported: .*'nuc'"):
        gradc.jit(lambda a: np.linalg.norm(a, 3))(A)
    with pytest.raises(gradc.UnsupportedError, match="np.sort|numpy.sort"):
        gradc.jit(lambda a: a.sort())(A)
    with pytest.raises(gradc.UnsupportedError, match="1.0 / x"):
        gradc.jit(lambda k: gnp.reciprocal(k))(np.array([1, 2]))
    with pytest.raises(gradc.UnsupportedError, match=r"bitwise_and \(the & operator\) of float64 and a Python int"):
        gradc.jit(lambda a: a & 3)(A)                                             # numpy: TypeError
    with pytest.raises(gradc.UnsupportedError, match=r"invert \(the ~ operator\) of float64"):
        gradc.jit(lambda a: ~a)(A)
    with pytest.raises(gradc.UnsupportedError, match="mode 'empty'"):
        gradc.jit(lambda a: gnp.pad(a, 1, mode="empty"))(A)


# ----------------------------------------------------------------------------- docs/numpy.md
def test_docs_numpy_is_current_and_complete():
    from gradc import docs_numpy
    text = docs_numpy.render()
    assert open(docs_numpy.PATH).read() == text, "docs/numpy.md is stale: run python -m gradc.docs_numpy"
    for name in gnp.supported_names():
        assert f"`{name}`" in text, name
    for name in set(gnp.UFUNCS) | set(gnp.FUNCTIONS):
        assert f"`{name}`" in text or f"`np.{name}`" in text, name
    for name in ("var", "std", "average", "prod", "cumsum", "cumprod", "diff", "diag", "diagonal", "trace",
                 "triu", "tril", "eye", "identity", "zeros", "ones", "full", "zeros_like", "ones_like",
                 "full_like", "hstack", "vstack", "dstack", "column_stack", "concatenate", "tile", "repeat",
                 "pad", "logaddexp", "logaddexp2", "arctan", "arctan2", "arcsin", "arccos", "arcsinh",
                 "arctanh", "sinh", "cosh", "tan", "log2", "log10", "exp2", "cbrt", "reciprocal", "sign",
                 "heaviside", "sort", "argsort", "argmax", "argmin", "clip", "nan_to_num", "isfinite",
                 "isnan", "any", "all", "linalg.norm"):
        assert name in gnp.supported_names(), name     # the list, all provided


def test_reductions_scans_and_math_at_rank_3():
    g = np.random.default_rng(10)
    T = g.standard_normal((3, 4, 5))
    fns = [lambda t: np.var(t, axis=(0, 2), ddof=1), lambda t: np.prod(t, axis=1),
           lambda t: np.cumsum(t, axis=2), lambda t: np.cumprod(t, axis=0), lambda t: np.diff(t, axis=1),
           lambda t: np.logaddexp(t, t[:, :1]), lambda t: np.arctan2(t, 1.5), lambda t: np.sinh(t),
           lambda t: np.linalg.norm(t, axis=1), lambda t: np.tile(t, (1, 2, 1)), lambda t: np.repeat(t, 2, axis=2)]
    for f in fns:
        np.testing.assert_allclose(gradc.jit(f)(T), f(T), rtol=1e-12, atol=1e-12)
        got = gradc.grad(lambda t: gnp.sum(f(t) ** 2))(T)
        assert_fd_close(got, fd_grad(lambda t: np.sum(f(t) ** 2), [T], 0))
    np.testing.assert_array_equal(gradc.jit(lambda t: np.argmax(t, axis=1))(T), np.argmax(T, axis=1))
    np.testing.assert_array_equal(gradc.jit(gnp.sort)(T), np.sort(T))    # any rank (tests/test_arrays.py)


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
@pytest.mark.parametrize("dtype,offset", [(np.float64, 1e6), (np.float32, 1e4), (np.float32, 0.0)])
def test_log_softmax_and_softmax_are_stable(dtype, offset, backend):
    """Large logits against their spread, and a row filled with -1e9 (a masked row):
    against numpy's max-shifted formula in float64 of the same (rounded) logits.
    x - logsumexp(x) lost 3 digits at float32 logits near 1e4 and gave a masked row 0
    (its softmax 1 per entry on the numpy backend).  Tolerance: a few ulp of the
    shifted logits (|x - max| <= 8 here)."""
    x = (np.random.default_rng(3).standard_normal((64, 33)) + offset).astype(dtype)
    x[5] = -1e9
    x64 = x.astype(np.float64)
    s = x64 - x64.max(axis=-1, keepdims=True)
    want = s - np.log(np.sum(np.exp(s), axis=-1, keepdims=True))
    eps = np.finfo(dtype).eps
    got = gradc.jit(lambda v: gnp.log_softmax(v, axis=-1), backend=backend)(x)
    np.testing.assert_allclose(got, want, rtol=0, atol=32 * eps)
    np.testing.assert_allclose(got[5], -np.log(33), rtol=4 * eps)
    p = gradc.jit(lambda v: gnp.softmax(v, axis=-1), backend=backend)(x)
    np.testing.assert_allclose(p, np.exp(want), rtol=64 * eps, atol=0)
    w = np.random.default_rng(4).standard_normal(x.shape)
    g = gradc.grad(lambda v: gnp.sum(gnp.log_softmax(v, axis=-1) * w), backend=backend)(x)
    np.testing.assert_allclose(g, w - np.exp(want) * w.sum(axis=-1, keepdims=True), rtol=0, atol=64 * eps * 8)


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
def test_power_gradient_in_the_exponent_at_a_zero_base(backend):
    """d/dp x**p = x**p log x, whose limit at x = 0 (p > 0) is 0: a zero in the base (a
    relu's output raised to a learnable power, GeM pooling) must not make it nan."""
    x, p = np.array([0.0, 0.5, 2.0, 0.0]), 1.5
    gx, gp = gradc.grad(lambda x, p: gnp.sum(gnp.maximum(x, 0.0) ** p), argnums=(0, 1), backend=backend)(x, p)
    nz = x > 0
    assert gp == pytest.approx(np.sum(x[nz] ** p * np.log(x[nz])), rel=1e-14)
    np.testing.assert_allclose(gx, p * x ** (p - 1), rtol=1e-14)


@pytest.mark.parametrize("f,x,want", [
    (lambda v: gnp.arcsin(v), 0.0, 1.0), (lambda v: gnp.arccos(v), 0.0, -1.0),
    (lambda v: gnp.arctan2(v, 1.0), 0.0, 1.0), (lambda v: gnp.arctan2(v, -2.0), 0.0, -0.5),
    (lambda v: gnp.arctan2(3.0, v), 0.0, -1 / 3), (lambda v: gnp.arctan2(v, 2.0), -0.0, 0.5),
], ids=["arcsin", "arccos", "arctan2_y", "arctan2_y_left", "arctan2_x", "arctan2_minus_zero"])
def test_inverse_trig_derivatives_at_zero_arguments(f, x, want):
    """Their magnitudes are taken by select, not abs (whose slope at 0 is 0): at an
    argument of exactly 0 the derivative is the function's, 1 / (1 + (y/x)^2) / x etc."""
    g = gradc.grad(lambda v: gnp.sum(f(v)))(np.full(2, x))
    np.testing.assert_allclose(g, want, rtol=1e-15)


def test_ndarray_isinstance_holds_for_traced_values():
    """isinstance(x, gradc.numpy.ndarray) (and .Array) as JAX model code checks it: true
    for a traced value inside grad and jit and for a numpy array, false for a number;
    calling the type still makes a numpy array."""
    seen = []

    def f(x, s):
        seen.append((isinstance(x, gnp.ndarray), isinstance(x, gnp.Array), isinstance(s, gnp.ndarray)))
        return gnp.sum(x * x) if isinstance(x, gnp.ndarray) else 0.0
    x = np.arange(3.0)
    np.testing.assert_allclose(gradc.grad(f)(x, np.float32(2)), 2 * x)
    assert seen[-1] == (True, True, True)          # a numpy scalar argument is traced too
    assert isinstance(x, gnp.ndarray) and not isinstance(2.0, gnp.ndarray)
    assert issubclass(np.ndarray, gnp.ndarray) and not issubclass(float, gnp.ndarray)
    assert type(gnp.ndarray((2, 3))) is np.ndarray
