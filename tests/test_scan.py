"""gradc.lax.scan (and fori_loop, map) against independent oracles, through the public
API only, so the same battery checks any implementation of scan (unrolled while
tracing, or a native loop with its own derivative rules).

Oracles: a plain Python loop in numpy for values; back-propagation through time written
out in numpy for the RNN's full gradients; central finite differences (float64) of the
numpy loop for every other gradient, for second derivatives and for forward mode;
jax.lax.scan with jax.grad where JAX is installed.  The tests run on the numpy, llvm and
c backends (see ``backends`` below).

Tolerances: values 1e-9 relative (float64: a few ulps per op over at most 33 steps of
contractive tanh steps, far below); gradients against finite differences use
gradc_helpers' FD_RTOL/FD_ATOL (1e-6, justified there); float32 tolerances are
justified where they are used.
"""
from __future__ import annotations

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
from gradc import lax

from gradc_helpers import FD_ATOL, FD_RTOL, assert_fd_close, fd_grad, fd_jvp

# numpy, llvm and c (where a C compiler exists).  The JAX comparisons run once, on the
# default backend (JAX checks the semantics; the backends are checked against the numpy
# oracles in every other test), and the errors are raised while tracing.
backends = pytest.mark.usefixtures("every_backend")
VALUE_RTOL = 1e-9


# ----------------------------------------------------------------------------- numpy oracles
def np_scan(f, init, xs=None, length=None, reverse=False):
    """jax.lax.scan's semantics as a Python loop over numpy values (xs: an array, a
    tuple/dict of arrays, or None with ``length``); ys stacked leaf by leaf."""
    if isinstance(xs, dict):
        n = len(next(iter(xs.values())))
        take = lambda i: {k: v[i] for k, v in xs.items()}   # noqa: E731
    elif isinstance(xs, tuple):
        n = len(xs[0])
        take = lambda i: tuple(v[i] for v in xs)             # noqa: E731
    elif xs is None:
        n, take = length, (lambda i: None)
    else:
        n, take = len(xs), (lambda i: xs[i])
    carry, ys = init, [None] * n
    for i in (range(n - 1, -1, -1) if reverse else range(n)):
        carry, ys[i] = f(carry, take(i))
    return carry, _stack(ys)


def _stack(ys):
    y0 = ys[0]
    if y0 is None:
        return None
    if isinstance(y0, dict):
        return {k: _stack([y[k] for y in ys]) for k in y0}
    if isinstance(y0, tuple):
        return tuple(_stack([y[j] for y in ys]) for j in range(len(y0)))
    return np.stack([np.asarray(y) for y in ys])


def rnn_params(r, d_in, hidden, dtype=np.float64):
    """Weights scaled so the recurrence is contractive (|Wh|_2 < 1): values and
    gradients stay O(1) over 33 steps."""
    return {"Wx": (r.standard_normal((d_in, hidden)) / np.sqrt(d_in)).astype(dtype),
            "Wh": (r.standard_normal((hidden, hidden)) * 0.5 / np.sqrt(hidden)).astype(dtype),
            "b": (r.standard_normal(hidden) * 0.1).astype(dtype)}


def rnn_loss(m, p, h0, xs, cy, cc):
    """The RNN model written once against an array module ``m`` (gradc.numpy traced by
    gradc.lax.scan, or numpy with the numpy loop): the step closes over the dict ``p``;
    the loss reads every y (weighted by cy) and the final carry (weighted by cc)."""
    scan = lax.scan if m is gnp else np_scan

    def step(h, x):
        h = m.tanh(x @ p["Wx"] + h @ p["Wh"] + p["b"])
        return h, h
    h, hs = scan(step, h0, xs)
    return m.sum(hs * cy) / cy.shape[0] + m.sum(h * cc)


def rnn_bptt(p, h0, xs, cy, cc):
    """Back-propagation through time of :func:`rnn_loss` in numpy (its full gradient):
    a_t = x_t Wx + h_{t-1} Wh + b, h_t = tanh(a_t)."""
    hs, h = [], h0
    for x in xs:
        h = np.tanh(x @ p["Wx"] + h @ p["Wh"] + p["b"])
        hs.append(h)
    T = len(xs)
    g = {k: np.zeros_like(v) for k, v in p.items()}
    dxs = np.zeros_like(xs)
    dh = cc.copy()
    for t in range(T - 1, -1, -1):
        dh = dh + cy[t] / T
        da = dh * (1 - hs[t] ** 2)
        prev = hs[t - 1] if t else h0
        g["Wx"] += np.tensordot(xs[t], da, axes=(list(range(xs[t].ndim - 1)),) * 2)
        g["Wh"] += np.tensordot(prev, da, axes=(list(range(prev.ndim - 1)),) * 2)
        g["b"] += da.reshape(-1, da.shape[-1]).sum(0)
        dxs[t] = da @ p["Wx"].T
        dh = da @ p["Wh"].T
    return g, dh, dxs


def rnn_data(seed, T, lead, d_in, hidden, dtype=np.float64):
    r = np.random.default_rng(seed)
    p = rnn_params(r, d_in, hidden, dtype)
    h0 = (r.standard_normal(lead + (hidden,)) * 0.5).astype(dtype)
    xs = r.standard_normal((T,) + lead + (d_in,)).astype(dtype)
    cy = r.standard_normal((T,) + lead + (hidden,)).astype(dtype)
    cc = r.standard_normal(lead + (hidden,)).astype(dtype)
    return p, h0, xs, cy, cc


def directional_fd(f, args, i, key=None, seed=0):
    """(<gradient, v>'s finite-difference value, v) for a random direction v in
    argument ``i`` (leaf ``key`` of a dict argument): a cheap check of a large gradient."""
    base = args[i][key] if key is not None else args[i]
    v = np.random.default_rng(seed).standard_normal(np.shape(base))

    def along(t):
        a = list(args)
        if key is not None:
            a[i] = dict(args[i], **{key: base + t * v})
        else:
            a[i] = base + t * v
        return f(*a)
    return float(fd_jvp(along, [np.zeros(())], [0], [np.ones(())])), v


# ----------------------------------------------------------------------------- the RNN
@pytest.mark.parametrize("T", [7, 33])
def test_rnn_value_and_gradient_with_closed_over_params(T, every_backend):
    """Batch 32, hidden 64: value against the numpy loop, the full gradients (params dict
    captured by the step, init carry, xs) against BPTT, and a random direction of each
    against finite differences of the numpy loop."""
    if T == 33 and every_backend == "c":
        pytest.skip("C compiles 33 traced steps and their adjoint in ~35 s; 7 steps cover the C backend")
    p, h0, xs, cy, cc = rnn_data(T, T, (32,), 16, 64)
    f = gradc.value_and_grad(lambda p, h0, xs: rnn_loss(gnp, p, h0, xs, cy, cc), argnums=(0, 1, 2))
    value, (gp, gh0, gxs) = f(p, h0, xs)
    ref = lambda p, h0, xs: rnn_loss(np, p, h0, xs, cy, cc)   # noqa: E731
    np.testing.assert_allclose(value, ref(p, h0, xs), rtol=VALUE_RTOL)
    wp, wh0, wxs = rnn_bptt(p, h0, xs, cy, cc)
    for k in wp:
        np.testing.assert_allclose(gp[k], wp[k], rtol=1e-9, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(gh0, wh0, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gxs, wxs, rtol=1e-9, atol=1e-12)
    for i, key, g in [(0, "Wh", gp["Wh"]), (0, "b", gp["b"]), (1, None, gh0), (2, None, gxs)]:
        want, v = directional_fd(ref, [p, h0, xs], i, key)
        assert float(np.sum(g * v)) == pytest.approx(want, rel=FD_RTOL, abs=FD_ATOL)


@backends
def test_rnn_with_rank3_steps():
    """Each step's x is rank 3 (xs rank 4), the carry rank 3: value and full gradients."""
    p, h0, xs, cy, cc = rnn_data(3, 5, (2, 3), 4, 6)
    f = gradc.value_and_grad(lambda p, h0, xs: rnn_loss(gnp, p, h0, xs, cy, cc), argnums=(0, 1, 2))
    value, (gp, gh0, gxs) = f(p, h0, xs)
    np.testing.assert_allclose(value, rnn_loss(np, p, h0, xs, cy, cc), rtol=VALUE_RTOL)
    wp, wh0, wxs = rnn_bptt(p, h0, xs, cy, cc)
    for got, want in [(gp["Wx"], wp["Wx"]), (gp["Wh"], wp["Wh"]), (gp["b"], wp["b"]), (gh0, wh0), (gxs, wxs)]:
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert gxs.shape == xs.shape and gh0.shape == h0.shape


@backends
def test_rnn_in_float32():
    """float32 against the float64 oracles evaluated on the same float32-rounded inputs.
    Each step rounds an 80-term dot product and a tanh (errors ~ sqrt(80) eps32 ~ 1e-6 of
    O(1) terms); the contractive recurrence (|Wh| < 1) keeps 9 steps of error from
    growing past ~1e-5, so values and gradients (whose entries are sums over 32 x 9
    terms of O(1)) get 2e-4 relative to the largest entry (~1700 eps32)."""
    p, h0, xs, cy, cc = rnn_data(5, 9, (32,), 16, 64, np.float32)
    value, (gp, gh0) = gradc.value_and_grad(lambda p, h0: rnn_loss(gnp, p, h0, xs, cy, cc), argnums=(0, 1))(p, h0)
    as64 = lambda t: {k: v.astype(np.float64) for k, v in t.items()}   # noqa: E731
    p64, h064, xs64, cy64, cc64 = as64(p), h0.astype(np.float64), xs.astype(np.float64), cy.astype(np.float64), \
        cc.astype(np.float64)
    assert np.asarray(value).dtype == np.float32 and gp["Wh"].dtype == np.float32 and gh0.dtype == np.float32
    want = rnn_loss(np, p64, h064, xs64, cy64, cc64)
    assert abs(float(value) - want) <= 2e-4 * max(1.0, abs(want))
    wp, wh0, _ = rnn_bptt(p64, h064, xs64, cy64, cc64)
    for got, w in [(gp["Wx"], wp["Wx"]), (gp["Wh"], wp["Wh"]), (gp["b"], wp["b"]), (gh0, wh0)]:
        np.testing.assert_allclose(got, w, rtol=0, atol=2e-4 * np.abs(w).max())


@backends
def test_symbolic_sizes_one_function_two_batches():
    """The same jitted scan called at batch 3 and batch 11 (and its gradient): each
    against the numpy loop."""
    r = np.random.default_rng(7)
    p = rnn_params(r, 4, 5)
    f = gradc.jit(lambda p, h0, xs: lax.scan(lambda h, x: (gnp.tanh(x @ p["Wx"] + h @ p["Wh"] + p["b"]),) * 2,
                                             h0, xs))
    g = gradc.grad(lambda h0, xs: gnp.sum(f(p, h0, xs)[1] ** 2), argnums=(0, 1))
    for batch in (3, 11):
        h0, xs = r.standard_normal((batch, 5)), r.standard_normal((4, batch, 4))
        h, hs = f(p, h0, xs)
        wh, whs = np_scan(lambda h, x: (np.tanh(x @ p["Wx"] + h @ p["Wh"] + p["b"]),) * 2, h0, xs)
        np.testing.assert_allclose(h, wh, rtol=VALUE_RTOL)
        np.testing.assert_allclose(hs, whs, rtol=VALUE_RTOL)
        ref = lambda h0, xs: float(np.sum(np_scan(   # noqa: E731
            lambda h, x: (np.tanh(x @ p["Wx"] + h @ p["Wh"] + p["b"]),) * 2, h0, xs)[1] ** 2))
        gh0, gxs = g(h0, xs)
        assert_fd_close(gh0, fd_grad(ref, [h0, xs], 0))
        want, v = directional_fd(ref, [h0, xs], 1)
        assert float(np.sum(gxs * v)) == pytest.approx(want, rel=FD_RTOL, abs=FD_ATOL)


# ----------------------------------------------------------------------------- semantics table
# Each case: (name, step(m, c, x) written against an array module m, init, xs, scan keywords).
# The step may close over W (a differentiable parameter).  The loss used for gradients
# is sum of squares of every float leaf of (carry, ys).
R = np.random.default_rng(11)
W0 = R.standard_normal((3, 3)) * 0.4
C3 = R.standard_normal(3)
X53 = R.standard_normal((5, 3))


def _rnn_step(m, W):
    return lambda c, x: (m.tanh(c @ W + x),) * 2


SEMANTICS = [
    ("forward", lambda m, W: _rnn_step(m, W), C3, X53, {}),
    ("reverse", lambda m, W: _rnn_step(m, W), C3, X53, {"reverse": True}),
    ("length_one", lambda m, W: _rnn_step(m, W), C3, X53[:1], {}),
    ("length_only", lambda m, W: lambda c, _: (m.tanh(c @ W) + 0.5, m.sum(c)), C3, None, {"length": 5}),
    ("ys_none_and_x_ignored", lambda m, W: lambda c, x: (m.tanh(c @ W) + 0.25, None), C3, X53, {}),
    # a is passed through as-is; b is used twice; y holds the new carry itself, the
    # untouched carry and a constant
    ("carry_reuse", lambda m, W: lambda c, x: (lambda a, nb: ((a, nb), (nb, a, m.ones(2) * 3.0)))(
        c[0], m.tanh(c[1] @ W) * c[1] + x), (C3 * 0.5, C3), X53, {}),
    ("pytree_reverse", lambda m, W: lambda c, x: (
        {"h": m.tanh(c["h"] @ W + x["a"]), "s": c["s"] + m.sum(x["a"] * x["b"][0])},
        (c["h"] * x["b"][1], {"sq": c["s"] ** 2})),
     {"h": C3, "s": np.array(0.5)}, {"a": X53, "b": R.standard_normal((5, 2))}, {"reverse": True}),
    ("tuple_xs_mixed_shapes", lambda m, W: lambda c, x: (
        (m.tanh(c[0] @ W + x[0] @ x[1]), c[1] * m.sum(x[1])), c[0][:, None] * x[1][0]),
     (np.ones((4, 3)) * 0.2, np.array(1.1)), (R.standard_normal((7, 4, 2)), R.standard_normal((7, 2, 3)) * 0.5), {}),
]


def _float_leaves(t):
    if t is None:
        return []
    if isinstance(t, dict):
        return [v for k in sorted(t) for v in _float_leaves(t[k])]
    if isinstance(t, (tuple, list)):
        return [v for e in t for v in _float_leaves(e)]
    return [t]


def _sum_squares(m, out):
    total = 0.0
    for leaf in _float_leaves(out):
        total = total + m.sum(leaf ** 2)
    return total


def _assert_trees_close(got, want, **tol):
    gl, wl = _float_leaves(got), _float_leaves(want)
    assert len(gl) == len(wl)
    for g, w in zip(gl, wl):
        assert np.shape(g) == np.shape(w)
        np.testing.assert_allclose(g, w, **tol)


@backends
@pytest.mark.parametrize("name,step,init,xs,kw", SEMANTICS, ids=[c[0] for c in SEMANTICS])
def test_scan_semantics(name, step, init, xs, kw):
    """(carry, ys) against the numpy loop; the gradient of the sum of squares of every
    output with respect to the closed-over W, the init carry's first leaf and xs' first
    leaf, against finite differences of the numpy loop (one compiled value_and_grad)."""
    def loss(W, i, x=None):
        out = lax.scan(step(gnp, W), _put(init, i), _put(xs, x), **kw)
        return _sum_squares(gnp, out), out

    def ref(W, init_leaf, xs_leaf=None):
        return float(_sum_squares(np, np_scan(step(np, W), _put(init, init_leaf), _put(xs, xs_leaf), **kw)))
    args = [W0, _float_leaves(init)[0]] + ([] if xs is None else [_float_leaves(xs)[0]])
    (_, got), grads = gradc.value_and_grad(loss, argnums=tuple(range(len(args))), has_aux=True)(*args)
    want = np_scan(step(np, W0), init, xs, **kw)
    _assert_trees_close(got, want, rtol=VALUE_RTOL, atol=1e-14)
    if name.startswith("ys_none"):
        assert got[1] is None
    for i, g in enumerate(grads):
        assert_fd_close(g, fd_grad(ref, args, i), f"{name}: d/d arg {i}")


def _put(tree, leaf):
    """``tree`` with its first float leaf (in _float_leaves' order) replaced by ``leaf``."""
    if tree is None:
        return None
    done = [False]

    def go(t):
        if isinstance(t, dict):
            return {k: go(t[k]) for k in sorted(t)}
        if isinstance(t, tuple):
            return tuple(go(e) for e in t)
        if done[0]:
            return t
        done[0] = True
        return leaf
    return go(tree)


@backends
def test_length_zero_returns_the_init_carry():
    c, _ = gradc.jit(lambda c, xs: lax.scan(lambda c, x: (c * 2.0 + x, c), c, xs))(C3, np.zeros((0, 3)))
    np.testing.assert_array_equal(c, C3)
    c, _ = gradc.jit(lambda c: lax.scan(lambda c, _: (c * 2.0, c), c, None, length=0))(C3)
    np.testing.assert_array_equal(c, C3)
    g = gradc.grad(lambda c: gnp.sum(lax.scan(lambda c, _: (c * 2.0, c), c, None, length=0)[0] ** 2))(C3)
    np.testing.assert_allclose(g, 2 * C3, rtol=1e-15)


@backends
def test_length_zero_stacks_no_ys():
    _, ys = gradc.jit(lambda c, xs: lax.scan(lambda c, x: (c * 2.0 + x, (c, x[:2])), c, xs))(C3, np.zeros((0, 3)))
    assert ys is not None and ys[0].shape == (0, 3) and ys[1].shape == (0, 2)
    _, ys = gradc.jit(lambda c: lax.scan(lambda c, _: (c, c * 2.0), c, None, length=0))(C3)
    assert ys is not None and ys.shape == (0, 3)


@backends
def test_an_int_counter_beside_float_carries():
    """An int step counter in the carry stays int and counts the steps; the float carry,
    scaled by the counter each step, differentiates through it (the counter has no
    gradient of its own)."""
    def f(W, xs):
        def step(c, x):
            n, h = c
            h = gnp.tanh(h @ W + x) * (n + 1)
            return (n + 1, h), n
        return lax.scan(step, (np.array(0, np.int64), gnp.zeros(3)), xs)

    def ref(W, xs):
        def step(c, x):
            n, h = c
            return (n + 1, np.tanh(h @ W + x) * (n + 1)), n
        return np_scan(step, (0, np.zeros(3)), xs)
    def loss(W):
        out = f(W, X53)
        return gnp.sum(out[0][1] ** 2), out
    (_, ((n, h), ns)), g = gradc.value_and_grad(loss, has_aux=True)(W0 * 0.3)
    (wn, wh), wns = ref(W0 * 0.3, X53)
    assert np.asarray(n).dtype.kind == "i" and int(n) == 5 and np.asarray(ns).dtype.kind == "i"
    np.testing.assert_array_equal(ns, np.arange(5))
    np.testing.assert_allclose(h, wh, rtol=VALUE_RTOL)
    assert_fd_close(g, fd_grad(lambda W: float(np.sum(ref(W, X53)[0][1] ** 2)), [W0 * 0.3], 0))


# ----------------------------------------------------------------------------- which gradient, which output
def _small_model(m, W, h0, xs, use):
    scan = lax.scan if m is gnp else np_scan
    h, hs = scan(lambda h, x: (m.tanh(h @ W + x) * 1.5, m.sin(h) * x), h0, xs)
    parts = {"ys": m.sum(hs ** 2), "carry": m.sum(h ** 3), "both": m.sum(hs ** 2) + m.sum(h ** 3)}
    return parts[use]


@pytest.mark.usefixtures("core_backend")      # numpy and llvm: C renders the same loop IR as llvm,
@pytest.mark.parametrize("use,argnums", [      # and the tests above run it; this keeps the file fast
    ("ys", (0, 1, 2)), ("carry", (0, 1, 2)), ("both", 0), ("both", 1), ("both", 2)])
def test_gradient_with_respect_to_each_input_and_output(use, argnums):
    """d/d closed-over W, d/d init carry, d/d xs, and all at once, of a loss reading only
    the ys, only the final carry, or both (both, all at once: test_scan_semantics)."""
    r = np.random.default_rng(3)
    W, h0, xs = r.standard_normal((4, 4)) * 0.4, r.standard_normal((2, 4)), r.standard_normal((6, 2, 4))
    got = gradc.grad(lambda W, h0, xs: _small_model(gnp, W, h0, xs, use), argnums=argnums)(W, h0, xs)
    ref = lambda W, h0, xs: float(_small_model(np, W, h0, xs, use))   # noqa: E731
    for i, g in zip(argnums if isinstance(argnums, tuple) else (argnums,),
                    got if isinstance(argnums, tuple) else (got,)):
        assert_fd_close(g, fd_grad(ref, [W, h0, xs], i), f"d/d arg {i} of {use}")


# ----------------------------------------------------------------------------- compositions
def _nested(m, W, xs):
    """A scan over 4 outer steps whose step scans 3 inner steps over the rows of x."""
    scan = lax.scan if m is gnp else np_scan

    def outer(c, x):
        inner_c, inner_ys = scan(lambda d, row: (m.tanh(d @ W + row + c), m.sum(d * row)), c * 0.5, x)
        return inner_c, inner_ys
    return scan(outer, m.zeros(3) + 0.1, xs)


@backends
def test_nested_scans():
    xs = np.random.default_rng(4).standard_normal((4, 3, 3))

    def loss(W, xs):
        c, ys = _nested(gnp, W, xs)
        return gnp.sum(ys ** 2) + gnp.sum(c), (c, ys)
    (_, (c, ys)), (gW, gxs) = gradc.value_and_grad(loss, argnums=(0, 1), has_aux=True)(W0, xs)
    wc, wys = _nested(np, W0, xs)
    np.testing.assert_allclose(c, wc, rtol=VALUE_RTOL)
    np.testing.assert_allclose(ys, wys, rtol=VALUE_RTOL)
    assert ys.shape == (4, 3)
    ref = lambda W, xs: float(np.sum(_nested(np, W, xs)[1] ** 2) + np.sum(_nested(np, W, xs)[0]))  # noqa: E731
    assert_fd_close(gW, fd_grad(ref, [W0, xs], 0))
    assert_fd_close(gxs, fd_grad(ref, [W0, xs], 1))


def _scalar_model(m, w, xs):
    """A scalar recurrence c <- sin(w c) + x with a smooth readout (for higher orders)."""
    scan = lax.scan if m is gnp else np_scan
    c, ys = scan(lambda c, x: (m.sin(w * c) + x, c * c), m.zeros(()) + 0.3, xs)
    return m.sum(ys) + c


XS6 = np.random.default_rng(5).standard_normal(6) * 0.5


@backends
def test_second_derivative_grad_of_grad():
    """grad(grad(f)) at w against the second central difference of the numpy loop:
    h = 1e-4 gives truncation h^2 |f''''| / 12 ~ 1e-9 and rounding ~ eps |f| / h^2 ~ 1e-8
    on this O(1) model, so 1e-6 relative is three orders of margin."""
    w, h = 0.7, 1e-4
    d2 = gradc.grad(gradc.grad(lambda w: _scalar_model(gnp, w, XS6)))(w)
    f = lambda w: float(_scalar_model(np, w, XS6))   # noqa: E731
    want = (f(w + h) - 2 * f(w) + f(w - h)) / h ** 2
    assert float(d2) == pytest.approx(want, rel=1e-6, abs=1e-6)


def _vector_model(m, w, xs):
    scan = lax.scan if m is gnp else np_scan
    c, ys = scan(lambda c, x: (m.tanh(c * w + x), m.sum(c * w)), m.zeros(3) + 0.2, xs)
    return m.sum(ys ** 2) + m.sum(c * c)


def _fd_hessian(f, w, h=1e-4):
    """Central second differences (error as in test_second_derivative_grad_of_grad)."""
    n = w.size
    H = np.zeros((n, n))
    E = np.eye(n) * h
    for a in range(n):
        for b in range(n):
            H[a, b] = (f(w + E[a] + E[b]) - f(w + E[a] - E[b]) - f(w - E[a] + E[b]) + f(w - E[a] - E[b])) / (4 * h * h)
    return H


@backends
def test_hessian_hvp_and_jvp_of_a_scan_model():
    """gradc.hessian and gradc.hvp of a scan model against second differences; gradc.jvp
    of the (carry, ys) against a central difference along the tangent."""
    r = np.random.default_rng(8)
    w, v, xs = r.standard_normal(3) * 0.5, r.standard_normal(3), r.standard_normal((5, 3))
    f = lambda w: float(_vector_model(np, w, xs))   # noqa: E731
    H = _fd_hessian(f, w)
    np.testing.assert_allclose(gradc.hessian(lambda w: _vector_model(gnp, w, xs))(w), H, rtol=1e-6, atol=1e-6)
    hv = gradc.hvp(lambda w: _vector_model(gnp, w, xs), (w,), (v,))
    np.testing.assert_allclose(hv, H @ v, rtol=1e-6, atol=1e-6)

    def both(m):
        scan = lax.scan if m is gnp else np_scan
        return lambda w, xs: scan(lambda c, x: (m.tanh(c * w + x), m.sin(c) * w), m.zeros(3) + 0.2, xs)
    tx = r.standard_normal(xs.shape)
    out, tan = gradc.jvp(both(gnp), (w, xs), (v, tx))
    want_out = both(np)(w, xs)
    _assert_trees_close(out, want_out, rtol=VALUE_RTOL)
    want_tan = [fd_jvp(lambda w, xs, j=j: both(np)(w, xs)[j], [w, xs], [0, 1], [v, tx]) for j in (0, 1)]
    _assert_trees_close(tan, tuple(want_tan), rtol=FD_RTOL, atol=FD_ATOL)


@backends
def test_per_example_gradients_vmap_of_grad():
    """vmap(grad(loss)) where loss scans one example's sequence: each example's gradient
    against BPTT on that example alone."""
    p, _, xs, cy, cc = rnn_data(9, 6, (5,), 3, 4)
    h0 = np.zeros(4)
    xs_b, cy_b = np.swapaxes(xs, 0, 1), np.swapaxes(cy, 0, 1)     # (examples, steps, ...)

    def loss(p, x, c_y, c_c):
        return rnn_loss(gnp, p, h0, x, c_y, c_c)
    g = gradc.vmap(gradc.grad(loss), in_axes=(None, 0, 0, 0))(p, xs_b, cy_b, cc)
    for e in range(5):
        want, _, _ = rnn_bptt(p, h0, xs_b[e], cy_b[e], cc[e])
        for k in want:
            np.testing.assert_allclose(g[k][e], want[k], rtol=1e-9, atol=1e-12, err_msg=f"{k}, example {e}")


@backends
def test_fori_loop_with_a_traced_body_and_lax_map():
    """fori_loop whose body uses the traced index and a traced parameter; lax.map of a
    function of each row; both with their gradients against finite differences."""
    def f(m, w):
        val = m.zeros(3) + 0.5
        for i in range(4):
            val = m.sin(val * w) + 0.1 * i
        return m.sum(val ** 2)
    w = np.array([0.3, -0.8, 1.2])
    g_fori = lambda w: lax.fori_loop(0, 4, lambda i, v: gnp.sin(v * w) + 0.1 * i, gnp.zeros(3) + 0.5)  # noqa: E731
    value, g = gradc.value_and_grad(lambda w: gnp.sum(g_fori(w) ** 2))(w)
    np.testing.assert_allclose(value, f(np, w), rtol=VALUE_RTOL)
    assert_fd_close(g, fd_grad(lambda w: f(np, w), [w], 0))

    xs = np.random.default_rng(2).standard_normal((7, 3))
    mapped = lambda w, xs: lax.map(lambda x: gnp.sum(gnp.tanh(x * w)), xs)   # noqa: E731
    (_, ys), gm = gradc.value_and_grad(lambda w, xs: (lambda ys: (gnp.sum(ys ** 2), ys))(mapped(w, xs)),
                                       has_aux=True)(w, xs)
    np.testing.assert_allclose(ys, np.tanh(xs * w).sum(1), rtol=VALUE_RTOL)
    assert_fd_close(gm, fd_grad(lambda w: float(np.sum(np.tanh(xs * w).sum(1) ** 2)), [w], 0))


# ----------------------------------------------------------------------------- threads
@pytest.mark.parametrize("threads", ["1", "2"])
def test_threads_agree_with_numpy(threads, every_backend, monkeypatch):
    """Batch 2048, hidden 64, 9 steps (nests large enough to split over threads),
    compiled with GRADC_NUM_THREADS=1 and 2 (read when a kernel compiles): value and
    gradients against BPTT at 1e-9, so the two thread counts agree with each other to
    that as well (a split reorders sums: agreement to rounding, not bits)."""
    if every_backend == "numpy":
        pytest.skip("the numpy evaluator runs on one thread")
    monkeypatch.setenv("GRADC_NUM_THREADS", threads)
    p, h0, xs, cy, cc = rnn_data(12, 9, (2048,), 16, 64)
    value, (gp, gh0) = gradc.value_and_grad(lambda p, h0: rnn_loss(gnp, p, h0, xs, cy, cc), argnums=(0, 1))(p, h0)
    np.testing.assert_allclose(value, rnn_loss(np, p, h0, xs, cy, cc), rtol=VALUE_RTOL)
    wp, wh0, _ = rnn_bptt(p, h0, xs, cy, cc)
    for got, want in [(gp["Wx"], wp["Wx"]), (gp["Wh"], wp["Wh"]), (gp["b"], wp["b"]), (gh0, wh0)]:
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-11)


# ----------------------------------------------------------------------------- JAX
JAX_CASES = [
    ("forward", {}),
    ("reverse", {"reverse": True}),
]


@pytest.mark.parametrize("name,kw", JAX_CASES, ids=[c[0] for c in JAX_CASES])
def test_against_jax_scan(name, kw):
    """Value and gradients (params dict, init, xs) of a pytree-carry RNN against
    jax.lax.scan with jax.grad in float64."""
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    def model(m, scan):
        def loss(p, init, xs):
            def step(c, x):
                h = m.tanh(x @ p["Wx"] + c["h"] @ p["Wh"] + p["b"])
                return {"h": h, "acc": c["acc"] + m.sum(h * h, axis=-1)}, (h[:, :2], m.sum(x, axis=-1))
            c, (ys, s) = scan(step, init, xs, **kw)
            ramp = np.arange(1.0, 8.0)      # weights each step's ys differently: their order matters
            return m.sum(ys ** 3 * ramp[:, None, None]) + m.sum(c["acc"]) + m.sum((m.sin(s) * ramp[:, None]) @ c["h"][:, :1])
        return loss
    r = np.random.default_rng(13)
    p = rnn_params(r, 5, 8)
    init = {"h": r.standard_normal((4, 8)) * 0.3, "acc": np.zeros(4)}
    xs = r.standard_normal((7, 4, 5))
    value, grads = gradc.value_and_grad(model(gnp, lax.scan), argnums=(0, 1, 2))(p, init, xs)
    j_value, j_grads = jax.value_and_grad(model(jnp, jax.lax.scan), argnums=(0, 1, 2))(p, init, xs)
    np.testing.assert_allclose(value, float(j_value), rtol=VALUE_RTOL)
    _assert_trees_close(grads, jax.tree_util.tree_map(np.asarray, j_grads), rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------- errors
def _raises_gradc(fn, fragment):
    with pytest.raises(gradc.GradcError) as info:
        fn()
    assert fragment in str(info.value).lower(), str(info.value)


def test_xs_leaves_with_different_leading_sizes_are_refused():
    xs = {"a": np.zeros((5, 3)), "b": np.zeros((4, 3))}
    _raises_gradc(lambda: gradc.jit(lambda xs: lax.scan(lambda c, x: (c + x["a"] + x["b"], c), gnp.zeros(3), xs))(xs),
                  "leading")


def test_length_disagreeing_with_xs_is_refused():
    _raises_gradc(lambda: gradc.jit(lambda xs: lax.scan(lambda c, x: (c + x, c), gnp.zeros(3), xs, length=4))(X53),
                  "length")


def test_a_carry_whose_shape_changes_is_refused():
    # (3,) + (2, 3) broadcasts to (2, 3): the carry's shape changes after one step
    _raises_gradc(lambda: gradc.jit(lambda xs: lax.scan(lambda c, x: (c + x, None), gnp.zeros(3), xs))(
        np.zeros((4, 2, 3))), "carry")


def test_a_carry_whose_dtype_changes_is_refused():
    # an int carry plus a float x becomes a float carry
    _raises_gradc(lambda: gradc.jit(lambda xs: lax.scan(lambda c, x: (c + x, None), np.zeros(3, np.int64), xs))(
        np.ones((4, 3))), "carry")


def test_a_carry_whose_structure_changes_is_refused():
    _raises_gradc(lambda: gradc.jit(lambda xs: lax.scan(lambda c, x: ((c, c), None), gnp.zeros(3), xs))(X53),
                  "carry")
