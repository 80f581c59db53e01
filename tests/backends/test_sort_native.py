"""Op sort_rank on the LLVM backend: gradc.h's merge sort, called through
runtime/sortrank.c (O(n log n); backend c: test_sort_c.py).  Against numpy's stable
sort and argsort at sizes a pairwise count could not reach, with ties, NaN (numpy
puts it last), float32 and float64, along every axis of a rank-3 array, and the
gradient against its closed form (w scattered by the sorting permutation)."""
from __future__ import annotations

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
from gradc.backends import llvm_jit

from gradc_helpers import assert_sorts_like_numpy, large_sort_input, sort_argsort_median

pytestmark = pytest.mark.skipif(not llvm_jit.init().get("native_sort"),
                                reason="the C extension predates runtime/sortrank.c")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_large_sort_is_numpys(dtype):
    x = large_sort_input(dtype)
    f = gradc.jit(sort_argsort_median)
    assert_sorts_like_numpy(x, *f(x))
    assert "sort_ranks(" in f.lower(x).loop_ir()


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_rank3_sorts_along_each_axis_match_numpy_and_backend_c(axis):
    x = np.round(np.random.default_rng(2).standard_normal((17, 33, 65)), 1)     # many ties
    f = lambda x: (gnp.sort(x, axis=axis), gnp.argsort(x, axis=axis))  # noqa: E731
    for backend in ("llvm", "c"):
        s, a = gradc.jit(f, backend=backend)(x)
        np.testing.assert_array_equal(s, np.sort(x, axis=axis))
        np.testing.assert_array_equal(a, np.argsort(x, axis=axis, kind="stable"))


def test_sort_gradient_is_the_permutation():
    x = np.random.default_rng(3).standard_normal((40, 5000))
    w = np.random.default_rng(4).standard_normal((40, 5000))
    g = gradc.grad(lambda x: gnp.sum(gnp.sort(x, axis=1) * w))(x)
    want = np.empty_like(x)
    np.put_along_axis(want, np.argsort(x, axis=1, kind="stable"), w, axis=1)
    np.testing.assert_array_equal(g, want)
