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


# ----------------------------------------------------------------------------- qr, svd, polar
@pytest.mark.parametrize("shape", [(6, 4), (4, 4), (2, 5, 5)])
def test_qr_svd_polar_identities(shape, backend):
    a = onp.random.default_rng(10).standard_normal(shape)
    k = min(shape[-2:])
    q, r = gradc.jit(sla.qr, backend=backend)(a)
    assert q.shape == shape[:-1] + (shape[-2],) and r.shape == shape
    onp.testing.assert_allclose(q @ r, a, atol=1e-12)
    onp.testing.assert_allclose(onp.swapaxes(q, -1, -2) @ q, onp.broadcast_to(onp.eye(shape[-2]), q.shape), atol=1e-12)
    onp.testing.assert_allclose(onp.tril(r, -1), 0.0, atol=1e-12)
    (r_only,) = gradc.jit(lambda a: sla.qr(a, mode="r"), backend=backend)(a)
    onp.testing.assert_allclose(r_only, r, atol=1e-12)
    qe, re = gradc.jit(lambda a: sla.qr(a, mode="economic"), backend=backend)(a)
    assert qe.shape[-1] == k and re.shape[-2] == k
    onp.testing.assert_allclose(qe @ re, a, atol=1e-12)
    u, s, vh = gradc.jit(lambda a: sla.svd(a, full_matrices=False), backend=backend)(a)
    onp.testing.assert_allclose((u * s[..., None, :]) @ vh, a, atol=1e-12)
    onp.testing.assert_allclose(gradc.jit(lambda a: sla.svd(a, compute_uv=False), backend=backend)(a),
                                onp.linalg.svd(a, compute_uv=False), atol=1e-12)
    if len(shape) == 2:
        for side in ("right", "left"):
            un, p = gradc.jit(lambda a: sla.polar(a, side), backend=backend)(a)
            onp.testing.assert_allclose(un @ p if side == "right" else p @ un, a, atol=1e-12)
            onp.testing.assert_allclose(p, p.T, atol=1e-12)
            assert onp.linalg.eigvalsh(p).min() > -1e-12
            onp.testing.assert_allclose(un.T @ un, onp.eye(shape[1]), atol=1e-12)    # tall: orthonormal columns


def test_polar_gradient_against_finite_differences(backend):
    r = onp.random.default_rng(11)
    a, w, v = r.standard_normal((5, 3)), r.standard_normal((5, 3)), r.standard_normal((3, 3))

    def ref(a):
        u_, s, vh = onp.linalg.svd(a, full_matrices=False)
        return onp.sum((u_ @ vh) * w) + onp.sum((vh.T * s) @ vh * v)
    g = gradc.grad(lambda a: (lambda u, p: np.sum(u * w) + np.sum(p * v))(*sla.polar(a)), backend=backend)(a)
    onp.testing.assert_allclose(g, fd_grad(ref, [a], 0), rtol=FD_RTOL, atol=FD_ATOL)


def test_qr_svd_polar_against_scipy_where_installed():
    sl = pytest.importorskip("scipy.linalg")
    a = onp.random.default_rng(12).standard_normal((64, 40))
    for mode in ("full", "economic", "r"):
        for g, w in zip(gradc.jit(lambda a: sla.qr(a, mode=mode))(a), sl.qr(a, mode=mode)):
            onp.testing.assert_allclose(g, w, atol=1e-11)
    onp.testing.assert_allclose(gradc.jit(lambda a: sla.svd(a, compute_uv=False))(a), sl.svd(a, compute_uv=False))
    for side in ("right", "left"):
        for g, w in zip(gradc.jit(lambda a: sla.polar(a, side))(a), sl.polar(a, side)):
            onp.testing.assert_allclose(g, w, atol=1e-11)


def test_unsupported_names_raise_unsupported_error():
    for name in ("sqrtm", "schur", "hessenberg", "funm", "solve_sylvester"):
        with pytest.raises(gradc.UnsupportedError, match=f"scipy.linalg.{name}"):
            getattr(sla, name)(onp.eye(2))
    with pytest.raises(gradc.UnsupportedError, match="pivoting"):
        sla.qr(onp.eye(2), pivoting=True)


# ----------------------------------------------------------------------------- expm
def _expm_taylor(a):
    """e^a by its Taylor series (40 terms) on a / 2^j, squared j times: the oracle."""
    j = max(0, int(onp.ceil(onp.log2(max(onp.abs(a).sum(-2).max(), 1e-300)))) + 1)
    x = onp.asarray(a, onp.float64) / 2.0 ** j
    term = total = onp.broadcast_to(onp.eye(a.shape[-1]), a.shape).copy()
    for k in range(1, 40):
        term = term @ x / k
        total = total + term
    for _ in range(j):
        total = total @ total
    return total


@pytest.mark.parametrize("dtype", [onp.float32, onp.float64])
def test_expm_closed_forms(dtype, backend):
    """Symmetric matrices of norms 1e-3 to 40 (e^S = V diag(e^w) Vᵀ), rotations of angle
    up to 120 (large norm, bounded e^A), a nilpotent matrix (the series ends)."""
    r = onp.random.default_rng(13)
    scales = onp.array([1e-3, 1.0, 40.0])
    x = r.standard_normal((3, 16, 16))
    sym = (x + onp.swapaxes(x, -1, -2)) * scales[:, None, None] / 16
    w, v = onp.linalg.eigh(sym)
    want_sym = (v * onp.exp(w)[..., None, :]) @ onp.swapaxes(v, -1, -2)
    t = 3 * scales
    rot = onp.array([[0 * t, -t], [t, 0 * t]]).transpose(2, 0, 1)
    want_rot = onp.array([[onp.cos(t), -onp.sin(t)], [onp.sin(t), onp.cos(t)]]).transpose(2, 0, 1)
    n = onp.triu(r.standard_normal((5, 5)), 1)
    want_nil = sum(onp.linalg.matrix_power(n, k) / onp.prod(onp.arange(1.0, k + 1)) for k in range(5))
    got = gradc.jit(lambda s, q, m: (sla.expm(s), sla.expm(q), sla.expm(m)), backend=backend)(
        sym.astype(dtype), rot.astype(dtype), n.astype(dtype))
    tol = 2e-5 if dtype == onp.float32 else 1e-12
    for g, want, scale in zip(got[0], want_sym, scales):
        assert g.dtype == dtype
        onp.testing.assert_allclose(g, want, rtol=tol * max(1.0, scale), atol=tol * onp.abs(want).max())
    onp.testing.assert_allclose(got[1], want_rot, atol=tol * t.max())
    onp.testing.assert_allclose(got[2], want_nil, rtol=tol, atol=tol)
    onp.testing.assert_allclose(sla.expm(sym), want_sym, rtol=1e-12 * 40, atol=1e-14 * onp.abs(want_sym).max())


def test_expm_at_64_against_taylor_and_scipy(backend):
    a = onp.random.default_rng(14).standard_normal((2, 64, 64)) / 4
    got = gradc.jit(sla.expm, backend=backend)(a)
    onp.testing.assert_allclose(got, _expm_taylor(a), rtol=1e-10, atol=1e-10 * onp.abs(got).max())
    sl = pytest.importorskip("scipy.linalg")
    onp.testing.assert_allclose(got, sl.expm(a), rtol=1e-10, atol=1e-10 * onp.abs(got).max())
    e = onp.random.default_rng(15).standard_normal((64, 64))
    for g, w in zip(gradc.jit(sla.expm_frechet, backend=backend)(a[0], e), sl.expm_frechet(a[0], e)):
        onp.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-9 * onp.abs(w).max())


def test_expm_gradients(backend):
    r = onp.random.default_rng(16)
    a, w = r.standard_normal((2, 5, 5)) * 2, r.standard_normal((2, 5, 5))   # ‖A‖₁ > θ₁₃: squarings
    g = gradc.grad(lambda a: np.sum(sla.expm(a) * w), backend=backend)(a)
    onp.testing.assert_allclose(g, fd_grad(lambda a: onp.sum(_expm_taylor(a) * w), [a], 0), rtol=1e-6, atol=1e-6)
    # d/dt e^(tA) = A e^(tA)
    _, tangent = gradc.jvp(lambda t: sla.expm(t * a[0]), (0.7,), (1.0,))
    onp.testing.assert_allclose(tangent, a[0] @ _expm_taylor(0.7 * a[0]), rtol=1e-10, atol=1e-10)
    # expm_frechet(A, E) is the directional derivative of expm
    e = r.standard_normal((5, 5))
    _, tangent = gradc.jvp(sla.expm, (a[1],), (e,))
    onp.testing.assert_allclose(gradc.jit(lambda a, e: sla.expm_frechet(a, e, compute_expm=False),
                                          backend=backend)(a[1], e), tangent, rtol=1e-10, atol=1e-10)


def test_expm_errors_and_backend_c():
    with pytest.raises(gradc.ArgumentError, match="expm: argument A has shape"):
        gradc.jit(sla.expm)(onp.ones((2, 3)))
    with pytest.raises(gradc.UnsupportedError):
        gradc.jit(sla.expm, backend="c")(onp.eye(3))
    assert onp.isnan(gradc.jit(sla.expm)(onp.diag([1e12, 0.0]))).all()      # beyond the unrolled squarings


def test_lu_solve_reuses_the_factorization_and_takes_foreign_pivots(lu_backend):
    r = onp.random.default_rng(17)
    a, b = r.standard_normal((6, 6)), r.standard_normal((6, 2))
    g = gradc.jit(lambda a, b: sla.lu_solve(sla.lu_factor(a), b)).lower(a, b).graph
    ops = [g[n]["op"] for n in g.nx.nodes]
    assert "lu_perm" in ops and ops.count("matmul") == 1       # the permutation of the same getrf, no row swaps
    lu, piv = sla.lu_factor(a)

    def ref(lu, b):       # a = P L U rebuilt from the swaps, then numpy's solve
        perm = list(range(6))
        for k, p in enumerate(piv):
            perm[k], perm[p] = perm[p], perm[k]
        lu_ = onp.tril(lu, -1) + onp.eye(6)
        return onp.sum(onp.linalg.solve(onp.eye(6)[:, perm] @ lu_ @ onp.triu(lu), b) * b)
    grads = gradc.grad(lambda lu, piv, b: np.sum(sla.lu_solve((lu, piv), b) * b), argnums=(0, 2),
                       backend=lu_backend)(lu, piv, b)
    for i, gr in zip((0, 1), grads):
        onp.testing.assert_allclose(gr, fd_grad(ref, [lu, b], i), rtol=FD_RTOL, atol=FD_ATOL)


def test_eigh_refuses_a_subset_instead_of_ignoring_it():
    """eigh(a, subset_by_index=(0, 1)) used to return all eigenvalues (the keyword
    swallowed by **kw): a subset or another problem type is refused, as JAX refuses
    it; scipy's flags that change nothing (overwrite_a, check_finite, ...) are taken."""
    a = onp.random.default_rng(0).standard_normal((4, 4))
    a = a + a.T
    want = onp.linalg.eigvalsh(a)
    got = gradc.jit(lambda a: sla.eigh(a, eigvals_only=True, overwrite_a=True, check_finite=False, type=1))(a)
    onp.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    for kw in ({"subset_by_index": (0, 1)}, {"eigvals": (0, 1)}, {"subset_by_value": (-1.0, 1.0)}, {"type": 2}):
        with pytest.raises(gradc.ArgumentError, match="not supported"):
            gradc.jit(lambda a: sla.eigh(a, eigvals_only=True, **kw))(a)
        with pytest.raises(gradc.ArgumentError, match="not supported"):
            sla.eigh(a, eigvals_only=True, **kw)


@pytest.mark.parametrize("backend", ["llvm", "numpy"])     # (the C backend has no LAPACK)
@pytest.mark.parametrize("lower", [False, True])
def test_cholesky_and_positive_solves_read_the_triangle_asked_for(lower, backend):
    """scipy.linalg.cholesky, cho_factor/cho_solve and solve(assume_a="pos") read only
    the upper triangle of a (lower=False, scipy's default) or the lower: on a matrix
    whose triangles differ, the result is that of the symmetric matrix built from the
    triangle.  (The upper one was taken from the lower before.)  Oracle: numpy on that
    symmetric matrix."""
    a = onp.array([[4.0, 1.0, 0.5], [0.9, 3.0, 0.2], [0.7, 0.8, 2.0]])
    b = onp.array([1.0, 2.0, 3.0])
    tri = onp.tril(a) if lower else onp.triu(a)
    s = tri + tri.T - onp.diag(onp.diag(a))
    L = onp.linalg.cholesky(s)
    got = gradc.jit(lambda a, b: (sla.cholesky(a, lower=lower), sla.cho_solve(sla.cho_factor(a, lower=lower), b),
                                  sla.solve(a, b, assume_a="pos", lower=lower)), backend=backend)(a, b)
    onp.testing.assert_allclose(got[0], L if lower else L.T, rtol=1e-14, atol=1e-15)
    onp.testing.assert_allclose(got[1], onp.linalg.solve(s, b), rtol=1e-13)
    onp.testing.assert_allclose(got[2], onp.linalg.solve(s, b), rtol=1e-13)
