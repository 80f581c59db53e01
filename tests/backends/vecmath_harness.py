"""Shared helpers for testing vectorized math kernels.

* ``ulp_error(got, ref, dtype)``: error in ulps of the output dtype, with
  exact treatment of nan/inf/signed zero (reusable by other tests).
* ``host_target_machine()``, ``optimize(mod, tm)``: the O3 new-pass-manager
  pipeline with loop + SLP vectorization for the host CPU.
* ``compile_unary_kernel(name, dtype)``: ``void k(T* x, T* y, i64 n)`` with
  ``y[i] = gradc_vm_<name>(x[i])`` declared as a gradc kernel declares it,
  optimized (the loop vectorizer calls the vector variant; the remainder the
  scalar function) and JIT-compiled with MCJIT next to the vector math object
  code the JIT uses (``llvm_jit.vecmath_object``).
* ``compile_lanes_kernels(name, dtype, target)``: one unoptimized loop per
  entry point (the scalar function and each vector variant), called directly,
  and one over a scalar body emitted by the same code, for checking that they
  agree bit for bit.
"""

from __future__ import annotations

import ctypes
import functools
import re
from dataclasses import dataclass

import numpy as np
import llvmlite.binding as llvm
from llvmlite import ir

from gradc.backends import llvm_jit, vecmath

llvm.initialize_native_target()
llvm.initialize_native_asmprinter()


# ---------------------------------------------------------------------------
# ulp error
# ---------------------------------------------------------------------------

def ulp_error(got, ref, dtype) -> np.ndarray:
    """|got - ref| in units of the last place of ``dtype`` at ``ref``.

    ``got`` holds results in ``dtype``; ``ref`` may be more precise (float64
    for float32 results, longdouble for float64 results).  The ulp is that
    of ref rounded to dtype (2**(e - p + 1), the subnormal ulp below the
    normal range).  Special values are compared exactly: nan vs nan is 0,
    nan vs anything else is inf; zeros and infinities must agree in sign
    (else inf); an infinity against a finite value counts as 2**(emax+1), so
    inf against the largest finite number is 1 ulp.  Returns float64 errors.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        return _ulp_error(got, ref, np.dtype(dtype))


def _ulp_error(got, ref, dtype) -> np.ndarray:
    info = np.finfo(dtype)
    wide = np.longdouble if dtype == np.float64 else np.float64
    got = np.asarray(got, dtype)
    ref_w = np.asarray(ref).astype(wide)
    ref_o = ref_w.astype(dtype)                           # rounded to output
    big = np.ldexp(wide(1), info.maxexp)                  # 2**(emax+1)

    def finite_or_big(v):
        return np.where(np.isinf(v), np.copysign(big, v), v)

    g = finite_or_big(got.astype(wide))
    r = finite_or_big(ref_w)
    a = np.abs(ref_o.astype(wide))
    a = np.where(np.isinf(a), wide(info.max), a)
    _, e = np.frexp(a)                                    # a = m * 2**e, m in [.5, 1)
    nmant = info.nmant
    sub_ulp = np.ldexp(wide(1), info.minexp - nmant)
    ulp = np.where(a < wide(info.tiny), sub_ulp,
                   np.ldexp(wide(1), (e - nmant - 1).astype(np.int32)))
    err = (np.abs(g - r) / ulp).astype(np.float64)

    gn, rn = np.isnan(got), np.isnan(ref_w)
    err = np.where(gn & rn, 0.0, err)
    err = np.where(gn ^ rn, np.inf, err)
    both_inf = np.isinf(got) & np.isinf(ref_o)
    err = np.where(both_inf, np.where(np.signbit(got) == np.signbit(ref_o), 0.0, np.inf), err)
    zeros = (got == 0) & (ref_o == 0)
    err = np.where(zeros, np.where(np.signbit(got) == np.signbit(ref_o), 0.0, np.inf), err)
    return err


# ---------------------------------------------------------------------------
# Host target and optimization pipeline
# ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def host_target_machine(features: str | None = None):
    """TargetMachine for the host CPU (``features`` overrides its feature
    string, e.g. to emulate a host without FMA)."""
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(
        cpu=llvm.get_host_cpu_name(),
        features=llvm.get_host_cpu_features().flatten() if features is None else features,
        opt=3, codemodel="jitdefault")


def host_features_without(feature: str) -> str:
    """The host feature string with ``feature`` switched off."""
    items = llvm.get_host_cpu_features().flatten().split(",")
    return ",".join("-" + feature if it == "+" + feature else it for it in items)


def host_features_without_avx512() -> str:
    """The host feature string with every AVX-512 extension switched off: an AVX2
    (x86-64-v3-like) CPU, on which the vector math takes its generic paths."""
    items = llvm.get_host_cpu_features().flatten().split(",")
    return ",".join("-" + it[1:] if it.startswith("+avx512") else it for it in items)


def host_features() -> dict:
    return dict(llvm.get_host_cpu_features())


def host_vector_bits() -> int:
    """Widest float vector register of the host: 512 (avx512f), 256 (avx),
    else 128."""
    feats = host_features()
    if feats.get("avx512f"):
        return 512
    if feats.get("avx"):
        return 256
    return 128


def optimize(mod, tm) -> None:
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)


# ---------------------------------------------------------------------------
# Unary loop kernels
# ---------------------------------------------------------------------------

_IRTY = {np.dtype(np.float64): ir.DoubleType, np.dtype(np.float32): ir.FloatType}


def _loop(mod, fname: str, ty, body):
    """``void fname(T* noalias x, T* noalias y, i64 n)`` doing ``body(b, x, y, i)``
    for i = 0 .. n-1."""
    i64 = ir.IntType(64)
    ptr = ir.PointerType(ty)
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [ptr, ptr, i64]), fname)
    xp, yp, n = fn.args
    for a in (xp, yp):
        a.add_attribute("noalias")
    entry, loop, done = (fn.append_basic_block(s) for s in ("entry", "loop", "done"))
    b = ir.IRBuilder(entry)
    b.cbranch(b.icmp_signed(">", n, ir.Constant(i64, 0)), loop, done)
    b.position_at_end(loop)
    i = b.phi(i64)
    i.add_incoming(ir.Constant(i64, 0), entry)
    body(b, xp, yp, i)
    nxt = b.add(i, ir.Constant(i64, 1))
    i.add_incoming(nxt, loop)
    b.cbranch(b.icmp_signed("<", nxt, n), loop, done)
    b.position_at_end(done)
    b.ret_void()
    return fn


def build_unary_kernel_ir(name: str, dtype, target, kernel_name: str = "k") -> str:
    """LLVM IR text of ``void k(T* noalias x, T* noalias y, i64 n)``, with the
    vector math function declared and annotated for ``target`` as in a kernel."""
    ty = _IRTY[np.dtype(dtype)]()
    mod = ir.Module(name=f"vecmath_{name}")
    mod.triple = llvm.get_process_triple()
    f = vecmath.declare(mod, name, ty)

    def body(b, xp, yp, i):
        v = b.load(b.gep(xp, [i], inbounds=True))
        b.store(b.call(f, [v]), b.gep(yp, [i], inbounds=True))
    _loop(mod, kernel_name, ty, body)
    text = vecmath.annotate(str(mod), target)
    if host_vector_bits() == 512:
        # Some AVX-512 CPUs tune LLVM to prefer 256-bit vectors; ask for
        # full-width zmm code explicitly.
        text = re.sub(r'(define void @"?%s"?\([^)]*\))' % kernel_name,
                      r'\1 "prefer-vector-width"="512"', text)
    return text


def _target(features: str | None):
    """What the vector math may assume for this feature string (None: the host)."""
    if features is None:
        return vecmath.host_target()
    feats = features.split(",")
    bits = 512 if "+avx512f" in feats else 256 if "+avx" in feats else 128
    return vecmath.Target(bits, "+fma" in feats)


def _add_library(engine, name, dtype, tm, target) -> str:
    """Add the vector math object code for (name, dtype) to ``engine``, compiled as
    the JIT compiles it; returns its assembly."""
    fns = [(name, "f64" if np.dtype(dtype) == np.float64 else "f32")]
    engine.add_object_file(llvm.ObjectFileRef.from_data(llvm_jit.vecmath_object(fns, tm, target)))
    return tm.emit_assembly(llvm_jit.vecmath_module(fns, tm, target))


_ENTRY = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)


@functools.lru_cache(maxsize=None)
def compile_unary_kernel_with_library(name: str, dtype, library: bytes):
    """The same loop kernel as ``compile_unary_kernel(name, dtype)``, linked against
    ``library`` (object code of the whole vector math library, e.g. the prebuilt one)
    instead of the library the JIT compiles.  Returns ``f(x) -> y``.  Cached, like
    every kernel here: an engine takes ownership of the (shared) TargetMachine, and
    freeing one would free it."""
    dtype = np.dtype(dtype)
    tm = host_target_machine()
    mod = llvm.parse_assembly(build_unary_kernel_ir(name, dtype, _target(None)))
    optimize(mod, tm)
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.add_object_file(llvm.ObjectFileRef.from_data(library))
    engine.finalize_object()
    cfunc = _ENTRY(engine.get_function_address("k"))

    def run(x):
        x = np.ascontiguousarray(x, dtype)
        y = np.empty_like(x)
        cfunc(x.ctypes.data, y.ctypes.data, x.size)
        return y
    run.engine = engine
    return run


@dataclass
class Kernel:
    name: str
    dtype: np.dtype
    optimized_ir: str
    asm: str
    library_asm: str
    engine: object
    cfunc: object

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, self.dtype)
        y = np.empty_like(x)
        self.cfunc(x.ctypes.data, y.ctypes.data, x.size)
        return y


@functools.lru_cache(maxsize=None)
def compile_unary_kernel(name: str, dtype, features: str | None = None) -> Kernel:
    """Build, optimize and JIT the kernel for ``gradc_vm_<name>`` (cached).

    ``features`` selects a non-default host feature string (the vector math
    is then generated for it, e.g. without assuming FMA)."""
    dtype = np.dtype(dtype)
    tm = host_target_machine(features)
    target = _target(features)
    mod = llvm.parse_assembly(build_unary_kernel_ir(name, dtype, target))
    mod.verify()
    optimize(mod, tm)
    mod.verify()
    optimized_ir = str(mod)
    asm = tm.emit_assembly(mod)
    engine = llvm.create_mcjit_compiler(mod, tm)
    library_asm = _add_library(engine, name, dtype, tm, target)
    engine.finalize_object()
    cfunc = _ENTRY(engine.get_function_address("k"))
    return Kernel(name, dtype, optimized_ir, asm, library_asm, engine, cfunc)


class Lanes:
    """Each entry point of one vector math function, called on whole arrays:
    ``lanes[None](x)`` runs the scalar function on every element,
    ``lanes[4](x)`` the 4-wide variant on every 4 elements."""

    def __init__(self, engine, cfuncs, dtype):
        self.engine, self.cfuncs, self.dtype = engine, cfuncs, dtype

    def widths(self):
        return list(self.cfuncs)

    def __getitem__(self, w):
        def run(x):
            x = np.ascontiguousarray(x, self.dtype)
            k = w or 1
            pad = np.zeros((-x.size) % k, self.dtype)
            xp = np.concatenate([x, pad])
            y = np.empty_like(xp)
            self.cfuncs[w](xp.ctypes.data, y.ctypes.data, xp.size // k)
            return y[:x.size]
        return run


@functools.lru_cache(maxsize=None)
def compile_lanes_kernels(name: str, dtype, target) -> Lanes:
    """An unoptimized loop per entry point of ``gradc_vm_<name>`` for ``target``
    (the scalar function, then each width of ``target.widths``), JIT-compiled with
    the library the JIT uses.  The host's TargetMachine runs them, so a wider
    ``target`` than the host still runs (LLVM splits the vectors)."""
    dtype = np.dtype(dtype)
    sfx = "f64" if dtype == np.float64 else "f32"
    ty = _IRTY[dtype]()
    mod = ir.Module(name=f"lanes_{name}")
    mod.triple = llvm.get_process_triple()
    names = {None: "scalar"}
    scalar = vecmath.declare(mod, name, ty)

    def scalar_body(b, xp, yp, i):
        b.store(b.call(scalar, [b.load(b.gep(xp, [i], inbounds=True))]), b.gep(yp, [i], inbounds=True))
    _loop(mod, "scalar", ty, scalar_body)
    for w in target.widths(sfx):
        vty = ir.VectorType(ty, w)
        fn = ir.Function(mod, ir.FunctionType(vty, [vty]), vecmath.symbol(name, sfx, w))

        def vector_body(b, xp, yp, i, fn=fn, vty=vty, w=w):
            j = b.mul(i, ir.Constant(ir.IntType(64), w))
            src = b.bitcast(b.gep(xp, [j], inbounds=True), vty.as_pointer())
            dst = b.bitcast(b.gep(yp, [j], inbounds=True), vty.as_pointer())
            b.store(b.call(fn, [b.load(src, align=dtype.itemsize)]), dst, align=dtype.itemsize)
        _loop(mod, f"v{w}", ty, vector_body)
        names[w] = f"v{w}"
    # A scalar body from the same code as the vector bodies (the library runs the
    # narrowest vector body for the scalar function).
    body = vecmath._define(mod, name, ty, "scalar_body", target)

    def body_body(b, xp, yp, i):
        b.store(b.call(body, [b.load(b.gep(xp, [i], inbounds=True))]), b.gep(yp, [i], inbounds=True))
    _loop(mod, "body", ty, body_body)
    tm = host_target_machine()
    m = llvm.parse_assembly(str(mod))
    m.verify()
    engine = llvm.create_mcjit_compiler(m, tm)
    _add_library(engine, name, dtype, tm, target)
    engine.finalize_object()
    lanes = Lanes(engine, {w: _ENTRY(engine.get_function_address(f)) for w, f in names.items()}, dtype)
    lanes.body = Lanes(engine, {None: _ENTRY(engine.get_function_address("body"))}, dtype)[None]
    return lanes


# Names of libm entry points a scalarized transcendental would call.
_LIBM = {"exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "tanh", "sin",
         "cos", "tan", "sincos", "pow", "fma", "sinh", "cosh", "atan", "atan2"}
LIBM_SYMBOLS = _LIBM | {s + "f" for s in _LIBM}


def called_symbols(asm: str) -> set:
    """Symbols called (or tail-called) from x86 assembly text: directly, or, in the
    JIT's large code model, through a register loaded with ``movabsq $symbol``."""
    out = set()
    for m in re.finditer(r"^\s*(?:call|jmp)q?\s+\*?([A-Za-z_][\w.$@]*)", asm, re.M):
        out.add(m.group(1).split("@")[0])
    for m in re.finditer(r"^\s*movabsq\s+\$([A-Za-z_][\w.$@]*),\s*%r", asm, re.M):
        out.add(m.group(1).split("@")[0])
    return out


def libm_calls(asm: str) -> set:
    return {s for s in called_symbols(asm) if s in LIBM_SYMBOLS or s.startswith("__")}
