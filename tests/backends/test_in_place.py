"""Buffers written in place (schedule._in_place): an element-wise result takes the memory
of a buffer its nest reads for the last time, element by element.

Oracles: numpy by hand (attention's and an MLP's value_and_grad from gradc.bench_models,
written independently of gradc) and numpy's forward values for programs built so that an
in-place write done wrongly would be read back (a transposed or broadcast read of the
overwritten buffer).  Tolerances: bench.compare's norm-wise relative error, 1e-9 in
float64 and 1e-4 in float32 (the bench's own: sums of up to 2048 products and softmax
rows, each term a few ulp), and for the small programs the dot-product bound: 600 terms of an
element-wise value a few ulp off, 600 x 8 eps of the terms' magnitudes.
"""
from __future__ import annotations

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
from gradc import bench
from gradc.backends.schedule import schedule
from gradc.bench_models import MODELS, make_data

TOL = {"float64": 1e-9, "float32": 1e-4}


def _in_place(f, args, threads):
    return schedule(f.lower(*args).graph, threads=threads).in_place


@pytest.mark.parametrize("backend", ["llvm", "c"])
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("model", ["M7", "M6", "M4"])
def test_models_with_buffers_written_in_place_match_numpy(model, dtype, threads, backend, monkeypatch):
    """Attention (its softmax over its exponentials over its scores, the backward
    pass's dS over P), an MLP (tanh over the layer's product, dZ over dA): medium
    sizes, above the thread split."""
    monkeypatch.setenv("GRADC_NUM_THREADS", str(threads))
    m = MODELS[model]
    args = make_data(model, "medium", dtype)
    f = gradc.value_and_grad(m.gradc, argnums=m.argnums, backend=backend)
    assert _in_place(f, args, threads), "the schedule writes nothing in place: this test tests nothing"
    got = bench._grads(f(*args), m.argnums)
    ref = bench._grads(m.np_value_and_grad(*args), m.argnums)
    check = bench.compare(got, ref, TOL[dtype])
    assert check["ok"], check


def _programs():
    """(name, h(z), numpy h, may z be overwritten?): h(z) for z = X @ W, then h @ V, so
    that both z and h are intermediates.  The traps read z at other elements than
    their own (a transpose, a broadcast row, a row sum used with z), so writing h over
    z would be read back wrong; the control reads z only at its own element."""
    return [("control", lambda z: gnp.tanh(z) * 2.0 + z, lambda z: np.tanh(z) * 2.0 + z, True),
            ("transposed", lambda z: gnp.tanh(z) * z.T + z, lambda z: np.tanh(z) * z.T + z, False),
            ("first_row", lambda z: gnp.exp(z - z[:1, :]) + z, lambda z: np.exp(z - z[:1, :]) + z, False),
            ("row_sums", lambda z: gnp.tanh(z) + gnp.sum(gnp.exp(z), axis=1, keepdims=True) * z,
             lambda z: np.tanh(z) + np.sum(np.exp(z), axis=1, keepdims=True) * z, True)]


@pytest.mark.parametrize("backend", ["llvm", "c"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,h,ref,may", _programs(), ids=[t[0] for t in _programs()])
def test_reads_at_other_elements_are_never_overwritten(name, h, ref, may, dtype, threads, backend, monkeypatch):
    monkeypatch.setenv("GRADC_NUM_THREADS", str(threads))
    rng = np.random.default_rng(len(name))
    n = 600    # 360,000 elements a nest: split over threads, vectorized, row-blocked
    X = (rng.standard_normal((n, 40)) / 8).astype(dtype)
    W = (rng.standard_normal((40, n)) / 8).astype(dtype)
    V = (rng.standard_normal((n, 3)) / 8).astype(dtype)
    f = gradc.jit(lambda X, W, V: h(X @ W) @ V, backend=backend)
    s = schedule(f.lower(X, W, V).graph, threads=threads)
    overwritten = {s.graph[r]["op"] for r in s.in_place.values()}
    assert ("matmul" in overwritten) == may, (name, s.in_place)
    got = f(X, W, V)
    z = X.astype(np.float64) @ W.astype(np.float64)
    want = ref(z) @ V.astype(np.float64)
    # sums of 600 terms of h(z) v, each h within a few ulp: 600 * 8 eps of the scale
    eps = np.finfo(dtype).eps
    scale = np.abs(ref(z)) @ np.abs(V.astype(np.float64))
    assert np.all(np.abs(got - want) <= 600 * 8 * eps * scale + 1e-300), name


def test_the_softmax_overwrites_its_exponentials(monkeypatch):
    """Attention's forward nest: exp(S - max) is written over S, the softmax over the
    exponentials (each read at its own element, in a later pass over the row)."""
    monkeypatch.setenv("GRADC_NUM_THREADS", "2")
    m = MODELS["M7"]
    args = make_data("M7", "medium", "float64")
    f = gradc.value_and_grad(m.gradc, argnums=m.argnums)
    lowered = f.lower(*args)
    s = schedule(lowered.graph, threads=2)
    ops = {n: s.graph[n]["op"] for n in s.in_place}
    over = {s.graph[n]["op"]: s.graph[r]["op"] for n, r in s.in_place.items()}
    assert "exp" in ops.values() and over["exp"] == "matmul"
    assert any(s.graph[r]["op"] == "exp" for r in s.in_place.values())
    # each pair shares a slot: the overwriting buffer right after the one it overwrites
    for n, r in s.in_place.items():
        slot = next(sl for sl in s.slots if n in sl)
        assert slot[slot.index(n) - 1] == r


def test_nests_whose_rows_run_in_blocks_write_nothing_in_place(monkeypatch):
    """A tanh layer read by a vector head (its rows run in blocks of 4, for the shared
    loads of v) and by a softmax head: tanh is not written over X @ W there, where
    LLVM's run-time overlap check between the block's rows would find the one buffer
    and run the scalar loop (a scalar tanh call per element).  Values and gradients
    against the numpy evaluator."""
    monkeypatch.setenv("GRADC_NUM_THREADS", "2")
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((2048, 16)), rng.standard_normal(2048)
    W, v, P = rng.standard_normal((16, 64)) / 4, rng.standard_normal(64) / 8, rng.standard_normal((64, 6)) / 8

    def loss(W, v, P, X, y):
        h = gnp.tanh(X @ W)
        return gnp.mean((h @ v - y) ** 2) + gnp.mean(gnp.log_softmax(h @ P, axis=-1))

    f = gradc.value_and_grad(loss, argnums=(0, 1, 2))
    s = schedule(f.lower(W, v, P, X, y).graph, threads=2)
    blocked = [nest for nest in s.nests if nest.row_block > 1]
    assert any(s.graph[n]["op"] == "tanh" for nest in blocked for n in nest.roots), "no blocked tanh: tests nothing"
    assert not [n for nest in blocked for n in nest.roots if n in s.in_place]
    value, grads = f(W, v, P, X, y)
    want_v, want_g = gradc.value_and_grad(loss, argnums=(0, 1, 2), backend="numpy")(W, v, P, X, y)
    assert abs(value - want_v) <= 1e-12 * abs(want_v)
    for g, w in zip(grads, want_g):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-13)
