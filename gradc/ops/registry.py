"""The op registry: one :class:`Op` record per primitive.

An op block (in ``elementwise.py``, ``reduce.py``, ``linalg.py``, ``structure.py``)
defines everything about a primitive in one place: its shape rule, its numpy reference,
how it differentiates (VJP, JVP; element-wise ops give their diagonal partials and get
both), and how backends lower it (``llvm``: a function of a scalar emitter and operands;
``c``: a C expression template).  Backends read these fields; the ops never import a
backend.
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


def register(op: Op) -> Op:
    if op.name in OPS:
        raise ValueError(f"op {op.name} registered twice")
    OPS[op.name] = op
    return op
