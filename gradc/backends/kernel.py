"""The call path both native backends share: a compiled kernel (any backend's code
following the kernel ABI of ``runtime/gradc.h``) with its argument and output handling,
workspace, status codes and the C fast path (``runtime/callpath.c``).

Every argument's rank, dtype and sizes were checked against the graph before a call
(``Entry.match``); the call makes non-contiguous, misaligned, or negative-stride arrays
contiguous (copying only then) and checks that max/min reductions are not empty, so
native code never touches memory it should not.  ``llvm_backend`` and ``c_backend``
differ only in how they compile a schedule into that code."""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import threading

import numpy as np

from ..evaluate import bind_sizes
from ..graph import Graph
from ..shapes import resolve
from .llvm_codegen import STATUS_NEGATIVE_POWER
from .loop_ir import (STATUS_LAPACK_UNAVAILABLE, STATUS_LINALG, STATUS_NO_CONVERGENCE, STATUS_NOT_POSITIVE_DEFINITE,
                      STATUS_OUT_OF_MEMORY, STATUS_SINGULAR_MATRIX)
from .schedule import describe, workspace_bytes, workspace_layout
from .schedule_types import nonempty_sizes, step_tables

KERNEL = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)


def kernel_name(graph: Graph, text: str | None = None) -> str:
    """``gradc_<function>_<hash>``; ``text``: the graph's listing without sources, when
    the caller has it already."""
    text = graph.text(sources=False) if text is None else text
    h = hashlib.sha1(text.encode()).hexdigest()[:10]
    return "gradc_" + re.sub(r"\W", "_", graph.name) + "_" + h


def _contiguous(a: np.ndarray) -> np.ndarray:
    if a.flags.c_contiguous and a.flags.aligned:
        return a
    return np.array(a, order="C", copy=True)


def const_bytes(s) -> list:
    """The array constants' bytes: part of a cache key (the IR refers to them by pointer)."""
    return [s.graph[c]["params"]["value"].tobytes() for c in s.consts]


def hot_seconds() -> float:
    """Seconds of run time after which a kernel that calls vector math is compiled again
    with it inlined (``Kernel.upgrade``): GRADC_HOT_SECONDS, default 0.1, about as long
    as that compile takes (tens of milliseconds of LLVM), so a program pays at most
    about what it has already run; 0 never."""
    try:
        return float(os.environ.get("GRADC_HOT_SECONDS", "0.1"))
    except ValueError:
        return 0.1


def hot_in_background() -> bool:
    """GRADC_HOT_BACKGROUND (default 1): a kernel's faster code (``Kernel.upgrade``)
    compiles on a thread of its own while the calls go on with the first code, and the
    first call after it is ready switches; 0: the call that crosses ``hot_seconds()``
    compiles it, pausing the program for as long (seconds for a loop unrolled over a
    hundred steps)."""
    return os.environ.get("GRADC_HOT_BACKGROUND", "1").strip() not in ("0", "")


_compiling: set = set()          # the background compiles' threads (wait_for_upgrades)
_compiling_lock = threading.Lock()
_building = threading.Lock()     # one upgrade compiles at a time (LLVM's lock serializes them anyway)


# The compile thread needs the GIL between its LLVM calls, and a program calling the
# kernel in a loop holds it through every call: at Python's default switch interval
# (5 ms) each hand-back waited that long, and an RNN unrolled over 50 steps took 16.7 s
# to get its hot code instead of 1.7 s.  While a compile runs, the interval is shorter.
BACKGROUND_SWITCH_S = 0.0002
_saved_interval: list = []


def _switch_interval(seconds) -> None:
    """Set Python's thread switch interval to ``seconds`` (saving the program's own), or
    restore the saved one (None).  Caller holds ``_compiling_lock``."""
    import sys
    if seconds is not None:
        _saved_interval.append(sys.getswitchinterval())
        sys.setswitchinterval(seconds)
    elif _saved_interval:
        sys.setswitchinterval(_saved_interval.pop())


def wait_for_upgrades(timeout: float | None = None) -> bool:
    """Wait until no kernel's faster code is compiling in the background; True when
    none is (each switches at its function's next call)."""
    import time
    end = None if timeout is None else time.monotonic() + timeout
    while True:
        with _compiling_lock:
            pending = list(_compiling)
        if not pending:
            return True
        for t in pending:
            t.join(None if end is None else max(0.0, end - time.monotonic()))
            if t.is_alive():
                return False


class Kernel:
    """A compiled graph with its call path.  A backend's subclass compiles the schedule
    and calls :meth:`_attach` with the result."""

    def _attach(self, graph: Graph, s, name: str, artifact) -> None:
        """Everything the call path needs: the schedule (argument, output, workspace
        specs) and compiled code following the kernel ABI (any backend's)."""
        self.graph, self.schedule, self.name, self.artifact = graph, s, name, artifact
        self.cfunc = KERNEL(artifact.address)
        g = s.graph
        self.root_outputs = list(dict.fromkeys(o for o in s.outputs if o in s.roots))
        self.out_specs = [(g[o]["shape"], g[o]["dtype"]) for o in self.root_outputs]
        self.const_arrays = [np.ascontiguousarray(g[c]["params"]["value"]) for c in s.consts]
        self.symbols = s.symbols
        self.steps = []

    def _attach_steps(self, compile_step) -> None:
        """Compile each scan's step (``compile_step(schedule)``: a Kernel of the same
        backend) and pass the scan its address and its array constants' addresses
        (``loop_ir.ScanCall.fn``): an int64 array after the constants, which the
        kernel reads at every call, so the step's code can change between calls."""
        for _key, step in step_tables(self.schedule):
            k = compile_step(step.schedule)
            if len(k.const_arrays) != len(step.schedule.consts) + len(step_tables(step.schedule)):
                from ..errors import GradcError   # (lower_scan passes this many after the outputs)
                raise GradcError(f"internal: scan step {k.name} takes {len(k.const_arrays)} constants")
            table = np.array([k.artifact.address] + [c.ctypes.data for c in k.const_arrays], dtype=np.int64)
            self.steps.append((k, table))
            self.const_arrays.append(table)

    def make_plan(self, structure):
        """The C fast path for this kernel (None if it is not built or not applicable)."""
        try:
            from .. import _callpath
        except ImportError:
            return None
        s, g = self.schedule, self.schedule.graph
        # an output is a buffer the kernel fills, or a copy of an argument (C's Results)
        if any(o not in s.roots and g[o]["op"] != "input" for o in s.outputs):
            return None
        if getattr(_callpath, "PLAN_VERSION", 1) < 2 and (
                len(set(s.outputs)) != len(s.outputs) or any(o not in s.roots for o in s.outputs)):
            return None     # a stale build of the extension reads each output buffer once
        if getattr(_callpath, "PLAN_VERSION", 1) < 4 and any(n.kind == "lapack" for n in s.nests):
            return None     # a stale build raises a linear algebra failure as an IndexError
        sym = {x: k for k, x in enumerate(self.symbols)}

        def spec(shape, dtype):
            dims = tuple(d if isinstance(d, int) else -(sym[d] + 1) for d in shape)
            return (np.dtype(dtype).num, np.dtype(dtype).itemsize, dims)
        ins = tuple(spec(g[i]["shape"], g[i]["dtype"]) for i in g.inputs)
        outs = tuple(spec(*x) for x in self.out_specs)
        layout = workspace_layout(s)
        ws = tuple(spec(shape, dtype) for region in layout for _k, shape, dtype in region)
        ws_region = tuple(k for k, region in enumerate(layout) for _ in region)
        mins = tuple(int(g.minimum.get(x, 0)) for x in self.symbols)
        # (the fast path leaves a call with any of these sizes 0 to the Python path, which
        # raises numpy's error or, for a reduction in a scan of no steps, runs it)
        nonempty = tuple(spec(dims, np.int8) for dims, _op, _guard in nonempty_sizes(s))
        order = {o: k for k, o in enumerate(self.root_outputs)}
        order.update({i: len(order) + k for k, i in enumerate(g.inputs)})
        remap = _remap(structure, [order[o] for o in s.outputs])
        try:
            plan = _callpath.Plan(self.artifact.address, ins, outs, ws, ws_region, len(self.symbols),
                                  mins, nonempty, remap, tuple(self.const_arrays))
        except ValueError:   # beyond the fast path's fixed limits: the Python path serves
            return None
        self._structure = structure
        if hot_seconds() > 0 and self.armed and hasattr(plan, "set_hot"):
            # hot already (in this process, or in the disk cache from an earlier one):
            # from the first call; else once the kernel has run hot_seconds()
            ready = self.artifact.hot_address(compile=False) if self._own_math else None
            if ready or self._split_ready:
                self.upgrade(plan)
            else:
                plan.set_hot(hot_seconds(), self._on_hot)
        return plan

    def _on_hot(self, plan) -> None:
        """The plan's callback once the kernel has run ``hot_seconds()``: upgrade now,
        or compile in the background (``hot_in_background``) and have the plan call
        ``upgrade`` after its first call once that is done (everything compiled by
        then: the switch takes microseconds, between two calls, on the caller's thread,
        so a running call never sees its kernel change)."""
        if not hot_in_background():
            self.upgrade(plan)
            return

        def compile_then_switch():
            try:
                from .llvm_jit import in_background
                with in_background():
                    self._compile_upgrade()
            except Exception:  # noqa: BLE001  (upgrade compiles again and warns)
                pass
            finally:
                plan.set_hot(0.0, self.upgrade)
                with _compiling_lock:
                    _compiling.discard(threading.current_thread())
                    if not _compiling:
                        _switch_interval(None)
        # not a daemon: the interpreter's exit waits for the compile (stopping a thread
        # inside LLVM while the process tears LLVM down could crash it)
        t = threading.Thread(target=compile_then_switch, name=f"gradc-upgrade-{self.name}")
        with _compiling_lock:
            if not _compiling:
                _switch_interval(BACKGROUND_SWITCH_S)
            _compiling.add(t)
        t.start()

    def _compile_upgrade(self) -> None:
        """Compile what ``upgrade`` switches to, without switching: the hot code, the
        kernel a part of the batch runs and its hot code."""
        with _building:            # (two plans of one kernel may both get here: one builds its part)
            if self._own_math:
                self.artifact.hot_address()
            self._hot_steps(switch=False)
            if self.split is not None:
                if self.part is None:
                    self.part = self._part_kernel()
                if self.part.calls_math and hot_seconds() > 0:
                    self.part.artifact.hot_address()

    steps = ()            # (a scan's step kernel, the table the scan reads its address from)
    upgraded = False      # runs its faster code: vector math inlined, the batch split (``upgrade``)
    split = None          # a batch_split.Split, for a kernel whose calls may split their batch
    part = None           # the kernel a part of the batch runs (built by ``upgrade``)
    _split_ready = False  # ``part`` has been handed to a plan once
    _structure = None

    @property
    def calls_math(self) -> bool:
        """Does the kernel, or a scan's step it calls, call vector math (and so have
        faster code with it inlined, ``upgrade``)?"""
        return self._own_math or any(k.calls_math for k, _table in self.steps)

    @property
    def _own_math(self) -> bool:
        return bool(getattr(self.artifact, "calls_math", False))

    def _hot_steps(self, switch: bool) -> None:
        """Compile the scans' steps' hot code; with ``switch``, make the scans call it
        (their tables are read at every call of this kernel)."""
        for k, table in self.steps:
            k._hot_steps(switch)
            if k._own_math:
                address = k.artifact.hot_address()
                if switch:
                    table[0] = address

    @property
    def armed(self) -> bool:
        """Does the kernel have faster code for a program that calls it for long
        (``upgrade``)?"""
        return self.calls_math or self.split is not None

    def _use(self, address, plan=None):
        self.cfunc = KERNEL(address)
        self.upgraded = True
        if plan is not None:
            plan.set_kernel(address)

    def upgrade(self, plan=None) -> None:
        """Switch ``plan`` to the kernel's faster code from the next call on: the
        kernel compiled again with its vector math inlined (the artifact's
        ``hot_address``: the same schedule and the same values, bit for bit), and for a
        graph that splits over its batch (``batch_split``), the kernel a part of the
        batch runs, on every thread at once.  The plans call this once the kernel has
        run ``hot_seconds()`` in all (GRADC_HOT_SECONDS; after a compile in the
        background, ``_on_hot``), so a kernel called a few times
        never pays the longer compiles, and one a program spends its time in runs the
        faster code.  A failure leaves the kernel as it was, with a warning: never the
        user's call."""
        import warnings
        if self.calls_math:
            try:
                self._hot_steps(switch=True)
                if self._own_math:
                    self._use(self.artifact.hot_address(), plan)
                else:
                    self.upgraded = True
            except Exception as e:  # noqa: BLE001  (an optimization, never an error)
                warnings.warn(f"gradc: recompiling {self.name} with inlined vector math failed ({e}); "
                              "it keeps its first code", RuntimeWarning, stacklevel=2)
        if self.split is not None and plan is not None:
            try:
                self._attach_split(plan)
            except Exception as e:  # noqa: BLE001
                warnings.warn(f"gradc: compiling {self.name} for parts of its batch failed ({e}); "
                              "its calls run whole", RuntimeWarning, stacklevel=2)

    def _part_kernel(self):
        """The kernel of ``split.graph`` for one thread (a backend's subclass builds it)."""
        raise NotImplementedError

    def _attach_split(self, plan) -> None:
        """Build the kernel a part of the batch runs and hand it to ``plan``."""
        split, parts = self.split, self.schedule.pool_threads
        if not hasattr(plan, "set_split"):
            return                  # a build of the extension from before the split
        if self.part is None:
            self.part = self._part_kernel()
        part = self.part
        if part.root_outputs != self.root_outputs:
            return                  # the parts would fill other buffers: calls run whole
        part_plan = part.make_plan(self._structure)
        if part_plan is None:
            return
        if part.calls_math and hot_seconds() > 0:
            part_plan.set_hot(0.0, None)          # hot from the start: this kernel is
            part._use(part.artifact.hot_address(), part_plan)
        sym = {x: k for k, x in enumerate(self.symbols)}
        g = self.schedule.graph
        counts = tuple((np.dtype(dt).num, np.dtype(dt).itemsize,
                        tuple(d if isinstance(d, int) else -(sym[d] + 1) for d in dims))
                       for dims, dt in split.counts)
        kinds = dict(zip(g.outputs, split.outputs))
        from .batch_split import OUTPUT_KINDS
        plan.set_split(part_plan, sym[split.symbol], parts, split.min_rows(parts), split.row_inputs, counts,
                       tuple(OUTPUT_KINDS[kinds[o]] for o in self.root_outputs),
                       tuple(sym[x] for x in part.symbols), split.first)
        if hasattr(plan, "set_split_chunk"):
            from .batch_split import MIN_CHUNK_ROWS, chunk_bytes
            plan.set_split_chunk(chunk_bytes(), MIN_CHUNK_ROWS)
        self._split_ready = self.upgraded = True

    def describe(self) -> str:
        return describe(self.schedule)

    def __call__(self, arrays):
        s, g = self.schedule, self.schedule.graph
        sizes = bind_sizes(g, arrays)
        for dims, op, guard in nonempty_sizes(s):
            if any(x == 0 for x in resolve(dims, sizes)) and all(x != 0 for x in resolve(guard, sizes)):
                raise ValueError(f"zero-size array to reduction operation {op} which has no identity")
        ins = [_contiguous(a) for a in arrays]
        outs = [np.empty(resolve(shape, sizes), dtype) for shape, dtype in self.out_specs]
        bufs = ins + outs + self.const_arrays
        ptrs = (ctypes.c_void_p * max(len(bufs), 1))(*[b.ctypes.data for b in bufs])
        szs = (ctypes.c_int64 * max(len(self.symbols), 1))(*[sizes[x] for x in self.symbols])
        nbytes = workspace_bytes(s, sizes)
        ws = np.empty(max(nbytes, 1), np.uint8)
        rc = self.cfunc(ptrs, szs, ws.ctypes.data)
        if rc:
            raise_status(rc, s)
        by_node = dict(zip(self.root_outputs, outs))
        results = []
        for o in s.outputs:
            if o in by_node:
                results.append(by_node[o])
            elif g[o]["op"] == "input":
                results.append(np.array(arrays[g.inputs.index(o)]))
            else:
                results.append(np.array(g[o]["params"]["value"]))
        return results


def raise_status(rc: int, s=None):
    """The Python error for a kernel's non-zero status (the same messages as the C call
    path's, runtime/callpath.c); a linear algebra failure names the ops of schedule
    ``s`` that can fail that way, with the user's lines."""
    if rc & STATUS_LINALG:
        raise _linalg_error(rc, s)
    if rc & STATUS_NEGATIVE_POWER:
        raise ValueError("Integers to negative integer powers are not allowed.")
    raise _index_error(s)


def _index_error(s) -> IndexError:
    """An integer index outside its array: the indexing ops of schedule ``s`` with the
    user's lines (a traced index is checked where it is read, so which one is not known)."""
    where = []
    for sch in _with_steps(s):
        g = sch.graph
        for nid in g.order():
            d = g[nid]
            if d["op"] in ("gather", "scatter_add") and d["provenance"] is not None and d["provenance"].where:
                where.append(d["provenance"].where)
    return IndexError("index out of bounds in a gather or scatter (an integer index array, take_along_axis or "
                      "S[rows, cols] reads outside the array)"
                      + (f" at {', '.join(dict.fromkeys(where))}" if where else ""))


_LINALG_FAILURES = [  # (status bit, what numpy says, the ops that can set it)
    (STATUS_SINGULAR_MATRIX, "Singular matrix", ("solve", "inv", "solve_triangular")),
    (STATUS_NOT_POSITIVE_DEFINITE, "Matrix is not positive definite", ("cholesky",)),
    (STATUS_NO_CONVERGENCE, "SVD did not converge", ("svdvals", "svd_u", "svd_vt")),
    (STATUS_NO_CONVERGENCE, "Eigenvalues did not converge", ("eigh", "eigvalsh")),
    (STATUS_OUT_OF_MEMORY, "out of memory for a linear algebra workspace", ()),
    (STATUS_LAPACK_UNAVAILABLE, "no LAPACK routines are registered with gradc's extension (one built before "
                                "linalg.svd and qr, or scipy.linalg.lu, lacks theirs: rebuild it with `python setup.py build_ext --inplace`)", ()),
]


def _linalg_error(rc: int, s):
    from ..errors import LinAlgError
    for k, (bit, text, ops) in enumerate(_LINALG_FAILURES):
        if not rc & bit:
            continue
        where = []
        for sch in _with_steps(s):
            g = sch.graph
            for nest in sch.nests:
                d = g[nest.roots[0]]
                if nest.kind == "lapack" and d["op"] in ops:
                    from ..ops.lapack import failure_site
                    where.append(failure_site(d["op"], d["provenance"]))
        if not where and any(b == bit for b, _t, _o in _LINALG_FAILURES[k + 1:]):
            continue    # a later line of this bit names the ops that failed
        return LinAlgError(text + (f" (in {', '.join(dict.fromkeys(where))})" if where else ""))
    return LinAlgError(f"linear algebra failed (status {rc})")


def _with_steps(s) -> list:
    """Schedule ``s`` and its loops' steps' schedules, nested ones too (where a status
    may come from)."""
    if s is None:
        return []
    out = [s]
    for _key, step in step_tables(s):
        out += _with_steps(step.schedule)
    return out


def _remap(structure, index):
    if isinstance(structure, int):
        return index[structure]
    return tuple(_remap(x, index) for x in structure)


def compile_kernel(kernel_cls, graph: Graph, debug_nans=False):
    """``run(arrays)`` for a native backend's kernel class; checked mode (debug_nans)
    runs the reference evaluator, which tests every node's value."""
    if debug_nans:
        from .numpy_backend import compile as np_compile
        return np_compile(graph, debug_nans=True)
    k = kernel_cls(graph)

    def run(arrays):
        return k(arrays)
    run.artifact = k.artifact
    run.kernel = k
    run.make_plan = k.make_plan
    run.loop_ir = getattr(k, "loop_ir", None)   # the loop IR the backend renders (Lowered.loop_ir)
    return run
