"""Op sort_rank on backend "c": generated C calls gradc.h's merge sort
(``gradc_sort_rank_f64`` / ``_f32``, O(n log n)), the one runtime/sortrank.c gives the
LLVM backend.  Against numpy's stable sort, argsort and median at 300,000 elements with
ties and NaN (numpy puts it last) and signed zeros, rank 3 sorted along a middle axis
(every row of a batch), float32 and float64, every row length from 0 up (the merge's
passes alternate between two buffers), the ranks bit-identical to backend "llvm"'s, and
gradients against finite differences.  Each test also checks that the merge sort ran
(the schedule's "sort" nest, the call in the C source): the pairwise count it replaces
gives the same answers, only in O(n^2) time."""
from __future__ import annotations

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
from gradc.backends import c_backend, llvm_jit

from gradc_helpers import (FD_ATOL, FD_RTOL, assert_same_bits, assert_sorts_like_numpy, fd_grad, kernel_of,
                           large_sort_input, sort_argsort_median)

try:
    c_backend.compiler()
except c_backend.CompilerError:
    pytest.skip("no C compiler", allow_module_level=True)


def assert_merge_sorted(f, *args, dtype=np.float64):
    """Backend c's kernel for these arguments sorts in a "sort" nest, by a call of
    gradc.h's merge sort, and counts no pairwise comparisons."""
    k = kernel_of(f, *args)
    assert "sort" in [n.kind for n in k.schedule.nests]
    assert not any(k.schedule.graph[n]["op"] == "sort_rank" and nest.kind != "sort"
                   for nest in k.schedule.nests for n in nest.roots)
    name = "gradc_sort_rank_f32(" if dtype == np.float32 else "gradc_sort_rank_f64("
    assert name in f.lower(*args).c_source()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_large_sort_is_numpys(dtype):
    x = large_sort_input(dtype)
    f = gradc.jit(sort_argsort_median, backend="c")
    assert_sorts_like_numpy(x, *f(x))
    assert_merge_sorted(f, x, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rank3_middle_axis_matches_numpy_and_llvm_bit_for_bit(dtype):
    x = np.round(np.random.default_rng(2).standard_normal((7, 301, 13)), 1).astype(dtype)   # many ties
    x[3, ::17, 5] = np.nan
    x[1, :40, 2] = -0.0
    x[1, 20:60, 2] = 0.0
    f = lambda x: (gnp.sort(x, axis=1), gnp.argsort(x, axis=1),  # noqa: E731
                   gnp.percentile(gnp.nan_to_num(x), 30.0, axis=1))
    got = {b: gradc.jit(f, backend=b)(x) for b in ("c", "llvm")}
    s, a, p = got["c"]
    np.testing.assert_array_equal(s, np.sort(x, axis=1))
    np.testing.assert_array_equal(a, np.argsort(x, axis=1, kind="stable"))
    assert_same_bits(np.take_along_axis(x, a, axis=1), np.sort(x, axis=1, kind="stable"))
    np.testing.assert_allclose(p, np.percentile(np.nan_to_num(x), 30.0, axis=1), rtol=1e-6, atol=1e-6)
    for c_out, llvm_out in zip(got["c"], got["llvm"]):
        assert_same_bits(c_out, llvm_out)
    assert_merge_sorted(gradc.jit(f, backend="c"), x, dtype=dtype)


def test_every_row_length_from_zero():
    """Row lengths around powers of two: the passes end in the scratch row whether they
    are even or odd in number (1 and 2 elements: none and one)."""
    f = gradc.jit(lambda x: gnp.argsort(x, axis=-1), backend="c")
    rng = np.random.default_rng(3)
    for n in [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 1023, 1025]:
        x = np.round(rng.standard_normal((3, n)), 1)
        x[:, ::4] = np.nan
        np.testing.assert_array_equal(f(x), np.argsort(x, axis=-1, kind="stable"), err_msg=f"n={n}")
    assert_merge_sorted(f, x)


def test_sizes_vary_at_run_time_with_one_kernel():
    """One kernel for every length (a size symbol): its workspace's scratch row grows."""
    f = gradc.jit(lambda x: gnp.sort(x), backend="c")
    for n in (10, 5000, 3):
        x = np.random.default_rng(n).standard_normal(n)
        np.testing.assert_array_equal(f(x), np.sort(x))
    assert_merge_sorted(f, x)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gradients_through_sort_match_finite_differences(dtype):
    rng = np.random.default_rng(4)
    x = (rng.permutation(3 * 9 * 4).reshape(3, 9, 4) * 0.25 - 13.0 + rng.uniform(-0.05, 0.05, (3, 9, 4)))
    w = rng.standard_normal((3, 9, 4))

    def loss(x, xp=gnp):
        s = xp.sort(x, axis=1)
        return xp.sum(s * w) + xp.sum(xp.median(x, axis=1) ** 2) + xp.sum(xp.max(s, axis=1))

    g = gradc.grad(loss, backend="c")(x.astype(dtype))
    want = fd_grad(lambda x: loss(x, np), [x], 0)
    rtol = 1e-4 if dtype == np.float32 else FD_RTOL
    np.testing.assert_allclose(g, want, rtol=rtol, atol=rtol if dtype == np.float32 else FD_ATOL)
    assert_merge_sorted(gradc.grad(loss, backend="c"), x.astype(dtype), dtype=dtype)


def test_integer_sorts_merge_sort_too():
    """sort_rank of integers takes gradc.h's merge sort as well (its int64 form; every
    integer dtype: test_sort_integers.py), not the pairwise count."""
    x = np.random.default_rng(5).integers(-5, 5, 200)
    f = gradc.jit(lambda x: gnp.argsort(x), backend="c")
    np.testing.assert_array_equal(f(x), np.argsort(x, kind="stable"))
    assert "sort" in [n.kind for n in kernel_of(f, x).schedule.nests]
    assert "gradc_sort_rank_i64(" in f.lower(x).c_source()


@pytest.mark.skipif(not llvm_jit.init().get("native_sort"), reason="the C extension predates runtime/sortrank.c")
def test_llvm_and_c_kernels_take_the_same_scratch_row():
    """Both backends' kernels size the scratch row as schedule.workspace_layout says."""
    from gradc.backends.schedule import workspace_layout
    x = np.random.default_rng(6).standard_normal((4, 1000))
    for backend in ("c", "llvm"):
        f = gradc.jit(lambda x: gnp.sort(x, axis=0), backend=backend)
        np.testing.assert_array_equal(f(x), np.sort(x, axis=0))
        layout = workspace_layout(kernel_of(f, x).schedule)
        scratch = [shape for region in layout for key, shape, dtype in region if isinstance(key, tuple) and key[0] == "sort"]
        assert len(scratch) == 1 and len(scratch[0]) == 1


def test_vmapped_sorts_rank_every_row():
    """vmap's batch rule makes one sort_rank over the stacked rows: the merge sort runs
    once for all of them, each row on its own."""
    x = np.round(np.random.default_rng(7).standard_normal((6, 11, 500)), 1)
    x[2, 3, ::9] = np.nan
    f = gradc.jit(gradc.vmap(lambda r: (gnp.sort(r, axis=0), gnp.argsort(r, axis=-1))), backend="c")
    s, a = f(x)
    np.testing.assert_array_equal(s, np.sort(x, axis=1))
    np.testing.assert_array_equal(a, np.argsort(x, axis=-1, kind="stable"))
    assert_merge_sorted(f, x)
