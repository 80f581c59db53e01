"""gradc.explain / Lowered.explain / gradc explain: the derivative read off the adjoint
graph, in the paper's notation."""
import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import gradc
import gradc.numpy as gnp
from gradc import cli
from gradc.explain import Renderer, simp, Add, Mul, Num, Sym, Pow, Fn, Ind, Cmp, Sum

RNG = np.random.default_rng(0)
X = RNG.normal(size=(8, 3))
Y = RNG.normal(size=8)
W = np.array([0.5, -0.2, 0.1])
B = 0.3


def loss(w, b, X, y):
    z = X @ w + b
    a = gnp.maximum(0.0, z)
    e = a - y
    return gnp.mean(e ** 2)


def loss_one_line(w, b, X, y):
    return gnp.mean((gnp.relu(X @ w + b) - y) ** 2)


def loss_readme(w, b, X, y):
    return gnp.mean((y - gnp.maximum(0.0, X @ w + b)) ** 2)


def activation(w, b, x):
    return gnp.maximum(0.0, gnp.dot(w, x) + b)


def xent(W, X, labels):
    S = X @ W
    return gnp.mean(gnp.logsumexp(S, axis=1) - gnp.take_along_axis(S, labels[:, None], axis=1)[:, 0])


def logistic(w, b, X, y):
    return gnp.mean(gnp.log1p(gnp.exp(-y * (X @ w + b))))


def mlp(W1, b1, W2, b2, X, Y):
    return gnp.mean((gnp.relu(X @ W1 + b1) @ W2 + b2 - Y) ** 2)


NEURON_DW = "dC/dw = 2/N · Σ_i 1[z_i > 0] (z_i − y_i) x_iᵀ"
NEURON_DB = "dC/db = 2/N · Σ_i 1[z_i > 0] (z_i − y_i)"


@pytest.mark.parametrize("f", [loss, loss_one_line, loss_readme])
def test_neuron_loss_reads_like_the_paper(f):
    ex = gradc.explain(f, W, B, X, Y, argnums=(0, 1))
    text = str(ex)
    lines = [x.strip() for x in text.splitlines()]
    if f is loss_readme:   # (y − max(0, z))²: the same gradient, written with e = y − a
        assert "dC/dw = −2/N · Σ_i 1[z_i > 0] (y_i − z_i) x_iᵀ" in lines or NEURON_DW in lines, text
    else:
        assert NEURON_DW in lines and NEURON_DB in lines, text
        assert ex.gradients == {"w": NEURON_DW.split(" = ")[1], "b": NEURON_DB.split(" = ")[1]}
    assert "with z_i = w·x_i + b" in lines, text
    for rule in ("the max(0, z) case split ⇒ indicator 1[z > 0]", "scalar expansion ⇒ sum",
                 "sum reduction ⇒ 1ᵀ", "matrix-vector product X w ⇒ Xᵀ g", "diagonal Jacobian",
                 "vector chain rule", "mean = sum/N ⇒ 1/N"):
        assert rule in text, (rule, text)


def test_neuron_steps_and_names():
    text = str(gradc.explain(loss, W, B, X, Y, argnums=(0, 1)))
    for line in ("z_i = w·x_i + b", "a_i = max(0, z_i)", "e_i = a_i − y_i", "C   = 1/N · Σ_i e_i²",
                 "∂C/∂e_i = 2/N · e_i", "∂C/∂z_i = 2/N · 1[z_i > 0] e_i",
                 "∂C/∂w   = 2/N · Σ_i 1[z_i > 0] e_i x_iᵀ"):
        assert line in text, (line, text)


def test_user_variable_names_are_used():
    def cost(w, b, X, y):
        pre = X @ w + b
        act = gnp.maximum(0.0, pre)
        return gnp.mean((act - y) ** 2)
    text = str(gradc.explain(cost, W, B, X, Y, argnums=(0, 1)))
    assert "pre_i = w·x_i + b" in text and "act_i = max(0, pre_i)" in text, text
    assert "dC/dw = 2/N · Σ_i 1[pre_i > 0] (pre_i − y_i) x_iᵀ" in text, text


@pytest.mark.parametrize("f, want", [
    (lambda x: gnp.sin(x ** 2), "2x cos(x²)"),
    (lambda x: gnp.log(x ** 2), "2/x"),
    (lambda x: gnp.log(gnp.sin(x ** 3) ** 2), "6x² cos(x³)/sin(x³)"),
    (lambda x: x + x ** 2, "1 + 2x"),
    (lambda x: gnp.sin(x + x ** 2), "cos(x + x²) (1 + 2x)"),
    (lambda x: x * x ** 2, "3x²"),
    (lambda x: 3 * x ** 2, "6x"),
    (lambda x: gnp.exp(-x * x), "−2x exp(−x²)"),
])
def test_single_variable_chain_rules(f, want):
    assert gradc.explain(f, 0.7).gradients == {"x": want}


def test_chain_rule_steps_name_the_intermediates():
    text = str(gradc.explain(lambda x: gnp.log(gnp.sin(x ** 3) ** 2), 0.7))
    for line in ("u1 = x³", "u2 = sin(u1)", "u3 = u2²", "f  = ln(u3)", "∂f/∂u3 = 1/u3",
                 "element-wise sin ⇒ diagonal Jacobian diag(cos u1)", "power rule ⇒ diagonal Jacobian diag(3x²)"):
        assert line in text, (line, text)


def test_partial_derivatives():
    g = gradc.explain(lambda x, y: 3 * x ** 2 * y, 0.5, 2.0, argnums=(0, 1)).gradients
    assert g == {"x": "6x y", "y": "3x²"}
    assert gradc.explain(lambda x, y: 2 * x + y ** 8, 0.5, 2.0, argnums=(0, 1)).gradients == {"x": "2", "y": "8y⁷"}


def test_neuron_activation():
    ex = gradc.explain(activation, W, B, np.array([1.0, 0.5, 2.0]), argnums=(0, 1))
    assert ex.gradients == {"w": "1[w·x + b > 0] xᵀ", "b": "1[w·x + b > 0]"}
    assert "z = w·x + b" in str(ex)


def test_softmax_cross_entropy():
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    ex = gradc.explain(xent, RNG.normal(size=(3, 4)), X, labels)
    assert ex.gradients == {"W": "1/N · Σ_i x_i (softmax(Wᵀ x_i) − onehot(labels_i))ᵀ"}, str(ex)
    assert "logsumexp ⇒ softmax" in str(ex) and "C   = 1/N · Σ_i (logsumexp(S_i) − S_i[labels_i])" in str(ex)


def test_logistic_regression():
    ex = gradc.explain(logistic, W, B, X, np.sign(Y), argnums=(0, 1))
    assert ex.gradients["w"] == "−1/N · Σ_i y_i σ(−y_i (w·x_i + b)) x_iᵀ", str(ex)


def test_mlp_keeps_the_layer_names():
    ex = gradc.explain(mlp, RNG.normal(size=(3, 4)), np.zeros(4), RNG.normal(size=(4, 2)), np.zeros(2),
                       X, RNG.normal(size=(8, 2)), argnums=(0, 1, 2, 3))
    text = str(ex)
    assert ex.gradients["W2"] == "2/(N q) · Σ_i a_i e_iᵀ" or "Σ_i a_i e_iᵀ" in ex.gradients["W2"], text
    assert "1[z1_i > 0]" in ex.gradients["W1"] and "e_i = W2ᵀ a_i + b2 − y_i" in text, text


def test_vector_functions_jacobian():
    ex = gradc.explain(lambda x: gnp.stack([gnp.log(x ** 2), gnp.sin(3 * x)]), 0.7)
    assert ex.gradients == {"x": "[2/x, 3 cos(3x)]"}
    ex = gradc.explain(lambda x: gnp.sin(x ** 2), np.array([0.1, 0.2, 0.3]))
    assert ex.gradients == {"x": "2x_i cos(x_i²)"} and "diagonal" in str(ex)


def test_latex():
    tex = gradc.explain(loss, W, B, X, Y, argnums=(0, 1)).latex()
    assert r"\frac{dC}{dw} &= \frac{2}{N} \cdot \sum_i \mathbb{1}[z_{i} > 0]" in tex, tex
    assert r"x_{i}^\top" in tex and r"\begin{aligned}" in tex and "Σ" not in tex.split("% result")[1]


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_lowered_explain(backend):
    low = gradc.value_and_grad(loss_one_line, argnums=(0, 1), backend=backend).lower(W, B, X, Y)
    ex = low.explain()
    assert NEURON_DW in str(ex)
    assert r"\sum_i" in low.explain(latex=True)
    # grad (no value kept) and jit (explained w.r.t. every float argument)
    assert gradc.grad(loss_one_line, argnums=1, backend=backend).lower(W, B, X, Y).explain().gradients == \
        {"b": NEURON_DB.split(" = ")[1]}
    assert set(gradc.jit(loss_one_line, backend=backend).lower(W, B, X, Y).explain().gradients) == {"w", "b", "X", "y"}


def test_cli_explain(tmp_path, capsys):
    model = tmp_path / "model.py"
    model.write_text("import gradc.numpy as np\n\n"
                     "def loss(w, b, X, y):\n"
                     "    return np.mean((np.maximum(0.0, X @ w + b) - y) ** 2)\n")
    rc = cli.main(["explain", f"{model}:loss", "f64[d]", "f64[]", "f64[n,d]", "f64[n]", "--wrt", "w,b"])
    out = capsys.readouterr().out
    assert rc == 0 and NEURON_DW in out and NEURON_DB in out, out
    rc = cli.main(["explain", f"{model}:loss", "f64[d] f64[] f64[n,d] f64[n]", "--wrt", "0,1", "--latex"])
    out = capsys.readouterr().out
    assert rc == 0 and r"\frac{dC}{dw}" in out
    rc = cli.main(["explain", f"{model}:nothere", "f64[]"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("gradc: error:") and "no function named 'nothere'" in err


def test_simplifier_and_renderer():
    R = Renderer()
    N = Sym("N", kind="size")
    z, y, x = Sym("z", True), Sym("y", True), Sym("x", True, 1)
    body = Mul((Ind(Cmp(">", z, Num(0.0))), Add((Fn("max", (Num(0.0), z)), Mul((Num(-1.0), y))))))
    e = simp(Mul((Num(2.0), Pow(N, Num(-1.0)), Sum(body))))
    assert R(e) == "2/N · Σ_i 1[z_i > 0] (z_i − y_i)"
    assert R(simp(Mul((Num(-1.0), Add((y, Mul((Num(-1.0), z)))))))) == "z_i − y_i"
    assert R(simp(Add((Mul((Num(2.0), x)), Mul((Num(3.0), x)))))) == "5x_i"
    assert R(simp(Mul((Sym("a"), Pow(Sym("a"), Num(-2.0)))))) == "1/a"


UNARY = [gnp.sin, gnp.cos, gnp.exp, gnp.tanh, gnp.sigmoid, gnp.softplus, gnp.relu, gnp.abs,
         lambda v: gnp.log1p(v * v), lambda v: gnp.sqrt(v * v + 1.0), lambda v: v ** 3,
         lambda v: gnp.maximum(v, 0.5), lambda v: gnp.where(v > 0, v, 2 * v)]
BINARY = [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / (b * b + 1.0)]


@settings(max_examples=20)
@given(st.lists(st.tuples(st.integers(0, len(UNARY) - 1), st.integers(0, len(BINARY) - 1),
                          st.integers(0, 2)), min_size=1, max_size=5), st.integers(0, 3))
def test_arbitrary_models_never_crash(prog, tail):
    def f(x, w, X):
        vals = [x, X @ w, gnp.sin(x)]
        for u, b, k in prog:
            vals.append(BINARY[b](UNARY[u](vals[-1]), vals[k]))
        out = vals[-1]
        return [gnp.sum(out), gnp.mean(out ** 2), gnp.max(out), gnp.logsumexp(out)][tail]
    xs = np.linspace(-1, 1, 5)
    ex = gradc.explain(f, xs, np.ones(3) / 3, RNG.normal(size=(5, 3)), argnums=(0, 1))
    text, tex = str(ex), ex.latex()
    assert "unrenderable" not in text and "steps not shown" not in text, text
    assert set(ex.gradients) == {"x", "w"} and all(ex.gradients.values())
    assert tex.count(r"\begin{aligned}") == 3


def test_other_ops_have_a_generic_rendering():
    def f(x):
        return gnp.sum(gnp.reshape(x, (2, -1)) ** 3) + gnp.sum(x[1:] - x[:-1]) + gnp.mean(gnp.concatenate([x, x * 2]))
    ex = gradc.explain(f, np.arange(1.0, 5.0))
    assert re.search(r"reshape\(", ex.gradients["x"]), str(ex)


# ----------------------------------------------------------------------------- notation on the op
def test_every_elementwise_op_declares_its_notation():
    from gradc.ops import OPS
    # cast and stop_gradient are read through (they do not change the value's notation);
    # where is a case split, written from its operands
    plain = {"cast", "stop_gradient", "where"}
    for name, op in OPS.items():
        if op.kind == "elementwise" and name not in plain:
            assert op.notation is not None, name
        if op.deriv is not None:
            assert "{u}" in op.deriv or op.deriv == "−1", (name, op.deriv)


def test_a_new_op_is_explained_from_its_own_block():
    from gradc.ops import OPS
    from gradc.ops.elementwise import elementwise
    from gradc.tracer import bind
    elementwise("cube_for_test", lambda x: x ** 3, lambda y, x: (3.0 * x * x,),
                notation=lambda m, u: m.pow(u, m.num(3)), deriv="3{u}²")
    try:
        def f(x):
            return gnp.sum(bind("cube_for_test", x))
        text = str(gradc.explain(f, W))
        assert "element-wise cube_for_test ⇒ diagonal Jacobian diag(3x²)" in text, text
        assert "df/dx_i = 3x_i²" in text, text
        np.testing.assert_allclose(gradc.grad(f, backend="numpy")(W), 3 * W ** 2, rtol=1e-12)
    finally:
        del OPS["cube_for_test"]


def test_maximum_of_two_varying_operands_mentions_the_tie_split():
    def both(x, y):
        return gnp.sum(gnp.maximum(2.0 * x, y))

    def against_constant(x):
        return gnp.sum(gnp.maximum(x, 1.0))
    text = str(gradc.explain(both, W, W, argnums=(0, 1)))
    assert "max(u, v) case split ⇒ indicator 1[u > v]; a tie u = v splits it 1/2, 1/2" in text, text
    assert "1/2 · 1[" in text                         # the derivative shows the split itself
    strict = str(gradc.explain(against_constant, W))
    assert "case split ⇒ indicator 1[u > v]" in strict and "tie" not in strict, strict
    # the numbers agree with the text: at a tie each side gets 1/2
    dx, dy = gradc.grad(both, argnums=(0, 1), backend="numpy")(W, 2.0 * W)
    np.testing.assert_array_equal(dx, np.full(3, 1.0))     # 2 · 1/2
    np.testing.assert_array_equal(dy, np.full(3, 0.5))


def test_a_sums_gradient_in_a_matrix_product_is_the_array_of_ones():
    """d/dA sum(A B): the gradient of the sum is 𝟙 (ones), and G Bᵀ with G = 𝟙 is 𝟙 Bᵀ,
    not Bᵀ; the same inside inv's rule −Xᵀ G Xᵀ.  Checked against the closed forms
    numerically too: column i of A gets 𝟙 b_i, and d/dA sum(inv(A)) = −Xᵀ 𝟙 Xᵀ."""
    A, Bm = RNG.normal(size=(3, 4)) + 2 * np.eye(3, 4), RNG.normal(size=(4, 5))
    ex = gradc.explain(lambda A, B: gnp.sum(A @ B), A, Bm)
    assert ex.gradients["A"] == "b_iᵀ 𝟙ᵀ", str(ex)
    np.testing.assert_allclose(gradc.grad(lambda A, B: gnp.sum(A @ B))(A, Bm),
                               np.ones((3, 5)) @ Bm.T, rtol=1e-13)
    S = RNG.normal(size=(3, 3)) + 3 * np.eye(3)
    ex = gradc.explain(lambda A: gnp.sum(gnp.linalg.inv(A)), S)
    assert ex.gradients["A"] == "−inv(A)ᵀ 𝟙 inv(A)ᵀ", str(ex)
    Xi = np.linalg.inv(S)
    np.testing.assert_allclose(gradc.grad(lambda A: gnp.sum(gnp.linalg.inv(A)))(S),
                               -Xi.T @ np.ones((3, 3)) @ Xi.T, rtol=1e-12)
