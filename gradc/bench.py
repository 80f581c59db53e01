"""``gradc bench``: gradc against hand-written numpy (and JAX / PyTorch when installed).

What is measured, and how
-------------------------
For every cell (a model of :mod:`gradc.bench_models` at a size):

1. *Correctness first.*  gradc's value and gradients (backend ``"llvm"``) are compared
   with the hand-written numpy ones, and so are the peers'.  An output agrees when
   ``max|got - ref| <= rtol * max|ref|`` (rtol 1e-9 for float64, 1e-4 for float32; a
   norm-wise relative error, so gradient entries that cancel to ~0 do not need digits
   they cannot have).  A cell that disagrees is marked ``WRONG``: a fast wrong answer
   is not a result.
2. *First call.*  The first call of ``gradc.value_and_grad`` (and of ``gradc.jit``) on a
   fresh function object is timed: trace, differentiate, optimize, schedule, emit and
   compile LLVM IR, run, after the numpy reference's threads have settled and the core
   has been kept busy for 30 ms (as in a running program).  ``GRADC_CACHE_DIR`` points
   at a fresh temporary directory
   (``--warm-cache`` keeps the user's cache), and the cell records whether the object
   code was compiled, loaded from the on-disk cache, or reused from an earlier cell of
   the same run (shapes are symbolic: one kernel serves every size of a model).
3. *Steady state.*  Every implementation (numpy, gradc, peers) x (forward alone,
   value_and_grad) of the cell is timed in one process, interleaved: rounds go
   round-robin over the implementations (rotating which goes first), each round
   timing batches of calls (a batch lasts ~0.2 ms, so timer overhead does not count for
   microsecond calls).  The time per call is the median over all batches; by default
   each implementation gets about 0.2 s per cell (0.1 s forward, 0.1 s gradient; at
   least 5 batches), ``--quick`` a tenth of that, ``--repeat R`` scales it.
   ratio = median gradc / median numpy (below 1: gradc is faster).
   *Settling.*  Thread pools keep spinning after a call: OpenBLAS's workers (numpy's
   matrix products, and gradc's, which call the same OpenBLAS) spin for about 120 ms
   after every BLAS call (measured on the dev machine with ``/proc/self/task/*/stat``),
   PyTorch's OpenMP and XLA's pools likewise.  On a 2-core machine a spinning thread
   left behind by one implementation takes a core from the next one, so naive
   interleaving would time each implementation against its predecessor's pool.  Before
   an implementation's turn in a round, the benchmark therefore waits until no other
   thread of the process has run for 5 ms (per-thread CPU time from
   ``/proc/self/task/*/schedstat``; at most 0.5 s), then runs it untimed for 30 ms
   (which wakes its own pool, as in a training loop, and brings the cores back to
   speed: on a 2-core virtual machine a 50 us call ran 2-5x slower for its first ~80 calls after an
   idle wait) before timing.  Each implementation is thus timed as it runs in a
   program of its own; ``--no-settle`` times the naive interleaving instead.
4. *Floors.*  :data:`FLOORS` holds the ratio each float64 value_and_grad cell must
   reach; the table marks each cell, the exit status is 0 regardless.
5. *Memory* (large size only): the peak memory of one value_and_grad call, for gradc
   and numpy, each in a fresh subprocess that first warms up (compiles) at the small
   size, builds the large inputs, then makes one call at the large size.  Two numbers:
   the resident-set growth during that call (``VmHWM`` minus ``VmRSS`` before the call,
   the peak being reset through ``/proc/self/clear_refs``; elsewhere the ``getrusage``
   max-RSS growth, an upper bound), which sees everything: temporaries, gradc's C
   workspace, buffers a library allocates on first use (OpenBLAS's); and the
   ``tracemalloc`` peak of a second call, which sees only numpy-allocated arrays (numpy
   reports its allocations to tracemalloc; gradc's outputs are numpy arrays, its
   workspace is malloc'ed in C and invisible there).  Inputs are not counted.
6. *Cold start* (small size): with each model's kernel in this run's disk cache (a first
   untimed process makes sure of it), three fresh processes each time LLVM's start-up,
   then their first ``value_and_grad`` call and the median of 200 steady calls;
   reported: the median of first minus steady.
"""
from __future__ import annotations

import gc
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import types

import numpy as np

from .bench_models import MODELS, SIZES, make_data
from .roofline import blas_threads, cell_bound, gradc_threads, measure_host, one_thread_each, run_until_hot

# value_and_grad, float64: the largest acceptable median(gradc) / median(numpy), the
# targets of a 2-core AVX-512 host (issue 17): numpy's SIMD math and OpenBLAS set the bar
FLOORS = {
    "M1": {"small": 0.1, "medium": 0.25, "large": 0.15},
    "M2": {"small": 0.12, "medium": 0.45, "large": 0.52},
    "M3": {"small": 0.15, "medium": 0.5, "large": 0.55},
    "M4": {"small": 0.4, "medium": 0.8, "large": 0.65},
    "M5": {"small": 0.3, "medium": 0.35, "large": 0.25},
    # M6, M7: at least as fast as numpy here; what they are measured for is being ahead of jax.jit
    "M6": {"small": 1.0, "medium": 1.0, "large": 1.0},
    "M7": {"small": 1.0, "medium": 1.0, "large": 1.0},
}

RTOL = {"float64": 1e-9, "float32": 1e-4}
BUDGET_S = 0.1           # per implementation and mode (forward, value_and_grad) per cell
QUICK_FACTOR = 0.1
BATCH_S = 2e-4           # a batch of calls lasts about this long
MIN_BATCHES, QUICK_MIN_BATCHES = 5, 3
MAX_BATCHES = 5000
ROUNDS, QUICK_ROUNDS = 10, 3
NOISY_IQR = 0.5          # a median whose interquartile range exceeds this fraction is "noisy"
MODES = ("fwd", "vg")
PEERS = ("jax", "torch")
MEMORY_SIZE = "large"
SCHEMA = 1


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


def fmt_time(s, micro="µ") -> str:
    if s is None or not math.isfinite(s):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), (micro + "s", 1e-6), ("ns", 1e-9)):
        if s >= scale or unit == "ns":
            v = s / scale
            return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"
    return "-"


def fmt_ratio(r) -> str:
    if r is None or not math.isfinite(r):
        return "-"
    return f"{r:.2f}" if r < 10 else f"{r:.1f}"


def fmt_bytes(n) -> str:
    if n is None:
        return "-"
    return f"{n / 2**20:.1f} MB" if n >= 2**20 or n == 0 else f"{n / 2**10:.0f} KB"


def _can_encode(stream, text) -> bool:
    try:
        text.encode(getattr(stream, "encoding", None) or "ascii")
        return True
    except (UnicodeEncodeError, LookupError):
        return False


class Progress:
    """One line per cell on stderr; on a terminal each line overwrites the last."""

    def __init__(self, stream=None, enabled=True):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        try:
            self.tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self.width = shutil.get_terminal_size((100, 20)).columns - 1
        self.shown = False

    def update(self, text):
        """Transient status (shown on a terminal only)."""
        if self.enabled and self.tty:
            self.stream.write("\r" + text[: self.width] + "\x1b[K")
            self.stream.flush()
            self.shown = True

    def line(self, text):
        """A cell's result: overwritten by the next one on a terminal, a line otherwise."""
        if not self.enabled:
            return
        if self.tty:
            self.update(text)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self):
        if self.enabled and self.tty and self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


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


def _jax_impl(model, args):
    import jax
    import jax.numpy as jnp
    from .bench_models import jax_model
    f = jax_model(model.name)
    jargs = tuple(jax.device_put(jnp.asarray(a)) for a in args)
    fwd = jax.jit(f)
    vg = jax.jit(jax.value_and_grad(f, argnums=model.argnums))

    def call_fwd(*a):
        return jax.block_until_ready(fwd(*a))

    def call_vg(*a):
        return jax.block_until_ready(vg(*a))
    return jargs, call_fwd, call_vg, lambda r: _grads(jax.device_get(r), model.argnums)


def _torch_impl(model, args):
    import torch
    from .bench_models import torch_model
    f = torch_model(model.name)
    wrt = model.wrt
    targs = tuple(torch.from_numpy(np.array(a)).requires_grad_(i in wrt) if i in wrt
                  else torch.from_numpy(np.ascontiguousarray(a)) for i, a in enumerate(args))

    def call_fwd(*a):
        with torch.no_grad():
            return f(*a)

    def call_vg(*a):
        for i in wrt:
            a[i].grad = None
        loss = f(*a)
        loss.backward()
        g = tuple(a[i].grad for i in wrt)
        return loss.detach(), (g[0] if isinstance(model.argnums, int) else g)

    def to_list(r):
        value, g = r
        gs = (g,) if isinstance(model.argnums, int) else g
        return [np.asarray(value.detach().numpy(), np.float64)] + \
               [np.asarray(x.detach().numpy(), np.float64) for x in gs]
    return targs, call_fwd, call_vg, to_list


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


# ----------------------------------------------------------------------------- one cell
def _cache_status(t, args, known_before):
    """'compiled', 'disk' (on-disk cache hit) or 'reused' (compiled earlier in this process)."""
    try:
        art = t.lower(*args)._entry.run.artifact
        if art.key in known_before:
            return "reused"
        return "disk" if art.cached else "compiled"
    except Exception:  # noqa: BLE001 - informational only
        return "unknown"


def _known_kernels():
    try:
        from .backends import llvm_jit
        return set(llvm_jit.init().get("loaded", {}))
    except Exception:  # noqa: BLE001
        return set()


def run_cell(model, size, dtype, settings, peers, progress, label) -> dict:
    import gradc
    rtol = RTOL[dtype]
    args = make_data(model.name, size, dtype)
    cell = {"model": model.name, "size": size, "dims": model.dims(size), "input": model.describe_size(size),
            "elements": model.elements(size),
            "shapes": {n: list(np.shape(a)) for n, a in zip(model.params, args)},
            "dtype": dtype, "status": "ok", "check": {}, "first_call": {}, "times": {m: {} for m in MODES},
            "ratios": {m: {} for m in MODES}}
    floor = FLOORS[model.name][size] if dtype == "float64" else None
    cell["floor"] = floor

    progress.update(f"{label}: numpy reference")
    ref = _grads(model.np_value_and_grad(*args), model.argnums)
    ref_fwd = [np.asarray(model.np_forward(*args), np.float64)]
    entries = {("numpy", "fwd"): (model.np_forward, args), ("numpy", "vg"): (model.np_value_and_grad, args)}

    # gradc: first call (trace + compile), then the check.  Settled first: the numpy
    # reference just ran, and its BLAS threads spinning beside the compiler slowed
    # first calls by up to 40%; then warmed up, as a core in a running program is.
    progress.update(f"{label}: gradc first call (trace + compile)")

    def quiet():
        if settings.get("settle", True):
            settle()
            warm_up()
    try:
        quiet()
        known = _known_kernels()
        with gradc_threads(settings.get("threads")):   # kernels compile for this many threads
            vg = gradc.value_and_grad(_fresh(model.gradc), argnums=model.argnums, backend="llvm")
            t0 = time.perf_counter()
            got = vg(*args)
        t_vg = time.perf_counter() - t0
        status_vg = _cache_status(vg, args, known)
        quiet()
        known = _known_kernels()
        with gradc_threads(settings.get("threads")):
            fwd = gradc.jit(_fresh(model.gradc), backend="llvm")
            t0 = time.perf_counter()
            got_fwd = fwd(*args)
        t_fwd = time.perf_counter() - t0
        status_fwd = _cache_status(fwd, args, known)
        cell["first_call"] = {"vg_s": t_vg, "vg_cache": status_vg, "fwd_s": t_fwd, "fwd_cache": status_fwd}
        if settings.get("roofline"):
            cell["bound"] = cell_bound(vg.lower(*args), args, _grads(got, model.argnums), settings["roofline"],
                                       "one" if settings.get("threads") == 1 else "all")
        c = compare(_grads(got, model.argnums), ref, rtol)
        cf = compare([np.asarray(got_fwd, np.float64)], ref_fwd, rtol)
        c["forward"] = cf
        c["ok"] = bool(c["ok"] and cf["ok"])
        if not cf["ok"] and c["why"] is None:
            c["why"] = "forward " + cf["why"]
        cell["check"]["gradc"] = c
        if not c["ok"]:
            cell["status"] = "WRONG"
        cell["hot"] = {"vg": run_until_hot(vg, args), "fwd": run_until_hot(fwd, args)}
        entries[("gradc", "fwd")] = (fwd, args)
        entries[("gradc", "vg")] = (vg, args)
    except Exception as e:  # noqa: BLE001 - report, do not crash the benchmark
        cell["status"] = "ERROR"
        cell["error"] = f"{type(e).__name__}: {e}"
        cell["check"]["gradc"] = {"ok": False, "max_rel_err": None, "why": cell["error"]}

    for peer in PEERS:
        if not peers.get(peer, {}).get("available"):
            continue
        progress.update(f"{label}: {peer} first call")
        try:
            pargs, pf, pvg, to_list = (_jax_impl if peer == "jax" else _torch_impl)(model, args)
            t0 = time.perf_counter()
            r = pvg(*pargs)
            t1 = time.perf_counter() - t0
            pf(*pargs)
            cell["first_call"][peer + "_vg_s"] = t1
            c = compare(to_list(r), ref, rtol)
            cell["check"][peer] = c
            entries[(peer, "fwd")] = (pf, pargs)
            entries[(peer, "vg")] = (pvg, pargs)
        except Exception as e:  # noqa: BLE001
            cell["check"][peer] = {"ok": False, "max_rel_err": None, "why": f"{type(e).__name__}: {e}"}

    cell["settling"] = {}
    stats = measure(entries, settings["budget_s"], settings["min_batches"], settings["rounds"], progress, label,
                    settle_between=settings.get("settle", True), settling=cell["settling"])
    for (impl, mode), s in stats.items():
        cell["times"][mode][impl] = s
    for mode in MODES:
        base = cell["times"][mode]["numpy"]["median_s"]
        for impl, s in cell["times"][mode].items():
            if impl != "numpy":
                cell["ratios"][mode][impl] = s["median_s"] / base
    fc = cell["first_call"]
    for mode in MODES:   # the first call less one steady-state call: about trace + compile
        if mode + "_s" in fc and "gradc" in cell["times"][mode]:
            fc[mode + "_overhead_s"] = max(0.0, fc[mode + "_s"] - cell["times"][mode]["gradc"]["median_s"])
    if "bound" in cell and "gradc" in cell["times"]["vg"]:
        cell["bound"]["gradc_over_bound"] = cell["times"]["vg"]["gradc"]["median_s"] / cell["bound"]["bound_s"]
    if settings.get("no_settle_column") and ("gradc", "vg") in entries:
        progress.update(f"{label}: no-settle pairs")
        cell["no_settle"] = measure_no_settle(entries[("numpy", "vg")], entries[("gradc", "vg")],
                                              settings["budget_s"])
    if settings.get("one_thread_column") and settings.get("threads") != 1 and ("gradc", "vg") in entries:
        cell["one_thread"] = measure_one_thread(model, args, ref, rtol, settings, progress, label)
    r = cell["ratios"]["vg"].get("gradc")
    cell["meets_floor"] = None if floor is None or r is None else bool(r <= floor and cell["status"] == "ok")
    return cell


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


def _cold_start_lines(doc):
    cs = doc.get("cold_start")
    if not cs:
        return []
    if "skipped" in cs:
        return [f"cold start: not measured ({cs['skipped']})"]
    parts = []
    for name, r in cs["models"].items():
        if "error" in r:
            parts.append(f"{name} error ({r['error']})")
        else:
            parts.append(f"{name} {r['first_beyond_steady_s'] * 1e3:.1f} ms"
                         + ("" if r["cache"] == ["disk"] else f" ({'/'.join(r['cache'])})"))
    startup = [r["llvm_startup_s"] for r in cs["models"].values() if "llvm_startup_s" in r]
    return [f"cold start: a new process's first value_and_grad (small size, kernel in the disk cache) beyond "
            f"a steady call, median of {cs['runs']} processes: " + ", ".join(parts)
            + (f"; LLVM start-up {np.median(startup) * 1e3:.1f} ms apart" if startup else "")]


# ----------------------------------------------------------------------------- driver
def run_benchmark(models=None, sizes=None, dtype="float64", quick=False, repeat=1.0, warm_cache=False,
                  memory=True, peers=True, progress=None, settle=True, cold_start=True, threads=None,
                  roofline=True, no_settle_column=True, one_thread_column=True) -> dict:
    """Run the benchmark and return the results (the ``--json`` document).  With
    ``threads=1`` gradc compiles for one thread, numpy's BLAS and the peers run one
    thread each (per-core efficiency); ``roofline`` measures the host's limits and each
    cell's bound; ``no_settle_column`` times gradc right after numpy and back;
    ``one_thread_column`` times value_and_grad again with one thread each."""
    import gradc
    models = list(models or MODELS)
    sizes = [s for s in SIZES if s in (sizes or SIZES)]
    progress = progress or Progress(enabled=False)
    settings = {"quick": quick, "repeat": repeat,
                "budget_s": BUDGET_S * repeat * (QUICK_FACTOR if quick else 1.0),
                "min_batches": QUICK_MIN_BATCHES if quick else MIN_BATCHES,
                "rounds": QUICK_ROUNDS if quick else ROUNDS,
                "batch_s": BATCH_S, "warm_cache": warm_cache, "settle": settle, "threads": threads,
                "no_settle_column": no_settle_column, "one_thread_column": one_thread_column}
    doc = {"schema": SCHEMA, "tool": "gradc bench", "dtype": dtype, "models": models, "sizes": sizes,
           "settings": settings, "machine": machine_info(threads), "floors": FLOORS,
           "rtol": RTOL[dtype], "cells": [], "memory": None}
    doc["zoo"] = {m: {"title": MODELS[m].title, "formula": MODELS[m].formula,
                      "params": list(MODELS[m].params), "wrt": [MODELS[m].params[i] for i in MODELS[m].wrt],
                      "sizes": {s: MODELS[m].dims(s) for s in sizes}} for m in models}
    limits = one_thread_each(threads)     # before jax starts its threads (see roofline.one_core)
    settings.update(limits.__enter__())
    doc["peers"] = load_peers(PEERS, dtype, threads) if peers else {p: {"available": False, "reason": "--no-peers"}
                                                           for p in PEERS}
    old_cache = os.environ.get("GRADC_CACHE_DIR")
    tmp_cache = None
    if not warm_cache:
        tmp_cache = tempfile.mkdtemp(prefix="gradc-bench-cache-")
        os.environ["GRADC_CACHE_DIR"] = tmp_cache
    settings["cache_dir"] = "fresh temporary directory" if tmp_cache else (old_cache or "default")
    t_start = time.perf_counter()
    try:
        if roofline:
            doc["roofline"] = settings["roofline"] = measure_host(progress, quick, dtype)
        # LLVM's one-time initialization, measured apart from the models' compile times
        progress.update("starting LLVM")
        t0 = time.perf_counter()
        gradc.jit(lambda v: v * 2.0 + 1.0, backend="llvm")(np.ones(3))
        doc["startup_s"] = time.perf_counter() - t0
        cells = [(m, s) for m in models for s in sizes]
        for i, (m, s) in enumerate(cells):
            label = f"[{i + 1}/{len(cells)}] {m} {s}"
            cell = run_cell(MODELS[m], s, dtype, settings, doc["peers"], progress, label)
            doc["cells"].append(cell)
            progress.line(_cell_summary(label, cell))
        if memory and MEMORY_SIZE in sizes:
            doc["memory"] = measure_memory(models, MEMORY_SIZE, dtype, progress)
        elif memory:
            doc["memory"] = {"skipped": f"memory is measured at the {MEMORY_SIZE} size, which was not selected"}
        else:
            doc["memory"] = {"skipped": "--no-memory"}
        if cold_start and "small" in sizes:
            doc["cold_start"] = measure_cold_start(models, dtype, progress)
        else:
            doc["cold_start"] = {"skipped": "--no-cold-start" if not cold_start else "the small size was not selected"}
    finally:
        limits.__exit__(None, None, None)
        settings.pop("roofline", None)       # (in doc["roofline"])
        progress.close()
        if tmp_cache is not None:
            if old_cache is None:
                os.environ.pop("GRADC_CACHE_DIR", None)
            else:
                os.environ["GRADC_CACHE_DIR"] = old_cache
            shutil.rmtree(tmp_cache, ignore_errors=True)
    doc["elapsed_s"] = time.perf_counter() - t_start
    try:
        doc["machine"]["loadavg_end"] = list(os.getloadavg())
    except OSError:
        pass
    doc["summary"] = summarize(doc)
    return doc


def summarize(doc) -> dict:
    cells = doc["cells"]
    floored = [c for c in cells if c["meets_floor"] is not None]
    return {"cells": len(cells), "checked": sum(1 for c in cells if "gradc" in c["check"]),
            "wrong": [f"{c['model']} {c['size']}" for c in cells if c["status"] == "WRONG"],
            "errors": [f"{c['model']} {c['size']}" for c in cells if c["status"] == "ERROR"],
            "floors_met": sum(1 for c in floored if c["meets_floor"]), "floors_total": len(floored)}


def _cell_summary(label, cell) -> str:
    t = cell["times"]["vg"]
    parts = [f"{label:<20} vg: numpy {fmt_time(t['numpy']['median_s'], 'u')}"]
    if "gradc" in t:
        parts.append(f"gradc {fmt_time(t['gradc']['median_s'], 'u')}")
        parts.append(f"ratio {fmt_ratio(cell['ratios']['vg']['gradc'])}")
    if cell["floor"] is not None:
        parts.append(f"(floor {cell['floor']:g})")
    if cell["status"] != "ok":
        parts.append(cell["status"])
    return "  ".join(parts)


# ----------------------------------------------------------------------------- output
def render_table(doc, stream=None) -> str:
    stream = stream if stream is not None else sys.stdout
    fancy = _can_encode(stream, "✓✗µ—")
    mu = "µ" if fancy else "u"
    yes, no = ("✓", "✗") if fancy else ("ok", "X")
    peers = [p for p in PEERS if doc["peers"].get(p, {}).get("available")]
    head = ["model", "size", "input", "fwd numpy", "fwd gradc", "ratio", "vg numpy", "vg gradc", "ratio",
            "floor", ""] + [f"{p} vg" for p in peers] + ["bound", "/bound", "no-settle", "1 thread", "first call"]
    right = {3, 4, 5, 6, 7, 8, 9} | set(range(11, len(head)))
    rows = []
    for c in doc["cells"]:
        tf, tv = c["times"]["fwd"], c["times"]["vg"]
        g = lambda t: fmt_time(t["gradc"]["median_s"], mu) if "gradc" in t else "-"  # noqa: E731
        if c["status"] != "ok":
            mark = c["status"]
        elif c["meets_floor"] is None:
            mark = ""
        else:
            mark = yes if c["meets_floor"] else no
        row = [c["model"], c["size"], c["input"],
               fmt_time(tf["numpy"]["median_s"], mu), g(tf), _ratio_cell(c, "fwd", "gradc"),
               fmt_time(tv["numpy"]["median_s"], mu), g(tv), _ratio_cell(c, "vg", "gradc"),
               f"{c['floor']:g}" if c["floor"] is not None else "-", mark]
        for p in peers:
            ok = c["check"].get(p, {}).get("ok")
            row.append(_ratio_cell(c, "vg", p) + ("" if ok or ok is None else " WRONG"))
        b = c.get("bound", {})
        row.append(f"{fmt_time(b['bound_s'], mu)} {b['limit'][:3]}" if b else "-")
        row.append(f"{b['gradc_over_bound']:.2f}" if "gradc_over_bound" in b else "-")
        row.append(fmt_ratio(c["no_settle"]["ratio"]) if "no_settle" in c else "-")
        one = c.get("one_thread")
        row.append("-" if one is None else fmt_ratio(one["ratio"]) + ("*" if one["noisy"] else "")
                   + ("" if one["check"]["ok"] else " WRONG"))
        fc = c["first_call"]
        row.append(f"{fc['vg_s']:.2f} s {fc['vg_cache']}" if "vg_s" in fc else "-")
        rows.append(row)
    widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]

    def fmt_row(r):
        return "  ".join(str(x).rjust(w) if i in right else str(x).ljust(w)
                         for i, (x, w) in enumerate(zip(r, widths))).rstrip()
    lines = [f"gradc bench: {doc['dtype']}, time per call (median), ratio = median gradc / median numpy "
             f"(below 1: gradc is faster)", fmt_row(head), fmt_row(["-" * w for w in widths])]
    lines += [fmt_row(r) for r in rows]
    lines.append("")
    s = doc["summary"]
    if doc["dtype"] == "float64":
        lines.append(f"floors (value_and_grad ratio, float64): met in {s['floors_met']} of {s['floors_total']} "
                     f"cells ({yes} met, {no} missed)")
    else:
        lines.append("floors are defined for float64 value_and_grad; not marked for " + doc["dtype"])
    checked = f"correctness: {s['checked']} of {s['cells']} cells checked against numpy (rtol {doc['rtol']:g})"
    bad = s["wrong"] + s["errors"]
    lines.append(checked + (f"; WRONG/ERROR: {', '.join(bad)}" if bad else "; all agree"))
    for c in doc["cells"]:
        if c["status"] != "ok":
            lines.append(f"  {c['model']} {c['size']}: {c['check'].get('gradc', {}).get('why') or c.get('error')}")
    if any(str(x).endswith("*") for row in rows for x in row):
        lines.append(f"* noisy: the interquartile range of a median exceeds {NOISY_IQR:.0%} of it (a busy "
                     "machine); rerun with --repeat 3 or on an idle machine")
    lines.append("first call: value_and_grad on a fresh function (trace, differentiate, compile, run); "
                 "compiled = LLVM compiled it, disk = on-disk cache hit, reused = the same kernel was "
                 "compiled earlier in this run (shapes are symbolic)")
    lines.append(f"             LLVM start-up (once per process, not in the first-call column): "
                 f"{doc.get('startup_s', float('nan')):.2f} s; "
                 f"cache: {doc['settings']['cache_dir']}")
    lines += _roofline_lines(doc, mu)
    lines += _memory_lines(doc)
    lines += _cold_start_lines(doc)
    for p in PEERS:
        info = doc["peers"].get(p, {})
        if info.get("available"):
            lines.append(f"{p} {info.get('version')}: ratio = median {p} / median numpy")
        else:
            lines.append(f"{p}: {info.get('reason')}")
    m = doc["machine"]
    lines.append(f"machine: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable), numpy {m['numpy']}, "
                 f"llvmlite {m.get('llvmlite')}, GRADC_NUM_THREADS={m['GRADC_NUM_THREADS'] or 'unset'}"
                 f"{_gradc_threads(m)}, "
                 f"load average {_loadavg(m)}")
    st = doc["settings"]
    lines.append(f"timing: interleaved round-robin, {st['rounds']} rounds, about {st['budget_s']:.2g} s per "
                 f"implementation and mode per cell (at least {st['min_batches']} batches); "
                 f"run took {doc['elapsed_s']:.0f} s")
    if st.get("settle", True):
        waits = [c.get("settling", {}) for c in doc["cells"]]
        n, t = sum(w.get("waits", 0) for w in waits), sum(w.get("waited_s", 0.0) for w in waits)
        late = sum(w.get("timeouts", 0) for w in waits)
        lines.append(f"settling: before each implementation's turn, other threads (OpenBLAS, OpenMP pools) were "
                     f"let go idle: {n} waits, {t:.1f} s in all" + (f", {late} timed out" if late else "")
                     + " (--no-settle: time the naive interleaving)")
    else:
        lines.append("settling: off (--no-settle): each implementation is timed right after the previous one, "
                     "whose thread pools may still be spinning")
    return "\n".join(lines)


def _roofline_lines(doc, mu):
    h = doc.get("roofline")
    one = doc["settings"].get("threads") == 1
    out = []
    if h:
        gemm = h.get("gemm", "DGEMM")     # (tables written before the peak followed the dtype)
        out.append(f"roofline: stream {h['stream_one_Bps'] / 1e9:.1f} GB/s on one thread, "
                   f"{h['stream_all_Bps'] / 1e9:.1f} GB/s on all; {gemm} {h['gemm_one_flops'] / 1e9:.0f} GFLOP/s "
                   f"on one thread, {h['gemm_all_flops'] / 1e9:.0f} on all")
        out.append(f"bound = max(bytes in + out / stream bandwidth, matrix-product FLOPs / {gemm} peak), "
                   f"{'one thread' if one else 'all threads'} (mem: memory-bound, com: compute-bound); "
                   f"/bound = gradc value_and_grad time / bound")
    if any("no_settle" in c for c in doc["cells"]):
        out.append("no-settle = gradc right after a numpy call / numpy right after a gradc call "
                   "(value_and_grad; no waiting for the other's thread pool to go idle; OpenBLAS's "
                   "threads spin after each call unless OPENBLAS_THREAD_TIMEOUT=4 was set before numpy "
                   "loaded it: docs/native-backend.md, Threads)")
    if any("one_thread" in c for c in doc["cells"]):
        out.append("1 thread = value_and_grad ratio with one thread each: gradc compiled for one thread, numpy's "
                   "BLAS limited to one (per-core efficiency; --threads 1 runs the whole table so)")
    if one:
        out.append("threads: one each (gradc compiled for 1 thread, numpy's BLAS limited to 1"
                   + ("" if doc["settings"].get("blas_limited") else ": NOT limited, no OpenBLAS control found")
                   + ", peers limited to 1)")
    return out


def _ratio_cell(c, mode, impl):
    r = c["ratios"][mode].get(impl)
    t = c["times"][mode]
    noisy = impl in t and (t[impl].get("noisy") or t["numpy"].get("noisy"))
    return fmt_ratio(r) + ("*" if r is not None and noisy else "")


def _gradc_threads(m) -> str:
    n = m.get("gradc_threads")
    return "" if n is None else f" (gradc uses {n} thread{'' if n == 1 else 's'})"


def _loadavg(m):
    la = m.get("loadavg")
    return f"{la[0]:.1f}" if la else "?"


def _memory_lines(doc):
    mem = doc.get("memory")
    if not mem:
        return []
    if "skipped" in mem:
        return [f"memory: not measured ({mem['skipped']})"]
    out = [f"memory, one value_and_grad call at the {mem['size']} size, inputs not counted (a fresh process "
           f"each; peak RSS growth during the call / peak of numpy-allocated memory via tracemalloc):"]
    for name, r in mem["models"].items():
        parts = []
        for impl in ("numpy", "gradc"):
            x = r.get(impl, {})
            if "error" in x:
                parts.append(f"{impl} error ({x['error']})")
            else:
                parts.append(f"{impl} {fmt_bytes(x['rss_growth_bytes'])} / {fmt_bytes(x['tracemalloc_peak_bytes'])}")
        inputs = next((x["inputs_bytes"] for x in r.values() if "inputs_bytes" in x), None)
        out.append(f"  {name}: " + ", ".join(parts) + f"  (inputs {fmt_bytes(inputs)})")
    return out


def plot(doc, path) -> str | None:
    """Time per call vs size, log-log, one panel per model.  None, or why it was not drawn."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib)"
    models = doc["models"]
    ncol = min(3, len(models))
    nrow = math.ceil(len(models) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5 * ncol, 4 * nrow), squeeze=False)
    colors = {"numpy": "tab:blue", "gradc": "tab:red", "jax": "tab:green", "torch": "tab:orange"}
    for ax, name in zip(axes.flat, models):
        cells = [c for c in doc["cells"] if c["model"] == name]
        for impl in colors:
            for mode, style in (("vg", "-"), ("fwd", "--")):
                pts = [(c["elements"], c["times"][mode][impl]["median_s"]) for c in cells
                       if impl in c["times"][mode]]
                if pts:
                    xs, ys = zip(*pts)
                    ax.plot(xs, ys, style, marker="o", color=colors[impl],
                            label=f"{impl} {'value_and_grad' if mode == 'vg' else 'forward'}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{name}: {MODELS[name].title}", fontsize=10)
        ax.set_xlabel("elements of x / X")
        ax.set_ylabel("time per call (s)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(models):]:
        ax.axis("off")
    fig.suptitle(f"gradc bench ({doc['dtype']}, median time per call)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


def _json_default(o):
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


# ----------------------------------------------------------------------------- CLI
def _pick(text, known, what):
    from .cli_args import CLIError
    if text is None:
        return list(known)
    chosen = []
    for item in text.split(","):
        item = item.strip()
        match = next((k for k in known if k.lower() == item.lower()), None)
        if match is None:
            raise CLIError(f"--{what} {text}: unknown {what[:-1]} {item!r} (known: {','.join(known)})")
        if match not in chosen:
            chosen.append(match)
    return chosen


def main(args, out) -> int:
    """``gradc bench`` (``args`` from the parser built by ``gradc.cli.add_bench``)."""
    from .cli_args import CLIError
    if args.vecmath:
        from . import bench_vecmath
        with gradc_threads(1):
            rows = bench_vecmath.run(dtype=args.dtype)
        print(bench_vecmath.render(rows, 4096, args.dtype), file=out)
        print(f"machine: {machine_info()['cpu']}, numpy {np.__version__}", file=out)
        return 0
    models = _pick(args.models, list(MODELS), "models")
    sizes = _pick(args.sizes, list(SIZES), "sizes")
    if args.repeat <= 0:
        raise CLIError(f"--repeat {args.repeat}: expected a positive number")
    plot_path, plot_skipped = args.plot, None
    if plot_path:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            plot_skipped = "matplotlib is not installed (pip install matplotlib)"
            print("gradc bench: no plot: --plot needs matplotlib: pip install matplotlib", file=sys.stderr)
            plot_path = None
    progress = Progress(sys.stderr, enabled=not args.no_progress)
    doc = run_benchmark(models, sizes, args.dtype, quick=args.quick, repeat=args.repeat,
                        settle=not getattr(args, "no_settle", False), threads=args.threads,
                        roofline=not args.no_roofline, no_settle_column=not args.no_settle_column,
                        one_thread_column=not args.no_one_thread_column, warm_cache=args.warm_cache, memory=not args.no_memory, peers=not args.no_peers,
                        cold_start=not getattr(args, "no_cold_start", False),
                        progress=progress)
    print(render_table(doc, out), file=out)
    doc["plot"] = {"skipped": plot_skipped} if plot_skipped else None
    if plot_path:
        why = plot(doc, plot_path)
        doc["plot"] = plot_path if why is None else {"skipped": why}
        if why:
            print(f"gradc bench: no plot: {why}", file=sys.stderr)
        else:
            print(f"plot: {plot_path}", file=out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1, default=_json_default)
            f.write("\n")
        print(f"results: {args.json}", file=out)
    return 0


def add_arguments(p):
    p.add_argument("--models", metavar="M1,M2", help=f"models to run (default all: {','.join(MODELS)})")
    p.add_argument("--sizes", metavar="small,medium", help=f"sizes to run (default all: {','.join(SIZES)})")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="floating-point type of the data (default float64; the floors apply to float64)")
    p.add_argument("--quick", action="store_true", help="a short run: a tenth of the timing budget, fewer rounds")
    p.add_argument("--repeat", type=float, default=1.0, metavar="R",
                   help="scale the timing budget (default 1: about 0.2 s per implementation per cell)")
    p.add_argument("--json", metavar="FILE", help="write every raw median, ratio, size and machine detail to FILE")
    p.add_argument("--plot", metavar="FILE.png", help="plot time per call vs size (needs matplotlib)")
    p.add_argument("--warm-cache", action="store_true",
                   help="use the on-disk compile cache as it is (default: a fresh temporary cache, so the "
                        "first-call column shows real compile times)")
    p.add_argument("--no-memory", action="store_true",
                   help="skip the peak-memory measurement at the large size (two subprocesses per model)")
    p.add_argument("--no-peers", action="store_true", help="do not time JAX / PyTorch even if installed")
    p.add_argument("--no-cold-start", action="store_true",
                   help="skip timing a new process's first call with its kernel in the disk cache "
                        f"({COLD_START_RUNS} subprocesses per model)")
    p.add_argument("--no-settle", action="store_true",
                   help="do not wait for the previous implementation's thread pools (OpenBLAS, OpenMP) to go idle "
                        "before timing the next one (see the module docstring)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    p.add_argument("--vecmath", action="store_true",
                   help="only time gradc's vector math (exp, log, tanh, ...) against numpy's on data in cache")
    p.add_argument("--sweep", action="store_true",
                   help="instead of the zoo, time gradc against jax.jit(jax.value_and_grad) on 2- and 3-layer "
                        "MLPs (batch 2048, hidden 32-256, tanh/relu/gelu) and single-head attention "
                        "(sequence 512/2048, head 32/64); uses --dtype, --quick, --repeat, --json, --threads, "
                        "--no-peers, --no-settle")
    p.add_argument("--sweep-only", metavar="WORDS",
                   help="with --sweep: only these configurations, e.g. mlp2,relu,h64,h128 or attention,n512 "
                        "(words for the same part of a name are alternatives; implies --sweep)")
    p.add_argument("--threads", type=int, choices=(1,), default=None,
                   help="1: per-core efficiency: gradc compiled for one thread, numpy's BLAS and the peers "
                        "limited to one thread")
    p.add_argument("--no-roofline", action="store_true",
                   help="do not measure the host's stream bandwidth and matrix-product peak (no bound column)")
    p.add_argument("--no-settle-column", action="store_true",
                   help="do not time gradc right after numpy and back (the no-settle column)")
    p.add_argument("--no-one-thread-column", action="store_true",
                   help="do not time value_and_grad again with one thread each (the 1 thread column)")


def _memory_child_main(argv) -> int:
    if len(argv) == 3 and argv[0] == "--cold-start-child":
        print(json.dumps(cold_start_child(*argv[1:])))
        return 0
    if len(argv) != 5 or argv[0] != "--memory-child":
        print("usage: python -m gradc.bench --memory-child MODEL SIZE DTYPE numpy|gradc", file=sys.stderr)
        return 2
    print(json.dumps(memory_child(*argv[1:])))
    return 0


if __name__ == "__main__":
    sys.exit(_memory_child_main(sys.argv[1:]))
