"""``gradc bench --sweep``: gradc against ``jax.jit(jax.value_and_grad)`` over a grid.

Issue 17 asks for two- and three-layer MLPs and single-head attention (batch 2048,
hidden 32 to 256, tanh, relu or gelu) faster than JAX.  The bench's zoo holds one
point of each (M6, M7); the sweep times the whole grid:

* MLPs: ``layers`` in {2, 3} (one or two hidden layers of ``hidden`` units, then a
  linear layer of 4 outputs), ``hidden`` in {32, 64, 128, 256}, activation in {tanh,
  relu, gelu}; batch 2048, 16 inputs, loss ``mean((MLP(X) - Y)**2)``, value_and_grad of
  every weight and bias.  gelu is the tanh approximation (``jax.nn.gelu``'s default),
  written with gradc.numpy ops: ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.
* Single-head self-attention (M7's model) at sequence 512 and 2048, 64 features, head
  32 and 64: value_and_grad of Wq, Wk, Wv.

Each configuration runs three implementations: gradc (``gradc.value_and_grad``,
backend llvm), JAX (``jax.jit(jax.value_and_grad(...))``, x64 for float64) and numpy
written by hand (the bench's style: the gradient reuses the forward's intermediates).
Before timing, all three results are compared (``bench_measure.compare``: the norm-wise
``max|got - ref| / max|ref|`` per output against numpy's, rtol 1e-9 for float64 and
1e-4 for float32, as in ``gradc bench``); a configuration that disagrees is marked
WRONG.  Timing is ``bench_measure.measure``'s: interleaved rounds, batches of calls, the
median, each implementation's thread pools let go idle before the next one's turn.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
import zlib
from dataclasses import dataclass

import numpy as np

import gradc.numpy as gnp

from . import bench_measure, bench_models, bench_render
from .roofline import gradc_threads, one_thread_each, run_until_hot

BATCH, INPUTS, OUTPUTS = 2048, 16, 4
LAYERS = (2, 3)
HIDDENS = (32, 64, 128, 256)
ACTIVATIONS = ("tanh", "relu", "gelu")
FEATURES = 64                                          # attention's X is sequence x FEATURES
ATTENTION = ((512, 32), (512, 64), (2048, 32), (2048, 64))   # (sequence, head)
GELU_C, GELU_A = math.sqrt(2.0 / math.pi), 0.044715
IMPLS = ("numpy", "gradc", "jax")


# ----------------------------------------------------------------------------- activations
def gelu(x):
    """gelu's tanh approximation with gradc.numpy ops (jax.nn.gelu(approximate=True))."""
    return 0.5 * x * (1.0 + gnp.tanh(GELU_C * (x + GELU_A * (x * x * x))))


_GRADC_ACT = {"tanh": gnp.tanh, "relu": gnp.relu, "gelu": gelu}


def _np_act(name, Z):
    """(activation of Z, the state its derivative needs)."""
    if name == "tanh":
        A = np.tanh(Z)
        return A, A
    if name == "relu":
        return np.maximum(Z, 0.0), Z
    t = np.tanh(GELU_C * (Z + GELU_A * Z * Z * Z))
    return 0.5 * Z * (1.0 + t), (Z, t)


def _np_act_grad(name, state):
    """d activation / dZ from _np_act's state."""
    if name == "tanh":
        return 1.0 - state * state
    if name == "relu":
        return state > 0.0
    Z, t = state
    # d/dz [z/2 (1 + t)] = (1 + t)/2 + z/2 (1 - t^2) c (1 + 3 a z^2)
    return 0.5 * (1.0 + t) + 0.5 * Z * (1.0 - t * t) * (GELU_C * (1.0 + 3.0 * GELU_A * Z * Z))


# ----------------------------------------------------------------------------- the grid
@dataclass(frozen=True)
class Config:
    kind: str                  # "mlp" | "attention"
    layers: int = 0            # mlp: linear layers (hidden layers + 1)
    hidden: int = 0            # mlp: units per hidden layer
    act: str = ""              # mlp: tanh | relu | gelu
    n: int = BATCH             # batch (mlp) or sequence (attention)
    d: int = INPUTS            # inputs (mlp) or features (attention)
    head: int = 0              # attention: query/key/value width

    @property
    def name(self) -> str:
        if self.kind == "mlp":
            return f"mlp{self.layers} {self.act} h{self.hidden}"
        return f"attention n{self.n} h{self.head}"

    @property
    def argnums(self) -> tuple:
        return tuple(range(2 * self.layers)) if self.kind == "mlp" else (0, 1, 2)

    def shape_text(self) -> str:
        if self.kind == "mlp":
            widths = [self.d] + [self.hidden] * (self.layers - 1) + [OUTPUTS]
            return f"X[{self.n}x{self.d}] " + "-".join(map(str, widths))
        return f"X[{self.n}x{self.d}] head {self.head}"


def grid(layers=LAYERS, hiddens=HIDDENS, activations=ACTIVATIONS, attention=ATTENTION, n=BATCH) -> list:
    """The sweep's configurations: every MLP, then every attention shape."""
    out = [Config("mlp", L, h, a, n=n) for L in layers for a in activations for h in hiddens]
    return out + [Config("attention", n=s, d=FEATURES, head=h) for s, h in attention]


def make_args(cfg: Config, dtype="float64") -> tuple:
    """Deterministic arguments, weights scaled by 1/sqrt(fan_in) (activations O(1))."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(zlib.crc32(f"sweep/{cfg.name}/{cfg.n}".encode()))

    def normal(shape, scale=1.0):
        a = rng.standard_normal(shape, dtype=dt)
        a *= dt.type(scale)
        return a
    if cfg.kind == "attention":
        W = tuple(normal((cfg.d, cfg.head), 1.0 / math.sqrt(cfg.d)) for _ in range(3))
        return W + (normal((cfg.n, cfg.d)), normal((cfg.n, cfg.head)))
    widths = [cfg.d] + [cfg.hidden] * (cfg.layers - 1) + [OUTPUTS]
    params = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        params += [normal((fan_in, fan_out), 1.0 / math.sqrt(fan_in)), normal(fan_out, 0.1)]
    return tuple(params) + (normal((cfg.n, cfg.d)), normal((cfg.n, OUTPUTS)))


# ----------------------------------------------------------------------------- the models
def gradc_model(cfg: Config):
    """The model as a gradc user writes it (a function of the weights, then X, Y)."""
    if cfg.kind == "attention":
        return bench_models.m7_gradc
    f = _GRADC_ACT[cfg.act]
    if cfg.layers == 2:
        def mlp2(W1, b1, W2, b2, X, Y):
            return gnp.mean((f(X @ W1 + b1) @ W2 + b2 - Y) ** 2)
        return mlp2
    if cfg.layers == 3:
        def mlp3(W1, b1, W2, b2, W3, b3, X, Y):
            H = f(f(X @ W1 + b1) @ W2 + b2)
            return gnp.mean((H @ W3 + b3 - Y) ** 2)
        return mlp3
    raise ValueError(f"layers {cfg.layers}: the sweep has 2- and 3-layer MLPs")


def jax_model(cfg: Config):
    import jax
    import jax.numpy as jnp
    if cfg.kind == "attention":
        return bench_models.jax_model("M7")
    f = {"tanh": jnp.tanh, "relu": jax.nn.relu, "gelu": jax.nn.gelu}[cfg.act]   # gelu: approximate=True

    def mlp(*args):
        *params, X, Y = args
        H = X
        for k in range(0, len(params) - 2, 2):
            H = f(H @ params[k] + params[k + 1])
        return jnp.mean((H @ params[-2] + params[-1] - Y) ** 2)
    return mlp




def np_value_and_grad(cfg: Config):
    """numpy by hand: the backward pass reuses the forward's products and activations."""
    if cfg.kind == "attention":
        return bench_models.m7_value_and_grad
    act = cfg.act

    def mlp(*args):
        *params, X, Y = args
        ins, states = [X], []
        H = X
        for k in range(0, len(params) - 2, 2):
            Z = H @ params[k]
            Z += params[k + 1]
            H, state = _np_act(act, Z)
            ins.append(H)
            states.append(state)
        D = H @ params[-2]
        D += params[-1]
        D -= Y
        value = np.vdot(D, D) / D.size
        D *= 2.0 / D.size                            # dC/d(output)
        grads = [ins[-1].T @ D, D.sum(axis=0)]
        G = D
        for k in range(len(states) - 1, -1, -1):     # hidden layer k: W = params[2k]
            G = G @ params[2 * k + 2].T
            G *= _np_act_grad(act, states[k])        # dC/dZ_k
            grads[:0] = [ins[k].T @ G, G.sum(axis=0)]
        return value, tuple(grads)
    return mlp


# ----------------------------------------------------------------------------- one configuration
def _jax_impl(cfg, args):
    import jax
    import jax.numpy as jnp
    jargs = tuple(jax.device_put(jnp.asarray(a)) for a in args)
    vg = jax.jit(jax.value_and_grad(jax_model(cfg), argnums=cfg.argnums))

    def call(*a):
        return jax.block_until_ready(vg(*a))
    return jargs, call, lambda r: bench_measure._grads(jax.device_get(r), cfg.argnums)


def check_gradc(cfg: Config, dtype: str = "float64", rtol: float | None = None, backend: str = "llvm") -> dict:
    """gradc's value_and_grad of configuration ``cfg`` against numpy by hand, as
    ``bench_measure.compare`` reports it (``ok``, ``max_rel_err``); rtol: the sweep's own by
    default.  The gradients keep the arguments' dtype."""
    import gradc
    args = make_args(cfg, dtype)
    ref = bench_measure._grads(np_value_and_grad(cfg)(*args), cfg.argnums)
    value, grads = gradc.value_and_grad(gradc_model(cfg), argnums=cfg.argnums, backend=backend)(*args)
    check = bench_measure.compare(bench_measure._grads((value, grads), cfg.argnums), ref,
                                  bench_measure.RTOL[dtype] if rtol is None else rtol)
    if any(np.asarray(g).dtype != np.dtype(dtype) for g in grads):
        check = dict(check, ok=False, why=f"a gradient is not {dtype}")
    return check


def run_config(cfg: Config, dtype: str, settings: dict, jax_ok: bool, progress, label) -> dict:
    """Check, then time numpy, gradc and JAX on one configuration."""
    import gradc
    rtol = bench_measure.RTOL[dtype]
    args = make_args(cfg, dtype)
    row = {"name": cfg.name, "kind": cfg.kind, "layers": cfg.layers, "hidden": cfg.hidden, "act": cfg.act,
           "n": cfg.n, "d": cfg.d, "head": cfg.head, "shape": cfg.shape_text(), "status": "ok",
           "check": {}, "times": {}}
    np_vg = np_value_and_grad(cfg)
    ref = bench_measure._grads(np_vg(*args), cfg.argnums)
    entries = {("numpy", "vg"): (np_vg, args)}
    results = {}
    progress.update(f"{label}: gradc compile")
    try:
        with gradc_threads(settings.get("threads")):
            g_vg = gradc.value_and_grad(gradc_model(cfg), argnums=cfg.argnums, backend="llvm")
            results["gradc"] = bench_measure._grads(g_vg(*args), cfg.argnums)
            run_until_hot(g_vg, args)
        entries[("gradc", "vg")] = (g_vg, args)
    except Exception as e:  # noqa: BLE001 - report, do not crash the sweep
        row["check"]["gradc"] = {"ok": False, "max_rel_err": None, "why": f"{type(e).__name__}: {e}"}
    if jax_ok:
        progress.update(f"{label}: jax compile")
        try:
            jargs, j_vg, to_list = _jax_impl(cfg, args)
            results["jax"] = to_list(j_vg(*jargs))
            entries[("jax", "vg")] = (j_vg, jargs)
        except Exception as e:  # noqa: BLE001
            row["check"]["jax"] = {"ok": False, "max_rel_err": None, "why": f"{type(e).__name__}: {e}"}
    for impl, got in results.items():
        row["check"][impl] = bench_measure.compare(got, ref, rtol)
    if "gradc" in results and "jax" in results:
        # the two compilers against each other (both also against numpy, above)
        row["check"]["gradc_vs_jax"] = bench_measure.compare(results["gradc"], results["jax"], rtol)
    if not all(c.get("ok") for c in row["check"].values()):
        row["status"] = "WRONG"
    stats = bench_measure.measure(entries, settings["budget_s"], settings["min_batches"], settings["rounds"], progress,
                          label, settle_between=settings["settle"], settling={})
    for (impl, _), s in stats.items():
        row["times"][impl] = s
    t = {impl: s["median_s"] for impl, s in row["times"].items()}
    row["gradc_over_jax"] = t["gradc"] / t["jax"] if "gradc" in t and "jax" in t else None
    row["gradc_over_numpy"] = t["gradc"] / t["numpy"] if "gradc" in t else None
    row["jax_over_numpy"] = t["jax"] / t["numpy"] if "jax" in t else None
    return row


def run_sweep(configs=None, dtype="float64", quick=False, repeat=1.0, peers=True, settle=True, threads=None,
              progress=None) -> dict:
    """Run the sweep; returns the ``--json`` document ({"rows": [...], "machine": ...})."""
    configs = list(configs if configs is not None else grid())
    progress = progress or bench_render.Progress(enabled=False)
    settings = {"quick": quick, "repeat": repeat, "settle": settle, "threads": threads,
                "budget_s": bench_measure.BUDGET_S * repeat * (bench_measure.QUICK_FACTOR if quick else 1.0),
                "min_batches": bench_measure.QUICK_MIN_BATCHES if quick else bench_measure.MIN_BATCHES,
                "rounds": bench_measure.QUICK_ROUNDS if quick else bench_measure.ROUNDS}
    limits = one_thread_each(threads)     # before jax starts its threads (see roofline.one_core)
    settings.update(limits.__enter__())
    peer = bench_measure.load_peers(("jax",), dtype, threads)["jax"] if peers else \
        {"available": False, "reason": "--no-peers"}
    doc = {"tool": "gradc bench --sweep", "dtype": dtype, "rtol": bench_measure.RTOL[dtype], "settings": settings,
           "machine": bench_measure.machine_info(), "jax": peer, "rows": []}
    t0 = time.perf_counter()
    try:
        for i, cfg in enumerate(configs):
            label = f"[{i + 1}/{len(configs)}] {cfg.name}"
            row = run_config(cfg, dtype, settings, peer.get("available", False), progress, label)
            doc["rows"].append(row)
            progress.line(f"{label:<32} gradc {bench_render.fmt_time(row['times'].get('gradc', {}).get('median_s'), 'u')}"
                          f"  jax {bench_render.fmt_time(row['times'].get('jax', {}).get('median_s'), 'u')}"
                          f"  gradc/jax {bench_render.fmt_ratio(row['gradc_over_jax'])}"
                          + ("" if row["status"] == "ok" else "  " + row["status"]))
    finally:
        limits.__exit__(None, None, None)
        progress.close()
    doc["elapsed_s"] = time.perf_counter() - t0
    try:
        doc["machine"]["loadavg_end"] = list(os.getloadavg())
    except OSError:
        pass
    return doc


# ----------------------------------------------------------------------------- output
def render(doc, stream=None) -> str:
    mu = "µ" if bench_render._can_encode(stream, "µ") else "u"
    head = ["configuration", "shape", "numpy", "gradc", "jax", "gradc/jax", "gradc/numpy", "jax/numpy",
            "max rel err", ""]
    rows = []
    for r in doc["rows"]:
        t = r["times"]
        errs = [c["max_rel_err"] for c in r["check"].values() if c.get("max_rel_err") is not None]
        noisy = any(s.get("noisy") for s in t.values())
        verdict = r["status"] if r["status"] != "ok" else (
            "" if r["gradc_over_jax"] is None else ("slower" if r["gradc_over_jax"] > 1 else ""))
        rows.append([r["name"], r["shape"]] + [bench_render.fmt_time(t.get(i, {}).get("median_s"), mu) for i in IMPLS]
                    + [bench_render.fmt_ratio(r["gradc_over_jax"]) + ("*" if noisy else ""),
                       bench_render.fmt_ratio(r["gradc_over_numpy"]), bench_render.fmt_ratio(r["jax_over_numpy"]),
                       f"{max(errs):.1e}" if errs else "-", verdict])
    widths = [max(len(str(x[i])) for x in [head] + rows) for i in range(len(head))]

    def fmt(x):
        return "  ".join(str(v).ljust(w) if i < 2 or i == len(head) - 1 else str(v).rjust(w)
                         for i, (v, w) in enumerate(zip(x, widths))).rstrip()
    lines = [f"gradc bench --sweep: {doc['dtype']} value_and_grad, median time per call; "
             f"gradc/jax below 1: gradc is faster",
             fmt(head), fmt(["-" * w for w in widths])] + [fmt(x) for x in rows]
    slower = [r["name"] for r in doc["rows"] if r["gradc_over_jax"] is not None and r["gradc_over_jax"] > 1]
    lines.append("")
    if doc["jax"].get("available"):
        lines.append(f"gradc slower than jax.jit in {len(slower)} of {len(doc['rows'])} configurations"
                     + (": " + ", ".join(slower) if slower else ""))
    else:
        lines.append(f"jax: {doc['jax'].get('reason')}")
    bad = [r["name"] for r in doc["rows"] if r["status"] != "ok"]
    lines.append(f"correctness: gradc and jax each against numpy by hand, and gradc against jax "
                 f"(max|a - b| / max|b| per output, rtol {doc['rtol']:g}); "
                 + ("all agree" if not bad else "WRONG: " + ", ".join(bad)))
    for r in doc["rows"]:
        for impl, c in r["check"].items():
            if not c.get("ok"):
                lines.append(f"  {r['name']}: {impl}: {c.get('why')}")
    if any(x[5].endswith("*") for x in rows):
        lines.append(f"* noisy: an interquartile range above {bench_measure.NOISY_IQR:.0%} of its median")
    lines.append(f"MLPs: batch {BATCH}, {INPUTS} inputs, {OUTPUTS} outputs, mean squared error, every weight and "
                 f"bias; gelu = tanh approximation; attention: M7's model, {FEATURES} features")
    m = doc["machine"]
    la = m.get("loadavg")
    lines.append(f"machine: {m['cpu']}, {m['cores']} cores, numpy {m['numpy']}, jax {doc['jax'].get('version', '-')}, "
                 + ("gradc, numpy's BLAS and jax one thread each (--threads 1)" if doc["settings"].get("threads") == 1
                    else f"gradc threads {m.get('gradc_threads')}")
                 + (f", load average {la[0]:.1f}" if la else ""))
    lines.append(f"timing: interleaved, settled between implementations; run took {doc['elapsed_s']:.0f} s")
    return "\n".join(lines)


def select(text):
    """``--sweep-only mlp2,relu,h64,h128``: the configurations whose name matches the
    words; words naming the same part of a name (``mlp2`` / ``mlp3`` / ``attention``;
    an activation or ``n512``; ``h64``) are alternatives, different parts must all
    match.  None or empty: the whole grid.  An unknown word is a ValueError."""
    configs = grid()
    if not text:
        return configs
    wanted = {}
    for word in (w.strip().lower() for w in text.split(",")):
        if not word:
            continue
        places = {k for c in configs for k, tok in enumerate(c.name.split()) if tok == word}
        if not places:
            known = sorted({tok for c in configs for tok in c.name.split()})
            raise ValueError(f"--sweep-only {text}: unknown word {word!r} (known: {','.join(known)})")
        for k in places:
            wanted.setdefault(k, set()).add(word)
    return [c for c in configs if all(c.name.split()[k] in words for k, words in wanted.items())]


def main(args, out) -> int:
    """``gradc bench --sweep``: gradc against jax.jit over MLPs and attention (bench_sweep)."""
    from .cli_args import CLIError
    try:
        configs = select(args.sweep_only)
    except ValueError as e:
        raise CLIError(str(e)) from None
    if args.repeat <= 0:
        raise CLIError(f"--repeat {args.repeat}: expected a positive number")
    doc = run_sweep(configs, args.dtype, quick=args.quick, repeat=args.repeat,
                    peers=not args.no_peers, settle=not args.no_settle, threads=args.threads,
                    progress=bench_render.Progress(sys.stderr, enabled=not args.no_progress))
    print(render(doc, out), file=out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1, default=bench_render._json_default)
            f.write("\n")
        print(f"results: {args.json}", file=out)
    return 0
