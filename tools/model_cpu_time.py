"""One bench model's value_and_grad on one core: gradc's CPU time per call, numpy's beside it.

gradc compiled for one thread (GRADC_NUM_THREADS=1) and numpy with its BLAS limited to
one thread, on ``gradc bench``'s data (bench_models.make_data).  Each is timed in 7
rounds of about 0.2 s of calls (time.process_time, which a busy neighbour on a shared
machine disturbs far less than wall-clock time), alternating gradc and numpy; the
minimum per call is shown, and for M5 the rate in GFLOP/s (its two products, 4 n d c
FLOP per call).  gradc's result is checked against numpy's first.

    python tools/model_cpu_time.py M5 large
    python tools/model_cpu_time.py M5 medium --dtype float32

To compare two builds, run this in each checkout in turn (PYTHONPATH=that checkout).
"""
import argparse
import os
import sys
import time

os.environ["GRADC_NUM_THREADS"] = "1"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gradc  # noqa: E402
from gradc import bench, bench_models  # noqa: E402
from gradc.roofline import blas_threads  # noqa: E402


def per_call(f, args, k):
    t0 = time.process_time()
    for _ in range(k):
        f(*args)
    return (time.process_time() - t0) / k


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", choices=sorted(bench_models.MODELS))
    p.add_argument("size", choices=bench_models.SIZES)
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--rounds", type=int, default=7)
    opts = p.parse_args()
    model = bench_models.MODELS[opts.model]
    args = bench_models.make_data(model.name, opts.size, opts.dtype)
    vg = gradc.value_and_grad(model.gradc, argnums=model.argnums, backend="llvm")
    with blas_threads(1):
        ref = bench._grads(model.np_value_and_grad(*args), model.argnums)
        check = bench.compare(bench._grads(vg(*args), model.argnums), ref, bench.RTOL[opts.dtype])
        entries = {"gradc": vg, "numpy": model.np_value_and_grad}
        k = {}
        for name, f in entries.items():      # calls per round: about 0.2 s
            k[name] = max(1, int(0.2 / max(per_call(f, args, 1), 1e-6)))
        best = {name: float("inf") for name in entries}
        for _ in range(opts.rounds):
            for name, f in entries.items():
                best[name] = min(best[name], per_call(f, args, k[name]))
    g, n = best["gradc"], best["numpy"]
    line = (f"{opts.model} {opts.size} {opts.dtype}, one thread, CPU time per call (min of {opts.rounds}): "
            f"gradc {g * 1e3:.3f} ms, numpy {n * 1e3:.3f} ms, ratio {g / n:.3f}")
    if opts.model == "M5":
        d = model.dims(opts.size)
        line += f"; gradc {4 * d['n'] * d['d'] * bench_models.OUTPUTS / g / 1e9:.1f} GFLOP/s"
    print(line + f"; check ok={check['ok']} err={check['max_rel_err']:.1e}; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
