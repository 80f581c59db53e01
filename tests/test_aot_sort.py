"""``gradc build`` of a model that sorts: the library's kernels call gradc.h's merge
sort (its own hidden ``gradc_sort_rank``, aot.SORT_RANK_SOURCE) with a scratch row of
the caller's workspace, O(n log n), where the pairwise count would take O(n^2).  At
300,000 elements with ties and NaN, value and gradient against the numpy backend (whose
ranks come from numpy's stable argsort) and the value against numpy itself; integers
(int64 with its extremes, uint64 above 2^63) against numpy's stable sort."""
from __future__ import annotations

import shutil
import subprocess
import textwrap

import numpy as np
import pytest

import gradc
from gradc import aot, cli
from gradc.backends.llvm_codegen import workspace_bytes
from gradc.backends.schedule import schedule, workspace_layout
from test_aot import Library

pytestmark = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")

MODEL = textwrap.dedent("""\
    import gradc.numpy as gnp


    def ranked(x, w):                       # weights on the sorted values and squared magnitudes
        s, t = gnp.sort(x), gnp.sort(gnp.abs(x))
        return gnp.sum(gnp.where(gnp.isnan(s), 0.0, s) * w) + gnp.sum(gnp.where(gnp.isnan(t), 0.0, t) ** 2 * w)
    """)


def numpy_ranked(x, w):
    s, t = np.sort(x), np.sort(np.abs(x))
    return np.sum(np.where(np.isnan(s), 0.0, s) * w) + np.sum(np.where(np.isnan(t), 0.0, t) ** 2 * w)


@pytest.fixture(scope="module")
def ranked_lib(tmp_path_factory):
    out = tmp_path_factory.mktemp("sort")
    (out / "ranked.py").write_text(MODEL)
    assert cli.main(["build", f"{out / 'ranked.py'}:ranked", "f64[n]", "f64[n]", "-o", str(out)]) == 0
    assert "double[n]" in (out / "ranked.h").read_text()          # one library for every n
    ns = {}
    exec(compile(MODEL, str(out / "ranked.py"), "exec"), ns)
    return out, Library(out / "libranked.so", "ranked"), ns["ranked"]


def test_a_library_sorts_300000_elements_like_numpy(ranked_lib):
    _, lib, ranked = ranked_lib
    r = np.random.default_rng(8)
    n = 300_000
    x, w = r.standard_normal(n), r.standard_normal(n)
    x[::4] = x[2::4]                                  # ties
    x[[5, 1000, n - 1]] = np.nan
    rc, (v,) = lib("forward", [x, w], [()], [n])
    assert rc == 0
    np.testing.assert_allclose(v, numpy_ranked(x, w), rtol=1e-10)
    rc, (v, dx) = lib("value_and_grad", [x, w], [(), (n,)], [n])
    assert rc == 0
    want_v, want_dx = gradc.value_and_grad(ranked, backend="numpy")(x, w)
    np.testing.assert_allclose(v, want_v, rtol=1e-10)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=1e-12)
    # each sorted value's weight goes back through its sort's permutation
    closed = np.zeros(n)
    for order, scale in ((np.argsort(x, kind="stable"), 1.0), (np.argsort(np.abs(x), kind="stable"), 2.0 * x)):
        scale = np.broadcast_to(scale, (n,))
        closed[order] += np.where(np.isnan(x[order]), 0.0, w * scale[order])
    ok = ~np.isnan(x)           # (at NaN, abs's derivative sign(NaN) times 0 is NaN, as numpy's)
    np.testing.assert_allclose(dx[ok], closed[ok], rtol=1e-12, atol=1e-12)


def test_the_library_merge_sorts_in_its_workspace(ranked_lib):
    out, lib, ranked = ranked_lib
    fwd, vg = aot.trace_entries(ranked, ["f64[n]", "f64[n]"])
    for entry, g in (("forward", fwd), ("value_and_grad", vg)):
        s = schedule(g, native_sort=True)               # as aot.build schedules it
        assert "sort" in [nest.kind for nest in s.nests]
        for n in (0, 1, 1000):
            assert lib.workspace_bytes(entry, [n]) == workspace_bytes(s, {"n": n})
        assert any(isinstance(key, tuple) and key[0] == "sort" for region in workspace_layout(s) for key, _, _ in region)
    if shutil.which("nm"):
        lib_path = str(out / "libranked.so")
        defined = subprocess.run(["nm", "--defined-only", lib_path], capture_output=True, text=True).stdout
        exported = subprocess.run(["nm", "-D", "--defined-only", lib_path], capture_output=True, text=True).stdout
        assert "gradc_sort_rank" in defined and "gradc_sort_rank" not in exported


def test_small_sizes(ranked_lib):
    _, lib, ranked = ranked_lib
    r = np.random.default_rng(9)
    for n in (1, 2, 3, 5, 8, 9, 17):
        x, w = np.round(r.standard_normal(n), 1), r.standard_normal(n)
        rc, (v, dx) = lib("value_and_grad", [x, w], [(), (n,)], [n])
        want_v, want_dx = gradc.value_and_grad(ranked, backend="numpy")(x, w)
        assert rc == 0
        np.testing.assert_allclose(v, want_v, rtol=1e-12)
        np.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=1e-12)


# integers: the library's gradc_sort_rank merge sorts them too (gradc.h's _i64, _u64):
# the gradient with respect to each weight vector is the sorted values themselves
INT_MODEL = textwrap.dedent("""\
    import numpy as np
    import gradc.numpy as gnp


    def int_ranked(w1, w2, w3, k):          # sorted int64, its argsort, k's bits as uint64 sorted
        return (gnp.sum(w1 * gnp.astype(gnp.sort(k), np.float64))
                + gnp.sum(w2 * gnp.astype(gnp.argsort(k), np.float64))
                + gnp.sum(w3 * gnp.astype(gnp.sort(gnp.astype(k, np.uint64)), np.float64)))
    """)


def int_ranked():
    ns = {}
    exec(INT_MODEL, ns)
    return ns["int_ranked"]


def test_a_library_merge_sorts_300000_integers_like_numpy(tmp_path):
    """int64 with ties and its extremes, and the same bits as uint64 (the negative ones
    above 2^63, which must sort last): each sorted array, as float64, is the gradient
    with respect to its weights; argsort's indices are exact in float64."""
    (tmp_path / "int_ranked.py").write_text(INT_MODEL)
    assert cli.main(["build", f"{tmp_path / 'int_ranked.py'}:int_ranked", "f64[n]", "f64[n]", "f64[n]", "i64[n]",
                     "--wrt", "0,1,2", "-o", str(tmp_path)]) == 0
    lib = Library(tmp_path / "libint_ranked.so", "int_ranked")
    r = np.random.default_rng(10)
    n = 300_000
    k = r.integers(-50, 50, n)
    k[r.choice(n, 3000, replace=False)] = np.iinfo(np.int64).min
    k[r.choice(n, 3000, replace=False)] = np.iinfo(np.int64).max
    w1, w2, w3 = r.standard_normal((3, n))
    rc, (v, d1, d2, d3) = lib("value_and_grad", [w1, w2, w3, k], [(), (n,), (n,), (n,)], [n])
    assert rc == 0
    np.testing.assert_array_equal(d1, np.sort(k).astype(np.float64))
    np.testing.assert_array_equal(d2, np.argsort(k, kind="stable").astype(np.float64))
    np.testing.assert_array_equal(d3, np.sort(k.view(np.uint64)).astype(np.float64))
    assert d3[-1] > 2.0**63 and d3[0] == 0.0 and d1[0] < -2.0**62
    np.testing.assert_allclose(v, gradc.jit(int_ranked(), backend="numpy")(w1, w2, w3, k), rtol=1e-12)
    fwd, _ = aot.trace_entries(int_ranked(), ["f64[n]", "f64[n]", "f64[n]", "i64[n]"], wrt=(0, 1, 2))
    s = schedule(fwd, native_sort=True)               # as aot.build schedules it
    assert [nest.kind for nest in s.nests].count("sort") == 2          # k (its argsort shares it), and as uint64
