"""Time gradc.lax.conv_general_dilated against jax.jit on a 3x3 SAME convolution of a
batch of 32 images, 64 channels in and out, 32x32, float32: the forward pass and the
gradient of a scalar loss with respect to input and kernel, and the graph's size.

    python tools/conv_timing.py [--backend llvm|c] [--repeat 5]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import gradc
import gradc.numpy as gnp
from gradc import lax


def _best(f, args, repeat):
    f(*args)                                     # compile
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = f(*args)
        leaves = out if isinstance(out, tuple) else (out,)
        for leaf in leaves:
            for a in (leaf if isinstance(leaf, tuple) else (leaf,)):
                getattr(a, "block_until_ready", lambda: None)()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--backend", default="llvm")
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args(argv)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 64, 32, 32)).astype(np.float32)
    w = (rng.standard_normal((64, 64, 3, 3)) * 0.05).astype(np.float32)

    def fwd(x, w):
        return lax.conv_general_dilated(x, w, (1, 1), "SAME")

    def loss(x, w):
        return gnp.sum(gnp.tanh(fwd(x, w)))

    gf = gradc.jit(fwd, backend=a.backend)
    gvg = gradc.value_and_grad(loss, argnums=(0, 1), backend=a.backend)
    t0 = time.perf_counter()
    gvg(x, w)
    first = time.perf_counter() - t0
    nodes = gvg.lower(x, w).graph.nx.number_of_nodes()
    print(f"gradc ({a.backend}): graph of value_and_grad {nodes} nodes, first call (trace + compile) {first:.2f} s")
    print(f"gradc ({a.backend}): forward {_best(gf, (x, w), a.repeat) * 1e3:.1f} ms, "
          f"value_and_grad {_best(gvg, (x, w), a.repeat) * 1e3:.1f} ms")
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return
    jf = jax.jit(lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME"))
    jvg = jax.jit(jax.value_and_grad(lambda x, w: jnp.sum(jnp.tanh(jf(x, w))), argnums=(0, 1)))
    print(f"jax.jit: forward {_best(jf, (x, w), a.repeat) * 1e3:.1f} ms, "
          f"value_and_grad {_best(jvg, (x, w), a.repeat) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
