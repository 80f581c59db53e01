"""gradc_skinny_gemm (runtime/skinny.c): matrix products with at most 16 columns.

Oracle: numpy's product.  Any summation order of a length-K dot product is within
K * eps * sum_k |a_k b_k| of the exact value (first order), so two computations differ
by at most twice that: the bound below, elementwise, is 2 K eps (|A| @ |B|).
"""
import ctypes

import numpy as np
import pytest

import gradc

from gradc_helpers import SKINNY_FORMS, skinny_form

_callpath = pytest.importorskip("gradc._callpath")

_SKINNY = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, ctypes.c_int64, ctypes.c_int64,
                           ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
                           ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32)(_callpath.skinny_gemm_address())


def skinny(a, b, transposed, threads):
    """C = a @ b (transposed=False, a is [M,K]) or a.T @ b (transposed=True, a is [K,M])."""
    K, M = a.shape if transposed else a.shape[::-1]
    N = b.shape[1]
    c = np.full((M, N), np.nan, a.dtype)
    rc = _SKINNY(0 if a.dtype == np.float64 else 1, int(transposed), M, N, K, a.ctypes.data, max(a.shape[1], 1),
                 b.ctypes.data, max(N, 1), c.ctypes.data, max(N, 1), threads)
    return rc, c


SHAPES = [(1, 1, 1), (0, 5, 3), (5, 0, 3), (3, 4, 0), (7, 3, 10), (9, 33, 16), (64, 16, 10), (100, 7, 13),
          (1001, 9, 4), (3, 1000, 5), (257, 129, 8), (4096, 64, 12), (31, 2, 1)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("transposed", [False, True], ids=["A@B", "A.T@B"])
@pytest.mark.parametrize("M,K,N", SHAPES)
def test_matches_numpy_within_the_dot_product_bound(M, K, N, transposed, dtype):
    rng = np.random.default_rng(M * 1000 + K * 10 + N)
    a = rng.standard_normal((K, M) if transposed else (M, K)).astype(dtype)
    b = rng.standard_normal((K, N)).astype(dtype)
    op_a = a.T if transposed else a
    ref = op_a.astype(np.float64) @ b.astype(np.float64)
    bound = 2 * max(K, 1) * np.finfo(dtype).eps * (np.abs(op_a).astype(np.float64) @ np.abs(b).astype(np.float64))
    results = []
    for threads in (1, 2):
        rc, c = skinny(a, b, transposed, threads)
        assert rc == 0
        assert c.shape == (M, N)
        assert np.all(np.abs(c - ref) <= bound), f"max err {np.max(np.abs(c - ref), initial=0)}"
        results.append(c)
    # every element is summed in the same order whatever the thread count (these sizes
    # stay below the row-split of A.T @ B, see the next test)
    assert np.array_equal(results[0], results[1])


def test_wide_products_are_declined():
    a, b = np.ones((4, 3)), np.ones((3, 17))
    rc, c = skinny(a, b, False, 1)
    assert rc == 1 and np.isnan(c).all()      # untouched: the caller falls back to BLAS


def test_large_product_uses_threads_and_stays_exact():
    """Big enough to be split into chunks across threads (work > 2**18)."""
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((20000, 64)), rng.standard_normal((64, 10))
    rc1, c1 = skinny(x, w, False, 1)
    rc2, c2 = skinny(x, w, False, 4)
    assert rc1 == rc2 == 0 and np.array_equal(c1, c2)
    np.testing.assert_allclose(c1, x @ w, rtol=1e-12, atol=1e-12)
    # A.T @ B with many rows: threads take row ranges, partials are added in chunk order,
    # so the result is the same on every run for a given thread count
    g = rng.standard_normal((20000, 10))
    rc, t = skinny(x, g, True, 4)
    rc_again, t_again = skinny(x, g, True, 4)
    assert rc == rc_again == 0 and np.array_equal(t, t_again)
    bound = 2 * 20000 * np.finfo(np.float64).eps * (np.abs(x).T @ np.abs(g))
    assert np.all(np.abs(t - x.T @ g) <= bound)


@pytest.mark.parametrize("classes", [1, 10, 16, 17])
def test_softmax_gradient_through_narrow_products(classes):
    """The kernel path of M5 (X @ W with few classes, X.T @ G in the adjoint) against
    the numpy evaluator, at 1, 10, 16 classes (narrow kernels) and 17 (BLAS)."""
    rng = np.random.default_rng(classes)
    X, W = rng.standard_normal((203, 37)), rng.standard_normal((37, classes)) * 0.1
    labels = rng.integers(0, classes, 203)

    def loss(W, X):
        z = X @ W
        return gradc.mean(gradc.logsumexp(z, axis=1) - z[np.arange(203), labels])
    v_ref, g_ref = gradc.value_and_grad(loss, backend="numpy")(W, X)
    v, g = gradc.value_and_grad(loss, backend="llvm")(W, X)
    np.testing.assert_allclose(v, v_ref, rtol=1e-12)
    np.testing.assert_allclose(g, g_ref, rtol=1e-11, atol=1e-14)


GUARD_SCRIPT = r"""
import ctypes, mmap, sys
import numpy as np
from gradc import _callpath
PAGE = mmap.PAGESIZE
libc = ctypes.CDLL(None, use_errno=True)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
keep = []

def flush_before_guard(a):
    # a copy of `a` whose last byte is the last byte before a PROT_NONE page
    a = np.ascontiguousarray(a)
    npages = max(1, -(-a.nbytes // PAGE))
    m = mmap.mmap(-1, (npages + 1) * PAGE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(m))
    assert libc.mprotect(base + npages * PAGE, PAGE, 0) == 0
    keep.append(m)
    g = np.frombuffer(m, dtype=a.dtype, count=a.size, offset=npages * PAGE - a.nbytes).reshape(a.shape)
    g[...] = a
    return g

f = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, ctypes.c_int64, ctypes.c_int64,
                     ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
                     ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32)(_callpath.skinny_gemm_address())
rng = np.random.default_rng(0)
n = 0
for dtype in (np.float64, np.float32):
    for N in range(1, 17):
        for K, M in ((1, 3), (5, 2), (64, 16), (7, 33)):
            for tn in (0, 1):
                a = flush_before_guard(rng.standard_normal((K, M) if tn else (M, K)).astype(dtype))
                b = flush_before_guard(rng.standard_normal((K, N)).astype(dtype))
                c = flush_before_guard(np.zeros((M, N), dtype))
                rc = f(0 if dtype == np.float64 else 1, tn, M, N, K, a.ctypes.data, a.shape[1],
                       b.ctypes.data, N, c.ctypes.data, N, 1)
                want = (a.T if tn else a).astype(np.float64) @ b.astype(np.float64)
                assert rc == 0 and np.allclose(c, want, rtol=1e-5, atol=1e-5), (dtype, N, K, M, tn)
                n += 1
print("OK", n)
"""


def test_padded_loads_stay_inside_the_operands():
    """The narrow kernels load rows of B as whole vectors, padded past N; with every
    operand ending flush against a PROT_NONE page, a load past the end of A, B or C
    segfaults the subprocess.  Every width 1-16, both forms and dtypes."""
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", GUARD_SCRIPT], capture_output=True, text=True, timeout=300,
                         cwd=root, env=dict(os.environ, PYTHONPATH=root))
    assert out.returncode == 0, f"exit code {out.returncode} (-11 is a segfault): {out.stderr[-3000:]}"
    assert out.stdout.startswith("OK 256"), out.stdout


# A row pipeline's single-threaded blocks (schedule.RowPipeline): W packed once, the
# head's rows, the tail summed over blocks into a padded accumulator, written out once.
_I32, _I64, _VP = ctypes.c_int32, ctypes.c_int64, ctypes.c_void_p
# (an extension built before the row pipeline has none of these: the pipeline is then
# off, llvm_jit checks, and `python setup.py build_ext --inplace` brings it)
rows_built = pytest.mark.skipif(not hasattr(_callpath, "skinny_rows_addresses"),
                                reason="gradc._callpath was built before gradc_skinny_rows: rebuild it")
@pytest.fixture(params=list(SKINNY_FORMS))
def form(request):
    """Every form of a row pipeline's products in turn (gradc_helpers.SKINNY_FORMS)."""
    with skinny_form(request.param):
        yield request.param


if hasattr(_callpath, "skinny_rows_addresses"):
    _PACK_ADDR, _ROWS_ADDR, _UNPAD_ADDR = _callpath.skinny_rows_addresses()
    _PACK = ctypes.CFUNCTYPE(_I32, _I32, _I64, _I64, _VP, _I64, _VP)(_PACK_ADDR)
    _ROWS = ctypes.CFUNCTYPE(_I32, _I32, _I32, _I64, _I64, _I64, _VP, _I64, _VP, _I64, _VP, _I64)(_ROWS_ADDR)
    _UNPAD = ctypes.CFUNCTYPE(None, _I32, _I64, _I64, _VP, _VP, _I64)(_UNPAD_ADDR)


@rows_built
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n,d,c,block", [(1, 1, 1, 16), (100, 7, 10, 16), (1001, 33, 16, 64), (64, 512, 3, 20),
                                         (37, 5, 8, 1), (500, 64, 13, 128)])
def test_blocks_of_rows_match_numpy_within_the_dot_product_bound(n, d, c, block, dtype, form):
    rng = np.random.default_rng(n + d + c)
    X = rng.standard_normal((n, d)).astype(dtype)
    W = rng.standard_normal((d, c)).astype(dtype)
    G = rng.standard_normal((n, c)).astype(dtype)
    dt = 0 if dtype == np.float64 else 1
    packed = np.full((d, 16), np.nan, dtype)
    padded = np.zeros((d, 16), dtype)
    Z = np.full((n, c), np.nan, dtype)
    gW = np.full((d, c), np.nan, dtype)
    item = np.dtype(dtype).itemsize
    assert _PACK(dt, c, d, W.ctypes.data, c, packed.ctypes.data) == 0
    for r0 in range(0, n, block):
        rows = min(block, n - r0)
        assert _ROWS(dt, 0, rows, c, d, X.ctypes.data + r0 * d * item, d, packed.ctypes.data, 0,
                     Z.ctypes.data + r0 * c * item, c) == 0
        assert _ROWS(dt, 1, d, c, rows, X.ctypes.data + r0 * d * item, d, G.ctypes.data + r0 * c * item, c,
                     padded.ctypes.data, 0) == 0
    _UNPAD(dt, d, c, padded.ctypes.data, gW.ctypes.data, c)
    X64, W64, G64 = (a.astype(np.float64) for a in (X, W, G))
    eps = np.finfo(dtype).eps
    assert np.all(np.abs(Z - X64 @ W64) <= 2 * d * eps * (np.abs(X64) @ np.abs(W64)))
    assert np.all(np.abs(gW - X64.T @ G64) <= 2 * n * eps * (np.abs(X64).T @ np.abs(G64)))


@rows_built
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("c", range(1, 17))
@pytest.mark.parametrize("n,d,block", [(203, 37, 64), (130, 515, 64), (9, 1030, 4)])
def test_blocks_of_every_width_match_numpy(n, d, c, block, dtype, form):
    """Every width in every form (skinny_lanes.c's AVX-512 forms, skinny_lanes_v3.c's
    AVX2 ones, skinny.c's padded kernels), with k past the last vector (37, 515, 1030
    are not multiples of 8) and columns of X past the last tile."""
    test_blocks_of_rows_match_numpy_within_the_dot_product_bound(n, d, c, block, dtype, form)


@rows_built
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("c", range(1, 17))
def test_blocks_of_strided_operands_write_only_their_columns_and_repeat_their_bits(c, dtype, form):
    """X, G and Z as columns of wider arrays (leading dimensions past their widths: the
    NN form's sums then go row by row, not as whole vectors of C), a short last block
    (70 = 64 + 6 rows), k past the last vector (45): within the dot-product bound, the
    columns beside Z untouched, and the same bits on a second pass."""
    n, d, block = 70, 45, 64
    rng = np.random.default_rng(c)
    Xw = rng.standard_normal((n, d + 7)).astype(dtype)
    Gw = rng.standard_normal((n, c + 3)).astype(dtype)
    W = rng.standard_normal((d, c)).astype(dtype)
    X, G = Xw[:, :d], Gw[:, :c]
    dt, item = (0 if dtype == np.float64 else 1), np.dtype(dtype).itemsize
    packed = np.full((d, 16), np.nan, dtype)
    assert _PACK(dt, c, d, W.ctypes.data, c, packed.ctypes.data) == 0
    passes = []
    for _ in range(2):
        Zw = np.full((n, c + 5), -7.0, dtype)
        padded = np.zeros((d, 16), dtype)
        gW = np.full((d, c), np.nan, dtype)
        for r0 in range(0, n, block):
            rows = min(block, n - r0)
            assert _ROWS(dt, 0, rows, c, d, Xw.ctypes.data + r0 * (d + 7) * item, d + 7, packed.ctypes.data, 0,
                         Zw.ctypes.data + r0 * (c + 5) * item, c + 5) == 0
            assert _ROWS(dt, 1, d, c, rows, Xw.ctypes.data + r0 * (d + 7) * item, d + 7,
                         Gw.ctypes.data + r0 * (c + 3) * item, c + 3, padded.ctypes.data, 0) == 0
        _UNPAD(dt, d, c, padded.ctypes.data, gW.ctypes.data, c)
        passes.append((Zw, gW))
    (Zw, gW), (Zw2, gW2) = passes
    X64, W64, G64 = (a.astype(np.float64) for a in (X, W, G))
    eps = np.finfo(dtype).eps
    assert np.all(np.abs(Zw[:, :c] - X64 @ W64) <= 2 * d * eps * (np.abs(X64) @ np.abs(W64)))
    assert np.all(Zw[:, c:] == -7.0)
    assert np.all(np.abs(gW - X64.T @ G64) <= 2 * n * eps * (np.abs(X64).T @ np.abs(G64)))
    assert np.array_equal(Zw, Zw2) and np.array_equal(gW, gW2)


ROWS_GUARD_SCRIPT = GUARD_SCRIPT.split("f = ctypes.CFUNCTYPE")[0] + """
import itertools
I32, I64, VP = ctypes.c_int32, ctypes.c_int64, ctypes.c_void_p
pack_addr, rows_addr, unpad_addr = _callpath.skinny_rows_addresses()
pack = ctypes.CFUNCTYPE(I32, I32, I64, I64, VP, I64, VP)(pack_addr)
rows = ctypes.CFUNCTYPE(I32, I32, I32, I64, I64, I64, VP, I64, VP, I64, VP, I64)(rows_addr)
unpad = ctypes.CFUNCTYPE(None, I32, I64, I64, VP, VP, I64)(unpad_addr)
rng = np.random.default_rng(0)
n = 0
for form, dtype in itertools.product((-1, 0, 3, 4), (np.float64, np.float32)):
    _callpath.skinny_forms(form)
    dt = 0 if dtype == np.float64 else 1
    for N in range(1, 17):
        for K, M in ((1, 3), (5, 2), (64, 16), (7, 33), (19, 40)):
            X = flush_before_guard(rng.standard_normal((M, K)).astype(dtype))
            W = flush_before_guard(rng.standard_normal((K, N)).astype(dtype))
            G = flush_before_guard(rng.standard_normal((M, N)).astype(dtype))
            packed = flush_before_guard(np.zeros((K, 16), dtype))
            padded = flush_before_guard(np.zeros((K, 16), dtype))
            Z = flush_before_guard(np.zeros((M, N), dtype))
            gW = flush_before_guard(np.zeros((K, N), dtype))
            assert pack(dt, N, K, W.ctypes.data, N, packed.ctypes.data) == 0
            assert rows(dt, 0, M, N, K, X.ctypes.data, K, packed.ctypes.data, 0, Z.ctypes.data, N) == 0
            assert rows(dt, 1, K, N, M, X.ctypes.data, K, G.ctypes.data, N, padded.ctypes.data, 0) == 0
            unpad(dt, K, N, padded.ctypes.data, gW.ctypes.data, N)
            X64, W64, G64 = (a.astype(np.float64) for a in (X, W, G))
            assert np.allclose(Z, X64 @ W64, rtol=1e-5, atol=1e-5), (dtype, N, K, M)
            assert np.allclose(gW, X64.T @ G64, rtol=1e-5, atol=1e-5), (dtype, N, K, M)
            n += 1
print("OK", n)
"""


@rows_built
def test_blocks_load_nothing_past_their_operands():
    """A row pipeline's pack, head, tail and unpad with every operand ending flush
    against a PROT_NONE page (a load past the end segfaults the subprocess): every form
    (FORMS), every width 1-16, both dtypes, with k and columns past the last vector."""
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", ROWS_GUARD_SCRIPT], capture_output=True, text=True, timeout=300,
                         cwd=root, env=dict(os.environ, PYTHONPATH=root))
    assert out.returncode == 0, f"exit code {out.returncode} (-11 is a segfault): {out.stderr[-3000:]}"
    assert out.stdout.startswith("OK 640"), out.stdout


@rows_built
def test_blocks_decline_wide_products_and_leave_the_output_alone():
    X, W = np.ones((4, 3)), np.ones((3, 17))
    packed, Z, out = np.full((3, 16), 7.0), np.full((4, 17), 7.0), np.full((3, 17), 7.0)
    assert _PACK(0, 17, 3, W.ctypes.data, 17, packed.ctypes.data) == 1
    assert _ROWS(0, 0, 4, 17, 3, X.ctypes.data, 3, packed.ctypes.data, 0, Z.ctypes.data, 17) == 1
    _UNPAD(0, 3, 17, packed.ctypes.data, out.ctypes.data, 17)
    assert (packed == 7.0).all() and (Z == 7.0).all() and (out == 7.0).all()
