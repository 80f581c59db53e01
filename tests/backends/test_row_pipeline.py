"""Row pipelines (schedule.RowPipeline): a narrow product Z = X @ W, the row-local work
on Z and the gradient's X^T G run block by block over X's rows, so X is read once.

Oracles: closed-form gradients in float64 numpy (softmax regression, a narrow linear
layer with a squared loss, logistic regression) and central finite differences.

Tolerances.  Every entry of X^T G sums n products; any summation order of them is
within n eps sum_r |X_rk G_rj| of the exact value, and G's entries carry a few ulps of
their own (exp, log, a division: at most 8 eps relative), so an entry may differ from
the float64 reference by (n + 8) eps (|X|^T |G|), taken twice for the two computations
compared: ``_bound``.  The loss is a mean of n terms each within a few ulps: the same
bound with |terms| in place of |X|^T |G|.
"""
import re

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
from gradc.backends import llvm_jit
from gradc.backends.schedule import schedule
from gradc.roofline import gradc_threads

from gradc_helpers import FD_ATOL, FD_RTOL, SKINNY_FORMS, fd_grad, skinny_form


def softmax_ce(W, X, labels):
    S = X @ W
    return gnp.mean(gnp.logsumexp(S, axis=1) - gnp.take_along_axis(S, labels[:, None], axis=1)[:, 0])


def softmax_ce_ref(W, X, labels):
    S = X.astype(np.float64) @ W.astype(np.float64)
    m = S.max(axis=1, keepdims=True)
    E = np.exp(S - m)
    lse = np.log(E.sum(axis=1)) + m[:, 0]
    rows = np.arange(len(labels))
    terms = lse - S[rows, labels]
    P = E / E.sum(axis=1, keepdims=True)
    P[rows, labels] -= 1.0
    P /= len(labels)
    return terms, X.astype(np.float64).T @ P, P


def linear_mse(W, b, X, Y):
    return gnp.mean((X @ W + b - Y) ** 2)


def linear_mse_ref(W, b, X, Y):
    X64 = X.astype(np.float64)
    D = X64 @ W.astype(np.float64) + b.astype(np.float64) - Y.astype(np.float64)
    G = 2.0 * D / D.size
    return (D * D).ravel(), X64.T @ G, G


def logistic(W, X, y):
    return gnp.mean(gnp.log1p(gnp.exp(-y * (X @ W)[:, 0])))


def logistic_ref(W, X, y):
    X64, y64 = X.astype(np.float64), y.astype(np.float64)
    margin = y64 * (X64 @ W.astype(np.float64))[:, 0]
    G = (-y64 / (1.0 + np.exp(margin)) / len(y))[:, None]
    return np.log1p(np.exp(-margin)), X64.T @ G, G


def _bound(X, G, n, dtype):
    eps = np.finfo(dtype).eps
    return 2 * (n + 8) * eps * (np.abs(X.astype(np.float64)).T @ np.abs(G))


def _data(kind, n, d, c, dtype, seed=0):
    rng = np.random.default_rng(seed + 1000 * n + 10 * d + c)
    X = rng.standard_normal((n, d)).astype(dtype)
    W = (rng.standard_normal((d, c)) / np.sqrt(max(d, 1))).astype(dtype)
    if kind == "softmax":
        return (W, X, rng.integers(0, c, n))
    if kind == "linear":
        return (W, (0.1 * rng.standard_normal(c)).astype(dtype), X, rng.standard_normal((n, c)).astype(dtype))
    return (W[:, :1], X, np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(dtype))


MODELS = {"softmax": (softmax_ce, softmax_ce_ref), "linear": (linear_mse, linear_mse_ref),
          "logistic": (logistic, logistic_ref)}


def _check(kind, n, d, c, dtype, threads, backend="llvm"):
    f, ref = MODELS[kind]
    args = _data(kind, n, d, c, dtype)
    X = args[-2] if kind != "logistic" else args[1]
    with gradc_threads(threads):
        vg = gradc.value_and_grad(f, argnums=0, backend=backend)
        value, gW = vg(*args)
    terms, gW_ref, G = ref(*args)
    assert gW.dtype == dtype and gW.shape == gW_ref.shape
    assert np.all(np.abs(gW - gW_ref) <= _bound(X, G, n, dtype)), np.max(np.abs(gW - gW_ref))
    eps = np.finfo(dtype).eps
    assert abs(float(value) - terms.mean()) <= 2 * (n + 8) * eps * np.abs(terms).mean()
    return vg, args, value, gW


@pytest.mark.parametrize("kind", ["softmax", "linear", "logistic"])
def test_the_schedule_finds_the_pipeline(kind):
    f, _ = MODELS[kind]
    lowered = gradc.value_and_grad(f, argnums=0, backend="llvm").lower(*_data(kind, 64, 16, 10, np.float64))
    s = schedule(lowered.graph, threads=2)
    assert len(s.pipelines) == 1
    p = s.pipelines[0]
    assert s.nests[p.first].roots == [p.head] and s.nests[p.last].roots == [p.tail]
    assert all(n.kind == "loop" for n in s.nests[p.first + 1:p.last])
    if not llvm_jit.init()["blas"].get("skinny_rows"):
        pytest.skip("gradc._callpath was built before gradc_skinny_rows (rebuild it): the nests run unpipelined")
    assert "row pipeline" in lowered.loop_ir() and "skinny_rows" in lowered.loop_ir()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_row_local_loops_over_the_classes_are_masked_vector_loops(dtype):
    """The softmax's loops over the 10 classes (loop_ir.Loop.narrow): one masked vector
    loop each, no scalar remainder calling exp one class at a time."""
    f, _ = MODELS["softmax"]
    lowered = gradc.value_and_grad(f, argnums=0, backend="llvm").lower(*_data("softmax", 64, 16, 10, dtype))
    if "row pipeline" not in lowered.loop_ir():
        pytest.skip("no row pipeline on this build (see test_the_schedule_finds_the_pipeline)")
    assert lowered.loop_ir().count("# narrow") >= 3, lowered.loop_ir()
    ir = lowered.llvm_ir()
    ty = "f64" if dtype == np.float64 else "f32"
    assert "llvm.masked.load" in ir
    assert re.search(rf"call <\d+ x (double|float)> @gradc_vm_exp_{ty}_v\d+", ir)
    assert not re.search(rf"call (double|float) @gradc_vm_exp_{ty}\(", ir), "a scalar exp remains"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("threads", [1, 2])
def test_large_softmax_regression_above_the_thread_split(threads, dtype):
    """200k x 64: 8 chunks of 25k rows, each 49 blocks of 512 rows."""
    _check("softmax", 200_000, 64, 10, dtype, threads)


@pytest.mark.parametrize("form", list(SKINNY_FORMS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("c", [2, 7, 10, 13])
def test_wide_rows_in_the_lane_filling_forms(c, dtype, form):
    """2003 x 515 on two threads (1M elements), the blocks' products in each form
    (gradc_helpers.SKINNY_FORMS): skinny_lanes.c's (AVX-512) with K = 515 in
    two panels of float64 W^T and 3 columns past its last vector, skinny_lanes_v3.c's
    (AVX2) with the columns in groups (13 = 7 + 6), and the tail's 515 columns in tiles,
    one vector and single columns."""
    with skinny_form(form):
        _check("softmax", 2003, 515, c, dtype, 2)


@pytest.mark.parametrize("kind", ["linear", "logistic"])
@pytest.mark.parametrize("threads", [1, 2])
def test_large_linear_layer_and_logistic_regression(kind, threads):
    _check(kind, 150_001, 48, 4, np.float64, threads)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n,d,c", [(1, 1, 1), (3, 5, 2), (17, 33, 3), (1001, 33, 10), (4099, 7, 16),
                                   (999, 13, 17), (2500, 40, 24), (50, 600, 5)])
@pytest.mark.parametrize("threads", [1, 2])
def test_small_and_odd_sizes(n, d, c, dtype, threads):
    """Ragged last blocks (1001 rows in blocks of 992), one row, one column; with 17 and
    24 classes the pipeline's blocks run only the softmax and its products run whole in
    BLAS (the narrow kernels stop at 16 columns; the class count is a size symbol,
    known only when the kernel runs)."""
    _check("softmax", n, d, c, dtype, threads)


def test_the_linear_layer_bias_gradient_is_summed_across_blocks_and_chunks():
    args = _data("linear", 120_000, 32, 6, np.float64)
    W, b, X, Y = args
    with gradc_threads(2):
        value, (gW, gb) = gradc.value_and_grad(linear_mse, argnums=(0, 1), backend="llvm")(*args)
    _, gW_ref, G = linear_mse_ref(*args)
    assert np.all(np.abs(gW - gW_ref) <= _bound(X, G, 120_000, np.float64))
    gb_ref = G.sum(axis=0)
    assert np.all(np.abs(gb - gb_ref) <= 2 * 120_008 * np.finfo(np.float64).eps * np.abs(G).sum(axis=0))


def test_two_threads_give_the_same_bits_every_call():
    args = _data("softmax", 200_000, 64, 10, np.float64)
    with gradc_threads(2):
        vg = gradc.value_and_grad(softmax_ce, argnums=0, backend="llvm")
        first = vg(*args)
        for _ in range(3):
            again = vg(*args)
            assert float(again[0]) == float(first[0]) and np.array_equal(again[1], first[1])


def test_finite_differences():
    args = _data("softmax", 9, 5, 3, np.float64)
    with gradc_threads(2):
        _, gW = gradc.value_and_grad(softmax_ce, argnums=0, backend="llvm")(*args)
    W, X, labels = args
    fd = fd_grad(lambda w: softmax_ce_ref(w, X, labels)[0].mean(), [W], 0)
    np.testing.assert_allclose(gW, fd, rtol=FD_RTOL, atol=FD_ATOL)   # (justified in gradc_helpers)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_c_backend_keeps_the_nests(dtype):
    """backend "c" has no narrow kernels: the nests run one after another, in the
    order the schedule chose, with the same results."""
    _check("softmax", 3001, 20, 10, dtype, 1, backend="c")
    _check("linear", 3001, 20, 4, dtype, 1, backend="c")


def test_a_gradient_that_needs_a_column_statistic_is_not_pipelined():
    """G = Z - Z.mean(axis=0) needs every row of Z before any row of G: no pipeline,
    and the nests still compute the right gradient."""
    def centered(W, X):
        Z = X @ W
        return gnp.sum((Z - gnp.mean(Z, axis=0)) ** 2)
    rng = np.random.default_rng(5)
    X, W = rng.standard_normal((5000, 12)), rng.standard_normal((12, 3))
    vg = gradc.value_and_grad(centered, argnums=0, backend="llvm")
    assert schedule(vg.lower(W, X).graph, threads=2).pipelines == []
    _, gW = vg(W, X)
    Z = X @ W
    G = 2.0 * (Z - Z.mean(axis=0))
    assert np.all(np.abs(gW - X.T @ G) <= _bound(X, G, 5000, np.float64))


def test_a_label_out_of_range_in_one_chunk_raises_and_negative_labels_count_from_the_end():
    """The gather of the labels runs inside the pipeline's blocks: a chunk's bounds
    check must reach the caller."""
    W, X, labels = _data("softmax", 100_000, 32, 10, np.float64)
    with gradc_threads(2):
        vg = gradc.value_and_grad(softmax_ce, argnums=0, backend="llvm")
        bad = labels.copy()
        bad[77_777] = 10
        with pytest.raises(IndexError, match="out of bounds"):
            vg(W, X, bad)
        bad[77_777] = -1
        value, gW = vg(W, X, bad)
    terms, gW_ref, G = softmax_ce_ref(W, X, np.where(bad < 0, bad + 10, bad))
    assert np.all(np.abs(gW - gW_ref) <= _bound(X, G, 100_000, np.float64))
    assert abs(float(value) - terms.mean()) <= 2 * 100_008 * np.finfo(np.float64).eps * np.abs(terms).mean()
