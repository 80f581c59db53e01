"""Arguments and results of every rank, through every transformation, on every backend.

Oracles: closed forms computed with numpy (the derivative of tanh is 1 - tanh^2, of sin
is cos; a max over an axis passes the gradient to its maximum, with ties excluded by
drawing continuous values) and central finite differences (tests/gradc_helpers.py)."""
import os
import textwrap

import numpy as onp
import pytest

import gradc
import gradc.numpy as np
from gradc.api import MAX_RANK
from gradc.errors import ArgumentError

from gradc_helpers import fd_grad

BACKENDS = ["numpy", "llvm", "c"]
RANKS = [0, 1, 2, 3, 4, 5, 6]


def _shape(rank):
    return tuple(range(2, 2 + rank))        # distinct sizes: a transposed axis would show


def loss(x, w):
    return np.sum(np.tanh(x * w) ** 2) + np.sum(np.max(x, axis=-1))


def loss_np(x, w):
    return onp.sum(onp.tanh(x * w) ** 2) + onp.sum(onp.max(x, axis=-1))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rank", RANKS[1:])
def test_value_and_grad_at_every_rank(rank, backend):
    rng = onp.random.default_rng(rank)
    x, w = rng.normal(size=_shape(rank)), rng.normal(size=_shape(rank)[-1:])
    v, (gx, gw) = gradc.value_and_grad(loss, argnums=(0, 1), backend=backend)(x, w)
    t = onp.tanh(x * w)
    d = 2 * t * (1 - t * t)
    onp.testing.assert_allclose(v, loss_np(x, w), rtol=1e-12)
    onp.testing.assert_allclose(gx, d * w + (x == x.max(-1, keepdims=True)), rtol=1e-12, atol=1e-14)
    onp.testing.assert_allclose(gw, (d * x).reshape(-1, x.shape[-1]).sum(0), rtol=1e-12, atol=1e-14)
    if x.size <= 120:    # finite differences entry by entry
        onp.testing.assert_allclose(gx, fd_grad(loss_np, [x, w], 0), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rank", RANKS)
def test_forward_mode_and_vjp_at_every_rank(rank, backend):
    x = onp.random.default_rng(rank).normal(size=_shape(rank))
    t = onp.random.default_rng(rank + 10).normal(size=x.shape)
    y, ty = gradc.jvp(lambda x: np.sin(x) * 2.0, (x,), (t,), backend=backend)
    assert onp.shape(y) == x.shape
    onp.testing.assert_allclose(ty, 2 * onp.cos(x) * t, rtol=1e-13)
    out, vjp_fn = gradc.vjp(lambda x: np.sin(x), x, backend=backend)
    onp.testing.assert_allclose(vjp_fn(t)[0], onp.cos(x) * t, rtol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_jacobian_hessian_hvp_at_rank_3(rank, backend):
    x = onp.random.default_rng(rank).normal(size=_shape(rank))
    n = x.size
    J = gradc.jacobian(lambda x: np.sin(x) * np.sum(x), backend=backend)(x)
    assert J.shape == x.shape + x.shape
    ref = (onp.diag((onp.cos(x) * x.sum()).ravel()) + onp.outer(onp.sin(x).ravel(), onp.ones(n)))
    onp.testing.assert_allclose(J.reshape(n, n), ref, rtol=1e-12, atol=1e-14)
    H = gradc.hessian(lambda x: np.sum(np.sin(x)), backend=backend)(x)
    assert H.shape == x.shape + x.shape
    onp.testing.assert_allclose(H.reshape(n, n), onp.diag(-onp.sin(x).ravel()), atol=1e-14)
    v = onp.ones_like(x)
    hv = gradc.hvp(lambda x: np.sum(np.sin(x) ** 2), (x,), (v,), backend=backend)
    hv = hv[1] if isinstance(hv, tuple) else hv
    onp.testing.assert_allclose(hv, 2 * onp.cos(2 * x) * v, rtol=1e-12, atol=1e-14)


def test_ranks_above_the_maximum_are_a_clear_error():
    x = onp.ones((1,) * (MAX_RANK + 1))
    with pytest.raises(ArgumentError, match=rf"rank {MAX_RANK + 1}; gradc supports ranks 0 to {MAX_RANK}"):
        gradc.grad(lambda x: np.sum(x))(x)
    gradc.grad(lambda x: np.sum(x))(onp.ones((1,) * MAX_RANK))     # the maximum itself works


def test_threaded_rank_4_reduction_over_inner_axes(monkeypatch):
    """Past the size where nests split over threads: a rank-4 sum over two inner axes."""
    x = onp.random.default_rng(3).normal(size=(300, 7, 11, 13))
    g = gradc.grad(lambda x: np.sum(np.sum(x * x, axis=(1, 3)) ** 2))(x)
    s = (x * x).sum(axis=(1, 3), keepdims=True)
    onp.testing.assert_allclose(g, 4 * s * x, rtol=1e-12)


def test_gradc_build_documents_each_axis(tmp_path):
    """A rank-3 argument through `gradc build`: the header names every axis's size, and
    a size may be called `t` (it used to become C's size_t)."""
    from test_aot import Library, gradc_build
    src = tmp_path / "m.py"
    src.write_text(textwrap.dedent("""\
        import gradc.numpy as np
        def loss(W, X):
            return np.sum(np.tanh(X * W) ** 2)
        """))
    gradc_build(tmp_path, target=f"{src}:loss", types=["f64[t,d]", "f64[b,t,d]"])
    header = (tmp_path / "loss.h").read_text()
    assert "const double[b][t][d]" in header and "X.shape[1]" in header
    lib = Library(tmp_path / "libloss.so", "loss")
    rng = onp.random.default_rng(0)
    W, X = rng.normal(size=(4, 3)), rng.normal(size=(5, 4, 3))
    # sizes in the order of the header's LOSS_SIZE_* macros: alphabetical (b, d, t)
    rc, (value, dW) = lib("value_and_grad", [W, X], [(), (4, 3)], [5, 3, 4])
    assert rc == 0
    t = onp.tanh(X * W)
    onp.testing.assert_allclose(value, onp.sum(t * t), rtol=1e-12)
    onp.testing.assert_allclose(dW, (2 * t * (1 - t * t) * X).sum(0), rtol=1e-12)
    assert os.path.exists(tmp_path / "gradc.h")


def conv1d(w, x):
    """sum_k w[k] * x[:, k:k + T], the way a numpy user writes a 1-D convolution."""
    K, T = w.shape[0], x.shape[1] - w.shape[0] + 1
    out = w[0] * x[:, 0:T]
    for k in range(1, K):
        out = out + w[k] * x[:, k:k + T]
    return np.sum(np.tanh(out))


def test_convolution_from_slices_is_one_loop_nest():
    rng = onp.random.default_rng(0)
    w, x = rng.normal(size=5), rng.normal(size=(32, 100))
    f = gradc.jit(conv1d)
    assert len(f.lower(w, x).loop_nests().splitlines()) == 1
    ref = sum(w[k] * x[:, k:k + 96] for k in range(5))
    onp.testing.assert_allclose(f(w, x), onp.sum(onp.tanh(ref)), rtol=1e-12)
    g = gradc.grad(conv1d, argnums=(0, 1))(w, x)
    loss_np = lambda w, x: onp.sum(onp.tanh(sum(w[k] * x[:, k:k + 96] for k in range(5))))  # noqa: E731
    onp.testing.assert_allclose(g[0], fd_grad(loss_np, [w, x], 0), rtol=1e-6, atol=1e-6)


def test_innermost_axis_of_a_rank_3_nest_vectorizes():
    import re
    x = onp.random.default_rng(0).normal(size=(4, 5, 64))
    ir = gradc.jit(lambda x: np.sum(np.tanh(x) * 2.0, axis=-1)).lower(x).llvm_ir()
    assert re.search(r"<(4|8|16) x double>", ir)
