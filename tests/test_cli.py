"""The gradc command line: gradc.cli.main in-process, and once as a real process."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gradc
from gradc import cli, demo
from gradc.typespec import TypeSpecError, parse_type, parse_types, split_types

REPO = os.path.dirname(os.path.dirname(os.path.abspath(gradc.__file__)))
LOSS_TYPES = ["f64[d]", "f64[]", "f64[n,d]", "f64[n]"]

MODEL = textwrap.dedent("""\
    import gradc.numpy as np

    def loss(w, b, X, y):
        z = X @ w + b
        return np.mean((y - np.maximum(0.0, z)) ** 2)

    def mismatch(w, X):
        return np.sum(X @ w)

    def branch(x):
        if np.sum(x) > 0:
            return np.sum(x)
        return -np.sum(x)

    def crash(x):
        raise ValueError("a bug in the model")

    def fanout(x):
        z = np.sin(x)
        return np.sum(z * z + z)

    not_a_function = 3
    """)


@pytest.fixture
def model(tmp_path):
    p = tmp_path / "model.py"
    p.write_text(MODEL)
    return str(p)


def run(capsys, *argv):
    """(exit code, stdout, stderr) of gradc.cli.main(argv)."""
    try:
        code = cli.main(list(argv))
    except SystemExit as e:          # argparse: --help, usage errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, out, err, *fragments):
    assert code != 0
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("gradc: error: "), err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


# ----------------------------------------------------------------------------- demo
def test_demo_in_process(capsys):
    code, out, err = run(capsys, "demo")
    assert code == 0, out + err
    assert "== forward graph" in out and "== adjoint graph" in out
    assert "graph loss(" in out and "graph loss_vjp(" in out
    assert "-- adjoint --" in out
    assert "closed form" in out and "max |difference|" in out
    assert "OK, gradc matches the closed form" in out
    assert "neuron.py:4" in out            # graph nodes point at the model's lines


def test_demo_data_has_active_and_inactive_samples():
    w, b, X, y = demo.data()
    z = X @ w + b
    assert 0 < (z > 0).sum() < len(z)
    assert np.min(np.abs(z)) > 1e-6         # no ties at the kink


def test_demo_closed_form_matches_gradc():
    w, b, X, y = demo.data()
    c, dw, db, _ = demo.closed_form(w, b, X, y)
    c2, (dw2, db2) = gradc.value_and_grad(demo.loss, argnums=(0, 1))(w, b, X, y)
    np.testing.assert_allclose(dw2, dw, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(db2, db, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(c2, c, rtol=1e-12)


def test_demo_reports_a_mismatch(monkeypatch):
    import io
    real = demo.closed_form

    def wrong(*a):
        c, dw, db, act = real(*a)
        return c, dw + 1e-6, db, act
    monkeypatch.setattr(demo, "closed_form", wrong)
    buf = io.StringIO()
    assert demo.run(buf) == 1
    assert "MISMATCH" in buf.getvalue()


def test_demo_unknown_backend_is_one_line(capsys):
    code, out, err = run(capsys, "demo", "--backend", "nosuch")
    assert_one_line_error(code, out, err, "nosuch")


# ----------------------------------------------------------------------------- graph
def test_graph_text(capsys, model):
    code, out, err = run(capsys, "graph", f"{model}:loss", *LOSS_TYPES)
    assert code == 0, err
    assert out.startswith("graph loss(w: f64[")
    assert "matmul X w" in out and "maximum" in out
    assert "-- adjoint --" not in out


def test_graph_adjoint_wrt(capsys, model):
    code, out, err = run(capsys, "graph", f"{model}:loss", *LOSS_TYPES, "--adjoint", "--wrt", "0,1")
    assert code == 0, err
    assert "graph loss_vjp(" in out and "-- adjoint --" in out
    assert "dw=" in out and "db=" in out
    # names work as well as indices, and --wrt alone implies --adjoint
    code, out2, err = run(capsys, "graph", f"{model}:loss", *LOSS_TYPES, "--wrt", "w,b")
    assert code == 0, err
    assert out2 == out


def test_graph_adjoint_default_wrt_is_first_argument(capsys, model):
    code, out, err = run(capsys, "graph", f"{model}:loss", *LOSS_TYPES, "--adjoint")
    assert code == 0, err
    assert "dw=" in out and "db=" not in out


def _provenance_comments(listing):
    return [line.split("    # ", 1)[1] for line in listing.splitlines() if "    # " in line]


def test_graph_adjoint_tags_every_node_with_the_model(capsys, model):
    # z = sin(x) is used three times: the adds summing its cotangents belong to z's line,
    # not to the caller's (here this test; from the console script, its own line)
    code, out, err = run(capsys, "graph", f"{model}:fanout", "f64[n]", "--adjoint")
    assert code == 0, err
    z = re.search(r"(%\d+) = sin x .*# model.py:19$", out, re.M).group(1)
    assert re.search(rf"= add .*# d/d {z} \(model.py:19\)$", out, re.M), out
    tags = _provenance_comments(out)
    assert len(tags) >= 5
    for tag in tags:
        assert re.fullmatch(r"(d/d (%\d+|x) \()?model.py:(19|20)\)?|d/d x", tag), (tag, out)


def test_graph_dot_and_output_file(capsys, model, tmp_path):
    code, out, err = run(capsys, "graph", f"{model}:loss", *LOSS_TYPES, "--format", "dot")
    assert code == 0, err
    assert out.startswith('digraph "loss"') and out.rstrip().endswith("}")
    target = tmp_path / "g.dot"
    code, out2, err = run(capsys, "graph", f"{model}:loss", *LOSS_TYPES, "--format", "dot", "-o", str(target))
    assert code == 0 and out2 == ""
    assert target.read_text() == out


def test_graph_types_in_one_word(capsys, model):
    code, out, err = run(capsys, "graph", f"{model}:loss", "f64[d] f64[] f64[n, d] f64[n]")
    assert code == 0, err
    assert out.startswith("graph loss(")


def test_graph_svg_without_graphviz(capsys, model, monkeypatch):
    monkeypatch.setattr(cli.shutil, "which", lambda name: None)
    code, out, err = run(capsys, "graph", f"{model}:loss", *LOSS_TYPES, "--format", "svg")
    assert code == 2
    assert_one_line_error(code, out, err, "apt-get install graphviz")


@pytest.mark.skipif(not cli.shutil.which("dot"), reason="Graphviz dot is not installed")
def test_graph_svg_with_graphviz(capsys, model, tmp_path):
    code, out, err = run(capsys, "graph", f"{model}:loss", *LOSS_TYPES, "--format", "svg")
    assert code == 0, err
    assert "<svg" in out
    png = tmp_path / "g.png"
    code, out, err = run(capsys, "graph", f"{model}:loss", *LOSS_TYPES, "--format", "png", "-o", str(png))
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- ir / asm
@pytest.mark.parametrize("cmd", [["ir"], ["ir", "--raw"], ["asm"], ["asm", "--forward"]])
def test_ir_asm(capsys, model, cmd):
    code, out, err = run(capsys, cmd[0], f"{model}:loss", *LOSS_TYPES, *cmd[1:])
    assert code == 0, err
    assert out.strip()
    if cmd[0] == "ir":
        assert "define" in out
    else:
        assert "ret" in out      # x86-64 assembly of a function that returns


# ----------------------------------------------------------------------------- size names
LAYER = textwrap.dedent("""\
    import gradc.numpy as np

    def layer(W, X):
        return np.tanh(X @ W)

    def cost(W, X):
        return np.sum(layer(W, X) ** 2)
    """)


@pytest.fixture
def layer_model(tmp_path):
    p = tmp_path / "layer.py"
    p.write_text(LAYER)
    return str(p)


@pytest.mark.parametrize("types, result", [
    (["f64[d,h] f64[n,d]"], "f64[n,h]"),
    (["f64[feat,hidden]", "f64[batch,feat]"], "f64[batch,hidden]"),   # names gradc never picks
    (["f32[d,10]", "f32[n,d]"], "f32[n,10]"),                           # a number is a fixed size
])
def test_graph_keeps_the_size_names(capsys, layer_model, types, result):
    code, out, err = run(capsys, "graph", f"{layer_model}:layer", *types)
    assert code == 0, err
    w, x = split_types(types)
    assert out.splitlines()[0] == f"graph layer(W: {w}, X: {x}) -> ({result})"
    assert f"matmul X W                               : {result}" in out


def test_adjoint_graph_and_explain_keep_the_size_names(capsys, layer_model, model):
    code, out, err = run(capsys, "graph", f"{layer_model}:cost", "f64[d,h] f64[n,d]", "--wrt", "W")
    assert code == 0, err
    assert out.splitlines()[0] == "graph cost_vjp(W: f64[d,h], X: f64[n,d]) -> (f64[], f64[d,h])"
    code, out, err = run(capsys, "explain", f"{model}:loss", "f64[p]", "f64[]", "f64[s,p]", "f64[s]", "--wrt", "w,b")
    assert code == 0, err
    assert out.startswith("loss(w: f64[p], b: f64[], X: f64[s,p], y: f64[s]) -> f64[]")


def test_shape_errors_use_the_size_names(capsys, model):
    code, out, err = run(capsys, "graph", f"{model}:mismatch", "f64[d]", "f64[n,e]")
    assert_one_line_error(code, out, err, "matmul(f64[n,e], f64[d])",
                          "the left operand has e columns, the right operand d rows", "model.py:8")
    # called from Python, gradc chose the names, so the message shows the sizes
    with pytest.raises(gradc.ShapeError, match=r"matmul\(f64\[4,3\], f64\[2\]\).* 3 columns, .* 2 rows"):
        gradc.jit(lambda w, X: X @ w)(np.ones(2), np.ones((4, 3)))


@pytest.mark.parametrize("cmd, what", [("ir", "LLVM IR"), ("asm", "assembly"), ("c", "C")])
def test_a_gradient_of_an_array_result_suggests_forward(capsys, layer_model, cmd, what):
    code, out, err = run(capsys, cmd, f"{layer_model}:layer", "f64[d,h] f64[n,d]")
    assert_one_line_error(code, out, err, "layer returns f64[n,h], not a scalar",
                          f"add --forward to see the {what} of the function itself")
    assert "use jacobian or vjp" not in err
    code, out, err = run(capsys, cmd, f"{layer_model}:layer", "f64[d,h] f64[n,d]", "--forward")
    assert code == 0, err
    assert {"ir": "define", "asm": "ret", "c": "tanh("}[cmd] in out
    code, out, err = run(capsys, "graph", f"{layer_model}:layer", "f64[d,h] f64[n,d]", "--adjoint")
    assert_one_line_error(code, out, err, "not a scalar", "drop --adjoint and --wrt")


TREE_MODEL = textwrap.dedent("""\
    import gradc.numpy as np

    def mlp(params, X, y):
        h = np.tanh(X @ params["W1"] + params["b1"])
        return np.mean((h @ params["W2"] + params["b2"] - y) ** 2)

    def pair(wb, X):
        w, b = wb
        return np.sum((X @ w + b) ** 2)
    """)
TREE = "{W1: f64[d,h], b1: f64[h], W2: f64[h], b2: f64[]}"
TREE_INPUTS = "params_W1: f64[d,h], params_W2: f64[h], params_b1: f64[h], params_b2: f64[], X: f64[n,d], y: f64[n]"


@pytest.fixture
def tree_model(tmp_path):
    p = tmp_path / "trees.py"
    p.write_text(TREE_MODEL)
    return str(p)


def test_every_command_takes_trees_of_types(capsys, tree_model):
    """graph, ir, asm, c and explain take the tree syntax gradc build takes: each leaf is
    an input named by its path, and --wrt selects whole trees."""
    code, out, err = run(capsys, "graph", f"{tree_model}:mlp", TREE, "f64[n,d]", "f64[n]")
    assert code == 0, err
    assert out.splitlines()[0] == f"graph mlp({TREE_INPUTS}) -> (f64[])"
    code, out, err = run(capsys, "graph", f"{tree_model}:mlp", TREE, "f64[n,d] f64[n]", "--wrt", "params")
    assert code == 0, err
    assert out.splitlines()[0] == f"graph mlp_vjp({TREE_INPUTS}) -> (f64[], f64[d,h], f64[h], f64[h], f64[])"
    code, out, err = run(capsys, "c", f"{tree_model}:mlp", TREE, "f64[n,d]", "f64[n]", "--wrt", "X,params")
    assert code == 0, err
    assert f"graph mlp_vjp({TREE_INPUTS}) -> (f64[], f64[n,d], f64[d,h], f64[h], f64[h], f64[])" in out
    code, out, err = run(capsys, "ir", f"{tree_model}:mlp", TREE, "f64[n,d]", "f64[n]", "--loops")
    assert code == 0, err
    assert "params_W1" in out
    code, out, err = run(capsys, "asm", f"{tree_model}:mlp", TREE, "f64[n,d]", "f64[n]")
    assert code == 0 and "ret" in out, err
    code, out, err = run(capsys, "explain", f"{tree_model}:pair", "(f64[d], f64[])", "f64[n,d]", "--wrt", "wb")
    assert code == 0, err
    assert out.startswith("pair(wb_0: f64[d], wb_1: f64[], X: f64[n,d]) -> f64[]: the derivative of C "
                          "with respect to wb_0, wb_1")


def test_the_cli_graph_of_a_tree_is_the_python_one(capsys, tree_model):
    """The adjoint graph `gradc graph` prints for a tree of types computes what
    gradc.value_and_grad computes for a dict of arrays (run by the numpy evaluator on
    the same arrays; the oracle is the gradient written out in numpy)."""
    import argparse

    from gradc.cli_args import target
    from gradc.evaluate import evaluate
    args = argparse.Namespace(target=f"{tree_model}:mlp", types=[TREE, "f64[n,d]", "f64[n]"], size=["n=6", "d=3", "h=4"])
    fn, specs, flat = target(args)
    vg = gradc.value_and_grad(fn, backend="numpy")
    graph = vg.build(specs, flat.names, flat)[2]
    r = np.random.default_rng(0)
    p = {"W1": r.standard_normal((3, 4)), "b1": r.standard_normal(4), "W2": r.standard_normal(4), "b2": 0.5}
    X, y = r.standard_normal((6, 3)), r.standard_normal(6)
    outs = evaluate(graph, [p["W1"], p["W2"], p["b1"], np.asarray(p["b2"]), X, y])
    h = np.tanh(X @ p["W1"] + p["b1"])
    e = h @ p["W2"] + p["b2"] - y
    d = 2 * e / 6
    dz = np.outer(d, p["W2"]) * (1 - h ** 2)
    want = [np.mean(e ** 2), X.T @ dz, h.T @ d, dz.sum(0), d.sum()]
    for got, ref in zip(outs, want):     # float64, a handful of terms: rounding only
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("argv, fragments", [
    (["graph", "{m}:mlp", "{{W1: f64[d,h], b1: f64[h]", "f64[n,d]"], ["expected ',' or '}'", "at character"]),
    (["graph", "{m}:mlp", "{{W1: f64[d,h]}}"], ["takes 3 arguments", "1 type was given"]),
    (["graph", "{m}:mlp", "{{W1 f64[d,h]}}", "f64[n,d]", "f64[n]"], ["expected ':' after a key"]),
    (["explain", "{m}:mlp", "{{W1: f65[d,h]}}", "f64[n,d]", "f64[n]"], ["unknown dtype 'f65'"]),
    (["c", "{m}:mlp", "{{W1: f64[d,h], b1: f64[h], W2: f64[h], b2: f64[]}}", "f64[n,e]", "f64[n]"],
     ["matmul(f64[n,e], f64[d,h])", "trees.py:4"]),
])
def test_tree_errors_are_one_line(capsys, tree_model, argv, fragments):
    code, out, err = run(capsys, *[a.format(m=tree_model) for a in argv])
    assert_one_line_error(code, out, err, *fragments)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("argv, fragments", [
    (["graph", "{tmp}/nope.py:loss", "f64[n]"], ["nope.py", "does not exist"]),
    (["graph", "{model}:nosuch", "f64[n]"], ["no function named 'nosuch'", "loss"]),
    (["graph", "{model}:not_a_function", "f64[n]"], ["not a function"]),
    (["graph", "{model}", "f64[n]"], ["FILE.py:FUNC"]),
    (["graph", "{model}:loss", "f65[d]"], ["unknown dtype 'f65'"]),
    (["graph", "{model}:loss", "f64[d"], ["bad type 'f64[d'"]),
    (["graph", "{model}:loss", "f64[d]"], ["takes 4 arguments", "1 type was given"]),
    (["graph", "{model}:mismatch", "f64[d]", "f64[n,e]"], ["matmul", "model.py:8"]),
    (["graph", "{model}:branch", "f64[n]"], ["traced value", "model.py:11"]),
    (["graph", "{model}:crash", "f64[n]"], ["ValueError: a bug in the model", "model.py:16"]),
    (["graph", "{model}:loss", *LOSS_TYPES, "--wrt", "q"], ["--wrt", "'q'", "w, b, X, y"]),
    (["graph", "{model}:loss", *LOSS_TYPES, "--wrt", "9"], ["argnums 9"]),
    (["graph", "{model}:loss", *LOSS_TYPES, "--size", "n=0"], ["--size"]),
    (["graph", "{model}:loss", "f64[d]", "f64[]", "f64[n,d,k,l,m,o,p,q,r]", "f64[n]"], ["rank 9", "0 to 8"]),
    (["graph", "{model}:loss"], ["required", "TYPES"]),
    (["graph", "{model}:loss", *LOSS_TYPES, "--format", "gif"], ["invalid choice"]),
    (["nosuchcommand"], ["invalid choice"]),
])
def test_errors_are_one_line(capsys, model, tmp_path, argv, fragments):
    argv = [a.format(tmp=tmp_path, model=model) for a in argv]
    code, out, err = run(capsys, *argv)
    assert_one_line_error(code, out, err, *fragments)
    assert code == 2


def test_load_errors_are_one_line(capsys, tmp_path):
    (tmp_path / "syntax.py").write_text("def f(x:\n")
    (tmp_path / "imports.py").write_text("import no_such_module_gradc\n")
    code, out, err = run(capsys, "graph", f"{tmp_path}/syntax.py:f", "f64[n]")
    assert_one_line_error(code, out, err, "syntax.py:1", "syntax error")
    code, out, err = run(capsys, "graph", f"{tmp_path}/imports.py:f", "f64[n]")
    assert_one_line_error(code, out, err, "ModuleNotFoundError", "imports.py:1")


def test_traceback_flag_shows_the_exception(capsys, model):
    with pytest.raises(ValueError, match="a bug in the model"):
        cli.main(["graph", f"{model}:crash", "f64[n]", "--traceback"])
    with pytest.raises(ValueError):
        cli.main(["--traceback", "graph", f"{model}:crash", "f64[n]"])


def test_no_command_prints_help(capsys):
    code, out, err = run(capsys)
    assert code == 2 and "demo" in err and "graph" in err


@pytest.mark.parametrize("cmd", [[], ["demo"], ["graph"], ["ir"], ["asm"]])
def test_help_everywhere(capsys, cmd):
    code, out, err = run(capsys, *cmd, "--help")
    assert code == 0
    assert out.startswith("usage: gradc")


def test_every_command_is_registered():
    names = set(cli.build_parser()._subparsers._group_actions[0].choices)
    assert {"demo", "graph", "ir", "asm"} <= names
    assert len(cli.COMMANDS) == len(names)


# ----------------------------------------------------------------------------- TYPES
def test_parse_types_shapes_and_dtypes():
    a = parse_types(["f64[n,d]", "f64[d]", "f64[]", "f32[n]", "i64[n]", "i32[2]", "bool[k]"])
    assert [x.shape for x in a] == [(8, 3), (3,), (), (8,), (8,), (2,), (4,)]
    assert [x.dtype for x in a] == [np.float64, np.float64, np.float64, np.float32, np.int64,
                                    np.int32, np.bool_]
    assert all(isinstance(x, np.ndarray) for x in a)
    assert a[4].min() >= 0 and a[4].max() < 3 and a[5].min() >= 0 and a[5].max() < 3


def test_parse_types_deterministic_and_distinct():
    a, b = parse_types(["f64[n,d]"]), parse_types(["f64[n,d]"])
    np.testing.assert_array_equal(a[0], b[0])
    letters = [f"f64[{c}]" for c in "abcdefghijklmnopq"]
    sizes = [x.shape[0] for x in parse_types(letters)]
    assert len(set(sizes)) == len(sizes) and 1 not in sizes
    # a named size never takes a fixed size of the list
    s = parse_types(["f64[8]", "f64[n]", "f64[3]", "f64[d]"])
    assert s[1].shape[0] not in (8, 3) and s[3].shape[0] not in (8, 3, s[1].shape[0])


def test_parse_types_sizes_and_spellings():
    assert parse_types(["f64[n]"], sizes={"n": 100})[0].shape == (100,)
    assert parse_types(["f64"])[0].shape == ()
    assert split_types(["f64[n, d] f64[d]", "f64[]"]) == ["f64[n,d]", "f64[d]", "f64[]"]
    assert parse_type("f32[ n , 3 ]") == (np.dtype(np.float32), ("n", 3))
    assert parse_type("i64[batch_1]") == (np.dtype(np.int64), ("batch_1",))


@pytest.mark.parametrize("bad, fragment", [
    ("f65[n]", "unknown dtype"), ("float64[n]", "did you mean f64"), ("f64[n", "unbalanced"),
    ("f64[n]]", "unbalanced"), ("f64[n,]", "empty dimension"), ("f64[0]", "size 0"),
    ("f64[-2]", "neither a positive number"), ("f64[2x]", "neither a positive number"),
    ("[n]", "expected DTYPE[DIMS]"), ("f64(n)", "expected DTYPE[DIMS]"),
])
def test_parse_types_errors(bad, fragment):
    with pytest.raises(TypeSpecError, match=None) as e:
        parse_types([bad])
    assert fragment in str(e.value)
    assert isinstance(e.value, gradc.GradcError)


def test_parse_types_unknown_size_name():
    with pytest.raises(TypeSpecError, match="no type uses it"):
        parse_types(["f64[n]"], sizes={"q": 3})


# ----------------------------------------------------------------------------- a real process
def _gradc_command():
    import shutil
    exe = shutil.which("gradc")
    if exe and os.path.dirname(exe) == os.path.dirname(sys.executable):
        return [exe]
    return [sys.executable, "-m", "gradc.cli"]


def test_subprocess_graph_adjoint_names_the_models_lines(model):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run(_gradc_command() + ["graph", f"{model}:fanout", "f64[n]", "--adjoint"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    tags = _provenance_comments(r.stdout)
    assert len(tags) >= 5 and all("model.py:" in t or t == "d/d x" for t in tags), r.stdout


def test_subprocess_demo_and_error(model):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run(_gradc_command() + ["demo"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "closed form" in r.stdout and "OK, gradc matches the closed form" in r.stdout
    r = subprocess.run(_gradc_command() + ["graph", f"{model}:loss", "f64[d", "f64[]"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert r.stderr.startswith("gradc: error: bad type") and "Traceback" not in r.stderr
