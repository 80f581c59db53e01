"""gradc.optax (gradc/optax.py, optax_schedules.py, optax_losses.py).

Oracles: each optimizer's update equations written out in numpy (Kingma and Ba's Adam,
Loshchilov and Hutter's AdamW, Nesterov momentum, RMSProp, AdaGrad) over five steps;
the schedules' closed forms at each count; the losses' formulas in numpy and their
gradients against central differences; optax itself where installed.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
import gradc.optax as optax
from gradc.errors import ArgumentError, UnsupportedError

RNG = np.random.default_rng(0)
PARAMS = {"w": RNG.standard_normal((4, 3)), "b": RNG.standard_normal(3).astype(np.float32)}
GRADS = [{"w": RNG.standard_normal((4, 3)), "b": RNG.standard_normal(3).astype(np.float32)} for _ in range(5)]


def _adam_ref(g_seq, p, lr, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, nesterov=False):
    m = v = 0.0
    for t, g in enumerate(g_seq, 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        lr_t = lr(t - 1) if callable(lr) else lr
        m_hat = (b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1 ** t)) if nesterov else m / (1 - b1 ** t)
        p = p - lr_t * (m_hat / (np.sqrt(v / (1 - b2 ** t)) + eps) + wd * p)
    return p


def _momentum_ref(g_seq, p, lr, mu, nesterov):
    tr = 0.0
    for g in g_seq:
        tr = g + mu * tr
        p = p - lr * (g + mu * tr if nesterov else tr)
    return p


def _rmsprop_ref(g_seq, p, lr, decay=0.9, eps=1e-8, centered=False):
    v = m = 0.0
    for g in g_seq:
        v = decay * v + (1 - decay) * g * g
        m = decay * m + (1 - decay) * g
        p = p - lr * g / np.sqrt((v - m * m if centered else v) + eps)
    return p


def _adagrad_ref(g_seq, p, lr, init=0.1, eps=1e-7):
    s = init
    for g in g_seq:
        s = s + g * g
        p = p - lr * g / np.sqrt(s + eps)
    return p


def _decay(c):
    return 0.01 * 0.5 ** (c / 2)


CASES = {   # name -> (optimizer, numpy reference of one leaf's trajectory)
    "adam": (lambda: optax.adam(0.01), lambda gs, p: _adam_ref(gs, p, 0.01)),
    "adam_scheduled": (lambda: optax.adam(optax.exponential_decay(0.01, 2, 0.5)), lambda gs, p: _adam_ref(gs, p, _decay)),
    "nadam": (lambda: optax.nadam(0.01), lambda gs, p: _adam_ref(gs, p, 0.01, nesterov=True)),
    "adamw": (lambda: optax.adamw(0.01, weight_decay=0.1), lambda gs, p: _adam_ref(gs, p, 0.01, wd=0.1)),
    "sgd": (lambda: optax.sgd(0.1), lambda gs, p: p - 0.1 * sum(gs)),
    "momentum": (lambda: optax.sgd(0.1, momentum=0.9), lambda gs, p: _momentum_ref(gs, p, 0.1, 0.9, False)),
    "nesterov": (lambda: optax.sgd(0.1, 0.9, nesterov=True), lambda gs, p: _momentum_ref(gs, p, 0.1, 0.9, True)),
    "rmsprop": (lambda: optax.rmsprop(0.01), lambda gs, p: _rmsprop_ref(gs, p, 0.01)),
    "rmsprop_centered": (lambda: optax.rmsprop(0.01, centered=True),
                         lambda gs, p: _rmsprop_ref(gs, p, 0.01, centered=True)),
    "adagrad": (lambda: optax.adagrad(0.1), lambda gs, p: _adagrad_ref(gs, p, 0.1)),
}


def _run(opt, params, grads, jit=False):
    state = opt.init(params)

    def step(p, s, g):
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s
    f = gradc.jit(step) if jit else step
    for g in grads:
        params, state = f(params, state, g)
    return params, state


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("name", list(CASES))
def test_optimizers_follow_their_equations(name, jit):
    """Five steps on a dict of a float64 and a float32 leaf: each leaf keeps its dtype,
    and the float64 leaf equals the numpy equations to rounding (1e-12 relative); the
    float32 one to float32's (the moments are float32: 1e-5)."""
    make, ref = CASES[name]
    params, _ = _run(make(), PARAMS, GRADS, jit)
    assert params["w"].dtype == np.float64 and params["b"].dtype == np.float32
    for k, tol in (("w", 1e-12), ("b", 1e-5)):
        want = ref([g[k].astype(np.float64) for g in GRADS], PARAMS[k].astype(np.float64))
        np.testing.assert_allclose(params[k], want, rtol=tol, atol=tol, err_msg=k)


def test_transformations_compose_as_their_formulas():
    g = {"a": np.array([3.0, -4.0]), "b": np.array([12.0])}
    u, _ = optax.clip_by_global_norm(6.5).update(g, optax.clip_by_global_norm(6.5).init(g))
    np.testing.assert_allclose(u["a"], g["a"] * 0.5, rtol=1e-15)      # global norm 13
    u, _ = optax.clip_by_global_norm(20.0).update(g, ())
    np.testing.assert_array_equal(u["a"], g["a"])
    u, _ = optax.clip(3.5).update(g, ())
    np.testing.assert_array_equal(u["a"], [3.0, -3.5])
    assert float(optax.global_norm(g)) == 13.0
    p = {"a": np.array([1.0, 2.0]), "b": np.array([5.0])}
    t = optax.add_decayed_weights(0.5, mask={"a": True, "b": False})
    u, _ = t.update(g, t.init(p), p)
    np.testing.assert_array_equal(u["a"], g["a"] + 0.5 * p["a"])
    np.testing.assert_array_equal(u["b"], g["b"])
    t = optax.chain(optax.scale(2.0), optax.scale_by_schedule(lambda c: c + 1.0))
    s = t.init(p)
    for c in range(3):
        u, s = t.update(g, s)
        np.testing.assert_array_equal(u["b"], 2.0 * (c + 1) * g["b"])
    assert int(s[1].count) == 3


def test_schedules_closed_forms():
    c = np.arange(0, 14)
    lin = optax.linear_schedule(1.0, 0.2, 8, transition_begin=2)
    np.testing.assert_allclose([lin(k) for k in c], 1.0 + (0.2 - 1.0) * np.clip(c - 2, 0, 8) / 8, rtol=1e-15)
    poly = optax.polynomial_schedule(1.0, 0.0, 2, 10)
    np.testing.assert_allclose([poly(k) for k in c], (1 - np.minimum(c, 10) / 10) ** 2, rtol=1e-15, atol=1e-15)
    exp = optax.exponential_decay(2.0, 3, 0.5, transition_begin=1, staircase=True, end_value=0.3)
    want = np.maximum(np.where(c - 1 <= 0, 2.0, 2.0 * 0.5 ** np.floor((c - 1) / 3)), 0.3)
    np.testing.assert_allclose([exp(k) for k in c], want, rtol=1e-15)
    cos = optax.cosine_decay_schedule(1.0, 10, alpha=0.1)
    np.testing.assert_allclose([cos(k) for k in c],
                               0.9 * 0.5 * (1 + np.cos(np.pi * np.minimum(c, 10) / 10)) + 0.1, rtol=1e-14)
    pw = optax.piecewise_constant_schedule(1.0, {3: 0.5, 8: 0.1})
    np.testing.assert_allclose([pw(k) for k in c], np.where(c >= 8, 0.05, np.where(c >= 3, 0.5, 1.0)), rtol=1e-15)
    wc = optax.warmup_cosine_decay_schedule(0.0, 1.0, 4, 12, end_value=0.2)
    want = np.where(c < 4, c / 4, 0.2 + 0.8 * 0.5 * (1 + np.cos(np.pi * np.minimum(c - 4, 8) / 8)))
    np.testing.assert_allclose([wc(k) for k in c], want, rtol=1e-14, atol=1e-15)
    assert optax.exponential_decay(1.0, 0, 0.5)(7) == 1.0          # optax's constant cases
    with pytest.raises(ArgumentError, match="decay_steps must be > 0"):
        optax.cosine_decay_schedule(1.0, 0)


def test_a_jitted_training_step_with_a_schedule_and_a_mask():
    """The whole step (loss, gradient, clipped AdamW with a warmup-cosine schedule and a
    weight-decay mask) under gradc.jit equals the same step run eagerly."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, 6))
    y = np.argmax(X @ rng.standard_normal((6, 3)), axis=1)        # separable labels: the loss can fall
    params = {"W": 0.1 * rng.standard_normal((6, 3)), "b": np.zeros(3)}

    def loss(p):
        return gnp.mean(optax.softmax_cross_entropy_with_integer_labels(X @ p["W"] + p["b"], y))
    opt = optax.chain(optax.clip_by_global_norm(1.0),
                      optax.adamw(optax.warmup_cosine_decay_schedule(0.0, 0.05, 5, 40), weight_decay=1e-3,
                                  mask={"W": True, "b": False}))

    def step(p, s):
        l, g = gradc.value_and_grad(loss)(p)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, l
    jstep = gradc.jit(step)
    p1, s1 = params, opt.init(params)
    p2, s2 = params, opt.init(params)
    losses = []
    for _ in range(40):
        p1, s1, l1 = jstep(p1, s1)
        p2, s2, _ = step(p2, s2)
        losses.append(float(l1))
    np.testing.assert_allclose(p1["W"], p2["W"], rtol=1e-12, atol=1e-14)
    assert losses[-1] < 0.8 * losses[0]


LOSSES = {   # name -> (gradc.optax loss of (a, b), numpy formula)
    "l2_loss": (lambda a, b: optax.l2_loss(a, b), lambda a, b: 0.5 * (a - b) ** 2),
    "squared_error": (lambda a, b: optax.squared_error(a, b), lambda a, b: (a - b) ** 2),
    "huber_loss": (lambda a, b: optax.huber_loss(a, b, delta=0.7),
                   lambda a, b: np.where(np.abs(a - b) <= 0.7, 0.5 * (a - b) ** 2, 0.7 * (np.abs(a - b) - 0.35))),
    "log_cosh": (lambda a, b: optax.log_cosh(a, b), lambda a, b: np.log(np.cosh(a - b))),
    "softmax_cross_entropy": (
        lambda a, b: optax.softmax_cross_entropy(a, gnp.exp(b) / gnp.sum(gnp.exp(b), axis=-1, keepdims=True)),
        lambda a, b: -np.sum(np.exp(b) / np.exp(b).sum(-1, keepdims=True)
                             * (a - np.log(np.exp(a).sum(-1, keepdims=True))), axis=-1)),
    "sigmoid_binary_cross_entropy": (
        lambda a, b: optax.sigmoid_binary_cross_entropy(a, 1 / (1 + gnp.exp(-b))),
        lambda a, b: -(1 / (1 + np.exp(-b))) * np.log(1 / (1 + np.exp(-a)))
        - (1 - 1 / (1 + np.exp(-b))) * np.log(1 - 1 / (1 + np.exp(-a)))),
    "cosine_similarity": (lambda a, b: optax.cosine_similarity(a, b),
                          lambda a, b: np.sum(a * b, -1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)),
    "cosine_distance": (lambda a, b: optax.cosine_distance(a, b),
                        lambda a, b: 1 - np.sum(a * b, -1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)),
}


@pytest.mark.parametrize("name", list(LOSSES))
def test_losses_values_and_gradients(name):
    """Values against the numpy formula (1e-13); gradients of their sum in the
    predictions against central differences (h = 1e-6: error ~h² + eps/h ~ 1e-10)."""
    f, ref = LOSSES[name]
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((5, 7, 4)), rng.standard_normal((5, 7, 4))
    got = gradc.jit(f)(a, b)
    np.testing.assert_allclose(got, ref(a, b), rtol=1e-13, atol=1e-13)
    g = gradc.grad(lambda a: gnp.sum(f(a, b)))(a)
    v = rng.standard_normal(a.shape)
    fd = (np.sum(ref(a + 1e-6 * v, b)) - np.sum(ref(a - 1e-6 * v, b))) / 2e-6
    assert abs(np.sum(g * v) - fd) <= 1e-7 * max(1.0, abs(fd))


def test_integer_labels_cross_entropy():
    rng = np.random.default_rng(3)
    logits, labels = rng.standard_normal((6, 5, 10)), rng.integers(0, 10, (6, 5))
    got = gradc.jit(optax.softmax_cross_entropy_with_integer_labels)(logits, labels)
    lse = np.log(np.exp(logits).sum(-1))
    want = lse - np.take_along_axis(logits, labels[..., None], -1)[..., 0]
    np.testing.assert_allclose(got, want, rtol=1e-13)
    g = gradc.grad(lambda x: gnp.sum(optax.softmax_cross_entropy_with_integer_labels(x, labels)))(logits)
    soft = np.exp(logits - lse[..., None])
    np.testing.assert_allclose(g, soft - np.eye(10)[labels], rtol=1e-12, atol=1e-14)   # softmax - one-hot
    with pytest.raises(ArgumentError, match="labels must be integers"):
        optax.softmax_cross_entropy_with_integer_labels(logits, labels.astype(float))
    with pytest.raises(UnsupportedError, match="where= is not supported"):
        optax.softmax_cross_entropy(logits, logits, where=labels > 2)


def test_bad_arguments_are_named():
    with pytest.raises(ArgumentError, match="optax.scale_by_adam: b1 must be >= 0"):
        optax.adam(1e-3, b1=-0.1)
    opt = optax.adam(1e-3)
    s = opt.init({"a": np.ones(2)})
    with pytest.raises(ArgumentError, match="structure"):
        opt.update({"b": np.ones(2)}, s)
    with pytest.raises(ArgumentError, match="needs params"):
        optax.adamw(1e-3).update({"a": np.ones(2)}, optax.adamw(1e-3).init({"a": np.ones(2)}))


def test_matches_optax_where_installed():
    """The same trajectories as optax's: the float64 leaf to 1e-9 relative, plus 1e-8
    absolute for optax's schedules, which round the count's ratio in float32 (lr 1e-2
    times five steps times float32's eps ~ 3e-9); the float32 leaf to float32 rounding."""
    ox = pytest.importorskip("optax")
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    makers = [lambda m: m.adam(1e-2), lambda m: m.nadam(1e-2), lambda m: m.sgd(0.1, momentum=0.9, nesterov=True),
              lambda m: m.rmsprop(1e-2, centered=True, momentum=0.5), lambda m: m.adagrad(0.1),
              lambda m: m.chain(m.clip_by_global_norm(1.0), m.adamw(m.warmup_cosine_decay_schedule(0, 1e-2, 2, 9),
                                                                    weight_decay=0.1)),
              lambda m: m.adam(m.piecewise_constant_schedule(1e-2, {2: 0.5}))]
    for make in makers:
        mine, theirs = make(optax), make(ox)
        pa, sa = PARAMS, mine.init(PARAMS)
        pb, sb = PARAMS, theirs.init(PARAMS)
        for g in GRADS:
            u, sa = mine.update(g, sa, pa)
            pa = optax.apply_updates(pa, u)
            u, sb = theirs.update(g, sb, pb)
            pb = ox.apply_updates(pb, u)
        np.testing.assert_allclose(pa["w"], np.asarray(pb["w"]), rtol=1e-9, atol=1e-8)
        np.testing.assert_allclose(pa["b"], np.asarray(pb["b"]), rtol=2e-6)
    for name in ("l2_loss", "huber_loss", "log_cosh", "cosine_similarity"):
        a, b = RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4))
        np.testing.assert_allclose(getattr(optax, name)(a, b), np.asarray(getattr(ox, name)(a, b)), rtol=1e-12)
    assert math.isclose(float(optax.cosine_decay_schedule(1.0, 10)(3)), float(ox.cosine_decay_schedule(1.0, 10)(3)),
                        rel_tol=1e-15)
