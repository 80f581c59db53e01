"""Batch split: a graph whose outputs are sums over its batch (a mean loss and its
parameter gradients) runs, once hot, as one part of the batch per thread, the parts'
sums added (``backends/batch_split.py``, ``Plan.set_split``).

Checked: which graphs split and which stay whole (a table: every rule that keeps a
graph whole has a model that needs it); the split call's value and gradients against
gradc's numpy evaluator (an independent reference: numpy's own ops) and against the
whole call, at batch sizes around the parts' boundaries, rank 3, float32 and float64,
with 2 and 3 threads; parts that run their rows in chunks (``chunked``: 16 rows, so
every size has chunks and a short last one); outputs that are rows of the batch (a
gradient with respect to X) and batch-free ones; the call path's argument checks."""
import os
import subprocess
import sys
import warnings

import numpy as onp
import pytest

import gradc
import gradc.numpy as gnp
from gradc_helpers import kernel_of
from gradc.backends import batch_split, llvm_backend

_callpath = pytest.importorskip("gradc._callpath")
pytestmark = pytest.mark.skipif(not hasattr(_callpath.Plan, "set_split"),
                                reason="gradc._callpath was built before set_split: rebuild it")


def mlp(W1, b1, W2, b2, X, Y):
    return gnp.mean((gnp.tanh(X @ W1 + b1) @ W2 + b2 - Y) ** 2)


def mlp_sum(W1, b1, W2, b2, X, Y):
    return gnp.sum((gnp.relu(X @ W1 + b1) @ W2 + b2 - Y) ** 2)


def mlp_rank3(W1, b1, W2, b2, X, Y):      # X: (batch, tokens, features)
    H = gnp.tanh(X @ W1 + b1)
    return gnp.mean((gnp.sum(H, axis=1) @ W2 + b2 - Y) ** 2)


def softmax_loss(W1, b1, W2, b2, X, Y):   # a row's max and logsumexp over its classes
    Z = gnp.relu(X @ W1 + b1) @ W2 + b2
    return gnp.mean(gnp.logsumexp(Z, axis=1) - gnp.sum(Z * Y, axis=1))


def regularized(W1, b1, W2, b2, X, Y):    # + a batch-free term: the first part adds it
    return mlp(W1, b1, W2, b2, X, Y) + 0.01 * gnp.sum(W1 * W1) - 0.1 * gnp.sum(b2)


def batch_norm(W1, b1, W2, b2, X, Y):     # a row reads the batch's mean
    Z = X @ W1
    Z = Z - gnp.mean(Z, axis=0)
    return gnp.mean((gnp.tanh(Z + b1) @ W2 + b2 - Y) ** 2)


def log_of_mean(W1, b1, W2, b2, X, Y):    # not linear in the sum over rows
    return gnp.log(mlp(W1, b1, W2, b2, X, Y))


def max_over_batch(W1, b1, W2, b2, X, Y):
    return gnp.max((gnp.tanh(X @ W1 + b1) @ W2 + b2 - Y) ** 2)


def shifted_rows(W1, b1, W2, b2, X, Y):   # row i reads row i + 1
    return gnp.mean((gnp.tanh(X[1:] @ W1 + b1) @ W2 + b2 - Y[:-1]) ** 2)


SPLITS = {mlp: True, mlp_sum: True, mlp_rank3: True, softmax_loss: True, regularized: True,
          batch_norm: False, log_of_mean: False, max_over_batch: False, shifted_rows: False}


def data(fun, rows, dtype=onp.float64, d=32, h=64, o=8, seed=0):
    rng = onp.random.default_rng(seed)
    x_shape = (rows, 3, d) if fun is mlp_rank3 else (rows, d)
    args = [rng.normal(size=(d, h)) / d ** 0.5, rng.normal(size=h) * 0.1, rng.normal(size=(h, o)) / h ** 0.5,
            rng.normal(size=o) * 0.1, rng.normal(size=x_shape), rng.normal(size=(rows, o))]
    return [a.astype(dtype) for a in args]


@pytest.fixture
def hot_now(monkeypatch, tmp_path):
    """Upgrade (and split) after the first call through the call path, two threads."""
    monkeypatch.setenv("GRADC_HOT_SECONDS", "1e-9")
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GRADC_NUM_THREADS", "2")


@pytest.fixture
def chunked(monkeypatch):
    """Parts run their rows 16 at a time (a chunk's bytes: 1, its rows: at least 16)."""
    monkeypatch.setenv("GRADC_SPLIT_CHUNK_BYTES", "1")
    monkeypatch.setattr(batch_split, "MIN_CHUNK_ROWS", 16)


def flat(result):
    value, grads = result
    return [onp.asarray(value)] + [onp.asarray(g) for g in grads]


def close(got, want, dtype, rows):
    # the parts add their sums in another order than one pass over the rows: rounding
    # grows with the number of terms summed (rows x the products' inner sizes)
    eps = onp.finfo(dtype).eps
    for a, b in zip(flat(got), flat(want)):
        scale = onp.max(onp.abs(b)) + onp.finfo(dtype).tiny
        assert onp.max(onp.abs(a - b)) <= 64 * eps * onp.sqrt(rows) * scale, (a, b)


@pytest.mark.parametrize("fun", list(SPLITS), ids=lambda f: f.__name__)
def test_which_graphs_split(fun, hot_now):
    args = data(fun, 64)
    f = gradc.value_and_grad(fun, argnums=(0, 1, 2, 3))
    f(*args)
    split = kernel_of(f, *args).split
    assert (split is not None) == SPLITS[fun]
    if split is not None:
        assert split.symbol == "s" and set(split.outputs) == {"red"}
        assert split.row_inputs == (False, False, False, False, True, True)
        assert split.first == (fun is regularized)      # its batch-free terms: the first part's


@pytest.mark.parametrize("chunks", ["", "chunked"])
@pytest.mark.parametrize("dtype", [onp.float64, onp.float32])
@pytest.mark.parametrize("rows", [32, 33, 64, 1001, 4096])
@pytest.mark.parametrize("fun", [mlp, mlp_sum, mlp_rank3, softmax_loss, regularized], ids=lambda f: f.__name__)
def test_split_calls_match_numpy_and_the_whole_call(fun, rows, dtype, chunks, hot_now, monkeypatch, request):
    if chunks:
        request.getfixturevalue(chunks)
    args = data(fun, rows, dtype, seed=rows)
    ref = gradc.value_and_grad(fun, argnums=(0, 1, 2, 3), backend="numpy")(*args)
    f = gradc.value_and_grad(fun, argnums=(0, 1, 2, 3))
    for _ in range(3):                      # compile, run through the plan, split
        f(*args)
    least = kernel_of(f, *args).split.min_rows(2)
    assert f._fast.split_parts(rows) == (2 if rows >= least else 1) and least <= 1001
    got = f(*args)
    close(got, ref, dtype, rows)
    for a in flat(got):
        assert a.dtype == dtype
    monkeypatch.setattr(llvm_backend, "SPLIT_BATCHES", False)
    whole = gradc.value_and_grad(fun, argnums=(0, 1, 2, 3))
    for _ in range(3):
        whole(*args)
    assert kernel_of(whole, *args).split is None and whole._fast.split_parts(rows) == 1
    close(got, whole(*args), dtype, rows)
    again = f(*args)                        # the same bits every call
    assert all(onp.array_equal(a, b) for a, b in zip(flat(again), flat(got)))


def hot_mlp(rows):
    """``mlp``'s value_and_grad called until its plan has its split, with its arguments
    and kernel."""
    args = data(mlp, rows)
    f = gradc.value_and_grad(mlp, argnums=(0, 1, 2, 3))
    for _ in range(3):
        f(*args)
    return f, args, kernel_of(f, *args)


def test_small_batches_run_whole(hot_now):
    f, args, kernel = hot_mlp(64)
    least = kernel.split.min_rows(2)
    assert least >= 2 * batch_split.MIN_PART_ROWS
    assert f._fast.split_parts(least - 1) == 1 and f._fast.split_parts(least) == 2
    small = data(mlp, least - 1, seed=1)
    close(f(*small), gradc.value_and_grad(mlp, argnums=(0, 1, 2, 3), backend="numpy")(*small),
          onp.float64, least)


@pytest.mark.parametrize("chunks", ["", "chunked"])
def test_row_and_batch_free_outputs(chunks, hot_now, request):
    """A gradient with respect to X has the batch's rows (each part writes its own); a
    batch-free output is the first part's (the first chunk's)."""
    if chunks:
        request.getfixturevalue(chunks)
    def loss_and_scaled(W1, b1, W2, b2, X, Y):
        return mlp(W1, b1, W2, b2, X, Y)

    args = data(mlp, 1000)
    f = gradc.value_and_grad(loss_and_scaled, argnums=(0, 4))
    for _ in range(3):
        f(*args)
    split = kernel_of(f, *args).split
    assert split is not None and sorted(split.outputs) == ["red", "red", "row"]
    ref = gradc.value_and_grad(loss_and_scaled, argnums=(0, 4), backend="numpy")(*args)
    close(f(*args), ref, onp.float64, 1000)

    def with_free(W1, b1, W2, b2, X, Y):
        return mlp(W1, b1, W2, b2, X, Y), W1 * 2.0
    j = gradc.jit(with_free)
    for _ in range(3):
        out = j(*args)
    assert sorted(kernel_of(j, *args).split.outputs) == ["free", "red"]
    want = gradc.jit(with_free, backend="numpy")(*args)
    assert onp.allclose(out[0], want[0], rtol=1e-12) and onp.array_equal(out[1], want[1])


def test_three_threads_make_three_parts(tmp_path):
    code = """
import numpy as onp, gradc, sys
sys.path[:0] = [%r, %r]
from test_batch_split import data, mlp, flat, close
args = data(mlp, 999)
f = gradc.value_and_grad(mlp, argnums=(0, 1, 2, 3))
for _ in range(3):
    f(*args)
assert f._fast.split_parts(999) == 3, f._fast.split_parts(999)
close(f(*args), gradc.value_and_grad(mlp, argnums=(0, 1, 2, 3), backend="numpy")(*args), onp.float64, 999)
print("ok")
""" % (os.path.dirname(__file__), os.path.dirname(os.path.dirname(__file__)))
    env = dict(os.environ, GRADC_NUM_THREADS="3", GRADC_HOT_SECONDS="1e-9", GRADC_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0 and out.stdout.split()[-1] == "ok", out.stderr


def test_off_switch_and_one_thread(monkeypatch, hot_now):
    args = data(mlp, 256)
    monkeypatch.setenv("GRADC_NUM_THREADS", "1")
    f = gradc.value_and_grad(mlp, argnums=(0, 1, 2, 3))
    f(*args)
    assert kernel_of(f, *args).split is None          # one thread: nothing to split over
    monkeypatch.setenv("GRADC_NUM_THREADS", "2")
    monkeypatch.setattr(llvm_backend, "SPLIT_BATCHES", False)
    g = gradc.value_and_grad(mlp, argnums=(0, 1, 2, 3))
    g(*args)
    assert kernel_of(g, *args).split is None


def test_set_split_checks_its_arguments(hot_now):
    f, args, kernel = hot_mlp(64)
    plan, part = f._fast, kernel.part.make_plan(kernel._structure)
    n_sym = len(kernel.symbols)
    good = dict(sym=kernel.symbols.index("s"), parts=2, rows=32, row_inputs=(False,) * 4 + (True, True),
                counts=((12, 8, (-(kernel.symbols.index("s") + 1), 8)),), kinds=(1,) * 5,
                symbols=tuple(range(len(kernel.part.symbols))))

    def call(**change):
        a = dict(good, **change)
        plan.set_split(part, a["sym"], a["parts"], a["rows"], a["row_inputs"], a["counts"], a["kinds"],
                       a["symbols"])
    for change, message in [(dict(sym=n_sym), "symbol"), (dict(parts=1), "parts"), (dict(rows=1), "min_rows"),
                            (dict(row_inputs=(True,) * 6), "leading axis"), (dict(row_inputs=(False,)), "per input"),
                            (dict(kinds=(0,) * 5), "out_kind"), (dict(kinds=(1,) * 4), "out_kind"),
                            (dict(counts=()), "counts"), (dict(symbols=(n_sym,) * len(good["symbols"])), "symbol"),
                            (dict(counts=((5, 8, ()),)), "float")]:
        with pytest.raises(ValueError, match=message):
            call(**change)
    plan.set_split(None)
    assert plan.split_parts(10 ** 6) == 1
    close(f(*args), gradc.value_and_grad(mlp, argnums=(0, 1, 2, 3), backend="numpy")(*args), onp.float64, 64)


ACTIVATIONS = {"tanh": gnp.tanh, "relu": gnp.relu, "sigmoid": gnp.sigmoid, "softplus": gnp.softplus,
               "square": lambda z: z * z, "gelu": lambda z: z * gnp.sigmoid(1.702 * z)}


def random_model(rng):
    """An MLP of 1-3 layers with random activations, widths and loss (a mean or a sum of
    squares, or a softmax cross-entropy against soft labels), with or without an L2
    penalty on its first layer."""
    depth = int(rng.integers(1, 4))
    acts = [str(rng.choice(list(ACTIVATIONS))) for _ in range(depth)]
    loss = str(rng.choice(["mse", "sse", "xent"]))
    decay = float(rng.choice([0.0, 1e-3]))      # an L2 penalty: a batch-free term of the loss

    def model(params, X, Y):
        h = X
        for k, act in enumerate(acts):
            h = ACTIVATIONS[act](h @ params[f"W{k}"] + params[f"b{k}"])
        z = h @ params["Wo"]
        penalty = decay * gnp.sum(params["W0"] ** 2) if decay else 0.0
        if loss == "xent":
            return gnp.mean(gnp.logsumexp(z, axis=1) - gnp.sum(z * Y, axis=1)) + penalty
        r = (z - Y) ** 2
        return (gnp.mean(r) if loss == "mse" else gnp.sum(r) * 0.01) + penalty
    widths = [int(rng.integers(4, 70)) for _ in range(depth + 1)]
    outputs = int(rng.integers(1, 12))
    return model, widths, outputs, f"{depth} layers {acts} {widths} -> {outputs}, {loss}, decay {decay}"


SPLIT_FUZZ = int(os.environ.get("GRADC_SPLIT_FUZZ", "16"))        # models; a campaign sets more


@pytest.mark.parametrize("seed", range(SPLIT_FUZZ))
def test_random_mlps_split_like_the_evaluator(seed, hot_now, monkeypatch):
    """A differential fuzzer for the split: random MLPs (a dict of parameters), random
    batch sizes (odd ones, ones just above the parts' minimum), float32 and float64.
    ``GRADC_SPLIT_FUZZ=300 pytest tests/backends/test_batch_split.py -k random`` runs a
    longer campaign."""
    rng = onp.random.default_rng(1000 + seed)
    model, widths, outputs, what = random_model(rng)
    dtype = onp.float32 if seed % 3 == 0 else onp.float64
    rows = int(rng.choice([33, 97, 256, 1001, 2049, 5003]))
    params = {f"W{k}": rng.normal(size=(widths[k], widths[k + 1])) / widths[k] ** 0.5 for k in range(len(widths) - 1)}
    params.update({f"b{k}": rng.normal(size=widths[k + 1]) * 0.1 for k in range(len(widths) - 1)})
    params["Wo"] = rng.normal(size=(widths[-1], outputs)) / widths[-1] ** 0.5
    params = {k: v.astype(dtype) for k, v in params.items()}
    X = rng.normal(size=(rows, widths[0])).astype(dtype)
    Y = rng.random((rows, outputs)).astype(dtype)
    if seed % 2:                                # parts in chunks of 16-256 rows
        monkeypatch.setenv("GRADC_SPLIT_CHUNK_BYTES", "1")
        monkeypatch.setattr(batch_split, "MIN_CHUNK_ROWS", int(rng.choice([16, 50, 256])))
        what += f", chunks of {batch_split.MIN_CHUNK_ROWS} rows"
    f = gradc.value_and_grad(model)
    for _ in range(3):
        got = f(params, X, Y)
    kernel = kernel_of(f, params, X, Y)
    assert kernel.split is not None, what
    ran = kernel.split.min_rows(2) <= rows
    assert f._fast.plan.split_parts(rows) == (2 if ran else 1)      # (a dict of parameters: a tree plan)
    want = gradc.value_and_grad(model, backend="numpy")(params, X, Y)
    eps = onp.finfo(dtype).eps
    assert abs(got[0] - want[0]) <= 64 * eps * onp.sqrt(rows) * abs(want[0]), (what, ran)
    for k in want[1]:
        a, b = got[1][k], want[1][k]
        assert a.dtype == dtype
        assert onp.max(onp.abs(a - b)) <= 64 * eps * onp.sqrt(rows) * onp.max(onp.abs(b)), (what, k, ran)


def test_a_failing_part_compile_warns_and_runs_whole(hot_now, monkeypatch):
    def broken(self):
        raise RuntimeError("no part kernel today")
    monkeypatch.setattr(llvm_backend.LLVMKernel, "_part_kernel", broken)
    args = data(mlp_sum, 256)            # relu: no vector math, so the split is its only hot code
    f = gradc.value_and_grad(mlp_sum, argnums=(0, 1, 2, 3))
    f(*args)
    with pytest.warns(RuntimeWarning, match="parts of its batch failed.*no part kernel today"):
        f(*args)
    kernel = kernel_of(f, *args)
    assert f._fast.split_parts(256) == 1 and not kernel.upgraded
    close(f(*args), gradc.value_and_grad(mlp_sum, argnums=(0, 1, 2, 3), backend="numpy")(*args), onp.float64, 256)


def test_threads_calling_one_split_function(hot_now):
    """Python threads calling one function at several batch sizes: each call splits
    (its own parts' buffers when another call holds the plan's) and agrees."""
    import threading
    f = gradc.value_and_grad(regularized, argnums=(0, 1, 2, 3))
    ref = gradc.value_and_grad(regularized, argnums=(0, 1, 2, 3), backend="numpy")
    sets = [data(mlp, n, seed=n) for n in (40, 333, 1000, 2048)]
    want = [ref(*a) for a in sets]
    for a in sets:
        f(*a)
        f(*a)
    assert all(f._fast.split_parts(a[4].shape[0]) == 2 for a in sets)
    errors = []

    def work(k):
        try:
            for i in range(50):
                j = (k + i) % len(sets)
                close(f(*sets[j]), want[j], onp.float64, 2048)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_a_sum_over_the_batch_added_back_to_the_rows_keeps_the_call_whole(hot_now):
    # z + sum(z, axis=0): rows that read the whole batch's sum; a part has only its own
    # (before, the analysis took the result for a sum and the part compile failed, with
    # a warning)
    rng = onp.random.default_rng(3)
    X, W = rng.normal(size=(4096, 8)), rng.normal(size=(8, 6))

    def f(W, X):
        Z = X @ W
        return Z + gnp.sum(Z, axis=0)
    jf = gradc.jit(f)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            got = jf(W, X)
    assert kernel_of(jf, W, X).split is None and jf._fast.split_parts(4096) == 1
    Z = X @ W
    onp.testing.assert_allclose(got, Z + Z.sum(axis=0), rtol=1e-12, atol=1e-12 * onp.abs(Z).sum(axis=0).max())


def test_a_parameter_the_loss_does_not_read_still_splits(hot_now):
    # a dict of parameters with a head the loss leaves out and a 0-d scale: their
    # gradients are constants (zeros), which the kernel fills; the batch still splits
    rng = onp.random.default_rng(5)
    p = {"W1": rng.normal(size=(16, 32)) / 4, "b1": onp.zeros(32), "W2": rng.normal(size=(32, 4)) / 6,
         "head": rng.normal(size=(32, 3)), "scale": onp.float64(1.5)}
    X, Y = rng.normal(size=(4096, 16)), rng.normal(size=(4096, 4))

    def loss(p, X, Y):
        return gnp.mean((gnp.tanh(X @ p["W1"] + p["b1"]) @ p["W2"] - Y) ** 2)
    f = gradc.value_and_grad(loss)
    for _ in range(3):
        value, grads = f(p, X, Y)
    assert f._fast.plan.split_parts(4096) == 2
    want_value, want = gradc.value_and_grad(loss, backend="numpy")(p, X, Y)
    close((value, [grads[k] for k in sorted(p)]), (want_value, [want[k] for k in sorted(p)]), onp.float64, 4096)
    assert not grads["head"].any() and grads["scale"] == 0.0
