"""Per-example gradients with gradc.vmap, and a differentially private SGD step.

The loss is written for one example; ``vmap(grad(loss), in_axes=(None, 0, 0))`` gives
every example's gradient at once.  DP-SGD clips each example's gradient to norm 1
before averaging.  The per-example gradients are checked against the closed form in
numpy, then timed against numpy written by hand and, where installed, against
``jax.jit(jax.vmap(jax.grad(loss)))``.
"""
import time

import numpy

import gradc
import gradc.numpy as np

rng = numpy.random.default_rng(0)
N, D, H, K = 2048, 16, 64, 4
params = {"W1": rng.standard_normal((D, H)) / 4, "b1": rng.standard_normal(H) / 4,
          "W2": rng.standard_normal((H, K)) / 4}
X, Y = rng.standard_normal((N, D)), rng.standard_normal((N, K))


def loss(p, x, y):
    """One example: x of (D,), y of (K,)."""
    h = np.tanh(x @ p["W1"] + p["b1"])
    return np.sum((h @ p["W2"] - y) ** 2)


per_example = gradc.vmap(gradc.grad(loss), in_axes=(None, 0, 0))


@gradc.jit
def dp_gradient(p, X, Y):
    """The mean of the per-example gradients, each clipped to norm at most 1."""
    g = per_example(p, X, Y)
    norms = np.sqrt(np.sum(g["W1"] ** 2, axis=(1, 2)) + np.sum(g["b1"] ** 2, axis=1)
                    + np.sum(g["W2"] ** 2, axis=(1, 2)))
    scale = np.minimum(1.0, 1.0 / norms)
    return {"W1": np.mean(g["W1"] * scale[:, None, None], axis=0),
            "b1": np.mean(g["b1"] * scale[:, None], axis=0),
            "W2": np.mean(g["W2"] * scale[:, None, None], axis=0)}


def numpy_per_example(p, X, Y):
    """The closed form, vectorized by hand."""
    h = numpy.tanh(X @ p["W1"] + p["b1"])
    d_out = 2 * (h @ p["W2"] - Y)
    dz = (d_out @ p["W2"].T) * (1 - h * h)
    return {"W1": X[:, :, None] * dz[:, None, :], "b1": dz, "W2": h[:, :, None] * d_out[:, None, :]}


def median_ms(f, *args, calls=50, rounds=7):
    f(*args)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            out = f(*args)
        if hasattr(out.get("W1"), "block_until_ready"):
            out["W1"].block_until_ready()
        times.append((time.perf_counter() - t0) / calls * 1e3)
    return float(numpy.median(times))


got = per_example(params, X, Y)
want = numpy_per_example(params, X, Y)
err = max(float(numpy.abs(got[k] - want[k]).max()) for k in want)
print(f"per-example gradients of {N} examples: W1 {got['W1'].shape}, b1 {got['b1'].shape}, "
      f"W2 {got['W2'].shape}")
print(f"max |gradc - closed form| = {err:.1e}")
assert err < 1e-12

step = dp_gradient(params, X, Y)
print(f"DP-SGD gradient: |W1| = {numpy.linalg.norm(step['W1']):.4f}")

print(f"time per call, median of 7 rounds of 50 (N={N}, {D}-{H}-{K} tanh MLP, float64):")
print(f"  gradc vmap(grad):          {median_ms(per_example, params, X, Y):7.3f} ms")
print(f"  numpy closed form by hand: {median_ms(numpy_per_example, params, X, Y):7.3f} ms")
try:
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)

    def jloss(p, x, y):
        h = jnp.tanh(x @ p["W1"] + p["b1"])
        return jnp.sum((h @ p["W2"] - y) ** 2)
    jax_per_example = jax.jit(jax.vmap(jax.grad(jloss), in_axes=(None, 0, 0)))
    jerr = max(float(numpy.abs(numpy.asarray(jax_per_example(params, X, Y)[k]) - want[k]).max()) for k in want)
    print(f"  jax.jit(vmap(grad)):       {median_ms(jax_per_example, params, X, Y):7.3f} ms  "
          f"(max |jax - closed form| = {jerr:.1e})")
except ImportError:
    print("  (JAX not installed)")
print("per-example gradients match the closed form")
