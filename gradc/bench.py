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

Where the code is
-----------------
This module runs the zoo (a cell, the driver) and is the command's entry point;
:mod:`gradc.bench_measure` checks and times (``compare``, ``measure``, ``settle``),
:mod:`gradc.bench_render` draws the table, the plot and the JSON, and
:mod:`gradc.bench_memory` measures memory and cold start in fresh processes.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from .bench_measure import (BATCH_S, BUDGET_S, MIN_BATCHES, PEERS, QUICK_FACTOR, QUICK_MIN_BATCHES, QUICK_ROUNDS,
                            ROUNDS, RTOL, _fresh, _grads, compare, load_peers, machine_info, measure,
                            measure_no_settle, measure_one_thread, settle, warm_up)
from .bench_memory import COLD_START_RUNS, cold_start_child, measure_cold_start, measure_memory, memory_child
from .bench_models import MODELS, SIZES, make_data
from .bench_render import Progress, _cell_summary, _json_default, plot, render_table
from .roofline import cell_bound, gradc_threads, measure_host, one_thread_each, run_until_hot
# Moved to the modules above and imported from here by tests, tools/ scripts and users
# of gradc.bench, who keep finding them under their old names.
from .bench_measure import (MAX_BATCHES, NOISY_IQR, SETTLE_QUIET_S, SETTLE_TIMEOUT_S, WARM_S,  # noqa: F401
                            _other_threads_cpu_ns)
from .bench_render import fmt_bytes, fmt_ratio, fmt_time  # noqa: F401

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

MODES = ("fwd", "vg")
MEMORY_SIZE = "large"
SCHEMA = 1


# ----------------------------------------------------------------------------- peers
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
