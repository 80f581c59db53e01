"""JAX's smaller top-level names, on gradc's transformations (``gradc`` re-exports them):

* ``ShapeDtypeStruct`` and ``eval_shape``: a function's output shapes and dtypes, from
  tracing it once (nothing is compiled or run);
* ``linearize`` (by ``jvp``) and ``linear_transpose`` (by ``vjp``);
* ``custom_gradient``, on ``custom_vjp``;
* ``block_until_ready``, ``device_put``, ``device_get``: gradc computes on the host, in
  numpy arrays, so these are (nearly) identities that let JAX code run unchanged.
"""
from __future__ import annotations

import numpy as np

from .api import _names, jit, jvp, vjp
from .api_args import Flat, prepare
from .custom_derivatives import custom_vjp
from .errors import ArgumentError
from .shapes import resolve
from .tracer import Spec, Value, trace_specs
from .tree_util import tree_map, tree_unflatten

__all__ = ["ShapeDtypeStruct", "eval_shape", "linearize", "linear_transpose", "custom_gradient",
           "block_until_ready", "device_put", "device_get"]


class ShapeDtypeStruct:
    """An array's shape and dtype without its values (``jax.ShapeDtypeStruct``):
    :func:`eval_shape` returns them, and takes them in place of arrays.  It is a pytree
    leaf; two are equal when their shapes and dtypes are."""

    __slots__ = ("shape", "dtype", "sharding", "weak_type")

    def __init__(self, shape, dtype, *, sharding=None, weak_type=False):
        try:
            self.shape = tuple(int(s) for s in shape)
        except TypeError:
            raise ArgumentError(f"ShapeDtypeStruct: shape must be a sequence of ints, got {shape!r}") from None
        if any(s < 0 for s in self.shape):
            raise ArgumentError(f"ShapeDtypeStruct: shape {self.shape} has a negative size")
        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            raise ArgumentError(f"ShapeDtypeStruct: dtype must be a numpy dtype, got {dtype!r}") from None
        self.sharding, self.weak_type = sharding, bool(weak_type)

    ndim = property(lambda self: len(self.shape), doc="the number of axes")
    size = property(lambda self: int(np.prod(self.shape, dtype=np.int64)), doc="the number of elements")

    def __eq__(self, other):
        return isinstance(other, ShapeDtypeStruct) and (self.shape, self.dtype) == (other.shape, other.dtype)

    def __hash__(self):
        return hash((self.shape, self.dtype))

    def __repr__(self):
        return f"ShapeDtypeStruct(shape={self.shape}, dtype={self.dtype.name})"


def _stand_in(x):
    """An array of ``x``'s shape and dtype that holds no memory (a zero broadcast), for
    a ShapeDtypeStruct or any object with ``shape`` and ``dtype`` that is not an array."""
    if isinstance(x, (np.ndarray, np.generic, Value)) or not (hasattr(x, "shape") and hasattr(x, "dtype")):
        return x
    return np.broadcast_to(np.zeros((), np.dtype(x.dtype)), tuple(x.shape))


def eval_shape(fun, *args, **kwargs):
    """``jax.eval_shape``: the shapes and dtypes of ``fun(*args, **kwargs)``, as a pytree
    of :class:`ShapeDtypeStruct` in the output's structure, found by tracing ``fun`` once
    (no compiling, no running).  An argument leaf may be an array, a number, or a
    ``ShapeDtypeStruct`` (or anything with ``.shape`` and ``.dtype``); keyword arguments
    are constants of the trace."""
    if not callable(fun):
        raise ArgumentError(f"eval_shape: fun must be a function, got a {type(fun).__name__}")
    args = tree_map(_stand_in, args)
    kwargs = tree_map(_stand_in, kwargs)
    name = getattr(fun, "__name__", "f")
    flat = Flat(args, _names(fun, len(args)))
    arrays = prepare(flat.leaves, (), name, flat.labels, flat.positions)
    g, structure, _ = trace_specs(flat.fun(lambda *a: fun(*a, **kwargs)), [Spec.of(a) for a in arrays],
                                  flat.names, name=name)
    outs = [ShapeDtypeStruct(resolve(g[o].shape, g.example), g[o].dtype) for o in g.outputs]
    return tree_unflatten(structure, outs)


def linearize(fun, *primals, has_aux=False):
    """``jax.linearize``: ``(fun(*primals), f_jvp)`` where ``f_jvp(*tangents)`` is the
    Jacobian-vector product at ``primals`` (``tangents`` in the primals' structure).
    ``f_jvp`` runs ``gradc.jvp`` at the primals on each call (compiled once, so each call
    also recomputes the forward pass).  ``has_aux=True``: ``fun`` returns ``(out, aux)``
    and the result is ``(out, f_jvp, aux)``."""
    if not callable(fun):
        raise ArgumentError(f"linearize: fun must be a function, got a {type(fun).__name__}")
    if has_aux:
        out, aux = jit(fun)(*primals)
        main = _first(fun)
    else:
        out, main = jit(fun)(*primals), fun

    def f_jvp(*tangents):
        if len(tangents) != len(primals):
            raise ArgumentError(f"linearize's f_jvp: expected {len(primals)} tangent(s), one per primal, got "
                                f"{len(tangents)}")
        return jvp(main, primals, tangents)[1]
    return (out, f_jvp, aux) if has_aux else (out, f_jvp)


def _first(fun):
    def main(*args):
        return fun(*args)[0]
    return main


def linear_transpose(fun, *primals, reduce_axes=()):
    """``jax.linear_transpose``: for ``fun`` linear in its arguments, the function
    ``f_t(ct) -> tuple`` of its transpose (one cotangent per argument, each in its
    argument's structure).  ``primals`` give the arguments' shapes and dtypes (arrays or
    :class:`ShapeDtypeStruct`); since ``fun`` is linear its vector-Jacobian product is
    the same at every point, and gradc computes it by ``vjp`` at zeros.  A ``fun`` that
    is not linear gets the transpose of its derivative at zero, not an error."""
    if not callable(fun):
        raise ArgumentError(f"linear_transpose: fun must be a function, got a {type(fun).__name__}")
    zeros = tree_map(lambda x: np.zeros(np.shape(_stand_in(x)), _dtype_of(x)), primals)
    _, vjp_fn = vjp(fun, *zeros)

    def f_transpose(*cts):
        return tuple(vjp_fn(*cts))
    return f_transpose


def _dtype_of(x):
    dt = getattr(x, "dtype", None)
    return np.dtype(dt) if dt is not None else np.result_type(x)


def custom_gradient(fun):
    """``jax.custom_gradient``: ``fun(*args)`` returns ``(out, vjp)`` where ``vjp(g)``
    gives the cotangents of the arguments (a tuple, one per argument, or a single
    value for a function of one argument); the decorated function returns ``out`` and
    differentiates by that ``vjp``.  Built on :class:`gradc.custom_vjp`: the residuals
    are the arguments, and the backward pass calls ``fun`` again to get its ``vjp``
    (gradc's optimizer shares the repeated forward computation with the first)."""
    if not callable(fun):
        raise ArgumentError(f"custom_gradient: expected a function, got a {type(fun).__name__}")

    def primal(*args):
        return _pair(fun, args)[0]
    primal.__name__ = primal.__qualname__ = getattr(fun, "__name__", "f")
    primal.__doc__ = fun.__doc__
    wrapped = custom_vjp(primal)

    def fwd(*args):
        return _pair(fun, args)[0], args

    def bwd(args, g):
        cts = _pair(fun, args)[1](g)
        return cts if isinstance(cts, tuple) else (cts,)     # (JAX's rule: a non-tuple is one cotangent)
    wrapped.defvjp(fwd, bwd)
    return wrapped


def _pair(fun, args):
    got = fun(*args)
    if not (isinstance(got, tuple) and len(got) == 2 and callable(got[1])):
        raise ArgumentError(f"custom_gradient: {getattr(fun, '__name__', 'the function')} must return a pair "
                            f"(output, vjp function), got {type(got).__name__}")
    return got


def block_until_ready(x):
    """``jax.block_until_ready``: ``x`` itself.  gradc's calls return when their results
    are computed, so there is nothing to wait for."""
    return x


def device_put(x, device=None, *, src=None, donate=False, may_alias=None):
    """``jax.device_put``: ``x`` (a pytree) with each leaf a numpy array, the arrays
    gradc computes on (the host); ``device`` and the other options are accepted and
    ignored.  Traced values are returned as they are."""
    return tree_map(lambda v: v if isinstance(v, Value) else np.asarray(v), x)


def device_get(x):
    """``jax.device_get``: ``x`` (a pytree) with each array leaf as a numpy array;
    other leaves (Python numbers, strings) are returned unchanged."""
    def get(v):
        if isinstance(v, Value):
            raise ArgumentError("device_get: got a traced value; call it outside the transformed function")
        return np.asarray(v) if hasattr(v, "__array__") and not isinstance(v, (np.ndarray, np.generic)) else v
    return tree_map(get, x)
