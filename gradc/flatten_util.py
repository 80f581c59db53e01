"""``jax.flatten_util.ravel_pytree``: a pytree of arrays as one flat vector, and the
function that rebuilds the tree from such a vector (scipy.optimize over a dict of
parameters, a Hessian of all of them at once)."""
from __future__ import annotations

import numpy as np

from . import numpy as gnp
from .errors import ArgumentError
from .tree_util import tree_flatten, tree_unflatten

__all__ = ["ravel_pytree"]


def ravel_pytree(pytree):
    """``(flat, unravel)``: the leaves raveled and concatenated in tree_flatten's order,
    in their common dtype (numpy's promotion), and ``unravel(flat)`` giving back the
    tree, each leaf in its shape and dtype.  Works on arrays and inside a trace."""
    leaves, treedef = tree_flatten(pytree)
    arrays = [gnp.asarray(x) for x in leaves]
    shapes = [tuple(gnp.shape(a)) for a in arrays]
    dtypes = [np.dtype(a.dtype) for a in arrays]
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    dtype = np.result_type(*dtypes) if dtypes else np.dtype(np.float64)
    flat = (gnp.concatenate([gnp.ravel(a).astype(dtype) for a in arrays]) if arrays
            else np.zeros(0, dtype))
    total = sum(sizes)

    def unravel(vector):
        if tuple(gnp.shape(vector)) != (total,):
            raise ArgumentError(f"ravel_pytree's unravel: expected a vector of shape ({total},), got shape "
                                f"{tuple(gnp.shape(vector))}")
        got = np.dtype(gnp.asarray(vector).dtype)
        if got != dtype:
            raise ArgumentError(f"ravel_pytree's unravel: expected a vector of dtype {dtype}, got {got}")
        out, start = [], 0
        for shape, size, dt in zip(shapes, sizes, dtypes):
            out.append(gnp.reshape(vector[start:start + size], shape).astype(dt))
            start += size
        return tree_unflatten(treedef, out)
    return flat, unravel
