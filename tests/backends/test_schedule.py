"""schedule.decompose and schedule(): logsumexp's adjoint reuses its exponentials.

The softmax in logsumexp's adjoint, exp(x - logsumexp(x)), is computed as
exp(x - max) * (1 / sum) from the exponentials the logsumexp itself sums, stored once
(schedule._materialize_shared_softmax): one exp per element instead of two.

Oracle: numpy's exp(x - lse) with lse from the stable formula (max-shifted), in
float64.  Tolerance: both sides are a correctly rounded-ish exp (gradc's vector math:
a few ulp) of an argument whose rounding differs by about |x| eps, and a product by a
reciprocal (2 more roundings): 64 eps relative to the softmax's scale of 1 covers
|x| <= 10 with room (float64 eps 2.2e-16, float32 1.2e-7).
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp


def _softmax(x, axes):
    m = np.max(x, axis=axes, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lse = m + np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True))
        return np.exp(x - lse)


def _lowered(fun, *args, threads, monkeypatch):
    monkeypatch.setenv("GRADC_NUM_THREADS", str(threads))
    return gradc.value_and_grad(fun, backend="llvm").lower(*args)


def test_the_softmax_cross_entropy_gradient_calls_exp_once_per_element(monkeypatch):
    def loss(W, X, labels):
        S = X @ W
        return gnp.mean(gnp.logsumexp(S, axis=1) - gnp.take_along_axis(S, labels[:, None], axis=1)[:, 0])
    r = np.random.default_rng(0)
    X, W, labels = r.standard_normal((300, 20)), r.standard_normal((20, 10)), r.integers(0, 10, 300)
    text = _lowered(loss, W, X, labels, threads=1, monkeypatch=monkeypatch).loop_ir()
    assert len(re.findall(r"call math\.exp\(", text)) == 1, text


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape,axis,keepdims", [((700, 1000), 1, False), ((1000, 700), 0, True),
                                                 ((30, 200, 120), (0, 2), False), ((40, 9, 2000), 1, True)])
def test_logsumexp_gradient_matches_numpy_above_the_thread_split(shape, axis, keepdims, threads, dtype, monkeypatch):
    r = np.random.default_rng(len(shape) + shape[0])
    x = (3 * r.standard_normal(shape)).astype(dtype)
    g = r.standard_normal(np.sum(np.zeros(shape), axis=axis, keepdims=keepdims).shape).astype(dtype)

    def f(x):
        return gnp.sum(gnp.logsumexp(x, axis=axis, keepdims=keepdims) * g)
    monkeypatch.setenv("GRADC_NUM_THREADS", str(threads))
    value, grad = gradc.value_and_grad(f)(x)
    axes = axis if isinstance(axis, tuple) else (axis,)
    x64 = x.astype(np.float64)
    gk = g.astype(np.float64) if keepdims else np.expand_dims(g.astype(np.float64), axes)
    expected = gk * _softmax(x64, axes)
    assert grad.dtype == dtype
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(grad, expected, rtol=0, atol=64 * eps * np.max(np.abs(gk)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rows_with_infinities_give_numpys_nans_and_zeros(dtype):
    x = np.array([[1.0, 2.0, 3.0], [-np.inf, -np.inf, -np.inf], [0.0, np.inf, 1.0], [-np.inf, 0.0, 5.0],
                  [np.nan, 1.0, 2.0]], dtype)
    grad = gradc.grad(lambda x: gnp.sum(gnp.logsumexp(x, axis=1)))(x)
    expected = _softmax(x.astype(np.float64), (1,))
    np.testing.assert_array_equal(np.isnan(grad), np.isnan(expected))
    ok = ~np.isnan(expected)
    np.testing.assert_allclose(grad[ok], expected[ok], rtol=0, atol=64 * np.finfo(dtype).eps)


def test_finite_differences_of_a_softmax_cross_entropy():
    r = np.random.default_rng(5)
    X, W, labels = r.standard_normal((257, 13)), r.standard_normal((13, 7)), r.integers(0, 7, 257)

    def loss_np(W):
        S = X @ W
        m = S.max(axis=1, keepdims=True)
        lse = (m + np.log(np.exp(S - m).sum(axis=1, keepdims=True)))[:, 0]
        return np.mean(lse - S[np.arange(len(S)), labels])

    def loss(W):
        S = X @ W
        return gnp.mean(gnp.logsumexp(S, axis=1) - gnp.take_along_axis(S, labels[:, None], axis=1)[:, 0])
    grad = gradc.grad(loss)(W)
    h = 1e-6   # central differences: error O(h^2) * |f'''| ~ 1e-12, rounding eps / h ~ 2e-10
    fd = np.zeros_like(W)
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            e = np.zeros_like(W)
            e[i, j] = h
            fd[i, j] = (loss_np(W + e) - loss_np(W - e)) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=0, atol=1e-8)


def test_math_shared_by_the_forward_and_the_backward_is_computed_once(monkeypatch):
    """gelu's sigmoid (after the 1 + tanh rewrite) feeds the layer's activation, stored for
    the next product, and the backward pass's derivative, in a later nest: it is stored
    where the forward computes it, one vector-math call per element instead of two.
    Oracle for the gradient: numpy by hand (gradc.bench_sweep's MLP, checked there
    against central differences); tolerance as bench_sweep's float64 check."""
    from gradc import bench_sweep
    monkeypatch.setenv("GRADC_NUM_THREADS", "1")
    cfg = bench_sweep.Config("mlp", 2, 64, "gelu")
    args = bench_sweep.make_args(cfg, "float64")
    f = gradc.value_and_grad(bench_sweep.gradc_model(cfg), argnums=cfg.argnums)
    text = f.lower(*args).loop_ir()
    calls = re.findall(r"call math\.(sigmoid|tanh)\(", text)
    assert len(calls) == 1, calls
    check = bench_sweep.check_gradc(cfg, "float64")
    assert check["ok"], check


def test_math_of_one_pass_is_not_stored(monkeypatch):
    """M1's tanh, exp and log1p feed its sum and its gradient in the same pass over x:
    nothing is stored but the gradient."""
    from gradc.bench_models import MODELS, make_data
    from gradc.backends.schedule import schedule
    monkeypatch.setenv("GRADC_NUM_THREADS", "1")
    m = MODELS["M1"]
    s = schedule(gradc.value_and_grad(m.gradc).lower(*make_data("M1", "medium", "float64")).graph)
    assert {s.graph[r]["op"] for r in s.roots} <= {"sum", "add", "mul", "sub", "neg", "div"}, \
        {s.graph[r]["op"] for r in s.roots}
    assert len(s.nests) == 1


@pytest.mark.parametrize("threads", [1, 2])
def test_costly_pieces_of_a_concatenation_are_computed_once(threads, monkeypatch):
    """A GRU step's gates come from one product split in three; their gradients are
    concatenated back (unslices of three pieces, each a chain through the steps).  A
    vector loop computes every operand of a select, so each costly piece is a buffer of
    its own, not computed over the whole concatenation (MAX_PIECE_COST).  Values and
    gradients against the numpy evaluator, at a batch that splits over threads."""
    from gradc.backends.schedule import MAX_PIECE_COST, _cost, schedule

    def gru(Wx, Wh, xs, y):
        h = gnp.zeros((xs.shape[0], Wh.shape[0]))
        for t in range(xs.shape[1]):
            zx, rx, nx = gnp.split(xs[:, t] @ Wx, 3, axis=-1)
            zh, rh, nh = gnp.split(h @ Wh, 3, axis=-1)
            z, r = gnp.sigmoid(zx + zh), gnp.sigmoid(rx + rh)
            h = (1 - z) * gnp.tanh(nx + r * nh) + z * h
        return gnp.mean((h - y) ** 2)

    rng = np.random.default_rng(4)
    Wx, Wh = rng.standard_normal((8, 96)) / 3, rng.standard_normal((32, 96)) / 6
    xs, y = rng.standard_normal((512, 6, 8)), rng.standard_normal((512, 32))
    lowered = _lowered(gru, Wx, Wh, xs, y, threads=threads, monkeypatch=monkeypatch)
    s = schedule(lowered.graph, threads=threads)
    g, roots = s.graph, {n for nest in s.nests for n in nest.roots}
    pieces = [a for n in g.nx.nodes if g[n]["op"] in ("concatenate", "unslice") for a in g[n]["args"]]
    assert pieces and all(a in roots or g[a]["op"] in ("input", "const") or _cost({a}, g, roots) <= MAX_PIECE_COST
                          for a in pieces)
    assert any(a in roots and g[a]["op"] != "matmul" for a in pieces), "no costly piece: tests nothing"
    got = gradc.value_and_grad(gru, argnums=(0, 1))(Wx, Wh, xs, y)
    want = gradc.value_and_grad(gru, argnums=(0, 1), backend="numpy")(Wx, Wh, xs, y)
    assert abs(got[0] - want[0]) <= 1e-12 * abs(want[0])
    for a, b in zip(got[1], want[1]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("backend", ["llvm", "c"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_product_reads_a_computed_value_transposed_in_place(backend, dtype):
    """exp(S).T @ D and D.T @ tanh(S).T store exp(S) / tanh(S) as computed and let the
    product read them transposed: no nest writes a transpose (a column at a time, 5x
    slower than the product itself at 2048 x 2048).  Oracle: numpy in float64; the
    tolerance is the products' rounding, k = 300 terms of size up to e * |D|."""
    rng = np.random.default_rng(3)
    S = rng.standard_normal((300, 260)).astype(dtype)
    D = rng.standard_normal((300, 7)).astype(dtype)

    def f(S, D):
        return gnp.exp(S).T @ D, D.T @ gnp.tanh(S), gnp.tanh(S).T @ gnp.exp(S)

    low = gradc.jit(f, backend=backend).lower(S, D)
    assert "transpose" not in low.loop_nests()
    got = gradc.jit(f, backend=backend)(S, D)
    S64, D64 = S.astype(np.float64), D.astype(np.float64)
    want = (np.exp(S64).T @ D64, D64.T @ np.tanh(S64), np.tanh(S64).T @ np.exp(S64))
    eps = np.finfo(dtype).eps
    for g, w in zip(got, want):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, w, rtol=0, atol=300 * 8 * eps * np.abs(w).max() + 0)


@pytest.mark.parametrize("backend", ["llvm", "c"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", [(70, 45), (300, 260)])
def test_element_wise_nests_that_read_a_transpose_run_in_tiles(shape, threads, backend, monkeypatch):
    """A nest reading a matrix across (B.T, a computed value's transpose) runs in square
    tiles (schedule._tile), partial tiles at both edges, split over threads above the
    split's size.  Oracle: numpy; the sums and products are exact in both (the same
    single rounding per element), exp within its vector math's few ulp."""
    monkeypatch.setenv("GRADC_NUM_THREADS", str(threads))
    m, n = shape
    rng = np.random.default_rng(5)
    A = rng.standard_normal((m, n))
    B = rng.standard_normal((n, m))
    C = rng.standard_normal((m, n)).astype(np.float32)

    def f(A, B, C):
        return A + B.T, (A * 2.0 + C).T * B, gnp.exp(B).T - A

    low = gradc.jit(f, backend=backend).lower(A, B, C)
    assert "tile0" in low.loop_ir()
    got = gradc.jit(f, backend=backend)(A, B, C)
    np.testing.assert_array_equal(got[0], A + B.T)
    np.testing.assert_array_equal(got[1], (A * 2.0 + C).T * B)
    # (exp's error is relative to exp(B), the subtraction's rounding to |A| at most as
    # large: not to the difference, which cancels)
    bound = 4 * np.finfo(np.float64).eps * (np.exp(B).T + np.abs(A))
    assert np.all(np.abs(got[2] - (np.exp(B).T - A)) <= bound)


@pytest.mark.parametrize("backend", ["llvm", "c"])
def test_an_empty_part_of_a_concatenation_is_never_read(backend):
    """x[2:] of two rows beside a gathered part (fuzz seed 3400230): the empty part's
    value was computed beside the others before the select, with an index clamped to 0
    of an empty range, and its gather read row 2 of 2 (IndexError, or a read past the
    buffer).  Oracle: numpy."""
    y = np.array([[0.0, 2.0, -1.0, -2.0], [-1.0, 1.0, -1.0, -2.0]])

    def f(y):
        p = gnp.take_along_axis(y, gnp.expand_dims(gnp.argmax(y, axis=1), 1), 1)
        return gnp.concatenate([p[2:], p * 2.0, p[:0]], axis=0)
    p = np.take_along_axis(y, np.argmax(y, axis=1)[:, None], 1)
    np.testing.assert_array_equal(gradc.jit(f, backend=backend)(y), np.concatenate([p[2:], p * 2.0, p[:0]]))
    g = gradc.grad(lambda y: gnp.sum(f(y) ** 2), backend=backend)(y)
    np.testing.assert_array_equal(g, np.where(y == p, 8.0 * p, 0.0))
