"""Ahead-of-time libraries (``gradc build``): the C program runtime/examples/train_neuron.c
trains the paper's neuron with a library gradc built, and must reach the final loss the
same training reaches in Python with gradc; libraries are also called through ctypes
and compared with the JIT.

The training comparison is to rtol 1e-12: both sides draw the same data (the same LCG,
the same double operations, the C program compiled with -ffp-contract=off) and run the
same 500 gradient steps; the library's code comes from the JIT's IR generator, so the
only differences are summation orders (vector width, numpy's pairwise sums), ~1e-16
per step, which gradient descent on this loss damps rather than amplifies.
"""
from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gradc
from gradc import aot, cli
from gradc.backends.llvm_codegen import workspace_bytes
from gradc.backends.schedule import schedule

REPO = os.path.dirname(os.path.dirname(os.path.abspath(gradc.__file__)))
EXAMPLES = os.path.join(REPO, "runtime", "examples")
NEURON_TYPES = ["f64[d]", "f64[]", "f64[n,d]", "f64[n]"]
CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler")


def gradc_build(out_dir, *extra, target=os.path.join(EXAMPLES, "neuron.py:loss"), types=NEURON_TYPES):
    """Run ``gradc build`` as a user would: a separate process."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "gradc.cli", "build", target, *types, "-o", str(out_dir), *extra],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


def compile_and_run_trainer(build_dir):
    exe = os.path.join(build_dir, "train_neuron")
    subprocess.run([CC, "-std=c99", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-pedantic", "-Werror",
                    "-I", str(build_dir), os.path.join(EXAMPLES, "train_neuron.c"), "-L", str(build_dir),
                    "-lneuron", f"-Wl,-rpath,{build_dir}", "-o", exe], check=True, capture_output=True, text=True)
    r = subprocess.run([exe], capture_output=True, text=True, timeout=60, check=True)
    return r.stdout


def final_loss(stdout) -> float:
    m = re.search(r"^final loss (\S+)$", stdout, re.M)
    assert m, stdout
    return float(m.group(1))


# ----------------------------------------------------------------------------- the same training in Python
def lcg_data(n=200, d=3):
    """train_neuron.c's data, drawn the same way with the same double operations."""
    state = 20240601

    def uniform():
        nonlocal state
        state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
        return float(state >> 11) * (1.0 / 9007199254740992.0)
    w_true, b_true = [0.5, -1.0, 2.0], 0.3
    X, y = np.empty((n, d)), np.empty(n)
    for i in range(n):
        z = b_true
        for j in range(d):
            X[i, j] = 2.0 * uniform() - 1.0
            z += float(X[i, j]) * w_true[j]
        noise = 0.1 * (2.0 * uniform() - 1.0)
        y[i] = (z if z > 0.0 else 0.0) + noise
    return X, y


def python_training(backend, steps=500, lr=0.1):
    sys.path.insert(0, EXAMPLES)
    try:
        from neuron import loss
    finally:
        sys.path.remove(EXAMPLES)
    X, y = lcg_data()
    vg = gradc.value_and_grad(loss, argnums=(0, 1), backend=backend)
    w, b = np.full(3, 0.1), np.float64(0.1)
    for _ in range(steps):
        _, (dw, db) = vg(w, b, X, y)
        w, b = w - lr * dw, b - lr * db
    return float(gradc.jit(loss, backend=backend)(w, b, X, y))


@pytest.fixture(scope="module")
def neuron_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("neuron")
    stdout = gradc_build(out, "--wrt", "w,b", "--name", "neuron")
    return out, stdout


def test_build_writes_library_and_headers(neuron_build):
    out, stdout = neuron_build
    for f in ("libneuron.so", "neuron.h", "gradc.h"):
        assert os.path.isfile(out / f) and f"wrote {out / f}" in stdout
    h = (out / "neuron.h").read_text()
    for decl in ("int32_t neuron_forward(void **args, const int64_t *sizes, void *workspace);",
                 "int32_t neuron_value_and_grad(void **args, const int64_t *sizes, void *workspace);",
                 "size_t neuron_value_and_grad_workspace_bytes(const int64_t *sizes);",
                 "size_t neuron_forward_workspace_bytes(const int64_t *sizes);",
                 '#include "gradc.h"', "#define NEURON_SIZE_n 1", "#define NEURON_SIZE_d 0"):
        assert decl in h
    assert "sizes[1] = n: X.shape[0], y.shape[0]" in h
    assert re.search(r"args\[5\]\s+out\s+dw\s+double\[d\]", h)
    syms = subprocess.run(["nm", "-D", "--defined-only", str(out / "libneuron.so")], capture_output=True,
                          text=True).stdout if shutil.which("nm") else ""
    if syms:   # only the documented entry points are exported
        exported = sorted(line.split()[-1] for line in syms.splitlines() if " T " in line)
        assert exported == sorted(f"neuron_{e}{s}" for e in ("forward", "value_and_grad")
                                  for s in ("", "_workspace_bytes", "_check_sizes"))


def test_c_program_trains_like_python(neuron_build):
    out, _ = neuron_build
    stdout = compile_and_run_trainer(out)
    assert "step   0  loss" in stdout and "step 450  loss" in stdout
    got = final_loss(stdout)
    want = python_training("llvm")
    assert got == pytest.approx(want, rel=1e-12, abs=0)
    assert got == pytest.approx(python_training("numpy"), rel=1e-12, abs=0)
    assert got < 0.004     # it learned: the noise floor is 0.1**2 / 3 ~ 0.0033


def test_generic_cpu_build_runs(tmp_path):
    gradc_build(tmp_path, "--wrt", "0,1", "--name", "neuron", "--cpu", "generic")
    assert "CPU x86-64" in (tmp_path / "neuron.h").read_text() or "CPU generic" in (tmp_path / "neuron.h").read_text()
    got = final_loss(compile_and_run_trainer(tmp_path))
    assert got == pytest.approx(python_training("llvm"), rel=1e-12, abs=0)


def _host_has(*features):
    from gradc.backends.llvm_jit import host
    flags = host()[1].split(",")
    return all(f"+{f}" in flags for f in features)


def test_x86_64_v3_build(tmp_path):
    if not os.uname().machine == "x86_64":
        pytest.skip("x86-64 only")
    gradc_build(tmp_path, "--wrt", "0,1", "--name", "neuron", "--cpu", "x86-64-v3")
    assert "CPU x86-64-v3" in (tmp_path / "neuron.h").read_text()
    if not _host_has("avx2", "fma"):
        pytest.skip("this host cannot run AVX2 code")
    got = final_loss(compile_and_run_trainer(tmp_path))
    assert got == pytest.approx(python_training("llvm"), rel=1e-12, abs=0)


def test_x86_64_v4_build(tmp_path):
    """An AVX-512 library builds on any x86-64 host; its code uses zmm registers."""
    if not os.uname().machine == "x86_64":
        pytest.skip("x86-64 only")
    gradc_build(tmp_path, "--wrt", "0,1", "--name", "neuron", "--cpu", "x86-64-v4")
    assert "CPU x86-64-v4" in (tmp_path / "neuron.h").read_text()
    objdump = shutil.which("objdump")
    if objdump:
        text = subprocess.run([objdump, "-d", str(tmp_path / "libneuron.so")], capture_output=True, text=True).stdout
        assert "zmm" in text
    if not _host_has("avx512f", "avx512bw", "avx512dq", "avx512vl"):
        pytest.skip("this host cannot run AVX-512 code")
    got = final_loss(compile_and_run_trainer(tmp_path))
    assert got == pytest.approx(python_training("llvm"), rel=1e-12, abs=0)


# ----------------------------------------------------------------------------- ctypes
class Library:
    """Call an AOT library's entry points from Python (as a C program would)."""

    def __init__(self, path, name, entries=("forward", "value_and_grad")):
        self.lib = ctypes.CDLL(str(path))
        self.name = name
        for entry in entries:
            getattr(self.lib, f"{name}_{entry}_workspace_bytes").restype = ctypes.c_size_t
            getattr(self.lib, f"{name}_{entry}_check_sizes").restype = ctypes.c_int32
            getattr(self.lib, f"{name}_{entry}").restype = ctypes.c_int32

    def sizes(self, values):
        return (ctypes.c_int64 * max(len(values), 1))(*values)

    def workspace_bytes(self, entry, sizes):
        return getattr(self.lib, f"{self.name}_{entry}_workspace_bytes")(self.sizes(sizes))

    def check_sizes(self, entry, sizes):
        return getattr(self.lib, f"{self.name}_{entry}_check_sizes")(self.sizes(sizes))

    def __call__(self, entry, inputs, out_shapes, sizes):
        inputs = [np.ascontiguousarray(a, np.float64) if np.asarray(a).dtype.kind == "f" else np.ascontiguousarray(a)
                  for a in inputs]
        outs = [np.full(s, np.nan) for s in out_shapes]
        bufs = inputs + outs
        args = (ctypes.c_void_p * len(bufs))(*[b.ctypes.data for b in bufs])
        ws = np.empty(self.workspace_bytes(entry, sizes) + 64, np.uint8)
        aligned = ws.ctypes.data + (-ws.ctypes.data) % 64
        rc = getattr(self.lib, f"{self.name}_{entry}")(args, self.sizes(sizes), ctypes.c_void_p(aligned))
        return rc, outs


M1 = textwrap.dedent("""\
    import gradc.numpy as gnp

    def m1(x):                              # the benchmark's transcendental chain
        return gnp.sum(gnp.tanh(x) * gnp.exp(-x * x) + gnp.log1p(x * x))
    """)


@pytest.mark.skipif(not (shutil.which("nm") and shutil.which("objdump")), reason="needs binutils")
def test_vector_math_is_linked_in_and_inlined(tmp_path):
    """The library holds the vector math itself (nothing exported but the entry points
    and their helpers), with the vector bodies inlined into the loops: no calls of
    vector variants, none of libm's exp/tanh/log1p; the scalar function serves the
    loop's remainder.  Values as numpy's (sizes around the vector width)."""
    src = tmp_path / "m1.py"
    src.write_text(M1)
    gradc_build(tmp_path, target=f"{src}:m1", types=["f64[n]"])
    lib = tmp_path / "libm1.so"
    exported = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True).stdout
    assert "gradc_vm" not in exported
    asm = subprocess.run(["objdump", "-d", str(lib)], capture_output=True, text=True).stdout
    called = set(re.findall(r"\scall\s+[0-9a-f]+ <([^>]+)>", asm))
    assert not [c for c in called if re.fullmatch(r"gradc_vm_\w+_v\d+", c)], sorted(called)
    assert not [c for c in called if re.match(r"(exp|tanh|log1p)f?@", c)], sorted(called)
    assert {"gradc_vm_tanh_f64", "gradc_vm_exp_f64", "gradc_vm_log1p_f64"} <= called
    ns = {}
    exec(compile(M1, str(src), "exec"), ns)
    library = Library(lib, "m1")
    for n in (0, 1, 3, 4, 5, 17, 1003):
        x = np.random.default_rng(n).normal(size=n)
        rc, (value, dx) = library("value_and_grad", [x], [(), (n,)], [n])
        assert rc == 0
        want_v, want_dx = gradc.value_and_grad(ns["m1"], backend="numpy")(x)
        np.testing.assert_allclose(value, want_v, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=1e-12)


PERIODIC = textwrap.dedent("""\
    import gradc.numpy as gnp

    def periodic(w, t):                     # phase features: a remainder, a floor, a rint
        phase = (t * w) % 1.5
        return gnp.sum(gnp.sin(phase) + gnp.fmod(t, w) * gnp.floor(t) - gnp.rint(t * 0.1))
    """)


def test_rounding_and_remainders_link_and_match(tmp_path):
    """A library whose loops call C's fmod (LLVM's frem) and round to integers loads
    (libm resolves) and matches the numpy backend, value and gradient."""
    src = tmp_path / "periodic.py"
    src.write_text(PERIODIC)
    gradc_build(tmp_path, "--wrt", "w", target=f"{src}:periodic", types=["f64[]", "f64[n]"])
    ns = {}
    exec(compile(PERIODIC, str(src), "exec"), ns)
    library = Library(tmp_path / "libperiodic.so", "periodic")
    for n in (1, 17, 1003):
        w, t = np.array(0.75), np.random.default_rng(n).uniform(-20, 20, n)
        rc, (value, dw) = library("value_and_grad", [w, t], [(), ()], [n])
        assert rc == 0
        want_v, want_dw = gradc.value_and_grad(ns["periodic"], backend="numpy")(w, t)
        np.testing.assert_allclose(value, want_v, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dw, want_dw, rtol=1e-12, atol=1e-12)


def test_library_matches_the_jit(neuron_build):
    out, _ = neuron_build
    lib = Library(out / "libneuron.so", "neuron")
    sys.path.insert(0, EXAMPLES)
    try:
        from neuron import loss
    finally:
        sys.path.remove(EXAMPLES)
    r = np.random.default_rng(5)
    for n, d in [(0, 3), (1, 1), (7, 4), (33, 9), (1000, 5)]:
        w, b, X, y = r.standard_normal(d), r.standard_normal(()), r.standard_normal((n, d)), r.standard_normal(n)
        assert lib.check_sizes("value_and_grad", [d, n]) == 0
        rc, (value, dw, db) = lib("value_and_grad", [w, b, X, y], [(), (d,), ()], [d, n])
        assert rc == 0
        want_v, (want_dw, want_db) = gradc.value_and_grad(loss, argnums=(0, 1), backend="numpy")(w, b, X, y)
        for got, want in [(value, want_v), (dw, want_dw), (db, want_db)]:
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
        rc, (fv,) = lib("forward", [w, b, X, y], [()], [d, n])
        # the forward kernel sums X @ w in other vector lanes than value_and_grad's, whose
        # dot products share a loop with the previous rows' gradient: equal to rounding
        assert rc == 0
        np.testing.assert_allclose(fv, value, rtol=1e-12, atol=1e-13)
    assert lib.check_sizes("forward", [-1, 3]) == 4     # GRADC_NEGATIVE_SIZE


def test_workspace_bytes_mirrors_codegen(neuron_build):
    out, _ = neuron_build
    lib = Library(out / "libneuron.so", "neuron")
    sys.path.insert(0, EXAMPLES)
    try:
        from neuron import loss
    finally:
        sys.path.remove(EXAMPLES)
    fwd, vg = aot.trace_entries(loss, NEURON_TYPES, (0, 1))
    for entry, g in (("forward", fwd), ("value_and_grad", vg)):
        s = schedule(g)
        for n, d in [(0, 0), (1, 1), (7, 3), (1000, 17)]:
            assert lib.workspace_bytes(entry, [d, n]) == workspace_bytes(s, {"n": n, "d": d}) > 0


EDGE = textwrap.dedent("""\
    import numpy as np
    import gradc.numpy as gnp

    C = np.array([[1.0, -2.0, 0.5], [3.0, 0.25, -1.0]])

    def consts(w, x):                       # an array constant, embedded in the library
        return gnp.sum(w * x) + gnp.sum(gnp.tanh(C @ w)) + gnp.max(x)

    def passthrough(a, b, s):               # da = b, db = a (inputs), ds = 0 (a constant)
        return gnp.sum(a * b) + 0.0 * gnp.sum(gnp.stop_gradient(s))

    def twice(a, b):                        # da and db are one node: a repeated output
        return gnp.sum(a + b)

    K = np.array([1.0, 2.0, 3.0])

    def linear(w):                          # dw is an array constant, also read by the value
        return gnp.sum(w * K) + gnp.sum(gnp.exp(K) * w)

    def picks(X, i):                        # a gather: index checks; max needs n >= 1
        return gnp.sum(gnp.take_along_axis(X, gnp.reshape(i, (-1, 1)), axis=1)) + gnp.max(X)

    def window(x):                          # x[2:5] needs n >= 5
        return gnp.sum(x[2:5] ** 2)

    def mlp(W1, b1, W2, b2, X, Y):          # matrix products: generated loops (no BLAS)
        return gnp.mean((gnp.relu(X @ W1 + b1) @ W2 + b2 - Y) ** 2)

    def ce(W, X, labels):                   # softmax cross-entropy: max, gather, scatter-add
        lp = gnp.log_softmax(X @ W, axis=1)
        return -gnp.mean(gnp.take_along_axis(lp, gnp.reshape(labels, (-1, 1)), axis=1))
    """)


@pytest.fixture(scope="module")
def edge_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("edge") / "edge.py"
    p.write_text(EDGE)
    return p


def _build_in_process(tmp_path, target, *argv):
    code = cli.main(["build", target, *argv, "-o", str(tmp_path)])
    assert code == 0


def _edge(edge_file, name):
    ns = {}
    exec(compile(EDGE, str(edge_file), "exec"), ns)
    return ns[name]


def test_constants_are_embedded(tmp_path, edge_file, capsys):
    _build_in_process(tmp_path, f"{edge_file}:consts", "f64[3]", "f64[3]", "--wrt", "0,1")
    assert "1 array(s) the model closes over are embedded" in (tmp_path / "consts.h").read_text()
    lib = Library(tmp_path / "libconsts.so", "consts")
    w, x = np.array([0.3, -0.7, 1.1]), np.array([2.0, 5.0, -1.0])
    rc, outs = lib("value_and_grad", [w, x], [(), (3,), (3,)], [])      # every size fixed
    want = gradc.value_and_grad(_edge(edge_file, "consts"), argnums=(0, 1), backend="numpy")(w, x)
    assert rc == 0
    np.testing.assert_allclose(outs[0], want[0], rtol=1e-12)
    for got, exp in zip(outs[1:], want[1]):
        np.testing.assert_allclose(got, exp, rtol=1e-12)


def test_every_output_slot_is_written(tmp_path, edge_file):
    _build_in_process(tmp_path, f"{edge_file}:passthrough", "f64[n]", "f64[n]", "f64[]", "--wrt", "0,1,2")
    lib = Library(tmp_path / "libpassthrough.so", "passthrough")
    a, b = np.array([1.0, 2.0, 3.0]), np.array([-4.0, 5.0, 0.5])
    rc, (v, da, db, ds) = lib("value_and_grad", [a, b, np.float64(7.0)], [(), (3,), (3,), ()], [3])
    assert rc == 0 and v == np.dot(a, b)
    np.testing.assert_array_equal(da, b)
    np.testing.assert_array_equal(db, a)
    assert ds == 0.0

    _build_in_process(tmp_path, f"{edge_file}:twice", "f64[n]", "f64[n]", "--wrt", "0,1")
    lib = Library(tmp_path / "libtwice.so", "twice")
    rc, (v, da, db) = lib("value_and_grad", [a, b], [(), (3,), (3,)], [3])
    assert rc == 0 and v == pytest.approx(a.sum() + b.sum())
    np.testing.assert_array_equal(da, np.ones(3))
    np.testing.assert_array_equal(db, np.ones(3))

    _build_in_process(tmp_path, f"{edge_file}:linear", "f64[3]")
    lib = Library(tmp_path / "liblinear.so", "linear")
    w = np.array([0.5, -1.0, 2.0])
    rc, (v, dw) = lib("value_and_grad", [w], [(), (3,)], [])
    K = np.array([1.0, 2.0, 3.0])
    assert rc == 0 and v == pytest.approx(w @ (K + np.exp(K)), rel=1e-14)
    np.testing.assert_array_equal(dw, K + np.exp(K))


def test_status_and_size_checks(tmp_path, edge_file):
    _build_in_process(tmp_path, f"{edge_file}:picks", "f64[n,k]", "i64[n]")
    lib = Library(tmp_path / "libpicks.so", "picks")
    X = np.arange(6.0).reshape(3, 2)
    rc, (v,) = lib("forward", [X, np.array([1, 0, -1])], [()], [2, 3])     # sizes: k, n
    assert rc == 0 and v == X[0, 1] + X[1, 0] + X[2, 1] + 5.0
    rc, _ = lib("forward", [X, np.array([1, 2, 0])], [()], [2, 3])
    assert rc == 1                                                          # GRADC_INDEX_OUT_OF_BOUNDS
    assert lib.check_sizes("value_and_grad", [0, 3]) == 2                   # GRADC_EMPTY_REDUCTION

    _build_in_process(tmp_path, f"{edge_file}:window", "f64[n]")
    lib = Library(tmp_path / "libwindow.so", "window")
    assert "The model needs n >= 5." in (tmp_path / "window.h").read_text()
    assert lib.check_sizes("forward", [4]) == 3                             # GRADC_SIZE_TOO_SMALL
    assert lib.check_sizes("forward", [5]) == 0


def test_benchmark_models_match_numpy(tmp_path, edge_file):
    r = np.random.default_rng(7)
    _build_in_process(tmp_path, f"{edge_file}:mlp", "f64[d,h]", "f64[h]", "f64[h,k]", "f64[k]", "f64[n,d]",
                      "f64[n,k]", "--wrt", "0,1,2,3")
    lib = Library(tmp_path / "libmlp.so", "mlp")
    assert "sizes[0] = d" in (tmp_path / "mlp.h").read_text()
    for n, d, h, k in [(0, 2, 3, 1), (7, 3, 5, 2), (33, 9, 17, 4)]:
        args = [r.standard_normal(s) for s in [(d, h), (h,), (h, k), (k,), (n, d), (n, k)]]
        rc, outs = lib("value_and_grad", args, [(), (d, h), (h,), (h, k), (k,)], [d, h, k, n])
        v, grads = gradc.value_and_grad(_edge(edge_file, "mlp"), argnums=(0, 1, 2, 3), backend="numpy")(*args)
        assert rc == 0
        for got, want in zip(outs, [v, *grads]):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)

    _build_in_process(tmp_path, f"{edge_file}:ce", "f64[d,k]", "f64[n,d]", "i64[n]")
    lib = Library(tmp_path / "libce.so", "ce")
    for n, d, k in [(1, 2, 3), (9, 4, 5), (33, 8, 10)]:
        W, X, labels = r.standard_normal((d, k)), r.standard_normal((n, d)), r.integers(0, k, n)
        rc, (v, dW) = lib("value_and_grad", [W, X, labels], [(), (d, k)], [d, k, n])
        want_v, want_dW = gradc.value_and_grad(_edge(edge_file, "ce"), backend="numpy")(W, X, labels)
        assert rc == 0
        np.testing.assert_allclose(v, want_v, rtol=1e-12)
        np.testing.assert_allclose(dW, want_dW, rtol=1e-12, atol=1e-14)
        rc, _ = lib("value_and_grad", [W, X, np.full(n, k)], [(), (d, k)], [d, k, n])
        assert rc == 1                     # a label out of range: GRADC_INDEX_OUT_OF_BOUNDS


def test_headers_compile_as_c99_and_cpp(neuron_build, tmp_path):
    out, _ = neuron_build
    src = tmp_path / "use.c"
    src.write_text('#include "neuron.h"\n'
                   "int main(void) {\n"
                   "    gradc_kernel k = neuron_value_and_grad;   /* the ABI type of gradc.h */\n"
                   "    int64_t sizes[NEURON_NUM_SIZES] = {0};\n"
                   "    (void)k;\n"
                   "    return (int)neuron_forward_workspace_bytes(sizes);\n"
                   "}\n")
    subprocess.run([CC, "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-I", str(out), "-c", str(src),
                    "-o", str(tmp_path / "use.o")], check=True)
    cxx = shutil.which("c++")
    if cxx:
        cpp = tmp_path / "use.cpp"
        cpp.write_text(src.read_text())
        subprocess.run([cxx, "-Wall", "-Werror", "-I", str(out), "-c", str(cpp), "-o", str(tmp_path / "u.o")],
                       check=True)


def test_build_errors_are_one_line(tmp_path, edge_file, capsys):
    code = cli.main(["build", f"{edge_file}:consts", "f64[k]", "f64[k]", "--name", "9lives", "-o", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "must be a C identifier" in err and "Traceback" not in err
    bad = tmp_path / "bad.py"
    bad.write_text("import gradc.numpy as np\ndef vec(x):\n    return x * 2\n")
    code = cli.main(["build", f"{bad}:vec", "f64[n]", "-o", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "must return a scalar" in err
    with pytest.raises(SystemExit):
        cli.main(["build", f"{bad}:vec", "f64[n]", "--cpu", "pentium"])
    assert "invalid choice: 'pentium'" in capsys.readouterr().err


def test_gradc_c_prints_the_source(tmp_path, capsys):
    code = cli.main(["c", os.path.join(EXAMPLES, "neuron.py:loss"), *NEURON_TYPES, "--wrt", "w,b"])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("/* gradc_loss_vjp_") and '#include "gradc.h"' in out
    assert "= relu %" in out and "neuron.py:" in out
    code = cli.main(["c", os.path.join(EXAMPLES, "neuron.py:loss"), *NEURON_TYPES, "--forward",
                     "-o", str(tmp_path / "f.c")])
    assert code == 0 and "gradc_loss_" in (tmp_path / "f.c").read_text()


def test_a_size_the_model_fixes_is_refused(tmp_path):
    """A size TYPES names that the model fixes while tracing (reading it as a number)
    would make a library that silently serves only the traced example: refused, naming
    the size and the line; a model that keeps it builds, and runs at two sizes."""
    import gradc.numpy as gnp

    def divided(w, X):
        return gnp.sum((X @ w) ** 2) / X.shape[0]

    def by_len(w, X):
        return gnp.sum((X @ w) ** 2) / len(X)

    def mean(w, X):
        return gnp.mean((X @ w) ** 2)
    line = divided.__code__.co_firstlineno + 1
    with pytest.raises(aot.BuildError, match=rf"fixes the sizes d, n of TYPES.*size n is fixed to \d+ at "
                                             rf"test_aot.py:{line}.*gnp.mean"):
        aot.build(divided, ["f64[d]", "f64[n,d]"], out_dir=str(tmp_path), name="divided")
    with pytest.raises(aot.BuildError, match=r"fixes the size n of TYPES"):      # len() fixes n alone
        aot.build(by_len, ["f64[d]", "f64[n,d]"], out_dir=str(tmp_path), name="by_len")
    lib = Library(aot.build(mean, ["f64[d]", "f64[n,d]"], out_dir=str(tmp_path), name="mean")[0], "mean")
    r = np.random.default_rng(0)
    for n in (5, 40):
        w, X = r.normal(size=3), r.normal(size=(n, 3))
        rc, (value, dw) = lib("value_and_grad", [w, X], [(), (3,)], [3, n])
        assert rc == 0
        assert float(value) == pytest.approx(np.mean((X @ w) ** 2), rel=1e-13)
        np.testing.assert_allclose(dw, 2 * X.T @ (X @ w) / n, rtol=1e-12)


def test_a_forward_only_library(tmp_path):
    """``--forward`` (``wrt=None``): NAME_forward alone, for a function of several
    outputs (a prediction: probabilities and the argmax) and for one no gradient
    exists for (a while loop on a traced condition); values against numpy at two sizes."""
    import gradc.numpy as gnp
    from gradc import lax, nn

    def predict(W, b, X):
        logits = X @ W + b
        return nn.softmax(logits, axis=1), gnp.argmax(logits, axis=1)

    def newton_sqrt(a):
        def body(c):
            x, i = c
            return 0.5 * (x + a / x), i + 1
        x, _ = lax.while_loop(lambda c: gnp.logical_and(gnp.max(gnp.abs(c[0] * c[0] - a)) > 1e-12, c[1] < 60),
                              body, (a, 0))
        return x
    paths = aot.build(predict, ["f64[d,k]", "f64[k]", "f64[n,d]"], wrt=None, out_dir=str(tmp_path), name="predict")
    header = open(paths[1]).read()
    assert "predict_forward(" in header and "value_and_grad" not in header and "int64_t[n]" in header
    lib = ctypes.CDLL(paths[0])
    lib.predict_forward.argtypes = [ctypes.c_void_p] * 3
    r = np.random.default_rng(0)
    for n in (3, 50):
        W, b, X = r.normal(size=(4, 6)), r.normal(size=6), r.normal(size=(n, 4))
        probs, labels = np.zeros((n, 6)), np.zeros(n, np.int64)
        bufs = [W, b, X, probs, labels]
        args = (ctypes.c_void_p * 5)(*[a.ctypes.data for a in bufs])
        sizes = (ctypes.c_int64 * 3)(4, 6, n)        # d, k, n: the order of first appearance
        ws = np.zeros(1 << 16, np.uint8)
        assert lib.predict_forward(args, sizes, ws.ctypes.data) == 0
        logits = X @ W + b
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        np.testing.assert_allclose(probs, e / e.sum(axis=1, keepdims=True), rtol=1e-13)
        np.testing.assert_array_equal(labels, np.argmax(logits, axis=1))
    with pytest.raises(gradc.GradcError, match="reverse-mode differentiation of lax.while_loop"):
        aot.build(lambda a: gnp.sum(newton_sqrt(a)), ["f64[n]"], out_dir=str(tmp_path), name="newton")
    lib = Library(aot.build(newton_sqrt, ["f64[n]"], wrt=None, out_dir=str(tmp_path), name="newton")[0], "newton",
                  entries=("forward",))
    a = r.uniform(0.5, 9.0, size=17)
    rc, (x,) = lib("forward", [a], [(17,)], [17])
    assert rc == 0
    np.testing.assert_allclose(x, np.sqrt(a), rtol=1e-14)


def test_build_forward_on_the_command_line(tmp_path, edge_file, capsys):
    """``gradc build --forward``: the forward entry point alone; with --wrt, an error."""
    MLP_TYPES = ["f64[d,h]", "f64[h]", "f64[h,k]", "f64[k]", "f64[n,d]", "f64[n,k]"]
    _build_in_process(tmp_path, f"{edge_file}:mlp", *MLP_TYPES, "--forward")
    header = (tmp_path / "mlp.h").read_text()
    assert "--forward" in header and "mlp_forward(" in header and "mlp_value_and_grad" not in header
    assert cli.main(["build", f"{edge_file}:mlp", *MLP_TYPES, "--forward", "--wrt", "0", "-o", str(tmp_path)]) == 2
    assert "--wrt applies to the gradient; it cannot be combined with --forward" in capsys.readouterr().err
