"""Property tests (hypothesis): random programs over random shapes.

A program is drawn as data (a list of steps), then interpreted twice: once with numpy
(the oracle, differentiated by central finite differences) and once with gradc.numpy
under gradc's transformations.  Shapes have rank 0-2 with sizes 1-3 (size 1 exercises
broadcasting); values come from a seeded numpy generator (so no exact ties).

Bounded for CI: a few dozen examples per property (the whole file runs in seconds); the
"ci" profile in conftest.py derandomizes.  Tolerance: finite differences of a function
of magnitude |f| carry a rounding error ~ eps * |f| / h ~ 2e-10 |f| (h = 1e-6), so the
gradient is compared with rtol 1e-5 and atol 1e-6 * max(1, |f|, |grad|).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import gradc
import gradc.numpy as gnp

from gradc_helpers import fd_grad, fd_jvp

pytestmark = pytest.mark.usefixtures("core_backend")


def _lse_np(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    r = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return r if keepdims else np.squeeze(r, axis=axis)


# name -> (numpy version, gradc version)
UNARY = {
    "sin": (np.sin, gnp.sin), "cos": (np.cos, gnp.cos), "tanh": (np.tanh, gnp.tanh),
    "exp": (np.exp, gnp.exp), "square": (np.square, gnp.square),
    "neg": (np.negative, lambda x: -x),
    "log1p_sq": (lambda x: np.log1p(x * x), lambda x: gnp.log1p(x * x)),
    "log_1_sq": (lambda x: np.log(1 + x * x), lambda x: gnp.log(1 + x * x)),
    "sqrt_1_sq": (lambda x: np.sqrt(1 + x * x), lambda x: gnp.sqrt(1 + x * x)),
    "sigmoid": (lambda x: 1 / (1 + np.exp(-x)), gradc.sigmoid),
    "softplus": (lambda x: np.log1p(np.exp(x)), gradc.softplus),
    "pow3": (lambda x: x ** 3, lambda x: x ** 3),
    "scale": (lambda x: 0.5 * x - 1.0, lambda x: 0.5 * x - 1.0),
}
BINARY = {
    "add": (np.add, lambda x, y: x + y), "sub": (np.subtract, lambda x, y: x - y),
    "mul": (np.multiply, lambda x, y: x * y),
    "div": (lambda x, y: x / (1 + y * y), lambda x, y: x / (1 + y * y)),
    "rdiv": (lambda x, y: y / (2 + np.sin(x)), lambda x, y: y / (2 + gnp.sin(x))),
    "pow": (lambda x, y: (1 + x * x) ** np.tanh(y), lambda x, y: (1 + x * x) ** gnp.tanh(y)),
}
REDUCE = {
    "sum": (np.sum, gnp.sum), "mean": (np.mean, gnp.mean),
    "logsumexp": (_lse_np, gradc.logsumexp),
}
SIZES = st.integers(1, 3)


@st.composite
def broadcast_shapes(draw, n=2):
    """n shapes that broadcast together (ranks 0-2, sizes 1-3, some dims 1)."""
    rank = draw(st.integers(0, 2))
    full = tuple(draw(SIZES) for _ in range(rank))
    out = []
    for _ in range(n):
        r = draw(st.integers(0, rank))
        shp = tuple(1 if draw(st.booleans()) else d for d in full[rank - r:])
        out.append(shp)
    return out


@st.composite
def programs(draw):
    """(shapes of a and b, steps).  Each step keeps track of the current shape."""
    sa, sb = draw(broadcast_shapes())
    shape = np.broadcast_shapes(sa, sb)
    steps = [("binary", draw(st.sampled_from(sorted(BINARY))), "a", "b")]
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["unary", "binary", "reduce"]))
        if kind == "unary":
            steps.append(("unary", draw(st.sampled_from(sorted(UNARY)))))
        elif kind == "binary":
            other = draw(st.sampled_from(["a", "b"]))
            so = sa if other == "a" else sb
            try:
                new = np.broadcast_shapes(shape, so)
            except ValueError:
                continue
            steps.append(("binary", draw(st.sampled_from(sorted(BINARY))), "c", other,
                          draw(st.booleans())))
            shape = new
        elif len(shape):
            axis = draw(st.sampled_from([None] + list(range(len(shape))) + [-1]))
            keep = draw(st.booleans())
            steps.append(("reduce", draw(st.sampled_from(sorted(REDUCE))), axis, keep))
            shape = np.sum(np.empty(shape), axis=axis, keepdims=keep).shape
    return sa, sb, steps


def interpret(steps, a, b, which):
    """which = 0: numpy, 1: gradc.numpy."""
    env = {"a": a, "b": b}
    c = None
    for step in steps:
        if step[0] == "unary":
            c = UNARY[step[1]][which](c)
        elif step[0] == "binary":
            x, y = (env[step[2]] if step[2] != "c" else c), env[step[3]]
            if len(step) > 4 and step[4]:
                x, y = y, x
            c = BINARY[step[1]][which](x, y)
        else:
            c = REDUCE[step[1]][which](c, axis=step[2], keepdims=step[3])
    return c


def _values(shape_a, shape_b, seed):
    r = np.random.default_rng(seed)
    return 0.8 * r.standard_normal(shape_a), 0.8 * r.standard_normal(shape_b)


def _bounded(val):
    return bool(np.all(np.isfinite(val)) and np.max(np.abs(val), initial=0) < 1e3)


def _grad_close(got, want, fscale):
    scale = max(1.0, fscale, float(np.max(np.abs(want), initial=0)))
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=1e-5, atol=1e-6 * scale)


@settings(max_examples=200)
@given(programs(), st.integers(0, 2 ** 16))
def test_random_program_gradient_vs_finite_differences(prog, seed):
    sa, sb, steps = prog
    a, b = _values(sa, sb, seed)
    with np.errstate(all="ignore"):
        val = interpret(steps, a, b, 0)
    assume(_bounded(val))

    def f_np(a, b):
        return np.sum(interpret(steps, a, b, 0))

    def f_gc(a, b):
        return gnp.sum(interpret(steps, a, b, 1))
    v, (ga, gb) = gradc.value_and_grad(f_gc, argnums=(0, 1))(a, b)
    np.testing.assert_allclose(v, f_np(a, b), rtol=1e-12, atol=1e-12 * max(1, abs(f_np(a, b))))
    assert np.shape(ga) == sa and np.shape(gb) == sb
    fs = abs(float(f_np(a, b)))
    _grad_close(ga, fd_grad(f_np, [a, b], 0), fs)
    _grad_close(gb, fd_grad(f_np, [a, b], 1), fs)


@settings(max_examples=120)
@given(programs(), st.integers(0, 2 ** 16))
def test_random_program_forward_jvp_and_vjp_agree(prog, seed):
    sa, sb, steps = prog
    a, b = _values(sa, sb, seed)
    with np.errstate(all="ignore"):
        want = interpret(steps, a, b, 0)
    assume(_bounded(want))
    f = lambda a, b: interpret(steps, a, b, 1)  # noqa: E731
    got = gradc.jit(f)(a, b)
    assert np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    r = np.random.default_rng(seed + 1)
    ua, ub, v = r.standard_normal(sa), r.standard_normal(sb), r.standard_normal(np.shape(want))
    _, Ju = gradc.jvp(f, (a, b), (ua, ub))
    _, vjp_fn = gradc.vjp(f, a, b)
    ca, cb = vjp_fn(v)
    lhs, rhs = np.sum(v * Ju), np.sum(ca * ua) + np.sum(cb * ub)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10, atol=1e-10 * max(1, np.max(np.abs(want))))
    _grad_close(Ju, fd_jvp(lambda a, b: interpret(steps, a, b, 0), [a, b], [0, 1], [ua, ub]),
                float(np.max(np.abs(want), initial=0)))


@settings(max_examples=120)
@given(broadcast_shapes(), st.sampled_from(sorted(BINARY)), st.integers(0, 2 ** 16))
def test_broadcasting_shapes_and_adjoint_sums(shapes, op, seed):
    """Output shape = numpy's broadcast shape; each gradient has its input's shape and
    equals the finite-difference gradient (the adjoint of an expansion is a sum)."""
    sa, sb = shapes
    a, b = _values(sa, sb, seed)
    f_np, f_gc = BINARY[op]
    out = gradc.jit(f_gc)(a, b)
    assert np.shape(out) == np.broadcast_shapes(sa, sb)
    np.testing.assert_allclose(out, f_np(a, b), rtol=1e-12, atol=1e-12)
    w = np.random.default_rng(seed + 7).standard_normal(np.shape(out))
    ga, gb = gradc.grad(lambda a, b: gnp.sum(f_gc(a, b) * w), argnums=(0, 1))(a, b)
    assert np.shape(ga) == sa and np.shape(gb) == sb
    obj = lambda a, b: np.sum(f_np(a, b) * w)  # noqa: E731
    _grad_close(ga, fd_grad(obj, [a, b], 0), abs(obj(a, b)))
    _grad_close(gb, fd_grad(obj, [a, b], 1), abs(obj(a, b)))


@st.composite
def reductions(draw):
    rank = draw(st.integers(1, 2))
    shape = tuple(draw(SIZES) for _ in range(rank))
    axis = draw(st.sampled_from([None] + list(range(rank)) + [-1] + ([(0, 1)] if rank == 2 else [])))
    return shape, axis, draw(st.booleans()), draw(st.sampled_from(["sum", "mean", "max", "min", "logsumexp"]))


@settings(max_examples=120)
@given(reductions(), st.integers(0, 2 ** 16))
def test_reductions_over_random_axes(red, seed):
    shape, axis, keep, name = red
    r = np.random.default_rng(seed)
    n = int(np.prod(shape))
    x = ((r.permutation(n) - n / 2) * 0.3 + r.uniform(-0.05, 0.05, n)).reshape(shape)  # no ties
    f_np = {"max": np.max, "min": np.min, **{k: v[0] for k, v in REDUCE.items()}}[name]
    f_gc = {"max": gnp.max, "min": gnp.min, **{k: v[1] for k, v in REDUCE.items()}}[name]
    want = f_np(x, axis=axis, keepdims=keep)
    got = gradc.jit(lambda x: f_gc(x, axis=axis, keepdims=keep))(x)
    assert np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    w = r.standard_normal(np.shape(want))
    g = gradc.grad(lambda x: gnp.sum(f_gc(x, axis=axis, keepdims=keep) * w))(x)
    obj = lambda x: np.sum(f_np(x, axis=axis, keepdims=keep) * w)  # noqa: E731
    _grad_close(g, fd_grad(obj, [x], 0), abs(obj(x)))


@settings(max_examples=20)
@given(st.lists(st.integers(2, 9), min_size=2, max_size=4), st.integers(1, 3))
def test_one_trace_serves_every_batch_size(batch_sizes, d):
    traces = []

    def loss(w, X):
        traces.append(1)
        return gnp.mean(gnp.tanh(X @ w) ** 2)
    g = gradc.grad(loss)
    r = np.random.default_rng(d)
    w = r.standard_normal(d)
    for n in batch_sizes:
        X = r.standard_normal((n, d))
        t = np.tanh(X @ w)
        np.testing.assert_allclose(g(w, X), X.T @ (2 * t * (1 - t ** 2)) / n, rtol=1e-12, atol=1e-14)
    assert len(traces) == 1


@settings(max_examples=60)
@given(programs(), st.integers(0, 2 ** 16))
def test_random_program_float32(prog, seed):
    """float32 in -> float32 out, within float32 precision of the float64 result
    (rtol 1e-4 ~ 800 eps32: up to ~6 ops, each a few ulps, condition numbers <= ~10)."""
    sa, sb, steps = prog
    a, b = (v.astype(np.float32) for v in _values(sa, sb, seed))
    with np.errstate(all="ignore"):
        want = interpret(steps, a.astype(np.float64), b.astype(np.float64), 0)
    assume(_bounded(want))
    f = lambda a, b: gnp.sum(interpret(steps, a, b, 1))  # noqa: E731
    v32, (ga32, gb32) = gradc.value_and_grad(f, argnums=(0, 1))(a, b)
    v64, (ga64, gb64) = gradc.value_and_grad(f, argnums=(0, 1))(a.astype(np.float64), b.astype(np.float64))
    assert np.asarray(v32).dtype == np.float32
    assert ga32.dtype == np.float32 and gb32.dtype == np.float32
    scale = max(1.0, abs(float(v64)))
    np.testing.assert_allclose(v32, v64, rtol=1e-4, atol=1e-4 * scale)
    for g32, g64 in ((ga32, ga64), (gb32, gb64)):
        gs = max(scale, float(np.max(np.abs(g64), initial=0)))
        np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-4 * gs)


@settings(max_examples=40)
@given(programs(), st.integers(0, 2 ** 16))
def test_random_program_hvp_vs_differenced_gradient(prog, seed):
    """H v (forward over reverse) == central difference of the gradient along v.
    (The gradient itself is checked against numpy above.)"""
    sa, sb, steps = prog
    a, b = _values(sa, sb, seed)
    with np.errstate(all="ignore"):
        val = interpret(steps, a, b, 0)
    assume(_bounded(val))
    f = lambda a: gnp.sum(interpret(steps, a, b, 1))  # noqa: E731
    v = np.random.default_rng(seed + 3).standard_normal(sa)
    Hv = gradc.hvp(f, (a,), (v,))
    g = gradc.grad(f)
    h = 1e-5
    want = (g(a + h * v) - g(a - h * v)) / (2 * h)
    assume(_bounded(want))
    # truncation h^2 |f''''| ~ 1e-10 * scale, rounding eps |grad| / h ~ 2e-11 * scale
    _grad_close(Hv, want, abs(float(np.sum(val))))
