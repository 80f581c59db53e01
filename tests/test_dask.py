"""gradc functions on dask arrays chunked over samples (gradc/distributed.py): computed
per chunk on the workers of a 2-process LocalCluster, the chunks' results added, and
checked against numpy closed forms on the same data.

Tolerance: 1e-12 relative in the 2-norm of each result.  The cluster adds the chunks'
partial sums in another order than numpy's pairwise sum; each ordering's error is a few
ulp times the sum of the terms' magnitudes, and for these sums that is below 1e-13 of
the result (checked: the observed errors are ~1e-15).  A wrong weight of one chunk (a
chunk's mean not weighted by its size, a regularizer counted per chunk) is off by 1e-3
or more."""
from __future__ import annotations

import numpy as onp
import pytest

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
import dask.array as da                                           # noqa: E402

import gradc                                                      # noqa: E402
import gradc.distributed                                          # noqa: E402
import gradc.numpy as np                                          # noqa: E402
import pickle_models as pm                                        # noqa: E402


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as c:
        yield c


def chunked(rows, d=5, dtype="float64"):
    """(X, y) as dask arrays whose chunks are generated on the workers, and the same
    data in numpy for the oracle."""
    parts = [dask.delayed(pm.block)(i, n, d, dtype) for i, n in enumerate(rows)]
    Z = da.concatenate([da.from_delayed(p, (n, d + 1), dtype) for p, n in zip(parts, rows)])
    Zn = onp.concatenate([pm.block(i, n, d, dtype) for i, n in enumerate(rows)])
    return (Z[:, :d], Z[:, d]), (Zn[:, :d], Zn[:, d])


def close(got, want, rtol=1e-12):
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want):
            close(g, w, rtol)
        return
    got = onp.asarray(got)
    assert got.shape == onp.shape(want) and isinstance(got, onp.ndarray)
    err = onp.linalg.norm(got - want) / onp.linalg.norm(want)
    assert err <= rtol, f"relative error {err:.2e}"


def regularized(w, b, X, y):
    """A mean, a sum over the samples and a data-independent term."""
    z = X @ w + b
    return np.mean(np.log1p(np.exp(-y * z))) + 0.5 * np.sum(w * w) + np.sum(X[:, 0] * y) / 3.0


def oracle_regularized(w, b, X, y):
    z = X @ w + b
    s = -y / (1 + onp.exp(y * z)) / len(y)
    value = onp.mean(onp.log1p(onp.exp(-y * z))) + 0.5 * onp.sum(w * w) + onp.sum(X[:, 0] * y) / 3.0
    return value, (X.T @ s + w, s.sum())


def test_value_and_grad_on_uneven_chunks(client):
    """Chunks of 3 sizes (and a one-row chunk, which joins its neighbour): the mean is
    weighted by the chunk sizes, the sum adds, the L2 term counts once."""
    (X, y), (Xn, yn) = chunked([250_000, 90_001, 7, 1, 60_000])
    w = onp.linspace(-0.5, 0.5, 5)
    f = gradc.value_and_grad(regularized, argnums=(0, 1))
    close(f(w, 0.25, X, y), oracle_regularized(w, 0.25, Xn, yn))
    close(gradc.jit(regularized)(w, 0.25, X, y), oracle_regularized(w, 0.25, Xn, yn)[0])
    close(gradc.grad(regularized)(w, 0.25, X, y), oracle_regularized(w, 0.25, Xn, yn)[1][0])


def test_mlp_float64_and_float32(client):
    (X, y), (Xn, yn) = chunked([40_000] * 5)
    r = onp.random.default_rng(3)
    params = (0.3 * r.standard_normal((5, 16)), 0.1 * r.standard_normal(16), 0.3 * r.standard_normal(16), 0.05)
    f = gradc.value_and_grad(pm.mlp_loss, argnums=(0, 1, 2, 3))
    close(f(*params, X, y), pm.oracle_mlp(*params, Xn, yn))
    (X, y), (Xn, yn) = chunked([40_000] * 5, dtype="float32")
    p32 = tuple(onp.float32(p) if onp.ndim(p) == 0 else p.astype(onp.float32) for p in params)
    got = f(*p32, X, y)
    assert got[0].dtype == onp.float32 and got[1][0].dtype == onp.float32
    # float32: each of 200000 terms carries ~6e-8 relative error; sums of them 1e-5
    close(got, pm.oracle_mlp(*params, Xn.astype(onp.float64), yn.astype(onp.float64)), rtol=1e-5)


def mlp_tree(params, X, y):
    return pm.mlp_loss(params["W1"], params["b1"], params["w2"], params["b2"], X, y)


def test_parameters_as_a_pytree(client):
    """Parameters in a dict: sent as one tree, gradients come back in its structure."""
    (X, y), (Xn, yn) = chunked([50_000, 30_000])
    r = onp.random.default_rng(4)
    params = {"W1": 0.3 * r.standard_normal((5, 8)), "b1": 0.1 * r.standard_normal(8),
              "w2": 0.3 * r.standard_normal(8), "b2": 0.05}
    value, grads = gradc.value_and_grad(mlp_tree)(params, X, y)
    want_value, (gW1, gb1, gw2, gb2) = pm.oracle_mlp(params["W1"], params["b1"], params["w2"], params["b2"], Xn, yn)
    assert sorted(grads) == ["W1", "b1", "b2", "w2"]
    close((value, grads["W1"], grads["b1"], grads["w2"], grads["b2"]), (want_value, gW1, gb1, gw2, gb2))


def cross_entropy(W, X, labels):
    """Softmax cross-entropy: each row's label picked by take_along_axis (a gather
    within the row, indexed by the row numbers of the chunk)."""
    logp = np.log_softmax(X @ W, axis=1)
    return -np.mean(np.take_along_axis(logp, labels[:, None], axis=1))


def test_cross_entropy_gathers_within_rows(client):
    (X, y), (Xn, yn) = chunked([60_000, 45_000, 30_000])
    labels, labels_n = (X[:, 1] > 0).astype(onp.int64) + (y > 0), (Xn[:, 1] > 0).astype(onp.int64) + (yn > 0)
    W = onp.linspace(-1, 1, 15).reshape(5, 3)
    z = Xn @ W
    p = onp.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    value = -onp.mean(onp.log(p[onp.arange(len(labels_n)), labels_n]))
    onehot = onp.eye(3)[labels_n]
    close(gradc.value_and_grad(cross_entropy)(W, X, labels), (value, Xn.T @ (p - onehot) / len(labels_n)))


def test_the_calling_process_never_holds_the_data(client, monkeypatch):
    (X, y), (Xn, yn) = chunked([100_000] * 4)

    def refuse(*a, **k):
        raise AssertionError("the dask array was turned into numpy in the calling process")
    monkeypatch.setattr(da.Array, "__array__", refuse)
    monkeypatch.setattr(da.Array, "compute", refuse)
    w = onp.linspace(-0.5, 0.5, 5)
    close(gradc.value_and_grad(regularized)(w, 0.25, X, y)[1], oracle_regularized(w, 0.25, Xn, yn)[1][0])


def _count_traces():
    """On a worker: count the traces gradc makes from now on."""
    import gradc.api
    original = getattr(gradc.api.trace_specs, "original", gradc.api.trace_specs)

    def counting(*a, **k):
        counting.calls += 1
        return original(*a, **k)
    counting.calls, counting.original = 0, original
    gradc.api.trace_specs = counting


def _traces():
    import gradc.api
    return getattr(gradc.api.trace_specs, "calls", None)


def test_each_worker_compiles_once(client):
    """Three calls of four chunks each: a worker traces (and compiles) the per-chunk
    function once, not once per task or per call."""
    (X, y), (Xn, yn) = chunked([30_000] * 4)
    w = onp.linspace(-0.5, 0.5, 5)
    f = gradc.grad(regularized)
    client.run(_count_traces)
    for step in range(3):
        close(f(w, 0.25, X, y), oracle_regularized(w, 0.25, Xn, yn)[1][0])
        w = w * 0.9
    traces = client.run(_traces)
    assert len(traces) == 2 and all(n in (0, 1) for n in traces.values()) and sum(traces.values()) >= 1, traces


def test_lazy_returns_a_delayed_that_computes(client):
    (X, y), (Xn, yn) = chunked([30_000] * 3)
    w = onp.linspace(-0.5, 0.5, 5)
    lazy = gradc.distributed.lazy(gradc.grad(regularized), w, 0.25, X, y)
    assert isinstance(lazy, dask.delayed(lambda: 0)().__class__)
    close(lazy.compute(), oracle_regularized(w, 0.25, Xn, yn)[1][0])


def test_without_a_distributed_client():
    """The local threaded scheduler takes the same path."""
    (X, y), (Xn, yn) = chunked([30_000] * 3)
    w = onp.linspace(-0.5, 0.5, 5)
    with dask.config.set(scheduler="threads"):
        close(gradc.grad(regularized)(w, 0.25, X, y), oracle_regularized(w, 0.25, Xn, yn)[1][0])


def _log_of_sum(w, X, y):
    return np.log(np.sum(np.exp(X @ w)))                                   # REFUSED-LINE logsumexp


def _max_over_samples(w, X, y):
    return np.max(X @ w * y)                                                # REFUSED-LINE max


def _product_of_sums(w, X, y):
    return np.sum(X @ w) * np.sum(y)                                        # REFUSED-LINE mul


def _centred(w, X, y):
    r = X @ w - np.mean(X @ w)                                              # REFUSED-LINE sub
    return np.sum(r * r)


def _per_sample_output(w, X, y):
    return np.tanh(X @ w)                                                   # REFUSED-LINE tanh


@pytest.mark.parametrize("fun", [_log_of_sum, _max_over_samples, _product_of_sums, _centred,
                                 _per_sample_output])
def test_refuses_what_does_not_split(fun):
    """The error names the op and the user's line (found here by its marker comment)."""
    import inspect
    src, start = inspect.getsourcelines(fun)
    line = start + next(k for k, s in enumerate(src) if "REFUSED-LINE" in s)
    op = src[line - start].split("REFUSED-LINE")[1].strip()
    (X, y), _ = chunked([20, 20])
    w = onp.ones(5)
    with pytest.raises(gradc.GradcError) as e:
        gradc.jit(fun)(w, X, y)
    assert f"test_dask.py:{line}" in str(e.value) and op in str(e.value), str(e.value)


def test_refuses_reading_the_row_count_and_differentiating_data():
    (X, y), _ = chunked([20, 20])
    w = onp.ones(5)
    with pytest.raises(gradc.GradcError, match=r"fixed at 20 .* reads X.shape\[0\]"):
        gradc.grad(lambda w, X, y: np.sum(X @ w) / X.shape[0])(w, X, y)
    with pytest.raises(gradc.GradcError, match=r"or slices along the rows"):    # neighbours
        gradc.jit(lambda w, X, y: np.sum((X @ w)[1:] - (X @ w)[:-1]))(w, X, y)
    with pytest.raises(gradc.GradcError, match="cannot differentiate with respect to 'X'"):
        gradc.grad(regularized, argnums=2)(w, 0.0, X, y)
    with pytest.raises(gradc.GradcError, match="dask arrays are supported by jit, grad"):
        gradc.hessian(regularized)(w, 0.0, X, y)
    with pytest.raises(gradc.GradcError, match="chunks of unknown size"):
        gradc.grad(regularized)(w, 0.0, X[X[:, 0] > 0], y[X[:, 0] > 0])
    with pytest.raises(gradc.GradcError, match="'y' has the sample axis's size but is not a dask array"):
        gradc.grad(regularized)(w, 0.0, X, onp.ones(40))


def test_example_trains_like_numpy():
    """examples/dask_training.py on 2 worker processes and small data: both models'
    parameters after 3 steps match a numpy training run (hand-written gradients) to
    1e-12 relative (see the module docstring; 3 steps keep the trajectories' rounding
    differences at the level of one gradient's)."""
    import os
    import re
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, os.path.join(root, "examples", "dask_training.py"), "--rows", "20000",
                        "--chunk-rows", "3000", "--workers", "2", "--steps", "3", "--check"],
                       capture_output=True, text=True, timeout=600, env=env, cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "20,000 rows x 20 features" in r.stdout and "on 2 worker process(es)" in r.stdout
    assert len(re.findall(r"step +\d+/3", r.stdout)) == 6, r.stdout
    errs = [float(e) for e in re.findall(r"largest relative difference from numpy: (\S+)", r.stdout)]
    assert len(errs) == 2 and max(errs) < 1e-12, r.stdout
