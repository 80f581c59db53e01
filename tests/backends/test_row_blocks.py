"""Row-blocked nests as lower_loops builds them: the accumulation over a block's rows
one block behind its dot products (``lagged_blocks``), a row at a time for a matrix
larger than the host's cache (``Schedule.stream_bytes``), and inner loops whose first
iterations are peeled so that a row of the matrix is read from 64-byte boundaries
(``align_inner_loops``; on hosts with 512-bit vectors, tested here on every host).

Both only reorder work, so every row count (no whole block, one, two, many, with rows
left over), column count (shorter than a peel, not a multiple of a vector), address
(every byte offset within a cache line, including addresses that are not a multiple of
the element size) and thread count must give numpy's value and gradient.

Tolerance: the gradients are sums of at most 4,000 O(1) terms each; gradc and numpy
add them in different orders (vector lanes, row blocks, chunks), so they may differ by
about n * eps * (sum of |terms|): 1e-10 relative to the gradient's scale in float64
(4e3 * 2.2e-16 = 9e-13, with headroom for the terms' magnitude), 2e-4 in float32
(4e3 * 6e-8 = 2.4e-4 at worst, typically far less: random signs cancel as sqrt(n)).
"""
from __future__ import annotations

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
from gradc.backends import llvm_backend, schedule

TOL = {np.float64: 1e-10, np.float32: 2e-4}


def neuron(w, b, X, y):
    return gnp.mean((gnp.relu(X @ w + b) - y) ** 2)


def logistic(w, b, X, y):
    return gnp.mean(gnp.log1p(gnp.exp(-y * (X @ w + b))))


def neuron_reference(w, b, X, y):
    z = X @ w + b
    r = np.maximum(z, 0) - y
    g = np.where(z > 0, 2 * r / len(y), 0)
    return np.mean(r ** 2), g @ X, g.sum()


def logistic_reference(w, b, X, y):
    u = -y * (X @ w + b)
    s = -y / (1 + np.exp(-u)) / len(y)      # d log1p(exp(u)) / dz
    return np.mean(np.log1p(np.exp(u))), s @ X, s.sum()


MODELS = {"neuron": (neuron, neuron_reference), "logistic": (logistic, logistic_reference)}


def _data(m, n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal(n) / np.sqrt(n)).astype(dtype)
    X = rng.standard_normal((m, n)).astype(dtype)
    y = np.where(rng.random(m) < 0.5, -1.0, 1.0).astype(dtype)
    return w, np.asarray(0.1, dtype), X, y


def _check(model, args, backend="llvm"):
    f, ref = MODELS[model]
    value, (gw, gb) = gradc.value_and_grad(f, argnums=(0, 1), backend=backend)(*args)
    wide = [np.asarray(a, np.float64) for a in args]
    rv, rgw, rgb = ref(*wide)
    tol = TOL[args[2].dtype.type]
    assert abs(value - rv) <= tol * max(1.0, abs(rv))
    assert np.max(np.abs(gw - rgw)) <= tol * max(1.0, np.max(np.abs(rgw))), np.max(np.abs(gw - rgw))
    assert abs(gb - rgb) <= tol * max(1.0, abs(rgb))


@pytest.mark.parametrize("backend", ["llvm", "c"])
@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("m", [1, 3, 4, 5, 8, 9, 12, 13, 31])
def test_every_row_count(model, m, backend, monkeypatch):
    """No whole block (m < 4), one block, two, several, with and without rows after the
    last block: the lagged accumulation of the first and the last block included."""
    monkeypatch.setenv("GRADC_NUM_THREADS", "1")
    _check(model, _data(m, 70, np.float64, seed=m), backend)


@pytest.fixture(params=["peeled", "unpeeled"])
def peel(request, monkeypatch):
    """Both forms of a row's inner loops on every host: peeled to a 64-byte boundary
    (hosts with 512-bit vectors) or not (the others: llvm_backend.aligns_rows)."""
    monkeypatch.setattr(llvm_backend, "aligns_rows", lambda target=None: request.param == "peeled")
    return request.param


@pytest.mark.parametrize("n", [1, 7, 63, 64, 65, 130, 257])
def test_column_counts_around_the_peel(n, peel, monkeypatch):
    """Rows shorter than ALIGN_MIN_ITERATIONS run unpeeled; longer ones peel up to a
    vector's worth and leave a remainder that is not a multiple of a vector."""
    monkeypatch.setenv("GRADC_NUM_THREADS", "1")
    _check("neuron", _data(21, n, np.float64, seed=n))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_offset_within_a_cache_line(dtype, peel, monkeypatch):
    """X starting at every byte of a cache line: at a multiple of its element size
    (peeled to the next line) or not (an unaligned numpy array, which the call copies),
    rows of a length that is not a multiple of the line, so each row starts at another
    offset."""
    monkeypatch.setenv("GRADC_NUM_THREADS", "1")
    w, b, X0, y = _data(41, 131, dtype, seed=7)
    raw = np.zeros(X0.nbytes + 128, np.uint8)
    base = (-raw.ctypes.data) % 64
    for offset in range(64):
        start = base + offset
        X = np.frombuffer(raw[start:start + X0.nbytes].data, dtype=dtype).reshape(X0.shape)
        X[...] = X0
        assert X.ctypes.data % 64 == offset
        _check("neuron", (w, b, X, y))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("threads", ["1", "2", "3"])
def test_threaded_sizes(model, dtype, threads, peel, monkeypatch):
    """Sizes where the nest runs on the pool in chunks (each chunk's own first and last
    blocks), with rows left over in each chunk; thread counts give the same answer."""
    monkeypatch.setenv("GRADC_NUM_THREADS", threads)
    _check(model, _data(4099, 203, dtype, seed=int(threads)))


@pytest.fixture(params=["cached", "streamed"])
def matrix_size(request, monkeypatch):
    """Both forms of a row-blocked nest: in blocks (a matrix within the host's cache) and
    a row at a time (larger: here a cache of 4 KB makes every matrix larger)."""
    if request.param == "streamed":     # (on every host: hosts without AVX-512 keep blocks)
        monkeypatch.setattr(schedule, "last_level_cache_bytes", lambda: 4096)
        monkeypatch.setattr(llvm_backend, "stream_row_bytes", lambda: None)
    return request.param


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("threads", ["1", "2"])
@pytest.mark.parametrize("m", [3, 13, 4099])
def test_both_forms(model, dtype, threads, m, matrix_size, peel, monkeypatch):
    """The same answers a row at a time as in lagged blocks, on one thread and on the
    pool (a chunk's rows in one form, none left to the task of the remaining rows)."""
    monkeypatch.setenv("GRADC_NUM_THREADS", threads)
    _check(model, _data(m, 203, dtype, seed=m))


def test_the_streamed_form_is_a_row_loop(monkeypatch):
    monkeypatch.setenv("GRADC_NUM_THREADS", "1")
    monkeypatch.setattr(schedule, "last_level_cache_bytes", lambda: 4096)
    monkeypatch.setattr(llvm_backend, "stream_row_bytes", lambda: None)
    args = _data(64, 32, np.float64)
    text = gradc.value_and_grad(neuron, argnums=(0, 1)).lower(*args).loop_ir()
    assert "blocked_end = select((((m * n) * 8) > 4096), 0, m) + 0" in text
    assert "after_blocks = 0 + (((blocked_end - 0) / 4) * 4)" in text   # (0 blocks when blocked_end is 0)
    assert "for row in [after_blocks, m):" in text


def test_only_short_rows_stream_where_long_ones_run_faster_in_blocks(monkeypatch):
    """Hosts without AVX-512 stream only rows shorter than 4 KB (llvm_backend.
    stream_row_bytes): blocked_end tests the row's bytes too, and rows on either side
    of the limit (4,088 and 4,096 bytes, float64 and float32) give numpy's answers, on
    one thread and on the pool."""
    monkeypatch.setattr(schedule, "last_level_cache_bytes", lambda: 4096)
    monkeypatch.setattr(llvm_backend, "stream_row_bytes", lambda: 4096)
    monkeypatch.setenv("GRADC_NUM_THREADS", "1")
    text = gradc.value_and_grad(neuron, argnums=(0, 1)).lower(*_data(64, 32, np.float64)).loop_ir()
    assert "blocked_end = select(((((m * n) * 8) > 4096) && ((n * 8) < 4096)), 0, m) + 0" in text
    for threads in ("1", "2"):
        monkeypatch.setenv("GRADC_NUM_THREADS", threads)
        for dtype, n in ((np.float64, 511), (np.float64, 512), (np.float32, 1023), (np.float32, 1024)):
            for model in MODELS:
                _check(model, _data(203, n, dtype, seed=n))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("threads", ["1", "2"])
def test_forward_both_forms(model, dtype, threads, matrix_size, monkeypatch):
    """The forward pass alone (dot products and row-level values, no accumulation over
    rows): in blocks of rows, or a row at a time over a large matrix."""
    monkeypatch.setenv("GRADC_NUM_THREADS", threads)
    f, ref = MODELS[model]
    args = _data(4099, 203, dtype, seed=11)
    got = gradc.jit(f)(*args)
    want = ref(*[np.asarray(a, np.float64) for a in args])[0]
    assert abs(got - want) <= TOL[dtype] * max(1.0, abs(want))
