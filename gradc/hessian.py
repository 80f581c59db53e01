"""Hessians and Hessian-vector products: the adjoint graph differentiated again."""
from __future__ import annotations

from .api import _check_argnums, grad, jvp
from .errors import ArgumentError
from .jacobian import _with_aux, jacobian


def hessian(fun, argnums=0, *, has_aux=False, backend=None):
    """The Hessian: the Jacobian of the gradient (the adjoint graph differentiated again).
    For a pytree argument, ``H[a][b]`` is the block of leaves ``a`` and ``b``.
    ``has_aux=True``: ``fun`` returns ``(loss, aux)`` and the result is ``(H, aux)``."""
    if has_aux:
        return _with_aux(fun, argnums, backend, None, transform=lambda f: hessian(f, argnums, backend=backend))
    return jacobian(grad(fun, argnums, backend=backend), argnums, backend=backend)


def hvp(fun, primals, tangents, *, argnums=None, backend=None):
    """Hessian-vector product ``H·v`` without forming H: forward mode over the adjoint
    graph (the JVP of ``grad(fun, argnums)``).  ``primals`` holds every argument of
    ``fun``; ``tangents`` one entry per differentiated argument (pytrees like them).
    ``argnums`` as in :func:`grad`; the default, None, differentiates every argument.
    Returns what ``grad(fun, argnums)`` returns (for ``argnums=None``: a tuple, or a
    single result for a one-argument function)."""
    primals, tangents = tuple(primals), tuple(tangents)
    n = len(primals)
    nums = tuple(range(n)) if argnums is None else _check_argnums(argnums, n, "hvp")
    if len(tangents) != len(nums):
        raise ArgumentError(f"hvp: {len(tangents)} tangents for {len(nums)} differentiated argument(s) "
                            f"(argnums={argnums})")
    g = grad(fun, argnums=nums if argnums is None else argnums, backend=backend)

    def grad_of_selected(*selected):
        full = list(primals)
        for a, x in zip(nums, selected):
            full[a] = x
        return g(*full)
    _, t = jvp(grad_of_selected, tuple(primals[a] for a in nums), tangents, backend=backend)
    return t[0] if argnums is None and n == 1 and isinstance(t, tuple) else t
