"""Every object gradc returns pickles (with ``pickle`` and ``cloudpickle``) and computes
the same numbers in another process: multiprocessing (spawn and fork), joblib and
concurrent.futures.  A pickle holds the Python function and the transformation's
options (or, for ``Lowered``, the graphs), never code pointers; the worker traces again
and takes the kernel from the disk cache or compiles it.

Oracles are closed forms in numpy (tests/pickle_models.py).  Float64 tolerance 1e-10
relative: the compiled sums add in another order than numpy's (vector lanes, pairwise
over threads), a few ulp per addition over a few thousand terms; any wrong term would
be off by far more.  Float32: 1e-4 (float32's eps is 1.2e-7; same argument)."""
from __future__ import annotations

import concurrent.futures
import functools
import multiprocessing
import pickle
import threading

import numpy as onp
import pytest

import gradc
import pickle_models as pm

cloudpickle = pytest.importorskip("cloudpickle")

RTOL = {onp.dtype(onp.float64): 1e-10, onp.dtype(onp.float32): 1e-4}


def cases(dtype=onp.float64, n=3000):
    """(name, gradc function, arguments, numpy oracle of the result)."""
    w, X, y = pm.data(n=n, dtype=dtype)
    x, A = w[:4], X[:6, :4]
    ct = y[:6]
    t = onp.linspace(-1, 1, len(w)).astype(dtype)
    _out, vjp_fn = gradc.vjp(pm.layer, x, A)
    d = 1 - onp.tanh(A @ x) ** 2
    return [
        ("jit", gradc.jit(pm.logistic_loss), (w, X, y), pm.oracle_loss(w, X, y)),
        ("grad", gradc.grad(pm.logistic_loss), (w, X, y), pm.oracle_grad(w, X, y)),
        ("value_and_grad", gradc.value_and_grad(pm.logistic_loss, argnums=(0,)), (w, X, y),
         (pm.oracle_loss(w, X, y), (pm.oracle_grad(w, X, y),))),
        ("jacobian", gradc.jacobian(pm.layer), (x, A), pm.oracle_layer_jacobian(x, A)),
        ("hessian", gradc.hessian(pm.logistic_loss), (w, X, y), pm.oracle_hessian(w, X, y)),
        ("vjp_fn", vjp_fn, (ct,), (A.T @ (ct * d), onp.outer(ct * d, x))),
        ("jvp", functools.partial(gradc.jvp, pm.logistic_loss), ((w, X, y), (t, 0 * X, 0 * y)),
         (pm.oracle_loss(w, X, y), pm.oracle_grad(w, X, y) @ t)),
        ("hvp", functools.partial(gradc.hvp, pm.logistic_loss), ((w, X, y), (t, 0 * X, 0 * y)),
         (pm.oracle_hessian(w, X, y) @ t,)),   # checked: the w block (one per argument)
        ("decorated", pm.decorated_sq, (w,), onp.sum(w * w)),
    ]


def assert_matches(got, want, dtype, what):
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) >= len(want), what
        for g, w in zip(got, want):
            assert_matches(g, w, dtype, what)
        return
    got = onp.asarray(got)
    assert got.shape == onp.shape(want), what
    onp.testing.assert_allclose(got, want, rtol=RTOL[onp.dtype(dtype)], atol=0, err_msg=what)


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_round_trip_in_process(dumps):
    for name, fn, args, want in cases():
        blob = dumps(fn)
        assert b"ctypes" not in blob and b"_callpath" not in blob, name
        assert_matches(pickle.loads(blob)(*args), want, onp.float64, name)


def test_a_pickle_holds_no_compiled_code():
    """A function that has compiled several signatures pickles to the same few bytes."""
    f = gradc.grad(pm.logistic_loss)
    before = pickle.dumps(f)
    for n in (10, 1000):
        f(*pm.data(n=n))
    assert pickle.dumps(f) == before
    assert len(before) < 300


def _run_in(pool_map, dtype=onp.float64, n=3000):
    todo = cases(dtype, n)
    results = pool_map(pm.call, [fn for _n, fn, _a, _w in todo], [a for _n, _f, a, _w in todo])
    for (name, _fn, _args, want), got in zip(todo, results):
        assert_matches(got, want, dtype, name)


@pytest.mark.parametrize("method", ["spawn", "fork", "forkserver"])
def test_multiprocessing(method):
    with multiprocessing.get_context(method).Pool(2) as pool:
        _run_in(lambda f, fns, argss: pool.starmap(f, zip(fns, argss)))


def test_concurrent_futures_float32():
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx) as ex:
        _run_in(lambda f, fns, argss: list(ex.map(f, fns, argss)), dtype=onp.float32)


def test_joblib_closures():
    """joblib (loky) pickles with cloudpickle: closures and lambdas travel by value."""
    joblib = pytest.importorskip("joblib")
    w, X, y = pm.data()
    loss_at = lambda w: pm.logistic_loss(w, X, y)          # noqa: E731 (a closure on purpose)
    fns = [gradc.grad(loss_at), gradc.jit(loss_at)]
    got = joblib.Parallel(n_jobs=2)(joblib.delayed(pm.call)(f, (w,)) for f in fns)
    assert_matches(got[0], pm.oracle_grad(w, X, y), onp.float64, "grad of a closure")
    assert_matches(got[1], pm.oracle_loss(w, X, y), onp.float64, "jit of a closure")
    _run_in(lambda f, fns, argss: joblib.Parallel(n_jobs=2)(joblib.delayed(f)(a, b) for a, b in zip(fns, argss)))


def test_closure_through_cloudpickle_to_a_spawned_process():
    w, X, y = pm.data()
    f = gradc.value_and_grad(lambda w: pm.logistic_loss(w, X, y))
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        v, g = pool.apply(pm.call_cloudpickled, (cloudpickle.dumps(f), (w,)))
    assert_matches((v, g), (pm.oracle_loss(w, X, y), pm.oracle_grad(w, X, y)), onp.float64, "closure")


def test_lowered_rebuilds_its_kernel_in_another_process():
    w, X, y = pm.data()
    low = gradc.grad(pm.logistic_loss).lower(w, X, y)
    blob = pickle.dumps(low)
    assert b"ctypes" not in blob
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        nests, ir, listing = pool.apply(pm.lower_and_describe, (blob,))
    assert nests == low.loop_nests() and listing == str(low)
    assert ir == low.llvm_ir()


def test_fork_after_the_thread_pool_started():
    """The parent's kernels ran on the thread pool (sizes above the split threshold);
    forked children (while a parent thread keeps calling kernels) start pools of their
    own and finish.  The timeout only detects a deadlock; it asserts no speed."""
    w, X, y = pm.data(n=400_000)
    g = gradc.grad(pm.logistic_loss)
    want = pm.oracle_grad(w, X, y)
    assert_matches(g(w, X, y), want, onp.float64, "parent")
    stop = threading.Event()

    def keep_calling():
        while not stop.is_set():
            g(w, X, y)
    busy = threading.Thread(target=keep_calling)
    busy.start()
    try:
        with multiprocessing.get_context("fork").Pool(2) as pool:
            res = pool.starmap_async(pm.call, [(g, (w, X, y))] * 4)
            for got in res.get(timeout=300):
                assert_matches(got, want, onp.float64, "forked child")
    finally:
        stop.set()
        busy.join()
