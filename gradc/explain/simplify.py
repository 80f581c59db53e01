"""The simplifier: ``simp(e)`` rewrites an expression bottom-up into the form a person
would write (constants folded, ``·1`` dropped, powers merged, factors pulled out of
``Σ_i``, ``max(0, z)`` read as ``z`` under ``1[z > 0]``).

It is pure algebra on :mod:`.expr` terms, one rule per node type (``_RULES``), kept apart
from reading and printing so that each rule can be checked on a hand-built expression."""
from __future__ import annotations

import numpy as np

from .expr import (ONE, ZERO, Add, Cmp, Dot, Ex, Fn, Ind, Mul, Not, Num, Pow, Prod, Ref, Sum, Sym, T, dep_i, is_num,
                   rank, subst)


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
