"""Jacobians (numerator layout: shape ``out.shape + in.shape``), built from the graph
transformations (Hessians and Hessian-vector products: :mod:`gradc.hessian`).

The whole Jacobian is one graph, so one compiled call.  When the graph meets the paper's
diagonal condition (element-wise from the input to the output) the Jacobian is diagonal
and one forward-mode pass with tangent 1 gives its diagonal.  Otherwise the adjoint
graph is batched (:mod:`gradc.batching`, as ``vmap``) over the unit cotangents, one per
output element, each giving a row; or, when the inputs have fewer elements than the
outputs, the tangent graph over the unit tangents, each giving a column."""
from __future__ import annotations

import numpy as np

from .api import Transformed, _check_argnums, _scalar
from .autodiff import is_diagonal, jvp_graph, vjp_graph
from .batching import batch_replay
from .errors import ArgumentError
from .ops.bind import batch_materialize, bind, convert
from .ops.linalg import transpose
from .ops.structure import reshape
from .passes import optimize
from .tracer import Spec, inline, to_value, trace_specs
from .tree_util import tree_unflatten


class _Jacobian(Transformed):
    def __init__(self, fun, argnums, backend, mode=None):
        super().__init__(fun, "jacobian", argnums, backend)
        self.mode = mode          # "fwd", "rev", or None: the mode with fewer unit vectors

    def _constructor_args(self):     # how a pickle rebuilds it (Transformed.__reduce__)
        return (self.fun, self.argnums, self._backend, self.mode)

    def _wrt(self, flat):
        return flat.wrt(_check_argnums(self.argnums, len(flat.spans), self.name))

    def build(self, specs, names, flat=None):
        wrt = list(self._wrt(flat))
        found = {}

        def blocks(*leaves):
            per_output, found["structure"], found["forward"], found["note"] = _jacobian_blocks(
                flat.fun(self.fun), list(leaves), names, wrt, self.name, self.mode)
            return [J for row in per_output for J in row]
        F, _, captured = trace_specs(blocks, specs, names, name=self.name)
        G = optimize(F)
        G.notes.append(found["note"])
        return F, found["forward"], G, found["structure"], captured

    def _restructure(self, outs, structure, flat):
        """The graph's outputs (the blocks, output leaf by output leaf) as the result."""
        k = len(self._wrt(flat))
        rows = [list(outs[i:i + k]) for i in range(0, len(outs), k)]
        return _shape_result(rows, self.argnums, structure, flat)

    def _call_traced(self, arrays, flat):
        _, names = self._specs_names(arrays, flat)
        per_output, structure, _, _ = _jacobian_blocks(flat.fun(self.fun), [to_value(a) for a in arrays],
                                                       names, list(self._wrt(flat)), self.name, self.mode)
        return _shape_result(per_output, self.argnums, structure, flat)


def _jacobian_blocks(fun, vals: list, names: list, wrt: list, name: str, mode=None):
    """``(per output leaf: [J per wrt leaf], output structure, optimized forward graph,
    how it was computed)`` for ``fun`` at the traced values ``vals`` (the current trace); the sizes of the
    outputs and of the differentiated inputs are fixed (a Jacobian's shape needs them)."""
    specs = []
    for v in vals:
        env = v._b.env
        specs.append(Spec(tuple(1 if env.find(d) == 1 else None for d in v._shape), v.dtype,
                          tuple(env.value(d) for d in v._shape)))
    F, structure, captured = trace_specs(fun, specs, names, name=name)
    Fo = optimize(F)
    for i in wrt:
        if Fo[Fo.inputs[i]]["dtype"].kind != "f":
            raise ArgumentError(f"jacobian({name}): argument {names[i]} is not a float array")
    base = vals + list(captured)
    outs = inline(Fo, base)
    out_shapes = [tuple(o.shape) for o in outs]
    in_shapes = [tuple(vals[i].shape) for i in wrt]
    sizes = lambda shapes: sum(int(np.prod(s, dtype=np.int64)) for s in shapes)   # noqa: E731
    if len(outs) == 1 and all(is_diagonal(Fo, Fo.inputs[i], Fo.outputs[0]) for i in wrt):
        per_output = [_diagonal(Fo, base, wrt, vals, outs[0])]
        note = ("the Jacobian is diagonal (element-wise from input to output, the paper's diagonal "
                "condition): one forward-mode pass with tangent 1 gives its diagonal")
    elif mode == "fwd" or (mode is None and sizes(in_shapes) < sizes(out_shapes)):
        per_output = _by_columns(Fo, base, wrt, vals, outs, in_shapes, out_shapes)
        note = (f"dense Jacobian by forward mode: the tangent graph over the {sizes(in_shapes)} unit "
                "tangents of the inputs at once, each a column")
    else:
        per_output = _by_rows(Fo, base, wrt, vals, outs, in_shapes, out_shapes)
        note = (f"dense Jacobian by reverse mode: the adjoint graph over the {sizes(out_shapes)} unit "
                "cotangents of the outputs at once, each a row")
    return per_output, structure, Fo, note


def _identity_mask(m: int):
    """The (m, m) boolean identity, from two iotas (computed, not stored)."""
    return bind("eq", bind("iota", shape=(m, 1), axis=0, dtype=np.dtype(np.int64)),
                bind("iota", shape=(1, m), axis=1, dtype=np.dtype(np.int64)))


def _unit_arrays(shape: tuple, dtype):
    """``(m, *shape)``, m = the size of ``shape``: row k is the k-th unit array."""
    m = int(np.prod(shape, dtype=np.int64))
    return reshape(convert(_identity_mask(m), dtype), (m,) + shape)


def _batched(v, bt, m):
    return v if bt else batch_materialize(m, v)


def _by_rows(Fo, base, wrt, vals, outs, in_shapes, out_shapes) -> list:
    """Reverse mode: the adjoint graph over every output element's unit cotangent."""
    G = optimize(vjp_graph(Fo, wrt, seed="input", keep_value=False))
    per_output = []
    for oi, o in enumerate(outs):
        m = int(np.prod(out_shapes[oi], dtype=np.int64))
        cts = [_unit_arrays(out_shapes[oi], o.dtype) if oj == oi else np.zeros(out_shapes[oj], o2.dtype)
               for oj, o2 in enumerate(outs)]
        flags = [False] * len(base) + [oj == oi for oj in range(len(outs))]
        rows = batch_replay(G, base + cts, flags, m)
        per_output.append([reshape(_batched(v, bt, m), out_shapes[oi] + s) for (v, bt), s in zip(rows, in_shapes)])
    return per_output


def _by_columns(Fo, base, wrt, vals, outs, in_shapes, out_shapes) -> list:
    """Forward mode: the tangent graph over every input element's unit tangent."""
    G = optimize(jvp_graph(Fo, wrt))
    per_output = [[None] * len(wrt) for _ in outs]
    for wi, i in enumerate(wrt):
        n = int(np.prod(in_shapes[wi], dtype=np.int64))
        tans = [_unit_arrays(in_shapes[wi], vals[i].dtype) if wj == wi else np.zeros(in_shapes[wj], vals[j].dtype)
                for wj, j in enumerate(wrt)]
        flags = [False] * len(base) + [wj == wi for wj in range(len(wrt))]
        cols = batch_replay(G, base + tans, flags, n)[len(outs):]
        for oi, (v, bt) in enumerate(cols):
            v = _batched(v, bt, n)                       # (n, *out): move n last
            v = transpose(v, tuple(range(1, v.ndim)) + (0,))
            per_output[oi][wi] = reshape(v, out_shapes[oi] + in_shapes[wi])
    return per_output


def _diagonal(Fo, base, wrt, vals, out) -> list:
    """The paper's diagonal condition: one tangent pass with tangent 1 gives the diagonal."""
    G = optimize(jvp_graph(Fo, wrt))
    row = []
    for wi, i in enumerate(wrt):
        tans = [np.ones(vals[j].shape, vals[j].dtype) if j == i else np.zeros(vals[j].shape, vals[j].dtype)
                for j in wrt]
        args = base + tans             # (replayed with the nodes' roles: tangent)
        d = batch_replay(G, args, [False] * len(args), None)[1][0]
        shape = tuple(out.shape)
        m = int(np.prod(shape, dtype=np.int64))
        on_diagonal = bind("where", _identity_mask(m), reshape(d, (m, 1)), np.zeros((), d.dtype))
        row.append(reshape(on_diagonal, shape + shape))
    return row


def _shape_result(per_output, argnums, structure, flat):
    """Per output leaf (in the output's structure), per argument of ``argnums`` (a tuple
    unless ``argnums`` is an int), the Jacobians in that argument's structure."""
    nums = _check_argnums(argnums, len(flat.spans), "jacobian")
    single = isinstance(argnums, (int, np.integer))
    per = []
    for row in per_output:
        groups = flat.group(nums, [_scalar(j) for j in row])
        per.append(groups[0] if single else tuple(groups))
    return tree_unflatten(structure, per)


def jacobian(fun, argnums=0, *, has_aux=False, backend=None):
    """The Jacobian of ``fun`` with respect to argument(s) ``argnums``, in numerator
    layout: ``J[i..., j...] = d out[i...] / d in[j...]``, shape ``out.shape + in.shape``.
    Arguments and outputs may be pytrees: the result has the output's structure, each
    output leaf holding the argument's structure of Jacobians (as ``jax.jacrev``).
    One compiled call computes it all, by forward or reverse mode, whichever needs fewer
    passes.  ``has_aux=True``: ``fun`` returns ``(out, aux)`` and the result is
    ``(J, aux)``, as JAX's."""
    return _with_aux(fun, argnums, backend, None) if has_aux else _Jacobian(fun, argnums, backend)


def jacfwd(fun, argnums=0, *, has_aux=False, backend=None):
    """``jax.jacfwd``: :func:`jacobian` by forward mode (one tangent per input element)."""
    return _with_aux(fun, argnums, backend, "fwd") if has_aux else _Jacobian(fun, argnums, backend, mode="fwd")


def jacrev(fun, argnums=0, *, has_aux=False, backend=None):
    """``jax.jacrev``: :func:`jacobian` by reverse mode (one cotangent per output element)."""
    return _with_aux(fun, argnums, backend, "rev") if has_aux else _Jacobian(fun, argnums, backend, mode="rev")


def _first(fun, what):
    def out(*args, **kw):
        r = fun(*args, **kw)
        if not isinstance(r, (tuple, list)) or len(r) != 2:
            raise ArgumentError(f"{what}(has_aux=True): the function must return a pair (output, aux), "
                                f"got {type(r).__name__}")
        return r[0]
    out.__name__ = getattr(fun, "__name__", "fun")
    return out


def _with_aux(fun, argnums, backend, mode, transform=None):
    """``(J, aux)``: one compiled function computing the Jacobian of ``fun``'s first
    result (``transform``: another transformation of it, the Hessian) and its second,
    the aux, as computed (its forward nodes shared with the Jacobian's)."""
    from .api import jit
    what = "hessian" if transform is not None else {"fwd": "jacfwd", "rev": "jacrev", None: "jacobian"}[mode]
    first = _first(fun, what)
    inner = transform(first) if transform is not None else _Jacobian(first, argnums, backend, mode)

    def with_aux(*args, **kw):
        return inner(*args, **kw), fun(*args, **kw)[1]
    with_aux.__name__ = f"{what}_{getattr(fun, '__name__', 'fun')}"
    return jit(with_aux, backend=backend)
