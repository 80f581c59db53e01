"""How lax.scan's compile time grows with the number of steps (it unrolls while tracing).

    python tools/scan_compile_time.py

Times the first call (trace, differentiate, compile, run) and then a call of the gradient
of a small RNN (batch 64, 16 inputs, 32 tanh units) scanned over 50 and 200 steps."""
import time

import numpy as np

import gradc
import gradc.numpy as gnp
from gradc import lax

r = np.random.default_rng(0)
W, U = r.standard_normal((32, 32)) * 0.2, r.standard_normal((16, 32)) * 0.2


def loss(W, U, xs):
    def step(h, x):
        h = gnp.tanh(h @ W + x @ U)
        return h, gnp.sum(h)
    h, ys = lax.scan(step, gnp.zeros((xs.shape[1], 32)), xs)
    return gnp.sum(ys) + gnp.sum(h ** 2)


for steps in (50, 200):
    xs = r.standard_normal((steps, 64, 16))
    f = gradc.grad(loss, argnums=(0, 1))
    t0 = time.perf_counter()
    f(W, U, xs)
    t1 = time.perf_counter()
    f(W, U, xs)
    print(f"{steps} steps: first call {t1 - t0:.2f} s, then {(time.perf_counter() - t1) * 1e3:.2f} ms per call")
