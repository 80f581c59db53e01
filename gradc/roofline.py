"""The host's roofline, and each benchmark cell's bound under it.

A cell cannot run faster than the larger of two times: the bytes it must move over the
memory bandwidth, and the floating-point work it must do at the machine's matrix-product
peak.  ``gradc bench`` measures both once per run:

* **stream bandwidth**: a sum over a float64 array far larger than the last-level cache,
  compiled by gradc, with one thread and with every thread (each kernel compiled for
  its thread count: GRADC_NUM_THREADS is read at compile time).  A sum reads each byte
  once and computes almost nothing, so its time is the time to stream the array.
* **matrix-product peak**: numpy's matrix product (OpenBLAS's DGEMM, or SGEMM for a
  float32 table: twice the FLOPs per cycle in the same vectors) on square matrices,
  with one BLAS thread and with all of them (OpenBLAS's own ``openblas_set_num_threads``).

The bound of a cell: its bytes are the inputs read once plus the outputs written once
(the least any implementation can move); its FLOPs are those of the matrix products in
the graph gradc runs (2mnk each; element-wise work is left out, so the bound is a lower
bound).  ``time / bound`` near 1 means the cell runs at the machine's limit."""
from __future__ import annotations

import contextlib
import ctypes
import os
import time

import numpy as np

STREAM_BYTES = 256 << 20      # far beyond any last-level cache
GEMM_N = 1536                 # large enough for OpenBLAS's peak, under a second on one core


def _best_of(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


@contextlib.contextmanager
def gradc_threads(n):
    """Kernels compiled inside this block split over ``n`` threads (None: as configured,
    ``GRADC_NUM_THREADS`` or every core, so ``GRADC_NUM_THREADS=1 gradc bench`` runs
    gradc on one thread)."""
    old = os.environ.get("GRADC_NUM_THREADS")
    if n is not None:
        os.environ["GRADC_NUM_THREADS"] = str(n)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("GRADC_NUM_THREADS", None)
        else:
            os.environ["GRADC_NUM_THREADS"] = old


def _openblas_set_threads():
    """numpy's OpenBLAS ``set_num_threads`` and ``get_num_threads`` as ctypes functions,
    or None where they cannot be found."""
    from .backends.blas import _libraries
    for path in _libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_", ""):
            for suffix in ("64_", ""):
                try:
                    set_ = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}")
                    get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}")
                except AttributeError:
                    continue
                set_.argtypes, set_.restype, get.restype = [ctypes.c_int], None, ctypes.c_int
                return set_, get
    return None


@contextlib.contextmanager
def one_core(enabled=True):
    """The calling thread, and every thread it starts inside the block, on one CPU (the
    first it may run on); its own affinity is restored after.  ``--threads 1`` runs so:
    XLA sizes and starts its thread pool when jax is first imported, and its
    ``intra_op_parallelism_threads`` flag no longer limits it (jax 0.10: 1.8 cores busy
    on a 2-core host with the flag set), so "one thread each" must be one core each.
    (Threads started before the block, OpenBLAS's, keep their affinity: its thread count
    is limited apart.)  A no-op where the OS has no affinity call."""
    if not enabled or not hasattr(os, "sched_setaffinity"):
        yield False
        return
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(old)})
    try:
        yield True
    finally:
        os.sched_setaffinity(0, old)


@contextlib.contextmanager
def blas_threads(n):
    """numpy's BLAS limited to ``n`` threads inside the block (None: unchanged)."""
    fns = _openblas_set_threads() if n is not None else None
    if fns is None:
        yield False
        return
    set_, get = fns
    old = get()
    set_(int(n))
    try:
        yield True
    finally:
        set_(old)


@contextlib.contextmanager
def one_thread_each(threads):
    """With ``threads`` = 1, this thread on one core (``one_core``: before jax is first
    imported) and numpy's BLAS limited to one thread; else neither.  Yields the settings
    the benchmarks record: {"one_core": pinned?, "blas_limited": limited?}."""
    with one_core(threads == 1) as pinned, blas_threads(1 if threads == 1 else None) as limited:
        yield {"one_core": pinned, "blas_limited": limited}


def stream_bandwidth(threads, repeat=5, nbytes=STREAM_BYTES) -> float:
    """Bytes per second a gradc sum streams from memory with ``threads`` threads
    (None: the default count)."""
    import gradc
    x = np.ones(nbytes // 8)
    with gradc_threads(threads):
        total = gradc.jit(lambda v: v.sum(), backend="llvm")
        total(x)   # compile and fault the pages in
    return x.nbytes / _best_of(lambda: total(x), repeat)


def gemm_peak(threads, repeat=5, n=GEMM_N, dtype="float64") -> float:
    """FLOP/s of numpy's matrix product in ``dtype`` with ``threads`` BLAS threads
    (None: the default)."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n)).astype(dtype), rng.random((n, n)).astype(dtype)
    out = np.empty_like(a)
    with blas_threads(threads):
        np.matmul(a, b, out=out)
        t = _best_of(lambda: np.matmul(a, b, out=out), repeat)
    return 2.0 * n ** 3 / t


def gemm_name(dtype) -> str:
    """BLAS's name of the matrix product in ``dtype`` (the roofline's peak)."""
    return "SGEMM" if np.dtype(dtype) == np.float32 else "DGEMM"


def measure_host(progress=None, quick=False, dtype="float64") -> dict:
    """The roofline of this host for a table in ``dtype``: stream bandwidth and the
    matrix-product peak in that dtype, one thread and all (``quick``: a quarter of the
    array, half the matrix: still beyond the caches, less exact)."""
    name = gemm_name(dtype)
    out = {"stream_bytes": STREAM_BYTES // (4 if quick else 1), "gemm_n": GEMM_N // (2 if quick else 1),
           "gemm": name}
    for label, n in (("one", 1), ("all", None)):
        if progress is not None:
            progress.update(f"roofline: stream bandwidth, {label} thread(s)")
        out[f"stream_{label}_Bps"] = stream_bandwidth(n, nbytes=out["stream_bytes"])
        if progress is not None:
            progress.update(f"roofline: {name} peak, {label} thread(s)")
        out[f"gemm_{label}_flops"] = gemm_peak(n, n=out["gemm_n"], dtype=dtype)
    return out


def graph_flops(graph, sizes: dict) -> float:
    """FLOPs of the matrix products in ``graph`` at these sizes (2mnk each)."""
    from .evaluate import product_macs
    return 2.0 * product_macs(graph, sizes)


def cell_bound(lowered, args, outputs, host: dict, threads="all") -> dict:
    """The bound of one cell: {"bytes", "flops", "bound_s", "limit"} for the graph of
    ``lowered`` (a ``Lowered``) called on ``args`` with results ``outputs``."""
    from .evaluate import bind_sizes
    graph = lowered.graph
    sizes = bind_sizes(graph, [np.asarray(a) for a in args])
    moved = sum(np.asarray(a).nbytes for a in args) + sum(np.asarray(o).nbytes for o in outputs)
    flops = graph_flops(graph, sizes)
    t_mem = moved / host[f"stream_{threads}_Bps"]
    t_flop = flops / host[f"gemm_{threads}_flops"]
    return {"bytes": moved, "flops": flops, "bound_s": max(t_mem, t_flop),
            "limit": "memory" if t_mem >= t_flop else "compute"}


# A gradc kernel that calls vector math runs its hot code (the math inlined) once it
# has run GRADC_HOT_SECONDS in all (backends/kernel.py, Kernel.upgrade): a program that
# calls it in a loop does so after its first 0.1 s.  The table reports that steady
# state: each gradc function runs untimed until then (at most this long).
HOT_BUDGET_S = 3.0


def run_until_hot(fn, args, budget_s=HOT_BUDGET_S) -> bool:
    """Call gradc's ``fn(*args)`` untimed until its kernel runs its hot code (vector math
    inlined, its batch split over the threads: ``Kernel.upgrade``); False when it has
    none (neither applies, hot kernels off, the C backend) or the budget ran out."""
    from .backends.kernel import hot_seconds
    try:
        run = fn.lower(*args)._entry.run
    except Exception:  # noqa: BLE001 - an implementation without a kernel
        return False
    kernel = getattr(run, "kernel", run)
    if hot_seconds() <= 0 or not getattr(kernel, "armed", False):
        return False
    t0 = time.perf_counter()
    while not kernel.upgraded and time.perf_counter() - t0 < budget_s:
        fn(*args)
    return bool(kernel.upgraded)
