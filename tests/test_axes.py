"""Axis functions and indexing on arrays of rank 3 and 4, on every backend.

Oracles: numpy's own functions for values, central finite differences of numpy's
functions for gradients (of sum(sin(f(x)))), tolerances as in tests/gradc_helpers.py."""
import numpy as onp
import pytest

import gradc
import gradc.numpy as np
from gradc.errors import ShapeError

from gradc_helpers import FD_ATOL, FD_RTOL, fd_grad

BACKENDS = ["numpy", "llvm", "c"]
IDX = onp.array([2, 0, 1, 1])
IDX2 = onp.array([[0, 1], [2, 2]])
ALONG = onp.random.default_rng(1).integers(0, 4, (2, 3, 2))

# (id, function of x written with a numpy-like module m)
TABLE = [
    ("transpose_axes", lambda m, x: m.transpose(x, (2, 0, 1))),
    ("method_transpose", lambda m, x: x.transpose(1, 0, 2)),
    ("swapaxes", lambda m, x: m.swapaxes(x, 0, -1)),
    ("moveaxis", lambda m, x: m.moveaxis(x, 0, -1)),
    ("moveaxis_several", lambda m, x: m.moveaxis(x, [0, 1], [-1, 0])),
    ("expand_dims", lambda m, x: m.expand_dims(x, 2)),
    ("squeeze", lambda m, x: m.squeeze(m.expand_dims(x, 0), 0)),
    ("reshape_minus_one", lambda m, x: x.reshape(2, -1)),
    ("broadcast_to", lambda m, x: m.broadcast_to(x[:, :1], (2, 3, 4))),
    ("flip_axis", lambda m, x: m.flip(x, axis=1)),
    ("flip_all", lambda m, x: m.flip(x)),
    ("roll_axis", lambda m, x: m.roll(x, 3, axis=2)),
    ("roll_several", lambda m, x: m.roll(x, (1, -2), axis=(0, 2))),
    ("roll_flat", lambda m, x: m.roll(x, 5)),
    ("stack_axis_2", lambda m, x: m.stack([x, x * 2], axis=2)),
    ("concatenate_axis_2", lambda m, x: m.concatenate([x, x * 2], axis=2)),
    ("split_sections", lambda m, x: m.split(x, 2, axis=2)[1]),
    ("split_indices", lambda m, x: m.split(x, [1, 3], axis=2)[1]),
    ("array_split", lambda m, x: m.array_split(x, 3, axis=1)[2]),
    ("sum_axes_keepdims", lambda m, x: m.sum(x, axis=(0, 2), keepdims=True)),
    ("max_axes", lambda m, x: m.max(x, axis=(0, 2))),
    ("mean_negative_axes", lambda m, x: m.mean(x, axis=(-1, -2))),
    ("slice_negative_step", lambda m, x: x[:, ::-1, 1:4:2]),
    ("none_and_ellipsis", lambda m, x: x[..., None, 1]),
    ("int_array_middle_axis", lambda m, x: x[:, IDX]),
    ("int_array_last_axis", lambda m, x: x[..., IDX[:2]]),
    ("int_arrays_apart", lambda m, x: x[1, :, IDX2]),
    ("int_arrays_with_slice", lambda m, x: x[IDX[2:] - 1, 1:3, IDX[:2] + 1]),
    ("take_axis", lambda m, x: m.take(x, IDX, axis=2)),
    ("take_flat", lambda m, x: m.take(x, onp.array([7, 0, 23]))),
    ("take_along_axis", lambda m, x: m.take_along_axis(x, ALONG, axis=2)),
]


SUMS = {"sum_axes_keepdims", "mean_negative_axes"}


def _same(name, got, want):
    """Data movement is exact; a sum of a few terms may round differently (lanes, order)."""
    if name in SUMS:
        onp.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)
    else:
        onp.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", TABLE, ids=[c[0] for c in TABLE])
def test_axis_ops_against_numpy_and_finite_differences(case, backend):
    _, f = case
    x = onp.random.default_rng(3).normal(size=(2, 3, 4))
    got = gradc.jit(lambda x: f(np, x), backend=backend)(x)
    _same(case[0], got, f(onp, x))
    g = gradc.grad(lambda x: np.sum(np.sin(f(np, x))), backend=backend)(x)
    onp.testing.assert_allclose(g, fd_grad(lambda x: onp.sum(onp.sin(f(onp, x))), [x], 0),
                                rtol=FD_RTOL, atol=FD_ATOL)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rank_4_values(backend):
    x = onp.random.default_rng(4).normal(size=(2, 3, 4, 5))
    generic = {"swapaxes", "moveaxis", "moveaxis_several", "expand_dims", "squeeze", "flip_axis", "flip_all",
               "roll_axis", "roll_several", "roll_flat", "stack_axis_2", "concatenate_axis_2", "split_indices",
               "array_split", "sum_axes_keepdims", "max_axes", "mean_negative_axes", "slice_negative_step",
               "none_and_ellipsis", "int_array_middle_axis", "int_array_last_axis"}
    for name, f in TABLE:
        if name not in generic:
            continue                    # written for rank 3 (permutations, index arrays)
        _same(name, gradc.jit(lambda x: f(np, x), backend=backend)(x), f(onp, x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_hot_rows_of_a_constant_by_traced_labels(backend):
    """np.eye(K)[y] with y an argument: one-hot rows (it failed with a message about
    Python control flow)."""
    y, W = onp.array([1, 3, 0, 3]), onp.random.default_rng(5).normal(size=(4, 4))
    f = lambda W, y: np.sum(np.eye(4)[y] * W ** 2)            # noqa: E731
    onp.testing.assert_allclose(gradc.grad(f, backend=backend)(W, y), 2 * W * onp.eye(4)[y], rtol=1e-15)


def test_axis_errors_are_clear():
    x = onp.ones((2, 3, 4))
    with pytest.raises(ShapeError, match="axis 3 is out of bounds for an array of rank 3"):
        gradc.jit(lambda x: np.flip(x, axis=3))(x)
    with pytest.raises(ShapeError, match="3 sections do not divide an axis of 4"):
        gradc.jit(lambda x: np.split(x, 3, axis=2)[0])(x)
    with pytest.raises(IndexError):
        gradc.jit(lambda x: x[:, onp.array([0, 3])])(x)


def _np_take_fill(x, i, axis, fill):
    """numpy oracle of JAX's take(mode="fill") along ``axis``: indices in [-n, n) read
    (negative ones from the end), the others give ``fill``."""
    n = x.shape[axis]
    ok = (i >= -n) & (i < n)
    got = onp.take(x, onp.where(ok, i, 0), axis)
    ok = ok.reshape((1,) * axis + ok.shape + (1,) * (x.ndim - axis - 1))
    return onp.where(ok, got, fill)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [onp.float64, onp.float32])
def test_take_and_take_along_axis_out_of_bounds_modes(backend, dtype):
    """JAX's modes: take(mode="fill", fill_value=) and take_along_axis(mode="clip"/"fill"/
    "wrap") on rank 3 with traced indices, values against numpy and gradients against
    finite differences; a filled place gets no gradient."""
    rng = onp.random.default_rng(5)
    x = rng.standard_normal((3, 5, 4)).astype(dtype)
    i = onp.array([[0, 6], [-5, -6], [4, -1]])
    tol = 1e-6 if dtype == onp.float32 else 1e-14
    f = gradc.jit(lambda x, i: np.take(x, i, axis=1, mode="fill", fill_value=0.5), backend=backend)
    got = f(x, i)
    assert got.dtype == dtype
    onp.testing.assert_allclose(got, _np_take_fill(x, i, 1, 0.5), rtol=tol)
    nan_fill = gradc.jit(lambda x, i: np.take(x, i, axis=2, mode="fill"), backend=backend)(x, i)
    onp.testing.assert_array_equal(onp.isnan(nan_fill), onp.broadcast_to(((i < -4) | (i >= 4)), nan_fill.shape))
    j = rng.integers(-7, 7, (3, 5, 4))
    n, ok = 5, (j >= -5) & (j < 5)
    oracle = {"clip": lambda x: onp.take_along_axis(x, onp.clip(onp.where(j < 0, j + n, j), 0, n - 1), 1),
              "wrap": lambda x: onp.take_along_axis(x, onp.mod(j, n), 1),
              "fill": lambda x: onp.where(ok, onp.take_along_axis(x, onp.where(ok, j, 0), 1), -2.0)}
    for mode, want in oracle.items():
        g = gradc.jit(lambda x, j: np.take_along_axis(x, j, axis=1, mode=mode, fill_value=-2.0), backend=backend)
        onp.testing.assert_allclose(g(x, j), want(x), rtol=tol)
        loss = lambda x, j: np.sum(np.sin(np.take_along_axis(x, j, axis=1, mode=mode, fill_value=-2.0)))  # noqa: E731
        x64 = x.astype(onp.float64)
        got = gradc.grad(loss, backend=backend)(x64, j)
        onp.testing.assert_allclose(got, fd_grad(lambda x: onp.sum(onp.sin(want(x))), [x64], 0),
                                    rtol=FD_RTOL, atol=FD_ATOL)
    with pytest.raises(gradc.ArgumentError, match="mode must be"):
        gradc.jit(lambda x: np.take(x, onp.array([0]), mode="bogus"))(x)
