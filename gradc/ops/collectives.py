"""Collectives over a ``vmap``'s named axis, as JAX's: inside ``vmap(f, axis_name="i")``,
``psum(x, "i")`` is the sum of ``x`` over the examples of the batch (the same value for
every example), ``pmean``, ``pmax`` and ``pmin`` likewise, and ``axis_index("i")`` each
example's position in the batch.

While ``f`` is traced for one example these are placeholder ops that name their axis
(``named_reduce``, ``axis_index``); batching (``gradc.batching``) turns a placeholder of
its own vmap's axis into a reduction over the batch axis, and leaves the others, which
name an outer vmap's axis, for that vmap's batching.  So nothing of them reaches
compilation, and a vmapped function differentiates as any other.  ``psum``'s and
``pmean``'s derivatives are themselves (the cotangent summed over the axis);
``pmax``/``pmin`` have none here.
"""
from __future__ import annotations

import threading

import numpy as np

from ..errors import ArgumentError, UnsupportedError
from .bind import bind, tracer
from .registry import Op, register

_active = threading.local()   # the axis names of the vmaps tracing on this thread


def bound_names() -> tuple:
    return getattr(_active, "names", ())


class naming:
    """``with naming(name)``: a vmap traces its example with ``name`` bound."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        _active.names = bound_names() + ((self.name,) if self.name is not None else ())

    def __exit__(self, *exc):
        _active.names = bound_names()[:-1] if self.name is not None else bound_names()


def _check_name(axis_name, what):
    names = axis_name if isinstance(axis_name, (tuple, list)) else (axis_name,)
    for nm in names:
        if nm not in bound_names():
            raise ArgumentError(f"{what}: unbound axis name {nm!r}: name the axis of an enclosing "
                                f"gradc.vmap (vmap(f, axis_name={nm!r}))")
    return tuple(names)


def _unbound(*args, **params):
    raise UnsupportedError(f"the collective over axis {params.get('axis_name')!r} ran outside the vmap "
                           f"that names it")


def _vjp(g, y, x, kind, axis_name):
    if kind in ("max", "min"):
        raise UnsupportedError(f"p{kind} over a vmap axis has no derivative in gradc")
    return (bind("named_reduce", g, kind=kind, axis_name=axis_name),)


def _jvp(ts, y, x, kind, axis_name):
    if ts[0] is None:
        return None
    if kind in ("max", "min"):
        raise UnsupportedError(f"p{kind} over a vmap axis has no derivative in gradc")
    return bind("named_reduce", ts[0], kind=kind, axis_name=axis_name)


register(Op("named_reduce", "structure", lambda env, avals, kind, axis_name: avals[0], _unbound,
            vjp=_vjp, jvp=_jvp, doc="psum/pmean/pmax/pmin over a vmap's named axis (a placeholder "
                                    "that batching makes a reduction over the batch)",
            # (batched by an inner vmap: it names an outer one, whose batching reduces it)
            batch=lambda n, args, batched, kind, axis_name: bind("named_reduce", args[0], kind=kind,
                                                                 axis_name=axis_name),
            extra={"placeholder": True}))     # (never folded: only batching gives it a value)
register(Op("axis_index", "source", lambda env, avals, axis_name: ((), np.dtype(np.int64)), _unbound,
            doc="each example's index along a vmap's named axis (a placeholder batching makes an iota)",
            extra={"placeholder": True}))


def batch_named(opname, operands, params, n, axis_name):
    """The batching of a collective by the vmap of ``axis_name`` (None: not one of its
    placeholders, or an outer vmap's): ``(value, batched)``."""
    if params.get("axis_name") != axis_name or axis_name is None:
        return None
    t = tracer()
    if opname == "axis_index":
        return bind("iota", shape=(n,), axis=0, dtype=np.dtype(np.int64)), True
    (x, batched), = operands
    kind = params["kind"]
    x = t.to_value(x)
    if not batched:                  # every example holds the same x: x n for a sum, as JAX
        if kind != "sum":
            return x, False
        copies = bind("broadcast_to", x, shape=(n,) + tuple(x._shape))
        return x * bind("count", copies, axes=(0,), dtype=x.dtype), False
    from . import reduce as red
    if kind == "sum":
        return red.sum_(x, 0), False
    if kind == "mean":
        return red.mean(x, 0), False
    return (red.max_ if kind == "max" else red.min_)(x, 0), False


def _collective(kind, x, axis_name, groups, what):
    from ..tree_util import tree_map
    if groups is not None:
        raise UnsupportedError(f"{what}: axis_index_groups is not supported")
    names = _check_name(axis_name, what)

    def one(v):
        for nm in names:
            v = bind("named_reduce", tracer().to_value(v), kind=kind, axis_name=nm)
        return v
    return tree_map(one, x)


def psum(x, axis_name, *, axis_index_groups=None):
    """The sum of ``x`` (a pytree) over the examples of the vmap named ``axis_name``."""
    return _collective("sum", x, axis_name, axis_index_groups, "gradc.lax.psum")


def pmean(x, axis_name, *, axis_index_groups=None):
    """The mean of ``x`` over the examples of the vmap named ``axis_name``."""
    return _collective("mean", x, axis_name, axis_index_groups, "gradc.lax.pmean")


def pmax(x, axis_name, *, axis_index_groups=None):
    """The maximum of ``x`` over the examples of the vmap named ``axis_name``."""
    return _collective("max", x, axis_name, axis_index_groups, "gradc.lax.pmax")


def pmin(x, axis_name, *, axis_index_groups=None):
    """The minimum of ``x`` over the examples of the vmap named ``axis_name``."""
    return _collective("min", x, axis_name, axis_index_groups, "gradc.lax.pmin")


def axis_index(axis_name):
    """This example's index (int64) along the vmap named ``axis_name``."""
    nm, = _check_name(axis_name, "gradc.lax.axis_index")
    return bind("axis_index", axis_name=nm)


def axis_size(axis_name):
    """The batch size of the vmap named ``axis_name`` (``psum(1, axis_name)``)."""
    return psum(np.int64(1), axis_name)
