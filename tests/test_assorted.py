"""numpy's assorted functions (gradc/ops/assorted.py, gradc/ops/nanfuncs.py and
numpy.apply_along_axis in gradc/vmap.py): each table line against numpy's own function
(values and dtype, 1e-12 relative) and its gradient against central finite differences
of numpy's function, on every backend, at rank 3 where the function takes it."""
from __future__ import annotations

import numpy as onp
import pytest

import gradc
import gradc.numpy as np

from gradc_helpers import FD_ATOL, FD_RTOL, fd_grad

NAN = onp.random.default_rng(3).uniform(size=(5, 6, 7)) > 0.8      # where the nan tests put nans


def _nan(x, lib):
    mask = NAN[tuple(slice(0, s) for s in x.shape) + (0,) * (3 - x.ndim)]
    return lib.where(mask, onp.nan, x)


# (id, gradc function, numpy function, shapes, differentiable?)
TABLE = [
    ("nanvar", lambda x: np.nanvar(_nan(x, np), axis=1), lambda x: onp.nanvar(_nan(x, onp), axis=1), [(5, 6, 7)], True),
    ("nanstd_ddof", lambda x: np.nanstd(_nan(x, np), axis=(0, 2), ddof=1),
     lambda x: onp.nanstd(_nan(x, onp), axis=(0, 2), ddof=1), [(5, 6, 7)], True),
    ("nanprod", lambda x: np.nanprod(_nan(x, np), axis=0), lambda x: onp.nanprod(_nan(x, onp), axis=0), [(5, 6, 7)], True),
    ("nanargmax", lambda x: np.nanargmax(_nan(x, np), axis=2), lambda x: onp.nanargmax(_nan(x, onp), axis=2),
     [(5, 6, 7)], False),
    ("nanargmin_flat", lambda x: np.nanargmin(_nan(x, np)), lambda x: onp.nanargmin(_nan(x, onp)), [(5, 6, 7)], False),
    ("nancumsum", lambda x: np.nancumsum(_nan(x, np), axis=1), lambda x: onp.nancumsum(_nan(x, onp), axis=1),
     [(5, 6, 7)], True),
    ("nancumprod", lambda x: np.nancumprod(_nan(x, np)), lambda x: onp.nancumprod(_nan(x, onp)), [(3, 4)], True),
    ("broadcast_arrays", lambda x, y: np.broadcast_arrays(x, y)[1] * np.broadcast_arrays(x, y)[0],
     lambda x, y: onp.broadcast_arrays(x, y)[1] * onp.broadcast_arrays(x, y)[0], [(4, 1, 3), (5, 1)], True),
    ("concat_unstack", lambda x: np.concat(np.unstack(x, axis=1), axis=-1),
     lambda x: onp.concat(onp.unstack(x, axis=1), axis=-1), [(3, 4, 5)], True),
    ("rollaxis", lambda x: np.rollaxis(x, 2, 0) * 2, lambda x: onp.rollaxis(x, 2, 0) * 2, [(3, 4, 5)], True),
    ("delete", lambda x: np.delete(x, [0, 3], axis=1), lambda x: onp.delete(x, [0, 3], axis=1), [(3, 5, 2)], True),
    ("delete_flat_slice", lambda x: np.delete(x, slice(1, None, 3)), lambda x: onp.delete(x, slice(1, None, 3)),
     [(3, 5)], True),
    ("insert_scalar", lambda x: np.insert(x, 2, 9.0, axis=1), lambda x: onp.insert(x, 2, 9.0, axis=1), [(3, 5)], True),
    ("insert_many", lambda x, v: np.insert(x, [1, 1, 4], v, axis=0), lambda x, v: onp.insert(x, [1, 1, 4], v, axis=0),
     [(5, 3), (3, 3)], True),
    ("diagflat", lambda x: np.diagflat(x, 1), lambda x: onp.diagflat(x, 1), [(2, 3)], True),
    ("empty_like", lambda x: np.empty_like(x) + x, lambda x: onp.zeros_like(x) + x, [(3, 4)], True),
    ("resize", lambda x: np.resize(x, (4, 5)), lambda x: onp.resize(x, (4, 5)), [(2, 3)], True),
    ("piecewise", lambda x: np.piecewise(x, [x < -0.3, x > 0.4], [lambda v: v * v, lambda v: -v, 0.5]),
     lambda x: onp.piecewise(x, [x < -0.3, x > 0.4], [lambda v: v * v, lambda v: -v, 0.5]), [(4, 5, 6)], True),
    ("isin", lambda x: np.isin(np.round(x * 3), [-1.0, 2.0]), lambda x: onp.isin(onp.round(x * 3), [-1.0, 2.0]),
     [(4, 5, 6)], False),
    ("isposinf_neginf", lambda x: np.isposinf(x * onp.inf) ^ (np.isneginf(np.where(x > 0.5, -onp.inf, x)) & (x > 0)),
     lambda x: onp.isposinf(x * onp.inf) ^ (onp.isneginf(onp.where(x > 0.5, -onp.inf, x)) & (x > 0)), [(4, 5)], False),
    ("real_imag", lambda x: np.real(x) * 2 + np.imag(x), lambda x: onp.real(x) * 2 + onp.imag(x), [(4, 5)], True),
    ("ldexp", lambda x: np.ldexp(x, onp.arange(5) - 2), lambda x: onp.ldexp(x, onp.arange(5) - 2), [(4, 5)], True),
    ("modf", lambda x: np.modf(x * 3)[0] + np.modf(x * 3)[1] * 10, lambda x: onp.modf(x * 3)[0] + onp.modf(x * 3)[1] * 10,
     [(4, 5)], False),
    ("gradient", lambda x: np.gradient(x, 0.5, axis=1), lambda x: onp.gradient(x, 0.5, axis=1), [(4, 6, 3)], True),
    ("gradient_all_edge2", lambda x: np.gradient(x, edge_order=2)[1], lambda x: onp.gradient(x, edge_order=2)[1],
     [(5, 6)], True),
    ("gradient_coords", lambda x: np.gradient(x, onp.array([0.0, 0.1, 0.5, 0.6, 1.5])),
     lambda x: onp.gradient(x, onp.array([0.0, 0.1, 0.5, 0.6, 1.5])), [(5,)], True),
    ("unwrap", lambda x: np.unwrap(x * 9, axis=1), lambda x: onp.unwrap(x * 9, axis=1), [(4, 8)], True),
    ("partition", lambda x: np.partition(x, 3, axis=1)[:, 3], lambda x: onp.partition(x, 3, axis=1)[:, 3],
     [(4, 8)], True),
    ("argpartition", lambda x: np.take_along_axis(x, np.argpartition(x, 2)[..., 2:3], -1),
     lambda x: onp.take_along_axis(x, onp.argpartition(x, 2)[..., 2:3], -1), [(3, 4, 8)], True),
    ("apply_along_axis", lambda x: np.apply_along_axis(lambda v: np.sum(v * v) * v[:2], 1, x),
     lambda x: onp.apply_along_axis(lambda v: onp.sum(v * v) * v[:2], 1, x), [(3, 5, 4)], True),
    ("apply_over_axes", lambda x: np.apply_over_axes(np.sum, x, [0, 2]),
     lambda x: onp.apply_over_axes(onp.sum, x, [0, 2]), [(3, 5, 4)], True),
    ("fill_diagonal", lambda x, v: np.fill_diagonal(x, v, inplace=False),
     lambda x, v: _filled(x, v), [(4, 4), (3,)], True),
    ("fill_diagonal_wrap", lambda x: np.fill_diagonal(x, 7.0, wrap=True, inplace=False),
     lambda x: _filled(x, 7.0, wrap=True), [(7, 3)], True),
    ("hamming_window", lambda x: x * np.hamming(6) + np.blackman(6) * np.hanning(6) + np.bartlett(6),
     lambda x: x * onp.hamming(6) + onp.blackman(6) * onp.hanning(6) + onp.bartlett(6), [(2, 6)], True),
]


def _filled(x, v, wrap=False):
    y = onp.array(x, copy=True)
    onp.fill_diagonal(y, v, wrap=wrap)
    return y


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
@pytest.mark.parametrize("name,f,ref,shapes,diff", TABLE, ids=[t[0] for t in TABLE])
def test_against_numpy_and_finite_differences(name, f, ref, shapes, diff, backend):
    rng = onp.random.default_rng(len(name))
    xs = [rng.uniform(-1, 1, s) for s in shapes]
    got = gradc.jit(f, backend=backend)(*xs)
    want = ref(*xs)
    assert onp.asarray(got).dtype == onp.asarray(want).dtype, (onp.asarray(got).dtype, onp.asarray(want).dtype)
    onp.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    onp.testing.assert_allclose(f(*xs), want, rtol=1e-12, atol=1e-12)       # outside a trace: numpy
    if not diff:
        return
    w = rng.standard_normal(onp.shape(want))
    grads = gradc.grad(lambda *a: np.sum(np.where(onp.isnan(want), 0.0, f(*a)) * w), argnums=tuple(range(len(xs))),
                       backend=backend)(*xs)
    for k, g in enumerate(grads):
        fd = fd_grad(lambda *a: onp.sum(onp.where(onp.isnan(want), 0.0, ref(*a)) * w), xs, k)
        onp.testing.assert_allclose(g, fd, rtol=FD_RTOL, atol=FD_ATOL, err_msg=f"argument {k}")


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
def test_predicates_and_dtype_queries(backend):
    x = onp.random.default_rng(0).uniform(-1, 1, (40, 33))
    f = gradc.jit(lambda x: (np.allclose(x, x + 1e-9), np.allclose(x, x + 1e-3), np.array_equal(x, x),
                             np.array_equal(x, x[:, :1]), np.array_equiv(x[:1], x[:1] + 0 * x[:1])), backend=backend)
    assert [bool(v) for v in f(x)] == [True, False, True, False, True]

    def g(x):
        assert np.result_type(x, onp.float32) == onp.float64 and np.can_cast(x, onp.float32, "same_kind")
        assert not np.isscalar(x) and np.issubdtype(x.dtype, onp.floating)
        assert np.broadcast_shapes((3, 1), (1, 4)) == (3, 4) and np.promote_types("f4", "i8") == onp.float64
        return x * 2
    onp.testing.assert_array_equal(gradc.jit(g, backend=backend)(x), 2 * x)


def test_traced_positions_and_inplace_are_refused():
    with pytest.raises(gradc.UnsupportedError, match="inplace=False"):
        gradc.jit(lambda x: np.fill_diagonal(x, 1.0))(onp.ones((3, 3)))
    with pytest.raises(gradc.UnsupportedError, match="traced positions"):
        gradc.jit(lambda x, i: np.delete(x, i))(onp.ones(4), onp.array([1]))
