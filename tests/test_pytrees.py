"""Pytrees (issue 16): ``gradc.tree_util``, and every transformation taking and giving
nested dicts, lists, tuples, namedtuples and None.

Oracles: the MLP's gradients are written out by hand in numpy (``mlp_grads``);
Jacobians, Hessians and Hessian-vector products are compared with central finite
differences (``gradc_helpers``: FD_RTOL = 1e-6, justified there) or with the same
transformation applied to the flattened arguments, which the rest of the suite checks.
"""
from __future__ import annotations

import collections
import dataclasses

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
from gradc import tree_util as tu
from gradc_helpers import FD_ATOL, FD_RTOL, fd_grad

pytestmark = pytest.mark.usefixtures("core_backend")

Layer = collections.namedtuple("Layer", ["W", "b"])
rng = np.random.default_rng(16)


# ----------------------------------------------------------------------------- tree_util
def test_flatten_unflatten_round_trip_and_order():
    tree = {"b": [1.0, (2.0, None)], "a": Layer(W=3.0, b={"z": 4.0, "y": 5.0}), "c": None}
    leaves, td = tu.tree_flatten(tree)
    assert leaves == [3.0, 5.0, 4.0, 1.0, 2.0]       # dicts in sorted key order, depth first
    assert td.num_leaves == 5
    back = tu.tree_unflatten(td, leaves)
    assert back == tree and type(back["a"]) is Layer
    assert tu.tree_leaves(tree) == leaves
    assert repr(td) == "PyTreeDef({'a': Layer(W=*, b={'y': *, 'z': *}), 'b': [*, (*, None)], 'c': None})"
    with pytest.raises(ValueError, match="has 5 leaves, but 4 were given"):
        tu.tree_unflatten(td, leaves[:4])


def test_treedefs_compare_and_hash_by_structure():
    a = tu.tree_structure({"W": np.ones(3), "b": (1.0, 2.0)})
    b = tu.tree_structure({"b": (np.zeros(2), 7), "W": 0.0})     # same structure, other leaves
    c = tu.tree_structure({"W": 1.0, "b": [1.0, 2.0]})           # a list, not a tuple
    d = tu.tree_structure({"W": 1.0, "c": (1.0, 2.0)})           # another key
    assert a == b and hash(a) == hash(b)
    assert a != c and a != d
    assert len({a, b, c, d}) == 3
    assert tu.tree_structure(Layer(1, 2)) != tu.tree_structure((1, 2))
    assert tu.tree_structure(5.0).is_leaf() and tu.tree_structure(None).num_leaves == 0


def test_tree_map_several_trees_and_mismatch():
    x = {"a": np.arange(3.0), "b": [1.0, 2.0]}
    y = {"a": np.ones(3), "b": [10.0, 20.0]}
    z = tu.tree_map(lambda p, q: p * q + 1, x, y)
    np.testing.assert_array_equal(z["a"], np.arange(3.0) + 1)
    assert z["b"] == [11.0, 41.0]
    with pytest.raises(ValueError, match=r"\['b'\]"):
        tu.tree_map(lambda p, q: p, x, {"a": 1.0, "b": (1.0, 2.0)})
    assert tu.tree_map(lambda p: p, None) is None


TREES = [
    {"b": [1.0, (2.0, None)], "a": Layer(W=3.0, b={"z": 4.0, "y": 5.0}), "c": None},
    {"W1": 1.0, "b1": 2.0, 3: 4.0, ("k", 1): [5.0]},          # keys of mixed types
    [[1.0], (2.0,), Layer(3.0, None), {}],
    5.0,
    None,
]


@pytest.mark.parametrize("tree", TREES, ids=range(len(TREES)))
def test_compiled_flatten_and_unflatten_match_the_generic_walk(tree):
    """The generated code returns tree_flatten's leaves and rebuilds tree_unflatten's
    tree; any other container structure (type, length, keys, None) gives None."""
    leaves, td = tu.tree_flatten(tree)
    flatten = tu.compile_flatten([td, tu.tree_structure(7.0)])
    assert list(flatten(tree, 7.0)) == leaves + [7.0]
    unflatten = tu.compile_unflatten(td)
    assert unflatten(["extra"] + leaves) == tu.tree_unflatten(td, leaves)   # the last n leaves
    assert flatten(tree) is None and flatten(tree, 7.0, 8.0) is None        # argument count
    others = [{"b": [1.0, (2.0, None)], "a": Layer(W=3.0, b={"z": 4.0, "x": 5.0}), "c": None},   # a key
              {"b": [1.0, [2.0, None]], "a": Layer(W=3.0, b={"z": 4.0, "y": 5.0}), "c": None},   # list for tuple
              {"b": [1.0, (2.0, 0.0)], "a": Layer(W=3.0, b={"z": 4.0, "y": 5.0}), "c": None},    # None filled
              [[1.0], (2.0,), Layer(3.0, None), {"k": 1.0}], [[1.0], (2.0,), (3.0, None), {}],
              [[1.0, 2.0], (2.0,), Layer(3.0, None), {}], {"W1": 1.0, "b1": 2.0, 3: 4.0, ("k", 2): [5.0]}]
    for other in others:       # (a leaf's place takes anything: the caller checks leaves)
        if tu.tree_structure(other) != td and not td.is_leaf():
            assert flatten(other, 7.0) is None, other


def test_compiled_flatten_takes_literals_as_leaves():
    """With is_leaf, a list that is_leaf accepts is a leaf: where the treedef has a
    list node the structure differs."""
    td = tu.tree_structure([np.ones(()), np.ones(())])
    lit = lambda x: type(x) is list and all(isinstance(e, float) for e in x)   # noqa: E731
    flatten = tu.compile_flatten([td], is_leaf=lit)
    assert flatten([1.0, 2.0]) is None
    a, b = np.ones(()), np.zeros(())
    assert flatten([a, b]) == (a, b)


def test_registered_node_and_paths():
    class Pair:
        def __init__(self, left, right):
            self.left, self.right = left, right
    tu.register_pytree_node(Pair, lambda p: ((p.left, p.right), "pair"), lambda aux, c: Pair(*c))
    leaves, td = tu.tree_flatten({"p": Pair(1.0, [2.0, 3.0])})
    assert leaves == [1.0, 2.0, 3.0]
    back = tu.tree_unflatten(td, [4.0, 5.0, 6.0])
    assert isinstance(back["p"], Pair) and back["p"].right == [5.0, 6.0]
    paths = [p for p, _ in tu.tree_flatten_with_path({"W": 1.0, "L": [Layer(2.0, 3.0)]})[0]]
    assert paths == [("L", 0, "W"), ("L", 0, "b"), ("W",)]


# ----------------------------------------------------------------------------- an MLP over a dict
def mlp_loss(params, X, y):
    h = gnp.tanh(X @ params["W1"] + params["b1"])
    out = h @ params["W2"] + params["b2"]
    return gnp.mean((out - y) ** 2)


def mlp_grads(params, X, y):
    """The same loss's gradient, the backward pass written by hand in numpy."""
    z = X @ params["W1"] + params["b1"]
    h = np.tanh(z)
    out = h @ params["W2"] + params["b2"]
    d_out = 2 * (out - y) / y.size
    dh = np.outer(d_out, params["W2"]) if d_out.ndim == 1 else d_out @ params["W2"].T
    dz = dh * (1 - h ** 2)
    return {"W1": X.T @ dz, "b1": dz.sum(0), "W2": h.T @ d_out, "b2": d_out.sum(0)}


def mlp_params(n_in, hidden, dtype=np.float64):
    return {"W1": (rng.standard_normal((n_in, hidden)) / np.sqrt(n_in)).astype(dtype),
            "b1": (rng.standard_normal(hidden) * 0.1).astype(dtype),
            "W2": (rng.standard_normal(hidden) / np.sqrt(hidden)).astype(dtype),
            "b2": np.asarray(0.3, dtype)}


@pytest.mark.parametrize("n,n_in,hidden,dtype", [(20, 3, 4, np.float64), (2000, 64, 160, np.float64),
                                                 (2000, 64, 160, np.float32)])
def test_grad_of_dict_comes_back_as_dict(n, n_in, hidden, dtype):
    """The large case (X of 128k elements, h of 320k) splits nests over threads."""
    params = mlp_params(n_in, hidden, dtype)
    X = rng.standard_normal((n, n_in)).astype(dtype)
    y = rng.standard_normal(n).astype(dtype)
    g = gradc.grad(mlp_loss)(params, X, y)
    assert isinstance(g, dict) and sorted(g) == ["W1", "W2", "b1", "b2"]
    want = mlp_grads({k: v.astype(np.float64) for k, v in params.items()}, X.astype(np.float64),
                     y.astype(np.float64))
    # float32: ~2000-term sums of O(1) products, relative error ~ sqrt(n) eps32 ~ 1e-5
    tol = 1e-10 if dtype == np.float64 else 2e-4
    for k in g:
        assert g[k].dtype == dtype and g[k].shape == params[k].shape
        np.testing.assert_allclose(g[k], want[k], rtol=tol, atol=tol * np.abs(want[k]).max())


def test_value_and_grad_of_several_trees_and_nesting():
    layers = [Layer(rng.standard_normal((3, 4)), rng.standard_normal(4)),
              Layer(rng.standard_normal((4, 2)), None)]          # no bias: None holds no leaf
    scale = {"s": 0.5}
    X = rng.standard_normal((5, 3))

    def f(layers, X, scale):
        h = X
        for layer in layers:
            h = gnp.tanh(h @ layer.W + (0.0 if layer.b is None else layer.b))
        return scale["s"] * gnp.sum(h ** 2)

    v, (g_layers, g_scale) = gradc.value_and_grad(f, argnums=(0, 2))(layers, X, scale)
    assert type(g_layers) is list and type(g_layers[0]) is Layer and g_layers[1].b is None
    assert isinstance(g_scale, dict) and g_scale.keys() == {"s"}

    def np_f(W0, b0, W1, s):
        return s * np.sum(np.tanh(np.tanh(X @ W0 + b0) @ W1) ** 2)
    args = [layers[0].W, layers[0].b, layers[1].W, 0.5]
    np.testing.assert_allclose(v, np_f(*args), rtol=1e-12)
    for got, i in ((g_layers[0].W, 0), (g_layers[0].b, 1), (g_layers[1].W, 2), (g_scale["s"], 3)):
        np.testing.assert_allclose(got, fd_grad(np_f, args, i), rtol=FD_RTOL, atol=FD_ATOL)


def test_compiles_once_per_structure(monkeypatch):
    import gradc.api as api
    compiles = []
    real = api._compile
    monkeypatch.setattr(api, "_compile", lambda g, *a, **k: compiles.append(g) or real(g, *a, **k))
    f = gradc.grad(mlp_loss)
    X, y = rng.standard_normal((6, 3)), rng.standard_normal(6)
    p = mlp_params(3, 4)
    f(p, X, y)
    f({k: v + 1 for k, v in p.items()}, X, y)                 # same structure and leaf signature
    f(p, rng.standard_normal((9, 3)), rng.standard_normal(9))  # other sizes: symbolic, no retrace
    assert len(compiles) == 1

    def g(params, X, y):          # the same model with one more (unused) parameter
        return mlp_loss(params, X, y)
    p2 = dict(p, extra=np.ones(2))
    f2 = gradc.grad(g)
    f2(p, X, y)
    f2(p2, X, y)                                              # another structure: compiles again
    assert len(compiles) == 3
    f2(p, X, y), f2(p2, X, y)
    assert len(compiles) == 3
    np.testing.assert_array_equal(f2(p2, X, y)["extra"], np.zeros(2))


def test_keys_name_the_graph_inputs():
    low = gradc.grad(mlp_loss).lower(mlp_params(3, 4), np.ones((5, 3)), np.ones(5))
    names = [low.graph[i]["name"] for i in low.graph.inputs]
    assert names == ["params_W1", "params_W2", "params_b1", "params_b2", "X", "y"]


def test_array_literals_are_arrays_other_lists_are_trees():
    f = gradc.jit(lambda x: x * 2.0)
    np.testing.assert_array_equal(f([1.0, 2.0]), [2.0, 4.0])           # numpy reads it as a vector
    np.testing.assert_array_equal(f([[1, 2], [3, 4]]), [[2.0, 4.0], [6.0, 8.0]])
    out = gradc.jit(lambda xs: [x * 2.0 for x in xs])([np.ones(2), np.ones(3)])
    assert type(out) is list and [o.shape for o in out] == [(2,), (3,)]
    g = gradc.grad(lambda xs: gnp.sum(xs[0] ** 2) + gnp.sum(xs[1]))([np.ones(2), np.ones(3)])
    assert type(g) is list
    np.testing.assert_array_equal(g[0], [2.0, 2.0])
    np.testing.assert_array_equal(g[1], np.ones(3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ragged_list_of_parameters_is_a_pytree(dtype):
    """[W (3,4), b (4,)]: numpy cannot stack it, so it is a list of two leaves; its
    gradient comes back as a list, checked against central finite differences."""
    W = rng.standard_normal((3, 4)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    X = rng.standard_normal((5, 3)).astype(dtype)

    def loss(params, X):
        W, b = params
        return gnp.sum(gnp.tanh(X @ W + b) ** 2)
    g = gradc.grad(loss)([W, b], X)
    assert type(g) is list and [x.dtype for x in g] == [dtype, dtype]
    np_f = lambda W, b: np.sum(np.tanh(X.astype(np.float64) @ W + b) ** 2)   # noqa: E731
    args = [W.astype(np.float64), b.astype(np.float64)]
    # float32: sums of 5 O(1) terms computed in float32, relative error ~ 10 eps32
    tol = (FD_RTOL, FD_ATOL) if dtype == np.float64 else (2e-5, 2e-5)
    for k in range(2):
        np.testing.assert_allclose(g[k], fd_grad(np_f, args, k), rtol=tol[0], atol=tol[1])


def test_ragged_literal_teaches_pytrees():
    """A ragged nested list of numbers is data numpy cannot read as one array: the
    error names the argument's leaf, the shapes that disagree, the remedy and the
    caller's line."""
    f = gradc.grad(lambda d: gnp.sum(d["x"]))
    with pytest.raises(gradc.ArgumentError,
                       match=r"argument 0 \(d\['x'\]\) is a list whose elements have different shapes "
                             r"\(d\['x'\]\[0\]: \(2,\), d\['x'\]\[1\]: \(1,\)\).*numpy cannot stack.*"
                             r"Expected an array.*pass them as a pytree.*test_pytrees.py:\d+"):
        f({"x": [[1.0, 2.0], [3.0]]})
    with pytest.raises(gradc.ArgumentError, match=r"x\[1\]\[0\]: \(2,\), x\[1\]\[1\]: \(\)"):
        gradc.jit(lambda x: x)([[1.0, 2.0], [[1.0, 2.0], 3.0]])     # the first ragged place, nested


def test_list_of_parameters_used_as_one_array_teaches_pytrees():
    """Inside the model, a ragged list of traced arrays given to a numpy function (which
    would stack it) is a ShapeError naming the shapes and the model's line; a list of
    equal shapes still stacks (checked against numpy)."""
    def loss(params):
        return gnp.sum(gnp.asarray(params) ** 2)
    with pytest.raises(gradc.ShapeError, match=r"list of arrays of different shapes \(\[0\] f64\[3,4\], "
                                                r"\[1\] f64\[4\]\).*numpy cannot stack.*pytree.*"
                                                r"W, b = params.*test_pytrees.py:\d+"):
        gradc.grad(loss)([np.ones((3, 4)), np.ones(4)])
    a, b = rng.standard_normal(3), rng.standard_normal(3)
    g = gradc.grad(loss)([a, b])
    np.testing.assert_allclose(g[0], 2 * a, rtol=1e-15)
    np.testing.assert_allclose(g[1], 2 * b, rtol=1e-15)


def test_bad_leaf_is_named_by_its_path():
    with pytest.raises(gradc.ArgumentError, match=r"argument 0 \(params\['b'\]\[1\]\) is a str"):
        gradc.grad(lambda params: gnp.sum(params["W"]))({"W": np.ones(2), "b": [1.0, "x"]})
    with pytest.raises(gradc.ArgumentError, match=r"params\['k'\]\) is differentiated.*int64"):
        gradc.grad(lambda params: gnp.sum(params["W"]))({"W": np.ones(2), "k": np.arange(2)})


# ----------------------------------------------------------------------------- every transformation
def test_jit_returns_trees():
    p = {"a": np.arange(3.0), "b": (np.ones(2), None)}
    out = gradc.jit(lambda p: {"sum": gnp.sum(p["a"]), "pair": [p["b"][0] * 2.0, p["a"] + 1.0]})(p)
    assert out.keys() == {"sum", "pair"} and type(out["pair"]) is list
    assert out["sum"] == 3.0
    np.testing.assert_array_equal(out["pair"][1], np.arange(3.0) + 1)


def test_jvp_and_vjp_over_trees():
    p = {"x": rng.standard_normal(3), "y": rng.standard_normal(3)}
    t = {"x": rng.standard_normal(3), "y": rng.standard_normal(3)}

    def f(p):
        return {"prod": p["x"] * p["y"], "s": gnp.sum(gnp.sin(p["x"]))}
    val, tan = gradc.jvp(f, (p,), (t,))
    np.testing.assert_allclose(val["prod"], p["x"] * p["y"], rtol=1e-12)
    np.testing.assert_allclose(tan["prod"], t["x"] * p["y"] + p["x"] * t["y"], rtol=1e-12)
    np.testing.assert_allclose(tan["s"], np.cos(p["x"]) @ t["x"], rtol=1e-12)
    with pytest.raises(gradc.ArgumentError, match="tangents' structure"):
        gradc.jvp(f, (p,), ({"x": t["x"]},))

    out, vjp_fn = gradc.vjp(f, p)
    ct = {"prod": rng.standard_normal(3), "s": 0.7}
    (gp,) = vjp_fn(ct)
    np.testing.assert_allclose(gp["x"], ct["prod"] * p["y"] + 0.7 * np.cos(p["x"]), rtol=1e-12)
    np.testing.assert_allclose(gp["y"], ct["prod"] * p["x"], rtol=1e-12)
    with pytest.raises(gradc.ArgumentError, match="cotangent's structure"):
        vjp_fn({"prod": ct["prod"]})


def test_jacobian_and_hessian_of_trees():
    p = {"a": rng.standard_normal(3), "b": rng.standard_normal(2)}

    def f(p):
        return gnp.sum(p["a"] ** 2) * gnp.sum(gnp.sin(p["b"]))

    def np_f(a, b):
        return np.sum(a ** 2) * np.sum(np.sin(b))
    J = gradc.jacobian(lambda p: {"v": p["a"] * gnp.sum(p["b"])})(p)
    np.testing.assert_allclose(J["v"]["a"], np.eye(3) * p["b"].sum(), rtol=1e-12)
    np.testing.assert_allclose(J["v"]["b"], np.outer(p["a"], np.ones(2)), rtol=1e-12)
    H = gradc.hessian(f)(p)
    assert H.keys() == {"a", "b"} and H["a"].keys() == {"a", "b"}
    assert H["a"]["b"].shape == (3, 2) and H["b"]["a"].shape == (2, 3)
    # each block against finite differences of the hand-derived gradient
    ga = lambda a, b: 2 * a * np.sum(np.sin(b))           # noqa: E731
    gb = lambda a, b: np.sum(a ** 2) * np.cos(b)          # noqa: E731
    for row, gfun in (("a", ga), ("b", gb)):
        for col, i in (("a", 0), ("b", 1)):
            for k in range(p[row].size):
                fd = fd_grad(lambda a, b, gfun=gfun, k=k: gfun(a, b)[k], [p["a"], p["b"]], i)
                np.testing.assert_allclose(H[row][col][k], fd, rtol=FD_RTOL, atol=FD_ATOL)


def test_hvp_takes_argnums_and_trees():
    p = {"a": rng.standard_normal(3), "b": rng.standard_normal(2)}
    X = rng.standard_normal(4)
    v = {"a": rng.standard_normal(3), "b": rng.standard_normal(2)}

    def f(p, X):
        return gnp.sum(p["a"] ** 3) * gnp.sum(gnp.exp(p["b"])) + gnp.sum(X ** 4) * gnp.sum(p["a"])
    Hv = gradc.hvp(f, (p, X), (v,), argnums=0)
    H = gradc.hessian(f)(p, X)
    for row in "ab":
        want = sum(H[row][col] @ v[col] for col in "ab")
        np.testing.assert_allclose(Hv[row], want, rtol=1e-10)
    # argnums=1 differentiates X only: d²f/dX² = diag(12 X²) Σa
    Hx = gradc.hvp(f, (p, X), (np.ones(4),), argnums=1)
    np.testing.assert_allclose(Hx, 12 * X ** 2 * p["a"].sum(), rtol=1e-10)
    # a tuple of argnums gives a tuple, as grad does
    both = gradc.hvp(f, (p, X), (v, np.ones(4)), argnums=(0, 1))
    assert isinstance(both, tuple) and len(both) == 2
    with pytest.raises(gradc.ArgumentError, match="1 tangents for 2 differentiated"):
        gradc.hvp(f, (p, X), (v,), argnums=(0, 1))


def test_trees_inside_traced_transformations():
    """jit(grad(f)) over a dict traces the grad inside the jit; grad of a function that
    calls grad on a tree (the inner trace takes traced leaves)."""
    p = mlp_params(3, 4)
    X, y = rng.standard_normal((6, 3)), rng.standard_normal(6)
    inner = gradc.grad(mlp_loss)
    step = gradc.jit(lambda p, X, y: gradc.tree_util.tree_map(lambda w, g: w - 0.1 * g, p, inner(p, X, y)))
    new = step(p, X, y)
    want = mlp_grads(p, X, y)
    for k in p:
        np.testing.assert_allclose(new[k], p[k] - 0.1 * want[k], rtol=1e-10, atol=1e-12)

    def sq_norm_of_grad(p):
        g = inner(p, X, y)
        return sum(gnp.sum(v ** 2) for v in gradc.tree_util.tree_leaves(g))
    gg = gradc.grad(sq_norm_of_grad)(p)

    def np_sq(W1, b1, W2, b2):
        g = mlp_grads({"W1": W1, "b1": b1, "W2": W2, "b2": b2}, X, y)
        return sum(np.sum(v ** 2) for v in g.values())
    args = [p["W1"], p["b1"], p["W2"], p["b2"]]
    for i, k in enumerate(["W1", "b1", "W2", "b2"]):
        np.testing.assert_allclose(gg[k], fd_grad(np_sq, args, i), rtol=FD_RTOL, atol=FD_ATOL)


def test_explain_differentiates_every_leaf_of_a_tree_argument():
    def loss(p, X, y):
        return gnp.mean((X @ p["w"] + p["b"] - y) ** 2)
    text = str(gradc.explain(loss, {"w": np.ones(3), "b": 0.5}, np.ones((4, 3)), np.ones(4)))
    assert "dC/dp_b = 2/N · Σ_i (p_w·x_i + p_b − y_i)" in text
    assert "dC/dp_w = 2/N · Σ_i (p_w·x_i + p_b − y_i) x_iᵀ" in text


def test_c_call_path_serves_trees_and_falls_back(core_backend):
    """After a call with trees, later calls of the same structure take the C call path
    (flatten, check the structure, run the plan); any other structure falls back to
    the Python path, which compiles or reuses the right signature."""
    f = gradc.value_and_grad(mlp_loss)
    p = mlp_params(3, 4)
    X, y = rng.standard_normal((6, 3)), rng.standard_normal(6)
    v, g = f(p, X, y)
    if core_backend == "llvm":
        assert type(f._fast).__name__ == "_TreePlan"
    v2, g2 = f(p, X, y)                                    # the C path when installed
    assert v2 == v and g2.keys() == g.keys()
    for k in g:
        np.testing.assert_array_equal(g2[k], g[k])
    want = mlp_grads(p, X, y)
    q = dict(p, extra=np.ones(2))                          # another structure: the slow path
    _, gq = gradc.value_and_grad(lambda p, X, y: mlp_loss(p, X, y) + gnp.sum(p["extra"]))(q, X, y)
    np.testing.assert_array_equal(gq["extra"], np.ones(2))
    for bad, err in (({"W1": p["W1"]}, KeyError), ([p["W1"], p["b1"], p["W2"], p["b2"]], TypeError)):
        with pytest.raises(err):
            f(bad, X, y)                       # the model indexes what it got, as Python would
    _, g3 = f(p, X, y)
    for k in g:
        np.testing.assert_allclose(g3[k], want[k], rtol=1e-10, atol=1e-13)
    # a tuple of 0-d arrays is a tree of two leaves; a tuple of numbers is one vector
    h = gradc.grad(lambda t: gnp.sum(gnp.stack([t[0], t[1]]) ** 2))
    two = h((np.array(1.0), np.array(2.0)))
    assert type(two) is tuple and two == (2.0, 4.0)
    one = h((1.0, 2.0))
    np.testing.assert_array_equal(one, [2.0, 4.0])
    assert type(h((np.array(1.0), np.array(3.0)))) is tuple


def test_c_call_path_for_trees_checks_every_leaf(core_backend):
    """Once the pytree fast path is installed, every bad or different call still gets
    the slow path's answer (numpy's oracle or a GradcError), never a crash or a wrong
    result: a leaf of another dtype, rank, size or layout, a list where an array was,
    a ragged literal, a missing key."""
    def loss(p, X):
        return gnp.sum(gnp.tanh(X @ p["W"] + p["b"]) ** 2)

    def want(p, X):
        t = np.tanh(X @ p["W"] + p["b"])
        d = 2 * t * (1 - t ** 2)
        return {"W": X.T @ d, "b": d.sum(0)}
    f = gradc.grad(loss)
    p = {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    X = rng.standard_normal((5, 3))
    f(p, X)
    f(p, X)

    def check(p, X):
        g = f(p, X)
        ref = want({k: np.asarray(v, np.float64) for k, v in p.items()}, np.asarray(X, np.float64))
        for k in ref:     # float64 sums as numpy's up to order; a float32 leaf's gradient
            # is the float64 one rounded once (half an ulp: 6e-8)
            tol = 1.2e-7 if g[k].dtype == np.float32 else 1e-12
            np.testing.assert_allclose(g[k], ref[k], rtol=tol, atol=tol)
    check(p, rng.standard_normal((50, 3)))                          # another size: served
    check({"W": np.asfortranarray(rng.standard_normal((3, 4))), "b": p["b"]}, X)   # layout
    check({"W": rng.standard_normal((6, 8))[::2, ::2], "b": p["b"]}, X)            # a strided view
    check({"W": p["W"].astype(np.float32), "b": p["b"]}, X)         # another dtype: retraced
    check({"W": p["W"], "b": list(p["b"])}, X)                     # a literal leaf
    with pytest.raises(gradc.ArgumentError, match=r"argument 0 \(p\['W'\]\) is differentiated.*int64"):
        f({"W": np.ones((3, 4), np.int64), "b": p["b"]}, X)
    with pytest.raises(gradc.ArgumentError, match=r"p\['b'\]\) is a list whose elements have different shapes"):
        f({"W": p["W"], "b": [[1.0], [1.0, 2.0]]}, X)
    with pytest.raises(gradc.ArgumentError, match=r"'X' has size 3 on axis 1, but argument 'p\['W'\]' has size 5"):
        f({"W": rng.standard_normal((5, 4)), "b": p["b"]}, X)
    with pytest.raises(KeyError):
        f({"W": p["W"], "c": p["b"]}, X)
    with pytest.raises(gradc.ShapeError):                           # b of rank 2 broadcasts to (5, 5, 4)?
        f({"W": p["W"], "b": np.ones((2, 4))}, X)
    check(p, X)                                                      # and back on the fast path


def test_mixed_dtype_leaves_keep_their_dtypes():
    """A float32 weight and a float64 bias in one dict: the model computes in float64
    (numpy's promotion) and each gradient comes back in its leaf's dtype."""
    p = {"W": rng.standard_normal((3, 2)).astype(np.float32), "b": rng.standard_normal(2)}
    X = rng.standard_normal((4, 3)).astype(np.float32)
    g = gradc.grad(lambda p, X: gnp.sum(gnp.tanh(X @ p["W"] + p["b"]) ** 2))(p, X)
    assert g["W"].dtype == np.float32 and g["b"].dtype == np.float64
    W64 = p["W"].astype(np.float64)
    np_f = lambda W, b: np.sum(np.tanh(X.astype(np.float64) @ W + b) ** 2)   # noqa: E731
    # W's gradient is computed in float64 and rounded once to float32: 1 ulp of float32
    np.testing.assert_allclose(g["W"], fd_grad(np_f, [W64, p["b"]], 0), rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(g["b"], fd_grad(np_f, [W64, p["b"]], 1), rtol=FD_RTOL, atol=FD_ATOL)


def test_broadcast_prefix_gives_each_leaf_its_prefix_value():
    from gradc.tree_util import broadcast_prefix
    tree = ({"W": 1, "b": 2}, [3, (4, 5)], 6)
    assert broadcast_prefix((0, None, 1), tree) == [0, 0, None, None, None, 1]
    assert broadcast_prefix(({"W": None, "b": 0}, [1, 2], 3), tree) == [None, 0, 1, 2, 2, 3]
    with pytest.raises(ValueError, match="differ|has"):
        broadcast_prefix(({"W": 0}, 1, 2), tree)


# ----------------------------------------------------------------------------- JAX's registration API
@tu.register_dataclass
@dataclasses.dataclass
class DenseLayer:
    """A layer as flax/equinox users write one: arrays, and a static activation name."""
    W: np.ndarray
    b: np.ndarray
    act: str = dataclasses.field(default="tanh", metadata={"static": True})


def _dense_loss(layer, X, y):
    z = X @ layer.W + layer.b
    h = gnp.tanh(z) if layer.act == "tanh" else gnp.relu(z)
    return gnp.mean((h - y) ** 2)


@pytest.mark.parametrize("act", ["tanh", "relu"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_registered_dataclass_is_a_pytree_with_static_fields(act, dtype):
    """Data fields are differentiated, the static field selects the code (another value
    compiles again) and comes back unchanged; against the gradient written by hand."""
    X = rng.standard_normal((700, 33)).astype(dtype)
    y = rng.standard_normal((700, 5)).astype(dtype)
    layer = DenseLayer((rng.standard_normal((33, 5)) / 6).astype(dtype), np.full(5, 0.1, dtype), act)
    val, g = gradc.value_and_grad(_dense_loss)(layer, X, y)
    assert isinstance(g, DenseLayer) and g.act == act
    z = X.astype(np.float64) @ layer.W + layer.b
    h = np.tanh(z) if act == "tanh" else np.maximum(z, 0)
    dz = 2 * (h - y) / y.size * ((1 - h * h) if act == "tanh" else (z > 0))
    tol = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(val, np.mean((h - y) ** 2), rtol=tol)
    np.testing.assert_allclose(g.W, X.T.astype(np.float64) @ dz, rtol=tol, atol=tol * np.abs(X.T @ dz).max())
    np.testing.assert_allclose(g.b, dz.sum(0), rtol=tol, atol=tol * np.abs(dz.sum(0)).max())
    assert g.W.dtype == dtype
    leaves, td = tu.tree_flatten(layer)
    assert len(leaves) == 2 and td != tu.tree_structure(DenseLayer(layer.W, layer.b, "other"))
    assert [p for p, _ in tu.tree_leaves_with_path({"l": layer})] == [("l", "W"), ("l", "b")]


def test_register_dataclass_with_explicit_fields_and_node_class():
    @dataclasses.dataclass(frozen=True)
    class Affine:
        scale: object
        shift: object
        name: str
    tu.register_dataclass(Affine, data_fields=["scale", "shift"], meta_fields=["name"])

    @tu.register_pytree_node_class
    class Scaled:
        def __init__(self, x, k):
            self.x, self.k = x, k

        def tree_flatten(self):
            return (self.x,), self.k

        @classmethod
        def tree_unflatten(cls, k, children):
            return cls(children[0], k)

    x = rng.standard_normal(50)
    f = lambda a, s: gnp.sum(gnp.sin(a.scale * s.x * s.k + a.shift))  # noqa: E731
    ga, gs = gradc.grad(f, argnums=(0, 1))(Affine(1.5, 0.2, "a"), Scaled(x, 3.0))
    c = np.cos(1.5 * x * 3.0 + 0.2)
    np.testing.assert_allclose(ga.scale, np.sum(c * x * 3.0), rtol=1e-12)
    np.testing.assert_allclose(ga.shift, np.sum(c), rtol=1e-12)
    assert ga.name == "a" and gs.k == 3.0
    np.testing.assert_allclose(gs.x, c * 1.5 * 3.0, rtol=1e-12)
    with pytest.raises(ValueError, match="neither"):
        tu.register_dataclass(dataclasses.make_dataclass("P", ["a", "b"]), data_fields=["a"], meta_fields=[])


def test_ordered_dict_and_defaultdict_are_nodes():
    od = collections.OrderedDict([("z", 1.0), ("a", 2.0)])
    assert tu.tree_leaves(od) == [1.0, 2.0]                 # insertion order, not sorted
    dd = collections.defaultdict(list, {"z": 1.0, "a": 2.0})
    back = tu.tree_map(lambda v: v * 10, dd)
    assert isinstance(back, collections.defaultdict) and back.default_factory is list and back == {"z": 10.0, "a": 20.0}
    g = gradc.grad(lambda p: p["z"] ** 2 * p["a"])(collections.OrderedDict([("z", 3.0), ("a", 2.0)]))
    assert isinstance(g, collections.OrderedDict) and list(g) == ["z", "a"]
    np.testing.assert_allclose([g["z"], g["a"]], [12.0, 9.0])


def test_tree_reduce_all_and_map_with_path():
    t = {"b": [1.0, 2.0], "a": 3.0}
    assert tu.tree_reduce(lambda x, y: x + y, t) == 6.0
    assert tu.tree_reduce(lambda x, y: x + y, t, 10.0) == 16.0
    assert tu.tree_all({"a": True, "b": [1, 2]}) and not tu.tree_all([1, 0])
    out = tu.tree_map_with_path(lambda p, x, y: (tu.keystr(p), x + y), t, {"b": [10.0, 20.0], "a": 30.0})
    assert out == {"a": ("['a']", 33.0), "b": [("['b'][0]", 11.0), ("['b'][1]", 22.0)]}


def test_unregistered_dataclass_is_refused_with_a_hint():
    @dataclasses.dataclass
    class Loose:
        w: np.ndarray
    with pytest.raises(gradc.ArgumentError, match="register_dataclass"):
        gradc.grad(lambda p: gnp.sum(p.w))(Loose(np.ones(3)))


def test_tree_util_matches_jax_where_installed():
    jtu = pytest.importorskip("jax.tree_util")
    t = {"x": collections.OrderedDict([("q", 1.0), ("p", (2.0, None))]), "a": [3.0, {"k": 4.0}]}
    assert tu.tree_leaves(t) == jtu.tree_leaves(t)
    assert [tu.keystr(p) for p, _ in tu.tree_leaves_with_path(t)] == \
        [jtu.keystr(p) for p, _ in jtu.tree_leaves_with_path(t)]


@pytest.mark.parametrize("n", [2, True, np.int32(2), np.int64(2), np.float32(2.0), np.float64(2.0), 2.0])
@pytest.mark.parametrize("x", [np.arange(5, dtype=np.int32), np.arange(5, dtype=np.uint8),
                               np.ones(5, np.float32), np.ones(5)])
def test_scalar_arguments_promote_as_numpy(x, n):
    """Python numbers are weak (they take the arrays' type), numpy's integer scalars keep
    their dtype, as numpy 2's promotion says (NEP 50): the result's dtype and value are
    numpy's; each function is called twice (the second call takes the C call path)."""
    want = x * n
    if isinstance(n, np.floating) and x.dtype == np.float32:
        want = x * float(n)          # numpy's float scalars are weak in gradc (docs/pytrees.md)
    got = gradc.jit(lambda x, n: x * n)(x, n)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    np.testing.assert_array_equal(got, want)
    f = gradc.jit(lambda x, n: x * n)
    for m in (n, 3, n):
        got, want_m = f(x, m), (x * float(m) if isinstance(m, np.floating) and x.dtype == np.float32 else x * m)
        assert got.dtype == want_m.dtype, (m, got.dtype, want_m.dtype)
        np.testing.assert_array_equal(got, want_m)


def test_a_python_int_alone_is_an_integer():
    got = gradc.jit(lambda n: n // 2)(7)
    assert got == 3 and got.dtype == np.int64
    assert gradc.grad(lambda a: a * a)(3) == 6.0          # differentiated: the float dtype
