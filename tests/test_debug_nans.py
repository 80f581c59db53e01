"""Checked mode (debug_nans): the first node in execution order whose value is not finite
is reported with its expression, its role, and the line of the model that created it
(for an adjoint node: the forward node it differentiates); unchecked mode costs nothing."""
import re

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
from gradc.api import _config

BACKENDS = ["numpy", "llvm"]


def _line(marker):
    with open(__file__) as f:
        for k, text in enumerate(f, 1):
            if marker in text and "_line(" not in text:
                return f"test_debug_nans.py:{k}"
    raise AssertionError(marker)


def log_model(x):
    y = x * 2.0
    return gnp.sum(gnp.log(y))                        # NAN-LOG


def sqrt_model(x):
    return gnp.sum(gnp.sqrt(x))                       # NAN-SQRT


def two_sources(x):
    a = gnp.log(x)                                    # FIRST-SOURCE
    b = gnp.sqrt(-x)                                  # SECOND-SOURCE
    return gnp.sum(a + b)


def rewritten(x):
    s = gnp.sum(gnp.log1p(gnp.exp(x)))                # becomes softplus: node ids shift
    return s + gnp.sum(gnp.sqrt(x * x))               # NAN-SQRT2


def neuron_log(w, X):
    z = X @ w
    return gnp.mean(gnp.log1p(z))                     # NAN-LOG1P


X_NEG = np.array([1.0, -1.0, 2.0])
X_ZERO = np.array([1.0, 0.0, 2.0])


@pytest.fixture(autouse=True)
def _restore():
    saved = dict(_config)
    gradc.config(debug_nans=False)
    yield
    _config.update(saved)


@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_nan_names_node_role_and_line(backend):
    vg = gradc.value_and_grad(log_model, backend=backend, debug_nans=True)
    with pytest.raises(gradc.NonFiniteError) as e:
        vg(X_NEG)
    msg = str(e.value)
    assert re.match(r"forward node %\d+ = log %\d+ produced nan at index \(1,\)", msg), msg
    assert msg.endswith("created at " + _line("NAN-LOG")), msg
    assert "(operands there: %" in msg and "= -2" in msg


@pytest.mark.parametrize("backend", BACKENDS)
def test_adjoint_inf_names_the_forward_node_it_differentiates(backend):
    # d sqrt(x)/dx = 1/(2 sqrt(x)) is inf at 0, while the forward pass is finite
    g = gradc.grad(sqrt_model, backend=backend, debug_nans=True)
    with pytest.raises(gradc.NonFiniteError) as e:
        g(X_ZERO)
    msg = str(e.value)
    m = re.match(r"adjoint node (%\d+) = div %\d+ %\d+ produced inf at index \(1,\)"
                 r".*; it differentiates (%\d+) = sqrt x created at (.*)$", msg)
    assert m, msg
    assert m.group(3) == _line("NAN-SQRT")
    graph = g.lower(X_ZERO).graph            # the ids are those of the graph that ran
    assert graph[int(m.group(2)[1:])]["op"] == "sqrt"
    assert graph[int(m.group(1)[1:])]["role"] == "adjoint"


@pytest.mark.parametrize("backend", BACKENDS)
def test_ids_refer_to_the_graph_that_ran_after_rewrites(backend):
    g = gradc.grad(rewritten, backend=backend, debug_nans=True)
    with pytest.raises(gradc.NonFiniteError) as e:
        g(X_ZERO)
    m = re.search(r"it differentiates %(\d+) = sqrt %(\d+) created at (.*)$", str(e.value))
    assert m, str(e.value)
    graph = g.lower(X_ZERO).graph
    assert graph[int(m.group(1))]["op"] == "sqrt"
    assert graph[int(m.group(2))]["op"] == "mul"
    assert m.group(3) == _line("NAN-SQRT2")


@pytest.mark.parametrize("backend", BACKENDS)
def test_first_node_in_execution_order_wins(backend):
    with pytest.raises(gradc.NonFiniteError, match=re.escape(_line("FIRST-SOURCE"))):
        gradc.value_and_grad(two_sources, backend=backend, debug_nans=True)(X_NEG)


@pytest.mark.parametrize("backend", BACKENDS)
def test_global_config_and_toggling(backend):
    vg = gradc.value_and_grad(log_model, backend=backend)
    for _ in range(2):                       # compiled, then the fast path
        v, _g = vg(X_NEG)
        assert np.isnan(v)                   # off: nothing is checked
    old = gradc.config(debug_nans=True)
    assert old == {"debug_nans": False}
    with pytest.raises(gradc.NonFiniteError, match="forward node"):
        vg(X_NEG)
    with pytest.raises(gradc.NonFiniteError):
        gradc.jit(log_model, backend=backend)(X_NEG)
    gradc.config(debug_nans=False)
    assert np.isnan(vg(X_NEG)[0])            # off again
    # an explicit debug_nans= wins over the global setting
    gradc.config(debug_nans=True)
    assert np.isnan(gradc.value_and_grad(log_model, backend=backend, debug_nans=False)(X_NEG)[0])


def test_unchecked_llvm_uses_the_native_fast_path():
    vg = gradc.value_and_grad(log_model, backend="llvm")
    vg(X_NEG)
    vg(X_NEG)
    low = vg.lower(X_NEG)
    assert getattr(low._entry.run, "artifact", None) is not None      # native code
    assert not getattr(low._entry.run, "debug_nans", False)
    assert "define" in low.llvm_ir()
    try:
        from gradc import _callpath  # noqa: F401
    except ImportError:
        pytest.skip("C call path not built")
    assert vg._fast is not None                                        # the C fast path
    checked = gradc.value_and_grad(log_model, backend="llvm", debug_nans=True)
    with pytest.raises(gradc.NonFiniteError):
        checked(X_NEG)
    assert checked._fast is None
    assert checked.lower(X_NEG)._entry.run.debug_nans is True


@pytest.mark.parametrize("backend", BACKENDS)
def test_finite_values_pass_and_agree(backend):
    x = np.array([0.5, 1.0, 2.0])
    got = gradc.value_and_grad(sqrt_model, backend=backend, debug_nans=True)(x)
    want = gradc.value_and_grad(sqrt_model, backend=backend)(x)
    np.testing.assert_allclose(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_log1p_of_minus_one_in_the_neuron(backend):
    w, X = np.array([1.0, -1.0]), np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.5]])
    with pytest.raises(gradc.NonFiniteError) as e:
        gradc.value_and_grad(neuron_log, backend=backend, debug_nans=True)(w, X)
    msg = str(e.value)
    assert re.match(r"forward node %\d+ = log1p %\d+ produced -inf at index \(1,\)", msg), msg
    assert msg.endswith(_line("NAN-LOG1P"))


def test_non_finite_argument():
    with pytest.raises(gradc.NonFiniteError, match=r"argument x contains non-finite values \(first at index \(2,\)\)"):
        gradc.grad(sqrt_model, debug_nans=True, backend="llvm")(np.array([1.0, 2.0, np.inf]))
