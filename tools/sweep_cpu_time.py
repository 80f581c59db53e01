"""Per-core gradc against jax.jit on ``gradc bench --sweep``'s grid: CPU time per call.

``gradc bench --sweep --threads 1`` times wall-clock medians, which another job on a
shared machine moves by 10-20% (more with two threads).  This script runs gradc and
JAX on one core each (gradc compiled for one thread, numpy's OpenBLAS limited to one,
the process pinned to one CPU before jax starts its thread pool) and measures the process's CPU time (``time.process_time``)
per call, in rounds that alternate the two (7 rounds, about 50 ms of calls each),
which a busy neighbour disturbs far less.  It prints the median and the minimum of the
rounds and both ratios (gradc / JAX; below 1: gradc is faster).  Results are checked
against each other first (``bench.compare``, rtol 1e-9 float64, 1e-4 float32).

    python tools/sweep_cpu_time.py                        # the whole grid, float64
    python tools/sweep_cpu_time.py --dtype float32 --only mlp3,gelu
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ["GRADC_NUM_THREADS"] = "1"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()

import numpy as np  # noqa: E402

import gradc  # noqa: E402
from gradc import bench, bench_sweep  # noqa: E402
from gradc.roofline import blas_threads, one_core  # noqa: E402

ROUNDS, ROUND_S = 7, 0.05


def _cpu(f, args, k):
    t0 = time.process_time()
    for _ in range(k):
        f(*args)
    return (time.process_time() - t0) / k


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--only", metavar="WORDS", help="as gradc bench --sweep-only, e.g. mlp3,gelu")
    a = p.parse_args(argv)
    # one core each: XLA's flag above no longer limits its thread pool (roofline.one_core)
    one_core().__enter__()
    peer = bench.load_peers(("jax",), a.dtype)["jax"]
    if not peer.get("available"):
        print(f"jax: {peer.get('reason')}", file=sys.stderr)
        return 1
    print(f"CPU time per call, one thread each, {a.dtype}, load average {os.getloadavg()[0]:.1f}")
    with blas_threads(1):
        for cfg in bench_sweep.select(a.only):
            args = bench_sweep.make_args(cfg, a.dtype)
            g = gradc.value_and_grad(bench_sweep.gradc_model(cfg), argnums=cfg.argnums)
            jargs, j, to_list = bench_sweep._jax_impl(cfg, args)
            check = bench.compare(bench._grads(g(*args), cfg.argnums), to_list(j(*jargs)), bench.RTOL[a.dtype])
            k = max(3, int(ROUND_S / max(_cpu(g, args, 1), 1e-6)))
            tg, tj = [], []
            for _ in range(ROUNDS):
                tg.append(_cpu(g, args, k))
                tj.append(_cpu(j, jargs, k))
            mg, mj = float(np.median(tg)), float(np.median(tj))
            print(f"{cfg.name:20} gradc {mg * 1e6:8.0f} us (min {min(tg) * 1e6:.0f})  jax {mj * 1e6:8.0f} us "
                  f"(min {min(tj) * 1e6:.0f})  gradc/jax {mg / mj:.2f} (of minima {min(tg) / min(tj):.2f})"
                  + ("" if check["ok"] else f"  WRONG: {check['why']}"), flush=True)
    print(f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
