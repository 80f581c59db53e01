"""``gradc.vmap``: a function of one example made a function of a batch, as ``jax.vmap``.

The function is traced once for one example and its graph batched
(:mod:`gradc.batching`); inside another transformation (``grad``, ``jit``, another
``vmap``) the batched graph joins that trace, and called on arrays it is compiled as
``gradc.jit`` compiles (once per signature).
"""
from __future__ import annotations

import functools

import numpy as np

from . import numpy as gnp
from .api import jit
from .batching import batch_replay
from .errors import ArgumentError, ShapeError
from .ops.bind import batch_materialize
from .ops.collectives import naming
from .ops.linalg import transpose
from .tracer import Spec, Value, batch_float0, current, to_value, trace_specs, user_source
from .tree_util import broadcast_prefix, keystr, leaf_paths, tree_flatten, tree_leaves, tree_unflatten


def vmap(fun, in_axes=0, out_axes=0, *, axis_name=None, axis_size=None, spmd_axis_name=None):
    """Map ``fun`` over an axis of its arguments, as ``jax.vmap``.

    ``in_axes``: the mapped axis of every argument (an int), or per positional argument a
    tuple of ints, ``None`` (not mapped: every example shares the argument) or pytrees of
    them matching the argument's structure.  Keyword arguments are mapped over axis 0.
    ``out_axes``: where the outputs get the mapped axis (an int, or a pytree of ints
    matching the output).  ``axis_size``: the batch size when no argument is mapped.
    ``axis_name``: a name for the batch axis, which ``gradc.lax.psum``, ``pmean``,
    ``pmax``, ``pmin`` and ``axis_index`` inside ``fun`` reduce over or index
    (``spmd_axis_name`` is accepted and ignored: gradc runs on one host).

    ``vmap(grad(loss), in_axes=(None, 0, 0))(params, X, y)`` gives per-example gradients;
    ``grad`` of a vmapped function, ``vmap`` of ``vmap`` and ``jit`` of either work.
    An unmapped positional argument that is a Python ``int``, ``bool`` or ``str`` reaches
    ``fun`` as itself, as in JAX (a step count, a flag, the static argument of a ``jit``
    inside): each value compiles once."""
    name = getattr(fun, "__name__", "f")

    @functools.wraps(fun)
    def batched(*args, **kwargs):
        leaves = tree_leaves((args, kwargs))
        if current() is None and not any(isinstance(x, Value) for x in leaves):
            return _compiled(args)(*args, **kwargs)
        return _vmap_traced(fun, name, in_axes, out_axes, axis_size, args, kwargs, axis_name)

    variants = {}

    def _compiled(args):
        """The compiled function for these arguments: with the Python values that are
        not mapped static (a traced int would be a number without a value)."""
        axes = tuple(in_axes) if isinstance(in_axes, (tuple, list)) else (in_axes,) * len(args)
        static = tuple(i for i, (a, ax) in enumerate(zip(args, axes))
                       if ax is None and type(a) in (int, bool, str))
        f = variants.get(static)
        if f is None:
            f = variants[static] = jit(batched, static_argnums=static) if static else jit(batched)
        return f

    batched.__name__ = f"vmap({name})"
    return batched


def _axes_per_leaf(in_axes, args: tuple, kwargs: dict, name: str) -> list:
    """The mapped axis (or None) of each leaf of ``(args, kwargs)``."""
    if isinstance(in_axes, list):
        in_axes = tuple(in_axes)
    if isinstance(in_axes, tuple):
        if len(in_axes) != len(args):
            raise _error(name, f"in_axes has {len(in_axes)} entries but the call has {len(args)} positional "
                               "arguments")
    else:
        in_axes = (in_axes,) * len(args)
    try:
        axes = broadcast_prefix((in_axes, {k: 0 for k in kwargs}), (args, kwargs))
    except ValueError as e:
        raise _error(name, f"in_axes does not match the arguments' structure: {e}") from None
    for ax in axes:
        if ax is not None and not isinstance(ax, (int, np.integer)):
            raise _error(name, f"in_axes entries must be ints or None, got {ax!r}")
    return axes


def _error(name, text) -> ArgumentError:
    src = user_source()
    return ArgumentError(f"vmap({name}): {text}" + (f"  [at {src}]" if src else ""))


def _label(path) -> str:
    """A leaf of ``(args, kwargs)`` as a message names it: ``argument 1['W']``."""
    where = "argument" if path[0] == 0 else "keyword argument"
    return f"{where} {path[1]}{keystr(path[2:])}"


def _vmap_traced(fun, name, in_axes, out_axes, axis_size, args, kwargs, axis_name=None):
    leaves, tree = tree_flatten((args, kwargs))
    paths = leaf_paths(tree)
    axes = _axes_per_leaf(in_axes, args, kwargs, name)
    inputs, batched, where, static = [], [], [], list(leaves)
    n = None
    first = None
    for k, (x, ax) in enumerate(zip(leaves, axes)):
        if ax is None:
            if isinstance(x, Value):
                inputs.append(x)
                batched.append(False)
                where.append(k)
            continue          # a constant shared by every example: traced as one
        v = to_value(x)
        a = int(ax)
        if not -v.ndim <= a < v.ndim:
            raise _error(name, f"in_axes maps axis {a} of {_label(paths[k])}, of rank {v.ndim}"
                               + (" (a scalar)" if v.ndim == 0 else ""))
        a %= v.ndim
        if a:
            v = transpose(v, (a,) + tuple(i for i in range(v.ndim) if i != a))
        env = v._b.env
        if n is None:
            n, first = v._shape[0], (k, a)
        else:
            try:
                n = env.equal(n, v._shape[0], "vmap")
            except ShapeError:
                raise _error(name, f"the mapped axes differ in size: {_label(paths[first[0]])} has "
                                   f"{env.value(n)} on axis {first[1]}, {_label(paths[k])} has "
                                   f"{env.value(v._shape[0])} on axis {a}") from None
        inputs.append(v)
        batched.append(True)
        where.append(k)
    if n is None:
        if axis_size is None:
            raise _error(name, "no argument is mapped (every in_axes is None); give axis_size")
        n = int(axis_size)

    def per_example(*vals):
        full = list(static)
        for k, v in zip(where, vals):
            full[k] = v
        a, kw = tree_unflatten(tree, full)
        return fun(*a, **kw)

    specs = []
    for v, bt in zip(inputs, batched):
        shape = v._shape[1:] if bt else v._shape
        env = v._b.env
        specs.append(Spec(tuple(1 if env.find(d) == 1 else None for d in shape), v.dtype,
                          tuple(env.value(d) for d in shape)))
    with naming(axis_name):
        graph, structure, captured = trace_specs(per_example, specs, [f"x{k}" for k in where], name=name)
    outs = batch_replay(graph, inputs + list(captured), batched + [False] * len(captured), n, axis_name)
    placed = _place_outputs(outs, structure, out_axes, n, name)
    return tree_unflatten(batch_float0(structure, inputs[0]._b.env.value(n) if inputs else n,
                                       out_axes if isinstance(out_axes, int) else 0), placed)


def _place_outputs(outs, structure, out_axes, n, name) -> list:
    try:
        axes = broadcast_prefix(out_axes, tree_unflatten(structure, list(range(len(outs)))))
    except ValueError as e:
        raise _error(name, f"out_axes does not match the output's structure: {e}") from None
    placed = []
    for k, ((v, bt), ax) in enumerate(zip(outs, axes)):
        if ax is None:
            if bt:
                raise _error(name, f"out_axes is None for output leaf {k}, but it depends on the mapped "
                                   "arguments")
            placed.append(v)
            continue
        if not bt:
            v = batch_materialize(n, v)
        a = int(ax)
        if not -v.ndim <= a < v.ndim:
            raise _error(name, f"out_axes {a} is out of range for an output of rank {v.ndim - 1}")
        a %= v.ndim
        if a:
            order = list(range(1, v.ndim))
            order.insert(a, 0)
            v = transpose(v, tuple(order))
        placed.append(v)
    return placed


# ----------------------------------------------------------------------------- numpy.apply_along_axis
def apply_along_axis(func1d, axis, arr, *args, **kwargs):
    """numpy.apply_along_axis: ``func1d`` of each 1-d slice along ``axis``, mapped with
    :func:`vmap` over the other axes (func1d is traced once, not once per slice); the
    axes of its result take ``axis``'s place.  (It lives here, beside vmap, and is
    published as ``gradc.numpy.apply_along_axis``.)"""
    from .ops.axes import moveaxis
    if current() is None and not isinstance(arr, Value):
        return np.apply_along_axis(func1d, axis, arr, *args, **kwargs)
    a = to_value(arr)
    axis = axis + a.ndim if axis < 0 else axis
    rest = moveaxis(a, axis, -1)
    lead = rest.ndim - 1

    def f(v):
        return func1d(v, *args, **kwargs)
    for _ in range(lead):
        f = vmap(f)
    out = to_value(f(rest))
    k = out.ndim - lead                     # the axes func1d returned
    if not k:
        return out
    return moveaxis(out, tuple(range(lead, lead + k)), tuple(range(axis, axis + k)))


gnp.apply_along_axis = apply_along_axis
gnp.FUNCTIONS["apply_along_axis"] = apply_along_axis
