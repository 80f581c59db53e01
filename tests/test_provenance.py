"""Typed graph nodes and their provenance: what a node holds, the user's line every node
carries through grad/vjp/jvp/hessian, and the listings agreeing on it (the text listing,
the DOT graph and the C source name the same nodes and the same lines)."""
from __future__ import annotations

import os
import pickle
import re

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
from gradc.autodiff import jvp_graph, vjp_graph
from gradc.passes import optimize

pytestmark = pytest.mark.usefixtures("core_backend")

HERE = os.path.basename(__file__)


def _line(marker):
    with open(__file__) as f:
        for k, text in enumerate(f, 1):
            if marker in text and "_line(" not in text:
                return k
    raise AssertionError(marker)


def fanout(x):
    z = gnp.sin(x)                                   # FAN-Z
    return gnp.sum(z * z + z)                        # FAN-USE


def rewritten(x, w):
    z = x * w                                        # RW-Z
    s = gnp.sum(gnp.log1p(gnp.exp(z)))               # RW-SOFTPLUS: becomes softplus, ids shift
    return s + gnp.sum(gnp.sqrt(z * z + 1.0))        # RW-SQRT


def unused(x, y):
    return gnp.sum(x * x)                            # UNUSED-Y


MODEL_LINES = {_line(m) for m in ("FAN-Z", "FAN-USE", "RW-Z", "RW-SOFTPLUS", "RW-SQRT", "UNUSED-Y")}
X = np.array([0.3, -1.2, 2.0, 0.5])
W = np.array([1.5, 0.25, -0.75, 2.0])

_ROW = re.compile(r"^\s*(\S+) = (.*?)\s+: (\S+)(?:\s+# (.*))?$")
_REF = re.compile(r"^(?:d/d|tangent of) (\S+)(?: \((.*)\))?$")


def listing(text):
    """{label: (expression, provenance comment)} of a graph listing's node lines."""
    rows = {}
    for line in text.splitlines():
        m = _ROW.match(line)
        if m and not line.lstrip().startswith(("graph ", "return", "#")):
            rows[m.group(1)] = (m.group(2), m.group(4) or "")
    return rows


def assert_references_resolve(text, inputs=()):
    """Every ``d/d %k (file:line)`` of a listing names a node of the same listing that
    was created at that line (or an argument, or an op no longer computed)."""
    rows = listing(text)
    checked = 0
    for label, (_, src) in rows.items():
        m = _REF.match(src)
        if not m:
            continue
        ref, where = m.groups()
        if ref.startswith("%"):
            assert ref in rows, f"{label}: {src} names {ref}, which is not in the listing\n{text}"
            own = rows[ref][1]
            # the referenced node is the forward value: created at that line, or itself a
            # derivative of a value created there
            assert own == where or own.endswith(f"({where})"), (label, src, ref, own)
            checked += 1
        else:
            assert ref in inputs or ref.isidentifier(), (label, src)
    return checked


# ----------------------------------------------------------------------------- typed nodes
def test_every_node_is_one_typed_record():
    from gradc.graph import Node
    g = gradc.trace(fanout, X)
    for nid in g.nx:
        node = g[nid]
        assert isinstance(node, Node)
        assert g.nx.nodes[nid] is node              # the DiGraph's own attribute mapping
        assert isinstance(node.args, tuple) and isinstance(node.params, dict)
        assert isinstance(node.shape, tuple) and isinstance(node.dtype, np.dtype)
        assert node["op"] == node.op and node.get("name") == node.name   # mapping reads
        assert set(node.keys()) == {"op", "args", "params", "dtype", "shape", "provenance",
                                    "role", "name"}
    (sin,) = [n for n in g.nx if g[n].op == "sin"]
    with pytest.raises(AttributeError):
        g[sin].example = {}                         # no attribute gained along the way
    with pytest.raises(KeyError, match="no field 'src'"):
        g[sin]["src"] = "x.py:1"


def test_node_provenance_is_the_users_file_line_and_function():
    from gradc.graph import Provenance
    g = gradc.trace(fanout, X)
    (sin,) = [n for n in g.nx if g[n].op == "sin"]
    p = g[sin].provenance
    assert isinstance(p, Provenance)
    assert (p.file, p.line, p.function, p.mode) == (__file__, _line("FAN-Z"), "fanout", None)
    assert g.source(sin) == f"{HERE}:{_line('FAN-Z')}"
    assert g[g.inputs[0]].provenance is None       # an argument has no line of its own


def test_transformed_graphs_declare_what_they_keep():
    lo = gradc.grad(fanout).lower(X)
    jac = gradc.jacobian(gnp.sin).lower(X)
    for g in (lo.graph, lo.forward, lo.unoptimized, jac.graph):
        assert not hasattr(g, "forward_graph") and not hasattr(g, "jac")
        assert isinstance(g.example, dict) and isinstance(g.notes, list)
        with pytest.raises(AttributeError):
            g.forward_graph = lo.forward            # a graph declares everything it holds


def test_graph_pickles_with_its_records():
    from gradc.graph import Node
    g = gradc.grad(rewritten).lower(X, W).graph
    h = pickle.loads(pickle.dumps(g))
    assert str(h) == str(g)
    assert all(isinstance(h[n], Node) for n in h.nx)


def test_copy_copies_records():
    g = gradc.trace(fanout, X)
    h = g.copy()
    (sin,) = [n for n in g.nx if g[n].op == "sin"]
    assert h[sin] is not g[sin] and h[sin].params is not g[sin].params
    h[sin].args = ()
    assert g[sin].args == (g.inputs[0],)


# ----------------------------------------------------------------------------- (a) line tags
def test_fanout_sum_is_tagged_with_the_forward_value_in_the_listing():
    text = str(gradc.grad(fanout).lower(X).graph)
    z = re.search(rf"^\s*(%\d+) = sin x .*# {HERE}:{_line('FAN-Z')}$", text, re.M).group(1)
    adds = re.findall(r"^\s*%\d+ = add .*# (.*)$", text.split("-- adjoint --")[1], re.M)
    assert f"d/d {z} ({HERE}:{_line('FAN-Z')})" in adds, text
    for src in adds:
        m = _REF.match(src)
        assert m and (m.group(1) == "x" or int(m.group(2).rpartition(":")[2]) in MODEL_LINES), (src, text)


def test_fanout_sum_carries_the_forward_values_provenance():
    lo = gradc.grad(fanout).lower(X)
    g = lo.graph
    (z,) = [n for n in g.nx if g[n].op == "sin"]
    adds = [n for n in g.nx if g[n].role == "adjoint" and g[n].op == "add"]
    # z is used three times (z * z, + z): its cotangents are summed by adjoint adds
    sums_of_z = [n for n in adds if g.differentiates(n) == z]
    assert sums_of_z, str(g)
    for n in sums_of_z:
        assert g.source(n) == f"d/d {g.label(z)} ({HERE}:{_line('FAN-Z')})"
    for n in g.nx:
        if g[n].role == "adjoint" and g[n].op != "const":     # constants are shared
            p = g[n].provenance      # (the gradient of an argument: that argument's)
            assert p.mode == "adjoint" and (p.file == __file__ and p.line in MODEL_LINES
                                            or p.of_op == "input" and p.file is None), (n, g.source(n))
    # the gradient itself: d/dx sum(sin² x + sin x) = (2 sin x + 1) cos x
    np.testing.assert_allclose(gradc.grad(fanout)(X), (2 * np.sin(X) + 1) * np.cos(X), rtol=1e-12)


def test_listing_names_no_line_outside_the_model():
    for lo in (gradc.grad(fanout).lower(X), gradc.grad(rewritten, argnums=(0, 1)).lower(X, W),
               gradc.grad(unused, argnums=(0, 1)).lower(X, W)):
        for text in (str(lo.graph), str(lo.unoptimized)):
            for label, (_, src) in listing(text).items():
                lines = [int(m) for m in re.findall(rf"{re.escape(HERE)}:(\d+)", src)]
                assert src == "" or _REF.match(src) or lines, (label, src)
                assert set(lines) <= MODEL_LINES, (label, src, text)


def test_zero_gradient_of_an_unused_argument_is_its_derivative():
    g = vjp_graph(gradc.trace(unused, X, W), [0, 1], seed="one")
    dy = g.outputs[-1]
    assert g.source(dy) == "d/d y"
    np.testing.assert_array_equal(gradc.grad(unused, argnums=1)(X, W), np.zeros_like(W))


# ----------------------------------------------------------------------------- (b) references
def test_references_name_nodes_of_the_printed_graph_after_rewrites():
    lo = gradc.value_and_grad(rewritten, argnums=(0, 1)).lower(X, W)
    text = str(lo.graph)
    assert re.search(r"= softplus %", text)         # the rewrite happened: ids shifted
    assert assert_references_resolve(text, ("x", "w")) >= 3, text
    # each reference is the forward node, not a number of another graph
    g = lo.graph
    for n in g.nx:
        k = g.differentiates(n)
        if k is not None:
            assert g[k].op == g[n].provenance.of_op or g[n].provenance.of_op in ("log1p", "exp", "log"), \
                (g.source(n), g.expr(k))


def test_references_follow_a_pass_that_replaces_the_forward_node():
    F = gradc.trace(rewritten, X, W)
    G = vjp_graph(F, [0], seed="one")              # d/d log1p before the rewrite
    (lp,) = [n for n in G.nx if G[n].op == "log1p"]
    derivs = [n for n in G.nx if G.differentiates(n) == lp]
    assert derivs
    Go = optimize(G)                               # log1p(exp(z)) -> softplus(z)
    (sp,) = [n for n in Go.nx if Go[n].op == "softplus"]
    moved = [n for n in derivs if n in Go.nx]
    for n in moved:
        assert Go.differentiates(n) == sp
    assert_references_resolve(str(Go), ("x", "w"))


def test_c_source_comments_agree_with_the_graph():
    lo = gradc.grad(rewritten, argnums=(0, 1)).lower(X, W)
    c = lo.c_source()
    comments = re.findall(r"/\* (%\d+) = (.*?)  (?:\((.*?)\)|(d/d .*?|tangent of .*?)) \*/", c)
    assert comments, c
    rows = listing(str(lo.graph))
    for label, expr, plain, deriv in comments:
        if label in rows:                           # the graph lo.graph lists is the one rendered
            assert rows[label][1] == (plain or deriv), (label, rows[label], plain or deriv)
    for ref in re.findall(r"d/d (%\d+) \(", c):
        assert ref in rows, (ref, c)


# ----------------------------------------------------------------------------- (c) one rendering
@pytest.mark.parametrize("which", ["graph", "forward", "unoptimized"])
def test_dot_prints_the_listings_provenance(which):
    g = getattr(gradc.grad(rewritten, argnums=(0, 1)).lower(X, W), which)
    rows = listing(str(g))
    labels = dict(re.findall(r'label="(%\d+) = [^"]*?(?:\\n# ([^"]*))?"', g.to_dot()))
    assert len([r for r in rows.values() if r[1]]) >= 3
    for label, (_, src) in rows.items():
        if label.startswith("%"):
            assert labels.get(label, "") == src, (label, src, labels.get(label))


@pytest.mark.parametrize("which", ["graph", "forward", "unoptimized"])
def test_every_listing_prints_provenance_one_way(which):
    lo = gradc.grad(rewritten, argnums=(0, 1)).lower(X, W)
    g = getattr(lo, which)
    rows = listing(str(g))
    dot = g.to_dot()
    shown = 0
    for n in g.nx:
        src = g.source(n)
        if g.label(n) in rows:
            assert rows[g.label(n)][1] == src, (n, rows[g.label(n)], src)
        if src and g[n].op not in ("input", "const"):
            assert f"\\n# {src}\"" in dot, (n, src)
            shown += 1
    assert shown >= 3


# ----------------------------------------------------------------------------- transforms
def test_tangent_nodes_name_their_forward_node():
    G = optimize(jvp_graph(gradc.trace(fanout, X), [0]))
    text = str(G)
    assert "tangent of %" in text
    assert assert_references_resolve(text, ("x",)) >= 2
    for n in G.nx:
        if G[n].role == "tangent":
            assert G[n].provenance.mode == "tangent" and G[n].provenance.line in MODEL_LINES


def test_vjp_graph_of_a_tuple_output_used_twice():
    def twice(x):
        z = gnp.exp(x)                               # TWICE-Z
        return z, z
    G = vjp_graph(gradc.trace(twice, X), [0], seed="input")
    (z,) = [n for n in G.nx if G[n].op == "exp"]
    (s,) = [n for n in G.nx if G[n].op == "add" and G[n].role == "adjoint"]
    assert G.differentiates(s) == z and G[s].provenance.line == _line("TWICE-Z")


@pytest.mark.parametrize("kind", ["grad_of_grad", "hessian"])
def test_second_order_references_stay_in_the_graph(kind):
    if kind == "grad_of_grad":
        f = gradc.grad(lambda x: gnp.sum(gradc.grad(fanout)(x) * x))
    else:
        f = gradc.hessian(fanout)
    lo = f.lower(X)
    text = str(lo.graph)
    assert assert_references_resolve(text, ("x",)) >= 2, text
    for n in lo.graph.nx:
        p = lo.graph[n].provenance
        if p is not None and p.mode is not None and p.of_op != "input":
            assert p.file == __file__ and p.line in MODEL_LINES, lo.graph.source(n)
    # oracle: d²/dx² sum(sin² x + sin x) = 2 cos 2x - sin x on the diagonal
    h = (2 * np.cos(2 * X) - np.sin(X))
    if kind == "hessian":
        np.testing.assert_allclose(f(X), np.diag(h), rtol=1e-12, atol=1e-12)


def test_nan_message_names_the_forward_node_of_the_graph_that_ran():
    def sq(x):
        z = gnp.sqrt(x)                              # NAN-Z
        return gnp.sum(z * z)
    g = gradc.grad(sq, backend="numpy", debug_nans=True)
    x0 = np.array([1.0, 0.0, 4.0])
    with pytest.raises(gradc.NonFiniteError) as e:
        g(x0)
    m = re.search(r"it differentiates (%\d+) = sqrt x created at (.*)$", str(e.value))
    assert m, str(e.value)
    graph = g.lower(x0).graph
    assert graph[int(m.group(1)[1:])].op == "sqrt"
    assert m.group(2) == f"{HERE}:{_line('NAN-Z')}"


def test_nan_message_when_the_forward_value_is_not_computed():
    def lg(x):
        return gnp.sum(gnp.log(x))                   # NAN-LOG: grad needs 1/x, not log x
    g = gradc.grad(lg, backend="numpy", debug_nans=True)
    with pytest.raises(gradc.NonFiniteError) as e:
        g(np.array([1.0, 0.0]))
    msg = str(e.value)
    assert re.match(r"adjoint node %\d+ = div %\d+ x produced inf at index \(1,\)", msg), msg
    assert msg.endswith(f"; it differentiates a log created at {HERE}:{_line('NAN-LOG')} "
                        "(a value this graph does not compute)"), msg
    text = str(g.lower(np.ones(2)).graph)
    assert "= log " not in text and f"# d/d log ({HERE}:{_line('NAN-LOG')})" in text, text


def test_cast_back_of_a_mixed_dtype_gradient_has_the_models_line():
    def mixed(x32, y):
        return gnp.sum(x32 * y)                          # MIXED: f32 * f64 is f64
    x32 = np.linspace(-1.0, 1.0, 24, dtype=np.float32).reshape(6, 4)   # (rank 3 is issue 10)
    y = np.linspace(0.5, 2.0, 24).reshape(6, 4)
    g = gradc.grad(mixed).lower(x32, y).graph
    (cast,) = [n for n in g.nx if g[n].op == "cast" and g[n].dtype == np.float32]
    # the VJP of the forward cast to f64 (which the gradient does not need), at the
    # model's line, not the caller's
    assert g.source(cast) == f"d/d cast ({HERE}:{_line('MIXED')})"
    dx = gradc.grad(mixed)(x32, y)
    assert dx.dtype == np.float32
    np.testing.assert_array_equal(dx, y.astype(np.float32))   # d/dx sum(x y) = y, rounded once


def test_fanout_gradient_at_a_threaded_size():
    # 300,000 elements: above the size where the native nests split over threads
    x = np.random.default_rng(1).uniform(-3.0, 3.0, 300_000)
    got = gradc.grad(fanout)(x)
    # closed form (2 sin x + 1) cos x; tolerance: a few ulps of libm-vs-vector-math
    # differences in sin and cos, each |.| <= 3
    np.testing.assert_allclose(got, (2 * np.sin(x) + 1) * np.cos(x), rtol=0, atol=1e-13)


def test_relabel_renumbers_references_with_the_nodes():
    g = optimize(vjp_graph(gradc.trace(rewritten, X, W), [0, 1], seed="one"))
    shift = {n: n + 100 for n in g.nx if g[n].op != "input"}
    h = g.relabel(shift)
    def words(text):
        return re.sub(r"\s+", " ", text)
    assert words(str(h)) == words(re.sub(r"%(\d+)", lambda m: f"%{int(m.group(1)) + 100}", str(g)))
    assert assert_references_resolve(str(h), ("x", "w")) >= 3
    from gradc.evaluate import evaluate
    for a, b in zip(evaluate(h, [X, W]), evaluate(g, [X, W])):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="one number"):
        g.relabel({g.outputs[0]: g.inputs[0]})


def test_c_source_of_a_decomposed_graph_names_its_own_nodes():
    # logsumexp and matrix-vector products are decomposed before code generation
    def lse(W, x):
        z = x @ W                                    # LSE-Z
        return gnp.sum(gnp.logsumexp(z[None, :], axis=1) ** 2)      # LSE
    c = gradc.grad(lse).lower(np.ones((3, 4)), np.ones(3)).c_source()
    header = c.split("*/", 1)[0]
    rows = listing("\n".join(line.lstrip(" *") for line in header.splitlines()))
    refs = re.findall(r"d/d (%\d+) \((.*?)\)", c)
    assert refs
    for ref, where in refs:
        assert ref in rows, (ref, header)
        own = rows[ref][1]
        assert own == where or own.endswith(f"({where})"), (ref, where, own)
