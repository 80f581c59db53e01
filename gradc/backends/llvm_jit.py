"""The one place that owns LLVM: the host TargetMachine (and those of the other CPUs
gradc compiles for), the O3 pass pipeline (loop and SLP vectorization, via llvmlite's
new pass manager), the MCJIT engine, gradc's vector math library (prebuilt at install,
else compiled once per process as kernels first call it), and inspection (optimized
IR, assembly)."""
from __future__ import annotations

import os
import re
import threading

import llvmlite.binding as llvm

from . import vecmath

_lock = threading.RLock()
_state: dict = {}

# Reduction accumulators are named "acc"; only they get `reassoc`, which lets the loop
# vectorizer split a sum into vector lanes.  Nothing else gets fast-math flags, so NaN,
# inf and signed zeros behave as in numpy.  (No `contract` either: FMA contraction would
# round a function's value differently in its forward and value_and_grad kernels.)
_ACC = re.compile(r'(%"?acc(?:\.\d+)?"? = fadd) ')


def init():
    with _lock:
        if "tm" in _state:
            return _state
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        # Loop strength reduction was a third of code generation time (llvm.set_time_passes:
        # 16 of 55 ms for the neuron loss) and bought nothing measurable: x86 addressing
        # modes already fold base + index * scale (M1-M5 steady state unchanged, first
        # calls 15-25 ms faster).
        llvm.set_option("", "-disable-lsr")
        target = llvm.Target.from_default_triple()
        cpu, feature_map = llvm.get_host_cpu_name(), llvm.get_host_cpu_features()
        features = feature_map.flatten()
        tm = target.create_target_machine(cpu=cpu, features=features, opt=3, codemodel="jitdefault")
        _state.update(tm=tm, cpu=cpu, features=features, feature_map=dict(feature_map),
                      triple=llvm.get_process_triple(),
                      vecmath=vecmath.Target.from_features(dict(feature_map)), vecmath_loaded=set())
        from . import blas
        found = blas.find()
        if found:   # generated code calls these names for large matrix products
            llvm.add_symbol("gradc_cblas_dgemm", found["d"])
            llvm.add_symbol("gradc_cblas_sgemm", found["s"])
        _state["blas"] = found
        _state["threads"] = 1
        try:   # the thread pool lives in the C call path extension
            from .. import _callpath
            llvm.add_symbol("gradc_parallel_for", _callpath.parallel_for_address())
            llvm.add_symbol("gradc_combine", _callpath.combine_address())
            if found:   # narrow products (N <= 16) run gradc's own kernels (runtime/skinny.c)
                llvm.add_symbol("gradc_skinny_gemm", _callpath.skinny_gemm_address())
                found["skinny"] = True
            _state["threads"] = num_threads()
        except ImportError:
            pass
        backing = llvm.parse_assembly("")
        _state["engine"] = llvm.create_mcjit_compiler(backing, tm)
        return _state


def num_threads() -> int:
    """GRADC_NUM_THREADS, default: every core this process may run on."""
    env = os.environ.get("GRADC_NUM_THREADS")
    if env:
        try:
            return max(1, min(int(env), 256))
        except ValueError:
            raise ValueError(f"GRADC_NUM_THREADS must be a positive integer, got {env!r}") from None
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def host() -> tuple[str, str]:
    s = init()
    return s["cpu"], s["features"]


# CPUs gradc compiles for besides the JIT's host: ``gradc build --cpu`` (libraries) and
# ``.asm(cpu=...)`` / ``gradc asm --cpu`` (inspection of code for another machine).
CPUS = ("native", "generic", "x86-64-v3", "x86-64-v4")


class UnknownCPU(ValueError):
    """A CPU name gradc does not compile for."""


def target_machine(cpu: str = "native", reloc: str = "default"):
    """``(tm, triple, cpu_name, vecmath_target)`` for ``cpu`` in ``CPUS``: ``native`` is
    this host (its name and features), ``generic`` baseline x86-64 (SSE2),
    ``x86-64-v3`` AVX2 and FMA, ``x86-64-v4`` AVX-512 (F, BW, DQ, VL)."""
    s = init()                           # initializes LLVM's native target
    triple = llvm.get_default_triple()
    x86 = triple.startswith("x86_64")
    if cpu == "native":
        name, features, vm = s["cpu"], s["features"], s["vecmath"]
    elif cpu == "generic":
        name, features, vm = ("x86-64" if x86 else "generic"), "", vecmath.Target(vector_bits=128, fma=False)
    elif cpu in ("x86-64-v3", "x86-64-v4"):
        if not x86:
            raise UnknownCPU(f"cpu {cpu!r} needs an x86-64 target; this one is {triple}")
        name, features = cpu, ""
        vm = vecmath.Target(vector_bits=256 if cpu == "x86-64-v3" else 512, fma=True)
    else:
        raise UnknownCPU(f"cpu {cpu!r}: expected one of {', '.join(CPUS)}")
    target = llvm.Target.from_triple(triple)
    tm = target.create_target_machine(cpu=name, features=features, opt=3, reloc=reloc, codemodel="default")
    return tm, triple, name, vm


# LLVM tunes Intel's AVX-512 CPUs (Skylake-X to Sapphire Rapids, and x86-64-v4) to
# prefer 256-bit vectors: the loop vectorizer then emits <4 x double> and ymm code even
# where zmm registers exist (measured: a squared-array loop for `sapphirerapids` is
# <4 x double> and ymm without this attribute, <8 x double> and zmm with it).  gradc's
# loops are long streams of arithmetic, where the full width pays, so on AVX-512 every
# function gradc defines asks for 512 bits, as clang's -mprefer-vector-width=512 does.
# (The vector math library needs no attribute: its <8 x double> bodies are explicit,
# and compile to zmm code for `sapphirerapids` as they are.)
_DEFINE = re.compile(r"^(define .*\)[^{\n]*?)((?: ?\{)?)$", re.M)


def prepare_ir(text: str, target: "vecmath.Target | None" = None) -> str:
    """The generated module's text as LLVM gets it: reductions' ``reassoc`` flags, the
    vector math functions' attributes and variants for ``target`` (default: this host),
    and on AVX-512 the preferred vector width."""
    target = target or init()["vecmath"]
    return _full_width(vecmath.annotate(_ACC.sub(r"\1 reassoc ", text), target), target)


def _full_width(text: str, target: "vecmath.Target") -> str:
    if target.vector_bits < 512:
        return text
    return _DEFINE.sub(r'\1 "prefer-vector-width"="%d"\2' % target.vector_bits, text)


def optimize(mod: "llvm.ModuleRef", tm=None) -> None:
    s = init()
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pto.loop_unrolling = True
    pb = llvm.create_pass_builder(tm or s["tm"], pto)
    pb.getModulePassManager().run(mod, pb)


def parse(text: str, tm=None, triple: str | None = None) -> "llvm.ModuleRef":
    """Parse and verify ``text`` for ``tm`` and ``triple`` (default: the host's)."""
    s = init()
    mod = llvm.parse_assembly(text)
    mod.triple = triple or s["triple"]
    mod.data_layout = str((tm or s["tm"]).target_data)
    mod.verify()
    return mod


def _header(name: str) -> dict:
    """What a cache entry must have been compiled by and for, besides its key parts."""
    from .. import __version__
    s = init()
    return {"gradc": __version__, "llvm": ".".join(map(str, llvm.llvm_version_info)),
            "cpu": s["cpu"], "features": s["features"], "name": name}


def vecmath_module(functions, tm=None, target=None) -> "llvm.ModuleRef":
    """Vector math functions (a list of ``(name, "f64"|"f32")``): each scalar
    function and its vector variants (``vecmath.library_ir``) for ``tm`` and ``target``
    (default: this host).  No IR passes run on it: each body is one basic block of
    hand-written straight-line code, which instruction selection (one DAG per block,
    with CSE and combines) compiles to code as fast as after O3 (measured), in about
    30% less time."""
    return parse(vecmath.library_ir(target or init()["vecmath"], functions), tm)


def vecmath_object(functions, tm=None, target=None) -> bytes:
    """Object code of ``vecmath_module(functions, tm, target)``."""
    return (tm or init()["tm"]).emit_object(vecmath_module(functions, tm, target))


def load_vecmath(obj: bytes) -> None:
    """Before object code ``obj`` is added to the engine: add the vector math functions
    it calls that this process has not loaded yet, compiled (or loaded from the on-disk
    cache) together as one object, so the engine resolves its calls.  One object for
    the lot, not one per function: each compilation has a fixed cost, and exp, log1p
    and tanh took 13 ms together against 22 ms one by one.  Caller holds ``_lock``."""
    from . import cache
    s = init()
    missing = sorted(vecmath.functions_in(obj) - s["vecmath_loaded"])
    if not missing:
        return
    if not s["vecmath_loaded"]:             # the first need: the library built with gradc
        lib = prebuilt_vecmath()
        if lib is not None:
            s["engine"].add_object_file(llvm.ObjectFileRef.from_data(lib))
            s["vecmath_loaded"].update((n, sfx) for n in vecmath.NAMES for sfx in ("f64", "f32"))
            return
    header = _header(" ".join(vecmath.symbol(*fn) for fn in missing))
    key = cache.make_key(code_fingerprint(), "vecmath", *missing, s["vecmath"], *header.values())
    lib = cache.load(key, header)
    if lib is None:
        lib = vecmath_object(missing)
        cache.store(key, header, lib)
    s["engine"].add_object_file(llvm.ObjectFileRef.from_data(lib))
    s["vecmath_loaded"].update(missing)


PREBUILT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_prebuilt")


def prebuilt_vecmath(directory: str | None = None) -> bytes | None:
    """The whole vector math library as setup.py compiled it (``vecmath.build_prebuilt``)
    for this host's level (x86-64-v3 or v4), or None: no prebuilt library, one made
    from other code (``vecmath.py`` changed since), another platform, a CPU that lacks
    a feature the level assumes or wants another vector target, a damaged file, or
    ``GRADC_PREBUILT=0``.  Then the JIT compiles the functions it needs itself (about
    10 ms each, once per machine thanks to the disk cache)."""
    import hashlib
    import json
    if os.environ.get("GRADC_PREBUILT", "1") == "0":
        return None
    directory = directory or PREBUILT_DIR
    try:
        with open(os.path.join(directory, vecmath.PREBUILT_MANIFEST)) as f:
            manifest = json.load(f)
        if manifest.get("source_sha256") != vecmath.source_digest() or manifest.get("triple") != llvm.get_default_triple():
            return None
        s = init()
        host = s["feature_map"]
        for o in manifest.get("objects", []):
            if (o["vector_bits"], o["fma"]) != (s["vecmath"].vector_bits, s["vecmath"].fma) \
                    or not all(host.get(feature) for feature in o["requires"]):
                continue
            with open(os.path.join(directory, o["file"]), "rb") as f:
                data = f.read()
            return data if hashlib.sha256(data).hexdigest() == o["sha256"] else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return None


_FINGERPRINT = None


def code_fingerprint() -> str:
    """A hash of the code that turns a graph into object code (the ops' lowerings, the
    scheduler, the IR generator, vector math): part of every cache key, so a change to
    gradc's code generator never reuses an entry it did not make."""
    global _FINGERPRINT
    if _FINGERPRINT is None:
        import glob
        import hashlib
        here = os.path.dirname(os.path.abspath(__file__))
        files = sorted(glob.glob(os.path.join(here, "*.py")) + glob.glob(os.path.join(here, "..", "ops", "*.py")))
        h = hashlib.sha256()
        for f in files:
            with open(f, "rb") as fh:
                h.update(fh.read())
        _FINGERPRINT = h.hexdigest()
    return _FINGERPRINT


class Artifact:
    """A compiled kernel: its entry address, and on demand its IR before and after
    optimization and its assembly.

    ``make_ir()`` builds the LLVM IR.  Object code comes from the on-disk cache when an
    entry for ``key_parts`` (the scheduled graph and everything else that decides the
    code), the gradc and LLVM versions and the CPU exists -- then no IR is built at all
    unless someone asks to see it; otherwise the IR is built, optimized and compiled,
    and the object stored."""

    def __init__(self, make_ir, name: str, key_parts=()):
        from . import cache
        s = init()
        self.name = name
        self._make_ir = make_ir
        self._raw = None
        self._optimized = None
        self._asm = None
        header = _header(name)
        self.key = cache.make_key(code_fingerprint(), *key_parts, *header.values())
        with _lock:
            known = s.setdefault("loaded", {})
            if self.key in known:          # the same kernel compiled earlier in this process
                self.address, self.cached = known[self.key], True
                return
            obj = cache.load(self.key, header)
            self.cached = obj is not None
            if obj is None:
                mod = self._optimize()
                obj = s["tm"].emit_object(mod)
                cache.store(self.key, header, obj)
            load_vecmath(obj)
            s["engine"].add_object_file(llvm.ObjectFileRef.from_data(obj))
            s["engine"].finalize_object()
            self.address = s["engine"].get_function_address(name)
            if not self.address:
                raise RuntimeError(f"internal: compiled code has no symbol {name}")
            known[self.key] = self.address

    @property
    def raw_ir(self) -> str:
        if self._raw is None:
            self._raw = prepare_ir(self._make_ir())
        return self._raw

    def _optimize(self):
        mod = parse(self.raw_ir)
        optimize(mod)
        self._optimized = str(mod)
        return mod

    def llvm_ir(self, optimized=True, cpu="native") -> str:
        """The IR before or after optimization; for another ``cpu`` (``CPUS``) the IR
        gradc would compile there (not loaded, never run)."""
        if cpu != "native":
            return str(self._for_cpu(cpu, optimized)[0])
        if not optimized:
            return self.raw_ir
        if self._optimized is None:
            with _lock:
                self._optimize()
        return self._optimized

    def asm(self, cpu="native") -> str:
        if cpu != "native":
            mod, tm = self._for_cpu(cpu, True)
            return tm.emit_assembly(mod)
        if self._asm is None:
            s = init()
            with _lock:
                self._asm = s["tm"].emit_assembly(llvm.parse_assembly(self.llvm_ir(True)))
        return self._asm

    def _for_cpu(self, cpu, optimized):
        tm, _triple, _name, vm = target_machine(cpu)
        with _lock:
            mod = parse(prepare_ir(self._make_ir(), vm), tm)
            if optimized:
                optimize(mod, tm)
        return mod, tm
