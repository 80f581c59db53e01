"""gradc.numpy.vectorize: each case's values against numpy.vectorize (and an einsum/matmul
closed form where one exists) on concrete arrays and inside gradc.jit, on backends numpy,
llvm and c, float32 and float64; gradients of a sum of its outputs against finite
differences; per-example gradients (a vectorized gradc.grad) against their closed form;
jax.numpy.vectorize where jax is installed; the errors for bad signatures and shapes, and
numpy's own vectorize on a traced value."""
from __future__ import annotations

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp

from gradc_helpers import F32_RTOL, assert_fd_close, fd_grad, rng


@pytest.fixture
def backend(every_backend):
    """numpy, llvm and c as the default backend (tests/conftest.py)."""
    return every_backend


def _elementwise(xp):
    return lambda a, b: a * xp.sin(b) + b * b


def _dot(xp):
    return lambda a, b: xp.sum(a * xp.tanh(b))


def _matvec(xp):
    return lambda m, v: m @ v


def _two(xp):
    return lambda v: (xp.mean(v * v), xp.max(v))


def _power(xp):          # argument 1 excluded: a Python int passed through
    return lambda a, k, b: a * b ** k


def _keywords(xp):       # keyword 'mode' excluded (a string), keyword 'scale' vectorized
    return lambda a, *, scale, mode: getattr(xp, mode)(a) * scale


def _scalar(xp):
    return lambda a, b: a * xp.exp(b)


# id: (pyfunc of a numpy module, signature, excluded, args(r) -> (args, kwargs), closed form or None,
#      positional arguments to differentiate)
CASES = {
    "elementwise": (_elementwise, None, frozenset(),
                    lambda r: ((r.normal(size=(3, 1)), r.normal(size=(4,))), {}), None, (0, 1)),
    "dot": (_dot, "(n),(n)->()", frozenset(),
            lambda r: ((r.normal(size=(2, 3, 5)), r.normal(size=(5,))), {}),
            lambda a, b: np.einsum("ijn,n->ij", a, np.tanh(b)), (0, 1)),
    "matvec": (_matvec, "(m,n),(n)->(m)", frozenset(),
               lambda r: ((r.normal(size=(2, 3, 4, 3, 5)), r.normal(size=(3, 1, 5))), {}),
               lambda m, v: np.matmul(m, v[..., None])[..., 0], (0, 1)),
    "two_outputs": (_two, "(n)->(),()", frozenset(),
                    lambda r: ((r.permutation(30).reshape(2, 3, 5) * 0.1,), {}),
                    lambda v: ((v * v).mean(-1), v.max(-1)), (0,)),
    "excluded_positional": (_power, None, frozenset({1}),
                            lambda r: ((r.normal(size=(2, 3, 4)), 3, r.normal(size=(4,))), {}), None, (0, 2)),
    "excluded_keyword": (_keywords, None, frozenset({"mode"}),
                         lambda r: ((r.normal(size=(2, 3, 4)),), {"scale": r.normal(size=(3, 1)), "mode": "tanh"}),
                         None, (0,)),
    "zero_d_and_vector": (_scalar, None, frozenset(),
                          lambda r: ((np.array(r.normal()), r.normal(size=(4,))), {}), None, (0, 1)),
    "zero_d": (_scalar, "(),()->()", frozenset(),
               lambda r: ((np.array(r.normal()), np.array(r.normal())), {}), None, (0, 1)),
}


def _case(cid, dtype=np.float64):
    make, sig, exc, build, closed, diff = CASES[cid]
    args, kwargs = build(rng(7))

    def cast(x):
        return np.asarray(x, dtype) if isinstance(x, np.ndarray) else x
    args = tuple(cast(a) for a in args)
    kwargs = {k: cast(v) for k, v in kwargs.items()}
    return make, sig, exc, args, kwargs, closed, diff


def _leaves(out):
    return list(out) if isinstance(out, tuple) else [out]


def _assert_same(got, want, dtype):
    got, want = _leaves(got), _leaves(want)
    assert len(got) == len(want)
    tol = F32_RTOL if dtype == np.float32 else 1e-12
    for g, w in zip(got, want):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape, f"shape {g.shape} != {w.shape}"
        assert g.dtype == dtype, f"dtype {g.dtype}, want {dtype}"
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cid", list(CASES))
def test_values_match_numpy_vectorize(cid, dtype, backend):
    make, sig, exc, args, kwargs, closed, _ = _case(cid, dtype)
    want = np.vectorize(make(np), excluded=exc, signature=sig)(*args, **kwargs)
    if closed is not None:
        _assert_same(closed(*args), want, dtype)        # the reference against its closed form
    v = gnp.vectorize(make(gnp), excluded=exc, signature=sig)
    _assert_same(v(*args, **kwargs), want, dtype)    # concrete arrays
    traced = [k for k, a in enumerate(args) if isinstance(a, np.ndarray)]

    def f(*xs):
        full = list(args)
        for k, x in zip(traced, xs):
            full[k] = x
        return v(*full, **kwargs)
    _assert_same(gradc.jit(f)(*[args[k] for k in traced]), want, dtype)


def _loss(out, xp):
    return sum(xp.sum(xp.sin(o) * (1.0 + 0.5 * k)) for k, o in enumerate(_leaves(out)))


@pytest.mark.parametrize("cid", list(CASES))
def test_gradient_of_a_sum_matches_finite_differences(cid, backend):
    make, sig, exc, args, kwargs, _, diff = _case(cid)
    v = gnp.vectorize(make(gnp), excluded=exc, signature=sig)
    ref = np.vectorize(make(np), excluded=exc, signature=sig)

    def at(vec, xp, xs):
        full = list(args)
        for k, x in zip(diff, xs):
            full[k] = x
        return _loss(vec(*full, **kwargs), xp)
    got = gradc.grad(lambda *xs: at(v, gnp, xs), argnums=tuple(range(len(diff))))(*[args[k] for k in diff])
    for j in range(len(diff)):
        want = fd_grad(lambda *xs: at(ref, np, xs), [args[k] for k in diff], j)
        assert_fd_close(got[j], want, f"{cid}: d/d argument {diff[j]}")


def _example_loss(xp):
    return lambda w, x, y: (xp.tanh(xp.sum(w * x)) - y) ** 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_per_example_gradients(dtype, backend):
    """vectorize of gradc.grad: the gradient of each example's loss, with the weights shared."""
    r = rng(3)
    w, X, y = (np.asarray(a, dtype) for a in (r.normal(size=4), r.normal(size=(2, 6, 4)), r.normal(size=(2, 6))))
    per = gnp.vectorize(gradc.grad(_example_loss(gnp)), signature="(p),(p),()->(p)")
    t = np.tanh(X @ w)
    want = (2 * (t - y) * (1 - t * t))[..., None] * X        # d/dw (tanh(w.x) - y)^2
    tol = F32_RTOL * 10 if dtype == np.float32 else 1e-12
    for got in (per(w, X, y), gradc.jit(per)(w, X, y)):
        assert np.asarray(got).shape == (2, 6, 4)
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    # the same through gradc.vmap, and its gradient through a jit'd sum (grad of per-example grads)
    vm = gradc.vmap(gradc.grad(_example_loss(gnp)), in_axes=(None, 0, 0))(w, X[0], y[0])
    np.testing.assert_allclose(vm, want[0], rtol=tol, atol=tol)
    if dtype == np.float64:
        g = gradc.grad(lambda w: gnp.sum(per(w, X, y)))(w)
        fd = fd_grad(lambda w: float(np.sum((2 * (np.tanh(X @ w) - y) * (1 - np.tanh(X @ w) ** 2))[..., None] * X)),
                     [w], 0)
        assert_fd_close(g, fd, "grad of sum of per-example gradients")


def test_inside_vmap_and_broadcast_size_one_loops():
    r = rng(5)
    dot = gnp.vectorize(_dot(gnp), signature="(n),(n)->()")
    A, b = r.normal(size=(3, 2, 5)), r.normal(size=(5,))
    got = gradc.vmap(lambda a: dot(a, b))(A)
    np.testing.assert_allclose(got, np.einsum("ijn,n->ij", A, np.tanh(b)), rtol=1e-12)
    # loop dimensions of size 1 only: one call, the size-1 axes given back
    a1 = r.normal(size=(1, 1, 5))
    np.testing.assert_allclose(gradc.jit(dot)(a1, b), np.einsum("ijn,n->ij", a1, np.tanh(b)), rtol=1e-12)
    assert dot(a1, b).shape == (1, 1)


@pytest.mark.parametrize("cid", list(CASES))
def test_matches_jax_numpy_vectorize(cid):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    if cid == "excluded_keyword":
        pytest.skip("jax.numpy.vectorize drops keyword arguments that are not excluded (gradc vectorizes "
                    "them, as numpy.vectorize does: test_values_match_numpy_vectorize)")
    make, sig, exc, args, kwargs, _, _ = _case(cid, np.float32)
    want = jnp.vectorize(make(jnp), excluded=exc, signature=sig)(*args, **kwargs)
    got = gnp.vectorize(make(gnp), excluded=exc, signature=sig)(*args, **kwargs)
    _assert_same(got, tuple(np.asarray(w) for w in _leaves(want)), np.float32)


ERRORS = [
    ("bad signature", lambda: gnp.vectorize(_dot(gnp), signature="(n),(n)->"),
     r"vectorize\(<lambda>\): signature='\(n\),\(n\)->' is not a generalized-ufunc signature"),
    ("too few dimensions", lambda: gnp.vectorize(_matvec(gnp), signature="(m,n),(n)->(m)")(np.ones(3), np.ones(3)),
     r"argument 0 has shape \(3,\) but the signature '\(m,n\),\(n\)->\(m\)' expects core shape \(m, n\): "
     r"it needs at least 2 dimensions, got 1"),
    ("mismatched core", lambda: gnp.vectorize(_dot(gnp), signature="(n),(n)->()")(np.ones((2, 5)), np.ones(4)),
     r"argument 1 has shape \(4,\): expected core shape \(5,\), got \(4,\) \(core dimension 'n' is 5 in "
     r"argument 0, 4 here\)"),
    ("argument count", lambda: gnp.vectorize(_dot(gnp), signature="(n),(n)->()")(np.ones(5)),
     r"signature '\(n\),\(n\)->\(\)' has 2 inputs but the call gives 1 vectorized arguments \(argument 0"),
    ("output count", lambda: gnp.vectorize(_dot(gnp), signature="(n),(n)->(),()")(np.ones(5), np.ones(5)),
     r"has 2 outputs but the function returned one array"),
    ("output core", lambda: gnp.vectorize(_elementwise(gnp), signature="(n),(n)->()")(np.ones((2, 5)), np.ones(5)),
     r"output 0 has core shape \(5,\) per element but the signature '\(n\),\(n\)->\(\)' expects \(\)"),
    ("loops do not broadcast", lambda: gnp.vectorize(_dot(gnp), signature="(n),(n)->()")(np.ones((2, 5)),
                                                                                          np.ones((3, 5))),
     r"loop \(non-core\) dimensions do not broadcast: argument 0 \(2,\), argument 1 \(3,\)"),
    ("negative excluded", lambda: gnp.vectorize(_power(gnp), excluded={-1}),
     r"excluded=\[-1\] holds a negative index -1"),
    ("excluded type", lambda: gnp.vectorize(_power(gnp), excluded={1.5}),
     r"excluded entries must be positional indices \(int\) or keyword names \(str\), got 1.5"),
]


@pytest.mark.parametrize("what,call,pattern", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_name_the_argument_and_shapes(what, call, pattern):
    with pytest.raises(gradc.ArgumentError, match=pattern):
        call()


def test_errors_inside_a_trace():
    dot = gnp.vectorize(_dot(gnp), signature="(n),(n)->()")
    with pytest.raises(gradc.ArgumentError, match=r"expected core shape \(5,\), got \(4,\)"):
        gradc.jit(lambda a, b: dot(a, b))(np.ones((2, 5)), np.ones(4))


def test_numpy_vectorize_on_a_traced_value_names_gradc_vectorize():
    with pytest.raises(gradc.GradcError, match=r"numpy\.vectorize loops in Python.*gradc\.numpy\.vectorize"):
        gradc.jit(lambda x: np.sum(np.vectorize(lambda a: a * 2.0)(x)))(np.arange(3.0))
    with pytest.raises(gradc.GradcError, match=r"gradc\.numpy\.vectorize"):
        gradc.jit(lambda x: np.vectorize(lambda a, b: a @ b, signature="(n),(n)->()")(x, x))(np.ones((2, 3)))
