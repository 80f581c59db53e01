"""Compile time and steady call time of an RNN written with a Python loop (unrolled
into the graph): the model of examples/rnn_sequence.py, value_and_grad of its five
parameters, against the reference evaluator's gradient.

    python tools/unrolled_rnn_speed.py 10 50 100       # the steps T to measure

Each T: batch 32, 16 inputs, 64 tanh units, one output; the first call (trace,
differentiate, compile with an empty cache directory, run), then calls for 4 s, or until the
hot code has compiled and runs (the longest of those calls is the pause the program
saw, which GRADC_HOT_BACKGROUND=0 makes the hot compile's length), then the best of 5
batches of 20 calls.
"""
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "examples")]

import numpy as np  # noqa: E402

from rnn_sequence import loss  # noqa: E402


def measure(T, B=32, F=16, H=64):
    import gradc
    rng = np.random.default_rng(0)
    args = [rng.standard_normal((F, H)) / 4, rng.standard_normal((H, H)) / 8, np.zeros(H),
            rng.standard_normal((H, 1)) / 8, np.zeros(1), rng.standard_normal((B, T, F)), rng.standard_normal(B)]
    f = gradc.value_and_grad(loss, argnums=(0, 1, 2, 3, 4))
    t0 = time.perf_counter()
    _, g = f(*args)
    first = time.perf_counter() - t0
    w0, longest, switched = time.perf_counter(), 0.0, None
    kernel = f.lower(*args)._entry.run.kernel
    while time.perf_counter() - w0 < 4 or (not kernel.upgraded and time.perf_counter() - w0 < 60):
        t0 = time.perf_counter()
        f(*args)
        longest = max(longest, time.perf_counter() - t0)
        if kernel.upgraded and switched is None:
            switched = time.perf_counter() - w0
    best = 1e9
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(20):
            f(*args)
        best = min(best, (time.perf_counter() - t0) / 20)
    _, want = gradc.value_and_grad(loss, argnums=(0, 1, 2, 3, 4), backend="numpy")(*args)
    err = max(float(np.abs(a - b).max() / np.abs(b).max()) for a, b in zip(g, want))
    return first, longest, switched, best, err


def main():
    with tempfile.TemporaryDirectory() as cache:
        os.environ["GRADC_CACHE_DIR"] = cache
        for T in [int(a) for a in sys.argv[1:]] or [10, 50, 100]:
            first, longest, switched, best, err = measure(T)
            hot = "never" if switched is None else f"{switched:.2f} s later"
            print(f"T={T}: first call {first:.2f} s, longest call after it {longest:.2f} s, hot code {hot}, steady {best * 1e6:.0f} us a call, "
                  f"gradient vs the evaluator: max rel err {err:.1e}", flush=True)


if __name__ == "__main__":
    main()
