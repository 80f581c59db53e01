"""The graph: a networkx DAG with op/args/shape/dtype/params on every node, ordered
arguments, readable listings, DOT output, and symbolic shapes (one graph, many sizes)."""
from __future__ import annotations

import re

import networkx as nx
import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
from gradc.evaluate import evaluate
from gradc.graph import Graph

pytestmark = pytest.mark.usefixtures("core_backend")


def model(X, w):
    return gnp.sum(gnp.tanh(X @ w) * w[0])


X5, W3 = np.random.default_rng(0).standard_normal((5, 3)), np.array([0.5, -1.0, 2.0])


def test_trace_returns_graph_with_networkx_dag():
    g = gradc.trace(model, X5, W3)
    assert isinstance(g, Graph)
    assert isinstance(g.nx, nx.DiGraph)
    assert nx.is_directed_acyclic_graph(g.nx)
    assert len(g.inputs) == 2 and len(g.outputs) == 1
    for nid, d in g.nx.nodes(data=True):
        assert {"op", "args", "shape", "dtype", "params"} <= set(d), d
        assert isinstance(d["args"], tuple) and isinstance(d["params"], dict)
        assert isinstance(d["shape"], tuple) and isinstance(d["dtype"], np.dtype)
        # edges run from each argument to its user
        for a in d["args"]:
            assert g.nx.has_edge(a, nid)
        assert set(g.nx.predecessors(nid)) == set(d["args"])
    assert [g[i]["op"] for i in g.inputs] == ["input", "input"]
    assert [g[i]["name"] for i in g.inputs] == ["X", "w"]
    ops = [g[n]["op"] for n in g.order()]
    assert ops.index("matmul") < ops.index("tanh") < ops.index("sum")


def test_x_times_x_keeps_two_ordered_args():
    g = gradc.trace(lambda x: x * x, np.ones(3))
    (mul,) = [n for n, d in g.nx.nodes(data=True) if d["op"] == "mul"]
    x = g.inputs[0]
    assert g[mul]["args"] == (x, x)
    assert g.nx.in_degree(mul) == 1           # a DiGraph has one edge; args keeps both
    np.testing.assert_array_equal(gradc.grad(lambda x: gnp.sum(x * x))(np.arange(3.0)), [0.0, 2.0, 4.0])


def test_argument_order_is_kept():
    g = gradc.trace(lambda x, y: (x - y) / y, np.ones(3), np.ones(3))
    x, y = g.inputs
    (sub,) = [n for n, d in g.nx.nodes(data=True) if d["op"] == "sub"]
    (div,) = [n for n, d in g.nx.nodes(data=True) if d["op"] == "div"]
    assert g[sub]["args"] == (x, y)
    assert g[div]["args"] == (sub, y)


def test_params_and_source_lines():
    g = gradc.trace(lambda X: gnp.sum(X, axis=1, keepdims=True), X5)
    (s,) = [d for _, d in g.nx.nodes(data=True) if d["op"] == "sum"]
    assert s["params"] == {"axes": (1,), "keepdims": True}
    assert s.provenance.where.startswith("test_graph.py:") and s.provenance.function == "<lambda>"
    assert s["role"] == "forward"


def test_str_lists_nodes_with_shapes():
    g = gradc.trace(model, X5, W3)
    s = str(g)
    assert s.splitlines()[0] == "graph model(X: f64[n,m], w: f64[m]) -> (f64[])"
    for op in ("matmul", "tanh", "slice", "mul", "sum"):
        assert re.search(rf"%\d+ = {op} .*: f64\[", s), s
    assert "matmul X w" in s
    assert ": f64[n]" in s
    assert "return %" in s
    assert "requires m >= 1" in s              # w[0] needs at least one element
    assert "test_graph.py:" in s


def test_str_of_adjoint_graph_marks_roles():
    lo = gradc.grad(model, argnums=(0, 1)).lower(X5, W3)
    s = str(lo)
    assert "# -- adjoint --" in s
    assert "return dX=%" in s and "dw=%" in s
    roles = {d["role"] for _, d in lo.graph.nx.nodes(data=True)}
    assert {"forward", "adjoint"} <= roles
    jv = gradc.jacobian(gnp.sin).lower(W3).graph
    assert "tangent" in {d["role"] for _, d in jv.nx.nodes(data=True)}


def test_to_dot_is_valid_looking_dot():
    g = gradc.grad(model, argnums=(0, 1)).lower(X5, W3).graph
    dot = g.to_dot()
    lines = dot.splitlines()
    assert re.fullmatch(r'digraph "[\w]+" \{', lines[0])
    assert lines[-1] == "}"
    assert dot.count("{") == dot.count("}")
    declared, used = set(), set()
    for line in lines[1:-1]:
        line = line.strip()
        assert line.endswith(";"), line
        assert line.count('"') % 2 == 0, line
        m = re.fullmatch(r'(\w+) -> (\w+)( \[label="\d+"\])?;', line)
        if m:
            used |= {m.group(1), m.group(2)}
            continue
        m = re.fullmatch(r'(\w+) \[(.*)\];', line)
        if m:
            declared.add(m.group(1))
            continue
        assert re.fullmatch(r"(rankdir=TB|node \[.*\]);", line), line
    assert used <= declared, used - declared
    assert 'shape=box, label="X' in dot
    assert "#fde2c8" in dot                     # adjoint nodes shaded
    assert 'label="0"' in dot and 'label="1"' in dot


def test_symbolic_shapes_one_graph_many_sizes():
    g = gradc.trace(model, X5, W3)
    X, w = g.inputs
    assert all(isinstance(d, str) for d in g[X]["shape"])
    assert g[X]["shape"][1] == g[w]["shape"][0]        # X @ w unified the sizes
    r = np.random.default_rng(1)
    for n, m in [(5, 3), (2, 7), (11, 2), (3, 4)]:
        Xa, wa = r.standard_normal((n, m)), r.standard_normal(m)
        (out,) = evaluate(g, [Xa, wa])
        np.testing.assert_allclose(out, np.sum(np.tanh(Xa @ wa) * wa[0]), rtol=1e-13)


def test_size_one_dims_are_static():
    g = gradc.trace(lambda c, r: c * r, np.ones((3, 1)), np.ones((1, 4)))
    c, r = g.inputs
    assert g[c]["shape"][1] == 1 and g[r]["shape"][0] == 1
    assert isinstance(g[c]["shape"][0], str) and isinstance(g[r]["shape"][1], str)
    (out,) = evaluate(g, [np.ones((2, 1)), np.arange(5.0).reshape(1, 5)])
    assert out.shape == (2, 5)


def test_one_compiled_gradient_serves_many_sizes():
    f = gradc.grad(model, argnums=(0, 1))
    r = np.random.default_rng(2)
    for n in (3, 8):
        Xa = r.standard_normal((n, 3))
        dX, dw = f(Xa, W3)
        t = np.tanh(Xa @ W3)
        np.testing.assert_allclose(dX, np.outer((1 - t ** 2) * W3[0], W3), rtol=1e-12)
        want_dw = Xa.T @ ((1 - t ** 2) * W3[0]) + np.array([t.sum(), 0, 0])
        np.testing.assert_allclose(dw, want_dw, rtol=1e-12)
    assert sum(len(v) for v in f._cache.values()) == 1


def test_minimum_size_requirement_retraces_when_violated():
    j = gradc.jit(lambda x: x[1:4] * 2.0)
    lo = j.lower(np.arange(6.0))
    assert lo.graph.minimum == {"n": 4}
    for n in (6, 5, 3, 2):
        x = np.arange(float(n))
        np.testing.assert_array_equal(j(x), x[1:4] * 2.0)


def test_optimized_trace():
    g = gradc.trace(lambda x: gnp.log(1.0 + gnp.exp(x)) * 1.0, np.ones(3), optimized=True)
    assert {d["op"] for _, d in g.nx.nodes(data=True)} == {"input", "softplus"}


def test_order_is_networkx_lexicographic_topological_order():
    """Graph.order is a hand-written Kahn's algorithm; networkx's lexicographical
    topological sort is the oracle, on random DAGs whose edges also point from newer
    to older node ids (as after a rewrite redirects users to a new node)."""
    import networkx as nx
    rng = np.random.default_rng(0)
    for trial in range(50):
        n = int(rng.integers(1, 40))
        perm = rng.permutation(n)          # a random topological rank for each node id
        g = Graph("random")
        for _ in range(n):
            g.add("input", shape=(), dtype=np.float64)
        for a in range(n):
            for b in range(n):
                if perm[a] < perm[b] and rng.random() < 0.15:
                    g.nx.add_edge(a, b)
        assert g.order() == list(nx.lexicographical_topological_sort(g.nx))
    g.nx.add_edge(int(np.argmax(perm)), int(np.argmin(perm)))   # closes a cycle
    with pytest.raises(nx.NetworkXUnfeasible):
        g.order()


def test_order_and_reachable_agree_with_networkx():
    """The hand-written walks against networkx's own, on a traced gradient graph."""
    g = gradc.value_and_grad(model, argnums=1).lower(X5, W3).graph
    assert g.order() == list(nx.lexicographical_topological_sort(g.nx))
    for n in list(g.nx.nodes)[::3]:
        assert g.reachable([n]) == nx.descendants(g.nx, n) | {n}
        assert g.reachable([n], forward=False) == nx.ancestors(g.nx, n) | {n}
        assert g.users(n) == list(g.nx.successors(n))
