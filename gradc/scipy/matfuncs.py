"""scipy.linalg's matrix exponential (``import gradc.scipy.linalg as sla``: ``sla.expm``,
``sla.expm_frechet``), by scaling and squaring with the [13/13] Padé approximant
(Higham 2005, as jax.scipy.linalg.expm): s = max(0, ⌈log₂(‖A‖₁ / θ₁₃)⌉),
R = r₁₃(A / 2ˢ), then R squared s times.  Its gradient is that of the composition
(products, one LAPACK solve, selects), so it runs where solve runs (not backend "c").

The number of squarings depends on the values of A.  Outside a trace it is computed
from them.  Inside one gradc's graph is fixed while tracing, so the squarings are
unrolled to a fixed maximum MAX_SQUARINGS, each kept or skipped by a select on s (per
matrix of a stack): a concrete bound would need A's values at trace time, and a
retrace per norm would make each new norm a compile.  The unrolled squarings cost
MAX_SQUARINGS matrix products whatever A is (a few times the Padé step's six); they
cover ‖A‖₁ ≤ θ₁₃ · 2^MAX_SQUARINGS ≈ 2.3e10, and a matrix beyond that gets NaN rather
than an inaccurate result.  s is piecewise constant in A: no gradient flows through it.
"""
from __future__ import annotations

import numpy as onp

from .. import numpy as np
from ..errors import ArgumentError

# b_k of the [13/13] Padé approximant of e^x (Higham 2005, table 2.3), and the largest
# ‖A‖₁ at which it is accurate to double precision without scaling
PADE13 = (64764752532480000.0, 32382376266240000.0, 7771770303897600.0, 1187353796428800.0, 129060195264000.0,
          10559470521600.0, 670442572800.0, 33522128640.0, 1323241920.0, 40840800.0, 960960.0, 16380.0, 182.0, 1.0)
THETA13 = 5.371920351148152
MAX_SQUARINGS = 32


def _operand(a, xp, fname):
    a = xp.asarray(a)
    if a.dtype.kind in "biu":
        a = xp.asarray(a, dtype=onp.float64)
    elif a.dtype not in (onp.float32, onp.float64):
        raise ArgumentError(f"scipy.linalg.{fname}: argument A has dtype {a.dtype}; it takes float32 or float64")
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ArgumentError(f"scipy.linalg.{fname}: argument A has shape {tuple(a.shape)}; it must be a square "
                            "matrix or a stack of them (..., M, M)")
    return a


def _pade13(a, xp):
    """r₁₃(a) = (V − U)⁻¹ (V + U), U odd and V even in a."""
    b = PADE13
    eye = onp.eye(a.shape[-1], dtype=a.dtype)
    a2 = xp.matmul(a, a)
    a4 = xp.matmul(a2, a2)
    a6 = xp.matmul(a4, a2)
    u = xp.matmul(a, xp.matmul(a6, b[13] * a6 + b[11] * a4 + b[9] * a2) + b[7] * a6 + b[5] * a4 + b[3] * a2
                  + b[1] * eye)
    v = xp.matmul(a6, b[12] * a6 + b[10] * a4 + b[8] * a2) + b[6] * a6 + b[4] * a4 + b[2] * a2 + b[0] * eye
    return xp.linalg.solve(v - u, v + u)


def _squarings(a, xp):
    """s per matrix (..., 1, 1), as a's dtype: max(0, ⌈log₂(‖a‖₁ / θ₁₃)⌉)."""
    norm = xp.max(xp.sum(xp.abs(a), axis=-2), axis=-1)
    with onp.errstate(divide="ignore"):
        s = xp.maximum(xp.ceil(xp.log2(norm / THETA13)), 0.0)
    return xp.reshape(s, tuple(s.shape) + (1, 1))


def expm(A):
    """e^A of a square matrix or of each matrix of a stack (..., M, M): [13/13] Padé
    with scaling and squaring; differentiable (through the composition)."""
    from .. import tracer
    if tracer.current() is None and not isinstance(A, tracer.Value):
        a = _operand(A, onp, "expm")
        s = _squarings(a, onp)
        r = _pade13(a / onp.exp2(s).astype(a.dtype), onp)
        for k in range(int(s.max(initial=0))):
            r = onp.where(k < s, r @ r, r)
        return r
    a = _operand(A, np, "expm")
    s = np.stop_gradient(_squarings(a, np))
    r = _pade13(a / np.exp2(s), np)
    for k in range(MAX_SQUARINGS):
        r = np.where(k < s, np.matmul(r, r), r)
    return np.where(s > MAX_SQUARINGS, onp.nan, r)


def expm_frechet(A, E, method=None, compute_expm=True, check_finite=True):
    """The Fréchet derivative L(A, E) = d/dt e^(A + tE) at t = 0, with e^A
    (``compute_expm=True``: ``(expm(A), L)``), read off the exponential of the block
    matrix [[A, E], [0, A]] = [[e^A, L], [0, e^A]] (Higham, Functions of Matrices,
    theorem 3.6)."""
    if method not in (None, "SPS", "blockEnlarge"):
        raise ArgumentError(f"scipy.linalg.expm_frechet: method must be None, 'SPS' or 'blockEnlarge', got {method!r}")
    from .. import tracer
    xp = onp if tracer.current() is None and not any(isinstance(x, tracer.Value) for x in (A, E)) else np
    a, e = _operand(A, xp, "expm_frechet"), _operand(E, xp, "expm_frechet")
    if tuple(a.shape) != tuple(e.shape):
        raise ArgumentError(f"scipy.linalg.expm_frechet: A has shape {tuple(a.shape)} and E {tuple(e.shape)}; "
                            "they must be the same")
    n = a.shape[-1]
    big = xp.concatenate([xp.concatenate([a, e], axis=-1),
                          xp.concatenate([xp.zeros_like(a), a], axis=-1)], axis=-2)
    block = expm(big)
    ea, lf = block[..., :n, :n], block[..., :n, n:]
    return (ea, lf) if compute_expm else lf
