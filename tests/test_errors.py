"""Bad input: every mistake gets a gradc error whose message says what was expected,
what came, and (for errors inside the model) where in the user's code."""
from __future__ import annotations

import re

import numpy as np
import pytest

import gradc
import gradc.numpy as gnp
from gradc import ArgumentError, GradcError, ShapeError, TracerBoolError, UnsupportedError

pytestmark = pytest.mark.usefixtures("core_backend")

x3 = np.ones(3)


def here(fn):
    """'test_errors.py:<line>' of a one-line lambda / the first line of a function body."""
    return f"test_errors.py:{fn.__code__.co_firstlineno}"


# ----------------------------------------------------------------------------- grad of non-scalars
def test_grad_of_nonscalar_output():
    with pytest.raises(ArgumentError, match=r"must return a scalar.*f64\[.*\].*jacobian or vjp"):
        gradc.grad(lambda x: x * 2)(x3)


def test_grad_of_tuple_output():
    with pytest.raises(ArgumentError, match="single scalar.*tuple of 2"):
        gradc.grad(lambda x: (gnp.sum(x), gnp.sum(x)))(x3)


def test_grad_of_dict_output():
    with pytest.raises(ArgumentError, match="returned a dict"):
        gradc.grad(lambda x: {"loss": gnp.sum(x)})(x3)


def test_function_returning_none():
    with pytest.raises(ArgumentError, match="returned None"):
        gradc.grad(lambda x: None)(x3)


def test_grad_of_integer_output():
    with pytest.raises(ArgumentError, match="dtype int64, not a float"):
        gradc.grad(lambda x: gnp.sum(x > 0))(x3)


# ----------------------------------------------------------------------------- shapes
def test_matmul_shape_mismatch_names_op_shapes_and_line():
    f = lambda X, w: X @ w  # noqa: E731
    with pytest.raises(ShapeError) as e:
        gradc.jit(f)(np.ones((4, 3)), np.ones(5))
    msg = str(e.value)
    assert "matmul" in msg
    assert "[4,3]" in msg and "[5]" in msg
    assert "3 columns" in msg and "5 rows" in msg
    assert here(f) in msg


def test_failed_broadcast_names_op_shapes_and_line():
    f = lambda a, b: a * b  # noqa: E731
    with pytest.raises(ShapeError) as e:
        gradc.grad(lambda a, b: gnp.sum(f(a, b)))(np.ones((2, 3)), np.ones(4))
    msg = str(e.value)
    assert msg.startswith("mul(")
    assert "[2,3]" in msg and "[4]" in msg and "cannot be broadcast" in msg
    assert here(f) in msg


def test_broadcast_against_numpy_constant():
    c = np.ones(4)
    with pytest.raises(ShapeError, match=r"add.*\[3\].*\[4\]"):
        gradc.jit(lambda x: x + c)(x3)


def test_reshape_to_wrong_size():
    with pytest.raises(ShapeError, match="cannot reshape"):
        gradc.jit(lambda x: x.reshape(2, 2))(x3)


def test_axis_out_of_bounds():
    with pytest.raises(ShapeError, match="axis 2 is out of bounds"):
        gradc.jit(lambda x: gnp.sum(x, axis=2))(np.ones((2, 2)))


def test_index_out_of_bounds():
    with pytest.raises(IndexError, match="out of bounds"):
        gradc.jit(lambda x: x[5])(x3)


@pytest.mark.parametrize("backend", ["llvm", "c"])
def test_a_traced_index_out_of_bounds_names_the_users_line(backend):
    """Found while the kernel runs: the error names the indexing's line, on the first
    call (Python's call path) and the next ones (the C call path hands it back)."""
    def f(x, i):
        return gnp.sum(x[i] * 2.0)      # the line the error names
    line = f.__code__.co_firstlineno + 1
    g = gradc.jit(f, backend=backend)
    assert g(np.arange(5.0), np.array([1, 2])) == 6.0
    for _ in range(2):
        with pytest.raises(IndexError, match=rf"out of bounds.* at test_errors.py:{line}"):
            g(np.arange(5.0), np.array([1, 7]))


# ----------------------------------------------------------------------------- control flow
def test_python_if_on_traced_value():
    def f(x):
        if gnp.sum(x) > 0:
            return x
        return -x
    with pytest.raises(TracerBoolError) as e:
        gradc.jit(f)(x3)
    msg = str(e.value)
    assert "gradc.where" in msg
    assert f"test_errors.py:{f.__code__.co_firstlineno + 1}" in msg


@pytest.mark.parametrize("conv", [float, int, bool], ids=["float", "int", "bool"])
def test_python_conversions_of_traced_value(conv):
    with pytest.raises(TracerBoolError, match="gradc.where"):
        gradc.jit(lambda x: conv(gnp.sum(x)))(x3)


def test_numpy_conversion_of_traced_value():
    with pytest.raises(TracerBoolError, match="numpy array"):
        gradc.jit(lambda x: np.asarray(x).sum())(x3)


@pytest.mark.parametrize("method", ["item", "tolist"])
def test_item_and_tolist_of_traced_value(method):
    """As float(): a clear error naming the method and the line, not an AttributeError."""
    with pytest.raises(TracerBoolError, match=rf"\.{method}\(\) of a traced value f64\[\] at test_errors.py:\d+"):
        gradc.jit(lambda x: getattr(gnp.sum(x), method)())(x3)


def test_python_int_argument_as_an_index_names_the_argument_and_the_fixes():
    """A Python int argument is a weak scalar that takes the others' float dtype, so as an
    index it is refused; the message says why and how (an integer or a static argument),
    and each way it suggests gives numpy's answer."""
    x = np.arange(6.0)
    with pytest.raises(UnsupportedError, match=r"got f64\[\] \(argument 'i': a Python int .* weak scalar.*"
                                               r"static_argnames=\('i',\)\).*\[at test_errors.py:\d+\]"):
        gradc.jit(lambda a, i: a[i])(x, 2)
    assert gradc.jit(lambda a, i: a[i])(x, np.int64(2)) == x[2]
    assert gradc.jit(lambda a, i: a[i], static_argnames=("i",))(x, 2) == x[2]


def test_boolean_mask_indexing_suggests_where():
    with pytest.raises(UnsupportedError, match="gradc.where"):
        gradc.jit(lambda x: x[x > 0])(x3)


def test_constant_boolean_mask_of_the_wrong_shape_is_an_index_error():
    # a constant mask has a known shape (it is indexed as its nonzero()), but must fit its axes
    x = np.ones((3, 4))
    with pytest.raises(IndexError, match=r"boolean index of shape \(2,\).*shape \(3,\)"):
        gradc.jit(lambda x: x[np.array([True, False])])(x)
    with pytest.raises(IndexError, match=r"axes 1\.\.1 of shape \(4,\)"):
        gradc.jit(lambda x: x[..., np.array([True, False, True])])(x)


# ----------------------------------------------------------------------------- arguments
@pytest.mark.parametrize("argnums", [2, -3, (0, 5)])
def test_argnums_out_of_range(argnums):
    with pytest.raises(ArgumentError, match=r"argnums -?\d+ is out of range for a function of 2"):
        gradc.grad(lambda x, y: gnp.sum(x * y), argnums=argnums)(x3, x3)


def test_argnums_empty():
    with pytest.raises(ArgumentError, match="argnums is empty"):
        gradc.grad(lambda x: gnp.sum(x), argnums=())(x3)


def test_too_many_arguments():
    with pytest.raises(ArgumentError, match="too many positional arguments"):
        gradc.grad(lambda x: gnp.sum(x))(x3, x3)


def test_too_few_arguments():
    with pytest.raises(ArgumentError, match="missing a required argument: 'y'"):
        gradc.grad(lambda x, y: gnp.sum(x * y))(x3)


def test_unknown_keyword_argument():
    with pytest.raises(ArgumentError, match="unexpected keyword argument 'z'"):
        gradc.jit(lambda x: x)(x3, z=x3)


def test_keyword_only_argument():
    """grad passes keyword-only arguments on, as JAX's does (an array as an input, a Python
    value as a static one); jit has no way to pass them and says so."""
    np.testing.assert_array_equal(gradc.grad(lambda x, *, y: gnp.sum(x * y))(x3, y=2 * x3), 2 * x3)
    with pytest.raises(ArgumentError, match=r"keyword-only arguments \['y'\]"):
        gradc.jit(lambda x, *, y: gnp.sum(x * y))(x3, y=x3)


def test_keyword_for_positional_parameter_is_accepted():
    f = gradc.grad(lambda x, y: gnp.sum(x * y), argnums=1)
    np.testing.assert_array_equal(f(x3, y=2 * x3), f(x3, 2 * x3))


BAD_VALUES = [
    (np.ones(3, complex), r"complex dtype complex128"),
    (1j, r"is complex"),
    ("abc", r"is a str; expected an array"),
    (b"abc", r"is a bytes"),
    (object(), r"dtype object"),
    (np.array([1, "a"], dtype=object), r"dtype object"),
    (np.array(["a", "b"]), r"dtype <U1"),
    (np.ones((2,) * 9), r"rank 9; gradc supports ranks 0 to 8"),
]


@pytest.mark.parametrize("value,pattern", BAD_VALUES,
                         ids=["complex_array", "complex", "str", "bytes", "object", "object_array",
                              "str_array", "rank9"])
def test_bad_argument_values(value, pattern):
    # b differentiated: a str it does not differentiate is a Python value, as in JAX
    with pytest.raises(ArgumentError, match=r"argument 1 \(b\).*" + pattern):
        gradc.grad(lambda a, b: gnp.sum(a * b), argnums=(0, 1))(x3, value)
    with pytest.raises(ArgumentError, match=r"argument 1 \(b\).*" + pattern):
        gradc.jit(lambda a, b: gnp.sum(a * b))(x3, value)


def test_none_argument_is_an_empty_pytree():
    """None is a pytree with no leaves (as in JAX): the function receives None, its
    gradient is None, and using it as a number names the line that did."""
    with pytest.raises(gradc.UnsupportedError, match=r"cannot use None as an operand.*empty pytree.*test_errors.py:\d+"):
        gradc.grad(lambda a, b: gnp.sum(a * b))(x3, None)
    f = lambda a, b: gnp.sum(a * a) if b is None else gnp.sum(a * b)   # noqa: E731
    np.testing.assert_allclose(gradc.grad(f)(x3, None), 2 * x3)
    ga, gb = gradc.grad(f, argnums=(0, 1))(x3, None)
    np.testing.assert_allclose(ga, 2 * x3)
    assert gb is None


def test_call_time_size_disagreement_names_both_arguments():
    f = gradc.jit(lambda X, w: X @ w)
    f(np.ones((4, 3)), np.ones(3))
    with pytest.raises(ArgumentError) as e:
        f(np.ones((4, 3)), np.ones(5))
    msg = str(e.value)
    assert "'w'" in msg and "'X'" in msg
    assert "size 5" in msg and "size 3" in msg


def test_call_time_size_disagreement_elementwise():
    g = gradc.grad(lambda x, y: gnp.sum(x * y))
    g(np.ones(3), np.ones(3))
    with pytest.raises(ArgumentError, match=r"argument 'y' has size 4.*argument 'x' has size 3"):
        g(np.ones(3), np.ones(4))


def test_differentiating_integer_argument_of_jvp():
    with pytest.raises(ArgumentError, match="dtype int64"):
        gradc.jvp(lambda x: x * 2, (np.array([1, 2]),), (np.array([1, 1]),))


def test_jvp_primals_tangents_mismatch():
    with pytest.raises(ArgumentError, match="2 primals but 1 tangents"):
        gradc.jvp(lambda x, y: x * y, (x3, x3), (x3,))


def test_vjp_wrong_cotangent():
    _, vjp_fn = gradc.vjp(lambda x: x * 2, x3)
    with pytest.raises(ArgumentError, match="cotangent 0 has shape"):
        vjp_fn(np.ones(4))
    with pytest.raises(ArgumentError, match="expected 1 cotangent, got 2"):
        vjp_fn(x3, x3)


# ----------------------------------------------------------------------------- unsupported numpy
@pytest.mark.parametrize("fn,name", [
    (lambda x: np.fft.fft(x), "fft.fft"),
    (lambda x: np.histogram2d(x, x), "histogram2d"),
    (lambda x: np.packbits(x > 0), "packbits"),
    (lambda x: np.trim_zeros(x), "trim_zeros"),
    (lambda x: np.add.reduceat(x, [0, 1]), "add.reduceat"),
], ids=["fft", "histogram2d", "packbits", "trim_zeros", "ufunc_method"])
def test_unsupported_numpy_function_is_named(fn, name):
    with pytest.raises(UnsupportedError, match=rf"numpy\.{re.escape(name)}\b.*not supported"):
        gradc.jit(fn)(x3)


def test_numpy_out_argument_is_rejected():
    with pytest.raises(UnsupportedError, match="out="):
        gradc.jit(lambda x: np.exp(x, out=np.empty(3)))(x3)


def test_non_numeric_operand_inside_trace():
    with pytest.raises(UnsupportedError, match="str"):
        gradc.jit(lambda x: x + "a")(x3)


# ----------------------------------------------------------------------------- misc
def test_escaped_tracer():
    leaked = []
    gradc.jit(lambda x: leaked.append(x * 2) or gnp.sum(x))(x3)
    with pytest.raises(GradcError, match="escaped"):
        gradc.jit(lambda y: y + leaked[0])(x3)


def test_unknown_backend_and_config_option():
    with pytest.raises(ArgumentError, match="unknown backend 'nope'"):
        gradc.jit(lambda x: x, backend="nope")(x3)
    with pytest.raises(ArgumentError, match="unknown config option 'foo'"):
        gradc.config(foo=1)


def test_errors_are_gradc_errors_and_builtin_kinds():
    """Users can catch either GradcError or the matching builtin exception."""
    assert issubclass(ShapeError, ValueError) and issubclass(ShapeError, GradcError)
    assert issubclass(TracerBoolError, TypeError)
    assert issubclass(ArgumentError, TypeError)
    assert issubclass(UnsupportedError, TypeError)
