"""backend="c": the same fused schedule as backend "llvm", lowered to readable C99
(``c_codegen.py``), compiled by the system C compiler into a shared library, loaded with
ctypes, and called through the call path both native backends share (``kernel.py``:
argument checks, outputs, workspace, the C fast path).

The compiler is ``$CC`` if set, else the first of ``cc``, ``gcc``, ``clang`` on PATH.
Flags: ``-O3 -march=native -shared -fPIC`` plus

* ``-std=c99 -ffp-contract=off``: no fused multiply-adds, so every operation rounds as
  numpy's (and the LLVM backend's, which emits no contraction flags) does;
* ``-fno-math-errno``: libm calls need not set errno (sqrt becomes an instruction);
  results are unchanged;
* ``-fopenmp-simd``: honours the ``#pragma omp simd reduction`` the generator puts on
  register sums (reassociating those additions only, like LLVM's ``reassoc`` on its
  accumulators); no OpenMP runtime is linked;
* ``-fwrapv``: integer overflow wraps, as in numpy and LLVM (it is undefined in C).
* ``-fno-tree-slp-vectorize``: GCC 12's straight-line vectorizer drops the float32
  rounding of ``(double)(float)x`` when an ``omp simd`` sum and a later loop of the same
  nest both convert ``x`` (``np.cov(x.astype(np.float32))`` was 1e-8 off); loops still
  vectorize.  ``test_c_backend.py::test_float32_round_trip_survives_gcc`` holds the case.
* ``-mno-avx512f`` on x86-64: GCC 12's loop vectorizer, at -O3 with AVX-512 (-march=native
  on an AVX-512 host, or x86-64-v4), made the gradient of a reversed
  ``lax.cumlogsumexp`` along a leading axis wrong (0.64 off; right at -O2, with
  -fno-tree-loop-vectorize, or for x86-64-v3), so loops vectorize with AVX2 at most.
  ``test_c_backend.py::test_reversed_cumlogsumexp_gradient_survives_gcc`` holds the case.

No ``-ffast-math``: NaN, inf and signed zeros behave as in numpy.

Libraries are cached in gradc's per-user cache directory (``cache.directory()``), named
by a hash of the source, ``gradc.h``, the compiler's identity and flags, and the host
CPU; a library is written to a temporary name and renamed, and one owned by someone
else or writable by others is never loaded.  With caching off they go to a private
temporary directory.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import threading

from ..errors import GradcError
from ..graph import Graph
from . import cache
from .c_codegen import generate
from .kernel import Kernel, compile_kernel, const_bytes, kernel_name
from .schedule import schedule


def _runtime_dir() -> str:
    """Where gradc.h is: inside the package when installed (setup.py copies it to
    gradc/_runtime/), else the checkout's runtime/ directory (an editable install)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    installed = os.path.join(package, "_runtime")
    if os.path.isfile(os.path.join(installed, "gradc.h")):
        return installed
    return os.path.join(os.path.dirname(package), "runtime")


RUNTIME = _runtime_dir()
FLAGS = ["-std=c99", "-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno",
         "-fopenmp-simd", "-fwrapv", "-fno-tree-slp-vectorize", "-fPIC", "-shared"]
if platform.machine().lower() in ("x86_64", "amd64"):
    FLAGS.insert(3, "-mno-avx512f")          # (GCC 12 at -O3 with AVX-512: see the module docstring)

_lock = threading.Lock()
_loaded: dict = {}       # library path -> ctypes.CDLL (kept alive: kernels point into it)
_compilers: dict = {}


class CompilerError(GradcError):
    """No C compiler, or the C compiler failed on generated code."""


# ----------------------------------------------------------------------------- source
def c_source(graph: Graph) -> str:
    """The C99 source of ``graph``'s kernel (what ``backend="c"`` compiles)."""
    return generate(schedule(graph, share=False, native_sort=True), kernel_name(graph))


def header_path() -> str:
    path = os.path.join(RUNTIME, "gradc.h")
    if not os.path.isfile(path):
        raise CompilerError(f"gradc.h is missing (looked for {path}); backend 'c' and gradc build need it: reinstall gradc")
    return path


# ----------------------------------------------------------------------------- compiler
def compiler() -> list[str]:
    """The C compiler command: $CC, else cc, gcc or clang from PATH."""
    env = os.environ.get("CC")
    if env:
        cmd = shlex.split(env)
        if cmd and shutil.which(cmd[0]):
            return cmd
        raise CompilerError(f"the C compiler CC={env!r} was not found on PATH")
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return [path]
    raise CompilerError("backend 'c' needs a C compiler, but none of cc, gcc, clang is on PATH "
                        "(install one, e.g. apt-get install gcc, or set CC)")


def compiler_identity(cmd) -> str:
    """The compiler's path and first --version line (part of the cache key)."""
    key = tuple(cmd)
    if key not in _compilers:
        try:
            r = subprocess.run(cmd + ["--version"], capture_output=True, text=True, timeout=60)
            first = (r.stdout or r.stderr).strip().splitlines()
            _compilers[key] = f"{shutil.which(cmd[0])}: {first[0] if first else '?'}"
        except (OSError, subprocess.TimeoutExpired) as e:
            raise CompilerError(f"cannot run the C compiler {cmd[0]}: {e}") from None
    return _compilers[key]


def compile_library(source: str, out_path: str, cmd=None, flags=FLAGS) -> None:
    """Compile ``source`` into the shared library ``out_path`` (written by rename)."""
    cmd = cmd or compiler()
    folder = os.path.dirname(out_path)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".c-build-") as tmp:
        src = os.path.join(tmp, "kernel.c")
        with open(src, "w") as f:
            f.write(source)
        lib = os.path.join(tmp, "kernel.so")
        argv = cmd + flags + ["-I", os.path.dirname(header_path()), "-o", lib, src, "-lm"]
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            msg = (r.stderr or r.stdout).strip().splitlines()
            raise CompilerError(f"the C compiler failed on generated code (exit {r.returncode}): "
                                + "; ".join(msg[:5]) + f"\ncommand: {' '.join(map(shlex.quote, argv))}")
        os.chmod(lib, 0o700)
        os.replace(lib, out_path)


# ----------------------------------------------------------------------------- artifact
class CArtifact:
    """A compiled C kernel: its source, its library, and the entry address."""

    def __init__(self, source: str, name: str, consts=()):
        from ..version import __version__
        from .llvm_jit import host
        self.source, self.name = source, name
        cmd = compiler()
        with open(header_path(), "rb") as f:
            hdr = f.read()
        self.key = cache.make_key(source, hdr, *consts, compiler_identity(cmd), " ".join(FLAGS),
                                  __version__, *host())
        self.cached = False
        with _lock:
            self.path = self._library(cmd)
            lib = _loaded.get(self.path)
            if lib is None:
                lib = _loaded[self.path] = ctypes.CDLL(self.path)
        self.address = ctypes.cast(getattr(lib, name), ctypes.c_void_p).value

    def _library(self, cmd) -> str:
        d = cache.directory()
        if d is None:
            d = _private_dir()
        path = os.path.join(d, f"c-{self.key}.so")
        if path in _loaded:
            self.cached = True
            return path
        if os.path.exists(path) and _trusted(path) and _loads(path):
            self.cached = True
            return path
        compile_library(self.source, path, cmd)
        return path

    def c_source(self) -> str:
        return self.source

    def llvm_ir(self, optimized=True, cpu="native") -> str:
        raise GradcError("backend 'c' compiles C, not LLVM IR: use c_source() (or gradc.backends.c_backend.c_source)")

    def asm(self, cpu="native") -> str:
        """The compiler's assembly for the kernel (``cc -S`` with the same flags), for
        this host or another ``cpu`` (``llvm_jit.CPUS``: ``-march=x86-64-v4`` ...)."""
        from .llvm_jit import CPUS, UnknownCPU
        if cpu not in CPUS:
            raise UnknownCPU(f"cpu {cpu!r}: expected one of {', '.join(CPUS)}")
        march = "-march=" + {"generic": "x86-64"}.get(cpu, cpu)
        cmd = compiler()
        with tempfile.TemporaryDirectory(prefix="gradc-c-") as tmp:
            src = os.path.join(tmp, "kernel.c")
            with open(src, "w") as f:
                f.write(self.source)
            flags = [march if f == "-march=native" else f for f in FLAGS if f not in ("-shared",)]
            r = subprocess.run(cmd + flags + ["-I", RUNTIME, "-S", "-o", "-", src],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise CompilerError(f"the C compiler failed: {r.stderr.strip()[:500]}")
            return r.stdout


def _trusted(path: str) -> bool:
    """Never load a library another user owns or can write (cache.py's rule)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return os.path.isfile(path) and not os.path.islink(path) and cache._unsafe(st) is None


def _loads(path: str) -> bool:
    """A cached library that does not load (truncated, foreign) is rebuilt."""
    try:
        _loaded[path] = ctypes.CDLL(path)
        return True
    except OSError:
        return False


_private: list = []


def _private_dir() -> str:
    """With caching off: one private (0700) directory per process, removed at exit
    (libraries already loaded stay mapped)."""
    if not _private:
        _private.append(tempfile.mkdtemp(prefix="gradc-c-"))
        atexit.register(shutil.rmtree, _private[0], True)
    return _private[0]


# ----------------------------------------------------------------------------- kernel
class CKernel(Kernel):
    """A graph compiled through C, with the shared call path.

    Only the compilation differs from the LLVM backend's: generated C through the system
    compiler instead of LLVM IR; ``Kernel._attach`` sets up the call path."""

    def __init__(self, graph: Graph, s=None):
        # serial (C kernels run on one thread), and no shared workspace memory: the C
        # kernel declares each intermediate `restrict`; sorts call gradc.h's merge sort
        # (a scan's step comes scheduled with the scan)
        s = schedule(graph, share=False, native_sort=True) if s is None else s
        name = kernel_name(graph)
        self.source = generate(s, name)
        self._attach(graph, s, name, CArtifact(self.source, name, const_bytes(s)))
        self._attach_steps(lambda step: CKernel(step.graph, s=step))

    def loop_ir(self):
        """The loop IR the C source renders (serial)."""
        from .lower_loops import build
        return build(self.schedule, self.name)


def compile(graph: Graph, *, debug_nans=False):
    return compile_kernel(CKernel, graph, debug_nans)
