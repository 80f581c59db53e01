"""Explaining a lowered function: naming its forward values (from the user's source, else
by the paper's conventions), choosing the sample axis, reading the gradient graph and the
∂C/∂u steps (from the ``u + δ_u`` graph), and keeping a name only where it pays.

``explain_lowered`` is the entry point gradc's API calls; the rest of the package is the
notation it writes with."""
from __future__ import annotations

import ast
import inspect
import linecache

import numpy as np

from ..errors import ArgumentError
from ..graph import Graph
from ..graph_match import forward_match, structural_keys
from ..ops import OPS
from .explanation import Explanation
from .expr import ONE, Call, Ex, Mul, Ref, Sym, Vec, rank, refs, size, subst
from .reader import Reader, as_row, rule_text
from .render import Renderer
from .simplify import _factors, simp


# ============================================================================ naming
def _unwrap(fun):
    try:
        fun = inspect.unwrap(fun)
    except Exception:  # noqa: BLE001
        pass
    return getattr(fun, "__wrapped__", fun)


def _user_names(fo: Graph, fun) -> dict:
    """{node: name} for nodes that are the value of a ``name = ...`` line of ``fun``'s file."""
    code = getattr(_unwrap(fun), "__code__", None) if fun is not None else None
    if code is None:
        return {}
    path = code.co_filename
    by_line: dict = {}
    for nid in fo.nx:
        d = fo[nid]
        p = d.provenance
        if d.role == "forward" and d.op not in ("input", "const") and p is not None and p.mode is None \
                and p.file == path:
            by_line.setdefault(p.line, []).append(nid)
    out = {}
    for ln, nids in by_line.items():
        text = linecache.getline(path, ln).strip()
        try:
            body = ast.parse(text).body
        except SyntaxError:
            continue
        st = body[0] if body else None
        if isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name):
            name = st.targets[0].id
        elif isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name):
            name = st.target.id
        else:
            continue
        s = set(nids)
        roots = [n for n in nids if not any(u in s for u in fo.users(n))]
        if len(roots) == 1:
            out[roots[0]] = name
    return out


def _is_zero_const(fo, x):
    d = fo[x]
    return d.op == "const" and d.params["value"].size == 1 and float(d.params["value"].reshape(-1)[0]) == 0


def _heuristic_names(fo: Graph, path: set, taken: set) -> dict:
    cand = {"z": [], "a": [], "e": []}
    for nid in fo.order():
        if nid not in path:
            continue
        d = fo[nid]
        op = d.op
        users = fo.users(nid)
        if op in ("relu", "sigmoid", "tanh") or (op == "maximum" and any(_is_zero_const(fo, a) for a in d.args)):
            cand["a"].append(nid)
        elif op == "add" and any(fo[a].op == "matmul" for a in d.args):
            cand["z"].append(nid)
        elif op == "matmul" and len(d.shape) >= 1 and not any(fo[u].op == "add" for u in users):
            cand["z"].append(nid)
        elif op == "sub" and any(fo[u].op in ("square", "abs") or fo[u].op == "pow" for u in users):
            cand["e"].append(nid)
    out = {}
    for letter, nids in cand.items():
        for k, nid in enumerate(nids):
            name = letter if len(nids) == 1 else f"{letter}{k + 1}"
            while name in taken:
                name += "'"
            out[nid] = name
            taken.add(name)
    return out



class _NO_ROWS:
    """A stand-in for an argument that cannot give the sample axis."""
    shape = ()


def _batch_symbol(fo: Graph, wrt: list):
    """The sample axis: rows of the first data matrix (a rank-2 argument not differentiated).
    A size that is a side of a matrix a linear algebra op takes whole (K in solve(K, y),
    the n x n kernel matrix of a Gaussian process) indexes no samples."""
    whole = {fo[n].shape[k] if fo[n].op != "solve" else fo[fo[n].args[0]].shape[k]
             for n in fo.nx if "lapack" in getattr(OPS.get(fo[n].op), "extra", {}) for k in (-1, -2)
             if len(fo[n].shape) >= 2}
    whole |= {fo[a].shape[k] for n in fo.nx if "lapack" in getattr(OPS.get(fo[n].op), "extra", {})
              for a in fo[n].args[:1] for k in (-1, -2)}
    # (an argument whose rows are such a side stands aside; k stays its position, as wrt counts)
    ins = [fo[i] if not (fo[i].shape and fo[i].shape[0] in whole) else _NO_ROWS for i in fo.inputs]
    for k, d in enumerate(ins):
        if k not in wrt and len(d.shape) == 2 and isinstance(d.shape[0], str):
            return d.shape[0], True
    for k, d in enumerate(ins):
        if len(d.shape) == 2 and isinstance(d.shape[0], str):
            return d.shape[0], False
    for pref in (False, True):
        for k, d in enumerate(ins):
            if (k in wrt) == pref and len(d.shape) == 1 and isinstance(d.shape[0], str):
                s = d.shape[0]
                dots = any(fo[n].op == "matmul" and all(len(fo[a].shape) == 1 for a in fo[n].args)
                           and fo[fo[n].args[0]].shape[0] == s for n in fo.nx)
                return (None, False) if dots else (s, False)
    return None, False


def _deltas_graph(fo: Graph, nodes: list):
    """``fo`` with ``u + δ_u`` in place of each u: returns (graph, {u: δ input})."""
    g = fo.copy()
    delta = {}
    for u in nodes:
        d = g[u]
        di = g.add("input", (), shape=d.shape, dtype=d.dtype, name=f"δ{u}",
                   params={"index": len(g.inputs)})
        g.inputs.append(di)
        users = g.users(u)
        p = g.add("add", (u, di), shape=d.shape, dtype=d.dtype, provenance=d.provenance, role="forward")
        for v in users:
            dv = g[v]
            dv.args = tuple(p if a == u else a for a in dv.args)
            g.nx.remove_edge(u, v)
            g.nx.add_edge(p, v)
        delta[u] = di
    return g, delta


class _Explainer:
    def __init__(self, fo: Graph, G: Graph, wrt: list, fun=None, output_name=None):
        from ..autodiff import relevant
        self.fo, self.G, self.wrt, self.fun = fo, G, wrt, fun
        self.B, self.samples = _batch_symbol(fo, wrt)
        self.in_names = {n: fo[n].name or f"arg{k}" for k, n in enumerate(fo.inputs)}
        out = fo.outputs[0]
        self.out = out
        self.path = relevant(fo, [fo.inputs[k] for k in wrt], [out])
        taken = set(self.in_names.values())
        user = {n: v for n, v in _user_names(fo, fun).items() if v not in taken}
        taken |= set(user.values())
        heur = _heuristic_names(fo, self.path - set(user), taken)
        self.names = {**heur, **user}
        od = fo[out]
        is_cost = self.samples and od.shape == ()
        self.out_name = output_name or ("C" if is_cost else "f")
        self.names[out] = self.out_name
        # step-named values: named ones, values used twice, links of element-wise chains
        k = 0
        for nid in fo.order():
            d = fo[nid]
            if nid not in self.path or nid in self.names or d.op in ("input", "const", "count") \
                    or d.dtype.kind != "f":
                continue
            from ..ops import OPS
            users = _uses(fo, nid, self.path)
            ew = OPS[d.op].kind == "elementwise" and d.op not in ("cast", "stop_gradient", "copy")
            chain = ew and users and all(OPS[fo[u].op].kind == "elementwise" and fo[u].op != "cast"
                                         for u in users)
            if len(users) > 1 or chain:
                k += 1
                name = f"u{k}"
                while name in taken:
                    k += 1
                    name = f"u{k}"
                taken.add(name)
                self.names[nid] = name
        self.taken = taken
        self.order = {n: k for k, n in enumerate(fo.order())}
        self.fdefs: dict = {}

    # -- reading graphs ---------------------------------------------------------------
    def reader(self, g: Graph, deltas=frozenset(), cts=None):
        m = forward_match(self.fo, g) if g is not self.fo else {n: n for n in g.nx}
        if deltas:
            intern: dict = {}
            kf = structural_keys(self.fo, intern)
            kg = structural_keys(g, intern, deltas)
            back = {k: n for n, k in kf.items()}
            rid_of = {n: back[k] for n, k in kg.items() if k in back and g[n].role == "forward"}
        else:
            rid_of = {gn: fn for fn, gn in m.items()}
        for n in g.nx:                 # forward values the forward graph lacks
            if g[n].role == "forward" and n not in rid_of and g[n].op not in ("input", "const"):
                rid_of[n] = f"{id(g)}:{n}"
        names_in = {gi: self.in_names.get(fi, g[gi].name) for gi, fi in zip(g.inputs, self.fo.inputs)}
        r = Reader(g, self.B, names_in, rid_of, deltas, cts)
        self._readers = getattr(self, "_readers", [])
        self._readers.append(r)
        return r

    def definition(self, rid) -> Ex:
        """A forward value's own expression (its arguments as Refs)."""
        if rid in self.fdefs:
            return self.fdefs[rid]
        e = None
        if isinstance(rid, int) and rid in self.fo.nx:
            e = self.fo_reader.define(rid)
        else:
            for r in self._readers:
                for n, x in r.rid_of.items():
                    if x == rid:
                        e = r.define(n)
                        break
                if e is not None:
                    break
        if e is None:
            e = Call("?", ())
        self.fdefs[rid] = e
        return e

    def ref_sym(self, rid, idx, rk):
        name = self.names.get(rid)
        if name is None:
            k = 1
            while f"u{k}" in self.taken:
                k += 1
            name = f"u{k}"
            self.taken.add(name)
            self.names[rid] = name
        return Sym(name, idx, rk)

    def resolve(self, e: Ex, keep: set, depth=0) -> Ex:
        """Refs in ``keep`` become names, the others their (resolved) definitions."""
        def f(x):
            if isinstance(x, Ref):
                if x.rid in keep:
                    return self.ref_sym(x.rid, x.idx, x.rank)
                if depth > 60:
                    return Call("…", ())
                return self.resolve(self.definition(x.rid), keep, depth + 1)
            return None
        return subst(e, f)

    def pos(self, rid):
        return self.order.get(rid, 10 ** 9) if isinstance(rid, int) else 10 ** 9

    def inline(self, exprs: list):
        """Substitute definitions where a name does not pay.  Returns (exprs, kept,
        {kept: its definition}).  Latest values first; a value keeps its name if it is
        used twice in one result, used by a result and by a kept definition (or by two
        of them), or is big; a value of at most two names is always substituted.
        Decisions are revisited once the earlier values are substituted."""
        keep: set = set()
        kdefs: dict = {}
        exprs = [simp(e) for e in exprs]

        def counts(rid):
            rc = [refs(e, {}) for e in exprs]
            dc = [refs(d, {}) for k, d in kdefs.items() if k != rid]
            cnt = max((c.get(rid, 0) for c in rc), default=0)
            return cnt, sum(1 for c in dc if rid in c)

        def wanted(rid, defn):
            sz = size(self.resolve(defn, set()))
            if sz <= 2:
                return False
            cnt, ndefs = counts(rid)
            return bool(cnt >= 2 or (cnt and ndefs) or ndefs >= 2 or (cnt and sz > 4))

        def substitute(rid, defn):
            nonlocal exprs, kdefs

            def sub(e):
                return simp(subst(e, lambda x: defn if isinstance(x, Ref) and x.rid == rid else None))
            exprs = [sub(e) for e in exprs]
            kdefs = {k: sub(v) for k, v in kdefs.items() if k != rid}

        for _ in range(20):
            changed = False
            for _ in range(1000):
                todo = set()
                for e in list(exprs) + list(kdefs.values()):
                    todo |= set(refs(e, {}))
                todo -= keep
                if not todo:
                    break
                rid = max(todo, key=self.pos)
                defn = simp(self.definition(rid))
                if wanted(rid, defn):
                    keep.add(rid)
                    kdefs[rid] = defn
                else:
                    substitute(rid, defn)
            for rid in sorted(keep, key=self.pos, reverse=True):
                if not wanted(rid, kdefs[rid]):
                    keep.discard(rid)
                    substitute(rid, kdefs[rid])
                    changed = True
            if not changed:
                break
        return exprs, keep, kdefs

    # -- the explanation --------------------------------------------------------------
    def run(self, title) -> Explanation:
        ex = Explanation()
        ex._out = self.out_name
        ex.title = title
        fo = self.fo
        self.fo_reader = self.reader(fo)
        self._readers = [self.fo_reader]
        if self.B is not None:
            rows = [self.in_names[n] for n in fo.inputs if len(fo[n].shape) == 2 and fo[n].shape[0] == self.B]
            what = f" (x_iᵀ is row i of {rows[0]})" if rows and self.fo_reader.row_name(rows[0]) == "x" else ""
            if self.samples:
                ex.notes.append(f"i = 1..N indexes the samples{what}; a name with subscript i is that "
                                "sample's value")
            else:
                vs = [("the rows of " if len(fo[n].shape) == 2 else "") + self.in_names[n]
                      for n in fo.inputs if fo[n].shape[:1] == (self.B,)]
                ex.notes.append(f"i = 1..N indexes the elements of {', '.join(vs)}".replace(
                    "elements of the rows", "rows"))
        named = [n for n in fo.order() if n in self.names and n in self.path or n == self.out]
        keep_steps = set(named)
        # forward definitions
        for n in named:
            lhs = self.ref_sym(n, self.fo_reader.layout(n) != "plain", self.fo_reader.prank(n))
            rhs = simp(self.resolve(self.fo_reader.define(n), keep_steps - {n}))
            ex.forward.append((lhs, rhs))
        # the gradients of the graph that runs
        G = self.G
        gr = self.reader(G)
        outs = G.outputs[-len(self.wrt):]
        exprs = [gr.read(o) for o in outs]
        finals, kept, kdefs = self.inline(exprs)
        finals = [as_row(simp(self.resolve(e, kept))) for e in finals]
        for k, e in zip(self.wrt, finals):
            node = fo.inputs[k]
            lay = self.fo_reader.layout(node)
            wname = self.in_names[node]
            if lay == "row" and len(fo[node].shape) == 2:
                wname = self.fo_reader.row_name(wname)
            wsym = Sym(wname, lay != "plain", self.fo_reader.prank(node))
            ex.results.append(((self.out_name, wsym), e))
            ex.gradients[self.in_names[node]] = Renderer(False)(e)
        for rid in sorted(kept, key=self.pos):
            r = self._ref_of(rid)
            lhs = self.ref_sym(rid, getattr(r, "idx", False), getattr(r, "rank", 0))
            ex.where.append((lhs, simp(self.resolve(kdefs[rid], kept - {rid}))))
        # the steps, from one more adjoint graph
        try:
            self.steps(ex, named)
        except Exception as err:  # noqa: BLE001
            ex.extra.append(f"(steps not shown: {type(err).__name__}: {err})")
        return ex

    def _ref_of(self, rid):
        if isinstance(rid, int) and rid in self.fo.nx:
            return Ref(rid, self.fo_reader.layout(rid) != "plain", self.fo_reader.prank(rid))
        return None

    def steps(self, ex: Explanation, named: list):
        from ..autodiff import vjp_graph
        from ..passes import optimize
        fo = self.fo
        inter = [n for n in named if n != self.out and fo[n].dtype.kind == "f"]
        g, delta = _deltas_graph(fo, inter)
        k0 = len(fo.inputs)
        wrt = list(self.wrt) + [k0 + k for k in range(len(inter))]
        D = optimize(vjp_graph(g, wrt, seed="one", keep_value=False))
        dr = self.reader(D, deltas=frozenset(D.inputs[k0:]))
        outs = dict(zip([fo.inputs[k] for k in self.wrt] + inter, D.outputs))
        keep = set(named)
        seen = set(named)
        ex.steps.append(((self.out_name, self.out_name), ONE, "seed"))
        order = list(reversed(inter)) + [fo.inputs[k] for k in self.wrt]
        for u in order:
            e = simp(self.resolve(dr.read(outs[u]), keep))
            lay = self.fo_reader.layout(u)
            if fo[u].op == "input":
                nm = self.in_names[u]
                if lay == "row" and len(fo[u].shape) == 2:
                    nm = self.fo_reader.row_name(nm)
                lhs = Sym(nm, lay != "plain", self.fo_reader.prank(u))
                e = as_row(e)
            else:
                lhs = self.ref_sym(u, lay != "plain", self.fo_reader.prank(u))
            ex.steps.append(((self.out_name, lhs), e, self.rules(u, seen)))

    def rules(self, u, named) -> str:
        fo = self.fo
        region: dict = {}
        frontier = [u]
        visited = {u}
        while frontier:
            x = frontier.pop()
            for v in _uses(fo, x, self.path):
                if fo[v].dtype.kind == "b":
                    continue
                region.setdefault(v, [])
                region[v] += [k for k, a in enumerate(fo[v].args) if a == x]
                if v not in named and v not in visited:
                    visited.add(v)
                    frontier.append(v)
        texts = []
        for v in sorted(region, key=self.pos):
            t = rule_text(fo, v, sorted(set(region[v])), self.B,
                          lambda n: self.names.get(n) or self.in_names.get(n))
            if t and t not in texts:
                texts.append(t)
        if len(texts) > 1:
            texts = [t for t in texts if not t.startswith(("element-wise + ⇒", "reshape ⇒", "slice ⇒",
                                                          "transpose ⇒", "padding ⇒"))] or texts[:1]
        uses = _uses(fo, u, self.path)
        pre = f"total derivative over its {len(uses)} uses: " if len(uses) > 1 else ""
        return pre + "; ".join(texts)


def _uses(fo: Graph, nid, path) -> list:
    """The users of ``nid`` its value flows into (``count`` reads only its shape)."""
    return [u for u in fo.users(nid) if u in path and fo[u].op != "count"]


def _substitute_input(graph: Graph, nid: int, value: np.ndarray) -> Graph:
    g = graph.copy()
    c = g.add("const", (), shape=value.shape, dtype=value.dtype, params={"value": value}, role="adjoint")
    g.replace_uses(nid, c)
    g.inputs.remove(nid)
    g.remove(nid)
    return g


def _signature(fo: Graph, out_name: str) -> str:
    from ..graph import fmt_type
    ins = ", ".join(f"{fo.label(i)}: {fmt_type(fo[i].shape, fo[i].dtype)}" for i in fo.inputs)
    outs = ", ".join(fmt_type(fo[o].shape, fo[o].dtype) for o in fo.outputs)
    return f"{fo.name}({ins}) -> {outs}"


def _wrt_of(G: Graph, fo: Graph):
    names = [fo[i].name for i in fo.inputs]
    out = []
    for n in G.output_names:
        if n.startswith("d") and n[1:] in names:
            out.append(names.index(n[1:]))
    return out


def explain_lowered(low, *, wrt=None, output_name=None) -> Explanation:
    """Explain a :class:`gradc.Lowered` (of ``grad``/``value_and_grad``; a ``jit`` is
    explained with respect to its float arguments)."""
    from ..autodiff import vjp_graph
    from ..passes import optimize
    fo, G = low.forward, low.graph
    fun = getattr(low, "_fun", None)
    if wrt is None:
        wrt = _wrt_of(G, fo) if any(G[n].role == "adjoint" for n in G.nx) else []
    if not wrt or G is fo or len(G.outputs) < len(wrt):
        wrt = wrt or [k for k, i in enumerate(fo.inputs)
                      if fo[i].dtype.kind == "f" and not fo[i].params.get("captured")]
        if not wrt:
            raise ArgumentError("explain: the function has no float argument to differentiate")
        G = None
    if len(fo.outputs) != 1:
        raise ArgumentError(f"explain: {fo.name} returns {len(fo.outputs)} values; explain one of them")
    oshape = fo[fo.outputs[0]].shape
    if oshape != ():
        return _explain_vector(fo, wrt, fun, output_name)
    if G is None or _wrt_of(G, fo) != list(wrt):
        G = optimize(vjp_graph(fo, list(wrt), seed="one", keep_value=True))
    ex = _Explainer(fo, G, list(wrt), fun, output_name)
    wn = ", ".join(ex.in_names[fo.inputs[k]] for k in wrt)
    return ex.run(f"{_signature(fo, ex.out_name)}: the derivative of {ex.out_name} with respect to {wn}")


def _explain_vector(fo: Graph, wrt, fun, output_name) -> Explanation:
    """A function with an array result: its Jacobian, row by row when the result has a
    few fixed entries, as diag(...) when it is element-wise, else as vᵀJ."""
    from ..autodiff import is_diagonal, vjp_graph
    from ..passes import optimize
    out = fo.outputs[0]
    od = fo[out]
    shape = od.shape
    name = output_name or "f"
    V = optimize(vjp_graph(fo, list(wrt), seed="input", keep_value=False))
    ct = V.inputs[len(fo.inputs)]
    exp = Explanation()
    exp._out = name
    wn = ", ".join(fo[fo.inputs[k]].name for k in wrt)
    exp.title = f"{_signature(fo, name)}: the Jacobian of {name} with respect to {wn} (numerator layout)"
    fixed = all(isinstance(d, int) for d in shape)
    n = int(np.prod(shape)) if fixed else 0
    if fixed and n <= 16:
        rows = []
        for k in range(n):
            e_k = np.zeros(shape, od.dtype)
            e_k.reshape(-1)[k] = 1
            Gk = optimize(_substitute_input(V, ct, e_k))
            sub = _Explainer(fo, _with_outputs(Gk, fo, wrt), list(wrt), fun, name)
            sub.fo_reader = sub.reader(fo)
            sub._readers = [sub.fo_reader]
            gr = sub.reader(Gk)
            exprs = [gr.read(o) for o in Gk.outputs]
            finals, kept, _ = sub.inline(exprs)
            finals = [simp(sub.resolve(e, kept)) for e in finals]
            rows.append(finals)
        idx = (lambda k: f"{name}[{k}]") if len(shape) == 1 else (lambda k: f"{name}[{np.unravel_index(k, shape)}]")
        for j, k in enumerate(wrt):
            wname = fo[fo.inputs[k]].name
            for r in range(n):
                exp.results.append(((idx(r), wname), rows[r][j]))
            if all(rank(rows[r][j]) == 0 for r in range(n)) and fo[fo.inputs[k]].shape == ():
                exp.results.append(((name, wname), Vec(tuple(rows[r][j] for r in range(n)))))
            exp.gradients[wname] = Renderer(False)(Vec(tuple(rows[r][j] for r in range(n))))
        return exp
    sub = _Explainer(fo, V, list(wrt), fun, name)
    sub.fo_reader = sub.reader(fo)
    sub._readers = [sub.fo_reader]
    gr = sub.reader(V, cts={ct: "v"})
    exprs = [gr.read(o) for o in V.outputs]
    finals, kept, _ = sub.inline(exprs)
    finals = [simp(sub.resolve(e, kept)) for e in finals]
    for j, k in enumerate(wrt):
        node = fo.inputs[k]
        wname = fo[node].name
        e = finals[j]
        v = Sym("v", gr.layout(ct) != "plain", gr.prank(ct))
        if is_diagonal(fo, node, out) and sub.B is not None and v in _factors(e):
            fs = _factors(e)
            fs.remove(v)
            diag = simp(Mul(tuple(fs))) if fs else ONE
            exp.results.append(((Sym(name, True), Sym(wname, True)), diag))
            exp.extra.append(f"  (element-wise, so ∂{name}/∂{wname} = diag(∂{name}_i/∂{wname}_i): the diagonal condition)")
        else:
            exp.results.append(((f"(vᵀ{name})", wname), e))
            exp.extra.append(f"  (v is the cotangent, of {name}'s shape: this is vᵀ ∂{name}/∂{wname})")
        exp.gradients[wname] = Renderer(False)(exp.results[-1][1])
    if sub.B is not None:
        exp.notes.append("i = 1..N indexes the elements along the first axis")
    return exp


def _with_outputs(G, fo, wrt):
    G.output_names = [f"d{fo[fo.inputs[k]].name}" for k in wrt]
    return G
