"""``gradc bench --vecmath``: gradc's vector math against numpy's, on data in cache.

Each function is compiled alone (``gradc.jit(lambda x: f(x))``) and timed against the
numpy expression a user would write for it, on an array that fits in L1/L2 (4,096
elements by default), interleaved in one process: rounds alternate the two, batches of
calls, the median per call.  numpy has no sigmoid or softplus: its stable expressions
stand in (``scipy.special.expit`` is not a numpy function).  ratio = gradc / numpy
(below 1: gradc is faster); ``best`` is the ratio of the fastest batches, which a
machine shared with other work disturbs least.  numpy on AVX-512 (and AVX2) hosts uses SIMD versions of
exp, log, sin, cos, tanh and more, so this is the comparison that shows whether gradc's
own vector implementations keep up."""
from __future__ import annotations

import time

import numpy as np

import gradc
import gradc.numpy as gnp
from .roofline import run_until_hot

FUNCTIONS = {
    "exp": (gnp.exp, np.exp, (-5.0, 5.0)),
    "log": (gnp.log, np.log, (0.01, 100.0)),
    "log1p": (gnp.log1p, np.log1p, (-0.5, 10.0)),
    "expm1": (gnp.expm1, np.expm1, (-5.0, 5.0)),
    "tanh": (gnp.tanh, np.tanh, (-5.0, 5.0)),
    "sigmoid": (gnp.sigmoid, lambda x: np.exp(-np.logaddexp(0.0, -x)), (-10.0, 10.0)),
    "softplus": (gnp.softplus, lambda x: np.logaddexp(0.0, x), (-10.0, 10.0)),
    "sin": (gnp.sin, np.sin, (-10.0, 10.0)),
    "cos": (gnp.cos, np.cos, (-10.0, 10.0)),
}
NUMPY_FORM = {"sigmoid": "exp(-logaddexp(0, -x))", "softplus": "logaddexp(0, x)"}


def _median_per_call(fn, x, budget):
    calls = max(1, int(2e-4 / max(_once(fn, x), 1e-9)))
    times, t_end = [], time.perf_counter() + budget
    while len(times) < 5 or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn(x)
        times.append((time.perf_counter() - t0) / calls)
    return times


def _once(fn, x):
    fn(x)
    t0 = time.perf_counter()
    fn(x)
    return time.perf_counter() - t0


def run(names=None, n=4096, dtype="float64", rounds=7, budget=0.02) -> list[dict]:
    """[{name, gradc_s, numpy_s, ratio, best_ratio, max_rel_err}] for each function, interleaved."""
    out = []
    rng = np.random.default_rng(0)
    for name in names or FUNCTIONS:
        g, ref, (lo, hi) = FUNCTIONS[name]
        x = rng.uniform(lo, hi, n).astype(dtype)
        f = gradc.jit(lambda v, g=g: g(v), backend="llvm")
        got, want = f(x), ref(x)
        err = float(np.max(np.abs(got - want) / np.maximum(np.abs(want), np.finfo(dtype).tiny)))
        run_until_hot(f, (x,))         # timed on its steady code, as the benchmark's cells
        tg, tn = [], []
        for _ in range(rounds):
            tg += _median_per_call(f, x, budget)
            tn += _median_per_call(ref, x, budget)
        mg, mn = float(np.median(tg)), float(np.median(tn))
        out.append({"name": name, "gradc_s": mg, "numpy_s": mn, "ratio": mg / mn,
                    "best_ratio": min(tg) / min(tn), "max_rel_err": err,
                    "numpy_form": NUMPY_FORM.get(name, f"np.{name}(x)")})
    return out


def render(rows, n, dtype) -> str:
    lines = [f"vector math, {n:,} {dtype} elements in cache, median time per call "
             f"(ratio = gradc / numpy, below 1: gradc is faster; best: of the fastest batches)",
             f"{'function':<9} {'gradc':>10} {'numpy':>10} {'ratio':>6} {'best':>6} {'max rel err':>12}  numpy's form"]
    for r in rows:
        lines.append(f"{r['name']:<9} {r['gradc_s'] * 1e6:>8.2f}us {r['numpy_s'] * 1e6:>8.2f}us "
                     f"{r['ratio']:>6.2f} {r['best_ratio']:>6.2f} {r['max_rel_err']:>12.2e}  {r['numpy_form']}")
    return "\n".join(lines)
