"""Time gradc's vector math kernels alone, for x86-64-v4 (AVX-512) and x86-64-v3 (AVX2),
against numpy's functions, on data in cache.

``gradc bench --vecmath`` times whole gradc calls on the host's own target; this script
times the library's widest vector variant in a loop compiled for each level (so one
AVX-512 host measures both), and numpy's ufunc with ``out=`` (its loop plus its call
overhead).  Min over repeats, in ns per element (below 1 in the ratio: gradc faster).

    python tools/vecmath_speed.py                          # both dtypes, both levels
    python tools/vecmath_speed.py --dtype f32 --cpu x86-64-v3 --only exp,tanh
    python tools/vecmath_speed.py --against old/vecmath.py  # another vecmath.py too (and
                                                           # the vecmath_*.py next to it)
    NPY_DISABLE_CPU_FEATURES="AVX512_ICL X86_V4" python tools/vecmath_speed.py --cpu x86-64-v3
        # numpy restricted to its AVX2 code, as on an AVX2 host
"""
from __future__ import annotations

import argparse
import ctypes
import time

import llvmlite.binding as llvm
import numpy as np

RANGES = {"exp": (-5, 5), "log": (0.01, 100), "log1p": (-0.5, 10), "expm1": (-5, 5), "tanh": (-5, 5),
          "sigmoid": (-10, 10), "softplus": (-10, 10), "sin": (-10, 10), "cos": (-10, 10)}
NUMPY = {"sigmoid": lambda x, out: np.exp(-np.logaddexp(0.0, -x), out=out),
         "softplus": lambda x, out: np.logaddexp(0.0, x, out=out)}
_alive = []          # engines whose code is being called


def load(path: str):
    """A vecmath.py loaded on its own, with the vecmath_* files next to it
    (gradc.backends.standalone)."""
    from gradc.backends.standalone import load_vecmath
    return load_vecmath(path, f"vecmath_speed_{len(_alive)}_{abs(hash(path))}")


def kernel(vm, name: str, sfx: str, cpu: str):
    """``void bench(T* x, T* y, i64 n, i64 reps)``: reps passes of y = f(x) through the
    widest vector variant for ``cpu``."""
    target = vm.Target(512 if cpu == "x86-64-v4" else 256, True)
    w = max(target.widths(sfx))
    ety = "double" if sfx == "f64" else "float"
    vty, fn = f"<{w} x {ety}>", vm.symbol(name, sfx, w)
    text = vm.library_ir(target, [(name, sfx)]) + f"""
define void @bench(ptr noalias %x, ptr noalias %y, i64 %n, i64 %reps) {{
entry:
  br label %outer
outer:
  %r = phi i64 [0, %entry], [%r1, %next]
  br label %loop
loop:
  %i = phi i64 [0, %outer], [%i1, %loop]
  %px = getelementptr inbounds {ety}, ptr %x, i64 %i
  %v = load {vty}, ptr %px, align 8
  %o = call {vty} @{fn}({vty} %v)
  %py = getelementptr inbounds {ety}, ptr %y, i64 %i
  store {vty} %o, ptr %py, align 8
  %i1 = add i64 %i, {w}
  %c = icmp slt i64 %i1, %n
  br i1 %c, label %loop, label %next
next:
  %r1 = add i64 %r, 1
  %c2 = icmp slt i64 %r1, %reps
  br i1 %c2, label %outer, label %done
done:
  ret void
}}
"""
    tm = llvm.Target.from_default_triple().create_target_machine(cpu=cpu, features="", opt=3,
                                                                 codemodel="jitdefault")
    mod = llvm.parse_assembly(text)
    mod.verify()
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    _alive.append(engine)
    sig = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
    return sig(engine.get_function_address("bench"))


def _offset_like(x):
    """An array like ``x`` whose address is 64 bytes past a 4 KiB multiple from x's."""
    buf = np.empty(x.nbytes + 8192, np.uint8)
    start = (x.ctypes.data % 4096 + 64 - buf.ctypes.data % 4096) % 4096
    return buf[start:start + x.nbytes].view(x.dtype)


def best(fn, repeats=15) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dtype", default="f64,f32")
    p.add_argument("--cpu", default="x86-64-v4,x86-64-v3")
    p.add_argument("--only", default=",".join(RANGES))
    p.add_argument("--against", default=None, help="another vecmath.py, timed first (e.g. an older one)")
    p.add_argument("-n", type=int, default=4096)
    args = p.parse_args(argv)
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    here = __file__.rsplit("/", 2)[0]
    sources = ([args.against] if args.against else []) + [f"{here}/gradc/backends/vecmath.py"]
    vms = [load(s) for s in sources]
    n, inner = args.n, 200
    for sfx in args.dtype.split(","):
        dt = np.float64 if sfx == "f64" else np.float32
        cols = " | ".join(f"{'old ' if args.against and i == 0 else ''}{cpu[-2:]} (ratio)"
                          for i in range(len(vms)) for cpu in args.cpu.split(","))
        print(f"{sfx}, {n} elements, ns per element: numpy | {cols}")
        for name in args.only.split(","):
            x = np.random.default_rng(0).uniform(*RANGES[name], n).astype(dt)
            # y 64 bytes past a 4 KiB multiple from x, whatever numpy's allocator
            # does: no run has loads that seem to depend on stores 4 KiB before
            # (4K aliasing).
            y = _offset_like(x)
            ref = NUMPY.get(name) or (lambda x, out, f=getattr(np, name): f(x, out=out))
            tn = best(lambda: [ref(x, y) for _ in range(inner)]) / inner / n * 1e9
            row = f"  {name:8s} {tn:6.3f}"
            for vm in vms:
                for cpu in args.cpu.split(","):
                    f = kernel(vm, name, sfx, cpu)
                    tg = best(lambda: f(x.ctypes.data, y.ctypes.data, n, inner)) / inner / n * 1e9
                    row += f" | {tg:6.3f} ({tg / tn:4.2f})"
            print(row, flush=True)


if __name__ == "__main__":
    main()
