"""The roofline: host limits and each benchmark cell's bound (gradc/roofline.py).

Oracles: closed forms for the FLOPs of matrix products (2mnk) and for the bytes a call
must move (its arrays' sizes); OpenBLAS's own thread-count getter."""
import os

import numpy as onp
import pytest

import gradc
import gradc.numpy as np
from gradc import bench, roofline


def test_graph_flops_count_every_matrix_product():
    rng = onp.random.default_rng(0)
    X, W1, W2 = rng.random((50, 7)), rng.random((7, 11)), rng.random((11, 3))
    graph = gradc.jit(lambda X, W1, W2: (X @ W1) @ W2).lower(X, W1, W2).graph
    sizes = {d: n for i, a in zip(graph.inputs, (X, W1, W2)) for d, n in zip(graph[i]["shape"], a.shape)
             if isinstance(d, str)}
    assert roofline.graph_flops(graph, sizes) == 2 * 50 * 7 * 11 + 2 * 50 * 11 * 3


def test_cell_bound_is_the_larger_of_bytes_and_flops():
    X, W = onp.ones((400, 300)), onp.ones((300, 200))
    f = gradc.jit(lambda X, W: X @ W)
    out = f(X, W)
    host = {"stream_all_Bps": 1e10, "gemm_all_flops": 1e11}
    b = roofline.cell_bound(f.lower(X, W), (X, W), [out], host)
    assert b["bytes"] == X.nbytes + W.nbytes + out.nbytes
    assert b["flops"] == 2 * 400 * 300 * 200
    assert b["bound_s"] == pytest.approx(max(b["bytes"] / 1e10, b["flops"] / 1e11))
    assert b["limit"] == "compute"
    slow_flops = {"stream_all_Bps": 1e12, "gemm_all_flops": 1e9}
    assert roofline.cell_bound(f.lower(X, W), (X, W), [out], slow_flops)["limit"] == "compute"
    slow_memory = {"stream_all_Bps": 1e6, "gemm_all_flops": 1e12}
    assert roofline.cell_bound(f.lower(X, W), (X, W), [out], slow_memory)["limit"] == "memory"


def test_blas_threads_limits_and_restores():
    fns = roofline._openblas_set_threads()
    if fns is None:
        pytest.skip("numpy's BLAS is not OpenBLAS")
    _, get = fns
    before = get()
    with roofline.blas_threads(1) as limited:
        assert limited and get() == 1
    assert get() == before


def test_gradc_threads_sets_the_compile_time_count_and_restores(monkeypatch):
    monkeypatch.setenv("GRADC_NUM_THREADS", "2")
    with roofline.gradc_threads(1):
        assert os.environ["GRADC_NUM_THREADS"] == "1"
    assert os.environ["GRADC_NUM_THREADS"] == "2"
    with roofline.gradc_threads(None):     # as configured: the user's setting stands
        assert os.environ["GRADC_NUM_THREADS"] == "2"
    assert os.environ["GRADC_NUM_THREADS"] == "2"
    monkeypatch.delenv("GRADC_NUM_THREADS")
    with roofline.gradc_threads(None):
        assert "GRADC_NUM_THREADS" not in os.environ


def test_host_measurements_are_plausible():
    h = roofline.measure_host(quick=True)
    for key in ("stream_one_Bps", "stream_all_Bps", "gemm_one_flops", "gemm_all_flops"):
        assert 1e8 < h[key] < 1e14, (key, h[key])   # 0.1 GB/s .. 100 TB/s: a real machine


def test_matrix_product_peak_is_measured_in_the_tables_dtype(monkeypatch):
    """A float32 table's bound divides its FLOPs by the SGEMM peak (about twice DGEMM's
    on the same vectors): with DGEMM's, float32 cells came out faster than their bound."""
    seen = []
    real = onp.matmul

    def spy(a, b, out=None):
        seen.append((a.dtype, b.dtype, out.dtype))
        return real(a, b, out=out)
    monkeypatch.setattr(roofline.np, "matmul", spy)
    for dtype, name in (("float32", "SGEMM"), ("float64", "DGEMM")):
        seen.clear()
        h = roofline.measure_host(quick=True, dtype=dtype)
        assert h["gemm"] == name == roofline.gemm_name(dtype)
        assert seen and {d for t in seen for d in t} == {onp.dtype(dtype)}
        assert 1e8 < h["gemm_one_flops"] < 1e14


def test_bench_one_thread_mode_bound_and_no_settle_columns():
    doc = bench.run_benchmark(["M2"], ["small"], quick=True, memory=False, peers=False, cold_start=False,
                              threads=1)
    cell = doc["cells"][0]
    assert cell["check"]["gradc"]["ok"]
    b = cell["bound"]
    X, y = [a for n, a in zip(bench.MODELS["M2"].params, bench.make_data("M2", "small", "float64"))
            if n in ("X", "y")]
    assert b["bytes"] >= X.nbytes + y.nbytes and b["gradc_over_bound"] > 0
    ns = cell["no_settle"]
    assert ns["ratio"] == pytest.approx(ns["gradc_after_numpy_s"] / ns["numpy_after_gradc_s"])
    table = bench.render_table(doc, open(os.devnull, "w"))
    assert "roofline: stream" in table and "threads: one each" in table and "/bound" in table


def test_vecmath_bench_rows(capsys):
    from gradc import bench_vecmath, cli
    rows = bench_vecmath.run(["exp", "sigmoid"], n=512, rounds=1, budget=0.001)
    assert [r["name"] for r in rows] == ["exp", "sigmoid"]
    for r in rows:
        assert r["ratio"] == pytest.approx(r["gradc_s"] / r["numpy_s"])
        assert 0 < r["best_ratio"] < onp.inf
        assert r["max_rel_err"] < 4e-15        # a few ulp of float64 against numpy's value
    assert cli.main(["bench", "--vecmath"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in bench_vecmath.FUNCTIONS) and "machine:" in out


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this OS")
def test_one_core_pins_the_thread_and_its_new_threads_then_restores():
    import threading
    before = os.sched_getaffinity(0)
    seen = {}
    with roofline.one_core() as pinned:
        assert pinned and os.sched_getaffinity(0) == {min(before)}
        t = threading.Thread(target=lambda: seen.setdefault("cpus", os.sched_getaffinity(0)))
        t.start()
        t.join()
    assert seen["cpus"] == {min(before)}      # a thread started inside inherits the pin
    assert os.sched_getaffinity(0) == before
    with roofline.one_core(False) as pinned:
        assert not pinned and os.sched_getaffinity(0) == before


def test_one_thread_each_limits_both_only_for_one_thread():
    fns = roofline._openblas_set_threads()
    if fns is None:
        pytest.skip("numpy's BLAS is not OpenBLAS")
    _, get = fns
    before_blas, before_cpus = get(), os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    with roofline.one_thread_each(1) as limits:
        assert limits["blas_limited"] and get() == 1
        assert limits["one_core"] == hasattr(os, "sched_setaffinity")
    assert get() == before_blas
    with roofline.one_thread_each(None) as limits:
        assert limits == {"one_core": False, "blas_limited": False} and get() == before_blas
    if before_cpus is not None:
        assert os.sched_getaffinity(0) == before_cpus
