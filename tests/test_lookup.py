"""gradc/ops/lookup.py at the sizes signals and tables have (the op table lines are in
tests/test_compose.py): interp and convolve over 10^5 points, split over threads,
against numpy; their gradients against closed forms; and the clear errors."""
from __future__ import annotations

import numpy as onp
import pytest

import gradc
import gradc.numpy as np


@pytest.mark.parametrize("threads", ["1", "2"])
def test_interp_and_convolve_over_a_long_signal(threads, monkeypatch):
    monkeypatch.setenv("GRADC_NUM_THREADS", threads)
    r = onp.random.default_rng(0)
    xp = onp.sort(r.uniform(-3, 3, 40))
    fp = r.standard_normal(40)
    x = r.uniform(-3.5, 3.5, 100_000)
    onp.testing.assert_allclose(gradc.jit(np.interp)(x, xp, fp), onp.interp(x, xp, fp), rtol=1e-13, atol=1e-13)
    # d/dx: the slope of the segment x is in, 0 outside [xp[0], xp[-1]]
    g = gradc.grad(lambda x: np.sum(np.interp(x, xp, fp)))(x)
    i = onp.clip(onp.searchsorted(xp, x, side="right") - 1, 0, 38)
    slope = (fp[i + 1] - fp[i]) / (xp[i + 1] - xp[i])
    onp.testing.assert_allclose(g, onp.where((x < xp[0]) | (x > xp[-1]), 0.0, slope), rtol=1e-12)
    a, v = r.standard_normal(200_000), r.standard_normal(31)
    for mode in ("full", "same", "valid"):
        onp.testing.assert_allclose(gradc.jit(lambda a, v: np.convolve(a, v, mode))(a, v), onp.convolve(a, v, mode),
                                    rtol=1e-12, atol=1e-12)
    # d/dv of sum(w * convolve(a, v)) is correlate(w, a) reversed: w's windows against a
    w = r.standard_normal(a.size + 30)
    gv = gradc.grad(lambda v: np.sum(np.convolve(a, v) * w))(v)
    onp.testing.assert_allclose(gv, onp.correlate(w, a, "valid"), rtol=1e-10)


def test_errors_name_what_is_wrong():
    with pytest.raises(gradc.ShapeError, match="searchsorted: the sorted array must be 1-D"):
        gradc.jit(lambda a, v: np.searchsorted(a, v))(onp.zeros((2, 3)), onp.zeros(4))
    with pytest.raises(gradc.UnsupportedError, match="inplace=False"):
        gradc.jit(lambda a: np.put_along_axis(a, onp.zeros((1, 1), int), 1.0, axis=0))(onp.zeros((2, 2)))
    with pytest.raises(gradc.ShapeError, match="convolve: both arrays must be 1-D"):
        gradc.jit(lambda a: np.convolve(a, a))(onp.zeros((2, 2)))
    with pytest.raises(gradc.UnsupportedError, match="period"):
        gradc.jit(lambda x: np.interp(x, onp.arange(3.0), onp.arange(3.0), period=2.0))(onp.zeros(3))
