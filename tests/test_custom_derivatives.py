"""gradc.custom_jvp and gradc.custom_vjp, written as JAX users write them.

Oracles are closed forms in numpy (the derivative a rule states, or the function's own
derivative where the rule is exact), finite differences where no closed form is handy,
and JAX where it is installed.  A rule that returns a deliberately different derivative
proves the rule, not the function, was differentiated.  Tolerances: float64 1e-12
relative (a few ulps through a handful of ops); float32 2e-5 (gradc_helpers.F32_RTOL)."""
from __future__ import annotations

import pickle
from functools import partial

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
from gradc.ops.custom import CALLS

from gradc_helpers import F32_RTOL, fd_grad

BACKENDS = ["numpy", "llvm", "c"]
RTOL = {np.float64: 1e-12, np.float32: F32_RTOL}


def _ops(graph) -> set:
    return {d.op for _, d in graph.nx.nodes(data=True)}


def _rng(seed=0):
    return np.random.default_rng(seed)


def _sigmoid(x):
    e = np.exp(-np.abs(x))                     # stable at any x: exp of a non-positive number
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


# ----------------------------------------------------------------------------- the classic rules
@gradc.custom_jvp
def safe_norm(x):
    return gnp.sqrt(gnp.sum(x * x))


@safe_norm.defjvp
def safe_norm_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    n = safe_norm(x)
    nz = gnp.where(n == 0.0, 1.0, n)          # the rule's choice at 0: a zero derivative
    return n, gnp.where(n == 0.0, 0.0, gnp.sum(x * t) / nz)


@gradc.custom_jvp
def log1pexp(x):
    return gnp.log1p(gnp.exp(x))


log1pexp.defjvps(lambda t, ans, x: t * gradc.sigmoid(x))


@gradc.custom_vjp
def clip_gradient(lo, hi, x):
    return x                                   # the identity; its gradient is clipped


def _clip_fwd(lo, hi, x):
    return x, (lo, hi)


def _clip_bwd(res, g):
    lo, hi = res
    return (None, None, gnp.clip(g, lo, hi))


clip_gradient.defvjp(_clip_fwd, _clip_bwd)


@gradc.custom_vjp
def seven_times(x):
    return x * x


seven_times.defvjp(lambda x: (x * x, None), lambda res, g: (7.0 * g,))    # not 2x: a rule of its own


@gradc.custom_vjp
def cube(x):
    return x * x * x


cube.defvjp(lambda x: (cube(x), x), lambda x, g: (3.0 * x * x * g,))      # exact, from a residual


def _plain_norm(x):
    return gnp.sqrt(gnp.sum(x * x))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_safe_norm_is_finite_at_zero_where_the_plain_gradient_is_nan(backend, dtype):
    zero = np.zeros(5, dtype)
    assert np.all(np.isnan(gradc.grad(_plain_norm, backend=backend)(zero)))
    g0 = gradc.grad(safe_norm, backend=backend)(zero)
    assert g0.dtype == dtype and np.array_equal(g0, np.zeros(5, dtype))
    x = _rng().standard_normal(5).astype(dtype)
    np.testing.assert_allclose(gradc.grad(safe_norm, backend=backend)(x), x / np.linalg.norm(x),
                               rtol=RTOL[dtype])


@pytest.mark.parametrize("backend", BACKENDS)
def test_log1pexp_follows_its_rule_at_large_x(backend):
    x = np.array([-800.0, -30.0, 0.0, 1.5, 30.0, 800.0])
    f = lambda x: gnp.sum(log1pexp(x))                  # noqa: E731
    np.testing.assert_allclose(gradc.grad(f, backend=backend)(x), _sigmoid(x), rtol=1e-12)
    # the rule differentiated again: sigmoid' = e^-|x| / (1 + e^-|x|)^2; gradc's s (1 - s)
    # loses the digits of 1 - s where s is near 1 (about eps absolute)
    e = np.exp(-np.abs(x))
    np.testing.assert_allclose(gradc.hessian(f, backend=backend)(x), np.diag(e / (1 + e) ** 2), rtol=1e-12,
                               atol=4e-16)
    np.testing.assert_allclose(gradc.jit(f, backend=backend)(x[:4]), np.sum(np.logaddexp(0, x[:4])), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_clip_gradient_clips_the_cotangent(backend):
    x = np.array([0.01, 0.1, 1.0, -2.0, 0.3])
    f = lambda x: gnp.sum(3.0 * clip_gradient(-0.5, 0.5, x) ** 2)     # noqa: E731
    np.testing.assert_allclose(gradc.grad(f, backend=backend)(x), np.clip(6.0 * x, -0.5, 0.5), rtol=1e-12)
    np.testing.assert_allclose(gradc.jit(f, backend=backend)(x), np.sum(3.0 * x * x), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_rule_is_used_not_the_function(backend):
    x = _rng(1).standard_normal(4)
    vg = gradc.value_and_grad(lambda x: gnp.sum(gnp.sin(seven_times(x))), backend=backend)
    v, g = vg(x)
    np.testing.assert_allclose(v, np.sum(np.sin(x * x)), rtol=1e-12)
    np.testing.assert_allclose(g, 7.0 * np.cos(x * x), rtol=1e-12)         # the true one is 2x cos(x^2)


def test_concrete_calls_just_run():
    x = np.array([3.0, 4.0])
    assert safe_norm(x) == 5.0 and isinstance(safe_norm(x), (float, np.floating, np.ndarray))
    np.testing.assert_allclose(log1pexp(x), np.log1p(np.exp(x)), rtol=1e-15)
    assert np.array_equal(seven_times(x), x * x)

    @gradc.custom_vjp
    def no_rule(x):
        return 2 * x
    assert np.array_equal(no_rule(x), 2 * x)        # a rule is needed only to transform it


# ----------------------------------------------------------------------------- structure
@gradc.custom_vjp
def layer(p, x):
    return {"a": p["w"] * x, "b": gnp.sin(x)}


def _layer_fwd(p, x):
    return layer(p, x), (p["w"], x)


def _layer_bwd(res, g):
    w, x = res
    return ({"w": g["a"] * x}, g["a"] * w + g["b"] * gnp.cos(x))


layer.defvjp(_layer_fwd, _layer_bwd)


def _layer_loss(p, x):
    o = layer(p, x)
    return gnp.sum(o["a"] ** 2 + 3.0 * o["b"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_pytrees_and_several_outputs(backend):
    r = _rng(2)
    w, x = r.standard_normal(6), r.standard_normal(6)
    (gp, gx) = gradc.grad(_layer_loss, argnums=(0, 1), backend=backend)({"w": w}, x)
    np.testing.assert_allclose(gp["w"], 2 * w * x * x, rtol=1e-12)
    np.testing.assert_allclose(gx, 2 * w * w * x + 3 * np.cos(x), rtol=1e-12)
    np.testing.assert_allclose(gradc.jit(_layer_loss, backend=backend)({"w": w}, x),
                               np.sum((w * x) ** 2 + 3 * np.sin(x)), rtol=1e-12)
    # keyword arguments are resolved to positions, as JAX does
    gk = gradc.grad(lambda x: gnp.sum(layer(x=x, p={"w": w})["a"]), backend=backend)(x)
    np.testing.assert_allclose(gk, w, rtol=1e-12)
    # only one of the outputs used: the other's cotangent is zero
    gb = gradc.grad(lambda x: gnp.sum(layer({"w": w}, x)["b"]), backend=backend)(x)
    np.testing.assert_allclose(gb, np.cos(x), rtol=1e-12)


@partial(gradc.custom_jvp, nondiff_argnums=(0,))
def apply_fn(fn, x):
    return fn(x)


@apply_fn.defjvp
def _apply_fn_jvp(fn, primals, tangents):
    (x,), (t,) = primals, tangents
    return apply_fn(fn, x), 100.0 * t


@partial(gradc.custom_vjp, nondiff_argnums=(1, 2))
def scaled(x, k, shift):
    return x * k + shift


scaled.defvjp(lambda x, k, shift: (x * k + shift, None), lambda k, shift, res, g: (g * k * 10.0,))


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_nondiff_argnums(backend):
    x = _rng(3).standard_normal(5)
    g = gradc.grad(lambda x: gnp.sum(apply_fn(gnp.sin, x)), backend=backend)(x)
    np.testing.assert_allclose(g, np.full(5, 100.0))                       # the rule's, not cos(x)
    shift = np.arange(5.0)                                                  # an array, not differentiated
    f = lambda x, s: gnp.sum(scaled(x, 2.0, s) ** 2)                        # noqa: E731
    gx, gs = gradc.grad(f, argnums=(0, 1), backend=backend)(x, shift)
    np.testing.assert_allclose(gx, 2 * (2 * x + shift) * 2.0 * 10.0, rtol=1e-12)
    np.testing.assert_array_equal(gs, np.zeros(5))                         # nondiff: no gradient
    np.testing.assert_allclose(gradc.jit(f, backend=backend)(x, shift), np.sum((2 * x + shift) ** 2), rtol=1e-12)


# ----------------------------------------------------------------------------- transformations
@gradc.custom_vjp
def softplus_v(x):
    return gnp.log1p(gnp.exp(x))


softplus_v.defvjp(lambda x: (softplus_v(x), x), lambda x, g: (g * gradc.sigmoid(x),))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rank3_at_a_size_that_vectorizes_and_splits(backend, dtype):
    r = _rng(4)
    x = (3 * r.standard_normal((64, 64, 64))).astype(dtype)
    w = r.standard_normal((64, 64, 64)).astype(dtype)
    loss = lambda x, w: gnp.sum(softplus_v(x) * w) + gnp.sum(log1pexp(x) * w)     # noqa: E731
    vg = gradc.value_and_grad(loss, backend=backend)
    v, g = vg(x, w)
    v2, g2 = vg(x, w)                                # the second call takes the C call path
    assert (vg._fast is not None) == (backend != "numpy")
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    assert g.dtype == dtype
    np.testing.assert_allclose(g, 2 * w64 * _sigmoid(x64), rtol=RTOL[dtype], atol=10 * np.finfo(dtype).eps)
    np.testing.assert_allclose(v, 2 * np.sum(np.logaddexp(0, x64) * w64), rtol=RTOL[dtype] * 10)
    np.testing.assert_array_equal(g, g2)
    assert not _ops(vg.lower(x, w).graph) & {"custom_jvp", "custom_vjp"}    # compiled: ordinary ops only


def test_vmap_of_grad_and_grad_of_vmap():
    r = _rng(5)
    w, X = r.standard_normal(4), r.standard_normal((3, 4))
    per = gradc.vmap(gradc.grad(_layer_loss, argnums=1), in_axes=(None, 0))({"w": w}, X)
    np.testing.assert_allclose(per, 2 * w * w * X + 3 * np.cos(X), rtol=1e-12)
    total = lambda X: gnp.sum(gradc.vmap(lambda x: _layer_loss({"w": w}, x))(X))      # noqa: E731
    np.testing.assert_allclose(gradc.grad(total)(X), 2 * w * w * X + 3 * np.cos(X), rtol=1e-12)
    tot2 = lambda X: gnp.sum(gradc.vmap(safe_norm)(X))                              # noqa: E731
    X[1] = 0.0
    want = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-300)
    np.testing.assert_allclose(gradc.grad(tot2)(X), want, rtol=1e-12)
    np.testing.assert_allclose(gradc.jit(gradc.vmap(safe_norm))(X), np.linalg.norm(X, axis=1), rtol=1e-12)


def test_forward_mode_uses_the_rules():
    x = _rng(6).standard_normal(4)
    t = _rng(7).standard_normal(4)
    _, tout = gradc.jvp(lambda x: apply_fn(gnp.exp, x), (x,), (t,))
    np.testing.assert_allclose(tout, 100.0 * t)                         # custom_jvp: its rule
    _, tout = gradc.jvp(seven_times, (x,), (t,))
    np.testing.assert_allclose(tout, 7.0 * t, rtol=1e-12)                # custom_vjp: bwd's adjoint
    J = gradc.jacfwd(lambda x: layer({"w": 2 * x}, x)["a"])(x)         # both the argument and the tree
    np.testing.assert_allclose(J, np.diag(4 * x), rtol=1e-12)
    np.testing.assert_allclose(gradc.jacrev(lambda x: layer({"w": 2 * x}, x)["a"])(x), np.diag(4 * x), rtol=1e-12)


def test_transformations_of_the_decorated_function_itself():
    x = np.array([1.0, 2.0, 3.0])
    out, vjp_fn = gradc.vjp(cube, x)
    np.testing.assert_allclose(out, x ** 3, rtol=1e-15)
    np.testing.assert_allclose(vjp_fn(np.ones(3))[0], 3 * x ** 2, rtol=1e-15)
    np.testing.assert_allclose(gradc.jacobian(cube)(x), np.diag(3 * x ** 2), rtol=1e-15)
    _, t = gradc.jvp(safe_norm, (x,), (np.ones(3),))
    np.testing.assert_allclose(t, x.sum() / np.linalg.norm(x), rtol=1e-15)
    (v, aux), g = gradc.value_and_grad(lambda x: (safe_norm(x), {"c": cube(x)}), has_aux=True)(x)
    np.testing.assert_allclose(g, x / np.linalg.norm(x), rtol=1e-15)
    np.testing.assert_allclose(aux["c"], x ** 3, rtol=1e-15)


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_second_derivatives(backend):
    x = _rng(8).standard_normal(5)
    H = gradc.hessian(lambda x: gnp.sum(cube(x)), backend=backend)(x)
    np.testing.assert_allclose(H, np.diag(6 * x), rtol=1e-12)            # through bwd's residual
    gg = gradc.grad(lambda x: gnp.sum(gradc.grad(lambda y: gnp.sum(cube(y)))(x)), backend=backend)(x)
    np.testing.assert_allclose(gg, 6 * x, rtol=1e-12)
    hv = gradc.hvp(lambda x: gnp.sum(log1pexp(x)), (x,), (np.ones(5),), backend=backend)
    s = _sigmoid(x)
    np.testing.assert_allclose(hv, s * (1 - s), rtol=1e-12)
    # clip_gradient's fwd does not call it: the second order differentiates the gradient
    # clip(6x) as written (6 inside the band, 0 outside), as JAX does
    clip_loss = lambda x: gnp.sum(3.0 * clip_gradient(-0.5, 0.5, x) ** 2)      # noqa: E731
    for jac in (gradc.jacrev, gradc.jacfwd):
        np.testing.assert_allclose(jac(gradc.grad(clip_loss), backend=backend)(x),
                                   np.diag(np.where(np.abs(6 * x) < 0.5, 6.0, 0.0)))
    # the rule's own second derivative: seven_times's gradient is 7g, constant in x
    np.testing.assert_array_equal(gradc.hessian(lambda x: gnp.sum(seven_times(x)), backend=backend)(x),
                                  np.zeros((5, 5)))


def test_inside_jit_and_nested_transformations():
    x = _rng(9).standard_normal(3)
    inner = gradc.jit(lambda x: gnp.sum(seven_times(x)))
    np.testing.assert_allclose(gradc.grad(inner)(x), np.full(3, 7.0))     # jit keeps the rule for grad
    np.testing.assert_allclose(gradc.jit(gradc.grad(lambda x: gnp.sum(cube(x))))(x), 3 * x * x, rtol=1e-12)


def test_against_finite_differences_where_the_rule_is_exact():
    x = _rng(10).standard_normal(6)
    g = gradc.grad(lambda x: gnp.sum(gnp.tanh(softplus_v(x)) * cube(x)))(x)
    want = fd_grad(lambda x: np.sum(np.tanh(np.logaddexp(0, x)) * x ** 3), [x], 0)
    np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-6)


def test_against_jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy

    @jax.custom_jvp
    def j_norm(x):
        return jnp.sqrt(jnp.sum(x * x))

    @j_norm.defjvp
    def _j_norm_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        n = j_norm(x)
        return n, jnp.where(n == 0.0, 0.0, jnp.sum(x * t) / jnp.where(n == 0.0, 1.0, n))

    @jax.custom_vjp
    def j_clip(lo, hi, x):
        return x
    j_clip.defvjp(lambda lo, hi, x: (x, (lo, hi)), lambda res, g: (None, None, jnp.clip(g, *res)))

    @jax.custom_vjp
    def j_cube(x):
        return x * x * x
    j_cube.defvjp(lambda x: (j_cube(x), x), lambda x, g: (3.0 * x * x * g,))

    x = _rng(11).standard_normal((2, 3))
    both = [(gradc.jacrev, jax.jacrev), (gradc.jacfwd, jax.jacfwd)]
    for gf, jf, orders in [
            (lambda x: safe_norm(x) ** 3, lambda x: j_norm(x) ** 3, both),
            # clip's fwd does not call clip_gradient: the second order differentiates fwd
            (lambda x: gnp.sum(clip_gradient(-0.3, 0.3, x) ** 2), lambda x: jnp.sum(j_clip(-0.3, 0.3, x) ** 2), both),
            # cube's fwd calls cube: its rule again (JAX has no forward mode for it)
            (lambda x: gnp.sum(gnp.sin(cube(x))), lambda x: jnp.sum(jnp.sin(j_cube(x))), both[:1])]:
        np.testing.assert_allclose(gradc.grad(gf)(x), np.asarray(jax.grad(jf)(x)), rtol=1e-12)
        for gt, jt in orders:
            np.testing.assert_allclose(gt(gradc.grad(gf))(x), np.asarray(jt(jax.grad(jf))(x)),
                                       rtol=1e-11, atol=1e-14)
    np.testing.assert_array_equal(gradc.grad(safe_norm)(np.zeros(3)), np.asarray(jax.grad(j_norm)(np.zeros(3))))


# ----------------------------------------------------------------------------- compiled code
def _both_rules(x):
    return gnp.sum(log1pexp(x) * cube(x))


def test_compiled_graph_holds_no_rule_and_its_cache_key_is_stable():
    x = _rng(12).standard_normal(8)
    a = gradc.value_and_grad(_both_rules).lower(x)
    b = gradc.value_and_grad(_both_rules).lower(x)            # traced again: new call numbers
    assert not _ops(a.graph) & {"custom_jvp", "custom_vjp"} and "custom_vjp" in _ops(a.forward)
    assert a.graph.text(sources=False) == b.graph.text(sources=False)   # the disk cache's key
    assert "custom_vjp" not in a.c_source() and "custom_jvp" not in a.c_source()
    low = pickle.loads(pickle.dumps(a))
    v, g = low._entry.run([x])
    np.testing.assert_allclose(g, 3 * x * x * np.logaddexp(0, x) + x ** 3 * _sigmoid(x), rtol=1e-12)


def test_transformed_functions_pickle():
    x = _rng(13).standard_normal(4)
    g = gradc.grad(lambda x: gnp.sum(seven_times(x)))
    for f in (seven_times, safe_norm, gradc.jit(layer)):
        assert pickle.loads(pickle.dumps(f)) is f                 # module-level: by name
    cloudpickle = pytest.importorskip("cloudpickle")
    g2 = cloudpickle.loads(cloudpickle.dumps(g))
    np.testing.assert_allclose(g2(x), np.full(4, 7.0))


def test_a_graph_whose_rule_is_gone_refuses_clearly():
    from gradc.autodiff import vjp_graph
    x = np.ones(3)
    fo = gradc.jit(lambda x: gnp.sum(cube(x))).lower(x).forward
    calls = {d.params["call"] for _, d in fo.nx.nodes(data=True) if d.op == "custom_vjp"}
    saved = {c: CALLS.pop(c) for c in calls}
    try:
        with pytest.raises(gradc.GradcError, match="not known in this process"):
            vjp_graph(fo, [0], seed="one")
    finally:
        CALLS.update(saved)


# ----------------------------------------------------------------------------- errors
def _bad_vjp(fwd, bwd, n=2):
    @gradc.custom_vjp
    def bad(x, y):
        return x * y
    bad.defvjp(fwd, bwd)
    return bad


def _count_bwd(res, g):
    return (g,)


def _shape_bwd(res, g):
    return (gnp.sum(g), g)


def _tree_bwd(res, g):
    return ([g], g)


@pytest.mark.parametrize("bwd, match", [
    (_count_bwd, r"must return a tuple of 2 cotangent\(s\).*returned a tuple of 1"),
    (_shape_bwd, r"argument 0 \(x\) of bad of shape \(\), but it must have the shape of its primal, \(3,\)"),
    (_tree_bwd, r"cotangent of structure .* for argument 0 \(x\) of bad"),
])
def test_bad_bwd_is_a_clear_error(bwd, match):
    bad = _bad_vjp(lambda x, y: (x * y, None), bwd)
    with pytest.raises(gradc.GradcError, match=match) as e:
        gradc.grad(lambda x: gnp.sum(bad(x, x)))(np.ones(3))
    msg = str(e.value)
    assert "custom_vjp function bad" in msg and bwd.__name__ in msg
    assert f"test_custom_derivatives.py:{bwd.__code__.co_firstlineno}" in msg      # the user's line


def test_other_misuse_is_a_clear_error():
    x = np.ones(3)
    bad = _bad_vjp(lambda x, y: x * y, _count_bwd)
    with pytest.raises(gradc.GradcError, match=r"fwd .* must return a pair \(output, residuals\)"):
        gradc.grad(lambda x: gnp.sum(bad(x, x)))(x)

    @gradc.custom_jvp
    def j(x):
        return x

    def j_rule(primals, tangents):
        return tangents[0]
    j.defjvp(j_rule)
    with pytest.raises(gradc.GradcError, match=r"j_rule .* must return a pair \(primal_out, tangent_out\)"):
        gradc.grad(lambda x: gnp.sum(j(x)))(x)

    @gradc.custom_vjp
    def undefined(x):
        return x
    with pytest.raises(gradc.GradcError, match=r"has no rule: call undefined.defvjp\(fwd, bwd\)"):
        gradc.grad(lambda x: gnp.sum(undefined(x)))(x)

    def closes_over(w):
        @gradc.custom_vjp
        def f(x):
            return x * w
        f.defvjp(lambda x: (x * w, None), lambda res, g: (g * w,))
        return gnp.sum(f(np.ones(3)))
    with pytest.raises(gradc.GradcError, match="closes over a traced value"):
        gradc.grad(closes_over)(x)
    with pytest.raises(gradc.ArgumentError, match="nondiff_argnums entry 3 is out of range"):
        gradc.grad(lambda x: gnp.sum(partial(gradc.custom_vjp, nondiff_argnums=(3,))(lambda x: x)(x)))(x)


def test_ahead_of_time_and_c_source_paths_see_ordinary_ops():
    from gradc.aot import traced
    from gradc.backends.c_backend import c_source
    forward, vg, wrt = traced(_both_rules, ["f64[n]"], 0)
    assert not (_ops(forward) | _ops(vg)) & {"custom_jvp", "custom_vjp"} and wrt == ["x"]
    built = gradc.value_and_grad(_both_rules, backend="numpy").lower(np.ones(4))._entry.unoptimized
    assert "custom_vjp" in _ops(built) and "custom_vjp" not in c_source(built)   # C from a marked graph
