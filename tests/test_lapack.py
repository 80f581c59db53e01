"""gradc.numpy.linalg's LAPACK ops (gradc/ops/lapack.py): solve, inv, det, slogdet,
cholesky, eigh and eigvalsh, on backend="llvm" (numpy's LAPACK through
runtime/lapack.c) and backend="numpy".

Oracles: numpy.linalg in float64 for values; central finite differences of the same
function evaluated by numpy for gradients and tangents (directional differences, so
that n = 200 costs two evaluations a direction, not 2 n^2).

Test matrices are well conditioned by construction: A = Q1 diag(d) Q2ᵀ (general) or
Q diag(d) Qᵀ (symmetric positive definite) with Q random orthogonal and d =
exp(linspace(-0.7, 0.7, n)), so cond(A) <= e^1.4 ~ 4, |det A| ~ 1 at every n (no
overflow in float32), and neighbouring eigenvalues are at least ~1.4 e^-0.7 / n apart
(0.0035 at n = 200) for eigenvector tests.

Tolerances.  The LAPACK algorithms used (LU with partial pivoting, Cholesky, the
divide-and-conquer symmetric eigensolver) are backward stable: the computed result
is exact for a matrix within c n eps |A| of the input, so its normwise relative error
is at most ~ c n eps cond(A).  With cond <= 4 and n <= 200 that is ~ 2e-13 (float64) and
~ 1e-4 (float32) for c ~ 1; ``VALUE_TOL`` takes c ~ 500 for float64 (where gradc calls
the very routines numpy does and mostly agrees to the bit) and c ~ 2 for float32
(measured: at most 2e-5).  Eigenvectors are determined to ~ eps |A| / gap (gap >=
0.0035): ~ 1e-13 and ~ 7e-5; ``EIGVEC_TOL`` allows a factor ~7 (float32 measured: 3e-5).
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as onp
import pytest

import gradc
import gradc.numpy as np
from gradc.errors import ArgumentError, LinAlgError, ShapeError, UnsupportedError
from gradc.ops.lapack import solve_triangular
from lapack_support import REBUILD, native_lapack

# llvm's tests skip, naming the rebuild, with an extension built before runtime/lapack.c
# (test_llvm_without_lapack_refuses checks what a user then gets)
BACKENDS = [pytest.param("llvm", marks=pytest.mark.skipif(not native_lapack(), reason=REBUILD)), "numpy"]
SIZES = [1, 2, 3, 17, 200]
DTYPES = [onp.float64, onp.float32]
VALUE_TOL = {onp.float64: 1e-10, onp.float32: 2e-4}
EIGVEC_TOL = {onp.float64: 1e-9, onp.float32: 5e-4}
# Directional central differences, h = 1e-6: truncation h^2 |f'''| and rounding
# eps |f| / h ~ 2e-10 |f| stay far below 1e-6 of the bound |<grad, V>| <= |grad| |V|
# (Cauchy-Schwarz) for the well-scaled functions below.
FD_REL = 1e-6


def _orthogonal(rng, n, batch=()):
    q, r = onp.linalg.qr(rng.standard_normal(batch + (n, n)))
    return q * onp.sign(onp.diagonal(r, axis1=-2, axis2=-1))[..., None, :]


def _spectrum(n):
    return onp.exp(onp.linspace(-0.7, 0.7, n))


def general(rng, n, batch=()):
    """A well-conditioned (cond <= ~4) non-symmetric matrix stack."""
    return (_orthogonal(rng, n, batch) * _spectrum(n)) @ onp.swapaxes(_orthogonal(rng, n, batch), -1, -2)


def spd(rng, n, batch=()):
    """A symmetric positive definite matrix stack with eigenvalues in [0.5, 2]."""
    q = _orthogonal(rng, n, batch)
    a = (q * _spectrum(n)) @ onp.swapaxes(q, -1, -2)
    return (a + onp.swapaxes(a, -1, -2)) / 2


def _normwise(x, ref):
    x, ref = onp.asarray(x, onp.float64), onp.asarray(ref, onp.float64)
    return onp.max(onp.abs(x - ref)) / max(onp.max(onp.abs(ref)), 1e-300) if ref.size else 0.0


def _align_signs(v, ref):
    """Eigenvectors are defined up to sign: flip v's columns to agree with ref's."""
    s = onp.sign(onp.sum(v * ref, axis=-2, keepdims=True))
    return v * onp.where(s == 0, 1, s)


# ----------------------------------------------------------------------------- values
VALUE_CASES = {
    # name: (matrix kind, gradc function of (a, b), numpy reference of (a, b), b's shape after a's (n,))
    "solve_vector": ("general", lambda a, b: np.linalg.solve(a, b), onp.linalg.solve, "vector"),
    "solve_matrix": ("general", lambda a, b: np.linalg.solve(a, b), onp.linalg.solve, "matrix"),
    "inv": ("general", lambda a, b: np.linalg.inv(a), lambda a, b: onp.linalg.inv(a), None),
    "det": ("general", lambda a, b: np.linalg.det(a), lambda a, b: onp.linalg.det(a), None),
    "slogdet": ("general", lambda a, b: np.stack(np.linalg.slogdet(a)),
                lambda a, b: onp.stack(onp.linalg.slogdet(a)), None),
    "cholesky": ("spd", lambda a, b: np.linalg.cholesky(a), lambda a, b: onp.linalg.cholesky(a), None),
    "eigvalsh": ("spd", lambda a, b: np.linalg.eigvalsh(a), lambda a, b: onp.linalg.eigvalsh(a), None),
    # cholesky's derivatives' triangular solves (internal; scipy.linalg.solve_triangular's
    # result): only a's lower (upper) triangle is read, the rest is noise
    "solve_lower": ("lower", lambda a, b: solve_triangular(a, b), lambda a, b: onp.linalg.solve(onp.tril(a), b),
                    "matrix"),
    "solve_upper": ("upper", lambda a, b: solve_triangular(a, b, lower=False),
                    lambda a, b: onp.linalg.solve(onp.triu(a), b), "matrix"),
}


def triangular(rng, n, batch=(), lower=True):
    """A Cholesky factor (cond <= 2) in one triangle, noise in the other."""
    chol = onp.linalg.cholesky(spd(rng, n, batch))
    noise = rng.standard_normal(batch + (n, n))
    if lower:
        return chol + onp.triu(noise, 1)
    return onp.swapaxes(chol, -1, -2) + onp.tril(noise, -1)


def _matrix(kind, rng, n, batch):
    if kind in ("lower", "upper"):
        return triangular(rng, n, batch, kind == "lower")
    return (general if kind == "general" else spd)(rng, n, batch)


def _inputs(kind, rhs, n, batch, dtype, seed=0):
    rng = onp.random.default_rng(seed + n)
    a = _matrix(kind, rng, n, batch)
    if rhs == "vector":       # numpy 2: a (M,) b is one vector, for every matrix of a's stack
        b = rng.standard_normal(n)
    elif rhs == "matrix":
        b = rng.standard_normal(batch + (n, 3))
    else:
        b = onp.zeros(1)
    return a.astype(dtype), b.astype(dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [(), (3,)])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("case", list(VALUE_CASES))
def test_values_against_numpy(case, n, batch, dtype, backend):
    kind, f, ref, rhs = VALUE_CASES[case]
    a, b = _inputs(kind, rhs, n, batch, dtype)
    got = gradc.jit(f, backend=backend)(a, b)
    want = ref(a.astype(onp.float64), b.astype(onp.float64))
    assert got.dtype == dtype and got.shape == want.shape
    assert _normwise(got, want) < VALUE_TOL[dtype], (case, n, batch, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [(), (3,)])
@pytest.mark.parametrize("n", SIZES)
def test_eigh_against_numpy(n, batch, dtype, backend):
    a, _ = _inputs("spd", None, n, batch, dtype)
    w, v = gradc.jit(lambda a: np.linalg.eigh(a), backend=backend)(a)
    w_ref, v_ref = onp.linalg.eigh(a.astype(onp.float64))
    assert w.dtype == v.dtype == dtype
    assert _normwise(w, w_ref) < VALUE_TOL[dtype]
    assert _normwise(_align_signs(v, v_ref), v_ref) < EIGVEC_TOL[dtype]
    # and a true decomposition, whatever the signs
    recon = (v.astype(onp.float64) * w.astype(onp.float64)[..., None, :]) @ onp.swapaxes(v, -1, -2)
    assert _normwise(recon, a) < EIGVEC_TOL[dtype]


@pytest.mark.parametrize("backend", BACKENDS)
def test_solve_broadcasts_batch_axes_as_numpy(backend):
    rng = onp.random.default_rng(7)
    cases = [((4, 4), (2, 3, 4, 5)), ((3, 4, 4), (4, 2)), ((2, 1, 4, 4), (3, 4, 1)), ((3, 4, 4), (1, 4, 2))]
    for sa, sb in cases:
        a = general(rng, 4, sa[:-2])
        b = rng.standard_normal(sb)
        got = gradc.jit(lambda a, b: np.linalg.solve(a, b), backend=backend)(a, b)
        want = onp.linalg.solve(a, b)
        assert got.shape == want.shape and _normwise(got, want) < 1e-12, (sa, sb)


@pytest.mark.parametrize("dtypes", [(onp.float64, onp.float32), (onp.float32, onp.float64)])
@pytest.mark.parametrize("backend", BACKENDS)
def test_solve_triangular_of_mixed_dtypes(dtypes, backend):
    """A triangle and a right-hand side of different float dtypes solve in the common one
    (found by the fuzzer, seed 97: on llvm a float32 b beside a float64 a went to trtrs
    unconverted, which read its bits as float64), and b's gradient comes back in b's
    dtype: against numpy in float64 and the closed form T^-T W."""
    rng = onp.random.default_rng(5)
    a = (onp.tril(rng.standard_normal((2, 4, 4))) * 0.2 + 2 * onp.eye(4)).astype(dtypes[0])
    b = rng.standard_normal((2, 4, 3)).astype(dtypes[1])
    W = rng.standard_normal((2, 4, 3))
    T = onp.tril(a.astype(onp.float64))
    want = onp.linalg.solve(T, b.astype(onp.float64))
    got = gradc.jit(lambda a, b: solve_triangular(a, b), backend=backend)(a, b)
    assert got.dtype == onp.float64
    onp.testing.assert_allclose(got, want, rtol=1e-6)       # float32 inputs, solved in float64
    g = gradc.grad(lambda a, b: np.sum(solve_triangular(a, b) * W), argnums=1, backend=backend)(a, b)
    assert g.dtype == dtypes[1]
    onp.testing.assert_allclose(g, onp.linalg.solve(onp.swapaxes(T, -1, -2), W),
                                rtol=VALUE_TOL[dtypes[1]], atol=VALUE_TOL[dtypes[1]])


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_kernel_serves_every_size(backend):
    """Sizes are symbolic: the compiled function runs at sizes it was not traced at."""
    f = gradc.jit(lambda a, b: np.linalg.solve(a, b) + np.linalg.slogdet(a)[1], backend=backend)
    rng = onp.random.default_rng(3)
    for n in (5, 2, 30):
        a, b = general(rng, n), rng.standard_normal(n)
        assert _normwise(f(a, b), onp.linalg.solve(a, b) + onp.linalg.slogdet(a)[1]) < 1e-12


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_and_integer_matrices_follow_numpy(backend):
    z = onp.zeros((0, 0))
    assert gradc.jit(lambda a: np.linalg.det(a), backend=backend)(z) == onp.linalg.det(z) == 1.0
    sign, logdet = gradc.jit(lambda a: np.linalg.slogdet(a), backend=backend)(z)
    assert (sign, logdet) == (1.0, 0.0)
    m = onp.array([[2, 1], [1, 3]])          # integers are solved in float64, as numpy does
    got = gradc.jit(lambda a: np.linalg.inv(a), backend=backend)(m)
    assert got.dtype == onp.float64 and _normwise(got, onp.linalg.inv(m)) < 1e-15


# ----------------------------------------------------------------------------- gradients
def _sym(s):
    return (s + np.swapaxes(s, -1, -2)) / 2


def _weights(shape, seed):
    return onp.random.default_rng(seed).standard_normal(shape)


# Scalar functions of a perturbation S of a fixed matrix A0 (S = 0 at the test point);
# symmetric ops see A0 + sym(S), so their derivative is the symmetric one they define.
# Weights make the cotangent of each output a general (dense, non-symmetric) matrix.
def _f_solve(s, a0, w):
    x = np.linalg.solve(a0 + s, w[..., :3])
    return np.sum(np.sin(x) * w[..., 3:6])


def _f_solve_vec(s, a0, w):
    return np.sum(np.linalg.solve(a0 + s, w[0, ..., 0]) ** 2)


def _f_inv(s, a0, w):
    return np.sum(np.linalg.inv(a0 + s) * w)


def _f_det(s, a0, w):
    return np.sum(np.linalg.det(a0 + s) * w[..., 0, 0])


def _f_slogdet(s, a0, w):
    return np.sum(np.linalg.slogdet(a0 + s)[1] * w[..., 0, 0])


def _f_cholesky(s, a0, w):
    return np.sum(np.linalg.cholesky(a0 + _sym(s)) * w)


def _f_eigvalsh(s, a0, w):
    return np.sum(np.linalg.eigvalsh(a0 + _sym(s)) * w[..., 0, :])


def _f_eigh(s, a0, w):
    # V ∘ V: each column's sign (LAPACK's choice) cancels; its derivative is V's
    w_, v = np.linalg.eigh(a0 + _sym(s))
    return np.sum(v * v * w) + np.sum(w_ * w[..., 0, :])


def _f_solve_lower(s, a0, w):
    return np.sum(np.sin(solve_triangular(a0 + s, w[..., :3])) * w[..., 3:6])


def _f_solve_upper(s, a0, w):
    return np.sum(np.sin(solve_triangular(a0 + s, w[..., :3], lower=False)) * w[..., 3:6])


GRAD_CASES = {"solve_lower": ("lower", _f_solve_lower), "solve_upper": ("upper", _f_solve_upper),
              "solve": ("general", _f_solve), "solve_vector": ("general", _f_solve_vec),
              "inv": ("general", _f_inv), "det": ("general", _f_det), "slogdet": ("general", _f_slogdet),
              "cholesky": ("spd", _f_cholesky), "eigvalsh": ("spd", _f_eigvalsh), "eigh": ("spd", _f_eigh)}


def _grad_inputs(case, n, batch):
    kind, f = GRAD_CASES[case]
    rng = onp.random.default_rng(100 + n)
    a0 = _matrix(kind, rng, n, batch)
    w = _weights(batch + (n, max(n, 6)), n)
    if not case.startswith("solve") or case == "solve_vector":
        w = w[..., :n]
    if case == "solve_vector":
        w = _weights((1,) + batch + (n, 1), n) if not batch else _weights((1, n, 1), n)
    return f, onp.zeros_like(a0), a0, w


def _directional_fd(f, s, a0, w, v, h=1e-6):
    return (f(s + h * v, a0, w) - f(s - h * v, a0, w)) / (2 * h)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch", [(), (3,)])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("case", list(GRAD_CASES))
def test_gradient_and_tangent_against_finite_differences(case, n, batch, backend):
    f, s, a0, w = _grad_inputs(case, n, batch)
    g = gradc.grad(f, backend=backend)(s, a0, w)
    assert g.shape == s.shape and onp.all(onp.isfinite(g))
    rng = onp.random.default_rng(5)
    for _ in range(3):
        v = rng.standard_normal(s.shape)
        bound = onp.linalg.norm(g) * onp.linalg.norm(v)
        fd = _directional_fd(f, s, a0, w, v)
        assert abs(onp.sum(g * v) - fd) <= FD_REL * bound, (case, n, batch)
        _, tangent = gradc.jvp(f, (s, a0, w), (v, onp.zeros_like(a0), onp.zeros_like(w)), backend=backend)
        assert abs(tangent - fd) <= FD_REL * bound, (case, n, batch, "jvp")


# float32 gradients against float64 ones (gradc's, checked above against finite
# differences): each rule chains a few backward-stable solves and products (error
# ~ n eps32 cond ~ 1e-4 at n = 200, cond <= 4): the suite's F32_GRAD_RTOL, 2e-4
# (measured: at most 2e-5).  eigh's F = 1/(w_j - w_i) amplifies its inputs' errors by
# up to ||A|| / gap (~600 at n = 200): 2e-3 (measured: 1.1e-4).
F32_GRAD_TOL = {"eigh": 2e-3}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", [3, 17, 200])
@pytest.mark.parametrize("case", list(GRAD_CASES))
def test_float32_gradient_follows_float64(case, n, backend):
    f, s, a0, w = _grad_inputs(case, n, (2,))
    g64 = gradc.grad(f, backend=backend)(s, a0, w)
    g32 = gradc.grad(f, backend=backend)(*(x.astype(onp.float32) for x in (s, a0, w)))
    assert g32.dtype == onp.float32
    assert _normwise(g32, g64) < F32_GRAD_TOL.get(case, 2e-4), case


@pytest.mark.parametrize("backend", BACKENDS)
def test_solve_gradient_sums_over_broadcast_batch_axes(backend):
    """b shared by a stack of matrices, and a shared by a stack of right-hand sides."""
    rng = onp.random.default_rng(11)
    a, b = general(rng, 4, (3,)), rng.standard_normal(4)

    def f(a, b):
        return np.sum(np.sin(np.linalg.solve(a, b)))
    ga, gb = gradc.grad(f, argnums=(0, 1), backend=backend)(a, b)
    for x, g, i in ((a, ga, 0), (b, gb, 1)):
        v = rng.standard_normal(x.shape)
        args_p, args_m = [a, b], [a, b]
        args_p[i], args_m[i] = x + 1e-6 * v, x - 1e-6 * v
        fd = (f(*args_p) - f(*args_m)) / 2e-6
        assert g.shape == x.shape
        assert abs(onp.sum(g * v) - fd) <= FD_REL * onp.linalg.norm(g) * onp.linalg.norm(v)


# ----------------------------------------------------------------------------- a Gaussian process
def rbf_nll(params, x, y, form):
    """A Gaussian process's negative log marginal likelihood (without N/2 ln 2π):
    K = s² exp(-|x_i - x_j|² / 2l²) + σ² I with params = (ln l, ln s, ln σ);
    0.5 yᵀ K⁻¹ y + ½ ln det K, by Cholesky (sum of ln L_ii) or by slogdet."""
    log_l, log_s, log_noise = params[0], params[1], params[2]
    d2 = np.sum((x[:, None, :] - x[None, :, :]) ** 2, axis=-1)
    n = x.shape[0]
    k = np.exp(2 * log_s) * np.exp(-0.5 * d2 / np.exp(2 * log_l)) + np.exp(2 * log_noise) * np.eye(n)
    if form == "cholesky":
        chol = np.linalg.cholesky(k)
        alpha = np.linalg.solve(chol, y)              # L⁻¹ y: 0.5 |alpha|² = 0.5 yᵀ K⁻¹ y
        return 0.5 * np.sum(alpha ** 2) + np.sum(np.log(np.diagonal(chol)))
    return 0.5 * np.dot(y, np.linalg.solve(k, y)) + 0.5 * np.linalg.slogdet(k)[1]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("form", ["cholesky", "slogdet"])
def test_gaussian_process_likelihood_gradient(form, backend):
    n = 300
    rng = onp.random.default_rng(42)
    x = rng.uniform(-3, 3, size=(n, 2))
    y = onp.sin(x[:, 0]) * onp.cos(x[:, 1]) + 0.1 * rng.standard_normal(n)
    params = onp.array([onp.log(0.8), onp.log(1.2), onp.log(0.3)])
    value, g = gradc.value_and_grad(lambda p, x, y: rbf_nll(p, x, y, form), backend=backend)(params, x, y)
    # the oracle: numpy in float64, K⁻¹ y and ln det K by numpy.linalg
    assert abs(value - rbf_nll(params, x, y, form)) <= 1e-9 * abs(value)
    for i in range(3):
        # h = 1e-5 on ln-parameters of size ~1 (cond K ~ 500 here): truncation h^2 |f'''|
        # and rounding eps |f| / h ~ 5e-9 stay far below 1e-6 of |∂f| ~ 60-210
        # (measured differences: at most 5e-9)
        e = onp.zeros(3)
        e[i] = 1e-5
        fd = (rbf_nll(params + e, x, y, form) - rbf_nll(params - e, x, y, form)) / 2e-5
        assert abs(g[i] - fd) <= 1e-6 * max(abs(fd), 1.0), (i, g[i], fd)
    assert abs(rbf_nll(params, x, y, "cholesky") - rbf_nll(params, x, y, "slogdet")) <= 1e-9 * abs(value)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("backend", BACKENDS)
def test_singular_and_indefinite_matrices_raise(backend):
    singular = onp.array([[1.0, 2.0], [2.0, 4.0]])
    stack = onp.stack([onp.eye(2), singular])           # one bad matrix in a stack is enough
    for f, a in ((lambda a: np.linalg.solve(a, onp.ones(2)), singular), (lambda a: np.linalg.inv(a), stack)):
        with pytest.raises(LinAlgError, match="[Ss]ingular matrix"):
            gradc.jit(f, backend=backend)(a)
    with pytest.raises(LinAlgError, match="[Ss]ingular matrix"):      # a zero on the diagonal
        gradc.jit(lambda a, b: solve_triangular(a, b), backend=backend)(onp.array([[1.0, 5.0], [2.0, 0.0]]), onp.ones((2, 1)))
    with pytest.raises(onp.linalg.LinAlgError, match="not positive definite"):   # numpy's class too
        gradc.jit(lambda a: np.linalg.cholesky(a), backend=backend)(-onp.eye(3))
    # numpy's conventions where nothing fails: det 0, slogdet (0, -inf)
    assert gradc.jit(lambda a: np.linalg.det(a), backend=backend)(singular) == 0.0
    sign, logdet = gradc.jit(lambda a: np.linalg.slogdet(a), backend=backend)(singular)
    assert sign == 0.0 and logdet == -onp.inf


@pytest.mark.parametrize("backend", BACKENDS)
def test_failure_names_op_and_line(backend):
    def f(a):
        return np.linalg.cholesky(a)     # the line the message names
    with pytest.raises(LinAlgError, match=r"not positive definite \(in linalg\.cholesky at test_lapack\.py:\d+\)"):
        gradc.jit(f, backend=backend)(onp.diag([1.0, -1.0]))
    # a failure in a gradient's own solve names the user's line too
    with pytest.raises(LinAlgError, match=r"Singular matrix \(in linalg\.inv in the gradient of det at test_lapack\.py:\d+\)"):
        gradc.grad(lambda a: np.linalg.det(a), backend=backend)(onp.ones((2, 2)))


def test_linear_algebra_takes_the_c_call_path_and_its_failures_keep_their_message():
    """A kernel with LAPACK calls is served by the C call path; a failure there is a MISS,
    and the Python path runs the call again and raises the error that names the user's
    op and line, on a call right after good ones (the fast path installed) too."""
    def f(a, b):
        return np.linalg.solve(a, b)     # the line the message names
    jf = gradc.jit(f)
    a, b = onp.array([[4.0, 1.0], [1.0, 3.0]]), onp.array([1.0, 2.0])
    for _ in range(2):
        onp.testing.assert_allclose(jf(a, b), onp.linalg.solve(a, b), rtol=1e-14)
    assert jf._fast is not None
    with pytest.raises(LinAlgError, match=r"Singular matrix \(in linalg\.solve at test_lapack\.py:\d+\)"):
        jf(onp.array([[1.0, 2.0], [2.0, 4.0]]), b)
    onp.testing.assert_allclose(jf(a, b), onp.linalg.solve(a, b), rtol=1e-14)   # and good again
    assert jf._fast is not None


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_arguments_name_argument_and_line(backend):
    def run(f, *args):
        gradc.jit(f, backend=backend)(*args)
    with pytest.raises(ShapeError, match=r"argument a has shape \(2, 3\).*square.*test_lapack\.py"):
        run(lambda a: np.linalg.inv(a), onp.ones((2, 3)))
    with pytest.raises(ShapeError, match=r"argument a has rank 1.*test_lapack\.py"):
        run(lambda a: np.linalg.det(a), onp.ones(3))
    with pytest.raises(ShapeError, match=r"argument b has shape \(4,\).*a's size 3.*test_lapack\.py"):
        run(lambda a, b: np.linalg.solve(a, b), onp.eye(3), onp.ones(4))
    with pytest.raises(ShapeError, match=r"argument b has shape \(3, 2\).*a's size 2"):
        run(lambda a, b: np.linalg.solve(a, b), onp.eye(2), onp.ones((3, 2)))
    with pytest.raises(ArgumentError, match="UPLO"):
        run(lambda a: np.linalg.eigh(a, UPLO="X"), onp.eye(2))


def test_integer_arguments_cannot_be_differentiated():
    with pytest.raises(gradc.GradcError):
        gradc.grad(lambda a: np.linalg.det(a))(onp.eye(2, dtype=onp.int64))


def test_llvm_without_lapack_refuses():
    """Where the extension predates runtime/lapack.c, llvm refuses with the rebuild to do."""
    if native_lapack():
        pytest.skip("this build calls LAPACK (the other tests run it)")
    with pytest.raises(UnsupportedError, match="rebuild it"):
        gradc.jit(lambda a: np.linalg.det(a), backend="llvm")(onp.eye(2))


def test_c_backend_refuses_with_advice():
    with pytest.raises(UnsupportedError, match=r'linalg\.det \(at test_lapack\.py:\d+\).*backend="llvm"'):
        gradc.jit(lambda a: np.linalg.det(a), backend="c")(onp.eye(2))
    with pytest.raises(UnsupportedError, match=r'linalg\.eigvalsh \(at test_lapack\.py:\d+\) \(behind eigh/eigvalsh\)'):
        gradc.jit(lambda a: np.linalg.eigh(a)[0], backend="c")(onp.eye(2))


def test_aot_build_refuses_with_advice(tmp_path):
    src = tmp_path / "model.py"
    src.write_text("import gradc.numpy as np\n\n\ndef f(a):\n    return np.linalg.slogdet(a)[1]\n")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(gradc.__file__)))
    env = dict(os.environ, PYTHONPATH=repo + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "gradc.cli", "build", f"{src}:f", "f64[n,n]", "-o", str(tmp_path / "out")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode != 0
    assert "linalg.slogdet" in r.stderr and "model.py:5" in r.stderr and 'backend="llvm"' in r.stderr, r.stderr


# ----------------------------------------------------------------------------- dispatch, explain
def test_numpy_functions_on_traced_values_reach_the_same_ops():
    rng = onp.random.default_rng(2)
    a = spd(rng, 5)

    def f(a):
        return onp.linalg.slogdet(a)[1] + onp.sum(onp.linalg.eigvalsh(a)) + onp.sum(onp.linalg.inv(a))
    g = gradc.grad(f)(a)
    want = onp.linalg.inv(a).T + onp.eye(5) - (onp.linalg.inv(a).T @ onp.ones((5, 5)) @ onp.linalg.inv(a).T)
    assert _normwise(g, want) < 1e-10


def test_explain_writes_the_ops():
    def nll(a, y):
        return np.dot(y, np.linalg.solve(a, y)) + np.linalg.slogdet(a)[1]
    text = str(gradc.explain(nll, onp.eye(3) * 2, onp.ones(3)))
    assert "solve(a, y)" in text and "ln(|det(a)|)" in text, text      # the forward pass
    assert "X = A⁻¹B ⇒ B̄ = A⁻ᵀ G, Ā = −B̄ Xᵀ" in text and "ln|det A| ⇒ Ā = ḡ A⁻ᵀ" in text, text   # the rules
    assert "Σ_i" not in text, text     # a's rows are not samples: solve takes the matrix whole

    def loss(k, w, x):                  # x's rows are the samples; k is taken whole
        return np.linalg.slogdet(k)[1] + np.sum(np.log1p(np.exp(x @ w)))
    text = str(gradc.explain(loss, onp.eye(3) * 2, onp.ones(2), onp.ones((5, 2)), argnums=(0, 1)))
    assert "x_iᵀ is row i of x" in text, text


def test_second_derivatives_through_the_rules():
    """The rules are written with differentiable primitives: Hessian-vector products
    match central differences of the gradient."""
    rng = onp.random.default_rng(9)
    n = 5
    a0 = spd(rng, n) + onp.eye(n)

    def f(s):
        a = a0 + _sym(s)
        w, v = np.linalg.eigh(a)
        return (np.linalg.slogdet(a)[1] + np.sum(np.linalg.solve(np.linalg.cholesky(a), onp.ones(n)) ** 2)
                + np.sum(w ** 3) + np.sum(v * v * onp.arange(n)) + np.sum(np.linalg.inv(a)) * np.linalg.det(a))
    s0, v = onp.zeros((n, n)), rng.standard_normal((n, n))
    for backend in ["numpy"] + (["llvm"] if native_lapack() else []):
        hv = onp.asarray(gradc.hvp(f, (s0,), (v,), backend=backend)).reshape(n, n)
        g = gradc.grad(f, backend=backend)
        fd = (g(s0 + 1e-5 * v) - g(s0 - 1e-5 * v)) / 2e-5
        # h = 1e-5 on a gradient of size ~10: truncation h^2 (fourth derivative) ~ 1e-8,
        # rounding eps |g| / h ~ 2e-10
        assert _normwise(hv, fd) < 1e-6
