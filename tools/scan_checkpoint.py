"""What ``checkpoint`` on a scan's step trades: the kernel's memory against time.

    python tools/scan_checkpoint.py [STEPS ...]

For an RNN's value_and_grad (batch 64, 16 inputs, 64 units; a step of tanh, sin and
exp) it prints, for each number of steps (default 250 1000), the kernel's workspace
(which holds the values the forward loop stacks for the backward loop) and the median
of 15 alternating calls, without checkpoint and with ``checkpoint(step)`` (JAX's
default policy: save only each step's incoming carry, recompute the rest)."""
import sys
import time

import numpy as np

import gradc
import gradc.numpy as gnp
from gradc import lax
from gradc.backends.kernel import bind_sizes, wait_for_upgrades
from gradc.backends.workspace import workspace_bytes

r = np.random.default_rng(0)
W, U = r.standard_normal((64, 64)) * 0.1, r.standard_normal((16, 64)) * 0.2


def make(remat):
    def loss(W, U, xs):
        def step(h, x):
            a = gnp.tanh(h @ W + x @ U)
            b = gnp.sin(a) * gnp.exp(-a * a)
            return a + 0.1 * b, gnp.sum(b, axis=1)
        h, ys = lax.scan(gradc.checkpoint(step) if remat else step, gnp.zeros((64, 64)), xs)
        return gnp.sum(h ** 2) + gnp.sum(ys)
    return gradc.value_and_grad(loss, argnums=(0, 1), backend="llvm")


def main(steps):
    print(f"{'steps':>6} {'':>12} {'workspace':>12} {'median':>10}")
    for t in steps:
        xs = r.standard_normal((t, 64, 16))
        fs = {"plain": make(False), "checkpoint": make(True)}
        ws = {}
        for name, f in fs.items():
            f(W, U, xs)
            k = f.lower(W, U, xs)._entry.run.kernel
            ws[name] = workspace_bytes(k.schedule, bind_sizes(k.schedule.graph, [W, U, xs]))
        wait_for_upgrades()
        times = {name: [] for name in fs}
        for _ in range(15):
            for name, f in fs.items():
                t0 = time.perf_counter()
                f(W, U, xs)
                times[name].append(time.perf_counter() - t0)
        for name in fs:
            print(f"{t:>6} {name:>12} {ws[name] / 1e6:>9.1f} MB {1e3 * np.median(times[name]):>7.2f} ms")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [250, 1000])
