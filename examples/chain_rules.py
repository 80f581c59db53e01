"""The chain-rule examples of Parr & Howard, "The Matrix Calculus You Need For Deep
Learning": for each, the derivative gradc derived (gradc.explain, read off the adjoint
graph), the paper's closed form, and a numeric check of one against the other.

  single-variable chain rule   d/dx sin(x²), d/dx ln(x²), d/dx ln(sin(x³)²)
  total derivative             d/dx (x + x²), d/dx sin(x + x²), d/dx (x · x²)
  vector chain rule            [ln(x²), sin(3x)] -> [2/x, 3 cos(3x)]; element-wise
                               functions of a vector have a diagonal Jacobian

Exits 1 if a derivative disagrees with its closed form.

    python examples/chain_rules.py
"""
import sys

import numpy as np

import gradc
import gradc.numpy as gnp

X0 = np.array([0.3, 0.7, 1.1, 1.9, 2.5])      # where each derivative is checked


EXAMPLES = [
    ("single-variable chain rule", [
        ("sin(x²)", lambda x: gnp.sin(x ** 2), lambda x: 2 * x * np.cos(x ** 2), "2x cos(x²)"),
        ("ln(x²)", lambda x: gnp.log(x ** 2), lambda x: 2 / x, "2/x"),
        ("ln(sin(x³)²)", lambda x: gnp.log(gnp.sin(x ** 3) ** 2),
         lambda x: 6 * x ** 2 * np.cos(x ** 3) / np.sin(x ** 3), "6x² cos(x³)/sin(x³)"),
    ]),
    ("total derivative: df/dx = Σ_i ∂f/∂u_i · du_i/dx", [
        ("x + x²", lambda x: x + x ** 2, lambda x: 1 + 2 * x, "1 + 2x"),
        ("sin(x + x²)", lambda x: gnp.sin(x + x ** 2), lambda x: np.cos(x + x ** 2) * (1 + 2 * x),
         "cos(x + x²)(1 + 2x)"),
        ("x · x²", lambda x: x * x ** 2, lambda x: 3 * x ** 2, "3x²"),
    ]),
]


def vector_examples():
    """The vector chain rule: Jacobians, numerator layout."""
    ok = True
    print("vector chain rule: ∂f(g(x))/∂x = ∂f/∂g · ∂g/∂x")

    def f(x):
        return gnp.stack([gnp.log(x ** 2), gnp.sin(3 * x)])
    ex = gradc.explain(f, 0.7)
    print("  f(x) = [ln(x²), sin(3x)]   (paper: ∂f/∂x = [2/x, 3 cos(3x)])")
    print("    gradc derived:   ∂f/∂x = " + ex.gradients["x"])
    J = np.array([gradc.jacobian(f)(x) for x in X0])           # (5, 2): one column per point
    want = np.stack([2 / X0, 3 * np.cos(3 * X0)], axis=1)
    err = float(np.max(np.abs(J - want)))
    ok &= err < 1e-12
    print(f"    numeric check at x = {X0.tolist()}: max |gradc − closed form| = {err:.1e}"
          f"  {'OK' if err < 1e-12 else 'MISMATCH'}")

    def h(x):
        return gnp.sin(x ** 2)
    ex = gradc.explain(h, X0)
    print("  element-wise: f(x) = sin(x²) on a vector x: the Jacobian is diagonal,"
          " diag(∂f_i/∂x_i), paper: diag(2x_i cos(x_i²))")
    print("    gradc derived:   ∂f_i/∂x_i = " + ex.gradients["x"])
    J = gradc.jacobian(h)(X0)
    want = np.diag(2 * X0 * np.cos(X0 ** 2))
    err = float(np.max(np.abs(J - want)))
    ok &= err < 1e-12
    print(f"    numeric check at x = {X0.tolist()}: max |J − diag(2x cos(x²))| = {err:.1e}"
          f"  {'OK' if err < 1e-12 else 'MISMATCH'}")
    return ok


def main():
    ok = True
    for title, items in EXAMPLES:
        print(title)
        for text, f, closed, paper in items:
            ex = gradc.explain(f, 0.7)
            derived = ex.gradients["x"]
            df = gradc.grad(f)
            got = np.array([df(x) for x in X0])
            err = float(np.max(np.abs(got - closed(X0)) / np.maximum(1.0, np.abs(closed(X0)))))
            good = err < 1e-12
            ok &= good
            print(f"  d/dx {text:14} gradc derived: {derived:26} paper: {paper:22}"
                  f" max rel. error at x = {X0.tolist()}: {err:.1e}  {'OK' if good else 'MISMATCH'}")
        print()
    ok &= vector_examples()
    print()
    print("Each step, with the rule that produced it (gradc explain, the last example of the first group):")
    print(gradc.explain(lambda x: gnp.log(gnp.sin(x ** 3) ** 2), 0.7))
    print()
    print("all derivatives match the closed forms" if ok else "MISMATCH with a closed form")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
