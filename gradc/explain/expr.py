"""The expression tree explain writes derivatives in.

Every graph node is read into one of these small immutable terms (:class:`Ex` and its
subclasses), so that the simplifier and the renderers work on mathematics rather than on
graph nodes; the functions after them (rank, dep_i, size, refs, subst, ...) are the
queries all of them share.  It imports nothing else of gradc: the bottom of the package."""
from __future__ import annotations

from dataclasses import dataclass, fields


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
