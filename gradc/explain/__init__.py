"""The derivative as mathematics a person can read.

``gradc.explain(f, *args, argnums=...)``, ``Lowered.explain()`` and ``gradc explain``
render the gradient gradc derived, in Parr & Howard's notation (numerator layout), from
the adjoint graph itself: nothing here knows any particular model.

How it reads a graph:

* **Index notation.** One size is the *sample axis* (the rows of the first data matrix,
  i.e. a rank-2 argument that is not differentiated); ``i = 1..N`` indexes it.  A value
  whose first axis is that size is shown by its i-th element or row (``z_i``, ``x_i``),
  a sum over that axis is ``Σ_i``, ``g @ X`` is ``Σ_i g_i x_iᵀ``, ``X @ w`` is ``w·x_i``.
* **Expressions.** Every node becomes a small symbolic expression (:class:`Ex`) over its
  arguments: element-wise ops are scalar functions, ``where(c, g, 0)`` is ``1[c] g``,
  a broadcast (scalar expansion) disappears, ``count`` over the samples is ``N``; ops
  without special notation are shown as ``op(args)``.  A simplifier folds constants
  (``2 · 1/N`` → ``2/N``), drops ``·1``, merges powers, pulls factors out of ``Σ_i``,
  and under an indicator ``1[z > 0]`` replaces ``max(0, z)`` by ``z``.
* **Names.** Forward values are named from the user's source (``z = X @ w + b`` names
  that node ``z``) or, failing that, by the paper's conventions (``z`` an affine map,
  ``a`` an activation, ``e`` a residual, ``u1, u2, ...`` links of an element-wise chain,
  ``C`` a cost).  In the result a name is kept only where it pays: a value used more than
  once and not tiny; the others are substituted (so ``e_i`` becomes ``z_i − y_i``).
* **Steps.** ``∂C/∂u`` of each named intermediate ``u`` is read from one more adjoint
  graph gradc builds (the forward graph with ``u + δ_u`` in place of ``u``; the gradient
  w.r.t. ``δ_u`` is ``∂C/∂u``), and annotated with the rule of each op between ``u`` and
  the next named value (element-wise ⇒ diagonal Jacobian, scalar expansion ⇒ sum, ...).

Rendering never fails: an expression that cannot be shown is listed as its graph node.

The package, lowest module first (each imports only those before it, so the notation can
be read and tested without the graph machinery above it):

* :mod:`.expr` -- the expression tree (:class:`Ex`) and the queries on it;
* :mod:`.simplify` -- ``simp``, the algebra;
* :mod:`.render` -- text and LaTeX (:class:`Renderer`);
* :mod:`.reader` -- a graph read into expressions, ops' own notation, the rule of each step;
* :mod:`.explanation` -- the result a user holds (:class:`Explanation`);
* :mod:`.explainer` -- names, steps and what to inline; ``explain_lowered``.
"""
from __future__ import annotations

# Re-exported: gradc, gradc.api and the tests import these from gradc.explain.
from .explainer import explain_lowered  # noqa: F401
from .explanation import Explanation  # noqa: F401
from .expr import (ONE, ZERO, Add, And, Call, Cmp, Dot, Ex, Fn, Ind, Index, Mul, Not, Num, Pow,  # noqa: F401
                   Prod, Ref, Sum, Sym, T, Vec, dep_i, is_num, neg, rank, refs, size, subst)
from .reader import Notation, Reader, as_row, is_row, rule_text, written  # noqa: F401
from .render import Renderer  # noqa: F401
from .simplify import simp  # noqa: F401

__all__ = ["explain_lowered", "Explanation"]
