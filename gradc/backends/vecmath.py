"""Vectorized transcendental functions, emitted as LLVM IR and compiled once.

Why this module exists
----------------------
LLVM's loop vectorizer happily widens ``llvm.exp.f64`` to ``llvm.exp.v4f64``,
but the x86 backend has no vector instruction for it and scalarizes the call
back into four libm calls, so a loop over ``exp``/``log``/``tanh``/``sin`` never
runs as SIMD code.  Here every function is written with plain arithmetic only:
fadd/fmul/fdiv, ``llvm.fmuladd``/``llvm.fma``, ``llvm.fabs``, ``llvm.rint``,
``llvm.floor``, ``llvm.copysign``, bitcasts, integer adds/shifts/ands,
fcmp/select, all of which have vector forms.  The bodies are branch-free:
every special case (nan, inf, overflow, tiny arguments) is computed
unconditionally and chosen with ``select``.

On AVX-512 targets a few steps use AVX-512F instructions instead (``llvm.x86``
intrinsics; ``_Ctx._avx512`` in vecmath_ctx.py): ``vscalefpd`` for ldexp (the
same correctly rounded x * 2**k as the generic two-step scaling, in one instruction; float32
expm1 scales by it without converting k to an integer),
``vgetmantpd``/``vgetexppd`` for log's frexp (subnormals and negative inputs
without selects; the significand in [3/4, 3/2) instead of [sqrt(1/2), sqrt(2)),
with a polynomial one degree higher), ``vfixupimmpd`` for log's and log1p's
special values (one instruction for several compares and blends), ``vrcp14pd``
where a quotient is only a correction term far below an ulp (sigmoid), and
``vpermi2ps`` for float32 tanh, a table of 32 polynomials held in registers (the
generic code takes an exponential and a polynomial branch).  So the x86-64-v3
and v4 libraries may differ in the last bits; within one library every entry
point agrees bit for bit.

How kernels call it
-------------------
Each function exists as a scalar function ``gradc_vm_<name>_<f64|f32>`` and
vector variants ``..._v<lanes>`` for the target's vector widths
(``Target.widths``: 2 and 4 doubles, 4 and 8 floats on AVX2; 8 doubles and 16
floats more with AVX-512).  The same code (``_IMPL``, on a ``_Ctx`` generic
over scalar and vector types; see "Where the code is") emits the body of each
width of 256 bits or more; the scalar function and the 128-bit variants run the narrowest body on
repeated lanes (as fast on x86, and half the compile time of bodies of their
own).  So every lane computes exactly what the scalar function computes: a
value does not depend on whether a loop's vector part or its remainder
computed it.

A kernel only declares the scalar function (``declare``) and calls it one
element at a time.  ``annotate`` marks it pure and names its variants in the
``vector-function-abi-variant`` attribute (LLVM's vector function ABI), so the
loop vectorizer turns four calls into one call of ``..._v4``.  The
definitions (``library_ir``) are compiled when gradc is built, for x86-64-v3
(AVX2, FMA) and x86-64-v4 (AVX-512) (``build_prebuilt``, run by setup.py), and
the JIT loads the one for its host; on other hosts, or when the prebuilt
library does not match these modules (``SOURCES``), the JIT compiles the
functions a kernel needs, once per process, and keeps them in the on-disk cache
(``llvm_jit.load_vecmath``).  Inlining them into every kernel instead cost
tens of milliseconds of LLVM time per call site; the price is speed in hot
loops, where a call per vector keeps the scheduler from interleaving
neighbouring vectors' dependency chains (M1's value_and_grad: 10-13% slower).
Ahead-of-time libraries, compiled once, and JIT kernels that have run long enough
(``kernel.Kernel.upgrade``) link the definitions in after vectorization and inline
the vector bodies (``llvm_jit.link_vecmath``).

The approach is the classic one of fdlibm / SLEEF / tinygrad's
``transcendental.py``: Cody-Waite range reduction with a constant split into an
exactly multipliable high part and a low part, a polynomial on the reduced
argument, and exponent manipulation (frexp/ldexp) with integer bit operations.
float32 functions compute in float32 with float32-sized polynomials, so a float
loop gets twice the lanes of a double loop.

The range-reduction constants are derived at import time (vecmath_ctx.py) from
exact rational arithmetic (``fractions.Fraction``; ln 2 from ``decimal``, pi from its
well-known digits).  The polynomials are Chebyshev approximations (near-minimax:
two or three terms fewer than Taylor polynomials of the same accuracy), computed
with mpmath by ``tools/vecmath_coeffs.py``, which prints the ``_COEFFS`` table
of vecmath_coeffs.py (float32 tanh's table of polynomials too).
They are evaluated by Horner's rule: the functions are throughput-bound (Estrin's
scheme, shorter chains but more operations, measured no faster).

Polynomials use ``llvm.fmuladd`` (fused where the target has FMA, mul+add
otherwise); no result relies on it being fused.  The only place that needs a
real fused multiply-add is the float32 sin/cos range reduction (``llvm.fma``);
for a target without FMA (``Target.fma``) it is replaced by the float64
reduction, since llvm.fma would there become a libm ``fmaf`` call.

Accuracy (measured by ``tests/backends/test_vecmath.py``, see its docstring):
at most a few ulp against numpy over the whole domain of every function, both
dtypes.  sin/cos are accurate for ``|x| < TRIG_ACCURATE_LIMIT``: 2**20 * pi/2
(about 1.65e6) in float64, where the Cody-Waite products are exact by
construction (measured accurate up to about 8e6), and 2**21 (about 2.1e6) in
float32 (measured; it breaks down between 2**21 and 2**22, where the float32
product x*2/pi picks a wrong quadrant).  Beyond that there is no Payne-Hanek
reduction: the results are finite values in [-1, 1] but not accurate.
sin/cos(+-inf) and any nan input give nan, as in numpy.

Where the code is
-----------------
Four modules, each importing only the ones before it: vecmath_ctx.py (the exact
constants, the float formats and ``_Ctx``, the code generator), vecmath_coeffs.py
(the polynomial tables, data only), vecmath_funcs.py (the functions' bodies and
``_IMPL``, which names them) and this one, the entry point the rest of gradc uses
(``Target``, ``symbol``/``declare``/``annotate``/``functions_in`` for kernels,
``library_ir``, the prebuilt library).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from llvmlite import ir

from .vecmath_coeffs import _COEFFS  # noqa: F401 - re-exported: tests check the table as vecmath._COEFFS
from .vecmath_ctx import _Ctx, _Format
from .vecmath_funcs import _IMPL

__all__ = ["NAMES", "TRIG_ACCURATE_LIMIT", "Target", "host_target", "symbol", "declare",
           "library_ir", "annotate", "functions_in"]

NAMES = ("exp", "log", "log1p", "expm1", "tanh", "sigmoid", "softplus", "sin", "cos")

# |x| below which sin/cos are <= 4 ulp (see module docstring).
TRIG_ACCURATE_LIMIT = {"f64": 2.0**20 * math.pi / 2, "f32": 2.0**21}

assert tuple(_IMPL) == NAMES


# ---------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """What the generated code may assume about the CPU that runs it."""

    vector_bits: int     # widest float vector register: 128 (SSE2), 256 (AVX), 512 (AVX-512F)
    fma: bool            # fused multiply-add instructions

    def widths(self, suffix: str) -> tuple[int, ...]:
        """Lanes of the vector variants of a function: from 128 bits (2 doubles,
        4 floats) up to the widest register."""
        bits, lo = (64, 2) if suffix == "f64" else (32, 4)
        return tuple(w for w in (lo, 2 * lo, 4 * lo) if w * bits <= self.vector_bits)

    @classmethod
    def from_features(cls, features: dict) -> "Target":
        """From an LLVM feature map such as ``llvm.get_host_cpu_features()``."""
        bits = 512 if features.get("avx512f") else 256 if features.get("avx") else 128
        return cls(bits, bool(features.get("fma")))


def host_target() -> Target:
    """The CPU gradc's JIT compiles for (this host)."""
    try:
        import llvmlite.binding as llvm
        features = dict(llvm.get_host_cpu_features())
    except Exception:                  # feature query unsupported: assume the baseline
        features = {}
    return Target.from_features(features)


# ---------------------------------------------------------------------------
# The library and the declarations that call it
# ---------------------------------------------------------------------------

_FLOAT = {"f64": ir.DoubleType(), "f32": ir.FloatType()}

# A vecmath function never reads or writes memory, never unwinds, always returns: LLVM
# may hoist, merge and vectorize its calls.
_PURE = "nounwind willreturn memory(none)"

# The header of a vecmath function's definition or declaration, as llvmlite prints it.
_HEADER = re.compile(r'^(declare|define) (\S.*?) @"?gradc_vm_([a-z0-9]+)_(f64|f32)(_v\d+)?"?\(([^()]*)\)(.*)$', re.M)


def symbol(name: str, suffix: str, lanes: int | None = None) -> str:
    """``gradc_vm_<name>_<f64|f32>``, or its ``lanes``-wide vector variant ``..._v<lanes>``."""
    if name not in _IMPL:
        raise ValueError(f"unknown vecmath function {name!r}; known: {NAMES}")
    return f"gradc_vm_{name}_{suffix}" + (f"_v{lanes}" if lanes else "")


def declare(module: ir.Module, name: str, ty: ir.Type) -> ir.Function:
    """The scalar function ``gradc_vm_<name>_<f32|f64>`` of type ``ty(ty)``, declared in
    ``module`` (once).  A kernel calls it one element at a time; :func:`annotate` (run
    on the module's text) adds what lets the loop vectorizer call a vector variant."""
    fname = symbol(name, _Format(ty).suffix)
    fn = module.globals.get(fname)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ty, [ty]), fname)
    return fn


def _define(module: ir.Module, name: str, ty: ir.Type, fname: str, target: Target) -> ir.Function:
    """``fname``: the body of function ``name`` on ``ty`` (a float type or a vector)."""
    fn = ir.Function(module, ir.FunctionType(ty, [ty]), fname)
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    # AVX-512F implies FMA: a 512-bit target without it is a CPU with AVX-512 switched
    # off in part (LLVM then drops AVX-512F too), so it gets the generic code.
    avx512 = target.vector_bits >= 512 and target.fma
    builder.ret(_IMPL[name](_Ctx(builder, ty, target.fma, avx512), fn.args[0]))
    return fn


def _define_narrow(module: ir.Module, ty: ir.Type, fname: str, body: ir.Function) -> None:
    """``fname`` on ``ty`` (the scalar type or a narrower vector) through ``body``: the
    argument's lanes repeated to the body's width, the result's first lanes.  On x86
    a vector instruction costs what the scalar or narrower one costs, so this is as
    fast as a body of its own, and compiles in no time."""
    fn = ir.Function(module, ir.FunctionType(ty, [ty]), fname)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    wide = body.function_type.return_type
    x = fn.args[0]
    if isinstance(ty, ir.VectorType):
        mask = ir.Constant(ir.VectorType(ir.IntType(32), wide.count), [i % ty.count for i in range(wide.count)])
        y = b.call(body, [b.shuffle_vector(x, ir.Constant(ty, ir.Undefined), mask)])
        first = ir.Constant(ir.VectorType(ir.IntType(32), ty.count), list(range(ty.count)))
        b.ret(b.shuffle_vector(y, ir.Constant(wide, ir.Undefined), first))
    else:
        zero = ir.Constant(ir.IntType(32), 0)
        v = b.insert_element(ir.Constant(wide, ir.Undefined), x, zero)
        splat = b.shuffle_vector(v, ir.Constant(wide, ir.Undefined),
                                 ir.Constant(ir.VectorType(ir.IntType(32), wide.count), [0] * wide.count))
        b.ret(b.extract_element(b.call(body, [splat]), zero))


def library_ir(target: Target, functions=None, inline: bool = False) -> str:
    """LLVM IR (text) defining, for each ``(name, "f64"|"f32")`` in ``functions``
    (default: all), the external scalar function and its vector variants for
    ``target`` (``Target.widths``).

    Each width of at least 256 bits (128 on a host without AVX) gets a body of its
    own; the scalar function and narrower variants run the narrowest body (see
    ``_define_narrow``).  Every lane runs the same operations, so all of them agree
    bit for bit.  ``inline`` marks the bodies ``alwaysinline``, for a module that
    links them in after the loop vectorizer has placed its calls (``aot``)."""
    if functions is None:
        functions = [(n, sfx) for n in NAMES for sfx in _FLOAT]
    module = ir.Module(name="gradc_vecmath")
    for name, sfx in sorted(functions):
        elt = _FLOAT[sfx]
        widths = target.widths(sfx)
        bits = 64 if sfx == "f64" else 32
        own = [w for w in widths if w * bits >= min(256, target.vector_bits)]
        bodies = {w: _define(module, name, ir.VectorType(elt, w), symbol(name, sfx, w), target) for w in own}
        if inline:
            for body in bodies.values():
                body.attributes.add("alwaysinline")
        base = bodies[own[0]]
        _define_narrow(module, elt, symbol(name, sfx), base)
        for w in widths:
            if w not in bodies:
                _define_narrow(module, ir.VectorType(elt, w), symbol(name, sfx, w), base)
    return annotate(str(module), target)


def annotate(text: str, target: Target) -> str:
    """The module ``text`` with its vecmath functions' attributes filled in.

    Every vecmath function, defined or declared, is pure (``_PURE``).  A scalar one
    also names its vector variants in LLVM's ``vector-function-abi-variant``
    attribute (mangled ``_ZGV_LLVM_N<lanes>v_<scalar>(<variant>)``: not masked, one
    vector argument), so the loop vectorizer calls ``<scalar>_v4`` on four lanes
    instead of the scalar function four times.  Where the scalar function is only
    declared, its variants are declared next to it and listed in
    ``@llvm.compiler.used``: the vectorizer only uses variants that exist in the
    module, and without that list GlobalDCE deletes them (unused) before it runs.
    """
    used = []

    def header(m):
        kind, ret, name, sfx, vec, args, attrs = m.groups()
        line = f"{kind} {ret} @{symbol(name, sfx)}{vec or ''}({args}){attrs} {_PURE}"
        if vec:
            return line
        variants = [(w, symbol(name, sfx, w)) for w in target.widths(sfx)]
        line += ' "vector-function-abi-variant"="%s"' % ",".join(
            f"_ZGV_LLVM_N{w}v_{symbol(name, sfx)}({v})" for w, v in variants)
        if kind == "declare":
            for w, v in variants:
                vty = f"<{w} x {ret}>"
                line += f"\ndeclare {vty} @{v}({vty}) {_PURE}"
                used.append(v)
        return line

    text = _HEADER.sub(header, text)
    if used:
        text += ('\n@llvm.compiler.used = appending global [%d x ptr] [%s], section "llvm.metadata"\n'
                 % (len(used), ", ".join(f"ptr @{v}" for v in used)))
    return text


_CALLED = re.compile(rb"gradc_vm_([a-z0-9]+)_(f64|f32)")


def functions_in(code: bytes | str) -> set[tuple[str, str]]:
    """The ``(name, "f64"|"f32")`` vecmath functions that LLVM IR or object code
    refers to (an object file names the symbols it needs in its string table)."""
    if isinstance(code, str):
        code = code.encode()
    return {(n.decode(), s.decode()) for n, s in _CALLED.findall(code) if n.decode() in _IMPL}


# ---------------------------------------------------------------------------
# The prebuilt library: compiled when gradc is built, not on a user's first call
# ---------------------------------------------------------------------------

# Each prebuilt object is the whole library compiled for one x86-64 level; the JIT
# loads it on a host with every feature the level assumes (LLVM's feature names) and
# the same vector math target, and compiles the library itself anywhere else.
PREBUILT_LEVELS = {
    "x86-64-v3": (Target(256, True), ("avx", "avx2", "bmi", "bmi2", "f16c", "fma", "lzcnt", "movbe", "xsave")),
    "x86-64-v4": (Target(512, True), ("avx", "avx2", "bmi", "bmi2", "f16c", "fma", "lzcnt", "movbe", "xsave",
                                      "avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl")),
}
PREBUILT_MANIFEST = "vecmath.json"

# The modules whose code makes the library, in the order source_digest hashes them
# (tests/backends/test_vecmath.py checks that every vecmath*.py here is listed).
SOURCES = ("vecmath.py", "vecmath_ctx.py", "vecmath_coeffs.py", "vecmath_funcs.py")


def source_digest() -> str:
    """SHA-256 of the vector math modules (``SOURCES``, each name and length before its
    bytes): a prebuilt object is used only with the code it came from."""
    import hashlib
    import os
    here = os.path.dirname(os.path.abspath(__file__))
    h = hashlib.sha256()
    for name in SOURCES:
        with open(os.path.join(here, name), "rb") as f:
            data = f.read()
        h.update(f"{name} {len(data)}\n".encode())
        h.update(data)
    return h.hexdigest()


def build_prebuilt(out_dir: str) -> list[str]:
    """Compile the whole library for each of ``PREBUILT_LEVELS`` into ``out_dir``, with
    a manifest naming each object's level, target, required features and digest (the
    JIT's code model, as ``llvm_jit.vecmath_object`` compiles it).  Run by setup.py;
    needs llvmlite.  Returns the files written."""
    import hashlib
    import json
    import os
    import llvmlite.binding as llvm
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    triple = llvm.get_default_triple()
    if not triple.startswith("x86_64"):
        return []
    os.makedirs(out_dir, exist_ok=True)
    target = llvm.Target.from_triple(triple)
    objects, written = [], []
    for level, (vm, requires) in PREBUILT_LEVELS.items():
        tm = target.create_target_machine(cpu=level, features="", opt=3, codemodel="jitdefault")
        mod = llvm.parse_assembly(library_ir(vm))
        mod.triple, mod.data_layout = triple, str(tm.target_data)
        mod.verify()
        obj = tm.emit_object(mod)
        name = f"vecmath-{level}.o"
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(obj)
        written.append(os.path.join(out_dir, name))
        objects.append({"file": name, "level": level, "vector_bits": vm.vector_bits, "fma": vm.fma,
                        "requires": list(requires), "sha256": hashlib.sha256(obj).hexdigest()})
    manifest = os.path.join(out_dir, PREBUILT_MANIFEST)
    with open(manifest, "w") as f:
        json.dump({"source_sha256": source_digest(), "triple": triple, "objects": objects}, f, indent=1)
    return written + [manifest]
