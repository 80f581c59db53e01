"""What ``gradc bench`` shows: number formats, the progress lines, the zoo's table with
its footnotes, the plot, and the JSON encoder of the ``--json`` document.

Apart from :mod:`gradc.bench` so the run of the zoo and its presentation can each be
read alone; the sweep (:mod:`gradc.bench_sweep`) formats its own table with the same
helpers.  Rendering reads the results (the document's dicts) and never times anything."""
from __future__ import annotations

import math
import shutil
import sys

import numpy as np

from .bench_measure import NOISY_IQR, PEERS
from .bench_models import MODELS


# ----------------------------------------------------------------------------- formatting
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
