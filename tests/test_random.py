"""gradc.random: Threefry-2x32 against the Random123 known-answer vectors (Salmon et
al., SC 2011) -- the oracle CI runs -- and jax.random bit for bit where JAX is
installed; the samplers' moments at 10^6 draws (each bound 5 standard errors: fixed
seeds, so a pass is deterministic, and a wrong transform misses by far more); the same
bits on every backend at sizes that split over threads; the reparameterization
gradient against its closed form."""
from __future__ import annotations

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
import gradc.random as gr

KAT = [((0x0, 0x0), (0x0, 0x0), (0x6B200159, 0x99BA4EFE)),
       ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
       ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0))]


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
def test_threefry_known_answers(backend):
    k = np.array([k for k, _, _ in KAT], np.uint32)
    c = np.array([c for _, c, _ in KAT], np.uint32)
    f = gradc.jit(lambda k1, k2, x1, x2: gr.threefry_2x32(k1, k2, x1, x2), backend=backend)
    for i, (_, _, want) in enumerate(KAT):
        got = f(k[i:i + 1, 0], k[i:i + 1, 1], c[i:i + 1, 0], c[i:i + 1, 1])
        assert (int(got[0][0]), int(got[1][0])) == want


@pytest.mark.parametrize("backend", ["llvm", "c"])
def test_every_backend_draws_the_same_bits(backend):
    """263,169 draws (loops vectorize and split over threads) equal to numpy's, and the
    key is an input: a new key does not compile again."""
    f = gradc.jit(lambda key: (gr.bits(key, (513, 513)), gr.uniform(key, (7, 11), np.float32),
                               gr.normal(key, (3, 5, 9))), backend=backend)
    for seed in (0, 2 ** 40 + 3):
        key = gr.PRNGKey(seed)
        got = f(key)
        want = (gr.bits(key, (513, 513)), gr.uniform(key, (7, 11), np.float32), gr.normal(key, (3, 5, 9)))
        for g, w in zip(got, want):
            assert g.dtype == w.dtype
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        # normal's erfinv: compiled and numpy evaluations of one polynomial may round 1 ulp apart
        np.testing.assert_allclose(got[2], want[2], rtol=4 * 2.0 ** -52, atol=0)
    assert len(f._cache) == 1


def test_keys_split_and_fold_in_are_distinct_and_deterministic():
    key = gr.PRNGKey(7)
    ks = gr.split(key, 1000)
    assert ks.shape == (1000, 2) and ks.dtype == np.uint32
    assert len({tuple(k) for k in ks.tolist()}) == 1000
    np.testing.assert_array_equal(gr.split(key, (10, 100)).reshape(1000, 2), ks)
    assert not np.array_equal(gr.fold_in(key, 1), gr.fold_in(key, 2))
    np.testing.assert_array_equal(gr.fold_in(key, 5), gr.fold_in(gr.PRNGKey(7), 5))


def _within(x, mean, sd, n, k=5.0):
    assert abs(x - mean) < k * sd / np.sqrt(n), (x, mean)


def test_sampler_moments():
    n = 1_000_000
    key = gr.PRNGKey(3)
    u = gr.uniform(key, (n,), minval=-2.0, maxval=3.0)
    assert u.min() >= -2.0 and u.max() < 3.0
    _within(u.mean(), 0.5, 5 / np.sqrt(12), n)
    z = gr.normal(gr.fold_in(key, 1), (n,))
    _within(z.mean(), 0.0, 1.0, n)
    _within((z ** 2).mean(), 1.0, np.sqrt(2), n)
    _within((np.abs(z) < 1.959964).mean(), 0.95, np.sqrt(0.95 * 0.05), n)
    b = gr.bernoulli(gr.fold_in(key, 2), 0.3, (n,))
    assert b.dtype == np.bool_
    _within(b.mean(), 0.3, np.sqrt(0.21), n)
    e = gr.exponential(gr.fold_in(key, 3), (n,))
    _within(e.mean(), 1.0, 1.0, n)
    logits = np.log(np.array([0.1, 0.2, 0.3, 0.4]))
    c = gr.categorical(gr.fold_in(key, 4), logits, shape=(n,))
    for j, p in enumerate([0.1, 0.2, 0.3, 0.4]):
        _within((c == j).mean(), p, np.sqrt(p * (1 - p)), n)
    t = gr.truncated_normal(gr.fold_in(key, 5), -1.0, 0.5, (n,))
    assert t.min() > -1.0 and t.max() < 0.5


def test_reparameterized_gradient():
    """d/dmu, d/dsigma of sum((mu + sigma z)^2) with z = normal(key): 2 sum(x), 2 sum(x z)."""
    key = gr.PRNGKey(11)

    def loss(mu, sigma, key):
        x = mu + sigma * gr.normal(key, (1000,))
        return gnp.sum(x * x)
    gm, gs = gradc.grad(loss, argnums=(0, 1))(0.3, 1.7, key)
    z = gr.normal(key, (1000,))
    x = 0.3 + 1.7 * z
    np.testing.assert_allclose([gm, gs], [2 * x.sum(), 2 * (x * z).sum()], rtol=1e-12)


def test_dropout_in_a_compiled_model():
    """A dropout layer with a key argument: the mask is bernoulli(key, 1 - rate) and the
    gradient flows through the kept units only."""
    key = gr.PRNGKey(5)
    x = np.random.default_rng(0).standard_normal((64, 33))

    def f(x, key):
        keep = gr.dropout_mask(key, 0.25, x.shape)
        return gnp.sum(gnp.where(keep, x / 0.75, 0.0) ** 2)
    g = gradc.grad(f)(x, key)
    keep = gr.bernoulli(key, 0.75, x.shape)
    np.testing.assert_allclose(g, np.where(keep, 2 * x / 0.75 ** 2, 0.0), rtol=1e-13)


def test_bad_keys_are_refused():
    with pytest.raises(gradc.ArgumentError, match="uint32 array of shape"):
        gr.uniform(np.array([1, 2]), (3,))
    with pytest.raises(gradc.ArgumentError, match="float32 or float64"):
        gr.uniform(gr.PRNGKey(0), (3,), np.int32)


def test_same_numbers_as_jax_where_installed():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jr = jax.random
    for seed in (0, 42, 2 ** 33 + 5):
        k, jk = gr.PRNGKey(seed), jr.PRNGKey(seed)
        np.testing.assert_array_equal(k, np.asarray(jr.key_data(jk)))
        np.testing.assert_array_equal(gr.split(k, 5), np.asarray(jr.split(jk, 5)))
        np.testing.assert_array_equal(gr.fold_in(k, 9), np.asarray(jr.fold_in(jk, 9)))
        np.testing.assert_array_equal(gr.bits(k, (6, 7)), np.asarray(jr.bits(jk, (6, 7))))
        for dt in (np.float64, np.float32):
            np.testing.assert_array_equal(gr.uniform(k, (999,), dt), np.asarray(jr.uniform(jk, (999,), dt)))
            # XLA fuses the scaling into one multiply-add: one rounding fewer than u * 3 - 1
            np.testing.assert_allclose(gr.uniform(k, (999,), dt, -1.0, 2.0),
                                       np.asarray(jr.uniform(jk, (999,), dt, -1.0, 2.0)),
                                       rtol=2 * np.finfo(dt).eps, atol=2 * np.finfo(dt).eps)
        np.testing.assert_array_equal(gr.bernoulli(k, 0.3, (500,)), np.asarray(jr.bernoulli(jk, 0.3, (500,))))
        np.testing.assert_array_equal(gr.categorical(k, np.log(np.arange(1.0, 6.0)), shape=(200,)),
                                      np.asarray(jr.categorical(jk, np.log(np.arange(1.0, 6.0)), shape=(200,))))
        # normal goes through erfinv: gradc's is within a few ulp of XLA's
        np.testing.assert_allclose(gr.normal(k, (999,)), np.asarray(jr.normal(jk, (999,))), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
def test_randint_and_permutation(backend):
    """randint: every value in [minval, maxval) (per-element bounds too), each of 10
    values drawn 10^5 +- 5 standard errors times in 10^6 draws, minval where maxval <=
    minval; permutation: a permutation of arange(n) (one sort round and two, above 1,625
    elements), rows moved together or shuffled independently; the same in a compiled
    model as outside one."""
    k = gr.PRNGKey(3)
    draw = gradc.jit(lambda k: gr.randint(k, (1000, 1000), 0, 10), backend=backend)(k)
    assert draw.dtype == np.int64
    counts = np.bincount(draw.ravel(), minlength=10)
    assert counts.size == 10 and np.all(np.abs(counts - 1e5) < 5 * np.sqrt(1e6 * 0.1 * 0.9))
    lo, hi = np.array([-5, 0, 7, 3]), np.array([5, 1, 9, 3])
    d = gradc.jit(lambda k, a, b: gr.randint(k, (50, 4), a, b, np.int32), backend=backend)(k, lo, hi)
    assert d.dtype == np.int32 and np.all(d >= np.minimum(lo, hi)) and np.all(d < np.maximum(hi, lo + 1))
    np.testing.assert_array_equal(d[:, 3], 3)
    np.testing.assert_array_equal(d, gr.randint(k, (50, 4), lo, hi, np.int32))
    for n in (10, 3000):
        p = gradc.jit(lambda k: gr.permutation(k, n), backend=backend)(k)
        np.testing.assert_array_equal(np.sort(p), np.arange(n))
        assert not np.array_equal(p, np.arange(n))
        np.testing.assert_array_equal(p, gr.permutation(k, n))
    x = np.arange(24.0).reshape(4, 6)
    rows = gradc.jit(lambda k, x: gr.permutation(k, x, axis=1), backend=backend)(k, x)
    order = rows[0].astype(int)                                           # x[0] is arange(6)
    np.testing.assert_array_equal(np.sort(order), np.arange(6))
    np.testing.assert_array_equal(rows, x[:, order])                      # columns moved together
    ind = gradc.jit(lambda k, x: gr.permutation(k, x, axis=1, independent=True), backend=backend)(k, x)
    np.testing.assert_array_equal(np.sort(ind, axis=1), x)


def test_randint_and_permutation_match_jax_where_installed():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jr = jax.random
    k, jk = gr.PRNGKey(11), jr.PRNGKey(11)
    for lo, hi, dt in ((0, 10, np.int64), (-5, 7, np.int32), (0, 2 ** 31, np.int32), (-2 ** 40, 2 ** 62, np.int64)):
        np.testing.assert_array_equal(gr.randint(k, (3, 400), lo, hi, dt), np.asarray(jr.randint(jk, (3, 400), lo, hi, dt)))
    for n in (10, 3000):
        np.testing.assert_array_equal(gr.permutation(k, n), np.asarray(jr.permutation(jk, n)))
    x = np.arange(24.0).reshape(4, 6)
    np.testing.assert_array_equal(gr.permutation(k, x, axis=1), np.asarray(jr.permutation(jk, x, axis=1)))


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
def test_choice(backend):
    """choice: uniform draws with replacement (each of 10 values 10^5 +- 5 standard
    errors times in 10^6), draws weighted by p (each value's count within 5 standard
    errors of 10^6 p), without replacement distinct values (with and without p, p = 0
    never drawn), an array's slices along an axis, the same in a compiled model as
    outside one; bad requests refused."""
    k = gr.PRNGKey(5)
    u = gradc.jit(lambda k: gr.choice(k, 10, (1000, 1000)), backend=backend)(k)
    counts = np.bincount(u.ravel(), minlength=10)
    assert u.shape == (1000, 1000) and np.all(np.abs(counts - 1e5) < 5 * np.sqrt(1e6 * 0.1 * 0.9))
    p = np.array([0.5, 0.25, 0.0, 0.125, 0.125])
    w = gradc.jit(lambda k, p: gr.choice(k, 5, (10 ** 6,), p=p), backend=backend)(k, p)
    counts = np.bincount(w, minlength=5)
    assert counts[2] == 0 and np.all(np.abs(counts - 1e6 * p) <= 5 * np.sqrt(1e6 * p * (1 - p)))
    np.testing.assert_array_equal(w, gr.choice(k, 5, (10 ** 6,), p=p))
    for pp in (None, p):
        d = gradc.jit(lambda k: gr.choice(k, 5, (4,), replace=False, p=pp), backend=backend)(k)
        assert len(set(d.tolist())) == 4 and (pp is None or 2 not in d.tolist())
    x = np.arange(24.0).reshape(4, 6)
    cols = gradc.jit(lambda k, x: gr.choice(k, x, (2, 3), axis=1, replace=False), backend=backend)(k, x)
    assert cols.shape == (4, 2, 3)
    picked = cols[0].astype(int).ravel()                       # x[0] is arange(6)
    assert len(set(picked.tolist())) == 6
    np.testing.assert_array_equal(cols, x[:, picked].reshape(4, 2, 3))
    with pytest.raises(gradc.ArgumentError, match="larger sample"):
        gr.choice(k, 3, (4,), replace=False)
    with pytest.raises(gradc.ArgumentError, match="p must be a vector"):
        gr.choice(k, 4, (2,), p=p)


def test_choice_matches_jax_where_installed():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jr = jax.random
    x = np.arange(30.0).reshape(10, 3)
    p = np.random.default_rng(0).random(10)
    p /= p.sum()
    for seed in (0, 3):
        k, jk = gr.PRNGKey(seed), jr.PRNGKey(seed)
        for a, shape, kw in ((7, (5,), {}), (7, (2, 3), {"replace": False}), (x, (4,), {}), (x, (2, 2), {"axis": 1}),
                             (x, (3,), {"replace": False}), (10, (6,), {"p": p}), (x, (2, 3), {"p": p}),
                             (10, (4,), {"p": p, "replace": False}), (5, (), {})):
            np.testing.assert_array_equal(gr.choice(k, a, shape, **kw), np.asarray(jr.choice(jk, a, shape, **kw)))
