"""The op registry: one :class:`Op` record per primitive.

An op block (in ``elementwise.py``, ``reduce.py``, ``linalg.py``, ``structure.py``)
defines everything about a primitive in one place: its shape rule, its numpy reference,
how it differentiates (VJP, JVP; element-wise ops give their diagonal partials and get
both), how vmap batches it (``batch``), how backends lower it (``llvm``: a function of a
scalar emitter and operands; ``c``: a C expression template; or ``math``: the math
library function it is), what the scheduler needs to know (``cost``, ``view``, ``root``,
``combine``), and how ``explain`` writes it (``notation``, ``deriv``, ``rule``).
Backends and the explainer read these fields; the ops never import them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

OPS: dict[str, "Op"] = {}


@dataclass
class Op:
    name: str
    kind: str                      # elementwise | reduce | linalg | structure | source
    shape_rule: Callable           # (env, [(shape, dtype)], **params) -> (shape, dtype)
    numpy: Callable                # (*arrays, **params) -> array   (the reference)
    vjp: Callable | None = None    # (g, ans, *args, **params) -> tuple of cotangents | None
    jvp: Callable | None = None    # (tangents, ans, *args, **params) -> tangent | None
    partials: Callable | None = None  # element-wise: (ans, *args) -> diagonal partials
    llvm: Callable | None = None   # (emitter, *operands, **params) -> operand (element-wise)
    c: str | None = None           # C expression template, "{0}", "{1}" are operands
    doc: str = ""
    infix: str | None = None       # shown as `a + b` by explain
    extra: dict = field(default_factory=dict)
    # -- explain's notation (gradc.explain reads these; an op declares its own) ---------
    # notation: how explain writes the op applied to its operands.  A str names a
    #   function (notation="sin" writes sin(u)); a callable (m, *operands) builds the
    #   expression with the methods of explain's notation builder ``m`` (add, neg, mul,
    #   pow, num, fn, cmp, not_, and_), e.g. log1p: lambda m, u: m.fn("ln", m.add(m.num(1), u)).
    #   None: explain writes it as a call, op(u, params).
    notation: Callable | str | None = None
    # deriv: an element-wise op's derivative as explain's rule text shows it, in {u}
    #   ("cos {u}" for sin): "element-wise sin ⇒ diagonal Jacobian diag(cos u)".
    deriv: str | None = None
    # rule: a fixed phrase for how the op's VJP takes the gradient back, for ops whose
    #   rule needs no operand ("transpose ⇒ transpose back").
    rule: str | None = None
    # -- what the scheduler and the code generators read (backends/schedule.py, lower_loops.py)
    cost: int = 1                  # relative size inlined into a loop body (vector math: 8)
    view: bool = False             # reads its argument through an index map, computes nothing
    root: bool = False             # always gets a buffer (reductions, products, scatters)
    combine: str | None = None     # a reduction's rule: "sum", "max" or "min"
    # math: the op is this function of gradc's math library, applied element by element
    #   (exp, log, log1p, expm1, sqrt, sin, cos, tanh, sigmoid, softplus): the loop IR
    #   holds it as a call (loop_ir.MathCall) instead of ``llvm``/``c``, and each renderer
    #   spells the call (LLVM: gradc's vector function or the LLVM intrinsic; C: libm's
    #   function or gradc.h's gradc_<math>).
    math: str | None = None
    libm: str | None = None        # C's name for ``math`` in libm (float32: name + "f"); None: gradc.h's
    # -- what vmap reads (gradc.batching) ------------------------------------------------
    # batch: (n, args, batched, **params) -> the op applied to a batch of n examples, with
    #   the batch as the result's leading axis; ``batched[i]``: operand i has the batch as
    #   its leading axis (the others are shared).  ops/bind.py has the helpers (element-wise
    #   ops: ``batch_broadcasting``).  None: vmap refuses the op.
    batch: Callable | None = None


# Conversions the tracer needs from op modules it must not import (they import it):
# "nested_list" turns ``[[a, b], [c, d]]`` holding traced values into one array
# (``structure.stack_nested``, registered when ops/structure.py is imported).
CONVERSIONS: dict[str, Callable] = {}


def register(op: Op) -> Op:
    if op.name in OPS:
        raise ValueError(f"op {op.name} registered twice")
    OPS[op.name] = op
    return op
