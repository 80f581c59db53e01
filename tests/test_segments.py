"""gradc.ops.segment_sum/max/min/prod and numpy.bincount (gradc/ops/segments.py) against
numpy written per segment, on the native and reference backends, with repeated and
missing ids, at rank 1 and 3, traced ids; gradients against finite differences; and
the ``zeros(n).at[ids]`` idiom they replace."""
from __future__ import annotations

import numpy as onp
import pytest

import gradc
import gradc.numpy as np
from gradc import ops

from gradc_helpers import FD_ATOL, FD_RTOL, fd_grad

pytestmark = pytest.mark.usefixtures("core_backend")
r = onp.random.default_rng(0)
IDS = onp.array([0, 2, 2, 1, 0, 4, 2, 1, 0, 0, 4, 2])       # segment 3 and 5 are empty
IDENTITY = {"segment_sum": 0.0, "segment_max": -onp.inf, "segment_min": onp.inf, "segment_prod": 1.0}
REDUCE = {"segment_sum": onp.sum, "segment_max": onp.max, "segment_min": onp.min, "segment_prod": onp.prod}


def _per_segment(name, data, ids, n):
    out = onp.full((n,) + data.shape[1:], IDENTITY[name])
    for s in range(n):
        if (ids == s).any():
            out[s] = REDUCE[name](data[ids == s], axis=0)
    return out


@pytest.mark.parametrize("shape", [(12,), (12, 3, 2)], ids=["rank1", "rank3"])
@pytest.mark.parametrize("name", list(REDUCE))
def test_segment_reductions(name, shape):
    data = r.standard_normal(shape) + 0.2
    f = getattr(ops, name)
    want = _per_segment(name, data, IDS, 6)
    got = gradc.jit(lambda d, i: f(d, i, num_segments=6))(data, IDS)      # traced ids
    onp.testing.assert_allclose(got, want, rtol=1e-14)
    onp.testing.assert_allclose(f(data, IDS, 6), want, rtol=1e-14)      # concrete: numpy
    w = r.standard_normal(want.shape)
    finite = onp.isfinite(want)
    g = gradc.grad(lambda d: np.sum(np.where(finite, f(d, IDS, num_segments=6), 0.0) * w))(data)
    ref = lambda d: onp.sum(onp.where(finite, _per_segment(name, d, IDS, 6), 0.0) * w)   # noqa: E731
    onp.testing.assert_allclose(g, fd_grad(ref, [data], 0), rtol=FD_RTOL, atol=FD_ATOL)


def test_bincount_and_the_at_idiom():
    x = IDS
    onp.testing.assert_array_equal(gradc.jit(lambda x: np.bincount(x, length=7))(x), onp.bincount(x, minlength=7))
    wts = r.standard_normal(12)
    onp.testing.assert_allclose(gradc.jit(lambda x, w: np.bincount(x, weights=w, length=5))(x, wts),
                                onp.bincount(x, wts), rtol=1e-14)
    # JAX's idiom: zeros(n).at[ids].add(v), with zeros made inside the trace
    got = gradc.jit(lambda i, v: np.zeros(6).at[i].add(v))(x, wts)
    onp.testing.assert_allclose(got, ops.segment_sum(wts, x, 6), rtol=1e-14)
    # numpy's idiom still works on the same arrays: written in place while tracing
    def masked(v):
        mask = np.zeros(12)
        mask[::2] = 1.0
        return v * mask
    onp.testing.assert_allclose(gradc.jit(masked)(wts), wts * (onp.arange(12) % 2 == 0))
    with pytest.raises(gradc.ArgumentError, match="length="):
        gradc.jit(lambda x: np.bincount(x))(x)
    with pytest.raises(gradc.ArgumentError, match="num_segments is needed"):
        gradc.jit(lambda d, i: ops.segment_max(d, i))(wts, x)


def test_ids_outside_the_segments_are_dropped_as_jax_does():
    """Padding edges point past the last segment (or below 0): their rows count nowhere."""
    data = r.standard_normal((6, 2))
    ids = onp.array([0, 1, 5, 1, -1, 2])         # 5 and -1: outside [0, 3)
    keep = (ids >= 0) & (ids < 3)
    for name in REDUCE:
        want = _per_segment(name, data[keep], ids[keep], 3)
        f = getattr(ops, name)
        onp.testing.assert_allclose(gradc.jit(lambda d, i: f(d, i, num_segments=3))(data, ids), want, rtol=1e-14)
        onp.testing.assert_allclose(f(data, ids, 3), want, rtol=1e-14)
    g = gradc.grad(lambda d: np.sum(ops.segment_sum(d, ids, num_segments=3) ** 2))(data)
    onp.testing.assert_allclose(g[~keep], 0.0)


def test_jax_options_are_accepted_or_refused_never_ignored():
    data, ids = onp.arange(6.0).reshape(3, 2), onp.array([0, 1, 5])
    got = gradc.jit(lambda d: ops.segment_sum(d, ids, 2, mode="drop", bucket_size=4))(data)
    onp.testing.assert_array_equal(got, [[0.0, 1.0], [2.0, 3.0]])
    with pytest.raises(gradc.UnsupportedError, match="mode='clip'"):
        gradc.jit(lambda d: ops.segment_max(d, ids, 2, mode="clip"))(data)
    with pytest.raises(TypeError, match="unexpected keyword"):
        ops.segment_sum(data, ids, 2, sorted=True)
