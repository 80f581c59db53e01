"""Linear algebra: matmul (vector-vector, matrix-vector, vector-matrix, matrix-matrix,
and batched: stacks of matrices whose batch axes broadcast, as numpy's), contract (the
leading axes of two arrays summed away: ``x @ W``'s gradient with respect to W when x
has rank 3 or more), transpose, and the composite outer (dot, inner, vdot and tensordot
are einsum.py's, above this module).  d(XW)/dW = X^T G; the dot product's gradients are
the other vector (the paper's section on vector sum reduction).

``x @ W`` with x of rank 3 or more and W a matrix is one matrix product: x's leading
axes are its rows (x[b, t, :] is row b*T + t of x as stored), so the backends run it as
a single (B*T, D) @ (D, K) product, and its gradient with respect to W, contract(x, G),
as a single (B*T, D)^T @ (B*T, K) one."""
from __future__ import annotations

import numpy as np

from .bind import batch_expand, bind, unbroadcast
from .registry import Op, register
from ..errors import ShapeError


def _trace():
    from .. import tracer as trace
    return trace


def _matmul_shape(env, avals):
    (sa, ta), (sb, tb) = avals
    if len(sa) == 0 or len(sb) == 0:
        raise ShapeError("matmul needs operands of rank 1 or more (use * for scalars)")
    if max(len(sa), len(sb)) > 2:     # batched: (..., m, k) @ (..., k, n), batch axes broadcast
        if min(len(sa), len(sb)) < 2:
            raise ShapeError("internal: a batched matmul's operands are promoted to rank 2 first")
        _agree(env, sa[-1], sb[-2])
        batch = env.broadcast([tuple(sa[:-2]), tuple(sb[:-2])], "matmul's batch axes")
        return tuple(batch) + (sa[-2], sb[-1]), np.result_type(ta, tb)
    ka, kb = sa[-1], sb[0]
    try:
        env.equal(ka, kb, "matmul")
    except ShapeError:
        raise ShapeError(f"contraction sizes do not agree: the left operand has "
                         f"{env.shown(ka)} columns, the right operand {env.shown(kb)} rows") from None
    out = tuple(sa[:-1]) + tuple(sb[1:])
    return out, np.result_type(ta, tb)


def _agree(env, ka, kb):
    try:
        env.equal(ka, kb, "matmul")
    except ShapeError:
        raise ShapeError(f"contraction sizes do not agree: the left operand has "
                         f"{env.value(ka)} columns, the right operand {env.value(kb)} rows") from None


def _matmul_vjp(g, ans, a, b):
    ra, rb = a.ndim, b.ndim
    if ra > 2 and rb == 2:   # rows of any rank times a matrix: (G W^T, x^T G over every row)
        return matmul(g, transpose(b)), contract(a, g)
    if max(ra, rb) > 2:   # batched: the matrix rule per batch, summed over broadcast batch axes
        return (unbroadcast(matmul(g, swapaxes(b, -1, -2)), a._shape),
                unbroadcast(matmul(swapaxes(a, -1, -2), g), b._shape))
    if ra == 1 and rb == 1:
        return g * b, g * a
    if ra == 2 and rb == 1:
        return outer(g, b), matmul(g, a)
    if ra == 1 and rb == 2:
        return matmul(b, g), outer(a, g)
    return matmul(g, transpose(b)), matmul(transpose(a), g)


def _matmul_jvp(ts, ans, a, b):
    ta, tb = ts
    terms = []
    if ta is not None:
        terms.append(matmul(ta, b))
    if tb is not None:
        terms.append(matmul(a, tb))
    return terms[0] if len(terms) == 1 else terms[0] + terms[1]


def _matmul_batch(n, args, batched):
    """a @ b per example.  A batched operand whose example is a matrix (or a stack) joins
    a stack; a batched vector becomes the rows of a matrix where that is the same product
    (``(n, k) @ W``), and one-row or one-column matrices of a stack otherwise."""
    (a, b), (ba, bb) = args, batched
    ra, rb = a.ndim - int(ba), b.ndim - int(bb)
    if ra >= 2 and rb >= 2:          # stacks of matrices: batch axes broadcast
        rank = max(ra, rb)
        return matmul(batch_expand(a, rank) if ba else a, batch_expand(b, rank) if bb else b)
    if ra == 1 and rb == 1:          # dot products
        if ba and bb:
            return bind("sum", a * b, axes=(1,), keepdims=False)
        return matmul(a, b) if ba else matmul(b, a)
    if ra == 1:                      # (k,) @ (k, m) -> (m,)
        if not bb:
            return matmul(a, b)      # the examples' vectors are a matrix's rows
        lhs = a if ba else bind("broadcast_to", a, shape=(n,) + a._shape)
        r = matmul(bind("reshape", lhs, shape=(n, 1, lhs._shape[1])), b)
        return bind("reshape", r, shape=(n, r._shape[2]))
    # (m, k) @ (k,) -> (m,)
    if not ba:
        return matmul(b, transpose(a))   # the examples' vectors against A's rows
    rhs = b if bb else bind("broadcast_to", b, shape=(n,) + b._shape)
    r = matmul(a, bind("reshape", rhs, shape=(n, rhs._shape[1], 1)))
    return bind("reshape", r, shape=(n, r._shape[1]))


register(Op("matmul", "linalg", _matmul_shape, np.matmul, vjp=_matmul_vjp, jvp=_matmul_jvp,
            doc="a @ b (batched above rank 2); vjp: (g b^T, a^T g), summed over broadcast batch axes",
            infix="@", root=True, batch=_matmul_batch))


def _contract_shape(env, avals):
    (sa, ta), (sb, tb) = avals
    if len(sa) < 2 or len(sa) != len(sb):
        raise ShapeError("internal: contract needs two operands of one rank, 2 or more")
    for x, y in zip(sa[:-1], sb[:-1]):
        try:
            env.equal(x, y, "contract")
        except ShapeError:
            raise ShapeError(f"contract: leading axes {env.shown(x)} and {env.shown(y)} differ") from None
    return (sa[-1], sb[-1]), np.result_type(ta, tb)


def _contract_numpy(a, b):
    lead = list(range(a.ndim - 1))
    return np.tensordot(a, b, axes=(lead, lead))


register(Op("contract", "linalg", _contract_shape, _contract_numpy,
            vjp=lambda g, ans, a, b: (matmul(b, transpose(g)), matmul(a, g)),
            jvp=lambda ts, ans, a, b: _sum_terms([contract(ts[0], b) if ts[0] is not None else None,
                                                  contract(a, ts[1]) if ts[1] is not None else None]),
            doc="a[..., n], b[..., m] -> Σ over the leading axes of a ⊗ b: aᵀ b with the leading axes as rows; "
                "vjp: (b gᵀ, a g)",
            notation="contract", rule="aᵀ b over every row ⇒ (b gᵀ, a g)", root=True,
            batch=lambda n, args, batched: _contract_batch(n, *args, *batched)))


def _contract_batch(n, a, b, ba, bb):
    """contract per example: one row axis is a stack of products ``aᵀ b``; more row
    axes (symbolic, so they cannot be merged into one) an outer product summed over them."""
    rows = a.ndim - int(ba) - 1
    if rows == 1:
        at = transpose(a, (0, 2, 1)) if ba else transpose(a)
        return matmul(at, b)
    a = bind("reshape", a, shape=a._shape + (1,))
    b = bind("reshape", b, shape=b._shape[:-1] + (1,) + b._shape[-1:])
    lead = 1 if ba or bb else 0
    return bind("sum", a * b, axes=tuple(range(lead, lead + rows)), keepdims=False)


def _sum_terms(terms):
    terms = [t for t in terms if t is not None]
    return terms[0] if len(terms) == 1 else terms[0] + terms[1]


def contract(a, b):
    """Σ over the leading axes of ``a[..., n] ⊗ b[..., m]``: ``a.reshape(-1, n).T @
    b.reshape(-1, m)`` without reshaping (so sizes stay symbolic)."""
    return _trace().bind("contract", a, b)


def _transpose_shape(env, avals, perm):
    (s, t), = avals
    return tuple(s[p] for p in perm), t


register(Op("transpose", "structure", _transpose_shape, lambda x, perm: np.transpose(x, perm),
            vjp=lambda g, y, x, perm: (transpose(g, tuple(np.argsort(perm).tolist())),),
            jvp=lambda ts, y, x, perm: transpose(ts[0], perm), rule="transpose ⇒ transpose back",
            batch=lambda n, args, batched, perm: transpose(args[0], (0,) + tuple(p + 1 for p in perm)),
            view=True))


# ----------------------------------------------------------------------------- user API
def matmul(a, b):
    """``a @ b`` with numpy's rules: vectors and matrices, and above rank 2 stacks of
    matrices whose batch axes broadcast; a vector beside a stack is promoted to a
    one-row (left) or one-column (right) matrix and that axis dropped again."""
    t = _trace()
    if not isinstance(a, t.Value) and not isinstance(b, t.Value) and t.current() is None:
        return np.matmul(a, b)
    from .elementwise import result_dtype, convert
    from .structure import reshape_sym
    dt = result_dtype([a, b], float_result=False)
    if dt == np.bool_:        # numpy: a logical "or of ands", computed as a count
        return matmul(convert(a, np.int64), convert(b, np.int64)) != 0
    a, b = convert(a, dt), convert(b, dt)
    if max(a.ndim, b.ndim) <= 2:
        return t.bind("matmul", a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError("matmul: an operand is a scalar (use * for scalars)")
    if a.ndim == 1:           # (k,) @ (..., k, n) -> (..., n)
        r = matmul(reshape_sym(a, (1, a._shape[0])), b)
        return reshape_sym(r, r._shape[:-2] + r._shape[-1:])
    if b.ndim == 1:           # (..., m, k) @ (k,) -> (..., m)
        r = matmul(a, reshape_sym(b, (b._shape[0], 1)))
        return reshape_sym(r, r._shape[:-1])
    return t.bind("matmul", a, b)


def swapaxes(x, axis1, axis2):
    """numpy.swapaxes: a transpose exchanging two axes."""
    t = _trace()
    if not isinstance(x, t.Value) and t.current() is None:
        return np.swapaxes(x, axis1, axis2)
    x = t.to_value(x)
    perm = list(range(x.ndim))
    i, j = _axis(axis1, x.ndim), _axis(axis2, x.ndim)
    perm[i], perm[j] = perm[j], perm[i]
    return transpose(x, perm)


def _axis(a, ndim):
    a = int(a)
    if not -ndim <= a < ndim:
        raise ShapeError(f"axis {a} is out of bounds for an array of rank {ndim}")
    return a % ndim


def transpose(x, axes=None):
    t = _trace()
    if not isinstance(x, t.Value):
        if t.current() is None:
            return np.transpose(x, axes)
        x = t.to_value(x)
    perm = tuple(reversed(range(x.ndim))) if axes is None else tuple(int(a) % max(x.ndim, 1) for a in axes)
    if sorted(perm) != list(range(x.ndim)):
        raise ShapeError(f"transpose: axes {axes} are not a permutation of {x.ndim} axes")
    if perm == tuple(range(x.ndim)):
        return x
    return t.bind("transpose", x, perm=perm)


def outer(a, b):
    """Outer product of two vectors: a[:, None] * b[None, :]."""
    from .structure import reshape_sym
    t = _trace()
    if not isinstance(a, t.Value) and not isinstance(b, t.Value) and t.current() is None:
        return np.outer(a, b)
    a, b = t.to_value(a), t.to_value(b)
    if a.ndim != 1:
        a = reshape_sym(a, (int(np.prod(a.shape)),))
    if b.ndim != 1:
        b = reshape_sym(b, (int(np.prod(b.shape)),))
    return reshape_sym(a, (a._shape[0], 1)) * reshape_sym(b, (1, b._shape[0]))
