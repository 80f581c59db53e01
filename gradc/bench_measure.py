"""The measuring half of ``gradc bench``: comparison with a reference, timing and settling.

Kept apart from the zoo's run (:mod:`gradc.bench`) and its table
(:mod:`gradc.bench_render`) because the sweep (:mod:`gradc.bench_sweep`), the demo and
tools/ scripts time and check their own functions with the same rules: ``compare``'s
norm-wise relative error, ``measure``'s interleaved rounds with ``settle`` and
``warm_up`` between implementations (the module docstring of :mod:`gradc.bench` says
why), the timing budget's constants, the host's description and the peers' imports.
This is the lowest of the bench modules: it imports none of them."""
from __future__ import annotations

import gc
import os
import platform
import sys
import time
import types

import numpy as np

from .roofline import blas_threads, gradc_threads, run_until_hot

RTOL = {"float64": 1e-9, "float32": 1e-4}
BUDGET_S = 0.1           # per implementation and mode (forward, value_and_grad) per cell
QUICK_FACTOR = 0.1
BATCH_S = 2e-4           # a batch of calls lasts about this long
MIN_BATCHES, QUICK_MIN_BATCHES = 5, 3
MAX_BATCHES = 5000
ROUNDS, QUICK_ROUNDS = 10, 3
NOISY_IQR = 0.5          # a median whose interquartile range exceeds this fraction is "noisy"
PEERS = ("jax", "torch")


# ----------------------------------------------------------------------------- helpers
def _fresh(fn):
    """A new function object with the same code: no transformation cache can know it."""
    f = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    f.__qualname__, f.__module__ = fn.__qualname__, fn.__module__
    return f


def _grads(result, argnums):
    """(value, grad or tuple of grads) -> [value, grad, ...] as float64 arrays."""
    value, g = result
    gs = (g,) if isinstance(argnums, int) else tuple(g)
    return [np.asarray(value, dtype=np.float64)] + [np.asarray(x, dtype=np.float64) for x in gs]


def compare(got: list, ref: list, rtol: float) -> dict:
    """Norm-wise relative error of each output: max|got-ref| / max|ref|."""
    worst, why = 0.0, None
    for k, (a, b) in enumerate(zip(got, ref)):
        name = "value" if k == 0 else f"grad {k - 1}"
        if a.shape != b.shape:
            return {"ok": False, "max_rel_err": None, "why": f"{name}: shape {a.shape}, expected {b.shape}"}
        if not np.all(np.isfinite(a)) or not np.all(np.isfinite(b)):
            if not np.array_equal(a, b, equal_nan=True):
                return {"ok": False, "max_rel_err": None, "why": f"{name}: non-finite entries differ"}
            continue
        scale = float(np.max(np.abs(b))) if b.size else 0.0
        diff = float(np.max(np.abs(a - b))) if a.size else 0.0
        err = diff / scale if scale > 0 else diff
        if err > worst:
            worst, why = err, name
    if len(got) != len(ref):
        return {"ok": False, "max_rel_err": None, "why": f"{len(got)} outputs, expected {len(ref)}"}
    ok = worst <= rtol
    return {"ok": ok, "max_rel_err": worst, "rtol": rtol,
            "why": None if ok else f"{why}: relative error {worst:.2e} > {rtol:g}"}


# ----------------------------------------------------------------------------- machine
def machine_info(threads=None) -> dict:
    info = {"cpu": None, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "numpy": np.__version__}
    try:
        info["cores_usable"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        info["cores_usable"] = os.cpu_count()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["cpu"] = info["cpu"] or platform.processor() or platform.machine()
    try:
        import llvmlite
        import llvmlite.binding as llvm
        info["llvmlite"] = llvmlite.__version__
        info["llvm"] = ".".join(map(str, llvm.llvm_version_info))
        info["llvm_host_cpu"] = llvm.get_host_cpu_name()
    except Exception as e:  # noqa: BLE001 - informational only
        info["llvmlite"] = f"unavailable ({type(e).__name__})"
    from .version import __version__
    info["gradc"] = __version__
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # noqa: BLE001
        info["blas"] = None
    info["env"] = {k: os.environ.get(k) for k in
                   ("GRADC_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    info["GRADC_NUM_THREADS"] = os.environ.get("GRADC_NUM_THREADS")
    try:   # what the LLVM backend actually uses (threads, the BLAS it calls for large products)
        from .backends import llvm_jit
        state = llvm_jit.init()
        with gradc_threads(threads):     # (--threads 1 compiles every kernel for one thread)
            info["gradc_threads"] = llvm_jit.kernel_threads()
        blas = state.get("blas")
        info["gradc_blas"] = bool(blas) if blas is not None else None
    except Exception:  # noqa: BLE001
        info["gradc_threads"] = None
    try:
        info["loadavg"] = list(os.getloadavg())
    except OSError:
        info["loadavg"] = None
    return info


# ----------------------------------------------------------------------------- peers
def load_peers(names, dtype, threads=None) -> dict:
    """{name: {"available": bool, "version" | "reason": str}} (imports are guarded).
    With ``threads`` = 1, XLA and PyTorch are limited to one thread (XLA's flags only
    take effect before jax is first imported)."""
    out = {}
    if threads == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                                   " intra_op_parallelism_threads=1").strip()
    for name in names:
        try:
            if name == "jax":
                if threads == 1 and "jax" in sys.modules:
                    raise RuntimeError("jax was imported before --threads 1 could limit it")
                import jax
                if dtype == "float64":
                    jax.config.update("jax_enable_x64", True)
                out[name] = {"available": True, "version": jax.__version__}
            elif name == "torch":
                import torch
                if threads == 1:
                    torch.set_num_threads(1)
                out[name] = {"available": True, "version": torch.__version__,
                             "threads": torch.get_num_threads()}
        except ImportError:
            out[name] = {"available": False, "reason": "not installed (pip install 'gradc[peers]')"}
        except Exception as e:  # noqa: BLE001 - a broken install must not break the benchmark
            out[name] = {"available": False, "reason": f"import failed: {type(e).__name__}: {e}"}
    return out


# ----------------------------------------------------------------------------- timing
def _timed(fn, args, k):
    t0 = time.perf_counter()
    for _ in range(k):
        fn(*args)
    return time.perf_counter() - t0


def _other_threads(name: str):
    """The text of /proc/self/task/<tid>/<name> for each thread of this process other
    than the caller (a thread that exits meanwhile is skipped), or None where
    /proc/self/task does not exist."""
    import threading
    me = str(threading.get_native_id())
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return None
    texts = []
    for tid in tids:
        if tid != me:
            try:
                with open(f"/proc/self/task/{tid}/{name}") as f:
                    texts.append(f.read())
            except OSError:
                continue
    return texts


def _other_threads_cpu_ns():
    """CPU time (ns) used so far by this process's threads other than the caller, or
    None where /proc/self/task/*/schedstat does not exist."""
    texts = _other_threads("schedstat")
    if texts is None:
        return None
    return sum(int(t.split()[0]) for t in texts if t.split())


def _other_threads_runnable() -> bool:
    """Is a thread of this process other than the caller running or waiting for a core
    (state R in /proc/self/task/*/stat)?  A spinning pool thread the scheduler has set
    aside on a loaded machine uses no CPU for a while, but it is still runnable."""
    # the state is the first field after the command name, which ends with the last ")"
    return any(t.rsplit(")", 1)[-1].split()[:1] == ["R"] for t in _other_threads("stat") or ())


SETTLE_QUIET_S = 0.005     # other threads idle this long: their pools have gone to sleep
SETTLE_TIMEOUT_S = 0.5


# After settling, the cores of a VM come back to full speed only after some work: a
# 50 us gradc call ran at 100-280 us for its first ~80 calls after a 0.1 s idle wait,
# and at full speed after 30 ms of untimed calls (measured on the 2-core dev VM, M2
# medium float32).  Every implementation gets the same warm-up.
WARM_S = 0.03


def warm_up(fn=None, args=(), seconds=WARM_S) -> None:
    """Run ``fn(*args)`` untimed (at least once) until ``seconds`` have passed; with no
    ``fn``, keep this thread busy that long."""
    t0 = time.perf_counter()
    while True:
        if fn is not None:
            fn(*args)
        if time.perf_counter() - t0 >= seconds:
            return


def settle(quiet_s=SETTLE_QUIET_S, timeout_s=SETTLE_TIMEOUT_S) -> dict:
    """Wait until no other thread of this process has used the CPU, or been runnable,
    for ``quiet_s`` (spinning thread pools have gone to sleep).  Returns {"waited_s",
    "settled"}."""
    t0 = time.perf_counter()
    last = _other_threads_cpu_ns()
    if last is None:
        return {"waited_s": 0.0, "settled": False}
    quiet_since = t0
    while True:
        time.sleep(0.001)
        now, used = time.perf_counter(), _other_threads_cpu_ns()
        # more than 50 us of CPU in the last poll, or runnable now: busy
        if used - last > 50_000 or _other_threads_runnable():
            quiet_since = now
        last = used
        if now - quiet_since >= quiet_s:
            return {"waited_s": now - t0, "settled": True}
        if now - t0 >= timeout_s:
            return {"waited_s": now - t0, "settled": False}


def measure(entries: dict, budget: float, min_batches: int, rounds: int, progress=None, label="",
            settle_between=True, settling=None) -> dict:
    """Interleaved timing.  ``entries``: {key: (fn, args)}.  Returns {key: stats}.

    A call's time is estimated from the fastest of a few calibration calls (one call
    slowed down by a busy machine must not shrink the sample; a call slower than the
    calibration budget is made once); the number of batches
    then follows from the budget.  Rounds go round-robin over the entries, rotating
    which goes first; within a round an entry stops early once it has used three times
    its share of the budget (at least one batch a round), so a machine far slower than
    the estimate does not make the run last forever.  With ``settle_between``, when the
    implementation (the first item of a key) changes, the other threads of the process
    are first given time to go idle (:func:`settle`) and the implementation runs
    untimed for WARM_S (:func:`warm_up`); the waits are tallied in the dict
    ``settling`` if one is given."""
    plan = {}
    for key, (fn, args) in entries.items():
        times, cal = [], min(budget / 10, 0.02)
        while True:
            times.append(_timed(fn, args, 1))
            if times[-1] >= cal or len(times) >= 100 or (len(times) >= 3 and sum(times) >= cal):
                break            # a slow call needs no second estimate: its batches follow
        per_call = max(min(times), 1e-9)
        k = max(1, int(BATCH_S / per_call))
        nb = int(min(MAX_BATCHES, max(min_batches, round(budget / (k * per_call)))))
        plan[key] = {"k": k, "batches": nb, "estimate_s": per_call, "times": []}
    keys = list(entries)
    n_rounds = max(1, min(rounds, min(p["batches"] for p in plan.values())))
    settling = {} if settling is None else settling
    settling.update(waits=0, waited_s=0.0, timeouts=0)
    previous_impl = None
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for r in range(n_rounds):
            if progress is not None:
                progress.update(f"{label}: timing, round {r + 1}/{n_rounds}")
            order = keys[r % len(keys):] + keys[: r % len(keys)]
            for key in order:
                p = plan[key]
                fn, args = entries[key]
                impl = key[0] if isinstance(key, tuple) else key
                if settle_between and impl != previous_impl:
                    st = settle()
                    settling["waits"] += 1
                    settling["waited_s"] += st["waited_s"]
                    settling["timeouts"] += not st["settled"]
                    warm_up(fn, args)
                previous_impl = impl
                todo = (p["batches"] * (r + 1)) // n_rounds - (p["batches"] * r) // n_rounds
                cap = 3 * budget / n_rounds
                spent = 0.0
                for _ in range(max(todo, 1)):
                    dt = _timed(fn, args, p["k"])
                    p["times"].append(dt / p["k"])
                    spent += dt
                    if spent > cap:
                        break
    finally:
        if gc_was:
            gc.enable()
    out = {}
    for key, p in plan.items():
        t = np.array(p["times"])
        med = float(np.median(t))
        p25, p75 = float(np.percentile(t, 25)), float(np.percentile(t, 75))
        out[key] = {"median_s": med, "min_s": float(t.min()), "p25_s": p25, "p75_s": p75,
                    "noisy": bool((p75 - p25) > NOISY_IQR * med),
                    "batches": len(t), "calls_per_batch": p["k"], "calls": len(t) * p["k"]}
    return out


def measure_no_settle(numpy_entry, gradc_entry, budget: float) -> dict:
    """Each implementation timed right after the other one, as in a program that mixes
    numpy and gradc calls: one gradc call after one numpy call (whose BLAS threads may
    still spin), one numpy call after one gradc call; medians over about ``budget``
    seconds of pairs.  ratio = gradc after numpy / numpy after gradc."""
    (nf, na), (gf, ga) = numpy_entry, gradc_entry
    g_after_n, n_after_g = [], []
    t_end = time.perf_counter() + 2 * budget
    while len(g_after_n) < 5 or (time.perf_counter() < t_end and len(g_after_n) < 2000):
        nf(*na)
        g_after_n.append(_timed(gf, ga, 1))
        n_after_g.append(_timed(nf, na, 1))
    g, n = float(np.median(g_after_n)), float(np.median(n_after_g))
    return {"gradc_after_numpy_s": g, "numpy_after_gradc_s": n, "ratio": g / n, "pairs": len(g_after_n)}


def measure_one_thread(model, args, ref, rtol, settings, progress, label) -> dict:
    """value_and_grad with one thread each, beside the all-threads ratio: gradc compiled
    for one thread against numpy with its BLAS limited to one (per-core efficiency;
    ``--threads 1`` runs the whole benchmark so, peers included).  The one-thread
    kernel is checked against numpy's gradient like the others."""
    import gradc
    progress.update(f"{label}: one thread each")
    with gradc_threads(1):
        vg1 = gradc.value_and_grad(_fresh(model.gradc), argnums=model.argnums, backend="llvm")
        check = compare(_grads(vg1(*args), model.argnums), ref, rtol)
        run_until_hot(vg1, args)
    entries = {("numpy", "vg"): (model.np_value_and_grad, args), ("gradc", "vg"): (vg1, args)}
    with blas_threads(1) as limited:
        stats = measure(entries, settings["budget_s"], settings["min_batches"], settings["rounds"], progress,
                        f"{label}, one thread", settle_between=settings.get("settle", True))
    g, n = stats[("gradc", "vg")], stats[("numpy", "vg")]
    return {"gradc_s": g["median_s"], "numpy_s": n["median_s"], "ratio": g["median_s"] / n["median_s"],
            "noisy": bool(g["noisy"] or n["noisy"]), "blas_limited": bool(limited), "check": check}
