"""gradc.scipy.linalg's special matrices against their defining formulas (numpy, entry
by entry), their gradients against finite differences, on all three backends; against
scipy.linalg where installed."""
from __future__ import annotations

import math

import numpy as onp
import pytest

import gradc
import gradc.numpy as np
import gradc.scipy.linalg as sla

from gradc_helpers import F32_RTOL, FD_ATOL, FD_RTOL, fd_grad


# ----------------------------------------------------------------------------- definitions (numpy)
def ref_toeplitz(c, r=None):
    r = c if r is None else r
    i, j = onp.ogrid[:c.shape[-1], :r.shape[-1]]
    return onp.where(i >= j, onp.take(c, onp.maximum(i - j, 0), axis=-1), onp.take(r, onp.maximum(j - i, 0), axis=-1))


def ref_hankel(c, r):
    m, n = len(c), len(r)
    return onp.array([[c[i + j] if i + j < m else r[i + j - m + 1] for j in range(n)] for i in range(m)])


def ref_circulant(c):
    n = c.shape[-1]
    i, j = onp.ogrid[:n, :n]
    return onp.take(c, (i - j) % n, axis=-1)


def ref_companion(a):
    n = a.shape[-1]
    out = onp.zeros(a.shape[:-1] + (n - 1, n - 1))
    out[..., 0, :] = -a[..., 1:] / a[..., :1]
    out[..., onp.arange(1, n - 1), onp.arange(n - 2)] = 1.0
    return out


def ref_convolution_matrix(a, n, mode):
    """The columns are the convolutions of a with the unit vectors."""
    return onp.stack([onp.convolve(a, onp.eye(n)[k], mode) for k in range(n)], axis=-1)


def ref_leslie(f, s):
    n = f.shape[-1]
    out = onp.zeros(onp.broadcast_shapes(f.shape[:-1], s.shape[:-1]) + (n, n))
    out[..., 0, :] = f
    out[..., onp.arange(1, n), onp.arange(n - 1)] = s
    return out


def ref_block_diag(*arrs):
    arrs = [onp.atleast_2d(a) for a in arrs]
    out = onp.zeros((sum(a.shape[0] for a in arrs), sum(a.shape[1] for a in arrs)))
    r = c = 0
    for a in arrs:
        out[r:r + a.shape[0], c:c + a.shape[1]] = a
        r, c = r + a.shape[0], c + a.shape[1]
    return out


R = onp.random.default_rng(0)
C5, R4 = R.standard_normal(5), R.standard_normal(4)
A3 = R.standard_normal((3, 3))
POLY = onp.array([2.0, -1.0, 0.5, 3.0, 1.5])

LINES = [   # (id, gradc function, numpy reference, arguments)
    ("toeplitz", sla.toeplitz, ref_toeplitz, (C5, R4)),
    ("toeplitz_symmetric", sla.toeplitz, ref_toeplitz, (C5,)),
    ("hankel", sla.hankel, ref_hankel, (C5, R4)),
    ("hankel_zeros", lambda c: sla.hankel(c), lambda c: ref_hankel(c, onp.zeros_like(c)), (C5,)),
    ("circulant", sla.circulant, ref_circulant, (C5,)),
    ("companion", sla.companion, ref_companion, (POLY,)),
    ("convolution_full", lambda a: sla.convolution_matrix(a, 4), lambda a: ref_convolution_matrix(a, 4, "full"), (C5,)),
    ("convolution_same", lambda a: sla.convolution_matrix(a, 7, "same"),
     lambda a: ref_convolution_matrix(a, 7, "same"), (R4,)),
    ("convolution_valid", lambda a: sla.convolution_matrix(a, 3, "valid"),
     lambda a: ref_convolution_matrix(a, 3, "valid"), (C5,)),
    ("leslie", sla.leslie, ref_leslie, (C5, R4)),
    ("fiedler", sla.fiedler, lambda a: onp.abs(a[:, None] - a[None, :]), (C5,)),
    ("block_diag", lambda a, b, c: sla.block_diag(a, b, c), ref_block_diag, (A3, R4, C5[:1])),
]


@pytest.fixture(params=["numpy", "llvm", "c"])
def backend(request):
    """Compositions of gathers and arithmetic: every backend runs them."""
    return request.param


@pytest.mark.parametrize("name,f,ref,args", LINES, ids=[line[0] for line in LINES])
def test_against_definition_and_finite_differences(name, f, ref, args, backend):
    want = ref(*args)
    onp.testing.assert_allclose(gradc.jit(f, backend=backend)(*args), want, rtol=1e-15)
    onp.testing.assert_allclose(f(*args), want, rtol=1e-15)          # outside a trace: numpy
    w = onp.random.default_rng(1).standard_normal(want.shape)
    grads = gradc.grad(lambda *a: np.sum(f(*a) * w), argnums=tuple(range(len(args))), backend=backend)(*args)
    for i, g in enumerate(grads):
        onp.testing.assert_allclose(g, fd_grad(lambda *a: onp.sum(ref(*a) * w), list(args), i),
                                    rtol=FD_RTOL, atol=FD_ATOL, err_msg=f"{name}, argument {i}")


@pytest.mark.parametrize("dtype", [onp.float32, onp.float64])
def test_batches_at_64_and_float32(dtype):
    """Stacks (rank 3 results of rank 2 arguments, batch axes broadcast) at n = 64."""
    r = onp.random.default_rng(2)
    c, row = r.standard_normal((3, 64)).astype(dtype), r.standard_normal((2, 1, 64)).astype(dtype)
    f = gradc.jit(lambda c, row, a: (sla.toeplitz(c, row), sla.circulant(c), sla.companion(a),
                                     sla.leslie(c, row[..., 1:]), sla.fiedler(c)))
    a = c + dtype(10.0)   # a first coefficient away from 0
    got = f(c, row, a)
    want = (ref_toeplitz(onp.broadcast_to(c, (2, 3, 64)), onp.broadcast_to(row, (2, 3, 64))), ref_circulant(c),
            ref_companion(a.astype(onp.float64)), ref_leslie(c, row[..., 1:]), onp.abs(c[..., :, None] - c[..., None, :]))
    for g, w in zip(got, want):
        assert g.dtype == dtype and g.shape == w.shape
        onp.testing.assert_allclose(g, w, rtol=F32_RTOL if dtype == onp.float32 else 1e-15)
    # d sum(T ∘ W) / dc[k] sums W over the entries c[k] fills: the diagonal k below the main
    w = r.standard_normal((3, 64, 64))
    gc = gradc.grad(lambda c: np.sum(sla.toeplitz(c) * w))(c.astype(onp.float64))
    want = onp.stack([[onp.trace(w[b], -k) + (onp.trace(w[b], k) if k else 0.0) for k in range(64)]
                      for b in range(3)])
    onp.testing.assert_allclose(gc, want, rtol=1e-12)


def test_constant_matrices_closed_forms():
    n = 9
    h = sla.helmert(n, full=True)
    onp.testing.assert_allclose(h @ h.T, onp.eye(n), atol=1e-14)            # orthogonal
    onp.testing.assert_allclose(h[0], onp.full(n, n ** -0.5))
    onp.testing.assert_allclose(sla.helmert(n), h[1:])
    i, j = onp.ogrid[:n, :n]
    onp.testing.assert_allclose(sla.hilbert(n), 1.0 / (i + j + 1))
    low = sla.pascal(n, "lower")
    assert low.dtype == onp.uint64 and low[8, 4] == 70 and low[3, 5] == 0
    onp.testing.assert_array_equal(sla.pascal(n), low.astype(onp.int64) @ low.T.astype(onp.int64))
    onp.testing.assert_array_equal(sla.pascal(n, "upper", exact=False), low.T.astype(onp.float64))
    assert sla.pascal(40)[39, 39] == math.comb(78, 39)   # symmetric: C(i + j, i); Python ints from n = 35
    # inside a trace they are constants
    onp.testing.assert_allclose(gradc.jit(lambda x: x @ sla.hilbert(3))(onp.ones(3)), sla.hilbert(3).sum(0))


def test_errors_name_the_argument():
    with pytest.raises(gradc.ArgumentError, match="leslie.*one fewer"):
        sla.leslie(C5, C5)
    with pytest.raises(gradc.ArgumentError, match="companion.*at least 2"):
        sla.companion(onp.ones(1))
    with pytest.raises(gradc.ArgumentError, match="companion.*must not be zero"):
        sla.companion(onp.array([0.0, 1.0, 2.0]))
    with pytest.raises(gradc.ArgumentError, match="convolution_matrix: mode"):
        sla.convolution_matrix(C5, 3, "middle")
    with pytest.raises(gradc.ArgumentError, match="convolution_matrix: n"):
        sla.convolution_matrix(C5, 0)
    with pytest.raises(gradc.ArgumentError, match="toeplitz.*do not broadcast"):
        gradc.jit(sla.toeplitz)(onp.ones((2, 3)), onp.ones((3, 3)))
    with pytest.raises(gradc.UnsupportedError, match="dft.*complex"):
        sla.dft(4)


def test_against_scipy_where_installed():
    sl = pytest.importorskip("scipy.linalg")
    r = onp.random.default_rng(3)
    c, row = r.standard_normal((2, 6)), r.standard_normal((3, 1, 5))
    cases = [("toeplitz", (c, row)), ("hankel", (c[0], row[0, 0])), ("circulant", (c,)), ("companion", (c,)),
             ("leslie", (c, c[:, :5])), ("fiedler", (c,)),
             ("block_diag", (c, row[0], onp.eye(2), 3.0))]
    for name, args in cases:
        onp.testing.assert_allclose(gradc.jit(getattr(sla, name))(*args), getattr(sl, name)(*args), rtol=1e-15,
                                    err_msg=name)
    for mode in ("full", "same", "valid"):
        for n in (3, 8):
            onp.testing.assert_allclose(gradc.jit(lambda a: sla.convolution_matrix(a, n, mode))(c),
                                        sl.convolution_matrix(c, n, mode), err_msg=f"{mode} {n}")
    for n in (1, 5, 36):
        for kind in ("symmetric", "lower", "upper"):
            onp.testing.assert_array_equal(sla.pascal(n, kind), sl.pascal(n, kind))
        onp.testing.assert_allclose(sla.pascal(n, exact=False), sl.pascal(n, exact=False))
        onp.testing.assert_allclose(sla.helmert(n), sl.helmert(n))
        onp.testing.assert_allclose(sla.hilbert(n), sl.hilbert(n))
