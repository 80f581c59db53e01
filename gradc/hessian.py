"""Hessians and Hessian-vector products: the adjoint graph differentiated again."""
from __future__ import annotations

from .api import grad, jvp
from .jacobian import jacobian


def hessian(fun, argnums=0, *, backend=None):
    """The Hessian: the Jacobian of the gradient (the adjoint graph differentiated again)."""
    return jacobian(grad(fun, argnums, backend=backend), argnums, backend=backend)


def hvp(fun, primals, tangents, *, backend=None):
    """Hessian-vector product ``H·v`` without forming H: forward mode over the adjoint
    graph (the JVP of ``grad(fun)``).  ``primals``/``tangents`` are tuples, one entry per
    argument; returns one array per argument (a single array for one argument)."""
    primals, tangents = tuple(primals), tuple(tangents)
    n = len(primals)
    g = grad(fun, argnums=tuple(range(n)), backend=backend)
    _, t = jvp(lambda *xs: g(*xs), primals, tangents, backend=backend)
    return t[0] if n == 1 and isinstance(t, tuple) else t
