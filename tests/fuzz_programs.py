"""Random programs for the differential fuzzer (tests/test_fuzz.py), and their oracles.

A program is drawn from a seed (``generate(seed)``; the same seed gives the same program)
and is what users write: deep chains where each step prefers the newest value, pairwise
rank-3 intermediates (``a[:, None, :] - b[None, :, :]``), several reductions over
different axes of one value, sizes above the point where loop nests split over threads,
ties (repeated values, integer-valued floats, a value compared with itself), mixed
dtypes (float32 and integer arguments beside float64, integer reductions as outputs).
Every value left unused is folded into the output, so the whole program is live.

Each step has a gradc spelling and an independent plain-numpy spelling (``run``).  The
numpy run also records, for every non-smooth op, which branch each element took
(``patterns``): central finite differences along a direction are an oracle exactly when
no element changes branch between ``x - h t`` and ``x + h t`` (``fd_directional``).

Rank: values go up to rank 4 (``MAX_RANK``).  About a third of the programs (their own
random stream, so a seed's rank-2/3 program is the same as before rank 4 existed, and
``REGRESSIONS`` keep reproducing) continue with a rank-4 phase (``_draw_rank4``): the
rank-3 argument ``T`` mixed with the newest value by broadcasting, paired with itself
(``a[:, None] - b[None]``: rank 4), permuted, multiplied by a matrix (batched matmul),
and reduced over tuples of axes, all feeding the output.  Half of those then end with a
product of two stacks with the same batch axes (``_draw_stack_product``, a stream of its
own again): the right one's matrices transposed or not, as attention's ``q @ k^T``.
Half of all programs then apply one or two ops of ``SURFACE`` (``_draw_surface``, stream
39): scans, sort and median, gathers at ``I % n``, einsum, var/std, a softmax over a
middle axis, clip/where against the scalar argument.  Last, 55% of programs (stream 71)
take one or two ops of ``fuzz_families``: joins, reshapes, gathers and scatters, powers,
fmod, linear algebra on well-conditioned matrices, erfinv, lax's scans, pad, dot_general.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as onp

import gradc
import gradc.numpy as gnp
import gradc.nn as gnn

import fuzz_families as ff

MAX_RANK = 4
RANK4_SHARE = 0.35      # programs with a rank-4 phase
PICK_SHARE = 0.3        # programs ending with a pick (a softmax's picked class, take_along_axis)
STACK_SHARE = 0.5       # rank-4 programs with a product of two stacks after the pick
MATH_SHARE = 0.3        # programs with one of MATH applied after the stack phase
CAST_SHARE = 0.3        # programs whose float64 arguments are first cast to float32 (_draw_casts)
PIN_SHARE = 0.25        # programs compiled for their arguments' sizes (Program.pinned)
MAX_NUMEL = 600_000        # no value above this many elements (memory, numpy reference time)
SMALL_SIZES = [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17]
BACKENDS = ["llvm", "c", "numpy"]
BACKEND_WEIGHTS = [0.45, 0.3, 0.25]

# The arguments: name -> (shape in dimension names, kind).  Float arguments are
# differentiated; the integer argument never is.
ARGS = {"X": (("m", "d"), "f"), "Y": (("k", "d"), "f"), "u": (("m",), "f"), "w": (("k",), "f"),
        "s": ((), "f"), "I": (("k",), "i"), "T": (("d", "k", "d"), "f")}
RANK3_ARG = list(ARGS).index("T")    # drawn from only in the rank-4 phase
FLOAT_ARGS = [a for a, (_, kind) in ARGS.items() if kind == "f"]


# ----------------------------------------------------------------------------- the op table
def _sig(x):
    return 1.0 / (1.0 + onp.exp(-x))


def _lse(x, axis):
    """log(sum(exp(x))) shifted by the max, a non-finite max replaced by 0 (as
    scipy.special.logsumexp: logsumexp([-inf]) is -inf, not nan)."""
    m = onp.max(x, axis=axis, keepdims=True) if x.size else onp.zeros((1,) * x.ndim, x.dtype)
    m = onp.where(onp.isfinite(m), m, 0)
    with onp.errstate(all="ignore"):
        r = onp.log(onp.sum(onp.exp(x - m), axis=axis, keepdims=True)) + m
    return r.reshape(()) if axis is None else onp.squeeze(r, axis=axis)


def _sign(d):
    return onp.sign(d).astype(onp.int8)


# unary: name -> (gradc, numpy, kink pattern or None)
UNARY = {
    "neg": (lambda x: -x, lambda x: -x, None),
    "tanh": (gnp.tanh, onp.tanh, None),
    "sin": (gnp.sin, onp.sin, None),
    "cos": (gnp.cos, onp.cos, None),
    "square": (gnp.square, onp.square, None),
    "sigmoid": (gradc.sigmoid, _sig, None),
    "softplus": (gradc.softplus, lambda x: onp.logaddexp(0, x), None),
    "exp_tanh": (lambda x: gnp.exp(gnp.tanh(x)), lambda x: onp.exp(onp.tanh(x)), None),
    "log1p_sq": (lambda x: gnp.log1p(x * x), lambda x: onp.log1p(x * x), None),
    "sqrt_1p": (lambda x: gnp.sqrt(1.0 + x * x), lambda x: onp.sqrt(1.0 + x * x), None),
    "affine": (lambda x: x * 0.7 + 0.3, lambda x: x * 0.7 + 0.3, None),
    "rdiv": (lambda x: 1.0 / (1.5 + x * x), lambda x: 1.0 / (1.5 + x * x), None),
    # a value compared with itself: the tie rule makes both the identity
    "self_max": (lambda x: gnp.maximum(x, x), lambda x: onp.maximum(x, x), None),
    "self_min": (lambda x: gnp.minimum(x, x), lambda x: onp.minimum(x, x), None),
    "relu": (gradc.relu, lambda x: onp.maximum(x, 0), lambda x: [_sign(x)]),
    "abs": (gnp.abs, onp.abs, lambda x: [_sign(x)]),
    "clip": (lambda x: gnp.clip(x, -0.5, 0.8), lambda x: onp.clip(x, -0.5, 0.8),
             lambda x: [_sign(x + 0.5), _sign(x - 0.8)]),
}

_ERF = onp.frompyfunc(math.erf, 1, 1)


def _erf_np(x):
    return onp.asarray(_ERF(x), dtype=onp.result_type(x, onp.float32))


def _softmax_np(x):
    if onp.ndim(x) == 0:
        return onp.ones_like(x)
    m = onp.max(x, axis=-1, keepdims=True) if x.shape[-1] else x
    e = onp.exp(x - m)
    return e / onp.sum(e, axis=-1, keepdims=True)


# unary functions of a later phase (its own random stream): erf and what is built on it,
# jax.nn's smooth activations, a softmax over the last axis; drawn apart from UNARY so
# that the programs of older seeds stay as they were
MATH = {
    "erf": (gnp.erf, _erf_np, None),
    "gelu": (gnp.gelu, lambda x: x * 0.5 * (1.0 + _erf_np(x / math.sqrt(2.0))), None),
    "silu": (gnn.silu, lambda x: x * _sig(x), None),
    "log_sigmoid": (gnn.log_sigmoid, lambda x: -onp.logaddexp(0, -x), None),
    "softmax": (lambda x: gnp.softmax(x, axis=-1) if x.ndim else gnp.ones_like(x), _softmax_np, None),
    "hypot": (lambda x: gnp.hypot(x, 0.75), lambda x: onp.hypot(x, 0.75), None),
}

# binary, broadcasting: name -> (gradc, numpy, kink pattern or None)
BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b, None),
    "sub": (lambda a, b: a - b, lambda a, b: a - b, None),
    "mul": (lambda a, b: a * b, lambda a, b: a * b, None),
    "div": (lambda a, b: a / (1.5 + b * b), lambda a, b: a / (1.5 + b * b), None),
    "maximum": (gnp.maximum, onp.maximum, lambda a, b: [_sign(onp.subtract(a, b))]),
    "minimum": (gnp.minimum, onp.minimum, lambda a, b: [_sign(onp.subtract(a, b))]),
    # where(a > b, a, b) is continuous (both branches agree at a tie), so rounding that
    # decides a near-tie differently in two correct programs changes no value
    "where": (lambda a, b: gnp.where(a > b, a, b), lambda a, b: onp.where(a > b, a, b),
              lambda a, b: [_sign(onp.subtract(a, b))]),
}
PAIR_OPS = ["sub", "sub", "mul", "add", "maximum"]     # a[:, None, :] op b[None, :, :]

# reductions: name -> (gradc, numpy, has a kink (ties of the extremum), needs elements)
REDUCE = {
    "sum": (gnp.sum, onp.sum, False, False),
    "mean": (gnp.mean, onp.mean, False, False),
    "max": (gnp.max, onp.max, True, True),
    "min": (gnp.min, onp.min, True, True),
}
IREDUCE = {"max": (gnp.max, onp.max), "min": (gnp.min, onp.min), "sum": (gnp.sum, onp.sum)}
SLICES = {"tail": slice(1, None), "head": slice(None, -1), "step2": slice(None, None, 2)}

# ops of the surface phase (``_draw_surface``, its own random stream): scans (cumsum,
# cumprod, a running maximum), sorts and order statistics (sort, median, percentile, an
# ordering by another value's keys), gathers at integer arrays, einsum, variance, softmax
# over a middle axis, log_softmax over any, clip/where against a scalar argument.  name -> (rank at least, exact32: every
# correct float32 implementation rounds the same, summing: its result sums rounded terms)
SURFACE = {
    "cumsum": (1, False, True),
    "cumprod": (1, False, True),
    "sort": (1, True, False),
    "median": (1, False, False),
    "take": (1, True, False),
    "einsum": (2, False, True),
    "var": (1, False, True),
    "std": (1, False, True),
    "softmax_axis": (2, False, True),
    "clip_s": (0, True, False),
    "where_s": (0, True, False),
    "percentile": (1, False, True),
    "sort_by": (1, True, False),
    "cummax": (1, True, False),
    "log_softmax": (1, False, True),
}
# drawn from stream 39 (the first eleven) and stream 62 (added later: old seeds keep their programs)
SURFACE_39 = ["clip_s", "cumprod", "cumsum", "einsum", "median", "softmax_axis", "sort", "std", "take", "var",
              "where_s"]
SURFACE_62 = ["percentile", "sort_by", "cummax", "log_softmax"]   # a name added here redraws old seeds: check REGRESSIONS keep theirs
SURFACE_SHARE = 0.5     # programs with a surface phase (one or two of SURFACE_39)
SURFACE_62_SHARE = 0.35
FAMILY_SHARE = 0.55     # programs with a last phase of fuzz_families' ops (one or two)
# seeds of test_fuzz.REGRESSIONS and SCAN_REGRESSIONS found before that phase existed:
# they skip it, so that they reproduce the programs they were found with
PRE_FAMILY_SEEDS = frozenset({102647, 105290, 106056, 960131, 960162, 995167, 998200, 998286, 1400050,
                              1600078, 2000078, 3400098})
SORT_MAX_NUMEL = 4096   # sort/median: a permutation pattern of more elements keeps changing under h
EINSUM_SPECS = {2: ["ij,kj->ik", "ij,ik->jk", "ij,ij->i"],
                3: ["abc,abd->acd", "abc,adc->abd", "abc,abc->b", "abc,dbc->ad"],
                4: ["abcd,abed->abce", "abcd,abcd->bd"]}


def _softmax_axis_np(x, axis):
    if x.shape[axis] == 0:              # a softmax over nothing is nothing (numpy's max would raise)
        return x.copy()
    e = onp.exp(x - onp.max(x, axis=axis, keepdims=True))
    return e / onp.sum(e, axis=axis, keepdims=True)


def _log_softmax_np(x, axis):
    if x.shape[axis] == 0:
        return x.copy()
    z = x - onp.max(x, axis=axis, keepdims=True)
    return z - onp.log(onp.sum(onp.exp(z), axis=axis, keepdims=True))


EINSUM_MAX_WORK = 2_000_000


def _einsum_work(spec, shape, p):
    dims = {}
    for term in spec.split("->")[0].split(","):
        for c, d in zip(term, shape):
            dims.setdefault(c, p.size(d))
    return math.prod(dims.values())


def _einsum_shape(spec, shape):
    ins, out = spec.split("->")
    dims = {}
    for term in ins.split(","):
        for c, d in zip(term, shape):
            dims.setdefault(c, d)
    return tuple(dims[c] for c in out)


# ----------------------------------------------------------------------------- programs
@dataclass
class Program:
    seed: int
    sizes: dict                 # dimension name -> size
    dtypes: dict                # argument -> numpy dtype name
    inputs: str                 # "normal" or "ties"
    backend: str                # "llvm", "c" or "numpy"
    steps: list                 # (kind, ...) tuples; value i is argument i, then one per step
    shapes: list                # the shape (dimension names) of every value
    kinds: list                 # "f" or "i" for every value
    outputs: list               # value indices the forward program returns (the float first)
    stable: list = field(default_factory=list)  # per value: see _stability
    depth: int = 0              # the longest chain of drawn ops from an argument to an output
    n_drawn: int = 0            # steps drawn; the rest fold unused values into the output
    ops: dict = field(default_factory=dict)    # op name -> how many steps use it
    rank4: bool = False         # in the rank-4 phase: T, rank-3 pairs, batched matmul, permutes
    casts: dict = field(default_factory=dict)   # float64 argument -> "rt" or "f32" (see _draw_casts)
    pinned: bool = False        # gradc's spelling reads every argument's shape: compiled for fixed sizes

    @property
    def big(self):
        return max(self.numel(s) for s in self.shapes) >= BIG_NUMEL

    def size(self, dim):
        return dim if isinstance(dim, int) else self.sizes[dim]

    def numel(self, shape):
        return int(onp.prod([self.size(d) for d in shape], dtype=onp.int64))

    def concrete(self, shape):
        return tuple(self.size(d) for d in shape)

    def describe(self):
        return (f"seed={self.seed} backend={self.backend} sizes={self.sizes} dtypes={self.dtypes} "
                f"inputs={self.inputs} steps={self.steps}" + (f" casts={self.casts}" if self.casts else "")
                + (" pinned" if self.pinned else ""))


BIG_NUMEL = 1 << 17     # a value this large makes a nest split over threads (lower_loops.PAR_MIN_WORK)


def _broadcast(a, b):
    """Broadcast two shapes of dimension names (numpy's rule, names compared)."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            return None
    return tuple(reversed(out))


def _reduced(shape, axis, keep):
    if axis is None:
        return (1,) * len(shape) if keep else ()
    axes = {a % len(shape) for a in (axis if isinstance(axis, tuple) else (axis,))}
    return tuple(1 if i in axes else d for i, d in enumerate(shape) if keep or i not in axes)


def _draw_sizes(r):
    mode = r.choice(["small", "small", "small", "pair", "tall"], p=[0.25, 0.25, 0.2, 0.18, 0.12])
    if mode == "small":
        sizes = {k: int(r.choice(SMALL_SIZES)) for k in ("m", "k", "d")}
    elif mode == "pair":         # rank-3 pairwise values of 40k-600k elements
        sizes = {"m": int(r.integers(100, 260)), "k": int(r.integers(100, 260)), "d": int(r.integers(2, 9))}
    else:                        # tall rank-2 values of 130k-400k elements
        sizes = {"m": int(r.integers(65_000, 100_000)), "k": int(r.integers(1, 6)), "d": int(r.integers(2, 5))}
    return mode, sizes


def generate(seed: int) -> Program:
    r = onp.random.default_rng(seed)
    mode, sizes = _draw_sizes(r)
    inputs = "ties" if r.random() < 0.3 else "normal"
    dtypes = {a: "float64" for a in FLOAT_ARGS}
    for a in ("X", "Y"):
        # float32 only at small sizes: a float32 program and its reference may take
        # different branches where two values are within float32 rounding of each other,
        # and among a million elements some are
        if r.random() < 0.25 and max(sizes.values()) <= max(SMALL_SIZES):
            dtypes[a] = "float32"
    dtypes["I"] = str(r.choice(["int8", "uint64", "uint64_huge", "int32"]))
    # large programs go to llvm more often: it is the backend that splits nests over threads
    backend = str(r.choice(BACKENDS, p=BACKEND_WEIGHTS if mode == "small" else [0.6, 0.25, 0.15]))
    shapes = [ARGS[a][0] for a in ARGS]
    kinds = [ARGS[a][1] for a in ARGS]
    p = Program(seed, sizes, dtypes, inputs, backend, [], shapes, kinds, [])
    n_steps = int(r.integers(5, 17))
    attempts = 0
    while len(p.steps) < n_steps and attempts < 200:
        attempts += 1
        _draw_step(p, r, pair_first=mode == "pair" and attempts == 1 and r.random() < 0.7)
    r4 = onp.random.default_rng((seed, 4))
    if r4.random() < RANK4_SHARE:
        _draw_rank4(p, r4)
    r5 = onp.random.default_rng((seed, 5))     # (its own stream: the programs above stay as they were)
    if r5.random() < PICK_SHARE:
        _draw_pick(p, r5)
    r6 = onp.random.default_rng((seed, 6))     # (its own stream, as r5's)
    if p.rank4 and r6.random() < STACK_SHARE:
        _draw_stack_product(p, r6)
    r8 = onp.random.default_rng((seed, 8))     # (its own stream, as r5's)
    if r8.random() < MATH_SHARE:
        i = _pick(p, r8, lambda i: p.kinds[i] == "f")
        if i is not None:
            _push(p, ("unary", str(r8.choice(sorted(MATH))), i), p.shapes[i])
    # (its own stream, as r5's; stream 20 is one from which no seed of test_fuzz.REGRESSIONS
    # draws casts, so they reproduce the programs they were found with)
    _draw_casts(p, onp.random.default_rng((seed, 20)))
    # (its own stream, as r5's; stream 39 is one from which no seed of test_fuzz.REGRESSIONS
    # found before this phase existed draws it, so they reproduce the programs they were
    # found with)
    r39 = onp.random.default_rng((seed, 39))
    if r39.random() < SURFACE_SHARE:
        _draw_surface(p, r39, SURFACE_39)
    r62 = onp.random.default_rng((seed, 62))   # (as r39's: no seed of REGRESSIONS draws it)
    if r62.random() < SURFACE_62_SHARE:
        _push_surface(p, r62, str(r62.choice(SURFACE_62)))
    r71 = onp.random.default_rng((seed, 71))   # (as r39's; PRE_FAMILY_SEEDS skip it)
    if r71.random() < FAMILY_SHARE and seed not in PRE_FAMILY_SEEDS:
        for _ in range(1 + int(r71.random() < 0.4)):
            ff.draw(p, r71)
    p.n_drawn = len(p.steps)
    _fold_unused(p)
    p.depth, p.ops = _analyse(p)
    p.stable = _stability(p)
    return p


def _draw_casts(p, r):
    """Some float64 arguments used as users cast data: ``x.astype(float32)`` ("f32",
    float32 from there on: at small sizes only, as float32 arguments) or the round trip
    ``x.astype(float32).astype(float64)`` ("rt", at any size).  The casts round the same
    in every correct implementation (gradc's backends, numpy), so the forward output is
    checked against numpy's tightly where no float32 arithmetic rounds differently
    (``Trace.rounds32``): a dropped float32 rounding (GCC's SLP vectorizer did that to
    ``(double)(float)x``) shows.  The float64 twin (``upcast``) skips them."""
    u_cast, u_pin = r.random(), r.random()
    # a model that reads x.shape is compiled for those sizes: loops of known trip counts,
    # which compilers unroll and vectorize as straight-line code (GCC's SLP bug needed it)
    p.pinned = bool(u_pin < PIN_SHARE)
    if u_cast >= CAST_SHARE:
        return
    cands = [a for a in ("X", "Y", "u", "w", "T", "s") if p.dtypes[a] == "float64"]
    small = max(p.sizes.values()) <= max(SMALL_SIZES)
    for a in r.choice(cands, size=min(len(cands), int(r.integers(1, 3))), replace=False):
        p.casts[str(a)] = "f32" if small and r.random() < 0.5 else "rt"
    # what users do with cast data: centre it (x - mean(x, axis=-1, keepdims=True)) and
    # often take its Gram matrix (np.cov's c @ c.T), where GCC's bug was found
    mats = [list(ARGS).index(a) for a in p.casts if len(ARGS[a][0]) == 2]
    if mats and r.random() < 0.6:
        i = mats[0]
        mean = len(p.shapes)
        if _push(p, ("reduce", "mean", i, -1, True), _reduced(p.shapes[i], -1, True)) and \
                _push(p, ("binary", "sub", i, mean), p.shapes[i]) and r.random() < 0.6:
            c = len(p.shapes) - 1
            if p.numel(p.shapes[i][:1] * 2) <= MAX_NUMEL:
                _push(p, ("transpose", c), p.shapes[c][::-1])
                _push(p, ("matmul", c, len(p.shapes) - 1), p.shapes[c][:1] * 2)


def _surface_axes(p, name, shape):
    """The axes ``name`` may take on a value of ``shape`` (positive and negative spellings)."""
    rank = len(shape)
    if name == "softmax_axis":              # a middle (not the last) axis
        ok = range(rank - 1)
    elif name == "cumprod":                 # short axes: products of up to 17 factors stay finite
        ok = [a for a in range(rank) if p.size(shape[a]) <= 17]
    elif name in ("median", "take", "var", "percentile"):
        ok = [a for a in range(rank) if p.size(shape[a]) >= 1]
    elif name == "std":                     # one element: a kink (sqrt at 0) everywhere
        ok = [a for a in range(rank) if p.size(shape[a]) >= 2]
    else:
        ok = range(rank)
    return [a for a in ok] + [a - rank for a in ok]


def _draw_surface(p, r, names):
    """One or two ops of ``names`` (of SURFACE) on float values (the newest that qualifies
    70% of the time): what users write beyond element-wise ops and plain reductions."""
    for _ in range(int(r.integers(1, 3))):
        _push_surface(p, r, str(r.choice(names)))


def _push_surface(p, r, name):
    """Step ``("surface", name, i, axis or einsum spec, n)``: ``n`` the gathered axis's
    size for ``take`` (the indices are ``I % n``)."""
    def ok(i):
        shape = p.shapes[i]
        if p.kinds[i] != "f" or len(shape) < SURFACE[name][0] or (i == RANK3_ARG and not p.rank4):
            return False
        if name in ("sort", "median", "percentile", "sort_by") and p.numel(shape) > SORT_MAX_NUMEL:
            return False
        if name == "einsum":
            return len(shape) in EINSUM_SPECS
        return name in ("clip_s", "where_s") or bool(_surface_axes(p, name, shape))
    i = _pick(p, r, ok)
    if i is None:
        return False
    shape, n = p.shapes[i], None
    axes = _surface_axes(p, name, shape)
    axis = axes[int(r.integers(len(axes)))] if axes and name not in ("clip_s", "where_s", "einsum") else None
    if name == "einsum":
        # numpy's einsum (no optimize) runs the spec's whole index space, for every loss
        # the finite differences evaluate: specs of more than EINSUM_MAX_WORK products are left out
        specs = [sp for sp in EINSUM_SPECS[len(shape)] if _einsum_work(sp, shape, p) <= EINSUM_MAX_WORK]
        if not specs:
            return False
        axis = str(r.choice(specs))
        same = [q for q in range(len(p.shapes)) if p.kinds[q] == "f" and p.shapes[q] == shape and q != i
                and (q != RANK3_ARG or p.rank4)]
        n = i if not same or r.random() < 0.4 else same[int(r.integers(len(same)))]
        out = _einsum_shape(axis, shape)
    elif name in ("median", "var", "std", "percentile"):
        out = _reduced(shape, axis, False)
    elif name == "sort_by":                 # by the keys of a value of its shape, or its own descending
        same = [q for q in range(len(p.shapes)) if p.kinds[q] == "f" and p.shapes[q] == shape and q != i
                and (q != RANK3_ARG or p.rank4)]
        n = i if not same or r.random() < 0.3 else same[int(r.integers(len(same)))]
        out = shape
    elif name == "take":
        a = axis % len(shape)
        n = p.size(shape[a])
        if p.dtypes["I"] in ("int8", "int32") and n >= 7 and r.random() < 0.4:
            n = -n                          # I's own values (-6..6): negative indices count from the end
        out = shape[:a] + ("k",) + shape[a + 1:]
    else:
        out = shape
    return _push(p, ("surface", name, i, axis, n), out)


def _surface(s, pool, native, trace, unstable):
    """A step of SURFACE: gradc's spelling (``native``) or plain numpy's, and for the
    numpy run the branch patterns of its non-smooth elements (finite differences apply
    where none changes) and whether rounding decides one (``Trace.fragile``)."""
    name, x, axis, n = s[1], pool[s[2]], s[3], s[4]
    m = gnp if native else onp
    pats, gaps = [], []
    if name in ("cumsum", "cumprod"):
        y = getattr(m, name)(x, axis=axis)
    elif name in ("sort", "median", "percentile", "sort_by"):
        # sort_by: x ordered by the keys of another value (its own, negated: descending)
        key = (-x if n == s[2] else pool[n]) if name == "sort_by" else x
        if name == "sort":
            y = m.sort(x, axis=axis)
        elif name == "sort_by":
            # stable, as gradc's argsort of every kind (numpy's default kind orders ties
            # as its SIMD sort falls: seed 998286)
            y = m.take_along_axis(x, m.argsort(key, axis=axis, kind="stable"), axis=axis)
        else:
            y = m.median(x, axis=axis) if name == "median" else m.percentile(x, 30.0, axis=axis)
        if trace is not None:            # the permutation is the branch; ties are its kinks
            ks = onp.asarray(key)
            pats.append(onp.argsort(ks, axis=axis, kind="stable"))
            gaps.append(onp.diff(onp.sort(ks, axis=axis), axis=axis))
    elif name == "take":
        idx = pool[list(ARGS).index("I")]
        # users' labels % n; int8 labels meet a size above 127 as int64 (NEP 50 refuses the mix)
        if n > 0:
            idx = (idx if n <= 100 else idx.astype("int64")) % n
        y = x[idx] if native and axis % x.ndim == 0 else m.take(x, idx, axis=axis)
    elif name == "einsum":
        y = m.einsum(axis, x, pool[n])
    elif name == "cummax":               # running maximum (the tie rule of running extremes)
        y = m.maximum.accumulate(x, axis=axis)
        if trace is not None:            # the records are the branch; a tie with the running max its kink
            xs = onp.asarray(x)
            run = onp.maximum.accumulate(xs, axis=axis)
            pats.append(xs == run)
            prev = onp.concatenate([onp.full_like(onp.take(run, [0], axis=axis), -onp.inf),
                                    onp.delete(run, -1, axis=axis)], axis=axis) if xs.size else run
            gaps.append(onp.where(onp.isfinite(prev), xs - prev, 1.0))
    elif name in ("var", "std"):
        y = getattr(m, name)(x, axis=axis)
        if trace is not None and name == "std":      # sqrt at a variance of 0
            v = onp.var(onp.asarray(x), axis=axis)
            pats.append(_sign(v))
            gaps.append(v)
            # a variance of exactly 0 is a cone point (std(c + e v) = |e| std(v)): no
            # derivative, even along directions that keep it 0 (seed 995167: values
            # clipped to one bound); gradc's gradient there is nan, as JAX's
            trace.cone |= bool(onp.any(v == 0))
            # the mean of equal values rounds by summation order, so a variance of 0 may
            # come out as a few ulps squared (16 equal values: numpy's pairwise sum exact,
            # C's sequential one 5e-32): at a cone point rounding decides between nan and
            # finite values, whether the operands are stable or not (seed 998200)
            trace.fragile |= trace.near(v, x)
            # std of two values is |a - b| / 2: its cone point v = 0 is a whole hyperplane,
            # which a difference quotient's step crosses (seed 2000078: a - b = -3.5e-6
            # against a step of 2.2e-5 among 53,130 pairs); where the two swap order is a kink
            if onp.ndim(x) and onp.shape(x)[axis] == 2:
                pats.append(_sign(onp.diff(onp.asarray(x), axis=axis)))
    elif name == "softmax_axis":
        y = gnp.softmax(x, axis=axis) if native else _softmax_axis_np(x, axis)
    elif name == "log_softmax":          # a cross-entropy's log-probabilities, over any axis
        y = gnp.log_softmax(x, axis=axis) if native else _log_softmax_np(x, axis)
    else:
        sc = pool[list(ARGS).index("s")]
        if name == "clip_s":
            y = m.clip(x, sc - 0.5, sc + 0.5)
            kinks = [onp.subtract(x, sc - 0.5), onp.subtract(x, sc + 0.5)] if trace is not None else []
        else:
            y = m.where(x > sc, x, sc)
            kinks = [onp.subtract(x, sc)] if trace is not None else []
        pats += [_sign(d) for d in kinks]
        gaps += kinks
    if trace is not None:
        trace.patterns += pats
        if unstable:
            trace.fragile |= any(trace.near(g, x) for g in gaps)
    return y


def _cast_arg(x, mode, native, upcast):
    if upcast:
        return x
    if not native:
        x = onp.asarray(x)
    y = x.astype(onp.float32)
    return y.astype(onp.float64) if mode == "rt" else y


MLP_ACTS = ["tanh", "sigmoid", "softplus", "relu", "square", "affine"]


def generate_mlp(seed: int) -> Program:
    """A program shaped like a training step of a small MLP, at batch sizes the batch
    split takes (gradc/backends/batch_split.py): X (a batch of m rows of d inputs)
    through a dense layer of k units (``X @ Y.T + w``, an activation), then a second
    layer back to d outputs or a layer to one output per row, a residual against X or
    u, optionally a batch-free L2 term on Y and a mean over the batch beside it.  Every
    node is a row of the batch, a sum over it, or free of it, so the hot code splits the
    batch over threads; the random programs of ``generate`` rarely do (their pairs,
    slices and reductions over rows keep graphs whole).  Seeded apart from ``generate``
    (its own stream), on llvm."""
    r = onp.random.default_rng((seed, 6))
    k, d = int(r.integers(2, 12)), int(r.integers(2, 10))
    m = int(r.integers(BIG_NUMEL // max(k, d) + 1, MAX_NUMEL // max(k, d)))   # threaded sizes
    inputs = "ties" if r.random() < 0.2 else "normal"
    dtypes = {a: "float64" for a in FLOAT_ARGS}
    dtypes["I"] = "int32"
    p = Program(seed, {"m": m, "k": k, "d": d}, dtypes, inputs, "llvm", [],
                [ARGS[a][0] for a in ARGS], [ARGS[a][1] for a in ARGS], [])
    X, Y, u, w, sc, T = (list(ARGS).index(a) for a in ("X", "Y", "u", "w", "s", "T"))
    act = lambda i: _push(p, ("unary", str(r.choice(MLP_ACTS)), i), p.shapes[i])   # noqa: E731

    def last():
        return len(p.shapes) - 1
    # every float argument is read (an unread one's gradient is a constant zero, an
    # output no part computes: such graphs stay whole): the weights Y + mean(T, axis=0)
    _push(p, ("reduce", "mean", T, 0, False), ("k", "d"))
    _push(p, ("binary", "add", Y, last()), ("k", "d"))
    Y = last()
    _push(p, ("transpose", Y), ("d", "k"))
    _push(p, ("matmul", X, last()), ("m", "k"))
    _push(p, ("binary", "add", last(), w), ("m", "k"))            # the layer's bias
    act(last())
    hidden = last()
    if r.random() < 0.5:                                           # back to d outputs
        _push(p, ("matmul", hidden, Y), ("m", "d"))
        act(last())
        _push(p, ("binary", "sub", last(), X), ("m", "d"))
    else:                                                          # one output per row
        _push(p, ("matmul", hidden, w), ("m",))
        _push(p, ("binary", "sub", last(), u), ("m",))
    _push(p, ("binary", "mul", last(), sc), p.shapes[last()])     # a learned scale
    out = last()
    if r.random() < 0.4:                                           # an L2 term on the weights
        _push(p, ("unary", "square", Y), ("k", "d"))
        _push(p, ("reduce", "mean", last(), None, False), ())
        _push(p, ("binary", "add", out, last()), p.shapes[out])
    if r.random() < 0.2:                                           # a mean over the batch beside it (whole)
        keep = bool(r.random() < 0.5)
        _push(p, ("reduce", str(r.choice(["sum", "mean"])), hidden, 0, keep), _reduced(p.shapes[hidden], 0, keep))
    p.n_drawn = len(p.steps)
    _fold_unused(p)
    p.depth, p.ops = _analyse(p)
    p.stable = _stability(p)
    return p


# ops that round nothing on integer-valued (or half-integer) operands of moderate size
_EXACT_ARITH = {"add", "sub", "mul", "square", "neg", "maximum", "minimum", "where", "relu", "abs",
                "clip", "self_max", "self_min"}


def _stability(p, computed=()):
    """Per value: do all correct implementations agree on which of its elements are equal?
    ``computed``: arguments that are themselves results of rounded arithmetic (a scan's
    carries after the first step, fuzz_scan.py), neither stable nor exact.

    Moves, broadcasts, max/min and IEEE's correctly rounded + - * / give the same bits in
    every implementation (``_EXACT32``), so they keep their operands' ties and make no
    new ones; a transcendental (tanh, exp, erf, ...) may round a value onto a tie in one
    implementation only; a sum, mean, matmul or logsumexp of values
    that were rounded may round two exactly equal quantities (a row sum and a column sum
    of a symmetric matrix) differently, so ties among them, and the branch a maximum or
    a max reduction takes at them, are decided by rounding.  ``exact`` tracks values
    computed without rounding (integer-valued inputs through exact arithmetic)."""
    exact = [(p.inputs == "ties" or kind == "i") and a not in computed for a, kind in zip(ARGS, p.kinds)]
    stable = [a not in computed for a in ARGS]
    for s in p.steps:
        ops = _operands(s)
        all_exact = all(exact[o] for o in ops)
        all_stable = all(stable[o] for o in ops)
        k = s[0]
        if k == "fam":                  # fuzz_families.FAMILIES: moves, sums, or rounding
            how = ff.FAMILIES[s[1]][0]
            stable.append(all_stable if how == "move" else all_exact and how == "sum")
            exact.append(all_exact and how != "round")
        elif k == "surface":
            # sums of rounded terms (a variance's mean, a softmax's exp) may round equal
            # quantities differently; exact terms (integer-valued) sum exactly
            summing = SURFACE[s[1]][2]
            stable.append(all_stable if not summing else all_exact and s[1] in ("cumsum", "cumprod", "einsum"))
            exact.append(all_exact and s[1] not in ("var", "std", "softmax_axis", "percentile", "log_softmax"))
        elif k in ("reduce", "matmul", "lse"):
            summing = k != "reduce" or s[1] in ("sum", "mean")
            stable.append(all_stable if not summing else (all_exact and k != "lse"))
            exact.append(all_exact and (k == "matmul" or k == "reduce" and s[1] != "mean"))
        else:
            name = s[1] if k in ("unary", "binary", "pair", "imix") else k
            # a transcendental rounds differently in different correct implementations, and
            # so maps distinct values, or a value beside another, onto a tie in one of them
            # and not in another (seed 1600078: tanh(-19) is -1.0 in numpy, the correctly
            # rounded -1 + 2^-53 in gradc's llvm and c, against s = -1.0)
            stable.append(all_stable and (name in _EXACT32 or k in ("slice", "transpose", "permute", "col",
                                                                     "icast", "imix", "pick")))
            exact.append(all_exact and (name in _EXACT_ARITH or k in ("slice", "transpose", "permute", "col", "icast",
                                                                           "ireduce", "pick")))
    return stable


def _pick(p, r, ok):
    """An operand: the newest value that qualifies 70% of the time, else any."""
    cands = [i for i in range(len(p.shapes)) if ok(i)]
    if not cands:
        return None
    if r.random() < 0.7:
        return cands[-1]
    return int(r.choice(cands))


def _push(p, step, shape, kind="f"):
    if p.numel(shape) > MAX_NUMEL or len(shape) > MAX_RANK:
        return False
    p.steps.append(step)
    p.shapes.append(shape)
    p.kinds.append(kind)
    return True


def _draw_step(p, r, pair_first=False):
    kind = "pair" if pair_first else str(r.choice(["unary", "unary", "binary", "binary", "pair", "reduce", "reduce2", "lse",
                         "matmul", "transpose", "slice", "col", "int"],
                        p=[0.14, 0.1, 0.14, 0.1, 0.1, 0.1, 0.07, 0.04, 0.05, 0.03, 0.04, 0.03, 0.06]))
    isf = lambda i: p.kinds[i] == "f" and (p.rank4 or i != RANK3_ARG)     # noqa: E731
    pair_ranks = (1, 2, 3) if p.rank4 else (1, 2)
    if kind == "unary":
        i = _pick(p, r, isf)
        _push(p, ("unary", str(r.choice(sorted(UNARY))), i), p.shapes[i])
    elif kind == "binary":
        i = _pick(p, r, isf)
        j = _pick(p, r, lambda j: isf(j) and _broadcast(p.shapes[i], p.shapes[j]) is not None)
        if r.random() < 0.15:
            j = i                       # an operand with itself: maximum(s, s), s - s, ...
        shape = _broadcast(p.shapes[i], p.shapes[j])
        if r.random() < 0.5:
            i, j = j, i
        _push(p, ("binary", str(r.choice(sorted(BINARY))), i, j), shape)
    elif kind == "pair" and pair_first:     # X or Y against X or Y: rank 3
        i, j = int(r.integers(0, 2)), int(r.integers(0, 2))
        _push(p, ("pair", str(r.choice(PAIR_OPS)), i, j), p.shapes[i][:1] + p.shapes[j])
    elif kind == "pair":
        i = _pick(p, r, lambda i: isf(i) and len(p.shapes[i]) in pair_ranks)
        j = _pick(p, r, lambda j: isf(j) and len(p.shapes[j]) == len(p.shapes[i])
                  and p.shapes[j][1:] == p.shapes[i][1:])
        if j is None or r.random() < 0.2:
            j = i                       # the pairwise-distance pattern: x against itself
        _push(p, ("pair", str(r.choice(PAIR_OPS)), i, j), p.shapes[i][:1] + p.shapes[j])
    elif kind in ("reduce", "reduce2", "lse"):
        i = _pick(p, r, lambda i: isf(i) and (kind != "reduce2" or len(p.shapes[i]) >= 2))
        if i is None:
            return
        rank = len(p.shapes[i])
        axes = [None] + list(range(-rank, rank))
        if rank >= 3:
            axes += [(0, 1), (1, 2), (0, 2)] + ([(1, 3), (0, 2, 3), (-1, -2)] if rank == 4 else [])
        if kind == "lse":
            axis = axes[int(r.integers(0, 1 + rank))] if rank else None
            _push(p, ("lse", i, axis), _reduced(p.shapes[i], axis, False))
            return
        picks = [axes[int(r.integers(len(axes)))] for _ in range(1 if kind == "reduce" else 2)]
        if kind == "reduce2":           # two reductions over different axes of one value
            picks = [0, int(r.integers(1, rank))] if r.random() < 0.7 else picks
        for axis in picks:
            keep = bool(r.random() < 0.3)
            _push(p, ("reduce", str(r.choice(sorted(REDUCE))), i, axis, keep),
                  _reduced(p.shapes[i], axis, keep))
    elif kind == "matmul":
        left = (1, 2, 3, 4) if p.rank4 else (1, 2)       # rank 3 and 4 @ matrix: batched
        pairs = [(i, j) for i in range(len(p.shapes)) for j in range(len(p.shapes))
                 if isf(i) and isf(j) and len(p.shapes[i]) in left and 1 <= len(p.shapes[j]) <= 2
                 and p.shapes[i][-1] == p.shapes[j][0] and p.shapes[i][-1] != 1]
        if pairs:
            newest = [pq for pq in pairs if max(pq) == max(max(x) for x in pairs)]
            i, j = newest[int(r.integers(len(newest)))] if r.random() < 0.6 else pairs[int(r.integers(len(pairs)))]
            _push(p, ("matmul", i, j), p.shapes[i][:-1] + p.shapes[j][1:])
    elif kind == "transpose":
        i = _pick(p, r, lambda i: isf(i) and (len(p.shapes[i]) == 2 or p.rank4 and len(p.shapes[i]) >= 3))
        if i is not None and len(p.shapes[i]) == 2:
            _push(p, ("transpose", i), p.shapes[i][::-1])
        elif i is not None:
            _push_permute(p, r, i)
    elif kind == "col":
        i = _pick(p, r, lambda i: isf(i) and len(p.shapes[i]) == 1)
        if i is not None:
            _push(p, ("col", i), p.shapes[i] + (1,))
    elif kind == "slice":
        i = _pick(p, r, lambda i: isf(i) and len(p.shapes[i]) >= 1 and p.shapes[i][0] != 1)
        if i is not None:
            how = str(r.choice(sorted(SLICES)))
            dim = p.shapes[i][0]
            name = f"{dim}[{how}]"
            p.sizes.setdefault(name, len(range(p.size(dim))[SLICES[how]]))
            _push(p, ("slice", how, i), (name,) + p.shapes[i][1:])
    else:
        _draw_int_step(p, r)


def _draw_pick(p, r):
    """x picked along an axis at the argmax of a value of its shape (often x itself):
    ``take_along_axis(x, expand_dims(argmax(ref, axis), axis), axis)``, the picked class
    of a cross-entropy, whose adjoint is a select, not a scatter (passes.one_hot_scatter);
    then mixed into a float value."""
    ok = lambda i: (p.kinds[i] == "f" and len(p.shapes[i]) >= 1           # noqa: E731
                    and all(d == 1 or p.size(d) > 0 for d in p.shapes[i]))
    i = _pick(p, r, ok)
    if i is None:
        return
    j = _pick(p, r, lambda j: ok(j) and p.shapes[j] == p.shapes[i])
    axis = int(r.integers(len(p.shapes[i])))
    shape = p.shapes[i][:axis] + (1,) + p.shapes[i][axis + 1:]
    _push(p, ("pick", i, i if j is None or r.random() < 0.4 else j, axis), shape)
    k = _pick(p, r, lambda k: p.kinds[k] == "f" and k != len(p.shapes) - 1
              and _broadcast(p.shapes[k], shape) is not None)
    if k is not None:
        _push(p, ("binary", str(r.choice(["add", "mul", "sub"])), len(p.shapes) - 1, k),
              _broadcast(p.shapes[k], shape))


def _push_permute(p, r, i):
    perm = tuple(int(a) for a in r.permutation(len(p.shapes[i])))
    return _push(p, ("permute", i, perm), tuple(p.shapes[i][a] for a in perm))


def _draw_stack_product(p, r):
    """A product of two stacks with the same batch axes (attention's q @ k^T: the right
    one's matrices transposed or not; a value with itself, a Gram matrix per item)."""
    isf = lambda i: p.kinds[i] == "f"       # noqa: E731
    stacks = [(i, j, swap) for i in range(len(p.shapes)) for j in range(len(p.shapes)) for swap in (False, True)
              if isf(i) and isf(j) and len(p.shapes[i]) == len(p.shapes[j]) >= 3
              and p.shapes[i][:-2] == p.shapes[j][:-2] and p.shapes[i][-1] != 1
              and p.shapes[i][-1] == p.shapes[j][-1 if swap else -2]]
    if stacks:
        newest = [s for s in stacks if max(s[:2]) == max(max(x[:2]) for x in stacks)]
        pool = newest if r.random() < 0.6 else stacks
        i, j, swap = pool[int(r.integers(len(pool)))]
        _push(p, ("matmul", i, j, swap), p.shapes[i][:-1] + (p.shapes[j][-2 if swap else -1],))


def _draw_rank4(p, r):
    """The rank-4 phase: T (d, k, d) mixed with the newest value it broadcasts with,
    paired into rank 4, then a few ordinary steps (which now may take T, rank-3 pairs,
    batched products and permutations), so rank-4 values reach reductions and the output."""
    p.rank4 = True
    iT = RANK3_ARG
    j = _pick(p, r, lambda j: p.kinds[j] == "f" and j != iT and len(p.shapes[j]) >= 1
              and _broadcast(p.shapes[iT], p.shapes[j]) is not None)
    a = iT
    if j is not None and _push(p, ("binary", str(r.choice(sorted(BINARY))), iT, j),
                               _broadcast(p.shapes[iT], p.shapes[j])):
        a = len(p.shapes) - 1
    b = a if r.random() < 0.5 else iT
    if _push(p, ("pair", str(r.choice(PAIR_OPS)), a, b), p.shapes[a][:1] + p.shapes[b]):
        if r.random() < 0.4:
            _push_permute(p, r, len(p.shapes) - 1)
    for _ in range(int(r.integers(2, 6))):
        _draw_step(p, r)


def _draw_int_step(p, r):
    """The integer argument I (never differentiated): cast to float, mixed into a float
    op, or reduced (an integer output, often in the same nest as float reductions)."""
    huge = p.dtypes["I"] == "uint64_huge"        # values near 2**64: reductions only
    what = "ireduce" if huge else str(r.choice(["icast", "imix", "ireduce"]))
    iI = list(ARGS).index("I")
    if what == "icast":
        _push(p, ("icast", iI, str(r.choice(["float64", "float32"]))), p.shapes[iI])
    elif what == "imix":
        j = _pick(p, r, lambda j: p.kinds[j] == "f" and _broadcast(p.shapes[j], p.shapes[iI]) is not None)
        if j is not None:
            _push(p, ("imix", str(r.choice(["add", "sub", "mul"])), j, iI),
                  _broadcast(p.shapes[j], p.shapes[iI]))
    else:
        if _push(p, ("ireduce", str(r.choice(sorted(IREDUCE))), iI), (), "i"):
            p.outputs.append(len(p.shapes) - 1)


def _fold_unused(p):
    """Make the output depend on every float value: each value no step reads is reduced
    (mean) and added to the newest float value."""
    used = {o for s in p.steps for o in _operands(s)}
    floats = [i for i in range(len(ARGS), len(p.shapes)) if p.kinds[i] == "f"]
    if not floats:
        _push(p, ("unary", "tanh", 0), p.shapes[0])
        floats = [len(p.shapes) - 1]
    last = floats[-1]
    for i in floats[:-1]:
        if i not in used:
            p.steps.append(("reduce", "mean", i, None, False))
            p.shapes.append(())
            p.kinds.append("f")
            p.steps.append(("binary", "add", last, len(p.shapes) - 1))
            p.shapes.append(p.shapes[last])
            p.kinds.append("f")
            last = len(p.shapes) - 1
    p.outputs.insert(0, last)


def _operands(s):
    k = s[0]
    if k in ("unary", "reduce", "slice", "ireduce"):
        return [s[2]]
    if k in ("binary", "pair", "imix"):
        return [s[2], s[3]]
    if k in ("matmul", "pick"):
        return [s[1], s[2]]
    if k == "fam":
        return list(s[2])
    if k == "surface":
        extra = {"take": "I", "clip_s": "s", "where_s": "s"}.get(s[1])
        return [s[2]] + ([list(ARGS).index(extra)] if extra else [s[4]] if s[1] in ("einsum", "sort_by") else [])
    return [s[1]]                      # transpose, permute, col, lse, icast


def live_steps(p):
    need, live = set(p.outputs), set()
    for t in range(len(p.steps) - 1, -1, -1):
        if len(ARGS) + t in need:
            live.add(t)
            need.update(_operands(p.steps[t]))
    return live


def _analyse(p):
    """(live depth, live op counts)."""
    live = live_steps(p)
    depth = [0] * len(ARGS)
    ops = {}
    for t, s in enumerate(p.steps):
        d = (t < p.n_drawn) + max(depth[o] for o in _operands(s)) if t in live else 0
        depth.append(d)
        if t in live:
            name = s[0] if s[0] in ("pair", "matmul", "transpose", "permute", "col", "lse", "icast", "imix", "pick") \
                else f"{s[0]}:{s[1]}"
            if s[0] in ("pair", "surface"):
                name = f"{s[0]}:{s[1]}"
            ops[name] = ops.get(name, 0) + 1
    return max(depth[o] for o in p.outputs), ops


# ----------------------------------------------------------------------------- inputs
def make_inputs(p: Program, seed_offset=0):
    r = onp.random.default_rng((p.seed, 7 + seed_offset))
    out = []
    for a, (shape, kind) in ARGS.items():
        shp = p.concrete(shape)
        if kind == "i":
            dt = p.dtypes["I"]
            if dt == "uint64_huge":
                v = onp.array(r.integers(0, 2 ** 63, shp, dtype=onp.uint64)) + onp.uint64(2 ** 63 - 7)
                v[: v.size // 3] = r.integers(0, 9, v.size // 3)    # small beside huge
            else:
                lo = 0 if dt.startswith("u") else -6
                v = r.integers(lo, 7, shp).astype(dt)
            out.append(v)
            continue
        if p.inputs == "ties":
            # integer-valued floats and repeated values: ties everywhere
            v = r.integers(-2, 3, shp).astype(onp.float64) * r.choice([1.0, 0.5])
        else:
            v = r.standard_normal(shp)
        out.append(v.astype(p.dtypes[a]) if shp else onp.asarray(v, p.dtypes[a])[()])
    return out


def jitter(p: Program, args, amount, seed):
    """The same arguments moved by ``amount`` (uniform noise): off ties and kinks."""
    r = onp.random.default_rng((p.seed, 1000 + seed))
    out = []
    for a, x in zip(ARGS, args):
        if ARGS[a][1] == "f":
            x = onp.asarray(onp.asarray(x, onp.float64) + amount * r.uniform(-1, 1, onp.shape(x)), onp.asarray(x).dtype)
        out.append(x)
    return out


# ----------------------------------------------------------------------------- running
class Trace:
    """What the numpy run saw: the largest magnitude, the largest value, the dtypes of
    live float values, the branch each non-smooth element took, and whether rounding
    decides a branch (``fragile``: a non-smooth op of unstable operands has elements
    tied or within a rounding error of a tie, see ``_stability``).  ``rounds32``: some
    float32 value is computed by an op whose correct implementations may round
    differently (a sum, a transcendental); without one every float32 value is the same
    in gradc as in numpy, bit for bit (casts, moves, selections and IEEE's correctly
    rounded + - * /, see ``_EXACT32``)."""
    def __init__(self):
        self.scale, self.numel, self.float32 = 1.0, 1, False
        self.rounds32 = False
        self.patterns = []
        self.fragile = False
        self.nonfinite = False      # an inf or nan value: outside the smooth domain
        self.cone = False           # a point with no derivative in any direction (std at variance 0)
        # rounding decides a jump (fmod/remainder of unstable values within rounding of a
        # multiple of the divisor): two correct programs' values differ there by the jump
        self.jump = False

    def near(self, gap, like):
        """Is any element of ``gap`` (a distance to a kink) within rounding of 0?"""
        rel = 1e-5 if onp.asarray(like).dtype == onp.float32 else 1e-9
        return bool(onp.any(onp.abs(onp.asarray(gap, onp.float64)) <= rel * self.scale))


def run(p: Program, args, native: bool, upcast=False, trace: Trace | None = None):
    """Run ``p``: with gradc's spellings (``native``, traced or concrete) or plain numpy.
    ``upcast`` runs the numpy program in float64 throughout (finite differences).
    Returns the outputs (the float value first, then the integer reductions)."""
    pool = list(args)
    if native and p.pinned:
        for a in pool:
            onp.shape(a) if not hasattr(a, "shape") else a.shape     # pins the sizes (docs/api.md)
    for a, mode in p.casts.items():
        i = list(ARGS).index(a)
        pool[i] = _cast_arg(pool[i], mode, native, upcast)
        if trace is not None and not native and not upcast:
            trace.float32 = True
    live = live_steps(p)
    for t, s in enumerate(p.steps):
        if t not in live:
            pool.append(None)           # gradc drops dead code, so numpy must not run it
            continue
        unstable = not all(p.stable[o] for o in _operands(s))
        if trace is not None and not native:     # a float32 operand rounds inside the step
            trace.float32 |= any(onp.asarray(pool[o]).dtype == onp.float32 for o in _operands(s))
        pool.append(_step(s, pool, native, upcast, trace, unstable))
    return [pool[o] for o in p.outputs]


def _second_within_rounding(trace, x, top, axis) -> bool:
    """Has some lane of ``x`` along ``axis`` a second element within rounding of its
    extremum ``top`` (kept dims)?  Then which one wins is decided by rounding."""
    if not x.size:
        return False
    rel = 1e-5 if x.dtype == onp.float32 else 1e-9
    close = onp.abs(onp.asarray(x - top, onp.float64)) <= rel * trace.scale
    return bool(onp.any(onp.sum(close, axis=axis) > 1))


def _step(s, pool, native, upcast, trace, unstable=False):
    k, ix = s[0], 0 if native else 1
    y = None
    if k == "unary":
        x = pool[s[2]]
        fns = UNARY.get(s[1]) or MATH[s[1]]
        y = fns[ix](x)
        if trace is not None and fns[2]:
            trace.patterns += fns[2](x)
            if unstable:
                gaps = [x] if s[1] != "clip" else [x + 0.5, x - 0.8]
                trace.fragile |= any(trace.near(g, x) for g in gaps)
    elif k in ("binary", "pair", "imix"):
        a, b = pool[s[2]], pool[s[3]]
        if k == "pair":
            a, b = a[:, None], b[None]
        y = BINARY[s[1]][ix](a, b)
        if trace is not None and BINARY[s[1]][2]:
            trace.patterns += BINARY[s[1]][2](a, b)
            gap = onp.subtract(a, b)
            if k == "pair" and s[2] == s[3] and gap.size:
                # x[:, None] against x[None]: only the diagonal (x[i] against itself) is no
                # tie; x[i] against x[j] is one that rounding may decide (scan seed 3700061:
                # two equal sums of a matmul, tied in the evaluator, one ulp apart in llvm)
                gap = onp.where(onp.eye(gap.shape[0], dtype=bool).reshape(gap.shape[:2] + (1,) * (gap.ndim - 2)),
                                onp.inf, gap)
            if unstable and (s[2] != s[3] or k == "pair"):     # a value against itself (element-wise) is no tie
                trace.fragile |= trace.near(gap, y)
    elif k == "reduce":
        f = REDUCE[s[1]][ix]
        y = f(pool[s[2]], axis=s[3], keepdims=s[4])
        if trace is not None and REDUCE[s[1]][2]:
            x = pool[s[2]]
            m = f(x, axis=s[3], keepdims=True)
            trace.patterns.append(x == m)
            if unstable:
                trace.fragile |= _second_within_rounding(trace, x, m, s[3])
    elif k == "lse":
        y = gradc.logsumexp(pool[s[1]], axis=s[2]) if native else _lse(pool[s[1]], s[2])
    elif k == "matmul":
        b = pool[s[2]]
        if len(s) > 3 and s[3]:                 # a stack's matrices transposed
            b = (gnp if native else onp).swapaxes(b, -1, -2)
        y = pool[s[1]] @ b
    elif k == "transpose":
        y = pool[s[1]].T
    elif k == "permute":
        y = (gnp if native else onp).transpose(pool[s[1]], s[2])
    elif k == "col":
        y = pool[s[1]][:, None]
    elif k == "pick":
        x, ref, axis = pool[s[1]], pool[s[2]], s[3]
        m = gnp if native else onp
        y = m.take_along_axis(x, m.expand_dims(m.argmax(ref, axis=axis), axis), axis)
        if trace is not None:                   # the pick is a branch, as max's extremum
            top = onp.max(ref, axis=axis, keepdims=True)
            trace.patterns.append(ref == top)
            if unstable:
                trace.fragile |= _second_within_rounding(trace, ref, top, axis)
    elif k == "slice":
        y = pool[s[2]][SLICES[s[1]]]
    elif k == "icast":
        y = pool[s[1]].astype("float64" if upcast else s[2])
    elif k == "ireduce":
        y = IREDUCE[s[1]][ix](pool[s[2]])
    elif k == "surface":
        y = _surface(s, pool, native, trace, unstable)
    elif k == "fam":
        y = ff.run(s, pool, native, trace, unstable)
    if trace is not None and not native:
        y = onp.asarray(y)
        if y.dtype.kind == "f":
            trace.float32 |= y.dtype == onp.float32
            trace.rounds32 |= y.dtype == onp.float32 and not _exact32(s, pool)
            trace.numel = max(trace.numel, y.size)
            trace.nonfinite |= not bool(onp.isfinite(y).all())
            fin = onp.abs(y[onp.isfinite(y)])
            if fin.size:
                trace.scale = max(trace.scale, float(fin.max()))
    return y


# steps whose float32 result every correct implementation computes bit for bit from the
# same float32 operands: moves, selections, extrema, and + - * / (IEEE rounds each once,
# correctly; float32 operands are exact in double, and double rounding of a float32 + - * /
# done in double is innocuous); not sums, means, products, transcendentals
_EXACT32 = {"neg", "abs", "relu", "clip", "self_max", "self_min", "square", "affine", "rdiv",
            "add", "sub", "mul", "div", "maximum", "minimum", "where"}


def _exact32(s, pool):
    k = s[0]
    if k in ("transpose", "permute", "col", "slice", "pick"):
        return True
    if k in ("unary", "binary", "pair", "imix"):
        return s[1] in _EXACT32
    if k == "reduce":
        return s[1] in ("max", "min")
    if k == "surface":
        return SURFACE[s[1]][1]
    if k == "fam":
        return ff.FAMILIES[s[1]][1]
    if k == "icast":                    # integers up to 2**24 are float32 exactly
        return bool(onp.all(onp.abs(onp.asarray(pool[s[1]], onp.float64)) <= 2 ** 24))
    return False


def upcast_args(args):
    return [onp.asarray(a, onp.float64) if onp.asarray(a).dtype.kind == "f" else a for a in args]


def np_loss(p: Program, args, trace=None):
    """The loss the gradient tests differentiate, in plain float64 numpy."""
    y = onp.asarray(run(p, upcast_args(args), native=False, upcast=True, trace=trace)[0], onp.float64)
    return float(onp.sum(y * y) * 0.5 + onp.sum(y))


def gradc_loss(p: Program):
    def loss(*args):
        y = run(p, args, native=True)[0]
        return gnp.sum(y * y) * 0.5 + gnp.sum(y)
    return loss


def same_patterns(a: Trace, b: Trace):
    return len(a.patterns) == len(b.patterns) and all(
        onp.shape(x) == onp.shape(y) and onp.array_equal(x, y) for x, y in zip(a.patterns, b.patterns))
