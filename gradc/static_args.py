"""``jit(f, static_argnums=..., static_argnames=...)``: arguments that are Python
values, not arrays, as in JAX.

A static argument is not an input of the compiled graph: it is a constant of the trace,
so the function may use it where a Python value is needed (a layer count in ``range``,
a shape, an activation's name, a flag in an ``if``).  Each distinct set of static values
(compared by ``==`` and ``hash``, so they must be hashable) traces and compiles the
function once and keeps its own compiled function; the other arguments take gradc's
usual path (pytrees, the C call path).

``jit(grad(f), static_argnums=...)`` and ``jit(value_and_grad(f), ...)`` bind the
static values into ``f`` and differentiate with respect to ``argnums`` counted among
the arguments as ``f`` takes them (a static argument cannot be differentiated).
"""
from __future__ import annotations

import functools
import inspect

from .errors import ArgumentError


def _positional_names(sig) -> list:
    if sig is None:
        return []
    return [p.name for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _signature(fun):
    try:
        return inspect.signature(fun)
    except (TypeError, ValueError):
        return None


class StaticJit:
    """A function compiled by :func:`gradc.jit` with static arguments: one compiled
    function per distinct tuple of static values."""

    def __init__(self, fun, static_argnums, static_argnames, make, inner=None):
        self.fun = fun
        self._make = make            # (function, kind, argnums, has_aux, inner) -> a Transformed
        self._cache: dict = {}
        # jit(grad(f), ...): inner is grad(f); the static values are bound into f itself
        self._inner = inner
        target = self._inner.fun if self._inner is not None else fun
        self._sig = _signature(target)
        names = _positional_names(self._sig)
        nums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums or ())
        argnames = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames or ())
        fname = getattr(fun, "__name__", "f")
        if argnames and self._sig is None:
            raise ArgumentError(f"jit({fname}): static_argnames needs a function with a signature")
        params = self._sig.parameters if self._sig is not None else {}
        for n in argnames:
            if n not in params:
                raise ArgumentError(f"jit({fname}): static_argnames names {n!r}, which is not a parameter "
                                    f"of {fname}({', '.join(params)})")
        # a negative position counts from the end of the signature's positional
        # parameters, as in JAX (from the end of the call's arguments without a signature)
        varargs = self._sig is None or any(p.kind == p.VAR_POSITIONAL for p in params.values())
        if not varargs:
            nums = tuple(i + len(names) if i < 0 else i for i in nums)
        # JAX's rule: a static position also makes its parameter's name static, and the reverse
        self.static_nums = set(nums) | {names.index(n) for n in argnames if n in names}
        self.static_names = set(argnames) | {names[i] for i in nums if 0 <= i < len(names)}
        self.name = fname
        if inner is not None and inner.kind != "jit":
            wrt = (inner.argnums,) if isinstance(inner.argnums, int) else tuple(inner.argnums)
            both = sorted(set(wrt) & self.static_nums)
            if both:
                raise ArgumentError(f"jit({fname}): argument {both[0]} is static, and {inner.kind} "
                                    f"differentiates it (argnums={inner.argnums})")
        functools.update_wrapper(self, fun, updated=())

    def __repr__(self):
        return f"<gradc.jit of {self.name} with static arguments>"

    # -- one call -------------------------------------------------------------------------
    def _split(self, args, kwargs):
        n = len(args)
        static_pos = {i + n if i < 0 else i for i in self.static_nums}
        static = tuple((i, args[i]) for i in sorted(static_pos) if 0 <= i < n)
        static_kw = tuple(sorted((k, v) for k, v in kwargs.items() if k in self.static_names))
        dynamic = [a for i, a in enumerate(args) if i not in static_pos]
        dyn_keys = tuple(sorted(k for k in kwargs if k not in self.static_names))
        key = (n, static, static_kw, dyn_keys)
        try:
            hash(key)
        except TypeError:
            bad = [(f"argument {i}", v) for i, v in static] + [(f"argument {k!r}", v) for k, v in static_kw]
            what = next(((w, v) for w, v in bad if not _hashable(v)), bad[0] if bad else ("?", None))
            raise ArgumentError(f"jit({self.name}): static {what[0]} must be hashable (it keys the compiled "
                                f"code), but it is a {type(what[1]).__name__}; pass a tuple instead of a list, "
                                "or make the value an array argument") from None
        return key, dynamic + [kwargs[k] for k in dyn_keys]

    def _compiled(self, key):
        f = self._cache.get(key)
        if f is None:
            f = self._cache[key] = self._build(key)
        return f

    def _build(self, key):
        n, static, static_kw, dyn_keys = key
        target = self._inner.fun if self._inner is not None else self.fun
        fixed = dict(static)
        dyn_pos = [i for i in range(n) if i not in fixed]

        def bound(*dyn):
            args = list(dyn[:len(dyn_pos)])
            for i, v in fixed.items():
                args.insert(i, v)
            kwargs = dict(static_kw)
            kwargs.update(zip(dyn_keys, dyn[len(dyn_pos):]))
            return target(*args, **kwargs)
        # the compiled function's inputs keep the user's parameter names
        names = _positional_names(self._sig)
        pnames = [names[i] if i < len(names) else f"arg{i}" for i in dyn_pos] + list(dyn_keys)
        bound.__signature__ = inspect.Signature(
            [inspect.Parameter(p, inspect.Parameter.POSITIONAL_ONLY) for p in pnames])
        bound.__name__ = self.name
        bound.__qualname__ = getattr(target, "__qualname__", self.name)
        bound.__module__ = getattr(target, "__module__", None)
        if self._inner is None or self._inner.kind == "jit":
            return self._make(bound, "jit", 0, False, self._inner)
        argnums = self._inner.argnums
        argnums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
        where = {i: k for k, i in enumerate(dyn_pos)}
        moved = []
        for a in argnums:
            a = a + n if a < 0 else a
            if a in fixed:
                raise ArgumentError(f"jit({self.name}): argument {a} is static, and {self._inner.kind} "
                                    f"differentiates it (argnums={self._inner.argnums})")
            if a not in where:
                raise ArgumentError(f"jit({self.name}): {self._inner.kind}'s argnums={self._inner.argnums} "
                                    f"names argument {a}, but the call passes {len(dyn_pos)} positional arguments")
            moved.append(where[a])
        moved = moved[0] if isinstance(self._inner.argnums, int) else tuple(moved)
        return self._make(bound, self._inner.kind, moved, self._inner.has_aux, self._inner)

    def __call__(self, *args, **kwargs):
        key, dynamic = self._split(args, kwargs)
        return self._compiled(key)(*dynamic)

    def lower(self, *args, **kwargs):
        """:meth:`Transformed.lower` of the compiled function for these static values."""
        key, dynamic = self._split(args, kwargs)
        return self._compiled(key).lower(*dynamic)


def _hashable(v) -> bool:
    try:
        hash(v)
        return True
    except TypeError:
        return False
