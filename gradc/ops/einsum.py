"""einsum and the contractions built on it (tensordot, inner, vdot, and numpy's dot).

``einsum`` is a composite: it lowers, at trace time, to ops gradc already has and
differentiates (transposes, size-1 reshapes, element-wise products, sums, matmul), so its
gradient is again a contraction of the same shape and nothing is added to the backends.

How an expression is evaluated:

1. Each operand's repeated index (``ii``: a diagonal) is resolved by masking with
   ``iota_i == iota_j`` and summing one of the two axes; indices no other operand and
   not the output need are summed away at once.
2. Operands are contracted pairwise in a greedy order (as opt_einsum's "greedy"): at
   each step the pair whose result has the fewest elements (at the sizes being traced)
   goes first, so no step builds a larger intermediate than it must.
3. A pair with one contracted index and at most one free index on each side is a
   (batched) matrix product (a stack of matrix-vector products is not): BLAS for
   matrices, one fused loop nest for stacks.  Without batch indices, one contracted
   index with several free ones on the left and one on the right (``btd,dk->btk``) is
   one product over the left's free axes as rows, and several contracted indices with
   one free index on each side (``btd,btk->dk``) one ``contract``; several contracted
   indices trailing the left (``blkc,kco->blo``), or several free indices on the right
   (``bd,edh->beh``), are merged into one (their sizes are fixed: another size
   retraces): each a single BLAS call.  Any other pair is a broadcast product summed
   over its contracted indices, which the scheduler fuses into one loop nest without
   materializing the product.
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError


def _trace():
    from .. import tracer as trace
    return trace


def _parse(subscripts: str, ranks: list[int]):
    """([indices of each operand], output indices), ellipses expanded to fresh letters."""
    s = subscripts.replace(" ", "")
    explicit = "->" in s
    lhs, out = s.split("->") if explicit else (s, None)
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise ShapeError(f"einsum: {len(terms)} operand subscripts for {len(ranks)} operands")
    used = set(c for c in s if c.isalpha())
    spare = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in used]
    ell_rank = 0
    for term, r in zip(terms, ranks):
        if "..." in term:
            ell_rank = max(ell_rank, r - (len(term) - 3))
    ell = "".join(spare[:ell_rank])
    inputs = []
    for term, r in zip(terms, ranks):
        if "..." in term:
            k = r - (len(term) - 3)
            term = term.replace("...", ell[ell_rank - k:] if k else "")
        if len(term) != r or not all(c.isalpha() for c in term):
            raise ShapeError(f"einsum: subscripts {term!r} do not match an operand of rank {r}")
        inputs.append(term)
    if explicit:
        out = out.replace("...", ell)
        if len(set(out)) != len(out) or any(c not in "".join(inputs) for c in out):
            raise ShapeError(f"einsum: output subscripts {out!r} must be distinct indices of the inputs")
    else:   # numpy's implicit output: the broadcast axes, then indices seen once, sorted
        counts = {}
        for c in "".join(inputs):
            counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    return inputs, out


def _size(x, axis):
    return x._b.env.value(x._shape[axis])


def _align(x, idx: str, order: str):
    """``x`` (indices ``idx``) transposed and reshaped to ``order``'s axes, size 1 where
    ``order`` has an index ``x`` lacks."""
    from .linalg import transpose
    from .structure import reshape_sym
    present = [c for c in order if c in idx]
    x = transpose(x, [idx.index(c) for c in present])
    it = iter(x._shape)
    return reshape_sym(x, tuple(next(it) if c in idx else 1 for c in order))


def _reduce_alone(x, idx: str, keep: set):
    """Resolve repeated indices (diagonals) and sum indices nothing else needs."""
    from .reduce import sum_
    from .elementwise import where, equal
    t = _trace()
    while len(set(idx)) != len(idx):
        c = next(c for c in idx if idx.count(c) > 1)
        i, j = idx.index(c), idx.index(c, idx.index(c) + 1)
        env = x._b.env
        env.equal(x._shape[i], x._shape[j], "einsum's repeated index")
        rows = t.bind("iota", shape=x._shape, axis=i, dtype=np.dtype(np.int64))
        cols = t.bind("iota", shape=x._shape, axis=j, dtype=np.dtype(np.int64))
        x = sum_(where(equal(rows, cols), x, 0), axis=j)
        idx = idx[:j] + idx[j + 1:]
    drop = [a for a, c in enumerate(idx) if c not in keep]
    if drop:
        x = sum_(x, axis=tuple(drop))
        idx = "".join(c for c in idx if c in keep)
    return x, idx


def _contract(a, ia: str, b, ib: str, keep: set):
    """The pair's product summed over the indices they share that nothing else needs;
    returns (value, indices)."""
    from .linalg import matmul
    from .reduce import sum_
    from .structure import reshape_sym
    shared = [c for c in ia if c in ib]
    summed = [c for c in shared if c not in keep]
    batch = [c for c in shared if c in keep]
    fa = [c for c in ia if c not in ib]
    fb = [c for c in ib if c not in ia]
    if len(summed) == 1 and len(fa) <= 1 and len(fb) <= 1 and (fa and fb or not batch):
        # a (batched) matrix product; a stack of matrix-vector products (``beh,eh->be``)
        # is left to the broadcast product below, which fuses with its neighbours
        k = summed[0]
        left = _align(a, ia, "".join(batch + fa) + k)
        right = _align(b, ib, "".join(batch) + k + "".join(fb))
        if not fa:
            left = reshape_sym(left, left._shape[:-1] + (1, left._shape[-1]))
        if not fb:
            right = reshape_sym(right, right._shape + (1,))
        r = matmul(left, right)
        shape = r._shape[:len(batch)] + (r._shape[-2:-1] if fa else ()) + (r._shape[-1:] if fb else ())
        return reshape_sym(r, shape), "".join(batch + fa + fb)
    if not batch and fa and fb and summed and a.dtype.kind == "f" and (
            len(fb) >= 2 or (len(summed) >= 2 and set(ia[-len(summed):]) == set(summed))):
        return _merged_product(a, ia, b, ib, fa, fb, [c for c in ia if c in summed]), "".join(fa + fb)
    if not batch and len(fb) == 1 and summed and a.dtype.kind == "f":
        if len(summed) == 1 and len(fa) >= 2:       # rows of any rank times a matrix
            return matmul(_align(a, ia, "".join(fa) + summed[0]), _align(b, ib, summed[0] + fb[0])), "".join(fa + fb)
        if len(summed) >= 2 and len(fa) == 1:       # both rows' axes summed: a^T b over every row
            from .linalg import contract
            rows = "".join(summed)
            return contract(_align(a, ia, rows + fa[0]), _align(b, ib, rows + fb[0])), fa[0] + fb[0]
    order = "".join(batch + fa + fb + summed)
    prod = _align(a, ia, order) * _align(b, ib, order)
    out = "".join(batch + fa + fb)
    if summed:
        prod = sum_(prod, axis=tuple(range(len(out), len(order))))
    return prod, out


def _merged_product(a, ia, b, ib, fa, fb, summed):
    """One product over ``a``'s free axes as rows, its contracted axes merged into one
    and ``b``'s free axes into one (``blkc,kco->blo`` as ``(b, l, k*c) @ (k*c, o)``,
    ``bd,edh->beh`` as ``(b, d) @ (d, e*h)``): one library product instead of a
    broadcast product, with the merged sizes fixed: a weight's sizes, which a call
    rarely changes (another size retraces)."""
    from .linalg import matmul
    from .structure import reshape_sym
    env = a._b.env
    for x, idx, cs in ((a, ia, summed), (b, ib, fb if len(fb) > 1 else [])):
        for c in cs:
            env.pin(x._shape[idx.index(c)])
    dim = lambda x, idx, c: env.find(x._shape[idx.index(c)])   # noqa: E731
    k = int(np.prod([dim(a, ia, c) for c in summed], dtype=np.int64))
    rows = tuple(dim(a, ia, c) for c in fa)
    cols = tuple(dim(b, ib, c) for c in fb)
    left = reshape_sym(_align(a, ia, "".join(fa + summed)), rows + (k,))
    n = cols[0] if len(cols) == 1 else int(np.prod(cols, dtype=np.int64))
    right = reshape_sym(_align(b, ib, "".join(summed + fb)), (k, n))
    r = matmul(left, right)
    return reshape_sym(r, rows + cols) if len(cols) > 1 else r


def _broadcast_ellipsis(ops, inputs, subscripts):
    """Axes broadcast as numpy's einsum broadcasts them (size 1 against n), those under
    ``...`` and named ones alike (``bij,bjk->bik`` with a batch of 1 beside a batch of
    2): an operand whose axis has size 1 where another's has more is broadcast to it."""
    from .structure import broadcast_to
    sizes: dict = {}
    for x, idx in zip(ops, inputs):
        for axis, c in enumerate(idx):
            if _size(x, axis) != 1:
                sizes.setdefault(c, x._shape[axis])
    out = []
    for x, idx in zip(ops, inputs):
        want = tuple(sizes[c] if c in sizes and _size(x, a) == 1 else x._shape[a] for a, c in enumerate(idx))
        out.append(broadcast_to(x, want) if want != tuple(x._shape) else x)
    return out


def einsum(subscripts, *operands):
    """numpy.einsum: explicit (``ij,jk->ik``) and implicit (``ij,jk``) output, repeated
    indices within an operand (``ii->i``, ``ii``), ellipses, any number of operands."""
    t = _trace()
    if not any(isinstance(x, t.Value) for x in operands) and t.current() is None:
        return np.einsum(subscripts, *operands)
    from .elementwise import result_dtype, convert
    if not isinstance(subscripts, str):
        raise ShapeError("einsum: gradc takes the subscripts form, e.g. einsum('ij,jk->ik', a, b)")
    dt = result_dtype(list(operands), float_result=False)
    ops = [convert(x, dt) for x in operands]
    inputs, out = _parse(subscripts, [x.ndim for x in ops])
    ops = _broadcast_ellipsis(ops, inputs, subscripts)
    seen = {}
    for k, (x, idx) in enumerate(zip(ops, inputs)):   # one size per index
        for axis, c in enumerate(idx):
            if c in seen:
                j, other = seen[c]
                try:
                    x._b.env.equal(x._shape[axis], other, "einsum")
                except ShapeError:
                    raise ShapeError(f"einsum {subscripts!r}: index {c!r} has size {x._b.env.value(other)} in "
                                     f"operand {j} and {_size(x, axis)} in operand {k}") from None
            else:
                seen[c] = (k, x._shape[axis])
    terms = []
    for k, (x, idx) in enumerate(zip(ops, inputs)):
        others = set(out).union(*(inputs[j] for j in range(len(ops)) if j != k))
        terms.append(_reduce_alone(x, idx, others))
    while len(terms) > 1:
        best = None
        for i in range(len(terms)):
            for j in range(i + 1, len(terms)):
                rest = set(out).union(*(terms[m][1] for m in range(len(terms)) if m not in (i, j)))
                (xa, ia), (xb, ib) = terms[i], terms[j]
                sizes = {c: _size(xa, ia.index(c)) for c in ia} | {c: _size(xb, ib.index(c)) for c in ib}
                result = set(ia + ib) & (rest | (set(ia) ^ set(ib)))
                cost = int(np.prod([sizes[c] for c in result], dtype=np.float64))
                if best is None or cost < best[0]:
                    best = (cost, i, j, rest)
        _, i, j, rest = best
        (xa, ia), (xb, ib) = terms[i], terms[j]
        merged = _contract(xa, ia, xb, ib, rest)
        terms = [terms[m] for m in range(len(terms)) if m not in (i, j)] + [merged]
    x, idx = _reduce_alone(*terms[0], set(out))
    from .linalg import transpose
    return transpose(x, [idx.index(c) for c in out]) if idx != out else x


def tensordot(a, b, axes=2):
    """numpy.tensordot: sum over the last ``axes`` axes of ``a`` and the first of ``b``
    (an int), or over the listed axis pairs."""
    t = _trace()
    if not isinstance(a, t.Value) and not isinstance(b, t.Value) and t.current() is None:
        return np.tensordot(a, b, axes)
    ra, rb = np.ndim(a) if not isinstance(a, t.Value) else a.ndim, np.ndim(b) if not isinstance(b, t.Value) else b.ndim
    if isinstance(axes, (int, np.integer)):
        axa, axb = list(range(ra - int(axes), ra)), list(range(int(axes)))
    else:
        axa, axb = ([axes[0]] if np.ndim(axes[0]) == 0 else list(axes[0]),
                    [axes[1]] if np.ndim(axes[1]) == 0 else list(axes[1]))
        axa, axb = [int(x) % ra for x in axa], [int(x) % rb for x in axb]
    if len(axa) != len(axb):
        raise ShapeError(f"tensordot: {len(axa)} axes of a against {len(axb)} axes of b")
    letters = iter("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    ia, ib = [next(letters) for _ in range(ra)], [None] * rb
    for x, y in zip(axa, axb):
        ib[y] = ia[x]
    ib = [c if c is not None else next(letters) for c in ib]
    out = [c for k, c in enumerate(ia) if k not in axa] + [c for k, c in enumerate(ib) if k not in axb]
    return einsum(f"{''.join(ia)},{''.join(ib)}->{''.join(out)}", a, b)


def inner(a, b):
    """numpy.inner: the sum over the last axes of a and b."""
    t = _trace()
    if not isinstance(a, t.Value) and not isinstance(b, t.Value) and t.current() is None:
        return np.inner(a, b)
    ra, rb = np.ndim(a) if not isinstance(a, t.Value) else a.ndim, np.ndim(b) if not isinstance(b, t.Value) else b.ndim
    if ra == 0 or rb == 0:
        return a * b
    return tensordot(a, b, ([ra - 1], [rb - 1]))


def vdot(a, b):
    """numpy.vdot for real arrays: the sum of the element-wise product of a and b
    (flattened: the two must have the same number of elements)."""
    from .reduce import sum_
    from .structure import reshape
    t = _trace()
    if not isinstance(a, t.Value) and not isinstance(b, t.Value) and t.current() is None:
        return np.vdot(a, b)
    a, b = t.to_value(a), t.to_value(b)
    if a._shape != b._shape:
        a, b = reshape(a, -1), reshape(b, -1)
    return sum_(a * b)


def dot(a, b):
    """numpy.dot: a product with a scalar, matmul up to rank 2, above it the sum over
    a's last axis and b's second-to-last."""
    t = _trace()
    if not isinstance(a, t.Value) and not isinstance(b, t.Value) and t.current() is None:
        return np.dot(a, b)
    if np.ndim(a) == 0 or np.ndim(b) == 0 or getattr(a, "ndim", 1) == 0 or getattr(b, "ndim", 1) == 0:
        return a * b
    if max(np.ndim(a) if not isinstance(a, t.Value) else a.ndim,
           np.ndim(b) if not isinstance(b, t.Value) else b.ndim) > 2:
        return dot_nd(t.to_value(a), t.to_value(b))
    from .linalg import matmul
    return matmul(a, b)


def dot_nd(a, b):
    """numpy.dot above rank 2: the sum over a's last axis and b's second-to-last."""
    rb = b.ndim
    return tensordot(a, b, ([a.ndim - 1], [rb - 2 if rb >= 2 else 0]))
