"""``gradc bench``'s measurements in fresh processes: the peak memory of one
value_and_grad call (large size) and a new process's first call with its kernel in the
disk cache (cold start); the method is items 5 and 6 of :mod:`gradc.bench`'s docstring.

Apart from the zoo's run because each measurement has two halves, the child that runs
in the subprocess (``python -m gradc.bench --memory-child`` / ``--cold-start-child``,
dispatched by :mod:`gradc.bench`'s ``__main__``) and the parent that starts the
children and gathers their JSON lines."""
from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time

import numpy as np

from .bench_models import MODELS, make_data


# ----------------------------------------------------------------------------- memory
def _proc_status_kb(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def memory_child(model_name, size, dtype, impl) -> dict:
    """Runs in a fresh process: peak memory of one value_and_grad call."""
    import resource
    import tracemalloc
    import gradc
    model = MODELS[model_name]
    small = make_data(model_name, "small", dtype)
    if impl == "gradc":
        f = gradc.value_and_grad(model.gradc, argnums=model.argnums, backend="llvm")
    else:
        f = model.np_value_and_grad
    f(*small)                      # compile (shapes are symbolic: the same kernel) / warm up
    args = make_data(model_name, size, dtype)
    inputs = sum(a.nbytes for a in args)
    gc.collect()
    rss0 = _proc_status_kb("VmRSS")
    ru0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reset = False
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")              # reset the peak RSS (VmHWM) to the current RSS
        reset = _proc_status_kb("VmHWM") is not None
    except OSError:
        pass
    out = f(*args)
    if reset:
        growth = (_proc_status_kb("VmHWM") - rss0) * 1024
        method = "VmHWM - VmRSS before the call (peak reset via /proc/self/clear_refs)"
    else:
        ru1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        base = rss0 if rss0 is not None else ru0
        growth = (ru1 - base) * (1 if sys.platform == "darwin" else 1024)
        method = "getrusage max-RSS growth over the RSS before the call (an upper bound)"
    del out
    gc.collect()
    tracemalloc.start()
    f(*args)                       # tracemalloc keeps the peak after the result is freed
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"rss_growth_bytes": max(int(growth), 0), "rss_method": method,
            "tracemalloc_peak_bytes": int(peak), "inputs_bytes": int(inputs)}


def _child_env() -> dict:
    """The environment of a measuring subprocess: this one, with this gradc importable."""
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def measure_memory(model_names, size, dtype, progress) -> dict:
    env = _child_env()
    result = {"size": size, "what": "one value_and_grad call, each implementation in a fresh process",
              "models": {}}
    for name in model_names:
        result["models"][name] = {}
        for impl in ("numpy", "gradc"):
            progress.update(f"memory: {name} {size} {impl} (subprocess)")
            cmd = [sys.executable, "-m", "gradc.bench", "--memory-child", name, size, dtype, impl]
            try:
                r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
                if r.returncode != 0:
                    tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
                    result["models"][name][impl] = {"error": f"exit {r.returncode}: {tail}"}
                else:
                    result["models"][name][impl] = json.loads(r.stdout.strip().splitlines()[-1])
            except Exception as e:  # noqa: BLE001
                result["models"][name][impl] = {"error": f"{type(e).__name__}: {e}"}
    return result


# ----------------------------------------------------------------------------- cold start
COLD_START_RUNS = 3


def cold_start_child(model_name, dtype) -> dict:
    """Runs in a fresh process whose GRADC_CACHE_DIR already holds the model's kernel:
    LLVM start-up, then the first value_and_grad call and the median of steady calls."""
    import gradc
    from .backends import llvm_jit
    model = MODELS[model_name]
    args = make_data(model_name, "small", dtype)
    t0 = time.perf_counter()
    llvm_jit.init()
    startup = time.perf_counter() - t0
    f = gradc.value_and_grad(model.gradc, argnums=model.argnums, backend="llvm")
    t0 = time.perf_counter()
    f(*args)
    first = time.perf_counter() - t0
    art = f.lower(*args)._entry.run.artifact
    steady = []
    for _ in range(200):
        t0 = time.perf_counter()
        f(*args)
        steady.append(time.perf_counter() - t0)
    return {"llvm_startup_s": startup, "first_call_s": first, "steady_s": float(np.median(steady)),
            "cache": "disk" if art.cached else "compiled"}


def measure_cold_start(model_names, dtype, progress) -> dict:
    """Issue #3's "a new process's first call": for each model at its small size (its
    kernel already in this run's cache), COLD_START_RUNS fresh processes each make one
    first call; the medians of first call minus steady call, and of LLVM's start-up."""
    env = _child_env()
    result = {"runs": COLD_START_RUNS, "size": "small", "models": {}}
    for name in model_names:
        runs = []
        # process 0 makes sure the kernel is in this cache (a kernel this process had
        # already compiled elsewhere was reused from memory, not written here); not timed
        for k in range(COLD_START_RUNS + 1):
            progress.update(f"cold start: {name} (fresh process {k}/{COLD_START_RUNS})")
            cmd = [sys.executable, "-m", "gradc.bench", "--cold-start-child", name, dtype]
            try:
                r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
                if r.returncode == 0:
                    if k:
                        runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
                else:
                    result["models"][name] = {"error": f"exit {r.returncode}: "
                                              + (r.stderr.strip().splitlines() or ["no output"])[-1]}
                    break
            except Exception as e:  # noqa: BLE001
                result["models"][name] = {"error": f"{type(e).__name__}: {e}"}
                break
        else:
            beyond = [x["first_call_s"] - x["steady_s"] for x in runs]
            result["models"][name] = {
                "first_beyond_steady_s": float(np.median(beyond)), "min_s": min(beyond), "max_s": max(beyond),
                "llvm_startup_s": float(np.median([x["llvm_startup_s"] for x in runs])),
                "cache": sorted({x["cache"] for x in runs}), "runs": runs}
    return result
