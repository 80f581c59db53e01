"""numpy.pad's statistic modes (mean, maximum, minimum, median with ``stat_length``) and
``linear_ramp`` (``end_values``), gradc/ops/padding.py: each table line against numpy's
np.pad (values, dtype, shape; float64 and float32, integers exactly) and central finite
differences of np.pad (gradients), on every backend, rank 1 to 3.  Points are drawn
without ties, so maximum, minimum and median are differentiable there."""
from __future__ import annotations

import numpy as onp
import pytest

import gradc
import gradc.numpy as np

from gradc_helpers import FD_ATOL, FD_RTOL, fd_grad

R3 = (3, 5, 4)
W3 = ((1, 2), (2, 1), (1, 3))

# (id, shape, pad_width, mode, keywords)
TABLE = [
    ("mean_r1", (9,), (2, 3), "mean", {}),
    ("mean_r3", R3, ((1, 2), (2, 0), (0, 3)), "mean", {}),
    ("mean_stat_length", R3, W3, "mean", {"stat_length": 2}),
    ("maximum_r2", (6, 7), ((2, 1), (0, 2)), "maximum", {}),
    ("maximum_stat_length_r3", R3, W3, "maximum", {"stat_length": 2}),
    ("minimum_per_axis_lengths", R3, W3, "minimum", {"stat_length": ((1, 2), (3, 9), (2, 1))}),
    ("minimum_r1", (33,), (4, 4), "minimum", {"stat_length": 5}),
    ("median_r3", R3, ((2, 2), (2, 1), (1, 3)), "median", {}),
    ("median_stat_length_pair", R3, W3, "median", {"stat_length": (2, 3)}),
    ("median_r2_even", (4, 6), 2, "median", {}),
    ("linear_ramp_r1", (9,), (3, 5), "linear_ramp", {}),
    ("linear_ramp_r3", R3, ((1, 2), (3, 1), (1, 4)), "linear_ramp", {}),
    ("linear_ramp_end_values", R3, ((1, 2), (3, 1), (1, 4)), "linear_ramp",
     {"end_values": ((1, -2), (0.5, 3), (2, 0))}),
    ("linear_ramp_end_scalar_r2", (5, 33), (2, 17), "linear_ramp", {"end_values": 5}),
]


@pytest.mark.parametrize("dtype", [onp.float64, onp.float32])
@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
@pytest.mark.parametrize("name,shape,width,mode,kw", TABLE, ids=[t[0] for t in TABLE])
def test_against_numpy_and_finite_differences(name, shape, width, mode, kw, backend, dtype):
    x = onp.random.default_rng(len(name)).uniform(-1, 1, shape).astype(dtype)
    f = lambda x: np.pad(x, width, mode=mode, **kw)          # noqa: E731
    ref = lambda x: onp.pad(x, width, mode=mode, **kw)       # noqa: E731
    got, want = gradc.jit(f, backend=backend)(x), ref(x)
    assert got.dtype == want.dtype and got.shape == want.shape
    tol = 1e-12 if dtype == onp.float64 else 2e-6
    onp.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    if dtype == onp.float32:
        return
    w = onp.random.default_rng(1).standard_normal(want.shape)
    g = gradc.grad(lambda x: np.sum(f(x) * w), backend=backend)(x)
    onp.testing.assert_allclose(g, fd_grad(lambda x: onp.sum(ref(x) * w), [x], 0), rtol=FD_RTOL, atol=FD_ATOL)


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
@pytest.mark.parametrize("mode,kw", [("mean", {}), ("median", {"stat_length": 2}), ("maximum", {}),
                                     ("linear_ramp", {"end_values": (-3, 7)})])
def test_integers_round_as_numpy(mode, kw, backend):
    """numpy writes an integer array's mean and median rounded half to even, and its ramps
    floored (numpy 2's linspace to an integer dtype)."""
    x = onp.random.default_rng(2).integers(-50, 50, R3)
    got = gradc.jit(lambda x: np.pad(x * 1, W3, mode=mode, **kw), backend=backend)(x)
    want = onp.pad(x, W3, mode=mode, **kw)
    assert got.dtype == want.dtype
    onp.testing.assert_array_equal(got, want)


def test_maximum_ties_share_the_gradient_as_max():
    x = onp.array([1.0, 3.0, 3.0, 2.0])
    g = gradc.grad(lambda x: np.sum(np.pad(x, (2, 0), mode="maximum")))(x)
    onp.testing.assert_array_equal(g, [1.0, 2.0, 2.0, 1.0])     # the pad's 2 cotangents split 1/2 each


def test_bad_keywords_and_lengths_are_errors_as_numpy():
    x = onp.ones((3, 4))
    with pytest.raises(gradc.UnsupportedError, match="takes stat_length"):
        gradc.jit(lambda x: np.pad(x, 1, mode="mean", end_values=2))(x)
    with pytest.raises(ValueError, match="stat_length of 0"):
        gradc.jit(lambda x: np.pad(x, 1, mode="maximum", stat_length=0))(x)
    with pytest.raises(ValueError, match="negative"):
        gradc.jit(lambda x: np.pad(x, 1, mode="mean", stat_length=-1))(x)
    with pytest.raises(ValueError, match="does not fit"):
        gradc.jit(lambda x: np.pad(x, 1, mode="linear_ramp", end_values=[1, 2, 3]))(x)
    with pytest.raises(gradc.UnsupportedError, match="'empty' is not supported"):
        gradc.jit(lambda x: np.pad(x, 1, mode="empty"))(x)
    onp.testing.assert_array_equal(np.pad(x, 1, mode="mean"), onp.pad(x, 1, mode="mean"))   # numpy's outside a trace
