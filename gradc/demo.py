"""``gradc demo``: the paper's neuron, its loss, and the loss's gradient checked against
the closed form (Parr & Howard, *The Matrix Calculus You Need For Deep Learning*).

    activation(x) = max(0, w.x + b)
    C(w, b, X, y) = 1/N sum_i (y_i - max(0, w.x_i + b))^2
    dC/dw = 2/N sum_{i in A} e_i x_i,   dC/db = 2/N sum_{i in A} e_i
    with e_i = w.x_i + b - y_i and the active set A = {i : w.x_i + b > 0}.

The demo traces the loss, prints the forward graph and the adjoint graph gradc derives
from it, evaluates the gradient with the configured backend and compares it with the
closed form.  :func:`run` returns 0 when they agree to 1e-12 (relative), 1 otherwise.
"""
from __future__ import annotations

import linecache
import os
import re
import sys

import numpy as np

import gradc
from gradc.errors import GradcError

N, D, SEED = 16, 3, 0
RTOL = 1e-12


# The model, as a user would write it in a file of their own.  It is compiled from this
# text (as "neuron.py") so that the graphs' source tags (``# neuron.py:5``) point at these
# lines: gradc attributes each node to the innermost frame outside the gradc package.
MODEL_FILE = "neuron.py"
MODEL_SOURCE = """\
import gradc.numpy as np

def loss(w, b, X, y):
    z = X @ w + b                       # z_i = w.x_i + b
    a = np.maximum(0.0, z)              # the neuron's activation
    return np.mean((y - a) ** 2)        # C = 1/N sum_i (y_i - a_i)^2
"""


def _load_model():
    path = os.path.join(os.sep, "gradc-demo", MODEL_FILE)
    linecache.cache[path] = (len(MODEL_SOURCE), None, MODEL_SOURCE.splitlines(True), path)
    ns: dict = {"__name__": "gradc_demo_neuron"}
    exec(compile(MODEL_SOURCE, path, "exec"), ns)
    return ns["loss"]


loss = _load_model()


def data(n=N, d=D, seed=SEED):
    """Synthetic samples with a mix of active (z_i > 0) and inactive neurons."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w = rng.standard_normal(d)
    z = X @ w
    b = np.float64(-np.median(z) + 0.05)        # about half the samples active
    y = np.maximum(0.0, z + b) + 0.5 * rng.standard_normal(n)
    return w, b, X, y


def closed_form(w, b, X, y):
    """The paper's gradient, the case split inside the sum (per sample)."""
    n = X.shape[0]
    z = X @ w + b
    active = z > 0
    e = z - y
    dw = 2.0 / n * (e[active] @ X[active])
    db = 2.0 / n * np.sum(e[active])
    c = np.mean((y - np.maximum(0.0, z)) ** 2)
    return c, dw, np.float64(db), active


def _fmt(v) -> str:
    return np.array2string(np.atleast_1d(np.asarray(v, dtype=np.float64)), precision=15,
                           floatmode="maxprec_equal", separator=", ", max_line_width=200) \
        if np.ndim(v) else f"{float(v):.15g}"


_ARITH = re.compile(r"= (?:fadd|fsub|fmul|fdiv|fneg|fcmp|select|(?:tail )?call)\b")


def _vector_ir_excerpt(lowered, limit=12):
    """Lines of the optimized LLVM IR that use <4 x double> or <8 x double>: the
    arithmetic first, one line per distinct instruction (unrolled copies dropped)."""
    ir = lowered.llvm_ir()
    lines = [ln.strip() for ln in ir.splitlines() if "<4 x double>" in ln or "<8 x double>" in ln]
    seen, picked = set(), []
    for want_arith in (True, False):
        for k, ln in enumerate(lines):
            key = re.sub(r"%[\w.]+", "%", ln.split(", !")[0])
            if bool(_ARITH.search(ln)) == want_arith and key not in seen and len(picked) < limit:
                seen.add(key)
                picked.append((k, ln))
    shown = [ln for _, ln in sorted(picked)]
    return [ln if len(ln) <= 110 else ln[:107] + "..." for ln in shown], len(lines)


def _timing(p, vg):
    from . import bench_measure, bench_models, bench_render
    for size in ("small", "medium"):
        w, b, X, y = bench_models.make_data("M2", size)
        vg(w, b, X, y)   # compile (once: shapes are symbolic) before timing
        st = bench_measure.measure({"numpy": (bench_models.m2_value_and_grad, (w, b, X, y)),
                                    "gradc": (vg, (w, b, X, y))}, budget=0.15, min_batches=5, rounds=5)
        tn, tg = st["numpy"]["median_s"], st["gradc"]["median_s"]
        p(f"  X {X.shape[0]}x{X.shape[1]}: numpy {bench_render.fmt_time(tn)}, gradc {bench_render.fmt_time(tg)} "
          f"per value_and_grad  (gradc/numpy = {tg / tn:.2f})")


def run(out=sys.stdout, backend=None) -> int:
    """Print the demo on ``out``; 0 if gradc's gradient matches the closed form."""
    def p(*a):
        print(*a, file=out)

    backend = backend or gradc.config()["backend"]
    w, b, X, y = data()
    c_ref, dw_ref, db_ref, active = closed_form(w, b, X, y)
    n_act = int(active.sum())

    p("gradc demo: the neuron of Parr & Howard, 'The Matrix Calculus You Need For Deep Learning'")
    p()
    p("  activation(x)   = max(0, w.x + b)")
    p("  C(w, b, X, y)   = 1/N sum_i (y_i - max(0, w.x_i + b))^2")
    p("  closed form     : dC/dw = 2/N sum_{i in A} e_i x_i,  dC/db = 2/N sum_{i in A} e_i")
    p("                    e_i = w.x_i + b - y_i,  A = {i : w.x_i + b > 0}")
    p(f"  data            : N={X.shape[0]} samples, d={X.shape[1]} features, "
      f"{n_act} active and {X.shape[0] - n_act} inactive (seed {SEED})")
    p(f"  backend         : {backend}")
    p()
    p(f"== the model ({MODEL_FILE}) ==")
    for k, line in enumerate(MODEL_SOURCE.splitlines(), 1):
        p(f"  {k:>2} | {line}".rstrip())
    p()

    p("== forward graph: gradc.trace(loss, w, b, X, y) ==")
    p(gradc.trace(loss, w, b, X, y))
    p()

    vg = gradc.value_and_grad(loss, argnums=(0, 1), backend=backend)
    lowered = vg.lower(w, b, X, y)
    p("== adjoint graph: gradc.value_and_grad(loss, argnums=(0, 1)).lower(w, b, X, y).graph ==")
    p(lowered.graph)
    p()

    c, (dw, db) = vg(w, b, X, y)
    p("== gradient: gradc vs the closed form ==")
    rows = [("C", c, c_ref), ("dC/dw", dw, dw_ref), ("dC/db", db, db_ref)]
    for name, got, ref in rows:
        p(f"  {name:<6} gradc       {_fmt(got)}")
        p(f"  {'':<6} closed form {_fmt(ref)}")
    diff = max(float(np.max(np.abs(np.asarray(got, np.float64) - ref))) for _, got, ref in rows)
    scale = max(float(np.max(np.abs(ref))) for _, _, ref in rows)
    rel = diff / scale if scale > 0 else diff
    ok = bool(np.isfinite(rel)) and rel <= RTOL
    p(f"  max |difference| = {diff:.3g}  (relative {rel:.3g}, tolerance {RTOL:g}): "
      + ("OK, gradc matches the closed form" if ok else "MISMATCH"))

    p()
    p("== the derivative, read off the adjoint graph: lowered.explain() ==")
    try:
        for line in str(lowered.explain()).splitlines():
            p("  " + line)
    except Exception as e:   # explaining is a courtesy; the check above is the demo's verdict
        p(f"  (no explanation: {type(e).__name__}: {e})")

    p()
    p("== timed against numpy's hand-written gradient (interleaved medians; full zoo: gradc bench) ==")
    _timing(p, vg)

    try:
        lines, total = _vector_ir_excerpt(lowered)
    except GradcError as e:
        if backend == "llvm":
            p()
            p(f"(no LLVM IR to show: {e})")
    else:
        p()
        p(f"== vectorized LLVM IR ({total} lines with <4 x double> / <8 x double>; "
          f"full listing: gradc ir) ==")
        for ln in lines:
            p("  " + ln)
        if not lines:
            p("  (none: the IR has no 4- or 8-wide double vectors)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run())
