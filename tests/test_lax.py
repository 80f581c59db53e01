"""gradc.lax against plain Python loops in numpy (the oracle), jax.lax's semantics:
scan (forward, reverse, length only, pytree carries and outputs) with its gradient
against finite differences, fori_loop, cond and switch on traced predicates (both
branches computed and selected; gradient of the selected one), map."""
from __future__ import annotations

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
from gradc import lax

from gradc_helpers import assert_fd_close, fd_grad

pytestmark = pytest.mark.usefixtures("core_backend")
r = np.random.default_rng(0)
W = r.standard_normal((4, 4)) * 0.4
U = r.standard_normal((3, 4)) * 0.4
XS = r.standard_normal((6, 5, 3))          # 6 steps of a (5, 3) batch


def _rnn_numpy(W, U, xs, reverse=False):
    h = np.zeros((xs.shape[1], 4))
    hs = [None] * len(xs)
    for t in (range(len(xs) - 1, -1, -1) if reverse else range(len(xs))):
        h = np.tanh(h @ W + xs[t] @ U)
        hs[t] = h
    return h, np.stack(hs)


@pytest.mark.parametrize("reverse", [False, True])
def test_scan_is_the_loop_and_differentiates(reverse):
    def rnn(W, U, xs):
        def step(h, x):
            h = gnp.tanh(h @ W + x @ U)
            return h, h
        return lax.scan(step, gnp.zeros((xs.shape[1], 4)), xs, reverse=reverse)
    h, hs = gradc.jit(rnn)(W, U, XS)
    wh, whs = _rnn_numpy(W, U, XS, reverse)
    np.testing.assert_allclose(h, wh, rtol=1e-13)
    np.testing.assert_allclose(hs, whs, rtol=1e-13)
    loss = lambda W, U: gnp.sum(rnn(W, U, XS)[1] ** 2)   # noqa: E731
    gW, gU = gradc.grad(loss, argnums=(0, 1))(W, U)
    ref = lambda W, U: float(np.sum(_rnn_numpy(W, U, XS, reverse)[1] ** 2))   # noqa: E731
    assert_fd_close(gW, fd_grad(ref, [W, U], 0))
    assert_fd_close(gU, fd_grad(ref, [W, U], 1))


def test_scan_with_pytrees_and_length_only():
    def f(p):
        def step(c, x):
            return {"s": c["s"] + x["a"] * p, "n": c["n"] + 1.0}, (c["s"], x["a"] * 2.0)
        return lax.scan(step, {"s": gnp.zeros(3), "n": 0.0}, {"a": gnp.reshape(gnp.arange(12.0), (4, 3))})
    carry, (prev, twice) = gradc.jit(f)(np.array(2.0))
    a = np.arange(12.0).reshape(4, 3)
    np.testing.assert_allclose(carry["s"], 2.0 * a.sum(0))
    assert float(carry["n"]) == 4.0
    np.testing.assert_allclose(prev, np.vstack([np.zeros(3), np.cumsum(2.0 * a, 0)[:-1]]))
    np.testing.assert_allclose(twice, 2.0 * a)
    c, ys = gradc.jit(lambda x: lax.scan(lambda c, _: (c * x, c), 1.0, None, length=5))(np.array(1.5))
    np.testing.assert_allclose(ys, 1.5 ** np.arange(5))
    np.testing.assert_allclose(c, 1.5 ** 5)


def test_fori_loop_and_while_loop_on_a_python_counter():
    f = gradc.grad(lambda x: lax.fori_loop(0, 5, lambda i, v: v * x + i, 1.0))
    # v5 = x^5 + 0 x^4 + 1 x^3 + 2 x^2 + 3 x + 4 -> 5x^4 + 3x^2 + 4x + 3
    x = 1.3
    assert f(x) == pytest.approx(5 * x ** 4 + 3 * x ** 2 + 4 * x + 3, rel=1e-13)
    g = gradc.jit(lambda x: lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * x), (0, 1.0))[1])
    assert float(g(np.array(2.0))) == 8.0
    # a condition on traced values is a native loop (tests/test_scan_native.py)
    assert float(gradc.jit(lambda x: lax.while_loop(lambda v: v < 10.0, lambda v: v * 2.0, x))(np.array(1.0))) == 16.0


def test_cond_and_switch_on_traced_predicates_select_and_differentiate():
    def f(x):
        return lax.cond(gnp.sum(x) > 0, lambda v: gnp.sin(v), lambda v: v ** 2, x)
    for x in (np.array([0.5, 1.0]), np.array([-0.5, -1.0])):
        want = np.sin(x) if x.sum() > 0 else x ** 2
        np.testing.assert_allclose(gradc.jit(f)(x), want, rtol=1e-15)
        np.testing.assert_allclose(gradc.grad(lambda v: gnp.sum(f(v)))(x),
                                   np.cos(x) if x.sum() > 0 else 2 * x, rtol=1e-14)
    branches = [lambda v: v + 1.0, lambda v: v * 3.0, lambda v: -v]
    s = gradc.jit(lambda i, v: lax.switch(i, branches, v))
    for i, want in [(0, 3.0), (1, 6.0), (2, -2.0), (7, -2.0), (-3, 3.0)]:
        assert float(s(np.array(i), np.array(2.0))) == want
    assert lax.switch(1, branches, 2.0) == 6.0 and lax.cond(False, lambda: 1, lambda: 2) == 2


def test_map_is_a_batched_map():
    got = gradc.jit(lambda xs: lax.map(lambda x: gnp.sum(x ** 2), xs))(XS[0])
    np.testing.assert_allclose(got, (XS[0] ** 2).sum(1), rtol=1e-14)
