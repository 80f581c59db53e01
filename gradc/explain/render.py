"""Printing expressions as text (Unicode) or LaTeX: the symbol tables and :class:`Renderer`.

Kept apart from the simplifier so that what an expression says and how it is printed
change independently; the renderer reads only a term's numeric coefficient (``_coef``),
to print ``a − b`` rather than ``a + (−1) b``."""
from __future__ import annotations

import re
from fractions import Fraction

from .expr import Add, Ex, Fn, Ind, Mul, Num, Pow, Sum, Sym, is_num, rank
from .simplify import _coef, _factors


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


def _mk_plain(c, rest):
    if c == 1:
        return rest
    return Mul((Num(c),) + tuple(_factors(rest))) if not is_num(rest, 1.0) else Num(c)


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
