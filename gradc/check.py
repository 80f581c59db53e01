"""``gradc.check_grad``: gradc's gradient against central finite differences of the
same function, as ``jax.test_util.check_grads`` does for JAX.

The check runs in float64 (float32 arguments are converted: finite differences in
float32 cannot resolve more than ~3 digits).  Each differentiated element ``x_k`` is
moved by ``h = eps · max(1, |x_k|)`` both ways and ``(f(x + h) − f(x − h)) / 2h``
compared with gradc's ``∂f/∂x_k``; an element fails when
``|grad − fd| > atol + rtol · |fd|``.  Arguments with more than ``max_elements``
elements in all are checked along ``directions`` random unit directions ``v`` instead:
``⟨grad, v⟩`` against ``(f(x + hv) − f(x − hv)) / 2h`` (two calls per direction, as
JAX checks).  Central differences err by ``O(h²)`` (truncation) plus ``O(ε/h)``
(rounding): with the default ``eps = 1e-6`` about 1e-10 relative on well-scaled
functions, far below the default ``rtol = 1e-5``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ArgumentError, GradcError
from .tree_util import tree_flatten, tree_unflatten, leaf_paths, keystr

__all__ = ["check_grad", "GradCheck", "GradCheckError"]


@dataclass
class GradCheck:
    """What :func:`check_grad` found.  ``worst_relative_error`` is the largest
    ``|grad − fd| / max(|grad|, |fd|)`` over the elements (or directions) checked, and
    ``where`` says which (``"x[3]"``, ``"params['W'][0, 2]"``, ``"direction 2"``)."""
    ok: bool
    worst_relative_error: float
    where: str
    gradient: float
    finite_difference: float
    checked: int
    mode: str                 # "elements" or "directions"
    rtol: float
    atol: float
    failures: int

    def __str__(self):
        verdict = "OK" if self.ok else f"MISMATCH in {self.failures} of {self.checked} {self.mode}"
        return (f"check_grad: {verdict}: worst relative error {self.worst_relative_error:.2e} at "
                f"{self.where} (gradc {self.gradient:.10g}, finite differences {self.finite_difference:.10g}); "
                f"tolerance |grad - fd| <= {self.atol:g} + {self.rtol:g}·|fd|")


class GradCheckError(GradcError, AssertionError):
    """gradc's gradient disagrees with finite differences; ``.report`` is the GradCheck."""

    def __init__(self, report: GradCheck):
        super().__init__(str(report))
        self.report = report


def check_grad(f, args, argnums=0, *, eps=1e-6, rtol=1e-5, atol=1e-6, max_elements=2000,
               directions=8, seed=0, raises=True, backend=None) -> GradCheck:
    """Compare ``gradc.grad(f, argnums)(*args)`` with central finite differences of
    ``f`` (module docstring: how, and the tolerances).  ``args`` is a tuple of the
    arguments (pytrees allowed); ``f`` must return a scalar.  Returns a
    :class:`GradCheck`; when the gradient disagrees, raises :class:`GradCheckError`
    (carrying the report) unless ``raises=False``."""
    from .api import _check_argnums, _names, grad, jit
    if not isinstance(args, (tuple, list)):
        raise ArgumentError(f"check_grad: args must be a tuple of f's arguments, got {type(args).__name__}")
    args = [_float64(a) for a in args]
    nums = _check_argnums(argnums, len(args), "check_grad")
    names = _names(f, len(args))
    fwd = jit(f, backend=backend)
    g = grad(f, argnums=nums, backend=backend)(*args)

    def value(a):
        v = np.asarray(fwd(*a), dtype=np.float64)
        if v.shape != ():
            raise ArgumentError(f"check_grad: f must return a scalar, got shape {v.shape}")
        return float(v)

    # the differentiated leaves, each with a label and gradc's gradient for it
    leaves = []                       # (arg number, leaf number, label, x, grad)
    for a, ga in zip(nums, g):
        xs, td = tree_flatten(args[a])
        gs = tree_flatten(ga)[0]
        for k, (path, x, gx) in enumerate(zip(leaf_paths(td), xs, gs)):
            leaves.append((a, k, names[a] + keystr(path), np.asarray(x, np.float64), np.asarray(gx, np.float64)))

    def moved(a, k, new_leaf):
        xs, td = tree_flatten(args[a])
        xs = list(xs)
        xs[k] = new_leaf
        out = list(args)
        out[a] = tree_unflatten(td, xs)
        return out

    rows = []                         # (where, gradient, finite difference)
    total = sum(x.size for *_, x, _ in leaves)
    if total <= max_elements:
        mode = "elements"
        for a, k, label, x, gx in leaves:
            for j in range(x.size):
                h = eps * max(1.0, abs(float(x.reshape(-1)[j])))
                xp, xm = x.copy(), x.copy()
                xp.reshape(-1)[j] += h
                xm.reshape(-1)[j] -= h
                fd = (value(moved(a, k, xp)) - value(moved(a, k, xm))) / (2 * h)
                idx = np.unravel_index(j, x.shape) if x.ndim else ()
                where = label + (f"[{', '.join(map(str, idx))}]" if x.ndim else "")
                rows.append((where, float(gx.reshape(-1)[j]), fd))
    else:
        mode = "directions"
        rng = np.random.default_rng(seed)
        for d in range(directions):
            vs = [rng.standard_normal(x.shape) for *_, x, _ in leaves]
            norm = np.sqrt(sum(float(np.sum(v * v)) for v in vs))
            vs = [v / norm for v in vs]
            scale = max(1.0, max(float(np.max(np.abs(x))) if x.size else 0.0 for *_, x, _ in leaves))
            h = eps * scale
            plus, minus = list(args), list(args)
            for a in nums:
                xs, td = tree_flatten(args[a])
                mine = [(k, v) for (aa, k, *_), v in zip(leaves, vs) if aa == a]
                xp, xm = list(xs), list(xs)
                for k, v in mine:
                    xp[k] = np.asarray(xs[k], np.float64) + h * v
                    xm[k] = np.asarray(xs[k], np.float64) - h * v
                plus[a], minus[a] = tree_unflatten(td, xp), tree_unflatten(td, xm)
            fd = (value(plus) - value(minus)) / (2 * h)
            dot = sum(float(np.sum(gx * v)) for (*_, gx), v in zip(leaves, vs))
            rows.append((f"direction {d}", dot, fd))

    failures, worst = 0, (-1.0, "nothing checked", 0.0, 0.0)
    for where, gv, fd in rows:
        diff = abs(gv - fd)
        if not np.isfinite(gv) or not np.isfinite(fd) or diff > atol + rtol * abs(fd):
            failures += 1
        denom = max(abs(gv), abs(fd))
        rel = diff / denom if denom > 0 else 0.0
        rel = rel if np.isfinite(rel) else float("inf")
        if rel > worst[0]:
            worst = (rel, where, gv, fd)
    report = GradCheck(failures == 0, max(worst[0], 0.0), worst[1], worst[2], worst[3], len(rows), mode,
                       rtol, atol, failures)
    if failures and raises:
        raise GradCheckError(report)
    return report


def _float64(tree):
    """Float leaves in float64 (other leaves unchanged)."""
    leaves, td = tree_flatten(tree, is_leaf=lambda x: isinstance(x, list) and _numbers(x))
    out = []
    for x in leaves:
        a = np.asarray(x) if not isinstance(x, (int, bool)) else None
        if a is not None and a.dtype.kind == "f":
            out.append(a.astype(np.float64))
        elif isinstance(x, float):
            out.append(np.float64(x))
        else:
            out.append(x)
    return tree_unflatten(td, out)


def _numbers(x) -> bool:
    return all(isinstance(e, (int, float, np.generic)) or (isinstance(e, list) and _numbers(e)) for e in x)
