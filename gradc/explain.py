"""The derivative as mathematics a person can read.

``gradc.explain(f, *args, argnums=...)``, ``Lowered.explain()`` and ``gradc explain``
render the gradient gradc derived, in Parr & Howard's notation (numerator layout), from
the adjoint graph itself: nothing here knows any particular model.

How it reads a graph:

* **Index notation.** One size is the *sample axis* (the rows of the first data matrix,
  i.e. a rank-2 argument that is not differentiated); ``i = 1..N`` indexes it.  A value
  whose first axis is that size is shown by its i-th element or row (``z_i``, ``x_i``),
  a sum over that axis is ``Σ_i``, ``g @ X`` is ``Σ_i g_i x_iᵀ``, ``X @ w`` is ``w·x_i``.
* **Expressions.** Every node becomes a small symbolic expression (:class:`Ex`) over its
  arguments: element-wise ops are scalar functions, ``where(c, g, 0)`` is ``1[c] g``,
  a broadcast (scalar expansion) disappears, ``count`` over the samples is ``N``; ops
  without special notation are shown as ``op(args)``.  A simplifier folds constants
  (``2 · 1/N`` → ``2/N``), drops ``·1``, merges powers, pulls factors out of ``Σ_i``,
  and under an indicator ``1[z > 0]`` replaces ``max(0, z)`` by ``z``.
* **Names.** Forward values are named from the user's source (``z = X @ w + b`` names
  that node ``z``) or, failing that, by the paper's conventions (``z`` an affine map,
  ``a`` an activation, ``e`` a residual, ``u1, u2, ...`` links of an element-wise chain,
  ``C`` a cost).  In the result a name is kept only where it pays: a value used more than
  once and not tiny; the others are substituted (so ``e_i`` becomes ``z_i − y_i``).
* **Steps.** ``∂C/∂u`` of each named intermediate ``u`` is read from one more adjoint
  graph gradc builds (the forward graph with ``u + δ_u`` in place of ``u``; the gradient
  w.r.t. ``δ_u`` is ``∂C/∂u``), and annotated with the rule of each op between ``u`` and
  the next named value (element-wise ⇒ diagonal Jacobian, scalar expansion ⇒ sum, ...).

Rendering never fails: an expression that cannot be shown is listed as its graph node.
"""
from __future__ import annotations

import ast
import inspect
import linecache
import re
from dataclasses import dataclass, fields
from fractions import Fraction

import numpy as np

from .errors import ArgumentError
from .graph import Graph
from .graph_match import forward_match, structural_keys
from .ops import OPS

__all__ = ["explain_lowered", "Explanation"]


# ============================================================================ expressions
@dataclass(frozen=True)
class Ex:
    def kids(self):
        out = []
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Ex):
                out.append(v)
            elif isinstance(v, tuple):
                out.extend(x for x in v if isinstance(x, Ex))
        return out

    def map(self, fn):
        """This node with ``fn`` applied to each child."""
        kw = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Ex):
                v = fn(v)
            elif isinstance(v, tuple) and any(isinstance(x, Ex) for x in v):
                v = tuple(fn(x) if isinstance(x, Ex) else x for x in v)
            kw[f.name] = v
        return type(self)(**kw)


@dataclass(frozen=True)
class Num(Ex):
    v: float


@dataclass(frozen=True)
class Sym(Ex):
    name: str
    idx: bool = False        # depends on the sample index i: shown as name_i
    rank: int = 0            # per-sample rank: 0 scalar, 1 vector, 2 matrix
    kind: str = "value"      # value | size (N, shown in front) | index (i itself)


@dataclass(frozen=True)
class Ref(Ex):
    """A forward value, shown by its name or replaced by its definition."""
    rid: object
    idx: bool = False
    rank: int = 0


@dataclass(frozen=True)
class Add(Ex):
    terms: tuple


@dataclass(frozen=True)
class Mul(Ex):                # element-wise (commutative) product
    factors: tuple


@dataclass(frozen=True)
class Pow(Ex):
    base: Ex
    exp: Ex


@dataclass(frozen=True)
class Fn(Ex):
    name: str
    args: tuple
    params: str = ""          # e.g. "axis=1" for a reduction along some axes


@dataclass(frozen=True)
class Cmp(Ex):
    op: str
    a: Ex
    b: Ex


@dataclass(frozen=True)
class Not(Ex):
    c: Ex


@dataclass(frozen=True)
class And(Ex):
    a: Ex
    b: Ex


@dataclass(frozen=True)
class Ind(Ex):                # the indicator 1[c]
    c: Ex


@dataclass(frozen=True)
class Sum(Ex):                # Σ_i over the samples
    body: Ex


@dataclass(frozen=True)
class Dot(Ex):
    a: Ex
    b: Ex


@dataclass(frozen=True)
class Prod(Ex):               # matrix product (juxtaposition, not commutative)
    factors: tuple
    rank: int = 1


@dataclass(frozen=True)
class T(Ex):                  # transpose
    x: Ex


@dataclass(frozen=True)
class Index(Ex):              # x[j]
    x: Ex
    j: Ex


@dataclass(frozen=True)
class Vec(Ex):
    items: tuple


@dataclass(frozen=True)
class Call(Ex):               # an op without special notation
    name: str
    args: tuple
    params: str = ""
    rank: int = 0


ZERO, ONE = Num(0.0), Num(1.0)
_SCALAR_FNS = {"logsumexp", "sum", "max", "min"}


def rank(e: Ex) -> int:
    if isinstance(e, (Sym, Ref, Prod, Call)):
        return e.rank
    if isinstance(e, (Num, Dot, Index)):
        return 0
    if isinstance(e, Vec):
        return 1
    if isinstance(e, Fn):
        if e.name in _SCALAR_FNS and len(e.args) == 1:
            return 0 if not e.params else rank(e.args[0])
        if e.name == "onehot":
            return 1
    if isinstance(e, Pow):
        return rank(e.base)
    return max((rank(k) for k in e.kids()), default=0)


def dep_i(e: Ex) -> bool:
    if isinstance(e, (Sym, Ref)):
        return e.idx
    if isinstance(e, Sum):
        return False
    return any(dep_i(k) for k in e.kids())


def size(e: Ex) -> int:
    """Leaves (names), numbers not counted."""
    if isinstance(e, (Sym, Ref)):
        return 1
    if isinstance(e, Num):
        return 0
    return sum(size(k) for k in e.kids())


def refs(e: Ex, out: dict):
    if isinstance(e, Ref):
        out[e.rid] = out.get(e.rid, 0) + 1
    for k in e.kids():
        refs(k, out)
    return out


def subst(e: Ex, fn):
    """Replace nodes bottom-up: ``fn(node)`` returns a replacement or None."""
    e = e.map(lambda k: subst(k, fn))
    r = fn(e)
    return e if r is None else r


def neg(e):
    return Mul((Num(-1.0), e))


def is_num(e, v=None):
    return isinstance(e, Num) and (v is None or e.v == v)


# ---------------------------------------------------------------------------- simplify
def simp(e: Ex) -> Ex:
    e = e.map(simp)
    rule = _RULES.get(type(e))
    return rule(e) if rule else e


def _coef(t: Ex):
    """(numeric coefficient, the rest) of a term."""
    if isinstance(t, Num):
        return t.v, ONE
    if isinstance(t, Mul) and isinstance(t.factors[0], Num):
        rest = t.factors[1:]
        return t.factors[0].v, rest[0] if len(rest) == 1 else Mul(rest)
    return 1.0, t


def _factors(t: Ex):
    return list(t.factors) if isinstance(t, Mul) else [t]


def _mk_mul(c: float, rest: Ex) -> Ex:
    if c == 0:
        return ZERO
    if is_num(rest, 1.0):
        return Num(c)
    if c == 1:
        return rest
    return _simp_mul(Mul((Num(c), rest)))


def _simp_add(e: Add) -> Ex:
    terms = []
    for t in e.terms:
        terms.extend(t.terms if isinstance(t, Add) else [t])
    coefs: dict = {}
    order = []
    for t in terms:
        c, rest = _coef(t)
        if c == 0:
            continue
        if rest not in coefs:
            order.append(rest)
            coefs[rest] = 0.0
        coefs[rest] += c
    out = [_mk_mul(coefs[r], r) for r in order if coefs[r] != 0]
    out = [t for t in out if not is_num(t, 0.0)]
    if not out:
        return ZERO
    if len(out) == 1:
        return out[0]
    # factor out what every term shares (1/N in 1/N a − 1/N b)
    common = _factors(out[0])
    common = [f for f in common if not isinstance(f, Num)]
    for t in out[1:]:
        fs = _factors(t)
        keep = []
        for f in common:
            if f in fs:
                fs.remove(f)
                keep.append(f)
        common = keep
    if common:
        reduced = []
        for t in out:
            fs = _factors(t)
            for f in common:
                fs.remove(f)
            reduced.append(fs[0] if len(fs) == 1 else Mul(tuple(fs)) if fs else ONE)
        return simp(Mul(tuple(common) + (Add(tuple(reduced)),)))
    cs = [abs(_coef(t)[0]) for t in out]
    if len(set(cs)) == 1 and cs[0] != 1:
        k = cs[0]
        return simp(Mul((Num(k), Add(tuple(_mk_mul(_coef(t)[0] / k, _coef(t)[1]) for t in out)))))
    return Add(tuple(out))


def _cat(f: Ex):
    """Sort key of a factor: numbers, sizes, indicators, scalars, vectors, rows, sums."""
    r = rank(f)
    if isinstance(f, Num):
        c = 0
    elif isinstance(f, Pow) and isinstance(f.base, Sym) and f.base.kind == "size" or \
            isinstance(f, Sym) and f.kind == "size":
        c = 1
    elif isinstance(f, Ind):
        c = 2
    elif isinstance(f, Sum):
        c = 9
    elif r == 0:
        atom = isinstance(f, (Sym, Ref)) or isinstance(f, Pow) and isinstance(f.base, (Sym, Ref))
        c = 3 if atom else 4 if not isinstance(f, Add) else 5
    elif isinstance(f, T) or isinstance(f, Prod) and f.factors and isinstance(f.factors[-1], T):
        c = 8
    else:
        c = 6
    return c


def _mask_subst(e: Ex, u: Ex, by: Ex) -> Ex:
    def f(x):
        if isinstance(x, Fn) and x.name == "max" and len(x.args) == 2:
            a, b = x.args
            if (is_num(a, 0.0) and b == u) or (is_num(b, 0.0) and a == u):
                return by
        return None
    return subst(e, f)


def _active(c: Ex):
    """For 1[c]: (u, value of max(0, u) under c) when c decides max(0, u)."""
    if isinstance(c, Cmp):
        if c.op in (">", ">=") and is_num(c.b, 0.0):
            return c.a, c.a
        if c.op in ("<", "<=") and is_num(c.a, 0.0):
            return c.b, c.b
        if c.op in ("<", "<=") and is_num(c.b, 0.0):
            return c.a, ZERO
    return None


def _simp_mul(e: Mul) -> Ex:
    fs = []
    for f in e.factors:
        fs.extend(f.factors if isinstance(f, Mul) else [f])
    c = 1.0
    powers: dict = {}
    order = []
    for f in fs:
        if isinstance(f, Num):
            c *= f.v
            continue
        if isinstance(f, Pow) and isinstance(f.exp, Num):
            base, k = f.base, f.exp.v
        else:
            base, k = f, 1.0
        if base not in powers:
            order.append(base)
            powers[base] = 0.0
        powers[base] += k
    if c == 0:
        return ZERO
    out = []
    for b in order:
        k = powers[b]
        if k == 0:
            continue
        if isinstance(b, Ind):
            k = 1.0
        out.append(b if k == 1 else Pow(b, Num(k)))
    # under 1[z > 0], max(0, z) is z
    for f in list(out):
        if isinstance(f, Ind):
            hit = _active(f.c)
            if hit:
                u, by = hit
                out = [g if g is f else simp(_mask_subst(g, u, by)) for g in out]
    if len(out) != len([g for g in out if not isinstance(g, Mul)]) or any(is_num(g) for g in out):
        return simp(Mul((Num(c),) + tuple(out)))
    # −(a − b) reads better as (b − a)
    if c < 0:
        diffs = [k for k, g in enumerate(out) if isinstance(g, Add) and len(g.terms) == 2
                 and (_coef(g.terms[0])[0] < 0) != (_coef(g.terms[1])[0] < 0)]
        if len(diffs) == 1:
            g = out[diffs[0]]
            out[diffs[0]] = Add(tuple(_mk_mul(-_coef(t)[0], _coef(t)[1]) for t in g.terms))
            c = -c
    out.sort(key=lambda f: (_cat(f), repr(f)))
    if c != 1:
        out.insert(0, Num(c))
    if not out:
        return Num(c)
    return out[0] if len(out) == 1 else Mul(tuple(out))


def _simp_pow(e: Pow) -> Ex:
    b, k = e.base, e.exp
    if isinstance(k, Num):
        if k.v == 0:
            return ONE
        if k.v == 1:
            return b
        if isinstance(b, Num):
            try:
                return Num(float(b.v ** k.v))
            except (OverflowError, ZeroDivisionError, ValueError):
                return e
        if isinstance(b, Pow) and isinstance(b.exp, Num):
            return _simp_pow(Pow(b.base, Num(b.exp.v * k.v)))
        if isinstance(b, Mul) and float(k.v).is_integer():
            return simp(Mul(tuple(Pow(f, k) for f in b.factors)))
        if isinstance(b, Ind) and k.v > 0:
            return b
        if isinstance(b, Fn) and b.name == "sqrt" and float(k.v * 2).is_integer() and k.v * 2 % 2 == 0:
            return _simp_pow(Pow(b.args[0], Num(k.v / 2)))
    return e


def _simp_fn(e: Fn) -> Ex:
    n, a = e.name, e.args
    if n == "exp" and len(a) == 1 and isinstance(a[0], Add) and len(a[0].terms) == 2:
        x, y = a[0].terms
        cy, ry = _coef(y)
        if cy == -1 and isinstance(ry, Fn) and ry.name == "logsumexp" and ry.args[0] == x:
            return Fn("softmax", (x,), ry.params)
    if n == "ln" and len(a) == 1 and isinstance(a[0], Fn) and a[0].name == "exp":
        return a[0].args[0]
    if n == "sqrt" and isinstance(a[0], Pow) and is_num(a[0].exp, 2.0):
        return Fn("abs", (a[0].base,))
    if all(isinstance(x, Num) for x in a) and n in _NUMERIC:
        try:
            v = float(_NUMERIC[n](*[x.v for x in a]))
            if np.isfinite(v):
                return Num(v)
        except (ValueError, OverflowError, ZeroDivisionError):
            pass
    return e


_NUMERIC = {"exp": np.exp, "ln": np.log, "sin": np.sin, "cos": np.cos, "sqrt": np.sqrt,
            "tanh": np.tanh, "abs": abs, "max": max, "min": min,
            "sigmoid": lambda x: 1 / (1 + np.exp(-x))}


def _simp_ind(e: Ind) -> Ex:
    c = e.c
    if isinstance(c, Not) and isinstance(c.c, Cmp):
        flip = {">": "<=", ">=": "<", "<": ">=", "<=": ">", "==": "!=", "!=": "=="}
        return Ind(Cmp(flip[c.c.op], c.c.a, c.c.b))
    if isinstance(c, Cmp) and isinstance(c.a, Num) and isinstance(c.b, Num):
        ops = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal,
               "==": np.equal, "!=": np.not_equal}
        return ONE if ops[c.op](c.a.v, c.b.v) else ZERO
    return e


def _split_scalars(x: Ex):
    """(scalar factors, the rest) of a product whose rest carries the rank."""
    fs = _factors(x)
    sc = [f for f in fs if rank(f) == 0]
    rest = [f for f in fs if rank(f) != 0]
    if not rest or not sc:
        return [], x
    return sc, rest[0] if len(rest) == 1 else Mul(tuple(rest))


def _simp_sum(e: Sum) -> Ex:
    b = e.body
    if is_num(b, 0.0):
        return ZERO
    if not dep_i(b):
        return simp(Mul((Sym("N", kind="size"), b)))
    fs = _factors(b)
    out = [f for f in fs if not dep_i(f)]
    if out:
        inner = [f for f in fs if dep_i(f)]
        return simp(Mul(tuple(out) + (Sum(inner[0] if len(inner) == 1 else Mul(tuple(inner))),)))
    return e


def _simp_t(e: T) -> Ex:
    x = e.x
    if isinstance(x, T):
        return x.x
    if rank(x) == 0:
        return x
    if isinstance(x, Mul):
        sc, rest = _split_scalars(x)
        if sc:
            return simp(Mul(tuple(sc) + (T(rest),)))
    if isinstance(x, Prod):
        return simp(Prod(tuple(T(f) for f in reversed(x.factors)), x.rank))
    if isinstance(x, Sum):
        return simp(Sum(T(x.body)))
    return e


def _simp_prod(e: Prod) -> Ex:
    fs, sc = [], []
    for f in e.factors:
        for g in (f.factors if isinstance(f, Prod) else (f,)):
            s, rest = _split_scalars(g)
            sc.extend(s)
            if rank(rest) == 0:
                sc.append(rest)
            else:
                fs.append(rest)
    if any(is_num(s, 0.0) for s in sc):
        return ZERO
    core = fs[0] if len(fs) == 1 else Prod(tuple(fs), e.rank) if fs else ONE
    if sc:
        return simp(Mul(tuple(sc) + (core,)))
    return core


def _simp_dot(e: Dot) -> Ex:
    sa, a = _split_scalars(e.a)
    sb, b = _split_scalars(e.b)
    if sa or sb:
        return simp(Mul(tuple(sa + sb) + (Dot(a, b),)))
    if is_num(a, 0.0) or is_num(b, 0.0):
        return ZERO
    return e


_RULES = {Add: _simp_add, Mul: _simp_mul, Pow: _simp_pow, Fn: _simp_fn, Ind: _simp_ind,
          Sum: _simp_sum, T: _simp_t, Prod: _simp_prod, Dot: _simp_dot}


# ============================================================================ rendering
_SUP = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
_FN_TEXT = {"ln": "ln", "exp": "exp", "sigmoid": "σ", "softplus": "softplus", "tanh": "tanh",
            "sin": "sin", "cos": "cos", "sign": "sign", "softmax": "softmax", "onehot": "onehot",
            "logsumexp": "logsumexp", "max": "max", "min": "min"}
_FN_TEX = {"ln": r"\ln", "exp": r"\exp", "sigmoid": r"\sigma", "tanh": r"\tanh", "sin": r"\sin",
           "cos": r"\cos", "max": r"\max", "min": r"\min"}
_CMP_TEXT = {">": ">", ">=": "≥", "<": "<", "<=": "≤", "==": "=", "!=": "≠"}
_CMP_TEX = {">": ">", ">=": r"\ge", "<": "<", "<=": r"\le", "==": "=", "!=": r"\ne"}
ADD, MUL, POW, ATOM = 1, 2, 4, 5


def _frac(v: float):
    f = Fraction(v).limit_denominator(1000)
    return f if abs(float(f) - v) <= 1e-12 * max(1.0, abs(v)) else None


class Renderer:
    """Text (Unicode) or LaTeX.  ``r(e)`` -> (string, precedence)."""

    def __init__(self, latex=False):
        self.tex = latex

    def __call__(self, e: Ex) -> str:
        try:
            return self.r(e)[0]
        except Exception as err:  # noqa: BLE001  (rendering must never fail)
            return f"<unrenderable: {type(err).__name__}>"

    def paren(self, e, prec):
        s, p = self.r(e)
        if p < prec:
            return (r"\left(" + s + r"\right)") if self.tex else f"({s})"
        return s

    def num(self, v: float) -> str:
        f = _frac(abs(v))
        if f is not None and f.denominator == 1:
            s = str(f.numerator)
        elif f is not None and f.denominator <= 12:
            s = (rf"\frac{{{f.numerator}}}{{{f.denominator}}}" if self.tex
                 else f"{f.numerator}/{f.denominator}")
        else:
            s = f"{abs(v):.6g}"
        return ("-" if self.tex else "−") + s if v < 0 else s

    def name(self, name: str, idx: bool, kind="value") -> str:
        if self.tex:
            m = re.fullmatch(r"([A-Za-z])(\d*)", name)
            if m:
                sub = ",".join(x for x in (m.group(2), "i" if idx else "") if x)
                return m.group(1) + (f"_{{{sub}}}" if sub else "")
            base = r"\mathrm{" + name.replace("_", r"\_") + "}"
            return base + ("_{i}" if idx else "")
        return name + ("_i" if idx else "")

    def r(self, e: Ex):
        m = getattr(self, "r_" + type(e).__name__)
        return m(e)

    def r_Num(self, e):
        s = self.num(e.v)
        return s, (MUL if e.v < 0 or "/" in s or "frac" in s else ATOM)

    def r_Sym(self, e):
        if e.kind == "index":
            return "i", ATOM
        return self.name(e.name, e.idx), ATOM

    def r_Ref(self, e):
        return f"%{e.rid}", ATOM

    def r_Add(self, e):
        terms = list(e.terms)
        neg_first = _coef(terms[0])[0] < 0
        if neg_first:
            k = next((k for k, t in enumerate(terms) if _coef(t)[0] > 0), None)
            if k is not None:
                terms.insert(0, terms.pop(k))
        out = ""
        for k, t in enumerate(terms):
            c, rest = _coef(t)
            if k and c < 0:
                out += (" - " if self.tex else " − ") + self.paren(_mk_plain(-c, rest), MUL)
            elif k:
                out += " + " + self.paren(t, MUL)
            else:
                out += self.paren(t, MUL)
        return out, ADD

    def r_Mul(self, e):
        c = 1.0
        nums, dens, snum, sden = [], [], [], []
        for f in e.factors:
            if isinstance(f, Num):
                c *= f.v
                continue
            base, k = (f.base, f.exp.v) if isinstance(f, Pow) and isinstance(f.exp, Num) else (f, 1.0)
            is_size = isinstance(base, Sym) and base.kind == "size"
            if k < 0:
                (sden if is_size else dens).append(base if k == -1 else Pow(base, Num(-k)))
            else:
                (snum if is_size else nums).append(f)
        sign = c < 0
        fr = _frac(abs(c))
        if fr is not None:
            p, q = fr.numerator, fr.denominator
        else:
            p, q = abs(c), 1
        ptxt = self.num(p) if p != 1 else ""
        qtxt = self.num(q) if q != 1 else ""
        body = self.juxt(nums)
        top = self.juxt([Num(p)] * bool(ptxt) + snum) if (ptxt or snum) else ""
        if dens:
            den = self.juxt(([Num(q)] if qtxt else []) + sden + dens)
            num = self.juxt(([Num(p)] if ptxt else []) + snum + nums) or "1"
            many = len(dens) + len(sden) + bool(qtxt) > 1
            if self.tex:
                s = rf"\frac{{{num}}}{{{den}}}"
            else:
                s = f"{num}/({den})" if many else f"{num}/{den}"
        elif sden or qtxt:
            den = self.juxt(([Num(q)] if qtxt else []) + sden)
            lead = top or "1"
            if self.tex:
                frac = rf"\frac{{{lead}}}{{{den}}}"
            else:
                frac = f"{lead}/({den})" if len(sden) + bool(qtxt) > 1 else f"{lead}/{den}"
            s = frac + ((r" \cdot " if self.tex else " · ") + body if body else "")
        else:
            if top and body:
                tight = not snum and self._tight(nums[0])
                sep = "" if tight else " · " if isinstance(nums[0], Ind) else " "
                s = top + (sep if not self.tex else r"\,") + body
            else:
                s = top or body or "1"
        if sign:
            s = ("-" if self.tex else "−") + s
        return s, MUL

    def juxt(self, fs) -> str:
        """Factors side by side; ⊙ between vectors (an element-wise product)."""
        if not fs:
            return ""
        vec = [f for f in fs if rank(f) > 0 and not isinstance(f, Sum)]
        had = len(vec) > 1
        parts = []
        for k, f in enumerate(fs):
            s = self.paren(f, POW if isinstance(f, Num) else MUL)
            if isinstance(f, (Add, Sum)) or (isinstance(f, Mul) and k):
                s = self.paren(f, ATOM) if isinstance(f, (Add, Mul)) or k < len(fs) - 1 else s
            parts.append((s, had and f in vec))
        out = parts[0][0]
        for k, ((s, v), (_, pv)) in enumerate(zip(parts[1:], parts[:-1])):
            sep = (r" \odot " if self.tex else " ⊙ ") if (v and pv) else (r"\," if self.tex else " ")
            if not self.tex and isinstance(fs[k], Num) and self._tight(fs[k + 1]):
                sep = ""
            elif not self.tex and isinstance(fs[k], Num) and isinstance(fs[k + 1], (Ind, Num)):
                sep = " · "
            out += sep + s
        return out

    @staticmethod
    def _tight(f) -> bool:
        """2x, 2√x: a number written against a plain name (not u1: 2u1 misreads)."""
        b = f.base if isinstance(f, Pow) else f
        if isinstance(b, Fn) and b.name == "sqrt":
            return True
        return isinstance(b, Sym) and b.kind != "size" and not any(c.isdigit() for c in b.name)

    def r_Pow(self, e):
        b, k = e.base, e.exp
        if isinstance(k, Num) and k.v == 0.5:
            return self.r_Fn(Fn("sqrt", (b,)))
        if isinstance(k, Num) and k.v < 0:
            return self.r_Mul(Mul((e,)))
        bs = self.paren(b, ATOM) if not isinstance(b, (Fn, Ind)) else self.r(b)[0]
        if isinstance(k, Num) and float(k.v).is_integer():
            n = int(k.v)
            return (f"{bs}^{{{n}}}" if self.tex else bs + str(n).translate(_SUP)), POW
        ks = self.r(k)[0]
        return (f"{bs}^{{{ks}}}" if self.tex else f"{bs}^({ks})"), POW

    def r_Fn(self, e):
        n, a = e.name, e.args
        if n == "sqrt":
            s, p = self.r(a[0])
            if self.tex:
                return rf"\sqrt{{{s}}}", ATOM
            return ("√" + s if p >= ATOM else f"√({s})"), ATOM
        if n == "abs":
            return (rf"\left|{self.r(a[0])[0]}\right|" if self.tex else f"|{self.r(a[0])[0]}|"), ATOM
        inner = ", ".join([self.r(x)[0] for x in a] + ([e.params] if e.params else []))
        if self.tex:
            name = _FN_TEX.get(n, r"\operatorname{" + n.replace("_", r"\_") + "}")
            return rf"{name}\left({inner}\right)", ATOM
        return f"{_FN_TEXT.get(n, n)}({inner})", ATOM

    def r_Cmp(self, e):
        ops = _CMP_TEX if self.tex else _CMP_TEXT
        return f"{self.r(e.a)[0]} {ops[e.op]} {self.r(e.b)[0]}", 0

    def r_Not(self, e):
        return ((r"\lnot " if self.tex else "¬") + self.paren(e.c, ATOM)), ATOM

    def r_And(self, e):
        op = r"\land" if self.tex else "∧"
        return f"{self.paren(e.a, 1)} {op} {self.paren(e.b, 1)}", 0

    def r_Ind(self, e):
        c = self.r(e.c)[0]
        return (rf"\mathbb{{1}}[{c}]" if self.tex else f"1[{c}]"), ATOM

    def r_Sum(self, e):
        s = self.paren(e.body, MUL)
        return ((r"\sum_i " if self.tex else "Σ_i ") + s), MUL

    def r_Dot(self, e):
        a, b = self.paren(e.a, ATOM), self.paren(e.b, ATOM)
        return (f"{a} \\cdot {b}" if self.tex else f"{a}·{b}"), MUL

    def r_Prod(self, e):
        return (r"\," if self.tex else " ").join(self.paren(f, POW) for f in e.factors), MUL

    def r_T(self, e):
        s, p = self.r(e.x)
        if p < ATOM:
            s = (r"\left(" + s + r"\right)") if self.tex else f"({s})"
        return (s + (r"^\top" if self.tex else "ᵀ")), POW

    def r_Index(self, e):
        return f"{self.paren(e.x, ATOM)}[{self.r(e.j)[0]}]", ATOM

    def r_Vec(self, e):
        inner = ", ".join(self.r(x)[0] for x in e.items)
        return (rf"\left[{inner}\right]" if self.tex else f"[{inner}]"), ATOM

    def r_Call(self, e):
        inner = ", ".join([self.r(x)[0] for x in e.args] + ([e.params] if e.params else []))
        if self.tex:
            return r"\operatorname{" + e.name.replace("_", r"\_") + rf"}}\left({inner}\right)", ATOM
        return f"{e.name}({inner})", ATOM


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


def _mk_plain(c, rest):
    if c == 1:
        return rest
    return Mul((Num(c),) + tuple(_factors(rest))) if not is_num(rest, 1.0) else Num(c)


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
        ps = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(p.items()) if k != "value")
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
    from .graph import _fmt_param
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


# ============================================================================ explanation
class Explanation:
    """A derivative a person can read: ``str()`` is text, ``.latex()`` LaTeX.

    ``gradients`` maps each differentiated argument's name to its derivative as text;
    ``definitions``, ``steps`` and ``results`` are the lines of each section."""

    def __init__(self):
        self.title = ""
        self.notes: list[str] = []
        self.forward: list = []      # (lhs Ex | str, rhs Ex)
        self.steps: list = []        # (lhs str pair, rhs Ex, rule)
        self.results: list = []      # (lhs pair, rhs Ex)
        self.where: list = []        # (lhs Ex, rhs Ex)
        self.extra: list[str] = []
        self.gradients: dict = {}

    def _lines(self, tex: bool) -> list[str]:
        R = Renderer(tex)

        def lhs(x):
            return x if isinstance(x, str) else R(x)

        def d(pair, partial):
            num, den = pair
            if tex:
                sym = r"\partial " if partial else "d"
                return rf"\frac{{{sym}{num}}}{{{sym}{den}}}"
            sym = "∂" if partial else "d"
            return f"{sym}{num}/{sym}{den}"

        def names(pair):
            return tuple(R(x) if isinstance(x, Ex) else x for x in pair)

        out = []
        if tex:
            out.append("% " + self.title)
            for n in self.notes:
                out.append("% " + n)
            blocks = []
            if self.forward:
                blocks.append(("forward", [f"{lhs(a)} &= {R(b)}" for a, b in self.forward]))
            if self.steps:
                blocks.append(("reverse mode", [f"{d(names(p), True)} &= {R(b)}"
                                                + (rf" && \text{{{_tex_text(r)}}}" if r else "")
                                                for p, b, r in self.steps]))
            if self.results:
                res = []
                for p, b in self.results:
                    res.append(f"{d(names(p), False)} &= {R(b)}")
                    split = _case_split(b)
                    if split:
                        c, val, zero = split
                        z = r"0^\top" if zero == "0ᵀ" else "0"
                        res.append(rf"&= \begin{{cases}} {R(val)} & {R(c)} \\ {z} & \text{{otherwise}} \end{{cases}}")
                res += [rf"\text{{with }} {lhs(a)} &= {R(b)}" for a, b in self.where]
                blocks.append(("result", res))
            for title, lines in blocks:
                out.append(f"% {title}")
                out.append(r"\begin{aligned}")
                out.append(" \\\\\n".join(lines))
                out.append(r"\end{aligned}")
            out += ["% " + x for x in self.extra]
            return out
        out.append(self.title)
        out += ["  " + n for n in self.notes]
        if self.forward:
            out.append("")
            out.append("forward")
            rows = [(lhs(a), R(b)) for a, b in self.forward]
            w = max(len(a) for a, _ in rows)
            out += [f"  {a:<{w}} = {b}" for a, b in rows]
        if self.steps:
            out.append("")
            out.append("reverse mode, from the output back: ∂C/∂u = Σ_v ∂C/∂v ∂v/∂u (the vector chain rule)"
                       .replace("C", self._out) + "; [the rule of each step]")
            rows = [(d(names(p), True), R(b), r) for p, b, r in self.steps]
            w = max(len(a) for a, _, _ in rows)
            w2 = min(max(len(b) for _, b, _ in rows), 44)
            out += [(f"  {a:<{w}} = {b:<{w2}}" + (f"   [{r}]" if r else "")).rstrip() for a, b, r in rows]
        if self.results:
            out.append("")
            out.append("result (numerator layout)")
            rows = [(d(names(p), False), R(b)) for p, b in self.results]
            w = max(len(a) for a, _ in rows)
            for (a, b), (_, e) in zip(rows, self.results):
                out.append(f"  {a:<{w}} = {b}")
                split = _case_split(e)
                if split:
                    c, val, zero = split
                    out.append(f"  {'':<{w}} = {R(val)} if {R(c)}, {zero} otherwise (the case split)")
            if self.where:
                out.append("  with " + ",  ".join(f"{lhs(a)} = {R(b)}" for a, b in self.where))
        out += self.extra
        return out

    _out = "C"

    def __str__(self):
        return "\n".join(self._lines(False))

    def text(self) -> str:
        return str(self)

    def latex(self) -> str:
        return "\n".join(self._lines(True))

    def __repr__(self):
        return f"<gradc.Explanation: {self.title}>"


def _case_split(e: Ex):
    """(c, value, zero) when ``e`` is 1[c] times something: the paper writes it by cases."""
    if isinstance(e, Ind):
        return e.c, ONE, "0"
    if isinstance(e, Mul):
        inds = [f for f in e.factors if isinstance(f, Ind)]
        if len(inds) == 1:
            rest = [f for f in e.factors if f is not inds[0]]
            val = simp(Mul(tuple(rest))) if len(rest) > 1 else rest[0]
            return inds[0].c, val, "0ᵀ" if is_row(val) else "0" if rank(val) == 0 else "0 (vector)"
    return None


def _tex_text(s: str) -> str:
    for a, b in (("\\", ""), ("_", r"\_"), ("&", r"\&"), ("%", r"\%"), ("#", r"\#"),
                 ("⇒", "$\\Rightarrow$"), ("ᵀ", "$^\\top$"), ("Σ", "$\\Sigma$"), ("σ", "$\\sigma$"),
                 ("−", "-"), ("√", "$\\surd$"), ("²", "$^2$"), ("·", "$\\cdot$")):
        s = s.replace(a, b)
    return s


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
        from .autodiff import relevant
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
            from .ops import OPS
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
        from .autodiff import vjp_graph
        from .passes import optimize
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
    from .graph import fmt_type
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
    from .autodiff import vjp_graph
    from .passes import optimize
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
    from .autodiff import is_diagonal, vjp_graph
    from .passes import optimize
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

