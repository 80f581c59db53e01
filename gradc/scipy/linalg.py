"""``import gradc.scipy.linalg as sla``: scipy.linalg's (jax.scipy.linalg's) dense solvers
by their signatures and defaults (scipy's ``cholesky`` and ``solve_triangular`` take the
upper triangle unless ``lower=True``), on the LAPACK primitives of ``gradc.numpy.linalg``:
differentiable in both arguments, on backend ``"llvm"`` and ``"numpy"`` (backend ``"c"``
refuses LAPACK ops).  ``b`` may be a vector ``(M,)`` or a matrix ``(M, K)``.

Also LU (``lu``, ``lu_factor``, ``lu_solve``: gradc/ops/lu.py's getrf primitives),
scipy's ``qr``, ``svd`` and ``polar``, and from sibling modules ``expm`` and
``expm_frechet`` (matfuncs.py) and the special matrices (matrices.py: ``toeplitz`` and
the others, compositions that run on every backend).  The names gradc does not compute
(``sqrtm``, ``schur``, ``hessenberg``, ``funm``, ``solve_sylvester``, ``dft``) raise
``gradc.UnsupportedError``."""
from __future__ import annotations

import numpy as onp

from .. import numpy as np
from ..errors import ArgumentError, UnsupportedError
from ..ops import lapack as _lapack
from ..ops import lu as _lu

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
    a = L Lᵀ; from that triangle of ``a`` only, as scipy's (and JAX's)."""
    return np.linalg.cholesky(a) if lower else np.linalg.cholesky(a, upper=True)


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
        return cho_solve(cho_factor(a, lower=lower), b)   # (only that triangle of a is read, as scipy and JAX)
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
    # scipy's and JAX's flags that change nothing here; a subset of the eigenvalues
    # (eigvals=, subset_by_index=, subset_by_value=) or another type would change the
    # result, so it is refused, as JAX refuses it, not ignored
    ignored = {"overwrite_a", "overwrite_b", "turbo", "check_finite", "driver"}
    for name, value in kw.items():
        if name == "type" and value == 1 or name in ignored or name in ("eigvals", "subset_by_index",
                                                                         "subset_by_value") and value is None:
            continue
        raise ArgumentError(f"eigh: {name}={value!r} is not supported (all eigenvalues of the standard "
                            "problem only: take a slice of the result)")
    if not lower:
        a = np.swapaxes(np.asarray(a), -1, -2)
    return np.linalg.eigvalsh(a) if eigvals_only else np.linalg.eigh(a)


# ----------------------------------------------------------------------------- LU
def _lu_operand(a, fname):
    """(a as a traced float stack (..., M, M), or None outside a trace)."""
    if _lapack._eager(a):
        a = onp.asarray(a)
        if a.dtype.kind in "biu":
            a = a.astype(onp.float64)
        if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
            raise UnsupportedError(f"scipy.linalg.{fname}: argument a has shape {a.shape}; gradc factors square "
                                   "matrices (..., M, M) only")
        return a, True
    x = _lapack._matrix_operand(a, fname, "a", square=False)
    env = x._b.env
    if env.value(x._shape[-1]) != env.value(x._shape[-2]):
        raise UnsupportedError(f"scipy.linalg.{fname}: argument a has shape {tuple(x.shape)}; gradc factors square "
                               "matrices (..., M, M) only")
    return x, False


def _perm_matrix_of(perm, n, dtype):
    """Pm with Pm[..., i, perm[i]] = 1 (Pm a = a[perm])."""
    xp = onp if isinstance(perm, onp.ndarray) else np
    return xp.asarray(perm[..., :, None] == onp.arange(n), dtype=dtype)


def lu_factor(a, overwrite_a=False, check_finite=True):
    """``(lu, piv)``: L and U of a = P L U packed in one matrix (L's unit diagonal
    implied) and LAPACK's row swaps (int32, 0-based: row i was swapped with row piv[i]),
    by getrf, as scipy's.  Square matrices and stacks of them; ``lu`` is differentiable."""
    x, eager = _lu_operand(a, "lu_factor")
    if eager:
        lu, piv, _ = _lu.getrf(x)
        return lu, piv.astype(onp.int32)
    lu, piv, _ = _lu.lu_parts(x)
    return lu, piv


def lu(a, permute_l=False, overwrite_a=False, check_finite=True, p_indices=False):
    """``(P, L, U)`` with a = P L U (partial pivoting, L unit lower triangular, U upper);
    ``permute_l=True``: ``(P L, U)``; ``p_indices=True``: p (int32) with a = L[p] U in
    place of P.  L and U are differentiable (the standard LU adjoint, docs/derivatives.md)."""
    x, eager = _lu_operand(a, "lu")
    xp = onp if eager else np
    if eager:
        packed, _, perm = _lu.getrf(x)
        perm = perm.astype(onp.int32)
    else:
        packed, _, perm = _lu.lu_parts(x)
    n = x.shape[-1]
    eye = onp.eye(n, dtype=x.dtype)
    lower = xp.tril(packed, -1) + eye
    upper = xp.triu(packed)
    pt = xp.swapaxes(_perm_matrix_of(perm, n, x.dtype), -1, -2)       # P = Pmᵀ: a = Pmᵀ L U
    if permute_l:
        return xp.matmul(pt, lower), upper
    if p_indices:
        return xp.argsort(perm, axis=-1).astype(onp.int32) if eager else _inverse_perm(perm, n), lower, upper
    return pt, lower, upper


def _inverse_perm(perm, n):
    """q with q[perm[i]] = i, as Pmᵀ's row of ones: q = Pmᵀ @ arange."""
    pm = _perm_matrix_of(perm, n, onp.float64)
    return np.asarray(np.matmul(np.swapaxes(pm, -1, -2), onp.arange(n, dtype=onp.float64)), dtype=onp.int32)


def _perm_of_pivots_np(piv):
    """The permutation LAPACK's row swaps make: swap k and piv[k], k = 0, 1, ..."""
    perm = onp.broadcast_to(onp.arange(piv.shape[-1]), piv.shape).copy()
    flat, pv = perm.reshape(-1, piv.shape[-1]), piv.reshape(-1, piv.shape[-1])
    for m, p in zip(flat, pv):
        for k, q in enumerate(p):
            m[[k, q]] = m[[q, k]]
    return flat.reshape(piv.shape)


def _factored_perm(piv):
    """perm, when the traced pivots are lu_factor's of a matrix in this trace (lu_perm of
    the same matrix: one getrf call), else None."""
    from .. import tracer
    node = piv._node
    if node["op"] == "cast":
        src = tracer.Value(piv._b, node["args"][0])
        if src._node["op"] == "lu_pivots":
            a = tracer.Value(piv._b, src._node["args"][0])
            return np.asarray(tracer.bind("lu_perm", a), dtype=onp.int32)
    return None


def _swap_rows(piv, b, reverse):
    """b with rows k and piv[k] swapped for k = 0, 1, ... (``reverse``: k = M − 1, ..., 0,
    the inverse), for traced pivots of unknown origin: one product with a transposition
    matrix per k (each product is its own buffer, so the M steps stay M nodes)."""
    n = b.shape[-2]
    iota = onp.arange(n)
    for k in (range(n - 1, -1, -1) if reverse else range(n)):
        pk = piv[..., k, None, None]                              # (..., 1, 1)
        rows, cols = iota[:, None], iota[None, :]
        moved = ((rows == k) & (cols == pk)) | ((rows == pk) & (cols == k))
        kept = (rows == cols) & (rows != k) & (rows != pk)
        b = np.matmul(np.asarray(moved | kept, dtype=b.dtype), b)
    return b


def lu_solve(lu_and_piv, b, trans=0, overwrite_b=False, check_finite=True):
    """x with a x = b (``trans=1``: aᵀ x = b) from ``lu_factor(a)``: a permutation and two
    triangular solves; differentiable in lu and b.  b is (M,) or (..., M, K)."""
    if trans not in _TRANS:
        raise ArgumentError(f"lu_solve: trans must be 0, 1, 2, 'N', 'T' or 'C', got {trans!r}")
    lu_, piv = lu_and_piv
    eager = _lapack._eager(lu_, piv, b)
    xp = onp if eager else np
    lu_ = xp.asarray(lu_)
    piv = piv if isinstance(piv, onp.ndarray) else xp.asarray(piv)
    if eager and lu_.dtype.kind in "biu":
        lu_ = lu_.astype(onp.float64)
    n = lu_.shape[-1]
    b, vector = _as_matrix(b) if not eager else ((onp.reshape(b, (-1, 1)), True) if onp.ndim(b) == 1
                                                  else (onp.asarray(b), False))
    if b.shape[-2] != n:
        raise ArgumentError(f"lu_solve: b has shape {tuple(b.shape)}; its rows must be lu's size {n}")
    batch = tuple(onp.broadcast_shapes(tuple(lu_.shape[:-2]), tuple(b.shape[:-2])))
    lu_ = xp.broadcast_to(lu_, batch + (n, n))
    b = xp.broadcast_to(b, batch + tuple(b.shape[-2:]))
    if eager:
        pm = _perm_matrix_of(onp.broadcast_to(_perm_of_pivots_np(piv), batch + (n,)), n, lu_.dtype)
        tri = onp.tril(lu_, -1) + onp.eye(n)
        up = onp.triu(lu_)
        if _TRANS[trans]:
            z = onp.linalg.solve(onp.swapaxes(tri, -1, -2), onp.linalg.solve(onp.swapaxes(up, -1, -2), b))
            x = onp.swapaxes(pm, -1, -2) @ z
        else:
            x = onp.linalg.solve(up, onp.linalg.solve(tri, pm @ b))
    else:
        perm = None if isinstance(piv, onp.ndarray) else _factored_perm(piv)
        if isinstance(piv, onp.ndarray):
            perm = _perm_of_pivots_np(piv)
        pm = None if perm is None else _perm_matrix_of(np.broadcast_to(perm, batch + (n,)), n, lu_.dtype)
        if _TRANS[trans]:     # aᵀ = Uᵀ Lᵀ Pm: x = Pmᵀ L⁻ᵀ U⁻ᵀ b
            z = solve_triangular(lu_, solve_triangular(lu_, b, trans=1), trans=1, lower=True, unit_diagonal=True)
            x = _swap_rows(piv, z, reverse=True) if pm is None else np.matmul(np.swapaxes(pm, -1, -2), z)
        else:                 # a = Pmᵀ L U: x = U⁻¹ L⁻¹ Pm b
            pb = _swap_rows(piv, b, reverse=False) if pm is None else np.matmul(pm, b)
            x = solve_triangular(lu_, solve_triangular(lu_, pb, lower=True, unit_diagonal=True))
    return xp.reshape(x, x.shape[:-1]) if vector else x


# ----------------------------------------------------------------------------- QR, SVD, polar
def qr(a, overwrite_a=False, lwork=None, mode="full", pivoting=False, check_finite=True):
    """``(Q, R)`` with a = Q R: ``mode='full'`` (Q (M, M), R (M, N)), ``'economic'`` (Q
    (M, K), R (K, N)), ``'r'`` (``(R,)`` of 'full', a tuple as scipy's); numpy.linalg.qr's
    primitives, differentiable for M >= N (``'full'`` only when M == N)."""
    if pivoting:
        raise UnsupportedError("scipy.linalg.qr: pivoting=True (geqp3) is not supported")
    modes = {"full": "complete", "economic": "reduced", "r": "complete"}   # scipy's 'r': R of 'full'
    if mode not in modes:
        raise UnsupportedError(f"scipy.linalg.qr: mode={mode!r} is not supported; gradc takes 'full', 'economic' "
                               "or 'r' ('raw' returns LAPACK's reflectors)")
    out = np.linalg.qr(a, mode=modes[mode])
    return (out[1],) if mode == "r" else tuple(out)


def svd(a, full_matrices=True, compute_uv=True, overwrite_a=False, check_finite=True, lapack_driver="gesdd"):
    """``(U, s, Vh)`` with a = U diag(s) Vh, s descending (gesdd; ``lapack_driver`` is
    accepted, the results are the same up to the signs of singular vectors);
    ``compute_uv=False``: s.  numpy.linalg.svd's primitives and gradients."""
    if lapack_driver not in ("gesdd", "gesvd"):
        raise ArgumentError(f"scipy.linalg.svd: lapack_driver must be 'gesdd' or 'gesvd', got {lapack_driver!r}")
    out = np.linalg.svd(a, full_matrices=full_matrices, compute_uv=compute_uv)
    return out if not compute_uv else tuple(out)


def polar(a, side="right"):
    """``(u, p)``: the polar decomposition a = u p (``side='right'``, p (N, N)) or
    a = p u (``'left'``, p (M, M)), u with orthonormal columns (rows), p symmetric
    positive semidefinite; from the reduced SVD a = U S Vᵀ: u = U Vᵀ, p = V S Vᵀ
    (U S Uᵀ on the left).  Differentiable where the singular values are distinct."""
    if side not in ("right", "left"):
        raise ArgumentError(f"scipy.linalg.polar: side must be 'right' or 'left', got {side!r}")
    xp = onp if _lapack._eager(a) else np
    a = xp.asarray(a)
    if a.ndim != 2:
        raise ArgumentError(f"scipy.linalg.polar: argument a has shape {tuple(a.shape)}; it must be a matrix (M, N)")
    u_, s, vh = xp.linalg.svd(a, full_matrices=False)
    u = xp.matmul(u_, vh)
    p = xp.matmul(vh.T * s, vh) if side == "right" else xp.matmul(u_ * s, u_.T)
    return u, p


from .matrices import (block_diag, circulant, companion, convolution_matrix, dft, fiedler,  # noqa: E402,F401
                       hankel, helmert, hilbert, leslie, pascal, toeplitz)
from .matfuncs import expm, expm_frechet  # noqa: E402,F401


def _not_supported(name, why):
    def refuse(*args, **kwargs):
        raise UnsupportedError(f"scipy.linalg.{name} is not supported by gradc: {why}")
    refuse.__name__ = refuse.__qualname__ = name
    refuse.__doc__ = f"Not supported (raises gradc.UnsupportedError): {why}."
    return refuse


# jax.scipy.linalg's names gradc does not compute yet: a clear error, not an AttributeError
sqrtm = _not_supported("sqrtm", "it needs the Schur decomposition (complex in general); for a symmetric positive "
                                "definite matrix use V diag(sqrt(w)) Vᵀ from gradc.numpy.linalg.eigh")
schur = _not_supported("schur", "gradc has no Schur decomposition (LAPACK gees)")
hessenberg = _not_supported("hessenberg", "gradc has no Hessenberg reduction (LAPACK gehrd)")
funm = _not_supported("funm", "it needs the Schur decomposition; for a symmetric matrix apply the function to the "
                              "eigenvalues of gradc.numpy.linalg.eigh")
solve_sylvester = _not_supported("solve_sylvester", "it needs the Schur decomposition; small systems can be solved "
                                                    "as (I ⊗ A + Bᵀ ⊗ I) vec(X) = vec(Q) with gradc.numpy.linalg.solve")
