"""Models written with lax.scan, against jax.jit: first call (trace, differentiate,
compile, run) and steady-state value_and_grad time, and the gradients' agreement.

    python tools/loops_vs_jax.py

Needs JAX (float64: x64 on).  A GRU over 40 steps (batch 64, 96 units), an LSTM over
100 steps (batch 32, 64 units) and a 12-layer residual MLP with layer norm written as a
scan over stacked parameters (batch 256, width 128).  Prints one table row per model;
steady state is the median of 20 calls each, the two alternating in one process.
Set GRADC_CACHE_DIR=off to time gradc's compiles rather than its disk cache."""
import time

import numpy as np

import gradc
import gradc.nn as gnn
import gradc.numpy as gnp
from gradc import lax as glax
from gradc.backends.kernel import wait_for_upgrades

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)
rng = np.random.default_rng(0)
API = {gnp: (glax, gnn), jnp: (jax.lax, jax.nn)}


def R(*shape, sc=1.0):
    return rng.standard_normal(shape) * sc


def gru(m, p, xs, h0):
    lax, nn = API[m]

    def cell(h, x):
        z = nn.sigmoid(x @ p["Wz"] + h @ p["Uz"])
        r = nn.sigmoid(x @ p["Wr"] + h @ p["Ur"])
        n = m.tanh(x @ p["Wn"] + (r * h) @ p["Un"])
        h = (1 - z) * n + z * h
        return h, h.sum()
    h, ys = lax.scan(cell, h0, xs)
    return m.sum(h ** 2) + ys.mean()


def lstm(m, p, xs):
    lax, nn = API[m]
    B, H = xs.shape[1], p["i"].shape[1]

    def cell(c, x):
        h, s = c
        hx = m.concatenate([x, h], axis=1)
        i, f, o = nn.sigmoid(hx @ p["i"]), nn.sigmoid(hx @ p["f"]), nn.sigmoid(hx @ p["o"])
        s = f * s + i * m.tanh(hx @ p["g"])
        h = o * m.tanh(s)
        return (h, s), h.mean()
    (h, s), ys = lax.scan(cell, (m.zeros((B, H)), m.zeros((B, H))), xs)
    return (h ** 2).sum() + ys.sum()


def layers(m, p, x, y):
    lax, nn = API[m]

    def layer(h, q):
        z = h @ q["W"] + q["b"]
        mu = z.mean(axis=-1, keepdims=True)
        var = ((z - mu) ** 2).mean(axis=-1, keepdims=True)
        return h + nn.gelu((z - mu) / m.sqrt(var + 1e-5) * q["g"]), None
    h, _ = lax.scan(layer, x, p)
    return m.mean((h - y) ** 2)


H, IN, D, L = 96, 32, 128, 12
CASES = [
    ("GRU, 40 steps, batch 64, 96 units", gru,
     {k: R(IN if k[0] == "W" else H, H, sc=0.2) for k in ["Wz", "Uz", "Wr", "Ur", "Wn", "Un"]},
     (R(40, 64, IN), R(64, H, sc=0.1))),
    ("LSTM, 100 steps, batch 32, 64 units", lstm, {k: R(32 + 64, 64, sc=0.2) for k in "ifog"}, (R(100, 32, 32),)),
    ("12 layers by scan, batch 256, width 128", layers,
     {"W": R(L, D, D, sc=D ** -0.5), "b": R(L, D, sc=0.1), "g": 1 + R(L, D, sc=0.1)}, (R(256, D), R(256, D))),
]

print("| model | gradc first call | jax first call | gradc | jax.jit | ratio | max rel. diff of gradients |")
print("|---|---|---|---|---|---|---|")
for name, f, p, rest in CASES:
    wait_for_upgrades()
    t = time.perf_counter()
    vg = gradc.value_and_grad(lambda p, *a: f(gnp, p, *a))
    gv = vg(p, *rest)
    tg = time.perf_counter() - t
    jp = jax.tree_util.tree_map(jnp.asarray, p)
    jr = [jnp.asarray(a) for a in rest]
    t = time.perf_counter()
    jf = jax.jit(jax.value_and_grad(lambda p, *a: f(jnp, p, *a)))
    jv = jax.block_until_ready(jf(jp, *jr))
    tj = time.perf_counter() - t
    err = max(float(np.abs(gv[1][k] - np.asarray(jv[1][k])).max() / np.abs(np.asarray(jv[1][k])).max()) for k in p)
    for _ in range(30):
        vg(p, *rest)
    wait_for_upgrades()
    tgs, tjs = [], []
    for _ in range(20):
        t0 = time.perf_counter()
        vg(p, *rest)
        tgs.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        jax.block_until_ready(jf(jp, *jr))
        tjs.append(time.perf_counter() - t0)
    a, b = np.median(tgs), np.median(tjs)
    print(f"| {name} | {tg:.2f} s | {tj:.2f} s | {a * 1e3:.2f} ms | {b * 1e3:.2f} ms | {a / b:.2f} | {err:.1e} |")
