"""gradc.check_grad: it passes correct gradients and catches wrong ones.

A wrong gradient is built honestly with ``stop_gradient``, whose derivative is zero by
design: ``f(x) = Σx² + Σ stop_gradient(g(x))`` has the value of ``Σx² + Σg(x)`` (what
finite differences see) but gradc's gradient is that of ``Σx²`` alone, so the expected
worst relative error can be computed in closed form from ``g'``."""
from __future__ import annotations

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp

pytestmark = pytest.mark.usefixtures("core_backend")
rng = np.random.default_rng(11)


def test_correct_gradients_pass_with_small_error():
    x = rng.standard_normal(5)
    r = gradc.check_grad(lambda x: gnp.sum(gnp.sin(x) * x), (x,))
    assert r.ok and r.mode == "elements" and r.checked == 5 and r.failures == 0
    assert r.worst_relative_error < 1e-7                 # central differences: ~1e-10 here
    params = {"W": rng.standard_normal((3, 2)), "b": [rng.standard_normal(2), None]}
    X = rng.standard_normal((4, 3)).astype(np.float32)   # checked in float64

    def f(params, X, k):
        return gnp.sum(gnp.tanh(X @ params["W"] + params["b"][0]) ** 2) * k
    r = gradc.check_grad(f, (params, X, 1.5), argnums=(0, 1))
    assert r.ok and r.checked == 6 + 2 + 12


def test_a_wrong_gradient_is_caught_and_the_error_is_right():
    x = np.array([0.5, -1.2, 2.0, 0.3])

    def f(x):
        return gnp.sum(x ** 2) + gnp.sum(gnp.stop_gradient(x ** 3))
    with pytest.raises(gradc.GradCheckError) as e:
        gradc.check_grad(f, (x,))
    report = e.value.report
    assert not report.ok and report.failures == 4 and isinstance(e.value, AssertionError)
    grad, fd = 2 * x, 2 * x + 3 * x ** 2                 # gradc's (wrong) and the true gradient
    rel = np.abs(grad - fd) / np.maximum(np.abs(grad), np.abs(fd))
    k = int(np.argmax(rel))
    assert report.where == f"x[{k}]"
    np.testing.assert_allclose(report.worst_relative_error, rel[k], rtol=1e-6)
    np.testing.assert_allclose([report.gradient, report.finite_difference], [grad[k], fd[k]], rtol=1e-6)
    assert "MISMATCH in 4 of 4 elements" in str(e.value)


def test_tolerance_decides_a_small_error():
    """A gradient wrong by 1e-4·cos(x): caught at the default rtol 1e-5, accepted at 1e-2."""
    x = rng.uniform(0.5, 1.0, 6)

    def f(x):
        return gnp.sum(x ** 2) + 1e-4 * gnp.sum(gnp.stop_gradient(gnp.sin(x)))
    with pytest.raises(gradc.GradCheckError):
        gradc.check_grad(f, (x,))
    r = gradc.check_grad(f, (x,), rtol=1e-2)
    assert r.ok
    r = gradc.check_grad(f, (x,), raises=False)
    assert not r.ok and r.failures == 6


def test_large_arguments_are_checked_along_random_directions():
    W = rng.standard_normal((60, 50)) * 0.1
    X = rng.standard_normal((8, 60))
    good = lambda W: gnp.sum(gnp.tanh(X @ W) ** 2)                          # noqa: E731
    r = gradc.check_grad(good, (W,))
    assert r.ok and r.mode == "directions" and r.checked == 8

    def bad(W):                       # one element's gradient is wrong
        return good(W) + gnp.sum(gnp.stop_gradient(W[3, 4] ** 2)) * 50
    with pytest.raises(gradc.GradCheckError, match="directions"):
        gradc.check_grad(bad, (W,))


def test_bad_use():
    with pytest.raises(gradc.ArgumentError, match="argnums 2 is out of range"):
        gradc.check_grad(lambda x: gnp.sum(x), (np.ones(2),), argnums=2)
    with pytest.raises(gradc.ArgumentError, match="must return a scalar"):
        gradc.check_grad(lambda x: x * 2, (np.ones(2),))
    with pytest.raises(gradc.ArgumentError, match="args must be a tuple"):
        gradc.check_grad(lambda x: gnp.sum(x), np.ones(2))
