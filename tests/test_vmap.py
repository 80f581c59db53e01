"""gradc.vmap: every line of the op table mapped over a batch of examples, checked
against the line's numpy reference applied example by example; per-example gradients
(vmap of grad) against gradc's gradient of each example (itself checked against finite
differences in test_ops.py); gradients of a vmapped function; in_axes, out_axes,
pytrees, nesting and errors as jax.vmap has them; and per-example gradients of a model
at a size that splits over threads, against finite differences."""
from __future__ import annotations

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
from gradc.ops import OPS

from gradc_helpers import rng
from test_ops import CASE_IDS, CASES, FLOAT_CASES, _args, _closed

pytestmark = pytest.mark.usefixtures("core_backend")

N = 3          # examples per batch in the table's lines


def _examples(c, n=N):
    """n argument lists of the line, different values of the same shapes."""
    return [_args(c, seed=100 * k) for k in range(n)]


def _stack(examples, i):
    return np.stack([np.asarray(e[i]) for e in examples])


def _close(got, want, c):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{c.id}: shape {got.shape} != {want.shape}"
    if want.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=c.id)
    else:
        np.testing.assert_array_equal(got, want, err_msg=c.id)


def test_every_op_has_a_batching_rule():
    missing = sorted(k for k, op in OPS.items() if op.batch is None and op.kind != "source")
    assert not missing, f"ops vmap cannot batch: {missing}"


@pytest.fixture(autouse=True)
def _lapack_where_lapack_runs(request):
    spec = getattr(request.node, "callspec", None)
    c = spec.params.get("c") if spec is not None else None
    if c is not None and "lapack" in OPS[c.op].extra:
        if spec.params.get("core_backend") == "c":
            pytest.skip("backend='c' refuses linalg's LAPACK ops")
        if spec.params.get("core_backend") == "llvm":
            from lapack_support import native_lapack_or_skip
            native_lapack_or_skip()


@pytest.mark.parametrize("c", CASES, ids=CASE_IDS)
def test_line_mapped_over_a_batch(c):
    """Every argument mapped, then each argument alone mapped (the others shared by
    every example: a weight beside a batch of inputs)."""
    ex = _examples(c)
    k = len(ex[0])
    got = gradc.vmap(c.fn)(*[_stack(ex, i) for i in range(k)])
    _close(got, np.stack([np.asarray(c.ref(*e)) for e in ex]), c)
    if k < 2:
        return
    for i in range(k):
        mixed = [ex[0][j] for j in range(k)]
        mixed[i] = _stack(ex, i)
        in_axes = tuple(0 if j == i else None for j in range(k))
        got = gradc.vmap(c.fn, in_axes=in_axes)(*mixed)
        want = np.stack([np.asarray(c.ref(*[e[i] if j == i else ex[0][j] for j in range(k)])) for e in ex])
        _close(got, want, c)


def _weighted(c, args, diff):
    """The line made scalar, sum(fn * v) for a fixed v, as a function of its
    differentiated arguments."""
    out = np.asarray(c.ref(*args))
    v = rng(7).standard_normal(out.shape)
    f = _closed(c, args, diff)
    return lambda *d: gnp.sum(f(*d) * v)


@pytest.mark.parametrize("c", FLOAT_CASES, ids=lambda c: c.id)
def test_per_example_gradients(c):
    """vmap(grad(f)): the adjoint graph's ops batched."""
    ex = _examples(c)
    diff = c.diff_idx(ex[0])

    def per_example(*d):         # the non-differentiated arguments: the first example's
        return _weighted(c, ex[0], diff)(*d)
    argnums = tuple(range(len(diff)))
    got = gradc.vmap(gradc.grad(per_example, argnums=argnums))(*[_stack(ex, i) for i in diff])
    one = gradc.grad(per_example, argnums=argnums, backend="numpy")
    want = [one(*[e[i] for i in diff]) for e in ex]
    for a in argnums:
        _close(got[a], np.stack([w[a] for w in want]), c)


@pytest.mark.parametrize("c", FLOAT_CASES, ids=lambda c: c.id)
def test_gradient_of_a_mapped_line(c):
    """grad(sum(vmap(f) * V)): the batched graph differentiated; example k's gradient is
    the gradient of sum(f * V[k]) at its arguments."""
    ex = _examples(c)
    diff = c.diff_idx(ex[0])
    out = np.asarray(c.ref(*ex[0]))
    V = rng(11).standard_normal((N,) + out.shape)
    rest = [ex[0][j] for j in range(len(ex[0]))]

    def batched_loss(*d):
        full = list(rest)
        for i, v in zip(diff, d):
            full[i] = v
        in_axes = tuple(0 if j in diff else None for j in range(len(full)))
        return gnp.sum(gradc.vmap(c.fn, in_axes=in_axes)(*full) * V)
    argnums = tuple(range(len(diff)))
    got = gradc.grad(batched_loss, argnums=argnums)(*[_stack(ex, i) for i in diff])
    for k, e in enumerate(ex):
        args = [e[i] if i in diff else rest[i] for i in range(len(rest))]
        f = _closed(c, args, diff)
        # the reference on the numpy evaluator: one native compile per line, not per example
        want = gradc.grad(lambda *d: gnp.sum(f(*d) * V[k]), argnums=argnums, backend="numpy")(
            *[args[i] for i in diff])
        for a in argnums:
            np.testing.assert_allclose(got[a][k], want[a], rtol=1e-12, atol=1e-12, err_msg=c.id)


# ----------------------------------------------------------------------------- the API, as jax.vmap's
def test_in_axes_moves_the_mapped_axis_and_out_axes_places_it():
    r = rng(1)
    X = r.standard_normal((4, 5, 3))            # mapped over its axis 1: 5 examples of (4, 3)
    w = r.standard_normal(3)
    f = gradc.vmap(lambda x, w: gnp.tanh(x @ w), in_axes=(1, None), out_axes=1)
    got = f(X, w)
    want = np.stack([np.tanh(X[:, k] @ w) for k in range(5)], axis=1)
    assert got.shape == (4, 5)
    np.testing.assert_allclose(got, want, rtol=1e-14)
    got = gradc.vmap(lambda x, w: gnp.tanh(x @ w), in_axes=(-2, None), out_axes=-1)(X, w)
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_pytree_arguments_with_per_leaf_in_axes():
    r = rng(2)
    params = {"W": r.standard_normal((3, 2)), "b": r.standard_normal(2)}
    xs = r.standard_normal((6, 3))
    ys = r.standard_normal((6, 2))

    def loss(p, x, y):
        return gnp.sum((gnp.tanh(x @ p["W"] + p["b"]) - y) ** 2)
    g = gradc.vmap(gradc.grad(loss), in_axes=({"W": None, "b": None}, 0, 0))(params, xs, ys)
    assert set(g) == {"W", "b"} and g["W"].shape == (6, 3, 2) and g["b"].shape == (6, 2)
    for k in range(6):                            # the closed form, example by example
        h = np.tanh(xs[k] @ params["W"] + params["b"])
        dz = 2 * (h - ys[k]) * (1 - h * h)
        np.testing.assert_allclose(g["W"][k], np.outer(xs[k], dz), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(g["b"][k], dz, rtol=1e-13, atol=1e-15)


def test_outputs_as_a_pytree_keyword_arguments_and_shared_outputs():
    r = rng(3)
    xs = r.standard_normal((5, 4))
    c = r.standard_normal(4)

    def f(x, scale=1.0):
        return {"y": x * scale, "norm": gnp.sum(x * x), "shared": c * 2.0}
    out = gradc.vmap(f)(xs, scale=np.full(5, 3.0))
    np.testing.assert_allclose(out["y"], xs * 3.0)
    np.testing.assert_allclose(out["norm"], (xs * xs).sum(1))
    np.testing.assert_allclose(out["shared"], np.broadcast_to(c * 2.0, (5, 4)))
    out = gradc.vmap(lambda x: (x.sum(), c * 2.0), out_axes=(0, None))(xs)
    np.testing.assert_allclose(out[1], c * 2.0)


def test_nested_vmap_is_a_map_over_two_axes():
    r = rng(4)
    A = r.standard_normal((3, 4, 5))
    B = r.standard_normal((4, 5))
    inner = gradc.vmap(lambda a, b: gnp.dot(a, b))           # over the 4 rows
    got = gradc.vmap(inner, in_axes=(0, None))(A, B)          # over the 3 blocks
    np.testing.assert_allclose(got, np.einsum("ijk,jk->ij", A, B), rtol=1e-13)


def test_axis_size_when_nothing_is_mapped():
    got = gradc.vmap(lambda x: x * 2.0, in_axes=None, axis_size=4)(np.arange(3.0))
    np.testing.assert_allclose(got, np.tile(np.arange(3.0) * 2.0, (4, 1)))


def test_vmap_inside_jit_and_grad_of_a_jitted_vmap():
    r = rng(5)
    W = r.standard_normal((3, 3))
    xs = r.standard_normal((7, 3))
    per = gradc.vmap(lambda W, x: gnp.sum(gnp.sin(W @ x)), in_axes=(None, 0))
    got = gradc.grad(lambda W, xs: gnp.sum(per(W, xs)))(W, xs)
    want = sum(np.outer(np.cos(W @ x), x) for x in xs)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(gradc.jit(per)(W, xs), np.sin(xs @ W.T).sum(1), rtol=1e-13)


def test_one_graph_serves_every_batch_size():
    f = gradc.jit(gradc.vmap(lambda x: gnp.sum(gnp.exp(x))))
    for n in (2, 5, 64):          # (a size of 1 is a signature of its own, as everywhere)
        x = np.linspace(-1, 1, n * 3).reshape(n, 3)
        np.testing.assert_allclose(f(x), np.exp(x).sum(1), rtol=1e-14)
    assert sum(len(entries) for entries in f._cache.values()) == 1


# ----------------------------------------------------------------------------- errors
def test_mapped_axes_of_different_sizes_are_refused():
    with pytest.raises(gradc.ArgumentError, match=r"mapped axes differ in size: argument 0 has 3 on axis 0, argument 1 has 4"):
        gradc.vmap(lambda a, b: a + b)(np.zeros((3, 2)), np.zeros((4, 2)))


def test_in_axes_that_do_not_fit_the_arguments_are_refused():
    with pytest.raises(gradc.ArgumentError, match="in_axes has 1 entries but the call has 2"):
        gradc.vmap(lambda a, b: a + b, in_axes=(0,))(np.zeros(3), np.zeros(3))
    with pytest.raises(gradc.ArgumentError, match=r"axis 2 of argument 0, of rank 2"):
        gradc.vmap(lambda a: a, in_axes=2)(np.zeros((3, 2)))
    with pytest.raises(gradc.ArgumentError, match=r"axis 0 of argument 1, of rank 0 \(a scalar\)"):
        gradc.vmap(lambda a, b: a * b)(np.zeros(3), 2.0)
    with pytest.raises(gradc.ArgumentError, match="no argument is mapped"):
        gradc.vmap(lambda a: a, in_axes=None)(np.zeros(3))


def test_an_unmapped_output_that_depends_on_the_batch_is_refused():
    with pytest.raises(gradc.ArgumentError, match="out_axes is None"):
        gradc.vmap(lambda a: a * 2.0, out_axes=None)(np.zeros((3, 2)))


# ----------------------------------------------------------------------------- at users' sizes
@pytest.mark.parametrize("threads", ["1", "2"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_per_example_gradients_of_an_mlp_at_batch_2048(threads, dtype, monkeypatch):
    """Per-example gradients of a tanh MLP (2048 examples of 16 inputs, 32 hidden units,
    rank-3 results split over threads) against the closed form in numpy float64.
    float32: relative 1e-5 (a few float32 roundings of O(1) terms per entry)."""
    monkeypatch.setenv("GRADC_NUM_THREADS", threads)
    r = rng(6)
    p = {"W1": r.standard_normal((16, 32)) / 4, "b1": r.standard_normal(32) / 4,
         "W2": r.standard_normal((32, 1)) / 4}
    X, y = r.standard_normal((2048, 16)), r.standard_normal(2048)

    def loss(p, x, y):
        h = gnp.tanh(x @ p["W1"] + p["b1"])
        return (h @ p["W2"])[0] ** 2 * 0.5 - y * (h @ p["W2"])[0]

    cast = lambda t: {k: v.astype(dtype) for k, v in t.items()}   # noqa: E731
    g = gradc.vmap(gradc.grad(loss), in_axes=(None, 0, 0))(cast(p), X.astype(dtype), y.astype(dtype))
    h = np.tanh(X @ p["W1"] + p["b1"])
    out = (h @ p["W2"])[:, 0]
    d_out = out - y
    dz = d_out[:, None] * p["W2"][:, 0] * (1 - h * h)
    want = {"W1": X[:, :, None] * dz[:, None, :], "b1": dz, "W2": (h * d_out[:, None])[:, :, None]}
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for k in want:
        assert g[k].dtype == dtype and g[k].shape == want[k].shape
        scale = np.abs(want[k]).max()
        np.testing.assert_allclose(g[k], want[k], rtol=0, atol=tol * scale, err_msg=k)


def test_a_vmapped_model_is_one_batched_graph_and_explains_per_sample():
    """vmap of x @ W per example is one matrix product over the batch (no per-example
    copies of W), and explain reads the batched graph as the paper's per-sample sums."""
    f = gradc.vmap(lambda w, x: gnp.sum(gnp.tanh(x @ w)), in_axes=(None, 0))
    W, X = rng(8).standard_normal((3, 2)), rng(9).standard_normal((5, 3))
    g = gradc.jit(f).lower(W, X).graph
    assert sorted(g[n]["op"] for n in g.nx if g[n]["op"] not in ("input", "const")) == ["matmul", "sum", "tanh"]
    text = str(gradc.explain(lambda W, X: gnp.sum(f(W, X)), W, X))
    assert "dC/dW = Σ_i x_i (1 − tanh(Wᵀ x_i)²)ᵀ" in text


def test_unmapped_python_values_reach_the_function_as_themselves():
    """As in JAX, an int, bool or str argument with in_axes None is a Python value inside
    the mapped function: a loop count, a flag, the static argument of a jit inside
    (vmap(grad(jit(f, static_argnums=2)))); closed form: d/dw sum(tanh^n(x w))."""
    import functools

    @functools.partial(gradc.jit, static_argnums=2)
    def f(w, x, n):
        for _ in range(n):
            x = gnp.tanh(x * w)
        return gnp.sum(x)

    def f_np(w, x, n):
        for _ in range(n):
            x = np.tanh(x * w)
        return np.sum(x)
    r = rng(3)
    w, X = r.standard_normal(3), r.standard_normal((6, 3))
    h = 1e-6
    for n in (1, 3):
        got = gradc.vmap(gradc.grad(f), in_axes=(None, 0, None))(w, X, n)
        want = np.stack([[(f_np(w + h * e, x, n) - f_np(w - h * e, x, n)) / (2 * h) for e in np.eye(3)] for x in X])
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)
    g = gradc.vmap(lambda x, act, flip: (gnp.sin(x) if act == "sin" else gnp.cos(x)) * (-1 if flip else 1),
                   in_axes=(0, None, None))
    np.testing.assert_allclose(g(X, "sin", True), -np.sin(X), rtol=1e-15)
    np.testing.assert_allclose(g(X, "cos", False), np.cos(X), rtol=1e-15)
