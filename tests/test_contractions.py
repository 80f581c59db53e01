"""Products at every rank: batched matmul with broadcasting batch axes, dot, inner, vdot,
tensordot and einsum, on every backend.

Each line of the table is checked against numpy's own function (values) and against
central finite differences of numpy's function (the gradient of sum(tanh(f(...))) with
respect to every operand), so neither oracle shares gradc's rules.  Tolerances: values
rtol 1e-12 (a few sums of at most ~10 terms of O(1)); finite differences as in
tests/gradc_helpers.py (FD_RTOL/FD_ATOL, justified there)."""
import re

import numpy as onp
import pytest

import gradc
import gradc.numpy as np
from gradc.errors import ShapeError

from gradc_helpers import FD_ATOL, FD_RTOL, fd_grad

BACKENDS = ["numpy", "llvm", "c"]

# (id, gradc function, numpy function, operand shapes)
TABLE = [
    ("matmul_batched", lambda a, b: a @ b, onp.matmul, [(2, 3, 4), (2, 4, 5)]),
    ("matmul_batch_broadcast", lambda a, b: a @ b, onp.matmul, [(3, 1, 2, 4), (2, 4, 3)]),
    ("matmul_stack_by_matrix", lambda a, b: a @ b, onp.matmul, [(2, 3, 4), (4, 5)]),
    ("matmul_matrix_by_stack", lambda a, b: a @ b, onp.matmul, [(3, 4), (2, 4, 5)]),
    ("matmul_stack_by_vector", lambda a, b: a @ b, onp.matmul, [(2, 3, 4), (4,)]),
    ("matmul_vector_by_stack", lambda a, b: a @ b, onp.matmul, [(3,), (2, 3, 4)]),
    ("attention_scores", lambda q, k: q @ np.swapaxes(k, -1, -2),
     lambda q, k: q @ onp.swapaxes(k, -1, -2), [(2, 2, 3, 4), (2, 2, 5, 4)]),
    ("dot_nd", np.dot, onp.dot, [(2, 3, 4), (3, 4, 2)]),
    ("inner_nd", np.inner, onp.inner, [(2, 3, 4), (5, 4)]),
    ("vdot", np.vdot, onp.vdot, [(2, 3, 4), (2, 3, 4)]),
    ("tensordot_int", lambda a, b: np.tensordot(a, b, 2), lambda a, b: onp.tensordot(a, b, 2),
     [(2, 3, 4), (3, 4, 5)]),
    ("tensordot_pairs", lambda a, b: np.tensordot(a, b, ([0, 2], [2, 0])),
     lambda a, b: onp.tensordot(a, b, ([0, 2], [2, 0])), [(2, 3, 4), (4, 5, 2)]),
] + [
    (f"einsum_{sub.replace(',', '_').replace('->', '_to_').replace('...', 'E')}",
     (lambda sub: lambda *a: np.einsum(sub, *a))(sub), (lambda sub: lambda *a: onp.einsum(sub, *a))(sub), shapes)
    for sub, shapes in [
        ("ij,jk->ik", [(3, 4), (4, 5)]), ("ij,jk", [(3, 4), (4, 5)]), ("ij->ji", [(3, 4)]),
        ("ii->i", [(4, 4)]), ("ii", [(4, 4)]), ("iij->j", [(3, 3, 2)]), ("ijk->", [(2, 3, 4)]),
        ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("bhqd,bhkd->bhqk", [(2, 3, 5, 4), (2, 3, 6, 4)]),
        ("i,i->", [(5,), (5,)]), ("i,j->ij", [(3,), (4,)]), ("...ij,...jk->...ik", [(2, 3, 4), (4, 5)]),
        ("ij,jk,kl->il", [(3, 4), (4, 5), (5, 2)]), ("abc,cd,bd->a", [(2, 3, 4), (4, 5), (3, 5)]),
        ("ij,ij->i", [(3, 4), (3, 4)]), ("bi,bj->ij", [(6, 3), (6, 4)]), ("i,ij,j", [(3,), (3, 4), (4,)]),
        ("abcd,dcba->", [(2, 3, 2, 3), (3, 2, 3, 2)]),
        ("btd,dk->btk", [(2, 3, 4), (4, 5)]), ("btd,btk->dk", [(2, 3, 4), (2, 3, 5)]),
        ("dbt,tbk->dk", [(4, 2, 3), (3, 2, 5)]), ("btd,kd->btk", [(2, 3, 4), (5, 4)]),
        ("blkc,kco->blo", [(2, 3, 2, 4), (2, 4, 5)]), ("bkc,kco->bo", [(3, 2, 4), (2, 4, 5)]),
        ("bij,ijkl->bkl", [(2, 3, 4), (3, 4, 2, 3)]), ("blck,kco->blo", [(2, 3, 4, 2), (2, 4, 5)]),
        ("bd,edh->beh", [(3, 4), (2, 4, 5)]), ("btd,dkh->bthk", [(2, 3, 4), (4, 2, 3)]),
        ("beh,eh->be", [(3, 2, 4), (2, 4)]), ("lkc,kco->lo", [(3, 2, 4), (2, 4, 5)]),
        ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]), ("...i,...i", [(2, 1, 4), (3, 4)]),
    ]
] + [
    ("matmul_rank4_rows", lambda a, b: a @ b, onp.matmul, [(2, 3, 2, 4), (4, 3)]),
    ("matmul_rows_through_a_transpose", lambda a, b: np.swapaxes(a, 0, 1) @ b,
     lambda a, b: onp.swapaxes(a, 0, 1) @ b, [(3, 2, 4), (4, 5)]),
    ("matmul_rows_through_a_slice", lambda a, b: a[:, ::2] @ b.T, lambda a, b: a[:, ::2] @ b.T, [(2, 5, 4), (3, 4)]),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", TABLE, ids=[c[0] for c in TABLE])
def test_products_against_numpy_and_finite_differences(case, backend):
    _, f, fnp, shapes = case
    rng = onp.random.default_rng(len(shapes) * 7 + sum(map(len, shapes)))
    xs = [rng.normal(size=s) for s in shapes]
    got = gradc.jit(f, backend=backend)(*xs)
    onp.testing.assert_allclose(got, fnp(*xs), rtol=1e-12, atol=1e-12)
    loss = lambda *a: np.sum(np.tanh(f(*a)))                     # noqa: E731
    loss_np = lambda *a: onp.sum(onp.tanh(fnp(*a)))            # noqa: E731
    grads = gradc.grad(loss, argnums=tuple(range(len(xs))), backend=backend)(*xs)
    for i, g in enumerate(grads):
        onp.testing.assert_allclose(g, fd_grad(loss_np, xs, i), rtol=FD_RTOL, atol=FD_ATOL)


@pytest.mark.parametrize("dtype", [onp.float32, onp.float64])
def test_batched_products_above_the_thread_split(dtype):
    """A (64, 8, 33, 16) @ (64, 8, 16, 33) product: one library call for the whole
    stack, its items spread over the threads (a nest of its own, no rank-5 buffer)."""
    rng = onp.random.default_rng(1)
    a, b = rng.normal(size=(64, 8, 33, 16)).astype(dtype), rng.normal(size=(64, 8, 16, 33)).astype(dtype)
    f = gradc.jit(lambda a, b: a @ b)
    got = f(a, b)
    assert got.dtype == dtype
    ref = a.astype(onp.float64) @ b.astype(onp.float64)
    scale = onp.abs(a).astype(onp.float64) @ onp.abs(b).astype(onp.float64)
    eps = 1e-13 if dtype == onp.float64 else 2e-6     # 16 terms: 16 eps relative to sum|a b|
    assert onp.all(onp.abs(got - ref) <= eps * scale)
    nests = f.lower(a, b).loop_nests()
    assert len(nests.splitlines()) == 1 and nests.startswith("nest 0: matmul over") and "%2=matmul" in nests, nests


ROWS_OF_ANY_RANK = [((64, 128, 64), (64, 48)), ((8, 16, 32, 64), (64, 10)), ((0, 7, 64), (64, 12)), ((3, 1, 64), (64, 5))]


@pytest.mark.parametrize("backend", ["llvm", "c"])
@pytest.mark.parametrize("dtype", [onp.float32, onp.float64])
@pytest.mark.parametrize("xs,ws", ROWS_OF_ANY_RANK)
def test_rows_of_any_rank_times_a_matrix_is_one_product(xs, ws, dtype, backend):
    """x @ W with x of rank 3 or 4 (a sequence model's layer), at sizes that split over
    threads: value_and_grad against numpy's closed form, and (native code) one library
    product for x @ W and one for its gradient with respect to W (contract: x's rows
    transposed times G), not a loop over the stack."""
    rng = onp.random.default_rng(sum(xs))
    x, W = rng.normal(size=xs).astype(dtype), (rng.normal(size=ws) / 8).astype(dtype)
    Y = rng.normal(size=xs[:-1] + ws[-1:]).astype(dtype)
    f = gradc.value_and_grad(lambda W, x, Y: np.sum((np.tanh(x @ W) - Y) ** 2), argnums=(0, 1), backend=backend)
    value, (gW, gx) = f(W, x, Y)
    X, W64 = x.astype(onp.float64), W.astype(onp.float64)
    H = onp.tanh(X @ W64)
    D = 2 * (H - Y) * (1 - H * H)
    rows = list(range(x.ndim - 1))
    eps = onp.finfo(dtype).eps      # sums of up to 64 x rows terms: a few hundred eps of sum|terms|
    tol = 512 * eps * (1 + onp.sqrt(max(X.size // xs[-1], 1)))
    assert abs(value - onp.sum((H - Y) ** 2)) <= tol * max(onp.sum((H - Y) ** 2), 1)
    for got, want in ((gW, onp.tensordot(X, D, axes=(rows, rows))), (gx, D @ W64.T)):
        assert got.dtype == dtype and got.shape == want.shape
        assert onp.max(onp.abs(got - want), initial=0) <= tol * max(onp.max(onp.abs(want), initial=0), 1)
    g = f.lower(W, x, Y).graph
    assert sorted(g[n]["op"] for n in g.nx.nodes if g[n]["op"] in ("matmul", "contract")) == \
        ["contract", "matmul", "matmul"]
    if backend == "llvm":   # x @ W, G @ W^T and x^T G, each one library call over every row
        lowered = f.lower(W, x, Y)
        calls = [line for line in lowered.loop_ir().splitlines() if "gemm(" in line]
        leading = [d for d in lowered.graph[lowered.graph.inputs[1]]["shape"][:-1] if isinstance(d, str)]
        sizes = [re.search(r"; m=(.*), n=(.*), k=(.*)\)$", line).groups() for line in calls]
        words = [[set(re.findall(r"\w+", e)) for e in (m, k)] for m, _n, k in sizes]
        assert len(calls) == 3 and all(any(set(leading) <= w for w in mk) for mk in words), calls


@pytest.mark.parametrize("backend", ["llvm", "c"])
@pytest.mark.parametrize("dtype", [onp.float32, onp.float64])
def test_convolution_windows_by_einsum_are_one_product(dtype, backend):
    """A 1-d convolution as a user writes it: the windows stacked, then
    einsum('blkc,kco->blo'), whose two contracted axes merge into one (fixed sizes), so
    the layer and its two gradients are three library products over every row, not a
    broadcast product; value_and_grad against numpy's closed form at a batch that
    splits over threads, then at another batch size."""
    K, C, O = 5, 16, 24
    rng = onp.random.default_rng(5)
    W = (rng.normal(size=(K, C, O)) / onp.sqrt(K * C)).astype(dtype)

    def loss(W, x, y):
        L = x.shape[1] - K + 1
        win = np.stack([x[:, i:i + L] for i in range(K)], axis=2)
        return np.sum((np.tanh(np.einsum("blkc,kco->blo", win, W)) - y) ** 2)

    f = gradc.value_and_grad(loss, argnums=(0, 1), backend=backend)
    for B in (96, 7):
        x = rng.normal(size=(B, 40, C)).astype(dtype)
        y = rng.normal(size=(B, 40 - K + 1, O)).astype(dtype)
        value, (gW, gx) = f(W, x, y)
        X, W64 = x.astype(onp.float64), W.astype(onp.float64)
        win = onp.stack([X[:, i:i + 36] for i in range(K)], axis=2)
        H = onp.tanh(onp.einsum("blkc,kco->blo", win, W64))
        D = 2 * (H - y) * (1 - H * H)
        dwin = onp.einsum("blo,kco->blkc", D, W64)
        want_gx = onp.zeros_like(X)
        for i in range(K):
            want_gx[:, i:i + 36] += dwin[:, :, i]
        eps = onp.finfo(dtype).eps       # sums of K*C = 80 terms, then of B*36 rows
        tol = 512 * eps * onp.sqrt(B * 36)
        assert abs(value - onp.sum((H - y) ** 2)) <= tol * onp.sum((H - y) ** 2)
        for got, want in ((gW, onp.einsum("blkc,blo->kco", win, D)), (gx, want_gx)):
            assert got.dtype == dtype
            assert onp.max(onp.abs(got - want)) <= tol * onp.max(onp.abs(want))
    g = f.lower(W, x, y).graph
    assert sorted(g[n]["op"] for n in g.nx.nodes if g[n]["op"] in ("matmul", "contract")) == \
        ["contract", "matmul", "matmul"]


STACKS = [((16, 4, 64, 16), (16, 4, 64, 16), True), ((3, 5, 7), (3, 9, 7), True), ((2, 3, 4, 5), (2, 3, 6, 5), False)]


@pytest.mark.parametrize("threads", ["1", "2", "3"])
@pytest.mark.parametrize("dtype", [onp.float32, onp.float64])
@pytest.mark.parametrize("qs,ks,causal", STACKS)
def test_attention_over_a_stack_of_heads(qs, ks, causal, dtype, threads, monkeypatch):
    """softmax(q k^T) v over a stack of heads (the batched products of multi-head
    attention, k read through its transpose): value_and_grad against numpy's closed form
    at 1, 2 and 3 threads, the same bits at every thread count (each item is one
    product), and on native code each product one library call over the stack."""
    monkeypatch.setenv("GRADC_NUM_THREADS", threads)
    rng = onp.random.default_rng(len(qs) + qs[-1])
    q, k = rng.normal(size=qs).astype(dtype), rng.normal(size=ks).astype(dtype)
    v = rng.normal(size=ks).astype(dtype)
    T = ks[-2]

    def attend(q, k, v):
        s = q @ np.swapaxes(k, -1, -2) / onp.sqrt(qs[-1])
        if causal:
            s = np.where(np.triu(np.ones((qs[-2], T)), 1) > 0, -1e9, s)
        return np.sum(np.tanh(np.softmax(s, axis=-1) @ v))
    f = gradc.value_and_grad(attend, argnums=(0, 1, 2))
    value, grads = f(q, k, v)
    Q, K, V = (x.astype(onp.float64) for x in (q, k, v))
    S = Q @ onp.swapaxes(K, -1, -2) / onp.sqrt(qs[-1])
    if causal:
        S = onp.where(onp.triu(onp.ones((qs[-2], T)), 1) > 0, -1e9, S)
    P = onp.exp(S - S.max(-1, keepdims=True))
    P /= P.sum(-1, keepdims=True)
    O = P @ V
    dO = 1 - onp.tanh(O) ** 2
    dP = dO @ onp.swapaxes(V, -1, -2)
    dS = P * (dP - onp.sum(dP * P, -1, keepdims=True)) / onp.sqrt(qs[-1])
    want = (dS @ K, onp.swapaxes(dS, -1, -2) @ Q, onp.swapaxes(P, -1, -2) @ dO)
    eps = onp.finfo(dtype).eps
    assert abs(value - onp.tanh(O).sum()) <= 256 * eps * onp.abs(onp.tanh(O)).sum()
    for got, w in zip(grads, want):
        assert got.dtype == dtype
        onp.testing.assert_allclose(got, w, rtol=0, atol=512 * eps * onp.abs(w).max())
    monkeypatch.setenv("GRADC_NUM_THREADS", "1")
    one = gradc.value_and_grad(attend, argnums=(0, 1, 2))
    for a, b in zip(one(q, k, v)[1], grads):
        assert onp.array_equal(a, b)
    stacks = [line for line in f.lower(q, k, v).loop_ir().splitlines() if " x] " in line and "gemm(" in line]
    assert len(stacks) == 6, stacks       # q k^T, P v; and dO v^T, dS k, dS^T q, P^T dO in the gradient


def test_einsum_errors_name_the_index():
    with pytest.raises(ShapeError, match="index 'j' has size 4 in operand 0 and 3 in operand 1"):
        gradc.jit(lambda a, b: np.einsum("ij,jk->ik", a, b))(onp.ones((2, 4)), onp.ones((3, 5)))
    with pytest.raises(ShapeError, match="do not match an operand of rank 2"):
        gradc.jit(lambda a: np.einsum("ijk->i", a))(onp.ones((2, 4)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_merged_contraction_keeps_the_rows_symbolic(backend):
    """einsum('blkc,kco->blo') merges k and c (fixed: a weight's sizes) but leaves the
    rows b, l symbolic: one compiled graph serves every batch and length, the reshape
    (b, l, k, c) -> (b, l, k*c) splitting only its last index.  Against numpy's einsum."""
    W = onp.random.default_rng(0).normal(size=(3, 4, 5))
    f = gradc.value_and_grad(lambda win, W: np.sum(np.tanh(np.einsum("blkc,kco->blo", win, W)) ** 2),
                             argnums=(0, 1), backend=backend)
    for B, L in [(5, 7), (9, 2), (300, 40)]:
        win = onp.random.default_rng(B).normal(size=(B, L, 3, 4))
        v, (gwin, gW) = f(win, W)
        h = onp.tanh(onp.einsum("blkc,kco->blo", win, W))
        d = 2 * h * (1 - h * h)
        onp.testing.assert_allclose(v, onp.sum(h ** 2), rtol=1e-12)
        onp.testing.assert_allclose(gwin, onp.einsum("blo,kco->blkc", d, W), rtol=1e-11, atol=1e-13)
        onp.testing.assert_allclose(gW, onp.einsum("blkc,blo->kco", win, d), rtol=1e-11, atol=1e-12)
    g = f.lower(win, W).graph
    assert [g[i]["shape"][2:] for i in g.inputs][0] == (3, 4)
    assert all(isinstance(d, str) for d in g[g.inputs[0]]["shape"][:2])


def test_einsum_dtype_converts_the_operands_as_numpy():
    # dtype= was once swallowed by **kw: a float64 result where numpy gives float32
    a = onp.random.default_rng(3).standard_normal((3, 4))
    got = gradc.jit(lambda a: np.einsum("ij,kj->ik", a, a, dtype=onp.float32))(a)
    want = onp.einsum("ij,kj->ik", a, a, dtype=onp.float32, casting="same_kind")
    assert got.dtype == onp.float32
    onp.testing.assert_allclose(got, want, rtol=1e-6)
    with pytest.raises(gradc.UnsupportedError, match="out="):
        gradc.jit(lambda a: np.einsum("ij->i", a, out=onp.zeros(3)))(a)


@pytest.mark.parametrize("subscripts,shapes", [("bij,bjk->bik", [(1, 3, 4), (2, 4, 5)]), ("ij,ij->", [(3, 4), (1, 4)]),
                                               ("ij,jk", [(3, 1), (4, 2)]), ("i,i", [(4,), (1,)])])
def test_einsum_broadcasts_named_axes_of_size_1_as_numpy(subscripts, shapes):
    # numpy broadcasts a named index of size 1 against n; gradc raised "index 'b' has size 1 ..."
    rng = onp.random.default_rng(8)
    xs = [rng.standard_normal(s) for s in shapes]
    want = onp.einsum(subscripts, *xs)
    onp.testing.assert_allclose(gradc.jit(lambda *a: np.einsum(subscripts, *a))(*xs), want, rtol=1e-13)
    w = rng.standard_normal(onp.shape(want))
    grads = gradc.grad(lambda *a: np.sum(np.einsum(subscripts, *a) * w), argnums=tuple(range(len(xs))))(*xs)
    for i, g in enumerate(grads):
        onp.testing.assert_allclose(g, fd_grad(lambda *a: onp.sum(onp.einsum(subscripts, *a) * w), xs, i),
                                    rtol=FD_RTOL, atol=FD_ATOL)
