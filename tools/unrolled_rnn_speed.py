"""Compile time and steady call time of an RNN written with a Python loop (unrolled
into the graph), value_and_grad with a dict of parameters, against the reference
evaluator's gradient.

    python tools/unrolled_rnn_speed.py 10 50 100       # the steps T to measure

Each T: batch 32, 16 inputs, 64 tanh units, one output; the first call (trace,
differentiate, compile with an empty cache directory, run), then calls for 4 s (the
hot code compiles in that time), then the best of 5 batches of 20 calls.
"""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402


def measure(T, B=32, D=16, H=64):
    import gradc
    import gradc.numpy as gnp
    rng = np.random.default_rng(0)
    p = {"Wx": rng.standard_normal((D, H)) / 4, "Wh": rng.standard_normal((H, H)) / 8, "b": np.zeros(H),
         "Wo": rng.standard_normal((H, 1)) / 8}
    X, y = rng.standard_normal((T, B, D)), rng.standard_normal((B, 1))

    def loss(p, X, y):
        h = gnp.zeros((X.shape[1], p["Wh"].shape[0]))
        for t in range(X.shape[0]):
            h = gnp.tanh(X[t] @ p["Wx"] + h @ p["Wh"] + p["b"])
        return gnp.mean((h @ p["Wo"] - y) ** 2)
    f = gradc.value_and_grad(loss)
    t0 = time.perf_counter()
    _, g = f(p, X, y)
    first = time.perf_counter() - t0
    w0 = time.perf_counter()
    while time.perf_counter() - w0 < 4:
        f(p, X, y)
    best = 1e9
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(20):
            f(p, X, y)
        best = min(best, (time.perf_counter() - t0) / 20)
    _, want = gradc.value_and_grad(loss, backend="numpy")(p, X, y)
    err = max(float(np.abs(g[k] - want[k]).max() / np.abs(want[k]).max()) for k in g)
    return first, best, err


def main():
    with tempfile.TemporaryDirectory() as cache:
        os.environ["GRADC_CACHE_DIR"] = cache
        for T in [int(a) for a in sys.argv[1:]] or [10, 50, 100]:
            first, best, err = measure(T)
            print(f"T={T}: first call {first:.2f} s, steady {best * 1e6:.0f} us a call, "
                  f"gradient vs the evaluator: max rel err {err:.1e}", flush=True)


if __name__ == "__main__":
    main()
