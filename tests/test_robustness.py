"""Never crash, never wrong: bad input gets a clear Python exception (naming the
argument, what was expected and what came), on the first call *and* on a later call
that goes through the C fast path (``runtime/callpath.c`` Plan) first; odd memory
layouts, sizes 0/1/non-multiples of the vector width, NaN/inf, and pathological traces
give numpy's answer or a clear error, never a segfault.

tests/test_errors.py covers the messages of first calls on the reference evaluator;
here everything runs on the native backend ("llvm") and checks that the fast path
falls back to exactly the same behaviour.
"""
from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as onp
import pytest

import gradc
import gradc.numpy as np
from gradc import ArgumentError, GradcError, ShapeError, TracerBoolError, UnsupportedError
from gradc_helpers import GUARD_PRELUDE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def neuron(w, b, X, y):
    return np.mean((gradc.relu(X @ w + b) - y) ** 2)


def ref_neuron(w, b, X, y):
    return onp.mean((onp.maximum(X @ w + b, 0.0) - y) ** 2)


rng = onp.random.default_rng(0)
W, B, X, Y = rng.normal(size=3), 0.1, rng.normal(size=(5, 3)), rng.normal(size=5)
GOOD = (W, B, X, Y)


def vg(backend="llvm"):
    return gradc.value_and_grad(neuron, argnums=(0, 1), backend=backend)


def raised(fn, *args, **kwargs):
    with pytest.raises(Exception) as e:
        fn(*args, **kwargs)
    return e.value


def same_as_ref(got, ref, rtol=1e-12):
    onp.testing.assert_allclose(got[0], ref[0], rtol=rtol, atol=rtol)
    for g, r in zip(got[1], ref[1]):
        onp.testing.assert_allclose(g, r, rtol=rtol, atol=rtol)


# ----------------------------------------------------------------------------- bad arguments
BAD = {
    # name: (args, exception type, regex the message must match)
    # sizes that disagree: on a first call tracing finds it (ShapeError naming the op, the
    # shapes and the line); once compiled, the call-time check names both arguments
    "size_disagree": ((onp.ones(4), B, X, Y), (ArgumentError, ShapeError),
                      r"argument 'X' has size 3 on axis 1, but argument 'w' has size 4|"
                      r"matmul\(f64\[5,3\], f64\[4\]\).*3 columns.*4 rows"),
    "size_disagree_rows": ((W, B, X, onp.ones(6)), (ArgumentError, ShapeError),
                           r"'y' has size 6.*'X' has size 5|sub\(f64\[5\], f64\[6\]\)"),
    "rank9": ((W, B, onp.ones((5, 3) + (1,) * 7), Y), ArgumentError,
              r"argument 2 \(X\) has rank 9; gradc supports ranks 0 to 8"),
    "complex_scalar": ((W, 1j, X, Y), ArgumentError, r"argument 1 \(b\) is complex"),
    "complex_array": ((W.astype(complex), B, X, Y), ArgumentError, r"argument 0 \(w\) has complex dtype complex128"),
    "str": ((W, "0.1", X, Y), ArgumentError, r"argument 1 \(b\) is a str; expected an array or a number"),
    "str_array": ((W, B, X, onp.array(["a"] * 5)), ArgumentError, r"argument 3 \(y\) has dtype <U1"),
    "object": ((W, object(), X, Y), ArgumentError, r"argument 1 \(b\) has dtype object"),
    "object_array": ((onp.array([1.0, 2.0, 3.0], dtype=object), B, X, Y), ArgumentError,
                     r"argument 0 \(w\) has dtype object"),
    # None is an empty pytree (issue 16): the model receives it and cannot add it
    "None": ((W, None, X, Y), UnsupportedError, r"cannot use None as an operand"),
    "ragged_list": ((W, B, [[1.0, 2.0, 3.0], [1.0]], Y), ArgumentError, r"argument 2 \(X\)"),
    # a differentiated integer array: its gradient is not defined (JAX's rule, issue 16);
    # a literal of Python ints ([1, 2, 3]) is weakly typed and converts, as a number does
    "int_w": ((onp.array([1, 2, 3]), B, X, Y), ArgumentError, r"argument 0 \(w\) is differentiated.*int64"),
    "int32_w": ((onp.array([1, 2, 3], onp.int32), B, X, Y), ArgumentError,
                r"argument 0 \(w\) is differentiated.*int32"),
    "huge_int": ((W, 2 ** 1100, X, Y), ArgumentError, r"argument 1 \(b\) has dtype object"),
    "too_many": ((W, B, X, Y, Y), ArgumentError, r"neuron\(w, b, X, y\): too many positional arguments"),
    "too_few": ((W, B, X), ArgumentError, r"neuron\(w, b, X, y\): missing a required argument: 'y'"),
    "none_at_all": ((), ArgumentError, r"missing a required argument: 'w'"),
    # 0 rows: a (0,3) X with a 5-vector y disagree
    "empty_vs_full": ((W, B, onp.ones((0, 3)), Y), (ArgumentError, ShapeError),
                      r"'y' has size 5.*'X' has size 0|sub\(f64\[0\], f64\[5\]\)"),
}


@pytest.mark.parametrize("case", list(BAD))
@pytest.mark.parametrize("warm", [False, True], ids=["first_call", "after_fast_path"])
def test_bad_arguments_raise_clear_errors(case, warm):
    args, exc, pattern = BAD[case]
    f = vg()
    if warm:
        f(*GOOD)
        assert f._fast is not None, "the C fast path should be installed after a good call"
    e = raised(f, *args)
    assert isinstance(e, exc), f"{type(e).__name__}: {e}"
    assert __import__("re").search(pattern, str(e)), str(e)
    # the function still works afterwards, on the fast path and off it
    same_as_ref(f(*GOOD), vg("numpy")(*GOOD))


@pytest.mark.parametrize("case", list(BAD))
def test_bad_arguments_fast_path_gives_same_error_as_slow_path(case):
    """A compiled function with its C fast path installed raises exactly what the same
    function raises with the fast path switched off (the Python checks alone)."""
    args, _exc, _pattern = BAD[case]
    fast, slow = vg(), vg()
    fast(*GOOD)
    slow(*GOOD)
    assert fast._fast is not None
    slow._fast = None
    e1 = raised(slow._slow_call, args, {})
    e2 = raised(fast, *args)
    assert type(e1) is type(e2) and str(e1) == str(e2)


@pytest.mark.parametrize("warm", [False, True], ids=["first_call", "after_fast_path"])
def test_keyword_arguments(warm):
    f = vg()
    if warm:
        f(*GOOD)
    ref = vg("numpy")(*GOOD)
    same_as_ref(f(W, B, X, y=Y), ref)                     # keywords for positional parameters work
    same_as_ref(f(w=W, b=B, X=X, y=Y), ref)
    e = raised(f, W, B, X, Y, z=Y)
    assert isinstance(e, ArgumentError) and "unexpected keyword argument 'z'" in str(e)
    e = raised(f, W, B, X, Y, w=W)
    assert isinstance(e, ArgumentError) and "multiple values for argument 'w'" in str(e)



def test_fast_path_that_misses_falls_back_to_the_checked_path():
    """A call runs ``_fast`` from C; its MISS (or an empty ``_fast``) goes to the slow path,
    whose answer is the full one."""
    from gradc.api import _MISS
    f = vg()
    ref = vg("numpy")(*GOOD)
    calls = []
    f._fast = lambda *a: calls.append(len(a)) or _MISS
    same_as_ref(f(*GOOD), ref)
    assert calls == [4]                                   # asked first, with the positional arguments
    f._fast = None
    same_as_ref(f(*GOOD), ref)
    assert f._fast is not None                            # the slow path installed the plan again
    same_as_ref(f(*GOOD), ref)


def test_fast_path_errors_propagate_and_bad_fast_paths_are_refused():
    f = vg()

    def broken(*args):
        raise ZeroDivisionError("from the fast path")
    f._fast = broken
    e = raised(f, *GOOD)
    assert isinstance(e, ZeroDivisionError) and "from the fast path" in str(e)
    e = raised(f, w=W, b=B, X=X, y=Y)                      # keywords take the fast path too
    assert isinstance(e, ZeroDivisionError) and "from the fast path" in str(e)
    with pytest.raises(TypeError, match="callable"):
        f._fast = 3
    f._fast = None
    same_as_ref(f(w=W, b=B, X=X, y=Y), vg("numpy")(*GOOD))


def test_transformed_function_in_a_reference_cycle_is_collected():
    """A fast path may refer back to its function (a pytree plan's rebuild can close over
    it): the cycle through ``_fast`` must be visible to the garbage collector (the C base
    type traverses it), or every such function would leak with its compiled code."""
    import gc
    import weakref

    from gradc.api import _MISS
    f = vg()
    f(*GOOD)
    f._fast = lambda *a, f=f: _MISS                       # f -> _fast -> its default -> f
    same_as_ref(f(*GOOD), vg("numpy")(*GOOD))            # (the slow path set a plan again)
    f._fast = lambda *a, f=f: _MISS
    ref = weakref.ref(f)
    del f
    gc.collect()
    assert ref() is None


def test_dispatch_without_the_extension():
    """Without gradc._callpath (a platform where it did not build), Transformed's Python
    base class gives the same answers, keywords and errors."""
    code = """
import sys
sys.modules["gradc._callpath"] = None              # import fails: the pure-Python path
import numpy as onp, gradc, gradc.numpy as np
from gradc.api import _Dispatch
assert _Dispatch.__module__ == "gradc.api", _Dispatch
f = gradc.value_and_grad(lambda w, X: np.sum((X @ w) ** 2))
w, X = onp.array([0.5, -1.0]), onp.arange(6.0).reshape(3, 2)
v, g = f(w, X)
v2, g2 = f(w=w, X=X)
assert onp.allclose(g, 2 * X.T @ (X @ w)) and onp.allclose(g2, g) and v == v2
try:
    f(w, X, z=1)
except gradc.ArgumentError as e:
    print("raised", "unexpected keyword argument 'z'" in str(e))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["raised", "True"]

CONVERTED = {
    "int_b": (W, 2, X, Y),
    "bool_b": (W, True, X, Y),
    "int_y": (W, B, X, onp.array([1, 0, -1, 2, 3])),           # not differentiated: int64 input
    "list_w": ([0.5, -1.0, 2.0], B, X, Y),
    "tuple_w": ((0.5, -1.0, 2.0), B, X, Y),
    "list_X": (W, B, X.tolist(), Y),
    "int_list_w": ([1, 2, 3], B, X, Y),
    "0d_b": (W, onp.array(0.1), X, Y),
    "np_scalar_b": (W, onp.float64(0.1), X, Y),
    "float16_w": (W.astype(onp.float16), B, X, Y),
    "bigendian_X": (W, B, X.astype(">f8"), Y),
}


@pytest.mark.parametrize("case", list(CONVERTED))
@pytest.mark.parametrize("warm", [False, True], ids=["first_call", "after_fast_path"])
def test_convertible_arguments_give_numpy_answer(case, warm):
    args = CONVERTED[case]
    f = vg()
    if warm:
        f(*GOOD)
    v, (dw, db) = f(*args)
    a = [onp.asarray(x, dtype=onp.float64) for x in args]
    onp.testing.assert_allclose(v, ref_neuron(*a), rtol=1e-12)
    ref_v, (rdw, rdb) = vg("numpy")(*args)
    onp.testing.assert_allclose(dw, rdw, rtol=1e-12, atol=1e-12)
    onp.testing.assert_allclose(db, rdb, rtol=1e-12, atol=1e-12)
    assert onp.asarray(dw).dtype.kind == "f" and onp.shape(dw) == (3,)
    # call again: now (possibly) on the fast path for this signature
    v2, _ = f(*args)
    assert v2 == v


def test_signature_changes_alternate_without_confusion():
    """The fast path serves the most recent signature; alternating signatures must not
    run one signature's kernel on another's arguments."""
    f = vg()
    sigs = [GOOD, (W.astype(onp.float32), onp.float32(0.1), X.astype(onp.float32), Y.astype(onp.float32)),
            (W[:2], B, X[:, :2], Y), (W, B, X[:1], Y[:1]), ([1, 2, 3], 3, X, Y)]
    ref = vg("numpy")
    for _ in range(3):
        for s in sigs:
            got, want = f(*s), ref(*s)
            tol = 1e-5 if onp.asarray(s[0]).dtype == onp.float32 else 1e-12
            same_as_ref(got, want, rtol=tol)


# ----------------------------------------------------------------------------- memory layouts
def _unaligned(a):
    buf = onp.zeros(a.nbytes + 1, onp.uint8)
    u = onp.frombuffer(buf.data, a.dtype, count=a.size, offset=1).reshape(a.shape)
    u[...] = a
    assert not u.flags.aligned
    return u


def _readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


LAYOUTS = {
    "strided": lambda a: onp.repeat(a, 2, axis=0)[::2] if a.ndim else a,
    "negative": lambda a: a[::-1].copy()[::-1] if a.ndim else a,
    "fortran": lambda a: onp.asfortranarray(a),
    "transposed_view": lambda a: a.T.copy().T,
    "readonly": _readonly,
    "unaligned": _unaligned,
    "broadcast_view": lambda a: onp.broadcast_to(a[:1], a.shape) if a.ndim and len(a) else a,
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("which", [0, 2, 3], ids=["w", "X", "y"])
def test_layouts_on_fast_path(layout, which):
    f = vg()
    f(*GOOD)                        # installs the fast path for this signature
    args = list(GOOD)
    args[which] = LAYOUTS[layout](onp.asarray(args[which]))
    if layout == "negative" and args[which].ndim:
        assert args[which].strides[0] < 0
    want = vg("numpy")(*[onp.ascontiguousarray(a) for a in args])
    same_as_ref(f(*args), want)
    same_as_ref(f(*args), want)     # and again (the fast path must refuse, not misread)


def test_zero_d_arrays_everywhere():
    f = gradc.value_and_grad(lambda a, b: a * b + np.exp(a), argnums=(0, 1))
    ref = gradc.value_and_grad(lambda a, b: a * b + np.exp(a), argnums=(0, 1), backend="numpy")
    for args in [(onp.array(1.5), onp.array(2.0)), (1.5, 2.0), (onp.array(1.5), 2), (onp.float64(1.5), True)]:
        got = f(*args)
        same_as_ref(got, ref(*args))
        assert onp.ndim(got[0]) == 0 and onp.ndim(got[1][0]) == 0


@pytest.mark.parametrize("backend", ["llvm", "c"])
def test_gradient_that_is_an_argument_takes_the_fast_path(backend):
    """d/dw sum(w * x) is x itself: the C call path returns a copy of the argument (a
    float given for a 0-d argument too), and an output returned twice, instead of
    leaving every call to the Python path."""
    loss = lambda w, x, s: np.sum(w * x) * s + s      # noqa: E731
    f = gradc.value_and_grad(loss, argnums=(0, 1, 2), backend=backend)
    w, x = onp.linspace(-1, 1, 300_001), onp.cos(onp.arange(300_001.0))
    for s in (2.5, onp.float64(2.5), onp.array(2.5)):
        value, (gw, gx, gs) = f(w, x, s)
        assert f._fast is not None, "the fast path serves a gradient that is an argument"
        assert onp.isclose(value, onp.sum(w * x) * 2.5 + 2.5, rtol=1e-12)
        onp.testing.assert_allclose(gw, x * 2.5, rtol=1e-15)
        onp.testing.assert_allclose(gx, w * 2.5, rtol=1e-15)
        assert not onp.shares_memory(gw, x) and not onp.shares_memory(gx, w)
        assert onp.isclose(gs, onp.sum(w * x) + 1, rtol=1e-12)
    g = gradc.grad(lambda a, b: a * b, argnums=(0, 1), backend=backend)
    for _ in range(2):                           # the second call runs on the fast path
        ga, gb = g(2.0, 3.0)
        assert (ga, gb) == (3.0, 2.0) and onp.ndim(ga) == 0
    assert g._fast is not None
    h = gradc.grad(lambda p, x: np.sum(p["l"] * x) + np.sum(p["r"] ** 2), backend=backend)
    x3 = onp.arange(3.0)
    for _ in range(2):
        got = h({"l": onp.ones(3), "r": onp.full(2, 2.0)}, x3)
        assert not onp.shares_memory(got["l"], x3)
        onp.testing.assert_array_equal(got["l"], [0.0, 1.0, 2.0])
        onp.testing.assert_array_equal(got["r"], [4.0, 4.0])
    assert h._fast is not None


@pytest.mark.parametrize("backend", ["llvm", "c"])
def test_constant_outputs_take_the_fast_path(backend):
    """A gradient that is a constant (a 0-d argument the value does not read: its
    gradient is a folded 0; a folded array constant) is filled by the kernel, so the
    C call path serves the call: before, such a function ran every call through the
    Python path.  Each call gets arrays of its own."""
    loss = lambda w, s, x: np.sum(w * x)      # noqa: E731
    f = gradc.value_and_grad(loss, argnums=(0, 1), backend=backend)
    w, x = onp.linspace(-1, 1, 1001), onp.cos(onp.arange(1001.0))
    firsts = []
    for s in (2.5, onp.float64(2.5), onp.array(2.5)):
        value, (gw, gs) = f(w, s, x)
        assert f._fast is not None, "the fast path serves a constant gradient"
        assert onp.isclose(value, onp.sum(w * x), rtol=1e-12)
        onp.testing.assert_array_equal(gw, x)
        assert onp.ndim(gs) == 0 and gs == 0.0 and onp.asarray(gs).dtype == onp.float64
        firsts.append(gw)
    assert not onp.shares_memory(firsts[0], firsts[1])
    c = onp.arange(6.0).reshape(2, 3)
    k = gradc.jit(lambda x: (x * 2.0, c + 1.0), backend=backend)   # c + 1 folds to a constant
    for _ in range(2):
        y, z = k(onp.ones(3))
        onp.testing.assert_array_equal(y, [2.0, 2.0, 2.0])
        onp.testing.assert_array_equal(z, c + 1.0)
        z[0, 0] = -7.0                          # a caller's copy: the next call's is whole
    assert k._fast is not None


def test_signatures_called_in_turn_take_the_fast_path(monkeypatch):
    """A function called with float32 and float64 batches, and vectors and matrices, in
    turn: once each signature has compiled, every call takes a C call path (the last
    signature's first, then the few before it), none the Python path."""
    f = gradc.value_and_grad(lambda w, x: np.sum(np.tanh(x * w) ** 2))
    args = [(onp.float32(0.5) * onp.ones(3, onp.float32), onp.linspace(-1, 1, 3).astype(onp.float32)),
            (onp.full(3, 0.5), onp.linspace(-1, 1, 3)),
            (onp.full((2, 3), 0.5), onp.ones((2, 3)))]
    want = [f(*a) for a in args]
    monkeypatch.setattr(f, "_entry", lambda *a: pytest.fail("the Python path ran"))
    for _ in range(3):
        for a, (v, g) in zip(args, want):
            got_v, got_g = f(*a)
            assert got_v == v and got_g.dtype == g.dtype
            onp.testing.assert_array_equal(got_g, g)
    for _ in range(2):                   # and with a keyword
        got_v, _ = f(args[0][0], x=args[0][1])
        assert got_v == want[0][0]


def test_keyword_arguments_take_the_fast_path(monkeypatch):
    """A call with keyword arguments binds them to their positions and runs the C call
    path (it took the Python path on every call: 147 against 8 us for a small MLP); a
    keyword that fits no parameter still raises the error naming the function."""
    def loss(W, b, X, y, lam=0.5):
        return np.sum((np.tanh(X @ W + b) - y) ** 2) + lam * np.sum(W * W)
    rng = onp.random.default_rng(2)
    W, b, X, y = rng.normal(size=(5, 3)), rng.normal(size=3), rng.normal(size=(40, 5)), rng.normal(size=(40, 3))
    f = gradc.value_and_grad(loss, argnums=(0, 1))
    want = f(W, b, X, y)
    f(W, b, X=X, y=y)
    monkeypatch.setattr(f, "_entry", lambda *a: pytest.fail("the Python path ran"))
    for call in (lambda: f(W, b, X=X, y=y), lambda: f(W, b=b, y=y, X=X), lambda: f(y=y, X=X, b=b, W=W)):
        value, (gW, gb) = call()
        assert value == want[0]
        onp.testing.assert_array_equal(gW, want[1][0])
        onp.testing.assert_array_equal(gb, want[1][1])
    with pytest.raises(ArgumentError, match=r"loss\(W, b, X, y, lam\).*unexpected keyword argument 'z'"):
        f(W, b, X=X, y=y, z=y)
    monkeypatch.undo()
    v2, _ = f(W, b, X, y, lam=2.0)          # a default given: another signature, compiled
    assert onp.isclose(v2, want[0] + 1.5 * onp.sum(W * W), rtol=1e-12)


def test_an_unrolled_loop_takes_the_fast_path():
    """An RNN written with a Python loop: dozens of steps, each with its own workspace
    buffers (more than the call path's fixed argument count): the C call path serves
    it (its workspace specs are not limited), and its gradient matches the reference
    evaluator's."""
    rng = onp.random.default_rng(4)
    T, B, D, H = 24, 8, 5, 12
    p = {"Wx": rng.normal(size=(D, H)) / 3, "Wh": rng.normal(size=(H, H)) / 4, "b": onp.zeros(H),
         "Wo": rng.normal(size=(H, 1)) / 4}
    X, y = rng.normal(size=(T, B, D)), rng.normal(size=(B, 1))

    def loss(p, X, y):
        h = np.zeros((X.shape[1], p["Wh"].shape[0]))
        for t in range(X.shape[0]):
            h = np.tanh(X[t] @ p["Wx"] + h @ p["Wh"] + p["b"])
        return np.mean((h @ p["Wo"] - y) ** 2)
    f = gradc.value_and_grad(loss)
    for _ in range(2):
        value, grads = f(p, X, y)
    assert f._fast is not None, "the fast path serves an unrolled loop"
    from gradc.backends.schedule import workspace_layout
    kernel = list(f._cache.values())[0][0].run.kernel
    assert sum(len(r) for r in workspace_layout(kernel.schedule)) > 64
    want_value, want = gradc.value_and_grad(loss, backend="numpy")(p, X, y)
    assert onp.isclose(value, want_value, rtol=1e-13)
    for k in p:
        onp.testing.assert_allclose(grads[k], want[k], rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------- sizes
SIZES = [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 65, 127]


@pytest.mark.parametrize("n", SIZES)
def test_sizes_around_vector_width(n):
    r = onp.random.default_rng(n)
    x = r.normal(size=n)
    M = r.normal(size=(n, 3))
    f = lambda x, M: np.sum(np.tanh(x) * (M @ np.ones(3))) + np.sum(np.max(M, axis=1) if n else 0.0)  # noqa: E731
    f2 = lambda x, M: np.sum(np.tanh(x)[:, None] * M) + np.mean(x * x)  # noqa: E731
    for fn in (f, f2):
        got = gradc.value_and_grad(fn, argnums=(0, 1))(x, M)
        want = gradc.value_and_grad(fn, argnums=(0, 1), backend="numpy")(x, M)
        if fn is f2 and n == 0:
            assert onp.isnan(got[0]) and onp.isnan(want[0])
            continue
        same_as_ref(got, want, rtol=1e-11)


def test_sum_of_nothing_is_zero_and_mean_is_nan():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert gradc.jit(lambda x: np.sum(x))(onp.zeros(0)) == 0.0
        assert gradc.jit(lambda x: np.sum(x, axis=0))(onp.zeros((0, 4))).tolist() == [0.0] * 4
        assert gradc.jit(lambda x: np.sum(x, axis=1))(onp.zeros((0, 4))).shape == (0,)
        assert onp.isnan(gradc.jit(lambda x: np.mean(x))(onp.zeros(0)))
        assert onp.isnan(gradc.jit(lambda x: np.mean(x, axis=0))(onp.zeros((0, 3)))).all()
        assert gradc.jit(lambda X, w: X @ w)(onp.zeros((0, 3)), onp.ones(3)).shape == (0,)
        assert gradc.jit(lambda X, w: X @ w)(onp.zeros((3, 0)), onp.ones(0)).tolist() == [0.0] * 3


@pytest.mark.parametrize("warm", [False, True], ids=["first_call", "after_fast_path"])
def test_max_of_nothing_raises_like_numpy(warm):
    f = gradc.value_and_grad(lambda x: np.max(x))
    if warm:
        f(onp.ones(4))
    with pytest.raises(ValueError, match="zero-size array to reduction operation max"):
        f(onp.zeros(0))


def _big_memory_ok(gib):
    try:
        with open("/proc/meminfo") as fh:
            info = dict(line.split(":", 1) for line in fh)
        return int(info["MemAvailable"].split()[0]) * 1024 > gib * 2 ** 30
    except (OSError, KeyError, ValueError):
        return False


BIG_SCRIPT = r"""
import numpy as onp, gradc, gradc.numpy as np
R, C = 2, 2**30 + 37            # 2**31 + 74 bool elements (2 GiB): flat indices pass 2**31
x = onp.zeros((R, C), dtype=bool)
x[1, C - 1] = True              # flat index 2**31 + 73
x[1, 2**30 + 5] = True          # flat index 2**31 + 41 (would alias x[0, 5] with 32-bit wrap)
x[0, 3] = True
f = gradc.jit(lambda x: np.sum(np.where(x, 1.0, 0.0), axis=1))
r = f(x)
print(r.tolist())
g = gradc.jit(lambda x: np.sum(np.where(x, 1.0, 0.0)))
print(float(g(x)))
"""


@pytest.mark.skipif(not _big_memory_ok(6), reason="needs ~6 GiB of free memory for a 2**31-element array")
def test_64bit_indices():
    """An honest 64-bit index test: a (2, 2**30+37) bool array, 2**31+74 elements (2 GiB,
    one byte each), with marks placed so that a 32-bit flat index (which would wrap or
    alias x[0, 5]) gives a different count or a segfault.  Run in a subprocess so a
    crash is a failure, not the end of the test run.  Skipped below ~6 GiB free."""
    out = subprocess.run([sys.executable, "-c", BIG_SCRIPT], capture_output=True, text=True, timeout=300,
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-2000:]}"
    rows, total = out.stdout.split("\n")[:2]
    assert rows == "[1.0, 2.0]" and float(total) == 3.0


# ----------------------------------------------------------------------------- values
def test_nan_and_inf_propagate_like_numpy():
    x = onp.array([1.0, onp.nan, -onp.inf, onp.inf, -2.0, 0.0, 3.0, 5.0, -1.0, 2.0, onp.nan])
    cases = {
        "relu": (lambda x: gradc.relu(x), lambda x: onp.maximum(x, 0.0)),
        "maximum": (lambda x: np.maximum(0.0, x), lambda x: onp.maximum(0.0, x)),
        "minimum": (lambda x: np.minimum(x, 1.0), lambda x: onp.minimum(x, 1.0)),
        "max": (lambda x: np.max(x), onp.max),
        "min": (lambda x: np.min(x), onp.min),
        "sum": (lambda x: np.sum(x), onp.sum),
        "abs": (lambda x: np.abs(x), onp.abs),
        "tanh": (lambda x: np.tanh(x), onp.tanh),
        "exp": (lambda x: np.exp(x), onp.exp),
        "log": (lambda x: np.log(x), onp.log),
        "sqrt": (lambda x: np.sqrt(x), onp.sqrt),
        "where": (lambda x: np.where(x > 0, x, 0.0), lambda x: onp.where(x > 0, x, 0.0)),
        "div": (lambda x: 1.0 / x, lambda x: 1.0 / x),
        "clip": (lambda x: np.clip(x, -1.0, 1.0), lambda x: onp.clip(x, -1.0, 1.0)),
    }
    with onp.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, (g, r) in cases.items():
            for xx in (x, onp.tile(x, 7)):
                got, want = gradc.jit(g)(xx), r(xx)
                onp.testing.assert_allclose(got, want, rtol=1e-13, equal_nan=True, err_msg=name)


def test_exp_overflow_is_inf_and_underflow_is_zero():
    x = onp.array([700.0, 709.7, 710.0, 1000.0, onp.inf, -1000.0, -746.0, -onp.inf] * 3)
    with onp.errstate(all="ignore"):
        want = onp.exp(x)
    got = gradc.jit(lambda x: np.exp(x))(x)
    onp.testing.assert_allclose(got, want, rtol=1e-13)
    assert onp.isinf(got[3]) and got[5] == 0.0
    g = gradc.grad(lambda x: np.sum(np.exp(x)))(onp.array([1000.0, 0.0]))
    assert onp.isinf(g[0]) and g[1] == 1.0
    assert gradc.jit(lambda x: np.exp(x))(onp.float32(100.0)) == onp.inf


# ----------------------------------------------------------------------------- tracing
def test_data_dependent_python_control_flow_is_a_clear_error():
    def f(x):
        while np.sum(x) > 1.0:
            x = x * 0.5
        return np.sum(x)
    with pytest.raises(TracerBoolError, match="gradc.where"):
        gradc.grad(f)(onp.ones(3))

    def g(x):
        return np.sum(x) if x[0] > 0 else -np.sum(x)
    f2 = gradc.jit(g)
    with pytest.raises(TracerBoolError):
        f2(onp.ones(3))
    with pytest.raises(TracerBoolError):     # and again: nothing half-built was cached
        f2(onp.ones(3))


def test_static_python_control_flow_is_fine():
    def f(x, n=3):
        for _ in range(n):
            x = np.sin(x)
        return np.sum(x)
    onp.testing.assert_allclose(gradc.jit(f)(onp.ones(3)), onp.sum(onp.sin(onp.sin(onp.sin(onp.ones(3))))), rtol=1e-14)


@pytest.mark.parametrize("fn", [lambda x: np.sum(onp.linalg.eig(x)[0]), lambda x: onp.histogram2d(x[0], x[1]),
                                lambda x: onp.unique(x)], ids=["linalg.eig", "histogram2d", "unique"])
def test_unsupported_numpy_functions(fn):
    with pytest.raises((UnsupportedError, TracerBoolError)) as e:
        gradc.jit(fn)(onp.eye(3))
    assert isinstance(e.value, GradcError)


def test_very_deep_graph_no_recursion_error():
    """~2000 chained cheap ops (4000 nodes, and as many adjoint nodes): tracing,
    differentiation, optimization and code generation must not recurse per node."""
    depth = 2000

    def f(x):
        for _ in range(depth):
            x = x * 0.5 + 1.0
        return np.sum(x)
    x = onp.array([0.3, -1.0, 5.0])
    v, g = gradc.value_and_grad(f)(x)
    ref = x.copy()
    for _ in range(depth):
        ref = ref * 0.5 + 1.0
    onp.testing.assert_allclose(v, ref.sum(), rtol=1e-12)
    onp.testing.assert_allclose(g, onp.full(3, 0.5 ** depth), rtol=1e-12, atol=1e-300)


def test_deep_graph_of_distinct_nodes():
    """Chains whose nodes cannot be folded into one another (alternating ops on two
    inputs)."""
    depth = 1500

    def f(x, y):
        for k in range(depth):
            x = x * 0.999 + y if k % 2 else x - y * 0.001
        return np.sum(x * x)
    x, y = onp.array([0.1, 0.2]), onp.array([0.3, -0.4])
    got = gradc.value_and_grad(f, argnums=(0, 1))(x, y)
    want = gradc.value_and_grad(f, argnums=(0, 1), backend="numpy")(x, y)
    same_as_ref(got, want, rtol=1e-10)


@pytest.mark.parametrize("ret,pattern", [
    (lambda x: (np.sum(x), np.sum(x)), "single scalar.*tuple of 2"),
    (lambda x: {"loss": np.sum(x)}, "returned a dict"),
    (lambda x: [np.sum(x)], "list|tuple"),
    (lambda x: None, "returned None"),
    (lambda x: "loss", r"str"),
], ids=["tuple", "dict", "list", "None", "str"])
def test_non_scalar_returns_for_grad(ret, pattern):
    for t in (gradc.grad, gradc.value_and_grad):
        with pytest.raises(GradcError, match=pattern):
            t(ret)(onp.ones(3))


def test_error_inside_model_leaves_function_usable():
    calls = []

    def f(x):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("user bug")
        return np.sum(x * x)
    g = gradc.grad(f)
    with pytest.raises(RuntimeError, match="user bug"):
        g(onp.ones(3))
    onp.testing.assert_allclose(g(onp.ones(3)), 2 * onp.ones(3))


# ----------------------------------------------------------------------------- memory safety
GUARD_SCRIPT = GUARD_PRELUDE + r"""
import sys
import numpy as onp, gradc, gradc.numpy as np
from gradc.evaluate import bind_sizes
from gradc.shapes import resolve
from gradc.backends.schedule import workspace_bytes

def guarded_kernel_call(entry, arrays, at_end):
    # call the generated kernel directly with every buffer -- inputs, outputs, constants
    # and the workspace -- against a guard page
    k = entry.run.kernel
    s, g = k.schedule, k.schedule.graph
    sizes = bind_sizes(g, arrays)
    ins = [guarded(a, at_end) for a in arrays]
    outs = [guarded(onp.full(resolve(shape, sizes), onp.nan, dtype), at_end) for shape, dtype in k.out_specs]
    consts = [guarded(c, at_end) for c in k.const_arrays]
    ws = guarded(onp.zeros(max(workspace_bytes(s, sizes), 1), onp.uint8), at_end)
    bufs = ins + outs + consts
    ptrs = (ctypes.c_void_p * max(len(bufs), 1))(*[b.ctypes.data for b in bufs])
    szs = (ctypes.c_int64 * max(len(k.symbols), 1))(*[sizes[x] for x in k.symbols])
    assert k.cfunc(ptrs, szs, ws.ctypes.data) == 0
    return outs

def neuron(w, b, X, y):
    return np.mean((gradc.relu(X @ w + b) - y) ** 2)

def xent(W, X, labels):
    S = X @ W
    return np.mean(gradc.logsumexp(S, axis=1) - np.take_along_axis(S, labels[:, None], axis=1)[:, 0])

def elementwise(x, y):
    return np.tanh(x) * y + np.exp(-x * x) / (1.0 + y * y)

def reductions(X):
    return np.sum(X, axis=0) + np.max(X, axis=0) - np.mean(X, axis=0), np.sum(X, axis=1), np.min(X)

r = onp.random.default_rng(0)
n_checked = 0
for n, d in [(1, 1), (3, 5), (7, 8), (9, 17), (33, 3), (1001, 7)]:
    X = r.normal(size=(n, d)); w = r.normal(size=d); y = r.normal(size=n); x = r.normal(size=n)
    W = r.normal(size=(d, 4)); labels = r.integers(0, 4, size=n)
    W10 = r.normal(size=(d, 10)); labels10 = r.integers(0, 10, size=n)
    cases = [
        (gradc.jit(elementwise), (x, y)),
        (gradc.value_and_grad(lambda x, y: np.sum(elementwise(x, y)), argnums=(0, 1)), (x, y)),
        (gradc.jit(reductions), (X,)),
        (gradc.value_and_grad(lambda X: np.sum(reductions(X)[0]) + reductions(X)[2]), (X,)),
        (gradc.jit(lambda X, w: X @ w), (X, w)),                          # matvec
        (gradc.jit(lambda X, y: y @ X), (X, y)),                          # vecmat
        (gradc.value_and_grad(neuron, argnums=(0, 1, 2)), (w, 0.3, X, y)),
        (gradc.value_and_grad(xent, argnums=(0, 1)), (W, X, labels)),    # gather + scatter
        # 10 columns: the narrow kernels' padded vector loads (runtime/skinny.c)
        (gradc.value_and_grad(xent, argnums=(0, 1)), (W10, X, labels10)),
    ]
    for f, args in cases:
        want = f(*args)
        for at_end in (True, False):
            # 1) through the public call (the C fast path) with guarded inputs
            gargs = tuple(guarded(a, at_end) if isinstance(a, onp.ndarray) else a for a in args)
            got = f(*gargs)
            onp.testing.assert_equal(got, want)
            for a, ga in zip(args, gargs):
                if isinstance(a, onp.ndarray):
                    assert onp.array_equal(a, ga), "an input was written to"
            # 2) the raw kernel with every buffer guarded (outputs and workspace too)
            arrays = [onp.asarray(a, float) if not isinstance(a, onp.ndarray) else a for a in args]
            entry = [e for es in f._cache.values() for e in es][-1]
            outs = guarded_kernel_call(entry, [onp.ascontiguousarray(a) for a in arrays], at_end)
            ref = entry.run([onp.ascontiguousarray(a) for a in arrays])
            for o, rr in zip(outs, ref):
                onp.testing.assert_equal(o, rr)
            n_checked += 1
print("OK", n_checked)
"""


def test_guard_pages_nothing_outside_is_read_or_written():
    """Arrays placed flush against PROT_NONE pages (ending exactly at the trailing guard
    page, or starting exactly after the leading one): a read or write one element
    outside any input, output, constant or workspace buffer segfaults the subprocess.
    Covers element-wise ops, reductions (both axes, max/min), matvec and vecmat,
    take_along_axis with in-range indices and its scatter adjoint, the narrow matrix
    products (10 columns: padded vector loads), at sizes around the vector width."""
    out = subprocess.run([sys.executable, "-c", GUARD_SCRIPT], capture_output=True, text=True, timeout=300,
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 0, f"exit code {out.returncode} (-11 is a segfault): {out.stderr[-3000:]}"
    assert out.stdout.startswith("OK 108"), out.stdout


def test_canaries_around_inputs_are_untouched():
    """Inputs embedded in a buffer of canary bytes, called through the fast path: the
    canaries and the inputs are unchanged, the results equal the reference."""
    f = gradc.value_and_grad(neuron, argnums=(0, 1, 2, 3))
    ref = gradc.value_and_grad(neuron, argnums=(0, 1, 2, 3), backend="numpy")
    pad = 256
    for n, d in [(1, 1), (5, 3), (17, 9), (64, 8)]:
        r = onp.random.default_rng(n)
        vals = [r.normal(size=d), r.normal(size=(n, d)), r.normal(size=n)]
        bufs, views = [], []
        for v in vals:
            buf = onp.full(v.nbytes + 2 * pad, 0xA5, onp.uint8)
            view = onp.frombuffer(buf, v.dtype, count=v.size, offset=pad).reshape(v.shape)
            view[...] = v
            bufs.append(buf)
            views.append(view)
        w, X, y = views
        for _ in range(2):
            got = f(w, 0.2, X, y)
            want = ref(vals[0], 0.2, vals[1], vals[2])
            same_as_ref((got[0], got[1]), (want[0], want[1]))
        for buf, v, view in zip(bufs, vals, views):
            assert (buf[:pad] == 0xA5).all() and (buf[-pad:] == 0xA5).all()
            assert onp.array_equal(view, v)
