"""gradc.optim against hand-written numpy implementations of the update equations
(loops over a flat list of arrays, written from the papers' formulas, sharing no code
with gradc.optim), eagerly on numpy arrays and inside a jitted training step.

Tolerances: the eager float64 path performs the same operations in the same order as
the reference, so results agree to a few ulps (rtol 1e-13 after 20 steps); float32
agrees to ~1e-6 (each step rounds a handful of times; Adam's division by sqrt(s)+eps
amplifies nothing on these well-scaled gradients).  The jitted step computes the same
formulas in fused native code (a fused multiply-add may round differently): 1e-12."""
from __future__ import annotations

import collections

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
from gradc import optim
from gradc.tree_util import tree_leaves, tree_structure, tree_unflatten

Layer = collections.namedtuple("Layer", ["W", "b"])
rng = np.random.default_rng(3)
STEPS = 20


def make_params(dtype):
    return {"layers": [Layer(rng.standard_normal((4, 3)).astype(dtype), rng.standard_normal(3).astype(dtype)),
                       Layer(rng.standard_normal((3, 2)).astype(dtype), None)],
            "scale": np.asarray(1.5, dtype)}


def loss(params, X):
    h = X
    for layer in params["layers"]:
        h = gnp.tanh(h @ layer.W + (0.0 if layer.b is None else layer.b))
    return params["scale"] * gnp.sum(h ** 2) + gnp.sum(params["layers"][0].W ** 2)


def grads_sequence(params, X, n, dtype):
    """Gradients to feed each step: fixed random trees, so the reference and gradc
    see identical inputs whatever the parameters become."""
    td = tree_structure(params)
    return [tree_unflatten(td, [rng.standard_normal(np.shape(p)).astype(dtype) for p in tree_leaves(params)])
            for _ in range(n)]


# ----------------------------------------------------------------------------- references
def ref_sgd(ps, gs_seq, lr, momentum, nesterov):
    ps = [p.copy() for p in ps]
    vel = [np.zeros_like(p) for p in ps]
    for gs in gs_seq:
        for k, g in enumerate(gs):
            if momentum:
                vel[k] = momentum * vel[k] + g
                step = g + momentum * vel[k] if nesterov else vel[k]
            else:
                step = g
            ps[k] = ps[k] - lr * step
    return ps


def ref_adam(ps, gs_seq, lr, b1, b2, eps, wd):
    ps = [p.copy() for p in ps]
    m = [np.zeros_like(p) for p in ps]
    v = [np.zeros_like(p) for p in ps]
    for t, gs in enumerate(gs_seq, start=1):
        for k, g in enumerate(gs):
            m[k] = b1 * m[k] + (1 - b1) * g
            v[k] = b2 * v[k] + (1 - b2) * g * g
            m_hat = m[k] / (1 - b1 ** t)
            v_hat = v[k] / (1 - b2 ** t)
            ps[k] = ps[k] - lr * (m_hat / (np.sqrt(v_hat) + eps) + wd * ps[k])
    return ps


CASES = {
    "sgd": (optim.sgd(0.05), lambda ps, gs: ref_sgd(ps, gs, 0.05, 0.0, False)),
    "momentum": (optim.sgd(0.05, momentum=0.9), lambda ps, gs: ref_sgd(ps, gs, 0.05, 0.9, False)),
    "nesterov": (optim.sgd(0.05, momentum=0.8, nesterov=True), lambda ps, gs: ref_sgd(ps, gs, 0.05, 0.8, True)),
    "adam": (optim.adam(0.01), lambda ps, gs: ref_adam(ps, gs, 0.01, 0.9, 0.999, 1e-8, 0.0)),
    "adam_betas": (optim.adam(0.02, b1=0.5, b2=0.9, eps=1e-3),
                   lambda ps, gs: ref_adam(ps, gs, 0.02, 0.5, 0.9, 1e-3, 0.0)),
    "adamw": (optim.adamw(0.01, weight_decay=0.1), lambda ps, gs: ref_adam(ps, gs, 0.01, 0.9, 0.999, 1e-8, 0.1)),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", list(CASES))
def test_eager_updates_match_reference(case, dtype):
    opt, ref = CASES[case]
    params = make_params(dtype)
    gs_seq = grads_sequence(params, None, STEPS, dtype)
    state = opt.init(params)
    p = params
    for gs in gs_seq:
        p, state = opt.update(gs, state, p)
    assert tree_structure(p) == tree_structure(params) and p["layers"][1].b is None
    want = ref(tree_leaves(params), [tree_leaves(g) for g in gs_seq])
    for got, w in zip(tree_leaves(p), want):
        assert np.asarray(got).dtype == dtype
        np.testing.assert_allclose(got, w, rtol=1e-13 if dtype == np.float64 else 2e-6, atol=1e-13)


@pytest.mark.parametrize("case", ["momentum", "adamw"])
def test_jitted_training_step_matches_reference(case):
    """A whole step (gradient and update) in one gradc.jit, the state passed through as
    a pytree; the reference applies the same equations to gradc.grad's gradients."""
    opt, ref = CASES[case]
    X = rng.standard_normal((6, 4))
    params = make_params(np.float64)

    @gradc.jit
    def step(params, state, X):
        return opt.update(gradc.grad(loss)(params, X), state, params)
    p, state = params, opt.init(params)
    ref_p, ref_gs = tree_leaves(params), []
    for _ in range(5):
        ref_gs.append(tree_leaves(gradc.grad(loss)(tree_unflatten(tree_structure(params), ref_p), X)))
        ref_p = ref(tree_leaves(params), ref_gs)
        p, state = step(p, state, X)
    for got, w in zip(tree_leaves(p), ref_p):
        np.testing.assert_allclose(got, w, rtol=1e-12, atol=1e-14)


def test_training_reduces_the_loss_and_schedules():
    X = rng.standard_normal((30, 4))
    params = make_params(np.float64)
    seen = []
    opt = optim.adam(lambda count: seen.append(count) or 0.1 * 0.99 ** count)
    state = opt.init(params)
    vg = gradc.value_and_grad(loss)
    first, _ = vg(params, X)
    for _ in range(50):
        value, g = vg(params, X)
        params, state = opt.update(g, state, params)
    assert seen == list(range(50))
    assert value < 0.5 * first


def test_bad_input():
    with pytest.raises(gradc.ArgumentError, match="learning_rate must be a non-negative"):
        optim.sgd(-0.1)
    with pytest.raises(gradc.ArgumentError, match="b1 and b2"):
        optim.adam(b1=1.0)
    opt = optim.adam()
    params = {"W": np.ones(2), "b": np.ones(1)}
    with pytest.raises(gradc.ArgumentError, match="gradients' structure"):
        opt.update({"W": np.ones(2)}, opt.init(params), params)
