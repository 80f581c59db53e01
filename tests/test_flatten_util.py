"""gradc.flatten_util.ravel_pytree: numpy's concatenation of the raveled leaves as the
oracle, the round trip, gradients through unravel, and JAX's where installed."""
from __future__ import annotations

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
from gradc.errors import ArgumentError
from gradc.flatten_util import ravel_pytree

TREE = {"w": np.arange(6.0).reshape(2, 3), "b": np.float32(2.5), "layers": (np.ones((2, 2), np.float32), None)}


def test_round_trip_and_order():
    flat, unravel = ravel_pytree(TREE)
    leaves = gradc.tree_util.tree_leaves(TREE)
    np.testing.assert_array_equal(flat, np.concatenate([np.ravel(x).astype(np.float64) for x in leaves]))
    assert flat.dtype == np.float64
    back = unravel(flat)
    assert back["b"].dtype == np.float32 and back["layers"][1] is None
    np.testing.assert_array_equal(back["w"], TREE["w"])
    np.testing.assert_array_equal(back["layers"][0], TREE["layers"][0])
    with pytest.raises(ArgumentError, match=r"expected a vector of shape \(11,\)"):
        unravel(flat[:5])
    with pytest.raises(ArgumentError, match="expected a vector of dtype float64, got float32"):
        unravel(flat.astype(np.float32))


def test_gradient_through_unravel_and_inside_jit():
    """d/dflat of sum(sin(w)) * b: cos(w) * b on w's entries, sum(sin(w)) on b's."""
    flat, unravel = ravel_pytree(TREE)

    def f(v):
        p = unravel(v)
        return gnp.sum(gnp.sin(p["w"])) * p["b"] + gnp.sum(p["layers"][0] ** 2)
    g = gradc.grad(f)(flat)
    want = np.concatenate([[np.sum(np.sin(TREE["w"]))], 2.0 * np.ones(4), (np.cos(TREE["w"]) * 2.5).ravel()])
    np.testing.assert_allclose(g, want, rtol=1e-6)       # b and layers are float32 leaves
    np.testing.assert_array_equal(gradc.jit(lambda t: ravel_pytree(t)[0])(TREE), flat)


def test_matches_jax_where_installed():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    from jax.flatten_util import ravel_pytree as jax_ravel
    tree = {"w": TREE["w"], "b": np.float64(2.5), "c": [np.ones(3), np.zeros((1, 2))]}
    np.testing.assert_array_equal(ravel_pytree(tree)[0], np.asarray(jax_ravel(tree)[0]))
