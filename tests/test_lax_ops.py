"""gradc.lax's array ops (gradc/lax_arrays.py, gradc/lax_windows.py): convolution,
reduce_window and pooling, padding, static and dynamic slicing, dot_general and the
shape ops.

Oracles: each table line against a reference written here in plain numpy (a direct loop
over output positions for convolution and windowed reductions, per-axis dilation and
cropping for pad, Python-clamped slices for the dynamic slices), values at float64
(1e-12) and float32 (against float64 on the rounded inputs, tests/gradc_helpers.py's
F32_RTOL times the output's scale: the sums here have at most ~100 O(1) terms), and
gradients by central finite differences of the numpy reference (the table: along three
random directions per argument, as the loops are slow; elsewhere element by element); on the numpy, llvm and
c backends.  Where JAX is installed, the same lines against jax.lax itself, and a
LeNet-style CNN's value_and_grad against jax.jit(jax.value_and_grad) at x64.  Max
pooling at ties is checked against gradc's tie rule in closed form (docs/derivatives.md:
k tied maxima get 1/k each; JAX gives all to one, so JAX is no oracle there)."""
from __future__ import annotations

import itertools
import math

import mpmath

import numpy as onp
import pytest

import gradc
import gradc.nn  # noqa: F401  (gradc.nn.max_pool)
import gradc.numpy as np
from gradc import lax

from gradc_helpers import F32_RTOL, FD_ATOL, FD_RTOL, fd_grad, fd_jvp

BACKENDS = ["numpy", "llvm", "c"]


# ----------------------------------------------------------------------------- numpy references
def _dilate_pad_np(x, value, config):
    """jax.lax.pad in numpy, one axis at a time: interior dilation, then low and high
    padding (a negative amount crops)."""
    y = onp.asarray(x, onp.float64)
    for a, (lo, hi, it) in enumerate(config):
        y = onp.moveaxis(y, a, 0)
        n = y.shape[0]
        d = onp.full((max(n + (n - 1) * it, 0),) + y.shape[1:], value, onp.float64)
        d[::it + 1] = y
        lo_part = onp.full((max(lo, 0),) + y.shape[1:], value)
        hi_part = onp.full((max(hi, 0),) + y.shape[1:], value)
        d = onp.concatenate([lo_part, d[max(-lo, 0): d.shape[0] - max(-hi, 0)], hi_part])
        y = onp.moveaxis(d, 0, a)
    return y


def _same_pads(sizes, window, strides, lower=False):
    out = []
    for n, k, s in zip(sizes, window, strides):
        total = max(0, (-(-n // s) - 1) * s + k - n)
        small = total // 2
        out.append((total - small, small) if lower else (small, total - small))
    return out


def _conv_np(x, w, strides, padding, ldil=None, rdil=None, groups=1):
    """Cross-correlation in NCHW / OIHW by a loop over output positions."""
    nd = x.ndim - 2
    ldil, rdil = ldil or (1,) * nd, rdil or (1,) * nd
    k = w.shape[2:]
    if isinstance(padding, str):
        eff = [(kk - 1) * r + 1 for kk, r in zip(k, rdil)]
        padding = [(0, 0)] * nd if padding == "VALID" else _same_pads(x.shape[2:], eff, strides, padding == "SAME_LOWER")
    xp = _dilate_pad_np(x, 0.0, [(0, 0, 0)] * 2 + [(lo, hi, d - 1) for (lo, hi), d in zip(padding, ldil)])
    out_sizes = [(n - (kk - 1) * r - 1) // s + 1 for n, kk, r, s in zip(xp.shape[2:], k, rdil, strides)]
    n, c, o = x.shape[0], x.shape[1], w.shape[0]
    cg, og = c // groups, o // groups
    y = onp.zeros((n, o, *out_sizes))
    for pos in itertools.product(*(range(m) for m in out_sizes)):
        idx = onp.ix_(*[onp.arange(m) for m in (n, c)],
                      *[p * s + onp.arange(kk) * r for p, s, kk, r in zip(pos, strides, k, rdil)])
        win = xp[idx]                                          # (n, c, *k)
        for gi in range(groups):
            y[(slice(None), slice(gi * og, (gi + 1) * og)) + pos] = onp.tensordot(
                win[:, gi * cg:(gi + 1) * cg], w[gi * og:(gi + 1) * og], axes=(list(range(1, nd + 2)),) * 2)
    return y


def _reduce_window_np(x, init, ufunc, window, strides, padding, bdil=None, wdil=None):
    nd = x.ndim
    bdil, wdil = bdil or (1,) * nd, wdil or (1,) * nd
    if isinstance(padding, str):
        eff = [(kk - 1) * r + 1 for kk, r in zip(window, wdil)]
        padding = [(0, 0)] * nd if padding == "VALID" else _same_pads(x.shape, eff, strides)
    xp = _dilate_pad_np(x, init, [(lo, hi, d - 1) for (lo, hi), d in zip(padding, bdil)])
    out_sizes = [(n - (kk - 1) * r - 1) // s + 1 for n, kk, r, s in zip(xp.shape, window, wdil, strides)]
    y = onp.zeros(out_sizes)
    for pos in itertools.product(*(range(m) for m in out_sizes)):
        win = xp[onp.ix_(*[p * s + onp.arange(kk) * r for p, s, kk, r in zip(pos, strides, window, wdil)])]
        y[pos] = ufunc.reduce(onp.append(win.ravel(), init))
    return y


def _clamped(starts, shape, sizes):
    return [min(max(s + (d if s < 0 else 0), 0), d - k) for s, d, k in zip(starts, shape, sizes)]


def _dynamic_slice_np(x, starts, sizes):
    st = _clamped(starts, x.shape, sizes)
    return x[tuple(slice(s, s + k) for s, k in zip(st, sizes))]


def _dynamic_update_np(x, u, starts):
    st = _clamped(starts, x.shape, u.shape)
    y = onp.array(x, copy=True)
    y[tuple(slice(s, s + k) for s, k in zip(st, u.shape))] = u
    return y


def _recurrence_np(a, b):
    """h[0] = b[0], h[t] = h[t-1] a[t] + b[t]: the loop associative_scan parallelises."""
    h = onp.array(b, onp.float64)
    for t in range(1, len(a)):
        h[t] = h[t - 1] * a[t] + b[t]
    return h


_lgamma_np = onp.vectorize(math.lgamma)
_digamma_np = onp.vectorize(lambda v: float(mpmath.digamma(v)))
_erfinv_np = onp.vectorize(lambda v: float(mpmath.erfinv(v)))


def _pool_np(x, ufunc, init, window, strides, padding):
    """flax pooling on (batch, spatial..., features) by the reference reduce_window."""
    pads = padding if isinstance(padding, str) else [(0, 0)] + list(padding) + [(0, 0)]
    return _reduce_window_np(x, init, ufunc, (1, *window, 1), (1, *strides, 1), pads)


ND = ("NHWC", "HWIO", "NHWC")
PAD3 = [(1, 2, 0), (0, -1, 1), (-1, 2, 2)]

# (id, gradc function, numpy reference, shapes, differentiable?)
TABLE = [
    ("conv_same", lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME"),
     lambda x, w: _conv_np(x, w, (1, 1), "SAME"), [(2, 3, 7, 6), (4, 3, 3, 3)], True),
    ("conv_valid_strided", lambda x, w: lax.conv(x, w, (2, 3), "VALID"),
     lambda x, w: _conv_np(x, w, (2, 3), "VALID"), [(2, 3, 9, 10), (4, 3, 3, 2)], True),
    # 16 input channels: a product per tap (fewer: the taps side by side, IM2COL_BELOW)
    ("conv_per_tap", lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME"),
     lambda x, w: _conv_np(x, w, (1, 1), "SAME"), [(2, 16, 5, 4), (3, 16, 3, 3)], True),
    ("conv_pairs_negative", lambda x, w: lax.conv_general_dilated(x, w, (1, 2), ((1, 2), (-1, 1))),
     lambda x, w: _conv_np(x, w, (1, 2), ((1, 2), (-1, 1))), [(2, 2, 6, 7), (3, 2, 2, 3)], True),
    ("conv_rhs_dilation_same", lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME", rhs_dilation=(2, 3)),
     lambda x, w: _conv_np(x, w, (1, 1), "SAME", rdil=(2, 3)), [(1, 2, 8, 9), (3, 2, 3, 2)], True),
    ("conv_lhs_dilation", lambda x, w: lax.conv_with_general_padding(x, w, (1, 2), ((2, 1), (1, 2)), (2, 3), (1, 1)),
     lambda x, w: _conv_np(x, w, (1, 2), ((2, 1), (1, 2)), ldil=(2, 3)), [(2, 2, 4, 3), (3, 2, 3, 3)], True),
    ("conv_groups", lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME", feature_group_count=2),
     lambda x, w: _conv_np(x, w, (1, 1), "SAME", groups=2), [(2, 4, 6, 5), (6, 2, 3, 3)], True),
    ("conv_depthwise", lambda x, w: lax.conv_general_dilated(x, w, (2, 2), "SAME", feature_group_count=3),
     lambda x, w: _conv_np(x, w, (2, 2), "SAME", groups=3), [(2, 3, 7, 7), (3, 1, 3, 3)], True),
    ("conv_nhwc_hwio", lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=ND),
     lambda x, w: onp.transpose(_conv_np(onp.transpose(x, (0, 3, 1, 2)), onp.transpose(w, (3, 2, 0, 1)), (1, 1),
                                         "SAME"), (0, 2, 3, 1)), [(2, 6, 5, 3), (3, 3, 3, 4)], True),
    ("conv_1d_same_lower", lambda x, w: lax.conv_general_dilated(x, w, (2,), "SAME_LOWER"),
     lambda x, w: _conv_np(x, w, (2,), "SAME_LOWER"), [(2, 3, 11), (4, 3, 4)], True),
    ("conv_3d", lambda x, w: lax.conv_general_dilated(x, w, (1, 2, 1), "VALID"),
     lambda x, w: _conv_np(x, w, (1, 2, 1), "VALID"), [(1, 2, 4, 5, 4), (3, 2, 2, 3, 2)], True),
    # windowed reductions and pooling
    ("reduce_window_add_same", lambda x: lax.reduce_window(x, 0.0, lax.add, (1, 3, 2), (1, 2, 2), "SAME"),
     lambda x: _reduce_window_np(x, 0.0, onp.add, (1, 3, 2), (1, 2, 2), "SAME"), [(2, 7, 8)], True),
    ("reduce_window_max_dilated", lambda x: lax.reduce_window(x, -onp.inf, lax.max, (2, 3, 2), (1, 1, 2),
                                                             ((0, 1), (1, 1), (2, 0)), (1, 2, 1), (1, 1, 2)),
     lambda x: _reduce_window_np(x, -onp.inf, onp.maximum, (2, 3, 2), (1, 1, 2), ((0, 1), (1, 1), (2, 0)),
                                 (1, 2, 1), (1, 1, 2)), [(2, 5, 7)], True),
    ("reduce_window_min_init", lambda x: lax.reduce_window(x, 0.2, lax.min, (2, 2), (2, 1), "VALID"),
     lambda x: _reduce_window_np(x, 0.2, onp.minimum, (2, 2), (2, 1), "VALID"), [(6, 5)], True),
    ("reduce_window_mul", lambda x: lax.reduce_window(x, 1.0, lax.mul, (1, 2, 2), (1, 1, 1), "SAME"),
     lambda x: _reduce_window_np(x, 1.0, onp.multiply, (1, 2, 2), (1, 1, 1), "SAME"), [(2, 4, 5)], True),
    ("reduce_window_add_init_pad", lambda x: lax.reduce_window(x, 0.5, lax.add, (3,), (2,), ((2, 1),)),
     lambda x: _reduce_window_np(x, 0.5, onp.add, (3,), (2,), ((2, 1),)), [(9,)], True),
    ("max_pool", lambda x: lax.max_pool(x, (2, 2), (2, 2)),
     lambda x: _pool_np(x, onp.maximum, -onp.inf, (2, 2), (2, 2), "VALID"), [(2, 6, 6, 3)], True),
    ("max_pool_same", lambda x: gradc.nn.max_pool(x, (3, 3), (2, 2), "SAME"),
     lambda x: _pool_np(x, onp.maximum, -onp.inf, (3, 3), (2, 2), "SAME"), [(2, 5, 6, 2)], True),
    ("min_pool_unbatched", lambda x: gradc.nn.min_pool(x, (2,), (1,)),
     lambda x: _pool_np(x[None], onp.minimum, onp.inf, (2,), (1,), "VALID")[0], [(7, 3)], True),
    ("avg_pool", lambda x: lax.avg_pool(x, (2, 3), (2, 1)),
     lambda x: _pool_np(x, onp.add, 0.0, (2, 3), (2, 1), "VALID") / 6, [(2, 6, 5, 3)], True),
    ("avg_pool_pad_excluded", lambda x: lax.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False),
     lambda x: _pool_np(x, onp.add, 0.0, (3, 3), (1, 1), ((1, 1), (1, 1)))
     / _pool_np(onp.ones_like(x), onp.add, 0.0, (3, 3), (1, 1), ((1, 1), (1, 1))), [(2, 4, 5, 2)], True),
    # padding and slicing
    ("pad_interior_negative", lambda x: lax.pad(x, 0.0, PAD3), lambda x: _dilate_pad_np(x, 0.0, PAD3), [(3, 4, 5)], True),
    ("pad_value", lambda x: lax.pad(x, -1.5, [(2, 0, 1), (-2, 3, 0)]),
     lambda x: _dilate_pad_np(x, -1.5, [(2, 0, 1), (-2, 3, 0)]), [(4, 5)], True),
    ("pad_traced_value", lambda x, v: lax.pad(x, v[0], [(1, 1, 1), (0, 2, 0)]),
     lambda x, v: _dilate_pad_np(x, v[0], [(1, 1, 1), (0, 2, 0)]), [(3, 4), (1,)], True),
    ("slice_strided", lambda x: lax.slice(x, (1, 0, 2), (4, 5, 5), (2, 1, 2)), lambda x: x[1:4:2, 0:5, 2:5:2],
     [(5, 5, 6)], True),
    ("slice_in_dim_index_in_dim", lambda x: lax.slice_in_dim(x, 1, -1, 2, axis=1) * lax.index_in_dim(x, -1, 1),
     lambda x: x[:, 1:-1:2] * x[:, -1:], [(3, 7, 2)], True),
    ("index_in_dim_squeezed", lambda x: lax.index_in_dim(x, 2, 0, keepdims=False), lambda x: x[2], [(4, 3)], True),
    ("dynamic_slice_clamped", lambda x: lax.dynamic_slice(x, (-1, 1, 9), (2, 3, 2)),
     lambda x: _dynamic_slice_np(x, (-1, 1, 9), (2, 3, 2)), [(3, 5, 4)], True),
    ("dynamic_slice_in_dim", lambda x: lax.dynamic_slice_in_dim(x, 3, 2, axis=1) + lax.dynamic_index_in_dim(x, -2, 1),
     lambda x: _dynamic_slice_np(x, (0, 3), (3, 2)) + x[:, -2:-1], [(3, 6)], True),
    ("dynamic_update_slice", lambda x, u: lax.dynamic_update_slice(x, u, (1, -2, 7)),
     lambda x, u: _dynamic_update_np(x, u, (1, -2, 7)), [(3, 5, 4), (2, 2, 3)], True),
    ("dynamic_update_index_in_dim", lambda x, u: lax.dynamic_update_index_in_dim(x, u, 2, 1),
     lambda x, u: _dynamic_update_np(x, u[:, None], (0, 2)), [(3, 5), (3,)], True),
    # contractions and shapes
    ("dot_general_batch", lambda a, b: lax.dot_general(a, b, (((2,), (1,)), ((0,), (0,)))),
     lambda a, b: onp.einsum("bij,bjk->bik", a, b), [(3, 4, 5), (3, 5, 2)], True),
    ("dot_general_two_contract", lambda a, b: lax.dot_general(a, b, (((0, 2), (2, 1)), ((), ()))),
     lambda a, b: onp.einsum("iaj,kji->ak", a, b), [(3, 4, 5), (2, 5, 3)], True),
    ("dot_general_batch_not_leading", lambda a, b: lax.dot_general(a, b, (((0,), (2,)), ((2,), (0,)))),
     lambda a, b: onp.einsum("cib,bjc->bij", a, b), [(4, 3, 2), (2, 5, 4)], True),
    ("broadcast_in_dim", lambda x: lax.broadcast_in_dim(x, (2, 3, 4, 5), (1, 3)),
     lambda x: onp.broadcast_to(x[None, :, None, :], (2, 3, 4, 5)), [(3, 5)], True),
    ("broadcast_in_dim_ones", lambda x: lax.broadcast_in_dim(x, (3, 4), (0, 1)),
     lambda x: onp.broadcast_to(x, (3, 4)), [(3, 1)], True),
    ("squeeze_expand_dims", lambda x: lax.expand_dims(lax.squeeze(x, (1,)), (0, 3)),
     lambda x: x[:, 0][None, :, :, None], [(3, 1, 4)], True),
    ("concatenate", lambda a, b: lax.concatenate([a, b, a], 1), lambda a, b: onp.concatenate([a, b, a], 1),
     [(2, 3), (2, 4)], True),
    ("transpose_reshape_dims", lambda x: lax.reshape(lax.transpose(x, (2, 0, 1)), (4, 6), (1, 0, 2)),
     lambda x: onp.reshape(onp.transpose(onp.transpose(x, (2, 0, 1)), (1, 0, 2)), (4, 6)), [(2, 3, 4)], True),
    ("rev", lambda x: lax.rev(x, (0, 2)), lambda x: x[::-1, :, ::-1], [(2, 3, 4)], True),
    ("clamp", lambda x: lax.clamp(-0.3, x, 0.4), lambda x: onp.clip(x, -0.3, 0.4), [(4, 5)], True),
    ("rsqrt_integer_pow", lambda x: lax.rsqrt(x * x + 0.5) + lax.integer_pow(x, 3) + lax.integer_pow(x * x + 1, -2),
     lambda x: 1 / onp.sqrt(x * x + 0.5) + x ** 3 + (x * x + 1) ** -2.0, [(4, 5)], True),
    ("elementwise_names", lambda x, y: lax.logistic(lax.mul(x, y)) + lax.div(lax.sub(x, y), lax.add(y * y, 2.0))
     + lax.max(x, y) - lax.min(lax.exp(x), lax.tanh(y)) + lax.square(lax.log(y * y + 1)),
     lambda x, y: 1 / (1 + onp.exp(-x * y)) + (x - y) / (y * y + 2) + onp.maximum(x, y)
     - onp.minimum(onp.exp(x), onp.tanh(y)) + onp.log(y * y + 1) ** 2, [(3, 4), (3, 4)], True),
    ("select", lambda x, y: lax.select(lax.gt(x, y), x * 2, y), lambda x, y: onp.where(x > y, x * 2, y),
     [(3, 4), (3, 4)], True),
    ("round_away_from_zero", lambda x: lax.round(4 * x) + lax.round(4 * x, 1),
     lambda x: onp.sign(4 * x) * onp.floor(onp.abs(4 * x) + 0.5) + onp.rint(4 * x), [(4, 5)], False),
    # sorting
    ("sort", lambda x: lax.sort(x), lambda x: onp.sort(x, -1), [(3, 4, 5)], True),
    ("sort_keys_dim0", lambda a, b: lax.sort((a, b), 0)[1] * lax.sort([a, b], 0, num_keys=2)[0],
     lambda a, b: onp.take_along_axis(b, onp.argsort(a, 0, kind="stable"), 0) * onp.sort(a, 0), [(5, 3), (5, 3)], True),
    ("sort_key_val", lambda k, v: lax.sort_key_val(k, v, 1)[1], lambda k, v: onp.take_along_axis(
        v, onp.argsort(k, 1, kind="stable"), 1), [(2, 6, 3), (2, 6, 3)], True),
    ("top_k", lambda x: lax.top_k(x, 3)[0], lambda x: -onp.sort(-x, -1)[..., :3], [(3, 4, 6)], True),
    ("top_k_axis0", lambda x: lax.top_k(x, 2, axis=0)[0], lambda x: -onp.sort(-x, 0)[:2], [(5, 3)], True),
    ("reductions_cumsum", lambda x: lax.reduce_sum(x, (0, 2)) + lax.reduce_max(x, (0, 2)) * lax.cumsum(
        lax.reduce_min(x, (2,)), 0, reverse=True)[0], lambda x: x.sum((0, 2)) + x.max((0, 2))
     * onp.cumsum(x.min(2)[::-1], 0)[::-1][0], [(2, 3, 4)], True),
    # scans, reductions, constructors, special functions (gradc/lax_scans.py, gradc/lax_construct.py)
    ("cummax_cummin", lambda x: lax.cummax(x, 1) + lax.cummin(x, 0, reverse=True) * lax.cummax(x, -1, True),
     lambda x: onp.maximum.accumulate(x, 1) + onp.minimum.accumulate(x[::-1], 0)[::-1]
     * onp.maximum.accumulate(x[..., ::-1], -1)[..., ::-1], [(3, 5, 4)], True),
    ("cumlogsumexp", lambda x: lax.cumlogsumexp(3 * x, 2) + lax.cumlogsumexp(x, axis=0, reverse=True),
     lambda x: onp.logaddexp.accumulate(3 * x, 2) + onp.logaddexp.accumulate(x[::-1], 0)[::-1], [(3, 4, 5)], True),
    ("associative_scan_add_axis1_reverse", lambda x: lax.associative_scan(lax.add, x, reverse=True, axis=1),
     lambda x: onp.cumsum(x[:, ::-1], 1)[:, ::-1], [(2, 7, 3)], True),
    ("associative_scan_recurrence", lambda a, b: lax.associative_scan(
        lambda p, q: (p[0] * q[0], p[1] * q[0] + q[1]), (a, b))[1], lambda a, b: _recurrence_np(a, b), [(9, 4), (9, 4)],
     True),
    ("reduce_monoids", lambda x: lax.reduce(x, 0.0, lax.add, (0, 2)) + lax.reduce(x, -onp.inf, lax.max, (0, 2))
     * lax.reduce((x,), (1.0,), lax.mul, (2,))[0][1] - lax.reduce(x, onp.inf, lax.min, (2,))[0],
     lambda x: x.sum((0, 2)) + x.max((0, 2)) * x.prod(2)[1] - x.min(2)[0], [(2, 3, 4)], True),
    ("reduce_generic", lambda x: lax.reduce(x, 0.0, lambda a, b: a * b + a + b, (0, 1))
     + lax.reduce(x, 1.0, lambda a, b: a * b, ()),        # (a+1)(b+1)-1: associative, commutative, 0 its identity
     lambda x: onp.prod(x + 1, (0, 1)) - 1 + x, [(2, 5, 3)], True),
    ("special_functions", lambda x: lax.lgamma(x * x + 0.5) + lax.digamma(x * x + 0.5) * lax.reciprocal(x * x + 1)
     + lax.erf_inv(0.9 * x), lambda x: _lgamma_np(x * x + 0.5) + _digamma_np(x * x + 0.5) / (x * x + 1)
     + _erfinv_np(0.9 * x), [(3, 4)], True),
    ("select_n_full_like_iota", lambda x, y: lax.select_n(lax.gt(x, y), x, y * 2)
     + lax.select_n(lax.convert_element_type(1.5 * x + 1.5, onp.int32), x, y * 2, x * y)
     + lax.full_like(x, 0.5) * lax.broadcasted_iota(x.dtype, x.shape, 1) + lax.full((4,), x[0, 0], x.dtype),
     lambda x, y: onp.where(x > y, y * 2, x) + onp.choose((1.5 * x + 1.5).astype(int), [x, y * 2, x * y])
     + 0.5 * onp.arange(4.0) + x[0, 0], [(3, 4), (3, 4)], True),
    ("split_stack_tile", lambda x: lax.stack([lax.split(x, (2, 3, 1), 1)[0], lax.tile(lax.split(x, [2, 3, 1], 1)[2],
                                                                                      (1, 2, 1))], 2)
     * lax.optimization_barrier((x[:, :2], 2.0))[0][..., None],
     lambda x: onp.stack([x[:, :2], onp.tile(x[:, 5:], (1, 2, 1))], 2) * x[:, :2, :, None], [(3, 6, 2)], True),
]


def _args(shapes, seed):
    rng = onp.random.default_rng(seed)
    return [rng.uniform(-1, 1, s) for s in shapes]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,f,ref,shapes,diff", TABLE, ids=[t[0] for t in TABLE])
def test_against_numpy_and_finite_differences(name, f, ref, shapes, diff, backend):
    xs = _args(shapes, len(name))
    want = ref(*xs)
    got = gradc.jit(f, backend=backend)(*xs)
    assert got.dtype == onp.float64
    onp.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    x32 = [x.astype(onp.float32) for x in xs]
    got32, want32 = gradc.jit(f, backend=backend)(*x32), ref(*[x.astype(onp.float64) for x in x32])
    assert got32.dtype == onp.float32
    onp.testing.assert_allclose(got32, want32, rtol=F32_RTOL, atol=F32_RTOL * max(1.0, onp.abs(want32).max()))
    if backend == "numpy":                                   # outside a trace: numpy
        onp.testing.assert_allclose(f(*xs), want, rtol=1e-12, atol=1e-12)
    if not diff:
        return
    w = onp.random.default_rng(1).standard_normal(onp.shape(want))
    grads = gradc.grad(lambda *a: np.sum(f(*a) * w), argnums=tuple(range(len(xs))), backend=backend)(*xs)
    for i, g in enumerate(grads):         # <grad, v> against the directional difference, v random
        for v in onp.random.default_rng(i).standard_normal((3,) + onp.shape(xs[i])):
            want_d = fd_jvp(lambda *a: onp.sum(ref(*a) * w), xs, [i], [v])
            onp.testing.assert_allclose(onp.sum(g * v), want_d, rtol=FD_RTOL, atol=FD_ATOL)



def _top_k_order(x, k):
    """Python's own sort, one row at a time: NaN first, then descending, ties by index."""
    def order(row):
        return sorted(range(len(row)), key=lambda i: (not onp.isnan(row[i]), 0.0 if onp.isnan(row[i]) else -row[i], i))
    rows = x.reshape(-1, x.shape[-1])
    return onp.array([order(row)[:k] for row in rows]).reshape(x.shape[:-1] + (k,))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(7,), (16, 24, 150)])
def test_top_k_and_sort_order_ties_and_nan(shape, backend):
    """top_k's indices are JAX's: equal values keep their order (lower index first) and
    NaN ranks above every number; the gradient goes to exactly the elements taken, once
    each, ties included.  sort of several operands permutes them all by the first
    (stable, NaN last).  Integer-valued data makes ties common; the large shape splits
    over threads."""
    rng = onp.random.default_rng(7)
    x = rng.integers(-4, 5, shape).astype(onp.float64)
    x.reshape(-1)[rng.choice(x.size, max(1, x.size // 20), replace=False)] = onp.nan
    x.reshape(-1)[rng.choice(x.size, max(1, x.size // 20), replace=False)] = -0.0
    k = min(5, shape[-1])
    want = _top_k_order(x, k)
    values, idx = gradc.jit(lambda a: lax.top_k(a, k), backend=backend)(x)
    assert idx.dtype == onp.int32
    onp.testing.assert_array_equal(idx, want)
    onp.testing.assert_array_equal(values, onp.take_along_axis(x, want, -1))
    w = rng.standard_normal(want.shape)
    g = gradc.grad(lambda a: np.sum(np.where(np.isnan(lax.top_k(a, k)[0]), 0.0, lax.top_k(a, k)[0]) * w),
                   backend=backend)(x)
    expect = onp.zeros_like(x)
    onp.put_along_axis(expect, want, onp.where(onp.isnan(onp.take_along_axis(x, want, -1)), 0.0, w), -1)
    onp.testing.assert_array_equal(g, expect)
    labels = rng.standard_normal(shape)
    keys, vals = gradc.jit(lambda a, b: lax.sort((a, b)), backend=backend)(x, labels)
    order = onp.argsort(x, -1, kind="stable")
    onp.testing.assert_array_equal(keys, onp.sort(x, -1, kind="stable"))
    onp.testing.assert_array_equal(vals, onp.take_along_axis(labels, order, -1))


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_top_k_of_integers_and_bools(backend):
    """Integers order by value at the ends of their range (no overflow in the descending
    key); booleans keep their dtype; against Python's sort."""
    x = onp.array([[3, -2**63, 2**63 - 1, 3, 0, -1]], onp.int64)
    values, idx = gradc.jit(lambda a: lax.top_k(a, 4), backend=backend)(x)
    onp.testing.assert_array_equal(idx, [[2, 0, 3, 4]])
    onp.testing.assert_array_equal(values, [[2**63 - 1, 3, 3, 0]])
    b = onp.array([False, True, False, True])
    bv, bi = gradc.jit(lambda a: lax.top_k(a, 3), backend=backend)(b)
    onp.testing.assert_array_equal(bi, [1, 3, 0])
    assert bv.dtype == onp.bool_ and bv.tolist() == [True, True, False]


def test_sorting_ops_bad_arguments_are_clear_errors():
    x = onp.ones((3, 4))
    with pytest.raises(gradc.GradcError, match=r"top_k: k=5 must be between 0 and the size of axis -1 \(4\)"):
        gradc.jit(lambda a: lax.top_k(a, 5))(x)
    with pytest.raises(gradc.GradcError, match="top_k: k must be a Python int"):
        gradc.jit(lambda a, k: lax.top_k(a, k))(x, 2)
    with pytest.raises(gradc.GradcError, match="dimension 2 is out of range for an operand of rank 2"):
        gradc.jit(lambda a: lax.sort(a, 2))(x)
    with pytest.raises(gradc.GradcError, match=r"sort: the operands must have one shape"):
        gradc.jit(lambda a, b: lax.sort((a, b)))(x, onp.ones(4))
    with pytest.raises(gradc.GradcError, match="num_keys=3 must be between 1 and the number of operands"):
        gradc.jit(lambda a: lax.sort((a, a), num_keys=3))(x)

# ----------------------------------------------------------------------------- traced start indices
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("start", [-7, -2, 0, 2, 5])
def test_dynamic_slices_with_traced_starts(start, backend):
    """Traced starts are clamped as JAX clamps them (negative ones counted from the
    end first); the gradient reaches exactly the elements read, and an update's
    gradient is the part of the cotangent it landed on."""
    rng = onp.random.default_rng(3)
    x, u = rng.uniform(-1, 1, (4, 6, 3)), rng.uniform(-1, 1, (2, 3, 3))
    i = onp.array(start)
    w = rng.standard_normal((2, 3, 2))
    sl = gradc.jit(lambda x, i: lax.dynamic_slice(x, (i, i + 1, 1), (2, 3, 2)), backend=backend)(x, i)
    onp.testing.assert_array_equal(sl, _dynamic_slice_np(x, (start, start + 1, 1), (2, 3, 2)))
    g = gradc.grad(lambda x, i: np.sum(lax.dynamic_slice(x, (i, i + 1, 1), (2, 3, 2)) * w), backend=backend)(x, i)
    onp.testing.assert_allclose(g, fd_grad(lambda x: onp.sum(_dynamic_slice_np(x, (start, start + 1, 1), (2, 3, 2))
                                                             * w), [x], 0), rtol=FD_RTOL, atol=FD_ATOL)
    wu = rng.standard_normal(x.shape)
    upd = gradc.jit(lambda x, u, i: lax.dynamic_update_slice(x, u, (i, 2 * i, 0)), backend=backend)(x, u, i)
    onp.testing.assert_array_equal(upd, _dynamic_update_np(x, u, (start, 2 * start, 0)))
    gx, gu = gradc.grad(lambda x, u, i: np.sum(lax.dynamic_update_slice(x, u, (i, 2 * i, 0)) * wu),
                        argnums=(0, 1), backend=backend)(x, u, i)
    ref = lambda x, u: onp.sum(_dynamic_update_np(x, u, (start, 2 * start, 0)) * wu)  # noqa: E731
    onp.testing.assert_allclose(gx, fd_grad(ref, [x, u], 0), rtol=FD_RTOL, atol=FD_ATOL)
    onp.testing.assert_allclose(gu, fd_grad(ref, [x, u], 1), rtol=FD_RTOL, atol=FD_ATOL)
    di = gradc.jit(lambda x, i: lax.dynamic_index_in_dim(x, i, 1, keepdims=False), backend=backend)(x, i)
    onp.testing.assert_array_equal(di, _dynamic_slice_np(x, (0, start, 0), (4, 1, 3))[:, 0])


def test_traced_start_indices_as_one_array():
    x = onp.arange(24.0).reshape(4, 6)
    got = gradc.jit(lambda x, s: lax.dynamic_slice(x, s, (2, 3)))(x, onp.array([3, -2]))
    onp.testing.assert_array_equal(got, _dynamic_slice_np(x, (3, -2), (2, 3)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("strides,padding,n", [((2, 2), "SAME", 8), ((2, 1), "VALID", 9), ((1, 1), "SAME", 6)])
def test_conv_transpose_is_the_adjoint_of_conv(strides, padding, n, backend):
    """conv_transpose with transpose_kernel=True is the adjoint (the gradient map) of the
    forward convolution with the same kernel and padding: <conv(x, w), y> = <x,
    conv_transpose(y, w)>, with conv computed by the numpy loop."""
    rng = onp.random.default_rng(n)
    x, w = rng.uniform(-1, 1, (2, n, n, 3)), rng.uniform(-1, 1, (3, 3, 3, 4))
    fwd = onp.transpose(_conv_np(onp.transpose(x, (0, 3, 1, 2)), onp.transpose(w, (3, 2, 0, 1)), strides, padding),
                        (0, 2, 3, 1))
    y = rng.uniform(-1, 1, fwd.shape)
    t = gradc.jit(lambda y, w: lax.conv_transpose(y, w, strides, padding, transpose_kernel=True), backend=backend)(y, w)
    assert t.shape == x.shape
    onp.testing.assert_allclose(onp.sum(x * t), onp.sum(fwd * y), rtol=1e-12)


# ----------------------------------------------------------------------------- max pooling at ties
@pytest.mark.parametrize("backend", BACKENDS)
def test_max_pool_ties_share_the_gradient(backend):
    """A 2x2 window whose maximum is held by k elements passes 1/k of its cotangent to
    each (gradc's rule for max, docs/derivatives.md)."""
    x = onp.array([[1.0, 1.0, 0.0, 2.0],
                   [1.0, 0.5, 2.0, 2.0],
                   [3.0, 3.0, -1.0, 4.0],
                   [3.0, 3.0, 0.0, 1.0]])[None, :, :, None]
    wy = onp.array([[1.0, 2.0], [3.0, 4.0]])[None, :, :, None]
    g = gradc.grad(lambda x: np.sum(lax.max_pool(x, (2, 2), (2, 2)) * wy), backend=backend)(x)
    want = onp.array([[1 / 3, 1 / 3, 0.0, 2 / 3],
                      [1 / 3, 0.0, 2 / 3, 2 / 3],
                      [3 / 4, 3 / 4, 0.0, 4.0],
                      [3 / 4, 3 / 4, 0.0, 0.0]])
    onp.testing.assert_allclose(g[0, :, :, 0], want, rtol=1e-15)


# ----------------------------------------------------------------------------- errors
def test_bad_arguments_are_clear_errors():
    x, w = onp.ones((1, 2, 5, 5)), onp.ones((3, 2, 3, 3))
    with pytest.raises(gradc.ArgumentError, match="string padding with lhs_dilation"):
        gradc.jit(lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME", lhs_dilation=(2, 2)))(x, w)
    with pytest.raises(gradc.UnsupportedError, match="batch_group_count"):
        gradc.jit(lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME", batch_group_count=2))(x, w)
    with pytest.raises(gradc.ShapeError, match="feature_group_count=2"):
        gradc.jit(lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME", feature_group_count=2))(x, w)
    with pytest.raises(gradc.ArgumentError, match="window_strides: expected 2 values"):
        gradc.jit(lambda x, w: lax.conv(x, w, (1,), "SAME"))(x, w)
    with pytest.raises(gradc.ShapeError, match="does not fit"):
        gradc.jit(lambda x, w: lax.conv(x, w, (1, 1), ((-3, 0), (0, 0))))(x, w)
    with pytest.raises(gradc.ArgumentError, match="padding must be"):
        gradc.jit(lambda x: lax.reduce_window(x, 0.0, lax.add, (2, 2), (1, 1), "FULL"))(x[0, 0])
    with pytest.raises(gradc.ArgumentError, match="start_indices must hold 2"):
        gradc.jit(lambda x: lax.dynamic_slice(x, (1,), (2, 2)))(x[0, 0])
    with pytest.raises(gradc.ArgumentError, match="slice size 6 of axis 0"):
        gradc.jit(lambda x: lax.dynamic_slice(x, (0, 0), (6, 2)))(x[0, 0])
    with pytest.raises(gradc.ArgumentError, match="start index 0 must be an integer"):
        gradc.jit(lambda x, i: lax.dynamic_slice(x, (i, 0), (2, 2)))(x[0, 0], onp.array(1.0))
    with pytest.raises(gradc.ArgumentError, match="interior padding must be >= 0"):
        gradc.jit(lambda x: lax.pad(x, 0.0, [(0, 0, -1), (0, 0, 0)]))(x[0, 0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_integer_div_and_rem_round_toward_zero(backend):
    """jax.lax.div and rem of integers are C's: the quotient rounds toward zero and the
    remainder takes the dividend's sign (numpy's // and % floor instead)."""
    a = onp.array([7, -7, 7, -7, 0, 9, -1])
    b = onp.array([2, 2, -2, -2, 3, 3, 5])
    q = gradc.jit(lax.div, backend=backend)(a, b)
    r = gradc.jit(lax.rem, backend=backend)(a, b)
    assert q.dtype == a.dtype
    onp.testing.assert_array_equal(q, [3, -3, -3, 3, 0, 3, 0])
    onp.testing.assert_array_equal(r, [1, -1, 1, -1, 0, 0, -1])
    onp.testing.assert_array_equal(q * b + r, a)


def test_bad_shapes_are_clear_errors():
    a, b = onp.ones((3, 4)), onp.ones((5, 2))
    with pytest.raises(gradc.ShapeError, match="lhs axis 1 \\(size 4\\) and rhs axis 0 \\(size 5\\)"):
        gradc.jit(lambda a, b: lax.dot_general(a, b, (((1,), (0,)), ((), ()))))(a, b)
    with pytest.raises(gradc.ShapeError, match="operand axis 0 has size 3, result axis 1 size 5"):
        gradc.jit(lambda a: lax.broadcast_in_dim(a, (2, 5, 4), (1, 2)))(a)
    with pytest.raises(gradc.ArgumentError, match="broadcast_dimensions"):
        gradc.jit(lambda a: lax.broadcast_in_dim(a, (3, 4), (1, 0)))(a)
    with pytest.raises(gradc.ShapeError, match="does not fit"):
        gradc.jit(lambda a: lax.reduce_window(a, 0.0, lax.add, (4, 1), (1, 1), "VALID"))(a)
    with pytest.raises(gradc.ArgumentError, match="axis 1 needs 0 <= start <= limit <= 4"):
        gradc.jit(lambda a: lax.slice(a, (0, 1), (2, 6)))(a)
    with pytest.raises(gradc.ArgumentError, match="index 5 is out of bounds"):
        gradc.jit(lambda a: lax.index_in_dim(a, 5, 1))(a)


def test_conv_graph_stays_small():
    """A 3x3 convolution of a batch of 32 x 64 channels x 32x32 images: 9 slices and 9
    contractions forward, so value_and_grad's graph stays near 160 nodes, whatever
    the image size (traced on the numpy backend: nothing is compiled)."""
    x = onp.zeros((32, 64, 32, 32), onp.float32)
    w = onp.zeros((64, 64, 3, 3), onp.float32)
    vg = gradc.value_and_grad(lambda x, w: np.sum(np.tanh(lax.conv_general_dilated(x, w, (1, 1), "SAME"))),
                              argnums=(0, 1), backend="numpy")
    assert vg.lower(x, w).graph.nx.number_of_nodes() < 250


# ----------------------------------------------------------------------------- against JAX
def _jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax


JAX_TABLE = [
    ("conv_same_groups", lambda L: lambda x, w: L.conv_general_dilated(x, w, (1, 1), "SAME", feature_group_count=2),
     [(2, 4, 7, 6), (6, 2, 3, 3)]),
    ("conv_strided_dilated", lambda L: lambda x, w: L.conv_general_dilated(x, w, (2, 1), ((1, 2), (0, -1)),
                                                                          rhs_dilation=(2, 1)),
     [(2, 3, 9, 8), (4, 3, 3, 2)]),
    ("conv_transposed", lambda L: lambda x, w: L.conv_general_dilated(x, w, (1, 2), ((2, 1), (1, 1)),
                                                                     lhs_dilation=(2, 3)), [(2, 2, 4, 5), (3, 2, 3, 3)]),
    ("conv_nhwc", lambda L: lambda x, w: L.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=ND),
     [(2, 6, 5, 3), (3, 2, 3, 4)]),
    ("conv_1d", lambda L: lambda x, w: L.conv_general_dilated(x, w, (2,), "SAME"), [(2, 3, 11), (4, 3, 3)]),
    ("conv_transpose_same", lambda L: lambda x, w: L.conv_transpose(x, w, (2, 2), "SAME"), [(2, 5, 4, 3), (3, 2, 3, 4)]),
    ("conv_transpose_pairs_kernel", lambda L: lambda x, w: L.conv_transpose(x, w, (3, 2), ((1, 2), (0, 1)),
                                                                           rhs_dilation=(1, 2), transpose_kernel=True),
     [(2, 4, 4, 3), (3, 2, 4, 3)]),
    ("reduce_window_max_same", lambda L: lambda x: L.reduce_window(x, -onp.inf, L.max, (1, 3, 3, 1), (1, 2, 2, 1),
                                                                  "SAME"), [(2, 7, 8, 3)]),
    ("reduce_window_add_dilated", lambda L: lambda x: L.reduce_window(x, 0.0, L.add, (2, 3), (1, 2), ((1, 0), (2, 1)),
                                                                     (2, 1), (1, 2)), [(5, 9)]),
    ("pad", lambda L: lambda x: L.pad(x, 0.25, PAD3), [(3, 4, 5)]),
    ("dynamic_update_slice", lambda L: lambda x, u: L.dynamic_update_slice(x, u, (2, -1)), [(5, 6), (2, 3)]),
    ("dot_general", lambda L: lambda a, b: L.dot_general(a, b, (((0,), (2,)), ((2,), (0,)))), [(4, 3, 2), (2, 5, 4)]),
    ("broadcast_in_dim", lambda L: lambda x: L.broadcast_in_dim(x, (2, 3, 4, 5), (1, 3)), [(3, 5)]),
    ("clamp_rsqrt_pow", lambda L: lambda x: L.clamp(-0.3, x, 0.4) + L.rsqrt(x * x + 1) * L.integer_pow(x, -3),
     [(4, 5)]),
    ("slices", lambda L: lambda x: L.slice(x, (0, 1), (3, 6), (2, 2)) + L.slice_in_dim(x[:2], 1, 4, 1, 1),
     [(3, 6)]),
    ("top_k_sort", lambda L: lambda x, y: L.top_k(x, 3, axis=1)[0] * L.sort((x, y), 1)[1][:, :3]
     + L.sort_key_val(y, x, 1)[1][:, 1:4], [(4, 7), (4, 7)]),
    ("cumulative", lambda L: lambda x: L.cummax(x, 1) * L.cummin(x, 0, True) + L.cumlogsumexp(x, 2, True), [(3, 5, 4)]),
    ("associative_scan_matrices", lambda L: lambda a, b: L.associative_scan(
        lambda p, q: (p[0] * q[0], p[1] * q[0] + q[1]), (a, b), reverse=True, axis=1)[1], [(3, 9, 2), (3, 9, 2)]),
    ("reduce", lambda L: lambda x: L.reduce(x, 0.0, L.add, (1,)) * L.reduce(x, -onp.inf, L.max, (1,)), [(4, 5)]),
    ("reduce_generic", lambda L: lambda x: L.reduce(x, 0.0, lambda a, b: a * b + a + b, (1, 2)), [(3, 5, 4)]),
    ("special", lambda L: lambda x: L.lgamma(x * x + 0.5) + L.digamma(x * x + 1) + L.erf_inv(0.9 * x)
     + L.reciprocal(x + 2), [(3, 4)]),
    ("select_n_split_stack", lambda L: lambda x, y: L.select_n(L.convert_element_type(1.5 * x + 1.5, onp.int32),
                                                              x, y, x * y)[:, :2] + L.stack(L.split(y, (2, 2), 1), 2)[..., 1]
     * L.full_like(x[:, :2], 2.0) + L.tile(x[:, :1], (1, 2)), [(3, 4), (3, 4)]),
]


@pytest.mark.parametrize("name,make,shapes", JAX_TABLE, ids=[t[0] for t in JAX_TABLE])
def test_against_jax(name, make, shapes):
    jax = _jax()
    jnp = jax.numpy
    xs = _args(shapes, len(name))
    f, jf = make(lax), make(jax.lax)
    onp.testing.assert_allclose(gradc.jit(f)(*xs), jf(*xs), rtol=1e-12, atol=1e-12)
    w = onp.random.default_rng(2).standard_normal(onp.shape(jf(*xs)))
    arg = tuple(range(len(xs)))
    gs = gradc.grad(lambda *a: np.sum(np.sin(f(*a)) * w), argnums=arg)(*xs)
    js = jax.grad(lambda *a: jnp.sum(jnp.sin(jf(*a)) * w), argnums=arg)(*xs)
    for g, j in zip(gs, js):
        onp.testing.assert_allclose(g, j, rtol=1e-11, atol=1e-12)


def _lenet(L, nn_logsoftmax):
    """conv 5x5 SAME, relu, max pool 2x2, conv 3x3 VALID, relu, max pool 2x2, dense, and
    the mean softmax cross-entropy of integer labels given as one-hot rows."""
    def loss(params, x, onehot):
        w1, b1, w2, b2, w3, b3 = params
        h = L.conv_general_dilated(x, w1, (1, 1), "SAME") + b1[None, :, None, None]
        h = L.reduce_window(L.max(h, 0.0), -onp.inf, L.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
        h = L.conv_general_dilated(h, w2, (1, 1), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW")) \
            + b2[None, :, None, None]
        h = L.reduce_window(L.max(h, 0.0), -onp.inf, L.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
        logits = L.dot_general(L.reshape(h, (h.shape[0], 6 * 3 * 3)), w3, (((1,), (0,)), ((), ()))) + b3
        return -L.reduce_sum(nn_logsoftmax(logits) * onehot, (0, 1)) / x.shape[0]
    return loss


@pytest.mark.parametrize("backend", ["numpy", "llvm"])     # (c compiles each table line above; the
def test_lenet_value_and_grad_matches_jax(backend):           # whole net adds ~25 s of C compile only)
    jax = _jax()
    rng = onp.random.default_rng(0)
    x = rng.standard_normal((4, 1, 16, 16))
    params = [rng.standard_normal((4, 1, 5, 5)) * 0.3, rng.standard_normal(4) * 0.1,
              rng.standard_normal((6, 4, 3, 3)) * 0.3, rng.standard_normal(6) * 0.1,
              rng.standard_normal((6 * 3 * 3, 10)) * 0.2, rng.standard_normal(10) * 0.1]
    onehot = onp.eye(10)[rng.integers(0, 10, 4)]
    v, g = gradc.value_and_grad(_lenet(lax, gradc.nn.log_softmax), backend=backend)(params, x, onehot)
    jv, jg = jax.jit(jax.value_and_grad(_lenet(jax.lax, jax.nn.log_softmax)))(params, x, onehot)
    onp.testing.assert_allclose(v, jv, rtol=1e-12)
    for a, b in zip(g, jg):
        onp.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
