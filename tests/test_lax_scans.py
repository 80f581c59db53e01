"""gradc.lax's scans (gradc/lax_scans.py) and constructors (gradc/lax_construct.py)
beyond the op table in tests/test_lax_ops.py.

Oracles: ``associative_scan`` against a sequential Python loop over the slices (numpy's
own operations), for add, multiply, maximum, a 2x2 matrix product over a tuple of four
arrays (not commutative, so the order of the operands is checked), and the linear
recurrence ``(a, b) -> (a1 a2, b1 a2 + b2)``, at lengths 1, 2, 5, 8 and 33 (odd and
even, the recursion's base cases), forward and reversed, on a middle axis; its gradient
against central finite differences.  ``cummax``/``cummin`` at ties against the closed
form of gradc's tie rule (docs/derivatives.md: the k elements holding a running
extreme share its cotangent, 1/k each; finite differences are no oracle at a tie).
``cumlogsumexp`` at inputs near +-1000 against numpy's stable ``logaddexp.accumulate``,
and its gradient against the closed form ``exp(x[j] - y[i])``."""
from __future__ import annotations

import numpy as onp
import pytest

import gradc
import gradc.numpy as np
from gradc import lax

from gradc_helpers import FD_ATOL, FD_RTOL, fd_jvp


def _matmul(p, q):
    """2x2 matrices held as tuples (m00, m01, m10, m11) of arrays: p @ q, element-wise."""
    return (p[0] * q[0] + p[1] * q[2], p[0] * q[1] + p[1] * q[3],
            p[2] * q[0] + p[3] * q[2], p[2] * q[1] + p[3] * q[3])


def _recurrence(p, q):
    return (p[0] * q[0], p[1] * q[0] + q[1])


def _loop_scan(fn, elems, axis, reverse):
    """The inclusive scan one slice at a time, in numpy: acc = fn(acc, elems[i])."""
    many = isinstance(elems, tuple)
    leaves = [onp.moveaxis(onp.asarray(e, onp.float64), axis, 0) for e in (elems if many else (elems,))]
    n = leaves[0].shape[0]
    order = range(n - 1, -1, -1) if reverse else range(n)
    out = [onp.empty_like(x) for x in leaves]
    acc = None
    for i in order:
        cur = tuple(x[i] for x in leaves)
        acc = cur if acc is None else (tuple(fn(acc, cur)) if many else (fn(acc[0], cur[0]),))
        for o, a in zip(out, acc):
            o[i] = a
    out = tuple(onp.moveaxis(o, 0, axis) for o in out)
    return out if many else out[0]


def _scans(L, x, a, b, c, d, maximum):
    """Five scans of (2, n, 3) arrays along axis 1 (given as 1 or -2), and one along axis 0."""
    return (L.associative_scan(L.add if L is lax else onp.add, x, axis=1),
            L.associative_scan(lambda u, v: u * v, x, reverse=True, axis=1),
            L.associative_scan(maximum, x, axis=-2),
            *L.associative_scan(_matmul, (a, b, c, d), reverse=True, axis=1),
            *L.associative_scan(_recurrence, (a, x), axis=1),
            L.associative_scan(lambda u, v: u + v, onp.moveaxis(x, 1, 0) if L is not lax else np.moveaxis(x, 1, 0),
                               reverse=True))


class _Loop:
    """The oracle, spelled like gradc.lax."""
    @staticmethod
    def associative_scan(fn, elems, reverse=False, axis=0):
        ndim = onp.ndim(elems[0] if isinstance(elems, tuple) else elems)
        return _loop_scan(fn, elems, axis % ndim, reverse)


def _inputs(n):
    rng = onp.random.default_rng(n)
    x = rng.uniform(0.5, 1.5, (2, n, 3))
    a, b, c, d = (rng.uniform(-0.5, 0.5, (2, n, 3)) + e for e in (1.0, 0.0, 0.0, 1.0))
    return x, a, b, c, d


# every length on the numpy evaluator; the compiled backends at an odd and an even length
# (the graph of six scans and their adjoints takes ~20 s to compile at n = 33)
@pytest.mark.parametrize("n,backend", [(n, "numpy") for n in (1, 2, 5, 8, 33)] + [(5, "llvm"), (8, "llvm"), (5, "c")])
def test_associative_scan_is_the_loop_and_differentiates(n, backend):
    xs = _inputs(n)
    want = _scans(_Loop, *xs, onp.maximum)
    got = gradc.jit(lambda *v: _scans(lax, *v, np.maximum), backend=backend)(*xs)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        onp.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-13)
    ws = [onp.random.default_rng(k).standard_normal(onp.shape(w)) for k, w in enumerate(want)]

    def loss_np(*v):
        return sum(onp.sum(s * w) for s, w in zip(_scans(_Loop, *v, onp.maximum), ws))

    grads = gradc.grad(lambda *v: sum(np.sum(s * w) for s, w in zip(_scans(lax, *v, np.maximum), ws)),
                       argnums=tuple(range(5)), backend=backend)(*xs)
    for i, g in enumerate(grads):
        for t in onp.random.default_rng(100 + i).standard_normal((2,) + xs[i].shape):
            onp.testing.assert_allclose(onp.sum(g * t), fd_jvp(loss_np, list(xs), [i], [t]),
                                        rtol=FD_RTOL, atol=FD_ATOL)


def test_associative_scan_calls_fn_logarithmically_often():
    """The parallel prefix calls fn on whole slices about 2 log2(n) times, not n times."""
    calls = []

    def add(u, v):
        calls.append(1)
        return u + v
    x = onp.arange(1000.0)
    onp.testing.assert_array_equal(gradc.jit(lambda x: lax.associative_scan(add, x))(x), onp.cumsum(x))
    assert len(calls) <= 2 * 10


# ----------------------------------------------------------------------------- cummax / cummin ties
def _tie_rule_grad(x, w, axis, reverse, extreme):
    """gradc's rule in closed form: y[i] = extreme(x[..i]); w[i] is shared equally by the
    j <= i (>= i when reversed) with x[j] == y[i]."""
    xm, wm = onp.moveaxis(x, axis, -1), onp.moveaxis(w, axis, -1)
    g = onp.zeros_like(xm)
    n = xm.shape[-1]
    for idx in onp.ndindex(xm.shape[:-1]):
        row = xm[idx]
        for i in range(n):
            seen = range(i, n) if reverse else range(i + 1)
            y = extreme(row[j] for j in seen)
            holders = [j for j in seen if row[j] == y]
            for j in holders:
                g[idx + (j,)] += wm[idx + (i,)] / len(holders)
    return onp.moveaxis(g, -1, axis)


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
@pytest.mark.parametrize("name,extreme,ufunc", [("cummax", max, onp.maximum), ("cummin", min, onp.minimum)])
@pytest.mark.parametrize("reverse", [False, True])
def test_cummax_cummin_share_the_gradient_at_ties(name, extreme, ufunc, reverse, backend):
    rng = onp.random.default_rng(5)
    x = rng.integers(-2, 3, (4, 9, 5)).astype(onp.float64)      # ties everywhere
    w = rng.standard_normal(x.shape)
    f = getattr(lax, name)
    y = gradc.jit(lambda x: f(x, 1, reverse), backend=backend)(x)
    want = ufunc.accumulate(x[:, ::-1], 1)[:, ::-1] if reverse else ufunc.accumulate(x, 1)
    onp.testing.assert_array_equal(y, want)
    g = gradc.grad(lambda x: np.sum(f(x, 1, reverse) * w), backend=backend)(x)
    onp.testing.assert_allclose(g, _tie_rule_grad(x, w, 1, reverse, extreme), rtol=1e-14, atol=1e-15)


# ----------------------------------------------------------------------------- cumlogsumexp
@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
@pytest.mark.parametrize("dtype", [onp.float64, onp.float32])
def test_cumlogsumexp_is_stable_at_large_inputs(dtype, backend):
    rng = onp.random.default_rng(9)
    x = (onp.where(rng.random((3, 6, 4)) < 0.5, 1000.0, -1000.0) + rng.uniform(-3, 3, (3, 6, 4))).astype(dtype)
    y = gradc.jit(lambda x: lax.cumlogsumexp(x, axis=1), backend=backend)(x)
    want = onp.logaddexp.accumulate(x.astype(onp.float64), 1)
    assert y.dtype == dtype and onp.all(onp.isfinite(y))
    onp.testing.assert_allclose(y, want, rtol=1e-14 if dtype == onp.float64 else 1e-6)
    w = rng.standard_normal(x.shape)
    g = gradc.grad(lambda x: np.sum(lax.cumlogsumexp(x, axis=1) * w), backend=backend)(x)
    x64 = x.astype(onp.float64)
    expect = onp.zeros_like(x64)                     # dy[i]/dx[j] = exp(x[j] - y[i]) for j <= i
    for i in range(x.shape[1]):
        expect[:, :i + 1] += onp.exp(x64[:, :i + 1] - want[:, i:i + 1]) * w[:, i:i + 1]
    assert onp.all(onp.isfinite(g))
    onp.testing.assert_allclose(g, expect, rtol=1e-12 if dtype == onp.float64 else 1e-4, atol=1e-12)


# ----------------------------------------------------------------------------- reduce, generic
def _argmax_pair(p, q):
    """(value, index) pairs: the larger value, the lower index at a tie (associative and
    commutative, as XLA requires of a reduction)."""
    take = np.logical_or(p[0] > q[0], np.logical_and(p[0] == q[0], p[1] < q[1]))
    return np.where(take, p[0], q[0]), np.where(take, p[1], q[1])


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
@pytest.mark.parametrize("n", [1, 6, 7])
def test_reduce_with_a_variadic_computation_is_argmax(n, backend):
    """A variadic reduce over (values, indices), the argmax idiom, on integer data (ties):
    numpy's argmax (the first maximum) and max; the gradient goes to that element."""
    rng = onp.random.default_rng(n)
    x = rng.integers(-3, 4, (4, n, 5)).astype(onp.float64)

    def f(x):
        return lax.reduce((x, lax.broadcasted_iota(onp.int64, x.shape, 1)), (-onp.inf, 0), _argmax_pair, (1,))
    v, i = gradc.jit(f, backend=backend)(x)
    onp.testing.assert_array_equal(i, onp.argmax(x, 1))
    onp.testing.assert_array_equal(v, onp.max(x, 1))
    assert i.dtype == onp.int64
    w = rng.standard_normal(v.shape)
    g = gradc.grad(lambda x: np.sum(f(x)[0] * w), backend=backend)(x)
    expect = onp.zeros_like(x)
    onp.put_along_axis(expect, onp.argmax(x, 1)[:, None], w[:, None], 1)
    onp.testing.assert_array_equal(g, expect)


# ----------------------------------------------------------------------------- constructors, bits
def test_iota_select_n_split_reduce_values():
    onp.testing.assert_array_equal(lax.iota(onp.int32, 4), onp.arange(4, dtype=onp.int32))
    assert lax.iota(onp.float32, 3).dtype == onp.float32
    onp.testing.assert_array_equal(lax.broadcasted_iota(onp.int64, (2, 3), 0), [[0, 0, 0], [1, 1, 1]])
    which = onp.array([[0, 1, 2], [2, 1, 0]])
    cases = [onp.full((2, 3), k, onp.float64) * 10 for k in range(3)]
    got = gradc.jit(lambda w, a, b, c: lax.select_n(w, a, b, c))(which, *cases)
    onp.testing.assert_array_equal(got, which * 10.0)
    got = gradc.jit(lambda a, b: lax.select_n(True, a, b))(cases[0], cases[1])   # scalar boolean which
    onp.testing.assert_array_equal(got, cases[1])
    parts = gradc.jit(lambda x: lax.split(x, (0, 2, 3), axis=-1))(onp.arange(10.0).reshape(2, 5))
    assert [p.shape for p in parts] == [(2, 0), (2, 2), (2, 3)]
    b = onp.array([[True, False], [True, True]])
    onp.testing.assert_array_equal(gradc.jit(lambda b: lax.reduce(b, True, lax.bitwise_and, (1,)))(b), [False, True])
    onp.testing.assert_array_equal(gradc.jit(lambda b: lax.reduce(b, False, lax.bitwise_or, (0,)))(b), [True, True])


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_population_count_and_clz(backend):
    """Against Python's int.bit_count and bit_length on the two's complement bits."""
    for dtype in (onp.int8, onp.uint8, onp.int32, onp.int64, onp.uint64):
        info = onp.iinfo(dtype)
        x = onp.array([0, 1, 3, 5, info.max, info.min, info.max // 3], dtype)
        bits = 8 * x.itemsize
        raw = [int(v) % (1 << bits) for v in x.tolist()]
        pc = gradc.jit(lax.population_count, backend=backend)(x)
        lz = gradc.jit(lax.clz, backend=backend)(x)
        assert pc.dtype == dtype and lz.dtype == dtype
        onp.testing.assert_array_equal(pc, [bin(r).count("1") for r in raw])
        onp.testing.assert_array_equal(lz, [bits - r.bit_length() for r in raw])


def test_bad_arguments_are_clear_errors():
    x = onp.ones((3, 4))
    with pytest.raises(gradc.ArgumentError, match="axis 2 is out of range for an operand of rank 2"):
        gradc.jit(lambda x: lax.cummax(x, 2))(x)
    with pytest.raises(gradc.ArgumentError, match="one size along axis 0, got sizes \\[3, 4\\]"):
        gradc.jit(lambda x: lax.associative_scan(lax.add, (x, x.T)))(x)
    with pytest.raises(gradc.ArgumentError, match="fn must be callable"):
        gradc.jit(lambda x: lax.associative_scan(None, x))(x)
    with pytest.raises(gradc.ArgumentError, match="reduce: computation must be callable, got 'add'"):
        gradc.jit(lambda x: lax.reduce(x, 0.0, "add", (0,)))(x)
    with pytest.raises(gradc.ArgumentError, match=r"reduce: the operands must have one shape, got \[\(3, 4\), \(4, 3\)\]"):
        gradc.jit(lambda x: lax.reduce((x, x.T), (0.0, 0.0), lax.add, (0,)))(x)
    with pytest.raises(gradc.ArgumentError, match="reduce: each init value must be a scalar"):
        gradc.jit(lambda x: lax.reduce(x, x[0], lax.add, (0,)))(x)
    with pytest.raises(gradc.ArgumentError, match="a boolean which selects between exactly 2 cases, got 3"):
        gradc.jit(lambda x: lax.select_n(x > 0, x, x, x))(x)
    with pytest.raises(gradc.ArgumentError, match="which must be boolean or integer, got float64"):
        gradc.jit(lambda x: lax.select_n(x, x, x))(x)
    with pytest.raises(gradc.ArgumentError, match="the cases must have one shape"):
        gradc.jit(lambda x: lax.select_n(True, x, x[0]))(x)
    with pytest.raises(gradc.ArgumentError, match=r"sizes \(1, 2\) must add up to the size of axis 1 \(4\)"):
        gradc.jit(lambda x: lax.split(x, (1, 2), 1))(x)
    with pytest.raises(gradc.ArgumentError, match="one entry per axis of the operand \\(rank 2\\), got 1"):
        gradc.jit(lambda x: lax.tile(x, (2,)))(x)
    with pytest.raises(gradc.ArgumentError, match="fill_value must be a scalar"):
        gradc.jit(lambda x: lax.full((2,), x))(x)
    with pytest.raises(gradc.ArgumentError, match="clz: expected an integer array, got float64"):
        gradc.jit(lax.clz)(x)
