"""jax.lax's scans and reductions (``gradc.lax`` re-exports them): ``cummax``, ``cummin``,
``cumlogsumexp``, ``associative_scan`` and ``reduce``, with jax.lax's signatures.

Each is composed from gradc.numpy's ops, so it differentiates through their rules and
runs on every backend; outside a trace it computes with numpy:

* ``cummax``/``cummin`` are ``maximum.accumulate``/``minimum.accumulate``: at a tie the
  ``k`` elements holding a running extreme share its cotangent, ``1/k`` each (gradc's
  rule for ``max``, docs/derivatives.md; JAX's own pairwise rule differs at ties);
* ``cumlogsumexp`` is ``logaddexp.accumulate``, a scan of the stable ``logaddexp``;
* ``associative_scan`` is the parallel prefix of Ladner and Fischer, as JAX computes it:
  combine neighbouring pairs, scan that half-length sequence recursively (the results
  at odd positions), combine those with the remaining elements (the even positions) and
  interleave; ``fn`` is called O(log n) times on whole slices, never per element;
* ``reduce`` maps the monoids add, mul, max, min (and, or on booleans) to gradc's
  reductions, and applies any other computation pairwise, about log2(n) times.
"""
from __future__ import annotations

import operator

import numpy as np

from . import numpy as gnp
from .errors import ArgumentError
from .lax_arrays import axis_index
from .tracer import Value
from .tree_util import tree_flatten, tree_unflatten


def _shape(x):
    return tuple(x.shape) if isinstance(x, Value) else np.shape(x)


def _cumulative(ufunc, name, what):
    def cum(operand, axis=0, reverse=False):
        a = axis_index(axis, len(_shape(operand)), name)
        if reverse:
            return gnp.flip(ufunc.accumulate(gnp.flip(operand, a), axis=a), a)
        return ufunc.accumulate(operand, axis=a)
    cum.__name__ = cum.__qualname__ = name
    cum.__doc__ = f"``jax.lax.{name}``: {what} along ``axis`` (from the end when ``reverse``)."
    return cum


cummax = _cumulative(gnp.maximum, "cummax", "running maximum; tied holders of a running maximum share its "
                     "gradient equally")
cummin = _cumulative(gnp.minimum, "cummin", "running minimum; tied holders of a running minimum share its "
                     "gradient equally")
cumlogsumexp = _cumulative(gnp.logaddexp, "cumlogsumexp", "running ``log(sum(exp(x)))``, computed stably "
                           "(no overflow for large inputs)")


# ----------------------------------------------------------------------------- associative_scan
def _cut(x, axis, start, stop, step=1):
    return x[(slice(None),) * axis + (slice(start, stop, step),)]


def _interleave(a, b, axis):
    """``a[0], b[0], a[1], b[1], ...`` along ``axis``; ``a`` has as many elements as ``b``
    or one more."""
    na, nb = _shape(a)[axis], _shape(b)[axis]
    if na > nb:        # pad b with a's last element, interleave, and cut that one off again
        b = gnp.concatenate([b, _cut(a, axis, na - 1, na)], axis=axis)
    shape = list(_shape(a))
    shape[axis] = 2 * na
    y = gnp.reshape(gnp.stack([a, b], axis=axis + 1), shape)
    return _cut(y, axis, 0, na + nb) if na > nb else y


def associative_scan(fn, elems, reverse=False, axis=0):
    """``jax.lax.associative_scan``: the inclusive scan ``[a, fn(a, b), fn(fn(a, b), c),
    ...]`` of ``elems`` (a pytree of arrays of one size along ``axis``) for an
    associative ``fn`` of two such pytrees of slices (element-wise along ``axis``).
    ``reverse=True`` scans from the end: ``[..., fn(fn(z, y), x), fn(z, y), z]``.
    Computed by the parallel prefix, so ``fn`` is called about 2 log2(n) times."""
    if not callable(fn):
        raise ArgumentError(f"associative_scan: fn must be callable, got {fn!r}")
    leaves, tree = tree_flatten(elems)
    if not leaves:
        raise ArgumentError("associative_scan: elems holds no arrays")
    ndims = {len(_shape(x)) for x in leaves}
    if 0 in ndims:
        raise ArgumentError("associative_scan: the arrays of elems must have at least one dimension, got a scalar")
    a = axis_index(axis, min(ndims), "associative_scan")
    sizes = sorted({_shape(x)[a] for x in leaves})
    if len(sizes) != 1:
        raise ArgumentError(f"associative_scan: the arrays of elems must have one size along axis {axis}, "
                            f"got sizes {sizes}")
    if reverse:
        leaves = [gnp.flip(x, a) for x in leaves]

    def combine(xs, ys):
        out, t = tree_flatten(fn(tree_unflatten(tree, xs), tree_unflatten(tree, ys)))
        if len(out) != len(xs):
            raise ArgumentError(f"associative_scan: fn must return the structure of elems {tree}, returned {t}")
        return out

    def scan(xs):
        n = _shape(xs[0])[a]
        if n < 2:
            return xs
        odd = scan(combine([_cut(x, a, 0, n - 1, 2) for x in xs], [_cut(x, a, 1, n, 2) for x in xs]))
        rest = [_cut(x, a, 2, n, 2) for x in xs]          # x[2], x[4], ...: each follows an odd result
        heads = [_cut(o, a, 0, _shape(rest[0])[a]) for o in odd]
        even = combine(heads, rest) if _shape(rest[0])[a] else rest
        even = [gnp.concatenate([_cut(x, a, 0, 1), e], axis=a) for x, e in zip(xs, even)]
        return [_interleave(e, o, a) for e, o in zip(even, odd)]

    out = scan(leaves)
    if reverse:
        out = [gnp.flip(x, a) for x in out]
    return tree_unflatten(tree, out)


# ----------------------------------------------------------------------------- reduce
def _monoid(computation):
    """The name of the monoid ``computation`` is (gradc's, numpy's, jax.lax's or the
    operator module's add, mul, max, min, and, or), or None."""
    for name, fns in (("add", (gnp.add, np.add, operator.add)), ("mul", (gnp.multiply, np.multiply, operator.mul)),
                      ("max", (gnp.maximum, np.maximum)), ("min", (gnp.minimum, np.minimum)),
                      ("and", (gnp.logical_and, gnp.bitwise_and, np.logical_and, operator.and_)),
                      ("or", (gnp.logical_or, gnp.bitwise_or, np.logical_or, operator.or_))):
        if any(computation is f for f in fns):
            return name
    if getattr(computation, "__module__", "").split(".")[0] == "jax":      # jax.lax.add etc. (JAX not imported)
        return {"add": "add", "mul": "mul", "max": "max", "min": "min", "bitwise_and": "and",
                "bitwise_or": "or"}.get(getattr(computation, "__name__", None))
    return None


def reduce(operands, init_values, computation, dimensions, out_sharding=None):  # noqa: A001  (jax.lax's name)
    """``jax.lax.reduce``: ``operands`` (an array, or a pytree of arrays of one shape, with
    ``init_values`` a pytree of scalars alike) reduced over the axes ``dimensions`` by
    ``computation``, a function of two such pytrees that must be associative and
    commutative (XLA's requirement: it combines in any order).

    One operand with add, mul, max or min (jax.lax's, gradc.lax's, gradc.numpy's or
    numpy's; and, or on booleans) is gradc's reduction, ``computation(init_value,
    reduction)``, the reduction itself when ``init_value`` is the identity (as JAX
    requires); max and min follow gradc's tie rule.  Any other computation (several
    operands included, an argmax over (value, index) pairs, say) is applied to halves of
    the reduced elements, pairwise, about log2(n) times, then once with the init values;
    its gradient comes from its own ops."""
    leaves, tree = tree_flatten(operands)
    inits, itree = tree_flatten(init_values)
    if not leaves:
        raise ArgumentError("reduce: operands holds no arrays")
    if itree != tree:
        raise ArgumentError(f"reduce: init_values must have the structure of operands {tree}, got {itree}")
    shapes = sorted({_shape(x) for x in leaves})
    if len(shapes) != 1:
        raise ArgumentError(f"reduce: the operands must have one shape, got {shapes}")
    for init in inits:
        if _shape(init) != ():
            raise ArgumentError(f"reduce: each init value must be a scalar, got shape {_shape(init)}")
    dims = tuple(axis_index(d, len(shapes[0]), "reduce") for d in dimensions)
    if len(set(dims)) != len(dims):
        raise ArgumentError(f"reduce: repeated dimension in {tuple(dimensions)}")
    name = _monoid(computation)
    if name is None or len(leaves) > 1 or (name in ("and", "or") and _dtype(leaves[0]) != np.bool_):
        if not callable(computation):
            raise ArgumentError(f"reduce: computation must be callable, got {computation!r}")
        return tree_unflatten(tree, _pairwise(leaves, inits, computation, dims, tree))
    x, init = leaves[0], inits[0]
    if name == "add":
        y = gnp.add(init, gnp.sum(x, axis=dims))
    elif name == "mul":
        y = gnp.multiply(init, gnp.prod(x, axis=dims))
    elif name in ("max", "min"):
        r = gnp.max(x, axis=dims) if name == "max" else gnp.min(x, axis=dims)
        y = (gnp.maximum if name == "max" else gnp.minimum)(init, r)
    else:
        r = gnp.all(x, axis=dims) if name == "and" else gnp.any(x, axis=dims)
        y = (gnp.logical_and if name == "and" else gnp.logical_or)(init, r)
    return tree_unflatten(tree, [gnp.astype(y, _dtype(x))])


def _dtype(x):
    return np.dtype(x.dtype) if isinstance(x, Value) else np.result_type(x)


def _pairwise(leaves, inits, computation, dims, tree):
    """The reduced axes moved last and flattened into one of n elements; while n > 1 the
    first half is combined with the second (an odd one out waits for the next round)."""
    shape = _shape(leaves[0])
    keep = [a for a in range(len(shape)) if a not in dims]
    kept = [shape[a] for a in keep]
    n = int(np.prod([shape[d] for d in dims], dtype=np.int64))
    xs = [gnp.reshape(gnp.transpose(x, keep + list(dims)), kept + [n]) for x in leaves]

    def call(a, b):
        out, t = tree_flatten(computation(tree_unflatten(tree, a), tree_unflatten(tree, b)))
        if len(out) != len(leaves):
            raise ArgumentError(f"reduce: computation must return the structure of operands {tree}, returned {t}")
        return out

    while n > 1:
        h = n // 2
        c = call([x[..., :h] for x in xs], [x[..., h:2 * h] for x in xs])
        xs = [gnp.concatenate([ci, x[..., 2 * h:]], axis=-1) if n % 2 else ci for ci, x in zip(c, xs)]
        n -= h
    start = [gnp.broadcast_to(gnp.astype(i, _dtype(x)), kept) if isinstance(i, Value) else np.full(kept, i, _dtype(x))
             for i, x in zip(inits, leaves)]
    if n == 0:
        return start
    return [gnp.astype(y, _dtype(x)) for y, x in zip(call(start, [x[..., 0] for x in xs]), leaves)]
