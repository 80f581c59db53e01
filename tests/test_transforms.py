"""The transformations and their composition: grad (argnums), value_and_grad, jvp, vjp
(tuple outputs), jacobian (layout, diagonal detection), hessian, hvp, grad(grad),
jacobian(grad), jit(grad), closures over traced values, caching, dtypes.

Oracles: closed forms evaluated in numpy, and finite differences of numpy functions
(tolerances: see gradc_helpers)."""
from __future__ import annotations

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp

from gradc_helpers import assert_fd_close, fd_grad, fd_jacobian

pytestmark = pytest.mark.usefixtures("core_backend")

RTOL = ATOL = 1e-12   # exact derivative programs vs closed forms: float64 rounding only
r = np.random.default_rng(0)
A = r.standard_normal((4, 4))
B = r.standard_normal((3, 4))
X0 = r.standard_normal(4)
Y0 = r.standard_normal(4)


def close(got, want, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol, atol=atol)


def f3(x, y, c):
    return gnp.sum(gnp.sin(x) * y ** 2) + c * gnp.sum(x)


# ----------------------------------------------------------------------------- grad / value_and_grad
def test_grad_argnums_int():
    close(gradc.grad(f3)(X0, Y0, 2.0), np.cos(X0) * Y0 ** 2 + 2.0)
    close(gradc.grad(f3, argnums=1)(X0, Y0, 2.0), 2 * np.sin(X0) * Y0)
    close(gradc.grad(f3, argnums=2)(X0, Y0, 2.0), X0.sum())
    close(gradc.grad(f3, argnums=-1)(X0, Y0, 2.0), X0.sum())


def test_grad_argnums_tuple():
    g = gradc.grad(f3, argnums=(0, 2))(X0, Y0, 2.0)
    assert isinstance(g, tuple) and len(g) == 2
    close(g[0], np.cos(X0) * Y0 ** 2 + 2.0)
    close(g[1], X0.sum())
    (g1,) = gradc.grad(f3, argnums=(1,))(X0, Y0, 2.0)
    close(g1, 2 * np.sin(X0) * Y0)


def test_value_and_grad():
    val, g = gradc.value_and_grad(f3)(X0, Y0, 2.0)
    close(val, np.sum(np.sin(X0) * Y0 ** 2) + 2 * X0.sum())
    close(g, np.cos(X0) * Y0 ** 2 + 2.0)
    val, (gx, gy) = gradc.value_and_grad(f3, argnums=(0, 1))(X0, Y0, 2.0)
    close(gy, 2 * np.sin(X0) * Y0)


def test_grad_keyword_argument():
    close(gradc.grad(f3)(X0, Y0, c=2.0), gradc.grad(f3)(X0, Y0, 2.0))


def test_grad_with_static_default():
    def f(x, scale=3.0):
        return gnp.sum(x ** 2) * scale
    close(gradc.grad(f)(X0), 6 * X0)


def test_grad_of_integer_argument_is_an_error():
    """JAX's rule (issue 16): the gradient w.r.t. an integer or bool array is not
    defined, so asking for one is an error naming the argument, not a silent cast."""
    f = lambda x, k: gnp.sum(x ** 3) * k      # noqa: E731
    for bad in (np.array([1, 2, 3]), np.array([True, False, True]), np.array([1, 2, 3], np.uint8)):
        with pytest.raises(gradc.ArgumentError, match=rf"argument 0 \(x\) is differentiated.*{bad.dtype}"):
            gradc.grad(f)(bad, 2.0)
    with pytest.raises(gradc.ArgumentError, match=r"argument 1 \(k\) is differentiated.*int64"):
        gradc.value_and_grad(f, argnums=(0, 1))(X0, np.array(2))
    with pytest.raises(gradc.ArgumentError, match=r"argument 0 \(x\).*int64"):
        gradc.jacobian(lambda x: x * 2.0)(np.array([1, 2]))
    # an integer argument that is not differentiated is fine, and a Python number
    # (weakly typed, as a literal) takes the float dtype
    close(gradc.grad(f)(X0, np.array(2)), 6 * X0 ** 2)
    close(gradc.grad(lambda x: x ** 3)(2), 12.0)


# ----------------------------------------------------------------------------- jvp / vjp
def test_jvp_single_and_multiple_primals():
    t = r.standard_normal(4)
    val, tan = gradc.jvp(lambda x: gnp.sin(B @ x), (X0,), (t,))
    close(val, np.sin(B @ X0))
    close(tan, np.cos(B @ X0) * (B @ t))
    tx, ty = r.standard_normal(4), r.standard_normal(4)
    val, tan = gradc.jvp(lambda x, y: x * y + gnp.exp(x), (X0, Y0), (tx, ty))
    close(tan, tx * Y0 + X0 * ty + np.exp(X0) * tx)


def test_jvp_tuple_output():
    t = r.standard_normal(4)
    (a, b), (ta, tb) = gradc.jvp(lambda x: (gnp.sum(x ** 2), gnp.exp(x)), (X0,), (t,))
    close(a, np.sum(X0 ** 2))
    close(ta, 2 * X0 @ t)
    close(tb, np.exp(X0) * t)


def test_vjp_single_output():
    ct = r.standard_normal(3)
    out, vjp_fn = gradc.vjp(lambda x: gnp.tanh(B @ x), X0)
    close(out, np.tanh(B @ X0))
    (g,) = vjp_fn(ct)
    close(g, B.T @ ((1 - np.tanh(B @ X0) ** 2) * ct))


def test_vjp_tuple_outputs():
    def f(x, y):
        return x * y, gnp.sum(gnp.exp(x))
    out, vjp_fn = gradc.vjp(f, X0, Y0)
    assert isinstance(out, tuple) and len(out) == 2
    c0, c1 = r.standard_normal(4), 0.7
    gx, gy = vjp_fn(c0, np.float64(c1))
    close(gx, c0 * Y0 + c1 * np.exp(X0))
    close(gy, c0 * X0)
    gx2, gy2 = vjp_fn((c0, np.float64(c1)))          # a tuple of cotangents works too
    close(gx2, gx)
    close(gy2, gy)


# ----------------------------------------------------------------------------- jacobian
def test_jacobian_numerator_layout_and_shape():
    C = r.standard_normal((2, 3))

    def f(x):                                   # R^4 -> R^{2x3}
        return gnp.sin(gnp.sum(x) * C) + x[0] * C
    J = gradc.jacobian(f)(X0)
    assert J.shape == (2, 3, 4)
    close(J, fd_jacobian(lambda x: np.sin(np.sum(x) * C) + x[0] * C, X0), rtol=1e-6, atol=1e-6)

    M = r.standard_normal((3, 2))
    J = gradc.jacobian(lambda M: M @ np.array([1.0, -2.0]))(M)       # (3,) wrt (3,2)
    assert J.shape == (3, 3, 2)
    want = np.zeros((3, 3, 2))
    for i in range(3):
        want[i, i] = [1.0, -2.0]
    close(J, want)
    # scalar output wrt vector: the gradient; vector wrt scalar: a column
    close(gradc.jacobian(lambda x: gnp.sum(x ** 2))(X0), 2 * X0)
    close(gradc.jacobian(lambda s: s * X0)(1.5), X0)


def test_jacobian_argnums_tuple():
    Jx, Jy = gradc.jacobian(lambda x, y: B @ (x * y), argnums=(0, 1))(X0, Y0)
    close(Jx, B * Y0)
    close(Jy, B * X0)


def test_jacobian_diagonal_detection():
    lo = gradc.jacobian(lambda x: gnp.exp(gnp.sin(x)) * 2.0 + x).lower(X0)
    assert any("diagonal" in n and "dense" not in n for n in lo.graph.notes), lo.graph.notes
    lo = gradc.jacobian(lambda x: gnp.sin(B @ x)).lower(X0)
    assert not any("is diagonal" in n for n in lo.graph.notes), lo.graph.notes
    assert any("dense" in n for n in lo.graph.notes)
    # a reduction breaks the diagonal condition even when shapes match
    lo = gradc.jacobian(lambda x: x - gnp.mean(x)).lower(X0)
    assert not any("is diagonal" in n for n in lo.graph.notes)
    close(gradc.jacobian(lambda x: x - gnp.mean(x))(X0), np.eye(4) - 1 / 4)


def test_diagonal_jacobian_values():
    J = gradc.jacobian(lambda x: gnp.exp(gnp.sin(x)) * 2.0 + x)(X0)
    close(J, np.diag(2 * np.exp(np.sin(X0)) * np.cos(X0) + 1))
    M = r.standard_normal((2, 3))
    J = gradc.jacobian(gnp.tanh)(M)
    want = np.zeros((2, 3, 2, 3))
    for i in range(2):
        for j in range(3):
            want[i, j, i, j] = 1 - np.tanh(M[i, j]) ** 2
    close(J, want)


# ----------------------------------------------------------------------------- higher order
@pytest.mark.parametrize("n_in,n_out", [(3, 40), (40, 3), (25, 25)])
def test_dense_jacobian_by_the_cheaper_mode_in_one_graph(n_in, n_out):
    """Fewer inputs than outputs: forward mode over the unit tangents (columns);
    otherwise reverse mode over the unit cotangents (rows).  Either way one graph whose
    size does not grow with the Jacobian's (no pass per element), against finite
    differences."""
    rr = np.random.default_rng(n_in)
    A = rr.standard_normal((n_out, n_in)) / np.sqrt(n_in)
    c = rr.standard_normal(n_out)
    f = lambda x: gnp.tanh(A @ gnp.sin(x)) * c + gnp.sum(x ** 2)   # noqa: E731
    x = rr.standard_normal(n_in)
    J = gradc.jacobian(f)(x)
    assert J.shape == (n_out, n_in)
    assert_fd_close(J, fd_jacobian(lambda v: np.tanh(A @ np.sin(v)) * c + np.sum(v ** 2), x))
    lo = gradc.jacobian(f).lower(x)
    mode = "forward" if n_in < n_out else "reverse"
    assert any(f"by {mode} mode" in n for n in lo.graph.notes), lo.graph.notes
    assert len(lo.graph.nx) < 40


@pytest.mark.parametrize("threads", ["1", "2"])
def test_hessian_of_logistic_regression_at_500_parameters(threads, monkeypatch):
    """The Hessian of the mean logistic loss, Xᵀ diag(p (1 - p)) X / n, over 500
    parameters (a 500 x 500 result from one graph, split over threads)."""
    monkeypatch.setenv("GRADC_NUM_THREADS", threads)
    rr = np.random.default_rng(5)
    X = rr.standard_normal((300, 500)) / 10
    y = np.where(rr.random(300) < 0.5, -1.0, 1.0)
    w = rr.standard_normal(500) / 10
    H = gradc.hessian(lambda w, X, y: gnp.mean(gnp.log1p(gnp.exp(-y * (X @ w)))))(w, X, y)
    p = 1 / (1 + np.exp(-y * (X @ w)))
    want = X.T @ (X * (p * (1 - p))[:, None]) / 300
    np.testing.assert_allclose(H, want, rtol=0, atol=1e-13 * np.abs(want).max())


def test_hessian_quadratic_form():
    close(gradc.hessian(lambda x: x @ A @ x)(X0), A + A.T)


def test_hessian_vs_finite_differences_of_gradient():
    def f(x):
        return gnp.sum(gnp.exp(B @ x)) + gnp.sum(gnp.sin(x) ** 2)

    def grad_np(x):
        return B.T @ np.exp(B @ x) + 2 * np.sin(x) * np.cos(x)
    H = gradc.hessian(f)(X0)
    close(H, fd_jacobian(grad_np, X0), rtol=1e-6, atol=1e-6)
    close(H, H.T, rtol=1e-12, atol=1e-12)


def test_grad_of_grad_scalar():
    def f(x):
        return x ** 3 * gnp.sin(x)
    for x in [-1.3, 0.4, 2.2]:
        want = 6 * x * np.sin(x) + 6 * x ** 2 * np.cos(x) - x ** 3 * np.sin(x)
        close(gradc.grad(gradc.grad(f))(x), want)


def test_third_derivative():
    for x in [-1.3, 0.4]:
        close(gradc.grad(gradc.grad(gradc.grad(lambda x: gnp.exp(2 * x) * x)))(x),
              np.exp(2 * x) * (8 * x + 12))


def test_jacobian_of_grad_is_hessian():
    def f(x):
        return gnp.sum(gnp.tanh(B @ x) ** 2)
    H1 = gradc.jacobian(gradc.grad(f))(X0)
    H2 = gradc.hessian(f)(X0)
    close(H1, H2)
    assert H1.shape == (4, 4)


def test_jit_of_grad():
    def f(x):
        return gnp.sum(gnp.log1p(x ** 2))
    close(gradc.jit(gradc.grad(f))(X0), 2 * X0 / (1 + X0 ** 2))
    close(gradc.jit(gradc.value_and_grad(f))(X0)[1], 2 * X0 / (1 + X0 ** 2))


def test_grad_of_jit():
    f = gradc.jit(lambda x: gnp.sum(gnp.sin(x)))
    close(gradc.grad(lambda x: f(x) * 2.0)(X0), 2 * np.cos(X0))


def test_hvp_matches_hessian_times_v():
    def f(x):
        return gnp.sum(gnp.exp(B @ x)) + (x @ A @ x)
    v = r.standard_normal(4)
    H = gradc.hessian(f)(X0)
    close(gradc.hvp(f, (X0,), (v,)), H @ v, rtol=1e-10, atol=1e-10)
    want = B.T @ (np.exp(B @ X0) * (B @ v)) + (A + A.T) @ v
    close(gradc.hvp(f, (X0,), (v,)), want, rtol=1e-10, atol=1e-10)


def test_hvp_two_arguments():
    def f(x, y):
        return gnp.sum(x ** 2 * y)
    vx, vy = r.standard_normal(4), r.standard_normal(4)
    hx, hy = gradc.hvp(f, (X0, Y0), (vx, vy))
    # H = [[diag(2y), diag(2x)], [diag(2x), 0]]
    close(hx, 2 * Y0 * vx + 2 * X0 * vy)
    close(hy, 2 * X0 * vx)


# ----------------------------------------------------------------------------- closures
def test_closure_over_outer_traced_value():
    """The inner grad closes over y, a value traced by the outer grad."""
    x0 = np.array([0.5, -1.0, 2.0])

    def f(y):
        inner = gradc.grad(lambda x: gnp.sum(gnp.sin(x * y)))   # = y cos(x y)
        return gnp.sum(inner(x0) * y)                            # = sum(y^2 cos(x0 y))
    y = np.array([0.3, 0.8, -0.4])
    close(gradc.jit(f)(y), np.sum(y ** 2 * np.cos(x0 * y)))
    want = 2 * y * np.cos(x0 * y) - y ** 2 * x0 * np.sin(x0 * y)
    close(gradc.grad(f)(y), want)
    assert_fd_close(gradc.grad(f)(y),
                    fd_grad(lambda y: np.sum(y ** 2 * np.cos(x0 * y)), [y], 0))


def test_closure_inside_jacobian_and_jvp():
    def f(a):
        J = gradc.jacobian(lambda x: gnp.exp(a * x))(X0[:3])     # diag(a exp(a x))
        return gnp.sum(J)
    a = 0.7
    x = X0[:3]
    close(gradc.grad(f)(a), np.sum(np.exp(a * x) + a * x * np.exp(a * x)))

    def g(a):
        _, t = gradc.jvp(lambda x: gnp.sin(a * x), (X0,), (Y0,))
        return gnp.sum(t)                                          # sum(a cos(a x) y)
    close(gradc.grad(g)(a), np.sum((np.cos(a * X0) - a * X0 * np.sin(a * X0)) * Y0))

    def h(a):
        _, vjp_fn = gradc.vjp(lambda x: gnp.sin(a * x), X0)
        (ct,) = vjp_fn(Y0)                                         # a cos(a x) y
        return gnp.sum(ct)
    close(gradc.grad(h)(a), np.sum((np.cos(a * X0) - a * X0 * np.sin(a * X0)) * Y0))
    close(gradc.jit(h)(a), np.sum(a * np.cos(a * X0) * Y0))


# ----------------------------------------------------------------------------- caching
def test_cache_does_not_retrace_for_new_batch_size():
    traces = []

    def loss(w, X, y):
        traces.append(1)
        return gnp.mean((X @ w - y) ** 2)
    f = gradc.grad(loss)
    for N in (5, 9, 17):
        X, y = r.standard_normal((N, 4)), r.standard_normal(N)
        close(f(X0, X, y), 2 / N * X.T @ (X @ X0 - y))
    assert len(f._cache) == 1
    assert sum(len(v) for v in f._cache.values()) == 1
    assert len(traces) == 1


def test_cache_retraces_on_rank_and_dtype_change():
    traces = []

    def f(x):
        traces.append(1)
        return gnp.sum(x * x)
    j = gradc.jit(f)
    j(np.ones(3))
    j(np.ones(7))
    assert len(j._cache) == 1 and len(traces) == 1
    j(np.ones((2, 3)))                           # rank change
    assert len(j._cache) == 2 and len(traces) == 2
    out = j(np.ones(3, np.float32))              # dtype change
    assert len(j._cache) == 3 and len(traces) == 3
    assert out.dtype == np.float32


def test_reading_shape_pins_size_and_retraces_correctly():
    def f(x):
        n = x.shape[0]                           # Python code needs the number
        return gnp.sum(x) / n
    j = gradc.jit(f)
    close(j(np.arange(4.0)), 1.5)
    close(j(np.arange(6.0)), 2.5)               # a different n: must not reuse n = 4


def test_cached_results_are_correct_for_each_size():
    g = gradc.grad(lambda x: gnp.sum(gnp.sin(x[1:3]) * gnp.mean(x)))
    for n in (3, 4, 8):
        x = np.linspace(-1, 1, n)
        want = fd_grad(lambda x: np.sum(np.sin(x[1:3]) * np.mean(x)), [x], 0)
        assert_fd_close(g(x), want)


# ----------------------------------------------------------------------------- dtypes
def test_float32_in_float32_out():
    x32 = X0.astype(np.float32)
    B32 = B.astype(np.float32)

    def f(x):
        return gnp.sum(gnp.tanh(B32 @ x) ** 2) + 0.5 * gnp.sum(x)
    assert gradc.jit(f)(x32).dtype == np.float32
    g = gradc.grad(f)(x32)
    assert g.dtype == np.float32
    v, g2 = gradc.value_and_grad(f)(x32)
    assert v.dtype == np.float32 and g2.dtype == np.float32
    assert gradc.jacobian(lambda x: gnp.tanh(B32 @ x))(x32).dtype == np.float32
    assert gradc.hessian(f)(x32).dtype == np.float32
    val, tan = gradc.jvp(f, (x32,), (np.ones(4, np.float32),))
    assert val.dtype == np.float32 and tan.dtype == np.float32
    g64 = gradc.grad(f)(x32.astype(np.float64))
    np.testing.assert_allclose(g, g64, rtol=1e-5, atol=1e-5)   # ~100 eps32


def test_mixed_float32_float64_promotes():
    g = gradc.grad(lambda x, y: gnp.sum(x * y))(X0.astype(np.float32), Y0)
    assert g.dtype == np.float32          # gradient has the argument's dtype
    out = gradc.jit(lambda x, y: x * y)(X0.astype(np.float32), Y0)
    assert out.dtype == np.float64        # numpy promotion


# ----------------------------------------------------------------------------- odds and ends
def test_jacobian_of_tuple_outputs():
    Ja, Jb = gradc.jacobian(lambda x: (gnp.sin(x), gnp.sum(x ** 2)))(X0)
    close(Ja, np.diag(np.cos(X0)))
    close(Jb, 2 * X0)


def test_hessian_argnums_tuple_is_nested_blocks():
    (Hxx, Hxy), (Hyx, Hyy) = gradc.hessian(lambda x, y: gnp.sum(x ** 2 * y), argnums=(0, 1))(X0, Y0)
    close(Hxx, np.diag(2 * Y0))
    close(Hxy, np.diag(2 * X0))
    close(Hyx, np.diag(2 * X0))
    close(Hyy, np.zeros((4, 4)))


def test_jit_tuple_output_and_passthrough():
    a, b = gradc.jit(lambda x: (x, 2 * x))(X0)
    close(a, X0)
    close(b, 2 * X0)
    close(gradc.jit(lambda x: x)(X0), X0)
    assert gradc.jit(lambda x: 3.0)(X0) == 3.0


def test_gradient_of_unused_argument_is_zero():
    g = gradc.grad(lambda x, y: gnp.sum(x ** 2), argnums=1)(X0, Y0)
    close(g, np.zeros(4))
    close(gradc.jacobian(lambda x: np.ones(2))(X0), np.zeros((2, 4)))


def test_identity_transforms():
    close(gradc.grad(lambda x: x)(2.0), 1.0)
    close(gradc.jvp(lambda x: x, (X0,), (Y0,))[1], Y0)
    close(gradc.vjp(lambda x: x, X0)[1](Y0)[0], Y0)


def test_max_reduction_ties_share_the_gradient():
    """At a tie the max's subgradient is split equally (and still sums to 1)."""
    g = gradc.grad(gnp.max)(np.array([1.0, 3.0, 3.0]))
    close(g, [0.0, 0.5, 0.5])
    G = gradc.grad(lambda X: gnp.sum(gnp.min(X, axis=1)))(np.array([[2.0, 2.0, 5.0], [1.0, 0.0, 4.0]]))
    close(G, [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]])


def test_python_scalar_arguments_give_scalars():
    v, g = gradc.value_and_grad(lambda x: x ** 3)(2.0)
    assert np.ndim(v) == 0 and np.ndim(g) == 0
    close(v, 8.0)
    close(g, 12.0)
    close(gradc.hessian(lambda x: x ** 4)(2.0), 48.0)


def test_debug_nans_names_the_node_and_line():
    old = gradc.config(debug_nans=True)
    try:
        f = lambda x: gnp.log(x) * 2  # noqa: E731
        with pytest.raises(gradc.NonFiniteError, match=r"forward node .*log x.* nan at index \(1,\).*test_transforms.py"):
            gradc.jit(f)(np.array([1.0, -1.0]))
        with pytest.raises(gradc.NonFiniteError, match="argument x"):
            gradc.jit(f)(np.array([1.0, np.nan]))
    finally:
        gradc.config(**old)
    assert np.isnan(gradc.jit(f)(np.array([1.0, -1.0]))[1])   # off again: no error


def test_stop_gradient_in_second_order():
    H = gradc.hessian(lambda x: gnp.sum(gradc.stop_gradient(x) * x ** 2))(X0)
    close(H, np.diag(2 * X0))          # the frozen factor is not differentiated


def test_nested_jacobian_inside_jit_and_grad():
    close(gradc.jit(lambda x: gradc.jacobian(gnp.sin)(x))(X0), np.diag(np.cos(X0)))
    # sum of J(outer(y, y)) = sum_ij d(y_i y_j)/dy_k -> 2 sum(y) for every k; its gradient
    close(gradc.jit(lambda x: gnp.sum(gradc.jacobian(lambda y: gnp.outer(y, y))(x)))(X0),
          2 * 4 * X0.sum())
    close(gradc.grad(lambda x: gnp.sum(gradc.jacobian(lambda y: gnp.outer(y, y))(x)))(X0),
          np.full(4, 2.0 * 4))


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
def test_tangents_and_cotangents_of_another_float_dtype_are_converted(backend):
    """A float32 tangent of a float64 primal (and a float64 cotangent of a float64 output
    fed as float32, and the reverse) is converted to the graph's dtype; native code used
    to read the buffer as the other dtype: garbage, and a read past its end."""
    x = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
    t32 = np.ones((3, 4), np.float32)
    for primal, tangent in [(x, t32), (x.astype(np.float32), t32.astype(np.float64))]:
        _, Jt = gradc.jvp(lambda z: z * 2.0, (primal,), (tangent,), backend=backend)
        np.testing.assert_array_equal(Jt, np.full((3, 4), 2.0))
        assert Jt.dtype == primal.dtype
    out, vjp_fn = gradc.vjp(lambda z: gnp.astype(z, np.float64) * 2.0, x.astype(np.float32), backend=backend)
    assert out.dtype == np.float64
    (ct,) = vjp_fn(t32)
    np.testing.assert_array_equal(ct, np.full((3, 4), 2.0))
    assert ct.dtype == np.float32


def test_jacfwd_and_jacrev_choose_their_mode_and_agree():
    rr = np.random.default_rng(11)
    A = rr.standard_normal((7, 3))
    f = lambda x: gnp.tanh(A @ x) * gnp.sum(x)   # noqa: E731
    x = rr.standard_normal(3)
    want = fd_jacobian(lambda v: np.tanh(A @ v) * np.sum(v), x)
    for jac, mode in ((gradc.jacfwd, "forward"), (gradc.jacrev, "reverse")):
        assert_fd_close(jac(f)(x), want)
        assert any(f"by {mode} mode" in n for n in jac(f).lower(x).graph.notes)
    import pickle
    assert pickle.loads(pickle.dumps(gradc.jacrev(np.sin))).mode == "rev"


def _loss_with_aux(p, X, Y):
    pred = gnp.tanh(X @ p["W"] + p["b"])
    err = pred - Y
    return gnp.mean(err ** 2), {"pred": pred, "mae": gnp.mean(gnp.abs(err))}


def test_has_aux_returns_the_aux_beside_the_gradient_of_the_loss():
    """JAX's has_aux: value_and_grad gives ((loss, aux), grads), grad gives (grads, aux);
    the gradients are the loss's (closed form), the forward pass is computed once."""
    rr = np.random.default_rng(3)
    p = {"W": rr.standard_normal((3, 2)), "b": rr.standard_normal(2)}
    X, Y = rr.standard_normal((50, 3)), rr.standard_normal((50, 2))
    pred = np.tanh(X @ p["W"] + p["b"])
    dz = 2 * (pred - Y) / pred.size * (1 - pred ** 2)
    f = gradc.value_and_grad(_loss_with_aux, has_aux=True)
    for _ in range(2):            # the Python path, then the C call path
        (value, aux), g = f(p, X, Y)
        assert value == pytest.approx(np.mean((pred - Y) ** 2), rel=1e-14)
        np.testing.assert_allclose(aux["pred"], pred, rtol=1e-14)
        assert aux["mae"] == pytest.approx(np.mean(np.abs(pred - Y)), rel=1e-14)
        np.testing.assert_allclose(g["W"], X.T @ dz, rtol=1e-12)
        np.testing.assert_allclose(g["b"], dz.sum(0), rtol=1e-12)
    graph = f.lower(p, X, Y).graph
    assert sum(graph[n]["op"] == "tanh" for n in graph.nx) == 1
    g2, aux2 = gradc.grad(_loss_with_aux, argnums=(0,), has_aux=True)(p, X, Y)
    np.testing.assert_allclose(g2[0]["W"], X.T @ dz, rtol=1e-12)
    np.testing.assert_allclose(aux2["pred"], pred, rtol=1e-14)


def test_has_aux_inside_jit_and_vmap_and_its_errors():
    rr = np.random.default_rng(4)
    p = {"W": rr.standard_normal((3, 2)), "b": rr.standard_normal(2)}
    X, Y = rr.standard_normal((8, 3)), rr.standard_normal((8, 2))
    (v, aux), g = gradc.jit(gradc.value_and_grad(_loss_with_aux, has_aux=True))(p, X, Y)
    (v1, aux1), g1 = gradc.value_and_grad(_loss_with_aux, has_aux=True)(p, X, Y)
    assert v == v1 and aux["mae"] == aux1["mae"]
    per = gradc.vmap(gradc.grad(_loss_with_aux, has_aux=True), in_axes=(None, 0, 0))(p, X[:, None], Y[:, None])
    for k in range(8):
        gk, auxk = gradc.grad(_loss_with_aux, has_aux=True)(p, X[k:k + 1], Y[k:k + 1])
        np.testing.assert_allclose(per[0]["W"][k], gk["W"], rtol=1e-13)
        assert per[1]["mae"][k] == pytest.approx(auxk["mae"], rel=1e-14)
    with pytest.raises(gradc.ArgumentError, match=r"must return a pair \(loss, aux\), but it returned an array"):
        gradc.grad(lambda x: gnp.sum(x), has_aux=True)(np.ones(3))


@pytest.mark.parametrize("transform", ["jacrev", "jacfwd", "jacobian", "hessian"])
def test_jacobians_and_hessian_with_has_aux(transform):
    """``has_aux=True`` (JAX's): ``f`` returns ``(out, aux)`` and the result is ``(J,
    aux)``, aux a pytree as computed, J over a dict of parameters and a second argument;
    against finite differences of the first result.  gradc used to refuse the keyword."""
    r = np.random.default_rng(21)
    p = {"W": r.standard_normal((3, 2)), "b": r.standard_normal(2)}
    x = r.standard_normal((4, 3))

    def f(p, x):
        h = gnp.tanh(x @ p["W"] + p["b"])
        out = gnp.sum(h ** 2) if transform == "hessian" else h.sum(0)
        return out, {"h": h, "n": [gnp.sum(x)]}
    t = getattr(gradc, transform)
    J, aux = t(f, argnums=(0, 1), has_aux=True)(p, x)
    h = np.tanh(x @ p["W"] + p["b"])
    np.testing.assert_allclose(aux["h"], h, rtol=1e-12)
    np.testing.assert_allclose(aux["n"][0], x.sum(), rtol=1e-12)
    if transform == "hessian":      # d/dx of the gradient in x: by differences of the closed-form gradient
        def gx(x):                  # d sum(tanh(xW+b)^2)/dx = (2 h (1 - h^2)) W^T
            hh = np.tanh(x @ p["W"] + p["b"])
            return (2 * hh * (1 - hh ** 2)) @ p["W"].T
        want = fd_jacobian(gx, x)
        np.testing.assert_allclose(np.asarray(J[1][1]).reshape(want.shape), want, rtol=1e-5, atol=1e-6)
        assert J[0]["W"][0]["W"].shape == (3, 2, 3, 2)       # (JAX's nesting: jacfwd of jacrev)
    else:
        want = fd_jacobian(lambda x: np.tanh(x @ p["W"] + p["b"]).sum(0), x)
        np.testing.assert_allclose(np.asarray(J[1]).reshape(want.shape), want, rtol=1e-5, atol=1e-6)
        assert J[0]["W"].shape == (2, 3, 2) and J[0]["b"].shape == (2, 2)
    with pytest.raises(gradc.ArgumentError, match="pair"):
        t(lambda p, x: gnp.sum(x), has_aux=True)(p, x)
