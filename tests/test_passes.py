"""Optimization passes: dead-code elimination, common-subexpression elimination,
constant folding, algebraic identities, and the stabilizing rewrites.  Each is checked
structurally (which ops the optimized graph holds) and numerically (the optimized graph
computes what the unoptimized one does; the stabilized gradient is finite and right
where the naive formula overflows)."""
from __future__ import annotations

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
from gradc.autodiff import vjp_graph
from gradc.evaluate import evaluate
from gradc.passes import cse, dce, fold_constants, optimize

from gradc_helpers import ops_in

pytestmark = pytest.mark.usefixtures("core_backend")

x3 = np.array([0.5, -1.5, 2.0])


def lowered(f, *args):
    return gradc.jit(f).lower(*args)


def compute_ops(g):
    return ops_in(g) - {"input", "const"}


def count(g, op):
    return sum(1 for _, d in g.nx.nodes(data=True) if d["op"] == op)


def same_values(lo, args):
    """The optimized graph computes what the traced (unoptimized) graph does."""
    a = evaluate(lo.unoptimized, list(args))
    b = evaluate(lo.graph, list(args))
    for u, v in zip(a, b):
        np.testing.assert_allclose(v, u, rtol=1e-13, atol=1e-13)


# ----------------------------------------------------------------------------- DCE / CSE / folding
def test_dead_code_elimination():
    def f(x):
        unused = gnp.exp(x) * 3.0          # noqa: F841
        return gnp.sin(x)
    lo = lowered(f, x3)
    assert "exp" in ops_in(lo.unoptimized)
    assert compute_ops(lo.graph) == {"sin"}
    same_values(lo, [x3])


def test_dce_pass_directly():
    g = gradc.trace(lambda x: (gnp.exp(x), gnp.sin(x))[1], x3)
    assert "exp" in ops_in(g)
    assert dce(g) is True
    assert "exp" not in ops_in(g) and "sin" in ops_in(g)
    assert dce(g) is False                 # a fixed point


def test_common_subexpression_elimination():
    lo = lowered(lambda x: gnp.sin(x) * gnp.cos(x) + gnp.sin(x) * gnp.cos(x), x3)
    assert count(lo.unoptimized, "sin") == 2
    assert count(lo.graph, "sin") == 1 and count(lo.graph, "cos") == 1 and count(lo.graph, "mul") == 1
    same_values(lo, [x3])


def test_cse_respects_params_and_argument_order():
    lo = lowered(lambda X: gnp.sum(X, axis=0) + gnp.sum(X, axis=0) * gnp.sum(X, axis=1)[:1], np.ones((2, 2)))
    assert count(lo.graph, "sum") == 2     # axis 0 and axis 1 are different
    lo = lowered(lambda x, y: (x - y) * (y - x), x3, x3[::-1].copy())
    assert count(lo.graph, "sub") == 2     # x - y and y - x are different
    same_values(lo, [x3, x3[::-1].copy()])


def test_cse_pass_directly():
    g = gradc.trace(lambda x: gnp.exp(x) + gnp.exp(x), x3)
    assert cse(g) is True
    dce(g)
    assert count(g, "exp") == 1


def test_constant_folding():
    c = np.array([1.0, 2.0, 3.0])
    lo = lowered(lambda x: x * gnp.exp(gnp.log(c) * 2.0) + gnp.sum(c), x3)
    assert compute_ops(lo.graph) <= {"mul", "add"}
    assert "exp" not in ops_in(lo.graph) and "sum" not in ops_in(lo.graph)
    consts = [d["params"]["value"] for _, d in lo.graph.nx.nodes(data=True) if d["op"] == "const"]
    assert any(v.shape == (3,) and np.allclose(v, c ** 2) for v in consts)
    np.testing.assert_allclose(gradc.jit(lambda x: x * gnp.exp(gnp.log(c) * 2.0) + gnp.sum(c))(x3),
                               x3 * c ** 2 + 6.0, rtol=1e-13)


def test_fold_constants_pass_directly():
    g = gradc.trace(lambda x: x + gnp.sqrt(np.array(16.0)), x3)
    assert fold_constants(g) is True
    dce(g)
    assert "sqrt" not in ops_in(g)


def test_count_folds_only_for_static_sizes():
    """mean's divisor is a run-time size: it must not be folded into the example size."""
    f = gradc.jit(lambda x: gnp.mean(x))
    assert "count" in ops_in(f.lower(x3).graph)
    np.testing.assert_allclose(f(np.arange(5.0)), 2.0)
    np.testing.assert_allclose(f(np.arange(9.0)), 4.0)
    # a fixed size (1) folds
    lo = lowered(lambda X: gnp.mean(X, axis=1), np.ones((3, 1)))
    assert "count" not in ops_in(lo.graph)


# ----------------------------------------------------------------------------- algebraic identities
@pytest.mark.parametrize("name,f", [
    ("x*1", lambda x: x * 1),
    ("1*x", lambda x: 1.0 * x),
    ("x+0", lambda x: x + 0),
    ("0+x", lambda x: 0.0 + x),
    ("x-0", lambda x: x - 0.0),
    ("x/1", lambda x: x / 1.0),
    ("--x", lambda x: -(-x)),
    ("(--x)*1+0", lambda x: (-(-x)) * 1 + 0),
    ("x.T.T", lambda x: x.T.T),
    ("reshape back", lambda x: x.reshape(1, -1).reshape(-1)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_identities_vanish(name, f):
    lo = lowered(f, x3)
    assert compute_ops(lo.graph) == set(), str(lo.graph)
    assert lo.graph.outputs == lo.graph.inputs
    np.testing.assert_array_equal(gradc.jit(f)(x3), x3)


def test_identities_keep_broadcasting():
    """s + zeros(3) is not s: the broadcast changes the shape, so it must stay."""
    f = lambda s: s + np.zeros(3)  # noqa: E731
    out = gradc.jit(f)(2.0)
    np.testing.assert_array_equal(out, [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(gradc.grad(lambda s: gnp.sum(f(s)))(2.0), 3.0)


def test_negation_rewrites():
    lo = lowered(lambda x, y: x + (-y), x3, x3)
    assert compute_ops(lo.graph) == {"sub"}
    lo = lowered(lambda x: x * -1.0, x3)
    assert compute_ops(lo.graph) == {"neg"}
    np.testing.assert_array_equal(gradc.jit(lambda x: x * -1.0)(x3), -x3)


# ----------------------------------------------------------------------------- stabilizing rewrites
STABLE = [
    # name, naive formula, op that must appear, ops that must vanish, x, value, gradient (closed form)
    ("log(1+exp(x))", lambda x: gnp.log(1.0 + gnp.exp(x)), "softplus", {"log", "exp"},
     np.array([1000.0, -1000.0, 0.5]),
     lambda x: np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))), lambda x: 1 / (1 + np.exp(-x))),
    ("log(exp(x)+1)", lambda x: gnp.log(gnp.exp(x) + 1.0), "softplus", {"log", "exp"},
     np.array([1000.0, 0.5]),
     lambda x: np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))), lambda x: 1 / (1 + np.exp(-x))),
    ("log1p(exp(x))", lambda x: gnp.log1p(gnp.exp(x)), "softplus", {"log1p", "exp"},
     np.array([1000.0, -3.0]),
     lambda x: np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))), lambda x: 1 / (1 + np.exp(-x))),
    ("log(sigmoid(x))", lambda x: gnp.log(gradc.sigmoid(x)), "softplus", {"log", "sigmoid"},
     np.array([-1000.0, 1000.0, 0.3]),
     lambda x: -(np.maximum(-x, 0) + np.log1p(np.exp(-np.abs(x)))), lambda x: 1 / (1 + np.exp(x))),
]


@pytest.mark.parametrize("name,f,op,gone,x,val,dval", STABLE, ids=[s[0] for s in STABLE])
def test_stabilizing_rewrite_elementwise(name, f, op, gone, x, val, dval):
    lo = lowered(f, x)
    assert op in ops_in(lo.graph), str(lo.graph)
    assert not (gone & ops_in(lo.graph)), str(lo.graph)
    got = gradc.jit(f)(x)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, val(x), rtol=1e-13, atol=1e-13)
    g = gradc.grad(lambda x: gnp.sum(f(x)))(x)
    assert np.all(np.isfinite(g))
    with np.errstate(over="ignore"):       # the closed form's 1/(1+exp(1000)) is 1/inf = 0
        want = dval(x)
    np.testing.assert_allclose(g, want, rtol=1e-13, atol=1e-13)


def test_logsumexp_rewrite():
    f = lambda x: gnp.log(gnp.sum(gnp.exp(x)))  # noqa: E731
    x = np.array([1000.0, 999.0, 998.0])
    lo = lowered(f, x)
    assert "logsumexp" in ops_in(lo.graph)
    assert not ({"log", "exp", "sum"} & ops_in(lo.graph))
    m = x.max()
    np.testing.assert_allclose(gradc.jit(f)(x), m + np.log(np.sum(np.exp(x - m))), rtol=1e-14)
    g = gradc.grad(f)(x)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, np.exp(x - m) / np.sum(np.exp(x - m)), rtol=1e-13)


def test_logsumexp_rewrite_keeps_axis():
    f = lambda X: gnp.log(gnp.sum(gnp.exp(X), axis=1, keepdims=True))  # noqa: E731
    X = np.array([[1000.0, 0.0], [-1000.0, -999.0]])
    lo = lowered(f, X)
    assert "logsumexp" in ops_in(lo.graph)
    m = X.max(axis=1, keepdims=True)
    want = m + np.log(np.sum(np.exp(X - m), axis=1, keepdims=True))
    np.testing.assert_allclose(gradc.jit(f)(X), want, rtol=1e-14)
    assert np.all(np.isfinite(gradc.grad(lambda X: gnp.sum(f(X)))(X)))


def test_without_the_rewrite_the_naive_gradient_overflows():
    """The rewrite is what makes the gradient finite: the same graph optimized without
    STABILIZE gives nan/inf at x = 1000."""
    x = np.array([1000.0])
    F = gradc.trace(lambda x: gnp.sum(gnp.log(1.0 + gnp.exp(x))), x)
    naive = optimize(vjp_graph(optimize(F, stabilize=False), [0], seed="one"), stabilize=False)
    assert not np.all(np.isfinite(evaluate(naive, [x])[-1]))
    stable = optimize(vjp_graph(optimize(F), [0], seed="one"))
    np.testing.assert_allclose(evaluate(stable, [x])[-1], [1.0])


def test_optimize_does_not_mutate_its_input():
    g = gradc.trace(lambda x: gnp.log(1.0 + gnp.exp(x)) * 1.0, x3)
    before = (sorted(g.nx.nodes), sorted(g.nx.edges), list(g.outputs))
    o = optimize(g)
    assert (sorted(g.nx.nodes), sorted(g.nx.edges), list(g.outputs)) == before
    assert o is not g


def test_adjoint_graph_is_optimized():
    """The gradient graph of sum(x * 1 + 0) is a constant broadcast: no mul/add survive."""
    lo = gradc.grad(lambda x: gnp.sum(x * 1 + 0)).lower(x3)
    assert not ({"mul", "add"} & ops_in(lo.graph)), str(lo.graph)
    np.testing.assert_array_equal(gradc.grad(lambda x: gnp.sum(x * 1 + 0))(x3), np.ones(3))


# ----------------------------------------------------------------------------- 1 +- tanh(u)
def _one_plus_tanh_exact(u, sign):
    """1 + sign * tanh(u) to double precision, computed in 60-digit arithmetic (mpmath)."""
    import mpmath
    with mpmath.workdps(60):
        return np.array([float(1 + sign * mpmath.tanh(mpmath.mpf(float(v)))) for v in u])


@pytest.mark.parametrize("sign", [1, -1])
def test_one_plus_tanh_becomes_sigmoid_and_stays_accurate(sign):
    """1 +- tanh(u) -> 2 sigmoid(+-2u) in float64: no tanh left, and the value has full
    relative accuracy where the naive sum cancels to 0 (tanh(u) -> -+1).  Oracle: mpmath.
    2 ulp of relative error: sigmoid's own (about 1) plus the scalings' rounding."""
    u = np.concatenate([np.linspace(-30, 30, 2001), [0.0, 1e-300, -1e-300, 710.0, -710.0]])
    f = (lambda u: 1.0 + gnp.tanh(u)) if sign > 0 else (lambda u: 1.0 - gnp.tanh(u))
    lo = lowered(f, u)
    assert "sigmoid" in ops_in(lo.graph) and "tanh" not in ops_in(lo.graph), str(lo.graph)
    got = gradc.jit(f)(u)
    want = _one_plus_tanh_exact(u, sign)
    ok = want > np.finfo(np.float64).tiny            # (subnormal results: absolute error)
    rel = np.abs(got[ok] - want[ok]) / want[ok]
    assert rel.max() <= 2 * np.finfo(np.float64).eps, rel.max()
    np.testing.assert_array_less(np.abs(got[~ok] - want[~ok]), 1e-300)
    # the naive formula loses everything there: 1 + tanh(-20) is 0
    assert (1.0 + sign * np.tanh(-sign * 20.0)) == 0.0 and got[np.argmin(np.abs(u + sign * 20))] > 0


@pytest.mark.parametrize("shape", [(7,), (700, 800)])
def test_gelu_gradient_through_the_rewrite(shape):
    """gelu's tanh form, value and gradient, against numpy's closed forms (the larger
    shape is a 560,000-element nest, split over threads and vectorized).  rtol 1e-12:
    a few ulp per element plus the 1/n of the mean."""
    c, a = np.sqrt(2 / np.pi), 0.044715
    x = np.random.default_rng(1).normal(0.0, 3.0, shape)

    def f(x):
        return gnp.mean(0.5 * x * (1.0 + gnp.tanh(c * (x + a * x * x * x))))
    assert "tanh" not in ops_in(gradc.grad(f).lower(x).graph)
    t = np.tanh(c * (x + a * x ** 3))
    want = (0.5 * x * (1 + t)).mean()
    dwant = (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * a * x * x)) / x.size
    v, g = gradc.value_and_grad(f)(x)
    np.testing.assert_allclose(v, want, rtol=1e-12)
    np.testing.assert_allclose(g, dwant, rtol=1e-12, atol=1e-12 * np.abs(dwant).max())


def test_tanh_read_elsewhere_or_float32_is_kept():
    """The tanh stays when something else reads it (both would be computed), when it is
    an output, and in float32 (AVX-512's float32 tanh is as fast as sigmoid)."""
    u = np.linspace(-3, 3, 5)

    def shared(u):
        t = gnp.tanh(u)
        return (1.0 + t) * t
    assert "sigmoid" not in ops_in(lowered(shared, u).graph)
    both = lowered(lambda u: (1.0 + gnp.tanh(u)) * gnp.tanh(u), u)
    assert "tanh" in ops_in(both.graph) and "sigmoid" not in ops_in(both.graph)
    np.testing.assert_allclose(gradc.jit(lambda u: (1.0 + gnp.tanh(u)) * gnp.tanh(u))(u),
                               (1 + np.tanh(u)) * np.tanh(u), rtol=1e-14)
    f32 = lowered(lambda u: 1.0 + gnp.tanh(u), u.astype(np.float32))
    assert "tanh" in ops_in(f32.graph) and "sigmoid" not in ops_in(f32.graph)
    twice = lowered(lambda u: 2.0 - gnp.tanh(u), u)       # not 1 - tanh
    assert "tanh" in ops_in(twice.graph)


# ----------------------------------------------------------------------------- one-hot scatter
def _cross_entropy(S, labels):
    return gnp.mean(gnp.logsumexp(S, axis=1) - gnp.take_along_axis(S, labels[:, None], axis=1)[:, 0])


def _cross_entropy_grad_numpy(S, labels):
    E = np.exp(S - S.max(axis=1, keepdims=True))
    P = E / E.sum(axis=1, keepdims=True)
    P[np.arange(S.shape[0]), labels] -= 1.0
    return P / S.shape[0]


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("rows, classes", [(7, 3), (3000, 10), (65, 129)])
def test_picked_class_gradient_is_a_select_not_a_scatter(rows, classes, dtype, rtol):
    # The adjoint of S[rows, labels] (one element per row) needs no scatter: the select
    # fuses into the softmax's gradient.  Negative labels count from the end.  Tolerance:
    # the gradient's elements are (p - onehot)/rows with p a quotient of exps; a few ulps
    # of the type, relative to the largest element.
    rng = np.random.default_rng(rows)
    S = (3 * rng.standard_normal((rows, classes))).astype(dtype)
    labels = rng.integers(-classes, classes, rows)
    lo = gradc.grad(_cross_entropy).lower(S, labels)
    assert count(lo.unoptimized, "scatter_add") == 1 and count(lo.graph, "scatter_add") == 0
    g = gradc.grad(_cross_entropy)(S, labels)
    want = _cross_entropy_grad_numpy(S.astype(np.float64), labels)
    assert g.dtype == dtype
    np.testing.assert_allclose(g, want, rtol=0, atol=rtol * np.abs(want).max())


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_one_hot_select_along_any_axis_of_rank_3(axis):
    # take_along_axis with one index per fiber along `axis`, the others its positions
    rng = np.random.default_rng(axis)
    x = rng.standard_normal((4, 5, 6))
    shape = list(x.shape)
    shape[axis] = 1
    idx = rng.integers(0, x.shape[axis], shape)
    w = rng.standard_normal(shape)

    def f(x):
        return gnp.sum(gnp.take_along_axis(x, idx, axis=axis) * w)
    lo = gradc.grad(f).lower(x)
    assert count(lo.graph, "scatter_add") == 0
    want = np.zeros_like(x)
    np.put_along_axis(want, idx, w, axis=axis)
    np.testing.assert_array_equal(gradc.grad(f)(x), want)


def test_repeated_indices_keep_the_scatter():
    # x[idx] with an index hitting one element twice: the adjoint must add both
    x = np.arange(5.0)
    idx = np.array([1, 3, 1, 1])
    lo = gradc.grad(lambda x: gnp.sum(x[idx] ** 2)).lower(x)
    assert count(lo.graph, "scatter_add") == 1
    np.testing.assert_array_equal(gradc.grad(lambda x: gnp.sum(x[idx] ** 2))(x), [0, 6, 0, 6, 0])


def test_one_hot_select_still_reports_a_label_out_of_range():
    # the gradient alone (the forward gather is not needed for it) still checks labels
    S = np.zeros((4, 3))
    labels = np.array([0, 2, 3, 1])
    f = gradc.grad(lambda S: gnp.sum(gnp.take_along_axis(S, labels[:, None], axis=1)))
    with pytest.raises(IndexError, match="out of bounds"):
        f(S)


def test_an_index_broadcast_along_its_own_axis_keeps_the_scatter():
    # x[[[0]], labels] with a label per row of x: a row index of one element (0, as an
    # iota of length 1 would be) broadcast over the rows, which collide on x[0]
    x = np.array([[0.0, 5.0, 1.0, 2.0], [3.0, 9.0, 0.0, 1.0], [1.0, 2.0, 7.0, 0.0]])

    def f(x):
        labels = gnp.argmax(x, axis=1)[:, None]          # 1, 1, 2
        return gnp.sum(x[np.zeros((1, 1), np.int64), labels] ** 2)
    lo = gradc.grad(f).lower(x)
    assert count(lo.graph, "scatter_add") == 1
    want = np.zeros((3, 4))
    want[0, 1], want[0, 2] = 4 * x[0, 1], 2 * x[0, 2]
    np.testing.assert_array_equal(gradc.grad(f)(x), want)


# ----------------------------------------------------------------------------- broadcasts, products
def _attention(Wq, Wk, X):
    Q, K = X @ Wq, X @ Wk
    return gnp.sum(gnp.softmax(Q @ K.T, axis=1) ** 2)


def _attention_grads_numpy(Wq, Wk, X):
    """d/dWq, d/dWk of sum(softmax(Q K^T)^2) by hand: dP = 2P, dS = P * (dP - rowsum(dP P))."""
    Q, K = X @ Wq, X @ Wk
    S = Q @ K.T
    E = np.exp(S - S.max(axis=1, keepdims=True))
    P = E / E.sum(axis=1, keepdims=True)
    dP = 2 * P
    dS = P * (dP - (dP * P).sum(axis=1, keepdims=True))
    return X.T @ (dS @ K), X.T @ (dS.T @ Q)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 2e-4)])
@pytest.mark.parametrize("n", [5, 300])
def test_softmax_adjoint_reuses_the_forward_exp(n, dtype, rtol):
    # The logsumexp's adjoint writes exp(S - broadcast_to(lse)); with the broadcast left
    # to the subtraction (implicit_broadcasts) it is the forward's exp(S - lse), and CSE
    # keeps one.  Tolerance: the gradient is a sum of n products of O(1) terms.
    rng = np.random.default_rng(n)
    X = rng.standard_normal((n, 6)).astype(dtype)
    Wq, Wk = (rng.standard_normal((6, 4)) / 3).astype(dtype), (rng.standard_normal((6, 4)) / 3).astype(dtype)
    f = gradc.grad(_attention, argnums=(0, 1))
    lo = f.lower(Wq, Wk, X)
    assert count(lo.unoptimized, "exp") == 2 and count(lo.graph, "exp") == 1, str(lo.graph)
    got = f(Wq, Wk, X)
    want = _attention_grads_numpy(*(a.astype(np.float64) for a in (Wq, Wk, X)))
    for gv, w in zip(got, want):
        assert gv.dtype == dtype
        np.testing.assert_allclose(gv, w, rtol=rtol, atol=rtol * np.abs(w).max())


def test_implicit_broadcast_only_where_the_shape_is_kept():
    # x + broadcast_to(b, (3, 4)) with x of shape (4,): the broadcast gives the sum its
    # rows, so it must stay; with x of shape (3, 1) or (3, 4) the addition broadcasts b
    # itself.
    b = np.arange(4.0)

    def f(x, b):
        return gnp.sum(gnp.exp(x + gnp.broadcast_to(b, (3, 4))))
    for shape, kept in (((4,), 1), ((3, 1), 0), ((3, 4), 0)):
        x = np.linspace(-1, 1, int(np.prod(shape))).reshape(shape)
        lo = lowered(f, x, b)
        assert count(lo.graph, "broadcast_to") == kept, str(lo.graph)
        same_values(lo, [x, b])
        e = np.exp(np.broadcast_to(x + b, (3, 4)))
        np.testing.assert_allclose(gradc.jit(f)(x, b), e.sum(), rtol=1e-14)
        np.testing.assert_allclose(gradc.grad(f, argnums=1)(x, b), e.sum(axis=0), rtol=1e-14)


# ----------------------------------------------------------------------------- past differentiation
def _decomposed(f, x, rule, monkeypatch):
    """The backend graph of ``grad``-free ``f`` (schedule_graph.decompose), with or without
    passes.PAST_DIFFERENTIATION."""
    from gradc.backends import schedule_graph as sched
    monkeypatch.setattr(sched, "PAST_DIFFERENTIATION", list(rule))
    return sched.decompose(gradc.jit(f).lower(x).graph)


def _softmax_rows(x):
    return gnp.log_softmax(x, axis=1), gnp.softmax(x, axis=1)


def _softmax_middle(x):
    return gnp.log_softmax(x * 0.5, axis=1) + gnp.softmax(x, axis=-1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("f, shape, softmaxes", [(_softmax_rows, (37, 515), 1), (_softmax_middle, (3, 40, 7), 2)])
def test_shifted_extremum_reuses_the_shift_and_keeps_every_bit(f, shape, softmaxes, dtype, monkeypatch):
    """log_softmax's logsumexp of its shifted logits: max(x - c) -> max(x) - c, so one
    max per softmax instead of two, and the same bits as without the rewrite (exact:
    subtracting a finite c rounds monotonically), at rows holding +-inf, NaN, values
    near the type's largest, and all equal values."""
    from gradc.passes import PAST_DIFFERENTIATION
    rng = np.random.default_rng(len(shape))
    x = (10 * rng.standard_normal(shape)).astype(dtype)
    big = np.finfo(dtype).max
    x[0, 0], x[1, 1], x[2, 2] = np.inf, -np.inf, np.nan
    x[0, 1] = -np.inf
    if len(shape) == 2:
        x[3, :] = -np.inf
        x[4, :5] = [big, -big, big / 2, 0.0, -0.0]
        x[5, :] = 1.5
    without = _decomposed(f, x, [], monkeypatch)
    with_rule = _decomposed(f, x, PAST_DIFFERENTIATION, monkeypatch)
    assert count(without, "max") == 2 * softmaxes and count(with_rule, "max") == softmaxes
    for a, b in zip(evaluate(without, [x]), evaluate(with_rule, [x])):
        np.testing.assert_array_equal(a, b)       # NaN in the same places, every bit else
    want = _softmax_reference(f, x)    # in x's dtype: float32 overflows where float64 would not
    got = gradc.jit(f, backend="llvm")(x)
    for g, w in zip(got if isinstance(got, tuple) else (got,), want):
        finite = np.isfinite(w)
        assert np.array_equal(np.isnan(g), np.isnan(w)) and np.array_equal(g[~finite & ~np.isnan(w)], w[~finite & ~np.isnan(w)])
        tol = 1e-13 if dtype == np.float64 else 2e-5
        np.testing.assert_allclose(g[finite], w[finite], rtol=tol, atol=tol)


def _softmax_reference(f, x):
    """numpy's log_softmax / softmax as f combines them, in x's dtype."""
    def lsm(v, axis):
        m = np.max(v, axis=axis, keepdims=True)
        s = v - np.where(np.isfinite(m), m, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return s - np.log(np.sum(np.exp(s), axis=axis, keepdims=True))
    with np.errstate(invalid="ignore", over="ignore"):    # float32 rows of +-max overflow, as gradc's
        if f is _softmax_rows:
            return lsm(x, 1), np.exp(lsm(x, 1))
        return (lsm(x * 0.5, 1) + np.exp(lsm(x, -1)),)


def test_shifted_extremum_leaves_other_shifts_alone(monkeypatch):
    """max(x - y) for a y the user computed (not a softmax's finite shift) keeps its
    subtraction inside the max: y may be infinite, where max(x) - y would differ on an
    empty row or at y = x = inf."""
    from gradc.passes import PAST_DIFFERENTIATION
    y = np.array([[np.inf], [1.0]])

    def f(x):
        return gnp.max(x - y, axis=1) + gnp.logsumexp(x, axis=1)
    x = np.array([[np.inf, 1.0, 2.0], [3.0, 4.0, 5.0]])
    g = _decomposed(f, x, PAST_DIFFERENTIATION, monkeypatch)
    subs_into_max = [n for n, d in g.nx.nodes(data=True)
                     if d["op"] == "max" and g[d["args"][0]]["op"] == "sub"]
    assert len(subs_into_max) == 1
    got = gradc.jit(f, backend="llvm")(x)
    with np.errstate(invalid="ignore"):
        want = np.max(x - y, axis=1) + np.log(np.sum(np.exp(x - x.max(1, keepdims=True)), axis=1)) + x.max(1)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(want)], want[~np.isnan(want)], rtol=1e-13)
