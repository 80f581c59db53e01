"""``checkpoint`` (``remat``) on a scan's step: the same gradients as without (against
back-propagation through time in numpy and finite differences), with the forward loop
stacking only what the policy saves, so the kernel's memory no longer grows by the
step's values per step; and the policies' names, JAX's among them."""
from __future__ import annotations

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
from gradc import lax
from gradc.backends.kernel import bind_sizes
from gradc.backends.workspace import workspace_bytes
from gradc.errors import ArgumentError
from gradc_helpers import fd_grad, kernel_of
from test_scan import directional_fd, rnn_bptt, rnn_data, rnn_loss

POLICIES = [None, gradc.checkpoint_policies.nothing_saveable, gradc.checkpoint_policies.dots_saveable,
            gradc.checkpoint_policies.dots_with_no_batch_dims_saveable,
            gradc.checkpoint_policies.everything_saveable]


def rnn_checkpointed(p, h0, xs, cy, cc, policy):
    """rnn_loss with its step wrapped in checkpoint(policy=...)."""
    def step(h, x):
        h = gnp.tanh(x @ p["Wx"] + h @ p["Wh"] + p["b"])
        return h, h
    h, hs = lax.scan(gradc.checkpoint(step, policy=policy), h0, xs)
    return gnp.sum(hs * cy) / cy.shape[0] + gnp.sum(h * cc)


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: getattr(p, "__name__", "default"))
def test_gradients_match_bptt_with_every_policy(policy, every_backend):
    p, h0, xs, cy, cc = rnn_data(3, 9, (32,), 16, 64)
    f = gradc.value_and_grad(lambda p, h0, xs: rnn_checkpointed(p, h0, xs, cy, cc, policy), argnums=(0, 1, 2))
    value, (gp, gh0, gxs) = f(p, h0, xs)
    assert value == pytest.approx(rnn_loss(np, p, h0, xs, cy, cc), rel=1e-12)
    wp, wh0, wxs = rnn_bptt(p, h0, xs, cy, cc)
    for k in wp:     # (the same sums as BPTT's, in another order: 1e-9 bounds their rounding)
        np.testing.assert_allclose(gp[k], wp[k], rtol=1e-9, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(gh0, wh0, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gxs, wxs, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("threads", ["1", "2"])
def test_threads_agree_at_a_batch_that_splits(threads, monkeypatch):
    """Batch 2048 (nests split over threads): BPTT's gradients at both thread counts."""
    monkeypatch.setenv("GRADC_NUM_THREADS", threads)
    p, h0, xs, cy, cc = rnn_data(4, 5, (2048,), 8, 32)
    f = gradc.grad(lambda p: rnn_checkpointed(p, h0, xs, cy, cc, None))
    gp = f(p)
    wp, _, _ = rnn_bptt(p, h0, xs, cy, cc)
    for k in wp:
        np.testing.assert_allclose(gp[k], wp[k], rtol=1e-9, atol=1e-10, err_msg=k)


def _residual_outputs(f, *args) -> int:
    """How many values per step the forward loop stacks for the backward loop."""
    g = f.lower(*args).graph
    bodies = {g[n].params["body"] for n in g.nx.nodes if g[n].op == "scan"}
    stacking = [b for b in bodies if b.tag == "residuals"]
    assert len(stacking) == 1, bodies
    return stacking[0].ny - stacking[0].base.ny


def _model(policy, remat=True):
    def loss(W, xs):
        def step(h, x):
            a = h @ W
            b = gnp.tanh(a + x) * a          # (its adjoint reads a, a product, and tanh's value)
            return b, gnp.sum(gnp.sin(b), axis=1)
        h, ys = lax.scan(gradc.checkpoint(step, policy=policy) if remat else step, gnp.zeros_like(xs[0]), xs)
        return gnp.sum(h * h) + gnp.sum(ys)
    return loss


def test_the_forward_loop_stacks_what_the_policy_saves():
    r = np.random.default_rng(0)
    W, xs = r.normal(size=(6, 6)) * 0.3, r.normal(size=(5, 4, 6))
    plain = _residual_outputs(gradc.grad(_model(None, remat=False)), W, xs)
    saved = {name: _residual_outputs(gradc.grad(_model(getattr(gradc.checkpoint_policies, name))), W, xs)
             for name in ("nothing_saveable", "dots_saveable", "everything_saveable")}
    assert saved["nothing_saveable"] == 1               # the incoming carry, nothing else
    assert saved["dots_saveable"] == 2                  # the carry and h @ W
    assert saved["everything_saveable"] == plain > 2    # what the adjoint reads: as without checkpoint
    for name in saved:
        g = gradc.grad(_model(getattr(gradc.checkpoint_policies, name)))(W, xs)
        np.testing.assert_allclose(g, fd_grad(_model_numpy, [W, xs], 0), rtol=1e-6, atol=1e-8, err_msg=name)


def _model_numpy(W, xs):
    h, total = np.zeros_like(xs[0]), 0.0
    for x in xs:
        a = h @ W
        h = np.tanh(a + x) * a
        total += np.sum(np.sin(h))
    return np.sum(h * h) + total


def test_the_kernel_needs_memory_for_one_carry_per_step():
    """An RNN of 400 steps, batch 64, 64 units: without checkpoint the workspace holds
    every step's saved values; with it, the carry of each step (32 KB) and what does
    not grow with the steps."""
    r = np.random.default_rng(1)
    W, U = r.normal(size=(64, 64)) * 0.1, r.normal(size=(16, 64)) * 0.2

    def loss(W, U, xs, policy=None, remat=True):
        def step(h, x):
            a = gnp.tanh(h @ W + x @ U)
            b = gnp.sin(a) * gnp.exp(-a * a)
            return a + 0.1 * b, gnp.sum(b, axis=1)
        h, ys = lax.scan(gradc.checkpoint(step) if remat else step, gnp.zeros((64, 64)), xs)
        return gnp.sum(h ** 2) + gnp.sum(ys)
    steps = 400
    xs = r.normal(size=(steps, 64, 16))
    sizes = {}
    for remat in (False, True):
        f = gradc.value_and_grad(lambda W, U, xs: loss(W, U, xs, remat=remat), argnums=(0, 1), backend="llvm")
        k = kernel_of(f, W, U, xs)
        sizes[remat] = workspace_bytes(k.schedule, bind_sizes(k.schedule.graph, [W, U, xs]))
    carry_bytes = 64 * 64 * 8
    assert sizes[True] < steps * carry_bytes * 1.5 < 3 * steps * carry_bytes < sizes[False]


def test_fori_loop_body_checkpointed():
    """A fori_loop whose body is checkpointed: its scan saves the carry only; the
    gradient against finite differences of the numpy loop."""
    r = np.random.default_rng(2)
    W, x0 = r.normal(size=(5, 5)) * 0.8, r.normal(size=(3, 5))

    def f(W, x):
        return gnp.sum(lax.fori_loop(0, 6, gradc.checkpoint(lambda i, h: gnp.sin(h @ W) + 0.1 * i), x) ** 2)

    def f_np(W, x):
        for i in range(6):
            x = np.sin(x @ W) + 0.1 * i
        return np.sum(x ** 2)
    g = gradc.grad(f, argnums=(0, 1))
    gw, gx = g(W, x0)
    np.testing.assert_allclose(gw, fd_grad(f_np, [W, x0], 0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(gx, fd_grad(f_np, [W, x0], 1), rtol=1e-6, atol=1e-9)
    assert _residual_outputs(g, W, x0) == 2          # (the int counter and the value)


def test_second_order_vmap_and_forward_mode_compose():
    """grad of grad, vmap of grad and jvp of a checkpointed scan against the plain one
    (checked against finite differences in tests/test_scan.py)."""
    r = np.random.default_rng(3)
    w, xs = r.normal(size=4) * 0.5, r.normal(size=(7, 4))

    def model(w, xs, remat):
        def step(c, x):
            c = gnp.sin(c * w + x) + 0.5 * c
            return c, gnp.sum(c ** 3)
        c, ys = lax.scan(gradc.checkpoint(step) if remat else step, gnp.zeros(4), xs)
        return gnp.sum(c * c) + gnp.sum(ys)
    cases = [(gradc.hessian, (w,)),
             (lambda f: gradc.vmap(gradc.grad(f)), (np.stack([w, w * 0.5]),)),
             (lambda f: (lambda w: gradc.jvp(f, (w,), (np.ones(4),))[1]), (w,))]
    for transform, args in cases:
        got = transform(lambda w: model(w, xs, True))(*args)
        want = transform(lambda w: model(w, xs, False))(*args)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_policies_errors_and_elsewhere():
    f = lambda x: gnp.sum(gnp.sin(x) ** 2)   # noqa: E731
    x = np.linspace(0, 1, 5)
    for g in (gradc.checkpoint(f), gradc.remat(f), gradc.checkpoint(policy=None)(f)):
        np.testing.assert_allclose(gradc.grad(g)(x), np.sin(2 * x), rtol=1e-14)
        assert g(x) == pytest.approx(np.sum(np.sin(x) ** 2))
    with pytest.raises(ArgumentError, match="policy=.*not one gradc knows.*dots_saveable"):
        gradc.checkpoint(f, policy=lambda *a, **k: True)
    with pytest.raises(ArgumentError, match="a policy to pass to checkpoint"):
        gradc.checkpoint_policies.dots_saveable("dot_general")
    assert gradc.lax.checkpoint is gradc.checkpoint


def test_jax_policies_are_recognized_and_agree():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    p, h0, xs, cy, cc = rnn_data(5, 6, (4,), 3, 5)

    def jax_loss(p, h0, xs, policy):
        def step(h, x):
            h = jax.numpy.tanh(x @ p["Wx"] + h @ p["Wh"] + p["b"])
            return h, h
        h, hs = jax.lax.scan(jax.checkpoint(step, policy=policy), h0, xs)
        return jax.numpy.sum(hs * cy) / cy.shape[0] + jax.numpy.sum(h * cc)
    for name in ("dots_saveable", "nothing_saveable", "everything_saveable"):
        policy = getattr(jax.checkpoint_policies, name)
        got = gradc.grad(lambda p: rnn_checkpointed(p, h0, xs, cy, cc, policy))(p)
        want = jax.grad(lambda p: jax_loss(p, h0, xs, policy))(p)
        for k in p:
            np.testing.assert_allclose(got[k], np.asarray(want[k]), rtol=1e-12, atol=1e-14, err_msg=(name, k))


def test_a_checkpointed_scan_checks_against_finite_differences_in_float32():
    p, h0, xs, cy, cc = rnn_data(6, 5, (8,), 4, 6, dtype=np.float32)
    f = gradc.grad(lambda p: rnn_checkpointed(p, h0, xs, cy, cc, None))
    gp = f(p)
    assert gp["Wh"].dtype == np.float32
    p64 = {k: v.astype(np.float64) for k, v in p.items()}
    args64 = [a.astype(np.float64) for a in (h0, xs, cy, cc)]
    want, v = directional_fd(lambda p: rnn_loss(np, p, *args64), [p64], 0, "Wh")
    # float32: ~1e-7 rounding per op over 5 steps of 6 units, summed over 48 terms
    assert float(np.sum(gp["Wh"] * v)) == pytest.approx(want, rel=1e-4, abs=1e-5)


def _layers(Ws, bs, x, where):
    """A stack of residual layers by scan over their stacked parameters, with the layer
    checkpointed (as JAX models write it), the step checkpointed, or neither."""
    def layer(h, W, b):
        a = h @ W + b
        return h + gnp.tanh(a) * gnp.sin(a)

    def step(h, p):
        if where == "layer":
            return gradc.checkpoint(layer)(h, *p), None
        return layer(h, *p), None
    h, _ = lax.scan(gradc.checkpoint(step) if where == "step" else step, x, (Ws, bs))
    return gnp.sum(h ** 2)


def _layers_numpy(Ws, bs, x):
    for W, b in zip(Ws, bs):
        a = x @ W + b
        x = x + np.tanh(a) * np.sin(a)
    return np.sum(x ** 2)


def test_a_checkpointed_call_inside_the_step():
    """scan over layers whose step calls a checkpointed layer: the same saving as a
    checkpointed step, and the gradients against finite differences."""
    r = np.random.default_rng(8)
    Ws, bs, x = r.normal(size=(5, 8, 8)) * 0.3, r.normal(size=(5, 8)) * 0.1, r.normal(size=(6, 8))
    counts = {}
    for where in ("none", "layer", "step"):
        f = gradc.grad(lambda Ws, bs: _layers(Ws, bs, x, where), argnums=(0, 1))
        gW, gb = f(Ws, bs)
        np.testing.assert_allclose(gW, fd_grad(lambda W, b: _layers_numpy(W, b, x), [Ws, bs], 0), rtol=1e-6,
                                   atol=1e-8, err_msg=where)
        np.testing.assert_allclose(gb, fd_grad(lambda W, b: _layers_numpy(W, b, x), [Ws, bs], 1), rtol=1e-6,
                                   atol=1e-8, err_msg=where)
        counts[where] = _residual_outputs(f, Ws, bs)
    assert counts["layer"] == counts["step"] == 1 < counts["none"]


def test_values_outside_the_checkpointed_call_are_saved():
    """Only the values made inside the checkpointed call are recomputed: a value the
    adjoint reads that the step makes outside it (exp(h)) stays saved."""
    r = np.random.default_rng(9)
    W, xs = r.normal(size=(4, 4)) * 0.4, r.normal(size=(6, 3, 4))

    def loss(W, xs, inner):
        def step(h, x):
            e = gnp.exp(-h * h)                                          # outside: saved
            h = inner(lambda h: gnp.tanh(h @ W + x))(h) * e              # inside: recomputed
            return h, None
        h, _ = lax.scan(step, gnp.zeros_like(xs[0]), xs)
        return gnp.sum(h * h)

    def numpy_loss(W, xs):
        h = np.zeros_like(xs[0])
        for x in xs:
            h = np.tanh(h @ W + x) * np.exp(-h * h)
        return np.sum(h * h)
    plain = gradc.grad(lambda W: loss(W, xs, lambda f: f))
    marked = gradc.grad(lambda W: loss(W, xs, gradc.checkpoint))
    np.testing.assert_allclose(marked(W), fd_grad(lambda W: numpy_loss(W, xs), [W], 0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(marked(W), plain(W), rtol=1e-13, atol=1e-15)   # (the same ops, fused apart)
    g = marked.lower(W).graph
    body = next(g[n].params["body"] for n in g.nx.nodes if g[n].op == "scan" and g[n].params["body"].tag)
    step = body.graph
    saved_ops = sorted(step[n].op for n in step.outputs[body.base.ny + body.ncarry:])
    assert "exp" in saved_ops and "tanh" not in saved_ops, saved_ops
