"""gradc.scipy.linalg against numpy.linalg formulas (and scipy itself where installed),
values and gradients (finite differences), on the backends that run LAPACK ops."""
from __future__ import annotations

import numpy as onp
import pytest

import gradc
import gradc.numpy as np
import gradc.scipy.linalg as sla

from gradc_helpers import FD_ATOL, FD_RTOL, fd_grad

r = onp.random.default_rng(0)
M = r.standard_normal((4, 4))
SPD = M @ M.T + 4 * onp.eye(4)
T = onp.tril(r.standard_normal((4, 4))) + 3 * onp.eye(4)
B = r.standard_normal((4, 3))
b = r.standard_normal(4)


def _lower(t):
    return onp.tril(t)


LINES = [   # (id, gradc function, numpy reference, arguments)
    ("solve_triangular_upper", lambda t, b: sla.solve_triangular(t, b), lambda t, b: onp.linalg.solve(onp.triu(t), b),
     (T.T, B)),
    ("solve_triangular_lower_vector", lambda t, b: sla.solve_triangular(t, b, lower=True),
     lambda t, b: onp.linalg.solve(onp.tril(t), b), (T, b)),
    ("solve_triangular_trans", lambda t, b: sla.solve_triangular(t, b, trans="T", lower=True),
     lambda t, b: onp.linalg.solve(onp.tril(t).T, b), (T, B)),
    ("solve_triangular_unit", lambda t, b: sla.solve_triangular(t, b, lower=True, unit_diagonal=True),
     lambda t, b: onp.linalg.solve(onp.tril(t, -1) + onp.eye(4), b), (T, B)),
    ("cholesky_upper", lambda a: sla.cholesky(a), lambda a: onp.linalg.cholesky(a).T, (SPD,)),
    ("cholesky_lower", lambda a: sla.cholesky(a, lower=True), onp.linalg.cholesky, (SPD,)),
    ("cho_solve", lambda a, b: sla.cho_solve(sla.cho_factor(a), b), onp.linalg.solve, (SPD, B)),
    ("cho_solve_lower_vector", lambda a, b: sla.cho_solve(sla.cho_factor(a, lower=True), b), onp.linalg.solve,
     (SPD, b)),
    ("solve_pos", lambda a, b: sla.solve(a, b, assume_a="pos"), onp.linalg.solve, (SPD, B)),
    ("solve_vector", lambda a, b: sla.solve(a, b), onp.linalg.solve, (SPD + M, b)),
    ("solve_transposed", lambda a, b: sla.solve(a, b, transposed=True), lambda a, b: onp.linalg.solve(a.T, b),
     (SPD + M, B)),
    ("inv_det", lambda a: sla.inv(a) * sla.det(a), lambda a: onp.linalg.inv(a) * onp.linalg.det(a), (SPD + M,)),
    ("eigh_upper", lambda a: sla.eigh(a + 2 * a.T, lower=False)[0], lambda a: onp.linalg.eigvalsh((a + 2 * a.T).T),
     (M,)),
]


@pytest.fixture(params=["numpy", "llvm"])
def backend(request):
    if request.param == "llvm":
        from lapack_support import native_lapack_or_skip
        native_lapack_or_skip()
    return request.param


@pytest.mark.parametrize("name,f,ref,args", LINES, ids=[line[0] for line in LINES])
def test_against_numpy_and_finite_differences(name, f, ref, args, backend):
    want = ref(*args)
    onp.testing.assert_allclose(gradc.jit(f, backend=backend)(*args), want, rtol=1e-12, atol=1e-12)
    onp.testing.assert_allclose(f(*args), want, rtol=1e-12, atol=1e-12)        # outside a trace
    w = onp.random.default_rng(1).standard_normal(onp.shape(want))
    grads = gradc.grad(lambda *a: np.sum(f(*a) * w), argnums=tuple(range(len(args))), backend=backend)(*args)
    for i, g in enumerate(grads):
        if name.startswith(("cholesky", "cho_solve", "solve_pos", "eigh")) and i == 0:
            continue      # these read one triangle of a symmetric a: finite differences of all of a differ
        onp.testing.assert_allclose(g, fd_grad(lambda *a: onp.sum(ref(*a) * w), list(args), i),
                                    rtol=FD_RTOL, atol=FD_ATOL, err_msg=f"{name}, argument {i}")


def test_against_scipy_where_installed():
    sl = pytest.importorskip("scipy.linalg")
    onp.testing.assert_allclose(gradc.jit(lambda t, b: sla.solve_triangular(t, b, trans=1))(T.T, B),
                                sl.solve_triangular(T.T, B, trans=1), rtol=1e-12)
    onp.testing.assert_allclose(gradc.jit(sla.cholesky)(SPD), sl.cholesky(SPD), rtol=1e-12)
    c = sl.cho_factor(SPD)
    onp.testing.assert_allclose(gradc.jit(lambda a, b: sla.cho_solve(sla.cho_factor(a), b))(SPD, B),
                                sl.cho_solve(c, B), rtol=1e-12)


# ----------------------------------------------------------------------------- LU
def _elimination(a):
    """(P, L, U) of each matrix of a stack by Gaussian elimination with partial pivoting,
    row by row (the oracle without scipy)."""
    ps, ls, us = [], [], []
    for m in onp.reshape(a, (-1,) + a.shape[-2:]).astype(onp.float64):
        n = m.shape[-1]
        u, low, perm = m.copy(), onp.eye(n), onp.arange(n)
        for k in range(n):
            p = k + int(onp.argmax(onp.abs(u[k:, k])))
            u[[k, p]], perm[[k, p]], low[[k, p], :k] = u[[p, k]], perm[[p, k]], low[[p, k], :k]
            low[k + 1:, k] = u[k + 1:, k] / u[k, k]
            u[k + 1:] -= onp.outer(low[k + 1:, k], u[k])
        ps.append(onp.eye(n)[:, perm])
        ls.append(low)
        us.append(onp.triu(u))
    return tuple(onp.reshape(x, a.shape) for x in (ps, ls, us))


@pytest.fixture(params=["numpy", "llvm"])
def lu_backend(request):
    if request.param == "llvm":
        from lapack_support import native_lu_lapack_or_skip
        native_lu_lapack_or_skip()
    return request.param


@pytest.mark.parametrize("shape", [(5, 5), (3, 64, 64)])
@pytest.mark.parametrize("dtype", [onp.float32, onp.float64])
def test_lu_against_elimination(shape, dtype, lu_backend):
    a = onp.random.default_rng(4).standard_normal(shape).astype(dtype)
    P, L, U = gradc.jit(sla.lu, backend=lu_backend)(a)
    tol = 1e-4 if dtype == onp.float32 else 1e-11
    assert P.dtype == L.dtype == U.dtype == dtype
    for got, want in zip((P, L, U), _elimination(a)):
        onp.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    onp.testing.assert_allclose(P @ L @ U, a, rtol=tol, atol=tol)
    lu, piv = gradc.jit(sla.lu_factor, backend=lu_backend)(a)
    assert piv.dtype == onp.int32 and piv.shape == shape[:-1]
    onp.testing.assert_allclose(lu, onp.tril(L, -1) + U, rtol=tol, atol=tol)
    perm = onp.broadcast_to(onp.arange(shape[-1]), shape[:-1]).copy()      # the row swaps, in order
    for m, pv in zip(perm.reshape(-1, shape[-1]), piv.reshape(-1, shape[-1])):
        for k, p in enumerate(pv):
            m[[k, p]] = m[[p, k]]
    onp.testing.assert_array_equal(onp.argmax(P, axis=-1), onp.argsort(perm, axis=-1))   # a = P L U, a[perm] = L U
    p, L2, _ = gradc.jit(lambda a: sla.lu(a, p_indices=True), backend=lu_backend)(a)
    onp.testing.assert_allclose(onp.take_along_axis(L2, p[..., None], axis=-2) @ U, a, rtol=tol, atol=tol)
    PL, _ = gradc.jit(lambda a: sla.lu(a, permute_l=True), backend=lu_backend)(a)
    onp.testing.assert_allclose(PL, P @ L, rtol=tol, atol=tol)
    b = onp.random.default_rng(5).standard_normal(shape[:-1] + (3,)).astype(dtype)
    for trans in (0, 1):
        x = gradc.jit(lambda a, b: sla.lu_solve(sla.lu_factor(a), b, trans=trans), backend=lu_backend)(a, b)
        want = onp.linalg.solve(onp.swapaxes(a, -1, -2) if trans else a, b.astype(onp.float64))
        onp.testing.assert_allclose(x, want, rtol=100 * tol, atol=100 * tol)


def test_lu_gradients_against_finite_differences(lu_backend):
    r = onp.random.default_rng(6)
    a, b = r.standard_normal((2, 5, 5)), r.standard_normal((2, 5, 3))
    w, v = r.standard_normal(a.shape), r.standard_normal(a.shape)
    g = gradc.grad(lambda a: (lambda P, L, U: np.sum(L * w) + np.sum(U * v))(*sla.lu(a)), backend=lu_backend)(a)
    want = fd_grad(lambda a: (lambda P, L, U: onp.sum(L * w) + onp.sum(U * v))(*_elimination(a)), [a], 0)
    onp.testing.assert_allclose(g, want, rtol=FD_RTOL, atol=FD_ATOL)
    t = r.standard_normal(a.shape)        # forward mode: the tangent of the packed factors
    _, tangent = gradc.jvp(lambda a: sla.lu_factor(a)[0], (a,), (t,))
    h = 1e-6
    packed = [(lambda P, L, U: onp.tril(L, -1) + U)(*_elimination(a + s * h * t)) for s in (1, -1)]
    onp.testing.assert_allclose(tangent, (packed[0] - packed[1]) / (2 * h), rtol=1e-6, atol=1e-6)
    for trans in (0, 1):
        gs = gradc.grad(lambda a, b: np.sum(sla.lu_solve(sla.lu_factor(a), b, trans=trans) * b), argnums=(0, 1),
                        backend=lu_backend)(a, b)
        for i in range(2):
            want = fd_grad(lambda a, b: onp.sum(onp.linalg.solve(onp.swapaxes(a, -1, -2) if trans else a, b) * b),
                           [a, b], i)
            onp.testing.assert_allclose(gs[i], want, rtol=FD_RTOL, atol=FD_ATOL)


def test_lu_outside_a_trace_and_errors():
    a = onp.random.default_rng(7).standard_normal((4, 4))
    for got, want in zip(sla.lu(a), _elimination(a)):
        onp.testing.assert_allclose(got, want, atol=1e-12)
    onp.testing.assert_allclose(sla.lu_solve(sla.lu_factor(a), a[0]), onp.linalg.solve(a, a[0]), atol=1e-12)
    with pytest.raises(gradc.UnsupportedError, match="lu.*square"):
        gradc.jit(sla.lu)(onp.ones((3, 4)))
    with pytest.raises(gradc.UnsupportedError, match="LAPACK|lapack"):
        gradc.jit(sla.lu_factor, backend="c")(a)


def test_lu_against_scipy_where_installed(lu_backend):
    sl = pytest.importorskip("scipy.linalg")
    a = onp.random.default_rng(8).standard_normal((3, 64, 64))
    for got, want in zip(gradc.jit(sla.lu, backend=lu_backend)(a), sl.lu(a)):
        onp.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    lu, piv = gradc.jit(sla.lu_factor, backend=lu_backend)(a)
    lu_s, piv_s = sl.lu_factor(a)
    onp.testing.assert_allclose(lu, lu_s, rtol=1e-10, atol=1e-10)
    onp.testing.assert_array_equal(piv, piv_s)
    onp.testing.assert_array_equal(gradc.jit(lambda a: sla.lu(a, p_indices=True)[0], backend=lu_backend)(a),
                                   sl.lu(a, p_indices=True)[0])
    b = onp.random.default_rng(9).standard_normal((64, 2))
    for trans in (0, 1):
        onp.testing.assert_allclose(
            gradc.jit(lambda lu, piv, b: sla.lu_solve((lu, piv), b, trans=trans), backend=lu_backend)(lu[0], piv[0], b),
            sl.lu_solve((lu_s[0], piv_s[0]), b, trans=trans), rtol=1e-10, atol=1e-10)
