"""Concurrency and endurance: one compiled function called from many threads at once
(through the C fast path, which holds the GIL, and through the ctypes path, which
releases it so kernels really run simultaneously and contend for the thread pool);
tracing and compiling from several threads; two processes filling one disk-cache entry
at once; and a long run of small calls that must not grow the process's memory."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as onp
import pytest

import gradc
import gradc.numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THREADS = 8


def neuron(w, b, X, y):
    return np.mean((gradc.relu(X @ w + b) - y) ** 2)


def _problem(n, d, seed):
    r = onp.random.default_rng(seed)
    return r.normal(size=d), float(r.normal()), r.normal(size=(n, d)), r.normal(size=n)


def _equal(a, b):
    assert a[0] == b[0]
    for x, y in zip(a[1], b[1]):
        assert onp.array_equal(x, y)


def _hammer(fn, jobs, rounds):
    """Run fn(*args) for every args in jobs, ``rounds`` times, from THREADS threads
    released together; return results in job order."""
    barrier = threading.Barrier(THREADS)
    results = [[None] * len(jobs) for _ in range(THREADS)]

    def worker(t):
        barrier.wait()
        for _ in range(rounds):
            for k in range(len(jobs)):
                j = (k + t) % len(jobs)
                results[t][j] = fn(*jobs[j])
        return t
    with ThreadPoolExecutor(THREADS) as ex:
        list(ex.map(worker, range(THREADS)))
    return results


@pytest.mark.parametrize("path", ["fast", "ctypes"])
def test_one_function_from_many_threads(path):
    f = gradc.value_and_grad(neuron, argnums=(0, 1), backend="llvm")
    # a large problem (40000 x 9: the kernel uses the thread pool) and small ones
    probs = [_problem(40_000, 9, 0), _problem(7, 9, 1), _problem(1, 9, 2), _problem(1000, 9, 3)]
    if path == "ctypes":
        # Fortran-order X: the fast path refuses it, the ctypes path (which releases
        # the GIL) copies it, so kernels run truly concurrently
        probs = [(w, b, onp.asfortranarray(X), y) for w, b, X, y in probs]
    single = [f(*p) for p in probs]
    if path == "fast":
        assert f._fast is not None
    for got in _hammer(f, probs, rounds=5):
        for g, s in zip(got, single):
            _equal(g, s)


def test_mixed_signatures_from_many_threads():
    """Threads alternate float64/float32/fixed-size signatures on one function: the
    fast path holds one signature at a time and must never run it on another's
    arguments."""
    f = gradc.value_and_grad(neuron, argnums=(0, 1), backend="llvm")
    p64 = _problem(513, 5, 4)
    p32 = tuple(onp.float32(a) if onp.ndim(a) == 0 else a.astype(onp.float32) for a in p64)
    p_small = _problem(1, 1, 5)
    jobs = [p64, p32, p_small, _problem(40_000, 5, 6)]
    single = [f(*p) for p in jobs]
    for got in _hammer(f, jobs, rounds=10):
        for g, s in zip(got, single):
            _equal(g, s)


def test_tracing_and_compiling_from_many_threads():
    """Fresh functions (so every thread traces and compiles), and one fresh function
    whose first call comes from all threads at once."""
    shared = gradc.value_and_grad(lambda x, y: np.sum(np.tanh(x) * y + np.exp(-x * x)), argnums=(0, 1))
    barrier = threading.Barrier(THREADS)
    r = onp.random.default_rng(7)
    x, y = r.normal(size=37), r.normal(size=37)

    def work(t):
        barrier.wait()
        out = [shared(x, y)]
        g = gradc.grad(lambda a: np.sum(np.sin(a * (t + 1)) ** 2))     # own function per thread
        a = onp.linspace(-1, 1, 5 + t)
        out.append((g(a), a, t))
        return out
    with ThreadPoolExecutor(THREADS) as ex:
        outs = list(ex.map(work, range(THREADS)))
    want = gradc.value_and_grad(lambda x, y: np.sum(np.tanh(x) * y + np.exp(-x * x)), argnums=(0, 1),
                                backend="numpy")(x, y)
    for (sv, (ga, a, t)) in outs:
        onp.testing.assert_allclose(sv[0], want[0], rtol=1e-12)
        onp.testing.assert_allclose(sv[1][0], want[1][0], rtol=1e-12)
        k = t + 1
        onp.testing.assert_allclose(ga, 2 * onp.sin(a * k) * onp.cos(a * k) * k, rtol=1e-12, atol=1e-14)
    entries = [e for es in shared._cache.values() for e in es]
    assert len(entries) == 1, "concurrent first calls compiled the same signature more than once"


# ----------------------------------------------------------------------------- processes
CACHE_RACE = r"""
import sys, numpy as onp, gradc, gradc.numpy as np
def loss(w, X, y):
    return np.mean((gradc.relu(X @ w) - y) ** 2) + np.sum(np.tanh(w) ** 2)
f = gradc.value_and_grad(loss)
r = onp.random.default_rng(0)
args = (r.normal(size=6), r.normal(size=(50, 6)), r.normal(size=50))
v, g = f(*args)
art = list(f._cache.values())[0][0].run.artifact
print(art.cached, repr(float(v)), [repr(float(t)) for t in g])
"""


def _spawn(cache_dir):
    # GRADC_PREBUILT=0: the vector math is compiled and cached too, a second entry to race on
    env = dict(os.environ, GRADC_CACHE_DIR=str(cache_dir), PYTHONPATH=ROOT, GRADC_PREBUILT="0")
    return subprocess.Popen([sys.executable, "-c", CACHE_RACE], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_processes_fill_one_cache_entry(tmp_path):
    procs = [_spawn(tmp_path) for _ in range(3)]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    results = [o.split(None, 1) for o, _ in outs]
    assert len({r[1] for r in results}) == 1
    entries = list(tmp_path.glob("*.o"))
    assert len(entries) == 2, entries           # the kernel and the vector math's tanh
    assert not list(tmp_path.glob(".tmp-*")), "a temporary file was left behind"
    third = _spawn(tmp_path)
    out, err = third.communicate(timeout=180)
    assert third.returncode == 0, err
    cached, rest = out.split(None, 1)
    assert cached == "True" and rest == results[0][1]


# ----------------------------------------------------------------------------- endurance
LEAK = r"""
import os, sys, numpy as onp, gradc, gradc.numpy as np
N = int(sys.argv[1])
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
f = gradc.value_and_grad(lambda w, b, x: np.sum(np.tanh(w * x + b)), argnums=(0, 1))
w, x = onp.ones(4), onp.linspace(-1, 1, 4)
from gradc.roofline import run_until_hot
run_until_hot(f, (w, 0.5, x))            # its hot code compiled (tanh): a one-time cost
for _ in range(20000):                   # warm up: allocator pools, caches
    f(w, 0.5, x)
before = rss()
for _ in range(N):
    f(w, 0.5, x)
after = rss()
print(before, after)
"""


def test_many_calls_do_not_grow_memory():
    """A million calls (~1.5 s at ~1.5 us a call) of a small value_and_grad through the
    fast path, on its hot code (compiled again once it has run 0.1 s, before the count
    starts); RSS may not grow by more than 4 MB (a leak of even one 32-byte output per
    call would be ~30 MB).  GRADC_ENDURANCE_CALLS changes the count."""
    n = int(os.environ.get("GRADC_ENDURANCE_CALLS", 1_000_000))
    out = subprocess.run([sys.executable, "-c", LEAK, str(n)], capture_output=True, text=True, timeout=600,
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 0, out.stderr
    before, after = map(int, out.stdout.split())
    assert after - before < 4 * 2 ** 20, f"RSS grew by {(after - before) / 2 ** 20:.1f} MB over {n} calls"


def test_thread_pool_gives_the_same_bits_whoever_runs_the_chunks():
    """The caller runs whatever chunks no worker has claimed (a worker that wakes late
    claims nothing): calls right after one another (workers spinning), after pauses
    (workers asleep, waking late) and from two threads at once (one pool: the other
    caller runs its chunks alone) all give the same bits."""
    import time
    w, b, X, y = _problem(40_000, 16, 7)
    vg = gradc.value_and_grad(neuron, argnums=(0, 1))
    want = vg(w, b, X, y)
    for k in range(60):
        if k % 10 == 0:
            time.sleep(0.02)
        v, (gw, gb) = vg(w, b, X, y)
        assert v == want[0] and gb == want[1][1] and onp.array_equal(gw, want[1][0])
    with ThreadPoolExecutor(2) as ex:
        for v, (gw, gb) in ex.map(lambda _: vg(w, b, X, y), range(40)):
            assert v == want[0] and onp.array_equal(gw, want[1][0])
