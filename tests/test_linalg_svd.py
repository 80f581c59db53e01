"""gradc.numpy.linalg's singular value and QR decompositions (gradc/ops/decomp.py) and
what is built on them: svd, svdvals, qr, pinv, lstsq, matrix_rank, cond and the matrix
norms of ord 2, -2 and 'nuc', on backend="llvm" (numpy's LAPACK through
runtime/lapack.c) and backend="numpy".

Oracles: numpy.linalg in float64 for values (singular vectors up to sign: through
reconstructions U S Vᵀ, orthogonality and the projections U Uᵀ, V Vᵀ, which do not
depend on the signs); closed forms for the gradients through singular values
(d Σs / dA = U Vᵀ, d ‖A‖₂ / dA = u₁v₁ᵀ), also at repeated singular values; central
directional finite differences of the numpy function; JAX where installed.

Test matrices A = Q₁ diag(d) Q₂ᵀ with Q random orthogonal and d = exp(linspace(-0.7,
0.7, K)): cond ≤ e^1.4 and neighbouring singular values ≥ ~1.4 e^-0.7 / K apart
(0.02 at K = 40), so singular vectors are determined to ~eps ‖A‖ / gap and F =
1/(s_j² − s_i²) is at most ~1/(2 · 0.5 · 0.02) = 50.  Tolerances as tests/test_lapack.py
argues: gesdd and Householder QR are backward stable, ~c K eps cond (VALUE_TOL), the
vectors ~eps / gap (VEC_TOL, float32 ~ 1e-7 · 50 · a few).
"""
from __future__ import annotations

import numpy as onp
import pytest

import gradc
import gradc.numpy as np
from gradc.errors import ArgumentError, LinAlgError, ShapeError, UnsupportedError
from lapack_support import REBUILD, native_rect_lapack

BACKENDS = [pytest.param("llvm", marks=pytest.mark.skipif(not native_rect_lapack(), reason=REBUILD)), "numpy"]
DTYPES = [onp.float64, onp.float32]
VALUE_TOL = {onp.float64: 1e-12, onp.float32: 2e-5}
VEC_TOL = {onp.float64: 1e-10, onp.float32: 2e-4}
SHAPES = [(1, 1), (5, 3), (3, 5), (4, 4), (2, 6, 4), (2, 3, 4, 7), (40, 25)]
FD_REL = 1e-6


def _orthogonal(rng, n, batch=()):
    q, r = onp.linalg.qr(rng.standard_normal(batch + (n, n)))
    return q * onp.sign(onp.diagonal(r, axis1=-2, axis2=-1))[..., None, :]


def matrix(rng, shape, spectrum=None):
    """A (..., M, N) stack with the given singular values (default: well separated)."""
    *batch, m, n = shape
    k = min(m, n)
    d = onp.exp(onp.linspace(0.7, -0.7, k)) if spectrum is None else onp.asarray(spectrum, float)
    u = _orthogonal(rng, m, tuple(batch))[..., :k]
    v = _orthogonal(rng, n, tuple(batch))[..., :k]
    return (u * d) @ onp.swapaxes(v, -1, -2)


def _err(x, ref):
    x, ref = onp.asarray(x, onp.float64), onp.asarray(ref, onp.float64)
    return onp.max(onp.abs(x - ref)) / max(onp.max(onp.abs(ref)), 1e-300) if ref.size else 0.0


def _mT(x):
    return onp.swapaxes(onp.asarray(x, onp.float64), -1, -2)


# ----------------------------------------------------------------------------- values
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_svd_against_numpy(shape, dtype, backend):
    a = matrix(onp.random.default_rng(sum(shape)), shape).astype(dtype)
    u, s, vt = gradc.jit(lambda a: np.linalg.svd(a, full_matrices=False), backend=backend)(a)
    s_ref = onp.linalg.svd(a.astype(onp.float64), compute_uv=False)
    k = min(shape[-2:])
    assert u.dtype == s.dtype == vt.dtype == dtype
    assert u.shape == shape[:-1] + (k,) and vt.shape == shape[:-2] + (k, shape[-1]) and s.shape == s_ref.shape
    assert _err(s, s_ref) < VALUE_TOL[dtype]
    assert _err((onp.asarray(u, float) * s[..., None, :]) @ onp.asarray(vt, float), a) < VEC_TOL[dtype]
    eye = onp.eye(k)
    assert _err(_mT(u) @ u, eye) < VEC_TOL[dtype] and _err(vt @ _mT(vt), eye) < VEC_TOL[dtype]
    u_ref, _, vt_ref = onp.linalg.svd(a.astype(onp.float64), full_matrices=False)
    assert _err(u @ _mT(u), u_ref @ _mT(u_ref)) < VEC_TOL[dtype]          # the same subspaces
    assert _err(_mT(vt) @ vt, _mT(vt_ref) @ vt_ref) < VEC_TOL[dtype]
    got = gradc.jit(lambda a: np.linalg.svdvals(a) + np.linalg.svd(a, compute_uv=False), backend=backend)(a)
    assert _err(got, 2 * s_ref) < VALUE_TOL[dtype]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (2, 4, 6), (0, 3), (3, 0)], ids=str)
def test_full_matrices_against_numpy(shape, backend):
    a = onp.random.default_rng(1).standard_normal(shape)
    u, s, vt = gradc.jit(lambda a: np.linalg.svd(a), backend=backend)(a)
    ur, sr, vtr = onp.linalg.svd(a)
    assert u.shape == ur.shape and s.shape == sr.shape and vt.shape == vtr.shape
    m, n = shape[-2:]
    assert _err(_mT(u) @ u, onp.eye(m)) < 1e-12 and _err(_mT(vt) @ vt, onp.eye(n)) < 1e-12
    k = min(m, n)
    assert _err((u[..., :k] * s[..., None, :]) @ vt[..., :k, :], a) < 1e-12


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (4, 4), (2, 6, 4), (2, 4, 6), (40, 25), (0, 3), (3, 0)], ids=str)
@pytest.mark.parametrize("mode", ["reduced", "complete", "r"])
def test_qr_against_numpy(mode, shape, dtype, backend):
    """The same routines as numpy's on the same matrix: Q and R themselves agree."""
    a = onp.random.default_rng(2).standard_normal(shape).astype(dtype)
    got = gradc.jit(lambda a: np.linalg.qr(a, mode=mode), backend=backend)(a)
    want = onp.linalg.qr(a.astype(onp.float64), mode=mode)
    got, want = ((got,), (want,)) if mode == "r" else (got, want)
    for x, ref in zip(got, want):
        assert x.dtype == dtype and x.shape == ref.shape
        assert _err(x, ref) < VEC_TOL[dtype] * 10
    if mode != "r":
        assert _err(onp.asarray(got[0], float) @ onp.asarray(got[1], float), a) < VEC_TOL[dtype]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_pinv_lstsq_rank_cond_against_numpy(dtype, backend):
    rng = onp.random.default_rng(3)
    full = matrix(rng, (2, 7, 4)).astype(dtype)
    low = matrix(rng, (6, 4), [2.0, 1.0, 0.0, 0.0]).astype(dtype)       # rank 2
    jit = lambda f: gradc.jit(f, backend=backend)  # noqa: E731
    for a, rc in ((full, 1e-15), (low, 1e-4), (onp.swapaxes(full, -1, -2), 1e-15)):
        # (the rank-2 matrix's zero singular values are rounding noise: a cut-off above it)
        assert _err(jit(lambda a: np.linalg.pinv(a, rc))(a), onp.linalg.pinv(a.astype(float), rc)) < VEC_TOL[dtype]
        assert (jit(lambda a: np.linalg.matrix_rank(a))(a) == onp.linalg.matrix_rank(a)).all()
    f64 = low.astype(float)
    for kw in ({"rcond": 0.6}, {"rtol": None}, {"rtol": 0.4}):
        assert _err(jit(lambda a: np.linalg.pinv(a, **kw))(f64), onp.linalg.pinv(f64, **kw)) < 1e-12, kw
    for kw in ({"tol": 1.5}, {"rtol": 0.6}):
        assert jit(lambda a: np.linalg.matrix_rank(a, **kw))(f64) == onp.linalg.matrix_rank(f64, **kw) == 1
    rtols = onp.array([0.3, 0.7])
    assert (jit(lambda a, r: np.linalg.matrix_rank(a, rtol=r))(full, rtols)
            == onp.linalg.matrix_rank(full, rtol=rtols)).all()
    b = rng.standard_normal((7, 2)).astype(dtype)
    for a, rhs, rc in ((full[0], b, None), (full[0], b[:, 0], None), (_mT(full[0]).astype(dtype), b[:4], None),
                       (low, b[:6], 1e-4)):
        x, res, rank, s = jit(lambda a, b: np.linalg.lstsq(a, b, rc))(a, rhs)
        xr, resr, rankr, sr = onp.linalg.lstsq(a.astype(float), rhs.astype(float), rc)
        assert _err(x, xr) < VEC_TOL[dtype] and _err(s, sr) < VALUE_TOL[dtype] and rank == rankr
        assert x.dtype == dtype and x.shape == xr.shape
        if rankr == a.shape[1] or a.shape[0] <= a.shape[1]:      # numpy's empty residuals when rank-deficient
            assert res.shape == resr.shape and _err(res, resr) < VEC_TOL[dtype] * 10
    for p in (None, 2, -2, "fro", 1, -onp.inf):
        assert _err(jit(lambda a: np.linalg.cond(a, p))(full[:, :4]), onp.linalg.cond(full[:, :4].astype(float), p)) \
            < VEC_TOL[dtype], p
    for singular in (onp.zeros((2, 2)), onp.diag([1.0, 0.0])):      # s_min exactly 0: inf, as numpy
        assert jit(lambda a: np.linalg.cond(a))(singular) == onp.linalg.cond(singular) == onp.inf
    with pytest.raises(LinAlgError, match=r"SVD did not converge \(in linalg\.svdvals at test_linalg_svd\.py:\d+"):
        jit(lambda a: np.linalg.cond(a))(onp.full((2, 2), onp.nan))     # numpy's error too


@pytest.mark.parametrize("backend", BACKENDS)
def test_matrix_norms_from_singular_values(backend):
    rng = onp.random.default_rng(4)
    x = rng.standard_normal((3, 5, 4))
    for kw in ({"ord": 2, "axis": (1, 2)}, {"ord": -2, "axis": (2, 1)}, {"ord": "nuc", "axis": (0, 2), "keepdims": True},
               {"ord": 2, "axis": (1, 2), "keepdims": True}):
        got = gradc.jit(lambda x: np.linalg.norm(x, **kw), backend=backend)(x)
        want = onp.linalg.norm(x, **kw)
        assert got.shape == want.shape and _err(got, want) < 1e-12, kw
    for o in (2, -2, "nuc"):
        assert _err(gradc.jit(lambda x: np.linalg.matrix_norm(x, ord=o), backend=backend)(x),
                    onp.linalg.matrix_norm(x, ord=o)) < 1e-12
        assert _err(gradc.jit(lambda x: np.linalg.norm(x, o), backend=backend)(x[0]), onp.linalg.norm(x[0], o)) < 1e-12


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (2, 4, 4), (40, 25)], ids=str)
def test_gradients_through_singular_values_closed_forms(shape, dtype, backend):
    a = matrix(onp.random.default_rng(5), shape).astype(dtype)
    u, _, vt = onp.linalg.svd(a.astype(float), full_matrices=False)
    tol = VEC_TOL[dtype]
    g = gradc.grad(lambda a: np.sum(np.linalg.svdvals(a)), backend=backend)(a)
    assert g.dtype == dtype and _err(g, u @ vt) < tol
    g = gradc.grad(lambda a: np.sum(np.linalg.norm(a, "nuc", axis=(-2, -1))), backend=backend)(a)
    assert _err(g, u @ vt) < tol
    g = gradc.grad(lambda a: np.sum(np.linalg.norm(a, 2, axis=(-2, -1))), backend=backend)(a)
    assert _err(g, u[..., :, :1] @ vt[..., :1, :]) < tol
    g = gradc.grad(lambda a: np.sum(np.linalg.norm(a, -2, axis=(-2, -1))), backend=backend)(a)
    assert _err(g, u[..., :, -1:] @ vt[..., -1:, :]) < tol


@pytest.mark.parametrize("backend", BACKENDS)
def test_singular_value_gradients_are_exact_at_repeated_values(backend):
    """An orthogonal Q times 2: every singular value is 2.  Σs = 2n exactly near it as
    ‖·‖_nuc, whose gradient there is U Vᵀ = Q; the same through svd's S."""
    q = _orthogonal(onp.random.default_rng(6), 5)
    a = 2 * q
    for f in (lambda a: np.sum(np.linalg.svdvals(a)), lambda a: np.linalg.norm(a, "nuc"),
              lambda a: np.sum(np.linalg.svd(a)[1])):
        g = gradc.grad(f, backend=backend)(a)
        assert onp.all(onp.isfinite(g)) and _err(g, q) < 1e-12
    # the spectral norm's gradient at a tie is a subgradient: u₁v₁ᵀ for the computed u₁, v₁ (norm 1, rank 1)
    g = gradc.grad(lambda a: np.linalg.norm(a, 2), backend=backend)(a)
    assert abs(onp.linalg.norm(g, 2) - 1) < 1e-12 and onp.linalg.matrix_rank(g) == 1
    assert abs(onp.sum(g * a) - 2) < 1e-12       # <∂‖A‖₂, A> = ‖A‖₂


def _fd_check(f, ref, a, backend, seed=0, jvp=True):
    """gradc's gradient and tangent of f against central differences of ref (numpy),
    in 3 random directions."""
    g = gradc.grad(f, backend=backend)(a)
    assert g.shape == a.shape and onp.all(onp.isfinite(g))
    rng = onp.random.default_rng(seed)
    for _ in range(3):
        v = rng.standard_normal(a.shape)
        h = 1e-6
        fd = (ref(a + h * v) - ref(a - h * v)) / (2 * h)
        bound = onp.linalg.norm(g) * onp.linalg.norm(v)
        assert abs(onp.sum(g * v) - fd) <= FD_REL * bound
        if jvp:
            _, t = gradc.jvp(f, (a,), (v,), backend=backend)
            assert abs(t - fd) <= FD_REL * bound


def _weights(shape, seed=9):
    return onp.random.default_rng(seed).standard_normal(shape)


# sign-free functions of the factors: U ∘ U, U Uᵀ, U f(S) Vᵀ (a column's sign cancels)
def _mk(a):
    return a.shape[-2], min(a.shape[-2:])


SVD_GRADS = {
    "U_squared": lambda m, a, w: m.sum(m.linalg.svd(a, full_matrices=False)[0] ** 2 * w[: _mk(a)[0], : _mk(a)[1]]),
    "Vt_squared": lambda m, a, w: m.sum(m.linalg.svd(a, full_matrices=False)[2] ** 2 * w[: _mk(a)[1], : a.shape[-1]]),
    "U_sinS_Vt": lambda m, a, w: m.sum(m.tanh((lambda u, s, vt: (u * m.sin(s)[..., None, :]) @ vt)(
        *m.linalg.svd(a, full_matrices=False))) * w[: a.shape[-2], : a.shape[-1]]),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (5, 5), (2, 6, 3), (30, 20)], ids=str)
@pytest.mark.parametrize("case", list(SVD_GRADS))
def test_svd_vector_gradients_against_finite_differences(case, shape, backend):
    a = matrix(onp.random.default_rng(7), shape)
    w = _weights((max(shape[-2:]),) * 2)
    f = SVD_GRADS[case]
    _fd_check(lambda a: f(np, a, w), lambda a: f(onp, a, w), a, backend)


QR_GRADS = {
    "Q": lambda m, a, w: m.sum(m.sin(m.linalg.qr(a)[0]) * w[..., : a.shape[-2], : a.shape[-1]]),
    "R": lambda m, a, w: m.sum(m.sin(m.linalg.qr(a, mode="r")) * w[..., : a.shape[-1], : a.shape[-1]]),
    "QR_both": lambda m, a, w: (lambda q, r: m.sum(q * w[..., : a.shape[-2], : a.shape[-1]]) + m.sum(r ** 2))(
        *m.linalg.qr(a)),
    "pinv": lambda m, a, w: m.sum(m.sin(m.linalg.pinv(a)) * w[..., : a.shape[-1], : a.shape[-2]]),
    "lstsq": lambda m, a, w: m.sum(m.sin(m.linalg.lstsq(a, w[..., : a.shape[-2], :2])[0])),
    "cond": lambda m, a, w: m.linalg.cond(a[: a.shape[1]]),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(6, 4), (5, 5), (30, 20)], ids=str)
@pytest.mark.parametrize("case", list(QR_GRADS))
def test_qr_pinv_lstsq_gradients_against_finite_differences(case, shape, backend):
    a = matrix(onp.random.default_rng(8), shape)
    w = _weights((max(shape),) * 2)
    f = QR_GRADS[case]
    _fd_check(lambda a: f(np, a, w), lambda a: f(onp, a, w), a, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_pinv_gradient_holds_at_repeated_singular_values(backend):
    """pinv is a primitive with the pseudo-inverse's own rule: at an orthogonal matrix
    (all singular values 1, where U's and Vᵀ's rules are singular) its gradient still
    matches finite differences, as inv's would; wide and tall rank-deficient-free too."""
    q = _orthogonal(onp.random.default_rng(10), 4)
    w = _weights((4, 4))
    f = lambda m, a: m.sum(m.sin(m.linalg.pinv(a)) * w[: a.shape[1], : a.shape[0]])  # noqa: E731
    for a in (q, q[:, :3], q[:3]):
        _fd_check(lambda a: f(np, a), lambda a: f(onp, a), a, backend)
    g = gradc.grad(lambda a: np.sum(np.linalg.pinv(a) * w), backend=backend)(q)
    assert _err(g, -q @ w @ q) < 1e-12              # d tr(Wᵀ A⁻¹) = −A⁻ᵀ W A⁻ᵀ, A⁻¹ = Qᵀ


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (6, 6), (2, 7, 4), (40, 25)], ids=str)
def test_pinv_lstsq_gradients_when_rcond_drops_nonzero_singular_values(shape, backend):
    """With rcond = 0.5 the singular values below 0.5 s_max (here 0.5 .. 0.2 of it) are
    dropped but not 0: P = V_K S_K⁻¹ U_Kᵀ turns with the kept vectors, which couple to
    the dropped ones through 1/(s_k² − s_d²).  Golub and Pereyra's rule alone was 0.06
    to 1.2 off.  Oracle: central differences of numpy's pinv/lstsq, whose kept set does
    not change within h (no singular value is near the cut-off)."""
    *batch, m, n = shape
    k = min(m, n)
    a = matrix(onp.random.default_rng(16), shape, onp.geomspace(1.0, 0.2, k) if k > 1 else [1.0])
    rc = 0.5
    w = _weights((max(m, n),) * 2)
    f = lambda m_, a: m_.sum(m_.sin(m_.linalg.pinv(a, rc)) * w[: a.shape[-1], : a.shape[-2]])  # noqa: E731
    _fd_check(lambda a: f(np, a), lambda a: f(onp, a), a, backend)
    if not batch:
        rhs = w[:m, :2]
        g = lambda m_, a: m_.sum(m_.sin(m_.linalg.lstsq(a, rhs, rcond=rc)[0]))  # noqa: E731
        _fd_check(lambda a: g(np, a), lambda a: g(onp, a), a, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_pinv_second_derivative_when_rcond_drops_nonzero_singular_values(backend):
    """The coupling terms are written with differentiable primitives: a Hessian-vector
    product matches central differences of the gradient (h = 1e-5, as below)."""
    rng = onp.random.default_rng(17)
    a0 = matrix(rng, (6, 4), onp.geomspace(1.0, 0.2, 4))
    w = _weights((6, 6))
    f = lambda a: np.sum(np.sin(np.linalg.pinv(a, 0.5)) * w[:4, :6])  # noqa: E731
    v = rng.standard_normal(a0.shape)
    hv = onp.asarray(gradc.hvp(f, (a0,), (v,), backend=backend)).reshape(a0.shape)
    g = gradc.grad(f, backend=backend)
    assert _err(hv, (g(a0 + 1e-5 * v) - g(a0 - 1e-5 * v)) / 2e-5) < 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_gradients_follow_float64(backend):
    a = matrix(onp.random.default_rng(11), (2, 7, 5))
    w = _weights((7, 7))
    for f in (SVD_GRADS["U_sinS_Vt"], QR_GRADS["QR_both"], QR_GRADS["pinv"]):
        g64 = gradc.grad(lambda a: f(np, a, w), backend=backend)(a)
        g32 = gradc.grad(lambda a: f(np, a, w.astype(onp.float32)), backend=backend)(a.astype(onp.float32))
        assert g32.dtype == onp.float32 and _err(g32, g64) < 2e-4


def test_against_jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    a = matrix(onp.random.default_rng(12), (3, 6, 4))
    w = _weights((6, 6))
    cases = list(SVD_GRADS.values()) + [QR_GRADS["Q"], QR_GRADS["R"], QR_GRADS["pinv"],
                                        lambda m, a, w: m.sum(m.linalg.norm(a, 2, axis=(-2, -1))),
                                        lambda m, a, w: m.sum(m.linalg.norm(a, "nuc", axis=(-2, -1)))]
    # one function of them all per shape (QR only tall): JAX traces each gradient once
    for x, fs in ((a, cases), (onp.swapaxes(a, -1, -2), [c for c in cases if c not in (QR_GRADS["Q"], QR_GRADS["R"])])):
        total = lambda m, x: sum(f(m, x, w if m is np else jnp.asarray(w)) for f in fs)  # noqa: E731
        g = gradc.grad(lambda x: total(np, x), backend="numpy")(x)
        gj = jax.jit(jax.grad(lambda x: total(jnp, x)))(jnp.asarray(x))
        assert _err(g, onp.asarray(gj)) < 1e-9


def test_lstsq_with_dropped_singular_values_against_jax():
    """JAX's lstsq differentiates through its svd, so it couples kept and dropped
    singular values too (JAX's pinv uses Golub and Pereyra's rule alone)."""
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    a = matrix(onp.random.default_rng(18), (7, 4), onp.geomspace(1.0, 0.2, 4))
    b = _weights((7, 7))[:, :3]
    f = lambda m, a: m.sum(m.sin(m.linalg.lstsq(a, b, rcond=0.5)[0]))  # noqa: E731
    g = gradc.grad(lambda a: f(np, a), backend="numpy")(a)
    assert _err(g, onp.asarray(jax.grad(lambda a: f(jnp, a))(jnp.asarray(a)))) < 1e-12


@pytest.mark.parametrize("backend", BACKENDS)
def test_second_derivatives_through_the_rules(backend):
    """The rules are written with differentiable primitives: Hessian-vector products
    match central differences of the gradient (h = 1e-5: truncation ~h², rounding
    ~eps |g| / h ~ 1e-10)."""
    rng = onp.random.default_rng(15)
    a0 = matrix(rng, (6, 4))
    w = _weights((6, 6))

    def f(a):
        u, s, vt = np.linalg.svd(a, full_matrices=False)
        q, r = np.linalg.qr(a)
        return (np.linalg.norm(a, "nuc") + np.sum(s ** 3) + np.sum(u * u * w[:6, :4]) + np.sum(vt * vt * w[:4, :4])
                + np.sum(np.sin(q) * w[:6, :4]) + np.sum(r ** 3) + np.sum(np.sin(np.linalg.pinv(a)) * w[:4, :6]))
    v = rng.standard_normal(a0.shape)
    hv = onp.asarray(gradc.hvp(f, (a0,), (v,), backend=backend)).reshape(a0.shape)
    g = gradc.grad(f, backend=backend)
    fd = (g(a0 + 1e-5 * v) - g(a0 - 1e-5 * v)) / 2e-5
    assert _err(hv, fd) < 1e-6


# ----------------------------------------------------------------------------- vmap, errors
@pytest.mark.parametrize("backend", BACKENDS)
def test_vmap_batches_the_decompositions(backend):
    a = matrix(onp.random.default_rng(13), (3, 5, 4))

    def f(x):
        u, s, vt = np.linalg.svd(x, full_matrices=False)
        q, r = np.linalg.qr(x)
        return (u * s) @ vt, q @ r, np.linalg.pinv(x), np.linalg.norm(x, 2)
    got = gradc.jit(gradc.vmap(f), backend=backend)(a)
    for x, ref in zip(got, (a, a, onp.linalg.pinv(a), onp.linalg.norm(a, 2, axis=(1, 2)))):
        assert _err(x, ref) < 1e-12
    g = gradc.jit(gradc.vmap(gradc.grad(lambda x: np.linalg.norm(x, "nuc"))), backend=backend)(a)
    u, _, vt = onp.linalg.svd(a, full_matrices=False)
    assert _err(g, u @ vt) < 1e-12


def test_errors_name_what_is_unsupported():
    tall = onp.ones((4, 3)) + onp.eye(4, 3)
    with pytest.raises(UnsupportedError, match=r"linalg\.svd: full_matrices=True with a non-square"):
        gradc.grad(lambda a: np.sum(np.linalg.svd(a)[0]), backend="numpy")(tall)
    with pytest.raises(UnsupportedError, match=r"linalg\.qr: R of a wide matrix \(M < N\) has no derivative"):
        gradc.grad(lambda a: np.sum(np.linalg.qr(a, mode="r")), backend="numpy")(tall.T)
    with pytest.raises(UnsupportedError, match=r"mode='complete' with M > N"):
        gradc.grad(lambda a: np.sum(np.linalg.qr(a, mode="complete")[0]), backend="numpy")(tall)
    with pytest.raises(UnsupportedError, match=r"mode='raw' is not supported"):
        gradc.jit(lambda a: np.linalg.qr(a, mode="raw"), backend="numpy")(tall)
    with pytest.raises(ShapeError, match=r"linalg\.svd: argument a has rank 1"):
        gradc.jit(lambda a: np.linalg.svd(a), backend="numpy")(onp.ones(3))
    with pytest.raises(UnsupportedError, match=r"float16 result is not supported"):   # no float16 value gets in
        gradc.jit(lambda a: np.linalg.svdvals(a.astype(onp.float16)), backend="numpy")(tall)
    with pytest.raises(ShapeError, match=r"linalg\.lstsq: argument a has shape \(2, 4, 3\)"):
        gradc.jit(lambda a, b: np.linalg.lstsq(a, b), backend="numpy")(onp.ones((2, 4, 3)), onp.ones(4))
    with pytest.raises(ArgumentError, match="rtol` and `rcond` can't be both set"):
        gradc.jit(lambda a: np.linalg.pinv(a, 0.1, rtol=0.1), backend="numpy")(tall)
    with pytest.raises(UnsupportedError, match=r'linalg\.svdvals .*backend="llvm"'):
        gradc.jit(lambda a: np.linalg.svdvals(a), backend="c")(tall)
    with pytest.raises(UnsupportedError, match="linalg.eig"):
        np.linalg.eig


def test_numpy_functions_on_traced_values_reach_the_ops():
    a = matrix(onp.random.default_rng(14), (5, 3))
    got = gradc.jit(lambda a: onp.linalg.svd(a, compute_uv=False) + onp.linalg.norm(a, 2) + onp.linalg.cond(a),
                    backend="numpy")(a)
    s = onp.linalg.svd(a, compute_uv=False)
    assert _err(got, s + s[0] + s[0] / s[-1]) < 1e-12
