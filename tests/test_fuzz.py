"""Differential fuzzing: hypothesis builds random well-typed straight-line programs
from an op table (unary and binary element-wise ops, broadcasting, reductions with
axes and keepdims, matmul in its four forms, transpose, outer, slicing, depth up to 8,
ranks 0-2, sizes 0, 1, primes and around the vector width) and checks

* native code (backend "llvm") against a plain-numpy run of the same program (every op
  has a gradc spelling and an independent numpy spelling), forward;
* native value_and_grad against the reference evaluator (backend "numpy");
* for smooth programs on small sizes, the reference gradient against central finite
  differences of the plain-numpy program.

Budget: the CI profile (tests/conftest.py: derandomized) runs ``MAX_EXAMPLES`` programs
(~60 s on 2 shared cores); ``GRADC_FUZZ_LONG=1`` runs a long campaign
(``GRADC_FUZZ_EXAMPLES``, default 3000, with fresh random programs unless
HYPOTHESIS_PROFILE says otherwise).  Every failure found becomes an explicit example
below (``@example``) and stays a regression test.

Tolerances: the programs are float64; native code reorders sums (vector lanes,
threads), so results agree to ``RTOL = 1e-9`` relative with an absolute term of
``RTOL * scale * sqrt(terms)`` where ``scale`` is the largest magnitude of any
intermediate value (cancellation can leave a result far smaller than the terms that
produced it).  Finite differences (h = 1e-6 relative): FD_RTOL = 1e-5 on the smooth,
bounded op set used for them.
"""
from __future__ import annotations

import math
import time
import os
import warnings

import numpy as onp
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import gradc
import gradc.numpy as np
from gradc import GradcError

LONG = os.environ.get("GRADC_FUZZ_LONG") == "1"
MAX_EXAMPLES = int(os.environ.get("GRADC_FUZZ_EXAMPLES", 3000 if LONG else 150))
SIZES = [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17]
RTOL = 1e-9
FD_RTOL = 1e-5
STATS = {"programs": 0, "forward_checked": 0, "grad_checked": 0, "fd_checked": 0, "both_raised": 0}


# ----------------------------------------------------------------------------- the op table
def _sig(x):
    return 1.0 / (1.0 + onp.exp(-x))


def _softplus(x):
    return onp.logaddexp(0.0, x)


def _lse(x, axis):
    """log(sum(exp(x))) shifted by the max, with a non-finite max replaced by 0 as
    scipy.special.logsumexp does (so logsumexp([-inf]) is -inf, not nan)."""
    m = onp.max(x, axis=axis, keepdims=True) if x.size else onp.zeros((1,) * x.ndim)
    m = onp.where(onp.isfinite(m), m, 0.0)
    with onp.errstate(all="ignore"):
        r = onp.log(onp.sum(onp.exp(x - m), axis=axis, keepdims=True)) + m
    return r.reshape(()) if axis is None else onp.squeeze(r, axis=axis)


# unary: name -> (gradc, numpy, smooth)
UNARY = {
    "neg": (lambda x: -x, lambda x: -x, True),
    "tanh": (np.tanh, onp.tanh, True),
    "sin": (np.sin, onp.sin, True),
    "cos": (np.cos, onp.cos, True),
    "square": (np.square, onp.square, True),
    "sigmoid": (gradc.sigmoid, _sig, True),
    "softplus": (gradc.softplus, _softplus, True),
    "exp_tanh": (lambda x: np.exp(np.tanh(x)), lambda x: onp.exp(onp.tanh(x)), True),
    "log1p_sq": (lambda x: np.log1p(x * x), lambda x: onp.log1p(x * x), True),
    "sqrt_1p": (lambda x: np.sqrt(1.0 + x * x), lambda x: onp.sqrt(1.0 + x * x), True),
    "affine": (lambda x: x * 0.7 + 0.3, lambda x: x * 0.7 + 0.3, True),
    "pow3": (lambda x: x ** 3, lambda x: x ** 3, True),
    "rdiv": (lambda x: 1.0 / (1.5 + x * x), lambda x: 1.0 / (1.5 + x * x), True),
    "relu": (gradc.relu, lambda x: onp.maximum(x, 0.0), False),
    "abs": (np.abs, onp.abs, False),
    "clip": (lambda x: np.clip(x, -0.5, 0.8), lambda x: onp.clip(x, -0.5, 0.8), False),
}

# binary (broadcasting): name -> (gradc, numpy, smooth)
BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b, True),
    "sub": (lambda a, b: a - b, lambda a, b: a - b, True),
    "mul": (lambda a, b: a * b, lambda a, b: a * b, True),
    "div": (lambda a, b: a / (1.5 + b * b), lambda a, b: a / (1.5 + b * b), True),
    "maximum": (np.maximum, onp.maximum, False),
    "minimum": (np.minimum, onp.minimum, False),
    "where": (lambda a, b: np.where(a > b, a, b * 0.5), lambda a, b: onp.where(a > b, a, b * 0.5), False),
}

# reductions: name -> (gradc, numpy, smooth, needs a non-empty reduced extent)
REDUCE = {
    "sum": (np.sum, onp.sum, True, False),
    "mean": (np.mean, onp.mean, True, False),
    "max": (np.max, onp.max, False, True),
    "min": (np.min, onp.min, False, True),
}


def _bshape(a, b):
    try:
        return onp.broadcast_shapes(a, b)
    except ValueError:
        return None


def _reduced(shape, axis, keepdims):
    if axis is None:
        return (1,) * len(shape) if keepdims else ()
    ax = axis % len(shape)
    return tuple(1 if i == ax else d for i, d in enumerate(shape)) if keepdims else \
        tuple(d for i, d in enumerate(shape) if i != ax)


# ----------------------------------------------------------------------------- programs
@st.composite
def programs(draw):
    m, n = draw(st.sampled_from(SIZES)), draw(st.sampled_from(SIZES))
    shapes = [(m, n), (m,), (n,), ()]
    seed = draw(st.integers(0, 2 ** 32 - 1))
    steps = []
    pool = list(shapes)
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["unary", "unary", "binary", "binary", "reduce", "matmul",
                                     "transpose", "slice", "col", "outer", "lse"]))
        pick = lambda cands: draw(st.sampled_from(cands)) if cands else None  # noqa: E731
        idx = list(range(len(pool)))
        if kind == "unary":
            i = pick(idx)
            steps.append(("unary", draw(st.sampled_from(sorted(UNARY))), i))
            pool.append(pool[i])
        elif kind == "binary":
            i = pick(idx)
            j = pick([k for k in idx if _bshape(pool[i], pool[k]) is not None])
            steps.append(("binary", draw(st.sampled_from(sorted(BINARY))), i, j))
            pool.append(_bshape(pool[i], pool[j]))
        elif kind in ("reduce", "lse"):
            i = pick(idx)
            r = len(pool[i])
            axis = draw(st.sampled_from([None] + list(range(-r, r))))
            keep = draw(st.booleans()) if kind == "reduce" else False
            name = draw(st.sampled_from(sorted(REDUCE))) if kind == "reduce" else "lse"
            steps.append((kind, name, i, axis, keep))
            pool.append(_reduced(pool[i], axis, keep))
        elif kind == "matmul":
            pairs = [(i, j) for i in idx for j in idx if 1 <= len(pool[i]) <= 2 and 1 <= len(pool[j]) <= 2
                     and pool[i][-1] == pool[j][0] and len(pool[i]) + len(pool[j]) >= 2]
            if not pairs:
                continue
            i, j = draw(st.sampled_from(pairs))
            steps.append(("matmul", i, j))
            pool.append(pool[i][:-1] + pool[j][1:])
        elif kind == "transpose":
            i = pick([k for k in idx if len(pool[k]) == 2])
            if i is None:
                continue
            steps.append(("transpose", i))
            pool.append(pool[i][::-1])
        elif kind == "col":
            i = pick([k for k in idx if len(pool[k]) == 1])
            if i is None:
                continue
            steps.append(("col", i))
            pool.append(pool[i] + (1,))
        elif kind == "outer":
            c = [k for k in idx if len(pool[k]) == 1]
            if not c:
                continue
            i, j = pick(c), pick(c)
            steps.append(("outer", i, j))
            pool.append(pool[i] + pool[j])
        else:  # slice
            i = pick([k for k in idx if len(pool[k]) >= 1])
            if i is None:
                continue
            sl = draw(st.sampled_from(["tail", "head", "step2", "first", "rows_tail"]))
            shp = pool[i]
            if sl == "first" and shp[0] == 0:
                sl = "tail"
            if sl == "rows_tail" and len(shp) < 2:
                sl = "step2"
            steps.append(("slice", sl, i))
            pool.append(onp.empty(shp)[_SLICES[sl]].shape)
    return (m, n), seed, steps


_SLICES = {"tail": slice(1, None), "head": slice(None, -1), "step2": slice(None, None, 2), "first": 0,
           "rows_tail": (slice(None), slice(1, None))}


def run(steps, inputs, native):
    """Run a program: ``native`` with gradc.numpy spellings (traced or concrete), else
    with plain numpy.  Returns (the last value, the largest magnitude seen)."""
    pool = list(inputs)
    scale = 1.0
    live = _live(steps, len(inputs))
    for t, s in enumerate(steps):
        k = s[0]
        if t not in live:          # dead code: gradc drops it, so numpy must not run it
            pool.append(None)
            continue
        if k == "unary":
            f = UNARY[s[1]][0 if native else 1]
            y = f(pool[s[2]])
        elif k == "binary":
            f = BINARY[s[1]][0 if native else 1]
            y = f(pool[s[2]], pool[s[3]])
        elif k == "reduce":
            f = REDUCE[s[1]][0 if native else 1]
            y = f(pool[s[2]], axis=s[3], keepdims=s[4])
        elif k == "lse":
            y = gradc.logsumexp(pool[s[2]], axis=s[3]) if native else _lse(pool[s[2]], s[3])
        elif k == "matmul":
            y = pool[s[1]] @ pool[s[2]]
        elif k == "transpose":
            y = pool[s[1]].T
        elif k == "col":
            y = pool[s[1]][:, None]
        elif k == "outer":
            y = (np if native else onp).outer(pool[s[1]], pool[s[2]])
        else:
            y = pool[s[2]][_SLICES[s[1]]]
        if not native:
            y = onp.asarray(y, onp.float64)
            fin = onp.abs(y[onp.isfinite(y)])
            if fin.size:
                scale = max(scale, float(fin.max()))
        pool.append(y)
    return pool[-1], scale


def _operands(s):
    if s[0] in ("unary", "reduce", "lse", "slice"):
        return [s[2]]
    if s[0] == "binary":
        return [s[2], s[3]]
    if s[0] in ("matmul", "outer"):
        return [s[1], s[2]]
    return [s[1]]                       # transpose, col


def _live(steps, n_inputs):
    live, need = set(), {n_inputs + len(steps) - 1}
    for t in range(len(steps) - 1, -1, -1):
        if n_inputs + t in need:
            live.add(t)
            need.update(_operands(steps[t]))
    return live


def make_inputs(shape, seed):
    m, n = shape
    r = onp.random.default_rng(seed)
    return [r.normal(size=(m, n)), r.normal(size=m), r.normal(size=n), onp.float64(r.normal())]


def _terms(shape):
    return max(1, shape[0] * shape[1])


def _close(got, want, scale, terms, what):
    got, want = onp.asarray(got, onp.float64), onp.asarray(want, onp.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    atol = RTOL * scale * math.sqrt(terms)
    onp.testing.assert_allclose(got, want, rtol=RTOL, atol=atol, equal_nan=True, err_msg=what)


def _smooth(steps):
    for s in steps:
        if s[0] == "unary" and not UNARY[s[1]][2] or s[0] == "binary" and not BINARY[s[1]][2] \
                or s[0] == "reduce" and not REDUCE[s[1]][2]:
            return False
    return True


def fd_grad(f, args, i, h=1e-6):
    args = [onp.array(a, onp.float64) for a in args]
    x = args[i]
    g = onp.zeros(x.shape)
    for k in range(x.size):
        step = h * max(1.0, abs(float(x.reshape(-1)[k])))
        xp, xm = x.copy(), x.copy()
        xp.reshape(-1)[k] += step
        xm.reshape(-1)[k] -= step
        ap, am = list(args), list(args)
        ap[i], am[i] = xp, xm
        g.reshape(-1)[k] = (float(f(*ap)) - float(f(*am))) / (2 * step)
    return g


def check_program(prog):
    shape, seed, steps = prog
    STATS["programs"] += 1
    t0 = time.perf_counter()
    inputs = make_inputs(shape, seed)
    terms = _terms(shape) * (max(shape) + 1)
    with warnings.catch_warnings(), onp.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            want, scale = run(steps, inputs, native=False)
            want_exc = None
        except (ValueError, IndexError) as e:   # max of nothing, x[0] of nothing
            want_exc = e
        fwd = gradc.jit(lambda A, u, v, s: run(steps, (A, u, v, s), True)[0], backend="llvm")
        if want_exc is not None:
            with pytest.raises(type(want_exc)):
                fwd(*inputs)
            STATS["both_raised"] += 1
            return
        got = fwd(*inputs)
        _close(got, want, scale, terms, f"forward {steps}")
        STATS["forward_checked"] += 1

        def loss(A, u, v, s):
            y = run(steps, (A, u, v, s), True)[0]
            return np.sum(y * y) * 0.5 + np.sum(y)
        vg_n = gradc.value_and_grad(loss, argnums=(0, 1, 2, 3), backend="llvm")
        vg_r = gradc.value_and_grad(loss, argnums=(0, 1, 2, 3), backend="numpy")
        (v1, g1), (v2, g2) = vg_n(*inputs), vg_r(*inputs)
        gscale = max([scale ** 2] + [float(onp.max(onp.abs(g), initial=0.0)) for g in g2
                                     if onp.isfinite(g).all()])
        _close(v1, v2, scale ** 2, terms, f"value {steps}")
        for k, (a, b) in enumerate(zip(g1, g2)):
            _close(a, b, gscale, terms, f"grad {k} {steps}")
        STATS["grad_checked"] += 1
        if _smooth(steps) and max(shape) <= 9 and scale < 1e3 and onp.isfinite(v2) \
                and all(onp.isfinite(g).all() for g in g2):
            def np_loss(A, u, v, s):
                y = run(steps, (A, u, v, s), False)[0]
                return onp.sum(y * y) * 0.5 + onp.sum(y)
            for k in range(4):
                fd = fd_grad(np_loss, inputs, k)
                fscale = max(1.0, float(onp.max(onp.abs(fd), initial=0.0)))
                onp.testing.assert_allclose(g2[k], fd, rtol=FD_RTOL, atol=FD_RTOL * fscale,
                                            err_msg=f"finite differences, grad {k} {steps}")
            STATS["fd_checked"] += 1


# ----------------------------------------------------------------------------- the property
# Hand-written edge programs, always run: a reduction feeding a broadcast, a mean of
# nothing, an outer product into a logsumexp at sizes off the vector width.
EDGES = [
    ((3, 4), 0, [("matmul", 0, 2), ("reduce", "max", 4, 0, True), ("binary", "sub", 4, 5)]),
    ((0, 5), 1, [("reduce", "sum", 0, 0, False), ("reduce", "mean", 0, None, False)]),
    ((9, 17), 2, [("outer", 1, 2), ("binary", "mul", 4, 0), ("lse", "lse", 5, -1, False)]),
]
# Regression examples: every failure the fuzzer found is pinned here.
REGRESSIONS = [
    # found by the fuzzer (oracle bug, not gradc's): logsumexp of an empty array is -inf,
    # and logsumexp([-inf]) must be -inf (gradc, scipy), not the nan of a naive max shift
    ((0, 0), 0, [("lse", "lse", 0, None, False), ("unary", "abs", 0), ("unary", "abs", 0),
                 ("lse", "lse", 4, None, False)]),
]


def _with_examples(f):
    for ex in EDGES + REGRESSIONS:
        f = example(ex)(f)
    return f


@settings(max_examples=MAX_EXAMPLES)
@given(programs())
@_with_examples
def test_native_agrees_with_numpy_and_finite_differences(prog):
    check_program(prog)


def test_fuzz_report(capsys):
    """Runs after the property (file order): prints how many programs were checked."""
    with capsys.disabled():
        print(f"\n[gradc fuzz] {STATS}")
    assert STATS["programs"] == 0 or STATS["forward_checked"] + STATS["both_raised"] > 0
