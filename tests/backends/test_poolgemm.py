"""Matrix products split over gradc's own pool (runtime/poolgemm.c): each row block of C
is one single-threaded BLAS call, so OpenBLAS's own pool never runs beside gradc's.

Oracle: numpy's matmul.  Tolerance: every element is a dot product of k terms computed
by BLAS in both cases, in possibly different blockings: |error| <= k eps sum|a_i b_i|,
so rtol 1e-12 (float64, k <= 600) and 1e-4 (float32) against the magnitude of the terms."""
import numpy as onp
import pytest

import gradc
from gradc.backends import llvm_jit

pool = pytest.mark.skipif(not llvm_jit.init()["blas"].get("pool"),
                          reason="numpy's BLAS has no per-thread thread count (OpenBLAS < 0.3.27)")


def _close(got, a, b, dtype):
    ref = a.astype(onp.float64) @ b.astype(onp.float64)
    scale = onp.abs(a).astype(onp.float64) @ onp.abs(b).astype(onp.float64)
    eps = 1e-12 if dtype == onp.float64 else 1e-4
    assert onp.all(onp.abs(got - ref) <= eps * scale + 1e-300)


def _check_product(form, m, k, n, dtype, seed):
    """gradc's a @ b (``form``: "ab", "atb" = a.T @ b, "abt" = a @ b.T) of an m x k
    and a k x n operand against numpy."""
    rng = onp.random.default_rng(seed)
    a = rng.standard_normal((k, m) if form == "atb" else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if form == "abt" else (k, n)).astype(dtype)
    f = {"ab": lambda a, b: a @ b, "atb": lambda a, b: a.T @ b, "abt": lambda a, b: a @ b.T}[form]
    got = gradc.jit(f)(a, b)
    assert got.dtype == dtype and got.shape == (m, n)
    _close(got, a.T if form == "atb" else a, b.T if form == "abt" else b, dtype)

@pool
@pytest.mark.parametrize("threads", ["1", "2", "3"])
@pytest.mark.parametrize("dtype", [onp.float64, onp.float32])
@pytest.mark.parametrize("form", ["ab", "atb", "abt"])
def test_products_above_the_split_size_agree_with_numpy(form, dtype, threads, monkeypatch):
    monkeypatch.setenv("GRADC_NUM_THREADS", threads)   # read when the kernel compiles
    _check_product(form, 1001, 300, 257, dtype, seed=7)     # m not a multiple of any thread count


@pool
@pytest.mark.parametrize("threads", ["1", "2"])
@pytest.mark.parametrize("dtype", [onp.float64, onp.float32])
@pytest.mark.parametrize("form", ["ab", "atb", "abt"])
@pytest.mark.parametrize("k,n", [(4, 64), (4, 256), (16, 100), (32, 300), (33, 256)])
def test_short_inner_dimension_row_blocks_agree_with_numpy(k, n, form, dtype, threads, monkeypatch):
    """Products with k <= 32 run in row blocks whose part of C fits in L2 (a layer's 16
    inputs, a 4-output layer's backward product); 2051 rows are not a multiple of any
    block or thread count, k = 33 is just past the blocked case.  k = 4, n = 64 has
    fewer multiply-adds than the pool's split size and splits because its C is large
    (GRADC_POOL_GEMM_MIN_K)."""
    monkeypatch.setenv("GRADC_NUM_THREADS", threads)
    _check_product(form, 2051, k, n, dtype, seed=k * 1000 + n)


@pool
@pytest.mark.parametrize("threads", ["1", "2", "3"])
@pytest.mark.parametrize("dtype", [onp.float64, onp.float32])
@pytest.mark.parametrize("form", ["ab", "atb", "abt"])
def test_long_inner_dimension_split_over_k_agrees_with_numpy(form, dtype, threads, monkeypatch):
    """k >= 2m: threads sum ranges of k into Cs of their own, added in thread order (a
    gradient X^T @ G; 37 x 41 x 1501 = 2.3M multiply-adds, above the pool's split size).  k = 1501 is not a multiple of 2 or 3; with k terms the error
    bound k eps is below the tolerances (1501 x 2^-53 < 1e-12, 1501 x 2^-24 < 1e-4).
    Every call gives the same bits."""
    monkeypatch.setenv("GRADC_NUM_THREADS", threads)
    _check_product(form, 37, 1501, 41, dtype, seed=5)
    rng = onp.random.default_rng(6)
    a, b = rng.standard_normal((1501, 37)).astype(dtype), rng.standard_normal((1501, 41)).astype(dtype)
    f = gradc.jit(lambda a, b: a.T @ b)
    first = f(a, b)
    assert all(onp.array_equal(f(a, b), first) for _ in range(5))


@pool
def test_short_inner_dimension_in_an_mlp_gradient():
    """A two-layer MLP's value_and_grad at batch 2048 (its X @ W1 has k = 16, its
    backward D @ W2.T has k = 4, both blocked) against numpy by hand; float64 rtol
    1e-12 (sums of 2048 terms), float32 1e-4."""
    from gradc import bench_sweep
    for dtype in ("float64", "float32"):
        c = bench_sweep.check_gradc(bench_sweep.Config("mlp", 2, 256, "tanh"), dtype,
                                    1e-12 if dtype == "float64" else 1e-4)
        assert c["ok"], (dtype, c)


@pool
def test_kernels_call_the_pool_split_product():
    a = onp.ones((300, 200))
    ir_text = gradc.jit(lambda a, b: a @ b).lower(a, a.T.copy()).llvm_ir(optimized=False)
    assert "gradc_pool_dgemm" in ir_text and "gradc_cblas_dgemm" not in ir_text


def _openblas_threads():
    from gradc.roofline import _openblas_set_threads
    return _openblas_set_threads()


@pool
def test_openblas_thread_count_is_restored_even_with_concurrent_callers():
    import threading
    set_, get = _openblas_threads()
    before = get()
    set_(2)
    try:
        a = onp.random.default_rng(1).standard_normal((600, 600))
        f = gradc.jit(lambda a: a @ a)
        _close(f(a), a, a, onp.float64)
        assert get() == 2
        errors = []

        def work():
            try:
                for _ in range(20):
                    _close(f(a), a, a, onp.float64)
            except Exception as e:   # noqa: BLE001 - reported below
                errors.append(e)
        threads = [threading.Thread(target=work) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and get() == 2
    finally:
        set_(before)


@pool
def test_a_product_never_wakes_openblas_threads(monkeypatch):
    """With gradc on one thread, no other thread of the process may run during or after
    a large product (OpenBLAS's pool would compute part of it and then spin ~0.1 s)."""
    import time
    from gradc.bench import _other_threads_cpu_ns
    monkeypatch.setenv("GRADC_NUM_THREADS", "1")
    set_, get = _openblas_threads()
    before = get()
    set_(2)
    try:
        a = onp.random.default_rng(1).standard_normal((700, 700))
        f = gradc.jit(lambda a: a @ a)
        f(a)
        time.sleep(0.3)                        # let anything earlier go idle
        used0, t0 = _other_threads_cpu_ns(), time.perf_counter()
        for _ in range(5):
            f(a)
        time.sleep(0.05)
        used, elapsed = _other_threads_cpu_ns() - used0, time.perf_counter() - t0
        assert used < 0.05 * elapsed * 1e9, (used, elapsed)
        # the oracle that this measures something: numpy's own product does wake them
        used0 = _other_threads_cpu_ns()
        for _ in range(5):
            a @ a
        time.sleep(0.05)
        assert _other_threads_cpu_ns() - used0 > 0.05 * elapsed * 1e9
    finally:
        set_(before)
