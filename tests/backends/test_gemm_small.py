"""gradc_gemm_small (runtime/gemm_small.c): gradc's own kernel for products with a short
inner dimension (an MLP layer's X @ W, its backward dZ @ W^T, and the gradient X^T @ G),
called directly and through the pool-split products of generated code (poolgemm.c).

Oracle: numpy's product in float64.  Any summation order of a length-K dot product is
within K eps sum_k |a_k b_k| of the exact value (first order), so the kernel and the
oracle differ by at most twice that: the bound below is elementwise 2 K eps (|A| @ |B|),
eps the dtype's.
"""
import ctypes

import numpy as np
import pytest

import gradc
from gradc_helpers import GUARD_PRELUDE

_callpath = pytest.importorskip("gradc._callpath")
built = pytest.mark.skipif(not hasattr(_callpath, "gemm_small_address"),
                           reason="gradc._callpath was built before gemm_small.c: rebuild it")
_I32, _I64, _VP = ctypes.c_int32, ctypes.c_int64, ctypes.c_void_p
_SIG = (_I32, _I32, _I32, _I32, _I64, _I64, _I64, _VP, _I64, _VP, _I64, _VP, _I64)
if hasattr(_callpath, "gemm_small_address"):
    _GEMM = ctypes.CFUNCTYPE(*_SIG)(_callpath.gemm_small_address())


def _operand(rng, shape, dtype, pad):
    """A standard normal array of `shape` inside a larger one: `pad` extra columns (its
    leading dimension is longer than its width) and an odd element offset."""
    big = rng.standard_normal((shape[0] + 1, shape[1] + pad + 1)).astype(dtype)
    return big[1:, 1:shape[1] + 1]


def gemm_small(a, b, ta, tb, c=None):
    """C = op(a) @ op(b) through gradc_gemm_small; a and b may be row slices of larger
    arrays (their rows contiguous, leading dimension strides[0]).  (rc, C)."""
    M = a.shape[1] if ta else a.shape[0]
    K = a.shape[0] if ta else a.shape[1]
    N = b.shape[0] if tb else b.shape[1]
    if c is None:
        c = np.full((M, N), np.nan, a.dtype)
    it = a.itemsize
    assert a.strides[1] == it and b.strides[1] == it and c.strides[1] == it
    rc = _GEMM(0 if a.dtype == np.float64 else 1, int(ta), int(tb), M, N, K, a.ctypes.data, a.strides[0] // it,
               b.ctypes.data, b.strides[0] // it, c.ctypes.data, c.strides[0] // it)
    return rc, c


def _assert_within_bound(got, A, B):
    A64, B64 = A.astype(np.float64), B.astype(np.float64)
    eps = np.finfo(got.dtype).eps
    bound = 2 * max(A.shape[1], 1) * eps * (np.abs(A64) @ np.abs(B64)) + np.finfo(got.dtype).tiny
    err = np.abs(got.astype(np.float64) - A64 @ B64)
    assert np.all(err <= bound), float(np.max(err / bound))


FORMS = {"nn": (False, False), "nt": (False, True), "tn": (True, False), "tt": (True, True)}
# rows of C: 1, a short tile (3), 7 = a tile and one, 63/65 around 64, 2051 none of the
# tile, panel or thread sizes; k: 1, 17, 64, 300 (two passes of 150), 513 (three);
# columns: 1, 3, 17 (a panel and one), 65
SHAPES = [(1, 1, 1), (3, 5, 3), (7, 17, 17), (63, 64, 65), (65, 300, 17), (17, 513, 33), (2051, 64, 64),
          (2051, 16, 65), (6, 64, 16), (12, 32, 32), (64, 2051, 64)]


@built
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("M,K,N", SHAPES)
def test_matches_numpy_within_the_dot_product_bound(M, K, N, form, dtype):
    ta, tb = FORMS[form]
    rng = np.random.default_rng(M * 10007 + K * 101 + N)
    a = _operand(rng, (K, M) if ta else (M, K), dtype, pad=3)
    b = _operand(rng, (N, K) if tb else (K, N), dtype, pad=5)
    rc, c = gemm_small(a, b, ta, tb)
    if rc == 1:
        pytest.skip("this CPU has neither AVX-512 nor AVX2 with FMA: the kernel declines")
    assert rc == 0
    _assert_within_bound(c, a.T if ta else a, b.T if tb else b)


@built
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_c_is_written_only_inside_its_rows_and_columns(dtype):
    """C inside a larger array (leading dimension > N): the columns past N and the rows
    around it keep their values."""
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((67, 40)).astype(dtype), rng.standard_normal((40, 21)).astype(dtype)
    big = np.full((69, 30), 7.0, dtype)
    rc, _ = gemm_small(a, b, False, False, big[1:68, 2:23])
    assert rc == 0
    _assert_within_bound(big[1:68, 2:23], a, b)
    inside = np.zeros(big.shape, bool)
    inside[1:68, 2:23] = True
    assert np.all(big[~inside] == 7.0)


@built
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("form", list(FORMS))
def test_nan_and_inf_propagate_as_in_blas(form, dtype):
    """A NaN in op(A)'s row i makes row i of C NaN; a NaN in op(B)'s column j makes
    column j NaN; an inf meets finite nonzero values as +-inf; inf * 0 is NaN.  The
    oracle: numpy's float64 product, NaN and inf positions elementwise."""
    ta, tb = FORMS[form]
    rng = np.random.default_rng(11)
    M, K, N = 70, 40, 37
    A = rng.standard_normal((M, K)).astype(dtype)
    B = rng.standard_normal((K, N)).astype(dtype)
    A[3, 5] = np.nan
    A[66, 39] = np.inf                    # the last tile's last k
    B[7, 20] = np.nan
    B[0, 36] = -np.inf                    # the last column, in a short panel
    B[39, 2] = 0.0
    B[39, 3] = 0.0
    A[10, 39] = np.inf                    # inf * 0 in C[10, 2] and C[10, 3]
    a = np.ascontiguousarray(A.T) if ta else A
    b = np.ascontiguousarray(B.T) if tb else B
    rc, c = gemm_small(a, b, ta, tb)
    assert rc == 0
    with np.errstate(invalid="ignore"):
        ref = A.astype(np.float64) @ B.astype(np.float64)
    assert np.array_equal(np.isnan(c), np.isnan(ref))
    assert np.array_equal(np.isposinf(c), np.isposinf(ref)) and np.array_equal(np.isneginf(c), np.isneginf(ref))
    assert np.isnan(c[3]).all() and np.isnan(c[:, 20]).all() and np.isnan(c[10, 2:4]).all()


GUARD_SCRIPT = GUARD_PRELUDE + r"""
import os, sys
import numpy as np
from gradc import _callpath

I32, I64, VP = ctypes.c_int32, ctypes.c_int64, ctypes.c_void_p
f = ctypes.CFUNCTYPE(I32, I32, I32, I32, I64, I64, I64, VP, I64, VP, I64, VP, I64)(_callpath.gemm_small_address())
rng = np.random.default_rng(0)
n = 0
for dtype in (np.float64, np.float32):
    for M, K, N in ((1, 1, 1), (7, 3, 17), (13, 64, 33), (65, 17, 65), (6, 300, 16), (31, 257, 7)):
        for ta in (0, 1):
            for tb in (0, 1):
                for at_end in (True, False):
                    a = guarded(rng.standard_normal((K, M) if ta else (M, K)).astype(dtype), at_end)
                    b = guarded(rng.standard_normal((N, K) if tb else (K, N)).astype(dtype), at_end)
                    c = guarded(np.full((M, N), np.nan, dtype), at_end)
                    rc = f(0 if dtype == np.float64 else 1, ta, tb, M, N, K, a.ctypes.data, a.shape[1],
                           b.ctypes.data, b.shape[1], c.ctypes.data, N)
                    if os.environ.get("GRADC_GEMM_SMALL_ISA") == "off":
                        assert rc == 1      # declined: the caller runs BLAS
                        n += 1
                        continue
                    A64, B64 = (a.T if ta else a).astype(np.float64), (b.T if tb else b).astype(np.float64)
                    bound = 2 * K * np.finfo(dtype).eps * (np.abs(A64) @ np.abs(B64))   # as in the tests above
                    assert rc == 0 and np.all(np.abs(c - A64 @ B64) <= bound), (dtype, M, K, N, ta, tb)
                    n += 1
print("OK", n)
"""


def _has_avx512_and_avx2():
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return " avx512f " in flags and " avx2 " in flags and " fma " in flags


@built
@pytest.mark.parametrize("isa", ["best", "v3", "off"])
def test_no_load_or_store_reaches_past_the_operands(isa):
    """Every operand (A, B and C) flush against a PROT_NONE page, after its end and
    before its start: a vector load or store outside any of them segfaults the
    subprocess.  Every form, both dtypes, shapes whose M, K and N are not multiples of
    the tile, the vector width or the pass length; each result against numpy.  "v3"
    runs the AVX2 kernels (6 x 8 tiles) on an AVX-512 host (GRADC_GEMM_SMALL_ISA);
    "off", with which every call declines, shows that the variable is read."""
    import os
    import subprocess
    import sys
    if isa == "v3" and not _has_avx512_and_avx2():
        pytest.skip("the AVX2 kernels are forced only on an AVX-512 host (elsewhere they run anyway)")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=root)
    if isa != "best":
        env["GRADC_GEMM_SMALL_ISA"] = isa
    out = subprocess.run([sys.executable, "-c", GUARD_SCRIPT], capture_output=True, text=True, timeout=300,
                         cwd=root, env=env)
    assert out.returncode == 0, f"exit code {out.returncode} (-11 is a segfault): {out.stderr[-3000:]}"
    assert out.stdout.startswith("OK 96"), out.stdout


@built
def test_threads_that_exit_leave_no_buffer_behind():
    """Each thread keeps one buffer for the packed panels (512 KB reserved, the packed
    part touched); a thread that exits frees it.  400 short-lived threads, each running
    a 64x64x64 product: kept buffers would add about 40 KB of resident memory each
    (16 MB), freed ones nothing.  /proc/self/statm's resident pages; Linux only."""
    import os
    import threading
    if not os.path.exists("/proc/self/statm"):
        pytest.skip("no /proc/self/statm")
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((64, 64)), rng.standard_normal((64, 64))
    results = []

    def work():
        results.append(gemm_small(a, b, False, False)[0])

    def resident():
        return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def run(n):
        for _ in range(n):
            t = threading.Thread(target=work)
            t.start()
            t.join()
    run(20)                      # the allocator's own arenas settle
    before = resident()
    run(400)
    assert all(rc == 0 for rc in results)
    assert resident() - before < 4 << 20, (resident() - before) / 1e6


# ---- through generated code: gradc_pool_dgemm / sgemm call the kernel per row block ----
from gradc.backends import llvm_jit  # noqa: E402

pool = pytest.mark.skipif(not llvm_jit.init()["blas"].get("pool"),
                          reason="numpy's BLAS has no per-thread thread count (OpenBLAS < 0.3.27)")
_PRODUCTS = {"ab": lambda a, b: a @ b, "atb": lambda a, b: a.T @ b, "abt": lambda a, b: a @ b.T}


def _kernel_takes(ta):
    """Does the kernel take a product of the shapes below (all within gemm_small_wants's
    first rules)?  On AVX-512 hosts yes; with AVX2 only, not with A transposed
    (poolgemm.c: OpenBLAS's Haswell kernels were faster there)."""
    return _has_avx512_and_avx2() or not ta


@built
@pool
@pytest.mark.parametrize("threads", ["1", "2", "3"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("form", list(_PRODUCTS))
@pytest.mark.parametrize("m,k,n", [(2051, 64, 64), (2051, 16, 65), (257, 300, 17), (65, 4099, 64), (17, 2051, 64)])
def test_generated_products_match_numpy_at_every_thread_count(m, k, n, form, dtype, threads, monkeypatch):
    """Shapes the kernel takes (gemm_small_wants: m k >= 16384, k >= 16, at least 64
    rows or 16 with at most 64 columns): a layer's product and its backward forms, 2051
    rows (no multiple of 2, 3 or the tile), k = 300 in two passes, and a gradient's long
    k (65 x 4099 and a first layer's 17 x 2051: split over k on 2 and 3 threads).
    The row split gives the same bits at every thread count (each element is summed in
    the same order whichever thread computes its row)."""
    monkeypatch.setenv("GRADC_NUM_THREADS", threads)   # read when the kernel compiles
    rng = np.random.default_rng(m + k + n)
    a = rng.standard_normal((k, m) if form == "atb" else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if form == "abt" else (k, n)).astype(dtype)
    got = gradc.jit(_PRODUCTS[form])(a, b)
    assert got.dtype == dtype and got.shape == (m, n)
    A, B = (a.T if form == "atb" else a), (b.T if form == "abt" else b)
    _assert_within_bound(got, A, B)
    route = _callpath.gemm_small_route(np.dtype(dtype).itemsize, form == "atb", form == "abt", m, n, k)
    assert (route == 1) == _kernel_takes(form == "atb")
    if k <= 4 * m and route == 1:   # split by rows: the kernel called directly gives the same bits
        rc, direct = gemm_small(a, b, form == "atb", form == "abt")
        assert rc == 0 and np.array_equal(got, direct)


@built
@pool
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_three_layer_mlp_gradient_matches_numpy(dtype):
    """A 3-layer tanh MLP's value_and_grad (batch 2048, 16 inputs, 64 units: its forward
    X @ W1 and H @ W2, the backward dZ @ W^T and the gradients H^T @ dZ all take the
    kernel) against numpy by hand.  The gradients are sums over 2048 rows of products of
    O(1) terms: 2048 x 2^-53 < 1e-12 (float64), 2048 x 2^-24 ~ 1.2e-4 relative to the
    terms' magnitude, so 1e-3 (float32)."""
    from gradc import bench_sweep
    c = bench_sweep.check_gradc(bench_sweep.Config("mlp", 3, 64, "tanh"), dtype, 1e-12 if dtype == "float64" else 1e-3)
    assert c["ok"], (dtype, c)


@built
@pool
@pytest.mark.parametrize("threads", ["1", "2", "3"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m,k,n", [(64, 10, 128), (2051, 4, 64), (33, 15, 70), (32, 1, 300), (31, 10, 128)])
def test_backward_products_with_few_outputs_match_numpy(m, k, n, dtype, threads, monkeypatch):
    """A layer's backward dZ @ W^T with k < 16 outputs (B transposed) takes the kernel
    from 32 rows on (gemm_small_wants): M4 small's 64 x 10 @ 10 x 128, a 4-output
    layer at batch 2051 (split over the pool), k = 15 and k = 1 at the edges, and 31
    rows (BLAS).  Within 2 k eps (|A| @ |B|) of numpy's float64 product; from 32 rows
    on, the bits of the kernel called directly, whichever threads ran the rows."""
    monkeypatch.setenv("GRADC_NUM_THREADS", threads)
    rng = np.random.default_rng(m * k + n)
    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((n, k)).astype(dtype)
    got = gradc.jit(_PRODUCTS["abt"])(a, b)
    assert got.dtype == dtype and got.shape == (m, n)
    _assert_within_bound(got, a, b.T)
    if m >= 32:
        rc, direct = gemm_small(a, b, False, True)
        assert rc == 0 and np.array_equal(got, direct)


_FLIPPED = {"ab": (lambda a, b: (b, a, True, True)), "atb": (lambda a, b: (b, a, True, False)),
            "abt": (lambda a, b: (b, a, False, True))}


@built
@pool
@pytest.mark.parametrize("threads", ["1", "2", "3"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("form", list(_PRODUCTS))
@pytest.mark.parametrize("m,k,n", [(32, 300, 517), (40, 2051, 2051), (10, 300, 517), (32, 128, 517)])
def test_short_wide_products_are_made_as_their_transposes(m, k, n, form, dtype, threads, monkeypatch):
    """A product with too few rows for the kernel (32 or 40, under its 64) but at least a
    panel of them (16 doubles, 32 floats) and 4 times as many columns, attention's
    Q^T @ dS among them, is made as its transpose op(B)^T @ op(A)^T by the kernel
    (poolgemm.c, gemm_small_flipped) and copied into C: the bits of the kernel called on
    the transpose, at every thread count.  Fewer rows than a panel (half as many in the
    AVX2 kernels: 10 float64 rows are a panel there, not on AVX-512) stay with BLAS, and
    with AVX2 only, so do transposes with A transposed (_kernel_takes); the
    route the runtime reports (gemm_small_route) must be that one.  All within the
    dot-product bound of numpy's float64 product."""
    monkeypatch.setenv("GRADC_NUM_THREADS", threads)
    rng = np.random.default_rng(m + k + n)
    a = rng.standard_normal((k, m) if form == "atb" else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if form == "abt" else (k, n)).astype(dtype)
    got = gradc.jit(_PRODUCTS[form])(a, b)
    assert got.dtype == dtype and got.shape == (m, n)
    _assert_within_bound(got, (a.T if form == "atb" else a), (b.T if form == "abt" else b))
    rc, flipped = gemm_small(*_FLIPPED[form](a, b))
    assert rc == 0 and flipped.shape == (n, m)
    route = _callpath.gemm_small_route(np.dtype(dtype).itemsize, form == "atb", form == "abt", m, n, k)
    panel = (4 if _has_avx512_and_avx2() else 2) * (32 // np.dtype(dtype).itemsize)   # gemm_small_flipped's
    # the transpose op(B)^T @ op(A)^T has A transposed unless B was
    assert (route == 2) == (m >= panel and _kernel_takes(form != "abt"))
    if route == 2:
        assert np.array_equal(got, flipped.T)
    # else BLAS: its sums may or may not come in the kernel's order (OpenBLAS's Haswell
    # kernels gave the same bits at k = 128), so only the bound above holds
