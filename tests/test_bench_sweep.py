"""gradc bench --sweep: its hand-written numpy gradients are right (central finite
differences), gradc and JAX agree with them on every kind of configuration, the grid
and its filter are what the docs say, and the command prints a complete table.  No
timing assertions: the machine is shared and noisy."""
from __future__ import annotations

import json

import numpy as np
import pytest

import gradc
from gradc import bench, bench_sweep as sweep, cli
from gradc.bench_sweep import Config


def _finite_differences(f, args, i, h=1e-6):
    args = list(args)
    base = args[i]
    fd = np.empty(base.shape)
    for idx in np.ndindex(base.shape):
        plus, minus = base.copy(), base.copy()
        plus[idx] += h
        minus[idx] -= h
        args[i] = plus
        fp = f(*args)[0]
        args[i] = minus
        fm = f(*args)[0]
        fd[idx] = (fp - fm) / (2 * h)
    return fd


TINY = [Config("mlp", L, 5, a, n=7, d=3) for L in (2, 3) for a in sweep.ACTIVATIONS] + \
       [Config("attention", n=6, d=4, head=3)]


@pytest.mark.parametrize("cfg", TINY, ids=lambda c: c.name)
def test_numpy_gradient_matches_finite_differences(cfg):
    """Every entry of every weight and bias; gelu's hand-written derivative included.
    Central differences with h = 1e-6 on O(1) values are good to about 1e-9 relative
    (truncation h^2, rounding eps/h); 1e-6 leaves a margin of 1000."""
    f = sweep.np_value_and_grad(cfg)
    args = sweep.make_args(cfg)
    value, grads = f(*args)
    assert len(grads) == len(cfg.argnums)
    for i, g in zip(cfg.argnums, grads):
        fd = _finite_differences(f, args, i)
        err = float(np.max(np.abs(g - fd))) / max(float(np.max(np.abs(fd))), 1e-12)
        assert err < 1e-6, f"{cfg.name}: d/d(arg {i}) differs from finite differences by {err:.2e}"


def test_gelu_is_the_tanh_approximation():
    """gradc's gelu against its closed form, and against JAX's default gelu where installed.
    For x << 0, 1 + tanh(u) cancels: the error is absolute, a few ulps of 1 times |x|
    (ulps of tanh differ between libraries), hence atol = 8 eps max|x|."""
    x = np.linspace(-6, 6, 1001)
    atol = 8 * np.finfo(np.float64).eps * 6
    want = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    got = gradc.jit(sweep.gelu)(x)
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=atol)
    jax = pytest.importorskip("jax")
    bench.load_peers(("jax",), "float64")          # x64, as the sweep runs it
    np.testing.assert_allclose(np.asarray(jax.nn.gelu(x)), want, rtol=1e-14, atol=atol)


# gradc against numpy by hand at the sweep's own sizes: batch 2048 x hidden 256 is 524,288
# elements per activation, where gradc's nests split over threads and vectorize.  The
# tolerances are bench.RTOL's (norm-wise): float64 1e-9 (sums of 2048 products lose
# ~1e-13), float32 1e-4 (2048-term sums of O(1) terms in float32: ~2048 * 6e-8 at worst).
FULL = [Config("mlp", 3, 256, "gelu"), Config("mlp", 2, 256, "relu"), Config("mlp", 3, 64, "tanh"),
        Config("mlp", 2, 32, "gelu"), Config("attention", n=512, d=sweep.FEATURES, head=64)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cfg", FULL, ids=lambda c: c.name)
def test_gradc_matches_numpy_at_sweep_sizes(cfg, dtype):
    assert all(a.dtype == np.dtype(dtype) for a in sweep.make_args(cfg, dtype))
    c = sweep.check_gradc(cfg, dtype)
    assert c["ok"], c


@pytest.mark.parametrize("cfg", TINY, ids=lambda c: c.name)
def test_gradc_numpy_backend_and_jax_agree(cfg):
    args = sweep.make_args(cfg)
    ref = bench._grads(sweep.np_value_and_grad(cfg)(*args), cfg.argnums)
    got = gradc.value_and_grad(sweep.gradc_model(cfg), argnums=cfg.argnums, backend="numpy")(*args)
    assert bench.compare(bench._grads(got, cfg.argnums), ref, 1e-12)["ok"]
    pytest.importorskip("jax")
    bench.load_peers(("jax",), "float64")
    jargs, call, to_list = sweep._jax_impl(cfg, args)
    c = bench.compare(to_list(call(*jargs)), ref, 1e-12)
    assert c["ok"], c


# ----------------------------------------------------------------------------- the grid
def test_grid_is_the_issue_s():
    g = sweep.grid()
    mlps = [c for c in g if c.kind == "mlp"]
    assert len(mlps) == 2 * 4 * 3 and {c.n for c in mlps} == {2048}
    assert {(c.layers, c.hidden, c.act) for c in mlps} == {
        (L, h, a) for L in (2, 3) for h in (32, 64, 128, 256) for a in ("tanh", "relu", "gelu")}
    att = [(c.n, c.head) for c in g if c.kind == "attention"]
    assert sorted(att) == [(512, 32), (512, 64), (2048, 32), (2048, 64)]
    assert len({c.name for c in g}) == len(g)
    args = sweep.make_args(Config("mlp", 3, 32, "relu"))
    assert [a.shape for a in args] == [(16, 32), (32,), (32, 32), (32,), (32, 4), (4,), (2048, 16), (2048, 4)]


def test_select_words():
    names = [c.name for c in sweep.select("mlp2,relu,h64,h128")]
    assert names == ["mlp2 relu h64", "mlp2 relu h128"]
    assert [c.name for c in sweep.select("attention,n512")] == ["attention n512 h32", "attention n512 h64"]
    assert len(sweep.select("gelu")) == 8 and len(sweep.select(None)) == len(sweep.grid())
    with pytest.raises(ValueError, match="unknown word 'swish'"):
        sweep.select("mlp2,swish")


# ----------------------------------------------------------------------------- the command
def test_sweep_command_json(tmp_path, capsys):
    out_json = tmp_path / "sweep.json"
    code = cli.main(["bench", "--sweep-only", "mlp3,gelu,h32", "--quick", "--json", str(out_json)])
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads(out_json.read_text())
    assert [r["name"] for r in doc["rows"]] == ["mlp3 gelu h32"]
    row = doc["rows"][0]
    assert row["status"] == "ok" and row["check"]["gradc"]["ok"] and row["check"]["gradc"]["max_rel_err"] <= 1e-9
    assert row["times"]["numpy"]["median_s"] > 0 and row["times"]["gradc"]["median_s"] > 0
    assert row["gradc_over_numpy"] == pytest.approx(row["times"]["gradc"]["median_s"]
                                                    / row["times"]["numpy"]["median_s"])
    if doc["jax"]["available"]:
        assert row["check"]["jax"]["ok"] and row["check"]["gradc_vs_jax"]["ok"]
        assert row["gradc_over_jax"] == pytest.approx(row["times"]["gradc"]["median_s"]
                                                      / row["times"]["jax"]["median_s"])
    lines = [x for x in out.splitlines() if x.startswith("mlp3 gelu h32")]
    assert len(lines) == 1 and "X[2048x16] 16-32-32-4" in lines[0]
    assert "all agree" in out and "load average" in out


def test_a_wrong_result_is_marked(monkeypatch):
    cfg = Config("mlp", 2, 8, "tanh", n=64)
    good = sweep.np_value_and_grad(cfg)

    def off(*args):
        v, g = good(*args)
        return v, (g[0] * (1 + 1e-6),) + g[1:]
    monkeypatch.setattr(sweep, "np_value_and_grad", lambda c: off)
    doc = sweep.run_sweep([cfg], quick=True, peers=False)
    row = doc["rows"][0]
    assert row["status"] == "WRONG" and not row["check"]["gradc"]["ok"]
    assert "WRONG" in sweep.render(doc)


def test_unknown_word_is_a_one_line_usage_error(capsys):
    assert cli.main(["bench", "--sweep-only", "mlp9"]) == 2
    err = capsys.readouterr().err
    assert "unknown word 'mlp9'" in err and len(err.strip().splitlines()) == 1
