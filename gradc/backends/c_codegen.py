"""Rendering the loop IR (``loop_ir.py``, made by ``lower_loops.build`` from a
:class:`~gradc.backends.schedule.Schedule`) as readable C99.

The LLVM renderer (``llvm_codegen.py``) walks the same IR, so the C reads next to the
LLVM IR: element-wise and view ops are inlined as expressions of the loop index (one
``const`` local per graph node, commented with the node it computes); roots are stored;
reductions accumulate in a register (``acc12``) or in memory; loop nests run their
stages (inner loops and row-level roots); matrix products and scatter-adds get their
own nests; gathers bounds-check their indices and set the status; broadcasting is an
index mapping (a dimension of size 1 is read at index 0); a sort is one call of
gradc.h's merge sort for its dtype (``gradc_sort_rank_f64``, ``_i64``, ...), as the
LLVM code's.

The kernel ABI is the one of ``runtime/gradc.h``::

    int32_t NAME(void **args, const int64_t *sizes, void *workspace)

The exported function unpacks ``args``/``sizes``/``workspace`` and calls a static
``NAME_impl`` whose pointer parameters are ``restrict`` (LLVM's ``noalias``), so
compilers vectorize without run-time overlap checks.

Sums accumulated in a register get ``#pragma omp simd reduction(+:acc)`` on their
innermost loop: with ``-fopenmp-simd`` that lets the compiler reassociate exactly those
additions (as the LLVM backend puts ``reassoc`` on its accumulators only), and nothing
else is reassociated, so NaN, inf and signed zeros behave as in numpy.

Only serial schedules (``schedule(graph)``, one thread) are lowered: generated C needs
no thread pool.
"""
from __future__ import annotations

import math
import re
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from ..version import __version__
from ..graph import fmt_type
from ..ops import OPS
from . import loop_ir as ir
from .lower_loops import build
from .schedule import Schedule, describe, workspace_layout
from .schedule_types import step_tables

COMMENT_COLUMN = 60


# ----------------------------------------------------------------------------- types
def ctype(dtype) -> str:
    """The C type of an element in memory (numpy's bool is one byte holding 0 or 1)."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return {8: "double", 4: "float"}[dt.itemsize]
    return ("int%d_t" if dt.kind == "i" else "uint%d_t") % (8 * dt.itemsize)


def reg_ctype(dtype) -> str:
    """The C type of a value in a register."""
    return "bool" if np.dtype(dtype) == np.bool_ else ctype(dtype)


def literal(value, dtype) -> str:
    """An exact C literal of ``value`` as ``dtype`` (shortest round-trip digits)."""
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return "true" if bool(value) else "false"
    if dt.kind in "iu":
        v = int(value)
        if dt.itemsize == 8 and not -2**31 <= v < 2**31:
            text = "INT64_MIN" if v == -2**63 else (f"INT64_C({v})" if dt.kind == "i" else f"UINT64_C({v})")
            return text if v >= 0 else f"({text})"
        return str(v) if v >= 0 else f"({v})"
    x = float(value)
    if math.isnan(x):
        return "NAN"
    if math.isinf(x):
        return "INFINITY" if x > 0 else "(-INFINITY)"
    text = str(np.float32(x)) if dt.itemsize == 4 else repr(x)
    if not any(c in text for c in ".en"):
        text += ".0"
    text += "f" if dt.itemsize == 4 else ""
    return text if not text.startswith("-") else f"({text})"


_CALL = re.compile(r"\b([A-Za-z_]\w*)\(")


# gradc.h's functions with variants for int64 ("i") and uint64 ("u") operands
_INTEGER_VARIANTS = ("gradc_max", "gradc_min", "gradc_abs", "gradc_sign", "gradc_pow", "gradc_idiv_q", "gradc_idiv_r",
                     "gradc_idiv_fmod", "gradc_shl", "gradc_shr", "gradc_bitcount")


def specialize(template: str, dtype) -> str:
    """Name gradc.h's function variant for ``dtype``: ``gradc_pow`` -> ``gradc_powf``
    for float32 (as libm's names), ``gradc_max`` -> ``gradc_maxi`` for integers,
    ``gradc_maxu`` for unsigned ones."""
    dt = np.dtype(dtype)

    def fix(m):
        name = m.group(1)
        if dt == np.float32 and name.startswith("gradc_"):
            name += "f"
        elif dt.kind == "u" and name in _INTEGER_VARIANTS:
            name += "u"                       # compared as unsigned; abs is the identity
        elif dt.kind in "iub" and name in _INTEGER_VARIANTS:
            name += "i"
        return name + "("
    return _CALL.sub(fix, template)


def _float_to_int(dtype) -> str:
    """gradc.h's float-to-integer conversion for ``dtype`` (numpy's answer on x86-64 for
    any value, where a C cast of an out-of-range value is undefined)."""
    dt = np.dtype(dtype)
    if dt.kind == "u" and dt.itemsize >= 4:
        return f"gradc_f2u{8 * dt.itemsize}"
    return "gradc_f2i64" if dt.itemsize == 8 else "gradc_f2i32"


def _reads_memory(x) -> bool:
    """Does expression ``x`` load from a buffer?"""
    if isinstance(x, ir.Load):
        return True
    return any(_reads_memory(v) for v in vars(x).values() if isinstance(v, ir.Expr)) or \
        any(_reads_memory(v) for v in getattr(x, "args", ()) if isinstance(v, ir.Expr))


def _dtype(x):
    """The dtype of expression ``x`` where the IR records it (None elsewhere)."""
    if isinstance(x, (ir.Load, ir.Apply, ir.MathCall, ir.FromIndex, ir.Const, ir.ToIndex)):
        return x.dtype
    if isinstance(x, ir.Guard):
        return _dtype(x.value)
    if isinstance(x, ir.Select):
        return _dtype(x.a)
    return None


def _atom(s: str) -> str:
    """``s`` parenthesized unless it is a name, a number or already one group."""
    if re.fullmatch(r"[\w.]+", s):
        return s
    if s.startswith("(") and s.endswith(")"):
        depth = 0
        for k, ch in enumerate(s):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and k < len(s) - 1:
                break
        else:
            return s
    return f"({s})"


def _comment_text(text: str) -> str:
    return text.replace("*/", "* /")


# ----------------------------------------------------------------------------- output
@dataclass
class _Loop:
    at: int                   # index of its `for` line
    indent: str
    inner: bool = False       # contains another loop
    sums: list = field(default_factory=list)   # register accumulators it adds to
    unsafe: bool = False      # anything else carried across iterations (memory, status, max)


class Writer:
    """Lines of C with indentation, trailing comments, and loop bookkeeping."""

    def __init__(self):
        self.lines: list[str] = []
        self.depth = 0
        self.loops: list[_Loop] = []

    def line(self, text="", comment=None):
        s = "    " * self.depth + text if text else ""
        if comment:
            s = f"{s:<{COMMENT_COLUMN}} /* {_comment_text(comment)} */" if len(s) < COMMENT_COLUMN \
                else f"{s}  /* {_comment_text(comment)} */"
        self.lines.append(s)

    @contextmanager
    def block(self, header):
        self.line(header + " {")
        self.depth += 1
        yield
        self.depth -= 1
        self.line("}")

    @contextmanager
    def function(self, signature):
        self.line(signature)
        self.line("{")
        self.depth += 1
        yield
        self.depth -= 1
        self.line("}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


# ----------------------------------------------------------------------------- codegen
# Names a generated local must not take: the C types and macros the kernel uses (a size
# symbol "t" would otherwise be the local size_t, shadowing the type), and the kernel's
# own parameters and status.
_RESERVED = {"size_t", "ptrdiff_t", "int8_t", "int16_t", "int32_t", "int64_t", "uint8_t", "uint16_t",
             "uint32_t", "uint64_t", "bool", "true", "false", "status", "ws", "args", "sizes", "workspace",
             "i", "j", "k"}
_STATUS = {ir.STATUS_INDEX_OUT_OF_BOUNDS: "GRADC_INDEX_OUT_OF_BOUNDS", ir.STATUS_NEGATIVE_POWER: "GRADC_NEGATIVE_POWER"}
_C_OPS = {"add": "+", "sub": "-", "mul": "*", "sdiv": "/", "srem": "%", "udiv": "/", "urem": "%",
          "lt": "<", "ge": ">=", "gt": ">", "eq": "==", "and": "&&", "or": "||"}


class CCodegen:
    """Spells a :class:`~gradc.backends.loop_ir.Kernel` as C: a graph node's value is a
    ``const`` local commented with the node, loops are ``for`` loops, accumulators
    locals; what is computed is the loop IR's."""

    def __init__(self, kernel: ir.Kernel):
        s = kernel.schedule
        if s.partials or any(getattr(n, "parallel", False) for n in s.nests):
            raise ValueError("internal: generated C lowers serial schedules only (schedule(graph), one thread)")
        self.kernel, self.s, self.g, self.name = kernel, s, s.graph, kernel.name
        self.w = Writer()
        self.memo = ir.Scopes()
        self.defined: dict = {}    # local name -> the node it holds
        self.accs: dict = {}       # id(Acc) -> its local
        self._used: set = set(_RESERVED)
        self._names()

    # -- naming ----------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self._used:
            name, k = f"{base}_{k}", k + 1
        self._used.add(name)
        return name

    def _names(self):
        """Buffer names: in_<arg> for inputs, out_<name> for outputs, c<id> for array
        constants, t<id> for workspace temporaries, sort<id> for a merge sort's scratch
        row; sizes are size_<symbol>."""
        s, g = self.s, self.g
        self.outputs = list(dict.fromkeys(o for o in s.outputs if o in s.roots))
        if any(len(region) > 1 for region in workspace_layout(s)):
            raise ValueError("internal: generated C needs an unshared workspace (schedule(graph, share=False))")
        # the workspace's regions, one buffer each: temporaries (s.workspace), a sort's
        # scratch row; a row pipeline's packed operands are LLVM's only (the C loops
        # compute those products directly), but keep their place in the layout
        self.ws = [(key, shape, np.dtype(dtype)) for ((key, shape, dtype),) in workspace_layout(s)]
        self.ws_used = [key for key, _, _ in self.ws if isinstance(key, int) or key[0] in ("sort", "carry", "y", "flag")
                        or key[0] in ("scanws", "condws") and key[2:] == (0, 0)]
        self.tables = [key for key, _step in step_tables(s)]
        self.buffer_nodes = list(g.inputs) + self.outputs + list(s.consts) + self.tables + self.ws_used
        self.buf_dtype = {key: dtype for key, _, dtype in self.ws}
        self.buf_dtype.update((nid, g[nid]["dtype"]) for nid in self.buffer_nodes if isinstance(nid, int))
        self.bufs = {}
        for nid in g.inputs:
            self.bufs[nid] = self.fresh("in_" + re.sub(r"\W", "_", g[nid]["name"] or f"arg{nid}"))
        names = g.output_names or []
        for o in self.outputs:
            k = s.outputs.index(o)
            label = names[k] if k < len(names) and names[k] else f"{k}"
            self.bufs[o] = self.fresh("out_" + re.sub(r"\W", "_", label))
        for nid in s.consts:
            self.bufs[nid] = self.fresh(f"c{nid}")
        for key in self.tables:
            self.bufs[key] = self.fresh(f"step{key[1]}")
            self.buf_dtype[key] = np.dtype(np.int64)
        for key in self.ws_used:
            self.bufs[key] = self.fresh(f"t{key}" if isinstance(key, int) else "_".join(map(str, key)))
        self.sizes = {sym: self.fresh("size_" + re.sub(r"\W", "_", sym)) for sym in s.symbols}

    def describe(self, nid) -> str:
        """``%12 = mul %5 %7  (model.py:4)``: the graph node a statement computes."""
        g = self.g
        text = f"{g.label(nid)} = {g.expr(nid)}"
        src = g.source(nid)
        if src:
            text += f"  {src}" if "(" in src else f"  ({src})"
        return text

    # -- sizes and memory --------------------------------------------------------------
    def size(self, d) -> str:
        return str(d) if isinstance(d, int) else self.sizes[d]

    def numel(self, shape) -> str:
        dims = [self.size(d) for d in shape if d != 1]
        return " * ".join(dims) if dims else "1"

    def ref(self, buf, index, shape) -> str:
        return f"{self.bufs[buf]}[{self.e(ir.flat_offset(shape, index))}]"

    # -- expressions -------------------------------------------------------------------
    def e(self, x) -> str:
        """The C text of expression ``x`` (a local, a literal or an inline expression),
        computed once per loop body."""
        hit = self.memo.get(x)
        if hit is None:
            hit = self.memo.put(x, self._e(x))
        return hit

    def unconditional(self, x) -> str:
        """An operand of a select that reads memory, computed into a local before the
        select: both operands are then read on every iteration, as in the LLVM code (every
        load gradc emits is in bounds whatever the condition).  GCC 12 if-converted a
        load inside ``c ? a[i] : 0.0`` into an AVX-512 masked load with a wrong mask
        (-O3 -march=x86-64-v3 and up: clip's gradient lost an element)."""
        text = self.e(x)
        dtype = _dtype(x)
        if text.isidentifier() or dtype is None or not _reads_memory(x):
            return text
        name = self.fresh("t")
        self.w.line(f"const {reg_ctype(dtype)} {name} = {text};")
        return name

    def define(self, nid, dtype, expr) -> str:
        """Emit ``const T v12 = expr;`` commented with node ``nid``; returns ``v12``."""
        name = self.fresh(f"v{nid}")
        self.defined[name] = nid
        self.w.line(f"const {reg_ctype(dtype)} {name} = {expr};", self.describe(nid))
        return name

    def _e(self, x) -> str:
        if isinstance(x, ir.Var):
            return x.name
        if isinstance(x, ir.Const):
            return str(int(x.value)) if x.dtype == ir.INDEX and x.value >= 0 else literal(x.value, x.dtype)
        if isinstance(x, ir.Size):
            return self.sizes[x.symbol]
        if isinstance(x, ir.Bin):
            text = f"{_atom(self.e(x.a))} {_C_OPS[x.op]} {_atom(self.e(x.b))}"
            if x.name is None:
                return text
            name = self.fresh(x.name.replace(".", "_"))    # a row of a block: row0, row1, ...
            self.w.line(f"const int64_t {name} = {text};")
            return name
        if isinstance(x, ir.Not):
            return f"!{_atom(self.e(x.a))}"
        if isinstance(x, ir.Load):
            return self.ref(x.buf, x.index, x.shape)
        if isinstance(x, ir.AccValue):
            return self.accs[id(x.acc)]
        if isinstance(x, ir.ToIndex):
            v = self.e(x.a)
            return v if x.dtype == np.int64 else f"(int64_t){_atom(v)}"
        if isinstance(x, ir.FromIndex):
            v = self.e(x.a)
            return v if x.dtype == np.int64 else f"({reg_ctype(x.dtype)}){_atom(v)}"
        if isinstance(x, ir.Checked):
            name = self.fresh(f"ix{x.nid}")
            self.w.line(f"const int64_t {name} = gradc_index({self.e(x.a)}, {self.e(x.n)}, &status);",
                        f"index {x.axis} of {self.g.label(x.nid)}, bounds-checked")
            self.unsafe()
            return name
        if isinstance(x, ir.Guard):
            value = self.e(x.value)
            self.w.line(f"if (!{_atom(self.e(x.ok))}) status |= {_STATUS[x.code]};",
                        None if x.nid is None else f"an operand of {self.g.label(x.nid)}, checked")
            self.unsafe()
            return value
        if isinstance(x, ir.MathCall):
            fn = (x.libm or f"gradc_{x.fn}") + ("f" if x.dtype == np.float32 else "")
            text = f"{fn}({', '.join(self.e(a) for a in x.args)})"
            return text if x.nid is None else self.define(x.nid, x.dtype, text)
        if isinstance(x, ir.Select):
            # parenthesized: a select is an operand of <, +, ... (a loop's bound)
            a, b = self.unconditional(x.a), self.unconditional(x.b)
            text = f"({_atom(self.e(x.cond))} ? {_atom(a)} : {_atom(b)})"
            return text if x.nid is None else self.define(x.nid, self.g[x.nid]["dtype"], text)
        if isinstance(x, ir.Apply):
            o = OPS[x.op]
            if o.c is None:
                raise NotImplementedError(f"op {x.op} has no C template")
            # (a conditional template, where's: operands that read memory go first)
            args = [self.unconditional(a) if "?" in o.c else self.e(a) for a in x.args]
            # ({ctype}: the result's C type, {src}: the operands', as a bit cast names them)
            text = specialize(o.c, x.arg_dtypes[-1]).format(*args, ctype=reg_ctype(x.dtype),
                                                            src=reg_ctype(x.arg_dtypes[-1]))
            if x.op == "cast" and np.dtype(x.arg_dtypes[-1]).kind == "f" and np.dtype(x.dtype).kind in "iu":
                text = f"({reg_ctype(x.dtype)}){_float_to_int(x.dtype)}((double){_atom(args[0])})"   # never C's UB cast
            return text if x.nid is None else self.define(x.nid, x.dtype, text)
        raise TypeError(f"internal: C has no spelling of {type(x).__name__}")

    # -- statements --------------------------------------------------------------------
    def loop(self, start, stop, body, var):
        """``for (int64_t var = start; var < stop; var++) { body() }``."""
        w = self.w
        if w.loops:
            w.loops[-1].inner = True
        ctx = _Loop(len(w.lines), "    " * w.depth)
        w.loops.append(ctx)
        self.memo.push()
        with w.block(f"for (int64_t {var} = {start}; {var} < {stop}; {var}++)"):
            body()
        self.memo.pop()
        w.loops.pop()
        if not ctx.inner and ctx.sums and not ctx.unsafe:
            sums = ", ".join(dict.fromkeys(ctx.sums))
            w.lines.insert(ctx.at, f"{ctx.indent}#pragma omp simd reduction(+:{sums})")

    def unsafe(self):
        """What was just emitted carries state across iterations of the innermost loop
        (a memory accumulation, the status flag, a max/min): no simd pragma there."""
        if self.w.loops:
            self.w.loops[-1].unsafe = True

    def combine(self, op, target, v, dtype, nid):
        """``target = combine(target, v)`` by reduction rule ``op``."""
        if op == "sum":
            self.w.line(f"{target} += {v};", self.describe(nid))
        else:
            fn = specialize(f"gradc_{op}(", dtype)
            self.w.line(f"{target} = {fn}{target}, {v});", self.describe(nid))

    def block(self, stmts):
        for st in stmts:
            self.stmt(st)

    def stmt(self, st):
        w = self.w
        if isinstance(st, ir.Loop):
            start, stop = self.e(st.start), self.e(st.stop)
            self.loop(start, stop, lambda: self.block(st.body), st.var.name)
        elif isinstance(st, ir.Fill):
            lit = literal(st.value.value, st.value.dtype)
            w.line(f"/* {_comment_text(self.g.label(st.nid))} starts from {lit} */")
            start, stop = self.e(st.start), self.e(st.stop)
            self.loop(start, stop, lambda: w.line(f"{self.bufs[st.buf]}[i] = {lit};"), "i")
        elif isinstance(st, ir.Store):
            v = self.e(st.value)
            w.line(f"{self.ref(st.buf, st.index, st.shape)} = {v};",
                   None if self.defined.get(v) == st.nid else self.describe(st.nid))
        elif isinstance(st, ir.Update):
            v = self.e(st.value)
            self.combine(st.op, self.ref(st.buf, st.index, st.shape), v, st.dtype, st.nid)
            self.unsafe()
        elif isinstance(st, ir.AccInit):
            name = self.accs[id(st.acc)] = self.fresh(st.acc.name.replace(".", "_"))
            w.line(f"{reg_ctype(st.acc.dtype)} {name} = {self.e(st.init)};",
                   f"{self.g.label(st.acc.nid)} accumulates in a register")
        elif isinstance(st, ir.Accumulate):
            v, name = self.e(st.value), self.accs[id(st.acc)]
            self.combine(st.op, name, v, st.acc.dtype, st.acc.nid)
            if st.op == "sum" and w.loops:
                w.loops[-1].sums.append(name)
            else:
                self.unsafe()
        elif isinstance(st, ir.Eval):
            self.e(st.value)
        elif isinstance(st, ir.Comment):
            w.line(f"/* {_comment_text(st.text)} */")
        elif isinstance(st, ir.SortRanks):
            # bool's buffers are uint8_t already (ctype), the type of its merge sort (_u8)
            w.line(f"gradc_sort_rank_{st.suffix}({self.e(st.batch)}, {self.e(st.n)}, {self.bufs[st.arg]}, "
                   f"{self.bufs[st.out]}, {self.bufs[st.scratch]});", self.describe(st.out) + ", by gradc.h's merge sort")
        elif isinstance(st, ir.ScanCall):
            self.scan(st)
        else:   # Rebase, Gemm, Parallel: threads, row-local values and BLAS are LLVM's only
            raise ValueError(f"internal: generated C has no {type(st).__name__} (lower a serial "
                             "schedule without BLAS and row-local values)")

    def scan(self, st):
        """A scan's loop: the step kernel called through the kernel ABI once per step
        (``step_caller``); each carry a pointer, where the step reads it, set to where
        it wrote it."""
        w = self.w
        w.line(f"/* {_comment_text(self.describe(st.nid))}: the step kernel, once per step */")
        call = self.step_caller(st, f"step{st.nid}")
        names = {}
        for k, (init, _bufs, _y) in enumerate(st.carries):
            names[("cur", k)], names[("next", k)] = self.fresh(f"step{st.nid}_cur{k}"), self.fresh(f"step{st.nid}_next{k}")
            w.line(f"char *{names[('cur', k)]} = {self.place(init, None, None, names)};")
        n = self.e(st.length) if st.length is not None else None
        check = self.step_caller(st.cond, f"cond{st.nid}") if st.cond is not None else None
        with w.block(f"for (int64_t i = 0; i < {n}; i++)" if n is not None else "for (int64_t i = 0; ; i++)"):
            w.line(f"const int64_t t = {f'{n} - 1 - i' if st.reverse else 'i'};")
            if check is not None:
                check(names)
                w.line(f"if (!*(const bool *)({self.place(st.cond.flag, self.bufs[st.cond.fn], 't', names)})) break;")
            for k, (_init, (b0, b1), y) in enumerate(st.carries):
                where = self.place(y, None, "t", names) if y is not None else \
                    f"(i & 1) ? (char *){self.bufs[b1]} : (char *){self.bufs[b0]}"
                w.line(f"char *{names[('next', k)]} = {where};")
            call(names)
            for c in st.after_step:
                self.copy(c, self.bufs[st.fn], "t", names)
            for k in range(len(st.carries)):
                w.line(f"{names[('cur', k)]} = {names[('next', k)]};")
        for c in st.after:
            self.copy(c, self.bufs[st.fn], None, names)

    def step_caller(self, st, name):
        """Declares a step kernel's function pointer, argument array (its constants
        filled in) and sizes, before the loop; returns ``call(names)``, which writes the
        call at step ``t``, OR-ing its status into the kernel's (``st``: a ScanCall or a
        LoopCond)."""
        w, places, table = self.w, list(st.inputs) + list(st.outputs), self.bufs[st.fn]
        fn, args, sizes = self.fresh(name), self.fresh(f"{name}_args"), self.fresh(f"{name}_sizes")
        w.line(f"gradc_kernel {fn} = (gradc_kernel)(uintptr_t){table}[0];")
        w.line(f"void *{args}[{max(len(places) + st.nconst, 1)}];")
        w.line(f"int64_t {sizes}[{max(len(st.sizes), 1)}];")
        for k, x in enumerate(st.sizes):
            w.line(f"{sizes}[{k}] = {self.e(x)};")
        for c in range(st.nconst):
            w.line(f"{args}[{len(places) + c}] = (void *)(uintptr_t){table}[{1 + c}];")
        ws = f"(void *){self.bufs[st.ws]}" if st.ws is not None else "NULL"

        def call(names):
            for k, p in enumerate(places):
                w.line(f"{args}[{k}] = {self.place(p, table, 't', names)};")
            w.line(f"status |= {fn}({args}, {sizes}, {ws});")
        return call

    def place(self, p, table, t, names) -> str:
        key, step = p
        if key == "stepconst":
            return f"(char *)(uintptr_t){table}[{1 + step}]"
        if key in names:
            return names[key]
        base = f"(char *){self.bufs[key]}"
        return f"{base} + {t} * ({self.e(step)})" if step is not None else base

    def copy(self, c, table, t, names):
        self.w.line(f"memcpy({self.place(c.dst, table, t, names)}, {self.place(c.src, table, t, names)}, "
                    f"(size_t)({self.e(c.nbytes)}));")

    # -- the functions -----------------------------------------------------------------
    def build(self) -> str:
        w, s = self.w, self.s
        self._preamble()
        params = []
        # a buffer written over another in place (schedule._in_place) shares its memory
        # within one loop: neither pointer may be restrict
        overlapping = set(s.in_place) | set(s.in_place.values())
        for nid in self.buffer_nodes:
            const = "const " if nid in self.g.inputs or nid in s.consts or nid in self.tables else ""
            restrict = "" if nid in overlapping else "restrict "
            params.append(f"{const}{ctype(self.buf_dtype[nid])} *{restrict}{self.bufs[nid]}")
        params += [f"int64_t {self.sizes[sym]}" for sym in s.symbols]
        pad = " " * len(f"static int32_t {self.name}_impl(")
        with w.function(f"static int32_t {self.name}_impl(" + (f",\n{pad}".join(params) or "void") + ")"):
            w.line("int32_t status = GRADC_OK;")
            for k, nest in enumerate(s.nests):
                w.line()
                w.line(f"/* {_comment_text(describe_nest(s, k))} */")
                self.memo.push()
                self.block(self.kernel.nests[k].body)
                self.memo.pop()
            w.line("return status;")
        w.line()
        self._wrapper()
        return w.text()

    def _preamble(self):
        s, g, w = self.s, self.g, self.w
        w.line(f"/* {self.name}: generated by gradc {__version__}; do not edit.")
        w.line(" *")
        w.line(" * The graph it computes (the optimized graph, as scheduled):")
        for text in str(g).splitlines():
            w.line(" *   " + _comment_text(text))
        w.line(" *")
        w.line(" * Loop nests:")
        for text in describe(s).splitlines():
            w.line(" *   " + _comment_text(text))
        w.line(" *")
        w.line(" * Kernel ABI (runtime/gradc.h):")
        w.line(f" *   int32_t {self.name}(void **args, const int64_t *sizes, void *workspace)")
        for k, nid in enumerate(self.buffer_nodes[: len(self.buffer_nodes) - len(self.ws_used)]):
            what = "the step kernel's address and its constants'" if nid in self.tables else \
                fmt_type(g[nid]['shape'], g[nid]['dtype'])
            w.line(f" *   args[{k}] = {self.bufs[nid]}: {what}")
        for k, sym in enumerate(s.symbols):
            w.line(f" *   sizes[{k}] = {sym}")
        ws = " + ".join(f"round64({self.numel(shape)} * {dt.itemsize})" for _k, shape, dt in self.ws)
        w.line(f" *   workspace: {ws or '0'} bytes")
        w.line(" */")
        w.line('#include "gradc.h"')
        if s.scans:
            w.line("#include <string.h>")
        w.line()

    def _wrapper(self):
        s, g, w = self.s, self.g, self.w
        with w.function(f"int32_t {self.name}(void **args, const int64_t *sizes, void *workspace)"):
            for k, sym in enumerate(s.symbols):
                w.line(f"const int64_t {self.sizes[sym]} = sizes[{k}];")
            if self.ws_used:
                w.line("char *ws = (char *)workspace;   /* the intermediates, each rounded up to 64 bytes */")
            else:
                w.line("(void)workspace;")
            last = max(k for k, (key, _, _) in enumerate(self.ws) if key in self.bufs) if self.ws_used else -1
            for k, (key, shape, dtype) in enumerate(self.ws[: last + 1]):
                t, n = ctype(dtype), self.numel(shape)
                if key in self.bufs:
                    what = self.describe(key) if isinstance(key, int) else \
                        f"merge sort scratch of {g.label(key[1])}" if key[0] == "sort" else f"scan {g.label(key[1])}: {key[0]}"
                    w.line(f"{t} *{self.bufs[key]} = ({t} *)ws;", what)
                if k < last:
                    nbytes = f"sizeof({t})" if n == "1" else f"(size_t)({n}) * sizeof({t})"
                    w.line(f"ws += gradc_workspace_round({nbytes});",
                           None if key in self.bufs else f"{key[0]} {g.label(key[1])}: not used by C")
            n_direct = len(self.buffer_nodes) - len(self.ws_used)
            args = [f"({'const ' if k < len(g.inputs) or k >= n_direct - len(s.consts) - len(self.tables) else ''}"
                    f"{ctype(self.buf_dtype[nid])} *)args[{k}]"
                    for k, nid in enumerate(self.buffer_nodes[:n_direct])]
            args += [self.bufs[key] for key in self.ws_used]
            args += [self.sizes[sym] for sym in s.symbols]
            if not n_direct:
                w.line("(void)args;")
            if not s.symbols:
                w.line("(void)sizes;")
            w.line(f"return {self.name}_impl(" + ("" if args else ");"))
            for k, a in enumerate(args):
                w.line(f"    {a}{',' if k < len(args) - 1 else ');'}")


def describe_nest(s: Schedule, k: int) -> str:
    return describe(s).splitlines()[k]


def render(kernel: ir.Kernel) -> str:
    """The C source of a loop IR kernel (built without BLAS, threads or row-local values)."""
    return CCodegen(kernel).build()


def generate(s: Schedule, name: str) -> str:
    """The C source of a kernel named ``name`` for schedule ``s`` (serial; rows in the
    blocks the schedule chose, as the LLVM kernel runs them)."""
    return render(build(s, name))
