"""How lax.scan's compile time and speed depend on the number of steps: the native loop
(the step compiled once) against ``unroll=True`` (the step repeated in the graph).

    python tools/scan_compile_time.py [STEPS ...]

For a small RNN's gradient (batch 64, 16 inputs, 32 tanh units) it times the first call
(trace, differentiate, compile, run) and the median of 20 calls after it, for each
number of steps (default 50 200 1000; unrolled only up to 200, where it already takes
seconds).  Set GRADC_CACHE_DIR=off to time compiles, not the disk cache."""
import sys
import time

import numpy as np

import gradc
import gradc.numpy as gnp
from gradc import lax
from gradc.backends.kernel import wait_for_upgrades

r = np.random.default_rng(0)
W, U = r.standard_normal((32, 32)) * 0.2, r.standard_normal((16, 32)) * 0.2


def make(unroll):
    def loss(W, U, xs):
        def step(h, x):
            h = gnp.tanh(h @ W + x @ U)
            return h, gnp.sum(h)
        h, ys = lax.scan(step, gnp.zeros((xs.shape[1], 32)), xs, unroll=unroll)
        return gnp.sum(ys) + gnp.sum(h ** 2)
    return loss


for steps in [int(a) for a in sys.argv[1:]] or (50, 200, 1000):
    xs = r.standard_normal((steps, 64, 16))
    for unroll in (1, True):
        if unroll is True and steps > 200:
            continue
        f = gradc.grad(make(unroll), argnums=(0, 1))
        wait_for_upgrades()     # (a kernel timed before may be compiling its hot code)
        t0 = time.perf_counter()
        f(W, U, xs)
        first = time.perf_counter() - t0
        times = []
        for _ in range(20):
            t1 = time.perf_counter()
            f(W, U, xs)
            times.append(time.perf_counter() - t1)
        kind = "unrolled" if unroll is True else "native  "
        print(f"{steps:5d} steps {kind}: first call {first:.2f} s, then {np.median(times) * 1e3:.2f} ms per call")
