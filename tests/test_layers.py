"""gradc's modules import one way: each imports only modules of its own layer or of a
lower one, and no import cycle runs between modules -- imports inside functions count.

Data flows trace -> graph -> autodiff -> passes -> schedule -> loop IR -> render (LLVM |
C) -> jit -> call; the public API and the command line sit on top.  The scan reads the
source (``ast``), so it sees every import, including the lazy ones inside functions
that Python's import system would only meet at run time."""
from __future__ import annotations

import ast
import pathlib
import sys

import networkx as nx
import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "gradc"

# The op modules, each its own layer, lowest first: a module's rules and composites use
# only the modules before it.  ``bind`` is the entry point below them all: a rule that
# needs an op of a later module (the VJP of broadcast_to is a sum) binds it there by its
# registry name.  structure's views, then the element-wise ops (whose JVPs broadcast),
# the reductions (whose adjoints are broadcasts), matmul and transpose; then the
# composites built on them.
OP_MODULES = ["gradc.ops.bind", "gradc.ops.structure", "gradc.ops.elementwise", "gradc.ops.reduce",
              "gradc.ops.linalg", "gradc.ops.lapack", "gradc.ops.decomp", "gradc.ops.lu", "gradc.ops.einsum", "gradc.ops.axes", "gradc.ops.mathfuncs", "gradc.ops.bitwise",
              "gradc.ops.special", "gradc.ops.bessel", "gradc.ops.at", "gradc.ops.arrays", "gradc.ops.stats", "gradc.ops.lookup", "gradc.ops.segments", "gradc.ops.indices", "gradc.ops.compose", "gradc.ops.nanfuncs", "gradc.ops.assorted", "gradc.ops.extras",
              "gradc.ops.padding", "gradc.ops.ufuncs", "gradc.ops.custom", "gradc.ops.scan", "gradc.ops.collectives"]

# The explain package's modules, each its own layer, lowest first: the expression tree,
# its algebra, its printing, reading graphs into it, the result object, the explainer.
EXPLAIN_MODULES = ["gradc.explain.expr", "gradc.explain.simplify", "gradc.explain.render", "gradc.explain.reader",
                   "gradc.explain.explanation", "gradc.explain.explainer"]

# Lowest layer first.  A module may import modules of its own layer (without a cycle)
# and of the layers before it.  A new module gets a line here.
LAYERS = [
    ("foundation", ["gradc.version", "gradc.errors", "gradc.shapes", "gradc.tree_util", "gradc.tree", "gradc.backends.standalone"]),
    ("graph", ["gradc.graph", "gradc.graph_match", "gradc.ops.registry"]),
    ("trace", ["gradc.tracer"]),
    *((f"ops: {m.rsplit('.', 1)[1]}", [m]) for m in OP_MODULES),
    ("ops", ["gradc.ops", "gradc.numpy", "gradc.nn", "gradc.nn_initializers", "gradc.random_base", "gradc.random_more", "gradc.scipy", "gradc.scipy.special", "gradc.scipy._basic", "gradc.scipy._gamma", "gradc.scipy._incgamma", "gradc.scipy.stats", "gradc.scipy._stats_basic", "gradc.scipy._stats_more", "gradc.scipy.matrices", "gradc.scipy.matfuncs", "gradc.scipy.linalg", "gradc.ops.value_methods", "gradc.bench_models",
             "gradc.lax_arrays", "gradc.lax_windows", "gradc.lax_sorting",
             "gradc.lax_scans", "gradc.lax_construct", "gradc.lax_more"]),
    ("autodiff", ["gradc.autodiff", "gradc.batching"]),
    ("passes", ["gradc.passes", "gradc.evaluate"]),
    ("schedule", ["gradc.backends.schedule_types", "gradc.backends.schedule_index", "gradc.backends.schedule_graph",
                  "gradc.backends.workspace", "gradc.backends.pipelines", "gradc.backends.schedule",
                  "gradc.backends.batch_split"]),
    ("loop IR", ["gradc.backends.loop_ir", "gradc.backends.lower_nests", "gradc.backends.lower_calls",
                 "gradc.backends.lower_scan", "gradc.backends.lower_loops"]),
    ("render", ["gradc.backends.vecmath_ctx", "gradc.backends.vecmath_coeffs", "gradc.backends.vecmath_funcs",
                "gradc.backends.vecmath", "gradc.backends.llvm_exprs", "gradc.backends.llvm_calls",
                "gradc.backends.llvm_parallel", "gradc.backends.llvm_codegen", "gradc.backends.c_codegen"]),
    ("jit", ["gradc.backends.blas", "gradc.backends.cache", "gradc.backends.llvm_jit"]),
    ("call", ["gradc.backends", "gradc.backends.kernel", "gradc.backends.numpy_backend",
              "gradc.backends.llvm_backend", "gradc.backends.c_backend"]),
    *((f"explain: {m.rsplit('.', 1)[1]}", [m]) for m in EXPLAIN_MODULES),
    ("explain", ["gradc.explain"]),
    ("api", ["gradc.api_args", "gradc.api_lowered", "gradc.api_allow_int", "gradc.api", "gradc.jacobian", "gradc.hessian", "gradc.vmap", "gradc.vectorize", "gradc.remat", "gradc.control_flow", "gradc.control_while", "gradc.lax", "gradc.check", "gradc.optim", "gradc.optax_schedules", "gradc.optax_losses", "gradc.optax", "gradc.flatten_util",
             "gradc.distributed", "gradc.custom_derivatives", "gradc.static_args", "gradc.api_extras",
             # (above custom_jvp and lax.while_loop: the derivative of gammainc in a, the Gamma family of samplers)
             "gradc.scipy._incgamma_grad", "gradc.random_gamma", "gradc.random"]),
    ("package", ["gradc"]),
    ("tools", ["gradc.typespec", "gradc.cli_args", "gradc.aot_c", "gradc.aot", "gradc.roofline", "gradc.bench_vecmath",
               "gradc.docs_numpy",
               "gradc.bench_measure", "gradc.bench_render", "gradc.bench_memory",
               "gradc.bench", "gradc.bench_sweep", "gradc.demo",
               "gradc.cli"]),
]

def modules() -> dict[str, tuple[pathlib.Path, bool]]:
    """{dotted name: (file, is a package)} for every Python module of gradc."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        out[".".join(parts)] = (path, is_package)
    return out


def _defined(tree: ast.Module) -> set[str]:
    """Names a module binds at its top level (assignments, defs, imports)."""
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.If, ast.Try)):
            names.update(_defined(ast.Module(body=node.body, type_ignores=[])))
    return names


def import_graph() -> nx.DiGraph:
    """Module -> module it imports (``line`` of the first such import)."""
    mods = modules()
    trees = {m: ast.parse(path.read_text(), str(path)) for m, (path, _) in mods.items()}
    defined = {m: _defined(t) for m, t in trees.items()}
    g = nx.DiGraph()
    for m, tree in trees.items():
        is_package = mods[m][1]
        here = m.split(".") if is_package else m.split(".")[:-1]
        g.add_node(m)
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name in mods]
            elif isinstance(node, ast.ImportFrom):
                base = here[:len(here) - node.level + 1] if node.level else []
                source = ".".join(base + ([node.module] if node.module else []))
                if source not in mods:
                    continue
                for a in node.names:
                    sub = f"{source}.{a.name}"
                    if sub in mods:
                        targets.append(sub)
                    elif a.name in defined[source] or a.name == "*":
                        targets.append(source)
                    # else: a compiled extension beside the package (gradc._callpath)
            for t in targets:
                a, b = m, t
                if a != b and not g.has_edge(a, b):
                    g.add_edge(a, b, line=f"{mods[m][0].relative_to(PACKAGE.parent)}:{node.lineno}")
    return g


def layer_of() -> dict[str, int]:
    return {m: k for k, (_, ms) in enumerate(LAYERS) for m in ms}


def test_every_module_has_a_layer():
    placed = layer_of()
    missing = sorted(set(import_graph().nodes) - set(placed))
    assert not missing, (f"modules missing from LAYERS in tests/test_layers.py: {missing}; add each to "
                         "the lowest layer at or above every gradc module it imports")
    stale = sorted(set(placed) - set(import_graph().nodes))
    assert not stale, f"LAYERS names modules that do not exist: {stale}"


def test_no_import_cycle():
    g = import_graph()
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return
    steps = "\n".join(f"  {a} -> {b}  ({g.edges[a, b]['line']})" for a, b in cycle)
    raise AssertionError(f"import cycle:\n{steps}")


def test_imports_go_down_the_layers():
    g, layer = import_graph(), layer_of()
    names = [name for name, _ in LAYERS]
    upward = [f"  {a} ({names[layer[a]]}) imports {b} ({names[layer[b]]})  at {d['line']}"
              for a, b, d in g.edges(data=True) if a in layer and b in layer and layer[b] > layer[a]]
    assert not upward, "imports against the layer order:\n" + "\n".join(sorted(upward))


def test_the_scan_sees_imports_inside_functions():
    """The oracle for the scanner itself: known imports, one of them inside a function."""
    g = import_graph()
    assert g.has_edge("gradc.cli", "gradc.demo")             # ``from . import demo`` in run_demo
    assert g.has_edge("gradc.api_lowered", "gradc.explain")  # inside Lowered.explain
    assert g.has_edge("gradc.backends.kernel", "gradc.backends.numpy_backend")   # checked mode
    assert g.has_edge("gradc.tracer", "gradc.ops.registry")
    assert g.has_edge("gradc.ops.bind", "gradc.tracer")         # inside bind.tracer
    assert not any(g.has_edge("gradc.tracer", m) for m in OP_MODULES)
    assert g.has_edge("gradc.ops.einsum", "gradc.ops.linalg")   # inside _align
    assert not g.has_edge("gradc.backends.llvm_backend", "gradc")   # _callpath is an extension


def test_the_scan_reports_a_cycle(tmp_path, monkeypatch):
    """A planted cycle through a function-level import is found and named."""
    pkg = tmp_path / "gradc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "low.py").write_text("def f():\n    from .high import g\n    return g\n")
    (pkg / "high.py").write_text("from .low import f\n\n\ndef g():\n    return f\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    g = import_graph()
    assert set(nx.find_cycle(g)) == {("gradc.low", "gradc.high"), ("gradc.high", "gradc.low")}
    assert g.edges["gradc.low", "gradc.high"]["line"] == "gradc/low.py:2"


def test_an_import_against_the_layers_is_reported(tmp_path, monkeypatch):
    """A lower layer importing a higher one, inside a function and without a cycle, fails
    with the module, the layers and the line."""
    pkg = tmp_path / "gradc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "low.py").write_text("def f():\n    from . import high\n    return high\n")
    (pkg / "high.py").write_text("X = 1\n")
    me = sys.modules[__name__]
    monkeypatch.setattr(me, "PACKAGE", pkg)
    monkeypatch.setattr(me, "LAYERS", [("base", ["gradc", "gradc.low"]), ("top", ["gradc.high"])])
    test_no_import_cycle()
    with pytest.raises(AssertionError, match=r"gradc\.low \(base\) imports gradc\.high \(top\)  at gradc/low\.py:2"):
        test_imports_go_down_the_layers()
