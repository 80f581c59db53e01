"""The native scan's own promises, beside tests/test_scan.py's semantics: the step is
traced and compiled once whatever the number of steps (the graph does not grow, the
number of steps stays a size symbol), value_and_grad runs one forward loop (the plain
loop and the one stacking the adjoint's residuals merge), a step's hot code gives the
same bits, ``unroll=True`` gives the same values as the loop, fori_loop is a loop too,
and every stage shows the loop (graph listing with the step, loop IR)."""
from __future__ import annotations

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
from gradc import lax
from gradc_helpers import kernel_of

B, D, H = 8, 5, 6
R = np.random.default_rng(7)
P = {"Wx": R.normal(size=(D, H)) * 0.3, "Wh": R.normal(size=(H, H)) * 0.3, "b": R.normal(size=H) * 0.1}
Y = R.normal(size=(B, H))


def loss(p, xs, y, unroll=1):
    def step(h, x):
        h = gnp.tanh(x @ p["Wx"] + h @ p["Wh"] + p["b"])
        return h, gnp.sum(h * h, axis=1)
    # (zeros_like(y), not zeros((xs.shape[1], H)): reading a shape fixes the sizes)
    h, ys = lax.scan(step, gnp.zeros_like(y), xs, unroll=unroll)
    return gnp.mean((h - y) ** 2) + 0.01 * gnp.sum(ys)


def loss_numpy(p, xs, y):
    h, total = np.zeros((xs.shape[1], H)), 0.0
    for x in xs:
        h = np.tanh(x @ p["Wx"] + h @ p["Wh"] + p["b"])
        total += np.sum(h * h)
    return np.mean((h - y) ** 2) + 0.01 * total


def test_the_graph_does_not_grow_with_the_steps():
    f = gradc.value_and_grad(loss)
    sizes = [len(f.lower(P, R.normal(size=(t, B, D)), Y).graph) for t in (2, 9, 300)]
    assert sizes[0] == sizes[1] == sizes[2]


def test_value_and_grad_runs_one_forward_loop_and_one_backward():
    nests = gradc.value_and_grad(loss).lower(P, R.normal(size=(6, B, D)), Y).loop_nests()
    scans = [line for line in nests.splitlines() if ": scan over" in line]
    assert len(scans) == 2, nests


@pytest.mark.parametrize("backend", ["llvm", "c"])
def test_another_number_of_steps_reuses_the_kernel(backend):
    f = gradc.value_and_grad(loss, backend=backend)
    xs5, xs11 = R.normal(size=(5, B, D)), R.normal(size=(11, B, D))
    assert kernel_of(f, P, xs5, Y) is kernel_of(f, P, xs11, Y)
    for xs in (xs5, xs11):
        v, _ = f(P, xs, Y)
        assert v == pytest.approx(loss_numpy(P, xs, Y), rel=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "llvm", "c"])
def test_unrolled_and_native_agree(backend):
    xs = R.normal(size=(7, B, D))
    v1, g1 = gradc.value_and_grad(loss, backend=backend)(P, xs, Y)
    v2, g2 = gradc.value_and_grad(lambda p, xs, y: loss(p, xs, y, unroll=True), backend=backend)(P, xs, Y)
    assert v1 == pytest.approx(v2, rel=1e-13)
    for k in P:      # the same operations in the same order, but fusion may differ
        np.testing.assert_allclose(g1[k], g2[k], rtol=1e-12, atol=1e-15)


def test_the_steps_hot_code_gives_the_same_bits(monkeypatch, tmp_path):
    monkeypatch.setenv("GRADC_HOT_SECONDS", "1e-9")
    monkeypatch.setenv("GRADC_HOT_BACKGROUND", "0")
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path))
    xs = R.normal(size=(9, B, D))
    f = gradc.value_and_grad(lambda p, xs, y: loss(p, xs, y) * 1.0009765625)   # a kernel of its own
    first = f(P, xs, Y)
    k = kernel_of(f, P, xs, Y)
    assert k.steps and k.calls_math
    for _ in range(3):
        later = f(P, xs, Y)
    assert k.upgraded
    assert all(table[0] == step.artifact.hot_address(compile=False) for step, table in k.steps
               if step._own_math)
    assert first[0] == later[0]
    for key in P:
        np.testing.assert_array_equal(first[1][key], later[1][key])


def test_fori_loop_is_a_loop_with_a_traced_index():
    x = R.normal(size=50)

    def f(x):
        return lax.fori_loop(0, 50, lambda i, v: v * 0.9 + x[i] * gnp.sin(v), 0.5)

    def f_numpy(x):
        v = 0.5
        for i in range(50):
            v = v * 0.9 + x[i] * np.sin(v)
        return v
    assert "scan" in {d.op for _, d in gradc.jit(f).lower(x).graph.nx.nodes(data=True)}
    for backend in ("numpy", "llvm", "c"):
        assert gradc.jit(f, backend=backend)(x) == pytest.approx(f_numpy(x), rel=1e-12)
        g = gradc.grad(f, backend=backend)(x)
        e = np.zeros(50)
        e[17] = 1e-6
        assert g[17] == pytest.approx((f_numpy(x + e) - f_numpy(x - e)) / 2e-6, rel=1e-6)


def test_fori_loop_whose_body_needs_a_python_index_repeats():
    x = R.normal(size=6)
    f = gradc.jit(lambda x: lax.fori_loop(0, 6, lambda i, v: v + gnp.sum(x[:i]), 0.0))
    assert f(x) == pytest.approx(sum(x[:i].sum() for i in range(6)))
    assert "scan" not in {d.op for _, d in f.lower(x).graph.nx.nodes(data=True)}


def test_every_stage_shows_the_loop():
    xs = R.normal(size=(4, B, D))
    low = gradc.value_and_grad(loss).lower(P, xs, Y)
    text = str(low.graph)
    assert "scan" in text and ", the step:" in text and "tanh" in text.split(", the step:")[1]
    ir = low.loop_ir()
    assert "= step(" in ir and "for t in reversed" in ir
    c = gradc.value_and_grad(loss, backend="c").lower(P, xs, Y).c_source()
    assert "the step kernel, once per step" in c


def test_an_ahead_of_time_library_of_a_scan(tmp_path):
    import ctypes

    from gradc import aot

    def model(W, xs):
        h, ys = lax.scan(lambda h, x: (gnp.tanh(h @ W + x), h[0]), gnp.zeros(3), xs)
        return gnp.sum(h * h) + gnp.sum(ys)
    paths = aot.build(model, ["f64[3,3]", "f64[4,3]"], out_dir=str(tmp_path), name="scanned")
    lib = ctypes.CDLL([p for p in paths if p.endswith(".so")][0])
    lib.scanned_value_and_grad.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    W, xs = R.normal(size=(3, 3)) * 0.5, R.normal(size=(4, 3))
    value, dW = np.zeros(()), np.zeros((3, 3))
    args = (ctypes.c_void_p * 4)(W.ctypes.data, xs.ctypes.data, value.ctypes.data, dW.ctypes.data)
    ws = np.zeros(1 << 16, np.uint8)
    assert lib.scanned_value_and_grad(args, None, ws.ctypes.data) == 0
    v, g = gradc.value_and_grad(model)(W, xs)
    assert float(value) == pytest.approx(v, rel=1e-13)
    np.testing.assert_allclose(dW, g, rtol=1e-12)


def test_the_reference_runs_again_for_an_array_changed_in_place():
    f = gradc.jit(lambda xs: lax.scan(lambda c, x: (c * x, c), gnp.ones(3), xs), backend="numpy")
    xs = np.full((4, 3), 2.0)
    np.testing.assert_array_equal(f(xs)[0], 16.0)
    xs[:] = 3.0
    np.testing.assert_array_equal(f(xs)[0], 81.0)


def test_debug_nans_names_the_steps_node_and_line():
    def f(x, xs):
        def step(c, x):
            return c + x, gnp.log(c - 3.0)     # c is 1 at step 0: the log of -2
        return gnp.sum(lax.scan(step, x, xs)[1])
    g = gradc.jit(f, debug_nans=True)
    with pytest.raises(gradc.NonFiniteError, match=r"in step 0 of a scan: forward node .* = log .*test_scan_native.py:\d+"):
        g(np.array(1.0), np.ones(4))


@pytest.mark.parametrize("backend", ["llvm", "c"])
def test_an_index_out_of_bounds_in_the_step_names_its_line(backend):
    E = R.normal(size=(10, 3))
    f = gradc.jit(lambda E, toks: lax.scan(lambda c, t: (c * 0.5 + E[t], c.sum()), gnp.zeros(3), toks)[1],
                  backend=backend)
    np.testing.assert_allclose(f(E, np.array([1, 2])), [0.0, E[1].sum()])
    with pytest.raises(IndexError, match=r"index out of bounds .* at test_scan_native.py:\d+"):
        f(E, np.array([1, 2, 50]))


def test_a_step_returning_a_list_pair_works_and_anything_else_is_refused():
    f = gradc.jit(lambda xs: lax.scan(lambda c, x: [c + x, c], 0.0, xs))
    c, ys = f(np.arange(4.0))
    assert float(c) == 6.0 and ys.tolist() == [0.0, 0.0, 1.0, 3.0]
    with pytest.raises(gradc.ArgumentError, match=r"must return a pair \(carry, y\); it returned 3 values"):
        gradc.jit(lambda xs: lax.scan(lambda c, x: (c + x, c, x), 0.0, xs))(np.arange(4.0))
    with pytest.raises(gradc.ArgumentError, match="carry's leaf carry has shape"):
        gradc.jit(lambda xs: lax.scan(lambda c, x: (c + x, c), 0.0, xs))(np.ones((4, 2)))
