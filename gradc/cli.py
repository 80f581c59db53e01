"""The ``gradc`` command line.

    gradc demo                                  the paper's neuron, checked against the closed form
    gradc graph FILE.py:FUNC TYPES...           the forward (or, with --adjoint, the adjoint) graph
    gradc ir    FILE.py:FUNC TYPES...           LLVM IR of the gradient (backend "llvm")
    gradc asm   FILE.py:FUNC TYPES...           native assembly of the gradient (backend "llvm")

TYPES are the function's argument types in order, e.g. ``f64[n,d] f64[d] f64[] f64[n]``,
an argument that is a pytree a tree of types, ``{W: f64[d,h], b: f64[h]}`` or
``(f64[d], f64[])`` (see :mod:`gradc.typespec`).

Every subcommand is one ``add_<name>(subparsers)`` function that builds its parser and
sets ``run=`` to a function ``(args, out) -> exit code``; :data:`COMMANDS` lists them.
Errors are reported as one line on stderr, ``gradc: error: ...``, with exit code 2
(``--traceback`` shows the Python traceback instead); ``gradc demo`` exits 1 if the
gradient disagrees with the closed form.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

from .cli_args import CLIError, parse_wrt, target, user_frame, with_frame
from .errors import GradcError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line naming the help to read."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"gradc: error: {message} (see '{self.prog} --help')\n")


# ----------------------------------------------------------------------------- helpers
def _forward(fn, specs, flat):
    """The forward graph of ``fn`` traced for ``specs`` (what ``gradc.trace`` gives, with
    the user's size names; a tree argument is one input per leaf)."""
    from .tracer import trace_specs
    graph, structure, _ = trace_specs(flat.fun(fn), specs, flat.names, name=getattr(fn, "__name__", "f"))
    return graph, structure


def _require_scalar(fn, specs, flat, hint: str):
    """A gradient needs a scalar result: say so, in the user's size names, with ``hint``
    (the command's way to show the function itself)."""
    from .graph import fmt_type
    graph, structure = _forward(fn, specs, flat)
    outs = [graph[o] for o in graph.outputs]
    if structure.is_leaf() and outs[0].shape == ():
        return
    types = ", ".join(fmt_type(o.shape, o.dtype) for o in outs)
    what = f"a {structure.node_type.__name__} ({types})" if not structure.is_leaf() else types
    raise CLIError(f"{graph.name} returns {what}, not a scalar, so it has no gradient: {hint} "
                   "(in Python, gradc.jacobian differentiates an array result)")


def _lowered(t, specs, flat):
    """``t.lower(...)`` for ``specs``: every stage of ``t`` compiled for the user's types,
    size names included."""
    from .api import Entry, Lowered, _compile
    unoptimized, forward, graph, structure, _ = t.build(specs, flat.names, flat)
    low = Lowered(Entry(graph, forward, unoptimized, _compile(graph, t.backend, False), structure, t.backend))
    low._fun = t.fun
    return low


def _write(text: str, args, out):
    if getattr(args, "output", None):
        with open(args.output, "w") as f:
            f.write(text if text.endswith("\n") else text + "\n")
    else:
        print(text, file=out)


def _add_target(p):
    p.add_argument("target", metavar="FILE.py:FUNC", help="the model: a function FUNC defined in FILE.py")
    p.add_argument("types", metavar="TYPES", nargs="+",
                   help="the arguments' types in order, e.g. f64[n,d] f64[d] f64[] f64[n] "
                        "(dtypes f64 f32 i64 i32 bool; a dimension is a number or a size name; "
                        "one name is one size); a pytree argument is a tree of types such as "
                        "'{W: f64[d,h], b: f64[h]}' or '(f64[d], f64[])'")
    p.add_argument("--size", metavar="NAME=N", action="append",
                   help="the example value of a named size (default: n=8, d=3, ... distinct per name)")


def _add_wrt(p, default_text="0"):
    p.add_argument("--wrt", metavar="ARGS",
                   help=f"differentiate with respect to these arguments: indices or names, "
                        f"comma-separated (default {default_text})")


# ----------------------------------------------------------------------------- demo
def add_demo(sub):
    p = sub.add_parser("demo", help="the paper's neuron: graphs, gradient, and the closed-form check",
                       description="Trace the loss C(w,b,X,y) = 1/N sum_i (y_i - max(0, w.x_i + b))^2 of "
                                   "Parr & Howard's neuron, print its forward and adjoint graphs, evaluate "
                                   "the gradient and compare it with the closed form dC/dw = 2/N "
                                   "sum_{i in A} e_i x_i, dC/db = 2/N sum_{i in A} e_i. Exits 1 if they "
                                   "disagree beyond 1e-12 (relative).")
    p.add_argument("--backend", help="backend to run the gradient with (default: gradc.config's)")
    p.set_defaults(run=run_demo)


def run_demo(args, out):
    from . import demo
    return demo.run(out, backend=args.backend)


# ----------------------------------------------------------------------------- graph
def add_graph(sub):
    p = sub.add_parser("graph", help="print a model's forward or adjoint graph",
                       description="Trace FUNC from FILE.py on example arrays of the given TYPES and print "
                                   "its graph: the forward graph (gradc.trace), or with --adjoint the "
                                   "graph of gradc.value_and_grad(FUNC, argnums=WRT) (forward and "
                                   "adjoint nodes, optimized).",
                       epilog="example: gradc graph model.py:loss 'f64[d]' 'f64[]' 'f64[n,d]' 'f64[n]' --adjoint --wrt 0,1")
    _add_target(p)
    p.add_argument("--adjoint", action="store_true",
                   help="show the value_and_grad graph instead of the forward graph")
    _add_wrt(p, "0; implies --adjoint")
    p.add_argument("--format", choices=("text", "dot", "svg", "png"), default="text",
                   help="text listing (default), Graphviz DOT, or an image rendered by Graphviz's dot")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    p.set_defaults(run=run_graph)


def run_graph(args, out):
    import gradc
    from .passes import strip_custom
    if args.format in ("svg", "png") and not shutil.which("dot"):
        raise CLIError(f"--format {args.format} needs Graphviz's 'dot' program, which is not on PATH: "
                       "install the graphviz package (apt-get install graphviz), or use --format dot")
    if args.format == "png" and not args.output and out is sys.stdout and sys.stdout.isatty():
        raise CLIError("--format png writes binary data: give -o FILE.png (or redirect the output)")
    fn, specs, flat = target(args)
    if args.adjoint or args.wrt is not None:
        _require_scalar(fn, specs, flat, "drop --adjoint and --wrt to see its forward graph")
        vg = gradc.value_and_grad(fn, argnums=parse_wrt(args.wrt, fn), backend="numpy")  # the graph only
        graph = strip_custom(vg.build(specs, flat.names, flat)[2])     # as it compiles
    else:
        graph, _ = _forward(fn, specs, flat)
    if args.format == "text":
        _write(str(graph), args, out)
    elif args.format == "dot":
        _write(graph.to_dot(), args, out)
    else:
        cmd = ["dot", f"-T{args.format}"] + (["-o", args.output] if args.output else [])
        r = subprocess.run(cmd, input=graph.to_dot().encode(), capture_output=True)
        if r.returncode != 0:
            msg = r.stderr.decode(errors="replace").strip().splitlines()
            raise CLIError(f"Graphviz dot failed (exit {r.returncode}): {msg[0] if msg else 'no message'}")
        if not args.output:
            if args.format == "svg":
                out.write(r.stdout.decode())
            else:
                out.flush()
                getattr(out, "buffer", sys.stdout.buffer).write(r.stdout)
    return 0


# ----------------------------------------------------------------------------- ir / asm
def _add_cpu(p, inspect=False):
    from .backends.llvm_jit import CPUS
    p.add_argument("--cpu", choices=CPUS, default="native",
                   help="the CPU the code is for: native (this host, the default), generic (any x86-64), "
                        "x86-64-v3 (AVX2 and FMA) or x86-64-v4 (AVX-512)"
                        + ("; code for another CPU is compiled to be read, not run" if inspect else ""))


def _add_native(sub, name, what, run):
    p = sub.add_parser(name, help=f"print the {what} of a model's gradient (backend 'llvm')",
                       description=f"Compile gradc.value_and_grad(FUNC, argnums=WRT) (or gradc.jit(FUNC) with "
                                   f"--forward) for example arrays of the given TYPES with backend 'llvm' "
                                   f"and print its {what}.")
    _add_target(p)
    _add_wrt(p)
    p.add_argument("--forward", action="store_true", help="compile the function itself (gradc.jit), not its gradient")
    if name == "ir":
        p.add_argument("--raw", action="store_true", help="the IR as generated, before LLVM's optimization passes")
        p.add_argument("--loops", action="store_true",
                       help="the loop IR both code generators render (loops, loads, accumulators, checks, calls), "
                            "numbered as the graph is (gradc graph)")
    _add_cpu(p, inspect=True)
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    p.set_defaults(run=run)


def add_ir(sub):
    _add_native(sub, "ir", "LLVM IR", run_ir)


def add_asm(sub):
    _add_native(sub, "asm", "native assembly", run_asm)


def _lower_native(args):
    import gradc
    fn, specs, flat = target(args)
    if args.forward:
        if args.wrt is not None:
            raise CLIError("--wrt applies to the gradient; it cannot be combined with --forward")
        t = gradc.jit(fn, backend="llvm")
    else:
        what = "LLVM IR" if getattr(args, "command", "ir") == "ir" else "assembly"
        _require_scalar(fn, specs, flat, f"add --forward to see the {what} of the function itself")
        t = gradc.value_and_grad(fn, argnums=parse_wrt(args.wrt, fn), backend="llvm")
    return _lowered(t, specs, flat)


def run_ir(args, out):
    low = _lower_native(args)
    if args.loops:
        _write(low.loop_ir() + "\n", args, out)
        return 0
    _write(low.llvm_ir(optimized=not args.raw, cpu=args.cpu), args, out)
    return 0


def run_asm(args, out):
    _write(_lower_native(args).asm(cpu=args.cpu), args, out)
    return 0


# ----------------------------------------------------------------------------- bench
def add_bench(sub):
    from . import bench
    p = sub.add_parser("bench", help="benchmark gradc against hand-written numpy (and JAX/PyTorch if installed)",
                       description="Time a zoo of models (element-wise chain, neuron loss, logistic "
                                   "regression, two-layer MLP, softmax cross-entropy) at three sizes: "
                                   "gradc (backend 'llvm') against hand-written numpy, forward alone and "
                                   "value_and_grad, interleaved in one process, medians of many calls. "
                                   "Each cell is checked against numpy before it is timed (WRONG if they "
                                   "disagree) and marked against its floor; the exit status is 0 regardless.",
                       epilog="example: gradc bench --json bench.json --plot bench.png")
    bench.add_arguments(p)
    p.set_defaults(run=run_bench)


def run_bench(args, out):
    if args.sweep or args.sweep_only:
        from . import bench_sweep
        return bench_sweep.main(args, out)
    from . import bench
    return bench.main(args, out)


# ----------------------------------------------------------------------------- c / build
def add_c(sub):
    p = sub.add_parser("c", help="print the generated C of a model's gradient (backend 'c')",
                       description="Print the C99 source backend 'c' compiles for gradc.value_and_grad(FUNC, "
                                   "argnums=WRT) (or gradc.jit(FUNC) with --forward), traced for the given "
                                   "TYPES: the same fused loop nests as backend 'llvm', one statement per "
                                   "graph node, with gradc's kernel ABI (runtime/gradc.h).")
    _add_target(p)
    _add_wrt(p)
    p.add_argument("--forward", action="store_true", help="the function itself (gradc.jit), not its gradient")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")

    def run_c(args, out):
        import gradc
        from .backends.c_backend import c_source
        fn, specs, flat = target(args)
        if args.forward and args.wrt is not None:
            raise CLIError("--wrt applies to the gradient; it cannot be combined with --forward")
        if not args.forward:
            _require_scalar(fn, specs, flat, "add --forward to see the C of the function itself")
        t = gradc.jit(fn, backend="numpy") if args.forward else \
            gradc.value_and_grad(fn, argnums=parse_wrt(args.wrt, fn), backend="numpy")   # the graph only
        _write(c_source(t.build(specs, flat.names, flat)[2]), args, out)
        return 0
    p.set_defaults(run=run_c)


def add_build(sub):
    p = sub.add_parser("build", help="build a shared library (and C header) of a model and its gradient",
                       description="Compile FUNC and gradc.value_and_grad(FUNC, argnums=WRT), for arguments "
                                   "of the given TYPES (size names become the library's size parameters), "
                                   "ahead of time into DIR/libNAME.so with the header DIR/NAME.h (entry "
                                   "points NAME_forward and NAME_value_and_grad; NAME_forward alone with "
                                   "--forward) and DIR/gradc.h. The library needs neither Python nor gradc "
                                   "to run.",
                       epilog="example: gradc build model.py:loss 'f64[d]' 'f64[]' 'f64[n,d]' 'f64[n]' "
                              "--wrt w,b -o build --name neuron")
    _add_target(p)
    _add_wrt(p)
    p.add_argument("-o", "--output-dir", metavar="DIR", default=".", help="where to write the files (default .)")
    _add_cpu(p)
    p.add_argument("--name", help="the library's name: libNAME.so, NAME.h, NAME_* symbols (default: FUNC)")
    p.add_argument("--forward", action="store_true",
                   help="build NAME_forward alone: the function itself, of any outputs (a prediction function), "
                        "no gradient")

    def run_build(args, out):
        from . import aot
        return aot.run_cli(args, out)
    p.set_defaults(run=run_build)


# ----------------------------------------------------------------------------- explain
def add_explain(sub):
    p = sub.add_parser("explain", help="print a model's derivative as mathematics (the paper's notation)",
                       description="Differentiate FUNC from FILE.py with respect to WRT, for example arrays of "
                                   "the given TYPES, and print the derivative gradc derived, read off its "
                                   "adjoint graph: the forward values named (z_i = w·x_i + b, ...), each "
                                   "step of the reverse walk with the rule that produced it (element-wise "
                                   "op => diagonal Jacobian, scalar expansion => sum, ...), and the result "
                                   "in numerator layout, i indexing the samples (the rows of the data "
                                   "matrix). A function with an array result is explained by its Jacobian.",
                       epilog="example: gradc explain model.py:loss 'f64[d]' 'f64[]' 'f64[n,d]' 'f64[n]' --wrt w,b")
    _add_target(p)
    _add_wrt(p)
    p.add_argument("--latex", action="store_true", help="print LaTeX (aligned blocks) instead of text")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    p.set_defaults(run=run_explain)


def run_explain(args, out):
    from .api import explain_with
    fn, specs, flat = target(args)
    trees = flat.group(range(len(flat.spans)), flat.leaves)     # the arguments' trees (of type strings)
    ex = explain_with(fn, lambda t: _lowered(t, specs, flat), argnums=parse_wrt(args.wrt, fn), args=trees)
    _write(ex.latex() if args.latex else str(ex), args, out)
    return 0


# ----------------------------------------------------------------------------- main
# One entry per subcommand; a new one (explain, bench, c, build) is an add_<name>
# function plus its line here.
COMMANDS = [add_demo, add_graph, add_ir, add_asm, add_bench,
            add_c, add_build, add_explain]


def build_parser() -> argparse.ArgumentParser:
    from .version import __version__
    parser = _Parser(prog="gradc", description="gradc: a gradient compiler for Python. Trace a numpy-like "
                     "model into a graph, differentiate it by source transformation, and compile it.")
    parser.add_argument("--version", action="version", version=f"gradc {__version__}")
    parser.add_argument("--traceback", action="store_true",
                        help="on an error, show the Python traceback instead of one line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    for p in sub.choices.values():   # accepted after the command too: gradc graph ... --traceback
        p.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS,
                       help="on an error, show the Python traceback instead of one line")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.run(args, sys.stdout) or 0)
    except KeyboardInterrupt:
        print("gradc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:              # gradc graph ... | head
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except Exception as e:
        if args.traceback:
            raise
        print(f"gradc: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE


def _one_line(e: BaseException) -> str:
    if isinstance(e, CLIError):
        msg = str(e)
    elif isinstance(e, GradcError):
        msg = with_frame(str(e), e)
    elif isinstance(e, OSError) and e.filename:
        msg = f"{e.filename}: {e.strerror or e}"
    else:
        msg = with_frame(f"{type(e).__name__}: {e}", e)
        if not user_frame(e):
            msg += " (rerun with --traceback for details)"
    return " ".join(msg.split()) or type(e).__name__


if __name__ == "__main__":
    sys.exit(main())
