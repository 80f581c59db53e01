"""backend="c" (generated C99 compiled by the system C compiler) against the numpy
reference and the LLVM backend: a table of ops and the benchmark models, value and
gradient, float64 and float32, sizes 0, 1, 7, 8, 9 and 33.

Tolerances
----------
The three backends compute the same graph; they differ only in

* summation order: numpy sums pairwise, LLVM and the C compiler split register sums
  into vector lanes (reassociation on accumulators only).  Any order of n terms is
  within ``n * eps * sum|terms|`` of the exact sum; here n <= 33*33 terms of size O(1)
  (inputs are O(1) and every model is well scaled), so ``~1e3 * 2.2e-16 ~ 2.5e-13``
  relative to the data's scale, usually far less;
* transcendental functions: glibc's libm (C, numpy) is within 1 ulp, gradc's vectorized
  LLVM functions within a few ulps; the models' condition numbers on these inputs are
  O(1-10), so ~1e-14.

Both stay two orders of magnitude below ``F64_TOL = 1e-12`` times the magnitude of the
result (the largest absolute value of the output array, at least 1: results of O(1)
data are compared in absolute terms near zero, where a relative error means nothing).
float32: the same arguments with eps = 1.2e-7 give ~1e-6 to ~1e-5 (numpy's float32 sums
are pairwise, ours sequential per lane); ``F32_TOL = 3e-5``.
NaN must appear in the same places (a mean over zero rows is NaN everywhere).
"""
from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
from gradc.backends import c_backend
from gradc.backends.c_backend import CompilerError, c_source

F64_TOL = 1e-12
F32_TOL = 3e-5
SIZES = (0, 1, 7, 8, 9, 33)
BACKENDS = ("numpy", "llvm", "c")

pytestmark = pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")),
                                reason="no C compiler")


# ----------------------------------------------------------------------------- comparison
def assert_agree(got, ref, dtype, what):
    if np.asarray(ref).dtype.kind in "iub":      # integers and bools: exactly
        np.testing.assert_array_equal(np.asarray(got), np.asarray(ref), err_msg=what)
        return
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != {ref.shape}"
    nan_g, nan_r = np.isnan(got), np.isnan(ref)
    assert (nan_g == nan_r).all(), f"{what}: NaN in different places\n{got}\n{ref}"
    fin = ref[np.isfinite(ref)]
    scale = max(1.0, float(np.max(np.abs(fin), initial=0.0)))
    tol = (F64_TOL if np.dtype(dtype) == np.float64 else F32_TOL) * scale
    ok = ~nan_r
    inf = np.isinf(ref) & ok
    assert (got[inf] == ref[inf]).all(), f"{what}: infinities differ\n{got}\n{ref}"
    err = np.abs(got[ok & ~inf] - ref[ok & ~inf])
    assert err.size == 0 or err.max() <= tol, f"{what}: max error {err.max():.3g} > {tol:.3g}\n{got}\n{ref}"


def flat(result):
    if isinstance(result, tuple):
        out = []
        for r in result:
            out += flat(r)
        return out
    return [result]


def outcome(fn, args):
    """The flattened results, or the exception type raised."""
    try:
        return flat(fn(*args))
    except Exception as e:    # noqa: BLE001  (every backend must raise the same)
        return type(e)


def check_backends(make, kind, argnums, args, dtype, what):
    """Run ``kind(f)`` on every backend (twice: the slow path, then the C fast path)."""
    results = {}
    for be in BACKENDS:
        t = getattr(gradc, kind)(make(), **({"argnums": argnums} if kind != "jit" else {}), backend=be)
        first = outcome(t, args)
        again = outcome(t, args)
        if isinstance(first, list) and isinstance(again, list):
            for a, b in zip(first, again):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=f"{what} {be}: calls differ")
        else:
            assert first == again, f"{what} {be}: {first} then {again}"
        results[be] = first
    ref = results["numpy"]
    for be in ("llvm", "c"):
        got = results[be]
        if not isinstance(ref, list):
            assert got == ref, f"{what}: {be} gave {got}, numpy raised {ref}"
            continue
        assert isinstance(got, list), f"{what}: {be} raised {got.__name__}"
        assert len(got) == len(ref)
        for k, (g, r) in enumerate(zip(got, ref)):
            assert np.asarray(g).dtype == np.asarray(r).dtype, f"{what} {be} out {k}: dtype"
            assert_agree(g, r, dtype, f"{what} {be} out {k}")
    # and the two native backends against each other
    if isinstance(ref, list):
        for k, (g, r) in enumerate(zip(results["c"], results["llvm"])):
            assert_agree(g, r, dtype, f"{what} c vs llvm out {k}")


# ----------------------------------------------------------------------------- models
# The benchmark's models M1-M4 (one definition, shared with `gradc bench`); M5 is written
# here through log_softmax instead of logsumexp, so both formulations are covered.
from gradc.bench_models import m1_gradc as m1, m2_gradc as m2, m3_gradc as m3, m4_gradc as m4  # noqa: E402


def m5(W, X, labels):
    lp = gnp.log_softmax(X @ W, axis=1)
    return -gnp.mean(gnp.take_along_axis(lp, gnp.reshape(labels, (-1, 1)), axis=1))


def model_args(name, n, dtype, r):
    f = lambda *s: r.standard_normal(s).astype(dtype)   # noqa: E731
    d = h = n
    k = max(n, 1)       # classes (M5: at least one; see EMPTY_LOGSUMEXP)
    if name == "M1":
        return (f(n),), 0
    if name == "M2":
        return (f(d), dtype(0.1), f(n, d), f(n)), (0, 1)
    if name == "M3":
        return (f(d), dtype(0.1), f(n, d), np.sign(f(n)) + (f(n) == 0)), (0, 1)
    if name == "M4":
        return (f(d, h), f(h), f(h, k), f(k), f(n, d), f(n, k)), (0, 1, 2, 3)
    labels = (np.arange(n) * 5 % max(k, 1)).astype(np.int64)
    return (f(d, k), f(n, d), labels), 0


MODELS = {"M1": m1, "M2": m2, "M3": m3, "M4": m4, "M5": m5}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_three_backends_agree(name, dtype):
    r = np.random.default_rng(1)
    for n in SIZES:
        args, argnums = model_args(name, n, dtype, r)
        check_backends(lambda: MODELS[name], "value_and_grad", argnums, args, dtype, f"{name} n={n}")


# ----------------------------------------------------------------------------- ops
def normal(r, *s):
    return r.standard_normal(s)


def positive(r, *s):
    return r.uniform(0.5, 2.0, s)


def away(r, *s):
    return r.choice([-1.0, 1.0], size=s) * r.uniform(0.2, 2.0, s)


V, M = "v", "m"     # argument kinds: a vector [n], a matrix [n,n]


def _shape(kind, n):
    return (n,) if kind == V else (n, n) if kind == M else ()


def diagonal(X):
    """X[i, i] by take_along_axis (a gather; its adjoint is a scatter-add)."""
    return gnp.take_along_axis(X, gnp.reshape(gradc.arange_like(X, 0), (-1, 1)), axis=1)


# (name, function, [(kind, domain)])
OPS = [
    ("neg", lambda x: gnp.sum(-x), [(V, normal)]),
    ("exp", lambda x: gnp.sum(gnp.exp(x)), [(V, normal)]),
    ("log", lambda x: gnp.sum(gnp.log(x)), [(V, positive)]),
    ("log1p", lambda x: gnp.sum(gnp.log1p(x)), [(V, positive)]),
    ("expm1", lambda x: gnp.sum(gnp.expm1(x)), [(V, normal)]),
    ("sqrt", lambda x: gnp.sum(gnp.sqrt(x)), [(V, positive)]),
    ("abs", lambda x: gnp.sum(gnp.abs(x)), [(V, away)]),
    ("sign", lambda x: gnp.sum(gnp.sign(x) * x), [(V, away)]),
    ("sin_cos", lambda x: gnp.sum(gnp.sin(x) * gnp.cos(x)), [(V, normal)]),
    ("tanh", lambda x: gnp.sum(gnp.tanh(x)), [(V, normal)]),
    ("sigmoid", lambda x: gnp.sum(gnp.sigmoid(x * 10)), [(V, normal)]),
    ("softplus", lambda x: gnp.sum(gnp.softplus(x * 10)), [(V, normal)]),
    ("relu", lambda x: gnp.sum(gnp.relu(x) * x), [(V, away)]),
    ("square", lambda x: gnp.sum(gnp.square(x)), [(V, normal)]),
    ("add_sub_mul", lambda x, y: gnp.sum((x + y) * (x - y) * 3.0), [(V, normal), (V, normal)]),
    ("div", lambda x, y: gnp.sum(x / y), [(V, normal), (V, positive)]),
    ("pow", lambda x, y: gnp.sum(x ** y), [(V, positive), (V, normal)]),
    ("pow3", lambda x: gnp.sum(x ** 3 + x ** -1.5), [(V, positive)]),
    ("maximum_minimum", lambda x, y: gnp.sum(gnp.maximum(x, y) - 2 * gnp.minimum(x, y)), [(V, normal), (V, normal)]),
    ("where_compare", lambda x, y: gnp.sum(gnp.where((x > y) & (x != 0), x * y, -x)), [(V, normal), (V, normal)]),
    ("clip", lambda x: gnp.sum(gnp.clip(x, -0.5, 0.5) * x), [(V, away)]),
    ("broadcast", lambda X, b, c: gnp.sum((X + b) * c), [(M, normal), (V, normal), ((), normal)]),
    ("sum_axes", lambda X: gnp.sum(gnp.sum(X, axis=0) ** 2) + gnp.sum(gnp.sum(X, axis=1, keepdims=True) * X),
     [(M, normal)]),
    ("max_min", lambda X: gnp.sum(gnp.max(X, axis=1)) + gnp.sum(gnp.min(X, axis=0)), [(M, normal)]),
    ("mean", lambda X: gnp.mean(X * X) + gnp.sum(gnp.mean(X, axis=0)), [(M, normal)]),
    ("logsumexp", lambda X: gnp.sum(gnp.logsumexp(X * 5, axis=1)), [(M, normal)]),
    ("softmax", lambda X, Y: gnp.sum(gnp.softmax(X, axis=0) * Y), [(M, normal), (M, normal)]),
    ("matvec", lambda X, w: gnp.sum(gnp.tanh(X @ w)), [(M, normal), (V, normal)]),
    ("vecmat", lambda w, X: gnp.sum(gnp.tanh(w @ X)), [(V, normal), (M, normal)]),
    ("dot", lambda w, v: gnp.dot(w, v) ** 2, [(V, normal), (V, normal)]),
    ("matmul", lambda X, Y: gnp.sum(gnp.tanh(X @ Y) * Y), [(M, normal), (M, normal)]),
    ("transpose_matmul", lambda X, Y: gnp.sum((X.T @ Y) ** 2), [(M, normal), (M, normal)]),
    ("outer", lambda w, v: gnp.sum(gnp.outer(w, v) * gnp.outer(v, w)), [(V, normal), (V, normal)]),
    ("reshape", lambda X: gnp.sum(gnp.reshape(X, (-1,)) * gnp.reshape(X.T, (-1,))), [(M, normal)]),
    ("slices", lambda x: gnp.sum(x[1:] * 2) + gnp.sum(x[::2] ** 2) + gnp.sum(x[:-1] * x[1:]), [(V, normal)]),
    ("concatenate", lambda x, y: gnp.sum(gnp.concatenate([x, y * 2, x]) ** 2), [(V, normal), (V, normal)]),
    ("stack", lambda x, y: gnp.sum(gnp.stack([x, y], axis=1) ** 3), [(V, normal), (V, normal)]),
    ("take_along_axis", lambda X: gnp.sum(diagonal(X) ** 2), [(M, normal)]),
    ("stop_gradient", lambda x: gnp.sum(x * gnp.stop_gradient(x)), [(V, normal)]),
    ("astype", lambda x: gnp.sum(gnp.astype(x, np.float32) * 2).astype(np.float64) + gnp.sum(x), [(V, normal)]),
    # numpy's wider surface, composed from the primitives (gradc/ops/mathfuncs, stats, arrays)
    ("logaddexp", lambda x, y: gnp.sum(gnp.logaddexp(3 * x, y) + gnp.logaddexp2(x, 2 * y)), [(V, normal), (V, normal)]),
    ("hyperbolic", lambda x: gnp.sum(gnp.sinh(3 * x) + gnp.cosh(x) + gnp.arcsinh(5 * x) + gnp.arctanh(x / 3)),
     [(V, normal)]),
    ("inverse_trig", lambda x, y: gnp.sum(gnp.arctan(3 * x) + gnp.arcsin(x / 3) + gnp.arccos(x / 3) + gnp.arctan2(x, y)),
     [(V, normal), (V, away)]),
    ("tan_logs", lambda x: gnp.sum(gnp.tan(x / 3) + gnp.log2(x) + gnp.log10(x) + gnp.exp2(x) + gnp.cbrt(x)),
     [(V, positive)]),
    ("reciprocal_heaviside", lambda x, y: gnp.sum(gnp.reciprocal(x) + gnp.heaviside(x, y) * y), [(V, away), (V, normal)]),
    ("var_std", lambda X: gnp.sum(gnp.var(X, axis=0)) + gnp.std(X, ddof=1) + gnp.sum(gnp.average(X, axis=1, weights=X[0] ** 2 + 1)),
     [(M, normal)]),
    ("prod", lambda X, x: gnp.sum(gnp.prod(X, axis=1)) + gnp.prod(x * 0.9), [(M, normal), (V, normal)]),
    ("cumsum_cumprod", lambda X, x: gnp.sum(gnp.cumsum(X, axis=1) ** 2) + gnp.sum(gnp.cumprod(x, axis=0)),
     [(M, normal), (V, normal)]),
    ("diff", lambda X: gnp.sum(gnp.diff(X, axis=0) ** 2) + gnp.sum(gnp.diff(X, 2) ** 2), [(M, normal)]),
    ("norm", lambda X, x: gnp.linalg.norm(X) + gnp.linalg.norm(x, 1) + gnp.linalg.norm(x, np.inf)
     + gnp.sum(gnp.linalg.norm(X, axis=1)), [(M, normal), (V, normal)]),
    ("matrix_structure", lambda X, x: gnp.trace(X) + gnp.sum(gnp.triu(X, 1) ** 2) + gnp.sum(gnp.tril(X) * X)
     + gnp.sum(gnp.diagonal(X, 1) ** 2) + gnp.sum(gnp.diag(x, -1) ** 2), [(M, normal), (V, normal)]),
    ("joining", lambda X, x: gnp.sum(gnp.hstack([x, x * 2]) ** 2) + gnp.sum(gnp.vstack([X, x]) ** 2)
     + gnp.sum(gnp.column_stack([x, x]) ** 3), [(M, normal), (V, normal)]),
    ("tile_repeat_pad", lambda X: gnp.sum(gnp.tile(X, (2, 1)) ** 2) + gnp.sum(gnp.repeat(X, 2, axis=1) ** 3)
     + gnp.sum(gnp.pad(X, 1, constant_values=0.5) ** 2), [(M, normal)]),
    ("pad_edge", lambda x: gnp.sum(gnp.pad(x, (2, 1), mode="edge") ** 3), [(V, normal)]),
    ("sort", lambda X, Y: gnp.sum(gnp.sort(X, axis=1) * Y) + gnp.sum(gnp.sort(X, axis=0) ** 3), [(M, normal), (M, normal)]),
]
F32_INSIDE = {"astype"}    # a float32 intermediate: float32 tolerance whatever the inputs


def op_args(spec, n, dtype, r):
    return tuple(np.asarray(dom(r, *_shape(kind, n)), dtype) for kind, dom in spec)


# logsumexp over an empty axis: numpy's reference gives -inf, while backends "llvm" and
# "c" (which decompose it into max, exp, sum, log) raise numpy's "zero-size array to
# reduction operation max" -- a known difference of the shared schedule, not tested here.
EMPTY_LOGSUMEXP = {"logsumexp", "softmax"}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name,fn,spec", OPS, ids=[o[0] for o in OPS])
def test_ops_three_backends_agree(name, fn, spec, dtype):
    r = np.random.default_rng(2)
    argnums = tuple(range(len(spec)))
    for n in SIZES:      # n = 0 included: logsumexp/softmax of nothing agree too (-inf, empty)
        args = op_args(spec, n, dtype, r)
        tol_dtype = np.float32 if name in F32_INSIDE else dtype
        check_backends(lambda: fn, "value_and_grad", argnums, args, tol_dtype, f"{name} n={n}")


# Forward-only: non-scalar outputs, integers, booleans.
JIT = [
    ("int_arith", lambda i, j: gnp.maximum(i * 3 - j, gnp.minimum(i, j)) + 1,
     lambda r, n: (r.integers(-5, 5, n), r.integers(-5, 5, n))),
    ("bool_ops", lambda x, y: gnp.where(gnp.logical_not((x > 0) & (y > 0)), x, y),
     lambda r, n: (r.standard_normal(n), r.standard_normal(n))),
    ("several_outputs", lambda X, w: (X @ w, X.T, gnp.sum(X, axis=0), w * 2),
     lambda r, n: (r.standard_normal((n, n)), r.standard_normal(n))),
    ("gather_rows", lambda X, i: X[i] * 2, lambda r, n: (r.standard_normal((n, n)), r.integers(0, max(n, 1), n))),
    ("gather_pairs", lambda X, i, j: X[i, j], lambda r, n: (r.standard_normal((n, n)), r.integers(0, max(n, 1), n),
                                                            r.integers(-max(n, 1), max(n, 1), n))),
    ("iota", lambda x: x * gnp.astype(gradc.arange_like(x), np.float64), lambda r, n: (r.standard_normal(n),)),
    ("small_ints", lambda i, j: (gnp.maximum(i * 3 - j, gnp.minimum(i, j)) + 1, i * i, j > 40000, abs(i)),
     lambda r, n: (r.integers(-128, 127, n, dtype=np.int8, endpoint=True),
                   r.integers(0, 2 ** 16 - 1, n, dtype=np.uint16, endpoint=True))),
    ("arg_extremes", lambda X: (gnp.argmax(X, axis=1), gnp.argmin(X, axis=0), gnp.argsort(X), gnp.any(X > 1, axis=0),
                                gnp.all(X > -2)),
     lambda r, n: (np.round(r.standard_normal((max(n, 1), n)), 1),)),
    ("nan_tests", lambda x: (gnp.isnan(x), gnp.isfinite(x), gnp.nan_to_num(x), gnp.sort(x), gnp.argmax(x)),
     lambda r, n: (np.where(r.random(n + 1) < 0.3, r.choice([np.nan, np.inf, -np.inf], n + 1), r.standard_normal(n + 1)),)),
    # above 2**63 a uint64 is negative if read as signed: compared, maxed and abs'd unsigned
    ("uint64_high", lambda u, v: (gnp.maximum(u, v), gnp.minimum(u, v), abs(u), u > v, u <= v),
     lambda r, n: (r.integers(2 ** 62, 2 ** 64 - 1, n, dtype=np.uint64, endpoint=True),
                   r.integers(0, 2 ** 64 - 1, n, dtype=np.uint64, endpoint=True))),
]


@pytest.mark.parametrize("name,fn,make", JIT, ids=[j[0] for j in JIT])
def test_jit_three_backends_agree(name, fn, make):
    r = np.random.default_rng(3)
    for n in SIZES:
        check_backends(lambda: fn, "jit", None, make(r, n), np.float64, f"{name} n={n}")


# ----------------------------------------------------------------------------- semantics
def test_nan_semantics_follow_numpy():
    x = np.array([np.nan, 1.0, -0.0, 0.0, -2.0, np.inf, -np.inf])
    y = np.array([1.0, np.nan, 0.0, -0.0, -3.0, np.nan, 5.0])

    def f(x, y):
        return (gnp.maximum(x, y), gnp.minimum(x, y), gnp.relu(x), gnp.sign(x), gnp.sigmoid(x),
                gnp.softplus(x), gnp.max(x), gnp.where(x != x, 1.0, 0.0))
    want = gradc.jit(f, backend="numpy")(x, y)
    got = gradc.jit(f, backend="c")(x, y)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)   # exact: NaN in place, same signed zeros


def test_gather_out_of_bounds_sets_status():
    f = gradc.jit(lambda X, i: X[i], backend="c")
    X = np.ones((3, 2))
    f(X, np.array([0, 2, -3]))
    for _ in range(2):       # the slow path, then the C fast path
        with pytest.raises(IndexError, match="out of bounds"):
            f(X, np.array([0, 3]))


def test_max_of_empty_raises_like_numpy():
    f = gradc.jit(lambda x: gnp.max(x), backend="c")
    with pytest.raises(ValueError, match="zero-size|empty"):
        f(np.zeros(0))


# ----------------------------------------------------------------------------- the source
def _neuron_graph():
    args = (np.ones(3), 0.5, np.ones((4, 3)), np.ones(4))
    return gradc.value_and_grad(m2, argnums=(0, 1), backend="numpy").lower(*args).graph


def test_c_source_is_readable_c99():
    src = c_source(_neuron_graph())
    assert src.count('#include "gradc.h"') == 1
    assert f"int32_t gradc_{m2.__name__}_vjp_" in src and "(void **args, const int64_t *sizes, void *workspace)" in src
    assert "restrict" in src
    assert "/* %" in src and "= relu %" in src and "test_c_backend.py:" in src   # node and source line
    assert "#pragma omp simd reduction(+:" in src


def test_c_source_compiles_cleanly(tmp_path):
    cc = c_backend.compiler()
    srcs = [c_source(_neuron_graph()),
            c_source(gradc.value_and_grad(m5, backend="numpy").lower(*model_args("M5", 7, np.float32,
                                                                                   np.random.default_rng(0))[0]).graph)]
    for k, src in enumerate(srcs):
        p = tmp_path / f"k{k}.c"
        p.write_text(src)
        r = subprocess.run(cc + c_backend.FLAGS + ["-Wall", "-Wextra", "-Wno-unused-parameter", "-pedantic",
                                                   "-Werror", "-I", c_backend.RUNTIME, "-c", "-o",
                                                   str(tmp_path / f"k{k}.o"), str(p)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


def test_lowered_artifact_exposes_source_and_asm():
    args = (np.ones(3), 0.5, np.ones((4, 3)), np.ones(4))
    low = gradc.value_and_grad(m2, argnums=(0, 1), backend="c").lower(*args)
    art = low._entry.run.artifact
    assert art.c_source() == c_source(low.graph)
    assert art.name in low.asm()
    with pytest.raises(gradc.GradcError, match="c_source"):
        low.llvm_ir()


# ----------------------------------------------------------------------------- compiling
def test_library_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path / "cache"))
    f = lambda x: gnp.sum(gnp.exp(x) * 1.2345)   # noqa: E731
    a = gradc.grad(f, backend="c")
    a(np.ones(3))
    art = a.lower(np.ones(3))._entry.run.artifact
    libs = [p for p in os.listdir(tmp_path / "cache") if p.endswith(".so")]
    assert libs == [os.path.basename(art.path)]
    assert os.stat(art.path).st_mode & 0o077 == 0
    c_backend._loaded.pop(art.path)            # as a new process would
    b = gradc.grad(f, backend="c")
    b(np.ones(3))
    assert b.lower(np.ones(3))._entry.run.artifact.cached


def test_missing_compiler_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CC", "no-such-cc")
    with pytest.raises(CompilerError, match="CC='no-such-cc' was not found"):
        gradc.jit(lambda x: x * 3.0, backend="c")(np.ones(2))
    monkeypatch.delenv("CC")
    monkeypatch.setenv("PATH", "")
    with pytest.raises(CompilerError, match="needs a C compiler.*cc, gcc, clang"):
        gradc.jit(lambda x: x * 4.0, backend="c")(np.ones(2))


def test_c_kernels_are_serial(monkeypatch):
    monkeypatch.setenv("GRADC_NUM_THREADS", "4")
    x = np.random.default_rng(0).standard_normal((300, 300))
    got = gradc.grad(lambda X: gnp.sum(gnp.tanh(X) ** 2), backend="c")(x)
    np.testing.assert_allclose(got, 2 * np.tanh(x) * (1 - np.tanh(x) ** 2), rtol=1e-12, atol=1e-14)


def _eight_sizes(a, b, c, d, e, f, g, h):
    s = 0.0
    for x in (a, b, c, d, e, f, g):
        s = s + gnp.sum(x)
    return s + gnp.sum(gnp.sum(gnp.exp(h), axis=1) * gnp.sum(h, axis=1))


def test_a_size_named_t_does_not_shadow_size_t():
    """Nine distinct sizes name the eighth ``t``: its C local must not be ``size_t``
    (declared before the workspace's ``(size_t)`` casts, it made them calls of an int)."""
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(k) for k in range(2, 9)] + [rng.standard_normal((9, 4))]
    h = args[-1]
    expected = sum(x.sum() for x in args[:-1]) + np.sum(np.exp(h).sum(axis=1) * h.sum(axis=1))
    low = gradc.jit(_eight_sizes, backend="c").lower(*args)
    assert " t\n" in low.c_source() or "= t" in low.c_source()     # the size symbol t is there
    got = gradc.jit(_eight_sizes, backend="c")(*args)
    # sums of at most 36 O(1) terms (see the module docstring): F64_TOL relative
    assert abs(got - expected) <= F64_TOL * max(1.0, abs(expected))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_c_runs_rows_in_the_blocks_llvm_runs(dtype):
    """The C kernel renders the loop IR's row blocks as the LLVM kernel runs them (one
    inner loop serves 4 rows, named ``row0``..``row3``) and the remaining rows one at
    a time; value and gradient agree with numpy's closed form, X^T (-y sigmoid(-y z)) / n,
    and with the LLVM kernel at 100,003 rows (a remainder of 3 rows) by 7 columns: 700,021 elements.

    Tolerance: sums of up to 100,003 O(1) terms in another order than numpy's pairwise
    one: 1e5 * eps * O(1) relative to the result's scale, below 3e-11 in float64; float32
    compares against the float64 reference at 1e5 * 1.2e-7 ~ 1e-2 of the scale, so it
    checks 2e-3 (sums of logistic losses grow slowly, well inside it)."""
    def loss(w, X, y):
        return gnp.mean(gnp.log1p(gnp.exp(-y * (X @ w))))

    rng = np.random.default_rng(11)
    w = rng.standard_normal(7).astype(dtype)
    X = rng.standard_normal((100_003, 7)).astype(dtype)
    y = np.sign(rng.standard_normal(100_003)).astype(dtype)
    f = gradc.value_and_grad(loss, 0, backend="c")
    src = f.lower(w, X, y).c_source()
    assert all(f"const int64_t row{k} = " in src for k in range(4)), src
    assert "for (int64_t row = " in src
    value, grad = f(w, X, y)

    w64, X64, y64 = w.astype(np.float64), X.astype(np.float64), y.astype(np.float64)
    z = X64 @ w64
    want_value = np.mean(np.log1p(np.exp(-y64 * z)))
    want_grad = X64.T @ (-y64 / (1 + np.exp(y64 * z))) / len(y64)
    tol = 3e-11 if dtype == np.float64 else 2e-3
    np.testing.assert_allclose(value, want_value, rtol=tol)
    np.testing.assert_allclose(grad, want_grad, rtol=tol, atol=tol * np.max(np.abs(want_grad)))
    ll_value, ll_grad = gradc.value_and_grad(loss, 0)(w, X, y)
    np.testing.assert_allclose(value, ll_value, rtol=tol)
    np.testing.assert_allclose(grad, ll_grad, rtol=tol, atol=tol * np.max(np.abs(want_grad)))


@pytest.mark.parametrize("shape", [(5, 6), (7, 3), (33, 17), (2, 64, 9)])
def test_selects_read_memory_unconditionally(shape):
    """where(c, a[i], 0) is C's ``c ? a[i] : 0.0``, a conditional load: GCC 12 at -O3
    -march=x86-64-v3 and up if-converted it into a masked load with a wrong mask, and
    clip's gradient lost an element (x = 0.654 among 30 values).  The renderer loads
    both operands of every select first.  Checked against the numpy evaluator on random
    data of several shapes, and on the generated source: no load after a ``?`` or ``:``."""
    rng = np.random.default_rng(sum(shape))
    for trial in range(4):
        x = rng.uniform(-7.5, 7.5, shape)
        w = rng.standard_normal(shape)

        def loss(v):
            return np.sum(np.clip(v, -1.0, 1.0) * w + np.where(v > 0.5, v * w, 0.0))
        got = gradc.grad(loss, backend="c")(x)
        want = gradc.grad(loss, backend="numpy")(x)
        np.testing.assert_array_equal(got, want)
    source = gradc.grad(loss, backend="c").lower(x).c_source()
    branches = [line.split(" ? ", 1)[1].split(";")[0] for line in source.splitlines() if " ? " in line]
    assert branches and not [b for b in branches if "[" in b], branches


@pytest.mark.parametrize("shape", [(3, 7), (5, 33), (64, 257)])
def test_float32_round_trip_survives_gcc(shape):
    """x.astype(float32) read by an ``omp simd`` sum and again by a later loop of the
    same nest, then used in float64 (what np.cov(x.astype(np.float32)) does): GCC 12's
    straight-line vectorizer dropped the float32 rounding of some elements (1e-8 off)
    until the backend turned it off.  Against numpy, exactly up to summation order."""
    x = np.random.default_rng(0).uniform(-1, 1, shape)

    def f(x):
        y = gnp.astype(x.astype(np.float32), np.float64)
        return y - gnp.sum(y, axis=1, keepdims=True) / shape[1]
    y = x.astype(np.float32).astype(np.float64)
    want = y - y.sum(axis=1, keepdims=True) / shape[1]
    # a rounding lost shows at float32's resolution (6e-8 relative); the order of a sum
    # of shape[1] terms below 1 moves the mean by at most shape[1] * 2**-53
    np.testing.assert_allclose(gradc.jit(f, backend="c")(x), want, rtol=0, atol=shape[1] * 2.0 ** -52)
    np.testing.assert_allclose(gradc.jit(lambda x: gnp.cov(x.astype(np.float32)), backend="c")(x),
                               np.cov(x.astype(np.float32)), rtol=1e-12, atol=1e-14)


def test_reversed_cumlogsumexp_gradient_survives_gcc():
    """The gradient of lax.cumlogsumexp(x, axis=0, reverse=True): GCC 12 at -O3 with
    AVX-512 vectorized one of its nests wrongly (0.64 off on an AVX-512 host) until the
    backend left AVX-512 out (c_backend's flags).  Against the numpy backend's gradient,
    which differentiates the same graph in numpy."""
    import gradc.lax as lax
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((3, 4, 5)), rng.standard_normal((3, 4, 5))

    def loss(x):
        return gnp.sum(lax.cumlogsumexp(x, axis=0, reverse=True) * w)
    np.testing.assert_allclose(gradc.grad(loss, backend="c")(x), gradc.grad(loss, backend="numpy")(x),
                               rtol=1e-13, atol=1e-15)
