"""Op families of the differential fuzzer's last phase (tests/fuzz_programs.py, stream 71):
joins and splits, reshapes and broadcasts, gathers and scatters at integer arrays with
repeated indices, powers with a traced exponent, fmod/remainder, logsumexp over tuples of
axes, linear algebra, erfinv/ndtri, cumulative ops (lax's, either direction), flip/roll,
pad, and dot_general with batch axes.

A step is ``("fam", name, operands, params)``.  Each family has a drawing rule (which
values it takes, its output shape in dimension names) and one function ``_run`` that
spells it in gradc (``m = gradc.numpy``) and in plain numpy (``m = numpy``; where numpy has
no such function, an independent construction: ``einsum`` for dot_general, ``linalg.solve``
for solve_triangular, Newton's iteration on ``math.erf`` for erfinv).

Domains are safe for finite differences by construction, whatever values reach the op
(a scan's carries, ties, values of 1e5): the comment of each family says why.
"""
from __future__ import annotations

import math

import numpy as onp

import gradc
import gradc.lax as glax
import gradc.numpy as gnp
import gradc.scipy.linalg as gsl
import gradc.scipy.special as gss

# name -> (stability class, exact32).  Stability (fuzz_programs._stability): "move" keeps
# its operands' ties and makes none (values moved or selected); "sum" sums or multiplies
# values, exact only on exact operands; "round" rounds (a transcendental, a factorization).
# exact32: every correct float32 implementation gives the same bits (Trace.rounds32).
FAMILIES = {
    "concat": ("move", True), "stack": ("move", True), "split": ("move", True),
    "reshape": ("move", True), "broadcast_to": ("move", True),
    "gather_pt": ("move", True), "gather_col": ("move", True),
    "scatter_add": ("sum", False), "scatter_set": ("sum", False), "scatter_mul": ("round", False),
    "scatter_max": ("move", True), "scatter_min": ("move", True),
    "pow": ("round", False), "fmod": ("round", False), "remainder": ("round", False),
    "lse_axes": ("round", False),
    "solve": ("round", False), "inv": ("round", False), "det": ("round", False), "slogdet": ("round", False),
    "cholesky": ("round", False), "solve_triangular": ("round", False), "eigh": ("round", False),
    "qr": ("round", False), "svdvals": ("round", False),
    "erfinv": ("round", False), "ndtri": ("round", False),
    "lax_cumsum": ("sum", False), "lax_cumprod": ("round", False), "lax_cummax": ("move", True),
    "lax_cummin": ("move", True), "lax_cumlogsumexp": ("round", False),
    "flip": ("move", True), "roll": ("move", True), "pad": ("move", True),
    "dot_general": ("sum", False),
}
LINALG = ["solve", "inv", "det", "slogdet", "cholesky", "solve_triangular", "eigh", "qr", "svdvals"]
LINALG_MAX_N = 17           # matrices of at most 17 rows (every size of SMALL_SIZES)
LINALG_MAX_WORK = 400_000   # batch * n^2 * columns: numpy's reference runs per finite difference
ERFINV_MAX_NUMEL = 20_000   # the reference's Newton iteration calls math.erf per element
SCATTER_MODES = ["add", "set", "mul", "max", "min"]
CONST_INDEX_MAX = 24        # constant index arrays: gradc updates in one round per repeat of a position
PAD_MODES = ["constant", "edge", "reflect", "symmetric", "wrap"]


def _fp():
    import fuzz_programs
    return fuzz_programs


# ----------------------------------------------------------------------------- drawing
def draw(p, r):
    """One step of a family (the scatters one family, linear algebra twelve), pushed on
    ``p``; False where no value of ``p`` suits three drawn in turn."""
    fams = sorted(set(FAMILIES) - set(LINALG)) + ["linalg"] * 12    # nine ops, which fewer values suit
    if p.backend == "c":        # generated C has no LAPACK: linalg is refused there (docs/numpy.md)
        fams = [f for f in fams if f != "linalg"]
    for _ in range(3):          # another family where none of p's values suits the first
        name = str(r.choice(fams))
        if name == "linalg":
            name = str(r.choice(LINALG))
        if name.startswith("scatter"):
            name = "scatter_" + str(r.choice(SCATTER_MODES))
        if _DRAW.get(name, _draw_unary)(p, r, name):
            return True
    return False


def _floats(p, ok=lambda i: True):
    fp = _fp()
    return lambda i: p.kinds[i] == "f" and (p.rank4 or i != fp.RANK3_ARG) and ok(i)


def _push(p, name, ops, params, shape):
    return _fp()._push(p, ("fam", name, tuple(ops), params), tuple(shape))


def _named(p, name, size):
    """A dimension name for a derived size (as fuzz_programs' slices name theirs)."""
    p.sizes.setdefault(name, int(size))
    return name


def _same_shape(p, r, i):
    """A value of i's shape (i itself 40% of the time, or when none other)."""
    same = [q for q in range(len(p.shapes)) if _floats(p)(q) and p.shapes[q] == p.shapes[i] and q != i]
    return i if not same or r.random() < 0.4 else int(r.choice(same))


def _draw_unary(p, r, name):
    """Element-wise families on any float value (erfinv/ndtri: small values, see
    ERFINV_MAX_NUMEL); pow, fmod and remainder take a second value that broadcasts."""
    fp = _fp()
    lim = ERFINV_MAX_NUMEL if name in ("erfinv", "ndtri") else fp.MAX_NUMEL
    i = fp._pick(p, r, _floats(p, lambda i: p.numel(p.shapes[i]) <= lim))
    if i is None:
        return False
    if name in ("erfinv", "ndtri"):
        return _push(p, name, [i], None, p.shapes[i])
    if name in ("fmod", "remainder") and r.random() < 0.5:
        # a constant divisor: 0.5 and 2 divide exactly, 0.75 does not (a correct fmod is exact anyway)
        return _push(p, name, [i], float(r.choice([0.5, 0.75, 2.0])), p.shapes[i])
    j = fp._pick(p, r, _floats(p, lambda j: fp._broadcast(p.shapes[i], p.shapes[j]) is not None))
    form = str(r.choice(["op", "func", "rpow"])) if name == "pow" else str(r.choice(["op", "func"]))
    if form == "rpow":
        return _push(p, name, [j], form, p.shapes[j])
    return _push(p, name, [i, j], form, fp._broadcast(p.shapes[i], p.shapes[j]))


def _axis_of(r, shape, ok=lambda a: True):
    axes = [a for a in range(len(shape)) if ok(a)]
    if not axes:
        return None
    a = int(r.choice(axes))
    return a - len(shape) if r.random() < 0.3 else a


def _draw_concat(p, r, name):
    fp = _fp()
    i = fp._pick(p, r, _floats(p, lambda i: len(p.shapes[i]) >= 1))
    if i is None:
        return False
    axis = _axis_of(r, p.shapes[i])
    a = axis % len(p.shapes[i])
    fits = lambda j: (len(p.shapes[j]) == len(p.shapes[i])                    # noqa: E731
                      and all(x == y for k, (x, y) in enumerate(zip(p.shapes[i], p.shapes[j])) if k != a))
    cands = [j for j in range(len(p.shapes)) if _floats(p, fits)(j)]
    ops = [i, int(r.choice(cands))] + ([i] if r.random() < 0.3 else [])
    dims = [p.shapes[o][a] for o in ops]
    d = _named(p, "(" + "+".join(map(str, dims)) + ")", sum(p.size(x) for x in dims))
    return _push(p, name, ops, axis, p.shapes[i][:a] + (d,) + p.shapes[i][a + 1:])


def _draw_stack(p, r, name):
    fp = _fp()
    i = fp._pick(p, r, _floats(p, lambda i: len(p.shapes[i]) <= 3))
    if i is None:
        return False
    ops = [i, _same_shape(p, r, i)] + ([i] if r.random() < 0.3 else [])
    rank = len(p.shapes[i]) + 1
    axis = int(r.integers(-rank, rank))
    a = axis % rank
    return _push(p, name, ops, axis, p.shapes[i][:a] + (len(ops),) + p.shapes[i][a:])


def _draw_split(p, r, name):
    """split(x, [c1, c2], axis) into three parts, put back as [p2, 2 p0, p1]: every part
    reaches the output, in a new order."""
    fp = _fp()
    i = fp._pick(p, r, _floats(p, lambda i: len(p.shapes[i]) >= 1))
    if i is None:
        return False
    axis = _axis_of(r, p.shapes[i])
    n = p.size(p.shapes[i][axis])
    cuts = sorted(int(c) for c in r.integers(0, n + 1, 2))
    return _push(p, name, [i], (axis, tuple(cuts)), p.shapes[i])


def _draw_reshape(p, r, name):
    """One or two of: merge two adjacent axes, split an axis of size n into (f, n / f),
    insert a 1; up to rank 4 (rank 3 and 4 from matrices)."""
    fp = _fp()
    i = fp._pick(p, r, _floats(p))
    if i is None:
        return False
    shape = list(p.shapes[i])
    for _ in range(int(r.integers(1, 3))):
        moves = ["one"] if len(shape) < fp.MAX_RANK else []
        if len(shape) >= 2:
            moves.append("merge")
        splits = [(a, f) for a, d in enumerate(shape) for f in (2, 3, 4)
                  if p.size(d) >= f and p.size(d) % f == 0]
        if splits and len(shape) < fp.MAX_RANK:
            moves += ["split", "split"]
        if not moves:
            break
        how = str(r.choice(moves))
        if how == "one":
            shape.insert(int(r.integers(len(shape) + 1)), 1)
        elif how == "merge":
            a = int(r.integers(len(shape) - 1))
            shape[a:a + 2] = [_named(p, f"({shape[a]}*{shape[a + 1]})", p.size(shape[a]) * p.size(shape[a + 1]))]
        else:
            a, f = splits[int(r.integers(len(splits)))]
            shape[a:a + 1] = [f, _named(p, f"({shape[a]}/{f})", p.size(shape[a]) // f)]
    numel = p.numel(shape)
    minus = int(r.integers(len(shape))) if shape and numel and r.random() < 0.4 else None   # -1 spelling
    return _push(p, name, [i], (p.concrete(shape), minus, str(r.choice(["func", "method"]))), shape)


def _draw_broadcast_to(p, r, name):
    """A new leading axis of an existing size, and size-1 axes spread to one."""
    fp = _fp()
    i = fp._pick(p, r, _floats(p, lambda i: len(p.shapes[i]) <= 3))
    if i is None:
        return False
    dims = ["m", "k", "d", 2, 3]
    shape = [d if d != 1 or r.random() < 0.3 else dims[int(r.integers(len(dims)))] for d in p.shapes[i]]
    if r.random() < 0.7:
        shape.insert(0, dims[int(r.integers(len(dims)))])
    return _push(p, name, [i], p.concrete(shape), shape)


def _index_dims(p, r, name):
    """Gathers and scatters index with ``I % n`` (I's values are -6..6 or huge, so
    indices repeat): their operand needs non-empty indexed axes."""
    fp = _fp()
    rank = 2 if name.startswith("gather") else 1
    return fp._pick(p, r, _floats(p, lambda i: len(p.shapes[i]) >= rank
                                  and all(p.size(d) >= 1 for d in p.shapes[i][:rank])))


def _draw_gather(p, r, name):
    """gather_pt: x[I % n0, I[::-1] % n1] (two index arrays, broadcast together);
    gather_col: x[:, I % n1] (an index array after a slice)."""
    i = _index_dims(p, r, name)
    if i is None:
        return False
    s = p.shapes[i]
    out = ("k",) + s[2:] if name == "gather_pt" else s[:1] + ("k",) + s[2:]
    return _push(p, name, [i], (p.size(s[0]), p.size(s[1])), out)


def _draw_scatter(p, r, name):
    """x.at[idx].add/set/mul/max/min(v): v a value of shape (k,) + x's rest, or a
    scalar value.  The index: the traced ``I % n`` (I's values repeat) for add and set,
    or a constant index array (drawn here, with repeats), the only kind mul, max and min
    take (gradc refuses them at traced indices that may repeat, gradc/ops/at.py: it
    cannot combine by a product or an extremum what it cannot see).  Repeats accumulate
    (add, mul, max, min); set's last value wins at constant indices (numpy's rule), and
    at traced ones gradc documents the mean of a position's values.  mul's updates are
    1 + tanh(v) / 2, in (0.5, 1.5), so that a product of many duplicates stays in range."""
    i = _index_dims(p, r, name)
    if i is None:
        return False
    s = p.shapes[i]
    want = ("k",) + s[1:]
    vs = [j for j in range(len(p.shapes)) if _floats(p)(j) and p.shapes[j] in (want, ())]
    if not vs:
        return False
    full = [j for j in vs if p.shapes[j] == want]
    j = int(r.choice(full)) if full and r.random() < 0.7 else int(r.choice(vs))
    n = p.size(s[0])
    const = name in ("scatter_mul", "scatter_max", "scatter_min") or r.random() < 0.4
    if const and p.size("k") > CONST_INDEX_MAX:
        return False
    if const:
        lo = -n if r.random() < 0.3 else 0          # negative indices count from the end
        hi = n if r.random() < 0.5 else min(n, 3)   # few targets: many repeats
        return _push(p, name, [i, j], tuple(int(v) for v in r.integers(lo, hi, p.size("k"))), s)
    if p.dtypes["I"] in ("int8", "int32") and n >= 7 and r.random() < 0.4:
        n = -n                          # I's own values (-6..6): negative indices count from the end
    return _push(p, name, [i, j], n, s)


def _draw_lse_axes(p, r, name):
    fp = _fp()
    i = fp._pick(p, r, _floats(p, lambda i: len(p.shapes[i]) >= 2))
    if i is None:
        return False
    rank = len(p.shapes[i])
    k = int(r.integers(2, rank + 1))
    axes = tuple(int(a) - (rank if r.random() < 0.3 else 0) for a in sorted(r.choice(rank, k, replace=False)))
    keep = bool(r.random() < 0.3)
    return _push(p, name, [i], (axes, keep), fp._reduced(p.shapes[i], axes, keep))


def _draw_linalg(p, r, name):
    """On a value x of shape (..., n, c) (rank 2 or 3, n <= 17): see _matrices for the
    well-conditioned matrices built from it."""
    fp = _fp()

    def ok(i):
        s = p.shapes[i]
        if len(s) not in (2, 3) or p.size(s[-2]) > LINALG_MAX_N:
            return False
        return p.numel(s[:-1]) * p.size(s[-2]) * max(1, p.size(s[-1])) <= LINALG_MAX_WORK
    i = fp._pick(p, r, _floats(p, ok))
    if i is None:
        return False
    s = p.shapes[i]
    j = _same_shape(p, r, i)
    n, c = p.size(s[-2]), p.size(s[-1])
    batch = s[:-2]
    sq = batch + (s[-2], s[-2])
    if name == "solve" or name == "solve_triangular":
        out = s
    elif name in ("det", "slogdet"):
        out = batch
    elif name == "svdvals":
        out = batch + (s[-2],)
    else:
        out = sq
    params = {"n": n, "scale": 1.0 / max(1, n * c), "flip": bool(r.random() < 0.5), "lower": bool(r.random() < 0.5)}
    return _push(p, name, [i, j], params, out)


def _draw_lax_cum(p, r, name):
    fp = _fp()
    short = name == "lax_cumprod"           # products of up to 17 factors stay finite (as SURFACE's cumprod)
    i = fp._pick(p, r, _floats(p, lambda i: len(p.shapes[i]) >= 1 and (
        not short or any(p.size(d) <= 17 for d in p.shapes[i]))))
    if i is None:
        return False
    axis = _axis_of(r, p.shapes[i], lambda a: not short or p.size(p.shapes[i][a]) <= 17)
    return _push(p, name, [i], (axis, bool(r.random() < 0.5)), p.shapes[i])


def _draw_flip_roll(p, r, name):
    fp = _fp()
    i = fp._pick(p, r, _floats(p, lambda i: len(p.shapes[i]) >= 1))
    if i is None:
        return False
    rank = len(p.shapes[i])
    u = r.random()
    if u < 0.2:
        axis = None
    elif u < 0.4 and rank >= 2:
        axis = tuple(int(a) for a in sorted(r.choice(rank, 2, replace=False)))
    else:
        axis = _axis_of(r, p.shapes[i])
    if name == "flip":
        return _push(p, name, [i], axis, p.shapes[i])
    n = max(1, p.numel(p.shapes[i]) if axis is None else max(p.size(p.shapes[i][a]) for a in (
        axis if isinstance(axis, tuple) else (axis,))))
    shift = tuple(int(r.integers(-2 * n, 2 * n + 1)) for _ in axis) if isinstance(axis, tuple) \
        else int(r.integers(-2 * n, 2 * n + 1))
    return _push(p, name, [i], (shift, axis), p.shapes[i])


def _draw_pad(p, r, name):
    """Widths 0-3 on one or two axes; the index modes (edge, reflect, symmetric, wrap)
    only on non-empty axes (numpy refuses to extend an empty one)."""
    fp = _fp()
    i = fp._pick(p, r, _floats(p, lambda i: len(p.shapes[i]) >= 1))
    if i is None:
        return False
    s = p.shapes[i]
    mode = str(r.choice(PAD_MODES))
    axes = [a for a in range(len(s)) if mode == "constant" or p.size(s[a]) >= 1]
    if not axes:
        return False
    chosen = set(int(a) for a in r.choice(axes, min(len(axes), int(r.integers(1, 3))), replace=False))
    widths = tuple((int(r.integers(0, 4)), int(r.integers(0, 4))) if a in chosen else (0, 0) for a in range(len(s)))
    out = tuple(d if w == (0, 0) else _named(p, f"({d}+{w[0] + w[1]})", p.size(d) + w[0] + w[1])
                for d, w in zip(s, widths))
    value = float(r.choice([0.0, 0.5, -1.25])) if mode == "constant" else None
    return _push(p, name, [i], (widths, mode, value), out)


def _draw_dot_general(p, r, name):
    """lax.dot_general of two rank-3 values of one shape (or a value with itself), the
    right one at times permuted: one or two batch axes, one contracted axis."""
    fp = _fp()
    i = fp._pick(p, r, _floats(p, lambda i: len(p.shapes[i]) == 3))
    if i is None:
        return False
    j = _same_shape(p, r, i)
    s = p.shapes[i]
    perm = tuple(int(a) for a in r.permutation(3)) if r.random() < 0.5 else (0, 1, 2)
    where = {a: perm.index(a) for a in range(3)}          # axis a of j's value sits at where[a] of the permuted one
    nb = int(r.integers(1, 3))
    order = [int(a) for a in r.permutation(3)]
    batch, con = order[:nb], order[nb]
    free = [a for a in range(3) if a not in batch and a != con]
    dims = ((con,), (where[con],)), (tuple(batch), tuple(where[a] for a in batch))
    out = tuple(s[a] for a in batch) + tuple(s[a] for a in free) * 2
    if fp._einsum_work("abc", s, p) * max(1, p.numel(tuple(s[a] for a in free))) > fp.EINSUM_MAX_WORK:
        return False
    return _push(p, name, [i, j], (perm, dims), out)


_DRAW = {"concat": _draw_concat, "stack": _draw_stack, "split": _draw_split, "reshape": _draw_reshape,
         "broadcast_to": _draw_broadcast_to, "gather_pt": _draw_gather, "gather_col": _draw_gather,
         "lse_axes": _draw_lse_axes, "flip": _draw_flip_roll, "roll": _draw_flip_roll, "pad": _draw_pad,
         "dot_general": _draw_dot_general}
_DRAW.update({f"scatter_{m}": _draw_scatter for m in SCATTER_MODES})
_DRAW.update({n: _draw_linalg for n in LINALG})
_DRAW.update({n: _draw_lax_cum for n in ("lax_cumsum", "lax_cumprod", "lax_cummax", "lax_cummin",
                                         "lax_cumlogsumexp")})


# ----------------------------------------------------------------------------- numpy's missing pieces
_ERF = onp.frompyfunc(math.erf, 1, 1)


def _erfinv_np(v):
    """erfinv by Newton's iteration on math.erf (within ~1 ulp) from y = v: erf is
    increasing, concave on y > 0 and convex on y < 0, so after the first step the
    iterates approach the root monotonically from the origin's side; |v| <= 0.9 needs
    about 7 steps to float64, 12 are taken."""
    v = onp.asarray(v, onp.float64)
    y = v.copy()
    for _ in range(12):
        y = y - (onp.asarray(_ERF(y), onp.float64) - v) * (math.sqrt(math.pi) / 2) * onp.exp(y * y)
    return y


# ----------------------------------------------------------------------------- running
def run(s, pool, native, trace, unstable):
    """Step ``s`` in gradc's spelling (``native``) or plain numpy's; for the numpy run,
    the branch patterns of its non-smooth elements and whether rounding decides one."""
    name, ops, q = s[1], [pool[o] for o in s[2]], s[3]
    m = gnp if native else onp
    x = ops[0]
    pats, gaps = [], []
    if name == "concat":
        y = m.concatenate(ops, axis=q)
    elif name == "stack":
        y = m.stack(ops, axis=q)
    elif name == "split":
        axis, cuts = q
        p0, p1, p2 = m.split(x, list(cuts), axis=axis)
        y = m.concatenate([p2, p0 * 2.0, p1], axis=axis)
    elif name == "reshape":
        shape, minus, how = list(q[0]), q[1], q[2]
        if minus is not None:
            shape[minus] = -1
        y = x.reshape(tuple(shape)) if how == "method" else m.reshape(x, tuple(shape))
    elif name == "broadcast_to":
        y = m.broadcast_to(x, q)
    elif name in ("gather_pt", "gather_col"):
        n0, n1 = q
        y = x[_index(pool, n0), _index(pool, n1, reverse=True)] if name == "gather_pt" else x[:, _index(pool, n1)]
    elif name.startswith("scatter"):
        idx = onp.array(q, onp.int64) if isinstance(q, tuple) else _index(pool, q)
        y = _scatter(name[8:], x, ops[1], idx, native, trace, unstable, pats, isinstance(q, tuple))
    elif name == "pow":
        # base 0.5 + 1.5 sigmoid(a) in (0.5, 2), exponent 2 tanh(b) in (-2, 2): smooth,
        # and b ** e in (0.25, 4) whatever a and b are
        if q == "rpow":
            y = 1.7 ** (2.0 * m.tanh(x))
        else:
            base = 0.5 + 1.5 * (gradc.sigmoid(x) if native else 1.0 / (1.0 + onp.exp(-x)))
            e = 2.0 * m.tanh(ops[1])
            y = base ** e if q == "op" else m.power(base, e)
    elif name in ("fmod", "remainder"):
        # the divisor: a constant, or 1.25 + tanh(b) / 2 in (0.75, 1.75), away from 0; the
        # quotient's integer part is the branch (a jump at each multiple of the divisor)
        c = q if isinstance(q, float) else 1.25 + 0.5 * m.tanh(ops[1])
        if q == "op" and name == "remainder":
            y = x % c
        else:
            y = getattr(m, name)(x, c)
        if trace is not None:
            with onp.errstate(all="ignore"):
                ratio = onp.asarray(x, onp.float64) / onp.asarray(c, onp.float64)
            pats.append(onp.floor(ratio) if name == "remainder" else onp.trunc(ratio))
            gap = onp.asarray(x) - onp.asarray(c) * onp.round(ratio)
            gaps.append(gap)
            # a jump, not a kink: where rounding decides the branch the values differ by
            # the divisor (seed 3200303: ties cancel to 0 in numpy's sum order, -1e-17 in
            # gradc's, and remainder(-1e-17, 2) = 2)
            trace.jump |= bool(unstable) and trace.near(gap, x)
    elif name == "lse_axes":
        axes, keep = q
        y = gradc.logsumexp(x, axis=axes, keepdims=keep) if native else _lse_keep(x, axes, keep)
    elif name in LINALG:
        y = _linalg(name, m, x, ops[1], q, native)
    elif name in ("erfinv", "ndtri"):
        # erfinv on 0.9 tanh(x) in (-0.9, 0.9), ndtri on 0.05 + 0.9 sigmoid(x) in
        # (0.05, 0.95): derivatives below 4 (erfinv' = sqrt(pi)/2 exp(erfinv^2))
        if name == "erfinv":
            v = 0.9 * m.tanh(x)
            y = gss.erfinv(v) if native else _erfinv_np(v).astype(onp.result_type(v, onp.float32))
        else:
            v = 0.05 + 0.9 * (gradc.sigmoid(x) if native else 1.0 / (1.0 + onp.exp(-x)))
            y = gss.ndtri(v) if native else \
                (math.sqrt(2.0) * _erfinv_np(2.0 * onp.asarray(v, onp.float64) - 1.0)).astype(
                    onp.result_type(v, onp.float32))
    elif name.startswith("lax_cum"):
        y = _lax_cum(name[7:], x, q, native, trace, pats, gaps)
    elif name == "flip":
        y = m.flip(x, axis=q)
    elif name == "roll":
        y = m.roll(x, q[0], axis=q[1])
    elif name == "pad":
        widths, mode, value = q
        kw = {"constant_values": value} if mode == "constant" else {}
        y = m.pad(x, widths, mode=mode, **kw)
    elif name == "dot_general":
        perm, dims = q
        z = m.transpose(ops[1], perm)
        if native:
            y = glax.dot_general(x, z, dims)
        else:                           # einsum: batch axes first, then x's free axes, then z's
            (cx, cz), (bx, bz) = dims
            lx, lz = list("abc"), list("def")
            for a, b in zip(bx + cx, bz + cz):
                lz[b] = lx[a]
            out = [lx[a] for a in bx] + [lx[a] for a in range(3) if a not in bx + cx] + \
                  [lz[a] for a in range(3) if a not in bz + cz]
            y = onp.einsum(f"{''.join(lx)},{''.join(lz)}->{''.join(out)}", x, z)
    else:
        raise ValueError(name)
    if trace is not None:
        trace.patterns += pats
        if unstable:
            trace.fragile |= any(trace.near(g, x) for g in gaps)
    return y


def _index(pool, n, reverse=False):
    """``I % n`` (``n`` < 0: I itself, negative indices counting from the end), as
    SURFACE's take: int8 labels meet a size above 100 as int64."""
    fp = _fp()
    idx = pool[list(fp.ARGS).index("I")]
    if reverse:
        idx = idx[::-1]
    if n > 0:
        idx = (idx if n <= 100 else idx.astype("int64")) % n
    return idx


def _scatter(mode, x, v, idx, native, trace, unstable, pats, const):
    if mode == "mul":
        if trace is not None and onp.asarray(v).dtype == onp.float32:
            trace.rounds32 = True      # (a float32 tanh: not correctly rounded, even into a float64 x)
        v = 1.0 + 0.5 * (gnp if native else onp).tanh(v)
    if native:
        at = x.at[idx]
        return {"add": at.add, "set": at.set, "mul": at.multiply, "max": at.max, "min": at.min}[mode](v)
    x = onp.asarray(x)
    y = x.copy()
    vv = onp.broadcast_to(onp.asarray(v, y.dtype), idx.shape + x.shape[1:])
    if mode == "set" and not const:     # traced indices: a position's mean (gradc/ops/at.py)
        total, count = onp.zeros_like(y), onp.zeros(y.shape[:1], onp.int64)
        onp.add.at(total, idx, vv)
        onp.add.at(count, idx, 1)
        hit = (count > 0).reshape((-1,) + (1,) * (y.ndim - 1))
        y = onp.where(hit, total / onp.maximum(count, 1).reshape(hit.shape), y).astype(y.dtype)
    elif mode == "set":
        y[idx] = vv                     # repeated constant indices: the last one wins
    else:
        getattr(onp, {"add": "add", "mul": "multiply", "max": "maximum", "min": "minimum"}[mode]).at(y, idx, vv)
    if trace is not None and mode in ("max", "min"):
        # the branch: which of x and the updates is each target's extremum; ties within
        # rounding of it (two candidates) are decided by rounding
        win = vv == y[idx]
        pats += [x == y, win]
        if unstable and y.size:
            rel = 1e-5 if y.dtype == onp.float32 else 1e-9
            near = onp.abs(onp.asarray(x - y, onp.float64)) <= rel * trace.scale
            cnt = near.astype(onp.int64)
            onp.add.at(cnt, idx, onp.abs(onp.asarray(vv - y[idx], onp.float64)) <= rel * trace.scale)
            trace.fragile |= bool(onp.any(cnt > 1))
    return y


def _lse_keep(x, axes, keep):
    y = _fp()._lse(x, axes)
    return onp.expand_dims(y, tuple(a % x.ndim for a in axes)) if keep else y


def _matrices(m, x, z, scale):
    """M = tanh(x) tanh(z)^T / (n c) for x, z of shape (..., n, c): |tanh| <= 1, so
    ||M||_2 <= ||tanh x||_F ||tanh z||_F / (n c) <= 1, whatever x and z are (= 1 only
    where tanh rounds to +-1; the bounds of _linalg hold with <= as well)."""
    return (m.tanh(x) @ m.swapaxes(m.tanh(z), -1, -2)) * scale


def _linalg(name, m, x, z, q, native):
    """Well-conditioned matrices from M (||M||_2 <= 1, _matrices):

    * G = I + M/2: singular values in (0.5, 1.5) (condition < 3), eigenvalues with real
      part > 1/2 (det > 0; a row negated where ``flip``: det < 0, slogdet's sign -1);
    * S = I + M M^T / 2: symmetric, eigenvalues in [1, 1.5) (cholesky);
    * G's lower (upper) triangle: diagonal in (1 - 1/(2n), 1 + 1/(2n)), off-diagonal
      entries below 1/(2n) (|M_ij| < c / (n c)), so T = D (I + N) with ||N||_F < 0.6;
    * H = diag(0, 1, ..., n-1) + (M + M^T) / 8: by Weyl, eigenvalues within 1/4 of 0..n-1,
      separated by more than 1/2 (eigh's derivative divides by their differences);
      eigenvectors enter as V * V, which their signs (any) leave alone;
    * D = diag(1, ..., n) + M / 4: singular values within 1/4 of 1..n, separated;
    * qr of G enters as Q * Q + R * R, which the signs of Q's columns (R's rows) leave alone.
    """
    n = q["n"]
    dt = onp.result_type(x.dtype, z.dtype)
    eye = onp.eye(n, dtype=dt)
    M = _matrices(m, x, z, q["scale"])
    L = m.linalg
    if name in ("solve", "inv", "det", "slogdet", "qr", "solve_triangular"):
        G = eye + 0.5 * M
        if name in ("det", "slogdet") and q["flip"] and n:
            G = G * onp.where(onp.arange(n) == 0, -1.0, 1.0).astype(dt)[:, None]
        if name == "solve":
            return L.solve(G, x)
        if name == "inv":
            return L.inv(G)
        if name == "det":
            return L.det(G)
        if name == "slogdet":
            sign, logabs = L.slogdet(G)
            return logabs + 0.25 * sign
        if name == "qr":
            Q, R = L.qr(G)
            return Q * Q + R * R
        T = (m.tril if q["lower"] else m.triu)(G)
        return gsl.solve_triangular(T, x, lower=q["lower"]) if native else L.solve(T, x)
    if name == "cholesky":
        S = eye + 0.5 * (M @ m.swapaxes(M, -1, -2))
        return L.cholesky(S)
    if name == "eigh":
        H = onp.diag(onp.arange(n)).astype(dt) + 0.125 * (M + m.swapaxes(M, -1, -2))
        w, V = L.eigh(H)
        return V * V * w[..., None, :]
    D = onp.diag(onp.arange(1, n + 1)).astype(dt) + 0.25 * M
    return L.svd(D, compute_uv=False)


def _lax_cum(op, x, q, native, trace, pats, gaps):
    axis, reverse = q
    if native:
        return getattr(glax, "cum" + op)(x, axis=axis, reverse=reverse)
    xs = onp.asarray(x)
    f = (lambda a: onp.flip(a, axis)) if reverse else (lambda a: a)
    fx = f(xs)
    ufunc = {"sum": onp.add, "prod": onp.multiply, "max": onp.maximum, "min": onp.minimum,
             "logsumexp": onp.logaddexp}[op]
    run_ = ufunc.accumulate(fx, axis=axis) if xs.size else fx.copy()
    if trace is not None and op in ("max", "min") and xs.size:
        # the records are the branch (as SURFACE's cummax); a tie with the running extreme its kink
        pats.append(fx == run_)
        prev = onp.concatenate([onp.take(run_, [0], axis=axis), onp.delete(run_, -1, axis=axis)], axis=axis)
        first = onp.zeros(fx.shape, bool)
        head = [slice(None)] * fx.ndim
        head[axis] = 0
        first[tuple(head)] = True
        gaps.append(onp.where(first, 1.0, fx - prev))
    return f(run_)
