"""gradc/ops/arrays.py at rank 3 and above, at the sizes users run: ``diagonal`` and
``trace`` of any two axes, ``triu``/``tril`` of a stack of matrices, ``sort``/``argsort``
along any axis, on the three backends in float32 and float64.

Oracles: numpy's own functions for values; for gradients, closed forms built with
numpy's index maps -- these ops only move elements, so the gradient of
``sum(w * op(x))`` is ``w`` sent back along the same map:

* diagonal/trace: ``np.diagonal`` of ``arange(x.size).reshape(x.shape)`` names the
  element of ``x`` each output came from; ``np.add.at`` scatters ``w`` there;
* triu/tril: ``np.triu(w)`` / ``np.tril(w)``;
* sort: ``np.put_along_axis(g, np.argsort(x, kind="stable"), w)`` (at ties, the stable
  order decides which element receives which cotangent: docs/derivatives.md).

The small rank-3 lines (finite differences, JVP vs VJP, shape rules) are in the op
table, tests/test_ops.py.  Exact comparisons: these ops add nothing (a trace sums at
most 80 terms, compared at 1e-12 relative in float64, 1e-5 in float32: ~80 eps).
"""
from __future__ import annotations


import numpy as np
import pytest

import gradc
import gradc.numpy as gnp

DTYPES = [np.float64, np.float32]
# 409,600 elements: above the size where the native backend splits nests over threads
BIG = (64, 80, 80)


@pytest.fixture
def backend(every_backend):
    """numpy, llvm and c as the default backend (tests/conftest.py)."""
    return every_backend


def _tol(dtype):
    return dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)


def _diagonal_grad(shape, w, *d):
    """The gradient of sum(w * diagonal(x, *d)) (w broadcast to the diagonal's shape)."""
    src = np.diagonal(np.arange(int(np.prod(shape))).reshape(shape), *d)
    g = np.zeros(int(np.prod(shape)))
    np.add.at(g, src.ravel(), np.broadcast_to(w, src.shape).ravel())
    return g.reshape(shape)


DIAGONALS = [(0, 0, 1), (3, 0, 2), (-5, 2, 1), (1, -1, -2)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("d", DIAGONALS, ids=[str(d) for d in DIAGONALS])
def test_diagonal_and_trace_of_any_two_axes(backend, dtype, d):
    r = np.random.default_rng(1)
    x = r.standard_normal(BIG).astype(dtype)
    got = gradc.jit(lambda x: gnp.diagonal(x, *d))(x)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, np.diagonal(x, *d))          # a copy: exact
    tr = gradc.jit(lambda x: gnp.trace(x, *d))(x)
    np.testing.assert_allclose(tr, np.trace(x.astype(np.float64), *d), **_tol(dtype))
    w = r.standard_normal(np.diagonal(x, *d).shape).astype(dtype)
    g = gradc.grad(lambda x, w: gnp.sum(gnp.diagonal(x, *d) * w))(x, w)
    np.testing.assert_array_equal(g, _diagonal_grad(BIG, w, *d))
    v = r.standard_normal(tr.shape).astype(dtype)
    g = gradc.grad(lambda x, v: gnp.sum(gnp.trace(x, *d) * v))(x, v)
    np.testing.assert_array_equal(g, _diagonal_grad(BIG, v[..., None], *d))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("k", [-3, 0, 2])
def test_triu_tril_of_a_stack(backend, dtype, k):
    r = np.random.default_rng(2)
    x = r.standard_normal(BIG).astype(dtype)
    w = r.standard_normal(BIG).astype(dtype)
    for g_op, n_op in ((gnp.triu, np.triu), (gnp.tril, np.tril)):
        np.testing.assert_array_equal(gradc.jit(lambda x: g_op(x, k))(x), n_op(x, k))
        g = gradc.grad(lambda x, w: gnp.sum(g_op(x, k) * w))(x, w)
        np.testing.assert_array_equal(g, n_op(w, k))


SORTS = [((200, 16, 128), 1), ((128, 200, 16), -1), ((16, 128, 200), 0), ((4, 5, 6, 7), 2)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("shape,axis", SORTS, ids=[f"{s}-axis{a}" for s, a in SORTS])
def test_sort_along_any_axis_with_its_gradient(backend, dtype, shape, axis):
    """Values on a coarse grid: many ties, so the stable order matters."""
    r = np.random.default_rng(3)
    x = (r.integers(-20, 20, shape) * 0.25).astype(dtype)
    w = r.standard_normal(shape).astype(dtype)
    np.testing.assert_array_equal(gradc.jit(lambda x: gnp.sort(x, axis=axis))(x), np.sort(x, axis=axis))
    order = np.argsort(x, axis=axis, kind="stable")
    np.testing.assert_array_equal(gradc.jit(lambda x: gnp.argsort(x, axis=axis))(x), order)
    g = gradc.grad(lambda x, w: gnp.sum(gnp.sort(x, axis=axis) * w))(x, w)
    want = np.zeros_like(w)
    np.put_along_axis(want, order, w, axis=axis)     # w[k] goes to the element sorted into place k
    np.testing.assert_array_equal(g, want)


def test_sort_rank3_nan_last_and_jvp():
    """nan sorts last along the axis, as numpy; the JVP permutes the tangent the same way."""
    r = np.random.default_rng(4)
    x = r.standard_normal((3, 6, 4))
    x[r.random(x.shape) < 0.2] = np.nan
    np.testing.assert_array_equal(gradc.jit(lambda x: gnp.sort(x, axis=1))(x), np.sort(x, axis=1))
    np.testing.assert_array_equal(gradc.jit(lambda x: gnp.argsort(x, axis=1))(x), np.argsort(x, axis=1, kind="stable"))
    t = r.standard_normal(x.shape)
    _, tan = gradc.jvp(lambda x: gnp.sort(x, axis=1), (x,), (t,))
    np.testing.assert_array_equal(tan, np.take_along_axis(t, np.argsort(x, axis=1, kind="stable"), axis=1))


def test_sort_of_200k_elements_on_numpy_in_linear_memory():
    """backend="numpy" ranks with numpy's stable argsort (op sort_rank), not the pairwise
    comparisons the native backends fuse into loops: 200,000 elements (pairwise: 40 GB of
    booleans) sort in well under a second, values, argsort and gradient exactly numpy's
    (the gradient of sum(w * sort(x)) is w scattered by the stable argsort permutation)."""
    import resource
    import time
    r = np.random.default_rng(5)
    x = r.integers(-5000, 5000, 200_000) * 0.5      # many ties: the stable order decides
    x[r.random(x.size) < 0.01] = np.nan             # nan last, as numpy
    w = r.standard_normal(x.size)
    start = time.perf_counter()
    np.testing.assert_array_equal(gradc.jit(gnp.sort, backend="numpy")(x), np.sort(x))
    order = np.argsort(x, kind="stable")
    np.testing.assert_array_equal(gradc.jit(gnp.argsort, backend="numpy")(x), order)
    g = gradc.grad(lambda x: gnp.sum(gnp.nan_to_num(gnp.sort(x)) * w), backend="numpy")(x)
    want = np.zeros_like(w)
    want[order] = np.where(np.isnan(np.sort(x)), 0.0, w)
    np.testing.assert_array_equal(g, want)
    assert time.perf_counter() - start < 20
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 4 * 2 ** 20     # KB: under 4 GB


def test_sort_under_vmap_matches_numpy(backend):
    x = np.random.default_rng(6).integers(0, 9, (5, 3, 40)) * 1.0
    np.testing.assert_array_equal(gradc.jit(gradc.vmap(lambda r: gnp.argsort(r, axis=-1)), backend=backend)(x),
                                  np.argsort(x, axis=-1, kind="stable"))


@pytest.mark.parametrize("axis", [0, -1, None])
def test_sort_and_argsort_descending_as_jax(backend, axis):
    """jnp.sort/argsort's ``descending=True``: the largest first, and equal values in
    their order (the lower index first: JAX's stable descending argsort), inside a
    trace and eagerly; the gradient of sum(w * sort(x, descending)) is w sent back
    along that permutation.  ``descending`` used to be swallowed by ``**kw`` and the
    result sorted ascending; an unknown keyword is now numpy's TypeError."""
    r = np.random.default_rng(8)
    x = r.integers(-3, 4, (6, 5)) * 1.0            # many ties
    w = r.standard_normal(x.size if axis is None else x.shape)
    flat = x.ravel() if axis is None else x
    ax = 0 if axis is None else axis
    n = flat.shape[ax]
    # the oracle: numpy's stable argsort of -x (ties in index order)
    order = np.argsort(-flat, axis=ax, kind="stable")
    for got in (gradc.jit(lambda x: gnp.argsort(x, axis=axis, descending=True))(x),
                gradc.jit(lambda x: x.argsort(axis=axis, descending=True, stable=True))(x),
                gnp.argsort(x, axis=axis, descending=True)):
        np.testing.assert_array_equal(got, order)
    want = np.take_along_axis(flat, order, axis=ax)
    np.testing.assert_array_equal(gradc.jit(lambda x: gnp.sort(x, axis=axis, descending=True))(x), want)
    np.testing.assert_array_equal(gnp.sort(x, axis=axis, descending=True), want)
    # the values' permutation is the ascending stable sort reversed, as JAX's (lax.rev of
    # lax.sort): among equal values the cotangent goes to the higher index first
    g = gradc.grad(lambda x, w: gnp.sum(gnp.sort(x, axis=axis, descending=True) * w))(x, w)
    want_g = np.zeros_like(flat)
    np.put_along_axis(want_g, np.flip(np.argsort(flat, axis=ax, kind="stable"), ax), w, axis=ax)
    np.testing.assert_array_equal(g, want_g.reshape(x.shape))
    assert n > 1
    with pytest.raises(TypeError, match="decending"):
        gradc.jit(lambda x: gnp.sort(x, decending=True))(x)
    jax = pytest.importorskip("jax")
    np.testing.assert_array_equal(gradc.jit(lambda x: gnp.argsort(x, axis=axis, descending=True))(x),
                                  jax.numpy.argsort(x, axis=axis, descending=True))
    np.testing.assert_allclose(g, jax.grad(lambda x, w: (jax.numpy.sort(x, axis=axis, descending=True) * w).sum())(x, w),
                               rtol=1e-6)      # (JAX in float32 unless x64 is on)


def test_bad_axes_are_shape_errors():
    x = np.ones((3, 4, 5))
    with pytest.raises(gradc.ShapeError, match="axis1 and axis2 cannot be the same"):
        gradc.jit(lambda x: gnp.diagonal(x, 0, 1, -2))(x)
    with pytest.raises(gradc.ShapeError, match="at least two axes, got rank 1"):
        gradc.jit(lambda x: gnp.diagonal(x))(np.ones(3))
    with pytest.raises(gradc.ShapeError, match="diag: input must be 1-d or 2-d, got rank 3"):
        gradc.jit(gnp.diag)(x)
    with pytest.raises(gradc.ShapeError, match="axis 3 is out of bounds for an array of rank 3"):
        gradc.jit(lambda x: gnp.sort(x, axis=3))(x)
