"""numpy's ufunc methods (gradc/ops/ufuncs.py): reduce, accumulate and outer, spelled as
gradc.numpy's (``np.add.reduce``) and as numpy's own on traced values
(``numpy.add.reduce(x)``, through ``__array_ufunc__``).  Each table line against numpy
(values, dtypes, shapes) and central finite differences of numpy's function (gradients),
on every backend, float64 and float32, rank 3, with axes long enough (33, 67) that the
loops vectorize and the scans run several levels.  Points are drawn without ties; the
tie rule of the running extremes is checked against its closed form."""
from __future__ import annotations

import numpy as onp
import pytest

import gradc
import gradc.numpy as np

from gradc_helpers import FD_ATOL, FD_RTOL, fd_grad

R3 = (3, 33, 4)          # rank 3; the middle axis long enough for 6 scan levels
V = (67,)

# (id, gradc function, numpy function, shapes, differentiable?)
TABLE = [
    ("add_reduce", lambda x: np.add.reduce(x), lambda x: onp.add.reduce(x), [R3], True),
    ("add_reduce_axis_keepdims", lambda x: np.add.reduce(x, axis=1, keepdims=True),
     lambda x: onp.add.reduce(x, axis=1, keepdims=True), [R3], True),
    ("add_reduce_none_dtype", lambda x: np.add.reduce(x, axis=None, dtype=onp.float32),
     lambda x: onp.add.reduce(x, axis=None, dtype=onp.float32), [R3], False),
    ("add_reduce_initial_where", lambda x: np.add.reduce(x, axis=2, initial=1.5, where=x[0, 0] > 0),
     lambda x: onp.add.reduce(x, axis=2, initial=1.5, where=x[0, 0] > 0), [R3], True),
    ("multiply_reduce", lambda x: np.multiply.reduce(x, axis=(0, 2)),
     lambda x: onp.multiply.reduce(x, axis=(0, 2)), [R3], True),
    ("maximum_reduce", lambda x: np.maximum.reduce(x, axis=1), lambda x: onp.maximum.reduce(x, axis=1), [R3], True),
    ("minimum_reduce_keepdims", lambda x: np.minimum.reduce(x, axis=-1, keepdims=True),
     lambda x: onp.minimum.reduce(x, axis=-1, keepdims=True), [R3], True),
    ("logical_and_reduce", lambda x: np.logical_and.reduce(x > -0.9, axis=1),
     lambda x: onp.logical_and.reduce(x > -0.9, axis=1), [R3], False),
    ("logical_or_reduce", lambda x: np.logical_or.reduce(x > 0.9), lambda x: onp.logical_or.reduce(x > 0.9),
     [R3], False),
    ("numpy_add_reduce", lambda x: onp.add.reduce(x, axis=2), lambda x: onp.add.reduce(x, axis=2), [R3], True),
    ("numpy_maximum_reduce", lambda x: onp.maximum.reduce(x, axis=None),
     lambda x: onp.maximum.reduce(x, axis=None), [R3], True),
    ("add_accumulate", lambda x: np.add.accumulate(x, axis=1), lambda x: onp.add.accumulate(x, axis=1), [R3], True),
    ("multiply_accumulate", lambda x: np.multiply.accumulate(1 + x / 4),
     lambda x: onp.multiply.accumulate(1 + x / 4), [R3], True),
    ("maximum_accumulate", lambda x: np.maximum.accumulate(x, axis=1),
     lambda x: onp.maximum.accumulate(x, axis=1), [R3], True),
    ("maximum_accumulate_vec", np.maximum.accumulate, onp.maximum.accumulate, [V], True),
    ("minimum_accumulate", lambda x: np.minimum.accumulate(x, axis=2),
     lambda x: onp.minimum.accumulate(x, axis=2), [R3], True),
    ("minimum_accumulate_axis0", lambda x: np.minimum.accumulate(x), lambda x: onp.minimum.accumulate(x), [R3], True),
    ("numpy_maximum_accumulate", lambda x: onp.maximum.accumulate(x, axis=-1),
     lambda x: onp.maximum.accumulate(x, axis=-1), [(5, 67)], True),
    ("numpy_add_accumulate", lambda x: onp.add.accumulate(x, axis=1), lambda x: onp.add.accumulate(x, axis=1),
     [R3], True),
    ("logaddexp_reduce", lambda x: np.logaddexp.reduce(4 * x, axis=1, keepdims=True),
     lambda x: onp.logaddexp.reduce(4 * x, axis=1, keepdims=True), [R3], True),
    ("logaddexp2_reduce_numpy", lambda x: onp.logaddexp2.reduce(4 * x, axis=None),
     lambda x: onp.logaddexp2.reduce(4 * x, axis=None), [R3], True),
    ("logaddexp_accumulate", lambda x: np.logaddexp.accumulate(4 * x, axis=1),
     lambda x: onp.logaddexp.accumulate(4 * x, axis=1), [R3], True),
    ("logaddexp2_accumulate_numpy", lambda x: onp.logaddexp2.accumulate(4 * x, axis=-1),
     lambda x: onp.logaddexp2.accumulate(4 * x, axis=-1), [(5, 67)], True),
    ("maximum_accumulate_dtype", lambda x: np.maximum.accumulate(x, axis=1, dtype=onp.float32),
     lambda x: onp.maximum.accumulate(x, axis=1, dtype=onp.float32), [R3], False),
    ("maximum_accumulate_int", lambda x: np.maximum.accumulate(np.floor(x * 9).astype(onp.int64), axis=1),
     lambda x: onp.maximum.accumulate(onp.floor(x * 9).astype(onp.int64), axis=1), [R3], False),
    ("minimum_accumulate_bool", lambda x: np.minimum.accumulate(x > -0.8, axis=1),
     lambda x: onp.minimum.accumulate(x > -0.8, axis=1), [R3], False),
]
for _u in ("add", "subtract", "multiply", "divide", "maximum", "minimum", "power", "arctan2", "logaddexp",
           "hypot", "greater", "less_equal", "equal"):
    _pos = _u in ("power",)
    TABLE.append((f"{_u}_outer", (lambda u, p: lambda a, b: getattr(np, u).outer(a + 2 * p, b))(_u, _pos),
                  (lambda u, p: lambda a, b: getattr(onp, u).outer(a + 2 * p, b))(_u, _pos),
                  [(3, 5), (7,)], _u not in ("greater", "less_equal", "equal")))
TABLE += [
    ("numpy_multiply_outer", lambda a, b: onp.multiply.outer(a, b), lambda a, b: onp.multiply.outer(a, b),
     [(4,), (2, 33)], True),
    ("numpy_subtract_outer_const", lambda a: onp.subtract.outer(onp.arange(3.0), a),
     lambda a: onp.subtract.outer(onp.arange(3.0), a), [(2, 5)], True),
    ("outer_const_left", lambda b: np.minimum.outer(onp.linspace(-1, 1, 4), b),
     lambda b: onp.minimum.outer(onp.linspace(-1, 1, 4), b), [(3, 33)], True),
]


def _args(shapes, seed, dtype):
    rng = onp.random.default_rng(seed)
    return [rng.uniform(-1, 1, s).astype(dtype) for s in shapes]


@pytest.mark.parametrize("dtype", [onp.float64, onp.float32])
@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
@pytest.mark.parametrize("name,f,ref,shapes,diff", TABLE, ids=[t[0] for t in TABLE])
def test_against_numpy_and_finite_differences(name, f, ref, shapes, diff, backend, dtype):
    xs = _args(shapes, len(name), dtype)
    got = gradc.jit(f, backend=backend)(*xs)
    want = ref(*xs)
    tol = 2e-6 if onp.asarray(want).dtype == onp.float32 else 1e-12
    assert onp.asarray(got).dtype == onp.asarray(want).dtype, (got.dtype, want.dtype)
    assert onp.shape(got) == onp.shape(want)
    onp.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    onp.testing.assert_allclose(f(*xs), want, rtol=tol, atol=tol)       # outside a trace: numpy
    if not diff or dtype == onp.float32:
        return
    w = onp.random.default_rng(1).standard_normal(onp.shape(want))
    grads = gradc.grad(lambda *a: np.sum(f(*a) * w), argnums=tuple(range(len(xs))), backend=backend)(*xs)
    for i, g in enumerate(grads):
        onp.testing.assert_allclose(g, fd_grad(lambda *a: onp.sum(ref(*a) * w), xs, i), rtol=FD_RTOL, atol=FD_ATOL)


def _running_extreme_grad(x, w, better):
    """The tie rule's closed form, by definition: y[i]'s cotangent w[i] is shared equally
    by the elements x[j], j <= i, equal to y[i] (O(n^2), independent of gradc's scan)."""
    y = (onp.maximum if better == "max" else onp.minimum).accumulate(x)
    g = onp.zeros_like(x)
    for i in range(len(x)):
        holders = [j for j in range(i + 1) if x[j] == y[i]]
        for j in holders:
            g[j] += w[i] / len(holders)
    return g


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
@pytest.mark.parametrize("kind", ["max", "min"])
def test_running_extreme_ties_share_equally(kind, backend):
    rng = onp.random.default_rng(3)
    x = rng.integers(-3, 4, (4, 70)).astype(onp.float64)     # many ties, runs of every length
    w = rng.standard_normal(x.shape)
    u = np.maximum if kind == "max" else np.minimum
    g = gradc.grad(lambda x: np.sum(u.accumulate(x, axis=1) * w), backend=backend)(x)
    for r in range(x.shape[0]):
        onp.testing.assert_allclose(g[r], _running_extreme_grad(x[r], w[r], kind), rtol=1e-12, atol=1e-12)
    # the last running maximum is the maximum: the same gradient as gradc's max reduction
    last = gradc.grad(lambda x: np.sum(u.accumulate(x, axis=1)[:, -1] * w[:, 0]), backend=backend)(x)
    red = gradc.grad(lambda x: np.sum(u.reduce(x, axis=1) * w[:, 0]), backend=backend)(x)
    onp.testing.assert_allclose(last, red, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
def test_running_maximum_with_nan_and_inf_as_numpy(backend):
    x = onp.array([[0.5, -onp.inf, 2.0, onp.nan, 3.0, 1.0], [-onp.inf, -onp.inf, onp.inf, 1.0, onp.inf, 2.0]])
    got = gradc.jit(lambda x: np.maximum.accumulate(x, axis=1), backend=backend)(x)
    onp.testing.assert_array_equal(got, onp.maximum.accumulate(x, axis=1))
    g = gradc.grad(lambda x: np.sum(np.where(np.isnan(np.maximum.accumulate(x, axis=1)), 0.0,
                                             np.maximum.accumulate(x, axis=1))), backend=backend)(x)
    assert onp.isfinite(g).all()
    onp.testing.assert_array_equal(g[0], [2.0, 0.0, 1.0, 0.0, 0.0, 0.0])   # from the nan on: nan, no gradient


def test_methods_gradc_lacks_are_unsupported_errors_naming_them():
    x = onp.arange(4.0)
    f = gradc.jit
    for call, what in [(lambda x: np.subtract.reduce(x), "subtract.reduce"),
                       (lambda x: np.divide.accumulate(x), "divide.accumulate"),
                       (lambda x: onp.subtract.accumulate(x), "numpy.subtract.accumulate"),
                       (lambda x: np.add.reduceat(x, [0, 2]), "add.reduceat"),
                       (lambda x: onp.add.reduceat(x, [0, 2]), "add.reduceat"),
                       (lambda x: np.add.at(x, [0], 1.0), "add.at"),
                       (lambda x: onp.add.at(x, [0, 0], 1.0), "add.at"),
                       (lambda x: np.add.ntypes, "add.ntypes"),
                       (lambda x: onp.maximum.reduce(x, out=x), "maximum")]:
        with pytest.raises(gradc.UnsupportedError, match=what.replace(".", r"\.")):
            f(call)(x)
    with pytest.raises(gradc.UnsupportedError, match=r"x\.at\[indices\]\.add"):
        f(lambda x: np.add.at(x, [0], 1.0))(x)
    with pytest.raises(ValueError, match="binary"):
        f(lambda x: np.exp.outer(x, x))(x)


def test_ufuncs_stay_numpy_outside_a_trace_and_pickle():
    import pickle
    a = onp.zeros(4)
    assert np.add.at(a, [0, 0, 2], 1.0) is None and list(a) == [2.0, 0.0, 1.0, 0.0]   # numpy's, in place
    assert np.add.nin == 2 and np.exp.nout == 1 and np.add.identity == 0 and np.abs is np.absolute
    assert pickle.loads(pickle.dumps(np.maximum)) is np.maximum
    onp.testing.assert_array_equal(np.maximum.accumulate([1, 3, 2]), [1, 3, 3])


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
def test_integer_and_bool_dtypes_as_numpy(backend):
    """add and multiply promote small integers and bools to int64 (numpy's rule for their
    reduce and accumulate); maximum and minimum keep the dtype."""
    for dt in (onp.int32, onp.int8, onp.bool_):
        a = (onp.arange(3 * 37).reshape(3, 37) % 5 - 2).astype(dt)
        calls = [(u, m) for u in ("add", "multiply", "maximum", "minimum") for m in ("accumulate", "reduce")]
        got = gradc.jit(lambda a: [getattr(getattr(np, u), m)(a, axis=1) for u, m in calls], backend=backend)(a)
        for (u, m), g in zip(calls, got):
            want = getattr(getattr(onp, u), m)(a, axis=1)
            assert g.dtype == want.dtype, (dt, u, m)
            onp.testing.assert_array_equal(g, want)


# ----------------------------------------------------------------------------- weak numbers
WEAK_CASES = [  # (ufunc of Python numbers, its inputs)
    ("log", (2 * onp.pi,)), ("sqrt", (2,)), ("exp", (-0.5,)), ("arctan2", (1.0, 2)),
    ("maximum", (2, 3)), ("floor_divide", (7, 2)), ("power", (2.0, 0.5)),
]


@pytest.mark.parametrize("name, args", WEAK_CASES, ids=[c[0] for c in WEAK_CASES])
def test_ufunc_of_python_numbers_is_a_weak_number(name, args):
    """numpy's value, weakly typed: a float32 array beside it stays float32 inside a
    trace, and an int8 array beside an int result stays int8 (numpy's Python-int rule),
    as jax.numpy's weak_type arrays do.  Oracle: the numpy expression with the Python
    number itself (float(...) / int(...)), which numpy 2 treats as weak."""
    c = getattr(np, name)(*args)
    ref = getattr(onp, name)(*args)
    assert c == ref and c.dtype == ref.dtype and c.shape == () and c.item() == ref
    x = onp.linspace(-1, 1, 7, dtype=onp.float32)
    for backend in ("numpy", "llvm", "c"):
        got = gradc.jit(lambda x: x * getattr(np, name)(*args) - 1.0, backend=backend)(x)
        want = x * ref.item() - 1.0
        assert got.dtype == onp.float32 and onp.allclose(got, want, rtol=1e-6), backend
    if ref.dtype.kind == "i":
        k = onp.arange(5, dtype=onp.int8)
        got = gradc.jit(lambda k: k + getattr(np, name)(*args), backend="numpy")(k)
        assert got.dtype == onp.int8 and onp.array_equal(got, k + ref.item())


def test_weak_numbers_keep_a_float32_model_float32_and_its_gradient():
    """A Gaussian log-likelihood written as users write it: the constant term
    -0.5 log(2 pi) no longer makes the float32 model float64."""
    def nll(mu, x):
        return np.sum(0.5 * np.log(2 * np.pi) + 0.5 * (x - mu) ** 2) / np.sqrt(2.0)
    x = onp.random.default_rng(0).standard_normal(300).astype(onp.float32)
    mu = onp.float32(0.3)
    v, g = gradc.value_and_grad(nll)(mu, x)
    assert v.dtype == onp.float32 and g.dtype == onp.float32
    ref = onp.sum(0.5 * onp.log(2 * onp.pi) + 0.5 * (x.astype(float) - 0.3) ** 2) / onp.sqrt(2.0)
    assert abs(v - ref) <= 1e-6 * abs(ref)
    assert abs(g - onp.sum(0.3 - x.astype(float)) / onp.sqrt(2.0)) <= 1e-4


def test_numpy_scalars_and_arrays_stay_strong():
    """Only Python numbers are weak: a numpy float64 scalar promotes, as in JAX."""
    x = onp.ones(3, onp.float32)
    assert gradc.jit(lambda x: x * np.float64(2.0))(x).dtype == onp.float64
    assert gradc.jit(lambda x: x * np.log(onp.float64(2.0)))(x).dtype == onp.float64
    assert gradc.jit(lambda x: x - np.log(2.0))(x).dtype == onp.float32


def test_weak_numbers_match_jax_dtypes():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    x = onp.ones(3, onp.float32)
    for name, args in WEAK_CASES:
        got = gradc.jit(lambda x: x * getattr(np, name)(*args))(x)
        want = jax.jit(lambda x: x * getattr(jnp, name)(*args))(x)
        assert got.dtype == want.dtype, name
