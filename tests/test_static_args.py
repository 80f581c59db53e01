"""jit's static_argnums / static_argnames (gradc/static_args.py): Python values used
where the trace needs a Python value (a loop count, a slice bound, a name), one
compiled function per distinct value, against numpy and hand-written gradients."""
from __future__ import annotations

import functools

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp

rng = np.random.default_rng(4)


def deep(x, n_layers, act="tanh"):
    for _ in range(n_layers):
        x = gnp.tanh(x) if act == "tanh" else gnp.relu(x - 0.1)
    return gnp.sum(x * x)


def deep_np(x, n_layers, act="tanh"):
    for _ in range(n_layers):
        x = np.tanh(x) if act == "tanh" else np.maximum(x - 0.1, 0)
    return np.sum(x * x)


def deep_grad_np(x, n_layers, act="tanh"):
    hs = [x]
    for _ in range(n_layers):
        hs.append(np.tanh(hs[-1]) if act == "tanh" else np.maximum(hs[-1] - 0.1, 0))
    g = 2 * hs[-1]
    for h_in, h_out in zip(hs[-2::-1], hs[:0:-1]):
        g = g * ((1 - h_out ** 2) if act == "tanh" else (h_in - 0.1 > 0))
    return g


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_static_values_select_the_code_and_compile_once_each(dtype):
    x = rng.standard_normal((64, 33, 3)).astype(dtype)          # rank 3, loops split over threads
    f = gradc.jit(deep, static_argnums=1, static_argnames="act")
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for n, act in [(1, "tanh"), (3, "tanh"), (3, "relu"), (1, "tanh")]:
        got = f(x, n, act=act)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, deep_np(x.astype(np.float64), n, act), rtol=tol)
    assert len(f._cache) == 3                    # one compiled function per distinct static set
    assert f(x, 3, act="relu") == f(x, n_layers=3, act="relu")   # by position or by name: one value


@pytest.mark.parametrize("static", [(1,), (-2,)])
def test_jit_of_value_and_grad_binds_static_values(static):
    x = rng.standard_normal((200, 7))
    vg = gradc.jit(gradc.value_and_grad(deep), static_argnums=static)
    for n in (2, 4):
        v, g = vg(x, n)
        np.testing.assert_allclose(v, deep_np(x, n), rtol=1e-12)
        np.testing.assert_allclose(g, deep_grad_np(x, n), rtol=1e-10, atol=1e-12)
    w = rng.standard_normal(7)
    lin = gradc.jit(gradc.grad(lambda k, x, w: gnp.sum(x[:, :k] @ w[:k]), argnums=2), static_argnums=0)
    np.testing.assert_allclose(lin(3, x, w), np.concatenate([x[:, :3].sum(0), np.zeros(4)]), rtol=1e-12)


def test_static_argnames_as_a_decorator_and_a_shape():
    @functools.partial(gradc.jit, static_argnames=("k",))
    def head(x, k):
        return gnp.sum(x[:, :k] ** 2, axis=1)
    x = rng.standard_normal((50, 9))
    for k in (2, 9):
        np.testing.assert_allclose(head(x, k=k), np.sum(x[:, :k] ** 2, axis=1), rtol=1e-12)
    np.testing.assert_allclose(head(x, 4), np.sum(x[:, :4] ** 2, axis=1), rtol=1e-12)
    assert "x" in head.lower(x, k=3).graph.text()     # the input keeps the user's name


def test_static_argument_errors_are_clear():
    f = gradc.jit(deep, static_argnums=1)
    with pytest.raises(gradc.ArgumentError, match="static argument 1 must be hashable.*list"):
        f(np.ones(3), [1, 2])
    with pytest.raises(gradc.ArgumentError, match="not a parameter"):
        gradc.jit(deep, static_argnames="depth")
    with pytest.raises(gradc.ArgumentError, match="argument 0 is static"):
        gradc.jit(gradc.grad(deep), static_argnums=0)
    with pytest.raises(gradc.ArgumentError, match="argument 1 .* is a str"):
        gradc.jit(deep, static_argnums=1)(np.ones(3), 2, "relu")     # act is not static here


def test_a_traced_loop_count_suggests_static_argnames():
    with pytest.raises(gradc.TracerBoolError, match=r"argument 'n_layers'.*static_argnames=\('n_layers',\)"):
        gradc.jit(deep)(np.ones(3), 2)


def test_grad_of_a_jit_with_static_arguments_keeps_them_static():
    """grad(jit(f, static_argnums=1)) is jit(grad(f), static_argnums=1): the static
    argument reaches f as a Python int (JAX's grad leaves it alone too), so ``range(n)``
    works under the gradient."""
    x = rng.standard_normal((40, 5))
    f = gradc.jit(deep, static_argnums=1, static_argnames="act")
    for n, act in ((2, "tanh"), (3, "relu")):
        np.testing.assert_allclose(gradc.grad(f)(x, n, act=act), deep_grad_np(x, n, act), rtol=1e-10, atol=1e-12)
        v, g = gradc.value_and_grad(f)(x, n, act)
        np.testing.assert_allclose(v, deep_np(x, n, act), rtol=1e-12)
        np.testing.assert_allclose(g, deep_grad_np(x, n, act), rtol=1e-10, atol=1e-12)


def test_grad_keeps_str_bool_and_keyword_only_values_python_values():
    """As JAX's grad keeps the arguments it does not differentiate concrete: a str (an
    activation's name), a bool tested with ``if`` and a keyword-only Python value reach
    the function as themselves; a keyword-only array is an input; a number positional
    argument stays a traced input (one compile for every value)."""
    x = rng.standard_normal((30, 4))

    def loss(x, act, train, *, n=1, scale=None):
        h = deep(x, n, act)
        return h * 2.0 if train else h + gnp.sum(x * (0.0 if scale is None else scale))
    g = gradc.grad(loss)
    np.testing.assert_allclose(g(x, "relu", True, n=2), 2 * deep_grad_np(x, 2, "relu"), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g(x, "tanh", False, n=3), deep_grad_np(x, 3), rtol=1e-10, atol=1e-12)
    s = rng.standard_normal((30, 4))
    np.testing.assert_allclose(g(x, "tanh", False, scale=s), deep_grad_np(x, 1) + s, rtol=1e-10, atol=1e-12)
    v, gv = gradc.value_and_grad(loss)(x, act="tanh", train=True)
    np.testing.assert_allclose(v, 2 * deep_np(x, 1), rtol=1e-12)
    np.testing.assert_allclose(gv, 2 * deep_grad_np(x, 1), rtol=1e-10, atol=1e-12)
    with pytest.raises(gradc.ArgumentError, match=r"argument 1 \(act\) is a str"):
        gradc.grad(loss, argnums=(0, 1))(x, "tanh", True)


def test_jit_accepts_jax_donation_and_inlining_hints():
    x = rng.standard_normal(6)
    x0 = x.copy()
    for kw in ({"donate_argnums": 0}, {"donate_argnames": "x"}, {"inline": True}, {"keep_unused": True}):
        f = gradc.jit(lambda x: gnp.sin(x) * 2, **kw)
        np.testing.assert_allclose(f(x), np.sin(x) * 2, rtol=1e-15)
    np.testing.assert_array_equal(x, x0)       # nothing is donated: the argument is intact
