"""The LU factorization with partial pivoting of a square matrix or a stack of them
(..., M, M), by LAPACK's getrf (as scipy.linalg.lu_factor), for gradc.scipy.linalg's
``lu``, ``lu_factor`` and ``lu_solve``.

Three primitives, three calls of getrf on the same matrix (so they agree, as svd's
three outputs do): ``lu`` the packed factors (L strictly below the diagonal, its unit
diagonal implied; U on and above it), ``lu_pivots`` LAPACK's row swaps (0-based, row i
swapped with row piv[i] in order) and ``lu_perm`` the permutation they make, perm with
a[perm] = L U.  The pivots and the permutation are held as floats (exact below 2^24)
so that every LAPACK call has the matrix's dtype; the user functions convert them to
int32.  They are piecewise constant: no gradient.

The gradient of the factors (docs/derivatives.md), with P the permutation matrix
(P A = A[perm] = L U) and X = L⁻¹ P dA U⁻¹:

* tangent:  dL = L tril(X, −1),  dU = triu(X) U  (packed: their sum)
* adjoint:  X̄ = tril(Lᵀ Ḡ, −1) + triu(Ḡ Uᵀ),  Ā = Pᵀ L⁻ᵀ X̄ U⁻ᵀ

(Ḡ the packed factors' cotangent: L's entries take its strict lower triangle, U's its
upper one; Lᵀ Ḡ and Ḡ Uᵀ read only those parts.)  A singular matrix factors (a zero on
U's diagonal, as scipy's); its gradient is then infinite.
"""
from __future__ import annotations

import numpy as np

from .bind import batch_stacked
from .lapack import _eye_like, _index_grid, _mm, _mT, _numpy_call, _square, solve_triangular
from .registry import Op, register


def _trace():
    from .. import tracer as trace
    return trace


# ----------------------------------------------------------------------------- numpy reference
def getrf(a):
    """(packed LU, pivots, perm) of a (..., M, M) by partial pivoting (the largest
    magnitude in the column, the first on ties, as LAPACK's idamax), in a's dtype."""
    a = np.asarray(a)
    shape, n = a.shape, a.shape[-1]
    lu = a.reshape((-1, n, n)).copy()
    piv = np.zeros((lu.shape[0], n), dtype=np.int64)
    perm = np.tile(np.arange(n), (lu.shape[0], 1))
    rows = np.arange(lu.shape[0])
    for k in range(n):
        p = k + np.argmax(np.abs(lu[:, k:, k]), axis=1)
        piv[:, k] = p
        lu[rows, k], lu[rows, p] = lu[rows, p].copy(), lu[rows, k].copy()
        perm[rows, k], perm[rows, p] = perm[rows, p].copy(), perm[rows, k].copy()
        pivot = lu[:, k, k][:, None]
        with np.errstate(divide="ignore", invalid="ignore"):   # a zero pivot: the column stays (getrf's rule)
            lu[:, k + 1:, k] = np.where(pivot != 0, lu[:, k + 1:, k] / np.where(pivot != 0, pivot, 1), lu[:, k + 1:, k])
        lu[:, k + 1:, k + 1:] -= lu[:, k + 1:, k, None] * lu[:, k, None, k + 1:]
    return lu.reshape(shape), piv.reshape(shape[:-1]).astype(a.dtype), perm.reshape(shape[:-1]).astype(a.dtype)


# ----------------------------------------------------------------------------- shapes
def _shape(vector):
    def rule(env, avals):
        (sa, ta), = avals
        _square(env, sa, "scipy.linalg.lu")
        return (tuple(sa[:-1]) if vector else tuple(sa)), ta
    return rule


# ----------------------------------------------------------------------------- derivatives
def _factors(lu):
    """(L, U) of the packed factors."""
    from .elementwise import where
    rows, cols = _index_grid(lu._shape[-1])
    return where(cols < rows, lu, 0.0) + _eye_like(lu), where(cols >= rows, lu, 0.0)


def _perm_matrix(a):
    """P with P A = A[perm] (P[i, j] = 1 where perm[i] = j), a's dtype."""
    from .elementwise import convert
    from .structure import reshape_sym
    perm = _trace().bind("lu_perm", a)
    _, cols = _index_grid(a._shape[-1])
    return convert(reshape_sym(perm, tuple(perm._shape) + (1,)) == convert(cols, a.dtype), a.dtype)


def _lu_jvp(ts, lu, a):
    from .elementwise import where
    l, u = _factors(lu)
    y = solve_triangular(l, _mm(_perm_matrix(a), ts[0]), lower=True)      # L⁻¹ P dA
    x = _mT(solve_triangular(_mT(u), _mT(y), lower=True))                  # ... U⁻¹
    rows, cols = _index_grid(lu._shape[-1])
    return _mm(l, where(cols < rows, x, 0.0)) + _mm(where(cols >= rows, x, 0.0), u)


def _lu_vjp(g, lu, a):
    from .elementwise import where
    l, u = _factors(lu)
    rows, cols = _index_grid(lu._shape[-1])
    xbar = where(cols < rows, _mm(_mT(l), g), 0.0) + where(cols >= rows, _mm(g, _mT(u)), 0.0)
    y = solve_triangular(_mT(l), xbar, lower=False)                         # L⁻ᵀ X̄
    abar = _mT(solve_triangular(u, _mT(y), lower=False))                    # ... U⁻ᵀ
    return (_mm(_mT(_perm_matrix(a)), abar),)


def _np_part(i):
    return lambda a: getrf(a)[i]


register(Op("lu", "linalg", _shape(False), _numpy_call("lu", _np_part(0)),
            batch=batch_stacked("lu"), vjp=_lu_vjp, jvp=_lu_jvp, root=True, extra={"lapack": "getrf"},
            doc="L and U of A[perm] = L U packed (L's unit diagonal implied), partial pivoting; "
                "vjp: Pᵀ L⁻ᵀ (tril(Lᵀ Ḡ, −1) + triu(Ḡ Uᵀ)) U⁻ᵀ",
            notation="lu", rule="P A = L U ⇒ Ā = Pᵀ L⁻ᵀ (tril(Lᵀ Ḡ, −1) + triu(Ḡ Uᵀ)) U⁻ᵀ"))
for _name, _i, _what in (("lu_pivots", 1, "LAPACK's row swaps (0-based)"),
                         ("lu_perm", 2, "the permutation perm with A[perm] = L U")):
    register(Op(_name, "linalg", _shape(True), _numpy_call("lu", _np_part(_i)),
                batch=batch_stacked(_name), vjp=lambda g, p, a: (None,), jvp=lambda ts, p, a: None,
                root=True, extra={"lapack": "getrf"},
                doc=f"{_what} of the LU factorization, as floats; piecewise constant: no gradient",
                notation=_name, rule=f"{_what} ⇒ no gradient (piecewise constant)"))


def lu_parts(a):
    """(packed LU, pivots as int32, perm as int32) of a traced float stack (..., M, M)."""
    from .elementwise import convert
    t = _trace()
    return (t.bind("lu", a), convert(t.bind("lu_pivots", a), np.int32), convert(t.bind("lu_perm", a), np.int32))
