"""gradc bench: the hand-written numpy baselines are right, and the command's output is
complete.  No timing assertions: the machine is shared and noisy."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import threading
import time
import sys

import numpy as np
import pytest

import gradc
from gradc import bench, cli
from gradc.backends import llvm_jit
from gradc.bench_models import MODELS, SIZES, make_data

REPO = os.path.dirname(os.path.dirname(os.path.abspath(gradc.__file__)))
NAMES = list(MODELS)


def _flat(result, argnums):
    value, g = result
    gs = (g,) if isinstance(argnums, int) else tuple(g)
    return [np.asarray(value, np.float64)] + [np.asarray(x, np.float64) for x in gs]


def _assert_close(got, ref, rtol, what):
    assert len(got) == len(ref), what
    for k, (a, b) in enumerate(zip(got, ref)):
        assert a.shape == b.shape, f"{what}: output {k} shape {a.shape} != {b.shape}"
        scale = max(float(np.max(np.abs(b))), 1e-300)
        err = float(np.max(np.abs(a - b))) / scale
        assert err <= rtol, f"{what}: output {k} relative error {err:.2e} > {rtol:g}"


# ----------------------------------------------------------------------------- the baselines
@pytest.mark.parametrize("name", NAMES)
def test_numpy_gradient_matches_finite_differences(name):
    """Central differences on every entry of every differentiated argument (small size)."""
    m = MODELS[name]
    args = [np.array(a) for a in make_data(name, "small")]
    value, *grads = _flat(m.np_value_and_grad(*args), m.argnums)
    assert np.isclose(value, m.np_forward(*args), rtol=1e-13, atol=0)
    h = 1e-6
    for i, g in zip(m.wrt, grads):
        fd = np.empty(args[i].shape)
        base = args[i]
        for idx in np.ndindex(base.shape):
            plus, minus = base.copy(), base.copy()
            plus[idx] += h
            minus[idx] -= h
            args[i] = plus
            fp = m.np_forward(*args)
            args[i] = minus
            fm = m.np_forward(*args)
            fd[idx] = (fp - fm) / (2 * h)
        args[i] = base
        scale = max(float(np.max(np.abs(fd))), 1e-12)
        err = float(np.max(np.abs(g - fd))) / scale
        assert err < 1e-6, f"{name}: d/d{m.params[i]} differs from finite differences by {err:.2e}"


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
@pytest.mark.parametrize("name", NAMES)
def test_numpy_baseline_matches_gradc(name, backend):
    m = MODELS[name]
    args = make_data(name, "small")
    ref = _flat(m.np_value_and_grad(*args), m.argnums)
    got = _flat(gradc.value_and_grad(m.gradc, argnums=m.argnums, backend=backend)(*args), m.argnums)
    _assert_close(got, ref, 1e-9, f"{name} value_and_grad, backend {backend}")
    fwd = gradc.jit(m.gradc, backend=backend)(*args)
    _assert_close([np.asarray(fwd, np.float64)], [np.asarray(m.np_forward(*args), np.float64)], 1e-9,
                  f"{name} forward, backend {backend}")


@pytest.mark.parametrize("name", NAMES)
def test_data_is_deterministic_and_typed(name):
    m = MODELS[name]
    for dtype in ("float64", "float32"):
        a, b = make_data(name, "small", dtype), make_data(name, "small", dtype)
        assert len(a) == len(m.params)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
            if x.dtype.kind == "f":
                assert x.dtype == np.dtype(dtype)
    assert set(m.sizes) == set(SIZES)


def test_floors_cover_the_zoo():
    assert set(bench.FLOORS) == set(MODELS)
    for name, row in bench.FLOORS.items():
        assert set(row) == set(SIZES), name
        assert all(0 < v <= 1 for v in row.values())


# ----------------------------------------------------------------------------- helpers
def test_compare_is_normwise_and_catches_errors():
    ref = [np.array(1.0), np.array([1.0, 1e-20])]
    assert bench.compare([np.array(1.0), np.array([1.0, 2e-20])], ref, 1e-9)["ok"]
    bad = bench.compare([np.array(1.0), np.array([1.0 + 1e-6, 0.0])], ref, 1e-9)
    assert not bad["ok"] and "grad 0" in bad["why"]
    assert not bench.compare([np.array(1.0), np.zeros(3)], ref, 1e-9)["ok"]
    assert not bench.compare([np.array(np.nan), ref[1]], ref, 1e-9)["ok"]


def test_measure_interleaves_and_reports_medians():
    calls = []

    def f(tag):
        calls.append(tag)
    out = bench.measure({"a": (f, ("a",)), "b": (f, ("b",))}, budget=0.002, min_batches=3, rounds=3)
    for key in "ab":
        s = out[key]
        assert s["batches"] >= 3 and s["calls"] == s["batches"] * s["calls_per_batch"]
        assert 0 < s["min_s"] <= s["median_s"]
    # round-robin: 'b' is timed before 'a' has finished all of its batches
    last_a = max(i for i, t in enumerate(calls) if t == "a")
    first_b = min(i for i, t in enumerate(calls) if t == "b")
    assert first_b < last_a


def _spin(seconds, done=None):
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        pass
    if done is not None:
        done.append(time.perf_counter())


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs /proc/self/task/*/schedstat")
def test_settle_waits_for_a_spinning_thread_to_stop():
    """A thread spinning for 0.15 s (as OpenBLAS's workers do after a call) holds settle()
    back until it stops; a thread that never stops makes it give up at the timeout.
    The assertions are about order and settle's own bookkeeping, not how long anything
    took: a spinner the scheduler sets aside on a loaded machine is still runnable, and
    settle() counts it busy."""
    done = []
    th = threading.Thread(target=_spin, args=(0.15, done))
    th.start()
    st = bench.settle(quiet_s=0.005, timeout_s=10.0)
    returned = time.perf_counter()
    th.join()
    assert st["settled"] and done and returned >= done[0], (st, done, returned)
    quiet = bench.settle(quiet_s=0.005, timeout_s=10.0)       # nobody else runs now
    assert quiet["settled"] and quiet["waited_s"] >= 0.005, quiet
    th = threading.Thread(target=_spin, args=(1.0,))
    th.start()
    busy = bench.settle(quiet_s=0.005, timeout_s=0.2)
    th.join()
    assert not busy["settled"] and busy["waited_s"] >= 0.2, busy


def test_measure_settles_between_implementations():
    calls, settling = [], {}

    def f(tag):
        calls.append(tag)
    bench.measure({("a", "x"): (f, ("a",)), ("a", "y"): (f, ("a",)), ("b", "x"): (f, ("b",))},
                  budget=0.002, min_batches=3, rounds=3, settling=settling)
    # a wait whenever the implementation changes: a->b and b->a in each of 3 rounds (rotated)
    assert settling["waits"] >= 4 and settling["timeouts"] == 0, settling
    off = {}
    bench.measure({"a": (f, ("a",)), "b": (f, ("b",))}, budget=0.002, min_batches=3, rounds=3,
                  settle_between=False, settling=off)
    assert off["waits"] == 0


# ----------------------------------------------------------------------------- the command
def test_bench_quick_small_json(tmp_path, capsys):
    out_json, out_png = tmp_path / "out.json", tmp_path / "out.png"
    code = cli.main(["bench", "--quick", "--sizes", "small", "--json", str(out_json), "--plot", str(out_png)])
    out, err = capsys.readouterr()
    assert code == 0
    doc = json.loads(out_json.read_text())

    assert doc["dtype"] == "float64" and doc["sizes"] == ["small"] and doc["models"] == NAMES
    assert doc["rtol"] == 1e-9
    for key in ("cpu", "cores", "numpy", "llvmlite", "GRADC_NUM_THREADS"):
        assert key in doc["machine"], key
    assert doc["floors"] == bench.FLOORS
    assert set(doc["peers"]) == {"jax", "torch"}
    assert "skipped" in doc["memory"]            # memory is measured at the large size only
    assert len(doc["cells"]) == len(NAMES)
    for cell, name in zip(doc["cells"], NAMES):
        assert cell["model"] == name and cell["size"] == "small"
        assert cell["dims"] == MODELS[name].dims("small")
        # every cell was checked against numpy before it was timed, and gradc agrees
        assert cell["check"]["gradc"]["ok"] is True, cell["check"]["gradc"]
        assert cell["check"]["gradc"]["max_rel_err"] <= 1e-9
        assert cell["status"] == "ok"
        for mode in ("fwd", "vg"):
            for impl in ("numpy", "gradc"):
                t = cell["times"][mode][impl]
                assert t["median_s"] > 0 and t["batches"] >= bench.QUICK_MIN_BATCHES
            r = cell["ratios"][mode]["gradc"]
            assert r == pytest.approx(cell["times"][mode]["gradc"]["median_s"] / cell["times"][mode]["numpy"]["median_s"])
        assert cell["floor"] == bench.FLOORS[name]["small"]
        # timed on the hot code: vector math inlined where the kernel calls vector math,
        # the batch split over the threads where the graph has one (M4's MLP)
        calls_math = name not in ("M2", "M4")           # relu's models: no transcendental
        splits = name == "M4" and llvm_jit.kernel_threads() > 1
        assert cell["hot"] == {"vg": calls_math or splits, "fwd": calls_math or splits}, cell["hot"]
        assert cell["meets_floor"] in (True, False)
        # the one-thread column: its own kernel, checked, and its ratio of medians
        one = cell["one_thread"]
        assert one["check"]["ok"] is True, one["check"]
        assert one["gradc_s"] > 0 and one["ratio"] == pytest.approx(one["gradc_s"] / one["numpy_s"])
        fc = cell["first_call"]
        assert fc["vg_s"] > 0 and fc["fwd_s"] > 0
        assert fc["vg_cache"] in ("compiled", "disk", "reused", "unknown")
    assert doc["summary"]["checked"] == len(NAMES) and not doc["summary"]["wrong"]
    # cold start: fresh processes found each model's kernel in the run's disk cache
    for name in NAMES:
        cs = doc["cold_start"]["models"][name]
        assert cs["cache"] == ["disk"], cs
        assert len(cs["runs"]) == bench.COLD_START_RUNS and cs["first_beyond_steady_s"] > 0
        assert all(r["steady_s"] < r["first_call_s"] for r in cs["runs"])
    assert "cold start: a new process's first value_and_grad" in out
    assert "1 thread = value_and_grad ratio with one thread each" in out

    # the table: one row per cell, every floor marked
    rows = [line for line in out.splitlines() if line.split()[:2] and line.split()[0] in NAMES]
    assert len(rows) == len(NAMES)
    assert all(("✓" in r) or ("✗" in r) or (" ok " in r) or (" X " in r) for r in rows)
    assert "ratio" in out and f"correctness: {len(NAMES)} of {len(NAMES)} cells checked" in out
    # progress: one line per cell on stderr (not a terminal here)
    assert sum(1 for line in err.splitlines() if line.startswith("[")) == len(NAMES)
    try:
        import matplotlib  # noqa: F401
        assert out_png.exists()
    except ImportError:
        assert "pip install matplotlib" in err and not out_png.exists()


def test_a_wrong_baseline_marks_the_cell_wrong(monkeypatch):
    m = MODELS["M1"]

    def off(x):
        v, g = m.np_value_and_grad(x)
        return v, g * (1 + 1e-6)
    monkeypatch.setitem(bench.MODELS, "M1", dataclasses.replace(m, np_value_and_grad=off))
    doc = bench.run_benchmark(["M1"], ["small"], quick=True, memory=False, peers=False, cold_start=False)
    cell = doc["cells"][0]
    assert cell["status"] == "WRONG" and cell["check"]["gradc"]["ok"] is False
    assert cell["meets_floor"] is False
    assert doc["summary"]["wrong"] == ["M1 small"]
    table = bench.render_table(doc, sys.stdout)
    assert "WRONG" in table


def test_usage_errors_are_one_line(capsys):
    assert cli.main(["bench", "--models", "M9"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'M9'" in err and len(err.strip().splitlines()) == 1


def test_memory_child_reports_json(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
               GRADC_CACHE_DIR=str(tmp_path / "cache"))
    r = subprocess.run([sys.executable, "-m", "gradc.bench", "--memory-child", "M2", "small", "float64", "gradc"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    mem = json.loads(r.stdout.strip().splitlines()[-1])
    assert mem["rss_growth_bytes"] >= 0 and mem["tracemalloc_peak_bytes"] > 0
    assert mem["inputs_bytes"] == sum(a.nbytes for a in make_data("M2", "small"))


def test_help(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["bench", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--quick", "--sizes", "--models", "--dtype", "--repeat", "--json", "--plot", "--warm-cache"):
        assert flag in out


def test_warm_up_runs_the_function_for_its_time_and_at_least_once():
    calls = []
    t0 = time.perf_counter()
    bench.warm_up(lambda x: calls.append(x), (1,), seconds=0.02)
    assert time.perf_counter() - t0 >= 0.02 and len(calls) > 1
    calls.clear()
    bench.warm_up(lambda: (calls.append(1), time.sleep(0.05)), seconds=0.01)
    assert calls == [1]                  # one slow call is enough
    t0 = time.perf_counter()
    bench.warm_up(seconds=0.01)          # no function: this thread stays busy
    assert time.perf_counter() - t0 >= 0.01


def test_threads_one_runs_the_table_on_one_thread_without_a_second_column():
    """--threads 1: the main ratios are already one thread each, so no 1-thread column;
    the result is still checked against numpy."""
    doc = bench.run_benchmark(["M2"], ["small"], quick=True, memory=False, peers=False, cold_start=False,
                              threads=1, roofline=False)
    cell = doc["cells"][0]
    assert cell["status"] == "ok" and cell["check"]["gradc"]["ok"] is True
    assert "one_thread" not in cell
    table = bench.render_table(doc, sys.stdout)
    assert "threads: one each" in table
    assert doc["machine"]["gradc_threads"] == 1 and "(gradc uses 1 thread)" in table
    row = next(line for line in table.splitlines() if line.startswith("M2"))
    assert row.split()[-4] == "-", row      # the 1 thread column (before "first call": "0.1 s x")
