"""jax.numpy's names that gradc.numpy gained for models written for it (gradc/ops/extras.py
and the dtype names in gradc/numpy.py): each against numpy's own function (values and
dtype), on every backend, in float64 and float32 and at rank 3 where the function takes
it, and the gradient against central finite differences of numpy's function."""
from __future__ import annotations

import numpy as onp
import pytest

import gradc
import gradc.numpy as np

from gradc_helpers import FD_ATOL, FD_RTOL, fd_grad

BACKENDS = ["numpy", "llvm", "c"]
TIES = onp.random.default_rng(7).integers(0, 3, (4, 5, 6)).astype(float)     # lexsort keys with many ties


def _ties(x, lib):
    """Keys with ties from ``x``: its values rounded to a few levels."""
    return lib.round(x * 1.5)


# (id, gradc function, numpy function, shapes, differentiable?)
TABLE = [
    # lexsort: ties in every key (the stable order decides), last key primary, any axis
    ("lexsort_1d", lambda a, b: np.lexsort((_ties(a, np), _ties(b, np))),
     lambda a, b: onp.lexsort((_ties(a, onp), _ties(b, onp))), [(30,), (30,)], False),
    ("lexsort_rank3_axis1", lambda a, b: np.lexsort([_ties(a, np), _ties(b, np), TIES], axis=1),
     lambda a, b: onp.lexsort([_ties(a, onp), _ties(b, onp), TIES], axis=1), [(4, 5, 6), (4, 5, 6)], False),
    ("lexsort_array_keys", lambda k: np.lexsort(_ties(k, np), axis=0), lambda k: onp.lexsort(_ties(k, onp), axis=0),
     [(3, 7, 4)], False),
    ("lexsort_numpy_dispatch", lambda a, b: onp.lexsort((_ties(a, np), _ties(b, np)), axis=-1),
     lambda a, b: onp.lexsort((_ties(a, onp), _ties(b, onp))), [(2, 3, 8), (2, 3, 8)], False),
    ("lexsort_gather", lambda a, b: np.take_along_axis(a, np.lexsort((a, _ties(b, np))), -1),
     lambda a, b: onp.take_along_axis(a, onp.lexsort((a, _ties(b, onp))), -1), [(3, 9), (3, 9)], True),
    # index helpers
    ("ix_", lambda x: x[np.ix_([0, 2], onp.array([1, 3, 4]))] * 2, lambda x: x[onp.ix_([0, 2], [1, 3, 4])] * 2,
     [(3, 5)], True),
    ("ix_traced", lambda x, i: x[np.ix_(np.astype(i * 0 + onp.array([2, 0]), np.int64), [1, 4], [0])],
     lambda x, i: x[onp.ix_([2, 0], [1, 4], [0])], [(3, 5, 2), (2,)], True),
    ("diag_indices_from", lambda x: x[np.diag_indices_from(x)], lambda x: x[onp.diag_indices_from(x)],
     [(4, 4, 4)], True),
    ("tril_indices_from", lambda x: x[np.tril_indices_from(x, -1)], lambda x: x[onp.tril_indices_from(x, -1)],
     [(4, 5)], True),
    ("triu_indices_from", lambda x: x[np.triu_indices_from(x, 1)] + x[np.triu_indices_from(x)][:1],
     lambda x: x[onp.triu_indices_from(x, 1)] + x[onp.triu_indices_from(x)][:1], [(5, 3)], True),
    # numpy.linalg's array-API names
    ("linalg.cross", lambda a, b: np.linalg.cross(a, b, axis=1), lambda a, b: onp.linalg.cross(a, b, axis=1),
     [(4, 3, 2), (1, 3, 2)], True),
    ("linalg.diagonal", lambda x: np.linalg.diagonal(x, offset=1), lambda x: onp.linalg.diagonal(x, offset=1),
     [(2, 4, 5)], True),
    ("linalg.trace", lambda x: np.linalg.trace(x, offset=-1), lambda x: onp.linalg.trace(x, offset=-1),
     [(3, 4, 4)], True),
    ("linalg.matmul", lambda a, b: np.linalg.matmul(a, b), lambda a, b: onp.linalg.matmul(a, b),
     [(2, 3, 4), (4, 5)], True),
    ("linalg.outer", lambda a, b: np.linalg.outer(a, b), lambda a, b: onp.linalg.outer(a, b), [(4,), (3,)], True),
    ("linalg.tensordot", lambda a, b: np.linalg.tensordot(a, b, axes=2), lambda a, b: onp.linalg.tensordot(a, b, axes=2),
     [(2, 3, 4), (3, 4, 2)], True),
    ("linalg.vecdot", lambda a, b: np.linalg.vecdot(a, b, axis=0), lambda a, b: onp.linalg.vecdot(a, b, axis=0),
     [(3, 4, 2), (3, 4, 2)], True),
    ("linalg.matrix_transpose", lambda x: np.linalg.matrix_transpose(x) * 2,
     lambda x: onp.linalg.matrix_transpose(x) * 2, [(2, 3, 4)], True),
    ("linalg_numpy_dispatch", lambda x: onp.linalg.diagonal(x) + onp.linalg.trace(x)[..., None],
     lambda x: onp.linalg.diagonal(x) + onp.linalg.trace(x)[..., None], [(3, 4, 4)], True),
    # polynomials (coefficient vectors, highest power first)
    ("polyadd", lambda a, b: np.polyadd(a, b), lambda a, b: onp.polyadd(a, b), [(5,), (3,)], True),
    ("polysub", lambda a, b: np.polysub(a, b), lambda a, b: onp.polysub(a, b), [(2,), (4,)], True),
    ("polymul", lambda a, b: np.polymul(a, b), lambda a, b: onp.polymul(a, b), [(4,), (3,)], True),
    ("polyder", lambda p: np.polyder(p) * 1.0 + np.polyder(p, 3)[0], lambda p: onp.polyder(p) + onp.polyder(p, 3)[0],
     [(6,)], True),
    ("polyint", lambda p: np.polyint(p, 2, k=[0.5, -1.0]), lambda p: onp.polyint(p, 2, k=[0.5, -1.0]), [(4,)], True),
    ("polyint_traced_k", lambda p, k: np.polyint(p, 1, k=k), lambda p, k: onp.polyint(p, 1, k=k), [(4,), (1,)], True),
    ("polyval_of_polyint", lambda p, x: np.polyval(np.polyint(np.polyder(p)), x),
     lambda p, x: onp.polyval(onp.polyint(onp.polyder(p)), x), [(5,), (3, 4, 2)], True),
    ("poly_numpy_dispatch", lambda a, b: onp.polyadd(a, b) * onp.polymul(a, b)[:3],
     lambda a, b: onp.polyadd(a, b) * onp.polymul(a, b)[:3], [(3,), (2,)], True),
    # floating-point bits, Bessel I0
    ("frexp", lambda x: np.frexp(x * 7)[0] * 3 + np.frexp(x * 7)[1], lambda x: onp.frexp(x * 7)[0] * 3 + onp.frexp(x * 7)[1],
     [(3, 4, 5)], True),
    ("i0", lambda x: np.i0(x * 4), lambda x: onp.i0(x * 4), [(3, 4, 5)], True),
    ("vander", lambda x: np.vander(x), lambda x: onp.vander(x), [(5,)], True),
    ("vander_increasing", lambda x: np.vander(x * 0 + onp.array([0.0, 1.5, -2.0]), 4, increasing=True) * x[0],
     lambda x: onp.vander(x * 0 + onp.array([0.0, 1.5, -2.0]), 4, increasing=True) * x[0], [(3,)], True),
]


@pytest.mark.parametrize("dtype", [onp.float64, onp.float32])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,f,ref,shapes,diff", TABLE, ids=[t[0] for t in TABLE])
def test_against_numpy_and_finite_differences(name, f, ref, shapes, diff, backend, dtype):
    rng = onp.random.default_rng(len(name))
    xs = [rng.uniform(-1, 1, s).astype(dtype) for s in shapes]
    got = gradc.jit(f, backend=backend)(*xs)
    want = ref(*xs)
    assert onp.asarray(got).dtype == onp.asarray(want).dtype, (onp.asarray(got).dtype, onp.asarray(want).dtype)
    tol = 1e-12 if onp.asarray(want).dtype == onp.float64 else 2e-6
    onp.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    onp.testing.assert_allclose(f(*xs), want, rtol=tol, atol=tol)       # outside a trace: numpy's own
    if not diff or dtype != onp.float64:
        return
    w = rng.standard_normal(onp.shape(want))
    grads = gradc.grad(lambda *a: np.sum(f(*a) * w), argnums=tuple(range(len(xs))), backend=backend)(*xs)
    for k, g in enumerate(grads):
        fd = fd_grad(lambda *a: onp.sum(ref(*a) * w), xs, k)
        onp.testing.assert_allclose(g, fd, rtol=FD_RTOL, atol=FD_ATOL, err_msg=f"argument {k}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_lexsort_of_integer_bool_and_nan_keys(backend):
    r = onp.random.default_rng(2)
    a, b = r.integers(-3, 3, (5, 40)).astype(onp.int32), r.uniform(size=(5, 40)) > 0.5
    c = onp.where(r.uniform(size=(5, 40)) > 0.8, onp.nan, onp.round(r.uniform(size=(5, 40)) * 2))
    got = gradc.jit(lambda a, b, c: np.lexsort((c, a, b)), backend=backend)(a, b, c)
    onp.testing.assert_array_equal(got, onp.lexsort((c, a, b)))
    assert got.dtype == onp.lexsort((c, a, b)).dtype


@pytest.mark.parametrize("backend", BACKENDS)
def test_dtype_names_and_machine_limits(backend):
    assert (np.int8, np.int16, np.uint8, np.uint16, np.uint32, np.uint64, np.float16, np.bool, np.dtype) == (
        onp.int8, onp.int16, onp.uint8, onp.uint16, onp.uint32, onp.uint64, onp.float16, onp.bool_, onp.dtype)
    for dt in (onp.float32, onp.float64):
        x = onp.linspace(1, 2, 7, dtype=dt)
        f = gradc.jit(lambda x: x + np.finfo(x.dtype).eps * x + np.finfo(x).tiny, backend=backend)
        onp.testing.assert_array_equal(f(x), x + onp.finfo(dt).eps * x + onp.finfo(dt).tiny)
    # every integer type computes with numpy's wrap-around and keeps its dtype
    for dt in (np.int8, np.int16, np.uint8, np.uint16, np.uint32, np.uint64):
        x = onp.arange(250, 256).astype(dt)
        got = gradc.jit(lambda x: (x * 3 + 1) // 2 + np.iinfo(x.dtype).max // 4, backend=backend)(x)
        want = (x * dt(3) + dt(1)) // dt(2) + dt(onp.iinfo(dt).max // 4)
        assert got.dtype == want.dtype
        onp.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_abstract_dtypes_aliases_and_real_checks(backend):
    """issubdtype against numpy's abstract types picks a model's branch while tracing;
    the aliases are numpy's; a traced array is real (isreal all True, iscomplex all
    False, as numpy gives for the same float array)."""
    def f(x, i):
        scale = 2.0 if np.issubdtype(x.dtype, np.floating) and not np.issubdtype(i.dtype, np.inexact) else 3.0
        return x * scale + np.isreal(x) + np.iscomplex(i), np.isrealobj(x), np.iscomplexobj(i)
    x, i = onp.linspace(-1, 1, 5), onp.arange(5)
    out, real, cplx = gradc.jit(f, backend=backend)(x, i)
    onp.testing.assert_array_equal(out, x * 2.0 + onp.isreal(x) + onp.iscomplex(i))
    assert bool(real) and not bool(cplx)
    assert (np.double, np.single, np.float_, np.int_, np.uint, np.euler_gamma) == (
        onp.float64, onp.float32, onp.float64, onp.int64, onp.uint64, onp.euler_gamma)
    assert np.s_[1:3] == slice(1, 3) and np.mgrid[0:2, 0:3].shape == (2, 2, 3)


def test_shape_functions_fall_back_to_numpy_outside_a_trace():
    x = onp.arange(3.0)
    onp.testing.assert_array_equal(np.broadcast_to(x, (2, 3)), onp.broadcast_to(x, (2, 3)))
    onp.testing.assert_array_equal(np.expand_dims(x, (0, 2)), onp.expand_dims(x, (0, 2)))
    onp.testing.assert_array_equal(np.squeeze(x[None, :, None], axis=2), x[None])


@pytest.mark.parametrize("backend", BACKENDS)
def test_float16_computes_in_float32_and_casts_to_it_are_refused(backend):
    x = onp.linspace(-1, 1, 9).astype(onp.float16)
    got = gradc.jit(lambda x: x * 2 + 1, backend=backend)(x)
    assert got.dtype == onp.float32
    onp.testing.assert_array_equal(got, x.astype(onp.float32) * 2 + 1)
    for cast in (lambda x: x.astype(np.float16), lambda x: np.astype(x, np.float16),
                 lambda x: np.array(x, dtype=np.float16)):
        with pytest.raises(gradc.UnsupportedError, match="dtype=float16"):
            gradc.jit(cast, backend=backend)(onp.ones(3))


def test_bad_input_is_refused_clearly():
    x = onp.ones((3, 4))
    with pytest.raises(gradc.ShapeError, match="same shape"):
        gradc.jit(lambda a, b: np.lexsort((a, b)))(onp.ones(3), onp.ones(4))
    with pytest.raises(gradc.ArgumentError, match="at least one key"):
        gradc.jit(lambda a: np.lexsort([]) + a)(onp.ones(3))
    with pytest.raises(gradc.ShapeError, match="1-D array of coefficients"):
        gradc.jit(np.polyder)(x)
    with pytest.raises(gradc.ShapeError, match="a1 must be a 1-D"):
        gradc.jit(np.polyadd)(x, onp.ones(2))
    with pytest.raises(gradc.ArgumentError, match="order m"):
        gradc.jit(lambda p: np.polyder(p, -1))(onp.ones(3))
    with pytest.raises(gradc.ArgumentError, match="one integration constant per integration"):
        gradc.jit(lambda p: np.polyint(p, 3, k=[1.0, 2.0]))(onp.ones(3))
    with pytest.raises(gradc.UnsupportedError, match="constant polynomial"):
        gradc.jit(lambda p: np.polyder(p, 3))(onp.ones(3))
    with pytest.raises(gradc.ShapeError, match="x must be a 1-D"):
        gradc.jit(np.vander)(x)
    with pytest.raises(gradc.ShapeError, match="must be 1-D"):
        gradc.jit(np.linalg.outer)(x, onp.ones(3))
    with pytest.raises(gradc.ShapeError, match="3 elements"):
        gradc.jit(np.linalg.cross)(x, x)
    with pytest.raises(gradc.ShapeError, match="at least two axes"):
        gradc.jit(np.linalg.matrix_transpose)(onp.ones(3))
    with pytest.raises(gradc.UnsupportedError, match="traced boolean"):
        gradc.jit(lambda x: x[np.ix_(x[:, 0] > 0, [1])])(x)
    with pytest.raises(gradc.ArgumentError, match="argument 1 must be 1-D"):
        gradc.jit(lambda x: x[np.ix_([0], np.astype(x[:2, :2], np.int64))])(x)
    with pytest.raises(ValueError, match="2-d"):            # numpy's own check, on the traced shape
        gradc.jit(lambda x: np.tril_indices_from(x)[0] + x)(onp.ones((2, 2, 2)))


def _special_floats(dt):
    fi = onp.finfo(dt)
    x = onp.array([0.0, -0.0, 3.0, -5.0, onp.inf, -onp.inf, onp.nan, fi.smallest_subnormal, -3 * fi.smallest_subnormal,
                   fi.tiny, fi.tiny * 0.75, fi.max, -fi.max, 1.0, 0.5, -0.75, 1e-30, 123456.789], dt)
    y = onp.array([-1.0, 1.0, 3.0, 0.0, 0.0, 1, 0, 0, -1, 0, 1, onp.inf, 0, 2, -2, -0.75, 1, -onp.inf], dt)
    r = onp.random.default_rng(5)
    z = (r.standard_normal((3, 4, 5)) * 10.0 ** r.integers(-30, 30, (3, 4, 5))).astype(dt)
    return x, y, z


@pytest.mark.parametrize("dtype", [onp.float64, onp.float32])
@pytest.mark.parametrize("backend", BACKENDS)
def test_float_bits_are_numpys_bit_for_bit(backend, dtype):
    """frexp, spacing and nextafter against numpy's on zeros of both signs, subnormals,
    the largest float, inf and nan, and rank-3 values across the exponent range."""
    x, y, z = _special_floats(dtype)
    with onp.errstate(all="ignore"):
        for a, b in ((x, y), (z, z[::-1] * -1)):
            m, e = gradc.jit(np.frexp, backend=backend)(a)
            for got, want in ((m, onp.frexp(a)[0]), (e, onp.frexp(a)[1]),
                              (gradc.jit(np.spacing, backend=backend)(a), onp.spacing(a)),
                              (gradc.jit(lambda a, b: onp.nextafter(a, b), backend=backend)(a, b), onp.nextafter(a, b))):
                assert got.dtype == want.dtype
                onp.testing.assert_array_equal(got.view(f"i{got.itemsize}"), want.view(f"i{want.itemsize}"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_gcd_lcm_against_numpy(backend):
    r = onp.random.default_rng(4)
    fib = onp.array([7540113804746346429, 4660046610375530309, 0, -12, 2**62, 1071, 0, -2**40 * 3])
    a64 = onp.concatenate([fib, r.integers(-10**6, 10**6, 30) * r.integers(1, 50, 30)])
    b64 = onp.concatenate([onp.array([4660046610375530309, 2880067194370816120, 0, 18, 6, 462, -5, 2**20 * 9]),
                           r.integers(-10**6, 10**6, 30) * r.integers(1, 50, 30)])
    for a, b in ((a64, b64), (a64.astype(onp.int32) // 4, b64.astype(onp.int32) // 4),
                 (onp.abs(a64 % 200).astype(onp.uint8), onp.abs(b64 % 256).astype(onp.uint8)),
                 (r.integers(-30, 30, (3, 4, 5)).astype(onp.int16), onp.int16(12))):
        for gf, nf in ((np.gcd, onp.gcd), (np.lcm, onp.lcm)):
            got = gradc.jit(gf, backend=backend)(a, b)
            assert got.dtype == nf(a, b).dtype
            onp.testing.assert_array_equal(got, nf(a, b))
    with pytest.raises(gradc.UnsupportedError, match="must be integers"):
        gradc.jit(np.gcd, backend=backend)(onp.ones(3), onp.ones(3))


def test_bits_functions_send_no_gradient_and_frexp_scales():
    x = onp.array([3.0, -5.0, 0.1, 1e-310])
    g = gradc.grad(lambda x: np.sum(np.spacing(x) + np.nextafter(x, 0.0) * 0 + x))(x)
    onp.testing.assert_array_equal(g, onp.ones(4))
    g = gradc.grad(lambda x: np.sum(np.frexp(x)[0]))(x)
    with onp.errstate(over="ignore"):       # the subnormal's mantissa grows by 2**1029: inf
        onp.testing.assert_array_equal(g, 2.0 ** -onp.frexp(x)[1].astype(float))


def test_vmap_of_the_composed_functions():
    r = onp.random.default_rng(0)
    a, b = onp.round(r.uniform(size=(4, 9)) * 2), onp.round(r.uniform(size=(4, 9)) * 2)
    onp.testing.assert_array_equal(gradc.vmap(lambda a, b: np.lexsort((a, b)))(a, b),
                                   onp.stack([onp.lexsort((x, y)) for x, y in zip(a, b)]))
    x = r.standard_normal((4, 5)) * 100
    m, e = gradc.vmap(np.frexp)(x)
    onp.testing.assert_array_equal(m, onp.frexp(x)[0])
    onp.testing.assert_array_equal(e, onp.frexp(x)[1])
    onp.testing.assert_allclose(gradc.vmap(lambda v: np.polymul(np.vander(v, 3)[1], v[:2]))(x),
                                onp.stack([onp.polymul(onp.vander(v, 3)[1], v[:2]) for v in x]), rtol=1e-12)
    ia, ib = a.astype(onp.int64) * 6, b.astype(onp.int64) * 4
    onp.testing.assert_array_equal(gradc.vmap(np.gcd)(ia, ib), onp.gcd(ia, ib))


def test_the_names_are_jax_numpys():
    """The names a jax.numpy model uses resolve in gradc.numpy under the same spelling."""
    jnp = pytest.importorskip("jax.numpy")
    names = ["finfo", "iinfo", "int8", "int16", "uint8", "uint16", "uint32", "uint64", "float16", "bool", "dtype",
             "lexsort", "ix_", "diag_indices_from", "tril_indices_from", "triu_indices_from", "polyadd", "polysub",
             "polymul", "polyder", "polyint", "vander", "frexp", "spacing", "nextafter", "gcd", "lcm", "i0"]
    linalg = ["cross", "diagonal", "matmul", "outer", "tensordot", "trace", "vecdot", "matrix_transpose"]
    for n in names:
        assert hasattr(jnp, n) and n in np.supported_names(), n
    for n in linalg:
        assert hasattr(jnp.linalg, n) and f"linalg.{n}" in np.supported_names(), n


def test_out_is_written_outside_a_trace_and_refused_inside():
    """numpy's out=: on concrete arrays numpy's own function writes it (it was left
    untouched); in a trace it is an error naming the function, never ignored."""
    x = onp.arange(6.0).reshape(3, 2)
    for name, call, want in (("sum", lambda b: np.sum(x, axis=0, out=b), x.sum(0)),
                             ("mean", lambda b: np.mean(x, 0, None, b), x.mean(0)),
                             ("var", lambda b: np.var(x, axis=0, out=b), x.var(0)),
                             ("quantile", lambda b: np.quantile(x, 0.5, axis=0, out=b), onp.quantile(x, 0.5, axis=0))):
        buf = onp.zeros(2)
        assert call(buf) is buf, name
        onp.testing.assert_array_equal(buf, want)
    with pytest.raises(gradc.UnsupportedError, match=r"sum\(\.\.\., out=\.\.\.\)"):
        gradc.jit(lambda x: np.sum(x, 0, None, onp.zeros(2)))(x)
    with pytest.raises(TypeError, match="unexpected keyword"):
        gradc.jit(lambda x: np.concatenate([x, x], foo=1))(x)
    with pytest.raises(gradc.UnsupportedError, match=r"concatenate\(\.\.\., out="):
        gradc.jit(lambda x: np.concatenate([x, x], out=onp.zeros((6, 2))))(x)
