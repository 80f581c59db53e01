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
    one = gradc.grad(per_example, argnums=argnums)
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
        want = gradc.grad(lambda *d: gnp.sum(f(*d) * V[k]), argnums=argnums)(*[args[i] for i in diff])
        for a in argnums:
            np.testing.assert_allclose(got[a][k], want[a], rtol=1e-12, atol=1e-12, err_msg=c.id)
