"""Collectives over a vmap's named axis (gradc/ops/collectives.py): psum, pmean, pmax,
pmin, axis_index and axis_size inside ``vmap(f, axis_name=...)``.

Oracles: the same computation written over the whole batch in numpy (a psum is a sum
over the batch axis, the same for every example); gradients against finite differences
of that numpy function; JAX where installed.
"""
from __future__ import annotations

import numpy as np
import pytest

import gradc
import gradc.lax as lax
import gradc.numpy as gnp
from gradc_helpers import FD_ATOL, FD_RTOL, fd_grad

rng = np.random.default_rng(11)


def _per_example(x, w):
    m = lax.pmean(x, "b")
    s = lax.psum(x * w, "b")
    return gnp.sum((x - m) ** 2) / gnp.sum(s ** 2) + gnp.sum(lax.pmax(x, "b") - lax.pmin(x, "b")) * 0.25 \
        + lax.axis_index("b") * 0.5 + lax.psum(gnp.sum(w), "b")


def _np_batch(X, w):
    m, s = X.mean(0), (X * w).sum(0)
    n = len(X)
    return np.sum((X - m) ** 2, axis=1) / np.sum(s ** 2) + np.sum(X.max(0) - X.min(0)) * 0.25 \
        + np.arange(n) * 0.5 + n * np.sum(w)


@pytest.mark.parametrize("backend", ["llvm", "c"])
@pytest.mark.parametrize("n", [5, 3000])
def test_collectives_are_reductions_over_the_batch(n, backend):
    X, w = rng.standard_normal((n, 3)), rng.standard_normal(3)
    got = gradc.jit(gradc.vmap(_per_example, in_axes=(0, None), axis_name="b"), backend=backend)(X, w)
    np.testing.assert_allclose(got, _np_batch(X, w), rtol=1e-12)


def test_gradients_of_and_under_vmap():
    """grad of the batch's sum, and vmap of the per-example grad, which for a psum's
    coupling is the same (psum's derivative is a psum of the cotangents, as JAX's)."""
    X, w = rng.standard_normal((6, 3)), rng.standard_normal(3)

    def f(x, w):
        return gnp.sum((x - lax.pmean(x, "b")) ** 2) / gnp.sum(lax.psum(x * w, "b") ** 2) + lax.psum(gnp.sum(w * x), "b")

    def np_total(X, w):
        m, s = X.mean(0), (X * w).sum(0)
        return np.sum(np.sum((X - m) ** 2, axis=1) / np.sum(s ** 2) + np.sum(w * X))
    gx, gw = gradc.grad(lambda X, w: gnp.sum(gradc.vmap(f, in_axes=(0, None), axis_name="b")(X, w)),
                        argnums=(0, 1))(X, w)
    np.testing.assert_allclose(gx, fd_grad(np_total, [X, w], 0), rtol=FD_RTOL, atol=FD_ATOL)
    np.testing.assert_allclose(gw, fd_grad(np_total, [X, w], 1), rtol=FD_RTOL, atol=FD_ATOL)
    per = gradc.vmap(gradc.grad(f), in_axes=(0, None), axis_name="b")(X, w)
    np.testing.assert_allclose(per, gx, rtol=1e-12)


def test_nested_vmaps_reduce_over_their_own_axes():
    Y = rng.standard_normal((4, 5, 3))

    def inner(x):
        return x - lax.pmean(x, "i") + 0.1 * lax.psum(x, "o") + lax.axis_size("i")
    got = gradc.vmap(gradc.vmap(inner, axis_name="i"), axis_name="o")(Y)
    want = Y - Y.mean(1, keepdims=True) + 0.1 * Y.sum(0, keepdims=True) + 5
    np.testing.assert_allclose(got, want, rtol=1e-13)


def test_pytrees_and_unbound_names():
    X = rng.standard_normal((4, 3))
    got = gradc.vmap(lambda x: lax.psum({"a": x, "b": (2 * x,)}, "b"), axis_name="b")(X)
    np.testing.assert_allclose(got["a"], np.broadcast_to(X.sum(0), X.shape), rtol=1e-14)
    np.testing.assert_allclose(got["b"][0], np.broadcast_to(2 * X.sum(0), X.shape), rtol=1e-14)
    with pytest.raises(gradc.ArgumentError, match="unbound axis name 'z'"):
        gradc.jit(lambda x: lax.psum(x, "z"))(X)
    with pytest.raises(gradc.ArgumentError, match="unbound axis name 'c'"):
        gradc.vmap(lambda x: lax.pmean(x, "c"), axis_name="b")(X)
    # batched, pmax is a max over the batch and differentiates as one; its per-example
    # derivative (vmap of grad) is not defined
    g = gradc.grad(lambda X: gnp.sum(gradc.vmap(lambda x: lax.pmax(x, "b"), axis_name="b")(X)))(X)
    np.testing.assert_array_equal(g, 4.0 * (X == X.max(0)))
    with pytest.raises(gradc.UnsupportedError, match="no derivative"):
        gradc.vmap(gradc.grad(lambda x: gnp.sum(lax.pmax(x, "b"))), axis_name="b")(X)


def test_matches_jax_where_installed():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    X, w = rng.standard_normal((5, 3)), rng.standard_normal(3)

    def jf(x, w):
        return jax.numpy.sum((x - jax.lax.pmean(x, "b")) ** 2) / jax.numpy.sum(jax.lax.psum(x * w, "b") ** 2) \
            + jax.lax.axis_index("b") * 0.5
    def gf(x, w):
        return gnp.sum((x - lax.pmean(x, "b")) ** 2) / gnp.sum(lax.psum(x * w, "b") ** 2) + lax.axis_index("b") * 0.5
    want = jax.vmap(jax.grad(jf, argnums=(0, 1)), in_axes=(0, None), axis_name="b")(X, w)
    got = gradc.vmap(gradc.grad(gf, argnums=(0, 1)), in_axes=(0, None), axis_name="b")(X, w)
    for a, b in zip(want, got):
        np.testing.assert_allclose(b, np.asarray(a), rtol=1e-12)
