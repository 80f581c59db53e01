"""jax.lax's convolutions and windowed reductions (``gradc.lax`` re-exports them), and
flax's pooling on them, with their signatures and semantics.  Composed at trace time
from gradc's primitives, so each differentiates through their rules and runs on every
backend; outside a trace it computes with numpy:

* ``conv_general_dilated``: the input goes channels last and is padded (interior
  padding for ``lhs_dilation``); one strided slice is taken per kernel tap (a 3x3
  kernel is 9 slices) and multiplied by that tap's (in, out) kernel matrix, and the
  products are summed -- no tensor of all windows is materialised;
* ``reduce_window``: one strided slice per window tap; for max and min the slices are
  stacked on a new axis and reduced there, so max pooling follows gradc's rule for
  ``max`` at ties (k tied maxima each get 1/k of the gradient, docs/derivatives.md;
  JAX gives it all to one).
"""
from __future__ import annotations

import itertools

import numpy as np

from . import numpy as gnp
from .errors import ArgumentError, ShapeError, UnsupportedError
from .lax_arrays import _dtype, _ints, _max, _shape, _slice, pad
from .tracer import Value


# ----------------------------------------------------------------------------- padding specs
def padtype_to_pads(in_shape, window_shape, window_strides, padding):
    """``jax.lax.padtype_to_pads``: 'VALID' (none), 'SAME' (output size ceil(in /
    stride), an odd total's extra element at the end) or 'SAME_LOWER' (at the start)."""
    p = padding.upper() if isinstance(padding, str) else padding
    if p == "VALID":
        return [(0, 0)] * len(in_shape)
    if p not in ("SAME", "SAME_LOWER"):
        raise ArgumentError(f"padding must be 'SAME', 'SAME_LOWER', 'VALID' or (low, high) pairs, got {padding!r}")
    out = []
    for n, k, s in zip(in_shape, window_shape, window_strides):
        total = _max(0, (-(-n // s) - 1) * s + k - n)
        lo = total // 2 if p == "SAME" else total - total // 2
        out.append((lo, total - lo))
    return out


def _pairs(padding, n, what):
    try:
        pairs = [(int(lo), int(hi)) for lo, hi in padding]
    except (TypeError, ValueError):
        raise ArgumentError(f"{what}: padding must be a string or {n} (low, high) pairs, got {padding!r}") from None
    if len(pairs) != n:
        raise ArgumentError(f"{what}: padding needs {n} (low, high) pairs, got {len(pairs)}")
    return pairs


def _windows(x, lead, window, strides, dilation, what):
    """Per window tap (row-major over ``window``), the strided slice of ``x`` (already
    padded) whose element j is that tap of output window j; the ``lead`` axes and those
    after the window's are kept whole.  Returns the taps and the output's spatial sizes."""
    sizes = _shape(x)[lead:lead + len(window)]
    out = [(n - (k - 1) * r - 1) // s + 1 for n, k, s, r in zip(sizes, window, strides, dilation)]
    if any(o <= 0 for o in out):
        raise ShapeError(f"{what}: the window (size {tuple(window)}, dilation {tuple(dilation)}) does not fit in the "
                         f"padded input {tuple(sizes)}: the output would be empty")
    taps = []
    for t in itertools.product(*(range(k) for k in window)):
        key = (_slice(None),) * lead + tuple(_slice(i * r, i * r + (o - 1) * s + 1, s)
                                             for i, r, o, s in zip(t, dilation, out, strides))
        taps.append(x[key])
    return taps, out


# ----------------------------------------------------------------------------- convolution
def conv_dimension_numbers(lhs_shape, rhs_shape, dimension_numbers):
    """The axis permutations ``(lhs, rhs, out)`` that bring each operand to the layout
    (batch, feature, spatial...) -- JAX's ConvDimensionNumbers, as plain tuples.
    ``dimension_numbers``: None (NCHW, OIHW, NCHW), three spec strings such as
    ('NHWC', 'HWIO', 'NHWC'), or three permutations."""
    n = len(lhs_shape)
    if len(rhs_shape) != n:
        raise ShapeError(f"conv: lhs has rank {n} and rhs rank {len(rhs_shape)}; they must agree")
    if n < 3:
        raise ShapeError(f"conv: operands need rank >= 3 (batch, feature and a spatial axis), got rank {n}")
    if dimension_numbers is None:
        return (tuple(range(n)),) * 3
    if len(dimension_numbers) != 3:
        raise ArgumentError(f"conv: dimension_numbers must be three specs (lhs, rhs, out), got {dimension_numbers!r}")
    if all(isinstance(s, str) for s in dimension_numbers):
        lhs, rhs, out = dimension_numbers
        for spec, pair in zip(dimension_numbers, (("N", "C"), ("O", "I"), ("N", "C"))):
            if len(spec) != n or len(set(spec)) != n or not all(spec.count(c) == 1 for c in pair):
                raise ArgumentError(f"conv: dimension spec {spec!r} must have {n} distinct characters including "
                                    f"{pair[0]!r} and {pair[1]!r}")
        spatial = [c for c in rhs if c not in "OI"]
        if set(lhs) - {"N", "C"} != set(spatial) or set(out) - {"N", "C"} != set(spatial):
            raise ArgumentError(f"conv: the specs {dimension_numbers!r} must name the same spatial axes")
        return ((lhs.index("N"), lhs.index("C")) + tuple(lhs.index(c) for c in spatial),
                (rhs.index("O"), rhs.index("I")) + tuple(rhs.index(c) for c in spatial),
                (out.index("N"), out.index("C")) + tuple(out.index(c) for c in spatial))
    perms = tuple(tuple(int(a) for a in p) for p in dimension_numbers)
    if any(sorted(p) != list(range(n)) for p in perms):
        raise ArgumentError(f"conv: dimension_numbers {dimension_numbers!r} are not permutations of {n} axes")
    return perms


# Input channels below which a convolution is one product of the taps side by side
# (im2col) instead of one product per tap.  value_and_grad of a 3x3 SAME convolution,
# batch 32, 32x32, 64 outputs, float32, 2-core AMD EPYC Zen 3, in one process: 8
# channels 97 ms side by side against 146 per tap; 16 channels 156 against 125; 64
# channels 523 against 305.  A small CNN's first layer (3 channels) 58 against 72 ms.
IM2COL_BELOW = 16


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1, precision=None,
                         preferred_element_type=None):
    """``jax.lax.conv_general_dilated``: the n-d cross-correlation of ``lhs`` (batch,
    feature, spatial...) with the kernel ``rhs`` (out feature, in feature, spatial...),
    in the layouts ``dimension_numbers`` names.  ``padding``: 'SAME', 'SAME_LOWER',
    'VALID' or (low, high) pairs (negative crops); ``lhs_dilation`` (transposed
    convolution: zeros between input elements), ``rhs_dilation`` (atrous: gaps between
    kernel taps), ``feature_group_count`` (grouped and depthwise convolution).
    ``precision`` is accepted and ignored (gradc computes in the operands' dtype)."""
    if int(batch_group_count) != 1:
        raise UnsupportedError(f"conv_general_dilated: batch_group_count={batch_group_count} is not supported (1 is)")
    lshape, rshape = _shape(lhs), _shape(rhs)
    lp, rp, op = conv_dimension_numbers(lshape, rshape, dimension_numbers)
    nd = len(lshape) - 2
    strides = _ints(window_strides, nd, "conv's window_strides")
    ldil, rdil = _ints(lhs_dilation, nd, "conv's lhs_dilation"), _ints(rhs_dilation, nd, "conv's rhs_dilation")
    if any(v < 1 for v in strides + ldil + rdil):
        raise ArgumentError(f"conv: strides and dilations must be >= 1, got {strides}, {ldil}, {rdil}")
    # channels last (n, spatial..., c) and the kernel as (spatial..., i, o): each tap's
    # contraction is then a plain matrix product over the last axis, with no transposes
    x = gnp.transpose(lhs, (lp[0],) + lp[2:] + (lp[1],))
    w = gnp.transpose(rhs, rp[2:] + (rp[1], rp[0]))
    n, c = _shape(x)[0], _shape(x)[-1]
    ci, o = _shape(w)[-2:]
    ksize = _shape(w)[:nd]
    g = int(feature_group_count)
    if g < 1 or c % g or o % g or ci * g != c:
        raise ShapeError(f"conv: lhs has {c} features and rhs {ci} input features per group with "
                         f"feature_group_count={g}; need {ci} * {g} == {c} and {g} dividing the {o} output features")
    if isinstance(padding, str):
        if any(d != 1 for d in ldil):
            raise ArgumentError("conv_general_dilated: string padding with lhs_dilation is not defined (as in JAX): "
                                "give (low, high) pairs")
        pads = padtype_to_pads(_shape(x)[1:-1], [(k - 1) * r + 1 for k, r in zip(ksize, rdil)], strides, padding)
    else:
        pads = _pairs(padding, nd, "conv_general_dilated")
    if any(d != 1 for d in ldil) or any(p != (0, 0) for p in pads):
        x = pad(x, 0.0, [(0, 0, 0)] + [(lo, hi, d - 1) for (lo, hi), d in zip(pads, ldil)] + [(0, 0, 0)])
    taps, out = _windows(x, 1, ksize, strides, rdil, "conv_general_dilated")
    # one contraction per kernel tap, summed: (n, *out, c) @ (c, o) -> (n, *out, o); with
    # groups, (n, *out, g, c/g) with (c/g, g, o/g) -> (n, *out, g, o/g)
    sp = "xyzuvw"[:nd]
    y = None
    if g == 1 and ci < IM2COL_BELOW and len(taps) > 1:
        # few input channels (an image's 3): a product per tap contracts over c alone,
        # too short for a matrix product's speed; the taps side by side make one product
        # contracting over all of them (im2col), its copy of the input cheap at such c
        y = gnp.matmul(gnp.concatenate(list(taps), axis=-1), gnp.reshape(w, (len(taps) * ci, o)))
        taps = []
    for t, patch in zip(itertools.product(*(range(k) for k in ksize)), taps):
        wt = w[t]
        if g == 1:
            term = gnp.matmul(patch, wt)
        else:
            term = gnp.reshape(gnp.einsum(f"n{sp}gc,cgo->n{sp}go", gnp.reshape(patch, (n, *out, g, c // g)),
                                          gnp.reshape(wt, (ci, g, o // g))), (n, *out, o))
        y = term if y is None else y + term
    if preferred_element_type is not None:
        y = gnp.astype(y, preferred_element_type)
    perm = [0] * (nd + 2)                       # the result's axis op[k] is our axis (0, nd+1, 1..nd)[k]
    for k, ours in enumerate((0, nd + 1) + tuple(range(1, nd + 1))):
        perm[op[k]] = ours
    return gnp.transpose(y, tuple(perm))


def conv(lhs, rhs, window_strides, padding, precision=None, preferred_element_type=None):
    """``jax.lax.conv``: ``conv_general_dilated`` in the NCHW / OIHW layout."""
    return conv_general_dilated(lhs, rhs, window_strides, padding, precision=precision,
                                preferred_element_type=preferred_element_type)


def conv_with_general_padding(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, precision=None,
                              preferred_element_type=None):
    """``jax.lax.conv_with_general_padding``: NCHW / OIHW with dilations."""
    return conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                precision=precision, preferred_element_type=preferred_element_type)


def _transpose_pads(k, s, padding):
    """The (low, high) padding of a transposed convolution's dilated input, from the
    forward convolution's padding: 'SAME', 'VALID' or a (low, high) pair."""
    if padding == "SAME":
        total = k + s - 2
        lo = k - 1 if s > k - 1 else -(-total // 2)
    elif padding == "VALID":
        total, lo = k + s - 2 + _max(k - s, 0), k - 1
    else:
        lo, total = k - padding[0] - 1, 2 * k - padding[0] - padding[1] - 2
    return lo, total - lo


def conv_transpose(lhs, rhs, strides, padding, rhs_dilation=None, dimension_numbers=None, transpose_kernel=False,
                   precision=None, preferred_element_type=None, use_consistent_padding=False):
    """``jax.lax.conv_transpose``: the fractionally strided convolution (``lhs``
    dilated by ``strides``), in TensorFlow's layouts by default (NHWC, HWIO, NHWC for
    2-D).  ``padding``: 'SAME' or 'VALID' (of the forward convolution, so 'SAME' with
    stride s makes the output s times the input), or (low, high) pairs (used as given,
    or as the forward convolution's when ``use_consistent_padding``).
    ``transpose_kernel`` flips the kernel's spatial axes and swaps its I and O axes
    (Keras' Conv2DTranspose)."""
    lshape, rshape = _shape(lhs), _shape(rhs)
    nd = len(lshape) - 2
    if dimension_numbers is None:
        if not 1 <= nd <= 3:
            raise ArgumentError(f"conv_transpose: no default dimension_numbers for rank {len(lshape)}: give them")
        sp = "HWD"[:nd]
        dimension_numbers = (f"N{sp}C", f"{sp}IO", f"N{sp}C")
    _, rp, _ = conv_dimension_numbers(lshape, rshape, dimension_numbers)
    strides = _ints(strides, nd, "conv_transpose's strides")
    rdil = _ints(rhs_dilation, nd, "conv_transpose's rhs_dilation")
    if isinstance(padding, str) and padding.upper() not in ("SAME", "VALID"):
        raise ArgumentError(f"conv_transpose: padding must be 'SAME', 'VALID' or (low, high) pairs, got {padding!r}")
    if isinstance(padding, str) or use_consistent_padding:
        per = [padding.upper()] * nd if isinstance(padding, str) else [tuple(p) for p in _pairs(padding, nd,
                                                                                              "conv_transpose")]
        pads = [_transpose_pads((rshape[a] - 1) * r + 1, s, p) for a, r, s, p in zip(rp[2:], rdil, strides, per)]
    else:
        pads = _pairs(padding, nd, "conv_transpose")
    if transpose_kernel:
        rhs = gnp.swapaxes(gnp.flip(rhs, tuple(rp[2:])), rp[0], rp[1])
    return conv_general_dilated(lhs, rhs, (1,) * nd, pads, strides, rdil, dimension_numbers,
                                precision=precision, preferred_element_type=preferred_element_type)


# ----------------------------------------------------------------------------- windowed reductions
def _monoid(computation):
    """'add', 'max', 'min' or 'mul' for the reductions gradc knows by name (gradc's and
    jax.lax's functions), else None (the computation is folded pairwise)."""
    known = {gnp.add: "add", gnp.maximum: "max", gnp.minimum: "min", gnp.multiply: "mul"}
    for f, name in known.items():
        if computation is f:
            return name
    if getattr(computation, "__module__", "").startswith("jax") and computation.__name__ in ("add", "max", "min", "mul"):
        return computation.__name__
    return None


_IDENTITY = {"add": 0.0, "mul": 1.0, "max": -np.inf, "min": np.inf}


def _is_identity(kind, init, dtype):
    if kind is None or isinstance(init, Value):
        return False
    v = np.asarray(init)
    if kind in ("max", "min") and np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        return bool(v == (info.min if kind == "max" else info.max))
    return bool(v == _IDENTITY[kind])


def reduce_window(operand, init_value, computation, window_dimensions, window_strides=None, padding="VALID",
                  base_dilation=None, window_dilation=None):
    """``jax.lax.reduce_window``: ``computation`` over every window of ``operand``,
    starting from ``init_value`` (padding takes ``init_value`` too).  ``computation``:
    ``add``, ``max``, ``min``, ``mul`` (gradc.lax's or jax.lax's, or gradc.numpy's
    add/maximum/minimum/multiply), or any function of two arrays, applied pairwise.
    ``max``/``min`` reduce the window's elements together, so at ties each of k tied
    elements gets 1/k of the gradient (gradc's rule for max; JAX gives it all to one)."""
    shape = _shape(operand)
    nd = len(shape)
    window = _ints(window_dimensions, nd, "reduce_window's window_dimensions")
    strides = _ints(window_strides, nd, "reduce_window's window_strides")
    bdil = _ints(base_dilation, nd, "reduce_window's base_dilation")
    wdil = _ints(window_dilation, nd, "reduce_window's window_dilation")
    if any(v < 1 for v in window + strides + bdil + wdil):
        raise ArgumentError(f"reduce_window: window sizes, strides and dilations must be >= 1, got "
                            f"{window}, {strides}, {bdil}, {wdil}")
    if isinstance(padding, str):
        pads = padtype_to_pads(shape, [(k - 1) * r + 1 for k, r in zip(window, wdil)], strides, padding)
    else:
        pads = _pairs(padding, nd, "reduce_window")
    kind = _monoid(computation)
    dtype = operand.dtype if isinstance(operand, Value) else np.result_type(operand)
    x = operand
    if any(d != 1 for d in bdil) or any(p != (0, 0) for p in pads):
        x = pad(x, init_value, [(lo, hi, d - 1) for (lo, hi), d in zip(pads, bdil)])
    taps, _ = _windows(x, 0, window, strides, wdil, "reduce_window")
    if kind in ("max", "min") and len(taps) > 1:
        stacked = gnp.stack(taps)
        y = gnp.max(stacked, axis=0) if kind == "max" else gnp.min(stacked, axis=0)
    else:
        op = {"add": gnp.add, "mul": gnp.multiply, None: computation}.get(kind, computation)
        y = taps[0]
        for t in taps[1:]:
            y = op(y, t)
    if not _is_identity(kind, init_value, dtype):
        y = {"add": gnp.add, "mul": gnp.multiply, "max": gnp.maximum, "min": gnp.minimum}.get(
            kind, computation)(gnp.astype(init_value, dtype) if kind else init_value, y)
    return y


def _flax_pool(inputs, init, computation, window_shape, strides, padding, what):
    """flax.linen's ``pool``: ``inputs`` is (batch..., spatial..., features) with as many
    spatial axes as ``window_shape``; the window covers spatial axes only."""
    shape = _shape(inputs)
    k = len(window_shape)
    if len(shape) < k + 1:
        raise ShapeError(f"{what}: inputs of shape {shape} have no room for {k} spatial axes and a feature axis")
    strides = tuple(strides) if strides is not None else (1,) * k
    if len(strides) != k:
        raise ArgumentError(f"{what}: strides {strides} must have one entry per window axis ({k})")
    lead = len(shape) - k - 1
    dims = (1,) * lead + tuple(window_shape) + (1,)
    st = (1,) * lead + strides + (1,)
    if not isinstance(padding, str):
        padding = [(0, 0)] * lead + [tuple(p) for p in padding] + [(0, 0)]
    return reduce_window(inputs, init, computation, dims, st, padding)


def max_pool(inputs, window_shape, strides=None, padding="VALID"):
    """flax.linen.max_pool: the maximum of each window over the spatial axes of
    ``inputs`` (batch..., spatial..., features); ties share the gradient equally."""
    return _flax_pool(inputs, -np.inf, gnp.maximum, window_shape, strides, padding, "max_pool")


def min_pool(inputs, window_shape, strides=None, padding="VALID"):
    """flax.linen.min_pool: the minimum of each window (see ``max_pool``)."""
    return _flax_pool(inputs, np.inf, gnp.minimum, window_shape, strides, padding, "min_pool")


def avg_pool(inputs, window_shape, strides=None, padding="VALID", count_include_pad=True):
    """flax.linen.avg_pool: the mean of each window; with padding, the padded zeros
    count unless ``count_include_pad=False`` (then each window's real elements)."""
    y = _flax_pool(inputs, 0.0, gnp.add, window_shape, strides, padding, "avg_pool")
    if count_include_pad:
        return y / float(np.prod(window_shape))
    ones = np.ones((1,) * (len(_shape(inputs)) - len(window_shape) - 1) + _shape(inputs)[-len(window_shape) - 1:],
                   dtype=_dtype(inputs))
    return y / _flax_pool(ones, 0.0, gnp.add, window_shape, strides, padding, "avg_pool")
