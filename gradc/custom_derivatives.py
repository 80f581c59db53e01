"""``gradc.custom_jvp`` and ``gradc.custom_vjp``: functions whose derivative is given by
the user, written as in JAX.

Outside any trace a decorated function just runs.  Traced, it is traced inline (a
``custom_vjp`` function by its ``fwd``, which also gives the residuals) and each output
leaf is wrapped in a ``custom_jvp``/``custom_vjp`` node (:mod:`gradc.ops.custom`) that
holds, as graph arguments, every value the rule will need.  :mod:`gradc.autodiff`
consumes those nodes while it builds the adjoint or tangent graph: the rule is called on
the replayed values and emits ordinary ops, and the gradient does not flow through the
inlined primal.  Code generation drops the nodes (``passes.strip_custom``).

Both kinds work in both modes.  A ``custom_jvp`` rule is linear in the tangents, so
reverse mode traces it with symbolic tangents and applies gradc's own adjoint of that
linear map to the cotangents; a ``bwd`` rule is linear in the cotangents, so forward mode
(``jvp``, ``jacfwd``, ``hvp``) is its adjoint likewise.  What the rules emit is ordinary
graph, so it is differentiated again for ``hessian`` and ``grad(grad(f))``.
"""
from __future__ import annotations

import functools
import inspect
import threading

import numpy as np

from .errors import ArgumentError, GradcError, ShapeError
from .ops.bind import bind
from .ops.custom import CALLS, register_call
from .ops.structure import zeros_like
from .tracer import Spec, Value, current, inline, to_value, trace_specs, user_source
from .tree_util import flatten_as, keystr, leaf_paths, tree_flatten, tree_unflatten

__all__ = ["custom_jvp", "custom_vjp"]


def _where(fn) -> str:
    """``name (file.py:line)`` of a user's function, for messages."""
    code = getattr(fn, "__code__", None)
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", repr(fn))
    return f"{name} ({code.co_filename}:{code.co_firstlineno})" if code is not None else name


def _spec(v: Value) -> Spec:
    env = v._b.env
    return Spec(tuple(1 if env.find(d) == 1 else None for d in v._shape), v.dtype,
                tuple(env.value(d) for d in v._shape))


def _is_float(v) -> bool:
    return isinstance(v, Value) and v.dtype.kind == "f"


def _is_array_leaf(x) -> bool:
    return isinstance(x, (Value, np.ndarray))


def _fill(template, vals):
    """The leaves of a template: ``("v", k)`` is ``vals[k]``, ``("s", x)`` the static ``x``."""
    return [vals[t[1]] if t[0] == "v" else t[1] for t in template]


def _template(leaves, traced):
    """(template, the leaves that become graph arguments) of pytree leaves; ``traced(x)``
    says which leaves are values of the graph."""
    template, vals = [], []
    for x in leaves:
        if traced(x):
            template.append(("v", len(vals)))
            vals.append(x)
        else:
            template.append(("s", x))
    return template, vals


def _transpose(name, fn, like: list, cts: list) -> list:
    """``fn`` (a list of Values shaped as ``like`` -> a list of Values, one per ``cts``),
    linear in its arguments, transposed and applied to ``cts``: gradc's adjoint graph of
    ``fn``, traced with symbolic arguments, inlined into the current trace."""
    from .autodiff import vjp_graph
    if not like:
        return []
    T, _, captured = trace_specs(lambda *xs: tuple(fn(list(xs))), [_spec(v) for v in like],
                                 [f"t{k}" for k in range(len(like))], name=name)
    V = vjp_graph(T, list(range(len(like))), seed="input", keep_value=False)
    return inline(V, [zeros_like(v) for v in like] + list(captured) + list(cts))


def _adjoint_apply(name, linear, domain: list, codomain: list, seeds: list) -> list:
    """The adjoint of ``linear`` applied to ``seeds``.  ``linear`` maps a list over
    ``domain`` to a list over ``codomain`` (None: zero, in both) and is linear in its
    float entries; ``seeds`` is a list over ``codomain`` (None: zero).  The result is a
    list over ``domain``, None where a value is not a float (it takes no part)."""
    di = [k for k, v in enumerate(domain) if _is_float(v)]
    ci = [k for k, v in enumerate(codomain) if _is_float(v)]

    def restricted(xs):
        out = linear(_scatter(len(domain), di, xs))
        return [out[k] if out[k] is not None else zeros_like(codomain[k]) for k in ci]
    s = [seeds[k] if seeds[k] is not None else zeros_like(codomain[k]) for k in ci]
    return _scatter(len(domain), di, _transpose(name, restricted, [domain[k] for k in di], s))


class _Rule:
    """What autodiff calls on a call's nodes: the rule on all of the nodes' arguments.
    A subclass gives ``split``, ``vjp`` and ``jvp`` on leaves, and ``n_out``, ``n_in``,
    ``n_cap``, ``label``."""

    _batched = None

    def vjp_args(self, vals, cts: dict, need: list) -> list:
        """One cotangent per argument of the call's nodes (autodiff's ``backward``), given
        {output index: cotangent} and which arguments need one."""
        self._refuse_captured(need, "gradient")
        grads = self.vjp(vals, [cts.get(k) for k in range(self.n_out)])
        return [None] * self.n_out + grads + [None] * (len(vals) - self.n_out - self.n_in)

    def jvp_args(self, vals, tans: list) -> list:
        """One tangent per output leaf given one per argument (autodiff's ``jvp_graph``)."""
        self._refuse_captured([t is not None for t in tans], "tangent")
        return self.jvp(vals, list(tans[self.n_out:self.n_out + self.n_in]))

    def _refuse_captured(self, flags, what):
        if self.n_cap and any(flags[len(flags) - self.n_cap:]):
            raise GradcError(f"{self.label} closes over a traced value that is being differentiated; its "
                             f"rule gives no {what} for it, only for its arguments. Pass the value as an "
                             "argument of the function instead")

    def batched_call(self) -> int:
        """The call number of this rule mapped over a batch (vmap's rule for the ops)."""
        if self._batched is None:
            self._batched = register_call(_Batched(self))
        return self._batched


class _Call(_Rule):
    """One traced call of a custom function: what its rule needs to run later, on the
    replayed values of the nodes' arguments (``vals``: the primal outputs, the inputs'
    traced leaves, those of ``nondiff_argnums``, the residuals' array leaves, the values
    the function closed over).  Static leaves (numbers, arrays, anything else) stay here."""

    def __init__(self, fn, kind, in_tree, in_template, nd_tree, nd_template, out_tree, n_out,
                 res_tree, res_template, n_cap, where, arg_names):
        self.fn, self.kind, self.arg_names = fn, kind, arg_names
        # the rule as it was when the call was traced (a later defvjp/defjvp makes new calls)
        self.rule = fn.bwd if kind == "vjp" else fn.jvp
        self.in_tree, self.in_template = in_tree, in_template
        self.nd_tree, self.nd_template = nd_tree, nd_template
        self.out_tree, self.n_out = out_tree, n_out
        self.res_tree, self.res_template = res_tree, res_template
        self.n_in = sum(t[0] == "v" for t in in_template)
        self.n_nd = sum(t[0] == "v" for t in nd_template)
        self.n_res = sum(t[0] == "v" for t in res_template)
        self.n_cap, self.where = n_cap, where

    @property
    def name(self) -> str:
        return getattr(self.fn, "__name__", "f")

    @property
    def label(self) -> str:
        return f"custom_{self.kind} function {self.name}" + (f" (called at {self.where})" if self.where else "")

    def split(self, vals):
        """(outputs, inputs, nondiff, residuals, captured) of the arguments ``vals``."""
        out, i = [], 0
        for n in (self.n_out, self.n_in, self.n_nd, self.n_res, self.n_cap):
            out.append(list(vals[i:i + n]))
            i += n
        return out

    def _nd_args(self, nds) -> tuple:
        return tuple(tree_unflatten(self.nd_tree, _fill(self.nd_template, nds)))

    def _error(self, text) -> GradcError:
        return GradcError(f"{self.label}: its rule {_where(self.rule)} {text}")

    def vjp(self, vals, cts):
        """The cotangents of the inputs' traced leaves (None: zero, or not a float) given
        one cotangent per output leaf (None: zero)."""
        outs, ins, nds, res, _ = self.split(vals)
        cts = [c if c is not None else zeros_like(o) for c, o in zip(cts, outs)]
        if self.kind == "jvp":       # the adjoint of the (linear) tangent map
            return _adjoint_apply(f"{self.name}_jvp", lambda ts: self.jvp(vals, ts), ins, outs, cts)
        g = tree_unflatten(self.out_tree, cts)
        r = tree_unflatten(self.res_tree, _fill(self.res_template, res))
        got = self.rule(*self._nd_args(nds), r, g)
        n_args = len(self.in_tree.children)
        if not isinstance(got, (tuple, list)) or len(got) != n_args:
            raise self._error(f"must return a tuple of {n_args} cotangent(s), one per differentiated argument "
                              f"of {self.name}, but it returned {_what(got)}")
        leaves, labels = [], []
        for i, (sub, c) in enumerate(zip(self.in_tree.children, got)):
            labels += [f"argument {i} ({self.arg_names[i]}{keystr(p)})" for p in leaf_paths(sub)]
            if c is None:
                leaves += [None] * sub.num_leaves
                continue
            xs = flatten_as(sub, c, is_leaf=lambda x: x is None)
            if xs is None:
                raise self._error(f"returned a cotangent of structure {tree_flatten(c)[1]} for argument {i} "
                                  f"({self.arg_names[i]}) of {self.name}, whose structure is {sub}")
            leaves += xs
        grads = []
        for t, c, label in zip(self.in_template, leaves, labels):
            if t[0] == "s":
                continue
            x = ins[t[1]]
            grads.append(self._leaf(c, x, f"cotangent for {label}") if _is_float(x) else None)
        return grads

    def _leaf(self, c, like, what):
        """``c`` (None: zero) as a value of ``like``'s shape and dtype, or an error."""
        if c is None:
            return None
        c = to_value(c)
        if not _same_shape(c, like):
            raise self._error(f"returned a {what} of {self.name} of shape {tuple(c.shape)}, but it must have the "
                              f"shape of its primal, {tuple(like.shape)}")
        return c if c.dtype == like.dtype else c.astype(like.dtype)

    def jvp(self, vals, tans):
        """The tangents of the output leaves (None: zero, or not a float) given one
        tangent per input traced leaf (None: zero)."""
        outs, ins, nds, res, _ = self.split(vals)
        if self.kind == "vjp":       # the adjoint of the (linear) cotangent map
            return _adjoint_apply(f"{self.name}_bwd", lambda gs: self.vjp(vals, gs), outs, ins, tans)
        primal_leaves = _fill(self.in_template, ins)
        tangent_leaves = []
        for t, x in zip(self.in_template, primal_leaves):
            tv = tans[t[1]] if t[0] == "v" else None
            if tv is None:
                tv = zeros_like(x) if isinstance(x, Value) else np.zeros(np.shape(x), np.result_type(x, np.float32))
            tangent_leaves.append(tv)
        primals = tuple(tree_unflatten(self.in_tree, primal_leaves))
        tangents = tuple(tree_unflatten(self.in_tree, tangent_leaves))
        got = self.rule(*self._nd_args(nds), primals, tangents)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise self._error(f"must return a pair (primal_out, tangent_out), but it returned {_what(got)}")
        leaves = flatten_as(self.out_tree, got[1], is_leaf=lambda x: x is None)
        if leaves is None:
            raise self._error(f"returned a tangent of structure {tree_flatten(got[1])[1]}, but {self.name} "
                              f"returns {self.out_tree}")
        return [self._leaf(t, o, f"tangent for output leaf {k}") if _is_float(o) else None
                for k, (t, o) in enumerate(zip(leaves, outs))]


class _Batched(_Rule):
    """A call's rule mapped over the leading (batch) axis of every argument: vmap batched
    the call's nodes with every argument materialized, and the rule is ``gradc.vmap`` of
    the call's own."""

    def __init__(self, inner):
        self.inner, self.label, self.again = inner, inner.label, inner.again
        self.n_out, self.n_in, self.n_cap = inner.n_out, inner.n_in, inner.n_cap

    def split(self, vals):
        return self.inner.split(vals)

    def vjp(self, vals, cts):
        outs, ins = self.split(vals)[:2]
        cts = [c if c is not None else zeros_like(o) for c, o in zip(cts, outs)]
        return self._mapped(self.inner.vjp, vals, cts, ins, self.n_out)

    def jvp(self, vals, tans):
        outs, ins = self.split(vals)[:2]
        tans = [t if t is not None else zeros_like(x) for t, x in zip(tans, ins)]
        return self._mapped(self.inner.jvp, vals, tans, outs, 0)

    def _mapped(self, rule, vals, extra, like, offset):
        """``rule(vals, extra)`` for every example; its results (one per ``like``, found
        at ``vals[offset:]`` per example) that are floats."""
        from .vmap import vmap
        fl = [k for k, v in enumerate(like) if _is_float(v)]
        if not fl:
            return [None] * len(like)
        nv = len(vals)

        def per_example(*xs):
            v = list(xs[:nv])
            r = rule(v, list(xs[nv:]))
            return tuple(r[k] if r[k] is not None else zeros_like(v[offset + k]) for k in fl)
        return _scatter(len(like), fl, list(vmap(per_example)(*vals, *extra)))


def _same_shape(c: Value, like: Value) -> bool:
    """Does ``c`` have ``like``'s shape?  Sizes not yet known to be equal are declared
    so (a rule traced on its own placeholders, as vmap's, has sizes of its own)."""
    env = current().env
    if c.ndim != like.ndim:
        return False
    outer = like._b.env if like._b.env is not env else None
    try:
        for a, b in zip(c._shape, like._shape):
            if outer is not None and isinstance(b, str):    # (a size of an enclosing trace, by its name)
                b = env.named(b, outer.value(b))
            env.equal(a, b, "a custom rule's result")
    except ShapeError:
        return False
    return True


def _scatter(n, where, vals) -> list:
    full = [None] * n
    for k, v in zip(where, vals):
        full[k] = v
    return full


def _what(x) -> str:
    if isinstance(x, (tuple, list)):
        return f"a {type(x).__name__} of {len(x)}"
    return "an array" if isinstance(x, (Value, np.ndarray)) else f"a {type(x).__name__}"


# ----------------------------------------------------------------------------- tracing a call
def _resolve(obj, args, kwargs) -> tuple:
    """The call's arguments by position, defaults applied (as JAX resolves them)."""
    try:
        sig = inspect.signature(obj.fun)
    except (TypeError, ValueError):
        if kwargs:
            raise ArgumentError(f"{obj.__name__}: keyword arguments need a function with a signature") from None
        return tuple(args)
    try:
        ba = sig.bind(*args, **kwargs)
    except TypeError as e:
        raise ArgumentError(f"{obj.__name__}: {e}") from None
    ba.apply_defaults()
    if ba.kwargs:
        raise ArgumentError(f"{obj.__name__}: keyword-only arguments {sorted(ba.kwargs)} cannot be passed to a "
                            "function with a custom derivative (its rules take arguments by position)")
    return tuple(ba.args)


def _traced(args) -> bool:
    return current() is not None or any(isinstance(x, Value) for x in tree_flatten(args)[0])


def _arg_names(fun, n) -> list:
    try:
        params = list(inspect.signature(fun).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = []
    for p in params:
        if p.kind == p.VAR_POSITIONAL:
            names += [f"{p.name}[{k}]" for k in range(n - len(names))]
        elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
    return (names + [f"arg{k}" for k in range(len(names), n)])[:n]


_local = threading.local()


def _primal_only() -> dict:
    """{id: how often fwd called it} of the custom_vjp functions whose ``fwd`` is being
    traced on this thread: such a call is the primal computation (as in JAX, where it
    is a custom call again only for the derivatives of higher order)."""
    s = getattr(_local, "primal_only", None)
    if s is None:
        s = _local.primal_only = {}
    return s


def _trace_call(obj, kind: str, args: tuple):
    """The traced call: the function (custom_vjp: its fwd) traced and inlined, its
    outputs wrapped in the call's custom nodes."""
    b = current()
    name = obj.__name__
    nd = obj.nondiff_argnums
    diff_args = tuple(a for i, a in enumerate(args) if i not in nd)
    nd_args = tuple(args[i] for i in nd)
    d_leaves, in_tree = tree_flatten(diff_args)
    nd_leaves, nd_tree = tree_flatten(nd_args)
    in_template, in_vals = _template(d_leaves, lambda x: isinstance(x, Value))
    nd_template, nd_vals = _template(nd_leaves, lambda x: isinstance(x, Value))
    in_vals = [to_value(v, b) for v in in_vals]
    nd_vals = [to_value(v, b) for v in nd_vals]
    n_in = len(in_vals)
    found = {}

    def body(*xs):
        d = tree_unflatten(in_tree, _fill(in_template, xs[:n_in]))
        n = tree_unflatten(nd_tree, _fill(nd_template, xs[n_in:]))
        full, di, ni = [], iter(d), iter(n)
        for i in range(len(args)):
            full.append(next(ni) if i in nd else next(di))
        if kind == "vjp":
            # fwd usually calls the function itself for its output: that call is the
            # primal computation, run as it is (as JAX does), not a custom call again
            outer = _primal_only().get(id(obj))
            _primal_only()[id(obj)] = 0
            try:
                r = obj.fwd(*full)
            finally:
                found["again"] = _primal_only().pop(id(obj)) > 0
                if outer is not None:
                    _primal_only()[id(obj)] = outer
            if not isinstance(r, (tuple, list)) or len(r) != 2:
                raise GradcError(f"custom_vjp function {name}: its fwd {_where(obj.fwd)} must return a pair "
                                 f"(output, residuals), but it returned {_what(r)}")
            out, res = r
        else:
            out, res = obj.fun(*full), None
        out_leaves, found["out"] = tree_flatten(out)
        for k, o in enumerate(out_leaves):
            if not isinstance(o, (Value, np.ndarray, np.generic, bool, int, float)):
                raise GradcError(f"custom_{kind} function {name}: output leaf {k} is a {type(o).__name__}; "
                                 "outputs must be arrays")
        res_leaves, found["res"] = tree_flatten(res)
        found["res_template"], res_vals = _template(res_leaves, _is_array_leaf)
        found["n_out"] = len(out_leaves)
        return tuple(out_leaves) + tuple(res_vals)

    where = user_source()
    G, _, captured = trace_specs(body, [_spec(v) for v in in_vals + nd_vals],
                                 [f"x{k}" for k in range(len(in_vals) + len(nd_vals))], name=name)
    caps = [to_value(c, b) for c in captured]
    vals = inline(G, in_vals + nd_vals + caps)
    n_out = found["n_out"]
    outs, res_vals = vals[:n_out], vals[n_out:]
    names = _arg_names(obj.fun, len(args))
    rec = _Call(obj, kind, in_tree, in_template, nd_tree, nd_template, found["out"], n_out,
                found["res"], found["res_template"], len(caps), where,
                [nm for i, nm in enumerate(names) if i not in nd])
    # derived graphs keep the call (its rule applies again at the next order) when the
    # primal output came from the function itself -- a custom_jvp's, or a custom_vjp
    # whose fwd called it (in JAX that call is a custom call of the outer derivative);
    # otherwise the next order differentiates fwd's computation as written
    rec.again = kind == "jvp" or found.get("again", False)
    call = register_call(rec)
    node_args = list(outs) + in_vals + nd_vals + list(res_vals) + caps
    nodes = [bind(f"custom_{kind}", *node_args, call=call, index=k) for k in range(n_out)]
    return tree_unflatten(found["out"], nodes)


# ----------------------------------------------------------------------------- the public API
class _Custom:
    """What custom_jvp and custom_vjp share: the wrapped function, its nondiff_argnums,
    calling it, and pickling it."""

    kind = ""

    def __init__(self, fun, nondiff_argnums=()):
        if not callable(fun):
            raise ArgumentError(f"custom_{self.kind}: expected a function, got a {type(fun).__name__}")
        nums = (nondiff_argnums,) if isinstance(nondiff_argnums, (int, np.integer)) else tuple(nondiff_argnums)
        for i in nums:
            if not isinstance(i, (int, np.integer)) or i < 0:
                raise ArgumentError(f"custom_{self.kind}({getattr(fun, '__name__', 'f')}): nondiff_argnums must "
                                    f"be non-negative ints, got {nondiff_argnums!r}")
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = tuple(sorted({int(i) for i in nums}))

    def __call__(self, *args, **kwargs):
        args = _resolve(self, args, kwargs)
        for i in self.nondiff_argnums:
            if i >= len(args):
                raise ArgumentError(f"custom_{self.kind} function {self.__name__}: nondiff_argnums entry {i} is "
                                    f"out of range for a call with {len(args)} argument(s)")
        inside = _primal_only()
        if id(self) in inside:          # called by its own fwd: the primal computation
            inside[id(self)] += 1
            return self.fun(*args)
        if not _traced(args):           # concrete arguments, no trace: it just runs
            return self.fun(*args)
        if not self._defined():
            raise GradcError(f"custom_{self.kind} function {self.__name__} has no rule: call "
                             f"{self.__name__}.{'defvjp(fwd, bwd)' if self.kind == 'vjp' else 'defjvp(jvp)'} "
                             "before transforming it")
        return _trace_call(self, self.kind, args)

    def __repr__(self):
        return f"<gradc.custom_{self.kind} of {self.__name__}>"

    def __reduce__(self):
        """By name when its module's attribute of that name is this function (a
        decorated module-level function); otherwise its parts."""
        from .api import _importable
        if _importable(self):
            return self.__qualname__
        return (_rebuild, (type(self), self.fun, self.nondiff_argnums, self._rules()))

    def __get__(self, obj, objtype=None):        # a method: bind the instance as JAX does
        return self if obj is None else functools.partial(self, obj)


def _rebuild(cls, fun, nondiff_argnums, rules):
    f = cls(fun, nondiff_argnums=nondiff_argnums)
    f.__dict__.update(rules)
    return f


class custom_vjp(_Custom):
    """A function with a reverse-mode rule of the user's, as ``jax.custom_vjp``::

        @gradc.custom_vjp
        def f(x, y): ...
        def f_fwd(x, y): return f(x, y), residuals
        def f_bwd(residuals, g): return (gx, gy)      # one cotangent per argument
        f.defvjp(f_fwd, f_bwd)

    ``nondiff_argnums``: arguments that are not differentiated (Python values, functions,
    or arrays); ``bwd`` gets them first, ``bwd(*nondiff, residuals, g)``.  Arguments,
    outputs and residuals may be pytrees; ``bwd`` may return None for a zero cotangent.
    Forward mode (``jvp``, ``jacfwd``) uses the adjoint of ``bwd`` (linear in ``g``)."""

    kind = "vjp"

    def __init__(self, fun, nondiff_argnums=()):
        super().__init__(fun, nondiff_argnums)
        self.fwd = self.bwd = None

    def defvjp(self, fwd, bwd, symbolic_zeros=False):
        """Set the rule: ``fwd(*args) -> (output, residuals)``, ``bwd(*nondiff, residuals,
        g) -> tuple of cotangents``."""
        for what, f in (("fwd", fwd), ("bwd", bwd)):
            if not callable(f):
                raise ArgumentError(f"{self.__name__}.defvjp: {what} must be a function, got a {type(f).__name__}")
        if symbolic_zeros:
            raise ArgumentError(f"{self.__name__}.defvjp: symbolic_zeros=True is not supported (gradc passes "
                                "zero cotangents as arrays of zeros)")
        self.fwd, self.bwd = fwd, bwd

    def _defined(self):
        return self.bwd is not None

    def _rules(self):
        return {"fwd": self.fwd, "bwd": self.bwd}


class custom_jvp(_Custom):
    """A function with a forward-mode rule of the user's, as ``jax.custom_jvp``::

        @gradc.custom_jvp
        def f(x): ...
        @f.defjvp
        def f_jvp(primals, tangents):
            (x,), (t,) = primals, tangents
            return f(x), tangent_out                  # linear in the tangents

    ``nondiff_argnums`` as in :class:`custom_vjp` (the rule is ``jvp(*nondiff, primals,
    tangents)``).  Reverse mode (``grad``) applies the adjoint of the rule's tangent map,
    which gradc derives from the rule itself."""

    kind = "jvp"

    def __init__(self, fun, nondiff_argnums=()):
        super().__init__(fun, nondiff_argnums)
        self.jvp = None

    def defjvp(self, jvp, symbolic_zeros=False):
        """Set the rule ``jvp(*nondiff, primals, tangents) -> (primal_out, tangent_out)``;
        returns it (so it can decorate)."""
        if not callable(jvp):
            raise ArgumentError(f"{self.__name__}.defjvp: expected a function, got a {type(jvp).__name__}")
        if symbolic_zeros:
            raise ArgumentError(f"{self.__name__}.defjvp: symbolic_zeros=True is not supported (gradc passes "
                                "zero tangents as arrays of zeros)")
        self.jvp = jvp
        return jvp

    def defjvps(self, *jvps):
        """Set the rule by one function per argument, ``jvp_i(tangent_i, primal_out,
        *primals)`` (None: the output does not depend on that argument); the output's
        tangent is their sum."""
        if self.nondiff_argnums:
            raise ArgumentError(f"{self.__name__}.defjvps cannot be used with nondiff_argnums; use defjvp")
        def jvp(primals, tangents):
            if len(jvps) != len(primals):
                raise GradcError(f"custom_jvp function {self.__name__}: defjvps got {len(jvps)} function(s) for "
                                 f"{len(primals)} argument(s)")
            ans = self(*primals)
            out = None
            for rule, t in zip(jvps, tangents):
                if rule is None:
                    continue
                term = rule(t, ans, *primals)
                out = term if out is None else _tree_add(out, term)
            return ans, out if out is not None else _tree_zeros(ans)
        jvp.__qualname__ = jvp.__name__ = f"{self.__name__}_jvps"
        self.jvp = jvp

    def _defined(self):
        return self.jvp is not None

    def _rules(self):
        return {"jvp": self.jvp}


def _tree_add(a, b):
    la, ta = tree_flatten(a)
    lb, tb = tree_flatten(b)
    if ta != tb:
        raise GradcError(f"defjvps: the argument rules' tangents differ in structure: {ta} and {tb}")
    return tree_unflatten(ta, [x + y for x, y in zip(la, lb)])


def _tree_zeros(x):
    leaves, tree = tree_flatten(x)
    return tree_unflatten(tree, [zeros_like(v) if isinstance(v, Value) else np.zeros_like(v) for v in leaves])


def live_calls() -> int:
    """How many traced calls' rules this process holds (for tests)."""
    return len(CALLS)
