"""Op sort_rank of integers on the native backends: gradc.h's merge sort
(``gradc_sort_rank_i8`` ... ``_u64``; LLVM code calls it through runtime/sortrank.c),
O(n log n) as for floats, where the pairwise count it replaces took O(n^2).  Against
numpy's stable sort and argsort at 300,000 elements of every integer dtype with many
ties and the dtype's extremes (int64's min and max, uint64 above 2^63, which must
compare as unsigned), rank 3 along a middle axis, unique, partition and median of
integers, the ranks identical between backends "llvm" and "c", and a 300,000-element
int64 sort in well under a second.  Each test also checks that the merge sort ran (the
schedule's "sort" nest, the typed call in the C source)."""
from __future__ import annotations

import time

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
from gradc.backends import c_backend, llvm_jit
from gradc.backends.schedule import sort_kinds

from gradc_helpers import kernel_of

try:
    c_backend.compiler()
except c_backend.CompilerError:
    pytest.skip("no C compiler", allow_module_level=True)

INTS = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
SUFFIX = {np.int8: "i8", np.int16: "i16", np.int32: "i32", np.int64: "i64",
          np.uint8: "u8", np.uint16: "u16", np.uint32: "u32", np.uint64: "u64"}
# the LLVM backend merge sorts integers when its C extension's gradc_sort_rank has them
llvm_ints = "i" in sort_kinds(llvm_jit.init().get("native_sort"))
BACKENDS = ["c"] + (["llvm"] if llvm_ints else [])


def extreme_ints(dtype, shape, seed):
    """Values of ``dtype`` with many ties (a few dozen distinct small values) and the
    dtype's extremes: its min and max, and for uint64 values above 2^63 (negative as
    int64: a signed comparison would sort them first)."""
    r = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    x = r.integers(max(int(info.min), -20), 20, shape).astype(dtype)
    flat = x.reshape(-1)
    pick = lambda k: r.choice(flat.size, k, replace=False)   # noqa: E731
    flat[pick(flat.size // 50)] = info.min
    flat[pick(flat.size // 50)] = info.max
    flat[pick(flat.size // 50)] = info.max - 1
    if dtype == np.uint64:
        flat[pick(flat.size // 50)] = np.uint64(2**63)
        flat[pick(flat.size // 50)] = np.uint64(2**63 + 12345)
    elif info.min < 0:
        flat[pick(flat.size // 50)] = info.min + 1
    return x


def assert_merge_sorted(f, *args, dtypes):
    """The kernel for these arguments sorts in "sort" nests only (no pairwise count);
    on backend c by gradc.h's typed merge sort for each dtype."""
    k = kernel_of(f, *args)
    assert "sort" in [n.kind for n in k.schedule.nests]
    assert not any(k.schedule.graph[n]["op"] == "sort_rank" and nest.kind != "sort"
                   for nest in k.schedule.nests for n in nest.roots)
    if f.backend == "c":
        src = f.lower(*args).c_source()
        for dt in dtypes:
            assert f"gradc_sort_rank_{SUFFIX[dt]}(" in src
    else:
        assert "sort_ranks(" in f.lower(*args).loop_ir()


def test_every_integer_dtype_sorts_300000_elements_like_numpy():
    xs = [extreme_ints(dt, 300_000, seed) for seed, dt in enumerate(INTS)]
    f = lambda *xs: tuple(v for x in xs for v in (gnp.sort(x), gnp.argsort(x)))  # noqa: E731
    got = {}
    for backend in BACKENDS:
        g = gradc.jit(f, backend=backend)
        out = g(*xs)
        for k, x in enumerate(xs):
            s, a = out[2 * k], out[2 * k + 1]
            assert s.dtype == x.dtype and a.dtype == np.int64
            np.testing.assert_array_equal(s, np.sort(x), err_msg=f"{backend} {x.dtype}")
            np.testing.assert_array_equal(a, np.argsort(x, kind="stable"), err_msg=f"{backend} {x.dtype}")
        assert_merge_sorted(g, *xs, dtypes=INTS)
        got[backend] = out
    if len(got) == 2:      # the one merge sort: the same ranks on both backends
        for u, v in zip(got["c"], got["llvm"]):
            np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("dtype", [np.int64, np.uint64, np.int8, np.uint16])
def test_rank3_along_the_middle_axis(dtype):
    x = extreme_ints(dtype, (7, 3001, 5), 11)
    f = lambda x: (gnp.sort(x, axis=1), gnp.argsort(x, axis=1), gnp.partition(x, 100, axis=1))  # noqa: E731
    for backend in BACKENDS:
        g = gradc.jit(f, backend=backend)
        s, a, p = g(x)
        np.testing.assert_array_equal(s, np.sort(x, axis=1))
        np.testing.assert_array_equal(a, np.argsort(x, axis=1, kind="stable"))
        np.testing.assert_array_equal(p, np.sort(x, axis=1))          # gradc's partition sorts fully
        assert_merge_sorted(g, x, dtypes=[dtype])


def test_unique_and_median_of_integers():
    """unique orders by argsort (integers: the merge sort); median and percentile of
    integers are numpy's float64 ones (they sort the values as float64)."""
    x = extreme_ints(np.int64, (40, 2500), 12)
    x[:, ::3] = np.random.default_rng(13).integers(-3, 3, (40, 834))
    y = extreme_ints(np.uint64, 10_000, 14)
    f = lambda x, y: (gnp.unique(x, size=48, fill_value=0), gnp.unique(y, size=48, fill_value=0),  # noqa: E731
                      gnp.median(x, axis=0), gnp.percentile(x % 1000, 30.0, axis=1))
    want_u, want_v = np.unique(x), np.unique(y)
    assert want_u.size <= 48 and want_v.size <= 48
    for backend in BACKENDS:
        g = gradc.jit(f, backend=backend)
        u, v, m, p = g(x, y)
        np.testing.assert_array_equal(u[:want_u.size], want_u)
        np.testing.assert_array_equal(v[:want_v.size], want_v)
        np.testing.assert_array_equal(m, np.median(x, axis=0))
        np.testing.assert_allclose(p, np.percentile(x % 1000, 30.0, axis=1), rtol=1e-15)
        assert_merge_sorted(g, x, y, dtypes=[np.int64, np.uint64])


def test_an_int64_sort_of_300000_elements_takes_well_under_a_second():
    """The pairwise count took 300,000^2 = 9e10 comparisons (minutes); the merge sort
    about 300,000 * 19.  Timed after compiling, best of three."""
    x = np.random.default_rng(15).integers(-1000, 1000, 300_000)
    for backend in BACKENDS:
        f = gradc.jit(lambda x: (gnp.sort(x), gnp.argsort(x)), backend=backend)
        s, a = f(x)
        np.testing.assert_array_equal(s, np.sort(x))
        np.testing.assert_array_equal(a, np.argsort(x, kind="stable"))
        best = np.inf
        for _ in range(3):
            start = time.perf_counter()
            f(x)
            best = min(best, time.perf_counter() - start)
        assert best < 0.5, f"{backend}: {best:.3f} s"


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 8, 9, 17, 64, 65])
def test_every_short_row_length(n):
    """The merge's passes alternate between two buffers; every row length ends right."""
    x = extreme_ints(np.int32, (3, n), 16) if n else np.zeros((3, 0), np.int32)
    for backend in BACKENDS:
        a = gradc.jit(lambda x: gnp.argsort(x, axis=1), backend=backend)(x)
        np.testing.assert_array_equal(a, np.argsort(x, axis=1, kind="stable"))


def test_bool_sorts_as_numpy():
    """sort and argsort of bool go through int8; op sort_rank of bool itself ranks its
    bytes as uint8."""
    from gradc.tracer import bind
    x = np.random.default_rng(17).random((4, 5000)) < 0.3
    for backend in BACKENDS:
        s, a = gradc.jit(lambda x: (gnp.sort(x, axis=1), gnp.argsort(x, axis=1)), backend=backend)(x)
        np.testing.assert_array_equal(s, np.sort(x, axis=1))
        np.testing.assert_array_equal(a, np.argsort(x, axis=1, kind="stable"))
        f = gradc.jit(lambda x: bind("sort_rank", x), backend=backend)
        want = np.empty(x.shape, np.int64)
        np.put_along_axis(want, np.argsort(x, axis=1, kind="stable"), np.arange(x.shape[1]), axis=1)
        np.testing.assert_array_equal(f(x), want)
        assert "sort" in [n.kind for n in kernel_of(f, x).schedule.nests]


def test_a_runtime_without_the_integer_merge_sort_counts_pairs():
    """native_sort is the dtype kinds the renderer merge sorts: True (generated C,
    ahead-of-time libraries) all of them, "f" (the JIT with a C extension built before
    sort_rank_kinds) floats only: integers there are ranked by the pairwise count, whose
    ranks (evaluated by numpy) are the merge sort's."""
    from gradc.backends.schedule import decompose, schedule
    from gradc.evaluate import evaluate
    assert sort_kinds(True) == "fiub" and sort_kinds(False) == "" and sort_kinds("f") == "f"
    x = extreme_ints(np.uint64, (3, 400), 18)
    f = gradc.jit(lambda x: gnp.argsort(x, axis=1), backend="c")
    g = f.lower(x).graph
    kinds = lambda ns: [n.kind for n in schedule(g, native_sort=ns).nests]  # noqa: E731
    assert "sort" in kinds(True) and "sort" not in kinds("f") and "sort" not in kinds(False)
    pairwise = decompose(g, native_sort="f")
    assert not any(pairwise[n]["op"] == "sort_rank" for n in pairwise.nx.nodes)
    (got,) = evaluate(pairwise, [x])
    np.testing.assert_array_equal(got, np.argsort(x, axis=1, kind="stable"))
    np.testing.assert_array_equal(f(x), got)
