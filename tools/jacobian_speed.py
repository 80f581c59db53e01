"""Jacobian and Hessian time per call: gradc against jax.jit(jax.jacrev / jax.hessian).

    python tools/jacobian_speed.py

Each line checks gradc's result against JAX's, then prints the best of 5 calls of each
(after a first call that compiles).  Needs JAX (``pip install 'gradc[peers]'``)."""
import time

import jax
import jax.numpy as jnp
import numpy as onp

import gradc
import gradc.numpy as gnp

jax.config.update("jax_enable_x64", True)
r = onp.random.default_rng(0)
X = r.standard_normal((500, 50))
y = r.integers(0, 2, 500) * 2 - 1.0
w = r.standard_normal(50) * 0.1
W = r.standard_normal((100, 100)) / 10
x = r.standard_normal(100)


def best_ms(f, *args):
    f(*args)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3


CASES = [
    ("Hessian of a mean logistic loss, 50 parameters, 500 rows",
     gradc.hessian(lambda w, X, y: gnp.mean(gnp.log1p(gnp.exp(-y * (X @ w))))),
     jax.jit(jax.hessian(lambda w, X, y: jnp.mean(jnp.log1p(jnp.exp(-y * (X @ w)))))), (w, X, y)),
    ("Jacobian of tanh(W @ x), 100 x 100",
     gradc.jacobian(lambda x: gnp.tanh(W @ x)), jax.jit(jax.jacrev(lambda x: jnp.tanh(W @ x))), (x,)),
]
for name, g, j, args in CASES:
    err = float(onp.abs(onp.asarray(g(*args)) - onp.asarray(j(*args))).max())
    print(f"{name}: gradc {best_ms(g, *args):.3f} ms, jax {best_ms(j, *args):.3f} ms  (max |difference| {err:.1e})")
