"""The JIT's parallel compilation: a kernel's modules (``llvm_codegen.lower_parts``)
compile on several threads outside llvmlite's lock, give the same object code as one
thread does, link in the engine, and report errors from any thread."""
import re
import threading

import numpy as onp
import pytest

import gradc
from gradc import bench_models as B
from gradc.backends import llvm_jit


def _parts(model="M4"):
    m = B.MODELS[model]
    lowered = gradc.value_and_grad(m.gradc, argnums=m.argnums).lower(*B.make_data(model, "small"))
    return lowered._native()


def test_parallel_nests_become_modules_of_their_own():
    """M4: the kernel (with its parallel nests' tasks), then a module per parallel
    nest's body, which the kernel declares and a task calls.  M2: its row-blocked
    nest's rows after the last block (all of them for a matrix larger than the cache)
    in a module of their own too, called by the same task after the blocks."""
    def defined(text):
        return re.findall(r'^define [^@]*@"?([\w.]+)"?\(', text, re.M)
    art = _parts("M4")
    name, parts = art.name, art.raw_parts
    assert len(parts) >= 3 and name in defined(parts[0])
    for body in parts[1:]:
        (body_name,) = defined(body)
        assert f'declare void @"{body_name}"' in parts[0] and f'call void @"{body_name}"' in parts[0]
    # what a reader sees: every module, in order
    assert art.llvm_ir(optimized=False).count("; ModuleID") == len(parts)

    art = _parts("M2")
    name, parts = art.name, art.raw_parts
    assert len(parts) == 3
    (blocks,), (rest,) = defined(parts[1]), defined(parts[2])
    assert rest.endswith(".rest")
    task = re.search(r'define internal void @"[\w.]+\.task\d+"\(.*?\n}', parts[0], re.S).group(0)
    assert task.index(f'call void @"{blocks}"') < task.index(f'call void @"{rest}"')
    assert 'label %"row.cond"' in parts[2] and "rows.cond" not in parts[2]   # one row at a time
    assert "rows.cond" in parts[1] and 'label %"row.cond"' not in parts[1]   # whole blocks


def _rnn_loss(W, U, xs):
    """An RNN unrolled over its steps (``unroll=True``: the step repeated in the graph,
    as a Python loop over the steps is)."""
    def step(h, x):
        h = gradc.numpy.tanh(h @ W + x @ U)
        return h, gradc.numpy.sum(h)
    h, ys = gradc.lax.scan(step, gradc.numpy.zeros((xs.shape[1], W.shape[0])), xs, unroll=True)
    return gradc.numpy.sum(ys) + gradc.numpy.sum(h ** 2)


def _rnn_grad_numpy(W, U, xs):
    """The RNN's gradient by hand (backpropagation through time), the oracle."""
    hs, h = [onp.zeros((xs.shape[1], W.shape[0]))], onp.zeros((xs.shape[1], W.shape[0]))
    for x in xs:
        h = onp.tanh(h @ W + x @ U)
        hs.append(h)
    dW, dU, dh = onp.zeros_like(W), onp.zeros_like(U), 2 * hs[-1]
    for t in range(len(xs), 0, -1):
        dz = (dh + 1.0) * (1 - hs[t] ** 2)      # each step's sum(h) adds 1 to dh
        dW += hs[t - 1].T @ dz
        dU += xs[t - 1].T @ dz
        dh = dz @ W.T
    return dW, dU


@pytest.mark.parametrize("threads", ["1", None])
def test_an_unrolled_loop_compiles_each_distinct_body_once(threads):
    """An RNN's gradient scanned over 60 steps repeats each step's nests with other
    buffers: its kernel compiles one module per distinct nest body, a handful, not one
    per nest, and the kernel's function calls its serial nests' bodies instead of
    holding every copy.  The gradient is backpropagation through time's, computed by
    hand, on one thread and on the default pool."""
    from gradc.roofline import gradc_threads
    r = onp.random.default_rng(0)
    W, U = r.standard_normal((32, 32)) * 0.2, r.standard_normal((16, 32)) * 0.2
    xs = r.standard_normal((60, 64, 16))
    with gradc_threads(threads):
        f = gradc.grad(_rnn_loss, argnums=(0, 1))
        got = [f(W, U, xs) for _ in range(3)][-1]
        art = f.lower(W, U, xs)._native()
        nests = len(art.raw_parts) and f.lower(W, U, xs)._entry.run.kernel.schedule.nests
    for g, w in zip(got, _rnn_grad_numpy(W, U, xs)):
        onp.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-11 * onp.abs(w).max())
    parts = art.raw_parts
    assert len(nests) > 300 and len(parts) < 40, (len(nests), len(parts))
    calls = re.findall(r'call void @"([\w.]+\.nest\d+(?:\.rest)?)"', parts[0])
    assert len(calls) > 5 * len(set(calls))     # each body serves many nests


def test_threads_compile_the_same_code_as_one_thread():
    texts = _parts("M5").raw_parts
    s = llvm_jit.init()
    alone = [llvm_jit._compile_private(t, s["tm"]) for t in texts]
    with llvm_jit._lock:
        together = llvm_jit.compile_parts(texts)
    assert [o for o, _ in together] == [o for o, _ in alone]
    assert [t for _, t in together] == [t for _, t in alone]


def test_an_error_in_any_thread_reaches_the_caller():
    texts = _parts("M5").raw_parts
    broken = texts[:1] + ["define void @oops() {\n  ret i32 0\n}\n"] + texts[2:]
    with llvm_jit._lock, pytest.raises(RuntimeError, match="parsing error"):
        llvm_jit.compile_parts(broken)
    assert threading.active_count() < 50   # no thread left hanging


@pytest.mark.parametrize("objects", [[b"a"], [b"abc", b"de" * 1000, b"f"]])
def test_objects_pack_into_one_cache_entry(objects):
    assert llvm_jit.unpack(llvm_jit.pack(objects)) == objects


@pytest.mark.parametrize("blob", [b"", b"\x05\0\0\0\0\0\0\0abc", b"\0" * 8, b"\x01\0\0"])
def test_a_malformed_entry_is_a_miss(blob):
    assert llvm_jit.unpack(blob) is None


def test_kernels_compiled_at_once_from_many_threads_agree():
    """User threads compiling kernels concurrently (each kernel's modules on threads of
    their own) get working code."""
    results, errors = {}, []

    def run(k):
        try:
            def loss(W, X, c=float(k)):
                return gradc.numpy.mean(gradc.numpy.tanh(X @ W) * c)
            rng = onp.random.default_rng(k)
            W, X = rng.normal(size=(5, 3)), rng.normal(size=(50_000, 5))
            got = gradc.value_and_grad(loss)(W, X)
            ref = gradc.value_and_grad(loss, backend="numpy")(W, X)
            results[k] = (got, ref)
        except BaseException as e:   # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=run, args=(k,)) for k in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for (v, g), (rv, rg) in results.values():
        onp.testing.assert_allclose(v, rv, rtol=1e-12)
        onp.testing.assert_allclose(g, rg, rtol=1e-12, atol=1e-15)


def test_one_thread_when_asked(monkeypatch):
    """GRADC_NUM_THREADS=1 keeps compilation on the caller's thread; 2 starts one
    helper thread (and the caller compiles too)."""
    texts = _parts("M5").raw_parts
    started = []

    class Recorder(threading.Thread):
        def start(self):
            started.append(self)
            super().start()
    monkeypatch.setattr(threading, "Thread", Recorder)
    for threads, helpers in (("1", 0), ("2", 1)):
        monkeypatch.setenv("GRADC_NUM_THREADS", threads)
        started.clear()
        with llvm_jit._lock:
            done = llvm_jit.compile_parts(texts)
        assert len(started) == helpers and len(done) == len(texts)


def test_perf_map_names_the_jit_code(tmp_path):
    """GRADC_PERF_MAP=1: /tmp/perf-PID.map names the kernel and the vector math it
    calls, each at an address of executable memory of the process (where perf looks)."""
    import os
    import subprocess
    import sys
    code = (
        "import os, numpy as np, gradc, gradc.numpy as gnp\n"
        "f = gradc.value_and_grad(lambda w, x: gnp.sum(gnp.tanh(x @ w)))\n"
        "f(np.ones(8), np.ones((64, 8)))\n"
        "print(os.getpid())\n"
        "print(open(f'/proc/{os.getpid()}/maps').read())\n")
    env = dict(os.environ, GRADC_PERF_MAP="1", GRADC_CACHE_DIR=str(tmp_path), GRADC_HOT_BACKGROUND="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    pid, maps = out.split("\n", 1)
    path = f"/tmp/perf-{pid}.map"
    try:
        entries = [line.split() for line in open(path)]
    finally:
        os.remove(path)
    executable = [tuple(int(x, 16) for x in line.split()[0].split("-")) for line in maps.splitlines()
                  if len(line.split()) > 1 and "x" in line.split()[1]]
    names = {name for _a, _n, name in entries}
    assert any(re.fullmatch(r"gradc_\w+_vjp_\w+", n) for n in names), names
    assert "gradc_vm_tanh_f64" in names, names
    for a, n, name in entries:
        lo, size = int(a, 16), int(n, 16)
        assert size > 0 and any(s <= lo and lo + size <= e for s, e in executable), (name, a, n)
