"""Hot kernels: a kernel that calls vector math is compiled again with the math inlined
once it has run GRADC_HOT_SECONDS in all (``kernel.Kernel.upgrade``,
``llvm_jit.Artifact.hot_address``), and the call path swaps the new code in
(``Plan.set_hot`` / ``Plan.set_kernel``).  The new code must give the same bits as the
old (the same schedule, the same math library's arithmetic), at sizes that split over
threads and vectorize, rank 3, float32 and float64; a kernel without vector math is
never recompiled; a failed recompile leaves the kernel working."""
import itertools
import os
import re
import subprocess
import sys

import numpy as onp
import pytest

import gradc
import gradc.numpy as gnp
from gradc_helpers import kernel_of
from gradc.backends import llvm_jit, vecmath

_callpath = pytest.importorskip("gradc._callpath")


_unique = itertools.count(1)


def chain_with(c):
    """M1's chain with a constant of its own: a kernel no other test compiled."""
    def chain(x):
        return gnp.sum(gnp.tanh(x) * gnp.exp(-x * x) + gnp.log1p(c * x * x))
    return chain


def chain_grad_numpy(x, c):
    t, e = onp.tanh(x), onp.exp(-x * x)
    return (1 - t * t) * e - 2 * x * t * e + 2 * c * x / (1 + c * x * x)


@pytest.fixture
def hot_now(monkeypatch, tmp_path):
    """Upgrade after the first call through the call path; a disk cache of its own."""
    monkeypatch.setenv("GRADC_HOT_SECONDS", "1e-9")
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path))


@pytest.mark.parametrize("threads", ["1", "2", "3"])
@pytest.mark.parametrize("dtype", [onp.float64, onp.float32])
@pytest.mark.parametrize("shape", [(300_001,), (7, 60, 1001)])
def test_the_recompiled_kernel_gives_the_same_bits(shape, dtype, threads, hot_now, monkeypatch):
    monkeypatch.setenv("GRADC_NUM_THREADS", threads)
    x = onp.random.default_rng(len(shape)).uniform(-4, 4, shape).astype(dtype)
    c = 1.0 + next(_unique) / 1024
    f = gradc.value_and_grad(chain_with(c))
    f(x)                                  # compiles; the Python path ran it
    plan = f._fast
    art = kernel_of(f, x).artifact
    assert plan is not None and plan.busy() == 0.0 and plan.address() == art.address
    v_old, g_old = f(x)                   # the call path, first code; then the upgrade
    hot = llvm_jit.init()["hot"][art.key]
    assert plan.address() == hot != art.address
    v_new, g_new = f(x)                   # the recompiled code
    assert v_new == v_old and onp.array_equal(g_new, g_old)
    # and both are right: numpy in float64, within a few ulps of the type per element
    # (tanh, exp and log1p are each within a few ulps, the chain adds a few roundings)
    want = chain_grad_numpy(x.astype(onp.float64), c)
    onp.testing.assert_allclose(g_new, want, rtol=0, atol=32 * onp.finfo(dtype).eps * onp.abs(want).max())
    # another function of the same kernel runs the hot code from its first call
    f2 = gradc.value_and_grad(chain_with(c))
    f2(x)
    assert f2._fast.address() == hot and f2._fast.busy() == 0.0


HOT_FROM_DISK = """
import sys, numpy as onp, gradc, gradc.numpy as gnp
def chain(x):
    return gnp.sum(gnp.tanh(x) * gnp.exp(-x * x) + gnp.log1p(x * x))
x = onp.linspace(-3, 3, 50_001)
f = gradc.value_and_grad(chain)
f(x)
art = f.lower(x)._entry.run.kernel.artifact
first = f._fast.address()
f(x)
print(int(first == art.address), int(f._fast.address() != art.address), float(f(x)[0]))
"""


def test_a_new_process_finds_the_hot_code_in_the_disk_cache(tmp_path):
    """The recompiled kernel is stored beside the first: a process that loads the
    kernel from the disk cache runs the hot code from its first call (same value)."""
    env = dict(os.environ, GRADC_CACHE_DIR=str(tmp_path), GRADC_HOT_SECONDS="1e-9",
               PYTHONPATH=os.path.dirname(os.path.dirname(gradc.__file__)))
    runs = [subprocess.run([sys.executable, "-c", HOT_FROM_DISK], env=env, capture_output=True, text=True,
                           timeout=300) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    (cold_first, cold_upgraded, v1), (warm_first, warm_upgraded, v2) = [r.stdout.split() for r in runs]
    assert (cold_first, cold_upgraded) == ("1", "1")      # first code, then the upgrade
    assert (warm_first, warm_upgraded) == ("0", "1")      # hot from the start
    assert v1 == v2


def test_inlined_code_calls_no_vector_math():
    """The recompiled modules run their vector loops' math inline: no call to a vector
    variant gradc_vm_*_v<lanes> is left (a loop's scalar remainder may still call the
    scalar function, linked in with the module)."""
    x = onp.linspace(-3, 3, 1000)
    art = kernel_of(gradc.value_and_grad(chain_with(1.0)), x).artifact

    def vector_calls(inline_math):
        texts = [text for _obj, text in llvm_jit.compile_parts(art.raw_parts, inline_math=inline_math)]
        return set(re.findall(r'call [^@\n]*@"?(gradc_vm_\w+_v\d+)', "\n".join(texts)))
    lanes = vecmath.host_target().widths("f64")[-1]      # 8 on AVX-512, 4 on AVX2
    assert {f"gradc_vm_{f}_f64_v{lanes}" for f in ("tanh", "exp", "log1p")} <= vector_calls(False)
    assert vector_calls(True) == set()


def test_a_kernel_without_vector_math_is_not_armed(hot_now):
    x = onp.arange(100_000.0)
    f = gradc.value_and_grad(lambda x: gnp.sum(x * x))
    f(x)
    f(x)
    assert f._fast.busy() == 0.0 and kernel_of(f, x).artifact.calls_math is False


def test_zero_seconds_never_recompiles(monkeypatch):
    monkeypatch.setenv("GRADC_HOT_SECONDS", "0")
    x = onp.linspace(-2, 2, 4097)
    f = gradc.value_and_grad(lambda x: gnp.sum(gnp.sin(x) * gnp.exp(x)))
    for _ in range(3):
        f(x)
    assert f._fast.busy() == 0.0
    assert kernel_of(f, x).artifact.key not in llvm_jit.init().get("hot", {})


def test_a_failed_recompile_warns_and_keeps_the_kernel(hot_now, monkeypatch):
    x = onp.linspace(-2, 2, 5003)
    f = gradc.value_and_grad(lambda x: gnp.sum(gnp.cos(x) ** 3))
    f(x)
    art = kernel_of(f, x).artifact

    def broken():
        raise RuntimeError("no LLVM today")
    monkeypatch.setattr(art, "hot_address", broken)
    with pytest.warns(RuntimeWarning, match="keeps its first code"):
        f(x)
    v, g = f(x)
    onp.testing.assert_allclose(g, -3 * onp.cos(x) ** 2 * onp.sin(x), rtol=1e-12, atol=1e-15)


def test_plan_set_hot_calls_back_once_with_the_plan(hot_now):
    x = onp.linspace(0.1, 2, 3001)
    f = gradc.jit(lambda x: gnp.log(x) * gnp.exp(x))
    f(x)
    plan = f._fast
    seen = []
    plan.set_hot(0.0, seen.append)
    f(x)
    f(x)
    assert seen == [plan]
    plan.set_hot(0.0, None)               # disarmed: no clock, nothing counted
    f(x)
    assert plan.busy() == 0.0
    with pytest.raises(TypeError, match="callable"):
        plan.set_hot(1.0, 42)
    with pytest.raises(ValueError, match="address of 0"):
        plan.set_kernel(0)
    onp.testing.assert_allclose(f(x), onp.log(x) * onp.exp(x), rtol=1e-14)


def test_the_upgrade_compiles_in_the_background_and_switches_between_calls(hot_now, monkeypatch):
    """GRADC_HOT_BACKGROUND=1 (the default outside the tests): the call that crosses
    GRADC_HOT_SECONDS returns at once; calls go on with the first code while the hot
    code compiles on a thread of its own; the first call after the compile switches."""
    from gradc.backends.kernel import wait_for_upgrades
    monkeypatch.setenv("GRADC_HOT_BACKGROUND", "1")
    interval = sys.getswitchinterval()
    x = onp.random.default_rng(5).uniform(-3, 3, 200_003)
    f = gradc.value_and_grad(chain_with(1.0 + next(_unique) / 1024))
    v_first, g_first = f(x)               # compiles; the Python path ran it
    art = kernel_of(f, x).artifact
    compile_hot, release = art.hot_address, __import__("threading").Event()

    def slow_compile(compile=True):       # a compile that lasts until the test says
        if compile:
            assert release.wait(timeout=60), "the test never released the compile"
        return compile_hot(compile)
    monkeypatch.setattr(art, "hot_address", slow_compile)
    f(x)                                  # crosses GRADC_HOT_SECONDS: the compile starts
    for _ in range(3):                    # ... and the calls go on with the first code
        v, g = f(x)
        assert f._fast.address() == art.address
        assert v == v_first and onp.array_equal(g, g_first)
    assert not wait_for_upgrades(timeout=0.05)      # still compiling
    assert sys.getswitchinterval() == pytest.approx(0.0002)     # the compile gets the GIL often
    release.set()
    assert wait_for_upgrades(timeout=60)
    assert sys.getswitchinterval() == interval                  # the program's own again
    hot = llvm_jit.init()["hot"][art.key]
    v, g = f(x)                           # the first call after the compile switches
    assert f._fast.address() == hot != art.address
    v, g = f(x)                           # the hot code: the same bits
    assert v == v_first and onp.array_equal(g, g_first)


EXIT_WHILE_COMPILING = """
import os, time, threading, numpy as onp, gradc, gradc.numpy as gnp
from gradc.backends import llvm_jit
compile_parts = llvm_jit.compile_parts
def slow(*a, **k):                     # the hot compile, holding gradc's LLVM lock
    time.sleep(0.5)
    return compile_parts(*a, **k)
llvm_jit.compile_parts = slow
def chain(x):
    return gnp.sum(gnp.tanh(x) * gnp.exp(-x * x) + gnp.log1p(x * x))
x = onp.linspace(-3, 3, 50_001)
f = gradc.value_and_grad(chain)
f(x)                                    # the first code (compiled before the patch bit)
f(x)                                    # starts the hot compile
time.sleep(0.1)
pid = os.fork()                         # waits for the compile: the child can compile
if pid == 0:
    g = gradc.grad(lambda y: gnp.sum(gnp.sin(y) * y))(onp.linspace(0, 1, 5))
    os._exit(0 if onp.allclose(g, onp.sin(onp.linspace(0, 1, 5)) + onp.linspace(0, 1, 5) * onp.cos(onp.linspace(0, 1, 5))) else 3)
_, status = os.waitpid(pid, 0)
f(x)
print(os.waitstatus_to_exitcode(status), float(f(x)[0]))
f(onp.linspace(-2, 2, 60_001) * 1.5)    # exits while a second compile may run: it waits
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_and_exit_while_the_hot_code_compiles(tmp_path):
    """A fork while the hot code compiles waits for it (a child would otherwise inherit
    gradc's LLVM lock held by a thread it does not have, and hang at its first
    compile); the interpreter's exit waits for a compile still running."""
    env = dict(os.environ, GRADC_CACHE_DIR=str(tmp_path), GRADC_HOT_SECONDS="1e-9", GRADC_HOT_BACKGROUND="1",
               PYTHONPATH=os.path.dirname(os.path.dirname(gradc.__file__)))
    r = subprocess.run([sys.executable, "-c", EXIT_WHILE_COMPILING], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    code, value = r.stdout.split()
    x = onp.linspace(-3, 3, 50_001)
    assert code == "0"
    assert float(value) == pytest.approx(onp.sum(onp.tanh(x) * onp.exp(-x * x) + onp.log1p(x * x)), rel=1e-12)
