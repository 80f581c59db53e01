"""The scheduler's data: a loop nest (Nest), a row pipeline (RowPipeline) and the
schedule of a whole graph (Schedule), which schedule.schedule() returns and the code
generators read.  They live apart from the scheduling logic so that every module that
builds or reads them (schedule, pipelines, workspace, the lowerings) imports them
without an import cycle."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..graph import Graph


@dataclass
class Nest:
    kind: str                 # "loop" | "matmul" | "scatter" | "lapack" | "sort" | "scan"
    domain: tuple             # symbolic iteration space
    roots: list = field(default_factory=list)
    # per root: level "full" (indexed by the whole domain) or "row" (by all but the last
    # axis, computed between inner loops); stage (even: inner loop, odd: row level);
    # acc: the loop level a reduction accumulates in a register from (None: in memory)
    info: dict = field(default_factory=dict)
    parallel: bool = False    # split over the outer loop across threads
    row_block: int = 1        # rows per pass of a 2-d nest's inner loops (see _row_block)
    tile: int = 0             # a 2-d nest in square tiles of this many rows and columns
    #                           (0: whole rows; see schedule._tile)
    cost: int = 0             # estimated size of the loop body (see MAX_NEST_COST)
    work: int = 0             # estimated time per element: cost plus the roots' own ops

    # What the code generators (C and LLVM) ask of a loop nest's roots, in index terms.
    def stage_local(self, nid) -> bool:
        """A reduction over the innermost axis only, accumulated within its stage."""
        return self.info[nid]["level"] == "full" and self.info[nid]["acc"] == len(self.domain) - 1

    def root_rank(self, nid) -> int:
        """How many of the domain's indices address root ``nid``."""
        return len(self.domain) if self.info[nid]["level"] == "full" else len(self.domain) - 1

    @staticmethod
    def reduced_index(d: dict, idx: list, zero) -> list:
        """The output element of reduction node ``d`` that domain index ``idx`` adds
        into: reduced axes dropped (or ``zero`` with keepdims)."""
        axes, keep = d["params"]["axes"], d["params"]["keepdims"]
        if keep:
            return [zero if a in axes else i for a, i in enumerate(idx)]
        return [i for a, i in enumerate(idx) if a not in axes]


@dataclass
class Schedule:
    graph: Graph
    nests: list
    roots: set                # materialized nodes (excluding inputs and array constants)
    outputs: list             # graph outputs in order
    workspace: list           # materialized non-output nodes, in allocation order
    symbols: list             # size symbols, in the order the kernel receives them
    consts: list              # array constants passed by pointer
    nonempty: list            # (node, axes) of max/min reductions that need a non-empty input
    threads: int = 1          # chunks a parallel nest is split into (partials are per chunk)
    partials: list = field(default_factory=list)  # reductions crossing chunks: per-chunk buffers
    slots: list = field(default_factory=list)     # workspace nodes sharing memory (disjoint lifetimes)
    pool_threads: int = 1     # threads that run the chunks
    row_local: list = field(default_factory=list)  # per-row values kept for one row block only
    pipelines: list = field(default_factory=list)  # RowPipeline: nests run block by block over rows
    stream_bytes: int = 16 << 20  # a matrix larger than this streams from memory (the host's cache)
    in_place: dict = field(default_factory=dict)  # node -> the buffer it overwrites (see _in_place)
    # set by the backend for its host (llvm_backend):
    stream_row_bytes: int | None = None  # only rows shorter than this stream (None: any; lower_loops)
    align_rows: bool = True   # a matrix's rows start their inner loops at a 64-byte boundary (lower_loops)
    scans: dict = field(default_factory=dict)  # a scan nest's first node -> ScanStep


@dataclass
class ScanStep:
    """What a scan nest runs: its step's own schedule (the kernel the backend compiles
    for the step and calls once per step) and {step size symbol: this graph's size}."""
    schedule: "Schedule"
    sizes: dict
    cond: "ScanStep | None" = None    # a while loop's condition (another step kernel)
    steps: object = None      # a scan's number of steps (a size of the scanning graph; None: a while loop)

    def shape(self, shape) -> tuple:
        """A shape of the step's graph in the scanning graph's sizes."""
        out = []
        for d in shape:
            if isinstance(d, str):
                if d not in self.sizes:
                    from ..errors import GradcError
                    raise GradcError(f"internal: the scan step's size {d} is none of its inputs' sizes")
                d = self.sizes[d]
            out.append(d)
        return tuple(out)



def nonempty_sizes(s: "Schedule") -> list:
    """(sizes, op, guard) for each max/min reduction without an initial value that the
    kernel of schedule ``s`` runs, its loops' steps' included: none of those sizes (the
    reduced axes', in ``s``'s graph's sizes) may be 0 when it is called, unless one of
    the ``guard`` sizes is (the steps of a scan the reduction is in: a scan of no steps
    runs none)."""
    g = s.graph
    out = [(tuple(g[g[n]["args"][0]]["shape"][a] for a in axes), g[n]["op"], ()) for n, axes in s.nonempty]
    for _key, step in step_tables(s):
        runs = (step.steps,) if step.steps is not None else ()    # a scan of no steps runs no step
        out += [(step.shape(dims), op, runs + step.shape(guard)) for dims, op, guard in nonempty_sizes(step.schedule)]
    return out


def step_tables(s: "Schedule") -> list:
    """(buffer key, ScanStep) of each step kernel the scans of schedule ``s`` call, in the
    order their tables follow the graph's constants: ``("scanfn", first)`` a scan's
    step or a while loop's body, ``("condfn", first)`` a while loop's condition."""
    out = []
    for first, step in s.scans.items():
        out.append((("scanfn", first), step))
        if step.cond is not None:
            out.append((("condfn", first), step.cond))
    return out


@dataclass
class RowPipeline:
    """Nests ``first``..``last`` (consecutive) run together, block by block over the rows
    of ``x`` (n, d): the narrow product ``head`` = x @ W (W with few columns), the
    row-local loop nests between, which compute the rows of ``G``, and ``tail`` = x^T @ G,
    accumulated over the blocks.  A block of x read by the head stays in cache for the
    tail, so x is read from memory once (softmax regression's gradient X^T (P - Y),
    logistic regression's, a narrow linear layer's with a row-wise loss).  The lowering
    runs it when it has gradc's narrow kernels (else the nests run one after another,
    in the same order)."""
    first: int
    last: int
    x: int
    head: int
    tail: int
