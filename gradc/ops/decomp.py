"""The singular value and QR decompositions of a matrix or a stack of them (..., M, N),
K = min(M, N), by LAPACK (gesdd; geqrf and orgqr), as numpy.linalg defines them, and
what numpy.linalg builds on them: pinv, lstsq, matrix_rank, and (ops/stats.py) cond and
the norms of ord 2, -2 and 'nuc'.

The primitives (``extra["lapack"]``, computed by runtime/lapack.c on backend="llvm"):
``svdvals`` s (..., K) descending; ``svd_u`` U and ``svd_vt`` Vᵀ (reduced, or square
with ``full``); ``qr_q`` Q (reduced, or (M, M) with ``full``: mode="complete") and
``qr_r`` R (K, N); ``pinv`` A⁺ with a cut-off ratio per matrix.  svd's three outputs
are three calls of the same routine on the same matrix, so they agree.

Gradients (docs/derivatives.md), with S = diag(s), V = (Vᵀ)ᵀ, dS = Uᵀ dA V and
F_ij = 1/(s_j² − s_i²) (0 where s_j² = s_i², as JAX's):

* s:  ds = diag(dS);                          Ā = U diag(s̄) Vᵀ  (exact at repeated values)
* U:  dU = U (F ∘ (dS S + S dSᵀ)) + (I − UUᵀ) dA V S⁻¹   (the last term when M > N)
* Vᵀ: dV = V (F ∘ (S dS + dSᵀ S)) + (I − VVᵀ) dAᵀ U S⁻¹  (the last term when N > M)
* QR (M ≥ N): C = dA R⁻¹, B = QᵀC, Ω = tril(B, −1) − tril(B, −1)ᵀ;
  dQ = Q (Ω − B) + C, dR = (B − Ω) R (JAX's qr_jvp_rule)
* A⁺ (P): dP = −P dA P + P Pᵀ dAᵀ (I − A P) + (I − P A) dAᵀ Pᵀ P (Golub and Pereyra),
  plus the coupling of the kept singular vectors to dropped nonzero singular values
  (_dropped_coupling); valid where no singular value crosses the cut-off.  pinv is a
  primitive for this rule, which holds at repeated singular values where a
  composition of U, s and Vᵀ's rules would not.

The VJPs are the transposes of these maps.  U and Vᵀ of full_matrices=True (M ≠ N), QR
of M < N or mode="complete" with M > N have no gradient (as in JAX): a clear error.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from .bind import batch_stacked
from .lapack import _eager, _index_grid, _matrix_operand, _mm, _mT, _numpy_call, solve_triangular
from .registry import Op, register
from ..errors import ArgumentError, ShapeError, UnsupportedError

SVDResult = namedtuple("SVDResult", ["U", "S", "Vh"])
QRResult = namedtuple("QRResult", ["Q", "R"])
LstsqResult = namedtuple("LstsqResult", ["x", "residuals", "rank", "s"])   # numpy returns a plain tuple


def _trace():
    from .. import tracer as trace
    return trace


def _bind(name, *args, **params):
    return _trace().bind(name, *args, **params)


# ----------------------------------------------------------------------------- shapes
def _mnk(env, shape, what):
    """(M, N, K) of an (..., M, N) stack.  Unless M and N are one size, both are fixed
    to their values (K = min(M, N) must be a size of its own: other sizes retrace)."""
    if len(shape) < 2:
        raise ShapeError(f"{what} needs a matrix or a stack of matrices (..., M, N), got rank {len(shape)}")
    m, n = env.find(shape[-2]), env.find(shape[-1])
    if m == n:
        return m, n, m
    m, n = env.pin(m), env.pin(n)
    return m, n, min(m, n)


def _shape_of(kind):
    def rule(env, avals, full=False):
        (sa, ta) = avals[0]
        m, n, k = _mnk(env, sa, f"linalg.{kind}")
        batch = tuple(sa[:-2])
        out = {"svdvals": (k,), "svd_u": (m, m if full else k), "svd_vt": (n if full else k, n),
               "qr_q": (m, m if full else k), "qr_r": (k, n), "pinv": (n, m)}[kind]
        return batch + out, ta
    return rule


# ----------------------------------------------------------------------------- helpers
def _row(x):
    """(..., K) -> (..., 1, K): scales the columns of a matrix."""
    from .structure import reshape_sym
    return reshape_sym(x, tuple(x._shape[:-1]) + (1, x._shape[-1]))


def _col(x):
    """(..., K) -> (..., K, 1): scales the rows."""
    from .structure import reshape_sym
    return reshape_sym(x, tuple(x._shape) + (1,))


def _safe_inv(x):
    """1/x, 0 where x == 0 (JAX's s_inv and F)."""
    from .elementwise import convert
    z = convert(x == 0.0, x.dtype)
    return 1.0 / (x + z) - z


def _f_svd(s):
    """F_ij = 1/(s_j² − s_i²), 0 where they are equal (the diagonal among them)."""
    si, sj = _col(s), _row(s)
    return _safe_inv((sj + si) * (sj - si))


def _strict_lower(x):
    from .elementwise import where
    rows, cols = _index_grid(x._shape[-1])
    return where(cols < rows, x, 0.0)


def _reduced(a):
    """(U, s, Vᵀ) of the reduced SVD, for the derivatives."""
    return _bind("svd_u", a, full=False), _bind("svdvals", a), _bind("svd_vt", a, full=False)


def _sizes(a):
    env = a._b.env
    return env.value(a._shape[-2]), env.value(a._shape[-1])


def _no_gradient(what, why, advice=""):
    raise UnsupportedError(f"linalg.{what}: {why} has no derivative in gradc (nor in JAX){advice}")


def _square_full(a, full):
    m, n = _sizes(a)
    if full and m != n:
        _no_gradient("svd", "full_matrices=True with a non-square matrix (M != N)",
                     ": its extra singular vectors are not unique; differentiate svd(a, full_matrices=False)")


# ----------------------------------------------------------------------------- svd
def _svdvals_vjp(g, s, a):
    u, _, vt = _reduced(a)
    return (_mm(u * _row(g), vt),)


def _svdvals_jvp(ts, s, a):
    from .reduce import sum_
    u, _, vt = _reduced(a)
    return sum_(u * _mm(ts[0], _mT(vt)), axis=a.ndim - 2)


def _svd_u_vjp(g, u, a, full):
    _square_full(a, full)
    _, s, vt = _reduced(a)
    m, n = _sizes(a)
    x = _mm(_mT(u), g)
    y = _f_svd(s) * x
    inner = _mm(u, (y + _mT(y)) * _row(s))
    if m > n:
        inner = inner + (g - _mm(u, x)) * _row(_safe_inv(s))
    return (_mm(inner, vt),)


def _svd_u_jvp(ts, u, a, full):
    _square_full(a, full)
    _, s, vt = _reduced(a)
    m, n = _sizes(a)
    dav = _mm(ts[0], _mT(vt))
    ds = _mm(_mT(u), dav)
    w = ds * _row(s)
    du = _mm(u, _f_svd(s) * (w + _mT(w)))
    if m > n:
        du = du + (dav - _mm(u, ds)) * _row(_safe_inv(s))
    return du


def _svd_vt_vjp(g, vt, a, full):
    _square_full(a, full)
    u, s, _ = _reduced(a)
    m, n = _sizes(a)
    x = _mm(vt, _mT(g))                       # Vᵀ V̄
    y = _f_svd(s) * x
    inner = _mm(_col(s) * (y + _mT(y)), vt)
    if n > m:
        inner = inner + _col(_safe_inv(s)) * (g - _mm(_mT(x), vt))
    return (_mm(u, inner),)


def _svd_vt_jvp(ts, vt, a, full):
    _square_full(a, full)
    u, s, _ = _reduced(a)
    m, n = _sizes(a)
    uda = _mm(_mT(u), ts[0])
    ds = _mm(uda, _mT(vt))
    w = _col(s) * ds
    dvt = -_mm(_f_svd(s) * (w + _mT(w)), vt)   # (F ∘ W)ᵀ = −F ∘ W: F is antisymmetric, W symmetric
    if n > m:
        dvt = dvt + _col(_safe_inv(s)) * (uda - _mm(ds, vt))
    return dvt


def _np_svd(i):
    def f(a, full=False):
        return np.linalg.svd(a, full_matrices=full)[i]
    return f


register(Op("svdvals", "linalg", _shape_of("svdvals"), _numpy_call("svd", lambda a: np.linalg.svd(a, compute_uv=False)),
            batch=batch_stacked("svdvals"), vjp=_svdvals_vjp, jvp=_svdvals_jvp, root=True,
            extra={"lapack": "gesdd"}, doc="the singular values s of A, descending; vjp: U diag(s̄) Vᵀ",
            notation="svdvals", rule="singular values s ⇒ Ā = U diag(s̄) Vᵀ"))
register(Op("svd_u", "linalg", _shape_of("svd_u"), _numpy_call("svd", _np_svd(0)),
            batch=batch_stacked("svd_u"), vjp=_svd_u_vjp, jvp=_svd_u_jvp, root=True,
            extra={"lapack": "gesdd"},
            doc="the left singular vectors U (M, K), or (M, M) with full; vjp: U (sym F ∘ UᵀŪ) S Vᵀ "
                "+ (I − UUᵀ) Ū S⁻¹ Vᵀ, F_ij = 1/(s_j² − s_i²)",
            notation="svdU", rule="left singular vectors U ⇒ Ā = U ((Y + Yᵀ) S) Vᵀ + (I − UUᵀ) Ū S⁻¹ Vᵀ, "
                                 "Y = F ∘ UᵀŪ"))
register(Op("svd_vt", "linalg", _shape_of("svd_vt"), _numpy_call("svd", _np_svd(2)),
            batch=batch_stacked("svd_vt"), vjp=_svd_vt_vjp, jvp=_svd_vt_jvp, root=True,
            extra={"lapack": "gesdd"},
            doc="the right singular vectors Vᵀ (K, N), or (N, N) with full; vjp: U (S (Y + Yᵀ) Vᵀ "
                "+ S⁻¹ V̄ᵀ (I − VVᵀ)), Y = F ∘ VᵀV̄",
            notation="svdVt", rule="right singular vectors Vᵀ ⇒ Ā = U (S (Y + Yᵀ) Vᵀ + S⁻¹ V̄ᵀ (I − VVᵀ)), "
                                   "Y = F ∘ VᵀV̄"))


# ----------------------------------------------------------------------------- qr
def _qr_parts(a, what, full=False):
    m, n = _sizes(a)
    if m < n:
        _no_gradient("qr", f"{what} of a wide matrix (M < N)")
    if full and m != n:
        _no_gradient("qr", "Q of mode='complete' with M > N")
    return _bind("qr_q", a, full=False), _bind("qr_r", a)


def _r_inv_t(c, r):
    """C R⁻ᵀ (R upper triangular)."""
    return _mT(solve_triangular(r, _mT(c), lower=False))


def _qr_vjp_of(q, r, gq, gr):
    b = None
    if gq is not None:
        x = _mm(_mT(q), gq)
        b = _strict_lower(x - _mT(x)) - x
    if gr is not None:
        w = _mm(gr, _mT(r))
        br = w - _strict_lower(w - _mT(w))
        b = br if b is None else b + br
    c = _mm(q, b) if gq is None else gq + _mm(q, b)
    return (_r_inv_t(c, r),)


def _qr_tangent(ta, q, r):
    c = _mT(solve_triangular(_mT(r), _mT(ta), lower=True))     # dA R⁻¹
    b = _mm(_mT(q), c)
    low = _strict_lower(b)
    omega = low - _mT(low)
    return c, b, omega


def _qr_q_vjp(g, q, a, full):
    qr_, r = _qr_parts(a, "Q", full)
    return _qr_vjp_of(qr_, r, g, None)


def _qr_r_vjp(g, r, a):
    q, r_ = _qr_parts(a, "R")
    return _qr_vjp_of(q, r_, None, g)


def _qr_q_jvp(ts, q, a, full):
    q_, r = _qr_parts(a, "Q", full)
    c, b, omega = _qr_tangent(ts[0], q_, r)
    return _mm(q_, omega - b) + c


def _qr_r_jvp(ts, r, a):
    q, r_ = _qr_parts(a, "R")
    c, b, omega = _qr_tangent(ts[0], q, r_)
    return _mm(b - omega, r_)


register(Op("qr_q", "linalg", _shape_of("qr_q"),
            _numpy_call("qr", lambda a, full=False: np.linalg.qr(a, mode="complete" if full else "reduced")[0]),
            batch=batch_stacked("qr_q"), vjp=_qr_q_vjp, jvp=_qr_q_jvp, root=True, extra={"lapack": "geqrf"},
            doc="Q of A = QR (M, K), or (M, M) with full (mode='complete'); vjp (M ≥ N): (Q̄ + Q B̄) R⁻ᵀ, "
                "B̄ = tril(X − Xᵀ, −1) − X, X = QᵀQ̄",
            notation="qrQ", rule="Q of A = QR ⇒ Ā = (Q̄ + Q (tril(X − Xᵀ, −1) − X)) R⁻ᵀ, X = QᵀQ̄"))
register(Op("qr_r", "linalg", _shape_of("qr_r"), _numpy_call("qr", lambda a: np.linalg.qr(a, mode="r")),
            batch=batch_stacked("qr_r"), vjp=_qr_r_vjp, jvp=_qr_r_jvp, root=True, extra={"lapack": "geqrf"},
            doc="R of A = QR (K, N), upper triangular; vjp (M ≥ N): Q (W − tril(W − Wᵀ, −1)) R⁻ᵀ, W = R̄ Rᵀ",
            notation="qrR", rule="R of A = QR ⇒ Ā = Q (W − tril(W − Wᵀ, −1)) R⁻ᵀ, W = R̄ Rᵀ"))


# ----------------------------------------------------------------------------- pinv
def _pinv_np(a, rcond):
    return np.linalg.pinv(a, rcond=rcond)


def _dropped_coupling(a, rcond):
    """(U, C1, C2, Vᵀ) of the correction for singular values pinv drops that are not 0.

    Golub and Pereyra's rule is the derivative of A⁺ where A has the rank pinv keeps.
    With singular values s_d > 0 below the cut-off, P = V_K S_K⁻¹ U_Kᵀ still turns with
    the kept singular vectors, which couple to the dropped ones through
    1/(s_k² − s_d²) (the SVD's own perturbation terms), where the rule has 1/s_k².  The
    difference, for each pair of one kept index k and one dropped d (symmetric):
    C1 = s_d² / (s_k² (s_k² − s_d²)) and C2 = s_d / (s_k (s_k² − s_d²)), 0 elsewhere,
    so it vanishes when the dropped values are 0.  s_k > rcond · s_max ≥ s_d: the
    denominators of the pairs are positive."""
    from .elementwise import convert
    from .reduce import max_
    # U and s from LAPACK (s as pinv's own, so the kept set is the forward's); V = Aᵀ U S⁻¹
    # saves a third SVD: its error eps ‖A‖ / s_i meets C's factors s_d or s_d², or a kept s_k
    u, s = _bind("svd_u", a, full=False), _bind("svdvals", a)
    vt = _col(_safe_inv(s)) * _mm(_mT(u), a)
    kept = convert(s > _col(rcond) * max_(s, axis=s.ndim - 1, keepdims=True), s.dtype)
    ki, kj = _col(kept), _row(kept)
    si, sj = _col(s), _row(s)
    mixed = ki * (1.0 - kj) + (1.0 - ki) * kj
    sk = ki * si + kj * sj                        # on a mixed pair: the kept value
    sd = (1.0 - ki) * si + (1.0 - kj) * sj        # and the dropped one
    gap = _safe_inv(sk * (sk + sd) * (sk - sd)) * mixed
    return u, gap * sd * sd / (sk + (1.0 - mixed)), gap * sd, vt


def _pinv_vjp(g, p, a, rcond):
    pt = _mT(p)
    gt = _mT(g)
    t1 = -_mm(pt, _mm(g, pt))
    x = _mm(gt, _mm(p, pt))                    # (I − A P) Ḡᵀ P Pᵀ
    t2 = x - _mm(a, _mm(p, x))
    y = _mm(_mm(pt, p), gt)                    # Pᵀ P Ḡᵀ (I − P A)
    t3 = y - _mm(_mm(y, p), a)
    u, c1, c2, vt = _dropped_coupling(a, rcond)
    h = _mm(_mT(u), _mm(gt, _mT(vt)))          # Uᵀ Ḡᵀ V
    return t1 + t2 + t3 + _mm(u, _mm(c1 * h + c2 * _mT(h), vt)), None


def _pinv_jvp(ts, p, a, rcond):
    da = ts[0]
    if da is None:
        return None
    dat = _mT(da)
    t1 = -_mm(p, _mm(da, p))
    x = _mm(dat, _mm(a, p))
    t2 = _mm(p, _mm(_mT(p), dat - x))          # P Pᵀ dAᵀ (I − A P)
    y = _mm(_mm(dat, _mT(p)), p)
    t3 = y - _mm(p, _mm(a, y))                 # (I − P A) dAᵀ Pᵀ P
    u, c1, c2, vt = _dropped_coupling(a, rcond)
    e = _mm(_mT(u), _mm(da, _mT(vt)))          # Uᵀ dA V
    return t1 + t2 + t3 + _mm(_mT(vt), _mm(c1 * _mT(e) + c2 * e, _mT(u)))


def _pinv_shape(env, avals):
    shape, dt = _shape_of("pinv")(env, avals[:1])
    (sr, _tr) = avals[1]
    if tuple(sr) != tuple(avals[0][0][:-2]):
        raise ShapeError("internal: pinv's rcond has a's batch axes")
    return shape, dt


register(Op("pinv", "linalg", _pinv_shape, _numpy_call("pinv", _pinv_np),
            batch=batch_stacked("pinv"), vjp=_pinv_vjp, jvp=_pinv_jvp, root=True, extra={"lapack": "gesdd"},
            doc="A⁺ = V S⁺ Uᵀ, singular values at most rcond·s_max taken as 0 (rcond: one per matrix); "
                "vjp: −Pᵀ Ḡ Pᵀ + (I − AP) Ḡᵀ P Pᵀ + Pᵀ P Ḡᵀ (I − PA) + U (C₁ ∘ H + C₂ ∘ Hᵀ) Vᵀ, H = Uᵀ Ḡᵀ V "
                "(C: the coupling to dropped nonzero singular values)",
            notation=lambda m, a, rcond: m.fn("pinv", a),
            rule="P = A⁺ ⇒ Ā = −Pᵀ Ḡ Pᵀ + (I − AP) Ḡᵀ P Pᵀ + Pᵀ P Ḡᵀ (I − PA) + U (C₁ ∘ H + C₂ ∘ Hᵀ) Vᵀ"))


# ----------------------------------------------------------------------------- user API
def _operand(a, fname, argname="a"):
    """A traced float stack of matrices (..., M, N): lapack's checks without squareness."""
    return _matrix_operand(a, fname, argname, square=False)


def _is_square(x):
    env = x._b.env
    return env.find(x._shape[-1]) == env.find(x._shape[-2]) or env.value(x._shape[-1]) == env.value(x._shape[-2])


def _hermitian(hermitian, fname):
    if hermitian not in (False, True):
        raise ArgumentError(f"linalg.{fname}: hermitian must be True or False, got {hermitian!r}")


def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """numpy.linalg.svd: (U, S, Vh) with a = U diag(S) Vh, S descending (gesdd, as
    numpy); ``compute_uv=False``: S only.  ``hermitian=True`` computes the general SVD
    (the same S; U and Vh may differ from numpy's in the signs of their columns).  Every
    output is differentiable; U and Vh of ``full_matrices=True`` only for square a."""
    if _eager(a):
        return np.linalg.svd(a, full_matrices=full_matrices, compute_uv=compute_uv, hermitian=hermitian)
    _hermitian(hermitian, "svd")
    x = _operand(a, "svd")
    s = _bind("svdvals", x)
    if not compute_uv:
        return s
    full = bool(full_matrices) and not _is_square(x)
    return SVDResult(_bind("svd_u", x, full=full), s, _bind("svd_vt", x, full=full))


def svdvals(x, /):
    """numpy.linalg.svdvals: the singular values, descending; the gradient is
    U diag(s̄) Vᵀ, defined at repeated singular values too."""
    if _eager(x):
        return np.linalg.svdvals(x)
    return _bind("svdvals", _operand(x, "svdvals", "x"))


def qr(a, mode="reduced"):
    """numpy.linalg.qr: (Q, R) with a = QR, R upper triangular (geqrf and orgqr, as
    numpy); mode 'reduced' (Q (M, K), R (K, N)), 'complete' (Q (M, M), R (M, N)) or
    'r' (R alone).  Differentiable for M >= N ('complete' only when M == N)."""
    if _eager(a):
        return np.linalg.qr(a, mode=mode)
    if mode not in ("reduced", "complete", "r"):
        raise UnsupportedError(f"linalg.qr: mode={mode!r} is not supported; gradc takes 'reduced', "
                               "'complete' or 'r' ('raw' returns LAPACK's reflectors)")
    x = _operand(a, "qr")
    r = _bind("qr_r", x)
    m, n = _sizes(x)
    if mode == "complete" and m > n:      # the complete R: zero rows below the reduced one
        from .structure import concatenate, zeros_like
        r = concatenate([r, zeros_like(x[..., : m - n, :])], axis=r.ndim - 2)
    if mode == "r":
        return r
    q = _bind("qr_q", x, full=mode == "complete" and m > n)
    return QRResult(q, r)


def _rcond_of(x, rcond, fname):
    """One cut-off ratio per matrix: (...,) broadcast to x's batch axes, x's dtype."""
    from .elementwise import convert
    from .structure import broadcast_to
    r = _trace().to_value(rcond)
    if r.dtype.kind not in "biuf":
        raise ArgumentError(f"linalg.{fname}: rcond/rtol must be a number or an array of numbers, got dtype {r.dtype}")
    batch = tuple(x._shape[:-2])
    try:
        env = x._b.env
        env.broadcast([tuple(r._shape), batch], f"linalg.{fname}'s rcond")
    except ShapeError:
        raise ShapeError(f"linalg.{fname}: rcond/rtol of shape {tuple(r.shape)} does not broadcast with a's "
                         f"batch axes {tuple(x.shape[:-2])}") from None
    return broadcast_to(convert(r, x.dtype), batch)


_NO_VALUE = object()


def pinv(a, rcond=None, hermitian=False, *, rtol=_NO_VALUE):
    """numpy.linalg.pinv: the pseudo-inverse V S⁺ Uᵀ, singular values at most
    rcond · s_max taken as zero (default rcond 1e-15, as numpy 2's; ``rtol=None``:
    max(M, N) · eps).  Its gradient is the truncated pseudo-inverse's (Golub and
    Pereyra's rule with the coupling to dropped nonzero singular values), valid where
    no singular value crosses the cut-off."""
    if _eager(a):
        kw = {} if rtol is _NO_VALUE else {"rtol": rtol}
        return np.linalg.pinv(a, rcond=rcond, hermitian=hermitian, **kw)
    _hermitian(hermitian, "pinv")
    x = _operand(a, "pinv")
    if rcond is None:
        m, n = _sizes(x)
        rcond = 1e-15 if rtol is _NO_VALUE else max(m, n) * np.finfo(x.dtype).eps if rtol is None else rtol
    elif rtol is not _NO_VALUE:
        raise ArgumentError("linalg.pinv: `rtol` and `rcond` can't be both set")
    return _bind("pinv", x, _rcond_of(x, rcond, "pinv"))


def lstsq(a, b, rcond=None):
    """numpy.linalg.lstsq: (x, residuals, rank, s), x the minimum-norm least-squares
    solution pinv(a) b with singular values at most rcond · s_max taken as zero (default
    eps · max(M, N)).  ``residuals``: the squared residual norm of each column of b when
    M > N whatever the rank (numpy gives an empty array for a rank-deficient a;
    jax.numpy.linalg.lstsq computes them too), else empty.  x is differentiable (where no
    singular value crosses the cut-off); rank and s as numpy's."""
    if _eager(a, b):
        return np.linalg.lstsq(a, b, rcond=rcond)
    from .elementwise import convert
    from .reduce import sum_
    from .structure import reshape_sym
    x = _operand(a, "lstsq")
    if x.ndim != 2:
        raise ShapeError(f"linalg.lstsq: argument a has shape {tuple(x.shape)}; it must be a matrix (M, N)")
    y = _trace().to_value(b)
    if y.dtype.kind in "biu":
        y = convert(y, np.float64)
    elif y.dtype not in (np.float32, np.float64):
        raise ArgumentError(f"linalg.lstsq: argument b has dtype {y.dtype}; linalg takes float32 or float64")
    if y.ndim not in (1, 2):
        raise ShapeError(f"linalg.lstsq: argument b has shape {tuple(y.shape)}; it must be (M,) or (M, K)")
    dt = np.result_type(x.dtype, y.dtype)
    x, y = convert(x, dt), convert(y, dt)
    m, n = _sizes(x)
    env = x._b.env
    if env.value(y._shape[0]) != m:
        raise ShapeError(f"linalg.lstsq: argument b has shape {tuple(y.shape)}, a has {tuple(x.shape)}: "
                         f"b's first axis must be a's rows {m}")
    env.equal(y._shape[0], x._shape[0], "linalg.lstsq: b's rows and a's")
    if rcond is None:
        rcond = np.finfo(np.float64).eps * max(m, n)    # numpy's: its working precision is float64
    ratio = _rcond_of(x, rcond, "lstsq")
    s = _bind("svdvals", x)
    sol = _mm(_bind("pinv", x, ratio), y)
    rank = sum_(convert(s > (ratio * s[:1] if min(m, n) else 0.0), np.int32), axis=0)
    if m > n:
        res = y - _mm(x, sol)
        resid = sum_(res * res, axis=0)
        if y.ndim == 1:
            resid = reshape_sym(resid, (1,))
    else:
        resid = s[:0]
    return sol, resid, rank, s


def matrix_rank(A, tol=None, hermitian=False, *, rtol=None):
    """numpy.linalg.matrix_rank: the number of singular values above tol (default
    s_max · max(M, N) · eps, or s_max · rtol)."""
    if _eager(A):
        return np.linalg.matrix_rank(A, tol=tol, hermitian=hermitian, rtol=rtol)
    from .elementwise import convert
    from .reduce import max_, sum_
    _hermitian(hermitian, "matrix_rank")
    if rtol is not None and tol is not None:
        raise ArgumentError("linalg.matrix_rank: `tol` and `rtol` can't be both set")
    t = _trace()
    v = t.to_value(A)
    if v.ndim < 2:      # numpy: 1 unless every element is 0
        return convert(sum_(convert(v != 0, np.int64)) > 0, np.int64)
    x = _operand(v, "matrix_rank", "A")
    s = _bind("svdvals", x)
    if x._b.env.value(s._shape[-1]) == 0:
        return sum_(convert(s > 0.0, np.int64), axis=s.ndim - 1)
    smax = max_(s, axis=s.ndim - 1, keepdims=True)
    if tol is None:
        m, n = _sizes(x)
        r = max(m, n) * np.finfo(x.dtype).eps if rtol is None else _col(_rcond_of(x, rtol, "matrix_rank"))
        bound = smax * r
    else:
        bound = _col(_rcond_of(x, tol, "matrix_rank"))
    return sum_(convert(s > bound, np.int64), axis=s.ndim - 1)


FUNCTIONS = {"svd": svd, "svdvals": svdvals, "qr": qr, "pinv": pinv, "lstsq": lstsq,
             "matrix_rank": matrix_rank}   # and cond, in ops/stats.py beside norm
