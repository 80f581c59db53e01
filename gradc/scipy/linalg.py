"""``import gradc.scipy.linalg as sla``: scipy.linalg's (jax.scipy.linalg's) dense solvers
by their signatures and defaults (scipy's ``cholesky`` and ``solve_triangular`` take the
upper triangle unless ``lower=True``), on the LAPACK primitives of ``gradc.numpy.linalg``:
differentiable in both arguments, on backend ``"llvm"`` and ``"numpy"`` (backend ``"c"``
refuses LAPACK ops).  ``b`` may be a vector ``(M,)`` or a matrix ``(M, K)``."""
from __future__ import annotations

from .. import numpy as np
from ..errors import ArgumentError
from ..ops import lapack as _lapack

_TRANS = {0: False, "N": False, 1: True, "T": True, 2: True, "C": True}


def _as_matrix(b):
    """(b as (..., M, K), whether it was a vector)."""
    b = np.asarray(b)
    return (np.reshape(b, (-1, 1)), True) if b.ndim == 1 else (b, False)


def solve_triangular(a, b, trans=0, lower=False, unit_diagonal=False, overwrite_b=False, check_finite=True):
    """x with T x = b (``trans=1``: Tᵀ x = b) for T the lower (``lower=True``) or upper
    triangle of ``a``; ``unit_diagonal=True`` takes T's diagonal as ones."""
    if trans not in _TRANS:
        raise ArgumentError(f"solve_triangular: trans must be 0, 1, 2, 'N', 'T' or 'C', got {trans!r}")
    a = np.asarray(a)
    if unit_diagonal:
        eye = np.eye(a.shape[-1], dtype=a.dtype)
        a = a * (1.0 - eye) + eye
    if _TRANS[trans]:
        a, lower = np.swapaxes(a, -1, -2), not lower
    b, vector = _as_matrix(b)
    x = _lapack.solve_triangular(a, b, lower=bool(lower))
    return np.reshape(x, (-1,)) if vector else x


def cholesky(a, lower=False, overwrite_a=False, check_finite=True):
    """The Cholesky factor: upper U with a = Uᵀ U (scipy's default), or lower L with
    a = L Lᵀ."""
    L = np.linalg.cholesky(a)
    return L if lower else np.swapaxes(L, -1, -2)


def cho_factor(a, lower=False, overwrite_a=False, check_finite=True):
    """``(c, lower)`` for :func:`cho_solve` (c holds the factor; its other triangle is
    zero here, scipy leaves it unspecified)."""
    return cholesky(a, lower=lower), lower


def cho_solve(c_and_lower, b, overwrite_b=False, check_finite=True):
    """x with a x = b from ``cho_factor(a)``: two triangular solves."""
    c, lower = c_and_lower
    if lower:
        return solve_triangular(c, solve_triangular(c, b, lower=True), trans=1, lower=True)
    return solve_triangular(c, solve_triangular(c, b, trans=1, lower=False), lower=False)


def solve(a, b, lower=False, overwrite_a=False, overwrite_b=False, check_finite=True, assume_a=None,
          transposed=False):
    """x with a x = b (``transposed=True``: aᵀ x = b); ``assume_a="pos"`` (or "positive
    definite") solves by Cholesky, any other by LU."""
    if transposed:
        a = np.swapaxes(np.asarray(a), -1, -2)
    if assume_a in ("pos", "positive definite"):
        return cho_solve(cho_factor(a, lower=True), b)
    b, vector = _as_matrix(b)
    x = np.linalg.solve(a, b)
    return np.reshape(x, (-1,)) if vector else x


def inv(a, overwrite_a=False, check_finite=True):
    return np.linalg.inv(a)


def det(a, overwrite_a=False, check_finite=True):
    return np.linalg.det(a)


def eigh(a, b=None, lower=True, eigvals_only=False, **kw):
    """Eigenvalues (ascending) and eigenvectors of a symmetric matrix, from its lower
    triangle; the generalized problem (``b``) is not supported."""
    if b is not None:
        raise ArgumentError("eigh: the generalized problem (b=...) is not supported")
    if not lower:
        a = np.swapaxes(np.asarray(a), -1, -2)
    return np.linalg.eigvalsh(a) if eigvals_only else np.linalg.eigh(a)


from .matrices import (block_diag, circulant, companion, convolution_matrix, dft, fiedler,  # noqa: E402,F401
                       hankel, helmert, hilbert, leslie, pascal, toeplitz)
