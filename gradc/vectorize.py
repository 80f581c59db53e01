"""``gradc.numpy.vectorize``: a function of single examples made a generalized ufunc, as
``jax.numpy.vectorize``.

The arguments' loop (non-core) dimensions are broadcast against each other and
flattened into one batch axis, the function is mapped once over that axis with
:func:`gradc.vmap` (an argument without loop dimensions is shared, ``in_axes=None``),
and each output's batch axis is reshaped back to the loop shape.  The function is
traced once, not once per element as numpy's Python loop calls it.

It lives here, in the API layer beside vmap, because it is built on vmap and
``gradc.numpy`` sits below vmap in the import layers (tests/test_layers.py); it is
published as ``gradc.numpy.vectorize`` by assignment, as ``apply_along_axis`` is.
"""
from __future__ import annotations

import functools
import re

import numpy as np

from . import numpy as gnp
from .errors import ArgumentError
from .tracer import Value, current, user_source
from .tree_util import tree_flatten, tree_unflatten
from .vmap import vmap

# numpy's generalized-ufunc signature grammar (numpy/lib/_function_base_impl.py)
_DIM = r"\w+"
_CORE = rf"(?:{_DIM}(?:,{_DIM})*)?"
_ARG = rf"\({_CORE}\)"
_ARGS = rf"{_ARG}(?:,{_ARG})*"
_SIGNATURE = rf"^{_ARGS}->{_ARGS}$"


def _parse_signature(signature: str, where: str):
    """``"(m,n),(n)->(m)"`` -> ``([("m", "n"), ("n",)], [("m",)])``."""
    if not isinstance(signature, str) or not re.match(_SIGNATURE, signature.replace(" ", "")):
        raise ArgumentError(f"{where}: signature={signature!r} is not a generalized-ufunc signature; expected "
                            "one such as '(n),(n)->()', '(m,n),(n)->(m)' or '()->(),()'")
    ins, outs = ([tuple(re.findall(_DIM, a)) for a in re.findall(_ARG, side)]
                 for side in signature.replace(" ", "").split("->"))
    return ins, outs


def _shape_text(core, sizes) -> str:
    """The core shape a signature expects, with the sizes known so far: ``(3, n)``."""
    return "(" + ", ".join(str(sizes.get(d, d)) for d in core) + ("," if len(core) == 1 else "") + ")"


def vectorize(pyfunc, *, excluded=frozenset(), signature=None):
    """numpy.vectorize with jax.numpy.vectorize's semantics: ``pyfunc`` written for one
    element (or, with ``signature``, for arrays of the signature's core shapes) applied
    over the broadcast leading dimensions of its arguments, by :func:`gradc.vmap`.

    ``signature``: a generalized-ufunc signature such as ``"(n),(n)->()"`` (a dot
    product), ``"(m,n),(n)->(m)"`` (matrix-vector) or ``"(n)->(),()"`` (two outputs); a
    named dimension must have one size across the arguments.  Without one every argument's
    core is a scalar and ``pyfunc`` may return any shape (or a tuple), as JAX's.
    ``excluded``: positional indices or keyword names passed to ``pyfunc`` unchanged
    (``None`` arguments are passed unchanged too).  Non-excluded keyword arguments are
    vectorized after the positional ones, as numpy's.

    Works on traced values (inside ``jit``, ``grad``, ``vmap``; ``pyfunc`` may itself
    call ``gradc.grad``, giving per-example gradients) and on concrete arrays (the
    mapped function is compiled as ``gradc.vmap`` compiles it).  Reading the
    arguments' shapes fixes a trace to them: a call with other sizes retraces."""
    name = getattr(pyfunc, "__name__", "f")
    where = f"vectorize({name})"
    excluded = frozenset(excluded)
    for e in excluded:
        if isinstance(e, bool) or not isinstance(e, (int, str)):
            raise ArgumentError(f"{where}: excluded entries must be positional indices (int) or keyword names "
                                f"(str), got {e!r}")
        if isinstance(e, int) and e < 0:
            raise ArgumentError(f"{where}: excluded={sorted(excluded, key=str)!r} holds a negative index {e}; "
                                "give positions counted from 0")
    parsed = _parse_signature(signature, where) if signature is not None else None

    @functools.wraps(pyfunc)
    def wrapped(*args, **kwargs):
        return _call(pyfunc, where, excluded, signature, parsed, args, kwargs)

    wrapped.__name__ = f"vectorize({name})"
    return wrapped


def _error(where: str, text: str) -> ArgumentError:
    src = user_source()
    return ArgumentError(f"{where}: {text}" + (f"  [at {src}]" if src else ""))


def _call(pyfunc, where, excluded, signature, parsed, args, kwargs):
    # The vectorized arguments, in numpy's order (positional, then keywords), with labels
    # for messages; the others are passed to pyfunc as they came.
    slots = [(i, f"argument {i}", a) for i, a in enumerate(args) if i not in excluded and a is not None]
    slots += [(k, f"keyword argument {k!r}", v) for k, v in kwargs.items() if k not in excluded]
    if parsed is None:
        in_cores, out_cores = [()] * len(slots), None
    else:
        in_cores, out_cores = parsed
        if len(in_cores) != len(slots):
            raise _error(where, f"signature {signature!r} has {len(in_cores)} inputs but the call gives "
                                f"{len(slots)} vectorized arguments ({', '.join(s[1] for s in slots) or 'none'}; "
                                f"excluded: {sorted(excluded, key=str)})")
    vals = [a if isinstance(a, Value) else np.asarray(a) for _, _, a in slots]
    sizes: dict = {}
    owner: dict = {}
    loops = []
    for (_, label, _), v, core in zip(slots, vals, in_cores):
        shape = tuple(int(s) for s in v.shape)
        if len(shape) < len(core):
            raise _error(where, f"{label} has shape {shape} but the signature {signature!r} expects core shape "
                                f"{_shape_text(core, sizes)}: it needs at least {len(core)} dimensions, "
                                f"got {len(shape)}")
        k = len(shape) - len(core)
        for d, s in zip(core, shape[k:]):
            if d in sizes and sizes[d] != s:
                raise _error(where, f"{label} has shape {shape}: expected core shape {_shape_text(core, sizes)}, "
                                    f"got {shape[k:]} (core dimension {d!r} is {sizes[d]} in {owner[d]}, "
                                    f"{s} here)")
            sizes.setdefault(d, s)
            owner.setdefault(d, label)
        loops.append(shape[:k])
    try:
        loop = tuple(int(s) for s in np.broadcast_shapes(*loops)) if loops else ()
    except ValueError:
        shown = ", ".join(f"{s[1]} {lp}" for s, lp in zip(slots, loops))
        raise _error(where, f"the arguments' loop (non-core) dimensions do not broadcast: {shown}") from None
    n = int(np.prod(loop, dtype=np.int64))

    def per_example(*xs):
        a, kw = list(args), dict(kwargs)
        for (key, _, _), x in zip(slots, xs):
            if isinstance(key, int):
                a[key] = x
            else:
                kw[key] = x
        return pyfunc(*a, **kw)

    if not loop:          # nothing to map over: one call on the arguments as they are
        return _check_outputs(per_example(*vals), 0, out_cores, sizes, where, signature)
    if n == 0:
        raise _error(where, f"the loop shape {loop} is empty; gradc maps over at least one element")
    flat, in_axes = [], []
    for v, lp in zip(vals, loops):
        core_shape = tuple(int(s) for s in v.shape[len(lp):])
        if all(s == 1 for s in lp):      # no loop dimension of its own: every element shares it
            flat.append(gnp.reshape(v, core_shape) if lp else v)
            in_axes.append(None)
            continue
        if lp != loop:
            v = (gnp.broadcast_to(v, loop + core_shape) if isinstance(v, Value) or current() is not None
                 else np.broadcast_to(v, loop + core_shape))
        flat.append(gnp.reshape(v, (n,) + core_shape))
        in_axes.append(0)
    if any(ax == 0 for ax in in_axes):
        out, lead = vmap(per_example, in_axes=tuple(in_axes))(*flat), 1
    else:                 # only size-1 loop dimensions: one call, given them afterwards
        out, lead = per_example(*flat), 0
    out = _check_outputs(out, lead, out_cores, sizes, where, signature)
    leaves, tree = tree_flatten(out)
    shaped = [gnp.reshape(x, loop + tuple(int(s) for s in np.shape(x)[lead:])) for x in leaves]
    return tree_unflatten(tree, shaped)


def _check_outputs(out, lead, out_cores, sizes, where, signature):
    """Check the outputs against the signature's output core shapes (``lead`` leading batch
    axes on each)."""
    if out_cores is None:
        return out
    many = len(out_cores) > 1
    outs = out if isinstance(out, tuple) else (out,)
    if many and not isinstance(out, tuple) or len(outs) != len(out_cores):
        got = f"a tuple of {len(outs)}" if isinstance(out, tuple) else "one array"
        raise _error(where, f"signature {signature!r} has {len(out_cores)} outputs but the function returned {got}")
    sizes = dict(sizes)
    for k, (o, core) in enumerate(zip(outs, out_cores)):
        shape = tuple(int(s) for s in np.shape(o))[lead:]
        expect = _shape_text(core, sizes)
        if len(shape) != len(core) or any(d in sizes and sizes[d] != s for d, s in zip(core, shape)):
            raise _error(where, f"output {k} has core shape {shape} per element but the signature {signature!r} "
                                f"expects {expect}")
        for d, s in zip(core, shape):
            sizes.setdefault(d, s)
    return out


gnp.vectorize = vectorize
