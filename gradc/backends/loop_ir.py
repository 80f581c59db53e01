"""The loop IR: a schedule's fused nests made explicit, once, for every renderer.

A :class:`Kernel` is a tree of statements (loops, fills, stores, accumulators, library
calls, parallel nests) whose values are small expression trees (loads through index
maps, registry ops, calls of the math library, bounds-checked indices, status checks).  ``lower_loops.build`` makes it from a
:class:`~gradc.backends.schedule.Schedule` and decides everything about *what* is
computed; the renderers (``c_codegen.py``, ``llvm_codegen.py``) only spell these
constructs in their target, and :func:`render_text` prints them (``Lowered.loop_ir()``,
``gradc ir --loops``).

Expressions are compared by identity: the builder shares one object for one value of
one body (a node at one index), and a renderer computes each object once per loop
scope (see ``Scopes``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .schedule import Schedule

# A kernel's status: an OR of these bits (runtime/gradc.h's GRADC_* codes).
STATUS_INDEX_OUT_OF_BOUNDS = 1   # a gather or scatter index outside its array
STATUS_NEGATIVE_POWER = 8        # an integer raised to a negative integer power
STATUS_SINGULAR_MATRIX = 16      # linalg.solve or linalg.inv of a singular matrix
STATUS_NOT_POSITIVE_DEFINITE = 32  # linalg.cholesky of a matrix that is not positive definite
STATUS_NO_CONVERGENCE = 64       # linalg.eigh's iteration did not converge
STATUS_LAPACK_UNAVAILABLE = 128  # the extension has no LAPACK routines registered
STATUS_OUT_OF_MEMORY = 256       # a linear algebra workspace could not be allocated
STATUS_LINALG = (STATUS_SINGULAR_MATRIX | STATUS_NOT_POSITIVE_DEFINITE | STATUS_NO_CONVERGENCE
                 | STATUS_LAPACK_UNAVAILABLE | STATUS_OUT_OF_MEMORY)

# gradc_lapack's routine codes (runtime/lapack.c's GRADC_LA_*), by the op they compute.
LAPACK_ROUTINES = {"solve": 0, "inv": 1, "det": 2, "slogdet": 3, "cholesky": 4, "eigvalsh": 5, "eigh": 6,
                   ("solve_triangular", True): 7, ("solve_triangular", False): 8,   # (op, lower)
                   "svdvals": 9, ("svd_u", False): 10, ("svd_vt", False): 11, ("svd_u", True): 12,
                   ("svd_vt", True): 13, ("qr_q", False): 14, "qr_r": 15, ("qr_q", True): 16,   # (op, full)
                   "pinv": 17, "lu": 18, "lu_pivots": 19, "lu_perm": 20}
# the ops of a rectangular (M, N) matrix stack: gradc_lapack's k is their M
LAPACK_RECT = ("svdvals", "svd_u", "svd_vt", "qr_q", "qr_r", "pinv")

INDEX = np.dtype(np.int64)
SKINNY_MAX_N = 16     # GRADC_SKINNY_MAX_N in runtime/skinny.c


# ----------------------------------------------------------------------------- expressions
class Expr:
    __slots__ = ()


@dataclass(eq=False)
class Var(Expr):
    """A loop index or a value the renderer binds (``start``, ``end``, ``chunk``)."""
    name: str


@dataclass(eq=False)
class Const(Expr):
    value: object
    dtype: np.dtype = INDEX


@dataclass(eq=False)
class Size(Expr):
    """A size symbol's run-time value."""
    symbol: str


@dataclass(eq=False)
class Bin(Expr):
    """Index arithmetic and logic on int64 (``sdiv``/``srem``: signed; ``udiv``/``urem``:
    operands known non-negative) and comparisons (a bool)."""
    op: str        # add sub mul sdiv srem udiv urem | lt ge eq gt | and or
    a: Expr
    b: Expr
    name: str | None = None    # a row of a block (shown, and named in the IR)


@dataclass(eq=False)
class Not(Expr):
    a: Expr


@dataclass(eq=False)
class Select(Expr):
    cond: Expr
    a: Expr
    b: Expr
    nid: int | None = None     # the graph node it computes (names, comments)


@dataclass(eq=False)
class Load(Expr):
    """Element ``index`` of buffer ``buf`` (a node id, or a key of schedule.workspace_layout),
    a row-major array of ``shape`` (size-1 axes take no part in the offset)."""
    buf: object
    index: tuple
    shape: tuple
    dtype: np.dtype


@dataclass(eq=False)
class Apply(Expr):
    """A registry op (``Op.llvm``, ``Op.c``) of element-wise operands."""
    op: str
    args: tuple
    dtype: np.dtype
    arg_dtypes: tuple
    params: dict = field(default_factory=dict)
    nid: int | None = None


@dataclass(eq=False)
class MathCall(Expr):
    """``fn(*args)`` of gradc's math library, element by element (an op's ``Op.math``:
    exp, log, log1p, expm1, sqrt, sin, cos, tanh, sigmoid, softplus).  LLVM calls
    gradc's vector function (vecmath.py; the loop vectorizer widens the call) or the
    LLVM intrinsic; C calls ``libm`` (C's name for it in libm; None: gradc.h's
    ``gradc_<fn>``), with float32's ``f`` suffix."""
    fn: str
    args: tuple
    dtype: np.dtype
    libm: str | None = None
    nid: int | None = None


@dataclass(eq=False)
class Guard(Expr):
    """``value``, after ORing status bit ``code`` into the kernel's status unless ``ok``
    holds (an integer raised to a negative power: STATUS_NEGATIVE_POWER)."""
    value: Expr
    ok: Expr
    code: int
    nid: int | None = None     # the graph node whose operand it checks (comments)


@dataclass(eq=False)
class ToIndex(Expr):
    """An integer value as an int64 index."""
    a: Expr
    dtype: np.dtype


@dataclass(eq=False)
class FromIndex(Expr):
    """An int64 index as a value of ``dtype`` (iota, count)."""
    a: Expr
    dtype: np.dtype


@dataclass(eq=False)
class Checked(Expr):
    """A gather/scatter index: negative ones count from the end; outside [0, n) ORs
    STATUS_INDEX_OUT_OF_BOUNDS into the status and reads index 0 instead."""
    a: Expr
    n: Expr
    nid: int
    axis: int


@dataclass(eq=False)
class AccValue(Expr):
    acc: "Acc"


ZERO = Const(0)


# ----------------------------------------------------------------------------- statements
@dataclass(eq=False)
class Acc:
    """A register accumulator of reduction ``nid``."""
    name: str
    nid: int
    dtype: np.dtype


@dataclass(eq=False)
class Loop:
    var: Var
    start: Expr
    stop: Expr
    body: list
    plain: bool = False     # one vector loop, no interleaving or unrolling (a chunk's few rows)
    align: object = None    # a Load: its address is made 64-byte aligned (see aligned_load)
    narrow: bool = False    # at most SKINNY_MAX_N steps (a row of a row pipeline's narrow
    #                         product): one masked vector loop, no scalar remainder


@dataclass(eq=False)
class Fill:
    """Elements [start, stop) of buffer ``buf`` (flat) set to ``value``."""
    buf: object
    value: Const
    start: Expr
    stop: Expr
    nid: int


@dataclass(eq=False)
class Store:
    buf: object
    index: tuple
    shape: tuple
    value: Expr
    nid: int


@dataclass(eq=False)
class Eval:
    """Compute ``value`` here (it is used in the loops that follow)."""
    value: Expr


@dataclass(eq=False)
class AccInit:
    acc: Acc
    init: Expr


@dataclass(eq=False)
class Accumulate:
    """``acc = combine(acc, value)`` with reduction rule ``op`` (sum, max, min) over
    ``dtype``: sums may be reassociated (vectorized); max/min propagate NaN and compare
    unsigned integers unsigned."""
    acc: Acc
    op: str
    value: Expr


@dataclass(eq=False)
class Update:
    """``buf[index] = combine(buf[index], value)`` in memory; ``reassoc``: the sum may be
    reassociated (reductions; a scatter-add's may not)."""
    buf: object
    index: tuple
    shape: tuple
    op: str
    value: Expr
    dtype: np.dtype
    nid: int
    reassoc: bool = True


@dataclass(eq=False)
class Rebase:
    """Buffer ``buf`` is ``base`` advanced by ``offset`` elements (a chunk's partial
    result, a chunk's block of row-local values)."""
    buf: object
    base: object
    offset: Expr
    dtype: np.dtype


@dataclass(eq=False)
class Comment:
    text: str


@dataclass(eq=False)
class Gemm:
    """``out = a @ b`` by a library: gradc's narrow kernel first when ``narrow`` (it
    declines products wider than SKINNY_MAX_N columns), else (or then) BLAS gemm.
    ``a``, ``b``: (buffer, transposed?) as stored; ``threads``: how many threads the
    narrow kernel may use (int32); ``pool_threads``: BLAS runs in row blocks on gradc's
    pool of that many threads, one single-threaded call each (runtime/poolgemm.c), or
    with 0 is called directly."""
    out: int
    a: tuple
    b: tuple
    m: Expr
    n: Expr
    k: Expr
    dtype: np.dtype
    narrow: bool
    threads: Expr
    pool_threads: int = 0
    only_if: Expr | None = None   # run only when this holds (a row pipeline's wide fallback)
    batch: Expr | None = None     # a stack of this many products: item i's a, b and out
    strides: tuple = ()           # these many elements after item i-1's (runtime/poolgemm.c)


@dataclass(eq=False)
class SkinnyPack:
    """``packed`` = the narrow operand ``b`` (k x n) packed for SkinnyRows
    (runtime/skinny.c: gradc_skinny_pack; nothing when n > SKINNY_MAX_N)."""
    packed: object
    b: int
    n: Expr
    k: Expr
    dtype: np.dtype


@dataclass(eq=False)
class SkinnyRows:
    """One block of a row pipeline's product, on the calling thread, rows [row0, row0 +
    rows) of ``a`` (stored row-major, ``cols`` columns):

    * ``tn`` False (the head): out[rows] = a[rows] @ b, by the narrow kernel from
      ``padded`` (b packed by SkinnyPack, ``n`` columns);
    * ``tn`` True (the tail): padded += a[rows]^T @ b[rows], a cols x n sum padded to
      the narrow kernel's width (written to ``out`` by SkinnyUnpad).

    When n > SKINNY_MAX_N (runtime/skinny.c: gradc_skinny_rows declines) it does
    nothing: the pipeline's whole products run before and after it instead (``Gemm``
    with ``only_if``)."""
    out: int
    a: int
    b: int
    padded: object
    tn: bool
    row0: Expr
    rows: Expr
    n: Expr
    cols: Expr
    dtype: np.dtype


@dataclass(eq=False)
class SkinnyUnpad:
    """``out`` (m x n) = the padded sum ``padded`` of a row pipeline's tail (nothing when
    n > SKINNY_MAX_N: BLAS summed into ``out`` itself)."""
    out: int
    padded: object
    m: Expr
    n: Expr
    dtype: np.dtype


@dataclass(eq=False)
class LapackCall:
    """``out = op(args)`` for each of ``batch`` n x n matrices (a linalg op:
    LAPACK_ROUTINES), by numpy's LAPACK through runtime/lapack.c's ``gradc_lapack``,
    which ORs a failure (singular, not positive definite) into the kernel's status.
    ``k``: solve's right-hand columns, the rows of an SVD's or QR's (k, n) matrices
    (LAPACK_RECT), 0 for the other ops.  Never fused: the operands are buffers,
    row-major and contiguous."""
    op: str
    out: int
    args: tuple
    batch: Expr
    n: Expr
    k: Expr
    dtype: np.dtype
    lower: bool = True     # solve_triangular: the triangle of a it reads
    full: bool = False     # svd_u, svd_vt, qr_q: the square factor (full_matrices, mode="complete")

    @property
    def routine(self) -> int:
        """gradc_lapack's routine code."""
        if self.op == "solve_triangular":
            return LAPACK_ROUTINES[(self.op, self.lower)]
        if self.op in ("svd_u", "svd_vt", "qr_q"):
            return LAPACK_ROUTINES[(self.op, self.full)]
        return LAPACK_ROUTINES[self.op]


# runtime/gradc.h's merge sort for each dtype: its GRADC_SORT_* code (what LLVM code
# passes gradc_sort_rank) and the suffix of its typed function (what generated C calls).
# numpy's bool is one byte holding 0 or 1, so it sorts as uint8.
SORT_CODES = {np.dtype(t): (code, suffix) for t, code, suffix in [
    (np.float64, 0, "f64"), (np.float32, 1, "f32"), (np.int8, 2, "i8"), (np.int16, 3, "i16"),
    (np.int32, 4, "i32"), (np.int64, 5, "i64"), (np.uint8, 6, "u8"), (np.uint16, 7, "u16"),
    (np.uint32, 8, "u32"), (np.uint64, 9, "u64"), (np.bool_, 6, "u8")]}


@dataclass(eq=False)
class SortRanks:
    """``out[t, i]`` = the place of ``arg[t, i]`` in row t's stable ascending sort (NaN
    last), for each of ``batch`` rows of ``n`` numbers (any dtype of ``SORT_CODES``):
    op sort_rank by the merge sort of runtime/gradc.h (``gradc_sort_rank_f64``,
    ``_i64``, ...; LLVM code calls it through runtime/sortrank.c's ``gradc_sort_rank``).
    Never fused: ``arg`` is a buffer, row-major and contiguous; ``scratch`` (``("sort",
    out)``) is a workspace row of n int64."""
    out: int
    arg: int
    batch: Expr
    n: Expr
    dtype: np.dtype
    scratch: tuple      # ("sort", out): a field, so the buffers a nest uses are found in it

    @property
    def code(self) -> int:
        """gradc.h's GRADC_SORT_* code of ``dtype``."""
        return SORT_CODES[np.dtype(self.dtype)][0]

    @property
    def suffix(self) -> str:
        """The suffix of gradc.h's typed merge sort for ``dtype`` (``f64``, ``u8``, ...)."""
        return SORT_CODES[np.dtype(self.dtype)][1]


@dataclass(eq=False)
class Copy:
    """``nbytes`` bytes from ``src`` to ``dst``, each a place (:class:`ScanCall`)."""
    dst: tuple
    src: tuple
    nbytes: Expr


@dataclass(eq=False)
class ScanCall:
    """A scan: its step, a kernel compiled on its own (the kernel ABI of
    runtime/gradc.h), called ``length`` times, for step t = 0, 1, ... (``reverse``:
    from the last).  A *place* is ``(buffer key, bytes per step)``: the buffer's start
    advanced by t times that many bytes (``None``: the same every step); or
    ``(("cur", k), None)``, carry leaf k as the step reads it, ``(("next", k), None)``
    where the step writes it; or ``("stepconst", c)``, the step kernel's constant c.

    * ``fn``: the buffer (int64) holding the step kernel's address, then the addresses
      of its array constants and of its own scans' tables (``nconst`` in all), which
      the call passes after the inputs and outputs, as the kernel ABI orders them;
    * ``inputs``: the step's inputs' places; ``outputs``: where it writes its outputs
      that are buffers of its own (the step kernel's root outputs, in order);
    * ``sizes``: the step's size symbols' values; ``ws``: the buffer its workspace
      starts at (None: it needs none);
    * ``carries``, per carry leaf k: (the initial carry's place, two buffers, a place
      or None).  Carry k is read where the step before wrote it, at first the initial
      carry's own buffer; the step writes it into the given place (a ``y``'s slice
      that stacks it) or else into the one of the two buffers it does not read;
    * ``after_step``: :class:`Copy` statements after each step (outputs the step
      kernel does not write itself); ``after``: after the last (the final carry into
      the graph's nodes)."""
    nid: int
    fn: tuple
    nconst: int
    length: Expr | None
    reverse: bool
    inputs: list
    outputs: list
    sizes: list
    ws: object
    carries: list
    after_step: list
    after: list
    cond: "LoopCond | None" = None   # a while loop's condition (``length`` None): run while it holds


@dataclass(eq=False)
class LoopCond:
    """A while loop's condition: its step kernel (``fn``, ``nconst``, ``inputs``,
    ``outputs``, ``sizes``, ``ws`` as :class:`ScanCall`'s), called before each step;
    the loop ends when the bool at place ``flag`` is false."""
    fn: tuple
    nconst: int
    inputs: list
    outputs: list
    sizes: list
    ws: object
    flag: tuple


@dataclass(eq=False)
class Parallel:
    """Nest ``k`` split over its outer loop: each body (a function of Var START, END,
    CHUNK) runs rows [start, end) of chunk ``chunk``, on the thread pool when ``cond``
    holds (else once, serially, as chunk 0); then each crossing reduction's per-chunk
    partials (``("partial", nid)``) combine into it in chunk order."""
    k: int
    n0: Expr
    cond: Expr
    bodies: list              # [(function name suffix, statements)]
    crossing: list            # [(nid, op, dtype, elements)]


@dataclass(eq=False)
class Nest:
    k: int
    title: str
    body: list


@dataclass(eq=False)
class Kernel:
    name: str
    schedule: Schedule
    nests: list               # [Nest]
    blas_call: Expr           # bool: this call uses OpenBLAS (gradc's threads sit it out)
    threads: int = 1          # chunks of a parallel nest
    pool_threads: int = 1


START, END, CHUNK, BLAS_CALL = Var("start"), Var("end"), Var("chunk"), Var("blas_call")


# ----------------------------------------------------------------------------- helpers
def size(d) -> Expr:
    return Const(d) if isinstance(d, int) else Size(d)


def numel(shape) -> Expr:
    n = None
    for d in shape:
        if d != 1:
            n = size(d) if n is None else Bin("mul", n, size(d))
    return n if n is not None else Const(1)


def flat_offset(shape, index) -> Expr:
    """Row-major offset of ``index`` in a contiguous array of ``shape`` (size-1 axes
    contribute nothing: that is how broadcasting reads them).  The one definition of
    the buffers' layout for every renderer."""
    off = None
    for d, i in zip(shape, index):
        if off is None:
            off = i if d != 1 else ZERO
        elif d != 1:
            off = Bin("add", Bin("mul", off, size(d)), i)
    return off if off is not None else ZERO


def walk(stmts):
    """Every statement of ``stmts``, nested ones included (depth first)."""
    for st in stmts:
        yield st
        if isinstance(st, Loop):
            yield from walk(st.body)
        elif isinstance(st, Nest):
            yield from walk(st.body)
        elif isinstance(st, Parallel):
            for _name, body in st.bodies:
                yield from walk(body)


# ----------------------------------------------------------------------------- printing
class Scopes:
    """A renderer's memo of computed expressions, one dict per open loop body: a value
    computed inside a loop is not reused after it (it would not dominate the use)."""

    def __init__(self):
        self.stack = [{}]

    def get(self, e):
        for d in reversed(self.stack):
            hit = d.get(id(e))
            if hit is not None:
                return hit[0]
        return None

    def put(self, e, v):
        self.stack[-1][id(e)] = (v, e)   # e kept alive: ids stay unique
        return v

    def push(self):
        self.stack.append({})

    def pop(self):
        self.stack.pop()


_BIN_TEXT = {"add": "+", "sub": "-", "mul": "*", "sdiv": "/", "srem": "%", "udiv": "/", "urem": "%",
             "lt": "<", "ge": ">=", "gt": ">", "eq": "==", "and": "&&", "or": "||"}


_STATUS_TEXT = {STATUS_INDEX_OUT_OF_BOUNDS: "index_out_of_bounds", STATUS_NEGATIVE_POWER: "negative_power"}


def _dtype_name(dt) -> str:
    dt = np.dtype(dt)
    return "bool" if dt == np.bool_ else f"{dt.kind}{8 * dt.itemsize}".replace("f", "f", 1)


class TextRenderer:
    """The loop IR as text: one statement a line, a graph node's value defined once per
    loop body (``%12 = tanh(%11)``) and referred to by the graph's number after."""

    def __init__(self, kernel: Kernel):
        self.k, self.g = kernel, kernel.schedule.graph
        self.lines: list[str] = []
        self.depth = 0
        self.memo = Scopes()
        self.names: dict = {}

    def line(self, text):
        self.lines.append("  " * self.depth + text)

    def buf(self, key) -> str:
        if isinstance(key, tuple):
            return f"{key[0]}({self.buf(key[1])})"
        return self.g.label(key) if self.g[key]["op"] == "input" else f"%{key}"

    def place(self, p) -> str:
        key, step = p
        if key == "stepconst":
            return f"step_const{step}"
        if isinstance(key, tuple) and key[0] in ("cur", "next"):
            return f"{key[0]}{key[1]}"
        name = f"{key[0]}{list(key[1:])}" if isinstance(key, tuple) else self.buf(key)
        return f"{name}[t]" if step is not None else name

    def e(self, x) -> str:
        hit = self.memo.get(x)
        if hit is not None:
            return hit
        return self.memo.put(x, self._e(x))

    def _e(self, x) -> str:
        if isinstance(x, Var):
            return x.name
        if isinstance(x, Const):
            if x.dtype == INDEX:
                return str(x.value)
            v = float(x.value) if x.dtype.kind == "f" else x.value
            return f"{v!r}:{_dtype_name(x.dtype)}"
        if isinstance(x, Size):
            return x.symbol
        if isinstance(x, Bin):
            text = f"({self.e(x.a)} {_BIN_TEXT[x.op]} {self.e(x.b)})"
            if x.name:
                self.line(f"{x.name} = {text[1:-1]}")
                return x.name
            return text
        if isinstance(x, Not):
            return f"!{self.e(x.a)}"
        if isinstance(x, Load):
            return f"{self.buf(x.buf)}[{', '.join(self.e(i) for i in x.index)}]"
        if isinstance(x, AccValue):
            return x.acc.name
        if isinstance(x, ToIndex):
            return f"index({self.e(x.a)})"
        if isinstance(x, FromIndex):
            return f"{_dtype_name(x.dtype)}({self.e(x.a)})"
        if isinstance(x, Checked):
            name = f"ix{x.nid}.{x.axis}"
            self.line(f"{name} = checked({self.e(x.a)}, {self.e(x.n)})")
            return name
        if isinstance(x, Guard):
            value = self.e(x.value)
            whose = f"  # for %{x.nid}" if x.nid is not None else ""
            self.line(f"check {self.e(x.ok)} else status |= {_STATUS_TEXT.get(x.code, x.code)}{whose}")
            return value
        if isinstance(x, Select):
            text = f"select({self.e(x.cond)}, {self.e(x.a)}, {self.e(x.b)})"
            if x.nid is not None:
                text = f"{self.g[x.nid]['op']}: {text}"
        elif isinstance(x, Apply):
            params = "".join(f", {k}={v}" for k, v in sorted(x.params.items()))
            text = f"{x.op}({', '.join(self.e(a) for a in x.args)}{params})"
        elif isinstance(x, MathCall):
            text = f"call math.{x.fn}({', '.join(self.e(a) for a in x.args)})"
        else:
            raise TypeError(f"internal: no text for {type(x).__name__}")
        if x.nid is None:
            return text
        self.line(f"%{x.nid} = {text}")
        return f"%{x.nid}"

    def block(self, stmts):
        for st in stmts:
            self.stmt(st)

    def stmt(self, st):
        if isinstance(st, Loop):
            tail = "  # plain" if st.plain else "  # narrow" if st.narrow else ""
            if st.align is not None:
                tail += f"  # first iterations peeled: {self.e(st.align)} 64-byte aligned"
            self.line(f"for {st.var.name} in [{self.e(st.start)}, {self.e(st.stop)}):{tail}")
            self.depth += 1
            self.memo.push()
            self.block(st.body)
            self.memo.pop()
            self.depth -= 1
        elif isinstance(st, Fill):
            self.line(f"fill {self.buf(st.buf)}[{self.e(st.start)}:{self.e(st.stop)}] = {self._e(st.value)}")
        elif isinstance(st, Store):
            self.line(f"{self.buf(st.buf)}[{', '.join(self.e(i) for i in st.index)}] = {self.e(st.value)}")
        elif isinstance(st, Update):
            op = "+=" if st.op == "sum" else f"{st.op}="
            self.line(f"{self.buf(st.buf)}[{', '.join(self.e(i) for i in st.index)}] {op} {self.e(st.value)}")
        elif isinstance(st, AccInit):
            self.line(f"acc {st.acc.name}: {_dtype_name(st.acc.dtype)} = {self.e(st.init)}")
        elif isinstance(st, Accumulate):
            op = "+=" if st.op == "sum" else f"{st.op}="
            self.line(f"{st.acc.name} {op} {self.e(st.value)}")
        elif isinstance(st, Eval):
            self.e(st.value)
        elif isinstance(st, Rebase):
            self.line(f"{self.buf(st.buf)} = &{self.buf(st.base)}[{self.e(st.offset)}]")
        elif isinstance(st, Comment):
            self.line(f"# {st.text}")
        elif isinstance(st, Gemm):
            gemm = f"pool_gemm(threads={st.pool_threads})" if st.pool_threads else "gemm"
            lib = f"skinny(threads={self.e(st.threads)}), else {gemm}" if st.narrow else gemm
            ops = ", ".join(self.buf(b) + ("^T" if t else "") for b, t in (st.a, st.b))
            guard = f"if {self.e(st.only_if)}: " if st.only_if is not None else ""
            stack = f"[{self.e(st.batch)} x] " if st.batch is not None else ""
            self.line(f"{guard}%{st.out} = {stack}{lib}({ops}; m={self.e(st.m)}, n={self.e(st.n)}, k={self.e(st.k)})")
        elif isinstance(st, SkinnyPack):
            self.line(f"{self.buf(st.packed)} = skinny_pack({self.buf(st.b)}; n={self.e(st.n)}, k={self.e(st.k)})")
        elif isinstance(st, SkinnyRows):
            r0, r1 = self.e(st.row0), f"{self.e(st.row0)} + {self.e(st.rows)}"
            a = f"{self.buf(st.a)}[{r0}:{r1}]"
            if st.tn:
                self.line(f"{self.buf(st.padded)} += skinny_rows({a}^T, {self.buf(st.b)}[{r0}:{r1}])")
            else:
                self.line(f"{self.buf(st.out)}[{r0}:{r1}] = skinny_rows({a}, {self.buf(st.padded)})")
        elif isinstance(st, SkinnyUnpad):
            self.line(f"{self.buf(st.out)} = skinny_unpad({self.buf(st.padded)}; m={self.e(st.m)}, n={self.e(st.n)})")
        elif isinstance(st, SortRanks):
            self.line(f"%{st.out} = sort_ranks({self.buf(st.arg)}; batch={self.e(st.batch)}, n={self.e(st.n)}, "
                      f"scratch={self.buf(st.scratch)})")
        elif isinstance(st, LapackCall):
            ops = ", ".join(self.buf(a) for a in st.args)
            op = st.op + ("" if st.op != "solve_triangular" else ", lower" if st.lower else ", upper")
            op += ", full" if st.full and st.op in ("svd_u", "svd_vt", "qr_q") else ""
            self.line(f"%{st.out} = lapack {op}({ops}; batch={self.e(st.batch)}, n={self.e(st.n)}"
                      + (f", k={self.e(st.k)})" if st.op.startswith("solve") or st.op in LAPACK_RECT else ")"))
        elif isinstance(st, Copy):
            self.line(f"copy {self.place(st.dst)} <- {self.place(st.src)} ({self.e(st.nbytes)} bytes)")
        elif isinstance(st, ScanCall):
            for k, (init, _bufs, _y) in enumerate(st.carries):
                self.line(f"cur{k} = {self.place(init)}")
            order = "reversed " if st.reverse else ""
            if st.cond is None:
                self.line(f"for t in {order}[0, {self.e(st.length)}):  # scan %{st.nid}")
            else:
                self.line(f"for t in [0, ...):  # while %{st.nid}")
            self.depth += 1
            if st.cond is not None:
                c = st.cond
                outs = ", ".join(self.place(p) for p in c.outputs)
                self.line(f"({outs}) = cond({', '.join(self.place(p) for p in c.inputs)}; "
                          f"sizes=[{', '.join(self.e(x) for x in c.sizes)}])")
                self.line(f"if not {self.place(c.flag)}: break")
            for k, (_init, (b0, b1), y) in enumerate(st.carries):
                where = self.place(y) if y is not None else f"{self.place((b0, None))} if even step else {self.place((b1, None))}"
                self.line(f"next{k} = {where}")
            ins = ", ".join(self.place(p) for p in st.inputs)
            outs = ", ".join(self.place(p) for p in st.outputs)
            sizes = ", ".join(self.e(x) for x in st.sizes)
            self.line(f"({outs}) = step({ins}; sizes=[{sizes}])")
            for c in st.after_step:
                self.stmt(c)
            if st.carries:
                self.line(", ".join(f"cur{k}" for k in range(len(st.carries))) + " = "
                          + ", ".join(f"next{k}" for k in range(len(st.carries))))
            self.depth -= 1
            for c in st.after:
                self.stmt(c)
        elif isinstance(st, Parallel):
            self.line(f"parallel over [0, {self.e(st.n0)}) in {self.k.threads} chunks if {self.e(st.cond)}:")
            self.depth += 1
            for name, body in st.bodies:
                self.line(f"task {name}(start, end, chunk):")
                self.depth += 1
                self.memo.push()
                self.block(body)
                self.memo.pop()
                self.depth -= 1
            for nid, op, _dt, _n in st.crossing:
                self.line(f"combine %{nid} = {op} of partial(%{nid}) in chunk order")
            self.depth -= 1
        else:
            raise TypeError(f"internal: no text for {type(st).__name__}")

    def text(self) -> str:
        k = self.k
        self.line(f"kernel {k.name}: {len(k.nests)} nests" + (f", {k.threads} chunks per parallel nest"
                                                             if k.threads > 1 else ""))
        if any(isinstance(st, Gemm) for n in k.nests for st in n.body):
            self.line(f"blas_call = {self.e(k.blas_call)}")
        for nest in k.nests:
            self.line(f"{nest.title}")
            self.depth += 1
            self.memo.push()
            self.block(nest.body)
            self.memo.pop()
            self.depth -= 1
        return "\n".join(self.lines)


def render_text(kernel: Kernel) -> str:
    """The loop IR as text (what ``Lowered.loop_ir()`` shows)."""
    return TextRenderer(kernel).text()
