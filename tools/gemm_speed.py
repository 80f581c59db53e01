"""gradc's matrix products against OpenBLAS, one thread, CPU time per product (or wall
time with ``--threads N``).

Both sides are called the same way (ctypes, the same arguments): gradc_pool_dgemm /
sgemm with one thread (runtime/poolgemm.c, which runs gradc's own kernel,
runtime/gemm_small.c, where gemm_small_wants says so, else OpenBLAS) and numpy's
OpenBLAS cblas_dgemm / sgemm directly, OpenBLAS limited to one thread.  Each product
is timed in 7 rounds of about 0.1 s of calls (time.process_time); the minimum is shown.

    python tools/gemm_speed.py nn,2048,64,64 nt,2048,64,64 tn,64,2048,64
    python tools/gemm_speed.py --dtype float32 nn,65536,64,64

A product is FORM,M,K,N: C[M,N] = op(A)[M,K] @ op(B)[K,N]; FORM nn (A @ B), nt (A @ B^T,
B stored [N,K]) or tn (A^T @ B, A stored [K,M]).
"""
import argparse
import ctypes
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gradc import _callpath  # noqa: E402
from gradc.backends import llvm_jit  # noqa: E402
from gradc.roofline import blas_threads  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("products", nargs="+", help="FORM,M,K,N")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--threads", type=int, default=1,
                   help="threads for both (above 1: wall time per product instead of CPU time)")
    p.add_argument("--copies", type=int, default=1,
                   help="cycle through this many copies of the operands, so that operands larger "
                        "than a quarter of the last-level cache come from memory as in a model")
    opts = p.parse_args()
    found = llvm_jit.init()["blas"]
    if not found or not found.get("pool"):
        sys.exit("numpy's BLAS has no per-thread thread count: gradc's pool products are off")
    pd, ps = _callpath.pool_gemm_register(found["d"], found["s"], *found["threads"], found["int"] == 64)
    I = ctypes.c_int64 if found["int"] == 64 else ctypes.c_int32
    dt = np.dtype(opts.dtype)
    T = ctypes.c_double if dt == np.float64 else ctypes.c_float
    args = [ctypes.c_int32] * 3 + [I] * 3 + [T, ctypes.c_void_p, I, ctypes.c_void_p, I, T, ctypes.c_void_p, I]
    gradc_gemm = ctypes.CFUNCTYPE(None, *args, ctypes.c_int32)(pd if dt == np.float64 else ps)
    blas_gemm = ctypes.CFUNCTYPE(None, *args)(found["d"] if dt == np.float64 else found["s"])

    def call(fn, form, a, b, c, *threads):
        M, N = c.shape
        K = a.shape[0] if form == "tn" else a.shape[1]
        fn(101, 112 if form == "tn" else 111, 112 if form == "nt" else 111, M, N, K, 1.0, a.ctypes.data,
           a.shape[1], b.ctypes.data, b.shape[1], 0.0, c.ctypes.data, N, *threads)

    clock = time.process_time if opts.threads == 1 else time.perf_counter

    def cpu_time(fn):
        fn()
        t0, k = clock(), 0
        while clock() - t0 < 0.02:
            fn()
            k += 1
        best = 1e9
        for _ in range(7):
            t0 = clock()
            for _ in range(k * 5):
                fn()
            best = min(best, (clock() - t0) / (k * 5))
        return best

    what = "one thread, CPU time" if opts.threads == 1 else f"{opts.threads} threads, wall time"
    print(f"load average {os.getloadavg()[0]:.1f}, {dt.name}, {what} per product (min of 7)")
    rng = np.random.default_rng(0)
    with blas_threads(opts.threads):
        for spec in opts.products:
            form, M, K, N = spec.split(",")[0], *map(int, spec.split(",")[1:])
            a = [rng.standard_normal((K, M) if form == "tn" else (M, K)).astype(dt) for _ in range(opts.copies)]
            b = [rng.standard_normal((N, K) if form == "nt" else (K, N)).astype(dt) for _ in range(opts.copies)]
            c1, c2 = np.empty((M, N), dt), np.empty((M, N), dt)
            turn = [0]

            def next_copy():
                turn[0] = (turn[0] + 1) % opts.copies
                return a[turn[0]], b[turn[0]]
            t1 = cpu_time(lambda: call(gradc_gemm, form, *next_copy(), c1, opts.threads))
            t2 = cpu_time(lambda: call(blas_gemm, form, *next_copy(), c2))
            fl = 2 * M * N * K
            print(f"{spec:>22}: gradc {t1 * 1e6:9.1f} us {fl / t1 / 1e9:5.1f} GFLOP/s   "
                  f"OpenBLAS {t2 * 1e6:9.1f} us {fl / t2 / 1e9:5.1f} GFLOP/s   OpenBLAS/gradc {t2 / t1:.2f}")


if __name__ == "__main__":
    main()
