"""Ahead-of-time libraries of models with loops: a ``lax.scan`` stays a loop in the
library (its step a function of the library), so the number of steps is one of the
library's sizes: one library runs sequences of any length.  Values against a numpy
loop, gradients against back-propagation through time in numpy (tests/test_scan.py's
BPTT) and against gradc's JIT."""
from __future__ import annotations

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
from gradc import aot, lax
from test_aot import CC, Library
from test_scan import rnn_bptt

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler")


def rnn(p, h0, xs, cy, cc):
    """tests/test_scan.py's RNN (rnn_loss) with its parameters as arguments, without
    its division by ``cy.shape[0]`` (reading a shape fixes the sizes when tracing, and
    the steps must stay a size of the library)."""
    def step(h, x):
        h = gnp.tanh(x @ p["Wx"] + h @ p["Wh"] + p["b"])
        return h, h
    h, hs = lax.scan(step, h0, xs)
    return gnp.sum(hs * cy) + gnp.sum(h * cc)


RNN_TYPES = ["{Wx: f64[d,h], Wh: f64[h,h], b: f64[h]}", "f64[n,h]", "f64[T,n,d]", "f64[T,n,h]", "f64[n,h]"]


@pytest.fixture(scope="module")
def rnn_library(tmp_path_factory):
    out = tmp_path_factory.mktemp("rnn")
    paths = aot.build(rnn, RNN_TYPES, wrt=(0, 1, 2), out_dir=str(out), name="rnn")
    header = open(paths[1]).read()
    return Library(paths[0], "rnn"), header


def _sizes(header, **values):
    """The sizes in the order of the header's RNN_SIZE_* macros."""
    order = {}
    for line in header.splitlines():
        if line.startswith("#define RNN_SIZE_"):
            _, name, k = line.split()
            order[name[len("RNN_SIZE_"):]] = int(k)
    return [values[name] for name, _ in sorted(order.items(), key=lambda kv: kv[1])]


@pytest.mark.parametrize("T", [1, 6, 300])
def test_one_library_runs_any_number_of_steps(rnn_library, T):
    lib, header = rnn_library
    r = np.random.default_rng(T)
    n, d, h = 5, 4, 8
    p = {"Wx": r.normal(size=(d, h)) / 2, "Wh": r.normal(size=(h, h)) * 0.5 / np.sqrt(h), "b": r.normal(size=h) * 0.1}
    h0, xs = r.normal(size=(n, h)) * 0.5, r.normal(size=(T, n, d))
    cy, cc = r.normal(size=(T, n, h)), r.normal(size=(n, h))
    sizes = _sizes(header, T=T, n=n, d=d, h=h)
    assert lib.check_sizes("value_and_grad", sizes) == 0
    # inputs: the dict's leaves in sorted key order (Wh, Wx, b), then h0, xs, cy, cc;
    # outputs: the value, then the gradients of the leaves of p, of h0 and of xs
    rc, outs = lib("value_and_grad", [p["Wh"], p["Wx"], p["b"], h0, xs, cy, cc],
                   [(), (h, h), (d, h), (h,), (n, h), (T, n, d)], sizes)
    assert rc == 0
    value, gWh, gWx, gb, gh0, gxs = outs
    hs, hh = [], h0
    for x in xs:
        hh = np.tanh(x @ p["Wx"] + hh @ p["Wh"] + p["b"])
        hs.append(hh)
    assert float(value) == pytest.approx(np.sum(np.stack(hs) * cy) + np.sum(hh * cc), rel=1e-12)
    wp, wh0, wxs = rnn_bptt(p, h0, xs, cy * T, cc)     # (BPTT of sum(hs * cy) / T)
    for got, want in ((gWh, wp["Wh"]), (gWx, wp["Wx"]), (gb, wp["b"]), (gh0, wh0), (gxs, wxs)):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    rc, (fwd,) = lib("forward", [p["Wh"], p["Wx"], p["b"], h0, xs, cy, cc], [()], sizes)
    assert rc == 0 and float(fwd) == pytest.approx(float(value), rel=1e-14)


def test_the_library_exports_its_entry_points_only(rnn_library):
    """The step kernels are the library's own functions: no symbol of theirs is exported."""
    import subprocess
    lib, _ = rnn_library
    nm = subprocess.run(["nm", "-D", "--defined-only", lib.lib._name], capture_output=True, text=True)
    if nm.returncode:
        pytest.skip("no nm")
    assert "step" not in nm.stdout and "rnn_value_and_grad" in nm.stdout


def _nested(W, h0, xs):
    """A scan whose step runs a fori_loop (a scan of its own) with a checkpointed body,
    and a max in the step."""
    def step(h, x):
        h = lax.fori_loop(0, 3, gradc.checkpoint(lambda i, v: gnp.sin(v @ W) + x), h)
        return h, gnp.max(h, axis=1)
    h, ys = lax.scan(step, h0, xs)
    return gnp.sum(h * h) + gnp.sum(ys)


def _nested_numpy(W, h, xs):
    total = 0.0
    for x in xs:
        for _ in range(3):
            h = np.sin(h @ W) + x
        total += np.sum(np.max(h, axis=1))
    return np.sum(h * h) + total


def test_nested_loops_and_the_empty_reduction_check(tmp_path):
    paths = aot.build(_nested, ["f64[d,d]", "f64[n,d]", "f64[T,n,d]"], wrt=(0, 2), out_dir=str(tmp_path), name="nested")
    lib = Library(paths[0], "nested")
    header = open(paths[1]).read()
    order = sorted((int(k), name[len("NESTED_SIZE_"):]) for _, name, k in
                   (line.split() for line in header.splitlines() if line.startswith("#define NESTED_SIZE_")))
    names = [name for _, name in order]
    r = np.random.default_rng(0)
    W, h0, xs = r.normal(size=(4, 4)) * 0.5, r.normal(size=(3, 4)), r.normal(size=(9, 3, 4))
    sizes = [dict(T=9, n=3, d=4)[k] for k in names]
    rc, (value, dW, dxs) = lib("value_and_grad", [W, h0, xs], [(), (4, 4), (9, 3, 4)], sizes)
    assert rc == 0
    assert float(value) == pytest.approx(_nested_numpy(W, h0, xs), rel=1e-12)
    v, (gW, gxs) = gradc.value_and_grad(_nested, argnums=(0, 2))(W, h0, xs)
    np.testing.assert_allclose(dW, gW, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dxs, gxs, rtol=1e-12, atol=1e-14)
    # the max over an empty axis runs only when a step runs: T = 0 is fine, T > 0 is not
    assert lib.check_sizes("value_and_grad", [dict(T=9, n=3, d=0)[k] for k in names]) == 2
    assert lib.check_sizes("value_and_grad", [dict(T=0, n=3, d=0)[k] for k in names]) == 0
    empty = np.zeros((0, 3, 0))
    rc, (value, dW, dxs) = lib("value_and_grad", [np.zeros((0, 0)), np.zeros((3, 0)), empty], [(), (0, 0), (0, 3, 0)],
                               [dict(T=0, n=3, d=0)[k] for k in names])
    assert rc == 0 and float(value) == 0.0
