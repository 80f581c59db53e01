"""The paper's neuron and its loss, differentiated by gradc and checked against the
closed forms of Parr & Howard, "The Matrix Calculus You Need For Deep Learning":

    activation(x) = max(0, w·x + b)
        d/dw = 0ᵀ if w·x + b <= 0, xᵀ if w·x + b > 0;   d/db = 0 or 1 likewise

    C(w, b, X, y) = 1/N Σ_i (max(0, w·x_i + b) − y_i)²
        dC/dw = 2/N Σ_{i in A} e_i x_iᵀ,   dC/db = 2/N Σ_{i in A} e_i
        with e_i = w·x_i + b − y_i and the active set A = {i : w·x_i + b > 0}

(the case split sits inside the sum, per sample: see the erratum in the paper notes).
Prints gradc's gradient beside the closed form and the derivative as gradc derived it
(gradc.explain).  Exits 1 if they disagree.

    python examples/neuron.py
"""
import sys

import numpy as np

import gradc
import gradc.numpy as gnp


def activation(w, b, x):
    z = gnp.dot(w, x) + b
    return gnp.maximum(0.0, z)


def loss(w, b, X, y):
    z = X @ w + b
    a = gnp.maximum(0.0, z)
    e = a - y
    return gnp.mean(e ** 2)


def closed_form(w, b, X, y):
    """The paper's gradient of the loss, the case split inside the sum."""
    z = X @ w + b
    active = z > 0                     # the active set A
    e = z - y                          # e_i = w·x_i + b − y_i
    N = len(y)
    return 2 / N * (e * active) @ X, 2 / N * np.sum(e * active)


def rel_err(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(np.max(np.abs(b)), 1e-300))


def main():
    rng = np.random.default_rng(0)
    N, d = 100, 3
    X = rng.normal(size=(N, d))
    w = np.array([0.5, -0.2, 0.1])
    b = 0.3
    y = np.maximum(0.0, X @ np.array([0.4, -0.1, 0.3]) + 0.2) + 0.05 * rng.normal(size=N)
    ok = True

    print("The neuron's loss C(w, b, X, y) = 1/N Σ_i (max(0, w·x_i + b) − y_i)²,"
          f" N = {N} samples of d = {d} features")
    vg = gradc.value_and_grad(loss, argnums=(0, 1))
    C, (dw, db) = vg(w, b, X, y)
    cw, cb = closed_form(w, b, X, y)
    print(f"  C = {C:.6f}; {int(np.sum(X @ w + b > 0))} of {N} samples are active")
    print(f"  {'':7} {'gradc':>36}   {'closed form (the paper)':>36}   rel. error")
    for name, g, c in (("dC/dw", dw, cw), ("dC/db", db, cb)):
        err = rel_err(g, c)
        ok &= err < 1e-12
        print(f"  {name:7} {np.array2string(np.atleast_1d(g), precision=6):>36}   "
              f"{np.array2string(np.atleast_1d(c), precision=6):>36}   {err:.1e}")
    print()
    print(gradc.explain(loss, w, b, X, y, argnums=(0, 1)))
    print()

    print("The activation max(0, w·x + b) of one sample: its gradient is xᵀ (and 1) when "
          "the neuron is active, 0ᵀ (and 0) when it is not")
    ga = gradc.grad(activation, argnums=(0, 1))
    for x in (np.array([1.0, 0.5, 2.0]), np.array([-1.0, 1.0, -2.0])):
        gw, gb = ga(w, b, x)
        gw = gw + 0.0                    # print -0. as 0.
        active = float(w @ x + b) > 0
        cw, cb = (x, 1.0) if active else (np.zeros(d), 0.0)
        good = np.allclose(gw, cw, rtol=0, atol=0) and gb == cb
        ok &= bool(good)
        print(f"  x = {x}: w·x + b = {w @ x + b:+.2f}, d/dw = {gw}, d/db = {gb:g}"
              f"   (closed form {cw}, {cb:g}: {'same' if good else 'DIFFERENT'})")
    print()
    print(gradc.explain(activation, w, b, np.array([1.0, 0.5, 2.0]), argnums=(0, 1)))
    print()
    print("gradc's gradients match the closed forms" if ok else "MISMATCH with the closed forms")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
