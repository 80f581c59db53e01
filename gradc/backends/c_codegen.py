"""Lowering a :class:`~gradc.backends.schedule.Schedule` to readable C99.

The structure mirrors ``llvm_codegen.py`` nest for nest, so the C reads next to the IR:
element-wise and view ops are inlined as expressions of the loop index (one ``const``
local per graph node, commented with the node it computes); roots are stored;
reductions accumulate in a register (``acc12``) or in memory; loop nests run their
stages (inner loops and row-level roots); matrix products and scatter-adds get their
own nests; gathers bounds-check their indices and set the status; broadcasting is an
index mapping (a dimension of size 1 is read at index 0).

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
from .schedule import REDUCE, Lowering, identity, workspace_layout
from .schedule import Schedule, broadcast_index, describe, view_index

LIBM = {"exp", "log", "log1p", "expm1", "sqrt", "fabs", "sin", "cos", "tanh", "pow"}
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


def specialize(template: str, dtype) -> str:
    """Name the function variant for ``dtype``: ``exp`` -> ``expf`` for float32 (libm's
    names; gradc.h's helpers follow them), ``gradc_max`` -> ``gradc_maxi`` for integers,
    ``gradc_maxu`` for unsigned ones."""
    dt = np.dtype(dtype)

    def fix(m):
        name = m.group(1)
        if dt == np.float32 and (name in LIBM or name.startswith("gradc_")):
            name += "f"
        elif dt.kind == "u" and name in ("gradc_max", "gradc_min", "gradc_abs"):
            name += "u"                       # compared as unsigned; abs is the identity
        elif dt.kind in "iub" and name in ("gradc_max", "gradc_min", "gradc_abs", "gradc_pow"):
            name += "i"
        return name + "("
    return _CALL.sub(fix, template)


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
class CCodegen(Lowering):
    def __init__(self, s: Schedule, name: str):
        if s.partials or any(getattr(n, "parallel", False) for n in s.nests):
            raise ValueError("internal: generated C lowers serial schedules only (schedule(graph), one thread)")
        self.s, self.g, self.name = s, s.graph, name
        self.w = Writer()
        self.memo: dict = {}
        self.defined: dict = {}    # local name -> the node it holds
        self._used: set = set()
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
        constants, t<id> for workspace temporaries; sizes are size_<symbol>."""
        s, g = self.s, self.g
        self.outputs = list(dict.fromkeys(o for o in s.outputs if o in s.roots))
        self.buffer_nodes = list(g.inputs) + self.outputs + list(s.consts) + list(s.workspace)
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
        for nid in s.workspace:
            self.bufs[nid] = self.fresh(f"t{nid}")
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

    def offset(self, shape, idx) -> str:
        """Row-major offset of ``idx`` in a contiguous array of ``shape`` (size-1
        dimensions contribute nothing: that is how broadcasting reads them)."""
        off = "0"
        for d, i in zip(shape, idx):
            if d == 1:
                continue
            off = i if off == "0" else f"{_atom(off)} * {self.size(d)} + {_atom(i)}"
        return off

    def ref(self, nid, idx) -> str:
        return f"{self.bufs[nid]}[{self.offset(self.g[nid]['shape'], idx)}]"

    def store(self, nid, idx, v, comment=None):
        self.w.line(f"{self.ref(nid, idx)} = {v};", comment)

    # -- expressions -------------------------------------------------------------------
    def val(self, nid, idx) -> str:
        """The value of node ``nid`` at index ``idx``: a local, a literal or a load."""
        key = (nid, tuple(idx))
        hit = self.memo.get(key)
        if hit is None:
            hit = self.memo[key] = self._val(nid, idx)
        return hit

    def define(self, nid, expr) -> str:
        """Emit ``const T v12 = expr;`` commented with node ``nid``; returns ``v12``."""
        name = self.fresh(f"v{nid}")
        self.defined[name] = nid
        self.w.line(f"const {reg_ctype(self.g[nid]['dtype'])} {name} = {expr};", self.describe(nid))
        return name

    def _argidx(self, arg, out_shape, idx):
        """Broadcasting: the index of ``arg`` that feeds element ``idx`` of the result."""
        return broadcast_index(self.g[arg]["shape"], len(out_shape), idx, "0")

    def _val(self, nid, idx) -> str:
        d = self.g[nid]
        op = d["op"]
        if op == "const":
            v = d["params"]["value"]
            if v.ndim == 0:
                return literal(v.item(), d["dtype"])
            return self.ref(nid, idx)
        if nid in self.bufs:
            return self.ref(nid, idx)
        o = OPS[op]
        if o.kind == "elementwise":
            args = [self.val(a, self._argidx(a, d["shape"], idx)) for a in d["args"]]
            if o.c is None:
                raise NotImplementedError(f"op {op} has no C template")
            template = specialize(o.c, self.g[d["args"][-1]]["dtype"])
            return self.define(nid, template.format(*args, ctype=reg_ctype(d["dtype"])))
        return getattr(self, "_view_" + op)(nid, d, idx)

    def _view_broadcast_to(self, nid, d, idx):
        return self.val(d["args"][0], view_index(self.g, nid, d["args"][0], idx, "0"))

    _view_transpose = _view_broadcast_to   # a permutation of the index (view_index)

    def _view_reshape(self, nid, d, idx):
        a = d["args"][0]
        ins, outs = self.g[a]["shape"], d["shape"]
        plain = view_index(self.g, nid, a, idx, "0")   # only size-1 axes added or dropped
        if plain is not None:
            return self.val(a, plain)
        flat = self.fresh(f"flat{nid}")     # general reshape: linearize, then delinearize
        self.w.line(f"const int64_t {flat} = {self.offset(outs, idx)};", self.describe(nid))
        inner, rest = [], flat
        for k in range(len(ins) - 1, -1, -1):
            n = self.size(ins[k])
            inner.append(f"{_atom(rest)} % {n}" if k else rest)
            rest = f"{_atom(rest)} / {n}"
        return self.val(a, inner[::-1])

    def _view_slice(self, nid, d, idx):
        inner = []
        for i, (a, _, c) in zip(idx, d["params"]["index"]):
            j = i if c == 1 else f"{_atom(i)} * {c}"
            inner.append(j if a == 0 else f"{_atom(j)} + {a}")
        return self.val(d["args"][0], inner)

    def _view_unslice(self, nid, d, idx):
        """Zeros with the argument placed at a strided window: read it where inside."""
        src = d["args"][0]
        conds, rels = [], []
        for i, (a, _, c), n in zip(idx, d["params"]["index"], self.g[src]["shape"]):
            rel = i if a == 0 else f"{_atom(i)} - {a}"
            if c != 1:
                conds.append(f"{_atom(rel)} % {c} == 0")
                rel = f"{_atom(rel)} / {c}"
            conds += [f"{_atom(rel)} >= 0", f"{_atom(rel)} < {self.size(n)}"]
            rels.append(rel)
        ok = self.fresh(f"inside{nid}")
        self.w.line(f"const bool {ok} = {' && '.join(conds) or 'true'};", f"inside the window of {self.g.label(nid)}")
        v = self.val(src, [f"{ok} ? {_atom(r)} : 0" for r in rels])
        return self.define(nid, f"{ok} ? {v} : {literal(0, d['dtype'])}")

    def _view_gather(self, nid, d, idx):
        x, *ix = d["args"]
        inner = []
        for axis, (a, n) in enumerate(zip(ix, self.g[x]["shape"])):
            k = self.as_index(a, self.val(a, self._argidx(a, d["shape"], idx)))
            name = self.fresh(f"ix{nid}")
            self.w.line(f"const int64_t {name} = gradc_index({k}, {self.size(n)}, &status);",
                        f"index {axis} of {self.g.label(nid)}, bounds-checked")
            self.unsafe()
            inner.append(name)
        return self.define(nid, self.val(x, inner))

    def as_index(self, nid, v) -> str:
        """Value ``v`` of integer node ``nid`` as an int64_t index."""
        return v if self.g[nid]["dtype"] == np.int64 else f"(int64_t){_atom(v)}"

    def _view_iota(self, nid, d, idx):
        i = idx[d["params"]["axis"]]
        return i if d["dtype"] == np.int64 else f"({reg_ctype(d['dtype'])}){_atom(i)}"

    def _view_count(self, nid, d, idx):
        shape = self.g[d["args"][0]]["shape"]
        dims = [shape[a] for a in d["params"]["axes"]]
        if all(isinstance(x, int) for x in dims):
            return literal(int(np.prod(dims, dtype=np.int64)), d["dtype"])
        return f"({reg_ctype(d['dtype'])})({self.numel(dims)})"

    def _view_concatenate(self, nid, d, idx):
        axis = d["params"]["axis"]
        result, start = None, 0
        for a in d["args"]:
            n = self.g[a]["shape"][axis]
            rel = idx[axis] if start == 0 else f"{_atom(idx[axis])} - {start}"
            inside = f"{_atom(rel)} >= 0 && {_atom(rel)} < {n}"
            v = self.val(a, [f"({inside}) ? {_atom(rel)} : 0" if k == axis else i for k, i in enumerate(idx)])
            result = v if result is None else f"({inside}) ? {v} : {result}"
            start += n
        return self.define(nid, result)

    # -- loops -----------------------------------------------------------------------
    def loop(self, n, body, var="i"):
        """``for (int64_t var = 0; var < n; var++) { body(var) }``."""
        w = self.w
        if w.loops:
            w.loops[-1].inner = True
        ctx = _Loop(len(w.lines), "    " * w.depth)
        w.loops.append(ctx)
        with w.block(f"for (int64_t {var} = 0; {var} < {n}; {var}++)"):
            body(var)
        w.loops.pop()
        if not ctx.inner and ctx.sums and not ctx.unsafe:
            sums = ", ".join(dict.fromkeys(ctx.sums))
            w.lines.insert(ctx.at, f"{ctx.indent}#pragma omp simd reduction(+:{sums})")

    def unsafe(self):
        """What was just emitted carries state across iterations of the innermost loop
        (a memory accumulation, the status flag, a max/min): no simd pragma there."""
        if self.w.loops:
            self.w.loops[-1].unsafe = True

    def accumulate(self, nid, target, v, register):
        """``target += v`` (or max/min) for reduction ``nid``; ``register``: ``target``
        is a local accumulator, so the innermost loop may vectorize the sum."""
        op = self.g[nid]["op"]
        if op == "sum":
            self.w.line(f"{target} += {v};", self.describe(nid))
            if register and self.w.loops:
                self.w.loops[-1].sums.append(target)
            else:
                self.unsafe()
        else:
            fn = specialize(f"gradc_{op}(", self.g[nid]["dtype"])
            self.w.line(f"{target} = {fn}{target}, {v});", self.describe(nid))
            self.unsafe()

    def fill(self, nid, value):
        """Set every element of a root's buffer (the identity of a reduction)."""
        d = self.g[nid]
        lit = literal(value, d["dtype"])
        self.w.line(f"/* {_comment_text(self.g.label(nid))} starts from {lit} */")
        self.loop(self.numel(d["shape"]), lambda i: self.w.line(f"{self.bufs[nid]}[{i}] = {lit};"), "i")

    # -- nests -----------------------------------------------------------------------
    def emit_loop_nest(self, nest):
        """Loops over the nest's domain.  Outer loops are shared; at the innermost level
        the stages run in order for each outer index: even stages are inner loops over
        the last axis, odd stages compute row-level roots between them."""
        g = self.g
        dom, r, info = nest.domain, len(nest.domain), nest.info
        for nid in nest.roots:
            if g[nid]["op"] in REDUCE and info[nid]["acc"] is None:
                self.fill(nid, identity(g[nid]["op"], g[nid]["dtype"]))
        accs = {}
        n_stages = max((info[n]["stage"] for n in nest.roots), default=0) + 1

        def is_reduce(nid):
            return g[nid]["op"] in REDUCE

        stage_local, root_rank = nest.stage_local, nest.root_rank

        def out_index(nid, idx):
            return nest.reduced_index(g[nid], idx, "0")

        def init_acc(nid):
            d = g[nid]
            acc = accs[nid] = self.fresh(f"acc{nid}")
            self.w.line(f"{reg_ctype(d['dtype'])} {acc} = {literal(identity(d['op'], d['dtype']), d['dtype'])};",
                        f"{g.label(nid)} accumulates in a register")

        def store_acc(nid, idx):
            full = idx + ["0"] * (root_rank(nid) - len(idx))
            self.store(nid, out_index(nid, full), accs[nid])

        def body(roots, idx):
            self.memo = {}
            for nid in roots:
                if not is_reduce(nid):
                    v = self._val_root(nid, idx)
                    self.store(nid, idx, v, None if self.defined.get(v) == nid else self.describe(nid))
                    continue
                v = self.val(g[nid]["args"][0], idx)
                if info[nid]["acc"] is not None:
                    self.accumulate(nid, accs[nid], v, register=True)
                else:
                    self.accumulate(nid, self.ref(nid, out_index(nid, idx)), v, register=False)

        def stages(idx):
            for st in range(n_stages):
                roots = [n for n in nest.roots if info[n]["stage"] == st]
                if not roots:
                    continue
                if st % 2:
                    self.w.line(f"/* stage {st}: row level */")
                    body(roots, idx)
                    continue
                local = [n for n in roots if is_reduce(n) and stage_local(n)]
                for n in local:
                    init_acc(n)
                if r:
                    if n_stages > 1:
                        self.w.line(f"/* stage {st} */")
                    self.loop(self.size(dom[r - 1]), lambda i: body(roots, idx + [i]), f"i{r - 1}")
                else:
                    body(roots, idx)
                for n in local:
                    store_acc(n, idx)

        def level(k, idx):
            outers = [n for n in nest.roots if is_reduce(n) and info[n]["acc"] == k and not stage_local(n)]
            for n in outers:
                init_acc(n)
            if k >= r - 1:
                stages(idx)
            else:
                self.loop(self.size(dom[k]), lambda i: level(k + 1, idx + [i]), f"i{k}")
            for n in outers:
                store_acc(n, idx)

        level(0, [])

    def emit_matmul(self, nest):
        """A matrix-matrix product (schedule.decompose turned every product with a
        vector operand into element-wise products and sums, fused with their nests)."""
        (nid,) = nest.roots
        a, bb = self.g[nid]["args"]
        sa, sb = self.g[a]["shape"], self.g[bb]["shape"]
        assert len(sa) == len(sb) == 2, "internal: decompose() leaves only matrix-matrix products"
        self.memo = {}
        self.matmul_loops(nid, a, bb, self.size(sa[1]), self.size(sa[0]), self.size(sb[1]))

    def matmul_loops(self, nid, a, bb, k, m, n):
        self.fill(nid, 0.0)

        def over_i(i):     # i-k-j order: the inner loop streams rows of b and c (vectorizes)
            def over_k(kk):
                self.memo = {}
                va = self.val(a, [i, kk])

                def over_j(j):
                    self.memo = {}
                    self.w.line(f"{self.ref(nid, [i, j])} += {va} * {self.val(bb, [kk, j])};", self.describe(nid))
                    self.unsafe()
                self.loop(n, over_j, "j")
            self.loop(k, over_k, "k")
        self.loop(m, over_i, "i")

    def emit_scatter(self, nest):
        (nid,) = nest.roots
        d = self.g[nid]
        upd, *ix = d["args"]
        self.fill(nid, 0.0)
        dom, shape = nest.domain, d["shape"]

        def level(k, idx):
            if k < len(dom):
                self.loop(self.size(dom[k]), lambda i: level(k + 1, idx + [i]), f"s{k}")
                return
            self.memo = {}
            inner = []
            for axis, (a, n) in enumerate(zip(ix, shape)):
                kk = self.as_index(a, self.val(a, self._argidx(a, dom, idx)))
                name = self.fresh(f"ix{nid}")
                self.w.line(f"const int64_t {name} = gradc_index({kk}, {self.size(n)}, &status);",
                            f"index {axis} of {self.g.label(nid)}, bounds-checked")
                inner.append(name)
            v = self.val(upd, idx)
            self.w.line(f"{self.ref(nid, inner)} += {v};", self.describe(nid))
            self.unsafe()
        level(0, [])

    # -- the functions -----------------------------------------------------------------
    def build(self) -> str:
        w, s = self.w, self.s
        self._preamble()
        params = []
        for nid in self.buffer_nodes:
            const = "const " if nid in self.g.inputs or nid in s.consts else ""
            params.append(f"{const}{ctype(self.g[nid]['dtype'])} *restrict {self.bufs[nid]}")
        params += [f"int64_t {self.sizes[sym]}" for sym in s.symbols]
        pad = " " * len(f"static int32_t {self.name}_impl(")
        with w.function(f"static int32_t {self.name}_impl(" + (f",\n{pad}".join(params) or "void") + ")"):
            w.line("int32_t status = GRADC_OK;")
            for k, nest in enumerate(s.nests):
                w.line()
                w.line(f"/* {_comment_text(describe_nest(s, k))} */")
                {"loop": self.emit_loop_nest, "matmul": self.emit_matmul,
                 "scatter": self.emit_scatter}[nest.kind](nest)
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
        for k, nid in enumerate(self.buffer_nodes[: len(self.buffer_nodes) - len(s.workspace)]):
            w.line(f" *   args[{k}] = {self.bufs[nid]}: {fmt_type(g[nid]['shape'], g[nid]['dtype'])}")
        for k, sym in enumerate(s.symbols):
            w.line(f" *   sizes[{k}] = {sym}")
        if any(len(region) > 1 for region in workspace_layout(s)):
            raise ValueError("internal: generated C needs an unshared workspace (schedule(graph, share=False))")
        ws = " + ".join(f"round64({self.numel(shape)} * {np.dtype(dt).itemsize})"
                        for region in workspace_layout(s) for _k, shape, dt in region)
        w.line(f" *   workspace: {ws or '0'} bytes")
        w.line(" */")
        w.line('#include "gradc.h"')
        w.line()

    def _wrapper(self):
        s, g, w = self.s, self.g, self.w
        with w.function(f"int32_t {self.name}(void **args, const int64_t *sizes, void *workspace)"):
            for k, sym in enumerate(s.symbols):
                w.line(f"const int64_t {self.sizes[sym]} = sizes[{k}];")
            if s.workspace:
                w.line("char *ws = (char *)workspace;   /* the intermediates, each rounded up to 64 bytes */")
            else:
                w.line("(void)workspace;")
            for k, nid in enumerate(s.workspace):
                t, n = ctype(g[nid]["dtype"]), self.numel(g[nid]["shape"])
                w.line(f"{t} *{self.bufs[nid]} = ({t} *)ws;", self.describe(nid))
                if k < len(s.workspace) - 1:
                    nbytes = f"sizeof({t})" if n == "1" else f"(size_t)({n}) * sizeof({t})"
                    w.line(f"ws += gradc_workspace_round({nbytes});")
            n_direct = len(self.buffer_nodes) - len(s.workspace)
            args = [f"({'const ' if k < len(g.inputs) or k >= n_direct - len(s.consts) else ''}"
                    f"{ctype(g[nid]['dtype'])} *)args[{k}]"
                    for k, nid in enumerate(self.buffer_nodes[:n_direct])]
            args += [self.bufs[nid] for nid in s.workspace]
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


def generate(s: Schedule, name: str) -> str:
    """The C source of a kernel named ``name`` for schedule ``s``."""
    return CCodegen(s, name).build()
