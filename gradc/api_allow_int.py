"""``grad(f, allow_int=True)`` and ``value_and_grad(f, allow_int=True)``, as JAX's:
integer and bool leaves of the differentiated arguments (a step counter in a dict of
parameters, a mask) are passed through undifferentiated, and their gradients are zeros
of JAX's ``float0`` dtype (a structured dtype of no bytes) in the leaf's shape.

The transformation differentiates a function of the float leaves alone; the integer
leaves become one more argument that is not differentiated.  One such function, and so
one compiled kernel per signature, serves each structure of the differentiated
arguments (which leaves are integers).  Inside ``jit`` or ``vmap`` the float0 zeros are
no outputs of the compiled function: the output's structure holds them
(tracer.Float0Zeros) and makes them after each call.
"""
from __future__ import annotations

import numpy as np

from .tracer import float0
from .tree_util import tree_flatten, tree_unflatten


def _is_int(leaf) -> bool:
    if isinstance(leaf, (bool, int, np.integer, np.bool_)):
        return True
    dtype = getattr(leaf, "dtype", None)
    return dtype is not None and np.dtype(dtype).kind in "biu"


class AllowInt:
    """``kind`` ("grad" or "value_and_grad") of ``fun`` with integer leaves allowed in
    the differentiated arguments."""

    def __init__(self, transformed, fun, kind, argnums, has_aux, backend, debug_nans):
        self._transformed_type = transformed     # api.Transformed (passed in: api imports this module)
        self.fun, self.kind, self.argnums, self.has_aux = fun, kind, argnums, has_aux
        self.backend, self.debug_nans = backend, debug_nans
        self._by_structure: dict = {}
        self.__name__ = getattr(fun, "__name__", "f")
        self.__doc__ = getattr(fun, "__doc__", None)

    def __call__(self, *args, **kwargs):
        nums = (self.argnums,) if isinstance(self.argnums, int) else tuple(self.argnums)
        nums = tuple(n + len(args) if n < 0 else n for n in nums)
        flat = {n: tree_flatten(args[n]) for n in nums}
        ints = {n: tuple(_is_int(x) for x in flat[n][0]) for n in nums}
        if not any(any(m) for m in ints.values()):
            inner = self._transformed(("plain",), lambda: self.fun, self.argnums)
            return inner(*args, **kwargs)
        others = tuple(i for i in range(len(args)) if i not in nums)
        key = (tuple((n, flat[n][1], ints[n]) for n in nums), others, len(args))

        def make():
            def split_call(*parts, **kw):
                floats, int_leaves, rest = parts[:len(nums)], parts[len(nums)], parts[len(nums) + 1:]
                full, it = list(range(len(args))), iter(int_leaves)
                for n, fl in zip(nums, floats):
                    fit = iter(fl)
                    leaves = [next(it) if m else next(fit) for m in ints[n]]
                    full[n] = tree_unflatten(flat[n][1], leaves)
                for i, v in zip(others, rest):
                    full[i] = v
                return self.fun(*full, **kw)
            split_call.__name__ = self.__name__
            return split_call
        inner = self._transformed(key, make, tuple(range(len(nums))))
        floats = [[x for x, m in zip(flat[n][0], ints[n]) if not m] for n in nums]
        int_leaves = [x for n in nums for x, m in zip(flat[n][0], ints[n]) if m]
        out = inner(*floats, int_leaves, *(args[i] for i in others), **kwargs)

        def whole(grads):     # each argument's gradient tree, float0 zeros at its integer leaves
            trees = []
            for n, g in zip(nums, grads):
                git = iter(g)
                leaves = [np.zeros(np.shape(x), float0) if m else next(git) for x, m in zip(flat[n][0], ints[n])]
                trees.append(tree_unflatten(flat[n][1], leaves))
            return trees[0] if isinstance(self.argnums, int) else tuple(trees)
        if self.kind == "grad":
            return (whole(out[0]), out[1]) if self.has_aux else whole(out)
        value, grads = out
        return value, whole(grads)

    def _transformed(self, key, make, argnums):
        if key not in self._by_structure:
            self._by_structure[key] = self._transformed_type(make(), self.kind, argnums, self.backend,
                                                             self.debug_nans, self.has_aux)
        return self._by_structure[key]
