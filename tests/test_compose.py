"""numpy's functions composed of others (gradc/ops/compose.py) and numpy's keyword forms
of the reductions: each table line against numpy's own function (values) and central
finite differences of numpy's function (gradients), on every backend.  Tolerances:
values 1e-12 relative (a few roundings of sums of O(1) terms); finite differences as
tests/gradc_helpers.py justifies.  Points are drawn without ties (sorting and max
are differentiable there)."""
from __future__ import annotations

import numpy as onp
import pytest

import gradc
import gradc.numpy as np

from gradc_helpers import FD_ATOL, FD_RTOL, fd_grad

M = onp.random.default_rng(9).uniform(-1, 1, (6, 5)) > 0
XP = onp.sort(onp.random.default_rng(8).uniform(-2.5, 2.5, 10))      # interp's points, increasing
IDX = onp.array([[0, 3], [4, 1], [2, 2 - 2]])                     # put_along_axis, distinct per row


def _put_along_axis(a, idx, v, axis):
    out = onp.array(a, copy=True)
    onp.put_along_axis(out, idx, v, axis)
    return out
# (id, gradc function, numpy function, shapes, differentiable?)
TABLE = [
    ("sum_where", lambda x: np.sum(x, axis=1, where=M), lambda x: onp.sum(x, axis=1, where=M), [(6, 5)], True),
    ("sum_dtype_initial", lambda x: np.sum(x, dtype=np.float32, initial=2.0),
     lambda x: onp.sum(x, dtype=onp.float32, initial=2.0), [(6, 5)], False),
    ("method_sum_where", lambda x: x.sum(axis=0, where=M, keepdims=True),
     lambda x: x.sum(axis=0, where=M, keepdims=True), [(6, 5)], True),
    ("mean_where", lambda x: np.mean(x, axis=1, where=M), lambda x: onp.mean(x, axis=1, where=M), [(6, 5)], True),
    ("max_initial_where", lambda x: np.max(x, axis=0, initial=-0.5, where=M),
     lambda x: onp.max(x, axis=0, initial=-0.5, where=M), [(6, 5)], True),
    ("min_initial", lambda x: x.min(axis=1, initial=0.1), lambda x: x.min(axis=1, initial=0.1), [(6, 5)], True),
    ("clip_min_max", lambda x: np.clip(x, min=-0.3, max=0.4), lambda x: onp.clip(x, -0.3, 0.4), [(6, 5)], True),
    ("logsumexp_b", lambda x: np.logsumexp(x, axis=1, b=onp.arange(1.0, 6.0)),
     lambda x: onp.log(onp.sum(onp.arange(1.0, 6.0) * onp.exp(x), axis=1)), [(6, 5)], True),
    ("nansum", lambda x: np.nansum(np.where(x > 0.8, np.nan, x), axis=0),
     lambda x: onp.nansum(onp.where(x > 0.8, onp.nan, x), axis=0), [(6, 5)], True),
    ("nanmean", lambda x: np.nanmean(np.where(x > 0.8, np.nan, x), axis=1),
     lambda x: onp.nanmean(onp.where(x > 0.8, onp.nan, x), axis=1), [(6, 5)], True),
    ("nanmax", lambda x: np.nanmax(np.where(x > 0.8, np.nan, x), axis=1),
     lambda x: onp.nanmax(onp.where(x > 0.8, onp.nan, x), axis=1), [(6, 5)], True),
    ("ptp", lambda x: np.ptp(x, axis=1), lambda x: onp.ptp(x, axis=1), [(6, 5)], True),
    ("count_nonzero", lambda x: np.count_nonzero(x > 0, axis=0), lambda x: onp.count_nonzero(x > 0, axis=0),
     [(6, 5)], False),
    ("median_odd", lambda x: np.median(x, axis=1), lambda x: onp.median(x, axis=1), [(6, 5)], True),
    ("median_even_all", lambda x: np.median(x), lambda x: onp.median(x), [(6, 4)], True),
    ("quantile", lambda x: np.quantile(x, [0.1, 0.75], axis=0), lambda x: onp.quantile(x, [0.1, 0.75], axis=0),
     [(6, 5)], True),
    ("percentile_keepdims", lambda x: np.percentile(x, 30, axis=1, keepdims=True),
     lambda x: onp.percentile(x, 30, axis=1, keepdims=True), [(6, 5)], True),
    ("cov", np.cov, onp.cov, [(3, 7)], True),
    ("cov_cols_ddof0", lambda x: np.cov(x, rowvar=False, bias=True), lambda x: onp.cov(x, rowvar=False, bias=True),
     [(7, 3)], True),
    ("cov_weights", lambda x, w: np.cov(x, fweights=onp.arange(1, 8), aweights=w * w + 0.5, ddof=2),
     lambda x, w: onp.cov(x, fweights=onp.arange(1, 8), aweights=w * w + 0.5, ddof=2), [(3, 7), (7,)], True),
    ("cov_aweights_bias", lambda x, w: np.cov(x, aweights=w * w + 0.5, bias=True),
     lambda x, w: onp.cov(x, aweights=w * w + 0.5, bias=True), [(3, 7), (7,)], True),
    ("cov_float32_is_float64", lambda x: np.cov(x.astype(onp.float32)),
     lambda x: onp.cov(x.astype(onp.float32)), [(3, 7)], False),
    ("corrcoef", np.corrcoef, onp.corrcoef, [(3, 7)], True),
    ("kron", np.kron, onp.kron, [(2, 3), (3, 2)], True),
    ("cross", np.cross, onp.cross, [(4, 3), (4, 3)], True),
    ("vecdot", np.vecdot, lambda a, b: onp.sum(a * b, axis=-1), [(4, 5), (4, 5)], True),
    ("matvec", np.matvec, lambda a, b: onp.einsum("bij,bj->bi", a, b), [(2, 3, 4), (2, 4)], True),
    ("vecmat", np.vecmat, lambda a, b: onp.einsum("bi,bij->bj", a, b), [(2, 3), (2, 3, 4)], True),
    ("multi_dot", lambda a, b, c: np.linalg.multi_dot([a, b, c]), lambda a, b, c: onp.linalg.multi_dot([a, b, c]),
     [(5, 2), (2, 6), (6, 3)], True),
    ("matrix_power", lambda a: np.linalg.matrix_power(a, 5), lambda a: onp.linalg.matrix_power(a, 5), [(3, 3)], True),
    ("matrix_power_0", lambda a: np.linalg.matrix_power(a, 0) * a, lambda a: onp.linalg.matrix_power(a, 0) * a,
     [(3, 3)], True),
    ("vector_norm", lambda a: np.linalg.vector_norm(a), lambda a: onp.linalg.vector_norm(a), [(3, 4)], True),
    ("matrix_norm", lambda a: np.linalg.matrix_norm(a), lambda a: onp.linalg.matrix_norm(a), [(2, 3, 4)], True),
    ("matrix_transpose", np.matrix_transpose, onp.matrix_transpose, [(2, 3, 4)], True),
    ("permute_dims", lambda a: np.permute_dims(a, (2, 0, 1)), lambda a: onp.permute_dims(a, (2, 0, 1)),
     [(2, 3, 4)], True),
    ("ravel", np.ravel, onp.ravel, [(2, 3)], True),
    ("fliplr", np.fliplr, onp.fliplr, [(3, 4)], True),
    ("flipud", np.flipud, onp.flipud, [(3, 4)], True),
    ("rot90", np.rot90, onp.rot90, [(3, 4)], True),
    ("rot90_k3_axes", lambda a: np.rot90(a, 3, (1, 2)), lambda a: onp.rot90(a, 3, (1, 2)), [(2, 3, 4)], True),
    ("rot90_k2", lambda a: np.rot90(a, 2), lambda a: onp.rot90(a, 2), [(3, 4)], True),
    ("append", lambda a, b: np.append(a, b, axis=0), lambda a, b: onp.append(a, b, axis=0), [(2, 3), (1, 3)], True),
    ("append_flat", np.append, onp.append, [(2, 3), (4,)], True),
    ("select", lambda a: np.select([a > 0.5, a < -0.5], [a * 2, a * a], 0.25),
     lambda a: onp.select([a > 0.5, a < -0.5], [a * 2, a * a], 0.25), [(6, 5)], True),
    ("isclose", lambda a: np.where(np.isclose(a, 0.1, atol=0.05), 1.0, a),
     lambda a: onp.where(onp.isclose(a, 0.1, atol=0.05), 1.0, a), [(6, 5)], True),
    ("sinc", np.sinc, onp.sinc, [(6, 5)], True),
    ("trapezoid", lambda a: np.trapezoid(a, dx=0.5, axis=0), lambda a: onp.trapezoid(a, dx=0.5, axis=0),
     [(6, 5)], True),
    ("trapezoid_x", lambda a, x: np.trapezoid(a, x), lambda a, x: onp.trapezoid(a, x), [(3, 5), (5,)], True),
    ("polyval", lambda p, x: np.polyval(p, x), onp.polyval, [(4,), (7,)], True),
    ("meshgrid", lambda a, b: np.meshgrid(a, b)[0] * np.meshgrid(a, b)[1],
     lambda a, b: onp.meshgrid(a, b)[0] * onp.meshgrid(a, b)[1], [(3,), (4,)], True),
    ("reshape_shape_kw", lambda a: np.reshape(a, shape=(3, 4)), lambda a: onp.reshape(a, (3, 4)), [(4, 3)], True),
    ("einsum_optimize", lambda a, b: np.einsum("ij,jk->ik", a, b, optimize="optimal"),
     lambda a, b: onp.einsum("ij,jk->ik", a, b), [(3, 4), (4, 2)], True),
    # gradc/ops/lookup.py, and the splits and block
    ("convolve_full", lambda a, v: np.convolve(a, v), onp.convolve, [(20,), (5,)], True),
    ("convolve_same_swapped", lambda a, v: np.convolve(a, v, "same"), lambda a, v: onp.convolve(a, v, "same"),
     [(5,), (20,)], True),
    ("convolve_valid_windows", lambda a, v: np.convolve(a, v, "valid"), lambda a, v: onp.convolve(a, v, "valid"),
     [(100,), (70,)], True),
    ("correlate_valid", lambda a, v: np.correlate(a, v), onp.correlate, [(20,), (5,)], True),
    ("correlate_full_swapped", lambda a, v: np.correlate(a, v, "full"), lambda a, v: onp.correlate(a, v, "full"),
     [(6,), (9,)], True),
    ("interp", lambda x, fp: np.interp(3 * x, XP, fp), lambda x, fp: onp.interp(3 * x, XP, fp), [(30,), (10,)], True),
    ("interp_left_right", lambda x, fp: np.interp(3 * x, XP, fp, left=-2.0, right=fp[3]),
     lambda x, fp: onp.interp(3 * x, XP, fp, left=-2.0, right=fp[3]), [(30,), (10,)], True),
    ("interp_traced_xp", lambda x, a, fp: np.interp(2 * x, np.cumsum(np.exp(a)) - 3, fp),
     lambda x, a, fp: onp.interp(2 * x, onp.cumsum(onp.exp(a)) - 3, fp), [(30,), (8,), (8,)], True),
    ("searchsorted_left", lambda v: np.searchsorted(XP, 3 * v), lambda v: onp.searchsorted(XP, 3 * v),
     [(4, 7)], False),
    ("searchsorted_right_at_entries", lambda v: np.searchsorted(XP, np.concatenate([v, XP]), side="right"),
     lambda v: onp.searchsorted(XP, onp.concatenate([v, XP]), side="right"), [(7,)], False),
    ("digitize", lambda v: np.digitize(np.concatenate([3 * v, XP]), XP),
     lambda v: onp.digitize(onp.concatenate([3 * v, XP]), XP), [(9,)], False),
    ("digitize_right_decreasing", lambda v: np.digitize(np.concatenate([3 * v, XP]), XP[::-1], right=True),
     lambda v: onp.digitize(onp.concatenate([3 * v, XP]), XP[::-1], right=True), [(9,)], False),
    ("hsplit_vsplit_dsplit",
     lambda a: np.concatenate([np.hsplit(a, 2)[1].ravel(), np.vsplit(a, [1])[1].ravel() * 2.0, np.dsplit(a, 3)[2].ravel()]),
     lambda a: onp.concatenate([onp.hsplit(a, 2)[1].ravel(), onp.vsplit(a, [1])[1].ravel() * 2.0,
                                onp.dsplit(a, 3)[2].ravel()]), [(2, 4, 3)], True),
    ("block", lambda a, b: np.block([[a, b], [b[:1], a[:1] * 2.0], [np.ones(5)]]),
     lambda a, b: onp.block([[a, b], [b[:1], a[:1] * 2.0], [onp.ones(5)]]), [(2, 2), (2, 3)], True),
    ("ediff1d", lambda a: np.ediff1d(a, to_begin=-1.0, to_end=a[0]), lambda a: onp.ediff1d(a, to_begin=-1.0, to_end=a[0]),
     [(3, 4)], True),
    ("put_along_axis", lambda a, v: np.put_along_axis(a, IDX, v, axis=1, inplace=False),
     lambda a, v: _put_along_axis(a, IDX, v, 1), [(3, 5), (3, 2)], True),
    # numpy keywords that were once swallowed by **kw (the result silently ignored them)
    ("clip_a_min_a_max", lambda x: np.clip(x, a_min=-0.3, a_max=0.4), lambda x: onp.clip(x, a_min=-0.3, a_max=0.4),
     [(6, 5)], True),
    ("var_correction", lambda x: np.var(x, axis=0, correction=1), lambda x: onp.var(x, axis=0, correction=1),
     [(6, 5)], True),
    ("std_where_ddof", lambda x: np.std(x, axis=1, ddof=1, where=M), lambda x: onp.std(x, axis=1, ddof=1, where=M),
     [(6, 5)], True),
    ("var_where_all_keepdims", lambda x: np.var(x, where=M, keepdims=True),
     lambda x: onp.var(x, where=M, keepdims=True), [(6, 5)], True),
    ("var_mean_given", lambda x: np.var(x, axis=1, mean=np.mean(x, axis=1, keepdims=True) + 0.1),
     lambda x: onp.var(x, axis=1, mean=onp.mean(x, axis=1, keepdims=True) + 0.1), [(6, 5)], True),
    ("prod_initial_where", lambda x: np.prod(x, axis=0, initial=2.0, where=M),
     lambda x: onp.prod(x, axis=0, initial=2.0, where=M), [(6, 5)], True),
    ("nansum_initial_where", lambda x: np.nansum(np.where(x > 0.8, np.nan, x), axis=1, initial=0.5, where=M),
     lambda x: onp.nansum(onp.where(x > 0.8, onp.nan, x), axis=1, initial=0.5, where=M), [(6, 5)], True),
    ("nanmean_where", lambda x: np.nanmean(np.where(x > 0.8, np.nan, x), axis=0, where=M | (x > 0.8)),
     lambda x: onp.nanmean(onp.where(x > 0.8, onp.nan, x), axis=0, where=M | (x > 0.8)), [(6, 5)], True),
    ("nanmin_initial_where", lambda x: np.nanmin(np.where(x > 0.8, np.nan, x), axis=1, initial=0.3, where=M),
     lambda x: onp.nanmin(onp.where(x > 0.8, onp.nan, x), axis=1, initial=0.3, where=M), [(6, 5)], True),
    ("any_all_where", lambda x: np.any(x > 0.5, axis=0, where=M) & np.all(x > -0.5, axis=0, where=M),
     lambda x: onp.any(x > 0.5, axis=0, where=M) & onp.all(x > -0.5, axis=0, where=M), [(6, 5)], False),
    ("median_axes_tuple_keepdims", lambda x: np.median(x, axis=(0, 2), keepdims=True),
     lambda x: onp.median(x, axis=(0, 2), keepdims=True), [(3, 4, 5)], True),
    ("median_all_keepdims", lambda x: np.median(x, keepdims=True), lambda x: onp.median(x, keepdims=True),
     [(3, 4, 2)], True),
    ("quantile_axes_tuple", lambda x: np.quantile(x, [0.2, 0.9], axis=(-1, 0)),
     lambda x: onp.quantile(x, [0.2, 0.9], axis=(-1, 0)), [(3, 4, 5)], True),
    # numpy names and methods that were refused
    ("quantile_lower_higher", lambda x: np.quantile(x, [0.3, 0.9], axis=1, method="lower")
     + np.quantile(x, 0.3, axis=1, method="higher"),
     lambda x: onp.quantile(x, [0.3, 0.9], axis=1, method="lower") + onp.quantile(x, 0.3, axis=1, method="higher"),
     [(6, 5)], True),
    ("percentile_midpoint_nearest", lambda x: np.percentile(x, [12.5, 37.5, 62.5, 30], axis=0, method="nearest")
     + np.percentile(x, 30, axis=0, method="midpoint"),
     lambda x: onp.percentile(x, [12.5, 37.5, 62.5, 30], axis=0, method="nearest")
     + onp.percentile(x, 30, axis=0, method="midpoint"), [(5, 4)], True),
    # a nan among a slice made numpy's median nan and gradc's a number (nan sorts last)
    ("median_nan_propagates", lambda x: np.median(np.where(x > 0.7, np.nan, x), axis=1)
     + np.quantile(np.where(x > 0.7, np.nan, x), 0.2, axis=1),
     lambda x: onp.median(onp.where(x > 0.7, onp.nan, x), axis=1)
     + onp.quantile(onp.where(x > 0.7, onp.nan, x), 0.2, axis=1), [(8, 5)], False),
    ("nanmedian", lambda x: np.nanmedian(np.where(x > 0.6, np.nan, x), axis=1),
     lambda x: onp.nanmedian(onp.where(x > 0.6, onp.nan, x), axis=1), [(6, 7)], True),
    ("nanquantile_keepdims", lambda x: np.nanquantile(np.where(x > 0.6, np.nan, x), [0.0, 0.3, 1.0], axis=0,
                                                       keepdims=True),
     lambda x: onp.nanquantile(onp.where(x > 0.6, onp.nan, x), [0.0, 0.3, 1.0], axis=0, keepdims=True),
     [(7, 4)], True),
    ("nanpercentile_all", lambda x: np.nanpercentile(np.where(x > 0.6, np.nan, x), 40),
     lambda x: onp.nanpercentile(onp.where(x > 0.6, onp.nan, x), 40), [(3, 7)], True),
    ("cumulative_sum_initial", lambda x: np.cumulative_sum(x, axis=1, include_initial=True),
     lambda x: onp.cumulative_sum(x, axis=1, include_initial=True), [(6, 5)], True),
    ("cumulative_prod", lambda x: np.cumulative_prod(x[0]) * np.cumulative_prod(x, axis=0, include_initial=True)[-1],
     lambda x: onp.cumulative_prod(x[0]) * onp.cumulative_prod(x, axis=0, include_initial=True)[-1], [(6, 5)], True),
    ("tri_causal_mask", lambda x: np.where(np.tri(6, 5, -1) > 0, x, 0.0),
     lambda x: onp.where(onp.tri(6, 5, -1) > 0, x, 0.0), [(6, 5)], True),
    ("take_wrap", lambda x: np.take(x, onp.array([0, -7, 13, 4]), axis=1, mode="wrap"),
     lambda x: onp.take(x, onp.array([0, -7, 13, 4]), axis=1, mode="wrap"), [(3, 5)], True),
    ("take_clip_flat", lambda x: np.take(x, onp.array([[-3, 40], [7, 7]]), mode="clip"),
     lambda x: onp.take(x, onp.array([[-3, 40], [7, 7]]), mode="clip"), [(3, 5)], True),
]


def _args(shapes, seed):
    rng = onp.random.default_rng(seed)
    return [rng.uniform(-1, 1, s) for s in shapes]


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
@pytest.mark.parametrize("name,f,ref,shapes,diff", TABLE, ids=[t[0] for t in TABLE])
def test_against_numpy_and_finite_differences(name, f, ref, shapes, diff, backend):
    xs = _args(shapes, len(name))
    got = gradc.jit(f, backend=backend)(*xs)
    want = ref(*xs)
    assert onp.asarray(got).dtype == onp.asarray(want).dtype, (got.dtype, want.dtype)
    onp.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    onp.testing.assert_allclose(f(*xs), want, rtol=1e-12, atol=1e-12)       # outside a trace: numpy
    if not diff:
        return
    w = onp.random.default_rng(1).standard_normal(onp.shape(want))
    grads = gradc.grad(lambda *a: np.sum(f(*a) * w), argnums=tuple(range(len(xs))), backend=backend)(*xs)
    for i, g in enumerate(grads):
        onp.testing.assert_allclose(g, fd_grad(lambda *a: onp.sum(ref(*a) * w), xs, i), rtol=FD_RTOL, atol=FD_ATOL)


def test_where_on_max_needs_initial_as_numpy():
    with pytest.raises(ValueError, match="initial"):
        gradc.jit(lambda x: np.max(x, where=M))(onp.ones((6, 5)))


def test_take_wrap_with_traced_indices():
    x, i = onp.arange(5.0), onp.array([-7, 6, 12, 2])
    for mode in ("wrap", "clip"):
        got = gradc.jit(lambda x, i: np.take(x, i, mode=mode))(x, i)
        onp.testing.assert_array_equal(got, onp.take(x, i, mode=mode))


def test_unsupported_keywords_are_errors_not_ignored():
    x = onp.ones((6, 5))
    with pytest.raises(gradc.UnsupportedError, match="clip: keyword.*casting"):
        gradc.jit(lambda x: np.clip(x, 0.0, 1.0, casting="unsafe"))(x)
    with pytest.raises(gradc.UnsupportedError, match="var: keyword.*foo"):
        gradc.jit(lambda x: np.var(x, foo=1))(x)
    with pytest.raises(gradc.UnsupportedError, match="prod: keyword.*foo"):
        gradc.jit(lambda x: np.prod(x, foo=1))(x)


def test_quantiles_of_integers_are_float64_as_numpy():
    # a median or quantile that lands on one sorted integer came back int64 (numpy: float64)
    i = onp.array([[1, 2, 4, 8], [3, 5, 6, 9], [7, 7, 1, 2]])
    for f in (lambda i: np.median(i, axis=0), lambda i: np.median(i, axis=1), lambda i: np.quantile(i, 0.3, axis=1)):
        got, want = gradc.jit(f)(i), f(i)
        assert got.dtype == want.dtype == onp.float64
        onp.testing.assert_allclose(got, want, rtol=1e-15)


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
def test_cov_and_corrcoef_dtype(backend):
    """numpy computes cov and corrcoef in float64 unless told a dtype; with dtype=float32
    the result is float32 and agrees to float32's resolution (5 roundings of O(1) sums
    of 7 terms: 1e-6)."""
    x = onp.random.default_rng(3).uniform(-1, 1, (3, 7)).astype(onp.float32)
    for f, ref in ((lambda a: np.cov(a, dtype=onp.float32), lambda a: onp.cov(a, dtype=onp.float32)),
                   (lambda a: np.corrcoef(a, dtype=onp.float32), lambda a: onp.corrcoef(a, dtype=onp.float32)),
                   (np.cov, onp.cov), (np.corrcoef, onp.corrcoef)):
        got, want = gradc.jit(f, backend=backend)(x), ref(x)
        assert got.dtype == want.dtype
        onp.testing.assert_allclose(got, want, rtol=1e-6 if want.dtype == onp.float32 else 1e-12, atol=1e-7)


def test_cov_weights_shape_is_checked():
    with pytest.raises(gradc.ShapeError, match="aweights must have shape"):
        gradc.jit(lambda a, w: np.cov(a, aweights=w))(onp.ones((3, 7)), onp.ones(6))


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
@pytest.mark.parametrize("dtype", [onp.float64, onp.float32])
def test_sinc_and_its_derivative_near_zero_to_a_few_ulp(dtype, backend):
    """sinc's derivative, (y cos y - sin y) / y^2 with y = pi x, cancels as x -> 0 (all of
    it below x ~ 1e-8, 100% error at x = 1e-4 in float32); gradc sums the Taylor series
    for |pi x| < 1, which differentiates without cancellation.  Oracle: mpmath at 40
    digits.  8 ulp: a few roundings of a ten-term Horner sum or of the quotient."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    x = onp.array([1e-30, 1e-12, 1e-8, 1e-4, 3e-4, 1e-3, 0.05, 0.3, 0.318, 0.32, 0.5, 0.7, 1.3, 3.3], dtype)
    x = onp.concatenate([x, -x])

    def exact(t):
        y = mpmath.pi * t
        return mpmath.sin(y) / y

    want = onp.array([float(exact(mpmath.mpf(float(t)))) for t in x])
    want_d = onp.array([float(mpmath.diff(exact, mpmath.mpf(float(t)))) for t in x])
    got = gradc.jit(np.sinc, backend=backend)(x)
    got_d = gradc.grad(lambda a: np.sum(np.sinc(a)), backend=backend)(x)
    eps = onp.finfo(dtype).eps
    onp.testing.assert_allclose(got, want, rtol=8 * eps, atol=0)
    onp.testing.assert_allclose(got_d, want_d, rtol=8 * eps, atol=0)


@pytest.mark.parametrize("backend", ["llvm", "c"])
@pytest.mark.parametrize("ord", [2, 1, -1, 3, 0.5, onp.inf, -onp.inf])
def test_vector_norm_of_two_axes_is_a_vector_norm(backend, ord):
    # linalg.vector_norm over a 2-tuple axis (or axis=None with keepdims) computed a
    # matrix norm (ord=2 the spectral norm, 1 the largest column sum; 3 and 0.5 refused)
    x = onp.random.default_rng(5).normal(size=(3, 4, 5))
    for axis, kd in [((0, 2), False), ((0, 2), True), ((2, 1), False), ((0, 1, 2), False), (None, True)]:
        want = onp.linalg.vector_norm(x, ord=ord, axis=axis, keepdims=kd)
        f = lambda v: np.linalg.vector_norm(v, ord=ord, axis=axis, keepdims=kd)  # noqa: E731
        onp.testing.assert_allclose(gradc.jit(f, backend=backend)(x), want, rtol=1e-12)
        onp.testing.assert_allclose(f(x), want, rtol=1e-12)
    f = lambda v: np.sum(np.linalg.vector_norm(v, ord=ord, axis=(0, 2)) * onp.arange(1.0, 5.0))  # noqa: E731
    g = gradc.jit(gradc.grad(f), backend=backend)(x)
    onp.testing.assert_allclose(g, fd_grad(f, [x], 0), rtol=FD_RTOL, atol=FD_ATOL)
