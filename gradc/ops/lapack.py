"""Dense linear algebra by LAPACK: solve, inv, det, slogdet, cholesky, eigh and eigvalsh,
on matrices and on stacks of them (..., M, M), as numpy.linalg defines them.

Each op's block holds its shape rule, its numpy reference, its VJP and JVP and how
``explain`` writes it; ``extra["lapack"]`` names the routine the native backends call
(runtime/lapack.c, through LoopLowering.lapack).  The primitives take operands whose
batch axes already agree: the user functions at the end broadcast them, so the
adjoint of that broadcast (a sum over the broadcast axes) comes from broadcast_to.

The gradient rules (docs/derivatives.md states them as the paper would), with X the
result, G its cotangent and ``Aᵀ`` the transpose of each matrix of a stack:

* solve X = A⁻¹B:   B̄ = A⁻ᵀG,  Ā = −B̄ Xᵀ;              tangent: A⁻¹(dB − dA X)
* inv X = A⁻¹:      Ā = −Xᵀ G Xᵀ;                       tangent: −X dA X
* det d:            Ā = ḡ d A⁻ᵀ;                        tangent: d tr(A⁻¹ dA)
* slogdet (s, l):   Ā = ḡ_l A⁻ᵀ (the sign has none);    tangent: (0, tr(A⁻¹ dA))
* cholesky L:       Ā = sym(L⁻ᵀ Φ(Lᵀ Ḡ) L⁻¹);           tangent: L Φ(L⁻¹ sym(dA) L⁻ᵀ)
* eigvalsh w:       Ā = V diag(ḡ) Vᵀ;                   tangent: diag(Vᵀ dA V)
* eigh's V:         Ā = sym(V (F ∘ Vᵀ Ḡ) Vᵀ);           tangent: V (F ∘ Vᵀ sym(dA) V)

where sym(M) = (M + Mᵀ)/2, Φ keeps the lower triangle and halves the diagonal (L⁻ᵀ and
L⁻¹ are triangular solves: the internal primitive solve_triangular), and
F_ij = 1/(w_j − w_i) off the diagonal, 0 on it.  Cholesky and eigh read one triangle of
a symmetric matrix; their derivatives are those of the symmetric matrix (as JAX's),
and a repeated eigenvalue makes F, and so eigh's gradient, infinite (as in JAX).
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from .bind import batch_stacked
from .registry import Op, register
from ..errors import ArgumentError, LinAlgError, ShapeError

SlogdetResult = namedtuple("SlogdetResult", ["sign", "logabsdet"])
EighResult = namedtuple("EighResult", ["eigenvalues", "eigenvectors"])


def _trace():
    from .. import tracer as trace
    return trace


# ----------------------------------------------------------------------------- helpers
def _mT(x):
    """The transpose of each matrix of a stack."""
    from .linalg import swapaxes
    return swapaxes(x, -1, -2)


def _mm(a, b):
    from .linalg import matmul
    return matmul(a, b)


def _sum_last2(x):
    from .reduce import sum_
    return sum_(x, axis=(x.ndim - 2, x.ndim - 1))


def _expand2(x):
    """(...,) -> (..., 1, 1): a per-matrix scalar beside its matrix."""
    from .structure import reshape_sym
    return reshape_sym(x, tuple(x._shape) + (1, 1))


def _index_grid(n):
    """(rows, cols): int64 index arrays of shapes (n, 1) and (1, n)."""
    t = _trace()
    return (t.bind("iota", shape=(n, 1), axis=0, dtype=np.dtype(np.int64)),
            t.bind("iota", shape=(1, n), axis=1, dtype=np.dtype(np.int64)))


def _sym(x):
    return (x + _mT(x)) * 0.5


def _phi(x):
    """Φ: the lower triangle, its diagonal halved (of each matrix of a stack)."""
    from .elementwise import where
    rows, cols = _index_grid(x._shape[-1])
    return where(cols < rows, x, where(cols == rows, x * 0.5, 0.0))


def _eye_like(x):
    """The identity of each matrix's size, as x's dtype (broadcasts over a stack)."""
    from .elementwise import convert
    rows, cols = _index_grid(x._shape[-1])
    return convert(rows == cols, x.dtype)


def _square(env, shape, what):
    if len(shape) < 2:
        raise ShapeError(f"{what} needs a matrix or a stack of matrices (..., M, M), got rank {len(shape)}")
    try:
        env.equal(shape[-2], shape[-1], what)
    except ShapeError:
        raise ShapeError(f"{what} needs square matrices, got {env.shown(shape[-2])} x "
                         f"{env.shown(shape[-1])}") from None
    return env.find(shape[-1])


def _same_batch(env, sa, sb, what):
    if len(sa) != len(sb):
        raise ShapeError(f"internal: {what}'s operands have different ranks")
    for x, y in zip(sa[:-2], sb[:-2]):
        env.equal(x, y, what)


def failure_site(op: str, p) -> str:
    """Where a linear algebra failure happened, for its message: ``linalg.inv at
    model.py:6``, or for a node of a derivative ``linalg.inv in the gradient of det at
    model.py:6`` (``p``: the node's Provenance)."""
    text = f"linalg.{op}"
    if p is not None and p.mode is not None and p.of_op:
        text += f" in the {'gradient' if p.mode == 'adjoint' else 'tangent'} of {p.of_op}"
    return text + (f" at {p.where}" if p is not None and p.where else "")


def _numpy_call(name, fn):
    """numpy.linalg's function as the op's reference, its LinAlgError as gradc's."""
    def call(*arrays, **params):
        try:
            return fn(*arrays, **params)
        except np.linalg.LinAlgError as e:
            raise LinAlgError(str(e)) from None
    return call


# ----------------------------------------------------------------------------- solve
def _solve_shape(env, avals):
    (sa, ta), (sb, tb) = avals
    m = _square(env, sa, "linalg.solve's a")
    if len(sb) != len(sa):
        raise ShapeError("internal: linalg.solve's b has the rank of a (the user function reshapes it)")
    env.equal(sb[-2], m, "linalg.solve: b's rows and a's size")
    _same_batch(env, sa, sb, "linalg.solve")
    return tuple(sb), np.result_type(ta, tb)


def _solve_vjp(g, x, a, b):
    gb = solve_p(_mT(a), g)
    return -_mm(gb, _mT(x)), gb


def _solve_jvp(ts, x, a, b):
    ta, tb = ts
    rhs = tb if ta is None else (-_mm(ta, x) if tb is None else tb - _mm(ta, x))
    return solve_p(a, rhs)


register(Op("solve", "linalg", _solve_shape, _numpy_call("solve", np.linalg.solve),
            batch=batch_stacked("solve"),
            vjp=_solve_vjp, jvp=_solve_jvp, root=True, extra={"lapack": "gesv"},
            doc="X = A⁻¹ B for a stack of (M, M) and (M, K) matrices; vjp: B̄ = A⁻ᵀ G, Ā = −B̄ Xᵀ",
            notation=lambda m, a, b: m.fn("solve", a, b),
            rule="X = A⁻¹B ⇒ B̄ = A⁻ᵀ G, Ā = −B̄ Xᵀ"))


def solve_p(a, b):
    """The primitive: a (..., M, M), b (..., M, K) with the same batch axes."""
    return _trace().bind("solve", a, b)


# ----------------------------------------------------------------------------- solve_triangular
def _triangle_mask(x, lower):
    """The entries of each matrix's lower (upper) triangle, diagonal included."""
    rows, cols = _index_grid(x._shape[-1])
    return cols <= rows if lower else cols >= rows


def _solve_tri_shape(env, avals, lower):
    return _solve_shape(env, avals)


def _solve_tri_np(a, b, lower):
    tri = np.tril(a) if lower else np.triu(a)
    return np.linalg.solve(tri, b)


def _solve_tri_vjp(g, x, a, b, lower):
    from .elementwise import where
    gb = solve_triangular(_mT(a), g, lower=not lower)
    return where(_triangle_mask(a, lower), -_mm(gb, _mT(x)), 0.0), gb


def _solve_tri_jvp(ts, x, a, b, lower):
    from .elementwise import where
    ta, tb = ts
    rhs = tb
    if ta is not None:
        ax = _mm(where(_triangle_mask(a, lower), ta, 0.0), x)
        rhs = -ax if tb is None else tb - ax
    return solve_triangular(a, rhs, lower=lower)


register(Op("solve_triangular", "linalg", _solve_tri_shape, _numpy_call("solve", _solve_tri_np),
            batch=batch_stacked("solve_triangular"),
            vjp=_solve_tri_vjp, jvp=_solve_tri_jvp, root=True, extra={"lapack": "trtrs"},
            doc="X = T⁻¹ B for T the lower (lower=True) or upper triangle of A (as scipy.linalg.solve_triangular; "
                "cholesky's derivatives use it); vjp: B̄ = T⁻ᵀ G, Ā = −tri(B̄ Xᵀ)",
            notation=lambda m, a, b: m.fn("solve_triangular", a, b),
            rule="X = T⁻¹B (T triangular) ⇒ B̄ = T⁻ᵀ G, Ā = −triangle of B̄ Xᵀ"))


def solve_triangular(a, b, lower=True):
    """X = T⁻¹ b with T the lower (``lower=True``) or upper triangle of ``a`` (the other
    entries are not read), for a (..., M, M) and b (..., M, K) with the same batch axes;
    scipy.linalg.solve_triangular's result, by LAPACK's trtrs on backend="llvm"."""
    if _eager(a, b):
        return _solve_tri_np(np.asarray(a), np.asarray(b), lower)
    from .elementwise import convert
    t = _trace()
    a, b = t.to_value(a), t.to_value(b)
    # one dtype for both (trtrs solves in place in b's buffer, read as the result's
    # dtype: a float32 b beside a float64 a was read as float64 bits), as linalg.solve
    dt = np.result_type(a.dtype, b.dtype, np.float32) if "f" in (a.dtype.kind, b.dtype.kind) else np.float64
    return t.bind("solve_triangular", convert(a, dt), convert(b, dt), lower=bool(lower))


# ----------------------------------------------------------------------------- inv
def _inv_shape(env, avals):
    (sa, ta), = avals
    _square(env, sa, "linalg.inv")
    return tuple(sa), ta


register(Op("inv", "linalg", _inv_shape, _numpy_call("inv", np.linalg.inv),
            batch=batch_stacked("inv"),
            vjp=lambda g, x, a: (-_mm(_mT(x), _mm(g, _mT(x))),),
            jvp=lambda ts, x, a: -_mm(x, _mm(ts[0], x)),
            root=True, extra={"lapack": "gesv"}, doc="A⁻¹; vjp: −Xᵀ G Xᵀ",
            notation="inv", rule="X = A⁻¹ ⇒ Ā = −Xᵀ G Xᵀ"))


# ----------------------------------------------------------------------------- det, slogdet
def _det_shape(env, avals):
    (sa, ta), = avals
    _square(env, sa, "linalg.det")
    return tuple(sa[:-2]), ta


def _inv_T(a):
    return _mT(_trace().bind("inv", a))


register(Op("det", "linalg", _det_shape, _numpy_call("det", np.linalg.det),
            batch=batch_stacked("det"),
            vjp=lambda g, d, a: (_expand2(g * d) * _inv_T(a),),
            jvp=lambda ts, d, a: d * _sum_last2(_inv_T(a) * ts[0]),
            root=True, extra={"lapack": "getrf"}, doc="det A (by LU); vjp: ḡ det(A) A⁻ᵀ",
            notation="det", rule="det A ⇒ Ā = ḡ det(A) A⁻ᵀ"))


def _slogdet_shape(env, avals):
    (sa, ta), = avals
    _square(env, sa, "linalg.slogdet")
    return tuple(sa[:-2]) + (2,), ta


def _slogdet_np(a):
    sign, logabsdet = np.linalg.slogdet(a)
    return np.stack([sign, logabsdet], axis=-1)


def _slogdet_jvp(ts, packed, a):
    from .structure import concatenate, reshape_sym
    from .structure import zeros_like
    t = reshape_sym(_sum_last2(_inv_T(a) * ts[0]), tuple(a._shape[:-2]) + (1,))
    return concatenate([zeros_like(t), t], axis=t.ndim - 1)


register(Op("slogdet", "linalg", _slogdet_shape, _numpy_call("slogdet", _slogdet_np),
            batch=batch_stacked("slogdet"),
            vjp=lambda g, packed, a: (_expand2(g[..., 1]) * _inv_T(a),),
            jvp=_slogdet_jvp, root=True, extra={"lapack": "getrf"},
            doc="(sign, ln|det A|) by LU, packed on a last axis of 2; vjp: ḡ_l A⁻ᵀ",
            notation=lambda m, a: m.fn("ln", m.fn("abs", m.fn("det", a))),
            rule="ln|det A| ⇒ Ā = ḡ A⁻ᵀ (the sign has no gradient)"))


# ----------------------------------------------------------------------------- cholesky
def _cholesky_shape(env, avals):
    (sa, ta), = avals
    _square(env, sa, "linalg.cholesky")
    return tuple(sa), ta


def _cholesky_vjp(g, chol, a):
    p = _phi(_mm(_mT(chol), g))
    lt = _mT(chol)
    s = _mT(solve_triangular(lt, _mT(solve_triangular(lt, p, lower=False)), lower=False))   # L⁻ᵀ P L⁻¹
    return (_sym(s),)


def _cholesky_jvp(ts, chol, a):
    m = _mT(solve_triangular(chol, _mT(solve_triangular(chol, _sym(ts[0])))))   # L⁻¹ sym(dA) L⁻ᵀ
    return _mm(chol, _phi(m))


register(Op("cholesky", "linalg", _cholesky_shape, _numpy_call("cholesky", np.linalg.cholesky),
            batch=batch_stacked("cholesky"),
            vjp=_cholesky_vjp, jvp=_cholesky_jvp, root=True, extra={"lapack": "potrf"},
            doc="L with A = L Lᵀ, from A's lower triangle; vjp: sym(L⁻ᵀ Φ(Lᵀ Ḡ) L⁻¹)",
            notation="chol", rule="A = L Lᵀ ⇒ Ā = sym(L⁻ᵀ Φ(Lᵀ Ḡ) L⁻¹)"))


# ----------------------------------------------------------------------------- eigh, eigvalsh
def _eig_shape(values):
    def rule(env, avals):
        (sa, ta), = avals
        _square(env, sa, "linalg.eigh")
        return (tuple(sa[:-1]) if values else tuple(sa)), ta
    return rule


def _eigvalsh_vjp(g, w, a):
    v = _trace().bind("eigh", a)
    from .structure import reshape_sym
    gw = reshape_sym(g, tuple(g._shape[:-1]) + (1, g._shape[-1]))
    return (_mm(v * gw, _mT(v)),)


def _eigvalsh_jvp(ts, w, a):
    from .reduce import sum_
    v = _trace().bind("eigh", a)
    return sum_(v * _mm(_sym(ts[0]), v), axis=a.ndim - 2)


def _f_matrix(w):
    """F_ij = 1/(w_j − w_i) off the diagonal, 0 on it (inf for a repeated eigenvalue)."""
    from .structure import reshape_sym
    n = w._shape[-1]
    wi = reshape_sym(w, tuple(w._shape[:-1]) + (n, 1))
    wj = reshape_sym(w, tuple(w._shape[:-1]) + (1, n))
    eye = _eye_like(w)
    return 1.0 / (eye + wj - wi) - eye


def _eigh_vjp(g, v, a):
    f = _f_matrix(_trace().bind("eigvalsh", a))
    return (_sym(_mm(v, _mm(f * _mm(_mT(v), g), _mT(v)))),)


def _eigh_jvp(ts, v, a):
    f = _f_matrix(_trace().bind("eigvalsh", a))
    return _mm(v, f * _mm(_mT(v), _mm(_sym(ts[0]), v)))


def _eigh_np(a):
    return np.linalg.eigh(a)[1]


register(Op("eigvalsh", "linalg", _eig_shape(True), _numpy_call("eigvalsh", np.linalg.eigvalsh),
            batch=batch_stacked("eigvalsh"),
            vjp=_eigvalsh_vjp, jvp=_eigvalsh_jvp, root=True, extra={"lapack": "syevd"},
            doc="the eigenvalues w of a symmetric matrix (its lower triangle), ascending; vjp: V diag(ḡ) Vᵀ",
            notation="eigvals", rule="eigenvalues w ⇒ Ā = V diag(ḡ) Vᵀ"))
register(Op("eigh", "linalg", _eig_shape(False), _numpy_call("eigh", _eigh_np),
            batch=batch_stacked("eigh"),
            vjp=_eigh_vjp, jvp=_eigh_jvp, root=True, extra={"lapack": "syevd"},
            doc="the eigenvectors V of a symmetric matrix (its lower triangle), columns in eigenvalue order; "
                "vjp: sym(V (F ∘ Vᵀ Ḡ) Vᵀ), F_ij = 1/(w_j − w_i)",
            notation="eigvecs", rule="eigenvectors V ⇒ Ā = sym(V (F ∘ Vᵀ Ḡ) Vᵀ), F_ij = 1/(w_j − w_i)"))


# ----------------------------------------------------------------------------- user API
def _eager(*xs):
    t = _trace()
    return t.current() is None and not any(isinstance(x, t.Value) for x in xs)


def _matrix_operand(x, fname, argname, square=True):
    """A traced float matrix stack: ints and bools become float64 (numpy's rule);
    float16 and other dtypes, ranks below 2 and (``square``) non-square matrices are
    refused naming the argument."""
    from .elementwise import convert, _check_operand
    from ..tracer import user_source
    t = _trace()
    _check_operand(x, f"linalg.{fname}")
    x = t.to_value(x)
    src = user_source()
    at = f"  [at {src}]" if src else ""
    if x.dtype.kind in "biu":
        x = convert(x, np.float64)
    elif x.dtype not in (np.float32, np.float64):
        raise ArgumentError(f"linalg.{fname}: argument {argname} has dtype {x.dtype}; linalg takes "
                            f"float32 or float64 (and integers, as float64){at}")
    if x.ndim < 2:
        raise ShapeError(f"linalg.{fname}: argument {argname} has rank {x.ndim} (shape "
                         f"{tuple(x.shape)}); it must be a matrix or a stack of matrices "
                         f"{'(..., M, M)' if square else '(..., M, N)'}{at}")
    if not square:
        return x
    env = x._b.env
    if env.find(x._shape[-1]) != env.find(x._shape[-2]) and env.value(x._shape[-1]) != env.value(x._shape[-2]):
        raise ShapeError(f"linalg.{fname}: argument {argname} has shape {tuple(x.shape)}; its last two axes "
                         f"must be square (..., M, M){at}")
    return x


def solve(a, b):
    """numpy.linalg.solve: x with a @ x = b.  ``b`` of shape (M,) is a vector (the result
    has a's batch axes and M); otherwise b is a stack (..., M, K) whose batch axes
    broadcast with a's (numpy 2's rule)."""
    if _eager(a, b):
        return np.linalg.solve(a, b)
    from .elementwise import convert
    from .structure import broadcast_to, reshape_sym
    from ..tracer import user_source
    t = _trace()
    a = _matrix_operand(a, "solve", "a")
    b = t.to_value(b)
    if b.dtype.kind in "biu":
        b = convert(b, np.float64)
    elif b.dtype not in (np.float32, np.float64):
        a_src = user_source()
        raise ArgumentError(f"linalg.solve: argument b has dtype {b.dtype}; linalg takes float32 or float64"
                            + (f"  [at {a_src}]" if a_src else ""))
    dt = np.result_type(a.dtype, b.dtype)
    a, b = convert(a, dt), convert(b, dt)
    env = a._b.env
    vector = b.ndim == 1
    if b.ndim == 0:
        src = user_source()
        raise ShapeError("linalg.solve: argument b is a scalar; it must be a vector (M,) or a stack of "
                         "matrices (..., M, K)" + (f"  [at {src}]" if src else ""))
    bm = reshape_sym(b, (b._shape[0], 1)) if vector else b
    m = a._shape[-1]
    if env.value(bm._shape[-2]) != env.value(m):
        src = user_source()
        raise ShapeError(f"linalg.solve: argument b has shape {tuple(b.shape)}, a has {tuple(a.shape)}: b's "
                         f"{'length' if vector else 'second-to-last axis'} must be a's size {env.value(m)}"
                         + (f"  [at {src}]" if src else ""))
    batch = env.broadcast([tuple(a._shape[:-2]), tuple(bm._shape[:-2])], "linalg.solve's batch axes")
    a = broadcast_to(a, tuple(batch) + tuple(a._shape[-2:]))
    bm = broadcast_to(bm, tuple(batch) + tuple(bm._shape[-2:]))
    x = solve_p(a, bm)
    return reshape_sym(x, tuple(x._shape[:-1])) if vector else x


def inv(a):
    """numpy.linalg.inv: the inverse of a matrix or of each matrix of a stack."""
    if _eager(a):
        return np.linalg.inv(a)
    return _trace().bind("inv", _matrix_operand(a, "inv", "a"))


def det(a):
    """numpy.linalg.det: the determinant (by LU), of each matrix of a stack."""
    if _eager(a):
        return np.linalg.det(a)
    return _trace().bind("det", _matrix_operand(a, "det", "a"))


def slogdet(a):
    """numpy.linalg.slogdet: (sign, logabsdet), ln|det a| summed over LU's pivots (no
    overflow where det would).  Its gradient flows through logabsdet."""
    if _eager(a):
        return np.linalg.slogdet(a)
    packed = _trace().bind("slogdet", _matrix_operand(a, "slogdet", "a"))
    return SlogdetResult(packed[..., 0], packed[..., 1])


def cholesky(a, /, *, upper=False):
    """numpy.linalg.cholesky: lower-triangular L with a = L Lᵀ, read from a's lower
    triangle (``upper=True``: Lᵀ from the upper triangle)."""
    if _eager(a):
        return np.linalg.cholesky(a, upper=upper)
    x = _matrix_operand(a, "cholesky", "a")
    if upper:
        return _mT(_trace().bind("cholesky", _mT(x)))
    return _trace().bind("cholesky", x)


def _uplo(x, UPLO, fname):
    if UPLO not in ("L", "U"):
        raise ArgumentError(f"linalg.{fname}: UPLO must be 'L' or 'U', got {UPLO!r}")
    return x if UPLO == "L" else _mT(x)


def eigh(a, UPLO="L"):
    """numpy.linalg.eigh: (eigenvalues ascending, eigenvectors as columns) of a symmetric
    matrix read from its lower (``UPLO='L'``) or upper triangle.  A repeated eigenvalue
    makes the eigenvectors' gradient infinite (their choice is not unique)."""
    if _eager(a):
        return np.linalg.eigh(a, UPLO)
    x = _uplo(_matrix_operand(a, "eigh", "a"), UPLO, "eigh")
    t = _trace()
    return EighResult(t.bind("eigvalsh", x), t.bind("eigh", x))


def eigvalsh(a, UPLO="L"):
    """numpy.linalg.eigvalsh: the eigenvalues (ascending) of a symmetric matrix."""
    if _eager(a):
        return np.linalg.eigvalsh(a, UPLO)
    return _trace().bind("eigvalsh", _uplo(_matrix_operand(a, "eigvalsh", "a"), UPLO, "eigvalsh"))


FUNCTIONS = {"solve": solve, "inv": inv, "det": det, "slogdet": slogdet, "cholesky": cholesky,
             "eigh": eigh, "eigvalsh": eigvalsh}
