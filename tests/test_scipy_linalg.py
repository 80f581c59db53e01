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
