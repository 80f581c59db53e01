"""JAX names a JAX user's code uses: gradc.tree (jax.tree), eval_shape and
ShapeDtypeStruct, linearize, linear_transpose, custom_gradient, block_until_ready,
device_put/device_get, and gradc.lax's reduce_and/or/xor, reduce_precision, index_take,
broadcast_to_rank, batch_matmul, mulhi, polygamma, igamma(c), bessel_i0e/i1e, nextafter.

Oracles: closed forms and plain numpy (loops, fancy indexing, np.frexp rounding for
reduce_precision, Python's exact integers for mulhi), mpmath for the special functions,
finite differences for derivatives, the dot-product identity <f(x), c> = <x, f^T(c)> for
linear_transpose; and JAX itself where it is installed (x64), bit for bit where JAX
defines the bits.  Arrays are computed on the numpy, llvm and c backends, float32 and
float64, at rank 3."""
from __future__ import annotations

import operator
import shutil

import mpmath
import numpy as onp
import pytest

import gradc
import gradc.numpy as np
from gradc import lax

from gradc_helpers import F32_RTOL, fd_jvp

DTYPES = [onp.float32, onp.float64]


def _jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax


def _rtol(dtype):
    return 1e-12 if dtype == onp.float64 else F32_RTOL


# ----------------------------------------------------------------------------- gradc.tree
TREE = {"b": (1.0, [2.0, None]), "a": 0.5, "c": {"x": 4.0}}


def test_tree_namespace_against_closed_forms():
    leaves, td = gradc.tree.flatten(TREE)
    assert leaves == [0.5, 1.0, 2.0, 4.0] == gradc.tree.leaves(TREE)        # dict keys sorted
    assert gradc.tree.structure(TREE) == td and td.num_leaves == 4
    assert gradc.tree.unflatten(td, [10, 20, 30, 40]) == {"a": 10, "b": (20, [30, None]), "c": {"x": 40}}
    assert gradc.tree.map(lambda p, g: p - 0.5 * g, TREE, TREE) == {"a": 0.25, "b": (0.5, [1.0, None]),
                                                                   "c": {"x": 2.0}}
    seqs = {"u": (1, 2), "v": [3]}
    assert gradc.tree.map(len, seqs, is_leaf=lambda x: isinstance(x, (tuple, list))) == {"u": 2, "v": 1}
    assert gradc.tree.reduce(operator.add, {"a": 1, "b": (2, 3)}) == 6
    assert gradc.tree.reduce(operator.add, {"a": 1, "b": (2, 3)}, 10) == 16
    assert gradc.tree.all({"a": True, "b": [1, 2]}) and not gradc.tree.all({"a": True, "b": [1, 0]})
    assert gradc.tree.leaves_with_path({"a": [1, 2]}) == [(("a", 0), 1), (("a", 1), 2)]
    assert gradc.tree.flatten_with_path({"a": [1, 2]})[0] == [(("a", 0), 1), (("a", 1), 2)]
    assert gradc.tree.map_with_path(lambda p, x, y: (p, x + y), {"a": [1]}, {"a": [10]}) == {"a": [(("a", 0), 11)]}


def test_tree_transpose():
    rows = [{"w": 1, "b": (2, 3)}, {"w": 4, "b": (5, 6)}]
    want = {"b": ([2, 5], [3, 6]), "w": [1, 4]}
    outer, inner = gradc.tree.structure([0, 0]), gradc.tree.structure(rows[0])
    assert gradc.tree.transpose(outer, inner, rows) == want
    assert gradc.tree.transpose(outer, None, rows) == want
    with pytest.raises(ValueError, match=r"subtree at \[1\]"):
        gradc.tree.transpose(outer, inner, [rows[0], {"w": 1, "b": 2}])


def test_tree_against_jax():
    jax = _jax()
    for tree in (TREE, [(1.0, 2.0), {"z": 3.0, "y": (4.0,)}], {"a": None}):
        assert gradc.tree.leaves(tree) == jax.tree.leaves(tree)
        assert gradc.tree.map(lambda x: 2 * x, tree) == jax.tree.map(lambda x: 2 * x, tree)
    rows = [{"w": 1, "b": (2, 3)}, {"w": 4, "b": (5, 6)}]
    assert gradc.tree.transpose(gradc.tree.structure([0, 0]), gradc.tree.structure(rows[0]), rows) == \
        jax.tree.transpose(jax.tree.structure([0, 0]), jax.tree.structure(rows[0]), rows)
    is_leaf = lambda x: isinstance(x, tuple)  # noqa: E731
    size = lambda x: len(x) if isinstance(x, tuple) else -1  # noqa: E731
    assert gradc.tree.map(size, TREE, is_leaf=is_leaf) == jax.tree.map(size, TREE, is_leaf=is_leaf)


@pytest.mark.parametrize("dtype", DTYPES)
def test_tree_map_sgd_step_compiles(every_backend, dtype):
    r = onp.random.default_rng(0)
    params = {"W": r.normal(size=(2, 3, 4)).astype(dtype), "b": r.normal(size=(4,)).astype(dtype)}
    grads = {"W": r.normal(size=(2, 3, 4)).astype(dtype), "b": r.normal(size=(4,)).astype(dtype)}
    step = gradc.jit(lambda p, g: gradc.tree.map(lambda a, b: a - 0.1 * b, p, g))
    got = step(params, grads)
    for k in params:
        assert got[k].dtype == dtype
        onp.testing.assert_allclose(got[k], params[k] - dtype(0.1) * grads[k], rtol=_rtol(dtype))


# ----------------------------------------------------------------------------- eval_shape
def _mlp(xp, p, x):
    h = xp.tanh(x @ p["W"] + p["b"])
    return {"out": h.sum(axis=-1), "mean": h.mean(axis=0).astype(xp.float32), "none": None}


def test_eval_shape_traces_without_running():
    S = gradc.ShapeDtypeStruct
    calls = []

    def f(p, x):
        calls.append(1)
        return _mlp(np, p, x)
    big = {"W": S((30000, 20000), onp.float64), "b": S((20000,), onp.float64)}   # 4.8 GB if it ran
    got = gradc.eval_shape(f, big, S((7, 5, 30000), onp.float64))
    assert calls == [1]
    assert got == {"out": S((7, 5), onp.float64), "mean": S((5, 20000), onp.float32), "none": None}
    mixed = gradc.eval_shape(f, {"W": onp.zeros((3, 4), onp.float32), "b": S((4,), onp.float32)},
                             S((2, 3), onp.float32))
    assert mixed["out"].shape == (2,) and mixed["out"].dtype == onp.float32
    assert gradc.eval_shape(lambda x, k: np.concatenate([x, x])[:k], S((3,), onp.int32), k=4) == S((4,), onp.int32)
    assert repr(S((2, 3), onp.float32)) == "ShapeDtypeStruct(shape=(2, 3), dtype=float32)"
    assert S((2, 3), "f4").ndim == 2 and S((2, 3), "f4").size == 6


def test_eval_shape_against_jax():
    jax = _jax()
    import jax.numpy as jnp
    shapes = ({"W": ((6, 4), "float32"), "b": ((4,), "float32")}, ((2, 3, 6), "float32"))

    def structs(mk):
        p, x = shapes
        return {k: mk(*v) for k, v in p.items()}, mk(*x)
    got = gradc.eval_shape(lambda p, x: _mlp(np, p, x), *structs(gradc.ShapeDtypeStruct))
    want = jax.eval_shape(lambda p, x: _mlp(jnp, p, x), *structs(jax.ShapeDtypeStruct))
    for k in ("out", "mean"):
        assert got[k].shape == want[k].shape and got[k].dtype == want[k].dtype
    assert got["none"] is want["none"] is None


# ----------------------------------------------------------------------------- linearize, linear_transpose
def _model(xp, x, w):
    return xp.tanh(x * w).sum(axis=-1) + x[..., 0] ** 2


@pytest.mark.parametrize("dtype", DTYPES)
def test_linearize_against_finite_differences(every_backend, dtype):
    r = onp.random.default_rng(1)
    x, w = r.normal(size=(2, 3, 4)).astype(dtype), r.normal(size=(4,)).astype(dtype)
    out, f_jvp = gradc.linearize(lambda x, w: _model(np, x, w), x, w)
    onp.testing.assert_allclose(out, _model(onp, x.astype(float), w.astype(float)), rtol=_rtol(dtype))
    for k in range(2):
        tx, tw = r.normal(size=x.shape).astype(dtype), r.normal(size=w.shape).astype(dtype)
        want = fd_jvp(lambda x, w: _model(onp, x, w), [x.astype(float), w.astype(float)], [0, 1], [tx, tw])
        got = f_jvp(tx, tw)
        assert got.dtype == dtype
        onp.testing.assert_allclose(got, want, rtol=1e-6 if dtype == onp.float64 else 2e-4, atol=1e-6)
    _, f2, aux2 = gradc.linearize(lambda x: (np.sum(x ** 2), {"n": x.shape[0]}), x, has_aux=True)
    onp.testing.assert_allclose(f2(onp.ones_like(x)), onp.sum(2 * x.astype(float)), rtol=_rtol(dtype))
    assert aux2 == {"n": 2}


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_transpose_dot_product_identity(every_backend, dtype):
    r = onp.random.default_rng(2)
    A = r.normal(size=(4, 3)).astype(dtype)

    def lin(x, v):                   # (2, 3, 5), (3,) -> (2, 4, 5): linear in both
        return np.einsum("ij,bjk->bik", A, x) + 2.0 * v[None, :, None].sum() + x.sum(axis=1, keepdims=True)
    S = gradc.ShapeDtypeStruct
    f_t = gradc.linear_transpose(lin, S((2, 3, 5), dtype), S((3,), dtype))
    x, v = r.normal(size=(2, 3, 5)).astype(dtype), r.normal(size=(3,)).astype(dtype)
    c = r.normal(size=(2, 4, 5)).astype(dtype)
    tx, tv = f_t(c)
    assert tx.shape == x.shape and tv.shape == v.shape and tx.dtype == dtype
    y = onp.asarray(gradc.jit(lin)(x, v), onp.float64)
    lhs = onp.sum(y * c)
    rhs = onp.sum(x.astype(float) * tx) + onp.sum(v.astype(float) * tv)
    onp.testing.assert_allclose(lhs, rhs, rtol=1e-10 if dtype == onp.float64 else 1e-4)


def test_linearize_and_linear_transpose_against_jax():
    jax = _jax()
    import jax.numpy as jnp
    r = onp.random.default_rng(3)
    x, w, t = r.normal(size=(2, 3, 4)), r.normal(size=(4,)), r.normal(size=(2, 3, 4))
    out, fj = gradc.linearize(lambda x: _model(np, x, w), x)
    jout, jfj = jax.linearize(lambda x: _model(jnp, x, w), x)
    onp.testing.assert_allclose(out, jout, rtol=1e-13)
    onp.testing.assert_allclose(fj(t), jfj(t), rtol=1e-12)
    A = r.normal(size=(5, 4))
    (got,) = gradc.linear_transpose(lambda x: x @ A.T, x)(onp.ones((2, 3, 5)))
    (want,) = jax.linear_transpose(lambda x: x @ A.T, x)(jnp.ones((2, 3, 5)))
    onp.testing.assert_allclose(got, want, rtol=1e-13)


# ----------------------------------------------------------------------------- custom_gradient
@gradc.custom_gradient
def clipped_square(x):
    return x * x, lambda g: np.clip(2.0 * x * g, -1.0, 1.0)


@gradc.custom_gradient
def scaled_product(x, w):
    return x * w, lambda g: (g * w, 3.0 * g * x)      # a deliberately wrong gradient for w


@pytest.mark.parametrize("dtype", DTYPES)
def test_custom_gradient(every_backend, dtype):
    r = onp.random.default_rng(4)
    x, w = r.normal(size=(2, 3, 4)).astype(dtype), r.normal(size=(2, 3, 4)).astype(dtype)
    onp.testing.assert_allclose(clipped_square(x), x * x)          # outside a trace: it runs
    g = gradc.grad(lambda x: np.sum(clipped_square(x)))(x)
    onp.testing.assert_allclose(g, onp.clip(2 * x, -1, 1), rtol=_rtol(dtype))
    gx, gw = gradc.grad(lambda x, w: np.sum(scaled_product(x, w)), argnums=(0, 1))(x, w)
    onp.testing.assert_allclose(gx, w, rtol=_rtol(dtype))
    onp.testing.assert_allclose(gw, 3 * x, rtol=_rtol(dtype))
    assert gx.dtype == gw.dtype == dtype
    vg = gradc.jit(gradc.vmap(gradc.grad(lambda v: np.sum(clipped_square(v)))))(x)
    onp.testing.assert_allclose(vg, onp.clip(2 * x, -1, 1), rtol=_rtol(dtype))


def test_custom_gradient_against_jax():
    jax = _jax()
    import jax.numpy as jnp

    @jax.custom_gradient
    def jclipped(x):
        return x * x, lambda g: (jnp.clip(2.0 * x * g, -1.0, 1.0),)
    x = onp.random.default_rng(5).normal(size=(2, 3, 4))
    onp.testing.assert_allclose(gradc.grad(lambda x: np.sum(clipped_square(x)))(x),
                                jax.grad(lambda x: jnp.sum(jclipped(x)))(x), rtol=1e-14)


# ----------------------------------------------------------------------------- host-side identities
def test_block_until_ready_device_put_get():
    tree = {"a": onp.arange(3.0), "b": (2.5, None)}
    assert gradc.block_until_ready(tree) is tree
    put = gradc.device_put(tree)
    assert isinstance(put["b"][0], onp.ndarray) and put["b"][0] == 2.5 and put["b"][1] is None
    onp.testing.assert_array_equal(put["a"], tree["a"])
    got = gradc.device_get({"x": put["a"], "n": 3})
    assert isinstance(got["x"], onp.ndarray) and got["n"] == 3
    assert gradc.jit(lambda x: gradc.device_put(x) * 2)(onp.ones(2)).tolist() == [2.0, 2.0]


# ----------------------------------------------------------------------------- lax: integer and bit ops
BITS_DTYPES = [onp.bool_, onp.int32, onp.uint16]
AXES = [(0,), (1, -1), (0, 1, 2)]


@pytest.mark.parametrize("dtype", BITS_DTYPES)
def test_bitwise_reductions(every_backend, dtype):
    r = onp.random.default_rng(6)
    x = r.integers(0, 2, size=(3, 4, 5)).astype(bool) if dtype == onp.bool_ else \
        r.integers(0, 2 ** 10, size=(3, 4, 5)).astype(dtype) | dtype(0b1000000011)   # some common bits
    if dtype == onp.int32:
        x[0, 0, 0] = -7
    ufuncs = {"and": onp.bitwise_and, "or": onp.bitwise_or, "xor": onp.bitwise_xor}

    def f(x):
        return [getattr(lax, f"reduce_{k}")(x, axes) for k in ufuncs for axes in AXES]
    got = gradc.jit(f)(x)
    eager = f(x)
    for (k, uf), outs in zip(ufuncs.items(), [got[i:i + len(AXES)] for i in range(0, len(got), len(AXES))]):
        for axes, g, e in zip(AXES, outs, eager[list(ufuncs).index(k) * len(AXES):]):
            want = uf.reduce(x, axis=axes)
            assert g.dtype == want.dtype == e.dtype, (k, axes)
            onp.testing.assert_array_equal(g, want, err_msg=f"reduce_{k} {axes}")
            onp.testing.assert_array_equal(e, want, err_msg=f"reduce_{k} {axes} eager")


def _mulhi_oracle(a, b):
    bits = 8 * a.dtype.itemsize
    hi = [(int(p) * int(q)) >> bits for p, q in zip(a.ravel(), b.ravel())]   # floor: two's complement
    return onp.array([h % (1 << bits) for h in hi], dtype=onp.uint64).astype(
        onp.dtype(f"u{a.dtype.itemsize}")).view(a.dtype).reshape(a.shape)


MULHI_DTYPES = [onp.int8, onp.uint16, onp.int32, onp.uint32, onp.int64, onp.uint64]


def test_mulhi_against_exact_integers(every_backend):
    r = onp.random.default_rng(7)
    pairs = []
    for dtype in MULHI_DTYPES:
        info = onp.iinfo(dtype)
        a, b = (r.integers(info.min, info.max, size=(2, 3, 4), dtype=dtype, endpoint=True) for _ in range(2))
        a.flat[:3], b.flat[:3] = [info.min, info.max, -1 if info.min else 1], [info.min, info.max, info.max]
        pairs += [a, b]
    got = gradc.jit(lambda *ab: [lax.mulhi(ab[i], ab[i + 1]) for i in range(0, len(ab), 2)])(*pairs)
    for k, dtype in enumerate(MULHI_DTYPES):
        a, b = pairs[2 * k], pairs[2 * k + 1]
        want = _mulhi_oracle(a, b)
        assert got[k].dtype == dtype
        onp.testing.assert_array_equal(got[k], want, err_msg=str(dtype))
        onp.testing.assert_array_equal(lax.mulhi(a, b), want, err_msg=str(dtype))


def _reduce_precision_oracle(x, ebits, mbits):
    """Round the significand to mbits (half to even) with frexp, then the narrow
    format's range: inf above its largest exponent, a signed zero below its smallest
    normal.  Written for finite, normal inputs."""
    m, e = onp.frexp(x.astype(onp.float64))
    r = onp.ldexp(onp.rint(onp.ldexp(m, mbits + 1)), e - mbits - 1)
    emax = 2 ** (ebits - 1) - 1
    r = onp.where(onp.abs(r) >= 2.0 ** (emax + 1), onp.copysign(onp.inf, x), r)
    return onp.where(onp.abs(r) < 2.0 ** (1 - emax), onp.copysign(0.0, x), r)


FORMATS = [(8, 7), (5, 10), (4, 3), (6, 1), (3, 0), (8, 23)]


@pytest.mark.parametrize("dtype", DTYPES)
def test_reduce_precision(every_backend, dtype):
    r = onp.random.default_rng(8)
    scale = 30.0 if dtype == onp.float32 else 60.0
    x = (r.normal(size=(3, 4, 5)) * onp.exp2(r.uniform(-scale, scale, size=(3, 4, 5)))).astype(dtype)
    x.flat[:6] = [1.0, 2.5, 65504.0, 65520.0, 6.1e-5, 0.0]        # float16's largest and ties
    with onp.errstate(over="ignore"):
        gots = gradc.jit(lambda v: [lax.reduce_precision(v, e, m) for e, m in FORMATS])(x)
        for (ebits, mbits), got in zip(FORMATS, gots):
            want = _reduce_precision_oracle(x, ebits, mbits).astype(dtype)
            assert got.dtype == dtype
            onp.testing.assert_array_equal(got, want, err_msg=f"({ebits}, {mbits})")
            onp.testing.assert_array_equal(lax.reduce_precision(x, ebits, mbits), want)
        normal16 = (onp.abs(x) >= 2.0 ** -14) & onp.isfinite(x.astype(onp.float16))
        onp.testing.assert_array_equal(lax.reduce_precision(x, 5, 10)[normal16], x.astype(onp.float16)[normal16])
    special = onp.array([onp.nan, onp.inf, -onp.inf, -0.0], dtype)
    got = gradc.jit(lambda v: lax.reduce_precision(v, 5, 2))(special)
    assert onp.isnan(got[0]) and list(got[1:]) == [onp.inf, -onp.inf, 0.0] and onp.signbit(got[3])
    assert lax.reduce_precision(x, 11, 52).tolist() == x.tolist()          # the native format or wider
    # the derivative is 1 where the result is finite (documented: a straight-through rounding)
    w = r.normal(size=(3, 4, 5)).astype(dtype)
    g = gradc.grad(lambda v: np.sum(lax.reduce_precision(v, 8, 7) * w))(x)
    onp.testing.assert_array_equal(g, w)


# ----------------------------------------------------------------------------- lax: indexing and products
@pytest.mark.parametrize("dtype", DTYPES)
def test_index_take_batch_matmul_broadcast_to_rank(every_backend, dtype):
    r = onp.random.default_rng(9)
    src = r.normal(size=(4, 5, 6)).astype(dtype)
    i0, i1 = onp.array([0, -1, 3, 2, 3]), onp.array([1, 5, -6, 0, 1])
    want = onp.stack([src[a % 4, :, b % 6] for a, b in zip(i0, i1)])
    take = gradc.jit(lambda s, a, b: lax.index_take(s, (a, b), (0, 2)))
    onp.testing.assert_array_equal(take(src, i0, i1), want)
    onp.testing.assert_array_equal(lax.index_take(src, (i0, i1), (0, -1)), want)
    w = r.normal(size=want.shape).astype(dtype)
    g = gradc.grad(lambda s: np.sum(lax.index_take(s, (i0, i1), (0, 2)) * w))(src)
    g_want = onp.zeros(src.shape, onp.float64)
    for k, (a, b) in enumerate(zip(i0, i1)):
        g_want[a % 4, :, b % 6] += w[k]                               # repeated (3, 1) adds up
    onp.testing.assert_allclose(g, g_want, rtol=_rtol(dtype))

    A, B = r.normal(size=(2, 3, 4, 5)).astype(dtype), r.normal(size=(2, 3, 5, 6)).astype(dtype)
    onp.testing.assert_allclose(gradc.jit(lax.batch_matmul)(A, B), A.astype(float) @ B, rtol=_rtol(dtype) * 10)
    C = r.normal(size=(2, 3, 4, 6)).astype(dtype)
    gA, gB = gradc.grad(lambda a, b: np.sum(lax.batch_matmul(a, b) * C), argnums=(0, 1))(A, B)
    onp.testing.assert_allclose(gA, C.astype(float) @ onp.swapaxes(B, -1, -2), rtol=_rtol(dtype) * 10)
    onp.testing.assert_allclose(gB, onp.swapaxes(A.astype(float), -1, -2) @ C, rtol=_rtol(dtype) * 10)

    v = r.normal(size=(3,)).astype(dtype)
    got = gradc.jit(lambda v: lax.broadcast_to_rank(v, 3))(v)
    assert got.shape == (1, 1, 3) and got.dtype == dtype and onp.array_equal(got[0, 0], v)
    assert lax.broadcast_to_rank(src, 3) is src


# ----------------------------------------------------------------------------- lax: special functions
def _mp(f, *cols):
    return onp.array([float(f(*map(mpmath.mpf, map(float, vals)))) for vals in zip(*cols)])


# (their graphs take a second or two to trace and compile: each backend once in float64,
# float32 on one; the float32 arithmetic is the same code on every backend)
@pytest.mark.parametrize("backend, dtype", [("numpy", onp.float64), ("llvm", onp.float64), ("llvm", onp.float32),
                                            ("c", onp.float64)])
def test_special_functions_against_mpmath(backend, dtype):
    if backend == "c" and not any(shutil.which(cc) for cc in ("cc", "gcc", "clang")):
        pytest.skip("no C compiler for the c backend")
    saved = gradc.config(backend=backend)
    try:
        _check_special_functions(dtype)
    finally:
        gradc.config(**saved)


def _check_special_functions(dtype):
    r = onp.random.default_rng(10)
    x = r.uniform(0.3, 8.0, size=(2, 3, 4)).astype(dtype)
    a = r.uniform(0.5, 6.0, size=(2, 3, 4)).astype(dtype)
    z = r.uniform(-12.0, 12.0, size=(2, 3, 4)).astype(dtype)
    f = gradc.jit(lambda x, a, z: [lax.polygamma(0, x), lax.polygamma(2, x), lax.igamma(a, x), lax.igammac(a, x),
                                   lax.bessel_i0e(z), lax.bessel_i1e(z)])
    xs, as_, zs = (v.astype(onp.float64).ravel() for v in (x, a, z))
    want = [_mp(lambda t: mpmath.psi(0, t), xs), _mp(lambda t: mpmath.psi(2, t), xs),
            _mp(lambda s, t: mpmath.gammainc(s, 0, t, regularized=True), as_, xs),
            _mp(lambda s, t: mpmath.gammainc(s, t, mpmath.inf, regularized=True), as_, xs),
            _mp(lambda t: mpmath.besseli(0, t) * mpmath.exp(-abs(t)), zs),
            _mp(lambda t: mpmath.besseli(1, t) * mpmath.exp(-abs(t)), zs)]
    tol = 1e-11 if dtype == onp.float64 else 2e-5
    for k, (g, w) in enumerate(zip(f(x, a, z), want)):
        assert g.dtype == dtype, k
        onp.testing.assert_allclose(g.ravel(), w, rtol=tol, atol=tol, err_msg=f"output {k}")
    # derivatives: psi^(m)' = psi^(m+1), dP/dx = x^(a-1) e^-x / Gamma(a), i0e' = i1e - sign(z) i0e
    gx, gz = gradc.grad(lambda x, z: np.sum(lax.polygamma(1, x) + lax.igamma(a, x)) + np.sum(lax.bessel_i0e(z)),
                        argnums=(0, 1))(x, z)
    density = _mp(lambda s, t: t ** (s - 1) * mpmath.exp(-t) / mpmath.gamma(s), as_, xs)
    onp.testing.assert_allclose(gx.ravel(), _mp(lambda t: mpmath.psi(2, t), xs) + density, rtol=tol * 10, atol=tol)
    onp.testing.assert_allclose(gz.ravel(), want[5] - onp.sign(zs) * want[4], rtol=tol * 10, atol=tol)
    y = (x * 3).astype(dtype)
    onp.testing.assert_array_equal(gradc.jit(lax.nextafter)(x, y), onp.nextafter(x, y))


def test_lax_against_jax():
    jax = _jax()
    jl = jax.lax
    r = onp.random.default_rng(11)
    x = r.normal(size=(3, 4, 5)) * onp.exp2(r.uniform(-140, 140, size=(3, 4, 5)))
    x.flat[:3] = [onp.nan, onp.inf, 0.0]
    for dtype in DTYPES:
        for ebits, mbits in [(8, 7), (5, 10), (4, 3), (3, 0), (2, 0), (11, 52)]:
            with onp.errstate(over="ignore"):
                xd = x.astype(dtype)
            onp.testing.assert_array_equal(lax.reduce_precision(xd, ebits, mbits),      # (compiled: above)
                                           jl.reduce_precision(xd, ebits, mbits), err_msg=f"({ebits}, {mbits})")
    for dtype in (onp.int8, onp.int32, onp.uint32, onp.int64, onp.uint64):
        info = onp.iinfo(dtype)
        a, b = (r.integers(info.min, info.max, size=(3, 4), dtype=dtype, endpoint=True) for _ in range(2))
        onp.testing.assert_array_equal(lax.mulhi(a, b), jl.mulhi(a, b))
    ints = r.integers(-50, 50, size=(3, 4, 5)).astype(onp.int32)
    for name in ("reduce_and", "reduce_or", "reduce_xor"):
        for v in (ints, ints > 0):
            onp.testing.assert_array_equal(getattr(lax, name)(v, (0, 2)), getattr(jl, name)(v, (0, 2)))
    src = r.normal(size=(4, 5, 6))
    idx = (onp.array([0, -1, 3]), onp.array([2, 4, -5]))
    onp.testing.assert_array_equal(lax.index_take(src, idx, (1, 2)), jl.index_take(src, idx, (1, 2)))
    A, B = r.normal(size=(2, 3, 4)), r.normal(size=(2, 4, 5))
    onp.testing.assert_allclose(lax.batch_matmul(A, B), jl.batch_matmul(A, B), rtol=1e-13)
    assert lax.broadcast_to_rank(onp.ones(3), 4).shape == jl.broadcast_to_rank(onp.ones(3), 4).shape
    p, q = r.uniform(0.5, 5, size=7), r.uniform(0.5, 5, size=7)
    for mine, theirs in ((lambda: lax.polygamma(3.0, p), lambda: jl.polygamma(onp.full(7, 3.0), p)),
                         (lambda: lax.igamma(p, q), lambda: jl.igamma(p, q)),
                         (lambda: lax.igammac(p, q), lambda: jl.igammac(p, q)),
                         (lambda: lax.bessel_i0e(p - 3), lambda: jl.bessel_i0e(p - 3)),
                         (lambda: lax.bessel_i1e(p - 3), lambda: jl.bessel_i1e(p - 3))):
        onp.testing.assert_allclose(mine(), theirs(), rtol=1e-12)


def test_new_names_compose_with_transformations():
    r = onp.random.default_rng(12)
    x = r.normal(size=(3, 4, 5))
    onp.testing.assert_array_equal(gradc.vmap(lambda v: lax.reduce_precision(v, 5, 10))(x),
                                   lax.reduce_precision(x, 5, 10))
    i = r.integers(-2 ** 62, 2 ** 62, size=(2, 3, 4))
    onp.testing.assert_array_equal(gradc.vmap(lax.mulhi)(i, i[::-1]), _mulhi_oracle(i, i[::-1]))
    onp.testing.assert_array_equal(gradc.vmap(lambda v: lax.index_take(v, (onp.array([0, -1]),), (1,)))(x),
                                   onp.stack([v[:, [0, 4]].T for v in x]))
    v = x[0, 0]
    # grad of sum(cs(v) v) = clip(2 v v, -1, 1) (the rule, cotangent v) + v^2: its derivative is diagonal
    want = onp.diag(onp.where(onp.abs(2 * v * v) < 1, 4 * v, 0.0) + 2 * v)
    onp.testing.assert_allclose(gradc.hessian(lambda v: np.sum(clipped_square(v) * v))(v), want, rtol=1e-12)
    got = gradc.jit(lambda v: v * gradc.eval_shape(lambda u: u.sum(axis=0), v).shape[0])(x)
    onp.testing.assert_allclose(got, 4 * x)


# ----------------------------------------------------------------------------- errors
def test_bad_input_names_the_argument():
    S = gradc.ShapeDtypeStruct
    cases = [
        (lambda: lax.reduce_and(onp.ones(3), (0,)), "operand must be a boolean or integer"),
        (lambda: lax.reduce_or(onp.ones(3, bool), (1,)), "axis 1 is out of range"),
        (lambda: lax.reduce_precision(onp.ones(3), 0, 3), "exponent_bits must be at least 1"),
        (lambda: lax.reduce_precision(onp.ones(3), 5, 1.5), "mantissa_bits must be an int"),
        (lambda: lax.reduce_precision(onp.ones(3, onp.int32), 5, 2), "operand must be float32 or float64"),
        (lambda: lax.index_take(onp.ones((2, 3)), (onp.ones(2),), (0,)), r"idxs\[0\] must be a 1-D integer"),
        (lambda: lax.index_take(onp.ones((2, 3)), (onp.zeros(2, int),), (0, 1)), "one index array per axis"),
        (lambda: lax.batch_matmul(onp.ones((2, 3)), onp.ones((2, 3, 4))), "lhs and rhs must have one rank"),
        (lambda: lax.batch_matmul(onp.ones((2, 3, 4)), onp.ones((3, 4, 5))), "batch axes differ"),
        (lambda: lax.broadcast_to_rank(onp.ones((2, 3)), 1), "rank 1 is below the operand's rank 2"),
        (lambda: lax.polygamma(-1, onp.ones(2)), "m must hold non-negative integers"),
        (lambda: lax.mulhi(onp.ones(2, onp.int32), onp.ones(2, onp.int64)), "x and y must be integers of one dtype"),
        (lambda: S((2, -1), onp.float32), "negative size"),
        (lambda: S(3, onp.float32), "shape must be a sequence of ints"),
        (lambda: gradc.eval_shape(3, onp.ones(2)), "fun must be a function"),
        (lambda: gradc.linearize(np.sin, onp.ones(2))[1](onp.ones(2), onp.ones(2)), "expected 1 tangent"),
        (lambda: gradc.grad(lambda x: np.sum(gradc.custom_gradient(lambda x: x)(x)))(onp.ones(2)),
         "must return a pair"),
    ]
    for call, message in cases:
        with pytest.raises(gradc.GradcError, match=message):
            call()


@pytest.mark.parametrize("dtype", [onp.float32, onp.float64])
def test_products_take_jaxs_precision_keywords(every_backend, dtype):
    """``precision=lax.Precision.HIGHEST`` (or a string) is accepted by the products and
    changes nothing; ``preferred_element_type`` converts the operands first (a float32
    product asked in float64 is float64, to float64's accuracy).  Oracle: numpy's
    products in float64."""
    r = onp.random.default_rng(3)
    a, b = r.standard_normal((5, 4)).astype(dtype), r.standard_normal((4, 3)).astype(dtype)
    A, B = a.astype(onp.float64), b.astype(onp.float64)
    rtol = 1e-13 if dtype == onp.float64 else 2e-6
    f = gradc.jit(lambda a, b: (np.dot(a, b, precision=lax.Precision.HIGHEST), np.matmul(a, b, precision="highest"),
                                np.einsum("ij,jk->ik", a, b, precision=lax.Precision.DEFAULT),
                                lax.dot(a, b, precision=lax.Precision.HIGH),
                                np.tensordot(a, b, axes=1, precision=lax.Precision.HIGHEST)))
    for out in f(a, b):
        assert out.dtype == dtype
        onp.testing.assert_allclose(out, A @ B, rtol=rtol, atol=rtol)
    wide = gradc.jit(lambda a, b: (np.matmul(a, b, preferred_element_type=onp.float64),
                                   np.einsum("ij,jk->ik", a, b, preferred_element_type=onp.float64)))(a, b)
    for out in wide:
        assert out.dtype == onp.float64
        onp.testing.assert_allclose(out, A @ B, rtol=1e-13)


def test_stop_gradient_of_a_pytree():
    """lax.stop_gradient(tree) as JAX's: every leaf, with no gradient through it:
    d/dx sum(sg(x) * x) = x."""
    x = onp.random.default_rng(4).standard_normal(5)
    g = gradc.grad(lambda x: np.sum(lax.stop_gradient({"a": x, "b": (x, None)})["a"] * x))(x)
    onp.testing.assert_allclose(g, x, rtol=1e-15)
    g = gradc.grad(lambda x: np.sum(np.stop_gradient([x, x])[1] * x ** 2))(x)
    onp.testing.assert_allclose(g, 2 * x * x, rtol=1e-15)


def test_disable_jit_runs_the_python_code_on_arrays():
    """Inside disable_jit a jit function sees numpy arrays (values print); after it the
    compiled code runs again; a grad inside still traces."""
    seen = []

    @gradc.jit
    def f(x):
        seen.append(type(x).__name__)
        return np.sum(x ** 2)
    x = onp.arange(3.0)
    assert f(x) == 5.0
    with gradc.disable_jit():
        assert f(x) == 5.0 and f(2 * x) == 20.0
        onp.testing.assert_array_equal(gradc.grad(lambda x: f(x))(x), 2 * x)
    assert f(x) == 5.0
    assert seen.count("ndarray") == 2 and "Value" in seen
