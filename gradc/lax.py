"""``gradc.lax``: jax.lax's control flow and array ops, for models written with it.

The array ops (convolution, reduce_window, slicing, padding, dot_general, sorting, the
element-wise names) are composed from gradc's primitives: see gradc/lax_arrays.py,
gradc/lax_windows.py and gradc/lax_sorting.py.

``scan`` in a traced function is one op of the graph whose step is traced once and
compiled once, run in a native loop (gradc/control_flow.py, gradc/ops/scan.py).
``fori_loop`` is such a scan; ``while_loop`` on a condition known when tracing repeats
its body in the graph, on a traced condition it is a native loop too (gradc/control_flow.py).
A branch on a traced predicate (``cond``, ``switch``) computes every branch and selects, as
``jnp.where`` does (the unselected branches get a zero gradient).  On concrete values
each runs as plain Python with numpy.
"""
from __future__ import annotations

import builtins
import enum

import numpy as np

from . import numpy as gnp
from .errors import ArgumentError, GradcError, UnsupportedError
from .lax_arrays import (  # noqa: F401  (re-exported: jax.lax's array ops)
    abs, acos, acosh, add, argmax, argmin, asin, asinh, atan, atan2, atanh, broadcast, broadcast_in_dim, cbrt,
    ceil, clamp, concatenate, convert_element_type, cos, cosh, cumprod, cumsum, digamma, div, dot, dot_general,
    dynamic_index_in_dim, dynamic_slice, dynamic_slice_in_dim, dynamic_update_index_in_dim, dynamic_update_slice,
    dynamic_update_slice_in_dim, eq, erf, erf_inv, erfc, exp, exp2, expand_dims, expm1, floor, ge, gt,
    index_in_dim, integer_pow, is_finite, le, lgamma, log, log1p, logistic, lt, max, min, mul, ne, neg, pad, pow,
    reciprocal, reduce_max, reduce_min, reduce_prod, reduce_sum, rem, reshape, rev, round, rsqrt, sign, sin, sinh,
    slice, slice_in_dim, sqrt, square, squeeze, sub, tan, tanh, transpose)
from .lax_construct import (  # noqa: F401  (re-exported: constructors, select_n, split, stack, tile)
    broadcasted_iota, full, full_like, iota, optimization_barrier, select_n, split, stack, tile)
from .lax_more import (  # noqa: F401  (re-exported: bitwise reductions, reduce_precision, special functions)
    batch_matmul, bessel_i0e, bessel_i1e, broadcast_to_rank, igamma, igammac, index_take, mulhi, nextafter,
    polygamma, reduce_and, reduce_or, reduce_precision, reduce_xor)
from .lax_scans import associative_scan, cumlogsumexp, cummax, cummin, reduce  # noqa: F401  (re-exported)
from .lax_sorting import sort, sort_key_val, top_k  # noqa: F401  (re-exported: jax.lax's sorting ops)
from .lax_windows import (  # noqa: F401  (re-exported: convolution, windowed reductions, flax's pooling)
    avg_pool, conv, conv_dimension_numbers, conv_general_dilated, conv_transpose, conv_with_general_padding,
    max_pool, min_pool, padtype_to_pads, reduce_window)
from .ops import bitwise as _bitwise
from . import control_flow as _control_flow, control_while as _control_while
from .scipy._incgamma_grad import gammainc_grad_a as igamma_grad_a, random_gamma_grad  # noqa: F401,E402
from .remat import checkpoint, checkpoint_policies, remat, remat_of  # noqa: F401  (checkpoint, remat: jax's names)
from .ops.collectives import axis_index, axis_size, pmax, pmean, pmin, psum  # noqa: F401,E402  (a vmap's named axis)
from .tracer import Value, current
from .tree_util import tree_flatten, tree_map, tree_unflatten
from .vmap import vmap


def _concrete_int(v, what: str) -> int:
    if isinstance(v, Value):
        raise UnsupportedError(f"{what} must be a Python int when gradc traces the loop (it unrolls the "
                               "loop, so the number of steps must be known); it is a traced value")
    return int(v)


def scan(f, init, xs=None, length=None, reverse=False, unroll=1, _split_transpose=False):
    """``jax.lax.scan``: ``carry, y = f(carry, x)`` over the leading axis of ``xs`` (a
    pytree of arrays, or None with ``length``); returns the last carry and the ``y``s
    stacked (a pytree like ``y``).  ``reverse=True`` runs from the last step to the
    first (the ``y``s stay in the order of ``xs``).

    In a traced function the step is traced once and compiled once: the loop runs
    natively, and compiling takes as long for a thousand steps as for two (the number
    of steps may even stay a size symbol, read from ``xs`` when the function is
    called).  ``unroll=True`` instead repeats the step in the graph once per step, as
    gradc did before it had the loop, letting the compiler fuse across steps; any other
    ``unroll`` is accepted for JAX's signature.  On concrete values it runs as plain
    Python with numpy."""
    leaves, tree = tree_flatten(xs)
    native = current() is not None and unroll is not True
    if leaves:
        sizes = None if native else \
            {int(np.shape(x)[0]) if not isinstance(x, Value) else x.shape[0] for x in leaves}
        if sizes is not None and len(sizes) != 1:
            raise ArgumentError(f"scan: the leaves of xs have different leading sizes {sorted(sizes)}")
        if sizes is not None:
            n = sizes.pop()
            if length is not None and int(length) != n:
                raise ArgumentError(f"scan: length={length} but xs has {n} steps")
    elif length is None:
        raise ArgumentError("scan: give xs or length")
    else:
        n = _concrete_int(length, "scan's length")
    if native:
        if leaves and length is not None:
            first = leaves[0]
            if isinstance(first, Value):       # (a size symbol becomes the number)
                current().env.equal(first._shape[0], _concrete_int(length, "scan's length"),
                                    f"scan: length={length} and the steps of xs")
            elif int(np.shape(first)[0]) != int(length):
                raise ArgumentError(f"scan: length={length} but xs has {int(np.shape(first)[0])} steps")
        return _control_flow.scan(f, init, xs, None if leaves else n, reverse)
    if n == 0 and current() is not None:     # (traced: the shapes of the ys, no loop)
        return _control_flow.scan(f, init, xs, None if leaves else 0, reverse)
    carry, ys = init, [None] * n
    for i in (range(n - 1, -1, -1) if reverse else range(n)):
        x = tree_unflatten(tree, [leaf[i] for leaf in leaves]) if leaves else None
        carry, ys[i] = f(carry, x)
    if n == 0:      # no step ran: the ys' shapes from the step traced once (as JAX does)
        return carry, _control_flow.empty_ys(f, init, xs)
    return carry, tree_map(lambda *steps: gnp.stack(steps), *ys)


def fori_loop(lower, upper, body_fun, init_val, *, unroll=None):
    """``jax.lax.fori_loop``: ``val = body_fun(i, val)`` for i in range(lower, upper).

    In a traced function it is a native ``scan`` whose carry is ``(i, val)``, ``i`` a
    traced int64 (as JAX's), so the body compiles once; a body that needs ``i`` as a
    Python int (a slice bound, a shape) repeats in the graph once per ``i`` instead, as
    it does with ``unroll=True``."""
    lo, hi = _concrete_int(lower, "fori_loop's lower"), _concrete_int(upper, "fori_loop's upper")
    if current() is not None and unroll is not True and hi - lo > 1:
        def step(carry, _):
            i, val = carry
            return (i + 1, body_fun(i, val)), None
        if remat_of(body_fun):      # (a checkpointed body: its loop's backward pass recomputes it)
            step.gradc_remat = remat_of(body_fun)
        try:
            (_, val), _ = _control_flow.scan(step, (np.int64(lo), init_val), None, hi - lo, False)
            return val
        except GradcError:     # (the same body repeated gives the error it has there)
            pass
    val = init_val
    for i in range(lo, hi):
        val = body_fun(i, val)
    return val


def while_loop(cond_fun, body_fun, init_val):
    """``jax.lax.while_loop``: ``val = body_fun(val)`` while ``cond_fun(val)``.

    While the condition is known when tracing (it reads Python values only), the body
    repeats in the graph, and the loop differentiates like any code.  Once it depends
    on traced values, the rest of the loop is a native loop of the condition and the
    body, each compiled once; as in JAX it has forward-mode derivatives (jvp, jacfwd)
    and vmap (the batch runs while any example's condition holds), and reverse mode
    raises UnsupportedError (the number of steps is known only when it runs)."""
    val = init_val
    while True:
        go = cond_fun(val)
        if isinstance(go, Value):
            return _control_while.while_loop(cond_fun, body_fun, val)
        if not go:
            return val
        val = body_fun(val)


def cond(pred, true_fun, false_fun, *operands):
    """``jax.lax.cond``: ``true_fun(*operands)`` if ``pred`` else ``false_fun(*operands)``.
    A traced ``pred`` computes both and selects (both results need one structure)."""
    if not isinstance(pred, Value):
        return true_fun(*operands) if bool(np.asarray(pred)) else false_fun(*operands)
    return _select_trees([pred, gnp.logical_not(pred)], [true_fun(*operands), false_fun(*operands)], "cond")


def switch(index, branches, *operands):
    """``jax.lax.switch``: ``branches[index](*operands)``, index clamped into range as
    JAX does.  A traced index computes every branch and selects."""
    branches = list(branches)
    if not branches:
        raise ArgumentError("switch: no branches")
    if not isinstance(index, Value):
        k = builtins.min(builtins.max(int(np.asarray(index)), 0), len(branches) - 1)
        return branches[k](*operands)
    k = gnp.clip(index, 0, len(branches) - 1)
    return _select_trees([k == j for j in range(len(branches))], [b(*operands) for b in branches], "switch")


def _select_trees(masks, results, what):
    leaves0, tree = tree_flatten(results[0])
    per = [leaves0]
    for r in results[1:]:
        leaves, t = tree_flatten(r)
        if t != tree:
            raise ArgumentError(f"{what}: the branches return different structures: {tree} and {t}")
        per.append(leaves)
    out = []
    for j in range(len(leaves0)):
        acc = per[-1][j]
        for m, leaves in zip(masks[-2::-1], per[-2::-1]):
            acc = gnp.where(m, leaves[j], acc)
        out.append(acc)
    return tree_unflatten(tree, out)


def map(f, xs, *, batch_size=None):  # noqa: A001  (jax.lax.map's name)
    """``jax.lax.map``: ``f`` applied to each slice of ``xs`` along its leading axis,
    the results stacked; computed as ``gradc.vmap(f)(xs)`` (one pass over the batch,
    whatever ``batch_size``, which bounds XLA's memory and is accepted for JAX's
    signature: the results are the same)."""
    return vmap(f)(xs)


select = gnp.where      # jax.lax.select(pred, on_true, on_false)
bitcast_convert_type = _bitwise.bitcast_convert_type     # (types of the same size)
stop_gradient = gnp.stop_gradient


class Precision(enum.Enum):
    """``jax.lax.Precision``, for the ``precision=`` of ``dot``, ``matmul``, ``einsum``,
    ``dot_general`` and ``conv_general_dilated``: accepted so JAX code runs unchanged.
    gradc multiplies in the operands' own dtype (float32 or float64), never in the
    reduced precision an accelerator's DEFAULT may use, so every value computes alike."""
    DEFAULT = 0
    HIGH = 1
    HIGHEST = 2


# jax.lax's bitwise names (integers; and, or, xor, not are logical on booleans)
bitwise_and, bitwise_or, bitwise_xor, bitwise_not = gnp.bitwise_and, gnp.bitwise_or, gnp.bitwise_xor, gnp.invert
shift_left, shift_right_arithmetic = gnp.left_shift, gnp.right_shift


def shift_right_logical(x, y):
    """``jax.lax.shift_right_logical``: zeros shifted in from the left, whatever x's sign
    (a signed x is shifted as its unsigned bits)."""
    x = gnp.asarray(x)
    if x.dtype.kind != "i":
        return gnp.right_shift(x, y)
    unsigned = np.dtype(f"u{x.dtype.itemsize}")
    return bitcast_convert_type(gnp.right_shift(bitcast_convert_type(x, unsigned), gnp.astype(y, unsigned)), x.dtype)


def population_count(x):
    """``jax.lax.population_count``: the number of 1 bits of each integer, in x's dtype
    (a negative signed integer counts its two's complement bits)."""
    x = gnp.asarray(x)
    if x.dtype.kind not in "iu":
        raise ArgumentError(f"population_count: expected an integer array, got {x.dtype}")
    if x.dtype.kind == "i":          # numpy's bitwise_count counts |x|; JAX counts the stored bits
        return gnp.astype(gnp.bitwise_count(bitcast_convert_type(x, np.dtype(f"u{x.dtype.itemsize}"))), x.dtype)
    return gnp.astype(gnp.bitwise_count(x), x.dtype)


def clz(x):
    """``jax.lax.clz``: the number of leading 0 bits of each integer, in x's dtype (the
    bit width for 0, 0 for a negative signed integer): the bits below the highest 1 are
    set by shifts, and the width minus their count is the answer."""
    x = gnp.asarray(x)
    if x.dtype.kind not in "iu":
        raise ArgumentError(f"clz: expected an integer array, got {x.dtype}")
    bits, s = 8 * x.dtype.itemsize, 1
    while s < bits:
        x = gnp.bitwise_or(x, shift_right_logical(x, gnp.astype(s, x.dtype)))
        s *= 2
    return gnp.astype(bits, x.dtype) - population_count(x)
