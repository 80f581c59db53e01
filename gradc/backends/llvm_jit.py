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
# A process forked while a thread compiles would inherit ``_lock`` held by a thread it
# does not have, and hang at its first compile: a fork waits for the compile instead
# (a kernel's hot code may be compiling in the background: kernel.Kernel.upgrade).
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_lock.acquire, after_in_parent=_lock.release, after_in_child=_lock.release)

# Reduction accumulators are named "acc"; only they get `reassoc`, which lets the loop
# vectorizer split a sum into vector lanes.  Nothing else gets fast-math flags, so NaN,
# inf and signed zeros behave as in numpy.  (No `contract` either: FMA contraction would
# round a function's value differently in its forward and value_and_grad kernels.)
_ACC = re.compile(r'(%"?acc(?:\.\d+)?"? = fadd) ')


def init():
    if "engine" in _state:       # set last: initialized (compile_parts' threads read it here)
        return _state
    with _lock:
        if "engine" in _state:
            return _state
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        # Loop strength reduction was a third of code generation time (llvm.set_time_passes:
        # 16 of 55 ms for the neuron loss) and bought nothing measurable: x86 addressing
        # modes already fold base + index * scale (M1-M5 steady state unchanged, first
        # calls 15-25 ms faster).
        llvm.set_option("", "-disable-lsr")
        cpu, feature_map = llvm.get_host_cpu_name(), llvm.get_host_cpu_features()
        features = feature_map.flatten()
        tm = _jit_tm(cpu, features)
        _state.update(tm=tm, tms=[tm], cpu=cpu, features=features, feature_map=dict(feature_map),
                      triple=llvm.get_process_triple(),
                      vecmath=vecmath.Target.from_features(dict(feature_map)), vecmath_loaded=set(),
                      vecmath_objects=[])
        from . import blas
        found = blas.find()
        if found:   # generated code calls these names for large matrix products
            llvm.add_symbol("gradc_cblas_dgemm", found["d"])
            llvm.add_symbol("gradc_cblas_sgemm", found["s"])
        _state["blas"] = found
        _state["pool"] = False
        try:   # the thread pool lives in the C call path extension
            from .. import _callpath
            llvm.add_symbol("gradc_parallel_for", _callpath.parallel_for_address())
            llvm.add_symbol("gradc_combine", _callpath.combine_address())
            if found:   # narrow products (N <= 16) run gradc's own kernels (runtime/skinny.c)
                llvm.add_symbol("gradc_skinny_gemm", _callpath.skinny_gemm_address())
                found["skinny"] = True
                # wider ones run as row blocks on gradc's pool, one single-threaded BLAS
                # call each (runtime/poolgemm.c): OpenBLAS's own pool never wakes.  (An
                # extension built before poolgemm.c calls OpenBLAS directly.)
                if all(found["threads"]) and hasattr(_callpath, "pool_gemm_register"):
                    pd, ps = _callpath.pool_gemm_register(found["d"], found["s"], *found["threads"],
                                                          found["int"] == 64)
                    llvm.add_symbol("gradc_pool_dgemm", pd)
                    llvm.add_symbol("gradc_pool_sgemm", ps)
                    found["pool"] = True
                    if hasattr(_callpath, "pool_gemm_batched_addresses"):   # stacks of products
                        bd, bs = _callpath.pool_gemm_batched_addresses()
                        llvm.add_symbol("gradc_pool_dgemm_batched", bd)
                        llvm.add_symbol("gradc_pool_sgemm_batched", bs)
                        found["batched"] = True
                    # a row pipeline's single-threaded blocks (schedule.RowPipeline)
                    if hasattr(_callpath, "skinny_rows_addresses"):
                        pack, rows, unpad = _callpath.skinny_rows_addresses()
                        llvm.add_symbol("gradc_skinny_pack", pack)
                        llvm.add_symbol("gradc_skinny_rows", rows)
                        llvm.add_symbol("gradc_skinny_unpad", unpad)
                        found["skinny_rows"] = True
            # linear algebra: gradc_lapack (runtime/lapack.c) calls numpy's LAPACK
            lapack = blas.find_lapack()
            if lapack and hasattr(_callpath, "lapack_register"):
                llvm.add_symbol("gradc_lapack", _callpath.lapack_register(*lapack["addresses"]))
                # SVD and QR: without them (an extension built before), their calls fail with a status
                if lapack.get("rect") and hasattr(_callpath, "lapack_register_rect"):
                    _callpath.lapack_register_rect(*lapack["rect"])
                _state["lapack"] = lapack
                if found:
                    found["lapack"] = True
            # op sort_rank: a merge sort (runtime/sortrank.c) instead of pairwise counts,
            # for the dtype kinds the extension's has (one built before integers: floats)
            if hasattr(_callpath, "sort_rank_address"):
                llvm.add_symbol("gradc_sort_rank", _callpath.sort_rank_address())
                _state["native_sort"] = _callpath.sort_rank_kinds() if hasattr(_callpath, "sort_rank_kinds") else "f"
            _state["pool"] = True
        except ImportError:
            pass
        backing = llvm.parse_assembly("")
        _state["engine"] = llvm.create_mcjit_compiler(backing, tm)
        return _state


def _jit_tm(cpu: str, features: str):
    return llvm.Target.from_default_triple().create_target_machine(
        cpu=cpu, features=features, opt=3, codemodel="jitdefault")


def kernel_threads() -> int:
    """Threads a kernel compiled now splits its parallel nests over: GRADC_NUM_THREADS
    as it is set at compile time (so one process can compile for 1 and for 2 threads,
    as the tests and the fuzzer do), or 1 without the thread pool."""
    return num_threads() if init()["pool"] else 1


def num_threads() -> int:
    """GRADC_NUM_THREADS, default: every core this process may run on."""
    env = os.environ.get("GRADC_NUM_THREADS")
    if env:
        try:
            return max(1, min(int(env), 256))
        except ValueError:
            raise ValueError(f"GRADC_NUM_THREADS must be a positive integer, got {env!r}") from None
    return cores()


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
    stack frames aligned for vector registers, and on AVX-512 the preferred vector
    width."""
    target = target or init()["vecmath"]
    return _function_attributes(vecmath.annotate(_ACC.sub(r"\1 reassoc ", text), target), target)


def _function_attributes(text: str, target: "vecmath.Target") -> str:
    # Every function aligns its stack frame to its vector registers' width: a loop that
    # calls vector math keeps its vectors in stack slots across each call, and on a
    # stack aligned to 16 bytes half of those slots straddle two cache lines, or all
    # of them, depending on where the process's stack happens to start (M1's
    # value_and_grad on 10,000 doubles, one thread, 2-core Zen 4: 37 or 62 us from one
    # process to the next with the environment's size; 37-40 us in every process with
    # the frame aligned).
    text = _DEFINE.sub(r'\1 "stackrealign"\2', text)
    if target.vector_bits < 512:
        return text
    return _DEFINE.sub(r'\1 "prefer-vector-width"="%d"\2' % target.vector_bits, text)


def optimize(mod: "llvm.ModuleRef", tm=None, private=False) -> None:
    """The O3 pipeline on ``mod``; ``private``: ``mod`` lives in a context of its own
    (``parse(..., private=True)``), so the pipeline runs outside llvmlite's lock."""
    s = init()
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pto.loop_unrolling = True
    pb = llvm.create_pass_builder(tm or s["tm"], pto)
    mpm = pb.getModulePassManager()
    if private:
        _unlocked("LLVMPY_RunNewModulePassManager")(mpm, mod, pb)
    else:
        mpm.run(mod, pb)


def parse(text: str, tm=None, triple: str | None = None, private=False) -> "llvm.ModuleRef":
    """Parse and verify ``text`` for ``tm`` and ``triple`` (default: the host's);
    ``private``: in a new LLVM context, which no other thread uses."""
    s = init()
    mod = llvm.parse_assembly(text, context=llvm.create_context() if private else None)
    mod.triple = triple or s["triple"]
    mod.data_layout = str((tm or s["tm"]).target_data)
    mod.verify()
    return mod


# -- compiling a kernel's modules at once ----------------------------------------------
# LLVM compiles modules of distinct contexts concurrently (ThinLTO's backends do), but
# llvmlite serializes every call into LLVM behind one process-wide lock.  The two long
# calls, the O3 pipeline and code generation, are therefore made outside that lock
# (llvmlite's own ctypes function, which releases the GIL), each on a module parsed
# into a context of its own, each thread with a TargetMachine of its own.  Everything
# else (parsing, creating pass builders, disposal) still takes llvmlite's lock.  Where
# llvmlite does not expose the raw function, the locked one serves: correct, serial.

def _unlocked(name: str):
    fn = getattr(llvm.ffi.lib, name)
    return getattr(fn, "_cfn", fn)


def _emit_unlocked(mod: "llvm.ModuleRef", tm) -> bytes:
    """``tm.emit_object(mod)`` outside llvmlite's lock, for a module of
    ``parse(..., private=True)``."""
    import ctypes
    lib = llvm.ffi.lib
    with llvm.ffi.OutputString() as err:
        buf = _unlocked("LLVMPY_TargetMachineEmitToMemory")(tm, mod, 1, err)
        if not buf:
            raise RuntimeError(str(err))
    try:
        return ctypes.string_at(lib.LLVMPY_GetBufferStart(buf), lib.LLVMPY_GetBufferSize(buf))
    finally:
        lib.LLVMPY_DisposeMemoryBuffer(buf)


def link_vecmath(mod: "llvm.ModuleRef", tm, target: "vecmath.Target", used) -> None:
    """Link the vector math functions ``used`` (``vecmath.functions_in``) into the
    optimized module ``mod``, with internal linkage, and inline their bodies where the
    loop vectorizer called them.  Straight-line code in the loop runs faster than a
    call per vector (the CPU's scheduler interleaves the independent chains of
    neighbouring vectors and functions, and no call clobbers the vector registers the
    loop keeps) but costs LLVM time: ahead-of-time libraries do it always (``aot``),
    the JIT for kernels that have run long enough (``Artifact.hot_address``).  The
    definitions are ``target``'s, as the JIT's own library: every value agrees bit for
    bit with the called functions'."""
    lib = llvm.parse_assembly(vecmath.library_ir(target, used, inline=True), context=mod._context)
    lib.triple, lib.data_layout = mod.triple, mod.data_layout
    mod.link_in(lib)
    for f in mod.functions:
        if f.name.startswith("gradc_vm_"):
            f.linkage = "internal"
    pm = llvm.create_new_module_pass_manager()
    pm.add_always_inliner_pass()
    pm.add_global_dead_code_eliminate_pass()
    pm.run(mod, llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=3)))
    mod.verify()


def _compile_private(text: str, tm, inline_math=False) -> tuple[bytes, str]:
    mod = parse(text, tm, private=True)
    optimize(mod, tm, private=True)
    if inline_math:
        used = vecmath.functions_in(str(mod))
        if used:
            link_vecmath(mod, tm, init()["vecmath"], used)
    return _emit_unlocked(mod, tm), str(mod)


def cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


_background = threading.local()


class in_background:
    """Within this block, compiles made on this thread use one thread, not all cores: a
    kernel's hot code compiling beside the calls that run its first code on the pool
    (``kernel.Kernel.upgrade``) takes one core from them, not all."""

    def __enter__(self):
        _background.on = True

    def __exit__(self, *exc):
        _background.on = False


def compile_parts(texts: list[str], inline_math=False) -> list[tuple[bytes, str]]:
    """Object code and optimized IR of each module (prepared IR text), compiled at once
    on up to ``num_threads()`` threads (GRADC_NUM_THREADS, default all cores; one
    ``in_background``), the largest first; ``inline_math``: with the vector math inlined
    (``link_vecmath``).  Caller holds ``_lock`` (the TargetMachines are gradc's, one per
    thread)."""
    s = init()
    todo = sorted(range(len(texts)), key=lambda k: -len(texts[k]))
    n = min(len(texts), 1 if getattr(_background, "on", False) else num_threads())
    while len(s["tms"]) < n:
        s["tms"].append(_jit_tm(s["cpu"], s["features"]))
    results: list = [None] * len(texts)
    errors: list = []
    claim = threading.Lock()

    def work(tm):
        while True:
            with claim:
                if not todo or errors:
                    return
                k = todo.pop(0)
            try:
                results[k] = _compile_private(texts[k], tm, inline_math)
            except BaseException as e:   # re-raised in the caller's thread
                errors.append(e)
                return
    helpers = [threading.Thread(target=work, args=(tm,), daemon=True) for tm in s["tms"][1:n]]
    for t in helpers:
        t.start()
    work(s["tms"][0])
    for t in helpers:
        t.join()
    if errors:
        raise errors[0]
    return results


def pack(objects: list[bytes]) -> bytes:
    """Several objects as one cache entry: each with its length before it."""
    return b"".join(len(o).to_bytes(8, "little") + o for o in objects)


def unpack(blob: bytes) -> list[bytes] | None:
    out, at = [], 0
    while at < len(blob):
        n = int.from_bytes(blob[at:at + 8], "little")
        if at + 8 + n > len(blob) or n == 0:
            return None
        out.append(blob[at + 8:at + 8 + n])
        at += 8 + n
    return out or None


def _header(name: str) -> dict:
    """What a cache entry must have been compiled by and for, besides its key parts."""
    from ..version import __version__
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
            _keep_for_perf_map(s, lib)
            return
    header = _header(" ".join(vecmath.symbol(*fn) for fn in missing))
    key = cache.make_key(code_fingerprint(), "vecmath", *missing, s["vecmath"], *header.values())
    lib = cache.load(key, header)
    if lib is None:
        lib = vecmath_object(missing)
        cache.store(key, header, lib)
    s["engine"].add_object_file(llvm.ObjectFileRef.from_data(lib))
    s["vecmath_loaded"].update(missing)
    _keep_for_perf_map(s, lib)


PREBUILT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_prebuilt")


def prebuilt_vecmath(directory: str | None = None) -> bytes | None:
    """The whole vector math library as setup.py compiled it (``vecmath.build_prebuilt``)
    for this host's level (x86-64-v3 or v4), or None: no prebuilt library, one made
    from other code (a ``vecmath*.py`` module changed since), another platform, a CPU that lacks
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


def _fingerprint_files() -> list:
    """Every Python source of the gradc package: tracing, the passes, differentiation,
    the scheduler and the code generators all decide the code a graph becomes."""
    import glob
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return sorted(glob.glob(os.path.join(package, "**", "*.py"), recursive=True))


def code_fingerprint() -> str:
    """A hash of the code that turns a graph into object code: every source file of the
    package (``_fingerprint_files``) and the native call path the code calls into (its
    size and modification time: the kernels link its functions by name, and their
    arguments change with it).  Part of every cache key, so a change to gradc never
    reuses an entry it did not make: keyed on the backends and ops alone, an entry
    compiled before a change to the passes (a workspace laid out for one more buffer)
    was loaded after it and wrote past the workspace of the new layout."""
    global _FINGERPRINT
    if _FINGERPRINT is None:
        import hashlib
        h = hashlib.sha256()
        package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        for f in _fingerprint_files():
            h.update(os.path.relpath(f, package).encode() + b"\0")
            with open(f, "rb") as fh:
                h.update(fh.read())
        try:
            from .. import _callpath
            st = os.stat(_callpath.__file__)
            h.update(f"{st.st_size}:{st.st_mtime_ns}:{getattr(_callpath, 'PLAN_VERSION', 0)}".encode())
        except (ImportError, OSError):
            h.update(b"no call path")
        _FINGERPRINT = h.hexdigest()
    return _FINGERPRINT


def _join(parts: list[str]) -> str:
    """A kernel's modules as one text to read (each begins with its ``; ModuleID``)."""
    return "\n".join(parts)


def _cached_or_built(key: str, header: dict, build) -> tuple:
    """(objects, blob, cached): a kernel's object code from the disk cache entry ``key``,
    else ``build()``'s, stored there (``blob`` packs the objects); (None, None, False)
    on a miss when ``build`` is None."""
    from . import cache
    blob = cache.load(key, header)
    objects = unpack(blob) if blob is not None else None
    if objects is not None:
        return objects, blob, True
    if build is None:
        return None, None, False
    objects = build()
    blob = pack(objects)
    cache.store(key, header, blob)
    return objects, blob, False


def _load(objects: list[bytes], blob: bytes, name: str) -> int:
    """Add a kernel's object code (``blob`` packs ``objects``) to the engine, with the
    vector math it calls; the address of its entry point ``name``.  Caller holds
    ``_lock``."""
    s = init()
    load_vecmath(blob)
    for obj in objects:
        s["engine"].add_object_file(llvm.ObjectFileRef.from_data(obj))
    s["engine"].finalize_object()
    address = s["engine"].get_function_address(name)
    if not address:
        raise RuntimeError(f"internal: compiled code has no symbol {name}")
    if _perf_map():
        _write_perf_map(objects + s["vecmath_objects"], s["engine"])
        s["vecmath_objects"].clear()
    return address


def _perf_map() -> bool:
    return os.environ.get("GRADC_PERF_MAP", "0") not in ("", "0")


def _keep_for_perf_map(s, obj: bytes) -> None:
    """A vector math object just loaded, for the next perf map (GRADC_PERF_MAP)."""
    if _perf_map():
        s["vecmath_objects"].append(obj)


def _elf_functions(obj: bytes):
    """(name, offset, size, section) of each function an ELF64 little-endian object
    defines (its symbol table: STT_FUNC entries with a section)."""
    import struct
    if obj[:4] != b"\x7fELF" or obj[4] != 2 or obj[5] != 1:
        return []
    shoff, = struct.unpack_from("<Q", obj, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", obj, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", obj, shoff + k * shentsize) for k in range(shnum)]
    found = []
    for sh in sections:
        if sh[1] != 2:                    # SHT_SYMTAB
            continue
        strtab = sections[sh[6]]          # sh_link: its string table
        for off in range(sh[4], sh[4] + sh[5], 24):
            st_name, st_info, _other, st_shndx, st_value, st_size = struct.unpack_from("<IBBHQQ", obj, off)
            if st_info & 0xF == 2 and st_shndx != 0:   # STT_FUNC, defined
                start = strtab[4] + st_name
                found.append((obj[start:obj.index(b"\0", start)].decode(), st_value, st_size, st_shndx))
    return found


def _write_perf_map(objects: list[bytes], engine) -> None:
    """With GRADC_PERF_MAP=1, name each compiled function (a kernel, its nests' tasks,
    the vector math) in /tmp/perf-PID.map, where ``perf report`` looks for JIT code's
    symbols.  A local function (a nest's task) is placed by its offset from a global
    one in the same section."""
    lines = []
    for obj in objects:
        fns = _elf_functions(obj)
        base = {}
        for name, value, _n, sec in fns:
            addr = engine.get_function_address(name) if sec not in base else 0
            if addr:
                base[sec] = addr - value
        for name, value, n, sec in fns:
            if sec in base and n:
                lines.append(f"{base[sec] + value:x} {n:x} {name}\n")
    with open(f"/tmp/perf-{os.getpid()}.map", "a") as f:
        f.writelines(lines)


class Artifact:
    """A compiled kernel: its entry address, and on demand its IR before and after
    optimization and its assembly.

    ``make_ir()`` builds the LLVM IR: the texts of the kernel's modules
    (``llvm_codegen.lower_parts``), compiled at once (``compile_parts``) and linked by
    the engine.  Object code comes from the on-disk cache when an entry for
    ``key_parts`` (the scheduled graph and everything else that decides the code), the
    gradc and LLVM versions and the CPU exists -- then no IR is built at all unless
    someone asks to see it; otherwise the IR is built, optimized and compiled, and the
    objects stored."""

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
                (self.address, self.calls_math), self.cached = known[self.key], True
                return
            objects, blob, self.cached = _cached_or_built(self.key, header, self._compile)
            self.address = _load(objects, blob, name)
            self.calls_math = bool(vecmath.functions_in(blob))
            known[self.key] = self.address, self.calls_math

    def hot_address(self, compile=True) -> int | None:
        """The kernel compiled again with its vector math inlined (``link_vecmath``):
        10-13% faster where a loop is bound by vector math (M1's value_and_grad on
        10,000 doubles, one thread, Zen 4: 37 against 32 us) but three to four times
        the LLVM time (12 against 44 ms of CPU for M1), so the call path asks for it
        only once the kernel has run for a while (``kernel.Kernel.upgrade``).  Its
        symbols are the kernel's with ``_hot`` appended; compiled once per process and
        kept in the on-disk cache beside the first.  ``compile=False``: only from this
        process or the disk cache (None when neither has it)."""
        from . import cache
        s = init()
        done = s.get("hot", {}).get(self.key)
        if done:            # (no lock: a call switching never waits for another kernel's compile)
            return done
        name = self.name + "_hot"

        def build():
            texts = [t.replace(self.name, name) for t in self.raw_parts]
            return [obj for obj, _text in compile_parts(texts, inline_math=True)]
        with _lock:
            hot = s.setdefault("hot", {})
            if self.key not in hot:
                header = _header(name)
                key = cache.make_key(self.key, "vector math inlined", *header.values())
                objects, blob, _cached = _cached_or_built(key, header, build if compile else None)
                if objects is None:
                    return None
                hot[self.key] = _load(objects, blob, name)
            return hot[self.key]

    @property
    def raw_parts(self) -> list[str]:
        if self._raw is None:
            self._raw = [prepare_ir(t) for t in self._make_ir()]
        return self._raw

    def _compile(self) -> list[bytes]:
        done = compile_parts(self.raw_parts)
        self._optimized = [text for _obj, text in done]
        return [obj for obj, _text in done]

    def llvm_ir(self, optimized=True, cpu="native") -> str:
        """The IR before or after optimization; for another ``cpu`` (``CPUS``) the IR
        gradc would compile there (not loaded, never run)."""
        if cpu != "native":
            return _join([str(m) for m in self._for_cpu(cpu, optimized)[0]])
        if not optimized:
            return _join(self.raw_parts)
        if self._optimized is None:
            with _lock:
                self._compile()
        return _join(self._optimized)

    def asm(self, cpu="native") -> str:
        if cpu != "native":
            mods, tm = self._for_cpu(cpu, True)
            return _join([tm.emit_assembly(m) for m in mods])
        if self._asm is None:
            s = init()
            self.llvm_ir(True)
            with _lock:
                self._asm = _join([s["tm"].emit_assembly(llvm.parse_assembly(t)) for t in self._optimized])
        return self._asm

    def _for_cpu(self, cpu, optimized):
        tm, _triple, _name, vm = target_machine(cpu)
        texts = self._make_ir()
        mods = []
        with _lock:
            for text in texts:
                mod = parse(prepare_ir(text, vm), tm)
                if optimized:
                    optimize(mod, tm)
                mods.append(mod)
        return mods, tm
