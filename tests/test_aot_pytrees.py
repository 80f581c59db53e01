"""``gradc build`` with pytree arguments (issue 16): a dict of parameters becomes one
named array per leaf in the header (``params_W1`` ...), in tree_flatten's order (dict
keys sorted), and the library computes what gradc.value_and_grad computes on the dict.

The library and the JIT come from the same IR generator; the library runs one thread
and its own matrix loops instead of BLAS, so sums may associate differently: rtol 1e-12
on O(1) values of ~100-term sums."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gradc
from gradc import aot
from test_aot import REPO, Library

pytestmark = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")

MODEL = textwrap.dedent("""\
    import gradc.numpy as gnp


    def loss(params, X, y):
        h = gnp.tanh(X @ params["W1"] + params["b1"])
        return gnp.mean((h @ params["W2"] + params["b2"] - y) ** 2)
    """)


def test_cli_build_flattens_a_dict_into_named_arrays(tmp_path):
    (tmp_path / "mlp.py").write_text(MODEL)
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "gradc.cli", "build", f"{tmp_path / 'mlp.py'}:loss",
                        "{W1: f64[d,h], b1: f64[h],", "W2: f64[h], b2: f64}", "f64[n,d]", "f64[n]",
                        "--wrt", "params", "-o", str(tmp_path), "--name", "mlp"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    h = (tmp_path / "mlp.h").read_text()
    assert "loss(params_W1, params_W2, params_b1, params_b2, X, y)" in h
    for row in (r"args\[0\]\s+in\s+params_W1\s+const double\[d\]\[h\]", r"args\[3\]\s+in\s+params_b2\s+const double \(scalar\)",
                r"args\[7\]\s+out\s+dparams_W1\s+double\[d\]\[h\]\s+\(d loss / d params_W1\)",
                r"args\[10\]\s+out\s+dparams_b2\s+double \(scalar\)\s+\(d loss / d params_b2\)"):
        assert re.search(row, h), row
    assert "sizes[1] = h: params_W1.shape[1], params_W2.shape[0], params_b1.shape[0]" in h

    rng = np.random.default_rng(5)
    d, hid, n = 7, 11, 100
    params = {"W1": rng.standard_normal((d, hid)), "b1": rng.standard_normal(hid),
              "W2": rng.standard_normal(hid), "b2": np.float64(0.2)}
    X, y = rng.standard_normal((n, d)), rng.standard_normal(n)
    lib = Library(tmp_path / "libmlp.so", "mlp")
    order = ["W1", "W2", "b1", "b2"]
    rc, outs = lib("value_and_grad", [params[k] for k in order] + [X, y],
                   [(), (d, hid), (hid,), (hid,), ()], [d, hid, n])
    assert rc == 0
    import importlib.util
    spec = importlib.util.spec_from_file_location("mlp_model", tmp_path / "mlp.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    v, g = gradc.value_and_grad(mod.loss)(params, X, y)
    np.testing.assert_allclose(outs[0], v, rtol=1e-12)
    for k, got in zip(order, outs[1:]):
        np.testing.assert_allclose(got, g[k], rtol=1e-12, atol=1e-15)


def test_type_trees_parse_and_python_trees():
    from gradc.typespec import TypeSpecError, type_trees     # the parser every command shares
    assert type_trees(["{W: f64[n, d], 'b c': (f64[d], f64)}", "f64[n]"]) == \
        [{"W": "f64[n,d]", "b c": ("f64[d]", "f64")}, "f64[n]"]
    with pytest.raises(TypeSpecError, match="expected ':' after a key"):
        type_trees(["{W f64[n]}"])
    with pytest.raises(TypeSpecError, match="expected ',' or '\\)'"):
        type_trees(["(f64[n] f64[n]"])

    def f(layer, x):
        return (layer[0] * x).sum() + layer[1]
    fwd, vg = aot.trace_entries(f, [("f64[d]", "f64"), "f64[d]"], 0)
    assert [vg[i]["name"] for i in vg.inputs] == ["layer_0", "layer_1", "x"]
    assert len(vg.outputs) == 3        # the value and the two leaves' gradients

