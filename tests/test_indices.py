"""numpy's index and count functions (gradc/ops/indices.py): nonzero, flatnonzero,
argwhere, one-argument where (with JAX's size= and fill_value= in a trace),
unravel_index, ravel_multi_index, histogram and histogram_bin_edges, against numpy on
every backend, at sizes where loops vectorize and split over threads, rank 3, ties at
the bin edges, float32 and integers; the gradients against closed forms and finite
differences."""
from __future__ import annotations

import numpy as onp
import pytest

import gradc
import gradc.numpy as np

from gradc_helpers import FD_ATOL, FD_RTOL, fd_grad

BACKENDS = ["numpy", "llvm", "c"]
rng = onp.random.default_rng(12)


def _padded(idx, size, fill):
    return onp.concatenate([idx[:size], onp.full(max(size - idx.size, 0), fill, idx.dtype)])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape,size", [((40, 50, 33), 40_000), ((40, 50, 33), 123), ((7,), 7), ((3, 4), 0)])
def test_nonzero_argwhere_where_against_numpy(backend, shape, size):
    x = rng.uniform(-1, 1, shape)
    x[x < -0.5] = 0.0                                   # about a quarter zeros
    f = gradc.jit(lambda x: (np.nonzero(x, size=size, fill_value=-1), np.argwhere(x, size=size),
                             np.where(x > 0.2, size=size), np.flatnonzero(x, size=size, fill_value=7)),
                  backend=backend)
    nz, aw, wh, fl = f(x)
    want = onp.nonzero(x)
    for g, w in zip(nz, want):
        assert g.dtype == onp.int64
        onp.testing.assert_array_equal(g, _padded(w, size, -1))
    onp.testing.assert_array_equal(aw, onp.stack([_padded(w, size, 0) for w in want], axis=-1).reshape(size, len(shape)))
    for g, w in zip(wh, onp.where(x > 0.2)):
        onp.testing.assert_array_equal(g, _padded(w, size, 0))
    onp.testing.assert_array_equal(fl, _padded(onp.flatnonzero(x), size, 7))


def test_nonzero_fill_per_axis_and_none_nonzero():
    f = gradc.jit(lambda x: np.nonzero(x, size=3, fill_value=(5, 6)))
    got = f(onp.zeros((2, 3)))
    onp.testing.assert_array_equal(got[0], [5, 5, 5])
    onp.testing.assert_array_equal(got[1], [6, 6, 6])
    got = f(onp.eye(2, 3))
    onp.testing.assert_array_equal(got[0], [0, 1, 5])
    onp.testing.assert_array_equal(got[1], [0, 1, 6])


def test_gradient_flows_through_the_selected_elements():
    """sum(x[nonzero(mask)]**2) over the first k selected: 2x there (a padded slot
    repeats index 0 with fill_value 0, so the mask keeps x[0] unselected here)."""
    x = rng.uniform(-1, 1, (60, 70))
    mask = x > 0.3
    k = int(mask.sum()) - 5

    def f(x):
        i, j = np.nonzero(mask, size=k)
        return np.sum(x[i, j] ** 2)
    g = gradc.grad(f)(x)
    sel = onp.zeros_like(x, dtype=bool)
    ii, jj = onp.nonzero(mask)
    sel[ii[:k], jj[:k]] = True
    onp.testing.assert_allclose(g, onp.where(sel, 2 * x, 0.0), rtol=1e-14)


def test_traced_nonzero_needs_size():
    with pytest.raises(gradc.UnsupportedError, match="size="):
        gradc.jit(lambda x: np.nonzero(x))(onp.ones(3))
    with pytest.raises(gradc.UnsupportedError, match="size="):
        gradc.jit(lambda x: np.where(x > 0))(onp.ones(3))
    with pytest.raises(gradc.UnsupportedError, match="distinct values.*size="):
        gradc.jit(lambda x: np.unique(x))(onp.ones(3))
    with pytest.raises(ValueError, match="both x and y"):
        gradc.jit(lambda x: np.where(x > 0, x))(onp.ones(3))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("order", ["C", "F"])
def test_unravel_and_ravel_multi_index(backend, order):
    shape = (13, 7, 5)
    flat = rng.integers(0, 13 * 7 * 5, 10_000)
    got = gradc.jit(lambda i: np.unravel_index(i, shape, order=order), backend=backend)(flat)
    for g, w in zip(got, onp.unravel_index(flat, shape, order=order)):
        onp.testing.assert_array_equal(g, w)
    back = gradc.jit(lambda a, b, c: np.ravel_multi_index((a, b, c), shape, mode="clip", order=order),
                     backend=backend)(*got)
    onp.testing.assert_array_equal(back, flat)
    wild = [rng.integers(-20, 20, 1000) for _ in shape]
    for mode in ("clip", "wrap"):
        got = gradc.jit(lambda a, b, c: np.ravel_multi_index((a, b, c), shape, mode=mode), backend=backend)(*wild)
        onp.testing.assert_array_equal(got, onp.ravel_multi_index(wild, shape, mode=mode))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [onp.float64, onp.float32, onp.int32])
def test_histogram_against_numpy(backend, dtype):
    x = (rng.standard_normal((30, 40, 33)) * 4).astype(dtype)          # 39,600 values
    edges = onp.array([-5.0, -1.0, 0.0, 0.5, 2.0, 9.0])
    x.flat[:6] = edges.astype(dtype)                                    # values exactly on edges
    for kw in ({"bins": 11}, {"bins": 8, "range": (-3, 3)}, {"bins": edges}, {"bins": 5, "range": (0, 0)}):
        c, e = gradc.jit(lambda x: np.histogram(x, **kw), backend=backend)(x)
        cw, ew = onp.histogram(x, **kw)
        assert c.dtype == cw.dtype and e.dtype == ew.dtype, (c.dtype, cw.dtype, e.dtype, ew.dtype)
        onp.testing.assert_array_equal(c, cw)
        onp.testing.assert_array_equal(e, ew)
        onp.testing.assert_array_equal(gradc.jit(lambda x: np.histogram_bin_edges(x, **kw), backend=backend)(x),
                                       onp.histogram_bin_edges(x, **kw))


@pytest.mark.parametrize("backend", BACKENDS)
def test_weighted_density_histogram_and_its_gradient(backend):
    x = rng.standard_normal(5000)
    w = rng.uniform(0, 1, 5000)
    v = rng.standard_normal(9)
    kw = {"bins": 9, "range": (-2, 2)}

    def f(x, w):
        return np.sum(np.histogram(x, weights=w, **kw)[0] * v)
    got = gradc.jit(lambda x, w: np.histogram(x, weights=w, density=True, **kw)[0], backend=backend)(x, w)
    onp.testing.assert_allclose(got, onp.histogram(x, weights=w, density=True, **kw)[0], rtol=1e-12)
    # d/dw sum(counts * v) = v[bin of x], 0 outside the range; d/dx = 0 (piecewise constant)
    gx, gw = gradc.grad(f, argnums=(0, 1), backend=backend)(x, w)
    b = onp.clip(onp.floor((x + 2) / 4 * 9).astype(int), 0, 8)
    onp.testing.assert_allclose(gw, onp.where(onp.abs(x) <= 2, v[b], 0.0), rtol=1e-14)
    onp.testing.assert_array_equal(gx, 0.0)
    # density with the range taken from the data: its edges follow min and max
    small = rng.standard_normal(40)

    def dens(x):
        return np.sum(np.histogram(x, bins=4, density=True)[0] * v[:4])
    g = gradc.grad(dens, backend=backend)(small)
    onp.testing.assert_allclose(g, fd_grad(lambda z: onp.sum(onp.histogram(z, bins=4, density=True)[0] * v[:4]),
                                           [small], 0), rtol=FD_RTOL, atol=FD_ATOL)


def test_histogram_weights_must_match():
    with pytest.raises(gradc.ShapeError, match="weights"):
        gradc.jit(lambda x, w: np.histogram(x, bins=3, weights=w)[0])(onp.ones(5), onp.ones(4))


def _unique_padded(x, size):
    """numpy's unique, padded as JAX pads: values with the smallest, first indices with
    its index, counts with 0."""
    u, i, inv, c = onp.unique(x, return_index=True, return_inverse=True, return_counts=True)
    pad = max(size - u.size, 0)
    return (onp.concatenate([u[:size], onp.full(pad, u[0])]), onp.concatenate([i[:size], onp.full(pad, i[0])]),
            inv, onp.concatenate([c[:size], onp.zeros(pad, c.dtype)]))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype,size", [(onp.float64, 40), (onp.float32, 7), (onp.int32, 40)])
def test_unique_against_numpy(backend, dtype, size):
    x = rng.integers(-9, 9, (3, 20, 11)).astype(dtype)       # 660 values, 18 distinct, many ties
    if dtype != onp.int32:
        x.flat[[5, 77, 300]] = onp.nan                     # numpy: the NaNs are one value (equal_nan)
    got = gradc.jit(lambda x: np.unique(x, return_index=True, return_inverse=True, return_counts=True, size=size),
                    backend=backend)(x)
    for g, w in zip(got, _unique_padded(x, size)):
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, w.shape, g.dtype, w.dtype)
        onp.testing.assert_array_equal(g, w)
    vals, counts = gradc.jit(lambda x: np.unique_counts(x, size=size), backend=backend)(x)
    onp.testing.assert_array_equal(counts, _unique_padded(x, size)[3])


def test_unique_gradient_goes_to_each_values_first_element():
    """d/dx sum(unique(x) * v): v[k] at the first (in sorted, stable order) element
    holding the k-th smallest value; ties give it to the earliest one."""
    x = onp.repeat(rng.standard_normal(30), 3)[rng.permutation(90)]
    v = rng.standard_normal(30)
    g = gradc.grad(lambda x: np.sum(np.unique(x, size=30) * v))(x)
    u, first = onp.unique(x, return_index=True)
    want = onp.zeros_like(x)
    want[first] = v
    onp.testing.assert_array_equal(g, want)


def test_unique_matches_jax_where_installed():
    jnp = pytest.importorskip("jax.numpy")
    import jax
    jax.config.update("jax_enable_x64", True)
    x = rng.integers(0, 5, 40).astype(onp.float64)
    got = gradc.jit(lambda x: np.unique(x, return_index=True, return_inverse=True, return_counts=True, size=8))(x)
    want = jnp.unique(x, return_index=True, return_inverse=True, return_counts=True, size=8)
    for g, w in zip(got, want):
        onp.testing.assert_array_equal(g, onp.asarray(w))
