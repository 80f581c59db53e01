"""The loop IR (backends/loop_ir.py): what it prints, that it keeps the graph's node
numbers, and that one IR object rendered by both code generators computes numpy's
answer.

Tolerance: the C and LLVM renderings of one IR and numpy differ only in summation
order (vector lanes, pairwise sums) and libm vs gradc's vector math: for these O(1)
inputs and at most 300 terms a sum, ~300 * 2.2e-16 * O(1) << 1e-12 (see
test_c_backend.py's derivation), so F64_TOL = 1e-12 relative to the result's scale.
"""
from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
from gradc.backends import c_codegen, llvm_backend, llvm_codegen, loop_ir, vecmath
from gradc.backends.lower_loops import build
from gradc.backends.schedule import schedule
from gradc.bench_models import MODELS, make_data

F64_TOL = 1e-12


def _lowered(model, size="small", threads="1", monkeypatch=None):
    monkeypatch.setenv("GRADC_NUM_THREADS", threads)
    m = MODELS[model]
    return gradc.value_and_grad(m.gradc, m.argnums, backend="llvm").lower(*make_data(model, size))


def _defined(text):
    """{node: op} of every ``%N = op(...)`` (or ``%N = op: select(...)``, or ``%N =
    call math.op(...)``: an op that is a math library function) line of a loop IR listing."""
    return {int(n): op for n, op in re.findall(r"^\s*%(\d+) = (?:call math\.)?(\w+)[(:]", text, re.M)}


@pytest.mark.parametrize("model", ["M1", "M2", "M3", "M4", "M5"])
def test_loop_ir_numbers_nodes_as_the_graph(model, monkeypatch):
    low = _lowered(model, monkeypatch=monkeypatch)
    text = low.loop_ir()
    g = low.graph
    defined = _defined(text)
    assert defined, text
    shared = [n for n in defined if n in g.nx.nodes]
    assert shared, "the loop IR names no node of Lowered.graph"
    # A number names the same op in the graph, the loop IR and the loop nests; a node
    # schedule.decompose rewrote (a vector product into a sum, logsumexp into max, exp,
    # sum, log, the softmax exp(x - logsumexp(x)) of its adjoint into exp(x - max) * (1 /
    # sum)) keeps its number for the node computing its value.
    rewritten = ("matmul", "logsumexp", "exp")
    for n in shared:
        assert g[n]["op"] == defined[n] or g[n]["op"] in rewritten, (n, g[n]["op"], defined[n])
    for n, op in re.findall(r"%(\d+)=(\w+)", low.loop_nests()):
        if int(n) in g.nx.nodes:
            assert g[int(n)]["op"] == op or g[int(n)]["op"] in rewritten, (n, op)
    if model == "M5":   # logsumexp is decomposed: only its new nodes take new numbers
        assert all(n not in g.nx.nodes for n in defined if n not in shared)
        assert any(g[n]["op"] == "matmul" for n in g.nx.nodes if f"%{n}=matmul" in low.loop_nests())


def test_loop_ir_element_wise_chain(monkeypatch):
    """M1 on one thread: one nest over [n], a register sum, the ops of the chain."""
    text = _lowered("M1", monkeypatch=monkeypatch).loop_ir()
    assert text.splitlines()[1].startswith("nest 0: loop over [n]")
    assert "for i0 in [0, n):" in text
    assert re.search(r"acc acc\d+: f64 = 0\.0:f64", text)
    assert re.search(r"acc\d+ \+= %\d+", text)
    for op in ("mul", "neg"):
        assert f"= {op}(" in text, op
    for fn in ("tanh", "exp", "log1p"):         # the vector math: calls in the IR
        assert f"= call math.{fn}(" in text, fn
    assert "parallel" not in text


def test_loop_ir_parallel_row_blocks(monkeypatch):
    """M2 at medium size on 2 threads: a parallel nest over the rows, its body in blocks
    of 4 rows and the remaining rows in a task of their own, partials combined."""
    monkeypatch.setattr(llvm_backend, "aligns_rows", lambda target=None: True)   # (as on AVX-512 hosts)
    monkeypatch.setattr(llvm_backend, "stream_row_bytes", lambda: None)
    text = _lowered("M2", "medium", "2", monkeypatch).loop_ir()
    assert re.search(r"parallel over \[0, m\) in 8 chunks if .*!blas_call", text)
    assert "task nest0(start, end, chunk):" in text
    assert "task nest0.rest(start, end, chunk):" in text
    # the first block's dot products, then each block's with the block before's
    # accumulation over its rows in one loop, then the last block's accumulation
    # a matrix larger than the host's cache runs a row at a time, from blocked_end
    assert re.search(r"blocked_end = select\(\(\(\(m \* n\) \* 8\) > \d+\), start, end\) \+ 0", text)
    assert "for rows in [0, select((((blocked_end - start) / 4) < 1), ((blocked_end - start) / 4), 1)):" in text
    assert "for rows in [1, ((blocked_end - start) / 4)):" in text
    assert "# stage 0, and stage 2 of the block before" in text
    # then the rows after the last block, or all of them, one at a time
    assert "after_blocks = start + (((blocked_end - start) / 4) * 4)" in text
    assert "for row in [after_blocks, end):\n" in text
    assert all(f"row{k} = (start + (rows * 4)) + {k}" in text for k in range(4))
    assert all(f"prev{k} = (start + ((rows - 1) * 4)) + {k}" in text for k in range(4))
    # the inner loops of the steady blocks and of the rows one at a time start at a
    # 64-byte boundary of a row of X; those of a chunk's first and last block (plain
    # loops, a block each per chunk) run unpeeled
    blocks, rest = text.split("task nest0.rest(start, end, chunk):")
    steady = blocks.split("for rows in [1, ((blocked_end - start) / 4)):")[1]
    first, last = blocks.split("for rows in [1,")[0], steady.split("# stage 2\n")[1]
    assert re.search(r"for i1 in \[0, n\):  # first iterations peeled: X\[row0, i1\] 64-byte aligned", steady)
    assert "peeled" not in first and "peeled" not in last
    assert "for row in [after_blocks, end):" in rest and "for row in" not in blocks
    assert rest.count("for i1 in [0, n):  # first iterations peeled: X[row, i1] 64-byte aligned") == 2
    assert re.search(r"combine %\d+ = sum of partial\(%\d+\) in chunk order", text)
    # row-local values: a block of 4 doubles per chunk, each chunk's on a cache line of its own
    assert re.search(r"%\d+ = &rows\(%\d+\)\[\(chunk \* 8\)\]", text)


def test_rows_are_peeled_only_for_512_bit_vectors(monkeypatch):
    """The peel to a 64-byte boundary is for targets with 512-bit vectors (every load of
    a misaligned row straddles two lines); with 256-bit vectors half of them do, and the
    peel cost more than it saved (llvm_backend.aligns_rows): no loop is peeled, and the
    rows give the same dot products as the peeled kernel to float64 rounding."""
    assert llvm_backend.aligns_rows(vecmath.Target(vector_bits=512, fma=True))
    assert not llvm_backend.aligns_rows(vecmath.Target(vector_bits=256, fma=True))
    monkeypatch.setenv("GRADC_NUM_THREADS", "2")
    m, args = MODELS["M2"], make_data("M2", "medium")
    texts, results = {}, {}
    for aligned in (True, False):
        monkeypatch.setattr(llvm_backend, "aligns_rows", lambda target=None, a=aligned: a)
        vg = gradc.value_and_grad(m.gradc, m.argnums, backend="llvm")
        texts[aligned], results[aligned] = vg.lower(*args).loop_ir(), vg(*args)
    assert "peeled" in texts[True] and "peeled" not in texts[False]
    (v1, g1), (v0, g0) = results[True], results[False]
    np.testing.assert_allclose(v0, v1, rtol=1e-12)
    for a, b in zip(g0, g1):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14)


def test_loop_ir_gather_scatter_and_products(monkeypatch):
    """M5: the label gather checks its index; its adjoint, one element per row, is a
    select against the checked label (passes.one_hot_scatter), not a scatter; the
    matrix products call a library, block by block in a row pipeline over X (or
    generated loops without one).  A gather whose indices may repeat scatters its
    adjoint, with checks."""
    text = _lowered("M5", monkeypatch=monkeypatch).loop_ir()
    assert re.search(r"ix\d+\.1 = checked\(index\(labels\[i0\]\), m\)", text)
    assert re.search(r"(ix\d+\.0) = checked\(index\(labels\[i0\]\), m\)\n\s*%\d+ = eq\(i64\(i1\), i64\(\1\)\)", text)
    assert "for s0 in" not in text
    idx = np.array([3, 0, 3, 1])
    scatter = gradc.grad(lambda x: gnp.sum(x[idx] ** 2), backend="llvm").lower(np.ones(5)).loop_ir()
    assert "for s0 in [0, 4):" in scatter and re.search(r"ix\d+\.0 = checked\(index\(", scatter)
    assert re.search(r"%\d+\[ix\d+\.0\] \+= ", scatter)
    gemm = r"(pool_gemm\(threads=\d+\)|gemm)"
    if "row pipeline" in text:   # the blocks' narrow products, whole products when too wide
        assert re.search(r"%\d+\[block_start:block_start \+ block_rows\] = skinny_rows\(X\[block_start:", text)
        assert re.search(r"padded\(%\d+\) \+= skinny_rows\(X\[block_start:.*\]\^T, %\d+\[block_start:", text)
        assert re.search(rf"if !\(\(m < 17\) && \(m < 17\)\): %\d+ = {gemm}\(X, W; m=k, n=m, k=n\)", text)
    else:
        assert re.search(rf"%\d+ = (skinny\(threads=.*\), else )?{gemm}\(X, W; m=k, n=m, k=n\)", text) \
            or re.search(r"for j in \[0, m\):", text)


def test_cli_shows_the_loop_ir(tmp_path, capsys):
    from gradc.cli import main
    src = tmp_path / "m.py"
    src.write_text("import gradc.numpy as gnp\n\ndef f(x):\n    return gnp.sum(gnp.exp(x) * x)\n")
    assert main(["ir", f"{src}:f", "f64[n]", "--loops"]) == 0
    out = capsys.readouterr().out
    assert "nest 0: loop over [n]" in out and "= call math.exp(x[i0])" in out


def _random_args(shapes, rng):
    return [rng.standard_normal(s) for s in shapes]


def _logistic(w, X, y):
    z = X @ w
    return gnp.mean(gnp.log1p(gnp.exp(-y * z))) + gnp.max(gnp.tanh(z))


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")
def test_one_ir_object_both_renderers(monkeypatch):
    """Build the loop IR once and render that same object as C and as LLVM IR; both
    kernels, compiled and called, give numpy's value and gradient (at 300 rows: row
    blocks of 4 and the remaining rows, which the C backend never renders itself)."""
    from gradc.backends.c_backend import CArtifact, CKernel
    from gradc.backends.llvm_backend import Kernel, const_bytes
    from gradc.backends.llvm_jit import Artifact

    rng = np.random.default_rng(7)
    W, X, y = _random_args([(9,), (301, 9), (301,)], rng)
    f = gradc.value_and_grad(_logistic, 0)
    graph = f.lower(W, X, y).graph
    s = schedule(graph, share=False)
    kernel = build(s, "one_ir_both", block_rows=True)
    statements = loop_ir.walk([st for nest in kernel.nests for st in nest.body])
    # the rows after the last block of 4, one at a time
    assert any(isinstance(st, loop_ir.Loop) and st.var.name == "row" for st in statements)

    calls = []
    real_c, real_llvm = c_codegen.CCodegen.__init__, llvm_codegen.Codegen.__init__

    def spy_c(self, k, *a, **kw):
        calls.append(("c", k))
        real_c(self, k, *a, **kw)

    def spy_llvm(self, k, *a, **kw):
        calls.append(("llvm", k))
        real_llvm(self, k, *a, **kw)
    monkeypatch.setattr(c_codegen.CCodegen, "__init__", spy_c)
    monkeypatch.setattr(llvm_codegen.Codegen, "__init__", spy_llvm)
    source = c_codegen.render(kernel)
    modules = llvm_codegen.render(kernel)
    assert [(b, k is kernel) for b, k in calls] == [("c", True), ("llvm", True)]

    c_kernel = CKernel.__new__(CKernel)
    c_kernel._attach(graph, s, "one_ir_both", CArtifact(source, "one_ir_both", const_bytes(s)))
    text = [str(m) for m in modules]
    ll_kernel = Kernel.__new__(Kernel)
    ll_kernel._attach(graph, s, "one_ir_both", Artifact(lambda: text, "one_ir_both", ("test", *text)))

    def reference(w):
        z = X @ w
        return np.mean(np.log1p(np.exp(-y * z))) + np.tanh(z).max()
    eps, grad = 1e-6, np.zeros_like(W)
    for i in np.ndindex(W.shape):   # central differences: an oracle independent of gradc
        d = np.zeros_like(W)
        d[i] = eps
        grad[i] = (reference(W + d) - reference(W - d)) / (2 * eps)
    for k in (c_kernel, ll_kernel):
        value, g = k([W, X, y])
        assert abs(value - reference(W)) <= F64_TOL * max(1.0, abs(reference(W)))
        # central differences: truncation O(eps^2 * f''') and rounding O(1e-16 / eps)
        # = 1e-10 relative; 1e-7 leaves room for the max's kink not being near
        np.testing.assert_allclose(g, grad, rtol=1e-6, atol=1e-7)


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_math_calls_and_the_power_check_are_ir(dtype):
    """The math library's functions are calls in the loop IR (``call math.exp``) and an
    integer power's exponent check is a Guard there; LLVM spells the calls as gradc's
    vector functions (sqrt: the intrinsic), C as libm's or gradc.h's, and both give
    numpy's values and raise numpy's error for a negative exponent.  Sizes: 200,003
    elements (several vectors, a remainder; threads split the nest on 2 cores).

    Tolerance: gradc's vector math is within 2.3 ulp of numpy's (test_vecmath.py) and
    libm's within 1 ulp; 8 ulp of the dtype, relative, covers one product of three
    such values and a sum of two."""
    def f(x, n, k):
        return gnp.tanh(x) * gnp.sqrt(gnp.exp(x)) + gnp.sigmoid(x) - gnp.softplus(x), n ** k

    rng = np.random.default_rng(3)
    x = rng.uniform(-3, 3, 200_003).astype(dtype)
    n = rng.integers(-5, 5, 200_003).astype(np.int32)
    k = rng.integers(0, 4, 200_003).astype(np.int32)
    text = gradc.jit(f).lower(x, n, k).loop_ir()
    for fn in ("tanh", "exp", "sqrt", "sigmoid", "softplus"):
        assert f"call math.{fn}(x[i0])" in text or f"call math.{fn}(%" in text, fn
    assert re.search(r"check ge\(k\[i0\], 0:i32\) else status \|= negative_power  # for %\d+", text)
    suffix = "f32" if dtype == np.float32 else "f64"
    ll = gradc.jit(f).lower(x, n, k).llvm_ir(optimized=False)
    assert f"gradc_vm_exp_{suffix}" in ll and f"llvm.sqrt.{suffix}" in ll and f"gradc_vm_sigmoid_{suffix}" in ll
    c = gradc.jit(f, backend="c").lower(x, n, k).c_source()
    f_ = "f" if dtype == np.float32 else ""
    for call in (f"tanh{f_}(", f"exp{f_}(", f"sqrt{f_}(", f"gradc_sigmoid{f_}(", f"gradc_softplus{f_}("):
        assert call in c, call
    assert "if (!(in_k[i0] >= 0)) status |= GRADC_NEGATIVE_POWER;" in c

    e = np.exp(x.astype(np.float64))
    want = (np.tanh(x.astype(np.float64)) * np.sqrt(e) + 1 / (1 + 1 / e) - np.log1p(e)).astype(dtype)
    ulp = np.finfo(dtype).eps
    for backend in ("llvm", "c"):
        got, power = gradc.jit(f, backend=backend)(x, n, k)
        np.testing.assert_allclose(got, want, rtol=8 * ulp, atol=8 * ulp)
        np.testing.assert_array_equal(power, n ** k)
        k_bad = k.copy()
        k_bad[123_456] = -1
        with pytest.raises(ValueError, match="negative integer powers"):
            gradc.jit(f, backend=backend)(x, n, k_bad)


@pytest.mark.parametrize("backend", ["llvm", "c"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint64])
def test_unsigned_powers_are_not_negative(backend, dtype):
    """An unsigned exponent with its top bit set (a uint8 200) is no negative power: it
    is computed, wrapping as numpy's (the LLVM kernel once flagged it as negative)."""
    if backend == "c" and shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler")
    rng = np.random.default_rng(5)
    n = rng.integers(0, 7, 300_001).astype(dtype)
    k = rng.integers(0, np.iinfo(dtype).max, 300_001, endpoint=True, dtype=dtype)
    k[:3] = [np.iinfo(dtype).max, 1 << (8 * np.dtype(dtype).itemsize - 1), 0]
    got = gradc.jit(lambda a, b: a ** b, backend=backend)(n, k)
    np.testing.assert_array_equal(got, n ** k)


def test_threads_count_the_roots_own_math(monkeypatch):
    """A nest whose only work is its root's vector math (a layer's tanh, 2048x64) splits
    over threads; a nest of the same size doing one add does not (below PAR_MIN_WORK)."""
    monkeypatch.setenv("GRADC_NUM_THREADS", "2")
    x = np.linspace(-3.0, 3.0, 2048 * 64).reshape(2048, 64)
    b = np.linspace(-1.0, 1.0, 64)
    costly = gradc.jit(lambda x, b: gnp.tanh(x + b))
    cheap = gradc.jit(lambda x, b: x + b)
    split = re.compile(r"parallel over \[0, (\w+)\) in 8 chunks if \(\(\(\((\w+) \* (\w+)\) >= (\d+)\)")
    m = split.search(costly.lower(x, b).loop_ir())
    assert m is not None and int(m.group(4)) <= x.size
    m = split.search(cheap.lower(x, b).loop_ir())
    assert m is not None and int(m.group(4)) > x.size
    # gradc's tanh and numpy's are each within about 1.3 ulp (gradc bench --vecmath)
    np.testing.assert_allclose(costly(x, b), np.tanh(x + b), rtol=1e-15, atol=0)


@pytest.mark.parametrize("backend", ["llvm", "c"])
@pytest.mark.parametrize("threads", ["1", "2"])
def test_float32_sums_over_the_rows_accumulate_in_float64(threads, backend, monkeypatch):
    """A Student-t negative log-likelihood's gradient with respect to its scale, in
    float32 over 16,389 rows: a sum over the batch with cancellation.  Accumulated in
    float32 it was 2e-5 to 7e-5 off (relative); in a float64 register, rounded once, it
    is within 2e-6 of the float64 truth (a few float32 ulp from the terms' own rounding).
    The value too."""
    monkeypatch.setenv("GRADC_NUM_THREADS", threads)
    rng = np.random.default_rng(0)
    x = rng.standard_t(3, size=(16389, 8))
    w = rng.standard_normal(8) * 0.1

    def nll(log_sig, log_nu, x, w):
        nu = gnp.exp(log_nu) + 2.0
        r = (x @ w) / gnp.exp(log_sig)
        return gnp.mean(0.5 * (nu + 1.0) * gnp.log1p(r * r / nu) + log_sig)

    f = gradc.value_and_grad(nll, argnums=(0, 1), backend=backend)
    args64 = (np.float64(-0.3), np.float64(0.5), x, w)
    v64, g64 = f(*args64)
    v32, g32 = f(*(np.float32(a) if np.ndim(a) == 0 else a.astype(np.float32) for a in args64))
    assert abs(v32 - v64) <= 2e-6 * abs(v64)
    for a, b in zip(g32, g64):
        assert abs(a - b) <= 2e-6 * abs(b), (a, b)
