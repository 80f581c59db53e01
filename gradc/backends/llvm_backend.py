"""backend="llvm": schedule the graph into fused loop nests, lower them to LLVM IR,
JIT-compile, and call the kernel through the shared call path (``kernel.py``)."""
from __future__ import annotations

import os

from ..graph import Graph
from . import batch_split
from .kernel import Kernel, compile_kernel, const_bytes, kernel_name
from .llvm_codegen import lower_parts
from .llvm_jit import Artifact, init, kernel_threads
from .lower_loops import refuse_lapack
from .schedule import schedule


# GRADC_SPLIT_BATCHES=0 keeps every call whole (batch_split: parts of a batch on every thread)
SPLIT_BATCHES = os.environ.get("GRADC_SPLIT_BATCHES", "1") != "0"


def stream_row_bytes(target=None) -> int | None:
    """Which rows of a matrix larger than the host's last-level cache run one at a time,
    as one sequential stream from memory, rather than in blocks of 4 (``Schedule.
    stream_bytes``, ``Schedule.stream_row_bytes``, lower_loops), in code for ``target``
    (a vecmath.Target; default this host): None for rows of any length, or rows shorter
    than this many bytes.  Measured both ways on one host of
    each kind (value_and_grad of M2's neuron loss, the forms alternating in one
    process): on Zen 4 (AVX-512) one row at a time ran 1.5-2.5x faster at 65,536 x 512
    (lower_loops), so every row streams there.  On Zen 3 (AVX2) it depends on the row:
    rows of 4 KB or more ran faster in blocks (65,536 x 512 doubles: 11.2-11.4 against
    13.6-14.1 ms on two threads, 15.3-16.5 against 18.6-19.4 ms on one; 32,768 x 1,024
    floats, one thread: 13.0-16.2 against 11.9-12.2 GB/s of X read), shorter ones one at
    a time (one thread: 65,536 x 512 floats 11.9-13.0 against 10.1-10.6 GB/s, 131,072 x
    256 doubles 11.5-12.9 against 9.6-10.0, 131,072 x 256 floats 11.0-13.7 against
    7.4-8.6; two threads: 16.1-22.1 against 15.2-18.4, 18.9-26.0 against 15.0-17.5 and
    22.5-22.7 against 12.4-14.2), where a block's 4 rows share a 4 KB page."""
    return None if (target or init()["vecmath"]).vector_bits >= 512 else 4096


def aligns_rows(target=None) -> bool:
    """Do the inner loops over a matrix's rows (a row-blocked nest's steady blocks and
    streamed rows) start at a 64-byte boundary of the row, after a peeled first few
    iterations (``Schedule.align_rows``, lower_loops.align_inner_loops), when compiled
    for ``target`` (a vecmath.Target; default this host)?  Only for 512-bit vectors,
    where a row that starts 16 bytes past a cache line (as numpy's large arrays do)
    makes every vector load straddle two lines: on Zen 4 (AVX-512) the peel took M2
    medium from 206-218 to 168-177 us per call on one thread.  With 256-bit vectors
    half the loads straddle, and the peel (one masked vector per row block) cost more
    than it saved on Zen 3 (AVX2): value_and_grad, CPU time per call, the two forms
    compiled side by side in one process, best of 7, one thread: M2 medium float64
    0.256-0.259 against 0.228-0.232 ms without the peel, M2 large float32 14.4-14.9
    against 11.8-12.5 ms, M3 large float32 14.6-17.8 against 13.1-15.0 ms."""
    return (target or init()["vecmath"]).vector_bits >= 512


class LLVMKernel(Kernel):
    """A graph compiled through LLVM IR by the JIT, multi-threaded where it pays."""

    def __init__(self, graph: Graph, threads: int | None = None, s=None):
        blas = init()["blas"]
        native_sort = init().get("native_sort") or ""      # the dtype kinds it merge sorts
        if s is None:     # (a scan's step comes scheduled with the scan)
            s = schedule(graph, threads=kernel_threads() if threads is None else threads, row_local=True,
                         batched_products=bool(blas.get("batched")), native_sort=native_sort)
        s.stream_row_bytes = stream_row_bytes()
        s.align_rows = aligns_rows()
        text = graph.text(sources=False)
        # What decides the code: the graph, its constants, the thread split, the host's
        # cache size, the BLAS interface (code_fingerprint() and the CPU are added by
        # Artifact).
        key = (text, *const_bytes(s), s.threads, s.pool_threads, s.stream_bytes, s.stream_row_bytes, s.align_rows, blas.get("int"), bool(blas),
               bool(blas.get("skinny")), bool(blas.get("pool")), bool(blas.get("skinny_rows")), bool(blas.get("batched")), native_sort)
        # The name hashes all of it: the engine holds every kernel of the process in one
        # symbol table, and the kernels of one graph for one thread and for several must
        # not share the names of their nests' functions, which their modules link by.
        name = kernel_name(graph, repr(key))
        refuse_lapack(s, blas)   # before the cache: an artifact that calls LAPACK needs it
        self.blas = blas
        self._attach(graph, s, name, Artifact(lambda: [str(m) for m in lower_parts(s, name, blas)], name, key))
        self._attach_steps(lambda step: LLVMKernel(step.graph, s=step))
        if s.pool_threads > 1 and SPLIT_BATCHES and not s.scans:
            self.split = batch_split.plan(s.graph)

    def _part_kernel(self):
        return LLVMKernel(self.split.graph, threads=1)

    def loop_ir(self):
        """The loop IR this kernel's LLVM modules render (``lower_loops.build``)."""
        from .lower_loops import build
        return build(self.schedule, self.name, blas=self.blas, split=True)


def compile(graph: Graph, *, debug_nans=False):
    return compile_kernel(LLVMKernel, graph, debug_nans)
