"""Every identity of ../shared/paper/README.md (Parr & Howard, "The Matrix Calculus You
Need For Deep Learning"), computed by gradc and compared with its closed form evaluated
in plain numpy.  Numerator layout: a Jacobian has shape out.shape + in.shape.

gradc's derivatives are exact programs (no differencing), so they agree with the closed
forms to float64 rounding: ``rtol=1e-12`` (a few hundred ulps of slack for the different
order of operations), ``atol=1e-12`` for entries that are exactly zero in the closed form.
"""
from __future__ import annotations

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp

pytestmark = pytest.mark.usefixtures("core_backend")

RTOL = ATOL = 1e-12
XS = [-2.0, -0.5, 0.7, 3.0]


def close(got, want):
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=RTOL, atol=ATOL)


# ----------------------------------------------------------------------------- scalar rules
SCALAR_RULES = [
    ("constant", lambda x: 99.0, lambda x: 0.0),
    ("constant_times_x", lambda x: 3 * x, lambda x: 3.0),
    ("power", lambda x: x ** 3, lambda x: 3 * x ** 2),
    ("sum_rule", lambda x: x ** 2 + 3 * x, lambda x: 2 * x + 3),
    ("difference_rule", lambda x: x ** 2 - 3 * x, lambda x: 2 * x - 3),
    ("product_rule", lambda x: x ** 2 * x, lambda x: 3 * x ** 2),
    ("chain_rule_ln", lambda x: gnp.log(x ** 2), lambda x: 2 / x),
]


@pytest.mark.parametrize("name,f,df", SCALAR_RULES, ids=[r[0] for r in SCALAR_RULES])
@pytest.mark.parametrize("x", XS)
def test_scalar_derivative_rules(name, f, df, x):
    close(gradc.grad(f)(x), df(x))


# ----------------------------------------------------------------------------- partials, gradients, Jacobians
@pytest.mark.parametrize("x,y", [(1.5, -2.0), (-0.3, 0.8), (2.0, 1.1)])
def test_partials_of_3x2y(x, y):
    dfdx, dfdy = gradc.grad(lambda x, y: 3 * x ** 2 * y, argnums=(0, 1))(x, y)
    close(dfdx, 6 * y * x)
    close(dfdy, 3 * x ** 2)


@pytest.mark.parametrize("x,y", [(1.5, -2.0), (-0.3, 0.8)])
def test_gradient_of_g(x, y):
    grad_g = gradc.grad(lambda x, y: 2 * x + y ** 8, argnums=(0, 1))(x, y)
    close(np.array(grad_g), [2.0, 8 * y ** 7])


@pytest.mark.parametrize("x,y", [(1.5, -2.0), (-0.3, 0.8)])
def test_jacobian_of_f_and_g(x, y):
    """J = [[df/dx, df/dy], [dg/dx, dg/dy]]: row i is the gradient of f_i."""
    def fg(v):
        x, y = v[0], v[1]
        return gnp.array([3 * x ** 2 * y, 2 * x + y ** 8])
    J = gradc.jacobian(fg)(np.array([x, y]))
    close(J, [[6 * y * x, 3 * x ** 2], [2.0, 8 * y ** 7]])


def test_identity_jacobian_is_I():
    x = np.array([0.3, -1.0, 2.0, 5.0])
    close(gradc.jacobian(lambda x: x)(x), np.eye(4))


def test_jacobian_of_sin_Ax():
    r = np.random.default_rng(0)
    A, x = r.standard_normal((3, 5)), r.standard_normal(5)
    J = gradc.jacobian(lambda x, A: gnp.sin(A @ x))(x, A)
    assert J.shape == (3, 5)                                  # m x n
    close(J, np.diag(np.cos(A @ x)) @ A)


# ----------------------------------------------------------------------------- element-wise binary ops
R = np.random.default_rng(1)
W = R.uniform(0.5, 2.0, 4) * np.array([1, -1, 1, -1])
X = R.uniform(0.5, 2.0, 4)
I = np.eye(4)

ELEMENTWISE_BINARY = [
    ("add", lambda w, x: w + x, I, I),
    ("sub", lambda w, x: w - x, I, -I),
    ("hadamard", lambda w, x: w * x, np.diag(X), np.diag(W)),
    ("div", lambda w, x: w / x, np.diag(1 / X), np.diag(-W / X ** 2)),
    ("max", gnp.maximum, np.diag((W > X).astype(float)), np.diag((X > W).astype(float))),
    ("greater", lambda w, x: (w > x).astype(np.float64), 0 * I, 0 * I),
]


@pytest.mark.parametrize("name,f,Jw,Jx", ELEMENTWISE_BINARY, ids=[e[0] for e in ELEMENTWISE_BINARY])
def test_elementwise_binary_jacobians_are_diagonal(name, f, Jw, Jx):
    assert not np.any(np.isclose(W, X))   # away from ties
    got_w, got_x = gradc.jacobian(f, argnums=(0, 1))(W, X)
    close(got_w, Jw)
    close(got_x, Jx)


# ----------------------------------------------------------------------------- scalar expansion
Z = 1.7
SCALAR_EXPANSION = [
    ("x_plus_z", lambda x, z: x + z, I, np.ones(4)),
    ("x_times_z", lambda x, z: x * z, I * Z, X),
    ("x_minus_z", lambda x, z: x - z, I, -np.ones(4)),
    ("x_over_z", lambda x, z: x / z, I / Z, -X / Z ** 2),
]


@pytest.mark.parametrize("name,f,Jx,Jz", SCALAR_EXPANSION, ids=[e[0] for e in SCALAR_EXPANSION])
def test_scalar_expansion(name, f, Jx, Jz):
    got_x, got_z = gradc.jacobian(f, argnums=(0, 1))(X, Z)
    assert got_z.shape == (4,)                # d y / d (scalar z): shape (n,) + ()
    close(got_x, Jx)
    close(got_z, Jz)


def test_adjoint_of_expansion_is_a_sum():
    """The cotangent reaching the expanded scalar is the sum of the cotangents of its copies."""
    g = np.array([0.5, -2.0, 3.0, 0.25])
    _, vjp_fn = gradc.vjp(lambda x, z: x + z, X, Z)
    ct_x, ct_z = vjp_fn(g)
    close(ct_x, g)
    assert np.ndim(ct_z) == 0
    close(ct_z, g.sum())
    # the same through broadcasting a (1,) row over a matrix: sum over the expanded axis
    G = np.arange(12.0).reshape(3, 4)
    _, vjp_fn = gradc.vjp(lambda M, v: M * v, np.ones((3, 4)), X.reshape(1, 4))
    close(vjp_fn(G)[1], G.sum(axis=0, keepdims=True))


# ----------------------------------------------------------------------------- vector sum reduction
def test_sum_of_f_is_ones_times_jacobian():
    r = np.random.default_rng(2)
    A, x = r.standard_normal((3, 4)), r.standard_normal(4)
    J_f = np.diag(np.cos(A @ x)) @ A
    close(gradc.grad(lambda x: gnp.sum(gnp.sin(A @ x)))(x), np.ones(3) @ J_f)


def test_sum_gradient_is_ones():
    close(gradc.grad(gnp.sum)(X), np.ones(4))


def test_sum_of_x_times_z():
    dx, dz = gradc.grad(lambda x, z: gnp.sum(x * z), argnums=(0, 1))(X, Z)
    close(dx, Z * np.ones(4))
    close(dz, X.sum())


def test_dot_product_gradients():
    dw, dx = gradc.grad(lambda w, x: gnp.dot(w, x), argnums=(0, 1))(W, X)
    close(dw, X)
    close(dx, W)


# ----------------------------------------------------------------------------- chain rules
CHAIN = [
    ("sin_x2", lambda x: gnp.sin(x ** 2), lambda x: 2 * x * np.cos(x ** 2)),
    ("ln_sin_x3_squared", lambda x: gnp.log(gnp.sin(x ** 3) ** 2),
     lambda x: 6 * x ** 2 * np.cos(x ** 3) / np.sin(x ** 3)),
    ("total_x_plus_x2", lambda x: x + x ** 2, lambda x: 1 + 2 * x),
    ("total_sin_x_plus_x2", lambda x: gnp.sin(x + x ** 2), lambda x: np.cos(x + x ** 2) * (1 + 2 * x)),
    ("total_x_times_x2", lambda x: x * x ** 2, lambda x: 3 * x ** 2),
]


@pytest.mark.parametrize("name,f,df", CHAIN, ids=[c[0] for c in CHAIN])
@pytest.mark.parametrize("x", XS)
def test_single_variable_and_total_derivative_chain_rules(name, f, df, x):
    close(gradc.grad(f)(x), df(x))


@pytest.mark.parametrize("x", XS)
def test_total_derivative_general_form(x):
    """df/dx = sum_i (df/du_i)(du_i/dx) with u1 = x^2, u2 = sin(x), f = u1 * u2 + u2."""
    def f(x):
        u1, u2 = x ** 2, gnp.sin(x)
        return u1 * u2 + u2
    u1, u2 = x ** 2, np.sin(x)
    df_du1, df_du2 = u2, u1 + 1
    close(gradc.grad(f)(x), df_du1 * 2 * x + df_du2 * np.cos(x))


@pytest.mark.parametrize("x", XS)
def test_vector_chain_rule_scalar_input(x):
    J = gradc.jacobian(lambda x: gnp.array([gnp.log(x ** 2), gnp.sin(3 * x)]))(x)
    close(J, [2 / x, 3 * np.cos(3 * x)])


def test_vector_chain_rule_is_a_product_of_jacobians():
    """f(g(x)) with g: R^2 -> R^3, f: R^3 -> R^2: J = J_f(g(x)) @ J_g(x)."""
    x = np.array([0.7, -1.3])

    def g(x):
        return gnp.array([x[0] ** 2, x[0] * x[1], gnp.sin(x[1])])

    def f(u):
        return gnp.array([gnp.log(u[0]) + u[1], gnp.sin(3 * u[2]) * u[1]])

    u = np.array([x[0] ** 2, x[0] * x[1], np.sin(x[1])])
    J_g = np.array([[2 * x[0], 0], [x[1], x[0]], [0, np.cos(x[1])]])
    J_f = np.array([[1 / u[0], 1, 0], [0, np.sin(3 * u[2]), 3 * np.cos(3 * u[2]) * u[1]]])
    close(gradc.jacobian(lambda x: f(g(x)))(x), J_f @ J_g)
    close(gradc.jacobian(g)(x), J_g)
    close(gradc.jacobian(f)(u), J_f)


def test_vector_chain_rule_elementwise_case_is_diagonal():
    x = np.array([0.3, -1.2, 2.0])
    J = gradc.jacobian(lambda x: gnp.exp(gnp.sin(x)))(x)
    close(J, np.diag(np.exp(np.sin(x)) * np.cos(x)))


# ----------------------------------------------------------------------------- neuron activation
def activation(w, b, x):
    return gnp.maximum(0.0, gnp.dot(w, x) + b)


NEURON = [
    # (w, b, x): z = w.x + b
    ("z_positive", np.array([0.5, -1.0, 2.0]), 0.3, np.array([1.0, 0.5, 0.8])),
    ("z_negative", np.array([0.5, -1.0, 2.0]), -3.0, np.array([1.0, 0.5, 0.8])),
    ("z_zero", np.array([1.0, 2.0, 0.5]), -4.0, np.array([1.0, 1.0, 2.0])),   # exactly 0
]


@pytest.mark.parametrize("name,w,b,x", NEURON, ids=[n[0] for n in NEURON])
def test_neuron_activation_gradient(name, w, b, x):
    z = w @ x + b
    dw, db = gradc.grad(activation, argnums=(0, 1))(w, b, x)
    if z > 0:
        close(dw, x)
        close(db, 1.0)
    else:                      # z <= 0, including z == 0 exactly
        close(dw, np.zeros(3))
        close(db, 0.0)
    val, (dw2, db2) = gradc.value_and_grad(activation, argnums=(0, 1))(w, b, x)
    close(val, max(0.0, z))
    close(dw2, dw)
    close(db2, db)


def test_neuron_with_relu_matches_maximum():
    for _, w, b, x in NEURON:
        a = gradc.grad(lambda w: gradc.relu(w @ x + b))(w)
        m = gradc.grad(lambda w: activation(w, b, x))(w)
        close(a, m)


def test_broadcast_max_jacobian():
    x = np.array([-1.0, 0.5, 2.0, -0.1, 3.0])
    close(gradc.jacobian(lambda x: gnp.maximum(0.0, x))(x), np.diag((x > 0).astype(float)))


# ----------------------------------------------------------------------------- the loss
def loss(w, b, X, y):
    return gnp.mean((y - gnp.maximum(0.0, X @ w + b)) ** 2)


def loss_grad_closed_form(w, b, X, y):
    """The erratum-corrected form: the case split is per sample, inside the sum."""
    N = len(y)
    z = X @ w + b
    e = z - y
    active = z > 0
    dw = 2 / N * sum(e[i] * X[i] for i in range(N) if active[i]) if active.any() else np.zeros_like(w)
    db = 2 / N * sum(e[i] for i in range(N) if active[i]) if active.any() else 0.0
    return dw, db


def _data(kind, seed=0):
    r = np.random.default_rng(seed)
    N, n = 8, 3
    X = r.uniform(0.5, 1.5, (N, n))          # positive features
    y = r.standard_normal(N)
    w = r.uniform(0.2, 1.0, n)
    if kind == "all_active":
        b = 1.0                              # z >= 1.3 > 0 for every sample
    elif kind == "all_inactive":
        w = -w
        b = -1.0                             # z < 0 for every sample
    else:
        w = r.standard_normal(n)
        z = X @ w
        b = -np.median(z)                    # half the samples active
        b += 0.5 * np.min(np.abs(z + b)[np.abs(z + b) > 0])  # keep every z away from 0
    return w, b, X, y


@pytest.mark.parametrize("kind", ["all_active", "all_inactive", "mixed"])
def test_loss_gradient(kind):
    w, b, X, y = _data(kind)
    z = X @ w + b
    if kind == "mixed":
        assert 0 < np.sum(z > 0) < len(z)
    assert np.all(np.abs(z) > 1e-3)
    dw, db = gradc.grad(loss, argnums=(0, 1))(w, b, X, y)
    want_dw, want_db = loss_grad_closed_form(w, b, X, y)
    close(dw, want_dw)
    close(db, want_db)
    if kind == "all_inactive":
        close(dw, np.zeros(3))
        close(db, 0.0)
    if kind == "mixed":
        # the paper's printed form (split outside the sum = every sample active) is wrong here
        e = z - y
        wrong_dw = 2 / len(y) * (e @ X)
        assert not np.allclose(dw, wrong_dw)


@pytest.mark.parametrize("kind", ["all_active", "all_inactive", "mixed"])
def test_loss_gradient_augmented_w_hat(kind):
    """w_hat = [w, b], x_hat = [x, 1]: one gradient, 2/N sum_{i in A} e_i x_hat_i."""
    w, b, X, y = _data(kind)
    w_hat = np.concatenate([w, [b]])

    def loss_hat(w_hat, X, y):
        X_hat = gnp.concatenate([X, gnp.ones((X.shape[0], 1))], axis=1)
        return gnp.mean((y - gnp.maximum(0.0, X_hat @ w_hat)) ** 2)

    X_hat = np.hstack([X, np.ones((len(y), 1))])
    z = X_hat @ w_hat
    e = z - y
    want = 2 / len(y) * ((e * (z > 0)) @ X_hat)
    got = gradc.grad(loss_hat)(w_hat, X, y)
    close(got, want)
    dw, db = gradc.grad(loss, argnums=(0, 1))(w, b, X, y)
    close(got, np.concatenate([dw, [db]]))
    close(gradc.jit(loss_hat)(w_hat, X, y), np.mean((y - np.maximum(0, z)) ** 2))


# ----------------------------------------------------------------------------- beyond the paper
def test_matrix_product_vjp_is_XT_G():
    r = np.random.default_rng(3)
    Xm, Wm, G = r.standard_normal((5, 3)), r.standard_normal((3, 2)), r.standard_normal((5, 2))
    _, vjp_fn = gradc.vjp(lambda X, W: X @ W, Xm, Wm)
    dX, dW = vjp_fn(G)
    close(dW, Xm.T @ G)
    close(dX, G @ Wm.T)


def test_logsumexp_softmax_stable_forward_and_backward():
    x = np.array([1000.0, 999.0, -1000.0, 998.5])
    s = np.exp(x - x.max()) / np.exp(x - x.max()).sum()
    val, g = gradc.value_and_grad(gradc.logsumexp)(x)
    close(val, x.max() + np.log(np.exp(x - x.max()).sum()))
    close(g, s)                       # d logsumexp / dx = softmax(x)
    sm = gradc.jit(gradc.softmax)(x)
    close(sm, s)
    v = np.array([1.0, -2.0, 0.5, 3.0])
    J_softmax = np.diag(s) - np.outer(s, s)
    close(gradc.grad(lambda x: gnp.sum(gradc.softmax(x) * v))(x), J_softmax.T @ v)


def test_hessian_of_quadratic_form():
    r = np.random.default_rng(4)
    A, x = r.standard_normal((4, 4)), r.standard_normal(4)
    close(gradc.hessian(lambda x: x @ (A @ x))(x), A + A.T)
