"""Jacobians (numerator layout: shape ``out.shape + in.shape``), built from the graph
transformations (Hessians and Hessian-vector products: :mod:`gradc.hessian`).

When the graph meets the paper's diagonal condition (element-wise from the input to
the output) the Jacobian is diagonal and one forward-mode pass with tangent 1 gives
its diagonal; otherwise gradc uses reverse mode (one adjoint pass per output element)
or forward mode (one tangent pass per input element), whichever needs fewer passes."""
from __future__ import annotations

import numpy as np

from .api import Entry, Transformed, _check_argnums, _compile
from .autodiff import is_diagonal, jvp_graph, vjp_graph
from .errors import ArgumentError
from .passes import optimize
from .tracer import Value, inline, trace_specs


class _Jacobian(Transformed):
    def __init__(self, fun, argnums, backend):
        super().__init__(fun, "jacobian", argnums, backend)
        self._plans: dict = {}   # id(graph built) -> how to assemble its Jacobian

    def _wrt(self, n):
        return _check_argnums(self.argnums, n, self.name)

    def build(self, specs, names):
        F, structure, captured = trace_specs(self.fun, specs, names, name=self.name)
        Fo = optimize(F)
        wrt = list(self._wrt(len(specs) - 0))
        for i in wrt:
            if Fo[Fo.inputs[i]]["dtype"].kind != "f":
                raise ArgumentError(f"jacobian({self.name}): argument {i} is not a float array")
        diag = len(Fo.outputs) == 1 and all(is_diagonal(Fo, Fo.inputs[i], Fo.outputs[0]) for i in wrt)
        if diag:
            G = optimize(jvp_graph(Fo, wrt))
            G.notes.append("the Jacobian is diagonal (element-wise from input to output, the paper's "
                           "diagonal condition): one forward-mode pass with tangent 1 gives its diagonal")
        else:
            G = optimize(vjp_graph(Fo, wrt, seed="input", keep_value=False))
            G.notes.append("dense Jacobian by reverse mode: one adjoint pass per output element")
        self._plans[id(G)] = {"diag": diag, "wrt": wrt, "structure": structure, "forward": Fo}
        return F, Fo, G, structure, captured

    def _entry(self, arrays):
        e = super()._entry(arrays)
        if not hasattr(e, "jac_run"):
            e.jac_run = _runner(e, self.backend, self._plans.pop(id(e.graph)))
        return e

    def __call__(self, *args, **kwargs):
        from .api import _bind_args, _names, prepare
        from .tracer import current
        args = _bind_args(self.fun, args, kwargs, self.name)
        arrays = prepare(args, self._wrt(len(args)), self.name, _names(self.fun, len(args)))
        if current() is not None or any(isinstance(a, Value) for a in arrays):
            return self._call_traced(arrays)
        e = self._entry(arrays)
        return e.jac_run(arrays)

    def _call_traced(self, arrays):
        specs, names = self._specs_names(arrays)
        F, structure, captured = trace_specs(self.fun, specs, names, name=self.name)
        Fo = optimize(F)
        wrt = list(self._wrt(len(arrays)))
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
        return _shape_result([rows[i] for i in range(len(outs))], self.argnums, structure)


def _shape_result(per_output, argnums, structure):
    single = isinstance(argnums, (int, np.integer))
    per = [r[0] if single else tuple(r) for r in per_output]
    return per[0] if structure is None else tuple(per)


def _runner(e: Entry, backend, info: dict):
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
            return _shape_result([res], info_argnums(e), info["structure"])
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
        return _shape_result(per_output, info_argnums(e), info["structure"])
    return run


def info_argnums(e):
    return e.argnums


def jacobian(fun, argnums=0, *, backend=None):
    """The Jacobian of ``fun`` with respect to argument(s) ``argnums``, in numerator
    layout: ``J[i..., j...] = d out[i...] / d in[j...]``, shape ``out.shape + in.shape``."""
    j = _Jacobian(fun, argnums, backend)
    orig = j._entry

    def entry(arrays):
        e = orig(arrays)
        e.argnums = argnums
        return e
    j._entry = entry
    return j

