"""Jacobians (numerator layout: shape ``out.shape + in.shape``), built from the graph
transformations (Hessians and Hessian-vector products: :mod:`gradc.hessian`).

When the graph meets the paper's diagonal condition (element-wise from the input to
the output) the Jacobian is diagonal and one forward-mode pass with tangent 1 gives
its diagonal; otherwise gradc uses reverse mode (one adjoint pass per output element)
or forward mode (one tangent pass per input element), whichever needs fewer passes."""
from __future__ import annotations

import numpy as np

from .api import Entry, Transformed, _check_argnums, _compile, _scalar
from .autodiff import is_diagonal, jvp_graph, vjp_graph
from .errors import ArgumentError
from .passes import optimize
from .tracer import Value, inline, trace_specs
from .tree_util import tree_unflatten


class _Jacobian(Transformed):
    def __init__(self, fun, argnums, backend):
        super().__init__(fun, "jacobian", argnums, backend)
        self._plans: dict = {}   # id(graph built) -> how to assemble its Jacobian

    def _constructor_args(self):     # how a pickle rebuilds it (Transformed.__reduce__)
        return (self.fun, self.argnums, self._backend)

    def _wrt(self, flat):
        return flat.wrt(_check_argnums(self.argnums, len(flat.spans), self.name))

    def build(self, specs, names, flat=None):
        F, structure, captured = trace_specs(flat.fun(self.fun), specs, names, name=self.name)
        Fo = optimize(F)
        wrt = list(self._wrt(flat))
        for i in wrt:
            if Fo[Fo.inputs[i]]["dtype"].kind != "f":
                raise ArgumentError(f"jacobian({self.name}): argument {flat.labels[i]} is not a float array")
        diag = len(Fo.outputs) == 1 and all(is_diagonal(Fo, Fo.inputs[i], Fo.outputs[0]) for i in wrt)
        if diag:
            G = optimize(jvp_graph(Fo, wrt))
            G.notes.append("the Jacobian is diagonal (element-wise from input to output, the paper's "
                           "diagonal condition): one forward-mode pass with tangent 1 gives its diagonal")
        else:
            G = optimize(vjp_graph(Fo, wrt, seed="input", keep_value=False))
            G.notes.append("dense Jacobian by reverse mode: one adjoint pass per output element")
        self._plans[id(G)] = {"diag": diag, "wrt": wrt, "forward": Fo}
        return F, Fo, G, structure, captured

    def _entry(self, arrays, flat):
        e = super()._entry(arrays, flat)
        if not hasattr(e, "jac_run"):
            e.jac_run = _runner(e, self.backend, self._plans.pop(id(e.graph)))
        return e

    def __call__(self, *args, **kwargs):
        from .api import foreign_handler
        from .tracer import current
        handler = foreign_handler(args)
        if handler is not None:       # dask arrays: refused (only jit, grad, value_and_grad)
            return handler(self, args, kwargs)
        arrays, flat = self._arrays(args, kwargs)
        if current() is not None or any(isinstance(a, Value) for a in arrays):
            return self._call_traced(arrays, flat)
        e = self._entry(arrays, flat)
        return _shape_result(e.jac_run(arrays), self.argnums, e.structure, flat)

    def _call_traced(self, arrays, flat):
        specs, names = self._specs_names(arrays, flat)
        F, structure, captured = trace_specs(flat.fun(self.fun), specs, names, name=self.name)
        Fo = optimize(F)
        wrt = list(self._wrt(flat))
        G = optimize(vjp_graph(Fo, wrt, seed="input", keep_value=False))
        from .tracer import to_value
        from .ops.structure import stack, reshape
        vals = [to_value(a) for a in arrays]
        outs = inline(Fo, vals + list(captured))
        in_shapes = [vals[i].shape for i in wrt]   # reading shapes fixes them: the loop unrolls
        rows = {}
        for oi, o in enumerate(outs):
            oshape = o.shape
            m = int(np.prod(oshape, dtype=np.int64))
            per_wrt = [[] for _ in wrt]
            for k in range(m):
                cts = []
                for oj, o2 in enumerate(outs):
                    c = np.zeros(o2.shape, o2.dtype)
                    if oj == oi:
                        c.reshape(-1)[k] = 1
                    cts.append(c)
                gs = inline(G, vals + list(captured) + cts)
                for w, gk in enumerate(gs):
                    per_wrt[w].append(gk)
            res = []
            for w, s in enumerate(in_shapes):
                J = stack(per_wrt[w]) if per_wrt[w] else np.zeros((0,) + s)
                res.append(reshape(J, tuple(oshape) + tuple(s)))
            rows[oi] = res
        return _shape_result([rows[i] for i in range(len(outs))], self.argnums, structure, flat)


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


def _runner(e: Entry, backend, info: dict):
    """``run(arrays)``: per output leaf, the Jacobian w.r.t. each differentiated leaf."""
    wrt, diag, Fo = info["wrt"], info["diag"], info["forward"]
    fwd_run = _compile(Fo, backend)

    def run(arrays):
        prim = list(arrays)
        outs = [np.asarray(o) for o in fwd_run(prim)]
        if diag:
            (o,) = outs
            res = []
            for w in wrt:
                tans = [np.ones_like(prim[i]) if i == w else np.zeros_like(prim[i]) for i in wrt]
                d = np.asarray(e.run(prim + tans)[1])
                n = d.size
                J = np.zeros((n, n), dtype=d.dtype)
                J[np.arange(n), np.arange(n)] = d.reshape(-1)
                res.append(J.reshape(o.shape + prim[w].shape))
            return [res]
        per_output = []
        for oi, o in enumerate(outs):
            m = o.size
            Js = [np.zeros((m,) + prim[w].shape, dtype=prim[w].dtype) for w in wrt]
            for k in range(m):
                cts = [np.zeros_like(x) for x in outs]
                cts[oi].reshape(-1)[k] = 1
                gs = e.run(prim + cts)
                for j, gk in enumerate(gs):
                    Js[j][k] = gk
            per_output.append([J.reshape(o.shape + prim[w].shape) for J, w in zip(Js, wrt)])
        return per_output
    return run


def jacobian(fun, argnums=0, *, backend=None):
    """The Jacobian of ``fun`` with respect to argument(s) ``argnums``, in numerator
    layout: ``J[i..., j...] = d out[i...] / d in[j...]``, shape ``out.shape + in.shape``.
    Arguments and outputs may be pytrees: the result has the output's structure, each
    output leaf holding the argument's structure of Jacobians (as ``jax.jacrev``)."""
    return _Jacobian(fun, argnums, backend)
