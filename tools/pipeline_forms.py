"""Which form of a row pipeline's narrow products is faster, measured in whole pipelines.

A softmax regression of C classes (gradc.bench_models.m5_gradc: Z = X @ W, its softmax,
X^T G) is compiled once per C; its value_and_grad then runs in each form of the blocks'
products (gradc._callpath.skinny_forms: the padded kernels of runtime/skinny.c, the
AVX2 forms of skinny_lanes_v3.c, the AVX-512 ones of skinny_lanes.c, and the choice the
runtime makes), interleaved round by round in one process, all threads.  Each form's
gradient is first checked against numpy's.  Prints the median time per call of each.
This is how skinny_lanes_v3.c's widths were chosen: on a block in cache
(tools/skinny_speed.c) the ranking can differ, because in a pipeline the head reads X
from memory and the tail's prefetches meet the next block.

    python tools/pipeline_forms.py 65536x512 float32 1-16
    python tools/pipeline_forms.py 4096x256 float64 2,10 padded,avx2
"""
from __future__ import annotations

import sys
import time

import numpy as np

import gradc
from gradc import _callpath
from gradc.bench_models import m5_gradc, m5_value_and_grad

FORMS = {"chosen": -1, "padded": 0, "avx2": 3, "avx512": 4}


def classes(spec: str) -> list[int]:
    out = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    n, d = (int(v) for v in argv[0].split("x"))
    dtype = np.dtype(argv[1])
    forms = argv[3].split(",") if len(argv) > 3 else ["padded", "avx2", "chosen"]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d)).astype(dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-4
    print(f"softmax regression, X {n}x{d} {dtype}, value_and_grad, median us per call over 9 rounds")
    for c in classes(argv[2]):
        W = (rng.standard_normal((d, c)) / np.sqrt(d)).astype(dtype)
        labels = rng.integers(0, c, n)
        f = gradc.jit(gradc.value_and_grad(m5_gradc, argnums=0))
        ref = m5_value_and_grad(W.astype(np.float64), X.astype(np.float64), labels)[1]
        scale = max(np.max(np.abs(ref)), 1e-300)
        for form in forms:
            _callpath.skinny_forms(FORMS[form])
            g = np.asarray(f(W, X, labels)[1])
            assert np.max(np.abs(g - ref)) <= tol * scale, (c, form)
        times = {form: [] for form in forms}
        for _ in range(9):
            for form in forms:
                _callpath.skinny_forms(FORMS[form])
                f(W, X, labels)
                calls, t0 = 0, time.perf_counter()
                while (t := time.perf_counter() - t0) < 0.04:
                    f(W, X, labels)
                    calls += 1
                times[form].append(t / calls)
        _callpath.skinny_forms(-1)
        print(f"C={c:2d}  " + "  ".join(f"{form} {np.median(times[form]) * 1e6:9.1f}" for form in forms), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
