"""The native backend against the numpy reference evaluator (the oracle): sizes around
the vector width, memory layouts, dtypes, the inspection API, the disk cache, threads.

Tolerances: native code sums in a different order than numpy (vector lanes, chunks),
so sums of n terms differ by O(n·eps) relative to the sum of magnitudes; rtol=1e-12 with
atol scaled by the magnitude of the terms covers n up to a few million in float64.  The
element-wise functions differ from numpy's libm by at most a few ulp (see
test_vecmath), far below these tolerances.  float32: rtol 2e-5 (eps32 ~ 1.2e-7, with
sums of up to 10^3 terms and several chained ops)."""
import os
import re
import subprocess
import sys

import numpy as onp
import pytest

import gradc
import gradc.numpy as np
from gradc import bench_models as B

SIZES = [0, 1, 7, 8, 9, 33, 1001]


def close(a, b, dtype=onp.float64, terms=1):
    a, b = onp.asarray(a, dtype=onp.float64), onp.asarray(b, dtype=onp.float64)
    rtol = 1e-12 if dtype == onp.float64 else 2e-5
    atol = rtol * max(1.0, float(onp.max(onp.abs(b), initial=0))) * max(1, terms) ** 0.5
    onp.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def both(f, args, argnums=0, dtype=onp.float64, terms=1):
    got = gradc.value_and_grad(f, argnums=argnums, backend="llvm")(*args)
    ref = gradc.value_and_grad(f, argnums=argnums, backend="numpy")(*args)
    close(got[0], ref[0], dtype, terms)
    gs, rs = (got[1], ref[1]) if isinstance(argnums, tuple) else ((got[1],), (ref[1],))
    for g, r in zip(gs, rs):
        assert onp.asarray(g).dtype == onp.asarray(r).dtype == dtype
        close(g, r, dtype, terms)
    return got


# The benchmark's models (one definition, shared with `gradc bench`).
m1, neuron, logreg, mlp, xent = B.m1_gradc, B.m2_gradc, B.m3_gradc, B.m4_gradc, B.m5_gradc


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", [onp.float64, onp.float32])
def test_elementwise_chain_sizes(n, dtype):
    x = onp.random.default_rng(n).normal(size=n).astype(dtype)
    v, g = both(m1, (x,), dtype=dtype, terms=n)
    if n == 0:
        assert v == 0 and g.shape == (0,)


@pytest.mark.parametrize("n,d", [(0, 3), (1, 1), (7, 8), (9, 7), (33, 17), (1001, 5)])
@pytest.mark.parametrize("dtype", [onp.float64, onp.float32])
def test_neuron_and_logistic_sizes(n, d, dtype):
    rng = onp.random.default_rng(n * 31 + d)
    X = rng.normal(size=(n, d)).astype(dtype)
    w = rng.normal(size=d).astype(dtype)
    y = rng.normal(size=n).astype(dtype)
    b = dtype(0.1)
    for f in (neuron, logreg):
        both(f, (w, b, X, onp.sign(y) if f is logreg else y), argnums=(0, 1), dtype=dtype, terms=n * d)


def test_mean_of_nothing_is_nan_like_numpy():
    v, g = gradc.value_and_grad(lambda x: np.mean(x))(onp.zeros(0))
    assert onp.isnan(v) and g.shape == (0,)


@pytest.mark.parametrize("n", [1, 8, 33])
def test_mlp_and_cross_entropy(n):
    rng = onp.random.default_rng(n)
    X = rng.normal(size=(n, 6))
    args = (rng.normal(size=(6, 16)), rng.normal(size=16), rng.normal(size=(16, 3)), rng.normal(size=3), X,
            rng.normal(size=(n, 3)))
    both(mlp, args, argnums=(0, 1, 2, 3), terms=n * 16)
    both(xent, (rng.normal(size=(6, 4)), X, rng.integers(0, 4, size=n)), terms=n * 6)


def test_large_matmul_uses_blas_and_agrees():
    rng = onp.random.default_rng(0)
    A, B = rng.normal(size=(70, 50)), rng.normal(size=(50, 40))
    def f(A, B):
        return np.sum((A @ B) ** 2)
    both(f, (A, B), argnums=(0, 1), terms=50 * 40)


def test_millions_of_elements():
    x = onp.random.default_rng(1).normal(size=3_000_001)
    both(m1, (x,), terms=3_000_001)
    X = onp.random.default_rng(2).normal(size=(300_001, 7))
    both(neuron, (onp.ones(7) * 0.1, 0.2, X, onp.zeros(300_001)), argnums=(0, 1), terms=300_001 * 7)


@pytest.mark.parametrize("layout", ["slice", "negative", "fortran", "readonly", "unaligned", "0d"])
def test_memory_layouts_give_correct_results(layout):
    rng = onp.random.default_rng(3)
    base = rng.normal(size=(20, 6))
    if layout == "slice":
        X = base[::2, 1:5]
    elif layout == "negative":
        X = base[::-1, ::-1][:, :4]
    elif layout == "fortran":
        X = onp.asfortranarray(base[:, :4])
    elif layout == "readonly":
        X = base[:, :4].copy()
        X.flags.writeable = False
    elif layout == "unaligned":
        buf = onp.zeros(20 * 4 * 8 + 1, dtype=onp.uint8)
        X = onp.frombuffer(buf.data, dtype=onp.float64, count=80, offset=1).reshape(20, 4)
        X[...] = base[:, :4]
        assert not X.flags.aligned
    else:
        X = base[:, :4]
    w = rng.normal(size=4)
    b = onp.array(0.3) if layout == "0d" else 0.3
    y = rng.normal(size=X.shape[0])
    both(neuron, (w, b, X, y), argnums=(0, 1), terms=80)


def test_new_batch_size_does_not_recompile():
    f = gradc.value_and_grad(neuron, argnums=(0, 1))
    for n in (5, 50, 500):
        f(onp.ones(3), 0.1, onp.ones((n, 3)), onp.ones(n))
    entries = [e for es in f._cache.values() for e in es]
    assert len(entries) == 1


def called_symbols(asm):
    """Symbols the assembly calls: directly, or through a register loaded with
    ``movabsq $symbol`` (the JIT's large code model)."""
    return set(re.findall(r"^\s*(?:call|jmp)q?\s+([A-Za-z_][\w.$]*)", asm, re.M)) | \
        set(re.findall(r"^\s*movabsq\s+\$([A-Za-z_][\w.$]*),\s*%r", asm, re.M))


LIBM = re.compile(r"(exp|expm1|log|log1p|tanh|sin|cos|pow|fma|rint|floor)f?")
M1_MATH = {"gradc_vm_tanh_f64", "gradc_vm_exp_f64", "gradc_vm_log1p_f64"}


def assert_vector_math_not_libm(lowered):
    """The optimized kernel calls gradc's vector math through its vector variants
    (``<N x double>`` calls, N >= 2) and never calls libm."""
    ir = lowered.llvm_ir(optimized=True)
    width = re.findall(r"<(\d+) x double>", ir)
    assert width and max(map(int, width)) >= 2, "the loop was not vectorized"
    vector_calls = re.findall(r"call <(\d+) x double> @\"?(gradc_vm_\w+)_v(\d+)\(", ir)
    assert {name for _, name, _ in vector_calls} == M1_MATH, vector_calls
    assert all(int(n) == int(w) >= 2 for n, _, w in vector_calls)
    called = called_symbols(lowered.asm())
    assert not [c for c in called if LIBM.fullmatch(c)], f"libm calls: {sorted(called)}"
    assert {f"{name}_v{w}" for _, name, w in vector_calls} <= called


def test_vectorized_ir_and_no_libm_calls():
    lo = gradc.value_and_grad(m1).lower(onp.ones(100))
    assert_vector_math_not_libm(lo)
    asm = lo.asm()
    assert "ymm" in asm or "zmm" in asm or "xmm" in asm
    raw = lo.llvm_ir(optimized=False)
    assert re.search(r"%\"?n\d+", raw), "IR values are named after graph nodes"
    assert re.search(r"declare double @gradc_vm_exp_f64\(double[^)]*\) .*vector-function-abi-variant", raw)


@pytest.mark.parametrize("cpu, bits, register", [("generic", 128, "xmm"), ("x86-64-v3", 256, "ymm"),
                                               ("x86-64-v4", 512, "zmm")])
@pytest.mark.parametrize("dtype", [onp.float64, onp.float32])
def test_code_for_other_cpus_uses_their_full_width(cpu, bits, register, dtype):
    """``cpu=`` compiles the same kernel for another machine, to read: its widest
    vectors fill that CPU's registers (on AVX-512, <8 x double> and zmm, which LLVM's
    Intel tuning would otherwise narrow to 256 bits), and its math calls the vector
    variants of that width, never libm."""
    lanes = bits // (8 * onp.dtype(dtype).itemsize)
    ty = "double" if dtype == onp.float64 else "float"
    lo = gradc.value_and_grad(m1).lower(onp.ones(100, dtype))
    ir = lo.llvm_ir(cpu=cpu)
    assert max(map(int, re.findall(rf"<(\d+) x {ty}>", ir))) == lanes
    assert re.search(rf"call <{lanes} x {ty}> @\"?gradc_vm_exp_f(64|32)_v{lanes}\(", ir)
    asm = lo.asm(cpu=cpu)
    assert re.search(rf"v?mul[sp][ds]\s.*%{register}", asm)
    assert not [c for c in called_symbols(asm) if LIBM.fullmatch(c)]
    neuron = gradc.value_and_grad(B.m2_gradc, argnums=(0, 1)).lower(
        onp.ones(16, dtype), dtype(0), onp.ones((64, 16), dtype), onp.ones(64, dtype))
    assert re.search(rf"fmul <{lanes} x {ty}>", neuron.llvm_ir(cpu=cpu))


def test_avx512_kernels_ask_for_512_bit_vectors():
    """What makes the host's AVX-512 code full width: every function gradc defines
    carries prefer-vector-width=512 for an AVX-512 target, and nothing for AVX2."""
    from gradc.backends import llvm_jit, vecmath
    lo = gradc.value_and_grad(m1).lower(onp.ones(100))
    raw = "\n".join(lo._native()._make_ir())      # the kernel's modules
    wide = llvm_jit.prepare_ir(raw, vecmath.Target(512, True))
    defines = re.findall(r"^define .*$", wide, re.M)
    assert defines and all(re.search(r'"prefer-vector-width"="512"( {)?$', d) for d in defines)
    assert "prefer-vector-width" not in llvm_jit.prepare_ir(raw, vecmath.Target(256, True))


def test_unknown_cpu_is_a_clear_error():
    lo = gradc.value_and_grad(m1).lower(onp.ones(10))
    with pytest.raises(ValueError, match=r"cpu 'pentium': expected one of native, generic, x86-64-v3, x86-64-v4"):
        lo.asm(cpu="pentium")


def test_large_transcendental_kernel_calls_vector_math():
    """value_and_grad of M1 on 4M doubles (threaded): numpy's values, through the
    vector math's vector variants, without libm."""
    x = onp.random.default_rng(4).normal(size=4_000_000)
    f = gradc.value_and_grad(m1)
    v, g = f(x)
    want_v, want_g = gradc.value_and_grad(m1, backend="numpy")(x)
    close(v, want_v, terms=x.size)
    close(g, want_g)
    assert_vector_math_not_libm(f.lower(x))


def test_gather_out_of_bounds_is_an_error_not_a_crash():
    f = gradc.grad(xent)
    W, X = onp.ones((3, 4)), onp.ones((5, 3))
    with pytest.raises(IndexError):
        f(W, X, onp.array([0, 1, 2, 3, 4]))
    with pytest.raises(IndexError):
        f(W, X, onp.array([0, 1, 2, 3, -5]))
    # negative indices wrap as in numpy
    both(xent, (W, X, onp.array([0, 1, 2, 3, -1])))


@pytest.mark.parametrize("where", [0, -1])
def test_errors_in_threaded_nests_are_reported(where):
    """A bad index or a negative integer power in one chunk of a threaded nest (enough
    rows to split) reaches the caller, wherever the chunk is; valid input then runs."""
    rows = 200_000
    rng = onp.random.default_rng(5)
    W, X = rng.standard_normal((3, 4)), rng.standard_normal((rows, 3))
    labels = rng.integers(0, 4, rows)
    f = gradc.grad(xent)
    bad = labels.copy()
    bad[where] = 4
    with pytest.raises(IndexError):
        f(W, X, bad)
    both(xent, (W, X, labels))
    k = onp.arange(5 * rows) % 5          # 1M elements: past the threading threshold
    e = onp.ones(5 * rows, onp.int64)
    e[where] = -1
    power = gradc.jit(lambda k, e: np.sum(k ** e))
    with pytest.raises(ValueError, match="negative integer powers"):
        power(k, e)
    assert power(k, onp.abs(e)) == onp.sum(k ** onp.abs(e))


def test_threads_are_deterministic():
    rng = onp.random.default_rng(5)
    X = rng.normal(size=(40_000, 9))
    f = gradc.value_and_grad(neuron, argnums=(0, 1))
    args = (rng.normal(size=9), 0.1, X, rng.normal(size=40_000))
    first = f(*args)
    for _ in range(5):
        again = f(*args)
        assert again[0] == first[0]
        assert onp.array_equal(again[1][0], first[1][0]) and again[1][1] == first[1][1]


CACHE_SCRIPT = r"""
import time, numpy as onp, gradc, gradc.numpy as np
def loss(w, X, y):
    return np.mean((gradc.relu(X @ w) - y) ** 2)
f = gradc.value_and_grad(loss)
args = (onp.ones(3), onp.ones((4, 3)), onp.zeros(4))
t = time.perf_counter(); v, g = f(*args); t = time.perf_counter() - t
art = list(f._cache.values())[0][0].run.artifact
print(art.cached, float(v), g.tolist())
"""


def run_script(cache_dir):
    env = dict(os.environ, GRADC_CACHE_DIR=str(cache_dir))
    out = subprocess.run([sys.executable, "-W", "always", "-c", CACHE_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=120, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.returncode == 0, out.stderr
    return out.stdout.split(None, 1), out.stderr


def test_disk_cache_hit_corruption_and_truncation(tmp_path):
    (first, v1), _ = run_script(tmp_path)
    assert first == "False"
    (second, v2), _ = run_script(tmp_path)
    assert second == "True" and v1 == v2
    entries = list(tmp_path.glob("*.o"))
    assert len(entries) == 1 and oct(tmp_path.stat().st_mode & 0o777) == "0o700"
    data = entries[0].read_bytes()
    for broken in (data[: len(data) // 2], data[:-10] + b"\x00" * 10, b"garbage"):
        entries[0].write_bytes(broken)
        (again, v3), _ = run_script(tmp_path)
        assert again == "False" and v3 == v1       # rebuilt, same answer
        (hit, _v), _ = run_script(tmp_path)
        assert hit == "True"                      # and the rebuilt entry is good


def test_disk_cache_refuses_directory_others_can_write(tmp_path):
    tmp_path.chmod(0o777)
    (cached, v), err = run_script(tmp_path)
    assert cached == "False"
    assert "refusing to use the cache directory" in err and "chmod go-w" in err
    assert not list(tmp_path.glob("*.o"))


def test_row_math_is_computed_at_row_level():
    """Logistic regression's gradient broadcasts sigmoid(margin) over each row of X.
    The scheduler makes the sigmoid (and the loss's softplus) row-level roots of the
    nest over X, kept for one block of rows (no workspace), so they run once per row, a block of rows at a time, instead of being
    inlined into the loop over the row's elements; the values stay numpy's."""
    w, b, X, y = B.make_data("M3", "medium", "float64")
    vg = gradc.value_and_grad(B.MODELS["M3"].gradc, argnums=(0, 1))
    nests = vg.lower(w, b, X, y).loop_nests()
    assert re.search(r"nest 0: loop over \[m,n\]: .*%\d+=sigmoid@1", nests), nests
    assert re.search(r"%\d+=softplus@1", nests), nests
    (v, (gw, gb)), (rv, (rw, rb)) = vg(w, b, X, y), B.MODELS["M3"].np_value_and_grad(w, b, X, y)
    onp.testing.assert_allclose(v, rv, rtol=1e-12)
    onp.testing.assert_allclose(gw, rw, rtol=1e-10, atol=1e-13)
    onp.testing.assert_allclose(gb, rb, rtol=1e-10)


def test_row_blocks_follow_shared_operands():
    """4 rows per pass (sharing loads of w) for row dot products; a row-wise softmax has
    no shared operand and runs a row at a time (blocks multiplied its compile time)."""
    def kinds(model):
        args = B.make_data(model, "small", "float64")
        vg = gradc.value_and_grad(B.MODELS[model].gradc, argnums=B.MODELS[model].argnums)
        s = vg.lower(*args)._entry.run.kernel.schedule
        return [n.row_block for n in s.nests if n.kind == "loop" and len(n.domain) == 2]
    assert kinds("M2") == [4] and kinds("M3") == [4]     # X @ w, fused with X.T @ g
    assert kinds("M5") == [1]                            # softmax over 10 classes


def test_rows_after_the_last_block_run_plain_vector_loops():
    """The rows after the last full block (n % 4 of them) loop over their elements in
    plain vector loops: loop metadata asks for no interleaving and no unrolling, only
    there (to save compile time); every row count gives numpy's values."""
    w, b, X, y = B.make_data("M2", "small", "float64")
    vg = gradc.value_and_grad(neuron, argnums=(0, 1))
    lo = vg.lower(w, b, X, y)
    raw = lo.llvm_ir(optimized=False)
    plain = re.findall(r'br label %"([\w.]+)\.cond(?:\.\d+)?", !llvm.loop', raw)
    # (i1.peel: the first iterations before an aligned address, see test_loop_ir;
    # rows: the first and the last block of the lagged blocks, once per chunk)
    assert plain and set(plain) <= {"i1", "row", "i1.peel", "rows"}, plain
    plain = [p for p in plain if p not in ("i1.peel", "rows")]
    assert len(plain) < len(re.findall(r'br label %"i1\.cond', raw)) / 2     # the blocks' loops: O3's way
    assert re.search(r'"llvm.loop.interleave.count", i32 1', raw)
    assert re.search(r"<\d+ x double>", lo.llvm_ir(optimized=True))
    rng = onp.random.default_rng(3)
    for n in (1, 2, 3, 5, 6, 7, 4 * 25 + 3):
        Xn, yn = rng.normal(size=(n, 300)), rng.normal(size=n)
        both(neuron, (rng.normal(size=300), b, Xn, yn), argnums=(0, 1), terms=300)


def test_per_row_values_need_no_workspace():
    """A row's dot product and the row-level sigmoid are read only inside their nest, for
    the current block of rows: the workspace holds one row block of them per chunk, no
    row-length buffer, so the gradient allocates nothing that grows with the batch."""
    from gradc.backends.schedule import workspace_bytes
    for model in ("M2", "M3"):
        args = B.make_data(model, "small", "float64")
        vg = gradc.value_and_grad(B.MODELS[model].gradc, argnums=B.MODELS[model].argnums)
        s = vg.lower(*args)._entry.run.kernel.schedule
        assert s.row_local and not set(s.row_local) & set(s.workspace), (model, s.row_local, s.workspace)
        rows = s.graph[s.graph.inputs[2]]["shape"][0]          # X is [rows, features]
        few = {sym: 16 if sym != rows else 1000 for sym in s.symbols}
        many = dict(few, **{rows: 10 ** 7})
        assert workspace_bytes(s, few) == workspace_bytes(s, many), model


# -- regressions: wrong values with no error ------------------------------------------
@pytest.mark.parametrize("n", [37, 300, 1000])
@pytest.mark.parametrize("threads", ["1", "2", "3"])
def test_nest_reducing_over_two_axes_on_threads(n, threads, monkeypatch):
    """One nest over (n, n, m) sums over axis 1 (rows each chunk owns) and axis 0
    (partials across chunks).  Each chunk used to reset the whole axis-1 buffer, wiping
    what earlier chunks wrote: half the gradient at n = 300.  Closed form
    d/dx sum_ab |x_a - x_b|^2 = 4 (n x_a - sum_b x_b)."""
    monkeypatch.setenv("GRADC_NUM_THREADS", threads)
    x = onp.random.default_rng(n).normal(size=(n, 3))
    g = gradc.grad(lambda x: np.sum((x[:, None, :] - x[None, :, :]) ** 2))(x)
    close(g, 4 * (n * x - x.sum(0)), terms=n)
    # the weighted form, differentiated with respect to both point sets
    rng = onp.random.default_rng(n + 1)
    W, y = rng.random((n, n - 1)), rng.normal(size=(n - 1, 3))
    dx, dy = gradc.grad(lambda x, y, W: np.sum(W[:, :, None] * (x[:, None, :] - y[None, :, :]) ** 2),
                        argnums=(0, 1))(x, y, W)
    d = x[:, None, :] - y[None, :, :]
    close(dx, (2 * W[:, :, None] * d).sum(1), terms=n)
    close(dy, -(2 * W[:, :, None] * d).sum(0), terms=n)


@pytest.mark.parametrize("n", [3, 600_000])
def test_reductions_of_different_dtypes_share_a_nest(n):
    """A uint64 max beside a float64 sum in one nest: the max used to be combined with
    the float sum's dtype (a leftover loop variable), so 2**63 + 5 lost to 3."""
    k = onp.full(n, 3, onp.uint64)
    k[n // 2] = 2 ** 63 + 5
    x = onp.linspace(0, 1, n)
    f = gradc.jit(lambda k, x: (np.max(k), np.min(k), np.sum(x + k.astype(onp.float64) * 0.0)))
    mx, mn, s = f(k, x)
    assert mx == 2 ** 63 + 5 and mx.dtype == onp.uint64 and mn == 3
    close(s, x.sum(), terms=n)


@pytest.mark.parametrize("n", [4, 1001])
def test_bool_plus_bool_is_logical_or_as_numpy(n):
    # bools are i1 in LLVM, whose add wraps: True + True was False (and sum(b + b) lost them)
    rng = onp.random.default_rng(5)
    b, c = rng.random(n) > 0.5, rng.random(n) > 0.5
    b[:2], c[:2] = True, True
    got = gradc.jit(lambda b, c: b + c, backend="llvm")(b, c)
    onp.testing.assert_array_equal(got, b + c)
    s = gradc.jit(lambda b, c: np.sum((b + c) * 1.5), backend="llvm")(b, c)
    assert s == onp.sum((b + c) * 1.5)


def test_reparameterized_normal_in_a_gradient_compiles_quickly():
    """A VAE's loss: the gradient of the log-variance weights accumulates over rows an
    expression holding gradc.random.normal's threefry (20 rounds reusing each word).
    lower_nests walked that expression DAG as a tree, exponential in its depth: the
    compile never finished.  Oracles: the numpy reference evaluator and central
    differences of the (fixed-key) loss."""
    r = onp.random.default_rng(8)
    B, D, H, Z = 3, 4, 5, 2
    p = {"enc": {"W": r.normal(size=(D, H)), "b": r.normal(size=H) * .5},   # (no pre-activation at the kink)
         "mu": {"W": r.normal(size=(H, Z)), "b": onp.zeros(Z)},
         "logvar": {"W": r.normal(size=(H, Z)) * .1, "b": onp.zeros(Z)},
         "dec": [r.normal(size=(Z, H)), onp.zeros(H), r.normal(size=(H, D)), onp.zeros(D)]}
    x = (r.uniform(size=(B, D)) > .5).astype(onp.float64)
    key = onp.array([0, 42], dtype=onp.uint32)

    def loss(p, x, key):
        h = gradc.nn.relu(x @ p["enc"]["W"] + p["enc"]["b"])
        mu = h @ p["mu"]["W"] + p["mu"]["b"]
        lv = h @ p["logvar"]["W"] + p["logvar"]["b"]
        z = mu + np.exp(0.5 * lv) * gradc.random.normal(key, mu.shape)
        W1, b1, W2, b2 = p["dec"]
        logits = np.tanh(z @ W1 + b1) @ W2 + b2
        kl = -0.5 * np.sum(1 + lv - mu ** 2 - np.exp(lv), axis=-1)
        return np.mean(np.sum(gradc.nn.softplus(logits) - x * logits, axis=-1) + kl)

    v, g = gradc.value_and_grad(loss)(p, x, key)
    vr, gr = gradc.value_and_grad(loss, backend="numpy")(p, x, key)
    close(v, vr)
    leaves, tree = gradc.tree_util.tree_flatten(p)
    for a, b in zip(gradc.tree_util.tree_leaves(g), gradc.tree_util.tree_leaves(gr)):
        close(a, b)
    d = [r.normal(size=onp.shape(a)) for a in leaves]
    f = gradc.jit(loss, backend="numpy")
    eps = 1e-6
    shifted = [tree.unflatten([a + s * eps * b for a, b in zip(leaves, d)]) for s in (1, -1)]
    fd = (f(shifted[0], x, key) - f(shifted[1], x, key)) / (2 * eps)
    dot = sum(onp.sum(a * b) for a, b in zip(gradc.tree_util.tree_leaves(g), d))
    onp.testing.assert_allclose(dot, fd, rtol=1e-6)
