"""lax.while_loop whose condition depends on traced values: a native loop of the
condition's and the body's kernels (gradc/control_flow.py, the ``while`` op in
gradc/ops/scan.py), checked against the same loop in numpy on every backend, its
forward-mode derivative against closed forms and finite differences, vmap against the
examples one by one, and reverse mode refused with a clear error (as in JAX)."""
from __future__ import annotations

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
from gradc import lax

R = np.random.default_rng(11)


def newton_sqrt(a):
    """x -> (x + a/x)/2 until |x^2 - a| <= 1e-12 everywhere (at most 100 steps)."""
    def cond(c):
        x, k = c
        return (gnp.max(gnp.abs(x * x - a)) > 1e-12) & (k < 100)
    x, k = lax.while_loop(cond, lambda c: (0.5 * (c[0] + a / c[0]), c[1] + 1), (gnp.ones_like(a), np.int64(0)))
    return x, k


def newton_sqrt_numpy(a):
    x, k = np.ones_like(a), 0
    while np.max(np.abs(x * x - a)) > 1e-12 and k < 100:
        x, k = 0.5 * (x + a / x), k + 1
    return x, k


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
@pytest.mark.parametrize("shape", [(3,), (2, 3, 4)])
def test_newton_runs_until_its_condition_fails(backend, shape):
    a = R.uniform(0.1, 50.0, shape)
    x, k = gradc.jit(newton_sqrt, backend=backend)(a)
    x_ref, k_ref = newton_sqrt_numpy(a)
    assert int(k) == k_ref and 3 < k_ref < 100
    np.testing.assert_allclose(x, x_ref, rtol=1e-15)


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
def test_a_condition_false_at_once_returns_the_initial_carry(backend):
    f = gradc.jit(lambda x: lax.while_loop(lambda v: gnp.sum(v) < 0.0, lambda v: v * 2.0, x), backend=backend)
    np.testing.assert_array_equal(f(np.array([1.0, 2.0])), [1.0, 2.0])


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
def test_a_bool_carried_as_the_condition(backend):
    # the condition returns one of the carry's leaves as it is
    def f(x):
        def body(c):
            go, v = c
            v = v * 1.5
            return gnp.sum(v) < 100.0, v
        return lax.while_loop(lambda c: c[0], body, (gnp.sum(x) < 100.0, x))[1]
    x = np.array([1.0, 2.0])
    v = x.copy()
    while v.sum() < 100.0:
        v = v * 1.5
    np.testing.assert_allclose(gradc.jit(f, backend=backend)(x), v, rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_mode_is_the_tangent_of_the_loop(dtype):
    a = np.array([2.0, 9.0, 0.25, 30.0], dtype)
    f = lambda a: newton_sqrt(a)[0]       # noqa: E731
    t = R.normal(size=4).astype(dtype)
    _, tan = gradc.jvp(f, (a,), (t,))
    # the loop converged: the tangent of sqrt(a), which Newton's map reproduces
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(tan, t * 0.5 / np.sqrt(a.astype(np.float64)), rtol=rtol)
    J = gradc.jacfwd(lambda a: gnp.sum(newton_sqrt(a)[0] ** 2))(a.astype(np.float64))
    np.testing.assert_allclose(J, np.ones(4), rtol=1e-9)


def test_forward_mode_of_a_loop_with_a_fixed_count_matches_finite_differences():
    W = R.normal(size=(3, 3)) * 0.4

    def f(W):
        return lax.while_loop(lambda c: c[1] < 6, lambda c: (gnp.tanh(c[0] @ W + 0.1), c[1] + 1),
                              (gnp.ones(3), np.int64(0)))[0].sum()
    dW = R.normal(size=(3, 3))
    _, tan = gradc.jvp(f, (W,), (dW,))

    def f_numpy(W):
        v = np.ones(3)
        for _ in range(6):
            v = np.tanh(v @ W + 0.1)
        return v.sum()
    h = 1e-6
    assert tan == pytest.approx((f_numpy(W + h * dW) - f_numpy(W - h * dW)) / (2 * h), rel=1e-7)


def test_reverse_mode_is_refused_with_the_reason():
    with pytest.raises(gradc.UnsupportedError, match="reverse-mode differentiation of lax.while_loop"):
        gradc.grad(lambda a: gnp.sum(newton_sqrt(a)[0]))(np.array([2.0, 3.0]))


def test_reverse_mode_through_the_loop_of_an_argument_it_does_not_read_is_zero():
    def f(a, b):
        return gnp.sum(newton_sqrt(a)[0]) * 0.0 + gnp.sum(b ** 2)
    np.testing.assert_allclose(gradc.grad(f, argnums=1)(np.array([2.0]), np.array([3.0])), [6.0])


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
def test_vmap_runs_until_every_example_is_done(backend):
    A = R.uniform(0.1, 400.0, (5, 3))
    X, K = gradc.jit(gradc.vmap(newton_sqrt), backend=backend)(A)
    for b in range(5):
        x_ref, k_ref = newton_sqrt_numpy(A[b])
        np.testing.assert_allclose(X[b], x_ref, rtol=1e-15)
        assert int(K[b]) == k_ref        # each example stops at its own count


def test_vmap_with_a_batched_bound_and_a_shared_start():
    f = gradc.vmap(lambda lim: lax.while_loop(lambda v: v < lim, lambda v: v * 3.0, np.float64(1.0)))
    np.testing.assert_array_equal(f(np.array([0.5, 2.0, 10.0, 100.0])), [1.0, 3.0, 27.0, 243.0])


def test_a_scan_in_the_body_and_closures_in_both():
    W = R.normal(size=(4, 4)) * 0.3
    xs = R.normal(size=(6, 4))

    def f(W, xs, tol):
        def body(c):
            h, k = c
            h, _ = lax.scan(lambda h, x: (gnp.tanh(h @ W + x), None), h, xs)
            return h, k + 1
        return lax.while_loop(lambda c: (gnp.max(gnp.abs(c[0])) > tol) & (c[1] < 20), body,
                              (gnp.ones(4), np.int64(0)))

    def f_numpy(W, xs, tol):
        h, k = np.ones(4), 0
        while np.max(np.abs(h)) > tol and k < 20:
            for x in xs:
                h = np.tanh(h @ W + x)
            k += 1
        return h, k
    for backend in ("numpy", "llvm", "c"):
        h, k = gradc.jit(f, backend=backend)(W, xs, np.array(0.5))
        h_ref, k_ref = f_numpy(W, xs, 0.5)
        assert int(k) == k_ref
        np.testing.assert_allclose(h, h_ref, rtol=1e-13)


def test_a_condition_that_is_not_a_bool_scalar_is_refused():
    with pytest.raises(gradc.GradcError, match="condition must return a bool scalar"):
        gradc.jit(lambda x: lax.while_loop(lambda v: v < 3.0, lambda v: v + 1.0, x))(np.zeros(2))


def test_debug_nans_names_the_bodys_node():
    f = gradc.jit(lambda x: lax.while_loop(lambda v: v < 5.0, lambda v: gnp.sqrt(v - 2.0) + v + 1.0, x),
                  debug_nans=True)
    with pytest.raises(gradc.NonFiniteError, match=r"in step 0 of a while_loop's body: forward node .* = sqrt"):
        f(np.array(1.0))


def test_a_body_that_changes_the_carry_is_refused():
    with pytest.raises(gradc.ArgumentError, match=r"while_loop: the carry's leaf carry has shape \(2,\) before the body"):
        gradc.jit(lambda x: lax.while_loop(lambda v: gnp.sum(v) < 3.0, lambda v: gnp.stack([v, v]), x))(np.zeros(2))
    with pytest.raises(gradc.ArgumentError, match="while_loop: the body returns a carry of structure"):
        gradc.jit(lambda x: lax.while_loop(lambda v: gnp.sum(v) < 3.0, lambda v: (v, v), x))(np.zeros(2))
