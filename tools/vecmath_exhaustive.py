"""Every float32 (or every step-th bit pattern) through one of gradc's float32 vector
math functions, against numpy's float64 function: the worst error in ulps and a
histogram.  The host's library (AVX-512 on an AVX-512 host), or with ``--avx2`` the
generic code built with AVX-512 switched off; the same kernels and error measure as
tests/backends/test_vecmath.py, which samples 300,000 points instead of 2^32.

    python tools/vecmath_exhaustive.py tanh            # all 2^32 bit patterns
    python tools/vecmath_exhaustive.py expm1 --step 2 --avx2
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "tests", "backends"), os.path.join(HERE, "..", "tests")]

import vecmath_harness as H  # noqa: E402
from backends.test_vecmath import reference  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name")
    p.add_argument("--step", type=int, default=1, help="every step-th bit pattern")
    p.add_argument("--avx2", action="store_true", help="the generic (x86-64-v3) code")
    args = p.parse_args(argv)
    kernel = H.compile_unary_kernel(args.name, np.float32,
                                    features=H.host_features_without_avx512() if args.avx2 else None)
    worst, at, wrong, t0 = 0.0, None, 0, time.time()
    edges = [0, 0.5, 1, 1.5, 2, 3, np.inf]
    hist = np.zeros(len(edges) - 1, np.int64)
    chunk = 1 << 24
    for start in range(0, 1 << 32, chunk):
        x = np.arange(start, start + chunk, args.step, dtype=np.uint64).astype(np.uint32).view(np.float32)
        got = kernel(x)
        with np.errstate(invalid="ignore"):
            err = H.ulp_error(got, reference(args.name, x), np.float32)
        both_nan = np.isnan(x) & np.isnan(got)
        if (~np.isfinite(err) & ~both_nan).any():
            bad = ~np.isfinite(err) & ~both_nan
            print(f"wrong special value: x={x[bad][:3]!r} gives {got[bad][:3]!r}")
            wrong += int(bad.sum())
        err = np.where(both_nan, 0.0, err)
        hist += np.histogram(np.where(np.isfinite(err), err, 1e9), bins=edges)[0]
        i = int(np.argmax(np.where(np.isfinite(err), err, -1)))
        if err[i] > worst:
            worst, at = float(err[i]), (x[i], got[i])
    print(f"{args.name} float32, {'AVX2 code' if args.avx2 else 'host code'}, every "
          f"{'' if args.step == 1 else f'{args.step}th '}bit pattern: worst {worst:.3f} ulp "
          f"at x={at[0]!r} (got {at[1]!r}); ulps in [0, .5, 1, 1.5, 2, 3, inf): {hist.tolist()} "
          f"({time.time() - t0:.0f} s){f'; {wrong} WRONG special values' if wrong else ''}")


if __name__ == "__main__":
    main()
