"""Where a compiled gradc call spends its time: every threaded nest and matrix product.

A gradc kernel runs its nests in order; a nest split over threads is one call of
``gradc_parallel_for`` and a matrix product one call of ``gradc_pool_dgemm`` (runtime/
parallel.c, poolgemm.c; ``gradc_pool_sgemm`` in float32).  This script compiles a small C shim (the system's ``cc``) whose
functions time each such call and then call the real one, binds the generated code's
symbols to the shim before anything is compiled (in a fresh cache directory, so no cached
object keeps the real addresses), and prints, for one call of the model, every event with
its median duration over many calls and the median gap before it.  A gap is code the
caller ran alone: a nest too small to split, a narrow product, the kernel's entry.

    python tools/nest_timeline.py M6 medium            # a bench model (gradc.bench_models)
    python tools/nest_timeline.py M2 large float32
    python tools/nest_timeline.py sweep "mlp3 tanh h64" # a configuration of gradc bench --sweep

GRADC_NUM_THREADS applies as usual.  The calls are timed on the kernel's hot code, as
``gradc bench`` times them: where that splits the batch over the threads (M4 and M6 at
the small and medium sizes), each thread's part runs its own products on its rows, and
their events interleave; GRADC_SPLIT_BATCHES=0 shows the whole batch's.
"""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import tempfile
import time

SHIM = r"""
#include <stdint.h>
#include <time.h>
typedef void (*task)(void *, int64_t, int64_t, int32_t);
typedef void (*pf_t)(task, void *, int64_t, int32_t, int32_t);
typedef void (*gemm_t)(int32_t, int32_t, int32_t, int64_t, int64_t, int64_t, double, const double *,
                       int64_t, const double *, int64_t, double, double *, int64_t, int32_t);
typedef void (*sgemm_t)(int32_t, int32_t, int32_t, int64_t, int64_t, int64_t, float, const float *,
                        int64_t, const float *, int64_t, float, float *, int64_t, int32_t);
typedef struct { double t0, t1; int64_t kind, a, b, c; } event;
#define CAP (1 << 20)
event events[CAP];
int64_t n_events;
static pf_t real_pf;
static gemm_t real_gemm;
static sgemm_t real_sgemm;
static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec * 1e-3;
}
void shim_set(void *pf, void *gemm, void *sgemm) {
    real_pf = (pf_t)pf; real_gemm = (gemm_t)gemm; real_sgemm = (sgemm_t)sgemm;
}
void shim_parallel_for(task fn, void *ctx, int64_t n, int32_t chunks, int32_t threads) {
    double t0 = now_us();
    real_pf(fn, ctx, n, chunks, threads);
    if (n_events < CAP) events[n_events++] = (event){t0, now_us(), 1, (int64_t)(uintptr_t)fn, n, chunks};
}
/* gradc_pool_dgemm / gradc_pool_sgemm, timed */
#define SHIM_GEMM(NAME, T, REAL)                                                              \
    void NAME(int32_t o, int32_t ta, int32_t tb, int64_t m, int64_t n, int64_t k, T alpha,    \
              const T *A, int64_t lda, const T *B, int64_t ldb, T beta, T *C, int64_t ldc,    \
              int32_t threads) {                                                              \
        double t0 = now_us();                                                                 \
        REAL(o, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, threads);               \
        if (n_events < CAP)                                                                   \
            events[n_events++] = (event){t0, now_us(), 2 + (ta == 112) + 2 * (tb == 112), m, n, k}; \
    }
SHIM_GEMM(shim_dgemm, double, real_gemm)
SHIM_GEMM(shim_sgemm, float, real_sgemm)
"""


class Event(ctypes.Structure):
    _fields_ = [("t0", ctypes.c_double), ("t1", ctypes.c_double), ("kind", ctypes.c_int64),
                ("a", ctypes.c_int64), ("b", ctypes.c_int64), ("c", ctypes.c_int64)]


def install_shim(workdir: str):
    """Compile the shim and bind gradc_parallel_for / gradc_pool_dgemm to it."""
    import llvmlite.binding as llvm

    from gradc import _callpath
    from gradc.backends import llvm_jit
    state = llvm_jit.init()
    blas = state.get("blas") or {}
    if not blas.get("pool"):
        raise SystemExit("nest_timeline: gradc's pool-split products are not in use here (no OpenBLAS "
                         "with per-thread counts, or a stale build of gradc._callpath)")
    src, lib = os.path.join(workdir, "shim.c"), os.path.join(workdir, "shim.so")
    with open(src, "w") as f:
        f.write(SHIM)
    subprocess.run([os.environ.get("CC", "cc"), "-O2", "-shared", "-fPIC", "-o", lib, src], check=True)
    shim = ctypes.CDLL(lib)
    pool_d, pool_s = _callpath.pool_gemm_register(blas["d"], blas["s"], *blas["threads"], blas["int"] == 64)
    shim.shim_set(ctypes.c_void_p(_callpath.parallel_for_address()), ctypes.c_void_p(pool_d),
                  ctypes.c_void_p(pool_s))
    llvm.add_symbol("gradc_parallel_for", ctypes.cast(shim.shim_parallel_for, ctypes.c_void_p).value)
    llvm.add_symbol("gradc_pool_dgemm", ctypes.cast(shim.shim_dgemm, ctypes.c_void_p).value)
    llvm.add_symbol("gradc_pool_sgemm", ctypes.cast(shim.shim_sgemm, ctypes.c_void_p).value)
    return shim


def label(e: Event, names: dict) -> str:
    if e.kind == 1:
        return f"threaded nest #{names.setdefault(e.a, len(names))}: {e.b} rows in {e.c} chunks"
    ta, tb = (e.kind - 2) & 1, (e.kind - 2) >> 1
    return f"product {'A^T' if ta else 'A'} @ {'B^T' if tb else 'B'}: m={e.a} n={e.b} k={e.c}"


def timeline(shim, f, args, calls: int) -> None:
    import numpy as np
    from gradc.roofline import run_until_hot
    # its hot code first: compiled on a thread of its own, beside the calls, it would
    # take a core from the pool while they were timed
    run_until_hot(f, args)
    for _ in range(20):
        f(*args)
    ctypes.c_int64.in_dll(shim, "n_events").value = 0
    walls = []
    for _ in range(calls):
        t0 = time.perf_counter()
        f(*args)
        walls.append(time.perf_counter() - t0)
    n = ctypes.c_int64.in_dll(shim, "n_events").value
    per = n // calls
    if per == 0:
        print(f"call median {np.median(walls) * 1e6:.0f} us; no threaded nest or product")
        return
    events = (Event * n).in_dll(shim, "events")
    dur = np.array([[events[c * per + i].t1 - events[c * per + i].t0 for i in range(per)] for c in range(calls)])
    gap = np.array([[events[c * per + i].t0 - events[c * per + i - 1].t1 if i else 0.0 for i in range(per)]
                    for c in range(calls)])
    print(f"call median {np.median(walls) * 1e6:.0f} us, {per} events per call "
          f"(median of {calls} calls; gap = the caller alone before the event)")
    print(f"  {'gap us':>8} {'event us':>9}  event")
    names: dict = {}
    for i in range(per):
        print(f"  {np.median(gap[:, i]):8.1f} {np.median(dur[:, i]):9.1f}  {label(events[i], names)}")
    print(f"  {np.median(gap.sum(1)):8.1f} {np.median(dur.sum(1)):9.1f}  total")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        print(__doc__)
        return 2
    workdir = tempfile.mkdtemp(prefix="gradc-timeline-")
    os.environ["GRADC_CACHE_DIR"] = os.path.join(workdir, "cache")
    shim = install_shim(workdir)
    import gradc
    if argv[0] == "sweep":
        from gradc import bench_sweep
        cfg = next((c for c in bench_sweep.select(None) if c.name == argv[1]), None)
        if cfg is None:
            raise SystemExit(f"nest_timeline: no sweep configuration {argv[1]!r}")
        args = bench_sweep.make_args(cfg, argv[2] if len(argv) > 2 else "float64")
        f = gradc.value_and_grad(bench_sweep.gradc_model(cfg), argnums=cfg.argnums)
    else:
        from gradc.bench_models import MODELS, make_data
        model = MODELS[argv[0]]
        args = make_data(argv[0], argv[1], argv[2] if len(argv) > 2 else "float64")
        f = gradc.value_and_grad(model.gradc, argnums=model.argnums)
    f(*args)   # compiles
    t0 = time.perf_counter()
    f(*args)
    one = time.perf_counter() - t0
    timeline(shim, f, args, calls=max(20, min(500, int(2.0 / max(one, 1e-4)))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
