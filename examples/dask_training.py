"""Train logistic regression and a small MLP on 10 million rows that no process holds
whole: a dask array generated chunk by chunk on the workers of a LocalCluster, each
gradient step computed by gradc's compiled kernel on every chunk and summed on the
cluster (gradc/distributed.py; docs/distributed.md).

    python examples/dask_training.py                       # 10M rows, 2 worker processes
    python examples/dask_training.py --rows 20000 --check  # small, checked against numpy

``--check`` trains again in plain numpy (hand-written gradients, the data gathered in
this process -- only sensible for small ``--rows``) and prints the largest relative
difference of the trained parameters.  Needs ``pip install 'gradc[dask]'``."""
from __future__ import annotations

import argparse
import os
import time

import numpy as onp

import gradc
import gradc.numpy as np

FEATURES = 20
HIDDEN = 16
L2 = 1e-4


def make_block(index, rows, features=FEATURES):
    """Rows ``[X | y]`` of chunk ``index``: made on the worker that holds them, the same
    numbers in any process (seeded by the chunk index)."""
    r = onp.random.default_rng(12345 + index)
    X = r.standard_normal((rows, features))
    truth = onp.sin(onp.arange(1, features + 1))
    y = onp.where(X @ truth + 0.5 * r.standard_normal(rows) > 0, 1.0, -1.0)
    return onp.concatenate([X, y[:, None]], axis=1)


def chunk_sizes(rows, chunk_rows):
    sizes = [chunk_rows] * (rows // chunk_rows)
    if rows % chunk_rows:
        sizes.append(rows % chunk_rows)
    return sizes


def dataset(rows, chunk_rows):
    """(X, y) as dask arrays of ``rows`` rows, one task per chunk (nothing is made yet)."""
    import dask
    import dask.array as da
    blocks = [da.from_delayed(dask.delayed(make_block)(i, n), (n, FEATURES + 1), onp.float64)
              for i, n in enumerate(chunk_sizes(rows, chunk_rows))]
    Z = da.concatenate(blocks)
    # Column slices of a chunk are strided views; gradc would copy them on every call
    # (its kernels read C-contiguous arrays), so each chunk is made contiguous once.
    return (Z[:, :FEATURES].map_blocks(onp.ascontiguousarray),
            Z[:, FEATURES].map_blocks(onp.ascontiguousarray))


# -- the models: plain numpy-style code, traced and compiled by gradc ---------------------
def logistic_loss(w, b, X, y):
    return np.mean(np.log1p(np.exp(-y * (X @ w + b)))) + L2 * np.sum(w * w)


def mlp_loss(W1, b1, w2, b2, X, y):
    h = np.tanh(X @ W1 + b1)
    return np.mean(np.log1p(np.exp(-y * (h @ w2 + b2)))) + L2 * (np.sum(W1 * W1) + np.sum(w2 * w2))


def initial(model):
    r = onp.random.default_rng(7)
    if model == "logistic":
        return [onp.zeros(FEATURES), 0.0]
    return [0.3 * r.standard_normal((FEATURES, HIDDEN)), onp.zeros(HIDDEN), 0.3 * r.standard_normal(HIDDEN), 0.0]


# -- the numpy reference (--check): the same losses' gradients written by hand ------------
def numpy_grad(model, params, X, y):
    n = len(y)
    if model == "logistic":
        w, b = params
        s = -y / (1 + onp.exp(y * (X @ w + b))) / n
        return [X.T @ s + 2 * L2 * w, s.sum()]
    W1, b1, w2, b2 = params
    h = onp.tanh(X @ W1 + b1)
    dz = -y / (1 + onp.exp(y * (h @ w2 + b2))) / n
    dh = onp.outer(dz, w2) * (1 - h * h)
    return [X.T @ dh + 2 * L2 * W1, dh.sum(0), h.T @ dz + 2 * L2 * w2, dz.sum()]


def task_times(stream):
    """Per kind of task in a dask task stream: how many, and their mean time per action."""
    total, count = {}, {}
    for r in stream:
        name = (r["key"] if isinstance(r["key"], str) else r["key"][0]).split("-")[0]
        for s in r["startstops"]:
            k = f"{name} {s['action']}"
            total[k] = total.get(k, 0.0) + s["stop"] - s["start"]
            count[k] = count.get(k, 0) + 1
    return ", ".join(f"{k}: {count[k]} x {total[k] / count[k] * 1e3:.1f} ms" for k in sorted(total))


def train(model, X, y, steps, lr, rows, profile=False):
    from dask.distributed import get_task_stream
    loss = logistic_loss if model == "logistic" else mlp_loss
    params = initial(model)
    step = gradc.value_and_grad(loss, argnums=tuple(range(len(params))))
    times = []
    for k in range(steps):
        t0 = time.perf_counter()
        with get_task_stream() as stream:
            value, grads = step(*params, X, y)      # on the cluster: one kernel call per chunk
        times.append(time.perf_counter() - t0)
        if profile:
            print(f"{model:>8}  tasks of step {k + 1}: {task_times(stream.data)}", flush=True)
        params = [p - lr * g for p, g in zip(params, grads)]
        print(f"{model:>8}  step {k + 1:>3}/{steps}  loss {float(value):.6f}  {times[-1]:6.2f} s  "
              f"{rows / times[-1] / 1e6:6.2f} M rows/s", flush=True)
    return params, times


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--chunk-rows", type=int, default=250_000)
    ap.add_argument("--workers", type=int, default=2, help="worker processes of the LocalCluster")
    ap.add_argument("--threads", type=int, default=1, help="gradc kernel threads per worker (GRADC_NUM_THREADS)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--models", default="logistic,mlp")
    ap.add_argument("--check", action="store_true", help="compare with a numpy training run (small --rows)")
    ap.add_argument("--profile", action="store_true", help="print each step's dask tasks and their times")
    a = ap.parse_args(argv)
    os.environ["GRADC_NUM_THREADS"] = str(a.threads)   # the workers inherit it
    import dask
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=a.workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        X, y = dataset(a.rows, a.chunk_rows)
        t0 = time.perf_counter()
        X, y = dask.persist(X, y)             # made and kept on the workers, chunk by chunk
        from dask.distributed import wait
        wait([X, y])
        mb = a.rows * (FEATURES + 1) * 8 / 1e6
        print(f"{a.rows:,} rows x {FEATURES} features ({mb:,.0f} MB) in {len(X.chunks[0])} chunks on "
              f"{a.workers} worker process(es), made in {time.perf_counter() - t0:.1f} s", flush=True)
        worst = 0.0
        for model in a.models.split(","):
            params, times = train(model, X, y, a.steps, a.lr, a.rows, a.profile)
            steady = sorted(times[1:] or times)[len(times[1:] or times) // 2]
            print(f"{model:>8}  median step after the first: {steady:.3f} s = "
                  f"{a.rows / steady / 1e6:.2f} M rows/s", flush=True)
            if a.check:
                Xn, yn = client.compute([X, y], sync=True)   # small data only: gathered here
                ref = initial(model)
                for _ in range(a.steps):
                    ref = [p - a.lr * g for p, g in zip(ref, numpy_grad(model, ref, Xn, yn))]
                err = max(float(onp.linalg.norm(onp.subtract(p, r)) / onp.linalg.norm(r))
                          for p, r in zip(params, ref))
                worst = max(worst, err)
                print(f"{model:>8}  largest relative difference from numpy: {err:.2e}", flush=True)
        client.cancel([X, y])
    return worst


if __name__ == "__main__":
    main()
