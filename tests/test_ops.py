"""The op table: one line per registered op (and more lines for broadcasting, axes,
rank combinations).  Every line is checked against independent numpy oracles:

* shape rule vs numpy: the traced graph's output shape/dtype equals the numpy
  reference's, and running the graph node by node every node's shape rule equals the
  shape numpy produced (forward graph and adjoint graph);
* evaluator vs numpy (float64 and float32);
* VJP vs central finite differences of the numpy reference (float64);
* JVP vs VJP: <v, J u> == <J^T v, u>, and J u vs a finite-difference directional
  derivative;
* float32 gradients vs the float64 gradient, and float32 in -> float32 out.

Tolerances are explained in gradc_helpers (FD_RTOL/FD_ATOL, F32_RTOL, F32_GRAD_RTOL).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy
import pytest

import gradc
import gradc.numpy as gnp
import gradc.ops.bessel
import gradc.scipy.special
from gradc.ops import OPS
from gradc.ops.lapack import solve_triangular
from gradc.tracer import bind

from gradc_helpers import (F32_GRAD_RTOL, F32_RTOL, as_dtype, assert_fd_close, away,
                           check_shapes, distinct, fd_grad, fd_jvp, normal, ops_in, positive,
                           rng)

pytestmark = pytest.mark.usefixtures("core_backend")

np = numpy
_INV_CDF = __import__("statistics").NormalDist().inv_cdf      # an independent inverse normal CDF


@dataclass
class Case:
    id: str
    op: str                      # the registry op this line exercises
    fn: Callable                 # written with gradc ops
    ref: Callable                # the numpy reference
    make: Callable               # rng -> list of argument arrays (float64 / int / bool)
    diff: tuple | None = None    # indices of differentiated args (default: every float arg)
    ref_grad: Callable | None = None   # base args -> numpy function whose derivative the op has
    extra_ops: tuple = field(default_factory=tuple)  # more ops that must appear in the graph
    # a line at ties: (args, v) -> the cotangents of the differentiated args by the tie
    # rule of docs/derivatives.md, a closed form used instead of finite differences
    tie_grads: Callable | None = None

    def diff_idx(self, args):
        if self.diff is not None:
            return self.diff
        return tuple(i for i, a in enumerate(args) if np.asarray(a).dtype.kind == "f")


def shapes(*specs):
    """make() from (domain, shape) pairs."""
    return lambda r: [dom(r, shp) for dom, shp in specs]


CASES: list[Case] = []


def case(*a, **k):
    CASES.append(Case(*a, **k))


# ----------------------------------------------------------------------------- unary element-wise
M = (3, 4)
_unary = [
    ("neg", "neg", lambda x: -x, np.negative, normal),
    ("neg_np", "neg", lambda x: np.negative(x), np.negative, normal),
    ("exp", "exp", gnp.exp, np.exp, normal),
    ("log", "log", gnp.log, np.log, positive),
    ("log1p", "log1p", gnp.log1p, np.log1p, lambda r, s: r.uniform(-0.5, 2.0, s)),
    ("expm1", "expm1", gnp.expm1, np.expm1, normal),
    ("sqrt", "sqrt", gnp.sqrt, np.sqrt, positive),
    ("abs", "abs", gnp.abs, np.abs, away),
    ("abs_op", "abs", lambda x: abs(x), np.abs, away),
    ("sign", "sign", gnp.sign, np.sign, away),
    ("sin", "sin", gnp.sin, np.sin, normal),
    ("cos", "cos", gnp.cos, np.cos, normal),
    ("tanh", "tanh", gnp.tanh, np.tanh, normal),
    ("sigmoid", "sigmoid", gradc.sigmoid, lambda x: 1 / (1 + np.exp(-x)), lambda r, s: 3 * r.standard_normal(s)),
    ("softplus", "softplus", gradc.softplus, lambda x: np.log1p(np.exp(x)), lambda r, s: 3 * r.standard_normal(s)),
    ("relu", "relu", gradc.relu, lambda x: np.maximum(x, 0.0), away),
    ("square", "square", gnp.square, np.square, normal),
    ("square_pow2", "square", lambda x: x ** 2, lambda x: x ** 2, normal),
]


def _off_steps(r, s):
    """k + u with u in [0.1, 0.4] or [0.6, 0.9]: away from the integers and the halves
    where floor, ceil, trunc and rint jump (a finite-difference step never crosses one)."""
    u = r.uniform(0.1, 0.4, s)
    return r.integers(-4, 5, s) + np.where(r.random(s) < 0.5, u, 1.0 - u)


def _fmod_args(r):
    """(a, b) with a/b off the integers: fmod's derivative in b, -trunc(a/b), is constant
    within a finite-difference step."""
    b = r.uniform(1.0, 2.0, M) * np.where(r.random(M) < 0.5, -1.0, 1.0)
    return [b * _off_steps(r, M), b]


_unary += [(n, n, getattr(gnp, n), getattr(np, n), _off_steps) for n in ("floor", "ceil", "trunc", "rint")]
for _id, _op, _f, _r, _dom in _unary:
    case(_id, _op, _f, _r, shapes((_dom, M)))
case("fmod", "fmod", gnp.fmod, np.fmod, _fmod_args)
case("erf", "erf", gnp.erf, lambda x: np.vectorize(math.erf, otypes=[x.dtype])(x), shapes((lambda r, s: 2.5 * r.standard_normal(s), M)))
case("erfc", "erfc", gnp.erfc, lambda x: np.vectorize(math.erfc, otypes=[x.dtype])(x),
     shapes((lambda r, s: 1.0 + 2.5 * r.standard_normal(s), M)))
case("erfinv", "erfinv", gradc.scipy.special.erfinv,
     lambda x: np.vectorize(lambda v: _INV_CDF(0.5 * (1 + v)) / math.sqrt(2), otypes=[x.dtype])(x),
     shapes((lambda r, s: r.uniform(-0.95, 0.95, s), M)))
case("ndtri", "ndtri", gradc.scipy.special.ndtri, lambda p: np.vectorize(_INV_CDF, otypes=[p.dtype])(p),
     shapes((lambda r, s: r.uniform(0.02, 0.98, s), M)))
# the scaled Bessel functions and erfcx (gradc/ops/bessel.py): mpmath as the reference
def _mp_map(f):
    import mpmath
    return lambda x: np.vectorize(lambda v: float(f(mpmath.mpf(float(v)))), otypes=[x.dtype])(x)


def _mp_i(n, scaled):
    import mpmath
    return _mp_map(lambda v: mpmath.besseli(n, v) * (mpmath.exp(-abs(v)) if scaled else 1))


_BESSEL_ARGS = shapes((lambda r, s: r.uniform(-12, 12, s), M))
case("i0e", "i0e", gradc.ops.bessel.i0e, _mp_i(0, True), _BESSEL_ARGS)
case("i1e", "i1e", gradc.ops.bessel.i1e, _mp_i(1, True), _BESSEL_ARGS)
case("i0", "i0", gradc.ops.bessel.i0, _mp_i(0, False), _BESSEL_ARGS)
case("i1", "i1", gradc.ops.bessel.i1, _mp_i(1, False), _BESSEL_ARGS)
case("erfcx", "erfcx", gradc.ops.bessel.erfcx,
     _mp_map(lambda v: __import__("mpmath").exp(v * v) * __import__("mpmath").erfc(v)),
     shapes((lambda r, s: r.uniform(-1.5, 15, s), M)))      # (below, exp(x^2) swamps finite differences)
case("remainder", "fmod", lambda a, b: a % b, np.remainder, _fmod_args)
case("floor_divide", "fmod", lambda a, b: a // b * a, lambda a, b: a // b * a, _fmod_args)
for _n, _op in (("int_floor_divide", lambda k, j: k // j), ("int_remainder", lambda k, j: k % j),
                ("int_fmod", lambda k, j: np.fmod(k, j))):
    case(_n, _n, (lambda op: lambda x, k, j: x * op(k, j))(_op), (lambda op: lambda x, k, j: x * op(k, j))(_op),
         lambda r: [normal(r, M), r.integers(-20, 21, M), r.choice([-5, -3, -1, 1, 2, 7], M)])
# integer bitwise ops (shift counts beyond the width and negative ones included) and bit
# casts: integer-valued, so the gradient is the float x's alone
for _n, _op in (("bitwise_and", lambda k, j: k & j), ("bitwise_or", lambda k, j: k | j),
                ("bitwise_xor", lambda k, j: k ^ j), ("invert", lambda k, j: ~k + j),
                ("left_shift", lambda k, j: k << j), ("right_shift", lambda k, j: k >> j)):
    case(_n, _n, (lambda op: lambda x, k, j: x * op(k, j))(_op), (lambda op: lambda x, k, j: x * op(k, j))(_op),
         (lambda counts: lambda r: [normal(r, M), r.integers(-1000, 1001, M), r.choice(counts, M)])(
             [-3, 0, 1, 5, 64, 70] if _n == "left_shift" else [-3, 0, 1, 5, 63, 64, 70]))   # (values FD can check)
case("bitwise_count", "bitwise_count", lambda x, k: x * gnp.bitwise_count(k),      # (oracle: Python's bit_count)
     lambda x, k: x * np.vectorize(lambda v: abs(int(v)).bit_count(), otypes=[np.uint8])(k),
     lambda r: [normal(r, M), r.integers(-2**63, 2**63, M, dtype=np.int64)])
case("bitcast", "bitcast", lambda x, k: x * k.view(np.float64), lambda x, k: x * k.view(np.float64),
     lambda r: [normal(r, M), normal(r, M).view(np.int64)])
case("bitcast_u32", "bitcast", lambda x, k: x * ((k >> 9) | 0x3F800000).view(np.float32),
     lambda x, k: x * ((k >> 9) | 0x3F800000).view(np.float32),
     lambda r: [normal(r, M), r.integers(0, 2**32, M, dtype=np.uint32)], extra_ops=("right_shift", "bitwise_or"))
case("exp_vec", "exp", gnp.exp, np.exp, shapes((normal, (5,))))
case("tanh_scalar", "tanh", gnp.tanh, np.tanh, shapes((normal, ())))
case("log_col", "log", gnp.log, np.log, shapes((positive, (4, 1))))

# stop_gradient: forward is the identity, derivative is zero -> f = stop_gradient(x) * y
# has d/dx = 0 and d/dy = x (the value of x frozen at the base point).
case("stop_gradient", "stop_gradient", lambda x, y: gradc.stop_gradient(x) * y, lambda x, y: x * y,
     shapes((normal, M), (normal, M)), ref_grad=lambda base: (lambda x, y: base[0] * y))

# custom_jvp / custom_vjp: functions with the user's rule (here the true derivative, so
# finite differences are the oracle; tests/test_custom_derivatives.py tests rules of
# their own).  x * sin(y) with its product rule, as custom_jvp; and as custom_vjp.
@gradc.custom_jvp
def _xsin(x, y):
    return x * gnp.sin(y)


@_xsin.defjvp
def _xsin_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    return _xsin(x, y), tx * gnp.sin(y) + x * gnp.cos(y) * ty


@gradc.custom_vjp
def _xsin_v(x, y):
    return x * gnp.sin(y)


_xsin_v.defvjp(lambda x, y: (_xsin_v(x, y), (x, y)),
               lambda res, g: (g * gnp.sin(res[1]), g * res[0] * gnp.cos(res[1])))
case("custom_jvp", "custom_jvp", _xsin, lambda x, y: x * np.sin(y), shapes((normal, M), (normal, M)))
case("custom_vjp", "custom_vjp", _xsin_v, lambda x, y: x * np.sin(y), shapes((normal, M), (normal, M)))


# scan: lax.scan's loop (tests/test_scan.py tests it at length); here a running
# product-and-sine over the rows of x with a closed-over y, carry and ys both returned.
def _scan_rows(x, y):
    c, ys = gradc.lax.scan(lambda c, r: (gnp.sin(c * r + y), c * r), gnp.ones(x.shape[1:]), x)
    return c + ys.sum(axis=0)


def _scan_rows_ref(x, y):
    c, total = np.ones(x.shape[1:]), 0.0
    for r in x:
        c, total = np.sin(c * r + y), total + c * r
    return c + total


case("scan", "scan", _scan_rows, _scan_rows_ref, shapes((normal, (5, 4)), (normal, (4,))))


# while: lax.while_loop on a traced condition (tests/test_while_loop.py at length); here
# halving x (with y closed over) while its sum of squares exceeds 1; no reverse mode, so
# only forward-mode and value checks apply (the op table checks values on every backend).
def _halve(x, y):
    return gradc.lax.while_loop(lambda v: gnp.sum(v * v) > 1.0, lambda v: v * 0.5 + y * 1e-3, x)


def _halve_ref(x, y):
    v = x
    while np.sum(v * v) > 1.0:
        v = v * 0.5 + y * 1e-3
    return v


case("while", "while", _halve, _halve_ref, shapes((normal, M), (normal, M)), diff=())

# cast: float64 -> float32 (derivative: the identity, computed exactly in float64),
# int -> float (non-differentiable source), bool -> float.
case("astype_f32", "cast", lambda x: x.astype(np.float32), lambda x: x.astype(np.float32),
     shapes((normal, M)), ref_grad=lambda base: (lambda x: x))
case("astype_int_to_float", "cast", lambda x, k: x * k.astype(np.float64),
     lambda x, k: x * k.astype(np.float64),
     lambda r: [normal(r, M), r.integers(-3, 4, M)])
case("astype_bool_to_float", "cast", lambda x, c: x * gnp.astype(c, np.float64),
     lambda x, c: x * c.astype(np.float64),
     lambda r: [normal(r, M), r.random(M) < 0.5])

# ----------------------------------------------------------------------------- binary element-wise
BROADCASTS = [
    ("same", M, M),
    ("scalar_left", (), M),          # the paper's scalar expansion
    ("scalar_right", M, ()),
    ("col_row", (3, 1), (1, 4)),     # (n,1) with (1,m)
    ("rank_promote", (4,), M),       # rank promotion
    ("rank_promote_right", M, (4,)),
    ("col_matrix", (3, 1), M),
    ("vec", (5,), (5,)),
]


def _nontie(r, sa, sb):
    """Two arrays whose broadcast pairs differ by >= 0.1 (no tie within an FD step)."""
    while True:
        a, b = r.standard_normal(sa), r.standard_normal(sb)
        if np.min(np.abs(np.subtract(a, b)), initial=np.inf) > 0.1:
            return [a, b]


_binary = [
    ("add", "add", lambda x, y: x + y, np.add, normal, normal),
    ("sub", "sub", lambda x, y: x - y, np.subtract, normal, normal),
    ("mul", "mul", lambda x, y: x * y, np.multiply, normal, normal),
    ("div", "div", lambda x, y: x / y, np.divide, normal, positive),
    ("pow", "pow", lambda x, y: x ** y, np.power, positive, normal),
    ("maximum", "maximum", gnp.maximum, np.maximum, None, None),
    ("minimum", "minimum", gnp.minimum, np.minimum, None, None),
]
for _id, _op, _f, _r, _da, _db in _binary:
    for _bid, _sa, _sb in BROADCASTS:
        if _da is None:
            _mk = (lambda sa, sb: lambda r: _nontie(r, sa, sb))(_sa, _sb)
        else:
            _mk = shapes((_da, _sa), (_db, _sb))
        case(f"{_id}_{_bid}", _op, _f, _r, _mk)

# Python scalars on either side (weak: a float32 array stays float32)
case("mul_pyscalar", "mul", lambda x: 2.5 * x, lambda x: 2.5 * x, shapes((normal, M)))
case("rsub_pyscalar", "sub", lambda x: 2.0 - x, lambda x: 2.0 - x, shapes((normal, M)))
case("rdiv_pyscalar", "div", lambda x: 3.0 / x, lambda x: 3.0 / x, shapes((positive, M)))
case("div_pyscalar", "div", lambda x: x / 3.0, lambda x: x / 3.0, shapes((normal, M)))
case("pow_scalar_exponent", "pow", lambda x: x ** 3.0, lambda x: x ** 3.0, shapes((positive, M)))
case("pow_negative_exponent", "pow", lambda x: x ** -1.5, lambda x: x ** -1.5, shapes((positive, M)))
case("pow_scalar_base", "pow", lambda x: 2.0 ** x, lambda x: 2.0 ** x, shapes((normal, M)))
case("pow_np", "pow", lambda x, y: np.power(x, y), np.power, shapes((positive, (4,)), (normal, (4,))))
case("maximum_zero", "maximum", lambda z: gnp.maximum(0.0, z), lambda z: np.maximum(0.0, z), shapes((away, M)))
case("minimum_zero", "minimum", lambda z: gnp.minimum(z, 0.0), lambda z: np.minimum(z, 0.0), shapes((away, M)))

# comparisons: boolean masks (non-differentiable: the gradient through them is zero)
for _id, _op, _f, _r in [("gt", "gt", lambda x, y: x > y, np.greater),
                         ("ge", "ge", lambda x, y: x >= y, np.greater_equal),
                         ("lt", "lt", lambda x, y: x < y, np.less),
                         ("le", "le", lambda x, y: x <= y, np.less_equal),
                         ("eq", "eq", lambda x, y: x == y, np.equal),
                         ("ne", "ne", lambda x, y: x != y, np.not_equal)]:
    case(_id, _op, _f, _r, lambda r: _nontie(r, M, M))
    case(f"{_id}_broadcast", _op, _f, _r, lambda r: _nontie(r, (3, 1), (4,)))
# ties for == and != (x shares some entries with y)
case("eq_ties", "eq", lambda x, y: x == y, np.equal,
     lambda r: (lambda x: [x, np.where(r.random(M) < 0.5, x, x + 1.0)])(normal(r, M)))
case("gt_scalar", "gt", lambda x: x > 0.0, lambda x: x > 0.0, shapes((away, M)))
case("logical_and", "logical_and", lambda a, b: a & b, np.logical_and,
     lambda r: [r.random(M) < 0.5, r.random(M) < 0.5])
case("logical_and_np", "logical_and", lambda a, b: np.logical_and(a, b), np.logical_and,
     lambda r: [r.random(M) < 0.5, r.random((4,)) < 0.5])
case("logical_not", "logical_not", lambda a: ~a, np.logical_not, lambda r: [r.random(M) < 0.5])

# where: the condition is not differentiated
case("where", "where", gnp.where, np.where, lambda r: [r.random(M) < 0.5, normal(r, M), normal(r, M)])
case("where_relu", "where", lambda x: gradc.where(x > 0, x, 0.0), lambda x: np.where(x > 0, x, 0.0),
     shapes((away, M)))
case("where_broadcast", "where", gnp.where, np.where,
     lambda r: [r.random((3, 1)) < 0.5, normal(r, (1, 4)), normal(r, ())])

# ----------------------------------------------------------------------------- reductions
AXES = [(None, False), (None, True), (0, False), (1, False), (0, True), (1, True), (-1, False),
        ((0, 1), False)]
for _ax, _kd in AXES:
    _sfx = f"axis{_ax}{'_keep' if _kd else ''}".replace(" ", "")
    for _name, _op, _g, _r in [("sum", "sum", gnp.sum, np.sum), ("max", "max", gnp.max, np.max),
                               ("min", "min", gnp.min, np.min), ("mean", "count", gnp.mean, np.mean)]:
        case(f"{_name}_{_sfx}", _op,
             (lambda g, a, k: lambda x: g(x, axis=a, keepdims=k))(_g, _ax, _kd),
             (lambda f, a, k: lambda x: f(x, axis=a, keepdims=k))(_r, _ax, _kd),
             shapes((distinct, M)))


def _lse_ref(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    r = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return r if keepdims else np.squeeze(r, axis=axis)


for _ax, _kd in AXES:
    _sfx = f"axis{_ax}{'_keep' if _kd else ''}".replace(" ", "")
    case(f"logsumexp_{_sfx}", "logsumexp",
         (lambda a, k: lambda x: gradc.logsumexp(x, axis=a, keepdims=k))(_ax, _kd),
         (lambda a, k: lambda x: _lse_ref(x, axis=a, keepdims=k))(_ax, _kd),
         shapes((normal, M)))
case("sum_vec", "sum", gnp.sum, np.sum, shapes((normal, (5,))))
case("sum_method_axis0", "sum", lambda x: x.sum(axis=0), lambda x: x.sum(axis=0), shapes((normal, M)))
case("max_vec", "max", lambda x: x.max(), lambda x: x.max(), shapes((distinct, (5,))))
case("mean_vec", "count", lambda x: x.mean(), lambda x: x.mean(), shapes((normal, (5,))))
case("sum_int", "sum", lambda x, k: x * gnp.sum(k), lambda x, k: x * np.sum(k),
     lambda r: [normal(r, M), r.integers(-3, 4, (4,))])
case("softmax", "logsumexp", gradc.softmax,
     lambda x: np.exp(x - _lse_ref(x, axis=-1, keepdims=True)), shapes((normal, M)))
case("softmax_axis0", "logsumexp", lambda x: gradc.softmax(x, axis=0),
     lambda x: np.exp(x) / np.sum(np.exp(x), axis=0, keepdims=True), shapes((normal, M)))
case("log_softmax", "logsumexp", gradc.log_softmax,
     lambda x: x - _lse_ref(x, axis=-1, keepdims=True), shapes((normal, M)))
case("softmax_vec", "logsumexp", gradc.softmax, lambda x: np.exp(x) / np.sum(np.exp(x)),
     shapes((normal, (5,))))

# ----------------------------------------------------------------------------- linear algebra
case("matmul_mat_mat", "matmul", lambda a, b: a @ b, np.matmul, shapes((normal, (3, 4)), (normal, (4, 2))))
case("matmul_mat_vec", "matmul", lambda a, b: a @ b, np.matmul, shapes((normal, (3, 4)), (normal, (4,))))
case("matmul_vec_mat", "matmul", lambda a, b: a @ b, np.matmul, shapes((normal, (4,)), (normal, (4, 2))))
case("matmul_vec_vec", "matmul", lambda a, b: a @ b, np.matmul, shapes((normal, (4,)), (normal, (4,))))
case("matmul_rows_rank3", "matmul", lambda a, b: a @ b, np.matmul, shapes((normal, (2, 3, 4)), (normal, (4, 2))))
case("contract_rank3", "contract", lambda a, b: gnp.einsum("btd,btk->dk", a, b),
     lambda a, b: np.einsum("btd,btk->dk", a, b), shapes((normal, (2, 3, 4)), (normal, (2, 3, 2))))
case("matmul_np", "matmul", lambda a, b: np.matmul(a, b), np.matmul, shapes((normal, (2, 3)), (normal, (3, 3))))
case("dot_vec", "matmul", lambda a, b: gnp.dot(a, b), np.dot, shapes((normal, (4,)), (normal, (4,))))
case("dot_mat_vec", "matmul", lambda a, b: a.dot(b), np.dot, shapes((normal, (3, 4)), (normal, (4,))))
case("dot_scalar", "mul", lambda a, b: gnp.dot(a, b), np.dot, shapes((normal, ()), (normal, (4,))))
case("outer", "mul", gradc.outer, np.outer, shapes((normal, (3,)), (normal, (4,))), extra_ops=("reshape",))
case("transpose_T", "transpose", lambda x: x.T, lambda x: x.T, shapes((normal, (3, 4))))
case("transpose_fn", "transpose", lambda x: gnp.transpose(x), np.transpose, shapes((normal, (2, 5))))
case("transpose_method", "transpose", lambda x: x.transpose(1, 0) * 2.0, lambda x: x.transpose(1, 0) * 2.0,
     shapes((normal, (3, 4))))

# ----------------------------------------------------------------------------- structure
case("reshape_flat", "reshape", lambda x: x.reshape(12), lambda x: x.reshape(12), shapes((normal, M)))
case("reshape_2x6", "reshape", lambda x: x.reshape(2, 6), lambda x: x.reshape(2, 6), shapes((normal, M)))
case("reshape_minus1", "reshape", lambda x: gnp.reshape(x, (-1, 2)), lambda x: np.reshape(x, (-1, 2)),
     shapes((normal, M)))
case("reshape_row", "reshape", lambda x: x.reshape(1, -1), lambda x: x.reshape(1, -1), shapes((normal, (5,))))
case("reshape_newaxis", "reshape", lambda x: x[:, None] * x[None, :], lambda x: x[:, None] * x[None, :],
     shapes((normal, (4,))))
case("broadcast_to", "broadcast_to", lambda x: gnp.broadcast_to(x, (3, 4)),
     lambda x: np.broadcast_to(x, (3, 4)), shapes((normal, (4,))))
case("broadcast_to_col", "broadcast_to", lambda x: np.broadcast_to(x, (3, 4)),
     lambda x: np.broadcast_to(x, (3, 4)), shapes((normal, (3, 1))))
case("slice_1_4", "slice", lambda x: x[1:4], lambda x: x[1:4], shapes((normal, (6,))))
case("slice_column", "slice", lambda X: X[:, 2], lambda X: X[:, 2], shapes((normal, M)))
case("slice_row", "slice", lambda X: X[1], lambda X: X[1], shapes((normal, M)))
case("slice_first", "slice", lambda v: v[0], lambda v: v[0], shapes((normal, (5,))))
case("slice_last", "slice", lambda v: v[-1], lambda v: v[-1], shapes((normal, (5,))))
case("slice_reverse", "slice", lambda v: v[::-1], lambda v: v[::-1], shapes((normal, (5,))))
case("slice_neg_step", "slice", lambda v: v[5:1:-2], lambda v: v[5:1:-2], shapes((normal, (7,))))
case("slice_2d_neg", "slice", lambda X: X[1:, ::-2], lambda X: X[1:, ::-2], shapes((normal, M)))
case("slice_tail", "slice", lambda X: X[-2:], lambda X: X[-2:], shapes((normal, M)))
case("slice_ellipsis", "slice", lambda X: X[..., 1], lambda X: X[..., 1], shapes((normal, M)))
case("unslice", "unslice", lambda x: bind("unslice", x, index=((1, 4, 1),), shape=(6,)),
     lambda x: np.concatenate([np.zeros(1, x.dtype), x, np.zeros(2, x.dtype)]), shapes((normal, (3,))))
case("unslice_2d", "unslice", lambda x: bind("unslice", x, index=((0, 3, 2), (1, 2, 1)), shape=(4, 3)),
     lambda x: (lambda z: (z.__setitem__((slice(0, 3, 2), slice(1, 2)), x), z)[1])(np.zeros((4, 3), x.dtype)),
     shapes((normal, (2, 1))))
_LABELS = np.array([3, 0, 2])
case("gather_rows_labels", "gather", lambda S: S[np.arange(3), _LABELS], lambda S: S[np.arange(3), _LABELS],
     shapes((normal, M)))
case("gather_traced_labels", "gather", lambda S, y: S[gradc.arange_like(S), y], lambda S, y: S[np.arange(3), y],
     lambda r: [normal(r, M), _LABELS.copy()], extra_ops=("iota",))
case("gather_vec_dups", "gather", lambda v: v[np.array([0, 2, 2, 4])], lambda v: v[np.array([0, 2, 2, 4])],
     shapes((normal, (5,))))
case("gather_rows", "gather", lambda X: X[np.array([2, 0, 2])], lambda X: X[np.array([2, 0, 2])],
     shapes((normal, M)), extra_ops=("iota",))
_TA = np.array([[1, 3], [0, 0], [2, 1]])
case("take_along_axis1", "gather", lambda X: gradc.take_along_axis(X, _TA, axis=1),
     lambda X: np.take_along_axis(X, _TA, axis=1), shapes((normal, M)), extra_ops=("iota",))
case("take_along_axis0", "gather", lambda X: np.take_along_axis(X, np.array([[2, 0, 1, 1]]), axis=0),
     lambda X: np.take_along_axis(X, np.array([[2, 0, 1, 1]]), axis=0), shapes((normal, M)))
case("scatter_add", "scatter_add", lambda u: bind("scatter_add", u, np.array([0, 2, 2, 4]), shape=(5,)),
     lambda u: (lambda z: (np.add.at(z, np.array([0, 2, 2, 4]), u), z)[1])(np.zeros(5, u.dtype)),
     shapes((normal, (4,))))
case("iota", "iota", lambda x: gradc.arange_like(x) * x, lambda x: np.arange(x.shape[0]) * x,
     shapes((normal, (5,))))
case("concatenate_vec", "concatenate", lambda a, b: gnp.concatenate([a, b]), lambda a, b: np.concatenate([a, b]),
     shapes((normal, (3,)), (normal, (4,))))
case("concatenate_axis1", "concatenate", lambda a, b: np.concatenate([a, b], axis=1),
     lambda a, b: np.concatenate([a, b], axis=1), shapes((normal, (3, 2)), (normal, (3, 4))))
case("stack", "concatenate", lambda a, b: gnp.stack([a, b]), lambda a, b: np.stack([a, b]),
     shapes((normal, (4,)), (normal, (4,))))
case("stack_axis1", "concatenate", lambda a, b: np.stack([a, b], axis=1), lambda a, b: np.stack([a, b], axis=1),
     shapes((normal, (4,)), (normal, (4,))))
case("array_of_scalars", "concatenate", lambda a, b: gnp.array([a * b, a + b, a]),
     lambda a, b: np.array([a * b, a + b, a]), shapes((normal, ()), (normal, ())))

# ----------------------------------------------------------------------------- ties
# The lines above avoid ties (_nontie, distinct, away) so that finite differences apply.
# These lines sit on ties and check docs/derivatives.md's rule with closed forms:
# between two varying operands a tie of maximum/minimum splits the gradient 1/2-1/2;
# against a constant (relu, clip, maximum(0, z)) and in where's condition it is strict;
# k tied extrema of a max/min reduction get 1/k each.
def _halves(r, shape):
    """Integer multiples of 1/2 in [-1, 1]: exact in float32, ties everywhere."""
    return r.integers(-2, 3, shape) * 0.5


def _tie_pair(sa, sb):
    def make(r):
        a = _halves(r, sa)
        b = np.where(r.random(np.broadcast_shapes(sa, sb)) < 0.6, a, _halves(r, np.broadcast_shapes(sa, sb)))
        return [a, np.asarray(b[tuple(slice(0, n) for n in sb)] if sb else b.reshape(-1)[0])]
    return make


def _sum_to(x, shape):
    """Sum a broadcast cotangent back to ``shape`` (numpy's broadcasting, reversed)."""
    x = np.sum(x, axis=tuple(range(x.ndim - len(shape)))) if x.ndim > len(shape) else x
    return np.sum(x, axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True).reshape(shape)


def _split_grads(op):
    def grads(args, v):
        a, b = args
        wins = (a > b) if op == "maximum" else (a < b)
        loses = (b > a) if op == "maximum" else (b < a)
        tie = np.equal(a, b)
        return [_sum_to(v * (wins + 0.5 * tie), np.shape(a)), _sum_to(v * (loses + 0.5 * tie), np.shape(b))]
    return grads


for _op in ("maximum", "minimum"):
    for _bid, _sa, _sb in [("same", M, M), ("col_row", (3, 1), (1, 4)), ("scalar_right", M, ()),
                           ("rank_promote", (4,), M)]:
        case(f"{_op}_ties_{_bid}", _op, getattr(gnp, _op), getattr(np, _op), _tie_pair(_sa, _sb),
             tie_grads=_split_grads(_op))
    # a value against itself, and two expressions with equal values: derivative 1, 2
    case(f"{_op}_self", _op, lambda x, _o=_op: getattr(gnp, _o)(x, x), lambda x, _o=_op: getattr(np, _o)(x, x),
         shapes((_halves, M)), tie_grads=lambda args, v: [v])
    case(f"{_op}_equal_expressions", _op, lambda x, _o=_op: getattr(gnp, _o)(x * 2.0, x + x),
         lambda x, _o=_op: getattr(np, _o)(x * 2.0, x + x), shapes((_halves, M)),
         tie_grads=lambda args, v: [2.0 * v])
case("maximum_zero_ties", "maximum", lambda z: gnp.maximum(0.0, z), lambda z: np.maximum(0.0, z),
     shapes((_halves, M)), tie_grads=lambda args, v: [v * (args[0] > 0)])
case("minimum_const_array_ties", "minimum", lambda z: gnp.minimum(z, np.full(M, 0.5)),
     lambda z: np.minimum(z, np.full(M, 0.5)), shapes((_halves, M)), tie_grads=lambda args, v: [v * (args[0] < 0.5)])
case("relu_ties", "relu", gradc.relu, lambda x: np.maximum(x, 0.0), shapes((_halves, M)),
     tie_grads=lambda args, v: [v * (args[0] > 0)])
case("clip_ties", "minimum", lambda x: gnp.clip(x, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5),
     shapes((_halves, M)), tie_grads=lambda args, v: [v * ((args[0] > -0.5) & (args[0] < 0.5))])
case("abs_zero", "abs", gnp.abs, np.abs, shapes((_halves, M)), tie_grads=lambda args, v: [v * np.sign(args[0])])
case("where_ties", "where", lambda x, y: gnp.where(x > y, x, y), lambda x, y: np.where(x > y, x, y),
     _tie_pair(M, M), tie_grads=lambda args, v: [v * (args[0] > args[1]), v * (args[0] <= args[1])])


def _extremum_grads(red, axis, keepdims):
    def grads(args, v):
        (x,) = args
        m = red(x, axis=axis, keepdims=True)
        hit = x == m
        vv = v if keepdims or axis is None else np.expand_dims(v, axis)
        return [vv * hit / np.sum(hit, axis=axis, keepdims=True)]
    return grads


for _name, _red, _nred in [("max", gnp.max, np.max), ("min", gnp.min, np.min)]:
    for _ax, _kd in [(None, False), (0, False), (1, True), (-1, False)]:
        case(f"{_name}_ties_axis{_ax}{'_keep' if _kd else ''}", _name,
             (lambda g, a, k: lambda x: g(x, axis=a, keepdims=k))(_red, _ax, _kd),
             (lambda f, a, k: lambda x: f(x, axis=a, keepdims=k))(_nred, _ax, _kd),
             lambda r: [r.integers(0, 2, (4, 5)) * 0.5],           # 2-5 way ties per row/column
             tie_grads=_extremum_grads(_nred, _ax, _kd))

# ----------------------------------------------------------------------------- numpy's wider surface
# Composites (gradc/ops/mathfuncs.py, stats.py, arrays.py): each line names a primitive
# its composition rests on, which must appear in the graph.  Checked like every line:
# against numpy, finite differences of numpy, JVP against VJP, float32.
def _unit(r, s):
    """(-0.9, 0.9): inside the domain of arcsin, arccos, arctanh, off their edges."""
    return r.uniform(-0.9, 0.9, s)


def _wide(r, s):
    return 3.0 * r.standard_normal(s)


_math = [
    ("sinh", "expm1", gnp.sinh, np.sinh, _wide),
    ("cosh", "expm1", gnp.cosh, np.cosh, _wide),
    ("tan", "sin", gnp.tan, np.tan, _unit),
    ("arcsinh", "log1p", gnp.arcsinh, np.arcsinh, _wide),
    ("arctanh", "log1p", gnp.arctanh, np.arctanh, _unit),
    ("arctan", "div", gnp.arctan, np.arctan, _wide),
    ("arcsin", "sqrt", gnp.arcsin, np.arcsin, _unit),
    ("arccos", "sqrt", gnp.arccos, np.arccos, _unit),
    ("log2", "log", gnp.log2, np.log2, positive),
    ("log10", "log", gnp.log10, np.log10, positive),
    ("exp2", "pow", gnp.exp2, np.exp2, normal),
    ("cbrt", "pow", gnp.cbrt, np.cbrt, away),
    ("reciprocal", "div", gnp.reciprocal, np.reciprocal, away),
    ("sinh_np", "expm1", lambda x: np.sinh(x), np.sinh, normal),
    ("arctan_np", "div", lambda x: np.arctan(x), np.arctan, _wide),
]
for _id, _op, _f, _r, _dom in _math:
    case(_id, _op, _f, _r, shapes((_dom, M)))
case("sinh_scalar", "expm1", gnp.sinh, np.sinh, shapes((normal, ())))
case("logaddexp", "softplus", gnp.logaddexp, np.logaddexp, shapes((_wide, M), (_wide, M)))
case("logaddexp_col_row", "softplus", gnp.logaddexp, np.logaddexp, shapes((_wide, (3, 1)), (_wide, (4,))))
# ties: a == b exactly at half the entries (the gradient is 1/2, 1/2 there: smooth)
case("logaddexp_ties", "softplus", gnp.logaddexp, np.logaddexp,
     lambda r: (lambda a: [a, np.where(r.random(M) < 0.5, a, r.standard_normal(M))])(normal(r, M)))
case("logaddexp_np", "softplus", lambda a, b: np.logaddexp(a, b), np.logaddexp, shapes((normal, M), (normal, ())))
case("logaddexp2", "log1p", gnp.logaddexp2, np.logaddexp2, shapes((_wide, M), (_wide, M)))
case("arctan2", "div", gnp.arctan2, np.arctan2, shapes((away, M), (away, M)))
case("arctan2_broadcast", "div", lambda y, x: np.arctan2(y, x), np.arctan2, shapes((away, (3, 1)), (away, (4,))))
# heaviside: x1 has exact zeros (where x2 is chosen); only x2 is differentiated (the step
# in x1 has no derivative at 0)
case("heaviside", "where", gnp.heaviside, np.heaviside,
     lambda r: [np.where(r.random(M) < 0.3, 0.0, away(r, M)), normal(r, M)], diff=(1,))
case("nan_to_num", "where", lambda x: gnp.nan_to_num(x, posinf=5.0, neginf=-5.0),
     lambda x: np.nan_to_num(x, posinf=5.0, neginf=-5.0),
     lambda r: [np.where(r.random(M) < 0.3, r.choice([np.nan, np.inf, -np.inf], M), normal(r, M))])
case("isfinite", "lt", gnp.isfinite, np.isfinite,
     lambda r: [np.where(r.random(M) < 0.4, r.choice([np.nan, np.inf, -np.inf], M), normal(r, M))])
case("isnan", "ne", lambda x: np.isnan(x), np.isnan,
     lambda r: [np.where(r.random(M) < 0.4, r.choice([np.nan, np.inf], M), normal(r, M))])
case("clip_np", "minimum", lambda x: np.clip(x, -0.5, 0.7), lambda x: np.clip(x, -0.5, 0.7), shapes((away, M)))

# reductions: every axis variant of a matrix
for _ax, _kd in AXES:
    _sfx = f"axis{_ax}{'_keep' if _kd else ''}".replace(" ", "")
    for _name, _op, _g, _r in [("var", "count", gnp.var, np.var), ("std", "sqrt", gnp.std, np.std),
                               ("prod", "mul", gnp.prod, np.prod)]:
        case(f"{_name}_{_sfx}", _op,
             (lambda g, a, k: lambda x: g(x, axis=a, keepdims=k))(_g, _ax, _kd),
             (lambda f, a, k: lambda x: f(x, axis=a, keepdims=k))(_r, _ax, _kd),
             shapes((normal, M)))
    for _name, _g, _r in [("argmax", gnp.argmax, np.argmax), ("argmin", gnp.argmin, np.argmin)]:
        if not isinstance(_ax, tuple):
            case(f"{_name}_{_sfx}", "min", (lambda g, a, k: lambda x: g(x, axis=a, keepdims=k))(_g, _ax, _kd),
                 (lambda f, a, k: lambda x: f(x, axis=a, keepdims=k))(_r, _ax, _kd), shapes((normal, M)))
    for _name, _g, _r in [("any", gnp.any, np.any), ("all", gnp.all, np.all)]:
        case(f"{_name}_{_sfx}", "sum", (lambda g, a, k: lambda x: g(x > 0.5, axis=a, keepdims=k))(_g, _ax, _kd),
             (lambda f, a, k: lambda x: f(x > 0.5, axis=a, keepdims=k))(_r, _ax, _kd), shapes((normal, M)))
case("var_ddof1_axis0", "count", lambda x: gnp.var(x, axis=0, ddof=1), lambda x: np.var(x, axis=0, ddof=1),
     shapes((normal, M)))
case("std_ddof1", "sqrt", lambda x: x.std(ddof=1), lambda x: x.std(ddof=1), shapes((normal, M)))
case("var_method_vec", "count", lambda x: x.var(), lambda x: x.var(), shapes((normal, (5,))))
case("var_np_int", "count", lambda x, k: x * np.var(k, axis=1), lambda x, k: x * np.var(k, axis=1),
     lambda r: [normal(r, (3,)), r.integers(-3, 4, M)])
case("average_weights", "div", lambda x, w: gnp.average(x, axis=1, weights=w),
     lambda x, w: np.average(x, axis=1, weights=w), shapes((normal, M), (positive, (4,))))
case("average_all", "div", lambda x, w: np.average(x, weights=w), lambda x, w: np.average(x, weights=w),
     shapes((normal, M), (positive, M)))
case("average_plain", "count", lambda x: gnp.average(x, axis=0), lambda x: np.average(x, axis=0),
     shapes((normal, M)))
# prod: the gradient of an element is the product of the others, zeros included
# (one zero in a row: only its gradient is nonzero; two zeros: all vanish)
_ZEROS = np.array([[0.0, 1.5, -0.7, 2.0], [0.0, 0.0, 1.1, -1.3], [0.9, -1.2, 1.4, 0.8]])
case("prod_zeros_axis1", "mul", lambda x: gnp.prod(x, axis=1), lambda x: np.prod(x, axis=1),
     lambda r: [_ZEROS.copy()])
case("prod_zeros_all", "mul", lambda x: x.prod(), lambda x: x.prod(), lambda r: [_ZEROS.copy()])
case("prod_odd_vec", "mul", gnp.prod, np.prod, shapes((normal, (7,))))
case("prod_int", "mul", lambda x, k: x * gnp.prod(k, axis=0), lambda x, k: x * np.prod(k, axis=0),
     lambda r: [normal(r, (4,)), r.integers(-3, 4, M)])
for _name, _op, _g, _r in [("cumsum", "unslice", gnp.cumsum, np.cumsum), ("cumprod", "unslice", gnp.cumprod, np.cumprod)]:
    for _ax in (None, 0, 1, -1):
        case(f"{_name}_axis{_ax}", _op, (lambda g, a: lambda x: g(x, axis=a))(_g, _ax),
             (lambda f, a: lambda x: f(x, axis=a))(_r, _ax), shapes((normal, M)))
    case(f"{_name}_vec7", _op, _g, _r, shapes((normal, (7,))), extra_ops=("copy",))   # its levels: buffers
case("cumprod_zeros", "unslice", lambda x: gnp.cumprod(x, axis=1), lambda x: np.cumprod(x, axis=1),
     lambda r: [_ZEROS.copy()])
case("cumsum_method", "unslice", lambda x: x.cumsum(0), lambda x: x.cumsum(0), shapes((normal, M)))
case("cumsum_np_int", "unslice", lambda x, k: x * np.cumsum(k), lambda x, k: x * np.cumsum(k),
     lambda r: [normal(r, (5,)), r.integers(-3, 4, (5,))])
case("diff", "sub", gnp.diff, np.diff, shapes((normal, M)))
case("diff_n2_axis0", "sub", lambda x: gnp.diff(x, 2, axis=0), lambda x: np.diff(x, 2, axis=0), shapes((normal, M)))
case("diff_prepend", "sub", lambda x: np.diff(x, prepend=0.5, append=x[-1:]),
     lambda x: np.diff(x, prepend=0.5, append=x[-1:]), shapes((normal, (6,))))
# argmax/argmin ties: integer-valued data, numpy returns the first extreme (forward
# only, diff=(): a finite difference at a tie moves the argmax)
case("argmax_ties", "min", lambda x: gnp.argmax(x, axis=1), lambda x: np.argmax(x, axis=1),
     lambda r: [r.integers(0, 3, M).astype(np.float64)], diff=())
case("argmin_ties_all", "min", lambda x: x.argmin(), lambda x: x.argmin(),
     lambda r: [r.integers(0, 2, M).astype(np.float64)], diff=())
_NORMS = [("norm", {}), ("norm_vec_1", {"ord": 1}), ("norm_vec_2", {"ord": 2}), ("norm_vec_inf", {"ord": np.inf}),
          ("norm_vec_ninf", {"ord": -np.inf}), ("norm_vec_3", {"ord": 3})]
for _id, _kw in _NORMS:
    case(_id, "sum" if _kw.get("ord") not in (np.inf, -np.inf) else "max" if _kw["ord"] == np.inf else "min",
         (lambda k: lambda x: gnp.linalg.norm(x, **k))(_kw), (lambda k: lambda x: np.linalg.norm(x, **k))(_kw),
         shapes((away, (5,))))
for _id, _kw in [("norm_fro", {"ord": "fro"}), ("norm_mat_1", {"ord": 1}), ("norm_mat_inf", {"ord": np.inf}),
                 ("norm_mat_n1", {"ord": -1}), ("norm_axis1", {"axis": 1}),
                 ("norm_axis0_keep_1", {"axis": 0, "keepdims": True, "ord": 1}), ("norm_all_keep", {"keepdims": True})]:
    case(_id, "sum", (lambda k: lambda x: np.linalg.norm(x, **k))(_kw), (lambda k: lambda x: np.linalg.norm(x, **k))(_kw),
         shapes((distinct, M)))

# matrix structure
case("diag_vec", "where", gnp.diag, np.diag, shapes((normal, (4,))))
case("diag_vec_k1", "unslice", lambda v: gnp.diag(v, 1), lambda v: np.diag(v, 1), shapes((normal, (3,))))
case("diag_vec_km2", "unslice", lambda v: np.diag(v, -2), lambda v: np.diag(v, -2), shapes((normal, (3,))))
case("diag_mat", "gather", gnp.diag, np.diag, shapes((normal, M)))
for _k in (-1, 0, 1, 3):
    case(f"diagonal_k{_k}", "gather", (lambda k: lambda x: gnp.diagonal(x, k))(_k),
         (lambda k: lambda x: np.diagonal(x, k))(_k), shapes((normal, M)))
case("diagonal_method", "gather", lambda x: x.diagonal(1), lambda x: x.diagonal(1), shapes((normal, (4, 3))))
case("trace", "gather", gnp.trace, np.trace, shapes((normal, M)))
case("trace_k1_np", "gather", lambda x: np.trace(x, 1), lambda x: np.trace(x, 1), shapes((normal, M)))
case("trace_method", "gather", lambda x: x.trace(), lambda x: x.trace(), shapes((normal, (4, 4))))
for _k in (-1, 0, 2):
    case(f"triu_k{_k}", "where", (lambda k: lambda x: gnp.triu(x, k))(_k), (lambda k: lambda x: np.triu(x, k))(_k),
         shapes((normal, M)))
    case(f"tril_k{_k}", "where", (lambda k: lambda x: np.tril(x, k))(_k), (lambda k: lambda x: np.tril(x, k))(_k),
         shapes((normal, M)))
case("tril_vec", "where", gnp.tril, np.tril, shapes((normal, (4,))))
# rank 3: the diagonals of any two axes, a stack of triangles (numpy's semantics)
T3 = (3, 4, 5)
for _d in ((0, 0, 1), (1, 0, 2), (-1, 2, 1), (2, -1, -2)):
    case(f"diagonal_r3_{_d}", "gather", (lambda d: lambda x: gnp.diagonal(x, *d))(_d),
         (lambda d: lambda x: np.diagonal(x, *d))(_d), shapes((normal, T3)))
    case(f"trace_r3_{_d}", "gather", (lambda d: lambda x: np.trace(x, *d))(_d),
         (lambda d: lambda x: np.trace(x, *d))(_d), shapes((normal, T3)))
case("triu_r3", "where", lambda x: gnp.triu(x, 1), lambda x: np.triu(x, 1), shapes((normal, T3)))
case("tril_r4", "where", lambda x: np.tril(x, -1), lambda x: np.tril(x, -1), shapes((normal, (2,) + T3)))

# constructors: constants combined with traced values, a traced fill value
case("eye_k1", "mul", lambda x: gnp.eye(3, 4, k=1) * x, lambda x: np.eye(3, 4, k=1) * x, shapes((normal, M)))
case("identity", "matmul", lambda x: x @ gnp.identity(4), lambda x: x @ np.identity(4), shapes((normal, M)))
case("zeros_ones", "add", lambda x: x + gnp.zeros((3, 4)) + 2 * gnp.ones(4), lambda x: x + np.zeros((3, 4)) + 2 * np.ones(4),
     shapes((normal, M)))
case("full_traced", "broadcast_to", lambda s: gnp.full((3, 4), s), lambda s: np.full((3, 4), s), shapes((normal, ())))
case("full_like_traced", "broadcast_to", lambda x, s: gnp.full_like(x, s) * x, lambda x, s: np.full_like(x, s) * x,
     shapes((normal, M), (normal, ())))
case("zeros_like_np", "broadcast_to", lambda x: np.zeros_like(x) + np.ones_like(x) * x,
     lambda x: np.zeros_like(x) + np.ones_like(x) * x, shapes((normal, M)))

# joining and repetition
case("hstack_vec", "concatenate", lambda a, b: gnp.hstack([a, b]), lambda a, b: np.hstack([a, b]),
     shapes((normal, (3,)), (normal, (4,))))
case("hstack_mat", "concatenate", lambda a, b: np.hstack([a, b]), lambda a, b: np.hstack([a, b]),
     shapes((normal, (3, 2)), (normal, (3, 4))))
case("vstack", "concatenate", lambda a, b: gnp.vstack([a, b]), lambda a, b: np.vstack([a, b]),
     shapes((normal, M), (normal, (4,))))
case("vstack_np", "concatenate", lambda a, b: np.vstack((a, b)), lambda a, b: np.vstack((a, b)),
     shapes((normal, (4,)), (normal, (4,))))
# a rank-3 result, reduced (a rank-3 cotangent cannot be an argument)
case("dstack", "concatenate", lambda a, b: gnp.sum(gnp.dstack([a, 2.0 * b]) ** 2, axis=2),
     lambda a, b: np.sum(np.dstack([a, 2.0 * b]) ** 2, axis=2), shapes((normal, M), (normal, M)))
case("column_stack", "concatenate", lambda a, b: np.column_stack([a, b]), lambda a, b: np.column_stack([a, b]),
     shapes((normal, (3,)), (normal, (3, 2))))
case("concatenate_none", "concatenate", lambda a, b: gnp.concatenate([a, b], axis=None),
     lambda a, b: np.concatenate([a, b], axis=None), shapes((normal, M), (normal, (5,))))
case("tile_vec", "broadcast_to", lambda x: gnp.tile(x, 3), lambda x: np.tile(x, 3), shapes((normal, (4,))))
case("tile_vec_2d", "broadcast_to", lambda x: np.tile(x, (2, 2)), lambda x: np.tile(x, (2, 2)), shapes((normal, (3,))))
case("tile_mat", "broadcast_to", lambda x: gnp.tile(x, (2, 3)), lambda x: np.tile(x, (2, 3)), shapes((normal, M)))
case("repeat_flat", "broadcast_to", lambda x: gnp.repeat(x, 2), lambda x: np.repeat(x, 2), shapes((normal, M)))
case("repeat_axis0", "broadcast_to", lambda x: np.repeat(x, 3, axis=0), lambda x: np.repeat(x, 3, axis=0),
     shapes((normal, M)))
case("repeat_axis1_method", "broadcast_to", lambda x: x.repeat(2, axis=1), lambda x: x.repeat(2, axis=1),
     shapes((normal, M)))
case("repeat_counts", "gather", lambda x: gnp.repeat(x, [2, 0, 1, 3], axis=1), lambda x: np.repeat(x, [2, 0, 1, 3], axis=1),
     shapes((normal, M)))
case("pad_zeros", "unslice", lambda x: gnp.pad(x, ((1, 2), (0, 1))), lambda x: np.pad(x, ((1, 2), (0, 1))),
     shapes((normal, M)))
case("pad_constant", "unslice", lambda x: np.pad(x, 2, constant_values=1.5), lambda x: np.pad(x, 2, constant_values=1.5),
     shapes((normal, M)))
for _mode in ("edge", "reflect", "symmetric", "wrap"):
    case(f"pad_{_mode}", "gather", (lambda m: lambda x: gnp.pad(x, ((2, 1), (1, 3)), mode=m))(_mode),
         (lambda m: lambda x: np.pad(x, ((2, 1), (1, 3)), mode=m))(_mode), shapes((normal, M)))
case("pad_edge_vec", "gather", lambda x: np.pad(x, (3, 1), mode="edge"), lambda x: np.pad(x, (3, 1), mode="edge"),
     shapes((normal, (4,))))

# ordering: sort scatters each element to its rank (its gradient gathers back);
# argsort is stable, so ties follow numpy's stable sort
case("sort_vec", "scatter_add", gnp.sort, np.sort, shapes((distinct, (7,))))
case("sort_mat", "scatter_add", lambda x: np.sort(x), lambda x: np.sort(x), shapes((distinct, M)))
case("sort_axis0", "scatter_add", lambda x: gnp.sort(x, axis=0), lambda x: np.sort(x, axis=0), shapes((distinct, M)))
case("sort_none", "scatter_add", lambda x: gnp.sort(x, axis=None), lambda x: np.sort(x, axis=None), shapes((distinct, M)))
case("argsort", "scatter_add", gnp.argsort, np.argsort, shapes((distinct, M)))
for _a in (0, 1, 2):
    case(f"sort_r3_axis{_a}", "scatter_add", (lambda a: lambda x: gnp.sort(x, axis=a))(_a),
         (lambda a: lambda x: np.sort(x, axis=a))(_a), shapes((distinct, T3)))
case("argsort_r3_ties", "scatter_add", lambda x: gnp.argsort(x, axis=1), lambda x: np.argsort(x, axis=1, kind="stable"),
     lambda r: [r.integers(0, 3, T3).astype(np.float64)], diff=())
case("argsort_ties", "scatter_add", lambda x: np.argsort(x, axis=0), lambda x: np.argsort(x, axis=0, kind="stable"),
     lambda r: [r.integers(0, 3, (6, 4)).astype(np.float64)], diff=())
case("argsort_method", "scatter_add", lambda x: x.argsort(), lambda x: x.argsort(kind="stable"),
     lambda r: [r.integers(0, 3, (9,)).astype(np.float64)], diff=())

# LAPACK ops, last in the table (each line's inputs are drawn from its position: lines
# added here leave the others' unchanged).  tests/test_lapack.py has them at every size,
# batched, and their errors:
# well-conditioned 3x3 inputs (X + 3 I, or X Xᵀ + 3 I for the symmetric ones, whose
# derivative is that of the symmetric matrix: composing makes entry-wise finite
# differences see it); eigenvectors enter squared, which their sign does not change.
def _well(r, s):
    return r.standard_normal(s) + 3 * numpy.eye(s[-1])


def _spd_of(x, m):
    return x @ m.swapaxes(x, -1, -2) + 3 * m.eye(x.shape[-1])


case("solve", "solve", lambda a, b: gnp.linalg.solve(a, b), np.linalg.solve, shapes((_well, (3, 3)), (normal, (3, 2))))
case("solve_vec_batched", "solve", lambda a, b: gnp.linalg.solve(a, b), np.linalg.solve,
     shapes((_well, (2, 3, 3)), (normal, (3,))))
case("inv", "inv", gnp.linalg.inv, np.linalg.inv, shapes((_well, (3, 3))))
case("det", "det", gnp.linalg.det, np.linalg.det, shapes((_well, (2, 3, 3))))
case("slogdet", "slogdet", lambda a: gnp.linalg.slogdet(a)[1], lambda a: np.linalg.slogdet(a)[1],
     shapes((_well, (3, 3))))
case("cholesky", "cholesky", lambda x: gnp.linalg.cholesky(_spd_of(x, gnp)),
     lambda x: np.linalg.cholesky(_spd_of(x, np)), shapes((normal, (3, 3))))
case("eigvalsh", "eigvalsh", lambda x: gnp.linalg.eigvalsh(_spd_of(x, gnp)),
     lambda x: np.linalg.eigvalsh(_spd_of(x, np)), shapes((normal, (3, 3))))
case("eigh", "eigh", lambda x: gnp.linalg.eigh(_spd_of(x, gnp))[1] ** 2,
     lambda x: np.linalg.eigh(_spd_of(x, np))[1] ** 2, shapes((normal, (3, 3))))
case("solve_triangular", "solve_triangular", lambda a, b: solve_triangular(a, b, lower=False),
     lambda a, b: np.linalg.solve(np.triu(a), b), shapes((_well, (3, 3)), (normal, (3, 2))))
# SVD and QR (gradc/ops/decomp.py; tests/test_linalg_svd.py has them at more sizes, with
# JAX and closed forms): random matrices, whose singular values are distinct; singular
# vectors enter squared, which their sign does not change; QR (unique for Householder's
# sign convention) where it is differentiable, M >= N.
case("svdvals", "svdvals", gnp.linalg.svdvals, lambda a: np.linalg.svd(a, compute_uv=False), shapes((normal, (2, 4, 3))))
case("svd_u_tall", "svd_u", lambda a: gnp.linalg.svd(a, full_matrices=False)[0] ** 2,
     lambda a: np.linalg.svd(a, full_matrices=False)[0] ** 2, shapes((normal, (4, 3))))
case("svd_vt_wide", "svd_vt", lambda a: gnp.linalg.svd(a, full_matrices=False)[2] ** 2,
     lambda a: np.linalg.svd(a, full_matrices=False)[2] ** 2, shapes((normal, (3, 4))))
case("svd_usv_wide", "svd_u", lambda a: (lambda u, s, vt: (u * gnp.sin(s)[None, :]) @ vt)(*gnp.linalg.svd(a, False)),
     lambda a: (lambda u, s, vt: (u * np.sin(s)[None, :]) @ vt)(*np.linalg.svd(a, False)), shapes((normal, (3, 5))),
     extra_ops=("svd_vt",))
case("qr_q", "qr_q", lambda a: gnp.linalg.qr(a)[0], lambda a: np.linalg.qr(a)[0], shapes((normal, (4, 3))))
case("qr_r", "qr_r", lambda a: gnp.linalg.qr(a, mode="r"), lambda a: np.linalg.qr(a, mode="r"), shapes((normal, (2, 3, 3))))
case("pinv_tall", "pinv", gnp.linalg.pinv, np.linalg.pinv, shapes((normal, (4, 3))))
case("pinv_wide", "pinv", gnp.linalg.pinv, np.linalg.pinv, shapes((normal, (2, 3, 4))))
for _id, _kw in [("norm_mat_2", {"ord": 2}), ("norm_mat_n2", {"ord": -2}), ("norm_mat_nuc", {"ord": "nuc"}),
                 ("norm_nuc_axes_keep", {"ord": "nuc", "axis": (2, 0), "keepdims": True})]:
    case(_id, "svdvals", (lambda k: lambda x: np.linalg.norm(x, **k))(_kw), (lambda k: lambda x: np.linalg.norm(x, **k))(_kw),
         shapes((normal, (3, 2, 4) if "axis" in _kw else (3, 4))))
case("cond", "svdvals", gnp.linalg.cond, np.linalg.cond, shapes((normal, (3, 3))))


# (lines added after the LAPACK ones leave every other line's inputs unchanged)
def _stable_ranks(x):
    """Sort positions along the last axis by definition: the elements before, or equal
    and earlier (nan last, equal to nan): numpy's stable argsort, inverted."""
    return np.argsort(np.argsort(x, axis=-1, kind="stable"), axis=-1, kind="stable")


case("sort_rank", "sort_rank", lambda x: x * gnp.astype(bind("sort_rank", x), x.dtype),
     lambda x: x * _stable_ranks(x).astype(x.dtype), shapes((distinct, T3)))
case("sort_rank_ties_nan", "sort_rank", lambda x: bind("sort_rank", x), _stable_ranks,
     lambda r: [np.where(r.random(T3) < 0.2, np.nan, r.integers(0, 3, T3).astype(np.float64))], diff=())


# LU (gradc/ops/lu.py; tests/test_scipy_linalg.py has it at more sizes, with scipy):
# against Gaussian elimination with partial pivoting, row by row
def _lu_elimination(a):
    """(packed L and U, pivots, perm) of each matrix, one elimination step per column."""
    out = [], [], []
    for m in a.reshape((-1,) + a.shape[-2:]):
        lu, n = m.astype(np.float64).copy(), m.shape[-1]
        piv, perm = [], list(range(n))
        for k in range(n):
            p = k + int(np.argmax(np.abs(lu[k:, k])))
            lu[[k, p]] = lu[[p, k]]
            perm[k], perm[p] = perm[p], perm[k]
            piv.append(p)
            lu[k + 1:, k] /= lu[k, k]
            lu[k + 1:, k + 1:] -= np.outer(lu[k + 1:, k], lu[k, k + 1:])
        for o, v in zip(out, (lu, piv, perm)):
            o.append(np.asarray(v, np.float64))
    return [np.reshape(o, a.shape if o[0].ndim == 2 else a.shape[:-1]).astype(a.dtype) for o in out]


case("lu", "lu", lambda a: bind("lu", a), lambda a: _lu_elimination(a)[0], shapes((normal, (2, 4, 4))))
case("lu_pivots", "lu_pivots", lambda a: bind("lu_pivots", a), lambda a: _lu_elimination(a)[1],
     shapes((normal, (4, 4))), diff=())
case("lu_perm", "lu_perm", lambda a: bind("lu_perm", a), lambda a: _lu_elimination(a)[2], shapes((normal, (2, 4, 4))),
     diff=())
# integers (the native backends merge sort them as floats): ties, int64's extremes, and
# uint64 above 2^63, which sorts after the small values (it compares as unsigned)
case("sort_rank_int64", "sort_rank", lambda x: bind("sort_rank", x), _stable_ranks,
     lambda r: [np.where(r.random(T3) < 0.2, np.iinfo(np.int64).min,
                         np.where(r.random(T3) < 0.2, np.iinfo(np.int64).max, r.integers(-3, 3, T3)))], diff=())
case("sort_rank_uint64", "sort_rank", lambda x: bind("sort_rank", x), _stable_ranks,
     lambda r: [r.integers(0, 3, T3).astype(np.uint64) + np.where(r.random(T3) < 0.4, np.uint64(2**63), np.uint64(0))],
     diff=())

CASE_IDS = [c.id for c in CASES]


@pytest.fixture(autouse=True)
def _lapack_lines_where_lapack_runs(request):
    """The LAPACK lines run where LAPACK does: not on backend="c" (which refuses them,
    tested in tests/test_lapack.py), nor on llvm with an extension built before
    runtime/lapack.c (rebuild it)."""
    spec = getattr(request.node, "callspec", None)
    c = spec.params.get("c") if spec is not None else None
    if c is None or "lapack" not in OPS[c.op].extra:
        return
    backend = spec.params.get("core_backend")
    if backend == "c":
        pytest.skip("backend='c' refuses linalg's LAPACK ops")
    if backend == "llvm":
        from lapack_support import native_lapack_or_skip, native_rect_lapack_or_skip
        native_lapack_or_skip()
        if OPS[c.op].extra["lapack"] in ("gesdd", "geqrf"):
            native_rect_lapack_or_skip()
        if c.op.startswith("lu"):
            from lapack_support import native_lu_lapack_or_skip
            native_lu_lapack_or_skip()
assert len(set(CASE_IDS)) == len(CASE_IDS), "duplicate case ids"
BY_ID = {c.id: c for c in CASES}


def _args(c: Case, seed=0):
    return c.make(rng(seed + CASE_IDS.index(c.id)))


def _float_out(c, args):
    return np.asarray(c.ref(*args)).dtype.kind == "f"


def _closed(c: Case, args, diff, fn=None):
    """A function of the differentiated args only; the rest are closed over (constants)."""
    fn = fn or c.fn

    def f(*d):
        full = list(args)
        for i, v in zip(diff, d):
            full[i] = v
        return fn(*full)
    return f


def _ref_for_grad(c: Case, args):
    return c.ref_grad(args) if c.ref_grad is not None else c.ref


def _kind(c):
    args = _args(c)
    if not c.diff_idx(args):
        return "static"            # boolean inputs only (logical_and/not)
    return "float" if _float_out(c, args) else "mask"


FLOAT_CASES = [c for c in CASES if _kind(c) == "float"]     # differentiable lines
MASK_CASES = [c for c in CASES if _kind(c) == "mask"]       # comparisons of float inputs


# ----------------------------------------------------------------------------- the table is complete
def test_every_registered_op_has_a_line():
    covered = {c.op for c in CASES} | {o for c in CASES for o in c.extra_ops}
    # a vmap's collectives are placeholders batching replaces: no traced graph holds one,
    # so tests/test_collectives.py checks them through vmap instead of a line here
    placeholders = {name for name, op in OPS.items() if op.extra.get("placeholder")}
    assert placeholders == {"named_reduce", "axis_index"}
    missing = sorted(set(OPS) - covered - placeholders)
    assert not missing, f"ops without a line in the op table: {missing}"


@pytest.mark.parametrize("c", CASES, ids=CASE_IDS)
def test_line_exercises_its_op(c):
    g = gradc.trace(c.fn, *_args(c))
    present = ops_in(g)
    for op in (c.op,) + c.extra_ops:
        assert op in present, f"{c.id}: op {op} not in the traced graph ({sorted(present)})"


# ----------------------------------------------------------------------------- shape rules
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("c", CASES, ids=CASE_IDS)
def test_shape_rule_vs_numpy(c, dtype):
    args = as_dtype(_args(c), dtype)
    want = np.asarray(c.ref(*args))
    g = gradc.trace(c.fn, *args)
    (o,) = g.outputs
    shape = tuple(d if isinstance(d, int) else g.example[d] for d in g[o]["shape"])
    assert shape == want.shape
    assert g[o]["dtype"] == want.dtype, f"{g[o]['dtype']} != numpy {want.dtype}"
    check_shapes(g, args)


@pytest.mark.parametrize("c", FLOAT_CASES, ids=lambda c: c.id)
def test_adjoint_graph_shapes(c):
    """Every node of the unoptimized and optimized adjoint graphs has the shape numpy computes."""
    args = _args(c)
    diff = c.diff_idx(args)
    out = np.asarray(c.ref(*args))
    v = rng(1).standard_normal(out.shape).astype(out.dtype)
    f = _closed(c, args, diff)
    lowered = gradc.grad(lambda *d: gnp.sum(f(*d) * v), argnums=tuple(range(len(diff)))).lower(
        *[args[i] for i in diff])
    for g in (lowered.unoptimized, lowered.graph):
        outs = check_shapes(g, [args[i] for i in diff])
        for i, go in zip(diff, outs):
            assert go.shape == np.shape(args[i])


# ----------------------------------------------------------------------------- forward
@pytest.mark.parametrize("c", CASES, ids=CASE_IDS)
def test_forward_float64(c):
    args = _args(c)
    got = gradc.jit(c.fn)(*args)
    want = np.asarray(c.ref(*args))
    assert np.shape(got) == want.shape
    assert np.asarray(got).dtype == want.dtype
    if want.dtype.kind == "f":
        # the evaluator runs numpy too; only the order of operations may differ
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * (1 + np.max(np.abs(want), initial=0)))
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("c", CASES, ids=CASE_IDS)
def test_forward_float32(c):
    args32 = as_dtype(_args(c), np.float32)
    got = gradc.jit(c.fn)(*args32)
    want32 = np.asarray(c.ref(*args32))
    assert np.asarray(got).dtype == want32.dtype, "float32 inputs must give numpy's float32 result dtype"
    assert np.shape(got) == want32.shape
    if want32.dtype.kind == "f":
        # reference in float64 on the same (float32-rounded) inputs
        want = np.asarray(c.ref(*as_dtype(args32, np.float64)), np.float64)
        scale = 1 + np.max(np.abs(want), initial=0)
        np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=F32_RTOL, atol=F32_RTOL * scale)
    else:
        np.testing.assert_array_equal(got, want32)


# ----------------------------------------------------------------------------- derivatives
def _vjp(c, args, diff, v, fn=None):
    f = _closed(c, args, diff, fn)
    out, vjp_fn = gradc.vjp(f, *[args[i] for i in diff])
    cts = vjp_fn(v)
    assert len(cts) == len(diff)
    return out, cts


@pytest.mark.parametrize("c", FLOAT_CASES, ids=lambda c: c.id)
def test_vjp_vs_finite_differences(c):
    args = _args(c)
    diff = c.diff_idx(args)
    out = np.asarray(c.ref(*args))
    v = rng(2).standard_normal(out.shape).astype(out.dtype)
    got_out, cts = _vjp(c, args, diff, v)
    if c.tie_grads is not None:
        # at ties finite differences are no oracle (the function has a kink there): the
        # rule's closed form, exact up to float64 rounding of a few products
        for k, (ct, want) in enumerate(zip(cts, c.tie_grads(args, v))):
            assert np.shape(ct) == np.shape(args[diff[k]])
            np.testing.assert_allclose(ct, want, rtol=1e-12, atol=1e-12, err_msg=f"{c.id}: argument {diff[k]}")
        return
    ref = _ref_for_grad(c, args)
    for k, i in enumerate(diff):
        # central differences of <v, ref(args)>, h = 1e-6: error ~1e-9 relative on these
        # well-scaled inputs, so FD_RTOL = FD_ATOL = 1e-6 (see gradc_helpers)
        want = fd_grad(lambda *a: np.sum(v * ref(*a)), args, i)
        assert np.shape(cts[k]) == np.shape(args[i])
        assert np.asarray(cts[k]).dtype == np.asarray(args[i]).dtype
        assert_fd_close(cts[k], want, f"{c.id}: cotangent of argument {i}")


@pytest.mark.parametrize("c", MASK_CASES, ids=lambda c: c.id)
def test_comparison_masks_are_not_differentiable(c):
    """The gradient through a comparison is zero: away from ties that is its derivative
    (finite differences agree), at ties (eq_ties) it does not exist and the mask is
    treated as a constant."""
    args = _args(c)
    diff = c.diff_idx(args)
    out = np.asarray(c.ref(*args))
    _, cts = _vjp(c, args, diff, np.ones(out.shape), fn=lambda *a: gnp.astype(c.fn(*a), np.float64) * 3.0)
    for k, i in enumerate(diff):
        assert np.shape(cts[k]) == np.shape(args[i])
        assert np.all(np.asarray(cts[k]) == 0)
        if c.id != "eq_ties":
            fd = fd_grad(lambda *a: np.sum(c.ref(*a).astype(np.float64) * 3.0), args, i)
            assert np.all(fd == 0)
    _, t = gradc.jvp(lambda *d: gnp.astype(_closed(c, args, diff)(*d), np.float64),
                     [args[i] for i in diff], [np.ones(np.shape(args[i])) for i in diff])
    assert np.all(np.asarray(t) == 0)


@pytest.mark.parametrize("c", FLOAT_CASES, ids=lambda c: c.id)
def test_jvp_vs_vjp(c):
    args = _args(c)
    diff = c.diff_idx(args)
    r = rng(3)
    out = np.asarray(c.ref(*args))
    us = [r.standard_normal(np.shape(args[i])) for i in diff]
    v = r.standard_normal(out.shape).astype(out.dtype)
    f = _closed(c, args, diff)
    val, Ju = gradc.jvp(f, [args[i] for i in diff], us)
    np.testing.assert_allclose(val, out, rtol=1e-12, atol=1e-12)
    assert np.shape(Ju) == out.shape
    _, cts = _vjp(c, args, diff, v)
    lhs = float(np.sum(v * Ju))
    rhs = float(sum(np.sum(ct * u) for ct, u in zip(cts, us)))
    # two evaluations of the same bilinear form: agree to rounding (in float64, or in
    # float32 when the op's output is float32 as for astype)
    tol = 1e-10 if out.dtype == np.float64 else 1e-5
    assert lhs == pytest.approx(rhs, rel=tol, abs=tol)
    if c.tie_grads is not None:     # J u against the closed form's <J^T v, u> (no FD at a tie)
        closed = float(sum(np.sum(w * u) for w, u in zip(c.tie_grads(args, v), us)))
        assert lhs == pytest.approx(closed, rel=tol, abs=tol)
        return
    # and J u against a finite-difference directional derivative of the numpy reference
    want = fd_jvp(_ref_for_grad(c, args), args, diff, us)
    assert_fd_close(Ju, want, f"{c.id}: J u")


@pytest.mark.parametrize("c", FLOAT_CASES, ids=lambda c: c.id)
def test_gradients_float32(c):
    """float32 in -> float32 gradients, equal to the float64 gradient within float32 precision."""
    args64 = as_dtype(as_dtype(_args(c), np.float32), np.float64)   # the same rounded values
    args32 = as_dtype(args64, np.float32)
    diff = c.diff_idx(args64)
    out32, out64 = np.asarray(c.ref(*args32)), np.asarray(c.ref(*args64))
    v = rng(4).standard_normal(out32.shape).astype(np.float32)   # float32-exact cotangent
    _, cts64 = _vjp(c, args64, diff, v.astype(out64.dtype))
    _, cts32 = _vjp(c, args32, diff, v.astype(out32.dtype))
    for k in range(len(diff)):
        assert np.asarray(cts32[k]).dtype == np.float32
        scale = 1 + np.max(np.abs(cts64[k]), initial=0)
        np.testing.assert_allclose(np.asarray(cts32[k], np.float64), cts64[k], rtol=F32_GRAD_RTOL,
                                   atol=F32_GRAD_RTOL * scale)


# -- the tie rule of maximum and minimum ----------------------------------------------
# Between two operands that both vary, a tie splits the gradient 1/2, 1/2 (JAX's and
# PyTorch's convention); against a constant the paper's strict rule holds: max(0, z) has
# derivative 1[z > 0], 0 at z = 0.  Oracles: closed forms, and finite differences
# where the function is differentiable (the tie of f(x) = max(x, x) = x is).
TIES = numpy.array([-2.0, -1.0, 0.0, 0.0, 1.0, 1.0, 3.0])


@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_tie_with_itself_has_derivative_one(op):
    f = lambda x: gnp.sum(getattr(gnp, op)(x, x))       # noqa: E731  (= sum(x))
    numpy.testing.assert_array_equal(gradc.grad(f)(TIES), numpy.ones_like(TIES))
    numpy.testing.assert_array_equal(gradc.jvp(f, (TIES,), (numpy.ones_like(TIES),))[1], TIES.size)
    # differentiable at the tie, so central differences agree
    numpy.testing.assert_allclose(gradc.grad(f)(TIES), fd_grad(lambda x: numpy.sum(getattr(numpy, op)(x, x)), [TIES], 0))


@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_tie_between_two_arguments_splits(op):
    x, y = TIES, numpy.array([-2.0, 0.0, 0.0, 5.0, 1.0, -1.0, 3.0])
    dx, dy = gradc.grad(lambda x, y: gnp.sum(getattr(gnp, op)(x, y)), argnums=(0, 1))(x, y)
    wins = x > y if op == "maximum" else x < y
    numpy.testing.assert_array_equal(dx, numpy.where(x == y, 0.5, wins))
    numpy.testing.assert_array_equal(dy, numpy.where(x == y, 0.5, ~wins & (x != y)))


@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_tie_against_a_constant_is_strict(op):
    z = TIES
    g = gradc.grad(lambda z: gnp.sum(getattr(gnp, op)(0.0, z)))(z)
    numpy.testing.assert_array_equal(g, z > 0 if op == "maximum" else z < 0)
    # a constant array, and a view of one, count as constants too
    c = numpy.zeros(z.shape)
    g = gradc.grad(lambda z: gnp.sum(getattr(gnp, op)(z, c[::-1])))(z)
    numpy.testing.assert_array_equal(g, z > 0 if op == "maximum" else z < 0)


def test_ppo_clipped_objective_gets_the_advantage_inside_the_band():
    """min(r A, clip(r, 0.8, 1.2) A): inside the band both sides are equal, and the
    gradient is A (before the tie rule it was 0 there)."""
    r = numpy.array([0.5, 0.7, 0.9, 1.0, 1.1, 1.3, 1.6, 0.6, 1.5])
    A = numpy.array([1.0, -2.0, 0.5, -1.5, 2.0, 1.0, -0.5, -1.0, 3.0])
    g = gradc.grad(lambda r, A: gnp.sum(gnp.minimum(r * A, gnp.clip(r, 0.8, 1.2) * A)))(r, A)
    ref = fd_grad(lambda r, A: numpy.sum(numpy.minimum(r * A, numpy.clip(r, 0.8, 1.2) * A)), [r, A], 0)
    numpy.testing.assert_allclose(g, ref, rtol=1e-6, atol=1e-6)
    inside = (r > 0.8) & (r < 1.2)
    numpy.testing.assert_array_equal(g[inside], A[inside])


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_over_rows_of_no_elements_is_empty(fn):
    """The max each row is shifted by is -inf for a row of no elements: the result is
    the empty array numpy's formula gives, not an error (it was: max of nothing)."""
    f = getattr(gnp, fn)
    assert gradc.jit(lambda x: f(x, axis=-1))(np.zeros((16, 0))).shape == (16, 0)
    assert gradc.jit(lambda x: f(x, axis=0))(np.zeros((0, 3))).shape == (0, 3)
    assert f(np.zeros((4, 0)), axis=-1).shape == (4, 0)


def test_max_min_over_a_nonempty_axis_of_an_empty_array():
    """A (4, 0) array has a max over axis 0 (empty, as numpy's); only a reduction over
    an empty axis has no identity.  (Found by the fuzzer: the reference evaluator
    raised for any empty operand.)"""
    Y = numpy.zeros((4, 0))
    for f, ref in [(lambda y: gnp.max(y, axis=0), lambda y: numpy.max(y, axis=0)),
                   (lambda y: gnp.min(y, axis=0, keepdims=True), lambda y: numpy.min(y, axis=0, keepdims=True))]:
        got = gradc.jit(f)(Y)
        assert got.shape == ref(Y).shape
        assert gradc.grad(lambda y: gnp.sum(f(y)))(Y).shape == Y.shape
    with pytest.raises(ValueError):
        gradc.jit(lambda y: gnp.max(y, axis=1))(Y)


@pytest.mark.parametrize("shape, to", [((0, 9, 0), (0, 0)), ((5, 0, 3), (0, 7)), ((0, 4), (2, 0, 2))])
def test_reshape_between_empty_shapes_follows_numpy(shape, to):
    """Any reshape of an empty array to an empty shape is numpy's; pairing the shapes'
    common ends read (0, 9, 0) -> (0, 0) as 9 elements against 1 and raised.  (Found
    by the fuzzer: einsum merges a zero-size operand's contracted axes so.)"""
    x = numpy.zeros(shape)
    assert gradc.jit(lambda x: gnp.reshape(x, to))(x).shape == numpy.reshape(x, to).shape
    assert gradc.jit(gradc.grad(lambda x: gnp.sum(gnp.reshape(x, to) ** 2)))(x).shape == shape
    a, b = numpy.zeros((0, 9, 0)), numpy.ones((9, 0, 5))
    y = gradc.jit(lambda a, b: gnp.einsum("ijk,jkl->il", a, b))(a, b)
    assert y.shape == numpy.einsum("ijk,jkl->il", a, b).shape == (0, 5)
    ga = gradc.jit(gradc.grad(lambda a, b: gnp.sum(gnp.einsum("ijk,jkl->il", a, b))))(a, b)
    assert ga.shape == a.shape


def test_reshape_of_the_wrong_size_names_the_operand_and_the_line():
    with pytest.raises(gradc.ShapeError, match=r"reshape\(f64\[0,9\]\): cannot reshape array of size 0 into "
                                         r"shape \(9,\)  \[at test_ops\.py:\d+\]"):
        gradc.jit(lambda x: gnp.reshape(x, (9,)))(numpy.zeros((0, 9)))


def test_a_scan_keeps_its_batch_symbolic_and_its_levels_in_buffers():
    """cumsum along axis 1 is log2(64) = 6 levels of shifted adds, each (and each level
    of its adjoint) a ``copy`` into a buffer, no matrix product; the other axis stays a
    size symbol, so another batch size runs the same graph.  Gradient: the reverse
    cumulative sum of 2 cumsum(x)."""
    f = gradc.value_and_grad(lambda x: gnp.sum(gnp.cumsum(x, axis=1) ** 2))
    for rows in (37, 53):
        x = rng(rows).normal(size=(rows, 64))
        value, grad = f(x)
        c = np.cumsum(x, axis=1)
        np.testing.assert_allclose(value, np.sum(c ** 2), rtol=1e-12)
        np.testing.assert_allclose(grad, np.cumsum((2 * c)[:, ::-1], axis=1)[:, ::-1], rtol=1e-12, atol=1e-12)
    g = f.lower(x).graph
    ops = [g[n]["op"] for n in g.nx.nodes]
    assert isinstance(g[g.inputs[0]]["shape"][0], str)
    assert ops.count("copy") == 12 and "matmul" not in ops
