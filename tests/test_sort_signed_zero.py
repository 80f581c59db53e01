"""np.sort's values bit for bit, the sign of zero included, on backends numpy, llvm and
c: the sorted values are a gather of x at its stable argsort (ops/arrays.py
``_by_rank``), so each element's bits are copied; scattering x into zeros by rank made
every -0.0 a +0.0 (0.0 + -0.0 is +0.0).  -0.0 and 0.0 are equal, so they keep their
input order: numpy's ``kind="stable"`` sort (its default quicksort may order equal
values otherwise).  Compared with np.signbit; the gradient against finite differences
and its closed form (the cotangent scattered back through the permutation)."""
from __future__ import annotations

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp

from gradc_helpers import fd_grad

BACKENDS = ["numpy", "llvm", "c"]


def assert_same_bits(got, want):
    got = np.asarray(got)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got.view(f"u{got.itemsize}"), want.view(f"u{want.itemsize}"))


def signed_zeros(shape, dtype, seed):
    """Half -0.0 and half 0.0 in random order, with numbers, ties and NaN among them."""
    r = np.random.default_rng(seed)
    x = np.where(r.random(shape) < 0.5, -0.0, 0.0)
    some = r.random(shape) < 0.3
    x[some] = np.round(r.standard_normal(some.sum()), 1)
    x[r.random(shape) < 0.02] = np.nan
    return x.astype(dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_zeros_keep_their_order(backend):
    """[0.0, -0.0] stays as it is, as np.sort leaves it; longer runs of zeros in the
    stable order (np.sort's default gives [-1, -0, -0, 0, 1] for the last: not stable)."""
    for x in ([0.0, -0.0], [-0.0, 0.0], [1.0, -0.0, 0.0, -1.0, -0.0]):
        x = np.array(x)
        got = gradc.jit(gnp.sort, backend=backend)(x)
        assert_same_bits(got, np.sort(x, kind="stable"))
        np.testing.assert_array_equal(np.signbit(got), np.signbit(x[np.argsort(x, kind="stable")]))
        if len(x) == 2:
            assert_same_bits(got, np.sort(x))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rank3_sort_along_the_middle_axis_is_numpys_stable_sort_bit_for_bit(backend, dtype):
    x = signed_zeros((5, 4001, 3), dtype, 1)
    f = gradc.jit(lambda x: (gnp.sort(x, axis=1), gnp.sort(x, axis=None), gnp.partition(x, 7, axis=1),
                             gnp.median(x[:, :4001:2], axis=1)), backend=backend)
    s, flat, p, m = f(x)
    want = np.sort(x, axis=1, kind="stable")
    assert_same_bits(s, want)
    assert_same_bits(p, want)
    assert_same_bits(flat, np.sort(x, axis=None, kind="stable"))
    np.testing.assert_array_equal(np.signbit(s), np.signbit(want))
    # a median of an odd count is the middle element itself, its sign too (numpy's)
    assert_same_bits(m, np.median(x[:, :4001:2], axis=1))


@pytest.mark.parametrize("backend", BACKENDS)
def test_unique_keeps_the_first_zero(backend):
    """unique's values are the sorted array's first of each group: the first zero in
    the input (numpy's stable sort puts it first)."""
    for x in (np.array([3.0, 0.0, -0.0, 1.0]), np.array([3.0, -0.0, 0.0, 1.0])):
        got = gradc.jit(lambda x: gnp.unique(x, size=3), backend=backend)(x)
        assert_same_bits(got, np.unique(x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_of_a_sort_with_signed_zeros(backend):
    """d/dx sum(w * sort(x)^2 + sort(x)): 2 w x + w, gathered back through the stable
    permutation, against finite differences (the values are distinct away from the
    zeros, so a small step keeps the order)."""
    r = np.random.default_rng(2)
    x = r.standard_normal((3, 40, 2))
    x[:, ::5] = -0.0
    x[:, 2::5] = 0.0
    w = r.standard_normal(x.shape)

    def loss(x, xp):
        s = xp.sort(x, axis=1)
        return xp.sum(w * s * s + w * s)

    g = gradc.grad(lambda x: loss(x, gnp), backend=backend)(x)
    order = np.argsort(x, axis=1, kind="stable")
    closed = np.empty_like(x)
    s = np.take_along_axis(x, order, axis=1)
    np.put_along_axis(closed, order, 2 * w * s + w, axis=1)
    np.testing.assert_allclose(g, closed, rtol=1e-12, atol=1e-12)
    # finite differences away from the zeros (a step there would reorder them)
    keep = x != 0
    fd = fd_grad(lambda x: loss(x, np), [x], 0)
    np.testing.assert_allclose(g[keep], fd[keep], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_top_k_ranks_floats_in_total_order(dtype):
    """lax.top_k ranks as JAX's (IEEE total order): NaN first, then the numbers
    descending with +0.0 above -0.0, -NaN last; equal values by index.  Oracle: a
    stable sort of the total-order integer of each float's bits, in numpy."""
    import gradc.lax as glax
    rng = np.random.default_rng(4)
    x = rng.choice(np.array([0.0, -0.0, 1.0, -1.0, np.nan, -np.nan, np.inf, -np.inf]), size=(40, 33)).astype(dtype)
    it = np.dtype(f"int{np.dtype(dtype).itemsize * 8}")
    bits = x.view(it)
    key = np.where(bits < 0, bits ^ np.iinfo(it).max, bits)
    want = np.argsort(~key, axis=1, kind="stable")[:, :7]
    got = gradc.jit(lambda x: glax.top_k(x, 7)[1])(x)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(glax.top_k(x, 7)[1], want)
    small = np.array([1.0, -np.nan, 0.0, np.nan, -0.0, -np.inf, 0.0, -0.0, np.inf, -3.0], dtype)
    np.testing.assert_array_equal(gradc.jit(lambda x: glax.top_k(x, 10)[1])(small), [3, 8, 0, 2, 6, 4, 7, 9, 5, 1])


def test_eager_sort_and_argsort_are_stable_as_the_traced_ones():
    # outside a trace argsort called numpy's default (unstable) quicksort, and its
    # stable=True was not passed on: ties came out of order (and scipy.stats.rankdata's
    # method='ordinal' with them), unlike the same call under jit
    a = np.random.default_rng(0).integers(0, 3, size=40).astype(float)
    a[::7] = -0.0
    a[1::7] = 0.0
    want = np.argsort(a, kind="stable")
    for kw in [{}, {"stable": True}, {"kind": "quicksort"}]:
        np.testing.assert_array_equal(gnp.argsort(a, **kw), want)
    np.testing.assert_array_equal(gradc.jit(gnp.argsort)(a), want)
    s = gnp.sort(a)
    np.testing.assert_array_equal(np.signbit(s), np.signbit(np.sort(a, kind="stable")))
    from gradc.scipy import stats
    r = stats.rankdata(a, method="ordinal")
    np.testing.assert_array_equal(r, np.argsort(want, kind="stable") + 1.0)
