"""Reading a graph into expressions: :class:`Reader` turns each node into an :mod:`.expr`
term over its arguments; :class:`Notation` and ``written`` let an op declare its own
notation (see :class:`gradc.ops.registry.Op`); ``rule_text`` words the chain-rule step
back through a node.

This is where gradc's graphs and ops meet the notation: the modules below it know only
expressions, the ones above it only call these."""
from __future__ import annotations

import numpy as np

from ..graph import Graph
from ..ops import OPS
from .expr import (ZERO, Add, And, Call, Cmp, Dot, Ex, Fn, Ind, Index, Mul, Not, Num, Pow, Prod, Ref, Sum, Sym, T,
                   Vec, is_num, neg, rank)
from .render import _FN_TEXT, Renderer
from .simplify import simp


def is_row(e: Ex) -> bool:
    """A row vector (numerator layout's gradient), as far as the expression shows."""
    if isinstance(e, T):
        return rank(e.x) == 1
    if isinstance(e, (Mul, Add, Fn)):
        vs = [f for f in e.kids() if rank(f) > 0]
        return bool(vs) and all(is_row(f) for f in vs)
    if isinstance(e, Sum):
        return is_row(e.body)
    if isinstance(e, Prod):
        return is_row(e.factors[0])
    return False


def as_row(e: Ex) -> Ex:
    """A gradient w.r.t. a vector is a row in numerator layout."""
    return simp(T(e)) if rank(e) == 1 and not is_row(e) else e


# ============================================================================ graph -> Ex
def _is_size1(d):
    return d == 1


class Reader:
    """Turns nodes of one graph into expressions over its inputs, with every forward
    value a :class:`Ref` (``rid`` = the matching node of the forward graph)."""

    def __init__(self, graph: Graph, batch, names_in: dict, rid_of: dict, deltas=frozenset(),
                 cts: dict | None = None):
        self.g, self.B = graph, batch
        self.names_in = names_in      # input node -> display name
        self.rid_of = rid_of          # forward node -> rid
        self.deltas = deltas
        self.cts = cts or {}          # cotangent input -> name
        self.memo: dict = {}

    # -- layouts --------------------------------------------------------------------
    def layout(self, nid):
        s = self.g[nid].shape
        if self.B is not None and s and s[0] == self.B:
            return "row"
        if self.B is not None and len(s) == 2 and s[1] == self.B:
            return "col"
        return "plain"

    def as_array(self, e: Ex, nid) -> Ex:
        """An operand of a matrix product that reads as a number but is an array (the
        gradient of a sum is 1 broadcast) is that number times 𝟙, the array of ones:
        G Wᵀ with G = 𝟙 is 𝟙 Wᵀ, not Wᵀ."""
        r = self.prank(nid)
        return Mul((e, Sym("𝟙", rank=r))) if r and rank(e) == 0 else e

    def prank(self, nid):
        s = self.g[nid].shape
        lay = self.layout(nid)
        s = s[1:] if lay == "row" else s[:1] if lay == "col" else s
        return sum(1 for d in s if not _is_size1(d))

    # -- reading --------------------------------------------------------------------
    def read(self, nid) -> Ex:
        if nid in self.memo:
            return self.memo[nid]
        d = self.g[nid]
        if d.op == "add" and len(d.args) == 2 and d.args[1] in self.deltas:
            e = self.read(d.args[0])
        elif d.role == "forward" and d.op not in ("input", "const") and nid in self.rid_of:
            e = Ref(self.rid_of[nid], self.layout(nid) != "plain", self.prank(nid))
        else:
            e = self.define(nid)
        self.memo[nid] = e
        return e

    def define(self, nid) -> Ex:
        """The node as its op applied to its arguments (which are read as Refs)."""
        try:
            return self._op(nid)
        except Exception:  # noqa: BLE001  (a fallback, never a crash)
            d = self.g[nid]
            return Call(d.op, tuple(self.read(a) for a in d.args), rank=self.prank(nid))

    def _op(self, nid) -> Ex:
        g = self.g
        d = g[nid]
        op, p = d.op, d.params
        args = d.args
        if op == "input":
            if nid in self.deltas:
                return ZERO
            name = self.cts.get(nid) or self.names_in.get(nid) or d.name or f"%{nid}"
            lay = self.layout(nid)
            if lay == "row" and len(d.shape) == 2:
                name = self.row_name(name)
            return Sym(name, lay != "plain", self.prank(nid))
        if op == "const":
            v = p["value"]
            if v.size == 1:
                return Num(float(v.reshape(-1)[0]))
            if v.size <= 4 and v.ndim == 1:
                return Vec(tuple(Num(float(x)) for x in v))
            return Call("const", (), f"{v.dtype}{list(v.shape)}", rank=self.prank(nid))
        A = [self.read(a) for a in args]
        lays = [self.layout(a) for a in args]
        out_lay = self.layout(nid)
        if op in OPS and OPS[op].notation is not None:
            return written(op, [self.bcast(x, a, nid) for x, a in zip(A, args)])
        if op == "where":
            c, x, y = [self.bcast(v, a, nid) for v, a in zip(A, args)]
            hot = self.one_hot_index(args[0])
            if hot is not None and is_num(y, 0.0):
                return Mul((x, Fn("onehot", (self.read(hot),))))
            if is_num(y, 0.0):
                return Mul((Ind(c), x))
            if is_num(x, 0.0):
                return Mul((Ind(Not(c)), y))
            return Add((Mul((Ind(c), x)), Mul((Ind(Not(c)), y))))
        if op == "cast":
            if g[args[0]].dtype == np.bool_:
                return Ind(A[0])
            return A[0]
        if op == "stop_gradient":
            return A[0]
        if op in ("custom_jvp", "custom_vjp"):    # a function with the user's rule: its value
            return A[p["index"]]
        if op in ("reshape", "broadcast_to"):
            return self.reshape(nid, args[0], A[0])
        if op == "transpose":
            if lays[0] != "plain" or out_lay != "plain":
                return A[0]
            return T(A[0])
        if op in ("sum", "logsumexp", "max", "min"):
            return self.reduce(op, nid, args[0], A[0], p["axes"])
        if op == "count":
            xs = g[args[0]].shape
            parts = []
            for ax in p["axes"]:
                dim = xs[ax]
                if dim == self.B:
                    parts.append(Sym("N", kind="size"))
                elif isinstance(dim, str):
                    parts.append(Sym(dim, kind="size"))
                else:
                    parts.append(Num(float(dim)))
            return Mul(tuple(parts)) if len(parts) != 1 else parts[0]
        if op == "matmul":
            return self.matmul(nid, args, A, lays)
        if op == "iota":
            if out_lay == "row" and p.get("axis") == 0:
                return Sym("i", True, 0, kind="index")
        if op == "gather" and len(args) == 3 and lays[0] == "row" and len(g[args[0]].shape) == 2:
            if self.is_iota(args[1]):
                return Index(A[0], A[2])
        if op == "scatter_add" and len(args) == 3 and out_lay == "row" and len(d.shape) == 2:
            if self.is_iota(args[1]):
                return Mul((A[0], Fn("onehot", (A[2],))))
        if op in ("slice", "unslice"):
            src, dst = (g[args[0]].shape, d.shape)
            if tuple(src) == tuple(dst):
                return A[0]
        if op == "concatenate" and all(self.prank(a) == 0 and self.layout(a) == "plain" for a in args):
            return Vec(tuple(A))
        shown = OPS[op].extra.get("explain_params") if op in OPS else None   # (an op may name the few that read well)
        ps = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(p.items()) if k != "value" and (shown is None or k in shown))
        return Call(op, tuple(A), ps, rank=self.prank(nid))

    def one_hot_index(self, nid):
        """The index array idx when ``nid`` is the one-hot mask of a sample's class,
        iota_1 == gather(0..m-1, idx) (passes.one_hot_scatter's form of the adjoint of
        S[i, labels_i]); else None."""
        g = self.g
        d = g[nid]
        if d.op != "eq" or len(d.shape) != 2 or self.layout(nid) != "row":
            return None
        for pos, other in (d.args, d.args[::-1]):
            p = g[pos]
            if not (p.op == "iota" and p.params.get("axis") == 1):
                continue
            o = g[other]
            while o.op == "broadcast_to":
                o = g[o.args[0]]
            if o.op == "gather" and len(o.args) == 2 and g[o.args[0]].op == "iota":
                return o.args[1]
        return None

    def is_iota(self, nid) -> bool:
        """The sample index i itself (an iota along the sample axis)."""
        d = self.g[nid]
        return d.op == "iota" and d.params.get("axis") == 0 and self.layout(nid) == "row"

    def row_name(self, name: str) -> str:
        low = name.lower()
        taken = {n.lower() for n in self.names_in.values() if n != name}
        if len(name) == 1 and name.isupper() and low not in taken:
            return low
        return name

    def bcast(self, x: Ex, a, nid) -> Ex:
        """An operand broadcast into a per-sample row: a (1, k) row vector is the k-vector."""
        if self.layout(nid) == "row" and self.layout(a) == "plain" and isinstance(x, T):
            return x.x
        return x

    def reshape(self, nid, a, x):
        s_in, s_out = self.g[a].shape, self.g[nid].shape
        core_in = [d for d in s_in if not _is_size1(d)]
        core_out = [d for d in s_out if not _is_size1(d)]
        if self.g[nid].op == "broadcast_to":
            if self.layout(nid) == "row" and self.layout(a) == "plain" and isinstance(x, T):
                return x.x
            return x
        if core_in == core_out:
            # a plain vector made a (1, n) row is its transpose
            if self.layout(nid) == "plain" and len(s_out) == 2 and _is_size1(s_out[0]) \
                    and not _is_size1(s_out[1]) and len(core_in) == 1:
                return T(x)
            return x
        return Call("reshape", (x,), f"shape={_fmt(tuple(s_out))}", rank=self.prank(nid))

    def reduce(self, op, nid, a, x, axes):
        s = self.g[a].shape
        lay = self.layout(a)
        bax = {"row": 0, "col": 1}.get(lay)
        real = [ax for ax in axes if not _is_size1(s[ax])]
        over_b = bax in real if bax is not None else False
        inner = [ax for ax in real if ax != bax]
        y = x
        if inner:
            left = [ax for ax in range(len(s)) if ax != bax and not _is_size1(s[ax]) and ax not in inner]
            y = Fn(op, (y,), f"axis={inner[0] if len(inner) == 1 else tuple(inner)}" if left else "")
        elif not over_b:
            return x
        if over_b:
            if op == "sum":
                return Sum(y)
            if op == "logsumexp":
                base = x if not inner else Fn("exp", (y,))
                return Fn("ln", (Sum(Fn("exp", (x,)) if not inner else base),))
            return Call(op + "_i", (y,), rank=self.prank(nid))
        return y

    def matmul(self, nid, args, A, lays):
        g = self.g
        ra, rb = (len(g[a].shape) for a in args)
        a, b = (self.as_array(x, arg) for x, arg in zip(A, args))
        la, lb = lays
        if la == "row" and lb == "plain":
            if rb == 1 and ra == 2:
                return Dot(b, a)
            if rb == 2 and ra == 2:
                return Prod((T(b), a), self.prank(nid))
        if la == "row" and lb == "row":      # contraction over the samples
            if ra == 1:
                return Sum(Mul((a, T(b)))) if rb == 2 else Sum(Mul((a, b)))
        if la == "col" and lb == "row":
            if rb == 1:
                return Sum(Mul((b, a)))
            return Sum(Prod((a, T(b)), 2))
        if la == "plain" and lb == "plain":
            if ra == 1 and rb == 1:
                return Dot(a, b)
            if ra == 1:
                return Prod((T(a), b), 1)
            return Prod((a, b), self.prank(nid))
        if la == "plain" and lb == "col":     # W x_i with x_i a column of the right operand
            return Prod((a, b), self.prank(nid))
        return Call("matmul", (a, b), rank=self.prank(nid))


def _fmt(v):
    from ..graph import _fmt_param
    return _fmt_param(v)


class Notation:
    """The builder an op's ``notation`` writes itself with (see :class:`gradc.ops.registry.Op`)."""

    @staticmethod
    def add(*terms):
        return Add(tuple(terms))

    @staticmethod
    def neg(x):
        return neg(x)

    @staticmethod
    def mul(*factors):
        return Mul(tuple(factors))

    @staticmethod
    def pow(base, exp):
        return Pow(base, exp)

    @staticmethod
    def num(v):
        return Num(float(v))

    @staticmethod
    def fn(name, *args):
        return Fn(name, tuple(args))

    @staticmethod
    def cmp(op, a, b):
        return Cmp(op, a, b)

    @staticmethod
    def not_(c):
        return Not(c)

    @staticmethod
    def and_(a, b):
        return And(a, b)


def written(op: str, operands) -> Ex | None:
    """Op ``op`` applied to ``operands`` in its declared notation (None: it declares none)."""
    spec = OPS.get(op)
    n = spec.notation if spec is not None else None
    if n is None:
        return None
    return Fn(n, tuple(operands)) if isinstance(n, str) else n(Notation, *operands)


# ============================================================================ rules
def _varies(fo: Graph, nid: int) -> bool:
    """Does node ``nid`` depend on an argument (rather than on constants only)?"""
    return any(fo[a].op == "input" for a in fo.reachable([nid], forward=False))


def rule_text(fo: Graph, v: int, pos: list, batch, name=None) -> str | None:
    """The rule that takes ∂C/∂v back through ``v`` to its arguments at ``pos``;
    ``name(node)`` is an operand's display name (or None)."""
    d = fo[v]
    op, args, shp = d.op, d.args, d.shape
    k = pos[0]
    a = args[k]
    ash = fo[a].shape
    expanded = tuple(ash) != tuple(shp) and op in ("add", "sub", "mul", "div", "where", "maximum",
                                                  "minimum", "pow")
    if len(ash) == 0 or all(_is_size1(x) for x in ash):
        exp_txt = "scalar expansion ⇒ sum" + (" over i, Σ_i" if batch in shp else "")
    elif batch is not None and shp[:1] == (batch,) and ash[:1] != (batch,):
        exp_txt = "broadcast over i ⇒ sum Σ_i"
    else:
        exp_txt = "broadcast ⇒ sum over the expanded axes"
    def with_exp(t):
        return f"{t}; {exp_txt}" if expanded else t
    if op in ("add", "sub"):
        if expanded:
            return exp_txt
        return f"element-wise {'+' if op == 'add' else '−'} ⇒ diagonal Jacobian {'−I' if op == 'sub' and k == 1 else 'I'}"
    if op == "mul":
        other = fo[args[1 - k]] if len(args) == 2 else d
        if len(other.shape) == 0 or all(_is_size1(x) for x in other.shape):
            return with_exp("product with a scalar ⇒ that scalar")
        return with_exp("element-wise product ⇒ diagonal Jacobian diag(other factor)")
    if op == "div":
        if fo[args[1]].op == "count" and k == 0:
            cnt = fo[args[1]]
            dims = [fo[cnt.args[0]].shape[ax] for ax in cnt.params["axes"]]
            n = " ".join("N" if x == batch else str(x) for x in dims) or "1"
            n = n if len(dims) == 1 else f"({n})"
            return f"mean = sum/{n} ⇒ 1/{n}"
        return with_exp("element-wise u/v ⇒ diagonal Jacobian " + ("diag(1/v)" if k == 0 else "diag(−u/v²)"))
    if op == "pow":
        kc = fo[args[1]]
        u = (name(a) if name else None) or "u"
        if k == 0 and kc.op == "const" and kc.params["value"].size == 1:
            kv = float(kc.params["value"].reshape(-1)[0])
            r = Renderer(False)
            return with_exp(f"power rule ⇒ diagonal Jacobian diag({r(simp(Mul((Num(kv), Pow(Sym(u), Num(kv - 1))))))})")
        return with_exp("power rule ⇒ diagonal Jacobian diag(k u^(k−1))" if k == 0 else "d/dk u^k ⇒ diag(u^k ln u)")
    if op in ("relu",) or op == "maximum" and any(fo[x].op == "const" and np.all(fo[x].params["value"] == 0)
                                                  for x in args):
        return "the max(0, z) case split ⇒ indicator 1[z > 0] (diagonal Jacobian)"
    if op in ("maximum", "minimum"):
        # strict against a constant (the paper); two varying operands split a tie
        tie = "; a tie u = v splits it 1/2, 1/2" if all(_varies(fo, x) for x in args) else ""
        return with_exp(f"{op[:3]}(u, v) case split ⇒ indicator "
                        f"{'1[u > v]' if op == 'maximum' else '1[u < v]'}{tie}")
    spec = OPS.get(op)
    if spec is not None and spec.deriv is not None:
        u = (name(a) if name else None) or "u"
        shown = spec.notation if isinstance(spec.notation, str) else op
        return f"element-wise {_FN_TEXT.get(shown, shown)} ⇒ diagonal Jacobian diag({spec.deriv.format(u=u)})"
    if op == "sum":
        over = batch is not None and any(ash[ax] == batch for ax in d.params["axes"])
        return "sum reduction ⇒ 1ᵀ" + (" (each term of Σ_i gets the gradient)" if over else "")
    if op in ("max", "min"):
        return f"{op} reduction ⇒ indicator of the arg{op}"
    if op == "matmul":
        ra, rb = (len(fo[x].shape) for x in args)
        if ra == 1 and rb == 1:
            return "dot product ⇒ the other vector (transposed)"
        if ra == 2 and rb == 1:
            return ("matrix-vector product X w ⇒ Xᵀ g" + (" = Σ_i g_i x_iᵀ" if fo[args[0]].shape[0] == batch else "")
                    if k == 1 else "matrix-vector product X w ⇒ g wᵀ (outer product)")
        if ra == 1 and rb == 2:
            return "vector-matrix product xᵀW ⇒ W g" if k == 0 else "vector-matrix product xᵀW ⇒ x gᵀ"
        return "matrix product X W ⇒ Xᵀ G" if k == 1 else "matrix product X W ⇒ G Wᵀ"
    if spec is not None and spec.rule is not None:
        return with_exp(spec.rule)
    if op in ("cast", "stop_gradient", "count", "copy"):
        return None
    return f"{op} ⇒ its VJP rule"
