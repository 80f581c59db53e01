"""grad / value_and_grad with ``allow_int=True`` (gradc/api_allow_int.py).

Oracle: the closed-form gradient of each model (numpy), and ``float0`` zeros of the
integer leaves' shapes; JAX's own results where it is installed.
"""
from __future__ import annotations

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp


def _loss(p, x):
    return gnp.sum(p["w"] ** 2 * x) * p["n"] + gnp.sum(gnp.where(p["mask"], p["b"], 0.0))


def _params():
    return {"w": np.arange(3.0), "n": np.int64(2), "b": np.array([1.0, 4.0]), "mask": np.array([True, False])}


def _check_float0(g, like):
    assert g.dtype == gradc.float0 and g.shape == np.shape(like)


@pytest.mark.parametrize("backend", ["llvm", "c", "numpy"])
def test_integer_leaves_get_float0_zeros(backend):
    p, x = _params(), np.full(3, 1.5)
    g = gradc.grad(_loss, allow_int=True, backend=backend)(p, x)
    np.testing.assert_allclose(g["w"], 2 * p["w"] * x * p["n"], rtol=1e-15)
    np.testing.assert_array_equal(g["b"], [1.0, 0.0])
    _check_float0(g["n"], p["n"])
    _check_float0(g["mask"], p["mask"])
    value, (gp, gx) = gradc.value_and_grad(_loss, argnums=(0, 1), allow_int=True, backend=backend)(p, x)
    assert value == pytest.approx(np.sum(p["w"] ** 2 * x) * 2 + 1.0, rel=1e-15)
    np.testing.assert_allclose(gx, p["w"] ** 2 * p["n"], rtol=1e-15)
    np.testing.assert_allclose(gp["w"], g["w"], rtol=1e-15)


def test_new_integer_values_reuse_the_compiled_function():
    f = gradc.grad(_loss, allow_int=True)
    p, x = _params(), np.full(3, 1.5)
    f(p, x)
    g = f(dict(p, n=np.int64(5), mask=np.array([False, True])), 2 * x)
    np.testing.assert_allclose(g["w"], 2 * p["w"] * 2 * x * 5, rtol=1e-15)
    np.testing.assert_array_equal(g["b"], [0.0, 1.0])
    assert len(f._by_structure) == 1


def test_python_ints_and_a_wholly_integer_argument():
    g = gradc.grad(lambda p: gnp.sum(p["w"]) * p["k"], allow_int=True)({"w": np.ones(2), "k": 3})
    np.testing.assert_array_equal(g["w"], [3.0, 3.0])
    _check_float0(g["k"], 3)
    gi = gradc.grad(lambda p, i: gnp.sum(p * i), argnums=1, allow_int=True)(np.ones(2), np.arange(2))
    _check_float0(gi, np.arange(2))


def test_has_aux_and_no_integers():
    def f(p, x):
        return gnp.sum(p["w"] * x), {"n": p["n"] + 1}
    g, aux = gradc.grad(f, has_aux=True, allow_int=True)(_params(), np.ones(3))
    np.testing.assert_array_equal(g["w"], np.ones(3))
    assert int(aux["n"]) == 3
    np.testing.assert_array_equal(gradc.grad(lambda w: gnp.sum(w ** 2), allow_int=True)(np.arange(3.0)), [0.0, 2.0, 4.0])


@pytest.mark.parametrize("backend", ["llvm", "c"])
def test_inside_jit_and_vmap(backend):
    """The float0 zeros are no outputs of the compiled function: the output's structure
    makes them after each call, in the leaf's shape (with the mapped axis under vmap,
    as JAX's).  Oracle: the closed-form gradient of the model, example by example."""
    f = gradc.grad(_loss, allow_int=True)
    p, x = _params(), np.full(3, 1.5)
    g = gradc.jit(f, backend=backend)(p, x)
    np.testing.assert_allclose(g["w"], 2 * p["w"] * x * p["n"], rtol=1e-15)
    np.testing.assert_array_equal(g["b"], [1.0, 0.0])
    _check_float0(g["n"], p["n"])
    _check_float0(g["mask"], p["mask"])
    g = gradc.jit(f, backend=backend)(dict(p, n=np.int64(5)), x)      # new integer values: the same kernel
    np.testing.assert_allclose(g["w"], 2 * p["w"] * x * 5, rtol=1e-15)
    xs = np.arange(12.0).reshape(4, 3)
    gv = gradc.jit(gradc.vmap(f, in_axes=(None, 0)), backend=backend)(p, xs)
    np.testing.assert_allclose(gv["w"], 2 * p["w"] * xs * p["n"], rtol=1e-15)
    assert gv["n"].dtype == gradc.float0 and gv["n"].shape == (4,) and gv["mask"].shape == (4, 2)
    ps = dict(p, n=np.arange(4), mask=np.ones((4, 2), bool), w=np.ones((4, 3)), b=np.ones((4, 2)))
    value, gm = gradc.vmap(gradc.value_and_grad(_loss, allow_int=True))(ps, xs)   # mapped integer leaves
    np.testing.assert_allclose(value, np.sum(xs, axis=1) * np.arange(4) + 2.0, rtol=1e-15)
    np.testing.assert_allclose(gm["w"], 2 * xs * np.arange(4)[:, None], rtol=1e-15)
    assert gm["n"].dtype == gradc.float0 and gm["n"].shape == (4,) and gm["mask"].shape == (4, 2)


def test_without_allow_int_an_integer_leaf_is_refused():
    with pytest.raises(gradc.ArgumentError, match=r"differentiated \(argnums\) but has dtype bool.*allow_int=True"):
        gradc.grad(_loss)(_params(), np.ones(3))


def test_matches_jax_where_installed():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    def jloss(p, x):
        return jnp.sum(p["w"] ** 2 * x) * p["n"] + jnp.sum(jnp.where(p["mask"], p["b"], 0.0))
    assert gradc.float0 == jax.dtypes.float0
    p, x = _params(), np.full(3, 1.5)
    want = jax.value_and_grad(jloss, argnums=(0, 1), allow_int=True)(p, x)
    got = gradc.value_and_grad(_loss, argnums=(0, 1), allow_int=True)(p, x)
    xs = np.arange(12.0).reshape(4, 3)
    want_v = jax.jit(jax.vmap(jax.grad(jloss, allow_int=True), in_axes=(None, 0)))(p, xs)
    got_v = gradc.jit(gradc.vmap(gradc.grad(_loss, allow_int=True), in_axes=(None, 0)))(p, xs)
    for a, b in zip(jax.tree_util.tree_leaves((want, want_v)), jax.tree_util.tree_leaves((got, got_v))):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape
        if a.dtype != gradc.float0:
            np.testing.assert_allclose(b, a, rtol=1e-15)
