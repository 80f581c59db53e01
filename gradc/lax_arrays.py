"""jax.lax's array ops (``gradc.lax`` re-exports them): convolution, windowed
reductions and pooling, slicing (static and dynamic), padding, ``dot_general`` and the
element-wise names, with jax.lax's signatures and semantics.

Each is composed at trace time from gradc's primitives, so it differentiates through
their rules and runs on every backend; outside a trace it computes with numpy:

* ``conv_general_dilated``: the input is padded (interior padding for ``lhs_dilation``),
  one strided slice is taken per kernel tap (im2col: a 3x3 kernel is 9 slices), and
  each tap's slice is contracted with its kernel slice (one matrix product per tap,
  summed) -- no tensor of all windows is materialised;
* ``reduce_window``: one strided slice per window tap, stacked on a new axis and
  reduced there, so max pooling follows gradc's rule for ``max`` at ties (k tied
  maxima each get 1/k of the gradient, docs/derivatives.md; JAX gives it all to one);
* ``dynamic_slice`` and friends: concrete starts are Python slices; traced starts are
  clamped as JAX clamps them and become a gather (and the updates a masked select).
"""
from __future__ import annotations

import builtins
import itertools

import numpy as np

from . import numpy as gnp
from .errors import ArgumentError, ShapeError, UnsupportedError
from .tracer import Value, bind as _bind, current as _current, to_value as _to_value

_slice, _max, _min = builtins.slice, builtins.max, builtins.min


def _traced(*xs):
    return any(isinstance(x, Value) for x in xs)


def _shape(x):
    return tuple(x.shape) if isinstance(x, Value) else np.shape(x)


def _eager(*xs):
    """No trace running and every operand concrete: numpy computes."""
    return _current() is None and not _traced(*xs)


def _squeeze(x, axes):
    return np.squeeze(x, axes) if _eager(x) else gnp.squeeze(x, axes)


def _expand_dims(x, axes):
    return np.expand_dims(x, axes) if _eager(x) else gnp.expand_dims(x, axes)


def _ints(seq, n, what):
    """A sequence of ``n`` Python ints (``None``: ones)."""
    if seq is None:
        return (1,) * n
    try:
        out = tuple(int(s) for s in seq)
    except TypeError:
        raise ArgumentError(f"{what}: expected a sequence of {n} ints, got {seq!r}") from None
    if len(out) != n:
        raise ArgumentError(f"{what}: expected {n} values (one per dimension), got {len(out)}: {seq!r}")
    return out


# ----------------------------------------------------------------------------- pad, slice
def pad(operand, padding_value, padding_config):
    """``jax.lax.pad``: ``padding_config`` has one ``(low, high, interior)`` per axis;
    ``interior`` zeros-worth of ``padding_value`` go between neighbouring elements, and
    a negative ``low``/``high`` removes elements from that end."""
    shape = _shape(operand)
    config = [tuple(int(v) for v in c) for c in padding_config]
    if len(config) != len(shape) or any(len(c) != 3 for c in config):
        raise ArgumentError(f"pad: padding_config needs one (low, high, interior) per axis of the operand "
                            f"(rank {len(shape)}), got {padding_config!r}")
    if any(c[2] < 0 for c in config):
        raise ArgumentError(f"pad: interior padding must be >= 0, got {padding_config!r}")
    grown = [n + _max(lo, 0) + _max(hi, 0) + _max(n - 1, 0) * it for n, (lo, hi, it) in zip(shape, config)]
    index = tuple((_max(lo, 0), _max(lo, 0) + ((n - 1) * (it + 1) + 1 if n else 0), it + 1)
                  for n, (lo, hi, it) in zip(shape, config))
    inside = np.zeros(grown, dtype=bool)
    inside[tuple(_slice(*i) for i in index)] = True
    if _eager(operand, padding_value):
        y = np.full(grown, padding_value, dtype=np.result_type(operand))
        y[tuple(_slice(*i) for i in index)] = operand
    else:
        x = _to_value(operand)
        y = _bind("unslice", x, index=index, shape=tuple(grown)) if tuple(grown) != shape else x
        if isinstance(padding_value, Value) or float(padding_value) != 0.0:
            y = gnp.where(inside, y, gnp.astype(padding_value, y.dtype))
    crop = tuple(_slice(-lo if lo < 0 else 0, g + hi if hi < 0 else g) for g, (lo, hi, _) in zip(grown, config))
    return y[crop] if any(lo < 0 or hi < 0 for lo, hi, _ in config) else y


def slice(operand, start_indices, limit_indices, strides=None):  # noqa: A001  (jax.lax's name)
    """``jax.lax.slice``: ``operand[start:limit:stride]`` on every axis."""
    n = len(_shape(operand))
    start, limit = _ints(start_indices, n, "slice's start_indices"), _ints(limit_indices, n, "slice's limit_indices")
    step = _ints(strides, n, "slice's strides")
    for a, (b, e, d) in enumerate(zip(start, limit, _shape(operand))):
        if not 0 <= b <= e <= d:
            raise ArgumentError(f"slice: axis {a} needs 0 <= start <= limit <= {d}, got start {b}, limit {e}")
    return operand[tuple(_slice(b, e, s) for b, e, s in zip(start, limit, step))]


def slice_in_dim(operand, start_index, limit_index, stride=1, axis=0):
    """``jax.lax.slice_in_dim``: ``operand[..., start:limit:stride, ...]`` on ``axis``."""
    shape = _shape(operand)
    axis = axis % len(shape)
    b, e, _ = _slice(start_index, limit_index).indices(shape[axis])
    start, limit, strides = [0] * len(shape), list(shape), [1] * len(shape)
    start[axis], limit[axis], strides[axis] = b, _max(e, b), stride
    return slice(operand, start, limit, strides)


def index_in_dim(operand, index, axis=0, keepdims=True):
    """``jax.lax.index_in_dim``: element ``index`` of ``axis`` (negative counts from the end)."""
    shape = _shape(operand)
    axis = axis % len(shape)
    i = int(index) + (shape[axis] if int(index) < 0 else 0)
    if not 0 <= i < shape[axis]:
        raise ArgumentError(f"index_in_dim: index {index} is out of bounds for axis {axis} of size {shape[axis]}")
    y = slice_in_dim(operand, i, i + 1, 1, axis)
    return y if keepdims else _squeeze(y, axis)


# ----------------------------------------------------------------------------- dynamic slicing
def _starts(start_indices, shape, sizes, negative, what):
    """Per axis: the clamped start, a Python int when it is concrete, else a traced int."""
    n = len(shape)
    if isinstance(start_indices, Value):
        if start_indices.ndim != 1 or start_indices.shape[0] != n:
            raise ArgumentError(f"{what}: start_indices must hold {n} indices, got shape {start_indices.shape}")
        start_indices = [start_indices[a] for a in range(n)]
    elif isinstance(start_indices, np.ndarray):
        start_indices = list(start_indices.reshape(-1)) if start_indices.ndim == 1 else [start_indices]
    else:
        start_indices = list(start_indices)
    if len(start_indices) != n:
        raise ArgumentError(f"{what}: start_indices must hold {n} indices (one per axis), got {len(start_indices)}")
    neg = [negative] * n if isinstance(negative, bool) else list(negative)
    out = []
    for a, (s, d, k) in enumerate(zip(start_indices, shape, sizes)):
        if not 0 <= k <= d:
            raise ArgumentError(f"{what}: slice size {k} of axis {a} must be between 0 and the axis size {d}")
        if isinstance(s, Value):
            if s.dtype.kind not in "iu":
                raise ArgumentError(f"{what}: start index {a} must be an integer, got {s.dtype}")
            if s.ndim != 0:
                raise ArgumentError(f"{what}: start index {a} must be a scalar, got shape {s.shape}")
            if neg[a]:
                s = gnp.where(s < 0, s + d, s)
            out.append(gnp.clip(s, 0, d - k))      # JAX clamps so the slice stays in bounds
        else:
            if np.asarray(s).dtype.kind not in "iu":
                raise ArgumentError(f"{what}: start index {a} must be an integer, got {s!r}")
            s = int(s)
            s = s + d if neg[a] and s < 0 else s
            out.append(_min(_max(s, 0), d - k))
    return out


def dynamic_slice(operand, start_indices, slice_sizes, *, allow_negative_indices=True):
    """``jax.lax.dynamic_slice``: the block of ``slice_sizes`` at ``start_indices`` (a
    negative start counts from the end; starts are clamped so the block is in bounds).
    Traced starts gather the block, and the gradient scatters back to it."""
    shape = _shape(operand)
    sizes = _ints(slice_sizes, len(shape), "dynamic_slice's slice_sizes")
    starts = _starts(start_indices, shape, sizes, allow_negative_indices, "dynamic_slice")
    y = operand[tuple(_slice(s, s + k) if not isinstance(s, Value) else _slice(None)
                      for s, k in zip(starts, sizes))]
    for a, (s, k) in enumerate(zip(starts, sizes)):
        if isinstance(s, Value):
            y = gnp.take(y, s + np.arange(k), axis=a)
    return y


def dynamic_update_slice(operand, update, start_indices, *, allow_negative_indices=True):
    """``jax.lax.dynamic_update_slice``: ``operand`` with the block at ``start_indices``
    replaced by ``update`` (starts clamped as in ``dynamic_slice``)."""
    shape, ushape = _shape(operand), _shape(update)
    if len(ushape) != len(shape):
        raise ArgumentError(f"dynamic_update_slice: update has rank {len(ushape)}, operand rank {len(shape)}")
    starts = _starts(start_indices, shape, ushape, allow_negative_indices, "dynamic_update_slice")
    if not _traced(*starts):
        key = tuple(_slice(s, s + k) for s, k in zip(starts, ushape))
        if _eager(operand, update):
            out = np.array(operand, copy=True)
            out[key] = update
            return out
        return _to_value(operand).at[key].set(update)
    # traced starts: spread update over operand's shape by a gather per axis, then select
    u, inside = update, np.True_
    for a, (s, d, k) in enumerate(zip(starts, shape, ushape)):
        rel = np.arange(d) - s if isinstance(s, Value) else _to_value(np.arange(d) - s)
        u = gnp.take(u, gnp.clip(rel, 0, _max(k - 1, 0)), axis=a)
        ok = gnp.logical_and(rel >= 0, rel < k)
        inside = gnp.logical_and(inside, gnp.reshape(ok, [d if j == a else 1 for j in range(len(shape))]))
    return gnp.where(inside, u, operand)


def dynamic_slice_in_dim(operand, start_index, slice_size, axis=0, *, allow_negative_indices=True):
    """``jax.lax.dynamic_slice_in_dim``: ``dynamic_slice`` along one axis."""
    shape = _shape(operand)
    axis = axis % len(shape)
    starts = [0] * len(shape)
    starts[axis] = start_index
    sizes = list(shape)
    sizes[axis] = slice_size
    return dynamic_slice(operand, starts, sizes, allow_negative_indices=allow_negative_indices)


def dynamic_index_in_dim(operand, index, axis=0, keepdims=True, *, allow_negative_indices=True):
    """``jax.lax.dynamic_index_in_dim``: element ``index`` of ``axis`` (clamped)."""
    axis = axis % len(_shape(operand))
    y = dynamic_slice_in_dim(operand, index, 1, axis, allow_negative_indices=allow_negative_indices)
    return y if keepdims else _squeeze(y, axis)


def dynamic_update_slice_in_dim(operand, update, start_index, axis, *, allow_negative_indices=True):
    """``jax.lax.dynamic_update_slice_in_dim``: ``dynamic_update_slice`` along one axis."""
    shape = _shape(operand)
    axis = axis % len(shape)
    starts = [0] * len(shape)
    starts[axis] = start_index
    return dynamic_update_slice(operand, update, starts, allow_negative_indices=allow_negative_indices)


def dynamic_update_index_in_dim(operand, update, index, axis, *, allow_negative_indices=True):
    """``jax.lax.dynamic_update_index_in_dim``: element ``index`` of ``axis`` replaced by
    ``update`` (which may lack that axis)."""
    shape = _shape(operand)
    axis = axis % len(shape)
    if len(_shape(update)) == len(shape) - 1:
        update = _expand_dims(update, axis)
    return dynamic_update_slice_in_dim(operand, update, index, axis, allow_negative_indices=allow_negative_indices)


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


# ----------------------------------------------------------------------------- shapes and contractions
def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None, out_sharding=None):
    """``jax.lax.dot_general``: ``dimension_numbers = ((lhs_contract, rhs_contract),
    (lhs_batch, rhs_batch))``; the result's axes are the batch axes, then lhs's free
    axes, then rhs's, as in JAX."""
    (lc, rc), (lb, rb) = dimension_numbers
    ls, rs = _shape(lhs), _shape(rhs)
    lc, rc = [a % len(ls) for a in lc], [a % len(rs) for a in rc]
    lb, rb = [a % len(ls) for a in lb], [a % len(rs) for a in rb]
    if len(lc) != len(rc) or len(lb) != len(rb):
        raise ArgumentError(f"dot_general: contracting {dimension_numbers[0]} and batch {dimension_numbers[1]} "
                            "axes must pair up")
    for a, b in list(zip(lc, rc)) + list(zip(lb, rb)):
        if ls[a] != rs[b]:
            raise ShapeError(f"dot_general: lhs axis {a} (size {ls[a]}) and rhs axis {b} (size {rs[b]}) differ")
    letters = iter("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    lsub, rsub = [None] * len(ls), [None] * len(rs)
    for a, b in list(zip(lb, rb)) + list(zip(lc, rc)):
        lsub[a] = rsub[b] = next(letters)
    lfree = [a for a in range(len(ls)) if lsub[a] is None]
    rfree = [b for b in range(len(rs)) if rsub[b] is None]
    for a in lfree:
        lsub[a] = next(letters)
    for b in rfree:
        rsub[b] = next(letters)
    out = "".join(lsub[a] for a in lb) + "".join(lsub[a] for a in lfree) + "".join(rsub[b] for b in rfree)
    y = gnp.einsum(f"{''.join(lsub)},{''.join(rsub)}->{out}", lhs, rhs)
    return gnp.astype(y, preferred_element_type) if preferred_element_type is not None else y


def dot(lhs, rhs, precision=None, preferred_element_type=None):
    """``jax.lax.dot``: vector . vector, matrix @ vector or matrix @ matrix."""
    y = gnp.dot(lhs, rhs)
    return gnp.astype(y, preferred_element_type) if preferred_element_type is not None else y


def broadcast_in_dim(operand, shape, broadcast_dimensions, *, out_sharding=None):
    """``jax.lax.broadcast_in_dim``: axis i of ``operand`` becomes axis
    ``broadcast_dimensions[i]`` of the result of ``shape`` (sizes equal, or 1)."""
    oshape, shape, dims = _shape(operand), tuple(int(s) for s in shape), tuple(int(d) for d in broadcast_dimensions)
    if len(dims) != len(oshape) or list(dims) != sorted(set(dims)) or any(not 0 <= d < len(shape) for d in dims):
        raise ArgumentError(f"broadcast_in_dim: broadcast_dimensions {dims} must be increasing axes of the result "
                            f"{shape}, one per axis of the operand {oshape}")
    full = [1] * len(shape)
    for i, d in enumerate(dims):
        if oshape[i] not in (1, shape[d]):
            raise ShapeError(f"broadcast_in_dim: operand axis {i} has size {oshape[i]}, result axis {d} size {shape[d]}")
        full[d] = oshape[i]
    if _eager(operand):
        return np.broadcast_to(np.reshape(operand, full), shape)
    return gnp.broadcast_to(gnp.reshape(operand, full), shape)


def broadcast(operand, sizes, *, out_sharding=None):
    """``jax.lax.broadcast``: new leading axes of ``sizes``."""
    shape = tuple(sizes) + _shape(operand)
    return broadcast_in_dim(operand, shape, range(len(sizes), len(shape)))


def reshape(operand, new_sizes, dimensions=None, *, out_sharding=None):
    """``jax.lax.reshape``: row-major reshape, after transposing by ``dimensions``."""
    x = gnp.transpose(operand, tuple(dimensions)) if dimensions is not None else operand
    return gnp.reshape(x, tuple(int(s) for s in new_sizes))


def transpose(operand, permutation):
    """``jax.lax.transpose``: the axes permuted."""
    return gnp.transpose(operand, tuple(int(a) for a in permutation))


def squeeze(array, dimensions):
    """``jax.lax.squeeze``: the given size-1 axes removed."""
    dims = tuple(dimensions)
    return _squeeze(array, dims) if dims else array


def expand_dims(array, dimensions):
    """``jax.lax.expand_dims``: size-1 axes inserted at ``dimensions``."""
    dims = tuple(dimensions)
    if len(set(dims)) != len(dims):
        raise ArgumentError(f"expand_dims: repeated axis in {dims}")
    return _expand_dims(array, dims) if dims else array


def concatenate(operands, dimension):
    """``jax.lax.concatenate``: joined along ``dimension``."""
    return gnp.concatenate(list(operands), axis=dimension)


def rev(operand, dimensions):
    """``jax.lax.rev``: reversed along each axis in ``dimensions``."""
    dims = tuple(dimensions)
    return gnp.flip(operand, dims) if dims else operand


def clamp(min, x, max):  # noqa: A002  (jax.lax's argument names)
    """``jax.lax.clamp``: ``x`` limited to [min, max] (note the argument order)."""
    return gnp.minimum(gnp.maximum(x, min), max)


def integer_pow(x, y):
    """``jax.lax.integer_pow``: ``x ** y`` for a Python int ``y`` (negative: 1 / x**-y)."""
    if int(y) != y:
        raise ArgumentError(f"integer_pow: the exponent must be an int, got {y!r}")
    y = int(y)
    if y == 0:
        return gnp.ones_like(x)
    return gnp.power(x, y) if y > 0 else 1.0 / gnp.power(x, -y)


def rsqrt(x):
    """``jax.lax.rsqrt``: 1 / sqrt(x)."""
    return 1.0 / gnp.sqrt(x)


def div(x, y):
    """``jax.lax.div``: x / y; for integers rounded toward zero (C's division, as JAX)."""
    if _kind(x) in "iu" and _kind(y) in "iu":
        return gnp.astype(gnp.trunc(gnp.astype(x, np.float64) / gnp.astype(y, np.float64)), _dtype(x))
    return gnp.divide(x, y)


def _dtype(x):
    return x.dtype if isinstance(x, Value) else np.result_type(x)


def _kind(x):
    return np.dtype(_dtype(x)).kind


def round(x, rounding_method=0):  # noqa: A001  (jax.lax's name)
    """``jax.lax.round``: half away from zero (``rounding_method=0``, JAX's default) or
    half to even (1)."""
    if int(rounding_method) == 1:
        return gnp.rint(x)
    return gnp.sign(x) * gnp.floor(gnp.abs(x) + 0.5)


def convert_element_type(operand, new_dtype):
    """``jax.lax.convert_element_type``: ``operand`` as ``new_dtype``."""
    return gnp.astype(operand, new_dtype)


def _reduce(f):
    def reducer(operand, axes):
        return f(operand, axis=tuple(int(a) for a in axes))
    reducer.__doc__ = f"``jax.lax.{f.__name__}``-style reduction over ``axes``."
    return reducer


reduce_sum, reduce_max, reduce_min, reduce_prod = (_reduce(gnp.sum), _reduce(gnp.max), _reduce(gnp.min),
                                                   _reduce(gnp.prod))


def argmax(operand, axis, index_dtype=np.int32):
    """``jax.lax.argmax``: index of the first maximum along ``axis``."""
    return gnp.astype(gnp.argmax(operand, axis=axis), index_dtype)


def argmin(operand, axis, index_dtype=np.int32):
    """``jax.lax.argmin``: index of the first minimum along ``axis``."""
    return gnp.astype(gnp.argmin(operand, axis=axis), index_dtype)


def cumsum(operand, axis=0, reverse=False):
    """``jax.lax.cumsum``: running sum along ``axis`` (from the end when ``reverse``)."""
    if reverse:
        return gnp.flip(gnp.cumsum(gnp.flip(operand, axis), axis=axis), axis)
    return gnp.cumsum(operand, axis=axis)


def cumprod(operand, axis=0, reverse=False):
    """``jax.lax.cumprod``: running product along ``axis``."""
    if reverse:
        return gnp.flip(gnp.cumprod(gnp.flip(operand, axis), axis=axis), axis)
    return gnp.cumprod(operand, axis=axis)


# jax.lax's element-wise names, as gradc.numpy's functions
add, sub, mul, neg = gnp.add, gnp.subtract, gnp.multiply, gnp.negative
max, min = gnp.maximum, gnp.minimum  # noqa: A001
exp, exp2, log, log1p, expm1, sqrt, cbrt = gnp.exp, gnp.exp2, gnp.log, gnp.log1p, gnp.expm1, gnp.sqrt, gnp.cbrt
tanh, logistic, sin, cos, tan = gnp.tanh, gnp.sigmoid, gnp.sin, gnp.cos, gnp.tan
sinh, cosh, asin, acos, atan, atan2 = gnp.sinh, gnp.cosh, gnp.arcsin, gnp.arccos, gnp.arctan, gnp.arctan2
asinh, acosh, atanh = gnp.arcsinh, gnp.arccosh, gnp.arctanh
abs, sign, floor, ceil, square, pow = gnp.abs, gnp.sign, gnp.floor, gnp.ceil, gnp.square, gnp.power  # noqa: A001
rem, erf, erfc, is_finite = gnp.fmod, gnp.erf, gnp.erfc, gnp.isfinite
eq, ne, lt, le, gt, ge = gnp.equal, gnp.not_equal, gnp.less, gnp.less_equal, gnp.greater, gnp.greater_equal
select = gnp.where
