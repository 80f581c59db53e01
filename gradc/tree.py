"""``gradc.tree``: ``jax.tree``'s namespace, the short names of gradc.tree_util's
functions, as modern JAX code writes them::

    params = gradc.tree.map(lambda p, g: p - lr * g, params, grads)

Each is the gradc.tree_util function of the longer name (``map`` is ``tree_map``, ...);
a path (``flatten_with_path``, ``map_with_path``) is a tuple of plain keys, indices and
field names, where JAX has key objects.
"""
from __future__ import annotations

from .tree_util import (tree_all, tree_flatten, tree_flatten_with_path, tree_leaves, tree_leaves_with_path,
                        tree_map, tree_map_with_path, tree_reduce, tree_structure, tree_transpose, tree_unflatten)

__all__ = ["all", "flatten", "flatten_with_path", "leaves", "leaves_with_path", "map", "map_with_path", "reduce",
           "structure", "transpose", "unflatten"]

all = tree_all  # noqa: A001  (jax.tree's names)
flatten, unflatten, leaves, structure = tree_flatten, tree_unflatten, tree_leaves, tree_structure
map = tree_map  # noqa: A001
reduce = tree_reduce  # noqa: A001
transpose = tree_transpose
flatten_with_path, leaves_with_path, map_with_path = tree_flatten_with_path, tree_leaves_with_path, tree_map_with_path
