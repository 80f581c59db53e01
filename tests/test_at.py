"""Functional updates ``x.at[idx].set/add/multiply/min/max/get`` (issue 16), and the
error for in-place assignment on a traced value.

Oracles: numpy's assignment and ``np.add.at``/``np.multiply.at``/``np.minimum.at``/
``np.maximum.at`` (which accumulate over repeated indices; assignment keeps the last
value) for values; central finite differences of that numpy reference for gradients
(``gradc_helpers``: FD_RTOL = FD_ATOL = 1e-6, justified there).  Random values are
continuous draws, so min/max never tie (a tie's derivative is a convention).
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
from gradc_helpers import FD_ATOL, FD_RTOL, fd_grad

pytestmark = pytest.mark.usefixtures("core_backend")

rng = np.random.default_rng(7)
UFUNC = {"add": np.add, "multiply": np.multiply, "min": np.minimum, "max": np.maximum}


def np_update(x, key, v, mode):
    y = np.array(x, copy=True)
    if mode == "set":
        y[key] = v
    else:
        UFUNC[mode].at(y, key, v)
    return y


I = np.array
KEYS_2D = {        # x is 5 x 4
    "int": (2,),
    "negative_int": (-1,),
    "int_int": (1, 3),
    "slice": (slice(1, 4),),
    "step_slice": (slice(None), slice(0, None, 2)),
    "ellipsis": (Ellipsis, 1),
    "rows": (I([4, 0, 2]),),
    "rows_repeated": (I([1, 3, 1, 1]),),
    "pairs": (I([0, 4, 2]), I([3, 0, 1])),
    "pairs_repeated": (I([0, 2, 0, 0]), I([1, 3, 1, 1])),
    "int_and_array": (3, I([0, 2])),
}
KEYS_1D = {        # x has 7 entries
    "vector": (I([6, 0, 3]),),
    "vector_repeated_negative": (I([2, -5, 4, 2]),),
    "slice_negative_step": (slice(5, 0, -2),),
}
KEYS_3D = {        # x is 3 x 4 x 5
    "3d_int_slice": (1, slice(None, None, -2)),
    "3d_middle_array": (slice(None), I([3, 0, 3]), 2),
    "3d_apart_arrays": (I([0, 2]), slice(None), I([4, 4])),
    "3d_partial_slice_and_array": (slice(1, 3), I([1, 1, 2]), slice(0, 4, 2)),
}
MODES = ["set", "add", "multiply", "min", "max"]


def _case(name):
    key = KEYS_2D.get(name) or KEYS_1D.get(name) or KEYS_3D[name]
    shape = (5, 4) if name in KEYS_2D else (7,) if name in KEYS_1D else (3, 4, 5)
    x = rng.standard_normal(shape)
    v = rng.standard_normal(np.empty(shape)[key].shape) + 0.5
    return x, key, v


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(KEYS_2D) + list(KEYS_1D) + list(KEYS_3D))
def test_update_values_and_gradients_match_numpy(name, mode):
    x, key, v = _case(name)
    key1 = key[0] if len(key) == 1 else key

    def f(x, v):
        return getattr(x.at[key1], mode)(v)
    # One rounding per element, as numpy's, except where repeated indices add up: gradc
    # sums the repeated updates first (scatter_add), np.add.at adds them one by one, so
    # the two associate differently: a few roundings of terms of size <= ~10 (standard
    # normal draws), at most ~4 eps * 10 ~ 1e-14 (float64) or 5e-6 (float32) absolute.
    np.testing.assert_allclose(gradc.jit(f)(x, v), np_update(x, key, v, mode), rtol=1e-15, atol=1e-14)
    for dt, tol in ((np.float32, 1e-6),):
        got = gradc.jit(f)(x.astype(dt), v.astype(dt))
        assert got.dtype == dt
        np.testing.assert_allclose(got, np_update(x.astype(dt), key, v.astype(dt), mode), rtol=tol, atol=5e-6)
    # gradients of a scalar that weighs every element differently
    w = rng.standard_normal(x.shape)
    loss = lambda x, v: gnp.sum(w * gnp.sin(f(x, v)))                   # noqa: E731
    np_loss = lambda x, v: np.sum(w * np.sin(np_update(x, key, v, mode)))  # noqa: E731
    gx, gv = gradc.grad(loss, argnums=(0, 1))(x, v)
    np.testing.assert_allclose(gx, fd_grad(np_loss, [x, v], 0), rtol=FD_RTOL, atol=FD_ATOL)
    np.testing.assert_allclose(gv, fd_grad(np_loss, [x, v], 1), rtol=FD_RTOL, atol=FD_ATOL)


@pytest.mark.parametrize("mode", MODES)
def test_scalar_and_broadcast_updates(mode):
    x = rng.standard_normal((5, 4))
    row = rng.standard_normal(4)
    np.testing.assert_allclose(gradc.jit(lambda x: getattr(x.at[1:3], mode)(row))(x),
                               np_update(x, (slice(1, 3),), row, mode), rtol=1e-15)
    np.testing.assert_allclose(gradc.jit(lambda x: getattr(x.at[:, 2], mode)(0.25))(x),
                               np_update(x, (slice(None), 2), 0.25, mode), rtol=1e-15)
    np.testing.assert_allclose(gradc.jit(lambda x: getattr(x.at[...], mode)(0.25))(x),
                               np_update(x, (Ellipsis,), 0.25, mode), rtol=1e-15)


@pytest.mark.parametrize("mode", MODES)
def test_traced_index_arrays(mode):
    """Indices that are arguments (traced): distinct ones behave as numpy; repeats
    accumulate for add and take the mean of their values for set (documented);
    multiply, min and max need unique_indices=True (a repeat would have to combine
    exactly, which gradc cannot arrange for unseen indices) and refuse without it."""
    x, v = rng.standard_normal(9), rng.standard_normal(3) + 0.5
    hint = {} if mode in ("set", "add") else {"unique_indices": True}
    f = gradc.jit(lambda x, idx, v: getattr(x.at[idx], mode)(v, **hint))
    idx = I([7, 1, 4])
    np.testing.assert_allclose(f(x, idx, v), np_update(x, (idx,), v, mode), rtol=1e-15)
    rep = I([5, 2, 5])
    if mode in ("set", "add"):  # repeats add up in another order than np.add.at's (see above)
        want = np_update(x, (rep,), v, mode) if mode == "add" else \
            np_update(x, (I([5, 2]),), I([(v[0] + v[2]) / 2, v[1]]), mode)
        np.testing.assert_allclose(f(x, rep, v), want, rtol=1e-15, atol=1e-14)
    else:
        with pytest.raises(gradc.UnsupportedError, match=rf"at\[...\]\.{mode} with traced index arrays.*segment_"):
            gradc.jit(lambda x, idx, v: getattr(x.at[idx], mode)(v))(x, rep, v)
    g = gradc.grad(lambda x, idx, v: gnp.sum(gnp.sin(getattr(x.at[idx], mode)(v, **hint))), argnums=(0, 2))(x, idx, v)
    np_loss = lambda x, v: np.sum(np.sin(np_update(x, (idx,), v, mode)))  # noqa: E731
    np.testing.assert_allclose(g[0], fd_grad(np_loss, [x, v], 0), rtol=FD_RTOL, atol=FD_ATOL)
    np.testing.assert_allclose(g[1], fd_grad(np_loss, [x, v], 1), rtol=FD_RTOL, atol=FD_ATOL)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_updates(dtype):
    """400k elements: the nests split over threads and vectorize."""
    n = 400_000
    x = rng.standard_normal(n).astype(dtype)
    v = rng.standard_normal(300_000 - 1000).astype(dtype)
    idx = rng.permutation(n)[:5000]
    u = rng.standard_normal(5000).astype(dtype)

    def f(x, v, u):
        return x.at[1000:300_000].multiply(v).at[idx].add(u)
    want = x.copy()
    want[1000:300_000] *= v
    np.add.at(want, idx, u)
    np.testing.assert_allclose(gradc.jit(f)(x, v, u), want, rtol=1e-6 if dtype == np.float32 else 1e-15)
    gx, gv, gu = gradc.grad(lambda x, v, u: gnp.sum(f(x, v, u) ** 2), argnums=(0, 1, 2))(x, v, u)
    y = want.astype(np.float64)
    d = 2 * y                                      # d sum(y²) / dy
    scale = np.ones(n)
    scale[1000:300_000] = v
    tol = 1e-5 if dtype == np.float32 else 1e-12   # one product and one rounding per element
    np.testing.assert_allclose(gx, d * scale, rtol=tol)
    np.testing.assert_allclose(gv, d[1000:300_000] * x[1000:300_000], rtol=tol)
    np.testing.assert_allclose(gu, d[idx], rtol=tol)


def test_get_and_every_transformation():
    x = rng.standard_normal(4)
    np.testing.assert_array_equal(gradc.jit(lambda x: x.at[1:3].get())(x), x[1:3])
    np.testing.assert_array_equal(gradc.jit(lambda x: x.at[I([3, 0])].get())(x), x[[3, 0]])

    def f(x):
        return x.at[1].set(x[0] ** 2).at[2:].multiply(x[:2])

    def np_f(x):
        y = x.copy()
        y[1] = x[0] ** 2
        y[2:] *= y[:2] * 0 + x[:2]
        return y
    J = gradc.jacobian(f)(x)
    for k in range(4):
        np.testing.assert_allclose(J[k], fd_grad(lambda x, k=k: np_f(x)[k], [x], 0), rtol=FD_RTOL, atol=FD_ATOL)
    t = rng.standard_normal(4)
    _, tan = gradc.jvp(f, (x,), (t,))
    np.testing.assert_allclose(tan, J @ t, rtol=1e-12)
    _, vjp_fn = gradc.vjp(f, x)
    np.testing.assert_allclose(vjp_fn(t)[0], t @ J, rtol=1e-12)


def test_inplace_assignment_names_the_line_and_suggests_at():
    def f(y):
        y[0] = 1.0
        return y
    line = f.__code__.co_firstlineno + 1
    with pytest.raises(gradc.UnsupportedError, match=re.escape(f"at test_at.py:{line}") + r".*\.at\[index\]\.set"):
        gradc.jit(f)(np.ones(3))

    def g(y):
        y[1:] += 2.0
        return y
    with pytest.raises(gradc.UnsupportedError, match=r"immutable.*\.at\[index\]\.add"):
        gradc.grad(lambda y: gnp.sum(g(y)))(np.ones(3))


def test_augmented_assignment_rebinds_as_numpy_does_unaliased():
    """``y += x`` on a traced y rebinds y to y + x (no __iadd__): numpy's result
    whenever no other name refers to the same array, which is how models use it."""
    def f(x, b):
        z = x * 2.0
        z += b
        z *= 3.0
        return z
    x, b = rng.standard_normal(5), rng.standard_normal(5)
    np.testing.assert_allclose(gradc.jit(f)(x, b), f(x.copy(), b), rtol=1e-15)


# ----------------------------------------------------------------------------- JAX's out-of-bounds modes
def _np_drop(x, idx, v, how):
    """numpy oracle of JAX's mode="drop" on axis 0: the in-range indices (negative ones
    from the end) updated as numpy does, the others ignored."""
    keep = (idx >= -len(x)) & (idx < len(x))
    return np_update(x, idx[keep], v[keep], how)


@pytest.mark.parametrize("how", MODES)
@pytest.mark.parametrize("traced", [False, True])
def test_update_mode_drop_ignores_out_of_bounds_indices(how, traced):
    """x.at[i].<how>(v, mode="drop"): indices outside [-n, n) change nothing and their
    values get no gradient; the others update as without a mode (repeats included)."""
    if traced:   # distinct in-range indices: traced repeats take the mean for set (see above)
        idx = np.array([1, 9, -2, -9, 3])       # and multiply/min/max need unique_indices
        kw = {"unique_indices": True} if how in ("multiply", "min", "max") else {}
    else:
        idx, kw = np.array([1, 9, 1, -2, -9, 4]), {}
    x, v = rng.uniform(0.5, 2.0, (6, 3)), rng.uniform(0.5, 2.0, (len(idx), 3))
    w = rng.standard_normal((6, 3))

    def f(x, v, i):
        return gnp.sum(w * gnp.sin(getattr(x.at[i], how)(v, mode="drop", **kw)))
    np_f = lambda x, v: np.sum(w * np.sin(_np_drop(x, idx, v, how)))  # noqa: E731
    args = (x, v, idx) if traced else (x, v)
    g = gradc.value_and_grad(f if traced else (lambda x, v: f(x, v, idx)), argnums=(0, 1))
    val, (gx, gv) = g(*args)
    np.testing.assert_allclose(val, np_f(x, v), rtol=1e-13)
    np.testing.assert_allclose(gx, fd_grad(np_f, [x, v], 0), rtol=FD_RTOL, atol=FD_ATOL)
    np.testing.assert_allclose(gv, fd_grad(np_f, [x, v], 1), rtol=FD_RTOL, atol=FD_ATOL)
    assert np.all(gv[[1, 4] if len(idx) == 6 else [1, 3]] == 0)     # the dropped values


def test_update_mode_clip_and_get_modes_on_an_axis():
    """mode="clip" clamps (negative indices from the end first, as x[i] reads them);
    get(mode="fill") gives fill_value outside [-n, n) (NaN for floats by default) with a
    zero gradient there, on axis 1 with a traced index array."""
    x = rng.standard_normal((4, 5))
    idx = np.array([0, 7, -1, -9, 3])
    clipped = np.clip(np.where(idx < 0, idx + 5, idx), 0, 4)
    v = rng.standard_normal((4, 5))
    # constant indices: the last value of a repeated index wins, as in numpy
    got = gradc.jit(lambda x, v: x.at[:, idx].set(v, mode="clip"))(x, v)
    want = x.copy()
    want[:, clipped] = v
    np.testing.assert_allclose(got, want, rtol=1e-15)
    np.testing.assert_allclose(gradc.jit(lambda x, i: x.at[:, i].get(mode="clip"))(x, idx), x[:, clipped],
                               rtol=1e-15)
    ok = (idx >= -5) & (idx < 5)
    f = gradc.jit(lambda x, i: x.at[:, i].get(mode="fill"))(x, idx)
    np.testing.assert_allclose(f[:, ok], x[:, idx[ok]], rtol=1e-15)
    assert np.isnan(f[:, ~ok]).all()
    loss = lambda x, i: gnp.sum(x.at[:, i].get(mode="fill", fill_value=2.0) ** 3)   # noqa: E731
    val, gx = gradc.value_and_grad(loss)(x, idx)
    fill = np.where(ok, x[:, np.where(ok, idx, 0)], 2.0)
    np.testing.assert_allclose(val, np.sum(fill ** 3), rtol=1e-13)
    want = np.zeros_like(x)
    np.add.at(want.T, idx[ok], (3 * x[:, idx[ok]] ** 2).T)
    np.testing.assert_allclose(gx, want, rtol=1e-13)


def test_unsupported_mode_names_what_works():
    x = np.ones((3, 4))
    with pytest.raises(gradc.UnsupportedError, match=r"mode='drop'.*integer index arrays beside full slices"):
        gradc.jit(lambda x: x.at[1:, np.array([0, 5])].set(0.0, mode="drop"))(x)
    with pytest.raises(gradc.UnsupportedError, match=r"mode='fill'"):
        gradc.jit(lambda x: x.at[np.array([0, 5])].add(1.0, mode="fill"))(x)


@pytest.mark.parametrize("traced", [False, True])
@pytest.mark.parametrize("backend", ["llvm", "c"])
def test_modes_with_several_index_arrays(traced, backend):
    """x.at[i, :, j] and x.at[i, j] (an element out of bounds on any of its axes):
    get(mode="fill") fills it, get(mode="clip") clamps each index, set/add(mode="drop")
    leave it out; the gradients are finite differences of the numpy oracle."""
    x = rng.standard_normal((4, 5, 6))
    i, j = np.array([0, 3, 5, -6, 2, -1]), np.array([1, 7, 2, 0, -1, 3])
    v = rng.standard_normal((6, 5))
    ok = (i >= -4) & (i < 4) & (j >= -6) & (j < 6)
    iw, jw = np.where(i < 0, i + 4, i), np.where(j < 0, j + 6, j)
    w, w3 = rng.standard_normal((6, 5)), rng.standard_normal((4, 5, 6))

    def run(f, *args):
        g = f if traced else (lambda *a: f(*a, i, j))
        return gradc.value_and_grad(g, argnums=tuple(range(len(args))), backend=backend)(*(args + ((i, j) if traced else ())))

    def np_fill(x):
        return np.where(ok[:, None], x[np.where(ok, iw, 0), :, np.where(ok, jw, 0)], 7.0)
    val, (gx,) = run(lambda x, i, j: gnp.sum(w * gnp.sin(x.at[i, :, j].get(mode="fill", fill_value=7.0))), x)
    np_f = lambda x: np.sum(w * np.sin(np_fill(x)))  # noqa: E731
    np.testing.assert_allclose(val, np_f(x), rtol=1e-13)
    np.testing.assert_allclose(gx, fd_grad(np_f, [x], 0), rtol=FD_RTOL, atol=FD_ATOL)
    clip = gradc.jit(lambda x, i, j: x.at[i, j].get(mode="clip"), backend=backend)(x, i, j)
    np.testing.assert_array_equal(clip, x[np.clip(iw, 0, 3), np.clip(jw, 0, 4)])

    def np_drop(x, v, how):
        out = x.copy()
        for r in np.flatnonzero(ok):
            out[iw[r], :, jw[r]] = v[r] if how == "set" else out[iw[r], :, jw[r]] + v[r]
        return out
    for how in ("set", "add"):
        val, (gx, gv) = run(lambda x, v, i, j: gnp.sum(w3 * gnp.sin(getattr(x.at[i, :, j], how)(v, mode="drop"))),
                            x, v)
        np_f = lambda x, v: np.sum(w3 * np.sin(np_drop(x, v, how)))  # noqa: E731
        np.testing.assert_allclose(val, np_f(x, v), rtol=1e-13)
        np.testing.assert_allclose(gx, fd_grad(np_f, [x, v], 0), rtol=FD_RTOL, atol=FD_ATOL)
        np.testing.assert_allclose(gv, fd_grad(np_f, [x, v], 1), rtol=FD_RTOL, atol=FD_ATOL)
        assert np.all(gv[~ok] == 0)


@pytest.mark.parametrize("traced", [False, True])
def test_put_along_axis_out_of_bounds_modes(traced):
    """put_along_axis(..., inplace=False, mode=): "clip" clamps each index (negative
    ones from the end first), "drop" leaves the element out; it was ignored before."""
    x = np.arange(12.0).reshape(3, 4)
    idx = np.array([[0, 5], [2, -1], [7, 1]])
    v = np.full((3, 2), -1.0)
    for mode in ("clip", "drop"):
        if traced:
            got = gradc.jit(lambda x, i: gnp.put_along_axis(x, i, v, axis=1, inplace=False, mode=mode))(x, idx)
        else:
            got = gradc.jit(lambda x: gnp.put_along_axis(x, idx, v, axis=1, inplace=False, mode=mode))(x)
        want = x.copy()
        for r in range(3):
            for c in idx[r]:
                c = c + 4 if c < 0 else c
                if mode == "clip":
                    want[r, min(max(c, 0), 3)] = -1.0
                elif 0 <= c < 4:
                    want[r, c] = -1.0
        np.testing.assert_array_equal(got, want)
