"""The result, :class:`Explanation`: the sections of a derivative (notes, forward
definitions, reverse-mode steps, results) and their layout as text or LaTeX.

Kept apart from the explainer that fills it in, so that the object a user holds and
prints can be read without the graph machinery behind it."""
from __future__ import annotations

from .expr import ONE, Ex, Ind, Mul, rank
from .reader import is_row
from .render import Renderer
from .simplify import simp


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
