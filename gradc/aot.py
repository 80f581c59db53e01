"""Ahead-of-time libraries: ``gradc build FILE.py:FUNC TYPES...`` writes ``libNAME.so``,
``NAME.h`` and a copy of ``gradc.h`` -- gradients that run without Python.

The library holds two entry points with gradc's kernel ABI (``runtime/gradc.h``; the
first alone with ``--forward``, ``wrt=None``)::

    int32_t NAME_forward(void **args, const int64_t *sizes, void *workspace);
    int32_t NAME_value_and_grad(void **args, const int64_t *sizes, void *workspace);

compiled from the same LLVM IR generator as the JIT (``llvm_codegen.lower``) for a
chosen CPU (``native``: this host; ``generic``: baseline x86-64; ``x86-64-v3``: AVX2;
``x86-64-v4``: AVX-512),
as position-independent object code linked by the system C compiler.  Two choices
differ from the JIT, both so that the library depends on nothing but libc and libm:
its loop nests run on one thread (the JIT's thread pool lives in gradc's Python
extension) and matrix products use the generated loops (the JIT calls the BLAS numpy
ships).

Constants the model closes over are embedded in the library as LLVM global constants
(read-only data), rather than passed by the caller as the JIT passes them: a C
program has no way to obtain them, and embedding keeps the ABI "inputs, then outputs".

A ``lax.scan`` stays a loop: each step kernel is a function of the library, which the
kernel calls through a table of its address and constants' addresses as in the JIT
(``step_table``), so the number of steps is one of the library's sizes.  A size TYPES
names that the model fixes while tracing is refused (``_check_sizes_kept``): the
library would serve only the traced example.  The header and the size helpers are C,
written by :mod:`gradc.aot_c`.

Each entry point writes every output slot: an output the kernel does not compute (an
argument returned as is, a constant, an output repeated) is copied by the entry point,
as the Python call path does.  Next to each entry point the library exports
``NAME_..._workspace_bytes(sizes)`` (the scratch memory it needs, mirroring
``llvm_codegen.workspace_bytes``) and ``NAME_..._check_sizes(sizes)`` (the checks the
Python call path makes before calling a kernel: sizes non-negative, at least the
model's lower bounds, no max/min over nothing), both generated as C.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile

import numpy as np

from .aot_c import SORT_RANK_SOURCE, header_source, helpers_source  # noqa: F401  (SORT_RANK_SOURCE: tests)
from .errors import GradcError
from .graph import Graph
from .passes import strip_custom

class BuildError(GradcError):
    """``gradc build`` cannot build this library (bad name, CPU, model, toolchain)."""


# ----------------------------------------------------------------------------- graphs
def trace_entries(fn, types, wrt=0, sizes=None):
    """(forward graph, value_and_grad graph) of ``fn`` for TYPES: see :func:`traced`."""
    return traced(fn, types, wrt, sizes)[:2]


def traced(fn, types, wrt=0, sizes=None):
    """(forward graph, value_and_grad graph, names of the differentiated inputs) of
    ``fn`` (``wrt=None``: the forward graph alone, of any outputs, then None and []) for TYPES such as ``["f64[d]", "f64[]", "f64[n,d]", "f64[n]"]``.  Size names
    in TYPES become the graphs' size symbols (so ``sizes[]`` is documented in the
    user's names); a number is a fixed size.  An argument may be a pytree of types
    (``{W1: f64[d,h], b1: f64[h]}``, ``(f64[d], f64[])``, or the same as Python dicts
    and tuples): its leaves become inputs named by their paths (``params_W1``)."""
    import gradc
    from .api import Flat, _names
    from .typespec import specs_of, type_trees
    trees = type_trees(types)
    flat = Flat(trees, _names(fn, len(trees)))
    specs = specs_of(flat.leaves, sizes)
    if wrt is None:
        _, forward, _, _, _ = gradc.jit(fn, backend="numpy").build(specs, flat.names, flat)
        _check_sizes_kept(specs, forward, forward.notes)
        return strip_custom(forward), None, []
    t = gradc.value_and_grad(fn, argnums=wrt, backend="numpy")
    _, forward, vg, _, _ = t.build(specs, flat.names, flat)
    _check_sizes_kept(specs, vg, forward.notes + vg.notes)
    forward, vg = strip_custom(forward), strip_custom(vg)     # code generation's graphs
    wrt_leaves = flat.wrt((wrt,) if isinstance(wrt, int) else tuple(wrt))
    return forward, vg, [vg[vg.inputs[i]]["name"] for i in wrt_leaves]


def _check_sizes_kept(specs, g: Graph, notes: list) -> None:
    """A size TYPES names must stay a size of the library: the model may not have fixed
    it while tracing (by reading it as a number, or by meeting a fixed size), or the
    library would silently serve only that size."""
    named = list(dict.fromkeys(d for sp in specs for d in sp.shape if isinstance(d, str)))
    kept = {d for i in g.inputs for d in g[i]["shape"] if isinstance(d, str)}
    lost = [d for d in named if d not in kept]
    if not lost:
        return
    why = list(dict.fromkeys(note for note in notes for d in lost if note.startswith(f"size {d} is fixed")))
    raise BuildError(
        f"the model fixes the size{'s' if len(lost) > 1 else ''} {', '.join(lost)} of TYPES while tracing, so "
        f"a library would serve only the traced example: " + ("; ".join(why) if why else
                                                                "it meets a fixed size of another argument")
        + ". Give the size as a number in TYPES, or compute without reading it (e.g. gnp.mean instead of "
          "dividing by x.shape[0])")


# ----------------------------------------------------------------------------- LLVM
def target_machine(cpu: str):
    """An LLVM TargetMachine for ``cpu`` emitting position-independent code, its triple
    and CPU name, and what the vector math may assume about that CPU."""
    from .backends import llvm_jit
    try:
        return llvm_jit.target_machine(cpu, reloc="pic")
    except llvm_jit.UnknownCPU as e:
        raise BuildError(f"--cpu: {e}") from None


def entry_module(s, public: str):
    """The kernel of schedule ``s`` plus the exported entry point ``public``: it passes
    the caller's inputs and outputs, and the embedded constants, to the kernel, then
    fills the output slots the kernel does not write.  Returns the module and the texts
    of its loops' step kernels' modules (``step_table``), which ``emit_object`` links in."""
    from llvmlite import ir
    from .backends.llvm_codegen import I8, I32, I64, lower
    from .backends.schedule_types import step_tables
    g = s.graph
    module = lower(s, f"{public}.kernel")          # no BLAS: the library stands alone
    kernel = module.globals[f"{public}.kernel"]
    kernel.linkage = "internal"
    vp = I8.as_pointer()
    fn = ir.Function(module, ir.FunctionType(I32, [vp.as_pointer(), I64.as_pointer(), vp]), name=public)
    args, sizes, ws = fn.args
    args.name, sizes.name, ws.name = "args", "sizes", "workspace"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    n_in = len(g.inputs)
    roots = list(dict.fromkeys(o for o in s.outputs if o in s.roots))

    def arg(k):
        return b.load(b.gep(args, [ir.Constant(I64, k)]))

    def embed(nid):
        return b.bitcast(_global_bytes(module, f"{public}.const{nid}", g[nid]["params"]["value"]), vp)

    parts: list = []
    tables = [step_table(module, step, f"{public}.step{k}", parts) for k, (_key, step) in enumerate(step_tables(s))]
    kargs = b.alloca(ir.ArrayType(vp, max(n_in + len(roots) + len(s.consts) + len(tables), 1)), name="kernel_args")
    slots = [arg(k) for k in range(n_in)] + [arg(n_in + s.outputs.index(o)) for o in roots] \
        + [embed(c) for c in s.consts] + [b.bitcast(t, vp) for t in tables]
    for k, p in enumerate(slots):
        b.store(p, b.gep(kargs, [ir.Constant(I64, 0), ir.Constant(I64, k)]))
    rc = b.call(kernel, [b.bitcast(kargs, vp.as_pointer()), sizes, ws], name="status")

    for pos, o in enumerate(s.outputs):
        if o in roots and s.outputs.index(o) == pos:
            continue                                  # the kernel wrote it
        if o in roots:
            src = arg(n_in + s.outputs.index(o))      # a repeated output
        elif g[o]["op"] == "input":
            src = arg(g.inputs.index(o))
        else:
            src = embed(o)
        nbytes = ir.Constant(I64, np.dtype(g[o]["dtype"]).itemsize)
        for d in g[o]["shape"]:
            dim = ir.Constant(I64, d) if isinstance(d, int) else \
                b.load(b.gep(sizes, [ir.Constant(I64, s.symbols.index(d))]))
            nbytes = b.mul(nbytes, dim)
        memcpy = module.globals.get("memcpy") or ir.Function(module, ir.FunctionType(vp, [vp, vp, I64]), "memcpy")
        b.call(memcpy, [arg(n_in + pos), src, nbytes])
    b.ret(rc)
    return module, parts


def _global_bytes(module, name: str, value):
    """An array's bytes as read-only data of the library (one global per name)."""
    from llvmlite import ir
    from .backends.llvm_codegen import I8
    gv = module.globals.get(name)
    if gv is None:
        data = bytearray(np.ascontiguousarray(value).tobytes())
        ty = ir.ArrayType(I8, len(data))
        gv = ir.GlobalVariable(module, ty, name=name)
        gv.initializer, gv.global_constant, gv.linkage, gv.align = ir.Constant(ty, data), True, "internal", 64
    return gv


def step_table(module, step, name: str, parts: list):
    """The table a loop's kernel reads its step kernel from (as the JIT's
    ``Kernel._attach_steps`` fills it): a global of int64s, the step kernel's address
    (the function ``name``, whose module's text is appended to ``parts``) and its
    constants' (globals of this module; a step's own loops' tables after them)."""
    from llvmlite import ir
    from .backends.llvm_codegen import I8, I32, I64, lower
    from .backends.schedule_types import step_tables
    ss = step.schedule
    parts.append(str(lower(ss, name)))
    vp = I8.as_pointer()
    fn = ir.Function(module, ir.FunctionType(I32, [vp.as_pointer(), I64.as_pointer(), vp]), name=name)
    consts = [_global_bytes(module, f"{name}.const{c}", ss.graph[c]["params"]["value"]) for c in ss.consts]
    nested = [step_table(module, st, f"{name}.step{j}", parts) for j, (_key, st) in enumerate(step_tables(ss))]
    entries = [fn] + consts + nested
    ty = ir.ArrayType(I64, len(entries))
    gv = ir.GlobalVariable(module, ty, name=f"{name}.table")
    gv.initializer, gv.global_constant, gv.linkage = ir.Constant(ty, [e.ptrtoint(I64) for e in entries]), True, "internal"
    return gv


def for_target(s, vm) -> None:
    """Set the target's forms of a matrix's rows on schedule ``s`` and its loops' steps
    (as the JIT's kernels do for their host)."""
    from .backends.llvm_backend import aligns_rows, stream_row_bytes
    from .backends.schedule_types import step_tables
    s.align_rows, s.stream_row_bytes = aligns_rows(vm), stream_row_bytes(vm)
    for _key, step in step_tables(s):
        for_target(step.schedule, vm)


def emit_object(module, tm, triple, vm, parts=()) -> bytes:
    """Object code of ``module`` and the modules ``parts`` (texts: its loops' step
    kernels, kept internal), optimized as in the JIT; the vector math they call is
    linked in for ``vm`` (``link_vecmath``)."""
    from .backends import vecmath
    from .backends.llvm_jit import link_vecmath, optimize, parse, prepare_ir
    text = prepare_ir(str(module), vm)
    mod = parse(text, tm, triple)
    texts = [text]
    for part in parts:
        texts.append(prepare_ir(part, vm))
        step = parse(texts[-1], tm, triple)
        names = [f.name for f in step.functions if not f.is_declaration and f.linkage.name == "external"]
        mod.link_in(step)
        for fname in names:          # (the library exports its entry points only)
            mod.get_function(fname).linkage = "internal"
    optimize(mod, tm)                # the loop vectorizer places the vector variants' calls
    used = vecmath.functions_in("\n".join(texts))
    if used:
        link_vecmath(mod, tm, vm, used)
    return tm.emit_object(mod)


# ----------------------------------------------------------------------------- build
def build(fn, types, *, wrt=0, out_dir=".", cpu="native", name=None, sizes=None, command=None,
          model_file="?"):
    """Write ``libNAME.so``, ``NAME.h`` and ``gradc.h`` into ``out_dir``; returns their paths.
    ``wrt=None``: the library has ``NAME_forward`` alone (a prediction function: any
    outputs, no gradient)."""
    from .backends import c_backend
    from .backends.schedule import schedule
    name = name or getattr(fn, "__name__", "model")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise BuildError(f"--name {name!r}: the library name must be a C identifier (letters, digits, _)")
    forward, vg, wrt_names = traced(fn, types, wrt, sizes)
    # one thread: no pool to link; sorts by gradc.h's merge sort (helpers_source)
    fwd_s = schedule(forward, native_sort=True)
    vg_s = schedule(vg, native_sort=True) if vg is not None else None
    if vg_s is not None and fwd_s.symbols != vg_s.symbols:
        raise BuildError(f"internal: forward sizes {fwd_s.symbols} differ from gradient sizes {vg_s.symbols}")
    tm, triple, cpu_name, vm = target_machine(cpu)
    entries = [(f"{name}_forward", fwd_s)] + ([(f"{name}_value_and_grad", vg_s)] if vg_s is not None else [])
    for _public, s in entries:      # (the target's forms of a matrix's rows, as the JIT's for its host)
        for_target(s, vm)
    cc = c_backend.compiler()
    cpu_desc = f"{triple}, CPU {cpu_name}" + (" (this host)" if cpu == "native" else "")
    header = header_source(name, getattr(fn, "__name__", "f"), command or f"gradc build ... --name {name}",
                           model_file, cpu_desc, fwd_s, vg_s, wrt_names)
    os.makedirs(out_dir, exist_ok=True)
    lib = os.path.join(out_dir, f"lib{name}.so")
    with tempfile.TemporaryDirectory(prefix="gradc-build-") as tmp:
        objs = []
        for public, s in entries:
            obj = os.path.join(tmp, f"{public}.o")
            with open(obj, "wb") as f:
                module, parts = entry_module(s, public)
                f.write(emit_object(module, tm, triple, vm, parts))
            objs.append(obj)
        for fname, text in ((f"{name}.h", header), ("sizes.c", helpers_source(entries, name))):
            with open(os.path.join(tmp, fname), "w") as f:
                f.write(text)
        shutil.copy(c_backend.header_path(), os.path.join(tmp, "gradc.h"))
        _run(cc + ["-std=c99", "-O2", "-fPIC", "-c", "-I", tmp, "-o", os.path.join(tmp, "sizes.o"),
                   os.path.join(tmp, "sizes.c")], "compiling the size helpers")
        _run(cc + ["-shared", f"-Wl,-soname,lib{name}.so", "-o", os.path.join(tmp, "lib.so")] + objs
             + [os.path.join(tmp, "sizes.o"), "-lm"], "linking the library")
        # a new file (not overwritten in place): a program running the old library keeps it
        staged = lib + ".tmp"
        shutil.copyfile(os.path.join(tmp, "lib.so"), staged)
        os.chmod(staged, 0o755)
        os.replace(staged, lib)
        for fname in (f"{name}.h", "gradc.h"):
            shutil.copyfile(os.path.join(tmp, fname), os.path.join(out_dir, fname))
    return [lib, os.path.join(out_dir, f"{name}.h"), os.path.join(out_dir, "gradc.h")]


def _run(argv, what):
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        msg = (r.stderr or r.stdout).strip().splitlines()
        raise BuildError(f"{what} failed (exit {r.returncode}): {'; '.join(msg[:5])}\n"
                         f"command: {' '.join(map(shlex.quote, argv))}")


# ----------------------------------------------------------------------------- command line
def run_cli(args, out) -> int:
    """``gradc build``: see :func:`gradc.cli.add_build`."""
    from .cli_args import CLIError, check_arity, load_function, parse_sizes, parse_wrt
    from .tree_util import tree_flatten
    from .typespec import parse_types, type_trees
    trees = type_trees(args.types)
    parse_types(tree_flatten(trees)[0], sizes=parse_sizes(args.size))     # bad TYPES fail before loading
    fn = load_function(args.target)
    check_arity(fn, trees, args.types)
    if args.forward and args.wrt is not None:
        raise CLIError("--wrt applies to the gradient; it cannot be combined with --forward")
    command = " ".join(["gradc build", args.target] + [shlex.quote(t) for t in args.types]
                       + (["--wrt", args.wrt] if args.wrt else []) + (["--forward"] if args.forward else [])
                       + ["--cpu", args.cpu] + (["--name", args.name] if args.name else []))
    wrt = None if args.forward else parse_wrt(args.wrt, fn)
    paths = build(fn, args.types, wrt=wrt, out_dir=args.output_dir, cpu=args.cpu,
                  name=args.name, sizes=parse_sizes(args.size), command=command,
                  model_file=os.path.basename(args.target.rpartition(":")[0]))
    for p in paths:
        print(f"wrote {p}", file=out)
    return 0

