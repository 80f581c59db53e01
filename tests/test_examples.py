"""Every example runs (in a subprocess, with a timeout) and says what it should."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 120


def run(name):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    # on a few shared cores, oversubscribed BLAS threads make timings (and the run) slow
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", name)], capture_output=True,
                       text=True, timeout=TIMEOUT, env=env, cwd=ROOT)
    assert r.returncode == 0, f"{name} exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def test_neuron():
    out = run("neuron.py")
    assert "dC/dw = 2/N · Σ_i 1[z_i > 0] (z_i − y_i) x_iᵀ" in out
    assert "dC/db = 2/N · Σ_i 1[z_i > 0] (z_i − y_i)" in out
    assert "df/dw = 1[w·x + b > 0] xᵀ" in out
    assert out.rstrip().endswith("gradc's gradients match the closed forms")
    errs = [float(x) for x in re.findall(r"\]\s+(\d\.\de[-+]\d+)\n", out)]
    assert len(errs) == 2 and max(errs) < 1e-12, out


def test_per_example_gradients():
    out = run("per_example_gradients.py")
    err = float(re.search(r"max \|gradc - closed form\| = (\S+)$", out, re.M).group(1))
    assert err < 1e-12, out
    assert "W1 (2048, 16, 64)" in out and re.search(r"gradc vmap\(grad\):\s+[\d.]+ ms", out)
    assert out.rstrip().endswith("per-example gradients match the closed form")


def test_chain_rules():
    out = run("chain_rules.py")
    for derived in ("2x cos(x²)", "2/x", "6x² cos(x³)/sin(x³)", "1 + 2x", "cos(x + x²) (1 + 2x)", "3x²",
                    "∂f/∂x = [2/x, 3 cos(3x)]", "∂f_i/∂x_i = 2x_i cos(x_i²)"):
        assert derived in out, (derived, out)
    assert out.count(" OK") == 8 and "MISMATCH" not in out
    assert "u1 = x³" in out and out.rstrip().endswith("all derivatives match the closed forms")


def test_logistic_regression():
    pytest.importorskip("sklearn")
    out = run("logistic_regression.py")
    assert re.search(r"gradc \(\w+\):\s+loss [\d.]+\s+[\d.]+ s", out) and re.search(r"numpy by hand: loss", out)
    assert re.search(r"gradc / numpy time: \d", out)
    # the same 500 steps of gradient descent by gradc and by numpy by hand: float64
    # reassociation only (~1e-15 per step, damped by descent), so far below 1e-10
    same = float(re.search(r"max \|w_gradc − w_numpy\| \+ \|b_gradc − b_numpy\| = (\S+)$", out, re.M).group(1))
    assert same < 1e-10, out
    acc = float(re.search(r"^test accuracy: (0\.\d{4})$", out, re.M).group(1))
    assert acc >= 0.93, out


def test_mlp_digits():
    pytest.importorskip("sklearn")
    out = run("mlp_digits.py")
    last = out.rstrip().splitlines()[-1]
    m = re.fullmatch(r"test accuracy: (0\.\d{4})", last)
    assert m, out
    assert float(m.group(1)) >= 0.95, out
    assert re.search(r"gradc / numpy time: \d", out)
    # gradc's training against numpy's by hand, float64 reassociation only: below 1e-10
    diff = float(re.search(r"largest parameter difference (\S+)$", out, re.M).group(1))
    assert diff < 1e-10, out


def test_inspect_ir():
    out = run("inspect_ir.py")
    m = re.search(r"widest <(\d+) x double>", out)
    assert m, out
    if int(m.group(1)) >= 4:
        assert re.search(r"fmul <\d+ x double>", out) and "a reduction over the features" in out
        assert re.search(r"v(mul|add|fmadd\d+)pd .*%(ymm|zmm)", out), out


def _trained(out):
    """(max relative error against finite differences, first loss, last mean loss)."""
    err = float(re.search(r"max rel err ([0-9.e+-]+)", out).group(1))
    first, last = map(float, re.search(r"trained: loss ([0-9.]+) -> ([0-9.]+)", out).groups())
    return err, first, last


@pytest.mark.parametrize("backend", ["llvm", "c", "numpy"])
@pytest.mark.parametrize("name", ["rnn_sequence.py", "attention.py"])
def test_rank_3_and_4_models_train_on_every_backend(name, backend, monkeypatch):
    """An RNN over (batch, time, feature) and multi-head attention over (batch, heads,
    seq, dim): gradients agree with finite differences of the numpy model (central
    differences with h = 1e-6 on O(1) losses: ~1e-9 truncation and rounding, so 1e-6
    is a wide margin that still catches any wrong term), and training cuts the loss
    at least fivefold."""
    monkeypatch.setenv("GRADC_BACKEND", backend)
    err, first, last = _trained(run(name))
    assert err < 1e-6
    assert last < first / 5
